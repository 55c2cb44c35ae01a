"""quantlab.compat: every name kept for the seed's calls gives the values of the quantlab
call it stands for."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab import compat


def _prices(n=300, m=3, seed=0):
    rng = np.random.default_rng(seed)
    close = 100 * np.cumprod(1 + rng.normal(0.0003, 0.01, (n, m)), axis=0)
    return xr.Dataset({"close": (("time", "asset"), close)},
                      coords={"time": pd.bdate_range("2010-01-01", periods=n),
                              "asset": [f"S{i}" for i in range(m)],
                              "asset_class": ("asset", ["equity"] * m)})


def _signal(ds):
    r = ql.data.returns(ds["close"])
    return np.sign(r.rolling(time=10).mean())


# ---- BacktestingEngine ---------------------------------------------------------------

def test_backtesting_engine_is_ql_backtest_with_the_seed_units():
    ds = _prices()
    sig = _signal(ds)
    eng = compat.BacktestingEngine(initial_capital=50_000, commission_per_trade=0.002,
                                   slippage_bps=10, risk_free_rate=0.03)
    res = eng.run_backtest(sig, ds)
    want = ql.backtest(ds, sig, init_cash=50_000, fees=0.002, slippage=0.001)
    np.testing.assert_array_equal(res.equity.values, want.equity.values)
    assert res.risk_free_rate == 0.03 and (eng.fees, eng.slippage) == (0.002, 0.001)
    np.testing.assert_allclose(res["total_return"], want.equity.isel(time=-1) / 50_000 - 1,
                               rtol=1e-12)
    # the annual risk-free rate reaches the Sharpe ratio: per period (1 + rf)^(1/252) - 1
    rf = (1 + 0.03) ** (1 / 252) - 1
    r = want.returns.values[:, 0]
    r = r[~np.isnan(r)]
    sharpe = (r - rf).mean() / (r - rf).std(ddof=1) * np.sqrt(252)
    assert float(res.metrics()["sharpe_ratio"].isel(asset=0)) == pytest.approx(sharpe,
                                                                                 rel=1e-9)


def test_backtesting_engine_still_reachable_as_ql_name():
    assert ql.BacktestingEngine.__name__ == "BacktestingEngine"
    assert compat.BacktestingEngine.__doc__.startswith("The seed's facade")


@pytest.mark.parametrize("kw, name", [({"initial_capital": 0}, "initial_capital"),
                                      ({"commission_per_trade": 1.0}, "commission_per_trade"),
                                      ({"slippage_bps": -1}, "slippage_bps"),
                                      ({"slippage_bps": float("nan")}, "slippage_bps"),
                                      ({"risk_free_rate": -1.0}, "risk_free_rate")])
def test_backtesting_engine_out_of_range_cost_is_refused_by_name(kw, name):
    with pytest.raises(ValueError, match=name):
        compat.BacktestingEngine(**kw)


# ---- TickResult as a dict ------------------------------------------------------------

@pytest.fixture(scope="module")
def tick_result():
    return ql.engine.TickEngine().process_ticks(ql.testing.synthetic_ticks(5000, 10, seed=1))


def test_tick_result_seed_keys_read_the_attributes(tick_result):
    r = tick_result
    assert r["ticks"] == 5000 and r["order_count"] == r.order_count > 0
    for key, attr in compat.TICK_RESULT_KEYS.items():
        got, want = r[key], getattr(r, attr)
        if isinstance(want, pd.DataFrame):
            pd.testing.assert_frame_equal(got, want)
        else:
            assert got == want
    assert len(r["orders"]) == r["order_count"]


@pytest.mark.parametrize("key", ["order_array", "combine", "nope", 0, ("ticks",)])
def test_tick_result_unknown_key_is_a_key_error_naming_the_keys(tick_result, key):
    # getattr(result, key) answered any attribute (order_array, methods) and raised
    # AttributeError (not KeyError) for others, a TypeError for a non-string key
    with pytest.raises(KeyError, match="keys \\(the seed's\\): ticks, signal_count"):
        tick_result[key]


def test_tick_result_unhashable_key_is_a_key_error(tick_result):
    with pytest.raises(KeyError, match="no key"):
        tick_result[["ticks"]]


# ---- strategy aliases ----------------------------------------------------------------

def test_aliases_name_registered_strategies_and_are_the_one_table():
    from quantlab import strategies
    from quantlab.research import _strategy_names

    assert strategies.ALIASES is compat.ALIASES
    assert set(compat.ALIASES) == {"momentum", "volatility", "liquidity", "factor",
                                   "sentiment"}
    for short, name in compat.ALIASES.items():
        assert name in strategies.names()
        assert strategies.get(short).name == name
        assert _strategy_names(short) == [name]
    with pytest.raises(ValueError, match="aliases: momentum, volatility"):
        _strategy_names("momentumm")


# ---- optimiser keywords --------------------------------------------------------------

def test_seed_optimizer_arguments_map_each_keyword():
    f = compat.seed_optimizer_arguments
    assert f("s", {"k": (1, 2)}, "d") == ("s", {"k": (1, 2)}, "d")
    assert f(None, None, None, strategy_class="s", parameter_bounds="b",
             price_data="d") == ("s", "b", "d")
    assert f("s", None, "d", parameter_bounds="b") == ("s", "b", "d")
    assert set(compat.OPTIMIZER_KEYWORDS) == {"strategy_class", "parameter_bounds",
                                              "price_data"}


@pytest.mark.parametrize("new, old", [("strategy", "strategy_class"),
                                      ("param_bounds", "parameter_bounds"),
                                      ("data", "price_data")])
def test_seed_optimizer_keyword_given_twice_is_refused_not_ignored(new, old):
    # the seed name was silently ignored when the quantlab one was given too
    args = {"strategy": None, "param_bounds": None, "data": None}
    args[new] = "a"
    with pytest.raises(TypeError, match=f"both {new}= and its seed name {old}="):
        compat.seed_optimizer_arguments(*args.values(), **{old: "b"})


class _Trend(ql.strategies.Strategy):
    """Sign of the k-bar mean return (a test strategy, unregistered)."""

    name = "compat_trend_test"
    defaults = {"k": 5}
    param_space = {"k": (2, 20)}

    def _signal(self, ds, k):
        return np.sign(ql.data.returns(ds["close"]).rolling(time=k).mean())


def test_optimizer_seed_keywords_give_the_same_search():
    ds = _prices(400, 2, seed=3)
    kw = dict(optimization_method="grid", n_trials=4, progress=False)
    opt = ql.optimize.optimize_strategy_parameters
    new = opt(_Trend, {"k": (2, 20)}, ds, **kw)
    old = opt(strategy_class=_Trend, parameter_bounds={"k": (2, 20)}, price_data=ds, **kw)
    assert old.best_params == new.best_params
    pd.testing.assert_frame_equal(old.trials, new.trials)
    assert len(new.trials) == 4
    with pytest.raises(TypeError, match="both data= and its seed name price_data="):
        opt(_Trend, {"k": (2, 20)}, ds, price_data=ds, **kw)


def test_module_docstring_documents_every_name():
    for name in ("BacktestingEngine", "TICK_RESULT_KEYS", "ALIASES",
                 "seed_optimizer_arguments", "strategy_class", "parameter_bounds",
                 "price_data"):
        assert name in compat.__doc__
