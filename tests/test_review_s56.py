"""Session 56 review: consumers of a backtest's returns after the "no observation" rule
(NaN on a bar without a close of the account's assets and an unchanged equity)."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql


def test_rolling_stats_roll_over_observations_a_holiday_blanks_one_bar():
    # WTI in cross_market has 19 holidays: each NaN return blanked the 126 windows
    # holding it (1,435 bars of the tear sheet's rolling Sharpe, 17 %)
    ds = ql.data.load("cross_market").sel(asset=["WTI"])
    res = ql.backtest(ds, xr.ones_like(ds["close"]), progress=False)
    r = res.returns.isel(asset=0)
    gaps = np.isnan(r.values)
    assert gaps.sum() == 19
    st = ql.tearsheet.rolling_stats(r, window=126, periods=252)
    assert int(np.isfinite(st["sharpe_ratio"]).sum()) == r.size - 125 - 19
    assert np.isnan(st["sharpe_ratio"].to_numpy()[gaps]).all()
    # each value is the statistic of the last 126 observations
    obs = r.to_series().dropna()
    t = obs.index[400]
    want = obs.iloc[400 - 125:401]
    assert st.loc[t, "volatility"] == pytest.approx(want.std(ddof=1) * np.sqrt(252), rel=1e-12)
    assert st.loc[t, "sharpe_ratio"] == pytest.approx(
        want.mean() / want.std(ddof=1) * np.sqrt(252), rel=1e-12)


def test_rolling_stats_of_a_late_listed_stock_start_a_window_after_its_listing():
    ds = ql.data.load().sel(asset=["GOOG"])
    r = ql.backtest(ds, xr.ones_like(ds["close"]), progress=False).returns.isel(asset=0)
    first = int(np.flatnonzero(np.isfinite(r.values))[0])
    st = ql.tearsheet.rolling_stats(r, window=20, periods=252)
    ok = np.flatnonzero(np.isfinite(st["volatility"].to_numpy()))
    assert ok[0] == first + 19


@pytest.mark.parametrize("how, match", [
    ("tz", "time coordinate is time-zone aware"),
    ("unsorted", "ds: timestamps not sorted: 2000-03-01 comes after 2001-10-04"),
])
def test_the_strategy_explorer_refuses_the_time_labels_ql_backtest_refuses(how, match):
    # the date slider's naive period bounds: a tz-aware index raised "Cannot compare
    # tz-naive and tz-aware" at each run (after a UserWarning), an unsorted one a KeyError
    ds = ql.data.load().isel(time=slice(0, 400))
    if how == "tz":
        ds = ds.assign_coords(time=ds.indexes["time"].tz_localize("UTC"))
    else:
        ds = ds.isel(time=np.r_[200:400, 0:200])
    with pytest.raises(ql.DataError, match=match):
        ql.widgets.StrategyExplorer(ds, "volatility_regime")


def test_the_explorers_drawdown_counts_the_initial_cash_as_its_max_drawdown_does():
    ds = ql.data.load()
    e = ql.widgets.StrategyExplorer(ds, "volatility_regime")
    e.asset.value = "IBM"
    e.dates.value = ("2005", "2005")
    assert e.error is None
    dd = e.src["drawdown"].data["y"]
    assert np.nanmin(dd) == pytest.approx(e.metrics["max_drawdown"], rel=1e-12)
    assert e.metrics["max_drawdown"] == pytest.approx(-0.24888, abs=1e-5)
    eq = e.src["equity"].data["y"]
    assert dd[0] == pytest.approx(min(eq[0] / 100_000.0 - 1, 0.0), rel=1e-12)


def test_the_backtest_figures_drawdown_counts_the_initial_cash_as_max_drawdown_does():
    ds = ql.data.load()
    sig = ql.strategies.get("volatility_regime").signal(ds)
    year = {"time": slice("2005-01-01", "2005-12-31")}
    res = ql.backtest(ds.sel(asset=["IBM"], **year), sig.sel(asset=["IBM"], **year),
                      fees=0.001, progress=False)   # in from the first bar, below the cash
    fig = ql.plots.backtest_figure(res, asset="IBM")
    dd = fig.children[-1].renderers[0].data_source.data["y1"]
    want = float(res.metrics()["max_drawdown"].sel(asset="IBM"))
    assert want == pytest.approx(-0.24630, abs=1e-5)   # the figure drew -24.55 %
    assert np.nanmin(dd) == pytest.approx(want, rel=1e-12)


def test_performance_momentum_scores_the_last_observations_of_each_stream():
    # a stream's holiday NaN (no observation) blanked the score of every window holding
    # it: equal weights for `lookback` bars after each of WTI's 19 holidays (524 bars)
    from quantlab import ensemble
    ds = ql.data.load("cross_market").sel(asset=["WTI"])
    ens = ensemble.Ensemble(["volatility_regime", "spc"], allocation="performance_momentum",
                            lookback=63)
    r = ens.streams(ds)
    assert int(r.isnull().any("strategy").sum()) == 19
    past = ql.data.shifted(r).to_pandas()
    score = {}
    for k in past:   # pandas over the observations, each holiday holding the bar before
        s = past[k].dropna().rolling(63)
        score[k] = (s.mean() / s.std()).reindex(past.index).ffill()
    score = pd.DataFrame(score).to_numpy()
    raw = np.where(np.isfinite(score), np.maximum(score, 0.0), 0.0)
    total = raw.sum(1, keepdims=True)
    tilt = np.divide(raw, total, out=np.full(raw.shape, 0.5), where=total > 0)
    want = ens.shrinkage * 0.5 + (1 - ens.shrinkage) * tilt
    got = ens.weights(ds).values
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert int((got[:, 0] == 0.5).sum()) == 3341          # 3865 with the blanked windows


def test_observed_statistics_equal_the_plain_ones_without_a_gap():
    from quantlab import ensemble
    x = np.random.default_rng(5).normal(size=(300, 2))
    x[0] = np.nan                                          # shifted: the first bar
    for stat in (ql.rolling.mean, ql.rolling.std):
        want = np.column_stack([stat(x[:, k], 20) for k in range(2)])
        np.testing.assert_array_equal(ensemble._observed(stat, x, 20), want)


def test_lacks_refuses_what_signal_refuses_naming_the_type():
    ds = ql.data.load().isel(time=slice(0, 50))
    s = ql.strategies.get("cross_sectional_momentum")
    with pytest.raises(TypeError, match="cross_sectional_momentum.lacks: ds must be an "
                                        "xarray Dataset .*got DataArray"):
        s.lacks(ds["close"])
    assert s.lacks(ds) == ""
