"""Session 57, helper `ticks57`: tick columns with text / datetime-object timestamps, and
deployment replays.

A timestamp column of ISO 8601 text or of datetime objects (what a DataFrame read from a
CSV, or built from tick dicts, holds) was a TypeError in process_ticks, replay and
process_market_data(DataFrame), though the same values in tick dicts were taken. Now
such a column is converted once, whole, by a replay file's rules. A datetime64 column in
a coarser unit than the engine's wrapped silently past int64 (2608 became 2024)."""
import datetime as dt

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


def _five(ts):
    return {"symbol_id": np.zeros(len(ts), np.int64), "bid_price": np.full(len(ts), 10.0),
            "ask_price": np.full(len(ts), 10.02), "bid_size": np.full(len(ts), 5),
            "ask_size": np.full(len(ts), 5), "timestamp": ts}


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
