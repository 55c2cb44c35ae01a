# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Data kernels: simple returns and the bar-validation scan over a (time, asset) panel.

Loops only; labels, NaN policy and error messages live in ``quantlab/data.py``.
"""
import numpy as np

from libc.float cimport DBL_MIN
from libc.math cimport INFINITY, isinf, isnan

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
    volume >= 0, prices >= DBL_MIN (> 0 and not subnormal), low <= high, low <= close
    <= high, low <= open <= high."""
    cdef Py_ssize_t v
    cdef double lo, hi
    if has[VOLUME] and _at(ptr, st, sa, VOLUME, t, a) < 0:
        bad_v[0] = VOLUME
        return NEGATIVE_VOLUME
    for v in range(VOLUME):
        if has[v] and _at(ptr, st, sa, v, t, a) < DBL_MIN:
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


# Fast path (issue #32): one pass in memory order proves a valid panel; anything
# suspicious sends the panel to the exact scan below, so every error (code, variable,
# time, asset) is the exact scan's. An absent variable reads a present proxy (close if
# given), so one chain of comparisons checks every bar: it passes only for a complete,
# finite bar with DBL_MIN <= low <= open, close <= high and volume >= 0, which the exact scan
# finds valid too. The other bars must be empty (all NaN); then each asset either has
# every given variable (some complete bar) or none, which is ``has``. Anything else
# (e.g. a close-only asset in an OHLCV set) goes to the exact scan. A single-variable set
# (close only) has its own shorter loop. gcc does not vectorise these loops here (no
# -march for this kernel), so the chains branch (well predicted on valid data).

cdef int _quick_line(const double** q, const Py_ssize_t* d, Py_ssize_t k,
                     char* full, Py_ssize_t df) noexcept nogil:
    """Check k bars along one line (variable v of bar j at q[v][j * d[v]]); full[j * df]
    = 1 for a complete bar. Returns 1 at the first bar neither complete-valid nor empty."""
    cdef Py_ssize_t j
    cdef double o, h, lo, c, vol
    for j in range(k):
        o = q[OPEN][j * d[OPEN]]
        h = q[HIGH][j * d[HIGH]]
        lo = q[LOW][j * d[LOW]]
        c = q[CLOSE][j * d[CLOSE]]
        vol = q[VOLUME][j * d[VOLUME]]
        if (lo >= DBL_MIN and h < INFINITY and lo <= o and o <= h and lo <= c and c <= h
                and vol >= 0 and vol < INFINITY):
            full[j * df] = 1
        elif not (isnan(o) and isnan(h) and isnan(lo) and isnan(c) and isnan(vol)):
            return 1
    return 0


cdef int _quick_line1(const double* q, Py_ssize_t d, Py_ssize_t k, char* full,
                      Py_ssize_t df, bint volume) noexcept nogil:
    """_quick_line for a single variable (e.g. a close-only set): DBL_MIN <= x < inf (volume:
    0 <= x < inf) or NaN; a third of the work of the five-variable chain."""
    cdef Py_ssize_t j
    cdef double x
    for j in range(k):
        x = q[j * d]
        if (x >= DBL_MIN or (volume and x >= 0)) and x < INFINITY:
            full[j * df] = 1
        elif not isnan(x):
            return 1
    return 0


cdef bint _quick_valid(const double** ptr, const Py_ssize_t* st, const Py_ssize_t* sa,
                       char* full, Py_ssize_t n, Py_ssize_t m, bint time_inner,
                       Py_ssize_t single) noexcept nogil:
    """True only if the panel is valid (absent variables already proxied); then full[a]
    = 1 for the assets with data. Rows (columns if time_inner) in memory order.
    single: the only variable given, or -1."""
    cdef Py_ssize_t i, v
    cdef const double* q[NROLES]
    for i in range(m if time_inner else n):
        for v in range(NROLES):
            q[v] = ptr[v] + i * (sa[v] if time_inner else st[v])
        if single >= 0:
            if (_quick_line1(q[single], st[single], n, &full[i], 0, single == VOLUME)
                    if time_inner else
                    _quick_line1(q[single], sa[single], m, full, 1, single == VOLUME)):
                return False
        elif time_inner:
            if _quick_line(q, st, n, &full[i], 0):
                return False
        elif _quick_line(q, sa, m, full, 1):
            return False
    return True


def _check_bars_full(open_, high, low, close, volume):
    """check_bars without the fast path (the exact scan alone); for tests."""
    return _check_bars(open_, high, low, close, volume, FULL)


def _fast_proves_valid(open_, high, low, close, volume):
    """True if the fast pass alone proves the panels valid (no exact scan); for tests."""
    return _check_bars(open_, high, low, close, volume, PROVE)


def check_bars(open_, high, low, close, volume):
    """Scan the (time, asset) panels of a bar set (None = variable absent; any strides,
    no copies) for the first invalid value.

    A fast pass in memory order proves a valid panel; otherwise the exact scan runs.
    Pass 1 finds which variables each asset has (not all NaN; it stops at the first
    value). Pass 2, in time order: each bar is finite, complete (no NaN) or empty (all
    NaN) over the variables its asset has; prices >= DBL_MIN (2.2e-308, no subnormal),
    volume >= 0, low <= open, close <= high. Returns ``(code, role, t, asset, has)``: ``code == 0`` means valid; role is
    the offending variable's index in (open, high, low, close, volume); has is
    (asset, role) bool.
    """
    return _check_bars(open_, high, low, close, volume, FAST)


cdef enum:
    FULL, FAST, PROVE   # modes of _check_bars


cdef _check_bars(open_, high, low, close, volume, int mode):
    panels = (open_, high, low, close, volume)
    cdef Py_ssize_t n = -1, m = -1, t, a, v, first = -1
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
            n, m, first = mv.shape[0], mv.shape[1], v
        elif (mv.shape[0], mv.shape[1]) != (n, m):
            raise ValueError("check_bars: panels of different shapes")
        views.append(mv)
        if n and m:
            ptr[v] = &mv[0, 0]
        st[v] = mv.strides[0] // sizeof(double)
        sa[v] = mv.strides[1] // sizeof(double)
    if n < 0:   # no variable at all: nothing to check
        if mode == PROVE:
            return True
        return OK, -1, -1, -1, np.zeros((0, NROLES), dtype=np.bool_)
    cdef bint time_inner = abs(st[first]) < abs(sa[first])
    # the proxies of absent variables (see _quick_line); the exact scan reads present ones
    cdef Py_ssize_t proxy = CLOSE if present[CLOSE] else first
    cdef Py_ssize_t single = first if len(views) == 1 else -1
    for v in range(NROLES):
        if not present[v]:
            ptr[v], st[v], sa[v] = ptr[proxy], st[proxy], sa[proxy]
    has_np = np.zeros((m, NROLES), dtype=np.bool_)
    cdef char[:, ::1] has = has_np.view(np.int8)
    full_np = np.zeros(m, dtype=np.int8)
    cdef char[::1] full = full_np
    cdef int code = OK
    cdef Py_ssize_t bad_v = -1, bad_t = -1, bad_a = -1
    cdef bint proved = False
    if mode != FULL and m > 0:
        with nogil:
            proved = _quick_valid(ptr, st, sa, &full[0], n, m, time_inner, single)
    if mode == PROVE:
        return bool(proved)
    with nogil:
        if proved:
            for a in range(m):
                for v in range(NROLES):
                    has[a, v] = full[a] and present[v]
        else:
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
