"""The backtest as layers (issue #26): options -> dispatch -> result, ``ql.backtest`` a
plain function, every argument checked once from one table."""
import dataclasses
import inspect
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import quantlab as ql
from quantlab import backtesting
from quantlab.backtesting import options as opt_mod
from quantlab.optimize import WalkForwardOptimizer, optimize_strategy_parameters

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(code: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True).stdout


def test_ql_backtest_is_a_plain_function_not_a_callable_module():
    assert inspect.isfunction(ql.backtest)
    assert ql.backtest is backtesting.backtest
    assert ql.backtest.__module__ == "quantlab.backtesting"
    assert ql.Slippage is backtesting.Slippage
    assert ql.BacktestResult is backtesting.BacktestResult
    assert ql.BacktestOptions is backtesting.BacktestOptions
    assert not (ROOT / "quantlab" / "backtest.py").exists()


def test_importing_backtesting_submodules_after_ql_backtest_keeps_it_callable():
    # a fresh interpreter: the import system binds quantlab.<pkg> when a submodule loads
    out = _run("import inspect, quantlab as ql\n"
               "f = ql.backtest\n"
               "import quantlab.backtesting, quantlab.backtesting.dispatch\n"
               "from quantlab.backtesting import result, trades, options\n"
               "print(inspect.isfunction(ql.backtest), ql.backtest is f)\n")
    assert out.split() == ["True", "True"]
    # and the other way round: submodules first, then the top-level name
    out = _run("import inspect, quantlab.backtesting.options\n"
               "import quantlab as ql\n"
               "print(inspect.isfunction(ql.backtest), callable(ql.backtest))\n")
    assert out.split() == ["True", "True"]


def test_import_quantlab_stays_lazy_without_the_backtest_package():
    out = _run("import sys, quantlab\n"
               "print(any(m.startswith('quantlab.backtesting') for m in sys.modules),"
               " 'xarray' in sys.modules)\n")
    assert out.split() == ["False", "False"]


def test_backtest_options_cover_every_backtest_argument_once():
    # client= says where a dask-backed run computes, not what: it is not an option
    # (threads= says how, not what: same; progress= what it shows while it runs)
    args = set(inspect.signature(ql.backtest).parameters) - {
        "data", "signal", "entries", "exits", "client", "threads", "progress"}
    fields = {f.name for f in dataclasses.fields(ql.BacktestOptions)}
    assert args == fields
    # every option has a checker in the one table, the two flags too (True or False: a
    # truthy string such as vectorbt's accumulate="disabled" would switch one on)
    assert set(opt_mod._CHECKS) == fields
    # defaults are the same in both places
    sig = inspect.signature(ql.backtest).parameters
    for f in dataclasses.fields(ql.BacktestOptions):
        assert f.default == sig[f.name].default, f.name


def test_backtest_options_convert_once_and_are_frozen():
    o = ql.BacktestOptions(init_cash=1000, periods=np.int64(52), slippage=0.001,
                           fees=0.002, max_leverage=2)
    assert type(o.init_cash) is float and o.init_cash == 1000.0
    assert type(o.periods) is int and o.periods == 52
    assert o.slippage == ql.Slippage("fixed", bps=10.0)
    assert isinstance(o.fees, xr.DataArray) and float(o.fees) == 0.002
    assert o.max_position_size == 2.0           # defaults to max_leverage
    assert not o.events and o.size is None
    e = ql.BacktestOptions(accumulate=True)
    assert e.events and float(e.size) == np.inf   # all the buying power
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.init_cash = 5.0


@pytest.mark.parametrize("kw, exc, match", [
    (dict(init_cash=0), ValueError, r"init_cash must be > 0, got 0"),
    (dict(init_cash="100"), TypeError, r"init_cash must be a real number, got '100'"),
    (dict(periods=2.5), ValueError, r"periods must be an integer, got 2.5"),
    (dict(periods=True), TypeError, r"periods must be an integer, got True"),
    (dict(dd_cooldown=-1), ValueError, r"dd_cooldown must be an integer >= 0, got -1"),
    (dict(limit_tif=0, order_type="limit", limit_offset=0.01), ValueError,
     r"limit_tif must be an integer >= 1, got 0"),
    (dict(max_leverage=101), ValueError, r"max_leverage must be in \(0, 100.0\], got 101"),
    (dict(dd_mode="stop"), ValueError, r"dd_mode must be one of 'cooldown', 'halt'; got 'stop'"),
    (dict(size_type="lots", size=1.0), ValueError, r"size_type must be one of 'equity'"),
    (dict(size=-1.0), ValueError, r"size \(inf = all the buying power\) must be >= 0"),
    (dict(tp_stop=np.inf), ValueError, r"tp_stop \(NaN = off\) must be a finite number > 0"),
    (dict(fixed_fees=xr.DataArray([1.0, -1.0], dims="f", coords={"f": [0, 1]})), ValueError,
     r"fixed_fees must be >= 0, got -1.0"),
    (dict(max_leverage=4, maintenance_margin=0.25), ValueError,
     r"max_leverage \* maintenance_margin must be < 1"),
    (dict(metrics_only=()), ValueError, r"metrics_only is empty: name at least one"),
    (dict(metrics_only=("sharpe",)), ValueError,
     r"metrics_only: metric\(s\) \['sharpe'\] are not available in a metrics-only run"),
    (dict(metrics_only=5), TypeError, r"metrics_only must be True, a metric name or a seq"),
    (dict(metrics_only=(1,)), TypeError, r"metrics_only must be metric names \(str\)"),
    (dict(metrics_only=xr.DataArray(["sharpe_ratio"])), TypeError,
     r"metrics_only must be True, a metric name"),
])
def test_backtest_options_refuse_a_bad_argument_naming_it_and_its_range(kw, exc, match):
    with pytest.raises(exc, match=match):
        ql.BacktestOptions(**kw)


def test_backtest_rejects_bad_options_before_touching_the_data():
    # options are checked first: no data or signal is needed to hear about a bad fee
    with pytest.raises(ValueError, match=r"fees must be in \[0, 1\), got 1.5"):
        ql.backtest(None, None, fees=1.5)


def test_reasons_and_size_types_are_defined_in_exactly_one_place():
    src = "\n".join(p.read_text() for p in (ROOT / "quantlab").rglob("*.py"))
    for name in ("REASONS", "SIZE_TYPES", "DD_MODES", "STREAMED_EXTRAS", "MAX_LEVERAGE"):
        assert len(re.findall(rf"^{name} = ", src, flags=re.M)) == 1, name
    assert backtesting.REASONS[0] == "signal" and backtesting.REASONS[-1] == "fixed_fee"
    assert backtesting.SIZE_TYPES == ("equity", "value", "shares")


def test_backtesting_functions_stay_short():
    # issue #26: <= ~80 lines per function; backtest() is long only by its docstring
    for path in (ROOT / "quantlab" / "backtesting").glob("*.py"):
        lines = path.read_text().splitlines()
        starts = [i for i, s in enumerate(lines) if re.match(r"\s*def ", s)]
        for i in starts:
            indent = len(lines[i]) - len(lines[i].lstrip())
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or
                                      len(lines[j]) - len(lines[j].lstrip()) > indent):
                j += 1
            body = "\n".join(lines[i:j])
            body = re.sub(r'"""(.|\n)*?"""', '""', body, count=1)   # without its docstring
            n = len([s for s in body.splitlines() if s.strip()])
            assert n <= 80, f"{path.name}:{i + 1} {lines[i].strip()} has {n} lines"


@pytest.mark.parametrize("name", ["optimization_window", "validation_window", "step_size"])
def test_walk_forward_window_is_checked_by_the_shared_integer_checker(name):
    with pytest.raises(ValueError, match=rf"{name} \(bars\) must be an integer >= 1, got 0"):
        WalkForwardOptimizer(**{name: 0})
    with pytest.raises(ValueError, match=rf"{name} \(bars\) must be an integer, got 2.5"):
        WalkForwardOptimizer(**{name: 2.5})
    with pytest.raises(TypeError, match=rf"{name} \(bars\) must be an integer, got '21'"):
        WalkForwardOptimizer(**{name: "21"})
    # an integral float or a NumPy integer is the same number of bars
    attr = {"optimization_window": "w", "validation_window": "v", "step_size": "step"}[name]
    for v in (np.int64(21), 21.0):
        got = getattr(WalkForwardOptimizer(**{name: v}), attr)
        assert type(got) is int and got == 21


def test_optimizer_direction_and_method_typos_name_the_choices():
    with pytest.raises(ValueError, match=r"direction must be one of 'maximize', 'minimize'; "
                                         r"got 'max'"):
        optimize_strategy_parameters("spc", None, direction="max")
    with pytest.raises(ValueError, match=r"optimization_method must be one of .*; got "
                                         r"'bayesain'. Did you mean 'bayesian'\?"):
        optimize_strategy_parameters("spc", None, optimization_method="bayesain")


@pytest.mark.parametrize("bounds", [(2.0, np.inf), (-np.inf, 8.0), (np.nan, 8.0),
                                    (np.float64(2.0), np.float32(np.nan))])
def test_optimizer_infinite_or_nan_bound_is_refused_by_the_shared_number_checker(bounds):
    with pytest.raises(ValueError, match=r"h: each bound must be a finite number"):
        optimize_strategy_parameters("spc", {"h": bounds}, n_trials=2, progress=False)


def test_options_to_dict_round_trips_every_option_including_group_and_accumulate():
    # to_dict left out group and accumulate: a saved group deployment restored as
    # per-asset accounts (found by the checkpoint hardening)
    o = ql.BacktestOptions(group=True, accumulate=True, fees=0.001)
    d = o.to_dict()
    assert d["group"] is True and d["accumulate"] is True
    assert set(d) == {f.name for f in dataclasses.fields(ql.BacktestOptions)}
    assert ql.BacktestOptions.from_dict(d).to_dict() == d


def test_metrics_only_true_is_every_streamed_metric_and_false_is_off(equities):
    """metrics_only=True (was a TypeError: 'bool' object is not iterable) keeps every
    metric a streamed run can, equal to the full run's metrics(); False is the full run."""
    c = equities["close"]
    sig = (c > c.rolling(time=20).mean()).astype(float)
    mo = ql.backtest(equities, sig, fees=0.001, metrics_only=True)
    assert set(mo.data_vars) == set(ql.metrics.streaming_names()) | set(
        backtesting.STREAMED_EXTRAS)
    full = ql.backtest(equities, sig, fees=0.001, metrics_only=False)
    assert isinstance(full, ql.BacktestResult)
    m = full.metrics()
    for k in set(mo.data_vars) & set(m.data_vars):
        np.testing.assert_allclose(mo[k].values, m[k].values, rtol=1e-9, atol=1e-12,
                                   err_msg=k)
    one = ql.backtest(equities, sig, metrics_only=["turnover", "turnover"])
    assert list(one.data_vars) == ["turnover"]
