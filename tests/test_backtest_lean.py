"""Issue #32, round 2: ql.backtest's lean kernel run. Cash and positions are not written
per bar but rebuilt from the order records on first read; the signals pass touches only
the columns with an order. Every output must keep the bits of the full kernel (no
timing here: benchmarks/backtest_profile.py)."""
import copy
import pickle

import numpy as np
import pytest
import xarray as xr
from test_backtest import _panel
from test_backtest_fast import FAST, _bits, _events, _labelled
from test_backtest_state import _inputs

import quantlab as ql
from quantlab._kernels import backtest as _k
from quantlab.backtesting import dispatch, result


def _rebuilt(kw, out):
    n, m = out[0].shape[0], kw["asset"].shape[0]
    return (_k.cash_from_orders(n, kw["group"], kw["n_groups"], kw["init_cash"], out[3]),
            _k.positions_from_orders(n, m, out[3]))


@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("feature", FAST)
def test_lean_kernel_cash_and_positions_rebuilt_from_orders_have_the_kernels_bits(
        feature, group):
    for seed in range(3):
        kw = _inputs(feature, group, seed)
        full, lean = _k.simulate(**kw, fast=False), _k.simulate(**kw, lean=True)
        assert lean[1] is None and lean[2] is None
        _bits(lean[0], full[0])
        _bits(lean[3], full[3])
        cash, pos = _rebuilt(kw, lean)
        _bits(cash, full[1])
        _bits(pos, full[2])


@pytest.mark.parametrize("feature", ["stops", "limit", "drawdown", "borrow", "margin"])
def test_lean_is_ignored_off_the_fast_path_and_with_a_state(feature):
    kw = _inputs(feature, True)
    _bits(_k.simulate(**kw, lean=True), _k.simulate(**kw))   # every panel written
    kw = _inputs("plain", False)
    state = _k.SimState(kw["target"].shape[1], kw["n_groups"], kw["init_cash"])
    out = _k.simulate(**kw, lean=True, state=state)
    _bits(out, _k.simulate(**kw))


def test_lean_kernel_with_boolean_entries_exits_has_the_bits_of_the_full_kernel():
    for next_open in (False, True):
        kw = _inputs("next_open" if next_open else "plain", False)
        for seed in range(3):   # 1/1 bytes and uint8 views: the skip of empty columns
            ent, ex = _events(seed, kw["target"].shape, p_both=0.2)
            for target in ((ent, ex), (ent.view(np.uint8), ex.view(np.uint8))):
                k2 = dict(kw, target=target)
                full, lean = _k.simulate(**k2, fast=False), _k.simulate(**k2, lean=True)
                _bits(lean[0], full[0])
                _bits(lean[3], full[3])
                _bits(_rebuilt(k2, lean), full[1:3])


def _python_rebuild(n, m, group, n_groups, init_cash, orders):
    """The plain loop the kernel runs, in Python floats (IEEE doubles, no FMA)."""
    ot, oc, osz, opx, ofee, why = orders
    q, cash = [0.0] * m, [float(init_cash)] * n_groups
    pos_out, cash_out = np.empty((n, m)), np.empty((n, n_groups))
    k = 0
    for r in range(n):
        while k < len(ot) and ot[k] == r:
            if why[k] != _k.REASONS.index("fixed_fee"):
                q[oc[k]] += float(osz[k])
                cash[group[oc[k]]] += -float(osz[k]) * float(opx[k]) - float(ofee[k])
            k += 1
        pos_out[r], cash_out[r] = q, cash
    return cash_out, pos_out


@pytest.mark.parametrize("seed", range(6))
def test_cash_and_positions_from_random_order_streams_are_the_sequential_sums(seed):
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 40)), int(rng.integers(1, 9))
    n_groups = int(rng.integers(1, m + 1))
    group = rng.integers(0, n_groups, m).astype(np.intp)
    k = int(rng.integers(0, 200))
    orders = (np.sort(rng.integers(0, n, k)).astype(np.intp),
              rng.integers(0, m, k).astype(np.intp),
              rng.normal(0, 1, k) * 10 ** rng.uniform(-3, 6, k),
              rng.uniform(0.01, 500, k), rng.uniform(0, 3, k) * (rng.random(k) < 0.8),
              rng.integers(0, len(_k.REASONS), k).astype(np.int8))
    want_cash, want_pos = _python_rebuild(n, m, group, n_groups, 1e5, orders)
    _bits(_k.cash_from_orders(n, group, n_groups, 1e5, orders), want_cash)
    _bits(_k.positions_from_orders(n, m, orders), want_pos)


def test_rebuilds_refuse_order_arrays_they_cannot_read():
    ok = (np.array([0, 2]), np.array([0, 1]), np.ones(2), np.ones(2), np.zeros(2),
          np.zeros(2, np.int8))
    grp = np.arange(2, dtype=np.intp)
    with pytest.raises(ValueError, match=r"bars must be in \[0, 2\)"):
        _k.positions_from_orders(2, 2, ok)
    with pytest.raises(ValueError, match="non-decreasing"):
        _k.positions_from_orders(3, 2, (ok[0][::-1], *ok[1:]))
    with pytest.raises(ValueError, match=r"columns must be in \[0, 1\)"):
        _k.positions_from_orders(3, 1, ok)
    with pytest.raises(ValueError, match="one length"):
        _k.cash_from_orders(3, grp, 2, 1.0, (*ok[:5], np.zeros(1, np.int8)))
    with pytest.raises(ValueError, match=r"accounts must be in \[0, 1\)"):
        _k.cash_from_orders(3, grp, 1, 1.0, ok)
    with pytest.raises(ValueError, match="n must be >= 0"):
        _k.cash_from_orders(-1, grp, 2, 1.0, ok)


@pytest.mark.parametrize("opts", [
    dict(fees=0.001, slippage=0.0005),
    dict(fees=xr.DataArray([0.0, 0.002], dims="fee_rate", coords={"fee_rate": [0, 2]}),
         group=True),
    # (not with fixed fees: a fee can leave cash below 0, so the margin is checked)
    dict(execution="next_open", fees=0.002, rebalance="daily"),
    dict(size=xr.DataArray([0.2, np.inf], dims="sz", coords={"sz": [1, 2]})),
])
def test_lean_backtest_cash_positions_are_lazy_and_equal_the_eager_ones(opts):
    ds = _panel(5, n=200, m=3, holes=True)
    ent, ex = _labelled(ds, 7, extra=["a", "b"])
    res = ql.backtest(ds, entries=ent, exits=ex, **opts)
    assert "cash" not in res.__dict__ and "positions" not in res.__dict__   # not built yet
    o = ql.BacktestOptions(**opts)
    eager = result.from_run(dispatch.simulate(ds, None, ent, ex, o), o)
    for r in (copy.copy(res), copy.deepcopy(res), pickle.loads(pickle.dumps(res)), res):
        for k in ("equity", "cash", "positions"):
            xr.testing.assert_identical(getattr(r, k), getattr(eager, k))
            _bits(getattr(r, k).values, getattr(eager, k).values)
    assert res.cash is res.cash and res.positions is res.positions     # built once
    xr.testing.assert_identical(res.metrics(), eager.metrics())


def test_entries_exits_in_another_asset_order_are_matched_not_read_misaligned():
    # the aligned-frame shortcut (no xr.align/broadcast when dims, sizes and indexes
    # match) must not take exits whose labels are in another order by position: they
    # are matched by label (session 53; refused before), other labels refused
    ds = _panel(3, n=60, m=2)
    ent, ex = _labelled(ds, 1)
    aligned = ql.backtest(ds, entries=ent, exits=ex).equity.values
    _bits(ql.backtest(ds, entries=ent, exits=ex.isel(asset=[1, 0])).equity.values, aligned)
    swapped = ql.backtest(ds, entries=ent, exits=ex.isel(asset=[1, 0]).sortby("asset"))
    _bits(swapped.equity.values, aligned)
    with pytest.raises(ValueError):
        ql.backtest(ds, entries=ent, exits=ex.assign_coords(asset=["X", "Y"]))


def test_scalar_fees_skip_the_broadcast_with_the_same_result():
    # a plain number (0-d, no coordinate) is no longer broadcast against the signal;
    # one with a scalar coordinate still is: all three give one result, as before
    ds = _panel(3, n=60, m=2)
    ent, ex = _labelled(ds, 1)
    plain = ql.backtest(ds, entries=ent, exits=ex, fees=0.001, fixed_fees=1.0)
    for fee in (xr.DataArray(0.001), xr.DataArray(0.001, coords={"fee_rate": 0.001})):
        res = ql.backtest(ds, entries=ent, exits=ex, fees=fee, fixed_fees=1.0)
        xr.testing.assert_identical(res.equity, plain.equity)
        _bits(res.cash.values, plain.cash.values)
    assert len(plain.orders) > 3 and plain.equity.dims == ("time", "asset")
