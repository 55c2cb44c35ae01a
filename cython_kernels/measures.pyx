# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Complexity and information measures over every window of every series.

Every ``roll_*`` kernel takes a C-contiguous ``(series, time)`` float64 array (each
series' values adjacent in memory) and a window length, and returns ``(series, time)``:
the measure of ``x[r, t - window + 1 : t + 1]`` at ``[r, t]``, NaN before the first full
window and for windows holding a NaN. A one-shot measure of a whole series is the same
kernel with ``window = len(x)``. Buffers are allocated once per call and reused across
windows; the loops hold no Python objects and run without the GIL.

Definitions follow the reference implementations the tests compare against: nolds 0.6.2
(``hurst_rs``, ``dfa``, ``lyap_r`` with ``fit="poly"``), antropy 0.2 (``perm_entropy``,
``sample_entropy``, ``higuchi_fd``, ``katz_fd``, ``detrended_fluctuation``) and PyInform
(``transfer_entropy``, ``mutual_info``). ``quantlab/measures.py`` owns validation,
defaults and labels.
"""
import numpy as np

from libc.math cimport INFINITY, NAN, fabs, isfinite, isnan, log, log2, log10, sqrt
from libc.float cimport DBL_EPSILON
from libc.stdlib cimport calloc, free, malloc, qsort


cdef double _slope(const double* xs, const double* ys, Py_ssize_t n) noexcept nogil:
    """Least-squares slope of ``ys`` on ``xs`` from centred sums (``np.polyfit(.., 1)[0]``)."""
    cdef Py_ssize_t i
    cdef double mx = 0.0, my = 0.0, sxx = 0.0, sxy = 0.0
    if n < 2:
        return NAN
    for i in range(n):
        mx += xs[i]
        my += ys[i]
    mx /= n
    my /= n
    for i in range(n):
        sxx += (xs[i] - mx) * (xs[i] - mx)
        sxy += (xs[i] - mx) * (ys[i] - my)
    return sxy / sxx


cdef void _window_ok(const double* x, Py_ssize_t n, Py_ssize_t window,
                     signed char* ok) noexcept nogil:
    """``ok[t]``: the window ending at ``t`` is full and holds no NaN or ±inf."""
    cdef Py_ssize_t t, last = -1
    for t in range(n):
        if not isfinite(x[t]):
            last = t
        ok[t] = t >= window - 1 and t - last >= window


# Largest count table (cells) a symbol kernel allocates; quantlab/measures.py refuses
# larger ones with a message first, this guards direct calls.
cdef enum:
    STATE_LIMIT = 16777216     # 2**24


cdef int _check(const double[:, ::1] x, Py_ssize_t window) except -1:
    # buffers are sized by the window: one longer than the series is the caller's
    # all-NaN case (quantlab/measures.py), never an allocation. Called before any
    # window-sized buffer is allocated.
    if window < 1 or (window > x.shape[1] and x.shape[1] > 0):
        raise ValueError(f"window must be in [1, {x.shape[1]}] (the series' length), "
                         f"got {window}")
    return 0


def _alloc(const double[:, ::1] x, Py_ssize_t window):
    _check(x, window)
    return np.full((x.shape[0], x.shape[1]), np.nan), np.empty(x.shape[1], dtype=np.int8)


# ---- the window driver, written once
# A measure of one window: ``x`` (and ``y`` for two-series measures) point at the
# window's first value, ``n`` is its length, ``ctx`` the measure's parameters and
# buffers. The per-window work is O(n) or more, so the indirect call costs nothing
# measurable (see the commit message for timings).
ctypedef double (*_measure)(const double* x, const double* y, Py_ssize_t n,
                            void* ctx) noexcept nogil


cdef object _windows(const double[:, ::1] x, const double[:, ::1] y, bint two,
                     Py_ssize_t window, _measure f, void* ctx):
    """``out[r, t] = f(x[r, t - window + 1 : t + 1], y[...], window, ctx)`` for every
    full window of every series that holds no NaN or ±inf (in x nor, if ``two``, in
    y); NaN elsewhere. ``y`` is ignored unless ``two`` (pass x)."""
    if two and (y.shape[0] != x.shape[0] or y.shape[1] != x.shape[1]):
        raise ValueError(f"the two series panels differ in shape: ({x.shape[0]}, "
                         f"{x.shape[1]}) and ({y.shape[0]}, {y.shape[1]})")
    out_np, ok_np = _alloc(x, window)
    ok2_np = np.empty_like(ok_np) if two else ok_np
    cdef double[:, ::1] out = out_np
    cdef signed char[::1] ok = ok_np, ok2 = ok2_np
    cdef Py_ssize_t r, t, s, T = x.shape[1]
    cdef const double* xr
    cdef const double* yr
    if T == 0:
        return out_np
    with nogil:
        for r in range(x.shape[0]):
            xr = &x[r, 0]
            yr = &y[r, 0]
            _window_ok(xr, T, window, &ok[0])
            if two:
                _window_ok(yr, T, window, &ok2[0])
            for t in range(window - 1, T):
                if ok[t] and (not two or ok2[t]):
                    s = t - window + 1
                    out[r, t] = f(xr + s, yr + s, window, ctx)
    return out_np


# ---- Hurst exponent by rescaled range (Hurst 1951; nolds.hurst_rs)

cdef extern from "simd.h" nogil:
    double drift_range(const double* p, const double* J, double mb, Py_ssize_t n)
    void argmin_update(const double* v, double* best, Py_ssize_t* arg, Py_ssize_t n,
                       Py_ssize_t a0, int or_equal)

# below this share of the prefix sum of squares, a block's sum of squares is recomputed
cdef double _PREFIX_TINY = 1e-8


cdef void _block_rs(const double* x, Py_ssize_t n, double* rng, double* ss) noexcept nogil:
    """Range of the cumulative deviations from the block's mean and their sum of squares,
    in two passes over the block's values (nolds' ``rs``), taken from x[0]: values a few
    ulps apart differ exactly (Sterbenz), where their mean rounds by as much as they
    differ."""
    cdef Py_ssize_t j
    cdef double m = 0.0, d, y = 0.0, q = 0.0, hi = -INFINITY, lo = INFINITY
    for j in range(n):
        m += x[j] - x[0]
    m /= n
    for j in range(n):
        d = (x[j] - x[0]) - m
        y += d
        q += d * d
        hi = y if y > hi else hi
        lo = y if y < lo else lo
    rng[0] = hi - lo
    ss[0] = q


cdef double _hurst(const double* x, Py_ssize_t N, const Py_ssize_t* nv,
                   const double* logexp, Py_ssize_t nn, double ddof,
                   double* P, double* Q, Py_ssize_t* chg, const double* J, double* xs,
                   double* ys) noexcept nogil:
    """Slope of log(mean R/S over the N // n blocks of length n) - logexp on log n.

    With prefix sums P, Q of the window's centred values and squares, a block's mean,
    variance and cumulative deviations y_j = P[s+j+1] - P[s] - (j+1)·mean need no running
    sum, so the range (P[s] cancels) is one vectorised max/min pass per block
    (``J[j] = j + 1``). A constant block (``chg[j]``: changes of value up to j) has a
    range of exactly 0 in nolds and is left out; from prefix sums it would be rounding
    noise over a zero deviation. A block whose spread is below the prefix sums' rounding
    (values a few ulps apart after a volatile stretch) is recomputed from its values
    (``_block_rs``): the prefix sums gave it a variance of 0 (an infinite R/S, NaN H) or
    of noise.
    """
    cdef Py_ssize_t i, n, s, j, k, cc, cnt = 0
    cdef double acc, mu, mb, rng, ss, cp, cq, inv
    cdef double m4[4]
    # the mean in four partial sums: one serial chain of N adds took ~1/8 of the kernel
    m4[0] = m4[1] = m4[2] = m4[3] = 0.0
    j = 0
    while j + 4 <= N:
        for k in range(4):
            m4[k] += x[j + k]
        j += 4
    while j < N:
        m4[0] += x[j]
        j += 1
    mu = ((m4[0] + m4[1]) + (m4[2] + m4[3])) / N
    P[0] = 0.0
    Q[0] = 0.0
    cc = 0
    chg[0] = 0
    cp = x[0] - mu     # running sums in registers: P, Q might alias x for the compiler
    cq = (x[0] - mu) * (x[0] - mu)
    P[1] = cp
    Q[1] = cq
    for j in range(1, N):   # the change count rides in the slack of the adds' latency
        cp = cp + (x[j] - mu)
        cq = cq + (x[j] - mu) * (x[j] - mu)
        cc += x[j] != x[j - 1]
        P[j + 1] = cp
        Q[j + 1] = cq
        chg[j] = cc
    for i in range(nn):
        n = nv[i]
        inv = 1.0 / n     # a multiply, not a division, before each block's scan
        acc = 0.0
        k = 0
        s = 0
        while s + n <= N:
            if chg[s + n - 1] == chg[s]:
                s += n
                continue
            mb = (P[s + n] - P[s]) * inv
            ss = Q[s + n] - Q[s] - n * mb * mb
            # Q's rounding is ~ eps * Q[s + n] per step: below 1e-8 of it ss has lost its
            # digits (normal blocks hold >= n / N of Q; a rare path, O(n) like the scan)
            if ss > _PREFIX_TINY * Q[s + n]:
                rng = drift_range(P + s + 1, J, mb, n)
            else:
                _block_rs(x + s, n, &rng, &ss)
            if rng != 0.0:    # blocks with a zero range are left out (as nolds)
                acc += rng / sqrt((ss if ss > 0.0 else 0.0) / (n - ddof))
                k += 1
            s += n
        if k:
            xs[cnt] = log(<double>n)
            ys[cnt] = log(acc / k) - logexp[i]
            cnt += 1
    return _slope(xs, ys, cnt)


cdef struct _HurstArgs:
    const Py_ssize_t* nv
    const double* logexp
    Py_ssize_t nn
    double ddof
    double* P
    double* Q
    Py_ssize_t* chg
    const double* J
    double* xs
    double* ys


cdef double _hurst_w(const double* x, const double* y, Py_ssize_t n, void* c) noexcept nogil:
    cdef _HurstArgs* a = <_HurstArgs*>c
    return _hurst(x, n, a.nv, a.logexp, a.nn, a.ddof, a.P, a.Q, a.chg, a.J, a.xs, a.ys)


def roll_hurst(const double[:, ::1] x, Py_ssize_t window, const Py_ssize_t[::1] nvals,
               const double[::1] logexp, bint unbiased):
    """Rolling R/S slope; the caller adds 0.5 when ``logexp`` holds the Anis-Lloyd-Peters
    expectation (the corrected Hurst exponent)."""
    cdef Py_ssize_t nn = nvals.shape[0]
    _check(x, window)
    if logexp.shape[0] != nn:
        raise ValueError("roll_hurst needs one log expectation per block size")
    if nn == 0:
        return _alloc(x, window)[0]
    cdef double[::1] xs = np.empty(nn + 1), ys = np.empty(nn + 1)
    cdef double[::1] P = np.empty(window + 1), Q = np.empty(window + 1)
    cdef double[::1] J = np.arange(1.0, window + 1.0)
    cdef Py_ssize_t[::1] chg = np.empty(window, dtype=np.intp)
    cdef _HurstArgs a = _HurstArgs(&nvals[0], &logexp[0], nn, 1.0 if unbiased else 0.0,
                                   &P[0], &Q[0], &chg[0], &J[0], &xs[0], &ys[0])
    return _windows(x, x, False, window, _hurst_w, &a)


cdef class HurstPlan:
    """What a one-shot Hurst exponent of a series of length n needs besides buffers: the
    block sizes, the log expected R/S and the ramp J, prepared once (the caller caches
    plans), so a ~15 µs call converts one array, not three, and fills no ramp. Read-only
    after construction: threads may share a plan (each call has its own buffers)."""
    cdef readonly Py_ssize_t n
    cdef const Py_ssize_t[::1] nv
    cdef const double[::1] le
    cdef double[::1] J

    def __init__(self, Py_ssize_t n, const Py_ssize_t[::1] nvals, const double[::1] logexp):
        if n < 2 or nvals.shape[0] == 0 or nvals.shape[0] != logexp.shape[0]:
            raise ValueError("HurstPlan needs n >= 2 and one log expectation per block size")
        self.n = n
        self.nv = nvals
        self.le = logexp
        self.J = np.arange(1.0, n + 1.0)

    def __call__(self, const double[::1] x, bint unbiased):
        """``roll_hurst``'s value for the whole of x (length n, no NaN)."""
        cdef Py_ssize_t N = self.n, nn = self.nv.shape[0]
        cdef double r
        cdef double* buf
        cdef Py_ssize_t* chg
        if x.shape[0] != N:
            raise ValueError(f"this plan is for series of {N} values, got {x.shape[0]}")
        buf = <double*>malloc((2 * N + 2 * nn + 4) * sizeof(double))
        chg = <Py_ssize_t*>malloc(N * sizeof(Py_ssize_t))
        if buf == NULL or chg == NULL:
            free(buf)
            free(chg)
            raise MemoryError()
        with nogil:
            # buf: P (N + 1), Q (N + 1), xs (nn + 1), ys (nn + 1)
            r = _hurst(&x[0], N, &self.nv[0], &self.le[0], nn, 1.0 if unbiased else 0.0,
                       buf, buf + N + 1, chg, &self.J[0], buf + 2 * N + 2,
                       buf + 2 * N + nn + 3)
        free(chg)
        free(buf)
        return r


# ---- Detrended fluctuation analysis, linear detrending (Peng et al. 1994)

cdef double _dfa(const double* x, Py_ssize_t N, const Py_ssize_t* nv, Py_ssize_t nn,
                 bint overlap, double* walk, double* xs, double* ys) noexcept nogil:
    """Slope of log F(n) on log n; F(n)² = mean over blocks of the residual variance of
    a least-squares line through the profile ``cumsum(x - mean)`` on the block."""
    cdef Py_ssize_t i, j, n, s, step, last, nseg, cnt = 0
    cdef double mu = 0.0, cum = 0.0, xbar, sxx, ybar, syy, sxy, dy, rss, tot, f
    cdef const double* p
    for j in range(N):
        mu += x[j]
    mu /= N
    for j in range(N):
        cum += x[j] - mu
        walk[j] = cum
    for i in range(nn):
        n = nv[i]
        # blocks start every n (antropy, nolds overlap=False) or every n // 2 strictly
        # before N - n (nolds overlap=True)
        step = n // 2 if overlap else n
        last = N - n - 1 if overlap else N - n
        xbar = 0.5 * (n - 1)
        sxx = n * (<double>n * n - 1.0) / 12.0
        tot = 0.0
        nseg = 0
        s = 0
        while s <= last:
            p = walk + s
            ybar = 0.0
            for j in range(n):
                ybar += p[j]
            ybar /= n
            syy = 0.0
            sxy = 0.0
            for j in range(n):
                dy = p[j] - ybar
                syy += dy * dy
                sxy += (j - xbar) * dy
            rss = syy - sxy * sxy / sxx
            # a straight box's rss is the subtraction's rounding (~eps syy; the profile of
            # a mean like 1/6 is not exact): 0, else log F ~ -35 of noise steered the fit
            tot += (rss if rss > 64.0 * DBL_EPSILON * syy else 0.0) / n
            nseg += 1
            s += step
        if nseg:
            f = sqrt(tot / nseg)
            if f != 0.0:
                xs[cnt] = log(<double>n)
                ys[cnt] = log(f)
                cnt += 1
    return _slope(xs, ys, cnt)


cdef struct _DfaArgs:
    const Py_ssize_t* nv
    Py_ssize_t nn
    bint overlap
    double* walk
    double* xs
    double* ys


cdef double _dfa_w(const double* x, const double* y, Py_ssize_t n, void* c) noexcept nogil:
    cdef _DfaArgs* a = <_DfaArgs*>c
    return _dfa(x, n, a.nv, a.nn, a.overlap, a.walk, a.xs, a.ys)


def roll_dfa(const double[:, ::1] x, Py_ssize_t window, const Py_ssize_t[::1] nvals,
             bint overlap):
    """Rolling DFA exponent alpha."""
    cdef Py_ssize_t nn = nvals.shape[0]
    _check(x, window)
    if nn == 0:
        return _alloc(x, window)[0]
    cdef double[::1] xs = np.empty(nn + 1), ys = np.empty(nn + 1), walk = np.empty(window)
    cdef _DfaArgs a = _DfaArgs(&nvals[0], nn, overlap, &walk[0], &xs[0], &ys[0])
    return _windows(x, x, False, window, _dfa_w, &a)


# ---- Higuchi (1988) and Katz (1988) fractal dimensions

cdef double _higuchi(const double* x, Py_ssize_t N, Py_ssize_t kmax,
                     double* xs, double* ys) noexcept nogil:
    """Slope of log L(k) on log(1/k), L(k) the mean normalised curve length at step k."""
    cdef Py_ssize_t k, m, j, nmax
    cdef double ll, l2, lm
    for k in range(1, kmax + 1):
        lm = 0.0
        for m in range(k):
            nmax = (N - m - 1) // k
            ll = 0.0
            l2 = 0.0             # two sums: half the add-latency chain
            for j in range(1, nmax, 2):
                ll += fabs(x[m + j * k] - x[m + (j - 1) * k])
                l2 += fabs(x[m + (j + 1) * k] - x[m + j * k])
            if nmax % 2:
                ll += fabs(x[m + nmax * k] - x[m + (nmax - 1) * k])
            ll += l2
            lm += ll / k * (N - 1) / (k * nmax)
        lm /= k
        xs[k - 1] = log(1.0 / k)
        ys[k - 1] = log(lm) if lm > 0 else -INFINITY
    return _slope(xs, ys, kmax)


cdef struct _HiguchiArgs:
    Py_ssize_t kmax
    double* xs
    double* ys


cdef double _higuchi_w(const double* x, const double* y, Py_ssize_t n,
                       void* c) noexcept nogil:
    cdef _HiguchiArgs* a = <_HiguchiArgs*>c
    return _higuchi(x, n, a.kmax, a.xs, a.ys)


def roll_higuchi(const double[:, ::1] x, Py_ssize_t window, Py_ssize_t kmax):
    """Rolling Higuchi fractal dimension."""
    cdef double[::1] xs = np.empty(kmax + 1), ys = np.empty(kmax + 1)
    cdef _HiguchiArgs a = _HiguchiArgs(kmax, &xs[0], &ys[0])
    return _windows(x, x, False, window, _higuchi_w, &a)


def higuchi(const double[::1] x, Py_ssize_t kmax):
    """``roll_higuchi``'s value for the whole of x (no NaN), without the panel's buffers."""
    cdef double r
    cdef double* buf
    if kmax < 1 or x.shape[0] < 2 * kmax:
        raise ValueError(f"higuchi needs 1 <= kmax <= len(x) / 2, got kmax={kmax}")
    buf = <double*>malloc(2 * kmax * sizeof(double))
    if buf == NULL:
        raise MemoryError()
    with nogil:
        r = _higuchi(&x[0], x.shape[0], kmax, buf, buf + kmax)
    free(buf)
    return r


cdef double _katz(const double* x, Py_ssize_t N) noexcept nogil:
    """log10(L / a) / log10(d / a): L curve length, a mean step, d max distance from x0."""
    cdef Py_ssize_t j
    cdef double L = 0.0, d = 0.0, a, v
    for j in range(1, N):
        L += fabs(x[j] - x[j - 1])
        v = fabs(x[j] - x[0])
        d = v if v > d else d
    a = L / (N - 1)
    return log10(L / a) / log10(d / a)


cdef double _katz_w(const double* x, const double* y, Py_ssize_t n, void* c) noexcept nogil:
    return _katz(x, n)


def roll_katz(const double[:, ::1] x, Py_ssize_t window):
    """Rolling Katz fractal dimension."""
    return _windows(x, x, False, window, _katz_w, NULL)


# ---- Sample entropy (Richman & Moorman 2000), nats; antropy's O(N²) counting scheme

cdef double _sampen(const double* s, Py_ssize_t size, Py_ssize_t order,
                    double r) noexcept nogil:
    """-ln(A / B): B pairs of length-``order`` templates within Chebyshev distance < r,
    A the pairs that stay within r one step further."""
    cdef Py_ssize_t offset, idx, n_num, n_den, prev_in, out_d, in_d, d
    cdef double numerator = 0.0, denominator = 0.0
    for offset in range(1, size - order):
        n_num = fabs(s[order] - s[order + offset]) >= r
        n_den = 0
        for idx in range(order):
            d = fabs(s[idx] - s[idx + offset]) >= r
            n_num += d
            n_den += d
        numerator += n_num == 0
        denominator += n_den == 0
        prev_in = fabs(s[order] - s[offset + order]) >= r
        for idx in range(1, size - offset - order):
            out_d = fabs(s[idx - 1] - s[idx + offset - 1]) >= r
            in_d = fabs(s[idx + order] - s[idx + offset + order]) >= r
            n_num += in_d - out_d
            n_den += prev_in - out_d
            prev_in = in_d
            numerator += n_num == 0
            denominator += n_den == 0
    if denominator == 0:
        return NAN          # no template pair matched: undefined
    if numerator == 0:
        return INFINITY
    return -log(numerator / denominator)


cdef double _std0(const double* x, Py_ssize_t n) noexcept nogil:
    """std(x, ddof=0), two-pass on x - x[0]: the differences are exact for a series at a
    high level (prices near 1e15), where the plain sum's rounding gave a mean off by
    tens and r = 0.2·std far too large (sample entropy 0.23 instead of 0.37)."""
    cdef Py_ssize_t j
    cdef double x0 = x[0], mu = 0.0, ss = 0.0, d
    for j in range(n):
        mu += x[j] - x0
    mu /= n
    for j in range(n):
        d = (x[j] - x0) - mu
        ss += d * d
    return sqrt(ss / n)


cdef struct _SampenArgs:
    Py_ssize_t order
    double r


cdef double _sampen_w(const double* x, const double* y, Py_ssize_t n, void* c) noexcept nogil:
    cdef _SampenArgs* a = <_SampenArgs*>c
    return _sampen(x, n, a.order, a.r if a.r >= 0 else 0.2 * _std0(x, n))


def roll_sampen(const double[:, ::1] x, Py_ssize_t window, Py_ssize_t order, double r):
    """Rolling sample entropy; ``r < 0`` means 0.2 x the window's std (ddof=0)."""
    cdef _SampenArgs a = _SampenArgs(order, r)
    return _windows(x, x, False, window, _sampen_w, &a)


# ---- Permutation entropy (Bandt & Pompe 2002), bits
# Each position's ordinal pattern is coded once (Lehmer code; ties keep time order, as a
# stable argsort); the window's pattern counts and S = Σ c·log2(c) slide in O(1).

def roll_permen(const double[:, ::1] x, Py_ssize_t window, Py_ssize_t order,
                Py_ssize_t delay, bint normalize):
    """Rolling permutation entropy -Σ p·log2(p) over the window's ordinal patterns."""
    out_np, ok_np = _alloc(x, window)
    cdef double[:, ::1] out = out_np
    cdef signed char[::1] ok = ok_np
    cdef Py_ssize_t T = x.shape[1], span = (order - 1) * delay, n = window - span
    cdef Py_ssize_t i, t, a, b, code, less, p, nfact = 1
    for i in range(2, order + 1):
        nfact *= i
    if n < 1:
        raise ValueError("window too short for this order and delay")
    cdef Py_ssize_t[::1] fact = np.ones(order + 1, dtype=np.intp)
    for i in range(1, order + 1):
        fact[i] = fact[i - 1] * i
    cdef Py_ssize_t[::1] codes = np.empty(max(T, 1), dtype=np.intp)
    cdef Py_ssize_t[::1] counts = np.zeros(nfact, dtype=np.intp)
    cnt_np = np.arange(n + 2, dtype=float)
    cnt_np[1:] *= np.log2(cnt_np[1:])
    cdef double[::1] clogc = cnt_np
    cdef double S, dn = n, norm = log2(<double>nfact) if normalize else 1.0, h
    cdef const double* xr
    if T == 0:
        return out_np
    with nogil:
        for i in range(x.shape[0]):
            xr = &x[i, 0]
            _window_ok(xr, T, window, &ok[0])
            for t in range(T - span):
                code = 0
                for a in range(order):
                    less = 0
                    for b in range(a + 1, order):
                        less += xr[t + b * delay] < xr[t + a * delay]
                    code += less * fact[order - 1 - a]
                    if not isfinite(xr[t + a * delay]):   # as NaN: never counted
                        code = -1
                        break
                codes[t] = code
            for a in range(nfact):
                counts[a] = 0
            S = 0.0
            for t in range(span, T):
                p = t - span                 # the pattern entering the window
                if codes[p] >= 0:
                    S += clogc[counts[codes[p]] + 1] - clogc[counts[codes[p]]]
                    counts[codes[p]] += 1
                p = t - window               # the pattern leaving it
                if p >= 0 and codes[p] >= 0:
                    S += clogc[counts[codes[p]] - 1] - clogc[counts[codes[p]]]
                    counts[codes[p]] -= 1
                if ok[t]:
                    h = (log2(dn) - S / dn) / norm
                    # the sliding S leaves rounding (a constant window gave ±8.9e-16);
                    # no true entropy lies in (0, 1e-12): the least is ~log2(n)/n
                    h = 0.0 if h < 1e-12 else h
                    if normalize and h > 1.0:
                        h = 1.0
                    out[i, t] = h
    return out_np


# ---- Shannon entropy, mutual information, transfer entropy (bits) on symbols
# ``bins == 0``: the values are non-negative integer symbols already. Otherwise each
# window's values are binned anew (no look-ahead): equal-width bins over the window's
# [min, max] (the max in the last bin), or equal-count bins by rank (ties averaged: equal values share a bin).

cdef struct _Pair:
    double v
    Py_ssize_t i


cdef int _cmp_pair(const void* a, const void* b) noexcept nogil:
    cdef const _Pair* p = <const _Pair*>a
    cdef const _Pair* q = <const _Pair*>b
    if p.v < q.v:
        return -1
    if p.v > q.v:
        return 1
    return (p.i > q.i) - (p.i < q.i)


cdef void _symbolize(const double* x, Py_ssize_t n, Py_ssize_t bins, bint quantile,
                     Py_ssize_t* sym, _Pair* tmp) noexcept nogil:
    cdef Py_ssize_t j, b, e, m
    cdef double lo = INFINITY, hi = -INFINITY, half
    if bins == 0:
        for j in range(n):
            sym[j] = <Py_ssize_t>x[j]
    elif quantile:
        for j in range(n):
            tmp[j].v = x[j]
            tmp[j].i = j
        qsort(tmp, n, sizeof(_Pair), _cmp_pair)
        # equal values share a bin: a run of ties at sorted positions [j, e) takes the
        # bin of its average rank (j + e - 1) / 2, i.e. floor(rank·bins / n) as with
        # scipy's rankdata(method="average") - 1; without ties this is j·bins // n.
        # (Splitting ties by position gave a constant series log2(bins) bits.)
        j = 0
        while j < n:
            e = j + 1
            while e < n and tmp[e].v == tmp[j].v:
                e += 1
            b = <Py_ssize_t>((<unsigned long long>(j + e - 1) * <unsigned long long>bins)
                             // (2 * <unsigned long long>n))
            for m in range(j, e):
                sym[tmp[m].i] = b
            j = e
    else:
        for j in range(n):
            lo = x[j] if x[j] < lo else lo
            hi = x[j] if x[j] > hi else hi
        # halves: hi - lo overflows for a range beyond 1.8e308 (and NaN from inf/inf
        # cast to an index wrote out of bounds); halving is exact, so bins are unchanged
        half = 0.5 * hi - 0.5 * lo
        for j in range(n):
            b = <Py_ssize_t>((0.5 * x[j] - 0.5 * lo) / half * bins) if hi > lo else 0
            sym[j] = b if b < bins else bins - 1


cdef double _entropy_of(Py_ssize_t* counts, Py_ssize_t k, const Py_ssize_t* idx,
                        Py_ssize_t n) noexcept nogil:
    """-Σ p·log2(p) of the ``n`` observations whose cells (of ``k``) are ``idx``, from
    the counts already added to ``counts``, which are zeroed again on the way. A table
    of up to 4n cells is scanned in cell order (faster); a larger one through ``idx``,
    O(n) per window however large the table (scanning a table of base cells every
    window was O(base·windows)). One occupied cell (a constant window) is exactly 0:
    log2(n) - n·log2(n) / n left ±1.8e-15 (a negative entropy) for some n."""
    cdef Py_ssize_t j, c
    cdef double s = 0.0
    cdef bint one = False
    if k <= 4 * n:
        for j in range(k):
            c = counts[j]
            if c:
                s += c * log2(<double>c)
                one = c == n
                counts[j] = 0
    else:
        for j in range(n):
            c = counts[idx[j]]
            if c:
                s += c * log2(<double>c)
                one = c == n
                counts[idx[j]] = 0
    return 0.0 if one else log2(<double>n) - s / n


cdef class _Symbols:
    """Reusable per-window symbol and count buffers."""
    cdef Py_ssize_t[::1] sym
    cdef object pairs
    cdef _Pair* tmp

    def __cinit__(self, Py_ssize_t n):
        self.sym = np.empty(max(n, 1), dtype=np.intp)
        self.pairs = np.empty(max(n, 1) * sizeof(_Pair), dtype=np.uint8)
        cdef unsigned char[::1] buf = self.pairs
        self.tmp = <_Pair*>&buf[0]


cdef struct _SymbolArgs:
    # shannon: x's symbols and counts; mutual: also y's and the joint ones
    Py_ssize_t bins
    bint quantile
    Py_ssize_t* sx
    Py_ssize_t* sy
    Py_ssize_t* sxy
    _Pair* tx
    _Pair* ty
    Py_ssize_t* cx
    Py_ssize_t* cy
    Py_ssize_t* cxy
    Py_ssize_t bx
    Py_ssize_t by


cdef double _shannon_w(const double* x, const double* y, Py_ssize_t n,
                       void* c) noexcept nogil:
    cdef _SymbolArgs* a = <_SymbolArgs*>c
    cdef Py_ssize_t j
    _symbolize(x, n, a.bins, a.quantile, a.sx, a.tx)
    for j in range(n):
        a.cx[a.sx[j]] += 1
    return _entropy_of(a.cx, a.bx, a.sx, n)


def roll_shannon(const double[:, ::1] x, Py_ssize_t window, Py_ssize_t bins, bint quantile,
                 Py_ssize_t base):
    """Rolling Shannon entropy of the window's symbols; ``base`` = number of symbols."""
    if base < 1 or base > max(<Py_ssize_t>STATE_LIMIT, x.shape[0] * x.shape[1]):
        raise ValueError(f"base must be in [1, max(2**24, x.size)], got {base}")
    _check(x, window)
    cdef _Symbols S = _Symbols(window)
    cdef Py_ssize_t[::1] counts = np.zeros(base, dtype=np.intp)
    cdef _SymbolArgs a
    a.bins, a.quantile, a.bx = bins, quantile, base
    a.sx, a.tx, a.cx = &S.sym[0], S.tmp, &counts[0]
    return _windows(x, x, False, window, _shannon_w, &a)


cdef double _mutual_w(const double* x, const double* y, Py_ssize_t n,
                      void* c) noexcept nogil:
    cdef _SymbolArgs* a = <_SymbolArgs*>c
    cdef Py_ssize_t j
    cdef double hx, hy, mi
    _symbolize(x, n, a.bins, a.quantile, a.sx, a.tx)
    _symbolize(y, n, a.bins, a.quantile, a.sy, a.ty)
    for j in range(n):
        a.sxy[j] = a.sx[j] * a.by + a.sy[j]
        a.cx[a.sx[j]] += 1
        a.cy[a.sy[j]] += 1
        a.cxy[a.sxy[j]] += 1
    hx = _entropy_of(a.cx, a.bx, a.sx, n)
    hy = _entropy_of(a.cy, a.by, a.sy, n)
    mi = hx + hy - _entropy_of(a.cxy, a.bx * a.by, a.sxy, n)
    # I(X; Y) >= 0 (the plug-in estimate is a KL divergence): a difference below 0 is
    # the rounding of three entropies (down to -5e-15 where the sample is independent)
    return 0.0 if mi < 0.0 else mi


def roll_mutual(const double[:, ::1] x, const double[:, ::1] y, Py_ssize_t window,
                Py_ssize_t bins, bint quantile, Py_ssize_t bx, Py_ssize_t by):
    """Rolling mutual information I(X; Y) = H(X) + H(Y) - H(X, Y)."""
    if bx < 1 or by < 1 or bx > STATE_LIMIT // by:
        raise ValueError(f"bx * by must be in [1, 2**24], got {bx} * {by}")
    _check(x, window)
    cdef _Symbols SX = _Symbols(window), SY = _Symbols(window), SXY = _Symbols(window)
    cdef Py_ssize_t[::1] cx = np.zeros(bx, dtype=np.intp), cy = np.zeros(by, dtype=np.intp)
    cdef _SymbolArgs a
    a.bins, a.quantile, a.bx, a.by = bins, quantile, bx, by
    a.sx, a.sy, a.sxy, a.tx, a.ty = &SX.sym[0], &SY.sym[0], &SXY.sym[0], SX.tmp, SY.tmp
    a.cx, a.cy = &cx[0], &cy[0]
    # calloc: lazily zeroed pages (see roll_transfer)
    a.cxy = <Py_ssize_t*>calloc(bx * by, sizeof(Py_ssize_t))
    if a.cxy == NULL:
        raise MemoryError()
    try:
        return _windows(x, y, True, window, _mutual_w, &a)
    finally:
        free(a.cxy)


cdef struct _TransferArgs:
    Py_ssize_t k, bins, bs, bt, nh
    bint quantile
    Py_ssize_t* ss          # source and target symbols, target histories
    Py_ssize_t* st
    Py_ssize_t* hist
    _Pair* ts
    _Pair* tt
    Py_ssize_t* chsn        # counts of (history, source, next), (history, source),
    Py_ssize_t* chs         # (history, next), (history)
    Py_ssize_t* chn
    Py_ssize_t* ch


cdef double _transfer_w(const double* src, const double* tgt, Py_ssize_t window,
                        void* ctx) noexcept nogil:
    """One window's TE; every count it adds is zeroed again before it returns."""
    cdef _TransferArgs* a = <_TransferArgs*>ctx
    cdef Py_ssize_t k = a.k, bs = a.bs, bt = a.bt, nh = a.nh, i, j, h, c, hs, hn, cell
    cdef Py_ssize_t* ss = a.ss
    cdef Py_ssize_t* st = a.st
    cdef Py_ssize_t* hist = a.hist
    cdef Py_ssize_t* chsn = a.chsn
    cdef Py_ssize_t* chs = a.chs
    cdef Py_ssize_t* chn = a.chn
    cdef Py_ssize_t* ch = a.ch
    cdef double te = 0.0
    _symbolize(src, window, a.bins, a.quantile, ss, a.ts)
    _symbolize(tgt, window, a.bins, a.quantile, st, a.tt)
    for j in range(k, window):
        h = 0
        for i in range(j - k, j):
            h = h * bt + st[i]
        hist[j] = h
        chsn[(h * bs + ss[j - 1]) * bt + st[j]] += 1
        chs[h * bs + ss[j - 1]] += 1
        chn[h * bt + st[j]] += 1
        ch[h] += 1
    if nh * bs * bt <= 4 * (window - k):   # small table: scan in cell order
        for h in range(nh):
            if ch[h] == 0:
                continue
            for i in range(bs):
                for j in range(bt):
                    c = chsn[(h * bs + i) * bt + j]
                    if c:
                        te += c * log2(<double>c * ch[h] / (<double>chs[h * bs + i]
                                                           * chn[h * bt + j]))
                        chsn[(h * bs + i) * bt + j] = 0
    else:   # each (history, source, next) cell once, zeroed when first met
        for j in range(k, window):
            h = hist[j]
            hs = h * bs + ss[j - 1]
            hn = h * bt + st[j]
            cell = hs * bt + st[j]
            c = chsn[cell]
            if c:
                te += c * log2(<double>c * ch[h] / (<double>chs[hs] * chn[hn]))
                chsn[cell] = 0
    for j in range(k, window):
        h = hist[j]
        chs[h * bs + ss[j - 1]] = 0
        chn[h * bt + st[j]] = 0
        ch[h] = 0
    return te / <double>(window - k)


def roll_transfer(const double[:, ::1] src, const double[:, ::1] tgt, Py_ssize_t window,
                  Py_ssize_t k, Py_ssize_t bins, bint quantile, Py_ssize_t bs, Py_ssize_t bt):
    """Rolling transfer entropy source -> target with target history length ``k``
    (Schreiber 2000):

        TE = Σ p(x_{t+1}, x_t^(k), y_t) log2 [p(x_{t+1} | x_t^(k), y_t) / p(x_{t+1} | x_t^(k))]

    over the window's ``window - k`` transitions (PyInform's estimator). The counts are
    dense tables over (history, source, next) of ``bt**k * bs * bt`` cells, at most
    2**24 (bt**k overflowed for binary k = 64: tables of size 0, a segfault); each
    window touches and re-zeroes only the cells of its transitions.
    """
    cdef Py_ssize_t nh = 1, i
    if k < 1 or bs < 1 or bt < 1:
        raise ValueError("k, bs and bt must be >= 1")
    for i in range(k):
        if nh > STATE_LIMIT // bt:
            break
        nh *= bt
    if nh > STATE_LIMIT // bt or nh * bt > STATE_LIMIT // bs:
        raise ValueError(f"bt**k * bs * bt exceeds 2**24 states (bt={bt}, k={k}, bs={bs})")
    if window <= k:
        raise ValueError("window must be longer than the history length k")
    _check(src, window)
    cdef _Symbols SS = _Symbols(window), ST = _Symbols(window), SH = _Symbols(window)
    cdef _TransferArgs a
    a.k, a.bins, a.quantile, a.bs, a.bt, a.nh = k, bins, quantile, bs, bt, nh
    a.ss, a.st, a.hist, a.ts, a.tt = &SS.sym[0], &ST.sym[0], &SH.sym[0], SS.tmp, ST.tmp
    # calloc, not np.zeros: numpy advises huge pages for large arrays, and each scattered
    # cell a window touches then zeroes 2 MB (binary k = 22: 1 s instead of 1 ms)
    a.chsn = <Py_ssize_t*>calloc(nh * bs * bt, sizeof(Py_ssize_t))
    a.chs = <Py_ssize_t*>calloc(nh * bs, sizeof(Py_ssize_t))
    a.chn = <Py_ssize_t*>calloc(nh * bt, sizeof(Py_ssize_t))
    a.ch = <Py_ssize_t*>calloc(nh, sizeof(Py_ssize_t))
    try:
        if a.chsn == NULL or a.chs == NULL or a.chn == NULL or a.ch == NULL:
            raise MemoryError()
        return _windows(src, tgt, True, window, _transfer_w, &a)
    finally:
        free(a.chsn)
        free(a.chs)
        free(a.chn)
        free(a.ch)


# ---- Largest Lyapunov exponent (Rosenstein, Collins & De Luca 1993; nolds.lyap_r)
# Orbit vector i = (x_i, x_{i+lag}, ..., x_{i+(emb-1)lag}). In a window of m vectors the
# first ntraj = m - traj_len + 1 are trajectory starts; each one's nearest neighbour
# (Euclidean, |i - j| > min_tsep, among the window's starts) is followed for traj_len
# steps and the slope of mean log distance on steps is the exponent. Distances between
# vectors do not depend on the window, so they are computed once per series in a band
# D[i, d] = |v_i - v_{i+d}| (d < ntraj), and each vector's neighbour for every window that
# holds it comes from one suffix-min (left) and one prefix-min (right) scan: O(ntraj) per
# vector instead of O(ntraj) per vector and window.

cdef inline double _d2(const double* x, Py_ssize_t i, Py_ssize_t j, Py_ssize_t emb,
                       Py_ssize_t lag) noexcept nogil:
    cdef Py_ssize_t e
    cdef double s = 0.0, v
    for e in range(emb):
        v = x[i + e * lag] - x[j + e * lag]
        s += v * v
    return s


cdef double _lyap_fit(double* div, const double* kf, const double* ks, double* kx,
                      Py_ssize_t traj_len) noexcept nogil:
    """Slope of the mean log divergence ``div / kf`` on the step, over steps with data."""
    cdef Py_ssize_t kk, nfin = 0
    for kk in range(traj_len):
        if kf[kk] > 0:
            kx[nfin] = ks[kk]
            div[nfin] = div[kk] / kf[kk]
            nfin += 1
    return _slope(kx, div, nfin) if nfin else -INFINITY


cdef double _lyap_one(const double* x, Py_ssize_t ntraj, Py_ssize_t emb, Py_ssize_t lag,
                      Py_ssize_t min_tsep, Py_ssize_t traj_len, double* sq,
                      double* dist, double* rbest, Py_ssize_t* rarg, double* lbest,
                      Py_ssize_t* larg, double* div, double* kf, const double* ks,
                      double* kx) noexcept nogil:
    """One window (a whole series), diagonal by diagonal: for the offset d, the squared
    coordinate differences sq[k] = (x[k] - x[k+d])² serve every pair (i, i + d) at once,
    summed coordinate by coordinate as _d2 sums them, so every distance has the bits of
    the rolling path's (lyapunov_r is rolling_lyapunov_r's last value; summing pairs of
    coordinates first once picked other neighbours at near ties); each pair is i's right
    and (i + d)'s left candidate. All loops are contiguous and vectorised.
    np.argmin's tie rule: the smallest j on the right (d ascending, strict <), the
    smallest i on the left (i descending, <=), and a left tie beats the right."""
    cdef Py_ssize_t i, d, e, kk, j, L, span = (emb - 1) * lag
    cdef double v
    cdef double* acc
    for i in range(ntraj):
        rbest[i] = INFINITY
        lbest[i] = INFINITY
        rarg[i] = -1
        larg[i] = -1
    for kk in range(traj_len):
        div[kk] = 0.0
        kf[kk] = 0.0
    for d in range(min_tsep + 1, ntraj):
        L = ntraj - d
        for i in range(L + span):
            v = x[i] - x[i + d]
            sq[i] = v * v
        # coordinates added in _d2's order (roll_lyap's rolling bits), three per pass
        # over dist: few passes, as when pairs were summed first (emb 10: 1.45x the
        # time with one coordinate per pass)
        acc = sq
        e = 1
        while e + 2 < emb:
            for i in range(L):
                dist[i] = ((acc[i] + sq[i + e * lag]) + sq[i + (e + 1) * lag]) \
                    + sq[i + (e + 2) * lag]
            acc = dist
            e += 3
        while e < emb:
            for i in range(L):
                dist[i] = acc[i] + sq[i + e * lag]
            acc = dist
            e += 1
        if emb == 1:
            for i in range(L):
                dist[i] = sq[i]
        argmin_update(dist, rbest, rarg, L, d, 0)
        argmin_update(dist, lbest + d, larg + d, L, 0, 1)
    for i in range(ntraj):
        j = larg[i] if (larg[i] >= 0 and lbest[i] <= rbest[i]) else rarg[i]
        for kk in range(traj_len):
            v = _d2(x, i + kk, j + kk, emb, lag)
            if v > 0.0:         # zero distances are left out (as nolds)
                div[kk] += 0.5 * log(v)
                kf[kk] += 1.0
    return _lyap_fit(div, kf, ks, kx, traj_len)


cdef struct _LyapArgs:
    Py_ssize_t ntraj, emb, lag, min_tsep, traj_len
    double* sq
    double* dist
    double* rbest
    Py_ssize_t* rarg
    double* lbest
    Py_ssize_t* larg
    double* div
    double* kf
    const double* ks
    double* kx


cdef double _lyap_w(const double* x, const double* y, Py_ssize_t n, void* c) noexcept nogil:
    cdef _LyapArgs* a = <_LyapArgs*>c
    return _lyap_one(x, a.ntraj, a.emb, a.lag, a.min_tsep, a.traj_len, a.sq, a.dist,
                     a.rbest, a.rarg, a.lbest, a.larg, a.div, a.kf, a.ks, a.kx)


cdef void _lyap_neighbours(const double[:, ::1] band, Py_ssize_t[:, ::1] nb, Py_ssize_t M,
                           Py_ssize_t m, Py_ssize_t ntraj, Py_ssize_t min_tsep,
                           double* sufv, Py_ssize_t* sufa, double* prev,
                           Py_ssize_t* prea) noexcept nogil:
    """``nb[i, s - i + ntraj - 1]``: vector i's nearest neighbour (np.argmin's tie
    rule) among the trajectory starts of the window starting at s, from the band of
    squared distances: one suffix-min (left) and one prefix-min (right) scan per i."""
    cdef Py_ssize_t i, j, s, lo, hi, rs, re, a, e0
    cdef double cur, v
    for i in range(M):
        lo = max(0, i - ntraj + 1)
        hi = min(i, M - m)
        if lo > hi:
            continue
        # left candidates j in [lo, i - min_tsep - 1]: suffix minima, the
        # smallest j winning ties (np.argmin's first minimum)
        cur = INFINITY
        a = -1
        j = i - min_tsep - 1
        while j >= lo:
            v = band[j, i - j]
            if v <= cur:
                cur = v
                a = j
            sufv[j - lo] = cur
            sufa[j - lo] = a
            j -= 1
        # right candidates j in [i + min_tsep + 1, hi + ntraj - 1]: prefix minima
        rs = i + min_tsep + 1
        re = hi + ntraj - 1
        cur = INFINITY
        a = -1
        for j in range(rs, re + 1):
            v = band[i, j - i]
            if v < cur:
                cur = v
                a = j
            prev[j - rs] = cur
            prea[j - rs] = a
        for s in range(lo, hi + 1):
            e0 = s + ntraj - 1 - rs          # right prefix index for this window
            if s <= i - min_tsep - 1 and (e0 < 0 or sufv[s - lo] <= prev[e0]):
                nb[i, s - i + ntraj - 1] = sufa[s - lo]
            else:
                nb[i, s - i + ntraj - 1] = prea[e0]


def roll_lyap(const double[:, ::1] x, Py_ssize_t window, Py_ssize_t emb, Py_ssize_t lag,
              Py_ssize_t min_tsep, Py_ssize_t traj_len):
    """Rolling largest Lyapunov exponent per step (divide by the sampling period)."""
    _check(x, window)
    cdef Py_ssize_t T = x.shape[1], span = (emb - 1) * lag
    cdef Py_ssize_t m = window - span, ntraj = m - traj_len + 1, M = T - span
    if ntraj < 2 * min_tsep + 2:
        raise ValueError("window too short for emb_dim, lag, min_tsep and trajectory_len")
    if M < m:
        return _alloc(x, window)[0]
    cdef Py_ssize_t nwin = M - m + 1
    cdef double[::1] div = np.empty(traj_len), ks = np.arange(traj_len, dtype=float)
    cdef double[::1] kf = np.empty(traj_len), kx = np.empty(traj_len)
    cdef Py_ssize_t r
    cdef double[::1] sq, dist, rbest, lbest
    cdef Py_ssize_t[::1] rarg, larg
    cdef _LyapArgs args
    if nwin == 1:   # one window (a one-shot exponent): the driver, O(ntraj) buffers
        sq, dist = np.empty(T), np.empty(T)
        rbest, lbest = np.empty(ntraj), np.empty(ntraj)
        rarg, larg = np.empty(ntraj, dtype=np.intp), np.empty(ntraj, dtype=np.intp)
        args = _LyapArgs(ntraj, emb, lag, min_tsep, traj_len, &sq[0], &dist[0],
                         &rbest[0], &rarg[0], &lbest[0], &larg[0], &div[0], &kf[0], &ks[0],
                         &kx[0])
        return _windows(x, x, False, window, _lyap_w, &args)
    out_np, ok_np = _alloc(x, window)
    cdef double[:, ::1] out = out_np
    cdef signed char[::1] ok = ok_np
    # squared distances at first; turned into log distances in place when the windows
    # would otherwise take more logs than the band holds (always, when rolling)
    cdef double[:, ::1] band = np.empty((M, ntraj))
    cdef Py_ssize_t[:, ::1] nb = np.empty((M, ntraj), dtype=np.intp)
    cdef double[::1] sufv = np.empty(ntraj), prev = np.empty(ntraj)
    cdef Py_ssize_t[::1] sufa = np.empty(ntraj, dtype=np.intp)
    cdef Py_ssize_t[::1] prea = np.empty(ntraj, dtype=np.intp)
    cdef bint logged = nwin * ntraj * traj_len > M * ntraj
    cdef Py_ssize_t i, d, j, s, a, kk
    cdef double v
    cdef const double* xr
    with nogil:
        for r in range(x.shape[0]):
            xr = &x[r, 0]
            _window_ok(xr, T, window, &ok[0])
            for i in range(M):
                for d in range(min_tsep + 1, min(ntraj, M - i)):
                    band[i, d] = _d2(xr, i, i + d, emb, lag)
            _lyap_neighbours(band, nb, M, m, ntraj, min_tsep, &sufv[0], &sufa[0], &prev[0],
                             &prea[0])
            if logged:
                for i in range(M):
                    for d in range(min_tsep + 1, min(ntraj, M - i)):
                        band[i, d] = 0.5 * log(band[i, d])
            for s in range(nwin):
                if not ok[s + window - 1]:
                    continue
                for kk in range(traj_len):
                    div[kk] = 0.0
                    kf[kk] = 0.0
                for i in range(s, s + ntraj):
                    j = nb[i, s - i + ntraj - 1]
                    a = i if i < j else j
                    d = j - i if j > i else i - j
                    for kk in range(traj_len):
                        v = band[a + kk, d] if logged else 0.5 * log(band[a + kk, d])
                        if v != -INFINITY:   # zero distances are left out (as nolds)
                            div[kk] += v
                            kf[kk] += 1.0
                out[r, s + window - 1] = _lyap_fit(&div[0], &kf[0], &ks[0], &kx[0], traj_len)
    return out_np


# ---- Largest Lyapunov exponent, one new value per series at a time (live signals)
# The state of a series' last window: its values (written twice into a 2 x window ring so
# the window is one slice), each trajectory start's nearest neighbour, squared distance
# and traj_len log distances, all in rings indexed by the start's absolute time mod
# ntraj. A new value adds one start: it is a candidate for every start (the largest j, so
# it wins only strictly, np.argmin's first minimum) and gets its own neighbour, O(ntraj);
# the start that leaves forces a rescan only on the starts it was the neighbour of (about
# one). Distances are _d2's and the sums run in roll_lyap's order: the same bits.

cdef Py_ssize_t _lyap_argmin(const double* x, Py_ssize_t q, Py_ssize_t ntraj,
                             Py_ssize_t emb, Py_ssize_t lag, Py_ssize_t min_tsep,
                             double* best) noexcept nogil:
    """Start q's nearest neighbour among starts 0..ntraj-1 more than min_tsep away (the
    smallest j of the minimum, as np.argmin); its squared distance in ``best``."""
    cdef Py_ssize_t j, a = -1
    cdef double v, b = INFINITY
    for j in range(q - min_tsep):
        v = _d2(x, j, q, emb, lag)
        if a < 0 or v < b:
            b = v
            a = j
    for j in range(q + min_tsep + 1, ntraj):
        v = _d2(x, q, j, emb, lag)
        if a < 0 or v < b:
            b = v
            a = j
    best[0] = b
    return a


cdef inline void _lyap_traj(const double* x, Py_ssize_t q, Py_ssize_t j, Py_ssize_t emb,
                            Py_ssize_t lag, Py_ssize_t traj_len, double* lv) noexcept nogil:
    """Log distances of the pair (q, j) followed traj_len steps (-inf: a zero distance)."""
    cdef Py_ssize_t kk
    for kk in range(traj_len):
        lv[kk] = 0.5 * log(_d2(x, q + kk, j + kk, emb, lag))


cdef double _lyap_step(double* xb, double* best, Py_ssize_t* nb, double* lv,
                       Py_ssize_t* bad, signed char* built, double value, Py_ssize_t t,
                       Py_ssize_t window, Py_ssize_t ntraj, Py_ssize_t emb, Py_ssize_t lag,
                       Py_ssize_t min_tsep, Py_ssize_t traj_len, double* div, double* kf,
                       const double* ks, double* kx, double* mx) noexcept nogil:
    """One series: push the value at time t, return the exponent of the window ending at
    t (NaN while short or holding a NaN or ±inf) and its max |value| in ``mx``."""
    cdef Py_ssize_t q, j, slot, a, s0 = t - window + 1, qn = ntraj - 1
    cdef double v, b
    cdef const double* x
    xb[t % window] = value
    xb[t % window + window] = value
    mx[0] = NAN
    if not isfinite(value):
        bad[0] = t
        built[0] = 0
        return NAN
    if s0 < 0 or t - bad[0] < window:
        return NAN
    x = xb + (t + 1) % window              # the window's first value, time s0
    if not built[0]:   # the first clean window: every pair once, candidates ascending
        for q in range(ntraj):
            nb[q] = -1
            best[q] = INFINITY
        for q in range(ntraj):
            slot = (s0 + q) % ntraj
            for j in range(q + min_tsep + 1, ntraj):
                v = _d2(x, q, j, emb, lag)
                if nb[slot] < 0 or v < best[slot]:
                    best[slot] = v
                    nb[slot] = s0 + j
                a = (s0 + j) % ntraj
                if nb[a] < 0 or v < best[a]:
                    best[a] = v
                    nb[a] = s0 + q
        for q in range(ntraj):
            slot = (s0 + q) % ntraj
            _lyap_traj(x, q, nb[slot] - s0, emb, lag, traj_len, lv + slot * traj_len)
        built[0] = 1
    else:
        # the new start qn: a candidate of every start before qn - min_tsep, and theirs
        a = -1
        b = INFINITY
        for q in range(qn - min_tsep):
            v = _d2(x, q, qn, emb, lag)
            slot = (s0 + q) % ntraj
            if v < best[slot]:      # closer than every older candidate, gone ones too
                best[slot] = v
                nb[slot] = s0 + qn
                _lyap_traj(x, q, qn, emb, lag, traj_len, lv + slot * traj_len)
            if a < 0 or v < b:
                b = v
                a = q
        slot = (s0 + qn) % ntraj               # the slot of the start that left
        best[slot] = b
        nb[slot] = s0 + a
        _lyap_traj(x, qn, a, emb, lag, traj_len, lv + slot * traj_len)
        for q in range(qn):                    # starts whose neighbour left: rescan
            slot = (s0 + q) % ntraj
            if nb[slot] < s0:
                a = _lyap_argmin(x, q, ntraj, emb, lag, min_tsep, &best[slot])
                nb[slot] = s0 + a
                _lyap_traj(x, q, a, emb, lag, traj_len, lv + slot * traj_len)
    b = 0.0
    for q in range(window):
        b = max(b, fabs(x[q]))
    mx[0] = b
    for j in range(traj_len):
        div[j] = 0.0
        kf[j] = 0.0
    for q in range(ntraj):                     # roll_lyap's order: starts ascending
        slot = (s0 + q) % ntraj
        for j in range(traj_len):
            v = lv[slot * traj_len + j]
            if v != -INFINITY:   # zero distances are left out (as nolds)
                div[j] += v
                kf[j] += 1.0
    return _lyap_fit(div, kf, ks, kx, traj_len)


def lyap_push(double[:, ::1] xb, double[:, ::1] best, Py_ssize_t[:, ::1] nb,
              double[:, ::1] lv, Py_ssize_t[::1] bad, signed char[::1] built,
              const double[::1] row, Py_ssize_t t, Py_ssize_t emb, Py_ssize_t lag,
              Py_ssize_t min_tsep, Py_ssize_t traj_len, double[::1] out, double[::1] mx):
    """Push ``row`` (one value per series) at time ``t`` (0, 1, 2, ... per call) into the
    series' Lyapunov states; ``out``: ``roll_lyap``'s value of each series' window ending
    at t, ``mx``: that window's max |value| (NaN where the window is short or not finite).
    State (series first, window = xb.shape[1] // 2, ntraj = nb.shape[1]): xb (2 window),
    best, nb (ntraj), lv (ntraj * traj_len), bad (the last non-finite time; start below
    -window), built (0 at start)."""
    cdef Py_ssize_t n = row.shape[0], window = xb.shape[1] // 2, ntraj = nb.shape[1], r
    if ntraj != window - (emb - 1) * lag - traj_len + 1 or ntraj < 2 * min_tsep + 2:
        raise ValueError("the state's shapes do not match emb, lag, min_tsep and "
                         "trajectory_len, or the window is too short for them")
    for r in (xb.shape[0], best.shape[0], nb.shape[0], lv.shape[0], bad.shape[0],
              built.shape[0], out.shape[0], mx.shape[0]):
        if r != n:
            raise ValueError(f"the state has {r} series, the row {n}")
    if xb.shape[1] != 2 * window or best.shape[1] != ntraj or lv.shape[1] != ntraj * traj_len:
        raise ValueError("the state's shapes do not match the window")
    cdef double[::1] div = np.empty(traj_len), ks = np.arange(traj_len, dtype=float)
    cdef double[::1] kf = np.empty(traj_len), kx = np.empty(traj_len)
    with nogil:
        for r in range(n):
            out[r] = _lyap_step(&xb[r, 0], &best[r, 0], &nb[r, 0], &lv[r, 0], &bad[r],
                                &built[r], row[r], t, window, ntraj, emb, lag, min_tsep,
                                traj_len, &div[0], &kf[0], &ks[0], &kx[0], &mx[r])
