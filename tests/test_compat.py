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
    assert compat.BacktestingEngine.__doc__.startswith("The seed's")


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


# ---- seed calls of issue #27 ---------------------------------------------------------
# Each was tried as written in the seed document and failed (or was silently ignored).

import logging  # noqa: E402


def test_tick_result_get_and_processing_latency_ms_read_like_a_dict(tick_result):
    r = tick_result
    # the seed: result.get("signal_count"), result["processing_latency_ms"]
    assert r.get("signal_count") == r.signal_count > 0
    assert r.get("order_count", -1) == r.order_count
    assert r["processing_latency_ms"] == r.processing_time_us / 1000.0
    assert r.get("processing_latency_ms") == r.processing_time_us / 1000.0
    assert r.get("nope") is None and r.get("nope", 7) == 7 and r.get(["ticks"], 0) == 0
    assert r.get("order_array", "absent") == "absent"     # an attribute, not a seed key
    assert "signal_count" in r and "processing_latency_ms" in r and "nope" not in r
    assert [] not in r
    d = dict(r)          # keys() + __getitem__
    assert set(d) == set(compat.TICK_RESULT_KEYS) | set(compat.TICK_RESULT_UNITS)
    assert d["rejected_ticks"] == r.rejected_ticks and list(r) == r.keys()
    with pytest.raises(KeyError, match="processing_latency_ms"):   # listed among the keys
        r["processing_latency_us"]


@pytest.fixture(scope="module")
def noisy_engine():
    """An engine that saw 10 % bad ticks: error rate ~0.1, success rate ~0.9."""
    eng = ql.engine.TickEngine()
    eng.process_ticks(ql.testing.synthetic_ticks(20_000, n_symbols=20, seed=4,
                                                 bad_fraction=0.1))
    return eng


def test_seed_alert_names_are_aliases_of_the_quantlab_rules(noisy_engine):
    s = noisy_engine.get_performance_stats()
    err = s["rejected_ticks"] / s["ticks_processed"]
    assert 0.05 < err < 0.2
    seed = ql.engine.AlertMonitor(noisy_engine, {"max_error_rate": 0.05,
                                                 "min_success_rate": 0.95,
                                                 "max_latency_us": 0.0}, sinks=[])
    ours = ql.engine.AlertMonitor(noisy_engine, {"error_rate": 0.05, "success_rate": 0.95,
                                                 "p99_latency_us": 0.0}, sinks=[])
    a, b = seed.check(), ours.check()
    assert [x["rule"] for x in a] == ["max_error_rate", "min_success_rate", "max_latency_us"]
    assert [x["value"] for x in a] == [x["value"] for x in b]
    assert a[0]["value"] == err and a[1]["value"] == 1.0 - err     # success = 1 - error
    assert a[2]["value"] == s["p99_latency_us"] > 0
    assert "below 0.95" in a[1]["message"] and "above 0.05" in a[0]["message"]
    # a "min" rule fires only below its limit
    quiet = ql.engine.AlertMonitor(noisy_engine, {"min_success_rate": 1.0 - err - 0.01,
                                                  "max_error_rate": err + 0.01,
                                                  "max_latency_us": float("inf")}, sinks=[])
    assert quiet.check() == []


@pytest.mark.parametrize("rules, exc, match", [
    ({"error_rate": 0.1, "max_error_rate": 0.2}, ValueError, "one rule .'error_rate'."),
    ({"min_success_rate": 1.5}, ValueError, r"'min_success_rate' must be in \[0, 1\]"),
    ({"min_sucess_rate": 0.9}, ValueError, "min_success_rate = success_rate"),
    ([("error_rate", 0.1)], TypeError, "dict of rule -> limit")])
def test_seed_alert_rules_misused_are_refused_by_name(noisy_engine, rules, exc, match):
    with pytest.raises(exc, match=match):
        ql.engine.AlertMonitor(noisy_engine, rules)


def test_seed_environment_variables_are_read_not_ignored(tmp_path):
    log_file = tmp_path / "engine.log"
    cfg = ql.engine.load_config(environ={"MAX_DRAWDOWN": "0.1", "LOG_LEVEL": "info",
                                         "LOG_FILE": str(log_file)})
    assert cfg["risk"]["max_drawdown_pct"] == 0.1
    assert cfg["risk"]["max_drawdown"] == 0.1 * cfg["risk"]["initial_capital"] == 100_000.0
    assert cfg["log"] == {"level": "INFO", "file": str(log_file.resolve())}
    assert set(compat.ENVIRONMENT) == {"MAX_DRAWDOWN", "LOG_LEVEL", "LOG_FILE"}
    # the same value under both names is fine; different values are reported
    same = ql.engine.load_config(environ={"LOG_LEVEL": "ERROR",
                                          "QUANTLAB_LOG_LEVEL": "ERROR"})
    assert same["log"]["level"] == "ERROR"
    with pytest.raises(ValueError, match="LOG_LEVEL='DEBUG'.*QUANTLAB_LOG_LEVEL='ERROR'"
                                         ".*disagree"):
        ql.engine.load_config(environ={"LOG_LEVEL": "DEBUG", "QUANTLAB_LOG_LEVEL": "ERROR"})


@pytest.mark.parametrize("environ, match", [
    ({"MAX_DRAWDOWN": "5000"}, r"environment MAX_DRAWDOWN .*max_drawdown_pct must be in "
                               r"\(0, 1\].*currency is risk.max_drawdown"),
    ({"MAX_DRAWDOWN": "0"}, r"MAX_DRAWDOWN.*must be in \(0, 1\]"),
    ({"LOG_LEVEL": "LOUD"}, "environment LOG_LEVEL.*log.level must be one of"),
    ({"LOG_FILE": "/no/such/dir/engine.log"}, "LOG_FILE.*log.file must be a file in an "
                                              "existing directory"),
    ({"QUANTLAB_RISKMAX_POSITION": "5"}, "environment QUANTLAB_RISKMAX_POSITION: unknown "
                                         "quantlab variable.*QUANTLAB_SIMD.*"
                                         "QUANTLAB_RISK_MAX_POSITION.*MAX_DRAWDOWN"),
    ({"QUANTLAB_VERBOSE": "1"}, "QUANTLAB_VERBOSE: unknown quantlab variable"),
    ({"QUANTLAB_RISK_MAX_LEVERAGE": "2"}, "QUANTLAB_RISK_MAX_LEVERAGE: unknown config key")])
def test_unknown_or_bad_environment_variable_is_reported_not_dropped(environ, match):
    with pytest.raises(ValueError, match=match):
        ql.engine.load_config(environ=environ)


def test_other_quantlab_variables_and_the_logging_section_alias_are_accepted():
    cfg = ql.engine.load_config(environ={"QUANTLAB_SIMD": "sse2", "QUANTLAB_THREADS": "2",
                                         "QUANTLAB_LOGGING_LEVEL": "error", "PATH": "/bin"})
    assert cfg["log"]["level"] == "ERROR"
    assert ql.engine.load_config({"logging": {"level": 20}})["log"]["level"] == "INFO"
    with pytest.raises(ValueError, match="'log' and 'logging'.*one section"):
        ql.engine.load_config({"log": {"level": "INFO"}, "logging": {"level": "ERROR"}})


def test_max_drawdown_fraction_in_the_currency_key_is_refused_not_halting():
    # risk.max_drawdown is currency: 0.10 copied from the seed stopped all trading after
    # the first order (1 order, 12,850 rejected on 50,000 synthetic ticks)
    for bad in (0.1, 0.999, 1e-9):
        with pytest.raises(ValueError, match=r"max_drawdown = .* is ambiguous.*"
                                             r"risk.max_drawdown_pct="):
            ql.engine.TickEngine({"risk": {"max_drawdown": bad}})
    with pytest.raises(ValueError, match="ambiguous"):
        ql.engine.load_config(environ={"QUANTLAB_RISK_MAX_DRAWDOWN": "0.1"})
    for ok in (0.0, 1.0, 400.0, float("inf")):     # 0: stop at the first loss
        assert ql.engine.load_config({"risk": {"max_drawdown": ok}})["risk"][
            "max_drawdown"] == ok


def test_max_drawdown_pct_is_a_fraction_of_initial_capital():
    ticks = ql.testing.synthetic_ticks(20_000, n_symbols=5, seed=1)
    pct = {"risk": {"max_drawdown_pct": 0.003, "initial_capital": 100_000.0}}
    eng = ql.engine.TickEngine(pct)
    cur = ql.engine.TickEngine({"risk": {"max_drawdown": 300.0}})
    a, b = eng.process_ticks(ticks), cur.process_ticks(ticks)
    assert eng.config["risk"]["max_drawdown"] == pytest.approx(300.0, rel=1e-15)
    np.testing.assert_array_equal(a.order_array, b.order_array)
    assert eng.core.killed and a.order_count < 200
    assert eng.get_performance_stats()["order_rejects"]["kill_switch"] > 1000
    # the pure-Python reference engine gets the same limit
    ref = ql.engine.reference_engine(pct)
    ref.process_market_data(ql.testing.to_dicts(ticks))
    assert ref.orders == eng.core.orders and ref.cash == eng.core.cash
    # a fraction that is not one, or both keys set differently, is refused
    for bad in (0.0, 1.5, float("nan"), -0.1):
        with pytest.raises(ValueError, match=r"max_drawdown_pct must be .*in \(0, 1\]"):
            ql.engine.load_config({"risk": {"max_drawdown_pct": bad}})
    with pytest.raises(ValueError, match="max_drawdown .* and risk.max_drawdown_pct .* "
                                         "both set; give one"):
        ql.engine.load_config({"risk": {"max_drawdown": 5000.0, "max_drawdown_pct": 0.1}})
    # an engine's own config loads again (max_drawdown is the derived limit)
    assert ql.engine.load_config(eng.config)["risk"] == eng.config["risk"]
    assert ql.engine.load_config({"risk": {"max_drawdown_pct": None}})["risk"][
        "max_drawdown"] == 100_000.0


@pytest.fixture
def engine_log():
    """Detach the file handler a test's engine added, and restore the level."""
    logger = logging.getLogger("quantlab.engine")
    level = logger.level
    yield logger
    for h in [h for h in logger.handlers if getattr(h, "_quantlab", False)]:
        logger.removeHandler(h)
        h.close()
    logger.setLevel(level)


def _kill_switch_run(config):
    eng = ql.engine.TickEngine(config)
    eng.process_ticks(ql.testing.synthetic_ticks(20_000, n_symbols=5, seed=1))
    return eng


def test_engine_logs_to_the_configured_file(tmp_path, engine_log):
    path = tmp_path / "engine.log"
    eng = _kill_switch_run({"log": {"level": "DEBUG", "file": str(path)},
                            "risk": {"max_drawdown": 300.0}})
    assert engine_log.level == logging.DEBUG and eng.core.killed
    text = path.read_text()
    assert "INFO quantlab.engine: tick engine started: 1024 symbols" in text
    assert "max_drawdown 300 (currency)" in text
    assert "DEBUG quantlab.engine: batch: 20000 ticks" in text
    assert text.count("WARNING quantlab.engine: drawdown kill switch on") == 1
    # another file replaces this one; an engine without a file leaves it
    other = tmp_path / "other.log"
    ql.engine.TickEngine({"log": {"level": "INFO", "file": str(other)}})
    ql.engine.TickEngine({"log": {"level": "INFO"}})
    assert path.read_text() == text and other.read_text().count("tick engine started") == 2
    with pytest.raises(ValueError, match="log.file must be str"):
        ql.engine.load_config({"log": {"file": 5}})


def test_engine_log_level_and_file_from_the_seed_environment(tmp_path, monkeypatch,
                                                            engine_log):
    path = tmp_path / "seed.log"
    monkeypatch.setenv("LOG_FILE", str(path))
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    monkeypatch.setenv("MAX_DRAWDOWN", "0.0003")       # x initial_capital 1e6 = 300
    eng = _kill_switch_run(None)
    assert eng.config["risk"]["max_drawdown"] == pytest.approx(300.0) and eng.core.killed
    lines = path.read_text().splitlines()
    assert len(lines) == 1 and "drawdown kill switch on" in lines[0]   # WARNING: no INFO


# strategy parameters: the seed's names

def _ohlcv(n=260, m=3, seed=5):
    ds = _prices(n, m, seed)
    rng = np.random.default_rng(seed)
    c = ds["close"]
    return ds.assign(open=c * (1 + rng.normal(0, 0.003, c.shape)), high=c * 1.01,
                     low=c * 0.99, volume=c * 0 + rng.lognormal(10, 0.5, c.shape))


def test_seed_strategy_parameter_names_are_aliases():
    get = ql.strategies.get
    a = get("attention", attention_lookback=42, attention_threshold=1.5)
    b = get("attention", window=42, threshold=1.5)
    assert a.params == b.params == {"window": 42, "threshold": 1.5, "hold": 10,
                                    "mode": "continuation"}
    ds = _ohlcv()
    xr.testing.assert_identical(a.signal(ds), b.signal(ds))
    assert get("fractal_chaos", hurst_window=126).params["window"] == 126
    assert get("fractal_chaos", fractal_window=[126, 200]).params["window"] == [126, 200]
    for name, table in compat.PARAM_ALIASES.items():
        for old, new in table.items():
            assert new in ql.strategies.get(name).params


@pytest.mark.parametrize("name, params, match", [
    ("attention", {"attention_lookback": 42, "window": 63}, "'attention_lookback' and "
                                                            "'window' are one parameter"),
    ("fractal_chaos", {"hurst_window": 126, "fractal_window": 200}, "one parameter"),
    ("attention", {"volume_multiplier": 2.0}, "'volume_multiplier' has no quantlab "
                                              "equal.*z-score.*'attention', threshold="),
    ("liquidity", {"volume_multiplier": 2.0}, "liquidity_timing: .*attention"),
    ("fractal_chaos", {"hurst_threshold": 0.55}, "band=hurst_threshold - 0.5"),
    ("fractal_chaos", {"attention_lookback": 10}, "'attention_lookback' is the seed's name "
                                                  "of attention's 'window', not a parameter "
                                                  "of fractal_chaos")])
def test_seed_strategy_parameter_twice_or_without_equal_is_a_type_error(name, params, match):
    with pytest.raises(TypeError, match=match):
        ql.strategies.get(name, **params)


def test_seed_parameter_names_are_no_quantlab_parameter_names():
    # an alias that was also a real parameter of some strategy would be rewritten there
    real = {p for n in ql.strategies.names() for p in ql.strategies.get(n).params}
    seed = {k for t in compat.PARAM_ALIASES.values() for k in t} | set(compat.PARAM_REFUSED)
    assert not real & seed
    with pytest.raises(ValueError, match="unknown parameter.*wndow"):   # unchanged
        ql.strategies.get("attention", wndow=10)


def test_walk_forward_optimize_strategy_is_run():
    ds = _prices(300, 2, seed=7)
    wf = ql.optimize.WalkForwardOptimizer(optimization_window=150, validation_window=50,
                                          step_size=50, optimization_method="grid",
                                          n_trials=3, progress=False)
    want = wf.run(_Trend, {"k": (2, 20)}, ds)
    for got in (wf.optimize_strategy(_Trend, {"k": (2, 20)}, ds),
                wf.optimize_strategy(strategy_class=_Trend, parameter_bounds={"k": (2, 20)},
                                     price_data=ds)):
        pd.testing.assert_frame_equal(got.folds, want.folds)
        xr.testing.assert_identical(got.oos_equity, want.oos_equity)
    assert len(want.folds) == 3
    with pytest.raises(TypeError, match="both data= and its seed name price_data="):
        wf.optimize_strategy(_Trend, {"k": (2, 20)}, ds, price_data=ds)
    with pytest.raises(TypeError, match="needs a strategy"):
        wf.optimize_strategy(parameter_bounds={"k": (2, 20)}, price_data=ds)


def test_module_docstring_documents_the_issue_27_names():
    for name in ("TICK_RESULT_UNITS", "processing_latency_ms", "ALERT_RULES",
                 "min_success_rate", "ENVIRONMENT", "MAX_DRAWDOWN", "PARAM_ALIASES",
                 "attention_lookback", "volume_multiplier", "optimize_strategy"):
        assert name in compat.__doc__
