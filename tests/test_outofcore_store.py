"""ql.backtest of an ingested store (ql.data.open): equal to the in-memory backtest of
the same bars to 1e-12; it loads only the bar variables the run reads (ingest validated
them all), every variable when the panel is not the store's own."""
import numpy as np
import pytest

import quantlab as ql
from quantlab import store as qstore

from test_outofcore import FEATURES, _assert_equal, _panel

pytest.importorskip("zarr")

N, M = 120, 6
VARS = ["open", "high", "low", "close", "volume"]


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """(store path, in-memory panel as load_csv reads it, signal)."""
    ds, sig = _panel(5, N, M)
    src = tmp_path_factory.mktemp("src")
    for a in ds.asset.values:
        df = ds.sel(asset=a).to_dataframe()[VARS]
        df.index.name = "Date"
        df.to_csv(src / f"{a}.csv")
    path = ql.data.ingest(src, tmp_path_factory.mktemp("st") / "st", chunk_time=25,
                          chunk_asset=4)
    return path, ql.data.load_csv(src), sig


@pytest.mark.parametrize("feature", ["plain", "stops", "limits", "next_open",
                                     "slippage_window", "dd_cooldown"])
@pytest.mark.parametrize("group", [False, True])
def test_store_backtest_equals_the_in_memory_backtest(stored, feature, group):
    path, mem, sig = stored
    kw = FEATURES[feature]
    _assert_equal(ql.backtest(ql.data.open(path), sig, group=group, **kw),
                  ql.backtest(mem, sig, group=group, **kw))


def _damage(path, var):
    for chunk in (path / var / "c").rglob("*"):
        if chunk.is_file():
            chunk.write_bytes(chunk.read_bytes()[:40])


@pytest.mark.parametrize("chunks", [{"time": 37}, {"asset": 5}, {"time": 60, "asset": 1}])
@pytest.mark.parametrize("group", [False, True])
def test_a_rechunked_store_backtests_as_the_in_memory_panel(stored, chunks, group):
    # rechunking one dim leaves the asset_class coordinate in chunks of its own: the
    # run's chunk bounds are the data's (an outside probe: xarray's "inconsistent
    # chunks along dimension asset" before)
    path, mem, sig = stored
    ds = ql.data.open(path).chunk(chunks)
    if "asset" not in chunks:
        assert ds["asset_class"].chunks != ds["close"].chunks[1:]
    _assert_equal(ql.backtest(ds, sig, group=group, fees=0.001),
                  ql.backtest(mem, sig, group=group, fees=0.001))


def test_store_backtest_loads_only_the_variables_it_reads(stored, tmp_path):
    import shutil
    path, mem, sig = stored
    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    for v in ("high", "low", "volume"):     # never read by a plain run
        _damage(bad, v)
    ds = ql.data.open(bad)
    assert all(qstore.validated(ds[v]) for v in VARS)
    for group in (False, True):
        _assert_equal(ql.backtest(ds, sig, group=group, fees=0.001),
                      ql.backtest(mem, sig, group=group, fees=0.001))
        _assert_equal(ql.backtest(ds, sig, group=group, execution="next_open"),
                      ql.backtest(mem, sig, group=group, execution="next_open"))
    # runs that read them, and a panel changed after open (checked whole), load them
    for kw in (dict(sl_stop=0.03), dict(order_type="limit", limit_offset=0.01),
               dict(slippage=ql.backtesting.Slippage("volume_based", window=5)),
               dict(slippage=ql.backtesting.Slippage("adaptive"))):
        with pytest.raises(ql.DataError, match=r"variable '(high|low|volume)', rows "
                                               r"\d+:\d+: damaged chunk"):
            ql.backtest(ds, sig, **kw)
    changed = ds.assign(close=ds["close"] * 1.0)
    assert not qstore.validated(changed["close"]) and qstore.validated(changed["high"])
    with pytest.raises(ql.DataError, match="damaged chunk"):
        ql.backtest(changed, sig)
    with pytest.raises(ql.DataError, match="damaged chunk"):
        ql.backtest(ds.isel(time=slice(1, None)), sig.isel(time=slice(1, None)))


def test_a_generated_store_is_not_taken_as_validated(tmp_path):
    from quantlab.testing import synthetic_minute_panel
    path = synthetic_minute_panel(3, 1, store=tmp_path / "syn", chunk_time=500)
    ds = ql.data.open(path)
    assert not any(qstore.validated(ds[v]) for v in ds.data_vars)
    assert not qstore.validated(ds["close"].compute())


def test_rows_not_ingested_or_verify_are_checked_by_the_backtest(stored, tmp_path):
    """write_panel's rows never passed ingest's checks: an ingest appending to its store
    does not make them trusted; ``open(verify=True)`` trusts nothing. Either way a close
    spike outside [low, high] is refused, as the in-memory backtest refuses it."""
    import shutil
    path, mem, sig = stored
    spike = mem.copy(deep=True)
    spike["close"][10, 1] = float(spike["high"][10, 1]) * 1000
    pieces = [(spike.time.values[:60], {v: spike[v].values[:60] for v in VARS})]
    st = qstore.write_panel(tmp_path / "wp", pieces, [str(a) for a in mem.asset.values],
                            VARS, chunk_time=25, chunk_asset=4)
    later = tmp_path / "later"
    later.mkdir()
    for a in mem.asset.values:
        df = mem.sel(asset=a, time=mem.time[60:]).to_dataframe()[VARS]
        df.index.name = "Date"
        df.to_csv(later / f"{a}.csv")
    ql.data.ingest(later, st)
    ds = ql.data.open(st)
    assert ds.sizes["time"] == N and not any(qstore.validated(ds[v]) for v in VARS)
    with pytest.raises(ql.DataError, match="close .* outside"):
        ql.backtest(ds, sig)
    with pytest.raises(ql.DataError, match="close .* outside"):
        ql.backtest(spike, sig)
    edited = tmp_path / "edited"            # an ingested store edited outside quantlab
    shutil.copytree(path, edited)
    import zarr
    arr = zarr.open_array(edited / "close", mode="r+")
    arr[10, 1] = arr[10, 1] * 1000
    assert all(qstore.validated(ql.data.open(edited)[v]) for v in VARS)
    checked = ql.data.open(edited, verify=True)
    assert not any(qstore.validated(checked[v]) for v in VARS)
    with pytest.raises(ql.DataError, match="close .* outside"):
        ql.backtest(checked, sig)
