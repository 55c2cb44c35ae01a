"""ql.backtest on dask-backed panels (issue #30): streamed over time chunks with the
kernel's state, one chain per asset chunk (group=False) or one for the portfolio
(group=True); equal to the in-memory backtest to 1e-12 for every chunking and every
feature that carries state."""
import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from panels import ohlcv_panel as _panel   # n=N, m=M by default

N, M = 40, 4


def _orders(o):
    # in the in-memory run's order: a streamed run's chains' parts were block after block
    return o.reset_index(drop=True)


def _assert_equal(lazy, ref):
    for k in ("equity", "cash", "positions"):
        assert isinstance(getattr(lazy, k).data, da.Array), k
    lazy = lazy.compute()
    for k in ("equity", "cash", "positions"):
        # 1e-12 of the panel's scale: a cash that sells down to 0 keeps a residue of 1 ulp
        # of the notional traded (7.3e-12 of 60,000), which a streamed run may round to 0
        # (seen on an AVX2 AMD EPYC, adaptive slippage; equal on the AVX-512 machines)
        want = getattr(ref, k).values
        scale = max(float(np.nanmax(np.abs(want), initial=0.0)), 1.0)
        np.testing.assert_allclose(getattr(lazy, k).values, want, rtol=1e-12,
                                   atol=1e-12 * scale, err_msg=k)
    for k in ("halted", "interest"):
        if getattr(ref, k) is not None:
            np.testing.assert_allclose(getattr(lazy, k).values, getattr(ref, k).values,
                                       rtol=1e-12, atol=1e-12, err_msg=k)
    pd.testing.assert_frame_equal(_orders(lazy.orders_frame), _orders(ref.orders),
                                  rtol=1e-12, atol=1e-12)
    ml, mr = lazy.metrics(), ref.metrics()
    for k in mr.data_vars:
        np.testing.assert_allclose(ml[k].values, mr[k].values, rtol=1e-10, atol=1e-12,
                                   err_msg=k)


FEATURES = {
    "plain": dict(fees=0.001),
    "stops": dict(sl_stop=0.03, tp_stop=0.05, sl_trail=0.04, fees=0.001),
    "limits": dict(order_type="limit", limit_offset=0.01, limit_tif=3),
    "dd_cooldown": dict(dd_limit=0.05, dd_cooldown=3),
    "dd_halt": dict(dd_limit=0.08, dd_mode="halt"),
    "next_open": dict(execution="next_open", fees=0.001),
    "fixed_fees": dict(fixed_fees=500.0, init_cash=5_000.0),
    "borrow_margin": dict(max_leverage=3.0, borrow_rate=0.2, maintenance_margin=0.3),
    "slippage_window": dict(slippage=ql.backtesting.Slippage("volume_based", window=5),
                            execution="next_open"),
}


@pytest.mark.parametrize("feature", FEATURES)
@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("chunks", [dict(time=1, asset=M), dict(time=7, asset=3),
                                    dict(time=N, asset=1)])
def test_dask_backtest_equals_in_memory(feature, group, chunks):
    ds, sig = _panel()
    kw = FEATURES[feature]
    ref = ql.backtest(ds, sig, group=group, **kw)
    lazy = ql.backtest(ds.chunk(chunks), sig, group=group, **kw)
    _assert_equal(lazy, ref)


@pytest.mark.parametrize("group", [False, True])
def test_a_one_bar_dask_backtest_equals_in_memory(group):
    # vectorbt's tests run 1-bar series; dask's shift of one bar divided by zero in
    # res.returns (so in metrics())
    ds, sig = _panel(n=1)
    sig = sig.fillna(0.5)
    ref = ql.backtest(ds, sig, group=group, fees=0.001)
    lazy = ql.backtest(ds.chunk(), sig, group=group, fees=0.001)
    np.testing.assert_array_equal(lazy.returns.values, ref.returns.values)
    np.testing.assert_array_equal(lazy.metrics()["total_return"], ref.metrics()["total_return"])
    _assert_equal(lazy, ref)


def test_dask_backtest_group_false_runs_into_a_store_that_the_result_reads_lazily():
    # group=False was a lazy graph (one kernel call per asset chunk over all bars, run
    # when computed); it now runs at the call, one chain per asset chunk over the time
    # chunks, into a store the dask-backed result reads (as group=True always did)
    ds, sig = _panel()
    calls = []
    real = ql.backtesting.dispatch.simulate

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)

    ql.backtesting.dispatch.simulate = spy
    try:
        with dask.config.set(scheduler="threads", num_workers=2 * M):
            res = ql.backtest(ds.chunk(time=N, asset=1), sig.chunk(asset=1))
        assert len(calls) == M                # one chain per asset chunk, one time chunk
        assert res.equity.data.numblocks == (1, M)
        res.equity.values
        assert len(calls) == M                # reading the result runs nothing again
        m = res.metrics()                     # metrics of the lazy result itself
        ref = ql.backtest(ds, sig)
        np.testing.assert_allclose(m["sharpe_ratio"].values,
                                   ref.metrics()["sharpe_ratio"].values, rtol=1e-12)
    finally:
        ql.backtesting.dispatch.simulate = real


def test_independent_accounts_run_as_many_chains_as_the_scheduler_runs_tasks():
    # a chain per asset chunk paid each time chunk's Python, dask and zarr steps once per
    # chunk: 4 chains on 1-2 workers took 1.4-1.5x the time of 1-2 (26M minute bars)
    from distributed import Client, LocalCluster

    from quantlab.backtesting.result import _slots, _spans
    edges = np.array([0, 64, 128, 192, 200])
    assert _spans(edges, 1).tolist() == [0, 200]
    # equal widths: a cut at a chunk boundary (128: 128 + 72) held a second worker to
    # 1.56x; within 1/32 of the assets of the equal cut, a boundary is taken
    assert _spans(edges, 2).tolist() == [0, 100, 200]
    assert _spans(edges, 3).tolist() == [0, 64, 128, 200]
    assert _spans(edges, 4).tolist() == [0, 50, 100, 150, 200]
    nine = np.diff(_spans(edges, 9))   # each cut moved by at most 200 / 32 assets
    assert len(nine) == 9 and nine.max() <= 200 / 9 + 2 * 200 / 32
    assert _spans(np.array([0, 200]), 2).tolist() == [0, 100, 200]   # one asset chunk
    assert _spans(np.array([0, 3]), 8).tolist() == [0, 1, 2, 3]      # one asset each
    with dask.config.set(scheduler="sync"):
        assert _slots() == 1 and _slots(writes=False) == 1
    # a chain writing per-bar results keeps ~1.6 cores busy: one per two workers (one
    # per worker in session 46, half of them before); metrics-only: one per worker
    for workers, writes in ((1, 1), (2, 1), (3, 2), (8, 4)):
        with dask.config.set(scheduler="threads", num_workers=workers):
            assert (_slots(), _slots(writes=False)) == (writes, workers)
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(6) as pool, dask.config.set(pool=pool):
        assert (_slots(), _slots(writes=False)) == (3, 6)
    with LocalCluster(n_workers=1, threads_per_worker=3, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster):
        assert _slots() == 3
    ds, sig = _panel()
    ref = ql.backtest(ds, sig, fees=0.001)
    for workers, blocks in ((1, 1), (2, 1), (3, 2), (4, 2), (8, 4), (16, 4)):
        with dask.config.set(scheduler="threads", num_workers=workers):
            lazy = ql.backtest(ds.chunk(time=7, asset=1), sig, fees=0.001)
        assert lazy.equity.data.numblocks == (6, blocks)
        _assert_equal(lazy, ref)
    # one asset chunk, or chunks of unequal widths: chains of equal widths, a chunk cut
    # between two of them (each reads it); one chunk gave one chain on any workers
    for chunked, widths in ((ds.chunk(time=7), (2, 2)), (ds.chunk(time=7, asset=3), (2, 2)),
                            (ds.chunk(time=7, asset=3), (1, 1, 1, 1))):
        with dask.config.set(scheduler="threads", num_workers=2 * len(widths)):
            lazy = ql.backtest(chunked, sig, fees=0.001)
        assert lazy.equity.data.chunks[1] == widths
        _assert_equal(lazy, ref)
    # joined asset chunks stay within dask's array.chunk-size per time chunk of a chain
    # (7 rows x 2 assets x 8 bytes = 112 bytes): a wide universe's chain cannot outgrow it
    with dask.config.set({"scheduler": "threads", "num_workers": 1,
                          "array.chunk-size": "112B"}):
        lazy = ql.backtest(ds.chunk(time=7, asset=1), sig, fees=0.001)
    assert lazy.equity.data.numblocks == (6, 2)
    _assert_equal(lazy, ref)


def test_dask_backtest_param_sweep_and_entries_events():
    ds, sig = _panel(1)
    fees = xr.DataArray([0.0, 0.002], dims="fee_level", coords={"fee_level": [0, 1]})
    stop = xr.DataArray([0.02, 0.05, 0.1, np.nan], dims="asset", coords={"asset": ds.asset})
    for group in (False, True):
        kw = dict(fees=fees, sl_stop=stop, group=group)
        _assert_equal(ql.backtest(ds.chunk(time=7, asset=3), sig, **kw),
                      ql.backtest(ds, sig, **kw))
    ent, ex = sig > 0.3, sig < -0.3
    for group in (False, True):
        kw = dict(entries=ent, exits=ex, size=0.2, accumulate=True, group=group)
        _assert_equal(ql.backtest(ds.chunk(time=7, asset=3), **kw), ql.backtest(ds, **kw))


@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("chunks", [dict(time=1, asset=M), dict(time=7, asset=1)])
def test_dask_backtest_metrics_only_equals_in_memory(group, chunks):
    ds, sig = _panel(2)
    names = ("sharpe_ratio", "max_drawdown", "total_return", "fees_paid", "turnover",
             "exposure", "n_orders")
    kw = dict(group=group, fees=0.001, sl_stop=0.04, dd_limit=0.1, dd_cooldown=2)
    ref = ql.backtest(ds, sig, metrics_only=names, **kw)
    lazy = ql.backtest(ds.chunk(chunks), sig, metrics_only=names, **kw)
    for k in names:
        np.testing.assert_allclose(lazy[k].values, ref[k].values, rtol=1e-12, atol=1e-12,
                                   err_msg=k)
    assert lazy.attrs["periods"] == ref.attrs["periods"] == 252
