"""Labelled inputs -> one kernel call.

Checks the data and the signal (or entries/exits), aligns the data to the signal's
assets, broadcasts the signal over the parameter dims of the sweepable options (a fee or
stop grid is one call), builds the per-column arrays and runs
``quantlab._kernels.backtest.simulate`` once over every column.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import xarray as xr

from quantlab import _threads, _validate, metrics
from quantlab._kernels import backtest as _k
from quantlab.backtesting.options import SIZE_TYPES, BacktestOptions, no_metric_dims
from quantlab.calendar import periods_for
from quantlab.data import BAR_VARS, shifted, time_asset as _panel, time_label, validate
from quantlab.errors import DataError
from quantlab.signals import align_events, check_events as _bool, from_entries_exits

__all__ = ["Run", "simulate", "Stepper", "RESERVED"]

# columns of the orders/trades tables: a parameter dim may not take one of these names
RESERVED = {"t", "col", "time", "asset", "size", "price", "fee", "reason", "entry_time",
            "exit_time", "entry_price", "exit_price", "pnl", "exit_reason"}


@dataclass
class Run:
    """One kernel call: its output and the labelled frame to read it back with.

    Parameters
    ----------
    out : tuple
        ``quantlab._kernels.backtest.simulate``'s return value; its orders (``out[3]``)
        may be column blocks' :class:`BlockOrders`: read them with :func:`order_arrays`.
    signal : xarray.DataArray
        The broadcast signal, (time, asset, *params).
    ds : xarray.Dataset
        The data, on the signal's assets.
    params : list of str
        The parameter dims.
    group : bool
        One account per parameter combination (else one per column).
    periods : int, default 252
        Periods per year.

    Examples
    --------
    >>> import quantlab as ql
    >>> from quantlab.backtesting.dispatch import simulate
    >>> from quantlab.backtesting.options import BacktestOptions
    >>> ds = ql.data.load().isel(time=slice(0, 5))
    >>> run = simulate(ds, ds["close"] * 0 + 0.5, None, None, BacktestOptions(group=True))
    >>> run.acct_dims, run.acct_shape, run.periods
    (['time'], (5,), 252)
    """

    out: tuple              # simulate()'s return value (orders: see order_arrays)
    signal: xr.DataArray    # the broadcast signal, (time, asset, *params)
    ds: xr.Dataset          # the data, on the signal's assets
    params: list            # the parameter dims
    group: bool             # one account per parameter combination (else per column)
    periods: int = 252      # periods per year: the options' or the data's calendar

    @property
    def acct_dims(self) -> list:
        return ["time", *self.params] if self.group else list(self.signal.dims)

    @property
    def acct_shape(self) -> tuple:
        shape = self.signal.shape
        return (shape[0], *shape[2:]) if self.group else shape


def as_dataset(data, what: str = "data") -> xr.Dataset:
    """``data`` as price data (``_validate.dataset``: a DataArray is the closes) with
    ``time`` and ``asset`` coordinates (``_validate.coords``); errors name ``what``."""
    data = _validate.dataset(what, data)
    _validate.coords(data, what=what)
    return data


def resolve_periods(ds, opts: BacktestOptions) -> int:
    """``opts.periods``, else the data's periods per year (its ``periods_per_year`` attr
    or inferred calendar, ``ql.calendar.periods_for``), else 252."""
    if opts.periods is not None:
        return int(opts.periods)
    return int(round(periods_for(ds, None, default=252)))


def input_signal(signal, entries, exits, opts: BacktestOptions) -> xr.DataArray:
    """The target exposures: ``signal``, or ``entries``/``exits`` as 1/0 targets (order
    events when ``opts`` has a size or accumulate)."""
    if (signal is None) == (entries is None):
        raise ValueError("give exactly one of signal= or entries= (with exits=)")
    if signal is not None and opts.events:
        raise ValueError("size= and accumulate= go with entries=/exits= (order events), "
                         "not with signal= (target exposures)")
    if entries is None:
        return signal
    for name, v in (("entries", entries), ("exits", exits)):
        if isinstance(v, xr.DataArray):
            _validate.coords(v, what=name)
    return from_entries_exits(entries, exits)


def bool_events(entries, exits, opts: BacktestOptions):
    """``entries``/``exits`` checked as ``input_signal`` checks them, on their common dims:
    the kernel reads the booleans as 1/0/NaN targets (no float panel)."""
    for name, v in (("entries", entries), ("exits", exits)):
        if isinstance(v, xr.DataArray):
            _validate.coords(v, what=name)
    if exits is None:
        raise ValueError("from_entries_exits needs exits as well as entries")
    entries, exits = _bool(entries, "entries"), _bool(exits, "exits")
    if _same_frame(entries, exits):   # the usual case: nothing to align or broadcast
        return entries, exits
    entries, exits = align_events(entries, exits)   # read only
    return xr.broadcast(entries, exits)


def _same_frame(a, b) -> bool:
    """``a`` and ``b`` have the same dims in the same order, the same sizes and equal
    indexes: ``xr.align(join="exact")`` and ``xr.broadcast`` would return them as they
    are (both are ~ms on a large panel, this is µs)."""
    if not (isinstance(a, xr.DataArray) and isinstance(b, xr.DataArray)):
        return False
    if a.dims != b.dims or a.shape != b.shape or set(a.indexes) != set(b.indexes):
        return False
    return all(a.indexes[d].equals(b.indexes[d]) for d in a.indexes)


def check_signal(signal: xr.DataArray, ds: xr.Dataset, labels: bool = True,
                 values: bool = True) -> xr.DataArray:
    """``signal`` if it is a target exposure in [-1, 1] (or booleans) on the data's time
    and assets; ``labels=False``: the values only (labels checked on the whole panel);
    ``values=False``: not the values (the kernel checks them, ``check_target``)."""
    if not isinstance(signal, xr.DataArray):
        raise TypeError("signal must be an xarray DataArray on (time, asset[, params])")
    if labels:
        _validate.coords(signal, what="signal")
    _validate.real_array("signal", signal.dtype)
    if labels:
        check_labels(signal, ds)
    if signal.dtype == bool or not values:   # entries (booleans): in range
        return signal
    v = signal.values
    lim = 1.0 + 1e-12
    if v.size and np.fmax.reduce(v, axis=None) <= lim and np.fmin.reduce(v, axis=None) >= -lim:
        return signal   # two NaN-skipping passes, no temporary: the usual case
    with np.errstate(invalid="ignore"):
        bad = np.abs(v) > lim  # NaN compares False
    if bad.any():
        i = np.unravel_index(np.flatnonzero(bad)[0], v.shape)
        where = {d: str(signal[d].values[j])[:19] for d, j in zip(signal.dims, i)}
        raise ValueError(f"signal must be in [-1, 1] (target exposure); {int(bad.sum())} "
                         f"values are not, first {float(v[i])} at {where}")
    return signal


def check_labels(signal: xr.DataArray, ds: xr.Dataset) -> xr.DataArray:
    if not signal.indexes["time"].equals(ds.indexes["time"]):
        extra = signal.indexes["time"].difference(ds.indexes["time"])
        raise ValueError("signal and data have different time axes"
                         + (f" (e.g. {extra[0]} is not in the data)" if len(extra) else "")
                         + "; align them first (signal.reindex(time=ds.time))")
    if signal.indexes["asset"].equals(ds.indexes["asset"]):   # the usual case
        return signal
    missing = set(signal.asset.values.tolist()) - set(ds.asset.values.tolist())
    if missing:
        raise ValueError(f"signal has assets not in the data: {sorted(missing)}")
    return signal


def has_range_orders(opts) -> bool:
    """Stops or limit orders: the kernel checks them within each bar's open/high/low."""
    return bool(_stops(opts)) or opts.limit_offset is not None


def _stops(opts):
    return {k: getattr(opts, k) for k in ("sl_stop", "tp_stop", "sl_trail")
            if getattr(opts, k) is not None}


# the options that may be DataArrays (``options._sweep``): matched to the signal by label
_LABELLED = ("size", "fees", "fixed_fees", "sl_stop", "tp_stop", "sl_trail", "limit_offset")


def align_options(opts: BacktestOptions, signal: xr.DataArray) -> BacktestOptions:
    """``opts`` with every labelled option on the signal's labels, in its order, for each
    dim they share: an option over a longer history or more assets is cut to the run's.
    A signal label the option lacks, or a parameter label only the option has, is
    refused naming it: ``xr.broadcast``'s outer join ran a NaN fee, stop or size there
    (a misleading overflow error, a stop silently off, orders silently not placed) or
    added a flat combination nobody asked for; and a time-chunked run cut the options
    by position, not label."""
    changes = {}
    for name in _LABELLED:
        v = getattr(opts, name)
        if not isinstance(v, xr.DataArray) or not v.ndim:
            continue
        pick = {}
        for d in v.dims:
            if d not in v.indexes or d not in signal.indexes:
                continue
            want, have = signal.indexes[d], v.indexes[d]
            if want.equals(have):
                continue
            missing = want.difference(have)
            if len(missing):
                raise ValueError(f"{name} has no value at {d}={str(missing[0])[:19]} of the signal "
                                 f"({len(missing)} {d} label(s) missing); give it on the "
                                 f"signal's {d} labels")
            extra = have.difference(want)
            if len(extra) and d not in ("time", "asset"):
                raise ValueError(f"{name} has {d}={str(extra[0])[:19]}, which the signal has not: "
                                 f"no combination would run it; give it on the signal's "
                                 f"{d} labels")
            pick[d] = want
        if pick:
            changes[name] = v.sel(pick)
    return replace(opts, **changes) if changes else opts


def broadcast(signal: xr.DataArray, opts: BacktestOptions) -> tuple[xr.DataArray, list]:
    """The signal over its own dims and every dim of a swept option, as (time, asset,
    *params), and the parameter dims."""
    swept = [opts.fees, opts.fixed_fees, *_stops(opts).values()]
    swept += [] if opts.limit_offset is None else [opts.limit_offset]
    swept += [opts.size] if opts.events else []
    # a plain number adds no dim or coordinate: only labelled values are broadcast
    swept = [v for v in swept if not (isinstance(v, xr.DataArray) and v.ndim == 0
                                      and not v.coords)]
    if swept:
        signal = xr.broadcast(signal, *swept)[0]
    params = [d for d in signal.dims if d not in ("time", "asset")]
    clash = set(params) & RESERVED
    if clash:
        raise ValueError(f"parameter dim name(s) {sorted(clash)} clash with the orders/trades "
                         f"table columns; rename them (reserved: {sorted(RESERVED)})")
    no_metric_dims(params, "ql.backtest")   # refused before the run, not by metrics() after it
    return signal.transpose("time", "asset", *params), params


def align_data(ds: xr.Dataset, signal: xr.DataArray, opts: BacktestOptions,
               labels: bool = True, threads=None, values: bool = True) -> xr.Dataset:
    """The data on the signal's assets, its bars checked (``ql.data.validate`` on
    ``threads``; its labels unless ``labels=False``, its values unless ``values=False``)."""
    if opts.execution == "next_open" and "open" not in ds:
        raise DataError("execution='next_open' needs an 'open' variable")
    # without labels, a streamed run's time chunk: its run aligned the assets once (a
    # pandas equals of 200 string labels cost ~0.6 ms a chunk)
    if labels and not ds.indexes["asset"].equals(signal.indexes["asset"]):
        ds = ds.sel(asset=signal.asset.values)   # a copy of every variable: only if needed
    # bar variables only; without labels: a streamed run's time chunk (``part``)
    validate(ds, labels=labels, values=values, threads=threads, part=not labels)
    return ds


def _kernel_checks(ds: xr.Dataset, opts: BacktestOptions, start: int) -> bool:
    """Whether the kernel checks the closes as it reads them (``simulate(check=True)``)
    instead of a ``validate`` pass over the panel first: for a run over every row of a
    close-only panel (``validate``'s rules for one are the kernel's: NaN or a finite
    price > 0) whose slippage reads no data. A fault is then named by ``validate`` as
    before; a ``state`` is left part-way (a streamed run's, private to it, is dropped
    with the run)."""
    return (not start and opts.slippage.model == "fixed"
            and [v for v in BAR_VARS if v in ds.data_vars] == ["close"])


def slippage_panels(ds: xr.Dataset, opts: BacktestOptions, prev_close=None):
    """(base, impact, cap) of the slippage model on (time, asset); with next_open they
    come from the bars up to the decision bar only. ``prev_close``: per asset, the last
    valid close before ``ds`` (``Slippage.panels``' ``prev``)."""
    slip = opts.slippage
    base, impact, cap = slip.panels(ds, prev=prev_close)
    if slip.model == "adaptive":   # data-driven: its largest value must still be < 1
        _check_slippage_panel(slip, base)
    if opts.execution == "next_open" and slip.model != "fixed":  # costs from bars up to t
        base, impact = shifted(base).fillna(0.0), shifted(impact).fillna(0.0)
    return base, impact, cap


def _check_slippage_panel(slip, base):
    """The adaptive slippage (bps/1e4 + vol_mult · σ + range_mult · range, from the data)
    must stay below 1 everywhere, else a sell fills at a price <= 0: name the bar where
    it does not (volume_based is bounded by bps/1e4 + cap < 1 at construction)."""
    worst = base.fillna(0.0).argmax(...)
    v = float(base.isel(worst))
    if v >= 1:
        where = _validate.where(base, worst)
        raise ValueError(f"Slippage({slip.model!r}) reaches a slippage of {v:.4g} at {where}; "
                         "it must stay < 1 (a sell would fill at a price <= 0): lower "
                         "bps, vol_mult or range_mult")


# a short held, wanted or pending that a state carries into the next call
_SHORT_STATE = ("q", "want", "prev_target", "ev_size", "prev_size", "lim_q")
# a margin above it a long-only, unlevered account can breach: its cash's rounding
# residue after a buy of all of it (a few 1e-16 of its equity below 0) did at 1 - 1e-16
_EXACT_MARGIN = 1 - 1e-9


def _margin(opts: BacktestOptions, fixed_fees, target, state) -> float:
    """The maintenance margin the kernel checks: 0 (off: its fast path can run) where no
    account can breach it. Equity = cash + sum(q p) >= gross value >= margin x gross
    while cash >= 0 and every position is long; cash stays >= 0 with max_leverage <= 1
    (a buy, a short's cover too, spends at most the cash) and no fixed fee (one can
    exceed a sale's proceeds). ``target``: the call's target exposures (None: order
    events, which do not go short), read only when the rest leaves it open; ``state``: a
    short an earlier call left held, wanted or pending, so a time chunk decides as a
    whole run would. A margin within 1e-9 of 1 stays on: cash's rounding
    residue (a few 1e-16 of the equity below 0) can breach it."""
    mm = float(opts.maintenance_margin or 0.0)
    if not mm or mm > _EXACT_MARGIN or opts.max_leverage > 1 or np.any(fixed_fees) or (
            target is not None and (target < 0).any()) or (
            state is not None and any((state[k] < 0).any() for k in _SHORT_STATE)):
        return mm
    return 0.0


def _kernel_args(signal, ds, opts, params, endless):
    """The kernel's per-column arrays: accounts (groups), costs, stops, limits, events."""
    shape = signal.shape
    n, n_cols = shape[0], int(np.prod(shape[1:]))
    n_par = int(np.prod(shape[2:])) if params else 1

    def per_col(v):  # a per-parameter value -> one value per column
        if getattr(v, "ndim", None) == 0:   # one value (no broadcast needed)
            return np.full(n_cols, float(v), dtype=np.float64)
        return np.ascontiguousarray(
            xr.broadcast(v, signal.isel(time=0, drop=True))[0]
            .transpose(*signal.dims[1:]).values.reshape(n_cols), dtype=np.float64)

    if opts.group:   # one account per parameter combination, across the assets
        grp, n_groups = np.tile(np.arange(n_par, dtype=np.intp), shape[1]), n_par
    else:
        grp, n_groups = np.arange(n_cols, dtype=np.intp), n_cols
    stops = _stops(opts)
    nan = xr.DataArray(np.nan)
    kw = dict(bars=None, stops=None, events=None, limit=None)
    if has_range_orders(opts):   # checked within each bar's range
        kw["bars"] = tuple(_panel(ds[v] if v in ds else ds["close"])
                           for v in ("open", "high", "low"))
    if stops:
        kw["stops"] = tuple(per_col(stops.get(k, nan)) for k in ("sl_stop", "tp_stop",
                                                                  "sl_trail"))
    if opts.limit_offset is not None:
        kw["limit"] = (per_col(opts.limit_offset),
                       min(int(opts.limit_tif or 0), endless + 1))
    if opts.events:
        sz = xr.broadcast(opts.size, signal)[0].transpose(*signal.dims)
        kw["events"] = (np.asarray(sz.data, dtype=np.float64).reshape(n, n_cols),
                        SIZE_TYPES.index(opts.size_type), bool(opts.accumulate))
    costs = (per_col(opts.fees), per_col(opts.fixed_fees))
    asset_of_col = np.repeat(np.arange(shape[1], dtype=np.intp), n_par)
    return asset_of_col, grp, n_groups, costs, kw


# The kernel's time per column and bar in copies of a value (``_threads.PAYS_FROM``):
# measured on 2520 x 1000 MA crossovers (benchmarks/backtest_profile.py), ~8.5 ns a
# value lean (~8 copies), metrics-only ~22 ns (Sharpe alone) to ~44 ns (every metric;
# ~37 ns before session 49 kept only the statistics asked for)
_COST = 8.0
# Each call also costs ~10 ns a bar whatever its width (a 1-column MA crossover of 200k
# bars: 13 ns a bar, 128 columns 7.6 ns a value): blocks of 16 columns or more keep
# that under ~10 % (a 1M-bar, 4-asset run cut into 1-column blocks took 2x the CPU).
# One block per thread: a block reads and writes a strided slice of every row, which
# costs more per value the narrower it is (129,600 bars x 256, 2 threads: 2 blocks
# 160 ms, 4 blocks 248 ms, one call 248 ms; x 512: 336, 424 and 469 ms)
_MIN_COLS = 16


def _by_accounts(args, kw, threads):
    """``_k.simulate(*args, **kw)`` of one account per column, over blocks of columns on
    the pool (the kernel releases the GIL): each block reads views of the inputs (its
    columns, and the prices of their assets) and writes its columns of the one set of
    output panels (the kernel's ``out=``: nothing is copied or joined); its order records
    come keyed by phase, as a :class:`BlockOrders` that ``merge_orders`` joins in the
    single call's order when first read.

    Measured on 2 idle cores, 2 threads vs 1, MA crossovers: 2520 x 1000 1.59-1.60x
    (make bench; 1.28x before the checks moved into the kernel and the join of the orders
    was deferred), with stops 1.63x, 129,600 x 200 minute bars 1.33x, 200,000 x 40 1.14x,
    1,000,000 x 4 1.02x (one call), 252 x 5000 1.22x, at 1.0-1.35x the CPU."""
    close, exec_px, target, base, impact, cap, asset, grp, m = args[:9]
    rest = args[9:]
    fees, fixed = rest[1], rest[2]
    n = close.shape[0]
    n_thr, parts = _threads.blocks(m, n * m * _COST, threads, _COST, min_cols=_MIN_COLS,
                                   per_thread=1)
    if len(parts) == 1:
        return _k.simulate(*args, **kw)
    metrics_only = args[-1]
    rows = 0 if metrics_only else n
    # equity, cash, positions, halted, interest: the kernel leaves alone (and returns
    # empty or None) those the run does not write; np.empty/zeros of a large panel touch
    # no memory until written
    panels = (np.empty((rows, m)), np.empty((rows, m)), np.empty((rows, m)),
              np.zeros((n, m), dtype=np.int8), np.zeros((rows, m)))
    res = {}

    def cols(a, lo, hi):   # per-column arrays (1-D) or (time, column) panels
        return a[lo:hi] if a.ndim == 1 else a[:, lo:hi]

    def one(lo, hi):
        a0, a1 = int(asset[lo]), int(asset[hi - 1]) + 1
        px = [p[:, a0:a1] for p in (close, exec_px, base, impact)]
        tgt = (tuple(cols(x, lo, hi) for x in target) if isinstance(target, tuple)
               else cols(target, lo, hi))
        sub = dict(kw, out=tuple(p[:, lo:hi] for p in panels), keyed=not metrics_only)
        if kw["bars"] is not None:
            sub["bars"] = tuple(p[:, a0:a1] for p in kw["bars"])
        if kw["stops"] is not None:
            sub["stops"] = tuple(cols(x, lo, hi) for x in kw["stops"])
        if kw["limit"] is not None:
            sub["limit"] = (cols(kw["limit"][0], lo, hi), kw["limit"][1])
        if kw["events"] is not None:
            sub["events"] = (cols(kw["events"][0], lo, hi), *kw["events"][1:])
        res[lo] = _k.simulate(px[0], px[1], tgt, px[2], px[3], cap,
                              np.ascontiguousarray(asset[lo:hi] - a0),
                              np.arange(hi - lo, dtype=np.intp), hi - lo, rest[0],
                              fees[lo:hi], fixed[lo:hi], *rest[3:], **sub)

    _threads.run(one, parts, n_thr)
    outs = [res[lo] for lo, _ in parts]
    if metrics_only:   # (stats, extras), one row per account
        return tuple(np.concatenate([o[i] for o in outs]) for i in range(2))
    first = outs[0]
    # a panel the kernel did not write comes back None (lean) or with no rows
    joined = [None if first[i] is None else (
        full if len(first[i]) == len(full) else np.zeros((0, m), dtype=full.dtype))
        for i, full in zip((0, 1, 2, 4, 5), panels)]
    rec = BlockOrders([o[3] for o in outs], np.array([lo for lo, _ in parts], dtype=np.intp))
    return (joined[0], joined[1], joined[2], rec, joined[3], joined[4])


class BlockOrders:
    """Column blocks' keyed order records, joined into the one call's (``merge_orders``)
    when first read (:func:`order_arrays`): a caller that reads only the equity or the
    metrics does not wait for the join (0.5-0.8 ms of a 2520 x 1000 run's ~13 ms on 2
    threads); the orders table, cash and positions are built on first read anyway."""

    def __init__(self, parts, col0):
        self._parts, self._col0, self._arrays = parts, col0, None

    def arrays(self) -> tuple:
        if self._arrays is None:
            parts = self._parts
            if parts is None:   # another thread joined them between the two reads
                return self._arrays
            self._arrays = _k.merge_orders(parts, self._col0)   # set before parts go
            self._parts = None
        return self._arrays


def order_arrays(rec) -> tuple:
    """A run's (t, col, size, price, fee, reason) order arrays (``Run.out[3]``),
    joined first where they came from column blocks."""
    return rec.arrays() if isinstance(rec, BlockOrders) else rec


def simulate(data, signal, entries, exits, opts: BacktestOptions, state=None,
             start: int = 0, lean: bool = False, threads=None,
             labels_checked: bool = False, out=None, prev_close=None,
             keyed: bool = False) -> Run:
    """Check and align the inputs, then run the kernel once over every column.

    ``state`` (a ``SimState``): continue from it (updated in place) -- a deployment's
    bar, a time chunk of a long backtest. ``start``: the rows before it only feed the
    data-driven slippage models (their trailing windows); the kernel runs from it.
    Without ``state`` the run's length bounds the drawdown halt and the limit orders'
    time in force; with one, nothing depends on where the run ends.

    Parameters
    ----------
    data : xarray.Dataset or xarray.DataArray
        Prices on (time, asset) with ``close`` (a DataArray is the close).
    signal : xarray.DataArray or None
        Target exposure in [-1, 1] on (time, asset[, params]); or None with ``entries``.
    entries, exits : xarray.DataArray or None
        Boolean order events (instead of ``signal``).
    opts : BacktestOptions
        The options of ``ql.backtest``.
    state : SimState, optional
        Continue from it (updated in place; left part-way when the data are refused).
    start : int, default 0
        The first row the kernel runs (earlier rows feed the slippage windows only).
    lean : bool, default False
        Let the kernel skip writing cash and positions where it can (its fast path,
        no ``state``): ``run.out[1]`` and ``run.out[2]`` are then None, rebuilt on
        demand from the orders (``result.from_run`` does).
    threads : int, optional
        Independent accounts (``group=False``, no ``state``) run over blocks of columns
        on this many threads (``quantlab._threads``), with the bits and order rows of
        one call, every option (:func:`_by_accounts`); the bars are checked on as many.
        None: the package default.
    labels_checked : bool, default False
        The caller checked the time and asset labels of the whole panel (a streamed
        run's time chunk): only the values are checked here.
    out : tuple of arrays, optional
        With ``state``: the per-bar outputs to write into (the kernel's ``out=``: equity,
        cash, positions, halted zeros, interest zeros), e.g. a streamed run's buffers
        reused chunk after chunk.
    prev_close : numpy.ndarray, optional
        Per asset, the last valid close before ``data``'s first row (a time chunk's):
        the data-driven slippage models' first returns are measured from it.
    keyed : bool, default False
        The orders (``run.out[3]``) come with a seventh array, each record's phase of
        its bar (the kernel's ``keyed``): column blocks' records join into one call's
        order by (bar, phase, column).

    Returns
    -------
    Run

    Examples
    --------
    >>> import quantlab as ql
    >>> from quantlab.backtesting.dispatch import simulate
    >>> from quantlab.backtesting.options import BacktestOptions
    >>> ds = ql.data.load().isel(time=slice(0, 5))
    >>> run = simulate(ds, ds["close"] * 0 + 1.0, None, None, BacktestOptions(fees=0.001))
    >>> equity = run.out[0]
    >>> equity.shape, round(float(equity[0, 0]), 2)      # (time, asset); the first fee
    ((5, 4), 99900.1)
    """
    ds = as_dataset(data)
    periods = resolve_periods(ds, opts)
    ex = None   # entries/exits: booleans to the kernel (signal: the entries, a template)
    if signal is None and entries is not None:
        signal, ex = bool_events(entries, exits, opts)
    else:
        signal = input_signal(signal, entries, exits, opts)
    # a float signal checked by the kernel row by row where it checks the closes too
    # (else validate's pass names a bad bar first); check_signal names a fault as before
    in_kernel = _kernel_checks(ds, opts, start)
    unchecked = signal if ex is None and signal.dtype != bool and in_kernel else None
    signal = check_signal(signal, ds, labels=not labels_checked, values=unchecked is None)
    if not labels_checked:   # a streamed run's chunk: its options were aligned once
        opts = align_options(opts, signal)
    signal, params = broadcast(signal, opts)
    if unchecked is not None and signal.size == 0:   # no column: no kernel to check it
        check_signal(unchecked, ds, labels=False)
        unchecked = None
    if ex is not None and not _same_frame(ex, signal):   # the exits over the params
        ex = xr.broadcast(ex, signal)[0].transpose(*signal.dims)
    check = signal.size > 0 and in_kernel   # no column: no kernel
    ds = align_data(ds, signal, opts, labels=not labels_checked, threads=threads,
                    values=not check)
    base, impact, cap = slippage_panels(ds, opts, prev_close)
    if start:
        signal, ds = signal.isel(time=slice(start, None)), ds.isel(time=slice(start, None))
        base, impact = base.isel(time=slice(start, None)), impact.isel(time=slice(start, None))
        ex = None if ex is None else ex.isel(time=slice(start, None))
    n, n_cols = signal.shape[0], int(np.prod(signal.shape[1:]))
    if ex is None:
        target = np.ascontiguousarray(signal.values.reshape(n, n_cols), dtype=np.float64)
    else:   # views where the layout allows (no float panel)
        target = (signal.values.reshape(n, n_cols), ex.values.reshape(n, n_cols))
    endless = n if state is None else 2 ** 62     # a resumable run has no known end
    asset_of_col, grp, n_groups, (fees, fixed_fees), kw = _kernel_args(signal, ds, opts,
                                                                       params, endless)
    margin = _margin(opts, fixed_fees, target if ex is None else None, state)
    exec_px = ds["open"] if opts.execution == "next_open" else ds["close"]
    first = 0 if state is None else state.bar
    args = (_panel(ds["close"]), _panel(exec_px), target, _panel(base), _panel(impact),
            float(cap), asset_of_col, grp, n_groups, float(opts.init_cash), fees, fixed_fees,
            float(opts.max_leverage), float(opts.max_position_size),
            opts.rebalance == "daily", opts.execution == "next_open",
            float(opts.dd_limit or 0.0),
            endless if opts.dd_mode == "halt" else min(opts.dd_cooldown, endless),
            opts.metrics_only is not None)
    kw.update(borrow=(1 + float(opts.borrow_rate)) ** (1 / periods) - 1, margin=margin,
              state=state, lean=lean, check=check, check_target=unchecked is not None)
    if out is not None:
        kw["out"] = out
    if keyed:   # only then: the kernel's pure-NumPy twin (tests/reference) has no keys
        kw["keyed"] = True
    if opts.metrics_only is not None:   # the statistics its metrics read, no more
        kw["acc_need"] = metrics.acc_need(opts.metrics_only)
    refused = None
    try:
        if state is None and not opts.group:
            out = _by_accounts(args, kw, threads)
        else:
            out = _k.simulate(*args, **kw)
    except (_k.InvalidPrice, _k.InvalidTarget) as e:
        refused = e
    except _k.OrderOverflow as e:
        r = int(e.args[0])
        raise _overflow(ds["time"].values[r], args[0][r], ds["asset"].values,
                        opts.init_cash) from None
    if refused is not None:   # named as the passes name it (no kernel traceback); the
        if unchecked is not None:         # signal first, as its pass ran first
            check_signal(unchecked, ds, labels=False)
        if isinstance(refused, _k.InvalidPrice):
            validate(ds, labels=False, threads=threads, part=labels_checked)
        raise refused
    if state is not None and opts.metrics_only is None and first:
        out[3][0][:] -= first        # order times: the kernel counts bars from the start
    return Run(out, signal, ds, params, bool(opts.group), periods)


def _overflow(when, close, assets, init_cash) -> DataError:
    """The error of an order sized no finite number of shares on the bar at ``when``
    (its ``close`` per asset): equity / price overflowed a double (1.8e308)."""
    a = int(np.argmin(np.where(np.isnan(close), np.inf, close)))
    at = "on this bar" if when is None else "at " + time_label(when)
    return DataError(
        f"an order {at} sizes more than 1.8e308 shares (equity / price "
        f"overflows a double): the smallest close that bar is {float(close[a]):.4g} for "
        f"asset {str(assets[a])!r}, with init_cash {init_cash:g}; quote the prices in a "
        "smaller unit or start with less cash")


class Stepper:
    """``simulate`` prepared for one bar at a time: a deployment's per-bar kernel step.

    The per-column constants (accounts, fees, stops, limits, borrow, margin) are built
    once by the same code ``simulate`` uses; :meth:`step` then calls the same kernel on
    one row of NumPy arrays from a ``SimState`` (no xarray per bar), so a deployment
    trades bit for bit as ``ql.backtest`` over the same bars.

    Parameters
    ----------
    opts : BacktestOptions
        One combination of options (no swept dim, no order events, no metrics_only).
    assets : sequence of str
        The traded assets, in the order of every row passed to :meth:`step`.

    Examples
    --------
    >>> import numpy as np
    >>> from quantlab.backtesting.dispatch import Stepper
    >>> from quantlab.backtesting.options import BacktestOptions
    >>> st = Stepper(BacktestOptions(init_cash=1000.0, fees=0.001), ["A", "B"])
    >>> state = st.new_state()
    >>> base, impact = st.slippage({"close": np.array([[10.0, 20.0]])})
    >>> eq, cash, pos, orders, halted, interest = st.step(
    ...     state, {"close": np.array([10.0, 20.0])}, np.array([1.0, 0.0]), base, impact)
    >>> pos, orders[1]           # 1000 less the fee, at 10: 99.9 shares; B stays flat
    (array([99.9,  0. ]), array([99.9]))
    """

    def __init__(self, opts: BacktestOptions, assets):
        if opts.metrics_only is not None:
            raise ValueError("a deployment keeps its equity bar by bar: metrics_only= "
                             "is for sweeps")
        if opts.events:
            raise ValueError("size= and accumulate= go with entries=/exits= (order "
                             "events), not with signal= (target exposures)")
        self.assets = [str(a) for a in assets]
        n = len(self.assets)
        template = xr.DataArray(np.zeros((1, n)), dims=("time", "asset"),
                                coords={"time": [np.datetime64(0, "ns")],
                                        "asset": self.assets})
        self.opts = opts = align_options(opts, template)
        signal, params = broadcast(template, opts)
        if params or signal.shape != (1, n):
            raise ValueError(f"a deployment trades one combination of options; these vary "
                             f"over {[d for d in signal.dims if d != 'asset']} (pick one "
                             "value each)")
        endless = 2 ** 62                  # a resumable run has no known end
        (self._asset, self._group, self.n_groups, (self._fees, self._fixed), kw) = \
            _kernel_args(signal, template.to_dataset(name="close"), opts, params, endless)
        self._ohlc = kw.pop("bars") is not None      # stops/limits read the bar's range
        self._kw = kw
        periods = 252 if opts.periods is None else int(opts.periods)
        self._borrow = (1 + float(opts.borrow_rate)) ** (1 / periods) - 1
        self._cooldown = endless if opts.dd_mode == "halt" else min(opts.dd_cooldown,
                                                                    endless)
        slip = opts.slippage
        self._fixed_slip = slip.model == "fixed"
        self._cap = float(slip.cap)
        self._const = (np.full(n, slip.bps / 1e4), np.zeros(n))

    def new_state(self) -> _k.SimState:
        """A fresh kernel state (every account holding ``init_cash``).

        Examples
        --------
        >>> from quantlab.backtesting.dispatch import Stepper
        >>> from quantlab.backtesting.options import BacktestOptions
        >>> Stepper(BacktestOptions(), ["A", "B"]).new_state().bar
        0
        """
        return _k.SimState(len(self.assets), self.n_groups, float(self.opts.init_cash))

    def slippage(self, bars: dict, time=None, prev=None) -> tuple[np.ndarray, np.ndarray]:
        """(base, impact) of the latest bar: ``slippage_panels`` over ``bars`` (variable
        -> (rows, asset) arrays, the last ``opts.history_needed()`` bars at least);
        constants for the fixed model (no data read).

        Parameters
        ----------
        bars : dict
            Variable name -> (time, asset) array, oldest row first.
        time : array of datetime64, optional
            The rows' times (named in an error about the adaptive slippage).
        prev : numpy.ndarray, optional
            Per asset, the last valid close before the first row (``slippage_panels``'
            ``prev_close``): a return across a gap that starts before ``bars`` is
            measured from it, as in the whole panel.

        Examples
        --------
        >>> import numpy as np
        >>> from quantlab.backtesting.dispatch import Stepper
        >>> from quantlab.backtesting.options import BacktestOptions
        >>> Stepper(BacktestOptions(slippage=0.001), ["A"]).slippage({"close": np.ones((1, 1))})
        (array([0.001]), array([0.]))
        """
        if self._fixed_slip:
            return self._const
        n_rows = len(bars["close"])
        time = np.arange(n_rows) if time is None else time
        ds = xr.Dataset({v: (("time", "asset"), a) for v, a in bars.items()},
                        coords={"time": time, "asset": self.assets})
        base, impact, _ = slippage_panels(ds, self.opts, prev)
        return (np.asarray(base.values[-1], dtype=np.float64),
                np.asarray(impact.values[-1], dtype=np.float64))

    def step(self, state, bar: dict, target: np.ndarray, base: np.ndarray,
             impact: np.ndarray, when=None) -> tuple:
        """Advance ``state`` (updated in place) by one bar.

        Parameters
        ----------
        state : SimState
            The kernel state after the previous bar (:meth:`new_state` before the first).
        bar : dict
            Variable -> (asset,) values of this bar: ``close``, and ``open`` (next_open,
            stops, limits), ``high``/``low`` (stops, limits; the close stands in).
        target : numpy.ndarray
            Exposure per asset in [-1, 1]; NaN = keep the last target.
        base, impact : numpy.ndarray
            This bar's slippage (:meth:`slippage`).
        when : datetime-like, optional
            The bar's time, for error messages.

        Returns
        -------
        tuple
            (equity per account, cash per account, shares per asset, orders, halted per
            account (drawdown control's flat bar, bool), borrowing interest per account)
            where orders is (asset index, size, price, fee, reason code into
            ``REASONS``) arrays.

        Examples
        --------
        >>> import numpy as np
        >>> from quantlab.backtesting.dispatch import Stepper
        >>> from quantlab.backtesting.options import BacktestOptions
        >>> st = Stepper(BacktestOptions(init_cash=100.0), ["A"])
        >>> s = st.new_state()
        >>> for px, tgt in ((10.0, 1.0), (12.0, np.nan)):
        ...     eq, cash, pos, orders, _, _ = st.step(s, {"close": np.array([px])},
        ...                                           np.array([tgt]), *st.slippage({}))
        >>> eq, pos, s.bar
        (array([120.]), array([10.]), 2)
        """
        target = np.asarray(target, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            bad = np.abs(target) > 1.0 + 1e-12     # NaN compares False
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"signal must be in [-1, 1] (target exposure); "
                             f"{int(bad.sum())} values are not, first {float(target[i])} "
                             f"at asset {self.assets[i]!r}")
        row = lambda a: np.asarray(a, dtype=np.float64).reshape(1, -1)  # noqa: E731
        close = row(bar["close"])
        kw = self._kw
        if self._ohlc:
            kw = {**kw, "bars": tuple(row(bar[v]) if v in bar else close
                                      for v in ("open", "high", "low"))}
        o = self.opts
        try:
            out = _k.simulate(
                close, row(bar["open"]) if o.execution == "next_open" else close,
                target.reshape(1, -1), row(base), row(impact), self._cap, self._asset,
                self._group, self.n_groups, float(o.init_cash), self._fees, self._fixed,
                float(o.max_leverage), float(o.max_position_size), o.rebalance == "daily",
                o.execution == "next_open", float(o.dd_limit or 0.0), self._cooldown, False,
                **kw, borrow=self._borrow, state=state,
                margin=_margin(o, self._fixed, target, state))
        except _k.OrderOverflow:   # the state is left part-way through the bar
            raise _overflow(when, close[0], self.assets, o.init_cash) from None
        eq, cash, pos, (_, col, size, price, fee, reason), halted, interest = out
        # written only with a dd_limit / a borrow_rate (else empty or None): none then
        none = np.zeros(self.n_groups)
        return (eq[-1], cash[-1], pos[-1], (self._asset[col], size, price, fee, reason),
                (halted[-1] if len(halted) else none).astype(bool),
                interest[-1] if interest is not None and len(interest) else none)
