/* Loops that gcc will not vectorise, written with SSE2 intrinsics (part of x86-64; a
 * scalar twin elsewhere). gcc does not if-convert a max, min or select of doubles
 * without -ffinite-math-only -fno-signed-zeros (NaN and -0.0 semantics), and those flags
 * would also drop the kernels' isnan checks. MAXPD/MINPD/CMPLTPD compute exactly the
 * scalar `v > hi ? v : hi`, `v < b`, so both paths give the same results. */
#ifndef QUANTLAB_SSE2_H
#define QUANTLAB_SSE2_H
#include <math.h>
#include <stddef.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Range of a block's cumulative deviations from its mean, the inner loop of the R/S Hurst
 * exponent:  max_j v_j - min_j v_j,  v_j = p[j] - J[j] * mb,  j < n  (J[j] = j + 1); the
 * block's start value cancels in the range.
 * Scalar, this loop was 3/4 of the kernel's time. J is read, not counted in registers
 * (the adds cost more). */
#if defined(__SSE2__)

static inline double drift_range(const double* p, const double* J, double mb,
                                 ptrdiff_t n) {
    const __m128d m = _mm_set1_pd(mb);
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
            v = _mm_sub_pd(_mm_loadu_pd(p + j + 2 * u),
                           _mm_mul_pd(_mm_loadu_pd(J + j + 2 * u), m));
            h[u] = _mm_max_pd(v, h[u]);
            l[u] = _mm_min_pd(v, l[u]);
        }
    }
    for (; j + 2 <= n; j += 2) {
        v = _mm_sub_pd(_mm_loadu_pd(p + j), _mm_mul_pd(_mm_loadu_pd(J + j), m));
        h[0] = _mm_max_pd(v, h[0]);
        l[0] = _mm_min_pd(v, l[0]);
    }
    _mm_storeu_pd(hi, _mm_max_pd(_mm_max_pd(h[0], h[1]), _mm_max_pd(h[2], h[3])));
    _mm_storeu_pd(lo, _mm_min_pd(_mm_min_pd(l[0], l[1]), _mm_min_pd(l[2], l[3])));
    mx = hi[0] > hi[1] ? hi[0] : hi[1];
    mn = lo[0] < lo[1] ? lo[0] : lo[1];
    if (j < n) {
        t = p[j] - J[j] * mb;
        mx = t > mx ? t : mx;
        mn = t < mn ? t : mn;
    }
    return mx - mn;
}

#else

static inline double drift_range(const double* p, const double* J, double mb,
                                 ptrdiff_t n) {
    double mx = -INFINITY, mn = INFINITY, t;
    for (ptrdiff_t j = 0; j < n; j++) {
        t = p[j] - J[j] * mb;
        mx = t > mx ? t : mx;
        mn = t < mn ? t : mn;
    }
    return mx - mn;
}

#endif

/* Running argmin: for i < n, if v[i] < best[i] (v[i] <= best[i] when or_equal), then
 * best[i] = v[i] and arg[i] = a0 + i. Improvements are rare after the first few calls
 * (a running minimum), so four values at a time are compared and only a hit is
 * handled, in scalar code. */
static inline void argmin_update(const double* v, double* best, ptrdiff_t* arg, ptrdiff_t n,
                                 ptrdiff_t a0, int or_equal) {
    ptrdiff_t i = 0, k;
#if defined(__SSE2__)
    __m128d m;
    for (; i + 4 <= n; i += 4) {
        if (or_equal)
            m = _mm_or_pd(_mm_cmple_pd(_mm_loadu_pd(v + i), _mm_loadu_pd(best + i)),
                          _mm_cmple_pd(_mm_loadu_pd(v + i + 2), _mm_loadu_pd(best + i + 2)));
        else
            m = _mm_or_pd(_mm_cmplt_pd(_mm_loadu_pd(v + i), _mm_loadu_pd(best + i)),
                          _mm_cmplt_pd(_mm_loadu_pd(v + i + 2), _mm_loadu_pd(best + i + 2)));
        if (_mm_movemask_pd(m)) {
            for (k = i; k < i + 4; k++) {
                if (or_equal ? v[k] <= best[k] : v[k] < best[k]) {
                    best[k] = v[k];
                    arg[k] = a0 + k;
                }
            }
        }
    }
#endif
    for (; i < n; i++) {
        if (or_equal ? v[i] <= best[i] : v[i] < best[i]) {
            best[i] = v[i];
            arg[i] = a0 + i;
        }
    }
}

#endif
