"""Compiled kernels built from ``cython_kernels/*.pyx`` (see setup.py).

Modules with builds in ``cython_kernels/simd/`` (the same source compiled for the
x86-64-v3 and -v4 levels: AVX2, AVX-512) are imported through :func:`load`, which picks
the best build this CPU runs. Every build gives the same bits (no fused multiply-adds).
"""
import importlib
import os

from quantlab._kernels.cpu import x86_level

LEVELS = {"baseline": 1, "v3": 3, "v4": 4}


def cpu_level():
    """The highest kernel build level this CPU runs: "v4", "v3" or "baseline"."""
    return max((k for k, v in LEVELS.items() if v <= max(x86_level(), 1)), key=LEVELS.get)


def load(name, level=None):
    """Kernel module ``name`` built for ``level`` or the closest lower level built.

    ``level`` defaults to $QUANTLAB_SIMD, else :func:`cpu_level`; a level above the
    CPU's is an error (its instructions would crash the process).
    """
    best = cpu_level()
    level = level or os.environ.get("QUANTLAB_SIMD") or best
    if level not in LEVELS:
        raise ValueError(f"QUANTLAB_SIMD must be one of {list(LEVELS)}, got {level!r}")
    if LEVELS[level] > LEVELS[best]:
        raise ValueError(f"QUANTLAB_SIMD={level!r}: this CPU runs builds up to {best!r}")
    for lv in sorted((k for k in LEVELS if LEVELS[k] <= LEVELS[level]),
                     key=LEVELS.get, reverse=True):
        suffix = "" if lv == "baseline" else f"_{lv}"
        try:
            return importlib.import_module(f"quantlab._kernels.{name}{suffix}")
        except ModuleNotFoundError:
            if lv == "baseline":
                raise
