"""The six unconventional strategies: contract and no look-ahead on real data, and a
synthetic market per strategy where its hypothesis holds by construction."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql

UNCONVENTIONAL = ["attention", "sentiment_regime", "info_theory", "complex_systems",
                  "fractal_chaos", "quantum"]


def _market(r, **extra):
    """Dataset from (time, asset) returns (prices from 100) plus optional variables."""
    n, m = r.shape
    close = 100 * np.cumprod(1 + r, axis=0)
    data = {"close": (("time", "asset"), close)}
    data.update({k: (("time", "asset"), v) for k, v in extra.items()})
    return xr.Dataset(data, coords={"time": pd.bdate_range("2000-01-03", periods=n),
                                    "asset": [f"S{i}" for i in range(m)]})


@pytest.fixture(scope="module")
def recent(equities):
    return equities.isel(time=slice(-1500, None))


def test_registry_and_docs():
    assert set(UNCONVENTIONAL) <= set(ql.strategies.names())
    assert ql.strategies.get("sentiment").name == "sentiment_regime"   # the seed's name
    for name in UNCONVENTIONAL:
        s = ql.strategies.get(name)
        assert "(" in s.__doc__ and set(s.param_space) == set(s.defaults)
    assert "analogy" in ql.strategies.get("quantum").__doc__
    assert "no physical meaning" in ql.strategies.get("quantum").__doc__


@pytest.mark.parametrize("name", UNCONVENTIONAL)
def test_contract_and_no_lookahead_on_real_data(name, recent):
    s = ql.strategies.get(name)
    sig = s.signal(recent)
    assert sig.dims == ("time", "asset") and sig.name == "signal"
    v = sig.values[~np.isnan(sig.values)]
    assert v.size > 0 and v.min() >= -1 and v.max() <= 1 and (v != 0).any()
    ql.testing.assert_no_lookahead(s, recent, n_cuts=3)
    diag = s.diagnostics(recent)
    assert isinstance(diag, xr.Dataset) and len(diag.data_vars) >= 2
    res = ql.backtest(recent, sig, fees=0.001, group=True)
    assert np.isfinite(float(res.metrics()["sharpe_ratio"]))


def test_research_analysis_runs_the_new_types_and_comprehensive_runs_eleven(recent):
    out = ql.run_research_analysis(["IBM"], ["attention", "sentiment", "quantum"],
                                   data=recent, progress=False)
    assert set(out["IBM"]) == {"attention", "sentiment_regime", "quantum"}
    eleven = ql.strategies.names("traditional") + ql.strategies.names("unconventional")
    assert len(eleven) == 11
    assert set(eleven) <= set(ql.research._strategy_names("comprehensive"))
    with pytest.raises(ValueError, match="unknown strategy family"):
        ql.strategies.names("exotic")


def test_attention_follows_shocks_that_continue():
    rng = np.random.default_rng(0)
    n = 1500
    r = rng.normal(0, 0.01, (n, 2))
    volume = rng.lognormal(13, 0.2, (n, 2))
    shocks = rng.choice(np.arange(100, n - 10), 40, replace=False)
    for t in shocks:
        d = rng.choice([-1, 1])
        volume[t] *= 8                          # attention: a volume spike ...
        r[t] += d * 0.03                        # ... on a large move ...
        r[t + 1:t + 6] += d * 0.006             # ... that continues for a week
    close = 100 * np.cumprod(1 + r, axis=0)
    spread = 1 + np.abs(rng.normal(0, 0.005, (n, 2)))
    open_ = np.vstack([close[:1], close[:-1]])
    high, low = np.maximum(open_, close) * spread, np.minimum(open_, close) / spread
    ds = _market(r, open=open_, high=high, low=low, volume=volume)
    s = ql.strategies.get("attention", threshold=1.5, hold=5)
    sig = s.signal(ds)
    at = sig.isel(time=shocks).values
    assert (np.sign(at) == np.sign(r[shocks])).mean() > 0.9
    assert float(ql.backtest(ds, sig).metrics()["total_return"].mean()) > 0.1
    fade = ql.strategies.get("attention", threshold=1.5, hold=5, mode="reversal").signal(ds)
    assert float(ql.backtest(ds, fade).metrics()["total_return"].mean()) < 0
    with pytest.raises(ValueError, match="mode"):
        ql.strategies.get("attention", mode="sideways").signal(ds)


def test_sentiment_regime_anchoring_and_herding():
    rng = np.random.default_rng(1)
    n, m = 1200, 8
    drift = np.linspace(-0.002, 0.002, m)       # winners stay near their 52-week highs
    beta = np.linspace(0.5, 1.5, m)             # rational pricing: dispersion grows with |Rm|
    market = rng.normal(0, 0.01, n)
    idio = rng.normal(0, 0.005, (n, m))
    # herding in the second half: the larger the market move, the more every asset
    # moves with the market (CSAD concave in Rm: c < 0)
    herd = np.arange(n) >= 700
    squeeze = np.clip(1 - (market / 0.02) ** 2, 0, 1)
    r = drift + np.where(herd[:, None], market[:, None] * (1 + (beta - 1) * squeeze[:, None])
                         + idio * squeeze[:, None], beta * market[:, None] + idio)
    ds = _market(r)
    s = ql.strategies.get("sentiment_regime", quantile=0.25, herd_scale=0.5)
    gamma = s.diagnostics(ds)["herding_gamma"]
    calm, herding = gamma.isel(time=slice(300, 650)), gamma.isel(time=slice(900, None))
    assert float((herding < 0).mean()) > 0.9 and float((calm < 0).mean()) < 0.2
    held = s.signal(ds).ffill("time")
    late = held.isel(time=slice(400, 650)).mean("time")   # < 1: herding flags in calm
    assert float(late.isel(asset=[-2, -1]).mean()) > 0.6      # the persistent winners
    assert float(late.isel(asset=[0, 1]).mean()) < -0.6       # the persistent losers
    assert float(abs(held.isel(time=slice(950, None))).max()) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least 3 assets"):
        s.signal(ds.isel(asset=[0, 1]))


def test_info_theory_follows_the_leader():
    rng = np.random.default_rng(2)
    n = 1200
    lead = rng.normal(0, 0.01, n)
    follow = 0.8 * np.roll(lead, 1) + 0.006 * rng.normal(size=n)
    inverse = -0.8 * np.roll(lead, 1) + 0.006 * rng.normal(size=n)
    ds = _market(np.column_stack([lead, follow, inverse]))
    s = ql.strategies.get("info_theory", window=252)
    sig = s.signal(ds).isel(time=slice(300, -1))
    nxt = ds["close"].pipe(ql.data.returns).shift(time=-1).isel(time=slice(300, -1))
    assert float(xr.corr(sig.sel(asset="S1"), nxt.sel(asset="S1"))) > 0.6
    assert float(xr.corr(sig.sel(asset="S2"), nxt.sel(asset="S2"))) > 0.6
    flow = s.diagnostics(ds)["net_transfer_entropy"].isel(time=-1)
    assert float(flow.sel(asset="S1", asset_other="S0")) > 0.2
    assert float(flow.sel(asset="S0", asset_other="S1")) < 0


def test_complex_systems_derisks_on_contagion_and_underweights_the_hub():
    rng = np.random.default_rng(3)
    n, m = 900, 6
    hub = rng.normal(0, 0.01, n)
    r = rng.normal(0, 0.01, (n, m))
    r[:, 1:3] += hub[:, None]          # S1, S2 driven by the hub S0
    r[:, 0] = hub
    common = rng.normal(-0.002, 0.03, n)
    r[600:] += common[600:, None]      # contagion: one factor drives everything
    ds = _market(r)
    s = ql.strategies.get("complex_systems")
    sig = s.signal(ds)
    assert float(sig.isel(time=slice(400, 590)).sum("asset").mean()) > 0.9
    assert float(sig.isel(time=slice(630, 700)).sum("asset").max()) == 0.0
    diag = s.diagnostics(ds)
    cent = diag["centrality"].isel(time=slice(300, 590)).mean("time")
    assert int(cent.argmax("asset")) == 0            # the hub is most central ...
    w = sig.isel(time=slice(300, 590)).mean("time")
    assert int(w.argmin("asset")) == 0               # ... and gets the least weight
    assert float(diag["absorption_ratio"].isel(time=650)) > float(
        diag["absorption_ratio"].isel(time=500)) + 0.2


def test_fractal_chaos_follows_persistence_and_fades_anti_persistence():
    rng = np.random.default_rng(4)
    n = 1600
    e = rng.normal(0, 0.01, n)
    r = np.empty(n)
    r[0] = e[0]
    for t in range(1, n):
        phi = 0.6 if t < 800 else -0.6
        r[t] = phi * r[t - 1] + e[t]
    ds = _market(r[:, None])
    s = ql.strategies.get("fractal_chaos", chaos_quantile=1.0)
    diag = s.diagnostics(ds)
    h = diag["hurst"].isel(asset=0)
    assert float(h.isel(time=slice(500, 790)).mean()) > 0.6
    assert float(h.isel(time=slice(1300, None)).mean()) < 0.4
    sig = s.signal(ds).isel(asset=0)
    close = ds["close"].isel(asset=0)
    move = np.sign(close / close.shift(time=21) - 1)
    assert float((sig * move).isel(time=slice(500, 790)).mean()) > 0.8    # follows
    assert float((sig * move).isel(time=slice(1300, None)).mean()) < -0.8  # fades


def test_quantum_leaves_a_level_toward_its_neighbour():
    # log price hops between three levels (support/resistance); from the top or bottom
    # level the only way out is inward, through the thin barrier to the middle level
    rng = np.random.default_rng(5)
    n = 2000
    levels = np.array([-0.06, 0.0, 0.06])
    state = np.empty(n, dtype=int)
    k = 1
    for t in range(n):
        if rng.random() < 1 / 40:
            k = 1 if k != 1 else rng.choice([0, 2])
        state[t] = k
    x = np.zeros(n)
    for t in range(1, n):
        x[t] = x[t - 1] + 0.3 * (levels[state[t]] - x[t - 1]) + 0.004 * rng.normal()
    ds = _market(np.exp(np.diff(x, prepend=0.0))[:, None] - 1)
    sig = ql.strategies.get("quantum").signal(ds)
    s = sig.isel(asset=0).values
    ok = ~np.isnan(s)
    assert s[ok & (state == 0)].mean() > 0.3      # bottom level: up
    assert s[ok & (state == 2)].mean() < -0.1     # top level: down
    assert float(ql.backtest(ds, sig).metrics()["total_return"].squeeze()) > 0.2


@pytest.mark.parametrize("missing", ["all_nan", "listed_late"])
def test_complex_systems_missing_asset_does_not_blank_the_others(missing):
    """One all-NaN or not-yet-listed asset used to make every asset's signal NaN: the
    network now uses the assets with data in each window (>= 2)."""
    rng = np.random.default_rng(7)
    n, m = 500, 5
    r = rng.normal(0, 0.01, (n, m)) + rng.normal(0, 0.01, (n, 1))
    ds = _market(r)
    late = 300
    close = ds["close"].copy()
    close[:, m - 1] = np.nan if missing == "all_nan" else np.where(
        np.arange(n) < late, np.nan, close[:, m - 1].values)
    ds = ds.assign(close=close)
    kw = dict(window=30, shift=5, lookback=60, threshold=1.0)
    s = ql.strategies.get("complex_systems", **kw)
    got = s.signal(ds)
    without = s.signal(ds.isel(asset=slice(0, m - 1)))
    end = n if missing == "all_nan" else late     # before the late asset's first window
    # the others: exactly the network of the assets that have data
    np.testing.assert_allclose(got.isel(asset=slice(0, m - 1), time=slice(0, end)).values,
                               without.isel(time=slice(0, end)).values, rtol=1e-12)
    assert int(got.isel(asset=0).notnull().sum()) > 0.7 * n
    # the missing asset itself stays NaN while it has no data (and its warm-up)
    assert got.isel(asset=m - 1, time=slice(0, late + 30)).isnull().all()
    if missing == "listed_late":   # once listed for a window, it joins the network
        tail = got.isel(time=slice(late + 40, None))
        assert tail.notnull().all()
        np.testing.assert_allclose(tail.sum("asset").where(tail.sum("asset") > 0).dropna(
            "time").values, 1.0, rtol=1e-12)
    # the absorption ratio uses the assets present: k = ceil(4 / 5) = 1 of 4 eigenvalues
    c = pd.DataFrame(r[:, :m - 1]).iloc[1:].iloc[100 - 30:100].corr().to_numpy()
    vals = np.linalg.eigvalsh(c)
    ar = s.diagnostics(ds)["absorption_ratio"].isel(time=100)
    np.testing.assert_allclose(float(ar), vals[-1] / vals.sum(), rtol=1e-9)
