"""quantlab.calendar: bar frequency, trading calendar and periods per year inferred
from the time index (with holidays and gaps), set by load_csv, used by periods_for."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab.calendar import annotate, infer, periods_for


def _session(days, start="09:30", end="16:00", step="1min", shift=None):
    """Bars labelled at their open, start .. end - step, on each day."""
    out = []
    for d in days:
        t = pd.date_range(d + pd.Timedelta(start + ":00"), d + pd.Timedelta(end + ":00"),
                          freq=step, inclusive="left")
        out.append(t + (shift(d) if shift else pd.Timedelta(0)))
    return pd.DatetimeIndex(np.concatenate([t.values for t in out]))


def _drop(idx, share, seed=0):
    keep = np.random.default_rng(seed).random(len(idx)) >= share
    keep[[0, -1]] = True
    return idx[keep]


def test_bundled_daily_equities_are_business_days_252():
    ds = ql.data.load()
    assert infer(ds) == {"freq": "1D", "calendar": "business_day", "periods_per_year": 252}
    assert periods_for(ds) == 252 and periods_for(ds["close"]) == 252   # no attrs: inferred
    assert periods_for(ds.to_dataframe()["close"].unstack()) == 252


def test_load_csv_sets_freq_calendar_and_periods(tmp_path):
    ql.data.load().sel(asset="IBM").to_dataframe()[["close"]].rename_axis("Date").to_csv(
        tmp_path / "IBM.csv")
    ds = ql.data.load_csv(tmp_path / "IBM.csv")
    assert (ds.attrs["freq"], ds.attrs["calendar"], ds.attrs["periods_per_year"]) == \
        ("1D", "business_day", 252)
    (tmp_path / "one.csv").write_text("Date,Close\n2024-01-02,1\n")   # one bar: no guess
    one = ql.data.load_csv(tmp_path / "one.csv")
    assert "periods_per_year" not in one.attrs
    with pytest.raises(ValueError, match=r"periods_for: cannot infer .* pass periods="):
        periods_for(one)
    assert periods_for(one, periods=365) == 365


def test_daily_24_7_with_gaps_is_365():
    idx = _drop(pd.date_range("2021-01-01", "2021-12-31", freq="D"), 0.1)
    assert infer(idx) == {"freq": "1D", "calendar": "24/7", "periods_per_year": 365}


def test_daily_business_days_with_holidays_are_252():
    idx = pd.bdate_range("2021-01-01", "2021-12-31").drop(
        pd.DatetimeIndex(["2021-01-18", "2021-05-31", "2021-07-05", "2021-11-25"]))
    assert infer(idx)["calendar"] == "business_day" and infer(idx)["periods_per_year"] == 252


def test_one_minute_24_7_with_gaps_is_525600():
    idx = pd.date_range("2024-03-01", "2024-03-15", freq="1min", inclusive="left")
    idx = _drop(idx, 0.05)
    idx = idx[(idx < "2024-03-05 10:00") | (idx >= "2024-03-05 13:00")]   # a 3-hour outage
    assert infer(idx) == {"freq": "1min", "calendar": "24/7", "periods_per_year": 525_600}
    hourly = pd.date_range("2024-03-01", periods=500, freq="h")
    assert infer(hourly)["periods_per_year"] == 24 * 365


def test_one_minute_session_with_holidays_half_days_and_gaps_is_252_x_390():
    days = pd.bdate_range("2024-06-03", "2024-07-31").drop(
        pd.DatetimeIndex(["2024-06-19", "2024-07-04"]))                   # holidays
    idx = _session(days)
    idx = idx[~((idx.normalize() == "2024-07-03") & (idx.time >= pd.Timestamp("13:00").time()))]
    idx = _drop(idx, 0.02)                                                # illiquid minutes
    got = infer(idx)
    assert got == {"freq": "1min", "calendar": "session 09:30-16:00",
                   "periods_per_year": 252 * 390}
    five = _session(days, step="5min")
    assert infer(five)["periods_per_year"] == 252 * 78


def test_session_in_utc_across_daylight_saving_keeps_390_bars_a_day():
    days = pd.bdate_range("2024-02-01", "2024-04-30")
    # New York 09:30 is 14:30 UTC in winter, 13:30 UTC from 2024-03-10
    idx = _session(days, "14:30", "21:00",
                   shift=lambda d: pd.Timedelta(hours=-1 if d >= pd.Timestamp("2024-03-11") else 0))
    got = infer(idx)
    assert got["periods_per_year"] == 252 * 390 and got["calendar"].startswith("session ")


def test_whole_weekdays_are_24_5_and_periodic_bars_use_52_12_4():
    fx = pd.date_range("2024-01-01", "2024-02-29", freq="1h")
    fx = fx[fx.day_of_week < 5]
    assert infer(fx) == {"freq": "1h", "calendar": "24/5", "periods_per_year": 260 * 24}
    for freq, ppy in (("W-FRI", 52), ("MS", 12), ("QS", 4), ("YS", 1)):
        got = infer(pd.date_range("1990-01-01", periods=40, freq=freq))
        assert got["calendar"] == "periodic" and got["periods_per_year"] == ppy, freq
    monthly_gap = pd.date_range("1990-01-01", periods=40, freq="MS").delete(7)
    assert infer(monthly_gap)["periods_per_year"] == 12


def test_freq_given_overrides_and_must_fit_every_step():
    idx = pd.date_range("2024-01-01", periods=10, freq="2min")
    assert infer(idx)["freq"] == "2min"
    assert infer(idx, freq="1min")["freq"] == "1min"
    with pytest.raises(ValueError, match=r"freq='3min' does not fit"):
        infer(idx, freq="3min")
    for bad in ("1M", "2D", "nonsense", 0):
        with pytest.raises(ValueError, match="freq must be"):
            infer(idx, freq=bad)


def test_irregular_or_short_indexes_are_not_guessed():
    ticks = pd.DatetimeIndex(pd.Timestamp("2024-01-01") + pd.to_timedelta(
        np.cumsum(np.random.default_rng(1).integers(1, 10 ** 6, 200)), unit="us"))
    for idx, msg in ((ticks, "irregular"), (ticks[:2], "from 2 timestamp")):
        with pytest.raises(ValueError, match=msg):
            infer(idx)
        ds = annotate(xr.Dataset(coords={"time": idx}))
        assert "periods_per_year" not in ds.attrs
        with pytest.raises(ValueError, match="pass periods="):
            periods_for(ds)
    with pytest.raises(ValueError, match="without a datetime time index"):
        periods_for(np.arange(5.0))


def test_periods_for_prefers_given_then_attrs_and_checks_the_number():
    ds = ql.data.load()
    assert periods_for(ds, periods=12) == 12
    assert periods_for(ds.assign_attrs(periods_per_year=365)) == 365
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="periods must be"):
            periods_for(ds, periods=bad)
    with pytest.raises(TypeError, match="periods must be a real number"):
        periods_for(ds, periods="252")
    assert periods_for(np.arange(5.0), default=252) == 252           # bare array: the default
    assert periods_for(ds, default=12) == 252                        # inferred beats default
    with pytest.raises(ValueError, match="default must be"):
        periods_for(ds, default=0)
