"""Session 56, helper `ticks`: tick dicts with datetime / ISO 8601 timestamps.

A dict tick whose timestamp was ISO 8601 text, a datetime, a pd.Timestamp or an
np.datetime64 parsed to -1 and was rejected as "out_of_order" (every one of them: a feed
that never trades); so was garbage. Now datetimes are converted to the configured unit
(UTC) by one rule in the kernel, the oracle and the bars path, and a timestamp that is
none (garbage, None, missing, a fraction, before 1970) is rejected as "bad_timestamp"."""
import datetime as dt
import random

import numpy as np
import pandas as pd
import pytest

import quantlab as ql
import quantlab.engine as E
from quantlab._kernels import ticks as K
from quantlab.engine.reference import TICK_REJECTS, parse_tick, to_timestamp
from quantlab.testing import synthetic_ticks, to_dicts

UTC = dt.timezone.utc
PLUS1 = dt.timezone(dt.timedelta(hours=1))
MINUS0530 = dt.timezone(-dt.timedelta(hours=5, minutes=30))


def _state(core):
    return {"ticks": core.ticks, "orders": core.orders, "signals": core.signals,
            "stale": core.stale, "cash": core.cash, "mtm2": core.mtm2, "gross2": core.gross2,
            "pos": list(core.pos), "last_ts": list(core.last_ts),
            "tick_rejects": list(core.tick_rejects), "order_rejects": list(core.order_rejects)}


def _ref_state(ref):
    return {"ticks": ref.ticks, "orders": ref.orders, "signals": ref.signals,
            "stale": ref.stale, "cash": ref.cash, "mtm2": ref.mtm2, "gross2": ref.gross2,
            "pos": list(ref.pos), "last_ts": list(ref.last_ts),
            "tick_rejects": list(ref.tick_rejects), "order_rejects": list(ref.order_rejects)}


def _iso(ns: int, unit_digits=6, offset=None, sep="T", zone="Z") -> str:
    """ns since the epoch as ISO text with ``unit_digits`` fraction digits, in the zone
    ``offset`` (a timezone; None: UTC) written as ``zone`` ("" for naive)."""
    t = pd.Timestamp(ns, unit="ns", tz="UTC")
    if offset is not None:
        t = t.tz_convert(offset)
        zone = t.strftime("%z")
        zone = zone[:3] + ":" + zone[3:]
    frac = f"{t.microsecond * 1000 + t.nanosecond:09d}"[:unit_digits]
    return t.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + (f".{frac}" if unit_digits else "") + zone


def _variants(ticks, unit_ns):
    """The same ticks with their int timestamps written every other way."""
    ns = [t["timestamp"] * unit_ns for t in ticks]
    digits = 9 if unit_ns == 1 else 6
    ways = {
        "iso Z": lambda n: _iso(n, digits),
        "iso +01:00": lambda n: _iso(n, digits, PLUS1),
        "iso -05:30": lambda n: _iso(n, digits, MINUS0530),
        "iso naive, space": lambda n: _iso(n, digits, sep=" ", zone=""),
        "pd.Timestamp utc": lambda n: pd.Timestamp(n, unit="ns", tz="UTC"),
        "pd.Timestamp naive": lambda n: pd.Timestamp(n, unit="ns"),
        "np.datetime64": lambda n: np.datetime64(n, "ns"),
        "np.datetime64 in the unit": lambda n: np.datetime64(n // unit_ns,
                                                             "ns" if unit_ns == 1 else "us"),
    }
    if unit_ns == 1000:     # datetime.datetime holds µs
        ways["datetime naive"] = lambda n: dt.datetime(1970, 1, 1) + dt.timedelta(
            microseconds=n // 1000)
        ways["datetime +01:00"] = lambda n: dt.datetime.fromtimestamp(n / 1e9, PLUS1).replace(
            microsecond=(n // 1000) % 10 ** 6)
    return {name: [dict(t, timestamp=f(n)) for t, n in zip(ticks, ns)]
            for name, f in ways.items()}


@pytest.mark.parametrize("unit", ["us", "ns"])
def test_the_same_ticks_as_ints_iso_text_and_datetimes_give_the_same_engine(unit):
    unit_ns = 1000 if unit == "us" else 1
    cols = synthetic_ticks(3000, n_symbols=5, seed=7, bad_fraction=0.02)
    if unit == "ns":     # stamps with nanoseconds, as a ns feed sends them
        cols["timestamp"] = cols["timestamp"] * 1000 + np.arange(3000) % 997
    ticks = to_dicts(cols, as_strings=True)
    config = {"engine": {"timestamp_unit": unit}}
    want = E.TickEngine(config)
    want.process_market_data(ticks)
    expected = _state(want.core)
    assert expected["orders"] > 50 and expected["tick_rejects"][4] > 0   # trades; some
    assert max(expected["last_ts"]) == cols["timestamp"].max()          # out of order
    for name, variant in _variants(ticks, unit_ns).items():
        eng, ref = E.TickEngine(config), E.reference_engine(config)
        res = eng.process_market_data(variant)
        ref.process_market_data(variant)
        assert _state(eng.core) == expected, name
        assert _ref_state(ref) == expected, name
        assert res.order_count == expected["orders"], name


def test_iso_text_matches_pandas_and_the_datetime64_column_path():
    # pandas' reading of the same text, floored to the unit (a datetime64[ns] column's
    # astype to µs floors its nanoseconds: so does the dict path)
    texts = ["2024-01-02T14:30:00.123456789Z", "2024-01-02T15:30:00.5+01:00",
             "2024-01-02T09:00:00.000000999-05:30", "2024-01-02 14:30:00", "2024-01-02",
             "2024-01-02T14:30Z", "2024-01-02T14:30:00,25+0100", "2024-02-29T23:59:59.999999999",
             "1970-01-01T00:00:00.000001Z", "2100-12-31T23:59:59.1-23:59"]
    for unit_ns, unit in ((1000, "us"), (1, "ns")):
        for text in texts:
            want = pd.Timestamp(text.replace(",", ".")).as_unit("ns")
            want = want.tz_convert("UTC") if want.tz is not None else want
            assert to_timestamp(text, unit_ns) == want.value // unit_ns, (text, unit)
            assert K.parse_dicts([{"timestamp": text}], 0.01, unit_ns)[5, 0] == \
                want.value // unit_ns, (text, unit)
    # the column path (datetime64 column, offsets to UTC) and the dict path agree
    cols = synthetic_ticks(400, n_symbols=3, seed=3)
    ns = cols["timestamp"] * 1000 + np.arange(400) % 1000          # sub-µs digits
    texts = [_iso(int(n), 9, offset=PLUS1) for n in ns]
    col = E.TickEngine()
    col.process_ticks(dict(cols, timestamp=pd.to_datetime(texts, format="ISO8601")))
    dicts = E.TickEngine()
    dicts.process_market_data([dict(t, timestamp=s) for t, s in zip(to_dicts(cols), texts)])
    assert _state(dicts.core) == _state(col.core)
    assert max(_state(col.core)["last_ts"]) == cols["timestamp"].max()


def test_garbage_timestamps_are_rejected_as_bad_timestamp_and_counted():
    good = {"symbol_id": 1, "bid_price": "100.00", "ask_price": "100.02", "bid_size": 10,
            "ask_size": 10, "timestamp": "2024-01-02T14:30:00Z"}
    missing = {k: v for k, v in good.items() if k != "timestamp"}
    bad_values = ["garbage", None, "", "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z",
                  "2023-02-29", "2024-01-02T24:00:00Z", "2024-01-02T14:60Z",
                  "2024-01-02T14:30:60Z", "2024-01-02T14:30:00+24:00",
                  "2024-01-02T14:30:00+01:60", "2024-01-02T14:30:00+1",
                  "2024-01-02T14:30:00+01:", "2024-01-02T14:30:00.Z", "2024-01-02Z",
                  "2024-01-02T14", "20240102T143000Z", " 2024-01-02T14:30:00Z",
                  "2024-01-02T14:30:00Z ", "２０２４-01-02T14:30:00Z", "0000-01-01",
                  "1969-12-31T23:59:59.999999Z", "1970-01-01T00:30:00+01:00",
                  1000.5, "1000.25", float("nan"), float("inf"), -5, 2 ** 62, "abc",
                  np.datetime64("NaT"), pd.NaT, np.timedelta64(5, "ns"),
                  np.timedelta64(5, "s"), dt.date(2024, 1, 2), b"2024-01-02T14:30:00Z\xff",
                  dt.time(14, 30), np.datetime64("1969-12-31T23:59:59"),
                  pd.Timestamp("1969-07-20T20:17Z")]
    bad = [dict(good, timestamp=v) for v in bad_values] + [missing]
    eng, ref = E.TickEngine(), E.reference_engine()
    res = eng.process_market_data([good] + bad)
    ref.process_market_data([good] + bad)
    r = eng.get_performance_stats()["tick_rejects"]
    assert r["bad_timestamp"] == len(bad) and res.rejected_ticks == len(bad)
    assert r["out_of_order"] == 0
    assert list(eng.core.tick_rejects) == ref.tick_rejects
    assert eng.core.last_ts[1] == 1704205800000000      # the good tick, µs
    # 2^62 ns is in 2116: beyond it a ns engine rejects what a µs one takes
    far = dict(good, symbol_id=2, timestamp="2117-01-01T00:00:00Z")
    ns = E.TickEngine({"engine": {"timestamp_unit": "ns"}})
    ns.process_market_data([far])
    assert ns.get_performance_stats()["tick_rejects"]["bad_timestamp"] == 1
    us = E.TickEngine()
    us.process_market_data([far])
    assert us.core.last_ts[2] == pd.Timestamp("2117-01-01").value // 1000 and \
        us.core.rejected_ticks == 0


def test_an_earlier_iso_stamp_is_out_of_order_not_a_bad_timestamp():
    t = {"symbol_id": 0, "bid_price": 10.0, "ask_price": 10.02, "bid_size": 5, "ask_size": 5}
    ticks = [dict(t, timestamp="2024-01-02T14:30:00.000002Z"),
             dict(t, timestamp="2024-01-02T15:30:00.000001+01:00"),     # 1 µs earlier
             dict(t, timestamp=dt.datetime(2024, 1, 2, 14, 30, 0, 3))]
    eng = E.TickEngine()
    eng.process_market_data(ticks)
    r = eng.get_performance_stats()["tick_rejects"]
    assert (r["out_of_order"], r["bad_timestamp"], eng.core.ticks) == (1, 0, 3)
    assert eng.core.last_ts[0] == 1704205800000003


def test_timedelta64_fields_are_rejected_not_raised():
    # NumPy calls timedelta64 an integer: int() of one in seconds raised TypeError out of
    # process_market_data (kernel and oracle); one in ns was taken as an integer
    good = {"symbol_id": 0, "bid_price": 10.0, "ask_price": 10.02, "bid_size": 5,
            "ask_size": 5, "timestamp": 1}
    bad = [dict(good, bid_size=np.timedelta64(5, "s")),
           dict(good, symbol_id=np.timedelta64(0, "ns")),
           dict(good, bid_price=np.timedelta64(5, "ns"))]
    eng, ref = E.TickEngine(), E.reference_engine()
    eng.process_market_data(bad + [good])
    ref.process_market_data(bad + [good])
    r = eng.get_performance_stats()["tick_rejects"]
    assert (r["bad_size"], r["bad_symbol"], r["bad_price"]) == (1, 1, 1)
    assert list(eng.core.tick_rejects) == ref.tick_rejects and eng.core.n_ticks[0] == 1


def _random_stamp(rng, ns):
    """``ns`` written one of many ways, or something that is no timestamp."""
    k = rng.random()
    if k < 0.25:
        return ns // 1000
    if k < 0.35:
        return str(ns // 1000)
    if k < 0.55:
        return _iso(ns, rng.choice([0, 3, 6, 9, 12]), rng.choice([None, PLUS1, MINUS0530]),
                    sep=rng.choice("T t"), zone=rng.choice(["Z", "z", ""]))
    if k < 0.65:
        return pd.Timestamp(ns, unit="ns", tz=rng.choice([None, "UTC", "Asia/Tokyo"]))
    if k < 0.72:
        return dt.datetime.fromtimestamp(ns // 1000 / 1e6, rng.choice([UTC, PLUS1]))
    if k < 0.8:
        return np.datetime64(ns, "ns").astype(
            f"datetime64[{rng.choice(['D', 's', 'ms', 'us', 'ns', 'ps'])}]")
    if k < 0.9:   # a corrupted ISO stamp (often still valid)
        s = _iso(ns, 6)
        i = rng.randrange(len(s))
        return s[:i] + rng.choice("0-:T.Z+ x9") + s[i + 1:]
    return rng.choice([None, "garbage", float("nan"), ns / 7e3, -1, 2 ** 63,
                       np.timedelta64(1, "s"), pd.NaT, "2024-02-30T00:00:00Z"])


@pytest.mark.parametrize("unit", ["us", "ns"])
def test_kernel_equals_oracle_on_a_random_mix_of_timestamp_kinds(unit):
    rng = random.Random(56)
    unit_ns = 1000 if unit == "us" else 1
    cols = synthetic_ticks(4000, n_symbols=7, seed=11, bad_fraction=0.01)
    ticks = []
    for t in to_dicts(cols, as_strings=True):
        ns = t["timestamp"] * 1000 + rng.randrange(1000)
        # jumps back and forth (out of order) and far ahead (clock skew) now and then
        ns += rng.choice([0] * 20 + [-10 ** 9, 10 ** 17])
        ticks.append(dict(t, timestamp=_random_stamp(rng, ns)))
    # the per-value parse first: every value, kernel and oracle
    parsed = K.parse_dicts(ticks, 0.01, unit_ns)
    want = np.array([parse_tick(t, 0.01, unit_ns) for t in ticks]).T
    np.testing.assert_array_equal(parsed, want)
    assert (parsed[5] >= 0).mean() > 0.8 and (parsed[5] < 0).sum() > 100
    config = {"engine": {"timestamp_unit": unit}, "risk": {"max_clock_skew_s": 3600.0}}
    eng, ref = E.TickEngine(config), E.reference_engine(config)
    for a in range(0, len(ticks), 700):       # batches across the kernel's 512 chunks
        eng.process_market_data(ticks[a:a + 700])
        ref.process_market_data(ticks[a:a + 700])
    got = _state(eng.core)
    assert got == _ref_state(ref)
    names = dict(zip(TICK_REJECTS, got["tick_rejects"]))
    assert min(names["bad_timestamp"], names["out_of_order"], names["clock_skew"]) > 0
    assert got["orders"] > 0


def test_reject_names_agree_everywhere():
    assert K.TICK_REJECTS == TICK_REJECTS and TICK_REJECTS[-1] == "bad_timestamp"
    eng = E.TickEngine()
    assert tuple(eng.get_performance_stats()["tick_rejects"]) == TICK_REJECTS
    assert len(eng.core.tick_rejects) == len(E.reference_engine().tick_rejects) == 7


def test_a_deployments_bars_take_iso_and_datetime_stamps_as_the_engine_does():
    ds = ql.data.load("equities").isel(time=slice(0, 70), asset=slice(0, 2))
    cols = ql.testing.ticks_from_bars(ds.isel(time=slice(60, 70)))
    ticks = to_dicts(cols)
    runs = {}
    for name, stamps in [
            ("int", [t["timestamp"] for t in ticks]),
            ("iso", [_iso(t["timestamp"] * 1000, 6, PLUS1) for t in ticks]),
            ("datetime", [pd.Timestamp(t["timestamp"], unit="us").to_pydatetime()
                          for t in ticks])]:
        eng = E.TickEngine({"engine": {"max_symbols": 8}})
        dep = eng.load_strategy_params({"window": 15}, strategy="volatility_regime",
                                       bar="1D", history=ds.isel(time=slice(0, 60)))
        eng.process_market_data([dict(t, timestamp=s) for t, s in zip(ticks, stamps)])
        eng.flush_bars()
        runs[name] = (dep.equity.copy(), eng._bars.skipped)
    equity, skipped = runs["int"]
    assert len(equity) == 10 and skipped == 0
    for name in ("iso", "datetime"):
        np.testing.assert_array_equal(runs[name][0].values, equity.values, err_msg=name)
        np.testing.assert_array_equal(runs[name][0].time.values, equity.time.values)
        assert runs[name][1] == 0, name
