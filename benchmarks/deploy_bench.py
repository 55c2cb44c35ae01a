"""Deployment decision time and replay speed (issue #27). Not in `make test`.

    python benchmarks/deploy_bench.py                       # 20 and 500 assets, full replay
    python benchmarks/deploy_bench.py --bars 10 --large 100 --replay-bars 200   # a quick look
    python benchmarks/deploy_bench.py --strategies factor_momentum spc --replay-strategy none
    python benchmarks/deploy_bench.py --strategies --replay-strategy all   # every replay

decision  for every strategy, ``ql.deploy(name, history=<warmup bars>)`` then ``--bars``
          bars through ``on_bar``; p50/p99 of ``Deployment.latency``: the decision time per
          bar (signal from the trailing window + risk checks + one backtest-kernel step;
          the bar's own checks are not in it). At 20 assets: sp500_20 for close-only
          strategies, a synthetic OHLCV panel (20 assets) for those that need more; at
          ``--large`` assets: a synthetic OHLCV panel. The all-pairs strategies
          (info_theory, complex_systems) are skipped at the large size unless ``--pairs``.
          Strategies that read all history (warmup None: factor_momentum, spc) get
          ``--history`` bars (default 1,300: five years; the synthetic panels end
          2018-11-30, inside the bundled Fama-French factors, so factor_momentum's
          months become usable during the timed bars).
          ``cpu_ms``: process CPU time per timed bar (the whole on_bar), beside the
          wall-clock percentiles: on a loaded machine compare ratios within one run.
          ``signal_ms``: the median of 5 strategy calls on the last bar's window alone
          (path ``window``) or of 5 updates of (a copy of) its per-bar signal (path
          ``live``, ``strategy.live()``); the rest of the decision -- risk checks,
          kernel step -- is p50 - it.
replay    bars per second of wall time for ``Deployment.replay`` of the bundled equities
          (3,270 bars, 4 assets; every bar checked and decided) for ``--replay-strategy``
          (several: comma-separated; ``all``: every registered strategy; ``none``: no
          replay), bar by bar (block 1) and with the signals of
          ``--replay-block`` bars per strategy call (the same decisions; strategies
          with a per-bar signal update bar by bar anyway); ``--replay-checkpoint``: again
          with a checkpoint after every bar.
Goal (issue #27): p99 < 20 ms per bar at 500 assets; the 3,270-bar replay in < 10 s.
Times are wall-clock (plus CPU time): run it on an otherwise idle machine, or compare
strategies within one run (a light one such as volatility_regime is the reference).
"""
import argparse
import copy
import os
import tempfile
import platform
import time

import numpy as np
import pandas as pd
import xarray as xr

import quantlab as ql

PAIRS = ("info_theory", "complex_systems")
# parameters other than the defaults (e.g. where those need more history than the panels
# give; factor_momentum's 36-month betas fit in the default 1,300-bar history)
PARAMS: dict = {}
END = "2018-11-30"   # the bundled Fama-French factors' last month: every panel ends there


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def synthetic_ohlcv(n_assets: int, n_bars: int, seed: int = 0,
                    end: str = END) -> xr.Dataset:
    """Daily GBM OHLCV bars ending ``end``: by default inside the bundled factor data's
    span (its last month is 2018-11; a panel past it gives factor_momentum no new
    month to fit)."""
    rng = np.random.default_rng(seed)
    time_ = pd.bdate_range(end=end, periods=n_bars)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.015, (n_bars, n_assets)), axis=0))
    open_ = np.vstack([close[:1], close[:-1]]) * np.exp(rng.normal(0, 0.003, close.shape))
    wick = np.abs(rng.normal(0, 0.005, (2, *close.shape)))
    dims = ("time", "asset")
    coords = {"time": time_, "asset": [f"S{i:03d}" for i in range(n_assets)]}
    high = np.maximum(open_, close) * (1 + wick[0])
    low = np.minimum(open_, close) * (1 - wick[1])
    volume = np.round(rng.lognormal(13, 1, close.shape))
    ds = xr.Dataset({"open": (dims, open_), "high": (dims, high), "low": (dims, low),
                     "close": (dims, close), "volume": (dims, volume)}, coords=coords)
    return ds.assign_coords(asset_class=("asset", ["equity"] * n_assets))


def decision_times(name: str, ds: xr.Dataset, n_bars: int, history: int) -> tuple:
    """(p50 ms, p99 ms, first ms, history bars, signal ms, path, CPU ms per bar) of
    ``n_bars`` decisions after a warm-up history. The first decision (it loads the
    strategy's bundled inputs, warms caches) is reported apart, not in the percentiles."""
    s = ql.strategies.get(name, **PARAMS.get(name, {}))
    need = (s.warmup + s.period) if s.warmup is not None else history
    if need + n_bars > ds.sizes["time"]:
        raise ValueError(f"{name}: needs {need} + {n_bars} bars, the panel has "
                         f"{ds.sizes['time']}")
    ds = ds.isel(time=slice(ds.sizes["time"] - need - n_bars - 1, None))
    dep = ql.deploy(s, history=ds.isel(time=slice(0, need)), fees=0.001)
    cpu = time.process_time()
    dep.replay(ds.isel(time=slice(need, None)))
    cpu = (time.process_time() - cpu) * 1e3 / (ds.sizes["time"] - need)
    lat = dep.latency.to_numpy() * 1e3
    sig = []
    for _ in range(5):
        if dep._live is not None:   # one update of a copy, with the last bar again
            live, last = copy.deepcopy(dep._live), dep._buf.last()
            t = time.perf_counter()
            live.update(dep._seen, dep._buf.last_time(), last)
        else:
            t = time.perf_counter()
            dep._decide()
        sig.append((time.perf_counter() - t) * 1e3)
    return (float(np.percentile(lat[1:], 50)), float(np.percentile(lat[1:], 99)), lat[0],
            need, float(np.median(sig)), "live" if dep._live is not None else "window", cpu)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bars", type=int, default=50, help="decisions timed per strategy")
    p.add_argument("--small", type=int, default=20, help="assets of the small size (0: skip)")
    p.add_argument("--large", type=int, default=500, help="assets of the large size (0: skip)")
    p.add_argument("--history", type=int, default=1300,
                   help="history bars for strategies that read all of it")
    p.add_argument("--pairs", action="store_true", help="time the all-pairs strategies "
                   "at the large size too")
    p.add_argument("--strategies", nargs="*", default=None,
                   help="default: all; given without names: none (replays only)")
    p.add_argument("--replay-strategy",
                   default="volatility_regime,cross_sectional_momentum,spc",
                   help="comma-separated names, 'all' (every strategy) or 'none'")
    p.add_argument("--replay-checkpoint", action="store_true",
                   help="also replay with a checkpoint after every bar (as `quantlab "
                   "deploy --checkpoint`)")
    p.add_argument("--replay-block", type=int, default=64,
                   help="bars per strategy call in the second replay (0: skip it)")
    p.add_argument("--replay-bars", type=int, default=0,
                   help="bars of the bundled equities to replay (0: all 3,270)")
    a = p.parse_args(argv)
    names = ql.strategies.names() if a.strategies is None else a.strategies
    replays = {"all": ql.strategies.names(), "none": []}.get(
        a.replay_strategy, [n for n in a.replay_strategy.split(",") if n])
    for n in list(names) + replays:      # a typo fails now, not after an hour of timing
        ql.strategies.get(n)
    print(f"CPU: {cpu_name()} ({os.cpu_count()} logical cores); load average "
          "{:.1f} {:.1f} {:.1f}; quantlab {}".format(*os.getloadavg(), ql.__version__))
    if not names:
        return replay(a, replays)
    sp = ql.data.load("sp500_20").isel(asset=slice(0, a.small)).sel(time=slice(None, END))
    longest = max((ql.strategies.get(n, **PARAMS.get(n, {})).warmup or a.history)
                  for n in names) + max(ql.strategies.get(n).period for n in names)
    panels = {a.small: synthetic_ohlcv(a.small, longest + a.bars + 6)} if a.small else {}
    if a.large:
        panels[a.large] = synthetic_ohlcv(a.large, longest + a.bars + 6, seed=1)
    rows = []
    for n in names:
        s = ql.strategies.get(n)
        for size in panels:
            if size == a.large and n in PAIRS and not a.pairs:
                rows.append((n, size, "skipped (all pairs; --pairs)", np.nan, np.nan,
                             np.nan, 0, np.nan, "", np.nan))
                continue
            closes_only = set(s.requires) <= {"close"}
            ds, label = ((sp, "sp500_20") if size == a.small and closes_only
                         else (panels[size], "synthetic OHLCV"))
            t = time.perf_counter()
            p50, p99, first, hist, sig, path, cpu = decision_times(n, ds, a.bars, a.history)
            rows.append((n, size, label, p50, p99, first, hist, sig, path, cpu))
            print(f"  {n:26s} {size:4d} assets ({label}): p50 {p50:8.2f} ms  p99 "
                  f"{p99:8.2f} ms  cpu {cpu:8.2f} ms/bar  signal {sig:8.2f} ms  "
                  f"[{time.perf_counter() - t:.1f} s]", flush=True)
    table = pd.DataFrame(rows, columns=["strategy", "assets", "data", "p50_ms", "p99_ms",
                                        "first_ms", "history_bars", "signal_ms", "path",
                                        "cpu_ms"])
    print(f"\ndecision time per bar ({a.bars} bars each; goal p99 < 20 ms at 500 assets)")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    replay(a, replays)


def replay(a, names) -> None:
    """Replay the bundled equities through a deployment of each of ``names``."""
    eq = ql.data.load()
    if a.replay_bars:
        eq = eq.isel(time=slice(0, a.replay_bars))
    print()
    for name in names:
        runs = [(b, False) for b in ((1, a.replay_block) if a.replay_block > 1 else (1,))]
        for block, ck in runs + ([(1, True)] if a.replay_checkpoint else []):
            dep = ql.deploy(name, fees=0.001)
            folder = tempfile.mkdtemp()
            if ck:       # what the CLI does after each bar
                dep.listeners.append(lambda status, dep=dep: dep.checkpoint(folder))
            t, cpu = time.perf_counter(), time.process_time()
            dep.replay(eq, block=block)
            wall, cpu = time.perf_counter() - t, time.process_time() - cpu
            how = "checkpoint every bar" if ck else f"block {block}"
            print(f"replay: {name:26s} ({how}) over {eq.sizes['time']:,} bundled bars x "
                  f"{eq.sizes['asset']} assets in {wall:5.1f} s (CPU {cpu:5.1f} s) = "
                  f"{eq.sizes['time'] / wall:,.0f} bars/s (goal: 3,270 bars in < 10 s)",
                  flush=True)


if __name__ == "__main__":
    main()
