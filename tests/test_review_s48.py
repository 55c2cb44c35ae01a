"""Review of session 48's BacktestResult.metrics() rewrite (cb718e5) against the formulas
it replaced: dtypes of accounts without orders, a close panel's scalar coords, and
trades of an account labelled NaN (a swept stop's "off")."""
import numpy as np
import pytest
import xarray as xr

import quantlab as ql
from panels import ohlcv_panel


@pytest.mark.parametrize("group", [False, True])
def test_metrics_of_accounts_without_orders_are_float(group):
    # np.bincount of no rows is int64 whatever its weights: n_trades and fees_paid of a
    # run with no order came out int64 (the pandas formula, and every run with orders: float64)
    ds, sig = ohlcv_panel(seed=1, n=30, m=3)
    m = ql.backtest(ds, sig * np.nan, group=group, fees=0.001).metrics()
    for k in ("n_trades", "fees_paid", "turnover"):
        assert m[k].dtype == np.float64, k
        assert (m[k] == 0).all(), k
    traded = ql.backtest(ds, sig, group=group, fees=0.001).metrics()
    assert all(m[k].dtype == traded[k].dtype for k in m.data_vars)


@pytest.mark.parametrize("group", [False, True])
def test_scalar_coords_of_the_closes_stay_on_the_metrics(group):
    # the xarray exposure formula carried the closes' scalar coords (a panel selected
    # from a larger one) into metrics(); the kernel path dropped them, so an in-memory
    # result's metrics had other coords than the same dask-backed result's
    ds, sig = ohlcv_panel(seed=1, n=30, m=3)
    ds = ds.assign_coords(source="csv")
    mem = ql.backtest(ds, sig, group=group, fees=0.001).metrics()
    lazy = ql.backtest(ds.chunk(time=10), sig, group=group, fees=0.001).metrics()
    assert "source" in mem.coords and mem["source"].item() == "csv"
    assert set(mem.coords) == set(lazy.coords)
    assert set(mem["exposure"].coords) == set(lazy["exposure"].coords)


@pytest.mark.parametrize("group", [False, True])
def test_trades_of_an_account_labelled_nan_are_kept(group):
    # sl_stop swept over [NaN (off), 0.02]: the trades table dropped every trade of the
    # NaN account (pandas' groupby drops NaN keys), so its n_trades was 0 and its
    # trade_win_rate NaN while its fees_paid counted its orders
    ds, sig = ohlcv_panel(seed=1, n=120, m=2)
    sl = xr.DataArray([np.nan, 0.02], dims="sl", coords={"sl": [np.nan, 0.02]})
    swept = ql.backtest(ds, sig, group=group, sl_stop=sl, fees=0.001)
    off = ql.backtest(ds, sig, group=group, fees=0.001)
    m, ref = swept.metrics().isel(sl=0), off.metrics()
    assert (ref["n_trades"] > 0).all()
    for k in ("n_trades", "fees_paid", "turnover", "trade_win_rate", "trade_profit_factor",
              "exposure", "total_return"):
        np.testing.assert_allclose(m[k].values, ref[k].values, rtol=1e-12, err_msg=k)
    tr = swept.trades
    assert tr["sl"].isna().sum() == len(off.trades)
    np.testing.assert_allclose(tr[tr["sl"].isna()]["pnl"].to_numpy(),
                               off.trades["pnl"].to_numpy(), rtol=1e-12)
