"""Session 58 probe: hostile inputs on the day's new surface (Deployment.result,
BacktestResult.as_portfolio/.options, BacktestOptions.differences, deployment_html,
quantlab deploy --report/--params, OptimizationResult.save)."""
import json

import numpy as np
import pytest
import xarray as xr

import quantlab as ql

VR = {"window": 5, "lookback": 20}


@pytest.fixture(scope="module")
def ds():
    return ql.data.load().isel(time=slice(0, 40))


@pytest.fixture(scope="module")
def dep(ds):
    d = ql.deploy("volatility_regime", VR, history=ds.isel(time=slice(0, 30)))
    return d.replay(ds.isel(time=slice(30, 40)), echo=None)


@pytest.mark.parametrize("stop", ["sl_stop", "tp_stop", "sl_trail"])
def test_a_nan_stop_is_off_as_none_is(stop):
    # before: NaN (the constructor's "off") differed from None and even from NaN
    # (nan != nan): the dashboard refused a backtest trading as the deployment, and
    # opt.save wrote a bare NaN, which is not JSON
    off = ql.BacktestOptions(**{stop: np.nan})
    assert off.differences(ql.BacktestOptions()) == {}
    assert off.differences(ql.BacktestOptions(**{stop: xr.DataArray(np.nan)})) == {}
    assert off.to_dict()[stop] is None
    json.loads(json.dumps(off.to_dict()), parse_constant=pytest.fail)
    assert ql.BacktestOptions(**{stop: 0.05}).differences(off) == {stop: (0.05, None)}


def test_the_dashboard_takes_a_backtest_selected_at_a_nan_stop(ds, dep):
    s = ql.strategies.get("volatility_regime", **VR)
    bars = ds.isel(time=slice(30, 40))
    sig = s.signal(ds).sel(time=bars.time)
    stops = xr.DataArray([np.nan, 0.05], dims="stop", coords={"stop": [0, 1]})
    bt = ql.backtest(bars, sig, sl_stop=stops).sel(stop=0)
    ql.plots.deployment_dashboard(dep, bt)   # was: "sl_stop nan (the deployment's: None)"
