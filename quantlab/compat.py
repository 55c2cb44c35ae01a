"""Names kept only so the seed's calls keep working, in one place. New code uses the
quantlab names they map to; nothing here adds behaviour of its own.

``BacktestingEngine(initial_capital, commission_per_trade, slippage_bps, risk_free_rate)``
    ``.run_backtest(signals, price_data)`` is ``ql.backtest(price_data, signals,
    init_cash=initial_capital, fees=commission_per_trade, slippage=slippage_bps / 1e4)``
    with the annual ``risk_free_rate`` set on the result (``res["total_return"]``,
    ``res.metrics()`` use it).
``TICK_RESULT_KEYS``, ``tick_result_item``
    ``result["order_count"]`` (the seed read tick results as dicts) is the attribute of
    ``ql.engine.TickResult`` of the same name; ``TickResult.__getitem__`` delegates here.
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

__all__ = ["BacktestingEngine", "TICK_RESULT_KEYS", "tick_result_item", "ALIASES",
           "OPTIMIZER_KEYWORDS", "seed_optimizer_arguments"]


# ---- backtest facade -----------------------------------------------------------------

class BacktestingEngine:
    """The seed's facade: ``BacktestingEngine(initial_capital=100000,
    commission_per_trade=0.001, slippage_bps=5, risk_free_rate=0.02)
    .run_backtest(signals, price_data)``; ``result["total_return"]`` etc. work.
    commission -> ``fees`` (fraction of traded value), bps -> ``slippage = bps / 1e4``,
    risk_free_rate is annual."""

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
        res = backtest(price_data, signals, init_cash=self.initial_capital, fees=self.fees,
                       slippage=self.slippage, **kw)
        res.risk_free_rate = self.risk_free_rate
        return res


# ---- tick results read as dicts ------------------------------------------------------

# the seed's result keys -> TickResult attributes
TICK_RESULT_KEYS = {k: k for k in ("ticks", "signal_count", "order_count", "rejected_ticks",
                                   "rejected_orders", "processing_time_us", "orders")}


def tick_result_item(result, key):
    """``result[key]`` for a ``TickResult``: the seed read its results as dicts. Another
    key is a KeyError listing the keys (attributes such as ``order_array`` are read as
    attributes, not as seed keys)."""
    try:
        return getattr(result, TICK_RESULT_KEYS[key])
    except (KeyError, TypeError):    # TypeError: an unhashable key
        raise KeyError(f"TickResult has no key {key!r}; keys (the seed's): "
                       f"{', '.join(TICK_RESULT_KEYS)}") from None


# ---- strategy names ------------------------------------------------------------------

# the seed's short names -> registry names
ALIASES = {"momentum": "cross_sectional_momentum", "volatility": "volatility_regime",
           "liquidity": "liquidity_timing", "factor": "factor_momentum",
           "sentiment": "sentiment_regime"}


# ---- optimiser keywords --------------------------------------------------------------

# the seed's optimize_strategy_parameters keywords -> quantlab's
OPTIMIZER_KEYWORDS = {"strategy_class": "strategy", "parameter_bounds": "param_bounds",
                      "price_data": "data"}


def seed_optimizer_arguments(strategy, param_bounds, data, *, strategy_class=None,
                             parameter_bounds=None, price_data=None) -> tuple:
    """``(strategy, param_bounds, data)`` with each seed keyword standing in for the
    quantlab one it names (``OPTIMIZER_KEYWORDS``). Both given is a TypeError: one of
    them would be silently ignored."""
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
