# Bivariate Welford update shared by the kernels (textually included: `include "welford.pxi"`).

cdef inline void add_pair(double x, double y, double n, double* mx, double* my,
                          double* cxx, double* cyy, double* cxy) noexcept nogil:
    """Add the pair (x, y) as the n-th observation: running means and co-moments
    Σ(x - x̄)², Σ(y - ȳ)², Σ(x - x̄)(y - ȳ) (Welford 1962; Chan, Golub & LeVeque 1983)."""
    cdef double dx = x - mx[0], dy = y - my[0]
    mx[0] += dx / n
    my[0] += dy / n
    cxx[0] += dx * (x - mx[0])
    cyy[0] += dy * (y - my[0])
    cxy[0] += dx * (y - my[0])
