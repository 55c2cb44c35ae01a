"""Session 58: a deployment as a backtest result (metrics, trades, tear sheet), the whole
book of independent accounts, and a dashboard that refuses a backtest of other costs."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab import live as _live
from quantlab.errors import DataError

KW = dict(fees=0.001, slippage=0.0005, fixed_fees=1.0)


@pytest.fixture(scope="module")
def ds():
    return ql.data.load().isel(time=slice(0, 330))


def _pair(ds, name, params, group, **kw):
    """A deployment replaying bars 200.. after 200 bars of history, and the backtest of the
    same signal on the same bars."""
    s = ql.strategies.get(name, **params)
    hist, bars = ds.isel(time=slice(0, 200)), ds.isel(time=slice(200, None))
    opts = {**KW, **kw, "group": group}
    bt = ql.backtest(bars, s.signal(ds).sel(time=bars.time), **opts)
    dep = ql.deploy(name, params, history=hist, **opts).replay(bars, echo=None)
    return dep, bt


def _assert_same_metrics(a: xr.Dataset, b: xr.Dataset):
    assert set(a.data_vars) == set(b.data_vars)
    for k in b.data_vars:
        np.testing.assert_allclose(a[k].values, b[k].values, rtol=1e-12, atol=1e-12,
                                   equal_nan=True, err_msg=k)


@pytest.mark.parametrize("group", [True, False])
@pytest.mark.parametrize("name,params", [
    ("volatility_regime", {"window": 10, "lookback": 40}),
    ("cross_sectional_momentum", {"lookback": 40, "skip": 5, "hold": 7})])
def test_deployment_result_has_the_backtests_metrics_and_trades(ds, name, params, group):
    # before: a deployment had equity and orders but no returns, metrics or trades: its
    # Sharpe ratio, exposure or turnover could not be read, nor a tear sheet drawn
    dep, bt = _pair(ds, name, params, group)
    res = dep.result()
    assert isinstance(res, ql.BacktestResult) and res.group is group
    assert res.options == dep.options
    _assert_same_metrics(res.metrics(), bt.metrics())
    np.testing.assert_array_equal(res.returns.values, bt.returns.values)
    cols = ["asset", "entry_time", "exit_time", "size", "entry_price", "exit_price", "pnl"]
    pd.testing.assert_frame_equal(res.trades[cols].astype({"asset": str}),
                                  bt.trades[cols].astype({"asset": str}),
                                  check_exact=False, rtol=1e-12)
    o = res.orders
    assert (o["t"].to_numpy() == bt.orders_frame["t"].to_numpy()).all()
    assert (o["col"].to_numpy() == bt.orders_frame["col"].to_numpy()).all()


def test_deployment_result_draws_and_reports(ds):
    dep, bt = _pair(ds, "volatility_regime", {"window": 10, "lookback": 40}, True)
    res = dep.result()
    assert type(res.tearsheet("buy_and_hold")).__name__ == "Column"
    report = ql.risk.RiskManager().generate_risk_report(res)
    assert report.drawdown["max_drawdown"] == pytest.approx(float(bt["max_drawdown"]), abs=1e-12)
    with pytest.raises(ValueError, match="no bar traded yet"):
        ql.deploy("volatility_regime").result()


def test_deployment_result_survives_checkpoints(ds, tmp_path):
    # the closes each bar carried are saved with the records (appended segments too)
    dep, _ = _pair(ds, "volatility_regime", {"window": 10, "lookback": 40}, False)
    want = dep.result().metrics()
    s = ql.strategies.get("volatility_regime", window=10, lookback=40)
    half = ql.deploy(s, history=ds.isel(time=slice(0, 200)), **KW)
    half.replay(ds.isel(time=slice(200, 260)), echo=None)
    half.checkpoint(tmp_path)
    half.replay(ds.isel(time=slice(260, None)), echo=None)
    half.checkpoint(tmp_path)        # a second segment
    back = ql.Deployment.restore(tmp_path)
    _assert_same_metrics(back.result().metrics(), want)


def test_result_of_a_checkpoint_without_closes_is_refused(ds, tmp_path, monkeypatch):
    # a checkpoint written before the closes were recorded restores and trades on, but its
    # earlier bars' returns cannot be rebuilt: refused, not NaN prices read as no bar
    s = ql.strategies.get("volatility_regime", window=10, lookback=40)
    dep = ql.deploy(s, history=ds.isel(time=slice(0, 200)), **KW)
    dep.replay(ds.isel(time=slice(200, 230)), echo=None)
    seg = _live.Deployment._segment

    def old_writer(self, ck):
        arrays = seg(self, ck)
        arrays.pop("rec.close")
        return arrays

    monkeypatch.setattr(_live.Deployment, "_segment", old_writer)
    dep.checkpoint(tmp_path)
    monkeypatch.undo()
    back = ql.Deployment.restore(tmp_path)
    back.replay(ds.isel(time=slice(230, 240)), echo=None)
    with pytest.raises(DataError, match="closes of the first 30 of 40 traded bars"):
        back.result()
    summary = back.plot().select_one({"name": "deployment.summary"}).data
    assert summary["metric"] == ["(no summary)"]
    assert summary["note"][0].startswith("the closes of the first 30")


def test_a_tampered_recorded_close_is_refused(ds, tmp_path, monkeypatch):
    s = ql.strategies.get("volatility_regime", window=10, lookback=40)
    dep = ql.deploy(s, history=ds.isel(time=slice(0, 200)), **KW)
    dep.replay(ds.isel(time=slice(200, 210)), echo=None)
    seg = _live.Deployment._segment

    def bad_writer(self, ck):
        arrays = seg(self, ck)
        arrays["rec.close"] = arrays["rec.close"].copy()
        arrays["rec.close"][3, 2] = -5.0
        return arrays

    monkeypatch.setattr(_live.Deployment, "_segment", bad_writer)
    dep.checkpoint(tmp_path)
    monkeypatch.undo()
    with pytest.raises(DataError, match="'rec.close' holds -5.0 for asset 'IBM'"):
        ql.Deployment.restore(tmp_path)


def test_as_portfolio_is_the_whole_book(ds):
    sig = ql.strategies.get("volatility_regime", window=[10, 20], lookback=60).signal(ds)
    res = ql.backtest(ds, sig, **KW)
    book = res.as_portfolio()
    assert book.group and book.init_cash == 4 * res.init_cash
    assert book.equity.dims == ("time", "window")
    m = book.metrics()
    for w in (10, 20):   # by hand, from the accounts' arrays
        one = res.sel(window=w)
        eq = one.equity.sum("asset")
        np.testing.assert_allclose(float(m["total_return"].sel(window=w)),
                                   float(eq[-1]) / (4 * res.init_cash) - 1, rtol=1e-12)
        value = np.abs(one.positions * one.prices.ffill("time")).fillna(0).sum("asset")
        r = book.sel(window=w).returns
        np.testing.assert_allclose(float(m["exposure"].sel(window=w)),
                                   float((value / eq).where(r.notnull()).mean()), rtol=1e-12)
        mo = one.metrics()
        for k in ("n_trades", "fees_paid"):
            np.testing.assert_allclose(float(m[k].sel(window=w)), float(mo[k].sum()),
                                       rtol=1e-12)
        assert book.sel(window=w)["sharpe_ratio"] == pytest.approx(
            float(m["sharpe_ratio"].sel(window=w)), rel=1e-12)
    port = ql.backtest(ds, sig.sel(window=10), group=True, **KW)
    assert port.as_portfolio() is port
    lazy = ql.backtest(ds.chunk({"asset": 2}), sig.sel(window=10).chunk({"asset": 2}), **KW)
    _assert_same_metrics(lazy.as_portfolio().compute().metrics(),
                         res.sel(window=10).as_portfolio().metrics())


def test_result_options_follow_a_selection(ds):
    fees = xr.DataArray([0.0, 0.001], dims="fee_rate", coords={"fee_rate": [0.0, 0.001]})
    sig = ql.strategies.get("volatility_regime", window=10, lookback=40).signal(ds)
    res = ql.backtest(ds, sig, fees=fees)
    assert res.options.fees.dims == ("fee_rate",)
    one = res.sel(fee_rate=0.001)
    assert float(one.options.fees) == 0.001
    assert one.options.differences(ql.BacktestOptions(fees=0.001)) == {}
    assert one.options.differences(ql.BacktestOptions(fees=0.002, group=True)) == {
        "fees": (0.001, 0.002), "group": (False, True)}
    (mine, theirs), = res.options.differences(ql.BacktestOptions()).values()
    assert mine.dims == ("fee_rate",) and theirs == 0.0   # a sweep's values stay an array


def test_dashboard_refuses_a_backtest_of_other_costs_and_sums_up_the_book(ds):
    # before: a backtest without the deployment's fees drew as a drift between two runs
    # trading alike (the deployment "underperforming" by its costs)
    dep, bt = _pair(ds, "volatility_regime", {"window": 10, "lookback": 40}, False)
    s = ql.strategies.get("volatility_regime", window=10, lookback=40)
    bars = ds.isel(time=slice(200, None))
    sig = s.signal(ds).sel(time=bars.time)
    for other in ({**KW, "fees": 0.0}, {**KW, "slippage": 0.0}, {**KW, "sl_stop": 0.05}):
        with pytest.raises(ValueError, match="other options than the deployment"):
            dep.plot(backtest=ql.backtest(bars, sig, **other))
    fees = xr.DataArray([0.0, 0.001], dims="fee_rate", coords={"fee_rate": [0.0, 0.001]})
    swept = ql.backtest(bars, sig, **{**KW, "fees": fees})
    with pytest.raises(ValueError, match="fees 0.0 .the deployment's: 0.001"):
        dep.plot(backtest=swept.sel(fee_rate=0.0))
    rows = pd.DataFrame(dep.plot(backtest=swept.sel(fee_rate=0.001)).select_one(
        {"name": "deployment.summary"}).data).set_index("metric")
    book = bt.as_portfolio()
    assert rows.loc["Sharpe ratio", "deployment"] == rows.loc["Sharpe ratio", "backtest"] \
        == ql.fmt.metric("sharpe_ratio", book["sharpe_ratio"])
    assert rows.loc["Tracking error", "deployment"] == "0.0 %"
    assert rows.loc["Trades", "deployment"] == ql.fmt.metric("n_trades", book["n_trades"])


def test_max_order_value_is_valued_in_the_assets_own_account(ds):
    # before: group=False exposures were read against the equity of all accounts, so a
    # 0.5 order of one 100,000 account (50,000) was valued at 200,000 and rejected
    lim = ql.live.RiskLimits(max_order_value=60_000)
    target, rej = lim.apply(np.array([0.5, 0.5, 0.0]), np.zeros(3), np.array([10., 20., 30.]),
                            np.array([1e5, 1e5, 1e5]), killed=False)
    assert rej == [] and (target == [0.5, 0.5, 0.0]).all()
    target, rej = lim.apply(np.array([0.7, 0.5, 0.0]), np.zeros(3), np.array([10., 20., 30.]),
                            np.array([1e5, 1e5, 1e5]), killed=False)
    assert len(rej) == 1 and rej[0][:3] == (0, "max_order_value", 0.7)
    # one account over the assets: a float, as before
    _, rej = lim.apply(np.array([0.5, 0.5, 0.0]), np.zeros(3), np.array([10., 20., 30.]),
                       3e5, killed=False)
    assert [r[0] for r in rej] == [0, 1]


@pytest.mark.parametrize("group", [False, True])
def test_a_non_binding_order_value_limit_trades_as_the_backtest(ds, group):
    # the limit above every order the backtest places: no rejection, the same orders
    # (before: group=False rejected orders of a quarter of the limit's value)
    s = ql.strategies.get("volatility_regime", window=10, lookback=40)
    hist, bars = ds.isel(time=slice(0, 200)), ds.isel(time=slice(200, None))
    bt = ql.backtest(bars, s.signal(ds).sel(time=bars.time), group=group, **KW)
    o = bt.orders_frame
    biggest = float((o["size"].abs() * o["price"]).max())
    dep = ql.deploy(s, history=hist, group=group, risk={"max_order_value": biggest * 1.05},
                    **KW).replay(bars, echo=None)
    assert len(dep.rejections) == 0
    assert len(dep.orders) == len(o)
    np.testing.assert_allclose(dep.equity.values, bt.equity.values, rtol=1e-12)


def test_cli_deploy_ends_with_the_books_metrics(capsys):
    from quantlab.cli import main
    assert main(["deploy", "volatility_regime", "--replay", "equities", "--start",
                 "2013-02-01", "--every", "1000"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("metrics: total return ") and ", trades " in last
    assert "sharpe ratio" in last and "fees paid 0" in last


def test_cli_deploy_report_is_written_as_it_goes_and_at_the_end(tmp_path, capsys,
                                                                 monkeypatch):
    from quantlab import cli
    page = tmp_path / "sub" / "dep.html"
    args = ["deploy", "volatility_regime", "--replay", "equities", "--start", "2013-02-20",
            "--every", "1000", "--report", str(page)]
    writes = []
    real = cli._write_report
    monkeypatch.setattr(cli, "_write_report", lambda dep, p: writes.append(
        len(dep.equity["time"])) or real(dep, p))
    monkeypatch.setattr(cli, "REPORT_SECONDS", 0.0)      # every bar
    assert cli.main(args) == 0
    assert writes[:3] == [1, 2, 3] and writes[-1] == writes[-2]   # the last: at the end
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "deployment.summary" in text
    assert "the whole book: tear sheet" in text and "cdn.bokeh.org" not in text
    assert f"report: {page}" in capsys.readouterr().out
    assert cli.main(args[:-1] + [str(tmp_path)]) == 2
    assert "is a directory, not a file" in capsys.readouterr().err
    monkeypatch.setattr(cli, "REPORT_SECONDS", 1e9)      # only the final write

    def full_disk(dep, p):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli, "_write_report", full_disk)
    assert cli.main(args) == 1
    assert "cannot write --report" in capsys.readouterr().err


def test_dashboard_compares_periods_when_borrowing_is_charged(ds):
    # periods annualise borrow_rate's charges: 252 against 365 is another cost of shorts
    s = ql.strategies.get("volatility_regime", window=10, lookback=40)
    hist, bars = ds.isel(time=slice(0, 200)), ds.isel(time=slice(200, 230))
    sig = s.signal(ds).sel(time=bars.time)
    kw = dict(borrow_rate=0.05, max_leverage=2.0)
    dep = ql.deploy(s, history=hist, **kw).replay(bars, echo=None)
    dep.plot(backtest=ql.backtest(bars, sig, **kw))        # the same calendar: 252
    with pytest.raises(ValueError, match="periods 365 .the deployment's: 252"):
        dep.plot(backtest=ql.backtest(bars, sig, periods=365, **kw))
    free = ql.deploy(s, history=hist).replay(bars, echo=None)
    free.plot(backtest=ql.backtest(bars, sig, periods=365))   # no charges: only a label


def test_orders_table_is_built_once_per_change_and_handed_out_as_a_copy(ds):
    s = ql.strategies.get("volatility_regime", window=10, lookback=40)
    dep = ql.deploy(s, history=ds.isel(time=slice(0, 200)), **KW)
    dep.replay(ds.isel(time=slice(200, 230)), echo=None)
    a = dep.orders
    a.loc[0, "fee"] = -1.0                      # the caller's copy
    a.insert(0, "t", 0)                         # as result() adds its columns
    b = dep.orders
    assert list(b.columns) == ["time", "asset", "size", "price", "fee", "reason"]
    assert b.loc[0, "fee"] != -1.0 and b is not dep.orders
    dep.replay(ds.isel(time=slice(230, 240)), echo=None)
    assert len(dep.orders) == len(dep._orders) > len(b)
    dep._orders[0]["fee"] = 123.0               # a drained account's fee cut, as
    dep._fees_cut = dep.__dict__.get("_fees_cut", 0) + 1   # _settle_drained does it
    assert dep.orders.loc[0, "fee"] == 123.0


def test_an_optimisation_saved_deploys_from_the_shell_as_in_the_notebook(tmp_path, capsys):
    # the hand-off from a notebook's search to `quantlab deploy --params`: the chosen
    # parameters and the search's costs, in one file (it was written by hand, and a
    # Slippage model or NumPy integers did not serialise)
    from quantlab.cli import main
    data = ql.data.load()
    opt = ql.optimize.optimize_strategy_parameters(
        "volatility_regime", {"window": [10, 21]}, data, optimization_method="grid",
        n_trials=2, progress=False, start_date="2011-01-03", end_date="2012-12-31",
        fees=0.001, slippage=ql.Slippage("volume_based"))
    f = opt.save(tmp_path / "opt" / "best.json")
    assert main(["deploy", "volatility_regime", "--params", str(f), "--replay", "equities",
                 "--start", "2013-02-01", "--every", "1000"]) == 0
    shell = capsys.readouterr().out.strip().splitlines()[-1]
    bars = data.sel(time=slice("2013-02-01", None))
    dep = ql.deploy(opt, history=data.sel(time=slice(None, "2013-01-31"))).replay(
        bars, echo=None)
    m = dep.result().as_portfolio().metrics()
    assert shell == "metrics: " + ", ".join(
        f"{ql.fmt.label(k).lower()} {ql.fmt.metric(k, float(m[k]))}" for k in
        ("total_return", "sharpe_ratio", "max_drawdown", "exposure", "turnover",
         "n_trades", "fees_paid"))
    assert float(m["fees_paid"]) > 0
    assert main(["deploy", "spc", "--params", str(f), "--replay", "equities"]) == 2
    assert "holds the parameters of 'volatility_regime', not of 'spc'" in \
        capsys.readouterr().err
