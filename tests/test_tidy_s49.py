"""Session 49's small trust/shape faults: one check where there were two (price data, a
parameter dim named like a metric), lead_lag's degenerate pair, date parsing warnings,
huge counts, rolling functions on pandas, as_of's dim, and the store's chunk writes."""
import dataclasses
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from panels import ohlcv_panel
from quantlab import _validate
from quantlab.backtesting import dispatch


# ---- 1. one check of price data: _validate.dataset (dispatch.as_dataset its caller) ----

@pytest.mark.parametrize("bad", [pd.DataFrame({"close": [1.0, 2.0]}), None, "prices",
                                 xr.Dataset({"open": (("time", "asset"), np.ones((2, 1)))})],
                         ids=["DataFrame", "None", "str", "no close"])
def test_backtest_and_validate_dataset_refuse_price_data_in_the_same_words(bad):
    # ql.backtest's own copy said "data must be an xarray Dataset with 'close' (or a close
    # DataArray)" without the type given, and "data has no 'close' variable" without the
    # variables there: the same faults as _validate.dataset's, in other words
    with pytest.raises((TypeError, ql.DataError)) as want:
        _validate.dataset("data", bad)
    with pytest.raises(type(want.value), match=f"^{re.escape(str(want.value))}$"):
        ql.backtest(bad, xr.DataArray(np.ones((2, 1)), dims=("time", "asset")))
    with pytest.raises(type(want.value), match=f"^{re.escape(str(want.value))}$"):
        dispatch.as_dataset(bad)


# ---- 2. a parameter dim named like a metric: one checker, one wording ----------------

@pytest.mark.parametrize("name", ["n_trades", "sharpe_ratio"])
def test_a_metric_named_dim_is_refused_in_one_wording_before_and_after_the_run(name):
    ds, sig = ohlcv_panel(seed=1, n=40, m=3)
    two = xr.concat([sig, -sig], dim=name).assign_coords({name: [10, 20]})
    with pytest.raises(ValueError) as before:
        ql.backtest(ds, two, fees=0.001)
    res = ql.backtest(ds, xr.concat([sig, -sig], dim="p").assign_coords(p=[10, 20]),
                      fees=0.001)
    renamed = dataclasses.replace(res, equity=res.equity.rename(p=name))
    with pytest.raises(ValueError) as after:
        renamed.metrics()
    b, a = str(before.value), str(after.value)
    assert b.startswith("ql.backtest: ") and a.startswith("metrics(): ")
    assert b.split(": ", 1)[1] == a.split(": ", 1)[1]      # was two wordings
    assert f"['{name}']" in a

