"""The one bridge between labelled arrays and the (time, column) kernels."""
from __future__ import annotations

import numpy as np


def kernel_dtype(dtype) -> type:
    """float32 stays float32 (kernels are fused over both); everything else is float64."""
    return np.float32 if np.dtype(dtype) == np.float32 else np.float64


def time_major(kernel, arr, *args, time_axis: int = -1):
    """Run ``kernel(panel, *args)`` on ``arr`` with time on ``time_axis``.

    The kernel sees a C-contiguous (time, columns) panel, the other axes flattened into
    columns; a (asset, time) view of a (time, asset) C-ordered array -- what
    ``xr.apply_ufunc`` hands over -- reaches the kernel without a copy.
    """
    arr = np.asarray(arr)
    a = np.moveaxis(arr, time_axis, 0)
    panel = np.ascontiguousarray(a.reshape(a.shape[0], -1), dtype=kernel_dtype(arr.dtype))
    out = kernel(panel, *args)
    return np.moveaxis(out.reshape(a.shape), 0, time_axis)
