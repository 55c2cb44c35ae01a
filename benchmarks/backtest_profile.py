"""Where ``ql.backtest``'s time goes on the issue #32 benchmark, and its same-run ratio to
vectorbt (issue #32).

MA(10)/MA(50) crossover on 2520 x 1000 (``run.BACKTEST_SETUP``), fees 0.1 %, slippage
5 bp. Prints the load (``uptime``), then

1. the split of one steady-state ``ql.backtest`` call: the kernel alone (inputs
   prepared beforehand; lean, as ``ql.backtest`` runs it: equity and orders, and for
   comparison writing the cash and positions panels too), input checks and conversion
   (``dispatch.simulate`` minus the kernel), result building (``from_run``), and the
   pieces read on demand (the orders table, cash and positions, the trades);
2. ``ql.backtest`` against vectorbt's bare ``Portfolio.from_signals(...)`` (the
   simulation only) and ``from_signals(...).value()`` (plus the equity curve), numba
   engine: the calls alternate, each ratio is the median over rounds of the ratio within
   a round, so a load change hits both sides of a ratio alike.

3. ``threads=1`` against ``threads=2`` (independent accounts on the pool, issue #32):
   alternating calls, wall-clock and CPU time (all threads) per call, same-round
   ratios, for the entries/exits run, the same crossover as a target signal, the
   entries/exits run with a 5 % stop-loss (every option runs in blocks), and with
   ``metrics_only`` (a sweep's mode).

Usage: ``python benchmarks/backtest_profile.py [rounds]`` (default 7);
``python benchmarks/backtest_profile.py [rounds] threads`` runs part 3 only.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BACKTEST_SETUP  # noqa: E402

KW = dict(fees=0.001, slippage=0.0005)


def _once(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _median(fn, k=5):
    fn()
    return statistics.median(_once(fn) for _ in range(k))


def split(ns):
    """Seconds of each stage of one steady-state call (medians)."""
    from quantlab._kernels import backtest as _k
    from quantlab.backtesting import dispatch, result
    from quantlab.backtesting.options import BacktestOptions

    ql, da, ent, ex = ns["ql"], ns["da"], ns["entries"], ns["exits"]
    opts = BacktestOptions(**KW)
    close = np.asarray(da.values)
    n, m = close.shape
    cols = np.arange(m, dtype=np.intp)
    args = (close, close, (ent.values, ex.values), np.broadcast_to(0.0005, close.shape),
            np.broadcast_to(0.0, close.shape), 0.05, cols, cols, m, 1e5, np.full(m, 0.001),
            np.zeros(m), 1.0, 1.0, False, False)
    run = dispatch.simulate(da, None, ent, ex, opts, lean=True, threads=1)
    res = result.from_run(run, opts)
    out = {"total ql.backtest": _median(lambda: ql.backtest(da, entries=ent, exits=ex, threads=1, **KW)),
           "kernel only (lean; checks the closes)": _median(
               lambda: _k.simulate(*args, lean=True, check=True)),
           "kernel writing cash and positions too": _median(lambda: _k.simulate(*args)),
           "dispatch.simulate (checks + kernel)": _median(
               lambda: dispatch.simulate(da, None, ent, ex, opts, lean=True, threads=1)),
           "  of which the labels check": _median(
               lambda: dispatch.align_data(dispatch.as_dataset(da), run.signal, opts,
                                           values=False)),
           "from_run (result arrays)": _median(lambda: result.from_run(run, opts)),
           "orders table (on first read)": _median(
               lambda: result._orders(run, *dispatch.order_arrays(run.out[3]))),
           "cash + positions (on first read)": _median(
               lambda: [result._LazyPanel(run, k, 1e5).frame() for k in ("cash", "positions")]),
           "trades (on first read)": _median(
               lambda: result.build_trades(res.orders, res.prices), k=1)}
    return out


def ratios(ns, rounds):
    """Per round: ql, vectorbt bare, vectorbt .value() (alternating); the median ratios."""
    import vectorbt as vbt

    ql, da, ent, ex = ns["ql"], ns["da"], ns["entries"], ns["exits"]
    c, e, x = da.to_pandas(), ent.to_pandas(), ex.to_pandas()
    calls = {"ql": lambda: ql.backtest(da, entries=ent, exits=ex, threads=1, **KW),
             "vbt_bare": lambda: vbt.Portfolio.from_signals(c, e, x, engine="numba", **KW),
             "vbt_value": lambda: vbt.Portfolio.from_signals(c, e, x, engine="numba",
                                                             **KW).value()}
    for f in calls.values():
        f()
    times = {k: [] for k in calls}
    for _ in range(rounds):
        for k, f in calls.items():
            times[k].append(_once(f))
    q = np.array(times["ql"])
    return {k: np.median(v) for k, v in times.items()}, {
        "bare / ql": statistics.median(np.array(times["vbt_bare"]) / q),
        "value / ql": statistics.median(np.array(times["vbt_value"]) / q)}


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def threads_ratios(ns, rounds):
    """threads=1 vs 2, alternating: median same-round ratios of wall and CPU time."""
    ql, da, ent, ex = ns["ql"], ns["da"], ns["entries"], ns["exits"]
    sig = (ns["f"] > ns["s"]).astype(float).where(ns["s"].notnull())
    out = {}
    for what, kw in (("entries/exits", dict(entries=ent, exits=ex)),
                     ("target signal", dict(signal=sig)),
                     ("stop-loss", dict(entries=ent, exits=ex, sl_stop=0.05)),
                     ("metrics_only", dict(entries=ent, exits=ex, metrics_only=(
                         "sharpe_ratio", "total_return", "max_drawdown", "fees_paid")))):
        calls = {k: (lambda k=k: ql.backtest(da, threads=k, **kw, **KW)) for k in (1, 2)}
        for f in calls.values():
            f()
        t = {k: [] for k in calls}
        for _ in range(rounds):
            for k, f in calls.items():
                t[k].append(_timed(f))
        one, two = np.array(t[1]), np.array(t[2])
        out[what] = {"wall 1 thread": np.median(one[:, 0]), "wall 2 threads": np.median(two[:, 0]),
                     "speedup (wall 1 / wall 2)": statistics.median(one[:, 0] / two[:, 0]),
                     "CPU 2 threads / CPU 1": statistics.median(two[:, 1] / one[:, 1])}
    return out


def main_threads(rounds=7):
    warnings.simplefilter("ignore")
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    ns = {}
    exec(BACKTEST_SETUP, ns)
    for what, r in threads_ratios(ns, rounds).items():
        for k, v in r.items():
            print(f"{what:15s} {k:28s} {v * 1e3 if 'wall' == k[:4] else v:8.2f}"
                  + (" ms" if k[:4] == "wall" else " x"))
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


def main(rounds=7):
    warnings.simplefilter("ignore")
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    ns = {}
    exec(BACKTEST_SETUP, ns)
    for k, v in split(ns).items():
        print(f"{k:40s} {v * 1e3:8.1f} ms")
    med, rat = ratios(ns, rounds)
    for k, v in med.items():
        print(f"{k:40s} {v * 1e3:8.1f} ms (median of {rounds})")
    for k, v in rat.items():
        print(f"{k:40s} {v:8.2f} x (median of same-round ratios)")
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    if sys.argv[2:3] == ["threads"]:
        main_threads(int(sys.argv[1]))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
        main_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
