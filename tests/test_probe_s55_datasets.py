"""Session 55 probe: every strategy on every bundled real data set (vix, wti and
cross_market have holiday gaps, vix and wti a single asset, cross_market late listings
and markets outside their coverage). Each test is a fault the probe found."""
import numpy as np
import pytest

import quantlab as ql

N, H = 900, 400     # recent bars probed; bars of a deployment's warm-up history


@pytest.fixture(scope="module")
def sets():
    return {n: ql.data.load(n).isel(time=slice(-N, None)) for n in ("vix", "wti", "cross_market")}


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
