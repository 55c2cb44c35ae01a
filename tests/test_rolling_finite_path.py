"""The finite path of the sum / mean / var / std / zscore kernels (issue #32: rolling std
at 3x bottleneck single-threaded). Where a block of `window` rows and the one before it
hold no NaN or ±inf in a group of 64 columns, the kernels skip the per-value count and
missing-value work. No pass looks for NaN first: a group tries the finite path when its
previous block was finite and is redone on the general path when its sums show a NaN or
±inf. These tests pin that the path is taken on clean data, that it never changes a bit
(whichever path a group takes, tried or redone) and that its values are right."""
import numpy as np
import pytest
import reference as ref

import quantlab as ql
from quantlab._kernels import LEVELS, cpu_level, load

GROUP = 64
STATS = ["sum", "mean", "var", "std", "zscore"]


def _panel(n=230, m=150, dtype=np.float64, seed=5):
    """Normal noise at levels 1 .. 1e6, a constant column and a trending one."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, m)) * np.logspace(-2, 2, m) + np.logspace(0, 6, m)
    x[:, 3] = 42.0                                   # variance exactly 0
    x[:, 70] = np.cumsum(rng.uniform(1e5, 2e5, n))   # trending level
    return x.astype(dtype)


def _call(stat, x, window, minp, ddof):
    f = getattr(ql.rolling, stat)
    kw = {"ddof": ddof} if stat in ("var", "std", "zscore") else {}
    return f(x, window, min_periods=minp, threads=1, **kw)


@pytest.mark.parametrize("var", [True, False])
def test_rolling_std_clean_panel_takes_the_finite_path_after_the_first_block(var):
    """Was: every value paid the general path's count, shift and NaN selects (std 3x
    bottleneck single-threaded, issue #32); a clean block now takes the finite path."""
    k = load("rolling")
    x = _panel()
    plan = k._finite_plan(x, 20, var)
    assert plan.shape == (12, 3)
    assert not plan[0].any()          # the first block has no previous block
    assert plan[1:].all()
    x[100, 70] = np.nan               # group 1, block 5: that block and the next
    x[5, 149] = np.inf                # group 2, blocks 0 and 1 (±inf is missing too)
    plan = k._finite_plan(x, 20, var)
    want = np.ones((12, 3), np.uint8)
    want[0] = 0
    want[5:7, 1] = 0
    want[1, 2] = 0
    np.testing.assert_array_equal(plan, want)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("window,minp", [(1, None), (2, None), (5, 3), (20, None), (20, 0),
                                         (64, None), (500, 2)])
def test_rolling_finite_path_gives_the_bits_of_the_general_path(dtype, window, minp):
    """A NaN in one column sends its group of 64 columns to the general path in the
    blocks it touches: every other column must keep the bits it has on the finite path,
    so results never depend on a NaN elsewhere, a column split or the thread count."""
    x = _panel(dtype=dtype)
    holed = x.copy()
    holed[[37, 120, 200], [10, 80, 140]] = np.nan    # one hole per group
    keep = np.ones(x.shape[1], bool)
    keep[[10, 80, 140]] = False
    k = load("rolling")
    assert not k._finite_plan(holed, window).all() or window >= x.shape[0]
    for stat in STATS:
        for ddof in (0, 1):
            clean = np.ascontiguousarray(_call(stat, x, window, minp, ddof)[:, keep])
            other = np.ascontiguousarray(_call(stat, holed, window, minp, ddof)[:, keep])
            np.testing.assert_array_equal(other.view(np.uint8), clean.view(np.uint8),
                                          err_msg=f"{stat} ddof={ddof}")


@pytest.mark.parametrize("window,minp", [(3, None), (20, None), (20, 5), (64, 64)])
def test_rolling_finite_path_matches_numpy_two_pass_and_compensated_sums(window, minp):
    """Values on the finite path: var/std/zscore vs the two-pass NumPy reference, sum /
    mean vs math.fsum-exact sums (the kernels are compensated), levels up to 1e6."""
    x = _panel()
    eff = window if minp is None else minp
    want_var, want_dev = ref.rolling_var_two_pass(x, window, eff, 1)
    np.testing.assert_allclose(_call("var", x, window, minp, 1), want_var, rtol=1e-9,
                               atol=0, equal_nan=True)
    np.testing.assert_allclose(_call("std", x, window, minp, 1), np.sqrt(want_var),
                               rtol=1e-9, atol=0, equal_nan=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        want_z = np.where(want_var > 0, want_dev / np.sqrt(want_var), np.nan)
    np.testing.assert_allclose(_call("zscore", x, window, minp, 1), want_z, rtol=1e-8,
                               atol=1e-8, equal_nan=True)
    import math
    n, m = x.shape
    want_sum = np.full(x.shape, np.nan)
    for t in range(n):
        rows = x[max(0, t - window + 1):t + 1]
        if len(rows) >= eff:
            want_sum[t] = [math.fsum(rows[:, a]) for a in range(m)]
    np.testing.assert_allclose(_call("sum", x, window, minp, 1), want_sum, rtol=4e-15,
                               atol=0, equal_nan=True)
    cnt = np.minimum(np.arange(1, n + 1), window)[:, None]
    np.testing.assert_allclose(_call("mean", x, window, minp, 1), want_sum / cnt,
                               rtol=4e-15, atol=0, equal_nan=True)


@pytest.mark.parametrize("missing", [np.nan, np.inf, -np.inf])
def test_rolling_var_level_shift_at_a_block_start_with_its_first_row_missing(missing):
    """The shared shift is x[b0] only where x[b0] is finite; with it missing the general
    path shifts by values of the window (a level shift of 1e9 -> 1e3 right there)."""
    rng = np.random.default_rng(2)
    n, w = 120, 20
    x = np.where(np.arange(n)[:, None] < 40, 1e9, 1e3) + rng.normal(size=(n, 3)) * 1e-2
    x[40, :] = missing                 # the first row of the block at 40
    x[60, 1] = missing
    want_var, _ = ref.rolling_var_two_pass(x, w, 5, 1)
    got = ql.rolling.var(x, w, min_periods=5, threads=1)
    np.testing.assert_allclose(got, want_var, rtol=1e-8, atol=0, equal_nan=True)
    assert np.isfinite(got[41:]).all() and (got[60:, :] < 1e-3).all()


def test_rolling_finite_path_same_bits_in_every_simd_build_and_row_range():
    """The path is chosen by data and fixed groups of columns only: SIMD builds and row
    ranges (how threads split the work) give the same bits."""
    levels = [lv for lv in LEVELS if LEVELS[lv] <= LEVELS[cpu_level()]]
    x = _panel(n=300, m=130)
    x[150, 100] = np.nan
    base = load("rolling", "baseline")
    want = {(name, args): getattr(base, name)(x, *args)
            for name, args in [("roll_sum", (20, 20, True)), ("roll_var", (20, 20, 1, 1)),
                               ("roll_var", (20, 5, 0, 2))]}
    for lv in levels:
        mod = load("rolling", lv)
        for (name, args), ref_out in want.items():
            whole = getattr(mod, name)(x, *args)
            np.testing.assert_array_equal(whole.view(np.uint8), ref_out.view(np.uint8))
            part = np.full_like(x, -1.0)
            for start, stop in [(0, 140), (140, 300)]:   # multiples of the window
                getattr(mod, name)(x, *args, out=part, start=start, stop=stop)
            np.testing.assert_array_equal(part.view(np.uint8), ref_out.view(np.uint8))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("window,minp", [(20, None), (20, 3), (7, 0)])
def test_rolling_failed_finite_try_is_redone_with_the_bits_of_the_general_path(dtype, window,
                                                                               minp):
    """A group tries the finite path when its previous block was finite (or unknown: the
    first block of a row range) and is redone on the general path when a NaN / ±inf
    shows in the block (head) or the one before (tail), or its sums overflow. Every
    column must keep the bits of the general path: poison columns (a NaN in every
    block) send each group to the general path always, and the other columns are
    compared with the same columns run without them, whole and by row ranges."""
    n, m = 300, 130                   # groups 0-63, 64-127, 128-129
    x = _panel(n, m, dtype)
    x[6 * window + 3, 5] = np.nan     # in the tail of the range starting at block 7
    x[7 * window + 1, 70] = np.inf    # in the head of block 7
    x[8 * window - 1, 71] = -np.inf   # the last row of block 7
    x[9 * window + 2, 129] = dtype(3e38) if dtype == np.float32 else 1e308
    x[9 * window + 3, 129] = x[9 * window + 2, 129]   # finite values, sums overflow
    x[0, 100] = np.nan                # first block: general anyway
    poison = [0, 64, 128]
    keep = np.setdiff1d(np.arange(m), poison)
    holed = x.copy()
    holed[::3, poison] = np.nan       # every block of every group: the general path
    k = load("rolling")
    assert not k._finite_plan(holed, window).any()
    minp = window if minp is None else minp
    calls = [("roll_sum", (window, minp, True)), ("roll_sum", (window, minp, False))] + [
        ("roll_var", (window, minp, ddof, mode)) for ddof in (0, 1) for mode in (0, 1, 2)]
    ranges = [(0, n), (0, 7 * window), (7 * window, 9 * window), (9 * window, n)]
    for name, args in calls:
        f = getattr(k, name)
        want = f(holed, *args)[:, keep]
        got = f(x, *args)
        parts = np.full_like(x, -1.0)
        for start, stop in ranges:
            f(x, *args, out=parts, start=start, stop=stop)
        for res in (got, parts):
            np.testing.assert_array_equal(np.ascontiguousarray(res[:, keep]).view(np.uint8),
                                          np.ascontiguousarray(want).view(np.uint8),
                                          err_msg=f"{name}{args}")
    plan = k._finite_plan(x, window)
    assert not plan[7, 0] and not plan[7:9, 1].any() and plan[8, 0] and plan[9, 1]
    if dtype == np.float64:           # Σd² overflows in block 9 and as block 10's tail
        assert not plan[9:11, 2].any() and plan[11, 2]
