"""build_trades (issue #32): the vectorised round trips equal the old order-by-order loop
(kept below as the reference) bit for bit -- rows, order, dtypes, values -- on backtests
(accumulate, partial exits, flips, stops, fixed-fee skips, parameter dims, group=True, NaN
bars) and on random order streams; plus hand-checked trades."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab.backtesting.trades import _running_sums, build_trades


def _reference(orders, prices):
    """build_trades before issue #32 (a Python loop per column), verbatim but dropna=False."""
    cols = ["asset", *[c for c in orders.columns if c not in
                       ("t", "col", "time", "asset", "size", "price", "fee", "reason")]]
    orders = orders[orders["size"] != 0]
    rows = []
    last_px = prices.ffill("time").isel(time=-1)
    # dropna=False (session 48): a NaN label (a swept stop's "off") is a column too;
    # the loop dropped its trades
    for key, g in orders.groupby(cols, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        rows += _ref_round_trips(dict(zip(cols, key)), g, last_px)
    columns = [*cols, "entry_time", "exit_time", "size", "entry_price", "exit_price",
               "fee", "pnl", "exit_reason"]
    return pd.DataFrame(rows, columns=columns)


def _ref_round_trips(labels, g, last_px):
    rows = []
    q = 0.0
    cur = None
    for o in g.itertuples(index=False):
        flow = -o.size * o.price - o.fee
        if cur is None:
            cur = dict(labels, entry_time=o.time, entry_price=o.price, size=o.size, fee=0.0,
                       pnl=0.0)
        cur["fee"] += o.fee
        cur["pnl"] += flow
        newq = q + o.size
        if newq == 0 or np.sign(newq) != np.sign(q) and q != 0:
            cur.update(exit_time=o.time, exit_price=o.price, exit_reason=o.reason)
            if newq != 0:
                frac = abs(q) / abs(o.size)
                cur["pnl"] -= flow * (1 - frac)
                cur["fee"] -= o.fee * (1 - frac)
                rows.append(cur)
                cur = dict(labels, entry_time=o.time, entry_price=o.price, size=newq,
                           fee=o.fee * (1 - frac), pnl=flow * (1 - frac))
            else:
                rows.append(cur)
                cur = None
        q = newq
    if cur is not None:
        px = float(last_px.sel(asset=cur["asset"]))
        cur.update(exit_time=pd.NaT, exit_price=px, exit_reason="end_of_data")
        cur["pnl"] += q * px
        rows.append(cur)
    return rows


def _assert_same(orders, prices):
    """New == reference: frame equal exactly, and float columns equal bit for bit."""
    new, old = build_trades(orders, prices), _reference(orders, prices)
    pd.testing.assert_frame_equal(new, old, check_exact=True)
    for c in old.columns:
        if old[c].dtype == np.float64:
            np.testing.assert_array_equal(new[c].to_numpy().view(np.int64),
                                          old[c].to_numpy().view(np.int64), err_msg=c)
    return new


def _panel(n=300, m=4, seed=0, nan=False):
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, m)), axis=0))
    if nan:
        close[rng.random((n, m)) < 0.05] = np.nan
    bars = {"close": close, "open": close * np.exp(rng.normal(0, 0.005, (n, m)))}
    bars["high"] = np.fmax(bars["open"], close) * 1.01
    bars["low"] = np.fmin(bars["open"], close) * 0.99
    t = pd.date_range("2020-01-01", periods=n, freq="D")
    return xr.Dataset({k: (("time", "asset"), v) for k, v in bars.items()},
                      coords={"time": t, "asset": [f"A{i}" for i in range(m)]})


def _events(ds, p, seed):
    rng = np.random.default_rng(seed)
    return xr.DataArray(rng.random(ds["close"].shape) < p, dims=("time", "asset"),
                        coords={"time": ds.time, "asset": ds.asset})


@pytest.mark.parametrize("kw", [
    dict(),                                                     # open/close
    dict(size=0.1, accumulate=True),                            # pyramiding, partial exits
    dict(size=0.3, accumulate=True, fees=0.002, fixed_fees=3.0),
    dict(sl_stop=0.03, tp_stop=0.05, fees=0.001, slippage=0.0005),   # stops
    dict(sl_trail=0.04, size=0.2, accumulate=True),
    dict(fixed_fees=60_000.0, size=0.5, accumulate=True),       # fixed-fee skips (size 0)
])
def test_trades_of_entry_exit_backtests_equal_the_order_loop(kw):
    ds = _panel()
    res = ql.backtest(ds, entries=_events(ds, 0.08, 1), exits=_events(ds, 0.06, 2), **kw)
    _assert_same(res.orders_frame, res.prices)


@pytest.mark.parametrize("group,nan", [(False, False), (True, False), (False, True),
                                       (True, True)])
def test_trades_of_long_short_signals_with_flips_params_and_nan_bars_equal_the_order_loop(
        group, nan):
    ds = _panel(nan=nan, seed=3)
    rng = np.random.default_rng(4)
    raw = rng.choice([-1.0, -0.5, 0.0, 0.3, 1.0, np.nan], size=ds["close"].shape + (2,),
                     p=[0.05, 0.03, 0.04, 0.03, 0.05, 0.8])
    sig = xr.DataArray(raw, dims=("time", "asset", "lev"),
                       coords={"time": ds.time, "asset": ds.asset, "lev": [0.5, 1.0]})
    sig = sig * sig.lev
    res = ql.backtest(ds, sig, fees=xr.DataArray([0.0, 0.001], dims="fee_rate",
                                                 coords={"fee_rate": [0.0, 0.001]}),
                      sl_stop=0.05, group=group, max_leverage=2.0)
    tr = _assert_same(res.orders_frame, res.prices)
    assert (tr["exit_reason"] == "stop").any() and len(tr) > 100


def _random_orders(seed, ncol=6, n=400):
    """Synthetic order streams: opens, adds, partial closes, exact closes, flips, size-0
    skips, sizes whose running sum misses 0 by rounding (0.1 + 0.2 - 0.3), interleaved
    columns, a parameter with a NaN label (kept: a column like any other), negative prices."""
    rng = np.random.default_rng(seed)
    t = pd.date_range("2021-01-01", periods=n, freq="h")
    assets = np.array(["X", "Y", "Z"], dtype=object)
    rows = []
    pos = {}
    for i in range(n):
        for c in rng.choice(ncol, size=rng.integers(1, 3), replace=False):
            q = pos.get(c, 0.0)
            kind = rng.integers(0, 7)
            size = {0: rng.normal(0, 5), 1: -q, 2: -q * rng.random(), 3: -2.5 * q,
                    4: 0.0, 5: rng.choice([0.1, 0.2, -0.3]),
                    6: float(rng.integers(-3, 4))}[kind]
            pos[c] = q + size
            rows.append(dict(t=i, col=c, time=t[i], asset=assets[c % 3],
                             k=[1.0, 2.0, np.nan][c // 3],
                             size=size, price=float(rng.choice([100.0, -5.0, 37.3])) *
                             rng.random(), fee=abs(size) * rng.random() * 0.01,
                             reason=str(rng.choice(["signal", "stop", "trailing"]))))
    orders = pd.DataFrame(rows)
    orders["reason"] = orders["reason"].to_numpy(dtype=object)
    px = np.where(rng.random((n, 3)) < 0.3, np.nan, rng.random((n, 3)) * 100)
    px[-1, 0] = np.nan                       # last close NaN: the ffill'd one marks
    prices = xr.DataArray(px, dims=("time", "asset"), coords={"time": t, "asset": assets})
    return orders, prices


@pytest.mark.parametrize("seed", range(6))
def test_trades_of_random_order_streams_equal_the_order_loop(seed):
    orders, prices = _random_orders(seed, ncol=9 if seed % 2 else 6)
    tr = _assert_same(orders, prices)
    assert len(tr) > 50


def test_trades_without_orders_or_only_skipped_orders_equal_the_order_loop():
    orders, prices = _random_orders(0)
    _assert_same(orders.iloc[:0], prices)
    skipped = orders.assign(size=0.0, fee=0.0, reason="fixed_fee")
    assert len(_assert_same(skipped, prices)) == 0
    one = orders[(orders["size"] != 0)].iloc[:1]   # a single order: one open trade
    tr = _assert_same(one, prices)
    assert list(tr["exit_reason"]) == ["end_of_data"]


def test_trades_flip_splits_flow_and_fee_by_shares_hand_checked():
    t = pd.date_range("2022-01-01", periods=3, freq="D")
    orders = pd.DataFrame(dict(t=[0, 1, 2], col=0, time=t, asset="X",
                               size=[2.0, -6.0, 4.0], price=[10.0, 12.0, 11.0],
                               fee=[0.2, 0.6, 0.4], reason=["signal"] * 3))
    prices = xr.DataArray([[10.0], [12.0], [11.0]], dims=("time", "asset"),
                          coords={"time": t, "asset": ["X"]})
    tr = _assert_same(orders, prices)
    # long 2 @10 closed by a third of the -6 @12 order; short 4 @12 closed @11
    np.testing.assert_allclose(tr["pnl"], [2 * 2 - 0.2 - 0.2, 4 * 1 - 0.4 - 0.4])
    np.testing.assert_allclose(tr["fee"], [0.4, 0.8])
    np.testing.assert_allclose(tr["size"], [2.0, -4.0])


def test_running_sums_add_left_to_right_like_a_loop():
    rng = np.random.default_rng(0)
    x = rng.normal(size=200) * 10.0 ** rng.integers(-8, 8, 200)
    lens = np.array([0, 50, 3, 147])
    starts = np.r_[0, np.cumsum(lens)[:-1]]
    init = np.array([1.5, 0.0, -0.0, 1e-9])
    out, total = _running_sums(x, starts, lens, init)
    for s, ln, a, tot in zip(starts, lens, init, total):
        acc = a
        for i in range(s, s + ln):
            acc += x[i]
            assert out[i] == acc
        assert np.float64(tot).view(np.int64) == np.float64(acc).view(np.int64)


@pytest.mark.parametrize("dtype", ["int32", "uint8", "uint64", "float32", "bool", "object",
                                   "datetime64[ns]"])
def test_trades_label_and_time_dtypes_equal_the_order_loop(dtype):
    orders, prices = _random_orders(7)
    lab = (orders["col"] % 2).to_numpy()
    orders["k"] = (lab.astype(dtype) if dtype != "object" else
                   np.array(["a", "b"], dtype=object)[lab])
    if dtype == "uint64":
        orders["k"] = lab.astype(np.uint64) + np.uint64(2**63)
    _assert_same(orders, prices)
    # integer asset labels and a time column that is not datetime (ints: object exits)
    ints = orders.assign(asset=orders["col"] % 3, time=orders["t"])
    _assert_same(ints, prices.assign_coords(asset=[0, 1, 2], time=np.arange(len(prices))))


def test_build_trades_of_many_columns_does_not_loop_per_column_or_order(monkeypatch):
    """Issue #32: 1.3 s for 67k orders was a Python loop per column (groupby iteration,
    itertuples); the vectorised build iterates neither (no timing asserted)."""
    orders, prices = _random_orders(2)
    expected = _reference(orders, prices)

    def refuse(*a, **k):
        raise AssertionError("per-column / per-order Python loop")
    monkeypatch.setattr(pd.core.groupby.generic.DataFrameGroupBy, "__iter__", refuse)
    monkeypatch.setattr(pd.DataFrame, "itertuples", refuse)
    with pytest.raises(AssertionError, match="loop"):
        _reference(orders, prices)
    pd.testing.assert_frame_equal(build_trades(orders, prices), expected, check_exact=True)
