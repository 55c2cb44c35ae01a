"""The one thread pool of the nogil kernels: column blocks of a panel, run side by side.

Every rolling, measures and metrics kernel treats its columns (series) independently and
releases the GIL, so a panel cut into blocks of columns runs on several cores and gives
the same bits as one call: each block's columns see exactly the operations they would
see in the whole panel. :func:`run` hands ``fn(lo, hi)`` the blocks as threads come
free; :func:`by_columns` writes each block's result into its slice of one preallocated
output.

The thread count is ``threads=`` where a function takes it, else the package default:
``$QUANTLAB_THREADS`` if set (an integer >= 1; anything else is a ValueError naming
it), else ``os.cpu_count()``. Small inputs run on the calling thread (:data:`MIN_WORK`),
and so do, by default, kernels too cheap to repay the copy of a block
(:data:`PAYS_FROM`; kernels writing into the result through ``out=`` copy nothing and
are not held back) and calls made from a pool worker or from another thread (dask's
workers, a user's own pool: they are parallel already) unless ``threads`` is given.
"""
from __future__ import annotations

import itertools
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from quantlab import _validate

__all__ = ["default_threads", "resolve", "blocks", "run", "by_columns", "by_rows", "MIN_WORK"]

# Work is counted in "copies": the time to copy one value (~1 ns). Without ``out=``
# each block's result (or, for the one-pass metrics and quantile kernels, which take
# C-contiguous panels, its input) is copied once; the fused metrics kernel reads its
# blocks in place. Measured on a 2-core AMD EPYC, 2520 x
# 1000 float64, CPU time of all threads (2 threads / 1): rolling mean 2.0x (its kernel
# costs ~2 copies per value; without the copy 1.2x), std 1.85x, zscore 1.9x, ewm/min 2.1x,
# sharpe's sums 2.6x -- a second core cannot pay that -- but rank (window 20, ~16 copies)
# 1.16x, historical VaR 1.26x, summary 1.09x. So by default only kernels of at least
# PAYS_FROM copies per value use threads; an explicit ``threads=`` is obeyed. The
# rolling kernels take ``out=`` and write each block into the one result (by_columns'
# ``out``): no copy, and the rule does not apply to them (issue #32; benchmarks/run.py
# --only threads has the speedups).
PAYS_FROM = 5.0
# Below this much work per thread a block's dispatch (a future, a wake-up: 30-60 µs
# idle, milliseconds on a loaded machine) is not repaid. Measured (2520 rows, CPU time
# of 2 threads vs 1): rank 16 columns 2.0x (no gain), 64 columns 1.46x; summary 4
# columns 1.35x, 16 columns 1.14x: about 1M copies of work for two threads.
MIN_WORK = 500_000
PER_THREAD = 2       # blocks per thread: a descheduled thread leaves its share to others
MIN_BLOCK = 250_000  # work per block at least (narrow blocks cost the kernels more per value)
MAX_THREADS = 1024   # far beyond any core count; bounds the pool before it is built
# The caller starts its block at once; a pool thread starts after its wake-up, and a
# caller done first waits to be woken in turn. On a 2-core AMD EPYC KVM guest (session
# 58) the pool thread began 50-80 µs after the call and the caller returned 40-50 µs
# after the last block ended. So by_rows gives the caller's block about LEAD (in
# copies, ~1 ns each) more work: 2520 x 1000, window 20, 2 threads, two windows more
# for the caller (mean and std alike), against halves alternated in one process (5 runs
# of 41 rounds): median wall mean -1.3 to -6.5 %, std -0.4 to -5.3 %, zscore -1.9 to +1.4 %.
LEAD = 90_000

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_lock = threading.Lock()
_local = threading.local()   # .worker: True in the pool's threads (no nested fan-out)


def _forget_pool():
    """In a forked child the pool's threads do not exist: start a new pool on demand.
    So for dask's threaded scheduler (streamed backtests, sweeps and ingest run on it):
    its default pool's threads are gone too, and a compute in the child (a
    multiprocessing worker's ql.backtest of a store) queued its tasks on them for ever."""
    global _pool, _pool_size, _lock
    _pool, _pool_size, _lock = None, 0, threading.Lock()
    threaded = sys.modules.get("dask.threaded")   # imported: its pools may exist
    if threaded is not None:
        threaded.default_pool, threaded.pools_lock = None, threading.Lock()
        threaded.pools.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def default_threads() -> int:
    """``$QUANTLAB_THREADS`` (an integer >= 1), else ``os.cpu_count()`` (1 if unknown)."""
    env = os.environ.get("QUANTLAB_THREADS")
    if env is None or env.strip() == "":
        return max(1, os.cpu_count() or 1)
    try:
        v = int(env.strip())
    except ValueError:
        v = 0
    if not 1 <= v <= MAX_THREADS:
        raise ValueError(f"QUANTLAB_THREADS must be an integer in [1, {MAX_THREADS}], "
                         f"got {env!r}")
    return v


def resolve(threads=None) -> int:
    """``threads`` checked (an integer in [1, MAX_THREADS]), or the default for this
    thread: the package default on the main thread, 1 elsewhere (already parallel)."""
    if threads is not None:
        return _validate.integer("threads", threads, 1, MAX_THREADS)
    n = default_threads()   # checked on every thread: a bad setting is always named
    if (getattr(_local, "worker", False)
            or threading.current_thread() is not threading.main_thread()):
        return 1
    return n


def _mark():
    _local.worker = True


def _submit(fn, n: int) -> list:
    """``n`` futures of ``fn`` on the pool, grown to ``n`` threads first if smaller.
    Submitted under the lock: a call growing the pool shuts the old one down (its
    started work finishes), and another thread submitting to it after that raised
    "cannot schedule new futures after shutdown" (an outside probe)."""
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < n:
            old = _pool
            _pool = ThreadPoolExecutor(n, thread_name_prefix="quantlab", initializer=_mark)
            _pool_size = n
            if old is not None:
                old.shutdown(wait=False)
        return [_pool.submit(fn) for _ in range(n)]


def blocks(m: int, work: float, threads=None, cost: float = PAYS_FROM, copied: bool = True,
           min_cols: int = 1, per_thread: int = PER_THREAD
           ) -> tuple[int, list[tuple[int, int]]]:
    """(threads to use, contiguous (lo, hi) blocks of ``m`` columns): as many threads as
    ``threads`` allows with at least :data:`MIN_WORK` of ``work`` (in copies of a value)
    each, and up to ``per_thread`` blocks per thread (:data:`PER_THREAD`; of at least
    :data:`MIN_BLOCK` work and ``min_cols`` columns: a kernel with a cost per row and
    call), handed out as threads come free. By default (``threads=None``) a kernel of
    ``cost`` below :data:`PAYS_FROM` copies per value runs on one thread when each
    block's result is ``copied`` into the output (not when the kernel writes it
    there)."""
    n = resolve(threads)
    if getattr(_local, "worker", False) or (threads is None and copied and cost < PAYS_FROM):
        n = 1                             # inside the pool: never wait on the pool
    widest = max(1, m // max(1, min_cols))   # most blocks of min_cols columns
    n = max(1, min(n, widest, int(work // MIN_WORK)))
    if n == 1:
        return 1, [(0, m)]
    k = max(n, min(widest, n * per_thread, int(work // MIN_BLOCK)))
    edges = [m * i // k for i in range(k + 1)]
    return n, [(edges[i], edges[i + 1]) for i in range(k)]


def run(fn, parts, n: int) -> None:
    """``fn(lo, hi)`` for each block of ``parts`` on ``n`` threads (the calling one and
    ``n - 1`` of the pool), each taking the next block when it comes free: a thread the
    OS does not schedule (a shared machine) leaves its blocks to the others, so a
    loaded machine costs at most a block's time over one thread. Returns when all are
    done; the first error is raised after every started block has finished (none still
    writes into the caller's output)."""
    if n == 1 or len(parts) == 1:
        for lo, hi in parts:
            fn(lo, hi)
        return
    nxt = itertools.count()   # next(count) is atomic under the GIL
    stop = [False]

    def worker():
        while not stop[0]:
            i = next(nxt)
            if i >= len(parts):
                return
            try:
                fn(*parts[i])
            except BaseException:
                stop[0] = True
                raise

    futures = _submit(worker, n - 1)
    err = None
    outer = getattr(_local, "worker", False)
    _local.worker = True      # the caller's blocks do not fan out again either
    try:
        worker()
    except BaseException as e:  # noqa: BLE001 (re-raised below, after the others finish)
        err = e
    finally:
        _local.worker = outer
    for f in futures:
        f.cancel()            # not started yet: every block is done or being done
    for f in futures:
        if f.cancelled():
            continue
        try:
            f.result()
        except BaseException as e:  # noqa: BLE001
            err = err or e
    if err is not None:
        raise err


def _blocks_of(panels, lo, hi, m, axis, contiguous):
    """Block [lo, hi) of each panel (a panel with no rows, a "none" marker, as is)."""
    sub = []
    for p in panels:
        if p.shape[0] == 0 and p.shape[axis] != m:
            sub.append(p)
            continue
        b = p[:, lo:hi] if axis == 1 else p[lo:hi]
        sub.append(np.ascontiguousarray(b) if contiguous else b)
    return sub


def by_columns(fn, *panels, cost: float = 1.0, threads=None, contiguous=False,
               axis: int = 1, out=None):
    """``fn(*blocks)`` over column blocks of (time, m) ``panels`` (``axis=0``: (m, time)
    panels, blocks of rows), each block's result written into its slice of one output.

    ``fn`` returns an array whose last axis (``axis=1``) or first axis (``axis=0``) is
    the block's columns, e.g. a (time, block) panel or (fields, block) statistics. A
    panel with no rows (the kernels' "none" marker, e.g. a (0, 0) benchmark) is passed
    as is. ``contiguous``: blocks are copied C-contiguous first (for kernels taking
    ``double[:, ::1]``; the copy runs in the block's thread). ``cost``: the kernel's time
    per value of the first panel in copies of a value (:data:`PAYS_FROM`). One block:
    ``fn`` on the panels themselves, no copy. ``out``: a preallocated result that
    ``fn(*blocks, out=its block)`` writes into (the rolling kernels' ``out=``): no copy
    of a block, so memory-speed kernels pay on several threads too; returns ``out``.
    """
    m = panels[0].shape[axis]
    n, parts = blocks(m, panels[0].size * cost, threads, cost, copied=out is None)
    if out is not None:
        def into(lo, hi):
            fn(*_blocks_of(panels, lo, hi, m, axis, contiguous),
               out=out[:, lo:hi] if axis == 1 else out[lo:hi])

        run(into, parts, n)
        return out
    if len(parts) == 1:
        return fn(*panels)
    res_box = [None]
    lock = threading.Lock()

    def one(lo, hi):
        res = np.asarray(fn(*_blocks_of(panels, lo, hi, m, axis, contiguous)))
        with lock:
            if res_box[0] is None:
                shape = (*res.shape[:-1], m) if axis == 1 else (m, *res.shape[1:])
                res_box[0] = np.empty(shape, dtype=res.dtype)
        if axis == 1:
            res_box[0][..., lo:hi] = res
        else:
            res_box[0][lo:hi] = res

    run(one, parts, n)
    return res_box[0]


def by_rows(fn, n: int, align: int, work: float, threads=None) -> None:
    """``fn(start, stop)`` over blocks of ``n`` rows whose starts are multiples of
    ``align``, on the pool (``work``, ``threads``: as :func:`blocks`; nothing is copied).

    For the block-decomposed rolling kernels (``start=``, ``stop=``, ``out=``): each
    thread streams whole rows, as one thread does, where column blocks read every row
    in pieces (measured, one thread, 2520 x 1000 rolling mean: 2 column blocks cost 1.3x
    the CPU time of the whole panel, 4 blocks 1.6x -- the second core's gain, gone).
    One block per thread: each thread streams one stretch of the panel (2 threads vs 1,
    2520 x 1000, window 20, 40 alternated rounds: mean 1.50x -> 1.56x, std 1.41x ->
    1.50x, zscore 1.60x -> 1.71x against two blocks per thread); a thread the OS
    deschedules holds up its stretch, which then runs on the core the other thread
    leaves idle: about one thread's time. The first block, which the caller runs, is
    the longer by about :data:`LEAD` of ``work`` (the pool thread starts later).
    """
    units = -(-n // align) if n else 0
    k, parts = blocks(units, work, threads, copied=False, per_thread=1)
    run(lambda lo, hi: fn(lo * align, min(hi * align, n)), _lead(parts, units, work), k)


def _lead(parts, units: int, work: float) -> list[tuple[int, int]]:
    """``parts`` (contiguous blocks of ``units``, from 0) with the first -- the caller's
    (:func:`run`) -- longer by about :data:`LEAD` of ``work``, at most by half its
    length, taken from the others, which stay even and at least one unit each."""
    k = len(parts)
    if k == 1 or units == 0:
        return parts
    first = parts[0][1]
    extra = min(round(LEAD * units / work) if work > 0 else 0, first // 2,
                units - first - (k - 1))
    if extra <= 0:
        return parts
    first += extra
    edges = [first + (units - first) * i // (k - 1) for i in range(k)]
    return [(0, first), *zip(edges, edges[1:])]
