"""Session 49 outside probe: broken files, hostile names and faults through the file
and name paths (load_csv, ingest/open, deployments, reports). Each test is a fault the
probe found; fixtures are written to tmp_path."""
import os

import numpy as np
import pandas as pd
import pytest

import quantlab as ql

BARS = pd.DataFrame({"date": pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04"]),
                     "open": [10, 10.5, 11.], "high": [11, 11.2, 11.5],
                     "low": [9.5, 10.1, 10.8], "close": [10.5, 11, 11.2],
                     "volume": [1000, 1200, 900.]})


@pytest.mark.parametrize("zone", ["UTC", "Europe/London", "Asia/Tokyo"])
@pytest.mark.parametrize("extra", [False, True], ids=["bars", "with_text_column"])
def test_ingest_parquet_with_tz_aware_midnight_dates_reads_them_as_naive_utc(tmp_path, zone,
                                                                             extra):
    # a tz-aware date column whose times are all midnight (daily bars stamped in UTC) was
    # written as "2024-01-02Z" on the text path and refused as an unparsable date
    df = BARS.assign(date=BARS["date"].dt.tz_localize(zone))
    if extra:
        df = df.assign(note=["a", "b", "c"])
    df.to_parquet(tmp_path / "ACME.parquet")
    ds = ql.data.open(ql.store.ingest(tmp_path / "ACME.parquet", tmp_path / "store"))
    want = BARS["date"].dt.tz_localize(zone).dt.tz_convert("UTC").dt.tz_localize(None)
    np.testing.assert_array_equal(ds["time"].values, want.to_numpy("datetime64[ns]"))
    np.testing.assert_array_equal(ds["close"].values.ravel(), BARS["close"].to_numpy())


def test_ingest_long_parquet_with_tz_aware_utc_dates_reads_every_asset(tmp_path):
    df = pd.concat([BARS.assign(symbol="X"), BARS.assign(symbol="Y", close=BARS["close"] * 1.01,
                                                         high=BARS["high"] * 1.01)])
    df.assign(date=df["date"].dt.tz_localize("UTC")).to_parquet(tmp_path / "long.parquet")
    ds = ql.data.open(ql.store.ingest(tmp_path / "long.parquet", tmp_path / "store"))
    assert sorted(ds["asset"].values.tolist()) == ["X", "Y"]
    np.testing.assert_array_equal(ds["time"].values, BARS["date"].to_numpy("datetime64[ns]"))


# ---- deployment checkpoints: a segment or manifest of another deployment -------------

def _two_checkpoints(root):
    ds = ql.data.load().isel(time=slice(0, 100))
    deps = {}
    for name, fees in (("A", 0.001), ("B", 0.01)):   # same strategy, bars and universe
        dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
                        history=ds.isel(time=slice(0, 60)), fees=fees)
        dep.replay(ds.isel(time=slice(60, 80)), echo=None)
        dep.checkpoint(root / name)
        dep.replay(ds.isel(time=slice(80, 90)), echo=None)
        dep.checkpoint(root / name)                  # seg-1-0 and seg-1-1
        deps[name] = dep
    return ds, deps


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    root = tmp_path_factory.mktemp("two")
    return root, *_two_checkpoints(root)


@pytest.mark.parametrize("swapped", ["seg-1-0.npz", "seg-1-1.npz", "deployment.json"])
def test_a_checkpoint_file_of_another_deployment_swapped_in_is_refused(two, tmp_path,
                                                                       swapped):
    # B's segment (same shapes) in A's folder restored silently with B's state or
    # records; B's manifest over A's segments restored A's state with B's fees
    import shutil
    root, _, _ = two
    shutil.copytree(root / "A", tmp_path / "ck")
    shutil.copy(root / "B" / swapped, tmp_path / "ck" / swapped)
    with pytest.raises(ql.DataError, match=r"seg-1-[01]\.npz: not the segment the manifest "
                                           r"names \(its sha256 differs\)"):
        ql.Deployment.restore(tmp_path / "ck")


def test_segments_reordered_or_digests_edited_are_refused(two, tmp_path):
    import json
    import shutil
    root, _, _ = two
    shutil.copytree(root / "A", tmp_path / "ck")
    meta = json.loads((tmp_path / "ck" / "deployment.json").read_text())
    meta["digests"] = meta["digests"][:1]
    (tmp_path / "ck" / "deployment.json").write_text(json.dumps(meta))
    with pytest.raises(ql.DataError, match="'digests' names 1 segments, 'segments' says 2"):
        ql.Deployment.restore(tmp_path / "ck")
    meta["digests"] = "x"
    (tmp_path / "ck" / "deployment.json").write_text(json.dumps(meta))
    with pytest.raises(ql.DataError, match="'digests' must be a list of str"):
        ql.Deployment.restore(tmp_path / "ck")


@pytest.mark.parametrize("older", [False, True], ids=["digests", "older_without_digests"])
def test_restore_append_restore_continues_exactly(two, tmp_path, older):
    import json
    import shutil
    root, ds, deps = two
    shutil.copytree(root / "A", tmp_path / "ck")
    if older:     # a checkpoint written before the digests: restores and appends as before
        meta = json.loads((tmp_path / "ck" / "deployment.json").read_text())
        del meta["digests"], meta["digest"]       # (the manifest's own: session 51)
        (tmp_path / "ck" / "deployment.json").write_text(json.dumps(meta))
    back = ql.Deployment.restore(tmp_path / "ck")
    back.replay(ds.isel(time=slice(90, 100)), echo=None)
    back.checkpoint(tmp_path / "ck")
    meta = json.loads((tmp_path / "ck" / "deployment.json").read_text())
    assert ("digests" in meta) is not older and meta["segments"] == 3
    again = ql.Deployment.restore(tmp_path / "ck")
    np.testing.assert_array_equal(again.equity.values, back.equity.values)
    assert len(again.orders) == len(back.orders) > len(deps["A"].orders)


# ---- Parquet: epoch dates stored as floats ------------------------------------------

@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("name", ["date", "Open time", "timestamp"])
def test_ingest_parquet_with_float_epoch_dates_reads_the_epochs(tmp_path, unit, name):
    # pandas stores an integer column with a gap as float64; Arrow's CSV text of
    # 1704153600000.0 is '1.7041536e+12', refused as an "unparsable date" the file never
    # held (seconds only passed because Arrow writes them without an exponent)
    per = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit]
    epochs = BARS["date"].to_numpy("datetime64[ns]").astype(np.int64) // per
    BARS.assign(date=epochs.astype(np.float64)).rename(columns={"date": name}).to_parquet(
        tmp_path / "ACME.parquet")
    ds = ql.data.open(ql.store.ingest(tmp_path / "ACME.parquet", tmp_path / "store"))
    np.testing.assert_array_equal(ds["time"].values, BARS["date"].to_numpy("datetime64[ns]"))
    np.testing.assert_array_equal(ds["close"].values.ravel(), BARS["close"].to_numpy())


@pytest.mark.parametrize("value, shown", [(np.nan, "missing date ''"),
                                          (1704153600000.5, "'1704153600000.5'")])
def test_ingest_parquet_float_epoch_with_a_gap_or_a_fraction_names_that_row(tmp_path, value,
                                                                             shown):
    epochs = (BARS["date"].to_numpy("datetime64[ns]").astype(np.int64) // 10**6).astype(float)
    epochs[1] = value
    BARS.assign(date=epochs).to_parquet(tmp_path / "ACME.parquet")
    with pytest.raises(ql.DataError, match=r"ACME\.parquet: data row 2: .*" + shown) as e:
        ql.store.ingest(tmp_path / "ACME.parquet", tmp_path / "store")
    assert "e+12" not in str(e.value)


# ---- ingest on a full disk: the cause is said ---------------------------------------

_FSIZE = """
import resource, signal, sys
import quantlab.store as st
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # a write past the limit: EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))
try:
    st.ingest(sys.argv[1], sys.argv[2])
except OSError as e:
    print(e.errno, e)
"""


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGXFSZ"), reason="POSIX file limits")
def test_ingest_whose_staged_bars_cannot_be_written_says_why_and_resumes(tmp_path):
    # the staged bars went through NumPy's tofile, whose short write says only
    # "150000 requested and 70640 written" (no errno, not "No space left on device")
    import errno
    import subprocess
    import sys
    from pathlib import Path
    t = pd.date_range("2020-01-01", periods=20000, freq="1min")
    c = 100 + np.arange(t.size) * 1e-3
    pd.DataFrame({"Date": t.strftime("%Y-%m-%d %H:%M:%S"), "Open": c, "High": c + 1,
                  "Low": c - 1, "Close": c, "Volume": 1.0}).to_csv(tmp_path / "A.csv",
                                                                    index=False)
    root = Path(ql.__file__).parent.parent
    out = subprocess.run([sys.executable, "-c", _FSIZE, str(tmp_path / "A.csv"),
                          str(tmp_path / "store")], capture_output=True, text=True,
                         cwd=root, timeout=300)
    assert out.stdout.startswith(f"{errno.EFBIG} "), out.stdout + out.stderr
    assert f"into {tmp_path / 'store'}: File too large" in out.stdout
    assert "requested and" not in out.stdout
    ds = ql.data.open(ql.store.ingest(tmp_path / "A.csv", tmp_path / "store"))   # resumes
    np.testing.assert_array_equal(ds["close"].values.ravel(), c)


# ---- command-line values (-p, --set): what was typed ---------------------------------

@pytest.mark.parametrize("text, value", [
    ("010", 10), ("09:30", "09:30"), ("1:30", "1:30"), ("ON", "ON"), ("NO", "NO"),
    ("off", "off"), ("Run #2", "Run #2"), ("#1", "#1"), ("a: b", "a: b"), ("- x", "- x"),
    ("line1\nline2", "line1\nline2"), ("it's \"q\"", "it's \"q\""), ("1e5", 1e5),
    ("1.5e-3", 0.0015), ("-3", -3), ("1_000", 1000), ("true", True), ("False", False),
    ("null", None), ("2010-01-01", "2010-01-01"), ("'010'", "010"), ('"a: b"', "a: b"),
    ("[1, 010, '010', 1:30, ON, x]", [1, 10, "010", "1:30", "ON", "x"]),
    ("{window: 010}", {"window": 10})])
def test_p_values_are_what_was_typed_not_yaml_1_1(text, value):
    # YAML 1.1 read 010 as 8, 1:30 as 90, ON/NO as booleans, dropped '#2' as a comment,
    # made 'a: b' a dict and a newline a space: silently other parameters
    from quantlab import cli
    assert cli._parse_p([["x", text]]) == {"x": value}
    got = cli._parse_p([["x", text]])["x"]
    assert type(got) is type(value)


def test_set_values_are_read_the_same_way():
    from quantlab import cli
    assert cli._set_value("fees", "010") == 10 and cli._set_value("fees", "1e-3") == 0.001
    assert cli._set_value("execution", "next_open") == "next_open"
    with pytest.raises(ValueError, match=r"-p x '\[1': not YAML"):
        cli._parse_p([["x", "[1"]])


# ---- result summary: bidi controls in asset names ------------------------------------

@pytest.mark.parametrize("control", ["\u202e", "\u202b", "\u2067", "\u200f"])
def test_summary_shows_bidi_controls_in_asset_names_as_escapes(control):
    # an unterminated right-to-left override in a name reversed the rest of its row
    # where the text is shown bidi-aware (a notebook): "-38.2 %" read as "% 2.83-"
    import xarray as xr
    ds = ql.data.load().isel(time=slice(0, 120), asset=[0, 2])
    ds = ds.assign_coords(asset=[f"{control}XYZ", "plain"])
    sig = xr.DataArray(np.array([0.5, 1.0]), dims="w", coords={"w": [0.5, 1.0]}) \
        * (ds["close"] * 0 + 1)
    for res in (ql.backtest(ds, ds["close"] * 0 + 0.5), ql.backtest(ds, sig)):
        for text in (ql.tearsheet.summary_text(res), ql.tearsheet.summary_html(res)):
            assert control not in text
            assert f"\\u{ord(control):04x}XYZ" in text and "plain" in text
        assert "asset" in ql.tearsheet.summary_text(res)      # the index names stay
    assert " w " in ql.tearsheet.summary_text(res) or "w\n" in ql.tearsheet.summary_text(res)


# ---- Parquet with a column twice -----------------------------------------------------

@pytest.mark.parametrize("twice", [("close",), ("date",), ("close", "volume")])
def test_ingest_parquet_with_a_column_twice_names_the_file_and_column(tmp_path, twice):
    # pyarrow's "Multiple matches for FieldRef.Name(close) in date: timestamp[us] ...
    # __fragment_index: int32 ..." before
    import pyarrow as pa
    import pyarrow.parquet as pq
    cols = {c: pa.array(BARS[c]) for c in BARS}
    names = list(BARS) + list(twice)
    pq.write_table(pa.table([cols[c] for c in names], names=names), tmp_path / "ACME.parquet")
    want = ", ".join(repr(c) for c in sorted(twice))
    with pytest.raises(ql.DataError, match=rf"ACME\.parquet: column\(s\) {want} appear more "
                                           r"than once; keep one of each") as e:
        ql.store.ingest(tmp_path / "ACME.parquet", tmp_path / "store")
    assert "FieldRef" not in str(e.value)


def test_params_file_values_are_read_like_p_values(tmp_path):
    # the grid file was YAML 1.1 too: window: [010] ran with 8, symbol: [ON, NO] with
    # True and False; comments, quotes and lists are YAML as before
    import nbformat
    from quantlab import cli
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "symbol = 'X'\nwindow = 1\nat = '00:00'", metadata={"tags": ["parameters"]})])
    nbformat.write(nb, tmp_path / "n.ipynb")
    (tmp_path / "grid.yaml").write_text("# a grid\nsymbol: [ON, 'NO']\nwindow: [010, 2]  # two\n"
                                        "at: [9:30]\n")
    a = cli.parser().parse_args(["run-suite", str(tmp_path / "n.ipynb"), "--params-file",
                                 str(tmp_path / "grid.yaml"), "--out", str(tmp_path / "o")])
    runs, _ = cli._plan(a, tmp_path / "none.yaml", tmp_path / "o", False)
    assert [r.parameters for r in runs] == [
        {"symbol": s, "window": w, "at": "9:30"} for s in ("ON", "NO") for w in (10, 2)]


# ---- a store or checkpoint folder that cannot be made ---------------------------------

def test_ingest_into_a_folder_that_cannot_be_made_names_the_ingest(tmp_path):
    # a bare "[Errno 20] Not a directory: '.../f/store'" from os.makedirs before
    import errno
    (tmp_path / "A.csv").write_text("Date,Close\n2024-01-02,1\n2024-01-03,2\n")
    (tmp_path / "f").write_text("a file")
    for store, code in ((tmp_path / "f" / "store", errno.ENOTDIR),
                        (tmp_path / ("x" * 300), errno.ENAMETOOLONG)):
        with pytest.raises(OSError, match=rf"ingest of {tmp_path / 'A.csv'} into ") as e:
            ql.store.ingest(tmp_path / "A.csv", store)
        assert e.value.errno == code


def test_checkpoint_into_a_folder_that_cannot_be_made_names_the_checkpoint(tmp_path):
    import errno
    ds = ql.data.load().isel(time=slice(0, 62))
    dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
                    history=ds.isel(time=slice(0, 60)))
    # a name longer than a file system takes is refused before the disk is asked
    # (session 52: user_path, naming the argument)
    with pytest.raises(ValueError, match=r"checkpoint path: the name 'x+\.\.\.x+' is 300 "
                                         r"bytes long, more than the 255"):
        dep.checkpoint(tmp_path / ("x" * 300))

    def refuse(self, *a, **k):   # any other OSError of making the folder
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), str(self))
    with pytest.MonkeyPatch.context() as m:
        m.setattr(type(tmp_path), "mkdir", refuse)
        with pytest.raises(OSError, match=r"checkpoint to .*ck: File name too long") as e:
            dep.checkpoint(tmp_path / "ck")
    assert e.value.errno == errno.ENAMETOOLONG
