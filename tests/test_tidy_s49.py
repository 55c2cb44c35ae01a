"""Session 49's small trust/shape faults: one check where there were two (price data, a
parameter dim named like a metric), lead_lag's degenerate pair, date parsing warnings,
huge counts, rolling functions on pandas, as_of's dim, and the store's chunk writes."""
import dataclasses
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from panels import ohlcv_panel
from quantlab import _validate
from quantlab.backtesting import dispatch


# ---- 1. one check of price data: _validate.dataset (dispatch.as_dataset its caller) ----

@pytest.mark.parametrize("bad", [pd.DataFrame({"open": [1.0, 2.0], "close": [1.0, 2.0]}),
                                 None, "prices",
                                 xr.Dataset({"open": (("time", "asset"), np.ones((2, 1)))})],
                         ids=["bars DataFrame", "None", "str", "no close"])
def test_backtest_and_validate_dataset_refuse_price_data_in_the_same_words(bad):
    # ql.backtest's own copy said "data must be an xarray Dataset with 'close' (or a close
    # DataArray)" without the type given, and "data has no 'close' variable" without the
    # variables there: the same faults as _validate.dataset's, in other words
    with pytest.raises((TypeError, ql.DataError)) as want:
        _validate.dataset("data", bad)
    with pytest.raises(type(want.value), match=f"^{re.escape(str(want.value))}$"):
        ql.backtest(bad, xr.DataArray(np.ones((2, 1)), dims=("time", "asset")))
    with pytest.raises(type(want.value), match=f"^{re.escape(str(want.value))}$"):
        dispatch.as_dataset(bad)


# ---- 2. a parameter dim named like a metric: one checker, one wording ----------------

@pytest.mark.parametrize("name", ["n_trades", "sharpe_ratio"])
def test_a_metric_named_dim_is_refused_in_one_wording_before_and_after_the_run(name):
    ds, sig = ohlcv_panel(seed=1, n=40, m=3)
    two = xr.concat([sig, -sig], dim=name).assign_coords({name: [10, 20]})
    with pytest.raises(ValueError) as before:
        ql.backtest(ds, two, fees=0.001)
    res = ql.backtest(ds, xr.concat([sig, -sig], dim="p").assign_coords(p=[10, 20]),
                      fees=0.001)
    renamed = dataclasses.replace(res, equity=res.equity.rename(p=name))
    with pytest.raises(ValueError) as after:
        renamed.metrics()
    b, a = str(before.value), str(after.value)
    assert b.startswith("ql.backtest: ") and a.startswith("metrics(): ")
    assert b.split(": ", 1)[1] == a.split(": ", 1)[1]      # was two wordings
    assert f"['{name}']" in a


# ---- 3. lead_lag: a pair without a Granger test is a row, not the whole call's error ----

def _moves_once_then_flat(t):
    b = pd.Series(100.0, index=t)
    b.iloc[1:] = 101.0          # one return at the start of the overlap, then 0
    return b


def test_lead_lag_gives_a_pair_whose_lagged_returns_are_constant_a_nan_p_value():
    # "lead_lag: B -> C: a series is constant over 2 lagged returns of the overlap" was a
    # DataError for the whole call: the A/C pairs were lost (report_data drew no network)
    t = pd.bdate_range("2020-01-01", periods=400)
    rng = np.random.default_rng(0)
    walk = lambda: pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, t.size))), index=t)  # noqa: E731
    cm = ql.crossmarket.CrossMarketAnalyzer()
    for name, s in (("A", walk()), ("B", _moves_once_then_flat(t)), ("C", walk())):
        cm.add_market_data("equity", name, s)
    out = cm.lead_lag(max_lag=3, min_obs=100)
    pairs = {(r.leader, r.follower): r for r in out.itertuples()}
    assert {("A", "C"), ("C", "A")} <= set(pairs)
    untested = out[out.granger_p.isna()]
    assert len(untested) >= 1 and set(untested.leader) == {"B"}
    assert untested.p_adjusted.isna().all() and not untested.significant.any()
    tested = out[out.granger_p.notna()]
    assert tested.p_adjusted.notna().all()
    # Holm over the tested pairs only: the untested one is not counted
    from quantlab.crossmarket import _holm
    np.testing.assert_array_equal(
        tested.p_adjusted.to_numpy(),
        _holm(np.minimum(tested.granger_p.to_numpy() * 3, 1.0)))
    assert len(cm.report_data(max_lag=3)["lead_lag"]) == len(cm.lead_lag(max_lag=3))


def test_holm_leaves_an_untested_p_value_out_of_the_count():
    from quantlab.crossmarket import _holm
    np.testing.assert_array_equal(_holm([0.01, np.nan, 0.04]), [0.02, np.nan, 0.04])
    np.testing.assert_array_equal(_holm([np.nan]), [np.nan])


# ---- 7. as_of: an xarray series' one dim must be time ----------------------------------

@pytest.mark.parametrize("dim,coord", [("date", True), ("month", True), ("asset", False),
                                       ("x", None)])
@pytest.mark.parametrize("as_dataset", [False, True])
def test_as_of_refuses_a_1d_xarray_series_whose_dim_is_not_time_naming_it(dim, coord,
                                                                          as_dataset):
    # dim 'date' (datetime labels) came back on 'time', silently renamed; 'asset' and
    # no coordinate failed as "needs a DatetimeIndex/time coord, got Index/RangeIndex"
    t = pd.date_range("2020-01-01", periods=3, freq="MS")
    labels = {True: t, False: ["a", "b", "c"], None: None}[coord]
    da = xr.DataArray([1.0, 2.0, 3.0], dims=dim,
                      coords=None if labels is None else {dim: labels})
    with pytest.raises(ql.DataError, match=rf"^as_of: series' one dim is '{dim}', not "
                                           rf"'time'; .*\.rename\(\{{'{dim}': 'time'\}}\)"):
        ql.data.as_of(da.to_dataset(name="v") if as_dataset else da, 5, period="M")
    good = da.rename({dim: "time"}).assign_coords(time=t)
    assert ql.data.as_of(good, 5, period="M").dims == ("time",)


# ---- 5. huge or float counts are refused by name, before any work --------------------

@pytest.fixture(scope="module")
def search():
    ds = ql.data.load().isel(time=slice(0, 300))
    s = ql.strategies.get("volatility_regime", lookback=60)
    return ds, s, ql.optimize.optimize_strategy_parameters(
        s, {"window": [10, 21]}, ds, optimization_method="grid", n_trials=2,
        progress=False, end_date="2000-12-29")


@pytest.mark.parametrize("kw,match", [
    ({"reps": 1e30}, r"^reps must be an integer in \[1, 1000000\] \(at most 1,000,000: "
                     r"more would not end\), got 1e\+30"),
    ({"reps": 10 ** 12}, r"^reps must be an integer in \[1, 1000000\]"),
    ({"reps": 2.5}, r"^reps must be an integer, got 2.5"),
    ({"block_size": 1e30}, r"^block_size must be an integer in \[1, \d+\], got 1e\+30"),
])
def test_reality_check_refuses_a_huge_count_by_name(kw, match, search):
    # reps=1e30: numpy's "Maximum allowed dimension exceeded"; 10**12: a MemoryError of
    # 109 TiB; block_size=1e30 ran, its variances NaN (a RuntimeWarning from arch)
    with pytest.raises(ValueError, match=match):
        search[2].reality_check(**kw)


@pytest.mark.parametrize("kw,name", [({"n_trials": 1e30}, "n_trials"),
                                     ({"n_trials": 2, "n_jobs": 1e30}, "n_jobs"),
                                     ({"n_trials": 2, "population_size": 1e30,
                                       "optimization_method": "genetic"}, "population_size")])
def test_optimize_refuses_a_huge_count_before_any_trial(kw, name, search, monkeypatch):
    # n_trials=1e30 was accepted and searched for ever; n_jobs=1e30 a pool of that size
    ds, s, _ = search
    monkeypatch.setattr(ql.optimize, "_search",
                        lambda *a, **k: pytest.fail("a trial ran with a huge count"))
    kw = {"optimization_method": "tpe", **kw}
    with pytest.raises(ValueError, match=f"^{name} must be an integer in "):
        ql.optimize.optimize_strategy_parameters(s, {"window": [10, 21]}, ds,
                                                 progress=False, **kw)


def test_walk_forward_regime_and_sweep_refuse_a_huge_count_by_name(search):
    ds, s, _ = search
    with pytest.raises(ValueError, match=r"^n_trials must be an integer in \[1, 1000000\]"):
        ql.optimize.WalkForwardOptimizer(n_trials=1e30)
    with pytest.raises(ValueError, match=r"^n_trials must be an integer in \[1, 1000000\]"):
        ql.optimize.RegimeAdaptiveOptimizer(None, n_trials=1e30)
    with pytest.raises(ValueError, match=r"^workers must be an integer in \[1, 1024\]"):
        ql.sweep(s, ds, {"window": [10, 21]}, workers=1e30, progress=False)
    assert _validate.count("reps", 1e6) == 10 ** 6      # the bound itself is a count


# ---- 6. rolling functions and rolling measures on pandas return pandas ----------------

def _pandas_inputs():
    rng = np.random.default_rng(0)
    t = pd.date_range("2020-01-01", periods=300, name="time")
    s = pd.Series(rng.normal(size=300), index=t, name="r")
    df = pd.DataFrame(rng.normal(size=(300, 3)), index=t,
                      columns=pd.Index(["a", "b", "c"], name="asset"))
    return s, df


@pytest.mark.parametrize("name", [n for n in ql.rolling.__all__ if n != "corr"])
@pytest.mark.parametrize("kind", ["Series", "DataFrame"])
def test_rolling_on_pandas_returns_the_same_pandas_type(name, kind):
    # was a bare ndarray: the index (dates) and columns (assets) lost
    s, df = _pandas_inputs()
    x = s if kind == "Series" else df
    got = getattr(ql.rolling, name)(x, 5)
    assert type(got) is type(x) and got.index.equals(x.index)
    if kind == "Series":
        assert got.name == x.name
    else:
        assert got.columns.equals(x.columns)
    np.testing.assert_array_equal(got.to_numpy(), getattr(ql.rolling, name)(x.to_numpy(), 5))
    if name in ("mean", "sum", "var", "std", "min", "max"):   # pandas' own
        want = getattr(x.rolling(5), name)()
        (pd.testing.assert_series_equal if kind == "Series" else pd.testing.assert_frame_equal)(
            got, want, rtol=1e-10, atol=1e-12)


def test_rolling_corr_of_a_dataframe_is_pandas_rolling_corr():
    s, df = _pandas_inputs()
    pd.testing.assert_frame_equal(ql.rolling.corr(df, 20), df.rolling(20).corr(), atol=1e-12)
    with pytest.raises(ValueError, match="corr: NumPy or pandas input must be 2-D"):
        ql.rolling.corr(s, 20)


@pytest.mark.parametrize("name", [n for n in ql.measures.__all__ if n.startswith("rolling_")])
@pytest.mark.parametrize("kind", ["Series", "DataFrame", "int Series"])
def test_rolling_measures_on_pandas_return_the_same_pandas_type(name, kind):
    s, df = _pandas_inputs()
    x = {"Series": s, "DataFrame": df, "int Series": (s > 0).astype(int) + (s > 1)}[kind]
    f = getattr(ql.measures, name)
    two = name in ("rolling_mutual_information", "rolling_transfer_entropy")
    got = f(x, x, 100) if two else f(x, 100)
    assert type(got) is type(x) and got.index.equals(x.index)
    want = f(x.to_numpy(), x.to_numpy(), 100) if two else f(x.to_numpy(), 100)
    np.testing.assert_array_equal(got.to_numpy(), want)


def test_two_pandas_series_on_other_indexes_are_refused_not_paired_by_position():
    s, _ = _pandas_inputs()
    with pytest.raises(ValueError, match="^target is on another index than source"):
        ql.measures.rolling_transfer_entropy(s, s.iloc[1:].reset_index(drop=True)
                                             .set_axis(s.index[:-1]), 100)
    with pytest.raises(ValueError, match=r"^dim='date': pandas input runs along its index"):
        ql.rolling.mean(s, 5, dim="date")


# ---- 8. the store's writes: row_writer's chunk files whole or not at all; the marker ----

def _half_then_full_disk(monkeypatch):
    """Path.write_bytes writing half its bytes, then failing as a full disk: a write
    killed half-way (every chunk file row_writer writes goes through it)."""
    import pathlib

    def half(self, data):
        data = memoryview(data).cast("B")
        with open(self, "wb") as f:
            f.write(data[:len(data) // 2])
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(pathlib.Path, "write_bytes", half)


@pytest.mark.parametrize("codecs", ["none", "blosc", "blosc+crc32c"])
def test_row_writer_killed_mid_chunk_leaves_the_old_chunk(codecs, tmp_path, monkeypatch):
    # the chunk file was written in place: half a chunk read back as zarr's "cannot
    # reshape array of size 12 into shape (8,3)", "error during blosc decompression" or
    # a checksum mismatch, and the rows it held were lost
    import zarr

    from quantlab import store as S
    comp = {"none": None, "blosc": S.compressors(), "blosc+crc32c": S.compressors(True)}
    a = zarr.create_array(tmp_path / "a", shape=(16, 3), chunks=(8, 3), dtype="float64",
                          fill_value=np.nan, compressors=comp[codecs])
    put = S.row_writer(a)
    assert put is not None
    old = np.arange(48.0).reshape(16, 3)
    put(0, old)
    with monkeypatch.context() as m:
        _half_then_full_disk(m)
        with pytest.raises(OSError, match="No space left"):
            put(8, -np.ones((8, 3)))
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "a")[:], old)
    assert sorted(p.name for p in (tmp_path / "a").rglob("*.partial")) == []
    put(8, -np.ones((8, 3)))                    # and the next write replaces it whole
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "a")[8:], -np.ones((8, 3)))


def _csv_panel(folder, n_assets, n_rows, seed=0):
    folder.mkdir()
    t = pd.bdate_range("2000-01-03", periods=n_rows)
    rng = np.random.default_rng(seed)
    for k in range(n_assets):
        c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, t.size)))
        pd.DataFrame({"date": t.strftime("%Y-%m-%d"), "open": c, "high": c * 1.01,
                      "low": c * 0.99, "close": c, "volume": 1000.0}
                     ).to_csv(folder / f"A{k:02d}.csv", index=False)
    return folder


def test_ingest_writes_its_marker_per_chunk_row_not_per_chunk(tmp_path, monkeypatch):
    # the marker (which lists every chunk's file: it grows with the store) was rewritten
    # after every chunk: O(chunks^2) bytes; 64 assets x 3000 bars in 480 chunks: 513
    # writes, 15.5 MB, a quarter of the ingest
    from quantlab import store as S
    src = _csv_panel(tmp_path / "src", n_assets=8, n_rows=60)
    writes = []
    orig = S._Where.write_marker
    monkeypatch.setattr(S._Where, "write_marker",
                        lambda self, state: (writes.append(1), orig(self, state))[1])
    counts = {}
    for ca in (1, 8):
        writes.clear()
        ql.data.ingest(src, tmp_path / f"st{ca}", chunk_time=10, chunk_asset=ca)
        counts[ca] = len(writes)
    assert counts[1] == counts[8] <= 6 + 4      # 6 chunk rows (+ the store's own writes)
    a, b = (ql.data.open(tmp_path / f"st{ca}", verify=True) for ca in (1, 8))
    xr.testing.assert_equal(a.load(), b.load())


# ---- 4. time-first and other date layouts: no pandas parsing warning reaches the user ----

_LAYOUTS = ["2020-01-02 09:30", "09:30 2020-01-02", "9:30 13/01/2020", "09:30:00 01/13/2020",
            "9:30 AM 1/2/2020", "13.01.2020 21:30", "13-01-2020 09:30", "09:30 Jan 2 2020",
            "Thursday January 2 2020 9:30 AM", "20200102T093000"]


@pytest.mark.parametrize("first", _LAYOUTS)
def test_date_layouts_parse_without_a_pandas_warning(first, tmp_path):
    # a guard, found already fine in session 49: pandas' to_datetime without a format
    # warns "Parsing dates in %d/%m/%Y %H:%M format when dayfirst=False" (and "Could not
    # infer format"); quantlab parses with explicit formats (data._date_formats) and
    # DatetimeIndex/Timestamp, which do not warn, and may not silence a warning
    import warnings

    p = tmp_path / "X.csv"
    p.write_text(f"date,close\n{first},1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = ql.data.load_csv(p, asset="X", asset_class="equity").indexes["time"][0]
        ql.data.as_of(pd.Series([1.0], index=pd.DatetimeIndex(["2019-12-01"])),
                      index=[first], period="M")
        assert _validate.date("start_date", first) == got


# ---- 8b. ql.data.open: a chunk longer than its dim is the whole dim --------------------

@pytest.mark.parametrize("chunks", [{"time": 1e30}, {"asset": 10 ** 30}, {"time": 2 ** 62}])
def test_open_with_a_chunk_longer_than_the_store_is_the_whole_dim(chunks, tmp_path):
    # 1e30 failed in dask's rechunk: "ufunc 'isnan' not supported for the input types"
    st = ql.data.ingest(_csv_panel(tmp_path / "src", n_assets=2, n_rows=30), tmp_path / "st")
    whole = ql.data.open(st, chunks={d: -1 for d in chunks})
    got = ql.data.open(st, chunks=chunks)
    assert got["close"].chunks == whole["close"].chunks
    xr.testing.assert_equal(got.load(), whole.load())


def test_walk_forward_fold_bounds_of_a_huge_bar_count_are_refused_by_name():
    # fold_bounds(1e30) built a list of 2e28 folds until the process was killed
    wf = ql.optimize.WalkForwardOptimizer(100, 50, 50, progress=False)
    with pytest.raises(ValueError, match=r"^n_bars=1,000,000,000,000,000,019,884,624,838,656 "
                                         r"gives .* folds \(step_size 50\), more than 1,000,000"):
        wf.fold_bounds(1e30)
    assert len(wf.fold_bounds(50 * 10 ** 6 + 100)) == 10 ** 6    # the bound itself


@pytest.mark.parametrize("te_bins", [1e30, 10 ** 6, 257])
def test_lead_lag_names_te_bins_beyond_the_transfer_entropy_states(te_bins):
    # 1e30 was refused as "bins must be an integer in [1, 16777216]" (transfer_entropy's
    # name), 10**6 as "transfer_entropy: ... 10**18 states exceed the 2**24"
    cm = ql.crossmarket.CrossMarketAnalyzer()
    close = ql.data.load()["close"]
    for a in ("IBM", "MSFT"):
        cm.add_market_data("equity", a, close.sel(asset=a).to_series())
    with pytest.raises(ValueError, match=r"^te_bins must be an integer in \[1, 256\]"):
        cm.lead_lag(max_lag=2, te_bins=te_bins)
    assert len(cm.lead_lag(max_lag=2, te_bins=256)) == 2      # 256**3 = 2**24 states
