"""Compiled kernels built from ``cython_kernels/*.pyx`` (see setup.py)."""
