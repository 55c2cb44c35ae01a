"""quantlab.store, session 46: a store never gives silently wrong numbers. Each chunk's
identity is recorded at its position when written (the store's index, in its marker,
itself checksummed, with each array's metadata): a chunk swapped, copied over or from
another store, an edited zarr.json or marker is refused naming the file; a store
written before has no index and says so once. Writers' disk errors name the store."""
import errno
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab import store as st
from quantlab.errors import DataError

pytest.importorskip("zarr")

VARS = ["open", "high", "low", "close", "volume"]


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """Two years of the bundled equities, one CSV per asset (GOOG listed mid-way)."""
    ds = ql.data.load().sel(time=slice("2004-01-01", "2005-12-31"))
    folder = tmp_path_factory.mktemp("src")
    for a in ds.asset.values:
        df = ds.sel(asset=a).to_dataframe()[VARS].dropna()
        df.index.name = "Date"
        df.to_csv(folder / f"{a}.csv")
    return folder


@pytest.fixture(scope="module")
def made(src, tmp_path_factory):
    """(store, its values): chunks of 100 rows x 3 assets (504 rows: rows 0-5)."""
    path = Path(ql.data.ingest(src, tmp_path_factory.mktemp("st") / "st", chunk_time=100,
                               chunk_asset=3))
    return path, ql.data.open(path).compute()


def _copy(made, tmp_path, name="copy"):
    p = tmp_path / name
    shutil.copytree(made[0], p)
    return p


def _swap(a: Path, b: Path):
    x, y = a.read_bytes(), b.read_bytes()
    a.write_bytes(y)
    b.write_bytes(x)


def _refused(p, match):
    """Refused at open or at the first read, with or without verify; never values."""
    for verify in (False, True):
        with pytest.raises(DataError, match=match):
            ql.data.open(p, verify=verify).compute()


def test_chunks_swapped_or_copied_over_are_refused_naming_store_variable_and_chunk(
        made, tmp_path):
    # before: every such chunk passed its own CRC32C and frame checks and read as other
    # prices (or times), silently, even with verify=True
    cases = {
        "within a variable": (lambda p: _swap(p / "close/c/3/0", p / "close/c/5/0"),
                              r"close chunk [35]\.0 is not the chunk written there \(checksum"),
        "between variables": (lambda p: _swap(p / "open/c/2/1", p / "close/c/2/1"),
                              r"(open|close) chunk 2\.1 is not the chunk written there"),
        "copied over": (lambda p: (p / "high/c/1/0").write_bytes(
                            (p / "high/c/0/0").read_bytes()),
                        r"high chunk 1\.0 is not the chunk written there"),
        "time chunks": (lambda p: _swap(p / "time/c/1", p / "time/c/2"),
                        r"time chunk [12] is not the chunk written there"),
        "edge chunk": (lambda p: (p / "low/c/5/1").write_bytes(
                           (p / "low/c/4/1").read_bytes()),
                       r"low chunk 5\.1 is not the chunk written there"),
    }
    for name, (damage, match) in cases.items():
        p = _copy(made, tmp_path, name.replace(" ", "_"))
        damage(p)
        _refused(p, rf"store {p}: " + match + r".*re-run ingest into a new store")
    fine = _copy(made, tmp_path, "fine")          # the same bytes put back: read as written
    _swap(fine / "close/c/3/0", fine / "close/c/5/0")
    _swap(fine / "close/c/3/0", fine / "close/c/5/0")
    xr.testing.assert_identical(ql.data.open(fine, verify=True).compute().drop_attrs(),
                                made[1].drop_attrs())


def test_a_chunk_of_another_store_of_the_same_shape_is_refused(made, src, tmp_path):
    half = tmp_path / "half"
    half.mkdir()
    for f in src.glob("*.csv"):      # other prices on the same grid
        df = pd.read_csv(f, index_col=0)
        (df * 1.5).to_csv(half / f.name)
    other = Path(ql.data.ingest(half, tmp_path / "other", chunk_time=100, chunk_asset=3))
    p = _copy(made, tmp_path)
    (p / "close/c/2/0").write_bytes((other / "close/c/2/0").read_bytes())
    _refused(p, r"close chunk 2\.0 is not the chunk written there")
    p = _copy(made, tmp_path, "linked")     # a symlink to elsewhere: the same check
    (p / "close/c/2/0").unlink()
    (p / "close/c/2/0").symlink_to(other / "close/c/2/0")
    _refused(p, r"close chunk 2\.0 is not the chunk written there")
    (p / "close/c/2/0").unlink()            # ... to a copy of its own file: its values
    (p / "close/c/2/0").symlink_to(made[0] / "close/c/2/0")
    xr.testing.assert_identical(ql.data.open(p).compute().drop_attrs(), made[1].drop_attrs())


def test_odd_chunk_files_are_refused_naming_the_file(made, tmp_path):
    p = _copy(made, tmp_path, "trunc")
    chunk = p / "volume/c/1/1"
    chunk.write_bytes(chunk.read_bytes()[:-7])
    _refused(p, r"variable 'volume', rows 100:200: damaged chunk")
    p = _copy(made, tmp_path, "dir")
    (p / "volume/c/1/1").unlink()
    (p / "volume/c/1/1").mkdir()
    _refused(p, r"volume.*(chunk 1/1 is (missing|not a regular file)|1\.1)")


@pytest.mark.parametrize("edit, ok", [
    (lambda m: m["codecs"][0]["configuration"].update(endian="big"), False),   # <f8 -> >f8
    (lambda m: m.update(fill_value=7), False),
    (lambda m: m["codecs"][1]["configuration"].update(clevel=9), False),
    (lambda m: m["codecs"][1]["configuration"].update(shuffle="bitshuffle"), False),
    (lambda m: m.update(data_type="float64" if m["data_type"] == "int64" else "int64",
                        fill_value=0), False),
    (lambda m: m["chunk_key_encoding"]["configuration"].update(separator="."), False),
    (lambda m: m.update(shape=[m["shape"][0] + 10, *m["shape"][1:]]), True),  # grows: fine
], ids=["endian", "fill_value", "clevel", "shuffle", "dtype", "key_encoding", "shape"])
def test_an_edit_of_an_arrays_metadata_is_refused_naming_its_zarr_json(made, tmp_path,
                                                                       edit, ok):
    # before: a big-endian edit read every price byte-swapped (1e-300-ish numbers), silently
    for v in ("close", "time"):
        p = _copy(made, tmp_path, v)
        meta_file = p / v / "zarr.json"
        meta = json.loads(meta_file.read_text())
        edit(meta)
        meta_file.write_text(json.dumps(meta))
        if ok:
            xr.testing.assert_identical(ql.data.open(p).compute().drop_attrs(),
                                        made[1].drop_attrs())
        else:
            with pytest.raises(DataError, match=rf"{p}: ({v}/zarr\.json is not the "
                                                rf"metadata ingest wrote there|variable "
                                                rf"'{v}' is .*its zarr\.json edited)"):
                ql.data.open(p)


@pytest.mark.parametrize("edit", [
    lambda m: m.update(assets=[m["assets"][1], m["assets"][0], *m["assets"][2:]]),
    lambda m: m["attrs"].update(periods_per_year=365),
    lambda m: m.update(n_time=m["n_time"] - 1),
    lambda m: m["chunks"]["close"].update({"3.0": m["chunks"]["close"]["5.0"]}),
    lambda m: m["chunks"].pop("close"),
    lambda m: m["meta"].update(close=m["meta"]["open"] + "0"),
    lambda m: m.update(digest="0" * 64),
], ids=["assets_swapped", "attrs", "n_time", "index_entry", "index_var", "meta", "digest"])
def test_an_edit_of_the_marker_is_refused_naming_it(made, tmp_path, edit):
    # before: two asset names swapped in the marker read each asset's prices as the
    # other's, silently (no check could see it)
    p = _copy(made, tmp_path)
    marker = p / "quantlab_store.json"
    m = json.loads(marker.read_text())
    edit(m)
    marker.write_text(json.dumps(m))
    with pytest.raises(DataError, match=rf"{p}/quantlab_store\.json: (its contents do not "
                                        r"match its checksum|corrupt store marker)"):
        ql.data.open(p)


def test_a_chunk_swapped_and_its_index_entries_swapped_too_is_refused(made, tmp_path):
    # the index is in the marker, which its checksum covers: editing both is refused
    p = _copy(made, tmp_path)
    _swap(p / "close/c/3/0", p / "close/c/5/0")
    marker = p / "quantlab_store.json"
    m = json.loads(marker.read_text())
    idx = m["chunks"]["close"]
    idx["3.0"], idx["5.0"] = idx["5.0"], idx["3.0"]
    marker.write_text(json.dumps(m))
    with pytest.raises(DataError, match="its contents do not match its checksum"):
        ql.data.open(p)


def test_appends_keep_the_index_and_an_append_stopped_after_a_chunk_write_opens(
        src, tmp_path, monkeypatch):
    """An append rewrites the partial last chunk row: stopped after a chunk's new file
    and before the marker has its checksum, the store still opens at its committed rows
    (their CRC32C recorded before the write) and the rerun resumes; its chunks are then
    checked as any others."""
    first = tmp_path / "first"
    first.mkdir()
    for f in src.glob("*.csv"):
        df = pd.read_csv(f, index_col=0)
        df.loc[:"2004-12-31"].to_csv(first / f.name)          # 252 rows: row 2 partial
    dst = tmp_path / "st"
    ql.data.ingest(first, dst, chunk_time=100, chunk_asset=3)
    before = ql.data.open(dst).compute()
    calls = [0]
    real = st._put

    def stop_after(*a):
        real(*a)
        calls[0] += 1
        if calls[0] == 7:           # written, not yet in the marker: as a kill
            raise KeyboardInterrupt
    monkeypatch.setattr(st, "_put", stop_after)
    with pytest.raises(KeyboardInterrupt):
        ql.data.ingest(src, dst)
    monkeypatch.setattr(st, "_put", real)
    m = json.loads((dst / "quantlab_store.json").read_text())
    assert m["n_time"] == 252 and m["pending"]["rows"] == 252
    xr.testing.assert_identical(ql.data.open(dst, verify=True).compute().drop_attrs(),
                                before.drop_attrs())
    p = tmp_path / "pend_swapped"                 # a rewritten chunk is still checked
    shutil.copytree(dst, p)
    _swap(p / "close/c/2/1", p / "close/c/2/0")
    _refused(p, r"close chunk 2\.[01] is not the chunk written there")
    ql.data.ingest(src, dst)                      # resumes
    got = ql.data.open(dst, verify=True).compute()
    want = ql.data.load_csv(src)
    xr.testing.assert_identical(got.drop_attrs(), want.drop_attrs())
    m = json.loads((dst / "quantlab_store.json").read_text())
    assert "pending" not in m
    assert sorted(m["chunks"]["close"]) == sorted(f"{i}.{j}" for i in range(6)
                                                  for j in range(2))
    _swap(dst / "volume/c/2/0", dst / "volume/c/4/0")   # appended chunks are indexed
    _refused(dst, r"volume chunk [24]\.0 is not the chunk written there")


def test_a_store_written_before_reads_as_before_with_one_warning(made, tmp_path):
    p = _copy(made, tmp_path)
    marker = p / "quantlab_store.json"
    m = json.loads(marker.read_text())
    for k in ("chunks", "meta", "digest", "pending"):
        m.pop(k, None)
    marker.write_text(json.dumps(m))
    with pytest.warns(st.UncheckedStoreWarning, match=rf"store {p} was written by an older "
                                                      r"quantlab.*re-ingest"):
        got = ql.data.open(p).compute()
    xr.testing.assert_identical(got.drop_attrs(), made[1].drop_attrs())
    with warnings.catch_warnings():
        warnings.simplefilter("error", st.UncheckedStoreWarning)
        ql.data.open(p)                                 # once per store


def test_write_panel_stores_are_indexed_and_checked(tmp_path):
    path = Path(ql.testing.synthetic_minute_panel(4, 1, store=tmp_path / "gen",
                                                  chunk_time=500, chunk_asset=2))
    want = ql.data.open(path).compute()
    _swap(path / "close/c/0/1", path / "close/c/1/1")
    _refused(path, r"close chunk [01]\.1 is not the chunk written there")
    _swap(path / "close/c/0/1", path / "close/c/1/1")
    xr.testing.assert_identical(ql.data.open(path).compute().drop_attrs(), want.drop_attrs())


def test_a_url_store_checks_the_index_too(src):
    import fsspec
    url = "memory://s46/swapped"
    ql.data.ingest(src, url, chunk_time=100, chunk_asset=3)
    want = ql.data.open(url).compute()
    fs = fsspec.filesystem("memory")
    a, b = "/s46/swapped/close/c/3/0", "/s46/swapped/close/c/4/0"
    x, y = fs.cat_file(a), fs.cat_file(b)
    fs.pipe_file(a, y)
    fs.pipe_file(b, x)
    with pytest.raises(DataError, match=r"close chunk [34]\.0 is not the chunk written there"):
        ql.data.open(url).compute()
    fs.pipe_file(a, x)
    fs.pipe_file(b, y)
    xr.testing.assert_identical(ql.data.open(url).compute(), want)
    fs.rm("/s46", recursive=True)


# --------------------------------------------------------------------------- disk errors

def _panel_pieces(n=3000, assets=4):
    t = pd.date_range("2024-01-01", periods=n, freq="min").values
    rng = np.random.default_rng(1)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, (n, assets)), axis=0))
    yield t, {"open": c, "high": c * 1.001, "low": c * 0.999, "close": c,
              "volume": np.full((n, assets), 10.0)}


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_write_panel_disk_errors_name_the_store_and_leave_no_tmp(tmp_path, monkeypatch, err):
    # before: a bare "[Errno 28] No space left on device", no store named
    real = st._put
    calls = [0]

    def failing(*a):
        calls[0] += 1
        if calls[0] == 3:
            raise OSError(err, os.strerror(err))
        real(*a)
    monkeypatch.setattr(st, "_put", failing)
    with pytest.raises(OSError, match=rf"write_panel into {tmp_path / 'p'}: "
                                      rf"{os.strerror(err)}") as e:
        st.write_panel(tmp_path / "p", _panel_pieces(), list("ABCD"), chunk_time=1000)
    assert e.value.errno == err
    monkeypatch.setattr(st, "_put", real)
    from fsspec.implementations.local import LocalFileSystem
    real_mv = LocalFileSystem.mv

    def mv_fails(self, a, b, **kw):     # the marker's rename: its .tmp is removed
        if str(a).endswith(".tmp"):
            raise OSError(err, os.strerror(err), str(b))
        return real_mv(self, a, b, **kw)
    monkeypatch.setattr(LocalFileSystem, "mv", mv_fails)
    with pytest.raises(OSError, match=rf"write_panel into {tmp_path / 'q'}: .*quantlab_store"):
        st.write_panel(tmp_path / "q", _panel_pieces(), list("ABCD"), chunk_time=1000)
    assert not [f for f in (tmp_path / "q").rglob("*") if ".tmp" in f.name]


def test_write_panel_and_ingest_on_a_full_disk_name_the_store(tmp_path, src):
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or os.system(f"mount -t tmpfs -o size=200k tmpfs {disk} "
                                      "2>/dev/null"):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        with pytest.raises(OSError, match=rf"write_panel into {disk / 'p'}: No space left") \
                as e:
            st.write_panel(disk / "p", _panel_pieces(20000, 8), list("ABCDEFGH"),
                           chunk_time=2000)
        assert e.value.errno == errno.ENOSPC
        assert not [f for f in disk.rglob("*") if ".tmp" in f.name]
        shutil.rmtree(disk / "p")
        with pytest.raises(OSError, match=rf"ingest of {src} into {disk / 's'}: No space"):
            ql.data.ingest(src, disk / "s", chunk_time=50, chunk_asset=1)
        assert not [f for f in (disk / "s").glob("*") if ".tmp" in f.name]
    finally:
        os.system(f"umount {disk}")


def test_a_disk_error_while_staging_leaves_no_tmp_file(src, tmp_path, monkeypatch):
    # before: a full disk while staging left `0.t.tmp.npy` (and `manifest.tmp`) files in
    # the store's .staging folder, filling the disk further
    real = st._save_npy    # the staged bars' writer (np.save before session 49)

    def half_then_full(f, arr):
        real(f, arr[: len(arr) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(st, "_save_npy", half_then_full)
    with pytest.raises(OSError, match=rf"ingest of {src} into {tmp_path / 's'}: No space"):
        ql.data.ingest(src, tmp_path / "s")
    assert not [f.name for f in (tmp_path / "s").rglob("*") if ".tmp" in f.name]
    monkeypatch.setattr(st, "_save_npy", real)
    xr.testing.assert_identical(ql.data.open(ql.data.ingest(src, tmp_path / "s")).compute(
                                ).drop_attrs(), ql.data.load_csv(src).drop_attrs())


def test_bars_staged_by_a_killed_ingest_and_damaged_since_are_staged_again(src, tmp_path,
                                                                          monkeypatch):
    # before: a resumed ingest took the staged bars of the killed run as they were: a
    # byte changed in one (or staged by another file's run) went into the store as prices
    calls = [0]
    real = st._put

    def stop(*a):
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt
        real(*a)
    monkeypatch.setattr(st, "_put", stop)
    with pytest.raises(KeyboardInterrupt):
        ql.data.ingest(src, tmp_path / "s", chunk_time=100, chunk_asset=3)
    monkeypatch.setattr(st, "_put", real)
    staged = sorted((tmp_path / "s" / ".staging").rglob("0.v.npy"))
    assert staged
    for f in staged:              # a price of each staged file changed, its header kept
        b = bytearray(f.read_bytes())
        b[-3] ^= 0x40
        f.write_bytes(bytes(b))
    got = ql.data.open(ql.data.ingest(src, tmp_path / "s")).compute()
    xr.testing.assert_identical(got.drop_attrs(), ql.data.load_csv(src).drop_attrs())


def test_a_reader_open_across_an_append_reads_its_rows(src, tmp_path):
    """An append rewrites the partial last chunk row: a reader opened before it (a
    notebook while a cron job appends) was refused that row ("not the chunk written
    there"), a healthy store; it now reads its own rows, which the append keeps. A chunk
    the marker does not list is still refused."""
    first = tmp_path / "first"
    first.mkdir()
    for f in src.glob("*.csv"):
        pd.read_csv(f, index_col=0).loc[:"2004-12-31"].to_csv(first / f.name)  # row 2 partial
    dst = tmp_path / "st"
    ql.data.ingest(first, dst, chunk_time=100, chunk_asset=3)
    reader = ql.data.open(dst)
    before = reader.compute()
    ql.data.ingest(src, dst)
    xr.testing.assert_identical(reader.compute(), before)
    late = ql.data.open(dst)        # opened after: its rows are the appended store's
    _swap(dst / "close" / "c" / "2" / "0", dst / "close" / "c" / "3" / "0")
    with pytest.raises(DataError, match="close chunk 2.0 is not the chunk written there"):
        reader["close"].compute()
    with pytest.raises(DataError, match="close chunk .* is not the chunk written there"):
        late["close"].compute()


def test_an_ingest_into_a_url_store_reads_back_only_the_checksums_it_records(src,
                                                                             monkeypatch):
    """The index's CRC32C of each chunk written is its file's last 4 bytes: an object
    store sent the whole chunk back for them (as many bytes again as written)."""
    from zarr.storage import FsspecStore
    got = [0]
    real = FsspecStore.get

    async def get(self, key, prototype, byte_range=None):
        r = await real(self, key, prototype, byte_range)
        if "/c/" in key and r is not None:
            got[0] += len(r.to_bytes())
        return r
    monkeypatch.setattr(FsspecStore, "get", get)
    ql.data.ingest(src, "memory://s46/url", chunk_time=100, chunk_asset=3)
    import fsspec
    fs = fsspec.filesystem("memory")
    written = sum(fs.size(f) for f in fs.find("/s46/url") if "/c/" in f)
    fs.rm("/s46", recursive=True)
    assert 0 < got[0] < written / 10
