# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# (directives are not inherited through include: same line as metrics.pyx)
# metrics.pyx compiled with -march=x86-64-v3; setup.py, quantlab._kernels.load
include "metrics.pyx"
