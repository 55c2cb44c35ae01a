"""Issue #32 (threads): the nogil kernels over column blocks on a thread pool give the
bits of one thread; threads= and $QUANTLAB_THREADS are checked; small inputs and dask's
worker threads stay on one thread. No timings here (benchmarks/run.py has them)."""
import os
import threading

import dask.array as dsa
import numpy as np
import pytest
import xarray as xr

import quantlab as ql
from quantlab import _threads, measures, metrics, rolling

ROLLING = ["sum", "mean", "var", "std", "zscore", "min", "max", "ewm_mean", "rank"]


@pytest.fixture
def tiny_blocks(monkeypatch):
    """Thresholds at 1 value: test-sized panels are cut into many blocks."""
    monkeypatch.setattr(_threads, "MIN_WORK", 1)
    monkeypatch.setattr(_threads, "MIN_BLOCK", 1)
    monkeypatch.delenv("QUANTLAB_THREADS", raising=False)


def _panel(m, dtype=np.float64, n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0005, 0.02, (n, m))
    x[rng.random((n, m)) < 0.05] = np.nan      # scattered holes
    x[:40, 0] = np.nan                         # a leading gap
    if m > 2:
        x[100:160, 2] = np.nan                 # a long gap
        x[50, m - 1] = np.inf                  # an inf (missing for rolling)
    return x.astype(dtype)


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()          # bit for bit, NaN payloads included


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m", [1, 7, 33])
@pytest.mark.parametrize("stat", ROLLING)
def test_rolling_with_threads_gives_the_bits_of_one_thread(tiny_blocks, stat, m, dtype):
    x = _panel(m, dtype)
    f = getattr(rolling, stat)
    one = f(x, 20, min_periods=5, threads=1)
    for threads in (2, 3):
        _same(f(x, 20, min_periods=5, threads=threads), one)
    # the pool really cut it (m > 1): more than one block for 2 threads
    assert len(_threads.blocks(m, x.size, 2)[1]) == min(m, 2 * _threads.PER_THREAD)


def test_rolling_dataarray_and_third_dim_with_threads_equal_one_thread(tiny_blocks):
    x = _panel(15).reshape(300, 3, 5)
    da = xr.DataArray(x, dims=("time", "asset", "field"), name="r", attrs={"u": 1})
    one = rolling.std(da, 10, threads=1)
    two = rolling.std(da, 10, threads=2)
    _same(two.values, one.values)
    assert two.dims == da.dims and two.name == "r" and two.attrs == {"u": 1}
    # asset-major DataArray (time not first): the same values
    _same(rolling.zscore(da.transpose("asset", "field", "time"), 10, threads=2)
          .transpose(*da.dims).values, rolling.zscore(da, 10, threads=1).values)


def test_measure_with_threads_gives_the_bits_of_one_thread(tiny_blocks, monkeypatch):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 9)).cumsum(axis=0)
    x[30, 4] = np.nan
    da = xr.DataArray(x, dims=("time", "asset"))
    for fn, kw in [(measures.rolling_katz_fd, {}), (measures.rolling_hurst, {}),
                   (measures.rolling_sample_entropy, {"order": 2})]:
        monkeypatch.setenv("QUANTLAB_THREADS", "1")
        one = fn(da, 64, **kw)
        monkeypatch.setenv("QUANTLAB_THREADS", "2")
        _same(fn(da, 64, **kw).values, one.values)
        assert np.isfinite(one.values[-1]).sum() >= 8     # real values, not all NaN


@pytest.mark.parametrize("m", [1, 7, 33])
def test_metrics_summary_with_threads_gives_the_bits_of_one_thread(tiny_blocks,
                                                                   monkeypatch, m):
    r = _panel(m, n=500)
    r[np.isinf(r)] = 0.01
    b = np.random.default_rng(9).normal(0.0004, 0.01, 500)
    out = {}
    for t in ("1", "2"):
        monkeypatch.setenv("QUANTLAB_THREADS", t)
        s = metrics.summary(r, benchmark=b)
        singles = [metrics.sharpe_ratio(r), metrics.sortino_ratio(r), metrics.max_drawdown(r),
                   metrics.annual_return(r), metrics.value_at_risk(r),
                   metrics.conditional_value_at_risk(r), metrics.tail_ratio(r)]
        out[t] = (s, singles)
    s1, s2 = out["1"][0], out["2"][0]
    assert list(s1.data_vars) == list(s2.data_vars)
    for k in s1.data_vars:
        _same(s2[k].values, s1[k].values)
    for a, c in zip(out["1"][1], out["2"][1]):
        _same(c, a)
    # and the values are right: the Sharpe of column 0 by hand
    c = r[:, 0][~np.isnan(r[:, 0])]
    np.testing.assert_allclose(np.atleast_1d(out["2"][1][0])[0],
                               c.mean() / c.std(ddof=1) * np.sqrt(252), rtol=1e-12)


def test_threads_argument_is_checked_naming_it():
    x = _panel(4)
    for bad in (0, -1, 10**6):
        with pytest.raises(ValueError, match="threads"):
            rolling.mean(x, 5, threads=bad)
    for bad in (1.5, "2", True):
        with pytest.raises((TypeError, ValueError), match="threads"):
            rolling.mean(x, 5, threads=bad)


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", "99999"])
def test_invalid_quantlab_threads_is_a_value_error_naming_it(monkeypatch, value):
    monkeypatch.setenv("QUANTLAB_THREADS", value)
    with pytest.raises(ValueError, match="QUANTLAB_THREADS"):
        rolling.mean(np.ones((1000, 400)), 5)
    with pytest.raises(ValueError, match="QUANTLAB_THREADS"):
        _threads.default_threads()
    errors = []                   # from another thread too (it runs on 1 thread anyway)

    def other():
        try:
            rolling.mean(np.ones((1000, 400)), 5)
        except ValueError as e:
            errors.append(str(e))

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(errors) == 1 and "QUANTLAB_THREADS" in errors[0]


def test_default_threads_from_env_else_cpu_count(monkeypatch):
    monkeypatch.setenv("QUANTLAB_THREADS", " 3 ")
    assert _threads.default_threads() == 3
    monkeypatch.delenv("QUANTLAB_THREADS")
    assert _threads.default_threads() == max(1, os.cpu_count() or 1)


def test_small_inputs_stay_on_one_thread(monkeypatch):
    monkeypatch.setenv("QUANTLAB_THREADS", "8")
    assert _threads.blocks(50, 50 * 252, None) == (1, [(0, 50)])
    n, parts = _threads.blocks(1000, 2520 * 1000, None)
    assert n == 2 or n > 2   # big enough for several threads
    assert parts[0][0] == 0 and parts[-1][1] == 1000
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))


def test_other_threads_default_to_one_and_pool_never_nests(monkeypatch):
    monkeypatch.setenv("QUANTLAB_THREADS", "4")
    seen = []
    t = threading.Thread(target=lambda: seen.append(_threads.resolve(None)))
    t.start()
    t.join()
    assert seen == [1]                       # e.g. dask's workers: already parallel
    assert _threads.resolve(None) == 4       # the main thread: the package default
    monkeypatch.setattr(_threads, "MIN_WORK", 1)
    monkeypatch.setattr(_threads, "MIN_BLOCK", 1)
    inner = []

    def fn(lo, hi):   # a block that itself asks for blocks: runs them on its thread
        inner.append(_threads.blocks(10, 10**9, 4)[0])

    _threads.run(fn, [(0, 1), (1, 2), (2, 3), (3, 4)], 2)
    assert len(inner) == 4 and set(inner) == {1}


def test_an_error_in_a_block_is_raised_after_all_blocks_finish(monkeypatch):
    done = []

    def fn(lo, hi):
        if lo == 1:
            raise RuntimeError("block 1 failed")
        done.append(lo)

    with pytest.raises(RuntimeError, match="block 1 failed"):
        _threads.run(fn, [(0, 1), (1, 2), (2, 3), (3, 4)], 2)


def test_dask_chunked_input_keeps_working_through_the_same_kernels(tiny_blocks):
    x = _panel(12)
    da = xr.DataArray(x, dims=("time", "asset"))
    lazy = da.chunk({"time": 100, "asset": 5})
    for stat in ("mean", "std", "zscore", "rank"):
        got = getattr(rolling, stat)(lazy, 20, threads=2)
        assert isinstance(got.data, dsa.Array)
        _same(got.values, getattr(rolling, stat)(da, 20, threads=1).values)
    got = metrics.sharpe_ratio(lazy.chunk({"time": -1}))
    _same(np.asarray(got.values), np.asarray(metrics.sharpe_ratio(da).values))


def test_top_level_rolling_exports_take_threads():
    assert ql.rolling.mean is rolling.mean
    x = _panel(3)
    _same(ql.rolling.mean(x, 4, threads=2), rolling.mean(x, 4, threads=1))


def test_rolling_kernels_use_threads_by_default_writing_blocks_in_place(monkeypatch):
    """Issue #32: the rolling kernels write each block into one result (out=), so no
    block is copied and the default fans them out (the old default kept mean/std/zscore
    on one thread: the copy of each block cost what the second core saved). The
    block-decomposed ones cut rows at multiples of the window (whole rows per thread);
    the one-pass metrics read their column blocks in place, so they fan out too."""
    monkeypatch.setenv("QUANTLAB_THREADS", "2")
    fanned, by_rows = [], []
    real_run, real_rows = _threads.run, _threads.by_rows
    monkeypatch.setattr(_threads, "run", lambda fn, parts, n: (fanned.append(n),
                                                               real_run(fn, parts, n)))
    monkeypatch.setattr(_threads, "by_rows", lambda *a, **k: (by_rows.append(a[1:3]),
                                                             real_rows(*a, **k)))
    x = _panel(500, n=1200)
    for stat in ("mean", "std", "zscore", "min", "max", "sum", "var", "ewm_mean", "rank"):
        got = getattr(rolling, stat)(x, 20)
        _same(got, getattr(rolling, stat)(x, 20, threads=1))
    assert fanned[::2] == [2] * 9                       # default: 2 threads, each stat
    assert by_rows[::2] == [(1200, 20)] * 7             # rows cut at multiples of 20
    fanned.clear()
    rolling.mean(x[:100, :50], 20)                      # small: one thread
    assert set(fanned) <= {1}
    fanned.clear()
    r = np.nan_to_num(x, posinf=0.0)
    metrics.sharpe_ratio(r), metrics.max_drawdown(r), metrics.annual_return(r)
    assert fanned == [2, 2, 2]                          # in place: no copy to pay for
    metrics.summary(r)
    measures.rolling_katz_fd(xr.DataArray(x[:, :200], dims=("time", "asset")), 50)
    assert fanned[-3:] == [2, 2, 2]                     # summary's two passes, katz


def test_rolling_rows_are_cut_one_block_per_thread(monkeypatch):
    """Each thread streams one stretch of rows (two blocks per thread measured slower on
    2 cores: mean 1.50x vs 1.56x, std 1.41x vs 1.50x), starting at multiples of the
    window."""
    seen = []
    real_run = _threads.run
    monkeypatch.setattr(_threads, "run", lambda fn, parts, n: (seen.append((list(parts), n)),
                                                               real_run(fn, parts, n)))
    x = _panel(500, n=1200)
    one = rolling.std(x, 20, threads=1)
    for threads in (2, 3):
        seen.clear()
        _same(rolling.std(x, 20, threads=threads), one)
        (parts, n), = seen
        assert n == threads and len(parts) == threads


def _all_nan_blocks_panel(n=300, m=6, dtype=np.float64):
    """Whole windows of NaN (the tail's shift then comes from an older block), a level
    of 1e6 with tiny moves, an inf, a constant stretch: where a row range started
    afresh could differ from a whole run."""
    rng = np.random.default_rng(5)
    x = rng.normal(0.0, 1.0, (n, m))
    x[40:100, 0] = np.nan
    x[:, 1] = 1e6 + rng.normal(0, 1e-3, n)
    x[120:190, 1] = np.nan
    x[::7, 2] = np.nan
    x[77, 3] = np.inf
    x[200:260, 4] = 3.25
    x[rng.random(n) < 0.5, 5] = np.nan
    return x.astype(dtype)


@pytest.mark.parametrize("window", [1, 3, 7, 20, 61, 299, 300, 1000])
@pytest.mark.parametrize("stat", ["sum", "mean", "var", "std", "zscore", "min", "max"])
def test_rolling_row_blocks_give_the_bits_of_one_thread(tiny_blocks, stat, window):
    f = getattr(rolling, stat)
    for dtype in (np.float64, np.float32):
        x = _all_nan_blocks_panel(dtype=dtype)
        for minp in (0, 1, window):
            one = f(x, window, min_periods=minp, threads=1)
            for threads in (2, 3, 7):
                _same(f(x, window, min_periods=minp, threads=threads), one)
    # and the values are the plain NumPy twin's (every window recomputed; not column 1,
    # at a level of 1e6 the twin's own two-pass sums lose the digits compared)
    from tests.reference import rolling as ref
    x = _all_nan_blocks_panel()[:, [0, 2, 3, 4, 5]]
    got = f(x, window, min_periods=1, threads=3)
    np.testing.assert_allclose(got, ref(stat, x, window, 1), rtol=1e-9, atol=1e-12)


def test_rolling_window_as_long_as_the_panel_still_uses_threads_by_columns(tiny_blocks,
                                                                          monkeypatch):
    """One window spans the panel: there is one row block only, so the pool cuts columns
    (written into one result) instead of running one thread."""
    fanned = []
    real_run = _threads.run
    monkeypatch.setattr(_threads, "run", lambda fn, parts, n: (fanned.append(len(parts)),
                                                               real_run(fn, parts, n)))
    x = _panel(40, n=120)
    for stat in ("mean", "std", "max"):
        for window in (120, 500):
            fanned.clear()
            _same(getattr(rolling, stat)(x, window, min_periods=3, threads=2),
                  getattr(rolling, stat)(x, window, min_periods=3, threads=1))
            assert fanned[0] > 1


def test_rolling_kernel_out_writes_only_its_block():
    """out= takes a column block of a larger result (rows strided): the kernel fills it
    and leaves the rest alone; the values are those of a whole call."""
    from quantlab._kernels import load
    k = load("rolling")
    x = _panel(9)
    whole = k.roll_var(x, 20, 5, 1, 1)
    out = np.full_like(x, 7.0)
    got = k.roll_var(x[:, 2:6], 20, 5, 1, 1, out=out[:, 2:6])
    assert got is not None and np.shares_memory(got, out)
    _same(out[:, 2:6], whole[:, 2:6])
    assert (out[:, :2] == 7.0).all() and (out[:, 6:] == 7.0).all()
    for name, args in [("roll_sum", (20, 5, True)), ("roll_minmax", (20, 5, False)),
                       ("ewm_mean", (0.1, 3)), ("roll_rank", (20, 5))]:
        fn = getattr(k, name)
        out = np.full_like(x, 7.0)
        fn(x[:, 3:], *args, out=out[:, 3:])
        _same(out[:, 3:], fn(x, *args)[:, 3:])
        assert (out[:, :3] == 7.0).all()


def test_rolling_kernel_bad_out_or_rows_is_a_value_error_naming_it():
    from quantlab._kernels import load
    k = load("rolling")
    x = _panel(4)
    bad = [np.empty((300, 5)), np.empty((299, 4)), np.empty((300, 4), np.float32),
           np.empty((4, 300)).T, [[0.0] * 4] * 300]
    ro = np.empty((300, 4))
    ro.flags.writeable = False
    for out in [*bad, ro, x]:
        for call in (lambda o: k.roll_sum(x, 5, 5, True, out=o),
                     lambda o: k.roll_var(x, 5, 5, 1, 2, out=o),
                     lambda o: k.roll_minmax(x, 5, 5, True, out=o),
                     lambda o: k.ewm_mean(x, 0.5, 1, out=o),
                     lambda o: k.roll_rank(x, 5, 5, out=o)):
            with pytest.raises(ValueError, match="out"):
                call(out)
    for start, stop in [(3, -1), (-5, -1), (10, 5), (0, 301), (305, -1)]:
        for call in (lambda a, b: k.roll_sum(x, 5, 5, True, start=a, stop=b),
                     lambda a, b: k.roll_var(x, 5, 5, 1, 1, start=a, stop=b),
                     lambda a, b: k.roll_minmax(x, 5, 5, True, start=a, stop=b)):
            with pytest.raises(ValueError, match="start"):
                call(start, stop)


def test_corr_over_members_of_a_third_dim_with_threads_equals_one_thread(tiny_blocks):
    x = _panel(12, n=120).reshape(120, 4, 3)
    da = xr.DataArray(x, dims=("time", "asset", "field"))
    one = rolling.corr(da, 30, threads=1)
    two = rolling.corr(da, 30, threads=2)
    assert two.dims == one.dims
    _same(two.values, one.values)
    # and against pandas for one member
    import pandas as pd
    ref = pd.DataFrame(x[:, :, 1]).rolling(30).corr().values.reshape(120, 4, 4)
    got = two.transpose("field", "time", "asset", "asset_other").values[1]
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)


def _rank_in_child(x):
    return rolling.rank(x, 20, threads=2)


def test_a_forked_child_after_the_pool_started_does_not_hang(tiny_blocks):
    import multiprocessing as mp
    x = _panel(8)
    want = rolling.rank(x, 20, threads=2)          # the parent's pool exists now
    with mp.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(_rank_in_child, (x,)).get(timeout=120)
    _same(got, want)


def test_blocks_min_cols_and_per_thread():
    """``min_cols``: no block narrower (a kernel with a cost per row and call);
    ``per_thread``: at most that many blocks per thread."""
    assert _threads.blocks(20, 1e9, 2, min_cols=16) == (1, [(0, 20)])
    n, parts = _threads.blocks(40, 1e9, 2, min_cols=16)
    assert n == 2 and len(parts) == 2 and min(hi - lo for lo, hi in parts) >= 16
    assert len(_threads.blocks(1000, 1e9, 2)[1]) == 2 * _threads.PER_THREAD
    assert _threads.blocks(1000, 1e9, 2, per_thread=1) == (2, [(0, 500), (500, 1000)])


def test_threads_asking_for_more_threads_than_the_pool_has_never_find_it_shut(tiny_blocks):
    # an outside probe: a call growing the pool shut the old one down while another
    # thread was about to submit to it ("cannot schedule new futures after shutdown")
    x = _panel(64, n=200)
    want = rolling.ewm_mean(x, 10, threads=1)
    errors, wrong = [], [0]

    def hammer(stop):
        while not stop:
            try:
                wrong[0] += not np.array_equal(rolling.ewm_mean(x, 10, threads=2), want,
                                               equal_nan=True)
            except Exception as e:   # noqa: BLE001 (counted, asserted below)
                errors.append(repr(e))

    for _ in range(8):
        stop = []
        threads = [threading.Thread(target=hammer, args=(stop,), daemon=True)
                   for _ in range(3)]
        for t in threads:
            t.start()
        try:
            for k in range(3, 15):           # each k grows (replaces) the pool once
                rolling.ewm_mean(x, 10, threads=k)
        finally:
            stop.append(True)
            for t in threads:
                t.join(timeout=30)
        _threads._pool.shutdown()            # nothing runs now: start small again
        _threads._forget_pool()
    assert errors == [] and wrong[0] == 0
