"""Names kept only so the seed's calls keep working, in one place. New code uses the
quantlab names they map to; nothing here adds behaviour of its own.

``BacktestingEngine(initial_capital, commission_per_trade, slippage_bps, risk_free_rate)``
    ``.run_backtest(signals, price_data)`` is ``ql.backtest(price_data, signals,
    init_cash=initial_capital, fees=commission_per_trade, slippage=slippage_bps / 1e4)``
    with the annual ``risk_free_rate`` set on the result (``res["total_return"]``,
    ``res.metrics()`` use it).
``TICK_RESULT_KEYS``, ``TICK_RESULT_UNITS``, ``tick_result_item``
    ``result["order_count"]``, ``result.get("signal_count", default)`` (the seed read tick
    results as dicts) are the attributes of ``ql.engine.TickResult`` of the same name;
    ``result["processing_latency_ms"]`` is ``processing_time_us / 1000``.
    ``TickResult.__getitem__`` / ``get`` / ``keys`` delegate here.
``ALERT_RULES``
    the seed's alert names ``max_latency_us`` (the p99 latency: the engine samples
    latencies, it has no true maximum), ``max_error_rate``, ``min_success_rate`` -> the
    ``AlertMonitor`` rules ``p99_latency_us``, ``error_rate``, ``success_rate`` (a "min"
    rule: it fires when the success rate, 1 - error rate, is below its limit).
``ENVIRONMENT``, ``CONFIG_SECTIONS``
    the seed's environment variables ``MAX_DRAWDOWN`` (a fraction), ``LOG_LEVEL``,
    ``LOG_FILE`` -> the engine settings ``risk.max_drawdown_pct``, ``log.level``,
    ``log.file``; the config section ``logging`` is ``log``.
``PARAM_ALIASES``, ``PARAM_REFUSED``
    the seed's strategy parameter names accepted by ``ql.strategies.get``:
    ``attention_lookback`` / ``attention_threshold`` are ``attention``'s ``window`` /
    ``threshold``, ``hurst_window`` / ``fractal_window`` are ``fractal_chaos``'s ``window``.
    Seed names with no quantlab equal (``volume_multiplier``, ``hurst_threshold``) are a
    TypeError naming the closest quantlab strategy and parameter and how it differs.
``WalkForwardOptimizer.optimize_strategy``
    ``seed_walk_forward``: ``.run(...)``, with the seed's keywords as above.
``ALIASES``
    the seed's strategy short names ``"momentum"``, ``"volatility"``, ``"liquidity"``,
    ``"factor"``, ``"sentiment"`` -> registry names, accepted by ``ql.strategies.get`` /
    ``resolve`` and ``run_research_analysis(analysis_type=)``.
``OPTIMIZER_KEYWORDS``, ``seed_optimizer_arguments``
    ``optimize_strategy_parameters(strategy_class=, parameter_bounds=, price_data=)`` are
    ``strategy=``, ``param_bounds=``, ``data=``.
"""
from __future__ import annotations

from quantlab import _validate
from quantlab.backtesting import backtest

__all__ = ["BacktestingEngine", "TICK_RESULT_KEYS", "TICK_RESULT_UNITS", "tick_result_item",
           "ALERT_RULES", "ENVIRONMENT", "CONFIG_SECTIONS", "ALIASES", "PARAM_ALIASES",
           "PARAM_REFUSED", "seed_params", "OPTIMIZER_KEYWORDS", "seed_optimizer_arguments",
           "seed_walk_forward"]


# ---- backtest facade -----------------------------------------------------------------

class BacktestingEngine:
    """The seed's backtesting facade over :func:`quantlab.backtest`.

    ``BacktestingEngine(initial_capital=100000, commission_per_trade=0.001,
    slippage_bps=5, risk_free_rate=0.02).run_backtest(signals, price_data)``;
    ``result["total_return"]`` etc. work.

    Parameters
    ----------
    initial_capital : float, default 100000.0
        ``init_cash`` (> 0).
    commission_per_trade : float, default 0.001
        ``fees``: a fraction of traded value, in [0, 1).
    slippage_bps : float, default 5.0
        ``slippage = bps / 1e4``, in [0, 1e4).
    risk_free_rate : float, default 0.02
        Annual (> -1), the default of the result's metrics.

    Raises
    ------
    ValueError
        If a parameter is out of range.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds)
    >>> engine = ql.BacktestingEngine(commission_per_trade=0.001, slippage_bps=5)
    >>> engine.run_backtest(sig, ds)["total_return"].round(4).values
    array([ 0.0137,     nan,  0.0466, -0.2449])
    """

    def __init__(self, initial_capital=100_000.0, commission_per_trade=0.001, slippage_bps=5.0,
                 risk_free_rate=0.02):
        self.initial_capital = _validate.number("initial_capital", initial_capital, 0, None,
                                                lo_open=True)
        self.fees = _validate.number("commission_per_trade", commission_per_trade, 0, 1,
                                     hi_open=True)
        self.slippage = _validate.number("slippage_bps", slippage_bps, 0, 1e4,
                                         hi_open=True) / 1e4
        self.risk_free_rate = _validate.number("risk_free_rate", risk_free_rate, -1, None,
                                               lo_open=True)

    def run_backtest(self, signals, price_data, **kw):
        """Backtest ``signals`` on ``price_data`` with this engine's capital and costs.

        Parameters
        ----------
        signals : xarray.DataArray
            Target exposure in [-1, 1] on (time, asset).
        price_data : xarray.Dataset
            Prices on (time, asset).
        **kw
            Other options of :func:`quantlab.backtest`.

        Returns
        -------
        BacktestResult
            With ``risk_free_rate`` set to the engine's.

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 300))
        >>> sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds)
        >>> res = ql.BacktestingEngine().run_backtest(sig, ds)
        >>> res.risk_free_rate, res["total_return"].round(4).values
        (0.02, array([ 0.0137,     nan,  0.0466, -0.2449]))
        """
        res = backtest(price_data, signals, init_cash=self.initial_capital, fees=self.fees,
                       slippage=self.slippage, **kw)
        res.risk_free_rate = self.risk_free_rate
        return res


# ---- tick results read as dicts ------------------------------------------------------

# the seed's result keys -> TickResult attributes
TICK_RESULT_KEYS = {k: k for k in ("ticks", "signal_count", "order_count", "rejected_ticks",
                                   "rejected_orders", "processing_time_us", "orders")}


# the seed's keys in other units -> (TickResult attribute, factor)
TICK_RESULT_UNITS = {"processing_latency_ms": ("processing_time_us", 1e-3)}


def tick_result_item(result, key):
    """``result[key]`` for a ``TickResult``: the seed read its results as dicts.

    Another key is a KeyError listing the keys (attributes such as ``order_array`` are read
    as attributes, not as seed keys).

    Parameters
    ----------
    result : TickResult
        A tick engine result.
    key : str
        A seed key (``TICK_RESULT_KEYS`` or ``TICK_RESULT_UNITS``).

    Returns
    -------
    object
        The attribute, converted to the seed's units where they differ.

    Raises
    ------
    KeyError
        For another key.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from quantlab import compat
    >>> result = SimpleNamespace(processing_time_us=2500.0, order_count=3)
    >>> compat.tick_result_item(result, "order_count"), compat.tick_result_item(result, "processing_latency_ms")
    (3, 2.5)
    """
    try:
        if key in TICK_RESULT_UNITS:
            attr, factor = TICK_RESULT_UNITS[key]
            return getattr(result, attr) * factor
        return getattr(result, TICK_RESULT_KEYS[key])
    except (KeyError, TypeError):    # TypeError: an unhashable key
        raise KeyError(f"TickResult has no key {key!r}; keys (the seed's): "
                       f"{', '.join([*TICK_RESULT_KEYS, *TICK_RESULT_UNITS])}") from None


# ---- alert rules ---------------------------------------------------------------------

# the seed's alert names -> AlertMonitor rules (AlertMonitor.MAX_RULES / MIN_RULES)
ALERT_RULES = {"max_latency_us": "p99_latency_us", "max_error_rate": "error_rate",
               "min_success_rate": "success_rate"}


# ---- engine settings -----------------------------------------------------------------

# the seed's environment variables -> engine config keys (quantlab.engine.config)
ENVIRONMENT = {"MAX_DRAWDOWN": "risk.max_drawdown_pct", "LOG_LEVEL": "log.level",
               "LOG_FILE": "log.file"}
# config section names -> quantlab's
CONFIG_SECTIONS = {"logging": "log"}


# ---- strategy names ------------------------------------------------------------------

# the seed's short names -> registry names
ALIASES = {"momentum": "cross_sectional_momentum", "volatility": "volatility_regime",
           "liquidity": "liquidity_timing", "factor": "factor_momentum",
           "sentiment": "sentiment_regime"}


# the seed's strategy parameter names -> quantlab's, per registry name
PARAM_ALIASES = {
    "attention": {"attention_lookback": "window", "attention_threshold": "threshold"},
    "fractal_chaos": {"hurst_window": "window", "fractal_window": "window"},
}
# the seed's parameter names with no quantlab equal (any strategy): why, what to use
PARAM_REFUSED = {
    "volume_multiplier": "the seed flags volume above volume_multiplier x its average; "
    "the closest is the attention strategy, whose score is the mean of trailing z-scores "
    "of log volume, log range and overnight gap over `window` bars, a shock being a score "
    "above `threshold` (a z-score, default 2.0): use ql.strategies.get('attention', "
    "threshold=...)",
    "hurst_threshold": "fractal_chaos trends when H > 0.5 + band and reverts when "
    "H < 0.5 - band: use ql.strategies.get('fractal_chaos', band=hurst_threshold - 0.5)",
}


def seed_params(name: str, params: dict) -> dict:
    """``params`` of strategy ``name`` with the seed's names (``PARAM_ALIASES``) replaced by quantlab's.

    Parameters
    ----------
    name : str
        A registry name.
    params : dict
        Parameters, possibly with the seed's names.

    Returns
    -------
    dict

    Raises
    ------
    TypeError
        Never a silently dropped or misread value: for a seed name together with the
        quantlab name it stands for, or two seed names of one parameter; a seed name
        without a quantlab equal (``PARAM_REFUSED``: says what to use); a seed name of
        another strategy's parameter.

    Examples
    --------
    >>> from quantlab import compat
    >>> compat.seed_params("attention", {"attention_lookback": 30})
    {'window': 30}
    >>> compat.seed_params("attention", {"attention_lookback": 30, "window": 20})
    Traceback (most recent call last):
    ...
    TypeError: attention: 'attention_lookback' and 'window' are one parameter ('window'); give it once
    """
    for old, why in PARAM_REFUSED.items():
        if old in params:
            raise TypeError(f"{name}: the seed's parameter {old!r} has no quantlab equal: "
                            f"{why}")
    aliases = PARAM_ALIASES.get(name, {})
    out = {}
    for key, value in params.items():
        if key not in aliases:
            owners = [f"{s}'s {t[key]!r}" for s, t in PARAM_ALIASES.items() if key in t]
            if owners:
                raise TypeError(f"{name}: {key!r} is the seed's name of "
                                f"{' and '.join(owners)}, not a parameter of {name}")
        new = aliases.get(key, key)
        if new in out:
            given = [k for k in params if aliases.get(k, k) == new]
            raise TypeError(f"{name}: {' and '.join(map(repr, given))} are one parameter "
                            f"({new!r}); give it once")
        out[new] = value
    return out


# ---- optimiser keywords --------------------------------------------------------------

# the seed's optimize_strategy_parameters keywords -> quantlab's
OPTIMIZER_KEYWORDS = {"strategy_class": "strategy", "parameter_bounds": "param_bounds",
                      "price_data": "data"}


def seed_optimizer_arguments(strategy, param_bounds, data, *, strategy_class=None,
                             parameter_bounds=None, price_data=None) -> tuple:
    """``(strategy, param_bounds, data)`` with each seed keyword standing in for the quantlab one it names (``OPTIMIZER_KEYWORDS``).

    Parameters
    ----------
    strategy, param_bounds, data : object
        The quantlab arguments (None when not given).
    strategy_class, parameter_bounds, price_data : object, optional
        The seed's names of the same arguments.

    Returns
    -------
    tuple
        ``(strategy, param_bounds, data)``.

    Raises
    ------
    TypeError
        If both names of one argument are given: one of them would be silently ignored.

    Examples
    --------
    >>> from quantlab import compat
    >>> compat.seed_optimizer_arguments(None, None, None, strategy_class="spc",
    ...                                 parameter_bounds={"k": (0.1, 1.0)})
    ('spc', {'k': (0.1, 1.0)}, None)
    """
    given = {"strategy": strategy, "param_bounds": param_bounds, "data": data}
    seed = {"strategy_class": strategy_class, "parameter_bounds": parameter_bounds,
            "price_data": price_data}
    for old, value in seed.items():
        if value is None:
            continue
        new = OPTIMIZER_KEYWORDS[old]
        if given[new] is not None:
            raise TypeError(f"optimize_strategy_parameters got both {new}= and its seed "
                            f"name {old}=; give one")
        given[new] = value
    return given["strategy"], given["param_bounds"], given["data"]


def seed_walk_forward(optimizer, strategy=None, param_bounds=None, data=None, *,
                      strategy_class=None, parameter_bounds=None, price_data=None,
                      **backtest_kw):
    """``WalkForwardOptimizer.optimize_strategy(...)``, the seed's name for ``.run(...)``.

    The seed's keywords (``OPTIMIZER_KEYWORDS``) are accepted as in
    ``optimize_strategy_parameters``.

    Parameters
    ----------
    optimizer : WalkForwardOptimizer
        The optimiser to run.
    strategy, param_bounds, data : object, optional
        As in :meth:`WalkForwardOptimizer.run`.
    strategy_class, parameter_bounds, price_data : object, optional
        The seed's names of the same arguments.
    **backtest_kw
        Options of ``ql.backtest``.

    Returns
    -------
    WalkForwardResult

    Raises
    ------
    TypeError
        If both names of one argument are given.

    Examples
    --------
    >>> import quantlab as ql
    >>> from quantlab import compat, optimize
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> wf = optimize.WalkForwardOptimizer(optimization_window=100, validation_window=50,
    ...     step_size=50, optimization_method="grid", n_trials=2, progress=False)
    >>> out = compat.seed_walk_forward(wf, strategy_class=ql.strategies.get(
    ...     "volatility_regime", lookback=60), parameter_bounds={"window": [10, 21]}, price_data=ds)
    >>> len(out.folds)
    4
    """
    strategy, param_bounds, data = seed_optimizer_arguments(
        strategy, param_bounds, data, strategy_class=strategy_class,
        parameter_bounds=parameter_bounds, price_data=price_data)
    if strategy is None:
        raise TypeError("optimize_strategy (the seed's name of WalkForwardOptimizer.run) "
                        "needs a strategy: a registry name, Strategy or Strategy class")
    return optimizer.run(strategy, param_bounds, data, **backtest_kw)
