"""Fault injection: what quantlab does when its inputs, feeds, files or workers fail.

Three sections, each self-contained (its own helpers and tables): tick engine feeds
(disconnects, malformed messages, stalls), batch runs (notebooks that hang, fail, lose
their kernel or dask worker), and sweep stores (damaged, copied, foreign or half-written
files, a real SIGKILL). Each section's comment says how to add a case.
"""
import asyncio
import contextlib
import json
import os
from pathlib import Path
import pickle
import signal
import subprocess
import sys
import time
import warnings

import nbformat
import numpy as np
import pytest
import xarray as xr

from quantlab import cli, suite
import quantlab as ql


# ======================================================================================
# Tick engine feeds
# ======================================================================================
# Fault injection for the tick engine's feeds: disconnects (a websocket closed with an
# error code, a TCP abort mid-frame, an iterator that raises), malformed messages, and
# stalls (corrupt timestamps in a paced replay, a silent feed).
#
# To add a case: a disconnect is a ``handler(ws)`` for ``_serve`` or
# an async generator for ``_raising_feed``; a malformed message is one more entry in
# ``MALFORMED``; a stall is a timestamp edit for ``test_replay_*``. Nothing here sleeps for
# real beyond a few milliseconds, and no assertion is on time: paced replays record the
# sleeps they ask for instead of sleeping.

E = ql.engine
T = ql.testing     # synthetic ticks

# a config that trades the synthetic walk quickly, so dropped ticks change the orders
CFG = {"signal": {"slow_span": 16, "fast_span": 4}}


def _ticks(n=300, seed=21):
    return T.to_dicts(T.synthetic_ticks(n, n_symbols=5, seed=seed))


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
    monkeypatch.setattr(E.feeds.time, "sleep", asked.append)
    return asked


def _clean_cols(n=2000):
    return T.synthetic_ticks(n, n_symbols=5, seed=22)


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
    assert eng.get_performance_stats()["tick_rejects"]["bad_timestamp"] == run_length
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
    assert got == want and want > 0                 # the jitter does reorder ticks
    assert (eng.core.tick_rejects[6], clean.core.tick_rejects[6]) == (1, 0)   # bad_timestamp
    assert (eng.core.orders, list(eng.core.pos)) == (clean.core.orders, list(clean.core.pos))


# ======================================================================================
# Batch runs (quantlab.suite)
# ======================================================================================
# Fault injection for batch runs (quantlab.suite): notebooks that hang, fail, lose their
# kernel or their dask worker, or cannot be read. Every case is a tiny notebook built here.
#
# To add a case: a row in CASES (cells of a notebook, the expected status, a piece of the
# expected error) runs in the shared in-process batch; a case that needs a dask cluster
# or --in-place gets its own test below.

HANG = 4  # s: the per-notebook limit of the hanging cases (kernel start included)


def _notebook(path, *cells, params="x = 1"):
    """A notebook with a `parameters` cell and the given code cells."""
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p] + [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return Path(path)


# name: (cells, or bytes for a file that is not a notebook; status; part of the error;
#        per-run timeout in the config or None for the config's default of 120 s)
CASES = {
    "sleeps_forever": (["import time\ntime.sleep(10**6)"], "failed", "timeout", HANG),
    "busy_loop_ignoring_sigint": (["import signal\nsignal.signal(signal.SIGINT, "
                                   "signal.SIG_IGN)\nwhile True:\n    pass"],
                                  "failed", "timeout", HANG),
    "raises": (["raise RuntimeError('boom on purpose')"], "failed", "boom on purpose", None),
    "kernel_dies": (["import os\nos._exit(3)"], "failed", "Dead", None),
    "not_json": (b"this is not a notebook", "failed", "", None),
    "not_utf8": (b"\xff\xfe\x00garbage", "failed", "cannot read", None),
    "runs_after_the_others": (["from quantlab.suite import record\nrecord(answer=42)"],
                              "ok", "", None),
}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """One CLI batch over every case, in order (the good notebook last)."""
    nbs = tmp_path_factory.mktemp("faults")
    runs = []
    for name, (cells, _, _, limit) in CASES.items():
        path = nbs / f"{name}.ipynb"
        if isinstance(cells, bytes):
            path.write_bytes(cells)
        else:
            _notebook(path, *cells)
        runs.append({"notebook": path.name, **({"timeout": limit} if limit else {})})
    cfg = nbs / "suite.yaml"
    cfg.write_text(json.dumps({"notebooks_dir": str(nbs), "timeout": 120, "runs": runs}))
    out = tmp_path_factory.mktemp("out")
    code = cli.main(["run-suite", "--config", str(cfg), "--out", str(out)])
    return code, out, {r["name"]: r for r in json.loads((out / "index.json").read_text())}


@pytest.mark.parametrize("case", list(CASES))
def test_fault_is_contained_to_its_notebook(batch, case):
    code, _, runs = batch
    _, status, error, _ = CASES[case]
    assert code == 1
    assert runs[case]["status"] == status, runs[case]["error"]
    assert error in runs[case]["error"]


def test_notebook_that_sleeps_forever_times_out_and_the_next_notebook_runs(batch):
    _, out, runs = batch
    assert list(runs) == list(CASES)  # every run finished and is in the index, in order
    for hung in ("sleeps_forever", "busy_loop_ignoring_sigint"):
        assert runs[hung]["error"].startswith(f"timeout: the notebook ran longer than its "
                                              f"limit of {HANG} s")
        assert runs[hung]["timeout"] == HANG
    last = runs["runs_after_the_others"]
    assert last["status"] == "ok" and last["records"] == {"answer": 42}
    assert last["timeout"] == 120  # the config's default
    assert "timeout: the notebook ran longer" in (out / "index.html").read_text()


def test_timeout_precedence_cli_over_run_over_config(tmp_path, monkeypatch):
    nb = _notebook(tmp_path / "a.ipynb", "pass")
    _notebook(tmp_path / "b.ipynb", "pass")
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"notebooks_dir: {tmp_path}\ntimeout: 30\nruns:\n  - notebook: a.ipynb\n"
                   "  - notebook: b.ipynb\n    timeout: 5\n")
    seen = []

    def fake_run_suite(runs, out, **kw):
        seen.append(([r.timeout for r in runs], kw["timeout"]))
        for r in runs:
            r.status = "ok"
        return runs

    monkeypatch.setattr(suite, "run_suite", fake_run_suite)
    out = str(tmp_path / "o")
    assert cli.main(["run-suite", "--config", str(cfg), "--out", out]) == 0
    assert cli.main(["run-suite", "--config", str(cfg), "--out", out, "--timeout", "7"]) == 0
    assert cli.main(["run-suite", str(nb), "--config", str(cfg), "--out", out]) == 0
    assert cli.main(["run-suite", str(nb), "--out", out, "--config", str(tmp_path / "s.yaml"),
                     "--timeout", "2.5"]) == 0
    assert seen == [([30.0, 5.0], suite.DEFAULT_TIMEOUT), ([None, None], 7.0),
                    ([None], 30.0), ([None], 2.5)]


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "inf", "1e9"])
def test_timeout_out_of_range_is_refused(tmp_path, bad, capsys):
    nb = _notebook(tmp_path / "a.ipynb", "pass")
    assert cli.main(["run-suite", str(nb), "--out", str(tmp_path / "o"),
                     "--timeout", bad]) == 2
    assert "--timeout must be" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"notebooks_dir: {tmp_path}\ntimeout: {bad}\nruns:\n  - notebook: a.ipynb\n")
    with pytest.raises((TypeError, ValueError), match="timeout must be"):
        suite.load_config(cfg)
    with pytest.raises(ValueError, match="timeout must be"):  # the API refuses it too
        suite.run_suite([suite.Run(str(nb))], tmp_path / "o", timeout=float(bad))


def test_dask_worker_death_does_not_rerun_finished_notebooks(tmp_path):
    """A finished notebook's side effect happens once, even when the worker that ran it
    dies afterwards; the notebook that killed its worker fails alone, the next runs."""
    import dask
    from dask.distributed import Client, LocalCluster

    out = tmp_path / "out"
    side = tmp_path / "side_effects.txt"
    first = _notebook(tmp_path / "first.ipynb", f"open({str(side)!r}, 'a').write('x\\n')")
    # waits until the client has collected `first` (its output is written after that),
    # then kills the dask worker it runs in (the kernel is the worker's child process)
    killer = _notebook(tmp_path / "killer.ipynb",
                       "import os, signal, time\n"
                       f"while not os.path.exists({str(out / 'first.ipynb')!r}):\n"
                       "    time.sleep(0.1)\n"
                       "time.sleep(1.0)\n"
                       "os.kill(os.getppid(), signal.SIGKILL)\ntime.sleep(60)")
    last = _notebook(tmp_path / "last.ipynb", "y = 2")
    runs = [suite.Run(str(first)), suite.Run(str(killer)), suite.Run(str(last))]
    # no retry of a task whose worker died (the killer would kill every new worker), and
    # `last` waits on the scheduler, not queued on the worker the killer takes down with it
    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "distributed.scheduler.worker-saturation": 1.0}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                         dashboard_address=None) as cluster, Client(cluster) as client:
        suite.run_suite(runs, out, client=client, timeout=120)
        client.wait_for_workers(1, timeout=60)
        # anything resubmitted would run now, ahead of this marker task
        client.submit(sum, [1], pure=False).result(timeout=60)
    assert side.read_text() == "x\n", "a finished notebook was run again"
    assert [r.status for r in runs] == ["ok", "failed", "ok"], [r.error for r in runs]
    assert runs[1].error.startswith("worker died: KilledWorker")


def test_failed_in_place_run_leaves_the_notebook_byte_identical(tmp_path):
    good = _notebook(tmp_path / "good.ipynb", "print('fresh output')")
    bad = _notebook(tmp_path / "bad.ipynb", "print('stored output')",
                    "raise RuntimeError('boom on purpose')")
    nb = nbformat.read(bad, as_version=4)  # outputs of an earlier clean run
    nb.cells[1].execution_count = 1
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="stored output\n")]
    nbformat.write(nb, bad)
    # a notebook edited while it runs (here by itself) is not overwritten either
    edited = _notebook(tmp_path / "edited.ipynb",
                       "open('edited.ipynb', 'a').write('\\n')  # the user saves meanwhile")
    os.chmod(good, 0o640)
    before = {p: p.read_bytes() for p in (bad, edited)}
    code = cli.main(["run-suite", "--in-place", str(good), str(bad), str(edited)])
    assert code == 1
    assert bad.read_bytes() == before[bad]
    assert b"papermill-error-cell" not in bad.read_bytes()
    assert edited.read_bytes() == before[edited] + b"\n"  # the edit survives
    nb = nbformat.read(good, as_version=4)
    assert nb.cells[1].outputs[0]["text"] == "fresh output\n"
    assert "papermill" not in nb.metadata  # stripped for committing
    assert (good.stat().st_mode & 0o777) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.ipynb", "edited.ipynb",
                                                          "good.ipynb"]  # no temp files


# ======================================================================================
# Sweep stores (ql.sweep(store=...))
# ======================================================================================
# Fault injection for the sweep store (ql.sweep(store=...)): damaged, copied, foreign or
# half-written files and a real SIGKILL. Each case damages a store made by ``_make`` and
# checks that the rerun is bit-identical to a clean sweep, recomputing only what it must
# and saying so. To add a fault: write a function ``damage(store)`` and add it to CHUNK_FAULTS
# (the chunk must be recomputed, with a warning) or QUIET_FAULTS (nothing recomputed).

STRAT = "volatility_regime"
GRID = {"window": [10, 21], "threshold": [0.6, 0.8, 0.95]}
KW = dict(chunks=2, progress=False, metrics=("sharpe_ratio", "total_return"), fees=0.001)


@pytest.fixture(scope="module")
def clean(equities):
    return ql.sweep(STRAT, equities, GRID, **KW)


def _make(equities, store):
    res = ql.sweep(STRAT, equities, GRID, store=store, **KW)
    return res, {p.name: p.stat().st_mtime_ns for p in store.glob("chunk_*.npz")}


def _rerun(equities, store):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = ql.sweep(STRAT, equities, GRID, store=store, **KW)
    return res, [str(w.message) for w in caught if "sweep store" in str(w.message)]


class _Evil:   # unpickling this would leave a trace: the store must never unpickle
    def __reduce__(self):
        return (Path.touch, (Path(os.environ["QL_TEST_EVIL"]),))


def _truncate(store):
    p = store / "chunk_1.npz"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _empty(store):
    (store / "chunk_1.npz").write_bytes(b"")


def _garbage(store):
    (store / "chunk_1.npz").write_bytes(os.urandom(600))


def _flip_a_byte(store):      # a bit flip inside the data: zip CRC and sha256 catch it
    p = store / "chunk_1.npz"
    b = bytearray(p.read_bytes())
    b[len(b) // 3] ^= 0xFF
    p.write_bytes(bytes(b))


def _pickled(store):
    with open(store / "chunk_1.npz", "wb") as f:
        np.savez(f, sharpe_ratio=np.array([_Evil()], dtype=object))


def _copied_over(store):      # a valid file of the same store, at the wrong place
    (store / "chunk_1.npz").write_bytes((store / "chunk_0.npz").read_bytes())


def _copied_over_no_manifest(store):   # ... and no checksum to catch it: identity does
    _copied_over(store)
    (store / "manifest.jsonl").unlink()


def _missing_metric(store):
    p = store / "chunk_1.npz"
    with np.load(p) as z:
        keep = {k: z[k] for k in z.files if k != "total_return"}
    np.savez(p, **keep)
    (store / "manifest.jsonl").unlink()


CHUNK_FAULTS = [_truncate, _empty, _garbage, _flip_a_byte, _pickled, _copied_over,
                _copied_over_no_manifest, _missing_metric]


@pytest.mark.parametrize("damage", CHUNK_FAULTS, ids=lambda f: f.__name__.strip("_"))
def test_sweep_store_corrupt_chunk_is_recomputed_with_a_warning_naming_it(
        damage, equities, clean, tmp_path, monkeypatch):
    monkeypatch.setenv("QL_TEST_EVIL", str(tmp_path / "evil_ran"))
    store = tmp_path / "s"
    first, stamps = _make(equities, store)
    xr.testing.assert_identical(first, clean)
    damage(store)
    again, said = _rerun(equities, store)
    xr.testing.assert_identical(again, clean)                 # bit-identical
    assert len(said) == 1 and str(store) in said[0] and "chunk 1 " in said[0]
    assert "chunk_1.npz" in said[0] and "recomputing" in said[0]
    assert not (tmp_path / "evil_ran").exists()               # never unpickled
    assert (store / "chunk_0.npz").stat().st_mtime_ns == stamps["chunk_0.npz"]
    third, said = _rerun(equities, store)                     # repaired: quiet now
    xr.testing.assert_identical(third, clean)
    assert said == []


def _foreign_chunk(store, equities, tmp_path):
    other = tmp_path / "other"
    ql.sweep(STRAT, equities, GRID, store=other, **{**KW, "fees": 0.002})
    (store / "chunk_1.npz").write_bytes((other / "chunk_1.npz").read_bytes())
    (store / "manifest.jsonl").write_bytes((other / "manifest.jsonl").read_bytes())


def test_sweep_store_chunk_and_manifest_from_another_sweep_are_detected(
        equities, clean, tmp_path):
    store = tmp_path / "s"
    _make(equities, store)
    _foreign_chunk(store, equities, tmp_path)
    again, said = _rerun(equities, store)
    xr.testing.assert_identical(again, clean)
    assert len(said) == 1 and "another sweep" in said[0] and "chunk 1 " in said[0]


def _tmp_left_by_a_kill_during_a_chunk_write(store):
    (store / "chunk_2.npz").unlink()
    (store / "chunk_2.npz.tmp").write_bytes((store / "chunk_0.npz").read_bytes()[:100])


def _kill_before_the_manifest_line(store):     # chunk in place, its line never written
    lines = (store / "manifest.jsonl").read_bytes().splitlines(keepends=True)
    (store / "manifest.jsonl").write_bytes(b"".join(lines[:-1]))


def _kill_during_the_manifest_append(store):
    p = store / "manifest.jsonl"
    p.write_bytes(p.read_bytes()[:-20])


def _manifest_garbage(store):
    (store / "manifest.jsonl").write_bytes(b"\x00\xff garbage\n{\"chunk\": 1}\n[]\n")


def _manifest_missing(store):
    (store / "manifest.jsonl").unlink()


def _sweep_json_lost_and_its_tmp_torn(store):   # chunks still identify themselves
    meta = store / "sweep.json"
    (store / "sweep.json.tmp").write_bytes(meta.read_bytes()[:50])
    meta.unlink()


QUIET_FAULTS = [_tmp_left_by_a_kill_during_a_chunk_write, _kill_before_the_manifest_line,
                _kill_during_the_manifest_append, _manifest_garbage, _manifest_missing,
                _sweep_json_lost_and_its_tmp_torn]


@pytest.mark.parametrize("damage", QUIET_FAULTS, ids=lambda f: f.__name__.strip("_"))
def test_sweep_store_kill_during_a_write_resumes_bit_identical(damage, equities, clean,
                                                                tmp_path):
    store = tmp_path / "s"
    _, stamps = _make(equities, store)
    damage(store)
    again, said = _rerun(equities, store)
    xr.testing.assert_identical(again, clean)
    assert said == []
    for name, ns in stamps.items():            # every intact chunk loaded, not recomputed
        if (store / name).exists() and name != "chunk_2.npz":
            assert (store / name).stat().st_mtime_ns == ns
    assert not list(store.glob("*.tmp"))
    # the manifest covers every chunk again: a later copy over a chunk is caught by sha
    shas = []
    for line in (store / "manifest.jsonl").read_bytes().splitlines():
        try:
            shas.append(json.loads(line))
        except ValueError:     # the torn line, left as it was
            pass
    assert {r["chunk"] for r in shas if isinstance(r, dict) and r.get("sha256")} == {0, 1, 2}


@pytest.mark.parametrize("text", [b"{not json", b"", b"\xff\xfe\x00", b"[]", b"{}",
                                  b'{"signature": 3}', b'{"chunks": 3}'])
def test_sweep_store_corrupt_sweep_json_names_the_file_and_what_to_do(text, equities,
                                                                      tmp_path):
    store = tmp_path / "s"
    _make(equities, store)
    (store / "sweep.json").write_bytes(text)
    with pytest.raises(ValueError) as e:
        ql.sweep(STRAT, equities, GRID, store=store, **KW)
    msg = str(e.value)
    assert str(store) in msg and "sweep.json" in msg
    assert "delete the store directory" in msg and "another store=" in msg


@pytest.mark.parametrize("change, named", [
    (dict(grid={"window": [10, 21], "threshold": [0.6, 0.8]}), "grid"),
    (dict(strategy="liquidity_timing"), "strategy"),
    (dict(fees=0.002), "backtest_kw"),
    (dict(metrics=("sharpe_ratio",)), "metrics"),
    (dict(chunks=3), "chunk_size"),
    (dict(data="one price changed"), "data"),
])
def test_sweep_store_of_another_sweep_is_refused_naming_what_differs(change, named,
                                                                     equities, tmp_path):
    store = tmp_path / "s"
    _make(equities, store)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in store.iterdir())
    change = dict(change)
    data = equities
    if change.pop("data", None):
        data = equities.copy(deep=True)
        v = float(data["open"][-5, 1])
        assert np.isfinite(v)
        data["open"][-5, 1] = np.nextafter(v, np.inf)   # one ulp, and not the close
    args = {**KW, **{k: v for k, v in change.items() if k not in ("grid", "strategy")}}
    with pytest.raises(ValueError, match="holds a different sweep") as e:
        ql.sweep(change.get("strategy", STRAT), data, change.get("grid", GRID), store=store,
                 **args)
    assert f"({named}: stored" in str(e.value) and "delete the store directory" in str(e.value)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in store.iterdir()) == before


def test_sweep_store_path_that_is_a_file_or_a_foreign_folder_is_refused(equities, tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        ql.sweep(STRAT, equities, GRID, store=f, **KW)
    with pytest.raises(ValueError, match="is not a sweep store"):
        ql.sweep(STRAT, equities, GRID, store=tmp_path, **KW)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    with pytest.raises(TypeError, match="store must be a directory path"):
        ql.sweep(STRAT, equities, GRID, store=3, **KW)


def test_sweep_store_write_error_names_the_store_and_chunk(equities, tmp_path, monkeypatch):
    import quantlab.sweeps as S

    write, full_from = S._write_atomic, ["chunk_"]

    def full(path, blob):
        if any(path.name.startswith(f) for f in full_from):
            raise OSError(28, "No space left on device")
        write(path, blob)

    monkeypatch.setattr(S, "_write_atomic", full)
    with pytest.raises(OSError, match=r"chunk 0 \(chunk_0.npz.*No space left") as e:
        ql.sweep(STRAT, equities, GRID, store=tmp_path / "s", **{**KW, "workers": 1})
    assert str(tmp_path / "s") in str(e.value)
    full_from.append("sweep.json")
    with pytest.raises(OSError, match=r"/t': cannot write sweep.json.*No space left"):
        ql.sweep(STRAT, equities, GRID, store=tmp_path / "t", **KW)


_CHILD = """
import sys, time, quantlab as ql, quantlab.sweeps as S
run = S._run_chunk
def slow(*a, **k):   # chunks slow enough that the kill lands mid-run, whatever the load
    out = run(*a, **k)
    time.sleep(0.3)
    return out
S._run_chunk = slow
ql.sweep({strat!r}, ql.data.load(), {grid!r}, store=sys.argv[1], workers=1,
         **{kw!r})
"""


def test_sweep_store_sigkill_mid_run_resumes_bit_identical(equities, tmp_path):
    grid = {"window": [10, 21, 42], "threshold": [0.6, 0.8, 0.95]}
    kw = {**KW, "chunks": 1}
    store = tmp_path / "s"
    env = {**os.environ, "PYTHONPATH": str(Path(ql.__file__).parents[1])}
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(strat=STRAT, grid=grid,
                                                                   kw=kw), str(store)],
                             env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if len(list(store.glob("chunk_*.npz"))) >= 3:     # renamed into place: complete
            break
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()[-2000:]
    n_stored = len(list(store.glob("chunk_*.npz")))
    assert 3 <= n_stored < 9
    with warnings.catch_warnings():
        warnings.simplefilter("error")                         # nothing to recompute
        resumed = ql.sweep(STRAT, equities, grid, store=store, **kw)
    xr.testing.assert_identical(resumed, ql.sweep(STRAT, equities, grid, **kw))


def test_sweep_store_never_unpickles_even_with_a_valid_identity(equities, clean, tmp_path,
                                                               monkeypatch):
    """A chunk with the right identity arrays but an object array: refused, not loaded."""
    monkeypatch.setenv("QL_TEST_EVIL", str(tmp_path / "evil_ran"))
    store = tmp_path / "s"
    _make(equities, store)
    p = store / "chunk_1.npz"
    with np.load(p) as z:
        parts = {k: z[k] for k in z.files}
    parts["sharpe_ratio"] = np.array([_Evil()] * 2, dtype=object)
    np.savez(p, **parts)
    (store / "manifest.jsonl").unlink()
    again, said = _rerun(equities, store)
    xr.testing.assert_identical(again, clean)
    assert len(said) == 1 and "pickle" in said[0].lower()
    assert not (tmp_path / "evil_ran").exists()
    assert pickle.dumps(_Evil())     # the trap is armed: it would have fired on unpickling
