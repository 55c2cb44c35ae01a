"""ql.risk against closed forms, and drawdown control inside the backtest kernel."""
import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql


def _standardised(n=5000, mu=0.0005, sd=0.01, seed=0):
    """A sample whose mean and std (ddof=1) are exactly mu and sd."""
    z = np.random.default_rng(seed).normal(size=n)
    z = (z - z.mean()) / z.std(ddof=1)
    return mu + sd * z


def _close(prices, start="2000-01-03"):
    p = np.asarray(prices, dtype=float)
    p = p[:, None] if p.ndim == 1 else p
    return xr.DataArray(p, dims=("time", "asset"),
                        coords={"time": pd.bdate_range(start, periods=len(p)),
                                "asset": [f"S{i}" for i in range(p.shape[1])]})


def test_var_and_cvar_equal_closed_forms_and_metrics():
    rm = ql.risk.RiskManager(confidence_level=0.99)
    r = _standardised()
    z = NormalDist().inv_cdf(0.01)
    var = rm.calculate_var(r, "parametric")
    assert var["var_99"] == pytest.approx(-(0.0005 + 0.01 * z), rel=1e-12)
    assert var["method"] == "parametric" and var["n"] == r.size
    cvar = rm.calculate_cvar(r, "parametric")["cvar_99"]
    assert cvar == pytest.approx(-(0.0005 - 0.01 * NormalDist().pdf(z) / 0.01), rel=1e-12)
    hist = rm.calculate_var(r, "historical")["var_99"]
    assert hist == pytest.approx(-ql.metrics.value_at_risk(r, cutoff=0.01), rel=1e-12)
    # Monte Carlo on (nearly) normal data lands on the parametric value
    mc = rm.calculate_var(r, "monte_carlo", n_sims=400_000)["var_99"]
    assert mc == pytest.approx(var["var_99"], rel=0.03)
    assert ql.risk.RiskManager(0.975).calculate_var(r)["var_97_5"] > 0


def test_var_reduces_time_of_dataarrays(equities):
    rm = ql.risk.RiskManager()
    r = ql.data.returns(equities["close"])
    v = rm.calculate_var(r, "cornish_fisher")["var_95"]
    assert v.dims == ("asset",)
    np.testing.assert_allclose(
        v.values, -ql.metrics.value_at_risk(r, method="cornish_fisher").values)


def test_kelly_of_a_known_distribution():
    rm = ql.risk.RiskManager()
    r = _standardised(mu=0.0004, sd=0.02)
    assert rm.calculate_kelly_criterion(r, cap=np.inf) == pytest.approx(0.0004 / 0.02 ** 2)
    assert rm.calculate_kelly_criterion(r, fraction=0.5, cap=np.inf) == pytest.approx(0.5)
    assert rm.calculate_kelly_criterion(r) == 1.0                        # capped
    assert rm.calculate_kelly_criterion(-r, cap=np.inf) < 0              # no bet


def test_edge_cases_raise_clear_errors():
    rm = ql.risk.RiskManager()
    with pytest.raises(ValueError, match="at least 20"):
        rm.calculate_var(np.r_[np.full(10, np.nan), np.ones(5)])
    with pytest.raises(ValueError, match="zero variance"):
        rm.calculate_kelly_criterion(np.full(100, 0.001))
    assert rm.calculate_var(np.full(100, 0.001), "parametric")["var_95"] == pytest.approx(-0.001)
    with pytest.raises(ValueError, match="unknown method"):
        rm.calculate_var(_standardised(), "garch")
    with pytest.raises(ValueError, match="confidence_level"):
        ql.risk.RiskManager(confidence_level=95)


def test_risk_parity_contributions_equal_budgets():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 5)) @ rng.normal(size=(5, 5))
    cov = pd.DataFrame(np.cov(a.T), index=list("abcde"), columns=list("abcde"))
    w = ql.risk.risk_parity_weights(cov)
    assert w.sum() == pytest.approx(1) and (w > 0).all()
    np.testing.assert_allclose(ql.risk.risk_contributions(cov, w), 0.2, atol=1e-6)
    budgets = [0.4, 0.3, 0.1, 0.1, 0.1]
    table = ql.risk.RiskManager().risk_budget(cov, budgets=budgets)
    np.testing.assert_allclose(table["risk_contribution"], budgets, atol=1e-6)
    # two uncorrelated assets: weights inversely proportional to volatility
    w2 = ql.risk.risk_parity_weights(np.diag([0.04, 0.01]))
    np.testing.assert_allclose(w2, [1 / 3, 2 / 3], atol=1e-9)


def test_check_drawdown_on_a_known_path():
    eq = pd.Series([100, 110, 99, 88, 110, 120, 90, 95.0],
                   index=pd.bdate_range("2001-01-01", periods=8))
    d = ql.risk.RiskManager(max_drawdown_limit=0.2).check_drawdown(eq)
    assert d["max_drawdown"] == pytest.approx(90 / 120 - 1)
    assert d["breached"] and len(d["breaches"]) == 1                 # -25% > 20%, -20% not
    assert d["recovery_times"] == [1]                                 # trough 88 -> 110
    assert d["current_drawdown"] == pytest.approx(95 / 120 - 1)
    assert d["time_under_water"] == 2


def test_drawdown_control_in_the_kernel():
    # up 20 bars, a crash of 30% over 10 bars, then a recovery
    p = np.r_[np.linspace(100, 120, 20), np.linspace(118, 84, 10), np.linspace(85, 130, 40)]
    close = _close(p)
    sig = xr.ones_like(close)
    res = ql.backtest(close, sig, dd_limit=0.15, dd_cooldown=5)
    eq = res.equity.isel(asset=0).values
    halted = res.halted.isel(asset=0).values
    first = int(np.argmax(halted))
    assert eq[first] / eq[:first + 1].max() - 1 <= -0.15            # the breach bar ...
    assert eq[first - 1] / eq[:first].max() - 1 > -0.15              # ... and not before
    assert halted[first:first + 6].all() and not halted[first + 6]   # 5 more flat bars
    assert (res.positions.isel(asset=0).values[first:first + 6] == 0).all()
    assert res.positions.isel(asset=0).values[first + 6] > 0        # re-entered
    # no look-ahead: cutting the data after any bar gives the same path up to it
    for cut in (first - 1, first, first + 3, first + 6):
        part = ql.backtest(close.isel(time=slice(0, cut + 1)), sig.isel(time=slice(0, cut + 1)),
                           dd_limit=0.15, dd_cooldown=5)
        np.testing.assert_allclose(part.equity.isel(asset=0).values, eq[:cut + 1])
    # without the control the same path is simply held
    free = ql.backtest(close, sig)
    assert free.halted is None and (free.positions.values > 0).all()
    with pytest.raises(ValueError, match="dd_limit"):
        ql.backtest(close, sig, dd_limit=20)


def test_risk_manager_configures_the_backtest_and_reports(equities):
    rm = ql.risk.RiskManager(max_drawdown_limit=0.1, dd_cooldown=10)
    sig = ql.strategies.get("volatility_regime").signal(equities)
    res = rm.backtest(equities, sig, group=True, fees=0.001)
    assert bool(res.halted.any())
    assert rm.backtest_kwargs() == {"dd_limit": 0.1, "dd_cooldown": 10, "dd_mode": "cooldown"}
    report = rm.generate_risk_report(ql.backtest(equities, sig, group=True))
    assert list(report.var.index) == ["historical", "parametric", "cornish_fisher",
                                      "monte_carlo"]
    assert (report.var > 0).all().all()
    assert report.stress.loc["global financial crisis 2008", "covered"]
    assert not report.stress.loc["COVID crash 2020", "covered"]      # data end in 2013
    np.testing.assert_allclose(report.contributions["risk_contribution"].sum(), 1.0)
    html = report.to_html()
    assert "Risk report" in html and "Bokeh" in html and '<script src="http' not in html
    assert "<table" in report._repr_html_()


def test_stress_test_of_weights_with_data(equities):
    rm = ql.risk.RiskManager()
    w = pd.Series({"AAPL": 0.5, "IBM": 0.5})
    table = rm.stress_test(w, data=equities)
    assert table.loc["equities -20%", "pnl"] == pytest.approx(-0.2)
    gfc = table.loc["global financial crisis 2008", "pnl"]
    close = equities["close"].sel(asset=["AAPL", "IBM"]).to_pandas()
    expect = (close.loc["2009-03-09"] / close.loc["2007-10-09"] - 1).mean()
    assert gfc == pytest.approx(expect, abs=0.03)    # daily rebalanced vs buy and hold
    assert table.loc["vol x3", "pnl"] < table.loc["correlations -> 1", "pnl"] < 0


def test_position_size_targets_volatility():
    r = _close(np.ones(300)).isel(asset=0) * 0 + np.r_[np.zeros(1), _standardised(299, 0, 0.02)]
    rm = ql.risk.RiskManager()
    size = rm.position_size(xr.ones_like(r), r, target_vol=0.1, window=63, max_leverage=2.0)
    expect = 0.1 / (0.02 * math.sqrt(252))
    assert float(size.isel(time=slice(100, None)).mean()) == pytest.approx(expect, rel=0.15)
    assert float(size.max()) <= 2.0


def _two_crashes():
    """Up to 120, -25% in 2% steps, a partial rebound, then another -25%: a 20% limit
    with the peak restarted at re-entry lets the run lose far more than 20%."""
    p = [100.0]
    for step in [1.01] * 18 + [0.98] * 14 + [1.01] * 10 + [0.98] * 14 + [1.005] * 10:
        p.append(p[-1] * step)
    return _close(np.c_[p, p])


@pytest.mark.parametrize("group", [False, True])
def test_dd_limit_halt_mode_holds_against_the_all_time_peak(group):
    close = _two_crashes()
    sig = xr.ones_like(close) * (0.5 if group else 1.0)
    cool = ql.backtest(close, sig, dd_limit=0.1, dd_cooldown=2, group=group)
    halt = ql.backtest(close, sig, dd_limit=0.1, dd_cooldown=2, dd_mode="halt", group=group)
    mdd_cool = cool.metrics()["max_drawdown"].values
    mdd_halt = halt.metrics()["max_drawdown"].values
    assert (mdd_cool < -0.2).all(), "re-entries with a restarted peak lose more than the limit"
    # halt: the breach bar's own 2% move is all that can pass the 10% limit
    assert (mdd_halt >= -0.1 - 0.021).all()
    eq = halt.equity.values.reshape(len(close.time), -1)
    peak = np.maximum.accumulate(eq, axis=0)
    first = int(np.argmax((eq / peak - 1 <= -0.1).any(axis=1)))
    assert (eq[first:] == eq[first]).all(), "flat for the rest of the run"
    assert halt.halted.values.reshape(eq.shape)[first:].all()
    assert not halt.halted.values.reshape(eq.shape)[:first].any()
    assert (halt.positions.values.reshape(len(close.time), -1)[first:] == 0).all()
    assert halt.dd_mode == "halt" and cool.dd_mode == "cooldown"
    assert ql.backtest(close, sig).dd_mode is None
    assert halt.metrics().attrs["dd_mode"] == "halt"
    # the risk manager configures it and its report names the mode that ran
    rm = ql.risk.RiskManager(max_drawdown_limit=0.1, dd_mode="halt")
    assert rm.backtest_kwargs()["dd_mode"] == "halt"
    if group:
        via = rm.backtest(close, sig, group=True)
        # dd_cooldown (21 here, 2 above) does not matter in halt mode
        np.testing.assert_array_equal(via.equity.values, halt.equity.values)
        report = rm.generate_risk_report(via)
        assert report.dd_mode == "halt" and "halt" in repr(report)
        assert "all-time peak" in report._repr_html_()
    with pytest.raises(ValueError, match="dd_mode must be one of 'cooldown', 'halt'"):
        ql.risk.RiskManager(dd_mode="never")


def test_kelly_reports_the_uncapped_fraction_beside_the_cap():
    rm = ql.risk.RiskManager()
    r = _standardised(mu=0.001, sd=0.02)          # f* = 0.001 / 0.0004 = 2.5
    full = rm.calculate_kelly_criterion(r)
    half = rm.calculate_kelly_criterion(r, fraction=0.5)
    assert full == 1.0 and half == 1.0            # the capped values, as before
    assert isinstance(full, float)
    assert full.uncapped == pytest.approx(2.5) and half.uncapped == pytest.approx(1.25)
    assert full.capped and half.capped
    k = rm.kelly(r, fraction=0.5)
    assert k["kelly"] == 1.0 and k["kelly_uncapped"] == pytest.approx(1.25)
    assert k["capped"] and k["fraction"] == 0.5 and k["cap"] == 1.0
    low = rm.kelly(_standardised(mu=0.0001, sd=0.02))
    assert low["kelly"] == low["kelly_uncapped"] == pytest.approx(0.25) and not low["capped"]
    # a panel: the capped DataArray as before, the uncapped one as a coordinate
    panel = xr.DataArray(np.c_[r, _standardised(mu=0.0001, sd=0.02)], dims=("time", "asset"),
                         coords={"asset": ["a", "b"]})
    kp = rm.calculate_kelly_criterion(panel)
    np.testing.assert_allclose(kp.values, [1.0, 0.25])
    np.testing.assert_allclose(kp["kelly_uncapped"].values, [2.5, 0.25])
    np.testing.assert_allclose(rm.kelly(panel)["kelly_uncapped"].values, [2.5, 0.25])
    with pytest.raises(ValueError, match="fraction must be > 0"):
        rm.calculate_kelly_criterion(r, fraction=0)
    with pytest.raises(ValueError, match="cap must be"):
        rm.calculate_kelly_criterion(r, cap=np.nan)


def test_risk_report_drawdown_series_matches_numpy_and_the_figure_draws_it():
    """Issue #26: risk computes the drawdown, plots draws it (risk.py imports no bokeh)."""
    eq = xr.DataArray([100.0, 110.0, 99.0, 121.0, 108.9], dims="time",
                      coords={"time": pd.bdate_range("2020-01-01", periods=5)})
    report = ql.risk.RiskReport(0.95, pd.DataFrame({"VaR": [0.1], "CVaR": [0.2]},
                                                   index=["historical"]),
                                {"max_drawdown": -0.1, "breaches": [], "limit": 0.2,
                                 "recovery_times": []}, equity=eq)
    dd = report.drawdown_series()
    np.testing.assert_allclose(dd.values, [0, 0, 99 / 110 - 1, 0, 108.9 / 121 - 1])
    assert dd.name == "drawdown"
    fig = report.figure()
    (line,) = fig.renderers
    np.testing.assert_allclose(line.data_source.data["y"], dd.values)
    html = report.to_html()
    assert report.tables_html() in html and "Bokeh" in html  # tables, then the figure
    no_equity = ql.risk.RiskReport(0.95, report.var, report.drawdown)
    assert no_equity.drawdown_series() is None and no_equity.figure() is None
    assert no_equity.to_html().startswith("<html><body><h2>Risk report</h2>")


def test_position_size_arguments_coordinates_and_a_constant_price():
    r = _close(np.ones(300)).isel(asset=0) * 0 + np.r_[np.zeros(1), _standardised(299, 0, 0.02)]
    rm = ql.risk.RiskManager()
    sig = xr.ones_like(r)
    # a negative target flipped the signal's sign; NaN made it NaN (= hold) everywhere
    for kw, match in (({"target_vol": -0.1}, "target_vol"), ({"target_vol": np.nan}, "target_vol"),
                      ({"max_leverage": -1.0}, "max_leverage"), ({"window": 1}, "window")):
        with pytest.raises(ValueError, match=match):
            rm.position_size(sig, r, **kw)
    # other assets: the inner join left an empty signal
    two = _close(np.c_[np.ones(50), np.ones(50)])
    with pytest.raises(ql.errors.DataError, match="same time and asset"):
        rm.position_size(xr.ones_like(two), two.assign_coords(asset=["X", "Y"]))
    # a constant price: σ = 0 gives the cap (target / 0), not NaN, which held the last
    # position, so a signal of 0 (an exit) kept the position open
    flat = xr.zeros_like(r)
    exit_ = xr.where(r.time < r.time[200], 1.0, 0.0)
    size = rm.position_size(exit_, flat, max_leverage=2.0)
    assert (size.isel(time=slice(40, 200)) == 2.0).all()
    assert (size.isel(time=slice(200, None)) == 0.0).all()
    # where σ is not known yet the size is NaN (hold), except a signal of 0
    assert size.isel(time=slice(0, 30)).isnull().all()
    assert (rm.position_size(exit_ * 0, r).isel(time=slice(0, 30)) == 0).all()
    # with no cap, σ = 0 sized the position infinite
    with pytest.raises(ql.errors.DataError, match="zero volatility at .*max_leverage=inf"):
        rm.position_size(exit_, flat, max_leverage=np.inf)
    assert (rm.position_size(exit_ * 0, flat, max_leverage=np.inf) == 0).all()   # flat: fine
    np.testing.assert_array_equal(rm.position_size(sig, r, max_leverage=np.inf).values,
                                  rm.position_size(sig, r, max_leverage=1e300).values)


def test_risk_inputs_named_not_nan():
    rm = ql.risk.RiskManager()
    r = _standardised(300, 0.0005, 0.01)
    with pytest.raises(ValueError, match="n_sims"):        # IndexError inside
        rm.calculate_var(r, method="monte_carlo", n_sims=0)
    with pytest.raises(ValueError, match="n_sims"):
        rm.calculate_cvar(r, method="monte_carlo", n_sims=0)
    # a list's .index is a method: every list failed inside pandas
    assert rm.check_drawdown([100.0, 110.0, 99.0, 120.0])["max_drawdown"] == pytest.approx(-0.1)
    with pytest.raises(ValueError, match="positive finite"):
        rm.check_drawdown([100.0, np.inf, 50.0])
    cov = np.array([[0.04, 0.01], [0.01, 0.09]])
    with pytest.raises(ValueError, match="budgets"):          # NaN weights before
        ql.risk.risk_parity_weights(cov, budgets=[np.nan, 1.0])
    with pytest.raises(ValueError, match="symmetric"):        # weights of some other matrix
        ql.risk.risk_parity_weights(np.array([[0.04, 0.5], [-0.5, 0.09]]))
    with pytest.raises(ValueError, match="2 finite numbers"):  # NaN contributions before
        ql.risk.risk_contributions(cov, [np.nan, 1.0])
    with pytest.raises(ValueError, match="2 finite numbers"):  # pandas' length error before
        rm.risk_budget(pd.DataFrame(cov, index=["a", "b"], columns=["a", "b"]), weights=[1.0])


def test_stress_test_weights_are_finite_and_in_the_data(equities):
    rm = ql.risk.RiskManager()
    with pytest.raises(ValueError, match=r"\['XXX'\] not in data"):   # KeyError before
        rm.stress_test(pd.Series({"IBM": 0.5, "XXX": 0.5}), data=equities)
    for bad in (np.nan, np.inf):                                    # every P&L NaN or inf
        with pytest.raises(ValueError, match="'IBM' is"):
            rm.stress_test(pd.Series({"IBM": bad, "MSFT": 0.5}), data=equities)


def test_risk_report_contributions_leave_out_an_asset_never_priced(equities):
    # GOOG lists in 2004: its NaN weight made every contribution NaN (then a ValueError
    # once risk_contributions refused NaN weights)
    ds = equities.isel(time=slice(0, 300))
    sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds)
    rep = ql.risk.RiskManager().generate_risk_report(ql.backtest(ds, sig, group=True))
    c = rep.contributions
    assert c.index.tolist() == ["AAPL", "IBM", "MSFT"] and np.isfinite(c.to_numpy()).all()
    assert c["risk_contribution"].sum() == pytest.approx(1.0)


def test_too_few_observations_names_the_series():
    """A panel's estimate with one short column said "0 observations" without naming it
    (of maybe hundreds of assets)."""
    ds = ql.data.load()
    r = ql.data.returns(ds["close"]).isel(time=slice(0, 300))   # GOOG lists in 2004
    with pytest.raises(ValueError, match=r"0 non-NaN observations at \{'asset': 'GOOG'\}"):
        ql.risk.RiskManager().calculate_kelly_criterion(r)
