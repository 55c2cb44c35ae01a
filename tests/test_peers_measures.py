"""quantlab.measures on the inputs and expected values of antropy's and nolds' own test
suites (antropy tests/test_entropy.py, test_fractal.py, tests/utils.py; nolds
test_measures.py), and their edge inputs. The stated values need no peer; comparisons
with the installed peers skip without them.

Differences found and kept (documented or the peer's):
- dfa of a series of <= 70 points: nolds' default sizes 4..9 (antropy fits one or two
  sizes and returns 0.0 for its 25-point PPG signal: a slope through one point).
- katz_fd of float32 input is computed in float64 (antropy stays float32: ~2e-7 apart);
  nolds' float32 datasets (Lorenz) likewise: hurst there differs from nolds by ~2e-8.
- NaN inside or ±inf raise (antropy returns -0.0 or a number for sample/permutation
  entropy of such series, nolds NaN)."""
import math
from fractions import Fraction

import numpy as np
import pytest

import quantlab as ql

m = ql.measures


def _antropy_utils():
    """antropy tests/utils.py: np.random.seed(1234567) and its draws, in its order."""
    np.random.seed(1234567)
    random_ts = np.random.rand(3000)
    normal_ts = np.random.normal(size=3000)
    np.random.rand(6000)                                   # RANDOM_TS_LONG
    sine = np.sin(2 * np.pi * 1 * np.arange(3000) / 100)
    return random_ts, normal_ts, sine, np.arange(3000)


RANDOM_TS, NORMAL_TS, PURE_SINE, ARANGE = _antropy_utils()
BANDT_PERM = [4, 7, 9, 10, 6, 11, 3]
TEST_DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
               np.uint8, np.uint16, np.uint32, np.uint64]


def test_antropy_stated_values():
    assert round(m.permutation_entropy(RANDOM_TS, order=3, delay=1, normalize=True), 1) == 1.0
    assert round(m.permutation_entropy(BANDT_PERM, order=2), 3) == 0.918   # Bandt & Pompe
    assert round(m.permutation_entropy(BANDT_PERM, order=3), 3) == 1.522
    assert round(m.sample_entropy(RANDOM_TS, order=2), 3) == 2.192
    assert round(m.katz_fd([0.0, 0.0, 2.0, -2.0, 0.0, -1.0, -1.0, 0.0]), 3) == 5.783
    assert round(m.dfa(RANDOM_TS), 4) == 0.4976
    assert round(m.dfa(PURE_SINE), 4) == 1.5848
    # m-length matches but no (m+1)-length ones: inf; no m-length match: NaN (undefined)
    assert m.sample_entropy(np.array([0.0, 10.0, 0.0, 20.0]), order=1, tolerance=0.1) == np.inf
    assert np.isnan(m.sample_entropy(np.array([1.0, 2.0, 3.0, 4.0]), order=1, tolerance=0.001))


@pytest.mark.parametrize("kw,err", [(dict(order=4, delay=3), ValueError),
                                    (dict(order=3, delay=0.5), ValueError),
                                    (dict(order=1, delay=1), ValueError),
                                    (dict(order=2, delay=0), ValueError)])
def test_antropy_permutation_entropy_errors(kw, err):
    with pytest.raises(err, match="order|delay|too short"):
        m.permutation_entropy(BANDT_PERM, **kw)


def test_antropy_sample_entropy_bad_tolerance_is_a_type_error():
    with pytest.raises(TypeError, match="tolerance"):
        m.sample_entropy(RANDOM_TS, order=2, tolerance="bad")


@pytest.mark.parametrize("dtype", TEST_DTYPES, ids=lambda d: np.dtype(d).name)
def test_antropy_dtypes_and_read_only_input(dtype):
    """antropy's test_notwritable_dtypes: every dtype, a read-only array. Values equal
    those of the same numbers as float64 (shift-invariant measures: integers exactly)."""
    x = RANDOM_TS[:600] * (100 if np.dtype(dtype).kind in "iu" else 1)
    x = x.astype(dtype)
    x.flags.writeable = False
    f64 = x.astype(np.float64)
    for f in (m.permutation_entropy, m.sample_entropy, m.katz_fd, m.higuchi_fd, m.dfa,
              m.hurst, m.lyapunov_r):
        got, want = f(x), f(f64)
        assert got == pytest.approx(want, rel=1e-9, nan_ok=True), f.__name__


@pytest.mark.parametrize("name,x", [("random", RANDOM_TS), ("normal", NORMAL_TS),
                                    ("sine", PURE_SINE), ("arange", ARANGE)])
def test_antropy_suite_series_equal_installed_antropy(name, x):
    ant = pytest.importorskip("antropy")
    assert m.katz_fd(x) == pytest.approx(ant.katz_fd(x), rel=1e-12)
    assert m.higuchi_fd(x) == pytest.approx(ant.higuchi_fd(x), rel=1e-9)
    assert m.dfa(x) == pytest.approx(ant.detrended_fluctuation(x), rel=1e-9)
    assert m.permutation_entropy(x) == pytest.approx(ant.perm_entropy(x), rel=1e-12, abs=1e-15)
    assert m.sample_entropy(x) == pytest.approx(ant.sample_entropy(x), rel=1e-12, abs=1e-15)


def test_nolds_sampen_base_values():
    """nolds' hand-counted cases (template matches listed in its test)."""
    assert m.sample_entropy([0, 1, 5, 4, 1, 0, 1, 5, 3], 2) == pytest.approx(-np.log(1 / 2))
    assert m.sample_entropy(np.array([1, 2, 1, 2.4, 1, 4]), 1, tolerance=0.5) == \
        pytest.approx(-np.log(2 / 4))
    x = np.array([0, 20, 1, 2, 3, 4, 40, 60, 1.4, 2.4, 3.4, 80, 100, 1.4, 2.4, 3.4, 4, 120,
                  140, 180])
    assert m.sample_entropy(x, 3, tolerance=0.5) == pytest.approx(-np.log(1 / 4))


def _nolds_seq(seed):
    np.random.seed(seed)
    seq, x = [], np.random.random()
    for _ in range(10000):
        x = -x + np.random.random() - 0.5
        seq.append(x)
    return np.array(seq), np.random.randn(10000)


def test_nolds_hurst_and_dfa_basic_ranges():
    neg, noise = _nolds_seq(2)
    assert m.hurst(neg) < 0.3
    assert m.hurst(noise) == pytest.approx(0.5, abs=0.1)
    assert m.hurst(np.cumsum(noise)) > 0.9
    neg, noise = _nolds_seq(4)
    assert m.dfa(neg, overlap=True) < 0.3
    assert 0.3 < m.dfa(noise, overlap=True) < 0.7
    assert m.dfa(np.cumsum(noise), overlap=True) > 0.7


def test_nolds_lyapunov_sign_on_the_logistic_map():
    for r, sign in zip([2.5, 3.4, 3.7, 4.0], [-1, -1, 1, 1]):
        x, log = 0.1, []
        for _ in range(100):
            x = r * x * (1 - x)
            log.append(x)
        lr = m.lyapunov_r(np.array(log, dtype="float32"), emb_dim=6, lag=2, min_tsep=10,
                          trajectory_len=20)
        assert int(np.sign(lr)) == sign, r


def test_nolds_lyapunov_minimum_length():
    """nolds' test_lyap_r_limits: (emb_dim - 1)·lag + 1 + trajectory_len - 1 +
    2·min_tsep + 1 points are needed and enough."""
    rng = np.random.RandomState(0)
    for _ in range(10):
        kw = dict(emb_dim=rng.randint(1, 10), lag=rng.randint(1, 6),
                  min_tsep=rng.randint(0, 5), trajectory_len=rng.randint(2, 10))
        need = (kw["emb_dim"] - 1) * kw["lag"] + kw["trajectory_len"] + 2 * kw["min_tsep"] + 1
        for n in range(max(1, need - 5), need + 5):
            data = rng.random_sample(n)
            if n < need:
                with pytest.raises(ValueError, match="needs at least"):
                    m.lyapunov_r(data, **kw)
            else:
                assert np.isfinite(m.lyapunov_r(data, **kw)), (kw, n)


def _exact_dfa_logs(x, nvals):
    """log F(n) of non-overlapping boxes in rational arithmetic (-inf where F = 0)."""
    xs = [Fraction(v) for v in x]
    mu = sum(xs) / len(xs)
    walk, s = [], Fraction(0)
    for v in xs:
        s += v - mu
        walk.append(s)
    logs = []
    for n in nvals:
        t = range(n)
        tm = Fraction(n - 1, 2)
        stt = sum((i - tm) ** 2 for i in t)
        res = []
        for st in range(0, len(walk) - n + 1, n):
            w = walk[st:st + n]
            wm = sum(w) / n
            b = sum((i - tm) * (w[i] - wm) for i in t) / stt
            res.append(sum((w[i] - wm - b * (i - tm)) ** 2 for i in t) / n)
        f = sum(res) / len(res)
        logs.append(0.5 * math.log(f) if f else -math.inf)
    return np.array(logs)


def test_dfa_of_a_step_leaves_out_exactly_linear_profiles():
    """A step (150 zeros, 150 ones): for box sizes dividing 150 every box of the profile
    is a straight line, F(n) = 0 exactly, log F = -inf. quantlab leaves those sizes out
    (antropy's rule for F = 0) and equals the rational-arithmetic fit of the others;
    nolds (10.69) and antropy (8.46) fit the rounding noise of those boxes instead."""
    x = np.r_[np.zeros(150), np.ones(150)]
    nvals = [4, 5, 6, 8, 9, 11, 14, 17, 20, 24, 29]       # the default for 300 points
    logs = _exact_dfa_logs(x, nvals)
    ok = np.isfinite(logs)
    assert ok.sum() == 9                                   # 5 and 6 divide 150
    want = np.polyfit(np.log(nvals)[ok], logs[ok], 1)[0]
    assert m.dfa(x) == pytest.approx(want, rel=1e-12)
    assert m.dfa(x) == pytest.approx(1.1537327732586, rel=1e-12)


def test_constant_and_short_series_match_the_peers_conventions():
    for c in (np.zeros(300), np.full(300, 5.0), np.full(300, 7)):
        assert np.isnan(m.hurst(c)) and np.isnan(m.dfa(c)) and np.isnan(m.higuchi_fd(c))
        assert np.isnan(m.katz_fd(c)) and np.isnan(m.sample_entropy(c))
        assert m.lyapunov_r(c) == -np.inf                   # nolds: -inf
        assert m.permutation_entropy(c) == 0.0
    for f in (m.hurst, m.dfa, m.higuchi_fd, m.katz_fd, m.lyapunov_r, m.sample_entropy,
              m.permutation_entropy):
        with pytest.raises(ValueError, match="NaN inside"):
            f(np.r_[np.ones(150), np.nan, np.arange(149.0)])
        with pytest.raises(ValueError, match="infinite"):
            f(np.r_[np.ones(150), np.inf, np.arange(149.0)])
        with pytest.raises(ValueError, match="all NaN"):
            f(np.full(300, np.nan))
        with pytest.raises(ValueError, match="empty"):
            f(np.array([]))
