"""The one bridge between labelled arrays and the (time, column) kernels."""
from __future__ import annotations

import numpy as np

from quantlab._validate import real_array


def kernel_dtype(dtype) -> type:
    """float32 stays float32 (kernels are fused over both); everything else is float64."""
    return np.float32 if np.dtype(dtype) == np.float32 else np.float64


def time_major(kernel, arr, *args, time_axis: int = -1, name: str = "x"):
    """Run ``kernel(panel, *args)`` on ``arr`` with time on ``time_axis``.

    Complex, datetime, timedelta and object arrays are refused (``TypeError`` naming
    ``name``): the float conversion would drop the imaginary part or read dates as counts.

    The kernel sees a (time, columns) panel, the other axes flattened into columns, with
    each row's values adjacent in memory (rows may be strided). A (asset, time) view of a
    (time, asset) C-ordered array -- what ``xr.apply_ufunc`` hands over -- and a column
    chunk of one -- what dask hands over -- reach the kernel without a copy.
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
    out = kernel(panel, *args)
    return np.moveaxis(out.reshape(a.shape), 0, time_axis)


def apply_over_time(kernel, da, dim: str, name: str = "x"):
    """Apply a (time, column) -> (time, column) kernel along ``dim`` of a DataArray.

    NumPy-backed: one call, no reordering of dims. Dask-backed: lazily, one call per
    block (``map_blocks``), blocks along ``dim`` merged first since a window needs the
    rows before it. The result keeps dims, coords, name and attrs. The dtype is checked
    before any dask graph is built, as in ``time_major``. Empty input (a dim of size 0)
    gives an empty result of the same dims.
    """
    from functools import partial

    real_array(name, da.dtype)
    if dim not in da.dims:
        raise ValueError(f"dim={dim!r} is not a dimension of the input {da.dims}")
    axis = da.get_axis_num(dim)
    fn = partial(time_major, kernel, time_axis=axis)
    data = da.data
    if hasattr(data, "map_blocks") and hasattr(data, "chunks"):
        if len(data.chunks[axis]) > 1:
            data = data.rechunk({axis: -1})
        out = data.map_blocks(fn, dtype=kernel_dtype(da.dtype))
    else:
        out = fn(data)
    return da.copy(data=out)
