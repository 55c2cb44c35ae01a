"""Session 50, the lead engineer's changes: streamed reads and backtests, progress bars,
tear sheets of streamed results, volume-based slippage on a bar of no volume."""
import threading

import pytest

import numpy as np

from quantlab import _progress, store


def test_chunk_file_reads_into_a_per_thread_scratch_buffer(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "_scratch", threading.local())   # earlier reads' buffers
    files = []
    for i, n in enumerate((100, 50, 300)):
        p = tmp_path / f"c{i}"
        p.write_bytes(bytes((i + k) % 251 for k in range(n)))
        files.append(p)
    a = store._local_bytes(files[0], 1000)
    assert bytes(a) == files[0].read_bytes()
    b = store._local_bytes(files[1], 1000)          # the same buffer, overwritten
    assert bytes(b) == files[1].read_bytes()
    c = store._local_bytes(files[2], 2000)          # a larger limit: a new buffer
    assert bytes(c) == files[2].read_bytes() and bytes(b) == files[1].read_bytes()
    assert bytes(store._local_bytes(files[2], 10)) == files[2].read_bytes()[:10]
    assert bytes(store._local_bytes(files[2], -4)) == files[2].read_bytes()[-4:]
    assert store._local_bytes(tmp_path / "none", 10) is None
    monkeypatch.setattr(store, "_SCRATCH_MAX", 10)   # above it: the file's own bytes
    assert store._local_bytes(files[0], 1000) == files[0].read_bytes()

    got, errors = {}, []

    def read(i):   # threads read at once: each its own buffer
        try:
            for _ in range(200):
                if bytes(store._local_bytes(files[i], 1000)) != files[i].read_bytes():
                    errors.append(i)
        finally:
            got[i] = True
    monkeypatch.setattr(store, "_SCRATCH_MAX", 1 << 26)
    ts = [threading.Thread(target=read, args=(i,)) for i in range(3)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert len(got) == 3 and not errors


def test_a_store_read_twice_in_one_thread_keeps_each_chunk(tmp_path):
    import quantlab as ql
    rng = np.random.default_rng(0)
    n, m = 300, 5
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, m)), 0))
    idx = __import__("pandas").date_range("2020-01-01", periods=n, freq="D")
    for j in range(m):
        (tmp_path / "in").mkdir(exist_ok=True)
        __import__("pandas").DataFrame({"time": idx, "close": close[:, j]}).to_csv(
            tmp_path / "in" / f"S{j}.csv", index=False)
    ql.data.ingest(tmp_path / "in", store=tmp_path / "st", chunk_time=64, chunk_asset=2)
    ds = ql.data.open(tmp_path / "st")
    np.testing.assert_array_equal(ds["close"].transpose("time", "asset").values, close)


def _folder(tmp_path, n=300, m=5):
    import pandas as pd
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, m)), 0))
    idx = pd.date_range("2020-01-01", periods=n, freq="D")
    (tmp_path / "in").mkdir(exist_ok=True)
    for j in range(m):
        pd.DataFrame({"time": idx, "close": close[:, j]}).to_csv(
            tmp_path / "in" / f"S{j}.csv", index=False)
    return tmp_path / "in", close


def test_ingest_shows_progress_bars_for_long_steps_only(tmp_path, monkeypatch, capsys):
    import quantlab as ql
    src, _ = _folder(tmp_path)
    monkeypatch.setattr(_progress, "DELAY", 60.0)   # a step shorter than the delay: no bar
    ql.data.ingest(src, tmp_path / "quiet", chunk_time=64, chunk_asset=2)
    assert "ingest" not in capsys.readouterr().err
    monkeypatch.setattr(_progress, "DELAY", 0.0)          # every step "long"
    ql.data.ingest(src, tmp_path / "shown", chunk_time=64, chunk_asset=2)
    err = capsys.readouterr().err
    assert "ingest: reading files" in err and "5/5" in err
    assert "ingest: writing chunks" in err and "15/15" in err   # 5 rows x 3 asset chunks
    ql.data.ingest(src, tmp_path / "off", chunk_time=64, chunk_asset=2, progress=False)
    assert "ingest" not in capsys.readouterr().err
    import pytest
    with pytest.raises(TypeError, match="progress"):
        ql.data.ingest(src, tmp_path / "bad", progress="yes")


def test_an_out_of_core_backtest_shows_a_bar_of_its_time_chunks(monkeypatch, capsys):
    import dask
    import pytest

    import quantlab as ql
    from panels import ohlcv_panel

    ds, sig = ohlcv_panel(n=40, m=4)
    monkeypatch.setattr(_progress, "DELAY", 0.0)
    for group, want in ((True, "5/5"), (False, "10/10")):   # 5 time chunks; 2 chains
        with dask.config.set(scheduler="threads", num_workers=4):
            ql.backtest(ds.chunk(time=8, asset=2), sig, group=group, fees=0.001)
        err = capsys.readouterr().err
        assert "backtest: time chunks" in err and want in err, (group, err)
        with dask.config.set(scheduler="threads", num_workers=4):
            ql.backtest(ds.chunk(time=8, asset=2), sig, group=group, progress=False)
            ql.backtest(ds, sig, group=group)                          # in memory
            ql.backtest(ds.chunk(time=8, asset=2), sig, group=group,   # lazy: no bar
                        metrics_only=("sharpe_ratio",)) if not group else None
        assert "backtest" not in capsys.readouterr().err
    with pytest.raises(TypeError, match="progress"):
        ql.backtest(ds, sig, progress=1)


def test_a_dropped_results_store_goes_at_once_and_is_deleted_in_the_background(
        tmp_path, monkeypatch):
    import gc

    import quantlab as ql
    from panels import ohlcv_panel
    from quantlab.backtesting import result

    monkeypatch.setattr(result.tempfile, "tempdir", str(tmp_path))
    ds, sig = ohlcv_panel(n=40, m=4)
    res = ql.backtest(ds.chunk(time=8), sig, group=True)
    (path,) = tmp_path.glob("ql-backtest-*")
    # a remover that holds its work until the test runs it (a 0.3 s timer deleted the
    # store before the test looked, on a machine busy with another test process)
    queued = []
    monkeypatch.setattr(result, "_REMOVER", type("Held", (), {
        "ready": lambda self: None,    # (its thread: started where a store is made)
        "submit": lambda self, f, *a: queued.append((f, a))})())
    del res
    gc.collect()
    assert len(queued) == 1 and not path.exists()           # renamed at once
    (trash,) = tmp_path.glob(".ql-removing-*")
    f, a = queued.pop()
    f(*a)                                                   # the background work
    assert not trash.exists()                               # deletes it
    # the pool shut down (at exit): deleted on the spot
    res = ql.backtest(ds.chunk(time=8), sig, group=True)
    (path,) = tmp_path.glob("ql-backtest-*")
    monkeypatch.setattr(result, "_REMOVER", type("Closed", (), {
        "ready": lambda self: None, "submit": lambda self, *a: (
        _ for _ in ()).throw(RuntimeError("cannot schedule new futures after shutdown"))})())
    del res
    gc.collect()
    assert not path.exists() and not list(tmp_path.glob(".ql-removing-*"))


@pytest.mark.parametrize("group", [False, True])
def test_a_streamed_results_tear_sheet_reads_its_store_a_few_times_not_per_value(group):
    import dask
    from bokeh.models import ColumnDataSource
    from dask.callbacks import Callback

    import quantlab as ql
    from panels import ohlcv_panel

    ds, sig = ohlcv_panel(n=60, m=4)
    with dask.config.set(scheduler="threads", num_workers=2):
        lazy = ql.backtest(ds.chunk(time=16, asset=2), sig, group=group, fees=0.001)
    mem = ql.backtest(ds, sig, group=group, fees=0.001)

    class Count(Callback):
        n = 0

        def _start(self, dsk):
            Count.n += 1
    with Count():
        got = lazy.tearsheet("buy_and_hold")
    # each input once (returns, benchmark, exposure, the metrics, the trades' prices):
    # the metrics were computed once per value and column, the returns once per figure
    assert Count.n <= 8, Count.n

    def data(sheet):
        return {s.name: s.data for s in sheet.select({"type": ColumnDataSource})
                if s.name is not None}   # the sections' sources (unnamed: annotations)
    want, have = data(mem.tearsheet("buy_and_hold")), data(got)
    assert want.keys() == have.keys()
    for k in want:
        for c in want[k]:
            a, b = np.asarray(want[k][c]), np.asarray(have[k][c])
            if a.dtype.kind == "f":
                np.testing.assert_allclose(b, a, rtol=1e-12, equal_nan=True, err_msg=f"{k}.{c}")
            else:
                assert a.tolist() == b.tolist(), (k, c)


@pytest.mark.parametrize("execution", ["close", "next_open"])
def test_volume_based_slippage_on_a_bar_of_no_volume_pays_the_cap(execution):
    # an outside probe: a buy on a volume-0 bar filled at the close (its impact masked to
    # 0), while one on a bar of 1e6 shares paid ~6 bps
    import pandas as pd
    import xarray as xr

    import quantlab as ql

    t = pd.bdate_range("2024-01-01", periods=8)
    close = np.array([100, 102, 99, 103, 101, 104, 102, 105], float)[:, None]
    volume = np.array([1e6] * 5 + [0, 1e6, 1e6])[:, None]
    ds = xr.Dataset({k: (("time", "asset"), close) for k in ("open", "high", "low", "close")}
                    | {"volume": (("time", "asset"), volume)},
                    coords={"time": t, "asset": ["A"]})
    slip = ql.Slippage("volume_based", window=3, coef=0.5, cap=0.02, bps=1)
    # the signal's bar of no volume (next_open: the decision bar's volume); one of 1e6
    for buy_at, paid in ((5, slip.cap), (4, None)):
        sig = xr.DataArray((np.arange(8) >= buy_at).astype(float)[:, None],
                           dims=("time", "asset"), coords=ds["close"].coords)
        res = ql.backtest(ds, sig, slippage=slip, execution=execution)
        o = res.orders.iloc[0]
        px = float(ds["open" if execution == "next_open" else "close"].sel(time=o["time"]).item())
        cost = o["price"] / px - 1 - slip.bps / 1e4
        if paid is not None:
            assert cost == pytest.approx(paid, rel=1e-12), (execution, o)
        else:
            assert 0 < cost < slip.cap / 10, (execution, o)


def test_summary_table_start_and_end_are_the_observed_span():
    # an outside probe: a late-listed series showed the index's first date as its start
    # while Periods (and every metric) counted only its observations
    import pandas as pd

    from quantlab import tearsheet
    idx = pd.bdate_range("2010-01-04", periods=300)
    r = pd.Series(np.where(np.arange(300) < 200, np.nan, 0.001), index=idx)
    r.iloc[-5:] = np.nan                                    # delisted before the end
    t = tearsheet.summary_table(r).set_index("name")["strategy"]
    assert (t["start"], t["end"], t["periods"]) == (
        idx[200].strftime("%Y-%m-%d"), idx[294].strftime("%Y-%m-%d"), "95")
