"""Review of session 48's BacktestResult.metrics() rewrite (cb718e5) against the formulas
it replaced: dtypes of accounts without orders, a close panel's scalar coords, trades of
an account labelled NaN (a swept stop's "off"), a drained account's returns (no warning),
and every backtest feature's metrics against the replaced xarray/pandas formulas."""
import warnings

import numpy as np
import pytest
import xarray as xr

import quantlab as ql
from panels import ohlcv_panel
from test_outofcore_stream import DRAIN, _drain_panel
from test_result_metrics import _exposure_xarray, _per_account_pandas


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


FEATURES = {
    "entries_exits": None,
    "stops": dict(sl_stop=0.03, tp_stop=0.05, sl_trail=0.04, fees=0.001),
    "limits": dict(order_type="limit", limit_offset=0.01, limit_tif=3),
    "dd_halt": dict(dd_limit=0.08, dd_mode="halt"),
    "dd_cooldown": dict(dd_limit=0.05, dd_cooldown=3),
    "fixed_fees": dict(fixed_fees=500.0, init_cash=5_000.0),      # skipped orders: size 0
    "borrow_margin": dict(max_leverage=3.0, borrow_rate=0.2, maintenance_margin=0.3),
    "swept_fees_and_stops": dict(
        fees=xr.DataArray([0.0, 0.01], dims="fz", coords={"fz": [0.0, 0.01]}),
        sl_stop=xr.DataArray([0.02, 0.05], dims="sl", coords={"sl": [0.02, 0.05]})),
}


@pytest.mark.parametrize("feature", FEATURES)
@pytest.mark.parametrize("group", [False, True])
def test_metrics_equal_the_replaced_formulas_for_every_feature(feature, group):
    """metrics()' exposure, per-account sums and open-trade marks against the xarray /
    pandas formulas cb718e5 replaced (tests/test_result_metrics.py checks a plain run),
    with an asset never held (NaN signal) and an asset delisted half way."""
    ds, sig = ohlcv_panel(seed=4, n=80, m=4)
    ds = ds.assign(close=ds["close"].where(ds["time"] < ds["time"][40])
                   .where(ds["asset"] != "A3", ds["close"]))   # A0-A2 end at bar 40
    ds = ds.assign(close=ds["close"].where(ds["asset"] != "A2"))
    ds = ds[["close"]]
    sig = sig.where(ds["asset"] != "A1")                          # A1 never traded
    kw = FEATURES[feature]
    if kw is None:
        res = ql.backtest(ds, entries=sig > 0.3, exits=sig < -0.3, group=group, fees=0.001)
    else:
        res = ql.backtest(ds, sig, group=group, **kw)
    m, seen = res.metrics(), set()
    ref = _exposure_xarray(res)
    assert m["exposure"].dims == ref.dims and set(m["exposure"].coords) == set(ref.coords)
    np.testing.assert_allclose(m["exposure"], ref, rtol=1e-12, atol=0)
    zero = xr.zeros_like(m["sharpe_ratio"])
    tr, o = res.trades, res.orders_frame
    # open trades marked at the last valid close (the forward-filled panel's last row)
    last = res.prices.ffill("time").isel(time=-1).to_pandas()
    is_open = (tr["exit_reason"] == "end_of_data").to_numpy()
    assert is_open.any() or feature == "dd_halt"    # halted: flat at the end
    seen.update(tr.loc[is_open, "asset"])
    np.testing.assert_allclose(tr.loc[is_open, "exit_price"].to_numpy(),
                               last[tr.loc[is_open, "asset"]].to_numpy(), rtol=0)
    for name, frame, col, how in [("n_trades", tr, "pnl", "count"),
                                  ("fees_paid", o, "fee", "sum")]:
        want = _per_account_pandas(frame, col, how, zero)
        assert m[name].dtype == want.dtype == np.float64
        np.testing.assert_allclose(m[name], want, rtol=1e-12, atol=1e-9, err_msg=name)
    traded = o.assign(_t=o["size"].abs() * o["price"])
    np.testing.assert_allclose(m["turnover"], _per_account_pandas(traded, "_t", "sum", zero)
                               / res.equity.where(res.returns.notnull()).mean("time"),
                               rtol=1e-12)
    gp = _per_account_pandas(tr.assign(_g=tr["pnl"].clip(lower=0)), "_g", "sum", zero)
    gl = _per_account_pandas(tr.assign(_g=-tr["pnl"].clip(upper=0)), "_g", "sum", zero)
    with np.errstate(invalid="ignore", divide="ignore"):
        pf = (gp / gl).where(m["n_trades"] > 0)
    np.testing.assert_allclose(m["trade_profit_factor"], pf, rtol=1e-12)
    assert "A0" in seen or feature in ("dd_halt", "entries_exits")   # delisted, held


@pytest.mark.parametrize("group", [False, True])
def test_returns_of_a_drained_account_warn_as_little_as_the_xarray_formula(group):
    # returns computed in place divided 0 equity by 0 without np.errstate: a
    # RuntimeWarning from res.returns / metrics() that xarray's arithmetic (the formula
    # it replaced, and a dask-backed result's) never gave; the values were the same
    ds, sig = _drain_panel()
    res = ql.backtest(ds, sig, group=group, **DRAIN)
    eq = res.equity
    assert ((eq == 0) & (eq.shift(time=1) == 0)).any()        # 0 / 0 happens
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        got = res.returns
    with np.errstate(all="ignore"):
        ref = eq / ql.data.shifted(eq).fillna(res.init_cash) - 1.0
    priced = res.prices.notnull().any("asset") if group else res.prices.notnull()
    ref = ref.where(priced | (ref != 0))   # no close, nothing changed: no observation
    np.testing.assert_array_equal(got.values, ref.values)


@pytest.mark.parametrize("name", ["n_trades", "exposure", "sharpe_ratio", "n_orders"])
@pytest.mark.parametrize("group", [False, True])
def test_a_parameter_dim_named_like_a_metric_is_refused_by_name(name, group):
    # a dim "n_trades" (group=True) came back with its labels [10, 20] replaced by the
    # accounts' trade counts and no n_trades variable; "exposure" raised KeyError,
    # "sharpe_ratio" a MergeError, metrics_only xarray's "found in both data_vars and coords".
    # ql.backtest refuses such a dim before it runs (metrics_only after the whole run did)
    import dataclasses

    ds, sig = ohlcv_panel(seed=1, n=40, m=3)
    two = xr.concat([sig, -sig], dim=name).assign_coords({name: [10, 20]})
    for kw in ({}, {"metrics_only": True}):
        with pytest.raises(ValueError, match=rf"parameter dim name\(s\) \['{name}'\] share "
                                             "a name with a metric"):
            ql.backtest(ds, two, group=group, fees=0.001, **kw)
    # a result made otherwise (here renamed after the run): metrics() refuses it too
    res = ql.backtest(ds, xr.concat([sig, -sig], dim="p").assign_coords(p=[10, 20]),
                      group=group, fees=0.001)
    renamed = dataclasses.replace(res, equity=res.equity.rename(p=name))
    with pytest.raises(ValueError, match=rf"metrics\(\): parameter dim name\(s\) \['{name}'\]"):
        renamed.metrics()
