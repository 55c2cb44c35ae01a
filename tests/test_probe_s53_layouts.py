"""Session 53, helper "layouts": the same numbers whatever container or memory layout
the data comes in (or a clear error), against the plain C-contiguous float64 result."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql


def test_integrity_reads_a_dataarray_by_its_time_dim_in_either_order():
    # a (trial, time) DataArray was read with its 40 trials as the rows: pbo 0.743 vs
    # 0.686, reality_check's SPA p-value 0.04 vs 0.25, without an error
    x = np.random.default_rng(1).normal(0.0003, 0.01, (400, 40))
    x[:, 3] += 0.002
    da = xr.DataArray(x, dims=("time", "trial"))
    got, want = ql.integrity.pbo(da.T, n_splits=8), ql.integrity.pbo(x, n_splits=8)
    assert got["pbo"] == want["pbo"]
    np.testing.assert_array_equal(got["logits"], want["logits"])
    assert ql.integrity.reality_check(da.T, reps=200) == ql.integrity.reality_check(x, reps=200)


def _big_endian(x):
    """x with its float values byte-swapped ('>f8'), as some files give them."""
    if isinstance(x, xr.Dataset):
        return x.map(lambda a: a.copy(data=a.values.astype(">f8")))
    return x.astype(">f8")


def test_big_endian_pandas_series_equal_native_ones_where_pandas_aligns_them():
    # pandas' take/reindex (aligning returns, benchmark, rates, lagged series, factors)
    # raised "Big-endian buffer not supported on little-endian compiler"
    t = pd.date_range("2020-01-01", periods=60, freq="B")
    rng = np.random.default_rng(0)
    r = pd.Series(rng.normal(0, 0.01, 60), index=t)
    b = pd.Series(rng.normal(0, 0.01, 57), index=t[3:])
    rf = pd.Series(1e-4, index=t[2:])
    for got, want in [
            (ql.metrics.beta(_big_endian(r), b), ql.metrics.beta(r, b)),
            (ql.metrics.alpha(r, _big_endian(b)), ql.metrics.alpha(r, b)),
            (ql.metrics.information_ratio(_big_endian(r.to_frame("a")), b),
             ql.metrics.information_ratio(r.to_frame("a"), b)),
            (ql.metrics.sharpe_ratio(r, risk_free=_big_endian(rf)),
             ql.metrics.sharpe_ratio(r, risk_free=rf))]:
        assert np.array_equal(np.asarray(got), np.asarray(want))
    monthly = pd.Series(np.arange(12.0), index=pd.date_range("2020-01-31", periods=12,
                                                             freq="ME"))
    days = pd.date_range("2020-01-01", periods=250, freq="B")
    pd.testing.assert_series_equal(ql.data.as_of(_big_endian(monthly), 5, index=days),
                                   ql.data.as_of(monthly, 5, index=days))


def test_factor_momentum_takes_big_endian_factors():
    ds = ql.data.load().isel(time=slice(0, 400))
    # 19 months: betas over 12 (the default 36 left the signal all NaN, comparing nothing)
    s = ql.strategies.get("factor_momentum", beta_window=12, lookback=3)
    f = s.default_inputs(ds)["factors"]
    want = s.signal(ds, factors=f)
    assert int(np.isfinite(want).sum()) > 100
    xr.testing.assert_identical(s.signal(ds, factors=_big_endian(f)), want)


def test_arrow_bools_are_taken_as_nullable_booleans_are():
    # bool[pyarrow] with <NA>, or beside a float column, was refused as "dtype object"
    # ("boolean" was accepted): pandas' is_numeric_dtype is False for Arrow bools
    t = pd.date_range("2020-01-01", periods=30, freq="B")
    s = pd.Series([True, False, None] * 10, index=t)
    df = pd.DataFrame({"a": [True, False, True] * 10, "b": np.arange(30.0)}, index=t)
    for arrow, nullable in [(s.astype("bool[pyarrow]"), s.astype("boolean")),
                            (df.astype({"a": "bool[pyarrow]"}), df.astype({"a": "boolean"}))]:
        got, want = ql.rolling.mean(arrow, 3), ql.rolling.mean(nullable, 3)
        assert np.array_equal(got.to_numpy(), want.to_numpy(), equal_nan=True)
        assert np.array_equal(np.asarray(ql.metrics.sharpe_ratio(arrow)),
                              np.asarray(ql.metrics.sharpe_ratio(nullable)), equal_nan=True)


@pytest.mark.parametrize("fn", ["mean", "std", "zscore", "ewm_mean", "rank", "corr"])
def test_big_endian_float32_rolls_as_float32_does(fn):
    # '>f4' (NumPy, pandas) was computed in float64: a float64 result differing from the
    # same values' in '<f4' (std by 9e-10), where a '>f4' DataArray gave float32
    x = np.random.default_rng(0).normal(0, 1, (50, 3)).astype(np.float32)
    want = getattr(ql.rolling, fn)(x, 5)
    for big in (x.astype(">f4"), pd.DataFrame(x.astype(">f4"))):
        got = getattr(ql.rolling, fn)(big, 5)
        assert np.asarray(got).dtype == np.float32
        assert np.array_equal(np.asarray(got).ravel(), want.ravel(), equal_nan=True)


def test_entries_and_exits_are_matched_by_label_in_any_asset_order():
    # exits with the assets in another order than entries failed with xarray's
    # "cannot align objects with join='exact'" (a signal in another order than the
    # data is matched by label)
    ds = ql.data.load().isel(time=slice(0, 300))
    close = ds["close"]
    ent = (close > close.rolling(time=10).mean()).fillna(False)
    ex = (close < close.rolling(time=10).mean()).fillna(False)
    rev = [3, 2, 1, 0]
    want = ql.backtest(ds, entries=ent, exits=ex, progress=False).equity
    got = ql.backtest(ds, entries=ent.isel(asset=rev), exits=ex, progress=False).equity
    xr.testing.assert_equal(got.sel(asset=want.asset.values), want)
    xr.testing.assert_equal(ql.signals.from_entries_exits(ent, ex.isel(asset=rev)),
                            ql.signals.from_entries_exits(ent, ex))
    with pytest.raises(ValueError, match="other 'asset' labels"):
        ql.signals.from_entries_exits(ent, ex.assign_coords(asset=list("ABCD")))


def test_check_drawdown_takes_a_dataarray_of_any_dim_name_or_without_coords():
    # a DataArray on 'time' without a coordinate was a KeyError 'time', one on 'date'
    # xarray's "Dimension 'time' not found"; a (time, 1) table pandas' "Data must be
    # 1-dimensional"
    rm = ql.risk.RiskManager()
    v = np.array([100, 110, 99, np.nan, 104, 120, 90.0])
    want = rm.check_drawdown(v)
    for x in (xr.DataArray(v, dims="time"), xr.DataArray(v, dims="date")):
        assert rm.check_drawdown(x) == want
    t = pd.date_range("2020-01-01", periods=7)
    assert rm.check_drawdown(xr.DataArray(v, coords={"time": t}))["breaches"][0]["peak"] == t[5]
    with pytest.raises(ValueError, match="one curve"):
        rm.check_drawdown(pd.DataFrame({"a": v, "b": v}))


def test_rolling_corr_of_a_dataframe_without_columns_is_empty():
    # was NumPy's "cannot reshape array of size 0 into shape (0)" (empty input gives an
    # empty result, as the module says; pandas itself fails: "No objects to concatenate")
    t = pd.date_range("2020-01-01", periods=6)
    out = ql.rolling.corr(pd.DataFrame(np.zeros((6, 0)), index=t), 3)
    assert out.shape == (0, 0) and out.index.nlevels == 2
    assert ql.rolling.corr(pd.DataFrame(np.zeros((0, 2)), columns=["a", "b"]), 3).shape == (0, 2)


def test_returns_of_pandas_prices_keep_their_index_and_take_nullable_floats():
    # a DataFrame gave a bare ndarray (its dates and columns lost), a Float64 one
    # "x must be numeric (bool, int or float), got dtype object"
    p = pd.DataFrame({"a": [100.0, 110.0, np.nan, 99.0], "b": [1.0, 2.0, 3.0, 4.0]},
                     index=pd.date_range("2020-01-01", periods=4))
    want = pd.DataFrame(ql.data.returns(p.to_numpy()), index=p.index, columns=p.columns)
    pd.testing.assert_frame_equal(ql.data.returns(p), want)
    pd.testing.assert_frame_equal(ql.data.returns(p.astype("Float64")), want)
    pd.testing.assert_series_equal(ql.data.returns(p["a"]), want["a"])


def test_regimes_and_the_regime_ensemble_run_on_dask_backed_data():
    # dask-backed prices (ql.data.open gives them) failed with dask's "unsupported
    # operand type(s) for +: 'Array' and 'str'" joining the regime labels
    ds = ql.data.load().isel(time=slice(0, 400))
    lazy = ds.chunk({"time": 37})
    xr.testing.assert_identical(ql.ensemble.detect_regimes(lazy),
                                ql.ensemble.detect_regimes(ds))
    e = ql.ensemble.Ensemble([ql.strategies.get("volatility_regime"),
                              ql.strategies.get("spc")], allocation="regime")
    xr.testing.assert_allclose(e.signal(lazy).compute(), e.signal(ds), rtol=1e-12)


def test_a_rate_dataarray_in_either_dim_order_for_pandas_returns():
    # an (asset, time) rate DataArray for DataFrame returns was read with its assets as
    # the index: "risk_free has no rate for ['A0', ...] of the returns"
    t = pd.date_range("2020-01-01", periods=40, freq="B")
    rng = np.random.default_rng(2)
    r = pd.DataFrame(rng.normal(0, 0.01, (40, 3)), index=t, columns=["A0", "A1", "A2"])
    rf = xr.DataArray(np.abs(rng.normal(1e-4, 1e-5, (40, 3))), dims=("time", "asset"),
                      coords={"time": t, "asset": r.columns})
    want = ql.metrics.sharpe_ratio(r, risk_free=rf)
    pd.testing.assert_series_equal(ql.metrics.sharpe_ratio(r, risk_free=rf.T), want)
    pd.testing.assert_series_equal(ql.metrics.sortino_ratio(r, required_return=rf.T),
                                   ql.metrics.sortino_ratio(r, required_return=rf))


def test_a_benchmark_or_rate_with_a_dim_the_returns_lack_adds_it_to_the_result():
    # a benchmark on (time, k) failed with xarray's "('time', 'asset') must be a permuted
    # list of ('time', 'asset', 'k')"; a singleton k gives the numbers of k's one member
    t = pd.date_range("2020-01-01", periods=50, freq="B")
    rng = np.random.default_rng(0)
    r = xr.DataArray(rng.normal(0, 0.01, (50, 3)), dims=("time", "asset"),
                     coords={"time": t, "asset": list("abc")})
    b = xr.DataArray(rng.normal(0, 0.01, (50, 2)), dims=("time", "k"),
                     coords={"time": t, "k": ["x", "y"]})
    for name in ("beta", "alpha", "information_ratio", "up_capture"):
        fn = getattr(ql.metrics, name)
        out = fn(r, b)
        assert out.dims == ("asset", "k")
        for k in ("x", "y"):
            np.testing.assert_array_equal(out.sel(k=k).values, fn(r, b.sel(k=k)).values)
        np.testing.assert_array_equal(fn(r.chunk({"time": 7}), b.isel(k=[0])).compute()
                                      .isel(k=0).values, fn(r, b.isel(k=0)).values)
    rf = xr.DataArray(np.full((50, 1), 1e-4), dims=("time", "k"), coords={"time": t})
    np.testing.assert_array_equal(ql.metrics.sharpe_ratio(r, risk_free=rf).isel(k=0).values,
                                  ql.metrics.sharpe_ratio(r, risk_free=rf.isel(k=0)).values)


def test_a_benchmark_or_rate_on_another_clock_is_refused_not_a_nan_metric():
    # returns on naive dates with a benchmark on time-zone-aware ones (yfinance gives
    # those), or on dates of which none is the returns', gave beta NaN without a word
    t = pd.date_range("2020-01-01", periods=60, freq="B")
    rng = np.random.default_rng(0)
    r = pd.Series(rng.normal(0, 0.01, 60), index=t)
    b = pd.Series(rng.normal(0, 0.01, 60), index=t)
    ny = b.tz_localize("America/New_York")
    da = xr.DataArray(r.to_numpy(), coords={"time": t})
    for call in (lambda: ql.metrics.beta(r, ny), lambda: ql.metrics.beta(r.tz_localize("UTC"), b),
                 lambda: ql.metrics.beta(da, ny), lambda: ql.metrics.summary(r, ny),
                 lambda: ql.metrics.sharpe_ratio(da, risk_free=ny * 0 + 1e-4)):
        with pytest.raises(ValueError, match="aware and naive dates are not paired"):
            call()
    with pytest.raises(ValueError, match="shares no date"):
        ql.metrics.beta(r, b.set_axis(t + pd.Timedelta("1h")))
    # both aware, both naive: the same numbers
    assert ql.metrics.beta(r.tz_localize("America/New_York"), ny) == ql.metrics.beta(r, b)
    assert float(ql.metrics.summary(r.tz_localize("UTC"), b.tz_localize("UTC"))["beta"]) == \
        float(ql.metrics.summary(r, b)["beta"])


def test_stress_test_and_correlation_research_on_an_asset_time_panel():
    # an (asset, time) Dataset's returns went to pandas with the dates as columns: the
    # parametric stress scenarios took the dates' covariance (pnl off by 0.08, silently),
    # run_research_analysis('correlation') raised a KeyError 'IBM'
    ds = ql.data.load().isel(time=slice(0, 800))
    rm = ql.risk.RiskManager()
    w = pd.Series({"IBM": 0.5, "MSFT": 0.5})
    pd.testing.assert_frame_equal(rm.stress_test(w, data=ds.transpose()),
                                  rm.stress_test(w, data=ds))
    args = (["IBM", "MSFT"], "correlation")
    got = ql.run_research_analysis(*args, data=ds.transpose(), progress=False)
    want = ql.run_research_analysis(*args, data=ds, progress=False)
    for key in ("with", "rolling_average"):
        pd.testing.assert_series_equal(got["IBM"]["correlation"][key],
                                       want["IBM"]["correlation"][key])


def test_position_size_matches_returns_to_the_signal_by_label():
    # returns with the assets in another order than the signal were refused ("signal and
    # returns must have the same time and asset coordinates")
    ds = ql.data.load().isel(time=slice(0, 300))
    rm = ql.risk.RiskManager()
    sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds)
    r = ql.data.returns(ds["close"])
    want = rm.position_size(sig, r)
    xr.testing.assert_identical(rm.position_size(sig, r.isel(asset=[3, 2, 1, 0])), want)
    with pytest.raises(ql.DataError, match="same time and asset"):
        rm.position_size(sig, r.assign_coords(asset=list("ABCD")))
