"""ql.metrics equals its DESIGN.md definitions (tests/reference/) and closed forms for VaR
(empyrical(-reloaded) parity: tests/parity/test_empyrical.py)."""
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
import reference as ref
import xarray as xr
from scipy import integrate, stats

import quantlab as ql

M = ql.metrics
RTOL = 1e-10


def _series():
    rng = np.random.default_rng(2024)
    yield "random", rng.normal(0.0004, 0.018, 600)
    yield "fat_tails", rng.standard_t(3, 800) * 0.01
    yield "trending_up", np.abs(rng.normal(0.001, 0.002, 300))
    yield "all_negative", -np.abs(rng.normal(0.001, 0.01, 200))
    yield "flat", np.zeros(50)
    yield "constant", np.full(40, 0.001)
    yield "ties", np.round(rng.normal(0, 0.01, 400), 3)
    # empyrical's own example series (tests/test_stats.py)
    yield "empyrical_simple", np.array([0.0, 0.01, 0.03, 0.0, 0.04, 0.02, 0.0, 0.01, -0.05] * 4)
    yield "empyrical_mixed", np.array([np.nan, 0.01, 0.1, -0.04, 0.02, 0.03, 0.02, 0.01, -0.1])
    yield "empyrical_weekly", np.array([0.0, -0.06, -0.07, -0.01, -0.09, 0.02, -0.06, -0.08, -0.05])
    yield "one", np.array([0.02])
    yield "two", np.array([0.02, -0.01])
    with_holes = rng.normal(0.0005, 0.02, 500)
    with_holes[rng.random(500) < 0.1] = np.nan
    with_holes[:30] = np.nan
    yield "holes", with_holes


SERIES = list(_series())
IDS = [n for n, _ in SERIES]


def _bundled_returns():
    r = ql.data.returns(ql.data.load()["close"])
    return {a: r.sel(asset=a).values for a in r.asset.values}


def _paired():
    rng = np.random.default_rng(7)
    b = rng.normal(0.0003, 0.012, 700)
    r = 0.8 * b + rng.normal(0.0002, 0.01, 700)
    yield "random", r, b
    r2, b2 = r.copy(), b.copy()
    r2[rng.random(700) < 0.05] = np.nan
    b2[rng.random(700) < 0.05] = np.nan
    yield "holes", r2, b2
    eq = _bundled_returns()
    yield "bundled", eq["MSFT"], eq["IBM"]


PAIRED = list(_paired())


@pytest.mark.parametrize("name,r,b", PAIRED, ids=[p[0] for p in PAIRED])
def test_active_metrics_equal_definitions(name, r, b):
    np.testing.assert_allclose(M.tracking_error(r, b), ref.tracking_error(r, b), rtol=RTOL)
    np.testing.assert_allclose(M.information_ratio(r, b), ref.information_ratio(r, b), rtol=RTOL)
    np.testing.assert_allclose(M.tracking_error(r, b, period="weekly"),
                               ref.tracking_error(r, b, 52), rtol=RTOL)


@pytest.mark.parametrize("metric", ["recovery_time", "drawdown_duration", "win_rate",
                                    "profit_factor"])
@pytest.mark.parametrize("name,r", SERIES, ids=IDS)
def test_design_metrics_equal_definitions(metric, name, r):
    np.testing.assert_allclose(getattr(M, metric)(r), getattr(ref, metric)(r), rtol=RTOL,
                               equal_nan=True, err_msg=f"{metric} on {name}")


def test_design_metrics_hand_computed():
    # wealth 1 -> 1.1 -> 0.88 -> 0.968 -> 1.1132: max drawdown -20 % from the 1.1 peak at
    # period 1, trough at 2, regained at period 4: recovery 2 periods, 2 periods underwater
    r = np.array([0.10, -0.20, 0.10, 0.15, -0.01])
    assert M.max_drawdown(r) == pytest.approx(-0.2)
    assert M.recovery_time(r) == 2
    assert M.drawdown_duration(r) == 2
    assert M.win_rate(r) == pytest.approx(3 / 5)
    assert M.profit_factor(r) == pytest.approx(0.35 / 0.21)
    assert M.total_return(r) == pytest.approx(1.1 * 0.8 * 1.1 * 1.15 * 0.99 - 1)
    assert np.isnan(M.recovery_time(np.array([0.1, -0.5, 0.1])))   # never regained
    assert M.win_rate(np.array([0.0, 0.0, 0.01, np.nan])) == 1.0   # zeros do not count
    assert M.profit_factor(np.array([0.01, 0.02])) == np.inf


def test_parametric_and_cornish_fisher_var():
    r = np.random.default_rng(5).standard_t(4, 2000) * 0.01
    mu, sd = r.mean(), r.std(ddof=1)
    s, k = stats.skew(r), stats.kurtosis(r)
    z = stats.norm.ppf(0.05)
    assert M.value_at_risk(r, method="parametric") == pytest.approx(mu + sd * z, rel=1e-10)
    assert M.conditional_value_at_risk(r, method="parametric") == pytest.approx(
        mu - sd * stats.norm.pdf(z) / 0.05, rel=1e-10)
    zcf = z + (z**2 - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s**2 / 36
    assert M.value_at_risk(r, method="cornish_fisher") == pytest.approx(mu + sd * zcf, rel=1e-10)
    # CF expected shortfall: the mean of the CF quantile function over (0, cutoff)
    nd = NormalDist()

    def q_cf(u):
        zz = nd.inv_cdf(u)
        return mu + sd * (zz + (zz**2 - 1) * s / 6 + (zz**3 - 3 * zz) * k / 24
                          - (2 * zz**3 - 5 * zz) * s**2 / 36)

    es, _ = integrate.quad(q_cf, 1e-12, 0.05, limit=200)
    assert M.conditional_value_at_risk(r, method="cornish_fisher") == pytest.approx(es / 0.05, rel=1e-6)
    # with normal data the three methods agree roughly, and parametric ~ historical
    g = np.random.default_rng(6).normal(0, 0.01, 200_000)
    for meth in ("parametric", "cornish_fisher"):
        assert M.value_at_risk(g, method=meth) == pytest.approx(M.value_at_risk(g), rel=0.02)


def test_quantile_selection_equals_numpy_percentile():
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 10, 101, 1000):
        for data in (rng.normal(size=n), np.round(rng.normal(size=n), 1), np.zeros(n)):
            for q in (0.0, 0.01, 0.05, 0.5, 0.95, 1.0 - 1e-9):
                got = M.value_at_risk(data, cutoff=q) if 0 < q < 1 else None
                if got is not None:
                    assert got == pytest.approx(np.percentile(data, 100 * q), rel=1e-12, abs=1e-15)


def test_empty_and_all_nan_give_nan():
    for r in (np.array([]), np.full(10, np.nan)):
        for name in ("sharpe_ratio", "max_drawdown", "annual_return", "value_at_risk",
                     "tail_ratio", "recovery_time", "win_rate"):
            assert np.isnan(getattr(M, name)(r)), name


def test_bad_arguments_are_named():
    r = np.zeros(10)
    with pytest.raises(ValueError, match="period must be one of"):
        M.sharpe_ratio(r, period="hourly")
    with pytest.raises(ValueError, match="method must be one of"):
        M.value_at_risk(r, method="monte_carlo")
    with pytest.raises(ValueError, match="cutoff"):
        M.value_at_risk(r, cutoff=1.5)
    with pytest.raises(ValueError, match="needs factor_returns"):
        M._metric("alpha", r)
    with pytest.raises(ValueError, match="'date'"):
        M.sharpe_ratio(xr.DataArray(r, dims=("time",)), dim="date")
    with pytest.raises(ValueError, match="periods"):
        M.beta(r, np.zeros(5))


# ---- empyrical drop-in: per-period rate series, cutoff range, argument checks

_IDX = pd.bdate_range("2021-01-01", periods=60)


def _rate_case():
    rng = np.random.default_rng(11)
    x = rng.normal(0.001, 0.01, (60, 3))
    x[5, 1] = np.nan
    df = pd.DataFrame(x, index=_IDX, columns=list("abc"))
    rf = pd.Series(rng.uniform(0, 0.0005, 60), index=_IDX)
    bench = pd.Series(rng.normal(0, 0.01, 60), index=_IDX)
    return df, rf, bench


def test_rate_series_of_wrong_length_or_other_dates_is_refused():
    df, rf, _ = _rate_case()
    with pytest.raises(ValueError, match=r"risk_free .*60 values.*got shape \(5,\)"):
        M.sharpe_ratio(df["a"].values, risk_free=np.zeros(5))
    with pytest.raises(ValueError, match="required_return .*got shape"):
        M.sortino_ratio(df, required_return=np.zeros((60, 2)))
    other = pd.Series(0.001, index=pd.bdate_range("1990-01-01", periods=60))
    with pytest.raises(ValueError, match="risk_free shares no date with the returns"):
        M.sharpe_ratio(df["a"], risk_free=other)
    da_ = xr.DataArray(df.values, dims=("time", "asset"), coords={"time": _IDX})
    with pytest.raises(ValueError, match="risk_free has no 'time' dimension"):
        M.sharpe_ratio(da_, risk_free=xr.DataArray(rf.values, dims="date"))


def test_numeric_options_are_validated_with_named_errors():
    r = np.random.default_rng(0).normal(0, 0.01, 50)
    cases = [
        (lambda: M.sharpe_ratio(r, annualization=0), ValueError, "annualization must be > 0, got 0"),
        (lambda: M.sharpe_ratio(r, annualization=-5), ValueError, "annualization must be > 0"),
        (lambda: M.annual_return(r, annualization=True), TypeError, "annualization must be a real"),
        (lambda: M.alpha(r, r, annualization=float("nan")), ValueError, "annualization"),
        (lambda: M.annual_volatility(r, alpha=0), ValueError, "alpha must be > 0, got 0"),
        (lambda: M.value_at_risk(r, cutoff=-0.1), ValueError, r"cutoff must be in \[0, 1\]"),
        (lambda: M.value_at_risk(r, cutoff=float("nan")), ValueError, "cutoff"),
        (lambda: M.value_at_risk(r, cutoff="5%"), TypeError, "cutoff must be a real"),
        (lambda: M.cum_returns_final(r, starting_value=float("nan")), ValueError, "starting_value"),
        (lambda: M.sharpe_ratio(r, risk_free=float("nan")), ValueError, "risk_free"),
        (lambda: M.sortino_ratio(r, required_return="1%"), TypeError, "required_return"),
        (lambda: M.beta(r, r, risk_free="x"), TypeError, "risk_free"),
        (lambda: M.summary(r, risk_free_rate=-2), ValueError, "risk_free_rate must be > -1"),
        (lambda: M.sharpe_ratio(r, period=3), ValueError, "period must be one of"),
    ]
    for call, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            call()


@pytest.mark.parametrize("bad", [
    np.array([0.01 + 1j, -0.02, 0.03]), pd.date_range("2020-01-01", periods=3).values,
    pd.to_timedelta([1, 2, 3], "D").values, np.array(["0.01", "0.02", "0.03"])],
    ids=["complex", "datetime", "timedelta", "str"])
def test_complex_datetime_and_text_returns_are_refused(bad):
    """Complex input used to lose its imaginary part silently (ComplexWarning)."""
    for x in (bad, pd.Series(bad), pd.DataFrame({"a": bad}), xr.DataArray(bad, dims="time")):
        with pytest.raises(TypeError, match="returns"):
            M.sharpe_ratio(x)
    with pytest.raises(TypeError, match="returns"):
        M.summary(bad)
    ok = np.array([0.01, -0.02, 0.03])
    with pytest.raises(TypeError, match="factor_returns"):
        M.beta(ok, bad)
    with pytest.raises(TypeError, match="risk_free"):
        M.sharpe_ratio(ok, risk_free=bad)


def test_benchmark_array_of_another_length_is_refused():
    df, _, bench = _rate_case()
    da_ = xr.DataArray(df.values, dims=("time", "asset"), coords={"time": _IDX})
    for r in (df, df["a"], df.values, da_):
        with pytest.raises(ValueError, match="factor_returns has"):
            M.beta(r, bench.values[:40])


@pytest.mark.parametrize("name", ["alpha", "beta", "up_capture", "down_capture"])
def test_one_column_benchmark_is_that_series(name):
    # empyrical's test_beta passes simple_benchmark_df (a one-column DataFrame) with a
    # Series of returns: NumPy's "more dimensions than allowed by the axis remapping";
    # an (n, 1) array for one series too
    df, _, bench = _rate_case()
    f = getattr(M, name)
    want = f(df["a"], bench)
    da_ = xr.DataArray(df["a"].values, dims="time", coords={"time": _IDX})
    for r, b in [(df["a"], bench.to_frame("b")), (df["a"].values, bench.values[:, None]),
                 (df["a"].values[:, None], bench.values[:, None, None]),
                 (da_, bench.to_frame("b")), (da_, bench.values[:, None])]:
        assert np.ravel(f(r, b)) == pytest.approx([want], rel=1e-12)
    s = M.summary(df["a"], benchmark=bench.to_frame("b"))
    assert float(s[name]) == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match=r"factor_returns has shape \(60, 2\), the returns"):
        f(df.values, np.c_[bench.values, bench.values])


def test_summary_aligns_a_pandas_benchmark_on_the_index():
    # summary() dropped the returns' index and paired a pandas benchmark by position: in
    # another order (empyrical's alignment tests) beta came out -0.02 for 0.27; on fewer
    # dates it raised. The metric functions align on the index; summary() now does too
    df, _, bench = _rate_case()
    for r in (df["a"], df):
        for b in (bench.iloc[::-1], bench.iloc[7:], bench.iloc[7:].to_frame()):
            s = M.summary(r, benchmark=b)
            for name in ("alpha", "beta", "up_capture", "down_capture", "tracking_error"):
                np.testing.assert_allclose(s[name].values, getattr(M, name)(r, b),
                                           rtol=1e-12)


# ---- issue 32: a metric called alone runs only its own pass ------------------------

SINGLE = ["sharpe_ratio", "sortino_ratio", "annual_return", "annual_volatility",
          "max_drawdown", "calmar_ratio", "value_at_risk", "conditional_value_at_risk",
          "downside_risk", "cum_returns_final", "total_return", "tail_ratio"]


def _panels():
    """(name, (time, asset) array) the per-metric paths are checked on."""
    rng = np.random.default_rng(32)
    r = rng.normal(0.0004, 0.015, (2520, 40))
    yield "random", r
    h = r.copy()
    h[rng.random(h.shape) < 0.08] = np.nan
    h[:300, 1] = np.nan            # listed late
    h[:, 2] = np.nan               # never listed
    h[:, 3] = 0.002                # constant
    h[5, 4], h[50, 5] = np.inf, -np.inf
    h[7, 6], h[9, 6] = np.inf, -np.inf
    h[:, 7] = np.round(h[:, 7], 3)  # ties
    h[::20, 8] = 0.5               # the strided quantile sample sees only the outliers
    yield "holes_inf_constant_ties", h
    close = ql.data.load()["close"].values
    yield "real", close[1:] / close[:-1] - 1
    yield "float32", r[:300].astype(np.float32)
    yield "int", rng.integers(-1, 2, (50, 5))
    yield "empty", np.empty((0, 3))
    yield "length_1", r[:1, :4]
    yield "odd_length", r[:7, :3]  # the 4-row unrolled loops' remainder
    yield "length_77", h[:77, :9]  # sums' 8-row sweeps: 64 + 8 rows, then a remainder of 5


@pytest.mark.parametrize("name,panel", list(_panels()), ids=lambda x: x if isinstance(x, str) else "")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_single_metric_fast_paths_equal_summary(name, panel, monkeypatch):
    """Each metric alone runs its own pass (sums, downside, wealth, drawdown, quantiles
    of the asked levels), never the fused accumulate; its values equal summary()'s."""
    s = M.summary(panel)
    fused = M._k.accumulate

    def refuse(*a, **k):
        raise AssertionError("a single metric ran the fused pass")

    for metric in SINGLE:
        monkeypatch.setattr(M._k, "accumulate", refuse)
        if metric in ("sharpe_ratio", "annual_volatility", "sortino_ratio", "downside_risk"):
            monkeypatch.setattr(M._k, "accumulate", fused)  # the ±inf columns' fallback
        got = getattr(M, metric)(panel)
        monkeypatch.setattr(M._k, "accumulate", fused)
        want = s[metric].values
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, equal_nan=True,
                                   err_msg=metric)
        if metric in ("cum_returns_final", "total_return", "max_drawdown"):
            # the product and drawdown passes are the fused pass's operations, in order
            np.testing.assert_array_equal(got, want, err_msg=metric)
        da_ = xr.DataArray(panel, dims=("time", "asset"))
        np.testing.assert_allclose(getattr(M, metric)(da_).values, want, rtol=1e-12,
                                   atol=0, equal_nan=True, err_msg=metric)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_moment_metrics_alone_do_not_run_the_fused_pass(monkeypatch):
    """Before issue 32 every metric ran the fused pass (all accumulators and a log1p per
    value) to keep one number. Finite data never needs it now."""
    r = np.random.default_rng(1).normal(0.0004, 0.015, (300, 7))
    r[np.random.default_rng(2).random(r.shape) < 0.1] = np.nan
    want = {m: M.summary(r)[m].values for m in SINGLE}
    monkeypatch.setattr(M._k, "accumulate", lambda *a, **k: 1 / 0)
    monkeypatch.setattr(np, "log1p", lambda *a, **k: 1 / 0)
    for m in SINGLE:
        np.testing.assert_allclose(getattr(M, m)(r), want[m], rtol=1e-12, err_msg=m)


@pytest.mark.parametrize("cutoff", [0.0, 0.001, 0.01, 0.05, 0.3, 0.5, 0.95, 0.999, 1.0])
@pytest.mark.parametrize("n", [1, 2, 511, 513, 2520])
def test_quantile_bracket_equals_numpy_percentile(cutoff, n):
    """VaR/CVaR select among the values a 128-value sample brackets (the sample may
    miss: a pattern in step with its stride, heavy ties, NaN); equal to numpy's."""
    rng = np.random.default_rng(n)
    cols = [rng.normal(0, 0.01, n), np.round(rng.normal(0, 0.01, n), 2),
            np.where(np.arange(n) % max(n // 128, 1) == 0, 5.0, rng.normal(0, 0.01, n)),
            np.sort(rng.normal(0, 0.01, n))[::-1].copy()]
    holes = rng.normal(0, 0.01, n)
    holes[rng.random(n) < 0.6] = np.nan
    cols.append(holes)
    r = np.column_stack(cols)
    var = M.value_at_risk(r, cutoff=cutoff)
    cvar = M.conditional_value_at_risk(r, cutoff=cutoff)
    for j in range(r.shape[1]):
        c = r[~np.isnan(r[:, j]), j]
        if c.size == 0:
            assert np.isnan(var[j]) and np.isnan(cvar[j])
            continue
        assert var[j] == pytest.approx(np.percentile(c, 100 * cutoff), rel=1e-12, abs=1e-300)
        k = int((c.size - 1) * cutoff) + 1
        assert cvar[j] == pytest.approx(np.sort(c)[:k].mean(), rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("which", ["random", "real"])
def test_wealth_product_precision_over_10000_bars(which):
    """annual_return/cum_returns_final compound by a plain product (no log1p per value):
    against exp(math.fsum(log1p(r))) over 10,000 bars the relative error stays far
    below the 2·n·2⁻⁵³ = 2.2e-12 bound (measured 1.1e-14 random, 4.6e-15 real)."""
    import math

    rng = np.random.default_rng(3)
    if which == "random":
        r = rng.normal(0.0004, 0.02, (10_000, 8))
    else:
        close = ql.data.load()["close"].values
        real = close[1:] / close[:-1] - 1
        real = real[~np.isnan(real).any(axis=1)]
        # each asset's real days, resampled to 10,000
        r = np.column_stack([real[rng.integers(0, len(real), 10_000), j % real.shape[1]]
                             for j in range(8)])
    got = M.cum_returns_final(r) + 1.0
    for j in range(r.shape[1]):
        exact = math.exp(math.fsum(math.log1p(x) for x in r[:, j]))
        assert abs(got[j] / exact - 1) < 2e-13


@pytest.mark.parametrize("layout", ["time_first", "time_last", "3d"])
def test_dataarray_result_is_what_apply_ufunc_builds(layout):
    """An in-memory DataArray skips apply_ufunc's overhead (issue 32): the result keeps
    the same dims, coordinates (not those along time), name and attrs."""
    rng = np.random.default_rng(4)
    times = pd.bdate_range("2020-01-01", periods=60)
    da_ = xr.DataArray(rng.normal(0, 0.01, (60, 3)), dims=("time", "asset"),
                       coords={"time": times, "asset": ["a", "b", "c"],
                               "asset_class": ("asset", ["eq", "eq", "fx"]),
                               "month": ("time", times.month), "source": "test"},
                       attrs={"units": "return"})
    if layout == "time_last":
        da_ = da_.T
    elif layout == "3d":
        da_ = da_.expand_dims(run=[1, 2]).transpose("asset", "time", "run")
    for name in ("sharpe_ratio", "annual_return", "max_drawdown", "value_at_risk",
                 "stability_of_timeseries"):
        got = getattr(M, name)(da_)
        want = xr.apply_ufunc(
            lambda x: M._compute_np([name], np.moveaxis(x, -1, 0), None,
                                    M._params("daily", None))[name],
            da_, input_core_dims=[["time"]]).rename(name)
        xr.testing.assert_identical(got, want)
    # dask-backed input keeps the apply_ufunc path (lazy)
    lazy = M.sharpe_ratio(da_.chunk())
    assert lazy.chunks is not None
    xr.testing.assert_allclose(lazy.compute(), M.sharpe_ratio(da_))


def test_metric_docstrings_share_their_parameter_blocks_without_unfilled_slots():
    """Issue 26: the repeated Parameters/Returns/Raises entries are one shared block each
    (quantlab._doc.fill); every public function renders them in full, no ``{{slot}}``
    left, and each block reads the same wherever it is used."""
    import inspect
    import textwrap

    uses = {k: 0 for k in M._DOC}
    for name in M.__all__:
        doc = inspect.getdoc(getattr(M, name))
        if doc is None:
            continue
        assert "{{" not in doc and "}}" not in doc, name
        for key, block in M._DOC.items():
            uses[key] += textwrap.dedent(block).strip() in doc
    # the blocks every returns metric takes, and the benchmark block of the paired ones
    assert uses["returns"] == 23 and uses["dim"] == 23 and uses["per_column"] == 23
    assert uses["type_error"] == 24 and uses["factor_returns"] == 6
    assert uses["period"] == uses["annualization"] == 11
    assert uses["period_error"] == 12  # annualization_factor raises it too
    assert "risk_free : float or array-like, default 0.0\n    Risk-free rate PER PERIOD" in \
        inspect.getdoc(M.sharpe_ratio)


def _simd_panel():
    rng = np.random.default_rng(33)
    x = rng.normal(0.0004, 0.015, (700, 203))
    x[rng.random(x.shape) < 0.05] = np.nan
    x[:, 5] = 0.001                               # constant
    x[:200, 6] = np.nan                           # listed late
    x[rng.random(x.shape) < 0.002] = np.inf
    x[rng.random(x.shape) < 0.002] = -np.inf
    return x


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_metrics_simd_builds_give_the_same_bits():
    """Issue 32: metrics.pyx is also built for x86-64-v3/v4 (cython_kernels/simd/); every
    kernel of every build the CPU runs gives the baseline build's bits (no FMA)."""
    from quantlab._kernels import LEVELS, cpu_level, load

    levels = [lv for lv in LEVELS if LEVELS[lv] <= LEVELS[cpu_level()]]
    if len(levels) == 1:
        pytest.skip("this CPU runs the baseline build only")
    mods = {lv: load("metrics", lv) for lv in levels}
    assert len({m.__name__ for m in mods.values()}) == len(levels)
    assert M._k is mods[levels[-1]]
    x = _simd_panel()
    b = np.broadcast_to(np.random.default_rng(4).normal(0, 0.01, (700, 1)), x.shape)
    calls = [("sums", (x,)), ("downside", (x, 0.001)), ("wealth", (x,)), ("drawdown", (x,)),
             ("quantiles", (x, np.array([0.05, 0.5, 0.95]), 0.05)),
             ("accumulate", (x, np.log1p(x), b, 0.0))]
    for name, args in calls:
        base = np.ascontiguousarray(getattr(mods["baseline"], name)(*args))
        assert np.isfinite(base).any()
        for lv in levels[1:]:
            out = np.ascontiguousarray(getattr(mods[lv], name)(*args))
            np.testing.assert_array_equal(out.view(np.uint8), base.view(np.uint8),
                                          err_msg=f"{name} {lv}")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_fused_kernel_reads_column_blocks_and_a_broadcast_benchmark_in_place(monkeypatch):
    """Issue 32: summary() copied every column block (and the benchmark broadcast to a
    full (time, column) panel) before the fused kernel; it now reads strided views, with
    the same bits as on contiguous copies, on 1 or 2 threads."""
    x = _simd_panel()
    b1 = np.random.default_rng(4).normal(0, 0.01, 700)
    view = x[:, 50:150]
    bview = np.broadcast_to(b1[:, None], view.shape)
    assert bview.strides[1] == 0 and not view.flags.c_contiguous
    copy, bcopy = np.ascontiguousarray(view), np.ascontiguousarray(bview)
    np.testing.assert_array_equal(M._k.accumulate(view, np.log1p(view), bview, 0.0),
                                  M._k.accumulate(copy, np.log1p(copy), bcopy, 0.0))
    monkeypatch.setenv("QUANTLAB_THREADS", "1")
    one = M.summary(x, benchmark=b1)
    monkeypatch.setenv("QUANTLAB_THREADS", "2")
    two = M.summary(x, benchmark=b1)
    xr.testing.assert_identical(one, two)
    # the benchmark series was never materialised as a (time, column) panel
    seen = []
    fused = M._k.accumulate

    def spy(r, logr, b, rr):
        seen.append(b.strides)
        return fused(r, logr, b, rr)

    monkeypatch.setattr(M._k, "accumulate", spy)
    M.beta(x, b1)
    assert seen and all(s[1] == 0 for s in seen)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_single_metrics_on_a_panel_with_nan_holes_equal_empyrical_per_column():
    """Each of issue 32's metrics called alone on a panel whose columns have different
    NaN holes equals empyrical on each column's NaN-dropped series (1e-8)."""
    import empyrical as ep

    rng = np.random.default_rng(35)
    r = rng.normal(0.0004, 0.015, (500, 8))
    r[rng.random(r.shape) < 0.07] = np.nan
    r[:120, 2] = np.nan
    r[400:, 3] = np.nan
    for metric in ("sharpe_ratio", "sortino_ratio", "annual_return", "annual_volatility",
                   "max_drawdown", "calmar_ratio", "value_at_risk",
                   "conditional_value_at_risk"):
        got = getattr(M, metric)(r)
        want = [getattr(ep, metric)(r[~np.isnan(r[:, j]), j]) for j in range(r.shape[1])]
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-14, err_msg=metric)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_single_metric_passes_read_column_blocks_in_place_same_bits_on_1_or_2_threads(
        monkeypatch):
    """Issue 32 (metrics2): the one-pass kernels (sums, downside, wealth, drawdown) and
    the quantile kernel took only C-contiguous panels, so every threaded column block
    was copied first (a copy per value: the second core never paid). They now read a
    block of a C-ordered panel in place, with the bits of a contiguous copy, and a
    metric gives the same bits on 1 or 2 threads."""
    x = _simd_panel()
    view = x[:, 50:150]
    assert not view.flags.c_contiguous
    copy = np.ascontiguousarray(view)
    k = M._k
    for kern in (k.sums, k.wealth, k.drawdown, lambda r: k.downside(r, 0.001),
                 lambda r: k.quantiles(r, np.array([0.05, 0.95]), 0.05)):
        np.testing.assert_array_equal(kern(view), kern(copy))
    with pytest.raises(ValueError, match="contiguous"):
        k.sums(x[:, ::2])
    big = np.random.default_rng(7).normal(0.0004, 0.015, (1000, 1100))
    big[np.random.default_rng(8).random(big.shape) < 0.05] = np.nan
    names = SINGLE + ["value_at_risk", "conditional_value_at_risk"]
    monkeypatch.setenv("QUANTLAB_THREADS", "1")
    one = {n: getattr(M, n)(big) for n in names}
    monkeypatch.setenv("QUANTLAB_THREADS", "2")
    seen = []
    for kname in ("sums", "downside", "wealth", "drawdown", "quantiles"):
        orig = getattr(k, kname)

        def spy(r, *a, _orig=orig, **kw):
            seen.append(np.shares_memory(r, big))
            return _orig(r, *a, **kw)

        monkeypatch.setattr(k, kname, spy)
    for n in names:
        np.testing.assert_array_equal(getattr(M, n)(big), one[n], err_msg=n)
    assert seen and all(seen)   # every block read in place, none copied
    from quantlab import _threads
    for kern in (k.sums, k.wealth, k.drawdown, lambda r: k.downside(r, 0.001)):
        np.testing.assert_array_equal(   # forced onto 2 threads: views, same bits
            _threads.by_columns(kern, big, threads=2, contiguous=False), kern(big))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("shape", ["1-D", "one column"])
def test_single_metrics_on_one_series_with_nan_holes_equal_empyrical_and_summary(shape):
    """The issue-32 metrics alone on one series (1-D, or a (time, 1) panel) with NaN
    holes: empyrical's value on the NaN-dropped series (1e-8) and summary()'s (1e-12)."""
    import empyrical as ep

    rng = np.random.default_rng(36)
    s = rng.normal(0.0004, 0.015, 900)
    s[rng.random(900) < 0.1] = np.nan
    s[:50] = np.nan
    r = s if shape == "1-D" else s[:, None]
    clean = s[~np.isnan(s)]
    summ = M.summary(s[:, None])
    for metric in ("sharpe_ratio", "sortino_ratio", "annual_return", "annual_volatility",
                   "max_drawdown", "calmar_ratio", "value_at_risk",
                   "conditional_value_at_risk"):
        got = np.ravel(getattr(M, metric)(r))
        assert got.shape == (1,)
        assert got[0] == pytest.approx(getattr(ep, metric)(clean), rel=1e-8, abs=1e-14), metric
        assert got[0] == pytest.approx(float(summ[metric].values[0]), rel=1e-12), metric


def test_dataarray_result_keeps_coordinates_as_before_without_indexing_time():
    """The DataArray wrapper builds its result from the returns' own coordinate Variables
    and indexes (no isel/drop_vars template: ~0.1-0.3 ms a call). The result's
    coordinates, name and attrs are those of isel(time=0, drop=True) without the
    coordinates that span time: a coordinate on (time, asset) is dropped, as the dask
    path (apply_ufunc) and xarray's own reductions drop it (the in-memory path used to
    keep its first row, a value of one date presented as the whole series')."""
    n, m = 300, 4
    r = np.random.default_rng(9).normal(0.0004, 0.015, (n, m))
    da = xr.DataArray(r, dims=("time", "asset"),
                      coords={"time": pd.bdate_range("2020-01-01", periods=n),
                              "asset": list("ABCD"), "sector": ("asset", list("xxyy")),
                              "flag": ("time", np.arange(n) % 2), "region": "EU",
                              "w": (("time", "asset"), r * 0 + 1)},
                      attrs={"units": "ret"})
    got = M.annual_volatility(da)
    want = da.isel(time=0, drop=True).drop_vars("w").copy(
        data=M.annual_volatility(r)).rename("annual_volatility")
    xr.testing.assert_identical(got, want)
    xr.testing.assert_identical(got, M.annual_volatility(da.chunk({"asset": 2})).compute())
    assert got.xindexes["asset"].index.equals(da.indexes["asset"])
    # the result is its own object: renaming or re-attributing it leaves the input alone
    got.attrs["units"] = "x"
    got.coords["sector"].attrs["k"] = 1
    assert da.attrs == {"units": "ret"} and da.coords["sector"].attrs == {}


def test_metrics_alone_of_a_constant_column_that_starts_late_are_exact():
    # an outside probe: a column with no value in its first 64 rows (an asset listed
    # late holding a constant return) was summed unshifted, and alone its volatility
    # came out 7.6e-11 and its Sharpe 1.3e9 (summary(): 0 and inf)
    rng = np.random.default_rng(7)
    n, lead = 300, np.r_[0, 1, 63, 64, 65, 80, 127, 128, 129, 250, 297]
    consts = rng.uniform(-0.01, 0.01, lead.size)
    r = np.tile(consts, (n, 1))
    for j, k in enumerate(lead):
        r[:k, j] = np.nan
    want = ql.metrics.summary(r)
    assert (ql.metrics.annual_volatility(r) == 0).all()
    np.testing.assert_array_equal(ql.metrics.sharpe_ratio(r), want["sharpe_ratio"])
    np.testing.assert_array_equal(ql.metrics.sharpe_ratio(r), np.sign(consts) * np.inf)
    np.testing.assert_array_equal(ql.metrics.sortino_ratio(r), want["sortino_ratio"])
    # near-constant: the shift is the column's first value wherever it starts
    noisy = 1e-4 + 1e-9 * rng.standard_normal((n, lead.size))
    noisy[np.isnan(r)] = np.nan
    exact = np.nanstd(noisy, axis=0, ddof=1) * np.sqrt(252)
    np.testing.assert_allclose(ql.metrics.annual_volatility(noisy), exact, rtol=1e-9)


@pytest.mark.parametrize("shape", [(0, 3), (0,), (0, 0)])
def test_metrics_of_an_empty_dask_array_are_nan_as_in_memory(shape):
    # an outside probe: dask-backed returns with no rows raised ZeroDivisionError from
    # dask's gufunc
    dims = ("time", "asset")[:len(shape)]
    mem = xr.DataArray(np.zeros(shape), dims=dims)
    lazy = mem.chunk()
    for f in (ql.metrics.sharpe_ratio, ql.metrics.max_drawdown, ql.metrics.value_at_risk):
        got, want = f(lazy), f(mem)
        assert got.shape == want.shape and np.isnan(got.values).all()
    got = ql.metrics.summary(lazy, benchmark=lazy.isel(asset=0) if len(shape) > 1 and
                             shape[1] else None)
    assert all(np.isnan(got[k].values).all() for k in got.data_vars)


def test_annual_return_after_losing_more_than_the_capital_is_minus_one():
    # an outside probe: [0.01, -2, 0.01] gave +432 % a year (the power of a negative
    # wealth, its sign flipping with the parity of 252 / n), one more bar -1320 %
    for r in ([0.01, -2.0, 0.01], [0.01, -2.0, 0.01, 0.02], [0.01, -1.0, 0.01]):
        r = np.array(r)
        assert ql.metrics.annual_return(r) == -1.0
        assert float(ql.metrics.summary(r)["annual_return"]) == -1.0
        assert ql.metrics.calmar_ratio(r) == pytest.approx(-1.0 / abs(ql.metrics.max_drawdown(r)))
    assert ql.metrics.cum_returns_final(np.array([0.01, -2.0, 0.01])) == pytest.approx(
        1.01 * -1.0 * 1.01 - 1.0)             # the wealth itself stays arithmetic


def test_benchmark_rates_after_losing_more_than_the_capital_are_minus_one():
    # the review: up/down capture and alpha took the same powers of a negative wealth
    # (down_capture -0, 0.78, 0.89, 1.25 or NaN with 1..5 down bars; alpha +6.7e43 a
    # year at 252 periods, -4.5e43 at 251)
    for n_dn in range(1, 6):
        r = np.r_[-2.0, np.full(n_dn - 1, -0.01), 0.01, 0.02, 0.01]
        b = np.r_[np.full(n_dn, -0.01), 0.01, 0.01, 0.01]
        want = -1.0 / (0.99 ** 252 - 1.0)   # the strategy lost it all; the benchmark 0.99^252
        assert ql.metrics.down_capture(r, b) == pytest.approx(want)
        assert float(ql.metrics.summary(r, benchmark=b)["down_capture"]) == pytest.approx(want)
    r, b = np.r_[-10.0, np.full(4, 0.01)], np.r_[0.0, np.linspace(-0.01, 0.01, 4)]
    for ann in (251, 252):
        assert ql.metrics.alpha(r, b, annualization=ann) == -1.0


def test_cornish_fisher_outside_its_domain_is_nan_and_a_constant_is_itself():
    # an outside probe: 49 zeros and one 0.01 (skew 6.9, excess kurtosis 46) gave CVaR
    # +0.0102 above VaR +0.0032 and above the largest return; a constant series NaN
    spike = np.r_[np.zeros(49), 0.01]
    for f in (M.value_at_risk, M.conditional_value_at_risk):
        assert np.isnan(f(spike, method="cornish_fisher"))
        assert f(np.full(20, 0.003), method="cornish_fisher") == 0.003
        assert f(np.full(20, 0.003), method="parametric") == 0.003
    # where the expansion is a tail (increasing on [Φ⁻¹(1e-15), z]) both are kept, and
    # the tail mean is at most the quantile; a monotone check on a fine grid agrees
    rng = np.random.default_rng(3)
    nd, kept = NormalDist(), 0
    for i in range(120):
        r = rng.standard_t(rng.choice([2.5, 4, 30]), 60) * 0.01 + (rng.random(60) < 0.05) * \
            rng.choice([-0.1, 0.1])
        s, k = stats.skew(r), stats.kurtosis(r)
        for cutoff in (0.01, 0.05, 0.2):
            z = nd.inv_cdf(cutoff)
            grid = np.linspace(nd.inv_cdf(1e-15), z, 20001)
            zcf = grid + (grid**2 - 1) * s / 6 + (grid**3 - 3 * grid) * k / 24 \
                - (2 * grid**3 - 5 * grid) * s**2 / 36
            tail = bool(np.all(np.diff(zcf) >= -1e-12))
            var = M.value_at_risk(r, cutoff=cutoff, method="cornish_fisher")
            cvar = M.conditional_value_at_risk(r, cutoff=cutoff, method="cornish_fisher")
            assert np.isfinite(var) == tail and np.isfinite(cvar) == tail, (i, cutoff, s, k)
            if tail:
                kept += 1
                assert cvar <= var + 1e-15
    assert 40 < kept < 350   # both kinds of samples were drawn


def test_cornish_fisher_tail_check_of_a_cutoff_below_1e_15_checks_its_whole_tail():
    # an outside review: the check ran on [Φ⁻¹(1e-15), z] with its ends reversed, so a
    # slope negative inside [z, Φ⁻¹(1e-15)] (here at x = -20) was kept
    from quantlab.metrics import _cf_tail
    assert np.isnan(_cf_tail(0.0, 1.0, 0.4, 0.24, -37.0, 1.0))
    assert _cf_tail(0.0, 1.0, 0.0, 0.5, -37.0, 1.0) == 1.0   # a tail increasing all along
