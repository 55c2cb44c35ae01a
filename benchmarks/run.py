"""quantlab benchmarks: each kernel against its named peer in the same run, as a ratio.

    make bench                                   # or: python benchmarks/run.py
    python benchmarks/run.py --only rolling      # one section
    python benchmarks/run.py --write docs/benchmarks.md

Prints Markdown tables, each section's with the CPU, SIMD level, core count and load.
``--write FILE`` also puts each section's output between the markers
``<!-- bench:SECTION -->`` and ``<!-- /bench:SECTION -->`` of FILE (the prose around
them stays), so the published tables are one run's output, not hand-copied numbers.
Absolute times on these shared machines are noisy; the ratio peer/quantlab within one
run is what to read. Timings are the median of repeated runs after a warm-up.
"""
import argparse
import contextlib
import io
import platform
import re
import statistics
import subprocess
import sys
import time
from functools import partial

import numpy as np
import pandas as pd
import xarray as xr


def timeit(fn, repeat=7, number=None):
    """Median seconds per call over ``repeat`` rounds of ``number`` calls; by default a
    round lasts >= 5 ms, so microsecond calls are not timed one by one."""
    t = time.perf_counter()
    fn()
    if number is None:
        number = max(1, int(0.005 / max(time.perf_counter() - t, 1e-9)))
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t) / number)
    return statistics.median(times)


def bench_returns(n=2520, m=1000):
    import quantlab as ql

    rng = np.random.default_rng(0)
    p = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, m)), axis=0))
    p[rng.random((n, m)) < 0.01] = np.nan
    df = pd.DataFrame(p)
    ours = timeit(lambda: ql.data.returns(p))
    # the peer: pandas pct_change (no fill; it leaves the bar after a gap NaN, we bridge it)
    peer = timeit(lambda: df.pct_change(fill_method=None))
    return f"simple returns, {n}x{m} panel, 1% holes", "pandas pct_change", ours, peer


def bench_load():
    import quantlab as ql

    ours = timeit(lambda: ql.data.load("equities"))
    from quantlab.data import data_dir

    peer = timeit(lambda: pd.read_csv(data_dir() / "equities.csv.gz", parse_dates=["Date"]))
    return "load + adjust + validate bundled equities", "pandas read_csv alone", ours, peer


def bench_import():
    code = "import time; t = time.perf_counter(); import {m}; print(time.perf_counter() - t)"

    def once(m):
        return float(subprocess.run([sys.executable, "-c", code.format(m=m)],
                                    capture_output=True, text=True, check=True).stdout)

    ours = statistics.median(once("quantlab") for _ in range(7))
    peer = statistics.median(once("xarray") for _ in range(7))
    return "`import quantlab` (fresh process; submodules load on use)", "import xarray", ours, peer


def bench_rolling(n=2520, m=1000, window=20):
    """Rolling kernels on a (time, asset) float64 panel vs bottleneck, pandas, numbagg.

    Returns rows (stat, {implementation: seconds}); 'copy' is a memory copy of the panel,
    the floor; 'quantlab' runs one thread, 'quantlab 2 threads' the same kernel over
    blocks of rows (columns for ewm/rank) on quantlab's thread pool (``threads=2``), each
    written into one result; 'quantlab baseline' is the x86-64
    baseline build (SSE2), what a CPU without AVX2 runs.
    """
    import bottleneck as bn
    import dask
    import xarray as xr
    try:   # make bench installs it (pyproject's [bench] extra); a direct run may lack it
        import numbagg
    except ImportError:
        numbagg = None

    import quantlab as ql
    from quantlab._kernels import load

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, m))
    df = pd.DataFrame(x)

    def two_threads(f):
        return lambda: f(x, window, threads=2)

    zs_bn = lambda: (x - bn.move_mean(x, window, axis=0)) / bn.move_std(x, window, axis=0, ddof=1)  # noqa: E731
    peers = {
        "mean": (lambda: bn.move_mean(x, window, axis=0),
                 lambda: df.rolling(window).mean(),
                 numbagg and (lambda: numbagg.move_mean(x, window=window, axis=0))),
        "std": (lambda: bn.move_std(x, window, axis=0, ddof=1),
                lambda: df.rolling(window).std(),
                numbagg and (lambda: numbagg.move_std(x, window=window, axis=0))),
        "min": (lambda: bn.move_min(x, window, axis=0),
                lambda: df.rolling(window).min(), None),
        "zscore": (zs_bn, lambda: (df - df.rolling(window).mean()) / df.rolling(window).std(),
                   None),
    }
    copy = timeit(lambda: x.copy())
    best, baseline = ql.rolling._k, load("rolling", "baseline")
    rows = []
    with dask.config.set(scheduler="threads"):
        for stat, (b, p, nb) in peers.items():
            f = getattr(ql.rolling, stat)
            ql.rolling._k = baseline
            base = timeit(lambda: f(x, window, threads=1))
            ql.rolling._k = best
            t = {"quantlab": timeit(lambda: f(x, window, threads=1)), "quantlab baseline": base,
                 "quantlab 2 threads": timeit(two_threads(f)),
                 "bottleneck": timeit(b), "pandas": timeit(p, repeat=3),
                 "numbagg": timeit(nb) if nb else float("nan"), "copy": copy}
            rows.append((stat, t))
    return rows


def bench_metrics(n=2520, m=1000, rounds=None):
    """Every returns metric empyrical also has, on a (time, asset) panel, vs empyrical.

    empyrical vectorises some metrics over columns and loops in Python for the rest
    (calmar, tail ratio, stability, VaR, CVaR, captures, alpha); both sides compute the
    same set of 16 metrics, quantlab via one ``summary`` call. ``rounds``: time the two
    in turn that many rounds (``_interleaved``).
    """
    import warnings

    import empyrical as ep

    import quantlab as ql

    rng = np.random.default_rng(0)
    r = rng.normal(0.0004, 0.015, (n, m))
    b = rng.normal(0.0003, 0.012, n)

    def ours():
        ql.metrics.summary(r, benchmark=b)

    def theirs():
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            ep.sharpe_ratio(r), ep.sortino_ratio(r), ep.max_drawdown(r)
            ep.annual_return(r), ep.annual_volatility(r), ep.downside_risk(r)
            ep.cum_returns_final(r), ep.beta(r, b)
            for j in range(m):
                c = r[:, j]
                ep.calmar_ratio(c), ep.tail_ratio(c), ep.stability_of_timeseries(c)
                ep.value_at_risk(c), ep.conditional_value_at_risk(c)
                ep.alpha(c, b), ep.up_capture(c, b), ep.down_capture(c, b)

    if rounds:  # (ours, peer, ratio) timed in turn
        return _interleaved([ours, theirs], rounds)
    return ("16 empyrical metrics + 7 more, 2520 x 1000 panel (one summary call)",
            "empyrical (16 metrics)", timeit(ours, repeat=3), timeit(theirs, repeat=1))


def cpu_header():
    """The CPU model, the kernel build level quantlab runs on it, the core count and
    $QUANTLAB_THREADS (the thread pool's default: ``quantlab._threads``)."""
    import os

    from quantlab._kernels import cpu_level

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:   # a loaded machine stretches wall times: say how loaded it was
        load = "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "load average unknown"
    return (f"CPU: {model}; SIMD level: {cpu_level()}; cores: {os.cpu_count()}; "
            f"QUANTLAB_THREADS: {os.environ.get('QUANTLAB_THREADS', 'unset')}; {load}")


SINGLE_METRICS = ("sharpe_ratio", "sortino_ratio", "annual_return", "annual_volatility",
                  "max_drawdown", "calmar_ratio", "value_at_risk",
                  "conditional_value_at_risk")


def bench_metrics_single(n=2520, m=1000):
    """Each metric called alone on a float64 C-ordered (time, asset) panel, NumPy input
    and a DataArray with coordinates, vs empyrical's same function (its calmar, VaR and
    CVaR take one series: looped over the columns, as a user must)."""
    import warnings

    import empyrical as ep

    import quantlab as ql

    rng = np.random.default_rng(0)
    r = rng.normal(0.0004, 0.015, (n, m))
    da = xr.DataArray(r, dims=("time", "asset"),
                      coords={"time": pd.bdate_range("2010-01-01", periods=n),
                              "asset": [f"A{j}" for j in range(m)]})
    rows = []
    for name in SINGLE_METRICS:
        ours, theirs = getattr(ql.metrics, name), getattr(ep, name)
        looped = name in ("calmar_ratio", "value_at_risk", "conditional_value_at_risk")

        def peer():
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                if looped:
                    return [theirs(r[:, j]) for j in range(m)]
                return theirs(r)

        rows.append((name, *_interleaved([lambda: ours(r), lambda: ours(da, dim="time"), peer],
                                         rounds=5 if looped else 9)))
    return rows


def _interleaved(fns, rounds):
    """Median seconds per call of each of ``fns`` timed in turn, round after round (on a
    shared machine a slow spell then hits all sides), and the median per-round ratio of
    the last one's time to each other's."""
    number = [max(1, int(0.02 / max(timeit(f, repeat=1, number=1), 1e-9))) for f in fns]
    times = [[] for _ in fns]
    for _ in range(rounds):
        for f, k, ts in zip(fns, number, times):
            t = time.perf_counter()
            for _ in range(k):
                f()
            ts.append((time.perf_counter() - t) / k)
    ratios = [statistics.median(p / o for o, p in zip(ts, times[-1])) for ts in times[:-1]]
    return (*[statistics.median(ts) for ts in times], *ratios)


def metrics_table():
    import quantlab as ql

    print()
    print(f"Metrics, each called alone, 2520 x 1000 float64 (time, asset) panel. {cpu_header()}; "
          f"metrics kernel build: {ql.metrics._k.__name__}. Ratio = empyrical time / "
          "quantlab time, the median over rounds that time each side in turn (> 1: "
          "quantlab faster).")
    print()
    print("| metric | quantlab NumPy | quantlab DataArray | empyrical | ratio NumPy | "
          "ratio DataArray |")
    print("|---|---|---|---|---|---|")
    for name, o_np, o_da, peer, ratio_np, ratio_da in bench_metrics_single():
        print(f"| {name} | {o_np * 1e3:.2f} ms | {o_da * 1e3:.2f} ms | {peer * 1e3:.2f} ms | "
              f"{ratio_np:.1f}x | {ratio_da:.1f}x |")
    ours, peer, ratio = bench_metrics(rounds=3)
    print(f"| summary() (23 metrics) vs empyrical's 16 one after another | {ours * 1e3:.1f} ms "
          f"| — | {peer * 1e3:.1f} ms | {ratio:.1f}x | — |")


BACKTEST_SETUP = """
import numpy as np, pandas as pd, xarray as xr, time, warnings
warnings.simplefilter("ignore")
rng = np.random.default_rng(42)
n, m = 2520, 1000
close = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.015, (n, m)), axis=0))
t = pd.date_range("2010-01-01", periods=n, freq="D")
da = xr.DataArray(close, dims=("time", "asset"), coords={"time": t, "asset": np.arange(m)})
import quantlab as ql
f, s = ql.rolling.mean(da, 10), ql.rolling.mean(da, 50)
entries = (f > s) & (f.shift(time=1) <= s.shift(time=1))
exits = (f < s) & (f.shift(time=1) >= s.shift(time=1))
"""


def bench_backtest():
    """MA(10)/MA(50) crossover, 2520 x 1000, fees 0.1 %, slippage 5 bp: quantlab vs
    vectorbt from_signals in the same run (steady state; numba and Rust engines), and each
    one's first call in a fresh process (vectorbt compiles with numba; its cache dir is
    emptied)."""
    import tempfile

    ns = {}
    exec(BACKTEST_SETUP, ns)
    ql, vbt_entries, vbt_exits = ns["ql"], ns["entries"].to_pandas(), ns["exits"].to_pandas()
    import vectorbt as vbt

    close = ns["da"].to_pandas()
    # one thread, as vectorbt runs (the threads table has quantlab's second core)
    ours = timeit(lambda: ql.backtest(ns["da"], entries=ns["entries"], exits=ns["exits"],
                                      fees=0.001, slippage=0.0005, threads=1), repeat=3)
    theirs, rust = (timeit(lambda: vbt.Portfolio.from_signals(
        close, vbt_entries, vbt_exits, fees=0.001, slippage=0.0005,
        engine=engine).final_value(), repeat=3) for engine in ("numba", "rust"))
    # vectorbt's bare simulation (no equity curve) and with its equity curve, each timed
    # alternately with quantlab (benchmarks/backtest_profile.ratios): the ratios of issue #32
    from backtest_profile import ratios
    med, rat = ratios(ns, 5)
    first = {}
    for name, call in (("quantlab", "ql.backtest(da, entries=entries, exits=exits, "
                                    "fees=0.001, slippage=0.0005, threads=1)"),
                       ("vectorbt", "import vectorbt as vbt; vbt.Portfolio.from_signals("
                                    "da.to_pandas(), entries.to_pandas(), exits.to_pandas(), "
                                    "fees=0.001, slippage=0.0005, engine='numba')"
                                    ".final_value()")):
        code = (BACKTEST_SETUP + "t0 = time.perf_counter()\n" + call
                + "\nprint(time.perf_counter() - t0)")
        with tempfile.TemporaryDirectory() as cache:
            env = {**__import__("os").environ, "NUMBA_CACHE_DIR": cache}
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True, env=env)
        first[name] = float(out.stdout.strip().splitlines()[-1])
    return [("backtest MA(10)/MA(50), 2520 x 1000, steady state", "vectorbt from_signals",
             ours, theirs),
            ("the same, vectorbt's Rust engine", "vectorbt from_signals, engine=\"rust\"",
             ours, rust),
            ("the same, vectorbt's bare simulation (no equity curve; alternated)",
             "vectorbt from_signals", med["ql"], med["ql"] * rat["bare / ql"]),
            ("the same, vectorbt with its equity curve (alternated)",
             "vectorbt from_signals(...).value()", med["ql"], med["ql"] * rat["value / ql"]),
            ("backtest, first call in a fresh process (incl. import + JIT)",
             "vectorbt from_signals", first["quantlab"], first["vectorbt"])]


def bench_stops():
    """The same crossover on OHLC bars with a 5 % stop-loss and a 10 % take-profit, fees
    0.1 %: quantlab vs vectorbt from_signals with the same stops, steady state (final
    values checked equal first)."""
    import vectorbt as vbt

    ns = {}
    exec(BACKTEST_SETUP, ns)
    ql, da = ns["ql"], ns["da"]
    rng = np.random.default_rng(7)
    c = da.values
    o = c * np.exp(rng.normal(0, 0.004, c.shape))
    h = np.maximum(o, c) * (1 + rng.uniform(0, 0.01, c.shape))
    lo = np.minimum(o, c) * (1 - rng.uniform(0, 0.01, c.shape))
    ds = xr.Dataset({"open": (da.dims, o), "high": (da.dims, h), "low": (da.dims, lo),
                     "close": da})
    pd_ = {k: ds[k].to_pandas() for k in ("open", "high", "low", "close")}
    e, x = ns["entries"], ns["exits"]
    ep, xp = e.to_pandas(), x.to_pandas()
    kw = dict(fees=0.001, sl_stop=0.05, tp_stop=0.1)

    def ours():
        return ql.backtest(ds, entries=e, exits=x, threads=1, **kw)

    def theirs():
        return vbt.Portfolio.from_signals(pd_["close"], ep, xp, open=pd_["open"],
                                          high=pd_["high"], low=pd_["low"],
                                          init_cash=100_000.0, engine="numba",
                                          **kw).final_value()

    np.testing.assert_allclose(ours().equity.isel(time=-1).values, theirs().values, rtol=1e-9)
    return ("backtest with stop-loss + take-profit on OHLC, 2520 x 1000",
            "vectorbt from_signals", timeit(ours, repeat=3), timeit(theirs, repeat=3))


def bench_measures(n=2520, m=100, window=252, n_peer_windows=200):
    """Each measure on one 2520-point series vs nolds 0.6.2 / antropy, and its rolling form
    over a 2520 x 100 panel (window 252) vs the peer looped over ``n_peer_windows``
    windows and extrapolated to all (m * (n - window + 1)) windows. Peer parameters
    equal ours (nolds with fit="poly"; lyap_r with emb_dim=10, lag=1, min_tsep=10,
    trajectory_len=20)."""
    import warnings

    import xarray as xr

    import quantlab as ql

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import antropy
        import nolds
    qm = ql.measures
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    panel = xr.DataArray(rng.normal(size=(n, m)), dims=("time", "asset"))
    lyap = dict(emb_dim=10, lag=1, min_tsep=10, trajectory_len=20)
    cases = [  # name, ours, peer name, peer(series)
        ("hurst", qm.hurst, qm.rolling_hurst, "nolds", lambda s: nolds.hurst_rs(s, fit="poly")),
        ("dfa", qm.dfa, qm.rolling_dfa, "nolds",
         lambda s: nolds.dfa(s, overlap=False, fit_exp="poly")),
        ("lyapunov_r", partial(qm.lyapunov_r, **lyap),
         partial(qm.rolling_lyapunov_r, **lyap), "nolds",
         lambda s: nolds.lyap_r(s, fit="poly", **lyap)),
        ("dfa (vs antropy)", qm.dfa, qm.rolling_dfa, "antropy", antropy.detrended_fluctuation),
        ("sample_entropy", qm.sample_entropy, qm.rolling_sample_entropy, "antropy",
         antropy.sample_entropy),
        ("permutation_entropy", qm.permutation_entropy, qm.rolling_permutation_entropy,
         "antropy", antropy.perm_entropy),
        ("higuchi_fd", qm.higuchi_fd, qm.rolling_higuchi_fd, "antropy", antropy.higuchi_fd),
        ("katz_fd", qm.katz_fd, qm.rolling_katz_fd, "antropy", antropy.katz_fd),
    ]
    rows = []
    total = m * (n - window + 1)
    for name, one, roll, peer_name, peer in cases:
        ours1 = timeit(lambda: one(x), repeat=5)
        peer1 = timeit(lambda: peer(x), repeat=3)
        oursr = timeit(lambda: roll(panel, window), repeat=1)
        w = np.ascontiguousarray(panel.values[:, 0])
        t0 = time.perf_counter()
        for end in range(window, window + n_peer_windows):
            peer(w[end - window:end])
        peerr = (time.perf_counter() - t0) / n_peer_windows * total
        rows.append((name, peer_name, ours1, peer1, oursr, peerr))
    return rows


def engine_table():
    from quantlab.engine.bench import bench

    print()
    print("Tick engine (`quantlab engine-bench`): ticks per second against the pure-Python "
          "reference engine in the same run, and the seed's published 42,735 ticks/s. "
          + cpu_header() + ".")
    print()
    print(bench())


def script_table(name, extra):
    """benchmarks/NAME.py in a child process (its own peak RSS), its output as is."""
    from pathlib import Path

    script = Path(__file__).with_name(f"{name}.py")
    out = subprocess.run([sys.executable, "-W", "ignore", str(script), *extra],
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{script.name} failed:\n{out.stderr[-3000:]}")
    # a script printing plain text (not Markdown tables) is shown as it is
    print(out.stdout if "|---" in out.stdout else f"```text\n{out.stdout.rstrip()}\n```")


# sections that take minutes to hours (a 500-asset deployment, a 380M-bar store): run
# only when named, e.g. make bench BENCH_ARGS="--only scale -- --assets 100 --days 30"
LONG = {"deploy": "deploy_bench", "scale": "scale_bench"}

SECTIONS = {"threads": lambda: threads_table(), "core": lambda: core(),
            "metrics": lambda: metrics_table(), "rolling": lambda: rolling_table(),
            "measures": lambda: measures_table(), "sweep": lambda: sweep_table(),
            "engine": lambda: engine_table()}


def write_sections(path, outputs: dict, dry: bool = False) -> None:
    """Replace the text between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` in
    ``path`` by each section's output; a section without markers is an error (the page
    would silently keep old numbers); ``dry``: only check."""
    from pathlib import Path

    text = Path(path).read_text()
    for name, out in outputs.items():
        pat = re.compile(rf"(<!-- bench:{name} -->\n).*?(<!-- /bench:{name} -->)", re.S)
        if not pat.search(text):
            raise SystemExit(f"{path} has no <!-- bench:{name} --> ... <!-- /bench:{name} --> "
                             "markers")
        text = pat.sub(lambda m: m.group(1) + out.strip("\n") + "\n" + m.group(2), text)
    if not dry:
        Path(path).write_text(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=[*SECTIONS, *LONG],
                        help="run one section only (deploy and scale run only when named)")
    parser.add_argument("extra", nargs="*",
                        help="after --: arguments for the deploy/scale script")
    parser.add_argument("--write", metavar="FILE",
                        help="also write each section's tables between its markers in FILE")
    args = parser.parse_args()
    todo = [n for n in (*SECTIONS, *LONG) if args.only == n or (args.only is None
                                                                and n in SECTIONS)]
    if args.write:   # check the page before the run, not after minutes of timing
        write_sections(args.write, {n: "" for n in todo}, dry=True)
    print(cpu_header())
    outputs = {}
    for name in todo:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            if name in LONG:
                script_table(LONG[name], args.extra)
            else:
                SECTIONS[name]()
        outputs[name] = buf.getvalue()
        print(outputs[name], flush=True)
    if args.write:
        write_sections(args.write, outputs)


THREAD_ROUNDS = 40   # 15 rounds of ~3 ms calls left the medians 1.3-1.6x apart run to run


def bench_threads(n=2520, m=1000, window=20, counts=(1, 2), rounds=THREAD_ROUNDS):
    """Rolling mean/std/zscore (``threads=``), metrics ``summary`` (via
    $QUANTLAB_THREADS, its only knob) on a 2520 x 1000 float64 panel, and the backtest
    benchmark's MA crossover (``BACKTEST_SETUP``, ``threads=``) with each thread count
    in ``counts``, timed in turn round after round (the order of the counts
    alternating): {(case, threads): [seconds per round], (case, threads, "cpu"): [CPU
    seconds of all threads per round]}."""
    import os

    import quantlab as ql

    rng = np.random.default_rng(0)
    x = rng.normal(0.0004, 0.015, (n, m))
    b = rng.normal(0.0003, 0.012, n)
    env = os.environ.get("QUANTLAB_THREADS")

    def summary(t):
        os.environ["QUANTLAB_THREADS"] = str(t)
        ql.metrics.summary(x, benchmark=b)

    bt = {}
    exec(BACKTEST_SETUP, bt)

    def backtest(t):
        ql.backtest(bt["da"], entries=bt["entries"], exits=bt["exits"], fees=0.001,
                    slippage=0.0005, threads=t)

    cases = {"rolling mean": lambda t: ql.rolling.mean(x, window, threads=t),
             "rolling std": lambda t: ql.rolling.std(x, window, threads=t),
             "rolling zscore": lambda t: ql.rolling.zscore(x, window, threads=t),
             "metrics summary": summary, "backtest": backtest}
    times = {}
    try:
        for f in cases.values():       # warm-up: the pool, the kernels' first pages
            for t in counts:
                f(t)
        for r in range(rounds):
            for name, f in cases.items():
                for t in counts if r % 2 else counts[::-1]:
                    c0, t0 = time.process_time(), time.perf_counter()
                    f(t)
                    times.setdefault((name, t), []).append(time.perf_counter() - t0)
                    times.setdefault((name, t, "cpu"), []).append(time.process_time() - c0)
    finally:
        if env is None:
            os.environ.pop("QUANTLAB_THREADS", None)
        else:
            os.environ["QUANTLAB_THREADS"] = env
    return list(cases), times


def core_counts():
    """1, 2, 4, ... up to the machine's core count, and the core count itself."""
    import os

    cores = max(1, os.cpu_count() or 1)
    counts = [1]
    while counts[-1] * 2 <= cores:
        counts.append(counts[-1] * 2)
    return tuple(counts) if counts[-1] == cores else (*counts, cores)


def threads_table(counts=None):
    counts = counts or core_counts()
    names, times = bench_threads(counts=counts)
    print(f"Threads: 2520 x 1000 float64 panel, window 20; quantlab's pool over row blocks "
          f"(rolling; cut at multiples of the window) and column blocks (summary; the "
          f"backtest's accounts: the MA crossover of the backtest table, whose signal "
          f"checks and result building stay serial) ({cpu_header()}). Each cell: median "
          f"ms / best ms over {THREAD_ROUNDS} rounds that time every "
          "thread count in turn (shared machine: read the medians and bests together), "
          "(speedup) = 1-thread median / this median; CPU = the median CPU time of all "
          "threads / 1 thread's (what the split costs); idle = threads / CPU, the speedup "
          "on idle cores (on a loaded machine wall times say more about the load).")
    print()
    print("| threads | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for t in counts:
        cells = []
        for name in names:
            ts, one = times[(name, t)], times[(name, counts[0])]
            cpu = (statistics.median(times[(name, t, "cpu")])
                   / statistics.median(times[(name, counts[0], "cpu")]))
            cells.append(f"{statistics.median(ts) * 1e3:.2f} / {min(ts) * 1e3:.2f} "
                         f"({statistics.median(one) / statistics.median(ts):.2f}x; "
                         f"CPU {cpu:.2f}x; idle {t / cpu:.2f}x)")
        print(f"| {t} | " + " | ".join(cells) + " |")


def measures_table():
    print()
    print("Measures: one series of 2520 points, and rolling (window 252) over a 2520 x 100 "
          "panel, single-threaded; the peer's rolling time is its per-window time on 200 "
          "windows x 227,000 windows (extrapolated). " + cpu_header() + ".")
    print()
    print("| measure | peer | quantlab 1 series | peer | ratio | quantlab rolling | "
          "peer rolling (extrap.) | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for name, peer_name, o1, p1, orr, pr in bench_measures():
        print(f"| {name} | {peer_name} | {o1 * 1e3:.3f} ms | {p1 * 1e3:.3f} ms | "
              f"{p1 / o1:.1f}x | {orr:.2f} s | {pr:.0f} s | {pr / orr:.0f}x |")


def sweep_table():
    """benchmarks/sweep_bench.py in fresh processes: throughput and peak RSS."""
    import json
    from pathlib import Path

    script = Path(__file__).with_name("sweep_bench.py")

    def side(*args):
        out = subprocess.run([sys.executable, "-W", "ignore", str(script), *map(str, args)],
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    print()
    print("Sweeps: a 10 x 10 MA-crossover grid on a 2520-bar synthetic panel (one process per "
          "row; vectorbt after its numba warm-up). vectorbt at 1000 assets is not run: it was "
          "killed by the out-of-memory killer at 24 GB RSS on this 24 GB machine. "
          + cpu_header() + ".")
    print()
    print("| run | backtests | seconds | backtests/s | peak RSS |")
    print("|---|---|---|---|---|")
    for args in (("vectorbt", 100), ("quantlab", 100, 1), ("quantlab", 100, 2),
                 ("quantlab", 1000, 1), ("quantlab", 1000, 2)):
        r = side(*args)
        who = r["side"] + (f", {r['workers']} worker(s)" if r["side"] == "quantlab" else "")
        print(f"| {who}, {args[1]} assets | {r['backtests']:,} | {r['seconds']:.2f} | "
              f"{r['per_second']:,.0f} | {r['peak_rss_mb']:,.0f} MB |")


def core():
    rows = [bench_returns(), bench_load(), bench_import(), bench_metrics(), *bench_backtest(),
            bench_stops()]
    print(f"Core: returns, loading, import, metrics, backtests ({cpu_header()}). "
          "Ratio = peer time / quantlab time (> 1: quantlab faster).")
    print()
    print("| what | peer | quantlab | peer time | peer / quantlab |")
    print("|---|---|---|---|---|")
    for what, peer_name, ours, peer in rows:
        print(f"| {what} | {peer_name} | {ours * 1e3:.2f} ms | {peer * 1e3:.2f} ms | "
              f"{peer / ours:.1f}x |")


def rolling_table():
    print()
    import quantlab as ql
    from quantlab._kernels import cpu_level

    print(f"Rolling window 20 on a 2520 x 1000 float64 panel; times in ms; quantlab runs its "
          f"{cpu_level()} kernel build ({ql.rolling._k.__name__}; {cpu_header()}). Peers: (ratio) = "
          "peer time / quantlab single-threaded time (> 1: quantlab faster). 2 threads: "
          "(speedup) = single-threaded time / 2-thread time. Baseline: the x86-64 (SSE2) "
          "build, what a CPU without AVX2 runs, (ratio) as for the peers.")
    print()
    print("| stat | quantlab | quantlab 2 threads | quantlab baseline | bottleneck | pandas "
          "| numbagg | memory copy |")
    print("|---|---|---|---|---|---|---|---|")
    for stat, t in bench_rolling():
        q = t["quantlab"]

        def cell(k):
            v = t[k]
            return "—" if v != v else f"{v * 1e3:.2f} ({v / q:.1f}x)"

        two = t["quantlab 2 threads"]
        print(f"| {stat} | {q * 1e3:.2f} | {two * 1e3:.2f} ({q / two:.1f}x) | "
              f"{cell('quantlab baseline')} | {cell('bottleneck')} | "
              f"{cell('pandas')} | {cell('numbagg')} | {cell('copy')} |")


if __name__ == "__main__":
    main()
