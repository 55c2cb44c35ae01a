"""Session 57: BacktestResult.sel/isel pick one parameter combination's (or asset's) full
result out of a sweep: its metrics, orders, trades, per-bar fields, plot, tear sheet and
risk report equal those of a backtest of that selection alone; lazy fields stay lazy; a
one-asset result is one account for the risk report."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab.backtesting.result import _Derived

FIELDS = ("equity", "cash", "positions", "halted", "interest")
KW = dict(fees=0.001)   # default run: lean (cash, positions rebuilt when first read)
# every per-bar field written (halted, interest) and cash/positions kept by the kernel
FULL = dict(fees=0.001, dd_limit=0.1, borrow_rate=0.02, max_leverage=1.5)


@pytest.fixture(scope="module")
def ds():
    return ql.data.load().isel(time=slice(0, 300))


@pytest.fixture(scope="module")
def sig(ds):
    return ql.strategies.get("volatility_regime", window=[10, 15]).signal(ds)


def _same(got, want, drop=("window",)):
    """Every metric, orders, trades and per-bar field of ``got`` (a selection) equal to
    ``want`` (a backtest of the selection): values, not shapes."""
    gm = got.metrics().drop_vars([d for d in drop if d in got.metrics().coords])
    xr.testing.assert_allclose(gm, want.metrics(), rtol=1e-12)
    assert list(gm.data_vars) == list(want.metrics().data_vars)
    pd.testing.assert_frame_equal(got.orders_frame, want.orders_frame)
    pd.testing.assert_frame_equal(got.trades, want.trades)
    for f in FIELDS:
        g, w = getattr(got, f), getattr(want, f)
        assert (g is None) == (w is None), f
        if w is not None:
            g = g.drop_vars([d for d in drop if d in g.coords]).compute()
            xr.testing.assert_allclose(g, w, rtol=1e-12)


@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("kw", [KW, FULL], ids=["lean", "full"])
def test_sel_window_is_the_backtest_of_that_window(ds, sig, group, kw):
    res = ql.backtest(ds, sig, group=group, **kw)
    one = res.sel(window=10)
    assert "window" not in one.equity.dims and int(one.equity["window"]) == 10
    if kw is KW:   # the lean run's cash and positions stay lazy in the selection
        assert isinstance(one.__dict__["_lazy_cash"], _Derived)
        assert isinstance(one.__dict__["_lazy_positions"], _Derived)
    assert isinstance(one.__dict__["_lazy_orders"], _Derived)
    want = ql.backtest(ds, sig.sel(window=10), group=group, **kw)
    _same(one, want)
    _same(res.isel(window=0), want)
    # a list keeps the dim: the same accounts, the orders' col numbered in them
    kept = res.sel(window=[15])
    assert kept.equity.sizes["window"] == 1
    o = kept.orders_frame
    assert o["window"].eq(15).all()
    want15 = ql.backtest(ds, sig.sel(window=[15]), group=group, **kw)
    pd.testing.assert_frame_equal(o, want15.orders_frame)
    xr.testing.assert_allclose(kept.metrics(), want15.metrics(), rtol=1e-12)


def test_sel_of_a_result_already_read(ds, sig):
    # fields built before the selection (not lazy any more): cut at once, the same values
    res = ql.backtest(ds, sig, **KW)
    res.orders, res.cash, res.positions, res.trades   # noqa: B018 (built now)
    one = res.sel(window=15)
    assert "_lazy_cash" not in one.__dict__ and "_lazy_orders" not in one.__dict__
    _same(one, ql.backtest(ds, sig.sel(window=15), **KW))


@pytest.mark.parametrize("group", [False, True])
def test_sel_of_a_dask_backed_result(ds, sig, group):
    lazy = ql.backtest(ds.chunk({"time": 100}), sig.chunk({"time": 100}), group=group, **FULL)
    one = lazy.sel(window=15)
    assert type(one.equity.data).__name__ == "Array"   # still read from the store lazily
    assert type(one.positions.data).__name__ == "Array"
    _same(one, ql.backtest(ds, sig.sel(window=15), group=group, **FULL))
    _same(one.compute(), ql.backtest(ds, sig.sel(window=15), group=group, **FULL))


@pytest.mark.parametrize("kw", [KW, FULL], ids=["lean", "full"])
def test_sel_one_asset_is_that_assets_account(ds, sig, kw):
    res = ql.backtest(ds, sig, **kw)
    one = res.sel(window=10, asset="IBM")
    for f in ("equity", "cash", "positions", "prices"):   # a scalar drops the dim
        assert getattr(one, f).dims == ("time",), f
        assert str(getattr(one, f)["asset"].values) == "IBM"
    ref = ql.backtest(ds, sig.sel(window=10), **kw)
    m = one.metrics().drop_vars("window")
    xr.testing.assert_allclose(m, ref.metrics().sel(asset="IBM"), rtol=1e-12)
    # the same account run alone: its orders and trades, col 0 of one column
    alone = ql.backtest(ds.sel(asset=["IBM"]), sig.sel(window=10, asset=["IBM"]), **kw)
    pd.testing.assert_frame_equal(one.orders_frame, alone.orders_frame)
    assert (one.orders_frame["col"] == 0).all() and len(one.orders_frame) > 0
    pd.testing.assert_frame_equal(one.trades, alone.trades)
    xr.testing.assert_allclose(m, alone.metrics().isel(asset=0), rtol=1e-12)
    for f in FIELDS:
        if getattr(alone, f) is not None:
            xr.testing.assert_allclose(getattr(one, f).drop_vars("window"),
                                       getattr(alone, f).isel(asset=0), rtol=1e-12)
    # picked in turn: the same result
    chained = res.sel(asset="IBM").sel(window=10)
    _same(chained, one, drop=())
    # a list of assets keeps the dim
    two = res.sel(window=10, asset=["MSFT", "IBM"])
    assert list(two.prices["asset"].values) == ["MSFT", "IBM"]
    xr.testing.assert_allclose(two.metrics().drop_vars("window"),
                               ref.metrics().sel(asset=["MSFT", "IBM"]), rtol=1e-12)
    assert set(two.orders_frame["asset"]) == {"MSFT", "IBM"}


def test_plot_tearsheet_and_risk_report_of_one_combination(ds, sig):
    res = ql.backtest(ds, sig, **KW)
    one = res.sel(window=10, asset="IBM")
    titles = [f.title.text for f in one.plot().children]
    assert titles == ["IBM: close and fills", "position (shares)", "equity", "drawdown"]
    kw = ql.tearsheet.result_inputs(one, "buy_and_hold")
    pd.testing.assert_frame_equal(kw["trades"], one.trades)
    assert kw["returns"].dims == ("time",)
    assert type(one.tearsheet("buy_and_hold")).__name__ == "Column"
    rm = ql.risk.RiskManager()
    rep = rm.generate_risk_report(one)
    # as the report of that asset's account run alone (now accepted: one account)
    alone = ql.backtest(ds.sel(asset=["IBM"]), sig.sel(window=10, asset=["IBM"]), **KW)
    want = rm.generate_risk_report(alone)
    pd.testing.assert_frame_equal(rep.var, want.var, rtol=1e-12)
    assert rep.drawdown == want.drawdown
    pd.testing.assert_frame_equal(rep.stress, want.stress, rtol=1e-12)
    pd.testing.assert_series_equal(rep.attribution, want.attribution, rtol=1e-12)
    assert rep.stress is not None and rep.attribution.index.tolist() == ["IBM"]
    # and as the one-asset portfolio's (group=True: the same account)
    grp = rm.generate_risk_report(
        ql.backtest(ds.sel(asset=["IBM"]), sig.sel(window=10, asset=["IBM"]), group=True, **KW))
    pd.testing.assert_frame_equal(rep.var, grp.var, rtol=1e-12)
    pd.testing.assert_frame_equal(rep.stress, grp.stress, rtol=1e-12)
    pd.testing.assert_frame_equal(rm.stress_test(alone), rm.stress_test(one), rtol=1e-12)


def test_one_asset_result_is_one_account_for_risk(ds, sig):
    alone = ql.backtest(ds.sel(asset=["IBM"]), sig.sel(window=10, asset=["IBM"]))
    rm = ql.risk.RiskManager()
    rep = rm.generate_risk_report(alone)   # was "takes one account ... asset (1)"
    r = alone.returns.isel(asset=0).values
    pd.testing.assert_frame_equal(rep.var, rm.generate_risk_report(r).var, rtol=1e-12)
    assert rm.stress_test(alone).loc["equities -20%", "pnl"] < 0


def test_several_accounts_message_suggests_sel(ds, sig):
    rm = ql.risk.RiskManager()
    swept = ql.backtest(ds, sig, group=True)
    with pytest.raises(ValueError, match=r"also on window \(2\): select one, e\.g\. "
                       r"res\.sel\(window=10\)"):
        rm.generate_risk_report(swept)
    rep = rm.generate_risk_report(swept.sel(window=10))   # as it says
    assert rep.stress is not None
    with pytest.raises(ValueError, match=r"e\.g\. res\.sel\(asset='AAPL', window=10\)"):
        rm.stress_test(ql.backtest(ds, sig))


def test_sel_options(ds, sig):
    res = ql.backtest(ds, sig, **KW)
    near = res.sel(window=11, method="nearest")
    assert int(near.equity["window"]) == 10
    pd.testing.assert_frame_equal(near.orders_frame, res.sel(window=10).orders_frame)
    dropped = res.sel({"window": 10}, drop=True)
    assert "window" not in dropped.equity.coords
    _same(dropped, ql.backtest(ds, sig.sel(window=10), **KW), drop=())
    both = res.isel(asset=[1, 3], window=slice(None))
    assert dict(both.equity.sizes) == {"time": 300, "asset": 2, "window": 2}
    assert set(both.orders_frame["col"]) <= set(range(4))
    xr.testing.assert_allclose(both.metrics(), res.metrics().isel(asset=[1, 3]), rtol=1e-12)


def test_sel_errors(ds, sig):
    res = ql.backtest(ds, sig, **KW)
    with pytest.raises(ValueError, match=r"time cannot be picked.*re-run the backtest"):
        res.sel(time=slice("2000-06-01", None))
    with pytest.raises(ValueError, match=r"time cannot be picked"):
        res.isel(time=-1)
    with pytest.raises(KeyError, match=r"no dim 'lookback' in this result; its dims: "
                       r"time, asset, window"):
        res.sel(lookback=60)
    with pytest.raises(ValueError, match=r"no dim 'lookback'"):
        res.isel(lookback=0)
    with pytest.raises(KeyError, match=r"not all values found in index 'window'"):
        res.sel(window=12)
    with pytest.raises(KeyError, match=r"index 'asset'"):
        res.sel(asset=["IBM", "XYZ"])
    with pytest.raises(IndexError, match=r"window=2 is out of range for window \(size 2\)"):
        res.isel(window=2)
    with pytest.raises(ValueError, match=r"drop=True with a scalar asset"):
        res.sel(asset="IBM", drop=True)
    with pytest.raises(ValueError, match=r"as a dict or as keywords, not both"):
        res.sel({"window": 10}, asset="IBM")
    with pytest.raises(ValueError, match=r"window's indexer must be a scalar, a list"):
        res.sel(window=xr.DataArray([10, 15], dims="z"))
    with pytest.raises(KeyError, match=r"no dim 'asset'"):   # picked already
        res.sel(asset="IBM").sel(asset="IBM")
    grp = ql.backtest(ds, sig, group=True)
    with pytest.raises(ValueError, match=r"asset of a group=True result: its one account "
                       r"spans the assets \(4\)"):
        grp.sel(asset="IBM")
    with pytest.raises(ValueError, match=r"group=True"):
        grp.isel(asset=[0, 1])
