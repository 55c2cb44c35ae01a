"""Session 61, helper `stats`: quantlab's statistics against independent implementations
(statsmodels, scipy) and the published definitions (Bailey & López de Prado 2012, 2014;
Bailey, Borwein, López de Prado & Zhu 2017), on ordinary input and on edges."""
import itertools

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st

import quantlab as ql

I = ql.integrity


def _cscv(x, n_splits, same=()):
    """CSCV as the paper defines it, split by split: the best in-sample trial (the first
    of equal scores), its out-of-sample rank among the trials (ties: average rank) over
    N + 1, λ = logit. ``same`` pairs (i, j): trial j's scores are trial i's (its returns
    a positive multiple of i's, so its Sharpe ratio is i's exactly)."""
    x = x[: len(x) - len(x) % n_splits]
    blocks = np.array_split(np.arange(len(x)), n_splits)
    logits = []
    for c in itertools.combinations(range(n_splits), n_splits // 2):
        j = np.concatenate([blocks[b] for b in c])
        jbar = np.setdiff1d(np.arange(len(x)), j)
        # trial by trial (rows of the transpose): returns equal on a half score equal
        r_is, r_oos = (np.ascontiguousarray(x[k].T) for k in (j, jbar))
        r_is, r_oos = (v.mean(1) / v.std(1, ddof=1) for v in (r_is, r_oos))
        for a, b in same:
            r_is[b], r_oos[b] = r_is[a], r_oos[a]
        w = st.rankdata(r_oos)[np.argmax(r_is)] / (x.shape[1] + 1)
        logits.append(np.log(w / (1 - w)))
    logits = np.array(logits)
    return float(np.mean(logits <= 0)), logits


@pytest.mark.parametrize("n_splits", [8, 12])
def test_pbo_scaled_trials_tie_as_the_definition_ranks_them(n_splits):
    # a trial at 3x leverage of another (an optimiser's size parameter) has the same
    # Sharpe ratio; the per-block sums rounded the two apart, so which was "best" in
    # sample and its out-of-sample rank among the tie were the rounding's
    rng = np.random.default_rng(7)
    x = rng.normal(0.0003, 0.01, (500, 13))
    x[:, 5] += 0.0007
    x[:, 10] = 3 * x[:, 5]
    x[:, 3] += 0.0005
    x[:, 12] = 3 * x[:, 3]
    want, logits = _cscv(x, n_splits, same=[(5, 10), (3, 12)])
    got = I.pbo(x, n_splits=n_splits)
    assert got["pbo"] == want
    np.testing.assert_allclose(got["logits"], logits, rtol=0, atol=1e-12)


def test_stress_correlations_to_one_is_the_sum_of_the_legs_risks():
    # the docstring said "all correlations 1", which for a long/short book is
    # |Σ w_i σ_i| (the hedge holds); the scenario is Σ|w_i| σ_i (the legs stop hedging)
    from statistics import NormalDist
    ds = ql.data.load().isel(time=slice(0, 300))
    w = {"IBM": 0.6, "MSFT": -0.4}
    table = ql.risk.RiskManager().stress_test(pd.Series(w), data=ds)
    r = (ds["close"] / ds["close"].shift(time=1) - 1).sel(asset=list(w)).to_pandas()
    sd = r.std().to_numpy()
    z = NormalDist().inv_cdf(0.05)
    wv = np.array(list(w.values()))
    assert table.loc["correlations -> 1", "pnl"] == pytest.approx(z * np.abs(wv) @ sd,
                                                                   rel=1e-12)
    cov = r.cov().to_numpy()
    assert table.loc["vol x3", "pnl"] == pytest.approx(z * 3 * np.sqrt(wv @ cov @ wv),
                                                       rel=1e-12)


def test_dsr_reproduces_the_papers_worked_example():
    # Bailey & López de Prado 2014, "The Deflated Sharpe Ratio", section 4: annualised
    # SR 2.5 over 5 years of daily returns (T = 1250), γ3 = -3, γ4 = 10, N = 100 trials
    # whose annualised Sharpe ratios have variance 0.5: SR0 ≈ 1.79 (annualised), DSR ≈ 0.90
    sr, v = 2.5 / np.sqrt(250), 0.5 / 250
    sr0 = I.expected_max_sharpe(100, v)
    dsr = I.deflated_sharpe_ratio(sharpe=sr, n_obs=1250, skew=-3, kurtosis=10,
                                  n_trials=100, trials_sharpe_variance=v)
    e = np.euler_gamma
    want0 = np.sqrt(v) * ((1 - e) * st.norm.ppf(1 - 1 / 100)
                          + e * st.norm.ppf(1 - 1 / (100 * np.e)))
    want = st.norm.cdf((sr - want0) * np.sqrt(1249)
                       / np.sqrt(1 + 3 * sr + (10 - 1) / 4 * sr ** 2))
    assert abs(sr0 - want0) < 1e-12 and abs(dsr - want) < 1e-12
    assert round(sr0 * np.sqrt(250), 2) == 1.79 and round(dsr, 3) == 0.900


@pytest.mark.parametrize("kind", ["normal", "t3", "negative", "skewed"])
def test_psr_and_min_trl_equal_the_formula_on_scipys_moments(kind):
    rng = np.random.default_rng(0)
    r = {"normal": rng.normal(0.001, 0.01, 500), "t3": rng.standard_t(3, 300) * 0.01 + 0.002,
         "negative": rng.normal(-0.002, 0.01, 40),
         "skewed": rng.lognormal(0, 1, 100) - 1.2}[kind]
    r[[5, 17]] = np.nan   # holes: skipped
    x = r[~np.isnan(r)]
    sr, g3, g4 = x.mean() / x.std(ddof=1), st.skew(x), st.kurtosis(x, fisher=False)
    var = 1 - g3 * sr + (g4 - 1) / 4 * sr ** 2
    for bench in (0.0, -0.05):
        psr = st.norm.cdf((sr - bench) * np.sqrt(len(x) - 1) / np.sqrt(var))
        assert abs(I.probabilistic_sharpe_ratio(r, bench) - psr) < 1e-12
        trl = I.min_track_record_length(r, bench)
        assert (trl == np.inf if sr <= bench else
                abs(trl - (1 + var * (st.norm.ppf(0.95) / (sr - bench)) ** 2)) < 1e-9 * trl)


@pytest.mark.parametrize("n_splits", [2, 8, 12])
def test_pbo_equals_cscv_split_by_split(n_splits):
    rng = np.random.default_rng(3)
    for x in (rng.normal(0, 0.01, (400, 10)),
              rng.normal(0, 0.01, (400, 10)) + np.linspace(0, 0.002, 10),
              rng.normal(0, 0.01, (64, 300))):
        want, logits = _cscv(x, n_splits)
        got = I.pbo(x, n_splits=n_splits)
        assert got["pbo"] == want
        np.testing.assert_allclose(got["logits"], logits, rtol=0, atol=1e-12)


def test_granger_and_holm_equal_statsmodels_with_holes():
    import statsmodels.api as sm
    from statsmodels.stats.multitest import multipletests
    rng = np.random.default_rng(1)
    n = 600
    idx = pd.bdate_range("2010-01-01", periods=n)
    x, y = rng.normal(0, 0.01, n), rng.normal(0, 0.01, n)
    y[2:] += 0.3 * x[:-2]
    px, py = (pd.Series(100 * np.cumprod(1 + v), idx) for v in (x, y))
    py.iloc[100:106] = np.nan
    px.iloc[300:310] = np.nan
    cm = (ql.crossmarket.CrossMarketAnalyzer().add_market_data("equity", "X", px)
          .add_market_data("equity", "Y", py))
    out = cm.lead_lag(max_lag=5, min_obs=100)
    r = cm.returns().to_pandas()
    for row in out.itertuples():
        a, b, k = row.leader, row.follower, row.lag
        assert abs(row.correlation - r[a].shift(k).corr(r[b])) < 1e-12
        own = pd.concat({f"y{j}": r[b].shift(j) for j in range(1, k + 1)}, axis=1)
        lead = pd.concat({f"x{j}": r[a].shift(j) for j in range(1, k + 1)}, axis=1)
        df = pd.concat([r[b].rename("y"), own, lead], axis=1).iloc[k + 1:].dropna()
        full = sm.OLS(df["y"], sm.add_constant(df.drop(columns="y"))).fit()
        restricted = sm.OLS(df["y"], sm.add_constant(df[list(own)])).fit()
        p = full.compare_f_test(restricted)[1]
        assert abs(row.granger_p - p) <= 1e-9 * p + 1e-15
    holm = multipletests(np.minimum(out["granger_p"] * 5, 1), method="holm")[1]
    np.testing.assert_allclose(out["p_adjusted"], holm, rtol=1e-12, atol=0)


def test_pbo_of_a_thousand_trials_stays_within_memory(monkeypatch):
    # all 12,870 splits' (splits x trials) scores at once: 0.9 GB at 1,000 trials,
    # 2.6 GB at 3,000, growing with the trials until memory ran out; now in chunks
    import tracemalloc
    x = np.random.default_rng(0).normal(0, 0.01, (64, 1000))
    tracemalloc.start()
    try:
        got = I.pbo(x, n_splits=16)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 300e6
    assert got["n_combinations"] == len(got["logits"]) == 12870
    monkeypatch.setattr(I, "_CHUNK_SCORES", 500)   # chunks of 10 splits: CSCV's PBO
    chunk = I.pbo(x[:, :50], n_splits=16)
    want, logits = _cscv(x[:, :50], 16)
    assert chunk["pbo"] == want
    np.testing.assert_allclose(chunk["logits"], logits, rtol=0, atol=1e-12)


def test_pbo_trials_equal_but_for_rounding_in_sample_tie_and_the_first_is_picked():
    # two parameter sets trading alike on 12 of the 16 blocks (a filter that binds only
    # in some years), their returns there 1e-13 apart (a backtest's rounding), score
    # alike in the 495 splits drawn from those blocks: which was "best in sample" was
    # the rounding's (walk-forward fold 3 of notebook 08: PBO 0.3444, CSCV's 0.3443)
    rng = np.random.default_rng(0)
    x = rng.normal(0.0002, 0.01, (480, 12))
    x[:, 4] += 0.0008
    x[:, 9] = x[:, 4]
    x[360:, 9] = rng.normal(0.0002, 0.01, 120)   # the last 4 blocks differ
    want, logits = _cscv(x, 16)
    x[:360, 9] *= 1 + 1e-13 * rng.standard_normal(360)
    got = I.pbo(x, n_splits=16)
    assert got["pbo"] == want
    np.testing.assert_allclose(got["logits"], logits, rtol=0, atol=1e-12)
