# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# (directives are not inherited through include: same line as rolling.pyx)
# rolling.pyx compiled with -march=x86-64-v4 (AVX-512); setup.py, quantlab._kernels.load
include "rolling.pyx"
