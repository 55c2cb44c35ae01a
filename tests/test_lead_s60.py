"""Session 60 (lead): pandas in, the numbers of xarray out. ``ql.backtest``, the
strategies' ``signal``, ``ql.sweep`` and ``from_entries_exits`` take a DataFrame of closes
(time by asset) or a Series (one asset) where they take a DataArray, and give the same
bits; one asset's OHLCV frame (columns open ... close) is refused, not read as five
assets."""
import json
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql

KW = dict(fees=0.001, slippage=0.0005)


@pytest.fixture(scope="module")
def ds():
    return ql.data.load().isel(time=slice(0, 600))


@pytest.fixture(scope="module")
def frames(ds):
    close = ds["close"].to_pandas()
    entries = close > close.rolling(20).mean()
    return close, entries.astype(float), entries


def _same(a, b):
    np.testing.assert_array_equal(a.equity.values, b.equity.values)
    assert a.equity.dims == b.equity.dims
    assert list(a.equity["asset"].values) == list(b.equity["asset"].values)
    pd.testing.assert_frame_equal(a.orders.reset_index(drop=True),
                                  b.orders.reset_index(drop=True))


def test_a_dataframe_of_closes_and_of_targets_backtests_as_their_dataarrays(ds, frames):
    close, signal, _ = frames
    want = ql.backtest(ds["close"], xr.DataArray(signal, dims=("time", "asset")), **KW)
    _same(ql.backtest(close, signal, **KW), want)
    # as read_csv gives it: the index and the columns named
    named = (close.rename_axis(index="Date", columns="symbol"),
             signal.rename_axis(index="date", columns="ticker"))
    _same(ql.backtest(*named, **KW), want)
    _same(ql.backtest(ds["close"], signal, **KW), want)
    # matched by label, as a DataArray signal is: columns in another order, the same
    # run (its result in the signal's order, as a DataArray signal's)
    got = ql.backtest(close, signal[signal.columns[::-1]], **KW)
    assert list(got.equity["asset"].values) == list(signal.columns[::-1])
    xr.testing.assert_equal(got.equity.sel(asset=want.equity["asset"]), want.equity)
    # pandas' nullable floats (convert_dtypes, Arrow-backed files) read as their values
    _same(ql.backtest(close.astype("Float64"), signal, **KW), want)


def test_a_series_is_one_asset_named_by_its_name(ds, frames):
    close, signal, _ = frames
    asset = str(close.columns[1])
    got = ql.backtest(close[asset], signal[asset], **KW)
    _same(got, ql.backtest(ds["close"].isel(asset=[1]), signal[[asset]], **KW))
    unnamed = ql.backtest(close[asset].rename(None), signal[asset].rename(None), **KW)
    assert list(unnamed.equity["asset"].values) == ["asset"]
    np.testing.assert_array_equal(unnamed.equity.values, got.equity.values)


def test_entries_and_exits_as_dataframes(ds, frames):
    close, _, entries = frames
    exits = ~entries
    da = [xr.DataArray(x, dims=("time", "asset")) for x in (entries, exits)]
    _same(ql.backtest(close, entries=entries, exits=exits, **KW),
          ql.backtest(ds, entries=da[0], exits=da[1], **KW))
    xr.testing.assert_identical(ql.signals.from_entries_exits(entries, exits),
                                ql.signals.from_entries_exits(*da))
    with pytest.raises(TypeError, match="entries must be boolean, got float64"):
        ql.signals.from_entries_exits(entries.astype(float), exits)


def test_a_strategy_and_a_sweep_take_a_dataframe_of_closes(ds):
    s = ql.strategies.get("volatility_regime", window=10, lookback=60)
    close = ds["close"].to_pandas()
    closes = xr.Dataset({"close": xr.DataArray(close, dims=("time", "asset"))})
    xr.testing.assert_identical(s.signal(close), s.signal(closes))
    grid = {"window": [5, 10], "lookback": [60]}
    a = ql.sweep("volatility_regime", close, grid, progress=False)
    b = ql.sweep("volatility_regime", closes, grid, progress=False)
    xr.testing.assert_identical(a, b)
    with pytest.raises(ValueError, match=r"needs data variable\(s\) \['volume'\]"):
        ql.strategies.get("liquidity_timing").signal(close)


def test_one_assets_bars_are_refused_with_a_fix_that_works(ds):
    """yfinance's and most CSV readers' frame of one symbol: columns Open ... Volume.
    Read as closes it was a backtest of five 'assets' named after the fields."""
    one = ds.isel(asset=0)
    bars = pd.DataFrame({v.title(): one[v].to_pandas() for v in
                         ("open", "high", "low", "close", "volume")})
    bars["Adj Close"] = bars["Close"]
    bars["Dividends"] = 0.0   # yfinance's Ticker.history adds these two
    bars["Stock Splits"] = 0.0
    with pytest.raises(TypeError, match="columns are bar fields") as e:
        ql.backtest(bars, xr.ones_like(ds["close"]))
    with pytest.raises(TypeError, match="columns are bar fields"):
        ql.strategies.get("volatility_regime").signal(bars)
    fix = re.search(r"ds = (.*)$", str(e.value)).group(1).replace("NAME", "SPY")
    made = eval(fix, {"df": bars, "ql": ql})  # noqa: S307
    signal = xr.ones_like(made["close"])
    got = ql.backtest(made, signal, execution="next_open", **KW)
    want = ql.backtest(ds.isel(asset=[0]).assign_coords(asset=["SPY"]).dropna("time"),
                       signal, execution="next_open", **KW)
    np.testing.assert_array_equal(got.equity.values, want.equity.values)
    # one column named Close is one asset's closes (nothing else to read it as)
    assert list(ql.backtest(bars[["Close"]], bars[["Close"]] * 0 + 1.0)
                .equity["asset"].values) == ["Close"]


@pytest.mark.parametrize("where", ["data", "signal"])
def test_frames_quantlab_cannot_read_as_time_by_asset_are_refused_by_name(frames, where):
    close, signal, _ = frames
    wide = pd.concat({"x": close if where == "data" else signal}, axis=1)
    args = (wide, signal) if where == "data" else (close, wide)
    with pytest.raises(TypeError, match=f"{where}: a DataFrame with MultiIndex columns"):
        ql.backtest(*args)
    aware = close.tz_localize("UTC"), signal.tz_localize("UTC")
    with pytest.raises(ql.DataError, match="time-zone aware"):
        ql.backtest(*aware)
    with pytest.raises(ql.DataError, match="index holds integer .*, not times"):
        ql.backtest(close.reset_index(drop=True), signal.reset_index(drop=True))
    with pytest.raises(TypeError, match="signal must be an xarray DataArray .* or a pandas "
                                        "DataFrame"):
        ql.backtest(close, signal.to_numpy())


def test_a_deployment_takes_closes_as_dataframes(ds):
    close = ds["close"].to_pandas()
    params = {"window": 5, "lookback": 40}
    a = ql.deploy("volatility_regime", params, history=close.iloc[:100], fees=0.001)
    a.replay(close.iloc[100:160], echo=None)
    b = ql.deploy("volatility_regime", params, history=ds[["close"]].isel(time=slice(0, 100)),
                  fees=0.001)
    b.replay(ds[["close"]].isel(time=slice(100, 160)), echo=None)
    np.testing.assert_array_equal(a.equity.values, b.equity.values)
    assert len(a.orders) == len(b.orders) > 0


def test_optimize_and_validate_take_a_dataframe_of_closes(ds):
    close = ds["close"].to_pandas()
    closes = xr.Dataset({"close": xr.DataArray(close, dims=("time", "asset"))})
    kw = dict(optimization_method="grid", n_trials=3, progress=False, fees=0.001)
    a = ql.optimize.optimize_strategy_parameters("volatility_regime", {"window": (5, 21)},
                                                 close, **kw)
    b = ql.optimize.optimize_strategy_parameters("volatility_regime", {"window": (5, 21)},
                                                 closes, **kw)
    assert a.best_params == b.best_params
    pd.testing.assert_frame_equal(a.trials, b.trials)
    assert ql.data.validate(close)["close"].dims == ("time", "asset")
    bad = close.copy()
    bad.iloc[7, 2] = -1.0
    with pytest.raises(ql.DataError, match=f"{close.columns[2]}"):
        ql.data.validate(bad)


# ---- ql.data.from_pandas: bars held in pandas, by load_csv's rules --------------------

def _yahoo(ds) -> dict:
    """Per asset, its bars as a Yahoo CSV holds them (Title Case, Adj Close, gaps out)."""
    out = {}
    for a in ds["asset"].values:
        df = (ds.sel(asset=a).drop_vars(["asset", "asset_class"]).to_dataframe()
              .dropna().rename(columns=str.title).rename_axis("Date"))
        df["Adj Close"] = df["Close"] * 0.5   # a factor: the adjustment is applied
        if len(df):   # GOOG lists in 2004: no file
            out[str(a)] = df
    return out


@pytest.fixture(scope="module")
def from_csv(ds, tmp_path_factory):
    folder = tmp_path_factory.mktemp("csvs")
    for a, df in _yahoo(ds).items():
        df.to_csv(folder / f"{a}.csv")
    return ql.data.load_csv(folder)


def _same_bars(got, want):
    xr.testing.assert_identical(got.drop_attrs(), want.drop_attrs())
    assert {k: v for k, v in got.attrs.items() if k != "source"} == \
        {k: v for k, v in want.attrs.items() if k != "source"}


def test_every_shape_of_bars_in_pandas_loads_as_their_csv_files(ds, from_csv):
    frames = _yahoo(ds)
    _same_bars(ql.data.from_pandas(frames), from_csv)
    # yfinance.download of several tickers: (field, ticker) columns, or group_by="ticker"
    by_field = pd.concat(frames, axis=1).swaplevel(axis=1).sort_index(axis=1)
    by_field.columns.names = ["Price", "Ticker"]
    _same_bars(ql.data.from_pandas(by_field), from_csv)
    _same_bars(ql.data.from_pandas(by_field.swaplevel(axis=1)), from_csv)
    long = pd.concat([df.assign(Symbol=a) for a, df in frames.items()]).reset_index()
    _same_bars(ql.data.from_pandas(long), from_csv)
    one = ql.data.from_pandas(frames["IBM"], asset="IBM")
    _same_bars(one, from_csv.sel(asset=["IBM"]).dropna("time", how="all"))


def test_closes_in_pandas_load_as_a_wide_csv(ds, tmp_path):
    close = ds["close"].to_pandas().rename_axis("date")
    close.to_csv(tmp_path / "wide.csv")
    want = ql.data.load_csv(tmp_path / "wide.csv")
    _same_bars(ql.data.from_pandas(close), want)
    _same_bars(ql.data.from_pandas(close.reset_index()), want)   # the dates as a column
    s = ql.data.from_pandas(close["IBM"])
    _same_bars(s, want.sel(asset=["IBM"]).dropna("time", how="all"))
    aware = ql.data.from_pandas(close.tz_localize("Etc/GMT+5"))   # UTC-5, no DST
    assert aware.attrs["time_zone"] == "UTC"
    assert (aware["time"].values == (close.index + pd.Timedelta(hours=5)).values).all()


@pytest.mark.parametrize("fault, match", [
    ("duplicate", "asset 'IBM': duplicate timestamp 2000-03-07"),
    ("negative", "IBM.*2000-03-09"),
    ("partial", "asset 'IBM' at 2000-03-08: partially missing bar"),
    ("adj", "asset 'IBM' at 2000-03-10: adjusted close -1 is not a positive number"),
    ("text", "asset 'IBM': column 'volume' must be numeric"),
    ("dates", "asset 'IBM': the index .* must be datetimes"),
])
def test_bad_bars_in_pandas_are_refused_naming_asset_and_time(ds, fault, match):
    frames = _yahoo(ds.isel(time=slice(0, 30)))
    ibm = frames["IBM"]
    if fault == "duplicate":
        ibm = pd.concat([ibm.iloc[:5], ibm.iloc[4:]])
    elif fault == "negative":
        ibm.loc["2000-03-09", "Low"] = -1.0
    elif fault == "partial":
        ibm.loc["2000-03-08", "Open"] = np.nan
    elif fault == "adj":
        ibm.loc["2000-03-10", "Adj Close"] = -1.0
    elif fault == "text":
        ibm["Volume"] = ibm["Volume"].astype(str)
    else:
        ibm.index = ibm.index.strftime("%Y-%m-%d")
    frames["IBM"] = ibm
    with pytest.raises((ql.DataError, TypeError), match=match):
        ql.data.from_pandas(frames)


@pytest.mark.parametrize("shape, match", [
    ("no symbol", "missing asset name in column 'Symbol' at position 3"),
    ("no columns", "a DataFrame without columns"),
    ("repeated", "repeated column 'IBM' \\(one per asset\\)"),
    ("NaT", "asset 'AAPL': missing timestamp \\(NaT\\) at position 2"),
    ("3 levels", "columns of 3 levels"),
])
def test_tables_without_an_unambiguous_reading_are_refused(ds, shape, match):
    close = ds["close"].to_pandas().iloc[:10]
    obj = {"no symbol": close.stack().rename("Close").reset_index().rename(
               columns={"asset": "Symbol"}).assign(Symbol=lambda d: d["Symbol"].where(
                   d.index != 3)),
           "no columns": close.iloc[:, :0],
           "repeated": close.rename(columns={"MSFT": "IBM"}),
           "NaT": close.set_axis(close.index.where(np.arange(10) != 2)),
           "3 levels": pd.concat({"x": pd.concat({"y": close}, axis=1)}, axis=1)}[shape]
    with pytest.raises((ql.DataError, TypeError), match=match):
        ql.data.from_pandas(obj)


# ---- a feed's open bar carried over a restart -------------------------------------------

def _tick_stream(seed, n=400):
    """Random quotes of two symbols over ~6 one-second bars, in arrival order, with
    repeated timestamps and some ticks out of order inside a bar."""
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, 6_000_000, n))           # microseconds
    swap = rng.random(n) < 0.1                            # late within its bar
    ts = np.where(swap, ts - (ts % 1_000_000) // 2, ts)
    ts[rng.random(n) < 0.1] = ts[0]                       # ties with the first stamp
    ts = np.maximum.accumulate(ts // 1_000_000) * 1_000_000 + ts % 1_000_000
    mid = 100 + np.cumsum(rng.normal(0, 0.1, n))
    return {"symbol_id": rng.integers(0, 2, n), "bid_price": mid - 0.01,
            "ask_price": mid + 0.01, "bid_size": rng.integers(1, 9, n).astype(float),
            "ask_size": rng.integers(1, 9, n).astype(float), "timestamp": ts}


@pytest.mark.parametrize("seed", range(6))
def test_an_open_bar_taken_back_after_a_restart_makes_the_same_bars(seed):
    """A restarted feed built the bar it stopped in from the ticks after the restart
    only: another open, high, low and volume (helper "faults"). The ticks of the open bar,
    saved as four per asset through JSON, make the same bars with the ticks to come."""
    from quantlab.engine import BarAggregator

    ticks = _tick_stream(seed)
    whole = BarAggregator("1s", ["A", "B"], unit="us")
    want = whole.add(ticks) + whole.flush()
    cut = int(np.random.default_rng(seed).integers(50, 350))
    first = BarAggregator("1s", ["A", "B"], unit="us")
    got = first.add({k: v[:cut] for k, v in ticks.items()})
    saved = json.loads(json.dumps({k: v.tolist() if isinstance(v, np.ndarray) else v
                                   for k, v in first.open_bar().items()}))
    after = got[-1]["time"].values if got else None
    second = BarAggregator("1s", ["A", "B"], unit="us", after=after)
    assert second.reopen(saved) == len(saved["timestamp"])
    got += second.add({k: v[cut:] for k, v in ticks.items()}) + second.flush()
    assert len(got) == len(want) == 6
    for g, w in zip(got, want):
        xr.testing.assert_identical(g, w)
    assert second.late == whole.late


def test_a_resumed_feed_deployment_trades_the_open_bar_whole(tmp_path):
    from quantlab import cli
    from quantlab.engine import TickEngine
    from quantlab.testing import ticks_from_bars

    two = ql.data.load().isel(time=slice(0, 90), asset=[0, 2])

    def engine(dep=None):
        eng = TickEngine({"engine": {"max_symbols": 8}})
        if dep is not None:
            return eng, eng.load_strategy_params(dep)
        return eng, eng.load_strategy_params({"window": 15}, strategy="volatility_regime",
                                             bar="1D", history=two.isel(time=slice(0, 60)),
                                             execution="next_open")   # fills at the open

    ticks = ticks_from_bars(two.isel(time=slice(60, 90)))
    eng, whole = engine()
    eng.process_ticks(ticks)
    eng.flush_bars()
    cut = len(ticks["timestamp"]) // 2 + 1    # inside a bar: its first ticks before it
    for reopen in (True, False):
        eng, dep = engine()
        eng.process_ticks({k: v[:cut] for k, v in ticks.items()})
        ck = tmp_path / f"ck{reopen}"
        dep.checkpoint(ck)
        cli._save_open_bar(eng, ck)
        eng, back = engine(ql.Deployment.restore(ck))
        if reopen:
            eng.reopen_bar(json.loads((ck / cli.OPEN_BAR).read_text()))
        eng.process_ticks({k: v[cut:] for k, v in ticks.items()})
        eng.flush_bars()
        same = np.array_equal(back.equity.values, whole.equity.values)
        bars_same = back.result().equity.shape == whole.result().equity.shape
        assert bars_same and same == reopen   # without the ticks: another bar, other fills


def test_quantlab_deploy_feed_saves_the_open_bar_when_stopped_and_takes_it_back(tmp_path):
    """The command's side: SIGTERM mid-bar leaves open_bar.json beside the checkpoint,
    the same command resumes with it."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from quantlab import cli
    from test_cli_s46 import SERVER

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    server = subprocess.Popen([sys.executable, "-c", SERVER], env=env, stdout=subprocess.PIPE,
                              text=True)
    ck = tmp_path / "ck"
    try:
        port = int(server.stdout.readline())
        argv = [sys.executable, "-m", "quantlab", "deploy", "volatility_regime", "--feed",
                f"ws://127.0.0.1:{port}/", "--symbols", "A,B", "--bar", "100ms",
                "--checkpoint", str(ck)]
        runs = []
        for _ in range(2):
            proc = subprocess.Popen(argv, cwd=root, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            try:
                time.sleep(8)   # connected, some bars traded, one open
                assert proc.poll() is None, proc.communicate()
                proc.send_signal(signal.SIGTERM)
                runs.append(proc.communicate(timeout=60))
            finally:
                if proc.poll() is None:
                    proc.kill()
            assert proc.returncode == 143, runs[-1][1]
            saved = json.loads((ck / cli.OPEN_BAR).read_text())
            assert saved["unit"] and len(saved["timestamp"]) % 4 == 0 and saved["timestamp"]
    finally:
        server.kill()
        server.wait()
    assert "resumed the open bar: " in runs[1][0], runs[1]


def test_an_unnamed_series_of_targets_is_the_one_asset_of_the_data(ds, frames):
    """It was the asset 'asset', refused as 'signal has assets not in the data' beside
    one-asset data (helper "review")."""
    close, signal, entries = frames
    want = ql.backtest(ds.isel(asset=[2]), signal[["IBM"]], **KW)
    _same(ql.backtest(ds.isel(asset=[2]), signal["IBM"].rename(None), **KW), want)
    _same(ql.backtest(close["IBM"], signal["IBM"].rename(None), **KW), want)
    ev = ql.backtest(ds.isel(asset=[2]), entries=entries["IBM"].rename(None),
                     exits=~entries["IBM"].rename(None), **KW)
    assert list(ev.equity["asset"].values) == ["IBM"]
    with pytest.raises(ValueError, match=r"signal has assets not in the data: \['asset'\]"):
        ql.backtest(ds, signal["IBM"].rename(None))   # four assets: which one?
