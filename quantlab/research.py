"""``run_research_analysis``: every strategy on every symbol, in one call (the seed's API)."""
from __future__ import annotations

import difflib
import warnings

import numpy as np
import pandas as pd
import xarray as xr

from quantlab import _progress, _validate, rolling, strategies
from quantlab.backtesting import backtest
from quantlab.compat import ALIASES
from quantlab.data import carried
from quantlab.data import load as load_data
from quantlab.data import returns as simple_returns

__all__ = ["run_research_analysis"]

HEADLINE = ("sharpe_ratio", "total_return", "annual_return", "max_drawdown", "n_trades",
            "fees_paid", "exposure")


def _types(analysis_type) -> list:
    """``analysis_type`` as a non-empty list of names, else an error naming it (None was
    "'NoneType' object is not iterable"; [] returned an empty report)."""
    if isinstance(analysis_type, str):
        return [analysis_type]
    if not isinstance(analysis_type, (list, tuple, np.ndarray, pd.Index)) or not len(analysis_type):
        raise TypeError(f"analysis_type must be a name or a non-empty list of names (e.g. "
                        f"'comprehensive'), got {_validate._show(analysis_type)}")
    return list(analysis_type)


def _strategy_names(analysis_type) -> list[str]:
    types = _types(analysis_type)
    valid = strategies.names() + ["correlation", "comprehensive"]
    out = []
    for t in types:
        if t == "comprehensive":
            out += strategies.names() + ["correlation"]
            continue
        name = ALIASES.get(t, t)
        if name not in valid:
            near = difflib.get_close_matches(t, valid + list(ALIASES), n=1)
            hint = f" Did you mean {near[0]!r}?" if near else ""
            raise ValueError(f"unknown analysis_type {t!r}.{hint} Valid: {', '.join(valid)} "
                             f"(aliases: {', '.join(ALIASES)})")
        out.append(name)
    return list(dict.fromkeys(out))


def _only_comprehensive(analysis_type) -> set[str]:
    """The strategies only ``"comprehensive"`` asks for (not named too): skipped, not an
    error, where the data set cannot run them."""
    types = _types(analysis_type)
    if "comprehensive" not in types:
        return set()
    return set(strategies.names()) - {ALIASES.get(t, t) for t in types}


def _check_symbols(symbols, ds) -> list[str]:
    if isinstance(symbols, str):
        symbols = [symbols]
    elif not isinstance(symbols, (list, tuple, np.ndarray, pd.Index)) or not len(symbols):
        raise TypeError(f"symbols must be a symbol or a non-empty list of them, got "
                        f"{_validate._show(symbols)}")   # None: 'not iterable'; []: empty data
    symbols = list(symbols)
    dup = sorted({str(s) for s in symbols if symbols.count(s) > 1})
    if dup:   # was the backtest's "duplicate asset 'IBM'"
        raise ValueError(f"symbols repeat {dup}; give each symbol once")
    have = [str(a) for a in ds.asset.values]
    for s in symbols:
        if s not in have:
            near = difflib.get_close_matches(s, have, n=1, cutoff=0.5)
            hint = f"did you mean {near[0]}? " if near else ""
            raise ValueError(f"unknown symbol {s!r}: {hint}available: {', '.join(have)}; or load "
                             "your own with ql.data.load_csv(...) and pass data=")
    return symbols


def run_research_analysis(symbols, analysis_type="comprehensive", data=None, start=None,
                          end=None, progress: bool = True, **backtest_kw) -> dict:
    """Run strategies on ``symbols`` and report their backtests.

    Each strategy's signal is computed on the whole universe of ``data`` (default: the
    bundled equities), so cross-sectional strategies rank against all assets, with its
    ``default_inputs``; each symbol is then backtested on its own account with
    ``backtest_kw`` (e.g. ``fees=0.001``). ``"correlation"`` adds, per symbol, its return
    correlation with the others and the universe's 63-bar rolling average pairwise
    correlation.

    Parameters
    ----------
    symbols : str or list of str
        Assets of ``data`` to report.
    analysis_type : str or list of str, default 'comprehensive'
        Registry names (or the seed's short names, aliases), ``"correlation"``, or
        ``"comprehensive"`` (every strategy the data set can run, and the correlation;
        one it lacks variables or assets for is left out with a warning naming it; a
        strategy named explicitly raises instead).
    data : xarray.Dataset, optional
        Prices on (time, asset); default the bundled equities.
    start, end : str or datetime-like, optional
        The period backtested and reported; signals and rolling correlations also read
        the bars of ``data`` before ``start`` (their warmup), none after ``end``.
    progress : bool, default True
        Show a progress bar over the strategies.
    **backtest_kw
        Options of :func:`quantlab.backtest`.

    Returns
    -------
    dict
        ``{symbol: {strategy: {"sharpe_ratio", "total_return", "annual_return",
        "max_drawdown", "n_trades", "fees_paid", "exposure", "signals"}}}`` keyed by
        registry name (the seed's short names are aliases).

    Raises
    ------
    ValueError
        If an ``analysis_type`` or a symbol is unknown (the closest name is suggested),
        a symbol repeats, no bar lies between ``start`` and ``end``, or a strategy named
        explicitly needs variables or assets ``data`` lacks.
    TypeError
        If ``symbols`` or ``analysis_type`` is not a name or a non-empty list of them.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> out = ql.run_research_analysis(["IBM"], "volatility", data=ds, progress=False)
    >>> row = out["IBM"]["volatility_regime"]
    >>> round(row["total_return"], 4), row["n_trades"]
    (-0.0041, 10)
    """
    progress = _validate.flag("progress", progress)   # "no" is truthy: a bar shown
    ds = _validate.dataset("data", data) if data is not None else load_data()
    start, end = _validate.date("start", start), _validate.period_end("end", end)
    # signals and rolling windows read the bars before start (their warmup: a strategy
    # with a 273-bar warmup never traded in a shorter period); the period is reported
    history = ds.sel(time=slice(None, end))
    span = ds.sel(time=slice(start, end))
    if not span.sizes["time"]:   # was "empty data set (time=0, asset=1)", naming neither
        t = ds.indexes["time"]
        raise ValueError(f"no bars between start={start} and end={end}: " + (
            "end is before start" if start is not None and end is not None and end < start
            else f"the data runs from {t[0]} to {t[-1]}" if len(t) else "the data is empty"))
    ds = span
    symbols = _check_symbols(symbols, ds)
    names, optional = _strategy_names(analysis_type), _only_comprehensive(analysis_type)
    # "comprehensive" on a close-only or single-asset data set (sp500_20, vix, wti,
    # cross_market) raised on the first strategy needing volume or a cross-section
    skipped = {n: why for n in names if n in optional
               and (why := strategies.get(n).lacks(history))}
    if skipped:
        warnings.warn(f"run_research_analysis: {len(skipped)} strategies skipped:\n"
                      + "\n".join(f"  {n} {why}" for n, why in skipped.items()),
                      stacklevel=2)
        names = [n for n in names if n not in skipped]
    out = {s: {} for s in symbols}
    for name in _progress.bar(names, "strategies", "strategy", progress and len(names) > 1):
        if name == "correlation":
            r = simple_returns(history["close"]).transpose("time", ...)   # (asset, time): was
            # the rolling average of the closes carried over holidays: one NaN return
            # blanked each 63-bar window holding it (vix, wti, cross_market: all NaN)
            rc = simple_returns(carried(history["close"])).transpose("time", ...)
            c = rolling.corr(rc, 63).sel(time=ds["time"])
            r = r.sel(time=ds["time"])
            matrix = r.to_pandas().corr()   # the dates' correlations, a KeyError 'IBM'
            # mean of the defined off-diagonal entries: (sum - m) / (m (m - 1)) over all m
            # assets counted those not yet listed or out of coverage (the bundled
            # equities before GOOG's listing: 0.224 for 0.615); NaN with fewer than 2
            pair = c.asset.values[:, None] != c.asset_other.values[None, :]
            off = c.where(xr.DataArray(pair, dims=("asset", "asset_other"))).mean(
                ["asset", "asset_other"])
            for s in symbols:
                out[s]["correlation"] = {"with": matrix[s].drop(s),
                                         "rolling_average": off.to_series()}
            continue
        strat = strategies.get(name)
        sig = strat.signal(history, **strat.default_inputs(history)).sel(time=ds["time"])
        res = backtest(ds.sel(asset=symbols), sig.sel(asset=symbols), **backtest_kw)
        m = res.metrics()
        for s in symbols:
            row = {k: float(m[k].sel(asset=s)) for k in HEADLINE}
            row["n_trades"] = int(row["n_trades"])
            row["signals"] = sig.sel(asset=s).to_series()
            out[s][name] = row
    return out
