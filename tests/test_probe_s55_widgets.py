"""Session 55 probe of the interactive path (ql.widgets explorers, ql.plots on edge data):
a control's failure is shown in the UI instead of leaving the previous figures and
numbers on screen, data sets with one asset or holiday gaps work, and what is shown
equals the library's numbers."""
import numpy as np
import pytest
import xarray as xr

import quantlab as ql


def _empty(src) -> bool:
    return all(len(v) == 0 for v in src.data.values())


def _library(ds, sig, asset, years):
    window = slice(f"{years[0]}-01-01", f"{years[1]}-12-31")
    return ql.backtest(ds.sel(asset=[asset], time=window), sig.sel(asset=[asset], time=window),
                       fees=0.001, slippage=ql.Slippage("fixed", bps=5.0))


def test_one_asset_sets_offer_only_the_strategies_that_run_on_one_asset():
    """vix, wti: StrategyExplorer raised at once (complex_systems, first offered, needs 2)."""
    vix = ql.data.load("vix")
    e = ql.widgets.StrategyExplorer(vix)
    offered = set(e.strategy.options)
    assert not offered & {"complex_systems", "cross_sectional_momentum", "sentiment_regime"}
    assert {"volatility_regime", "spc"} <= offered
    assert e.error is None and e.metrics["n_trades"] > 0
    with pytest.raises(ValueError, match="'complex_systems' needs a cross-section of at least "
                       "2 assets; data set 'vix' has 1 \\(VIX\\)"):
        ql.widgets.StrategyExplorer(vix, "complex_systems")


def test_a_failing_update_is_shown_and_clears_the_previous_numbers(monkeypatch):
    """A raising callback put a traceback in the log only; the figures and the table kept
    the previous selection's numbers as if current."""
    ds = ql.data.load().isel(time=slice(0, 600))
    e = ql.widgets.StrategyExplorer(ds, "volatility_regime")
    assert e.metrics["n_trades"] > 0

    def boom(*a, **k):
        raise ValueError("fees too odd")

    monkeypatch.setattr(ql.widgets, "backtest", boom)
    e.fees.value = 0.002                                   # no exception escapes the control
    assert e.error is not None and "ValueError: fees too odd" in e.busy.value
    assert all(_empty(s) for s in e.src.values())          # no stale curve
    assert all(np.isnan(v) for v in e.metrics.values())
    assert "n/a" in e.table.value and "fees too odd" in e.static_extra()
    monkeypatch.undo()
    e.fees.value = 0.001                                   # recovers: the current numbers
    assert e.error is None and e.busy.value == ""
    sig = ql.strategies.get("volatility_regime").signal(ds)
    res = _library(ds, sig, "AAPL", e.dates.value)
    assert e.metrics["total_return"] == float(res.metrics()["total_return"].sel(asset="AAPL"))


def test_years_where_the_asset_has_no_bar_say_so():
    """cross_market SP500 in 1986-1991 (it starts in 1999): a blank price, a flat equity
    and a table of zeros, silently."""
    ds = ql.data.load("cross_market")
    e = ql.widgets.StrategyExplorer(ds, "volatility_regime")
    e.dates.value = ("1986", "1991")
    assert "SP500 has no bars in 1986-1991 (its bars: 1999-01-04 to 2018-12-31)" in e.error
    assert _empty(e.src["equity"]) and np.isnan(e.metrics["total_return"])
    e.dates.value = ("2005", "2008")
    assert e.error is None and len(e.src["equity"].data["y"]) > 0


def test_a_reversed_year_range_is_the_same_years():
    """index (3, 2) raised 'empty data set (time=0, asset=1)' in the callback."""
    ds = ql.data.load()
    e = ql.widgets.StrategyExplorer(ds, "volatility_regime")
    e.dates.index = (3, 2)
    assert e.error is None and ("years", "2002-2003") in e.controls()
    res = _library(ds, e.signal(), "AAPL", ("2002", "2003"))
    np.testing.assert_allclose(e.src["equity"].data["y"], res.equity.sel(asset="AAPL").values)


def test_holiday_gaps_neither_break_the_lines_nor_blank_the_z_score():
    """cross_market (a union of calendars): each holiday was a NaN in the price line and
    in every rolling window holding it (2054 finite z-scores of SP500's 5031 bars)."""
    ds = ql.data.load("cross_market")
    r = ql.widgets.RollingExplorer(ds, window=20)
    sp = ds["close"].sel(asset="SP500").dropna("time")
    z = np.asarray(r.source.data["z"])
    assert len(z) == sp.sizes["time"] == 5031 and np.isfinite(z).sum() == 5031 - 19
    np.testing.assert_allclose(z, ql.rolling.zscore(sp, 20).values, equal_nan=True)
    e = ql.widgets.StrategyExplorer(ds, "volatility_regime")
    assert np.isfinite(e.src["price"].data["y"]).all()
    # complex_systems gave NaN throughout on this set; since the datasets probe it carries
    # closes over holidays and trades
    e.strategy.value = "complex_systems"
    assert e.error is None and "no signal" not in e.busy.value and e.metrics["n_trades"] > 0
    # a signal NaN throughout is said, not shown as a silent flat line
    nan = e.signal().copy(data=np.full(e.signal().shape, np.nan))
    e.signal = lambda: nan
    e.update()
    assert "complex_systems gives no signal for SP500" in e.busy.value
    assert e.metrics["n_trades"] == 0


def test_sets_without_an_asset_dim_are_refused_by_name():
    """ff3, macro, rates (monthly, no asset dim): AttributeError 'no attribute asset'."""
    ff3 = ql.data.load("ff3")
    with pytest.raises(ql.DataError, match=r"ds\['mkt_rf'\] has no 'asset' dimension"):
        ql.widgets.RollingExplorer(ff3, var="mkt_rf")
    with pytest.raises(ql.DataError, match=r"ds\['close'\] has no 'asset' dimension"):
        ql.widgets.StrategyExplorer(ff3["mkt_rf"])


def test_rolling_explorer_failure_is_shown(monkeypatch):
    ds = ql.data.load().isel(time=slice(0, 300))
    e = ql.widgets.RollingExplorer(ds, window=20)
    monkeypatch.setattr(ql.rolling, "zscore", lambda *a, **k: 1 / 0)
    e.window.value = 30
    assert "ZeroDivisionError" in e.busy.value and _empty(e.source)
    monkeypatch.undo()
    e.window.value = 40
    assert e.error is None
    np.testing.assert_allclose(e.source.data["z"],
                               ql.rolling.zscore(ds["close"].sel(asset="AAPL"), 40).values,
                               equal_nan=True)


def _sweep(ds):
    return ql.sweep("volatility_regime", ds, {"window": [10, 21], "threshold": [0.6, 0.8]},
                    metrics=("sharpe_ratio", "total_return"), progress=False, fees=0.001)


def test_sweep_explorer_equity_follows_the_asset_dropdown():
    """The equity panel kept AAPL's curve under IBM's heatmap, its title naming no asset."""
    ds = ql.data.load().isel(time=slice(0, 600))
    sw = _sweep(ds)
    e = ql.widgets.SweepExplorer(sw, ds)
    assert e.eq.title.text.startswith("equity of AAPL: ")
    e.fixed["asset"].value = "IBM"
    vals = np.asarray(e.source.data["value"])
    best = int(np.nanargmax(vals))
    xv, yv = e._cells()[2][best]
    s = ql.strategies.get("volatility_regime", window=int(xv), threshold=float(yv))
    res = ql.backtest(ds, s.signal(ds), fees=0.001)
    np.testing.assert_allclose(e.eq_source.data["equity"], res.equity.sel(asset="IBM").values)
    assert e.eq.title.text.startswith("equity of IBM: ")
    assert float(res.metrics()["sharpe_ratio"].sel(asset="IBM")) == pytest.approx(vals[best])
    # a metric change keeps the cells: the clicked cell's curve stays
    e._show(0)
    shown = list(e.eq_source.data["equity"])
    e.metric.value = "total_return"
    assert list(e.eq_source.data["equity"]) == shown


def test_sweep_explorer_without_a_finite_cell_says_so():
    ds = ql.data.load().isel(time=slice(0, 300))
    sw = _sweep(ds)
    sw["sharpe_ratio"] = sw["sharpe_ratio"] * np.nan
    e = ql.widgets.SweepExplorer(sw, ds)
    assert "no cell of sharpe_ratio is finite" in e.busy.value and _empty(e.eq_source)
    assert "no cell of sharpe_ratio is finite" in e._repr_mimebundle_()["text/html"]
    e.metric.value = "total_return"
    assert e.error is None and len(e.eq_source.data["equity"]) == 300


def test_rapid_changes_end_on_the_last_value():
    ds = ql.data.load().isel(time=slice(0, 600))
    e = ql.widgets.StrategyExplorer(ds, "volatility_regime")
    window = e.params.children[0]
    for v in (10, 30, 50, 12):                 # a drag: the last value is what is shown
        window.value = v
    s = ql.strategies.get("volatility_regime", window=12)
    res = _library(ds, s.signal(ds), "AAPL", e.dates.value)
    np.testing.assert_allclose(e.src["equity"].data["y"], res.equity.sel(asset="AAPL").values)


def test_shown_numbers_equal_the_library_on_a_gapped_set():
    """Metrics, equity and drawdown equal ql.backtest / ql.metrics (calendar periods)."""
    ds = ql.data.load("cross_market")
    e = ql.widgets.StrategyExplorer(ds, "volatility_regime")
    e.asset.value = "GOOG"
    e.dates.value = ("2005", "2008")
    res = _library(ds, e.signal(), "GOOG", ("2005", "2008"))
    r = res.returns.sel(asset="GOOG")
    m = res.metrics().sel(asset="GOOG")
    for k in e.METRICS:
        assert e.metrics[k] == pytest.approx(float(m[k]), nan_ok=True), k
    assert e.metrics["annual_return"] == pytest.approx(float(ql.metrics.annual_return(r)))
    assert np.nanmin(e.src["drawdown"].data["y"]) == pytest.approx(
        float(ql.metrics.max_drawdown(r)))


def test_price_figure_refuses_a_log_axis_for_values_it_cannot_show():
    ds = ql.data.load().isel(time=slice(0, 50))
    neg = ds.assign(close=ds["close"] - 200)
    with pytest.raises(ValueError, match="IBM has values <= 0 .* pass log=False"):
        ql.plots.price_figure(neg, ["IBM"])           # a log axis drew nothing, silently
    assert len(ql.plots.price_figure(neg, ["IBM"], log=False).renderers) == 1


def test_line_figure_axis_follows_the_time_coordinate():
    from bokeh.models import DatetimeAxis, LinearAxis

    ds = ql.data.load().isel(time=slice(0, 50))
    bars = xr.DataArray([1.0, 2.0, 3.0], dims="time", coords={"time": [0, 1, 2]}, name="x")
    fig = ql.plots.line_figure(bars)                   # bar numbers: not ms after 1970
    assert type(fig.xaxis[0]) is LinearAxis and fig.xaxis[0].axis_label == "time"
    fig = ql.plots.line_figure(ds["close"].sel(asset="IBM"))
    assert type(fig.xaxis[0]) is DatetimeAxis and fig.xaxis[0].axis_label == "date"


def test_histogram_of_a_constant_draws_no_nan_curve():
    fig = ql.plots.histogram_figure(np.ones(10))      # the normal curve was all NaN
    assert [type(g.glyph).__name__ for g in fig.renderers] == ["Quad"]
    assert "no spread" in fig.title.text


def test_slippage_models_offered_are_those_the_data_has_variables_for():
    """sp500_20 (close only): volume_based and adaptive raised when picked."""
    e = ql.widgets.StrategyExplorer(ql.data.load("sp500_20"), "volatility_regime")
    assert list(e.slip_model.options) == ["fixed"]
    full = ql.widgets.StrategyExplorer(ql.data.load().isel(time=slice(0, 600)), "volatility_regime")
    assert list(full.slip_model.options) == ["fixed", "volume_based", "adaptive"]
    fixed = full.metrics["total_return"]
    full.slip_model.value = "adaptive"
    assert full.error is None and full.metrics["total_return"] < fixed


def test_a_window_beyond_the_bars_says_why_the_z_score_is_blank():
    e = ql.widgets.RollingExplorer(ql.data.load().isel(time=slice(0, 100)), window=20)
    e.window.value = 252
    assert not np.isfinite(e.source.data["z"]).any()
    assert "window 252 needs more than the 100 bars of AAPL" in e.busy.value
    e.window.value = 50
    assert e.busy.value == "" and np.isfinite(e.source.data["z"]).sum() == 51


def test_backtest_figure_on_a_gapped_set():
    """res.plot(): each holiday broke the price line; an asset without a bar in the
    backtest was an IndexError."""
    from bokeh.models import GlyphRenderer

    ds = ql.data.load("cross_market").sel(time=slice("1990", "2001"))
    res = ql.backtest(ds, ql.strategies.get("volatility_regime").signal(ds))
    fig = res.plot(asset="SP500").children[0]
    line = [r for r in fig.renderers if isinstance(r, GlyphRenderer)][0].data_source.data
    sp = ds["close"].sel(asset="SP500").dropna("time")
    np.testing.assert_array_equal(line["y"], sp.values)
    with pytest.raises(ql.DataError, match="backtest_figure of GOOG: no finite value"):
        res.plot(asset="GOOG")


def test_the_table_says_when_a_value_is_annualised_from_under_a_year_or_why_it_is_na():
    """2013 (41 bars): -7.9 % total read as -39.8 % a year, unmarked; one bar: Sharpe
    n/a without a reason. The notes are the tear sheet's (ql.tearsheet.summary_table)."""
    ds = ql.data.load()
    e = ql.widgets.StrategyExplorer(ds, "volatility_regime")
    assert e.notes == {}                                  # 13 years: nothing to say
    e.dates.value = ("2013", "2013")
    assert e.notes["annual_return"] == "annualised from 41 periods (a year is 252)"
    assert "annualised from 41 periods" in e.table.value
    one = ql.widgets.StrategyExplorer(ds.sel(time=slice(None, "2012-01-03")),
                                      "volatility_regime")
    one.dates.value = ("2012", "2012")
    assert one.notes["sharpe_ratio"] == "1 observed period; needs 2"
    assert np.isnan(one.metrics["sharpe_ratio"])
