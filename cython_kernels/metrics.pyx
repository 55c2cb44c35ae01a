# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Performance-metric kernels over a C-contiguous (time, column) panel of returns.

``accumulate`` is ONE pass over time (columns innermost, contiguous) that fills, per
column, the sufficient statistics every returns metric is a closed form of: Welford
moments up to the 4th, min/max, downside squares, wealth and the drawdown family,
win/loss counts and sums, the stability regression's co-moments, and the paired
benchmark statistics (beta, alpha, tracking error, up/down capture). ``quantiles``
gets order statistics by selection (quickselect), not a full sort. NaN = no
observation: skipped everywhere. Formulas live in ``quantlab/metrics.py``.
"""
import numpy as np

from libc.math cimport NAN, exp, floor, isnan, log, sqrt

include "welford.pxi"
include "returns_acc.pxi"



def accumulate(const double[:, ::1] r, const double[:, ::1] logr, const double[:, ::1] b,
               double required_return):
    """Sufficient statistics of each column of ``r`` (and of its pairs with ``b``, a panel
    of the same shape, or an empty (0, 0) array for no benchmark): array (NFIELDS, m).

    ``logr`` = log1p(r), computed by NumPy's SIMD log beforehand (a scalar log1p per
    element would be a fifth of this loop)."""
    cdef Py_ssize_t n = r.shape[0], m = r.shape[1], t, a
    cdef bint has_b = b.shape[0] > 0
    if logr.shape[0] != n or logr.shape[1] != m:
        raise ValueError("logr must have the returns' shape")
    if has_b and (b.shape[0] != n or b.shape[1] != m):
        raise ValueError("benchmark panel must have the returns' shape")
    acc_np = _acc_new(m)  # (m, NFIELDS): a column's statistics share cache lines
    cdef double[:, ::1] A = acc_np
    cdef double x, bx
    with nogil:
        for t in range(n):
            for a in range(m):
                x = r[t, a]
                if isnan(x):
                    continue
                acc_add(&A[a, 0], x, logr[t, a], required_return)
                if not has_b:
                    continue
                bx = b[t, a]
                if isnan(bx):
                    continue
                # paired statistics with the benchmark (co-moments by Welford)
                A[a, PN] += 1.0
                add_pair(bx, x, A[a, PN], &A[a, PMB], &A[a, PMR], &A[a, PCBB], &A[a, PCRR],
                         &A[a, PCRB])
                if bx > 0:
                    A[a, UPN] += 1.0
                    A[a, UPWR] *= 1.0 + x
                    A[a, UPWB] *= 1.0 + bx
                elif bx < 0:
                    A[a, DNN] += 1.0
                    A[a, DNWR] *= 1.0 + x
                    A[a, DNWB] *= 1.0 + bx
    return acc_np.T


# ---- Order statistics by selection

cdef void swap(double* v, Py_ssize_t i, Py_ssize_t j) noexcept nogil:
    cdef double tmp = v[i]
    v[i] = v[j]
    v[j] = tmp


cdef void _fr(double* v, Py_ssize_t left, Py_ssize_t right, Py_ssize_t k) noexcept nogil:
    """Floyd & Rivest's SELECT (1975): first narrow [left, right] to a small sample range
    around k, so the partitions cost about n + min(k, n - k) comparisons (the tails we
    select sit near the ends) instead of quickselect's ~3n."""
    cdef Py_ssize_t n, i, j, nl, nr
    cdef double z, s, sd, t
    while right > left:
        if right - left > 600:
            n = right - left + 1
            i = k - left + 1
            z = log(<double>n)
            s = 0.5 * exp(2.0 * z / 3.0)
            sd = 0.5 * sqrt(z * s * (n - s) / n) * (-1.0 if i < n / 2.0 else 1.0)
            nl = <Py_ssize_t>floor(k - i * s / n + sd)
            nr = <Py_ssize_t>floor(k + (n - i) * s / n + sd)
            _fr(v, nl if nl > left else left, nr if nr < right else right, k)
        t = v[k]
        i = left
        j = right
        swap(v, left, k)
        if v[right] > t:
            swap(v, right, left)
        while i < j:
            swap(v, i, j)
            i += 1
            j -= 1
            while v[i] < t:
                i += 1
            while v[j] > t:
                j -= 1
        if v[left] == t:
            swap(v, left, j)
        else:
            j += 1
            swap(v, j, right)
        if j <= k:
            left = j + 1
        if k <= j:
            right = j - 1


cdef double select(double* v, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """k-th smallest (0-based) of v[0:n] (no NaN), partially reordering v so that
    v[:k] <= v[k] <= v[k+1:]."""
    _fr(v, 0, n - 1, k)
    return v[k]


cdef double percentile(double* v, Py_ssize_t n, double q, Py_ssize_t* done) noexcept nogil:
    """numpy.percentile(v, 100 q) with linear interpolation, by selection.

    ``done[0]`` is the index already in its sorted place (v[:done] <= v[done] <= v[done+1:]),
    or -1: a later quantile selects only in the part that can hold it.
    """
    cdef double pos = q * (n - 1)
    cdef Py_ssize_t lo = <Py_ssize_t>pos, i, d = done[0]
    cdef double frac = pos - lo, a, b, diff
    if lo == d:
        a = v[lo]
    elif lo > d:
        a = select(v + d + 1, n - d - 1, lo - d - 1)
    else:
        a = select(v, d, lo)
    done[0] = lo
    if frac == 0 or lo + 1 >= n:
        return a
    b = v[lo + 1]
    for i in range(lo + 2, n):  # after select, v[lo+1:] >= a: its minimum is next
        b = v[i] if v[i] < b else b
    diff = b - a
    # numpy's _lerp: symmetric form for t >= 0.5 keeps the result monotone
    return a + diff * frac if frac < 0.5 else b - diff * (1.0 - frac)


def quantiles(const double[:, ::1] r, const double[::1] qs, double tail):
    """Per column of ``r``: the percentiles ``qs`` (ascending fractions, linear interpolation) of the
    non-NaN values, then the mean of the ``int((n - 1) * tail) + 1`` smallest values
    (empyrical's CVaR). Returns (len(qs) + 1, m); NaN for a column without data.

    Columns are gathered 8 at a time (one cache line of each row) into buffers."""
    cdef Py_ssize_t n = r.shape[0], m = r.shape[1], nq = qs.shape[0], a0, a, t, j, kt, nb
    cdef Py_ssize_t B = 8
    out_np = np.full((nq + 1, m), np.nan)
    cdef double[:, ::1] out = out_np
    cdef double[:, ::1] buf = np.empty((B, max(n, 1)))
    cdef Py_ssize_t[::1] cnt = np.zeros(B, dtype=np.intp)
    cdef double* v
    cdef double s, x
    cdef Py_ssize_t done
    with nogil:
        a0 = 0
        while a0 < m:
            nb = B if a0 + B <= m else m - a0
            for j in range(nb):
                cnt[j] = 0
            for t in range(n):
                for j in range(nb):
                    x = r[t, a0 + j]
                    if not isnan(x):
                        buf[j, cnt[j]] = x
                        cnt[j] += 1
            for j in range(nb):
                if cnt[j] == 0:
                    continue
                v = &buf[j, 0]
                a = a0 + j
                # the CVaR tail first; the (ascending) quantiles then reuse its partition
                kt = <Py_ssize_t>((cnt[j] - 1) * tail)
                select(v, cnt[j], kt)
                s = 0
                for t in range(kt + 1):
                    s += v[t]
                out[nq, a] = s / (kt + 1)
                done = kt
                for t in range(nq):
                    out[t, a] = percentile(v, cnt[j], qs[t], &done)
            a0 += B
    return out_np
