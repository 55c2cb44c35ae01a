"""Probe s54: the notebooks' library calls with valid but non-default parameters (other
data sets, short periods, other costs), as `quantlab run-suite -p ...` runs them."""
import numpy as np
import pytest

import quantlab as ql


@pytest.fixture(scope="module")
def ds():
    return ql.data.load()


def test_research_analysis_of_a_short_period_reads_the_warmup_before_start(ds):
    # 10_research_analysis -p start 2012-10-01: the signals were computed on the period
    # alone (103 bars), so each strategy with a longer warmup (volatility_regime 273,
    # sentiment_regime 252, ...) never traded: a NaN Sharpe, silently; the bars before
    # start are past data the strategy may read
    start, end = "2012-10-01", "2013-03-01"
    out = ql.run_research_analysis(["IBM", "MSFT"], ["volatility_regime", "sentiment_regime",
                                   "correlation"], data=ds, start=start, end=end,
                                   progress=False)
    s = ql.strategies.get("volatility_regime")
    period = ds.sel(time=slice(start, end))
    sig = s.signal(ds).sel(time=period["time"])
    want = ql.backtest(period, sig).metrics()
    for sym in ("IBM", "MSFT"):
        row = out[sym]["volatility_regime"]
        assert row["n_trades"] == int(want["n_trades"].sel(asset=sym)) > 0
        assert row["sharpe_ratio"] == pytest.approx(float(want["sharpe_ratio"].sel(asset=sym)))
        assert row["signals"].index[0] == period["time"].to_index()[0]
        assert out[sym]["sentiment_regime"]["n_trades"] > 0
        assert np.isfinite(out[sym]["sentiment_regime"]["sharpe_ratio"])
    # the 63-bar average correlation is defined on every bar of the period, none after end
    avg = out["IBM"]["correlation"]["rolling_average"]
    assert avg.index.equals(period["time"].to_index()) and avg.notna().all()


@pytest.mark.parametrize("name,need", [("cross_sectional_momentum", 2), ("complex_systems", 2),
                                       ("sentiment_regime", 3)])
def test_a_cross_sectional_strategy_on_too_few_assets_says_what_it_needs(name, need):
    # 03_unconventional_strategies -p data_set vix: cross_sectional_momentum ranked VIX
    # against itself (always top: long on every rebalance, buy-and-hold reported as
    # momentum); sentiment_regime failed in the backtest cell without naming the data
    s = ql.strategies.get(name)
    assert s.min_assets == need
    one = ql.data.load("vix")
    with pytest.raises(ValueError, match=rf"{name} needs a cross-section of at least {need} "
                       r"assets; data set 'vix' has 1 \(VIX\)"):
        s.signal(one)
    with pytest.raises(ValueError, match="at least"):
        s.diagnostics(one)
    assert s.signal(ql.data.load().isel(time=slice(-400, None))).count() > 0


def test_single_asset_strategies_still_run_on_one_asset():
    one = ql.data.load("vix")
    for name in ql.strategies.names():
        s = ql.strategies.get(name)
        if s.min_assets == 1 and set(s.requires) <= set(one.data_vars):
            s.signal(one, **s.default_inputs(one))


def test_correlations_of_a_period_some_symbols_lack_say_where_each_has_data():
    # 07_cross_market -p calm '["2014-01-01", "2014-06-30"]': 'SP500 and AAPL overlap on 0
    # observations; need at least 2', naming neither the dates asked nor where AAPL has data
    cm = ql.crossmarket.CrossMarketAnalyzer.from_bundled()
    with pytest.raises(ql.errors.DataError,
                       match=r"^SP500 and AAPL overlap on 0 observations; need at least 2 "
                       r"between 2014-01-01 and 2014-06-30 \(SP500 runs 1999-01-05 \.\. "
                       r"2018-12-31; AAPL runs 2000-03-02 \.\. 2013-03-01\)$"):
        cm.correlations(symbols=["SP500", "AAPL", "WTI"], start="2014-01-01", end="2014-06-30")
