# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Data kernels: simple returns and the bar-validation scan over a (time, asset) panel.

Loops only; labels, NaN policy and error messages live in ``quantlab/data.py``.
"""
import numpy as np

from libc.math cimport isnan

ctypedef fused real:
    float
    double

# Codes returned by check_bars; quantlab.data turns them into messages.
cdef enum:
    OK = 0
    PARTIAL = 1
    NONPOSITIVE = 2
    HIGH_BELOW_LOW = 3
    CLOSE_OUTSIDE = 4
    OPEN_OUTSIDE = 5
    NEGATIVE_VOLUME = 6

CODE_NAMES = ("ok", "partial", "nonpositive", "high_below_low", "close_outside",
              "open_outside", "negative_volume")


# ---- Simple returns

def simple_returns(const real[:, :] prices):
    """r[t, a] = p[t, a] / p_last[a] - 1, p_last the last valid price before t.

    NaN where p[t, a] is NaN (no bar) or no earlier valid price exists, so a gap
    of missing bars is bridged by the first bar after it (returns compound to the
    total return).
    """
    cdef Py_ssize_t n = prices.shape[0], m = prices.shape[1], t, a
    out_np = np.empty((n, m), dtype=np.float32 if real is float else np.float64)
    cdef real[:, ::1] out = out_np
    last_np = np.full(m, np.nan, dtype=out_np.dtype)
    cdef real[::1] last = last_np
    cdef real p
    with nogil:
        for t in range(n):
            for a in range(m):
                p = prices[t, a]
                if isnan(p):
                    out[t, a] = p
                else:
                    out[t, a] = p / last[a] - 1  # NaN while last is NaN
                    last[a] = p
    return out_np


# ---- Bar validation

def check_bars(const double[:, :, ::1] x, Py_ssize_t i_open, Py_ssize_t i_high,
               Py_ssize_t i_low, Py_ssize_t i_close, Py_ssize_t i_volume):
    """Scan a (variable, time, asset) block for the first invalid bar.

    Index arguments give each role's position in the variable axis, -1 when
    absent. Every variable in the block belongs to the bar: a bar is complete
    (all finite) or empty (all NaN). Returns ``(code, variable, t, asset)`` of the
    first offence in time order; ``code == 0`` means the block is valid.
    """
    cdef Py_ssize_t nv = x.shape[0], n = x.shape[1], m = x.shape[2]
    cdef Py_ssize_t t, a, v, n_nan
    cdef int code = OK
    cdef Py_ssize_t bad_v = -1, bad_t = -1, bad_a = -1
    cdef double lo, hi
    with nogil:
        for t in range(n):
            for a in range(m):
                n_nan = 0
                for v in range(nv):
                    if isnan(x[v, t, a]):
                        n_nan += 1
                        bad_v = v
                if n_nan == nv:
                    continue
                if n_nan > 0:
                    code = PARTIAL
                elif i_volume >= 0 and x[i_volume, t, a] < 0:
                    code = NEGATIVE_VOLUME
                    bad_v = i_volume
                else:
                    for v in range(nv):
                        if v != i_volume and x[v, t, a] <= 0:
                            code = NONPOSITIVE
                            bad_v = v
                            break
                    if code == OK and i_high >= 0 and i_low >= 0:
                        hi = x[i_high, t, a]
                        lo = x[i_low, t, a]
                        if hi < lo:
                            code = HIGH_BELOW_LOW
                            bad_v = i_high
                        elif i_close >= 0 and not (lo <= x[i_close, t, a] <= hi):
                            code = CLOSE_OUTSIDE
                            bad_v = i_close
                        elif i_open >= 0 and not (lo <= x[i_open, t, a] <= hi):
                            code = OPEN_OUTSIDE
                            bad_v = i_open
                if code != OK:
                    bad_t = t
                    bad_a = a
                    break
            if code != OK:
                break
    if code == OK:
        bad_v = -1
    return code, bad_v, bad_t, bad_a
