"""Parameter sweeps at scale: every combination of a grid backtested in the kernel's
metrics-only mode, chunk by chunk, so memory follows the chunk size and not the grid.

``ql.sweep(strategy, data, grid, metrics=..., chunks=None, workers=None, client=None,
store=None, **backtest_kw)`` → ``xr.Dataset`` with one dim per grid parameter (in the
grid's order) and ``asset`` (per-asset accounts) or none (``group=True``: the strategy
return stream of DESIGN.md). Chunks run on a thread pool (the kernels release the GIL) or
on a ``dask.distributed.Client`` (a LocalCluster, or a real cluster through its
scheduler address).

With ``store=`` (a directory) each finished chunk is written there as it completes, and a
rerun with the same arguments loads those and computes only the rest, so an interrupted
sweep resumes bit-identical. The store holds

- ``sweep.json``: what the sweep is (strategy, grid, metrics, chunking, a fingerprint of
  the data and inputs, backtest options) and its signature, a sha256 of that; written
  once, atomically. A store of another sweep is refused, naming what differs.
- ``chunk_<i>.npz``: the metrics of grid combinations ``[start, stop)`` (flat C-order
  index), with ``start``, ``stop`` and the signature inside, so a chunk file copied over
  another (or from another store) is recognised whatever the manifest says.
- ``manifest.jsonl``: one line per written chunk, its file's sha256, appended after the
  chunk's file is in place (a later line for the same chunk wins).

Every file is written to a temporary name and renamed, so a kill leaves either the old
file or the new one. On resume a chunk whose bytes fail the manifest's checksum, whose
zip is damaged (zip members carry CRC-32s, checked on read) or whose identity is not this
chunk's is recomputed, with a warning naming the file. Chunks are read with
``allow_pickle=False``: a store never runs code.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import numbers
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from quantlab import _progress, _validate
from quantlab._threads import MAX_THREADS
from quantlab.backtesting import backtest
from quantlab.backtesting.dispatch import as_dataset, resolve_periods
from quantlab.backtesting.options import BacktestOptions, metric_names
from quantlab.errors import DataError
from quantlab.strategies import resolve

__all__ = ["sweep", "DEFAULT_METRICS", "MAX_COMBINATIONS"]

DEFAULT_METRICS = ("sharpe_ratio", "max_drawdown", "annual_return", "total_return",
                   "turnover")
MAX_COMBINATIONS = 10 ** 6     # default refusal above this many grid combinations
_SIGNAL_BUDGET = 20_000_000     # signal values per chunk by default (~160 MB float64)
_FORMAT = 2                     # store layout: 2 = identity in chunks + sha256 manifest
_META, _MANIFEST = "sweep.json", "manifest.jsonl"
_ID = ("_signature", "_start", "_stop")   # identity arrays inside every chunk file


def _combos(values, start, stop):
    """Grid combinations ``start`` .. ``stop - 1`` in C order (itertools.product's order),
    without building the whole product."""
    idx = np.unravel_index(np.arange(start, stop), [len(v) for v in values])
    return [tuple(v[i] for v, i in zip(values, ix)) for ix in zip(*(a.tolist() for a in idx))]


def _run_chunk(strategy, data, keys, combos, inputs, metrics, backtest_kw):
    """Backtest ``combos`` (tuples of values for ``keys``) in one metrics-only call."""

    sigs = []
    for combo in combos:
        s = type(strategy)(**{**strategy.params, **dict(zip(keys, combo))})
        sigs.append(s.signal(data, **inputs))
    sig = xr.concat(sigs, dim=pd.Index(np.arange(len(combos)), name="combo"),
                    coords="minimal", compat="override")
    out = backtest(data, sig, metrics_only=tuple(metrics), **backtest_kw)
    return {m: out[m].transpose("combo", ...).values for m in metrics}


def sweep(strategy, data, grid: dict, metrics=DEFAULT_METRICS, chunks=None, workers=None,
          client=None, store=None, progress=True, max_combinations=MAX_COMBINATIONS,
          **backtest_kw) -> xr.Dataset:
    """Backtest every combination of ``grid`` of ``strategy`` on ``data``.

    The strategy's other parameters stay as given. Chunks of combinations run on threads
    or a dask cluster; with ``store`` results are written incrementally and a rerun resumes
    (see the module doc).

    Parameters
    ----------
    strategy : str or Strategy
        A registry name or a Strategy, whose other parameters stay as given.
    data : xarray.Dataset or xarray.DataArray
        A Dataset on (time, asset), or a close DataArray.
    grid : dict
        {parameter: [values]}: each a non-empty list of distinct values (one value alone is
        a one-element list), each valid for the strategy (``Strategy._check_param``: the
        parameter's type, its choices, its valid range -- the same checks as
        ``ql.strategies.get``), and every combination valid together.
    metrics : tuple of str or True, default DEFAULT_METRICS
        Names accepted by ``backtest(metrics_only=)`` (True: all of them).
    chunks : int, optional
        Combinations per chunk, >= 1 (default: ~20M signal values per chunk).
    workers : int, optional
        Threads, 1 to 1024 (default: the machine's cores).
    client : dask.distributed.Client, optional
        Run on a dask cluster instead of threads.
    store : str or os.PathLike, optional
        A directory for incremental results and resuming (see the module doc).
    progress : bool, default True
        Show a progress bar.
    max_combinations : int, default MAX_COMBINATIONS
        A grid of more combinations is refused before any work (default 10^6, minutes to
        hours of backtests); pass a larger integer to run a bigger grid deliberately.
    **backtest_kw
        Scalar options of ``ql.backtest`` (fees, periods, group, ...).

    Returns
    -------
    xarray.Dataset
        One variable per metric on (grid parameters..., asset); attrs name the strategy,
        its parameters, the backtest options, the data and ``periods``, the periods per
        year the metrics were annualised with (``periods=``, else the data's calendar).

    Raises
    ------
    ValueError
        If a grid value or combination is invalid, the grid exceeds ``max_combinations``,
        or ``chunks``/``workers``/``metrics`` is out of range.
    TypeError
        If ``grid`` is not a dict of lists or a value has the wrong type.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> s = ql.strategies.get("volatility_regime", lookback=60)
    >>> out = ql.sweep(s, ds, {"window": [10, 21]}, metrics=("total_return",),
    ...                progress=False, workers=1, fees=0.001)
    >>> out["total_return"].round(4).values
    array([[ 0.0185,     nan,  0.0531, -0.2407],
           [ 0.0634,     nan,  0.04  , -0.1515]])
    """
    strat = resolve(strategy)
    max_combinations = _validate.integer("max_combinations", max_combinations, lo=1)
    data = _check_data(data)
    keys, values = _check_grid(strat, grid, max_combinations)
    metrics = _check_metrics(metrics)
    per_chunk_arg = None if chunks is None else _validate.integer("chunks", chunks, lo=1)
    workers = None if workers is None else _validate.count("workers", workers, 1, MAX_THREADS)
    client = _validate.client(client)
    progress = _validate.flag("progress", progress)   # "no" is truthy: a bar shown
    _check_backtest_kw(backtest_kw)

    n_combos = math.prod(len(v) for v in values)
    n_t, n_a = data.sizes["time"], data.sizes["asset"]
    per_chunk = min(per_chunk_arg or max(1, _SIGNAL_BUDGET // (n_t * n_a)), n_combos)
    n_parts = -(-n_combos // per_chunk)
    ranges = [(i * per_chunk, min((i + 1) * per_chunk, n_combos)) for i in range(n_parts)]
    inputs = strat.default_inputs(data)
    group = bool(backtest_kw.get("group", False))
    tail = () if group else (n_a,)
    done: dict[int, dict] = {}
    st = None
    if store is not None:
        desc = _describe(strat, keys, values, metrics, per_chunk, data, inputs, backtest_kw)
        st = _Store(store, desc, metrics, tail)
        done = st.load(ranges)
    todo = [i for i in range(n_parts) if i not in done]

    def finished(i, res):
        done[i] = res
        if st is not None:   # written as each chunk completes: a crash loses one chunk
            st.write(i, ranges[i], res)

    def task(i, d):   # d: the data, or its scattered handle on a cluster
        return (_run_chunk, strat, d, keys, _combos(values, *ranges[i]), inputs, metrics,
                backtest_kw)

    bar = _progress.bar(n_parts, f"sweep {strat.name}", "chunk", progress,
                        initial=n_parts - len(todo))
    try:
        if client is not None:
            _run_on_client(client, todo, task, data, finished, bar)
        else:
            _run_on_threads(workers, todo, task, data, finished, bar)
    finally:
        bar.close()
    return _assemble(strat, data, done, n_parts, keys, values, metrics, backtest_kw)


def _run_on_client(client, todo, task, data, finished, bar) -> None:
    """The chunks ``todo`` on a dask cluster, ``finished(i, result)`` as each completes."""
    from distributed import as_completed

    remote = client.scatter(data, broadcast=True)
    futures = {client.submit(*task(i, remote), pure=False): i for i in todo}
    try:
        for fut in as_completed(futures):
            finished(futures[fut], fut.result())
            bar.update()
    except BaseException:   # an error or Ctrl-C: do not leave the cluster busy
        client.cancel(list(futures))
        raise


def _run_on_threads(workers, todo, task, data, finished, bar) -> None:
    """The chunks ``todo`` on ``workers`` threads (default: the machine's cores)."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count())
    try:
        futures = {pool.submit(*task(i, data)): i for i in todo}
        for fut in as_completed(futures):
            finished(futures[fut], fut.result())
            bar.update()
    finally:   # on an error or Ctrl-C, queued chunks are dropped, not all run
        pool.shutdown(wait=True, cancel_futures=True)


def _assemble(strat, data, done, n_parts, keys, values, metrics, backtest_kw) -> xr.Dataset:
    """The chunks' results in grid order as a Dataset on (parameters..., asset)."""
    n_combos = math.prod(len(v) for v in values)
    group = bool(backtest_kw.get("group", False))
    shape = [len(v) for v in values]
    rest_dims = [] if group else ["asset"]
    coords = {k: v for k, v in zip(keys, values)}
    if not group:
        coords["asset"] = data.asset.values
        if "asset_class" in data.coords:
            coords["asset_class"] = ("asset", data.asset_class.values)
    out = {}
    for m in metrics:
        flat = np.concatenate([done[i][m] for i in range(n_parts)], axis=0)
        out[m] = (keys + rest_dims, flat.reshape(shape + list(flat.shape[1:])))
    res = xr.Dataset(out, coords=coords)
    res.attrs.update(strategy=strat.name, params=json.dumps(strat.params, default=str),
                     backtest_kw=json.dumps(backtest_kw, default=str), combinations=n_combos,
                     chunks=n_parts, data=str(data.attrs.get("name", "")),
                     # the annualisation every backtest used, as res.metrics() records it
                     periods=resolve_periods(data, BacktestOptions(
                         periods=backtest_kw.get("periods"))))
    return res


# ----------------------------------------------------------------------------- checks
def _check_data(data) -> xr.Dataset:
    """The sweep's price data as ``ql.backtest`` takes it (a DataArray is the close), not
    empty: refused before any signal is computed."""
    data = as_dataset(data, "sweep data")
    if data.sizes["time"] == 0 or data.sizes["asset"] == 0:
        raise DataError(f"sweep data is empty ({data.sizes['time']} bars x "
                        f"{data.sizes['asset']} assets)")
    return data


def _grid_values(k, raw) -> list:
    """The values given for parameter ``k`` as a list (a scalar is one value)."""
    if isinstance(raw, (str, bytes, numbers.Number, np.generic)):
        return [raw.item() if isinstance(raw, np.generic) else raw]
    if isinstance(raw, (np.ndarray, pd.Index, pd.Series, xr.DataArray)):
        arr = np.asarray(raw)
        if arr.ndim != 1:
            raise ValueError(f"grid[{k!r}] must be one-dimensional, got shape {arr.shape}")
        return arr.tolist()
    if isinstance(raw, (list, tuple, range)):
        return [v.item() if isinstance(v, np.generic) else v for v in raw]
    raise TypeError(f"grid[{k!r}] must be a list of values (or one value), got "
                    f"{type(raw).__name__}" + (" (a set has no order: use a sorted list)"
                                               if isinstance(raw, (set, frozenset)) else ""))


def _check_grid(strat, grid, max_combinations=MAX_COMBINATIONS) -> tuple[list, list]:
    """Grid keys and value lists, each value checked against the parameter's default
    type and converted to a plain Python int/float/str/bool (so the store's signature and
    the result's coords do not depend on NumPy scalar types). The grid's size is checked
    first, before any value or combination."""
    if not isinstance(grid, Mapping):
        raise TypeError(f"grid must be a dict {{parameter: [values, ...]}}, got "
                        f"{type(grid).__name__}")
    if not grid:
        raise ValueError("grid is empty: give {parameter: [values, ...]}")
    unknown = sorted(set(grid) - set(strat.defaults), key=str)
    if unknown:
        raise ValueError(f"{strat.name}: unknown grid parameter(s) {unknown}; parameters are "
                         f"{sorted(strat.defaults)}")
    # sizes first (len of the raw values): a 10^8-element array is not turned into a list
    lens = {k: (len(raw) if isinstance(raw, (list, tuple, range, np.ndarray, pd.Index,
                                              pd.Series, xr.DataArray)) and np.ndim(raw) == 1
                else 1) for k, raw in grid.items()}
    n = math.prod(lens.values())
    if n > max_combinations:
        sizes = " x ".join(f"{v} {k}" for k, v in lens.items())
        raise ValueError(f"the grid has {n:,} combinations ({sizes}), more than "
                         f"max_combinations={max_combinations:,}; use fewer values, or pass "
                         f"max_combinations={n} to run it deliberately")
    values = []
    for k, raw in grid.items():
        vals = _grid_values(k, raw)
        if not vals:
            raise ValueError(f"grid[{k!r}] is empty: give at least one value")
        # the strategy's own checks (type, choices, valid range): one place for both
        vals = [strat._check_param(k, v, label=f"{strat.name} grid[{k!r}] value")
                for v in vals]
        seen, dup = set(), []
        for v in vals:
            key = (type(v).__name__, v) if isinstance(v, bool) else v
            try:
                if key in seen:
                    dup.append(v)
                seen.add(key)
            except TypeError:          # an unhashable value: nothing to compare
                pass
        if dup:
            raise ValueError(f"grid[{k!r}] repeats {dup}; give each value once (the result "
                             "is indexed by value)")
        values.append(vals)
    strat._check_combinations({**strat.params, **dict(zip(grid, values))})
    return list(grid), values


def _check_metrics(metrics) -> list[str]:
    names = metric_names("metrics", metrics)
    if names is None:
        raise ValueError("metrics=False: a sweep keeps metrics; name them or pass True")
    return list(names)


def _check_backtest_kw(kw):
    import inspect


    own = sorted(set(kw) & {"signal", "entries", "exits", "size", "accumulate",
                            "metrics_only"})
    if own:
        raise TypeError(f"sweep sets {own} itself (it backtests the strategy's signal); "
                        "leave them out")
    try:   # an unknown option fails here, before any chunk runs or a store is created
        inspect.signature(backtest).bind(None, None, **kw)
    except TypeError as e:
        raise TypeError(f"sweep: {e} (backtest_kw go to ql.backtest)") from None
    for k, v in kw.items():
        if isinstance(v, (xr.DataArray, np.ndarray, pd.Series, list, tuple)) and np.ndim(v):
            raise ValueError(f"sweep: backtest option {k} must be one value, got an array; "
                             "run one sweep per value")
    if "periods" in kw:
        _validate.number("periods", kw["periods"], lo=0, lo_open=True)


# ----------------------------------------------------------------------------- store
def _fingerprint(data, inputs) -> str:
    """sha256 of the data's coords and variables and of the strategy's inputs: a store
    made on other data (another variable, one changed price) is another sweep."""
    h = hashlib.sha256()
    h.update(np.asarray(data.time.values).astype("datetime64[ns]").view("int64").tobytes()
             if np.issubdtype(data.time.dtype, np.datetime64)
             else repr(data.time.values.tolist()).encode())
    h.update(repr(list(map(str, data.asset.values))).encode())
    for name in sorted(map(str, data.data_vars)):
        v = data[name]
        h.update(f"{name}:{v.dtype}:{v.dims}".encode())
        h.update(np.ascontiguousarray(v.values).tobytes())
    for name in sorted(inputs):
        v = inputs[name]
        h.update(name.encode())
        vals = getattr(v, "values", v)
        h.update(np.ascontiguousarray(vals).tobytes() if isinstance(vals, np.ndarray)
                 else repr(vals).encode())
    return h.hexdigest()


def _describe(strat, keys, values, metrics, per_chunk, data, inputs, backtest_kw) -> dict:
    """What a stored chunk depends on, in JSON types: compared field by field to say
    what differs when a store holds another sweep."""
    t = data.time.values
    desc = {"format": _FORMAT, "strategy": strat.name,
            "params": {k: v for k, v in strat.params.items() if k not in keys},
            "grid": dict(zip(keys, values)), "metrics": metrics, "chunk_size": per_chunk,
            "data": {"name": str(data.attrs.get("name", "")), "time": [str(t[0]), str(t[-1])],
                     "bars": int(t.size), "assets": list(map(str, data.asset.values)),
                     "sha256": _fingerprint(data, inputs)},
            "backtest_kw": backtest_kw}
    return json.loads(json.dumps(desc, default=str))


def _write_atomic(path: Path, blob: bytes):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(blob)
    os.replace(tmp, path)


class _Store:
    """The files of one sweep's store (see the module doc); every message names the
    store's path and, for a chunk, its number, file and grid range."""

    def __init__(self, path, desc: dict, metrics, tail):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"store must be a directory path, got {type(path).__name__}")
        self.folder = Path(path).expanduser()
        self.metrics, self.tail = metrics, tail
        self.sig = hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"store={str(self.folder)!r} is a file, not a directory; pass a "
                             "directory path (it is created if missing)")
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = self.folder / _META
        if meta.exists():
            self._check_meta(meta, desc)
        else:
            ours = [p.name for p in self.folder.iterdir()
                    if not (p.name.startswith("chunk_") or p.name.startswith(_MANIFEST)
                            or p.name == _META + ".tmp")]
            if ours:
                raise ValueError(f"store={str(self.folder)!r} is not a sweep store (it has no "
                                 f"{_META}) and is not empty ({sorted(ours)[:3]} ...); pass "
                                 "a new or empty directory")
            try:
                _write_atomic(meta, json.dumps({"signature": self.sig, **desc},
                                               indent=1).encode())
            except OSError as e:
                raise OSError(f"sweep store {str(self.folder)!r}: cannot write {_META} "
                              f"({e})") from e
        self.sha = self._read_manifest()

    def _check_meta(self, meta: Path, desc: dict):
        how = (f"delete the store directory {str(self.folder)!r} to start this sweep "
               "afresh, or pass another store= path")
        try:
            head = json.loads(meta.read_bytes())
            if not isinstance(head, dict) or not isinstance(head.get("signature"), str):
                raise ValueError("it has no 'signature' entry")
        except (OSError, ValueError) as e:   # JSONDecodeError and UnicodeDecodeError too
            raise ValueError(f"sweep store {str(self.folder)!r}: {meta.name} is unreadable or "
                             f"not a sweep header ({type(e).__name__}: {e}); {how}") from None
        if head["signature"] == self.sig:
            return
        diff = [k for k in desc if head.get(k) != desc[k]] or ["signature"]
        shown = "; ".join(f"{k}: stored {_short(head.get(k))}, now {_short(desc[k])}"
                          for k in diff[:3])
        raise ValueError(f"sweep store {str(self.folder)!r} holds a different sweep "
                         f"({shown}); {how}")

    def _read_manifest(self) -> dict[int, str | None]:
        """chunk -> sha256 of its file (None: known bad); unreadable lines (a kill during
        an append) are skipped, a later line for the same chunk wins."""
        path, sha = self.folder / _MANIFEST, {}
        self._torn = False
        try:
            raw = path.read_bytes()
            lines = raw.splitlines()
            self._torn = bool(raw) and not raw.endswith(b"\n")   # a kill mid-append
        except FileNotFoundError:
            return sha
        except OSError as e:
            warnings.warn(f"sweep store {str(self.folder)!r}: cannot read {_MANIFEST} ({e}); "
                          "chunks are checked by their content only", stacklevel=3)
            return sha
        for line in lines:
            try:
                rec = json.loads(line)
                if rec["signature"] == self.sig:
                    sha[int(rec["chunk"])] = rec["sha256"]
            except (ValueError, KeyError, TypeError):
                continue
        return sha

    def _append(self, i: int, sha: str | None):
        rec = json.dumps({"chunk": i, "sha256": sha, "signature": self.sig}).encode()
        with open(self.folder / _MANIFEST, "ab") as f:
            f.write((b"\n" if self._torn else b"") + rec + b"\n")   # not glued to a torn line
        self._torn = False
        self.sha[i] = sha

    def _where(self, i, rng) -> str:
        return (f"sweep store {str(self.folder)!r}, chunk {i} (chunk_{i}.npz, grid "
                f"combinations {rng[0]}..{rng[1] - 1})")

    def _read(self, i, rng) -> dict:
        """The chunk's metrics, or ValueError saying why it cannot be used."""
        blob = (self.folder / f"chunk_{i}.npz").read_bytes()
        want = self.sha.get(i)    # None: no checksum yet (killed before its line)
        if want is not None and want != hashlib.sha256(blob).hexdigest():
            raise ValueError("its sha256 does not match the manifest")
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as z:   # never unpickle
                got = {k: z[k] for k in (*_ID, *self.metrics)}
        except KeyError as e:
            raise ValueError(f"it lacks the array {e}") from None
        if str(got["_signature"]) != self.sig:
            raise ValueError("it belongs to another sweep (its signature differs)")
        if (int(got["_start"]), int(got["_stop"])) != tuple(rng):
            raise ValueError(f"it holds grid combinations {int(got['_start'])}.."
                             f"{int(got['_stop']) - 1}, not this chunk's (a copied file?)")
        shape = (rng[1] - rng[0], *self.tail)
        for m in self.metrics:
            if got[m].shape != shape or got[m].dtype != np.float64:
                raise ValueError(f"its {m!r} is {got[m].dtype}{got[m].shape}, expected "
                                 f"float64{shape}")
        if want is None:     # written, then killed before its manifest line
            self._append(i, hashlib.sha256(blob).hexdigest())
        return {m: got[m] for m in self.metrics}

    def load(self, ranges) -> dict[int, dict]:
        """Every usable stored chunk; a damaged or foreign one is reported and left to be
        recomputed."""
        import zipfile
        import zlib

        done = {}
        for i, rng in enumerate(ranges):
            if not (self.folder / f"chunk_{i}.npz").exists():
                continue
            try:
                done[i] = self._read(i, rng)
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
                warnings.warn(f"{self._where(i, rng)} is unusable ({e}); recomputing it",
                              stacklevel=3)
                if self.sha.get(i) is not None:   # so its replacement is checked by
                    self._append(i, None)          # content if killed before its line
        return done

    def write(self, i, rng, res):
        buf = io.BytesIO()
        np.savez(buf, _signature=np.array(self.sig), _start=np.int64(rng[0]),
                 _stop=np.int64(rng[1]), **res)
        blob = buf.getvalue()
        try:
            _write_atomic(self.folder / f"chunk_{i}.npz", blob)
            self._append(i, hashlib.sha256(blob).hexdigest())
        except OSError as e:
            raise OSError(f"{self._where(i, rng)}: cannot write it ({e})") from e


def _short(v, n=80) -> str:
    s = json.dumps(v, default=str)
    return s if len(s) <= n else s[:n - 3] + "..."
