"""``quantlab engine-bench`` (and ``benchmarks/run.py``): the tick engine against its
pure-Python reference in the same run. It lives in the package because the installed
CLI runs it."""
from __future__ import annotations

import time

import numpy as np

from quantlab import _validate as _v
from quantlab.engine.core import TickEngine, _column
from quantlab.engine.reference import FIELDS, reference_engine, to_ticks
from quantlab.testing import seed_batch, synthetic_ticks, to_dicts

__all__ = ["bench", "SEED_TICKS_PER_S"]

SEED_TICKS_PER_S = 42_735   # the seed's own published sample benchmark (23.4 µs a tick)


def bench(n_columnar=2_000_000, n_reference=100_000) -> str:
    """``quantlab engine-bench``: a Markdown table of the engine vs the pure-Python
    reference in the same run, and the seed's published 42,735 ticks/s beside them.

    Rows: the seed's batch (100 symbols x 1000 ticks, its dict shape, constant prices)
    and a random-walk dict batch (signals and orders happen) through
    ``process_market_data``; ``n_columnar`` random-walk ticks through ``process_ticks``.
    The reference runs the dict batches whole and ``n_reference`` columnar ticks
    (pre-parsed, so it is timed on the same work), extrapolated per tick. The same ticks
    follow as the narrower dtypes of a pandas or Parquet frame. The last row is
    a floor, not an engine: summing the columns once, what reading them costs.

    Parameters
    ----------
    n_columnar : int
        Random-walk ticks through ``process_ticks`` (1 .. 10^8).
    n_reference : int
        Of those, ticks timed through the reference (1 .. 10^9).

    Returns
    -------
    str
        The Markdown table.

    Examples
    --------
    The full table takes seconds (two 100,000-tick dict batches through the
    pure-Python reference); its arguments are checked first:

    >>> from quantlab.engine import bench
    >>> bench(n_columnar=0)
    Traceback (most recent call last):
    ...
    ValueError: n_columnar must be an integer in [1, 100000000], got 0
    """
    n_columnar = _v.integer("n_columnar", n_columnar, 1, 10 ** 8)
    n_reference = _v.integer("n_reference", n_reference, 1, 10 ** 9)

    def timed(f):
        t = time.perf_counter()
        f()
        return time.perf_counter() - t

    rows = []
    seed = seed_batch()
    walk = to_dicts(synthetic_ticks(100_000, n_symbols=100, seed=1), as_strings=True)
    for name, ticks in (("seed batch, 100 symbols x 1000 ticks (dicts)", seed),
                        ("random walk, 100,000 ticks (dicts, orders happen)", walk)):
        # a fresh engine per run: a second pass of the same ticks would be rejected as
        # out of order, which is cheaper than processing them
        engines = [TickEngine() for _ in range(3)]
        ours = min(timed(lambda: e.process_market_data(ticks)) for e in engines)
        ref = reference_engine()
        theirs = timed(lambda: ref.process_market_data(ticks))
        rows.append((name, len(ticks) / ours, len(ticks) / theirs, None))
    cols = synthetic_ticks(n_columnar, n_symbols=100, seed=2)
    def columnar(columns):
        """Best of 3 fresh engines (a loaded machine's noise), the last one's stats."""
        engines = [TickEngine() for _ in range(3)]
        best = min(timed(lambda: e.process_ticks(columns)) for e in engines)
        return best, engines[-1]

    ours, eng = columnar(cols)
    s = eng.get_performance_stats()
    ref = reference_engine()
    parsed = list(zip(*(np.asarray(_column(cols[f], to_ticks, eng.tick_size)
                                   if f in ("bid_price", "ask_price") else cols[f]).tolist()
                        for f in FIELDS)))[:n_reference]
    theirs = timed(lambda: [ref.tick(i, *t) for i, t in enumerate(parsed)])
    rows.append((f"{n_columnar:,} ticks (NumPy columns)", n_columnar / ours,
                 len(parsed) / theirs, s))
    # issue #32: the dtypes a pandas or Parquet frame often holds, converted in the kernel
    natural = dict(cols, symbol_id=cols["symbol_id"].astype(np.int32),
                   bid_price=cols["bid_price"].astype(np.float32),
                   ask_price=cols["ask_price"].astype(np.float32),
                   bid_size=cols["bid_size"].astype(np.float64),
                   ask_size=cols["ask_size"].astype(np.int32))
    ours, eng = columnar(natural)
    rows.append((f"{n_columnar:,} ticks (int32 ids, float32 prices, float/int32 sizes)",
                 n_columnar / ours, len(parsed) / theirs, eng.get_performance_stats()))
    # the floor of any columnar engine: reading the six input columns once
    arrays = [np.asarray(cols[f]) for f in FIELDS]
    floor = min(timed(lambda: [a.sum() for a in arrays]) for _ in range(5))
    rows.append(("reading those columns once (NumPy sums; no work)", n_columnar / floor,
                 len(parsed) / theirs, None))
    lines = ["| workload | quantlab ticks/s | pure-Python ticks/s | ratio | seed's 42,735/s x |"
             " p50 / p99 / p99.9 latency |", "|---|---|---|---|---|---|"]
    for name, q, r, st in rows:
        lat = (f"{st['p50_latency_us']:.2f} / {st['p99_latency_us']:.2f} / "
               f"{st['p999_latency_us']:.2f} µs" if st else "—")
        lines.append(f"| {name} | {q:,.0f} | {r:,.0f} | {q / r:.0f}x | "
                     f"{q / SEED_TICKS_PER_S:.0f}x | {lat} |")
    return "\n".join(lines)
