"""Session 57, helper `ticks57`: tick columns with text / datetime-object timestamps, and
deployment replays.

A timestamp column of ISO 8601 text or of datetime objects (what a DataFrame read from a
CSV, or built from tick dicts, holds) was a TypeError in process_ticks, replay and
process_market_data(DataFrame), though the same values in tick dicts were taken. Now
such a column is converted once, whole, by a replay file's rules (since session 58: value
by value as tick dicts read them). A datetime64 column in
a coarser unit than the engine's wrapped silently past int64 (2608 became 2024)."""

import numpy as np
import pandas as pd
import pytest

import quantlab as ql
import quantlab.engine as E
from quantlab.engine import BarAggregator
from quantlab.testing import synthetic_ticks

UNITS = {"us": 1000, "ns": 1}


def _state(core):
    return {"ticks": core.ticks, "orders": core.orders, "signals": core.signals,
            "cash": core.cash, "pos": list(core.pos), "last_ts": list(core.last_ts),
            "tick_rejects": list(core.tick_rejects), "order_rejects": list(core.order_rejects)}


def _cols(unit, n=3000):
    cols = synthetic_ticks(n, n_symbols=5, seed=7, bad_fraction=0.02)
    if unit == "ns":          # stamps with nanoseconds
        cols["timestamp"] = cols["timestamp"] * 1000 + np.arange(n) % 997
    return cols


def _iso(ns, unit_ns, zone=None):
    """int ns -> ISO text with the unit's digits, in ``zone`` (None: naive UTC)."""
    t = pd.DatetimeIndex(ns.astype("datetime64[ns]"))
    if zone is not None:
        t = t.tz_localize("UTC").tz_convert(zone)
    digits = 9 if unit_ns == 1 else 6
    frac = pd.Series(t.nanosecond + 1000 * t.microsecond).astype(str).str.zfill(9).str[:digits]
    off = "" if zone is None else pd.Series(t.strftime("%z")).str[:3] + ":" + \
        pd.Series(t.strftime("%z")).str[3:]
    return (pd.Series(t.strftime("%Y-%m-%dT%H:%M:%S")) + "." + frac + off).tolist()


def _ways(ns, unit_ns):
    """The same stamps as text and object columns of every kind."""
    aware = pd.DatetimeIndex(ns.astype("datetime64[ns]")).tz_localize("UTC")
    zones = np.array(["Asia/Tokyo", "UTC", "America/New_York"])[np.arange(len(ns)) % 3]
    ways = {
        "iso naive, object": np.array(_iso(ns, unit_ns), dtype=object),
        "iso +01:00, <U": np.array(_iso(ns, unit_ns, "Europe/Paris")),
        "iso -05:00, list": _iso(ns, unit_ns, "America/New_York"),
        "iso Z, pandas str": pd.Series(_iso(ns, unit_ns, "UTC"), dtype="string"),
        "Timestamps, zones mixed": np.array([t.tz_convert(z) for t, z in zip(aware, zones)],
                                            dtype=object),
        "Timestamps naive, list": list(aware.tz_localize(None)),
        "np.datetime64 objects": np.array(list(ns.astype("datetime64[ns]")), dtype=object),
    }
    if unit_ns == 1000:       # datetime.datetime holds µs
        ways["datetime objects"] = np.array(aware.to_pydatetime(), dtype=object)
    return ways


@pytest.mark.parametrize("unit", ["us", "ns"])
def test_text_and_datetime_object_timestamp_columns_run_as_the_int_column(unit):
    cols = _cols(unit)
    config = {"engine": {"timestamp_unit": unit}}
    want = E.TickEngine(config)
    want.process_ticks(cols)
    expected = _state(want.core)
    assert expected["orders"] > 50
    ns = cols["timestamp"] * UNITS[unit]
    for name, ts in _ways(ns, UNITS[unit]).items():
        eng = E.TickEngine(config)
        eng.process_ticks(dict(cols, timestamp=ts))
        assert _state(eng.core) == expected, name
        eng = E.TickEngine(config)
        eng.process_market_data(pd.DataFrame(dict(cols, timestamp=ts)))
        assert _state(eng.core) == expected, name
        eng = E.TickEngine(config)
        eng.replay(pd.DataFrame(dict(cols, timestamp=ts)), chunk=700)
        assert _state(eng.core) == expected, name


def test_arrow_backed_timestamp_columns_zoned_or_naive_run_as_the_int_column():
    # pd.read_parquet(dtype_backend="pyarrow"): a zoned Arrow timestamp column was a
    # TypeError (NumPy sees Timestamp objects); it is read as its UTC instants, whole
    pa = pytest.importorskip("pyarrow")
    cols = _cols("us")
    want = E.TickEngine()
    want.process_ticks(cols)
    ts = pd.Series(cols["timestamp"].astype("datetime64[us]")).dt.tz_localize("UTC")
    for zone, unit in (("Asia/Tokyo", "us"), ("UTC", "ns"), (None, "ms")):
        col = ts.dt.tz_convert(zone) if zone else ts.dt.tz_localize(None)
        col = col.dt.floor(unit).astype(pd.ArrowDtype(pa.timestamp(unit, tz=zone)))
        eng = E.TickEngine()
        eng.process_ticks(pd.DataFrame(dict(cols, timestamp=col)))
        if unit == "ms":      # floored to ms: a different stream, the same clock
            assert eng.core.last_ts[0] // 1000 == want.core.last_ts[0] // 1000
        else:
            assert _state(eng.core) == _state(want.core), zone


def test_an_empty_frame_of_untyped_columns_is_no_ticks_not_an_error():
    # pd.DataFrame(columns=FIELDS) has object columns: "must be numeric" for no values
    for run in ("process_ticks", "replay", "process_market_data"):
        eng = E.TickEngine()
        assert getattr(eng, run)(pd.DataFrame(columns=list(E.FIELDS))).ticks == 0
        assert eng.ticks == 0


def test_a_text_timestamp_column_reads_as_the_same_text_in_a_replay_file(tmp_path):
    cols = _cols("us", 1000)
    text = _iso(cols["timestamp"] * 1000, 1000, "Europe/Paris")
    text[5] = ""                                    # blank: a rejected tick in both
    frame = pd.DataFrame(dict(cols, timestamp=text))
    frame.to_csv(tmp_path / "t.csv", index=False)
    from_file, from_frame = E.TickEngine(), E.TickEngine()
    from_file.replay(tmp_path / "t.csv")
    from_frame.replay(frame)
    assert _state(from_frame.core) == _state(from_file.core)
    assert from_frame.get_performance_stats()["tick_rejects"]["bad_timestamp"] == 1


def _five(ts):
    return {"symbol_id": np.zeros(len(ts), np.int64), "bid_price": np.full(len(ts), 10.0),
            "ask_price": np.full(len(ts), 10.02), "bid_size": np.full(len(ts), 5),
            "ask_size": np.full(len(ts), 5), "timestamp": ts}


def test_missing_stamps_in_a_text_or_object_column_are_rejected_ticks():
    for ts in (["2024-01-02T14:30:00Z", None, "  ", np.nan, "2024-01-02T14:30:01Z"],
               [pd.Timestamp("2024-01-02T14:30:00Z"), None, pd.NaT, np.nan,
                pd.Timestamp("2024-01-02T15:30:01+01:00")],
               [None] * 5):
        eng = E.TickEngine()
        res = eng.process_ticks(_five(np.array(ts, dtype=object)))
        assert res.ticks == 5
        bad = 5 if ts[0] is None else 3
        assert eng.get_performance_stats()["tick_rejects"]["bad_timestamp"] == bad
        if ts[0] is not None:
            assert eng.core.last_ts[0] == pd.Timestamp("2024-01-02T14:30:01Z").value // 1000


# the columns session 57 refused whole (not a date, naive and offset text, "NA", text and
# datetimes, naive and zoned objects, dates, bytes) are read value by value as tick dicts
# since session 58: tests/test_probe_s58_ticks.py


@pytest.mark.parametrize("src", ["s", "ms", "us", "D"])
def test_a_coarse_datetime64_column_beyond_the_engines_unit_is_rejected_not_wrapped(src):
    # NumPy's cast of 2608-08-01 (in µs) to ns wrapped past int64 into 2024-01-11: a ns
    # engine took it as a tick of 2024; the dict path rejects it (bad_timestamp)
    ts = np.array(["2024-01-02", "2608-08-01", "1500-01-01", "NaT", "2024-01-03"],
                  dtype=f"datetime64[{src}]")
    eng = E.TickEngine({"engine": {"timestamp_unit": "ns"}})
    eng.process_ticks(_five(ts))
    r = eng.get_performance_stats()["tick_rejects"]
    assert (r["bad_timestamp"], r["out_of_order"], r["clock_skew"]) == (3, 0, 0)
    assert eng.core.last_ts[0] == pd.Timestamp("2024-01-03").value
    dicts = E.TickEngine({"engine": {"timestamp_unit": "ns"}})
    dicts.process_market_data([{**{k: v[i] for k, v in _five(ts).items()}}
                               for i in range(len(ts))])
    assert list(dicts.core.tick_rejects) == list(eng.core.tick_rejects)
    # µs holds 2608: a stamp, too far ahead of the one before (clock_skew)
    us = E.TickEngine()
    us.process_ticks(_five(ts))
    r = us.get_performance_stats()["tick_rejects"]
    assert (r["bad_timestamp"], r["clock_skew"]) == (2, 1)
    # the bars of a deployment, and a BarAggregator fed directly, skip it too
    agg = BarAggregator("1D", ["A"], unit="ns")
    bars = agg.add(_five(ts)) + agg.flush()
    assert [str(b.time.values)[:10] for b in bars] == ["2024-01-02", "2024-01-03"]
    assert agg.skipped == 3


def test_a_deployed_engine_trades_text_stamps_as_the_int_stamps():
    ds = ql.data.load("equities").isel(time=slice(0, 70), asset=slice(0, 2))
    ticks = ql.testing.ticks_from_bars(ds.isel(time=slice(60, 70)))
    runs = []
    for ts in (ticks["timestamp"], _iso(ticks["timestamp"] * 1000, 1000, "Asia/Tokyo")):
        eng = E.TickEngine({"engine": {"max_symbols": 8}})
        dep = eng.load_strategy_params({"window": 15}, strategy="volatility_regime", bar="1D",
                                       history=ds.isel(time=slice(0, 60)))
        eng.process_ticks(dict(ticks, timestamp=ts))
        eng.flush_bars()
        runs.append(dep)
    assert len(runs[0].equity) == 10
    assert runs[1].equity.identical(runs[0].equity)
    assert runs[1].positions.identical(runs[0].positions)


# ---- deployment replays ------------------------------------------------------------------

P = {"window": 10, "lookback": 20}


@pytest.fixture(scope="module")
def bars():
    return ql.data.load("equities").isel(time=slice(0, 90))


def _deployed(history, replay, universe=None, **kw):
    dep = ql.deploy("volatility_regime", P, history=history, universe=universe)
    return dep.replay(replay, **kw)


@pytest.mark.parametrize("block", [1, 5])
@pytest.mark.parametrize("with_history", [True, False])
def test_a_zoned_replay_after_naive_history_trades_at_the_utc_times(bars, block, with_history):
    # the replay's panel dropped the zone keeping the wall time (Tokyo: 09:00), while
    # on_bar (the first bar without history) read UTC: one replay with two clocks
    hist = bars.isel(time=slice(0, 60)) if with_history else None
    rep = bars.isel(time=slice(60, None))
    naive = _deployed(hist, rep, block=block)
    for zone in ("Asia/Tokyo", "America/New_York"):
        zoned = rep.assign_coords(time=rep.indexes["time"].tz_localize("UTC").tz_convert(zone))
        dep = _deployed(hist, zoned, block=block)
        np.testing.assert_array_equal(dep.equity.time.values, naive.equity.time.values)
        assert dep.equity.identical(naive.equity) and dep.positions.identical(naive.positions)


def test_replay_data_must_carry_exactly_the_universe_in_any_order(bars):
    hist, rep = bars.isel(time=slice(0, 60)), bars.isel(time=slice(60, None))
    two = ["AAPL", "IBM"]
    want = _deployed(hist.sel(asset=two), rep.sel(asset=two))
    # (a) history with more assets: the universe's are taken by name; (d) any order
    for h, r in ((hist, rep.sel(asset=two)), (hist.isel(asset=[3, 2, 1, 0]),
                                              rep.sel(asset=two[::-1]))):
        for block in (1, 4):
            dep = _deployed(h, r, universe=two, block=block)
            assert dep.universe == two and dep.positions.identical(want.positions)
    # (b) an asset more, (c) one fewer: named, nothing traded
    for r, named in ((rep, r"unknown \['GOOG', 'MSFT'\]"),
                     (rep.sel(asset=["AAPL"]), r"missing \['IBM'\]")):
        dep = ql.deploy("volatility_regime", P, history=hist, universe=two)
        with pytest.raises(ql.DataError, match=named):
            dep.replay(r)
        assert len(dep.equity) == 0
