# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Rolling-window kernels over a (time, asset) panel whose rows are contiguous.

Rows may be strided (a column chunk of a larger C-ordered array, as dask hands over),
but each row's assets must be adjacent in memory: the hot loops walk row pointers.

Every kernel walks time in the outer loop and assets in the inner loop, so the hot loop
reads and writes contiguous memory, with one small state slot per asset. State is kept
in float64 for float32 input too. Semantics follow pandas' ``rolling`` (fixed window,
NaN skipped, ``min_periods`` counts non-NaN observations); ``quantlab/rolling.py``
owns validation and labels, ``tests/reference.py`` holds the plain NumPy twins.
Pattern after pandas/_libs/window/aggregations.pyx: add/remove/calc helpers per statistic.
"""
import numpy as np

from libc.math cimport INFINITY, NAN, isnan, sqrt

include "welford.pxi"

ctypedef fused real:
    float
    double


def _empty_like(x):
    if x.shape[1] > 1 and x.strides[1] != x.itemsize:
        raise ValueError("rolling kernels need each row's values adjacent (inner stride 1)")
    return np.empty((x.shape[0], x.shape[1]), dtype=np.asarray(x).dtype)


# Hot loops are branch-free (selects instead of ifs on NaN) over raw row pointers, so
# gcc vectorises them across assets; counts are doubles and integer arguments are turned
# into doubles before the loop (SSE2 cannot convert int64 -> double in vectors). Before
# the first full window the "leaving" row is a row of NaN, whose removal is a no-op:
# one fused loop serves every t.


# ---- Rolling sum / mean (Kahan-compensated running sum)

def roll_sum(const real[:, :] x, Py_ssize_t window, Py_ssize_t minp, bint mean):
    """Rolling sum (``mean=False``) or mean over the last ``window`` rows, NaN skipped.

    Sum of an empty window is 0 when ``minp == 0`` (pandas); mean needs one observation.
    """
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1], t, a
    out_np = _empty_like(x)
    cdef real[:, ::1] out = out_np
    cdef double[::1] nobs_v = np.zeros(m), sum_v = np.zeros(m), comp_v = np.zeros(m)
    nan_np = np.full(m, np.nan, dtype=out_np.dtype)
    cdef real[::1] nan_row = nan_np
    cdef double* N = &nobs_v[0] if m else NULL
    cdef double* S = &sum_v[0] if m else NULL
    cdef double* C = &comp_v[0] if m else NULL
    cdef const real* xt
    cdef const real* xo
    cdef real* o
    cdef double v, y, tt, res, dminp = minp
    cdef double nmin = 0.0 if mean else -1.0   # a mean needs one observation
    if m == 0 or n == 0:
        return out_np
    with nogil:
        for t in range(n):
            xt = &x[t, 0]
            xo = &x[t - window, 0] if t >= window else &nan_row[0]
            o = &out[t, 0]
            for a in range(m):
                # one Kahan step adds (new - leaving), each taken as 0 when NaN
                v = (xt[a] if xt[a] == xt[a] else 0.0) - (xo[a] if xo[a] == xo[a] else 0.0)
                N[a] += (1.0 if xt[a] == xt[a] else 0.0) - (1.0 if xo[a] == xo[a] else 0.0)
                y = v - C[a]
                tt = S[a] + y
                C[a] = (tt - S[a]) - y
                S[a] = tt
                res = S[a] / (N[a] if mean else 1.0)
                o[a] = res if (N[a] >= dminp and N[a] > nmin) else NAN
    return out_np


# ---- Rolling variance / std / z-score
# Shifted sums s1 = Σ(x - K), s2 = Σ(x - K)² with K close to the window mean, so
# s2 - s1²/n does not cancel (Chan, Golub & LeVeque 1983, "shifted data"). At the start
# of every block of `window` rows, K moves to the current window mean and s1, s2 are
# recomputed exactly from the window's rows: no drift, O(1) amortised work per value.
# A run of identical values has variance exactly 0 (as pandas tracks it).

ctypedef (double, double, double, double, double, double, double) VarState

cdef inline VarState _var_step(double v, double w, double k, double n, double s1,
                               double s2, double r, double p, double dd,
                               double dminp) noexcept nogil:
    """One asset, one row: v enters the window and w leaves it (NaN: no change). Takes
    and returns the asset's state (count n, shifted sums s1, s2, run r of equal values,
    previous value p), then the variance (NaN below min_periods) and mean - K. A struct
    in and out, not pointers to locals: gcc then keeps it all in vector registers."""
    cdef double dn = (v - k) if v == v else 0.0
    cdef double do = (w - k) if w == w else 0.0
    cdef double q, mu, var
    n += (1.0 if v == v else 0.0) - (1.0 if w == w else 0.0)
    s1 += dn - do
    s2 += dn * dn - do * do
    r = ((r + 1.0 if v == p else 1.0) if v == v else r)
    p = v if v == v else p
    q = 1.0 / (n * (n - dd))   # one division serves 1/n and 1/(n - ddof)
    mu = s1 * (n - dd) * q
    var = (s2 - s1 * mu) * n * q
    # bitwise | and &, not `or`/`and`: no short-circuit branches in the loop
    var = 0.0 if ((n == 1) | (r >= n) | (var <= 0)) else var
    var = var if ((n >= dminp) & (n > dd)) else NAN
    return n, s1, s2, r, p, var, mu


cdef inline void _var_out(int mode, Py_ssize_t m, const double* V, const double* MU,
                          const double* K, const real* xt, real* o) noexcept nogil:
    """A row of variances -> the output row: variance, std or z-score (still in L1)."""
    cdef Py_ssize_t a
    cdef double sd, v
    if mode == 0:
        for a in range(m):
            o[a] = V[a]
    elif mode == 1:
        for a in range(m):
            o[a] = sqrt(V[a])
    else:
        for a in range(m):
            sd = sqrt(V[a])
            v = (xt[a] - K[a] - MU[a]) / sd
            o[a] = v if sd > 0 else NAN


def roll_var(const real[:, :] x, Py_ssize_t window, Py_ssize_t minp, Py_ssize_t ddof,
             int mode):
    """Rolling variance (``mode=0``), std (1) or z-score ``(x - mean) / std`` (2).

    The z-score is NaN where the window's std is 0 or ``x`` is NaN. Rows go four at a
    time where no re-centring falls between them (unroll and jam): each asset's state is
    loaded and stored once per four rows, a quarter of the traffic of the state rows
    (40 KB for 1000 assets, about L1); the steps and their order per asset are unchanged.
    """
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1], t, a, j, g
    out_np = _empty_like(x)
    cdef real[:, ::1] out = out_np
    if m == 0 or n == 0:
        return out_np
    state = np.zeros((14, m))
    state[5] = np.nan
    cdef double[:, ::1] st = state
    cdef double* N = &st[0, 0]      # observations in the window
    cdef double* K = &st[1, 0]      # shift, the window mean at the last block start
    cdef double* S1 = &st[2, 0]     # Σ (x - K)
    cdef double* S2 = &st[3, 0]     # Σ (x - K)²
    cdef double* R = &st[4, 0]      # run length of identical consecutive values
    cdef double* P = &st[5, 0]      # previous value
    # variance and mean - K of the group's four rows
    cdef double* V0 = &st[6, 0]
    cdef double* V1 = &st[7, 0]
    cdef double* V2 = &st[8, 0]
    cdef double* V3 = &st[9, 0]
    cdef double* MU0 = &st[10, 0]
    cdef double* MU1 = &st[11, 0]
    cdef double* MU2 = &st[12, 0]
    cdef double* MU3 = &st[13, 0]
    nan_np = np.full(m, np.nan, dtype=out_np.dtype)
    cdef real[::1] nan_row = nan_np
    cdef const real* xt
    cdef const real* x0
    cdef const real* x1
    cdef const real* x2
    cdef const real* x3
    cdef const real* w0
    cdef const real* w1
    cdef const real* w2
    cdef const real* w3
    cdef double v, k, dn, nn, s1, s2, r, p, var, mu, dd = ddof, dminp = minp
    cdef real* o0
    cdef real* o1
    cdef real* o2
    cdef real* o3
    with nogil:
        t = 0
        while t < n:
            if t > 0 and t % window == 0:
                # re-centre on the current window [t - window, t) and recompute exactly
                for a in range(m):
                    k = K[a]
                    K[a] = k + S1[a] / N[a] if N[a] > 0 else k
                    S1[a] = 0.0
                    S2[a] = 0.0
                for j in range(t - window if t >= window else 0, t):
                    xt = &x[j, 0]
                    for a in range(m):
                        v = xt[a]
                        k = K[a]
                        dn = (v - k) if v == v else 0.0
                        S1[a] += dn
                        S2[a] += dn * dn
            # four rows if no re-centring falls between them, else one
            g = 4 if (t + 4 <= n and window - t % window >= 4) else 1
            x0 = &x[t, 0]
            w0 = &x[t - window, 0] if t >= window else &nan_row[0]
            if g == 4:
                x1, x2, x3 = &x[t + 1, 0], &x[t + 2, 0], &x[t + 3, 0]
                w1 = &x[t + 1 - window, 0] if t + 1 >= window else &nan_row[0]
                w2 = &x[t + 2 - window, 0] if t + 2 >= window else &nan_row[0]
                w3 = &x[t + 3 - window, 0] if t + 3 >= window else &nan_row[0]
                if mode == 1:
                    # std: the square roots in the same loop, where they overlap the
                    # arithmetic (a separate pass waits on the divider alone)
                    o0, o1, o2, o3 = &out[t, 0], &out[t + 1, 0], &out[t + 2, 0], &out[t + 3, 0]
                    for a in range(m):
                        nn, s1, s2, r, p, var, mu = _var_step(
                            x0[a], w0[a], K[a], N[a], S1[a], S2[a], R[a], P[a], dd, dminp)
                        o0[a] = sqrt(var)
                        nn, s1, s2, r, p, var, mu = _var_step(
                            x1[a], w1[a], K[a], nn, s1, s2, r, p, dd, dminp)
                        o1[a] = sqrt(var)
                        nn, s1, s2, r, p, var, mu = _var_step(
                            x2[a], w2[a], K[a], nn, s1, s2, r, p, dd, dminp)
                        o2[a] = sqrt(var)
                        N[a], S1[a], S2[a], R[a], P[a], var, mu = _var_step(
                            x3[a], w3[a], K[a], nn, s1, s2, r, p, dd, dminp)
                        o3[a] = sqrt(var)
                else:
                    for a in range(m):
                        nn, s1, s2, r, p, V0[a], MU0[a] = _var_step(
                            x0[a], w0[a], K[a], N[a], S1[a], S2[a], R[a], P[a], dd, dminp)
                        nn, s1, s2, r, p, V1[a], MU1[a] = _var_step(
                            x1[a], w1[a], K[a], nn, s1, s2, r, p, dd, dminp)
                        nn, s1, s2, r, p, V2[a], MU2[a] = _var_step(
                            x2[a], w2[a], K[a], nn, s1, s2, r, p, dd, dminp)
                        N[a], S1[a], S2[a], R[a], P[a], V3[a], MU3[a] = _var_step(
                            x3[a], w3[a], K[a], nn, s1, s2, r, p, dd, dminp)
                    _var_out(mode, m, V0, MU0, K, x0, &out[t, 0])
                    _var_out(mode, m, V1, MU1, K, x1, &out[t + 1, 0])
                    _var_out(mode, m, V2, MU2, K, x2, &out[t + 2, 0])
                    _var_out(mode, m, V3, MU3, K, x3, &out[t + 3, 0])
            else:
                for a in range(m):
                    N[a], S1[a], S2[a], R[a], P[a], V0[a], MU0[a] = _var_step(
                        x0[a], w0[a], K[a], N[a], S1[a], S2[a], R[a], P[a], dd, dminp)
                _var_out(mode, m, V0, MU0, K, x0, &out[t, 0])
            t += g
    return out_np


# ---- Rolling min / max (van Herk / Gil-Werman: O(1) per element, branch-free)
# Rows are cut into blocks of `window`. The window ending at t spans the tail of the
# previous block (a suffix extreme, computed backwards once per block into a small
# buffer) and the head of t's block (a running prefix extreme): 3 comparisons a value.

def roll_minmax(const real[:, :] x, Py_ssize_t window, Py_ssize_t minp, bint is_max):
    """Rolling max (``is_max``) or min, NaN skipped (van Herk 1992; Gil & Werman 1993)."""
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1], t, a, b0, k, j
    out_np = _empty_like(x)
    cdef real[:, ::1] out = out_np
    if m == 0 or n == 0:
        return out_np
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
    with nogil:
        b0 = 0
        while b0 < n:
            # suffix extremes of the previous block [b0 - window, b0), backwards
            if b0 > 0:
                for k in range(window - 1, -1, -1):
                    xt = &x[b0 - window + k, 0]
                    S = &suffix[k, 0]
                    if k == window - 1:
                        for a in range(m):
                            v = sign * xt[a]
                            S[a] = v if v == v else NEG
                    else:
                        S1 = &suffix[k + 1, 0]
                        for a in range(m):
                            v = sign * xt[a]
                            v = v if v == v else NEG
                            S[a] = v if v > S1[a] else S1[a]
            for a in range(m):
                P[a] = NEG
            for t in range(b0, b0 + window if b0 + window < n else n):
                xt = &x[t, 0]
                xo = &x[t - window, 0] if t >= window else &nan_row[0]
                o = &out[t, 0]
                j = t - window + 1 - (b0 - window)   # suffix row of the window start
                S = &suffix[j, 0] if (b0 > 0 and j < window) else NULL
                for a in range(m):
                    v = sign * xt[a]
                    N[a] += 1.0 if v == v else 0.0
                    N[a] -= 1.0 if xo[a] == xo[a] else 0.0
                    v = v if v == v else NEG
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

def ewm_mean(const real[:, :] x, double alpha, Py_ssize_t minp):
    """Adjusted EWMA: weights (1 - alpha)^i over positions, NaN observations skipped but
    still aging the weights (pandas ``ignore_na=False``); NaN input shows the last mean."""
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1], t, a
    out_np = _empty_like(x)
    cdef real[:, ::1] out = out_np
    cdef double[::1] weighted = np.full(m, NAN), old_wt = np.ones(m)
    cdef Py_ssize_t[::1] nobs = np.zeros(m, dtype=np.intp)
    cdef double old_wt_factor = 1.0 - alpha, cur
    with nogil:
        for t in range(n):
            for a in range(m):
                cur = x[t, a]
                if not isnan(cur):
                    nobs[a] += 1
                if not isnan(weighted[a]):
                    old_wt[a] *= old_wt_factor
                    if not isnan(cur):
                        if weighted[a] != cur:
                            weighted[a] = (old_wt[a] * weighted[a] + cur) / (old_wt[a] + 1.0)
                        old_wt[a] += 1.0
                elif not isnan(cur):
                    weighted[a] = cur
                    old_wt[a] = 1.0
                out[t, a] = weighted[a] if nobs[a] >= minp else NAN
    return out_np


# ---- Rolling percentile rank of the current value (average ties), O(window) a step

def roll_rank(const real[:, :] x, Py_ssize_t window, Py_ssize_t minp):
    """pct rank of x[t] among the window's non-NaN values: (less + (equal + 1) / 2) / nobs."""
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1], t, a, j, lo
    out_np = _empty_like(x)
    cdef real[:, ::1] out = out_np
    cdef Py_ssize_t[::1] nobs = np.zeros(m, dtype=np.intp), less = np.zeros(m, dtype=np.intp)
    cdef Py_ssize_t[::1] equal = np.zeros(m, dtype=np.intp)
    cdef real v, w
    with nogil:
        for t in range(n):
            lo = t - window + 1 if t >= window else 0
            for a in range(m):
                if t >= window and not isnan(x[t - window, a]):
                    nobs[a] -= 1
                if not isnan(x[t, a]):
                    nobs[a] += 1
                less[a] = 0
                equal[a] = 0
            # rows of the window one after another, assets innermost (contiguous)
            for j in range(lo, t + 1):
                for a in range(m):
                    v = x[t, a]
                    w = x[j, a]
                    less[a] += w < v
                    equal[a] += w == v
            for a in range(m):
                if isnan(x[t, a]) or nobs[a] < minp or nobs[a] == 0:
                    out[t, a] = NAN
                else:
                    out[t, a] = (less[a] + (equal[a] + 1) * 0.5) / nobs[a]
    return out_np


# ---- Rolling pairwise correlation (bivariate Welford, pairwise-complete observations)

def roll_corr(const real[:, :] x, Py_ssize_t window, Py_ssize_t minp):
    """out[t, i, j] = Pearson correlation of assets i, j over the window's rows where both
    are valid; NaN below ``minp`` such rows or with zero variance. Symmetric in i, j."""
    cdef Py_ssize_t n = x.shape[0], m = x.shape[1], t, i, j, k
    out_np = np.empty((n, m, m), dtype=np.asarray(x).dtype)
    cdef real[:, :, ::1] out = out_np
    # state of pair (i, j), j >= i, at [i, j]
    cdef Py_ssize_t[:, ::1] cnt = np.zeros((m, m), dtype=np.intp)
    cdef double[:, ::1] mx = np.zeros((m, m)), my = np.zeros((m, m))
    cdef double[:, ::1] sxx = np.zeros((m, m)), syy = np.zeros((m, m)), sxy = np.zeros((m, m))
    cdef double xi, yj, dx, dy, mx_new, my_new, r
    with nogil:
        for t in range(n):
            for i in range(m):
                # remove the row leaving the window
                if t >= window:
                    xi = x[t - window, i]
                    if not isnan(xi):
                        for j in range(i, m):
                            yj = x[t - window, j]
                            if isnan(yj):
                                continue
                            cnt[i, j] -= 1
                            k = cnt[i, j]
                            if k == 0:
                                mx[i, j] = 0; my[i, j] = 0
                                sxx[i, j] = 0; syy[i, j] = 0; sxy[i, j] = 0
                                continue
                            dx = xi - mx[i, j]
                            dy = yj - my[i, j]
                            mx_new = mx[i, j] - dx / k
                            my_new = my[i, j] - dy / k
                            sxx[i, j] -= (xi - mx_new) * dx
                            syy[i, j] -= (yj - my_new) * dy
                            sxy[i, j] -= (xi - mx_new) * dy
                            mx[i, j] = mx_new
                            my[i, j] = my_new
                # add the new row
                xi = x[t, i]
                if not isnan(xi):
                    for j in range(i, m):
                        yj = x[t, j]
                        if isnan(yj):
                            continue
                        cnt[i, j] += 1
                        add_pair(xi, yj, cnt[i, j], &mx[i, j], &my[i, j], &sxx[i, j],
                                 &syy[i, j], &sxy[i, j])
                for j in range(i, m):
                    if cnt[i, j] >= minp and cnt[i, j] > 1 and sxx[i, j] > 0 and syy[i, j] > 0:
                        r = sxy[i, j] / sqrt(sxx[i, j] * syy[i, j])
                        r = 1.0 if r > 1.0 else (-1.0 if r < -1.0 else r)
                    else:
                        r = NAN
                    out[t, i, j] = r
                    out[t, j, i] = r
    return out_np
