"""quantlab: a Jupyter-first research environment for trading strategies.

Submodules are imported on first use (PEP 562) so ``import quantlab`` stays fast;
``ql.data``, ``ql.plots``, ``ql.suite`` ... load numpy/xarray/bokeh when touched.
"""
from importlib import import_module

from quantlab.errors import DataError

__version__ = "0.1.0"

_SUBMODULES = {"data", "metrics", "plots", "rolling", "suite"}

__all__ = ["DataError", "__version__", *sorted(_SUBMODULES)]


def __getattr__(name):
    if name in _SUBMODULES:
        module = import_module(f"quantlab.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'quantlab' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBMODULES)
