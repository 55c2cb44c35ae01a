"""Session 57 probe of ql.risk: drawdowns count the initial cash as a peak (as the tear
sheet, res.plot(), the dashboard and StrategyExplorer do), per-bar means over a
backtest's observations, and RiskManager on awkward results (an account never priced,
2 bars, dask-backed, group=True, parameter sweeps, all-NaN returns)."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab import tearsheet
from quantlab.data import shifted


@pytest.fixture(scope="module")
def ds():
    return ql.data.load()


@pytest.fixture(scope="module")
def first_bar_loses(ds):
    # buy-and-hold with fees: the first bar already loses, and the run never gets back
    # above its initial cash before its deepest trough (measured -0.22401 vs -0.22460)
    d = ds.isel(time=slice(20, 80))
    return ql.backtest(d, xr.ones_like(d["close"]), group=True, fees=0.001)


def test_risk_report_max_drawdown_is_the_tearsheets(first_bar_loses):
    res = first_bar_loses
    assert float(res.returns[0]) < 0
    eq = res.equity.values
    want = tearsheet.underwater(eq, res.init_cash)
    rep = ql.risk.RiskManager().generate_risk_report(res)
    dd = rep.drawdown
    assert dd["max_drawdown"] == pytest.approx(want.min(), abs=1e-12)
    assert dd["max_drawdown"] == pytest.approx(float(res.metrics()["max_drawdown"]), abs=1e-12)
    assert dd["max_drawdown"] < (eq / np.maximum.accumulate(eq) - 1).min() - 1e-4  # not as before
    np.testing.assert_array_equal(rep.drawdown_series().values, want)
    assert dd["current_drawdown"] == pytest.approx(want[-1], abs=1e-12)
    assert dd["time_under_water"] == eq.size                 # every bar below the capital
    (episode,) = dd["breaches"]                               # one, from the start
    assert episode["peak"] == res.equity.indexes["time"][0]
    assert episode["depth"] == pytest.approx(want.min(), abs=1e-12)


def test_report_of_returns_starts_at_one():
    r = np.r_[-0.1, -0.1, 0.3, np.full(30, 0.001)]
    dd = ql.risk.RiskManager(max_drawdown_limit=0.1).generate_risk_report(r).drawdown
    assert dd["max_drawdown"] == pytest.approx(0.81 - 1, abs=1e-12)   # was 0.9 from 0.9
    assert dd["max_drawdown"] == pytest.approx(ql.metrics.max_drawdown(r), abs=1e-12)
    assert dd["breaches"][0]["peak"] == 0 and dd["breaches"][0]["recovered"] == 2


def test_check_drawdown_takes_the_capital():
    rm = ql.risk.RiskManager()
    t = pd.bdate_range("2020-01-01", periods=3)
    eq = pd.Series([90.0, 75.0, 101.0], index=t)
    assert rm.check_drawdown(eq)["max_drawdown"] == pytest.approx(75 / 90 - 1)   # as before
    out = rm.check_drawdown(eq, capital=100)
    assert out["max_drawdown"] == pytest.approx(-0.25)
    assert out["breached"] and out["time_under_water"] == 0 and out["recovery_times"] == [1]
    assert out["breaches"] == [{"peak": t[0], "trough": t[1], "recovered": t[2],
                                "depth": pytest.approx(-0.25), "recovery_bars": 1}]
    # a 1-bar run is a curve from its capital; below it from the first bar to the end
    one = rm.check_drawdown([80.0], capital=100)
    assert one["max_drawdown"] == pytest.approx(-0.2) and one["time_under_water"] == 1
    assert rm.check_drawdown([100.0, 80.0, 90.0], capital=50)["max_drawdown"] == \
        pytest.approx(-0.2)                                   # a capital below: no effect
    for bad in (0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="capital"):
            rm.check_drawdown(eq, capital=bad)
    with pytest.raises(TypeError, match="capital"):
        rm.check_drawdown(eq, capital="100")


def test_contributions_weigh_a_late_listing_over_the_whole_run(ds):
    # GOOG lists in 2004: its mean value over its own bars was divided by the mean
    # equity over all bars (a weight 0.28 for 0.19)
    sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds)
    res = ql.backtest(ds, sig, group=True)
    rep = ql.risk.RiskManager().generate_risk_report(res)
    value = np.nan_to_num(res.positions.values * res.prices.ffill("time").values)
    w = value.mean(0) / res.equity.values.mean()
    np.testing.assert_allclose(rep.contributions["weight"].to_numpy(), w, rtol=1e-12)
    assert rep.contributions.loc["GOOG", "weight"] < 0.2


def _panel_with_closed_days(n=300, seed=1):
    rng = np.random.default_rng(seed)
    p = 100 * np.exp(np.cumsum(rng.normal(0, [0.01, 0.03], (n, 2)), axis=0))
    p[np.arange(40, n, 4)] = np.nan                 # both assets closed: no observation
    p[:10, 1] = np.nan                              # B lists on bar 10
    close = xr.DataArray(p, dims=("time", "asset"),
                         coords={"time": pd.bdate_range("2015-01-01", periods=n),
                                 "asset": ["A", "B"], "asset_class": ("asset", ["equity"] * 2)})
    return close.to_dataset(name="close")


def test_contributions_skip_bars_that_are_no_observation():
    d = _panel_with_closed_days()
    res = ql.backtest(d, xr.full_like(d["close"], 0.5), group=True)
    obs = res.returns.notnull().values
    assert (~obs).sum() == 65                       # the closed days, NaN returns
    px = res.prices.ffill("time")
    r = (px / shifted(px) - 1).values[obs]
    value = np.nan_to_num(res.positions.values * px.values)[obs]
    w = value.mean(0) / res.equity.values[obs].mean()
    cov = pd.DataFrame(r).cov().to_numpy()          # pairwise, NaN skipped
    want = w * (cov @ w) / (w @ cov @ w)
    rep = ql.risk.RiskManager().generate_risk_report(res)
    np.testing.assert_allclose(rep.contributions["weight"].to_numpy(), w, rtol=1e-12)
    np.testing.assert_allclose(rep.contributions["risk_contribution"].to_numpy(), want,
                               rtol=1e-9)
    # VaR of the report: NaN returns skipped, not 0
    r_acc = res.returns.values[obs]
    assert rep.var.loc["historical", "VaR"] == pytest.approx(
        -ql.metrics.value_at_risk(r_acc, cutoff=0.05), rel=1e-12)


def test_stress_test_of_an_account_with_an_asset_never_priced(ds):
    # GOOG is not listed in the first 300 bars: its NaN weight made the three
    # hypothetical P&Ls NaN for the whole account
    d = ds.isel(time=slice(0, 300))
    res = ql.backtest(d, xr.full_like(d["close"], 0.25), group=True)
    table = ql.risk.RiskManager().stress_test(res)
    hypo = table[table["kind"] == "hypothetical"]
    assert np.isfinite(hypo["pnl"]).all() and hypo["covered"].all()
    value = (res.positions * res.prices).isel(time=-1).fillna(0.0)
    held = float(value.sum() / res.equity.isel(time=-1))
    assert table.loc["equities -20%", "pnl"] == pytest.approx(-0.2 * held, rel=1e-12)
    # an account of GOOG alone holds nothing: no loss, not NaN
    alone = ql.backtest(d.sel(asset=["GOOG"]), xr.full_like(d["close"].sel(asset=["GOOG"]), 1.0),
                        group=True)
    hypo = ql.risk.RiskManager().stress_test(alone).loc[
        ["equities -20%", "vol x3", "correlations -> 1"], "pnl"]
    assert (hypo == 0).all() and not np.signbit(hypo).any()


def test_stress_test_of_two_bars_has_no_volatility_to_scale(ds):
    # one return per asset: its variance is NaN, which was filled with 0 (a P&L of 0)
    d = ds.isel(time=slice(0, 2)).sel(asset=["AAPL", "IBM"])
    res = ql.backtest(d, xr.full_like(d["close"], 0.5), group=True)
    table = ql.risk.RiskManager().stress_test(res)
    for name in ("vol x3", "correlations -> 1"):
        assert np.isnan(table.loc[name, "pnl"]) and not table.loc[name, "covered"]
        assert "too few returns of AAPL, IBM" in table.loc[name, "window"]
    assert table.loc["equities -20%", "pnl"] == pytest.approx(-0.2, rel=1e-9)
    dd = ql.risk.RiskManager().check_drawdown(res.equity, capital=res.init_cash)
    assert dd["max_drawdown"] == pytest.approx(
        float(tearsheet.underwater(res.equity.values, res.init_cash).min()), abs=1e-12)


def test_dask_backed_result_reports_as_in_memory(ds):
    d = ds.isel(time=slice(0, 300))
    sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(d)
    rm = ql.risk.RiskManager()
    want = rm.generate_risk_report(ql.backtest(d, sig, group=True))
    lazy = ql.backtest(d.chunk({"time": 100}), sig.chunk({"time": 100}), group=True)
    got = rm.generate_risk_report(lazy)
    pd.testing.assert_frame_equal(got.var, want.var, rtol=1e-12)
    assert got.drawdown == want.drawdown
    pd.testing.assert_frame_equal(got.stress, want.stress, rtol=1e-12)
    pd.testing.assert_frame_equal(got.contributions, want.contributions, rtol=1e-12)
    pd.testing.assert_series_equal(got.attribution, want.attribution, rtol=1e-12)
    np.testing.assert_array_equal(got.drawdown_series().values, want.drawdown_series().values)


def test_several_accounts_ask_to_select_one(ds):
    d = ds.isel(time=slice(0, 300))
    rm = ql.risk.RiskManager()
    sig = ql.strategies.get("volatility_regime", window=[10, 15], lookback=60).signal(d)
    swept = ql.backtest(d, sig, group=True)
    for f in (rm.generate_risk_report, rm.stress_test):
        with pytest.raises(ValueError, match=r"takes one account \(equity on time only\); "
                           r"this result's is also on window \(2\): .*"
                           r"res\.returns\.sel\(window=10\)"):
            f(swept)
    with pytest.raises(ValueError, match=r"one curve .*select one, e\.g\. "
                       r"equity\.sel\(window=10\)"):
        rm.check_drawdown(swept.equity)
    with pytest.raises(ValueError, match=r"monte_carlo.*select one column, e\.g\. "
                       r"returns\.sel\(window=10\)"):
        rm.calculate_var(swept.returns, method="monte_carlo")
    per_asset = ql.backtest(d, sig.sel(window=10))
    with pytest.raises(ValueError, match=r"this result's is also on asset \(4\): .*group=True"
                       r".*res\.returns\.sel\(asset='AAPL'\)"):
        rm.generate_risk_report(per_asset)
    # one asset without group=True: its equity is on (time, asset) too, and it is one
    # account (the select probe): the one-asset portfolio's stress test
    one = ql.backtest(d.sel(asset=["IBM"]), sig.sel(window=10, asset=["IBM"]))
    grp = ql.backtest(d.sel(asset=["IBM"]), sig.sel(window=10, asset=["IBM"]), group=True)
    pd.testing.assert_frame_equal(rm.stress_test(one), rm.stress_test(grp), rtol=1e-12)
    # the vectorised estimates still run over the sweep
    assert rm.calculate_var(swept.returns)["var_95"].dims == ("window",)


def test_all_nan_and_never_priced_are_named_errors(ds):
    rm = ql.risk.RiskManager()
    d = ds.isel(time=slice(0, 300)).sel(asset=["GOOG"])
    res = ql.backtest(d, xr.ones_like(d["close"]), group=True)
    assert res.returns.isnull().all()
    for f in (rm.calculate_var, rm.calculate_cvar, rm.kelly, rm.generate_risk_report):
        with pytest.raises(ValueError, match="0 non-NaN observations"):
            f(res if f is rm.generate_risk_report else res.returns)
    with pytest.raises(ValueError, match="equity must hold"):
        rm.check_drawdown(np.full(5, np.nan), capital=100)
    assert rm.check_drawdown(res.equity, capital=res.init_cash)["max_drawdown"] == 0


def test_risk_budget_names_an_asset_without_a_variance(ds):
    # GOOG has no return in the first 300 bars: "covariance must be finite with positive
    # variances" named no asset (of maybe hundreds)
    r = ql.data.returns(ds["close"]).isel(time=slice(0, 300))
    with pytest.raises(ValueError, match=r"positive variances; not for GOOG \(fewer than 2"):
        ql.risk.RiskManager().risk_budget(r)
    with pytest.raises(ValueError, match="not for b "):        # a constant: variance 0
        ql.risk.risk_parity_weights(pd.DataFrame([[0.04, 0.0], [0.0, 0.0]],
                                                 index=["a", "b"], columns=["a", "b"]))


def test_report_of_a_returns_series_keeps_its_dates_and_asks_for_one_column(ds):
    r = ql.data.returns(ds["close"]).isel(time=slice(0, 300))
    rm = ql.risk.RiskManager()
    t = r.indexes["time"]
    got = rm.generate_risk_report(r.sel(asset="IBM")).drawdown["breaches"][0]
    assert got["peak"] == t[18] and got["trough"] == t[88]   # bar numbers 17, 87 before
    # the Series' index alike; its NaN first return is left out, not its date shifted
    assert rm.generate_risk_report(r.sel(asset="IBM").to_series()).drawdown["breaches"][0] \
        == got
    # a panel failed inside as "method='monte_carlo' takes 1-D returns"
    with pytest.raises(ValueError, match=r"generate_risk_report takes one account's returns "
                       r"\(1-D\), got dims \{'time': 300, 'asset': 4\}: select one, e\.g\. "
                       r"returns\.sel\(asset='AAPL'\)"):
        rm.generate_risk_report(r)
