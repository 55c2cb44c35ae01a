"""The Cython tick engine against its pure-Python oracle, bad ticks, risk limits as
properties, configuration, feeds (file replay, async iterator, a local websocket server),
monitoring and the dashboard."""
import asyncio
import logging

import numpy as np
import pandas as pd
import pytest

import quantlab as ql
from quantlab._kernels import ticks as K   # the Cython tick core

E = ql.engine
T = ql.testing     # synthetic ticks

TIGHT = {"risk": {"max_position": 200, "max_orders_per_second": 5, "max_positions": 3,
                  "max_concentration": 0.4, "concentration_base": 60_000.0,
                  "max_order_notional": 10_050.0, "max_drawdown": 400.0},
         "signal": {"slow_span": 16, "fast_span": 4, "min_confidence": 0.2,
                    "imbalance_threshold": 0.2, "max_signal_age_us": 50}}

CONCENTRATED = {"risk": {"max_concentration": 0.15, "concentration_base": 100_000.0,
                         "max_position": 2000}, "signal": {"slow_span": 16}}


def _ref_state(ref):
    return {"orders": ref.orders, "signals": ref.signals, "stale": ref.stale,
            "tick_rejects": list(ref.tick_rejects), "order_rejects": list(ref.order_rejects),
            "pos": list(ref.pos), "cash": ref.cash, "mtm2": ref.mtm2, "killed": ref.killed}


def _core_state(core):
    return {"orders": core.orders, "signals": core.signals, "stale": core.stale,
            "tick_rejects": list(core.tick_rejects), "order_rejects": list(core.order_rejects),
            "pos": list(core.pos), "cash": core.cash, "mtm2": core.mtm2, "killed": core.killed}


@pytest.mark.parametrize("config", [None, TIGHT, CONCENTRATED],
                         ids=["default", "tight", "concentration"])
@pytest.mark.parametrize("as_strings", [False, True])
def test_identical_to_the_pure_python_engine(config, as_strings):
    cols = T.synthetic_ticks(10_000, n_symbols=20, seed=3, bad_fraction=0.05)
    ticks = T.to_dicts(cols, as_strings=as_strings)
    ticks[5]["bid_price"] = "abc"           # non-numeric
    ticks[6]["ask_size"] = None
    del ticks[7]["timestamp"]
    eng, ref = E.TickEngine(config), E.reference_engine(config)
    res = eng.process_market_data(ticks)
    orders = ref.process_market_data(ticks)
    assert _core_state(eng.core) == _ref_state(ref)
    got = res.orders.assign(price=np.rint(res.orders.price / eng.tick_size).astype(np.int64))
    np.testing.assert_array_equal(got[["tick", "symbol_id", "qty", "price"]].to_numpy(),
                                  np.array(orders, dtype=np.int64).reshape(-1, 4))
    assert res.order_count == len(orders) > 0 and res.signal_count == ref.signals
    if config is CONCENTRATED:
        assert eng.get_performance_stats()["order_rejects"]["concentration"] > 0
    # the columnar path gives the same as the dict path
    col = E.TickEngine(config)
    cols2 = {k: v[8:] for k, v in cols.items()}
    ref2 = E.reference_engine(config)
    col.process_ticks(cols2)
    ref2.process_market_data(T.to_dicts(cols2))
    assert _core_state(col.core) == _ref_state(ref2)


def test_bad_ticks_are_rejected_and_counted_never_raised():
    good = {"symbol_id": 1, "bid_price": "100.00", "ask_price": "100.02", "bid_size": 10,
            "ask_size": 10, "timestamp": 1000}
    bad = [dict(good, bid_price="100.05"),                  # crossed
           dict(good, ask_price="100.00"),                  # locked
           dict(good, bid_price="-1"), dict(good, ask_price="n/a"),
           dict(good, bid_size=-3), dict(good, bid_size=0, ask_size=0),
           dict(good, symbol_id=10**9), dict(good, symbol_id="x"),
           dict(good, timestamp=999),                       # before the symbol's last
           None, "not a tick"]                              # not mappings: all missing
    eng = E.TickEngine()
    eng.process_market_data([good])
    res = eng.process_market_data(bad + [dict(good, timestamp=1001)])
    assert res.rejected_ticks == len(bad) and res.ticks == len(bad) + 1
    r = eng.get_performance_stats()["tick_rejects"]
    assert r == {"bad_price": 2, "bad_size": 2, "crossed": 2, "bad_symbol": 4,
                 "out_of_order": 1, "clock_skew": 0, "bad_timestamp": 0}
    ref = E.reference_engine()
    ref.process_market_data([good] + bad)
    assert ref.tick_rejects == list(r.values())


def test_batches_of_any_size_and_columns_of_different_lengths():
    # the dict path parses in chunks of ticks.CHUNK: every split of a stream gives the
    # one-batch result; an empty batch is a no-op; unequal columns are an error, not a
    # read past the end of the shorter one
    ticks = T.to_dicts(T.synthetic_ticks(3 * K.CHUNK + 7, n_symbols=5, seed=8))
    one = E.TickEngine()
    whole = one.process_market_data(ticks)
    assert whole.order_count > 0
    for size in (1, K.CHUNK - 1, K.CHUNK, K.CHUNK + 1):
        eng = E.TickEngine()
        parts = [eng.process_market_data(ticks[a:a + size]) for a in range(0, len(ticks), size)]
        assert eng.process_market_data([]).ticks == 0
        assert _core_state(eng.core) == _core_state(one.core)
        assert sum(p.order_count for p in parts) == whole.order_count
    cols = T.synthetic_ticks(100, seed=9)
    cols["timestamp"] = cols["timestamp"][:-1]
    with pytest.raises(ValueError, match="different lengths"):
        E.TickEngine().process_ticks(cols)


@pytest.mark.parametrize("seed", range(5))
def test_risk_limits_are_never_breached(seed):
    eng = E.TickEngine(TIGHT)
    cols = T.synthetic_ticks(20_000, n_symbols=8, seed=seed)
    t0 = cols["timestamp"][0]
    cols["timestamp"] = t0 + (cols["timestamp"] - t0) * 100     # ~10 ms apart: 200 s
    res = eng.process_ticks(cols)
    o = res.orders.sort_values("tick")
    fired = eng.get_performance_stats()["order_rejects"]
    assert len(o) > 20 and sum(v > 0 for v in fired.values()) >= 4   # the checks bite
    pos = o.groupby("symbol_id")["qty"].cumsum()
    assert pos.abs().max() <= TIGHT["risk"]["max_position"]
    assert (o["qty"].abs() * o["price"]).max() <= TIGHT["risk"]["max_order_notional"]
    t = cols["timestamp"][o["tick"].to_numpy()]
    per_window = np.searchsorted(t, t, side="right") - np.searchsorted(t, t - 1_000_000 + 1)
    assert per_window.max() <= TIGHT["risk"]["max_orders_per_second"]
    held = (o.assign(pos=pos).pivot_table(index="tick", columns="symbol_id", values="pos")
            .ffill().fillna(0) != 0).sum(axis=1)
    assert held.max() <= TIGHT["risk"]["max_positions"]
    if eng.core.killed:               # after the kill switch no order got through
        assert eng.get_performance_stats()["order_rejects"]["kill_switch"] > 0


def test_kill_switch_makes_health_critical():
    eng = E.TickEngine({"risk": {"max_drawdown": 1.0}})
    eng.process_ticks(T.synthetic_ticks(20_000, n_symbols=5, seed=1))
    assert eng.core.killed and eng.health_check()["status"] == "critical"
    assert eng.get_performance_stats()["order_rejects"]["kill_switch"] > 0


def test_default_config_trades_a_random_walk_but_not_the_seed_batch():
    eng = E.TickEngine()
    res = eng.process_ticks(T.synthetic_ticks(10_000, n_symbols=20, seed=0))
    assert res.signal_count > 100 and res.order_count > 50
    seed = E.TickEngine().process_market_data(T.seed_batch(n_symbols=100, n_ticks=50))
    assert seed.ticks == 5000 and seed.signal_count == 0 and seed.rejected_ticks == 0
    assert seed["order_count"] == 0 and seed.processing_time_us > 0   # dict-style access
    unchecked = E.TickEngine(TIGHT).process_ticks(T.synthetic_ticks(5000, 5, seed=2),
                                                  check_risk=False)
    assert unchecked.rejected_orders == 0


def test_config_file_dict_environment_and_errors(tmp_path, monkeypatch):
    path = tmp_path / "engine.yaml"
    path.write_text("risk:\n  max_position: 500\nsignal:\n  order_size: 10\n")
    monkeypatch.setenv("QUANTLAB_RISK_MAX_POSITION", "700")
    monkeypatch.setenv("QUANTLAB_SIGNAL_FAST_SPAN", "5")
    cfg = E.load_config(path)
    assert cfg["risk"]["max_position"] == 700 and cfg["signal"]["order_size"] == 10
    assert cfg["signal"]["fast_span"] == 5 and cfg["engine"]["tick_size"] == 0.01
    with pytest.raises(ValueError, match="unknown config key risk.max_leverage"):
        E.load_config({"risk": {"max_leverage": 2}})
    with pytest.raises(ValueError, match="unknown config section 'rsik'"):
        E.load_config({"rsik": {}})
    with pytest.raises(ValueError, match="risk.max_position must be int"):
        E.load_config({"risk": {"max_position": "lots"}})
    monkeypatch.setenv("QUANTLAB_RISK_MAX_LEVERAGE", "2")
    with pytest.raises(ValueError, match="QUANTLAB_RISK_MAX_LEVERAGE.*max_leverage"):
        E.load_config()
    monkeypatch.delenv("QUANTLAB_RISK_MAX_LEVERAGE")
    with pytest.raises(ValueError, match="timestamp_unit"):
        E.TickEngine({"engine": {"timestamp_unit": "ms"}})
    # values are converted, never truncated or guessed
    assert E.load_config({"risk": {"max_positions": 80.0}})["risk"]["max_positions"] == 80
    for bad, match in [({"risk": {"max_position": 1000.7}}, "max_position must be int"),
                       ({"risk": {"max_position": True}}, "max_position must be an integer, got True"),
                       ({"signal": {"min_confidence": 1.5}}, r"min_confidence must be in \[0, 1\]"),
                       ({"signal": {"slow_span": 4}}, "fast_span .5. must be below"),
                       ({"risk": {"max_drawdown": "1e400"}}, None)]:
        if match is None:   # a float overflowing to inf is allowed (no limit)
            assert E.load_config(bad)["risk"]["max_drawdown"] == float("inf")
            continue
        with pytest.raises(ValueError, match=match):
            E.load_config(bad)


def test_stats_health_and_alerts(caplog):
    eng = E.TickEngine()
    eng.process_ticks(T.synthetic_ticks(50_000, n_symbols=50, seed=4, bad_fraction=0.1))
    s = eng.get_performance_stats()
    for k in ("avg_signal_latency_us", "p50_latency_us", "p99_latency_us", "p999_latency_us",
              "signals_processed", "orders_submitted", "orders_rejected", "signal_errors",
              "rejected_ticks", "ticks_processed", "throughput_ticks_per_s"):
        assert k in s
    assert s["latency_samples"] == 50_000 // 64 + 1
    assert 0 < s["p50_latency_us"] <= s["p99_latency_us"] <= s["p999_latency_us"]
    assert eng.health_check()["status"] == "degraded"           # 10 % of ticks rejected
    seen = []
    mon = E.AlertMonitor(eng, {"error_rate": 0.05, "p99_latency_us": 1e6},
                         sinks=["log", seen.append])
    with caplog.at_level(logging.WARNING, logger="quantlab.engine"):
        alerts = mon.check()
    assert [a["rule"] for a in alerts] == ["error_rate"] and seen == alerts
    assert "error_rate" in caplog.text
    with pytest.raises(ValueError, match="unknown alert rule"):
        E.AlertMonitor(eng, {"latency": 1})
    with pytest.raises(ValueError, match="sinks are 'log' or callables.*email"):
        E.AlertMonitor(eng, {"drawdown": 1}, sinks=["log", "email"])
    # one sink alone: "log" was taken as the sinks 'l', 'o', 'g'; None a bare TypeError
    assert E.AlertMonitor(eng, {"drawdown": 1}, sinks="log").sinks == ["log"]
    assert E.AlertMonitor(eng, {"drawdown": 1}, sinks=seen.append).sinks == [seen.append]
    with pytest.raises(TypeError, match="alert sinks are a list of 'log' and callables"):
        E.AlertMonitor(eng, {"drawdown": 1}, sinks=None)
    with pytest.raises(ValueError, match="sinks are 'log' or callables"):
        E.AlertMonitor(eng, {"drawdown": 1}, sinks=[np.array(["log"])])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_replay_files_match_one_batch(tmp_path, suffix):
    cols = T.synthetic_ticks(12_000, n_symbols=10, seed=5)
    df = pd.DataFrame(cols)
    path = tmp_path / f"ticks{suffix}"
    df.to_csv(path, index=False) if suffix == ".csv" else df.to_parquet(path)
    eng = E.TickEngine()
    calls = []
    res = eng.replay(path, chunk=5000, on_chunk=lambda e, r: calls.append(r.ticks))
    one = E.TickEngine().process_ticks(cols)
    assert calls == [5000, 5000, 2000] and res.order_count == one.order_count
    pd.testing.assert_frame_equal(res.orders, one.orders)
    paced = E.TickEngine().replay({k: v[:2000] for k, v in cols.items()}, speed=1000.0,
                                  chunk=500)
    assert paced.ticks == 2000
    with pytest.raises(ValueError, match="missing column"):
        bad = tmp_path / "bad.csv"
        df.drop(columns="ask_size").to_csv(bad, index=False)
        eng.replay(bad)


def test_datetime_timestamps_in_the_configured_unit(tmp_path):
    # datetimes (NumPy, pandas, time zones, ISO text in a replay CSV) count in the
    # configured unit: their nanoseconds taken as µs made ages and rate windows 1000x off
    cols = T.synthetic_ticks(3000, n_symbols=5, seed=10)
    want = E.TickEngine(TIGHT)
    want.process_ticks(cols)
    assert want.core.order_rejects[1] > 0            # the rate limit is in play
    dt = pd.to_datetime(cols["timestamp"], unit="us")
    for ts in (dt.to_numpy(), pd.Series(dt), dt.tz_localize("UTC").tz_convert("Asia/Tokyo")):
        eng = E.TickEngine(TIGHT)
        eng.process_ticks(dict(cols, timestamp=ts))
        assert _core_state(eng.core) == _core_state(want.core)
    ns = E.TickEngine({**TIGHT, "engine": {"timestamp_unit": "ns"}})
    ns.process_ticks(dict(cols, timestamp=dt.to_numpy()))
    ns_ints = E.TickEngine({**TIGHT, "engine": {"timestamp_unit": "ns"}})
    ns_ints.process_ticks(dict(cols, timestamp=cols["timestamp"] * 1000))
    assert _core_state(ns.core) == _core_state(ns_ints.core)
    path = tmp_path / "iso.csv"
    pd.DataFrame(dict(cols, timestamp=dt.tz_localize("UTC"))).to_csv(path, index=False)
    eng = E.TickEngine(TIGHT)
    eng.replay(path, chunk=1000)
    assert _core_state(eng.core) == _core_state(want.core)


def test_run_feed_from_an_async_iterator_and_a_local_websocket():
    import json

    import websockets

    ticks = T.to_dicts(T.synthetic_ticks(3000, n_symbols=10, seed=6))

    async def agen():
        for i in range(0, len(ticks), 100):
            yield json.dumps(ticks[i:i + 100])
        yield "not json"

    eng = E.TickEngine()
    res = asyncio.run(eng.run_feed(agen(), batch=1000))
    one = E.TickEngine().process_market_data(ticks)
    assert res.ticks == 3000 and res.order_count == one.order_count
    assert eng.signal_errors == 1

    async def serve_and_consume():
        async def handler(ws):
            for t in ticks[:500]:
                await ws.send(json.dumps(t))
            await ws.close()

        async with websockets.serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            feed = E.websocket_feed(f"ws://127.0.0.1:{port}", max_messages=400)
            return await E.TickEngine().run_feed(feed, batch=64, timeout=20)

    live = asyncio.run(serve_and_consume())
    assert live.ticks == 400

    # a slow feed: each tick is processed while the feed is quiet, not when 1000 arrived
    slow_engine, seen = E.TickEngine(), []

    async def slow():
        for i, t in enumerate(ticks[:20]):
            if i:
                await asyncio.sleep(0.01)
                seen.append(slow_engine.core.ticks)
            yield t

    res = asyncio.run(slow_engine.run_feed(slow(), batch=1000, max_delay=0.001))
    assert seen == list(range(1, 20)) and res.ticks == 20
    capped = asyncio.run(E.TickEngine().run_feed(agen(), max_messages=5))
    assert capped.ticks == 500


def test_dashboard_updates_while_replaying():
    eng = E.TickEngine()
    dash = ql.plots.engine_dashboard(eng)
    eng.replay(T.synthetic_ticks(20_000, n_symbols=10, seed=7), chunk=5000, on_chunk=dash.update)
    src = dash.sources
    assert len(src["tp"].data["t"]) == 5 and len(src["lat"].data["count"]) == 40
    assert len(src["pos"].data["symbol"]) == len(eng.positions())


def test_engine_dashboard_refuses_what_is_not_an_engine():
    for bad in (E.reference_engine(), {"ticks": 1}, None):
        with pytest.raises(TypeError, match="engine_dashboard draws a ql.engine.TickEngine"):
            ql.plots.engine_dashboard(bad)


def test_engine_package_imports_no_bokeh():
    # drawing left the engine: importing and running it loads no bokeh
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, quantlab.engine as E, quantlab.testing as T\n"
            "e = E.TickEngine(); e.process_ticks(T.synthetic_ticks(100)); e.health_check()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'bokeh'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
    for f in Path(E.__file__).parent.glob("*.py"):
        assert "bokeh" not in f.read_text(), f


def test_engine_package_exports_its_public_names():
    from quantlab.engine import alerts, bench, config, core, feeds, reference, results

    assert set(E.__all__) >= {"TickEngine", "TickResult", "AlertMonitor", "FeedError",
                              "load_config", "reference_engine", "websocket_feed", "bench"}
    for name in E.__all__:
        assert getattr(E, name) is not None
    assert (E.TickEngine, E.TickResult, E.AlertMonitor, E.FeedError) == (
        core.TickEngine, results.TickResult, alerts.AlertMonitor, feeds.FeedError)
    assert E.load_config is config.load_config and E.reference_engine is reference.reference_engine
    assert callable(bench) and E.DEFAULT_CONFIG.name == "engine.yaml" and E.DEFAULT_CONFIG.exists()
    assert isinstance(E.reference_engine(), reference.PyTickEngine)
    for gone in ("synthetic_ticks", "to_dicts", "seed_batch", "dashboard"):
        assert not hasattr(E, gone)                 # quantlab.testing / quantlab.plots


def test_exact_decimal_prices():
    eng = E.TickEngine({"engine": {"tick_size": 0.0001}})
    t = {"symbol_id": 0, "bid_price": "1.0999", "ask_price": "1.1001", "bid_size": 1,
         "ask_size": 1, "timestamp": 1}
    eng.process_market_data([t])
    assert eng.core.mid2[0] == 10999 + 11001


def test_dict_parser_equals_the_reference_parser_on_odd_values():
    from decimal import Decimal

    from quantlab._kernels import ticks as core
    from quantlab.engine.reference import FIELDS, parse_tick

    odd = [" 100.5", "100.5 ", "1_00.5", "1e2", "+1.5", "-2", "inf", "nan", "0x10", "1e",
           "--1", "", "١٢٣", True, False, 1e30, 2 ** 70, -(2 ** 70), Decimal("101.255"),
           np.float64(99.995), np.int64(7), 100.005, "100.005", None, [1], "12345678901234567890"]
    ticks = [{f: v for f in FIELDS} for v in odd]
    got = core.parse_dicts(ticks, 0.01)
    want = np.array([parse_tick(t, 0.01) for t in ticks]).T
    np.testing.assert_array_equal(got, want)

    class Tick(dict):   # a dict subclass takes the mapping path
        pass

    np.testing.assert_array_equal(core.parse_dicts([Tick(ticks[0])], 0.01), want[:, :1])


def test_short_decimal_strings_parse_to_the_same_double_as_float():
    # the parser's fast path (at most 15 digits: m / 10^k) must give float()'s double
    # bit for bit; with tick_size 2**-60, a value in [2**-8, 4) becomes an exact int64
    from quantlab._kernels import ticks as core
    from quantlab.engine.reference import FIELDS, parse_tick

    rng = np.random.default_rng(11)
    strings = ["1.", ".5", "-.5", "+0.0", "-0", "0.0040", "3.999999999999999", "0003.5",
               "1.2345678901234567", "12345678901234567890e-19"]   # > 15 digits: strtod
    for _ in range(20000):
        nd = int(rng.integers(1, 17))
        digits = "".join(rng.choice(list("0123456789"), nd))
        k = int(rng.integers(0, nd + 1))
        text = (digits[:k] + "." + digits[k:]) if rng.random() < 0.8 else digits
        text = rng.choice(["", "+", "-"], p=[0.8, 0.1, 0.1]) + text
        try:
            ok = 2.0 ** -8 <= abs(float(text)) < 4.0
        except ValueError:
            ok = False
        if ok:
            strings.append(text)
    ticks = [{f: v for f in FIELDS} for v in strings]
    got = core.parse_dicts(ticks, 2.0 ** -60)
    want = np.array([parse_tick(t, 2.0 ** -60) for t in ticks]).T
    np.testing.assert_array_equal(got[1], want[1])
    assert len(strings) > 2000



def test_decimal_strings_to_ticks_equal_the_reference():
    # where the tick is 10^-d, short decimal strings become ticks by integer arithmetic;
    # every tick size, sign, digit count, trailing zero and the 2**50 bound must give the
    # oracle's round(float(s) / tick)
    import enum

    from quantlab._kernels import ticks as core
    from quantlab.engine.reference import FIELDS, parse_tick

    rng = np.random.default_rng(12)
    strings = ["100.10", "100.100", "100.105", "-0.00", "+7", "0.5", "1125899906842.6",
               "112589990684262", "11258999068426.23", "999999999999999", "0.000000000000001",
               "\ud800", "١٢٣", " 1", "1e3", "12345678901234567.5"]
    for _ in range(6000):
        nd = int(rng.integers(1, 16))
        digits = "".join(rng.choice(list("0123456789"), nd))
        k = int(rng.integers(0, nd + 1))
        text = digits[:k] + "." + digits[k:] + "0" * int(rng.integers(0, 3))
        strings.append(rng.choice(["", "+", "-"], p=[0.8, 0.1, 0.1]) + text)

    class Size(enum.IntEnum):
        BIG = 2 ** 60 + 1

    ticks = [{f: v for f in FIELDS} for v in strings]
    ticks += [{f: v for f in FIELDS} for v in (Size.BIG, True, 2 ** 63, -(2 ** 62) + 1)]
    for tick in (1.0, 0.1, 0.01, 0.0001, 1e-8, 1e-15, 0.05, 0.25):
        got = core.parse_dicts(ticks, tick)
        want = np.array([parse_tick(t, tick) for t in ticks]).T
        np.testing.assert_array_equal(got, want, err_msg=f"tick size {tick}")
    assert got[3, len(strings)] == 2 ** 60 + 1      # an int subclass, taken exactly


def test_columns_quantise_like_the_reference():
    # float columns go through one Cython pass; it must give to_ticks / to_int's integers,
    # -1 for NaN, inf and anything beyond 2**62 (NumPy's astype would wrap those)
    from quantlab._kernels import ticks as core
    from quantlab.engine.reference import to_int, to_ticks

    odd = np.array([100.005, 99.995, 0.015, -0.015, 2.5, 3.5, -2.5, 0.0, -0.0, 1e30, -1e30,
                    2.0 ** 62, 2.0 ** 62 - 1024, -(2.0 ** 62), np.nan, np.inf, -np.inf,
                    1e-300, 123456789.125, 1e308, -1e308])   # 1e308 / 0.01: the oracle raised
    rnd = np.random.default_rng(4).normal(100, 30, 2000).round(3)
    for x in (odd, rnd):
        for ts in (0.01, 0.0001, 0.5, 1.0):
            want = [to_ticks(v, ts) for v in x.tolist()]
            np.testing.assert_array_equal(core.quantise(x, ts), want)
        np.testing.assert_array_equal(core.quantise(x, 1.0), [to_int(v) for v in x.tolist()])


# ---- hardening: int64 overflow, integral ids, inputs and arguments ---------------------

# one symbol, a buy signal on the second tick (microprice up, bid-heavy book), no signal
# on balanced books; no risk limit in the way
EXTREME = {"signal": {"slow_span": 2, "fast_span": 1, "imbalance_threshold": 0.5,
                      "min_confidence": 0.5, "order_size": 1000},
           "risk": {"max_position": 2 ** 62, "max_order_notional": float("inf"),
                    "max_concentration": float("inf"), "max_drawdown": float("inf")}}
STATE_LIMIT = 2 ** 60


def _int_cols(rows):
    """(symbol, bid, ask, bid size, ask size, ts) rows -> int64 columns in ticks."""
    a = np.array(rows, dtype=np.int64).T
    return dict(zip(E.FIELDS, a), prices_in_ticks=True)


def _both(config, rows, check_risk=True):
    """The Cython engine on int64 columns and the oracle tick by tick on the same ints."""
    eng, ref = E.TickEngine(config), E.reference_engine(config)
    eng.process_ticks(_int_cols(rows), check_risk=check_risk)
    for i, r in enumerate(rows):
        ref.tick(i, *r, check_risk)
    return eng, ref


def test_overflowing_quote_against_1000_shares_is_rejected_not_wrapped():
    # the testers' case: 1,000 shares held, then a quote of 1.7e17 ticks; the wrapped
    # int64 gave equity 3.98e16 where the exact value is 1.70e18
    ticks = [{"symbol_id": 0, "bid_price": b, "ask_price": a, "bid_size": bs, "ask_size": as_,
              "timestamp": t} for b, a, bs, as_, t in
             [(100.00, 100.02, 900, 100, 1), (100.01, 100.03, 900, 100, 2),
              (1.7e15, 1.7e15 + 2, 500, 500, 3)]]
    eng, ref = E.TickEngine(EXTREME), E.reference_engine(EXTREME)
    eng.process_market_data(ticks)
    ref.process_market_data(ticks)
    assert _core_state(eng.core) == _ref_state(ref)
    assert eng.get_performance_stats()["tick_rejects"]["bad_price"] == 1
    # bought 1000 at 100.03, marked at 100.02: equity = -10.00, kill switch not fooled
    assert eng.pnl()["equity"] == pytest.approx(-10.0) and eng.core.pos[0] == 1000
    assert eng.core.mtm2 == 1000 * (10001 + 10003)


@pytest.mark.parametrize("over", [0, 1])
def test_mark_exactly_at_the_state_bound(over):
    # pos 1000 marked at 2x + 1 half ticks: accepted while 1000 (2x + 1) < 2^60
    x = (STATE_LIMIT // 1000 - 1) // 2 + over
    assert (1000 * (2 * x + 1) < STATE_LIMIT) == (not over)
    rows = [(0, 10_000, 10_002, 900, 100, 1), (0, 10_001, 10_003, 900, 100, 2),
            (0, x, x + 1, 500, 500, 3)]
    eng, ref = _both(EXTREME, rows)
    assert _core_state(eng.core) == _ref_state(ref)
    assert eng.core.tick_rejects[0] == over
    assert eng.core.mtm2 == (1000 * (10_001 + 10_003) if over else 1000 * (2 * x + 1))
    assert eng.pnl()["equity"] == pytest.approx(
        (2 * -1000 * 10_003 + eng.core.mtm2) * 0.5 * 0.01, rel=1e-15)


@pytest.mark.parametrize("check_risk", [True, False])
def test_fills_that_overflow_cash_or_position_are_refused_in_both_engines(check_risk):
    # a buy at ~2^61 ticks: 1000 x price overflows cash (max_order_notional), even with
    # check_risk=False
    p = 2 ** 61
    rows = [(0, p, p + 2, 900, 100, 1), (0, p + 4096, p + 4098, 900, 100, 2)]  # doubles see it
    eng, ref = _both(EXTREME, rows, check_risk)
    assert _core_state(eng.core) == _ref_state(ref)
    assert eng.core.orders == 0 and list(eng.core.order_rejects) == [0, 0, 0, 1, 0, 0]
    # the largest order size (2^60 - 1) at 2 ticks: any fill overflows Σ |pos|·mid2
    big = {**EXTREME, "signal": {**EXTREME["signal"], "order_size": 2 ** 60 - 1}}
    rows = [(0, 1, 3, 900, 100, 1), (0, 2, 4, 900, 100, 2)]
    eng, ref = _both(big, rows, check_risk)
    assert _core_state(eng.core) == _ref_state(ref)
    assert eng.core.pos[0] == 0 and eng.core.order_rejects[3] == 1
    # just inside: 2^60 // 6 - 1 shares at ask 4 (mid2 6)
    ok = {**EXTREME, "signal": {**EXTREME["signal"], "order_size": 2 ** 60 // 6 - 1}}
    eng, ref = _both(ok, rows, check_risk)
    assert _core_state(eng.core) == _ref_state(ref)
    assert eng.core.pos[0] == 2 ** 60 // 6 - 1 and eng.core.gross2 == 6 * (2 ** 60 // 6 - 1)


def test_extreme_values_near_the_bounds_match_the_oracle():
    # prices, sizes and timestamps up to and beyond 2^62 (raw int64 columns and dicts),
    # large orders: the engines agree on every count, and the state never passes 2^60
    rng = np.random.default_rng(30)
    n = 4000
    edges = np.array([1, 2, 2 ** 31, 2 ** 52, 2 ** 59, 2 ** 60, 2 ** 61, 2 ** 62 - 2,
                      2 ** 62 - 1, 2 ** 62, 2 ** 63 - 1], dtype=np.int64)
    mid = np.where(rng.random(n) < 0.2, rng.choice(edges, n),
                   (2.0 ** rng.uniform(0, 62, n)).astype(np.int64))
    mid = np.maximum(mid, 1)
    bid = mid - rng.integers(0, 2, n)
    ask = np.where(mid >= 2 ** 63 - 3, mid, mid + rng.integers(1, 3, n))
    bsz = np.where(rng.random(n) < 0.05, rng.choice(edges, n), rng.integers(0, 2000, n))
    asz = rng.integers(0, 2000, n)
    ts = np.arange(n, dtype=np.int64) * 10
    ts[rng.random(n) < 0.01] = 2 ** 62 + 5
    rows = list(zip(rng.integers(0, 4, n).tolist(), bid.tolist(), ask.tolist(),
                    bsz.tolist(), asz.tolist(), ts.tolist()))
    lo, hi = -(2 ** 63), 2 ** 63 - 1       # int64's ends, 0 and the 2^62 edges
    rows[100:100] = [(0, lo, hi, 1, 1, 5), (0, 0, 2, 1, 1, 5), (0, 1, hi, 1, 1, 5),
                     (0, 2 ** 62 - 2, 2 ** 62 - 1, 1, 1, 5), (0, 1, 2 ** 62, 1, 1, 5),
                     (0, 1, 2, lo, 1, 5), (0, 1, 2, hi, 1, 5), (0, 1, 2, 2 ** 62 - 1, 0, 5),
                     (0, 1, 2, 0, 0, 5), (0, 1, 2, 1, 1, lo), (0, 1, 2, 1, 1, hi),
                     (0, 1, 2, 1, 1, 2 ** 62 - 1), (lo, 1, 2, 1, 1, 5), (hi, 1, 2, 1, 1, 5)]
    for size in (1000, 2 ** 40):
        cfg = {**EXTREME, "signal": {**EXTREME["signal"], "order_size": size,
                                     "imbalance_threshold": 0.1, "min_confidence": 0.1}}
        for check in (True, False):
            eng, ref = _both(cfg, rows, check)
            assert _core_state(eng.core) == _ref_state(ref)
            assert eng.core.gross2 == ref.gross2 and eng.core.peak2 == ref.peak2
            assert max(abs(eng.core.cash), abs(eng.core.mtm2), eng.core.gross2,
                       *map(abs, eng.core.pos)) < STATE_LIMIT
            assert eng.core.tick_rejects[0] > 0 and eng.core.orders > 0
    # the dict path: the same values as ints in ticks (tick size 1)
    cfg1 = {**EXTREME, "engine": {"tick_size": 1.0}}
    dicts = [dict(zip(E.FIELDS, r)) for r in rows]
    eng, ref = E.TickEngine(cfg1), E.reference_engine(cfg1)
    eng.process_market_data(dicts)
    ref.process_market_data(dicts)
    assert _core_state(eng.core) == _ref_state(ref)


def test_fractional_symbol_ids_are_rejected_not_rounded():
    from decimal import Decimal

    good = {"symbol_id": 1, "bid_price": "100.00", "ask_price": "100.02", "bid_size": 10,
            "ask_size": 10, "timestamp": 1000}
    ids = [1.5, 1.7, "1.5", "2.50", np.float64(1.5), Decimal("1.5"), "1e-1", float("nan")]
    stamps = [1000.5, "1000.25", np.float64(1000.5)]
    bad = [dict(good, symbol_id=v) for v in ids] + [dict(good, timestamp=v) for v in stamps]
    fine = [dict(good, symbol_id=2.0, timestamp=1001), dict(good, symbol_id="3.00",
            timestamp="1002.0"), dict(good, symbol_id=4, bid_size=10.5, timestamp=1003)]
    eng, ref = E.TickEngine(), E.reference_engine()
    eng.process_market_data(bad + fine)
    ref.process_market_data(bad + fine)
    r = eng.get_performance_stats()["tick_rejects"]
    assert r["bad_symbol"] == len(ids) and r["bad_timestamp"] == len(stamps)
    assert list(eng.core.tick_rejects) == ref.tick_rejects
    assert np.flatnonzero(np.asarray(eng.core.n_ticks)).tolist() == [2, 3, 4]  # never 2 from 1.5
    # the columnar path: float columns with fractions are rejected the same way
    col = E.TickEngine()
    col.process_ticks({"symbol_id": np.array([1.5, 2.0, 3.7]), "bid_price": [100.0] * 3,
                       "ask_price": [100.02] * 3, "bid_size": [10] * 3, "ask_size": [10] * 3,
                       "timestamp": np.array([1.0, 2.0, 3.0])})
    assert list(col.core.tick_rejects) == [0, 0, 0, 2, 0, 0, 0] and col.core.n_ticks[2] == 1


def test_process_market_data_one_dict_is_one_tick():
    t = {"symbol_id": 1, "bid_price": "100.00", "ask_price": "100.02", "bid_size": 10,
         "ask_size": 10, "timestamp": 1000}
    eng = E.TickEngine()
    res = eng.process_market_data(t)
    assert res.ticks == 1 and res.rejected_ticks == 0 and eng.core.n_ticks[1] == 1
    df = pd.DataFrame(T.synthetic_ticks(500, n_symbols=5, seed=2))
    a, b = E.TickEngine(), E.TickEngine()
    assert a.process_market_data(df).ticks == 500        # a DataFrame: its rows
    b.process_market_data(T.to_dicts(T.synthetic_ticks(500, n_symbols=5, seed=2)))
    assert _core_state(a.core) == _core_state(b.core)
    for bad, match in [("ticks", "list of tick dicts"), (b"x", "list of tick dicts"),
                       (5, "list of tick dicts"), (None, "list of tick dicts"),
                       ({"symbol_id": [1, 2]}, "mapping of columns")]:
        with pytest.raises(TypeError, match=match):
            E.TickEngine().process_market_data(bad)
    with pytest.raises(TypeError, match="process_ticks takes a mapping"):
        E.TickEngine().process_ticks([t])
    with pytest.raises(ValueError, match="one-dimensional"):
        E.TickEngine().process_ticks({f: np.ones((2, 2)) for f in E.FIELDS})


def test_config_refuses_out_of_range_values_instead_of_clamping(tmp_path):
    for section, key, value, match in [
            ("engine", "max_latency_samples", 0,
             r"max_latency_samples must be an integer in \[1"),
            ("engine", "max_latency_samples", -5, "max_latency_samples"),
            ("engine", "max_latency_samples", 2 ** 40, "max_latency_samples"),
            ("engine", "latency_sample_every", -1,
             r"latency_sample_every must be an integer in \[0, "),
            ("engine", "max_symbols", 0, "max_symbols"),
            ("engine", "max_symbols", 10 ** 12, "max_symbols"),
            ("engine", "tick_size", 0.0, "tick_size must be > 0"),
            ("engine", "tick_size", float("inf"), "tick_size"),
            ("engine", "tick_size", float("nan"), "tick_size"),
            ("signal", "max_signal_age_us", -1, "max_signal_age_us"),
            ("signal", "order_size", 0, "order_size"),
            ("signal", "order_size", 2 ** 60, "order_size"),
            ("signal", "imbalance_threshold", float("nan"), "imbalance_threshold"),
            ("risk", "max_drawdown", float("nan"), "max_drawdown"),
            ("risk", "max_orders_per_second", 10 ** 12, "max_orders_per_second"),
            ("risk", "max_position", -1, "max_position"),
            ("log", "level", "LOUD", "log.level must be one of")]:
        with pytest.raises(ValueError, match=match):
            E.TickEngine({section: {key: value}})
    assert E.load_config({"log": {"level": "info"}})["log"]["level"] == "INFO"
    assert E.load_config({"engine": {"latency_sample_every": 0}})["engine"][
        "latency_sample_every"] == 0


@pytest.mark.parametrize("text,match", [("- a\n- b\n", "got a list at the top level"),
                                        ("42\n", "got a int"),
                                        ("risk: [1, 2]\n", "section 'risk' must be a mapping"),
                                        ("risk: {max_position: [\n", "not a valid YAML")])
def test_config_file_with_a_list_top_level_names_the_file(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        E.load_config(path)
    assert str(path) in str(info.value)
    empty = tmp_path / "empty.yaml"
    empty.write_text("risk:\n")          # an empty section is no change
    assert E.load_config(empty)["risk"]["max_position"] == 1000


def test_engine_helpers_refuse_bad_arguments():
    eng = E.TickEngine()
    for call, match in [(lambda: eng.health_check(p99_limit_us=float("nan")), "p99_limit_us"),
                        (lambda: eng.health_check(reject_limit=2),
                         r"reject_limit must be in \[0, 1\]"),
                        (lambda: E.AlertMonitor(eng, {"drawdown": float("nan")}),
                         "alert rule 'drawdown'"),
                        (lambda: E.AlertMonitor(eng, {"error_rate": -1}),
                         "alert rule 'error_rate'"),
                        (lambda: T.synthetic_ticks(-1), "n must be an integer"),
                        (lambda: T.synthetic_ticks(10 ** 12), "n must be an integer"),
                        (lambda: T.synthetic_ticks(10, n_symbols=0), "n_symbols"),
                        (lambda: T.synthetic_ticks(10, bad_fraction=1.5), "bad_fraction"),
                        (lambda: T.synthetic_ticks(10, tick_size=0), "tick_size"),
                        (lambda: T.seed_batch(n_ticks=-1), "n_ticks"),
                        (lambda: ql.plots.engine_dashboard(eng, history=0), "history"),
                        (lambda: E.bench(n_columnar=0), "n_columnar")]:
        with pytest.raises(ValueError, match=match):
            call()
    with pytest.raises(TypeError, match="watches a TickEngine"):
        E.AlertMonitor(object(), {"drawdown": 1})
    assert T.synthetic_ticks(0)["timestamp"].shape == (0,)


# ---- a far-future timestamp (not through replay) must not poison the engine
YEAR_US = 365 * 86_400 * 1_000_000


def _with_far_future(cols, at, years=10):
    """``cols`` with one extra tick inserted before ``at``: a copy of tick ``at`` (same
    symbol, a valid quote) stamped ``years`` ahead."""
    out = {}
    for k, v in cols.items():
        v = np.asarray(v)
        extra = v[at] + years * YEAR_US if k == "timestamp" else v[at]
        out[k] = np.concatenate([v[:at], [extra], v[at:]]).astype(v.dtype)
    return out


def _feed_run(eng, ticks):
    import json

    async def agen():
        for i in range(0, len(ticks), 250):
            yield json.dumps(ticks[i:i + 250])

    return asyncio.run(eng.run_feed(agen(), batch=500))


@pytest.mark.parametrize("path", ["columns", "dicts", "feed"])
def test_far_future_timestamp_does_not_poison_later_ticks(path):
    clean = T.synthetic_ticks(6000, n_symbols=8, seed=11)
    bad = _with_far_future(clean, 1500)
    runs = {"columns": lambda e, c: e.process_ticks(c),
            "dicts": lambda e, c: e.process_market_data(T.to_dicts(c)),
            "feed": lambda e, c: _feed_run(e, T.to_dicts(c))}[path]
    want_eng, got_eng = E.TickEngine(), E.TickEngine()
    want, got = runs(want_eng, clean), runs(got_eng, bad)
    stats = got_eng.get_performance_stats()["tick_rejects"]
    assert stats["clock_skew"] == 1 and stats["out_of_order"] == 0
    assert got.ticks == want.ticks + 1 and got.rejected_ticks == want.rejected_ticks + 1
    # everything else as if the tick had never come: the same signals, no extra stale
    # ones, the same orders (tick indexes shift by one after the inserted tick)
    assert want.order_count > 0 and got.order_count == want.order_count
    assert got_eng.core.stale == want_eng.core.stale
    assert _core_state(got_eng.core)["pos"] == _core_state(want_eng.core)["pos"]
    assert got_eng.core.cash == want_eng.core.cash
    shift = (want.orders["tick"] >= 1500).to_numpy().astype(int)
    np.testing.assert_array_equal(got.orders["tick"].to_numpy(),
                                  want.orders["tick"].to_numpy() + shift)
    # the oracle agrees, tick for tick
    ref = E.reference_engine()
    ref.process_market_data(T.to_dicts(bad))
    assert _core_state(got_eng.core) == _ref_state(ref)


def test_far_future_first_tick_of_a_symbol_and_the_skew_setting():
    good = {"symbol_id": 1, "bid_price": "100.00", "ask_price": "100.02", "bid_size": 10,
            "ask_size": 10, "timestamp": 10 * 86_400 * 10**6}
    later = [dict(good, symbol_id=2, timestamp=good["timestamp"] + 3600 * 10**6 + 1),
             dict(good, symbol_id=3, timestamp=good["timestamp"] + 3600 * 10**6)]
    for config, rejected in [({"risk": {"max_clock_skew_s": 3600.0}}, 1),
                             ({"risk": {"max_clock_skew_s": float("inf")}}, 0),
                             (None, 0)]:                          # default: 30 days
        eng, ref = E.TickEngine(config), E.reference_engine(config)
        eng.process_market_data([good] + later)
        ref.process_market_data([good] + later)
        assert eng.get_performance_stats()["tick_rejects"]["clock_skew"] == rejected
        assert list(eng.core.tick_rejects) == ref.tick_rejects
        # the clock is the newest accepted stamp: symbol 2's first tick counts too
        assert list(np.flatnonzero(np.asarray(eng.core.n_ticks))) == (
            [1, 3] if rejected else [1, 2, 3])
    ns = E.TickEngine({"engine": {"timestamp_unit": "ns"}, "risk": {"max_clock_skew_s": 1.0}})
    ns.process_market_data([dict(good, timestamp=10**12),
                            dict(good, timestamp=10**12 + 10**9),       # 1 s: accepted
                            dict(good, timestamp=10**12 + 2 * 10**9 + 1)])  # > 1 s: refused
    assert ns.get_performance_stats()["tick_rejects"]["clock_skew"] == 1
    for bad, exc in [(-1.0, "risk.max_clock_skew_s must be"), (float("nan"), "finite"),
                     ("soon", "must be float")]:
        with pytest.raises(ValueError, match=exc):
            E.TickEngine({"risk": {"max_clock_skew_s": bad}})
    env = E.load_config(environ={"QUANTLAB_RISK_MAX_CLOCK_SKEW_S": "inf"})
    assert env["risk"]["max_clock_skew_s"] == float("inf")


# ---- replay files: every reading failure is a DataError naming the file
def _small_frame(n=400, seed=5):
    return pd.DataFrame(T.synthetic_ticks(n, n_symbols=4, seed=seed))


@pytest.mark.parametrize("name", ["ticks.PARQUET", "ticks.Parquet", "ticks.pq", "ticks.bin"])
def test_replay_uppercase_parquet_suffix_is_read_as_parquet(tmp_path, name):
    df = _small_frame()
    path = tmp_path / name
    df.to_parquet(path)                      # .bin: recognised by its magic bytes
    res, one = E.TickEngine().replay(path), E.TickEngine().process_ticks(dict(df))
    assert res.ticks == 400 and res.order_count == one.order_count
    pd.testing.assert_frame_equal(res.orders, one.orders)


@pytest.mark.parametrize("name", ["ticks.csv.gz", "ticks.CSV.GZ", "ticks.CSV", "ticks.txt"])
def test_replay_csv_gz_and_uppercase_csv_are_read(tmp_path, name):
    df = _small_frame()
    path = tmp_path / name
    df.to_csv(path, index=False, compression="gzip" if name.lower().endswith(".gz") else None)
    res, one = E.TickEngine().replay(path), E.TickEngine().process_ticks(dict(df))
    assert res.ticks == 400
    pd.testing.assert_frame_equal(res.orders, one.orders)


@pytest.mark.parametrize("content, match", [
    (("symbol_id,bid_price,ask_price,bid_size,ask_size,timestamp\n1,1,2,1,1,1\n"
      "1,1,2,1,1,caf\xe9\n").encode("latin-1"), r"not UTF-8 text: byte 0xe9.*Latin-1"),
    (bytes(range(256)) * 4, "NUL byte.*binary file"),
    (b"PK\x03\x04" + b"\x00" * 40, "a zip archive"),
    (b"\x1f\x8b\x08\x00garbage", "corrupt gzip"),
    (b"", "not a readable CSV"),
])
def test_replay_latin1_or_binary_file_is_a_data_error_naming_it(tmp_path, content, match):
    path = tmp_path / "ticks.csv"
    path.write_bytes(content)
    with pytest.raises(ql.DataError, match=rf"{path}: .*({match})"):
        E.TickEngine().replay(path)


@pytest.mark.parametrize("content", [b"PAR1" + b"\x00" * 30 + b"PAR1", b"not parquet at all",
                                     "truncated"])
def test_replay_corrupt_parquet_is_a_data_error_naming_it(tmp_path, content):
    path = tmp_path / "ticks.parquet"
    if content == "truncated":
        _small_frame().to_parquet(path)
        path.write_bytes(path.read_bytes()[:-40])
    else:
        path.write_bytes(content)
    with pytest.raises(ql.DataError, match=rf"{path}: not a readable Parquet file"):
        E.TickEngine().replay(path)


def test_replay_missing_columns_lists_what_is_needed(tmp_path):
    path = tmp_path / "ticks.csv"
    _small_frame().drop(columns=["ask_size", "timestamp"]).to_csv(path, index=False)
    with pytest.raises(ql.DataError, match=rf"{path}: missing column\(s\) \['ask_size', "
                                           r"'timestamp'\]; a replay file needs the columns "
                                           r"symbol_id, bid_price, ask_price, bid_size, "
                                           r"ask_size, timestamp"):
        E.TickEngine().replay(path)
    with pytest.raises(ql.DataError, match="absent.csv: cannot read"):
        E.TickEngine().replay(tmp_path / "absent.csv")


def test_replay_mixed_naive_and_offset_timestamps_are_refused(tmp_path):
    df = _small_frame(6)
    base = pd.Timestamp("2024-01-02 10:00:00")
    df["timestamp"] = [(base + pd.Timedelta(seconds=i)).isoformat() + "+00:00" for i in range(6)]
    df.loc[3, "timestamp"] = (base + pd.Timedelta(seconds=3)).isoformat()     # no offset
    path = tmp_path / "mixed.csv"
    df.to_csv(path, index=False)
    with pytest.raises(ql.DataError, match=rf"{path}: data row 4: timestamp "
                                           r"'2024-01-02T10:00:03' has no UTC offset"):
        E.TickEngine().replay(path)
    # all with offsets (of different zones): converted to UTC exactly
    df.loc[3, "timestamp"] = "2024-01-02T05:00:03-05:00"
    df.to_csv(path, index=False)
    eng = E.TickEngine()
    eng.replay(path)
    want = E.TickEngine()
    want.process_ticks(dict(df, timestamp=(base.value // 1000 + np.arange(6) * 10**6)))
    assert _core_state(eng.core) == _core_state(want.core)
    assert np.asarray(eng.core.last_ts).max() == base.value // 1000 + 5 * 10**6
    # blank stamps stay rejected ticks (bad_timestamp), not a refused file
    df.loc[2, "timestamp"] = ""
    df.to_csv(path, index=False)
    eng = E.TickEngine()
    res = eng.replay(path)
    assert res.ticks == 6 and eng.get_performance_stats()["tick_rejects"]["bad_timestamp"] == 1


def test_replay_column_names_in_another_case_or_repeated(tmp_path):
    df = _small_frame()
    path = tmp_path / "ticks.csv"
    df.rename(columns={"symbol_id": "Symbol_ID", "bid_price": " BID_PRICE "}).to_csv(
        path, index=False)
    res, one = E.TickEngine().replay(path), E.TickEngine().process_ticks(dict(df))
    pd.testing.assert_frame_equal(res.orders, one.orders)
    df.assign(Timestamp=df["timestamp"]).to_csv(path, index=False)
    with pytest.raises(ql.DataError, match=r"column\(s\) \['timestamp'\] appear more than once"):
        E.TickEngine().replay(path)


# ---- outside tester: complex / text / datetime columns in process_ticks ---------------

def _five():
    return {"symbol_id": np.array([0, 1, 0, 1, 0]), "bid_price": np.full(5, 100.0),
            "ask_price": np.full(5, 100.1), "bid_size": np.full(5, 10),
            "ask_size": np.full(5, 12), "timestamp": np.arange(5) * 1000 + 1}


BAD_COLUMNS = {"complex": (lambda v: np.asarray(v) + 3j, "is complex"),
               "text": (lambda v: np.asarray(v).astype(str), "must be numeric .* pd.to_numeric"),
               "object": (lambda v: np.asarray(v).astype(object), "must be numeric .*dtype object"),
               "timedelta": (lambda v: np.asarray(v).astype("timedelta64[s]"), "holds timedelta64")}


@pytest.mark.parametrize("kind", list(BAD_COLUMNS))
@pytest.mark.parametrize("field", E.FIELDS)
def test_process_ticks_complex_or_text_column_is_refused_before_any_state_change(field, kind):
    make, match = BAD_COLUMNS[kind]
    eng = E.TickEngine()
    eng.process_ticks(_five())
    before = _core_state(eng.core), eng.ticks
    cols = dict(_five(), **{field: make(_five()[field])})
    if field == "timestamp" and kind in ("text", "object"):
        # read value by value as in tick dicts (session 58): '1001' is 1001 units
        eng.process_ticks(dict(cols, timestamp=make(_five()["timestamp"] + 10 ** 6)))
        want = E.TickEngine()
        want.process_ticks(_five())
        want.process_ticks(dict(_five(), timestamp=_five()["timestamp"] + 10 ** 6))
        assert _core_state(eng.core) == _core_state(want.core)
        return
    error = TypeError
    with pytest.raises(error, match=f"process_ticks: column '{field}' {match}"):
        eng.process_ticks(cols)
    with pytest.raises(error, match=f"replay: column '{field}' {match}"):
        eng.replay(cols)
    with pytest.raises(error, match=f"column '{field}'"):
        eng.process_market_data(pd.DataFrame(cols))
    assert (_core_state(eng.core), eng.ticks) == before
    # the tester's case: complex bid and ask were 5 accepted ticks
    if field == "bid_price" and kind == "complex":
        with pytest.raises(TypeError, match="'bid_price' is complex"):
            E.TickEngine().process_ticks(dict(_five(), bid_price=np.full(5, 100 + 7j),
                                              ask_price=np.full(5, 100.1 + 3j)))


def test_process_ticks_timedelta_timestamp_is_refused():
    with pytest.raises(TypeError, match="column 'timestamp' holds timedelta64"):
        E.TickEngine().process_ticks(dict(_five(), timestamp=np.arange(5).astype("m8[s]")))


def test_process_ticks_nullable_integer_columns_reject_only_the_na_ticks():
    cols = _five()
    df = pd.DataFrame(cols).astype({"bid_size": "Int64", "symbol_id": "Int64",
                                    "bid_price": "Float64"})
    df.loc[1, "bid_size"] = pd.NA
    df.loc[3, "bid_price"] = pd.NA
    eng = E.TickEngine()
    got = eng.process_ticks(df)
    want_eng = E.TickEngine()
    want = want_eng.process_ticks(dict(cols, bid_size=np.array([10, -1, 10, 10, 10]),
                                       bid_price=np.array([100.0, 100.0, 100.0, np.nan, 100.0])))
    assert (got.ticks, got.rejected_ticks) == (5, 2) == (want.ticks, want.rejected_ticks)
    assert _core_state(eng.core) == _core_state(want_eng.core)


def test_replay_csv_with_text_or_complex_cells_rejects_those_ticks(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("symbol_id,bid_price,ask_price,bid_size,ask_size,timestamp\n"
                    "0,100.0,100.1,10,12,1\n1,100+7j,100.1,10,12,1001\n0,100.0,100.1,abc,12,2001\n"
                    "1, 100.5 ,100.6,10,12,3001\n0,100.0,100.1,10,12,4001\n")
    eng = E.TickEngine()
    got = eng.replay(path)
    # the dict path (the oracle's per-element parse) on the same cells
    rows = [dict(symbol_id=0, bid_price="100.0", ask_price="100.1", bid_size="10", ask_size=12,
                 timestamp=1),
            dict(symbol_id=1, bid_price="100+7j", ask_price="100.1", bid_size="10", ask_size=12,
                 timestamp=1001),
            dict(symbol_id=0, bid_price="100.0", ask_price="100.1", bid_size="abc", ask_size=12,
                 timestamp=2001),
            dict(symbol_id=1, bid_price=" 100.5 ", ask_price="100.6", bid_size="10", ask_size=12,
                 timestamp=3001),
            dict(symbol_id=0, bid_price="100.0", ask_price="100.1", bid_size="10", ask_size=12,
                 timestamp=4001)]
    want_eng = E.TickEngine()
    want = want_eng.process_market_data(rows)
    assert (got.ticks, got.rejected_ticks) == (5, 2) == (want.ticks, want.rejected_ticks)
    assert _core_state(eng.core) == _core_state(want_eng.core)


def test_process_market_data_python_complex_value_is_a_rejected_tick():
    good = dict(symbol_id=1, bid_price=100.0, ask_price=100.1, bid_size=10, ask_size=12)
    ticks = [dict(good, timestamp=1), dict(good, bid_price=100 + 7j, timestamp=1001),
             dict(good, bid_size=10 + 0j, timestamp=2001), dict(good, symbol_id=1j, timestamp=3001),
             dict(good, bid_price="100.0", ask_price="100.1", timestamp=4001)]  # text: supported
    res = E.TickEngine().process_market_data(ticks)
    assert (res.ticks, res.rejected_ticks) == (5, 3)


def test_process_market_data_numpy_complex_scalar_is_a_rejected_tick():
    good = dict(symbol_id=1, bid_price=100.0, ask_price=100.1, bid_size=10, ask_size=12)
    ticks = [dict(good, timestamp=1), dict(good, bid_price=np.complex128(100 + 7j), timestamp=1001),
             dict(good, bid_size=np.complex64(10), timestamp=2001)]
    res = E.TickEngine().process_market_data(ticks)
    assert (res.ticks, res.rejected_ticks) == (3, 2)
