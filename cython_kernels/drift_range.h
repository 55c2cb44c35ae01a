/* Range of a block's cumulative deviations from its mean, the inner loop of the R/S
 * Hurst exponent:  max_j v_j - min_j v_j,  v_j = (p[j] - base) - (j + 1) * mb,  j < n.
 * gcc does not vectorise a running max/min of doubles without -ffinite-math-only (the
 * select is not a MAX_EXPR when NaN may occur); scalar, this loop was 3/4 of the kernel's
 * time, so it is written with SSE2 intrinsics (part of x86-64). MAXPD/MINPD compute the
 * scalar select `v > hi ? v : hi` exactly and a max does not depend on the order, so both
 * paths give the same bits. (J is read, not counted in registers: the adds cost more.) */
#ifndef QUANTLAB_DRIFT_RANGE_H
#define QUANTLAB_DRIFT_RANGE_H
#include <math.h>
#include <stddef.h>

#if defined(__SSE2__)
#include <emmintrin.h>

static inline double drift_range(const double* p, double base, const double* J, double mb,
                                 ptrdiff_t n) {
    const __m128d b = _mm_set1_pd(base), m = _mm_set1_pd(mb);
    __m128d h[4], l[4], v;
    double hi[2], lo[2], mx, mn, t;
    ptrdiff_t j = 0;
    int u;
    for (u = 0; u < 4; u++) {
        h[u] = _mm_set1_pd(-INFINITY);
        l[u] = _mm_set1_pd(INFINITY);
    }
    for (; j + 8 <= n; j += 8) {   /* four independent max/min chains hide the latency */
        for (u = 0; u < 4; u++) {
            v = _mm_sub_pd(_mm_sub_pd(_mm_loadu_pd(p + j + 2 * u), b),
                           _mm_mul_pd(_mm_loadu_pd(J + j + 2 * u), m));
            h[u] = _mm_max_pd(v, h[u]);
            l[u] = _mm_min_pd(v, l[u]);
        }
    }
    for (; j + 2 <= n; j += 2) {
        v = _mm_sub_pd(_mm_sub_pd(_mm_loadu_pd(p + j), b), _mm_mul_pd(_mm_loadu_pd(J + j), m));
        h[0] = _mm_max_pd(v, h[0]);
        l[0] = _mm_min_pd(v, l[0]);
    }
    _mm_storeu_pd(hi, _mm_max_pd(_mm_max_pd(h[0], h[1]), _mm_max_pd(h[2], h[3])));
    _mm_storeu_pd(lo, _mm_min_pd(_mm_min_pd(l[0], l[1]), _mm_min_pd(l[2], l[3])));
    mx = hi[0] > hi[1] ? hi[0] : hi[1];
    mn = lo[0] < lo[1] ? lo[0] : lo[1];
    if (j < n) {
        t = (p[j] - base) - J[j] * mb;
        mx = t > mx ? t : mx;
        mn = t < mn ? t : mn;
    }
    return mx - mn;
}

#else

static inline double drift_range(const double* p, double base, const double* J, double mb,
                                 ptrdiff_t n) {
    double mx = -INFINITY, mn = INFINITY, t;
    for (ptrdiff_t j = 0; j < n; j++) {
        t = (p[j] - base) - J[j] * mb;
        mx = t > mx ? t : mx;
        mn = t < mn ? t : mn;
    }
    return mx - mn;
}

#endif
#endif
