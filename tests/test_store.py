"""quantlab.store: ingest CSV/Parquet folders into a zarr store (chunked, appendable,
resumable after SIGKILL) and open it lazily, equal to load_csv."""
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab.errors import DataError

pytest.importorskip("zarr")

VARS = ["open", "high", "low", "close", "volume"]


@pytest.fixture(scope="module")
def panel():
    """The bundled equities cut to 2 years (GOOG listed mid-way: NaN bars before)."""
    return ql.data.load().sel(time=slice("2004-01-01", "2005-12-31"))


def _write_csv(ds, folder: Path, upto=None, fmt="csv"):
    folder.mkdir(parents=True, exist_ok=True)
    for a in ds.asset.values:
        df = ds.sel(asset=a).to_dataframe()[VARS].dropna()
        if upto is not None:
            df = df.loc[:upto]
        df.index.name = "Date"
        if fmt == "csv":
            df.to_csv(folder / f"{a}.csv")
        else:
            df.reset_index().to_parquet(folder / f"{a}.parquet")
    return folder


def _as_before(marker: dict) -> dict:
    """A marker as a quantlab before session 46 wrote it: no chunk index, metadata and
    marker checksums (else an edit of the marker is refused as such)."""
    for k in ("chunks", "meta", "digest", "pending"):
        marker.pop(k, None)
    return marker


def _same(got: xr.Dataset, want: xr.Dataset):
    assert all(isinstance(got[v].data, da.Array) for v in got.data_vars), "not dask-backed"
    xr.testing.assert_identical(got.compute().drop_attrs(), want.drop_attrs())
    for k, v in want.attrs.items():
        assert got.attrs[k] == v, k


def test_ingest_folder_opens_lazily_equal_to_load_csv_with_provenance(panel, tmp_path):
    src = _write_csv(panel, tmp_path / "src")
    want = ql.data.load_csv(src)
    path = ql.data.ingest(src, tmp_path / "st", chunk_time=100, chunk_asset=3)
    got = ql.data.open(path)
    _same(got, want)
    assert got["close"].data.chunks[0][0] == 100 and got["close"].data.chunks[1] == (3, 1)
    assert got.attrs["freq"] == "1D" and got.attrs["periods_per_year"] == 252
    assert got.attrs["source_files"] == ["AAPL.csv", "GOOG.csv", "IBM.csv", "MSFT.csv"]
    import hashlib
    assert got.attrs["sha256"]["IBM.csv"] == hashlib.sha256(
        (src / "IBM.csv").read_bytes()).hexdigest()


@pytest.mark.parametrize("chunk_time", [7, 100, 1000])
def test_ingest_assets_with_holes_late_listing_and_early_end_equal_load_csv(
        panel, tmp_path, chunk_time):
    # a chunk is filled per asset from a run of its staged rows when it has every bar of
    # the chunk, else row by row: both ways give load_csv's panel
    ds = panel.copy(deep=True)
    for v in VARS:
        ds[v][[3, 40, 41, 42, 300], 0] = np.nan      # AAPL: holes (one at a chunk edge)
        ds[v][450:, 2] = np.nan                       # IBM: ends early
    src = _write_csv(ds, tmp_path / "src")
    want = ql.data.load_csv(src)
    _same(ql.data.open(ql.data.ingest(src, tmp_path / "st", chunk_time=chunk_time,
                                      chunk_asset=3)), want)


def test_ingest_parquet_folder_equals_the_same_bars_as_csv(panel, tmp_path):
    want = ql.data.load_csv(_write_csv(panel, tmp_path / "csv"))
    src = _write_csv(panel, tmp_path / "pq", fmt="parquet")
    got = ql.data.open(ql.data.ingest(src, tmp_path / "st"))
    xr.testing.assert_identical(got.compute().drop_attrs(), want.drop_attrs())
    assert got.attrs["source_files"][0] == "AAPL.parquet"


def test_ingest_parquet_bad_bar_names_the_parquet_file(panel, tmp_path):
    src = _write_csv(panel.isel(asset=[0]), tmp_path / "pq", fmt="parquet")
    df = pd.read_parquet(src / "AAPL.parquet")
    df.loc[5, "high"] = df.loc[5, "low"] / 2
    df.to_parquet(src / "AAPL.parquet")
    with pytest.raises(DataError, match=r"AAPL\.parquet: data row 6: 'high' of asset 'AAPL'"):
        ql.data.ingest(src, tmp_path / "st")
    far = pd.DataFrame({"Date": np.array(["2024-01-01", "2300-01-02"], "datetime64[us]"),
                        "Close": [1.0, 2.0]})
    far.to_parquet(src / "AAPL.parquet")         # not wrapped past 2262 on the way
    with pytest.raises(DataError, match=r"AAPL\.parquet: data row 2: date '2300-01-02' outside"):
        ql.data.ingest(src, tmp_path / "st")


def test_ingest_long_table_and_binance_klines_like_load_csv(tmp_path):
    long = tmp_path / "long.csv"
    long.write_text("date,symbol,close\n2024-01-01,BTC,10\n2024-01-01,ETH,5\n"
                    "2024-01-02,BTC,11\n2024-01-03,ETH,6\n2024-01-03,BTC,12\n")
    _same(ql.data.open(ql.data.ingest(long, tmp_path / "s1", chunk_time=2)),
          ql.data.load_csv(long))
    kl = tmp_path / "kl"
    kl.mkdir()
    for sym, base in (("BTCUSDT", 100), ("ETHUSDT", 10)):
        rows = [f"{1704067200000 + 60000 * i},{base + i},{base + i + 1},{base + i - 1},"
                f"{base + i + 0.5},{i + 1},0,0,0,0,0,0" for i in range(30)]
        (kl / f"{sym}-1m-2024-01.csv").write_text("\n".join(rows) + "\n")
    got = ql.data.open(ql.data.ingest(kl, tmp_path / "s2", chunk_time=7))
    _same(got, ql.data.load_csv(kl))
    assert got.attrs["time_zone"] == "UTC" and got.attrs["freq"] == "1min"


def test_ingest_refuses_what_load_csv_refuses_with_its_message(panel, tmp_path):
    src = _write_csv(panel.isel(asset=[0, 1]), tmp_path / "src")
    text = (src / "GOOG.csv").read_text().splitlines()
    cells = text[40].split(",")
    cells[2] = ""                                  # a partially missing bar
    text[40] = ",".join(cells)
    (src / "GOOG.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(DataError) as want:
        ql.data.load_csv(src)
    with pytest.raises(DataError) as got:
        ql.data.ingest(src, tmp_path / "st")
    assert str(got.value) == str(want.value) and "partially missing bar" in str(got.value)
    _write_csv(panel.isel(asset=[0, 1]), src)
    (src / "AAPL.csv.gz").write_bytes((src / "AAPL.csv").read_bytes())   # one asset twice
    with pytest.raises(DataError, match="both hold asset 'AAPL'"):
        ql.data.ingest(src, tmp_path / "st2")


def test_ingest_rerun_with_more_rows_adds_only_the_new_ones(panel, tmp_path):
    src = _write_csv(panel, tmp_path / "src", upto="2004-12-31")
    st = tmp_path / "st"
    ql.data.ingest(src, st, chunk_time=50, chunk_asset=2)
    n1 = ql.data.open(st).sizes["time"]
    first_chunk = st / "close" / "c" / "0" / "0"
    before = first_chunk.stat().st_mtime_ns, first_chunk.read_bytes()
    _write_csv(panel, src)                                        # the full two years
    ql.data.ingest(src, st)
    got = ql.data.open(st)
    _same(got, ql.data.load_csv(src))
    assert got.sizes["time"] > n1
    assert (first_chunk.stat().st_mtime_ns, first_chunk.read_bytes()) == before
    assert not (st / ".staging").exists()
    ql.data.ingest(src, st)                                       # same files: nothing to do
    _same(ql.data.open(st), ql.data.load_csv(src))


def test_ingest_rerun_with_changed_history_raises_naming_file_asset_time(panel, tmp_path):
    src = _write_csv(panel, tmp_path / "src")
    st = tmp_path / "st"
    ql.data.ingest(src, st, chunk_time=64)
    df = pd.read_csv(src / "IBM.csv", index_col="Date")
    df.loc["2005-03-01", "volume"] += 1
    df.to_csv(src / "IBM.csv")
    with pytest.raises(DataError, match=r"IBM\.csv: asset 'IBM' at 2005-03-01: volume is "):
        ql.data.ingest(src, st)
    df.loc["2005-03-01", "volume"] -= 1
    df.drop("2005-03-02").to_csv(src / "IBM.csv")                 # a bar the store has
    with pytest.raises(DataError, match=r"IBM\.csv: asset 'IBM' at 2005-03-02: open is nan "
                                        r"in the file but"):
        ql.data.ingest(src, st)
    df.to_csv(src / "IBM.csv")
    extra = df.copy()
    extra.loc["2005-03-05"] = extra.loc["2005-03-04"]            # a Saturday the store lacks
    extra.sort_index().to_csv(src / "IBM.csv")
    with pytest.raises(DataError, match=r"IBM\.csv: asset 'IBM' at 2005-03-05: a bar before "
                                        "the store's last time"):
        ql.data.ingest(src, st)
    df.to_csv(src / "IBM.csv")
    df.to_csv(src / "NEW.csv")
    with pytest.raises(DataError, match=r"NEW\.csv: asset 'NEW' is not in the store"):
        ql.data.ingest(src, st)
    (src / "NEW.csv").unlink()
    _same(ql.data.open(st), ql.data.load_csv(src))               # still the first ingest


_KILLED = """
import sys, time
from quantlab import store
calls = [0]
put = store._put
def slow_put(*a):
    calls[0] += 1
    if calls[0] == {k}:          # mid-chunk: some variables of this chunk written
        print("killme", flush=True)
        time.sleep(120)
    put(*a)
store._put = slow_put
store.ingest({src!r}, {dst!r}, chunk_time=100, chunk_asset=3)
"""


def test_ingest_killed_with_sigkill_reads_and_resumes_to_the_uninterrupted_result(panel, tmp_path):
    src = _write_csv(panel, tmp_path / "src")
    ql.data.ingest(src, tmp_path / "whole", chunk_time=100, chunk_asset=3)
    want = ql.data.open(tmp_path / "whole")
    dst = tmp_path / "killed"
    k = 3 * 2 * 5 + 5 + 3     # 10 puts a row: row 3, second asset chunk, 3rd variable
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(
        _KILLED.format(k=k, src=str(src), dst=str(dst)))], stdout=subprocess.PIPE, text=True,
        env=os.environ.copy())
    try:
        assert proc.stdout.readline().strip() == "killme"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    part = ql.data.open(dst)                         # readable at its last complete row
    assert part.sizes["time"] == 300
    assert part.attrs["source"] == str(src) and part.attrs["periods_per_year"] == 252
    xr.testing.assert_identical(part.compute().drop_attrs(),
                                want.isel(time=slice(0, 300)).compute().drop_attrs())
    ql.data.ingest(src, dst)                         # resume
    got = ql.data.open(dst)
    xr.testing.assert_identical(got.compute().drop_attrs(), want.compute().drop_attrs())
    assert {k: v for k, v in got.attrs.items() if k != "store"} == \
        {k: v for k, v in want.attrs.items() if k != "store"}


def test_a_second_ingest_into_a_store_being_written_is_refused(panel, tmp_path):
    # an outside probe: two ingests at once interleaved their rows into one store and
    # both reported success. The first holds the store's lock while it writes (paused
    # mid-chunk here); the second is refused; the lock dies with the first's process
    src = _write_csv(panel, tmp_path / "src")
    other = _write_csv(panel.isel(asset=[0, 1]), tmp_path / "other")
    dst = tmp_path / "st"
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(
        _KILLED.format(k=7, src=str(src), dst=str(dst)))], stdout=subprocess.PIPE, text=True,
        env=os.environ.copy())
    try:
        assert proc.stdout.readline().strip() == "killme"
        for s in (src, other):
            with pytest.raises(DataError, match="another ingest is writing this store"):
                ql.data.ingest(s, dst)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    ql.data.ingest(src, dst)                          # resumes: the lock went with it
    _same(ql.data.open(dst), ql.data.load_csv(src))


def test_append_killed_mid_chunk_keeps_the_committed_rows_and_resumes(panel, tmp_path):
    src = _write_csv(panel, tmp_path / "src", upto="2004-12-31")     # 252 rows: row 2 partial
    dst = tmp_path / "st"
    ql.data.ingest(src, dst, chunk_time=100, chunk_asset=3)
    first = ql.data.open(dst).compute()
    _write_csv(panel, src)
    k = 5 + 2     # first append row, 2nd asset chunk: its chunks also hold rows 200-251
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(
        _KILLED.format(k=k, src=str(src), dst=str(dst)))], stdout=subprocess.PIPE, text=True,
        env=os.environ.copy())
    try:
        assert proc.stdout.readline().strip() == "killme"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    part = ql.data.open(dst).compute()
    assert part.sizes["time"] == 252
    xr.testing.assert_identical(part.drop_attrs(), first.drop_attrs())
    ql.data.ingest(src, dst)
    _same(ql.data.open(dst), ql.data.load_csv(src))


def test_ingest_and_open_refuse_bad_arguments_and_non_stores(panel, tmp_path):
    src = _write_csv(panel.isel(asset=[0]), tmp_path / "src")
    for kw, msg in (({"chunk_time": 0}, "chunk_time must be an integer"),
                    ({"chunk_asset": 1.5}, "chunk_asset must be an integer"),
                    ({"freq": "1M"}, "freq must be"),
                    ({"layout": "long"}, "layout must be")):
        with pytest.raises((ValueError, TypeError), match=msg):
            ql.data.ingest(src, tmp_path / "st", **kw)
    with pytest.raises(ValueError, match=r"freq='7min' does not fit"):
        ql.data.ingest(src, tmp_path / "sth", freq="7min")
    ql.data.ingest(src, tmp_path / "sth")         # a refused first ingest leaves no junk
    assert ql.data.open(tmp_path / "sth").attrs["freq"] == "1D"
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("mine")
    with pytest.raises(DataError, match="not a quantlab store"):
        ql.data.ingest(src, other)
    with pytest.raises(DataError, match="not a quantlab store"):
        ql.data.open(other)
    ql.data.ingest(src, tmp_path / "ok", chunk_time=10)
    assert ql.data.open(tmp_path / "ok", chunks={"time": 25})["close"].data.chunks[0][0] == 25
    for bad, msg in (({"time": 0}, r"chunks\['time'\] must be"), ({"tme": 5}, "chunks dimension")):
        with pytest.raises(ValueError, match=msg):
            ql.data.open(tmp_path / "ok", chunks=bad)
    with pytest.raises(ValueError, match="chunk_time=20, but the store"):
        ql.data.ingest(src, tmp_path / "ok", chunk_time=20)


def test_ingest_same_content_under_two_names_gives_two_assets(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    text = "Date,Close\n2024-01-01,1\n2024-01-02,2\n2024-01-03,3\n"
    (src / "A.csv").write_text(text)
    (src / "B.csv").write_text(text)
    got = ql.data.open(ql.data.ingest(src, tmp_path / "st"))
    _same(got, ql.data.load_csv(src))
    assert list(got.asset.values) == ["A", "B"]


def test_ingest_parquet_with_utc_timestamps_is_utc_like_csv_offsets(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    t = pd.date_range("2024-01-01 09:00", periods=5, freq="h", tz="America/New_York")
    pd.DataFrame({"timestamp": t, "close": [1.0, 2, 3, 4, 5]}).to_parquet(src / "X.parquet")
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "X.csv").write_text(
        "timestamp,close\n" + "".join(f"{x.isoformat()},{i + 1}.0\n" for i, x in enumerate(t)))
    got = ql.data.open(ql.data.ingest(src, tmp_path / "st"))
    want = ql.data.load_csv(tmp_path / "csv")
    xr.testing.assert_identical(got.compute().drop_attrs(), want.drop_attrs())
    assert got.attrs["time_zone"] == "UTC" and str(got.time.values[0])[:16] == "2024-01-01T14:00"


def test_ingest_refuses_naive_files_after_utc_ones(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "A.csv").write_text("Date,Close\n2024-01-01T00:00:00Z,1\n2024-01-02T00:00:00Z,2\n")
    (src / "B.csv").write_text("Date,Close\n2024-01-01,1\n2024-01-02,2\n")
    with pytest.raises(DataError, match="UTC offsets"):
        ql.data.ingest(src, tmp_path / "st")


def test_ingest_stages_files_on_two_threads_with_the_errors_of_one_by_one(tmp_path,
                                                                          monkeypatch):
    # files are read two at a time; each is checked in file order as it comes, so the
    # first fault in file order is the one raised
    import threading

    from quantlab import store
    src = tmp_path / "src"
    src.mkdir()
    (src / "A.csv").write_text("Date,Close\n2024-01-01T00:00:00Z,1\n2024-01-02T00:00:00Z,2\n")
    (src / "B.csv").write_text("Date,Close\n2024-01-01,1\n2024-01-02,2\n")  # naive
    (src / "C.csv").write_text("Date,Close\n2024-01-01,1\n2024-01-01,2\n")  # duplicate
    for i in range(6):
        (src / f"D{i}.csv").write_text("Date,Close\n2024-01-01,1\n2024-01-02,2\n")
    names, real = [], store._stage

    def stage(path, *a):
        names.append((path.name, threading.current_thread().name))
        return real(path, *a)
    monkeypatch.setattr(store, "_stage", stage)
    with pytest.raises(DataError, match="B.csv has naive timestamps but .*A.csv has UTC"):
        ql.data.ingest(src, tmp_path / "st")
    assert names and all(t.startswith("ql-stage") for _, t in names)
    (src / "A.csv").unlink()
    with pytest.raises(DataError, match="C.csv"):        # then C's own fault
        ql.data.ingest(src, tmp_path / "st2")


def test_synthetic_minute_panel_store_equals_in_memory_and_validates(tmp_path):
    from quantlab.testing import synthetic_minute_panel
    mem = synthetic_minute_panel(5, 3, seed=3)
    path = synthetic_minute_panel(5, 3, store=tmp_path / "syn", seed=3, chunk_time=1000,
                                  chunk_asset=2)
    got = ql.data.open(path)
    xr.testing.assert_identical(got.compute().drop_attrs(), mem.drop_attrs())
    ql.data.validate(mem)
    assert got.attrs["periods_per_year"] == 525_600 and mem.sizes["time"] == 3 * 1440
    ses = synthetic_minute_panel(2, 6, calendar="session")
    assert ses.attrs["calendar"] == "session 09:30-16:00" and ses.sizes["time"] == 6 * 390
    with pytest.raises(ValueError, match="pass store="):
        synthetic_minute_panel(10 ** 5, 10 ** 4)
    with pytest.raises(ValueError, match="n_assets must be an integer"):
        synthetic_minute_panel(0, 1)


def test_clean_parquet_ingest_skips_the_csv_text_round_trip_with_the_same_bars(
        tmp_path, monkeypatch):
    """A clean Parquet file (ns dates naive or UTC, float64/int columns, valid bars) is
    read without writing it as CSV text (issue #30: that round trip was most of ingest),
    and stores exactly the bars load_csv reads from the same data as CSV."""
    import pyarrow.csv as pa_csv
    t = pd.date_range("2024-01-01 09:30", periods=6, freq="min")
    rng = np.random.default_rng(0)
    close = 100 + rng.normal(0, 1, 6).cumsum()
    df = pd.DataFrame({"Date": t, "Open": close - 0.1, "High": close + 0.5,
                       "Low": close - 0.5, "Close": close,
                       "Volume": np.arange(1, 7, dtype=np.int64) * 100, "Note": list("abcdef")})
    for aware in (False, True):
        src, csv_dir = tmp_path / f"pq{aware}", tmp_path / f"csv{aware}"
        src.mkdir()
        csv_dir.mkdir()
        d = df.assign(Date=t.tz_localize("UTC")) if aware else df
        d.to_parquet(src / "ACME.parquet", index=False)
        d.to_csv(csv_dir / "ACME.csv", index=False)
        want = ql.data.load_csv(csv_dir)
        with monkeypatch.context() as m:
            m.setattr(pa_csv, "write_csv", lambda *a, **k: pytest.fail("CSV round trip"))
            got = ql.data.open(ql.data.ingest(src, tmp_path / f"st{aware}"))
        xr.testing.assert_identical(got.compute().drop_attrs(), want.drop_attrs())
        assert got.attrs["time_zone"] == ("UTC" if aware else "as written (no UTC offset)")
        np.testing.assert_array_equal(got["volume"].values[:, 0], [100, 200, 300, 400, 500, 600])


@pytest.mark.parametrize("change, message", [
    (lambda d: d.assign(High=d["High"].where(d.index != 2, 1.0)),
     r"ACME\.parquet: data row 3: 'high' of asset 'ACME'"),
    (lambda d: d.assign(Close=d["Close"].where(d.index != 1)),
     r"ACME\.parquet: data row 2: asset 'ACME' at .*partially missing bar"),
    (lambda d: d.iloc[[0, 2, 1, 3]], r"ACME\.parquet: data row 3: asset 'ACME': timestamps "
                                     r"not sorted"),
    (lambda d: d.iloc[[0, 1, 1, 2]], r"ACME\.parquet: asset 'ACME': duplicate timestamp"),
    (lambda d: d.assign(Close=d["Close"].astype(str)), r"ACME\.parquet: data row 1: column "
                                                       r"'close' .*unparsable number"),
])
def test_unclean_parquet_keeps_load_csvs_message_when_the_fast_path_declines(
        tmp_path, change, message):
    """Anything the fast Parquet read does not vouch for goes the text way: load_csv's
    rules and messages, naming the Parquet file and its data row."""
    t = pd.date_range("2024-01-01", periods=4, freq="D")
    d = pd.DataFrame({"Date": t, "Open": 10.0, "High": 11.0, "Low": 9.0, "Close": 10.5})
    if "str" in message or "unparsable" in message:
        d = d.assign(Close=["10.5", "x", "10.5", "10.5"])
        message = message.replace("data row 1", "data row 2")
    else:
        d = change(d)
    src = tmp_path / "src"
    src.mkdir()
    d.reset_index(drop=True).to_parquet(src / "ACME.parquet", index=False)
    with pytest.raises(DataError, match=message):
        ql.data.ingest(src, tmp_path / "st")


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc (Linux)")
def test_staged_bars_are_not_kept_mapped_so_ingest_rss_does_not_grow_with_the_panel(
        panel, tmp_path):
    """A staged asset kept memory-mapped keeps every page the writer touched in RSS (the
    whole panel by the end of an ingest, issue #30); each read maps and unmaps."""
    from quantlab import store as st
    src = _write_csv(panel, tmp_path / "src")
    recs, _ = st._stage(src / "IBM.csv", "x", "single_or_kline", tmp_path / "staging")
    tb = np.array(recs[0].t[:10])   # a copy: a view would keep the map
    got, span = st._block(tb, {"IBM": recs[0]}, 0, 1, ["IBM"], VARS)
    want = panel.sel(asset="IBM").to_dataframe()[VARS].dropna().to_numpy()[:10]
    np.testing.assert_array_equal(got[:, :, 0].T, want)
    assert span.all()
    maps = Path("/proc/self/maps").read_text()
    assert str(tmp_path / "staging") not in maps


def _codec(path: Path, var: str):
    import zarr
    return zarr.open_array(path / var, mode="r").compressors[0]


def test_new_store_is_blosc_lz4_shuffle_and_an_old_zstd_store_opens_and_appends(
        panel, tmp_path, monkeypatch):
    """New stores: Blosc LZ4 + byte shuffle (~3x faster to decode than zstd). A store
    written before (zarr's default zstd) keeps its codec: zarr reads it from the arrays'
    metadata, so it opens, and an append writes its new chunks with zstd too."""
    from zarr.codecs import BloscCodec, ZstdCodec

    from quantlab import store as st
    src = _write_csv(panel, tmp_path / "src")
    new = ql.data.ingest(src, tmp_path / "new", chunk_time=100, chunk_asset=3)
    import zarr
    from zarr.codecs import Crc32cCodec
    for v in ("time", *VARS):
        c = _codec(new, v)
        assert isinstance(c, BloscCodec), (v, c)
        assert (c.cname.value, c.shuffle.value) == ("lz4", "shuffle"), v
        assert isinstance(zarr.open_array(new / v, mode="r").compressors[1], Crc32cCodec)
    _same(ql.data.open(new), ql.data.load_csv(src))

    old_src = _write_csv(panel, tmp_path / "old_src", upto="2004-12-31")  # row 2 partial
    with monkeypatch.context() as m:        # the store as quantlab wrote it before
        m.setattr(st, "compressors", lambda checksum=False: (ZstdCodec(level=0,
                                                                      checksum=False),))
        old = ql.data.ingest(old_src, tmp_path / "old", chunk_time=100, chunk_asset=3)
    assert all(isinstance(_codec(old, v), ZstdCodec) for v in ("time", *VARS))
    _same(ql.data.open(old), ql.data.load_csv(old_src))
    _write_csv(panel, old_src)                                   # append the second year
    ql.data.ingest(old_src, old)
    assert all(isinstance(_codec(old, v), ZstdCodec) for v in ("time", *VARS))
    got = ql.data.open(old)
    _same(got, ql.data.load_csv(old_src))
    xr.testing.assert_identical(got.compute().drop_attrs(),
                                ql.data.open(new).compute().drop_attrs())


def test_append_into_a_damaged_chunk_is_a_data_error_naming_variable_and_chunk(
        panel, tmp_path):
    """Appending fills the store's partial last chunk row: zarr decodes those chunks
    first, and a damaged one is a DataError naming the variable, rows and chunk, not the
    codec's raw error. Files that repeat committed rows read them first: the same."""
    src = _write_csv(panel, tmp_path / "src", upto="2004-12-31")   # 252 rows: row 2 partial
    dst = tmp_path / "st"
    ql.data.ingest(src, dst, chunk_time=100, chunk_asset=3)
    chunk = dst / "high" / "c" / "2" / "1"
    chunk.write_bytes(chunk.read_bytes()[:40])
    later = _write_csv(panel.sel(time=slice("2005-01-01", None)), tmp_path / "later")
    with pytest.raises(DataError, match=r"st: variable 'high', rows 252:300, chunk \(2, 1\) "
                                        r"\(appending\): damaged chunk \(.+\); re-run ingest"):
        ql.data.ingest(later, dst)
    _write_csv(panel, src)                               # the whole history: read first
    with pytest.raises(DataError, match=r"variable 'high', rows 200:252: damaged chunk"):
        ql.data.ingest(src, dst)
    assert ql.data.open(dst).sizes["time"] == 252        # nothing committed


@pytest.mark.parametrize("err", [OSError(28, "No space left on device"), MemoryError()])
def test_disk_and_memory_errors_are_not_called_a_damaged_chunk(err):
    """Only the chunk's own errors (codec, short data) become 'damaged chunk': a full
    disk or exhausted memory while reading or appending is raised as it is."""
    from quantlab.store import _Checked

    class Failing:
        shape, dtype, ndim, chunks = (4, 2), np.float64, 2, (2, 2)

        def __getitem__(self, key):
            raise err

        def __setitem__(self, key, value):
            raise err

    arr = _Checked(Failing(), "st", "close")
    with pytest.raises(type(err)):
        arr[0:2]
    with pytest.raises(type(err)):
        arr[0:2, 0:2] = 1.0
    codec = _Checked(type("Codec", (Failing,), {
        "__getitem__": lambda self, key: (_ for _ in ()).throw(RuntimeError("bad"))})(),
        "st", "close")
    with pytest.raises(DataError, match="damaged chunk"):
        codec[0:2]


def test_a_deleted_chunk_file_is_named_at_open_and_empty_chunks_are_written(panel,
                                                                              tmp_path):
    # an outside probe: zarr reads a missing chunk as its fill value, so a deleted chunk
    # file opened as NaN prices (or 1970 times), even with verify=True
    import json
    import shutil
    src = _write_csv(panel, tmp_path / "src")     # GOOG listed mid-way: all-NaN chunks
    path = Path(ql.data.ingest(src, tmp_path / "st", chunk_time=100, chunk_asset=1))
    assert ql.data.open(path)["close"][:100, 1].isnull().all()   # GOOG, before listing
    assert (path / "close" / "c" / "0" / "1").is_file()          # still written
    for victim, what in (("close/c/1/0", "variable 'close', rows 100:200: chunk 1/0"),
                         ("time/c/4", "variable 'time', rows 400:500: chunk 4"),
                         ("volume/c/0/1", "variable 'volume', rows 0:100: chunk 0/1")):
        broken = tmp_path / victim.replace("/", "_")
        shutil.copytree(path, broken)
        (broken / victim).unlink()
        for verify in (False, True):
            with pytest.raises(DataError, match=f"{what} is missing"):
                ql.data.open(broken, verify=verify)
    gen = ql.testing.synthetic_minute_panel(3, 1, store=tmp_path / "gen", chunk_time=500)
    (Path(gen) / "close" / "c" / "1" / "0").unlink()
    with pytest.raises(DataError, match="chunk 1/0 is missing"):
        ql.data.open(gen)
    # a store made before: no such promise, its empty chunks were never written
    old = tmp_path / "old"
    shutil.copytree(path, old)
    marker = _as_before(json.loads((old / "quantlab_store.json").read_text()))
    del marker["every_chunk"]
    (old / "quantlab_store.json").write_text(json.dumps(marker))
    (old / "close" / "c" / "0" / "1").unlink()
    xr.testing.assert_identical(ql.data.open(old).load().drop_attrs(),
                                ql.data.open(path).load().drop_attrs())


def test_a_flipped_byte_in_a_stored_chunk_is_a_data_error_not_other_prices(tmp_path):
    # an outside probe: LZ4 decoded most single flipped bytes of a chunk into other
    # numbers, silently, even through open(verify=True) and validate. Each chunk of a
    # new store carries a CRC32C of its compressed bytes
    src = tmp_path / "src"
    src.mkdir()
    t = pd.date_range("2024-01-01", periods=3000, freq="min")
    c = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 1e-3, 3000)))
    pd.DataFrame({"Date": t.strftime("%Y-%m-%d %H:%M:%S"), "Open": c, "High": c * 1.001,
                  "Low": c * .999, "Close": c, "Volume": 10.0}).to_csv(src / "X.csv",
                                                                       index=False)
    st = Path(ql.data.ingest(src, tmp_path / "st", chunk_time=1000))
    want = ql.data.open(st)["close"].values
    chunk = st / "close" / "c" / "1" / "0"
    orig = chunk.read_bytes()
    for off in range(16, len(orig), max(1, len(orig) // 40)):
        b = bytearray(orig)
        b[off] ^= 0x10
        chunk.write_bytes(bytes(b))
        with pytest.raises(DataError, match=r"variable 'close', rows 1000:2000: damaged"):
            ql.data.open(st, verify=True)
        with pytest.raises(DataError, match="damaged"):
            ql.data.open(st)["close"].values
    chunk.write_bytes(orig)
    np.testing.assert_array_equal(ql.data.open(st, verify=True)["close"].values, want)


@pytest.mark.parametrize("checksum", [True, False])
def test_chunks_decoded_from_their_files_equal_zarrs_reads(panel, tmp_path, monkeypatch,
                                                          checksum):
    """open() decodes each whole chunk from its file, not through zarr's event loop: the
    same values, dtype and edges (partial rows and assets) as zarr reads; a chunk
    without its file is zarr's fill value; a frame of the wrong size is damage (decoded
    into the chunk, it would leave the chunk's end unwritten)."""
    import zarr

    from quantlab import store as st
    if not checksum:   # a store as quantlab wrote it before the CRC32C
        blosc = st.compressors()
        monkeypatch.setattr(st, "compressors", lambda checksum=False: blosc)
    src = _write_csv(panel, tmp_path / "src")
    path = Path(ql.data.ingest(src, tmp_path / "st", chunk_time=150, chunk_asset=3))
    reads = []
    real = zarr.Array.__getitem__
    monkeypatch.setattr(zarr.Array, "__getitem__",
                        lambda self, key: reads.append(key) or real(self, key))
    ds = ql.data.open(path)
    del reads[:]
    got = ds.compute()
    assert reads == []                       # every chunk from its file
    for v in VARS:
        z = zarr.open_array(path / v, mode="r")
        assert len(z.compressors) == 1 + checksum
        want = real(z, slice(0, ds.sizes["time"]))
        assert got[v].dtype == want.dtype
        np.testing.assert_array_equal(got[v].values, want)
    xr.testing.assert_identical(got.drop_attrs(), ql.data.load_csv(src).drop_attrs())
    one = st._Checked(zarr.open_array(path / "close", mode="r"), "st", "close")
    want = got["close"].values
    n = ds.sizes["time"]
    last = n // 150 * 150
    assert 0 < n - last < 150
    edge = one[(slice(last, n), slice(3, 4))]             # the last row and asset chunk
    assert edge.shape == (n - last, 1) and edge.flags.c_contiguous and edge.flags.writeable
    np.testing.assert_array_equal(edge, want[last:, 3:])
    (path / "close" / "c" / "0" / "0").rename(tmp_path / "kept")     # zarr: NaN
    assert np.isnan(one[(slice(0, 150), slice(0, 3))]).all() and len(reads) == 1
    (path / "close" / "c" / "0" / "0").write_bytes(                   # another array's
        (path / "time" / "c" / "0").read_bytes())                     # chunk: 1200 bytes
    with pytest.raises(DataError, match=r"variable 'close', rows 0:150: damaged chunk "
                                        r"\(ValueError: .* not a chunk of 3600 bytes"):
        one[(slice(0, 150), slice(0, 3))]
    good = (tmp_path / "kept").read_bytes()     # a sound frame with 64 MB after it: read
    (path / "close" / "c" / "0" / "0").write_bytes(good + bytes(64 << 20))   # no further
    with pytest.raises(DataError, match=r"rows 0:150: damaged chunk \(ValueError: "
                                        r"(Stored and computed checksum|a Blosc frame of 3617)"):
        one[(slice(0, 150), slice(0, 3))]


def test_edited_markers_odd_chunks_and_odd_files_get_named_errors(panel, tmp_path):
    # an outside probe: raw KeyError/xarray errors, a negative n_time opened 45 rows,
    # freq '1D' refused against 'D', a named pipe called "a directory"
    import json
    import shutil
    src = _write_csv(panel.isel(asset=[0], time=slice(0, 50)), tmp_path / "src")
    st = Path(ql.data.ingest(src, tmp_path / "st", freq="D"))
    ql.data.ingest(src, st, freq="1D")                     # the same step, other spelling
    assert ql.data.open(st, chunks={"time": -1})["close"].data.chunks[0] == (50,)
    with pytest.raises(TypeError, match="chunks must be a dict"):
        ql.data.open(st, chunks="auto")
    edits = {"no attrs": (lambda m: m.pop("attrs"), "no attrs"),
             "string rows": (lambda m: m.update(n_time="50"), "n_time must be an integer"),
             "negative rows": (lambda m: m.update(n_time=-5), "n_time must be an integer"),
             "duplicate": (lambda m: m.update(assets=m["assets"] * 2,
                                              asset_class=m["asset_class"] * 2),
                           "duplicate assets"),
             "extra asset": (lambda m: m.update(assets=m["assets"] + ["Y"],
                                                asset_class=m["asset_class"] * 2),
                             r"holds \(50, 1\), but the marker lists 50 rows x 2 assets")}
    for k, (edit, msg) in edits.items():
        d = tmp_path / k.replace(" ", "_")
        shutil.copytree(st, d)
        m = json.loads((d / "quantlab_store.json").read_text())
        edit(m)
        (d / "quantlab_store.json").write_text(json.dumps(m))
        with pytest.raises(DataError, match=msg):
            ql.data.open(d)
    fifo = tmp_path / "fifo"
    shutil.copytree(src, fifo)
    os.mkfifo(fifo / "P.csv")
    with pytest.raises(DataError, match=r"P\.csv: not a readable file \(a named pipe\)"):
        ql.data.ingest(fifo, tmp_path / "s_fifo")


def test_an_append_that_changes_the_bar_frequency_is_refused(panel, tmp_path):
    # an outside probe: hourly bars appended to a daily store were taken, and the store
    # lost its calendar (its metrics then annualised with 252)
    src = _write_csv(panel.isel(asset=[0], time=slice(0, 60)), tmp_path / "src")
    st = ql.data.ingest(src, tmp_path / "st")
    df = pd.read_csv(src / "AAPL.csv", index_col=0, parse_dates=True)
    later = df.iloc[-1:].copy()
    hourly = pd.concat([df, later.set_axis(df.index[-1:] + pd.Timedelta("1h"))])
    hourly.to_csv(src / "AAPL.csv")
    with pytest.raises(DataError, match=r"AAPL\.csv: the store's bars are 1D \(business_day"):
        ql.data.ingest(src, st)
    assert ql.data.open(st).sizes["time"] == 60 and ql.data.open(st).attrs["freq"] == "1D"
    _write_csv(panel.isel(asset=[0], time=slice(0, 80)), src)    # more days: fine
    assert ql.data.open(ql.data.ingest(src, st)).attrs["periods_per_year"] == 252


def test_odd_chunk_files_and_edited_zarr_json_are_named_data_errors_not_hangs_or_nan(
        panel, tmp_path):
    # an outside probe: a FIFO as a chunk file hung open() (the direct read and zarr's);
    # a directory as a chunk file was a bare IsADirectoryError (zarr reads it as NaN);
    # a zarr.json whose chunk key separator was edited opened all-NaN prices, and one
    # of another chunk grid or dtype decoded as damage or as other numbers
    import builtins
    import json
    import shutil
    import threading

    import zarr

    from quantlab.store import _Checked
    src = _write_csv(panel, tmp_path / "src")
    path = Path(ql.data.ingest(src, tmp_path / "st", chunk_time=150, chunk_asset=3))

    def copy(name, every_chunk=True):
        p = tmp_path / name
        shutil.copytree(path, p)
        if not every_chunk:   # a store made before every chunk had its file
            marker = _as_before(json.loads((p / "quantlab_store.json").read_text()))
            del marker["every_chunk"]
            (p / "quantlab_store.json").write_text(json.dumps(marker))
        (p / "close" / "c" / "0" / "0").unlink()
        return p, p / "close" / "c" / "0" / "0"

    def guarded(fn, fifo):   # the old code blocked until a writer opened the FIFO
        got = []
        th = threading.Thread(target=lambda: got.append(_raised(fn)), daemon=True)
        th.start()
        th.join(60)
        if th.is_alive():
            with builtins.open(fifo, "wb"):
                pass
            th.join()
            pytest.fail("a FIFO chunk file hung the read")
        return got[0]

    for every in (True, False):
        p, chunk = copy(f"fifo{every}", every)
        os.mkfifo(chunk)
        e = guarded(lambda: ql.data.open(p)["close"].values, chunk)
        assert isinstance(e, DataError) and "variable 'close', rows 0:150" in str(e), e
        assert "not a regular file" in str(e), e
    p, _ = copy("timefifo", every_chunk=False)          # the time read too
    os.remove(p / "time" / "c" / "0")
    os.mkfifo(p / "time" / "c" / "0")
    e = guarded(lambda: ql.data.open(p), p / "time" / "c" / "0")
    assert isinstance(e, DataError) and "variable 'time', rows 0:150" in str(e), e
    p, chunk = copy("devzero")
    os.symlink("/dev/zero", chunk)
    with pytest.raises(DataError, match=r"rows 0:150: chunk 0/0 is not a regular file"):
        ql.data.open(p)
    p, chunk = copy("dir", every_chunk=False)
    chunk.mkdir()
    one = _Checked(zarr.open_array(p / "close", mode="r"), "st", "close")
    with pytest.raises(DataError, match=r"rows 0:150: damaged chunk .*not a regular file"):
        one[(slice(0, 150), slice(0, 3))]
    p, chunk = copy("link")
    os.symlink(path / "close" / "c" / "0" / "0", chunk)   # a link to a sound chunk: read
    np.testing.assert_array_equal(ql.data.open(p)["close"].values,
                                  ql.data.open(path)["close"].values)

    def edited(name, edit, before=False):
        p = tmp_path / name
        shutil.copytree(path, p)
        meta = json.loads((p / "close" / "zarr.json").read_text())
        edit(meta)
        (p / "close" / "zarr.json").write_text(json.dumps(meta))
        if before:   # a store made before session 46: no checksum of its zarr.json
            marker = p / "quantlab_store.json"
            marker.write_text(json.dumps(_as_before(json.loads(marker.read_text()))))
        return p

    for name, edit in (
            ("dot", lambda m: m["chunk_key_encoding"].update(configuration={"separator": "."})),
            ("v2", lambda m: m.update(chunk_key_encoding={"name": "v2",
                                                          "configuration": {"separator": "/"}}))):
        with pytest.raises(DataError, match=r"close/zarr\.json is not the metadata ingest"):
            ql.data.open(edited(name, edit))
        with pytest.raises(DataError, match=r"variable 'close', rows 0:150: chunk 0/0 is "
                                            r"missing .*file close/(c\.0\.0|0/0)\)"):
            ql.data.open(edited(name + "_before", edit, before=True))
    for name, edit, what in (
            ("grid", lambda m: m["chunk_grid"]["configuration"].update(chunk_shape=[75, 3]),
             r"float64 in chunks \(75, 3\)"),
            ("f32", lambda m: m.update(data_type="float32"), r"float32 in chunks \(150, 3\)"),
            ("i64", lambda m: m.update(data_type="int64", fill_value=0),
             r"int64 in chunks \(150, 3\)")):
        with pytest.raises(DataError, match=r"variable 'close' is " + what + r", but the "
                                            r"store writes float64 in chunks \(150, 3\)"):
            ql.data.open(edited(name, edit))
    transposed = edited("transpose", lambda m: m["codecs"].insert(
        0, {"name": "transpose", "configuration": {"order": [1, 0]}}))   # zarr: scrambled
    with pytest.raises(DataError, match=r"variable 'close' has codecs \['transpose', 'bytes'"):
        ql.data.open(transposed)


def _raised(fn):
    try:
        fn()
    except Exception as e:
        return e
    return None



def test_a_chunk_that_is_not_gzip_data_is_a_damaged_chunk_not_a_bare_oserror(panel, tmp_path):
    # an outside probe: gzip's BadGzipFile is an OSError, which the store passes on as the
    # disk's error: a store whose zarr.json names gzip over Blosc chunks raised it bare
    import json
    src = _write_csv(panel, tmp_path / "src", upto="2005-06-30")
    path = Path(ql.data.ingest(src, tmp_path / "st", chunk_time=150, chunk_asset=3))
    meta = json.loads((path / "close" / "zarr.json").read_text())
    meta["codecs"][1] = {"name": "gzip", "configuration": {"level": 5}}
    (path / "close" / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"close/zarr\.json is not the metadata ingest wrote"):
        ql.data.open(path)               # a store since session 46: its metadata checked
    marker = path / "quantlab_store.json"     # one made before: read as zarr reads it
    marker.write_text(json.dumps(_as_before(json.loads(marker.read_text()))))
    with pytest.raises(DataError, match=r"variable 'close', rows 0:150: damaged chunk "
                                        r"\(BadGzipFile: "):
        ql.data.open(path, verify=True)
    _write_csv(panel, src)                          # an append reads the store's chunks
    with pytest.raises(DataError, match=r"variable 'close', rows \d+:\d+.*: damaged chunk "
                                        r"\(BadGzipFile: "):
        ql.data.ingest(src, path)
