"""Session 51 outside probe: the workflow's files and processes (stores, checkpoints,
reports, CSV loading) fed broken or unusual files. Each test is a fault the probe found."""
import warnings

import numpy as np
import pandas as pd
import pytest

import quantlab as ql
from quantlab.errors import DataError

HEAD = "Date,Open,High,Low,Close,Volume\n"


def _rows(dates, close=10.0):
    return "".join(f"{d},{close},{close + 1},{close - 1},{close},100\n" for d in dates)


def _times(ds, asset):
    close = ds["close"].sel(asset=asset).to_series().dropna()
    return [str(t)[:10] for t in close.index]


# ---- load_csv: one directory, one day/month order ------------------------------------

def test_load_csv_directory_reads_ambiguous_dates_in_the_order_a_sibling_needs(tmp_path):
    # A.csv's 13/01/2020 can only be day-first; B.csv's dates (all days <= 12) fit both
    # orders and were read month-first, each file on its own: B's 02/01/2020 became
    # 1 February and 03/02/2020 2 March, its bars months away from A's on one time axis
    (tmp_path / "A.csv").write_text(HEAD + _rows(["13/01/2020", "14/01/2020", "03/02/2020"]))
    (tmp_path / "B.csv").write_text(HEAD + _rows(["02/01/2020", "03/01/2020", "03/02/2020"]))
    # ISO 8601 (year first) is year-month-day beside them: never read year-day-month
    (tmp_path / "C.csv").write_text(HEAD + _rows(["2020-01-02", "2020-02-03"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ql.calendar.CalendarWarning)
        ds = ql.data.load_csv(tmp_path)
    assert _times(ds, "A") == ["2020-01-13", "2020-01-14", "2020-02-03"]
    assert _times(ds, "B") == ["2020-01-02", "2020-01-03", "2020-02-03"]
    assert _times(ds, "C") == ["2020-01-02", "2020-02-03"]
    assert ds.sizes["time"] == 5


def test_load_csv_directory_of_ambiguous_files_only_stays_month_first(tmp_path):
    # nothing says day-first: the documented month-first reading of every file
    (tmp_path / "A.csv").write_text(HEAD + _rows(["01/02/2020", "01/03/2020"]))
    (tmp_path / "B.csv").write_text(HEAD + _rows(["01/02/2020", "01/06/2020"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ql.calendar.CalendarWarning)
        ds = ql.data.load_csv(tmp_path)
    assert _times(ds, "A") == ["2020-01-02", "2020-01-03"]
    assert _times(ds, "B") == ["2020-01-02", "2020-01-06"]


def test_load_csv_directory_mixing_day_first_and_month_first_files_is_refused(tmp_path):
    # 13/01/2020 (day-first only) beside 01/13/2020 (month-first only): loaded as two
    # assets on one axis without a word before
    (tmp_path / "A.csv").write_text(HEAD + _rows(["13/01/2020", "14/01/2020"]))
    (tmp_path / "B.csv").write_text(HEAD + _rows(["01/13/2020", "01/14/2020"]))
    with pytest.raises(DataError, match=r"A\.csv writes dates day-first .* but .*B\.csv "
                                        r"month-first"):
        ql.data.load_csv(tmp_path)


def test_ingest_reads_ambiguous_dates_in_the_order_a_sibling_needs(tmp_path):
    # the same fault through ql.data.ingest (each file staged on its own): B's bars were
    # stored at 2020-02-01 and 2020-03-01 instead of 2 and 3 January
    src = tmp_path / "src"
    src.mkdir()
    (src / "A.csv").write_text(HEAD + _rows(["13/01/2020", "14/01/2020", "03/02/2020"]))
    (src / "B.csv").write_text(HEAD + _rows(["02/01/2020", "03/01/2020", "03/02/2020"]))
    (src / "C.csv").write_text(HEAD + _rows(["2020/01/02", "2020/02/03"]))   # year first
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ql.calendar.CalendarWarning)
        ql.data.ingest(src, tmp_path / "st", progress=False)
        ds = ql.data.open(tmp_path / "st").compute()
    assert _times(ds, "A") == ["2020-01-13", "2020-01-14", "2020-02-03"]
    assert _times(ds, "B") == ["2020-01-02", "2020-01-03", "2020-02-03"]
    assert _times(ds, "C") == ["2020-01-02", "2020-02-03"]
    assert ds.sizes["time"] == 5


def test_ingest_append_needing_day_first_after_a_month_first_file_is_refused(tmp_path):
    # the store read B.csv month-first (nothing said otherwise); a later file that can
    # only be day-first would put its 02/01/2020 on 2 January beside B's 1 February
    for name, dates in (("s1/B.csv", ["01/02/2020", "01/03/2020"]),
                        ("s2/C.csv", ["01/02/2020", "13/02/2020"])):
        (tmp_path / name).parent.mkdir()
        (tmp_path / name).write_text(HEAD + _rows(dates))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ql.calendar.CalendarWarning)
        ql.data.ingest(tmp_path / "s1", tmp_path / "st", progress=False)
        with pytest.raises(DataError, match=r"B\.csv \(in the store .*st\) was ingested "
                                            r"month-first .*C\.csv needs day-first"):
            ql.data.ingest(tmp_path / "s2", tmp_path / "st", progress=False)
        ds = ql.data.open(tmp_path / "st").compute()
    assert _times(ds, "B") == ["2020-01-02", "2020-01-03"]
    assert list(ds.indexes["asset"]) == ["B"]


@pytest.mark.parametrize("dates, want", [
    (["02.01.2020", "03.01.2020"], ["2020-01-02", "2020-01-03"]),              # DD.MM.YYYY
    (["02.01.2020 09:30", "03.01.2020 09:30"], ["2020-01-02", "2020-01-03"]),
    (["01.13.2020", "01.14.2020"], ["2020-01-13", "2020-01-14"]),   # only month-first fits
    (["2020.01.02", "2020.01.03"], ["2020-01-02", "2020-01-03"]),              # year first
    (["01/02/2020", "01/03/2020"], ["2020-01-02", "2020-01-03"]),   # slashes: month-first
], ids=["dotted", "dotted_time", "dotted_month_first", "dotted_year_first", "slashed"])
def test_load_csv_dotted_dates_are_day_first(tmp_path, dates, want):
    # 02.01.2020 (the German/European DD.MM.YYYY export) was read month-first as
    # 1 February: every bar of a file whose days are all <= 12 silently moved
    path = tmp_path / "X.csv"
    path.write_text(HEAD + _rows(dates))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ql.calendar.CalendarWarning)
        ds = ql.data.load_csv(path)
    assert _times(ds, "X") == want


# ---- deployment: a bar without a time -------------------------------------------------

@pytest.fixture(scope="module")
def equities70():
    return ql.data.load().isel(time=slice(0, 75))


def _deployment(ds):
    return ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
                     history=ds.isel(time=slice(0, 69)))


def test_replay_refuses_a_bar_without_a_time_and_keeps_time_order(equities70):
    # a replayed bar stamped NaT was traded (equity 400,298, 3 orders, last_bar NaT), and
    # as NaT compares False to every time, any bar after it passed the time-order check
    ds = equities70
    times = ds.time.values[69:72].copy()
    times[1] = np.datetime64("NaT", "ns")
    dep = _deployment(ds)
    with pytest.raises(DataError, match=r"missing time \(NaT\) after the bar at "
                                        r"2000-06-08"):
        dep.replay(ds.isel(time=slice(69, 72)).assign_coords(time=times))
    assert str(dep.last_bar)[:10] == "2000-06-08"
    assert len(dep.equity) == 1
    with pytest.raises(DataError, match="out of order"):      # time order still holds
        dep.on_bar(ds.isel(time=60))
    status = dep.on_bar(ds.isel(time=70))                      # the next bar trades
    assert str(status["time"])[:10] == str(ds.time.values[70])[:10]


@pytest.mark.parametrize("time, message", [
    (np.datetime64("NaT", "ns"), r"missing time \(NaT\)"),
    ("2000-06-08", r"time must be a datetime64 date, got '2000-06-08' \(<U10\)"),
    (1234, r"time must be a datetime64 date, got 1234 \(int64\)"),
], ids=["nat", "text", "number"])
def test_on_bar_without_a_date_is_a_data_error_and_changes_nothing(equities70, time,
                                                                    message):
    # NaT: TypeError "'float' object cannot be interpreted as an integer"; a text or
    # number time: pandas' "Cannot convert input [...] of type ndarray to Timestamp"
    dep = _deployment(equities70)
    before = (dep.last_bar, len(dep.orders))
    with pytest.raises(DataError, match=message):
        dep.on_bar(equities70.isel(time=69).assign_coords(time=time))
    assert (dep.last_bar, len(dep.orders)) == before


# ---- store: a store the disk will not let us read ------------------------------------

@pytest.fixture
def small_store(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    idx = pd.date_range("2020-01-01", periods=40, freq="D")
    for i, a in enumerate(["AAA", "BBB", "CCC"]):
        c = 100 + i + np.arange(40.0)
        pd.DataFrame({"Date": idx.strftime("%Y-%m-%d"), "Open": c, "High": c + 1,
                      "Low": c - 1, "Close": c, "Volume": 1000.0}).to_csv(
            src / f"{a}.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ql.calendar.CalendarWarning)
        ql.data.ingest(src, tmp_path / "st", chunk_time=16, chunk_asset=2, progress=False)
    return tmp_path / "st"


def _deny(monkeypatch, cls, name, match):
    """``cls.name`` (a method reading a path: its first argument, else the object)
    raising permission denied for the paths ``match`` accepts."""
    orig = getattr(cls, name)

    def denied(self, *a, **k):
        path = str(a[0]) if a else str(self)
        if match(path):
            raise PermissionError(13, "Permission denied", path)
        return orig(self, *a, **k)
    monkeypatch.setattr(cls, name, denied)


def test_open_of_a_store_whose_metadata_cannot_be_read_is_no_corrupt_store(
        small_store, monkeypatch):
    # close/zarr.json unreadable (permission denied) was "corrupt store metadata
    # (PermissionError ...); re-run ingest into a new store": an intact store rebuilt
    import pathlib
    _deny(monkeypatch, pathlib.Path, "read_bytes",
          lambda p: p.endswith("close/zarr.json"))
    with pytest.raises(PermissionError, match=r"reading the store .*st: Permission denied"
                                              r": .*close/zarr\.json'; the store is "
                                              r"unchanged") as got:
        ql.data.open(small_store)
    assert "corrupt" not in str(got.value) and got.value.errno == 13


def test_open_of_a_store_whose_marker_cannot_be_read_names_the_store(small_store,
                                                                     monkeypatch):
    from fsspec.implementations.local import LocalFileSystem
    _deny(monkeypatch, LocalFileSystem, "cat_file",
          lambda p: p.endswith("quantlab_store.json"))
    with pytest.raises(PermissionError, match=r"reading the store .*st: Permission denied"):
        ql.data.open(small_store)


@pytest.mark.parametrize("errno_, kind", [(13, PermissionError), (5, OSError)])
def test_a_chunk_the_disk_cannot_read_names_the_store_variable_and_rows(
        small_store, monkeypatch, errno_, kind):
    # a chunk read refused by the disk surfaced from dask's compute as a bare
    # "[Errno 13] Permission denied: PosixPath('.../close/c/1/1')"
    import os
    orig = os.open

    def denied(path, *a, **k):
        if str(path).endswith("close/c/1/1"):
            raise OSError(errno_, os.strerror(errno_), path)
        return orig(path, *a, **k)
    ds = ql.data.open(small_store)
    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(kind, match=r"reading the store .*st, variable 'close', rows "
                                   r"16:32: .*close/c/1/1'") as got:
        ds["close"].sum().compute()
    assert got.value.errno == errno_
    monkeypatch.setattr(os, "open", orig)     # readable again: the same store
    assert float(ds["close"].sum().compute()) == 3 * 40 * 101 + 3 * 780


# ---- CLI: configuration files that are no YAML/JSON text -------------------------------

NOTEBOOK = "notebooks/00_quickstart.ipynb"


@pytest.mark.parametrize("command", ["run-suite", "report"])
def test_cli_suite_config_that_is_not_yaml_is_one_line_and_exit_2(tmp_path, capsys,
                                                                  command):
    # a --config with a YAML syntax error was a yaml.parser.ParserError traceback, exit 1
    from quantlab import cli
    cfg = tmp_path / "suite.yaml"
    cfg.write_text("runs: [a\n")
    code = cli.main([command, "--config", str(cfg), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"error: {cfg}: not YAML (while parsing a flow sequence" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", ["--config", "--params-file", "--params"])
def test_cli_files_that_are_not_utf8_name_the_option_and_file(tmp_path, capsys, option):
    # "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte": no word
    # of which file (a UTF-16 export of a parameter grid, a Latin-1 config)
    from quantlab import cli
    bad = tmp_path / "bad.txt"
    bad.write_bytes("x: [1, 2]\n".encode("utf-16"))
    if option == "--params":
        argv = ["deploy", "volatility_regime", "--params", str(bad), "--replay", "equities"]
    else:
        argv = ["run-suite", option, str(bad), NOTEBOOK, "--out", str(tmp_path / "out")]
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2
    named = str(bad) if option == "--config" else f"{option} {bad}"
    assert f"error: {named}: not UTF-8 text (byte 0: invalid start byte)" in err


def test_tick_engine_config_that_is_not_utf8_names_the_file(tmp_path):
    # the same fault in TickEngine(config=path): a bare UnicodeDecodeError
    bad = tmp_path / "engine.yaml"
    bad.write_bytes("risk:\n  max_position: 10\n".encode("utf-16"))
    with pytest.raises(ValueError, match=r"engine\.yaml: not UTF-8 text \(byte 0: invalid "
                                         r"start byte\)"):
        ql.engine.TickEngine(config=bad)
    good = tmp_path / "good.yaml"
    good.write_text("risk:\n  max_position: 10\n", encoding="utf-8")
    assert ql.engine.TickEngine(config=good).config["risk"]["max_position"] == 10


# ---- deployment checkpoints: a manifest edited to values that pass every check -------

@pytest.fixture(scope="module")
def checkpointed(equities70, tmp_path_factory):
    dep = _deployment(equities70)
    dep.replay(equities70.isel(time=slice(69, 73)), echo=None)
    path = dep.checkpoint(tmp_path_factory.mktemp("ck") / "ck")
    return path, dep


def _manifest_edited(src, dst, edit):
    import json
    import shutil
    shutil.copytree(src, dst)
    meta = json.loads((dst / "deployment.json").read_text())
    edit(meta)
    (dst / "deployment.json").write_text(json.dumps(meta))
    return dst


@pytest.mark.parametrize("edit", [
    lambda m: m.update(peak=m["peak"] + 500_000.0),      # one digit: 400298 -> 900298
    lambda m: m.update(params={}),                       # the strategy's defaults
    lambda m: m.update(killed=True),
    lambda m: m["risk"].update(max_drawdown_pct=0.5),
    lambda m: m.update(digest=None),
], ids=["peak", "params_dropped", "killed", "risk_limit", "digest_nulled"])
def test_a_checkpoint_manifest_edited_to_valid_values_is_refused(checkpointed, tmp_path,
                                                                 edit):
    # each restored without a word: a peak of 900,298 for 400,298 (one digit) is a 55 %
    # drawdown to the kill switch, params {} traded volatility_regime's defaults,
    # killed=True stopped trading, a looser drawdown limit
    path, dep = checkpointed
    bad = _manifest_edited(path, tmp_path / "ck", edit)
    with pytest.raises(DataError, match=r"ck/deployment\.json: its contents are not those "
                                        r"written \(edited or damaged since"):
        ql.Deployment.restore(bad)


def test_a_checkpoint_manifest_without_its_digest_restores_as_before(checkpointed,
                                                                     tmp_path):
    # written by a quantlab before the digest: restored, and the next checkpoint has one
    path, dep = checkpointed
    old = _manifest_edited(path, tmp_path / "ck", lambda m: m.pop("digest"))
    back = ql.Deployment.restore(old)
    assert back.equity_now() == dep.equity_now() and len(back.orders) == len(dep.orders)
    assert back.strategy.params == dep.strategy.params
    back.checkpoint(old)
    import json
    assert "digest" in json.loads((old / "deployment.json").read_text())
    assert ql.Deployment.restore(old).equity_now() == dep.equity_now()


@pytest.mark.parametrize("loader", ["load_csv", "ingest"])
def test_a_directory_of_dotted_dates_reads_ambiguous_files_month_first_when_one_must(
        tmp_path, loader):
    # dotted dates default day-first; a sibling that can only be month-first (01.13.2020)
    # decides for the directory as a day-first-only one does
    src = tmp_path / "src"
    src.mkdir()
    (src / "A.csv").write_text(HEAD + _rows(["01.13.2020", "01.14.2020"]))
    (src / "B.csv").write_text(HEAD + _rows(["01.02.2020", "01.03.2020"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ql.calendar.CalendarWarning)
        if loader == "load_csv":
            ds = ql.data.load_csv(src)
        else:
            ql.data.ingest(src, tmp_path / "st", progress=False)
            ds = ql.data.open(tmp_path / "st").compute()
    assert _times(ds, "A") == ["2020-01-13", "2020-01-14"]
    assert _times(ds, "B") == ["2020-01-02", "2020-01-03"]
