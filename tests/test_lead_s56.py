"""Session 56 (lead).

One rule for "can this strategy run on this data set": ``Strategy.lacks(ds)`` replaced five copies of the rule (``signal``'s check, the research
analysis' skips, StrategyExplorer's choices and error, notebooks 01 and 03), which had
drifted into four wordings of the same two reasons.
"""
import warnings

import numpy as np
import pandas as pd
import pytest

import quantlab as ql
from quantlab.errors import DataError

BUNDLED = {"attention", "complex_systems", "cross_sectional_momentum", "factor_momentum",
           "fractal_chaos", "info_theory", "liquidity_timing", "quantum", "sentiment_regime",
           "spc", "volatility_regime"}
PANELS = [n for n in ql.data.available().index
          if n not in ("ff3", "macro", "core_cpi", "rates")]   # inputs, not prices


@pytest.fixture(scope="module")
def sets():
    out = {}
    for n in PANELS:
        try:
            out[n] = ql.data.load(n).isel(time=slice(-300, None))
        except ModuleNotFoundError:   # fx_1980s: a GPL package quantlab does not install
            pass
    return out


@pytest.mark.parametrize("data_set", PANELS)
def test_lacks_is_empty_exactly_when_the_signal_runs(sets, data_set):
    if data_set not in sets:
        pytest.skip(f"{data_set}: its package is not installed")
    ds = sets[data_set]
    ran = set()
    for name in ql.strategies.names():
        s = ql.strategies.get(name)
        why = s.lacks(ds)
        inputs = s.default_inputs(ds) if s.inputs else {}
        if why:
            with pytest.raises(ValueError) as e:
                s.signal(ds, **inputs)
            assert str(e.value) == f"{name} {why}"
        else:
            ran.add(name)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # short data: "no decision" warnings
                sig = s.signal(ds, **inputs)
            assert sig.sizes == {"time": ds.sizes["time"], "asset": ds.sizes["asset"]}
    # the equities run all eleven; a one-asset close-only set only the single-asset ones
    # (other tests may have registered more strategies: only the bundled ones are pinned)
    need_more = {"attention", "liquidity_timing", "complex_systems",
                 "cross_sectional_momentum", "sentiment_regime"}
    if data_set == "equities":
        assert ran >= BUNDLED
    elif data_set in ("vix", "wti"):
        assert ran & BUNDLED == BUNDLED - need_more
    assert len(ran & BUNDLED) >= 6


def test_lacks_names_the_variables_or_the_cross_section():
    vix = ql.data.load("vix")
    assert ql.strategies.get("attention").lacks(vix) == (
        "needs data variable(s) ['open', 'high', 'low', 'volume']; data set 'vix' has "
        "['close']")
    assert ql.strategies.get("sentiment_regime").lacks(vix) == (
        "needs a cross-section of at least 3 assets; data set 'vix' has 1 (VIX)")
    unnamed = ql.data.load().isel(asset=[0, 1])
    unnamed.attrs.pop("name")
    assert ql.strategies.get("sentiment_regime").lacks(unnamed).endswith(
        "the data has 2 (AAPL, GOOG)")
    assert ql.strategies.get("sentiment_regime").lacks(ql.data.load()) == ""


def test_the_explorer_and_the_research_analysis_follow_lacks(sets):
    pytest.importorskip("ipywidgets")
    for data_set in ("vix", "cross_market", "sp500_20"):
        ds = sets[data_set]
        runs = [n for n in ql.strategies.names() if not ql.strategies.get(n).lacks(ds)]
        assert list(ql.widgets.StrategyExplorer(ds).strategy.options) == runs
        cannot = [n for n in ql.strategies.names() if n not in runs]
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            out = ql.run_research_analysis(str(ds.asset.values[0]), data=ds, progress=False)
        skipped = [str(x.message) for x in w if "strategies skipped" in str(x.message)]
        assert set(out[str(ds.asset.values[0])]) & set(ql.strategies.names()) == set(runs)
        if cannot:
            assert skipped and all(f"  {n} {ql.strategies.get(n).lacks(ds)}" in skipped[0]
                                   for n in cannot)
        else:
            assert not skipped


def test_an_empty_data_set_is_a_data_error_before_the_rule():
    ds = ql.data.load().isel(asset=slice(0, 0))
    with pytest.raises(DataError, match="empty data set"):
        ql.strategies.get("volatility_regime").signal(ds)
    assert ql.strategies.get("volatility_regime").lacks(ds) == (
        "needs a cross-section of at least 1 assets; data set 'equities' has 0 ()")


# ---- StrategyExplorer's date slider on intraday data ------------------------------------
# It offered years only: a week of minute bars was the one option '2024', a slider that
# could not narrow. Its unit is now the coarsest of years, months, days and hours that
# gives the data two periods, and a selection covers its periods whole.

def _explorer(ds):
    pytest.importorskip("ipywidgets")
    return ql.widgets.StrategyExplorer(ds, "volatility_regime")


def test_the_date_slider_of_minute_bars_selects_hours_whole():
    ds = ql.testing.synthetic_minute_panel(2, 1, calendar="24/7").isel(time=slice(0, 600))
    e = _explorer(ds)
    assert e.dates.description == "hours" and len(e.dates.options) == 10
    assert e.dates.options[:2] == ("2024-01-01 00:00", "2024-01-01 01:00")
    e.dates.value = ("2024-01-01 05:00", "2024-01-01 06:00")
    assert e.error is None
    assert e.controls()[2] == ("hours", "2024-01-01 05:00 to 2024-01-01 06:00")
    t = pd.DatetimeIndex(e.src["equity"].data["time"])
    assert (t[0], t[-1], len(t)) == (pd.Timestamp("2024-01-01 05:00"),
                                      pd.Timestamp("2024-01-01 06:59"), 120)
    # the numbers are the library's on those bars
    window = slice("2024-01-01 05:00", "2024-01-01 06:59")
    asset = e.asset.value
    sig = ql.strategies.get("volatility_regime").signal(ds).sel(asset=[asset], time=window)
    res = ql.backtest(ds.sel(asset=[asset], time=window), sig, fees=0.001,
                      slippage=ql.Slippage("fixed", bps=5.0))
    assert e.metrics["total_return"] == float(res.metrics()["total_return"][0])


@pytest.mark.parametrize("bars,unit,n", [(300, "years", 2), (100, "months", 5),
                                         (20, "days", 20), (1, "years", 1)])
def test_the_date_slider_unit_follows_the_span(bars, unit, n):
    e = _explorer(ql.data.load().isel(time=slice(0, bars)))
    assert (e.dates.description, len(e.dates.options)) == (unit, n)
    if unit == "years":
        assert e.controls()[2] == ("years", "-".join([e.dates.options[0],
                                                       e.dates.options[-1]]))


# ---- metrics: unsorted returns annualise with the calendar of their sorted times -------

@pytest.mark.parametrize("kind", ["pandas", "xarray"])
def test_reversed_monthly_returns_annualise_by_12(kind):
    r = pd.Series(np.random.default_rng(0).normal(0.01, 0.04, 60),
                  index=pd.date_range("2000-01-31", periods=60, freq="ME", name="time"))
    rev = r[::-1] if kind == "pandas" else r[::-1].to_xarray()
    for name in ("annual_return", "sharpe_ratio", "annual_volatility"):
        f = getattr(ql.metrics, name)
        assert float(f(rev)) == pytest.approx(float(f(r, period="monthly")), rel=1e-12)
    # an attr says the calendar: no inference (and no sort) for it
    if kind == "xarray":
        rev.attrs["periods_per_year"] = 4
        assert float(ql.metrics.annual_volatility(rev)) == pytest.approx(
            float(ql.metrics.annual_volatility(r, annualization=4)), rel=1e-12)


# ---- a backtest's metrics count the bars an account could trade ------------------------
# A bar where none of an account's assets had a close and its equity did not change was a
# 0-return period: GOOG (listed 2004) held cash from 2000, and its buy-and-hold read
# 17.4 % a year for the 27.7 % over its own bars. res.returns is NaN there, and the
# kernel's metrics-only statistics skip the same bars.

import xarray as xr  # noqa: E402

ANNUALISED = ["annual_return", "annual_volatility", "sharpe_ratio", "sortino_ratio",
              "calmar_ratio", "max_drawdown", "stability_of_timeseries", "total_return"]


def test_a_late_listed_stock_has_the_metrics_of_its_own_bars():
    ds = ql.data.load()
    m = ql.backtest(ds, xr.ones_like(ds["close"]), fees=0.001).metrics()
    own = ds.sel(asset=["GOOG"]).dropna("time")
    want = ql.backtest(own, xr.ones_like(own["close"]), fees=0.001).metrics()
    for k in ANNUALISED:
        assert float(m[k].sel(asset="GOOG")) == pytest.approx(float(want[k][0]), rel=1e-12), k
    assert float(m["annual_return"].sel(asset="GOOG")) == pytest.approx(0.2768, abs=1e-4)


@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("data_set", ["equities", "cross_market"])
def test_metrics_only_skips_the_bars_res_returns_leaves_out(group, data_set):
    ds = ql.data.load(data_set).isel(time=slice(-3000, None))
    sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds)
    res = ql.backtest(ds, sig, fees=0.001, group=group)
    r = res.returns
    priced = ds["close"].notnull()
    priced = priced.any("asset") if group else priced
    # NaN exactly where no close and no change (and 0/0, which this run has none of)
    assert (r.isnull() == (~priced & (res.equity == ql.data.shifted(res.equity).fillna(
        res.init_cash)))).all()
    if not group:   # a portfolio of cross_market has a close on every row
        assert int(r.isnull().sum()) > 0
    full = res.metrics()
    lean = ql.backtest(ds, sig, fees=0.001, group=group, metrics_only=tuple(ANNUALISED))
    direct = ql.metrics.summary(r, annualization=res.periods)
    for k in ANNUALISED:
        np.testing.assert_allclose(lean[k].values, full[k].values, rtol=1e-10,
                                   equal_nan=True, err_msg=k)
        np.testing.assert_allclose(direct[k].values, full[k].values, rtol=1e-12,
                                   equal_nan=True, err_msg=k)


def test_a_bar_without_a_close_whose_equity_changed_still_counts():
    # borrowing costs accrue over a holiday: that bar's return is kept, so the returns
    # compound to the equity
    ds = ql.data.load().isel(time=slice(0, 60), asset=[0])
    for v in ds.data_vars:   # a whole bar missing
        ds[v][10:13] = np.nan
    sig = xr.full_like(ds["close"], -1.0)
    res = ql.backtest(ds, sig, borrow_rate=0.05)
    r = res.returns.isel(asset=0).values
    assert np.isfinite(r[10:13]).all() and (r[10:13] < 0).all()
    assert np.prod(1 + r[np.isfinite(r)]) * res.init_cash == pytest.approx(
        float(res.equity[-1, 0]), rel=1e-12)
    flat = ql.backtest(ds, sig * 0.0)
    assert np.isnan(flat.returns.isel(asset=0).values[10:13]).all()


def test_an_account_that_never_had_a_bar_has_nan_metrics():
    ds = ql.data.load().isel(time=slice(0, 300))    # GOOG lists in 2004
    m = ql.backtest(ds, xr.ones_like(ds["close"])).metrics()
    assert np.isnan(float(m["total_return"].sel(asset="GOOG")))
    assert float(m["n_trades"].sel(asset="GOOG")) == 0
