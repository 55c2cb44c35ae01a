# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Rolling-window kernels over a (time, asset) panel whose rows are contiguous.

Rows may be strided (a column chunk of a larger C-ordered array, as dask hands over),
but each row's assets must be adjacent in memory: the hot loops walk row pointers. The
same holds for ``out=`` (a preallocated result, e.g. one column block of a larger one,
which is how quantlab._threads runs blocks side by side without copying them).

Every kernel walks time in the outer loop and assets in the inner loop, so the hot loop
reads and writes contiguous memory, with one small state slot per asset. State is kept
in float64 for float32 input too. Semantics follow pandas' ``rolling`` (fixed window,
NaN and ±inf skipped, ``min_periods`` counts finite observations); ``quantlab/rolling.py``
owns validation and labels, ``tests/reference.py`` holds the plain NumPy twins.
Pattern after pandas/_libs/window/aggregations.pyx: add/remove/calc helpers per statistic.
"""
import numpy as np

from libc.math cimport INFINITY, NAN, fabs, isnan, sqrt
from libc.string cimport memcpy

include "welford.pxi"

ctypedef fused real:
    float
    double


def _out_like(x, out):
    """The kernel's (n, m) output of x's dtype: new, or ``out`` checked. ``out`` may be a
    column block of a larger panel (rows strided, each row's values adjacent), so a
    thread pool writes every block straight into one result (no copy per block)."""
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1]
    dtype = np.asarray(x).dtype
    if m > 1 and x.strides[1] != x.itemsize:
        raise ValueError("rolling kernels need each row's values adjacent (inner stride 1)")
    if out is None:
        return np.empty((n, m), dtype=dtype)
    if (not isinstance(out, np.ndarray) or out.shape != (n, m) or out.dtype != dtype
            or (m > 1 and out.strides[1] != out.itemsize) or not out.flags.writeable):
        raise ValueError(f"out must be a writeable {dtype} array of shape {(n, m)} with "
                         f"each row's values adjacent, got {type(out).__name__} "
                         f"{getattr(out, 'dtype', '')} {getattr(out, 'shape', '')}")
    if np.may_share_memory(out, np.asarray(x)):   # the kernels read rows already passed
        raise ValueError("out must not overlap the input x")
    return out


def _rows(Py_ssize_t start, Py_ssize_t stop, Py_ssize_t n, Py_ssize_t w):
    """The rows [start, stop) a block-decomposed kernel computes (``stop < 0``: to the
    end). ``start`` is a multiple of the block length ``w`` (the window, at most n): the
    blocks then fall where they fall in a whole run, whose bits each row range gets (the
    window ending at t reads the rows of t's block and the one before only)."""
    stop = n if stop < 0 else stop
    if not 0 <= start <= stop <= n or start % w:
        raise ValueError(f"rows [start, stop) = [{start}, {stop}) must lie in [0, {n}] with "
                         f"start a multiple of {w} (the window)")
    return start, stop


# Hot loops are branch-free (selects instead of ifs on NaN) over raw row pointers, so
# gcc vectorises them across assets; counts are doubles and integer arguments are turned
# into doubles before the loop (SSE2 cannot convert int64 -> double in vectors). A
# window longer than the panel sees the same rows as one of the panel's length, so
# kernels that size buffers by the window clamp it to n first.


# ---- Rolling sum / mean / variance: block decomposition, no running removal
# Rows are cut into blocks of `window` (as for min / max below). The window ending at t
# is the tail of the previous block [t - window + 1, b0) plus the head of t's block
# [b0, t]. Tail statistics are accumulated backwards once per block into a buffer of
# `window + 1` rows (row `window`, all zeros, is the empty tail); head statistics are
# accumulated forwards. Nothing is ever subtracted from a running sum, so a value that
# has left the window leaves no residue (a 1e9 outlier, a level shift, an inf), and a
# window lying inside one block is summed from its own values only: window 1 returns x.
# ±inf counts as missing, as in pandas' rolling (which turns inf into NaN first).

cdef inline bint _ok(double v) noexcept nogil:
    """v is finite: NaN and ±inf are missing. `v - v` is 0 for finite v, NaN otherwise."""
    return v - v == 0.0


cdef inline (double, double) _add(double s, double c, double v) noexcept nogil:
    """Neumaier's compensated step (Kahan-Babuska): s + v, its rounding error added to c;
    s + c is the sum. Exact for two terms whatever their order of magnitude. On overflow
    the sum is ±inf (c is reset: inf - inf would turn it into NaN)."""
    cdef double t = s + v
    c += ((s - t) + v) if fabs(s) >= fabs(v) else ((v - t) + s)
    return t, (c if _ok(t) else 0.0)


ctypedef (double, double, double, double, double) TailSum
ctypedef (double, double, double, double, double) HeadSum


# The head loops are specialised at compile time for a sum and a mean (as the variance's
# for its statistics, below): only the mean carries the run of equal values (~15% of
# the sum's time if it ran for both).
cdef struct SumTag:
    char unused
cdef struct MeanTag:
    char unused

ctypedef fused Agg:
    SumTag
    MeanTag


cdef inline TailSum _tail_sum(double v, double s, double c, double nn) noexcept nogil:
    """v joins a tail (compensated sum s + c, count nn): the new state, then the tail's
    sum and count as stored in the tail buffer."""
    s, c = _add(s, c, v if _ok(v) else 0.0)
    nn += 1.0 if _ok(v) else 0.0
    return s, c, nn, s + c, nn


cdef inline HeadSum _head_sum(double v, double vp, double s, double c, double nn,
                              double r, double ts, double tn, bint mean, double dminp,
                              double nmin, double lim, Agg tag) noexcept nogil:
    """v joins the head (s + c, nn); the window is the head plus the tail (ts, tn).
    r: the run of equal finite values ending at v's row (vp: the row before; a mean's
    only). Returns the new head state and the window's sum or mean (NaN below
    min_periods); for a mean, v itself where the run covers the window (r >= lim:
    _lim)."""
    cdef double s2, c2, tot = nn + tn + (1.0 if _ok(v) else 0.0)
    cdef double res
    s, c = _add(s, c, v if _ok(v) else 0.0)
    nn += 1.0 if _ok(v) else 0.0
    s2, c2 = _add(s, c, ts)
    res = (s2 + c2) / (tot if mean else 1.0) if ((tot >= dminp) & (tot > nmin)) else NAN
    if Agg is MeanTag:
        r = ((r + 1.0) if v == vp else 1.0) if _ok(v) else 0.0
        res = v if r >= lim else res
    return s, c, nn, r, res


# ---- The finite path (issue #32)
# Where a block and the one before it hold no NaN or ±inf in a group of columns (the
# usual case after the first block), every window holds `w` values: the sum / variance
# kernels then skip the per-value count, missing-value selects and count buffer (and,
# for the variance, the shift selects: both parts share the shift x[b0], a value of
# every window ending in the block). They do the same operations in the same order as
# the general path on such data, hence the same bits: whichever path a group takes
# (a NaN elsewhere in the panel, another column split, thread or build), its values do
# not change.
# No separate pass looks for NaN first (that pass read every block once more: 6-14% of
# the time): a group whose previous block was finite tries the finite path, and the
# sums it ends with tell whether that held -- a NaN or ±inf anywhere in the tail or the
# head leaves its running sum (of squares) NaN or ±inf for good. A group that fails is
# redone on the general path, which counts the head's finite values: whether the next
# block may try. Finite data whose sums overflow are redone too (same bits either way).

cdef enum:
    _GROUP = 64   # columns per choice of path; blocks of rows are the window


cdef inline Py_ssize_t _run(const unsigned char* path, Py_ssize_t g,
                            Py_ssize_t ng) noexcept nogil:
    """The end of the run of groups from g on the same path."""
    cdef Py_ssize_t h = g + 1
    while h < ng and path[h] == path[g]:
        h += 1
    return h


cdef inline void _held(unsigned char* path, const double* tail, const double* head,
                       Py_ssize_t g, Py_ssize_t h, Py_ssize_t m) noexcept nogil:
    """After the finite path over groups [g, h): path[i] = 0 where the tail's or the
    head's final sum is NaN or ±inf in a column of group i (the path did not hold)."""
    cdef Py_ssize_t a
    cdef double acc
    while g < h:
        acc = 0.0
        for a in range(g * _GROUP, (g + 1) * _GROUP if (g + 1) * _GROUP < m else m):
            acc += (tail[a] - tail[a]) + (head[a] - head[a])   # 0, or NaN
        path[g] = acc == 0.0
        g += 1


cdef inline void _counted(unsigned char* fin, const double* N, double n, Py_ssize_t g,
                          Py_ssize_t h, Py_ssize_t m) noexcept nogil:
    """After the general path over groups [g, h): fin[i] = 1 where every column of
    group i counted n finite values in the head (the next block may try the finite
    path), else 0."""
    cdef Py_ssize_t a
    cdef bint ok
    while g < h:
        ok = True
        for a in range(g * _GROUP, (g + 1) * _GROUP if (g + 1) * _GROUP < m else m):
            ok = ok & (N[a] == n)
        fin[g] = ok
        g += 1


cdef inline void _try(unsigned char* path, const unsigned char* fin, Py_ssize_t ng,
                      bint can) noexcept nogil:
    """path[g] = 1 where group g tries the finite path: ``can`` (a block with a block
    before it, whose full window is not NaN) and its previous block finite (fin[g])."""
    cdef Py_ssize_t g
    for g in range(ng):
        path[g] = fin[g] & can


def _finite_plan(const real[:, :] x, Py_ssize_t window, bint var=True):
    """The path the sum (``var=False``: a mean) or variance kernel takes (1: finite, 0:
    general), by block of ``window`` rows (first axis) and group of _GROUP columns,
    for ``min_periods = window`` (tests and benchmarks: which data the finite path
    covers). The kernel runs on ``x`` to tell."""
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1], w = window if window < n else n
    cdef Py_ssize_t ng = (m + _GROUP - 1) // _GROUP
    plan = np.zeros(((n + w - 1) // w if n else 0, ng), np.uint8)
    if m == 0 or n == 0:
        return plan
    cdef unsigned char[:, ::1] p = plan
    cdef real[:, :] out = np.empty((n, m), np.asarray(x).dtype)
    if var:
        _var_rows(x, out, w, w, 1, 0, 0, n, &p[0, 0])
    else:
        _sum_rows(x, out, w, w, True, 0, n, &p[0, 0])
    return plan


cdef inline void _sum_tails(const real[:, :] x, Py_ssize_t b0, Py_ssize_t w, Py_ssize_t c0,
                            Py_ssize_t m, double* S, double* C, double* N, double[:, ::1] tail_s,
                            double[:, ::1] tail_n) noexcept nogil:
    """Tail sums of the block before b0, walked backwards, in columns [c0, m): row k of
    tail_s, tail_n holds the compensated sum and count of rows [b0 - w + k, b0)."""
    cdef Py_ssize_t k = w - 1, a
    cdef const real* x0
    cdef const real* x1
    cdef const real* x2
    cdef const real* x3
    cdef double s, c, nn
    for a in range(c0, m):
        S[a], C[a], N[a] = 0.0, 0.0, 0.0
    while k >= 0:
        if k >= 3:   # four rows per pass over the state (unroll and jam)
            x0, x1, x2, x3 = (&x[b0 - w + k, 0], &x[b0 - w + k - 1, 0],
                              &x[b0 - w + k - 2, 0], &x[b0 - w + k - 3, 0])
            for a in range(c0, m):
                s, c, nn = S[a], C[a], N[a]
                s, c, nn, tail_s[k, a], tail_n[k, a] = _tail_sum(x0[a], s, c, nn)
                s, c, nn, tail_s[k - 1, a], tail_n[k - 1, a] = _tail_sum(x1[a], s, c, nn)
                s, c, nn, tail_s[k - 2, a], tail_n[k - 2, a] = _tail_sum(x2[a], s, c, nn)
                S[a], C[a], N[a], tail_s[k - 3, a], tail_n[k - 3, a] = _tail_sum(
                        x3[a], s, c, nn)
            k -= 4
        else:
            x0 = &x[b0 - w + k, 0]
            for a in range(c0, m):
                S[a], C[a], N[a], tail_s[k, a], tail_n[k, a] = _tail_sum(
                        x0[a], S[a], C[a], N[a])
            k -= 1


cdef inline double _lim(Py_ssize_t t, Py_ssize_t w, bint mean, double dminp) noexcept nogil:
    """The run of equal values that makes the mean of the window ending at t its value:
    all the window's rows (fewer than w at the start) if they are min_periods; for a sum
    none (inf: pandas' roll_sum has no such rule)."""
    cdef double need = (t + 1) if t + 1 < w else w
    return need if (mean & (need >= dminp)) else INFINITY


cdef inline void _sum_heads(const real[:, :] x, real[:, :] out, Py_ssize_t b0,
                            Py_ssize_t end, Py_ssize_t c0, Py_ssize_t m, double* S, double* C, double* N,
                            double* R, const double* R0, double[:, ::1] tail_s,
                            double[:, ::1] tail_n, Py_ssize_t w, bint mean,
                            double dminp, double nmin, Agg tag) noexcept nogil:
    """Rows b0 <= t < end, columns [c0, m): the head sum grows forwards and
    the window ending at t adds tail row t + 1 - b0 (row w: the empty tail); R: the run
    of equal values, from R0 at b0."""
    cdef Py_ssize_t t = b0, j, a
    cdef const real* xp
    cdef const real* x0
    cdef const real* x1
    cdef const real* x2
    cdef const real* x3
    cdef real* o0
    cdef real* o1
    cdef real* o2
    cdef real* o3
    cdef double s, c, nn, r, l0, l1, l2, l3
    for a in range(c0, m):
        S[a], C[a], N[a], R[a] = 0.0, 0.0, 0.0, R0[a]
    while t < end:
        j = t + 1 - b0
        xp = &x[t - 1, 0] if t > 0 else &x[t, 0]   # row 0 equals itself; R0 is 0 there
        if t + 4 <= end:
            x0, x1, x2, x3 = &x[t, 0], &x[t + 1, 0], &x[t + 2, 0], &x[t + 3, 0]
            o0, o1, o2, o3 = &out[t, 0], &out[t + 1, 0], &out[t + 2, 0], &out[t + 3, 0]
            l0, l1 = _lim(t, w, mean, dminp), _lim(t + 1, w, mean, dminp)
            l2, l3 = _lim(t + 2, w, mean, dminp), _lim(t + 3, w, mean, dminp)
            for a in range(c0, m):
                s, c, nn, r = S[a], C[a], N[a], R[a]
                s, c, nn, r, o0[a] = _head_sum(x0[a], xp[a], s, c, nn, r, tail_s[j, a],
                                               tail_n[j, a], mean, dminp, nmin, l0, tag)
                s, c, nn, r, o1[a] = _head_sum(x1[a], x0[a], s, c, nn, r, tail_s[j + 1, a],
                                               tail_n[j + 1, a], mean, dminp, nmin, l1, tag)
                s, c, nn, r, o2[a] = _head_sum(x2[a], x1[a], s, c, nn, r, tail_s[j + 2, a],
                                               tail_n[j + 2, a], mean, dminp, nmin, l2, tag)
                S[a], C[a], N[a], R[a], o3[a] = _head_sum(
                        x3[a], x2[a], s, c, nn, r, tail_s[j + 3, a], tail_n[j + 3, a], mean,
                        dminp, nmin, l3, tag)
            t += 4
        else:
            x0, o0 = &x[t, 0], &out[t, 0]
            l0 = _lim(t, w, mean, dminp)
            for a in range(c0, m):
                S[a], C[a], N[a], R[a], o0[a] = _head_sum(
                        x0[a], xp[a], S[a], C[a], N[a], R[a], tail_s[j, a], tail_n[j, a],
                        mean, dminp, nmin, l0, tag)
            t += 1


cdef inline void _fin_sum_tails(const real[:, :] x, Py_ssize_t b0, Py_ssize_t w,
                                Py_ssize_t c0, Py_ssize_t c1, double* S, double* C,
                                double[:, ::1] tail_s) noexcept nogil:
    """_sum_tails on finite data (no counts)."""
    cdef Py_ssize_t k = w - 1, a
    cdef const real* x0
    cdef const real* x1
    cdef const real* x2
    cdef const real* x3
    cdef double s, c
    for a in range(c0, c1):
        S[a], C[a] = 0.0, 0.0
    while k >= 0:
        if k >= 3:   # four rows per pass over the state (unroll and jam)
            x0, x1, x2, x3 = (&x[b0 - w + k, 0], &x[b0 - w + k - 1, 0],
                              &x[b0 - w + k - 2, 0], &x[b0 - w + k - 3, 0])
            for a in range(c0, c1):
                s, c = _add(S[a], C[a], x0[a])
                tail_s[k, a] = s + c
                s, c = _add(s, c, x1[a])
                tail_s[k - 1, a] = s + c
                s, c = _add(s, c, x2[a])
                tail_s[k - 2, a] = s + c
                s, c = _add(s, c, x3[a])
                tail_s[k - 3, a] = s + c
                S[a], C[a] = s, c
            k -= 4
        else:
            x0 = &x[b0 - w + k, 0]
            for a in range(c0, c1):
                s, c = _add(S[a], C[a], x0[a])
                tail_s[k, a] = s + c
                S[a], C[a] = s, c
            k -= 1


cdef inline (double, double, double, double) _fin_head_sum(
        double v, double vp, double s, double c, double r, double ts, double div,
        double lim, Agg tag) noexcept nogil:
    """_head_sum on finite data: the new head sum and run, and the window's sum / div."""
    cdef double s2, c2, res
    s, c = _add(s, c, v)
    s2, c2 = _add(s, c, ts)
    res = (s2 + c2) / div
    if Agg is MeanTag:
        r = (r + 1.0) if v == vp else 1.0
        res = v if r >= lim else res
    return s, c, r, res


cdef inline void _fin_sum_heads(const real[:, :] x, real[:, :] out, Py_ssize_t b0,
                                Py_ssize_t end, Py_ssize_t c0, Py_ssize_t c1, double* S,
                                double* C, double* R, const double* R0,
                                double[:, ::1] tail_s, double div, double lim,
                                Agg tag) noexcept nogil:
    """_sum_heads on finite data after the first block: sum / div (1, or w for a mean);
    lim: w for a mean, else inf (_lim)."""
    cdef Py_ssize_t t = b0, j, a
    cdef const real* xp
    cdef const real* x0
    cdef const real* x1
    cdef const real* x2
    cdef const real* x3
    cdef real* o0
    cdef real* o1
    cdef real* o2
    cdef real* o3
    cdef double s, c, r
    for a in range(c0, c1):
        S[a], C[a], R[a] = 0.0, 0.0, R0[a]
    while t < end:
        j = t + 1 - b0
        xp = &x[t - 1, 0]   # b0 > 0
        if t + 4 <= end:   # four rows per pass over the state
            x0, x1, x2, x3 = &x[t, 0], &x[t + 1, 0], &x[t + 2, 0], &x[t + 3, 0]
            o0, o1, o2, o3 = &out[t, 0], &out[t + 1, 0], &out[t + 2, 0], &out[t + 3, 0]
            for a in range(c0, c1):
                s, c, r, o0[a] = _fin_head_sum(x0[a], xp[a], S[a], C[a], R[a], tail_s[j, a],
                                               div, lim, tag)
                s, c, r, o1[a] = _fin_head_sum(x1[a], x0[a], s, c, r, tail_s[j + 1, a], div,
                                               lim, tag)
                s, c, r, o2[a] = _fin_head_sum(x2[a], x1[a], s, c, r, tail_s[j + 2, a], div,
                                               lim, tag)
                S[a], C[a], R[a], o3[a] = _fin_head_sum(x3[a], x2[a], s, c, r,
                                                        tail_s[j + 3, a], div, lim, tag)
            t += 4
        else:
            x0, o0 = &x[t, 0], &out[t, 0]
            for a in range(c0, c1):
                S[a], C[a], R[a], o0[a] = _fin_head_sum(x0[a], xp[a], S[a], C[a], R[a],
                                                        tail_s[j, a], div, lim, tag)
            t += 1


# A window whose values are all one finite value has that value as its mean, exactly
# (pandas counts consecutive equal values, GH 42064): a sum rounded then divided is off
# by 1 ulp for ~15% of 2-decimal prices, so a 5- and a 20-bar average of a halted price
# would differ and cross. The head loops carry each column's run of equal finite values
# (R), from the run ending before the block (R0) whichever path the block takes.

cdef void _equal_run_init(const real[:, :] x, Py_ssize_t t, Py_ssize_t w,
                          double* R) noexcept nogil:
    """R[a]: the length (at most w) of the run of equal finite values ending at row t - 1."""
    cdef Py_ssize_t a, k
    cdef double v
    for a in range(x.shape[1]):
        R[a] = 0.0
        if t > 0 and _ok(x[t - 1, a]):
            v = x[t - 1, a]
            k = t - 1
            while k > 0 and t - k < w and x[k - 1, a] == v:
                k -= 1
            R[a] = t - k


cdef void _sum_rows(const real[:, :] x, real[:, :] res, Py_ssize_t w, Py_ssize_t minp,
                    bint mean, Py_ssize_t start, Py_ssize_t stop, unsigned char* taken):
    """roll_sum's rows [start, stop) (start a multiple of w <= n) into res; ``taken``
    (or NULL): the path each block and group took, (blocks, groups) C order."""
    cdef Py_ssize_t m = x.shape[1], b0 = start, g, h, i, c0, c1, end
    cdef Py_ssize_t ng = (m + _GROUP - 1) // _GROUP
    cdef double dminp = minp
    cdef double nmin = 0.0 if mean else -1.0   # a mean needs one observation
    cdef bint full = (w >= dminp) & (w > nmin)  # a window of w values is not NaN
    cdef double[:, ::1] tail_s = np.zeros((w + 1, m)), tail_n = np.zeros((w + 1, m))
    cdef double[:, ::1] state = np.zeros((5, m))
    cdef unsigned char[:, ::1] flags = np.ones((2, ng), np.uint8)
    cdef double* S = &state[0, 0]       # compensated sum s + c of the current part
    cdef double* C = &state[1, 0]
    cdef double* N = &state[2, 0]       # its count of finite values
    cdef double* R = &state[3, 0]       # the run of equal values ending at the row
    cdef double* R0 = &state[4, 0]      # ... ending before the block
    cdef SumTag sum_tag
    cdef MeanTag mean_tag
    sum_tag.unused = mean_tag.unused = 0   # tags: only their types matter
    cdef unsigned char* fin = &flags[0, 0]   # the previous block is finite (first: unknown)
    cdef unsigned char* path = &flags[1, 0]
    with nogil:
        _equal_run_init(x, start, w, R)
        while b0 < stop:
            end = b0 + w if b0 + w < stop else stop
            memcpy(R0, R, m * sizeof(double))
            _try(path, fin, ng, full & (b0 > 0))
            g = 0
            while g < ng:   # runs of groups trying the finite path
                h = _run(path, g, ng)
                if path[g]:
                    c0, c1 = g * _GROUP, (h * _GROUP if h < ng else m)
                    _fin_sum_tails(x, b0, w, c0, c1, S, C, tail_s)
                    if mean:
                        _fin_sum_heads(x, res, b0, end, c0, c1, S, C, R, R0, tail_s, w,
                                       w, mean_tag)
                    else:
                        _fin_sum_heads(x, res, b0, end, c0, c1, S, C, R, R0, tail_s, 1.0,
                                       INFINITY, sum_tag)
                    _held(path, &tail_s[0, 0], S, g, h, m)
                g = h
            g = 0
            while g < ng:   # the general path: groups not trying, or whose try failed
                h = _run(path, g, ng)
                c0, c1 = g * _GROUP, (h * _GROUP if h < ng else m)
                if path[g]:
                    for i in range(g, h):
                        fin[i] = 1
                else:
                    if b0 > 0:   # the first block's tail rows are all zeros
                        _sum_tails(x, b0, w, c0, c1, S, C, N, tail_s, tail_n)
                    if mean:
                        _sum_heads(x, res, b0, end, c0, c1, S, C, N, R, R0, tail_s, tail_n,
                                   w, mean, dminp, nmin, mean_tag)
                    else:
                        _sum_heads(x, res, b0, end, c0, c1, S, C, N, R, R0, tail_s, tail_n,
                                   w, mean, dminp, nmin, sum_tag)
                    _counted(fin, N, end - b0, g, h, m)
                g = h
            if taken != NULL:
                for g in range(ng):
                    taken[(b0 // w) * ng + g] = path[g]
            b0 += w


def roll_sum(const real[:, :] x, Py_ssize_t window, Py_ssize_t minp, bint mean, out=None,
             Py_ssize_t start=0, Py_ssize_t stop=-1):
    """Rolling sum (``mean=False``) or mean over the last ``window`` rows, NaN/inf skipped.

    Each part (tail, head) is a compensated sum (Neumaier 1974) of at most ``window``
    values, and so is their total.
    Sum of an empty window is 0 when ``minp == 0`` (pandas); mean needs one observation;
    the mean of a window of equal finite values is that value, exactly (as pandas).
    ``out``: write into this array (see :func:`_out_like`); ``start``, ``stop``: compute
    rows [start, stop) only (:func:`_rows`), with the bits of a whole run.
    """
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1], w
    out_np = _out_like(x, out)
    if m == 0 or n == 0:
        return out_np
    cdef real[:, :] res = out_np
    w = window if window < n else n     # a longer window sees the same rows
    start, stop = _rows(start, stop, n, w)
    _sum_rows(x, res, w, minp, mean, start, stop, NULL)
    return out_np


# Variance: each part keeps shifted sums Σ(x - k), Σ(x - k)² about its own shift k:
# x[b0], the first row of the block, where finite (it lies in every window ending in the
# block, and both parts then share it: nothing to move); else the part's first finite
# value (the head's) or last finite value (the tail's). Shifts are values of the window,
# so |x - k| never exceeds the window's range and s2 - s1²/n does not cancel at any
# level/σ (Chan, Golub & LeVeque 1983, "shifted data"); the tail is moved onto the
# head's shift before the two are added. A window of identical values has deviations
# exactly 0, hence variance exactly 0 (as pandas).

ctypedef (double, double, double, double, double, double) VarState



cdef inline VarState _var_step(double v, double kb, double b1, double b2, double nb,
                               double ka, double t1, double t2, double na, double dd,
                               double dminp) noexcept nogil:
    """One asset, one row: v joins the head (shift kb, sums b1, b2, count nb), which is
    added to the tail (shift ka, sums t1, t2, count na). Returns the new head state, the
    variance (NaN below min_periods or n <= ddof) and x - mean (NaN for a missing x).
    Values in and out, not pointers: gcc then keeps it all in vector registers."""
    cdef bint ok = _ok(v)
    cdef double d, kc, dk, s1, s2, nn, q, mu, var
    kb = v if (ok & (nb == 0.0)) else kb     # the head's shift: its first finite value
    d = (v - kb) if ok else 0.0
    b1 += d
    b2 += d * d
    nb += 1.0 if ok else 0.0
    # the tail moved onto the common shift kc: Σ(d + dk) and Σ(d + dk)²
    kc = kb if nb > 0.0 else ka
    dk = (ka - kc) if na > 0.0 else 0.0
    s1 = b1 + t1 + na * dk
    s2 = b2 + t2 + dk * (2.0 * t1 + na * dk)
    nn = nb + na
    q = 1.0 / (nn * (nn - dd))   # one division serves 1/n and 1/(n - ddof)
    mu = s1 * (nn - dd) * q
    var = (s2 - s1 * mu) * nn * q
    var = 0.0 if var <= 0.0 else var
    # bitwise &, not `and`: no short-circuit branches in the loop
    var = var if ((nn >= dminp) & (nn > dd)) else NAN
    return kb, b1, b2, nb, var, (((v - kc) - mu) if ok else NAN)


cdef inline (double, double, double, double) _tail_var(
        double v, double ka, double z, double s1, double s2, double nn) noexcept nogil:
    """v joins a tail walked backwards (shift ka: row b0's value if finite, z = -1, else
    the first finite value met, z = 0: the last finite value of the block; sums s1, s2;
    count nn). z is read-only: a flag updated here stopped gcc vectorising the loop."""
    cdef bint ok = _ok(v)
    cdef double d
    ka = v if (ok & (nn == z)) else ka
    d = (v - ka) if ok else 0.0
    return ka, s1 + d, s2 + d * d, nn + (1.0 if ok else 0.0)


cdef inline double _zscore(double var, double z) noexcept nogil:
    cdef double sd = sqrt(var)
    return z / sd if sd > 0.0 else NAN


# The statistic is chosen at compile time: a fused "tag" type specialises the head loops
# once per statistic, each branch-free with nothing to select per value (a runtime mode
# test in the loop cost 10-30%: gcc does not inline a four-row helper called three times).
cdef struct VarTag:
    char unused
cdef struct StdTag:
    char unused
cdef struct ZTag:
    char unused

ctypedef fused Stat:
    VarTag
    StdTag
    ZTag


cdef inline double _var_out(double var, double z, Stat tag) noexcept nogil:
    """The window's statistic: variance, std or z-score (by the tag's type)."""
    if Stat is VarTag:
        return var
    elif Stat is StdTag:
        return sqrt(var)
    else:
        return _zscore(var, z)


cdef inline void _var_tails(const real[:, :] x, Py_ssize_t b0, Py_ssize_t w, Py_ssize_t c0,
                            Py_ssize_t c1, double* KA, double* H, double* B1, double* B2,
                            double* BN, double[:, ::1] T1, double[:, ::1] T2,
                            double[:, ::1] TN) noexcept nogil:
    """Tail sums of the block before b0 in columns [c0, c1), backwards, about row b0's
    value if finite, else the tail's last finite value (KA; H: -1 if row b0's value is finite, else 0): row k of T1, T2, TN
    holds rows [b0 - w + k, b0)."""
    cdef Py_ssize_t k = w - 1, a
    cdef const real* x0
    cdef const real* x1
    cdef const real* x2
    cdef const real* x3
    cdef double ka, z, s1, s2, nn
    cdef const real* xb = &x[b0, 0]
    for a in range(c0, c1):
        KA[a], H[a] = xb[a], (-1.0 if _ok(xb[a]) else 0.0)
        B1[a], B2[a], BN[a] = 0.0, 0.0, 0.0
    while k >= 0:
        if k >= 3:   # four rows per pass over the state (unroll and jam)
            x0, x1, x2, x3 = (&x[b0 - w + k, 0], &x[b0 - w + k - 1, 0],
                              &x[b0 - w + k - 2, 0], &x[b0 - w + k - 3, 0])
            for a in range(c0, c1):
                ka, z, s1, s2, nn = KA[a], H[a], B1[a], B2[a], BN[a]
                ka, s1, s2, nn = _tail_var(x0[a], ka, z, s1, s2, nn)
                T1[k, a], T2[k, a], TN[k, a] = s1, s2, nn
                ka, s1, s2, nn = _tail_var(x1[a], ka, z, s1, s2, nn)
                T1[k - 1, a], T2[k - 1, a], TN[k - 1, a] = s1, s2, nn
                ka, s1, s2, nn = _tail_var(x2[a], ka, z, s1, s2, nn)
                T1[k - 2, a], T2[k - 2, a], TN[k - 2, a] = s1, s2, nn
                ka, s1, s2, nn = _tail_var(x3[a], ka, z, s1, s2, nn)
                T1[k - 3, a], T2[k - 3, a], TN[k - 3, a] = s1, s2, nn
                KA[a], B1[a], B2[a], BN[a] = ka, s1, s2, nn
            k -= 4
        else:
            x0 = &x[b0 - w + k, 0]
            for a in range(c0, c1):
                KA[a], B1[a], B2[a], BN[a] = _tail_var(x0[a], KA[a], H[a], B1[a], B2[a], BN[a])
                T1[k, a], T2[k, a], TN[k, a] = B1[a], B2[a], BN[a]
            k -= 1


cdef inline void _var_rows4(const real[:, :] x, real[:, :] out, Py_ssize_t t,
                            Py_ssize_t j, Py_ssize_t c0, Py_ssize_t c1, const double* KA, double* KB,
                            double* B1, double* B2, double* BN, double[:, ::1] T1,
                            double[:, ::1] T2, double[:, ::1] TN, double dd, double dminp,
                            Stat tag) noexcept nogil:
    """Rows t..t+3 (tail rows j..j+3), four rows per pass over the state."""
    cdef Py_ssize_t a
    cdef const real* x0 = &x[t, 0]
    cdef const real* x1 = &x[t + 1, 0]
    cdef const real* x2 = &x[t + 2, 0]
    cdef const real* x3 = &x[t + 3, 0]
    cdef real* o0 = &out[t, 0]
    cdef real* o1 = &out[t + 1, 0]
    cdef real* o2 = &out[t + 2, 0]
    cdef real* o3 = &out[t + 3, 0]
    cdef double ka, kb, s1, s2, nn, var, z
    for a in range(c0, c1):
        ka = KA[a]
        kb, s1, s2, nn, var, z = _var_step(
                x0[a], KB[a], B1[a], B2[a], BN[a], ka, T1[j, a], T2[j, a], TN[j, a],
                dd, dminp)
        o0[a] = _var_out(var, z, tag)
        kb, s1, s2, nn, var, z = _var_step(
                x1[a], kb, s1, s2, nn, ka, T1[j + 1, a], T2[j + 1, a], TN[j + 1, a],
                dd, dminp)
        o1[a] = _var_out(var, z, tag)
        kb, s1, s2, nn, var, z = _var_step(
                x2[a], kb, s1, s2, nn, ka, T1[j + 2, a], T2[j + 2, a], TN[j + 2, a],
                dd, dminp)
        o2[a] = _var_out(var, z, tag)
        KB[a], B1[a], B2[a], BN[a], var, z = _var_step(
                x3[a], kb, s1, s2, nn, ka, T1[j + 3, a], T2[j + 3, a], TN[j + 3, a],
                dd, dminp)
        o3[a] = _var_out(var, z, tag)


cdef inline void _var_row(const real[:, :] x, real[:, :] out, Py_ssize_t t,
                          Py_ssize_t j, Py_ssize_t c0, Py_ssize_t c1, const double* KA, double* KB,
                          double* B1, double* B2, double* BN, double[:, ::1] T1,
                          double[:, ::1] T2, double[:, ::1] TN, double dd, double dminp,
                          Stat tag) noexcept nogil:
    """Row t alone (tail row j): the block's last rows."""
    cdef Py_ssize_t a
    cdef const real* x0 = &x[t, 0]
    cdef real* o0 = &out[t, 0]
    cdef double var, z
    for a in range(c0, c1):
        KB[a], B1[a], B2[a], BN[a], var, z = _var_step(
                x0[a], KB[a], B1[a], B2[a], BN[a], KA[a], T1[j, a], T2[j, a], TN[j, a],
                dd, dminp)
        o0[a] = _var_out(var, z, tag)


cdef inline void _var_heads(const real[:, :] x, real[:, :] out, Py_ssize_t b0,
                            Py_ssize_t end, Py_ssize_t c0, Py_ssize_t c1, const double* KA, double* KB,
                            double* B1, double* B2, double* BN, double[:, ::1] T1,
                            double[:, ::1] T2, double[:, ::1] TN, double dd, double dminp,
                            Stat tag) noexcept nogil:
    """Rows b0 <= t < end, columns [c0, c1): the head grows forwards; the window ending
    at t adds tail row t + 1 - b0 (row w: the empty tail)."""
    cdef Py_ssize_t t = b0, j, a
    for a in range(c0, c1):
        B1[a], B2[a], BN[a] = 0.0, 0.0, 0.0
    while t < end:
        j = t + 1 - b0
        if t + 4 <= end:
            _var_rows4(x, out, t, j, c0, c1, KA, KB, B1, B2, BN, T1, T2, TN, dd, dminp, tag)
            t += 4
        else:
            _var_row(x, out, t, j, c0, c1, KA, KB, B1, B2, BN, T1, T2, TN, dd, dminp, tag)
            t += 1



cdef inline void _fin_tails(const real[:, :] x, Py_ssize_t b0, Py_ssize_t w, Py_ssize_t c0,
                            Py_ssize_t c1, double* B1, double* B2, double[:, ::1] T1,
                            double[:, ::1] T2) noexcept nogil:
    """_var_tails on finite data: Σd, Σd² about x[b0] of rows [b0 - w + k, b0) in row k
    (d in double, as the general path: float32 - float32 would round in float)."""
    cdef Py_ssize_t k = w - 1, a
    cdef const real* xb = &x[b0, 0]
    cdef const real* x0
    cdef const real* x1
    cdef const real* x2
    cdef const real* x3
    cdef double s1, s2, d
    for a in range(c0, c1):
        B1[a], B2[a] = 0.0, 0.0
    while k >= 0:
        if k >= 3:   # four rows per pass over the state (unroll and jam)
            x0, x1, x2, x3 = (&x[b0 - w + k, 0], &x[b0 - w + k - 1, 0],
                              &x[b0 - w + k - 2, 0], &x[b0 - w + k - 3, 0])
            for a in range(c0, c1):
                d = <double>x0[a] - xb[a]
                s1, s2 = B1[a] + d, B2[a] + d * d
                T1[k, a], T2[k, a] = s1, s2
                d = <double>x1[a] - xb[a]
                s1, s2 = s1 + d, s2 + d * d
                T1[k - 1, a], T2[k - 1, a] = s1, s2
                d = <double>x2[a] - xb[a]
                s1, s2 = s1 + d, s2 + d * d
                T1[k - 2, a], T2[k - 2, a] = s1, s2
                d = <double>x3[a] - xb[a]
                s1, s2 = s1 + d, s2 + d * d
                T1[k - 3, a], T2[k - 3, a] = s1, s2
                B1[a], B2[a] = s1, s2
            k -= 4
        else:
            x0 = &x[b0 - w + k, 0]
            for a in range(c0, c1):
                d = <double>x0[a] - xb[a]
                B1[a], B2[a] = B1[a] + d, B2[a] + d * d
                T1[k, a], T2[k, a] = B1[a], B2[a]
            k -= 1


cdef inline (double, double, double) _fin_step(double v, double kb, double b1, double b2,
                                               double t1, double t2, double nd, double q,
                                               double nn, Stat tag) noexcept nogil:
    """_var_step on finite data with n = nn values in the window, nd = nn - ddof, q =
    1 / (nn nd): the new head sums and the statistic."""
    cdef double d = v - kb, s1, s2, mu, var
    b1 += d
    b2 += d * d
    s1 = b1 + t1
    s2 = b2 + t2
    mu = s1 * nd * q
    var = (s2 - s1 * mu) * nn * q
    var = 0.0 if var <= 0.0 else var
    return b1, b2, _var_out(var, d - mu, tag)


cdef inline void _fin_heads(const real[:, :] x, real[:, :] out, Py_ssize_t b0,
                            Py_ssize_t end, Py_ssize_t w, Py_ssize_t c0, Py_ssize_t c1,
                            double* B1, double* B2, double[:, ::1] T1, double[:, ::1] T2,
                            double dd, Stat tag) noexcept nogil:
    """_var_heads on finite data after the first block: every window holds w values."""
    cdef Py_ssize_t t = b0, j, a
    cdef const real* xb = &x[b0, 0]
    cdef const real* x0
    cdef const real* x1
    cdef const real* x2
    cdef const real* x3
    cdef real* o0
    cdef real* o1
    cdef real* o2
    cdef real* o3
    cdef double nn = w, nd = w - dd, q = 1.0 / (nn * (nn - dd)), s1, s2
    for a in range(c0, c1):
        B1[a], B2[a] = 0.0, 0.0
    while t < end:
        j = t + 1 - b0
        if t + 4 <= end:   # four rows per pass over the state
            x0, x1, x2, x3 = &x[t, 0], &x[t + 1, 0], &x[t + 2, 0], &x[t + 3, 0]
            o0, o1, o2, o3 = &out[t, 0], &out[t + 1, 0], &out[t + 2, 0], &out[t + 3, 0]
            for a in range(c0, c1):
                s1, s2, o0[a] = _fin_step(x0[a], xb[a], B1[a], B2[a], T1[j, a], T2[j, a],
                                          nd, q, nn, tag)
                s1, s2, o1[a] = _fin_step(x1[a], xb[a], s1, s2, T1[j + 1, a],
                                          T2[j + 1, a], nd, q, nn, tag)
                s1, s2, o2[a] = _fin_step(x2[a], xb[a], s1, s2, T1[j + 2, a],
                                          T2[j + 2, a], nd, q, nn, tag)
                B1[a], B2[a], o3[a] = _fin_step(x3[a], xb[a], s1, s2, T1[j + 3, a],
                                                T2[j + 3, a], nd, q, nn, tag)
            t += 4
        else:
            x0, o0 = &x[t, 0], &out[t, 0]
            for a in range(c0, c1):
                B1[a], B2[a], o0[a] = _fin_step(x0[a], xb[a], B1[a], B2[a], T1[j, a],
                                                T2[j, a], nd, q, nn, tag)
            t += 1


cdef inline void _var_part(const real[:, :] x, real[:, :] out, Py_ssize_t b0,
                           Py_ssize_t end, Py_ssize_t w, Py_ssize_t c0, Py_ssize_t c1,
                           bint fin, double* KA, double* KB, double* B1, double* B2,
                           double* BN, double[:, ::1] T1, double[:, ::1] T2,
                           double[:, ::1] TN, double dd, double dminp, Stat tag) noexcept nogil:
    """Rows [b0, end) of columns [c0, c1): the finite path (``fin``) or the general one."""
    if fin:
        _fin_tails(x, b0, w, c0, c1, B1, B2, T1, T2)
        _fin_heads(x, out, b0, end, w, c0, c1, B1, B2, T1, T2, dd, tag)
        return
    if b0 > 0:
        _var_tails(x, b0, w, c0, c1, KA, KB, B1, B2, BN, T1, T2, TN)   # KB: the tail's flag
    _var_heads(x, out, b0, end, c0, c1, KA, KB, B1, B2, BN, T1, T2, TN, dd, dminp, tag)


cdef inline void _var_mode(const real[:, :] x, real[:, :] out, Py_ssize_t b0,
                           Py_ssize_t end, Py_ssize_t w, Py_ssize_t c0, Py_ssize_t c1,
                           bint fin, int mode, double* KA, double* KB, double* B1,
                           double* B2, double* BN, double[:, ::1] T1, double[:, ::1] T2,
                           double[:, ::1] TN, double dd, double dminp) noexcept nogil:
    """_var_part for the statistic ``mode`` (0 variance, 1 std, 2 z-score)."""
    cdef VarTag var_tag
    cdef StdTag std_tag
    cdef ZTag z_tag
    var_tag.unused = std_tag.unused = z_tag.unused = 0   # tags: only their types matter
    if mode == 0:
        _var_part(x, out, b0, end, w, c0, c1, fin, KA, KB, B1, B2, BN, T1, T2, TN, dd,
                  dminp, var_tag)
    elif mode == 1:
        _var_part(x, out, b0, end, w, c0, c1, fin, KA, KB, B1, B2, BN, T1, T2, TN, dd,
                  dminp, std_tag)
    else:
        _var_part(x, out, b0, end, w, c0, c1, fin, KA, KB, B1, B2, BN, T1, T2, TN, dd,
                  dminp, z_tag)


cdef void _var_rows(const real[:, :] x, real[:, :] res, Py_ssize_t w, Py_ssize_t minp,
                    Py_ssize_t ddof, int mode, Py_ssize_t start, Py_ssize_t stop,
                    unsigned char* taken):
    """roll_var's rows [start, stop) (start a multiple of w <= n) into res; ``taken``:
    as :func:`_sum_rows`."""
    cdef Py_ssize_t m = x.shape[1], b0 = start, end, g, h, i
    cdef Py_ssize_t ng = (m + _GROUP - 1) // _GROUP
    # tail Σd, Σd² and count by row of the window start; row w (zeros): no tail
    cdef double[:, ::1] T1 = np.zeros((w + 1, m)), T2 = np.zeros((w + 1, m))
    cdef double[:, ::1] TN = np.zeros((w + 1, m))
    cdef double[:, ::1] state = np.zeros((5, m))
    state[0] = np.nan
    cdef double* KA = &state[0, 0]      # the tail's shift
    cdef double* KB = &state[1, 0]      # the head's shift
    cdef double* B1 = &state[2, 0]      # Σ(x - k), Σ(x - k)², count of the current part
    cdef double* B2 = &state[3, 0]
    cdef double* BN = &state[4, 0]
    cdef double dd = ddof, dminp = minp
    cdef unsigned char[:, ::1] flags = np.ones((2, ng), np.uint8)
    cdef unsigned char* fin = &flags[0, 0]   # the previous block is finite (first: unknown)
    cdef unsigned char* path = &flags[1, 0]
    cdef bint full = (w > dd) & (w >= dminp)    # a window of w values is not NaN
    with nogil:
        while b0 < stop:
            end = b0 + w if b0 + w < stop else stop
            _try(path, fin, ng, full & (b0 > 0))
            g = 0
            while g < ng:   # runs of groups trying the finite path
                h = _run(path, g, ng)
                if path[g]:
                    _var_mode(x, res, b0, end, w, g * _GROUP, h * _GROUP if h < ng else m,
                              True, mode, KA, KB, B1, B2, BN, T1, T2, TN, dd, dminp)
                    _held(path, &T2[0, 0], B2, g, h, m)   # Σd²: NaN/inf once any d is
                g = h
            g = 0
            while g < ng:   # the general path: groups not trying, or whose try failed
                h = _run(path, g, ng)
                if path[g]:
                    for i in range(g, h):
                        fin[i] = 1
                else:
                    _var_mode(x, res, b0, end, w, g * _GROUP, h * _GROUP if h < ng else m,
                              False, mode, KA, KB, B1, B2, BN, T1, T2, TN, dd, dminp)
                    _counted(fin, BN, end - b0, g, h, m)
                g = h
            if taken != NULL:
                for g in range(ng):
                    taken[(b0 // w) * ng + g] = path[g]
            b0 += w


def roll_var(const real[:, :] x, Py_ssize_t window, Py_ssize_t minp, Py_ssize_t ddof,
             int mode, out=None, Py_ssize_t start=0, Py_ssize_t stop=-1):
    """Rolling variance (``mode=0``), std (1) or z-score ``(x - mean) / std`` (2).

    The z-score is NaN where the window's std is 0 or ``x`` is NaN or ±inf. ``out``,
    ``start``, ``stop``: as :func:`roll_sum`.
    """
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1], w
    out_np = _out_like(x, out)
    if m == 0 or n == 0:
        return out_np
    cdef real[:, :] res = out_np
    w = window if window < n else n
    start, stop = _rows(start, stop, n, w)
    _var_rows(x, res, w, minp, ddof, mode, start, stop, NULL)
    return out_np


# ---- Rolling min / max (van Herk / Gil-Werman: O(1) per element, branch-free)
# Rows are cut into blocks of `window`. The window ending at t spans the tail of the
# previous block (a suffix extreme, computed backwards once per block into a small
# buffer) and the head of t's block (a running prefix extreme): 3 comparisons a value.

def roll_minmax(const real[:, :] x, Py_ssize_t window, Py_ssize_t minp, bint is_max, out=None,
                Py_ssize_t start=0, Py_ssize_t stop=-1):
    """Rolling max (``is_max``) or min, NaN and ±inf skipped (van Herk 1992; Gil & Werman
    1993). ``out``, ``start``, ``stop``: as :func:`roll_sum`."""
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1], t, a, b0, k, j
    out_np = _out_like(x, out)
    cdef real[:, :] res = out_np
    if m == 0 or n == 0:
        return out_np
    if window > n:
        window = n                           # a longer window sees the same rows
    cdef double sign = 1.0 if is_max else -1.0   # min(x) = -max(-x)
    cdef double[:, ::1] suffix = np.empty((window, m))
    cdef double[::1] prefix_v = np.empty(m), nobs_v = np.zeros(m)
    cdef double* P = &prefix_v[0]
    cdef double* N = &nobs_v[0]
    nan_np = np.full(m, np.nan, dtype=out_np.dtype)
    cdef real[::1] nan_row = nan_np
    cdef const real* xt
    cdef const real* xo
    cdef double* S
    cdef double* S1
    cdef real* o
    cdef double v, best, NEG = -INFINITY, dminp = minp
    b0, stop = _rows(start, stop, n, window)
    with nogil:
        if b0 > 0:   # the running count starts as a whole run has it: [b0 - window, b0)
            for k in range(b0 - window, b0):
                xt = &x[k, 0]
                for a in range(m):
                    N[a] += 1.0 if _ok(xt[a]) else 0.0
        while b0 < stop:
            # suffix extremes of the previous block [b0 - window, b0), backwards
            if b0 > 0:
                for k in range(window - 1, -1, -1):
                    xt = &x[b0 - window + k, 0]
                    S = &suffix[k, 0]
                    if k == window - 1:
                        for a in range(m):
                            v = sign * xt[a]
                            S[a] = v if _ok(v) else NEG
                    else:
                        S1 = &suffix[k + 1, 0]
                        for a in range(m):
                            v = sign * xt[a]
                            v = v if _ok(v) else NEG
                            S[a] = v if v > S1[a] else S1[a]
            for a in range(m):
                P[a] = NEG
            for t in range(b0, b0 + window if b0 + window < stop else stop):
                xt = &x[t, 0]
                xo = &x[t - window, 0] if t >= window else &nan_row[0]
                o = &res[t, 0]
                j = t - window + 1 - (b0 - window)   # suffix row of the window start
                S = &suffix[j, 0] if (b0 > 0 and j < window) else NULL
                for a in range(m):
                    v = sign * xt[a]
                    N[a] += 1.0 if _ok(v) else 0.0
                    N[a] -= 1.0 if _ok(xo[a]) else 0.0
                    v = v if _ok(v) else NEG
                    P[a] = v if v > P[a] else P[a]
                if S != NULL:
                    for a in range(m):
                        best = S[a] if S[a] > P[a] else P[a]
                        o[a] = sign * best if (N[a] >= dminp and N[a] > 0) else NAN
                else:
                    for a in range(m):
                        o[a] = sign * P[a] if (N[a] >= dminp and N[a] > 0) else NAN
            b0 += window
    return out_np


# ---- Exponentially weighted mean (pandas ewm(span, adjust=True, ignore_na=False).mean())

def ewm_mean(const real[:, :] x, double alpha, Py_ssize_t minp, out=None):
    """Adjusted EWMA: weights (1 - alpha)^i over positions, NaN observations skipped but
    still aging the weights (pandas ``ignore_na=False``); NaN input shows the last mean.
    ±inf is missing, as NaN (pandas turns inf into NaN before its ewm kernels)."""
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1], t, a
    out_np = _out_like(x, out)
    cdef real[:, :] res = out_np
    cdef double[::1] weighted = np.full(m, NAN), old_wt = np.ones(m)
    cdef Py_ssize_t[::1] nobs = np.zeros(m, dtype=np.intp)
    cdef double old_wt_factor = 1.0 - alpha, cur
    cdef bint valid
    with nogil:
        for t in range(n):
            for a in range(m):
                cur = x[t, a]
                valid = _ok(cur)
                if valid:
                    nobs[a] += 1
                if not isnan(weighted[a]):
                    old_wt[a] *= old_wt_factor
                    if valid:
                        if weighted[a] != cur:
                            weighted[a] = (old_wt[a] * weighted[a] + cur) / (old_wt[a] + 1.0)
                        old_wt[a] += 1.0
                elif valid:
                    weighted[a] = cur
                    old_wt[a] = 1.0
                res[t, a] = weighted[a] if nobs[a] >= minp else NAN
    return out_np


# ---- Rolling percentile rank of the current value (average ties), O(window) a step

def roll_rank(const real[:, :] x, Py_ssize_t window, Py_ssize_t minp, out=None):
    """pct rank of x[t] among the window's finite values: (less + (equal + 1) / 2) / nobs;
    NaN where x[t] is NaN or ±inf (pandas)."""
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1], t, a, j, lo
    out_np = _out_like(x, out)
    cdef real[:, :] res = out_np
    cdef Py_ssize_t[::1] nobs = np.zeros(m, dtype=np.intp), less = np.zeros(m, dtype=np.intp)
    cdef Py_ssize_t[::1] equal = np.zeros(m, dtype=np.intp)
    cdef real v, w
    with nogil:
        for t in range(n):
            lo = t - window + 1 if t >= window else 0
            for a in range(m):
                if t >= window and _ok(x[t - window, a]):
                    nobs[a] -= 1
                if _ok(x[t, a]):
                    nobs[a] += 1
                less[a] = 0
                equal[a] = 0
            # rows of the window one after another, assets innermost (contiguous)
            for j in range(lo, t + 1):
                for a in range(m):
                    v = x[t, a]
                    w = x[j, a]
                    less[a] += (w < v) & (w != -INFINITY)   # NaN, +inf: neither
                    equal[a] += w == v
            for a in range(m):
                if not _ok(x[t, a]) or nobs[a] < minp or nobs[a] == 0:
                    res[t, a] = NAN
                else:
                    res[t, a] = (less[a] + (equal[a] + 1) * 0.5) / nobs[a]
    return out_np


# ---- Rolling pairwise correlation (bivariate Welford, pairwise-complete observations)
# The same block decomposition as sum / var: per pair, the tail of the previous block
# (Welford sums added backwards into a buffer of window + 1 rows) and the head of t's
# block (added forwards) are merged with Chan, Golub & LeVeque's pairwise formula.
# Nothing is removed from a running co-moment, so a 1e9 tick that has left the window
# leaves no residue (a running Welford removal left correlations off by 0.5 for good).
# Each part works on x - K with K a value of the column in that part (the tail's last
# finite one, the head's first), so the level does not cost digits either.

cdef inline void _first_finite(const real[:, :] x, Py_ssize_t row, Py_ssize_t m,
                               double[::1] shift, double[::1] seen) noexcept nogil:
    """A part's shift of each column: its first finite value met (seen marks it set)."""
    cdef Py_ssize_t i
    for i in range(m):
        if _ok(x[row, i]) and seen[i] == 0.0:
            shift[i] = x[row, i]
            seen[i] = 1.0


cdef inline void _zero_pairs(double[:, ::1] cnt, double[:, ::1] mx, double[:, ::1] my,
                             double[:, ::1] sxx, double[:, ::1] syy,
                             double[:, ::1] sxy) noexcept nogil:
    cnt[:, :] = 0.0
    mx[:, :] = 0.0
    my[:, :] = 0.0
    sxx[:, :] = 0.0
    syy[:, :] = 0.0
    sxy[:, :] = 0.0


cdef inline void _corr_tails(const real[:, :] x, Py_ssize_t b0, Py_ssize_t w, Py_ssize_t m,
                             double[:, ::1] cnt, double[:, ::1] mx, double[:, ::1] my,
                             double[:, ::1] sxx, double[:, ::1] syy, double[:, ::1] sxy,
                             double[:, :, ::1] tn, double[:, :, ::1] tmx,
                             double[:, :, ::1] tmy, double[:, :, ::1] txx,
                             double[:, :, ::1] tyy, double[:, :, ::1] txy,
                             double[::1] ka, double[::1] seen) noexcept nogil:
    """Welford sums of each pair over the block before b0, added backwards about the
    tail's shift ka: row k of the t* buffers holds rows [b0 - w + k, b0)."""
    cdef Py_ssize_t k, row, i, j
    cdef double xi, yj
    seen[:] = 0.0
    _zero_pairs(cnt, mx, my, sxx, syy, sxy)
    for k in range(w - 1, -1, -1):
        row = b0 - w + k
        _first_finite(x, row, m, ka, seen)
        for i in range(m):
            xi = x[row, i] - ka[i]
            for j in range(i, m):
                yj = x[row, j] - ka[j]
                if _ok(xi) and _ok(yj):
                    cnt[i, j] += 1.0
                    add_pair(xi, yj, cnt[i, j], &mx[i, j], &my[i, j],
                             &sxx[i, j], &syy[i, j], &sxy[i, j])
                tn[k, i, j] = cnt[i, j]
                tmx[k, i, j] = mx[i, j]
                tmy[k, i, j] = my[i, j]
                txx[k, i, j] = sxx[i, j]
                tyy[k, i, j] = syy[i, j]
                txy[k, i, j] = sxy[i, j]


def roll_corr(const real[:, :] x, Py_ssize_t window, Py_ssize_t minp):
    """out[t, i, j] = Pearson correlation of assets i, j over the window's rows where both
    are finite; NaN below ``minp`` such rows or with zero variance. Symmetric in i, j.
    Memory: the output plus 6 (min(window, n) + 1) m² doubles of tail buffers."""
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1], t, i, j, k, w, b0, end
    out_np = np.empty((n, m, m), dtype=np.asarray(x).dtype)
    if n == 0 or m == 0:
        return out_np
    cdef real[:, :, ::1] out = out_np
    w = window if window < n else n
    # tail sums of pair (i, j), j >= i, by row of the window start; row w (zeros): none
    cdef double[:, :, ::1] tn = np.zeros((w + 1, m, m)), tmx = np.zeros((w + 1, m, m))
    cdef double[:, :, ::1] tmy = np.zeros((w + 1, m, m)), txx = np.zeros((w + 1, m, m))
    cdef double[:, :, ::1] tyy = np.zeros((w + 1, m, m)), txy = np.zeros((w + 1, m, m))
    # the current part's Welford state of pair (i, j)
    cdef double[:, ::1] cnt = np.zeros((m, m)), mx = np.zeros((m, m)), my = np.zeros((m, m))
    cdef double[:, ::1] sxx = np.zeros((m, m)), syy = np.zeros((m, m)), sxy = np.zeros((m, m))
    cdef double[::1] ka = np.zeros(m), kb = np.zeros(m)   # shifts of the tail, the head
    cdef double[::1] seen = np.zeros(m)
    cdef double xi, yj, r, na, nb, nn, f, dx, dy, cxx, cyy, cxy
    with nogil:
        b0 = 0
        while b0 < n:
            if b0 > 0:
                _corr_tails(x, b0, w, m, cnt, mx, my, sxx, syy, sxy, tn, tmx, tmy, txx, tyy,
                            txy, ka, seen)
            _zero_pairs(cnt, mx, my, sxx, syy, sxy)
            seen[:] = 0.0
            end = b0 + w if b0 + w < n else n
            for t in range(b0, end):
                k = t + 1 - b0      # tail row of the window start
                _first_finite(x, t, m, kb, seen)
                for i in range(m):
                    xi = x[t, i] - kb[i]
                    for j in range(i, m):
                        yj = x[t, j] - kb[j]
                        if _ok(xi) and _ok(yj):
                            cnt[i, j] += 1.0
                            add_pair(xi, yj, cnt[i, j], &mx[i, j], &my[i, j], &sxx[i, j],
                                     &syy[i, j], &sxy[i, j])
                        # head + tail (Chan, Golub & LeVeque 1979, pairwise update)
                        nb = cnt[i, j]
                        na = tn[k, i, j]
                        nn = na + nb
                        r = NAN
                        if nn >= minp and nn > 1:
                            f = dx = dy = 0.0
                            if na > 0 and nb > 0:   # else a shift may be unset
                                f = na * nb / nn
                                dx = (mx[i, j] - tmx[k, i, j]) + (kb[i] - ka[i])
                                dy = (my[i, j] - tmy[k, i, j]) + (kb[j] - ka[j])
                            cxx = sxx[i, j] + txx[k, i, j] + dx * dx * f
                            cyy = syy[i, j] + tyy[k, i, j] + dy * dy * f
                            cxy = sxy[i, j] + txy[k, i, j] + dx * dy * f
                            if cxx > 0 and cyy > 0:
                                r = cxy / sqrt(cxx * cyy)
                                r = 1.0 if r > 1.0 else (-1.0 if r < -1.0 else r)
                        out[t, i, j] = r
                        out[t, j, i] = r
            b0 += w
    return out_np
