"""Session 46's trust leftovers (helper "odds", session 47): a bool taken as a number,
checkpoints whose identity could not be checked on resume, SIGTERM during a
deployment's setup, the feed path's late ticks, a thread-unsafe warning filter, a
private cross-module import."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from quantlab.engine import load_config

# ---------------------------------------------------------------- a bool is not a number

_DEFAULTS = load_config(environ={})
NUMERIC_KEYS = [(s, k) for s, keys in _DEFAULTS.items() for k, v in keys.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)] + \
    [("risk", "max_drawdown_pct")]   # null by default: a float when set


@pytest.mark.parametrize("section, key", NUMERIC_KEYS, ids=[f"{s}.{k}" for s, k in NUMERIC_KEYS])
@pytest.mark.parametrize("flag", [True, False, np.True_, np.False_])
def test_engine_config_refuses_a_bool_for_a_number_naming_the_key(section, key, flag):
    """risk.max_drawdown=True (notebook 09's parameter) was float(True) = 1.0, a limit of
    one currency unit; tick_size, initial_capital, max_drawdown_pct ... likewise, and
    np.True_ passed the integer keys as 1."""
    kind = "an integer" if isinstance(_DEFAULTS[section][key], int) else "a number"
    with pytest.raises(ValueError, match=rf"^config: {section}\.{key} must be {kind}, "
                                         rf"got {re.escape(repr(flag))}$"):
        load_config({section: {key: flag}}, environ={})


def test_engine_config_keeps_numpy_and_yaml_numbers_and_refuses_yaml_yes(tmp_path):
    cfg = load_config({"risk": {"max_drawdown": np.float64(5000.0), "max_position": np.int64(7),
                                "max_drawdown_pct": None},
                       "engine": {"tick_size": np.float32(0.5)}}, environ={})
    assert (cfg["risk"]["max_drawdown"], cfg["risk"]["max_position"],
            cfg["engine"]["tick_size"]) == (5000.0, 7, 0.5)
    assert type(cfg["risk"]["max_position"]) is int
    path = tmp_path / "engine.yaml"
    path.write_text("risk:\n  max_drawdown: yes\n")      # read as typed: the text 'yes'
    with pytest.raises(ValueError, match=r"risk\.max_drawdown must be float, got 'yes'"):
        load_config(path, environ={})


# ---------------------------------------------------------------- private names stay home

def _private_imports():
    """(module, imported module, name) of every ``from quantlab.X import _name`` whose
    module is outside the importer's own package (quantlab.engine.* may share
    quantlab.engine.*'s private names; quantlab.suite may not import quantlab.ensemble's).
    Private modules (``quantlab._validate``, ``quantlab._kernels``) are package-internal
    by name: importing them is how they are used."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "quantlab"
    found = []
    for path in sorted(root.rglob("*.py")):
        me = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        package = me.rsplit(".", 1)[0] if path.name != "__init__.py" else me
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith(
                    "quantlab") or node.level:
                continue
            if any(p.startswith("_") for p in node.module.split(".")):
                continue    # a private module: package-internal by name
            home = node.module
            if package != "quantlab" and (home == package or home.startswith(package + ".")):
                continue    # within one package (quantlab.engine -> quantlab.engine.core)
            base = root.joinpath(*home.split(".")[1:])
            found += [(me, home, a.name) for a in node.names if a.name.startswith("_")
                      and not a.name.startswith("__")   # a private module of quantlab:
                      and not (base / a.name).is_dir()  # package-internal by name
                      and not (base / f"{a.name}.py").is_file()]
    return found


# imports of another module's private names left as they are, each with why (session 48:
# none; quantlab.data's parse_dates, read_text, time_asset and check_time are public
# names, documented, for the modules that share them)
KNOWN_PRIVATE = {}


def test_no_module_imports_another_module_s_private_names():
    """suite.py imported quantlab.ensemble's private ``_rebalance_mask`` to check a
    notebook's reweight: a rename there would break the notebooks' checks. The rule has
    one public home now (``ql.ensemble.check_reweight``) that both use."""
    found = set(_private_imports())
    assert ("quantlab.suite", "quantlab.ensemble", "_rebalance_mask") not in found
    assert found - set(KNOWN_PRIVATE) == set(), sorted(found - set(KNOWN_PRIVATE))


@pytest.mark.parametrize("bad", ["1h", "0W", "", 1.5, 0, True, np.True_, None])
def test_an_ensemble_refuses_a_bad_reweight_when_built_as_the_notebook_check_does(bad):
    """Ensemble(reweight='1h') was accepted and refused only by weights(), once every
    strategy's stream had been backtested; ql.suite.reweight applied the same rule
    through the private mask. One public check now, the same words from both."""
    import quantlab as ql

    with pytest.raises(ValueError, match=r"^reweight must be ") as built:
        ql.ensemble.Ensemble(["spc"], reweight=bad)
    with pytest.raises(ValueError, match=r"^every must be ") as checked:
        ql.suite.reweight("every", bad)
    assert str(checked.value) == str(built.value).replace("reweight", "every", 1)
    assert ql.ensemble.check_reweight("2W") == "2W" and ql.ensemble.check_reweight(np.int64(3)) == 3


# ---------------------------------------------------------------- one copy of a test helper

def _shared_runs(folder, run=5):
    """Pairs of functions in different test modules of ``folder`` that share ``run``
    consecutive statements (compared as ASTs): copied helpers."""
    import ast
    from pathlib import Path

    first, pairs = {}, set()
    for path in sorted(Path(folder).glob("test*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef):
                continue
            body = [ast.dump(s) for s in node.body]
            for i in range(len(body) - run + 1):
                where = first.setdefault(tuple(body[i:i + run]), (path.name, node.name))
                if where[0] != path.name:
                    pairs.add((where, (path.name, node.name)))
    return pairs


def test_no_test_helper_is_copied_between_test_modules():
    """test_outofcore.py and test_resume_stream.py each built the same OHLCV random walk
    (a duplicate-code finder flagged their ``_panel``): one generator now,
    tests/panels.py's ``ohlcv_panel``, giving both the panels they had."""
    from pathlib import Path

    assert _shared_runs(Path(__file__).parent) == set()


# ---------------------------------------------------------------- no process-wide filter

def test_synthetic_minute_panel_swallows_no_other_thread_s_warning(tmp_path, monkeypatch):
    """The generator silenced its own CalendarWarning with warnings.catch_warnings(),
    which swaps the process's filter list: a CalendarWarning another thread raised
    meanwhile was lost. The generator now tells the inference the calendar it made
    (ql.calendar.known, a context variable) and changes no filter. Here the generator is
    held inside its store write while this thread warns."""
    import threading
    import warnings

    import quantlab as ql
    from quantlab import store
    from quantlab.errors import CalendarWarning

    inside, go = threading.Event(), threading.Event()
    write = store.write_panel

    def held(*args, **kw):
        inside.set()
        assert go.wait(30)
        return write(*args, **kw)

    monkeypatch.setattr(store, "write_panel", held)
    out = []
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        t = threading.Thread(target=lambda: out.append(ql.testing.synthetic_minute_panel(
            2, 1, store=tmp_path / "s")))
        t.start()
        try:
            assert inside.wait(30)
            warnings.warn("another thread's calendar guess", CalendarWarning)
        finally:
            go.set()
            t.join(60)
    assert [str(w.message) for w in seen] == ["another thread's calendar guess"]
    assert ql.data.open(out[0]).attrs["calendar"] == "24/7"


def test_a_known_calendar_holds_in_its_own_thread_only():
    """ql.calendar.known: infer answers it without a warning inside the block; another
    thread, and an index the step does not fit, are inferred (and warned of) as before."""
    import threading
    import warnings

    import pandas as pd

    import quantlab as ql
    from quantlab.errors import CalendarWarning

    two_days = pd.date_range("2024-01-01", periods=2880, freq="min")
    inside, go, got = threading.Event(), threading.Event(), []

    def hold():
        with ql.calendar.known("1min", "24/5", 374_400):
            got.append(ql.calendar.infer(two_days))
            inside.set()
            assert go.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert inside.wait(30)
        with pytest.warns(CalendarWarning, match="24/7 or 24/5|a 24/5 market"):
            here = ql.calendar.infer(two_days)
    finally:
        go.set()
        t.join(60)
    assert got == [{"freq": "1min", "calendar": "24/5", "periods_per_year": 374_400}]
    assert here["calendar"] == "24/7"
    with ql.calendar.known("1D", "business_day", 252), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ql.calendar.infer(pd.bdate_range("2024-01-01", periods=3))["periods_per_year"] == 252
        with pytest.warns(CalendarWarning):     # hours do not fit a 1-day step: inferred
            ql.calendar.infer(pd.date_range("2024-01-01", periods=30, freq="h"))


# ---------------------------------------------------------------- SIGTERM before the first bar

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
# `quantlab deploy` with SIGTERM sent to itself from inside its setup (HOOK: a setup step)
SETUP_KILL = """
import os, signal, sys, time
import quantlab.data, quantlab.live
from quantlab import cli
owner, name = {hook}
real = getattr(owner, name)
def killed(*args, **kw):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(2)            # the signal lands here, in the setup
    return real(*args, **kw)
setattr(owner, name, killed)
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("hook, resumed", [
    ("quantlab.data, 'load'", False),                   # loading the replay's bars
    ("quantlab.live, 'deploy'", False),                 # warming up the signal
    ("quantlab.live.Deployment, 'restore'", True),      # reading the checkpoint
])
def test_sigterm_during_a_deployment_s_setup_exits_143_saying_nothing_traded(
        tmp_path, hook, resumed):
    """SIGTERM before the first bar (the CLI installed its handler only once the setup
    was done) killed the process without a word (exit -15). Now Ctrl-C's path from the
    start: exit 143, one line saying nothing was traded; a checkpoint is left as it was."""
    import os
    import subprocess
    import sys

    import quantlab as ql

    ck = tmp_path / "ck"
    ds = ql.data.load()
    start = str(ds.time.values[-3])[:10]
    argv = ["deploy", "volatility_regime", "--replay", "equities", "--start", start,
            "--checkpoint", str(ck), "--every", "100"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if resumed:
        ql.deploy("volatility_regime", history=ds.sel(time=ds.time < ds.time.values[-3])) \
            .checkpoint(ck)
    before = {p.name: p.stat().st_mtime_ns for p in ck.iterdir()} if resumed else None
    done = subprocess.run([sys.executable, "-c", SETUP_KILL.format(hook=hook), *argv],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 143, (done.returncode, done.stderr)
    err = done.stderr
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("quantlab deploy: interrupted during its setup, before the first "
                          "bar: nothing traded"), err
    if resumed:
        assert f"since --checkpoint {ck}; run the same command to resume" in err
        assert {p.name: p.stat().st_mtime_ns for p in ck.iterdir()} == before
    else:
        assert not (ck / "deployment.json").exists()


# ---------------------------------------------------------------- the feed's late ticks

def _tick(sym, minute, second=0, size=100):
    return {"symbol_id": sym, "bid_price": 100.0 + minute, "ask_price": 100.02 + minute,
            "bid_size": size, "ask_size": size,
            "timestamp": 1_704_067_200_000_000 + (minute * 60 + second) * 1_000_000}


def test_deploy_feed_prints_its_late_ticks_per_asset(monkeypatch, capsys, tmp_path):
    """The bars of a --feed run drop a tick arriving for a bar already handed on (late),
    counted per asset since session 46, but `quantlab deploy --feed` printed only the
    deployment: how many ticks of which asset were lost was said nowhere (the feed's
    open bar is never flushed, where the engine logs its summary). Now its last line."""
    import asyncio
    import json

    import quantlab as ql
    from quantlab import cli

    late = [_tick(1, 0, 50, size=40)] * 2 + [_tick(0, 1, 30, size=5)]

    def feed(url):
        async def messages():
            for m in range(4):                       # minutes 0..3 of A (0) and B (1)
                for t in (_tick(0, m), _tick(1, m)):
                    yield json.dumps(t)
                await asyncio.sleep(0.02)            # a batch each: minute m-1 closes
                if m == 2:                           # B's minute 0 and A's minute 1: late
                    for t in late:
                        yield json.dumps(t)
                    await asyncio.sleep(0.02)
        return messages()

    monkeypatch.setattr(ql.engine, "websocket_feed", feed)
    code = cli.main(["deploy", "volatility_regime", "--feed", "ws://127.0.0.1:1/x",
                     "--symbols", "A,B", "--checkpoint", str(tmp_path / "ck")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.splitlines()[-1] == ("late ticks: 3 dropped (their bar already handed on): "
                                    "A 1 (10 volume), B 2 (160 volume)"), out


# ---------------------------------------------------------------- a checkpoint's own identity

FEED = ["--feed", "ws://127.0.0.1:1/x", "--symbols", "A,B"]   # nothing listens: exit 1


def _engine_checkpoint(ck, bar, symbols=("A", "B")):
    """A checkpoint written through the API (no cli.json): the engine's deployment."""
    import quantlab as ql

    dep = ql.engine.TickEngine().load_strategy_params({}, strategy="volatility_regime",
                                                      symbols=list(symbols), bar=bar)
    dep.checkpoint(ck)
    return dep


def _cli(argv, capsys):
    from quantlab import cli

    code = cli.main(["deploy", "volatility_regime", *argv])
    return code, capsys.readouterr().err


def test_cli_refuses_an_api_checkpoint_of_another_bar_size(tmp_path, capsys):
    """A checkpoint the API wrote (no cli.json beside it) was resumed by `quantlab
    deploy --feed --bar 1min` over its 5-minute bars, silently mixing bar sizes, and
    then stamped 1min in a new cli.json. The checkpoint records its bar size now,
    whoever writes it; --bar left out resumes with the saved size."""
    ck = tmp_path / "ck"
    _engine_checkpoint(ck, "5min")
    code, err = _cli([*FEED, "--bar", "1min", "--checkpoint", str(ck)], capsys)
    assert code == 2, err
    assert "cannot resume from --checkpoint" in err and "--bar '5min' (given '1min')" in err
    assert not (ck / "cli.json").exists()
    for same in (["--bar", "300s"], []):        # however spelt, or left out: resumes
        code, err = _cli([*FEED, *same, "--checkpoint", str(ck)], capsys)
        assert code == 1 and "the feed failed" in err and "cannot resume" not in err, err
    assert json.loads((ck / "cli.json").read_text())["source"] == "--feed"


def test_cli_refuses_a_replay_of_other_bars_over_an_api_checkpoint(tmp_path, capsys):
    """The engine's 1-minute deployment of the equities, resumed with --replay of their
    daily bars: traded silently before (one daily bar per minute bar)."""
    import quantlab as ql

    ck = tmp_path / "ck"
    _engine_checkpoint(ck, "1min", ql.data.load().asset.values.tolist())
    code, err = _cli(["--replay", "equities", "--checkpoint", str(ck)], capsys)
    assert code == 2, err
    assert "bars of '1min' (given --replay equities of '1D' bars)" in err, err


def test_api_resume_refuses_another_bar_size_whoever_wrote_the_checkpoint(tmp_path):
    import quantlab as ql
    from quantlab.live import Deployment

    ds = ql.data.load()
    ql.deploy("volatility_regime", history=ds.isel(time=slice(0, 80))).checkpoint(tmp_path / "d")
    with pytest.raises(ValueError, match=r"bar '1min': this deployment trades 1D bars"):
        Deployment.restore(tmp_path / "d", bar="1min")
    assert Deployment.restore(tmp_path / "d", bar="24h").bar == "1D"
    _engine_checkpoint(tmp_path / "e", "5min")
    dep = Deployment.restore(tmp_path / "e")
    eng = ql.engine.TickEngine()
    with pytest.raises(ValueError, match=r"bar '1min': this deployment trades 5min bars"):
        eng.load_strategy_params(dep, bar="1min")
    assert eng.load_strategy_params(dep) is dep and eng._bars.freq == "5min"
    with pytest.raises(TypeError, match="goes on with the deployment's own"):
        eng.load_strategy_params(dep, fees=0.01)


def _strip_bar(ck):
    """The checkpoint as quantlab before session 47 wrote it: no bar size recorded."""
    meta = json.loads((ck / "deployment.json").read_text())
    del meta["bar"], meta["digest"]    # nor the manifest's digest (session 51)
    (ck / "deployment.json").write_text(json.dumps(meta))


def test_an_old_checkpoint_resumes_with_a_warning_that_its_bar_size_was_not_checked(
        tmp_path, capsys):
    """No bar size in the checkpoint and no cli.json: nothing to check it against. The
    resume goes on, saying so (API: a warning; CLI: a line), and records the size."""
    import quantlab as ql
    from quantlab.live import Deployment

    ds = ql.data.load()
    ck = tmp_path / "ck"
    ql.deploy("volatility_regime", history=ds.isel(time=slice(0, -3))).checkpoint(ck)
    _strip_bar(ck)
    assert Deployment.restore(ck).bar is None
    with pytest.warns(UserWarning, match=r"records no bar size .*could not be checked"):
        assert Deployment.restore(ck, bar="1D").bar == "1D"
    code, err = _cli(["--replay", "equities", "--start", str(ds.time.values[-3])[:10],
                      "--checkpoint", str(ck), "--every", "100"], capsys)
    assert code == 0, err
    assert err.startswith(f"quantlab deploy: warning: --checkpoint {ck} records no bar size")
    assert "the bar size could not be checked; resuming" in err
    back = Deployment.restore(ck)
    assert back.bar == "1D" and len(back.equity) == 3


def test_deploy_set_takes_exponent_numbers_and_bar_errors_name_the_option(capsys):
    """`--set fees 1e-3` was refused ("fees must be a real number, got '1e-3'": YAML 1.1
    reads it as text); a bad --bar was refused naming `freq`, not the option."""
    from quantlab import cli

    a = cli.parser().parse_args(["deploy", "x", "--replay", "equities", "--set", "fees",
                                 "1e-3", "--set", "slippage", "5E-4", "--set", "execution",
                                 "close"])
    assert cli._deploy_setup(a)[1] == {"fees": 0.001, "slippage": 0.0005, "execution": "close"}
    code, err = _cli([*FEED, "--bar", "banana"], capsys)
    assert code == 2 and err.startswith("quantlab deploy: error: --bar 'banana': "), err


def test_cli_resumes_an_untraded_checkpoint_after_its_history(tmp_path, capsys):
    """A checkpoint of a deployment that had traded nothing yet (ql.deploy(history=...)
    .checkpoint: its history only) was resumed from the replay's first bar, which the
    deployment refused as out of order (exit 1). It goes on after its last history bar."""
    import quantlab as ql
    from quantlab.live import Deployment

    ds = ql.data.load()
    ck = tmp_path / "ck"
    ql.deploy("volatility_regime", history=ds.isel(time=slice(0, -4))).checkpoint(ck)
    code, err = _cli(["--replay", "equities", "--checkpoint", str(ck), "--every", "100"],
                     capsys)
    assert code == 0, err
    back = Deployment.restore(ck)
    assert list(back.equity.time.values) == list(ds.time.values[-4:])


def test_a_feed_resumed_with_its_symbols_reordered_is_refused(tmp_path, capsys):
    """--symbols maps symbol_id to asset: `--symbols B,A` over a checkpoint of A, B
    (compared sorted) resumed with symbol 0's ticks as B's bars and 1's as A's, each
    asset trading the other's prices, silently."""
    import quantlab as ql
    from quantlab.live import Deployment

    ck = tmp_path / "ck"
    _engine_checkpoint(ck, "1min")
    code, err = _cli(["--feed", "ws://127.0.0.1:1/x", "--symbols", "B,A", "--checkpoint",
                      str(ck)], capsys)
    assert code == 2 and "universe=['A', 'B'], symbol_id 0, 1, ... in this order" in err, err
    with pytest.raises(ValueError, match="not the deployment's assets by symbol_id"):
        ql.engine.TickEngine().load_strategy_params(Deployment.restore(ck), symbols=["B", "A"])
    code, err = _cli([*FEED, "--checkpoint", str(ck)], capsys)     # A,B: resumes
    assert code == 1 and "cannot resume" not in err, err


@pytest.mark.parametrize("kw, message", [
    (dict(bar_seconds=True), "bar_seconds must be a real number, got True"),
    (dict(bar_seconds=-60), r"bar_seconds must be > 0, got -60"),
    (dict(p99_limit_ms=True), "p99_limit_ms must be a real number, got True"),
    (dict(p99_limit_ms=np.nan), "p99_limit_ms must be a finite number"),
])
def test_deployment_health_check_refuses_bad_limits(kw, message):
    """bar_seconds=True was one second (a daily deployment 'degraded' after 3 s), a
    negative one never silent, p99_limit_ms=True 1 ms, NaN never degraded."""
    import quantlab as ql

    ds = ql.data.load().isel(time=slice(0, 70))
    dep = ql.deploy("volatility_regime", history=ds.isel(time=slice(0, 60)))
    dep.replay(ds.isel(time=slice(60, 62)))
    with pytest.raises((TypeError, ValueError), match=message):
        dep.health_check(**kw)
    assert dep.health_check(bar_seconds=86_400, p99_limit_ms=np.inf)["status"] == "healthy"


@pytest.mark.parametrize("flag", [True, np.True_])
def test_notebook_checks_and_deploy_options_refuse_a_bool_for_a_number(tmp_path, capsys, flag):
    """The rest of the class, already refusing: the notebook checks (ql.suite) and the
    deploy CLI's --set and --params; numpy numbers still pass."""
    import quantlab as ql

    for check, args in ((ql.suite.number_in, ("x", flag, 0, 10)),
                        (ql.suite.integer_in, ("x", flag, 0, 10)),
                        (ql.suite.backtest_option, ("fees", flag))):
        with pytest.raises(TypeError, match=rf"^(x|fees) must be (a real number|an integer), "
                                            rf"got {re.escape(repr(flag))}$"):
            check(*args)
    assert ql.suite.number_in("x", np.float32(2.5), 0, 10) == 2.5
    assert ql.suite.integer_in("x", np.int64(3), 0, 10) == 3
    assert ql.suite.backtest_option("fees", np.float64(0.001)) == 0.001
    code, err = _cli(["--replay", "equities", "--set", "fees", "true"], capsys)
    assert code == 2 and "fees must be a real number, got True" in err, err
    (tmp_path / "p.json").write_text(json.dumps({"window": True}))
    code, err = _cli(["--replay", "equities", "--params", str(tmp_path / "p.json")], capsys)
    assert code == 2 and "'window' must be an integer, got True" in err, err
