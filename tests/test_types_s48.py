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
