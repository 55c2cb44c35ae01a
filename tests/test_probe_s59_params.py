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
