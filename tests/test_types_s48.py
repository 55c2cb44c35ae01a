"""Arguments of a plausible but wrong type or kind at the public API (session 48 probe).

Each case either reached internals and crashed without naming the argument ('NoneType'
object is not iterable, unhashable type, numpy casting errors, StatisticsError, pandas'
slice errors), or was silently accepted and changed the numbers (a truthy string or None
as a flag, True as 1.0, 5.0 days as 5 nanoseconds). Now each is refused naming the
argument, and the reasonable look-alikes (NumPy scalars, tuples) give the same numbers.
"""
import math

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


@pytest.mark.parametrize("value", [None, 5, 2.5], ids=repr)
def test_an_ensemble_of_something_not_a_list_of_strategies_is_refused(value):
    with pytest.raises(TypeError, match="strategies must be a strategy or a list"):
        ql.ensemble.Ensemble(value)
