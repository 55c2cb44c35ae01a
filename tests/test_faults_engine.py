"""Fault injection for the tick engine's feeds: disconnects (a websocket closed with an
error code, a TCP abort mid-frame, an iterator that raises), malformed messages, and
stalls (corrupt timestamps in a paced replay, a silent feed).

Self-contained (its own helpers, no conftest fixtures) so it can be merged into
tests/test_faults.py. To add a case: a disconnect is a ``handler(ws)`` for ``_serve`` or
an async generator for ``_raising_feed``; a malformed message is one more entry in
``MALFORMED``; a stall is a timestamp edit for ``test_replay_*``. Nothing here sleeps for
real beyond a few milliseconds, and no assertion is on time: paced replays record the
sleeps they ask for instead of sleeping.
"""
import asyncio
import contextlib
import json

import numpy as np
import pytest

import quantlab as ql

E = ql.engine

# a config that trades the synthetic walk quickly, so dropped ticks change the orders
CFG = {"signal": {"slow_span": 16, "fast_span": 4}}


def _ticks(n=300, seed=21):
    return E.to_dicts(E.synthetic_ticks(n, n_symbols=5, seed=seed))


def _state(core):
    return (core.ticks, core.orders, core.signals, list(core.tick_rejects),
            list(core.order_rejects), list(core.pos), core.cash, core.mtm2)


def _expected(ticks):
    """The engine state after processing ``ticks`` in one batch."""
    eng = E.TickEngine(CFG)
    eng.process_market_data(ticks)
    return _state(eng.core)


@contextlib.asynccontextmanager
async def _serve(handler):
    """A websocket server on 127.0.0.1 (a free port) running ``handler(ws)``; yields
    its URL."""
    import websockets

    async with websockets.serve(handler, "127.0.0.1", 0) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def _run_feed(engine, feed, **kw):
    kw.setdefault("timeout", 20)
    return asyncio.run(engine.run_feed(feed, **kw))


async def _raising_feed(messages, exc=None):
    """An async iterator yielding ``messages``, then raising ``exc`` (None: the end)."""
    for m in messages:
        await asyncio.sleep(0)
        yield m
    if exc is not None:
        raise exc


# ---- disconnects -------------------------------------------------------------------

def _close_1011_after(ticks):
    async def handler(ws):
        for t in ticks:
            await ws.send(json.dumps(t))
        await ws.close(code=1011, reason="internal error")
    return handler


def _abort_mid_frame_after(ticks):
    async def handler(ws):
        for t in ticks:
            await ws.send(json.dumps(t))
        # a text frame header announcing 4096 bytes, 3 of them sent, then a TCP abort
        ws.transport.write(b"\x81\x7e\x10\x00{\"s")
        ws.transport.abort()
    return handler


@pytest.mark.parametrize("make_handler", [_close_1011_after, _abort_mid_frame_after],
                         ids=["close_1011", "tcp_abort_mid_frame"])
def test_feed_disconnect_after_30_ticks_processes_them_then_raises(make_handler):
    ticks = _ticks(30)

    async def main():
        async with _serve(make_handler(ticks)) as url:
            eng = E.TickEngine(CFG)
            with pytest.raises(E.FeedError) as info:
                await eng.run_feed(E.websocket_feed(url), batch=1000, max_delay=None,
                                   timeout=20)
            return eng, info.value

    eng, err = asyncio.run(main())
    assert eng.ticks == 30 and err.ticks == 30 and err.result.ticks == 30
    assert "30 tick(s)" in str(err) and "ConnectionClosed" in str(err)
    assert isinstance(err, ConnectionError)
    import websockets

    assert isinstance(err.__cause__, websockets.ConnectionClosedError)
    assert _state(eng.core) == _expected(ticks)


def test_iterator_that_raises_keeps_what_arrived():
    ticks = _ticks(200)
    msgs = [json.dumps(ticks[i:i + 50]) for i in range(0, 200, 50)]
    eng = E.TickEngine(CFG)
    with pytest.raises(E.FeedError, match=r"OSError.*200 tick\(s\)") as info:
        _run_feed(eng, _raising_feed(msgs, OSError("connection reset")), batch=10_000)
    assert _state(eng.core) == _expected(ticks)
    assert info.value.result.order_count == E.TickEngine(CFG).process_market_data(
        ticks).order_count


def test_reconnect_with_backoff_resumes_and_gives_up_past_the_limit():
    ticks = _ticks(90)
    parts = [ticks[0:30], ticks[30:60], ticks[60:90]]
    opened = []

    def factory():                          # each connection: 30 ticks, then a failure
        k = len(opened)
        opened.append(k)
        if k < len(parts):
            return _raising_feed([json.dumps(t) for t in parts[k]], OSError(f"drop {k}"))
        return _raising_feed([], ConnectionRefusedError("server gone"))

    eng = E.TickEngine(CFG)
    with pytest.raises(E.FeedError, match=r"2 reconnect attempt\(s\).*90 tick\(s\)"):
        _run_feed(eng, factory, reconnect=2, backoff=0.0)
    # 3 connections with ticks (each failure after a message resets the count), then 2
    # failed reconnects in a row, then the error
    assert opened == [0, 1, 2, 3, 4]
    assert _state(eng.core) == _expected(ticks)


def test_reconnect_factory_that_raises_counts_as_a_failed_attempt():
    ticks = _ticks(40)
    calls = []

    def factory():
        calls.append(1)
        if len(calls) == 1:
            return _raising_feed([json.dumps(t) for t in ticks], OSError("reset"))
        raise ConnectionRefusedError("nothing listens")

    eng = E.TickEngine(CFG)
    with pytest.raises(E.FeedError, match=r"ConnectionRefusedError.*40 tick\(s\)") as info:
        _run_feed(eng, factory, reconnect=3, backoff=0.0)
    assert len(calls) == 4 and info.value.ticks == 40
    assert _state(eng.core) == _expected(ticks)


def test_reconnect_to_a_websocket_that_closes_1011_every_30_ticks():
    ticks = _ticks(90)
    served = []

    async def handler(ws):
        k = len(served)
        served.append(k)
        part = ticks[30 * k:30 * (k + 1)]
        for t in part:
            await ws.send(json.dumps(t))
        await ws.close(code=1011 if k < 2 else 1000)   # the third closes normally

    async def main():
        async with _serve(handler) as url:
            eng = E.TickEngine(CFG)
            res = await eng.run_feed(lambda: E.websocket_feed(url), reconnect=3,
                                     backoff=0.001, timeout=20)
            return eng, res

    eng, res = asyncio.run(main())
    assert served == [0, 1, 2] and res.ticks == 90
    assert _state(eng.core) == _expected(ticks)


def test_reconnect_needs_a_factory_and_arguments_are_validated():
    with pytest.raises(TypeError, match="callable that opens the feed"):
        _run_feed(E.TickEngine(), _raising_feed([], OSError()), reconnect=1)
    for kw, match in [({"batch": 0}, "batch must be an integer >= 1"),
                      ({"reconnect": -1}, "reconnect must be an integer >= 0"),
                      ({"backoff": float("nan")}, "backoff must be a finite number"),
                      ({"max_delay": -1}, "max_delay must be >= 0"),
                      ({"max_messages": 2.5}, "max_messages must be an integer"),
                      ({"timeout": 0}, "timeout must be > 0"),
                      ({"max_message_bytes": 0}, "max_message_bytes must be")]:
        with pytest.raises(ValueError, match=match):
            _run_feed(E.TickEngine(), _raising_feed([], OSError()), **kw)
    with pytest.raises(TypeError, match="async iterator"):
        _run_feed(E.TickEngine(), [json.dumps(_ticks(1)[0])])


# ---- malformed messages --------------------------------------------------------------

MALFORMED = {
    "[" * 100_000: "not_json",               # RecursionError inside json
    "{" * 100_000: "not_json",
    "not json": "not_json",
    '{"symbol_id": 1,': "not_json",
    "9" * 5000: "not_json",                  # beyond int's digit limit: ValueError
    b"\xff\xfe\x00garbage": "not_utf8",
    b'{"symbol_id": "\xe9"}': "not_utf8",    # Latin-1, not UTF-8
    "5": "wrong_type", '"a tick"': "wrong_type", "null": "wrong_type",
    "true": "wrong_type", "3.5": "wrong_type",
    " " * (2 ** 20 + 1): "oversized",        # over max_message_bytes (1 MiB)
    b"[" + b" " * 2 ** 20 + b"]": "oversized",
}


def test_malformed_messages_are_counted_and_skipped():
    ticks = _ticks(100)
    msgs = []
    for i, bad in enumerate(MALFORMED):       # interleaved with good ones
        msgs += [json.dumps(ticks[i]), bad]
    msgs += [json.dumps(ticks[len(MALFORMED):])]
    eng = E.TickEngine(CFG)
    res = _run_feed(eng, _raising_feed(msgs))
    assert res.ticks == 100 and _state(eng.core) == _expected(ticks)
    want = {k: list(MALFORMED.values()).count(k) for k in ("not_json", "not_utf8",
                                                           "oversized", "wrong_type")}
    assert eng.feed_rejects == want and eng.signal_errors == len(MALFORMED)
    assert eng.get_performance_stats()["feed_rejects"] == want


def test_ticks_inside_a_list_that_are_not_mappings_are_bad_ticks():
    good = _ticks(3)
    msg = json.dumps([good[0], 5, [good[1]], None, "x", good[2]])
    eng = E.TickEngine()
    res = _run_feed(eng, _raising_feed([msg, json.dumps(good[0])[:-1]],
                                       ))
    assert res.ticks == 6 and res.rejected_ticks == 4 and eng.feed_rejects["not_json"] == 1


def test_utf8_bytes_messages_are_ticks():
    ticks = _ticks(20)
    msgs = [json.dumps(t).encode() for t in ticks[:10]] + [bytearray(json.dumps(ticks[10:]),
                                                                     "utf-8")]
    eng = E.TickEngine(CFG)
    res = _run_feed(eng, _raising_feed(msgs))
    assert res.ticks == 20 and _state(eng.core) == _expected(ticks)


# ---- stalls ------------------------------------------------------------------------

@pytest.fixture
def sleeps(monkeypatch):
    """The sleeps a paced replay asks for, without sleeping: as the clock does not move,
    each is (about) its chunk's due time on the replay clock, the largest the last's."""
    asked = []
    monkeypatch.setattr(E.time, "sleep", asked.append)
    return asked


def _clean_cols(n=2000):
    return E.synthetic_ticks(n, n_symbols=5, seed=22)


@pytest.mark.parametrize("jump", [10 ** 12, -(10 ** 12), 10 ** 9])
@pytest.mark.parametrize("run_length", [1, 3])
def test_replay_corrupt_timestamp_jump_does_not_stall_and_is_rejected(sleeps, jump,
                                                                      run_length):
    cols = _clean_cols()
    bad = {k: v.copy() for k, v in cols.items()}
    bad["timestamp"][1000:1000 + run_length] += jump
    eng = E.TickEngine(CFG)
    res = eng.replay(bad, speed=1.0, chunk=100)
    # the corrupt ticks add nothing to the replay clock: the last chunk is due when the
    # clean stream's time says (~0.2 s), not in 11.6 days (nor 1 s, max_gap, later)
    span = (cols["timestamp"][-1] - cols["timestamp"][0]) / 1e6
    assert 0.5 * span < max(sleeps) <= span
    assert eng.get_performance_stats()["tick_rejects"]["out_of_order"] == run_length
    # exactly the corrupt ticks are rejected: the rest equals the clean stream without them
    keep = np.ones(len(cols["timestamp"]), bool)
    keep[1000:1000 + run_length] = False
    clean = E.TickEngine(CFG)
    clean.process_ticks({k: v[keep] for k, v in cols.items()})
    assert (eng.core.orders, list(eng.core.pos), eng.core.cash) == (
        clean.core.orders, list(clean.core.pos), clean.core.cash)


def test_replay_real_gaps_are_capped_not_rejected(sleeps):
    cols = _clean_cols(1000)
    cols["timestamp"][500:] += 16 * 3600 * 10 ** 6        # an overnight session break
    eng = E.TickEngine(CFG)
    res = eng.replay(cols, speed=1.0, chunk=250, max_gap=0.5)
    assert res.rejected_ticks == 0 and res.ticks == 1000
    ts = cols["timestamp"]
    span = (ts[-1] - ts[0] - (ts[500] - ts[499])) / 1e6      # the stream's time, no gap
    assert span + 0.4 < max(sleeps) <= span + 0.5           # the gap: max_gap, 0.5 s
    flat = E.TickEngine(CFG)
    flat.process_ticks(cols)
    assert _state(eng.core) == _state(flat.core)


def test_replay_of_columns_in_ticks_keeps_the_flag():
    cols = _clean_cols(500)
    ticks = dict(cols, bid_price=np.rint(cols["bid_price"] / 0.01).astype(np.int64),
                 ask_price=np.rint(cols["ask_price"] / 0.01).astype(np.int64),
                 prices_in_ticks=True)
    eng = E.TickEngine(CFG)
    assert eng.replay(ticks, chunk=70).ticks == 500
    flat = E.TickEngine(CFG)
    flat.process_ticks(cols)
    assert _state(eng.core) == _state(flat.core)


def test_replay_argument_validation():
    cols = _clean_cols(10)
    for kw, match in [({"chunk": -5}, "chunk must be an integer >= 1, got -5"),
                      ({"chunk": 0}, "chunk must be"), ({"chunk": 2.5}, "chunk must be"),
                      ({"speed": 0}, "speed must be > 0"), ({"speed": -1.0}, "speed"),
                      ({"speed": float("nan")}, "speed"),
                      ({"max_gap": 0}, "max_gap must be > 0")]:
        with pytest.raises(ValueError, match=match):
            E.TickEngine().replay(cols, **kw)
    with pytest.raises(TypeError, match="on_chunk must be a callable"):
        E.TickEngine().replay(cols, on_chunk="print")
    with pytest.raises(ValueError, match="missing column"):
        E.TickEngine().replay({"timestamp": [1, 2]})


def test_silent_feed_times_out_with_what_arrived():
    ticks = _ticks(10)

    async def silent_after_ten():
        for t in ticks:
            yield t
        await asyncio.sleep(3600)
        yield ticks[0]                                       # never reached

    eng = E.TickEngine(CFG)
    res = _run_feed(eng, silent_after_ten(), timeout=0.2)
    assert res.ticks == 10 and _state(eng.core) == _expected(ticks)


@pytest.mark.parametrize("spacing_us", [200, 5_000_000], ids=["liquid", "illiquid"])
def test_replay_flags_only_the_corrupt_tick_in_a_jittery_stream(spacing_us):
    # ticks ~spacing apart (5 s: every gap beyond max_gap) with jitter that reorders
    # some: only the corrupt stamp is rejected beyond what the clean stream rejects
    rng = np.random.default_rng(23)
    cols = _clean_cols(3000)
    ts = np.cumsum(rng.integers(1, spacing_us, 3000)) + rng.integers(0, spacing_us // 2, 3000)
    cols["timestamp"] = 1_700_000_000_000_000 + ts
    bad = {k: v.copy() for k, v in cols.items()}
    bad["timestamp"][1500] += 10 ** 12
    eng = E.TickEngine(CFG)
    eng.replay(bad)
    keep = np.arange(3000) != 1500
    clean = E.TickEngine(CFG)
    clean.process_ticks({k: v[keep] for k, v in cols.items()})
    got, want = eng.core.tick_rejects[4], clean.core.tick_rejects[4]
    assert got == want + 1 and want > 0             # the jitter does reorder ticks
    assert (eng.core.orders, list(eng.core.pos)) == (clean.core.orders, list(clean.core.pos))
