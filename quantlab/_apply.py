"""The one bridge between labelled arrays and the (time, column) kernels.

:func:`apply` takes NumPy arrays (time on axis 0), pandas (time on the index: the result
is the same pandas type on its index and columns), DataArrays (time on ``dim``) or a
Dataset, and hands a kernel flat panels of one of two layouts:

- ``layout="time"`` (quantlab.rolling): a ``(time, columns)`` panel per input, the
  other dims flattened into columns (or, with ``core``, the ``core`` dim as columns and
  one call per member of the remaining dims); float32 stays float32.
- ``layout="series"`` (quantlab.measures): a C-contiguous ``(series, time)`` float64
  panel per input, each series' values adjacent.

Everything around the kernel is done here, once, for every family: refusing complex,
datetime and object dtypes (``_validate.real_array``), broadcasting several inputs
(two-series measures), extra output dims (``corr``'s ``asset_other``), empty input,
dask (lazy: blocks along ``dim`` are merged first, since a window needs the rows before
it; blocks along other dims run one kernel call each, the kernels release the GIL),
names and attrs. In memory, the kernel runs over blocks of columns (series) on
``quantlab._threads``' pool, each block written into its slice of one output: every
kernel here treats its columns independently, so the bits are those of one call.
"""
from __future__ import annotations

import builtins

import numpy as np
import pandas as pd
import xarray as xr

from quantlab import _threads
from quantlab._validate import numpy_data, pandas_values, real_array


def pow2_scaled(a: np.ndarray, axis: int, lo: float, hi: float) -> np.ndarray:
    """``a`` with each slice along ``axis`` whose largest finite |value| lies outside
    [lo, hi] multiplied by the power of two bringing it into [0.5, 1), in ``a``'s dtype
    (exact: only the exponents change). For kernels whose sums of squares or products
    would over- or underflow on values of extreme magnitude (scale-free statistics:
    correlations, the measures)."""
    with np.errstate(invalid="ignore"):
        fin = np.where(np.isfinite(a), np.abs(a), 0.0)
    mx = fin.max(axis=axis, keepdims=True) if a.size else fin
    bad = (mx > hi) | ((mx < lo) & (mx > 0))
    if not bad.any():
        return a
    e = np.where(bad, np.frexp(np.where(mx > 0, mx, 1.0))[1], 0)
    return np.ldexp(a, -e).astype(a.dtype, copy=False)


def kernel_dtype(dtype) -> type:
    """float32 (in either byte order: '>f4' was computed in float64, other numbers than
    the same values' in '<f4') stays float32 (kernels are fused over both); everything
    else is float64."""
    dt = np.dtype(dtype)
    return np.float32 if dt.kind == "f" and dt.itemsize == 4 else np.float64


def time_major(kernel, arr, *args, time_axis: int = -1, name: str = "x", threads=None,
               cost: float = 1.0, into: bool = False, rows: int = 0):
    """Run ``kernel(panel, *args)`` on ``arr`` with time on ``time_axis``.

    The kernel sees a (time, columns) panel, the other axes flattened into columns, with
    each row's values adjacent in memory (rows may be strided). A (asset, time) view of a
    (time, asset) C-ordered array -- what ``xr.apply_ufunc`` hands over -- and a column
    chunk of one -- what dask hands over -- reach the kernel without a copy. Complex,
    datetime, timedelta and object arrays are refused (``TypeError`` naming ``name``).
    ``threads``: column blocks on the pool (``quantlab._threads``; None: the default);
    ``cost``: the kernel's time per value in copies of a value (``_threads.PAYS_FROM``);
    ``into``: the kernel takes ``out=`` and writes each block into one preallocated
    result (no copy per block, so threads pay for memory-speed kernels too); ``rows``:
    (> 0, with ``into``) the kernel also takes ``start=``, ``stop=`` and computes rows
    from a multiple of ``rows`` with the bits of a whole run: the pool cuts rows, not
    columns (``_threads.by_rows``).
    """
    arr = np.asarray(arr)
    real_array(name, arr.dtype)
    a = np.moveaxis(arr, time_axis, 0)
    if a.size == 0:   # no rows or no columns: an empty result (as pandas); reshape(0, -1)
        return np.empty(arr.shape, dtype=kernel_dtype(arr.dtype))   # cannot infer -1
    panel = a.reshape(a.shape[0], -1)
    dtype = kernel_dtype(arr.dtype)
    # rows may be strided (a column chunk); only the values within a row must be adjacent
    if panel.dtype != dtype or (panel.shape[1] > 1 and panel.strides[1] != panel.itemsize):
        panel = np.ascontiguousarray(panel, dtype=dtype)
    # column slices keep each row's values adjacent: the kernels take them without a copy
    # rows: whole rows per thread, but only as many blocks as windows fit in the panel;
    # fewer windows than threads (a short panel, a long window): columns into out
    if into and rows > 0 and -(-panel.shape[0] // rows) >= _threads.resolve(threads):
        out = np.empty(panel.shape, dtype=dtype)
        _threads.by_rows(lambda lo, hi: kernel(panel, *args, out=out, start=lo, stop=hi),
                         panel.shape[0], builtins.min(rows, panel.shape[0]),
                         panel.size * cost, threads)
    elif into:
        out = _threads.by_columns(lambda p, out: kernel(p, *args, out=out), panel,
                                  threads=threads, cost=cost,
                                  out=np.empty(panel.shape, dtype=dtype))
    else:
        out = _threads.by_columns(lambda p: kernel(p, *args), panel, threads=threads,
                                  cost=cost)
    return np.moveaxis(out.reshape(a.shape), 0, time_axis)


# A measure costs O(window) or more per value: far above a copy (``_threads.PAYS_FROM``)
_SERIES_COST = 8.0


def _series_major(kernel, *arrays, threads=None):
    """(..., time) arrays -> ``kernel`` on C-contiguous (series, time) float64 panels ->
    (..., time), blocks of series on the pool. Empty input gives NaN of its shape
    without a kernel call."""
    shape = arrays[0].shape
    if arrays[0].size == 0:
        return np.full(shape, np.nan)
    flat = [np.ascontiguousarray(a.reshape(-1, shape[-1]), dtype=np.float64) for a in arrays]
    # blocks of rows of a C-contiguous panel are C-contiguous views: no copy
    out = _threads.by_columns(kernel, *flat, cost=_SERIES_COST, threads=threads, axis=0)
    return out.reshape(shape)


# a kernel relating the core dim's members costs O(members) per value (corr: the pairs)
_MEMBER_COST = 8.0


def _per_member(kernel, a, new, threads=None):
    """(..., time, core) -> ``kernel`` on each (time, core) slice, contiguous -> (...,
    time, core[, new]): kernels that relate the core dim's members (``corr``). The
    slices run on the pool (one kernel call each, never split)."""
    dtype = kernel_dtype(a.dtype)
    out = np.empty(a.shape if new is None else (*a.shape, new), dtype=dtype)
    if out.size:
        members = list(np.ndindex(a.shape[:-2]))

        def fn(lo, hi):
            for idx in members[lo:hi]:
                out[idx] = kernel(np.ascontiguousarray(a[idx], dtype=dtype))

        n, parts = _threads.blocks(len(members), out.size * _MEMBER_COST, threads,
                                   _MEMBER_COST)
        _threads.run(fn, parts, n)
    return out


def _block(kernel, layout, core, new, threads=None, cost=1.0, into=False, rows=0):
    """The NumPy function of one block: arrays with ``dim`` (then ``core``) last."""
    if core is not None:   # the kernel relates the core dim's members: one call each
        return lambda a: _per_member(kernel, a, new, threads)
    if layout == "series":
        return lambda *arrays: _series_major(kernel, *arrays, threads=threads)
    return lambda a: time_major(kernel, a, time_axis=-1, threads=threads, cost=cost,
                                into=into, rows=rows)


def apply(kernel, *inputs, dim: str = "time", layout: str = "time", core: str | None = None,
          new_dim: tuple[str, int] | None = None, names=None, integers=None, threads=None,
          cost: float = 1.0, into: bool = False, rows: int = 0):
    """Run ``kernel`` along ``dim`` of ``inputs`` (several are broadcast together).

    ``kernel(*panels)`` returns a panel of the first's shape (``layout``: module
    docstring), or, with ``new_dim=(name, size)``, of that shape plus a last axis of
    ``size``. ``names`` name the inputs in errors (default ``x``, ``input 2``, ...).
    ``integers(values, axis)``, if given, converts integer/bool inputs to float64
    before the kernel (exact per-series shifts need the values: dask input is
    computed). NumPy input has time on axis 0 (and ``core`` on the last axis); a
    Dataset is applied to each variable that has ``dim``, the others kept as they are.
    ``threads``: the pool's thread count (``quantlab._threads``; None: the default,
    which is 1 inside dask's worker threads); ``cost``: a time-layout kernel's time per
    value in copies of a value (by default the pool skips kernels below
    ``_threads.PAYS_FROM``); ``into``: a time-layout kernel takes ``out=`` (the rolling
    kernels) and writes each column block straight into one result; ``rows``: it also
    takes ``start=``/``stop=``, and blocks of rows starting at multiples of ``rows`` (the
    window) are run instead (:func:`time_major`).
    """
    if threads is not None:
        threads = _threads.resolve(threads)   # checked before any work
    names = list(names or ["x", *(f"input {i + 2}" for i in range(len(inputs) - 1))])
    x = inputs[0]
    if is_pandas(x):   # was a bare ndarray: the index and columns lost
        out = apply(kernel, *_pandas_values(inputs, names, dim), dim=dim, layout=layout,
                    core=core, new_dim=new_dim, names=names, integers=integers,
                    threads=threads, cost=cost, into=into, rows=rows)
        return as_pandas(out, x, new_dim is not None)
    if isinstance(x, xr.Dataset):
        if len(inputs) > 1:
            raise TypeError("pass DataArrays (not a Dataset) to the two-series measures")
        if dim not in x.dims:
            raise ValueError(f"dim={dim!r} is not a dimension of the input {tuple(x.dims)}")
        return x.map(lambda v: apply(kernel, v, dim=dim, layout=layout, core=core,
                                     new_dim=new_dim, names=[f"{names[0]}[{v.name!r}]"],
                                     integers=integers, threads=threads, cost=cost,
                                     into=into, rows=rows)
                     if dim in v.dims else v, keep_attrs=True)
    inputs = [numpy_data(v) for v in inputs]   # a nullable Series' array: NumPy values
    x = inputs[0]
    new = new_dim[1] if new_dim else None
    block = _block(kernel, layout, core, new, threads, cost, into, rows)
    if not isinstance(x, xr.DataArray):
        return _apply_numpy(block, inputs, names, dim, core, new, integers)
    for d in (dim,) if core is None else (dim, core):
        if d not in x.dims:
            raise ValueError(f"dim={d!r} is not a dimension of the input {x.dims}")
    arrays = []
    for v, nm in zip(inputs, names):
        if not isinstance(v, xr.DataArray):
            raise TypeError(f"{nm} must be a DataArray like x, got {type(v).__name__}")
        real_array(nm, v.dtype)
        if integers is not None and v.dtype.kind in "biu":
            v = v.copy(data=integers(v.values, v.get_axis_num(dim)))
        arrays.append(v)
    if len(arrays) > 1:
        arrays = list(xr.broadcast(*arrays))
    # empty input: computed in NumPy (dask's gufunc divides by a zero-size chunk);
    # otherwise blocks along dim (and core) are merged (a window needs them all)
    cdims = [dim] if core is None else [dim, core]
    arrays = [v.copy(data=np.asarray(v.values)) if v.size == 0
              else v.chunk({d: -1 for d in cdims}) if _lazy(v) else v for v in arrays]
    out_dims = cdims + [new_dim[0]] if new_dim else cdims
    dtype = np.float64 if layout == "series" else kernel_dtype(x.dtype)
    if len(arrays) == 1 and core is None:   # the common case, without apply_ufunc's
        return _same_dims(block, arrays[0], dim, dtype)   # ~0.1 ms of bookkeeping
    out = xr.apply_ufunc(
        block, *arrays, input_core_dims=[cdims] * len(arrays), output_core_dims=[out_dims],
        dask="parallelized", output_dtypes=[dtype], keep_attrs=True,
        dask_gufunc_kwargs={"output_sizes": {new_dim[0]: new}} if new_dim else None)
    # one dim along time: the input's order; with a core dim, (..., dim, core, new) as
    # corr promises (time, asset, asset_other)
    return out.transpose(*arrays[0].dims) if core is None else out


def is_pandas(x) -> bool:
    """A pandas Series or DataFrame (time on its index)."""
    return isinstance(x, (pd.Series, pd.DataFrame))


def _pandas_values(inputs, names, dim) -> list:
    """The inputs' values for :func:`apply` of pandas ``x``: time is the index, and the
    other pandas inputs must be on the same index (positions would pair other dates)."""
    if dim != "time":
        raise ValueError(f"dim={dim!r}: pandas input runs along its index (time); leave "
                         "dim='time'")
    x = inputs[0]
    out = [pandas_values(x)]
    for v, nm in zip(inputs[1:], names[1:]):
        if (is_pandas(v) and not v.index.equals(x.index)) or (
                isinstance(v, xr.DataArray) and dim in v.indexes
                and not v.indexes[dim].equals(x.index)):
            raise ValueError(f"{nm} is on another index than {names[0]} (pandas input is "
                             f"paired by date): align them first, e.g. "
                             f"{names[0]}, other = {names[0]}.align(other, join='inner')")
        out.append(pandas_values(_same_columns(v, x, nm, names[0])) if is_pandas(v) else v)
    return out


def _same_columns(v, x, nm, xname):
    """DataFrame ``v`` with the columns of DataFrame ``x`` in ``x``'s order: columns are
    paired by label (they were paired by position: swapped columns paired each series
    with another's). One column is broadcast, as a Series is."""
    if not (isinstance(v, pd.DataFrame) and isinstance(x, pd.DataFrame)) or \
            v.shape[1] == 1 or v.columns.equals(x.columns):
        return v
    if v.columns.is_unique and x.columns.is_unique and v.shape[1] == x.shape[1] and \
            v.columns.isin(x.columns).all():
        return v[x.columns]
    raise ValueError(f"{nm} has other columns than {xname} (pandas input is paired by "
                     f"column label): {list(v.columns)[:5]} and {list(x.columns)[:5]}")


def _pair_rows(x):
    """pandas' pairwise row index: (time, column) for each time and column, the levels
    of a MultiIndex (columns or index) spread into levels of their own with their names
    (pandas GH 21157: a ('M', 'P') column is the levels 'M', 'P', not one tuple)."""
    if not isinstance(x.index, pd.MultiIndex) and not isinstance(x.columns, pd.MultiIndex):
        return pd.MultiIndex.from_product([x.index, x.columns],
                                          names=[x.index.name, x.columns.name])
    n, m = len(x.index), len(x.columns)
    rows, cols = x.index.repeat(m), x.columns.take(np.tile(np.arange(m), n))
    levels = [rows.get_level_values(i) for i in range(rows.nlevels)]
    levels += [cols.get_level_values(i) for i in range(cols.nlevels)]
    return pd.MultiIndex.from_arrays(levels, names=[*x.index.names, *x.columns.names])


def as_pandas(out: np.ndarray, x, pairs: bool):
    """``out`` (time on axis 0) as ``x``'s pandas type on its index (and columns); with
    ``pairs`` (corr's (time, column, column_other)), pandas' ``df.rolling(w).corr()``
    layout: a row per (time, column), a column per column."""
    if pairs:   # a row per (time, column); not reshape(-1, ...): no columns, no -1
        return pd.DataFrame(out.reshape(out.shape[0] * out.shape[1], out.shape[-1]),
                            index=_pair_rows(x), columns=x.columns)
    if isinstance(x, pd.Series):
        return pd.Series(out, index=x.index, name=x.name)
    return pd.DataFrame(out, index=x.index, columns=x.columns)


def apply_over_time(kernel, da, dim: str, name: str = "x"):
    """``apply`` of a (time, column) -> (time, column) kernel to one DataArray."""
    return apply(kernel, da, dim=dim, names=[name])


def _lazy(v) -> bool:
    """A dask-backed DataArray (``v.chunks`` costs ~70 µs: a Protocol isinstance)."""
    return hasattr(v.data, "map_blocks") and hasattr(v.data, "chunks")


def _same_dims(block, v, dim, dtype):
    """``block`` on one DataArray whose result has its dims: no reordering of dims,
    one call (NumPy) or one per block (dask, lazily). Keeps coords, name and attrs."""
    axis = v.get_axis_num(dim)

    def fn(a):
        return np.moveaxis(block(np.moveaxis(a, axis, -1)), -1, axis)

    data = v.data
    return v.copy(data=data.map_blocks(fn, dtype=dtype) if _lazy(v) else fn(data))


def _apply_numpy(block, inputs, names, dim, core, new, integers):
    """:func:`apply` for NumPy input: time on axis 0, ``core`` (if any) on the last."""
    if dim != "time":
        raise ValueError(f"dim={dim!r}: NumPy input has no named dims; time is axis 0")
    t = -1 if core is None else -2     # where the kernel's block function wants time
    arrays = []
    for v, nm in zip(inputs, names):
        v = np.asarray(getattr(v, "values", v))
        real_array(nm, v.dtype)
        if v.ndim == 0 or (core is not None and v.ndim < 2):
            raise ValueError(f"{nm} must have a time axis (axis 0)"
                             f"{' and a column axis (the last)' if core else ''}, got "
                             f"shape {v.shape}")
        if integers is not None and v.dtype.kind in "biu":
            v = integers(v, 0)
        arrays.append(np.moveaxis(v, 0, t))
    # broadcast with time last (a (time,) index against a (time, asset) panel)
    arrays = np.broadcast_arrays(*arrays) if len(arrays) > 1 else arrays
    return np.moveaxis(block(*arrays), t if new is None else t - 1, 0)
