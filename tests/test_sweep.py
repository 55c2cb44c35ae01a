"""Metrics-only backtests and ql.sweep: equal to full backtests + metrics(), chunked,
threaded or on a dask LocalCluster, resumable from a store; the SweepExplorer re-runs a
clicked cell."""
import numpy as np
import pytest
import xarray as xr

import quantlab as ql

ALL = ql.metrics.streaming_names() + ["fees_paid", "turnover", "exposure", "n_orders"]


@pytest.mark.parametrize("kw", [dict(fees=0.001, slippage=0.0005),
                                dict(group=True, fees=0.002, fixed_fees=1.0),
                                dict(execution="next_open", rebalance="daily", group=True),
                                dict(dd_limit=0.15, dd_cooldown=5)])
def test_metrics_only_equals_the_full_backtest(kw, equities):
    sig = ql.strategies.get("volatility_regime", window=[10, 21],
                            threshold=[0.7, 0.9]).signal(equities)
    mo = ql.backtest(equities, sig, metrics_only=tuple(ALL), **kw)
    full = ql.backtest(equities, sig, **kw)
    m = full.metrics()
    for k in ALL:
        if k == "n_orders":
            assert int(mo[k].sum()) == len(full.orders)
            continue
        np.testing.assert_allclose(mo[k].values, m[k].transpose(*mo[k].dims).values,
                                   rtol=1e-9, atol=1e-12, err_msg=k)
    assert set(mo.dims) == ({"window", "threshold"} if kw.get("group")
                            else {"asset", "window", "threshold"})


def test_metrics_only_rejects_what_needs_the_series(equities):
    sig = ql.strategies.get("spc").signal(equities)
    with pytest.raises(ValueError, match="value_at_risk"):
        ql.backtest(equities, sig, metrics_only=("value_at_risk",))
    with pytest.raises(ValueError, match="n_trades"):
        ql.backtest(equities, sig, metrics_only=("n_trades",))


GRID = {"window": [10, 21, 42], "threshold": [0.6, 0.8, 0.95]}


def test_sweep_equals_one_vectorised_backtest(equities):
    res = ql.sweep("volatility_regime", equities, GRID, chunks=2, progress=False, fees=0.001)
    assert res.sharpe_ratio.dims == ("window", "threshold", "asset")
    assert res.attrs["combinations"] == 9 and res.attrs["chunks"] == 5
    full = ql.backtest(equities, ql.strategies.get("volatility_regime", **GRID).signal(equities),
                       fees=0.001).metrics()
    for k in res.data_vars:
        xr.testing.assert_allclose(res[k], full[k].transpose(*res[k].dims), rtol=1e-9)
    grouped = ql.sweep("volatility_regime", equities, GRID, group=True, progress=False,
                       metrics=("sharpe_ratio",))
    assert grouped.sharpe_ratio.dims == ("window", "threshold")


def test_sweep_on_a_dask_local_cluster_and_resume(equities, tmp_path):
    from distributed import Client, LocalCluster

    local = ql.sweep("volatility_regime", equities, GRID, chunks=3, progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        remote = ql.sweep("volatility_regime", equities, GRID, chunks=3, client=client,
                          progress=False)
    xr.testing.assert_identical(local, remote)
    store = tmp_path / "sweep"
    first = ql.sweep("volatility_regime", equities, GRID, chunks=3, store=store,
                     progress=False)
    assert sorted(p.name for p in store.glob("chunk_*.npz")) == [
        "chunk_0.npz", "chunk_1.npz", "chunk_2.npz"]
    (store / "chunk_1.npz").unlink()                  # as if interrupted
    stamp = (store / "chunk_0.npz").stat().st_mtime_ns
    again = ql.sweep("volatility_regime", equities, GRID, chunks=3, store=store,
                     progress=False)
    xr.testing.assert_identical(first, again)
    assert (store / "chunk_0.npz").stat().st_mtime_ns == stamp   # loaded, not recomputed
    with pytest.raises(ValueError, match="different sweep"):
        ql.sweep("volatility_regime", equities, {"window": [5]}, store=store, progress=False)


def test_sweep_errors(equities):
    with pytest.raises(ValueError, match="unknown grid parameter"):
        ql.sweep("spc", equities, {"spann": [1]}, progress=False)
    with pytest.raises(ValueError, match="not available in a metrics-only run"):
        ql.sweep("spc", equities, {"k": [0.5]}, metrics=("tail_ratio",), progress=False)


def test_sweep_explorer_reruns_a_clicked_cell(equities):
    res = ql.sweep("volatility_regime", equities, GRID, progress=False, fees=0.001)
    ex = ql.widgets.SweepExplorer(res, equities)
    assert len(ex.source.data["value"]) == 9
    ex.fixed["asset"].value = "IBM"
    back = ex.select(4)                                 # window 21, threshold 0.8
    assert float(back.metrics()["sharpe_ratio"].sel(asset="IBM")) == pytest.approx(
        float(res.sharpe_ratio.sel(window=21, threshold=0.8, asset="IBM")))
    assert len(ex.eq_source.data["equity"]) == equities.sizes["time"]
    ex.source.selected.indices = [0]                   # a click: the callback re-runs
    assert "'window': 10" in ex.eq.title.text and "'threshold': 0.6" in ex.eq.title.text
    ex.x.value = "threshold"                           # x == y: one row
    assert set(ex.source.data["y"]) == {""}
