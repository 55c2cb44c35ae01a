"""Session 57 review: BacktestResult.sel/isel, risk report and the day's other changes
seen from outside."""
import numpy as np
import pytest

import quantlab as ql


@pytest.fixture(scope="module")
def ds():
    return ql.data.load().isel(time=slice(0, 300))


@pytest.fixture(scope="module")
def res(ds):
    sig = ql.strategies.get("volatility_regime", window=[10, 15]).signal(ds)
    return ql.backtest(ds, sig, fees=0.001)


@pytest.mark.parametrize("pick", [dict(window=[10, 10]), dict(window=[10, 11]),
                                  dict(asset=["IBM", "IBM"])])
def test_sel_refuses_an_account_picked_twice(res, pick):
    # the orders' col map kept one of the two columns: the other had no orders (its
    # trades and n_trades lost), then metrics() failed on "uniquely valued Index"
    with pytest.raises(ValueError, match=r"more than once"):
        res.sel(pick, method="nearest" if pick.get("window") == [10, 11] else None)
    with pytest.raises(ValueError, match=r"window picks 15 more than once"):
        res.isel(window=[1, -1])
