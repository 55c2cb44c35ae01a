"""Issue 32 (metrics3): historical VaR / CVaR / tail_ratio select their order statistics
among the values inside a sampled bracket with a branch-free quickselect, reading the
panel in place (no transposed copy), and DataArray results are built without an
isel/drop_vars template. Checked against plain NumPy (np.percentile, the mean of the
sorted tail), on every bracket shape and its fallback, any block size, 1 or 2 threads."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab import _threads

M = ql.metrics
K = M._k


def _pct(c, q):
    """np.percentile(c, 100 q), except that a rank hit exactly is that value: numpy
    gives NaN for q = 0 over [-inf, ...] (-inf + (x - -inf) * 0), as the kernel never did."""
    s = np.sort(c)
    pos = q * (len(c) - 1)
    return s[int(pos)] if pos == int(pos) else np.percentile(c, 100 * q)


def _ref(r, qs, tail):
    """(len(qs) + 1, m): np.percentile of each column's non-NaN values, then the mean of
    its int((c - 1) tail) + 1 smallest (NaN rows for an empty column / tail < 0)."""
    out = np.full((len(qs) + 1, r.shape[1]), np.nan)
    for j in range(r.shape[1]):
        c = r[:, j][~np.isnan(r[:, j])]
        if len(c) == 0:
            continue
        with np.errstate(invalid="ignore"):
            out[:len(qs), j] = [_pct(c, q) for q in qs]
            if tail >= 0:
                out[-1, j] = np.sort(c)[:int((len(c) - 1) * tail) + 1].mean()
    return out


def _panels():
    rng = np.random.default_rng(320)
    yield "random_2520", rng.normal(0.0004, 0.015, (2520, 9))
    h = rng.normal(0.0004, 0.015, (1300, 12))
    h[rng.random(h.shape) < 0.1] = np.nan
    h[:700, 1] = np.nan                  # listed late: the sample sees half NaN
    h[:, 2] = np.nan                     # never listed
    h[:1250, 3] = np.nan                 # 50 values in a long column: no bracket
    h[:, 4] = 0.002                      # constant: every value ties with the pivot
    h[:, 5] = np.round(h[:, 5], 3)       # ties
    h[3, 6], h[40, 6], h[41, 7] = -np.inf, np.inf, -np.inf
    h[:, 8] = np.sort(h[:, 8])           # sorted: the median-of-3 pivot's easy case
    h[:, 9] = np.sort(h[:, 9])[::-1]
    h[:, 10] = np.where(np.arange(1300) % 2 == 0, 0.01, -0.01)   # two values
    h[::10, 11] = 1.0                    # the strided sample sees only these outliers:
    yield "holes_ties_inf_sorted", h     # its bracket misses, all values are selected
    yield "short", rng.normal(0, 0.01, (37, 5))
    yield "one_row", rng.normal(0, 0.01, (1, 4))
    yield "one_column", rng.normal(0, 0.01, (3000, 1))
    yield "at_the_sample_threshold", rng.normal(0, 0.01, (513, 3))


PANELS = list(_panels())
LEVELS = [([0.05], -1.0), ([], 0.05), ([0.05, 0.95], 0.05), ([0.01, 0.5, 0.99], 0.5),
          ([0.0, 1.0], 1.0), ([0.3], 0.0), ([0.95], 0.95), ([0.05, 0.05], 0.2)]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name,panel", PANELS, ids=[p[0] for p in PANELS])
def test_quantile_kernel_equals_numpy_on_every_bracket_shape(name, panel):
    """Lower tails (no lower bound), upper tails (no upper bound), middle levels (both),
    several levels at once, the cutoffs 0 and 1, a sample that misses the rank, short
    columns (no sample), every block size: np.percentile exactly, the tail mean to 1e-13 (summation order)."""
    for qs, tail in LEVELS:
        want = _ref(panel, qs, tail)
        for block in (1, 7, 32):
            got = K.quantiles(panel, np.array(qs, dtype=np.float64), tail, block)
            np.testing.assert_array_equal(got[:-1], want[:-1], err_msg=f"{qs} {block}")
            np.testing.assert_allclose(got[-1], want[-1], rtol=1e-13, atol=1e-16,
                                       err_msg=f"tail {tail} {block}")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_var_cvar_tail_ratio_alone_equal_numpy_empyrical_and_summary_with_nan_columns():
    """The three quantile metrics alone on a panel with NaN holes, an all-NaN column and
    a one-value column: NumPy's percentile / sorted-tail mean per column, empyrical on
    the NaN-dropped columns (1e-8), summary() to 1e-12."""
    import empyrical as ep

    rng = np.random.default_rng(321)
    r = rng.normal(0.0004, 0.015, (1500, 6))
    r[rng.random(r.shape) < 0.07] = np.nan
    r[:, 2] = np.nan
    r[:-1, 3] = np.nan
    s = M.summary(r)
    ref = _ref(r, [0.05, 0.95], 0.05)
    var, cvar, tr = M.value_at_risk(r), M.conditional_value_at_risk(r), M.tail_ratio(r)
    np.testing.assert_array_equal(var, ref[0])
    np.testing.assert_allclose(cvar, ref[2], rtol=1e-14)
    np.testing.assert_allclose(tr, np.abs(ref[1]) / np.abs(ref[0]), rtol=1e-14)
    assert np.isnan(var[2]) and np.isnan(cvar[2]) and np.isnan(tr[2])
    assert var[3] == cvar[3] == r[-1, 3]
    for name, got in (("value_at_risk", var), ("conditional_value_at_risk", cvar),
                      ("tail_ratio", tr)):
        np.testing.assert_allclose(got, s[name].values, rtol=1e-12, equal_nan=True)
        want = [getattr(ep, name)(r[~np.isnan(r[:, j]), j]) if (~np.isnan(r[:, j])).any()
                else np.nan for j in range(r.shape[1])]
        np.testing.assert_allclose(got, want, rtol=1e-8, equal_nan=True, err_msg=name)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_quantile_metrics_threaded_equal_single_threaded_bit_for_bit(monkeypatch):
    """Columns are independent: 2 threads (blocks of the panel read in place) give the
    bits of 1, for VaR, CVaR, tail_ratio and summary()'s three quantile rows."""
    rng = np.random.default_rng(322)
    big = rng.normal(0.0004, 0.015, (1200, 1100))
    big[rng.random(big.shape) < 0.05] = np.nan
    big[:, 17] = np.nan
    names = ("value_at_risk", "conditional_value_at_risk", "tail_ratio")
    monkeypatch.setenv("QUANTLAB_THREADS", "1")
    one = {n: getattr(M, n)(big) for n in names}
    s1 = M.summary(big)
    monkeypatch.setenv("QUANTLAB_THREADS", "2")
    for n in names:
        np.testing.assert_array_equal(getattr(M, n)(big), one[n], err_msg=n)
    xr.testing.assert_identical(M.summary(big), s1)
    lv = np.array([0.05, 0.95])
    np.testing.assert_array_equal(
        _threads.by_columns(lambda r: K.quantiles(r, lv, 0.05), big, threads=2),
        K.quantiles(big, lv, 0.05))


def _labelled():
    rng = np.random.default_rng(323)
    r = rng.normal(0.0004, 0.015, (300, 4))
    t = pd.bdate_range("2020-01-01", periods=300)
    yield "plain", xr.DataArray(r, dims=("time", "asset"))
    yield "coords_attrs", xr.DataArray(
        r, dims=("time", "asset"), name="ret", attrs={"units": "ret", "periods_per_year": 252.0},
        coords={"time": t, "asset": list("ABCD"), "sector": ("asset", list("xxyy")),
                "region": "EU"})
    mi = pd.MultiIndex.from_arrays([list("aabb"), [1, 2, 1, 2]], names=("grp", "k"))
    yield "multiindex", xr.DataArray(r, dims=("time", "asset"),
                                     coords=xr.Coordinates.from_pandas_multiindex(mi, "asset")
                                     ).assign_coords(time=t)
    yield "time_last", xr.DataArray(r.T, dims=("asset", "time"),
                                    coords={"asset": list("ABCD"), "time": t})
    yield "three_dims", xr.DataArray(
        np.stack([r, -r], axis=2), dims=("time", "asset", "param"),
        coords={"time": t, "asset": list("ABCD"), "param": [1, 2]})
    yield "one_row", xr.DataArray(r[:1], dims=("time", "asset"),
                                  coords={"time": t[:1], "asset": list("ABCD")})
    yield "no_rows", xr.DataArray(r[:0], dims=("time", "asset"),
                                  coords={"time": t[:0], "asset": list("ABCD")})


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name,da", list(_labelled()), ids=lambda x: x if isinstance(x, str) else "")
def test_dataarray_results_built_directly_equal_the_apply_ufunc_path(name, da):
    """The in-memory DataArray path builds its result from the returns' own coordinate
    Variables and indexes (xarray's fast path, no isel/drop_vars template): identical
    (values, coords, indexes, name, attrs) to the dask path's apply_ufunc result, and
    its values are the NumPy path's, for the 8 issue-32 metrics."""
    chunked = da.chunk({d: 2 for d in da.dims if d != "time"}) if da.sizes["time"] else None
    arr = np.moveaxis(da.values, da.dims.index("time"), 0)
    for metric in ("sharpe_ratio", "sortino_ratio", "annual_return", "annual_volatility",
                   "max_drawdown", "calmar_ratio", "value_at_risk",
                   "conditional_value_at_risk"):
        got = getattr(M, metric)(da)
        assert got.name == metric and got.dims == tuple(d for d in da.dims if d != "time")
        np.testing.assert_array_equal(got.values, getattr(M, metric)(arr), err_msg=metric)
        if chunked is not None:
            xr.testing.assert_identical(got, getattr(M, metric)(chunked).compute())
        assert got.attrs == da.attrs and got.attrs is not da.attrs


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_one_pass_metrics_take_one_block_per_thread_with_the_bits_of_one(monkeypatch):
    """The memory-speed one-pass kernels (sums, downside, wealth, drawdown) now get one
    column block per thread (the pool's default of two per thread reads shorter pieces of
    each row: 20% more CPU for the same sums); the bits are those of one thread."""
    rng = np.random.default_rng(324)
    big = rng.normal(0.0004, 0.015, (1000, 1100))
    big[rng.random(big.shape) < 0.05] = np.nan
    names = ("sharpe_ratio", "sortino_ratio", "annual_return", "annual_volatility",
             "max_drawdown", "calmar_ratio")
    monkeypatch.setenv("QUANTLAB_THREADS", "1")
    one = {n: getattr(M, n)(big) for n in names}
    monkeypatch.setenv("QUANTLAB_THREADS", "2")
    widths = []
    for kname in ("sums", "downside", "wealth", "drawdown"):
        orig = getattr(K, kname)

        def spy(r, *a, _orig=orig):
            widths.append(r.shape[1])
            return _orig(r, *a)

        monkeypatch.setattr(K, kname, spy)
    for n in names:
        widths.clear()
        np.testing.assert_array_equal(getattr(M, n)(big), one[n], err_msg=n)
        assert sorted(widths) == [550, 550], (n, widths)
