"""Bad notebook parameters fail in a notebook's first cells with an error that names the
parameter, the value and what is allowed (``ql.suite.one_of``, ``subset_of``,
``integer_in``, ``number_in``, ``period``, ``has_variables``), or with the library's own
error where that already names them.

A bad ``-p symbol AAPLX`` used to end cells later in xarray's bare "not all values found
in index 'asset'"; ``-p symbols AAPL`` iterated the letters; ``params`` naming a parameter
the strategy lacks was a bare ``KeyError: 'banana'``. Most cases run the notebook's first
code cells in this process (cheap: no kernel); one runs through the suite runner.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

import quantlab as ql
from quantlab import cli, suite

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
FIRST_CELLS = 5   # code cells (the parameters cell included) a bad value must fail within

# (notebook, {parameter: bad value}, exception type, pattern of its message)
CASES = [
    ("00_quickstart", {"symbol": "AAPLX"}, ValueError,
     r"symbol 'AAPLX' is not in data set 'equities' \(did you mean 'AAPL'\?\); "
     r"its assets: AAPL, GOOG, IBM, MSFT"),
    ("00_quickstart", {"symbol": ["AAPL"]}, TypeError, r"symbol must be one name, got list"),
    ("00_quickstart", {"data_set": "ff3"}, ValueError,
     r"data_set 'ff3' has no 'close' \(its variables: mkt_rf, smb, hml, rf\); "
     r"the data sets with it: equities, indices"),
    ("00_quickstart", {"data_set": "equitiez"}, KeyError, r"unknown data set 'equitiez'"),
    ("00_quickstart", {"start": "2010-01-01", "end": "2005-01-01"}, ValueError,
     r"start '2010-01-01' is after end '2005-01-01'"),
    ("00_quickstart", {"start": "2030-01-01"}, ValueError,
     r"start '2030-01-01', end None: no bars of 'AAPL' in data set 'equities' "
     r"\(it runs 2000-03-01 \.\. 2013-03-01\)"),
    ("00_quickstart", {"symbol": "GOOG", "start": "2001", "end": "2002"}, ValueError,
     r"start '2001', end '2002': no bars of 'GOOG' in data set 'equities' \(it runs 2004-08-19"),
    ("00_quickstart", {"symbol": "GOOG", "end": "2004-09-01"}, ValueError,
     r"window must be an integer in \[2, 10\], got 20 \(GOOG has 10 bars\)"),
    ("00_quickstart", {"end": "banana"}, ValueError, r"end 'banana' is not a date"),
    ("00_quickstart", {"window": 1}, ValueError, r"window must be an integer in \[2, 3270\], got 1"),
    ("00_quickstart", {"window": "20"}, TypeError, r"window must be an integer, got '20'"),
    ("01_explore", {"data_set": "macro"}, ValueError, r"data_set 'macro' has no 'close'"),
    ("01_explore", {"window": 0}, ValueError, r"window must be an integer in \[2, 252\], got 0"),
    # the strategy explorer refused these after the rolling explorer and z-scores ran
    ("01_explore", {"strategy": "foo"}, ValueError,
     r"strategy 'foo' is not a strategy; allowed: attention, "),
    ("01_explore", {"strategy": "momentum"}, ValueError,   # an alias the explorer lacks
     r"strategy 'momentum' is not a strategy"),
    ("01_explore", {"data_set": "vix", "strategy": "liquidity_timing"}, ValueError,
     r"data_set 'vix' has no 'volume' \(its variables: close\)"),
    ("02_traditional_strategies", {"symbol": "MSFTX"}, ValueError,
     r"symbol 'MSFTX' is not in data set 'equities'"),
    ("02_traditional_strategies", {"slippage_bps": "5"}, TypeError,
     r"slippage_bps must be a real number, got '5'"),
    ("02_traditional_strategies", {"slippage_bps": -1}, ValueError,
     r"slippage_bps -1 is slippage -0\.0001 \(slippage_bps / 10000\), which ql\.backtest "
     r"refuses: slippage must be in \[0, 1\), got -0\.0001"),
    # the bound is the backtest's: 10000 bps (a slippage of 1) passed and failed later
    ("02_traditional_strategies", {"slippage_bps": 10_000}, ValueError,
     r"slippage_bps 10000 is slippage 1\.0 .*: slippage must be in \[0, 1\), got 1\.0"),
    ("02_traditional_strategies", {"fees": 1}, ValueError, r"^fees must be in \[0, 1\), got 1$"),
    ("02_traditional_strategies", {"fees": True}, TypeError, r"fees must be a real number, got True"),
    ("03_unconventional_strategies", {"strategies": []}, ValueError,
     r"strategies is empty: give at least one; allowed: attention, "),
    ("03_unconventional_strategies", {"strategies": ["spcx"]}, ValueError,
     r"strategies 'spcx' is not allowed \(did you mean 'spc'\?\)"),
    ("03_unconventional_strategies", {"strategies": ["spc", "spc"]}, ValueError,
     r"strategies names 'spc' twice"),
    ("03_unconventional_strategies", {"data_set": "vix"}, ValueError,
     r"symbol 'AAPL' is not in data set 'vix'; its assets: VIX"),
    ("03_unconventional_strategies", {"data_set": "ff3"}, ValueError,
     r"data_set 'ff3' has no 'close'"),
    ("03_unconventional_strategies", {"window": 100_000}, ValueError,
     r"window must be an integer in \[25, 3269\], got 100000 \(rolling_lyapunov_r needs 25"),
    ("03_unconventional_strategies", {"slippage_bps": "5"}, TypeError, r"slippage_bps must be a real"),
    ("03_unconventional_strategies", {"slippage_bps": 10_000}, ValueError,
     r"slippage_bps 10000 is slippage 1\.0"),
    ("03_unconventional_strategies", {"fees": float("nan")}, ValueError,
     r"fees must be a finite number in \[0, 1\), got nan"),
    ("03_unconventional_strategies", {"symbol": "IBMX"}, ValueError, r"symbol 'IBMX' is not in"),
    ("04_backtest_and_costs", {"fast": 100, "slow": 20}, ValueError,
     r"slow must be an integer in \[101, 3270\], got 20 \(longer than fast = 100\)"),
    ("04_backtest_and_costs", {"slow": 100_000}, ValueError, r"slow must be an integer in \[21, 3270\]"),
    ("04_backtest_and_costs", {"fast": 0}, ValueError, r"fast must be an integer in \[1, 3269\], got 0"),
    ("04_backtest_and_costs", {"symbol": "GOOGL"}, ValueError,
     r"symbol 'GOOGL' is not in data set 'equities' \(did you mean 'GOOG'\?\)"),
    ("04_backtest_and_costs", {"slippage_bps": -5}, ValueError, r"slippage_bps -5 is slippage"),
    ("04_backtest_and_costs", {"slippage_bps": 10_000.0}, ValueError,
     r"slippage_bps 10000\.0 is slippage 1\.0"),
    ("04_backtest_and_costs", {"slippage_bps": 10**400}, ValueError,
     r"slippage_bps 1000.* is slippage inf .*must be a finite number"),
    ("04_backtest_and_costs", {"fees": 2}, ValueError, r"fees must be in \[0, 1\), got 2"),
    ("05_risk", {"strategy": "foo"}, ValueError, r"unknown strategy 'foo'"),
    ("05_risk", {"confidence_level": 1.5}, ValueError, r"confidence_level must be in \(0\.5, 1\), got 1\.5"),
    ("05_risk", {"max_drawdown_limit": 0}, ValueError, r"max_drawdown_limit must be in \(0, 1\), got 0"),
    ("05_risk", {"dd_cooldown": -1}, ValueError, r"dd_cooldown must be an integer >= 0, got -1"),
    ("05_risk", {"fees": -1}, ValueError, r"fees must be in \[0, 1\), got -1"),
    ("06_ensemble", {"allocations": ["banana"]}, ValueError,
     r"allocations 'banana' is not allowed; allowed: equal, risk_parity, performance_momentum, "
     r"regime"),
    ("06_ensemble", {"allocations": []}, ValueError, r"allocations is empty"),
    ("06_ensemble", {"strategies": []}, ValueError, r"an ensemble needs at least one strategy"),
    ("06_ensemble", {"lookback": 0}, ValueError, r"lookback must be an integer >= 2, got 0"),
    ("06_ensemble", {"reweight": "banana"}, ValueError, r"reweight must be a number of calendar periods"),
    ("06_ensemble", {"fees": -1}, ValueError, r"fees must be in \[0, 1\), got -1"),
    ("07_cross_market", {"window": 1}, ValueError, r"window must be an integer in \[2, \d+\], got 1"),
    # lead_lag refused these cells later, after the correlations ran
    ("07_cross_market", {"max_lag": 0}, ValueError, r"max_lag must be an integer in \[1, \d+\], got 0"),
    ("07_cross_market", {"max_lag": True}, TypeError, r"max_lag must be an integer, got True"),
    ("07_cross_market", {"max_lag": 1_000_000}, ValueError,
     r"max_lag must be an integer in \[1, 2779\], got 1000000 \(a lag-k Granger test needs "
     r"3k \+ 2 returns\)"),
    ("07_cross_market", {"calm": ["2006-12-31", "2005-01-01"]}, ValueError,
     r"calm start '2006-12-31' is after calm end '2005-01-01'"),
    ("07_cross_market", {"crisis": ["2030-01-01", "2031-01-01"]}, ValueError,
     r"crisis \('2030-01-01', '2031-01-01'\): no bars of 'SP500' in the data \(it runs 1999-"),
    ("07_cross_market", {"calm": "2005"}, TypeError, r"calm must be a \(start, end\) pair of dates"),
    ("08_optimization", {"params": ["window", "banana"]}, ValueError,
     r"params 'banana' is not a parameter of volatility_regime; allowed: window, lookback"),
    ("08_optimization", {"strategy": "spc"}, ValueError,
     r"params 'window' is not a parameter of spc; allowed: span, k, h"),
    ("08_optimization", {"strategy": "foo"}, ValueError, r"unknown strategy 'foo'"),
    ("08_optimization", {"in_sample": ["2009-12-31", "2001-01-01"]}, ValueError,
     r"in_sample start '2009-12-31' is after in_sample end '2001-01-01'"),
    ("08_optimization", {"out_of_sample": ["2005-01-01", "2010-01-01"]}, ValueError,
     r"out_of_sample starts 2005-01-03, before in_sample ends 2009-12-31"),
    ("08_optimization", {"out_of_sample": ["2010-01-01", "2014-12-31"]}, ValueError,
     r"out_of_sample end '2014-12-31' is outside data set 'equities' \(it runs 2000-03-01 "
     r"\.\. 2013-03-01\)"),
    ("08_optimization", {"in_sample": ["1990-01-01", "2009-12-31"]}, ValueError,
     r"in_sample start '1990-01-01' is outside data set 'equities'"),
    ("08_optimization", {"wf_window": 0}, ValueError, r"wf_window must be an integer in \[2, 3269\]"),
    ("08_optimization", {"wf_validation": 0}, ValueError, r"wf_validation must be an integer in \[1, "),
    ("08_optimization", {"wf_step": 0}, ValueError, r"wf_step must be an integer >= 1, got 0"),
    ("08_optimization", {"wf_trials": 0}, ValueError, r"wf_trials must be an integer >= 1, got 0"),
    ("08_optimization", {"n_trials": 0}, ValueError, r"n_trials must be an integer >= 1, got 0"),
    ("08_optimization", {"seed": -1}, ValueError, r"seed must be an integer in \[0, "),
    ("08_optimization", {"seed": 2**32}, ValueError, r"seed must be an integer in \[0, 4294967295\]"),
    ("08_optimization", {"fees": 1.5}, ValueError, r"fees must be in \[0, 1\), got 1\.5"),
    ("09_tick_engine", {"n_ticks": 0}, ValueError,
     r"n_ticks must be an integer in \[1000, 100000000\], got 0 \(the latency histogram"),
    ("09_tick_engine", {"n_symbols": 0}, ValueError, r"n_symbols must be an integer in \[1, "),
    ("09_tick_engine", {"max_position": -1}, ValueError, r"risk\.max_position must be an integer"),
    ("09_tick_engine", {"max_drawdown": -1}, ValueError, r"risk\.max_drawdown must be >= 0"),
    # replay refused these after the ticks were generated
    ("09_tick_engine", {"chunk": 0}, ValueError, r"chunk must be an integer >= 1, got 0"),
    ("09_tick_engine", {"chunk": 0.5}, ValueError, r"chunk must be an integer, got 0\.5"),
    # more symbols than the engine holds: their ticks were counted as bad ticks, silently
    ("09_tick_engine", {"n_symbols": 2000}, ValueError,
     r"n_symbols must be an integer in \[1, 1024\], got 2000 \(the engine's max_symbols"),
    ("10_research_analysis", {"symbols": "AAPLX"}, ValueError,
     r"symbols 'AAPLX' is not in data set 'equities' \(did you mean 'AAPL'\?\)"),
    ("10_research_analysis", {"symbols": []}, ValueError, r"symbols is empty: give at least one; its "
     r"assets: AAPL, GOOG, IBM, MSFT"),
    ("10_research_analysis", {"start": "2013-02-01"}, ValueError,
     r"start '2013-02-01', end None: 20 bars of 'AAPL' in data set 'equities' .*; at least 64 "
     r"needed"),
    ("10_research_analysis", {"symbols": ["IBM", "GOOG"], "end": "2004-10-01"}, ValueError,
     r"start None, end '2004-10-01': 31 bars of 'GOOG' in data set 'equities' \(it runs "
     r"2004-08-19 \.\. 2013-03-01\); at least 64 needed"),
    ("10_research_analysis", {"end": 20050101}, TypeError,
     r"end must be a date as text such as '2005-01-01' \(or None\), got int 20050101"),
    ("10_research_analysis", {"fees": -1}, ValueError, r"fees must be in \[0, 1\), got -1"),
    ("11_parameter_sweeps", {"grid_size": 0}, ValueError, r"grid_size must be an integer in \[1, 1000\]"),
    ("11_parameter_sweeps", {"grid_size": "6"}, TypeError, r"grid_size must be an integer, got '6'"),
    ("11_parameter_sweeps", {"strategy": "foo"}, ValueError, r"unknown strategy 'foo'"),
    ("11_parameter_sweeps", {"workers": 0}, ValueError, r"workers must be an integer >= 1, got 0"),
    ("11_parameter_sweeps", {"fees": -1}, ValueError, r"fees must be in \[0, 1\), got -1"),
    ("12_deploy", {"params": "banana"}, ValueError, r"params 'banana' is not a parameter of "
     r"volatility_regime"),
    ("12_deploy", {"strategy": "foo"}, ValueError, r"unknown strategy 'foo'"),
    ("12_deploy", {"in_sample": ["2001-01-01", "2011-12-31"]}, ValueError,
     r"out_of_sample starts 2010-01-04, before in_sample ends 2011-12-30"),
    ("12_deploy", {"out_of_sample": ["2030-01-01", "2030-12-31"]}, ValueError,
     r"out_of_sample start '2030-01-01' is outside data set 'equities'"),
    ("12_deploy", {"out_of_sample": ["2013-01-01", "2013-12-31"]}, ValueError,
     r"out_of_sample end '2013-12-31' is outside data set 'equities'"),
    ("12_deploy", {"tick_bars": 0}, ValueError, r"tick_bars must be an integer in \[1, 252\], got 0"),
    ("12_deploy", {"n_trials": 0}, ValueError, r"n_trials must be an integer >= 1, got 0"),
    # refused by the deployment, after the search and a replay
    ("12_deploy", {"max_position": 0}, ValueError, r"risk max_position must be > 0, got 0"),
    ("12_deploy", {"max_position": "0.5"}, TypeError, r"risk max_position must be a real number"),
    ("12_deploy", {"fees": -0.001}, ValueError, r"fees must be in \[0, 1\), got -0\.001"),
    # more bars than out_of_sample holds: silently fewer
    ("12_deploy", {"tick_bars": 500}, ValueError,
     r"tick_bars must be an integer in \[1, 252\], got 500 \(out_of_sample has 252 bars\)"),
]

def _cells(name: str):
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _parameters(name: str) -> set:
    return suite.parameter_names((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))


def _run_first_cells(name: str, overrides: dict, n: int = FIRST_CELLS):
    """Run the notebook's first ``n`` code cells here, ``overrides`` injected after the
    parameters cell as papermill does; return the exception raised, or None."""
    env = {"__name__": "__main__"}
    for cell in _cells(name)[:n]:
        src = "".join(cell["source"])
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(src, f"<{name}>", "exec"), env)
        except Exception as e:  # the cell's error, as a kernel would show it
            return e
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            env.update(overrides)
    return None


class _Work(Exception):
    """Raised by a stand-in for a notebook's heavy calls: the checks are over."""


# the calls that do a notebook's work (backtests, searches, sweeps, signals, replays,
# widgets that backtest): a bad parameter must be refused before the first of them
HEAVY = [("quantlab", "backtest"), ("quantlab", "sweep"), ("quantlab", "run_research_analysis"),
         ("quantlab", "deploy"), ("quantlab.optimize", "optimize_strategy_parameters"),
         ("quantlab.strategies", "Strategy.signal"), ("quantlab.strategies", "Strategy.diagnostics"),
         ("quantlab.ensemble", "detect_regimes"), ("quantlab.ensemble", "Ensemble.streams"),
         ("quantlab.ensemble", "Ensemble.backtest"), ("quantlab.risk", "RiskManager.backtest"),
         ("quantlab.risk", "RiskManager.generate_risk_report"),
         ("quantlab.engine", "TickEngine.replay"), ("quantlab.engine", "TickEngine.process_ticks"),
         ("quantlab.testing", "synthetic_ticks"), ("quantlab.widgets", "StrategyExplorer"),
         ("quantlab.crossmarket", "CrossMarketAnalyzer.correlations"),
         ("quantlab.crossmarket", "CrossMarketAnalyzer.lead_lag"),
         ("quantlab.measures", "rolling_hurst"), ("quantlab.rolling", "zscore")]


@pytest.fixture
def no_work(monkeypatch):
    """Every heavy call raises ``_Work`` naming itself."""
    import importlib

    for module, attr in HEAVY:
        owner = importlib.import_module(module)
        *path, last = attr.split(".")
        for part in path:
            owner = getattr(owner, part)

        def stand_in(*args, _name=f"{module}.{attr}", **kw):
            raise _Work(_name)
        monkeypatch.setattr(owner, last, stand_in)


def _run_until_work(name: str, overrides: dict):
    """Run the notebook's code cells here, ``overrides`` injected after the parameters
    cell as papermill does, until one raises (with ``no_work``: at the first heavy call
    at the latest); return the exception, or None."""
    return _run_first_cells(name, overrides, n=len(_cells(name)))


@pytest.fixture(autouse=True)
def _no_browser(monkeypatch):
    """No figure opens a browser, and the notebook output mode the first cells set
    (``ql.plots.init_notebook()``) does not leak into other tests."""
    import bokeh.io

    monkeypatch.setattr(bokeh.io, "show", lambda *a, **k: None)
    yield
    bokeh.io.reset_output()


@pytest.mark.parametrize("name, bad, exc, pattern", CASES,
                         ids=[f"{c[0][:2]}-{'-'.join(c[1])}" for c in CASES])
def test_a_bad_parameter_is_refused_before_any_work_naming_it(no_work, name, bad, exc,
                                                              pattern):
    """Refused up front: before the notebook's first heavy call (HEAVY), not cells later
    by the library after backtests, searches or widgets ran."""
    assert set(bad) <= _parameters(name), f"{name} sets no {sorted(bad)}"
    err = _run_until_work(name, bad)
    assert not isinstance(err, _Work), f"{name} reached {err} with {bad}"
    assert isinstance(err, exc), f"{type(err).__name__}: {err}"
    assert re.search(pattern, str(err)), str(err)


@pytest.mark.parametrize("name", sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")))
def test_the_default_parameters_pass_the_checks_and_reach_the_work(no_work, name):
    """The harness above is not vacuous: with its own parameters each notebook passes its
    checks and stops at a heavy call."""
    err = _run_until_work(name, {})
    assert isinstance(err, _Work), f"{name}: {type(err).__name__}: {err}"


def test_every_parameter_of_every_notebook_has_a_bad_value_case():
    """Each parameter is covered above: a new parameter needs its check, and its case here."""
    missing = []
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        covered = {k for n, bad, *_ in CASES if n == path.stem for k in bad}
        missing += [f"{path.stem}: {k}" for k in sorted(_parameters(path.stem) - covered)]
    assert not missing, missing


def _numeric_defaults(name: str) -> dict:
    """The notebook's parameters whose default is a number (int or float, not a bool)."""
    cell = next(c for c in _cells(name) if "parameters" in c.get("metadata", {}).get("tags", []))
    env: dict = {}
    exec("".join(cell["source"]), env)
    return {k: v for k, v in env.items() if k in _parameters(name)
            and isinstance(v, (int, float)) and not isinstance(v, bool)}


NUMERIC = [(p.stem, k) for p in sorted(NOTEBOOKS.glob("*.ipynb")) for k in _numeric_defaults(p.stem)]


@pytest.mark.parametrize("name, param", NUMERIC, ids=[f"{n[:2]}-{k}" for n, k in NUMERIC])
@pytest.mark.parametrize("flag", [True, False])
def test_a_bool_given_for_a_numeric_parameter_is_refused_naming_it(no_work, name, param, flag):
    """True is not 1.0: 09's `max_drawdown=True` became a drawdown limit of 1.0 (currency)
    in the engine's config, and ran. Every parameter whose default is a number refuses
    True and False before the first heavy call, naming the parameter (or the setting it
    becomes) and the value."""
    err = _run_until_work(name, {param: flag})
    assert err is not None and not isinstance(err, _Work), f"{name}: {param}={flag} reached {err}"
    assert isinstance(err, (TypeError, ValueError)), f"{type(err).__name__}: {err}"
    assert param in str(err) and str(flag) in str(err), str(err)


class _Stop(Exception):
    """Raised by a stand-in for the heavy call after the checks: the cells stop there."""


def test_one_name_where_a_list_is_expected_is_that_one_name(monkeypatch):
    """`-p symbols IBM` (YAML text) is one symbol, not the letters I, B, M (10 ran every
    strategy and then ended in KeyError: 'I'); `-p allocations equal` likewise (06: 'unknown
    allocation 'e'')."""
    got = {}

    def stand_in(key):
        def stop(*args, **kw):
            got[key] = args[0] if key == "symbols" else kw["allocation"]
            raise _Stop
        return stop

    monkeypatch.setattr(ql, "run_research_analysis", stand_in("symbols"))
    monkeypatch.setattr(ql.ensemble, "Ensemble", stand_in("allocations"))
    assert isinstance(_run_first_cells("10_research_analysis", {"symbols": "IBM"}), _Stop)
    assert isinstance(_run_first_cells("06_ensemble", {"allocations": "equal"}), _Stop)
    assert got == {"symbols": ["IBM"], "allocations": "equal"}


# ----------------------------------------------------------------- the checks themselves

def test_one_of_names_the_parameter_value_and_choices(equities):
    assert suite.one_of("symbol", "IBM", equities) == "IBM"
    with pytest.raises(ValueError, match=r"^symbol 'ibm' is not in data set 'equities' \(did you "
                                         r"mean 'IBM'\?\); its assets: AAPL, GOOG, IBM, MSFT$"):
        suite.one_of("symbol", "ibm", equities)
    with pytest.raises(TypeError, match=r"symbol must be one name, got tuple \('IBM',\)"):
        suite.one_of("symbol", ("IBM",), equities)
    with pytest.raises(ValueError, match=r"^mode 'c' is not a mode; allowed: a, b$"):
        suite.one_of("mode", "c", ["a", "b"], what="a mode")
    many = equities.isel(asset=[0] * 40).assign_coords(asset=[f"A{i}" for i in range(40)])
    with pytest.raises(ValueError, match=r"A29, \.\.\. \(40 in all\)$"):
        suite.one_of("symbol", "X", many)
    with pytest.raises(ValueError, match=r"data set 'equities' has no 'asset' coordinate"):
        suite.one_of("symbol", "X", equities.isel(asset=0, drop=True))


def test_subset_of_takes_one_name_and_refuses_empty_repeated_or_unknown(equities):
    assert suite.subset_of("symbols", "MSFT", equities) == ["MSFT"]
    assert suite.subset_of("symbols", ("MSFT", "IBM"), equities) == ["MSFT", "IBM"]
    space = ql.strategies.get("spc").param_space
    assert suite.subset_of("params", ["k", "h"], space) == ["k", "h"]
    with pytest.raises(ValueError, match=r"^params 'window' is not a parameter of spc; allowed: "
                                         r"span, k, h$"):
        suite.subset_of("params", ["k", "window"], space, what="a parameter of spc")
    with pytest.raises(ValueError, match=r"^symbols is empty: give at least one"):
        suite.subset_of("symbols", [], equities)
    with pytest.raises(ValueError, match=r"^symbols names 'IBM' twice"):
        suite.subset_of("symbols", ["IBM", "MSFT", "IBM"], equities)
    with pytest.raises(TypeError, match=r"^symbols must be a list of names, got int 5"):
        suite.subset_of("symbols", 5, equities)
    with pytest.raises(TypeError, match=r"^symbols must be one name, got list \['IBM'\]"):
        suite.subset_of("symbols", [["IBM"]], equities)


def test_integer_in_and_number_in_say_where_the_bounds_come_from():
    assert suite.integer_in("fast", 20, 1, 100) == 20
    assert suite.number_in("slippage_bps", 2.5, 0, 10_000) == 2.5
    with pytest.raises(ValueError, match=r"^slow must be an integer in \[21, 99\], got 5 "
                                         r"\(longer than fast = 20\)$"):
        suite.integer_in("slow", 5, 21, 99, why="longer than fast = 20")
    with pytest.raises(TypeError, match=r"^slow must be an integer, got '50'$"):
        suite.integer_in("slow", "50", 21, 99, why="longer than fast = 20")
    for bad in (True, 2.5, float("nan")):
        with pytest.raises((TypeError, ValueError), match=r"^window must be an integer"):
            suite.integer_in("window", bad, 2)
    with pytest.raises(ValueError, match=r"^slippage_bps must be a finite number"):
        suite.number_in("slippage_bps", float("inf"), 0, 10_000)


def test_period_checks_dates_order_span_bars_and_sequence(equities):
    ds = equities
    assert suite.period("in_sample", ("2001", "2009"), ds) == ("2001", "2009")
    assert suite.period(("start", "end"), (None, None), ds) == (None, None)
    # pandas' partial dates: '2005-06' .. '2005' is June to December 2005, not backwards
    assert suite.period("p", ("2005-06", "2005"), ds) == ("2005-06", "2005")
    with pytest.raises(ValueError, match=r"^p start '2006' is after p end '2005'$"):
        suite.period("p", ["2006", "2005"], ds)
    with pytest.raises(ValueError, match=r"^start '1990-01-01', end '1995-01-01': no bars of data "
                                         r"set 'equities' \(it runs 2000-03-01 \.\. 2013-03-01\)$"):
        suite.period(("start", "end"), ("1990-01-01", "1995-01-01"), ds)
    with pytest.raises(ValueError, match=r"^p \('2013-02-25', None\): 5 bars of data set "
                                         r"'equities' .*; at least 10 needed$"):
        suite.period("p", ("2013-02-25", None), ds, min_bars=10)
    for bad, exc, msg in [("2005", TypeError, r"^p must be a \(start, end\) pair of dates"),
                          (["2005"], TypeError, r"^p must be a \(start, end\) pair"),
                          ((20050101, None), TypeError, r"^p start must be a date as text"),
                          (("2005-13-45", None), ValueError, r"^p start '2005-13-45' is not a date"),
                          (("2005-01-01T00:00+05:00", None), ValueError, r"has a time zone")]:
        with pytest.raises(exc, match=msg):
            suite.period("p", bad, ds)
    with pytest.raises(ValueError, match=r"^oos starts 2009-01-02, before is ends 2009-12-31: it "
                                         r"must start after it$"):
        suite.period("oos", ("2009", "2010"), ds, after=("is", ("2005", "2009")))
    assert suite.period("oos", ("2010", "2011"), ds, after=("is", ("2005", "2009")))
    # inside: both ends within the data (the optimiser refuses dates past it, but only
    # after the searches in 08); without it a period may reach past the data
    assert suite.period("p", ("1990", "2005"), ds) == ("1990", "2005")
    with pytest.raises(ValueError, match=r"^p start '1990' is outside data set 'equities' \(it "
                                         r"runs 2000-03-01 \.\. 2013-03-01\)$"):
        suite.period("p", ("1990", "2005"), ds, inside=True)
    assert suite.period("p", (None, "2013-03-01"), ds, inside=True)
    # with an asset: its own bars (GOOG listed 2004-08-19), of a Dataset or a DataArray
    for data in (ds, ds["close"]):
        assert suite.period("p", ("2004", "2005"), data, asset="GOOG", min_bars=100)
        with pytest.raises(ValueError, match=r"^p \('2004-08-01', '2004-08-31'\): 9 bars of 'GOOG'"):
            suite.period("p", ("2004-08-01", "2004-08-31"), data, asset=["IBM", "GOOG"],
                         min_bars=10)
        with pytest.raises(ValueError, match=r"^p \('2001', '2004-08-20'\): 2 bars of 'GOOG' in "
                                             r".*\(it runs 2004-08-19 \.\. 2013-03-01\); at least 3"):
            suite.period("p", ("2001", "2004-08-20"), data, asset="GOOG", min_bars=3)


def test_has_variables_names_the_data_sets_that_have_them(equities):
    assert suite.has_variables("data_set", equities, ["close", "volume"]) is equities
    with pytest.raises(ValueError, match=r"^data_set 'vix' has no 'volume' \(its variables: "
                                         r"close\); the data sets with them: equities, indices$"):
        suite.has_variables("data_set", ql.data.load("vix"), ["close", "volume"])


# ----------------------------------------------------------------- end to end, one kernel

def test_run_suite_with_a_bad_symbol_fails_naming_it_in_the_index(tmp_path):
    out = tmp_path / "out"
    assert cli.main(["run-suite", str(NOTEBOOKS / "00_quickstart.ipynb"), "--out", str(out),
                     "-p", "symbol", "AAPLX"]) == 1
    (run,) = json.loads((out / "index.json").read_text())
    assert run["status"] == "failed"
    assert re.search(r"ValueError: symbol 'AAPLX' is not in data set 'equities' \(did you mean "
                     r"'AAPL'\?\); its assets: AAPL, GOOG, IBM, MSFT", run["error"]), run["error"]
