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
    got = I.probabilistic_sharpe_ratio(sharpe=0.1, n_obs=253, sr_benchmark=0.05)
    want = NormalDist().cdf((0.1 - 0.05) * math.sqrt(252) / math.sqrt(1 + 0.5 * 0.01))
    assert got == pytest.approx(want, rel=1e-12)
    assert I.probabilistic_sharpe_ratio(sharpe=0.1, n_obs=100, sr_benchmark=0.1) == 0.5
    # negative skew and fat tails make the same Sharpe ratio less convincing
    fat = I.probabilistic_sharpe_ratio(sharpe=0.1, n_obs=253, sr_benchmark=0.05, skew=-1.0,
                                       kurtosis=8.0)
    assert fat < got
    r = np.random.default_rng(0).normal(0.001, 0.01, 1000)
    sr, skew, kurt = r.mean() / r.std(ddof=1), 0.0, 0.0
    z = (r - r.mean()) / r.std()
    skew, kurt = (z ** 3).mean(), (z ** 4).mean()
    assert I.probabilistic_sharpe_ratio(r) == pytest.approx(
        I.probabilistic_sharpe_ratio(sharpe=sr, n_obs=1000, skew=skew, kurtosis=kurt))


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
    one = I.deflated_sharpe_ratio(r, n_trials=1, trials_sharpe_variance=0.001)
    assert one == pytest.approx(I.probabilistic_sharpe_ratio(r))
    many = [I.deflated_sharpe_ratio(r, n_trials=k, trials_sharpe_variance=1 / 999) for k in (10, 100, 1000)]
    assert one > many[0] > many[1] > many[2]
    trials = np.random.default_rng(3).normal(0, 0.03, 50)
    assert I.deflated_sharpe_ratio(r, trial_sharpes=trials) == pytest.approx(
        I.deflated_sharpe_ratio(r, 50, trials.var(ddof=1)))


def test_dsr_worked_example_of_the_paper():
    # Bailey & López de Prado (2014), section 5: annualised SR 2.5 over T = 1250 daily
    # observations, N = 100 trials with annualised Sharpe variance 0.5, skew -3,
    # kurtosis 10, 250 periods a year -> DSR 0.9004
    got = I.deflated_sharpe_ratio(n_trials=100, trials_sharpe_variance=0.5 / 250,
                                  sharpe=2.5 / math.sqrt(250), n_obs=1250, skew=-3.0,
                                  kurtosis=10.0)
    assert got == pytest.approx(0.9004, abs=5e-5)


def test_min_track_record_length_is_where_psr_reaches_the_confidence():
    sr, skew, kurt = 0.08, -0.5, 6.0
    n = I.min_track_record_length(sharpe=sr, sr_benchmark=0.02, confidence=0.95, skew=skew,
                                  kurtosis=kurt)
    psr = I.probabilistic_sharpe_ratio(sharpe=sr, n_obs=n, sr_benchmark=0.02, skew=skew,
                                       kurtosis=kurt)
    assert psr == pytest.approx(0.95, rel=1e-12)
    # normal case by hand: 1 + (1 + SR²/2) (1.6449 / (SR - SR*))²
    want = 1 + (1 + 0.5 * 0.1 ** 2) * (NormalDist().inv_cdf(0.95) / 0.1) ** 2
    assert I.min_track_record_length(sharpe=0.1) == pytest.approx(want, rel=1e-12)
    assert I.min_track_record_length(sharpe=0.01, sr_benchmark=0.02) == math.inf


def test_pbo_on_noise_and_on_a_real_edge():
    rng = np.random.default_rng(4)
    noise = rng.normal(0, 0.01, (1600, 40))
    res = I.pbo(noise, n_splits=10)
    assert res["n_combinations"] == 252 and 0.3 < res["pbo"] < 0.7
    edge = noise.copy()
    edge[:, 7] += 0.004                               # one configuration really is better
    assert I.pbo(edge, n_splits=10)["pbo"] < 0.05


def test_pbo_block_sums_equal_the_split_by_split_loop():
    # the default (vectorised) Sharpe path against a custom metric computing the same
    # Sharpe ratio on each split's rows, NaN holes included
    x = np.random.default_rng(5).normal(0.0002, 0.01, (640, 12))
    x[::37, 3] = np.nan

    def sharpe(v):
        sd = np.nanstd(v, axis=0, ddof=1)
        return np.nanmean(v, axis=0) / np.where(sd > 0, sd, np.nan)

    fast, slow = I.pbo(x, n_splits=8), I.pbo(x, n_splits=8, metric=sharpe)
    np.testing.assert_allclose(fast["logits"], slow["logits"], rtol=1e-9)
    assert fast["pbo"] == slow["pbo"]
    # a constant trial has no Sharpe ratio (not a rounding-noise infinity) and is never best
    x[:, 5] = 0.001
    assert I.pbo(x, n_splits=8)["pbo"] == I.pbo(np.delete(x, 5, axis=1), n_splits=8)["pbo"]


def test_reality_check_finds_a_real_edge_and_not_noise():
    rng = np.random.default_rng(6)
    noise = rng.normal(0, 0.01, (1000, 20))
    assert I.reality_check(noise, reps=300)["spa_pvalue"] > 0.1
    edge = noise.copy()
    edge[:, 4] += 0.003
    res = I.reality_check(edge, reps=300)
    assert res["spa_pvalue"] < 0.01 and res["reality_check_pvalue"] < 0.01
    # against a benchmark that has the same edge, the edge is nothing special
    bench = rng.normal(0.003, 0.01, 1000)
    assert I.reality_check(edge, benchmark=bench, reps=300)["spa_pvalue"] > 0.1


def test_errors():
    with pytest.raises(ValueError, match="zero variance"):
        I.probabilistic_sharpe_ratio(np.ones(10))
    with pytest.raises(ValueError, match="even"):
        I.pbo(np.zeros((100, 3)), n_splits=5)
    with pytest.raises(ValueError, match="too few"):
        I.pbo(np.zeros((10, 3)), n_splits=16)
    with pytest.raises(ValueError, match="no finite in-sample"):
        I.pbo(np.full((64, 3), 0.001), n_splits=4)   # constant: no Sharpe ratio
    with pytest.raises(ValueError, match="n_trials and trials_sharpe_variance"):
        I.deflated_sharpe_ratio(np.arange(10.0))
    with pytest.raises(ValueError, match="rows"):
        I.reality_check(np.zeros((50, 2)), benchmark=np.zeros(40))


def test_constant_and_two_dimensional_returns_are_refused_not_scored():
    # the std of a constant 0.001 is a rounding residue: PSR was 1.0, DSR near 1
    for r in (np.full(100, 0.001), np.full(37, 0.1)):
        with pytest.raises(ValueError, match="zero variance"):
            I.probabilistic_sharpe_ratio(r)
        with pytest.raises(ValueError, match="zero variance"):
            I.deflated_sharpe_ratio(r, trial_sharpes=[0.1, 0.2])
    # a (time, trials) table was flattened into one series by the NaN mask
    with pytest.raises(ValueError, match=r"1-D.*\(400, 5\)"):
        I.probabilistic_sharpe_ratio(np.random.default_rng(0).normal(0, 0.01, (400, 5)))
    with pytest.raises(ValueError, match="inf"):
        I.min_track_record_length(np.r_[np.random.default_rng(0).normal(0, 0.01, 50), np.inf])


@pytest.mark.parametrize("call, match", [
    (lambda: I.deflated_sharpe_ratio(sharpe=0.1, n_obs=252, n_trials=0,
                                     trials_sharpe_variance=0.01), "n_trials"),
    (lambda: I.deflated_sharpe_ratio(sharpe=0.1, n_obs=252, n_trials=-3,
                                     trials_sharpe_variance=0.01), "n_trials"),
    (lambda: I.deflated_sharpe_ratio(sharpe=0.1, n_obs=252, n_trials=1.5,
                                     trials_sharpe_variance=0.01), "n_trials"),
    (lambda: I.deflated_sharpe_ratio(sharpe=0.1, n_obs=252, n_trials=math.inf,
                                     trials_sharpe_variance=0.01), "n_trials"),
    (lambda: I.deflated_sharpe_ratio(sharpe=0.1, n_obs=252, n_trials=10,
                                     trials_sharpe_variance=math.nan), "trials_sharpe_variance"),
    (lambda: I.deflated_sharpe_ratio(sharpe=0.1, n_obs=252, n_trials=10,
                                     trials_sharpe_variance=-0.1), "trials_sharpe_variance"),
    (lambda: I.deflated_sharpe_ratio(sharpe=0.1, n_obs=252,
                                     trial_sharpes=[math.nan, math.nan]), "no finite"),
    (lambda: I.expected_max_sharpe(10, math.inf), "sr_variance"),
    (lambda: I.probabilistic_sharpe_ratio(sharpe=math.nan, n_obs=100), "sharpe"),
    (lambda: I.probabilistic_sharpe_ratio(sharpe=0.1, n_obs=0), "n_obs"),
    (lambda: I.probabilistic_sharpe_ratio(sharpe=0.1, n_obs=100, sr_benchmark=math.nan),
     "sr_benchmark"),
    (lambda: I.probabilistic_sharpe_ratio(sharpe=0.1, n_obs=100, kurtosis=math.nan),
     "kurtosis"),
    (lambda: I.min_track_record_length(sharpe=0.1, confidence=1.0), "confidence"),
    (lambda: I.min_track_record_length(sharpe=0.1, confidence=math.nan), "confidence"),
])
def test_bad_statistics_are_named_not_nan_or_a_silent_default(call, match):
    # before: n_trials 0, -3 or 1.5 deflated nothing (the PSR), NaN gave NaN, inf gave 0
    # or 1, and others failed inside math/statistics ("math domain error")
    with pytest.raises(ValueError, match=match):
        call()


def test_pbo_n_splits_and_metric_are_checked_before_the_splits():
    x = np.random.default_rng(0).normal(0, 0.01, (400, 5))
    # 40 blocks are C(40, 20) = 1.4e11 splits: the process ran out of memory
    with pytest.raises(ValueError, match=r"n_splits must be an integer in \[2, 20\]"):
        I.pbo(x, n_splits=40)
    with pytest.raises(TypeError, match="n_splits"):
        I.pbo(x, n_splits="8")
    assert I.pbo(x, n_splits=8.0)["pbo"] == I.pbo(x, n_splits=8)["pbo"]
    # a metric of another shape broadcast into the ranks: PBO 1.0 from nothing
    with pytest.raises(ValueError, match=r"one score per trial \(5\), got shape \(2,\)"):
        I.pbo(x, n_splits=8, metric=lambda a: np.zeros(2))
    with pytest.raises(ValueError, match="one score per trial"):
        I.pbo(x, n_splits=8, metric=lambda a: 1.0)


def test_reality_check_trials_a_constant_away_from_the_benchmark():
    rng = np.random.default_rng(0)
    noise, bench = rng.normal(0, 0.01, (200, 3)), rng.normal(0, 0.01, 200)
    # equal to the benchmark, or always behind it: arch's SPA said p = 0 ("beats it")
    assert I.reality_check(np.zeros((200, 3)), reps=100)["spa_pvalue"] == 1.0
    assert I.reality_check(np.column_stack([bench, bench]), benchmark=bench,
                           reps=100)["spa_pvalue"] == 1.0
    assert I.reality_check(np.full((200, 2), -0.001), reps=100)["spa_pvalue"] == 1.0
    losers = np.column_stack([noise - 0.01, np.zeros(200)])   # e.g. a trial that never trades
    assert I.reality_check(losers, reps=100)["spa_pvalue"] > 0.1
    # a trial without such a twin is tested as before; one surely ahead: p = 0
    assert I.reality_check(np.column_stack([noise, np.zeros(200)]), reps=100) == \
        I.reality_check(noise, reps=100)
    assert I.reality_check(np.column_stack([noise, np.full(200, 0.001)]),
                           reps=100)["spa_pvalue"] == 0.0
    with pytest.raises(ValueError, match="block_size"):
        I.reality_check(noise, block_size=0)     # ZeroDivisionError inside arch
    with pytest.raises(ValueError, match="reps"):
        I.reality_check(noise, reps=0)


def test_pbo_of_identical_trials_is_undefined_not_one():
    # every split's best in-sample tied at the out-of-sample median: PBO 1.0 ("overfit")
    # for trials whose parameters change nothing
    r = np.random.default_rng(0).normal(0, 0.01, (400, 1))
    r[:10] = np.nan
    with pytest.raises(ValueError, match="identical"):
        I.pbo(np.repeat(r, 3, axis=1), n_splits=8)
    two = np.column_stack([r[:, 0], r[:, 0], r[:, 0] + 0.001])   # a real choice
    assert 0 <= I.pbo(two, n_splits=8)["pbo"] <= 1
