"""Issue #32: ``ql.backtest(threads=)`` runs independent accounts over column blocks on
the thread pool with the bits of one call: equity, cash, positions, orders (values AND
row order), trades and metrics."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab import _threads
from quantlab.backtesting import dispatch
from quantlab.backtesting.options import Slippage


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    """Cut even the bundled 20-asset panel into blocks of a column or two."""
    monkeypatch.setattr(_threads, "MIN_WORK", 1)
    monkeypatch.setattr(_threads, "MIN_BLOCK", 1)
    monkeypatch.setattr(dispatch, "_MIN_COLS", 1)


@pytest.fixture(scope="module")
def ds():
    return ql.data.load("sp500_20").isel(time=slice(-1500, None))


def ma_cross(ds, fast=10, slow=50, short=False):
    c = ds["close"]
    up = c.rolling(time=fast).mean() > c.rolling(time=slow).mean()
    sig = xr.where(up, 1.0, -1.0 if short else 0.0)
    return sig.where(c.rolling(time=slow).mean().notnull())


def same(a, b):
    """Everything a result shows, bit for bit (NaN == NaN), orders in row order."""
    for name in ("equity", "cash", "positions", "returns"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dims == y.dims
        np.testing.assert_array_equal(x.values, y.values, err_msg=name)
    pd.testing.assert_frame_equal(a.orders, b.orders, check_exact=True)
    pd.testing.assert_frame_equal(a.trades, b.trades, check_exact=True)
    xr.testing.assert_identical(a.metrics(), b.metrics())


def spy(monkeypatch):
    calls = []
    real = dispatch._by_accounts
    monkeypatch.setattr(dispatch, "_by_accounts",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


CASES = {
    "plain": {},
    "fees_slippage": dict(fees=0.001, slippage=0.002),
    "volume_slippage": dict(fees=0.0005, slippage=Slippage("volume_based", coef=0.1)),
    "adaptive_slippage": dict(slippage=Slippage("adaptive", bps=2, vol_mult=0.1)),
    "next_open_daily": dict(fees=0.001, execution="next_open", rebalance="daily"),
    "fee_sweep": dict(fees=xr.DataArray([0.0, 0.001, 0.01], dims="fee_rate",
                                        coords={"fee_rate": [0.0, 0.001, 0.01]})),
    "half_size": dict(max_position_size=0.5, fees=0.001),
}


@pytest.mark.parametrize("case", CASES)
def test_backtest_threads_target_signal_equals_one_thread(ds, case, monkeypatch):
    calls = spy(monkeypatch)
    if case in ("volume_slippage", "adaptive_slippage", "next_open_daily"):
        ds = ql.data.load()   # open, high, low, volume
    sig = ma_cross(ds)
    one = ql.backtest(ds, sig, threads=1, **CASES[case])
    two = ql.backtest(ds, sig, threads=2, **CASES[case])
    assert calls == [1, 1]          # the blocked path ran (one block with threads=1)
    same(one, two)
    assert len(one.orders) > 100


def test_backtest_threads_long_short_orders_keep_single_call_row_order(ds, monkeypatch):
    """A bar whose sells are in a later block than its buys: the single call records
    every sell of the bar first (column order), then every buy. Concatenating the
    blocks' records would put block 1's buy before block 2's sell."""
    calls = spy(monkeypatch)
    sig = ma_cross(ds, 5, 20, short=True)
    kw = dict(fees=0.001, maintenance_margin=0.0)   # no margin phase: the fast path
    one = ql.backtest(ds, sig, threads=1, **kw)
    four = ql.backtest(ds, sig, threads=4, **kw)
    assert calls == [1, 1]
    same(one, four)
    o = one.orders
    # a bar where a sell comes after a buy of a lower column: a naive concat breaks it
    late_sell = o.groupby("t").apply(
        lambda b: bool(((b["size"] < 0) & (b["col"] > b["col"][b["size"] > 0].min()))
                       .any()), include_groups=False)
    assert late_sell.sum() > 10
    first = o[o["t"] == late_sell[late_sell].index[0]]
    side = (first["size"] > 0).to_numpy().astype(int)
    assert (np.diff(side) >= 0).all()                      # sells, then buys
    for s in (0, 1):                                      # each by column
        assert (np.diff(first["col"].to_numpy()[side == s]) > 0).all()


@pytest.mark.parametrize("kw", [dict(), dict(size=0.5, size_type="equity"),
                                dict(size=0.3, accumulate=True, fees=0.001),
                                dict(size=0.5, sl_stop=0.03, fixed_fees=1.0)])
def test_backtest_threads_entries_exits_equal_one_thread(ds, kw):
    c = ds["close"]
    fast, slow = c.rolling(time=10).mean(), c.rolling(time=30).mean()
    entries = (fast > slow) & (fast.shift(time=1) <= slow.shift(time=1))
    exits = (fast < slow) & (fast.shift(time=1) >= slow.shift(time=1))
    same(ql.backtest(ds, entries=entries, exits=exits, threads=1, **kw),
         ql.backtest(ds, entries=entries, exits=exits, threads=3, **kw))


def random_panel(seed, n=300, m=13, short=False):
    rng = np.random.default_rng(seed)
    px = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, m)), axis=0))
    px[rng.random((n, m)) < 0.05] = np.nan             # holidays
    px[: rng.integers(0, 60), 3] = np.nan              # listed late
    sig = np.round(rng.uniform(-1 if short else 0, 1, (n, m)), 1)
    sig[rng.random((n, m)) < 0.6] = np.nan             # hold
    time = pd.date_range("2020-01-01", periods=n, freq="B")
    coords = {"time": time, "asset": [f"A{i}" for i in range(m)]}
    data = xr.DataArray(px, dims=("time", "asset"), coords=coords).to_dataset(name="close")
    return data, xr.DataArray(sig, dims=("time", "asset"), coords=coords)


@pytest.mark.parametrize("seed", range(3))
def test_backtest_threads_random_panels_with_nan_holes_equal_one_thread(seed, monkeypatch):
    calls = spy(monkeypatch)
    data, sig = random_panel(seed)
    kw = dict(fees=0.002, slippage=0.001, max_leverage=1.0)
    same(ql.backtest(data, sig, threads=1, **kw), ql.backtest(data, sig, threads=2, **kw))
    assert calls == [1, 1]


def test_backtest_threads_random_shorts_margin_equal_one_thread(monkeypatch):
    """Shorts turn the maintenance margin on (its calls are recorded after the bar's
    orders, the margin phase): blocks merged by phase, same results."""
    calls = spy(monkeypatch)
    data, sig = random_panel(3, short=True)
    kw = dict(fees=0.002, max_leverage=3.0, maintenance_margin=0.3)
    one = ql.backtest(data, sig, threads=1, **kw)
    same(one, ql.backtest(data, sig, threads=2, **kw))
    assert calls == [1, 1]
    assert (one.orders["reason"] == "margin_call").any()


PHASED = {
    "fixed_fees": dict(fixed_fees=5.0),
    "stops": dict(sl_stop=0.05, tp_stop=0.1),
    "trailing": dict(sl_trail=0.05, fees=0.001),
    "drawdown": dict(dd_limit=0.2),
    "drawdown_halt_fixed": dict(dd_limit=0.1, dd_mode="halt", fixed_fees=2.0),
    "leverage_borrow": dict(max_leverage=2.0, borrow_rate=0.05),
    "limit": dict(order_type="limit", limit_offset=0.01),
    "limit_tif_stop": dict(order_type="limit", limit_offset=0.01, limit_tif=3, sl_stop=0.03,
                           fees=0.001),
    "stop_sweep": dict(sl_stop=xr.DataArray([0.03, 0.08], dims="sl",
                                            coords={"sl": [0.03, 0.08]})),
}


@pytest.mark.parametrize("case", PHASED)
@pytest.mark.parametrize("which", ["sp500_20", "ohlcv"])
def test_backtest_threads_every_option_equals_one_thread(case, which, monkeypatch):
    """Fixed fees, stops, limits, drawdown control, margin and borrowing (orders in
    several phases of a bar) run in column blocks with the bits and order rows of one
    call (with the bars' high/low: the ohlcv set)."""
    calls = spy(monkeypatch)
    ds = (ql.data.load("sp500_20").isel(time=slice(-1500, None)) if which == "sp500_20"
          else ql.data.load())
    kw = PHASED[case]
    sig = ma_cross(ds, short="max_leverage" in kw)
    one = ql.backtest(ds, sig, threads=1, **kw)
    same(one, ql.backtest(ds, sig, threads=2, **kw))
    same(one, ql.backtest(ds, sig, threads=4, **kw))
    assert calls == [1, 1, 1]
    assert len(one.orders) > 5
    if "dd_limit" in kw:
        np.testing.assert_array_equal(one.halted.values,
                                      ql.backtest(ds, sig, threads=3, **kw).halted.values)
    if "borrow_rate" in kw:
        np.testing.assert_array_equal(one.interest.values,
                                      ql.backtest(ds, sig, threads=3, **kw).interest.values)


def test_backtest_threads_stops_before_earlier_columns_signals(ds, monkeypatch):
    """A bar whose stop (an earlier phase) is in a later block than a signal order: the
    single call records the stop first; concatenating blocks would not."""
    calls = spy(monkeypatch)
    sig = ma_cross(ds, 5, 20)
    kw = dict(sl_stop=0.02, fees=0.001)
    one = ql.backtest(ds, sig, threads=1, **kw)
    same(one, ql.backtest(ds, sig, threads=4, **kw))
    assert calls == [1, 1]
    o = one.orders
    stop = o["reason"] == "stop"
    late = [t for t, b in o.groupby("t") if (b["reason"] == "stop").any()
            and (b["col"][b["reason"] == "signal"].min() < b["col"][b["reason"] == "stop"].max())]
    assert len(late) > 5 and stop.sum() > 20


def test_backtest_threads_fixed_fee_skips_of_both_sides(monkeypatch):
    """Orders skipped for their fixed fee (size 0: no side to sort by) on sells and buys,
    with margin calls: the blocks' phases keep the single call's row order."""
    calls = spy(monkeypatch)
    data, sig = random_panel(0, short=True)
    kw = dict(init_cash=100.0, fixed_fees=30.0, fees=0.01)
    one = ql.backtest(data, sig, threads=1, **kw)
    same(one, ql.backtest(data, sig, threads=3, **kw))
    assert calls == [1, 1]
    skipped = one.orders[one.orders["reason"] == "fixed_fee"]
    assert len(skipped) > 100 and (skipped["size"] == 0).all()


@pytest.mark.parametrize("kw", [dict(fees=0.001), dict(fixed_fees=5.0, sl_stop=0.05),
                                dict(max_leverage=2.0, borrow_rate=0.05, dd_limit=0.3)])
def test_backtest_threads_metrics_only_equals_one_thread(ds, kw, monkeypatch):
    calls = spy(monkeypatch)
    sig = ma_cross(ds, short=True)
    names = ("sharpe_ratio", "total_return", "max_drawdown", "fees_paid", "turnover",
             "n_orders")
    one = ql.backtest(ds, sig, metrics_only=names, threads=1, **kw)
    two = ql.backtest(ds, sig, metrics_only=names, threads=2, **kw)
    assert calls == [1, 1]
    xr.testing.assert_identical(one, two)
    full = ql.backtest(ds, sig, **kw).metrics()        # and equal to the full backtest
    np.testing.assert_allclose(two["total_return"], full["total_return"], rtol=1e-12)


def test_backtest_threads_group_true_unchanged(ds, monkeypatch):
    calls = spy(monkeypatch)
    sig = ma_cross(ds) / 20
    same(ql.backtest(ds, sig, group=True, fees=0.001, threads=1),
         ql.backtest(ds, sig, group=True, fees=0.001, threads=2))
    assert calls == []


def test_backtest_threads_default_follows_quantlab_threads(ds, monkeypatch):
    """Default: full and metrics-only runs use $QUANTLAB_THREADS, with the bits and
    order rows of one thread."""
    sig = ma_cross(ds)
    monkeypatch.setenv("QUANTLAB_THREADS", "2")
    used = []
    real = dispatch._by_accounts
    monkeypatch.setattr(dispatch, "_by_accounts", lambda args, kw, threads: used.append(
        _threads.resolve(threads)) or real(args, kw, threads))
    same(ql.backtest(ds, sig, fees=0.001), ql.backtest(ds, sig, fees=0.001, threads=1))
    names = ("sharpe_ratio", "fees_paid")
    xr.testing.assert_identical(ql.backtest(ds, sig, metrics_only=names),
                                ql.backtest(ds, sig, metrics_only=names, threads=1))
    assert used == [2, 1, 2, 1]
    monkeypatch.setenv("QUANTLAB_THREADS", "zero")
    with pytest.raises(ValueError, match="QUANTLAB_THREADS"):
        ql.backtest(ds, sig)


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-1, ValueError),
                                      (1.5, ValueError), (True, TypeError),
                                      ("2", TypeError), (10 ** 6, ValueError)])
def test_backtest_threads_bad_value_is_refused_naming_it(ds, bad, exc):
    with pytest.raises(exc, match="threads"):
        ql.backtest(ds, ma_cross(ds), threads=bad)


def kernel_args(seed=0, n=200, m=9):
    """A small independent-accounts kernel call with stops, borrowing and margin."""
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.03, (n, m)), axis=0))
    tgt = np.round(rng.uniform(-1, 1, (n, m)), 1)
    tgt[rng.random((n, m)) < 0.7] = np.nan
    cols = np.arange(m, dtype=np.intp)
    args = (close, close, tgt, np.full((n, m), 0.001), np.zeros((n, m)), 0.05, cols, cols,
            m, 1000.0, np.full(m, 0.001), np.full(m, 1.0), 2.0, 2.0, False, False)
    kw = dict(stops=(np.full(m, 0.04), np.full(m, np.nan), np.full(m, np.nan)),
              borrow=1e-4, margin=0.3)
    return args, kw


def block(args, kw, lo, hi):
    """``kernel_args``' call on columns [lo, hi) (one asset per column)."""
    c = slice(lo, hi)
    cols = np.arange(hi - lo, dtype=np.intp)
    sub = (*(a[:, c] for a in args[:5]), args[5], cols, cols, hi - lo, args[9],
           args[10][c], args[11][c], *args[12:])
    return sub, dict(kw, stops=tuple(x[c] for x in kw["stops"]))


def test_kernel_out_writes_into_strided_blocks():
    """``out=``: each column block writes its columns of the caller's panels (strided
    views) with the bits of a call allocating its own; ``halted``/``interest`` too."""
    from quantlab._kernels import backtest as _k
    args, kw = kernel_args()
    n, m = args[0].shape
    ref = _k.simulate(*args, dd_limit=0.3, dd_cooldown=5, **kw)
    panels = (np.full((n, m), -1.0), np.full((n, m), -1.0), np.full((n, m), -1.0),
              np.zeros((n, m), dtype=np.int8), np.zeros((n, m)))
    for lo, hi in ((0, 4), (4, 9)):
        sub, sub_kw = block(args, kw, lo, hi)
        got = _k.simulate(*sub, dd_limit=0.3, dd_cooldown=5, **sub_kw,
                          out=tuple(p[:, lo:hi] for p in panels))
        for i, p in zip((0, 1, 2, 4, 5), panels):
            assert np.shares_memory(got[i], p)
    for i, p in zip((0, 1, 2, 4, 5), panels):
        np.testing.assert_array_equal(p, ref[i])
    assert ref[4].any() and ref[5].any()   # drawdown halts and interest were written


def test_kernel_out_is_checked_and_unused_panels_are_ignored():
    from quantlab._kernels import backtest as _k
    args, _ = kernel_args()
    n, m = args[0].shape
    with pytest.raises(ValueError, match="out"):
        _k.simulate(*args, out=(np.empty((n, m + 1)), None, None, None, None))
    with pytest.raises(ValueError, match="out"):
        _k.simulate(*args, out=(np.empty((n, m), dtype=np.float32), None, None, None, None))
    with pytest.raises(ValueError, match="out"):
        _k.simulate(*args, out=(None, None))
    panel = np.empty((n, 2 * m))         # equity and cash rows overlapping, or the input
    for out in ((panel[:, :m], panel[:, 1:m + 1], None, None, None),
                (args[0], None, None, None, None)):
        with pytest.raises(ValueError, match="must not overlap"):
            _k.simulate(*args, out=out)
    _k.simulate(*args, out=(panel[:, :m], panel[:, m:], None, None, None))  # side by side
    cash = np.full((n, m), 7.0)
    lean = _k.simulate(*args, lean=True, out=(None, cash, None, None, None))
    assert lean[1] is None and (cash == 7.0).all()    # lean: cash is not written
    assert lean[5].shape == (0, m)                      # no borrowing: no interest rows


@pytest.mark.parametrize("seed", range(4))
def test_kernel_merge_orders_equals_lexsort_of_phase_keys(seed):
    """``keyed`` records are sorted by (bar, phase, column) in one call, and merging
    column blocks' keyed records gives that call's records exactly."""
    from quantlab._kernels import backtest as _k
    args, kw = kernel_args(seed, m=11)
    n, m = args[0].shape
    whole = _k.simulate(*args, keyed=True, **kw)[3]
    t, col, phase = whole[0], whole[1], whole[6]
    assert len(t) > 50 and len(np.unique(phase)) >= 3
    order = np.lexsort((col, phase, t))
    np.testing.assert_array_equal(order, np.arange(len(t)))   # already in key order
    edges = [0, 3, 4, 8, 11]
    parts = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sub, sub_kw = block(args, kw, lo, hi)
        parts.append(_k.simulate(*sub, keyed=True, **sub_kw)[3])
    merged = _k.merge_orders(parts, np.array(edges[:-1], dtype=np.intp))
    naive = np.concatenate([p[1] + lo for p, lo in zip(parts, edges)])
    assert not np.array_equal(naive, col)      # the blocks' rows interleave
    for a, b in zip(merged, whole[:6]):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    empty = _k.merge_orders([], np.zeros(0, dtype=np.intp))
    assert [len(a) for a in empty] == [0] * 6
    none = [tuple(a[:0] for a in parts[0])] * 2        # blocks with no orders
    assert [len(a) for a in _k.merge_orders(none, np.array([0, 3]))] == [0] * 6
    bad = list(parts[0])
    bad[6] = np.full(len(bad[0]), 9, dtype=np.int8)   # not a phase: would index past
    with pytest.raises(ValueError, match="phases"):
        _k.merge_orders([tuple(bad)], np.zeros(1, dtype=np.intp))


MIN_COLS = dispatch._MIN_COLS   # the package's value (the autouse fixture sets 1)


def test_backtest_threads_narrow_panel_stays_on_one_thread(ds, monkeypatch):
    """A block of accounts costs the kernel ~10 ns a bar whatever its width: a panel
    too narrow for two blocks of ``_MIN_COLS`` columns runs as one kernel call (a long
    4-asset run cut into 1-column blocks took twice the CPU); a wider one runs one
    block per thread (narrower blocks cost more per value)."""
    assert MIN_COLS > 1
    monkeypatch.setattr(dispatch, "_MIN_COLS", MIN_COLS)
    widths = []
    real = dispatch._k.simulate
    monkeypatch.setattr(dispatch._k, "simulate",
                        lambda *a, **k: widths.append(len(a[10])) or real(*a, **k))
    narrow = ds.isel(asset=slice(0, 2 * MIN_COLS - 1))
    ql.backtest(narrow, ma_cross(narrow), fees=0.001, threads=2)
    assert widths == [narrow.sizes["asset"]]
    wide = xr.concat([ds.assign_coords(asset=[f"{a}{k}" for a in ds.asset.values])
                      for k in range(-(-2 * MIN_COLS // ds.sizes["asset"]))], "asset")
    widths.clear()
    ql.backtest(wide, ma_cross(wide), fees=0.001, threads=2)
    assert len(widths) == 2 and min(widths) >= MIN_COLS   # one block per thread


@pytest.mark.parametrize("span", [50, 10 ** 7])
def test_kernel_merge_orders_dense_and_sparse_bars_give_the_stable_key_order(span):
    """Counting per (bar, phase) where records are dense, a stable sort where the bars
    far outnumber them (a count per key would take 48 bytes a bar): either way the
    records in (bar, phase) order, ties to the lower block, then the block's order."""
    from quantlab._kernels import backtest as _k
    rng = np.random.default_rng(span)
    parts, col0 = [], np.array([0, 5, 9], dtype=np.intp)
    for b in range(3):
        r = 300
        t = np.sort(rng.integers(0, span, r)).astype(np.intp)
        phase = rng.integers(0, 6, r).astype(np.int8)
        o = np.lexsort((phase, t))
        parts.append((t[o], rng.integers(0, 4, r).astype(np.intp), rng.normal(size=r),
                      rng.normal(size=r), rng.normal(size=r),
                      rng.integers(0, 5, r).astype(np.int8), phase[o]))
    got = _k.merge_orders(parts, col0)
    key = np.concatenate([p[0] * 6 + p[6] for p in parts])
    order = np.argsort(key, kind="stable")
    want = [np.concatenate([p[f] for p in parts])[order] for f in (0, 1, 2, 3, 4, 5)]
    want[1] = np.concatenate([p[1] + c for p, c in zip(parts, col0)])[order]
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def test_backtest_threads_blocks_orders_are_joined_once_when_first_read(ds, monkeypatch):
    calls = []
    real = dispatch._k.merge_orders
    monkeypatch.setattr(dispatch._k, "merge_orders",
                        lambda *a: calls.append(1) or real(*a))
    sig = ma_cross(ds, short=True)
    res = ql.backtest(ds, sig, fees=0.001, threads=3)
    ql.metrics.sharpe_ratio(res.returns), ql.metrics.max_drawdown(res.returns)
    assert calls == []                      # equity, returns and their metrics: no join
    res.positions, res.orders, res.cash, res.trades
    assert calls == [1]                     # joined on the first read, once
    same(res, ql.backtest(ds, sig, fees=0.001, threads=1))
