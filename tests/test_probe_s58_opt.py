"""Session 58: overfitting checks, optimisers and cross-market analysis probed at their
edges. DSR and PBO against the papers' formulas computed here in NumPy/SciPy; an excess
kurtosis, a trial described twice, an unranked split, a never-trading trial, a
walk-forward or regime run given a DataFrame, a regime objective that cannot be scored,
an IS Sharpe ratio <= 0 under the walk-forward efficiency, a one-bar rolling correlation
and the correlations of an accruing driver: each a clear error or the right number."""
import itertools
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
import xarray as xr

import quantlab as ql
from quantlab import crossmarket, optimize

I = ql.integrity
EULER = 0.5772156649015329


@pytest.fixture(scope="module")
def ds():
    return ql.data.load().isel(time=slice(0, 300))


@pytest.fixture(scope="module")
def strat():
    return ql.strategies.get("volatility_regime", lookback=60)


# ----------------------------------------------------------------------------- DSR
def _dsr(sr, n_obs, skew, kurt, n_trials, var):
    """The paper's DSR, written out in SciPy."""
    sr0 = math.sqrt(var) * ((1 - EULER) * st.norm.ppf(1 - 1 / n_trials)
                            + EULER * st.norm.ppf(1 - 1 / (n_trials * math.e)))
    return st.norm.cdf((sr - sr0) * math.sqrt(n_obs - 1)
                       / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr * sr))


def test_dsr_matches_the_formula_from_sample_moments():
    r = np.random.default_rng(0).standard_t(5, 800) * 0.01 + 0.0006
    sr = r.mean() / r.std(ddof=1)
    skew, kurt = st.skew(r), st.kurtosis(r, fisher=False)
    trials = np.random.default_rng(1).normal(0, 0.04, 30)
    want = _dsr(sr, r.size, skew, kurt, 30, trials.var(ddof=1))
    assert I.deflated_sharpe_ratio(r, trial_sharpes=trials) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("excess", [0.0, 0.5, -1.0])
def test_an_excess_kurtosis_is_refused_not_scored(excess):
    # 0 (a normal's excess kurtosis, scipy's default) was read as Pearson's 0: the Sharpe
    # ratio's variance 1 - SR²/4 instead of 1 + SR²/2, a silently higher PSR
    for f in (lambda: I.probabilistic_sharpe_ratio(sharpe=0.1, n_obs=252, kurtosis=excess),
              lambda: I.min_track_record_length(sharpe=0.1, kurtosis=excess),
              lambda: I.deflated_sharpe_ratio(sharpe=0.1, n_obs=252, kurtosis=excess,
                                              n_trials=10, trials_sharpe_variance=0.001)):
        with pytest.raises(ValueError, match="excess kurtosis"):
            f()
    # skew 2 needs kurtosis >= 5: 4 is no distribution's
    with pytest.raises(ValueError, match="1 \\+ skew"):
        I.probabilistic_sharpe_ratio(sharpe=0.1, n_obs=252, skew=2.0, kurtosis=4.0)


def test_a_two_point_sample_at_the_kurtosis_bound_is_scored():
    # Pearson's bound is reached (kurtosis = 1 + skew²) by a two-valued sample
    r = np.array([0.02, -0.01] * 50 + [0.02] * 30)
    skew, kurt = st.skew(r), st.kurtosis(r, fisher=False)
    assert kurt == pytest.approx(1 + skew ** 2, rel=1e-12)
    sr = r.mean() / r.std(ddof=1)
    want = st.norm.cdf(sr * math.sqrt(r.size - 1) / math.sqrt(1 - skew * sr
                                                              + (kurt - 1) / 4 * sr * sr))
    assert I.probabilistic_sharpe_ratio(r) == pytest.approx(want, rel=1e-9)


def test_dsr_trials_described_twice_or_as_a_table_are_refused():
    r = np.random.default_rng(2).normal(0.001, 0.01, 300)
    five = [0.02, 0.05, 0.1, -0.01, 0.03]
    # n_trials=100 was ignored: the 5 Sharpe ratios deflated by 5 trials
    with pytest.raises(ValueError, match="not both"):
        I.deflated_sharpe_ratio(r, n_trials=100, trial_sharpes=five)
    with pytest.raises(ValueError, match="not both"):
        I.deflated_sharpe_ratio(r, trials_sharpe_variance=0.01, trial_sharpes=five)
    # a (2, 2) table was flattened into 4 trials
    with pytest.raises(ValueError, match="1-D"):
        I.deflated_sharpe_ratio(r, trial_sharpes=[[0.1, 0.2], [0.3, 0.4]])
    with pytest.raises(TypeError, match="trial_sharpes must be numbers"):
        I.deflated_sharpe_ratio(r, trial_sharpes="abc")


# ----------------------------------------------------------------------------- PBO
def _pbo(x, n_splits, sharpe):
    """CSCV as Bailey et al. (2017) write it: rank of the IS-best trial out of sample,
    ties averaged, ω = rank / (N + 1), λ = log(ω / (1 - ω)); splits whose IS-best has no
    OOS score left out."""
    x = x[: len(x) - len(x) % n_splits]
    blocks = np.split(np.arange(len(x)), n_splits)
    lam = []
    for c in itertools.combinations(range(n_splits), n_splits // 2):
        ins = np.concatenate([blocks[i] for i in c])
        oos = np.concatenate([blocks[i] for i in range(n_splits) if i not in c])
        s_is, s_oos = sharpe(x[ins]), sharpe(x[oos])
        n = int(np.nanargmax(s_is))
        if not np.isfinite(s_oos[n]):
            continue
        ok = np.isfinite(s_oos)
        w = st.rankdata(s_oos[ok])[np.flatnonzero(ok) == n][0] / (ok.sum() + 1)
        lam.append(math.log(w / (1 - w)))
    lam = np.array(lam)
    return float(np.mean(lam <= 0)), lam


def _sharpe(v):
    ok = np.isfinite(v)
    n, z = ok.sum(0), np.where(ok, v, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = z.sum(0) / n
        sd = np.sqrt((np.where(ok, v - m, 0.0) ** 2).sum(0) / (n - 1))
        sr = m / np.where(sd > 0, sd, np.nan)
    # a trial that did not trade: Sharpe 0, the optimisers' convention
    return np.where(((z * z).sum(0) == 0) & (n > 1), 0.0, sr)


def test_pbo_matches_the_paper_with_ties_and_nan_holes():
    x = np.random.default_rng(3).normal(0, 0.01, (480, 6))
    x = np.c_[x, x[:, 0], x[:, 0]]                      # tied trials
    x[::11, 2] = np.nan
    got = I.pbo(x, n_splits=8)
    want, lam = _pbo(x, 8, _sharpe)
    assert got["pbo"] == pytest.approx(want)
    np.testing.assert_allclose(got["logits"], lam, rtol=1e-9)


def test_pbo_ranks_a_trial_that_never_trades_at_sharpe_zero():
    # every trial loses but one stays flat: choosing "flat" in sample is right out of
    # sample too (PBO 0); its 0/0 Sharpe left it unranked and PBO was 0.686
    x = np.random.default_rng(7).normal(-0.002, 0.01, (480, 6))
    x[:, 0] = 0.0
    got = I.pbo(x, n_splits=8)
    want, lam = _pbo(x, 8, _sharpe)
    assert got["pbo"] == want == 0.0
    np.testing.assert_allclose(got["logits"], lam, rtol=1e-9)


def test_pbo_leaves_out_a_split_whose_best_trial_has_no_oos_score():
    # trial 0 is best in the first half and missing in the second: the split "first
    # half in sample" cannot rank it; it was ranked 0.5 / (N + 1), an overfit split
    x = np.random.default_rng(8).normal(0, 0.01, (480, 6))
    x[:240, 0] += 0.01
    x[240:, 0] = np.nan
    got = I.pbo(x, n_splits=8)
    want, lam = _pbo(x, 8, _sharpe)
    assert len(got["logits"]) == len(lam) == 69 and got["n_combinations"] == 70
    assert got["pbo"] == pytest.approx(want) == 0.0
    # the same with a custom metric
    assert I.pbo(x, n_splits=8, metric=_sharpe)["pbo"] == 0.0
    # no split rankable at all: an error, not a number
    y = np.random.default_rng(9).normal(0, 0.01, (64, 3))
    y[:, :2] += 0.05                                    # best wherever they are finite,
    y[32:, 0] = y[:32, 1] = np.nan                      # each in one half only
    with pytest.raises(ValueError, match="no split"):
        I.pbo(y, n_splits=2)


# ----------------------------------------------------------------------------- optimisers
def test_walk_forward_and_regime_runs_refuse_an_array_naming_it(ds, strat):
    frame = ds["close"].values   # a DataFrame of closes is data since session 60
    wf = optimize.WalkForwardOptimizer(optimization_window=100, validation_window=50,
                                       step_size=50, optimization_method="grid",
                                       n_trials=2, progress=False)
    with pytest.raises(TypeError, match="data must be an xarray Dataset.*ndarray"):
        wf.run(strat, {"window": [10, 21]}, frame)   # AttributeError: no attribute 'time'
    labels = xr.DataArray(np.where(np.arange(300) < 150, "a", "b"),
                          coords={"time": ds["time"]})
    ra = optimize.RegimeAdaptiveOptimizer(labels, optimization_method="grid", n_trials=2,
                                          min_bars=20, progress=False)
    with pytest.raises(TypeError, match="data must be an xarray Dataset.*ndarray"):
        ra.run(strat, {"window": [10, 21]}, frame)   # AttributeError: no attribute 'sel'


@pytest.mark.parametrize("objective, match", [
    ("sharpe", "objective must be one of"),               # failed after the default search
    ("n_trades", "account-level"),                        # idem
    (["sharpe_ratio", "max_drawdown"], "one objective"),  # ran a Pareto search, ignored
])
def test_regime_optimizer_checks_its_objective_when_built(objective, match):
    with pytest.raises(ValueError, match=match):
        optimize.RegimeAdaptiveOptimizer(lambda d: None, objective=objective)


def _walk(is_sr, oos_sr):
    folds = pd.DataFrame({"is_sharpe_ratio": is_sr, "oos_sharpe_ratio": oos_sr})
    return optimize.WalkForwardResult(folds, None, None, None, None, "sharpe_ratio")


def test_walk_forward_efficiency_is_nan_without_an_in_sample_edge():
    assert _walk([0.4, 0.6], [0.2, 0.3]).efficiency == pytest.approx(0.5)
    # IS -0.1, OOS -0.2 read as 2.0 ("better out of sample"); IS 0 as -inf
    assert math.isnan(_walk([-0.1, -0.1], [-0.2, -0.2]).efficiency)
    assert math.isnan(_walk([0.1, -0.1], [-0.2, 0.0]).efficiency)
    assert math.isnan(_walk([np.nan, np.nan], [0.1, 0.2]).efficiency)


# ----------------------------------------------------------------------------- cross-market
def _series(seed=0, n=300):
    idx = pd.bdate_range("2020-01-01", periods=n)
    rng = np.random.default_rng(seed)
    return pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, n))), idx)


def test_a_one_bar_rolling_correlation_names_window():
    cm = crossmarket.CrossMarketAnalyzer()
    cm.add_market_data("equity", "A", _series(0)).add_market_data("equity", "B", _series(1))
    with pytest.raises(ValueError, match="window must be an integer >= 2, got 1"):
        cm.correlations(window=1)              # said "min_periods ... in [0, 1], got 2"


def test_rolling_correlation_with_nan_holes_equals_pandas():
    a, b = _series(0), _series(1)
    b.iloc[50:60] = np.nan
    b = b.drop(b.index[::7])                   # another calendar
    cm = crossmarket.CrossMarketAnalyzer()
    cm.add_market_data("equity", "A", a).add_market_data("fx", "B", b)
    r = cm.returns().to_pandas()
    got = cm.correlations(window=20).sel(asset="A", asset_other="B").to_series()
    want = r["A"].rolling(20).corr(r["B"])
    pd.testing.assert_series_equal(got, want, check_names=False, check_freq=False,
                                   check_index_type=False, atol=1e-12, rtol=0)
    full = cm.correlations().sel(asset="A", asset_other="B")
    assert float(full) == pytest.approx(r.corr().loc["A", "B"], rel=1e-12)


def test_an_accruing_driver_has_no_beta_and_no_correlation():
    # its beta was NaN but its correlations were rounding noise (-0.02 over the window)
    a = _series(0)
    accrual = pd.Series(1.0001 ** np.arange(len(a)), a.index)
    cm = crossmarket.CrossMarketAnalyzer()
    cm.add_market_data("equity", "A", a).add_market_data("fx", "P", accrual)
    rolling, summary = cm.fx_impact("A", "P", window=20)
    assert summary["beta_mean"].isna().all()
    assert summary["correlation"].isna().all()
    assert rolling["correlation"].isnull().all()
    # a driver that varies keeps its correlation, as xr.corr computes it
    fx = pd.Series(1.1 + 0.05 * np.sin(np.arange(len(a)) / 7), a.index)
    cm.add_market_data("fx", "EURUSD", fx)
    _, summary = cm.fx_impact("A", "EURUSD", window=20)
    r = cm.returns(["A", "EURUSD"]).to_pandas().dropna()
    assert summary.loc["A", "correlation"] == pytest.approx(r.corr().iloc[0, 1], rel=1e-9)


class _LongFirst(ql.strategies.Strategy):
    """Long on the first ``k`` bars, flat after (a test strategy, unregistered)."""

    name = "long_first_test"
    defaults = {"k": 10}
    param_space = {"k": (5, 150)}

    def _signal(self, ds, k):
        on = xr.DataArray(np.arange(ds.sizes["time"]) < k, dims="time",
                          coords={"time": ds["time"]})
        return on.astype(float).broadcast_like(ds["close"])


def test_bayesian_search_takes_an_infinite_objective():
    # prices only rise over the first 60 bars: a trial long on fewer has no losing bar,
    # a profit factor of +inf; the GP failed in sklearn ("Input y contains infinity")
    n = 200
    r = np.r_[np.full(60, 0.002), np.random.default_rng(0).normal(0, 0.01, n - 60)]
    data = xr.Dataset({"close": (("time", "asset"), 100 * np.cumprod(1 + r)[:, None])},
                      coords={"time": pd.bdate_range("2020-01-01", periods=n),
                              "asset": ["X"], "asset_class": ("asset", ["equity"])})
    res = optimize.optimize_strategy_parameters(
        _LongFirst(), {"k": (5, 150)}, data, optimization_method="bayesian",
        objective="profit_factor", n_trials=12, progress=False)
    assert np.isinf(res.trials["profit_factor"]).any()
    assert res.best_value == math.inf and res["k"] <= 61


class _Only(ql.strategies.Strategy):
    """A constant exposure on the first ``n`` assets only (a test strategy)."""

    defaults = {"side": 0.5, "n": 1}
    param_space = {"side": (-1.0, 1.0)}

    def __init__(self, name, **params):
        self.name = name
        super().__init__(**params)

    def _signal(self, ds, side, n):
        return xr.full_like(ds["close"].isel(asset=slice(0, n)), side)


@pytest.mark.filterwarnings("error::FutureWarning")
@pytest.mark.parametrize("allocation", ql.ensemble.ALLOCATIONS)
def test_ensemble_of_members_on_different_assets_blends_their_union(ds, allocation):
    # xarray's concat warned that its default join becomes 'exact' (a ValueError)
    ens = ql.ensemble.Ensemble([_Only("one", side=0.5, n=1), _Only("all", side=-0.3, n=4)],
                               allocation=allocation)
    sig, w = ens.signal(ds), ens.weights(ds)
    assert list(sig.asset.values) == list(ds.asset.values)
    want = w.sel(strategy="one") * 0.5 - w.sel(strategy="all") * 0.3
    np.testing.assert_allclose(sig.isel(asset=0), want, rtol=1e-12)
    np.testing.assert_allclose(sig.isel(asset=slice(1, None)),
                               (-0.3 * w.sel(strategy="all")).broadcast_like(
                                   sig.isel(asset=slice(1, None))).transpose(*sig.dims),
                               rtol=1e-12)


# ----------------------------------------------------------------------------- research
@pytest.mark.parametrize("kw, error, match", [
    (dict(analysis_type=[]), TypeError, "non-empty list"),       # returned {'IBM': {}}
    (dict(analysis_type=None), TypeError, "got None"),           # 'NoneType' not iterable
    (dict(symbols=["IBM", "IBM"]), ValueError, "repeat \\['IBM'\\]"),
    (dict(start="2030-01-01"), ValueError, "no bars between start=2030.*data runs from"),
    (dict(end="1990-01-01"), ValueError, "no bars between.*data runs from"),
    (dict(start="2000-09-01", end="2000-06-01"), ValueError, "end is before start"),
])
def test_research_analysis_names_what_is_wrong(ds, kw, error, match):
    # the dates and repeats failed as "empty data set (time=0, asset=1)" and
    # "duplicate asset 'IBM'", naming neither start, end nor symbols
    kw = {"symbols": ["IBM"], "analysis_type": "volatility", **kw}
    with pytest.raises(error, match=match):
        ql.run_research_analysis(data=ds, progress=False, **kw)


def test_research_analysis_takes_an_array_of_types(ds):
    out = ql.run_research_analysis("IBM", np.array(["volatility"]), data=ds, progress=False)
    assert list(out["IBM"]) == ["volatility_regime"]


def _granger_f_p(y, x, k):
    """Granger F test by plain least squares on the rows of the lag matrix that touch no
    hole: y_t on [y_{t-1..t-k}, 1] against [y_{t-1..t-k}, x_{t-1..t-k}, 1]."""
    rows = [np.r_[y[t], y[t - k:t][::-1], x[t - k:t][::-1]] for t in range(k, len(y))]
    d = np.array(rows)
    d = d[np.isfinite(d).all(1)]
    one = np.ones((len(d), 1))
    own, joint = np.c_[d[:, 1:k + 1], one], np.c_[d[:, 1:], one]
    ssr = [np.sum((d[:, 0] - m @ np.linalg.lstsq(m, d[:, 0], rcond=None)[0]) ** 2)
           for m in (own, joint)]
    df = len(d) - joint.shape[1]
    return st.f.sf((ssr[0] - ssr[1]) / ssr[1] / k * df, k, df)


def test_lead_lag_counts_lags_in_bars_across_holes():
    # b follows a at lag 2; b has 14 six-bar holes. Shifted after dropping them, pairs
    # across a hole were more bars apart than the lag: correlation 0.375 for pandas' 0.394
    n = 600
    idx = pd.bdate_range("2020-01-01", periods=n)
    e = np.random.default_rng(1).normal(0, 0.01, (n, 2))
    rb = 0.5 * np.r_[0, 0, e[:-2, 0]] + e[:, 1]
    a = pd.Series(100 * np.cumprod(1 + e[:, 0]), idx)
    b = pd.Series(100 * np.cumprod(1 + rb), idx)
    for s in range(30, n - 20, 40):
        b.iloc[s:s + 6] = np.nan
    cm = crossmarket.CrossMarketAnalyzer()
    cm.add_market_data("equity", "A", a).add_market_data("equity", "B", b)
    out = cm.lead_lag(5, min_obs=100).set_index(["leader", "follower"])
    r = cm.returns().to_pandas()
    for lead, follow in (("A", "B"), ("B", "A")):
        row = out.loc[(lead, follow)]
        cors = [r[lead].shift(k).corr(r[follow]) for k in range(1, 6)]
        assert row["lag"] == int(np.argmax(np.abs(cors))) + 1
        assert row["correlation"] == pytest.approx(cors[row["lag"] - 1], rel=1e-12)
        span = r.loc[r[[lead, follow]].dropna().index[[0, -1]].tolist()[0]:
                     r[[lead, follow]].dropna().index[-1]]
        want = _granger_f_p(span[follow].to_numpy(), span[lead].to_numpy(), row["lag"])
        assert row["granger_p"] == pytest.approx(want, rel=1e-6)
    assert out.loc[("A", "B"), "lag"] == 2
