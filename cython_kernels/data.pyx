# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Data kernels: simple returns and the bar-validation scan over a (time, asset) panel.

Loops only; labels, NaN policy and error messages live in ``quantlab/data.py``.
"""
import numpy as np

from libc.math cimport isinf, isnan

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
    INFINITE = 7

CODE_NAMES = ("ok", "partial", "nonpositive", "high_below_low", "close_outside",
              "open_outside", "negative_volume", "infinite")

# roles of the bar variables (quantlab.data.BAR_VARS order)
cdef enum:
    OPEN, HIGH, LOW, CLOSE, VOLUME, NROLES


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

# The panels are read through raw pointers with per-variable strides (any layout, no
# copies): value of variable v at (t, a) is ptr[v][t * st[v] + a * sa[v]].

cdef inline double _at(const double** ptr, const Py_ssize_t* st, const Py_ssize_t* sa,
                       Py_ssize_t v, Py_ssize_t t, Py_ssize_t a) noexcept nogil:
    return ptr[v][t * st[v] + a * sa[v]]


cdef inline void _find_present(const double** ptr, const Py_ssize_t* st,
                               const Py_ssize_t* sa, const bint* present, char[:, ::1] has,
                               Py_ssize_t n, Py_ssize_t m) noexcept nogil:
    """has[a, v] = 1 where asset a has a value of variable v (stops at the first one)."""
    cdef Py_ssize_t v, a, t
    for v in range(NROLES):
        if not present[v]:
            continue
        for a in range(m):
            for t in range(n):
                if not isnan(_at(ptr, st, sa, v, t, a)):
                    has[a, v] = 1
                    break


cdef inline int _price_code(const double** ptr, const Py_ssize_t* st, const Py_ssize_t* sa,
                            const char* has, Py_ssize_t t, Py_ssize_t a,
                            Py_ssize_t* bad_v) noexcept nogil:
    """The value rules of a complete finite bar (has: the asset's row of ``has``):
    volume >= 0, prices > 0, low <= high, low <= close <= high, low <= open <= high."""
    cdef Py_ssize_t v
    cdef double lo, hi
    if has[VOLUME] and _at(ptr, st, sa, VOLUME, t, a) < 0:
        bad_v[0] = VOLUME
        return NEGATIVE_VOLUME
    for v in range(VOLUME):
        if has[v] and _at(ptr, st, sa, v, t, a) <= 0:
            bad_v[0] = v
            return NONPOSITIVE
    if has[HIGH] and has[LOW]:
        hi = _at(ptr, st, sa, HIGH, t, a)
        lo = _at(ptr, st, sa, LOW, t, a)
        if hi < lo:
            bad_v[0] = HIGH
            return HIGH_BELOW_LOW
        if has[CLOSE] and not (lo <= _at(ptr, st, sa, CLOSE, t, a) <= hi):
            bad_v[0] = CLOSE
            return CLOSE_OUTSIDE
        if has[OPEN] and not (lo <= _at(ptr, st, sa, OPEN, t, a) <= hi):
            bad_v[0] = OPEN
            return OPEN_OUTSIDE
    return OK


cdef inline int _bar_code(const double** ptr, const Py_ssize_t* st, const Py_ssize_t* sa,
                          const char* has, Py_ssize_t t, Py_ssize_t a,
                          Py_ssize_t* bad_v) noexcept nogil:
    """Code of bar (t, a) over the variables its asset has: OK for an empty bar (all
    NaN), INFINITE (first ±inf variable), PARTIAL (last NaN variable), else the value
    rules. The offending variable goes to bad_v."""
    cdef Py_ssize_t v, n_nan = 0, n_has = 0, inf_v = -1
    cdef double x
    for v in range(NROLES):
        if has[v]:
            n_has += 1
            x = _at(ptr, st, sa, v, t, a)
            if isnan(x):
                n_nan += 1
                bad_v[0] = v
            elif isinf(x) and inf_v < 0:
                inf_v = v
    if inf_v >= 0:
        bad_v[0] = inf_v
        return INFINITE
    if n_nan == n_has:
        return OK   # no bar (or no data at all for this asset)
    if n_nan > 0:
        return PARTIAL
    return _price_code(ptr, st, sa, has, t, a, bad_v)


def check_bars(open_, high, low, close, volume):
    """Scan the (time, asset) panels of a bar set (None = variable absent; any strides,
    no copies) for the first invalid value.

    Pass 1 finds which variables each asset has (not all NaN; it stops at the first
    value). Pass 2, in time order: each bar is finite, complete (no NaN) or empty (all
    NaN) over the variables its asset has; prices > 0, volume >= 0, low <= open, close
    <= high. Returns ``(code, role, t, asset, has)``: ``code == 0`` means valid; role is
    the offending variable's index in (open, high, low, close, volume); has is
    (asset, role) bool.
    """
    panels = (open_, high, low, close, volume)
    cdef Py_ssize_t n = -1, m = -1, t, a, v
    cdef const double* ptr[NROLES]
    cdef Py_ssize_t st[NROLES]
    cdef Py_ssize_t sa[NROLES]
    cdef bint present[NROLES]
    cdef const double[:, :] mv
    views = []   # keeps the buffers alive while the raw pointers are read
    for v in range(NROLES):
        present[v] = panels[v] is not None
        ptr[v] = NULL
        st[v] = sa[v] = 0
        if not present[v]:
            continue
        mv = panels[v]
        if n < 0:
            n, m = mv.shape[0], mv.shape[1]
        elif (mv.shape[0], mv.shape[1]) != (n, m):
            raise ValueError("check_bars: panels of different shapes")
        views.append(mv)
        if n and m:
            ptr[v] = &mv[0, 0]
        st[v] = mv.strides[0] // sizeof(double)
        sa[v] = mv.strides[1] // sizeof(double)
    has_np = np.zeros((max(m, 0), NROLES), dtype=np.bool_)
    cdef char[:, ::1] has = has_np.view(np.int8)
    cdef int code = OK
    cdef Py_ssize_t bad_v = -1, bad_t = -1, bad_a = -1
    with nogil:
        _find_present(ptr, st, sa, present, has, n, m)   # 1. the variables each asset has
        for t in range(n):   # 2. the bars, in time order
            for a in range(m):
                code = _bar_code(ptr, st, sa, &has[a, 0], t, a, &bad_v)
                if code != OK:
                    bad_t = t
                    bad_a = a
                    break
            if code != OK:
                break
    if code == OK:
        bad_v = -1
    return code, bad_v, bad_t, bad_a, has_np
