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
    # since session 46 the store knows each chunk it wrote: the edit is refused
    with pytest.raises(ql.DataError, match=r"close chunk 0\.0 is not the chunk written"):
        ql.data.open(edited, verify=True)
    with pytest.raises(ql.DataError, match=r"close chunk 0\.0 is not the chunk written"):
        ql.backtest(ql.data.open(edited), sig)
    import json        # a store written before (no chunk index): verify=True checks bars
    marker = json.loads((edited / "quantlab_store.json").read_text())
    for k in ("chunks", "meta", "digest", "pending"):
        marker.pop(k, None)
    (edited / "quantlab_store.json").write_text(json.dumps(marker))
    with pytest.warns(qstore.UncheckedStoreWarning):
        assert all(qstore.validated(ql.data.open(edited)[v]) for v in VARS)
    checked = ql.data.open(edited, verify=True)
    assert not any(qstore.validated(checked[v]) for v in VARS)
    with pytest.raises(ql.DataError, match="close .* outside"):
        ql.backtest(checked, sig)


def _codecs(kind):
    """A store's codecs, with a checksum, or none (a streamed run's uncompressed results)."""
    return {"store": qstore.compressors(), "checksum": qstore.compressors(True),
            "stored": None}[kind]


@pytest.mark.parametrize("codecs", ["store", "checksum", "stored"])
def test_row_writer_writes_the_chunk_files_zarr_writes(tmp_path, codecs):
    """A streamed backtest's results go to their chunk files without zarr's write path:
    the same bytes as zarr's (the edge chunk padded as zarr pads it); rows that are not
    whole chunks go through zarr; any other array has no row writer."""
    import zarr
    rng = np.random.default_rng(1)
    values = rng.normal(size=(10, 3)).cumsum(0).astype(np.float32).astype(np.float64)
    arrays = {}
    for name in ("direct", "zarr"):
        arrays[name] = qstore.writes_all(zarr.create_array(
            tmp_path / name, shape=(10, 3), chunks=(4, 3), dtype=np.float64,
            compressors=_codecs(codecs)))
    put = qstore.row_writer(arrays["direct"])
    assert put is not None
    for t0, t1 in ((0, 4), (4, 10)):
        put(t0, values[t0:t1])
        arrays["zarr"][t0:t1] = values[t0:t1]
    # rows that are not C-contiguous, or of another dtype: copied, the same bytes
    put(0, np.asfortranarray(values[:4]))
    put(4, values[4:10].astype(np.float32))
    files = sorted(p.relative_to(tmp_path / "zarr")
                   for p in (tmp_path / "zarr").rglob("*") if p.is_file())
    assert len(files) == 4   # zarr.json and 3 chunks
    for f in files:
        assert (tmp_path / "direct" / f).read_bytes() == (tmp_path / "zarr" / f).read_bytes(), f
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "direct")[:], values)
    put(2, values[2:6] + 1)   # not whole chunks: zarr's read-modify-write
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "direct")[2:6], values[2:6] + 1)
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "direct")[6:], values[6:])
    wide = zarr.create_array(tmp_path / "wide", shape=(8, 4), chunks=(4, 2), dtype=np.float64,
                             compressors=qstore.compressors())
    flags = zarr.create_array(tmp_path / "flags", shape=(8, 4), chunks=(4, 4), dtype=bool,
                              compressors=qstore.compressors())
    assert qstore.row_writer(wide) is None and qstore.row_writer(flags) is None


@pytest.mark.parametrize("group", [False, True])
def test_a_full_disk_under_a_streamed_backtest_names_its_results_store(monkeypatch, group):
    """A write error of the per-bar results said only "No space left on device"."""
    import errno

    def full(arr):
        def put(t0, values):
            raise OSError(errno.ENOSPC, "No space left on device")
        return put

    monkeypatch.setattr(qstore, "row_writer", full)
    ds, sig = _panel(3, 40, 4)
    with pytest.raises(OSError, match="per-bar results of a streamed backtest to .*TMPDIR") as e:
        ql.backtest(ds.chunk(time=10), sig.chunk(time=10), group=group)
    assert e.value.errno == errno.ENOSPC


@pytest.mark.parametrize("calendar, periods", [("24/7", 525600), ("session", 98280)])
def test_a_short_synthetic_panel_knows_its_calendar_without_a_warning(tmp_path, calendar,
                                                                       periods):
    """A day or two of bars cannot tell 24/7 from 24/5 (a CalendarWarning for a user's
    data), but the generator made them: its own panels and stores did warn."""
    import warnings

    from quantlab.errors import CalendarWarning
    from quantlab.testing import synthetic_minute_panel
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalendarWarning)
        ds = synthetic_minute_panel(2, 1, calendar=calendar)
        path = synthetic_minute_panel(2, 2, calendar=calendar, store=tmp_path / "s")
        stored = ql.data.open(path)
    assert ds.attrs["periods_per_year"] == stored.attrs["periods_per_year"] == periods
    with pytest.warns(CalendarWarning):   # a user's bars of that day still warn
        ql.calendar.annotate(ds.drop_attrs())
