"""Every backtest argument but the data and the signal, checked once (``BacktestOptions``).

One table, ``_CHECKS``, maps each argument to its checker (``quantlab._validate``'s
``integer``/``number``/``choice``, in the spirit of scikit-learn's parameter
constraints); the few rules that relate two arguments follow it in
``BacktestOptions._check_together``. Each error names the argument, the value and the
allowed range.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import xarray as xr

from quantlab import _validate, metrics, rolling
from quantlab._kernels import backtest as _k
from quantlab.data import returns
from quantlab.errors import DataError

# `param` is shared with the other backtesting layers, not public API
__all__ = ["BacktestOptions", "Slippage", "DD_MODES", "SIZE_TYPES", "STREAMED_EXTRAS",
           "MAX_LEVERAGE"]

# dd_limit's modes: "cooldown" flat for dd_cooldown bars then back in with the peak
# restarted; "halt" measured from the all-time peak and flat for the rest of the run
DD_MODES = ("cooldown", "halt")
MAX_LEVERAGE = 100.0   # a sanity bound: gross exposure of 100 x equity
# the kernel's size types (cython_kernels/backtest.pyx S_*), in its order
SIZE_TYPES = _k.SIZE_TYPES
# backtest-only metrics a metrics-only run accumulates (n_trades needs the order list)
STREAMED_EXTRAS = ("fees_paid", "turnover", "exposure", "n_orders")
# BacktestResult.metrics()' variables beyond ql.metrics.summary's
RESULT_METRICS = ("exposure", "n_trades", "fees_paid", "turnover", "trade_win_rate",
                  "trade_profit_factor")


def metric_variables() -> set:
    """Every variable a backtest's metrics Dataset (``metrics()`` or ``metrics_only``) can
    hold: a parameter dim of that name would be its variable and its coordinate at once."""
    return ({n for n, (_, needs_b) in metrics.METRICS.items() if not needs_b}
            | set(RESULT_METRICS) | set(STREAMED_EXTRAS))


def no_metric_dims(dims, where: str) -> None:
    """Refuse parameter dims named like a metric (``metric_variables``), naming them: such
    a dim would be its variable and its coordinate at once in the metrics Dataset
    (xarray replaced the dim's labels with the metric's values, or raised). One check,
    one wording: ``ql.backtest`` before the run, ``metrics()`` for results made
    otherwise."""
    clash = sorted(set(dims) & metric_variables())
    if clash:
        # a metric of the user's named as a strategy's parameter: the sweep's dim has
        # the parameter's name, which cannot be renamed; the metric can
        own = sorted(set(clash) & set(metrics.registered()))
        raise ValueError(f"{where}: parameter dim name(s) {clash} share a name with a metric "
                         "of the result; rename the signal's (or swept option's) dim"
                         + (f", or register the metric(s) {own} (ql.metrics.register) "
                            "under another name" if own else ""))


@dataclass(frozen=True)
class Slippage:
    """A slippage model, evaluated from data up to the decision bar only.

    - ``Slippage("fixed", bps=5)``: a constant fraction bps / 1e4 of the price.
    - ``Slippage("volume_based", coef=0.1, cap=0.05, window=20, bps=0)``: square-root
      market impact (Almgren et al. 2005; Kissell & Glantz 2003): slippage of an order of
      Δ shares = bps/1e4 + min(coef · σ · sqrt(|Δ| / V), cap) with σ the ``window``-bar
      std of returns and V the bar's volume (a bar of volume 0 pays the cap). Needs
      ``volume``.
    - ``Slippage("adaptive", bps=2, vol_mult=0.1, range_mult=0.1, window=20)``:
      bps/1e4 + vol_mult · σ + range_mult · (high - low) / close of the decision bar: wider
      in volatile markets. Needs ``high`` and ``low``.

    Parameters
    ----------
    model : {'fixed', 'volume_based', 'adaptive'}, default 'fixed'
        The model.
    bps : float, default 0.0
        Constant part, in basis points.
    coef : float, default 0.1
        Impact coefficient (``volume_based``).
    cap : float, default 0.05
        Largest impact (``volume_based``).
    window : int, default 20
        Bars of the returns' std σ.
    vol_mult : float, default 0.1
        Weight of σ (``adaptive``).
    range_mult : float, default 0.1
        Weight of the bar's range (``adaptive``).

    Raises
    ------
    ValueError
        If ``model`` is unknown or a parameter is out of range.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds)
    >>> res = ql.backtest(ds, sig, slippage=ql.Slippage("fixed", bps=5))
    >>> res.metrics()["total_return"].round(4).values
    array([ 0.0233,     nan,  0.0597, -0.2366])
    >>> ql.Slippage("volume")
    Traceback (most recent call last):
    ...
    ValueError: unknown slippage model 'volume'; use fixed, volume_based or adaptive
    """

    model: str = "fixed"
    bps: float = 0.0
    coef: float = 0.1
    cap: float = 0.05
    window: int = 20
    vol_mult: float = 0.1
    range_mult: float = 0.1

    def __post_init__(self):
        if self.model not in ("fixed", "volume_based", "adaptive"):
            raise ValueError(f"unknown slippage model {self.model!r}; use fixed, "
                             "volume_based or adaptive")
        # a slippage fraction of 1 or more would fill a sell at a price <= 0
        checked = dict(
            bps=_validate.number("Slippage bps", self.bps, 0, 1e4, hi_open=True),
            coef=_validate.number("Slippage coef", self.coef, 0),
            cap=_validate.number("Slippage cap", self.cap, 0, 1, hi_open=True),
            window=_validate.integer("Slippage window", self.window, 2),
            vol_mult=_validate.number("Slippage vol_mult", self.vol_mult, 0),
            range_mult=_validate.number("Slippage range_mult", self.range_mult, 0))
        if self.model == "volume_based" and checked["bps"] / 1e4 + checked["cap"] >= 1:
            raise ValueError(f"Slippage('volume_based'): bps / 1e4 + cap must be < 1 (the "
                             f"largest slippage), got {checked['bps'] / 1e4 + checked['cap']!r}")
        for k, v in checked.items():   # frozen: set the converted values once
            object.__setattr__(self, k, v)

    def panels(self, ds: xr.Dataset, prev=None) -> tuple[xr.DataArray, xr.DataArray, float]:
        """The model's cost panels on (time, asset), as the kernel reads them.

        Slippage of an order of Δ shares = base + min(impact · sqrt(|Δ|), cap), as a
        fraction of the execution price.

        Parameters
        ----------
        ds : xarray.Dataset
            The bars, with ``close`` (and ``volume`` for "volume_based", ``high`` and
            ``low`` for "adaptive").
        prev : numpy.ndarray, optional
            Per asset, the last valid close before ``ds``'s first bar (a time chunk's):
            each asset's first return is measured from it, as in the whole panel.

        Returns
        -------
        base : xarray.DataArray
            Fixed fraction per bar (bps / 1e4, plus the adaptive model's volatility and
            range terms).
        impact : xarray.DataArray
            Coefficient per sqrt(share) (0 except "volume_based").
        cap : float
            Upper bound of the impact term.

        Raises
        ------
        DataError
            If a variable the model reads is missing.

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 300))
        >>> base, impact, cap = ql.Slippage("adaptive", bps=5).panels(ds)
        >>> base.dims, round(float(base.isel(time=-1, asset=0)), 4), cap
        (('time', 'asset'), 0.0119, 0.05)
        >>> ql.Slippage("volume_based").panels(ds.drop_vars("volume"))
        Traceback (most recent call last):
        ...
        quantlab.errors.DataError: Slippage('volume_based') needs a 'volume' variable
        """
        close = ds["close"].transpose("time", "asset")

        def const(v):  # a stride-0 view: no 20 MB panel for a constant (and the
            # coordinates shared, not deep-copied: ~0.6 ms a streamed run's time chunk)
            return close.copy(deep=False, data=np.broadcast_to(np.float64(v), close.shape))

        base, impact = const(self.bps / 1e4), const(0.0)
        if self.model == "volume_based":
            if "volume" not in ds:
                raise DataError("Slippage('volume_based') needs a 'volume' variable")
            sigma = rolling.std(_returns(close, prev), self.window, min_periods=2)
            with np.errstate(divide="ignore", invalid="ignore"):
                # a bar of no volume has unbounded impact: inf, capped at ``cap`` by the
                # kernel (masked to 0, it filled at the close while 1e6 shares paid 6 bps)
                impact = self.coef * sigma / np.sqrt(ds["volume"])
            impact = impact.fillna(0.0)   # no sigma yet (or none and no volume): none
        elif self.model == "adaptive":
            missing = [v for v in ("high", "low") if v not in ds]
            if missing:
                raise DataError(f"Slippage('adaptive') needs {', '.join(missing)}")
            sigma = rolling.std(_returns(close, prev), self.window, min_periods=2).fillna(0.0)
            rng = ((ds["high"] - ds["low"]) / close).fillna(0.0)
            base = base + self.vol_mult * sigma + self.range_mult * rng
        return base, impact, self.cap


def _returns(close: xr.DataArray, prev) -> xr.DataArray:
    """``returns(close)`` on (time, asset), each asset's first valid bar measured from
    ``prev`` (its last valid close before the first row) where that is known: a time
    chunk whose history starts inside a gap gives the whole panel's returns."""
    r = returns(close)
    if prev is None:
        return r
    c = close.values
    valid = ~np.isnan(c)
    cols = np.flatnonzero(valid.any(axis=0) & ~np.isnan(prev))
    rows = valid.argmax(axis=0)[cols]
    out = r.values.copy()
    out[rows, cols] = c[rows, cols] / prev[cols] - 1.0
    return r.copy(data=out)


def last_valid(close, prev):
    """Per asset (column), the last valid value of ``close`` (rows in time order; a NumPy
    array or a (time, asset) DataArray, also dask-backed), else ``prev`` (None: NaN): the
    close a later chunk's (or bar's) first return is measured
    from (:func:`_returns`' ``prev``)."""
    if not len(close):
        return prev
    out = np.full(close.shape[1], np.nan) if prev is None else prev.copy()
    todo, end, step = np.arange(close.shape[1]), close.shape[0], 16
    while todo.size and end:   # from the last rows back, in growing blocks: most columns
        start = max(end - step, 0)   # end on a valid value (a lazy panel reads no more)
        block = np.asarray(close[start:end])[:, todo]
        valid = ~np.isnan(block)
        found = valid.any(axis=0)
        rows = block.shape[0] - 1 - valid[::-1].argmax(axis=0)
        out[todo[found]] = block[rows[found], np.flatnonzero(found)]
        todo, end, step = todo[~found], start, step * 4
    return out


def param(name, v, lo=None, hi=None, *, lo_open=False, hi_open=False, finite=True,
          nan_ok=False) -> xr.DataArray:
    """A numeric option as a 0-d DataArray (a scalar) or the DataArray itself (a sweep over
    its dims), every value in the range (``_validate.number``'s rules and words; NaN
    passes only with ``nan_ok``, where it means "off"). A DataArray needs a coordinate
    for each of time/asset it has: it is matched to the data by its labels."""
    if not isinstance(v, xr.DataArray):
        if nan_ok and isinstance(v, (float, np.floating)) and np.isnan(v):
            return xr.DataArray(np.nan)
        return xr.DataArray(_validate.number(name, v, lo, hi, lo_open=lo_open,
                                             hi_open=hi_open, finite=finite))
    _validate.coords(v, tuple(d for d in ("time", "asset") if d in v.dims), what=name)
    _validate.real_array(name, v.dtype)
    a = np.asarray(v.values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ok = ~np.isnan(a) & (np.isfinite(a) | (not finite))
        if lo is not None:
            ok &= (a > lo) if lo_open else (a >= lo)
        if hi is not None:
            ok &= (a < hi) if hi_open else (a <= hi)
    bad = ~ok & ~(np.isnan(a) if nan_ok else np.zeros(a.shape, bool))
    if bad.any():   # raises, worded as for a scalar
        _validate.number(name, float(a.ravel()[np.flatnonzero(bad)[0]]), lo, hi,
                         lo_open=lo_open, hi_open=hi_open, finite=finite)
    return v.astype(np.float64)


# --- checkers: each takes (name, value) and returns the converted value or raises ----

def _number(lo=None, hi=None, **kw):
    return lambda name, v: _validate.number(name, v, lo, hi, **kw)


def _integer(lo=None, hi=None):
    return lambda name, v: _validate.integer(name, v, lo, hi)


def _choice(*options):
    return lambda name, v: _validate.choice(name, v, options)


def _optional(check):   # None = off / default
    return lambda name, v: None if v is None else check(name, v)


def _labelled(label, check):   # the error names the argument as ``label``
    return lambda name, v: check(label, v)


def _sweep(not_over=(), **rng):
    """A number or a DataArray of numbers (a sweep: its dims become dims of the result),
    never varying over the dims ``not_over``."""
    def check(name, v):
        v = param(name, v, **rng)
        bad = set(v.dims) & set(not_over)
        if bad:
            # costs are per parameter combination; price levels may also vary by asset
            over = ("parameter dims only, not " + str(sorted(bad)) if "asset" in not_over
                    else "asset and parameter dims, not time")
            raise ValueError(f"{name} may vary over {over}")
        return v
    return check


def _slippage(name, v):
    if isinstance(v, Slippage):
        return v
    if isinstance(v, dict):   # to_dict's form: options read back from JSON or YAML
        try:
            return Slippage(**v)
        except TypeError as e:
            raise TypeError(f"{name} {_validate._show(v)}: {e}") from None
    return Slippage("fixed", bps=_validate.number(name, v, 0, 1, hi_open=True) * 1e4)


def metric_names(name, v):
    """The metric names ``v`` (one name, a sequence of them, or True for every metric a
    metrics-only run keeps; False: none) for argument ``name``, checked: each once, in the
    order given; unknown ones are refused with the names available."""
    available = (*metrics.streaming_names(), *STREAMED_EXTRAS)
    if isinstance(v, (bool, np.bool_)):
        return available if v else None
    if isinstance(v, str):
        names = (v,)
    elif isinstance(v, Iterable) and not isinstance(v, xr.DataArray):
        names = tuple(dict.fromkeys(v))     # a repeated name once
    else:
        raise TypeError(f"{name} must be True, a metric name or a sequence of them, not "
                        f"{type(v).__name__}")
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"{name} must be metric names (str), got {names!r}")
    if not names:
        raise ValueError(f"{name} is empty: name at least one metric, or pass True for all")
    unknown = sorted(set(names) - set(available))
    if unknown:
        whole = [n for n in unknown if n in metrics.METRICS or n in RESULT_METRICS]
        why = (f" ({whole} need the whole return series or the trade list, which a "
               "metrics-only run does not keep: read them from res.metrics() of a full "
               "backtest)" if whole else "")
        raise ValueError(f"{name}: metric(s) {unknown} are not available in a metrics-only "
                         f"run{why}; choose from {', '.join(available)} (or True for all)")
    return names


# stops and the limit offset are fractions of a price (entry or close), per column
_STOP = _sweep(not_over=("time",), lo=0, lo_open=True, nan_ok=True)
_NAN_OFF = ("sl_stop", "tp_stop", "sl_trail")   # the options whose NaN means "off"


def _plain(name: str, v):
    """An option's plain (JSON) value: a DataArray holding one value (a one-value sweep,
    a size equal for every asset) as that number, a stop of NaN (off) as None, a slippage
    model as a dict of its fields; a DataArray of several values stays as it is."""
    if isinstance(v, xr.DataArray):
        if v.dtype.kind not in "biuf":
            return v
        flat = np.unique(v.values.astype(float))   # all NaNs as one
        if flat.size != 1:
            return v
        v = float(flat[0])
        return None if np.isnan(v) and name in _NAN_OFF else v   # NaN != NaN, not JSON
    if isinstance(v, Slippage):
        return {k: getattr(v, k) for k in v.__dataclass_fields__}
    if isinstance(v, tuple):
        return list(v)
    return v


# argument -> checker, in the order the checks run (the first bad argument is reported)
_CHECKS = {
    "init_cash": _number(0, None, lo_open=True),
    "max_leverage": _number(0, MAX_LEVERAGE, lo_open=True),
    "max_position_size": _optional(_number(0, None, lo_open=True, finite=False)),
    "borrow_rate": _number(0, 1, hi_open=True),
    "maintenance_margin": _number(0, 1, hi_open=True),
    "periods": _optional(_integer(1)),   # None: the data's calendar (resolved by dispatch)
    "accumulate": _validate.flag,   # a truthy string (vectorbt's "disabled") is refused
    "group": _validate.flag,
    "size_type": _choice(*SIZE_TYPES),
    "order_type": _choice("market", "limit"),
    "execution": _choice("close", "next_open"),
    "rebalance": _choice("on_change", "daily"),
    "dd_mode": _choice(*DD_MODES),
    "dd_limit": _optional(_number(0, 1, lo_open=True, hi_open=True)),
    "dd_cooldown": _integer(0),
    "limit_tif": _optional(_integer(1)),
    "size": _optional(_labelled("size (inf = all the buying power)",
                                _sweep(lo=0, finite=False))),
    "fees": _sweep(not_over=("time", "asset"), lo=0, hi=1, hi_open=True),
    "fixed_fees": _sweep(not_over=("time", "asset"), lo=0),
    "sl_stop": _optional(_labelled("sl_stop (NaN = off)", _STOP)),
    "tp_stop": _optional(_labelled("tp_stop (NaN = off)", _STOP)),
    "sl_trail": _optional(_labelled("sl_trail (NaN = off)", _STOP)),
    "limit_offset": _optional(_sweep(not_over=("time",), lo=0, hi=1, hi_open=True)),
    "slippage": _slippage,
    "metrics_only": _optional(metric_names),
}


@dataclass(frozen=True, eq=False)   # eq=False: fields may be DataArrays
class BacktestOptions:
    """The options of :func:`quantlab.backtest`, checked and converted once at construction.

    See :func:`quantlab.backtest` for each option. Numbers become floats/ints, sweepable
    options (``size``, ``fees``, ``fixed_fees``, stops, ``limit_offset``) 0-d or labelled
    DataArrays, ``slippage`` a :class:`Slippage`, ``metrics_only`` a tuple of names.

    Parameters
    ----------
    **options
        The keyword options of :func:`quantlab.backtest` (all but ``data``, ``signal``,
        ``entries`` and ``exits``).

    Raises
    ------
    ValueError, TypeError
        As :func:`quantlab.backtest`.

    Examples
    --------
    >>> import quantlab as ql
    >>> opts = ql.BacktestOptions(fees=0.001)
    >>> float(opts.fees), opts.to_dict()["fees"]
    (0.001, 0.001)
    """

    size: object = None
    accumulate: bool = False
    size_type: str = "equity"
    init_cash: float = 100_000.0
    fees: object = 0.0
    fixed_fees: object = 0.0
    slippage: object = 0.0
    max_position_size: float | None = None
    max_leverage: float = 1.0
    borrow_rate: float = 0.0
    maintenance_margin: float = 0.25
    execution: str = "close"
    rebalance: str = "on_change"
    group: bool = False
    periods: int | None = None
    sl_stop: object = None
    tp_stop: object = None
    sl_trail: object = None
    order_type: str = "market"
    limit_offset: object = None
    limit_tif: int | None = None
    metrics_only: object = None
    dd_limit: float | None = None
    dd_cooldown: int = 21
    dd_mode: str = "cooldown"

    def __post_init__(self):
        for name, check in _CHECKS.items():
            object.__setattr__(self, name, check(name, getattr(self, name)))
        self._check_together()
        if self.max_position_size is None:
            object.__setattr__(self, "max_position_size", self.max_leverage)
        if self.events and self.size is None:
            object.__setattr__(self, "size", xr.DataArray(np.inf))

    @property
    def events(self) -> bool:
        """Order events (``entries`` with ``size`` or ``accumulate``), not target exposures."""
        return self.size is not None or bool(self.accumulate)

    def _check_together(self):
        if self.max_leverage * self.maintenance_margin >= 1:
            # at full leverage equity / gross = 1 / max_leverage <= the margin: every order
            # would be margin-called on the bar it fills (silent churn)
            lev, mm = self.max_leverage, self.maintenance_margin
            raise ValueError(
                f"max_leverage * maintenance_margin must be < 1 (a fully levered account "
                f"holds equity 1/max_leverage of its positions, which must stay above the "
                f"margin), got max_leverage={lev!r} * maintenance_margin={mm!r}"
                f" = {lev * mm:.4g}; use max_leverage < "
                f"{1 / mm:.4g} or a lower maintenance_margin (0 = off)")
        if self.events and self.rebalance != "on_change":
            raise ValueError("rebalance='daily' applies to target exposures (signal=), not "
                             "to order events (entries= with size= or accumulate=True)")
        if self.order_type == "market" and (self.limit_offset is not None
                                            or self.limit_tif is not None):
            raise ValueError("limit_offset/limit_tif need order_type='limit'")
        if self.order_type == "limit":
            if self.limit_offset is None:
                raise ValueError("order_type='limit' needs limit_offset (a fraction from the "
                                 "signal bar's close, e.g. 0.01)")
            if self.execution != "close":
                raise ValueError("limit orders rest from the bar after the signal; use "
                                 "execution='close' with order_type='limit'")

    # ---- what a bar-by-bar run (a deployment, a time-chunked backtest) needs to know
    def needs(self) -> tuple:
        """Data variables these options read beyond ``close``.

        Returns
        -------
        tuple of str
            Sorted names: ``open`` for ``execution="next_open"``, ``volume`` or
            ``high``/``low`` for the slippage models that read them.

        Examples
        --------
        >>> import quantlab as ql
        >>> ql.BacktestOptions(execution="next_open", slippage=ql.Slippage("adaptive")).needs()
        ('high', 'low', 'open')
        """
        need = {"open"} if self.execution == "next_open" else set()
        if self.slippage.model == "volume_based":
            need.add("volume")
        elif self.slippage.model == "adaptive":
            need |= {"high", "low"}
        return tuple(sorted(need))

    def history_needed(self) -> int:
        """Bars (the current one included) the slippage model reads: its window of
        returns, one bar more for ``next_open`` (costs from the decision bar).

        Returns
        -------
        int
            1 for fixed slippage, else ``slippage.window + 1`` (+ 1 with ``next_open``).

        Examples
        --------
        >>> import quantlab as ql
        >>> ql.BacktestOptions().history_needed()
        1
        >>> ql.BacktestOptions(slippage=ql.Slippage("volume_based", window=20)).history_needed()
        21
        """
        if self.slippage.model == "fixed":
            return 1
        return self.slippage.window + 1 + (self.execution == "next_open")

    def n_accounts(self, n_assets: int) -> int:
        """Accounts a backtest of ``n_assets`` runs: one (``group=True``) or one per asset.

        Parameters
        ----------
        n_assets : int
            Assets in the panel.

        Returns
        -------
        int

        Examples
        --------
        >>> import quantlab as ql
        >>> ql.BacktestOptions().n_accounts(4), ql.BacktestOptions(group=True).n_accounts(4)
        (4, 1)
        """
        return 1 if self.group else n_assets

    def to_dict(self) -> dict:
        """Plain values (JSON): one combination only (no swept DataArray options).

        Returns
        -------
        dict
            Every option by name; the slippage model as a dict of its fields; a stop
            of NaN (off) as None.

        Raises
        ------
        ValueError
            If an option varies over a dim (a sweep): save one combination.

        Examples
        --------
        >>> import json, quantlab as ql
        >>> d = ql.BacktestOptions(fees=0.001, sl_stop=0.05).to_dict()
        >>> d["fees"], d["sl_stop"], d["slippage"]["model"]
        (0.001, 0.05, 'fixed')
        >>> len(json.dumps(d)) > 0
        True
        """
        out = {}
        for name in _CHECKS:
            v = _plain(name, getattr(self, name))
            if isinstance(v, xr.DataArray):
                raise ValueError(f"{name} varies over {v.dims}: save one combination")
            out[name] = v
        return out

    def differences(self, other: BacktestOptions) -> dict:
        """The options by which a run with ``other`` trades otherwise: ``{name: (mine,
        theirs)}``, leaving out ``periods`` (a label, or inferred from the bars) and
        ``metrics_only`` (what is returned). Values are :meth:`to_dict`'s; an option that
        varies over a dim (a sweep, a stop per asset) stays a DataArray, equal to another
        of the same values (NaN included) after broadcasting.

        Parameters
        ----------
        other : BacktestOptions

        Returns
        -------
        dict

        Examples
        --------
        >>> import quantlab as ql, xarray as xr
        >>> ql.BacktestOptions(fees=0.001).differences(ql.BacktestOptions(periods=365))
        {'fees': (0.001, 0.0)}
        >>> one = xr.DataArray([0.001], dims="fees")   # a sweep of one value
        >>> ql.BacktestOptions(fees=one).differences(ql.BacktestOptions(fees=0.001))
        {}
        """
        out = {}
        for name in _CHECKS:
            if name in ("periods", "metrics_only"):
                continue
            mine, theirs = _plain(name, getattr(self, name)), _plain(name, getattr(other, name))
            if isinstance(mine, xr.DataArray) or isinstance(theirs, xr.DataArray):
                # several values never equal one; NaNs at the same places are equal
                same = (isinstance(mine, xr.DataArray) and isinstance(theirs, xr.DataArray)
                        and xr.DataArray.equals(*xr.broadcast(mine, theirs)))
            else:
                same = mine == theirs
            if not same:
                out[name] = (mine, theirs)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> BacktestOptions:
        """Options from :meth:`to_dict`'s values, checked as by the constructor.

        Parameters
        ----------
        d : dict
            Option values by name (the slippage model as a dict or a :class:`Slippage`).

        Returns
        -------
        BacktestOptions

        Examples
        --------
        >>> import quantlab as ql
        >>> o = ql.BacktestOptions(fees=0.001, execution="next_open")
        >>> ql.BacktestOptions.from_dict(o.to_dict()).to_dict() == o.to_dict()
        True
        >>> ql.BacktestOptions.from_dict({"fees": -1})
        Traceback (most recent call last):
        ...
        ValueError: fees must be in [0, 1), got -1
        """
        return cls(**d)
