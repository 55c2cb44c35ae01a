"""The strategy registry: ``names()``, ``get(name, **params)``, ``@register``.

A strategy turns a price Dataset (and external inputs passed in, never loaded inside)
into target exposures in [-1, 1] on (time, asset), stamped t = decided with data up to
and including t (DESIGN.md). List-valued parameters become labelled dims of the signal,
so one ``ql.backtest`` call runs the whole grid.
"""
from __future__ import annotations

import abc
import difflib
import itertools

import pandas as pd
import xarray as xr

__all__ = ["Strategy", "register", "names", "get", "resolve", "ALIASES"]

_REGISTRY: dict[str, type[Strategy]] = {}

# the seed's short names -> registry names
ALIASES = {"momentum": "cross_sectional_momentum", "volatility": "volatility_regime",
           "liquidity": "liquidity_timing", "factor": "factor_momentum",
           "sentiment": "sentiment_regime"}


class Strategy(abc.ABC):
    """Base class. Subclasses set ``name``, ``defaults`` (parameter -> default),
    ``param_space`` (parameter -> (low, high) or a list of choices), ``requires`` (data
    variables), ``inputs`` (external inputs) and implement ``_signal`` (and, to show
    their intermediate quantities, ``_diagnostics``) for one parameter combination."""

    name: str = ""
    defaults: dict = {}
    param_space: dict = {}
    requires: tuple = ("close",)
    inputs: tuple = ()

    def __init__(self, **params):
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise ValueError(f"{self.name}: unknown parameter(s) {sorted(unknown)}; "
                             f"parameters are {sorted(self.defaults)}")
        self.params = {**self.defaults, **params}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"ql.strategies.get({self.name!r}, {args})"

    # ---- public API
    def default_inputs(self, ds: xr.Dataset) -> dict:
        """The bundled defaults of the external inputs, cut at ``ds``'s last timestamp."""
        return {}

    def signal(self, ds: xr.Dataset, **inputs) -> xr.DataArray:
        """Target exposure in [-1, 1] on (time, asset[, one dim per list parameter])."""
        self._check(ds, inputs)
        grid = {k: v for k, v in self.params.items() if isinstance(v, (list, tuple))}
        if not grid:
            return self._clip(self._signal(ds, **self.params, **inputs))
        parts = []
        for combo in itertools.product(*grid.values()):
            p = {**self.params, **dict(zip(grid, combo))}
            parts.append(self._clip(self._signal(ds, **p, **inputs)))
        index = pd.MultiIndex.from_product(list(grid.values()), names=list(grid))
        out = xr.concat(parts, dim="_combo").assign_coords(
            xr.Coordinates.from_pandas_multiindex(index, "_combo")).unstack("_combo")
        return out.transpose("time", "asset", *grid).rename("signal")

    def diagnostics(self, ds: xr.Dataset, **inputs) -> xr.Dataset:
        """The intermediate quantities behind the signal (first value of list parameters)."""
        self._check(ds, inputs)
        p = {k: (v[0] if isinstance(v, (list, tuple)) else v) for k, v in self.params.items()}
        return self._diagnostics(ds, **p, **inputs)

    # ---- for subclasses
    @abc.abstractmethod
    def _signal(self, ds, **kw) -> xr.DataArray:
        """The exposure for one parameter combination (keyword arguments)."""

    def _diagnostics(self, ds, **kw) -> xr.Dataset:
        """Intermediate quantities; by default just the signal."""
        return xr.Dataset({"signal": self._signal(ds, **kw)})

    def _check(self, ds, inputs):
        if not isinstance(ds, xr.Dataset):
            raise TypeError(f"{self.name}: data must be an xarray Dataset (ql.data.load())")
        missing = [v for v in self.requires if v not in ds]
        if missing:
            raise ValueError(f"{self.name} needs data variable(s) {missing}; this data set has "
                             f"{sorted(map(str, ds.data_vars))}")
        absent = [i for i in self.inputs if i not in inputs]
        if absent:
            raise ValueError(f"{self.name} needs the external input(s) {absent}: pass them, "
                             f"e.g. s.signal(ds, **s.default_inputs(ds))")

    @staticmethod
    def _clip(sig: xr.DataArray) -> xr.DataArray:
        return sig.clip(-1.0, 1.0).transpose("time", "asset").rename("signal")


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator adding a strategy to the registry under ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, Strategy) and cls.name):
        raise TypeError("register a Strategy subclass with a non-empty `name`")
    _REGISTRY[cls.name] = cls
    return cls


def names(family: str | None = None) -> list[str]:
    """Registry names of every available strategy, or of one ``family``:
    ``"traditional"`` or ``"unconventional"`` (the module that defines them)."""
    if family is None:
        return sorted(_REGISTRY)
    found = sorted(k for k, cls in _REGISTRY.items()
                   if cls.__module__.rsplit(".", 1)[-1] == family)
    if not found:
        raise ValueError(f"unknown strategy family {family!r}: 'traditional' or "
                         "'unconventional'")
    return found


def get(name: str, **params) -> Strategy:
    """The strategy ``name`` (or a seed alias) with ``params``."""
    key = ALIASES.get(name, name)
    if key not in _REGISTRY:
        near = difflib.get_close_matches(name, names() + list(ALIASES), n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise ValueError(f"unknown strategy {name!r}.{hint} Available: {', '.join(names())}")
    return _REGISTRY[key](**params)


def resolve(strategy) -> Strategy:
    """A Strategy from a registry name (or alias), a Strategy class (its defaults) or a
    Strategy (as given): what sweeps and optimisers accept."""
    if isinstance(strategy, str):
        return get(strategy)
    if isinstance(strategy, type) and issubclass(strategy, Strategy):
        return strategy()
    if isinstance(strategy, Strategy):
        return strategy
    raise TypeError(f"strategy must be a registry name, a Strategy or a Strategy class, "
                    f"got {type(strategy).__name__}")


from quantlab.strategies import traditional, unconventional  # noqa: E402,F401  (registers them)
