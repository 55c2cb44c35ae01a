# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# (directives are not inherited through include: same line as rolling.pyx)
# rolling.pyx compiled with -march=x86-64-v3 (AVX2); setup.py, quantlab._kernels.load
include "rolling.pyx"
