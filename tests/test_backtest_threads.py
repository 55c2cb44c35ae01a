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
                                dict(size=0.3, accumulate=True, fees=0.001)])
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


def test_backtest_threads_random_shorts_margin_use_one_call(monkeypatch):
    """Shorts turn the maintenance margin on (its calls are recorded after the bar's
    orders): one call, same results."""
    calls = spy(monkeypatch)
    data, sig = random_panel(7, short=True)
    same(ql.backtest(data, sig, fees=0.002, threads=1),
         ql.backtest(data, sig, fees=0.002, threads=2))
    assert calls == []


@pytest.mark.parametrize("kw", [dict(fixed_fees=5.0), dict(sl_stop=0.05, tp_stop=0.1),
                                dict(dd_limit=0.2), dict(max_leverage=2.0, borrow_rate=0.05),
                                dict(order_type="limit", limit_offset=0.01)])
def test_backtest_threads_options_with_phase_order_use_one_call(ds, kw, monkeypatch):
    """Fixed fees (a skipped order of either side), stops, limits, drawdown control,
    margin and borrowing record orders in other phases: one call, same results."""
    calls = spy(monkeypatch)
    sig = ma_cross(ds, short="max_leverage" in kw)
    same(ql.backtest(ds, sig, threads=1, **kw), ql.backtest(ds, sig, threads=2, **kw))
    assert calls == []


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
    """Default: metrics-only runs use $QUANTLAB_THREADS, full runs one thread (their
    equity copy and orders merge cost more than a second core gains)."""
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
    assert used == [1, 1, 2, 1]
    monkeypatch.setenv("QUANTLAB_THREADS", "zero")
    with pytest.raises(ValueError, match="QUANTLAB_THREADS"):
        ql.backtest(ds, sig)


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-1, ValueError),
                                      (1.5, ValueError), (True, TypeError),
                                      ("2", TypeError), (10 ** 6, ValueError)])
def test_backtest_threads_bad_value_is_refused_naming_it(ds, bad, exc):
    with pytest.raises(exc, match="threads"):
        ql.backtest(ds, ma_cross(ds), threads=bad)
