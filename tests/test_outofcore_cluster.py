"""Out-of-core backtests on a dask cluster (issue #30): ``client=`` and the active
Client give the in-memory backtest's values; bad uses are named."""
import numpy as np
import pytest
import xarray as xr

import quantlab as ql

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    # processes: every task and its arguments cross a process boundary, as on a cluster
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    with distributed.Client(cluster, set_as_default=False) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def panel():
    ds = ql.data.load("sp500_20").isel(time=slice(0, 600), asset=slice(0, 8))
    sig = ql.strategies.get("volatility_regime").signal(ds)
    return ds, sig, ds.chunk({"time": 150, "asset": 3}), sig.chunk({"time": 150, "asset": 3})


@pytest.mark.parametrize("group", [False, True])
def test_backtest_on_a_client_equals_the_in_memory_backtest(client, panel, group):
    ds, sig, lazy_ds, lazy_sig = panel
    want = ql.backtest(ds, sig, fees=0.001, slippage=0.0005, group=group)
    got = ql.backtest(lazy_ds, lazy_sig, fees=0.001, slippage=0.0005, group=group,
                      client=client)
    assert not isinstance(got.equity.data, np.ndarray)   # still dask-backed
    with client.as_current():   # persisted on the client: computed there
        done = got.compute()
    xr.testing.assert_allclose(done.equity, want.equity, rtol=1e-12, atol=0)
    xr.testing.assert_allclose(done.positions, want.positions, rtol=1e-12, atol=0)
    # per asset chunk the orders come chunk by chunk: compare them in (time, asset) order
    key = ["time", "asset"]
    a = done.orders.sort_values(key, kind="stable").reset_index(drop=True)
    b = want.orders.sort_values(key, kind="stable").reset_index(drop=True)
    assert len(a) == len(b) > 100
    assert (a[key] == b[key]).all().all()
    for col in ("size", "price", "fee"):
        np.testing.assert_allclose(a[col].to_numpy(), b[col].to_numpy(), rtol=1e-12)


def test_metrics_only_on_a_client_equals_the_in_memory_metrics(client, panel):
    ds, sig, lazy_ds, lazy_sig = panel
    names = ("sharpe_ratio", "max_drawdown", "turnover")
    want = ql.backtest(ds, sig, fees=0.001, metrics_only=names)
    got = ql.backtest(lazy_ds, lazy_sig, fees=0.001, metrics_only=names, client=client)
    with client.as_current():
        got = got.compute()
    xr.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_active_client_runs_a_lazy_backtest_without_client_argument(client, panel):
    ds, sig, lazy_ds, lazy_sig = panel
    want = ql.backtest(ds, sig, fees=0.001)
    with client.as_current():   # what `Client(...)` in a notebook makes the default
        got = ql.backtest(lazy_ds, lazy_sig, fees=0.001).compute()
    xr.testing.assert_allclose(got.equity, want.equity, rtol=1e-12, atol=0)


def test_client_with_in_memory_data_or_a_non_client_is_refused(client, panel):
    ds, sig, lazy_ds, lazy_sig = panel
    with pytest.raises(ValueError, match=r"client= runs dask-backed data .* in memory"):
        ql.backtest(ds, sig, client=client)
    with pytest.raises(TypeError, match="client must be a dask.distributed.Client, got str"):
        ql.backtest(lazy_ds, lazy_sig, client="tcp://127.0.0.1:8786")


@pytest.mark.parametrize("group", [False, True])
def test_streamed_chains_on_a_client_equal_in_memory_with_stops_and_a_drained_account(
        client, group):
    # group=False: each asset chunk's chain runs on a worker process, streamed over the
    # time chunks, writing its block of the results store; a drained account's fee is
    # cut a chunk after its order went out
    from test_outofcore_stream import DRAIN, _drain_panel
    ds, sig = _drain_panel()
    for kw in (DRAIN, dict(sl_stop=0.03, sl_trail=0.05, fees=0.001)):
        want = ql.backtest(ds, sig, group=group, **kw)
        got = ql.backtest(ds.chunk({"time": 5, "asset": 2}), sig, group=group, client=client,
                          **kw).compute()
        xr.testing.assert_allclose(got.equity, want.equity, rtol=1e-12, atol=0)
        key = ["t", "col"]
        a = got.orders.sort_values(key, kind="stable").reset_index(drop=True)
        b = want.orders.sort_values(key, kind="stable").reset_index(drop=True)
        assert len(a) == len(b) > 5
        for col in ("t", "col", "size", "price", "fee"):
            np.testing.assert_allclose(a[col].to_numpy(), b[col].to_numpy(), rtol=1e-12)
