"""Cross-market analysis: how equities, rates, commodities, volatility, FX, crypto and the
macro economy move together, and which leads.

Every series keeps its own coverage; results state the window they were computed on.
A daily series' timestamps are dates: a time of day (a close stamped at 16:00) and a time
zone are dropped, each value keeping the calendar date of its own market.
Daily series are aligned on the union of their dates with a forward fill of at most
``MAX_FILL_DAYS`` bars (a holiday in one market), never across longer gaps. Monthly and
quarterly series (rates, CPI, macro) enter only through ``ql.data.as_of`` with a
publication lag, so no value is used before it was known; they then hold until the next
release.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import xarray as xr

from quantlab import _validate, data, measures, rolling
from quantlab._doc import fill
from quantlab.data import FLAT_VARIANCE, MIN_PRICE, check_time, shifted
from quantlab.errors import DataError

__all__ = ["CrossMarketAnalyzer", "CLASSES", "MAX_FILL_DAYS"]

CLASSES = ("equity", "fx", "commodity", "crypto", "rates", "volatility", "macro")
LEVEL_CLASSES = ("rates", "macro")      # yields and indicators: changes, not returns
MAX_FILL_DAYS = 3
# days after the period end when each low-frequency series is published (approximate)
RELEASE_LAGS = {"rates": 1, "core_cpi": 15, "macro": 30}


# shared numpydoc blocks (quantlab._doc.fill): written once, used by many docstrings
_TWO_EQUITIES = """\
>>> import quantlab as ql
>>> from quantlab import crossmarket
>>> ds = ql.data.load().isel(time=slice(0, 300))
>>> cm = crossmarket.CrossMarketAnalyzer()
>>> for a in ["IBM", "MSFT"]:
...     _ = cm.add_market_data("equity", a, ds["close"].sel(asset=a).to_series())"""
_DOC = {
    "two_equities": _TWO_EQUITIES,
    "bundled": """\
>>> from quantlab import crossmarket
>>> cm = crossmarket.CrossMarketAnalyzer.from_bundled()""",
    "symbols_panel": """\
Parameters
----------
symbols : list of str, optional
    Symbols to include, distinct (default all; one name alone is one symbol).

Returns
-------
xarray.DataArray
    (time, asset), one column per symbol, on the union of dates.

Examples
--------
""" + _TWO_EQUITIES,
    "symbols": """\
symbols : list of str, optional
    Symbols to include, distinct (default all; one name alone is one symbol).""",
    "beta_window_out": """\
window : int, default 63
    Bars of the rolling beta and correlation (at least ``window // 2`` valid pairs).

Returns
-------
rolling : xarray.Dataset
    ``beta`` and ``correlation``, (time, asset) over the targets; ``beta`` is NaN
    where the driver's returns do not vary (variance below 1e-10 of their mean square:
    constant, or a constant accrual), ``correlation`` where either series' do not.
summary : pandas.DataFrame
    One row per target: beta_mean, beta_std, stability (1 - std / |mean| of the
    beta over time; near 1 = stable), correlation (full window; NaN where either
    series' returns do not vary), n, window.

Raises
------
ValueError
    If the driver is unknown or was not added with that class.""",
    "report_args": """\
window : int, default 63
    Bars of the rolling commodity betas.
max_lag : int, default 5
    Largest lag of ``lead_lag``, in bars.""",
}


def _listed(names, what: str = "symbols") -> list:
    """``names`` as a list: one name alone is one symbol, not its letters; anything else
    not a collection is a TypeError naming ``what`` (5 was "'int' object is not
    iterable")."""
    if isinstance(names, str):
        return [names]
    if isinstance(names, Mapping) or not isinstance(names, Iterable):
        raise TypeError(f"{what} must be a symbol or a list of symbols, got "
                        f"{type(names).__name__} {_validate._show(names)}")
    return list(names)


def _once(what: str, names: list) -> None:
    """Refuse a symbol given twice: duplicate labels in every result (lead_lag failed
    inside pandas)."""
    dup = sorted({s for s in names if names.count(s) > 1}, key=str)
    if dup:
        raise ValueError(f"{what} repeat {dup}; give each symbol once")


def _one_asset(data: xr.DataArray, symbol) -> xr.DataArray:
    """The (time,) series of ``symbol`` in a DataArray: its ``asset`` (or the only one),
    else a ValueError naming ``data``, the dims it has and the dims it needs (an
    ``asset`` dim without ``symbol`` failed in xarray's squeeze)."""
    if "asset" in data.dims:
        if symbol in data.indexes.get("asset", ()):
            data = data.sel(asset=symbol)
        elif data.sizes["asset"] == 1:
            data = data.squeeze("asset", drop=True)
        else:
            assets = list(data.indexes["asset"]) if "asset" in data.indexes else []
            raise ValueError(f"data for {symbol!r} (dims {data.dims}) has "
                             f"{data.sizes['asset']} assets and {symbol!r} is not one of "
                             f"them (assets {assets[:10]}); select one with .sel(asset=...)")
    if data.dims != ("time",):
        raise ValueError(f"data for {symbol!r} must be a DataArray with the one dim 'time' "
                         f"(or 'time' and 'asset' with {symbol!r} an asset), got dims "
                         f"{data.dims}")
    return data


def _as_series(data, symbol) -> pd.Series:
    if isinstance(data, xr.Dataset):
        if "close" not in data:   # was xarray's KeyError "No variable named 'close'"
            raise DataError(f"data for {symbol!r}: a Dataset needs a 'close' variable, got "
                            f"{list(data.data_vars)}")
        data = data["close"]
    if isinstance(data, xr.DataArray):
        data = _one_asset(data, symbol).to_series()
    if isinstance(data, pd.DataFrame):
        cols = {str(c).lower().replace(" ", "_"): c for c in data.columns}
        col = cols.get("close") or cols.get("adj_close")
        if col is None:
            if data.shape[1] != 1:
                raise DataError(f"{symbol}: a DataFrame needs a 'close' column, got "
                                f"{list(data.columns)}")
            col = data.columns[0]
        data = data[col]
    if not isinstance(data, pd.Series):
        raise TypeError(f"data for {symbol!r} must be a pandas Series/DataFrame or an xarray "
                        f"DataArray, got {type(data).__name__}")
    if not isinstance(data.index, pd.DatetimeIndex):
        raise DataError(f"{symbol}: the index must be dates (a DatetimeIndex), got "
                        f"{type(data.index).__name__}")
    check_time(data.index, f"{symbol}: ")
    if data.dtype.kind in "cmM":   # complex lost its imaginary part, dates became numbers
        _validate.real_array(f"data for {symbol!r}", data.dtype)
    try:
        s = pd.to_numeric(data, errors="raise").astype(float).rename(symbol)
    except (ValueError, TypeError) as e:   # pandas' "Unable to parse string 'a'"
        raise TypeError(f"data for {symbol!r} must be numbers: {e}") from None
    s.index = s.index.tz_localize(None) if s.index.tz is not None else s.index
    return s


def _flat(x) -> bool:
    """Returns that do not vary: variance below 1e-10 of their mean square (an accrual,
    a money-market fund: constant up to rounding). Their correlations were the rounding's
    (-0.056 with IBM for a fund accruing 0.01% a day), not a relation."""
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    return x.size < 2 or bool(x.var() <= FLAT_VARIANCE * np.mean(x * x))


def _unflat(out: xr.DataArray, r: xr.DataArray, window=None) -> xr.DataArray:
    """``out`` (correlations) NaN where either series' returns do not vary (``_flat``):
    over the whole ``r``, or over each rolling ``window``."""
    if window is None:
        ok = xr.DataArray([not _flat(r.sel(asset=a).values) for a in r.asset.values],
                          dims="asset", coords={"asset": r.asset.values})
    else:
        mean = lambda v: rolling.mean(v, window, min_periods=2)  # noqa: E731
        sq = mean(r * r)
        ok = (sq - mean(r) ** 2) > FLAT_VARIANCE * sq
    return out.where(ok & ok.rename(asset="asset_other"))


def _dates(name: str, values) -> pd.DatetimeIndex:
    """``values`` as dates, checked as a time coordinate (``check_time``): [1, 2, 3]
    were nanoseconds after 1970 (the 1970 regime, 'stagflation'), "junk" pandas'
    DateParseError, a NaT, a repeat or a reversed order went through."""
    arr = np.asarray(values)
    if arr.size and arr.dtype.kind in "biufc":
        raise TypeError(f"{name} must be dates (datetimes or date strings), got numbers "
                        f"({_validate._show(values)})")
    try:
        index = pd.DatetimeIndex(values)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{name} must be dates: {e}") from None
    check_time(index, f"{name}: ")
    return index


def _daily(s: pd.Series) -> pd.Series:
    """A daily ``s`` (one value per date) stamped at its dates (midnight). A close stamped
    2000-01-04 16:00 and another market's stamped 2000-01-04 were two rows of the union
    of dates, each series forward filled onto the other's rows: every correlation and
    lead-lag was computed against zero returns (IBM/MSFT: 0.0001 for 0.359). Intraday
    series (two values on a date) keep their times."""
    days = s.index.normalize()
    if (days == s.index).all() or days.has_duplicates:
        return s
    return s.set_axis(days.rename(s.index.name))


@fill(_DOC)
class CrossMarketAnalyzer:
    """Cross-market analysis of series collected by asset class.

    Collect series by asset class, then ``correlations``, ``lead_lag``, ``fx_impact``,
    ``commodity_influence``, ``volatility_linkage``, ``macro_signals`` and ``report``.
    ``CrossMarketAnalyzer.from_bundled()`` loads the offline data.

    Examples
    --------
    {{two_equities}}
    >>> cm.asset_classes()
    {'equity': ['IBM', 'MSFT']}
    >>> cm.correlations().round(3).values
    array([[1.   , 0.324],
           [0.324, 1.   ]])
    """

    def __init__(self):
        self._series: dict[str, pd.Series] = {}
        self._class: dict[str, str] = {}
        self._macro: xr.Dataset | None = None

    # ---- data ----------------------------------------------------------------------
    def add_market_data(self, asset_class: str, symbol: str, data) -> "CrossMarketAnalyzer":
        """Add a daily series (close prices; yields or indicator levels for rates/macro).

        Parameters
        ----------
        asset_class : str
            One of ``CLASSES`` (e.g. ``"equity"``, ``"fx"``, ``"commodity"``, ``"rates"``).
        symbol : str
            The series' name.
        data : pandas.Series or xarray.DataArray
            Daily values on a DatetimeIndex / ``time``: one per date, a time of day and
            a time zone dropped (each value keeps its market's calendar date); a series
            with several values on a date keeps its times.

        Returns
        -------
        CrossMarketAnalyzer
            ``self``, for chaining.

        Raises
        ------
        ValueError, DataError
            For an unknown class, a blank or already added symbol, or a malformed series
            (±inf, prices <= 0, fewer than 2 values, unsorted or repeated dates).

        Examples
        --------
        {{two_equities}}
        >>> cm.asset_classes()
        {'equity': ['IBM', 'MSFT']}
        """
        if asset_class not in CLASSES:
            raise ValueError(f"unknown asset class {asset_class!r}; use one of "
                             f"{', '.join(CLASSES)}")
        if not isinstance(symbol, str) or not symbol.strip():
            raise ValueError(f"symbol must be a non-blank string, got {symbol!r}")
        if symbol in self._series:   # replacing it silently lost the first series
            raise ValueError(f"symbol {symbol!r} was already added (as "
                             f"{self._class[symbol]!r}); give each series its own symbol")
        s = _daily(_as_series(data, symbol).dropna())
        if s.size < 2:
            raise DataError(f"{symbol}: fewer than 2 observations")
        if np.isinf(s.to_numpy()).any():   # its returns were ±inf and NaN, taken as data
            t = s.index[np.flatnonzero(np.isinf(s.to_numpy()))[0]]
            raise DataError(f"{symbol}: value {s[t]} at {t.date()}")
        if asset_class not in LEVEL_CLASSES and (s < MIN_PRICE).any():
            t = s.index[np.flatnonzero((s < MIN_PRICE).to_numpy())[0]]
            raise DataError(f"{symbol}: " + (f"non-positive price {s[t]}" if s[t] <= 0 else
                            f"subnormal price {s[t]} (below {MIN_PRICE:.4g})")
                            + f" at {t.date()}")
        self._series[symbol] = s
        self._class[symbol] = asset_class
        return self

    @classmethod
    def from_bundled(cls) -> "CrossMarketAnalyzer":
        """The bundled cross-market daily series, ready to analyse.

        The daily series of ``ql.data.load("cross_market")``: SP500 and NASDAQ
        (1999-2018), AAPL GOOG IBM MSFT (2000-2013), WTI (1986-2019), VIX (2014-2019).
        Monthly and quarterly series (yields, core CPI, macro) are read by
        ``macro_signals`` with their publication lags, not mixed into the daily panel.

        Returns
        -------
        CrossMarketAnalyzer

        Examples
        --------
        {{bundled}}
        >>> cm.asset_classes()["commodity"], cm.asset_classes()["volatility"]
        (['WTI'], ['VIX'])
        """
        cm = data.load("cross_market")
        classes = {"equity_index": "equity", "equity": "equity", "commodity": "commodity",
                   "volatility": "volatility"}
        out = cls()
        for a, c in zip(cm.asset.values, cm.asset_class.values):
            out.add_market_data(classes[str(c)], str(a), cm["close"].sel(asset=a))
        return out

    def asset_classes(self) -> dict:
        """{class: [symbols]} of what was added.

        Returns
        -------
        dict

        Examples
        --------
        {{two_equities}}
        >>> cm.asset_classes()
        {'equity': ['IBM', 'MSFT']}
        """
        out: dict = {}
        for s, c in self._class.items():
            out.setdefault(c, []).append(s)
        return out

    def prices(self, symbols=None) -> xr.DataArray:
        """(time, asset) levels on the union of dates.

        Gaps of up to MAX_FILL_DAYS bars are forward-filled within each series' coverage.

        {{symbols_panel}}
        >>> cm.prices().isel(time=-1).round(2).values
        array([87.  , 23.98])
        """
        symbols = self._symbols(symbols)
        frame = pd.concat([self._series[s] for s in symbols], axis=1, sort=True)
        for s in symbols:   # fill short gaps only inside the series' own coverage
            first, last = self._series[s].index[[0, -1]]
            inside = (frame.index >= first) & (frame.index <= last)
            frame.loc[inside, s] = frame.loc[inside, s].ffill(limit=MAX_FILL_DAYS)
        da = xr.DataArray(frame.to_numpy(), dims=("time", "asset"),
                          coords={"time": frame.index.rename("time"), "asset": symbols})
        return da.assign_coords(asset_class=("asset", [self._class[s] for s in symbols]))

    def returns(self, symbols=None) -> xr.DataArray:
        """Simple returns, or first differences for rates/macro levels.

        {{symbols_panel}}
        >>> cm.returns().isel(time=-1).round(4).values
        array([0.0167, 0.0095])
        """
        p = self.prices(symbols)
        level = xr.DataArray([self._class[str(a)] in LEVEL_CLASSES for a in p.asset.values],
                             dims="asset", coords={"asset": p.asset})
        out = xr.where(level, p - shifted(p), p / shifted(p) - 1)
        return out.transpose("time", "asset").rename("returns")

    def _symbols(self, symbols):
        if not self._series:
            raise ValueError("no data: add_market_data(...) or from_bundled() first")
        symbols = list(self._series) if symbols is None else _listed(symbols)
        if not symbols:
            raise ValueError("symbols is empty: give at least one added symbol")
        _once("symbols", symbols)
        unknown = [s for s in symbols if s not in self._series]
        if unknown:
            raise ValueError(f"unknown symbol(s) {unknown}; added: {', '.join(self._series)}")
        return symbols

    @staticmethod
    def _window(da) -> str:
        t = da.dropna("time", how="all").indexes["time"]
        return f"{t[0].date()} .. {t[-1].date()}" if len(t) else "empty"

    # ---- co-movement ---------------------------------------------------------------
    def correlations(self, window=None, method="pearson", symbols=None, start=None,
                     end=None) -> xr.DataArray:
        """Return correlations: pairwise over common dates, ``(asset, asset_other)``.

        With ``window``, rolling ``(time, asset, asset_other)`` via ``ql.rolling.corr``
        (pearson only). ``attrs["window"]`` states the dates used. Pairs that never overlap
        (equities 2000-2013 and VIX 2014-2019) are NaN, or an error when the symbols were asked
        for by name.

        Parameters
        ----------
        window : int, optional
            Rolling window in bars (>= 2).
        method : {'pearson', 'spearman'}, default 'pearson'
            Correlation of the full-window estimate.
        {{symbols}}
        start, end : str or datetime-like, optional
            Date range.

        Returns
        -------
        xarray.DataArray

        Raises
        ------
        ValueError
            If ``method`` is unknown, or not pearson with ``window``.
        DataError
            If symbols asked for by name never overlap.

        Examples
        --------
        {{two_equities}}
        >>> cm.correlations().round(3).values
        array([[1.   , 0.324],
               [0.324, 1.   ]])
        >>> cm.correlations(window=20).dims
        ('time', 'asset', 'asset_other')
        """
        if method not in ("pearson", "spearman"):
            raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
        _validate.date("start", start), _validate.date("end", end)   # 2012 failed in pandas
        full = self.returns(symbols)
        r = full.sel(time=slice(start, end))
        if (start is not None or end is not None) and not r.notnull().any():
            # each pair 'overlapped on 0 observations' ("SP500 and SP500"): say it is the dates
            raise DataError(f"no returns between {start} and {end}: the data runs "
                            f"{self._window(full)}")
        if window is not None:
            if method != "pearson":
                raise ValueError("rolling correlations are pearson only")
            # a correlation needs 2 returns: window=1 failed naming min_periods, never given
            window = _validate.integer("window", window, lo=2)
            out = _unflat(rolling.corr(r, window), r, window)
        else:
            frame = r.to_pandas()
            counts = frame.notnull().astype(int).T @ frame.notnull().astype(int)
            short = np.argwhere(counts.to_numpy() < 2)
            if len(short) and symbols is not None:   # asked for: an error, not a NaN
                i, j = short[0]
                a, b = frame.columns[i], frame.columns[j]
                # where each has data, and the dates asked: which pair, which dates fit
                spans = "; ".join(f"{s} runs {self._window(full.sel(asset=s))}"
                                  for s in dict.fromkeys((a, b)))
                asked = ("" if start is None and end is None else
                         f" between {start or 'the start'} and {end or 'the end'}")
                raise DataError(f"{a} has {counts.iloc[i, j]} observations; need at least "
                                f"2{asked} ({spans})" if i == j else
                                f"{a} and {b} overlap on {counts.iloc[i, j]} observations; "
                                f"need at least 2{asked} ({spans})")
            c = frame.corr(method=method, min_periods=2)
            out = _unflat(xr.DataArray(c.to_numpy(), dims=("asset", "asset_other"),
                                       coords={"asset": c.index.to_numpy(),
                                               "asset_other": c.columns.to_numpy()}), r)
        return out.assign_attrs(window=self._window(r), method=method)

    def lead_lag(self, max_lag=10, symbols=None, min_obs=250, te_bins=3) -> pd.DataFrame:
        """Lead-lag relations of every ordered pair.

        One row per ordered pair: the lag (1..max_lag bars) at which the leader's past return
        correlates most with the follower's (|corr|), that correlation, the Granger F-test
        p-value at that lag (statsmodels; does the leader's past add to the follower's own
        past?), transfer entropy leader -> follower at that lag (bits, 3 equal-count bins), the
        overlap window and n. Lags count bars of the overlap: where one series has a hole
        (NaN), the correlation skips the pairs and the Granger regression the rows that
        touch it (the transfer entropy, which needs a gapless series, runs over the common
        returns: a hole joins the bars around it).

        Multiple testing: the lag is picked by looking, so its p-value is Bonferroni corrected
        for the ``max_lag`` lags tried, then Holm's step-down adjusts across all pairs
        tested (``p_adjusted``); ``significant`` is p_adjusted < 0.05.

        A pair whose lagged returns are constant over the ``lag`` bars of the regression
        (a series that moves only in its first ``lag`` returns of the overlap) has no
        Granger test: its ``granger_p`` and ``p_adjusted`` are NaN, ``significant`` is
        False and it does not count in Holm's adjustment of the others (it made the
        whole call a DataError). A follower fitted exactly by both series' past but not by
        its own (one a shifted copy of the other) has ``granger_p`` 0: the leader's past
        explains what the follower's cannot (F is infinite).

        Parameters
        ----------
        max_lag : int, default 10
            Largest lag tried, in bars (>= 1).
        {{symbols}}
        min_obs : int, default 250
            Overlapping returns a pair needs (>= 1; at least 3 x max_lag + 2 for the
            Granger test). Pairs with fewer, or where a series is constant, are left out.
        te_bins : int, default 3
            Bins of the transfer entropy, 1 to 256.

        Returns
        -------
        pandas.DataFrame
            Columns leader, follower, lag, correlation, granger_p, transfer_entropy, n,
            window, p_adjusted, significant.

        Examples
        --------
        {{two_equities}}
        >>> cm.lead_lag(max_lag=3, min_obs=100)[["leader", "follower", "lag"]]
          leader follower  lag
        0    IBM     MSFT    3
        1   MSFT      IBM    1
        """
        max_lag = _validate.integer("max_lag", max_lag, lo=1)
        # at most 256: transfer entropy's bins**3 states fit its 2**24 (1e30 was refused
        # as "bins", transfer_entropy's name, 10**6 as 10**18 states)
        te_bins = None if te_bins is None else _validate.integer("te_bins", te_bins, 1, 256)
        min_obs = _validate.integer("min_obs", min_obs, lo=1)
        # the Granger regression of lag k needs more than 3k + 1 rows (statsmodels)
        need = max(min_obs, 3 * max_lag + 2)
        r = self.returns(symbols).to_pandas()
        rows = []
        for lead in r.columns:
            for follow in r.columns:
                if lead == follow:
                    continue
                pair = r[[lead, follow]].dropna()
                if len(pair) < need:
                    continue
                x, y = pair[lead].to_numpy(), pair[follow].to_numpy()
                if _flat(x) or _flat(y):   # an accrual: its "relations" were rounding's
                    continue
                # lags in bars: on the overlap's bars, a hole kept as NaN. Shifted after
                # dropna, a pair straddling a hole was more bars apart than its lag (0.375
                # for pandas' r[a].shift(2).corr(r[b]) = 0.394 with 14 six-bar holes)
                span = r.loc[pair.index[0]:pair.index[-1], [lead, follow]]
                xb, yb = span[lead].to_numpy(), span[follow].to_numpy()
                cors = [_corr(xb[:-k], yb[k:]) for k in range(1, max_lag + 1)]
                if np.isnan(cors).all():   # a series constant over the overlap: no relation
                    continue
                k = int(np.nanargmax(np.abs(cors))) + 1
                p = _granger_p(yb, xb, k)
                # the source shifted by k - 1, so TE's one-step source term is x_{t-k}
                te = measures.transfer_entropy(x[:len(x) - k + 1], y[k - 1:], bins=te_bins)
                rows.append({"leader": lead, "follower": follow, "lag": k,
                             "correlation": float(cors[k - 1]), "granger_p": p,
                             "transfer_entropy": float(te), "n": len(pair),
                             "window": f"{pair.index[0].date()} .. {pair.index[-1].date()}"})
        if not rows:
            raise DataError(f"no pair of the {r.shape[1]} symbol(s) overlaps on {need}+ "
                            f"observations (min_obs {min_obs}, 3 x max_lag + 2) of returns "
                            "that vary")
        out = pd.DataFrame(rows)
        out["p_adjusted"] = _holm(np.minimum(out["granger_p"] * max_lag, 1.0))
        out["significant"] = out["p_adjusted"] < 0.05
        return out.sort_values(["significant", "p_adjusted"], ascending=[False, True]) \
            .reset_index(drop=True)

    # ---- influence -----------------------------------------------------------------
    def _betas(self, targets, driver, window):
        """Rolling OLS beta of each target's returns on the driver's, and its stability."""
        window = _validate.integer("window", window, lo=2)   # None, "63": a // TypeError
        if driver in targets:
            raise ValueError(f"{driver} is the driver; it cannot be a target too")
        _once("targets", targets)
        r = self.returns([*targets, driver])
        x = r.sel(asset=driver, drop=True)
        y = r.sel(asset=list(targets))
        both = y.notnull() & x.notnull()
        xm, ym = x.where(both), y.where(both)
        mean = lambda v: rolling.mean(v, window, min_periods=window // 2)  # noqa: E731
        cov = mean(xm * ym) - mean(xm) * mean(ym)
        sq = mean(xm * xm)
        var = sq - mean(xm) ** 2
        # a driver of constant returns (an accrual, a crawling peg) leaves E[x²] - E[x]²
        # a cancellation residue ~1e-24, not 0: betas of 2e5 from nothing; a variance
        # below 1e-10 of E[x²] (σ < 1e-5 |μ|) is no variation
        beta = (cov / var.where(var > FLAT_VARIANCE * sq)).rename("beta")
        # correlations of returns that do not vary are NaN, as in correlations(): an
        # accruing driver had a NaN beta but a correlation of rounding noise (-0.02)
        pair = r.sel(asset=[*targets, driver])
        corr = _unflat(rolling.corr(pair, window), pair, window).sel(
            asset=list(targets), asset_other=driver, drop=True)
        flat = xr.DataArray([_flat(xm.sel(asset=a).values) or _flat(ym.sel(asset=a).values)
                             for a in targets], dims="asset", coords={"asset": list(targets)})
        full = xr.corr(xm, ym, dim="time").where(~flat)
        summary = pd.DataFrame({
            "beta_mean": beta.mean("time").to_series(),
            "beta_std": beta.std("time").to_series(),
            "stability": (1 - beta.std("time") / abs(beta.mean("time"))).to_series(),
            "correlation": full.to_series(),
            "n": both.sum("time").to_series(),
        })
        summary["window"] = [self._window(ym.sel(asset=a)) for a in summary.index]
        return xr.Dataset({"beta": beta, "correlation": corr}), summary

    def fx_impact(self, equity, fx, window=63):
        """Rolling beta and correlation of equity returns on an FX rate's returns.

        Parameters
        ----------
        equity : str or list of str
            The equity symbol(s), the targets.
        fx : str
            A symbol added with class ``"fx"``, the driver.
        {{beta_window_out}}

        Examples
        --------
        {{two_equities}}
        >>> import numpy as np, pandas as pd
        >>> t = ds.indexes["time"]
        >>> fx = pd.Series(1.1 + 0.05 * np.sin(np.arange(len(t)) / 7), index=t)
        >>> _ = cm.add_market_data("fx", "EURUSD", fx)
        >>> rolling_beta, summary = cm.fx_impact(["IBM", "MSFT"], "EURUSD")
        >>> summary[["beta_mean", "correlation", "n"]].round(3)
               beta_mean  correlation    n
        asset
        IBM        0.323        0.020  299
        MSFT       0.677        0.058  299
        """
        self._need(fx, "fx")
        return self._betas(_listed(equity, "equity"), fx, window)

    def commodity_influence(self, targets=None, commodity="WTI", window=63):
        """Rolling betas and correlations of ``targets`` on a commodity's returns.

        Parameters
        ----------
        targets : str or list of str, optional
            Target symbol(s) (default every equity).
        commodity : str, default 'WTI'
            The driver: its returns are the regressor (added with class "commodity").
        {{beta_window_out}}

        Examples
        --------
        {{bundled}}
        >>> rolling_beta, summary = cm.commodity_influence(targets=["IBM", "MSFT"])
        >>> summary["beta_mean"].round(3).to_dict(), summary["n"].to_dict()
        ({'IBM': 0.055, 'MSFT': 0.073}, {'IBM': 3274, 'MSFT': 3274})
        """
        self._need(commodity, "commodity")
        if targets is None:
            targets = self.asset_classes().get("equity", [])
        return self._betas(_listed(targets, "targets"), commodity, window)

    def _need(self, symbol, cls):
        if symbol not in self._series:
            raise ValueError(f"unknown symbol {symbol!r}; added: {', '.join(self._series)}")
        if self._class[symbol] != cls:
            raise ValueError(f"{symbol} is {self._class[symbol]!r}, not {cls!r}")

    def volatility_linkage(self, index="SP500", vix="VIX", window=21) -> xr.Dataset:
        """VIX against the index's realised volatility and returns.

        Realised volatility is the annualised % std of the last ``window`` returns; the
        variance risk premium is VIX² - RV² (implied above realised is the usual state);
        the leverage effect is VIX changes moving against index returns.

        Parameters
        ----------
        index : str, default 'SP500'
            The equity index symbol.
        vix : str, default 'VIX'
            A symbol added with class ``"volatility"``.
        window : int, default 21
            Bars of the realised volatility.

        Returns
        -------
        xarray.Dataset
            vix, realised_vol, variance_premium, index_return, vix_change over time;
            ``attrs`` hold the window, leverage_correlation, vix_rv_correlation and
            mean_variance_premium.

        Raises
        ------
        ValueError
            If ``vix`` is unknown or not of class ``"volatility"``.

        Examples
        --------
        {{bundled}}
        >>> v = cm.volatility_linkage()
        >>> round(v.attrs["leverage_correlation"], 3), v.attrs["window"]
        (-0.828, '2014-01-03 .. 2018-12-31')
        """
        window = _validate.integer("window", window, lo=2)   # None, "21": a // TypeError
        self._need(vix, "volatility")
        p = self.prices([index, vix])
        r = p.sel(asset=index, drop=True).pipe(lambda s: s / shifted(s) - 1)
        v = p.sel(asset=vix, drop=True)
        common = r.notnull() & v.notnull()
        rv = rolling.std(r.where(common), window, min_periods=window // 2) * np.sqrt(252) * 100
        out = xr.Dataset({"vix": v.where(common), "realised_vol": rv,
                          "variance_premium": (v ** 2 - rv ** 2).where(common),
                          "index_return": r.where(common), "vix_change": v.diff("time")})
        ok = out["vix_change"].notnull() & out["index_return"].notnull()
        return out.assign_attrs(
            window=self._window(out["vix"]),
            leverage_correlation=float(xr.corr(out["vix_change"].where(ok),
                                               out["index_return"].where(ok))),
            vix_rv_correlation=(np.nan if _flat(out["vix"].values)   # a constant VIX:
                                else float(xr.corr(out["vix"], out["realised_vol"]))),  # noise
            mean_variance_premium=float(out["variance_premium"].mean()))

    # ---- macro ---------------------------------------------------------------------
    def macro_signals(self, index=None) -> xr.Dataset:
        """Daily growth, inflation, rates and credit regime signals, each value usable
        only from its publication.

        ``ql.data.as_of`` lags each release: quarterly macro 30 days after the quarter,
        core CPI 15 days after the month, yields the next day.
        growth_up: real GDP growth (q/q, annualised) above its trailing 5-year median;
        inflation_up: core CPI y/y above its trailing 5-year median; rates_up: the 3-month
        T-bill above its level a year earlier; credit_stress: the BAA-AAA spread above its
        trailing 12-month mean. ``regime`` names the growth/inflation quadrant. A value
        holds until the next release and becomes NaN one period after the series' last
        release (the bundled quarterly macro ends in 2009Q3, core CPI and yields in late
        2018).

        Parameters
        ----------
        index : array-like of datetime, optional
            Dates of the output, increasing, no repeats (default: the union of the added
            series' dates); numbers are a TypeError, not nanoseconds after 1970.

        Returns
        -------
        xarray.Dataset
            Over ``time``: gdp_growth, growth_up, core_inflation, inflation_up, tbill,
            rates_up, credit_spread, credit_stress (1.0/0.0, NaN before enough history)
            and regime (goldilocks, reflation, stagflation, deflation, or '').

        Examples
        --------
        >>> from quantlab import crossmarket
        >>> import pandas as pd
        >>> m = crossmarket.CrossMarketAnalyzer().macro_signals(
        ...     index=pd.date_range("2005-01-03", periods=5, freq="B"))
        >>> m["regime"].values
        array(['goldilocks', 'goldilocks', 'goldilocks', 'goldilocks', 'goldilocks'],
              dtype='<U10')
        """
        index = (self.prices().indexes["time"] if index is None
                 else _dates("macro_signals: index", index))
        macro = data.load("macro")
        gdp = macro["realgdp"].to_series()
        growth = ((gdp / gdp.shift(1)) ** 4 - 1).rename("gdp_growth")
        # NaN until the median exists (as credit_stress): growth > NaN is False, and the
        # first 7 quarters (24 months of inflation) read 0.0, "below", and as a regime
        growth_med = growth.rolling(20, min_periods=8).median()
        growth_up = (growth > growth_med).where(growth.notnull() & growth_med.notnull())
        tbill = macro["tbilrate"].to_series()
        rates_up = tbill > tbill.shift(4)
        cpi = data.load("core_cpi")["core_cpi"].to_series()
        infl = (cpi / cpi.shift(12) - 1).rename("core_inflation")
        infl_med = infl.rolling(60, min_periods=24).median()
        infl_up = (infl > infl_med).where(infl.notnull() & infl_med.notnull())
        rates = data.load("rates")
        spread = (rates["baa"] - rates["aaa"]).to_series()
        stress = spread > spread.rolling(12).mean()

        def daily(s, lag, period):
            s = s.astype(float).where(s.notnull())
            out = data.as_of(s, lag, index=index, period=period).to_numpy().copy()
            # a value holds until the next release, but not past the series' end: after
            # the last release plus one period it is stale, NaN
            last = pd.Period(s.dropna().index[-1], freq=period)
            stale = (last + 1).end_time.normalize() + pd.Timedelta(days=lag)
            out[index > stale] = np.nan
            return xr.DataArray(out, dims="time", coords={"time": index})

        ds = xr.Dataset({
            "gdp_growth": daily(growth, RELEASE_LAGS["macro"], "Q"),
            "growth_up": daily(growth_up, RELEASE_LAGS["macro"], "Q"),
            "core_inflation": daily(infl, RELEASE_LAGS["core_cpi"], "M"),
            "inflation_up": daily(infl_up, RELEASE_LAGS["core_cpi"], "M"),
            "tbill": daily(tbill, RELEASE_LAGS["macro"], "Q"),
            "rates_up": daily(rates_up.where(tbill.shift(4).notnull()), RELEASE_LAGS["macro"], "Q"),
            "credit_spread": daily(spread, RELEASE_LAGS["rates"], "M"),
            "credit_stress": daily(stress.where(spread.rolling(12).mean().notnull()),
                                   RELEASE_LAGS["rates"], "M"),
        })
        g, i = ds["growth_up"], ds["inflation_up"]
        names = {(1.0, 0.0): "goldilocks", (1.0, 1.0): "reflation",
                 (0.0, 1.0): "stagflation", (0.0, 0.0): "deflation"}
        regime = np.full(len(index), "", dtype=object)
        for (gv, iv), name in names.items():
            regime[(g.values == gv) & (i.values == iv)] = name
        ds["regime"] = ("time", regime.astype(str))
        return ds.assign_attrs(window=f"{ds['gdp_growth'].dropna('time').indexes['time'][0].date()}"
                               f" .. {ds['gdp_growth'].dropna('time').indexes['time'][-1].date()}"
                               if ds["gdp_growth"].notnull().any() else "empty",
                               release_lags_days=str(RELEASE_LAGS))

    # ---- report --------------------------------------------------------------------
    def report_data(self, window=63, max_lag=5) -> dict:
        """What ``report`` draws, as data.

        Parameters
        ----------
        {{report_args}}

        Returns
        -------
        dict
            ``correlations`` (full window), ``lead_lag`` (no rows when no pair overlaps
            on enough returns), ``commodity_beta`` (rolling
            betas on the first commodity, or None) and ``macro`` (growth_up,
            inflation_up, credit_stress as one (signal, time) DataArray).

        Examples
        --------
        {{two_equities}}
        >>> out = cm.report_data(max_lag=2)
        >>> sorted(out), out["commodity_beta"], out["macro"].dims
        (['commodity_beta', 'correlations', 'lead_lag', 'macro'], None, ('signal', 'time'))
        """
        try:
            lead_lag = self.lead_lag(max_lag=max_lag)
        except DataError:   # no pair long enough: the other panels are still worth drawing
            lead_lag = pd.DataFrame(columns=["leader", "follower", "lag", "transfer_entropy",
                                             "significant"])
        out = {"correlations": self.correlations(), "lead_lag": lead_lag,
               "commodity_beta": None}
        classes = self.asset_classes()
        if "commodity" in classes:
            ds, _ = self.commodity_influence(commodity=classes["commodity"][0], window=window)
            out["commodity_beta"] = ds["beta"]
        macro = self.macro_signals()[["growth_up", "inflation_up", "credit_stress"]]
        out["macro"] = macro.to_dataarray("signal")
        return out

    def report(self, window=63, max_lag=5):
        """A bokeh column of ``report_data`` (``ql.plots.crossmarket_figure``).

        Correlation heatmap, lead-lag network of the significant pairs, rolling betas on
        oil (when present) and the macro regimes.

        Parameters
        ----------
        {{report_args}}

        Returns
        -------
        bokeh.models.Column

        Examples
        --------
        {{two_equities}}
        >>> type(cm.report(max_lag=2)).__name__
        'Column'
        """
        from quantlab import plots  # lazy: the face imports bokeh; research must not

        return plots.crossmarket_figure(self.report_data(window=window, max_lag=max_lag))


_EXACT = np.finfo(float).eps   # a residual sum of squares this small against the total: 0


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation over the rows where both are finite (pandas' pairwise
    ``Series.corr``); NaN with fewer than 2 such rows or a constant side."""
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 2:
        return np.nan
    with np.errstate(invalid="ignore", divide="ignore"):   # a constant side: NaN
        return float(np.corrcoef(a[ok], b[ok])[0, 1])


def _granger_p(y: np.ndarray, x: np.ndarray, k: int) -> float:
    """p-value of the Granger F test that x's last ``k`` values add nothing to y's own last
    ``k`` in predicting y: statsmodels' ``grangercausalitytests(np.column_stack([y, x]),
    [k])[k][0]["ssr_ftest"][1]``, the same operations bit for bit.

    Computed here from statsmodels' pieces because grangercausalitytests fits with
    ``OLS.fit()``, which warns (SingularMatrixWarning) when the leader's lags repeat the
    follower's (one series added under two names); silencing that needs a warnings
    filter, process-wide and not thread-safe. The F test needs only the residual sums of
    squares of the two fits (pseudo-inverse, rank from its singular values, as
    statsmodels): a repeated series gives F = 0, p = 1, as before. Where statsmodels
    raised InfeasibleTestError: a constant lagged column (a series that moves only in
    its first k returns of the overlap) gives NaN, no test, and lead_lag goes on with
    the other pairs. y fitted exactly by both series' past (one a shifted copy of the
    other) has F = inf: p = 0 (it was a DataError, the whole call lost); y fitted by its
    own past alone, or constant over the regression, leaves nothing to test: NaN; so do
    own lags, or x's, collinear to rounding (their standardised singular values 1e-6
    apart: a level growing by a constant factor), whose pseudo-inverse fit was noise."""
    from scipy import stats  # lazy: scipy/statsmodels load in 0.5 s; only lead_lag needs them
    from statsmodels.tools.tools import add_constant, pinv_extended  # lazy: as scipy
    from statsmodels.tsa.tsatools import lagmat2ds  # lazy: as scipy

    def ssr_df(endog, exog):
        pinv, singular = pinv_extended(exog)
        resid = endog - np.dot(exog, np.dot(pinv, endog))
        rank = np.linalg.matrix_rank(np.diag(singular))
        return np.dot(resid, resid), float(exog.shape[0]) - rank

    dta = lagmat2ds(np.column_stack([y, x]), k, trim="both", dropex=1)
    dta = dta[np.isfinite(dta).all(1)]   # rows touching a hole (NaN bars) are no sample
    own = add_constant(dta[:, 1:k + 1], prepend=False)
    joint = add_constant(dta[:, 1:], prepend=False)
    if joint.shape[1] == dta.shape[1] - 1 or (joint.max(0) == joint.min(0)).sum() != 1:
        return np.nan   # a lagged column constant: no test (lead_lag's docstring)
    def one_line(lags):   # lagged columns collinear to rounding (an accruing level:
        lags = lags - lags.mean(0)   # y_t = 1.0001 y_t-1): their fit is noise
        sv = np.linalg.svd(lags / np.linalg.norm(lags, axis=0), compute_uv=False)
        return sv[-1] < 1e-6 * sv[0]

    # y's own lags (p was 1e-19) or x's (p 0.66 or 0.71 by the CPU's rounding): no test
    if one_line(dta[:, 1:k + 1]) or one_line(dta[:, k + 1:]):
        return np.nan
    ssr_own, _ = ssr_df(dta[:, 0], own)
    ssr, df_resid = ssr_df(dta[:, 0], joint)
    centred = dta[:, 0] - dta[:, 0].mean()
    tss = np.dot(centred, centred)
    if not tss > 0 or df_resid <= 0 or ssr_own / tss < _EXACT:
        return np.nan   # nothing left for the leader to explain: no test
    if ssr / tss < _EXACT:   # the leader's past explains what the follower's cannot: F = inf
        return 0.0
    f = (ssr_own - ssr) / ssr / k * df_resid
    return float(stats.f.sf(f, k, df_resid))


def _holm(p) -> np.ndarray:
    """Holm's step-down adjusted p-values (monotone, capped at 1) of the tests made: a
    NaN (no test) stays NaN and is not counted."""
    p = np.asarray(p, dtype=float)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested])]
    m = len(order)
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.full(len(p), np.nan)
    out[order] = np.minimum(adj, 1.0)
    return out
