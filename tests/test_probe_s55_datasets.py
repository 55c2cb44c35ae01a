"""Session 55 probe: every strategy on every bundled real data set (vix, wti and
cross_market have holiday gaps, vix and wti a single asset, cross_market late listings
and markets outside their coverage). Each test is a fault the probe found."""
import warnings

import numpy as np
import pandas as pd
import pytest

import quantlab as ql

N, H = 900, 400     # recent bars probed; bars of a deployment's warm-up history


def _weekdays(ds):
    """FRED's layout: a row per weekday, NaN on the market's holidays (``ql.data.load``
    drops those rows since this session; user data often keeps them)."""
    return ds.reindex(time=pd.bdate_range(ds.time.values[0], ds.time.values[-1], name="time"))


@pytest.fixture(scope="module")
def sets():
    out = {n: _weekdays(ql.data.load(n)) for n in ("vix", "wti")}
    out["cross_market"] = ql.data.load("cross_market")
    return {n: ds.isel(time=slice(-N, None)) for n, ds in out.items()}


def _decided(sig, ds, warmup):
    """Share of bars after ``warmup`` where an asset with a close has a decision."""
    has = ds["close"].notnull().isel(time=slice(warmup, None))
    return float(sig.isel(time=slice(warmup, None)).notnull().where(has).sum()
                 / has.sum())


# ---- holidays: a NaN return blanked every rolling window holding it ---------------------
@pytest.mark.parametrize("name", ["vix", "wti", "cross_market"])
def test_volatility_regime_decides_on_data_with_holidays(sets, name):
    # the 21-bar volatility of returns NaN on each holiday: 36% of vix's and wti's bars
    # had a decision (NaN = hold: the exposure was frozen for 21 bars after a holiday)
    ds = sets[name]
    s = ql.strategies.get("volatility_regime")
    assert _decided(s.signal(ds), ds, s.warmup) == 1.0


def test_volatility_regime_vol_is_that_of_the_carried_closes(sets):
    ds = sets["vix"]
    vol = ql.strategies.get("volatility_regime").diagnostics(ds)["realised_vol"]
    c = ds["close"].to_series().ffill(limit=ql.data.CARRY_BARS)
    want = c.pct_change(fill_method=None).rolling(21).std() * np.sqrt(252)
    holidays = np.flatnonzero(ds["close"].isnull().values.ravel())
    after = holidays[(holidays > 300) & (holidays < N - 30)] + 3   # 3 bars after one
    assert after.size > 10 and np.isfinite(vol.values[after, 0]).all()
    np.testing.assert_allclose(vol.values[:, 0], want.values, rtol=1e-9, equal_nan=True)


def test_complex_systems_trades_on_cross_market(sets):
    # one market's holiday blanked its 63-bar correlations; in cross_market every window
    # holds one: no bar of the last 900 had a decision. The equities (to 2013) are out
    # of coverage there; SP500, NASDAQ, WTI and VIX form the network
    ds = sets["cross_market"]
    s = ql.strategies.get("complex_systems")
    sig = s.signal(ds)
    live = ["SP500", "NASDAQ", "WTI", "VIX"]
    assert sig.sel(asset=["AAPL", "GOOG", "IBM", "MSFT"]).isnull().all()
    on = sig.sel(asset=live).isel(time=slice(s.warmup, None))
    assert float(on.notnull().all("asset").mean()) > 0.99
    total = on.sum("asset").where(on.notnull().all("asset"))
    invested = total.where(total > 0).dropna("time")
    assert invested.size > 300
    np.testing.assert_allclose(invested.values, 1.0, rtol=1e-12)   # 1 / centrality weights
    # a holiday is a 0 return of the carried close: the same as a panel carried by hand
    carried = ds.assign(close=ql.data.carried(ds["close"]))
    np.testing.assert_allclose(sig.values, s.signal(carried).values, rtol=1e-12,
                               equal_nan=True)


@pytest.mark.parametrize("name, strategy", [("vix", "volatility_regime"),
                                            ("wti", "volatility_regime"),
                                            ("cross_market", "volatility_regime"),
                                            ("cross_market", "complex_systems")])
def test_a_deployment_on_data_with_holidays_trades_as_its_backtest(sets, name, strategy):
    ds = sets[name]
    s = ql.strategies.get(strategy)
    options = {"fees": 0.0005, "group": strategy == "complex_systems"}
    sig = s.signal(ds)
    res = ql.backtest(ds, sig.where(sig.time >= ds.time[H]), **options)
    dep = ql.deploy(s, history=ds.isel(time=slice(0, H)), **options)
    dep.replay(ds.isel(time=slice(H, None)))
    assert len(res.orders) > 100, "a vacuous comparison"
    np.testing.assert_allclose(dep.equity.values, res.equity.isel(time=slice(H, None)).values,
                               rtol=1e-12)
    got, want = dep.orders.reset_index(drop=True), res.orders.reset_index(drop=True)
    assert len(got) == len(want)
    assert (got["time"].values == want["time"].values).all()
    np.testing.assert_allclose(got["size"].values, want["size"].values, rtol=1e-9)


# ---- run_research_analysis over the other data sets ----------------------------------
def test_comprehensive_skips_what_a_close_only_data_set_cannot_run(sets):
    # it raised on attention (open, high, low, volume) for every set but the equities
    ds = sets["cross_market"]
    with pytest.warns(UserWarning, match=r"2 strategies skipped:\n  attention needs "
                      r"data variable\(s\) \['open', 'high', 'low', 'volume'\]; data set "
                      r"'cross_market' has \['close'\]\n  liquidity_timing needs data "
                      r"variable\(s\) \['volume'\]"):
        out = ql.run_research_analysis(["WTI"], data=ds, progress=False, fees=0.0005)
    want = set(ql.strategies.names()) - {"attention", "liquidity_timing"} | {"correlation"}
    assert set(out["WTI"]) == want
    direct = ql.backtest(ds.sel(asset=["WTI"]),
                         ql.strategies.get("volatility_regime").signal(ds).sel(asset=["WTI"]),
                         fees=0.0005).metrics()
    assert out["WTI"]["volatility_regime"]["sharpe_ratio"] == pytest.approx(
        float(direct["sharpe_ratio"].sel(asset="WTI")), rel=1e-12)


def test_comprehensive_on_a_single_asset_skips_the_cross_sections(sets):
    with pytest.warns(UserWarning, match="5 strategies skipped:(?s:.*)complex_systems needs a "
                      "cross-section of at least 2 assets; data set 'vix' has 1 \\(VIX\\)\n  "
                      "cross_sectional_momentum needs a cross-section of at least 2 assets(?s:.*)"
                      "sentiment_regime needs a cross-section of at least 3 assets"):
        out = ql.run_research_analysis("VIX", data=sets["vix"], progress=False)
    assert "spc" in out["VIX"] and "complex_systems" not in out["VIX"]
    corr = out["VIX"]["correlation"]
    assert corr["with"].empty and corr["rolling_average"].isnull().all()   # no pair


def test_a_strategy_named_explicitly_still_raises(sets):
    with pytest.raises(ValueError, match="attention needs data variable"), \
            pytest.warns(UserWarning, match="4 strategies skipped"):
        ql.run_research_analysis("VIX", ["comprehensive", "attention"], data=sets["vix"],
                                 progress=False)


def test_the_rolling_average_correlation_counts_the_assets_with_data():
    # (sum - m) / (m (m - 1)) over all 4 equities before GOOG's listing: 0.224 for 0.615
    ds = ql.data.load().isel(time=slice(0, 400))
    out = ql.run_research_analysis(["IBM"], "correlation", data=ds, progress=False)
    got = out["IBM"]["correlation"]["rolling_average"]
    r = ql.data.returns(ds["close"]).sel(asset=["AAPL", "IBM", "MSFT"]).to_pandas()
    for t in (100, 300, 399):
        c = r.iloc[t - 62: t + 1].corr().values
        assert got.iloc[t] == pytest.approx(c[np.triu_indices(3, 1)].mean(), rel=1e-9)


def test_the_rolling_average_correlation_bridges_holidays(sets):
    # one NaN return blanked each 63-bar window holding it: no average on cross_market
    ds = sets["cross_market"]
    got = ql.run_research_analysis("SP500", "correlation", data=ds,
                                   progress=False)["SP500"]["correlation"]["rolling_average"]
    assert got.iloc[63:].notnull().all()
    c = ql.data.returns(ql.data.carried(ds["close"])).sel(
        asset=["SP500", "NASDAQ", "WTI", "VIX"]).to_pandas().iloc[-63:].corr().values
    assert got.iloc[-1] == pytest.approx(c[np.triu_indices(4, 1)].mean(), rel=1e-9)


# ---- factor_momentum past the factors' coverage --------------------------------------
def _factor_signal(ds):
    s = ql.strategies.get("factor_momentum")
    return s.signal(ds, **s.default_inputs(ds))


def test_factor_momentum_warns_when_the_data_outlives_its_factors():
    # sp500_20 runs to 2022-12, the bundled factors to 2018-11: the decisions of
    # 2019-2022 silently kept 2018's betas and directions
    ds = ql.data.load("sp500_20").sel(time=slice("2011", None))
    with pytest.warns(UserWarning, match=r"factors cover 1926-07\.\.2018-11, the data runs to "
                      r"2022-12-28: the decisions from 2019-01-05 on keep using the factors "
                      r"of 2018-11 \(48 months stale at the end\).*slice\(None, '2019-01-04'\)"):
        sig = _factor_signal(ds)
    frozen = sig.sel(time=slice("2019-01-05", None))
    assert (frozen == frozen.isel(time=0)).all()          # what the warning is about
    with warnings.catch_warnings():
        warnings.simplefilter("error")                    # its advice: no warning
        _factor_signal(ds.sel(time=slice(None, "2019-01-04")))


def test_factor_momentum_warns_when_it_cannot_decide():
    # the last 1000 bars of sp500_20 (2019-2022) have no factor month: all NaN, silently
    with pytest.warns(UserWarning, match=r"no decision on the data \(2019-01-10\.\.2022-12-28\)"
                      r".*48 months, 0 of them with factors"):
        sig = _factor_signal(ql.data.load("sp500_20").isel(time=slice(-1000, None)))
    assert sig.isnull().all()
    # 600 bars of the equities: 30 months, fewer than beta_window (36)
    with pytest.warns(UserWarning, match=r"fit over 36 months.*30 months, 29 of them"):
        _factor_signal(ql.data.load().isel(time=slice(-600, None)))


def test_factor_momentum_on_covered_data_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sig = _factor_signal(ql.data.load())
    assert sig.notnull().any()


@pytest.mark.parametrize("strategy", ["volatility_regime", "complex_systems"])
def test_a_deployment_restored_at_a_holiday_continues_as_the_uninterrupted_one(
        sets, strategy, tmp_path):
    # the per-bar signals carry a second Returns (of the carried closes): a checkpoint
    # taken on a holiday and one two bars after restore to the same run
    ds = sets["cross_market"]
    s = ql.strategies.get(strategy)
    options = {"fees": 0.0005, "group": True}
    hist, rest = ds.isel(time=slice(0, H)), ds.isel(time=slice(H, None))
    whole = ql.deploy(s, history=hist, **options).replay(rest)
    assert len(whole.orders) > 50, "a vacuous comparison"
    sp = rest["close"].sel(asset="SP500").isnull().values
    hol = H + int(np.flatnonzero(sp[50:])[0]) + 50
    for cut in (hol, hol + 2):
        part = ql.deploy(s, history=hist, **options).replay(ds.isel(time=slice(H, cut)))
        back = ql.Deployment.restore(part.checkpoint(tmp_path / str(cut)))
        back.replay(ds.isel(time=slice(cut, None)))
        np.testing.assert_array_equal(back.equity.values, whole.equity.values)
        assert back.orders.equals(whole.orders)


@pytest.mark.parametrize("name", ["ff3", "macro", "core_cpi", "rates"])
def test_a_strategy_on_a_series_that_is_no_price_panel_says_so(name):
    # it read "name your dims with .rename({'old': 'asset'}) or .expand_dims('asset')",
    # which led on to a missing close
    ds = ql.data.load(name)
    with pytest.raises(ql.DataError, match=rf"spc needs prices on \(time, asset\) with "
                       rf"\['close'\]; data set '{name}' has .* on \('time',\): not a price "
                       "panel"):
        ql.strategies.get("spc").signal(ds)


# ---- OHLCV data with market holidays (user data on a union calendar) -----------------
def _with_holidays(ds, every=28):
    """``ds`` with a market-wide holiday (all variables NaN) every ``every`` bars."""
    ds = ds.copy(deep=True)
    for v in ds.data_vars:
        ds[v].values[20::every, :] = np.nan
    return ds


def test_liquidity_timing_decides_on_ohlcv_data_with_holidays():
    # |r| / dollar volume was NaN on a holiday and blanked `window` bars after it: 0.95
    # of the bars decided on the equities, 0.22 with a holiday every 28 bars
    ds = ql.data.load().isel(time=slice(-N, None))
    s = ql.strategies.get("liquidity_timing")
    gappy = _with_holidays(ds)
    assert _decided(s.signal(gappy), gappy, s.warmup) == 1.0
    illiq = s.diagnostics(gappy)["amihud_illiquidity"].sel(asset="IBM").to_series()
    c = gappy["close"].sel(asset="IBM").to_series()
    v = gappy["volume"].sel(asset="IBM").to_series()
    ratio = (c.ffill().pct_change(fill_method=None).abs() / (c * v)).fillna(0.0)   # 0 on
    np.testing.assert_allclose(illiq.values[30:], ratio.rolling(21).mean().values[30:],  # holidays
                               rtol=1e-9)
    # a deployment trades as the backtest
    sig = s.signal(gappy)
    res = ql.backtest(gappy, sig.where(sig.time >= gappy.time[H]), fees=0.0005)
    dep = ql.deploy(s, history=gappy.isel(time=slice(0, H)), fees=0.0005)
    dep.replay(gappy.isel(time=slice(H, None)))
    assert len(res.orders) > 30
    np.testing.assert_allclose(dep.equity.values, res.equity.isel(time=slice(H, None)).values,
                               rtol=1e-12)
    assert len(dep.orders) == len(res.orders)
