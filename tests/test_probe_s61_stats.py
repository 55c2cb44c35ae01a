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
        r_is, r_oos = (x[k].mean(0) / x[k].std(0, ddof=1) for k in (j, jbar))
        for a, b in same:
            r_is[b], r_oos[b] = r_is[a], r_oos[a]
        w = st.rankdata(r_oos)[np.argmax(r_is)] / (x.shape[1] + 1)
        logits.append(np.log(w / (1 - w)))
    logits = np.array(logits)
    return float(np.mean(logits <= 0)), logits


@pytest.mark.parametrize("n_splits", [8, 16])
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
