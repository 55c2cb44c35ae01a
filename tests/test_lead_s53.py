"""Session 53 (lead): the rolling mean of a window of equal values is that value."""
import numpy as np
import pandas as pd
import pytest

import quantlab as ql
from quantlab._kernels import rolling as K

R = ql.rolling


def _flat_panel(dtype=np.float64, n=400, m=70, seed=3):
    """2-decimal prices with flat stretches (halts) of random length, NaN holes and inf."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.uniform(1, 500, (n, m)), 2)
    for a in range(m):
        for _ in range(6):
            t0, k = rng.integers(0, n), rng.integers(2, 60)
            x[t0:t0 + k, a] = x[t0, a]
    x[rng.random((n, m)) < 0.01] = np.nan
    x[rng.random((n, m)) < 0.002] = np.inf
    return x.astype(dtype)


def _all_equal_windows(x, w):
    """(n, m) mask: the window ending at t has min(w, t + 1) rows, all one finite value."""
    n, m = x.shape
    mask = np.zeros((n, m), bool)
    for t in range(n):
        win = x[max(0, t - w + 1):t + 1]
        mask[t] = np.isfinite(win).all(0) & (win == win[-1]).all(0)
    return mask


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("w,minp", [(5, 5), (20, 20), (7, 1), (20, 3), (1, 1), (600, 1)])
def test_mean_of_a_window_of_equal_values_is_the_value(dtype, w, minp):
    x = _flat_panel(dtype)
    got = R.mean(x, w, min_periods=minp, threads=1)
    eq = _all_equal_windows(x, w)
    rows = np.minimum(np.arange(len(x)) + 1, w)[:, None] >= minp
    assert (eq & rows).sum() > 50                        # the property is exercised
    np.testing.assert_array_equal(got[eq & rows], x[eq & rows])
    np.testing.assert_array_equal(np.isnan(got[eq & ~rows]), True)  # below min_periods
    # every other window: the compensated sum / n, as pandas within rounding
    want = pd.DataFrame(x.astype(np.float64)).replace([np.inf, -np.inf], np.nan).rolling(
        w, min_periods=minp).mean().to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-14,
                               equal_nan=True)


@pytest.mark.parametrize("w", [3, 20, 64])
def test_equal_value_runs_carry_across_row_ranges_and_threads(w):
    """Row ranges start at multiples of the window (how the pool splits rows): the run
    of equal values ending before the range is counted from the rows before it, so the
    bits are those of one whole run."""
    x = _flat_panel(n=1000, m=130)
    whole = K.roll_sum(x, w, w, True)
    for start in range(w, 1000, 7 * w):
        part = np.full_like(x, -1.0)
        K.roll_sum(x, w, w, True, out=part, start=start, stop=min(start + 3 * w, 1000))
        sl = slice(start, min(start + 3 * w, 1000))
        np.testing.assert_array_equal(part[sl], whole[sl])
    np.testing.assert_array_equal(R.mean(x, w, threads=2), whole)


def test_a_flat_stretch_gives_equal_fast_and_slow_averages():
    """MA crossover on a halted price: the 5- and 20-bar averages of a flat stretch are
    equal, so ``fast > slow`` does not flicker (it did for 15% of 2-decimal prices)."""
    prices = np.round(np.random.default_rng(1).uniform(1, 500, 300), 2)
    x = np.repeat(prices[None, :], 40, axis=0)            # 300 assets, each flat 40 bars
    fast, slow = R.mean(x, 5), R.mean(x, 20)
    np.testing.assert_array_equal(fast[19:], slow[19:])
    assert not (fast[19:] > slow[19:]).any()


def test_the_sum_is_unchanged():
    """Only the mean returns the value: a sum of equal values stays the compensated sum
    (pandas' roll_sum has no such rule)."""
    x = np.full((30, 3), 0.1)
    np.testing.assert_array_equal(R.sum(x, 3)[2:], pd.DataFrame(x).rolling(3).sum()
                                  .to_numpy()[2:])


# ---- `make test` and `make notebooks` pin NumPy's and OpenBLAS's code paths ----------

def _pinned_env():
    """The PINNED variables of the Makefile (NAME=value words)."""
    import re
    from pathlib import Path

    text = (Path(__file__).parents[1] / "Makefile").read_text()
    line = re.search(r"^PINNED := (.*)$", text, re.M).group(1)
    return dict(word.split("=", 1) for word in line.split())


@pytest.mark.skipif(__import__("platform").machine().lower() not in ("x86_64", "amd64"),
                    reason="the pinned code paths are x86-64's")
def test_the_pinned_numerics_are_understood_by_numpy_and_openblas():
    """NumPy names its dispatch targets per release (AVX512_SKX in 1.x, X86_V4 in 2.4):
    a name it does not know is skipped with an ImportWarning and the stored notebook
    outputs would silently depend on the machine again (nbval fails on AVX-512 CPUs)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, **_pinned_env()}
    assert set(_pinned_env()) == {"NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE"}
    code = ("import numpy, threadpoolctl, numpy.linalg\n"
            "from numpy._core._multiarray_umath import __cpu_features__ as f\n"
            "assert not f['X86_V4'], 'AVX-512 loops still on'\n"
            "print(sorted({i.get('architecture') for i in threadpoolctl.threadpool_info()"
            " if i['internal_api'] == 'openblas'}))")
    out = subprocess.run([sys.executable, "-W", "error::ImportWarning", "-c", code], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "['Haswell']", out.stdout
