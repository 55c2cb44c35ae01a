"""Deployment: a researched strategy trading bar by bar on replayed or live data.

``ql.deploy(strategy, **backtest_options)`` -> :class:`Deployment`. Each closed bar goes
through :meth:`Deployment.on_bar`: the strategy's per-bar signal (``strategy.live()``, a
``LiveSignal`` fed every bar from the first history bar) gives the exposure at the new
bar; a strategy without one recomputes its signal over the trailing window of history
it declares (``strategy.warmup`` bars, windows starting on a multiple of
``strategy.period``: see :meth:`Strategy.history_start`), given each asset's last close
before it (a return across a gap is measured from it). The target passes the risk
limits, and the backtest kernel advances one bar from its saved state. The kernel, its
options and its state are those of ``ql.backtest``, so a replay trades exactly as the
backtest of the same bars (orders, fills, equity). Paper trading only: no broker.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as _dt
import hashlib
import io
import json
import math
import os
import re
import secrets
import stat
import time as _time
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from quantlab import __version__, _validate, fmt, strategies
from quantlab._kernels.backtest import REASONS, SimState
from quantlab._kernels.data import check_bars as _check_bars
from quantlab.backtesting import dispatch
from quantlab.backtesting.options import BacktestOptions, last_valid
from quantlab.backtesting.result import BacktestResult, from_run
from quantlab.calendar import bar_size, periods_for
from quantlab.data import (CARRY_BARS, MIN_PRICE, asset_names, io_error, load_csv,
                           user_path, validate)
from quantlab.engine.feeds import FeedError
from quantlab.errors import DataError

__all__ = ["deploy", "Deployment", "RiskLimits", "FORMAT"]

FORMAT = 2        # checkpoint format version (1: one npz rewritten whole; 2: segments)
BAR_VARS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class RiskLimits:
    """Pre-trade limits on each bar's targets (inf / 0 = off). A target that breaks one
    is changed as named below and the change recorded in ``Deployment.rejections``.

    ``max_position``: |target exposure| per asset (clipped to it); ``max_order_value``:
    the value an order may trade, in currency, as the deployment's kernel places it (the
    asset keeps its position; not with ``rebalance="daily"``);
    ``max_positions``: assets held at once (the smallest new positions keep their old
    target); ``max_concentration``: |target| / Σ|targets| (clipped); ``max_drawdown_pct``:
    equity below (1 - it) x its peak trips the kill switch: everything is closed and no
    new position is opened until :meth:`Deployment.reset_kill_switch`.

    Parameters
    ----------
    max_position : float, default inf
        Largest |target exposure| per asset (> 0).
    max_order_value : float, default inf
        Largest value one order may trade, in currency (> 0).
    max_positions : int, default 0
        Most assets held at once (0 = no limit).
    max_concentration : float, default inf
        Largest share |target| / Σ|targets| of one asset (> 0).
    max_drawdown_pct : float, default 1.0
        Kill switch: equity at or below (1 - it) x its peak, in (0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from quantlab.live import RiskLimits
    >>> lim = RiskLimits(max_position=0.5)
    >>> target, rejected = lim.apply(np.array([0.8, -0.2]), np.zeros(2),
    ...                              np.array([10.0, 20.0]), 1000.0, killed=False)
    >>> target, rejected
    (array([ 0.5, -0.2]), [(0, 'max_position', 0.8, 0.5)])
    >>> RiskLimits(max_drawdown_pct=0)
    Traceback (most recent call last):
    ...
    ValueError: risk max_drawdown_pct (a fraction of the peak) must be in (0, 1], got 0
    """

    max_position: float = math.inf
    max_order_value: float = math.inf
    max_positions: int = 0
    max_concentration: float = math.inf
    max_drawdown_pct: float = 1.0

    def __post_init__(self):
        for k, lo in (("max_position", 0), ("max_order_value", 0), ("max_concentration", 0)):
            object.__setattr__(self, k, _validate.number(f"risk {k}", getattr(self, k), lo,
                                                         lo_open=True, finite=False))
        object.__setattr__(self, "max_positions",
                           _validate.integer("risk max_positions", self.max_positions, 0))
        object.__setattr__(self, "max_drawdown_pct", _validate.number(
            "risk max_drawdown_pct (a fraction of the peak)", self.max_drawdown_pct, 0, 1,
            lo_open=True))

    def apply(self, target: np.ndarray, held: np.ndarray, price: np.ndarray, equity,
              killed: bool, order_value=None) -> tuple[np.ndarray, list]:
        """``target`` after the limits, and the rejections.

        Parameters
        ----------
        target : numpy.ndarray
            Exposure per asset wanted (NaN = hold).
        held : numpy.ndarray
            Shares held per asset now.
        price : numpy.ndarray
            The last valid price per asset (values the holdings).
        equity : float or numpy.ndarray
            Equity of the account each asset trades in (one float: one account).
        killed : bool
            The drawdown kill switch is on: close everything, open nothing.
        order_value : callable, optional
            ``order_value(targets)`` -> per asset, the value the orders of ``targets``
            trade (0: none). A deployment passes its kernel's: a step run on a copy
            of its state; None: ``|target x equity - held x
            price|`` for a finite target (one account, exposure = target, every target
            an order).

        Returns
        -------
        (numpy.ndarray, list)
            The targets after the limits, and [(asset index, reason, wanted, given)].

        Raises
        ------
        ValueError
            An array not of one value per asset (``equity`` may be one float).

        Examples
        --------
        >>> import numpy as np
        >>> from quantlab.live import RiskLimits
        >>> RiskLimits().apply(np.array([0.5, np.nan]), np.array([0.0, 10.0]),
        ...                    np.array([10.0, 20.0]), 1000.0, killed=True)
        (array([0., 0.]), [(0, 'kill_switch', 0.5, 0.0), (1, 'kill_switch', nan, 0.0)])
        >>> RiskLimits(max_order_value=300).apply(np.array([0.5, 0.1]), np.zeros(2),
        ...                                       np.array([10.0, 20.0]), 1000.0, False)
        (array([nan, 0.1]), [(0, 'max_order_value', 0.5, nan)])
        """
        # floats: a copy of an int target took the limits' 0.3 as 0 (and NaN not at all)
        target = np.asarray(target, dtype=np.float64)
        out, rej = target.copy(), []
        for name, a in (("held", held), ("price", price), ("equity", equity)):
            # a length-1 array broadcast silently: every asset valued by the first's
            if np.shape(a) != out.shape and not (name == "equity" and np.ndim(a) == 0):
                raise ValueError(f"{name} has shape {np.shape(a)}, the target {out.shape}: "
                                 "one value per asset" + (" (or one float: one account)"
                                                          if name == "equity" else ""))
        equity = np.broadcast_to(np.asarray(equity, dtype=np.float64), out.shape)
        with np.errstate(divide="ignore", invalid="ignore"):   # equity <= 0: not used
            now = np.where(np.isfinite(price) & (equity > 0), held * price / equity, 0.0)

        def change(i, reason, value):
            rej.append((int(i), reason, float(target[i]), float(value)))
            out[i] = value

        if killed:    # close everything, open nothing
            for i in np.flatnonzero((np.isfinite(out) & (out != 0)) | (now != 0)):
                change(i, "kill_switch", 0.0)
            return out, rej
        # each rule picks its assets with one vectorised test (NaN compares False): the
        # Python loop runs over the changed assets only (500 assets cost no more)
        for i in np.flatnonzero(np.abs(out) > self.max_position):
            change(i, "max_position", math.copysign(self.max_position, out[i]))
        gross = np.nansum(np.abs(np.where(np.isfinite(out), out, now)))
        if np.isfinite(self.max_concentration) and gross > 0:
            for i in np.flatnonzero(np.abs(out) / gross > self.max_concentration):
                change(i, "max_concentration",
                       math.copysign(self.max_concentration * gross, out[i]))
        if np.isfinite(self.max_order_value):
            if order_value is None:
                def order_value(w):
                    with np.errstate(invalid="ignore"):
                        return np.where(np.isfinite(w), np.abs(w * equity - held * price), 0)
            big = np.zeros(len(out), dtype=bool)
            while True:   # a rejected target holds the one in force: a group's scale moves
                with np.errstate(invalid="ignore"):
                    new = ~big & np.isfinite(price) & np.isfinite(out) & \
                        (order_value(np.where(big, np.nan, out)) > self.max_order_value)
                if not new.any():
                    break
                big |= new
            for i in np.flatnonzero(big):
                change(i, "max_order_value", np.nan)     # keeps its position
        if self.max_positions:
            after = np.where(np.isfinite(out), out, now)
            new = [i for i in np.flatnonzero((after != 0) & (now == 0))]
            excess = int((after != 0).sum()) - self.max_positions
            for i in sorted(new, key=lambda i: abs(after[i]))[:max(excess, 0)]:
                change(i, "max_positions", np.nan)
        return out, rej


class _Bars:
    """The buffered bars: one (capacity, asset) array per variable and a time array;
    rows [lo, hi) are live. A push writes row hi; when the array is full the live rows
    move to the front (or the capacity doubles), so a bar costs O(1) amortised and a
    window is a view, not a copy. ``keep``: rows kept (None: all)."""

    def __init__(self, keep):
        self.keep, self.seen, self.lo, self.hi = keep, 0, 0, 0
        self.data: dict = {}
        self.time = np.empty(0, "datetime64[ns]")

    def __len__(self):
        return self.hi - self.lo

    def push(self, t, values: dict) -> None:
        if not self.data:
            cap = max(64, 2 * (self.keep or 0))
            self.data = {v: np.empty((cap, len(a))) for v, a in values.items()}
            self.time = np.empty(cap, "datetime64[ns]")
        if self.hi == len(self.time):
            n = len(self)
            grow = self.keep is None or 2 * n > len(self.time)
            size = 2 * len(self.time) if grow else len(self.time)
            for v, a in self.data.items():
                new = np.empty((size, a.shape[1])) if grow else a
                new[:n] = a[self.lo:self.hi]
                self.data[v] = new
            t_new = np.empty(size, "datetime64[ns]") if grow else self.time
            t_new[:n] = self.time[self.lo:self.hi]
            self.time, self.lo, self.hi = t_new, 0, n
        for v, a in self.data.items():
            a[self.hi] = values[v]
        self.time[self.hi] = t
        self.hi += 1
        self.seen += 1
        if self.keep is not None:
            self.lo = max(self.lo, self.hi - self.keep)

    def unpush(self, n_before: int) -> None:
        """Take back the last push, made when ``n_before`` rows were live: a push moves
        the live rows only ahead of the new one, so they are the ``n_before`` rows
        before it."""
        self.hi -= 1
        self.seen -= 1
        self.lo = self.hi - n_before

    def rows(self, i: int = 0) -> dict:
        """Views of the live rows from the i-th on."""
        return {v: a[self.lo + i:self.hi] for v, a in self.data.items()}

    def tail(self, k: int) -> dict:
        return self.rows(max(0, len(self) - k)) if len(self) else {}

    def last(self) -> dict:
        return {v: a[self.hi - 1] for v, a in self.data.items()}

    def times(self) -> np.ndarray:
        return self.time[self.lo:self.hi]

    def last_time(self):
        return self.time[self.hi - 1] if len(self) else None


def _resolve(strategy, params):
    """(Strategy, backtest options carried over) from a name, Strategy, class or an
    OptimizationResult (its best parameters and its backtest options)."""
    carried = {}
    if params is not None and not isinstance(params, Mapping):   # "abc": "not a mapping", []
        raise TypeError(f"params must be a dict of parameter values or None, got "
                        f"{_validate._show(params)}")              # ran as no parameters
    if hasattr(strategy, "folds") and hasattr(strategy, "results"):   # WalkForwardResult
        raise TypeError("deploy one fold's search of a walk-forward run, e.g. the last: "
                        "ql.deploy(wfr.results[-1]) (its parameters and backtest options)")
    if hasattr(strategy, "best_params") and hasattr(strategy, "strategy"):
        carried = dict(getattr(strategy, "backtest_options", None) or {})
        params = {**strategy.best_params, **(params or {})}
        strategy = strategy.strategy
    s = strategies.resolve(strategy)
    if params:
        s = strategies.get(s.name, **{**s.params, **params})
    grid = [k for k, v in s.params.items() if isinstance(v, (list, tuple))]
    if grid:
        raise ValueError(f"deploy one parameter combination; {s.name} has lists for "
                         f"{grid} (pick one value each, e.g. from an optimisation)")
    return s, carried


def _check_phase(s, research, history) -> None:
    """Warn when ``history`` starts inside the research bars, but not a whole number of
    ``s.period`` bars after their first: its rebalance bars (counted from the first bar
    a signal is given) are then not those the search backtested."""
    if research is None or history is None or s.period <= 1 or "time" not in history.dims \
            or not history.sizes["time"]:
        return
    t0 = np.datetime64(history["time"].values[0], "ns")
    k = int(np.searchsorted(research, t0))
    if k < len(research) and research[k] == t0 and k % s.period:
        first = str(research[0])[:10]
        warnings.warn(
            f"{s.name} rebalances every {s.period} bars, counted from the first bar it is "
            f"given: history starts {k} bars after the search's first bar ({first}), so "
            f"the deployment rebalances on other bars than the search's backtests. Start "
            f"history {k % s.period} bars earlier, or at {first}", UserWarning, stacklevel=3)


def deploy(strategy, params: dict | None = None, *, universe=None, history=None,
           inputs=None, risk: RiskLimits | dict | None = None, bar=None,
           **backtest_options):
    """Deploy ``strategy`` (a registry name, a Strategy, or an OptimizationResult whose
    chosen parameters and backtest options carry over) as a paper-trading
    :class:`Deployment`.

    ``universe``: the assets (default: those of ``history``, else of the first bar).
    ``history``: bars before the deployment starts (a Dataset), used only to warm up the
    signal; no orders are placed on them. ``inputs``: the strategy's external inputs
    (default: its bundled ``default_inputs`` cut at each bar). ``risk``: a
    :class:`RiskLimits` (or its fields as a dict). ``bar``: the size of the bars it
    trades (default: that of ``history``'s bars). ``backtest_options``: those of
    ``ql.backtest`` (init_cash, fees, slippage, execution, max_leverage, sl_stop, ...).

    Parameters
    ----------
    strategy : str, Strategy or OptimizationResult
        What to trade.
    params : dict, optional
        Strategy parameters (one value each), over the defaults or the optimised ones.
    universe : list of str, optional
        The assets (default: those of ``history``, else of the first bar).
    history : xarray.Dataset, optional
        Bars before the start, to warm up the signal (no orders on them); closes alone
        may be a DataArray, a pandas DataFrame (time by asset) or a Series.
    inputs : dict, optional
        The strategy's external inputs (default: its ``default_inputs`` at each bar);
        saved with :meth:`Deployment.checkpoint`.
    risk : RiskLimits or dict, optional
        Pre-trade limits (default: none).
    bar : str, optional
        The bar size, a pandas frequency ('1min', '1D'; default: ``history``'s, read by
        ``ql.calendar.bar_size``). Saved with each checkpoint: a resume with bars of
        another size is refused (:meth:`Deployment.check_bar`).
    **backtest_options
        Those of ``ql.backtest``.

    Returns
    -------
    Deployment

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 70))
    >>> dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
    ...                 history=ds.isel(time=slice(0, 60)), fees=0.001)
    >>> dep.replay(ds.isel(time=slice(60, None)))
    <Deployment ql.strategies.get('volatility_regime', window=10, lookback=20, threshold=0.8,
    target_vol=0.15): 4 assets, 10 bars (2000-05-25 .. 2000-06-08), equity 409,404.98,
    24 orders, 0 rejections>
    """
    s, carried = _resolve(strategy, params)
    _check_phase(s, getattr(strategy, "research_times", None), history)
    options = BacktestOptions(**{**carried, **backtest_options})
    return Deployment(s, options, universe=universe, history=history, inputs=inputs,
                      risk=risk, bar=bar)


class Deployment:
    """A strategy trading bar by bar (paper trading). Build it with :func:`deploy`.

    State, as labelled objects like a BacktestResult: ``equity``, ``cash`` (time[,
    account]), ``positions`` (time, asset; shares), ``signal`` (what the strategy asked
    for), ``targets`` (after the risk limits), ``orders``, ``rejections`` (DataFrames),
    ``latency`` (seconds per decision). Accounts follow ``group`` as in ``ql.backtest``.

    Parameters
    ----------
    strategy : Strategy
        One parameter combination.
    options : BacktestOptions
        Those of ``ql.backtest``.
    universe, history, inputs, risk, bar
        As in :func:`deploy`.

    Attributes
    ----------
    bar : str or None
        The size of the bars it trades (None: unknown, neither given nor read from
        ``history``); saved with its checkpoints.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 70))
    >>> dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
    ...                 history=ds.isel(time=slice(0, 60)), fees=0.001)
    >>> dep = dep.replay(ds.isel(time=slice(60, None)))
    >>> dep.positions.shape, len(dep.orders), dep.universe
    ((10, 4), 24, ['AAPL', 'GOOG', 'IBM', 'MSFT'])
    """

    def __init__(self, strategy, options, *, universe=None, history=None, inputs=None,
                 risk=None, bar=None):
        if history is not None:   # a DataFrame or a string: "has no attribute 'asset'"
            history = _validate.dataset("history", history)
        if options.periods is None:   # annualise (borrow_rate) as ql.backtest of this data
            if history is None and float(options.borrow_rate):   # no bars to tell it by
                raise ValueError("borrow_rate is annualised by the bars' calendar, which a "
                                 "deployment without history= cannot tell (252 business "
                                 "days, 365 a 24/7 market's days): pass periods= or history=")
            options = dataclasses.replace(options, periods=int(round(periods_for(
                history, None, default=252) if history is not None else 252)))
        self.strategy, self.options = strategy, options
        if isinstance(risk, dict):
            risk = RiskLimits(**risk)
        if not isinstance(risk, (RiskLimits, type(None))):   # "x" failed at the first bar
            raise TypeError(f"risk must be a RiskLimits, a dict of its fields or None, got "
                            f"{type(risk).__name__} {_validate._show(risk)}")
        self.risk = risk or RiskLimits()
        if np.isfinite(self.risk.max_order_value) and options.rebalance == "daily":
            # a rejected target holds the one in force, which "daily" trades back to
            # on every bar: the order the limit refused would be placed all the same
            raise ValueError("risk max_order_value keeps a rejected asset's position, which "
                             "rebalance='daily' trades back to its target on every bar: "
                             "use rebalance='on_change' with it")
        self.inputs = inputs
        if universe is None and history is not None:
            universe = history.asset.values.tolist()
        self.universe = None if universe is None else asset_names("universe", universe)
        self._vars: tuple = ()          # set by the history or the first bar
        # the strategy annualises by the bars' calendar, as its research signal read it:
        # a periods= overriding the metrics' annualisation changed its volatility target
        self._signal_periods = (periods_for(history, None, default=options.periods)
                                if history is not None else options.periods)
        # the strategy's per-bar signal (None: each decision recomputes the trailing
        # window); fed every bar from the first history bar, its last output decides
        self._live = self._new_live()
        self._live_out = None
        keep = self._history_needed()
        # enough for the next bar's window, whatever its phase, and the bars before it a
        # carried close comes from (_lead; None: all history)
        self._buf = _Bars(None if keep is None else keep + self._lead())
        self._last_px = None            # the last valid close per asset
        # per asset, the last valid close before the buffered bars, and before the
        # slippage window's first row: ql.data.returns measures the return across a gap
        # from it, so the signal of a trailing window and the slippage need it across a
        # gap that began before them (the latter kept too: O(assets) a bar, not a scan)
        self._prev_close = None
        self._slip_prev = None
        self._stepper = None            # the backtest kernel's prepared step
        self.state = None               # the backtest kernel's state (SimState)
        self._rec = {k: [] for k in ("time", "equity", "cash", "positions", "close",
                                     "signal", "target", "latency", *_REC_EXTRA)}
        self._closes_unknown = 0        # records restored without their closes (older)
        self._orders: list = []
        self._rejections: list = []
        self.killed = False
        self._broken = None             # why bars are refused: a bar's kernel step interrupted
        self._peak = None               # the equity peak (all accounts), from the first bar
        self._last_wall = None
        self.listeners: list = []       # called with each bar's status (CLI, dashboards)
        self.bar = _bar_text(bar)
        if history is not None:
            self._add_history(history)
            if self.bar is None:          # the bar size it was researched on
                self.bar = bar_size(history)

    def _new_live(self):
        live = self.strategy.live(**{k: v for k, v in (self.inputs or {}).items()
                                     if k in self.strategy.inputs})
        if live is not None:
            live.periods = self._signal_periods
        return live

    # the buffered bars' times, first index (over all bars seen) and count
    _times = property(lambda self: self._buf.times())
    _first = property(lambda self: self._buf.seen - len(self._buf))
    _seen = property(lambda self: self._buf.seen)

    # ---- what a bar needs -------------------------------------------------------
    def _required(self) -> set:
        return set(self.strategy.requires) | {"close"} | set(self.options.needs())

    def _pick(self, present) -> tuple:
        """The variables every bar must carry: the OHLCV the first bar (or the history)
        has -- stops and slippage read them as ql.backtest does -- and those needed."""
        return tuple(v for v in BAR_VARS if v in present) + \
            tuple(sorted(self._required() - set(BAR_VARS)))

    def _history_needed(self) -> int | None:
        """Bars kept: the strategy's window (any phase) and the slippage model's. A
        per-bar signal is rebuilt on restore from them: twice its warmup, so the
        statistics its window ranks are each rebuilt from their own full window (and the
        block kernels' blocks before them, see ``_live.rolling_last``)."""
        w = self.strategy.warmup
        if w is None:
            return None
        if self._live is not None:
            w *= 2
        return max(w + self.strategy.period - 1, self.options.history_needed())

    def _add_history(self, history: xr.Dataset) -> None:
        """Validated once as a whole (as ql.backtest does), then buffered row by row."""
        _validate.coords(history, what="history")
        self._vars = self._pick(history.data_vars)
        absent = sorted(self._required() - set(history.data_vars))
        if absent:
            raise DataError(f"history lacks {absent} (needed by {self.strategy.name} and "
                            "the backtest options)")
        # by label text, as bars are matched (_columns): int labels (0, 1) are the
        # universe's '0', '1'; .sel raised a KeyError naming no asset for them and for
        # a universe asset the history lacks
        labels = pd.Index([str(a) for a in history.indexes["asset"]])
        missing = [a for a in self.universe if a not in labels]
        if missing:
            raise DataError(f"history lacks the universe's assets {missing} (it has "
                            f"{labels.tolist()}): give every asset of the universe, with "
                            "NaN values before it has bars")
        if not labels.is_unique:     # validate names the duplicate
            validate(history[list(self._vars)])
        history = validate(history[list(self._vars)].isel(
            asset=labels.get_indexer(self.universe)))
        values = {v: history[v].transpose("time", "asset").values.astype(float)
                  for v in self._vars}
        for i, t in enumerate(history.indexes["time"]):
            self._push((np.datetime64(t, "ns"), {v: values[v][i] for v in self._vars}))

    # ---- bars in ----------------------------------------------------------------------
    def _parse(self, bar) -> tuple:
        """(time, {variable: values in universe order}) of one bar, checked; raises
        DataError naming the problem and leaves the state unchanged."""
        if not isinstance(bar, xr.Dataset):
            raise TypeError(f"a bar is an xarray Dataset row (ds.isel(time=i)), got "
                            f"{type(bar).__name__}")
        if "time" in bar.dims:
            if bar.sizes["time"] != 1:
                raise DataError(f"on_bar takes one bar; this has {bar.sizes['time']} "
                                "(use replay() for many)")
            bar = bar.isel(time=0)
        if "time" not in bar.coords or "asset" not in bar.dims:
            raise DataError("a bar needs a 'time' coordinate and an 'asset' dim "
                            "(ds.isel(time=i) of a quantlab Dataset)")
        t = _bar_time(bar["time"].values)
        self._check_time(t)
        values = self._columns(bar, f"bar at {str(t)[:19]}", ("asset",))
        self._check_row(t, values, self.universe or [str(a) for a in bar.indexes["asset"]])
        return t, values

    def _check_time(self, t) -> None:
        if np.isnat(t):   # NaT compares False to every time: it passed, and so did every
            # bar after it, in any order
            last = self._buf.last_time()
            raise DataError("bar with a missing time (NaT)" + (
                "" if last is None else f" after the bar at {str(last)[:19]}") +
                ": each bar needs its timestamp")
        last = self._buf.last_time()
        if last is not None and t <= last:
            what = "duplicated" if t == last else "out of order"
            raise DataError(f"bar at {str(t)[:19]} is {what}: the last bar was at "
                            f"{str(last)[:19]}; bars must arrive in time order")

    def _columns(self, data: xr.Dataset, where: str, dims: tuple) -> dict:
        """{variable: values on ``dims`` (the last one 'asset'), universe order} of a bar
        or of many; DataError for missing/unknown assets, missing variables, other dims."""
        index = data.indexes["asset"]
        universe = self.universe or [str(a) for a in index]
        same = self._asset_index is not None and index.equals(self._asset_index)
        if not same:
            assets = [str(a) for a in index]
            missing, extra = set(universe) - set(assets), set(assets) - set(universe)
            if missing or extra or len(set(assets)) != len(assets):
                raise DataError(
                    f"{where}: assets {sorted(assets)} are not the universe "
                    f"{sorted(universe)} (missing {sorted(missing)}, unknown "
                    f"{sorted(extra)}); send every asset, with NaN values where it has no bar")
        vars_ = self._vars or self._pick(data.data_vars)
        absent = sorted(v for v in set(vars_) | self._required() if v not in data)
        if absent:
            raise DataError(f"{where} lacks {absent} (needed by {self.strategy.name} and "
                            "the backtest options)")
        take = None if same else pd.Index([str(a) for a in index]).get_indexer(universe)
        out = {}
        for v in vars_:
            da = data[v]
            if set(da.dims) != set(dims):
                raise DataError(f"{where}: variable {v!r} has dims {da.dims}; expected "
                                f"{dims}")
            try:
                _validate.real_array(f"variable {v!r}", da.dtype)
            except TypeError as e:
                raise DataError(f"{where}: {e}") from None
            a = np.asarray((da if da.dims == dims else da.transpose(*dims)).values,
                           dtype=np.float64)
            out[v] = a if take is None else a[..., take]
        return out

    @property
    def _asset_index(self):
        if self.universe is None:
            return None
        if getattr(self, "_index_cache", (None,))[0] is not self.universe:
            self._index_cache = (self.universe, pd.Index(self.universe))
        return self._index_cache[1]

    def _check_row(self, t, values: dict, labels) -> None:
        """``ql.data.validate``'s bar rules on the new bar with the last 20 buffered ones
        (which variables an asset has shows over several bars, not in one): one scan of
        NumPy rows by validate's own kernel; only a refused bar (or the very first, whose
        asset labels are checked too) builds the Dataset, to word the error as validate."""
        recent = self._buf.tail(20)
        panels = [None if v not in values else
                  (np.vstack([recent[v], values[v][None]]) if recent else values[v][None])
                  for v in BAR_VARS]
        if self.universe is not None and not _check_bars(*panels)[0]:
            return
        times = np.append(self._buf.times()[-20:], t) if recent else np.array([t])
        validate(xr.Dataset({v: (("time", "asset"), p) for v, p in zip(BAR_VARS, panels)
                             if p is not None}, coords={"time": times, "asset": labels}),
                 source=f"bar at {str(t)[:19]}")

    def _push(self, parsed) -> None:
        t, values = parsed
        if not self._vars:
            self._vars = tuple(values)
        k = self.options.history_needed()
        if 1 < k <= len(self._buf):   # the slippage window's first row leaves it (keep >= k)
            self._slip_prev = last_valid(self._buf.tail(k)["close"][:1], self._slip_prev)
        if len(self._buf) == self._buf.keep:          # the first buffered row leaves
            self._prev_close = last_valid(self._buf.rows()["close"][:1], self._prev_close)
        self._buf.push(t, values)
        if self._live is not None:   # i counted from the first history bar: signal's phase
            self._live_out = self._live.update(self._seen - 1, t, values)
        close = values["close"]
        self._last_px = close.copy() if self._last_px is None else \
            np.where(np.isnan(close), self._last_px, close)

    def _lead(self) -> int:
        """Bars a trailing window starts before its ``history_start``: whole rebalance
        periods (the phase kept), more than ``CARRY_BARS`` (a close carried into the
        window, ``ql.data.carried``, then ends before ``history_start``)."""
        p = self.strategy.period
        return p * (CARRY_BARS // p + 1)

    def _trailing(self, start: int) -> tuple:
        """(rows, times) of the trailing window from bar ``start`` (over all bars seen):
        the buffered bars from ``_lead()`` bars before it, the close of the first of them
        set to each asset's last valid close up to it. So the window's returns and
        carried closes (``ql.data.carried``) from ``start`` on are the full history's,
        across a gap that began before it too (``warmup`` counts bars as if there were
        none): that close, carried at most ``CARRY_BARS`` bars, ends before ``start``
        as in the full history, and the bars after it are the real ones. (Before, the
        close sat on the bar just before ``start``: a close carried from there reached
        5 bars past ``start``, where the full history's, from an older bar, had ended.)
        By the warmup, nothing else in those bars reaches the signal at the last one.
        Views of the buffer but that close (one copy)."""
        i, p = start - self._first, self.strategy.period
        q = min(self._lead(), i - i % p)    # fewer: the buffer starts at bar 0 (or an
        if q <= 0:                          # older checkpoint's smaller buffer)
            return self._buf.rows(max(0, i)), self._buf.times()[max(0, i):]
        rows = self._buf.rows(i - q)
        rows["close"] = rows["close"].copy()
        rows["close"][0] = last_valid(self._buf.rows()["close"][:i - q + 1], self._prev_close)
        return rows, self._buf.times()[i - q:]

    def _window(self, start: int) -> xr.Dataset:
        """The trailing window from bar ``start`` (:meth:`_trailing`) as one Dataset."""
        rows, times = self._trailing(start)
        # pandas indexes and Variables: xarray skips its coercion and alignment passes
        coords = xr.Coordinates({"time": pd.DatetimeIndex(times), "asset": self._asset_index})
        return xr.Dataset({v: xr.Variable(("time", "asset"), a) for v, a in rows.items()},
                          coords=coords, attrs=self._calendar())

    def _calendar(self) -> dict:
        """A trailing window's attrs: the bars' periods per year, which a strategy
        annualising by the data's calendar reads (a window of a few bars cannot tell it)."""
        return {"periods_per_year": self._signal_periods}

    def on_bar(self, bar) -> dict:
        """Trade one closed bar: the strategy's signal, risk limits, one step
        of the backtest kernel.

        Parameters
        ----------
        bar : xarray.Dataset
            One bar, ``ds.isel(time=i)`` of a quantlab Dataset (or a ``time`` dim of
            length 1): every asset of the universe (NaN where it has no bar) and the
            variables the strategy and the options read. A time with a zone is read
            in UTC (as :meth:`replay` reads a zoned index).

        Returns
        -------
        dict
            ``time``, ``equity`` (all accounts), ``orders`` and ``rejections`` (this
            bar's counts), ``latency_s`` (the decision time).

        Raises
        ------
        DataError
            A duplicated or out-of-order bar, a bar whose time is missing (NaT) or no
            date (text, a number), missing or unknown assets, a missing
            variable, or a bar ``ql.data.validate`` refuses.
        ValueError
            The bar's slippage reaching 1 (``Slippage('adaptive')`` on an extreme bar).
            After any error, from the strategy's signal too, the deployment is as before
            the bar: send it again (corrected) or the next one. A listener's error comes
            after the bar was traded: it stays traded, every listener is called, and the
            first error is raised.
        RuntimeError
            After an interrupt (Ctrl-C) landed between a bar's kernel step and its
            records: restore the deployment from its last checkpoint.

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 70))
        >>> dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
        ...                 history=ds.isel(time=slice(0, 69)))
        >>> status = dep.on_bar(ds.isel(time=69))
        >>> str(status["time"])[:10], round(status["equity"], 2), status["orders"]
        ('2000-06-08', 400000.0, 1)
        """
        self._check_whole()
        parsed = self._parse(bar)
        if self.universe is not None:
            return self._trade(parsed)
        self.universe = [str(a) for a in bar.indexes["asset"]]
        try:
            return self._trade(parsed)
        except BaseException:
            if not self._seen:   # refused, not traded: the next first bar sets them
                self.universe = self._stepper = None
                self._buf = _Bars(self._buf.keep)      # its arrays are the bar's width
            raise

    def _trade(self, parsed, given=None) -> dict:
        """Buffer a checked bar and decide on it (the timed part); ``given``: its signal
        and the seconds it took, computed beforehand (replay's block)."""
        start = _time.perf_counter()
        self._check_whole()
        n_orders, n_rej = len(self._orders), len(self._rejections)
        undo, bar = self._mark(), self._bars_stepped()
        try:
            self._push(parsed)
            if given is None:
                signal, before = self._decide(), 0.0
            else:
                signal, before = given
            step = self._step_inputs()
            target, rejected = self.risk.apply(signal, *self._book(), self.killed,
                                               self._order_values(*step))
            for i, reason, wanted, given in rejected:
                self._rejections.append({"time": parsed[0], "asset": self.universe[i],
                                         "reason": reason, "wanted": wanted, "given": given})
            self._advance(target, *step)
            latency = _time.perf_counter() - start + before
            for k, v in (("signal", signal), ("target", target), ("latency", latency)):
                self._rec[k].append(v)
        except BaseException as e:
            if self._bars_stepped() == bar:
                self._rollback(undo, n_rej)
            else:   # only an interrupt (Ctrl-C) lands after the step: its state is kept
                self._broken = (f"the bar at {str(parsed[0])[:19]} was interrupted "
                                f"({type(e).__name__}) after its kernel step, before its "
                                "records: restore the deployment from its last checkpoint")
            raise
        self._watch_drawdown()
        self._last_wall = _time.monotonic()
        status = {"time": parsed[0], "equity": float(self.equity_now()),
                  "orders": len(self._orders) - n_orders,
                  "rejections": len(self._rejections) - n_rej, "latency_s": latency}
        failed = None
        for listener in self.listeners:   # each sees the bar, whatever one before did
            try:
                listener(status)
            except Exception as e:
                failed = failed or e
        if failed is not None:
            raise failed
        return status

    def _book(self) -> tuple:
        """(shares held, last valid close, equity of each asset's account) for the risk
        limits: an exposure is a share of its own account's equity (``group=False``: the
        asset's; it was read against all accounts', so an order of 0.5 of one account
        was valued at 0.5 of them all), at this bar's closes as the kernel sizes an
        order (the last bar's equity missed the bar's move the holdings were valued at)."""
        held = self.positions_now()
        if self.state is None:
            return held, self._last_px, float(self.options.init_cash)
        with np.errstate(invalid="ignore"):
            value = np.where(held != 0, held * self._last_px, 0.0)
        cash = np.asarray(self.state["cash"], dtype=np.float64)
        if self.options.group:
            return held, self._last_px, float(cash[0] + value.sum())
        return held, self._last_px, cash + value

    def _bars_stepped(self) -> int:
        return 0 if self.state is None else int(self.state.bar)

    def _check_whole(self) -> None:
        """Refuse bars and checkpoints once a bar was interrupted after its kernel step."""
        if self._broken:
            raise RuntimeError(self._broken)

    def _mark(self) -> tuple:
        """What taking a bar changes before its kernel step: see :meth:`_rollback`. (The
        step raises only before it changes the state; what lands after it, an interrupt,
        stops the deployment: :meth:`_check_whole`.)"""
        return (self._buf.seen, len(self._buf), self._vars, self._prev_close,
                self._slip_prev, self._last_px, self._live_out, self.state)

    def _rollback(self, undo: tuple, n_rej: int) -> None:
        """Forget a bar that raised after it was buffered (its signal, risk limits or
        slippage): the deployment is as before it, so the bar, corrected or not, can be
        sent again. A per-bar signal is rebuilt from the buffered bars, as on restore."""
        seen, n_before, self._vars, self._prev_close, self._slip_prev, self._last_px, \
            self._live_out, state = undo
        if state is None:    # the first traded bar: no state, as before it (checkpoints)
            self.state = None
        if self._buf.seen > seen:
            self._buf.unpush(n_before)
        del self._rejections[n_rej:]
        if self._live is not None:
            self._live = self._new_live()
            self._refeed()

    def _decide(self) -> np.ndarray:
        """The strategy's exposure per asset at the latest bar: its per-bar signal's output
        (computed as the bar was buffered), else the signal of its trailing window."""
        if self._live is not None:
            return np.clip(np.asarray(self._live_out, dtype=np.float64), -1.0, 1.0)
        return self._signal_rows(self._window(
            self.strategy.history_start(self._seen - 1)))[-1]

    def _signal_rows(self, window: xr.Dataset) -> np.ndarray:
        """The strategy's signal over ``window`` as (time, asset) in universe order."""
        inputs = self.inputs if self.inputs is not None else \
            self.strategy.default_inputs(window)
        sig = self.strategy.signal(window, **inputs).transpose("time", "asset")
        if not sig.indexes["asset"].equals(self._asset_index):
            sig = sig.sel(asset=self.universe)
        return np.asarray(sig.values, dtype=float)

    def _step_inputs(self) -> tuple:
        """(bar, base, impact) of the latest bar's kernel step: its values, and its
        slippage from the last ``history_needed`` bars and each asset's last valid close
        before them (the prepared step and the state are made at the first bar)."""
        if self._stepper is None:
            self._stepper = dispatch.Stepper(self.options, self.universe)
        if self.state is None:
            self.state = self._stepper.new_state()
        k = self.options.history_needed()
        base, impact = self._stepper.slippage(self._buf.rows(max(0, len(self._buf) - k)),
                                              self._buf.times()[-k:], self._slip_prev)
        return self._buf.last(), base, impact

    def _order_values(self, bar, base, impact):
        """``order_value(target)`` for the risk limits: per asset, the value the orders of
        ``target`` trade, as the kernel places them. Its step of this bar runs on a copy
        of the state (leverage, a group's scale, ``on_change``, stops are the kernel's
        own), then a step of a bar at the last closes for the orders left waiting
        (``execution="next_open"``'s fills, an asset without a bar), valued at them; a
        limit order counts its shares x its limit price. The orders an all-NaN target
        places too (an earlier target's, waiting: a pending fill, a resting limit, a
        drawdown re-entry) are not this one's; one the target changes is, whole."""
        own = REASONS.index("signal")     # not a stop's or a margin call's order
        n, none = len(self.universe), np.full(len(self.universe), np.nan)
        next_open = self.options.execution == "next_open"

        def flows(target):   # per step, each asset's signed value traded by its orders
            s, out = self.state.copy(), []
            lim = s["lim_px"].copy(), s["lim_q"].copy()
            for row, w in ((bar, target), (None, none)):
                if row is None:
                    row = dict.fromkeys(("open", "high", "low", "close"), s["last"].copy())
                    new = np.isfinite(s["lim_px"]) & ((s["lim_px"] != lim[0]) |
                                                      (s["lim_q"] != lim[1]))
                    out.append(np.where(new, s["lim_q"] * s["lim_px"], 0.0))
                    if not (next_open or s["pending"].any() or (s["resume"] == s.bar).any()):
                        out.append(np.zeros(n))   # nothing waits: that step places nothing
                        break
                _, _, _, (col, size, price, _, reason), _, _ = self._stepper.step(
                    s, row, w, base, impact)
                v, mine = np.zeros(n), reason == own
                np.add.at(v, col[mine], size[mine] * price[mine])
                out.append(v)
            return np.array(out)

        held = []   # the all-NaN target's, once a limit asks (none without an order waiting)

        def order_value(target):
            if not held:
                s = self.state
                waiting = (next_open or s["pending"].any()
                           or np.isfinite(s["lim_px"]).any()          # a limit may fill
                           or (s["resume"] >= s.bar).any())   # a drawdown re-entry
                held.append(flows(none) if waiting else 0.0)
            mine = flows(target)
            # the order as the target places it, not its change to the one waiting (a
            # re-entry of 50,000 turned into a sale of 6,000 is an order of 6,000); the
            # largest, not the sum: a limit at the close rests, then fills at the last
            # closes' step, one order in two rows
            return np.where(mine != held[0], np.abs(mine), 0.0).max(axis=0)

        return order_value

    def _advance(self, target: np.ndarray, bar: dict, base, impact) -> None:
        """One kernel step at the latest bar from the saved state: ql.backtest's own
        kernel (dispatch.Stepper), on NumPy rows (:meth:`_step_inputs`)."""
        t = self._buf.last_time()
        eq, cash, pos, (col, size, price, fee, reason), halted, interest = \
            self._stepper.step(self.state, bar, target, base, impact, when=t)
        self._rec["time"].append(t)
        self._rec["equity"].append(eq.copy())
        self._rec["cash"].append(cash.copy())
        self._rec["halted"].append(halted.astype(np.float64))   # NaN: unknown (restored)
        self._rec["interest"].append(interest.copy())
        self._rec["positions"].append(pos.copy())
        self._rec["close"].append(self._buf.last()["close"].copy())   # result()'s prices
        for j in range(len(col)):
            self._orders.append({"time": pd.Timestamp(t), "asset": self.universe[col[j]],
                                 "size": float(size[j]), "price": float(price[j]),
                                 "fee": float(fee[j]), "reason": REASONS[reason[j]]})
        self._settle_drained()

    def _settle_drained(self) -> None:
        """A drained account's forced order takes the fee the kernel's state holds for it:
        a later bar may cut it (``ql.backtest``'s record is cut in place; ours is a copy)."""
        for g in np.flatnonzero(self.state["drained"]):
            order, fee = self._orders[int(self.state["drain_rec"][g])], \
                float(self.state["drain_fee"][g])
            if order["fee"] != fee:   # a cut: the orders table is built again
                order["fee"] = fee
                self._fees_cut = self.__dict__.get("_fees_cut", 0) + 1

    def _watch_drawdown(self) -> None:
        eq = float(np.sum(self._rec["equity"][-1]))
        self._peak = max(self._peak or self.equity_start(), eq)
        if eq <= (1 - self.risk.max_drawdown_pct) * self._peak and not self.killed:
            self.killed = True

    def reset_kill_switch(self) -> None:
        """Trade again after the drawdown kill switch (the peak restarts from now).

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 70))
        >>> dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
        ...                 history=ds.isel(time=slice(0, 60)), fees=0.001)
        >>> dep = dep.replay(ds.isel(time=slice(60, None)))
        >>> dep.killed = True           # as after a drawdown
        >>> dep.reset_kill_switch()
        >>> dep.killed, dep.pnl()["drawdown"]
        (False, 0.0)
        """
        self.killed = False
        self._peak = float(np.sum(self.equity_now()))

    # ---- state -------------------------------------------------------------------------
    def positions_now(self) -> np.ndarray:
        """Shares held per asset after the latest bar (zeros before the first).

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 70))
        >>> dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
        ...                 history=ds.isel(time=slice(0, 60)), fees=0.001)
        >>> dep = dep.replay(ds.isel(time=slice(60, None)))
        >>> dep.positions_now().round(1)
        array([10135.9,     0. ,     0. ,     0. ])
        """
        return self._rec["positions"][-1] if self._rec["positions"] else \
            np.zeros(len(self.universe))

    def equity_start(self) -> float:
        """Initial cash of all accounts (one per asset unless ``group=True``).

        Examples
        --------
        >>> import quantlab as ql
        >>> ql.deploy("volatility_regime", universe=["A", "B"], init_cash=1000).equity_start()
        2000.0
        """
        return float(self.options.init_cash) * self.options.n_accounts(
            len(self.universe or [None]))

    def equity_now(self):
        """Equity of all accounts after the latest bar (initial cash before the first).

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 70))
        >>> dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
        ...                 history=ds.isel(time=slice(0, 60)), fees=0.001)
        >>> dep = dep.replay(ds.isel(time=slice(60, None)))
        >>> round(dep.equity_now(), 2)
        409404.98
        """
        if self._rec["equity"]:
            return float(np.sum(self._rec["equity"][-1]))
        return self.equity_start()

    def _n_accounts(self) -> int:
        return 1 if self.options.group else len(self.universe or [])

    def _frame(self, key) -> xr.DataArray:
        """A record as (time, asset), or (time,) for a group account's equity and cash
        (and drawdown control's flat bars and the borrowing charges)."""
        account = key in ("equity", "cash", *_REC_EXTRA) and self.options.group
        width = 1 if account else len(self.universe or [])
        n = len(self._rec["time"])
        v = self._stacked(key, np.float64).reshape(n, width).copy()
        coords = {"time": self._stacked("time", "datetime64[ns]").copy()}
        if account:
            return xr.DataArray(v[:, 0], dims=("time",), coords=coords, name=key)
        return xr.DataArray(v, dims=("time", "asset"),
                            coords={**coords, "asset": list(self.universe or [])}, name=key)

    def _stacked(self, key, dtype) -> np.ndarray:
        """``np.array(self._rec[key])``, converting only the records added since the last
        call (a doubling buffer): reading ``dep.equity`` after every bar (the CLI, the
        monitors) costs O(bars) copies, not O(bars) Python conversions."""
        rec = self._rec[key]
        cache = self.__dict__.setdefault("_stack", {})
        buf, m = cache.get(key, (None, 0))
        if buf is not None and (m > len(rec) or (m and rec[m - 1] is not self._stack_last[key])):
            buf, m = None, 0          # the records were replaced: start again
        if buf is None or len(buf) < len(rec):
            new = np.empty((max(64, 2 * len(rec)), *np.shape(rec[0])) if rec else (0,),
                           dtype=dtype)
            if m:
                new[:m] = buf[:m]
            buf = new
        if len(rec) > m:
            buf[m:len(rec)] = np.array(rec[m:], dtype=dtype)
        cache[key] = (buf, len(rec))
        self.__dict__.setdefault("_stack_last", {})[key] = rec[-1] if rec else None
        return buf[:len(rec)]

    equity = property(lambda self: self._frame("equity"),
                      doc="Equity per account at each bar's close.")
    cash = property(lambda self: self._frame("cash"), doc="Cash per account.")
    positions = property(lambda self: self._frame("positions"),
                         doc="Shares held per asset after each bar.")
    signal = property(lambda self: self._frame("signal"),
                      doc="The strategy's exposure per asset at each bar.")
    targets = property(lambda self: self._frame("target"),
                       doc="The exposure after the risk limits (NaN = hold).")
    latency = property(lambda self: pd.Series(self._rec["latency"],
                                              index=pd.DatetimeIndex(self._rec["time"]),
                                              name="latency_s"),
                       doc="Seconds per decision (signal, risk checks, kernel step).")

    @property
    def orders(self) -> pd.DataFrame:
        """Every order: time, asset, size, price, fee, reason. A copy of a table built
        once per change (a live dashboard reads it twice an update: ~45 ms each at 42,000
        orders when built from the records each time)."""
        key = (id(self._orders), len(self._orders), self.__dict__.get("_fees_cut", 0))
        cached = self.__dict__.get("_orders_frame")
        if cached is None or cached[0] != key:
            cached = (key, pd.DataFrame(self._orders, columns=[
                "time", "asset", "size", "price", "fee", "reason"]))
            self._orders_frame = cached
        return cached[1].copy()

    @property
    def rejections(self) -> pd.DataFrame:
        return pd.DataFrame(self._rejections, columns=["time", "asset", "reason", "wanted",
                                                       "given"])

    @property
    def last_bar(self):
        """The time of the last bar it has seen (traded, or of its history); None
        before any: a resumed deployment goes on with the bars after it.

        Returns
        -------
        numpy.datetime64 or None

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 60))
        >>> str(ql.deploy("volatility_regime", history=ds).last_bar)[:10]
        '2000-05-24'
        """
        return self._buf.last_time()

    # ---- its identity: the bar size ----------------------------------------------------
    def same_bar(self, bar) -> bool | None:
        """Whether ``bar`` is this deployment's bar size, however spelt ('60s' is
        '1min'); None when its own is unknown (``bar`` is None: a checkpoint written
        before checkpoints recorded it, or a deployment without ``bar=`` or ``history=``).

        Parameters
        ----------
        bar : str
            A pandas frequency.

        Returns
        -------
        bool or None

        Examples
        --------
        >>> import quantlab as ql
        >>> dep = ql.deploy("volatility_regime", history=ql.data.load().isel(time=slice(0, 60)))
        >>> dep.bar, dep.same_bar("24h"), dep.same_bar("1min")
        ('1D', True, False)
        """
        given = _bar_text(bar)
        if self.bar is None:
            return None
        return _same_bar(self.bar, given)

    def check_bar(self, bar, where: str = "bar") -> None:
        """Refuse to go on with bars of another size than this deployment's (a
        ValueError naming both: its signal, stops and costs were decided on its own
        bars). When its own is unknown (see :meth:`same_bar`), a warning says the
        check could not be made, and ``bar`` becomes its bar size.

        Parameters
        ----------
        bar : str
            The size of the bars it is about to be given.
        where : str, default "bar"
            What the message calls ``bar``.

        Raises
        ------
        ValueError
            If ``bar`` is another size.

        Examples
        --------
        >>> import quantlab as ql
        >>> dep = ql.deploy("volatility_regime", history=ql.data.load().isel(time=slice(0, 60)))
        >>> dep.check_bar("1D")
        >>> dep.check_bar("1min")
        Traceback (most recent call last):
        ...
        ValueError: bar '1min': this deployment trades 1D bars; bars of another size would trade differently from the deployment so far (resume with 1D bars, or deploy afresh)
        """
        same = self.same_bar(bar)
        if same is False:
            raise ValueError(f"{where} {bar!r}: this deployment trades {self.bar} bars; bars "
                             "of another size would trade differently from the deployment "
                             f"so far (resume with {self.bar} bars, or deploy afresh)")
        if same is None:
            warnings.warn(f"this deployment records no bar size (a checkpoint written "
                          f"before checkpoints recorded it, or a deployment without bar= "
                          f"or history=): {where} {bar!r} could not be checked against the "
                          f"bars it traded; it goes on as {bar} bars", UserWarning,
                          stacklevel=2)
            self.bar = _bar_text(bar)

    # ---- checkpoints (plain JSON + npz, no pickle) ---------------------------------------
    def checkpoint(self, path) -> Path:
        """Save everything needed to continue, appending: ``path/deployment.json`` (the
        manifest: strategy, options, limits, counters, the segments to read) and one
        ``seg-G-K.npz`` per checkpoint with what came since the previous one at ``path``
        (bars, records, orders, rejections) and the kernel state. So a checkpoint after
        every bar costs O(one bar), not O(all bars so far). Every
        ``COMPACT`` segments (and the first checkpoint at a path) the deployment is
        written whole as a new generation G. Each file is written to a temporary name
        and renamed, the manifest last: a process killed while saving leaves the
        previous checkpoint intact. The manifest carries the sha256 of its own contents
        and of each segment: one edited or damaged since is refused by :meth:`restore`.
        One deployment at a time checkpoints into a folder: a new one's first
        checkpoint there takes it over, and one that checkpointed there before is then
        refused (a DataError) instead of appending to the other's
        segments; the check and the write hold a lock on the folder (``flock``), so two
        processes resuming from one checkpoint cannot both go on.

        Parameters
        ----------
        path : str or Path
            A directory (created if needed).

        Returns
        -------
        Path

        Examples
        --------
        >>> import tempfile
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 70))
        >>> dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
        ...                 history=ds.isel(time=slice(0, 60)), fees=0.001)
        >>> ck = dep.checkpoint(tempfile.mkdtemp())
        >>> dep = dep.replay(ds.isel(time=slice(60, None)))
        >>> sorted(p.name for p in dep.checkpoint(ck).iterdir())
        ['deployment.json', 'seg-1-0.npz', 'seg-1-1.npz']
        """
        self._check_whole()
        path = user_path("checkpoint path", path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ValueError(f"checkpoint path {path} (or a folder above it) is a file, "
                             "not a directory") from None
        except OSError as e:     # a read-only disk, a name too long: said for which
            raise io_error(e, f"checkpoint to {path}") from e
        with _folder_lock(path):   # one checkpoint at a time in a folder, across processes
            return self._checkpoint(path)

    def _checkpoint(self, path: Path) -> Path:
        ck = getattr(self, "_ck", None)
        here = ck is not None and ck["path"] == str(path.resolve())
        there = _manifest_there(path)
        if here and there != {k: ck.get(k) for k in ("writer", "gen", "n")}:
            if there and there["writer"] != self._writer_id():
                raise DataError(   # appending would mix two deployments' segments
                    f"checkpoint {path} was written by another deployment since this one's "
                    f"last checkpoint there (generation {there.get('gen')}, "
                    f"{there.get('n')} segments; this one wrote generation {ck['gen']}, "
                    f"{ck['n']}): only one deployment may checkpoint into a folder; "
                    "restore from it, or checkpoint into another folder")
            here = False     # gone, or our own write not counted (interrupted): whole
        # the segments of a generation share one layout: those written before the first
        # bar (no assets, no variables) do not fit the manifest's after it
        layout = [list(self._vars), self.universe]
        whole = not here or ck["n"] >= self.COMPACT or ck.get("layout") != layout
        if whole:   # a generation above any there: another checkpoint's files stay intact
            ck = {"path": str(path.resolve()), "layout": layout,
                  "gen": max((ck or {}).get("gen", 0), there.get("gen") or 0) + 1,
                  "n": 0,
                  "seen": self._first, "rec": 0, "orders": 0, "rej": 0, "digests": []}
            old = [p for p in path.glob("seg-*.npz")]
        meta = {"format": FORMAT, "quantlab": __version__, "strategy": self.strategy.name,
                "params": self.strategy.params, "options": self.options.to_dict(),
                "risk": asdict(self.risk), "universe": self.universe, "variables": self._vars,
                "first": self._first, "seen": self._seen, "killed": self.killed,
                "peak": self._peak, "generation": ck["gen"], "segments": ck["n"] + 1,
                "writer": self._writer_id(), "bar": self.bar,
                "signal_periods": self._signal_periods,
                # a whole write stores them as NaN rows: only this count tells them apart
                "closes_unknown": self._closes_unknown}
        arrays = self._segment(ck)
        if self.inputs is not None:      # saved whole once a generation, named each time
            if whole:
                ck["inputs"] = _save_inputs(self.inputs, arrays)
            meta["inputs"] = ck["inputs"]
        seg = path / f"seg-{ck['gen']}-{ck['n']}.npz"
        digests = _write_checkpoint(path, seg, arrays, meta, ck.get("digests"))
        self._ck = {**ck, "n": ck["n"] + 1, "writer": self._writer_id(), "seen": self._seen,
                    "digests": digests,
                    "rec": len(self._rec["time"]),
                    "orders": len(self._orders), "rej": len(self._rejections)}
        if whole:   # the older generations' files: read by no manifest now, so one that
            for p in old:   # will not go (EPERM, EIO) is left to the next whole write; its
                if not p.name.startswith(f"seg-{ck['gen']}-"):   # error said the written
                    with contextlib.suppress(OSError):            # checkpoint had failed
                        p.unlink(missing_ok=True)
        return path

    COMPACT = 256   # segments before a checkpoint is rewritten whole (restore reads them all)

    def _writer_id(self) -> str:
        """This deployment's mark in the manifests it writes: another one's mark there
        means another deployment (or process) checkpointed into the folder since."""
        if getattr(self, "_writer", None) is None:
            self._writer = secrets.token_hex(8)
        return self._writer

    def _segment(self, ck: dict) -> dict:
        """The arrays of one checkpoint segment: what came since ``ck``'s counters (the
        bars still buffered among them), and the state now. Few arrays (each costs a zip
        entry): rows of one kind stacked, the kernel state packed by dtype."""
        start = max(ck["seen"], self._first) - self._first
        rows = self._buf.rows(start)
        n, r0 = len(self._buf) - start, ck["rec"]
        arrays = {"bars.index": np.arange(self._first + start, self._seen),
                  "bars.time": self._buf.times()[start:].astype("datetime64[ns]"),
                  "bars": np.stack([rows[v] for v in self._vars]) if self._vars
                  else np.zeros((0, n, 0))}
        arrays["rec.time"] = np.array(self._rec["time"][r0:], dtype="datetime64[ns]")
        for key, names in (("rec.assets", _REC_ASSET), ("rec.accounts", _REC_ACCOUNT)):
            arrays[key] = np.array([self._rec[k][r0:] for k in names], dtype=float)
        arrays["rec.latency"] = np.array(self._rec["latency"][r0:], dtype=float)
        closes = self._rec["close"][r0:]   # (records, assets), none of either too
        arrays["rec.close"] = np.array(closes, dtype=float).reshape(
            len(closes), len(self.universe or []))
        arrays["rec.extras"] = np.array([self._rec[k][r0:] for k in _REC_EXTRA],
                                        dtype=float).reshape(len(_REC_EXTRA), len(closes),
                                                             self._n_accounts())
        for name, rows_, cols in (("orders", self._orders[ck["orders"]:], _ORDER_COLS),
                                  ("rej", self._rejections[ck["rej"]:], _REJ_COLS)):
            if rows_:
                arrays[f"{name}.time"] = np.array([r["time"] for r in rows_],
                                                  dtype="datetime64[ns]")
                arrays[f"{name}.text"] = np.array([[r[c] for c in _TEXT_COLS]
                                                   for r in rows_], dtype=str)
                arrays[f"{name}.values"] = np.array([[r[c] for c in cols[3:]]
                                                     for r in rows_], dtype=float)
        if self._last_px is not None:
            arrays["last_close"] = self._last_px
        if self._prev_close is not None:
            arrays["prev_close"] = self._prev_close
        if self._slip_prev is not None:      # derivable from prev_close; older readers
            arrays["slip_prev"] = self._slip_prev
        if self.state is not None:
            arrays.update(_pack("state", self.state.to_dict()))
        return arrays

    @classmethod
    def restore(cls, path, *, strategy: str | None = None, inputs=None,
                bar=None) -> Deployment:
        """A Deployment continued from :meth:`checkpoint`. ``strategy``: refuse a
        checkpoint of another strategy. ``inputs``: external inputs replacing those
        saved with the checkpoint (a deployment given ``inputs=`` saves them). ``bar``:
        refuse a checkpoint of bars of another size (:meth:`check_bar`; whoever wrote
        it: the checkpoint records its bar size). A checkpoint being written is read
        once the write is done (a shared ``flock`` on the folder).

        Parameters
        ----------
        path : str or Path
            The directory :meth:`checkpoint` wrote.
        strategy : str, optional
            Refuse a checkpoint of another strategy.
        inputs : dict, optional
            External inputs replacing the saved ones.
        bar : str, optional
            The size of the bars it will be given: refuse another one.

        Returns
        -------
        Deployment

        Raises
        ------
        FileNotFoundError
            No ``deployment.json`` in ``path``.
        DataError
            A checkpoint that cannot be restored exactly: a file unreadable or missing,
            a manifest key missing or of the wrong type, options or risk keys missing or
            unknown, lengths that disagree; the message names the file and the key.

        Examples
        --------
        >>> import tempfile
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 70))
        >>> dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
        ...                 history=ds.isel(time=slice(0, 60)), fees=0.001)
        >>> dep = dep.replay(ds.isel(time=slice(60, None)))
        >>> back = ql.Deployment.restore(dep.checkpoint(tempfile.mkdtemp()))
        >>> back.equity_now() == dep.equity_now(), len(back.orders) == len(dep.orders)
        (True, True)
        """
        path = user_path("checkpoint path", path)
        with _folder_lock(path, shared=True):   # not between a whole write's files
            meta, arrays, intact = _read_checkpoint(path)
        if strategy is not None and strategies.resolve(strategy).name != meta["strategy"]:
            raise ValueError(f"checkpoint {path} is of strategy {meta['strategy']!r}, not "
                             f"{strategies.resolve(strategy).name!r}")
        given = inputs is not None      # other inputs: the next checkpoint is whole
        try:     # the manifest and arrays were checked; this names anything left
            if not given and meta.get("inputs") is not None:
                inputs = _load_inputs(meta["inputs"], arrays)
            dep = cls._rebuild(meta, arrays, inputs)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise DataError(f"checkpoint {path} cannot be restored: {type(e).__name__}: "
                            f"{e}") from None
        if not intact:   # values that pass every check, edited or damaged: a peak of
            # 900298.35 for 400298.35 is a 55 % drawdown to the kill switch, 'params': {}
            # traded the strategy's defaults
            raise _bad(path / "deployment.json", "its contents are not those written "
                       "(edited or damaged since: its digest does not match); restore "
                       "from another checkpoint")
        if bar is not None:
            dep.check_bar(bar, f"checkpoint {path}: bar")
        if meta.get("format") == FORMAT and not given:   # the next checkpoint appends
            dep._ck = {"path": str(path.resolve()), "gen": meta["generation"],
                       "layout": [list(dep._vars), dep.universe],
                       "writer": meta.get("writer"),
                       "inputs": meta.get("inputs"), "digests": meta.get("digests"),
                       "n": meta["segments"], "seen": meta["seen"],
                       "rec": len(dep._rec["time"]), "orders": len(dep._orders),
                       "rej": len(dep._rejections)}
        return dep

    @classmethod
    def _rebuild(cls, meta: dict, arrays: dict, inputs) -> Deployment:
        """The Deployment of a checked manifest and its arrays (see :meth:`restore`)."""
        dep = cls(strategies.get(meta["strategy"], **meta["params"]),
                  BacktestOptions.from_dict(meta["options"]), universe=meta["universe"],
                  inputs=inputs, risk=RiskLimits(**meta["risk"]))
        dep.killed, dep._peak = meta["killed"], meta["peak"]
        dep.bar = _bar_text(meta.get("bar"))      # absent: written before it was recorded
        dep._signal_periods = meta.get("signal_periods", dep.options.periods)   # as bar
        if dep._live is not None:
            dep._live.periods = dep._signal_periods
        dep._vars = tuple(meta["variables"])
        for i, t in enumerate(meta["times"]):
            dep._buf.push(np.datetime64(t, "ns"), {v: arrays[f"buf.{v}"][i]
                                                   for v in dep._vars})
        dep._buf.seen = meta["seen"]
        if "last_close" in arrays:
            dep._last_px = arrays["last_close"]
        elif dep._vars:   # an older checkpoint: the last valid close in the buffer
            dep._last_px = last_valid(arrays["buf.close"], None)
        if "prev_close" in arrays:
            dep._prev_close = np.asarray(arrays["prev_close"], dtype=np.float64)
        elif dep._first and len(dep._buf):   # an older checkpoint
            dep._prev_close = dep._old_prev_close(arrays.get("slip_prev"))
        dep._restore_slip_prev(arrays)
        if dep._live is not None:    # rebuilt from the buffered bars, with their indices
            dep._refeed()
        dep._rec["time"] = [np.datetime64(t, "ns") for t in meta["record_times"]]
        for k in ("equity", "cash", "positions", "signal", "target", "latency"):
            dep._rec[k] = list(arrays[f"rec.{k}"])
        r, width = len(dep._rec["time"]), len(dep.universe or [])
        dep._rec["close"] = list(arrays.get("rec.close", np.full((r, width), np.nan)))
        dep._closes_unknown = meta.get("closes_unknown", 0 if "rec.close" in arrays else r)
        for k in _REC_EXTRA:   # older checkpoints lack them: unknown (NaN)
            dep._rec[k] = list(arrays.get(f"rec.{k}", np.full((r, dep._n_accounts()),
                                                              np.nan)))
        dep._orders = [{**o, "time": np.datetime64(o["time"], "ns")} for o in meta["orders"]]
        dep._rejections = [{**r, "time": np.datetime64(r["time"], "ns")}
                           for r in meta["rejections"]]
        state = {k[6:]: v for k, v in arrays.items() if k.startswith("state.")}
        dep.state = SimState.from_dict(state) if state else None
        if state and int(state["n_columns"]) != len(dep.universe or []):   # kernel bounds
            raise ValueError(f"the kernel state has {int(state['n_columns'])} columns, the "
                             f"universe {len(dep.universe or [])} assets")
        if state:   # a fee cut after the segment holding its order was written
            dep._settle_drained()
        return dep

    def _restore_slip_prev(self, arrays: dict) -> None:
        """``_slip_prev`` of a checkpoint: the last valid close before the slippage
        window is that of ``prev_close`` and the buffered bars before the window, so a
        saved copy must agree with them (a tampered one restored, then refused the
        asset's next bar with the deployment's bar already buffered), as must
        ``last_close`` of an asset without a close in the buffer; else (an older
        checkpoint) rebuilt from them."""
        k = self.options.history_needed()
        if k <= 1 or not self._vars or not len(self._buf):
            return
        c = self._buf.rows()["close"]
        derived = last_valid(c[:max(0, len(c) - k)], self._prev_close)
        if "prev_close" in arrays:
            empty = np.isnan(c).all(axis=0)
            if self._last_px is not None and not np.array_equal(
                    self._last_px[empty], self._prev_close[empty], equal_nan=True):
                raise ValueError("its 'last_close' and 'prev_close' disagree for an asset "
                                 "without a close in the buffered bars")
            if "slip_prev" in arrays and (derived is None or not np.array_equal(
                    derived, arrays["slip_prev"], equal_nan=True)):
                raise ValueError("its 'slip_prev' disagrees with its 'prev_close' and "
                                 "buffered closes")
        self._slip_prev = (np.asarray(arrays["slip_prev"], dtype=np.float64)
                           if "slip_prev" in arrays else derived)

    def _refeed(self) -> None:
        """The per-bar signal of a restored deployment: fed the buffered bars with their
        indices, after a bar holding only ``_prev_close`` (the returns and forward-filled
        closes across a gap that began before the buffer, as in the uninterrupted run)."""
        rows, times = self._buf.rows(), self._buf.times()
        if self._prev_close is not None and len(times):
            self._live.update(self._first - 1, times[0] - np.timedelta64(1, "ns"),
                              {v: self._prev_close if v == "close" else np.full_like(
                                  self._prev_close, np.nan) for v in rows})
        for j, t in enumerate(times):
            self._live_out = self._live.update(self._first + j, t,
                                               {v: a[j] for v, a in rows.items()})

    def _old_prev_close(self, slip_prev):
        """``_prev_close`` of a checkpoint that lacks it, as far as it tells: for an
        asset without a close in the buffer, the last one seen (``last_close``); without
        one before the slippage window, ``slip_prev``; else NaN (that close left with the
        bars no longer buffered)."""
        c = self._buf.rows()["close"]
        out = np.full(c.shape[1], np.nan)
        if slip_prev is not None:
            before = c[:max(0, len(c) - self.options.history_needed())]
            out = np.where(np.isnan(before).all(axis=0), slip_prev, out)
        if self._last_px is not None:
            out = np.where(np.isnan(c).all(axis=0), self._last_px, out)
        return out

    # ---- sources -----------------------------------------------------------------------
    def replay(self, source, speed: float | None = None, every: int = 0, echo=print,
               block: int = 1):
        """Feed the bars of ``source`` (a Dataset, or a path ``ql.data.load_csv`` reads)
        through :meth:`on_bar`, in time order. ``speed``: bars per second (None: as fast
        as possible). ``every``: print a status line every that many bars (0: none).
        Each bar is checked as :meth:`on_bar` checks it (the assets and variables once).
        Bars of another size than the deployment's (``bar``: weekly after daily ones)
        are refused, as :meth:`check_bar` words it. A time index with a zone is read in
        UTC (naive, as ``history`` and on_bar's bars are).
        A strategy with a per-bar signal (``strategy.live()``) is updated bar by bar
        whatever ``block`` is. Otherwise ``block`` > 1 computes the signals of that many
        bars in one strategy call, over
        the window from the first one's ``history_start``: the same values, by the
        strategy's declared history (tests/test_warmup.py), for a fraction of the cost;
        each bar's latency then carries its share of that call. A block with a bar the
        checks may refuse goes bar by bar (the refusal as on_bar words it).

        Parameters
        ----------
        source : xarray.Dataset, xarray.DataArray, pandas.DataFrame or path
            The bars (a DataArray, a DataFrame (time by asset) or a Series: the closes).
        speed : float, optional
            Bars per second (> 0); None: as fast as possible.
        every : int, default 0
            Print a status line every that many bars.
        echo : callable, default print
            Where status lines go.
        block : int, default 1
            Bars per strategy call (1: one per bar, as live).

        Returns
        -------
        Deployment
            self.

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 62))
        >>> dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
        ...                 history=ds.isel(time=slice(0, 60)))
        >>> _ = dep.replay(ds.isel(time=slice(60, None)), every=1)   # doctest: +ELLIPSIS
        2000-05-25T00:00:00  equity 400,000.00  orders 3  rejected 0  ... ms
        2000-05-26T00:00:00  equity 399,907.77  orders 3  rejected 0  ... ms
        """
        if isinstance(source, (xr.DataArray, pd.DataFrame, pd.Series)):   # the closes, as
            source = _validate.dataset("replay: source", source)   # deploy(history=) takes
        if not isinstance(source, (xr.Dataset, str, os.PathLike)):   # them (load_csv named
            # its own path_or_dir for 5 or None)
            raise TypeError(f"replay: source must be an xarray Dataset of bars, closes (a "
                            f"DataArray or pandas DataFrame) or a CSV path (str or "
                            f"os.PathLike), got {type(source).__name__}")
        ds = source if isinstance(source, xr.Dataset) else load_csv(source)
        _validate.coords(ds, what="replay data")
        given = bar_size(ds) if self.bar is not None and ds.sizes["time"] >= 3 and \
            isinstance(ds.indexes["time"], pd.DatetimeIndex) else None
        if given is not None:   # weekly bars after daily ones traded without a word (as
            self.check_bar(given, "replay data: bar")   # the CLI's resume refuses them)
        speed = None if speed is None else _validate.number("speed", speed, 0, lo_open=True)
        every = _validate.integer("every", every, 0)
        block = _validate.integer("block", block, 1, 10 ** 6)
        cols = times = None
        signals: dict = {}          # bar index -> (its signal, its share of the call)
        for i in range(ds.sizes["time"]):
            tick = _time.monotonic()
            if cols is None and self.universe is not None and self._vars:
                cols, times = self._panel(ds)
            if cols and block > 1 and i not in signals and self._live is None:
                signals = self._block_signals(cols, times, i, min(i + block, len(times)))
            if cols:   # the same checks as on_bar, on rows taken once from the panel
                t = times[i]
                self._check_time(t)
                row = {v: a[i] for v, a in cols.items()}
                self._check_row(t, row, self.universe)
                status = self._trade((t, row), signals.pop(i, None))
            else:
                status = self.on_bar(ds.isel(time=i))
            if every and (i + 1) % every == 0:
                echo(self.status_line(status))
            if speed:
                _time.sleep(max(0.0, 1 / speed - (_time.monotonic() - tick)))
        return self

    def _block_signals(self, cols: dict, times, i: int, j: int) -> dict:
        """{bar index: (signal, seconds)} of replayed bars i .. j-1 from one strategy call
        over the buffered window of bar i and the bars up to j-1; {} (bar by bar) when a
        bar among them may be refused: out of time order, or a scan of the last 20
        buffered bars with all of them finds a fault (a wider scan is the stricter)."""
        last = self._buf.last_time()
        if np.any(np.diff(times[i:j]) <= np.timedelta64(0)) or \
                (last is not None and times[i] <= last):
            return {}
        recent = self._buf.tail(20)
        panels = [None if v not in cols else
                  np.vstack([recent[v], cols[v][i:j]]) if recent else cols[v][i:j]
                  for v in BAR_VARS]
        if _check_bars(*panels)[0]:
            return {}
        start = _time.perf_counter()
        old, old_times = self._trailing(self.strategy.history_start(self._seen))
        coords = xr.Coordinates({"time": pd.DatetimeIndex(np.concatenate(
            [old_times, times[i:j]])), "asset": self._asset_index})
        window = xr.Dataset({v: xr.Variable(("time", "asset"), np.concatenate(
            [old[v], cols[v][i:j]])) for v in self._vars}, coords=coords,
            attrs=self._calendar())
        sig = self._signal_rows(window)[-(j - i):]
        share = (_time.perf_counter() - start) / (j - i)
        return {i + r: (sig[r], share) for r in range(j - i)}

    def _panel(self, ds: xr.Dataset) -> tuple:
        """({variable: (time, asset) in universe order}, naive datetime64 times) of a
        replayed Dataset, its assets and variables checked once; ({}, None) when its
        time index holds no dates (each bar then goes through on_bar)."""
        idx = ds.indexes["time"]
        if not isinstance(idx, pd.DatetimeIndex):
            return {}, None
        # in UTC, as on_bar reads a bar's time (xarray's values): tz_localize(None) kept
        # the wall time, 9 h late in Tokyo, and only for the bars after the first
        idx = idx.tz_convert("UTC").tz_localize(None) if idx.tz is not None else idx
        return (self._columns(ds, "replay data", ("time", "asset")),
                idx.values.astype("datetime64[ns]"))

    async def run_feed(self, bars, every: int = 0, echo=print):
        """Trade the bars an async iterator yields (a live feed). A feed that fails
        raises ``quantlab.engine.FeedError`` after keeping every bar received before.

        Parameters
        ----------
        bars : async iterable of xarray.Dataset
            One bar each (as :meth:`on_bar` takes).
        every : int, default 0
            Print a status line every that many bars.
        echo : callable, default print
            Where status lines go.

        Examples
        --------
        >>> import asyncio
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 63))
        >>> dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
        ...                 history=ds.isel(time=slice(0, 60)))
        >>> async def feed():
        ...     for i in range(60, 63):
        ...         yield ds.isel(time=i)
        >>> len(asyncio.run(dep.run_feed(feed())).equity)
        3
        """
        n = 0
        try:
            async for bar in bars:
                status = self.on_bar(bar)
                n += 1
                if every and n % every == 0:
                    echo(self.status_line(status))
        except (ConnectionError, OSError, asyncio.TimeoutError) as e:
            raise FeedError(f"the bar feed failed after {n} bars ({e}); the deployment "
                            f"keeps them: checkpoint() or resume with another feed",
                            self.get_performance_stats()) from e
        return self

    def status_line(self, status: dict) -> str:
        """One line of a bar's status (:meth:`on_bar`'s dict).

        Parameters
        ----------
        status : dict
            What :meth:`on_bar` returned.

        Examples
        --------
        >>> import numpy as np
        >>> import quantlab as ql
        >>> ql.deploy("spc").status_line({"time": np.datetime64("2024-01-02"),
        ...     "equity": 1e5, "orders": 2, "rejections": 0, "latency_s": 0.0042})
        '2024-01-02  equity 100,000.00  orders 2  rejected 0  4.2 ms'
        """
        return (f"{str(status['time'])[:19]}  equity {status['equity']:,.2f}  orders "
                f"{status['orders']}  rejected {status['rejections']}  "
                f"{status['latency_s'] * 1e3:.1f} ms")

    # ---- monitoring -------------------------------------------------------------------
    def result(self) -> BacktestResult:
        """The bars traded so far as a :class:`~quantlab.BacktestResult`: its
        ``metrics()``, ``returns``, ``trades``, ``tearsheet()`` and the risk report are
        those of ``ql.backtest`` (the same formulas, the closes each bar carried as its
        prices), so a deployment replaying the bars a backtest ran has the backtest's
        metrics. Built from the records on each call (a snapshot).

        Returns
        -------
        BacktestResult
            Over the deployment's traded bars (not its history), with its options;
            ``halted`` (``dd_limit``) and ``interest`` (``borrow_rate``) as the
            backtest's: the charges of bars restored from a checkpoint older than
            session 59 are NaN, and ``halted`` is then None.

        Raises
        ------
        ValueError
            Before the first traded bar.
        DataError
            A deployment restored from a checkpoint written before the closes were
            recorded: its earlier bars' prices are unknown.

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 70))
        >>> dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
        ...                 history=ds.isel(time=slice(0, 60)), fees=0.001)
        >>> dep = dep.replay(ds.isel(time=slice(60, None)))
        >>> dep.result().metrics()["total_return"].round(4).values
        array([0.026 ,    nan, 0.0512, 0.0168])
        """
        n = len(self._rec["time"])
        if not n:
            raise ValueError("no bar traded yet: result() reads the traded bars")
        if self._closes_unknown:
            raise DataError(f"the closes of the first {self._closes_unknown} of {n} traded "
                            "bars are unknown: this deployment was restored from a "
                            "checkpoint written before quantlab recorded them, so their "
                            "returns and trades cannot be rebuilt")
        times = self._stacked("time", "datetime64[ns]").copy()
        o = self.orders
        o.insert(0, "col", self._asset_index.get_indexer(o["asset"]).astype(np.intp))
        o.insert(0, "t", np.searchsorted(times, o["time"].to_numpy("datetime64[ns]")))
        opts = self.options
        halted, interest = (self._frame(k) if on else None for k, on in (
            ("halted", opts.dd_limit), ("interest", float(opts.borrow_rate))))
        if halted is not None:   # NaN: bars restored from a checkpoint without them
            halted = None if halted.isnull().any() else halted.astype(bool)
        return BacktestResult(self.equity, self.cash, self.positions, o,
                              float(opts.init_cash), int(opts.periods), bool(opts.group),
                              self._frame("close"), halted=halted, interest=interest,
                              dd_mode=opts.dd_mode if opts.dd_limit else None,
                              options=opts)

    def get_performance_stats(self) -> dict:
        """The statistics AlertMonitor and the dashboard read (the engine's names).

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 70))
        >>> dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
        ...                 history=ds.isel(time=slice(0, 60)), fees=0.001)
        >>> dep = dep.replay(ds.isel(time=slice(60, None)))
        >>> st = dep.get_performance_stats()
        >>> st["bars_processed"], st["orders_submitted"], st["kill_switch"]
        (10, 24, False)
        """
        lat = np.array(self._rec["latency"]) * 1e6
        return {"ticks_processed": len(lat), "bars_processed": len(lat),
                "rejected_ticks": 0, "orders_submitted": len(self._orders),
                "orders_rejected": len(self._rejections), "kill_switch": self.killed,
                "p50_latency_us": float(np.percentile(lat, 50)) if lat.size else 0.0,
                "p99_latency_us": float(np.percentile(lat, 99)) if lat.size else 0.0}

    def pnl(self) -> dict:
        """Equity, its peak and the drawdown from it (currency and fraction).

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 70))
        >>> dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
        ...                 history=ds.isel(time=slice(0, 60)), fees=0.001)
        >>> dep = dep.replay(ds.isel(time=slice(60, None)))
        >>> {k: round(v, 2) for k, v in dep.pnl().items()}
        {'equity': 409404.98, 'peak': 409991.15, 'drawdown': 586.17, 'drawdown_pct': 0.0}
        """
        eq = float(self.equity_now())
        peak = self._peak or self.equity_start()
        return {"equity": eq, "peak": peak, "drawdown": peak - eq,
                "drawdown_pct": 1 - eq / peak if peak > 0 else 0.0}

    def health_check(self, max_silent_bars: float = 3, bar_seconds: float | None = None,
                     p99_limit_ms: float = 20.0) -> dict:
        """``waiting`` before the first bar; ``critical`` with the kill switch on;
        ``degraded`` when no bar came for ``max_silent_bars`` bar intervals
        (``bar_seconds``: wall-clock seconds per bar, default the data's spacing) or the
        p99 decision time is above ``p99_limit_ms``; else ``healthy``.

        Parameters
        ----------
        max_silent_bars : float, default 3
            Bar intervals without a bar before ``degraded`` (> 0).
        bar_seconds : float, optional
            Wall-clock seconds per bar (default: the data's median spacing).
        p99_limit_ms : float, default 20.0
            The p99 decision time above which the deployment is ``degraded``.

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 70))
        >>> dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
        ...                 history=ds.isel(time=slice(0, 60)), fees=0.001)
        >>> dep = dep.replay(ds.isel(time=slice(60, None)))
        >>> dep.health_check(bar_seconds=86400, p99_limit_ms=1e6)["status"]
        'healthy'
        """
        max_silent_bars = _validate.number("max_silent_bars", max_silent_bars, 0,
                                           lo_open=True)
        if bar_seconds is not None:   # True was 1 s, -60 never silent: refused
            bar_seconds = _validate.number("bar_seconds", bar_seconds, 0, lo_open=True)
        p99_limit_ms = _validate.number("p99_limit_ms", p99_limit_ms, 0, finite=False)
        if self._last_wall is None:
            return {"status": "waiting", "message": "no bar has arrived yet"}
        if self.killed:
            below = fmt.pct(self.pnl()["drawdown_pct"], sign=False)
            return {"status": "critical", "message": f"drawdown kill switch is on "
                    f"({below} below the peak): no new positions"}
        problems = []
        if bar_seconds is None and len(self._times) > 1:
            bar_seconds = float(np.median(np.diff(np.array(self._times[-50:]))) /
                                np.timedelta64(1, "s"))
        silent = _time.monotonic() - self._last_wall
        if bar_seconds and silent > max_silent_bars * bar_seconds:
            problems.append(f"the feed has been silent for {silent:,.0f} s "
                            f"(> {max_silent_bars} bars of {bar_seconds:,.0f} s)")
        p99 = self.get_performance_stats()["p99_latency_us"] / 1e3
        if p99 > p99_limit_ms:
            problems.append(f"p99 decision time {p99:.1f} ms > {p99_limit_ms} ms")
        if problems:
            return {"status": "degraded", "message": "; ".join(problems)}
        return {"status": "healthy", "message": f"{len(self._rec['time'])} bars, "
                f"{len(self._orders)} orders, {len(self._rejections)} rejections"}

    def plot(self, **kw):
        """The deployment dashboard (equity vs backtest, drawdown, orders, rejections).

        Parameters
        ----------
        **kw
            Passed to ``ql.plots.deployment_dashboard``.

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 70))
        >>> dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
        ...                 history=ds.isel(time=slice(0, 60)), fees=0.001)
        >>> dep = dep.replay(ds.isel(time=slice(60, None)))
        >>> type(dep.plot()).__name__
        'Column'
        """
        from quantlab import plots   # lazy: drawing lives in the face

        return plots.deployment_dashboard(self, **kw)

    def __repr__(self):
        n = len(self._rec["time"])
        span = f"{str(self._rec['time'][0])[:10]} .. {str(self._rec['time'][-1])[:10]}" \
            if n else "no bar yet"
        return (f"<Deployment {self.strategy!r}: {len(self.universe or [])} assets, {n} "
                f"bars ({span}), equity {self.equity_now():,.2f}, {len(self._orders)} "
                f"orders, {len(self._rejections)} rejections{', KILLED' if self.killed else ''}>")


_ORDER_COLS = ("time", "asset", "reason", "size", "price", "fee")   # time, text, values
_REJ_COLS = ("time", "asset", "reason", "wanted", "given")
_TEXT_COLS = ("asset", "reason")
_REC_ASSET = ("positions", "signal", "target")      # (asset,) records, stacked
_REC_ACCOUNT = ("equity", "cash")                   # (account,) records
# (account,) records a segment holds as one optional array "rec.extras" (older lack it):
# drawdown control's flat bars and the borrowing charges, as floats (NaN: unknown)
_REC_EXTRA = ("halted", "interest")


def _bar_time(value) -> np.datetime64:
    """A bar's ``time`` coordinate as naive datetime64[ns] (NaT kept: ``_check_time``
    names it), a zoned one in UTC as replay reads a zoned index (xarray holds a zoned
    scalar as an object: it was refused as no date); DataError for a time that is no
    date (a string, a number)."""
    v = np.asarray(value)
    item = v.item() if v.ndim == 0 and v.dtype.kind == "O" else None
    try:   # a number was nanoseconds after 1970 to pandas, a string a date: refused
        stamp = pd.Timestamp(value) if v.dtype.kind == "M" else \
            pd.Timestamp(item) if isinstance(item, _dt.datetime) else None
    except (TypeError, ValueError):
        stamp = None
    if stamp is None:
        raise DataError(f"a bar's time must be a datetime64 date, got "
                        f"{v.item() if v.ndim == 0 else v!r} ({v.dtype}): ds.isel(time=i) "
                        "of a Dataset with a datetime time index")
    if stamp is pd.NaT:
        return np.datetime64("NaT", "ns")
    if stamp.tz is not None:
        stamp = stamp.tz_convert("UTC")
    return np.datetime64(stamp.tz_localize(None), "ns")


def _bar_text(bar) -> str | None:
    """A bar size as given (None: unknown), checked to be a pandas frequency."""
    if bar is None:
        return None
    try:
        if not isinstance(bar, str) or not bar.strip():
            raise TypeError
        if not re.fullmatch(r"\s*\d*[WMQY]\s*", bar):   # ql.calendar's periodic bars
            pd.tseries.frequencies.to_offset(bar)
    except (TypeError, ValueError):
        raise ValueError(f"bar must be a pandas frequency such as '1min' or '1D', got "
                         f"{_validate._show(bar)}") from None
    return bar.strip()


def _same_bar(a: str, b: str) -> bool:
    """Two bar sizes alike however spelt: '1min' and '60s', '1D' and '24h'."""
    if a == b:
        return True
    try:
        return pd.Timedelta(pd.tseries.frequencies.to_offset(a)) == \
            pd.Timedelta(pd.tseries.frequencies.to_offset(b))
    except (TypeError, ValueError):      # calendar bars ('1W', '1M'): as written
        return False


@contextlib.contextmanager
def _folder_lock(path: Path, shared: bool = False):
    """An exclusive ``flock`` on the checkpoint folder while a checkpoint is checked and
    written (two processes appending at once interleaved their segments); ``shared``
    while one is read (a restore reading the manifest just before a whole write deleted
    the segments it names called the checkpoint corrupt). Where the file system has no
    locks (or Windows), none."""
    try:
        import fcntl  # lazy: POSIX only (Windows has none)
        fd = os.open(path, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)       # releases the lock


def _manifest_there(path: Path) -> dict:
    """{writer, gen, n} of the manifest in ``path`` ({} when there is none readable)."""
    try:
        meta = json.loads(_read_regular(path / "deployment.json"))
        return {"writer": meta.get("writer"), "gen": int(meta.get("generation", 0)),
                "n": meta.get("segments")}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def _durable(tmp: Path, raw: bytes) -> None:
    """``raw`` written to ``tmp`` and on the disk (fsync) before it is renamed: without
    it a power cut after the rename could leave the new name with no data (ext4, xfs
    allocate on flush), and the checkpoint before it already replaced."""
    with open(tmp, "wb") as f:
        f.write(raw)
        f.flush()
        os.fsync(f.fileno())


def _sync_dir(path: Path) -> None:
    """The folder's renames on the disk (where the OS lets a folder be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:   # Windows: a folder cannot be opened; its renames are durable
        return
    try:
        os.fsync(fd)
    except OSError:   # some file systems refuse fsync on a folder (EINVAL)
        pass
    finally:
        os.close(fd)


def _write_checkpoint(path: Path, seg: Path, arrays: dict, meta: dict,
                      digests: list | None) -> list | None:
    """The segment, then the manifest naming it, each to a temporary name renamed
    when whole. A write error (disk full) or an interrupt leaves the previous
    checkpoint and no temporary file; the error names the checkpoint. ``digests``: the
    sha256 of the generation's earlier segments (None: unknown, an older writer's), the
    manifest lists them with this one's, so a segment of another deployment or
    checkpoint swapped in is refused on restore. Returns the list written."""
    tmps = (Path(f"{seg}.tmp"), path / "deployment.json.tmp")
    try:
        with io.BytesIO() as buf:
            np.savez(buf, **arrays)
            raw = buf.getvalue()
        if digests is not None:
            digests = [*digests, hashlib.sha256(raw).hexdigest()]
            meta = {**meta, "digests": digests}
        meta = json.loads(json.dumps(meta, default=_json_default))   # as it is read back
        meta["digest"] = _manifest_digest(meta)
        _durable(tmps[0], raw)
        os.replace(tmps[0], seg)                       # the segment first: the manifest
        _durable(tmps[1], json.dumps(meta).encode())   # names it only once
        os.replace(tmps[1], path / "deployment.json")  # it is whole
        _sync_dir(path)
    except BaseException as e:
        for t in tmps:
            with contextlib.suppress(OSError):
                t.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise io_error(e, f"checkpoint to {path}", "the checkpoint there before this "
                           "one is intact") from e
        raise
    return digests


def _pack(prefix: str, d: dict) -> dict:
    """``d``'s arrays as one flat array per dtype plus their layout (a JSON string)."""
    flat, layout = {}, []
    for k, v in d.items():
        v = np.asarray(v)
        parts = flat.setdefault(v.dtype.str, [])
        layout.append([k, v.dtype.str, list(v.shape), sum(p.size for p in parts)])
        parts.append(v.ravel())
    out = {f"{prefix}.{dt}": np.concatenate(p) for dt, p in flat.items()}
    out[f"{prefix}.layout"] = np.array(json.dumps(layout))
    return out


def _unpack(prefix: str, arrays: dict) -> dict:
    """The arrays :func:`_pack` packed."""
    if f"{prefix}.layout" not in arrays:
        return {}
    out = {}
    for k, dt, shape, at in json.loads(str(arrays[f"{prefix}.layout"])):
        size = int(np.prod(shape, dtype=np.int64))
        out[k] = arrays[f"{prefix}.{dt}"][at:at + size].reshape(shape)
    return out


# manifest key -> the JSON types it may hold (format 2 names segments; format 1 holds
# the bars' and records' times, orders and rejections itself)
_MANIFEST = {"format": (int,), "strategy": (str,), "params": (dict,), "options": (dict,),
             "risk": (dict,), "universe": (list, type(None)), "variables": (list,),
             "first": (int,), "seen": (int,), "killed": (bool,),
             "peak": (float, int, type(None))}
_MANIFEST_V = {1: {"times": (list,), "record_times": (list,), "orders": (list,),
                   "rejections": (list,)},
               2: {"generation": (int,), "segments": (int,)}}
_SEG_KEYS = ("bars.index", "bars.time", "bars", "rec.time", "rec.assets", "rec.accounts",
             "rec.latency")


def _bad(where, what) -> DataError:
    return DataError(f"corrupt deployment checkpoint {where}: {what}")


def _read_regular(file: Path) -> bytes:
    """The bytes of ``file``; what is not a regular file is a DataError naming it (a FIFO
    as ``deployment.json`` hung restore, and the next checkpoint; a device such as
    /dev/zero would be read until memory ran out)."""
    fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _bad(file, "not a regular file (a FIFO, a device or a directory)")
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)


def _load_npz(file: Path, sha256: str | None = None) -> dict:
    """The arrays of ``file``, read whole and the file closed; any failure a DataError,
    as is bytes whose digest is not ``sha256`` (when given: the manifest's)."""
    try:     # our own handle: np.load leaks its own when the zip directory is bad
        raw = _read_regular(file)
        with io.BytesIO(raw) as f:
            z = np.load(f, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise _bad(file, f"not an npz archive (one {type(z).__name__})")
            with z:
                arrays = {k: z[k] for k in z.files}
        if sha256 is not None and hashlib.sha256(raw).hexdigest() != sha256:
            raise _bad(file, "not the segment the manifest names (its sha256 differs): "
                             "a segment of another deployment or checkpoint, or edited")
        return arrays
    except DataError:
        raise
    except FileNotFoundError:
        raise _bad(file, "the file is missing (the manifest names it)") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError,
            UnicodeDecodeError) as e:
        raise _bad(file, f"cannot read it ({type(e).__name__}: {e})") from None


def _read_checkpoint(path: Path) -> tuple:
    """(meta, arrays, intact) of the checkpoint at ``path`` in format 1's layout, every
    file read and checked: a DataError naming the file and key for anything unreadable,
    missing, of the wrong type or inconsistent (no defaults: a checkpoint restores
    exactly or not at all). ``intact``: the manifest's digest matches it (or it has
    none: written before quantlab recorded it); restore says so once every value was
    checked. FileNotFoundError: no checkpoint there."""
    file = path / "deployment.json"
    try:
        text = _read_regular(file).decode("utf-8")
        meta = json.loads(text)
    except DataError:
        raise
    except FileNotFoundError:
        raise FileNotFoundError(f"no deployment checkpoint in {path} (no {file.name})") \
            from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise _bad(file, f"cannot read it ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict):
        raise _bad(file, f"expected a JSON object, found {type(meta).__name__}")
    intact = (meta.get("format") != FORMAT or "digest" not in meta   # (format 1: none)
              or meta["digest"] == _manifest_digest(meta))            # said last
    if not isinstance(meta.get("bar"), (str, type(None))):   # optional: older lack it
        raise _bad(file, f"'bar' must be str or null, found {meta['bar']!r}")
    sp = meta.get("signal_periods", 1)
    if isinstance(sp, bool) or not isinstance(sp, (int, float)) or not 0 < sp < math.inf:
        raise _bad(file, f"'signal_periods' must be a positive number, found {sp!r}")
    if meta.get("format") not in (1, FORMAT) or isinstance(meta.get("format"), bool):
        raise DataError(f"checkpoint {path} has format {meta.get('format')!r}; this "
                        f"quantlab {__version__} reads formats 1 and {FORMAT}")
    for key, types in {**_MANIFEST, **_MANIFEST_V[meta["format"]]}.items():
        if key not in meta:
            raise _bad(file, f"key {key!r} is missing")
        v = meta[key]
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
            want = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise _bad(file, f"{key!r} must be {want}, found {v!r}")
    _check_manifest(file, meta)
    if meta["format"] == 1:
        arrays = _load_npz(path / "deployment.npz")
        _check_arrays(path / "deployment.npz", meta, arrays)
        return meta, arrays, intact
    digests = meta.get("digests")    # absent: written before quantlab recorded them
    if digests is not None and (not isinstance(digests, list)
                                or not all(isinstance(d, str) for d in digests)):
        raise _bad(file, f"'digests' must be a list of str, found {digests!r}")
    segs = [_load_npz(path / f"seg-{meta['generation']}-{k}.npz",
                      digests[k] if digests and k < len(digests) else None)
            for k in range(meta["segments"])]
    if digests is not None and len(digests) != meta["segments"]:
        raise _bad(file, f"'digests' names {len(digests)} segments, 'segments' says "
                         f"{meta['segments']}")
    for k, seg in enumerate(segs):
        _check_segment(path / f"seg-{meta['generation']}-{k}.npz", meta, seg)
    try:      # the kernel state's layout (JSON) and packed arrays
        meta, arrays = _read_segments(path, meta, segs)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise _bad(path / f"seg-{meta['generation']}-{meta['segments'] - 1}.npz",
                   f"cannot unpack it ({type(e).__name__}: {e})") from None
    _check_arrays(path / f"seg-{meta['generation']}-*.npz", meta, arrays)
    return meta, arrays, intact


def _manifest_digest(meta: dict) -> str:
    """The sha256 of a manifest's canonical JSON, its own ``digest`` left out."""
    return hashlib.sha256(json.dumps({k: v for k, v in meta.items() if k != "digest"},
                                     sort_keys=True).encode()).hexdigest()


def _check_manifest(file: Path, meta: dict) -> None:
    """The manifest's values: counts, names, and options/risk with exactly the keys
    the writer writes."""
    for key in ("first", "seen", *(("segments", "generation") if meta["format"] == 2
                                   else ())):
        if meta[key] < (1 if key == "segments" else 0):
            raise _bad(file, f"{key!r} must be >= {1 if key == 'segments' else 0}, "
                             f"found {meta[key]}")
    if meta["first"] > meta["seen"]:
        raise _bad(file, f"'first' ({meta['first']}) is above 'seen' ({meta['seen']})")
    if meta["peak"] is not None and not math.isfinite(meta["peak"]):
        raise _bad(file, f"'peak' must be finite, found {meta['peak']}")
    for key in ("universe", "variables"):
        if meta[key] is not None and not all(isinstance(a, str) for a in meta[key]):
            raise _bad(file, f"{key!r} must be a list of str, found {meta[key]!r}")
    unknown = set(meta["variables"]) - set(BAR_VARS)
    if unknown:
        raise _bad(file, f"'variables' holds unknown {sorted(unknown)}; known {BAR_VARS}")
    for key, want in (("options", BacktestOptions().to_dict()),
                      ("risk", asdict(RiskLimits()))):
        # "group" and "accumulate" are written since quantlab 0.2; older: False
        missing = set(want) - set(meta[key]) - ({"group", "accumulate"} if key == "options"
                                                else set())
        extra = set(meta[key]) - set(want)
        if missing or extra:
            raise _bad(file, f"{key!r} must hold every key the writer writes; missing "
                             f"{sorted(missing)}, unknown {sorted(extra)}")
    unknown = meta.get("closes_unknown", 0)   # optional: older manifests lack it
    if not isinstance(unknown, int) or isinstance(unknown, bool) or unknown < 0:
        raise _bad(file, f"'closes_unknown' must be an int >= 0, found {unknown!r}")
    if not isinstance(meta["options"].get("group", False), bool):
        raise _bad(file, f"options 'group' must be bool, found "
                         f"{meta['options']['group']!r}")
    if meta["format"] == 1:
        for key in ("times", "record_times"):
            if not all(isinstance(t, str) for t in meta[key]):
                raise _bad(file, f"{key!r} must be a list of timestamps (str)")
        for key, cols in (("orders", _ORDER_COLS), ("rejections", _REJ_COLS)):
            for o in meta[key]:
                if not isinstance(o, dict) or set(o) != set(cols):
                    raise _bad(file, f"each of {key!r} must be an object with the keys "
                                     f"{list(cols)}, found {o!r}")


def _meta_accounts(meta: dict) -> int:
    """The accounts of a checkpoint's records: one (``group``) or one per asset."""
    return 1 if meta["options"].get("group") else len(meta["universe"] or [])


def _check_segment(file: Path, meta: dict, seg: dict) -> None:
    """One format-2 segment's arrays: present, and shapes agreeing with each other."""
    for key in _SEG_KEYS:
        if key not in seg:
            raise _bad(file, f"array {key!r} is missing")
    n, r = len(seg["bars.index"]), len(seg["rec.time"])
    width, acc = len(meta["universe"] or []), _meta_accounts(meta)
    shapes = {"bars.time": (n,), "bars": (len(meta["variables"]), n, width),
              "rec.latency": (r,)}
    if r:
        shapes.update({"rec.assets": (len(_REC_ASSET), r, width),
                       "rec.accounts": (len(_REC_ACCOUNT), r, acc)})
    if "rec.close" in seg:   # optional: older segments lack it (result()'s prices)
        shapes["rec.close"] = (r, width)
    if "rec.extras" in seg:   # optional, as rec.close
        shapes["rec.extras"] = (len(_REC_EXTRA), r, acc)
    for key, name, cols in (("orders", "orders", _ORDER_COLS), ("rej", "rejections",
                                                                _REJ_COLS)):
        if f"{key}.time" in seg:
            m = len(seg[f"{key}.time"])
            shapes.update({f"{key}.text": (m, len(_TEXT_COLS)),
                           f"{key}.values": (m, len(cols) - 3)})
    if not meta["variables"] and n == 0:
        shapes.pop("bars")
    for key, shape in shapes.items():
        if key not in seg or seg[key].shape != shape:
            raise _bad(file, f"array {key!r} must have the shape {shape}, found "
                             f"{seg[key].shape if key in seg else 'none'}")


def _check_arrays(where, meta: dict, arrays: dict) -> None:
    """The restored layout: bars, records and their times of agreeing lengths."""
    n, r = len(meta["times"]), len(meta["record_times"])
    if meta["seen"] - meta["first"] != n:
        raise _bad(where, f"{n} buffered bar times, but 'seen' - 'first' = "
                          f"{meta['seen'] - meta['first']}")
    width = len(meta["universe"] or [])
    acc = _meta_accounts(meta)
    shapes = {f"buf.{v}": (n, width) for v in meta["variables"]}
    shapes.update({f"rec.{k}": (r, width) for k in _REC_ASSET})
    shapes.update({f"rec.{k}": (r, acc) for k in _REC_ACCOUNT})
    shapes["rec.latency"] = (r,)
    if "rec.close" in arrays:   # optional: older checkpoints lack it
        shapes["rec.close"] = (r, width)
    shapes.update({f"rec.{k}": (r, acc) for k in _REC_EXTRA if f"rec.{k}" in arrays})
    if r == 0:
        shapes.update({f"rec.{k}": (0,) for k in (*_REC_ASSET, *_REC_ACCOUNT)})
    for key, shape in shapes.items():
        got = arrays.get(key)
        if got is None or (got.shape != shape and not (r == 0 and got.size == 0)):
            raise _bad(where, f"array {key!r} must have the shape {shape}, found "
                              f"{'none' if got is None else got.shape}")
        if got.dtype.kind not in "fiu":
            raise _bad(where, f"array {key!r} must be numeric, found {got.dtype}")
    for key in ("last_close", "prev_close", "slip_prev"):   # optional: older lack them
        last = arrays.get(key)
        if last is not None and (last.shape != (width,) or last.dtype.kind not in "fiu"):
            raise _bad(where, f"array {key!r} must be {width} numbers, found {last.dtype} "
                              f"{last.shape}")
    if meta.get("closes_unknown", 0) > r:
        raise _bad(where, f"'closes_unknown' ({meta['closes_unknown']}) is above the "
                          f"{r} records")
    # closes, as validate has them: a bad one changed every fill after (the carried ones)
    # or result()'s prices (the recorded ones, rec.close: rows of one per asset)
    for key in ("last_close", "prev_close", "slip_prev", "rec.close"):
        closes = arrays.get(key)
        if closes is None or not closes.size:
            continue
        bad = np.flatnonzero(~(np.isnan(closes) | (np.isfinite(closes) &
                                                   (closes >= MIN_PRICE))))
        if bad.size:
            raise _bad(where, f"array {key!r} holds {float(closes.flat[bad[0]])!r} for asset "
                              f"{(meta['universe'] or [None] * width)[bad[0] % width]!r}: "
                              "a close is NaN or a finite price >= 2.2e-308 (a normal double)")
    for key in ("times", "record_times"):
        try:
            t = np.array(meta[key], dtype="datetime64[ns]")
        except (ValueError, TypeError) as e:
            raise _bad(where, f"{key!r} holds a value that is not a timestamp ({e})") \
                from None
        if np.isnat(t).any() or (np.diff(t) <= np.timedelta64(0)).any():
            raise _bad(where, f"{key!r} must be strictly increasing timestamps")


def _read_segments(path: Path, meta: dict, segs: list | None = None) -> tuple:
    """(meta, arrays) of a segmented checkpoint in the one-file layout ``restore``
    reads (format 1): the segments concatenated, the bars from the buffer's first on,
    the state of the last segment. ``segs``: the segments' arrays, already read."""
    if segs is None:
        segs = [_load_npz(path / f"seg-{meta['generation']}-{k}.npz")
                for k in range(meta["segments"])]
    arrays = {f"state.{k}": v for k, v in _unpack("state", segs[-1]).items()}
    for key in ("last_close", "prev_close", "slip_prev"):   # per asset: the last segment's
        if key in segs[-1]:
            arrays[key] = segs[-1][key]
    arrays.update({k: v for k, v in segs[0].items() if k.startswith("inputs.")})

    def cat(key, axis=0):
        parts = [s[key] for s in segs if key in s]
        return np.concatenate(parts, axis=axis) if parts else None

    keep = cat("bars.index") >= meta["first"]
    bars = cat("bars", axis=1)
    meta = {**meta, "times": [str(t) for t in cat("bars.time")[keep]],
            "record_times": [str(t) for t in cat("rec.time")]}
    for j, v in enumerate(meta["variables"]):
        arrays[f"buf.{v}"] = bars[j][keep]
    for key, names in (("rec.assets", _REC_ASSET), ("rec.accounts", _REC_ACCOUNT)):
        got = [s[key] for s in segs if s[key].size]
        for j, k in enumerate(names):
            arrays[f"rec.{k}"] = np.concatenate([g[j] for g in got]) if got else np.zeros(0)
    arrays["rec.latency"] = cat("rec.latency")
    # a segment written before closes were recorded: NaN rows, counted (result() refuses)
    closes = [s["rec.close"] if "rec.close" in s else
              np.full((len(s["rec.time"]), len(meta["universe"] or [])), np.nan) for s in segs]
    arrays["rec.close"] = np.concatenate(closes)
    acc = _meta_accounts(meta)
    extras = np.concatenate([s["rec.extras"] if "rec.extras" in s else np.full(
        (len(_REC_EXTRA), len(s["rec.time"]), acc), np.nan) for s in segs], axis=1)
    arrays.update({f"rec.{k}": extras[j] for j, k in enumerate(_REC_EXTRA)})
    meta["closes_unknown"] = max(meta.get("closes_unknown", 0), sum(
        len(s["rec.time"]) for s in segs if "rec.close" not in s))
    for name, key, cols in (("orders", "orders", _ORDER_COLS), ("rejections", "rej", _REJ_COLS)):
        time_, text, vals = (cat(f"{key}.{c}") for c in ("time", "text", "values"))
        meta[name] = [] if time_ is None else [
            {"time": str(time_[j]), **dict(zip(_TEXT_COLS, map(str, text[j]))),
             **dict(zip(cols[3:], map(float, vals[j])))} for j in range(len(time_))]
    return meta, arrays


def _save_inputs(inputs: dict, arrays: dict) -> list:
    """The external inputs as JSON descriptions + npz arrays (no pickle): xarray
    Datasets/DataArrays, pandas Series/DataFrames (through xarray), NumPy arrays and
    JSON values. Anything else is a TypeError naming the input."""
    if not isinstance(inputs, dict):
        raise TypeError(f"inputs must be a dict of name -> value, got {type(inputs).__name__}")
    out = []
    for i, (name, value) in enumerate(inputs.items()):
        key = f"inputs.{i}"
        desc = {"name": name}
        if isinstance(value, (pd.Series, pd.DataFrame)):
            desc["kind"] = type(value).__name__
            value = xr.DataArray(value)
        if isinstance(value, (xr.Dataset, xr.DataArray)):
            ds = value.to_dataset(name="__value__") if isinstance(value, xr.DataArray) \
                else value
            desc.setdefault("kind", type(value).__name__)
            desc["da_name"] = value.name if isinstance(value, xr.DataArray) else None
            desc["attrs"] = _jsonable(name, value.attrs)
            desc["vars"] = []
            for j, (v, var) in enumerate([*ds.data_vars.items(), *ds.coords.items()]):
                arrays[f"{key}.{j}"] = _plain(name, var.values)
                desc["vars"].append([str(v), list(var.dims), v in ds.coords,
                                     _jsonable(name, var.attrs)])
        elif isinstance(value, np.ndarray):
            desc["kind"] = "ndarray"
            arrays[key] = _plain(name, value)
        else:
            desc["kind"], desc["value"] = "json", _jsonable(name, value)
        out.append(desc)
    return out


def _plain(name, a: np.ndarray) -> np.ndarray:
    """``a`` as an array npz stores without pickle (object strings -> unicode)."""
    if a.dtype.kind == "O":
        if not all(isinstance(x, str) for x in a.ravel()):
            raise TypeError(f"cannot save input {name!r} in a checkpoint: it holds Python "
                            "objects; pass it to Deployment.restore(inputs=) instead")
        return a.astype(str)
    return a


def _jsonable(name, value):
    try:
        json.dumps(value, default=_json_default)
    except (TypeError, ValueError):
        raise TypeError(f"cannot save input {name!r} in a checkpoint ({type(value).__name__}"
                        "); pass it to Deployment.restore(inputs=) instead") from None
    return value


def _load_inputs(descs: list, arrays: dict) -> dict:
    """The inputs :func:`_save_inputs` saved."""
    out = {}
    for i, d in enumerate(descs):
        key = f"inputs.{i}"
        if d["kind"] == "json":
            out[d["name"]] = d["value"]
            continue
        if d["kind"] == "ndarray":
            out[d["name"]] = arrays[key]
            continue
        data = {v: (tuple(dims), arrays[f"{key}.{j}"], attrs)
                for j, (v, dims, is_coord, attrs) in enumerate(d["vars"]) if not is_coord}
        coords = {v: (tuple(dims), arrays[f"{key}.{j}"], attrs)
                  for j, (v, dims, is_coord, attrs) in enumerate(d["vars"]) if is_coord}
        ds = xr.Dataset(data, coords=coords, attrs=d["attrs"])
        if d["kind"] == "Dataset":
            out[d["name"]] = ds
            continue
        da = ds["__value__"].rename(d["da_name"]).assign_attrs(d["attrs"])
        out[d["name"]] = da.to_pandas() if d["kind"] in ("Series", "DataFrame") else da
    return out


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.datetime64, pd.Timestamp)):
        return str(o)
    raise TypeError(f"cannot save {type(o).__name__} in a checkpoint")
