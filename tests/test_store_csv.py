"""quantlab.store's Arrow CSV read (issue #30): a clean CSV file skips load_csv's
per-cell text reader, with exactly its bars; anything else goes that reader's way, so
ingest refuses what load_csv refuses, with its message."""
import gzip
import itertools

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab import data as qd
from quantlab.errors import DataError

pytest.importorskip("zarr")
pytest.importorskip("pyarrow")
from quantlab import store  # noqa: E402

N = 30


def _frame(seed=0, n=N):
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[100.0, close[:-1]]
    wick = np.abs(rng.normal(0, 0.003, (2, n)))
    return pd.DataFrame({"Open": open_, "High": np.maximum(open_, close) * (1 + wick[0]),
                         "Low": np.minimum(open_, close) * (1 - wick[1]), "Close": close,
                         "Volume": np.round(rng.lognormal(5, 1, n))})


def _text(dates, df=None, header="Date,Open,High,Low,Close,Volume", fmt=repr, eol="\n"):
    df = _frame() if df is None else df
    rows = [",".join([d, *(fmt(float(v)) for v in r)]) for d, r in zip(dates, df.to_numpy())]
    return eol.join([header, *rows]) + eol


def _reads_alike(path, mode="single_or_kline"):
    """store's reader and load_csv's: the same frames, or the same DataError message."""
    try:
        want = qd._read_table(path, None, mode)
    except DataError as e:
        with pytest.raises(DataError) as got:
            store._read_file(path, mode)
        assert str(got.value) == str(e)
        return None
    got = store._read_file(path, mode)
    assert got[1] == want[1]                       # tz-aware or naive, alike
    assert list(got[0]) == list(want[0])
    for a in want[0]:
        pd.testing.assert_frame_equal(got[0][a], want[0][a], check_exact=True)
    return got


T = pd.date_range("2024-01-02 09:30", periods=N, freq="min")
TNS = T.as_unit("ns").asi8
SHAPE_DAYS = [str(d.date()) for d in pd.date_range("2024-01-02", periods=N, freq="D")]
SHAPES = {
    "date": [str(d.date()) for d in pd.date_range("2024-01-02", periods=N, freq="D")],
    "minute": list(T.strftime("%Y-%m-%d %H:%M")),
    "seconds_T": list(T.strftime("%Y-%m-%dT%H:%M:%S")),
    "millis": [d.isoformat(sep=" ", timespec="milliseconds") for d in T + pd.Timedelta("7ms")],
    "micros": [d.isoformat(timespec="microseconds") for d in T + pd.Timedelta("7us")],
    "nanos": [str(d) for d in T + pd.Timedelta("7ns")],
    "utc_Z": list(T.strftime("%Y-%m-%dT%H:%M:%SZ")),
    "offset": [d.isoformat() for d in T.tz_localize("Europe/Berlin")],
    "offset_dst": [d.isoformat() for d in pd.date_range(
        "2024-03-31 01:00", periods=N, freq="5min", tz="Europe/Berlin")],   # +01 -> +02
    "deci": [f"{d} 09:30:00.{i % 10}" for i, d in enumerate(SHAPE_DAYS)],
    "epoch_s": [str(d // 10 ** 9) for d in TNS],
    "epoch_ms": [str(d // 10 ** 6) for d in TNS],
    "epoch_us": [str(d // 10 ** 3) for d in TNS],
    "epoch_ns": [str(d) for d in TNS],
}


@pytest.mark.parametrize("shape", SHAPES)
def test_clean_csv_is_read_by_arrow_with_load_csvs_exact_bars(tmp_path, shape):
    """Every date shape the fast read takes gives load_csv's times and aware flag, and
    bit-identical prices (Arrow's and pandas' float parsers agree on decimal text)."""
    path = tmp_path / "ACME.csv"
    path.write_text(_text(SHAPES[shape]))
    assert store._clean_csv(path, "single_or_kline") is not None, "fast path declined"
    _reads_alike(path)


@pytest.mark.parametrize("variant", ["gzip", "bom", "crlf", "quoted", "adj_close", "note",
                                     "index_col", "fixed6", "kline", "kline_us", "single_file"])
def test_clean_csv_variants_take_the_fast_path_with_the_same_bars(tmp_path, variant):
    dates, df = SHAPES["minute"], _frame(1)
    text = _text(dates, df)
    name, mode = "ACME.csv", "single_or_kline"
    if variant == "crlf":
        text = _text(dates, df, eol="\r\n")
    elif variant == "quoted":
        text = "\n".join(",".join(f'"{c}"' for c in ln.split(",")) if i else ln
                         for i, ln in enumerate(text.splitlines())) + "\n"
    elif variant == "adj_close":
        df2 = df.assign(Adj=df["Close"] * 0.5)
        text = _text(dates, df2, header="Date,Open,High,Low,Close,Volume,Adj Close")
    elif variant == "note":
        df2 = df.assign(Note=np.arange(N))
        text = _text(dates, df2, header="Date,Open,High,Low,Close,Volume,Note")
        text = text.replace(".0\n", ".0,x\n", 3).replace(",Note\n", ",Note,Other\n")
        text = "\n".join(ln if ln.count(",") == 7 else ln + ",y"
                         for ln in text.splitlines()) + "\n"
    elif variant == "index_col":
        text = "\n".join(f"{i - 1 if i else ''},{ln}"
                         for i, ln in enumerate(text.splitlines())) + "\n"
    elif variant == "fixed6":
        text = _text(dates, df, fmt=lambda v: f"{v:.6f}")
    elif variant in ("kline", "kline_us"):
        k = 6 if variant == "kline" else 3
        text = "".join(f"{t // 10 ** k},{','.join(repr(float(v)) for v in r)},{t // 10 ** k + 59},"
                       f"1.5,7,0.5,0.25,0\n" for t, r in zip(TNS, df.to_numpy()))
        name = "BTCUSDT-1m-2024-01.csv"
    elif variant == "single_file":
        mode = "auto"
    path = tmp_path / name
    if variant == "gzip":
        path = tmp_path / "ACME.csv.gz"
        path.write_bytes(gzip.compress(text.encode()))
    elif variant == "bom":
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    else:
        path.write_bytes(text.encode())
    assert store._clean_csv(path, mode) is not None, "fast path declined"
    got = _reads_alike(path, mode)
    assert list(got[0]) == ["BTCUSDT" if "kline" in variant else "ACME"]


def test_ingest_of_clean_csv_skips_load_csvs_text_reader_and_equals_load_csv(
        tmp_path, monkeypatch):
    """The ingest itself takes the Arrow read (the per-cell pandas reader was ~75% of a
    CSV ingest, issue #30) and stores exactly load_csv's panel."""
    src = tmp_path / "src"
    src.mkdir()
    for i, a in enumerate(("AAA", "BBB", "CCC")):
        dates = SHAPES["minute"][i:]                      # a later listing: NaN bars
        (src / f"{a}.csv").write_text(_text(dates, _frame(i, N - i)))
    want = ql.data.load_csv(src)
    with monkeypatch.context() as m:
        m.setattr(qd, "_read_table", lambda *a, **k: pytest.fail("load_csv's text reader"))
        got = ql.data.open(ql.data.ingest(src, tmp_path / "st", chunk_time=7, chunk_asset=2))
    xr.testing.assert_identical(got.compute().drop_attrs(), want.drop_attrs())
    assert got.attrs["freq"] == "1min"


def _faulty(kind):
    """A clean minute file with one fault of ``kind``."""
    lines = _text(SHAPES["minute"]).splitlines()
    cells = [ln.split(",") for ln in lines]
    if kind == "duplicate_timestamp":
        cells[6][0] = cells[5][0]
    elif kind == "unsorted_rows":
        cells[5], cells[6] = cells[6], cells[5]
    elif kind == "negative_price":
        cells[4][3] = "-1.0"
    elif kind == "zero_price":
        cells[4][1:5] = ["0", "0", "0", "0"]
    elif kind == "high_below_low":
        cells[4][2] = str(float(cells[4][3]) / 2)
    elif kind == "negative_volume":
        cells[9][5] = "-5"
    elif kind == "partial_bar_empty":
        cells[7][2] = ""
    elif kind == "partial_bar_nan":
        cells[7][2] = "nan"
    elif kind == "missing_bar_null":          # valid: an all-missing bar
        cells[7][1:] = ["null"] * 5
    elif kind == "inf_price":
        cells[3][4] = "inf"
    elif kind == "unparsable_number":
        cells[3][4] = "12a"
    elif kind == "thousands_separator":
        cells[3][4] = '"1,234.5"'
    elif kind == "spaced_number":
        cells[3][4] = " " + cells[3][4]
    elif kind == "duplicate_header":
        cells[0][5] = "Close"
    elif kind == "alias_header_twice":
        cells[0] = ["Date", "Open", "High", "Low", "Close", "Timestamp"]
    elif kind == "missing_date_header":
        cells[0][0] = "When"
    elif kind == "missing_close_header":
        cells[0][4] = "Last"
    elif kind == "symbol_column":
        cells[0][5] = "Symbol"
    elif kind == "short_row":
        cells[8] = cells[8][:-1]
    elif kind == "long_row":
        cells[8] = cells[8] + ["1"]
    elif kind == "mixed_date_shapes":
        cells[9][0] = cells[9][0][:10]
    elif kind == "T_and_space":
        cells[9][0] = cells[9][0].replace(" ", "T")
    elif kind == "invalid_date":
        cells[9][0] = "2024-02-30 09:39"
    elif kind == "date_after_2262":
        cells[-1][0] = "2300-01-02 09:59"
    elif kind == "missing_date":
        cells[9][0] = ""
    elif kind == "naive_and_offset":
        cells[9][0] += "+00:00"
    elif kind == "epoch_two_units":
        cells = [c[:] for c in cells]
        for c, t in zip(cells[1:], TNS):
            c[0] = str(t // 10 ** 6)
        cells[9][0] = str(TNS[8] // 10 ** 3)
    elif kind == "epoch_2286":
        for c, t in zip(cells[1:], TNS):
            c[0] = str(t // 10 ** 6)
        cells[-1][0] = "9999999999999"
    elif kind == "blank_line_junk":
        cells.insert(5, [""] * 6)
    elif kind == "header_only":
        cells = cells[:1]
    text = "\n".join(",".join(c) for c in cells) + "\n"
    if kind == "latin1_note":
        return (text.replace("Volume\n", "Volume,Note\n").replace(".0\n", ".0,x\n")
                .encode().replace(b",x\n", b",\xe9\n", 1))
    if kind == "nul_byte":
        return text.encode().replace(b"\n", b"\x00\n", 3)
    return text.encode()


FAULTS = ["duplicate_timestamp", "unsorted_rows", "negative_price", "zero_price",
          "high_below_low", "negative_volume", "partial_bar_empty", "partial_bar_nan",
          "missing_bar_null", "inf_price", "unparsable_number", "thousands_separator",
          "spaced_number", "duplicate_header", "alias_header_twice", "missing_date_header",
          "missing_close_header", "symbol_column", "short_row", "long_row",
          "mixed_date_shapes", "T_and_space", "invalid_date", "date_after_2262",
          "missing_date", "naive_and_offset", "epoch_two_units", "epoch_2286",
          "blank_line_junk", "header_only", "latin1_note", "nul_byte"]


@pytest.mark.parametrize("kind", FAULTS)
def test_fast_csv_path_declines_faulty_files_and_ingest_refuses_them_as_load_csv(
        tmp_path, kind):
    """Duplicate timestamps, unsorted rows, invalid or partial bars, bad headers, bad
    cells and dates: the Arrow read declines, so ingest gives load_csv's own result (the
    same DataError message; the same panel for the valid all-missing bar)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "ACME.csv").write_bytes(_faulty(kind))
    try:
        want = ql.data.load_csv(src)
    except DataError as e:
        assert store._clean_csv(src / "ACME.csv", "single_or_kline") is None
        with pytest.raises(DataError) as got:
            ql.data.ingest(src, tmp_path / "st")
        assert str(got.value) == str(e)
        return
    assert kind in ("missing_bar_null", "blank_line_junk", "T_and_space", "spaced_number")
    got = ql.data.open(ql.data.ingest(src, tmp_path / "st"))
    xr.testing.assert_identical(got.compute().drop_attrs(), want.drop_attrs())


TOKENS = ["", "nan", "null", "-1", "0", "1e999", "abc", " 5", "5 ", "+7", ".5", "5.",
          "1e2", "2024-01-02 09:31", "2024-01-02 09:30", '"3"', "inf", "-0", "1,5"]


def test_random_cell_and_row_mutations_read_alike_or_fail_alike(tmp_path):
    """A fuzz of the class: 96 random single-cell or row edits of a clean file (each
    of TOKENS in each column, row swaps, duplicates, drops): the store's reader returns
    load_csv's frames or raises load_csv's message, every time."""
    rng = np.random.default_rng(7)
    base = [ln.split(",") for ln in _text(SHAPES["minute"]).splitlines()]
    path = tmp_path / "ACME.csv"
    n_fast = 0
    for k in range(96):
        cells = [c[:] for c in base]
        op = k % 4
        i = int(rng.integers(1, N + 1))
        if op in (0, 1):
            cells[i][int(rng.integers(0, 6))] = TOKENS[int(rng.integers(len(TOKENS)))]
        elif op == 2:
            j = int(rng.integers(1, N + 1))
            cells[i], cells[j] = cells[j], cells[i]
        else:
            cells.insert(i, cells[int(rng.integers(1, N + 1))][:])
        path.write_text("\n".join(",".join(c) for c in cells) + "\n")
        n_fast += store._clean_csv(path, "single_or_kline") is not None
        _reads_alike(path)
    assert 0 < n_fast < 96           # both ways were exercised


def test_one_asset_staging_shortcut_equals_load_csvs_assembly(tmp_path):
    """_assemble takes one unadjusted asset's frame as it is (no Dataset built); its
    times and values equal load_csv's assembly (_bars_from_frame), NaN bars included,
    and an adjusted or multi-asset file still goes through that assembly."""
    from quantlab.store import _assemble
    t = pd.DatetimeIndex(pd.date_range("2024-01-02", periods=6, freq="D").as_unit("ns"),
                         name="date")
    df = _frame(3, 6).rename(columns=str.lower).set_index(t)
    df.iloc[2] = np.nan                                       # a missing bar
    cases = [{"A": df}, {"A": df.assign(adj_close=df["close"] * 0.5)},
             {"A": df, "B": df.iloc[1:4] * 2}, {"A": df[["close"]]}]
    for frames in cases:
        ds = qd._bars_from_frame(frames, "unknown")
        got = list(_assemble(frames))
        assert [g[0] for g in got] == list(ds.asset.values)
        for a, tt, variables, values in got:
            assert variables == [v for v in qd.BAR_VARS if v in ds]
            np.testing.assert_array_equal(tt, ds.time.values.view(np.int64))
            np.testing.assert_array_equal(
                values, np.column_stack([ds[v].sel(asset=a).values for v in variables]))
