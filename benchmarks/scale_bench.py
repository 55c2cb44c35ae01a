"""The on-disk store at scale (issue #30): a synthetic 1-minute OHLCV panel.

    python benchmarks/scale_bench.py                   # 500 assets x 730 days (~380M bars)
    python benchmarks/scale_bench.py --assets 20 --days 10 --format csv   # a quick look

Each step runs in its own child process, so its peak RSS is its own (os.wait4):
  generate  testing.synthetic_minute_panel(..., store=): a panel straight into a store;
  files     one file per asset (Parquet or CSV, each asset's own random walk): the input;
  ingest    ql.data.ingest(files, store): read + validate (load_csv's reader) + write;
  scan      ql.data.open(store) and a dask reduction over every close (a full read);
  backtest  ql.backtest of the store, group=False (a chain per span of asset chunks) and
            group=True (one chain), both streamed over the time chunks into a results
            store, with 1 and 2 dask worker threads (and 1 pinned to one core: what a
            second worker with its own core adds), and the in-memory backtest of the
            loaded panel (its peak RSS holds the whole panel).
Rates are bars (one asset's OHLCV at one minute) per second of the step's WORK, wall
and CPU (every thread's, time.process_time): each
child imports quantlab, xarray, dask, zarr and pyarrow first (the "startup" column, ~1-10 s
on a loaded machine, which dominated every small-size rate before), then times the step
alone; the in-memory step times the backtest after the load (its load is noted). The
signal (``signal``) is a lazy time-of-day rule, two orders per asset and day: the
benchmark measures the store and the backtest, not a strategy. Not in `make test`: a full-size run takes long and writes
~20 GB to --workdir.
"""
import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def step_generate(a):
    from quantlab.testing import synthetic_minute_panel
    synthetic_minute_panel(a.assets, a.days, store=Path(a.workdir) / "generated",
                           chunk_time=a.chunk_time, chunk_asset=a.chunk_asset)


def step_files(a):
    import pandas as pd
    out = Path(a.workdir) / "files"
    out.mkdir(parents=True, exist_ok=True)
    time_ = pd.date_range("2024-01-01", periods=a.days * 1440, freq="1min")
    for i in range(a.assets):
        rng = np.random.default_rng(i)
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.0005, time_.size)))
        open_ = np.r_[100.0, close[:-1]]
        wick = np.abs(rng.normal(0, 0.0003, (2, time_.size)))
        df = pd.DataFrame({"Date": time_, "Open": open_,
                           "High": np.maximum(open_, close) * (1 + wick[0]),
                           "Low": np.minimum(open_, close) * (1 - wick[1]), "Close": close,
                           "Volume": np.round(rng.lognormal(5, 1, time_.size))})
        if a.format == "csv":
            df.to_csv(out / f"A{i:04d}.csv", index=False)
        else:
            df.to_parquet(out / f"A{i:04d}.parquet", index=False)


def step_ingest(a):
    import quantlab as ql
    ql.data.ingest(Path(a.workdir) / "files", Path(a.workdir) / "ingested",
                   chunk_time=a.chunk_time, chunk_asset=a.chunk_asset)


def step_scan(a):
    import quantlab as ql
    ds = ql.data.open(Path(a.workdir) / "ingested")
    assert np.isfinite(float(ds["close"].mean().compute()))


def signal(ds):
    """A lazy, cheap signal with a realistic turnover: 0.5 of each asset from 13:00 to
    20:00, flat otherwise (no position where a bar is missing): two orders per asset and
    day. (A signal flipping on every up-bar traded on ~half of all bars: the run's orders,
    kept in memory, then grew with the panel and dominated its peak RSS.)"""
    import xarray as xr
    hour = ds["time"].dt.hour
    return xr.where((hour >= 13) & (hour < 20) & ds["close"].notnull(), 0.5, 0.0)


def step_backtest(a, group, workers):
    """ql.backtest of the ingested store (dask-backed), streamed over the time chunks:
    group=False one chain per span of asset chunks (as many as ``workers``, the threads
    of dask's local scheduler that run the chains), group=True one chain (workers only
    load its chunks). ``--repeat`` runs, the median timed (one run's time moved by up
    to 20 % on an idle machine)."""
    import statistics

    import dask

    import quantlab as ql
    ds = ql.data.open(Path(a.workdir) / "ingested")
    sig = signal(ds)
    walls, cpus = [], []
    for _ in range(a.repeat):
        t, c = time.perf_counter(), time.process_time()
        with dask.config.set(scheduler="threads", num_workers=workers):
            res = ql.backtest(ds, sig, group=group, fees=0.0005)
            assert np.isfinite(res.equity.isel(time=-1).values).all()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        del res
    note = "" if a.repeat == 1 else (f"median of {a.repeat}: "
                                     + " ".join(f"{w:.2f}" for w in walls) + " s")
    return statistics.median(walls), statistics.median(cpus), note, sum(walls)


def _bt(group, workers):
    return lambda a: step_backtest(a, group, workers)


STEPS = {"generate": step_generate, "files": step_files, "ingest": step_ingest,
         "scan": step_scan, "backtest-group=False-1w": _bt(False, 1),
         "backtest-group=False-2w": _bt(False, 2), "backtest-group=True-1w": _bt(True, 1),
         "backtest-group=True-2w": _bt(True, 2),
         # a worker and its core: 1 worker pinned to one core, against 2 workers on 2
         # (the unpinned 1-worker run's loads and writes already use a second core)
         "backtest-group=False-1w-1core": _bt(False, 1),
         "backtest-group=True-1w-1core": _bt(True, 1), "backtest-in-memory": None}


def step_in_memory(a):
    """The same backtest (group=False) on the panel loaded into memory: the peer, the
    median of ``--repeat`` runs as the store rows (one run moved 0.38-0.58 s in an
    hour)."""
    import statistics

    import quantlab as ql
    t = time.perf_counter()
    ds = ql.data.open(Path(a.workdir) / "ingested").load()
    sig = signal(ds)
    loaded = time.perf_counter() - t
    walls, cpus = [], []
    for _ in range(a.repeat):   # the median of as many runs as the store rows
        t, c = time.perf_counter(), time.process_time()
        # the kernel on one thread, as each chain of the store's runs calls it
        res = ql.backtest(ds, sig, fees=0.0005, threads=1)
        assert np.isfinite(res.equity.isel(time=-1).values).all()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        del res
    runs = "" if a.repeat == 1 else ("median of " + str(a.repeat) + ": "
                                     + " ".join(f"{w:.2f}" for w in walls) + " s; ")
    return (statistics.median(walls), statistics.median(cpus),
            f"{runs}load + signal {loaded:.1f} s not counted", sum(walls) + loaded)


STEPS["backtest-in-memory"] = step_in_memory


def run_step(a):
    """In the child: imports first (not timed), then the step; its work seconds (and a
    note) go to a file the parent reads. A ``-1core`` step runs on one core."""
    if a.step.endswith("-1core"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:1])
    import dask.array  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import xarray  # noqa: F401
    import zarr  # noqa: F401

    import quantlab.backtesting  # noqa: F401
    import quantlab.store  # noqa: F401
    t, c = time.perf_counter(), time.process_time()
    got = STEPS[a.step](a)     # the backtests time themselves (the median of repeats)
    if not got:
        secs = time.perf_counter() - t
        got = (secs, time.process_time() - c, "", secs)
    secs, cpu, note, spent = got   # spent: every second of the step's work, repeats too
    Path(a.workdir, f".{a.step}.secs").write_text(f"{secs}\n{cpu}\n{spent}\n{note}")


def run_child(argv, step, work):
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, *argv, "--step", step])
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if status:
        raise SystemExit(f"step {step} failed (status {status})")
    secs, cpu, spent, note = Path(work, f".{step}.secs").read_text().split("\n", 3)
    return wall - float(spent), float(secs), float(cpu), note, usage.ru_maxrss / 1024


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--assets", type=int, default=500)
    p.add_argument("--days", type=int, default=730)
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    p.add_argument("--chunk-time", type=int, default=8192)
    p.add_argument("--chunk-asset", type=int, default=64)
    p.add_argument("--workdir", default=None, help="default: a temporary directory, removed")
    p.add_argument("--repeat", type=int, default=3, help="runs of each store backtest step")
    p.add_argument("--skip", nargs="*", default=[], choices=list(STEPS),
                   help="steps not to run (skip files and ingest only with a --workdir "
                        "that holds them from an earlier run)")
    p.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.step:
        return run_step(a)
    work = a.workdir or tempfile.mkdtemp(prefix="ql-scale-")
    argv = ["--assets", str(a.assets), "--days", str(a.days), "--format", a.format,
            "--chunk-time", str(a.chunk_time), "--chunk-asset", str(a.chunk_asset),
            "--workdir", work, "--repeat", str(a.repeat)]
    bars = a.assets * a.days * 1440
    print(f"Store scale bench: {a.assets} assets x {a.days} days of 1-minute OHLCV = "
          f"{bars:,} bars ({bars * 5 * 8 / 1e9:.2f} GB float64); chunks {a.chunk_time} x "
          f"{a.chunk_asset}; input {a.format}. CPU: {cpu_name()} ({os.cpu_count()} cores)\n")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| step | startup s | work s | bars/s | CPU s | bars/CPU s | peak RSS (MB) "
          "| note |\n|---|---:|---:|---:|---:|---:|---:|---|")
    if not hasattr(os, "sched_setaffinity"):   # Linux only: no pinned rows elsewhere
        a.skip += [k for k in STEPS if k.endswith("-1core")]
    try:
        for step in (k for k in STEPS if k not in a.skip):
            startup, secs, cpu, note, rss = run_child(argv, step, work)
            print(f"| {step} | {startup:.1f} | {secs:.1f} | {bars / secs:,.0f} | "
                  f"{cpu:.1f} | {bars / cpu:,.0f} | {rss:,.0f} | {note} |", flush=True)
        size = sum(f.stat().st_size for f in Path(work, "ingested").rglob("*") if f.is_file())
        print(f"\nstore on disk: {size / 1e6:,.0f} MB; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if a.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
