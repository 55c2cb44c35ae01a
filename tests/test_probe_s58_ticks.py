"""Session 58, helper `ticks`: one rule for a tick's timestamp, whether it arrives in a
column (process_ticks, replay of arrays, process_market_data of a DataFrame,
BarAggregator) or in a tick dict (process_market_data, run_feed).

Before, a text or object timestamp column was read whole by a replay file's rules while
the dicts read each value alone, and the same tick came out differently:
- "1700000000" was epoch seconds by its digit count in a column (1.7e15 µs), 1.7e9 µs in
  a dict;
- "2500-01-01T00:00:00Z" was a DataError for the whole column (beyond datetime64[ns]), a
  valid µs stamp in a dict (then one clock_skew rejection);
- naive and zoned stamps mixed were a DataError in a column, each taken in dicts (naive
  as UTC);
and a tick of unparsable text, text mixed with datetimes, bytes, plain numbers in an
object column or dates were errors for the whole column but one rejected tick (or a
number) in a dict. Now text, bytes and objects in a column go value by value through the
dict parser itself (``bars._timestamps``)."""
import datetime as dt

import numpy as np
import pandas as pd
import pytest

import quantlab.engine as E
from quantlab._kernels import ticks as _k
from quantlab.engine import BarAggregator
from quantlab.engine.bars import _timestamps

UNIT_NS = {"us": 1000, "ns": 1}
T0 = pd.Timestamp("2024-01-02T14:30:00Z")


def _cols(ts):
    n = len(ts)
    return {"symbol_id": np.zeros(n, np.int64), "bid_price": np.full(n, 10.0),
            "ask_price": np.full(n, 10.02), "bid_size": np.full(n, 5),
            "ask_size": np.full(n, 5), "timestamp": ts}


def _state(eng):
    c = eng.core
    return {"ticks": c.ticks, "last_ts": list(c.last_ts), "orders": c.orders,
            "rejects": eng.get_performance_stats()["tick_rejects"]}


def _engine(unit):
    return E.TickEngine({"engine": {"timestamp_unit": unit}})


def _runs(ts, unit="us", frame=True):
    """The engine's state after the stamps ``ts`` (one tick each) arrive as a column
    (process_ticks, process_market_data of a DataFrame, replay) and as tick dicts."""
    out = {}
    eng = _engine(unit)
    eng.process_ticks(_cols(ts))
    out["process_ticks"] = _state(eng)
    eng = _engine(unit)
    if frame:
        eng.process_market_data(pd.DataFrame(_cols(ts)))
    else:
        eng.process_ticks(_cols(ts))
    out["frame"] = _state(eng)
    eng = _engine(unit)
    eng.replay(_cols(ts), chunk=2, max_gap=float("inf"))
    out["replay"] = _state(eng)
    eng = _engine(unit)
    cols = _cols(list(ts))
    eng.process_market_data([{f: cols[f][i] for f in cols} for i in range(len(ts))])
    out["dicts"] = _state(eng)
    return out


def _same(ts, unit="us", frame=True):
    runs = _runs(ts, unit, frame)
    assert runs["process_ticks"] == runs["dicts"], runs
    assert runs["frame"] == runs["replay"] == runs["dicts"], runs
    return runs["dicts"]


def _obj(*values):
    return np.array(list(values) + [None], dtype=object)[:-1]   # never a 2-D array


# ---- the three cases of the brief ----------------------------------------------------------

@pytest.mark.parametrize("unit", ["us", "ns"])
def test_digit_text_is_a_count_of_the_engine_unit_as_in_a_dict(unit):
    # was epoch seconds / ms by the digit count in a column: 1700000000 -> 2023-11-14
    text = ["1700000000", "1700000000000", "12345", "+1700000000001"]
    for ts in (_obj(*text), np.array(text), pd.Series(text, dtype="string"),
               np.array([t.encode() for t in text])):
        got = _same(ts, unit)
        assert got["last_ts"][0] == 1700000000001
        assert got["rejects"]["out_of_order"] == 1    # 12345 after 1700000000000
        assert sum(got["rejects"].values()) == 1
    want = _engine(unit)
    want.process_ticks(_cols(np.array([int(t) for t in text])))
    assert _state(want) == got


@pytest.mark.parametrize("unit", ["us", "ns"])
def test_a_year_2500_stamp_is_one_tick_not_a_column_error(unit):
    # text: a DataError for the whole column (beyond datetime64[ns]); in a dict, a µs
    # stamp too far ahead (clock_skew), beyond 2^62 ns (bad_timestamp)
    base = [T0 + pd.Timedelta(seconds=s) for s in range(3)]
    far = pd.Timestamp("2500-01-01")
    for ts in (_obj(base[0].isoformat(), "2500-01-01T00:00:00Z", base[2].isoformat()),
               np.array([np.datetime64(base[0].value // 1000, "us"),
                         np.datetime64("2500-01-01", "us"),
                         np.datetime64(base[2].value // 1000, "us")]),
               _obj(base[0].to_pydatetime(), dt.datetime(2500, 1, 1), base[2].to_pydatetime()),
               _obj(base[0], far, base[2])):
        got = _same(ts, unit)
        reason = "clock_skew" if unit == "us" else "bad_timestamp"
        assert got["rejects"][reason] == 1 and sum(got["rejects"].values()) == 1, got
        assert got["last_ts"][0] == base[2].value // UNIT_NS[unit]


def test_naive_and_zoned_stamps_mixed_are_each_taken_naive_as_utc():
    # a DataError for the column; in dicts each was taken, naive as UTC
    t = [T0 + pd.Timedelta(seconds=s) for s in range(4)]
    want = _engine("us")
    want.process_ticks(_cols(np.array([x.value // 1000 for x in t])))
    for ts in (_obj(t[0].tz_localize(None).isoformat(), t[1].tz_convert("Asia/Tokyo").isoformat(),
                    t[2].isoformat().replace("+00:00", "Z"), t[3].tz_localize(None).isoformat()),
               _obj(t[0].tz_localize(None), t[1].tz_convert("Europe/Paris"),
                    t[2].to_pydatetime().replace(tzinfo=None),
                    t[3].tz_convert("America/New_York").to_pydatetime())):
        assert _same(ts) == _state(want)


SESSION_57 = {   # columns refused whole in session 57, each value now read as in a dict
    "not a date": ["2024-01-02 14:30:00", "2024-01-02 14:30:01", "garbage"],
    "naive and offset text": ["2024-01-02T14:30:00Z", "2024-01-02T14:30:01"],
    "a missing-value word": ["2024-01-02 14:30:00", "NA"],
    "text and datetimes": ["2024-01-02T14:30:00Z", pd.Timestamp("2024-01-02T14:30:01Z")],
    "naive and zoned objects": [None, pd.Timestamp("2024-01-02T14:30:00"),
                                dt.datetime(2024, 1, 2, 15, 30, tzinfo=dt.timezone.utc)],
    "dates": [dt.date(2024, 1, 2)] * 2,
    "bytes": np.array([b"2024-01-02T14:30:00Z", b"1704205800000000"]),
}


@pytest.mark.parametrize("case", list(SESSION_57))
def test_a_column_refused_whole_before_is_its_values_as_dict_stamps(case):
    ts = SESSION_57[case]
    got = _same(ts if isinstance(ts, np.ndarray) else _obj(*ts))
    bad = {"not a date": 1, "a missing-value word": 1, "naive and zoned objects": 1,
           "dates": 2}.get(case, 0)   # bytes: ASCII text since session 58 (ticks.pyx)
    assert got["rejects"]["bad_timestamp"] == bad and got["ticks"] == len(ts), got


# ---- the neighbours: each value as in a dict -----------------------------------------------

ONE = {   # a value in the middle of two valid stamps (T0 - 1 s, T0 + 1 s)
    "iso text": T0.isoformat(), "iso +05:30": T0.tz_convert("Asia/Kolkata").isoformat(),
    "iso, 2 fraction digits": "2024-01-02T14:30:00.12Z", "a date alone": "2024-01-02",
    "not a date": "garbage", "US order": "01/02/2024 14:30", "NA": "NA", "blank": "  ",
    "bytes digits": b"1704205800000000", "bytes iso": b"2024-01-02T14:30:00Z",
    "float epoch": 1704205800000000.0, "float with a fraction": 1704205800000000.5,
    "float text": "1.7042058e15", "int": 1704205800000000, "np.int64": np.int64(1704205800000000),
    "NaN": float("nan"), "None": None, "pd.NA": pd.NA, "pd.NaT": pd.NaT,
    "np NaT": np.datetime64("NaT", "ns"), "negative": -5, "negative text": "-5",
    "before 1970": "1969-12-31T23:59:59Z", "datetime64 before 1970": np.datetime64(-1, "ns"),
    "True": True, "np.True_": np.bool_(True), "a date object": dt.date(2024, 1, 2),
    "timedelta64": np.timedelta64(5, "s"), "complex": 1 + 2j,
    "Timestamp tz": T0.tz_convert("Asia/Tokyo"), "Timestamp naive": T0.tz_localize(None),
    "Timestamp ns": T0 + pd.Timedelta(nanoseconds=1999),
    "datetime tz": T0.tz_convert("Europe/Paris").to_pydatetime(),
    **{f"datetime64 {u}": np.datetime64(T0.tz_localize(None), u)
       for u in ("Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns")},
    "datetime64 ps (1970)": np.datetime64(1234567890123456, "ps"),
    "datetime64 10ms": np.datetime64(T0.value // 10 ** 7, "10ms"),
}


@pytest.mark.parametrize("unit", ["us", "ns"])
@pytest.mark.parametrize("name", list(ONE))
def test_every_kind_of_stamp_gives_the_same_tick_in_a_column_and_a_dict(name, unit):
    v = ONE[name]
    per = UNIT_NS[unit]
    lo = (pd.Timestamp("2000-01-01").value if name.startswith("datetime64") else
          T0.value - 10 ** 9) // per
    hi = (T0.value + 10 ** 9) // per
    # pandas makes a timedelta64 column of these (refused: TypeError naming it), and
    # cannot make a frame of a 10ms datetime64
    frame = name not in ("timedelta64", "datetime64 10ms")
    _same(_obj(lo, v, hi), unit, frame)
    _same(_obj(v), unit, frame)          # the value alone, in a one-tick column


@pytest.mark.parametrize("src", ["Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns",
                                 "ps", "fs", "as"])
def test_a_datetime64_column_of_every_unit_is_its_values_as_dict_stamps(src):
    # the column converted whole (fast), the dict's scalars one by one: the same ticks
    if src in ("ps", "fs", "as"):      # NumPy's range: ±106 days, ±2.6 h, ±9.2 s
        ts = np.array([1, 5 * 10 ** 6, -3, 10 ** 9], dtype=f"datetime64[{src}]")
    elif src in ("Y", "M"):
        ts = np.array(["2023", "2024-02", "1969-06", "2608-08", "NaT", "2025"],
                      dtype=f"datetime64[{src}]")
    else:   # 2608 is beyond int64 ns (wrapped before session 57), a µs stamp
        ts = np.array(["2023-12-31", "2024-01-02T14:30:00.123456789", "1969-06-01",
                       "2608-08-01", "NaT", "2024-03-01"], dtype="datetime64[us]"
                      if src != "ns" else "datetime64[ns]").astype(f"datetime64[{src}]")
    for unit in ("us", "ns"):
        _same(ts, unit)
        _same(_obj(*ts), unit)          # np.datetime64 objects


def test_datetime_objects_read_fast_by_pandas_give_the_dict_parsers_values():
    # a column of datetime objects alone goes through pd.to_datetime (20x faster than one
    # by one); it must give exactly the dict parser's values, naive or zoned, ns included
    rng = np.random.default_rng(58)
    ns = T0.value + rng.integers(-10 ** 17, 10 ** 17, 400)
    zones = ["UTC", "Asia/Kolkata", "America/St_Johns", "Pacific/Chatham", None]
    vals = [pd.Timestamp(int(x)).tz_localize("UTC") for x in ns]
    vals = [v.tz_convert(zones[i % 5]) if zones[i % 5] else v.tz_localize(None)
            for i, v in enumerate(vals)]
    vals[7::9] = [v.to_pydatetime(warn=False) for v in vals[7::9]]
    vals[3] = None
    vals[11] = pd.NaT
    vals[13] = pd.Timestamp("1960-01-01")
    far = vals + [dt.datetime(2500, 1, 1, tzinfo=dt.timezone.utc)]    # beyond int64 ns
    for unit in ("us", "ns"):
        for v in (vals, far):
            want = _k.parse_dicts([{"timestamp": x} for x in v], 1.0, UNIT_NS[unit])[5]
            got = _timestamps(_obj(*v), unit, "t")
            assert (want >= 0).sum() == len(v) - 3 - (unit == "ns" and v is far)
            np.testing.assert_array_equal(np.maximum(got, -1), want)   # < 0: rejected


def test_zoned_series_and_arrow_stamps_as_the_same_values_in_dicts():
    t = pd.Series(pd.date_range(T0, periods=5, freq="1500ms"))
    for ts in (t.dt.tz_convert("Asia/Tokyo"), t.dt.tz_localize(None),
               t.astype("string"), t.astype(str).str.replace("+00:00", "Z")):
        _same(ts.reset_index(drop=True))
    pa = pytest.importorskip("pyarrow")
    _same(t.astype(pd.ArrowDtype(pa.timestamp("ns", tz="Europe/Paris"))))
    _same(t.astype(str).astype(pd.ArrowDtype(pa.string())))


def test_a_two_dimensional_text_column_is_refused_not_read_by_rows():
    for run in ("process_ticks", "replay"):
        with pytest.raises(ValueError, match=fr"^{run}: column 'timestamp' must be one-dim"):
            getattr(E.TickEngine(), run)(_cols(np.array([["2024-01-02"] * 2] * 5)))
    with pytest.raises(ValueError, match="BarAggregator.add: column 'timestamp' must be one"):
        BarAggregator("1s", ["A"]).add(_cols(np.array([["1"]] * 5)))


def test_a_bar_aggregator_reads_text_and_zoned_stamps_as_the_engine_does():
    # ISO text was "could not convert string to float", a zoned Series a TypeError
    t = pd.date_range(T0, periods=6, freq="20s")
    us = np.asarray(t.tz_localize(None).astype("datetime64[us]").astype(np.int64))
    want = BarAggregator("1min", ["A"], unit="us")
    want_bars = want.add(_cols(us)) + want.flush()
    for ts in (_obj(*t.tz_convert("Asia/Tokyo").map(pd.Timestamp.isoformat)),
               pd.Series(t.tz_convert("America/New_York")), _obj(*us.astype(str)),
               _obj(*t.tz_localize(None).map(pd.Timestamp.isoformat)[:3],
                    *t[3:].tz_convert("Europe/Paris"))):
        agg = BarAggregator("1min", ["A"], unit="us")
        bars = agg.add(_cols(ts)) + agg.flush()
        assert len(bars) == len(want_bars) == 2
        assert all(a.identical(b) for a, b in zip(bars, want_bars))


def test_a_replay_file_keeps_its_own_rules(tmp_path):
    # a file is read by load_csv's rules: naive and offset text mixed is refused there,
    # naming the file (its dates have one format per column)
    import quantlab as ql

    cols = _cols(_obj("2024-01-02T14:30:00", "2024-01-02T14:30:01Z"))
    pd.DataFrame(cols).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ql.DataError, match=r"t\.csv: data row 2: timestamp .* has"):
        E.TickEngine().replay(tmp_path / "t.csv")
    assert _same(cols["timestamp"])["rejects"]["bad_timestamp"] == 0


@pytest.mark.parametrize("stamp", [b"2024-01-02T14:30:00Z", bytearray(b"2024-01-02T14:30:00Z")])
def test_ascii_bytes_are_their_text_in_a_dict(stamp):
    # before: the kernel read bytes by float() only, so b"2024-01-02T14:30:00Z" was a
    # bad_timestamp where the same str was a tick
    def tick(ts):
        return {"symbol_id": 0, "bid_price": 10, "ask_price": 10.02, "bid_size": 1,
                "ask_size": 1, "timestamp": ts}

    a, b = E.TickEngine(), E.TickEngine()
    a.process_market_data([tick(stamp)])
    b.process_market_data([tick("2024-01-02T14:30:00Z")])
    sa, sb = a.get_performance_stats(), b.get_performance_stats()
    assert sa["tick_rejects"]["bad_timestamp"] == 0
    assert sa["ticks_processed"] == sb["ticks_processed"] == 1
    c = E.TickEngine()
    c.process_market_data([tick(b"\xff2024-01-02")])     # not ASCII: one rejected tick
    assert c.get_performance_stats()["tick_rejects"]["bad_timestamp"] == 1
