"""ql.integrity: PSR/DSR against their closed forms and a Monte Carlo of the false-strategy
theorem; PBO on noise (about one half) and on a real edge (about zero)."""
import math
from statistics import NormalDist

import numpy as np
import pytest

import quantlab as ql

I = ql.integrity


def test_psr_closed_form_and_moments():
    # a normal sample: skew 0, Pearson kurtosis 3
    got = I.probabilistic_sharpe_ratio(sr=0.1, n=253, sr_benchmark=0.05)
    want = NormalDist().cdf((0.1 - 0.05) * math.sqrt(252) / math.sqrt(1 + 0.5 * 0.01))
    assert got == pytest.approx(want, rel=1e-12)
    assert I.probabilistic_sharpe_ratio(sr=0.1, n=100, sr_benchmark=0.1) == 0.5
    # negative skew and fat tails make the same Sharpe ratio less convincing
    fat = I.probabilistic_sharpe_ratio(sr=0.1, n=253, sr_benchmark=0.05, skew=-1.0,
                                       kurtosis=8.0)
    assert fat < got
    r = np.random.default_rng(0).normal(0.001, 0.01, 1000)
    sr, skew, kurt = r.mean() / r.std(ddof=1), 0.0, 0.0
    z = (r - r.mean()) / r.std()
    skew, kurt = (z ** 3).mean(), (z ** 4).mean()
    assert I.probabilistic_sharpe_ratio(r) == pytest.approx(
        I.probabilistic_sharpe_ratio(sr=sr, n=1000, skew=skew, kurtosis=kurt))


def test_expected_max_sharpe_matches_a_monte_carlo():
    rng = np.random.default_rng(1)
    n_trials, t = 100, 500
    maxima = []
    for _ in range(200):
        r = rng.normal(0, 0.01, (t, n_trials))
        maxima.append((r.mean(0) / r.std(0, ddof=1)).max())
    v = 1.0 / (t - 1)                                 # variance of a noise Sharpe estimate
    assert I.expected_max_sharpe(n_trials, v) == pytest.approx(np.mean(maxima), rel=0.05)


def test_dsr_falls_with_the_number_of_trials():
    r = np.random.default_rng(2).normal(0.0008, 0.01, 1000)
    one = I.deflated_sharpe_ratio(r, n_trials=1, sr_variance=0.001)
    assert one == pytest.approx(I.probabilistic_sharpe_ratio(r))
    many = [I.deflated_sharpe_ratio(r, n_trials=k, sr_variance=1 / 999) for k in (10, 100, 1000)]
    assert one > many[0] > many[1] > many[2]
    trials = np.random.default_rng(3).normal(0, 0.03, 50)
    assert I.deflated_sharpe_ratio(r, trials) == pytest.approx(
        I.deflated_sharpe_ratio(r, n_trials=50, sr_variance=trials.var(ddof=1)))


def test_pbo_on_noise_and_on_a_real_edge():
    rng = np.random.default_rng(4)
    noise = rng.normal(0, 0.01, (1600, 40))
    res = I.pbo(noise, n_splits=10)
    assert res["n_combinations"] == 252 and 0.3 < res["pbo"] < 0.7
    edge = noise.copy()
    edge[:, 7] += 0.004                               # one configuration really is better
    assert I.pbo(edge, n_splits=10)["pbo"] < 0.05


def test_errors():
    with pytest.raises(ValueError, match="zero variance"):
        I.probabilistic_sharpe_ratio(np.ones(10))
    with pytest.raises(ValueError, match="even"):
        I.pbo(np.zeros((100, 3)), n_splits=5)
    with pytest.raises(ValueError, match="too few"):
        I.pbo(np.zeros((10, 3)), n_splits=16)
