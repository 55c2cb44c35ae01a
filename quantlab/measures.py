"""Complexity and information measures: fractal, chaos, entropy, transfer entropy.

One-shot measures take a 1-D series (NumPy, list, pandas Series or 1-D DataArray) and
return a float; NaN at the start or end (a first return, an unlisted stretch) is dropped,
a NaN inside raises. ``rolling_<name>(x, window, dim="time", ...)`` computes the same
measure over every window of every series of a DataArray (any other dims), Dataset,
NumPy array (time on axis 0) or pandas Series/DataFrame (time on its index; the result
is the same pandas type on its index and columns): the value at t uses the ``window`` observations ending at
t, NaN before the first full window and for windows holding a NaN. Results are float64.
Empty input (a dim of size 0) gives an empty result of the same dims.
Dask input is computed lazily, chunk by chunk over the non-time dims (the kernels release
the GIL); chunks along time are merged first, since a window needs the rows before it.

Definitions equal the reference implementations (tests compare values): nolds 0.6.2
``hurst_rs``, ``dfa``, ``lyap_r`` (``fit="poly"``); antropy ``perm_entropy``,
``sample_entropy``, ``higuchi_fd``, ``katz_fd``, ``detrended_fluctuation``; PyInform
``transfer_entropy``, ``mutual_info``.

Units: ``shannon_entropy``, ``permutation_entropy``, ``mutual_information``,
``transfer_entropy`` in bits; ``sample_entropy`` in nats.

Symbols: integer (or bool) input to the information measures is taken as symbols
0, 1, 2, ...; float input is binned within each window (no look-ahead) into ``bins``
equal-width bins over the window's range (``binning="width"``) or equal-count bins by
rank (``binning="quantile"``; equal values share the bin of their average rank, so a
constant series has entropy 0). Defaults for floats: Shannon entropy 10 equal-width
bins; mutual information and transfer entropy 3 equal-count bins (few symbols, as
finance series are short: Marschinski & Kantz 2002).
"""
from __future__ import annotations

import math
from functools import lru_cache, partial

import numpy as np
import pandas as pd
import xarray as xr

from quantlab import _apply as bridge
from quantlab import _threads, _validate
from quantlab._doc import fill
from quantlab._kernels import load

_k = load("measures")   # the x86-64-v3 build where the CPU runs it (AVX in simd.h)

__all__ = ["hurst", "dfa", "higuchi_fd", "katz_fd", "lyapunov_r", "sample_entropy",
           "permutation_entropy", "shannon_entropy", "mutual_information",
           "transfer_entropy",
           "rolling_hurst", "rolling_dfa", "rolling_higuchi_fd", "rolling_katz_fd",
           "rolling_lyapunov_r", "rolling_sample_entropy", "rolling_permutation_entropy",
           "rolling_shannon_entropy", "rolling_mutual_information",
           "rolling_transfer_entropy"]

_DEFAULT_BINS = {"shannon": (10, "width"), "mutual": (3, "quantile"),
                 "transfer": (3, "quantile")}

# Sizes computed from parameters are bounded before any kernel allocates (an overflowed
# bins**k once gave a zero-size count table and a segfault):
# - a count table (Shannon alphabet, the mutual information joint table, transfer
#   entropy's histories x source x next) has at most 2**24 cells (128 MB of counts,
#   touched only where states occur): binary k <= 22, 3 bins k <= 13, 10 bins k <= 5.
#   Plug-in estimates need many observations per state, so real use stays far below.
_STATE_LIMIT = 2 ** 24
# - rolling Lyapunov keeps a (time x trajectories) distance band per kernel call: the
#   time axis is fed in chunks of at most 2**24 band cells (256 MB), or 2 windows.
_BAND_LIMIT = 2 ** 24
# - integer symbols up to 2**16 (or the data's length) index a dense table; larger ones
#   are renumbered by their distinct values (entropies depend only on the counts).
_DENSE_SYMBOLS = 2 ** 16
_EXACT = 2 ** 53     # integers converted to float64 beyond this lose their low bits
# values beyond 2**±400 are rescaled by an exact power of two (every measure here is
# scale-invariant): squares of 1e300 overflowed and of 1e-300 underflowed (hurst, dfa,
# lyapunov_r, sample_entropy gave NaN, -inf or 0 instead of the value at scale 1)
_SCALE_LO, _SCALE_HI = 2.0 ** -400, 2.0 ** 400


# shared numpydoc blocks (quantlab._doc.fill): each written once, slotted as {{name}}
_WINDOW_DIM = """\
window : int
    Observations per window (the value at t uses the ``window`` observations ending
    at t).
dim : str, default 'time'
    The time dimension."""


def _bins_doc(n, binning):
    return f"""\
bins : int, optional
    Bins for float input (module docstring); default {n}.
binning : {{'width', 'quantile'}}, optional
    Equal-width bins over the window's range or equal-count bins by rank; default
    '{binning}'."""


_RETURNS_FD = """\
Returns
-------
float
    The fractal dimension."""
_RETURNS_BITS = """\
Returns
-------
float
    Bits."""
_WINDOW_RETURNS = """\
Returns
-------
same type as ``x``
    float64, same dims; NaN before the first full window and for windows holding a NaN."""
_SERIES_RAISES = """\
Raises
------
ValueError
    If ``x`` has NaN inside, is too short, or a parameter is out of range.
TypeError
    If ``x`` is complex, datetime or non-numeric."""
_WINDOW_RAISES = """\
Raises
------
ValueError
    If ``window`` or a parameter is out of range (e.g. too short a window)."""
_SERIES_EXAMPLES = """\
Examples
--------
>>> import numpy as np, quantlab as ql
>>> x = np.random.default_rng(0).standard_normal(500)"""
_WINDOW_EXAMPLES = """\
Examples
--------
>>> import quantlab as ql
>>> ds = ql.data.load().isel(time=slice(0, 300))
>>> r = ql.data.returns(ds["close"])"""


def _pair_doc(names):
    return f"""\
Parameters
----------
{names} : xarray.DataArray, xarray.Dataset, numpy.ndarray or pandas
    Series along ``dim``, broadcast together (pandas: on one index).
""" + _WINDOW_DIM


_DOC = {
    "series_params": """\
Parameters
----------
x : array-like, pandas.Series or 1-D xarray.DataArray
    The series (increments, e.g. returns, for the fractal and chaos measures). NaN at
    the start or end is dropped; NaN inside raises.""",
    "window_params": """\
Parameters
----------
x : xarray.DataArray, xarray.Dataset, numpy.ndarray, pandas.Series or pandas.DataFrame
    Series along ``dim`` (NumPy: time on axis 0; pandas: its index), any other dims.
""" + _WINDOW_DIM,
    "hurst_params": """\
nvals : sequence of int, optional
    Block sizes; default 15 log-spaced sizes over the middle quarter of log(len(x))
    (nolds).
corrected : bool, default True
    Subtract the Anis-Lloyd-Peters expectation of white noise and add 0.5.
unbiased : bool, default True
    Block std with ddof=1 (else ddof=0).""",
    "dfa_params": """\
nvals : sequence of int, optional
    Box sizes: >= 2 distinct sizes in [4, len(x)); default 4, 4·1.2, ... <= len(x)/10
    (nolds), and 4..9 for 70 points or fewer (nolds; antropy then fits one or two
    sizes). Sizes where F(n) is exactly 0 are left out (antropy).
overlap : bool, default False
    Half-overlapping boxes (nolds' default) instead of disjoint ones.""",
    "higuchi_params": """\
kmax : int, default 10
    Largest interval k.""",
    "lyapunov_params": """\
emb_dim : int, default 10
    Embedding dimension.
lag : int, default 1
    Delay between embedding coordinates.
min_tsep : int, default 10
    Minimum time separation of nearest neighbours.
trajectory_len : int, default 20
    Steps each pair is followed.
tau : float, default 1.0
    Time units per step (the exponent is per ``tau``).""",
    "sampen_params": """\
order : int, default 2
    Template length.
tolerance : float, optional
    Matching radius r (> 0); default 0.2·std(x) (ddof=0), as antropy.""",
    "permen_params": """\
order : int, default 3
    Points per ordinal pattern.
delay : int, default 1
    Steps between the pattern's points.
normalize : bool, default False
    Divide by log2(order!) (1 = no structure).""",
    "shannon_params": _bins_doc(10, "width"),
    "mi_params": _bins_doc(3, "quantile"),
    "te_params": """\
k : int, default 1
    Length of the target's history.
""" + _bins_doc(3, "quantile"),
    "window_out": _WINDOW_RETURNS + "\n\n" + _WINDOW_RAISES + "\n\n" + _WINDOW_EXAMPLES,
    "series_out": _SERIES_RAISES + "\n\n" + _SERIES_EXAMPLES,
    "fd_out": _RETURNS_FD + "\n\n" + _SERIES_RAISES + "\n\n" + _SERIES_EXAMPLES,
    "bits_out": _RETURNS_BITS + "\n\n" + _SERIES_RAISES + "\n\n" + _SERIES_EXAMPLES,
    "returns_bits": _RETURNS_BITS,
    "series_examples": _SERIES_EXAMPLES,
    "xy_window": _pair_doc("x, y"),
    "st_window": _pair_doc("source, target"),
}


# ---- input handling ---------------------------------------------------------------

def _array(x, name="x") -> np.ndarray:
    """x's values as an ndarray of real numbers (bool, int or float; others refused)."""
    a = (_validate.pandas_values(x) if isinstance(x, (pd.Series, pd.DataFrame))
         else np.asarray(getattr(x, "values", x)))
    _validate.real_array(name, a.dtype)
    return a


def _to_float(a, axis=-1, ranks=False) -> np.ndarray:
    """Real ndarray -> float64. Integers are first shifted by their minimum along
    ``axis`` in exact integer arithmetic (every measure here is shift-invariant), so
    int64 timestamps or ``x + 2**60`` keep their differences; when a span still exceeds
    2**53, ``ranks`` replaces the values by their dense ranks (exact ordinal patterns)."""
    if a.dtype.kind not in "iu" or a.size == 0 or a.shape[axis] == 0:
        return a.astype(np.float64, copy=False)
    lo = a.min(axis=axis, keepdims=True)
    d = a.astype(np.uint64) - lo.astype(np.uint64)   # mod 2**64: exact, as spans < 2**64
    if ranks and d.max() > _EXACT:
        return np.unique(a, return_inverse=True)[1].reshape(a.shape).astype(np.float64)
    return d.astype(np.float64)


def _rescale(a, axis=-1) -> np.ndarray:
    """a times a power of two bringing max |finite a| along ``axis`` near 1, where it
    lies outside [2**-400, 2**400] (exact: only the exponents change)."""
    if a.size:   # fast path, two reductions without temporaries: nothing to rescale
        lo, hi = float(a.min()), float(a.max())
        big = max(-lo, hi)
        if big <= _SCALE_HI and (big >= _SCALE_LO or big == 0.0):
            return a
    return bridge.pow2_scaled(a, axis, _SCALE_LO, _SCALE_HI)


def _series(x, name="x", ranks=False, scale=True) -> np.ndarray:
    """1-D float64 values with leading/trailing NaN dropped; interior NaN, any ±inf, an
    empty series and complex or datetime input are errors."""
    a = _array(x, name)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}; for a panel use the "
                         "rolling_<name>(x, window) form")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    a = _to_float(a, ranks=ranks)
    # a·a is not finite exactly when a holds a NaN or ±inf (or squares overflow): a third
    # of the time of isnan().any() on a one-shot call's ~2,500 points; outside
    # (2**-700, 2**700) the values may also need rescaling
    with np.errstate(over="ignore", under="ignore"):   # huge values: handled below
        ss = a @ a
    if not 2.0 ** -700 < ss < 2.0 ** 700:
        if scale:
            a = _rescale(a)
        inf = np.flatnonzero(np.isinf(a))
        if inf.size:
            raise ValueError(f"{name} has {inf.size} infinite value(s) (first at position "
                             f"{inf[0]}); the measures need finite values")
        bad = np.isnan(a)
        ok = np.flatnonzero(~bad)
        if ok.size == 0:
            raise ValueError(f"{name} is all NaN")
        if bad.any():
            a = a[ok[0]:ok[-1] + 1]
            if np.isnan(a).any():
                raise ValueError(f"{name} has {int(np.isnan(a).sum())} NaN inside the "
                                 f"series (first at position "
                                 f"{ok[0] + int(np.flatnonzero(np.isnan(a))[0])})"
                                 "; drop or fill them first")
    return np.ascontiguousarray(a)


def _window(window, lo=1):
    """window checked in [1, 2**62], then >= lo (what the measure needs)."""
    # 2**62: larger ints overflow the kernels' index type (and np.log of default nvals)
    window = _validate.integer("window", window, 1, 2 ** 62)
    return window if lo == 1 else _validate.integer("window", window, lo, 2 ** 62)


def _one(kernel, a, *args):
    """A one-shot measure is the rolling kernel with one window: the whole series."""
    return float(kernel(a[None, :], a.size, *args)[0, -1])


def _rolling(kernel, x, window, dim, *others, ranks=False, scale=True, names=None):
    """``kernel(*panels, window)`` over every window along ``dim`` of x (and the aligned
    ``others``), through the one bridge (``quantlab._apply.apply``, series layout).

    Integer input is shifted (``_to_float``) per series; each series is rescaled by a
    power of two if its values are extreme (``_rescale``); a window longer than the
    series gives all NaN without calling the kernel (whose buffers are sized by it)."""
    window = _window(window)

    def run(*flat):
        if window > flat[0].shape[1]:
            return np.full(flat[0].shape, np.nan)
        if scale:
            flat = [np.ascontiguousarray(_rescale(a)) for a in flat]
        return kernel(*flat, window)

    return bridge.apply(run, x, *others, dim=dim, layout="series", names=names,
                        integers=lambda v, axis: _to_float(v, axis=axis, ranks=ranks))


# ---- Hurst exponent ---------------------------------------------------------------

@lru_cache(maxsize=None)
def _expected_rs(n: int) -> float:
    """Anis & Lloyd (1976) expected R/S of white noise, Peters' (1994) (n - 1/2)/n factor."""
    front = (n - 0.5) / n
    i = np.arange(1, n)
    back = np.sum(np.sqrt((n - i) / i))
    if n <= 340:
        middle = math.gamma((n - 1) * 0.5) / math.sqrt(math.pi) / math.gamma(n * 0.5)
    else:
        middle = 1.0 / math.sqrt(n * math.pi * 0.5)
    return front * middle * back


def _sizes(nvals, what):
    """User block sizes as a tuple of ints (hashable: the plans are cached)."""
    if nvals is None:
        return None
    a = np.asarray(nvals)
    if a.ndim != 1 or a.size == 0 or a.dtype.kind not in "iuf" or (
            a.dtype.kind == "f" and not (np.isfinite(a).all() and (a == np.round(a)).all())):
        raise ValueError(f"nvals must be a 1-D sequence of integer {what} sizes, got "
                         f"{nvals!r}")
    return tuple(int(v) for v in a)


def _hurst_nvals(n, nvals):
    """Block sizes for a series of n (nvals a tuple or None), checked: >= 2 distinct
    sizes in [2, n] (a size of 1 has no std; one distinct size has no slope)."""
    if nvals is None:   # nolds' logmid_n: 15 log-spaced sizes over the middle quarter
        if n < 2:
            nvals = ()
        else:
            lg = np.log(n)
            nvals = np.unique(np.round(np.exp(lg * 0.375 + np.arange(15) / 15 * lg * 0.25))
                              .astype(np.intp))
    nv = np.asarray(nvals, dtype=np.int64)
    if np.unique(nv).size < 2 or nv.min() < 2 or nv.max() > n:
        raise ValueError(f"hurst needs at least two distinct block sizes (nvals) in [2, {n}]"
                         f", got {nv.tolist()}; use a longer series or window")
    return nv.astype(np.intp)


@lru_cache(maxsize=64)
def _hurst_args(n, nvals, corrected):
    """(block sizes, log expected R/S) for a series of n; nvals a tuple or None."""
    nvals = _hurst_nvals(n, nvals)
    logexp = (np.log([_expected_rs(int(v)) for v in nvals]) if corrected
              else np.zeros(nvals.size))
    return nvals, logexp


@lru_cache(maxsize=64)
def _hurst_plan(n, nvals, corrected):
    return _k.HurstPlan(n, *_hurst_args(n, nvals, corrected))


def _hurst_kernel(corrected, unbiased, nvals):
    def run(x, window):
        nv, le = _hurst_args(window, nvals, corrected)
        out = _k.roll_hurst(x, window, nv, le, unbiased)
        return out + 0.5 if corrected else out
    return run


@fill(_DOC)
def hurst(x, nvals=None, corrected=True, unbiased=True) -> float:
    """Hurst exponent by rescaled range (Hurst 1951; nolds ``hurst_rs``, ``fit="poly"``).

    ``x`` holds increments (returns), not prices. For each block size n, (R/S)_n is the
    mean over the ``len(x) // n`` blocks of range(cumsum(block - mean)) / std(block,
    ddof=1 if ``unbiased``); H is the least-squares slope of log (R/S)_n on log n.
    ``corrected`` subtracts the Anis-Lloyd-Peters expectation of white noise and adds 0.5,
    so white noise scores 0.5 without small-sample bias; H > 0.5 trends, < 0.5 reverts.
    ``nvals`` default: 15 log-spaced sizes over the middle quarter of log(len(x)) (nolds).

    {{series_params}}
    {{hurst_params}}

    Returns
    -------
    float
        H; about 0.5 for white noise.

    {{series_out}}
    >>> round(ql.measures.hurst(x), 4)
    0.5096
    """
    corrected = _validate.flag("corrected", corrected)
    unbiased = _validate.flag("unbiased", unbiased)
    a = _series(x)
    return _hurst_plan(a.size, _sizes(nvals, "block"), corrected)(a, unbiased) + (
        0.5 if corrected else 0.0)


@fill(_DOC)
def rolling_hurst(x, window, dim="time", nvals=None, corrected=True, unbiased=True):
    """:func:`hurst` over every window of length ``window``.

    {{window_params}}
    {{hurst_params}}

    {{window_out}}
    >>> ql.measures.rolling_hurst(r, 100).isel(time=-1).round(3).values
    array([0.42 ,   nan, 0.503, 0.468])
    """
    corrected = _validate.flag("corrected", corrected)
    unbiased = _validate.flag("unbiased", unbiased)
    nvals = _sizes(nvals, "block")
    _hurst_nvals(_window(window), nvals)   # fail early (no allocation)
    return _rolling(_hurst_kernel(corrected, unbiased, nvals), x, window, dim)


# ---- DFA --------------------------------------------------------------------------

def _dfa_nvals(n, nvals):
    """Box sizes for a series of n, checked: >= 2 distinct sizes in [4, n). A line
    through 2 points fits exactly (F = 0 up to rounding: dfa(x, nvals=[2, 3]) gave
    46.5) and 3 points leave one degree of freedom; nolds' docstring (after Hardstone
    et al. 2012) calls min(nvals) < 4 senseless, and its default starts at 4."""
    if nvals is None:
        if n > 70:   # nolds / antropy: 4, 4*1.2, ... up to n / 10, as integers
            max_i = int(np.floor(np.log(0.1 * n / 4) / np.log(1.2)))
            nvals = [4]
            for i in range(max_i + 1):
                v = int(np.floor(4 * 1.2 ** i))
                if v > nvals[-1]:
                    nvals.append(v)
        else:
            nvals = [4, 5, 6, 7, 8, 9]
    nv = np.asarray(nvals, dtype=np.int64)
    if np.unique(nv).size < 2 or nv.min() < 4 or nv.max() >= n:
        raise ValueError(f"dfa needs at least two distinct box sizes (nvals) in [4, {n}), "
                         f"got {nv.tolist()}; use a longer series or window (> 10)")
    return nv.astype(np.intp)


@fill(_DOC)
def dfa(x, nvals=None, overlap=False) -> float:
    """Detrended fluctuation analysis exponent alpha (Peng et al. 1994), linear detrending.

    Profile y = cumsum(x - mean x); F(n)² = mean over boxes of n points of the residual
    variance of a least-squares line; alpha = slope of log F(n) on log n. White noise
    gives 0.5, a random walk 1.5. Boxes do not overlap (antropy
    ``detrended_fluctuation``, nolds ``overlap=False``) unless ``overlap=True`` (nolds'
    default, half-overlapping). ``nvals`` default 4, 4·1.2, ... ≤ len(x)/10 (nolds).

    {{series_params}}
    {{dfa_params}}

    Returns
    -------
    float
        alpha.

    {{series_out}}
    >>> round(ql.measures.dfa(x), 4)
    0.5294
    """
    overlap = _validate.flag("overlap", overlap)
    a = _series(x)
    return _one(_k.roll_dfa, a, _dfa_nvals(a.size, _sizes(nvals, "box")), overlap)


@fill(_DOC)
def rolling_dfa(x, window, dim="time", nvals=None, overlap=False):
    """:func:`dfa` over every window of length ``window``.

    {{window_params}}
    {{dfa_params}}

    {{window_out}}
    >>> ql.measures.rolling_dfa(r, 100).isel(time=-1).round(3).values
    array([0.652,   nan, 0.553, 0.842])
    """
    overlap = _validate.flag("overlap", overlap)
    nv = _dfa_nvals(_window(window), _sizes(nvals, "box"))
    return _rolling(lambda v, w: _k.roll_dfa(v, w, nv, overlap), x, window, dim)


# ---- fractal dimensions -----------------------------------------------------------

def _kmax(n, kmax):
    kmax = _validate.integer("kmax", kmax, 2)
    if n < 2 * kmax:
        raise ValueError(f"higuchi_fd needs at least 2*kmax = {2 * kmax} points, got {n}")
    return kmax


@fill(_DOC)
def higuchi_fd(x, kmax=10) -> float:
    """Higuchi (1988) fractal dimension: slope of log L(k) on log(1/k), k = 1..kmax.

    L(k) = mean over m < k of (N-1)/(k²·N_m) Σ_j |x[m+jk] - x[m+(j-1)k]|, N_m = ⌊(N-m-1)/k⌋.
    About 2 for white noise, 1.5 for a random walk, 1 for a straight line (antropy).

    {{series_params}}
    {{higuchi_params}}

    {{fd_out}}
    >>> round(ql.measures.higuchi_fd(x), 4)
    2.0026
    """
    a = _series(x)
    return _k.higuchi(a, _kmax(a.size, kmax))


@fill(_DOC)
def rolling_higuchi_fd(x, window, dim="time", kmax=10):
    """:func:`higuchi_fd` over every window of length ``window``.

    {{window_params}}
    {{higuchi_params}}

    {{window_out}}
    >>> ql.measures.rolling_higuchi_fd(r, 100).isel(time=-1).round(3).values
    array([2.025,   nan, 2.039, 2.023])
    """
    k = _kmax(_window(window), kmax)
    return _rolling(lambda v, w: _k.roll_higuchi(v, w, k), x, window, dim)


@fill(_DOC)
def katz_fd(x) -> float:
    """Katz (1988) fractal dimension log10(L/a) / log10(d/a).

    L the curve length Σ|Δx|, a the mean step, d the largest distance from the first point
    (antropy ``katz_fd``).

    {{series_params}}

    {{fd_out}}
    >>> round(ql.measures.katz_fd(x), 4)
    4.9711
    """
    a = _series(x)
    if a.size < 3:   # one step: log10(L/a) / log10(d/a) is 0/0 for every series
        raise ValueError(f"katz_fd needs at least 3 points, got {a.size}")
    return _one(_k.roll_katz, a)


@fill(_DOC)
def rolling_katz_fd(x, window, dim="time"):
    """:func:`katz_fd` over every window of length ``window``.

    {{window_params}}

    {{window_out}}
    >>> ql.measures.rolling_katz_fd(r, 100).isel(time=-1).round(3).values
    array([4.283,   nan, 3.48 , 3.948])
    """
    _window(window, 3)   # katz_fd needs 3 points (2: NaN for every window)
    return _rolling(_k.roll_katz, x, window, dim)


# ---- largest Lyapunov exponent ----------------------------------------------------

def _lyap_args(n, emb_dim, lag, min_tsep, trajectory_len):
    emb_dim, lag = _validate.integer("emb_dim", emb_dim, 1), _validate.integer("lag", lag, 1)
    min_tsep = _validate.integer("min_tsep", min_tsep, 0)
    trajectory_len = _validate.integer("trajectory_len", trajectory_len, 2)
    need = (emb_dim - 1) * lag + trajectory_len - 1 + 2 * min_tsep + 2
    if n < need:
        raise ValueError(f"lyapunov_r with emb_dim={emb_dim}, lag={lag}, min_tsep={min_tsep},"
                         f" trajectory_len={trajectory_len} needs at least {need} points, "
                         f"got {n}")
    return emb_dim, lag, min_tsep, trajectory_len


@fill(_DOC)
def lyapunov_r(x, emb_dim=10, lag=1, min_tsep=10, trajectory_len=20, tau=1.0) -> float:
    """Largest Lyapunov exponent by Rosenstein, Collins & De Luca (1993), nolds ``lyap_r`` with ``fit="poly"``.

    Delay-embed x (``emb_dim`` coordinates ``lag`` apart), pair each orbit vector with its
    nearest neighbour (Euclidean) at least ``min_tsep`` steps away in time, follow both
    ``trajectory_len`` steps and fit the slope of the mean log distance on the step:
    the exponent per ``tau`` time units. > 0 means nearby states diverge (chaos; 1/λ is
    the predictability horizon), ≤ 0 a stable or periodic regime. The logistic map at
    r = 4 gives ln 2. Unlike nolds, ``lag`` and ``min_tsep`` have fixed defaults rather
    than being estimated from the spectrum, so rolling windows stay comparable.

    {{series_params}}
    {{lyapunov_params}}

    Returns
    -------
    float
        The exponent per ``tau``.

    {{series_out}}
    >>> round(ql.measures.lyapunov_r(x[:300]), 4)
    0.0298
    """
    tau = _validate.number("tau", tau, 0, lo_open=True)
    a = _series(x)
    args = _lyap_args(a.size, emb_dim, lag, min_tsep, trajectory_len)
    return _one(_k.roll_lyap, a, *args) / tau


@fill(_DOC)
def rolling_lyapunov_r(x, window, dim="time", emb_dim=10, lag=1, min_tsep=10,
                       trajectory_len=20, tau=1.0):
    """:func:`lyapunov_r` over every window of length ``window``.

    {{window_params}}
    {{lyapunov_params}}

    {{window_out}}
    >>> ql.measures.rolling_lyapunov_r(r, 100).isel(time=-1).round(3).values
    array([0.025,   nan, 0.019, 0.022])
    """
    tau = _validate.number("tau", tau, 0, lo_open=True)
    args = _lyap_args(_window(window), emb_dim, lag, min_tsep, trajectory_len)
    out = _rolling(partial(_roll_lyap_chunked, args=args), x, window, dim)
    return out / tau if tau != 1.0 else out


def _roll_lyap_chunked(x, window, args):
    """``roll_lyap`` fed time chunks: the kernel keeps a (time - span) x trajectories band
    of distances per call, so a long series is cut into overlapping chunks of at most
    ``_BAND_LIMIT`` band cells (or 2 windows, whichever is more: the overlap is recomputed),
    each giving the windows that end inside it. Windows do not depend on each other, so
    the values are those of one call."""
    emb, lag, min_tsep, traj = args
    T, span = x.shape[1], (emb - 1) * lag
    ntraj = window - span - traj + 1
    per = max(_BAND_LIMIT // ntraj - (window - 1 - span), window)   # outputs per chunk
    if T - span <= per + window - 1 - span:
        return _k.roll_lyap(x, window, *args)
    out = np.full(x.shape, np.nan)
    for t0 in range(window - 1, T, per):          # windows ending in [t0, t0 + per)
        t1 = min(t0 + per, T)
        part = np.ascontiguousarray(x[:, t0 - window + 1:t1])
        out[:, t0:t1] = _k.roll_lyap(part, window, *args)[:, window - 1:]
    return out


class _LyapStream:
    """The largest Lyapunov exponent of each series' last ``window`` values, one new
    value per series at a time (a live signal's per-bar :func:`rolling_lyapunov_r`).

    ``push(row)`` returns ``roll_lyap(_rescale(last window), window, ...)[:, -1]`` bit for
    bit (NaN while fewer than ``window`` values or the window holds a NaN or ±inf): the
    kernel ``lyap_push`` keeps each window's nearest neighbours and log distances, so a
    value costs O(window) per series instead of O(window²). The state is NumPy arrays
    (copyable) and depends only on the last ``window`` values: a stream started later
    gives the same bits once it has a window. Arguments as :func:`rolling_lyapunov_r`.
    """

    def __init__(self, window, emb_dim=10, lag=1, min_tsep=10, trajectory_len=20):
        self.window = _window(window)
        self.args = _lyap_args(self.window, emb_dim, lag, min_tsep, trajectory_len)
        emb, lag, _, traj = self.args
        self.ntraj = self.window - (emb - 1) * lag - traj + 1
        self.t, self.state = -1, None

    def push(self, row) -> np.ndarray:
        """The exponent of each series' window ending at the new value ``row`` (series,)."""
        row = np.ascontiguousarray(row, dtype=np.float64)
        n, w = row.shape[0], self.window
        if row.ndim != 1 or (self.state is not None and n != self.state[0].shape[0]):
            # before the clock moves: a refused row leaves every window as it was
            raise ValueError(f"_LyapStream.push: a row of {row.shape} values, the stream "
                             f"has {'?' if self.state is None else self.state[0].shape[0]} "
                             "series")
        if self.state is None:
            self.state = (np.full((n, 2 * w), np.nan), np.empty((n, self.ntraj)),
                          np.empty((n, self.ntraj), dtype=np.intp),
                          np.empty((n, self.ntraj * self.args[3])),
                          np.full(n, -w, dtype=np.intp), np.zeros(n, dtype=np.int8))
        out, mx = np.empty(n), np.empty(n)
        self.t += 1
        emb, _, _, traj = self.args
        k, parts = _threads.blocks(n, n * self.ntraj * (emb + traj), copied=False)
        _threads.run(lambda lo, hi: _k.lyap_push(*(a[lo:hi] for a in self.state), row[lo:hi],
                                                 self.t, *self.args, out[lo:hi], mx[lo:hi]),
                     parts, k)   # series are independent: blocks of them on the pool
        # _rescale of the window panel (as its caller applies it before roll_lyap): its
        # fast path leaves every series as it is; otherwise (a window not finite: mx NaN)
        # series with extreme values (rare) are rescaled and recomputed whole
        if self.t < w - 1 or n == 0:
            return out
        big = mx.max()
        if big <= _SCALE_HI and (big >= _SCALE_LO or big == 0.0):
            return out
        bad = ~np.isnan(mx) & ((mx > _SCALE_HI) | ((mx < _SCALE_LO) & (mx > 0)))
        if bad.any():
            p = (self.t + 1) % w
            x = np.ascontiguousarray(_rescale(self.state[0][bad, p:p + w]))
            out[bad] = _k.roll_lyap(x, w, *self.args)[:, -1]
        return out


# ---- entropies --------------------------------------------------------------------

def _sampen_args(n, order, tolerance):
    order = _validate.integer("order", order, 1)
    if n <= order + 1:
        raise ValueError(f"sample_entropy with order={order} needs more than order + 1 = "
                         f"{order + 1} points, got {n}")
    if tolerance is None:
        return order, -1.0
    # templates match within distance < r: r = 0 matches none, not even equal values (NaN
    # for every series, presented as a result)
    return order, _validate.number("tolerance", tolerance, 0, lo_open=True)


@fill(_DOC)
def sample_entropy(x, order=2, tolerance=None) -> float:
    """Sample entropy (Richman & Moorman 2000) in nats: -ln(A/B).

    B the pairs of ``order``-point templates within Chebyshev distance < r, A those still
    within r at ``order + 1`` points. r = ``tolerance``, default 0.2·std(x) (ddof=0), as
    antropy. inf when no pair extends, NaN when no pair matches.

    {{series_params}}
    {{sampen_params}}

    Returns
    -------
    float
        Nats; inf when no pair extends, NaN when no pair matches.

    {{series_out}}
    >>> round(ql.measures.sample_entropy(x), 4)
    2.2594
    """
    a = _series(x, scale=tolerance is None)   # a given r is in x's units
    order, r = _sampen_args(a.size, order, tolerance)
    return _one(_k.roll_sampen, a, order, r)


@fill(_DOC)
def rolling_sample_entropy(x, window, dim="time", order=2, tolerance=None):
    """:func:`sample_entropy` over every window; r is 0.2·std of each window by default.

    {{window_params}}
    {{sampen_params}}

    {{window_out}}
    >>> ql.measures.rolling_sample_entropy(r, 100).isel(time=-1).round(3).values
    array([2.398,   nan, 1.651, 2.037])
    """
    order, r = _sampen_args(_window(window), order, tolerance)
    return _rolling(lambda v, w: _k.roll_sampen(v, w, order, r), x, window, dim,
                    scale=tolerance is None)


def _perm_args(n, order, delay):
    # a table of order! pattern counts: 10! = 3.6M
    order = _validate.integer("order", order, 2, 10)
    delay = _validate.integer("delay", delay, 1)
    if n - (order - 1) * delay < 1:
        raise ValueError(f"series of {n} points is too short for order={order}, "
                         f"delay={delay}")
    return order, delay


@fill(_DOC)
def permutation_entropy(x, order=3, delay=1, normalize=False) -> float:
    """Permutation entropy (Bandt & Pompe 2002) in bits: -Σ p·log2 p over the ordinal patterns.

    Patterns of ``order`` points ``delay`` apart (ties in time order, as antropy); divided
    by log2(order!) when ``normalize``. Low entropy = structure. Integers are compared
    exactly (int64 beyond 2**53 by rank).

    {{series_params}}
    {{permen_params}}

    Returns
    -------
    float
        Bits (or a fraction of the maximum when ``normalize``).

    {{series_out}}
    >>> round(ql.measures.permutation_entropy(x, normalize=True), 4)
    0.9991
    """
    normalize = _validate.flag("normalize", normalize)
    a = _series(x, ranks=True)
    order, delay = _perm_args(a.size, order, delay)
    return _one(_k.roll_permen, a, order, delay, normalize)


@fill(_DOC)
def rolling_permutation_entropy(x, window, dim="time", order=3, delay=1, normalize=False):
    """:func:`permutation_entropy` over every window, in O(1) per step.

    {{window_params}}
    {{permen_params}}

    {{window_out}}
    >>> ql.measures.rolling_permutation_entropy(r, 100).isel(time=-1).round(3).values
    array([2.56 ,   nan, 2.574, 2.579])
    """
    normalize = _validate.flag("normalize", normalize)
    order, delay = _perm_args(_window(window), order, delay)
    return _rolling(lambda v, w: _k.roll_permen(v, w, order, delay, normalize),
                    x, window, dim, ranks=True)


def _codes(a, name):
    """Integer (or bool) symbols -> (float64 codes, alphabet size). Symbols up to
    ``max(_DENSE_SYMBOLS, a.size)`` are their own codes; larger ones (volumes, ids,
    timestamps) are renumbered 0, 1, ... by sorting (np.unique): entropies depend only on
    the counts, and a dense table over [0, 10**9] took gigabytes."""
    if a.size == 0:
        return a.astype(np.float64), 1
    lo, hi = a.min(), a.max()
    if lo < 0:
        raise ValueError(f"{name}: integer symbols must be >= 0, got {lo}")
    if hi < max(_DENSE_SYMBOLS, a.size):
        return a.astype(np.float64), int(hi) + 1
    u, inv = np.unique(a, return_inverse=True)
    return inv.reshape(a.shape).astype(np.float64), int(u.size)


def _symbols(x, which, bins, binning, name="x"):
    """(x as float64 codes or values, kernel bins (0 = integer symbols), quantile?,
    alphabet size). Integer/bool input is taken as symbols, float input is binned."""
    x = _validate.numpy_data(x)
    if isinstance(x, xr.Dataset):   # rolling: each variable on its own
        for v in x.data_vars.values():
            _validate.real_array(f"{name}[{v.name!r}]", v.dtype)
            if v.dtype.kind in "biu":
                raise TypeError(f"{name}: pass integer symbols as a DataArray or array, "
                                f"not inside a Dataset")
        dtype = np.dtype(np.float64)
    else:
        if not (isinstance(x, xr.DataArray) or bridge.is_pandas(x)):
            x = _array(x, name)   # pandas stays pandas: the bridge returns its type
        dtype = _array(x, name).dtype if bridge.is_pandas(x) else x.dtype
        _validate.real_array(name, dtype)
    if dtype.kind in "biu":
        if bins is not None:
            raise ValueError(f"{name} holds integer symbols; bins= applies to floats only")
        vals, alphabet = _codes(np.asarray(x.values if isinstance(x, xr.DataArray) else x),
                                name)
        if isinstance(x, xr.DataArray):
            vals = x.copy(data=vals)
        elif bridge.is_pandas(x):
            vals = bridge.as_pandas(vals, x, False)
        return vals, 0, False, alphabet
    dbins, dbinning = _DEFAULT_BINS[which]
    bins = dbins if bins is None else _validate.integer("bins", bins, 1, _STATE_LIMIT)
    binning = dbinning if binning is None else _validate.choice(
        "binning", binning, ("width", "quantile"))
    return x, bins, binning == "quantile", bins


def _states(what, cells, formula, hint):
    """Refuse a count table of more than ``_STATE_LIMIT`` cells before it is allocated."""
    if cells > _STATE_LIMIT:
        n = f"{cells:,}" if cells < 2 ** 64 else "more than 2**64"
        raise ValueError(f"{what}: {formula} = {n} states exceed the 2**24 "
                         f"(16,777,216) state limit of the count table; {hint}")


@fill(_DOC)
def shannon_entropy(x, bins=None, binning=None) -> float:
    """Shannon entropy -Σ p·log2 p (bits) of x's symbols (module docstring: binning).

    Integer (or bool) input is taken as symbols, float input is binned. NaN at the ends is
    dropped; interior NaN or any ±inf raises (no bin holds them).

    {{series_params}}
    {{shannon_params}}

    {{bits_out}}
    >>> round(ql.measures.shannon_entropy([0, 1, 0, 1, 1, 2]), 4)
    1.4591
    >>> round(ql.measures.shannon_entropy(x), 4)
    2.5972
    """
    v, b, q, base = _symbols(x, "shannon", bins, binning)
    return _one(lambda u, w: _k.roll_shannon(u, w, b, q, base), _series(v))


@fill(_DOC)
def rolling_shannon_entropy(x, window, dim="time", bins=None, binning=None):
    """:func:`shannon_entropy` over every window (floats binned within each window).

    NaN for windows holding a NaN or ±inf.

    {{window_params}}
    {{shannon_params}}

    {{window_out}}
    >>> ql.measures.rolling_shannon_entropy(r, 100).isel(time=-1).round(3).values
    array([2.955,   nan, 2.776, 2.755])
    """
    v, b, q, base = _symbols(x, "shannon", bins, binning)
    return _rolling(lambda u, w: _k.roll_shannon(u, w, b, q, base), v, window, dim)


def _labels(v):
    """The time labels of a pandas Series or a 1-D DataArray with an index, else None."""
    if isinstance(v, (pd.Series, pd.DataFrame)):
        return v.index
    if isinstance(v, xr.DataArray) and v.ndim == 1 and v.dims[0] in v.indexes:
        return v.indexes[v.dims[0]]
    return None


def _pair(x, y, nx="x", ny="y"):
    """Two aligned 1-D series, NaN edges of either dropped from both. Labelled series
    (pandas, DataArray) must share their labels: they were paired by position, so a
    series one day later gave the mutual information of other days (0.007 for 1.27)."""
    lx, ly = _labels(x), _labels(y)
    if lx is not None and ly is not None and not lx.equals(ly):
        raise ValueError(f"{ny} is on other dates than {nx} (labelled series are paired "
                         f"by date): align them first, e.g. {nx}, {ny} = "
                         f"{nx}.align({ny}, join='inner')")
    a = _array(x, nx).astype(np.float64, copy=False)
    b = _array(y, ny).astype(np.float64, copy=False)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"{nx} and {ny} must be 1-D of the same length, got shapes "
                         f"{a.shape} and {b.shape}")
    ok = np.flatnonzero(~np.isnan(a + b))
    if ok.size == 0:
        raise ValueError(f"{nx} and {ny} have no common non-NaN values"
                         if a.size else f"{nx} and {ny} are empty")
    sl = slice(ok[0], ok[-1] + 1)
    return _series(a[sl], nx), _series(b[sl], ny)


def _symbols2(x, y, which, bins, binning, nx="x", ny="y"):
    u, bx, q, ax = _symbols(x, which, bins, binning, nx)
    v, by, _, ay = _symbols(y, which, bins, binning, ny)
    if (bx == 0) != (by == 0):
        raise ValueError(f"pass {nx} and {ny} both as integer symbols or both as floats")
    return u, v, bx, q, ax, ay


def _mi_states(ax, ay):
    _states("mutual_information", ax * ay, f"x symbols * y symbols = {ax} * {ay}",
            "lower bins (integer symbols: bin them, e.g. pass floats with bins=)")


@fill(_DOC)
def mutual_information(x, y, bins=None, binning=None) -> float:
    """Mutual information I(X; Y) = H(X) + H(Y) - H(X, Y) in bits (PyInform's ``mutual_info`` on symbols).

    Parameters
    ----------
    x, y : array-like, pandas.Series or 1-D xarray.DataArray
        Two aligned series of the same length; NaN edges of either are dropped from both.
    {{mi_params}}

    {{bits_out}}
    >>> y = np.roll(x, 1)  # y_t = x_{t-1}
    >>> round(ql.measures.mutual_information(x, x), 4)  # log2(3) with 3 bins
    1.585
    >>> round(ql.measures.mutual_information(x, y), 2)  # unrelated at the same time
    0.0
    """
    u, v, b, q, ax, ay = _symbols2(x, y, "mutual", bins, binning)
    _mi_states(ax, ay)
    u, v = _pair(u, v)
    return float(_k.roll_mutual(u[None], v[None], u.size, b, q, ax, ay)[0, -1])


@fill(_DOC)
def rolling_mutual_information(x, y, window, dim="time", bins=None, binning=None):
    """:func:`mutual_information` between x and y (broadcast together) over every window.

    {{xy_window}}
    {{mi_params}}

    {{window_out}}
    >>> ql.measures.rolling_mutual_information(r, r.sel(asset="IBM"), 100).isel(time=-1).round(3).values
    array([0.141,   nan, 1.585, 0.152])
    """
    u, v, b, q, ax, ay = _symbols2(x, y, "mutual", bins, binning)
    _mi_states(ax, ay)
    return _rolling(lambda s, t, w: _k.roll_mutual(s, t, w, b, q, ax, ay), u, window, dim, v,
                    names=("x", "y"))   # not "input 2" in an error


def _te_states(k, a_s, a_t):
    """k checked, and the (history, source, next) table: a_t**k * a_s * a_t cells."""
    k = _validate.integer("k", k, 1)
    # a_t**k by logs first: k = 10**9 must not build a billion-digit integer
    if a_t > 1 and k * math.log2(a_t) > 64:
        cells = math.inf
    else:
        cells = a_t ** k * a_s * a_t
    _states("transfer_entropy", cells,
            f"target symbols**k * source symbols * target symbols = {a_t}**{k} * {a_s} * {a_t}",
            "lower k or bins")
    return k


@fill(_DOC)
def transfer_entropy(source, target, k=1, bins=None, binning=None) -> float:
    """Transfer entropy source -> target in bits (Schreiber 2000), target history ``k``.

        TE = Σ p(x_{t+1}, x_t^(k), y_t) · log2 [p(x_{t+1} | x_t^(k), y_t) / p(x_{t+1} | x_t^(k))]

    x the target, y the source: how much the source's last value tells about the
    target's next beyond the target's own past. PyInform's estimator (plug-in
    probabilities over the ``len - k`` transitions). Compare both directions to find the
    leader; plug-in estimates are biased upwards on short series, so compare against a
    shuffled source as a baseline. The count table (``bins**k * bins**2`` states) is
    limited to 2**24 states.

    Parameters
    ----------
    source, target : array-like, pandas.Series or 1-D xarray.DataArray
        Two aligned series of the same length; NaN edges of either are dropped from both.
    {{te_params}}

    {{returns_bits}}

    Raises
    ------
    ValueError
        If a series has NaN inside, ``k`` or ``bins`` is out of range, or the count table
        would exceed 2**24 states.

    {{series_examples}}
    >>> y = np.roll(x, 1)  # y_t = x_{t-1}
    >>> round(ql.measures.transfer_entropy(x, y), 2)  # x leads y
    1.58
    >>> round(ql.measures.transfer_entropy(y, x), 2)
    0.02
    """
    u, v, b, q, a_s, a_t = _symbols2(source, target, "transfer", bins, binning, "source",
                                     "target")
    k = _te_states(k, a_s, a_t)
    u, v = _pair(u, v, "source", "target")
    if u.size <= k:
        raise ValueError(f"transfer_entropy needs more than k = {k} points, got {u.size}")
    return float(_k.roll_transfer(u[None], v[None], u.size, k, b, q, a_s, a_t)[0, -1])


@fill(_DOC)
def rolling_transfer_entropy(source, target, window, dim="time", k=1, bins=None,
                             binning=None):
    """:func:`transfer_entropy` source -> target over every window.

    Broadcast together, e.g. every asset's returns against one market index.

    {{st_window}}
    {{te_params}}

    {{window_out}}
    >>> ql.measures.rolling_transfer_entropy(r, r.sel(asset="IBM"), 100).isel(time=-1).round(3).values
    array([0.118,   nan, 0.   , 0.087])
    """
    u, v, b, q, a_s, a_t = _symbols2(source, target, "transfer", bins, binning, "source",
                                     "target")
    k = _te_states(k, a_s, a_t)
    _window(window, k + 1)   # longer than the history k
    return _rolling(lambda s, t, w: _k.roll_transfer(s, t, w, k, b, q, a_s, a_t),
                    u, window, dim, v, names=("source", "target"))
