"""Parameter sweeps at scale: every combination of a grid backtested in the kernel's
metrics-only mode, chunk by chunk, so memory follows the chunk size and not the grid.

``ql.sweep(strategy, data, grid, metrics=..., chunks=None, workers=None, client=None,
store=None, **backtest_kw)`` → ``xr.Dataset`` with one dim per grid parameter (in the
grid's order) and ``asset`` (per-asset accounts) or none (``group=True``: the strategy
return stream of DESIGN.md). Chunks run on a thread pool (the kernels release the GIL) or
on a ``dask.distributed.Client`` (a LocalCluster, or a real cluster through its
scheduler address). With ``store=`` each finished chunk is written there as it completes
(``chunk_<i>.npz``), and a rerun with the same arguments loads those and computes only
the rest, so an interrupted sweep resumes.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["sweep", "DEFAULT_METRICS"]

DEFAULT_METRICS = ("sharpe_ratio", "max_drawdown", "annual_return", "total_return",
                   "turnover")
_SIGNAL_BUDGET = 20_000_000     # signal values per chunk by default (~160 MB float64)


def _run_chunk(strategy, data, keys, combos, inputs, metrics, backtest_kw):
    """Backtest ``combos`` (tuples of values for ``keys``) in one metrics-only call."""
    from quantlab.backtest import backtest

    sigs = []
    for combo in combos:
        s = type(strategy)(**{**strategy.params, **dict(zip(keys, combo))})
        sigs.append(s.signal(data, **inputs))
    sig = xr.concat(sigs, dim=pd.Index(np.arange(len(combos)), name="combo"),
                    coords="minimal", compat="override")
    out = backtest(data, sig, metrics_only=tuple(metrics), **backtest_kw)
    return {m: out[m].transpose("combo", ...).values for m in metrics}


def sweep(strategy, data, grid: dict, metrics=DEFAULT_METRICS, chunks=None, workers=None,
          client=None, store=None, progress=True, **backtest_kw) -> xr.Dataset:
    """Backtest every combination of ``grid`` ({parameter: [values]}) of ``strategy`` (a
    registry name or a Strategy, whose other parameters stay as given) on ``data``.

    ``chunks``: combinations per chunk (default: ~20M signal values per chunk);
    ``workers``: threads (default: the machine's cores); ``client``: a
    ``dask.distributed.Client`` instead of threads; ``store``: a directory for
    incremental results and resuming. ``metrics``: names accepted by
    ``backtest(metrics_only=)``.
    """
    from quantlab.backtest import STREAMED_EXTRAS
    from quantlab.metrics import streaming_names

    from quantlab.strategies import resolve

    strat = resolve(strategy)
    if not grid:
        raise ValueError("grid is empty: give {parameter: [values, ...]}")
    unknown = sorted(set(grid) - set(strat.defaults))
    if unknown:
        raise ValueError(f"{strat.name}: unknown grid parameter(s) {unknown}; parameters are "
                         f"{sorted(strat.defaults)}")
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    bad = sorted(set(metrics) - set(streaming_names()) - set(STREAMED_EXTRAS))
    if bad:
        raise ValueError(f"sweep: metric(s) {bad} are not available in a metrics-only run; "
                         f"choose from {', '.join(streaming_names())}, "
                         f"{', '.join(STREAMED_EXTRAS)}")
    keys = list(grid)
    values = [list(v) if isinstance(v, (list, tuple, np.ndarray, pd.Index)) else [v]
              for v in grid.values()]
    combos = list(itertools.product(*values))
    n_t, n_a = data.sizes["time"], data.sizes["asset"]
    per_chunk = chunks or max(1, _SIGNAL_BUDGET // (n_t * n_a))
    parts = [combos[i:i + per_chunk] for i in range(0, len(combos), per_chunk)]
    inputs = strat.default_inputs(data)
    todo = list(range(len(parts)))
    done: dict[int, dict] = {}
    folder = None
    if store is not None:
        folder = Path(store)
        folder.mkdir(parents=True, exist_ok=True)
        sig = _signature(strat, keys, values, metrics, per_chunk, data, backtest_kw)
        meta = folder / "sweep.json"
        if meta.exists() and json.loads(meta.read_text())["signature"] != sig:
            raise ValueError(f"{folder} holds a different sweep; use another store= or "
                             "delete it")
        meta.write_text(json.dumps({"signature": sig, "chunks": len(parts)}))
        for i in list(todo):
            f = folder / f"chunk_{i}.npz"
            if f.exists():
                with np.load(f) as z:
                    done[i] = {m: z[m] for m in metrics}
                todo.remove(i)

    def finished(i, res):
        done[i] = res
        if folder is not None:   # written as each chunk completes: a crash loses one chunk
            tmp = folder / f"chunk_{i}.tmp.npz"
            np.savez(tmp, **res)
            os.replace(tmp, folder / f"chunk_{i}.npz")

    from tqdm.auto import tqdm

    bar = tqdm(total=len(parts), initial=len(parts) - len(todo), desc=f"sweep {strat.name}",
               unit="chunk", disable=not progress)
    if client is not None:
        from distributed import as_completed

        remote = client.scatter(data, broadcast=True)
        futures = {client.submit(_run_chunk, strat, remote, keys, parts[i], inputs, metrics,
                                 backtest_kw, pure=False): i for i in todo}
        for fut in as_completed(futures):
            finished(futures[fut], fut.result())
            bar.update()
    else:
        from concurrent.futures import ThreadPoolExecutor, as_completed

        with ThreadPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
            futures = {pool.submit(_run_chunk, strat, data, keys, parts[i], inputs, metrics,
                                   backtest_kw): i for i in todo}
            for fut in as_completed(futures):
                finished(futures[fut], fut.result())
                bar.update()
    bar.close()

    shape = [len(v) for v in values]
    group = bool(backtest_kw.get("group", False))
    rest_dims = [] if group else ["asset"]
    coords = {k: v for k, v in zip(keys, values)}
    if not group:
        coords["asset"] = data.asset.values
        if "asset_class" in data.coords:
            coords["asset_class"] = ("asset", data.asset_class.values)
    out = {}
    for m in metrics:
        flat = np.concatenate([done[i][m] for i in range(len(parts))], axis=0)
        out[m] = (keys + rest_dims, flat.reshape(shape + list(flat.shape[1:])))
    res = xr.Dataset(out, coords=coords)
    res.attrs.update(strategy=strat.name, params=json.dumps(strat.params, default=str),
                     backtest_kw=json.dumps(backtest_kw, default=str), combinations=len(combos),
                     chunks=len(parts), data=str(data.attrs.get("name", "")))
    return res


def _signature(strat, keys, values, metrics, per_chunk, data, backtest_kw) -> str:
    """What a stored chunk depends on: strategy, grid, metrics, chunking, data, costs."""
    blob = json.dumps([strat.name, strat.params, keys, values, metrics, per_chunk,
                       str(data.time.values[[0, -1]]), list(map(str, data.asset.values)),
                       float(data["close"].sum()), backtest_kw], default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
