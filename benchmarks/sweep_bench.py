"""One side of the sweep benchmark, in its own process so its peak RSS is its own.

    python benchmarks/sweep_bench.py quantlab|vectorbt [n_assets] [workers]

After a warm-up on a 3-asset panel (vectorbt compiles with numba on first use), a
10 x 10 grid of MA(fast)/MA(slow) crossovers (long while fast > slow) over a
synthetic 2520-bar panel; fees 0.1 %. quantlab: ``ql.sweep`` in metrics-only mode
(Sharpe, max drawdown, total return per combination and asset). vectorbt:
``Portfolio.from_signals`` on all combinations at once (its usual way), then the same
three metrics. Prints JSON: seconds, backtests, backtests per second, peak RSS in MB.
"""
import json
import resource
import sys
import time

import numpy as np
import pandas as pd
import xarray as xr

FAST = [5, 8, 11, 14, 17, 20, 23, 26, 29, 32]
SLOW = [40, 55, 70, 85, 100, 115, 130, 145, 160, 175]


def panel(n_assets, n=2520):
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.015, (n, n_assets)), axis=0))
    t = pd.date_range("2010-01-01", periods=n, freq="D")
    return xr.Dataset({"close": (("time", "asset"), close)},
                      coords={"time": t, "asset": np.arange(n_assets)})


def run_quantlab(ds, workers):
    import quantlab as ql
    from quantlab.strategies import Strategy, register

    if "ma_cross_bench" in ql.strategies.names():
        return _sweep(ql, ds, workers)

    @register
    class MACross(Strategy):
        """Moving-average crossover (a benchmark workload, not a recommendation)."""

        name = "ma_cross_bench"
        defaults = {"fast": 10, "slow": 50}
        param_space = {"fast": (2, 50), "slow": (20, 250)}

        def _signal(self, ds, fast, slow):
            f, s = ql.rolling.mean(ds["close"], fast), ql.rolling.mean(ds["close"], slow)
            return xr.where(f > s, 1.0, 0.0).where(s.notnull())

    return _sweep(ql, ds, workers)


def _sweep(ql, ds, workers):
    res = ql.sweep("ma_cross_bench", ds, {"fast": FAST, "slow": SLOW},
                   metrics=("sharpe_ratio", "max_drawdown", "total_return"),
                   workers=workers, progress=False, fees=0.001)
    return int(res.sharpe_ratio.size)


def run_vectorbt(ds):
    import vectorbt as vbt

    close = ds["close"].to_pandas()
    fast = vbt.MA.run(close, FAST, short_name="fast")
    slow = vbt.MA.run(close, SLOW, short_name="slow")
    fa = np.repeat(fast.ma.values, len(SLOW), axis=1)           # every (fast, slow) pair
    sl = np.tile(slow.ma.values.reshape(len(close), len(SLOW), -1), (1, len(FAST), 1)) \
        .reshape(len(close), -1)
    above = fa > sl
    entries = above & ~np.roll(above, 1, axis=0)
    exits = ~above & np.roll(above, 1, axis=0)
    cols = pd.MultiIndex.from_product([FAST, SLOW, close.columns], names=["fast", "slow", "asset"])
    big = pd.DataFrame(np.tile(close.values, (1, len(FAST) * len(SLOW))), index=close.index,
                       columns=cols)
    pf = vbt.Portfolio.from_signals(big, pd.DataFrame(entries, index=close.index, columns=cols),
                                    pd.DataFrame(exits, index=close.index, columns=cols),
                                    fees=0.001, freq="D", engine="numba")
    pf.max_drawdown(), pf.total_return()       # the same three metrics as quantlab's run
    return int(pf.sharpe_ratio().size)


def main():
    side = sys.argv[1]
    n_assets = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    ds = panel(n_assets)
    run = (lambda d: run_quantlab(d, workers)) if side == "quantlab" else run_vectorbt
    run(panel(3))      # warm-up: vectorbt's numba compilation is not part of the timing
    t = time.perf_counter()
    n = run(ds)
    dt = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"side": side, "workers": workers, "seconds": dt, "backtests": n,
                      "per_second": n / dt, "peak_rss_mb": peak}))


if __name__ == "__main__":
    main()
