"""Arguments of a plausible but wrong type or kind at the public API (session 48 probe).

Each case either reached internals and crashed without naming the argument ('NoneType'
object is not iterable, unhashable type, numpy casting errors, StatisticsError, pandas'
slice errors), or was silently accepted and changed the numbers (a truthy string or None
as a flag, True as 1.0, 5.0 days as 5 nanoseconds). Now each is refused naming the
argument, and the reasonable look-alikes (NumPy scalars, tuples) give the same numbers.
"""
import datetime as dt
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql

# values a caller passes by mistake for a bool flag: each is truthy or falsy, none a flag
NOT_FLAGS = ["no", "False", None, 0, 1, [], 0.0]


@pytest.fixture(scope="module")
def ds():
    return ql.data.load().isel(time=slice(-260, None))


@pytest.fixture(scope="module")
def series():
    return np.random.default_rng(0).normal(0, 0.01, 400)


# ---- bool flags of ql.measures ------------------------------------------------------

MEASURE_FLAGS = [("hurst", "corrected"), ("hurst", "unbiased"), ("dfa", "overlap"),
                 ("permutation_entropy", "normalize")]


@pytest.mark.parametrize("fn,arg", MEASURE_FLAGS)
@pytest.mark.parametrize("value", NOT_FLAGS, ids=repr)
def test_a_measure_flag_that_is_not_a_bool_is_refused_naming_it(fn, arg, value, series):
    # "no" ran as True, None and 0 as False: another number without a word
    with pytest.raises(TypeError, match=f"{arg} must be True or False"):
        getattr(ql.measures, fn)(series, **{arg: value})


@pytest.mark.parametrize("fn,arg", MEASURE_FLAGS)
@pytest.mark.parametrize("value", NOT_FLAGS[:3], ids=repr)
def test_a_rolling_measure_flag_that_is_not_a_bool_is_refused_naming_it(fn, arg, value,
                                                                        series):
    with pytest.raises(TypeError, match=f"{arg} must be True or False"):
        getattr(ql.measures, f"rolling_{fn}")(xr.DataArray(series, dims="time"), 100,
                                              **{arg: value})


@pytest.mark.parametrize("fn,arg", MEASURE_FLAGS)
def test_a_numpy_bool_flag_is_the_bool(fn, arg, series):
    f = getattr(ql.measures, fn)
    for v in (True, False):
        assert f(series, **{arg: np.bool_(v)}) == f(series, **{arg: v})


# ---- risk_free / required_return = None ----------------------------------------------

@pytest.mark.parametrize("fn,arg", [("sharpe_ratio", "risk_free"), ("alpha", "risk_free"),
                                    ("sortino_ratio", "required_return"),
                                    ("downside_risk", "required_return")])
def test_a_rate_of_none_is_refused_naming_it(fn, arg, series):
    # was "unsupported operand type(s) for -: 'float' and 'NoneType'" from a formula
    args = (series, series[::-1]) if fn == "alpha" else (series,)
    with pytest.raises(TypeError, match=f"{arg} must be a real number, got None"):
        getattr(ql.metrics, fn)(*args, **{arg: None})


# ---- rolling.corr's asset_dim --------------------------------------------------------

@pytest.mark.parametrize("value", [None, "assets", ["asset"], 5], ids=repr)
def test_rolling_corr_refuses_an_asset_dim_that_is_not_a_dimension(value, ds):
    # None: "cannot reshape array"; a list: "unhashable type"; a name: an error about dim=
    with pytest.raises(ValueError, match="asset_dim must name a dimension of x"):
        ql.rolling.corr(ds["close"], 20, asset_dim=value)


# ---- risk parity ---------------------------------------------------------------------

COV = pd.DataFrame([[0.04, 0.01], [0.01, 0.09]], index=["a", "b"], columns=["a", "b"])


@pytest.mark.parametrize("arg,value,exc", [
    ("tol", True, TypeError), ("tol", "1e-9", TypeError), ("tol", None, TypeError),
    ("tol", [], TypeError), ("tol", math.nan, ValueError), ("tol", -1.0, ValueError),
    ("max_iter", None, TypeError), ("max_iter", "50", TypeError), ("max_iter", 50.5, ValueError),
    ("max_iter", True, TypeError), ("max_iter", -1, ValueError), ("max_iter", [50], TypeError),
], ids=repr)
def test_risk_parity_weights_checks_tol_and_max_iter(arg, value, exc):
    # True ran as tol 1.0 (one Newton step), NaN and -1 silently; strings, None and
    # lists crashed in numpy or range() without naming the argument
    with pytest.raises(exc, match=arg):
        ql.risk.risk_parity_weights(COV, **{arg: value})


def test_risk_parity_weights_takes_numpy_numbers_as_the_numbers():
    want = ql.risk.risk_parity_weights(COV, tol=1e-10, max_iter=50)
    got = ql.risk.risk_parity_weights(COV, tol=np.float64(1e-10), max_iter=np.int64(50))
    pd.testing.assert_series_equal(got, want)


@pytest.mark.parametrize("value", ["ab", {"a": 0.5}, None], ids=repr)
def test_risk_contributions_refuses_weights_that_are_not_numbers(value):
    with pytest.raises((TypeError, ValueError), match="weights must be 2 finite numbers"):
        ql.risk.risk_contributions(COV, value)


# ---- detect_regimes's windows --------------------------------------------------------

@pytest.mark.parametrize("arg", ["window", "trend_window", "breadth_window"])
@pytest.mark.parametrize("value", [None, 20.5, "20", 0], ids=repr)
def test_detect_regimes_names_the_window_that_is_wrong(arg, value, ds):
    # trend_window=None said "window must be an integer" (rolling's name for it)
    with pytest.raises((TypeError, ValueError), match=f"^{arg} must be an integer"):
        ql.ensemble.detect_regimes(ds, **{arg: value})


# ---- huge integers -------------------------------------------------------------------

def test_rolling_stats_with_a_window_longer_than_any_series_is_all_nan():
    r = pd.Series(np.random.default_rng(1).normal(0, 0.01, 50),
                  index=pd.bdate_range("2020-01-01", periods=50))
    # 10**30 overflowed pandas' C long; one row longer than the series fills none either
    huge = ql.tearsheet.rolling_stats(r, window=10 ** 30)
    pd.testing.assert_frame_equal(huge, ql.tearsheet.rolling_stats(r, window=51))
    assert huge.isna().all().all()


def test_rolling_stats_with_a_huge_periods_is_computed():
    r = pd.Series(np.random.default_rng(1).normal(0, 0.01, 50),
                  index=pd.bdate_range("2020-01-01", periods=50))
    # was "loop of ufunc does not support argument 0 of type int" (np.sqrt of 10**30)
    out = ql.tearsheet.rolling_stats(r, window=20, periods=10 ** 30)
    base = ql.tearsheet.rolling_stats(r, window=20, periods=252)
    np.testing.assert_allclose(out["volatility"], base["volatility"] * math.sqrt(1e30 / 252))


def test_expected_max_sharpe_of_very_many_trials():
    # 1 - 1/N rounded to 1.0 from N ~ 1e16: a StatisticsError from NormalDist
    values = [ql.integrity.expected_max_sharpe(n, 0.01) for n in (10 ** 6, 10 ** 17, 10 ** 18)]
    assert all(math.isfinite(v) for v in values) and values == sorted(values)
    assert values[0] == pytest.approx(0.486786, abs=1e-6)
    with pytest.raises(ValueError, match="n_trials must be an integer in"):
        ql.integrity.expected_max_sharpe(10 ** 30, 0.01)
    with pytest.raises(ValueError, match="n_trials must be an integer in"):
        ql.integrity.deflated_sharpe_ratio(sharpe=0.1, n_obs=300, n_trials=10 ** 30,
                                           trials_sharpe_variance=0.01)


# ---- dates ---------------------------------------------------------------------------

@pytest.mark.parametrize("value,exc", [(2012, TypeError), (True, TypeError),
                                       ("notadate", ValueError), ([2012], ValueError)],
                         ids=repr)
@pytest.mark.parametrize("arg", ["start", "end"])
def test_research_analysis_names_a_start_or_end_that_is_not_a_date(arg, value, exc, ds):
    # was pandas' "cannot do slice indexing on DatetimeIndex with these indexers [2012]"
    with pytest.raises(exc, match=f"{arg} must be a date"):
        ql.run_research_analysis(["IBM"], "volatility", data=ds, progress=False,
                                 **{arg: value})


@pytest.mark.parametrize("value,exc", [(2012, TypeError), ("notadate", ValueError)], ids=repr)
def test_crossmarket_correlations_names_a_start_that_is_not_a_date(value, exc):
    cm = ql.crossmarket.CrossMarketAnalyzer()
    cm.add_market_data("equity", "X", pd.Series(np.linspace(1, 2, 30),
                                                index=pd.bdate_range("2020", periods=30)))
    with pytest.raises(exc, match="start must be a date"):
        cm.correlations(start=value)


def test_research_analysis_takes_a_timestamp_a_date_and_a_string_alike(ds):
    runs = [ql.run_research_analysis(["IBM"], "volatility", data=ds, progress=False, start=s)
            for s in ("2012-06-01", pd.Timestamp("2012-06-01"), dt.date(2012, 6, 1))]
    rows = [run["IBM"]["volatility_regime"] for run in runs]
    assert rows[0]["signals"].index[0] == pd.Timestamp("2012-06-01")
    for row in rows[1:]:
        assert {k: v for k, v in row.items() if k != "signals"} == \
            {k: v for k, v in rows[0].items() if k != "signals"}
        pd.testing.assert_series_equal(row["signals"], rows[0]["signals"])


# ---- containers ----------------------------------------------------------------------

@pytest.mark.parametrize("value", [None, 5, []], ids=repr)
def test_research_analysis_refuses_symbols_that_are_not_a_list_of_symbols(value, ds):
    # None and 5: "'NoneType' object is not iterable"; []: "empty data set" from validate
    with pytest.raises(TypeError, match="symbols must be a symbol or a non-empty list"):
        ql.run_research_analysis(value, "volatility", data=ds, progress=False)


@pytest.mark.parametrize("value", [None, 5, 2.5], ids=repr)
def test_an_ensemble_of_something_not_a_list_of_strategies_is_refused(value):
    with pytest.raises(TypeError, match="strategies must be a strategy or a list"):
        ql.ensemble.Ensemble(value)


def test_load_with_a_list_for_a_name_is_an_unknown_data_set():
    with pytest.raises(KeyError, match="unknown data set"):
        ql.data.load(["equities"])   # was TypeError: unhashable type: 'list'


# ---- as_of's release_lag -------------------------------------------------------------

MONTHLY = pd.Series(np.arange(6.0), index=pd.date_range("2020-01-31", periods=6, freq="ME"))
DAILY = pd.date_range("2020-01-01", "2020-07-31", freq="D")


@pytest.mark.parametrize("value", [True, False, 5.0, 5.5, math.nan, "20", "0.5", None,
                                   np.float64(5), [5], np.array(5)], ids=repr)
def test_as_of_refuses_a_release_lag_that_is_not_days_or_a_duration(value):
    # 5.0 and "20" were nanoseconds (pd.Timedelta(5.0)), True one day, NaN and None
    # failed later as "index must be monotonic increasing or decreasing"
    with pytest.raises(TypeError, match="release_lag must be whole days"):
        ql.data.as_of(MONTHLY, value, index=DAILY)


def test_as_of_takes_an_int_a_numpy_int_and_a_duration_alike():
    want = ql.data.as_of(MONTHLY, 5, index=DAILY)
    # np.timedelta64 is a NumPy integer: int() of it failed ("not 'datetime.timedelta'")
    for v in (np.int64(5), "5D", pd.Timedelta(days=5), np.timedelta64(5, "D"),
              dt.timedelta(days=5), pd.offsets.Day(5)):
        pd.testing.assert_series_equal(ql.data.as_of(MONTHLY, v, index=DAILY), want)


# ---- signal, objective, params: the wrong kind of container --------------------------

@pytest.mark.parametrize("kind", ["ndarray", "Dataset", "float", "str", "list"])
def test_backtest_refuses_a_signal_that_is_not_a_dataarray_naming_it(kind, ds):
    sig = (ds["close"] > ds["close"].shift(time=20)).astype(float)
    # a DataFrame is a signal since session 60 (tests/test_lead_s60.py)
    value = {"ndarray": sig.values, "Dataset": sig.to_dataset(name="s"), "float": 1.0,
             "str": "volatility_regime", "list": [1.0, 0.0]}[kind]
    # was AttributeError: 'DataFrame' object has no attribute 'dtype'
    with pytest.raises(TypeError, match="signal must be an xarray DataArray"):
        ql.backtest(ds, value)


@pytest.mark.parametrize("value", [None, 5], ids=repr)
def test_optimize_refuses_an_objective_that_is_no_name(value, ds):
    # was TypeError: 'NoneType' object is not iterable
    with pytest.raises(ValueError, match="objective must be one of"):
        ql.optimize.optimize_strategy_parameters(
            "volatility_regime", {"window": (10, 20)}, ds, optimization_method="grid",
            n_trials=2, objective=value, progress=False)


@pytest.mark.parametrize("value", ["abc", 5, True, []], ids=repr)
def test_deploy_refuses_params_that_are_not_a_dict(value, ds):
    # "abc": "'str' object is not a mapping"; []: ran with the default parameters
    with pytest.raises(TypeError, match="params must be a dict"):
        ql.deploy("volatility_regime", params=value, history=ds)


@pytest.fixture(scope="module")
def cm():
    return ql.crossmarket.CrossMarketAnalyzer.from_bundled()


@pytest.mark.parametrize("method,kw", [
    ("volatility_linkage", {"window": None}), ("volatility_linkage", {"window": "21"}),
    ("commodity_influence", {"window": None}), ("commodity_influence", {"window": 21.5}),
    ("lead_lag", {"te_bins": True}), ("lead_lag", {"te_bins": "3"}),
], ids=repr)
def test_crossmarket_names_a_window_or_te_bins_of_the_wrong_type(method, kw, cm):
    # window: "unsupported operand type(s) for //: 'NoneType' and 'int'"; te_bins: an
    # error about "bins" (transfer_entropy's name for it)
    arg = next(iter(kw))
    with pytest.raises((TypeError, ValueError), match=f"^{arg} must be an integer"):
        getattr(cm, method)(**kw)


# ---- flags beyond ql.measures --------------------------------------------------------

@pytest.mark.parametrize("arg", ["labels", "values", "part"])
@pytest.mark.parametrize("value", ["no", None, 0], ids=repr)
def test_validate_refuses_a_check_switch_that_is_not_a_bool(arg, value, ds):
    # labels=None skipped the label checks, "no" ran them
    with pytest.raises(TypeError, match=f"{arg} must be True or False"):
        ql.data.validate(ds, **{arg: value})


TICK = {"symbol_id": 0, "bid_price": "100.00", "ask_price": "100.02", "bid_size": 300,
        "ask_size": 100, "timestamp": 1}


@pytest.mark.parametrize("value", ["no", None, 0], ids=repr)
@pytest.mark.parametrize("columns", [False, True])
def test_the_tick_engine_refuses_a_check_risk_that_is_not_a_bool(value, columns):
    # None and 0 switched the order risk checks (kill switch included) off, silently
    eng = ql.engine.TickEngine()
    with pytest.raises(TypeError, match="check_risk must be True or False"):
        if columns:
            eng.process_ticks(pd.DataFrame([TICK]), check_risk=value)
        else:
            eng.process_market_data([TICK], check_risk=value)


def test_the_tick_engine_takes_a_numpy_bool_for_check_risk():
    a = ql.engine.TickEngine().process_market_data([TICK], check_risk=np.bool_(False))
    b = ql.engine.TickEngine().process_market_data([TICK], check_risk=False)
    assert (a.ticks, a.order_count, a.rejected_orders) == (b.ticks, b.order_count,
                                                           b.rejected_orders)


@pytest.mark.parametrize("value", ["no", 1, [("AAPL", 1)]], ids=repr)
def test_result_inputs_refuses_trades_that_are_no_switch_and_no_frame(value, ds):
    res = ql.backtest(ds, (ds["close"] > ds["close"].shift(time=20)).astype(float))
    # "no" was kept as the frame of trades and failed in the tear sheet, if at all
    with pytest.raises(TypeError, match="trades must be True, False, None or a DataFrame"):
        ql.tearsheet.result_inputs(res, trades=value)


# ---- ql.integrity's array inputs -----------------------------------------------------

TRIALS = xr.DataArray(np.random.default_rng(0).normal(0, 0.01, (320, 6)), dims=("time", "trial"),
                      coords={"time": pd.bdate_range("2020-01-01", periods=320)})


@pytest.mark.parametrize("call", [
    lambda v: ql.integrity.pbo(v, n_splits=8),
    lambda v: ql.integrity.reality_check(v, reps=20),
    lambda v: ql.integrity.probabilistic_sharpe_ratio(v),
    lambda v: ql.integrity.deflated_sharpe_ratio(v, n_trials=5, trials_sharpe_variance=0.01),
], ids=["pbo", "reality_check", "psr", "dsr"])
@pytest.mark.parametrize("kind", ["Dataset", "str"])
def test_integrity_names_returns_that_are_not_numbers(call, kind):
    v = (TRIALS.to_dataset(name="x") if kind == "Dataset" else "abc")
    # a Dataset: "float() argument must be a string or a real number, not 'method'"
    with pytest.raises(TypeError, match="(trial_)?returns must be"):
        call(v)


@pytest.mark.parametrize("value", ["sharpe_ratio", 5, True], ids=repr)
def test_pbo_refuses_a_metric_that_is_not_callable(value):
    with pytest.raises(TypeError, match="metric must be a function"):   # "not callable"
        ql.integrity.pbo(TRIALS, n_splits=8, metric=value)


@pytest.mark.parametrize("value,exc", [(5, ValueError), ("zzz", TypeError),
                                       (TRIALS.to_dataset(name="x"), TypeError)],
                         ids=["5", "zzz", "Dataset"])
def test_reality_check_names_a_benchmark_that_is_no_return_series(value, exc):
    # 5: IndexError ("tuple index out of range") while writing the length error
    with pytest.raises(exc, match="benchmark must be"):
        ql.integrity.reality_check(TRIALS, benchmark=value, reps=20)


def test_integrity_takes_pandas_numpy_and_dataarray_alike():
    want = ql.integrity.pbo(TRIALS, n_splits=8)["pbo"]
    assert ql.integrity.pbo(TRIALS.values, n_splits=8)["pbo"] == want
    assert ql.integrity.pbo(TRIALS.to_pandas(), n_splits=8)["pbo"] == want


# ---- ql.risk's array inputs and scenarios --------------------------------------------

@pytest.fixture(scope="module")
def one_account(ds):
    res = ql.backtest(ds, (ds["close"] > ds["close"].shift(time=20)).astype(float))
    return res.returns.isel(asset=0), res.equity.isel(asset=0)


@pytest.mark.parametrize("method", ["calculate_var", "kelly", "generate_risk_report"])
@pytest.mark.parametrize("kind", ["Dataset", "str"])
def test_risk_manager_names_returns_that_are_not_numbers(method, kind, one_account):
    r = one_account[0]
    v = r.to_dataset(name="r") if kind == "Dataset" else "abc"
    # a Dataset: "float() argument ... not 'method'"; "abc": "could not convert string"
    with pytest.raises(TypeError, match="returns must be"):
        getattr(ql.risk.RiskManager(), method)(v)


@pytest.mark.parametrize("kind", ["Dataset", "str"])
def test_check_drawdown_names_an_equity_that_is_not_numbers(kind, one_account):
    eq = one_account[1]
    with pytest.raises(TypeError, match="equity must be"):
        ql.risk.RiskManager().check_drawdown(eq.to_dataset(name="e") if kind == "Dataset"
                                             else "abc")


def test_the_risk_manager_takes_numpy_pandas_and_dataarray_returns_alike(one_account):
    r = one_account[0]
    rm = ql.risk.RiskManager()
    want = rm.calculate_var(r)["var_95"]
    assert rm.calculate_var(r.to_pandas())["var_95"] == want
    assert rm.calculate_var(r.values)["var_95"] == want


@pytest.mark.parametrize("value", ["zzz", ["crash"], {"crash": -0.3}], ids=repr)
def test_stress_test_refuses_scenarios_that_are_not_a_dict_of_shocks(value, ds):
    # "dictionary update sequence element #0 has length 1; 2 is required"
    with pytest.raises(TypeError, match="scenarios must be a dict"):
        ql.risk.RiskManager().stress_test(pd.Series({"IBM": 0.5}), scenarios=value, data=ds)


# ---- price data of the wrong kind ----------------------------------------------------

DATA_CALLS = {
    "detect_regimes": lambda v: ql.ensemble.detect_regimes(v),
    "run_research_analysis": lambda v: ql.run_research_analysis(["IBM"], "volatility", data=v,
                                                                progress=False),
    "deploy(history=)": lambda v: ql.deploy("volatility_regime", history=v),
    "StrategyExplorer": lambda v: ql.widgets.StrategyExplorer(v),
}


@pytest.mark.parametrize("call", list(DATA_CALLS))
@pytest.mark.parametrize("kind", ["one asset's bars", "str", "Dataset without close"])
def test_price_data_of_the_wrong_kind_is_refused_naming_it(call, kind, ds):
    bars = ds.isel(asset=0).drop_vars(["asset", "asset_class"]).to_dataframe()
    v = {"one asset's bars": bars, "str": "equities",
         "Dataset without close": ds[["volume"]]}[kind]
    # was KeyError 'close', "'DataFrame' object has no attribute 'sel'", "string indices
    # must be integers" or "'str' object has no attribute 'asset'"; a DataFrame of closes
    # is price data since session 60, one of an asset's bars not (five assets "open" ...)
    with pytest.raises((TypeError, ql.DataError),
                       match="(must be an xarray Dataset with 'close'|has no 'close' "
                             "variable|columns are bar fields)"):
        DATA_CALLS[call](v)


@pytest.mark.parametrize("call", list(DATA_CALLS))
@pytest.mark.parametrize("kind", ["DataArray", "DataFrame"])
def test_closes_are_price_data_as_for_backtest(call, kind, ds):
    close = ds["close"].drop_vars("asset_class")
    given = close if kind == "DataArray" else close.to_pandas()
    a, b = DATA_CALLS[call](given), DATA_CALLS[call](close.to_dataset())
    if call == "detect_regimes":
        xr.testing.assert_identical(a, b)
    elif call == "run_research_analysis":
        assert a["IBM"]["volatility_regime"]["total_return"] == \
            b["IBM"]["volatility_regime"]["total_return"]
    elif call == "StrategyExplorer":
        xr.testing.assert_equal(a.ds, b.ds)
    else:
        assert a.universe == b.universe


def test_an_ensemble_given_none_for_data_names_it():
    # None matched the empty cache's missing "ds": KeyError 'parts'
    with pytest.raises(TypeError, match="data must be an xarray Dataset"):
        ql.ensemble.Ensemble(["volatility_regime"]).backtest(None)


@pytest.mark.parametrize("fn,arg", [("rolling_mutual_information", "y"),
                                    ("rolling_transfer_entropy", "target")])
@pytest.mark.parametrize("kind", ["Series", "ndarray"])
def test_a_rolling_pair_measure_names_its_second_series(fn, arg, kind, ds):
    r = ql.data.returns(ds["close"]).isel(time=slice(1, None), asset=0)
    other = r.to_pandas() if kind == "Series" else r.values
    # was "input 2 must be a DataArray like x"
    with pytest.raises(TypeError, match=f"^{arg} must be a DataArray like x"):
        getattr(ql.measures, fn)(r, other, 50)


# ---- a Dataset where metrics take one series or panel --------------------------------

@pytest.fixture(scope="module")
def rets(ds):
    return ql.data.returns(ds["close"]).isel(time=slice(1, None))


DATASET_METRIC_CALLS = {
    "beta(factor_returns=)": ("factor_returns", lambda r, d: ql.metrics.beta(r, d)),
    "alpha(factor_returns=) of a Series": (
        "factor_returns", lambda r, d: ql.metrics.alpha(r.isel(asset=0).to_pandas(), d)),
    "tracking_error(factor_returns=) of an array": (
        "factor_returns", lambda r, d: ql.metrics.tracking_error(r.values, d)),
    "summary(benchmark=)": ("benchmark", lambda r, d: ql.metrics.summary(r, benchmark=d)),
    "summary(returns)": ("returns", lambda r, d: ql.metrics.summary(d)),
    "sharpe_ratio(risk_free=)": ("risk_free", lambda r, d: ql.metrics.sharpe_ratio(
        r, risk_free=d)),
    "sortino_ratio(required_return=)": ("required_return", lambda r, d:
                                        ql.metrics.sortino_ratio(r, required_return=d)),
}


@pytest.mark.parametrize("call", list(DATASET_METRIC_CALLS))
def test_a_dataset_given_to_metrics_is_refused_naming_it_and_its_variables(call, rets):
    # was xarray's "cannot directly convert an xarray.Dataset into a numpy array"
    arg, f = DATASET_METRIC_CALLS[call]
    with pytest.raises(TypeError, match=rf"^metrics take {arg} as a DataArray; for a "
                                        r"Dataset pick a variable \(one of \['ret'\]\)"):
        f(rets, rets.to_dataset(name="ret"))


# ---- CrossMarketAnalyzer.add_market_data's data --------------------------------------

CM_DIMS = {
    "2-D, symbol not an asset": lambda c: ("XYZ", c),
    "2-D, no time dim": lambda c: ("XYZ", c.rename(time="date")),
    "3-D": lambda c: ("XYZ", c.expand_dims(k=2)),
    "3-D, symbol an asset": lambda c: ("IBM", c.expand_dims(k=2)),
    "2-D without asset": lambda c: ("XYZ", c.rename(asset="x")),
}


@pytest.mark.parametrize("case", list(CM_DIMS))
def test_add_market_data_refuses_a_dataarray_of_other_dims_naming_data_and_dims(case, ds):
    # an asset dim without the symbol failed in xarray's squeeze ("cannot select a
    # dimension to squeeze out which has length greater than one")
    symbol, data = CM_DIMS[case](ds["close"])
    with pytest.raises(ValueError, match=rf"^data for '{symbol}'.*dims \("):
        ql.crossmarket.CrossMarketAnalyzer().add_market_data("equity", symbol, data)


def test_add_market_data_takes_its_asset_of_a_panel_as_the_series(ds):
    a = ql.crossmarket.CrossMarketAnalyzer().add_market_data("equity", "IBM", ds["close"])
    b = ql.crossmarket.CrossMarketAnalyzer().add_market_data(
        "equity", "IBM", ds["close"].sel(asset="IBM").to_series())
    pd.testing.assert_series_equal(a._series["IBM"], b._series["IBM"])


def test_add_market_data_names_a_dataset_without_close(ds):
    # was xarray's KeyError "No variable named 'close'"
    with pytest.raises(ql.DataError, match="^data for 'IBM': a Dataset needs a 'close'"):
        ql.crossmarket.CrossMarketAnalyzer().add_market_data("equity", "IBM", ds[["volume"]])


@pytest.mark.parametrize("values", [["a", "b", "c"], [1 + 1j, 2, 3],
                                    pd.date_range("2001", periods=3)],
                         ids=["strings", "complex", "dates"])
def test_add_market_data_refuses_values_that_are_not_numbers_naming_data(values):
    # strings: pandas' "Unable to parse string"; complex lost its imaginary part and
    # dates became nanosecond counts, silently
    s = pd.Series(values, index=pd.date_range("2020", periods=3))
    with pytest.raises(TypeError, match="^data for 'X' (must be numbers|is complex|holds)"):
        ql.crossmarket.CrossMarketAnalyzer().add_market_data("macro", "X", s)


# ---- ql.data.as_of's series, index and period ----------------------------------------

@pytest.fixture(scope="module")
def monthly():
    return pd.Series([1.0, 2.0, 3.0], index=pd.date_range("2020-01-01", periods=3, freq="MS"))


@pytest.mark.parametrize("index", ["2012", 2012, True, pd.Timestamp("2020-02-15"),
                                   [2012, 2013], np.array([["2020-02-01"], ["2020-03-01"]])],
                         ids=["str", "int", "bool", "Timestamp", "ints", "2-D"])
def test_as_of_refuses_an_index_that_is_not_a_sequence_of_dates_naming_it(index, monthly):
    # 'must be called with a collection of some kind, '2012' was passed' from pandas;
    # a 2-D array "'<' not supported between 'tuple' and 'Timestamp'"; [2012, 2013]
    # ran as nanoseconds after 1970 (all NaN, silently)
    with pytest.raises(TypeError, match="^as_of: index must be a 1-D sequence of dates"):
        ql.data.as_of(monthly, 5, index=index)


def test_as_of_names_an_index_of_strings_that_are_not_dates(monthly):
    # was pandas' DateParseError "Unknown datetime string format"
    with pytest.raises(ValueError, match="^as_of: index must be dates"):
        ql.data.as_of(monthly, 5, index=["notadate"])


@pytest.mark.parametrize("series", [None, np.ones(3), [1.0, 2.0], "abc"],
                         ids=["None", "ndarray", "list", "str"])
def test_as_of_refuses_a_series_that_is_not_pandas_or_xarray_naming_it(series):
    # None and arrays: AttributeError "no attribute 'index'"; a list: "needs a
    # DatetimeIndex/time coord, got builtin_function_or_method"
    with pytest.raises(TypeError, match="^as_of: series must be a pandas Series"):
        ql.data.as_of(series, 5)


@pytest.mark.parametrize("as_dataset", [False, True])
def test_as_of_refuses_a_2d_series_naming_its_dims(as_dataset, monthly):
    da = xr.DataArray(np.ones((3, 2)), dims=("time", "asset"),
                      coords={"time": monthly.index, "asset": ["a", "b"]})
    # was "needs a DatetimeIndex/time coord, got MultiIndex"
    with pytest.raises(ql.DataError, match=r"series must have the one dim 'time', got dims "
                                           r"\('time', 'asset'\)"):
        ql.data.as_of(da.to_dataset(name="v") if as_dataset else da, 5, period="M")


@pytest.mark.parametrize("period,exc", [(5, TypeError), ("X", ValueError)])
def test_as_of_names_a_period_pandas_does_not_know(period, exc, monthly):
    # "Argument 'freq' has incorrect type" / "Invalid frequency: X" from pandas
    with pytest.raises(exc, match="^as_of: period must be 'M', 'Q', 'Y' or 'D'"):
        ql.data.as_of(monthly, 5, period=period)


def test_as_of_takes_dates_of_any_sequence_kind_as_the_same_index(monthly):
    days = pd.date_range("2020-01-30", "2020-03-10", freq="10D")
    want = ql.data.as_of(monthly, 5, index=days)
    for index in (list(days.strftime("%Y-%m-%d")), tuple(days), days.values,
                  xr.DataArray(days, dims="time"), pd.Series(days)):
        pd.testing.assert_series_equal(ql.data.as_of(monthly, 5, index=index), want,
                                       check_freq=False)


# ---- Deployment.replay's source ------------------------------------------------------

@pytest.mark.parametrize("source", [5, None, True, [], b"bars.csv", "dict"],
                         ids=["int", "None", "bool", "list", "bytes", "dict"])
def test_replay_refuses_a_source_that_is_not_bars_or_a_path_naming_it(source, ds):
    dep = ql.deploy("cross_sectional_momentum", history=ds[["close"]])
    if source == "dict":   # a DataFrame is closes since session 60
        source = {"close": ds["close"].to_pandas()}
    # was "load_csv: path_or_dir must be a file or folder path": not replay's argument
    with pytest.raises(TypeError, match="^replay: source must be an xarray Dataset of bars"):
        dep.replay(source)


def test_replay_takes_a_close_dataarray_as_deploy_history_does(ds):
    hist, bars = ds[["close"]].isel(time=slice(0, 200)), ds[["close"]].isel(time=slice(200, None))
    a = ql.deploy("cross_sectional_momentum", history=hist).replay(bars["close"])
    b = ql.deploy("cross_sectional_momentum", history=hist).replay(bars)
    assert a.equity_now() == b.equity_now() and len(a.orders) == len(b.orders) > 0


def test_as_of_takes_pandas_offsets_and_infers_the_period_without_pandas_warnings(monthly):
    # isinstance(offset, pd.DateOffset) warns (Pandas4Warning) and is False in pandas 4
    # for Day/MonthBegin/BDay, which as_of would then refuse; pd.infer_freq warns that it
    # returns an offset in pandas 4, which the period lookup does not take
    days = pd.date_range("2020-01-30", "2020-05-10", freq="10D")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = {lag: ql.data.as_of(monthly, lag, index=days)
               for lag in (pd.offsets.Day(5), pd.offsets.MonthBegin(1), pd.offsets.BDay(3))}
    pd.testing.assert_series_equal(got[pd.offsets.Day(5)],
                                   ql.data.as_of(monthly, 5, index=days, period="M"))
    pd.testing.assert_series_equal(got[pd.offsets.MonthBegin(1)],
                                   ql.data.as_of(monthly, "1MS", index=days, period="M"))


def test_as_of_with_too_few_dates_to_infer_the_period_says_pass_period(monthly):
    # was pandas' bare "Need at least 3 dates to infer frequency"
    two = pd.Series([1.0, 2.0], index=pd.DatetimeIndex(["2020-01-01", "2020-02-01"]))
    with pytest.raises(ValueError, match="as_of: cannot infer the period.*pass period="):
        ql.data.as_of(two, 5)
    # an index that carries its frequency needs no inference
    pd.testing.assert_series_equal(ql.data.as_of(monthly.iloc[:2], 5),
                                   ql.data.as_of(two, 5, period="M"), check_freq=False)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_as_of_release_lag_ms_is_month_starts_as_documented_not_milliseconds(n, monthly):
    # pd.Timedelta("2MS") is 2 milliseconds: each month's value was used from the day
    # after its end, a month before the 2nd month start (look-ahead)
    days = pd.date_range("2020-01-25", "2020-07-10")
    want = ql.data.as_of(monthly, pd.offsets.MonthBegin(n), index=days)
    pd.testing.assert_series_equal(ql.data.as_of(monthly, f"{n}MS", index=days), want)
    assert want.first_valid_index() == pd.Timestamp("2020-01-31") + pd.offsets.MonthBegin(n)


def test_as_of_release_lag_in_weeks_stays_a_duration(monthly):
    days = pd.date_range("2020-01-25", "2020-04-10")
    pd.testing.assert_series_equal(ql.data.as_of(monthly, "2W", index=days),
                                   ql.data.as_of(monthly, 14, index=days))


@pytest.mark.parametrize("lag", [-5, "-5D", dt.timedelta(days=-1), pd.offsets.MonthBegin(-1)],
                         ids=repr)
def test_as_of_refuses_a_negative_release_lag(lag, monthly):
    # ran: values were used before their period ended
    with pytest.raises(ValueError, match="release_lag must be >= 0"):
        ql.data.as_of(monthly, lag)


def test_as_of_names_a_release_lag_string_pandas_cannot_read(monthly):
    # was pandas' "Invalid frequency: abc"
    with pytest.raises(ValueError, match="^release_lag must be whole days"):
        ql.data.as_of(monthly, "abc")


@pytest.mark.parametrize("bench,exc,what", [
    ("spy", TypeError, "must be numeric"), ([0.01, 0.02], ValueError, r"has shape \(2,\)"),
    ("renamed", ValueError, "has no 'time' dimension")], ids=["str", "short", "no time dim"])
def test_summary_names_its_own_benchmark_argument(bench, exc, what, rets):
    if bench == "renamed":
        bench = rets.isel(asset=0).rename(time="t")
    # the errors named factor_returns, an argument summary does not have
    with pytest.raises(exc, match=f"^benchmark {what}"):
        ql.metrics.summary(rets, benchmark=bench)


def test_summary_with_a_pandas_or_array_benchmark_is_the_dataarray_one(rets):
    b = rets.isel(asset=0, drop=True)
    want = ql.metrics.summary(rets, benchmark=b)
    for other in (b.to_pandas(), b.values):
        xr.testing.assert_identical(ql.metrics.summary(rets, benchmark=other), want)
