"""quantlab.calendar: bar frequency, trading calendar and periods per year inferred
from the time index (with holidays and gaps), set by load_csv, used by periods_for."""
import warnings

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


# ---- wiring: backtests, metrics and results annualise from the data's calendar ------

def _crypto(freq, n, seed=0):
    rng = np.random.default_rng(seed)
    t = pd.date_range("2024-01-01", periods=n, freq=freq)   # weekends included: 24/7
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, 2)), 0))
    ds = xr.Dataset({"close": (("time", "asset"), c)},
                    coords={"time": t, "asset": ["BTC", "ETH"]})
    sig = xr.DataArray(np.where(rng.random((n, 2)) < 0.2, 1.0, np.nan),
                       dims=("time", "asset"), coords=ds["close"].coords)
    return ds, sig


@pytest.mark.parametrize("freq,n,want", [("1D", 400, 365), ("1min", 3000, 525_600)])
def test_backtest_of_24_7_panel_annualises_with_its_calendar_not_252(freq, n, want):
    ds, sig = _crypto(freq, n)
    for group in (False, True):
        res = ql.backtest(ds, sig, group=group)
        assert res.periods == want
        m = res.metrics()
        assert m.attrs["periods"] == want
        ref = ql.metrics.summary(res.returns, annualization=want)
        np.testing.assert_allclose(m["sharpe_ratio"].values, ref["sharpe_ratio"].values)
        assert not np.allclose(m["sharpe_ratio"].values,
                               ql.metrics.summary(res.returns, annualization=252)
                               ["sharpe_ratio"].values)
        mo = ql.backtest(ds, sig, group=group, metrics_only=("sharpe_ratio",))
        assert mo.attrs["periods"] == want
        np.testing.assert_allclose(mo["sharpe_ratio"].values, m["sharpe_ratio"].values,
                                   rtol=1e-10)


def test_backtest_periods_argument_overrides_the_calendar():
    ds, sig = _crypto("1D", 400)
    res = ql.backtest(ds, sig, periods=252)
    assert res.periods == 252 and res.metrics().attrs["periods"] == 252
    ds.attrs["periods_per_year"] = 360          # an explicit attr wins over inference
    assert ql.backtest(ds, sig).periods == 360


def test_backtest_borrow_rate_converted_with_the_data_periods():
    ds, sig = _crypto("1D", 60)
    kw = dict(max_leverage=2.0, borrow_rate=0.1, group=True)
    res = ql.backtest(ds, sig.fillna(1.0), **kw)
    assert res.periods == 365
    np.testing.assert_array_equal(res.interest.values,
                                  ql.backtest(ds, sig.fillna(1.0), periods=365, **kw)
                                  .interest.values)
    r252 = ql.backtest(ds, sig.fillna(1.0), periods=252, **kw).interest.values
    assert not np.allclose(res.interest.values, r252)


def test_bundled_equities_backtest_annualises_with_252():
    ds = ql.data.load()
    sig = xr.ones_like(ds["close"]).where(ds["close"].time == ds["close"].time[0])
    res = ql.backtest(ds, sig)
    assert res.periods == 252 and res.metrics().attrs["periods"] == 252


def test_metrics_of_returns_with_periods_attr_use_it_bare_arrays_use_252():
    rng = np.random.default_rng(3)
    r = rng.normal(0.001, 0.01, 500)
    da = xr.DataArray(r, dims="time", attrs={"periods_per_year": 365})
    s365 = r.mean() / r.std(ddof=1) * np.sqrt(365)
    assert float(ql.metrics.sharpe_ratio(da)) == pytest.approx(s365, rel=1e-12)
    assert ql.metrics.summary(da).attrs["periods"] == 365
    assert float(ql.metrics.sharpe_ratio(r)) == pytest.approx(s365 * np.sqrt(252 / 365),
                                                              rel=1e-12)
    assert ql.metrics.summary(da, annualization=12).attrs["periods"] == 12


def test_backtest_options_keep_periods_none_round_trip():
    opts = ql.BacktestOptions()
    assert opts.periods is None
    assert ql.BacktestOptions.from_dict(opts.to_dict()).periods is None
    assert ql.BacktestOptions.from_dict(ql.BacktestOptions(periods=365).to_dict()).periods == 365
    with pytest.raises(ValueError, match="periods"):
        ql.BacktestOptions(periods=0)


@pytest.mark.parametrize("freq,n,want", [("1D", 400, 365), ("1min", 3000, 525_600)])
def test_metrics_of_a_backtests_returns_and_of_derived_returns_use_the_calendar(freq, n,
                                                                               want):
    # an outside probe: ql.metrics of res.returns (in memory or streamed) and of returns
    # computed from the close annualised with 252
    ds, sig = _crypto(freq, n)
    for data in (ds, ds.chunk(time=n // 3)):
        res = ql.backtest(data, sig)
        assert not res.returns.attrs    # no attr: a resample of them must not keep it
        np.testing.assert_allclose(ql.metrics.sharpe_ratio(res.returns).values,
                                   res.metrics()["sharpe_ratio"].values, rtol=1e-10)
    r = ds["close"] / ds["close"].shift(time=1) - 1    # arithmetic drops the attrs
    assert not r.attrs
    assert ql.metrics.summary(r).attrs["periods"] == want
    np.testing.assert_allclose(ql.metrics.sharpe_ratio(r).values,
                               ql.metrics.sharpe_ratio(r, annualization=want).values)
    eq = ql.data.load()["close"]
    rb = eq / eq.shift(time=1) - 1                     # business days: 252 as before
    assert ql.metrics.summary(rb).attrs["periods"] == 252
    irregular = r.isel(time=[0, 1, 5, 9, 30])          # no calendar to infer: 252
    assert ql.metrics.summary(irregular).attrs["periods"] == 252


@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/New_York", "Asia/Tokyo",
                                "Australia/Lord_Howe", "UTC"])
@pytest.mark.parametrize("freq,want", [("D", ("24/7", 365)), ("B", ("business_day", 252))])
def test_daily_bars_at_local_midnight_read_in_utc_keep_their_calendar(tz, freq, want):
    # an outside probe: daily 24/7 bars with UTC offsets across daylight saving were
    # "irregular" (no calendar: a backtest used 252); Tokyo business days read as 24/7
    idx = _drop(pd.date_range("2022-01-03", periods=900, freq=freq, tz=tz), 0.05)
    utc = idx.tz_convert("UTC").tz_localize(None)
    got = infer(utc)
    assert (got["freq"], got["calendar"], got["periods_per_year"]) == ("1D", *want)
    assert infer(idx) == got


def test_a_24_7_store_of_offset_stamps_annualises_with_365(tmp_path):
    t = pd.date_range("2023-01-01", periods=400, freq="D", tz="Europe/Berlin")
    c = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, .01, 400)))
    src = tmp_path / "src"
    src.mkdir()
    pd.DataFrame({"Date": [x.isoformat() for x in t], "Open": c, "High": c * 1.01,
                  "Low": c * .99, "Close": c, "Volume": 100}).to_csv(src / "BTC.csv",
                                                                   index=False)
    ds = ql.data.open(ql.data.ingest(src, tmp_path / "st"))
    assert (ds.attrs["calendar"], ds.attrs["periods_per_year"]) == ("24/7", 365)
    assert ql.data.load_csv(src).attrs["periods_per_year"] == 365
    assert ql.backtest(ds, xr.ones_like(ds["close"]).load()).periods == 365


@pytest.mark.parametrize("freq,per_day", [("h", 24), ("15min", 96)])
def test_fx_week_from_sunday_evening_utc_is_24_5(freq, per_day):
    # an outside probe: FX bars Sunday 22:00 to Friday 22:00 UTC (weekend stamps on
    # Sundays) read as 24/7, 8760 a year for hourly bars instead of ~6240
    t = pd.date_range("2024-01-07 22:00", "2024-12-27 21:45", freq=freq)
    t = t[(t + pd.Timedelta("2h")).day_of_week < 5]
    t = _drop(t, 0.02)
    got = infer(t)
    assert (got["calendar"], got["periods_per_year"]) == ("24/5", 260 * per_day)
    crypto = _drop(pd.date_range("2024-01-01", periods=24 * 200, freq="h"), 0.02)
    assert infer(crypto)["calendar"] == "24/7"          # no weekly pause: still 24/7


def test_review_cases_sessions_across_utc_midnight_and_24_7_holes_and_outages():
    def session(tz, start, end, freq="5min"):
        days = pd.bdate_range("2024-01-01", "2024-06-30")
        return pd.DatetimeIndex(np.concatenate([
            pd.date_range(f"{d.date()} {start}", f"{d.date()} {end}", freq=freq,
                          inclusive="left", tz=tz) for d in days])).tz_convert("UTC")

    asx = infer(session("Australia/Sydney", "10:00", "16:00"))
    assert (asx["calendar"], asx["periods_per_year"]) == ("session across midnight UTC",
                                                          252 * 72)
    assert infer(session("Pacific/Auckland", "10:00", "16:45"))["periods_per_year"] == 252 * 81
    d = pd.date_range("2024-01-01", periods=400, freq="D")
    keep = np.ones(400, bool)
    for i in range(5, 400, 9):
        keep[i:i + 2] = False             # 2-day holes: still 24/7, not business days
    assert infer(d[keep])["periods_per_year"] == 365
    h = pd.DatetimeIndex(np.r_[pd.date_range("2024-01-01", periods=72, freq="h"),
                               pd.date_range("2024-01-05", periods=120, freq="h")])
    assert infer(h)["calendar"] == "24/7"   # one outage is not a weekly pause


def test_metrics_infer_along_their_dim_and_only_when_they_annualise(monkeypatch):
    # the review: dim= was ignored (a 'date' dim fell back to 252), and every metric,
    # max_drawdown too, inferred the calendar of its index on every call
    r = np.random.default_rng(5).normal(0.0001, 0.01, 24 * 60)
    t = pd.date_range("2024-01-01", periods=r.size, freq="h")
    want = float(ql.metrics.sharpe_ratio(r, annualization=8760))
    for x, kw in ((xr.DataArray(r, dims="time", coords={"time": t}), {}),
                  (xr.DataArray(r, dims="date", coords={"date": t}), {"dim": "date"}),
                  (pd.Series(r, index=t), {})):
        assert float(ql.metrics.sharpe_ratio(x, **kw)) == pytest.approx(want, rel=1e-12)
    calls = []
    real = ql.calendar._infer   # the inference itself, under infer's cache of an index
    monkeypatch.setattr(ql.calendar, "_infer", lambda *a, **k: calls.append(1) or real(*a, **k))
    da = xr.DataArray(r, dims="time", coords={"time": pd.date_range("2020-01-01",
                                                                    periods=r.size, freq="h")})
    ql.metrics.max_drawdown(da)
    ql.metrics.value_at_risk(da)
    assert calls == []                          # not annualised: no calendar
    ql.metrics.sharpe_ratio(da)
    ql.metrics.sortino_ratio(da)
    assert calls == [1]                         # one panel's index: inferred once
    ql.backtest(xr.Dataset({"close": (100 * (1 + da).cumprod()).expand_dims(asset=["A"], axis=1)}),
                da.expand_dims(asset=["A"], axis=1) * 0 + 1.0)
    assert calls == [1]                         # a backtest of it too
    backwards = da.indexes["time"][::-1]
    for _ in range(2):                          # an index's error is kept and raised again
        with pytest.raises(ValueError, match="not strictly increasing"):
            infer(backwards)
    assert calls == [1, 1]


def test_a_cached_calendar_error_keeps_no_data_alive():
    # the review: infer kept its last error, whose traceback held the caller's object
    # (an 80 MB tick panel stayed alive until the next call)
    import gc
    import weakref

    t = pd.DatetimeIndex(np.cumsum(np.random.default_rng(0).integers(1, 10**9, 500)))
    da = xr.DataArray(np.zeros(t.size), dims="time", coords={"time": t})   # ticks
    alive = weakref.ref(da)
    with pytest.raises(ValueError, match="irregular"):
        infer(da)
    del da
    gc.collect()
    assert alive() is None


def test_two_days_cut_by_the_data_are_not_a_session_of_their_ends():
    # an outside probe: four hours of 24/7 minute bars across midnight UTC (a DST night
    # in Berlin) and four 1-second stamps around a new year (a leap second's place) tied
    # the first/last-bar modes into "session 00:00-02:00" (43,800 a year: Sharpe off by
    # sqrt(12)) and "session 00:00-00:00" (730)
    berlin = pd.date_range("2024-10-27 00:00", periods=240, freq="min", tz="Europe/Berlin")
    assert infer(berlin) == {"freq": "1min", "calendar": "24/7", "periods_per_year": 525_600}
    leap = pd.DatetimeIndex(["2016-12-31 23:59:58", "2016-12-31 23:59:59",
                             "2017-01-01 00:00:00", "2017-01-01 00:00:01"])
    assert infer(leap) == {"freq": "1s", "calendar": "24/7", "periods_per_year": 31_536_000}
    # two sessions: the second day's open and the first day's close, not the data's ends
    two = _session(pd.bdate_range("2024-03-07", periods=2), shift=lambda d: pd.Timedelta(0))
    assert infer(two) == {"freq": "1min", "calendar": "session 09:30-16:00",
                          "periods_per_year": 98_280}
    late = two[100:-100]                        # cut mid-session at both ends
    assert infer(late) == infer(two)


@pytest.mark.parametrize("idx, cal, other", [
    # five weekday daily bars: business days, or a 24/7 market's week
    (pd.date_range("2024-01-01", periods=5, freq="D"), "business_day", "365"),
    # Sunday to Thursday in UTC over five days: 24/7, or Tokyo's business days
    (pd.date_range("2023-12-31 15:00", periods=5, freq="D"), "24/7", "east of UTC"),
    # two days of hourly bars around the clock, no weekend: 24/7 or 24/5
    (pd.date_range("2024-01-01", periods=48, freq="h"), "24/7", "24/5"),
    # one UTC day's session: it may be a longer session's or a 24/7 market's stretch
    (_session([pd.Timestamp("2024-03-07")]), "session 09:30-16:00", "525,600"),
])
def test_a_calendar_too_few_bars_can_tell_is_a_guess_and_says_so(idx, cal, other):
    # an outside probe: these were annualised silently with the first fitting calendar
    with pytest.warns(ql.errors.CalendarWarning, match=f"guess;.*{other}.*periods="):
        assert infer(idx)["calendar"] == cal
    ds = xr.Dataset(coords={"time": idx})
    with pytest.warns(ql.errors.CalendarWarning):
        assert annotate(ds).attrs["calendar"] == cal


@pytest.mark.parametrize("idx", [
    pd.bdate_range("2024-01-01", periods=30),                          # weeks of weekdays
    pd.date_range("2024-01-01", periods=10, freq="D"),                 # a weekend seen
    pd.date_range("2023-12-31 15:00", periods=6, freq="D"),            # six weekdays
    pd.date_range("2024-01-01", periods=240, freq="h"),                # ten days, weekend
    _session(pd.bdate_range("2024-03-07", periods=2)),                 # a close and an open
    _session(pd.bdate_range("2024-03-07", periods=2))[100:-100],
])
def test_a_calendar_the_bars_decide_gives_no_warning(idx):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ql.errors.CalendarWarning)
        infer(idx)


def test_the_calendar_warning_points_at_the_callers_line():
    # it pointed into quantlab (calendar.py), where a user cannot act on it
    r = xr.DataArray([0.01, -0.02, 0.01, 0.0, 0.01], dims="time",
                     coords={"time": pd.date_range("2024-02-05", periods=5, freq="D")})
    with pytest.warns(ql.errors.CalendarWarning) as w:
        ql.metrics.sharpe_ratio(r)
    assert w[0].filename == __file__


def test_a_few_hours_across_midnight_utc_name_a_session_as_the_other_calendar():
    # an outside review: six hours of ASX bars (10:00-16:00 Sydney) were "around the
    # clock", the warning naming only a 24/5 market
    asx = pd.date_range("2024-01-09 10:00", "2024-01-09 15:55", freq="5min").tz_localize(
        "Australia/Sydney").tz_convert("UTC")
    with pytest.warns(ql.errors.CalendarWarning, match="of under a day.*a session of those"):
        infer(asx)
