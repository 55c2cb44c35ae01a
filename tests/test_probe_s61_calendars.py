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
    days = [d for d in pd.date_range("2013-03-03", "2013-05-30") if d.day_of_week in (6, 0, 1, 2, 3)]
    got = infer(_sessions(days, "10:00", "16:00", tz="Asia/Jerusalem"))
    assert got["periods_per_year"] == 252 * 360


def test_a_seven_day_session_market_is_365_sessions():
    days = pd.date_range("2013-03-01", "2013-04-30")
    assert infer(_sessions(days, "08:00", "20:00", step="5min", tz="UTC"))[
        "periods_per_year"] == 365 * 144
