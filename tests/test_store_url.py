"""quantlab.store on fsspec URLs (issue #30): ingest/open take any URL zarr understands,
one code path for every protocol; offline we test memory:// and file://, and that a
protocol whose package is missing names the package."""
import importlib.util
import uuid
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import quantlab as ql
from quantlab.errors import DataError

pytest.importorskip("zarr")
fsspec = pytest.importorskip("fsspec")
from quantlab import store  # noqa: E402

VARS = ["open", "high", "low", "close", "volume"]


@pytest.fixture(scope="module")
def panel():
    return ql.data.load().sel(time=slice("2004-01-01", "2005-12-31"))


@pytest.fixture
def url():
    """A fresh memory:// store, removed afterwards (the memory filesystem is global)."""
    root = f"ql-test-{uuid.uuid4().hex}"
    yield f"memory://{root}/st"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{root}"):
        fs.rm(f"/{root}", recursive=True)


def _write_csv(ds, folder: Path, upto=None):
    folder.mkdir(parents=True, exist_ok=True)
    for a in ds.asset.values:
        df = ds.sel(asset=a).to_dataframe()[VARS].dropna()
        if upto is not None:
            df = df.loc[:upto]
        df.index.name = "Date"
        df.to_csv(folder / f"{a}.csv")
    return folder


def test_memory_url_store_ingests_appends_and_opens_equal_to_load_csv(panel, tmp_path, url):
    """Provenance, calendar attrs and append on memory://, as on a local directory; the
    staged bars live in a local temp folder and are removed."""
    src = _write_csv(panel, tmp_path / "src", upto="2004-12-31")
    assert ql.data.ingest(src, url, chunk_time=100, chunk_asset=3) == url
    first = ql.data.open(url)
    xr.testing.assert_identical(first.compute().drop_attrs(),
                                ql.data.load_csv(src).drop_attrs())
    _write_csv(panel, src)                                           # two years: append
    ql.data.ingest(src, url)
    got = ql.data.open(url)
    want = ql.data.load_csv(src)
    xr.testing.assert_identical(got.compute().drop_attrs(), want.drop_attrs())
    assert got["close"].data.chunks[0][0] == 100
    assert got.attrs["store"] == url and got.attrs["freq"] == "1D"
    assert got.attrs["source_files"] == ["AAPL.csv", "GOOG.csv", "IBM.csv", "MSFT.csv"]
    import hashlib
    assert got.attrs["sha256"]["IBM.csv"] == hashlib.sha256(
        (src / "IBM.csv").read_bytes()).hexdigest()
    fs = fsspec.filesystem("memory")
    root = url.split("://", 1)[1]
    assert fs.exists(f"/{root}/{store.MARKER}") and fs.exists(f"/{root}/close/zarr.json")
    assert not store._Where(url, None, "t").staging.exists()
    with pytest.raises(DataError, match=r"IBM\.csv: asset 'IBM' at 2005-03-01: volume is "):
        df = (src / "IBM.csv").read_text().splitlines()
        i = next(k for k, ln in enumerate(df) if ln.startswith("2005-03-01"))
        cells = df[i].split(",")
        cells[-1] = str(float(cells[-1]) + 1)
        df[i] = ",".join(cells)
        (src / "IBM.csv").write_text("\n".join(df) + "\n")
        ql.data.ingest(src, url)
    assert not store._Where(url, None, "t").staging.exists()    # a refusal: none left


def test_memory_url_ingest_interrupted_mid_chunk_resumes_to_the_uninterrupted_result(
        panel, tmp_path, url, monkeypatch):
    """Kill-and-resume on memory://: the interrupted store opens at its last complete
    chunk row, and rerunning the call completes it equal to an uninterrupted ingest."""
    src = _write_csv(panel, tmp_path / "src")
    want = ql.data.open(ql.data.ingest(src, tmp_path / "whole", chunk_time=100,
                                       chunk_asset=3)).compute()
    calls, put = [0], store._put

    def failing_put(*a):
        calls[0] += 1
        if calls[0] == 3 * 2 * 5 + 5 + 3:        # row 3, second asset chunk, 3rd variable
            raise KeyboardInterrupt
        put(*a)

    with monkeypatch.context() as m:
        m.setattr(store, "_put", failing_put)
        with pytest.raises(KeyboardInterrupt):
            ql.data.ingest(src, url, chunk_time=100, chunk_asset=3)
    part = ql.data.open(url)
    assert part.sizes["time"] == 300
    assert fsspec.filesystem("memory").exists(url.split("://", 1)[1] + "/" + store.MARKER)
    xr.testing.assert_identical(part.compute().drop_attrs(),
                                want.isel(time=slice(0, 300)).drop_attrs())
    ql.data.ingest(src, url)                                          # resume
    got = ql.data.open(url)
    xr.testing.assert_identical(got.compute().drop_attrs(), want.drop_attrs())
    assert {k: v for k, v in got.attrs.items() if k != "store"} == \
        {k: v for k, v in want.attrs.items() if k != "store"}


def test_file_url_is_the_same_store_as_its_local_path(panel, tmp_path):
    src = _write_csv(panel.isel(asset=[0, 1]), tmp_path / "src")
    url = (tmp_path / "st").as_uri()
    assert ql.data.ingest(src, url, chunk_time=64) == url
    by_path = ql.data.open(tmp_path / "st").compute()
    by_url = ql.data.open(url).compute()
    xr.testing.assert_identical(by_url.drop_attrs(), by_path.drop_attrs())
    xr.testing.assert_identical(by_url.drop_attrs(), ql.data.load_csv(src).drop_attrs())
    assert not (tmp_path / "st" / ".staging").exists()
    ql.data.ingest(src, tmp_path / "st")                       # same files: nothing to do


def test_storage_options_reach_fsspec_and_zarr(panel, tmp_path, url, monkeypatch):
    """storage_options= are passed through unchanged, to the filesystem and to zarr, on
    ingest and on open (credentials, endpoint_url, ... on s3)."""
    import fsspec.core
    import zarr
    seen = []
    url_to_fs, open_group = fsspec.core.url_to_fs, zarr.open_group

    def spy_fs(u, **kw):
        seen.append(("fs", u, kw))
        return url_to_fs(u, **kw)

    def spy_zarr(s, **kw):
        seen.append(("zarr", s, kw.get("storage_options")))
        return open_group(s, **kw)

    monkeypatch.setattr(fsspec.core, "url_to_fs", spy_fs)
    monkeypatch.setattr(zarr, "open_group", spy_zarr)
    opts = {"skip_instance_cache": True}
    src = _write_csv(panel.isel(asset=[0]), tmp_path / "src")
    ql.data.ingest(src, url, storage_options=opts)
    ds = ql.data.open(url, storage_options=opts)
    assert ds.sizes["time"] == panel.sizes["time"]
    assert {(k, u) for k, u, o in seen if o == opts} == {("fs", url), ("zarr", url)}
    assert all(o == opts for _, _, o in seen)
    with pytest.raises(TypeError, match="storage_options must be a dict"):
        ql.data.open(url, storage_options="anon")


@pytest.mark.parametrize("proto, package", [("s3", "s3fs"), ("gs", "gcsfs"),
                                            ("abfs", "adlfs")])
def test_url_whose_protocol_package_is_missing_names_the_package(tmp_path, proto, package):
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed")
    src = tmp_path / "src"
    src.mkdir()
    (src / "A.csv").write_text("Date,Close\n2024-01-01,1\n2024-01-02,2\n")
    for call in (lambda: ql.data.ingest(src, f"{proto}://bucket/st"),
                 lambda: ql.data.open(f"{proto}://bucket/st", storage_options={"anon": True})):
        with pytest.raises(ModuleNotFoundError, match=rf"{proto}://.*'{package}'.*"
                                                      rf"pip install {package}"):
            call()


def test_unknown_protocol_and_bad_store_arguments_are_refused(tmp_path, url):
    with pytest.raises(ValueError, match=r"store 'nosuch://b/st'.*Protocol not known"):
        ql.data.open("nosuch://b/st")
    with pytest.raises(TypeError, match="store must be a path or an fsspec URL"):
        ql.data.open(42)
    with pytest.raises(DataError, match=rf"{url}: not a quantlab store"):
        ql.data.open(url)
    fs = fsspec.filesystem("memory")
    fs.pipe_file(url.split("://", 1)[1] + "/mine.txt", b"x")
    src = tmp_path / "src"
    src.mkdir()
    (src / "A.csv").write_text("Date,Close\n2024-01-01,1\n2024-01-02,2\n")
    with pytest.raises(DataError, match="exists and is not a quantlab store"):
        ql.data.ingest(src, url)
    assert np.array_equal(fs.cat_file(url.split("://", 1)[1] + "/mine.txt"), b"x")


def test_url_source_is_refused_naming_it_and_synthetic_panels_write_to_urls(tmp_path, url):
    """A URL as ingest's source (not its store) is a clear ValueError, not a local folder
    named 's3:'; the synthetic generator's writer takes a URL store like ingest."""
    with pytest.raises(ValueError, match=r"source 's3://bucket/files' is a URL"):
        ql.data.ingest("s3://bucket/files", tmp_path / "st")
    assert not (tmp_path / "st").exists() and not Path("s3:").exists()
    from quantlab.testing import synthetic_minute_panel
    mem = synthetic_minute_panel(3, 1, seed=2)
    assert synthetic_minute_panel(3, 1, store=url, seed=2, chunk_time=500) == url
    xr.testing.assert_identical(ql.data.open(url).compute().drop_attrs(), mem.drop_attrs())
