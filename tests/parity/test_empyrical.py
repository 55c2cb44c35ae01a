"""ql.metrics equals empyrical(-reloaded) (moved from tests/test_metrics.py); skipped
without empyrical."""
import warnings

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from test_metrics import IDS, M, PAIRED, RTOL, SERIES, _IDX, _bundled_returns, _rate_case

ep = pytest.importorskip("empyrical")


def _dropna(x):
    return x[~np.isnan(x)]


EMPYRICAL_UNARY = {
    "sharpe_ratio": (lambda r: M.sharpe_ratio(r, risk_free=0.0001), lambda r: ep.sharpe_ratio(r, risk_free=0.0001)),
    "sortino_ratio": (lambda r: M.sortino_ratio(r, required_return=0.0002), lambda r: ep.sortino_ratio(r, required_return=0.0002)),
    "downside_risk": (lambda r: M.downside_risk(r, 0.0002), lambda r: ep.downside_risk(r, 0.0002)),
    "calmar_ratio": (M.calmar_ratio, ep.calmar_ratio),
    "max_drawdown": (M.max_drawdown, ep.max_drawdown),
    "annual_return": (M.annual_return, ep.annual_return),
    "annual_return_weekly": (lambda r: M.annual_return(r, period="weekly"), lambda r: ep.annual_return(r, period="weekly")),
    "annual_volatility": (M.annual_volatility, ep.annual_volatility),
    "annual_volatility_ann": (lambda r: M.annual_volatility(r, annualization=365, alpha=3.0), lambda r: ep.annual_volatility(r, annualization=365, alpha=3.0)),
    "cum_returns_final": (M.cum_returns_final, ep.cum_returns_final),
    "cum_returns_final_start": (lambda r: M.cum_returns_final(r, starting_value=100), lambda r: ep.cum_returns_final(r, starting_value=100)),
    "tail_ratio": (M.tail_ratio, ep.tail_ratio),
    "stability_of_timeseries": (M.stability_of_timeseries, ep.stability_of_timeseries),
    "value_at_risk": (M.value_at_risk, ep.value_at_risk),
    "value_at_risk_1pct": (lambda r: M.value_at_risk(r, cutoff=0.01), lambda r: ep.value_at_risk(r, cutoff=0.01)),
    "conditional_value_at_risk": (M.conditional_value_at_risk, ep.conditional_value_at_risk),
}


def _empyrical(fn, r):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(r)


@pytest.mark.parametrize("metric", EMPYRICAL_UNARY)
@pytest.mark.parametrize("name,r", SERIES, ids=IDS)
def test_unary_metrics_equal_empyrical_on_nan_dropped(metric, name, r):
    ours, theirs = EMPYRICAL_UNARY[metric]
    got = ours(r)
    want = _empyrical(theirs, _dropna(r))
    assert isinstance(got, np.float64)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-14, equal_nan=True,
                               err_msg=f"{metric} on {name}")


@pytest.mark.parametrize("metric", EMPYRICAL_UNARY)
def test_unary_metrics_equal_empyrical_on_bundled_data(metric):
    ours, theirs = EMPYRICAL_UNARY[metric]
    for asset, r in _bundled_returns().items():
        np.testing.assert_allclose(ours(r), _empyrical(theirs, _dropna(r)), rtol=RTOL,
                                   err_msg=f"{metric} on {asset}")


@pytest.mark.parametrize("name,r,b", PAIRED, ids=[p[0] for p in PAIRED])
@pytest.mark.parametrize("metric", ["alpha", "beta", "up_capture", "down_capture"])
def test_benchmark_metrics_equal_empyrical(name, r, b, metric):
    ok = ~np.isnan(r) & ~np.isnan(b)
    kw = {"risk_free": 0.0001} if metric == "alpha" else {}
    got = getattr(M, metric)(r, b, **kw)
    want = _empyrical(lambda x: getattr(ep, metric)(x, b[ok], **kw), r[ok])
    np.testing.assert_allclose(got, want, rtol=RTOL, err_msg=f"{metric} on {name}")


def test_types_pandas_numpy_xarray_and_inputs_untouched():
    rng = np.random.default_rng(3)
    arr = rng.normal(0.0005, 0.01, (300, 4))
    keep = arr.copy()
    idx = pd.bdate_range("2020-01-01", periods=300)
    df = pd.DataFrame(arr, index=idx, columns=list("abcd"))
    s = M.sharpe_ratio(df)
    assert isinstance(s, pd.Series) and list(s.index) == list("abcd")
    assert isinstance(M.sharpe_ratio(df["a"]), float)
    np.testing.assert_allclose(s.values, ep.sharpe_ratio(arr), rtol=RTOL)
    out = M.max_drawdown(arr)
    assert isinstance(out, np.ndarray) and out.shape == (4,)
    da_ = xr.DataArray(arr.reshape(300, 2, 2), dims=("time", "asset", "param"),
                       coords={"time": idx})
    x = M.sharpe_ratio(da_)
    assert x.dims == ("asset", "param")
    np.testing.assert_allclose(x.values.ravel(), ep.sharpe_ratio(arr), rtol=RTOL)
    # transposed input, time not first
    np.testing.assert_allclose(M.sharpe_ratio(da_.transpose("param", "time", "asset")).T,
                               x, rtol=RTOL)
    # dask: lazily, chunked over a non-time dim
    lazy = M.annual_volatility(da_.chunk({"asset": 1}))
    assert isinstance(lazy.data, da.Array)
    np.testing.assert_allclose(lazy.compute(), M.annual_volatility(da_), rtol=RTOL)
    # pandas benchmark alignment on the index (inner join)
    bench = pd.Series(rng.normal(0, 0.01, 200), index=idx[100:])
    np.testing.assert_allclose(M.beta(df["a"], bench), ep.beta(df["a"].iloc[100:].values, bench.values), rtol=RTOL)
    # xarray benchmark broadcast over assets
    b = xr.DataArray(rng.normal(0, 0.01, 300), dims=("time",), coords={"time": idx})
    got = M.alpha(da_, b)
    assert got.dims == ("asset", "param")
    np.testing.assert_array_equal(arr, keep)


def test_summary_dataset_and_annual_risk_free():
    eq = ql.data.returns(ql.data.load()["close"])
    ds = M.summary(eq, risk_free_rate=0.02)
    assert set(ds.data_vars) == {n for n, (_, b) in M.METRICS.items() if not b}
    assert ds["sharpe_ratio"].dims == ("asset",)
    rf = 1.02 ** (1 / 252) - 1
    np.testing.assert_allclose(ds["sharpe_ratio"].sel(asset="IBM"),
                               ep.sharpe_ratio(_dropna(eq.sel(asset="IBM").values), risk_free=rf),
                               rtol=RTOL)
    with_b = M.summary(eq, benchmark=eq.sel(asset="IBM", drop=True))
    assert {"alpha", "beta", "information_ratio"} <= set(with_b.data_vars)
    np.testing.assert_allclose(with_b["beta"].sel(asset="IBM"), 1.0, rtol=1e-12)
    assert float(with_b["tracking_error"].sel(asset="IBM")) == pytest.approx(0, abs=1e-12)


RATE_METRICS = [("sharpe_ratio", "risk_free"), ("sortino_ratio", "required_return"),
                ("downside_risk", "required_return"), ("alpha", "risk_free")]


def _call(name, x, key, rate, bench):
    args = (x, bench) if name == "alpha" else (x,)
    return getattr(M, name)(*args, **{key: rate})


@pytest.mark.parametrize("name,key", RATE_METRICS)
@pytest.mark.parametrize("form", ["series", "dataframe", "ndarray_1d", "ndarray_2d",
                                  "dataarray", "dataarray_transposed"])
def test_series_risk_free_and_required_return_equal_empyrical(name, key, form):
    """Was 'cannot reshape array of size 9 into shape ()' / 'float() argument must be
    ... not Series': empyrical's own tests pass a per-period Series."""
    df, rf, bench = _rate_case()
    args = (lambda c: (df[c], bench)) if name == "alpha" else (lambda c: (df[c],))
    want = np.array([getattr(ep, name)(*args(c), **{key: rf}) for c in df])
    da_ = xr.DataArray(df.values, dims=("time", "asset"), coords={"time": _IDX, "asset": list("abc")})
    b_da = xr.DataArray(bench.values, dims="time", coords={"time": _IDX})
    rf_da = xr.DataArray(rf.values, dims="time", coords={"time": _IDX})
    if form == "series":
        got = [_call(name, df[c], key, rf, bench) for c in df]
    elif form == "dataframe":
        got = _call(name, df, key, rf, bench)
    elif form == "ndarray_1d":
        got = [_call(name, df[c].values, key, rf.values, bench.values) for c in df]
    elif form == "ndarray_2d":
        got = _call(name, df.values, key, rf.values, bench.values)
    elif form == "dataarray":
        got = _call(name, da_, key, rf_da, b_da)
    else:
        got = _call(name, da_.T, key, rf, b_da)  # a pd.Series rate on a DataArray
    np.testing.assert_allclose(np.asarray(got, dtype=float), want, rtol=1e-10)


@pytest.mark.parametrize("name,key", RATE_METRICS)
def test_rate_series_aligns_by_date_and_skips_missing_dates(name, key):
    df, rf, bench = _rate_case()
    r = df["a"]
    want = _call(name, r, key, rf, bench)
    # a shuffled index pairs each rate with its own date, not its position
    shuffled = rf.sample(frac=1.0, random_state=0)
    assert _call(name, r, key, shuffled, bench) == pytest.approx(want, rel=1e-12)
    da_ = xr.DataArray(r.values, dims="time", coords={"time": _IDX})
    b_da = xr.DataArray(bench.values, dims="time", coords={"time": _IDX})
    assert float(_call(name, da_.isel(time=slice(None, None, -1)), key, shuffled, b_da)) \
        == pytest.approx(want, rel=1e-12)
    # a rate NaN on a date, or a rate series missing dates, as empyrical (which aligns
    # the subtraction by date): those periods are skipped (alpha: in the mean excess,
    # its beta is the raw series')
    holes = rf.copy()
    holes.iloc[3] = np.nan
    for partial in (holes, rf.iloc[10:]):
        want = getattr(ep, name)(*((r, bench) if name == "alpha" else (r,)), **{key: partial})
        assert _call(name, r, key, partial, bench) == pytest.approx(want, rel=1e-10)
        if name != "alpha":
            keep = partial.reindex(r.index).notna()
            assert getattr(ep, name)(r[keep], **{key: partial[keep[keep].index]}) \
                == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("cutoff", [0, 1, 0.0, 1.0, np.float64(1.0)])
@pytest.mark.parametrize("name", ["value_at_risk", "conditional_value_at_risk"])
def test_cutoff_0_and_1_equal_empyrical(cutoff, name):
    """Was 'cutoff must be in (0, 1)'; empyrical answers min / max (VaR) and
    min / mean (CVaR)."""
    r = np.array([0.0, 0.01, 0.03, 0.0, 0.04, 0.02, 0.0, 0.01, -0.05, np.nan])
    want = getattr(ep, name)(r[:-1], cutoff=cutoff)
    assert getattr(M, name)(r, cutoff=cutoff) == pytest.approx(want, rel=1e-15)
    table = {0: -0.05, 1: 0.04} if name == "value_at_risk" else {0: -0.05, 1: np.mean(r[:-1])}
    assert want == pytest.approx(table[int(cutoff)], rel=1e-14)
    for method in ("parametric", "cornish_fisher"):
        with pytest.raises(ValueError, match=r"cutoff must be in \(0, 1\) for method="):
            getattr(M, name)(r, cutoff=cutoff, method=method)


def test_int_and_bool_returns_equal_float():
    ints = np.array([0, 1, 0, -1, 0, 2, -1])
    bools = np.array([True, False, True, True, False])
    for name, (ql_fn, _) in EMPYRICAL_UNARY.items():
        for x in (ints, bools):
            assert ql_fn(x) == pytest.approx(ql_fn(x.astype(float)), nan_ok=True), name


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # empyrical's inf - inf
def test_inf_return_gives_infinite_mean_as_empyrical():
    """Welford's running mean turned +inf into NaN (inf - inf): sortino was NaN where
    empyrical (and numpy's mean) give +inf."""
    r = np.array([0.01, np.inf, 0.02, -0.01])
    assert M.sortino_ratio(r) == ep.sortino_ratio(r) == np.inf
    for name in ("sharpe_ratio", "annual_volatility", "downside_risk", "max_drawdown",
                 "cum_returns_final", "value_at_risk", "tail_ratio"):
        for x in (r, -r):
            assert getattr(M, name)(x) == pytest.approx(getattr(ep, name)(x), nan_ok=True), name
    # documented convention: the benchmark regression of a series holding inf is NaN
    b = np.array([0.01, -0.02, 0.03, 0.01])
    assert np.isnan(M.beta(r, b)) and np.isnan(M.alpha(r, b))


def test_pandas_benchmark_for_dataarray_returns_aligns_by_date():
    """A pd.Series benchmark was paired with DataArray returns by position: a shuffled
    (or shorter) benchmark gave a silently wrong beta."""
    df, _, bench = _rate_case()
    da_ = xr.DataArray(df.values, dims=("time", "asset"), coords={"time": _IDX, "asset": list("abc")})
    shuffled = bench.sample(frac=1.0, random_state=1)
    for name in ("beta", "alpha", "up_capture", "tracking_error"):
        want = getattr(M, name)(df, bench)
        np.testing.assert_allclose(getattr(M, name)(da_, shuffled).values, want.values, rtol=1e-12)
        np.testing.assert_allclose(getattr(M, name)(da_, bench.iloc[20:]).values,
                                   getattr(M, name)(df.iloc[20:], bench.iloc[20:]).values,
                                   rtol=1e-12)
    assert float(M.beta(da_.sel(asset="a"), shuffled)) == pytest.approx(
        ep.beta(df["a"], shuffled), rel=1e-12)


@pytest.mark.parametrize("which", ["random", "real"])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_single_metrics_equal_empyrical_on_panels(which):
    """Where conventions agree (no NaN, n >= 2) the fast paths equal empyrical."""
    if which == "random":
        r = np.random.default_rng(5).normal(0.0004, 0.015, (1500, 12))
    else:
        close = ql.data.load()["close"].dropna("time").values
        r = close[1:] / close[:-1] - 1
    for metric in ("sharpe_ratio", "sortino_ratio", "annual_return", "annual_volatility",
                   "max_drawdown", "downside_risk", "cum_returns_final"):
        np.testing.assert_allclose(getattr(M, metric)(r), getattr(ep, metric)(r),
                                   rtol=1e-12, err_msg=metric)
    for metric in ("calmar_ratio", "value_at_risk", "conditional_value_at_risk",
                   "tail_ratio"):
        want = [getattr(ep, metric)(r[:, j]) for j in range(r.shape[1])]
        np.testing.assert_allclose(getattr(M, metric)(r), want, rtol=1e-12, err_msg=metric)
