"""Complexity and information measures: fractal, chaos, entropy, transfer entropy.

One-shot measures take a 1-D series (NumPy, list, pandas Series or 1-D DataArray) and
return a float; NaN at the start or end (a first return, an unlisted stretch) is dropped,
a NaN inside raises. ``rolling_<name>(x, window, dim="time", ...)`` computes the same
measure over every window of every series of a DataArray (any other dims), Dataset or
NumPy array (time on axis 0): the value at t uses the ``window`` observations ending at
t, NaN before the first full window and for windows holding a NaN. Results are float64.
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
rank (``binning="quantile"``, ties in time order). Defaults for floats: Shannon entropy
10 equal-width bins; mutual information and transfer entropy 3 equal-count bins (few
symbols, as finance series are short: Marschinski & Kantz 2002).
"""
from __future__ import annotations

import math
from functools import lru_cache, partial

import numpy as np
import xarray as xr

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


# ---- input handling ---------------------------------------------------------------

def _series(x, name="x") -> np.ndarray:
    """1-D float64 values with leading/trailing NaN dropped; interior NaN is an error."""
    a = np.asarray(getattr(x, "values", x))
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}; for a panel use the "
                         "rolling_<name>(x, window) form")
    a = a.astype(np.float64, copy=False)
    # a·a is NaN exactly when a holds a NaN (squares are >= 0 or inf): a third of the
    # time of isnan().any() on a one-shot call's ~2,500 points
    if a.size and math.isnan(a @ a):
        bad = np.isnan(a)
        ok = np.flatnonzero(~bad)
        if ok.size == 0:
            raise ValueError(f"{name} is all NaN")
        a = a[ok[0]:ok[-1] + 1]
        if np.isnan(a).any():
            raise ValueError(f"{name} has {int(np.isnan(a).sum())} NaN inside the series "
                             f"(first at position {ok[0] + int(np.flatnonzero(np.isnan(a))[0])})"
                             "; drop or fill them first")
    return np.ascontiguousarray(a)


def _int(v, name, lo):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(v)


def _one(kernel, a, *args):
    """A one-shot measure is the rolling kernel with one window: the whole series."""
    return float(kernel(a[None, :], a.size, *args)[0, -1])


def _rolling(kernel, x, window, dim, *others):
    """Apply a (series, time) kernel along ``dim`` of x (and the aligned ``others``)."""
    window = _int(window, "window", 1)
    inputs = [x, *others]
    if isinstance(x, xr.Dataset):
        if others:
            raise TypeError("pass DataArrays (not a Dataset) to the two-series measures")
        return x.map(lambda v: _rolling(kernel, v, window, dim) if dim in v.dims else v,
                     keep_attrs=True)
    if not isinstance(x, xr.DataArray):
        if dim != "time":
            raise ValueError(f"dim={dim!r}: NumPy input has no named dims; time is axis 0")
        arrays = [np.moveaxis(np.asarray(v, dtype=np.float64), 0, -1) for v in inputs]
        arrays = np.broadcast_arrays(*arrays)
        out = _panel(kernel, window, *arrays)
        return np.moveaxis(out, -1, 0)
    if dim not in x.dims:
        raise ValueError(f"dim={dim!r} is not a dimension of the input {x.dims}")
    inputs = [v.astype(np.float64) if v.dtype != np.float64 else v for v in inputs]
    if others:
        inputs = list(xr.broadcast(*inputs))
    inputs = [v.chunk({dim: -1}) if v.chunks is not None else v for v in inputs]
    out = xr.apply_ufunc(partial(_panel, kernel, window), *inputs,
                         input_core_dims=[[dim]] * len(inputs), output_core_dims=[[dim]],
                         dask="parallelized", output_dtypes=[np.float64], keep_attrs=True)
    return out.transpose(*inputs[0].dims)


def _panel(kernel, window, *arrays):
    """(..., time) arrays -> kernel on (series, time) C-contiguous float64 -> (..., time)."""
    shape = arrays[0].shape
    flat = [np.ascontiguousarray(a.reshape(-1, shape[-1]), dtype=np.float64)
            for a in arrays]
    return kernel(*flat, window).reshape(shape)


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


@lru_cache(maxsize=64)
def _hurst_args(n, nvals, corrected):
    """(block sizes, log expected R/S) for a series of n; nvals a tuple or None."""
    if nvals is None:   # nolds' logmid_n: 15 log-spaced sizes over the middle quarter
        lg = np.log(n)
        nvals = np.unique(np.round(np.exp(lg * 0.375 + np.arange(15) / 15 * lg * 0.25))
                          .astype(np.intp))
    nvals = np.asarray(nvals, dtype=np.intp)
    if nvals.size < 2 or nvals.min() < 2 or nvals.max() > n:
        raise ValueError(f"hurst needs at least two block sizes in [2, {n}], got "
                         f"{nvals.tolist()}; use a longer series or window")
    logexp = (np.log([_expected_rs(int(v)) for v in nvals]) if corrected
              else np.zeros(nvals.size))
    return nvals, logexp


@lru_cache(maxsize=64)
def _hurst_plan(n, nvals, corrected):
    return _k.HurstPlan(n, *_hurst_args(n, nvals, corrected))


def _nvals_key(nvals):
    """Block sizes as a hashable tuple (``_hurst_args`` is cached), or None."""
    return None if nvals is None else tuple(int(v) for v in np.ravel(nvals))


def _hurst_kernel(corrected, unbiased, nvals):
    nvals = _nvals_key(nvals)

    def run(x, window):
        nv, le = _hurst_args(window, nvals, corrected)
        out = _k.roll_hurst(x, window, nv, le, unbiased)
        return out + 0.5 if corrected else out
    return run


def hurst(x, nvals=None, corrected=True, unbiased=True) -> float:
    """Hurst exponent by rescaled range (Hurst 1951; nolds ``hurst_rs``, ``fit="poly"``).

    ``x`` holds increments (returns), not prices. For each block size n, (R/S)_n is the
    mean over the ``len(x) // n`` blocks of range(cumsum(block - mean)) / std(block,
    ddof=1 if ``unbiased``); H is the least-squares slope of log (R/S)_n on log n.
    ``corrected`` subtracts the Anis-Lloyd-Peters expectation of white noise and adds 0.5,
    so white noise scores 0.5 without small-sample bias; H > 0.5 trends, < 0.5 reverts.
    ``nvals`` default: 15 log-spaced sizes over the middle quarter of log(len(x)) (nolds).
    """
    a = _series(x)
    return _hurst_plan(a.size, _nvals_key(nvals), corrected)(a, unbiased) + (
        0.5 if corrected else 0.0)


def rolling_hurst(x, window, dim="time", nvals=None, corrected=True, unbiased=True):
    """:func:`hurst` over every window of length ``window``."""
    _hurst_args(_int(window, "window", 1), _nvals_key(nvals), corrected)   # fail early
    return _rolling(_hurst_kernel(corrected, unbiased, nvals), x, window, dim)


# ---- DFA --------------------------------------------------------------------------

def _dfa_nvals(n, nvals):
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
    nvals = np.asarray(nvals, dtype=np.intp)
    if nvals.size < 2 or nvals.min() < 2 or nvals.max() >= n:
        raise ValueError(f"dfa needs at least two box sizes in [2, {n}), got "
                         f"{nvals.tolist()}; use a longer series or window (> 10)")
    return nvals


def dfa(x, nvals=None, overlap=False) -> float:
    """Detrended fluctuation analysis exponent alpha (Peng et al. 1994), linear detrending.

    Profile y = cumsum(x - mean x); F(n)² = mean over boxes of n points of the residual
    variance of a least-squares line; alpha = slope of log F(n) on log n. White noise
    gives 0.5, a random walk 1.5. Boxes do not overlap (antropy
    ``detrended_fluctuation``, nolds ``overlap=False``) unless ``overlap=True`` (nolds'
    default, half-overlapping). ``nvals`` default 4, 4·1.2, ... ≤ len(x)/10 (nolds).
    """
    a = _series(x)
    return _one(_k.roll_dfa, a, _dfa_nvals(a.size, nvals), bool(overlap))


def rolling_dfa(x, window, dim="time", nvals=None, overlap=False):
    """:func:`dfa` over every window of length ``window``."""
    nv = _dfa_nvals(_int(window, "window", 1), nvals)
    return _rolling(lambda v, w: _k.roll_dfa(v, w, nv, bool(overlap)), x, window, dim)


# ---- fractal dimensions -----------------------------------------------------------

def _kmax(n, kmax):
    kmax = _int(kmax, "kmax", 2)
    if n < 2 * kmax:
        raise ValueError(f"higuchi_fd needs at least 2*kmax = {2 * kmax} points, got {n}")
    return kmax


def higuchi_fd(x, kmax=10) -> float:
    """Higuchi (1988) fractal dimension: slope of log L(k) on log(1/k), k = 1..kmax, with
    L(k) = mean over m < k of (N-1)/(k²·N_m) Σ_j |x[m+jk] - x[m+(j-1)k]|, N_m = ⌊(N-m-1)/k⌋.
    About 2 for white noise, 1.5 for a random walk, 1 for a straight line (antropy)."""
    a = _series(x)
    return _k.higuchi(a, _kmax(a.size, kmax))


def rolling_higuchi_fd(x, window, dim="time", kmax=10):
    """:func:`higuchi_fd` over every window of length ``window``."""
    k = _kmax(_int(window, "window", 1), kmax)
    return _rolling(lambda v, w: _k.roll_higuchi(v, w, k), x, window, dim)


def katz_fd(x) -> float:
    """Katz (1988) fractal dimension log10(L/a) / log10(d/a): L the curve length Σ|Δx|,
    a the mean step, d the largest distance from the first point (antropy ``katz_fd``)."""
    a = _series(x)
    if a.size < 2:
        raise ValueError("katz_fd needs at least 2 points")
    return _one(_k.roll_katz, a)


def rolling_katz_fd(x, window, dim="time"):
    """:func:`katz_fd` over every window of length ``window``."""
    if _int(window, "window", 1) < 2:
        raise ValueError("katz_fd needs window >= 2")
    return _rolling(_k.roll_katz, x, window, dim)


# ---- largest Lyapunov exponent ----------------------------------------------------

def _lyap_args(n, emb_dim, lag, min_tsep, trajectory_len):
    emb_dim, lag = _int(emb_dim, "emb_dim", 1), _int(lag, "lag", 1)
    min_tsep = _int(min_tsep, "min_tsep", 0)
    trajectory_len = _int(trajectory_len, "trajectory_len", 2)
    need = (emb_dim - 1) * lag + trajectory_len - 1 + 2 * min_tsep + 2
    if n < need:
        raise ValueError(f"lyapunov_r with emb_dim={emb_dim}, lag={lag}, min_tsep={min_tsep},"
                         f" trajectory_len={trajectory_len} needs at least {need} points, "
                         f"got {n}")
    return emb_dim, lag, min_tsep, trajectory_len


def lyapunov_r(x, emb_dim=10, lag=1, min_tsep=10, trajectory_len=20, tau=1.0) -> float:
    """Largest Lyapunov exponent by Rosenstein, Collins & De Luca (1993), nolds ``lyap_r``
    with ``fit="poly"``.

    Delay-embed x (``emb_dim`` coordinates ``lag`` apart), pair each orbit vector with its
    nearest neighbour (Euclidean) at least ``min_tsep`` steps away in time, follow both
    ``trajectory_len`` steps and fit the slope of the mean log distance on the step:
    the exponent per ``tau`` time units. > 0 means nearby states diverge (chaos; 1/λ is
    the predictability horizon), ≤ 0 a stable or periodic regime. The logistic map at
    r = 4 gives ln 2. Unlike nolds, ``lag`` and ``min_tsep`` have fixed defaults rather
    than being estimated from the spectrum, so rolling windows stay comparable.
    """
    a = _series(x)
    args = _lyap_args(a.size, emb_dim, lag, min_tsep, trajectory_len)
    return _one(_k.roll_lyap, a, *args) / tau


def rolling_lyapunov_r(x, window, dim="time", emb_dim=10, lag=1, min_tsep=10,
                       trajectory_len=20, tau=1.0):
    """:func:`lyapunov_r` over every window of length ``window``."""
    args = _lyap_args(_int(window, "window", 1), emb_dim, lag, min_tsep, trajectory_len)
    out = _rolling(lambda v, w: _k.roll_lyap(v, w, *args), x, window, dim)
    return out / tau if tau != 1.0 else out


# ---- entropies --------------------------------------------------------------------

def _sampen_args(order, tolerance):
    order = _int(order, "order", 1)
    if tolerance is None:
        return order, -1.0
    if not np.isscalar(tolerance) or not tolerance >= 0:
        raise ValueError(f"tolerance must be a non-negative number, got {tolerance!r}")
    return order, float(tolerance)


def sample_entropy(x, order=2, tolerance=None) -> float:
    """Sample entropy (Richman & Moorman 2000) in nats: -ln(A/B), B the pairs of
    ``order``-point templates within Chebyshev distance < r, A those still within r at
    ``order + 1`` points. r = ``tolerance``, default 0.2·std(x) (ddof=0), as antropy.
    inf when no pair extends, NaN when no pair matches."""
    a = _series(x)
    order, r = _sampen_args(order, tolerance)
    if a.size <= order + 1:
        raise ValueError(f"sample_entropy needs more than order + 1 = {order + 1} points")
    return _one(_k.roll_sampen, a, order, r)


def rolling_sample_entropy(x, window, dim="time", order=2, tolerance=None):
    """:func:`sample_entropy` over every window; r is 0.2·std of each window by default."""
    order, r = _sampen_args(order, tolerance)
    return _rolling(lambda v, w: _k.roll_sampen(v, w, order, r), x, window, dim)


def _perm_args(n, order, delay):
    order, delay = _int(order, "order", 2), _int(delay, "delay", 1)
    if order > 10:
        raise ValueError("order must be <= 10 (10! patterns)")
    if n - (order - 1) * delay < 1:
        raise ValueError(f"series of {n} points is too short for order={order}, "
                         f"delay={delay}")
    return order, delay


def permutation_entropy(x, order=3, delay=1, normalize=False) -> float:
    """Permutation entropy (Bandt & Pompe 2002) in bits: -Σ p·log2 p over the ordinal
    patterns of ``order`` points ``delay`` apart (ties in time order, as antropy);
    divided by log2(order!) when ``normalize``. Low entropy = structure."""
    a = _series(x)
    order, delay = _perm_args(a.size, order, delay)
    return _one(_k.roll_permen, a, order, delay, bool(normalize))


def rolling_permutation_entropy(x, window, dim="time", order=3, delay=1, normalize=False):
    """:func:`permutation_entropy` over every window, in O(1) per step."""
    order, delay = _perm_args(_int(window, "window", 1), order, delay)
    return _rolling(lambda v, w: _k.roll_permen(v, w, order, delay, bool(normalize)),
                    x, window, dim)


def _symbols(x, which, bins, binning, name="x"):
    """(float64 values for the kernel, kernel bins (0 = symbols), quantile?, alphabet)."""
    dtype = getattr(x, "dtype", None)   # None: a Dataset, whose variables are floats
    if dtype is None and not isinstance(x, xr.Dataset):
        x = np.asarray(x)
        dtype = x.dtype
    if dtype is not None and dtype.kind in "biu":
        if bins is not None:
            raise ValueError(f"{name} holds integer symbols; bins= applies to floats only")
        lo, hi = (int(x.min()), int(x.max())) if x.size else (0, 0)
        if lo < 0:
            raise ValueError(f"{name}: integer symbols must be >= 0, got {lo}")
        return 0, False, hi + 1
    if dtype is not None and dtype.kind != "f":
        raise ValueError(f"{name} must be numeric, got dtype {dtype}")
    dbins, dbinning = _DEFAULT_BINS[which]
    bins = dbins if bins is None else _int(bins, "bins", 1)
    binning = dbinning if binning is None else binning
    if binning not in ("width", "quantile"):
        raise ValueError(f"binning must be 'width' or 'quantile', got {binning!r}")
    return bins, binning == "quantile", bins


def shannon_entropy(x, bins=None, binning=None) -> float:
    """Shannon entropy -Σ p·log2 p (bits) of x's symbols (module docstring: binning)."""
    b, q, base = _symbols(x, "shannon", bins, binning)
    return _one(lambda v, w: _k.roll_shannon(v, w, b, q, base), _series(x))


def rolling_shannon_entropy(x, window, dim="time", bins=None, binning=None):
    """:func:`shannon_entropy` over every window (floats binned within each window)."""
    b, q, base = _symbols(x, "shannon", bins, binning)
    return _rolling(lambda v, w: _k.roll_shannon(v, w, b, q, base), x, window, dim)


def _pair(x, y, nx="x", ny="y"):
    """Two aligned 1-D series, NaN edges of either dropped from both."""
    a = np.asarray(getattr(x, "values", x), dtype=np.float64)
    b = np.asarray(getattr(y, "values", y), dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"{nx} and {ny} must be 1-D of the same length, got shapes "
                         f"{a.shape} and {b.shape}")
    ok = np.flatnonzero(~np.isnan(a + b))
    if ok.size == 0:
        raise ValueError(f"{nx} and {ny} have no common non-NaN values")
    sl = slice(ok[0], ok[-1] + 1)
    return _series(a[sl], nx), _series(b[sl], ny)


def _symbols2(x, y, which, bins, binning, nx="x", ny="y"):
    bx, q, ax = _symbols(x, which, bins, binning, nx)
    by, _, ay = _symbols(y, which, bins, binning, ny)
    if bx != by:
        raise ValueError(f"pass {nx} and {ny} both as integer symbols or both as floats")
    return bx, q, ax, ay


def mutual_information(x, y, bins=None, binning=None) -> float:
    """Mutual information I(X; Y) = H(X) + H(Y) - H(X, Y) in bits (PyInform's
    ``mutual_info`` on symbols)."""
    b, q, ax, ay = _symbols2(x, y, "mutual", bins, binning)
    u, v = _pair(x, y)
    return float(_k.roll_mutual(u[None], v[None], u.size, b, q, ax, ay)[0, -1])


def rolling_mutual_information(x, y, window, dim="time", bins=None, binning=None):
    """:func:`mutual_information` between x and y (broadcast together) over every
    window."""
    b, q, ax, ay = _symbols2(x, y, "mutual", bins, binning)
    return _rolling(lambda u, v, w: _k.roll_mutual(u, v, w, b, q, ax, ay), x, window, dim, y)


def transfer_entropy(source, target, k=1, bins=None, binning=None) -> float:
    """Transfer entropy source -> target in bits (Schreiber 2000), target history ``k``:

        TE = Σ p(x_{t+1}, x_t^(k), y_t) · log2 [p(x_{t+1} | x_t^(k), y_t) / p(x_{t+1} | x_t^(k))]

    x the target, y the source: how much the source's last value tells about the
    target's next beyond the target's own past. PyInform's estimator (plug-in
    probabilities over the ``len - k`` transitions). Compare both directions to find the
    leader; plug-in estimates are biased upwards on short series, so compare against a
    shuffled source as a baseline."""
    k = _int(k, "k", 1)
    b, q, a_s, a_t = _symbols2(source, target, "transfer", bins, binning, "source", "target")
    u, v = _pair(source, target, "source", "target")
    if u.size <= k:
        raise ValueError(f"transfer_entropy needs more than k = {k} points")
    return float(_k.roll_transfer(u[None], v[None], u.size, k, b, q, a_s, a_t)[0, -1])


def rolling_transfer_entropy(source, target, window, dim="time", k=1, bins=None,
                             binning=None):
    """:func:`transfer_entropy` source -> target over every window (broadcast together,
    e.g. every asset's returns against one market index)."""
    k = _int(k, "k", 1)
    b, q, a_s, a_t = _symbols2(source, target, "transfer", bins, binning, "source", "target")
    if _int(window, "window", 1) <= k:
        raise ValueError(f"window must be longer than k = {k}")
    return _rolling(lambda u, v, w: _k.roll_transfer(u, v, w, k, b, q, a_s, a_t),
                    source, window, dim, target)
