"""The information measures on the edge inputs of PyInform's and antropy's own suites:
a single-symbol (constant) series, and pairs whose sample is exactly independent.
Entropy and mutual information are >= 0 by definition and exactly 0 on these inputs
(PyInform, antropy and the NumPy twin in tests/reference give 0.0)."""
import numpy as np
import pytest

import quantlab as ql
import reference as ref

m = ql.measures

# lengths where log2(n) - Σ c·log2(c) / n left ±1.8e-15 for a single symbol (10, 11,
# 13, 29, 47, 500: negative; 48, 49, 58, 89, 90: positive), and some where it did not
LENGTHS = [2, 3, 10, 11, 13, 29, 47, 48, 49, 58, 89, 90, 100, 500, 777, 1000, 2047]


@pytest.mark.parametrize("n", LENGTHS)
def test_shannon_entropy_of_a_constant_series_is_exactly_zero(n):
    """Was -1.78e-15 bits for 500 equal values (a negative entropy), +1.78e-15 for 48;
    the module docstring promises 0 for a constant series."""
    for x, kw in [(np.zeros(n, dtype=int), {}), (np.full(n, 7, dtype=np.uint8), {}),
                  (np.ones(n, dtype=bool), {}), (np.full(n, 2.5), {}),
                  (np.full(n, 2.5), {"binning": "quantile"}), (np.full(n, -1e9), {"bins": 3})]:
        assert ref.entropy_bits(np.zeros(n, dtype=int)) == 0.0
        assert m.shannon_entropy(x, **kw) == 0.0, (x.dtype, kw)
    roll = m.rolling_shannon_entropy(np.zeros(n + 5, dtype=int), n)
    np.testing.assert_array_equal(roll[n - 1:], 0.0)


def _independent_sample(rng):
    """x, y whose joint counts are exactly c_x · c_y / n: the plug-in I(X; Y) is 0."""
    bx, by = rng.integers(2, 5, 2)
    px, py, rep = rng.integers(1, 5, bx), rng.integers(1, 5, by), rng.integers(1, 40)
    cells = [(i, j) for i in range(bx) for j in range(by) for _ in range(px[i] * py[j] * rep)]
    x, y = np.array(cells).T
    p = rng.permutation(x.size)
    return x[p], y[p]


def test_mutual_information_is_never_negative():
    """Was negative (down to -5.3e-15 bits) for 122 of 300 exactly independent samples,
    and -1.78e-15 for a constant x: H(X) + H(Y) - H(X, Y) left rounding below 0."""
    rng = np.random.default_rng(0)
    got = []
    for _ in range(300):
        x, y = _independent_sample(rng)
        assert ref.mutual_information(x, y) == pytest.approx(0.0, abs=1e-12)
        got.append(m.mutual_information(x, y))
        got.append(m.mutual_information(x.astype(float) + 0.5, y.astype(float), bins=4))
    assert min(got) >= 0.0
    assert max(got) < 1e-12
    for n in (500, 777, 1000):
        y = rng.integers(0, 3, n)
        assert m.mutual_information(np.zeros(n, dtype=int), y) == 0.0
        assert m.mutual_information(y, np.zeros(n, dtype=int)) == 0.0
    x, y = _independent_sample(np.random.default_rng(3))
    x, y = np.tile(x, 3), np.tile(y, 3)
    roll = m.rolling_mutual_information(x.astype(float), y.astype(float), x.size // 3,
                                        bins=5)
    assert np.nanmin(roll) >= 0.0


def test_constant_series_equal_pyinform():
    pyinform = pytest.importorskip("pyinform")
    rng = np.random.default_rng(1)
    for n in (500, 1000):
        x, y = np.zeros(n, dtype=int), rng.integers(0, 3, n)
        d = pyinform.Dist(np.bincount(x).tolist())
        assert m.shannon_entropy(x) == pyinform.shannon.entropy(d) == 0.0
        assert m.mutual_information(x, y) == pyinform.mutual_info(x, y) == 0.0
