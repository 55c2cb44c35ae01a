"""Session 50 outside probe: numbers at the edges of valid-looking market data (late
listings, halts, delistings, one or two bars, constant, tiny and huge prices, float32 and
int panels, price jumps) through the workflow. Each test is a fault the probe found."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql


def _panel(n=300, m=3, seed=0, scale=100.0):
    rng = np.random.default_rng(seed)
    c = scale * np.exp(np.cumsum(rng.normal(0, 0.02, (n, m)), 0))
    o = c * (1 + rng.normal(0, 0.005, (n, m)))
    dims = ("time", "asset")
    return xr.Dataset({"open": (dims, o), "high": (dims, np.maximum(o, c) * 1.01),
                       "low": (dims, np.minimum(o, c) * 0.99), "close": (dims, c),
                       "volume": (dims, rng.lognormal(10, 1, (n, m)))},
                      coords={"time": pd.bdate_range("2010-01-04", periods=n),
                              "asset": [f"A{i}" for i in range(m)],
                              "asset_class": ("asset", ["equity"] * m)})


@pytest.mark.parametrize("curve, want", [([100.0, 120, 60, 0, 0], -1.0),
                                         ([100.0, 120, -60, -50], -1.5)],
                         ids=["wiped_out", "below_zero"])
def test_check_drawdown_of_a_ruined_account_is_its_drawdown_not_an_error(curve, want):
    # an equity curve that reached 0 (a return of -1) or went below it (a short through a
    # price jump, as ql.backtest's equity does) was refused as "equity must hold at least 2
    # positive finite values" although it held them; its drawdown from the peak is defined
    rm = ql.risk.RiskManager()
    out = rm.check_drawdown(curve)
    peak = np.maximum.accumulate(curve)
    assert out["max_drawdown"] == pytest.approx(want)
    assert out["max_drawdown"] == pytest.approx((np.array(curve) / peak - 1).min())
    assert out["current_drawdown"] == pytest.approx(curve[-1] / 120 - 1)
    assert out["breached"]
    r = np.r_[np.full(30, 0.01), -1.0, np.zeros(10)]      # the report builds such a curve
    assert rm.generate_risk_report(r).drawdown["max_drawdown"] == -1.0


def test_check_drawdown_of_backtest_equity_through_a_price_jump_equals_its_metrics():
    ds = _panel()
    for v in ["open", "high", "low", "close"]:
        ds[v][100:103, 0] = ds[v][100:103, 0] * 1e6          # a bad print / unadjusted split
    res = ql.backtest(ds.isel(asset=[0]), xr.full_like(ds["close"].isel(asset=[0]), -1.0))
    eq = res.equity.isel(asset=0)
    assert float(eq.min()) < 0
    out = ql.risk.RiskManager().check_drawdown(eq)
    assert out["max_drawdown"] == pytest.approx(
        float(res.metrics()["max_drawdown"].isel(asset=0)), rel=1e-9)


def test_check_drawdown_still_refuses_a_curve_it_cannot_measure():
    rm = ql.risk.RiskManager()
    for curve in ([100.0, np.inf, 50.0], [0.0, 10.0, 20.0], [-5.0, 10.0], [np.nan, 3.0]):
        with pytest.raises(ValueError, match="equity .*positive finite"):
            rm.check_drawdown(curve)


def test_walk_forward_whose_first_fold_lacks_warm_up_names_the_fold_and_warm_up():
    # folds shorter than the strategy's warm-up: the first fold's search never traded and
    # the whole run failed as "no trial produced a finite objective (does the strategy
    # trade in the scoring window?)": no fold, no dates, no warm-up to act on
    wf = ql.optimize.WalkForwardOptimizer(optimization_window=40, validation_window=20,
                                          step_size=20, optimization_method="grid",
                                          n_trials=2, progress=False)
    with pytest.raises(ValueError, match=r"walk-forward fold 0 \(40 bars of history\): "
                       r"fractal_chaos: no trial produced a finite sharpe_ratio in the "
                       r"scoring window 2010-01-04 \.\. 2010-02-26 \(40 bars\).*warm-up.*"
                       r"504 bars.*optimization_window"):
        wf.run("fractal_chaos", None, _panel())


def test_search_on_a_constant_price_names_the_strategy_and_window():
    ds = _panel(60)
    for v in ["open", "high", "low", "close"]:
        ds[v][:] = 50.0
    with pytest.raises(ValueError, match=r"volatility_regime: no trial produced a finite "
                       r"sharpe_ratio in the scoring window 2010-01-04 \.\. 2010-03-26"):
        ql.optimize.optimize_strategy_parameters(
            "volatility_regime", {"window": (5, 10), "lookback": (20, 30)}, ds,
            optimization_method="grid", n_trials=4, progress=False)


@pytest.mark.parametrize("scale", [0.5, 1.0, 2.0, 0.37])
def test_risk_parity_of_a_perfect_hedge_is_a_named_error_every_time(scale):
    # streams r and -a r (correlation -1): a long-only mix has zero variance and no
    # risk-parity weights exist; Newton ran off towards it and ended, by rounding, in
    # numpy's bare LinAlgError "Singular matrix" or in weights whose risk contributions
    # are 0/0, depending on a
    r = np.random.default_rng(0).normal(0, 0.01, 40)
    cov = np.cov(np.c_[r, -scale * r], rowvar=False)
    with pytest.raises(ValueError, match="perfect hedge.*risk-parity weights do not exist"):
        ql.risk.risk_parity_weights(cov)
    with pytest.raises(ValueError, match="perfect hedge"):
        ql.risk.risk_parity_weights(np.array([[0.04, -0.02, 0.0], [-0.02, 0.01, 0.0],
                                              [0.0, 0.0, 0.02]]))


@pytest.mark.parametrize("rho", [-0.999999, 0.0, 1.0])
def test_risk_parity_near_a_hedge_still_gives_equal_risk(rho):
    cov = np.array([[0.04, 0.02 * rho], [0.02 * rho, 0.01]])
    w = ql.risk.risk_parity_weights(cov)
    np.testing.assert_allclose(w.to_numpy(), [1 / 3, 2 / 3], rtol=1e-9)
    np.testing.assert_allclose(ql.risk.risk_contributions(cov, w).to_numpy(), [0.5, 0.5],
                               rtol=1e-6)


class _Side(ql.strategies.Strategy):
    """A constant exposure on S0 (a test double, not registered)."""

    defaults = {"side": 1.0}
    param_space = {"side": (-1.0, 1.0)}

    def __init__(self, name, **params):
        self.name = name
        super().__init__(**params)

    def _signal(self, ds, side):
        sig = xr.zeros_like(ds["close"])
        return sig.where(sig.asset != "S0", side)


def test_risk_parity_ensemble_of_a_long_and_a_short_of_one_asset_is_equal_weight():
    # rebalanced daily, their streams are r and -0.5 r: Ensemble.weights failed with
    # numpy's LinAlgError "Singular matrix" from risk_parity_weights
    r = np.random.default_rng(0).normal(0, 0.01, (200, 2))
    ds = xr.Dataset({"close": (("time", "asset"), 100 * np.cumprod(1 + r, 0))},
                    coords={"time": pd.bdate_range("2000-01-03", periods=200),
                            "asset": ["S0", "S1"]})
    e = ql.ensemble.Ensemble([_Side("long", side=1.0), _Side("short", side=-0.5)],
                             allocation="risk_parity", lookback=20, rebalance="daily")
    s = e.streams(ds).values[2:]
    np.testing.assert_allclose(s[:, 1], -0.5 * s[:, 0], rtol=1e-9, atol=1e-15)
    w = e.weights(ds)
    assert not bool(w.isnull().any())
    np.testing.assert_array_equal(w.values, 0.5)


@pytest.mark.parametrize("sizes", [(-1000, 1010), (0, 0), (np.nan, 5), (5, -np.inf)],
                         ids=["negative_side", "both_zero", "nan_side", "minus_inf"])
def test_bars_skip_the_ticks_the_engine_rejects_for_their_size(sizes):
    # a quote with a negative bid size (the sum still positive) or no size at all is the
    # engine's bad_size; the bar aggregator took it: its mid (50.1, a corrupt print)
    # became the bar's high and its sizes the volume the deployment traded on
    ticks = {"symbol_id": [0, 0, 0, 0], "bid_price": [10.0, 50.0, 10.1, 10.2],
             "ask_price": [10.2, 50.2, 10.3, 10.4], "bid_size": [5, sizes[0], 5, 5],
             "ask_size": [5, sizes[1], 5, 5], "timestamp": [1, 2, 3, 61]}
    agg = ql.engine.BarAggregator("1min", ["A"], unit="s")
    (bar,) = agg.add(ticks)
    assert float(bar["high"][0]) == pytest.approx(10.2)
    assert float(bar["volume"][0]) == 20.0 and agg.skipped == 1
    eng = ql.engine.TickEngine()
    eng.process_ticks({k: np.asarray(v, dtype=float) for k, v in ticks.items()})
    assert eng.get_performance_stats()["tick_rejects"]["bad_size"] == 1


def test_macro_regime_flags_are_nan_until_their_median_exists():
    # growth_up compared growth with a median of at least 8 quarters and inflation_up
    # with one of 24 months, but only the series' own NaN was kept: before the median
    # existed, growth > NaN read False, so the flags said 0.0 ("below") and the regime
    # "deflation" from the first release on
    cm = ql.crossmarket.CrossMarketAnalyzer.from_bundled()
    m = cm.macro_signals(index=pd.bdate_range("1955-01-03", "1965-01-01"))
    macro = ql.data.load("macro")["realgdp"].to_series()
    growth = (macro / macro.shift(1)) ** 4 - 1
    eighth = growth.dropna().index[7]      # the quarter whose value completes 8
    first = m["growth_up"].to_series().first_valid_index()
    assert first > eighth + pd.offsets.QuarterEnd(0)       # released after that quarter
    assert m["gdp_growth"].to_series().first_valid_index() < first - pd.Timedelta(days=365)
    cpi = ql.data.load("core_cpi")["core_cpi"].to_series()
    month24 = (cpi / cpi.shift(12) - 1).dropna().index[23]
    assert m["inflation_up"].to_series().first_valid_index() > month24
    regime = m["regime"].to_series()
    assert (regime[regime != ""].index[0] >= first)


def test_beta_on_a_driver_of_constant_returns_is_nan_not_a_cancellation_residue():
    # E[x²] - E[x]² of returns 1e-4 every day (an accruing series) is a rounding residue
    # of ~1e-24, not 0: fx_impact gave rolling betas up to 2e5 and a beta_mean of -34864
    rng = np.random.default_rng(0)
    idx = pd.bdate_range("2010-01-04", periods=400)
    cm = ql.crossmarket.CrossMarketAnalyzer()
    cm.add_market_data("equity", "E", pd.Series(100 * np.exp(np.cumsum(
        rng.normal(0, 0.01, 400))), idx))
    cm.add_market_data("fx", "F", pd.Series(1.0001 ** np.arange(400), idx))
    cm.add_market_data("fx", "G", pd.Series(np.exp(np.cumsum(rng.normal(0, 0.005, 400))),
                                            idx))
    rolling, summary = cm.fx_impact("E", "F", window=20)
    assert not bool(rolling["beta"].notnull().any())
    assert np.isnan(summary.loc["E", "beta_mean"])
    # a driver that moves keeps its betas: the rolling OLS slope, window by window
    rolling, _ = cm.fx_impact("E", "G", window=20)
    r = cm.returns(["E", "G"]).to_pandas()
    want = r["E"].rolling(20, min_periods=10).cov(r["G"]) / r["G"].rolling(
        20, min_periods=10).var()
    np.testing.assert_allclose(rolling["beta"].sel(asset="E").values, want.to_numpy(),
                               rtol=1e-8)


@pytest.fixture(scope="module")
def f32_panel():
    ds = _panel(260)
    return ds.assign({v: ds[v].astype(np.float32) for v in ds.data_vars})


@pytest.mark.parametrize("name", ql.strategies.names())
def test_a_float32_panel_gives_the_signal_of_its_float64_values(name, f32_panel):
    # float32 prices were computed in float32 (other strategies' ints and float16 in
    # float64): complex_systems, quantum and volatility_regime differed from the same
    # values in float64 by up to 1e-4, so a deployment (which buffers float64) traded
    # otherwise than the backtest of the same bars
    s = ql.strategies.get(name)
    wide = f32_panel.astype(np.float64)
    got = s.signal(f32_panel, **s.default_inputs(f32_panel))
    want = s.signal(wide, **s.default_inputs(wide))
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got.values, want.values)


def test_a_deployment_on_float32_bars_trades_as_their_backtest(f32_panel):
    params, opts, h = {"window": 5, "lookback": 20}, {"fees": 0.0005, "rebalance": "daily"}, 150
    s = ql.strategies.get("volatility_regime", **params)
    sig = s.signal(f32_panel)
    res = ql.backtest(f32_panel, sig.where(sig.time >= f32_panel.time[h]), **opts)
    dep = ql.deploy("volatility_regime", params, history=f32_panel.isel(time=slice(0, h)),
                    **opts)
    dep.replay(f32_panel.isel(time=slice(h, None)))
    assert len(dep.orders) == len(res.orders) > 100
    np.testing.assert_allclose(dep.equity.values, res.equity.isel(time=slice(h, None)).values,
                               rtol=1e-13, atol=0)


def _regimes_reference(close: pd.DataFrame, window, breadth_window):
    """The market of the assets with a close in the last 5 bars (a missing bar carries
    the last close 5 bars), in pandas."""
    c = close.ffill(limit=5)
    mkt = c.pct_change(fill_method=None).mean(axis=1)
    vol = mkt.rolling(window).std()
    mean = c.rolling(breadth_window).mean()
    above = (c > mean).astype(float).where(c.notna() & mean.notna())
    return vol, vol.expanding().median(), above.mean(axis=1)


def test_detect_regimes_takes_a_delisted_or_new_asset_out_of_the_universe():
    # close was forward-filled to the end: a delisted asset stayed in the equal-weighted
    # market with return 0 (its return 1/N too small) and its stale close in the breadth;
    # a new listing counted as "below its mean" for its first breadth_window bars. The
    # labels at t still use bars up to t only (a delisting is a gap when it begins)
    ds = ql.data.load().isel(time=slice(1000, 1800)).copy(deep=True)
    for v in ds.data_vars:
        ds[v].values[400:, 1] = np.nan           # GOOG delisted
        ds[v].values[:250, 3] = np.nan           # MSFT listed at bar 250
        ds[v].values[600:620, 2] = np.nan        # IBM halted
    got = ql.ensemble.detect_regimes(ds, window=21, trend_window=50, breadth_window=30)
    vol, med, breadth = _regimes_reference(ds["close"].to_pandas(), 21, 30)
    ok = got["regime"].values != ""
    assert ok.sum() > 700
    want_v = np.where(vol > med, "high_vol", "low_vol")
    want_s = np.where(breadth >= 0.5, "risk_on", "risk_off")
    np.testing.assert_array_equal(got["volatility"].values[ok], want_v[ok])
    np.testing.assert_array_equal(got["sentiment"].values[ok], want_s[ok])
    for t in (402, 410, 603, 615, 630):         # in the delisting, the halt, after it
        cut = ql.ensemble.detect_regimes(ds.isel(time=slice(0, t + 1)), window=21,
                                         trend_window=50, breadth_window=30)
        assert cut["regime"].values[-1] == got["regime"].values[t]
