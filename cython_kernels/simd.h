/* Loops that gcc will not vectorise, written with intrinsics: AVX (4 doubles) in the
 * x86-64-v3 build, SSE2 (2 doubles, part of x86-64) in the baseline one, plain C
 * elsewhere. gcc does not if-convert a max, min or select of doubles without
 * -ffinite-math-only -fno-signed-zeros (NaN and -0.0 semantics), and those flags would
 * also drop the kernels' isnan checks. MAXPD/MINPD and the ordered compares compute
 * exactly the scalar `v > hi ? v : hi`, `v < b`, and a max or min does not depend on the
 * order, so every path gives the same bits. */
#ifndef QUANTLAB_SIMD_H
#define QUANTLAB_SIMD_H
#include <float.h>
#include <math.h>
#include <stddef.h>
#if defined(__AVX__)
#include <immintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Range of a block's cumulative deviations from its mean, the inner loop of the R/S Hurst
 * exponent:  max_j v_j - min_j v_j,  v_j = p[j] - J[j] * mb,  j < n  (J[j] = j + 1); the
 * block's start value cancels in the range. Scalar, this loop was 3/4 of the kernel's
 * time. Four independent max/min chains hide the latency; J is read, not counted in
 * registers (the adds cost more). */
static inline double drift_range(const double* p, const double* J, double mb, ptrdiff_t n) {
    double mx = -INFINITY, mn = INFINITY, t;
    ptrdiff_t j = 0;
#if defined(__AVX__)
    const __m256d m = _mm256_set1_pd(mb);
    __m256d h[4], l[4], v;
    double hi[4], lo[4];
    int u;
    for (u = 0; u < 4; u++) {
        h[u] = _mm256_set1_pd(-INFINITY);
        l[u] = _mm256_set1_pd(INFINITY);
    }
    for (; j + 16 <= n; j += 16) {
        for (u = 0; u < 4; u++) {
            v = _mm256_sub_pd(_mm256_loadu_pd(p + j + 4 * u),
                              _mm256_mul_pd(_mm256_loadu_pd(J + j + 4 * u), m));
            h[u] = _mm256_max_pd(v, h[u]);
            l[u] = _mm256_min_pd(v, l[u]);
        }
    }
    for (; j + 4 <= n; j += 4) {
        v = _mm256_sub_pd(_mm256_loadu_pd(p + j), _mm256_mul_pd(_mm256_loadu_pd(J + j), m));
        h[0] = _mm256_max_pd(v, h[0]);
        l[0] = _mm256_min_pd(v, l[0]);
    }
    if (j < n && n >= 4) {   /* the last four again: a repeat does not change a max */
        j = n - 4;
        v = _mm256_sub_pd(_mm256_loadu_pd(p + j), _mm256_mul_pd(_mm256_loadu_pd(J + j), m));
        h[1] = _mm256_max_pd(v, h[1]);
        l[1] = _mm256_min_pd(v, l[1]);
        j = n;
    }
    _mm256_storeu_pd(hi, _mm256_max_pd(_mm256_max_pd(h[0], h[1]), _mm256_max_pd(h[2], h[3])));
    _mm256_storeu_pd(lo, _mm256_min_pd(_mm256_min_pd(l[0], l[1]), _mm256_min_pd(l[2], l[3])));
    for (u = 0; u < 4; u++) {
        mx = hi[u] > mx ? hi[u] : mx;
        mn = lo[u] < mn ? lo[u] : mn;
    }
#elif defined(__SSE2__)
    const __m128d m = _mm_set1_pd(mb);
    __m128d h[4], l[4], v;
    double hi[2], lo[2];
    int u;
    for (u = 0; u < 4; u++) {
        h[u] = _mm_set1_pd(-INFINITY);
        l[u] = _mm_set1_pd(INFINITY);
    }
    for (; j + 8 <= n; j += 8) {
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
    if (j < n && n >= 2) {   /* the last two again: a repeat does not change a max */
        j = n - 2;
        v = _mm_sub_pd(_mm_loadu_pd(p + j), _mm_mul_pd(_mm_loadu_pd(J + j), m));
        h[1] = _mm_max_pd(v, h[1]);
        l[1] = _mm_min_pd(v, l[1]);
        j = n;
    }
    _mm_storeu_pd(hi, _mm_max_pd(_mm_max_pd(h[0], h[1]), _mm_max_pd(h[2], h[3])));
    _mm_storeu_pd(lo, _mm_min_pd(_mm_min_pd(l[0], l[1]), _mm_min_pd(l[2], l[3])));
    for (u = 0; u < 2; u++) {
        mx = hi[u] > mx ? hi[u] : mx;
        mn = lo[u] < mn ? lo[u] : mn;
    }
#endif
    for (; j < n; j++) {
        t = p[j] - J[j] * mb;
        mx = t > mx ? t : mx;
        mn = t < mn ? t : mn;
    }
    return mx - mn;
}

/* Running argmin: for i < n, if v[i] < best[i] (v[i] <= best[i] when or_equal), then
 * best[i] = v[i] and arg[i] = a0 + i. Improvements are rare after the first few calls
 * (a running minimum), so eight (AVX) or four (SSE2) values at a time are compared and
 * only a hit is handled, in scalar code. */
static inline void argmin_update(const double* v, double* best, ptrdiff_t* arg, ptrdiff_t n,
                                 ptrdiff_t a0, int or_equal) {
    ptrdiff_t i = 0, k, w;
#if defined(__AVX__)
    __m256d lo, hi;
    w = 8;
    for (; i + 8 <= n; i += 8) {
        if (or_equal) {
            lo = _mm256_cmp_pd(_mm256_loadu_pd(v + i), _mm256_loadu_pd(best + i), _CMP_LE_OQ);
            hi = _mm256_cmp_pd(_mm256_loadu_pd(v + i + 4), _mm256_loadu_pd(best + i + 4),
                               _CMP_LE_OQ);
        } else {
            lo = _mm256_cmp_pd(_mm256_loadu_pd(v + i), _mm256_loadu_pd(best + i), _CMP_LT_OQ);
            hi = _mm256_cmp_pd(_mm256_loadu_pd(v + i + 4), _mm256_loadu_pd(best + i + 4),
                               _CMP_LT_OQ);
        }
        if (!_mm256_movemask_pd(_mm256_or_pd(lo, hi)))
            continue;
#elif defined(__SSE2__)
    __m128d lo, hi;
    w = 4;
    for (; i + 4 <= n; i += 4) {
        if (or_equal) {
            lo = _mm_cmple_pd(_mm_loadu_pd(v + i), _mm_loadu_pd(best + i));
            hi = _mm_cmple_pd(_mm_loadu_pd(v + i + 2), _mm_loadu_pd(best + i + 2));
        } else {
            lo = _mm_cmplt_pd(_mm_loadu_pd(v + i), _mm_loadu_pd(best + i));
            hi = _mm_cmplt_pd(_mm_loadu_pd(v + i + 2), _mm_loadu_pd(best + i + 2));
        }
        if (!_mm_movemask_pd(_mm_or_pd(lo, hi)))
            continue;
#else
    w = 1;
    for (; i < n; i++) {
#endif
        for (k = i; k < i + w; k++) {
            if (or_equal ? v[k] <= best[k] : v[k] < best[k]) {
                best[k] = v[k];
                arg[k] = a0 + k;
            }
        }
    }
    for (; i < n; i++) {
        if (or_equal ? v[i] <= best[i] : v[i] < best[i]) {
            best[i] = v[i];
            arg[i] = a0 + i;
        }
    }
}

/* Whether some one of p[0..n) is neither NaN nor a price in [DBL_MIN, inf): x < DBL_MIN
 * (<= 0, or subnormal: a price below the smallest normal double has lost precision) or
 * x == inf (ordered compares, false for NaN), or-ed over the row and tested once at the end.
 * Intrinsics, as gcc does not vectorise the double compares into an int reduction;
 * SSE2 only: the backtest kernel, its one caller, is built for the baseline alone. */
static inline int bad_prices(const double* p, ptrdiff_t n) {
    ptrdiff_t i = 0;
    int bad = 0;
#if defined(__SSE2__)
    const __m128d tiny = _mm_set1_pd(DBL_MIN), inf = _mm_set1_pd(INFINITY);
    __m128d acc = _mm_setzero_pd(), a, b;
    for (; i + 4 <= n; i += 4) {
        a = _mm_loadu_pd(p + i);
        b = _mm_loadu_pd(p + i + 2);
        acc = _mm_or_pd(acc, _mm_or_pd(
            _mm_or_pd(_mm_cmplt_pd(a, tiny), _mm_cmpeq_pd(a, inf)),
            _mm_or_pd(_mm_cmplt_pd(b, tiny), _mm_cmpeq_pd(b, inf))));
    }
    bad = _mm_movemask_pd(acc);
#endif
    for (; i < n; i++)
        bad |= (p[i] < DBL_MIN) | (p[i] == INFINITY);
    return bad != 0;
}

/* Whether some one of p[0..n) is outside [-lim, lim]: |x| > lim (an ordered compare,
 * false for NaN), as bad_prices: or-ed over the row, tested once at the end. */
static inline int bad_targets(const double* p, ptrdiff_t n, double lim) {
    ptrdiff_t i = 0;
    int bad = 0;
#if defined(__SSE2__)
    const __m128d sign = _mm_set1_pd(-0.0), hi = _mm_set1_pd(lim);
    __m128d acc = _mm_setzero_pd();
    for (; i + 4 <= n; i += 4)
        acc = _mm_or_pd(acc, _mm_or_pd(
            _mm_cmpgt_pd(_mm_andnot_pd(sign, _mm_loadu_pd(p + i)), hi),
            _mm_cmpgt_pd(_mm_andnot_pd(sign, _mm_loadu_pd(p + i + 2)), hi)));
    bad = _mm_movemask_pd(acc);
#endif
    for (; i < n; i++)
        bad |= fabs(p[i]) > lim;
    return bad != 0;
}

#endif
