"""Deployment: a researched strategy trading bar by bar on replayed or live data.

``ql.deploy(strategy, **backtest_options)`` -> :class:`Deployment`. Each closed bar goes
through :meth:`Deployment.on_bar`: the strategy's signal is computed from the trailing
window of history it declares (``strategy.warmup`` bars, windows starting on a multiple
of ``strategy.period``: see :meth:`Strategy.history_start`), the target passes the risk
limits, and the backtest kernel advances one bar from its saved state. The kernel, its
options and its state are those of ``ql.backtest``, so a replay trades exactly as the
backtest of the same bars (orders, fills, equity). Paper trading only: no broker.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import time as _time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from quantlab import __version__, _validate, strategies
from quantlab._kernels.backtest import SimState
from quantlab.backtesting import dispatch
from quantlab.backtesting.options import BacktestOptions
from quantlab.backtesting.result import from_run
from quantlab.calendar import periods_for
from quantlab.data import load_csv, validate
from quantlab.engine.feeds import FeedError
from quantlab.errors import DataError

__all__ = ["deploy", "Deployment", "RiskLimits", "FORMAT"]

FORMAT = 1        # checkpoint format version
BAR_VARS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class RiskLimits:
    """Pre-trade limits on each bar's targets (inf / 0 = off). A target that breaks one
    is changed as named below and the change recorded in ``Deployment.rejections``.

    ``max_position``: |target exposure| per asset (clipped to it); ``max_order_value``:
    the value an order may trade, in currency (the asset keeps its position);
    ``max_positions``: assets held at once (the smallest new positions keep their old
    target); ``max_concentration``: |target| / Σ|targets| (clipped); ``max_drawdown_pct``:
    equity below (1 - it) x its peak trips the kill switch: everything is closed and no
    new position is opened until :meth:`Deployment.reset_kill_switch`."""

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

    def apply(self, target: np.ndarray, held: np.ndarray, price: np.ndarray, equity: float,
              killed: bool) -> tuple[np.ndarray, list]:
        """``target`` (exposure per asset, NaN = hold) after the limits, and the
        rejections [(asset index, reason, wanted, given)]. ``held``: current shares."""
        out, rej = target.copy(), []
        now = np.where(np.isfinite(price) & (equity > 0), held * price / equity, 0.0)

        def change(i, reason, value):
            rej.append((i, reason, float(target[i]), float(value)))
            out[i] = value

        if killed:    # close everything, open nothing
            for i in np.flatnonzero((np.isfinite(out) & (out != 0)) | (now != 0)):
                change(i, "kill_switch", 0.0)
            return out, rej
        for i in np.flatnonzero(np.isfinite(out)):
            if abs(out[i]) > self.max_position:
                change(i, "max_position", math.copysign(self.max_position, out[i]))
        gross = np.nansum(np.abs(np.where(np.isfinite(out), out, now)))
        if np.isfinite(self.max_concentration) and gross > 0:
            for i in np.flatnonzero(np.isfinite(out)):
                if abs(out[i]) / gross > self.max_concentration:
                    change(i, "max_concentration",
                           math.copysign(self.max_concentration * gross, out[i]))
        if np.isfinite(self.max_order_value):
            for i in np.flatnonzero(np.isfinite(out) & np.isfinite(price)):
                if abs(out[i] - now[i]) * equity > self.max_order_value:
                    change(i, "max_order_value", np.nan)     # keeps its position
        if self.max_positions:
            after = np.where(np.isfinite(out), out, now)
            new = [i for i in np.flatnonzero((after != 0) & (now == 0))]
            excess = int((after != 0).sum()) - self.max_positions
            for i in sorted(new, key=lambda i: abs(after[i]))[:max(excess, 0)]:
                change(i, "max_positions", np.nan)
        return out, rej


def _resolve(strategy, params):
    """(Strategy, backtest options carried over) from a name, Strategy, class or an
    OptimizationResult (its best parameters and its backtest options)."""
    carried = {}
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


def deploy(strategy, params: dict | None = None, *, universe=None, history=None,
           inputs=None, risk: RiskLimits | dict | None = None, **backtest_options):
    """Deploy ``strategy`` (a registry name, a Strategy, or an OptimizationResult whose
    chosen parameters and backtest options carry over) as a paper-trading
    :class:`Deployment`.

    ``universe``: the assets (default: those of ``history``, else of the first bar).
    ``history``: bars before the deployment starts (a Dataset), used only to warm up the
    signal; no orders are placed on them. ``inputs``: the strategy's external inputs
    (default: its bundled ``default_inputs`` cut at each bar). ``risk``: a
    :class:`RiskLimits` (or its fields as a dict). ``backtest_options``: those of
    ``ql.backtest`` (init_cash, fees, slippage, execution, max_leverage, sl_stop, ...).
    """
    s, carried = _resolve(strategy, params)
    options = BacktestOptions(**{**carried, **backtest_options})
    if isinstance(risk, dict):
        risk = RiskLimits(**risk)
    return Deployment(s, options, universe=universe, history=history, inputs=inputs,
                      risk=risk)


class Deployment:
    """A strategy trading bar by bar (paper trading). Build it with :func:`deploy`.

    State, as labelled objects like a BacktestResult: ``equity``, ``cash`` (time[,
    account]), ``positions`` (time, asset; shares), ``signal`` (what the strategy asked
    for), ``targets`` (after the risk limits), ``orders``, ``rejections`` (DataFrames),
    ``latency`` (seconds per decision). Accounts follow ``group`` as in ``ql.backtest``.
    """

    def __init__(self, strategy, options, *, universe=None, history=None, inputs=None,
                 risk=None):
        if options.periods is None:   # annualise (borrow_rate) as ql.backtest of this data
            options = dataclasses.replace(options, periods=int(round(periods_for(
                history, None, default=252) if history is not None else 252)))
        self.strategy, self.options = strategy, options
        self.risk = risk or RiskLimits()
        self.inputs = inputs
        if universe is None and history is not None:
            universe = history.asset.values.tolist()
        self.universe = None if universe is None else [str(a) for a in universe]
        self._vars: tuple = ()          # set by the history or the first bar
        self._buf: dict = {}
        self._keep = self._history_needed()
        self._times: list = []          # the buffered bars' times
        self._first = 0                 # index (over all bars seen) of the first buffered
        self._seen = 0                  # bars seen, history included
        self.state = None               # the backtest kernel's state (SimState)
        self._rec = {k: [] for k in ("time", "equity", "cash", "positions", "signal",
                                     "target", "latency")}
        self._orders: list = []
        self._rejections: list = []
        self.killed = False
        self._peak = None               # the equity peak (all accounts), from the first bar
        self._last_wall = None
        self.listeners: list = []       # called with each bar's status (CLI, dashboards)
        if history is not None:
            self._add_history(history)

    # ---- what a bar needs -------------------------------------------------------
    def _required(self) -> set:
        return set(self.strategy.requires) | {"close"} | set(self.options.needs())

    def _pick(self, present) -> tuple:
        """The variables every bar must carry: the OHLCV the first bar (or the history)
        has -- stops and slippage read them as ql.backtest does -- and those needed."""
        return tuple(v for v in BAR_VARS if v in present) + \
            tuple(sorted(self._required() - set(BAR_VARS)))

    def _history_needed(self) -> int | None:
        """Bars kept: the strategy's window (any phase) and the slippage model's."""
        w = self.strategy.warmup
        if w is None:
            return None
        return max(w + self.strategy.period - 1, self.options.history_needed())

    def _add_history(self, history: xr.Dataset) -> None:
        """Validated once as a whole (as ql.backtest does), then buffered row by row."""
        _validate.coords(history, what="history")
        self._vars = self._pick(history.data_vars)
        absent = sorted(self._required() - set(history.data_vars))
        if absent:
            raise DataError(f"history lacks {absent} (needed by {self.strategy.name} and "
                            "the backtest options)")
        history = validate(history[list(self._vars)].sel(asset=self.universe))
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
        t = np.datetime64(pd.Timestamp(bar["time"].values).tz_localize(None), "ns")
        if self._times and t <= self._times[-1]:
            what = "duplicated" if t == self._times[-1] else "out of order"
            raise DataError(f"bar at {str(t)[:19]} is {what}: the last bar was at "
                            f"{str(self._times[-1])[:19]}; bars must arrive in time order")
        assets = [str(a) for a in bar.asset.values]
        universe = self.universe or assets
        missing, extra = set(universe) - set(assets), set(assets) - set(universe)
        if missing or extra or len(set(assets)) != len(assets):
            raise DataError(
                f"bar at {str(t)[:19]}: assets {sorted(assets)} are not the universe "
                f"{sorted(universe)} (missing {sorted(missing)}, unknown {sorted(extra)}); "
                "send every asset, with NaN values where it has no bar")
        vars_ = self._vars or self._pick(bar.data_vars)
        absent = sorted(v for v in set(vars_) | self._required() if v not in bar)
        if absent:
            raise DataError(f"bar at {str(t)[:19]} lacks {absent} (needed by "
                            f"{self.strategy.name} and the backtest options)")
        row = bar[list(vars_)].sel(asset=universe)
        # checked with the last bars before it: which variables an asset has (a bar is
        # complete or all NaN over them) shows over several bars, not in one
        recent = xr.concat([self._window(self._seen - 20)[list(vars_)],
                            row.expand_dims(time=[t])], dim="time") if self._times else \
            row.expand_dims(time=[t])
        validate(recent, source=f"bar at {str(t)[:19]}")
        if self.universe is None:
            self.universe = universe
        return t, {v: np.asarray(row[v].values, dtype=np.float64) for v in vars_}

    def _push(self, parsed) -> None:
        t, values = parsed
        if not self._vars:
            self._vars = tuple(values)
        self._times.append(t)
        for v in self._vars:
            self._buf.setdefault(v, []).append(values[v])
        self._seen += 1
        if self._keep is not None:
            # keep enough for the next bar's window, whatever its phase
            drop = len(self._times) - self._keep - self.strategy.period
            if drop > 0:
                del self._times[:drop]
                for v in self._vars:
                    del self._buf[v][:drop]
                self._first += drop

    def _window(self, start: int) -> xr.Dataset:
        """The buffered bars from ``start`` (an index over all bars seen) to the latest."""
        i = max(0, start - self._first)
        coords = {"time": np.array(self._times[i:]), "asset": self.universe}
        return xr.Dataset({v: (("time", "asset"), np.array(self._buf[v][i:]))
                           for v in self._vars}, coords=coords)

    def on_bar(self, bar) -> dict:
        """Trade one closed bar: signal from the trailing window, risk limits, one step
        of the backtest kernel. Returns a status dict (time, equity, orders this bar,
        rejections this bar, latency). A bad bar raises DataError and changes nothing."""
        parsed = self._parse(bar)
        start = _time.perf_counter()
        self._push(parsed)
        n_orders, n_rej = len(self._orders), len(self._rejections)
        signal = self._decide()
        held = self.positions_now()
        close = self._buf["close"][-1]
        target, rejected = self.risk.apply(signal, held, np.where(np.isfinite(close), close,
                                                                  self._last_close()),
                                           self.equity_now(), self.killed)
        for i, reason, wanted, given in rejected:
            self._rejections.append({"time": parsed[0], "asset": self.universe[i],
                                     "reason": reason, "wanted": wanted, "given": given})
        self._advance(target)
        latency = _time.perf_counter() - start
        for k, v in (("signal", signal), ("target", target), ("latency", latency)):
            self._rec[k].append(v)
        self._watch_drawdown()
        self._last_wall = _time.monotonic()
        status = {"time": parsed[0], "equity": float(self.equity_now()),
                  "orders": len(self._orders) - n_orders,
                  "rejections": len(self._rejections) - n_rej, "latency_s": latency}
        for listener in self.listeners:
            listener(status)
        return status

    def _decide(self) -> np.ndarray:
        """The strategy's exposure per asset at the latest bar, from its trailing window."""
        window = self._window(self.strategy.history_start(self._seen - 1))
        inputs = self.inputs if self.inputs is not None else \
            self.strategy.default_inputs(window)
        sig = self.strategy.signal(window, **inputs)
        return np.asarray(sig.isel(time=-1).sel(asset=self.universe).values, dtype=float)

    def _advance(self, target: np.ndarray) -> None:
        """One kernel step at the latest bar from the saved state: ql.backtest's own
        dispatch and kernel, over the bars the slippage model reads."""
        window = self._window(self._seen - self.options.history_needed())
        n = len(self.universe)
        sig = np.full((window.sizes["time"], n), np.nan)
        sig[-1] = target
        sig = xr.DataArray(sig, dims=("time", "asset"), coords=window["close"].coords)
        if self.state is None:
            self.state = SimState(n, self.options.n_accounts(n), float(self.options.init_cash))
        res = from_run(dispatch.simulate(window, sig, None, None, self.options,
                                         state=self.state, start=window.sizes["time"] - 1),
                       self.options)
        self._rec["time"].append(self._times[-1])
        self._rec["equity"].append(np.atleast_1d(res.equity.values[-1]))
        self._rec["cash"].append(np.atleast_1d(res.cash.values[-1]))
        self._rec["positions"].append(res.positions.values[-1])
        for o in res.orders.itertuples():
            self._orders.append({"time": o.time, "asset": o.asset, "size": o.size,
                                 "price": o.price, "fee": o.fee, "reason": o.reason})

    def _watch_drawdown(self) -> None:
        eq = float(np.sum(self._rec["equity"][-1]))
        self._peak = max(self._peak or self.equity_start(), eq)
        if eq <= (1 - self.risk.max_drawdown_pct) * self._peak and not self.killed:
            self.killed = True

    def reset_kill_switch(self) -> None:
        """Trade again after the drawdown kill switch (the peak restarts from now)."""
        self.killed = False
        self._peak = float(np.sum(self.equity_now()))

    # ---- state -------------------------------------------------------------------------
    def positions_now(self) -> np.ndarray:
        return self._rec["positions"][-1] if self._rec["positions"] else \
            np.zeros(len(self.universe))

    def equity_start(self) -> float:
        """Initial cash of all accounts (one per asset unless ``group=True``)."""
        return float(self.options.init_cash) * self.options.n_accounts(
            len(self.universe or [None]))

    def equity_now(self):
        if self._rec["equity"]:
            return float(np.sum(self._rec["equity"][-1]))
        return self.equity_start()

    def _last_close(self) -> np.ndarray:
        """The last valid close per asset (NaN before its first bar)."""
        c = np.array(self._buf["close"])
        return pd.DataFrame(c).ffill().to_numpy()[-1] if len(c) else c

    def _frame(self, key) -> xr.DataArray:
        """A record as (time, asset), or (time,) for a group account's equity and cash."""
        account = key in ("equity", "cash") and self.options.group
        width = 1 if account else len(self.universe or [])
        v = np.array(self._rec[key], dtype=float).reshape(len(self._rec["time"]), width)
        coords = {"time": np.array(self._rec["time"], dtype="datetime64[ns]")}
        if account:
            return xr.DataArray(v[:, 0], dims=("time",), coords=coords, name=key)
        return xr.DataArray(v, dims=("time", "asset"),
                            coords={**coords, "asset": list(self.universe or [])}, name=key)

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
        return pd.DataFrame(self._orders, columns=["time", "asset", "size", "price", "fee",
                                                   "reason"])

    @property
    def rejections(self) -> pd.DataFrame:
        return pd.DataFrame(self._rejections, columns=["time", "asset", "reason", "wanted",
                                                       "given"])

    # ---- checkpoints (plain JSON + npz, no pickle) ---------------------------------------
    def checkpoint(self, path) -> Path:
        """Save everything needed to continue: ``path/deployment.json`` (strategy,
        options, limits, counters) and ``path/deployment.npz`` (kernel state, the bars
        the next decisions need, the records). Written to temporary files and renamed, so
        a process killed while saving leaves the previous checkpoint intact."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "quantlab": __version__, "strategy": self.strategy.name,
                "params": self.strategy.params, "options": self.options.to_dict(),
                "risk": asdict(self.risk), "universe": self.universe, "variables": self._vars,
                "first": self._first, "seen": self._seen, "killed": self.killed,
                "peak": self._peak, "times": [str(t) for t in self._times],
                "record_times": [str(t) for t in self._rec["time"]],
                "orders": [{**o, "time": str(o["time"])} for o in self._orders],
                "rejections": [{**r, "time": str(r["time"])} for r in self._rejections]}
        arrays = {f"buf.{v}": np.array(self._buf[v], dtype=float).reshape(
            len(self._times), -1) for v in self._vars}
        for k in ("equity", "cash", "positions", "signal", "target", "latency"):
            arrays[f"rec.{k}"] = np.array(self._rec[k], dtype=float)
        if self.state is not None:
            arrays.update({f"state.{k}": np.asarray(v)
                           for k, v in self.state.to_dict().items()})
        tmp_npz, tmp_json = path / "deployment.npz.tmp", path / "deployment.json.tmp"
        with open(tmp_npz, "wb") as f:
            np.savez(f, **arrays)
        tmp_json.write_text(json.dumps(meta, default=_json_default))
        os.replace(tmp_npz, path / "deployment.npz")   # the arrays first: the JSON names
        os.replace(tmp_json, path / "deployment.json")  # a complete pair only once both are
        return path

    @classmethod
    def restore(cls, path, *, strategy: str | None = None, inputs=None) -> Deployment:
        """A Deployment continued from :meth:`checkpoint`. ``strategy``: refuse a
        checkpoint of another strategy. ``inputs``: the external inputs, if the
        deployment was given its own (they are not saved)."""
        path = Path(path)
        try:
            meta = json.loads((path / "deployment.json").read_text())
            arrays = dict(np.load(path / "deployment.npz", allow_pickle=False))
        except FileNotFoundError:
            raise FileNotFoundError(f"no deployment checkpoint in {path} (deployment.json "
                                    "and deployment.npz)") from None
        if meta.get("format") != FORMAT:
            raise ValueError(f"checkpoint {path} has format {meta.get('format')!r}; this "
                             f"quantlab {__version__} reads format {FORMAT}")
        if strategy is not None and strategies.resolve(strategy).name != meta["strategy"]:
            raise ValueError(f"checkpoint {path} is of strategy {meta['strategy']!r}, not "
                             f"{strategies.resolve(strategy).name!r}")
        dep = cls(strategies.get(meta["strategy"], **meta["params"]),
                  BacktestOptions.from_dict(meta["options"]), universe=meta["universe"],
                  inputs=inputs, risk=RiskLimits(**meta["risk"]))
        dep._first, dep._seen, dep.killed = meta["first"], meta["seen"], meta["killed"]
        dep._peak = meta["peak"]
        dep._times = [np.datetime64(t, "ns") for t in meta["times"]]
        dep._vars = tuple(meta["variables"])
        for v in dep._vars:
            dep._buf[v] = list(arrays[f"buf.{v}"])
        dep._rec["time"] = [np.datetime64(t, "ns") for t in meta["record_times"]]
        for k in ("equity", "cash", "positions", "signal", "target", "latency"):
            dep._rec[k] = list(arrays[f"rec.{k}"])
        dep._orders = [{**o, "time": np.datetime64(o["time"], "ns")} for o in meta["orders"]]
        dep._rejections = [{**r, "time": np.datetime64(r["time"], "ns")}
                           for r in meta["rejections"]]
        state = {k[6:]: v for k, v in arrays.items() if k.startswith("state.")}
        dep.state = SimState.from_dict(state) if state else None
        return dep

    # ---- sources -----------------------------------------------------------------------
    def replay(self, source, speed: float | None = None, every: int = 0, echo=print):
        """Feed the bars of ``source`` (a Dataset, or a path ``ql.data.load_csv`` reads)
        through :meth:`on_bar`, in time order. ``speed``: bars per second (None: as fast
        as possible). ``every``: print a status line every that many bars (0: none).
        Returns self."""
        ds = source if isinstance(source, xr.Dataset) else load_csv(source)
        _validate.coords(ds, what="replay data")
        speed = None if speed is None else _validate.number("speed", speed, 0, lo_open=True)
        every = _validate.integer("every", every, 0)
        for i in range(ds.sizes["time"]):
            tick = _time.monotonic()
            status = self.on_bar(ds.isel(time=i))
            if every and (i + 1) % every == 0:
                echo(self.status_line(status))
            if speed:
                _time.sleep(max(0.0, 1 / speed - (_time.monotonic() - tick)))
        return self

    async def run_feed(self, bars, every: int = 0, echo=print):
        """Trade the bars an async iterator yields (a live feed). A feed that fails
        raises ``quantlab.engine.FeedError`` after keeping every bar received before."""
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
        return (f"{str(status['time'])[:19]}  equity {status['equity']:,.2f}  orders "
                f"{status['orders']}  rejected {status['rejections']}  "
                f"{status['latency_s'] * 1e3:.1f} ms")

    # ---- monitoring -------------------------------------------------------------------
    def get_performance_stats(self) -> dict:
        """The statistics AlertMonitor and the dashboard read (the engine's names)."""
        lat = np.array(self._rec["latency"]) * 1e6
        return {"ticks_processed": len(lat), "bars_processed": len(lat),
                "rejected_ticks": 0, "orders_submitted": len(self._orders),
                "orders_rejected": len(self._rejections), "kill_switch": self.killed,
                "p50_latency_us": float(np.percentile(lat, 50)) if lat.size else 0.0,
                "p99_latency_us": float(np.percentile(lat, 99)) if lat.size else 0.0}

    def pnl(self) -> dict:
        eq = float(self.equity_now())
        peak = self._peak or self.equity_start()
        return {"equity": eq, "peak": peak, "drawdown": peak - eq,
                "drawdown_pct": 1 - eq / peak if peak > 0 else 0.0}

    def health_check(self, max_silent_bars: float = 3, bar_seconds: float | None = None,
                     p99_limit_ms: float = 20.0) -> dict:
        """``waiting`` before the first bar; ``critical`` with the kill switch on;
        ``degraded`` when no bar came for ``max_silent_bars`` bar intervals
        (``bar_seconds``: wall-clock seconds per bar, default the data's spacing) or the
        p99 decision time is above ``p99_limit_ms``; else ``healthy``."""
        max_silent_bars = _validate.number("max_silent_bars", max_silent_bars, 0,
                                           lo_open=True)
        if self._last_wall is None:
            return {"status": "waiting", "message": "no bar has arrived yet"}
        if self.killed:
            return {"status": "critical", "message": f"drawdown kill switch is on "
                    f"({self.pnl()['drawdown_pct']:.1%} below the peak): no new positions"}
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
        """The deployment dashboard (equity vs backtest, drawdown, orders, rejections)."""
        from quantlab import plots   # lazy: drawing lives in the face

        return plots.deployment_dashboard(self, **kw)

    def __repr__(self):
        n = len(self._rec["time"])
        span = f"{str(self._rec['time'][0])[:10]} .. {str(self._rec['time'][-1])[:10]}" \
            if n else "no bar yet"
        return (f"<Deployment {self.strategy!r}: {len(self.universe or [])} assets, {n} "
                f"bars ({span}), equity {self.equity_now():,.2f}, {len(self._orders)} "
                f"orders, {len(self._rejections)} rejections{', KILLED' if self.killed else ''}>")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.datetime64, pd.Timestamp)):
        return str(o)
    raise TypeError(f"cannot save {type(o).__name__} in a checkpoint")
