"""ql.rolling equals its NumPy twins (tests/reference.py), pandas and bottleneck."""
import bottleneck as bn
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import reference as ref
import xarray as xr

import quantlab as ql

STATS = ["sum", "mean", "var", "std", "zscore", "min", "max", "rank"]


def _inputs():
    rng = np.random.default_rng(42)
    n, m = 80, 6
    x = rng.normal(size=(n, m)) * 10 + 100
    holes = x.copy()
    holes[rng.random((n, m)) < 0.2] = np.nan
    holes[:15, 1] = np.nan            # not yet listed
    holes[30:45, 2] = np.nan          # long gap: windows empty, then refill
    holes[:, 3] = 7.0                 # constant: variance exactly 0
    holes[::3, 4] = np.round(holes[::3, 4])  # ties for rank
    holes[:, 5] = np.nan              # all missing
    yield "normal", x
    yield "holes", holes
    yield "ties", rng.integers(0, 4, (n, m)).astype(float)
    yield "one_row", x[:1]


INPUTS = list(_inputs())
IDS = [name for name, _ in INPUTS]
WINDOWS = [(1, None), (3, None), (3, 0), (10, 1), (10, 7), (20, None), (500, None), (500, 2)]


def _pandas(stat, df, window, minp):
    r = df.rolling(window, min_periods=minp)
    if stat == "zscore":
        sd = r.std()
        return ((df - r.mean()) / sd).where(sd > 0)
    if stat == "rank":
        return r.rank(method="average", pct=True)
    return getattr(r, stat)()


@pytest.mark.parametrize("stat", STATS)
@pytest.mark.parametrize("name,x", INPUTS, ids=IDS)
@pytest.mark.parametrize("window,minp", WINDOWS)
def test_rolling_equals_reference_and_pandas(stat, name, x, window, minp):
    got = getattr(ql.rolling, stat)(x, window, min_periods=minp)
    eff = window if minp is None else minp
    want = ref.rolling(stat, x, window, eff)
    msg = f"{stat} window={window} min_periods={minp} input={name}"
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=msg)
    pd_want = _pandas(stat, pd.DataFrame(x), window, minp).to_numpy()
    np.testing.assert_allclose(got, pd_want, rtol=1e-9, atol=1e-9, equal_nan=True,
                               err_msg=msg + " (pandas)")


@pytest.mark.parametrize("name,x", INPUTS, ids=IDS)
@pytest.mark.parametrize("span,minp", [(1, None), (5, None), (20, 3), (10, 15)])
def test_ewm_mean_equals_reference_and_pandas(name, x, span, minp):
    got = ql.rolling.ewm_mean(x, span, min_periods=minp)
    np.testing.assert_allclose(got, ref.ewm_mean(x, span, minp or 1), rtol=1e-10,
                               equal_nan=True)
    pd_want = pd.DataFrame(x).ewm(span=span, adjust=True, min_periods=minp or 0).mean()
    np.testing.assert_allclose(got, pd_want.to_numpy(), rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("name,x", INPUTS[:3], ids=IDS[:3])
@pytest.mark.parametrize("window,minp", [(2, None), (10, None), (10, 4), (200, 5)])
def test_corr_equals_reference_and_pandas(name, x, window, minp):
    got = ql.rolling.corr(x, window, min_periods=minp)
    want = ref.rolling_corr(x, window, window if minp is None else minp)
    both = np.isfinite(want)
    np.testing.assert_allclose(got[both], want[both], rtol=1e-7, atol=1e-9)
    assert not np.isfinite(got[~both]).any(), "NaN pattern differs from the reference"
    pd_want = (pd.DataFrame(x).rolling(window, min_periods=minp).corr()
               .to_numpy().reshape(got.shape))
    fin = np.isfinite(pd_want)  # pandas gives +-inf / noise where a variance is 0
    np.testing.assert_allclose(got[fin & both], pd_want[fin & both], rtol=1e-7, atol=1e-9)
    assert np.array_equal(np.isnan(got[fin]), np.isnan(pd_want[fin]))


def test_corr_on_dataarray_has_labelled_asset_other(equities):
    r = ql.data.returns(equities)
    c = ql.rolling.corr(r, 60)
    assert c.dims == ("time", "asset", "asset_other")
    assert list(c.asset_other.values) == list(r.asset.values)
    assert "asset_class_other" in c.coords
    pair = r.sel(asset=["AAPL", "MSFT"]).to_pandas()
    want = pair["AAPL"].rolling(60).corr(pair["MSFT"])
    np.testing.assert_allclose(c.sel(asset="AAPL", asset_other="MSFT"), want, rtol=1e-8,
                               equal_nan=True)
    np.testing.assert_allclose(c.sel(asset="MSFT", asset_other="AAPL"),
                               c.sel(asset="AAPL", asset_other="MSFT"), equal_nan=True)


@pytest.mark.parametrize("stat", ["mean", "std", "min", "max"])
def test_rolling_equals_bottleneck(stat, equities):
    x = equities["close"].values
    got = getattr(ql.rolling, stat)(x, 20)
    ddof = {"ddof": 1} if stat == "std" else {}
    want = getattr(bn, f"move_{stat}")(x, 20, axis=0, **ddof)
    np.testing.assert_allclose(got, want, rtol=1e-9, equal_nan=True)


@pytest.mark.parametrize("stat", STATS + ["ewm_mean"])
def test_float32_stays_float32(stat):
    x = np.random.default_rng(1).normal(size=(50, 3)).astype(np.float32) + 10
    got = getattr(ql.rolling, stat)(x, 5)
    assert got.dtype == np.float32
    want = getattr(ql.rolling, stat)(x.astype(np.float64), 5)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5, equal_nan=True)


def test_dataarray_dataset_noncontiguous_and_other_dims(equities):
    close = equities["close"]
    got = ql.rolling.mean(close, 20)
    assert got.dims == close.dims and got.name == "close"
    np.testing.assert_allclose(got, close.to_pandas().rolling(20).mean(), equal_nan=True)
    # transposed (asset, time) input gives the same numbers in its own dim order
    t = ql.rolling.std(close.transpose("asset", "time"), 20)
    assert t.dims == ("asset", "time")
    np.testing.assert_allclose(t.T, ql.rolling.std(close, 20), equal_nan=True)
    # a strided NumPy view
    v = close.values[::2, ::2]
    np.testing.assert_allclose(ql.rolling.max(v, 5), pd.DataFrame(v).rolling(5).max(),
                               equal_nan=True)
    # Dataset: every variable with time
    ds = ql.rolling.zscore(equities[["close", "volume"]], 10)
    assert set(ds.data_vars) == {"close", "volume"}
    np.testing.assert_allclose(ds["volume"], ql.rolling.zscore(equities["volume"], 10),
                               equal_nan=True)
    # an extra dim (e.g. a parameter sweep) is carried along
    stacked = xr.concat([close, close * 2], dim="scale")
    out = ql.rolling.mean(stacked, 5)
    np.testing.assert_allclose(out.isel(scale=1), 2 * ql.rolling.mean(close, 5), rtol=1e-12,
                               equal_nan=True)


def test_dask_chunks_compute_lazily_and_equal_eager(equities):
    close = equities["close"]
    lazy = close.chunk({"asset": 2})
    got = ql.rolling.mean(lazy, 20)
    assert isinstance(got.data, da.Array)
    np.testing.assert_allclose(got.compute(), ql.rolling.mean(close, 20), equal_nan=True)
    # chunks along time are merged automatically (a window needs the rows before it)
    by_time = close.chunk({"time": 500})
    np.testing.assert_allclose(ql.rolling.std(by_time, 20).compute(),
                               ql.rolling.std(close, 20), equal_nan=True)
    c = ql.rolling.corr(close.chunk({"time": 1000}), 30)
    np.testing.assert_allclose(c.compute(), ql.rolling.corr(close, 30), equal_nan=True)


@pytest.mark.parametrize("stat", STATS + ["ewm_mean", "corr"])
def test_argument_errors_name_the_argument(stat, equities):
    f = getattr(ql.rolling, stat)
    x = equities["close"]
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="window"):
            f(x, bad)
    with pytest.raises(ValueError, match="'date'"):
        f(x, 5, dim="date")
    if stat != "ewm_mean":
        with pytest.raises(ValueError, match="min_periods"):
            f(x, 5, min_periods=6)
        with pytest.raises(ValueError, match="min_periods"):
            f(x, 5, min_periods=-1)


# ---- SIMD builds (cython_kernels/simd/): the same source compiled for x86-64-v3 / -v4

def _cpuinfo_level():
    """The level from /proc/cpuinfo's flags, independent of the kernel's own check."""
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    flags = set(next(ln for ln in text.splitlines() if ln.startswith("flags")).split())
    if {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= flags:
        return "v4"
    if {"avx2", "fma", "bmi1", "bmi2", "f16c", "movbe"} <= flags:
        return "v3"
    return "baseline"


def test_the_best_build_the_cpu_runs_is_loaded():
    from quantlab._kernels import cpu_level, load

    assert cpu_level() == _cpuinfo_level()
    if _cpuinfo_level() != "baseline":
        assert load("rolling").__name__ == f"quantlab._kernels.rolling_{cpu_level()}"
        assert ql.rolling._k is load("rolling")
    assert load("rolling", "baseline").__name__ == "quantlab._kernels.rolling"
    # modules without SIMD builds fall back to the baseline one
    assert load("metrics").__name__ == "quantlab._kernels.metrics"


def test_simd_level_errors(monkeypatch):
    import quantlab._kernels as kernels

    monkeypatch.setenv("QUANTLAB_SIMD", "avx9")
    with pytest.raises(ValueError, match="QUANTLAB_SIMD must be one of"):
        kernels.load("rolling")
    monkeypatch.setenv("QUANTLAB_SIMD", "v4")
    monkeypatch.setattr(kernels, "cpu_level", lambda: "baseline")
    with pytest.raises(ValueError, match="this CPU runs builds up to 'baseline'"):
        kernels.load("rolling")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_simd_builds_give_the_same_bits(dtype):
    from quantlab._kernels import LEVELS, cpu_level, load

    levels = [lv for lv in LEVELS if LEVELS[lv] <= LEVELS[cpu_level()]]
    if len(levels) == 1:
        pytest.skip("this CPU runs the baseline build only")
    mods = {lv: load("rolling", lv) for lv in levels}
    assert len({m.__name__ for m in mods.values()}) == len(levels)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(700, 203)) * 10 + 100
    x[rng.random(x.shape) < 0.1] = np.nan
    x[:, 5] = 3.0
    x = x.astype(dtype)
    strided = np.asarray(x, order="C")[:, :150]          # rows not contiguous with each other
    calls = [("roll_sum", (20, 5, True)), ("roll_sum", (20, 0, False)),
             ("roll_var", (20, 5, 1, 0)), ("roll_var", (20, 5, 1, 1)), ("roll_var", (20, 5, 1, 2)),
             ("roll_minmax", (20, 5, False)), ("roll_minmax", (7, 7, True)),
             ("ewm_mean", (0.1, 3)), ("roll_rank", (20, 5)), ("roll_corr", (20, 5))]
    for name, args in calls:
        for data in (x, strided) if name != "roll_corr" else (x[:, :20],):
            base = getattr(mods["baseline"], name)(data, *args)
            assert np.isfinite(base).any()
            for lv in levels[1:]:
                out = getattr(mods[lv], name)(data, *args)
                np.testing.assert_array_equal(out.view(np.uint8), base.view(np.uint8),
                                              err_msg=f"{name}{args} {lv}")
