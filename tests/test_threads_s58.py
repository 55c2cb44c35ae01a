"""Session 58 (issue #32, threads on a 2-core KVM guest): the caller's row block leads.

The caller starts its block at once while a pool thread is still waking, so
``_threads.by_rows`` gives the first block (the caller's) about ``LEAD`` more work. These
tests check the cut and that results keep the bits of one thread; no timings here
(benchmarks/run.py --only threads has them)."""
import numpy as np
import pytest

from quantlab import _threads, rolling


def _cuts(monkeypatch):
    seen = []
    real_run = _threads.run
    monkeypatch.setattr(_threads, "run", lambda fn, parts, n: (seen.append(list(parts)),
                                                               real_run(fn, parts, n)))
    return seen


def test_the_callers_row_block_is_longer_by_about_lead(monkeypatch):
    """2520 x 1000 rolling mean (cost 2 copies a value) on 2 threads: 126 windows of 20
    rows, ~40,000 copies each, so LEAD (90,000) is 2 windows more for the caller: rows
    [0, 1300) and [1300, 2520), not the halves [0, 1260) and [1260, 2520)."""
    monkeypatch.setattr(_threads, "LEAD", 90_000)
    seen = _cuts(monkeypatch)
    x = np.random.default_rng(0).normal(0.0, 0.01, (2520, 1000))
    got = rolling.mean(x, 20, threads=2)
    assert seen == [[(0, 65), (65, 126)]]
    assert got.tobytes() == rolling.mean(x, 20, threads=1).tobytes()


@pytest.mark.parametrize("units,k,work", [(126, 2, 5.04e6), (126, 3, 7.56e6), (2, 2, 10.0),
                                          (3, 2, 1.0), (4, 2, 1.0), (7, 3, 1.0),
                                          (1000, 7, 1e4), (50, 2, 1e12), (9, 4, 0.0)])
def test_lead_keeps_a_contiguous_cover_of_nonempty_blocks(units, k, work):
    """Whatever the work and block count: the blocks still cover [0, units) in order,
    none empty, the first at least as long as before and at most 1.5 times, the others
    within one unit of each other."""
    edges = [units * i // k for i in range(k + 1)]
    parts = list(zip(edges, edges[1:]))
    got = _threads._lead(parts, units, work)
    assert len(got) == k and got[0][0] == 0 and got[-1][1] == units
    assert all(a[1] == b[0] for a, b in zip(got, got[1:]))
    sizes = [hi - lo for lo, hi in got]
    assert min(sizes) >= 1
    assert parts[0][1] <= sizes[0] <= parts[0][1] * 1.5
    assert max(sizes[1:]) - min(sizes[1:]) <= 1


@pytest.mark.parametrize("stat", ["sum", "mean", "var", "std", "zscore", "min", "max"])
@pytest.mark.parametrize("threads", [2, 3, 5])
def test_led_row_blocks_give_the_bits_of_one_thread(monkeypatch, stat, threads):
    """A LEAD far beyond the panel's work (the first block then takes half again its
    length) and one of a single window: each threaded result has one thread's bits."""
    monkeypatch.setattr(_threads, "MIN_WORK", 1)
    monkeypatch.setattr(_threads, "MIN_BLOCK", 1)
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 1.0, (700, 9))
    x[rng.random(x.shape) < 0.05] = np.nan
    x[100:180, 2] = np.nan
    x[300:340, 4] = 2.5
    f = getattr(rolling, stat)
    seen = _cuts(monkeypatch)
    for lead in (10**12, 1):
        monkeypatch.setattr(_threads, "LEAD", lead)
        for window in (7, 20):
            one = f(x, window, min_periods=1, threads=1)
            seen.clear()
            got = f(x, window, min_periods=1, threads=threads)
            assert got.tobytes() == one.tobytes()
            (parts,) = seen
            assert len(parts) == threads
            sizes = [hi - lo for lo, hi in parts]
            assert (sizes[0] > max(sizes[1:])) == (lead > 1)
