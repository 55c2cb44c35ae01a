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
import math
import numbers

import numpy as np
import pandas as pd
import xarray as xr

from quantlab import _plugins, _validate
from quantlab.errors import DataError
from quantlab.compat import ALIASES, seed_params   # the seed's names -> quantlab's

__all__ = ["Strategy", "register", "names", "get", "resolve", "ALIASES", "MAX_BARS"]

_REGISTRY: dict[str, type[Strategy]] = {}
MAX_BARS = 10 ** 6   # upper bound of integer parameters (windows, lags, holding periods)


class Strategy(abc.ABC):
    """Base class of the strategies in the registry.

    Subclasses set ``name``, ``defaults`` (parameter -> default), ``param_space``
    (parameter -> (low, high) or a list of choices: the range searched by optimisers and
    sweeps), ``requires`` (data variables), ``min_assets`` (the cross-section a ranking
    or a correlation needs), ``inputs`` (external inputs) and implement
    ``_signal`` (and, to show their intermediate quantities, ``_diagnostics``) for one
    parameter combination.

    Every parameter value (each element of a list) is checked when the strategy is made
    (:meth:`_check_param`): its type comes from ``defaults`` and its valid values from
    ``limits`` (parameter -> (lo, hi[, why]) or a dict of ``_validate.number`` options
    plus ``why``, None = unbounded; for a string parameter the list of its options).
    Without a limit, an integer parameter whose ``param_space`` starts at >= 1 must be
    >= 1, at 0 must be >= 0 (bar counts and lags: a negative lag reads the future); a
    float must be finite. Integers are at most ``MAX_BARS`` (the rolling kernels allocate
    by window: 10^12 would ask for terabytes).
    ``_check_combination(**params)`` may refuse combinations (e.g. lookback < window).

    Parameters
    ----------
    **params
        Parameter values overriding ``defaults``; a list of values makes a grid (one
        signal dimension per list parameter).

    Raises
    ------
    ValueError
        If a parameter is unknown, out of its limits, a list is empty or repeats a value,
        or a combination is refused.
    TypeError
        If a value has the wrong type (e.g. a float for an integer parameter).

    Examples
    --------
    >>> import xarray as xr, quantlab as ql
    >>> @ql.strategies.register
    ... class Trend(ql.strategies.Strategy):
    ...     name = "demo_trend"
    ...     defaults = {"window": 20}
    ...     param_space = {"window": (5, 100)}
    ...     def _signal(self, ds, window):
    ...         close = ds["close"]
    ...         return xr.where(close > close.rolling(time=window).mean(), 1.0, 0.0)
    >>> s = ql.strategies.get("demo_trend", window=10)
    >>> s
    ql.strategies.get('demo_trend', window=10)
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> s.signal(ds).isel(time=-1).values
    array([1., 0., 1., 1.])
    >>> ql.strategies.get("demo_trend", window=0)
    Traceback (most recent call last):
    ...
    ValueError: demo_trend parameter 'window' must be an integer >= 1, got 0
    """

    name: str = ""
    defaults: dict = {}
    param_space: dict = {}
    limits: dict = {}
    requires: tuple = ("close",)
    min_assets: int = 1
    inputs: tuple = ()

    def __init__(self, **params):
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise ValueError(f"{self.name}: unknown parameter(s) {sorted(unknown)}; "
                             f"parameters are {sorted(self.defaults)}")
        self.params = self._check_params({**self.defaults, **params})

    # ---- parameter checks (one place: used by __init__ and by ql.sweep's grid)
    @classmethod
    def _check_params(cls, params: dict) -> dict:
        """``params`` with every value checked and converted (int/float/str/bool); list
        values (a grid: one signal dim each) element by element, and each combination."""
        out = {}
        for k, v in params.items():
            if isinstance(v, (np.ndarray, pd.Index, range)):
                v = list(np.asarray(v).tolist()) if np.ndim(v) == 1 else v
            if isinstance(v, (list, tuple)):
                if not v:
                    raise ValueError(f"{cls.name} parameter {k!r} is an empty list: give at "
                                     "least one value")
                vals = [cls._check_param(k, x, label=f"{cls.name} parameter {k!r} value")
                        for x in v]
                try:
                    repeats = len(set(vals)) != len(vals)
                except TypeError:             # unhashable values: nothing to compare
                    repeats = False
                if repeats:
                    raise ValueError(f"{cls.name} parameter {k!r} repeats a value in {v!r}; "
                                     "give each value once (the signal is indexed by value)")
                out[k] = vals
            else:
                out[k] = cls._check_param(k, v)
        cls._check_combinations(out)
        return out

    @classmethod
    def _check_combinations(cls, params: dict) -> None:
        """:meth:`_check_combination` on every combination of the list values."""
        for p in cls._each(params):
            cls._check_combination(**p)

    @classmethod
    def _check_param(cls, key: str, value, label: str | None = None):
        """One value of parameter ``key``, checked against its default's type, its choices
        and its ``limits``; returned as a plain int/float/str/bool."""
        label = label or f"{cls.name} parameter {key!r}"
        default, space = cls.defaults[key], cls.param_space.get(key)
        if isinstance(value, np.generic) or (isinstance(value, (np.ndarray, xr.DataArray))
                                             and value.ndim == 0):
            # a 0-d array or DataArray: a sweep result's coordinate after .sel(window=21)
            value = np.asarray(value).item()
        if isinstance(default, bool):
            return _validate.flag(label, value)
        if isinstance(default, str):
            # the options are limits[key]; a param_space list is only what is searched
            options = cls.limits.get(key)
            if isinstance(options, (list, tuple)) and all(isinstance(o, str) for o in options):
                return _validate.choice(label, value, tuple(options))
            if not isinstance(value, str):
                raise TypeError(f"{label} must be a string, got {value!r}")
            return value
        if not isinstance(default, numbers.Real):
            return value                      # a parameter of another kind: as given
        lim = cls.limits.get(key)
        opts = dict(lim) if isinstance(lim, dict) else (
            dict(zip(("lo", "hi", "why"), lim)) if lim is not None else {})
        why = opts.pop("why", None)
        try:
            if isinstance(default, numbers.Integral):
                lo = opts.get("lo")
                if lim is None and isinstance(space, tuple) and len(space) == 2 \
                        and isinstance(space[0], numbers.Real) and space[0] >= 0:
                    lo = 1 if space[0] >= 1 else 0   # a bar count (>= 1) or a lag (>= 0)
                v = _validate.integer(label, value, lo, opts.get("hi"))
                if v > MAX_BARS:
                    raise ValueError(f"{label} must be an integer <= {MAX_BARS} (a window or "
                                     f"lag in bars; the kernels allocate by it), got {value!r}")
                return v
            return _validate.number(label, value, **opts)
        except OverflowError:   # an int beyond float range (_validate.number's float())
            raise ValueError(f"{label} must be a finite number, got {value!r}") from None
        except ValueError as e:
            v = value           # only a real number gets past the type checks to here
            lo, hi = opts.get("lo"), opts.get("hi")
            if why and ((lo is not None and v <= lo) or (hi is not None and v >= hi)):
                raise ValueError(f"{e} ({why})") from None   # the limit's reason
            raise

    @classmethod
    def _check_combination(cls, **params) -> None:
        """Refuse a combination of valid values that does not work together (override)."""

    def __repr__(self):
        args = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"ql.strategies.get({self.name!r}{args})"

    # ---- public API
    def default_inputs(self, ds: xr.Dataset) -> dict:
        """The bundled defaults of the external inputs, cut at ``ds``'s last timestamp.

        Parameters
        ----------
        ds : xarray.Dataset
            The price data the strategy will run on.

        Returns
        -------
        dict
            Input name -> value, to pass as ``signal(ds, **inputs)``; empty without inputs.

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 300))
        >>> s = ql.strategies.get("factor_momentum")
        >>> s.inputs, list(s.default_inputs(ds))
        (('factors',), ['factors'])
        """
        return {}

    def signal(self, ds: xr.Dataset, **inputs) -> xr.DataArray:
        """Target exposure in [-1, 1] on (time, asset[, one dim per list parameter]).

        Parameters
        ----------
        ds : xarray.Dataset
            Prices with dims (time, asset) holding the ``requires`` variables.
        **inputs
            The external inputs named in ``inputs`` (see :meth:`default_inputs`).

        Returns
        -------
        xarray.DataArray
            Exposure named ``signal``, clipped to [-1, 1]; NaN = hold.

        Raises
        ------
        TypeError
            If ``ds`` is not a Dataset.
        ValueError
            If a required variable or external input is missing.
        DataError
            If ``ds`` lacks time/asset coordinates or an input is malformed.

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 300))
        >>> s = ql.strategies.get("volatility_regime")
        >>> s.signal(ds).isel(time=-1).round(3).values
        array([0.   ,   nan, 0.341, 0.385])
        >>> grid = ql.strategies.get("volatility_regime", window=[10, 21]).signal(ds)
        >>> grid.dims
        ('time', 'asset', 'window')
        """
        inputs = _readable(inputs)
        ds = self._check(ds, inputs)
        grid = {k: v for k, v in self.params.items() if isinstance(v, (list, tuple))}
        if not grid:
            return self._clip(self._signal(ds, **self.params, **inputs))
        parts = [self._clip(self._signal(ds, **p, **inputs)) for p in self._combos()]
        index = pd.MultiIndex.from_product(list(grid.values()), names=list(grid))
        out = xr.concat(parts, dim="_combo").assign_coords(
            xr.Coordinates.from_pandas_multiindex(index, "_combo")).unstack("_combo")
        return out.transpose("time", "asset", *grid).rename("signal")

    def diagnostics(self, ds: xr.Dataset, **inputs) -> xr.Dataset:
        """The intermediate quantities behind the signal (first value of list parameters).

        Parameters
        ----------
        ds : xarray.Dataset
            Prices with dims (time, asset).
        **inputs
            The external inputs named in ``inputs``.

        Returns
        -------
        xarray.Dataset
            One variable per quantity (by default just the signal).

        Raises
        ------
        TypeError, ValueError, DataError
            As :meth:`signal`.

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 300))
        >>> list(ql.strategies.get("volatility_regime").diagnostics(ds).data_vars)
        ['realised_vol', 'vol_percentile', 'high_vol_regime']
        """
        inputs = _readable(inputs)
        ds = self._check(ds, inputs)
        p = {k: (v[0] if isinstance(v, (list, tuple)) else v) for k, v in self.params.items()}
        return self._diagnostics(ds, **p, **inputs)

    @property
    def warmup(self) -> int | None:
        """Bars of history (bar t included) the signal at t depends on.

        A deployment computes each bar's decision from that many trailing bars (see
        :meth:`history_start`). None: all of it (a recursion with unbounded memory, such as a
        CUSUM, or calendar-based inputs); the deployment then keeps every bar.

        Examples
        --------
        >>> import quantlab as ql
        >>> ql.strategies.get("volatility_regime").warmup
        273
        >>> ql.strategies.get("spc").warmup is None
        True
        """
        need = [self._warmup(**p) for p in self._combos()]
        return None if None in need else max(need)

    @property
    def period(self) -> int:
        """Rebalance period in bars.

        Rebalance days are counted every ``period`` bars from the first bar, so a trailing
        window must start on a multiple of it to keep their phase.

        Examples
        --------
        >>> import quantlab as ql
        >>> ql.strategies.get("volatility_regime").period
        1
        """
        return math.lcm(*(self._period(**p) for p in self._combos()))

    def history_start(self, t: int) -> int:
        """First bar of the trailing window that reproduces the full-history signal at bar ``t``.

        The window whose signal at its last bar, t (0-based over the whole history), equals
        the full-history signal at t: t + 1 - ``warmup``, rounded down to a multiple of
        ``period``; 0 when ``warmup`` is None.

        Parameters
        ----------
        t : int
            The bar, 0-based over the whole history (>= 0).

        Returns
        -------
        int

        Examples
        --------
        >>> import quantlab as ql
        >>> ql.strategies.get("volatility_regime").history_start(1000)
        728
        """
        # a bar position: NaN, 2.5 or -1 returned 0 (max(0, nan) is 0), "3" a bare TypeError
        t = _validate.integer("t", t, 0)
        if self.warmup is None:
            return 0
        start = max(0, t + 1 - self.warmup)
        return start - start % self.period

    def live(self, **inputs):
        """A per-bar signal for deployments, or None when this strategy has none.

        ``ql.deploy`` feeds it every bar and reads the exposure at the new bar from
        state it carries (``quantlab.strategies._live.LiveSignal``) instead of
        recomputing the trailing window. None for list-valued parameters and for
        strategies that do not override ``_live``. Without its external inputs a
        strategy's live signal uses its bundled defaults (as ``default_inputs``).

        Parameters
        ----------
        **inputs
            The external inputs named in ``inputs``.

        Returns
        -------
        LiveSignal or None

        Examples
        --------
        >>> import quantlab as ql
        >>> ql.strategies.get("volatility_regime", window=[10, 21]).live() is None
        True
        """
        if any(isinstance(v, (list, tuple)) for v in self.params.values()):
            return None
        return self._live(**self.params, **_readable(inputs))

    # ---- for subclasses
    def _warmup(self, **params) -> int | None:
        """``warmup`` of one parameter combination (override; None = all history)."""
        return None

    def _period(self, **params) -> int:
        """``period`` of one parameter combination (override when signals are kept only
        on every n-th bar)."""
        return 1

    def _live(self, **kw):
        """The :class:`~quantlab.strategies._live.LiveSignal` of one parameter
        combination (override; None: the deployment recomputes the trailing window)."""
        return None

    def _combos(self):
        return self._each(self.params)

    @staticmethod
    def _each(params: dict):
        """Each combination of the list values of ``params``, as a dict of parameters."""
        grid = {k: v for k, v in params.items() if isinstance(v, (list, tuple))}
        for combo in itertools.product(*grid.values()):
            yield {**params, **dict(zip(grid, combo))}

    @abc.abstractmethod
    def _signal(self, ds, **kw) -> xr.DataArray:
        """The exposure for one parameter combination (keyword arguments)."""

    def _diagnostics(self, ds, **kw) -> xr.Dataset:
        """Intermediate quantities; by default just the signal."""
        return xr.Dataset({"signal": self._signal(ds, **kw)})

    def lacks(self, ds) -> str:
        """Why this strategy cannot run on ``ds``, or ``""`` if it can: a data variable it
        reads is missing, or a ranking has fewer assets than its cross-section needs. The
        one rule behind ``signal``'s error, the research analysis' skips, the explorer's
        choices and the notebooks' checks.

        Parameters
        ----------
        ds : xarray.Dataset
            Prices on (time, asset), e.g. ``ql.data.load("vix")``.

        Returns
        -------
        str
            ``""``, or the reason, e.g. ``"needs data variable(s) ['volume']; data set
            'vix' has ['close']"``.

        Examples
        --------
        >>> import quantlab as ql
        >>> vix = ql.data.load("vix")
        >>> ql.strategies.get("volatility_regime").lacks(vix)
        ''
        >>> ql.strategies.get("cross_sectional_momentum").lacks(vix)
        "needs a cross-section of at least 2 assets; data set 'vix' has 1 (VIX)"
        """
        if not isinstance(ds, xr.Dataset):   # a DataArray: "no attribute 'data_vars'"
            raise TypeError(f"{self.name}.lacks: ds must be an xarray Dataset "
                            f"(ql.data.load()), got {type(ds).__name__}")
        name = ds.attrs.get("name")
        what = f"data set {name!r}" if name else "the data"
        missing = [v for v in self.requires if v not in ds]
        if missing:
            return (f"needs data variable(s) {missing}; {what} has "
                    f"{sorted(map(str, ds.data_vars))}")
        n = ds.sizes.get("asset", 0)
        if n < self.min_assets:   # one asset ranked top: always long
            labels = ds.indexes["asset"][:5] if n else []
            return (f"needs a cross-section of at least {self.min_assets} assets; {what} "
                    f"has {n} ({', '.join(map(str, labels))})")
        return ""

    def _check(self, ds, inputs) -> xr.Dataset:
        """``ds`` checked, with its dims in (time, asset) order (kernels and the pandas
        cross-sectional ranks read the arrays positionally), and the inputs checked."""
        if not isinstance(ds, xr.Dataset):   # closes: a DataArray, DataFrame or Series
            ds = _validate.dataset(f"{self.name}: data", ds)
        if "asset" not in ds.dims and not set(self.requires) & set(ds.data_vars):
            # ff3, macro, core_cpi, rates: "name your dims ... .expand_dims('asset')" led
            # on to a missing close; they are inputs, not prices
            name = ds.attrs.get("name")
            raise DataError(
                f"{self.name} needs prices on (time, asset) with {list(self.requires)}; "
                f"{f'data set {name!r}' if name else 'the data'} has "
                f"{sorted(map(str, ds.data_vars))} on {tuple(map(str, ds.dims))}: not a "
                "price panel (a factor or macro series is an input, e.g. factor_momentum's "
                "factors=)")
        _validate.coords(ds, what=f"{self.name} data")
        # rolling windows count bars and ranks compare assets: unsorted or repeated
        # labels gave numbers without an error
        time, asset = ds.indexes["time"], ds.indexes["asset"]
        if asset.has_duplicates:
            raise DataError(f"{self.name}: duplicate asset {asset[asset.duplicated()][0]!r}")
        if not (time.is_monotonic_increasing and time.is_unique):
            i = int(np.flatnonzero(~(time[1:] > time[:-1]))[0])
            raise DataError(f"{self.name}: time must be strictly increasing; "
                            f"{str(time[i + 1])[:19]} comes after {str(time[i])[:19]}")
        if ds.sizes["time"] == 0 or ds.sizes["asset"] == 0:
            raise DataError(f"{self.name}: empty data set (time={ds.sizes['time']}, "
                            f"asset={ds.sizes['asset']})")
        if why := self.lacks(ds):
            raise ValueError(f"{self.name} {why}")
        for v in self.requires:
            if set(ds[v].dims) != {"time", "asset"}:
                raise DataError(f"{self.name}: data variable {v!r} has dims {ds[v].dims}; "
                                "expected ('time', 'asset')")
            _validate.real_array(f"{self.name}: data variable {v!r}", ds[v].dtype)
        # bools, integers and float16 as float64: bottleneck and pandas' fills have no
        # float16 or bool loops, and raised deep inside instead of computing; float32 too:
        # a decision computed in float32 differed (up to 1e-4) from the same prices' in
        # float64, which a deployment buffers, so its live run left the backtest's
        ds = ds.assign({v: ds[v].astype(np.float64) for v in self.requires
                        if ds[v].dtype != np.float64})
        ds = ds.transpose("time", "asset", ...)
        # ±inf is no price or volume (NaN is "no bar"): it was taken as data (an inf close
        # ranked top by momentum, |r| / inf = 0 "liquid"), inf-driven numbers without an
        # error; refused as ql.data.validate refuses it (lazily on a dask-backed panel)
        ds = ds.assign({v: _finite(ds[v], f"{self.name}: data variable {v!r}")
                        for v in self.requires if ds[v].dtype.kind == "f"})
        unknown = [k for k in inputs if k not in self.inputs]
        if unknown:   # s.signal(ds, window=10): "_signal() got an unexpected keyword"
            params = [k for k in unknown if k in self.defaults]
            raise TypeError(f"{self.name}: unknown input(s) {unknown}; its external inputs "
                            f"are {list(self.inputs)}" + (
                                f" ({params} are parameters: ql.strategies.get("
                                f"{self.name!r}, {params[0]}=...))" if params else ""))
        absent = [i for i in self.inputs if i not in inputs]
        if absent:
            raise ValueError(f"{self.name} needs the external input(s) {absent}: pass them, "
                             f"e.g. s.signal(ds, **s.default_inputs(ds))")
        self._check_inputs(ds, inputs)
        return ds

    def _check_inputs(self, ds, inputs) -> None:
        """Check the external inputs' types and indexes (override; raise DataError)."""

    @staticmethod
    def _clip(sig: xr.DataArray) -> xr.DataArray:
        return sig.clip(-1.0, 1.0).transpose("time", "asset").rename("signal")


def _readable(inputs: dict) -> dict:
    """The external inputs through ``_validate.numpy_data``: big-endian factors failed in
    pandas' reindex ("Big-endian buffer not supported on little-endian compiler")."""
    return {k: _validate.numpy_data(v) for k, v in inputs.items()}


def _finite(x: xr.DataArray, what: str) -> xr.DataArray:
    """``x`` (time, asset), refused (DataError naming ``what``, the count, the first asset
    and time) if it holds ±inf; a dask-backed ``x`` is checked block by block as it is
    computed (the error is raised then)."""
    time, asset = x.indexes["time"], x.indexes["asset"]

    def check(block, t0=0, a0=0, whole=True):
        bad = np.isinf(block)
        if bad.any():
            i, j = np.argwhere(bad)[0][:2]
            n = f"{int(bad.sum())} infinite value(s), the first" if whole else \
                "an infinite value (in a chunk computed)"
            raise DataError(f"{what} has {n} of asset {asset[a0 + j]!r} at "
                            f"{str(time[t0 + i])[:19]}; a price or volume must be finite "
                            "(NaN = no bar)")
        return block

    if not isinstance(x.data, np.ndarray):    # dask: each block when computed
        def lazy(block, block_info=None):
            loc = block_info[0]["array-location"] if block_info else ((0, 0), (0, 0))
            return check(block, loc[0][0], loc[1][0], whole=False)
        return x.copy(data=x.data.map_blocks(lazy, dtype=x.dtype))
    check(x.values)
    return x


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator adding a strategy to the registry under ``cls.name``.

    Parameters
    ----------
    cls : type
        A :class:`Strategy` subclass with a non-empty ``name``.

    Returns
    -------
    type
        ``cls``, unchanged.

    Raises
    ------
    TypeError
        If ``cls`` is not a Strategy subclass or has no name.
    ValueError
        If ``name`` is a bundled strategy's (registering a name again from the same
        code, e.g. re-running a notebook cell, replaces the class).

    Examples
    --------
    See :class:`Strategy` for a full strategy.

    >>> import quantlab as ql
    >>> ql.strategies.register(int)
    Traceback (most recent call last):
    ...
    TypeError: register a Strategy subclass with a non-empty `name`
    """
    if not (isinstance(cls, type) and issubclass(cls, Strategy) and cls.name):
        raise TypeError("register a Strategy subclass with a non-empty `name`")
    had = _REGISTRY.get(cls.name)
    # a user's class of a bundled name replaced it for every caller, without a word
    if had is not None and had.__module__.startswith("quantlab.") \
            and not cls.__module__.startswith("quantlab."):
        raise ValueError(f"strategy name {cls.name!r} is taken by quantlab's "
                         f"{had.__module__}.{had.__qualname__}; choose another name")
    _REGISTRY[cls.name] = cls
    return cls


def names(family: str | None = None) -> list[str]:
    """Registry names of every available strategy, or of one ``family``.

    Parameters
    ----------
    family : {'traditional', 'unconventional'}, optional
        The module that defines them.

    Returns
    -------
    list of str
        Sorted names.

    Raises
    ------
    ValueError
        If ``family`` is unknown.

    Examples
    --------
    >>> import quantlab as ql
    >>> ql.strategies.names("traditional")
    ['cross_sectional_momentum', 'factor_momentum', 'liquidity_timing', 'spc', 'volatility_regime']
    """
    _plugins.load()   # at the first look-up: a plugin imports this package (no cycle)
    if family is None:
        return sorted(_REGISTRY)
    found = sorted(k for k, cls in _REGISTRY.items()
                   if cls.__module__.rsplit(".", 1)[-1] == family)
    if not found:
        raise ValueError(f"unknown strategy family {family!r}: 'traditional' or "
                         "'unconventional'")
    return found


def get(name: str, **params) -> Strategy:
    """The strategy ``name`` (or a seed alias) with ``params``.

    The seed's parameter names are accepted too (``quantlab.compat.PARAM_ALIASES``).

    Parameters
    ----------
    name : str
        A name from :func:`names` or an alias in ``ALIASES`` (e.g. ``"volatility"``).
    **params
        Parameter values (see :class:`Strategy`).

    Returns
    -------
    Strategy

    Raises
    ------
    ValueError
        If ``name`` is unknown (the closest name is suggested) or a parameter is invalid.

    Examples
    --------
    >>> import quantlab as ql
    >>> ql.strategies.get("volatility", window=10)
    ql.strategies.get('volatility_regime', window=10, lookback=252, threshold=0.8, target_vol=0.15)
    """
    if not isinstance(name, str):
        raise TypeError(f"strategy name must be a string (ql.strategies.names()), got "
                        f"{type(name).__name__}")
    key = ALIASES.get(name, name)
    _plugins.load()
    if key not in _REGISTRY:
        # the names are lower case: 'SPC' and ' spc' are near 'spc'
        near = difflib.get_close_matches(name.strip().lower(), names() + list(ALIASES), n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise ValueError(f"unknown strategy {name!r}.{hint} Available: {', '.join(names())}. "
                         f"A strategy of yours is known where its module ran @register: "
                         f"name that module (or .py file) in ${_plugins.ENV} for the "
                         f"quantlab command, notebooks run in batch and dask workers")
    return _REGISTRY[key](**seed_params(key, params))


def resolve(strategy) -> Strategy:
    """A Strategy from a registry name (or alias), a Strategy class (its defaults) or a Strategy (as given).

    What sweeps and optimisers accept.

    Parameters
    ----------
    strategy : str, type or Strategy

    Returns
    -------
    Strategy

    Raises
    ------
    TypeError
        If ``strategy`` is none of these.
    ValueError
        If a name is unknown.

    Examples
    --------
    >>> import quantlab as ql
    >>> ql.strategies.resolve("spc")
    ql.strategies.get('spc', span=252, k=0.5, h=4.0)
    """
    if isinstance(strategy, str):
        return get(strategy)
    if isinstance(strategy, type) and issubclass(strategy, Strategy):
        return strategy()
    if isinstance(strategy, Strategy):
        return strategy
    raise TypeError(f"strategy must be a registry name, a Strategy or a Strategy class, "
                    f"got {type(strategy).__name__}")


from quantlab.strategies import traditional, unconventional  # noqa: E402,F401  (registers them)
