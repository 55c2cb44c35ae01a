"""Session 61 probe: intraday and 24/7 data end to end (calendar inference, strategies'
annualisation, ticks aggregated into a deployment's bars).

Intraday bars are built from bundled real closes (``sp500_20``): each day's 09:30-16:00
America/New_York minutes a Brownian bridge between two daily closes.
"""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab.calendar import infer

NY = "America/New_York"


def _sessions(days, start="09:30", end="16:00", step="1min", tz=NY):
    """Bars stamped at their open over each local date's session, as naive UTC."""
    parts = [pd.date_range(pd.Timestamp(f"{pd.Timestamp(d).date()} {start}", tz=tz),
                           pd.Timestamp(f"{pd.Timestamp(d).date()} {end}", tz=tz),
                           freq=step, inclusive="left") for d in days]
    return parts[0].append(parts[1:]).tz_convert("UTC").tz_localize(None)


@pytest.fixture(scope="module")
def minutes():
    """Three assets' 1-minute session bars, 2013-02-20 to 2013-04-30 (across the
    2013-03-10 DST switch), from sp500_20's daily closes."""
    sp = ql.data.load("sp500_20").isel(asset=slice(0, 3))
    days = sp.indexes["time"][(sp.indexes["time"] >= "2013-02-19")
                              & (sp.indexes["time"] <= "2013-04-30")]
    idx = _sessions(days[1:])
    local = idx.tz_localize("UTC").tz_convert(NY).normalize().tz_localize(None)
    rng = np.random.default_rng(61)
    close = np.empty((len(idx), sp.sizes["asset"]))
    for j in range(sp.sizes["asset"]):
        c = sp["close"].isel(asset=j).to_series()
        for k in range(1, len(days)):
            m = np.flatnonzero(local == days[k])
            t = np.arange(1, m.size + 1) / m.size
            w = np.cumsum(rng.normal(0, 1e-3, m.size))
            lo, hi = np.log(c.iloc[k - 1]), np.log(c.iloc[k])
            close[m, j] = np.exp(lo + t * (hi - lo) + w - t * w[-1])
    close = pd.DataFrame(close, index=idx, columns=sp.asset.values)
    opened = close.shift(1).fillna(close.iloc[0])
    frames = {a: pd.DataFrame({"open": opened[a], "high": np.maximum(opened[a], close[a]) * 1.0001,
                               "low": np.minimum(opened[a], close[a]) * 0.9999,
                               "close": close[a], "volume": 100.0})
              for a in close.columns}
    return ql.data.from_pandas(frames)


# ---- calendar inference -----------------------------------------------------------

def test_session_minutes_across_dst_half_day_and_gaps_are_252_sessions(minutes):
    assert minutes.attrs["periods_per_year"] == 252 * 390
    t = minutes.indexes["time"]
    assert infer(t.delete([100, 5000]))["periods_per_year"] == 252 * 390   # missing minutes


def test_a_weekday_session_file_starting_on_a_sunday_is_252_sessions():
    """One Sunday session before four weeks of weekday sessions made every session day
    count 365 a year (142,350 for 1-minute 09:30-16:00 bars, 45% too many)."""
    days = [pd.Timestamp("2013-03-03")] + list(pd.bdate_range("2013-03-04", "2013-03-29"))
    assert infer(_sessions(days))["periods_per_year"] == 98_280


def test_a_sunday_to_thursday_session_market_is_252_sessions():
    """Tel Aviv / Riyadh sessions (Sunday to Thursday) trade ~252 days a year."""
    days = [d for d in pd.date_range("2013-03-03", "2013-05-30")
            if d.day_of_week in (6, 0, 1, 2, 3)]
    got = infer(_sessions(days, "10:00", "16:00", tz="Asia/Jerusalem"))
    assert got["periods_per_year"] == 252 * 360


def test_a_seven_day_session_market_is_365_sessions():
    days = pd.date_range("2013-03-01", "2013-04-30")
    assert infer(_sessions(days, "08:00", "20:00", step="5min", tz="UTC"))[
        "periods_per_year"] == 365 * 144


# ---- strategies annualise by the data's calendar ------------------------------------

def _vol_regime_reference(ds, window, lookback, threshold, target_vol, periods):
    r = ql.data.returns(ql.data.carried(ds["close"]))
    vol = ql.rolling.std(r, window) * np.sqrt(periods)
    pct = ql.rolling.rank(vol, lookback, min_periods=window)
    expo = (target_vol / vol).clip(max=1.0)
    return xr.where(pct > threshold, 0.0, expo).where(vol.notnull() & pct.notnull())


VOL = {"window": 30, "lookback": 200, "threshold": 0.8, "target_vol": 0.15}


def test_volatility_regime_targets_an_annual_volatility_of_minute_bars(minutes):
    """target_vol is annualised: sigma of minute returns x sqrt(98,280), not x sqrt(252)
    (which left every minute strategy fully invested whatever its target)."""
    ds = minutes.isel(time=slice(0, 3000))
    s = ql.strategies.get("volatility_regime", **VOL)
    got = s.signal(ds)
    want = _vol_regime_reference(ds, periods=98_280, **VOL)
    xr.testing.assert_allclose(got.transpose(*want.dims), want, rtol=1e-12)
    held = got.where(got > 0)
    assert held.count() > 1000 and float(held.max()) < 0.9    # the target binds
    vol = s.diagnostics(ds)["realised_vol"]
    assert float(vol.median()) == pytest.approx(float(
        ql.metrics.annual_volatility(ql.data.returns(ds["close"]).isel(time=slice(1, None)))
        .median()), rel=0.3)


def test_volatility_regime_annualises_24_7_daily_bars_with_365():
    eq = ql.data.load().isel(time=slice(0, 400), asset=slice(0, 2))
    crypto = eq.assign_coords(time=pd.date_range("2020-01-01", periods=400, freq="D"))
    crypto.attrs = {}                            # the business days' 252 with them
    crypto = ql.calendar.annotate(crypto)
    assert crypto.attrs["periods_per_year"] == 365
    got = ql.strategies.get("volatility_regime", **VOL).signal(crypto)
    want = _vol_regime_reference(crypto, periods=365, **VOL)
    xr.testing.assert_allclose(got.transpose(*want.dims), want, rtol=1e-12)


# ---- a deployment fed ticks across sessions, a weekend and the DST switch -----------

@pytest.mark.parametrize("kind", ["per_bar", "window"])
def test_ticks_across_dst_drive_a_deployment_as_its_backtest(minutes, kind, monkeypatch):
    """Minute ticks of 2013-03-08 and 03-11 (a weekend, the 03-10 DST switch): the
    engine's bars are the session bars, and the deployment's equity is ql.backtest's of
    the same bars to 1e-12, its volatility target annualised with the bars' 98,280 (the
    per-bar signal and the trailing-window one alike)."""
    s = ql.strategies.get("volatility_regime", **VOL)
    if kind == "window":
        monkeypatch.setattr(type(s), "live", lambda self, **inputs: None)
    full = minutes.sel(time=slice(None, "2013-03-11"))
    hist = full.sel(time=slice(None, "2013-03-07"))
    live = full.sel(time=slice("2013-03-08", None))
    eng = ql.engine.TickEngine({"engine": {"max_symbols": 8}})
    dep = eng.load_strategy_params(dict(s.params), strategy="volatility_regime", bar="1min",
                                   history=hist, fees=0.0005)
    assert (dep._live is None) == (kind == "window")
    ticks = ql.testing.ticks_from_bars(live)
    for i in range(0, len(ticks["timestamp"]), 4099):
        eng.process_ticks({k: v[i:i + 4099] for k, v in ticks.items()})
    eng.flush_bars()
    assert dep.options.periods == 98_280
    np.testing.assert_array_equal(dep.equity.time.values, live.time.values)
    sig = s.signal(full)
    res = ql.backtest(full, sig.where(sig.time >= live.time[0]), fees=0.0005)
    want = res.equity.sel(time=live.time)
    np.testing.assert_allclose(dep.equity.values, want.values, rtol=1e-12)
    assert len(res.orders) == len(dep.orders) > 0
    assert float(sig.sel(time=live.time).min()) < 0.9     # the target binds


def _hourly(ds, offset):
    """Hourly bars of minute bars, binned from ``offset`` past the hour (pandas)."""
    r = {v: getattr(ds[v].resample(time="1h", offset=offset), how)()
         for v, how in (("open", "first"), ("high", "max"), ("low", "min"),
                        ("close", "last"), ("volume", "sum"))}
    return xr.Dataset(r).dropna("time", how="all").assign_coords(asset_class=ds.asset_class)


def test_ticks_into_bars_off_the_historys_grid_are_refused(minutes):
    """Hourly session bars stamped 09:30, 10:30, ... (New York): the engine's hourly bars
    of ticks start on the hour (UTC, pandas' resample bins), so the deployment went on
    with bars at 10:00, 11:00 (the first of them half an hour) after the history's, and
    no error. Now refused naming the bar; history on the hour goes on."""
    hist = minutes.sel(time=slice(None, "2013-03-07"))
    eng = ql.engine.TickEngine({"engine": {"max_symbols": 8}})
    with pytest.raises(ValueError, match=r"2013-02-20 14:30:00 \(UTC\) does not start a 1h bar"):
        eng.load_strategy_params({"window": 5, "lookback": 20}, strategy="volatility_regime",
                                 bar="1h", history=_hourly(hist, "30min"))
    dep = eng.load_strategy_params({"window": 5, "lookback": 20}, strategy="volatility_regime",
                                   bar="1h", history=_hourly(hist, "0min"))
    eng.process_ticks(ql.testing.ticks_from_bars(minutes.sel(time="2013-03-08")))
    eng.flush_bars()
    assert (dep.equity.time.to_index().minute == 0).all() and len(dep.equity) == 7


def test_a_sweep_says_which_periods_it_annualised_with(minutes):
    """res.metrics(), summary and tear sheets record attrs['periods']; a sweep of minute
    bars said nothing of the 98,280 its Sharpe ratios were annualised with."""
    ds = minutes.isel(time=slice(0, 1500))
    s = ql.strategies.get("volatility_regime", lookback=100)
    out = ql.sweep(s, ds, {"window": [10, 20]}, progress=False, workers=1)
    assert out.attrs["periods"] == 98_280
    one = ql.backtest(ds, ql.strategies.get("volatility_regime", window=10,
                                            lookback=100).signal(ds))
    assert one.metrics().attrs["periods"] == 98_280
    np.testing.assert_allclose(out["sharpe_ratio"].sel(window=10).values,
                               one.metrics()["sharpe_ratio"].values, rtol=1e-9)
    assert ql.sweep(s, ds, {"window": [10]}, periods=252, progress=False,
                    workers=1).attrs["periods"] == 252


def test_ticks_from_bars_of_a_microsecond_time_index_replay_those_bars():
    """pandas 3's date_range makes a datetime64[us] index (xarray keeps it): its ticks
    were stamped 1000x too early (1970-01-20 for 2024-03-01), all late for the bars."""
    t = pd.date_range("2024-03-01 23:50", periods=20, freq="min")       # across midnight
    assert t.unit == "us" or pytest.skip("pandas makes ns indexes")
    c = 100 + np.arange(20.0)[:, None] * [1.0, -0.5]
    ds = xr.Dataset({v: (("time", "asset"), c) for v in ("open", "high", "low", "close",
                                                         "volume")},
                    coords={"time": t, "asset": ["BTC", "ETH"]})
    ticks = ql.testing.ticks_from_bars(ds)
    assert pd.Timestamp(int(ticks["timestamp"][0]), unit="us") == t[0]
    agg = ql.engine.BarAggregator("1min", ["BTC", "ETH"], unit="us")
    bars = agg.add(ticks) + agg.flush()
    assert [b.time.values for b in bars] == list(t.as_unit("ns").values)
