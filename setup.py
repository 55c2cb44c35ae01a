"""Build the Cython kernels: every cython_kernels/<name>.pyx -> quantlab._kernels.<name>."""
import os
import platform
import sys
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent

# -fno-trapping-math lets gcc if-convert the NaN selects and divisions of the branch-free
# loops (we never use FP exceptions; NaN semantics are unchanged); the alias-check budget
# lets it vectorise loops touching many state arrays. -ffp-contract=off: no fused
# multiply-adds, so doubles round as Python's do (the tick engine is checked bit for bit
# against its pure-Python oracle) and every SIMD build below gives the same bits.
FLAGS = ["-O3", "-fno-trapping-math", "-fno-math-errno", "-ffp-contract=off",
         "--param=vect-max-version-for-alias-checks=256"]
# cython_kernels/simd/<name>_v3.pyx, _v4.pyx include <name>.pyx and are compiled for the
# x86-64-v3 (AVX2) and -v4 (AVX-512) levels; quantlab._kernels.load picks the best one
# the CPU runs at import. Only on x86-64 with gcc/clang (elsewhere: baseline only).
SIMD = platform.machine().lower() in ("x86_64", "amd64") and sys.platform != "win32"


def _extension(pyx, march=None):
    return Extension(
        f"quantlab._kernels.{pyx.stem}",
        [str(pyx.relative_to(HERE))],
        include_dirs=[np.get_include()],
        # C headers next to the kernels (simd.h): a changed header rebuilds the module
        depends=[str(h.relative_to(HERE)) for h in (HERE / "cython_kernels").glob("*.h")],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=FLAGS + ([f"-march={march}"] if march else []),
    )


extensions = [_extension(pyx) for pyx in sorted((HERE / "cython_kernels").glob("*.pyx"))]
if SIMD:
    extensions += [_extension(pyx, "x86-64-" + pyx.stem.rsplit("_", 1)[1])
                   for pyx in sorted((HERE / "cython_kernels" / "simd").glob("*.pyx"))]


class build_py_with_data(build_py):
    """Copy the bundled data/ files into the wheel as quantlab/_data (editable installs
    read data/ in place)."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / "quantlab" / "_data"
        target.mkdir(parents=True, exist_ok=True)
        for f in sorted((HERE / "data").glob("*.gz")):
            self.copy_file(str(f), str(target / f.name))


class build_ext_on_every_core(build_ext):
    """Compile the modules on every core (``-j``, unless given): ~15 of them, with their
    SIMD builds, take most of an install's time on one."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1


setup(
    cmdclass={"build_py": build_py_with_data, "build_ext": build_ext_on_every_core},
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": "3", "embedsignature": True},
        include_path=["cython_kernels"],
        nthreads=os.cpu_count() or 1,
    ),
)
