"""The x86-64 micro-architecture level this CPU runs (compiled for the baseline ISA).

``quantlab._kernels.load`` uses it to pick a kernel build from cython_kernels/simd/.
"""

cdef extern from *:
    """
    static int ql_x86_level(void) {
    #if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
        /* the checks include the OS saving the AVX/AVX-512 registers (XGETBV) */
        __builtin_cpu_init();
        if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
              && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2")
              && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("movbe")))
            return 1;
        if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
              && __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq")
              && __builtin_cpu_supports("avx512vl")))
            return 3;
        return 4;
    #else
        return 0;
    #endif
    }
    """
    int ql_x86_level() nogil


def x86_level():
    """4 (x86-64-v4: AVX-512), 3 (x86-64-v3: AVX2, FMA), 1 (older x86-64), 0 (not x86-64)."""
    return ql_x86_level()
