# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# (directives are not inherited through include: same line as measures.pyx)
# measures.pyx compiled with -march=x86-64-v3 (AVX2): the intrinsics of simd.h take their
# AVX path; setup.py, quantlab._kernels.load
include "measures.pyx"
