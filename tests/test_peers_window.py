"""ql.rolling on the inputs of bottleneck's and pandas' own window suites.

bottleneck: the arrays of ``bottleneck/tests/util.py`` (NaN/inf patterns, int32/int64,
float32, byte-swapped, 1-D to 4-D, every axis, non-contiguous and strided views) against
its slow reference ``bottleneck.slow.move_*``, every window up to the axis length and a
spread of min_count. Convention differences, by design (module docstring, pandas'):
±inf is missing (bottleneck's move_min/max/rank take it as a value), a window longer
than the series is allowed (bottleneck raises), ``min_periods=0`` is allowed, int input
gives float64, and ``rank`` is pandas' percentile rank (bottleneck's move_rank is in
[-1, 1]: the test maps one onto the other). pandas: the cases of
pandas/tests/window/test_rolling.py with their expected values, and the series of its
moments-consistency suite."""
import numpy as np
import pandas as pd
import pytest

import quantlab as ql

R = ql.rolling


def _bn_arrays(name):
    util = pytest.importorskip("bottleneck.tests.util")
    return [a for a in util.arrays(name) if a.ndim > 0]


def _min_counts(window):
    return sorted({1, (window + 1) // 2, window}) + [None]


@pytest.mark.parametrize("stat", ["sum", "mean", "std", "var", "min", "max"])
def test_rolling_equals_bottleneck_slow_on_its_own_inputs(stat):
    slow = pytest.importorskip("bottleneck.slow")
    ddof = {"ddof": 1} if stat in ("std", "var") else {}
    checked = 0
    for a in _bn_arrays(f"move_{stat}"):
        for axis in range(a.ndim):
            x = np.moveaxis(a, axis, 0)           # quantlab: time on axis 0
            f32 = x.dtype.kind == "f" and x.dtype.itemsize == 4   # '>f4' too
            ref_in = x.astype(np.float32 if f32 else np.float64)
            ref_in = np.where(np.isinf(ref_in), np.nan, ref_in)   # inf is missing
            for window in range(1, x.shape[0] + 1):
                for mc in _min_counts(window):
                    got = getattr(R, stat)(x, window, min_periods=mc)
                    want = getattr(slow, f"move_{stat}")(ref_in, window, mc, axis=0, **ddof)
                    assert got.shape == x.shape
                    assert got.dtype == (np.float32 if f32 else np.float64)
                    rtol = 1e-5 if x.dtype.itemsize <= 4 and x.dtype.kind == "f" else 1e-9
                    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-12,
                                               equal_nan=True,
                                               err_msg=f"{stat} {a!r} axis={axis} "
                                                       f"window={window} min_count={mc}")
                    checked += 1
    assert checked > 1000


@pytest.mark.parametrize("ddof", [0, 2, 3])
def test_var_std_ddof_equal_bottleneck_slow(ddof):
    slow = pytest.importorskip("bottleneck.slow")
    for a in _bn_arrays("move_var")[:60]:
        x = np.moveaxis(a, -1, 0)
        ref_in = np.where(np.isinf(x.astype(np.float64)), np.nan, x.astype(np.float64))
        for window in range(1, x.shape[0] + 1):
            for mc in _min_counts(window):
                for stat in ("var", "std"):
                    np.testing.assert_allclose(
                        getattr(R, stat)(x, window, min_periods=mc, ddof=ddof),
                        getattr(slow, f"move_{stat}")(ref_in, window, mc, axis=0, ddof=ddof),
                        rtol=1e-5, atol=1e-12, equal_nan=True)


def test_rank_equals_bottleneck_move_rank_mapped_to_percentiles():
    """bottleneck's r in [-1, 1] of the last value among the window's c valid values
    (ties averaged) is pandas' percentile rank p = ((r + 1) / 2 · (c - 1) + 1) / c."""
    slow = pytest.importorskip("bottleneck.slow")
    for a in _bn_arrays("move_rank"):
        for axis in range(a.ndim):
            x = np.moveaxis(a, axis, 0).astype(np.float64)
            x = np.where(np.isinf(x), np.nan, x)
            for window in range(1, x.shape[0] + 1):
                cnt = slow.move_sum((~np.isnan(x)).astype(float), window, 1, axis=0)
                for mc in _min_counts(window):
                    r = slow.move_rank(x, window, mc, axis=0)
                    want = ((r + 1) / 2 * (cnt - 1) + 1) / cnt
                    np.testing.assert_allclose(R.rank(np.moveaxis(a, axis, 0), window,
                                                      min_periods=mc),
                                               want, rtol=1e-6 if a.dtype.itemsize <= 4
                                               else 1e-12, equal_nan=True)


def test_bottleneck_regressions_neg_sqrt_window1_and_level():
    """bottleneck's move_std 'square root of a negative' case, its issue #437 (window 1
    must return the input exactly) and its 1e9 + [1, 2, 3] robustness input."""
    a = np.array([0.0011448196318903589] + [0.00028718669878572767] * 4)
    for ddof in (0, 1):
        s = R.std(a, 3, ddof=ddof)
        assert np.isfinite(s[2:]).all()
        np.testing.assert_array_equal(s[3:], 0.0)
        s2 = R.std(np.stack([a, a], axis=1), 3, ddof=ddof)
        np.testing.assert_array_equal(s2[:, 0], s)
    x = np.array([0.008196721311475436, -0.01626016260162607, 0.012396694214876205])
    np.testing.assert_array_equal(R.mean(x, 1, min_periods=1), x)
    for dt in (np.float64, np.float32, np.int64, np.int32):
        y = np.array([1, 2, 3], dtype=dt) + 10**9 if dt in (np.int64, np.int32) else \
            np.array([1, 2, 3], dtype=dt) + dt(1e9)
        want = np.std(y.astype(np.float64)[:2], ddof=1)
        np.testing.assert_allclose(R.std(y, 2)[1:], want, rtol=1e-6 if dt == np.float32 else 0)


# ---- pandas/tests/window/test_rolling.py, expected values as pandas states them ----

VAR_CORRECTNESS = [
    ("var", [99999999999999999, 1, 1, 2, 3, 1, 1], 2, [5e33, 0, 0.5, 0.5, 2, 0]),
    ("std", [99999999999999999, 1, 1, 2, 3, 1, 1], 2,
     [7.071068e16, 0, 0.7071068, 0.7071068, 1.414214, 0]),
    ("var", [99999999999999999, 1, 2, 2, 3, 1, 1], 2, [5e33, 0.5, 0, 0.5, 2, 0]),
    ("std", [99999999999999999, 1, 2, 2, 3, 1, 1], 2,
     [7.071068e16, 0.7071068, 0, 0.7071068, 1.414214, 0]),
    ("std", [1.2e03, 1.3e17, 1.5e17, 1.995e03, 1.990e03], 2,
     [9.192388e16, 1.414214e16, 1.060660e17, 3.535534e00]),
    ("var", [0, 0, 3.16188252e-18, 2.95781651e-16, 2.23153542e-51, 0, 0, 5.39943432e-48,
             1.38206260e-73, 0], 3,
     [3.33250036e-036, 2.88538519e-032, 2.88538519e-032, 2.91622617e-032,
      1.65991678e-102, 9.71796366e-096, 9.71796366e-096, 9.71796366e-096]),
    ("std", [1, -1, 0, 1, 3, 2, -2, 10000000000, 1, 2, 0, -2, 1, 3, 0, 1], 6,
     [1.41421356e00, 1.87082869e00] + [4.08248290e09] * 6
     + [1.72240142e00, 1.75119007e00, 1.64316767e00]),
]


@pytest.mark.parametrize("func,values,window,expected", VAR_CORRECTNESS)
def test_pandas_rolling_var_correctness(func, values, window, expected):
    got = getattr(R, func)(np.array(values, dtype=float), window)[window - 1:]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-55)
    np.testing.assert_array_equal(got == 0, np.array(expected) == 0)


SAME_VALUE_COUNT = [
    ([20, 10, 10, np.inf, 1, 1, 2, 3], 3, 1, [np.nan, 50, 100 / 3, 0, 40.5, 0, 1 / 3, 1]),
    ([20, 10, 10, np.nan, 10, 1, 2, 3], 3, 1, [np.nan, 50, 100 / 3, 0, 0, 40.5, 73 / 3, 1]),
    ([np.nan, 5, 6, 7, 5, 5, 5], 3, 3, [np.nan] * 3 + [1, 1, 4 / 3, 0]),
    ([5, 7, 7, 7, np.nan, np.inf, 4, 3, 3, 3], 3, 3,
     [np.nan] * 2 + [4 / 3, 0] + [np.nan] * 4 + [1 / 3, 0]),
    ([5, 7, 7, 7, np.nan, np.inf, 7, 3, 3, 3], 3, 3,
     [np.nan] * 2 + [4 / 3, 0] + [np.nan] * 4 + [16 / 3, 0]),
    ([5, 7] * 4, 3, 3, [np.nan] * 2 + [4 / 3] * 6),
    ([5, 7, 5, np.nan, 7, 5, 7], 3, 2, [np.nan, 2, 4 / 3] + [2] * 3 + [4 / 3]),
]


@pytest.mark.parametrize("values,window,min_periods,expected", SAME_VALUE_COUNT)
def test_pandas_rolling_var_same_value_count_logic(values, window, min_periods, expected):
    x = np.array(values, dtype=float)
    var = R.var(x, window, min_periods=min_periods)
    std = R.std(x, window, min_periods=min_periods)
    np.testing.assert_allclose(var, expected, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(std, np.sqrt(expected), rtol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(var == 0, np.array(expected) == 0)
    np.testing.assert_array_equal(std == 0, np.array(expected) == 0)


def test_pandas_rolling_small_cases():
    s = np.array([0.00012456, 0.0003, -0.0, -0.0])
    np.testing.assert_array_equal(R.mean(s, 1), s)                   # GH 10319
    big = np.arange(10.0)
    big[2] = -9e33                                                   # GH 11645
    np.testing.assert_array_equal(R.mean(big, 5),
                                  [np.nan] * 4 + [-1.8e33] * 3 + [5.0, 6.0, 7.0])
    np.testing.assert_allclose(R.var(np.array([7.0, 5, 5, 5]), 3),  # GH 37051
                               [np.nan, np.nan, 4 / 3, 0], rtol=1e-15)
    assert R.var(np.array([7.0, 5, 5, 5]), 3)[-1] == 0
    np.testing.assert_allclose(R.std(np.array([0.00000054, 0.00000053, 0.00000054]), 2),
                               [np.nan, 7.071068e-9, 7.071068e-9], rtol=1e-6)
    v = np.arange(1.0, 6.0)
    np.testing.assert_array_equal(R.std(v, 1, min_periods=1), [np.nan] * 5)
    np.testing.assert_array_equal(R.std(v, 1, min_periods=1, ddof=0), [0.0] * 5)
    assert np.isnan(R.std(np.array([np.nan, np.nan, 3, 4, 5]), 3, min_periods=2)[2])
    sr = np.array([1 / 3, 4, 0, 0, 0, 0, 0])                         # GH 42064
    np.testing.assert_array_equal(R.mean(sr, 3)[-3:], 0.0)
    np.testing.assert_array_equal(R.sum(sr, 3)[-3:], 0.0)
    np.testing.assert_allclose(                                      # GH 41053
        R.sum(np.array([0.002, 0.008, 0.005, np.nan, np.nan, np.nan]), 3, min_periods=0),
        [0.002, 0.010, 0.015, 0.013, 0.005, 0.0], rtol=1e-15)


@pytest.mark.parametrize("start,exp_values", [(1, [0.03, 0.0155, 0.0155, 0.011, 0.01025]),
                                              (2, [0.001, 0.001, 0.0015, 0.00366666])])
def test_pandas_rolling_mean_all_nan_window(start, exp_values):
    x = np.array([0.03, 0.03, 0.001, np.nan, 0.002, 0.008] + [np.nan] * 6 + [0.005, 0.2])
    want = [*exp_values, 0.00366666, 0.005, 0.005, 0.008, np.nan, np.nan, 0.005, 0.1025]
    np.testing.assert_allclose(R.mean(x[start:], 5, min_periods=0), want, rtol=1e-5)


MOMENT_SERIES = [[], [np.nan] * 5, [1.0] * 5, list(range(5, 0, -1)), list(range(5)),
                 [np.nan, 1.0, np.nan, 1.0, 1.0], [np.nan, 1.0, np.nan, 2.0, 3.0],
                 [np.nan, 1.0, np.nan, 3.0, 2.0]]


@pytest.mark.parametrize("values", MOMENT_SERIES, ids=range(len(MOMENT_SERIES)))
def test_pandas_moments_consistency_series(values):
    x = np.array(values, dtype=float)
    for window in range(1, 8):
        for mp in sorted({0, 1, 2, window}):
            if mp > window:
                continue
            r = pd.Series(x, dtype=float).rolling(window, min_periods=mp)
            for stat, want in [("sum", r.sum()), ("mean", r.mean()), ("var", r.var()),
                               ("std", r.std()), ("min", r.min()), ("max", r.max()),
                               ("rank", r.rank(pct=True))]:
                np.testing.assert_allclose(getattr(R, stat)(x, window, min_periods=mp),
                                           want.values, rtol=1e-14, equal_nan=True,
                                           err_msg=f"{stat} window={window} mp={mp}")
            np.testing.assert_allclose(R.var(x, window, min_periods=mp, ddof=0),
                                       r.var(ddof=0).values, rtol=1e-14, equal_nan=True)
    for span in (1, 2, 3, 10):
        for mp in (0, 1, 2, 5):
            np.testing.assert_allclose(
                R.ewm_mean(x, span, min_periods=mp),
                pd.Series(x, dtype=float).ewm(span=span, min_periods=mp).mean().values,
                rtol=1e-14, equal_nan=True)
