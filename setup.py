"""Build the Cython kernels: every cython_kernels/<name>.pyx -> quantlab._kernels.<name>."""
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent

extensions = [
    Extension(
        f"quantlab._kernels.{pyx.stem}",
        [str(pyx.relative_to(HERE))],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        # -fno-trapping-math lets gcc if-convert the NaN selects and divisions of the
        # branch-free loops (we never use FP exceptions; NaN semantics are unchanged);
        # the alias-check budget lets it vectorise loops touching many state arrays.
        # -ffp-contract=off: no fused multiply-adds, so doubles round as Python's do (the
        # tick engine is checked bit for bit against its pure-Python oracle)
        extra_compile_args=["-O3", "-fno-trapping-math", "-fno-math-errno",
                            "-ffp-contract=off", "--param=vect-max-version-for-alias-checks=64"],
    )
    for pyx in sorted((HERE / "cython_kernels").glob("*.pyx"))
]

class build_py_with_data(build_py):
    """Copy the bundled data/ files into the wheel as quantlab/_data (editable installs
    read data/ in place)."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / "quantlab" / "_data"
        target.mkdir(parents=True, exist_ok=True)
        for f in sorted((HERE / "data").glob("*.gz")):
            self.copy_file(str(f), str(target / f.name))

setup(
    cmdclass={"build_py": build_py_with_data},
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": "3", "embedsignature": True},
    ),
)
