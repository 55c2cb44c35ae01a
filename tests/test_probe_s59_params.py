"""Session 59 probe: hostile and edge parameters through the public API.

Each test is a parameter that was accepted and gave a result that cannot be one (all
NaN, a "significant" p-value of noise, a weight silently dropped), or failed with an
unrelated message; each now raises naming the parameter, its value and what is accepted.
"""
import numpy as np
import pytest

import quantlab as ql
from quantlab import measures as m


@pytest.fixture(scope="module")
def ds():
    return ql.data.load().isel(time=slice(0, 300))


# ---- measures: a parameter whose every result is NaN ---------------------------------

def test_sample_entropy_tolerance_zero_is_refused():
    # templates match within distance < r: r = 0 matched nothing, not even repeated
    # values, so every series (and every rolling window) gave NaN
    x = np.array([1.0, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1])
    with pytest.raises(ValueError, match=r"tolerance must be > 0, got 0"):
        m.sample_entropy(x, tolerance=0)
    with pytest.raises(ValueError, match=r"tolerance must be > 0, got 0.0"):
        m.rolling_sample_entropy(np.tile(x, 5), 20, tolerance=0.0)
    assert np.isfinite(m.sample_entropy(x, tolerance=1e-9))   # any r > 0 matches repeats


def test_katz_fd_of_one_step_is_refused():
    # two points: log10(L/a) / log10(d/a) is 0/0 whatever they are (a window of 2 was
    # all NaN)
    with pytest.raises(ValueError, match="katz_fd needs at least 3 points, got 2"):
        m.katz_fd([1.0, 2.0])
    with pytest.raises(ValueError, match=r"window must be an integer in \[3, "):
        m.rolling_katz_fd(np.random.default_rng(0).normal(size=50), 2)
    assert np.isfinite(m.katz_fd([1.0, 3.0, 2.0]))


# ---- ensemble ------------------------------------------------------------------------

def test_ensemble_reweight_beyond_int64_keeps_the_first_bars_weights(ds):
    # np.arange(n) % 10**30: "Python int too large to convert to C long"
    from quantlab.ensemble import Ensemble
    kw = dict(allocation="performance_momentum", lookback=20)
    members = ["volatility_regime", "liquidity_timing"]
    w = Ensemble(members, reweight=10 ** 30, **kw).weights(ds).values
    np.testing.assert_array_equal(w, np.broadcast_to(w[0], w.shape))   # never reweighted
    np.testing.assert_array_equal(
        w, Ensemble(members, reweight=ds.sizes["time"], **kw).weights(ds).values)
    assert not (Ensemble(members, reweight=1, **kw).weights(ds).values == w).all()


def test_ensemble_of_a_dict_of_weights_is_refused():
    # a dict is iterable: its keys were the members, its values (the weights meant)
    # dropped without a word
    from quantlab.ensemble import Ensemble
    with pytest.raises(TypeError, match=r"got a dict \{'spc': 0.7.*none are given"):
        Ensemble({"spc": 0.7, "volatility_regime": 0.3})


@pytest.mark.parametrize("kw,match", [
    ({"fees": -0.001}, r"fees must be in \[0, 1\), got -0.001"),
    ({"init_cash": 0}, "init_cash must be > 0, got 0"),
    ({"periods": 2.5}, "periods must be an integer, got 2.5"),
    ({"group": False}, r"group=False: the streams and the ensemble are each one account"),
])
def test_ensemble_backtest_options_are_checked_when_it_is_made(kw, match, monkeypatch):
    # they were refused (or, group=False, dropped) only once the first member's signal
    # was computed: no signal may be computed before the refusal
    from quantlab import ensemble
    monkeypatch.setattr(ensemble.registry.Strategy, "signal",
                        lambda *a, **k: pytest.fail("a signal was computed"))
    with pytest.raises(ValueError, match=match):
        ensemble.Ensemble(["spc"], **kw)


# ---- integrity -----------------------------------------------------------------------

@pytest.mark.parametrize("f,kw", [
    (ql.integrity.probabilistic_sharpe_ratio, {"skew": -2.0}),
    (ql.integrity.probabilistic_sharpe_ratio, {"sharpe": 0.3, "n_obs": 50}),
    (ql.integrity.min_track_record_length, {"kurtosis": 9.0}),
    (lambda r, **kw: ql.integrity.deflated_sharpe_ratio(r, trial_sharpes=[0.0, 0.1], **kw),
     {"skew": float("nan")}),
])
def test_statistics_given_beside_returns_are_refused(f, kw):
    # the returns' own moments replaced them without a word: skew=-2 gave the PSR of
    # the returns' skew
    r = np.random.default_rng(0).normal(0.001, 0.01, 300)
    with pytest.raises(ValueError, match=r"give returns, or the statistics .* not both"):
        f(r, **kw)
    f(r)   # the returns alone are fine


def test_a_sharpe_ratio_overflowing_its_variance_is_refused():
    # SR² = inf: PSR = Φ(x / inf) = 0.5 for a Sharpe ratio of 1e300
    with pytest.raises(ValueError, match=r"overflows for sharpe=1e\+300"):
        ql.integrity.probabilistic_sharpe_ratio(sharpe=1e300, n_obs=100)
    with pytest.raises(ValueError, match=r"overflows for sharpe=1e\+200"):
        ql.integrity.min_track_record_length(sharpe=1e200)
    assert ql.integrity.probabilistic_sharpe_ratio(sharpe=1e100, n_obs=100) == 1.0


def test_reality_check_block_longer_than_half_the_rows_is_refused():
    # a mean block of the whole series resamples rotations of it (the sample's mean):
    # block_size=10**6 gave p-values 0, "beats cash", for pure noise
    noise = np.random.default_rng(1).normal(0.0, 0.01, (200, 10))
    for b in (101, 200, 10 ** 6):
        with pytest.raises(ValueError, match=rf"block_size must be at most half the 200 "
                                             rf"complete rows \(100\), got {b}"):
            ql.integrity.reality_check(noise, block_size=b, reps=50)
    assert ql.integrity.reality_check(noise, block_size=100, reps=50)["spa_pvalue"] >= 0


# ---- crossmarket ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def cm():
    return ql.crossmarket.CrossMarketAnalyzer.from_bundled()


@pytest.mark.parametrize("call,name", [
    (lambda cm, v: cm.correlations(symbols=v), "symbols"),
    (lambda cm, v: cm.lead_lag(symbols=v), "symbols"),
    (lambda cm, v: cm.commodity_influence(targets=v), "targets"),
])
@pytest.mark.parametrize("value", [5, 2.5, {"SP500": 1.0}], ids=repr)
def test_crossmarket_symbols_not_a_list_are_refused_by_name(cm, call, name, value):
    # 5 failed as "'int' object is not iterable"; a dict was read as its keys
    with pytest.raises(TypeError, match=rf"^{name} must be a symbol or a list of symbols, "
                                        rf"got {type(value).__name__} "):
        call(cm, value)


# ---- progress: a flag in every long-running call ----------------------------------------

@pytest.mark.parametrize("call", [
    lambda ds, p: ql.sweep("volatility_regime", ds, {"window": [10, 20]}, progress=p),
    lambda ds, p: ql.optimize.optimize_strategy_parameters(
        "volatility_regime", {"window": (5, 30)}, ds, n_trials=2, progress=p),
    lambda ds, p: ql.optimize.WalkForwardOptimizer(progress=p),
    lambda ds, p: ql.optimize.RegimeAdaptiveOptimizer(lambda d: d["close"].isel(asset=0),
                                                      progress=p),
    lambda ds, p: ql.run_research_analysis(["IBM"], "volatility", data=ds, progress=p),
], ids=["sweep", "optimize", "walk_forward", "regime_adaptive", "research"])
def test_progress_must_be_a_bool(ds, call, monkeypatch):
    # progress="no" (a notebook's text) is truthy: it showed a bar; ql.backtest and
    # ql.store.ingest refused it already
    monkeypatch.setattr(ql.backtest.__globals__["BacktestOptions"], "__post_init__",
                        lambda self: pytest.fail("the work started"))
    with pytest.raises(TypeError, match=r"^progress must be True or False, got 'no'"):
        call(ds, "no")


# ---- risk and optimize: a parameter accepted and never read or repeated ------------------

@pytest.mark.parametrize("kw,match", [({"n_sims": "many"}, r"^n_sims must be an integer"),
                                      ({"n_sims": 0}, r"^n_sims must be an integer >= 1"),
                                      ({"seed": -1}, r"^seed must be an integer >= 0")])
@pytest.mark.parametrize("method", ["historical", "parametric"])
def test_var_monte_carlo_options_are_checked_whatever_the_method(kw, match, method):
    # checked only on the monte_carlo path: elsewhere any value passed unread
    rm = ql.risk.RiskManager()
    r = np.random.default_rng(0).normal(0, 0.01, 300)
    for f in (rm.calculate_var, rm.calculate_cvar):
        with pytest.raises((TypeError, ValueError), match=match):
            f(r, method=method, **kw)


def test_optimize_objective_repeated_is_refused(ds):
    # a two-objective front over one metric: its trials' columns repeated
    with pytest.raises(ValueError, match=r"objective repeats \['sharpe_ratio'\]"):
        ql.optimize.optimize_strategy_parameters(
            "volatility_regime", {"window": (5, 30)}, ds, n_trials=2, progress=False,
            objective=["sharpe_ratio", "max_drawdown", "sharpe_ratio"])


# ---- plots, tear sheet, data: numbers failing in another library's words ---------------

@pytest.mark.parametrize("bins,err,match", [
    (10 ** 12, ValueError, r"^bins must be an integer in \[1, 1000000\]"),   # 7 TiB of edges
    ("3", TypeError, r"^bins must be an integer, got '3'"),   # NumPy: not a valid estimator
    (True, TypeError, r"^bins must be an integer, got True"),   # drew one bin
    (2.5, ValueError, r"^bins must be an integer, got 2.5")])
def test_histogram_bins_is_a_count(bins, err, match):
    with pytest.raises(err, match=match):
        ql.plots.histogram_figure(np.arange(10.0), bins=bins)


@pytest.mark.parametrize("capital,err,match", [
    ("3", TypeError, r"^capital must be a real number, got '3'"),   # np.r_: an AxisError
    (None, TypeError, r"^capital must be a real number, got None"),
    (0, ValueError, r"^capital must be > 0, got 0"),   # no start at all, silently
    (float("nan"), ValueError, r"^capital must be a finite number > 0, got nan")])
def test_underwater_capital_is_a_positive_number(capital, err, match):
    with pytest.raises(err, match=match):
        ql.tearsheet.underwater([90.0, 110.0], capital)


def test_sign_changes_start_is_a_number():
    # NaN: every fill flagged a change; "3": a NumPy ufunc error
    with pytest.raises(ValueError, match=r"^start must be a finite number, got nan"):
        ql.plots.sign_changes([1.0, -1.0], float("nan"))
    with pytest.raises(TypeError, match=r"^start must be a real number, got '3'"):
        ql.plots.sign_changes([1.0, -1.0], "3")


@pytest.mark.parametrize("lag", [10 ** 12, -10 ** 12, 10 ** 30])
def test_as_of_lag_beyond_the_dates_is_refused_by_name(lag):
    # "Cannot cast 1000000000000 days 00:00:00 to unit='us' without overflow" (pandas)
    monthly = ql.data.load("ff3")["mkt_rf"]
    with pytest.raises(ValueError, match=rf"^release_lag {lag} is beyond the dates pandas"):
        ql.data.as_of(monthly, release_lag=lag)


# ---- deploy ------------------------------------------------------------------------------

@pytest.mark.parametrize("risk", ["x", 5, 0, [0.5]], ids=repr)
def test_deploy_risk_not_limits_is_refused_when_made(risk, ds):
    # accepted, then 'str' object has no attribute ... at the first bar (0: no limits)
    with pytest.raises(TypeError, match=r"^risk must be a RiskLimits, a dict of its fields "
                                        rf"or None, got {type(risk).__name__} "):
        ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
                  history=ds.isel(time=slice(0, 60)), risk=risk)
    dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
                    history=ds.isel(time=slice(0, 60)), risk={"max_position": 0.5})
    assert dep.risk.max_position == 0.5


# ---- strategies ------------------------------------------------------------------------

@pytest.mark.parametrize("t,err", [(-1, ValueError), (2.5, ValueError), (float("nan"), ValueError),
                                   (True, TypeError), ("3", TypeError)], ids=repr)
def test_history_start_takes_a_bar_position(t, err):
    # NaN, 2.5 and -1 returned bar 0 (max(0, nan) is 0); "3" failed as a bare TypeError
    s = ql.strategies.get("volatility_regime")
    with pytest.raises(err, match=r"^t must be an integer"):
        s.history_start(t)
    assert s.history_start(np.int64(1000)) == s.history_start(1000) == 728


def test_signal_with_an_unknown_input_names_the_inputs(ds):
    # s.signal(ds, window=10): "VolatilityRegime._signal() got an unexpected keyword
    # argument 'window'", naming a private method and not where parameters go
    with pytest.raises(TypeError, match=r"^volatility_regime: unknown input\(s\) \['window'\]; "
                                        r"its external inputs are \[\] \(\['window'\] are "
                                        r"parameters: ql.strategies.get\('volatility_regime', "
                                        r"window=...\)\)"):
        ql.strategies.get("volatility_regime").signal(ds, window=10)
    with pytest.raises(TypeError, match=r"unknown input\(s\) \['facts'\]; its external "
                                        r"inputs are \['factors'\]$"):
        ql.strategies.get("factor_momentum").diagnostics(ds, facts=None)
