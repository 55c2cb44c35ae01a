"""ql.backtest (vectorbt parity: tests/parity/test_vectorbt.py): accounting identities, costs,
missing bars, execution timing, portfolios, bad input."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql


def _panel(seed, n=300, m=4, holes=False):
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0003, 0.015, (n, m))
    close = 50 * np.exp(np.cumsum(r, axis=0))
    open_ = close * np.exp(rng.normal(0, 0.004, (n, m)))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, (n, m)))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, (n, m)))
    vol = rng.integers(10_000, 1_000_000, (n, m)).astype(float)
    data = {"open": open_, "high": high, "low": low, "close": close, "volume": vol}
    if holes:
        miss = rng.random((n, m)) < 0.03
        for v in data.values():
            v[miss] = np.nan
    t = pd.date_range("2010-01-01", periods=n, freq="D")  # vectorbt rejects freq="B"
    return xr.Dataset({k: (("time", "asset"), v) for k, v in data.items()},
                      coords={"time": t, "asset": [f"A{i}" for i in range(m)]})


def _crossover(close, fast=10, slow=40):
    f, s = ql.rolling.mean(close, fast), ql.rolling.mean(close, slow)
    entries = (f > s) & (f.shift(time=1) <= s.shift(time=1))
    exits = (f < s) & (f.shift(time=1) >= s.shift(time=1))
    return entries, exits


def _assert_accounting(res, init_cash=100_000.0):
    px = res.prices.ffill("time").fillna(0.0)
    value = (res.positions * px)
    held = value.sum("asset") if res.group else value
    np.testing.assert_allclose(res.equity, res.cash + held, rtol=1e-10, atol=1e-6)
    # cash changes are exactly the orders' flows
    o = res.orders
    flows = -(o["size"] * o["price"]) - o["fee"]
    keys = [d for d in res.cash.dims if d != "time"]
    if res.group:
        keys = [k for k in keys if k != "asset"]
    final = res.cash.isel(time=-1)
    if res.interest is not None:   # borrow_rate charges leave cash outside the orders
        final = final + res.interest.sum("time")
    if keys:
        got = (flows.groupby([o[k] for k in keys]).sum() + init_cash)
        for key, v in got.items():
            sel = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
            assert float(final.sel(sel)) == pytest.approx(v, rel=1e-10, abs=1e-6)
    else:
        assert float(final) == pytest.approx(flows.sum() + init_cash, rel=1e-10, abs=1e-6)
    # fees reconcile with the metrics
    assert float(res.metrics()["fees_paid"].sum()) == pytest.approx(o["fee"].sum(), rel=1e-10)


@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("execution", ["close", "next_open"])
@pytest.mark.parametrize("rebalance", ["on_change", "daily"])
def test_accounting_identity_with_shorts_holes_and_costs(group, execution, rebalance):
    ds = _panel(3, holes=True)
    rng = np.random.default_rng(0)
    raw = np.round(rng.uniform(-1, 1, ds["close"].shape), 1)
    raw[rng.random(raw.shape) < 0.7] = np.nan  # hold most bars
    sig = xr.DataArray(raw, dims=("time", "asset"), coords=ds["close"].coords)
    res = ql.backtest(ds, sig, fees=0.001, fixed_fees=1.0, slippage=ql.Slippage("fixed", bps=5),
                      execution=execution, rebalance=rebalance, group=group)
    _assert_accounting(res)
    assert (res.positions < 0).any(), "shorts were taken"
    if group:
        assert res.equity.dims == ("time",)


def test_param_dims_broadcast_without_loops_and_match_single_runs():
    ds = _panel(4)
    sigs = []
    for w in (5, 20):
        z = ql.rolling.zscore(ds["close"], w)
        sigs.append(xr.where(z < -1, 1.0, xr.where(z > 1, 0.0, np.nan)))
    sig = xr.concat(sigs, dim=pd.Index([5, 20], name="window"))
    res = ql.backtest(ds, sig, fees=0.001)
    assert res.equity.dims == ("time", "asset", "window")
    one = ql.backtest(ds, sigs[1], fees=0.001)
    np.testing.assert_allclose(res.equity.sel(window=20), one.equity, rtol=1e-12)
    _assert_accounting(res)
    grp = ql.backtest(ds, sig, fees=0.001, group=True)
    assert grp.equity.dims == ("time", "window")
    _assert_accounting(grp)


def test_missing_bar_defers_the_fill_and_marks_at_last_price():
    ds = _panel(5, n=10, m=1)
    for v in ds.data_vars:
        ds[v][3, 0] = np.nan
    sig = xr.full_like(ds["close"], np.nan)
    sig[3, 0] = 1.0  # decided on the missing bar
    res = ql.backtest(ds, sig)
    o = res.orders
    assert len(o) == 1 and o["t"].iloc[0] == 4  # filled at the next bar with a price
    assert o["price"].iloc[0] == float(ds["close"][4, 0])
    # holding through a later hole: equity uses the last valid close
    ds2 = _panel(5, n=10, m=1)
    for v in ds2.data_vars:
        ds2[v][6, 0] = np.nan
    sig2 = xr.full_like(ds2["close"], np.nan)
    sig2[1, 0] = 1.0
    res2 = ql.backtest(ds2, sig2)
    assert float(res2.equity[6, 0]) == pytest.approx(float(res2.equity[5, 0]))


def test_next_open_fills_at_next_open_with_slippage_from_the_decision_bar():
    ds = _panel(6, n=30, m=1)
    sig = xr.full_like(ds["close"], np.nan)
    sig[10, 0] = 1.0
    sig[20, 0] = 0.0
    res = ql.backtest(ds, sig, execution="next_open", slippage=0.001)
    _assert_accounting(res)
    o = res.orders
    assert list(o["t"]) == [11, 21]
    assert o["price"].iloc[0] == pytest.approx(float(ds["open"][11, 0]) * 1.001)
    assert o["price"].iloc[1] == pytest.approx(float(ds["open"][21, 0]) * 0.999)
    # adaptive slippage of the fill at t+1 uses bar t's range, not t+1's
    slip = ql.Slippage("adaptive", bps=0, vol_mult=0, range_mult=1.0)
    r2 = ql.backtest(ds, sig, execution="next_open", slippage=slip)
    rng10 = float((ds["high"][10, 0] - ds["low"][10, 0]) / ds["close"][10, 0])
    assert r2.orders["price"].iloc[0] == pytest.approx(float(ds["open"][11, 0]) * (1 + rng10))


def test_group_caps_gross_exposure_pro_rata_and_keeps_unchanged_assets():
    ds = _panel(7, n=40, m=3)
    sig = xr.full_like(ds["close"], np.nan)
    sig[5, :] = 1.0  # three assets at 1.0: gross 3 capped to 1 -> 1/3 each
    res = ql.backtest(ds, sig, group=True)
    value = (res.positions * ds["close"]).isel(time=5)
    np.testing.assert_allclose(value / float(res.equity[5]), [1 / 3] * 3, rtol=1e-9)
    sig[20, 0] = 0.0  # only A0 changes: A1 and A2 keep their shares
    res = ql.backtest(ds, sig, group=True)
    pos = res.positions
    assert float(pos[20, 0]) == 0
    np.testing.assert_allclose(pos[20, 1:], pos[19, 1:])
    # daily rebalancing trades every asset back to its target every bar
    daily = ql.backtest(ds, sig, group=True, rebalance="daily")
    assert (daily.orders["t"] == 30).sum() >= 2


def test_slippage_models_cost_more_and_need_their_data():
    ds = _panel(8)
    entries, exits = _crossover(ds["close"])
    base = ql.backtest(ds, entries=entries, exits=exits, slippage=0.0005)
    vol = ql.backtest(ds, entries=entries, exits=exits,
                      slippage=ql.Slippage("volume_based", bps=5, coef=1.0, cap=0.05))
    assert (vol.orders["price"].values[vol.orders["size"] > 0]
            >= base.orders["price"].values[base.orders["size"] > 0] - 1e-12).all()
    assert float(vol.equity.isel(time=-1).sum()) < float(base.equity.isel(time=-1).sum())
    _assert_accounting(vol)
    with pytest.raises(ql.DataError, match="volume"):
        ql.backtest(ds[["close"]], entries=entries, exits=exits,
                    slippage=ql.Slippage("volume_based"))
    with pytest.raises(ql.DataError, match="high, low"):
        ql.backtest(ds[["close"]], entries=entries, exits=exits, slippage=ql.Slippage("adaptive"))
    with pytest.raises(ValueError, match="unknown slippage model"):
        ql.Slippage("magic")


def test_bad_input_is_named():
    ds = _panel(9, n=20, m=2)
    sig = xr.full_like(ds["close"], 0.5)
    bad = sig.copy()
    bad[3, 1] = 1.5
    with pytest.raises(ValueError, match=r"\[-1, 1\].*1.5"):
        ql.backtest(ds, bad)
    with pytest.raises(ValueError, match="different time axes"):
        ql.backtest(ds, sig.isel(time=slice(1, None)))
    with pytest.raises(ValueError, match=r"fees must be in \[0, 1\), got -0.01"):
        ql.backtest(ds, sig, fees=-0.01)
    with pytest.raises(ValueError, match="exactly one of"):
        ql.backtest(ds)
    neg = ds.copy(deep=True)
    neg["low"][5, 0] = -1.0
    with pytest.raises(ql.DataError, match="non-positive price"):
        ql.backtest(neg, sig)
    with pytest.raises(ValueError, match="assets not in the data"):
        ql.backtest(ds, sig.assign_coords(asset=["A0", "ZZZ"]))
    with pytest.raises(ValueError, match="need order_type='limit'"):
        ql.backtest(ds, sig, limit_offset=0.01)
    with pytest.raises(ValueError, match="needs limit_offset"):
        ql.backtest(ds, sig, order_type="limit")
    with pytest.raises(ValueError, match="order_type must be"):
        ql.backtest(ds, sig, order_type="stop_limit")
    with pytest.raises(ValueError, match="limit_tif must be"):
        ql.backtest(ds, sig, order_type="limit", limit_offset=0.01, limit_tif=0)
    with pytest.raises(ValueError, match="size= and accumulate= go with entries"):
        ql.backtest(ds, sig, size=0.5)
    with pytest.raises(ValueError, match="size_type must be"):
        ql.backtest(ds, sig, size_type="lots")
    with pytest.raises(ValueError, match="borrow_rate must be"):
        ql.backtest(ds, sig, borrow_rate=-0.01)


def test_from_entries_exits():
    t = pd.bdate_range("2020-01-01", periods=5)
    e = xr.DataArray([True, False, True, True, False], dims="time", coords={"time": t})
    x = xr.DataArray([False, True, False, True, False], dims="time", coords={"time": t})
    s = ql.signals.from_entries_exits(e, x)
    np.testing.assert_array_equal(s.values, [1.0, 0.0, 1.0, np.nan, np.nan])
    with pytest.raises(TypeError, match="boolean"):
        ql.signals.from_entries_exits(e.astype(float), x)


def test_seed_facade_and_trades_table():
    ds = ql.data.load()
    entries, exits = _crossover(ds["close"], 10, 50)
    sig = ql.signals.from_entries_exits(entries, exits)
    engine = ql.BacktestingEngine(initial_capital=100_000, commission_per_trade=0.001,
                                  slippage_bps=5, risk_free_rate=0.02)
    res = engine.run_backtest(sig, ds)
    tr = res["total_return"]
    np.testing.assert_allclose(tr, res.equity.isel(time=-1) / 100_000 - 1, rtol=1e-12)
    assert set(np.asarray(res["sharpe_ratio"]).shape) == {4}
    m = res.metrics()
    trades = res.trades
    assert int(m["n_trades"].sum()) == len(trades)
    # closed trades' pnl + the open ones' mark = total equity change per asset
    pnl = trades.groupby("asset")["pnl"].sum()
    for a in ds.asset.values:
        assert pnl[a] == pytest.approx(float(res.equity.sel(asset=a).isel(time=-1)) - 100_000,
                                       rel=1e-9)


def test_fee_sweep_is_a_parameter_dim():
    ds = _panel(10)
    entries, exits = _crossover(ds["close"])
    fee_grid = xr.DataArray([0.0, 0.001, 0.01], dims="fees", coords={"fees": [0.0, 0.001, 0.01]})
    res = ql.backtest(ds, entries=entries, exits=exits, fees=fee_grid, slippage=0.0005)
    assert res.equity.dims == ("time", "asset", "fees")
    for f in fee_grid.values:
        one = ql.backtest(ds, entries=entries, exits=exits, fees=float(f), slippage=0.0005)
        np.testing.assert_allclose(res.equity.sel(fees=f), one.equity, rtol=1e-12)
    final = res.equity.isel(time=-1).mean("asset")
    assert final.sel(fees=0.0) > final.sel(fees=0.01)
    with pytest.raises(ValueError, match="parameter dims only"):
        ql.backtest(ds, entries=entries, exits=exits, fees=xr.full_like(ds["close"], 0.001))


def test_max_position_size_caps_each_assets_exposure():
    ds = _panel(11, n=30, m=2)
    sig = xr.full_like(ds["close"], np.nan)
    sig[3, :] = [1.0, -1.0]
    res = ql.backtest(ds, sig, max_position_size=0.25)
    _assert_accounting(res)
    value = (res.positions * ds["close"]).isel(time=3)
    np.testing.assert_allclose(value / res.equity.isel(time=3), [0.25, -0.25], rtol=1e-9)
    with pytest.raises(ValueError, match="max_position_size must be > 0"):
        ql.backtest(ds, sig, max_position_size=0)
