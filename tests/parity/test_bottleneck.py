"""ql.rolling equals bottleneck (moved from tests/test_rolling.py); skipped without it."""
import numpy as np
import pytest

import quantlab as ql

bn = pytest.importorskip("bottleneck")


@pytest.mark.parametrize("stat", ["mean", "std", "min", "max"])
def test_rolling_equals_bottleneck(stat, equities):
    x = equities["close"].values
    got = getattr(ql.rolling, stat)(x, 20)
    ddof = {"ddof": 1} if stat == "std" else {}
    want = getattr(bn, f"move_{stat}")(x, 20, axis=0, **ddof)
    np.testing.assert_allclose(got, want, rtol=1e-9, equal_nan=True)


def test_var_reported_examples_equal_pandas_and_bottleneck():
    x = 1e9 + np.array([1.0, 2, 3])
    np.testing.assert_array_equal(ql.rolling.var(x, 2, ddof=0), [np.nan, 0.25, 0.25])
    np.testing.assert_array_equal(ql.rolling.std(x, 2, ddof=0), [np.nan, 0.5, 0.5])
    np.testing.assert_array_equal(ql.rolling.std(x, 2, ddof=0, min_periods=1),
                                  bn.move_std(x, 2, ddof=0, min_count=1))
    y = 1e4 + np.array([1e-4, 2e-4, 3e-4])
    for w in (2, 3):
        want = [np.nan] * (w - 1) + [np.std(y[t - w + 1:t + 1], ddof=1) for t in range(w - 1, 3)]
        np.testing.assert_allclose(ql.rolling.std(y, w), want, rtol=1e-12, equal_nan=True)


def test_window1_mean_and_sum_are_exact():
    """Was: one-ulp drift (the running sum added x_t - x_{t-1}); pandas and bottleneck
    return x."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(500, 4)) * 10.0 ** rng.integers(-3, 9, size=(500, 4))
    x[rng.random(x.shape) < 0.1] = np.nan
    for f in (ql.rolling.mean, ql.rolling.sum):
        np.testing.assert_array_equal(f(x, 1), x)
        np.testing.assert_array_equal(f(x.astype(np.float32), 1), x.astype(np.float32))
    np.testing.assert_array_equal(ql.rolling.mean(x, 1), bn.move_mean(x, 1, axis=0))


@pytest.mark.parametrize("window", [2, 3, 4, 5, 7])
def test_small_window_sums_leave_no_residue(window):
    """A value that has left the window leaves nothing behind: window 2 is the correctly
    rounded a + b; larger windows are within eps * Σ|x| of the exact sum (math.fsum)
    and never further from it than bottleneck's running sum; a 1e20 spike does not wipe
    out later small values (was: a running Kahan sum add/remove, one ulp per step)."""
    import math

    rng = np.random.default_rng(window)
    x = rng.normal(size=(2000, 3))
    got = ql.rolling.sum(x, window, min_periods=1)
    exact = np.array([[math.fsum(x[max(0, t - window + 1):t + 1, a]) for a in range(3)]
                      for t in range(len(x))])
    if window == 2:
        np.testing.assert_array_equal(got, exact)
    abs_sum = np.array([[math.fsum(np.abs(x[max(0, t - window + 1):t + 1, a]))
                         for a in range(3)] for t in range(len(x))])
    assert (np.abs(got - exact) <= np.finfo(float).eps * abs_sum).all()
    err_bn = np.abs(bn.move_sum(x, window, axis=0, min_count=1) - exact).max()
    assert np.abs(got - exact).max() <= err_bn
    spike = np.r_[1e20, np.arange(1.0, 12.0)]
    want = np.array([math.fsum(spike[max(0, t - window + 1):t + 1]) for t in range(len(spike))])
    np.testing.assert_array_equal(ql.rolling.sum(spike, window, min_periods=1), want)
    np.testing.assert_array_equal(ql.rolling.mean(spike, window, min_periods=1),
                                  want / np.minimum(np.arange(1, 13), window))
