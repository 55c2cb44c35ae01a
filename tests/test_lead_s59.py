"""Session 59 (lead): max_order_value valued by the kernel, a deployment's result with its
halted bars and charges, risk limits from the shell, options of one value compared as
that value, recovery_time of a series never under water, risk parity's convergence."""
import warnings

import numpy as np
import pytest
import xarray as xr

import quantlab as ql
from quantlab import live as _live
from panels import deploy_targets as _deploy, flat_market as _market

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


def _values(dep, reason="signal"):
    o = dep.orders
    o = o[o["reason"] == reason]
    return (o["size"].abs() * o["price"]).round(6).tolist()


def test_a_reentry_after_a_stop_is_checked_by_max_order_value():
    # before: the limits were applied before the kernel's step, where the stop fires; a
    # target held through the stop read as no order, and next_open re-entered it at the
    # next open from flat: 37,600 through a 30,000 limit (1.4-2.3x on real data)
    ds = _market([10.0] * 6 + [9.0] * 4)
    targets = [0, 0, 0.2, 0.2, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]
    free = _deploy(ds, targets, 1e9, sl_stop=0.05, execution="next_open")
    assert _values(free, "stop") and max(_values(free)) > 30_000   # the re-entry
    dep = _deploy(ds, targets, 30_000, sl_stop=0.05, execution="next_open")
    assert _values(dep) == [20_000.0, 20_000.0] and len(_values(dep, "stop")) == 1
    assert set(dep.rejections["reason"]) == {"max_order_value"}
    assert dep.positions_now()[0] == 0      # flat after the stop: it keeps that position


def test_max_order_value_counts_the_leverage():
    # the kernel trades target x max_leverage within max_position_size: 0.4 at 2x is an
    # 80,000 order (a 60,000 limit rejects it), within 0.5 of the equity 50,000
    ds = _market([10.0] * 5)
    dep = _deploy(ds, [0, 0, 0.4, 0.4, 0.4], 60_000, max_leverage=2.0)
    assert _values(dep) == [] and len(dep.rejections) == 3
    dep = _deploy(ds, [0, 0, 0.4, 0.4, 0.4], 60_000, max_leverage=2.0, max_position_size=0.5)
    assert _values(dep) == [50_000.0] and len(dep.rejections) == 0


def test_a_groups_rejection_rescales_its_other_orders():
    # a group's weights are scaled to max_leverage pro rata; a rejected target holds
    # the one in force (0), so the gross falls and the others trade more
    ds = _market([10.0] * 3, ("A", "B", "C"))
    targets = [[0, 0, 0], [0, 0, 0], [0.45, 0.45, 0.9]]   # 1.8 gross: x 1/1.8
    dep = _deploy(ds, targets, 40_000, group=True)        # 25,000 25,000 50,000
    assert sorted(dep.rejections["asset"]) == ["A", "B", "C"] and _values(dep) == []
    targets = [[0, 0, 0], [0, 0, 0], [0.3, 0.3, 0.9]]     # C out: A and B 30,000 each
    dep = _deploy(ds, targets, 40_000, group=True)
    assert dep.rejections["asset"].tolist() == ["C"] and _values(dep) == [30_000.0] * 2


def test_a_held_target_is_no_order_for_max_order_value():
    # with on_change a target held while its position drifted places no order (4x the
    # price: 75,000 off its target): no rejection
    ds = _market([10.0, 10.0, 10.0, 40.0, 40.0])
    dep = _deploy(ds, [0, 0, 0.5, 0.5, 0.5], 60_000)
    assert _values(dep) == [50_000.0] and len(dep.rejections) == 0
    # daily trades the drift back to the target: a rejected target's NaN holds the one
    # in force, which it rebalanced to all the same (75,000 through a 60,000 limit)
    with pytest.raises(ValueError, match="rebalance='daily' trades back"):
        _deploy(ds, [0, 0, 0.5, 0.5, 0.5], 60_000, rebalance="daily")


def test_an_order_waiting_for_its_assets_bar_is_checked_when_placed():
    # an order for an asset without a bar waits for its next bar, where the kernel fills
    # it whatever the target then (a rejection's NaN holds it): the dry run's step of
    # this bar places nothing for it, its step at the last closes values it
    ds = _market([10.0] * 6, ("A", "B"))
    ds["close"][3, 1] = ds["open"][3, 1] = np.nan      # B has no bar when its target comes
    dep = _deploy(ds, [[0, 0], [0, 0], [0.1, 0.1], [0.1, 0.5], [0.1, 0.5], [0.1, 0.5]],
                  30_000, group=False)
    assert max(_values(dep)) <= 30_000
    assert set(dep.rejections["asset"]) == {"B"}
    assert dep.positions.sel(asset="B").values[-1] == 1_000     # 0.1 kept: 10,000 at 10


@pytest.mark.parametrize("group", [False, True])
def test_deployment_result_has_the_backtests_halted_bars_and_charges(ds, tmp_path, group):
    # before: dep.result().halted and .interest were None whatever the options, where
    # ql.backtest's hold drawdown control's flat bars and the borrowing charges
    s = ql.strategies.get("volatility_regime", window=10, lookback=40)
    hist, bars = ds.isel(time=slice(0, 200)), ds.isel(time=slice(200, None))
    opts = dict(KW, group=group, dd_limit=0.02, dd_cooldown=3, borrow_rate=0.05,
                max_leverage=2.0, periods=252)
    bt = ql.backtest(bars, s.signal(ds).sel(time=bars.time), **opts)
    dep = ql.deploy(s, history=hist, **opts)
    dep.replay(bars.isel(time=slice(0, 60)), echo=None).checkpoint(tmp_path)
    dep = ql.Deployment.restore(tmp_path).replay(bars.isel(time=slice(60, None)), echo=None)
    res = dep.result()
    assert bt.halted.values.any() and bt.interest.values.any()
    np.testing.assert_array_equal(res.halted.values, bt.halted.values)
    np.testing.assert_allclose(res.interest.values, bt.interest.values, rtol=1e-12, atol=0)
    assert res.halted.dims == bt.halted.dims and res.interest.dims == bt.interest.dims
    plain = ql.deploy(s, history=hist, **KW).replay(bars.isel(time=slice(0, 5)), echo=None)
    assert plain.result().halted is None and plain.result().interest is None


def test_a_checkpoint_without_the_charges_restores_them_as_unknown(ds, tmp_path, monkeypatch):
    seg = _live.Deployment._segment

    def old_writer(self, ck):   # as written before session 59
        arrays = seg(self, ck)
        arrays.pop("rec.extras")
        return arrays

    s = ql.strategies.get("volatility_regime", window=10, lookback=40)
    hist, bars = ds.isel(time=slice(0, 200)), ds.isel(time=slice(200, None))
    opts = dict(KW, dd_limit=0.02, borrow_rate=0.05, max_leverage=2.0, periods=252)
    dep = ql.deploy(s, history=hist, **opts).replay(bars.isel(time=slice(0, 60)), echo=None)
    monkeypatch.setattr(_live.Deployment, "_segment", old_writer)
    dep.checkpoint(tmp_path)
    monkeypatch.undo()
    back = ql.Deployment.restore(tmp_path).replay(bars.isel(time=slice(60, None)), echo=None)
    res = back.result()
    assert res.halted is None                       # some bars' are unknown
    assert np.isnan(res.interest.values[:60]).all() and not np.isnan(res.interest.values[60:]).any()
    back.checkpoint(tmp_path / "again")              # unknown stays unknown in a new folder
    again = ql.Deployment.restore(tmp_path / "again").result()
    np.testing.assert_array_equal(again.interest.values, res.interest.values)


def test_cli_deploy_sets_risk_limits_and_keeps_them_on_resume(tmp_path, capsys):
    # before: a paper-trading run from the shell had no risk limits at all (no kill
    # switch, no position cap): only ql.deploy(risk=...) in Python set them
    from quantlab.cli import main
    ck = tmp_path / "ck"
    run = ["deploy", "volatility_regime", "--replay", "equities", "--start", "2012-06-01",
           "--every", "1000", "--checkpoint", str(ck)]
    assert main(run + ["--risk", "max_position", "0.2", "--risk", "max_drawdown_pct",
                       "0.1"]) == 0
    dep = ql.Deployment.restore(ck)
    assert (dep.risk.max_position, dep.risk.max_drawdown_pct) == (0.2, 0.1)
    assert (dep.targets.max() <= 0.2).all() and set(dep.rejections["reason"]) == {"max_position"}
    capsys.readouterr()
    assert main(run + ["--risk", "max_position", "0.3"]) == 2
    assert "--risk max_position 0.2 (given 0.3)" in capsys.readouterr().err
    assert main(run + ["--risk", "max_position", "0.2"]) == 0        # the same: resumes
    assert main(["deploy", "volatility_regime", "--replay", "equities", "--risk", "max_pos",
                 "1"]) == 2
    assert "--risk max_pos: not a risk limit; the limits: max_position" in capsys.readouterr().err


def test_tick_engine_deployment_takes_risk_limits():
    from quantlab.engine import TickEngine
    ds = ql.data.load("equities").isel(time=slice(0, 70), asset=slice(0, 2))
    eng = TickEngine({"engine": {"max_symbols": 8}})
    dep = eng.load_strategy_params({"window": 15}, strategy="volatility_regime", bar="1D",
                                   history=ds.isel(time=slice(0, 60)),
                                   risk={"max_position": 0.1})
    assert dep.risk.max_position == 0.1
    with pytest.raises(TypeError, match="risk"):
        eng.load_strategy_params(dep, risk={"max_position": 0.2})


def test_risk_parity_weights_say_when_newton_stops_short():
    # before: max_iter steps ending above tol returned the last step's weights without a
    # word; and tol was absolute, below the rounding of a large covariance (x 1e12: the
    # gradient stays ~4e-12 at the solution), so such a run took every step
    from quantlab import risk
    r = ql.data.load()["close"].to_pandas().pct_change().dropna()
    w = risk.risk_parity_weights(r.cov())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for scale in (1e-6, 1e12, 1e16):
            np.testing.assert_allclose(risk.risk_parity_weights(r.cov() * scale), w,
                                       rtol=1e-13)
        risk.risk_parity_weights(r.cov(), max_iter=0)   # the inverse-vol start, asked for
    with pytest.warns(RuntimeWarning, match="2 Newton steps ended before tol=1e-12"):
        risk.risk_parity_weights(r.cov(), max_iter=2)


def test_cli_inf_switches_a_limit_off(capsys):
    # before: "inf" (YAML's infinity is ".inf") was the text 'inf': "risk max_order_value
    # must be a real number, got 'inf'", for the value that means "no limit"
    from quantlab.cli import main
    run = ["deploy", "volatility_regime", "--replay", "equities", "--start", "2013-01-02",
           "--every", "1000"]
    assert main(run + ["--risk", "max_order_value", "inf", "--set", "max_position_size",
                       "Infinity"]) == 0
    assert main(run + ["--risk", "max_positions", "x"]) == 2
    assert "risk max_positions must be an integer" in capsys.readouterr().err
