"""`quantlab deploy` and `engine-bench` edges (helper "nbcli", session 46): a resumed
run that differs from the saved one in any option of the deployment's identity is
refused naming it; SIGTERM stops a deployment as Ctrl-C does; options that do not apply,
or that the library refused only later or with a traceback, are refused up front in one
line (exit 2)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import quantlab as ql
from quantlab import cli
from quantlab.live import Deployment

ROOT = Path(__file__).resolve().parent.parent
FEED = ["--feed", "ws://127.0.0.1:1/x", "--symbols", "A,B"]   # nothing listens: exit 1


def _deploy(argv, capsys):
    code = cli.main(["deploy", "volatility_regime", *argv])
    return code, capsys.readouterr().err


@pytest.fixture
def feed_ck(tmp_path, capsys):
    """A checkpoint of a --feed deployment of A, B that a run with --bar 1min resumed."""
    ck = tmp_path / "ck"
    dep = ql.engine.TickEngine().load_strategy_params({}, strategy="volatility_regime",
                                                      symbols=["A", "B"], bar="1min")
    dep.checkpoint(ck)
    code, err = _deploy([*FEED, "--bar", "1min", "--checkpoint", str(ck)], capsys)
    assert code == 1 and "the feed failed" in err, err     # resumed; the feed is down
    return ck


def test_resume_of_a_feed_with_another_bar_size_is_refused_naming_it(feed_ck, capsys):
    """--bar 5min over a checkpoint of 1-minute bars went on, mixing bar sizes."""
    code, err = _deploy([*FEED, "--bar", "5min", "--checkpoint", str(feed_ck)], capsys)
    assert code == 2, err
    assert "cannot resume from --checkpoint" in err and "--bar '1min' (given '5min')" in err
    # the same size, however spelt, resumes (and then finds the feed down: exit 1)
    code, err = _deploy([*FEED, "--bar", "60s", "--checkpoint", str(feed_ck)], capsys)
    assert code == 1 and "cannot resume" not in err, err
    # left out: the default (1min) is the saved size
    code, err = _deploy([*FEED, "--checkpoint", str(feed_ck)], capsys)
    assert code == 1 and "cannot resume" not in err, err


def test_resume_of_a_feed_as_a_replay_is_refused_naming_both(feed_ck, capsys):
    code, err = _deploy(["--replay", "equities", "--checkpoint", str(feed_ck)], capsys)
    assert code == 2 and "--feed (given --replay)" in err, err


def test_resume_of_a_replay_with_another_start_is_refused(tmp_path, capsys):
    """--start decides the first traded bar of a run: a resume with another one is not
    the same run (it went on silently after the saved bars)."""
    ds = ql.data.load()
    start = str(ds.time.values[-4])[:10]
    ck = tmp_path / "ck"
    args = ["--replay", "equities", "--checkpoint", str(ck), "--every", "100"]
    code, err = _deploy([*args, "--start", start], capsys)
    assert code == 0, err
    saved = json.loads((ck / cli.CLI_STATE).read_text())
    assert saved == {"source": "--replay", "bar": None, "start": start}
    other = str(ds.time.values[-2])[:10]
    before = {p.name: p.stat().st_mtime_ns for p in ck.iterdir()}
    code, err = _deploy([*args, "--start", other], capsys)
    assert code == 2 and f"--start '{start}' (given '{other}')" in err, err
    assert {p.name: p.stat().st_mtime_ns for p in ck.iterdir()} == before
    for same in ([*args, "--start", start], args):   # the saved value, or none: resumes
        code, err = _deploy(same, capsys)
        assert code == 0, err
    assert len(Deployment.restore(ck).equity) == 4


@pytest.mark.parametrize("extra, message", [
    (["--replay", "equities", "--bar", "1D"], "--bar applies to --feed only, not to --replay"),
    (["--replay", "equities", "--symbols", "A"], "--symbols applies to --feed only"),
    ([*FEED, "--start", "2012-01-03"], "--start applies to --replay only, not to --feed"),
    ([*FEED, "--block", "5"], "--block applies to --replay only"),
    (["--feed", "http://example.com/x", "--symbols", "A"],
     "--feed 'http://example.com/x' is not a websocket address"),
    (["--replay", "equities", "--set", "nosuch", "1"],
     "--set nosuch: not a ql.backtest option; the options: size, "),
    (["--replay", "equities", "--params", "/no/such.json"],
     "--params /no/such.json: No such file or directory"),
    (["--replay", "nosuchset"], "--replay nosuchset: no such file or directory, nor a "
                                "bundled data set (equities, "),
])
def test_deploy_options_that_do_not_apply_or_are_unknown_exit_2_naming_them(
        tmp_path, capsys, extra, message):
    """Ignored before (--bar/--symbols of a replay, --start/--block of a feed), refused
    only after the deployment was built (an http:// feed: exit 1 and a repr), or worded
    by Python ("BacktestOptions.__init__() got an unexpected keyword argument",
    "[Errno 2] ...")."""
    code, err = _deploy([*extra, "--checkpoint", str(tmp_path / "ck")], capsys)
    assert code == 2, err
    assert err.startswith("quantlab deploy: error: ") and message in err, err
    assert err.count("\n") == 1, err
    assert not (tmp_path / "ck").exists()     # refused before anything was written


@pytest.mark.parametrize("ticks", ["0", "-5", str(cli.BENCH_TICKS_MAX + 1)])
def test_engine_bench_ticks_out_of_range_is_a_usage_error(capsys, ticks):
    """A traceback naming `n_columnar` and exit 1 before."""
    with pytest.raises(SystemExit) as e:
        cli.main(["engine-bench", "--ticks", ticks])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert f"--ticks must be an integer in [1, 100000000], got {ticks}" in err, err
    assert "Traceback" not in err


def test_engine_bench_bound_is_the_bench_s_own():
    from quantlab.engine import bench
    with pytest.raises(ValueError, match=r"n_columnar must be an integer in \[1, 100000000\]"):
        bench(n_columnar=cli.BENCH_TICKS_MAX + 1)


def test_sigterm_stops_a_deployment_as_ctrl_c_does_and_it_resumes(tmp_path):
    """SIGTERM (kill, systemd, docker stop) killed the process with no message and exit
    -15. Now: exit 143, "interrupted after N bars; run the same command to resume", and
    the checkpoint as of a whole bar: the resumed run ends as an uninterrupted one."""
    ds = ql.data.load()
    start = str(ds.time.values[-400])[:10]
    argv = [sys.executable, "-m", "quantlab", "deploy", "volatility_regime", "--replay",
            "equities", "--start", start, "--set", "fees", "0.001", "--every", "1",
            "--checkpoint", str(tmp_path / "ck")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(30):          # status lines: it is trading, bar by bar
            assert proc.stdout.readline(), proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "quantlab deploy: interrupted after " in err and "run the same command to resume" \
        in err and "Traceback" not in err, err
    n = int(err.split("interrupted after ")[1].split()[0])
    assert 30 <= n < 400
    assert len(Deployment.restore(tmp_path / "ck").equity) == n   # every bar it counted
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    back = Deployment.restore(tmp_path / "ck")
    whole = ql.deploy("volatility_regime", history=ds.sel(time=ds.time < np.datetime64(start)),
                      fees=0.001).replay(ds.sel(time=ds.time >= np.datetime64(start)))
    assert len(back.equity) == len(whole.equity) == 400
    np.testing.assert_allclose(back.equity.values, whole.equity.values, rtol=1e-12)
    assert len(back.orders) == len(whole.orders)


SERVER = """
import asyncio, json, sys, websockets
from quantlab.testing import synthetic_ticks, to_dicts
ticks = to_dicts(synthetic_ticks(100_000, n_symbols=2, seed=0))
async def send(ws):
    for t in ticks:
        await ws.send(json.dumps(t))
        await asyncio.sleep(0.001)
async def main():
    async with websockets.serve(send, "127.0.0.1", 0) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()
asyncio.run(main())
"""


def test_sigterm_stops_a_feed_deployment_in_one_line(tmp_path):
    """On a --feed run the signal arrived inside the websocket's callbacks: the connection
    broke ("protocol.data_received() call failed") and the process hung. Now the feed is
    cancelled between messages: exit 143 and the resume line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-c", SERVER], env=env, stdout=subprocess.PIPE,
                              text=True)
    try:
        port = int(server.stdout.readline())
        proc = subprocess.Popen([sys.executable, "-m", "quantlab", "deploy", "volatility_regime",
                                 "--feed", f"ws://127.0.0.1:{port}/", "--symbols", "A,B",
                                 "--checkpoint", str(tmp_path / "ck")],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            import time
            time.sleep(6)            # connected and receiving ticks
            assert proc.poll() is None, proc.communicate()
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    finally:
        server.kill()
        server.wait()
    assert proc.returncode == 143, err
    assert "quantlab deploy: interrupted after 0 bars; run the same command to resume" in err
    assert "Traceback" not in err and "Fatal error" not in err, err


@pytest.mark.parametrize("extra, message", [
    (["--scheduler", "banana"], "--scheduler 'banana': missing port number in address "
                                "'banana' (an address such as tcp://host:8786)"),
    (["--scheduler", "tcp://127.0.0.1:99999"], "--scheduler 'tcp://127.0.0.1:99999': the port "
                                               "must be an integer in [1, 65535], got 99999"),
    (["--params-file", "/no/such.yaml"], "--params-file /no/such.yaml: No such file or directory"),
])
def test_run_suite_bad_scheduler_or_params_file_is_one_line_exit_2(tmp_path, capsys, extra,
                                                                   message):
    """`--scheduler banana` was a traceback from inside dask's client (exit 1); a missing
    --params-file said only "[Errno 2] ...", not which option."""
    code = cli.main(["run-suite", str(ROOT / "notebooks" / "00_quickstart.ipynb"), "--out",
                     str(tmp_path / "out"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()
