"""The deployment's per-bar fast path (issue #27): the prepared kernel step
(``dispatch.Stepper``), the ring buffer of bars, the one-bar checks and the checkpoint of
a deployment's own inputs. The end-to-end parity with ``ql.backtest`` is in
test_deploy.py; these pin the parts."""
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab.backtesting import dispatch
from quantlab.backtesting.options import BacktestOptions
from quantlab.errors import DataError


def _panel(n_bars=120, n_assets=5, seed=3):
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (n_bars, n_assets)), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.01, close.shape))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.01, close.shape)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.01, close.shape)))
    volume = np.round(rng.lognormal(12, 1, close.shape))
    close[10:14, 1] = open_[10:14, 1] = high[10:14, 1] = low[10:14, 1] = np.nan  # no bars
    volume[10:14, 1] = np.nan
    dims = ("time", "asset")
    coords = {"time": pd.bdate_range("2020-01-01", periods=n_bars),
              "asset": [f"A{i}" for i in range(n_assets)]}
    ds = xr.Dataset({k: (dims, v) for k, v in dict(open=open_, high=high, low=low,
                                                     close=close, volume=volume).items()},
                    coords=coords)
    sig = rng.uniform(-1, 1, close.shape)
    sig[rng.uniform(size=sig.shape) < 0.3] = np.nan          # hold
    return ds, xr.DataArray(sig, dims=dims, coords=coords)


STEP_OPTIONS = {
    "close_fees": dict(fees=0.001, fixed_fees=0.5),
    "next_open": dict(execution="next_open", fees=0.0005, slippage=0.001),
    "stops_ohlc": dict(sl_stop=0.02, tp_stop=0.05, sl_trail=0.03),
    "group_levered_borrow": dict(group=True, max_leverage=2.0, borrow_rate=0.05),
    "limit_orders": dict(order_type="limit", limit_offset=0.01, limit_tif=3),
    "drawdown_cooldown": dict(dd_limit=0.05, dd_cooldown=3, max_leverage=1.5),
}


@pytest.mark.parametrize("name", list(STEP_OPTIONS))
def test_stepper_one_bar_at_a_time_equals_simulate_over_the_panel_bit_for_bit(name):
    ds, sig = _panel()
    opts = BacktestOptions(periods=252, **STEP_OPTIONS[name])
    eq, cash, pos, orders = dispatch.simulate(ds, sig, None, None, opts,
                                              state=ql._kernels.backtest.SimState(
                                                  5, opts.n_accounts(5), 1e5)).out[:4]
    st = dispatch.Stepper(opts, ds.asset.values)
    state = st.new_state()
    got_orders = []
    for i in range(ds.sizes["time"]):
        bar = {v: ds[v].values[i] for v in ds.data_vars}
        e, c, p, (col, size, price, fee, reason), _, _ = st.step(
            state, bar, sig.values[i], *st.slippage({"close": ds["close"].values[i:i + 1]}))
        np.testing.assert_array_equal(e, eq[i], err_msg=f"equity at bar {i}")
        np.testing.assert_array_equal(c, cash[i], err_msg=f"cash at bar {i}")
        np.testing.assert_array_equal(p, pos[i], err_msg=f"positions at bar {i}")
        got_orders += [(i, *o) for o in zip(col, size, price, fee, reason)]
    want = list(zip(*orders))
    assert len(want) > 5
    assert got_orders == [tuple(o) for o in want]


@pytest.mark.parametrize("slip", [ql.Slippage("volume_based", coef=0.1, cap=0.02),
                                  ql.Slippage("adaptive", bps=2, window=10)])
def test_stepper_slippage_of_the_trailing_window_equals_the_panels_last_row(slip):
    ds, _ = _panel()
    opts = BacktestOptions(slippage=slip, execution="next_open")
    st = dispatch.Stepper(opts, ds.asset.values)
    base, impact, _ = dispatch.slippage_panels(ds, opts)
    k = opts.history_needed()
    for i in (k, 60, 119):
        rows = {v: ds[v].values[i + 1 - k:i + 1] for v in ds.data_vars}
        b, m = st.slippage(rows, ds.time.values[i + 1 - k:i + 1])
        np.testing.assert_allclose(b, base.values[i], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(m, impact.values[i], rtol=1e-12, atol=1e-15)


def test_stepper_refuses_swept_options_order_events_and_metrics_only():
    fees = xr.DataArray([0.001, 0.002], dims="fee_grid")
    with pytest.raises(ValueError, match="one combination.*fee_grid"):
        dispatch.Stepper(BacktestOptions(fees=fees), ["A", "B"])
    with pytest.raises(ValueError, match="metrics_only"):
        dispatch.Stepper(BacktestOptions(metrics_only=("sharpe_ratio",)), ["A"])
    st = dispatch.Stepper(BacktestOptions(), ["A", "B"])
    with pytest.raises(ValueError, match=r"\[-1, 1\].*1.5 at asset 'B'"):
        st.step(st.new_state(), {"close": np.ones(2)}, np.array([0.5, 1.5]),
                *st.slippage({}))


def test_ring_buffer_window_after_many_wraparounds_is_the_last_bars():
    ds, _ = _panel(n_bars=400)
    s = ql.strategies.get("volatility_regime", window=5, lookback=10)
    dep = ql.deploy(s, history=ds.isel(time=slice(0, 20)))
    dep.replay(ds.isel(time=slice(20, None)))
    keep = len(dep._buf)
    assert keep == dep._history_needed() + dep._lead() < 64   # far fewer than the 400 bars
    w = dep._window(dep._seen - keep)
    xr.testing.assert_identical(   # with the deployment's calendar, which the bars read
        w, ds.isel(time=slice(-keep, None)).drop_vars([]).reset_coords(drop=True)
        .assign_attrs(periods_per_year=dep.options.periods))


def test_risk_limits_value_an_asset_gone_longer_than_the_buffer_at_its_last_close():
    ds, _ = _panel(n_bars=200)
    for v in ds.data_vars:      # A2 has no bar from 60 on: far beyond the 20 kept rows
        ds[v][60:, 2] = np.nan
    dep = ql.deploy(ql.strategies.get("volatility_regime", window=5, lookback=10),
                    history=ds.isel(time=slice(0, 20)))
    dep.replay(ds.isel(time=slice(20, None)))
    assert dep._last_px[2] == ds["close"].values[59, 2]


def test_on_bar_refuses_text_values_and_extra_dims_as_data_errors():
    ds, _ = _panel()
    dep = ql.deploy("volatility_regime", {"window": 5, "lookback": 10},
                    history=ds.isel(time=slice(0, 30)))
    bar = ds.isel(time=30)
    with pytest.raises(DataError, match="'close'"):
        dep.on_bar(bar.assign(close=bar["close"].astype(str)))
    with pytest.raises(DataError, match="'close' has dims"):
        dep.on_bar(bar.assign(close=bar["close"].expand_dims(x=2)))
    with pytest.raises(DataError, match="high .* < low"):
        dep.on_bar(bar.assign(high=bar["low"] * 0.5))
    assert len(dep.equity) == 0
    dep.on_bar(bar)
    assert len(dep.equity) == 1


def test_replay_refuses_a_bad_bar_after_trading_the_ones_before():
    ds, _ = _panel()
    bad = ds.copy(deep=True)
    bad["open"][45, 3] = np.nan        # a partially missing bar
    dep = ql.deploy("volatility_regime", {"window": 5, "lookback": 10},
                    history=ds.isel(time=slice(0, 30)))
    with pytest.raises(DataError, match="A3.*partially missing"):
        dep.replay(bad.isel(time=slice(30, None)))
    assert len(dep.equity) == 15
    dup = xr.concat([ds.isel(time=slice(30, 35)), ds.isel(time=[34])], dim="time")
    with pytest.raises(DataError, match="duplicated"):
        ql.deploy("volatility_regime", {"window": 5, "lookback": 10},
                  history=ds.isel(time=slice(0, 30))).replay(dup)


def test_first_bar_without_history_is_checked_with_its_asset_labels():
    ds, _ = _panel()
    bar = ds.isel(time=0).assign_coords(asset=["A0", " A0", "A2", "A3", "A4"])
    with pytest.raises(DataError, match="surrounding spaces"):
        ql.deploy("volatility_regime").on_bar(bar)


def _custom_factors():
    """Fama-French factors unlike the bundled ones: a restore that fell back on the
    bundled defaults would trade differently."""
    ff3 = ql.data.load("ff3")
    return ff3.assign(mkt_rf=-ff3["mkt_rf"], smb=ff3["smb"] * 3)


def test_a_deployment_given_inputs_restored_without_them_trades_as_if_never_stopped(
        tmp_path):
    eq = ql.data.load()
    hist, bars = eq.isel(time=slice(0, 560)), eq.isel(time=slice(560, 640))
    params = {"beta_window": 12, "lookback": 3}
    inputs = {"factors": _custom_factors()}
    whole = ql.deploy("factor_momentum", params, history=hist, inputs=inputs)
    whole.replay(bars)
    default = ql.deploy("factor_momentum", params, history=hist).replay(bars)
    assert not np.array_equal(default.signal.values, whole.signal.values, equal_nan=True)
    part = ql.deploy("factor_momentum", params, history=hist, inputs=inputs)
    part.replay(bars.isel(time=slice(0, 40)))
    part.checkpoint(tmp_path / "ck")
    del part                                       # the process is gone
    back = ql.Deployment.restore(tmp_path / "ck")
    xr.testing.assert_identical(back.inputs["factors"], inputs["factors"])
    back.replay(bars.isel(time=slice(40, None)))
    np.testing.assert_array_equal(back.signal.values, whole.signal.values)
    np.testing.assert_array_equal(back.equity.values, whole.equity.values)
    pd.testing.assert_frame_equal(back.orders, whole.orders)


def test_checkpoint_inputs_round_trip_pandas_arrays_and_plain_values(tmp_path):
    inputs = {"s": pd.Series([1.0, 2.0], index=pd.Index(["a", "b"], name="k")),
              "a": np.arange(3.0), "x": 2.5, "da": xr.DataArray([1, 2], dims="z",
                                                                   name="n", attrs={"u": 1})}
    dep = ql.deploy("volatility_regime", universe=["A"], inputs=inputs)
    back = ql.Deployment.restore(dep.checkpoint(tmp_path / "ck"))
    pd.testing.assert_series_equal(back.inputs["s"], inputs["s"])
    np.testing.assert_array_equal(back.inputs["a"], inputs["a"])
    assert back.inputs["x"] == 2.5
    xr.testing.assert_identical(back.inputs["da"], inputs["da"])
    other = {"factors": 1.0}
    assert ql.Deployment.restore(tmp_path / "ck", inputs=other).inputs is other


def test_checkpoint_of_an_input_it_cannot_save_without_pickle_names_it(tmp_path):
    dep = ql.deploy("volatility_regime", universe=["A"], inputs={"model": object()})
    with pytest.raises(TypeError, match="input 'model'.*restore\\(inputs=\\)"):
        dep.checkpoint(tmp_path / "ck")
    dep = ql.deploy("volatility_regime", universe=["A"],
                    inputs={"mixed": np.array([1, "a"], dtype=object)})
    with pytest.raises(TypeError, match="input 'mixed'"):
        dep.checkpoint(tmp_path / "ck2")


@pytest.mark.parametrize("name, params", [
    ("volatility_regime", {"window": 10, "lookback": 40}),
    ("cross_sectional_momentum", {"lookback": 40, "skip": 5, "hold": 7}),   # period 7
    ("spc", {"span": 30, "h": 2.0}),                                        # all history
    ("sentiment_regime", {}),
])
def test_replay_in_blocks_decides_as_bar_by_bar(name, params):
    eq = ql.data.load().isel(time=slice(0, 420))
    s = ql.strategies.get(name, **params)
    hist, bars = eq.isel(time=slice(0, 300)), eq.isel(time=slice(300, None))
    one = ql.deploy(s, history=hist, fees=0.001).replay(bars)
    blocks = ql.deploy(s, history=hist, fees=0.001).replay(bars, block=16)
    np.testing.assert_allclose(blocks.signal.values, one.signal.values, rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(blocks.equity.values, one.equity.values, rtol=1e-9)
    assert len(blocks.orders) == len(one.orders) > 0
    assert (blocks.latency > 0).all()


def test_replay_in_blocks_refuses_a_bad_bar_as_bar_by_bar():
    ds, _ = _panel()
    bad = ds.copy(deep=True)
    bad["open"][45, 3] = np.nan
    dep = ql.deploy("volatility_regime", {"window": 5, "lookback": 10},
                    history=ds.isel(time=slice(0, 30)))
    with pytest.raises(DataError, match="A3.*partially missing"):
        dep.replay(bad.isel(time=slice(30, None)), block=8)
    assert len(dep.equity) == 15
    with pytest.raises(ValueError, match="block"):
        dep.replay(ds, block=0)


def _limits_reference(lim, target, held, price, equity):
    """RiskLimits.apply's rules asset by asset in plain Python (killed=False)."""
    out, rej = target.copy(), []
    now = np.where(np.isfinite(price) & (equity > 0), held * price / equity, 0.0)
    for i in range(len(out)):
        if np.isfinite(out[i]) and abs(out[i]) > lim.max_position:
            rej.append((i, "max_position", float(out[i]), np.sign(out[i]) * lim.max_position))
            out[i] = rej[-1][3]
    gross = np.nansum(np.abs(np.where(np.isfinite(out), out, now)))
    for i in range(len(out)):
        if np.isfinite(out[i]) and abs(out[i]) / gross > lim.max_concentration:
            v = np.sign(out[i]) * lim.max_concentration * gross
            rej.append((i, "max_concentration", float(target[i]), v))
            out[i] = v
    for i in range(len(out)):
        if np.isfinite(out[i]) and np.isfinite(price[i]) and \
                abs(out[i] - now[i]) * equity > lim.max_order_value:
            rej.append((i, "max_order_value", float(target[i]), np.nan))
            out[i] = np.nan
    return out, rej


def test_risk_limits_on_500_assets_match_the_asset_by_asset_reference():
    rng = np.random.default_rng(7)
    n = 500
    target = rng.uniform(-1, 1, n) * 0.02
    target[rng.uniform(size=n) < 0.2] = np.nan
    held = rng.normal(0, 50, n)
    price = rng.uniform(5, 50, n)
    price[:7] = np.nan
    lim = ql.live.RiskLimits(max_position=0.015, max_concentration=0.0025,
                             max_order_value=3e3)
    got, rej = lim.apply(target, held, price, 1e6, killed=False)
    want, rej_want = _limits_reference(lim, target, held, price, 1e6)
    np.testing.assert_array_equal(got, want)
    assert {r[1] for r in rej} == {"max_position", "max_concentration", "max_order_value"}
    assert [r[:3] for r in rej] == [r[:3] for r in rej_want]
    np.testing.assert_array_equal([r[3] for r in rej], [r[3] for r in rej_want])


@pytest.mark.parametrize("held", [0.0, 3.0])   # 0/0 and 30/0
def test_risk_limits_of_an_account_at_zero_equity_do_not_warn(held):
    # an outside probe: after a margin call emptied the account every bar warned
    # "invalid value in divide" (held * price / equity evaluated where it is not used)
    from quantlab.live import RiskLimits
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, rej = RiskLimits(max_position=0.5).apply(
            np.array([0.8, np.nan]), np.array([held, 0.0]), np.array([10.0, 20.0]), 0.0,
            killed=False)
    assert out[0] == 0.5 and np.isnan(out[1]) and rej == [(0, "max_position", 0.8, 0.5)]
