"""quantlab: a Jupyter-first research environment for trading strategies.

Submodules are imported on first use (PEP 562) so ``import quantlab`` stays fast;
``ql.data``, ``ql.plots``, ``ql.suite`` ... load numpy/xarray/bokeh when touched.
"""
from importlib import import_module as _import_module

from quantlab.errors import DataError

__version__ = "0.1.0"

_SUBMODULES = {"backtesting", "calendar", "cli", "compat", "crossmarket", "data", "engine",
               "ensemble", "fmt", "integrity", "live", "measures", "metrics", "optimize",
               "plots", "research", "risk", "rolling", "signals", "store", "strategies",
               "suite", "sweeps", "tearsheet", "testing", "widgets"}
# top-level names that live in a submodule
# ``backtest`` is a function of the package ``backtesting`` (a subpackage named
# ``backtest`` would be rebound over the function whenever one of its submodules loads)
_ATTRS = {"backtest": "backtesting", "BacktestResult": "backtesting",
          "BacktestOptions": "backtesting", "Slippage": "backtesting",
          "BacktestingEngine": "compat", "deploy": "live", "Deployment": "live",
          "run_research_analysis": "research",
          "sweep": "sweeps"}

__all__ = ["DataError", "__version__", *sorted(_SUBMODULES), *sorted(_ATTRS)]


def __getattr__(name):
    if name in _SUBMODULES:
        module = _import_module(f"quantlab.{name}")
        globals()[name] = module
        return module
    if name in _ATTRS:
        value = getattr(_import_module(f"quantlab.{_ATTRS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'quantlab' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBMODULES | set(_ATTRS))
