"""Tear-sheet data: the tables and series a tear sheet shows, as pandas objects.

:func:`summary_table` (strategy beside benchmark, values of ``ql.metrics``, formatted by
``ql.fmt``), :func:`drawdown_table` (the top-5 drawdowns), :func:`monthly_returns` and
:func:`yearly_returns`, :func:`rolling_stats` (rolling Sharpe ratio and volatility) and
:func:`trade_list`; :func:`result_inputs` collects a BacktestResult's inputs for the
drawing, ``ql.plots.tearsheet`` (this module draws nothing: the face does).
``summary_text``/``summary_html`` are a BacktestResult's short repr.

Each takes one return series on ``time`` (pandas Series or DataArray); anything else is a
TypeError, a second dim a ValueError, ±inf or an unsorted time a ``DataError``, each naming
the argument. NaN returns are "no observation": skipped by the metrics, a flat step on
the curves.
Equity = capital · Π(1 + r); drawdowns are measured from the running peak including the
starting capital (as ``ql.metrics.max_drawdown``).
"""
from __future__ import annotations

import html
import unicodedata
import warnings

import numpy as np
import pandas as pd
import xarray as xr

from quantlab import _validate, calendar, fmt, metrics
from quantlab.data import shifted
from quantlab.errors import DataError

__all__ = ["drawdown_table", "monthly_returns", "yearly_returns", "rolling_stats",
           "summary_table", "trade_list", "result_inputs", "summary_text",
           "summary_html", "underwater"]

MAX_COLUMNS = 64   # every column's data is embedded in the page: bound the HTML size
SUMMARY = ("total_return", "annual_return", "annual_volatility", "sharpe_ratio",
           "sortino_ratio", "calmar_ratio", "max_drawdown", "drawdown_duration",
           "recovery_time", "value_at_risk", "conditional_value_at_risk", "tail_ratio",
           "stability_of_timeseries", "win_rate", "profit_factor")
PAIRED = ("alpha", "beta", "information_ratio", "tracking_error", "up_capture",
          "down_capture")
HEADLINE = ("total_return", "annual_return", "sharpe_ratio", "max_drawdown", "n_trades",
            "fees_paid")
TRADE_COLUMNS = ("entry_time", "exit_time", "pnl", "exit_reason")
_EXTRA = ("n_trades", "fees_paid", "turnover", "exposure", "trade_win_rate",
          "trade_profit_factor")


# --------------------------------------------------------------------------- inputs

def _as_returns(name, x) -> xr.DataArray:
    """A DataArray with ``time`` first (pd.Series/DataFrame accepted), float64."""
    if isinstance(x, (pd.Series, pd.DataFrame)):
        idx = x.index
        if isinstance(idx, pd.DatetimeIndex) and idx.tz is not None:
            idx = idx.tz_convert(None)   # UTC wall time: xarray holds naive datetimes
        if isinstance(x, pd.Series):
            x = xr.DataArray(x.to_numpy(), dims=("time",), coords={"time": idx})
        else:
            for i, c in enumerate(x.columns):   # before str(): None/NaN would read 'nan'
                _check_label(name, "column", i, c)
            x = xr.DataArray(x.to_numpy(), dims=("time", "column"),
                             coords={"time": idx, "column": [str(c) for c in x.columns]})
    if not isinstance(x, xr.DataArray):
        raise TypeError(f"{name} must be an xarray DataArray or a pandas Series/DataFrame "
                        f"with a time index, got {type(x).__name__}")
    _validate.coords(x, dims=("time",), what=name)
    _validate.real_array(name, x.dtype)
    t = x["time"].values
    if not np.issubdtype(t.dtype, np.datetime64):
        raise DataError(f"{name}'s time coordinate must hold datetimes, got dtype {t.dtype}")
    if t.size > 1 and not (t[1:] > t[:-1]).all():
        raise DataError(f"{name}'s time coordinate must be strictly increasing (sorted, no "
                        "duplicate timestamps): compounding needs the order of the periods")
    x = x.astype(np.float64).transpose("time", ...)
    if x.chunks is not None:   # dask-backed (an out-of-core backtest's): every figure draws
        # it whole, so loaded once here, not once per metric and figure (59 reads of a
        # streamed result's store: its tear sheet took 11.9 s against 4.8 s in memory)
        x = x.compute()
    if np.isinf(x.values).any():
        raise DataError(f"{name} holds ±inf; a return must be finite (NaN = no observation)")
    return x


def _columns(r: xr.DataArray) -> list[tuple[str, dict]]:
    """(label, selection) per combination of the non-time dims, bounded before building."""
    others = [d for d in r.dims if d != "time"]
    n = int(np.prod([r.sizes[d] for d in others])) if others else 1
    if n > MAX_COLUMNS:
        shape = ", ".join(f"{d}: {r.sizes[d]}" for d in others)
        raise ValueError(f"returns has {n} columns ({shape}); a tear sheet embeds every "
                         f"column, at most {MAX_COLUMNS}: select some with .sel()/.isel() "
                         "first")
    if n == 0:
        raise ValueError("returns has no columns (a non-time dim of size 0)")
    if not others:
        return [("strategy", {})]
    plain = ("asset", "column")   # named by their value; parameters as name=value
    for d in set(others) & set(plain):
        for i, v in enumerate(r[d].values):
            _check_label("returns", d, i, v)
    idx = pd.MultiIndex.from_product([r[d].values for d in others], names=others)
    labels = [" · ".join(str(v) if d in plain else f"{d}={v}" for d, v in zip(others, key))
              for key in idx]
    # the Select finds a column by its label, and a reader tells them apart by eye:
    # labels equal once spaces are stripped and Unicode is normalised (NFC) are repeats
    seen = [unicodedata.normalize("NFC", s).strip() for s in labels]
    if len(set(seen)) < len(seen):
        dup = sorted({s for s, k in zip(labels, seen) if seen.count(k) > 1})
        raise DataError(f"returns has repeated column labels {dup} (compared without "
                        "surrounding spaces, in Unicode NFC); make them unique")
    return [(s, dict(zip(others, key))) for s, key in zip(labels, idx)]


def _check_label(name, dim, i, v) -> None:
    """A column label must be a visible name: not missing (None/NaN/NaT) nor blank."""
    if (pd.api.types.is_scalar(v) and pd.isna(v)) or not str(v).strip():
        raise DataError(f"{name} {dim} {i} has no label ({v!r}): name every column (the "
                        "tear sheet's Select and tables show it)")


def _pick(da, sel):
    """da at the column's coordinates it has (a benchmark or positions may have fewer)."""
    if da is None:
        return None
    return da.sel({d: v for d, v in sel.items() if d in da.dims})


def _periods(periods, returns):
    """Bars per year: ``periods`` (an integer >= 1), else the returns' calendar as
    ``ql.metrics`` infers it (its ``periods_per_year`` attr, else its time index: 365 for
    daily bars 7 days a week, 8760 for hourly 24/7), else 252. A fixed 252 annualised a
    24/7 series unlike ``ql.metrics`` (an hourly Sharpe ratio 6x too small)."""
    if periods is not None:
        return _validate.integer("periods", periods, 1)
    return calendar.periods_for(returns, default=252)


# --------------------------------------------------------------------------- computations

def _equity(r: np.ndarray, capital: float) -> np.ndarray:
    return capital * np.cumprod(1.0 + np.nan_to_num(r, nan=0.0))


def underwater(equity, capital: float) -> np.ndarray:
    """Drawdown of an equity curve below its running peak, the starting ``capital``
    counted as a peak (a first bar that loses is under water): eq / max(capital,
    eq[..t]) - 1, <= 0. The one formula of the tear sheet, ``res.plot()``, the
    deployment dashboard, StrategyExplorer and the risk report.

    Parameters
    ----------
    equity : array-like
        1-D equity values (NaN skipped by the peak).
    capital : float
        The value before the first bar (a backtest's ``init_cash``), > 0.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> from quantlab import tearsheet
    >>> tearsheet.underwater([90.0, 110.0, 99.0], 100.0).round(3).tolist()
    [-0.1, 0.0, -0.1]
    """
    # "3" was an AxisError (np.r_ reads a string as its axis), None a bare TypeError, 0
    # or NaN no start at all
    capital = _validate.number("capital", capital, 0, lo_open=True)
    eq = np.asarray(equity, dtype=np.float64)
    peak = np.fmax.accumulate(np.r_[capital, eq])[1:]   # the start counts as a peak
    return eq / peak - 1.0


def drawdown_table(returns, capital: float = 1.0, top: int = 5) -> pd.DataFrame:
    """The ``top`` deepest drawdowns of a 1-D return series.

    Start (the peak's bar), trough, recovery (first bar back at the peak; NaT if not yet),
    depth (<= 0) and length (the periods under water with a return, as ``ql.metrics``
    counts them: the longest is ``drawdown_duration``).

    Parameters
    ----------
    returns : array-like, pandas.Series or xarray.DataArray
        1-D simple returns (on ``time`` for dates).
    capital : float, default 1.0
        Starting value of the equity, > 0.
    top : int, default 5
        Rows to keep, >= 0.

    Returns
    -------
    pandas.DataFrame
        Columns start, trough, recovery, depth, length; deepest first.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> r = ql.data.returns(ds["close"].sel(asset="IBM"))
    >>> ql.tearsheet.drawdown_table(r, top=2).round({"depth": 4})
           start     trough   recovery   depth  length
    0 2000-09-01 2000-12-21        NaT -0.3889     170
    1 2000-03-27 2000-07-06 2000-08-25 -0.2010     105
    """
    capital = _validate.number("capital", capital, 0, None, lo_open=True)   # 0, NaN: no rows
    top = _validate.integer("top", top, 0)   # -1 kept all but the shallowest
    r = _one_d("returns", returns)
    t = pd.DatetimeIndex(r["time"].values)
    dd = underwater(_equity(r.values, capital), capital)
    under = dd < 0
    edges = np.diff(np.r_[0, under.astype(np.int8), 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # [s, e)
    # lengths count what ql.metrics counts: the periods under water with a return (the
    # peak-to-recovery span, holidays included, read 355 or 340 bars beside the summary's
    # "Longest drawdown" of 354 or 278)
    seen = np.r_[0, np.cumsum(np.isfinite(r.values))]
    rows = []
    for s, e in zip(starts, ends):
        trough = s + int(np.argmin(dd[s:e]))
        peak = max(s - 1, 0)
        rec = e if e < len(dd) else None
        rows.append({"start": t[peak], "trough": t[trough],
                     "recovery": t[rec] if rec is not None else pd.NaT,
                     "depth": float(dd[trough]), "length": int(seen[e] - seen[s])})
    out = pd.DataFrame(rows, columns=["start", "trough", "recovery", "depth", "length"])
    return out.sort_values("depth", kind="stable").head(top).reset_index(drop=True)


def monthly_returns(returns) -> pd.Series:
    """Compounded calendar-month returns of a 1-D series (NaN: a month without data).

    Parameters
    ----------
    returns : pandas.Series or xarray.DataArray
        1-D simple returns on ``time``.

    Returns
    -------
    pandas.Series
        Indexed by month end.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> r = ql.data.returns(ds["close"].sel(asset="IBM"))
    >>> ql.tearsheet.monthly_returns(r).head(3).round(4)
    2000-03-31    0.1807
    2000-04-30   -0.0580
    2000-05-31   -0.0364
    Freq: ME, dtype: float64
    """
    return _compounded(returns, "ME")



def _one_d(name, x) -> xr.DataArray:
    """A checked 1-D return series on ``time`` (``_as_returns``, one column only)."""
    r = _as_returns(name, x)
    if r.ndim != 1:
        raise ValueError(f"{name} must be one series on time, got dims {dict(r.sizes)}: "
                         "select one column first")
    return r


def _series(returns, name="returns") -> pd.Series:
    """A checked 1-D return series (pandas Series or DataArray on ``time``) as a Series."""
    r = _one_d(name, returns)
    return pd.Series(r.values, index=pd.DatetimeIndex(r["time"].values))


def yearly_returns(returns) -> pd.Series:
    """Compounded calendar-year returns of a 1-D series (NaN: a year without data).

    Parameters
    ----------
    returns : pandas.Series or xarray.DataArray
        1-D simple returns on ``time``.

    Returns
    -------
    pandas.Series
        Indexed by year end.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> r = ql.data.returns(ds["close"].sel(asset="IBM"))
    >>> ql.tearsheet.yearly_returns(r).round(4)
    2000-12-31   -0.1491
    2001-12-31    0.3879
    Freq: YE-DEC, dtype: float64
    """
    return _compounded(returns, "YE")


def _compounded(returns, rule: str) -> pd.Series:
    """Returns compounded per calendar period ``rule``: prod(1 + r) - 1 (NaN: no data)."""
    return (1.0 + _series(returns)).resample(rule).prod(min_count=1) - 1.0


def rolling_stats(returns, window: int = 126, periods: int | None = None,
                  risk_free_rate: float = 0.0) -> pd.DataFrame:
    """Rolling annualised Sharpe ratio and volatility of a 1-D series over ``window``
    observations (NaN returns are none, as in ``ql.metrics``: a holiday, a bar before a
    listing).

    Sharpe = mean(r - rf) / std(r) · √periods (``rf`` the per-period rate
    ``(1 + risk_free_rate) ** (1 / periods) - 1``, as ``ql.metrics.sharpe_ratio``),
    volatility = std(r) · √periods, both with ddof=1 over complete windows only (NaN
    before, and on a bar without an observation; a flat window has no Sharpe ratio: NaN).

    Parameters
    ----------
    returns : pandas.Series or xarray.DataArray
        1-D simple returns on ``time``.
    window : int, default 126
        Bars per window, at least 2.
    periods : int, optional
        Bars per year (default: the returns' calendar, as ``ql.metrics`` infers it).
    risk_free_rate : float, default 0.0
        Annual.

    Returns
    -------
    pandas.DataFrame
        Columns ``sharpe_ratio`` and ``volatility`` on the returns' times.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> r = ql.data.returns(ds["close"].sel(asset="IBM"))
    >>> ql.tearsheet.rolling_stats(r, window=126).iloc[-1].round(4)
    sharpe_ratio    0.8766
    volatility      0.5413
    Name: 2001-05-08 00:00:00, dtype: float64
    """
    window = _validate.integer("window", window, 2)
    s = _series(returns)
    periods = _periods(periods, returns)
    rf = _validate.number("risk_free_rate (annual)", risk_free_rate, -1, None, lo_open=True)
    rf_p = (1.0 + rf) ** (1.0 / periods) - 1.0
    # a window longer than the series fills none, as one row longer does (10**30 overflowed
    # pandas' C long); periods as a float (an int beyond int64 made np.sqrt an object loop)
    # over the observations: a backtest's returns are NaN on a holiday (no observation),
    # and each blanked every window holding it (WTI's 19 in cross_market: 17 % of the bars)
    obs = s.dropna()
    window, periods = min(window, obs.size + 1), float(periods)
    w = obs.rolling(window, min_periods=window)
    sd = w.std(ddof=1).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        sharpe = np.where(sd > 0, (w.mean().to_numpy() - rf_p) / sd, np.nan)
    return pd.DataFrame({"sharpe_ratio": sharpe * np.sqrt(periods),
                         "volatility": sd * np.sqrt(periods)}, index=obs.index).reindex(s.index)


def _shown(name, m) -> str:
    v = float(m[name])
    if name == "recovery_time" and np.isnan(v) and float(m["max_drawdown"]) < 0:
        return "not yet"   # metrics: NaN = the max-drawdown peak was never regained
    return fmt.metric(name, v)


# metrics scaled to a year: from less than a year of observations they extrapolate
_ANNUALISED = ("annual_return", "annual_volatility", "sharpe_ratio", "sortino_ratio",
              "calmar_ratio", "alpha", "information_ratio", "tracking_error")
_NO_DRAWDOWN = ("calmar_ratio",)
_NEEDS_MOVES = ("sharpe_ratio", "sortino_ratio", "tail_ratio", "stability_of_timeseries",
                "win_rate", "profit_factor")
_TRADES = ("trade_win_rate", "trade_profit_factor")
# an infinite value's reason where it is not "no losing period" (a constant gain's Sharpe
# ratio was put down to a lack of losses)
_INF_WHY = {"trade_profit_factor": "no losing trade",
            "sharpe_ratio": "returns never vary (volatility 0)"}


def _why(name, m, s, periods, b=None, extra=None) -> str:
    """Why ``name`` (a value of ``m``, the metrics of the returns ``s``) reads n/a, or
    that an annualised value extrapolates less than a year; "" when it needs no note.
    ``b``: the benchmark, for the paired metrics; ``extra``: the backtest's values."""
    v = extra[name] if extra is not None and name in extra else float(m[name])
    n = int(s.notna().sum())
    if name in metrics.registered():   # a user's function: no reason of ours is known
        return "no observation" if n == 0 and not np.isfinite(v) else ""
    if np.isinf(v):   # shown as inf: a ratio over losses, or a spread, that never came
        return _INF_WHY.get(name, "no losing period")
    if np.isfinite(v) or (name == "recovery_time" and float(m["max_drawdown"]) < 0):
        return (f"annualised from {fmt.count(n)} period{'s' * (n != 1)} (a year is "
                f"{fmt.count(periods)})"
                if name in _ANNUALISED and 0 < n < periods else "")
    if name in _TRADES:
        return "no trades" if extra is not None and extra.get("n_trades") == 0 \
            else "no closed trade"
    if n == 0:
        return "no observation"
    if name in PAIRED:
        both = int((s.notna() & b.notna()).sum())
        if both < 2:
            return f"{both} period{'s' * (both != 1)} observed by both; needs 2"
        if name == "information_ratio" and float(m["tracking_error"]) == 0:
            return "tracks the benchmark exactly (tracking error 0)"
        if name in ("up_capture", "down_capture"):
            return f"the benchmark never {'rose' if name == 'up_capture' else 'fell'}"
        if float(np.nanstd(b.to_numpy())) == 0:
            return "benchmark's returns never vary"
        return "returns never vary" if float(m["annual_volatility"]) == 0 else ""
    if n < 2 and name not in _NO_DRAWDOWN:
        return f"{n} observed period; needs 2"
    if name in _NO_DRAWDOWN and float(m["max_drawdown"]) == 0:
        return "no drawdown"
    if name in _NEEDS_MOVES and float(m["annual_volatility"]) == 0:
        return "returns never vary (no position?)"
    if name == "stability_of_timeseries" and (s <= -1).any():   # its fit is on log1p(r)
        return "a period lost all the capital (a return of -100 % or below)"
    return ""


def _over_span(b: xr.DataArray, r: xr.DataArray) -> xr.DataArray:
    """The benchmark on the returns' times, NaN outside the span they observe (first to
    last non-NaN): side by side, both columns measure one period (a strategy listed
    late stood beside its benchmark's whole history)."""
    b = b.reindex(time=r["time"])
    seen = r["time"].values[r.notnull().values]
    return b.where((r["time"] >= seen[0]) & (r["time"] <= seen[-1])) if seen.size else b


def summary_table(returns, benchmark=None, *, periods: int | None = None,
                  risk_free_rate: float = 0.0, extra=None) -> pd.DataFrame:
    """The tear sheet's summary of a 1-D series: one row per metric, strategy beside
    benchmark.

    Rows: start, end and number of the observed (non-NaN) periods, the :data:`SUMMARY`
    metrics of ``ql.metrics`` (``metrics.summary``) and those added by
    ``ql.metrics.register``, with a benchmark the :data:`PAIRED` ones (alpha, beta, ...),
    then ``extra``. ``recovery_time`` is "not yet" when the deepest drawdown has not
    recovered. A value that cannot be computed reads n/a with its reason in ``note``.

    Parameters
    ----------
    returns : pandas.Series or xarray.DataArray
        1-D simple returns on ``time``.
    benchmark : pandas.Series or xarray.DataArray, optional
        1-D returns on the same times.
    periods : int, optional
        Bars per year (default: the returns' calendar, as ``ql.metrics`` infers it).
    risk_free_rate : float, default 0.0
        Annual.
    extra : mapping of str to float, optional
        More rows (metric name -> value), e.g. the backtest metrics ``n_trades``.

    Returns
    -------
    pandas.DataFrame
        Columns ``metric`` (label), ``strategy`` and ``benchmark`` (formatted, ``""``
        without one), ``name`` (metric name), ``value`` (the strategy's number; NaN for
        the start/end/periods rows) and ``note``: why a value reads n/a (no observation,
        one period, no drawdown, returns that never vary, no trades, ...) or that an
        annualised one extrapolates less than a year; ``""`` otherwise.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> r = ql.data.returns(ds["close"].sel(asset="IBM"))
    >>> t = ql.tearsheet.summary_table(r)
    >>> shown = dict(zip(t["name"], t["strategy"]))
    >>> shown["periods"], shown["total_return"], shown["sharpe_ratio"]
    ('299', '+18.1 %', '0.53')
    >>> v = t.set_index("name").loc["sharpe_ratio", "value"]   # the number: ql.metrics'
    >>> round(float(v), 4), round(float(ql.metrics.sharpe_ratio(r)), 4)
    (0.5297, 0.5297)
    """
    r = _one_d("returns", returns)
    b = None if benchmark is None else _over_span(_one_d("benchmark", benchmark), r)
    periods = _periods(periods, r)
    rf = _validate.number("risk_free_rate (annual)", risk_free_rate, -1, None, lo_open=True)
    m = metrics.summary(r, benchmark=b, risk_free_rate=rf, annualization=periods)
    mb = None if b is None else metrics.summary(b, risk_free_rate=rf, annualization=periods)
    rs, bs = _series(r), None if b is None else _series(b, "benchmark")

    def head(s):   # the span of the observations the metrics read (a late listing's NaN
        seen = s.index[s.notna().to_numpy()]   # lead showed the index's first date)
        if not len(seen):   # an all-NaN benchmark showed the dates it never observed
            return [fmt.NA, fmt.NA, "0"]
        return [fmt.date(seen[0]), fmt.date(seen[-1]), fmt.count(len(seen))]

    def note(k, own):   # the strategy's reason, and the benchmark's when it differs
        theirs = _why(k, mb, bs, periods) if mb is not None and k in mb else ""
        return "; ".join([own] * bool(own) + [f"benchmark: {theirs}"] * (
            bool(theirs) and theirs != own))

    rows = {"metric": ["Start", "End", "Periods"], "strategy": head(rs),
            "benchmark": ["", "", ""] if bs is None else head(bs),
            "name": ["start", "end", "periods"], "value": [np.nan] * 3,
            "note": ["; ".join(f"{who}no observation" for who, x in
                               (("", rs), ("benchmark: ", bs))
                               if x is not None and not x.notna().any()), "", ""]}
    names = (list(SUMMARY) + list(metrics.registered())
             + (list(PAIRED) if bs is not None else []))
    values = [(k, _shown(k, m), _shown(k, mb) if mb is not None and k in mb else "",
               float(m[k]), note(k, _why(k, m, rs, periods, bs))) for k in names]
    extra = {k: float(v) for k, v in (extra or {}).items()}   # a lazy value: read once
    values += [(k, fmt.metric(k, v), "", v, _why(k, m, rs, periods, extra=extra))
               for k, v in extra.items()]
    for k, shown, shown_b, v, why in values:
        rows["metric"].append(fmt.label(k))
        rows["strategy"].append(shown)
        rows["benchmark"].append(shown_b)
        rows["name"].append(k)
        rows["value"].append(v)
        rows["note"].append(why)
    return pd.DataFrame(rows)


def _check_trades(trades):
    if not isinstance(trades, pd.DataFrame):
        raise TypeError(f"trades must be a pandas DataFrame like res.trades, got "
                        f"{type(trades).__name__}")
    missing = [c for c in TRADE_COLUMNS if c not in trades]
    if missing:
        raise ValueError(f"trades lacks column(s) {missing}; it needs {list(TRADE_COLUMNS)} "
                         "(the layout of res.trades)")


def trade_list(trades) -> pd.DataFrame:
    """The tear sheet's trade list: one row per trade in entry order.

    ``return`` = P&L / entry value of the opening order (``pnl / (|size| · entry_price)``;
    NaN when the frame lacks ``size`` or ``entry_price``).

    Parameters
    ----------
    trades : pandas.DataFrame
        A frame like ``res.trades`` (at least ``entry_time exit_time pnl exit_reason``).

    Returns
    -------
    pandas.DataFrame
        Columns ``asset`` (``""`` when the frame has none), ``entry_time``, ``exit_time``
        (NaT: still open), ``return``, ``pnl``, ``exit_reason``.

    Raises
    ------
    TypeError, ValueError
        If ``trades`` is not a DataFrame or lacks a column.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300)).sel(asset=["IBM"])
    >>> res = ql.backtest(ds, ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds))
    >>> ql.tearsheet.trade_list(res.trades).head(2).round({"return": 4, "pnl": 2})
      asset entry_time  exit_time  return      pnl exit_reason
    0   IBM 2000-03-28 2000-03-29 -0.0286 -1049.82      signal
    1   IBM 2000-04-07 2000-04-17 -0.1128 -3298.81      signal
    """
    _check_trades(trades)
    tr = trades.sort_values("entry_time", kind="stable")   # a portfolio: all assets in order
    with np.errstate(invalid="ignore", divide="ignore"):
        if "size" in tr and "entry_price" in tr:
            ret = tr["pnl"].to_numpy(float) / (tr["size"].abs() * tr["entry_price"]).to_numpy(float)
        else:
            ret = np.full(len(tr), np.nan)
    return pd.DataFrame({"asset": [str(a) for a in tr["asset"]] if "asset" in tr
                         else [""] * len(tr),
                         "entry_time": tr["entry_time"].to_numpy(),
                         "exit_time": tr["exit_time"].to_numpy(), "return": ret,
                         "pnl": tr["pnl"].to_numpy(float),
                         "exit_reason": [str(x) for x in tr["exit_reason"]]})


def _trades_of(trades, sel):
    """The trades of one column (rows whose parameter/asset values match ``sel``)."""
    if trades is None:
        return None
    keep = np.ones(len(trades), bool)
    for d, v in sel.items():
        if d in trades:
            keep &= (trades[d] == v).to_numpy()
    return trades[keep]


def _inputs(returns, benchmark=None, *, trades=None, positions=None, window=None, periods=None,
            capital=1.0, risk_free_rate=0.0, extra=None):
    """The checked inputs of a tear sheet (``ql.plots.tearsheet`` draws them).

    Returns (returns, benchmark, options, columns): ``options`` the checked window,
    periods, capital and rf; ``columns`` one (label, returns, benchmark, trades,
    positions, extra) per combination of the returns' non-time dims."""
    r = _as_returns("returns", returns)
    n = r.sizes["time"]
    if n < 2:
        raise ValueError(f"returns needs at least 2 periods, got {n}")
    opts = {"periods": _periods(periods, r),
            # the default fits a short result (2 bars: "window ... got 126", never given)
            "window": min(126, n) if window is None else _validate.integer("window", window, 2, n),
            "capital": _validate.number("capital", capital, 0, None, lo_open=True),
            "rf": _validate.number("risk_free_rate (annual)", risk_free_rate, -1, None,
                                   lo_open=True)}
    b = None
    if benchmark is not None:
        b = _as_returns("benchmark", benchmark)
        if not set(b.dims) <= set(r.dims):
            raise ValueError(f"benchmark dims {b.dims} must be a subset of the returns' dims "
                             f"{r.dims}")
        if not np.isin(b["time"].values, r["time"].values).any():
            raise DataError("benchmark shares no timestamp with returns")
        b = b.reindex(time=r["time"])
    if positions is not None:
        positions = _as_returns("positions", positions).reindex(time=r["time"])
        own = [d for d in positions.dims if d not in r.dims]
        if len(own) > 1:   # one line per entry of at most one dim the returns lack
            raise ValueError(f"positions may have at most one dim the returns lack (one "
                             f"line per asset), got {own}")
    cols = _columns(r)
    if trades is not None and trades is not False:
        _check_trades(trades)
    else:
        trades = None
    if extra is not None and not isinstance(extra, xr.Dataset):
        raise TypeError(f"extra must be an xarray Dataset, got {type(extra).__name__}")
    if extra is not None and extra.chunks:   # lazy metrics: once, not once per value
        extra = extra.compute()              # (48 computes of 0.2 s, 12 streamed accounts)
    per_col = []
    # nothing to draw for a column without an observation (every figure empty): left
    # out, and said, beside columns with one (a backtest's stock not yet listed)
    empty = [name for name, sel in cols if not np.isfinite(r.sel(sel).values).any()]
    if len(empty) == len(cols):
        raise DataError(f"returns column {empty[0]!r} has no observation (all NaN); drop it")
    if empty:
        warnings.warn(f"tear sheet: returns column(s) {[str(e) for e in empty][:5]} left out: "
                      "no observation (all NaN)", stacklevel=3)
    for name, sel in cols:
        if name in empty:
            continue
        ex = None if extra is None else {k: _pick(extra[k], sel) for k in extra.data_vars}
        if ex and any(v.ndim for v in ex.values()):
            raise ValueError(f"extra must hold one value per returns column; its dims "
                             f"{dict(extra.sizes)} go beyond the returns' {dict(r.sizes)}")
        per_col.append((name, r.sel(sel), _pick(b, sel), _trades_of(trades, sel),
                        _pick(positions, sel), ex))
    return r, b, opts, per_col


# --------------------------------------------------------------------------- results

def _exposure(res) -> xr.DataArray:
    value = (res.positions * res.prices.ffill("time")).fillna(0.0)
    return value / res.equity


def result_inputs(res, benchmark=None, *, trades=True, **kw) -> dict:
    """The tear-sheet inputs of a BacktestResult: keyword arguments of
    ``ql.plots.tearsheet``.

    Its returns, trades, exposure (position value / equity) and backtest metrics
    (``extra``), its periods per year, risk-free rate and ``init_cash`` as the capital.
    ``benchmark="buy_and_hold"`` is the close-to-close return of the prices (per asset;
    the equal-weight mean of the assets' returns for ``group=True``).

    Parameters
    ----------
    res : BacktestResult
        A backtest.
    benchmark : {'buy_and_hold'} or xarray.DataArray, optional
        The benchmark.
    trades : bool or pandas.DataFrame, default True
        True: ``res.trades``; False or None: no trade list; or a frame of trades.
    **kw
        Other options of ``ql.plots.tearsheet``; they override the result's.

    Returns
    -------
    dict
        ``returns``, ``benchmark``, ``trades``, ``positions``, ``periods``, ``capital``,
        ``risk_free_rate``, ``extra`` and the other ``kw``.

    Raises
    ------
    ValueError
        If ``benchmark`` is an unknown string.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300)).sel(asset=["IBM"])
    >>> res = ql.backtest(ds, ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds))
    >>> kw = ql.tearsheet.result_inputs(res, "buy_and_hold")
    >>> sorted(kw), kw["capital"], list(kw["extra"].data_vars)[:2]
    (['benchmark', 'capital', 'extra', 'periods', 'positions', 'returns', 'risk_free_rate', 'trades'], 100000.0, ['n_trades', 'fees_paid'])
    """
    if isinstance(benchmark, str):
        _validate.choice("benchmark", benchmark, ("buy_and_hold",))
        ret = res.prices.ffill("time") / shifted(res.prices.ffill("time")) - 1.0
        benchmark = ret.mean("asset", skipna=True) if res.group else ret
        benchmark = benchmark.rename("buy_and_hold")
    if trades is True:
        kw["trades"] = res.trades
    elif trades is not False and trades is not None:
        if not isinstance(trades, pd.DataFrame):   # "no" was taken for a frame of trades
            raise TypeError(f"trades must be True, False, None or a DataFrame of trades, "
                            f"got {_validate._show(trades)}")
        kw["trades"] = trades
    m = res.metrics()
    kw.setdefault("positions", _exposure(res))
    kw.setdefault("periods", res.periods)
    kw.setdefault("capital", res.init_cash)
    kw.setdefault("risk_free_rate", getattr(res, "risk_free_rate", 0.0))
    kw.setdefault("extra", m[[k for k in _EXTRA if k in m]])
    return {"returns": res.returns, "benchmark": benchmark, **kw}


def _summary_parts(res, max_rows: int = 8):
    keys = [d for d in res.equity.dims if d != "time"]
    n_acc = int(np.prod([res.equity.sizes[d] for d in keys])) if keys else 1
    t = res.equity["time"].values
    acc = f"{n_acc} account{'s' if n_acc != 1 else ''}" + (
        f" ({', '.join(f'{d}: {res.equity.sizes[d]}' for d in keys)})" if keys else "") + (
        f", {'each ' if n_acc > 1 else ''}a portfolio of {res.positions.sizes['asset']} assets"
        if res.group else "")
    span = f"{fmt.date(t[0])} – {fmt.date(t[-1])}, {fmt.count(len(t))} bars, " \
           f"{res.periods} per year, initial cash {fmt.money(res.init_cash)}"
    m = res.metrics()[[k for k in HEADLINE]]
    flat = m.to_dataframe()[list(HEADLINE)] if keys else \
        pd.DataFrame([{k: float(m[k]) for k in HEADLINE}])
    shown = flat.head(max_rows)
    index = shown.index.map(_plain_label) if keys else \
        pd.Index(["portfolio" if res.group else "account"])
    table = pd.DataFrame({fmt.label(k): [fmt.metric(k, v) for v in shown[k]] for k in HEADLINE},
                         index=index)
    more = len(flat) - len(shown)
    how = ["arrays: res.equity, res.cash, res.positions, res.returns (DataArrays)",
           f"tables: res.orders ({fmt.count(len(res.orders))} orders), res.trades "
           f"({fmt.count(len(res.trades))} trades); res.metrics() (every metric), "
           "res.tearsheet() (the full report)"]
    return acc, span, table, more, how


# bidi embeddings, overrides, isolates and marks: an asset named "\u202eXYZ" reversed
# the rest of its summary row where text is shown bidi-aware (a notebook): -38.2 % read
# as % 2.83-; shown as their escapes, as pandas shows a newline in a label
_BIDI_SHOWN = {ord(c): f"\\u{ord(c):04x}" for c in
               "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"}


def _plain_label(label):
    """An account's label (a value, or a tuple over parameter dims) with bidi control
    characters shown as escapes."""
    if isinstance(label, tuple):
        return tuple(_plain_label(v) for v in label)
    return label.translate(_BIDI_SHOWN) if isinstance(label, str) else label


def summary_text(res) -> str:
    """A few lines describing a BacktestResult (its ``__repr__``).

    Parameters
    ----------
    res : BacktestResult

    Returns
    -------
    str

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300)).sel(asset=["IBM"])
    >>> res = ql.backtest(ds, ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds))
    >>> print(ql.tearsheet.summary_text(res))  # doctest: +ELLIPSIS
    BacktestResult: 1 account (asset: 1)
      2000-03-01 – 2001-05-08, 300 bars, 252 per year, initial cash 100,000
            Total return Annual return Sharpe ratio Max drawdown Trades Fees paid
      asset
      IBM         +6.6 %        +5.5 %         0.43      -13.1 %     10         0
    ...
    """
    acc, span, table, more, how = _summary_parts(res)
    lines = [f"BacktestResult: {acc}", f"  {span}", *("  " + ln for ln in
             table.to_string().splitlines())]
    if more:
        lines.append(f"  … {more} more accounts")
    lines += [f"  {h}" for h in how]
    return "\n".join(lines)


def summary_html(res) -> str:
    """The same summary as HTML (its ``_repr_html_``).

    Parameters
    ----------
    res : BacktestResult

    Returns
    -------
    str

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300)).sel(asset=["IBM"])
    >>> res = ql.backtest(ds, ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds))
    >>> ql.tearsheet.summary_html(res)[:39]
    '<div><b>BacktestResult</b>: 1 account ('
    """
    acc, span, table, more, how = _summary_parts(res)
    e = html.escape
    return (f"<div><b>BacktestResult</b>: {e(acc)}<br>{e(span)}"
            f"{table.to_html(escape=True, border=0)}"
            + (f"<i>… {more} more accounts</i><br>" if more else "")
            + f"<small>{'<br>'.join(map(e, how))}</small></div>")
