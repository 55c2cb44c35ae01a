"""Session 60 probe "frames": ``ql.data.from_pandas(frame)`` against ``ql.data.load_csv``
of the same frame written as CSV, on a seeded corpus of hostile frames (column spellings,
names, gaps, zones, dtypes, bad prices), and pandas frames as ``ql.backtest``'s data.
Each accepts what the other accepts, with the same bits, or both refuse."""
import random
import unicodedata

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql


@pytest.fixture(scope="module")
def equities():
    return ql.data.load("equities").isel(time=slice(100, 160))


def _bars(ds, asset) -> pd.DataFrame:
    """One asset's bars as a Yahoo CSV holds them (Title Case, index Date)."""
    df = ds.sel(asset=asset).drop_vars(["asset", "asset_class"]).to_dataframe()
    df = df[[v for v in ("open", "high", "low", "close", "volume") if v in df]]
    return df.rename(columns=str.title).rename_axis("Date")


def _identical(got, want):
    xr.testing.assert_identical(got.drop_attrs(), want.drop_attrs())
    assert {k: v for k, v in got.attrs.items() if k != "source"} == \
        {k: v for k, v in want.attrs.items() if k != "source"}
    for v in want.data_vars:
        assert got[v].values.tobytes() == want[v].values.tobytes(), v


def _both(obj, path, kw=None):
    """(from_pandas's Dataset or error, load_csv's Dataset or error)."""
    out = []
    for f, a in ((ql.data.from_pandas, obj), (ql.data.load_csv, path)):
        try:
            out.append(f(a, **(kw or {}) if f is ql.data.from_pandas else {}))
        except (ql.DataError, TypeError, ValueError) as e:
            out.append(e)
    return out


# ---- the bar rules run on the prices as given, before Adj Close adjusts them ----------

@pytest.mark.parametrize("fields", [["Close"], ["Open", "High", "Low", "Close", "Volume"]])
@pytest.mark.parametrize("bad, match", [(0.0, "non-positive price 0"),
                                        (-5.0, "non-positive price -5"),
                                        (np.inf, "infinite value")])
def test_a_bad_close_is_refused_before_adj_close_adjusts_it(equities, tmp_path, fields,
                                                            bad, match):
    # close 0 made the factor adj/close infinite and the bar NaN (a missing bar); a
    # negative close alone was adjusted to the positive adj_close: both loaded silently
    ibm = _bars(equities, "IBM")[fields]
    ibm["Adj Close"] = ibm["Close"] * 0.5
    ibm.iloc[7, ibm.columns.get_loc("Close")] = bad
    ibm.to_csv(tmp_path / "IBM.csv")
    got, want = _both({"IBM": ibm}, tmp_path / "IBM.csv")
    assert isinstance(want, ql.DataError) and match in str(want)
    assert isinstance(got, ql.DataError)
    assert f"'close' of asset 'IBM' at {ibm.index[7].date()}: {match}" in str(got)


def test_times_beyond_nanoseconds_are_refused_not_wrapped():
    # datetime64[s] holds 1600; cast to [ns] it wrapped to 2184-07-22 silently
    t = np.datetime64("1600-01-03", "s") + np.arange(3).astype("timedelta64[D]")
    s = pd.Series([1.0, 2.0, 3.0], index=pd.DatetimeIndex(t), name="A")
    with pytest.raises(ql.DataError, match="asset 'A': time 1600-01-03 00:00:00 outside the "
                                           "supported range"):
        ql.data.from_pandas(s)


def test_arrow_timestamps_are_times(equities):
    # read_csv(dtype_backend="pyarrow", parse_dates=...) gives them: were "must be datetimes"
    close = equities["close"].to_pandas()
    arrow = close.set_axis(close.index.astype("timestamp[ns][pyarrow]"))
    _identical(ql.data.from_pandas(arrow), ql.data.from_pandas(close))
    aware = close.tz_localize("Europe/Berlin")
    _identical(ql.data.from_pandas(aware.set_axis(
        aware.index.astype("timestamp[ns, tz=Europe/Berlin][pyarrow]"))),
        ql.data.from_pandas(aware))


def test_a_long_table_of_markets_in_several_zones_is_in_utc(equities, tmp_path):
    # concatenated, its date column holds Timestamps of two zones (dtype object): was
    # "must be datetimes"; load_csv reads the same offsets as UTC
    long = pd.concat([_bars(equities, a).tz_localize(z).reset_index().assign(Symbol=a)
                      for a, z in (("IBM", "America/New_York"), ("AAPL", "Asia/Kolkata"))])
    long.to_csv(tmp_path / "long.csv", index=False)
    got, want = _both(long, tmp_path / "long.csv")
    _identical(got, want)
    mixed = long.assign(Date=[t.tz_localize(None) if i == 3 else t
                              for i, t in enumerate(long["Date"])])
    with pytest.raises(ql.DataError, match="asset 'IBM': time-zone aware and naive times"):
        ql.data.from_pandas(mixed)


def test_boolean_columns_are_refused_as_in_a_csv(equities):
    ibm = _bars(equities, "IBM")
    ibm["Volume"] = ibm["Volume"] > 0   # a mask, read as volumes 0 and 1
    with pytest.raises(TypeError, match="asset 'IBM': column 'volume' holds booleans"):
        ql.data.from_pandas({"IBM": ibm})


# ---- asset names as load_csv names them ------------------------------------------------

def test_asset_names_are_stripped_and_nfc_as_load_csv_names_them(equities, tmp_path):
    close = equities["close"].to_pandas()
    nfd = unicodedata.normalize("NFD", "Nestlé")
    s = close["IBM"].rename(f" {nfd} ")
    s.rename_axis("Date").to_csv(tmp_path / "s.csv")
    _identical(ql.data.from_pandas(s), ql.data.load_csv(tmp_path / "s.csv"))
    assert ql.data.from_pandas(s)["asset"].values.tolist() == ["Nestlé"]
    assert ql.data.from_pandas(close["IBM"], asset=" IBM ")["asset"].values.tolist() == ["IBM"]


@pytest.mark.parametrize("shape", ["dict", "wide", "two levels"])
def test_two_labels_naming_one_asset_are_refused_not_one_dropped(equities, shape):
    # 'Nestlé' and its NFD twin (or ' IBM' and 'IBM') were one key of a dict: the first
    # asset's bars were replaced by the second's, silently
    nfd = unicodedata.normalize("NFD", "Nestlé")
    frames = {"Nestlé": _bars(equities, "IBM"), nfd: _bars(equities, "MSFT")}
    obj = {"dict": frames,
           "wide": pd.DataFrame({"IBM": frames["Nestlé"]["Close"],
                                 " IBM": frames[nfd]["Close"]}),
           "two levels": pd.concat(frames, axis=1)}[shape]
    with pytest.raises(ql.DataError, match="both name asset '(Nestlé|IBM)'"):
        ql.data.from_pandas(obj)


def test_a_long_table_names_and_orders_its_assets_as_load_csv(equities, tmp_path):
    rows = [_bars(equities, a).reset_index().assign(Symbol=n)
            for a, n in (("MSFT", "MSFT"), ("IBM", " IBM"), ("AAPL", "AAPL "))]
    long = pd.concat(rows, ignore_index=True)
    long.to_csv(tmp_path / "long.csv", index=False)
    got, want = _both(long, tmp_path / "long.csv")
    _identical(got, want)
    assert got["asset"].values.tolist() == ["AAPL", "IBM", "MSFT"]
    # ' IBM' and 'IBM' are one asset: one row per asset and date
    twice = pd.concat([long, long[long["Symbol"] == " IBM"].assign(Symbol="IBM")])
    with pytest.raises(ql.DataError, match="asset 'IBM': duplicate timestamp"):
        ql.data.from_pandas(twice)


def test_asset_is_refused_where_the_table_names_its_assets(equities):
    frames = {"IBM": _bars(equities, "IBM")}
    long = frames["IBM"].reset_index().assign(Symbol="IBM")
    for obj in (frames, long, pd.concat(frames, axis=1)):
        with pytest.raises(ValueError, match="asset= names one asset's bars"):
            ql.data.from_pandas(obj, asset="X")


# ---- a bar field's column is never an asset ----------------------------------------------

@pytest.mark.parametrize("columns, match", [
    (["Close", "MSFT"], "columns 'MSFT' are not price columns and would be ignored"),
    (["Volume", "AAPL"], "bar fields without a close"),
    (["open", "AAPL"], "bar fields without a close"),
])
def test_a_table_with_a_bar_field_column_is_read_as_load_csv_reads_it(equities, tmp_path,
                                                                     columns, match):
    # read as a wide table before: assets 'Close' and 'MSFT', 'Volume' and 'AAPL'
    close = equities["close"].to_pandas().iloc[:, :2].set_axis(columns, axis=1)
    close.rename_axis("Date").to_csv(tmp_path / "t.csv")
    got, want = _both(close, tmp_path / "t.csv")
    assert isinstance(want, ql.DataError)
    assert isinstance(got, ql.DataError) and match in str(got)
    # what it may be, said by asset= (one asset's bars) or a column renamed (closes)
    if "Close" in columns:
        assert ql.data.from_pandas(close, asset="X")["asset"].values.tolist() == ["X"]
    wide = ql.data.from_pandas(close.set_axis(["A", columns[1]], axis=1))
    assert wide["asset"].values.tolist() == ["A", columns[1]]


def test_a_series_named_close_is_one_asset_s_closes(equities, tmp_path):
    s = equities["close"].to_pandas()["IBM"].rename("Close")
    s.rename_axis("Date").to_csv(tmp_path / "asset.csv")
    _identical(ql.data.from_pandas(s), ql.data.load_csv(tmp_path / "asset.csv"))
    _identical(ql.data.from_pandas(s), ql.data.from_pandas(s.to_frame()))


# ---- the differential corpus (a sample with fixed seeds) ---------------------------------

def _mutate(frames: dict, rng) -> dict:
    """One hostile variation of {asset: Yahoo bars}, of those both readers must agree on."""
    kind = rng.choice(["case", "adj", "extra", "nan", "dtype", "price", "tz", "intraday",
                       "names", "one row", "date column"])
    out = {}
    for i, (a, f) in enumerate(frames.items()):
        f = f.copy()
        n = len(f)
        if kind == "case":
            f = f.rename(columns=rng.choice([str.lower, str.upper, lambda c: f" {c} "]))
        elif kind == "adj":
            f[rng.choice(["Adj Close", "adj_close", "AdjClose", "Adjusted Close"])] = \
                f["Close"] * rng.choice([0.5, 1 / 3, 1.0])
        elif kind == "extra" and "Open" in f:
            f["Dividends"], f["Stock Splits"], f["Note"] = 0.0, 0.0, "x"
        elif kind == "nan":
            r = rng.randrange(n)
            f.iloc[rng.choice([slice(r, r + 1), slice(0, r), slice(r, None)])] = np.nan
            if rng.random() < 0.3:
                f.iloc[r, rng.randrange(f.shape[1])] = np.nan   # a partial bar
        elif kind == "dtype":
            f = f.astype(rng.choice(["Float64", "double[pyarrow]", "float64"]))
        elif kind == "price":
            col = rng.choice([c for c in f if c != "Volume"])
            f.iloc[rng.randrange(n), f.columns.get_loc(col)] = rng.choice(
                [0.0, -1.0, np.inf, 5e-324, 1e300])
        elif kind == "tz":
            f.index = f.index.tz_localize(rng.choice(["America/New_York", "Asia/Kolkata",
                                                      "Etc/GMT+5", "UTC"]))
        elif kind == "intraday":
            f.index = pd.date_range("2021-03-14 00:30", periods=n, freq="30min",
                                    tz="America/New_York", name="Date")
        elif kind == "names":
            a = [" Nestlé ", "日本株", "BRK.A", "1000"][i]
        elif kind == "one row":
            f = f.iloc[:1]
        elif kind == "date column":
            f = f.reset_index()
        out[a] = f
    return dict(sorted(out.items(), key=lambda kv: kv[0].strip()))


def _write(f, path):
    f.to_csv(path, index="Date" not in f.columns)


@pytest.mark.filterwarnings("ignore::quantlab.errors.CalendarWarning")
@pytest.mark.parametrize("seed", range(30))
def test_from_pandas_equals_load_csv_of_the_same_frames(equities, tmp_path, seed):
    rng = random.Random(seed)
    ds = equities.isel(time=slice(rng.randrange(0, 40), None))
    frames = _mutate({a: _bars(ds, a) for a in rng.sample(["AAPL", "IBM", "MSFT"], 2)}, rng)
    shape = seed % 4
    if shape == 0:     # a dict; a folder of files
        for a, f in frames.items():
            _write(f, tmp_path / f"{a}.csv")
        obj, path = frames, tmp_path
    elif shape == 1:   # yfinance's two column levels; a folder of files
        if any("Date" in f.columns for f in frames.values()):
            frames = {a: f.set_index("Date") for a, f in frames.items()}
        for a, f in frames.items():
            _write(f, tmp_path / f"{a}.csv")
        obj, path = pd.concat(frames, axis=1).swaplevel(axis=1), tmp_path
    elif shape == 2:   # a long table
        obj = pd.concat([(f if "Date" in f.columns else f.reset_index()).assign(Ticker=a)
                         for a, f in frames.items()], ignore_index=True)
        obj.to_csv(tmp_path / "long.csv", index=False)
        path = tmp_path / "long.csv"
    else:              # wide closes
        frames = {a: f.set_index("Date") if "Date" in f.columns else f
                  for a, f in frames.items()}
        col = {a: next(c for c in f if c.strip().lower() == "close")
               for a, f in frames.items()}
        obj = pd.DataFrame({a: f[col[a]] for a, f in frames.items()})
        obj.rename_axis("Date").to_csv(tmp_path / "wide.csv")
        path = tmp_path / "wide.csv"
    got, want = _both(obj, path)
    if isinstance(want, Exception):
        assert isinstance(got, Exception), f"load_csv refused ({want}); from_pandas loaded"
        assert "from_pandas" in str(got) or isinstance(got, TypeError)
    else:
        assert not isinstance(got, Exception), f"from_pandas refused: {got}"
        _identical(got, want)


# ---- pandas frames as the backtest's data and signal ------------------------------------

@pytest.fixture(scope="module")
def closes(equities):
    close = equities["close"].to_pandas()
    return close, (close > close.rolling(5).mean()).astype(float)


def test_a_date_column_is_never_read_as_an_asset(closes):
    # reset_index() (or read_csv without index_col) put the dates in a column: refused as
    # "signal and data have different time axes" or "must be numeric, got dtype object"
    close, signal = closes
    for data, sig, who in ((close.reset_index(), signal, "data"),
                           (close, signal.reset_index(), "signal")):
        with pytest.raises(TypeError, match=f"{who}: column 'time' of the DataFrame holds "
                                            r"times .*df.set_index\('time'\)"):
            ql.backtest(data, sig)


def test_arrow_timestamps_index_a_frame_as_numpy_ones_do(closes):
    close, signal = closes
    arrow = close.set_axis(close.index.astype("timestamp[ns][pyarrow]"))
    got, want = ql.backtest(arrow, signal), ql.backtest(close, signal)
    np.testing.assert_array_equal(got.equity.values, want.equity.values)
    xr.testing.assert_identical(got.equity, want.equity)


@pytest.mark.parametrize("fields", [["Close", "AdjClose"], ["close", "vol"],
                                    ["Close", "Adjusted Close"]])
def test_bar_fields_spelled_as_load_csv_reads_them_are_not_assets(closes, fields):
    close, signal = closes
    two = close.iloc[:, :2].set_axis(fields, axis=1)
    with pytest.raises(TypeError, match="columns are bar fields .*ql.data.from_pandas"):
        ql.backtest(two, signal.iloc[:, :2].set_axis(fields, axis=1))
