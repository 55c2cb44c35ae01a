"""Hostile names and corrupt files through the public paths (load_csv, ingest/open,
backtest + metrics, deploy checkpoint/restore, tear sheet HTML, report run names).

Only cases that already behave are here: each gives a clear error naming the problem,
or the same numbers as the same data under plain names. Failing cases are reported to
their owners (session 36 probe), not tested here.
"""
import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql

HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"

# names an outside tester tries: spaces, unicode, 250 characters,
# case-only twins, names that look like numbers, dates, NaN, booleans, paths, markup
# ("Nestle\u0301", NFD, reads as "Nestlé": its own tests below)
NAMES = ["AAPL US", "Nestlé", "日本株", "🚀", "A" * 250, "AAPL", "aapl",
         "001", "1", "1.0", "1e5", "2020-01-01", "NaN", "None", "True", "inf", "-",
         "BRK.", "../x", "a/b", "..", ".X", "C:\\evil", "A\nB", "<img src=x onerror=alert(1)>"]
FILE_NAMES = [n for n in NAMES if "/" not in n and "\n" not in n and n != ".." and n[0] != "."]


def _rows(n=30, seed=0):
    rng = np.random.default_rng(seed)
    t = pd.bdate_range("2020-01-01", periods=n)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return [f"{d:%Y-%m-%d},{x:.4f},{x * 1.01:.4f},{x * 0.99:.4f},{x:.4f},{x:.4f},1000"
            for d, x in zip(t, c)]


def _closes(seed, n=30):
    return np.array([float(r.split(",")[4]) for r in _rows(n, seed)])


def _yahoo(seed=0, nl="\n"):
    return nl.join([HEADER] + _rows(seed=seed)) + nl


def _long(path, names):
    lines = ["Date,Symbol,Open,High,Low,Close,Volume"]
    for i, n in enumerate(names):
        q = '"' + n.replace('"', '""') + '"' if set(n) & set(',"\n') else n
        lines += [",".join([p[0], q, *p[1:5], p[6]]) for p in (r.split(",") for r in _rows(seed=i))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _folder(tmp_path, names):
    d = tmp_path / "src"
    d.mkdir()
    for i, n in enumerate(names):
        (d / f"{n}.csv").write_text(_yahoo(seed=i), encoding="utf-8")
    return d


def _assert_named_closes(ds, names):
    """Each asset keeps its exact name and its own file's closes."""
    assert sorted(map(str, ds.asset.values)) == sorted(names)
    for i, n in enumerate(names):
        np.testing.assert_allclose(ds["close"].sel(asset=n).values, _closes(i), rtol=1e-12)


# ---- load_csv: corrupt files -----------------------------------------------------------

TEXT = _yahoo().encode()
CORRUPT = {
    "empty": (b"", "empty file"),
    "blank_lines_only": (b"\n\n\n", "empty file"),
    "header_only": (HEADER.encode() + b"\n", "no data rows"),
    "truncated_mid_row": (TEXT[:-20], "data row 30 has 5 fields, the header has 7"),
    "nul_byte": (TEXT[:200] + b"\x00" + TEXT[200:], "NUL byte at offset 200"),
    "utf16_without_bom": (_yahoo().encode("utf-16-le"), "NUL byte at offset 1"),
    "latin1": ((HEADER + ",Notéz\n").encode("latin-1") + TEXT[len(HEADER) + 1:],
               "not UTF-8 text: byte 0xe9"),
    "repeated_header_row": (("\n".join([HEADER, *_rows()[:10], HEADER, *_rows()[10:]]) + "\n")
                            .encode(), "data row 11: unparsable date 'Date'"),
    "thousands_separator": ((HEADER + "\n" + "\n".join(r.rsplit(",", 1)[0] + ',"1,000"'
                                                       for r in _rows()) + "\n").encode(),
                            "unparsable number '1,000'"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_load_csv_corrupt_file_is_a_data_error_naming_file_and_problem(tmp_path, case):
    data, message = CORRUPT[case]
    f = tmp_path / "X.csv"
    f.write_bytes(data)
    with pytest.raises(ql.DataError, match=str(f)) as e:
        ql.data.load_csv(f)
    assert message in str(e.value)


def test_load_csv_truncated_gzip_is_a_data_error(tmp_path):
    f = tmp_path / "X.csv.gz"
    f.write_bytes(gzip.compress(TEXT)[:-30])
    with pytest.raises(ql.DataError, match="corrupt gzip data"):
        ql.data.load_csv(f)


@pytest.mark.parametrize("case", ["bom", "crlf", "cr", "utf16_bom", "quoted_header",
                                  "trailing_commas"])
def test_load_csv_harmless_variants_read_the_same_numbers(tmp_path, case):
    data = {"bom": b"\xef\xbb\xbf" + TEXT, "crlf": _yahoo(nl="\r\n").encode(),
            "cr": _yahoo(nl="\r").encode(), "utf16_bom": _yahoo().encode("utf-16"),
            "quoted_header": (",".join(f'"{c}"' for c in HEADER.split(",")) + "\n"
                              + "\n".join(_rows()) + "\n").encode(),
            "trailing_commas": (HEADER + ",\n" + "\n".join(r + "," for r in _rows())
                                + "\n").encode()}[case]
    f = tmp_path / "X.csv"
    f.write_bytes(data)
    ds = ql.data.load_csv(f)
    np.testing.assert_allclose(ds["close"].sel(asset="X").values, _closes(0), rtol=1e-12)
    assert ds.sizes["time"] == 30


# ---- load_csv: hostile names -----------------------------------------------------------

def test_load_csv_folder_keeps_hostile_file_names_exactly(tmp_path):
    _assert_named_closes(ql.data.load_csv(_folder(tmp_path, FILE_NAMES)), FILE_NAMES)


@pytest.mark.parametrize("hidden", [".X", ".."])
def test_load_csv_folder_skips_hidden_files_with_a_warning_naming_them(tmp_path, hidden):
    d = _folder(tmp_path, ["MSFT", hidden])
    with pytest.warns(UserWarning, match=r"skipped 1 entries .*" + hidden.replace(".", r"\.")):
        ds = ql.data.load_csv(d)
    assert list(ds.asset.values) == ["MSFT"]


def test_load_csv_long_table_keeps_hostile_symbols_exactly(tmp_path):
    names = NAMES + ['"A,B"', "A'B", "tab\there"]
    _assert_named_closes(ql.data.load_csv(_long(tmp_path / "long.csv", names)), names)


@pytest.mark.parametrize("names, message", [
    (["", "MSFT"], "data row 1: empty asset name"),
    ([" ", "MSFT"], "data row 1: empty asset name"),
    ([" AAPL", "AAPL "], "asset 'AAPL' at 2020-01-01 appears in data rows 1, 31"),
])
def test_load_csv_long_table_refuses_empty_and_space_twin_symbols(tmp_path, names, message):
    with pytest.raises(ql.DataError, match=re.escape(message)):
        ql.data.load_csv(_long(tmp_path / "long.csv", names))


@pytest.mark.parametrize("files, message", [
    (["AAPL.csv", "AAPL.CSV"], "both hold asset 'AAPL'"),
    ([" AAPL.csv", "AAPL.csv"], "both hold asset 'AAPL'"),
])
def test_load_csv_folder_refuses_two_files_of_one_asset(tmp_path, files, message):
    for i, f in enumerate(files):
        (tmp_path / f).write_text(_yahoo(seed=i))
    with pytest.raises(ql.DataError, match=message):
        ql.data.load_csv(tmp_path)


@pytest.mark.parametrize("cols, message", [
    (["AAPL", "AAPL"], "columns 2 ('AAPL') and 3 ('AAPL') both read as 'AAPL'"),
    (["A B", " A B "], "both read as 'A B'"),
    (["", "x"], "column 2 of the wide table has no name"),
])
def test_load_csv_wide_table_refuses_twin_and_empty_asset_columns(tmp_path, cols, message):
    f = tmp_path / "w.csv"
    f.write_text("Date," + ",".join(cols) + "\n2020-01-02,1,2\n2020-01-03,1,2\n")
    with pytest.raises(ql.DataError, match=re.escape(message)):
        ql.data.load_csv(f)


def test_load_csv_wide_table_keeps_number_date_and_case_twin_names(tmp_path):
    cols = ["AAPL", "aapl", "A.1", "1", "1.0", "NaN", "2020-01-01", "../x", "a/b"]
    f = tmp_path / "w.csv"
    t = pd.bdate_range("2020-01-01", periods=5)
    f.write_text("Date," + ",".join(cols) + "\n" + "".join(
        f"{d:%Y-%m-%d}," + ",".join(str(100 + i + 10 * k) for k in range(len(cols))) + "\n"
        for i, d in enumerate(t)))
    ds = ql.data.load_csv(f)
    assert {str(a): float(ds["close"].sel(asset=a).isel(time=0)) for a in ds.asset.values} \
        == {c: 100.0 + 10 * k for k, c in enumerate(cols)}


# ---- ingest / open ---------------------------------------------------------------------

def test_ingest_hostile_names_equal_load_csv_and_write_only_in_the_store(tmp_path):
    src = _folder(tmp_path, FILE_NAMES)
    store = tmp_path / "out" / "store"
    ql.data.ingest(src, store)
    ds = ql.data.open(store).compute()
    ref = ql.data.load_csv(src)
    np.testing.assert_array_equal(ds["close"].values,
                                  ref["close"].sel(asset=ds.asset.values).values)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["store"]
    _assert_named_closes(ds, FILE_NAMES)


def test_ingest_long_table_with_path_like_symbols_writes_nothing_outside(tmp_path):
    names = ["a/b", "../x", "..", "AAPL", "aapl", "A\nB"]
    store = tmp_path / "out" / "store"
    ql.data.ingest(_long(tmp_path / "long.csv", names), store)
    _assert_named_closes(ql.data.open(store).compute(), names)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["store"]
    assert not any(".." in p.name or p.name in ("x", "b") for p in store.rglob("*"))


_T = pd.bdate_range("2020-01-01", periods=30)
_GOOD = pd.DataFrame({"Date": _T, "Open": 1.0, "High": 2.0, "Low": 0.5, "Close": 1.5,
                      "Volume": 10.0})
PARQUET = {
    "no_close": (_GOOD.drop(columns="Close"), "missing required column 'close'"),
    "no_date": (_GOOD.drop(columns="Date"), "missing required column 'date'"),
    "close_text": (_GOOD.assign(Close="abc"), "column 'close' of asset 'X': unparsable "
                                              "number 'abc'"),
    "close_bool": (_GOOD.assign(Close=True), "unparsable number 'true'"),
    "date_int": (_GOOD.assign(Date=np.arange(30)), "data row 1: unparsable date '0'"),
    "empty": (_GOOD.iloc[:0], "no data rows"),
    "case_twin_columns": (_GOOD.assign(close=2.0), "('Close') and 7 ('close') both read as"),
    "truncated": (_GOOD.to_parquet()[:500], "cannot read as Parquet"),
    "zero_bytes": (b"", "cannot read as Parquet"),
    "csv_text_inside": (TEXT, "cannot read as Parquet"),
}


@pytest.mark.parametrize("case", sorted(PARQUET))
def test_ingest_parquet_with_wrong_schema_or_bytes_is_a_data_error(tmp_path, case):
    data, message = PARQUET[case]
    f = tmp_path / "X.parquet"
    if isinstance(data, bytes):
        f.write_bytes(data)
    else:
        data.to_parquet(f)
    with pytest.raises(ql.DataError, match=str(f)) as e:
        ql.data.ingest(f, tmp_path / "store")
    assert message in str(e.value)


def test_open_refuses_a_folder_that_is_not_a_store(tmp_path):
    with pytest.raises(ql.DataError, match="not a quantlab store"):
        ql.data.open(tmp_path)


# ---- backtest + metrics ----------------------------------------------------------------

@pytest.fixture(scope="module")
def panels():
    """The same 26-asset panel under plain names and under hostile names."""
    base = ql.data.load().isel(time=slice(0, 150))
    k = int(np.ceil(len(NAMES) / base.sizes["asset"]))
    ds = xr.concat([base.assign_coords(asset=[f"{a}_{i}" for a in base.asset.values])
                    for i in range(k)], "asset").isel(asset=slice(0, len(NAMES)))
    return (ds.assign_coords(asset=[f"x{i:02d}" for i in range(len(NAMES))]),
            ds.assign_coords(asset=NAMES))


def _bt(ds, **kw):
    return ql.backtest(ds, ql.strategies.get("volatility_regime").signal(ds), fees=0.001,
                       **kw)


@pytest.mark.parametrize("group", [False, True])
def test_backtest_metrics_under_hostile_names_equal_plain_names(panels, group):
    plain, hostile = (_bt(p, group=group) for p in panels)
    mp, mh = plain.metrics(), hostile.metrics()
    for v in mp.data_vars:
        np.testing.assert_array_equal(mp[v].values, mh[v].values)
    if not group:
        assert list(map(str, mh.asset.values)) == NAMES
    rename = dict(zip(map(str, panels[0].asset.values), NAMES))
    tp, th = plain.trades, hostile.trades
    assert len(th) == len(tp) > 0
    np.testing.assert_array_equal(th["pnl"].values, tp["pnl"].values)
    assert [str(a) for a in th["asset"]] == [rename[str(a)] for a in tp["asset"]]


@pytest.mark.parametrize("labels, message", [
    (lambda n: ["A"] * n, "duplicate asset 'A'"),
    (lambda n: [""] + [f"a{i}" for i in range(1, n)], "empty asset name at position 0"),
])
def test_backtest_refuses_duplicate_and_empty_asset_labels(panels, labels, message):
    ds = panels[0].isel(asset=slice(0, 4))
    with pytest.raises(ql.DataError, match=message):
        _bt(ds.assign_coords(asset=labels(4)))


# ---- deploy: checkpoint / restore ------------------------------------------------------

P = {"window": 10, "lookback": 20}


def _deploy(ds):
    dep = ql.deploy("volatility_regime", P, history=ds.isel(time=slice(0, 60)), fees=0.001)
    return dep.replay(ds.isel(time=slice(60, 80)), echo=None)


def test_deploy_checkpoint_restore_under_hostile_names_continues_like_plain_names(panels,
                                                                                  tmp_path):
    plain, hostile = (p.isel(time=slice(0, 90)) for p in panels)
    dp, dh = _deploy(plain), _deploy(hostile)
    back = ql.Deployment.restore(dh.checkpoint(tmp_path / "ck"))
    assert back.universe == NAMES
    back.replay(hostile.isel(time=slice(80, 90)), echo=None)
    dp.replay(plain.isel(time=slice(80, 90)), echo=None)
    np.testing.assert_array_equal(back.equity.values, dp.equity.values)
    names = sorted(p.relative_to(tmp_path).parts for p in tmp_path.rglob("*"))
    # hostile asset names never become file names (appending checkpoints add seg-*.npz)
    assert names[0] == ("ck",) and all(n[0] == "ck" and re.fullmatch(
        r"deployment\.(json|npz)|seg-[0-9-]+\.npz", n[1]) for n in names[1:])


@pytest.mark.parametrize("folder", ["with space", "日本", "a" * 250, ".hidden", "x\ny", "-rf"])
def test_deploy_checkpoint_into_hostile_folder_names_round_trips(panels, tmp_path, folder):
    dep = _deploy(panels[0].isel(time=slice(0, 80), asset=slice(0, 3)))
    ck = dep.checkpoint(tmp_path / folder)
    files = [p.relative_to(tmp_path).parts for p in tmp_path.rglob("*") if p.is_file()]
    # appending checkpoints (round 1) add segment files: all inside the folder, one level
    assert (folder, "deployment.json") in files and all(len(f) == 2 and f[0] == folder
                                                        for f in files)
    assert ql.Deployment.restore(ck).equity_now() == dep.equity_now()


def test_deploy_restore_of_a_missing_checkpoint_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no deployment checkpoint in .*nope"):
        ql.Deployment.restore(tmp_path / "nope")


def test_deploy_bar_with_case_changed_asset_names_is_refused_naming_them(panels):
    ds = panels[0].isel(time=slice(0, 61), asset=slice(0, 3))
    dep = ql.deploy("volatility_regime", P, history=ds.isel(time=slice(0, 60)))
    bar = ds.isel(time=60)
    with pytest.raises(ql.DataError, match=r"assets \['X00', 'X01', 'X02'\] are not the "
                                           r"universe \['x00', 'x01', 'x02'\]"):
        dep.on_bar(bar.assign_coords(asset=[str(a).upper() for a in bar.asset.values]))


# ---- tear sheet HTML -------------------------------------------------------------------

def test_tearsheet_html_with_hostile_names_and_title_has_no_raw_markup(panels, tmp_path):
    from bokeh.io import save
    from bokeh.resources import CDN

    res = _bt(panels[1].isel(asset=slice(0, 3)).assign_coords(
        asset=["</script><script>alert(1)</script>", "<img src=x onerror=alert(2)>",
               "A\nB"]))
    out = tmp_path / "sheet.html"
    save(ql.plots.tearsheet(res, title="</title><script>alert(3)</script>"),
         filename=str(out), resources=CDN, title="sheet")
    html = out.read_text(encoding="utf-8")
    for raw in ("<script>alert(1)</script>", "<img src=x", "<script>alert(3)</script>"):
        assert raw not in html
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.html"]


# ---- quantlab report run names ---------------------------------------------------------

@pytest.mark.parametrize("name, message", [
    ("..", "nor be '.' or '..'"), ("../x", "may not start with '.'"),
    ("a/b", "may not contain '/'"), ("a\\b", "may not contain '/'"),
    (".hidden", "may not start with '.'"), ("A\nB", "control"),
    ("a\u202eb", "bidi-override"), ("a\x00b", "control"),
    ("CON", "reserved device name"), ("nul.", "reserved device name"),
    ("COM¹", "reserved device name"), ("A" * 250, "250 bytes, at most 200"),
    ("日" * 70, "210 bytes, at most 200"), ("\ud800", "not valid UTF-8"), ("", "non-empty"),
])
def test_report_run_name_that_is_not_one_portable_file_name_is_refused(name, message):
    from quantlab.suite import check_name

    with pytest.raises(ValueError, match="run name") as e:
        check_name(name)
    assert message in str(e.value)


def test_report_run_names_that_differ_only_in_case_get_suffixes(tmp_path):
    from quantlab.suite import Run, plan_outputs

    runs = [Run(f"n{i}.ipynb", n) for i, n in enumerate(["AAPL", "aapl", "Aapl", "index",
                                                          "2020-01-01", "1e5", "AAPL US"])]
    assert [r.name for r in plan_outputs(runs, tmp_path)] == [
        "AAPL", "aapl-2", "Aapl-3", "index-2", "2020-01-01", "1e5", "AAPL US"]


# ---- session 36 round 2 (storehard): Unicode forms, wide tables, corrupt stores --------

NFC, NFD = "Nestl\u00e9", "Nestle\u0301"


def test_load_csv_nfd_asset_name_reads_as_nfc_in_file_long_and_wide_tables(tmp_path):
    d = _folder(tmp_path, [NFD])
    assert ql.data.load_csv(d).asset.values.tolist() == [NFC]
    assert ql.data.load_csv(_long(tmp_path / "long.csv", [NFD])).asset.values.tolist() == [NFC]
    f = tmp_path / "w.csv"
    f.write_text(f"Date,{NFD},X\n2020-01-02,1,2\n2020-01-03,1,2\n")
    assert ql.data.load_csv(f).asset.values.tolist() == [NFC, "X"]
    assert ql.data.load_csv(d / f"{NFD}.csv", asset=NFD).asset.values.tolist() == [NFC]


def test_load_csv_asset_names_differing_only_in_unicode_form_are_refused(tmp_path):
    with pytest.raises(ql.DataError, match=f"both hold asset '{NFC}'"):
        ql.data.load_csv(_folder(tmp_path, [NFC, NFD]))
    with pytest.raises(ql.DataError, match="appears in data rows 1, 31"):
        ql.data.load_csv(_long(tmp_path / "long.csv", [NFC, NFD]))
    f = tmp_path / "w.csv"
    f.write_text(f"Date,{NFC},{NFD}\n2020-01-02,1,2\n2020-01-03,1,2\n")
    with pytest.raises(ql.DataError, match=f"columns 2 .* and 3 .* both read as '{NFC}'"):
        ql.data.load_csv(f)


def test_ingest_asset_names_differing_only_in_unicode_form_are_refused(tmp_path):
    with pytest.raises(ql.DataError, match=f"both hold asset '{NFC}'"):
        ql.data.ingest(_folder(tmp_path, [NFC, NFD]), tmp_path / "store")
    (tmp_path / "b").mkdir()
    ql.data.ingest(_folder(tmp_path / "b", [NFD]), tmp_path / "s2")
    assert ql.data.open(tmp_path / "s2").asset.values.tolist() == [NFC]


@pytest.mark.parametrize("labels, message", [
    ([NFC, NFD], "differ only by surrounding spaces or Unicode form"),
    (["A", np.nan], "missing asset name (nan) at position 1"),
    ([None, "A"], "missing asset name (nan) at position 0"),   # xarray: None -> nan
    ([np.nan, np.nan], "missing asset name (nan) at position 0"),
])
def test_validate_refuses_missing_and_unicode_twin_asset_labels(labels, message):
    ds = xr.Dataset({"close": (("time", "asset"), np.ones((3, 2)))},
                    coords={"time": pd.bdate_range("2020-01-01", periods=3),
                            "asset": np.array(labels, dtype=object)})
    with pytest.raises(ql.DataError, match=re.escape(message)):
        ql.data.validate(ds)


@pytest.mark.parametrize("price", ["Close", "Adj Close"])
def test_wide_table_with_an_asset_named_close_does_not_drop_the_other_assets(tmp_path, price):
    f = tmp_path / "w.csv"
    f.write_text(f"Date,{price},MSFT,GOOG\n2020-01-02,1,2,3\n2020-01-03,1.5,2.5,3.5\n")
    for read in (ql.data.load_csv, lambda f: ql.data.ingest(f, tmp_path / "store")):
        with pytest.raises(ql.DataError, match="columns 'MSFT', 'GOOG' are not price columns "
                                               "and would be ignored.*layout='wide'"):
            read(f)
    ds = ql.data.load_csv(f, layout="wide")
    assert ds.asset.values.tolist() == [price, "MSFT", "GOOG"]
    np.testing.assert_array_equal(ds["close"].values, [[1, 2, 3], [1.5, 2.5, 3.5]])
    one = ql.data.load_csv(f, layout="single")   # said so: the close, the rest ignored
    np.testing.assert_array_equal(one["close"].values.ravel(), [1, 1.5])


def test_wide_table_with_an_asset_named_close_in_a_folder_is_refused(tmp_path):
    (tmp_path / "W.csv").write_text("Date,Close,MSFT\n2020-01-02,1,2\n")
    with pytest.raises(ql.DataError, match="'MSFT' .* load the file on its own"):
        ql.data.load_csv(tmp_path)


def test_bar_file_with_extra_columns_still_ignores_them(tmp_path):
    f = tmp_path / "X.csv"
    f.write_text(HEADER + ",Dividends,Stock Splits\n"
                 + "\n".join(r + ",0,0" for r in _rows()) + "\n")
    np.testing.assert_allclose(ql.data.load_csv(f)["close"].values.ravel(), _closes(0),
                               rtol=1e-12)


_NESTED = {"list": [[1, 2], [3], []] * 10, "struct": [{"a": 1}] * 30,
           "bytes": [b"x\x00"] * 30}


@pytest.mark.parametrize("kind", sorted(_NESTED))
def test_ingest_parquet_with_unused_nested_column_reads_like_without_it(tmp_path, kind):
    df = _GOOD.assign(Close=np.where(np.arange(30) == 3, np.nan, 1.5))   # not the fast path
    df.loc[3, ["Open", "High", "Low", "Volume"]] = np.nan
    df.to_parquet(tmp_path / "X.parquet")
    df.assign(extra=_NESTED[kind]).to_parquet(tmp_path / "Y.parquet")
    ref = ql.data.open(ql.data.ingest(tmp_path / "X.parquet", tmp_path / "s1"))["close"]
    got = ql.data.open(ql.data.ingest(tmp_path / "Y.parquet", tmp_path / "s2"))["close"]
    np.testing.assert_array_equal(got.values, ref.values)
    assert np.isnan(got.values[3, 0]) and got.values[0, 0] == 1.5


@pytest.mark.parametrize("kind", sorted(_NESTED))
def test_ingest_parquet_with_nested_price_column_is_a_data_error_naming_it(tmp_path, kind):
    f = tmp_path / "X.parquet"
    _GOOD.assign(Close=_NESTED[kind]).to_parquet(f)
    with pytest.raises(ql.DataError, match=re.escape(str(f)) + ".*column 'close'.*unparsable"):
        ql.data.ingest(f, tmp_path / "store")


@pytest.fixture
def store(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "X.csv").write_text(_yahoo())
    return ql.data.ingest(src, tmp_path / "store")


@pytest.mark.parametrize("name, data", [
    ("quantlab_store.json", b""), ("quantlab_store.json", b"{garbage"),
    ("quantlab_store.json", b"[1, 2]"), ("quantlab_store.json", b"\xff\xfe"),
    ("zarr.json", b""), ("zarr.json", b"{x"), ("close/zarr.json", b"not json"),
    ("time/zarr.json", b"{}"),
])
def test_open_corrupt_store_marker_or_zarr_json_is_a_data_error_saying_reingest(store, name,
                                                                                data):
    (store / name).write_bytes(data)
    with pytest.raises(ql.DataError, match=r"corrupt .*re-run ingest"):
        ql.data.open(store)["close"].values


def test_ingest_append_into_a_store_with_corrupt_zarr_json_is_a_data_error(store, tmp_path):
    new = tmp_path / "new"
    new.mkdir()
    (new / "X.csv").write_text(HEADER + "\n2021-01-04,1,1.01,0.99,1,1,1000\n")
    (store / "zarr.json").write_bytes(b"{x")
    with pytest.raises(ql.DataError, match=r"corrupt store metadata .*re-run ingest"):
        ql.data.ingest(new, store)


def test_open_or_ingest_with_a_file_as_the_store_is_a_data_error(tmp_path):
    f = tmp_path / "X.csv"
    f.write_text(_yahoo())
    with pytest.raises(ql.DataError, match=re.escape(str(f)) + ": not a folder"):
        ql.data.open(f)
    with pytest.raises(ql.DataError, match=re.escape(str(f)) + ": exists and is not a quantlab"):
        ql.data.ingest(f, f)


def test_open_truncated_chunk_is_a_data_error_at_compute_and_with_verify(store):
    chunk = next(p for p in (store / "close").rglob("*") if p.is_file() and p.name != "zarr.json")
    ref = ql.data.open(store)["close"].values
    np.testing.assert_allclose(ref.ravel(), _closes(0), rtol=1e-12)
    np.testing.assert_array_equal(ql.data.open(store, verify=True)["close"].values, ref)
    chunk.write_bytes(chunk.read_bytes()[:40])
    ds = ql.data.open(store)       # lazy: the damage shows when computed
    with pytest.raises(ql.DataError, match=r"variable 'close', rows 0:30: damaged chunk .*"
                                           r"re-run ingest"):
        ds["close"].mean().compute()
    with pytest.raises(ql.DataError, match="variable 'close'.*damaged chunk"):
        ql.data.open(store, verify=True)


@pytest.mark.parametrize("name", ["a:b", "C:evil", "x*", "what?", 'say"hi"', "a<b", "a>b",
                                  "a|b"])
def test_report_run_name_with_a_character_windows_forbids_is_refused(name):
    from quantlab.suite import check_name

    with pytest.raises(ValueError, match=r"not allowed in Windows file names") as e:
        check_name(name)
    assert repr(name) in str(e.value)


def test_report_run_names_that_differ_only_in_unicode_form_get_suffixes(tmp_path):
    from quantlab.suite import Run, plan_outputs

    runs = [Run("a.ipynb", NFC), Run("b.ipynb", NFD), Run("c.ipynb", NFD.upper())]
    assert [r.name for r in plan_outputs(runs, tmp_path)] == [NFC, NFD + "-2",
                                                              NFD.upper() + "-3"]
