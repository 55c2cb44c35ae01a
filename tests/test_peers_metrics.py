"""ql.metrics' single-metric paths (_SINGLE kernels, a metric called alone) against
summary()'s fused pass and empyrical, on empyrical's edge inputs as columns of one panel
and as lone series: all-NaN, one value, two values, constant (zero variance), zeros,
±inf, a -1 return (wealth 0), returns below -1, 1e154, NaN holes, all-positive,
all-negative; and empyrical's own conftest series (tests/conftest.py of
empyrical-reloaded) as NumPy input.

Conventions that differ from empyrical, by design (module docstring): NaN is skipped
(empyrical's annual_return counts NaN periods); a wealth at or below 0 has an annual
return of -1 (empyrical: inf or NaN from a fractional power of a negative number), and
Calmar follows from it; a constant series has volatility exactly 0 (empyrical ~1e-17);
labelled (pandas/xarray) returns at period="daily" take their index's calendar."""
import warnings

import numpy as np
import pytest

import quantlab as ql

M = ql.metrics
UNARY = ["sharpe_ratio", "sortino_ratio", "calmar_ratio", "max_drawdown", "value_at_risk",
         "conditional_value_at_risk", "annual_return", "annual_volatility", "downside_risk",
         "cum_returns_final", "tail_ratio", "stability_of_timeseries", "total_return",
         "recovery_time", "drawdown_duration", "win_rate", "profit_factor"]


def _columns():
    rng = np.random.default_rng(11)
    n = 60
    base = rng.normal(0.001, 0.02, n)
    cols = {"normal": base, "allnan": np.full(n, np.nan)}
    one = np.full(n, np.nan)
    one[7] = 0.01
    two = one.copy()
    two[30] = -0.02
    cols.update(one=one, two=two, const=np.full(n, 0.001), const_neg=np.full(n, -0.003),
                zeros=np.zeros(n), all_pos=np.abs(base), all_neg=-np.abs(base),
                one_nonzero=np.r_[np.zeros(n - 1), 0.05],
                const_nan=np.where(np.arange(n) % 3 == 0, np.nan, 0.002))
    for name, (i, v) in {"+inf": (10, np.inf), "-inf": (10, -np.inf), "minus1": (10, -1.0),
                         "below-1": (10, -1.5), "1e154": (10, 1e154)}.items():
        c = base.copy()
        c[i] = v
        cols[name] = c
    c = base.copy()
    c[10], c[20] = np.inf, -np.inf
    cols["+-inf"] = c
    c = base.copy()
    c[:25] = np.nan
    c[40:45] = np.nan
    cols["holes"] = c
    return cols


COLS = _columns()
NAMES = list(COLS)
PANEL = np.column_stack([COLS[k] for k in NAMES])
# (metric, column): where empyrical differs by the conventions of the module docstring
CONVENTION = {("annual_return", "-inf"), ("annual_return", "+-inf"),
              ("annual_return", "below-1"), ("calmar_ratio", "-inf"),
              ("calmar_ratio", "+-inf"), ("calmar_ratio", "below-1")}


def _same(a, b, rtol=1e-10, atol=1e-300):
    a, b = float(a), float(b)
    return (np.isnan(a) and np.isnan(b)) or a == b or bool(np.isclose(a, b, rtol=rtol,
                                                                       atol=atol))


@pytest.mark.parametrize("metric", UNARY)
def test_single_path_panel_column_and_summary_agree(metric):
    summ = M.summary(PANEL)[metric].values
    panel = getattr(M, metric)(PANEL)
    for j, name in enumerate(NAMES):
        col = getattr(M, metric)(COLS[name])
        assert _same(panel[j], col), (name, panel[j], col)
        assert _same(panel[j], summ[j]), (name, panel[j], summ[j])


@pytest.mark.parametrize("metric", [u for u in UNARY if u not in
                                    ("total_return", "recovery_time", "drawdown_duration",
                                     "win_rate", "profit_factor")])
def test_single_path_equals_empyrical_on_edge_columns(metric):
    ep = pytest.importorskip("empyrical")
    for name in NAMES:
        x = COLS[name]
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            want = getattr(ep, metric)(x[~np.isnan(x)])
        got = getattr(M, metric)(x)
        if (metric, name) in CONVENTION:
            assert not _same(got, want)
            continue
        if metric == "annual_volatility" and name.startswith("const"):
            assert got == 0.0 and abs(want) < 1e-15     # empyrical's rounding
            continue
        assert _same(got, want, 1e-9), (name, got, want)


def test_wealth_at_or_below_zero_conventions():
    """annual_return -1 where the capital is lost (or more); Calmar = that / |max dd|."""
    for name in ("minus1", "below-1", "-inf", "+-inf"):
        assert M.annual_return(COLS[name]) == -1.0, name
        mdd = M.max_drawdown(COLS[name])
        # +inf then -inf: the drawdowns after the infinite peak are NaN (skipped, as
        # empyrical's nanmin): the one before it remains
        assert mdd <= -1.0 or name == "+-inf"
        assert M.calmar_ratio(COLS[name]) == pytest.approx(-1.0 / abs(mdd), rel=1e-15)


@pytest.mark.parametrize("bench", ["b", "b_const", "b_holes", "b_allpos", "b_allneg"])
def test_benchmark_metrics_single_summary_and_empyrical(bench):
    rng = np.random.default_rng(12)
    n = 80
    b = rng.normal(0.0005, 0.01, n)
    bb = {"b": b, "b_const": np.full(n, 0.002),
          "b_holes": np.where(rng.random(n) < 0.2, np.nan, b), "b_allpos": np.abs(b),
          "b_allneg": -np.abs(b)}[bench]
    base = 0.9 * b + rng.normal(0, 0.005, n)
    cols = [base, np.full(n, np.nan), np.full(n, 0.001), np.zeros(n), b.copy(), -b,
            np.where(rng.random(n) < 0.3, np.nan, base), np.r_[base[:3], -1.0, base[4:]]]
    panel = np.column_stack(cols)
    ep = pytest.importorskip("empyrical")
    summ = M.summary(panel, benchmark=bb)
    for metric in ("alpha", "beta", "up_capture", "down_capture", "information_ratio",
                   "tracking_error"):
        single = getattr(M, metric)(panel, bb)
        for j, c in enumerate(cols):
            got = getattr(M, metric)(c, bb)
            assert _same(single[j], got) and _same(got, summ[metric].values[j]), (metric, j)
            if hasattr(ep, metric):
                ok = ~np.isnan(c) & ~np.isnan(bb)
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")
                    want = getattr(ep, metric)(c[ok], bb[ok])
                assert _same(got, want, 1e-9, 1e-15), (metric, j, got, want)


def _empyrical_conftest():
    """empyrical-reloaded tests/conftest.py input_data, as arrays with their period."""
    rand = np.random.RandomState(1337)
    noise = rand.normal(0, 0.001, 1000)
    uniform = rand.uniform(-0.01, 0.01, 1000)
    mixed = np.array([np.nan, 1.0, 10.0, -4.0, 2.0, 3.0, 2.0, 1.0, -10.0]) / 100
    nan_at = rand.choice(1000, rand.randint(1, 10))
    sparse = noise.copy()
    sparse[nan_at] = np.nan
    flat = np.full(1000, 0.01)
    sparse_flat = flat.copy()
    sparse_flat[nan_at] = np.nan
    seq = np.array([0.0, 1.0, 10.0, -4.0, 2.0, 3.0, 2.0, 1.0, -10.0]) / 100
    return {
        "simple_benchmark": (np.array([0.0, 1, 0, 1, 0, 1, 0, 1, 0]) / 100, "daily"),
        "positive_returns": (np.array([1.0, 2, 1, 1, 1, 1, 1, 1, 1]) / 100, "daily"),
        "negative_returns": (np.array([0.0, -6, -7, -1, -9, -2, -6, -8, -5]) / 100, "daily"),
        "all_negative_returns": (np.array([-2.0, -6, -7, -1, -9, -2, -6, -8, -5]) / 100,
                                 "daily"),
        "mixed_returns": (mixed, "daily"), "weekly_returns": (seq, "weekly"),
        "monthly_returns": (seq, "monthly"), "one_return": (np.array([0.01]), "daily"),
        "udu_returns": (np.array([0.1, -0.1, 0.1]), "daily"),
        "empty_returns": (np.array([]), "daily"), "noise": (noise, "daily"),
        "noise_uniform": (uniform, "daily"), "inv_noise": (-noise, "daily"),
        "flat_line_0": (np.zeros(1000), "daily"), "flat_line_1": (np.full(9, 0.01), "daily"),
        "flat_line_1_tz": (flat, "daily"), "flat_line_yearly": (np.full(3, 0.03), "yearly"),
        "pos_line": (np.linspace(0, 1, 1000), "daily"),
        "neg_line": (np.linspace(0, -1, 1000), "daily"), "sparse_noise": (sparse, "daily"),
        "sparse_flat_line_1_tz": (sparse_flat, "daily"),
    }


EP_INPUTS = _empyrical_conftest()
PERIODIC = ("sharpe_ratio", "sortino_ratio", "calmar_ratio", "annual_return",
            "annual_volatility", "downside_risk")


@pytest.mark.parametrize("name", EP_INPUTS)
def test_empyrical_conftest_series_single_summary_and_empyrical(name):
    ep = pytest.importorskip("empyrical")
    x, period = EP_INPUTS[name]
    summ = M.summary(x, period=period)
    for metric in UNARY:
        kw = {"period": period} if metric in PERIODIC else {}
        got = getattr(M, metric)(x, **kw)
        assert _same(got, summ[metric]), (metric, got, float(summ[metric]))
        if not hasattr(ep, metric):
            continue
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            want = getattr(ep, metric)(x[~np.isnan(x)], **kw)
        if metric == "annual_volatility" and "flat" in name:
            assert got == 0.0 and abs(want) < 1e-14      # empyrical's rounding
            continue
        assert _same(got, want, 1e-9), (metric, got, want)
