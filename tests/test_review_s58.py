"""Session 58 review: a deployment restored from a checkpoint without its closes stays
refused by result() after a whole (compacted) checkpoint, and max_order_value values an
order as the kernel sizes it (leverage, next_open, this bar's equity)."""
import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab import live as _live
from quantlab.errors import DataError
from quantlab.strategies import Strategy

KW = dict(fees=0.001, slippage=0.0005, fixed_fees=1.0)
VR = {"window": 10, "lookback": 40}


@pytest.fixture(scope="module")
def ds():
    return ql.data.load().isel(time=slice(0, 330))


def _without_closes(monkeypatch):
    """Checkpoints written as before the closes were recorded (no rec.close)."""
    seg = _live.Deployment._segment

    def old_writer(self, ck):
        arrays = seg(self, ck)
        arrays.pop("rec.close")
        return arrays

    monkeypatch.setattr(_live.Deployment, "_segment", old_writer)


def _old_deployment(ds, path, monkeypatch):
    dep = ql.deploy("volatility_regime", VR, history=ds.isel(time=slice(0, 200)), **KW)
    dep.replay(ds.isel(time=slice(200, 230)), echo=None)
    _without_closes(monkeypatch)
    dep.checkpoint(path)
    monkeypatch.undo()
    back = ql.Deployment.restore(path)
    back.replay(ds.isel(time=slice(230, 240)), echo=None)
    return back


def test_unknown_closes_stay_unknown_in_a_whole_checkpoint(ds, tmp_path, monkeypatch):
    # before: a whole checkpoint (a new folder, or every COMPACT segments) wrote the
    # unknown closes as NaN rows and dropped their count: restored, result() read them
    # as bars without a price (trades without an entry price, other metrics)
    back = _old_deployment(ds, tmp_path / "old", monkeypatch)
    back.checkpoint(tmp_path / "new")
    again = ql.Deployment.restore(tmp_path / "new")
    with pytest.raises(DataError, match="closes of the first 30 of 40 traded bars"):
        again.result()
    again.replay(ds.isel(time=slice(240, 245)), echo=None)
    again.checkpoint(tmp_path / "new")            # appended after the whole one
    with pytest.raises(DataError, match="closes of the first 30 of 45 traded bars"):
        ql.Deployment.restore(tmp_path / "new").result()


def test_unknown_closes_stay_unknown_after_compaction(ds, tmp_path, monkeypatch):
    back = _old_deployment(ds, tmp_path, monkeypatch)
    back.COMPACT = 2
    for i in range(240, 246):       # appended, compacted in place, appended again
        back.replay(ds.isel(time=slice(i, i + 1)), echo=None)
        back.checkpoint(tmp_path)
    again = ql.Deployment.restore(tmp_path)
    assert len(again.equity) == 46
    with pytest.raises(DataError, match="closes of the first 30 of 46 traded bars"):
        again.result()


def test_unknown_closes_of_a_format_1_checkpoint_stay_unknown(ds, tmp_path):
    dep = ql.deploy("volatility_regime", VR, history=ds.isel(time=slice(0, 200)), **KW)
    dep.replay(ds.isel(time=slice(200, 220)), echo=None)
    dep.checkpoint(tmp_path / "v2")
    meta = json.loads((tmp_path / "v2" / "deployment.json").read_text())
    meta, arrays = _live._read_segments(tmp_path / "v2", meta)
    arrays.pop("rec.close")          # format 1 (quantlab <= 0.1) never had them
    meta.pop("closes_unknown")
    (tmp_path / "v1").mkdir()
    np.savez(tmp_path / "v1" / "deployment.npz", **arrays)
    (tmp_path / "v1" / "deployment.json").write_text(json.dumps({**meta, "format": 1}))
    back = ql.Deployment.restore(tmp_path / "v1")
    back.replay(ds.isel(time=slice(220, 225)), echo=None)
    back.checkpoint(tmp_path / "v1")           # rewritten whole in format 2
    with pytest.raises(DataError, match="closes of the first 20 of 25 traded bars"):
        ql.Deployment.restore(tmp_path / "v1").result()


def test_a_tampered_unknown_closes_count_is_refused(ds, tmp_path, monkeypatch):
    back = _old_deployment(ds, tmp_path / "old", monkeypatch)
    back.checkpoint(tmp_path / "new")
    man = tmp_path / "new" / "deployment.json"
    meta = json.loads(man.read_text())
    assert meta["closes_unknown"] == 30
    for bad in (41, -1, True, 2.5):
        m = {**meta, "closes_unknown": bad}
        m.pop("digest")                       # as a hand edit would have it
        man.write_text(json.dumps(m))
        with pytest.raises(DataError, match="'closes_unknown'"):
            ql.Deployment.restore(tmp_path / "new")


# ---- max_order_value, as the kernel sizes an order ------------------------------------
class _Scripted(Strategy):
    """The exposures of ``script`` (a Series by time) on every asset (a test double, not
    registered)."""

    name = "scripted"
    defaults = {"k": 0}
    param_space = {"k": (0, 1)}
    script = None

    def _warmup(self, k):
        return 1

    def _signal(self, ds, k):
        v = self.script.reindex(ds.indexes["time"]).to_numpy(dtype=float)
        return xr.DataArray(np.repeat(v[:, None], ds.sizes["asset"], 1),
                            dims=("time", "asset"),
                            coords={"time": ds["time"], "asset": ds["asset"]})


def _flat_market(closes):
    c = np.asarray(closes, dtype=float)[:, None]
    return xr.Dataset({"open": (("time", "asset"), c), "close": (("time", "asset"), c)},
                      coords={"time": pd.bdate_range("2020-01-01", periods=len(c)),
                              "asset": ["A"]})


def _scripted(ds, values):
    s = _Scripted()
    s.script = pd.Series(values, index=ds.indexes["time"], dtype=float)
    return s


def _order_values(dep):
    o = dep.orders
    return (o["size"].abs() * o["price"]).to_numpy()


@pytest.mark.parametrize("group", [False, True])
def test_a_binding_order_value_limit_binds_with_leverage(ds, group):
    s = ql.strategies.get("volatility_regime", **VR)
    hist, bars = ds.isel(time=slice(0, 200)), ds.isel(time=slice(200, None))
    opts = dict(KW, group=group, max_leverage=2.0)
    bt = ql.backtest(bars, s.signal(ds).sel(time=bars.time), **opts)
    o = bt.orders_frame
    value = (o["size"].abs() * o["price"]).to_numpy()
    biggest = value.max()
    same = ql.deploy(s, history=hist, risk={"max_order_value": biggest * 1.05},
                     **opts).replay(bars, echo=None)
    assert len(same.rejections) == 0
    np.testing.assert_allclose(same.equity.values, bt.equity.values, rtol=1e-12)
    lim = 0.8 * biggest
    dep = ql.deploy(s, history=hist, risk={"max_order_value": lim}, **opts).replay(
        bars, echo=None)
    assert len(dep.rejections) > 0
    sig = dep.orders["reason"].to_numpy() == "signal"
    assert _order_values(dep)[sig].max() <= lim * 1.001


def test_next_open_orders_are_valued_from_the_target_they_follow():
    # before: with execution="next_open" a target was compared with the one the next
    # open fills (not the one before it) and with the holding before that fill: orders
    # of 70,000 went through a 40,000 limit
    ds = _flat_market([10.0] * 12)
    s = _scripted(ds, [0, 0, 0.35, -0.35, 0.35, -0.35, 0.35, 0, 0, 0, 0, 0])
    dep = ql.deploy(s, history=ds.isel(time=slice(0, 2)), execution="next_open",
                    risk={"max_order_value": 40_000}).replay(ds.isel(time=slice(2, None)),
                                                             echo=None)
    assert _order_values(dep).max() <= 40_000
    assert (dep.rejections["reason"] == "max_order_value").sum() >= 1


@pytest.mark.parametrize("group", [False, True])
def test_a_non_binding_limit_trades_as_the_backtest_with_next_open(ds, group):
    s = ql.strategies.get("volatility_regime", **VR)
    hist, bars = ds.isel(time=slice(0, 200)), ds.isel(time=slice(200, None))
    opts = dict(KW, group=group, execution="next_open")
    bt = ql.backtest(bars, s.signal(ds).sel(time=bars.time), **opts)
    o = bt.orders_frame
    biggest = float((o["size"].abs() * o["price"]).max())
    dep = ql.deploy(s, history=hist, risk={"max_order_value": biggest * 1.05},
                    **opts).replay(bars, echo=None)
    assert len(dep.rejections) == 0
    np.testing.assert_allclose(dep.equity.values, bt.equity.values, rtol=1e-12)


def test_an_order_is_valued_at_this_bars_equity():
    # before: the holding was valued at this bar's close but the account's equity at the
    # last bar's: after the price doubled, a 60,000 order (1.0 of 140,000 less the
    # 80,000 held) read as one of 20,000 (of 100,000) and passed a 45,000 limit
    ds = _flat_market([10.0, 10.0, 10.0, 20.0, 20.0, 20.0])
    s = _scripted(ds, [0, 0, 0.4, 1.0, 1.0, 1.0])
    dep = ql.deploy(s, history=ds.isel(time=slice(0, 2)),
                    risk={"max_order_value": 45_000}).replay(ds.isel(time=slice(2, None)),
                                                             echo=None)
    assert _order_values(dep).tolist() == [40_000]
    assert dep.rejections["reason"].tolist() == ["max_order_value"] * 3


def test_result_options_are_picked_by_label(ds):
    # before: an option was cut at the equity's positions, but options sharing a dim may
    # hold its labels in another order: fee_rate=0.0 of this run read fees 0.002
    sig = ql.strategies.get("volatility_regime", **VR).signal(ds)
    fees = xr.DataArray([0.002, 0.0], dims="fee_rate", coords={"fee_rate": [0.002, 0.0]})
    stop = xr.DataArray([0.05, 0.1], dims="fee_rate", coords={"fee_rate": [0.0, 0.002]})
    res = ql.backtest(ds, sig, fees=fees, sl_stop=stop)
    for rate, stop_at in ((0.0, 0.05), (0.002, 0.1)):
        one = res.sel(fee_rate=rate)
        assert (float(one.options.fees), float(one.options.sl_stop)) == (rate, stop_at)
        assert one.options.differences(ql.BacktestOptions(fees=rate, sl_stop=stop_at)) == {}
        picked = ql.backtest(ds, sig, fees=rate, sl_stop=stop_at)
        np.testing.assert_array_equal(one.equity.values, picked.equity.values)
    both = res.isel(fee_rate=[1, 0])
    assert both.options.fees.sel(fee_rate=0.0) == 0.0
    assert (both.options.fees["fee_rate"].values == both.equity["fee_rate"].values).all()


def test_a_deployment_without_a_universe_yet_checkpoints(tmp_path):
    # before: the closes' (records, assets) array of no record and no asset could not be
    # shaped: a deployment given no history= or universe= could not checkpoint before
    # its first bar
    ql.deploy("volatility_regime", VR).checkpoint(tmp_path)
    back = ql.Deployment.restore(tmp_path)
    assert back.universe is None and back._closes_unknown == 0


def test_a_checkpoint_before_the_first_bar_is_followed_by_a_restorable_one(ds, tmp_path):
    # before: the segments after the first bar were appended to one written without the
    # assets and variables, whose shapes the manifest's no longer fit: the folder could
    # not be restored ("array 'bars' must have the shape (5, 0, 4)")
    dep = ql.deploy("volatility_regime", VR)
    dep.checkpoint(tmp_path)
    dep.replay(ds.isel(time=slice(0, 5)), echo=None)
    dep.checkpoint(tmp_path)
    back = ql.Deployment.restore(tmp_path)
    back.replay(ds.isel(time=slice(5, 8)), echo=None)
    back.checkpoint(tmp_path)
    again = ql.Deployment.restore(tmp_path)
    assert again.universe == ["AAPL", "GOOG", "IBM", "MSFT"]
    np.testing.assert_array_equal(again.equity.values, back.equity.values)
    assert len(again.result().equity) == 8
