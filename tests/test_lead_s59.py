"""Session 59 (lead): options of one value compare as that value; ..."""
import numpy as np
import pytest
import xarray as xr

import quantlab as ql

KW = dict(fees=0.001, slippage=0.0005, fixed_fees=1.0)


@pytest.fixture(scope="module")
def ds():
    return ql.data.load().isel(time=slice(0, 330))


def test_a_one_value_sweep_compares_as_its_value(ds):
    # before: differences() raised "fees varies over ('fee_rate',)" for a sweep of one
    # value (res.isel(fee_rate=[1])), and the dashboard then skipped its options check
    fees = xr.DataArray([0.0, 0.001], dims="fee_rate", coords={"fee_rate": [0.0, 0.001]})
    s = ql.strategies.get("volatility_regime", window=10, lookback=40)
    hist, bars = ds.isel(time=slice(0, 200)), ds.isel(time=slice(200, None))
    sig = s.signal(ds).sel(time=bars.time)
    swept = ql.backtest(bars, sig, **{**KW, "fees": fees})
    one = swept.isel(fee_rate=[1])
    assert one.options.fees.dims == ("fee_rate",)
    assert one.options.differences(ql.BacktestOptions(**KW)) == {}
    assert one.options.to_dict()["fees"] == 0.001
    assert swept.isel(fee_rate=[0]).options.differences(ql.BacktestOptions(**KW)) == {
        "fees": (0.0, 0.001)}
    dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 40}, history=hist,
                    **KW).replay(bars, echo=None)
    # a stop per asset was not compared at all by the dashboard (differences raised)
    per_asset = xr.DataArray(np.r_[0.05, np.full(ds.sizes["asset"] - 1, np.nan)],
                             dims="asset", coords={"asset": ds.asset})
    with pytest.raises(ValueError, match=r"sl_stop <varies over \('asset',\)>"):
        dep.plot(backtest=ql.backtest(bars, sig, **KW, sl_stop=per_asset))
    off = per_asset.copy(data=np.full(ds.sizes["asset"], np.nan))   # off for every asset
    dep.plot(backtest=ql.backtest(bars, sig, **KW, sl_stop=off))
    # a size per asset: equal to the scalar where it holds one value, else an array
    n = ds.sizes["asset"]
    same = xr.DataArray(np.full(n, 0.5), dims="asset", coords={"asset": ds.asset})
    assert ql.BacktestOptions(size=same).differences(ql.BacktestOptions(size=0.5)) == {}
    other = same.copy(data=np.r_[0.4, np.full(n - 1, 0.5)])
    (mine, theirs), = ql.BacktestOptions(size=other).differences(
        ql.BacktestOptions(size=0.5)).values()
    assert isinstance(mine, xr.DataArray) and theirs == 0.5
    assert ql.BacktestOptions(size=other).differences(ql.BacktestOptions(size=other)) == {}


def test_recovery_time_of_a_series_never_under_water_is_zero():
    # before: NaN, the value for "never regained": the tear sheet read it as n/a and an
    # optimisation minimising recovery_time dropped the trials that never lost
    r = xr.DataArray(np.array([[0.01, 0.0, 0.02, 0.0], [0.01, -0.02, 0.0, 0.0],
                               [0.01, -0.02, 0.03, 0.0], [np.nan] * 4]).T,
                     dims=("time", "asset"))
    np.testing.assert_array_equal(ql.metrics.recovery_time(r).values, [0.0, np.nan, 1.0, np.nan])
    np.testing.assert_array_equal(ql.metrics.summary(r)["recovery_time"].values,
                                  ql.metrics.recovery_time(r).values)
