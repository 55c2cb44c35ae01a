"""Issue #32, a leaner backtest: the kernel's fast bar path, boolean entries/exits read by
the kernel (no float target panel), the orders table built on first read. Each must give
the bits of the general path (no timing here: benchmarks/backtest_profile.py)."""
import copy
import dataclasses
import pickle

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from test_backtest import _panel
from test_backtest_state import _inputs

import quantlab as ql
from quantlab._kernels import backtest as _k
from quantlab.backtesting import dispatch, result

FAST = ("plain", "next_open", "fees", "impact", "events_equity", "events_value_acc",
        "events_shares")   # no stops, limits, drawdown, margin, borrowing: the fast path


def _bits(a, b):
    """Equal bit for bit (NaN included), recursively over the kernel's tuples."""
    if isinstance(a, tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _bits(x, y)
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    assert a.tobytes() == b.tobytes()


def _frames_equal(r1, r2):
    for k in ("equity", "cash", "positions"):
        _bits(getattr(r1, k).values, getattr(r2, k).values)
    pd.testing.assert_frame_equal(r1.orders, r2.orders, check_exact=True)


@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("feature", FAST)
@pytest.mark.parametrize("metrics_only", [False, True])
def test_fast_bar_path_gives_the_bits_of_every_phase(feature, group, metrics_only):
    for seed in range(3):
        kw = _inputs(feature, group, seed)
        _bits(_k.simulate(**kw, metrics_only=metrics_only),
              _k.simulate(**kw, metrics_only=metrics_only, fast=False))


def test_fast_bar_path_resumes_across_chunks_with_the_same_bits():
    kw = _inputs("fees", False)
    whole = _k.simulate(**kw, fast=False)
    state = _k.SimState(kw["target"].shape[1], kw["n_groups"], kw["init_cash"])
    parts = []
    for a, b in ((0, 7), (7, 30), (30, kw["target"].shape[0])):
        part = dict(kw, close=kw["close"][a:b], exec_price=kw["exec_price"][a:b],
                    target=kw["target"][a:b], slip_base=kw["slip_base"][a:b],
                    impact=kw["impact"][a:b])
        parts.append(_k.simulate(**part, state=state))
    for i in range(3):
        _bits(np.concatenate([p[i] for p in parts]), whole[i])


def _events(seed, shape, p_both=0.1):
    rng = np.random.default_rng(seed)
    u = rng.random(shape)
    both = rng.random(shape) < p_both          # entry and exit on one bar: they cancel
    return (u < 0.06) | both, ((u > 0.94) | both)


@pytest.mark.parametrize("next_open", [False, True])
def test_kernel_reads_boolean_entries_exits_as_the_float_targets(next_open):
    kw = _inputs("next_open" if next_open else "plain", False)
    ent, ex = _events(1, kw["target"].shape)
    floats = ql.signals.from_entries_exits(xr.DataArray(ent), xr.DataArray(ex)).values
    _bits(_k.simulate(**dict(kw, target=(ent, ex))), _k.simulate(**dict(kw, target=floats)))
    _bits(_k.simulate(**dict(kw, target=(ent.view(np.uint8), ex.view(np.uint8)))),
          _k.simulate(**dict(kw, target=floats), fast=False))


def test_kernel_entries_exits_of_different_shapes_is_a_valueerror_not_a_crash():
    kw = _inputs("plain", False)
    ent, ex = _events(2, kw["target"].shape)
    with pytest.raises(ValueError, match="entries, exits"):
        _k.simulate(**dict(kw, target=(ent, ex[:-1])))
    with pytest.raises(ValueError, match="entries, exits"):
        _k.simulate(**dict(kw, target=(ent,)))


def _labelled(ds, seed, extra=None):
    ent, ex = _events(seed, (ds.sizes["time"], ds.sizes["asset"]))
    dims, coords = ("time", "asset"), {"time": ds.time, "asset": ds.asset}
    ent, ex = xr.DataArray(ent, coords, dims), xr.DataArray(ex, coords, dims)
    if extra is not None:   # a parameter dim on the entries only
        ent = xr.concat([ent, ent.roll(time=3)], dim=pd.Index(extra, name="variant"))
    return ent, ex


@pytest.mark.parametrize("opts", [
    dict(fees=0.001, slippage=0.0005),
    dict(fees=xr.DataArray([0.0, 0.002], dims="fee_rate", coords={"fee_rate": [0, 2]}), group=True),
    dict(execution="next_open", fixed_fees=1.0),
    dict(size=0.3, accumulate=True),
    dict(size=xr.DataArray([0.2, np.inf], dims="sz", coords={"sz": [1, 2]})),
    dict(sl_stop=0.03, tp_stop=0.05, fees=0.001),
    dict(dd_limit=0.05, max_leverage=2.0, borrow_rate=0.05),
])
def test_entries_exits_backtest_equals_the_float_signal_backtest(opts, monkeypatch):
    ds = _panel(5, n=200, m=3, holes=True)
    ent, ex = _labelled(ds, 7, extra=["a", "b"])
    via_bools = ql.backtest(ds, entries=ent, exits=ex, **opts)
    # the float path: the 1/0/NaN targets of from_entries_exits given to the kernel
    sig = ql.signals.from_entries_exits(ent, ex)
    o = ql.BacktestOptions(**opts)
    monkeypatch.setattr(dispatch, "input_signal", lambda signal, entries, exits, opts: signal)
    via_floats = result.from_run(dispatch.simulate(ds, sig, None, None, o), o)
    assert via_floats.orders.shape == via_bools.orders.shape and len(via_bools.orders) > 5
    _frames_equal(via_bools, via_floats)


def test_entries_exits_errors_are_unchanged():
    ds = _panel(3, n=60, m=2)
    ent, ex = _labelled(ds, 1)
    with pytest.raises(TypeError, match="entries must be boolean"):
        ql.backtest(ds, entries=ent.astype(float), exits=ex)
    with pytest.raises(ValueError, match="needs exits as well"):
        ql.backtest(ds, entries=ent)
    with pytest.raises(ValueError, match="exactly one of signal"):
        ql.backtest(ds, ent.astype(float), entries=ent, exits=ex)
    with pytest.raises(ValueError, match="different time axes"):
        ql.backtest(ds, entries=ent.isel(time=slice(1, None)), exits=ex.isel(time=slice(1, None)))
    with pytest.raises(ValueError, match="assets not in the data"):
        ql.backtest(ds, entries=ent.assign_coords(asset=["X", "Y"]),
                    exits=ex.assign_coords(asset=["X", "Y"]))
    with pytest.raises(ValueError):   # misaligned entries/exits: refused, not guessed
        ql.backtest(ds, entries=ent, exits=ex.assign_coords(time=ex.time + pd.Timedelta("1D")))


def test_orders_table_is_built_on_first_read_and_equals_the_eager_one():
    ds = _panel(4, n=150, m=3)
    ent, ex = _labelled(ds, 3)
    res = ql.backtest(ds, entries=ent, exits=ex, fees=0.001)
    assert "orders" not in res.__dict__            # not built by the backtest itself
    run = ql.backtesting.dispatch.simulate(ds, None, ent, ex, ql.BacktestOptions(fees=0.001))
    eager = result._orders(run, *run.out[3])
    assert len(eager) > 10
    for r in (copy.copy(res), copy.deepcopy(res), pickle.loads(pickle.dumps(res)),
              dataclasses.replace(res), res):
        pd.testing.assert_frame_equal(r.orders, eager, check_exact=True)
    assert res.orders is res.orders                # built once
    assert res.metrics()["n_trades"].sum() == len(res.trades) > 0
    with pytest.raises(AttributeError, match="no attribute 'order'"):
        res.order
