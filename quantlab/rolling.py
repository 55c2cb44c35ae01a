"""Rolling-window statistics on xarray (and NumPy) at memory speed.

Each function takes ``(x, window, dim="time", min_periods=None)`` and equals pandas'
fixed-window ``rolling`` (NaN pattern included): NaN and ±inf inputs are skipped (pandas
turns inf into NaN before its window kernels) and ``min_periods`` (default ``window``)
counts the finite observations in the window. A window longer than the series is
allowed (pandas too): it sees every row so far. Complex, datetime, timedelta and object
input is refused (a ``TypeError``), as are windows and ``min_periods`` that are not
integers in range (``window >= 1``, ``0 <= min_periods <= window``). Empty input
(a dim of size 0) gives an empty result of the same dims, as pandas.

``x`` is a DataArray, a Dataset (every variable that has ``dim``; the others are kept
as they are), a NumPy array with time on axis 0 or a pandas Series/DataFrame (time on
its index; the result is the same pandas type on its index and columns); float32 stays
float32. Dask input
chunked along non-time dims is computed lazily chunk by chunk (the kernels release
the GIL, so dask's threads use every core); chunks along ``dim`` are merged into one
automatically, since a window needs the rows before it.

``threads``: in-memory input runs on that many threads, each writing its block straight
into one result: blocks of whole rows for sum/mean/var/std/zscore/min/max (starting at
multiples of the window, so each reads only its rows and the window before them),
blocks of columns for ``ewm_mean`` and ``rank`` (``corr``: the members of other dims).
The same bits as one thread. Default: ``$QUANTLAB_THREADS``, else ``os.cpu_count()``;
small panels, and calls from dask's or other pools' worker threads, stay on one.
"""
from __future__ import annotations

import builtins
from functools import partial

import numpy as np
import xarray as xr

from quantlab import _validate
from quantlab import _apply as bridge
from quantlab._doc import fill
from quantlab._kernels import load

_k = load("rolling")

__all__ = ["mean", "sum", "var", "std", "min", "max", "zscore", "ewm_mean", "rank", "corr"]


# shared numpydoc blocks (quantlab._doc.fill): each written once, slotted as {{name}}
_THREADS = """\
threads : int, optional
    Threads over blocks of rows (columns for ewm_mean/rank), written into one result;
    default ``QUANTLAB_THREADS``, else the cores; small panels stay on one thread. The
    same bits for any number."""
_X_WINDOW_DIM = """\
Parameters
----------
x : xarray.DataArray, xarray.Dataset, numpy.ndarray, pandas.Series or pandas.DataFrame
    The values; a Dataset applies to every variable that has ``dim``, a NumPy array
    has time on axis 0, pandas on its index. NaN and ±inf are skipped (missing).
window : int
    Window length in rows (>= 1); longer than the series sees every row so far.
dim : str, default 'time'
    The dimension to roll along.
"""
_DOC = {
    "window_params": _X_WINDOW_DIM + """\
min_periods : int, optional
    Finite observations needed for a value, 0 <= min_periods <= window (default
    ``window``).""",
    "ewm_params": _X_WINDOW_DIM + """\
min_periods : int, optional
    Observations needed for a value (>= 0; default 1, pandas' default); may exceed
    ``window``.
""" + _THREADS,
    "ddof_threads": """\
ddof : int, default 1
    Delta degrees of freedom (>= 0).
""" + _THREADS,
    "threads": _THREADS,
    "window_out": """\
Returns
-------
same type as ``x``
    Same shape and dims (pandas: index and columns) as ``x`` (float32 stays float32);
    NaN where fewer than ``min_periods`` finite values are in the window.

Raises
------
TypeError
    If ``x`` is complex, datetime, timedelta or object.
ValueError
    If ``window`` or ``min_periods`` is not an integer in range.

Examples
--------
>>> import numpy as np, quantlab as ql
>>> x = np.array([1., 2., 4., 3., 5., np.nan, 6.])""",
}


# The kernels take C integers. A window or count beyond any panel's length acts as one
# of the panel's length (the kernels clamp), so larger Python ints are passed as this.
_BIG = 2**62


def _check(window, min_periods):
    """(window, min_periods) as kernel arguments: window >= 1, 0 <= min_periods <= window
    (default: window); integral floats are accepted, bools and fractions refused."""
    window = _validate.integer("window", window, 1)
    minp = window if min_periods is None else _validate.integer(
        "min_periods", min_periods, 0, window)
    return builtins.min(window, _BIG), builtins.min(minp, _BIG)


def _ddof(ddof):
    return builtins.min(_validate.integer("ddof", ddof, 0), _BIG)


# each kernel's time per value in copies of a value, measured on 2520 x 1000, window 20:
# the pool's measure of work (quantlab._threads.MIN_WORK per thread; the kernels write
# into one result, so PAYS_FROM, the price of copying blocks, does not hold them back;
# rank is O(window) per value)
_COST = {"roll_sum": 2.0, "roll_var": 3.0, "roll_minmax": 3.0, "ewm_mean": 3.0}


_ROWS = {"roll_sum", "roll_var", "roll_minmax"}


def _apply(kernel, x, dim, threads, cost=None):
    """Run a (time, column) -> (time, column) kernel over ``dim`` of any supported input."""
    cost = _COST[kernel.func.__name__] if cost is None else cost
    # into: the kernels write each block straight into one result (out=), so threads pay
    # for them by default (issue #32); the block-decomposed ones (sum/var/min/max) also
    # compute row ranges from multiples of the window with a whole run's bits (rows=):
    # each thread then streams whole rows
    rows = kernel.keywords["window"] if kernel.func.__name__ in _ROWS else 0
    return bridge.apply(kernel, x, dim=dim, threads=threads, cost=cost, into=True, rows=rows)


def _kernel(name, window, min_periods, **kw):
    window, minp = _check(window, min_periods)
    return partial(getattr(_k, name), window=window, minp=minp, **kw)


@fill(_DOC)
def sum(x, window, dim="time", min_periods=None, threads=None):  # noqa: A001 (mirrors pandas' name)
    """Rolling sum, compensated (Neumaier).

    0 for an empty window when ``min_periods=0``. No value leaves residue once out of the
    window; window 1 returns ``x``.

    {{window_params}}
    {{threads}}

    {{window_out}}
    >>> ql.rolling.sum(x, 3).round(3)
    array([nan, nan,  7.,  9., 12., nan, nan])
    """
    return _apply(_kernel("roll_sum", window, min_periods, mean=False), x, dim, threads)


@fill(_DOC)
def mean(x, window, dim="time", min_periods=None, threads=None):
    """Rolling mean Σx / n over the finite values of the window.

    {{window_params}}
    {{threads}}

    {{window_out}}
    >>> ql.rolling.mean(x, 3).round(3)
    array([  nan,   nan, 2.333, 3.   , 4.   ,   nan,   nan])
    """
    return _apply(_kernel("roll_sum", window, min_periods, mean=True), x, dim, threads)


@fill(_DOC)
def var(x, window, dim="time", min_periods=None, ddof=1, threads=None):
    """Rolling variance Σ(x - x̄)² / (n - ddof).

    Computed from sums shifted by values of the window (Chan, Golub & LeVeque 1983):
    accurate at any level/σ; exactly 0 for equal values.

    {{window_params}}
    {{ddof_threads}}

    {{window_out}}
    >>> ql.rolling.var(x, 3).round(3)
    array([  nan,   nan, 2.333, 1.   , 1.   ,   nan,   nan])
    """
    return _apply(_kernel("roll_var", window, min_periods, ddof=_ddof(ddof), mode=0), x,
                  dim, threads)


@fill(_DOC)
def std(x, window, dim="time", min_periods=None, ddof=1, threads=None):
    """Rolling standard deviation, ``sqrt(var)`` with ``ddof=1`` like pandas.

    {{window_params}}
    {{ddof_threads}}

    {{window_out}}
    >>> ql.rolling.std(x, 3).round(3)
    array([  nan,   nan, 1.528, 1.   , 1.   ,   nan,   nan])
    """
    return _apply(_kernel("roll_var", window, min_periods, ddof=_ddof(ddof), mode=1), x,
                  dim, threads)


@fill(_DOC)
def zscore(x, window, dim="time", min_periods=None, ddof=1, threads=None):
    """Rolling z-score: (x_t - rolling mean_t) / rolling std_t, the window including t.

    NaN where std = 0 or x_t is NaN or ±inf (a missing value).

    {{window_params}}
    {{ddof_threads}}

    {{window_out}}
    >>> ql.rolling.zscore(x, 3).round(3)
    array([  nan,   nan, 1.091, 0.   , 1.   ,   nan,   nan])
    """
    return _apply(_kernel("roll_var", window, min_periods, ddof=_ddof(ddof), mode=2), x,
                  dim, threads)


@fill(_DOC)
def min(x, window, dim="time", min_periods=None, threads=None):  # noqa: A001
    """Rolling minimum (van Herk / Gil-Werman, O(1) per element).

    {{window_params}}
    {{threads}}

    {{window_out}}
    >>> ql.rolling.min(x, 3).round(3)
    array([nan, nan,  1.,  2.,  3., nan, nan])
    """
    return _apply(_kernel("roll_minmax", window, min_periods, is_max=False), x, dim, threads)


@fill(_DOC)
def max(x, window, dim="time", min_periods=None, threads=None):  # noqa: A001
    """Rolling maximum (van Herk / Gil-Werman, O(1) per element).

    {{window_params}}
    {{threads}}

    {{window_out}}
    >>> ql.rolling.max(x, 3).round(3)
    array([nan, nan,  4.,  4.,  5., nan, nan])
    """
    return _apply(_kernel("roll_minmax", window, min_periods, is_max=True), x, dim, threads)


@fill(_DOC)
def ewm_mean(x, window, dim="time", min_periods=None, threads=None):
    """Exponentially weighted mean, pandas ``ewm(span=window, adjust=True).mean()``.

    alpha = 2 / (window + 1), y_t = Σ (1-alpha)^i x_{t-i} / Σ (1-alpha)^i over observed x.
    ±inf is missing (pandas).

    {{ewm_params}}

    {{window_out}}
    >>> ql.rolling.ewm_mean(x, 3).round(3)
    array([1.   , 1.667, 3.   , 3.   , 4.032, 4.032, 5.358])
    """
    window = _validate.integer("window", window, 1)
    minp = 1 if min_periods is None else _validate.integer("min_periods", min_periods, 0)
    return _apply(partial(_k.ewm_mean, alpha=2.0 / (window + 1.0),
                          minp=builtins.max(builtins.min(minp, _BIG), 1)), x, dim, threads)


@fill(_DOC)
def rank(x, window, dim="time", min_periods=None, threads=None):
    """Rolling percentile rank, pandas ``rolling(window).rank(method="average", pct=True)``.

    The percentile rank of x_t among the window's values, ties averaged; NaN where x_t is
    NaN or ±inf. O(window) per element.

    {{window_params}}
    {{threads}}

    {{window_out}}
    >>> ql.rolling.rank(x, 3).round(3)
    array([  nan,   nan, 1.   , 0.667, 1.   ,   nan,   nan])
    """
    k = _kernel("roll_rank", window, min_periods)
    return _apply(k, x, dim, threads, cost=0.8 * builtins.min(k.keywords["window"], 10**6))


# Columns whose largest finite |value| lies outside [2**-100, 2**100] are brought near 1
# by a power of two before the correlation kernel (exact: only exponents change, and a
# correlation does not depend on a column's scale). The kernel's sqrt(cxx * cyy)
# overflowed for two columns of ~1e77 (a series' correlation with itself was 0, as in
# pandas) and its sums of squares for one of ~1e154 (NaN or 0), and underflowed for
# ~1e-160 (NaN); inside the range the product cannot over- or underflow: same bits.
_UNIT_LO, _UNIT_HI = 2.0 ** -100, 2.0 ** 100


def _unit_columns(a):
    """``a`` (time, column) with each column of extreme magnitude (above) scaled by a
    power of two bringing its largest finite |value| into [0.5, 1)."""
    return bridge.pow2_scaled(a, 0, _UNIT_LO, _UNIT_HI)


@fill(_DOC)
def corr(x, window, dim="time", min_periods=None, asset_dim="asset", threads=None):
    """Rolling pairwise Pearson correlation of every pair of ``asset_dim`` members.

    Over the rows where both are valid (pandas ``df.rolling(window).corr()``). NaN below
    ``min_periods`` (default ``window``) common rows or where a variance is 0. A column
    of extreme magnitude (beyond 2**±100) is scaled by a power of two first, so its
    correlations are those of the same series at scale 1 (pandas gives 0 or NaN for
    values beyond ~1e77 or below ~1e-160). Memory: time × asset² values.

    Parameters
    ----------
    x : xarray.DataArray, numpy.ndarray (or a list of rows) or pandas.DataFrame
        Values with ``dim`` and ``asset_dim`` (NumPy: 2-D, time by asset; a DataFrame:
        time on its index, a column per asset).
    window : int
        Window length in rows (>= 1).
    dim : str, default 'time'
        The dimension to roll along.
    min_periods : int, optional
        Common valid rows needed for a value, 0 <= min_periods <= window (default
        ``window``).
    asset_dim : str, default 'asset'
        The dimension whose members are paired.
    {{threads}}

    Returns
    -------
    xarray.DataArray, numpy.ndarray or pandas.DataFrame
        ``(time, asset, asset_other)`` named ``corr``; coordinates on ``asset_dim`` are
        repeated as ``<name>_other``. A DataFrame's as pandas' ``df.rolling(w).corr()``:
        a row per (time, column), a column per column.

    Raises
    ------
    ValueError
        If ``x`` is a Dataset, a NumPy array is not 2-D, or ``window``/``min_periods`` is
        out of range.
    TypeError
        If ``x`` is complex, datetime, timedelta or object.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> c = ql.rolling.corr(ql.data.returns(ds["close"]), 20)
    >>> c.dims
    ('time', 'asset', 'asset_other')
    >>> c.isel(time=-1).sel(asset="AAPL").round(2).values
    array([1.  ,  nan, 0.71, 0.63])
    """
    kernel = _kernel("roll_corr", window, min_periods)
    if isinstance(x, xr.Dataset):
        raise ValueError("corr takes a DataArray (e.g. returns of ds['close']), not a Dataset")
    if not isinstance(x, xr.DataArray):
        a = np.asarray(x)
        if a.ndim != 2:   # checked first: the bridge would loop over a third axis
            _validate.real_array("x", a.dtype)
            raise ValueError(f"corr: NumPy or pandas input must be 2-D (time, asset: a "
                             f"DataFrame), got {a.ndim}-D")
    if not isinstance(asset_dim, str) or (isinstance(x, xr.DataArray) and asset_dim not in x.dims):
        raise ValueError(f"asset_dim must name a dimension of x {tuple(getattr(x, 'dims', ()))}"
                         f", got {_validate._show(asset_dim)}")   # None: a reshape error
    other = f"{asset_dim}_other"
    m = a.shape[-1] if not isinstance(x, xr.DataArray) else x.sizes.get(asset_dim, 0)
    out = bridge.apply(lambda a: kernel(_unit_columns(a)), x, dim=dim, core=asset_dim,
                       new_dim=(other, m), threads=threads)
    if not isinstance(out, xr.DataArray):
        return out
    coords = {other: x[asset_dim].values}
    for name, c in x.coords.items():  # e.g. asset_class on asset -> asset_class_other
        if c.dims == (asset_dim,) and name != asset_dim:
            coords[f"{name}_other"] = (other, c.values)
    return out.assign_coords(coords).rename("corr")
