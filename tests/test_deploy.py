"""ql.deploy: a strategy trading bar by bar trades exactly as its backtest.

Parity: the bars of a replay go one at a time through Deployment.on_bar (the signal from
the trailing window the strategy declares, one step of the backtest kernel from its
saved state); ql.backtest runs the full-history signal over the same bars with the same
options. Orders (time, asset, size, price) and equity at every bar must agree to 1e-9.
"""
import asyncio
import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab.errors import DataError
from quantlab.backtesting import dispatch

HISTORY, REPLAY = 560, 160      # bars of warm-up history, bars traded


@pytest.fixture(scope="module")
def equities():
    return ql.data.load().isel(time=slice(0, HISTORY + REPLAY))


VARIANTS = {
    "close": {},
    "next_open": {"execution": "next_open"},
    "fees_fixed_slippage": {"fees": 0.001, "fixed_fees": 1.0, "slippage": 0.0005},
    "volume_slippage": {"slippage": ql.Slippage("volume_based", coef=0.1, cap=0.02)},
    "adaptive_slippage": {"slippage": ql.Slippage("adaptive", bps=2), "fees": 0.0005},
    "stop_loss": {"sl_stop": 0.03, "fees": 0.0005},
    "group_levered": {"group": True, "max_leverage": 1.5, "execution": "next_open"},
}


# shorter than the defaults where those need more history than this test's 2.9 years
PARAMS = {"factor_momentum": {"beta_window": 12, "lookback": 3}}


def _replay_vs_backtest(name, ds, options):
    s = ql.strategies.get(name, **PARAMS.get(name, {}))
    history, bars = ds.isel(time=slice(0, HISTORY)), ds.isel(time=slice(HISTORY, None))
    dep = ql.deploy(s, history=history, **options)
    dep.replay(bars)
    # the backtest sees the history too (the slippage models' windows read it) but
    # trades only from the first replayed bar: NaN = hold, flat
    signal = s.signal(ds, **s.default_inputs(ds))
    signal = signal.where(signal.time >= bars.time[0])
    res = ql.backtest(ds, signal, **options)
    return dep, res


def _assert_same(dep, res):
    tail = slice(HISTORY, None)
    np.testing.assert_allclose(dep.equity.values, res.equity.isel(time=tail).values,
                               rtol=1e-9)
    np.testing.assert_allclose(dep.positions.values, res.positions.isel(time=tail).values,
                               rtol=1e-9, atol=1e-9)
    got = dep.orders.reset_index(drop=True)
    want = res.orders.reset_index(drop=True)
    assert len(got) == len(want), (len(got), len(want))
    assert (got["time"].values == want["time"].values).all()
    assert (got["asset"].values == want["asset"].values).all()
    assert (got["reason"].values == want["reason"].values).all()
    for k in ("size", "price", "fee"):
        np.testing.assert_allclose(got[k].values, want[k].values, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("i, name", list(enumerate(ql.strategies.names())))
def test_replayed_deployment_trades_as_its_backtest(i, name, equities):
    """Each strategy with its defaults, under one of the option variants in turn."""
    variant = list(VARIANTS)[i % len(VARIANTS)]
    dep, res = _replay_vs_backtest(name, equities, VARIANTS[variant])
    assert len(res.orders) > 0, f"{name}/{variant} places no order: a vacuous comparison"
    _assert_same(dep, res)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_option_variant_trades_as_its_backtest(variant, equities):
    dep, res = _replay_vs_backtest("volatility_regime", equities, VARIANTS[variant])
    assert len(res.orders) > 0
    _assert_same(dep, res)


def test_optimization_result_carries_its_parameters_and_options(equities):
    opt = ql.optimize.optimize_strategy_parameters(
        "volatility_regime", {"window": (10, 30)}, data=equities.isel(time=slice(0, HISTORY)),
        optimization_method="grid", n_trials=3, fees=0.001)
    dep = ql.deploy(opt, history=equities.isel(time=slice(0, HISTORY)))
    assert dep.strategy.params["window"] == opt.best_params["window"]
    assert dep.options.fees == 0.001


def _bar(ds, i):
    return ds.isel(time=i)


def test_bad_bars_are_refused_and_change_nothing(equities):
    dep = ql.deploy("volatility_regime", history=equities.isel(time=slice(0, 300)))
    dep.on_bar(_bar(equities, 300))
    before = (len(dep.equity), dep.state.to_dict()["cash"].copy())
    cases = [
        (_bar(equities, 300), "duplicated"),
        (_bar(equities, 299), "out of order"),
        (_bar(equities, 301).isel(asset=slice(0, 3)), "missing"),
        (_bar(equities, 301).assign(close=_bar(equities, 301)["close"] * -1), "non-positive"),
        (_bar(equities, 301).assign(
            close=_bar(equities, 301)["close"].where(lambda c: c.asset != c.asset[0])),
         "partially missing|missing"),
        (_bar(equities, 301)[["close"]], "lacks"),
        ("not a bar", "Dataset"),
    ]
    for bar, match in cases:
        with pytest.raises((DataError, TypeError), match=match):
            dep.on_bar(bar)
        assert len(dep.equity) == before[0]
        np.testing.assert_array_equal(dep.state.to_dict()["cash"], before[1])
    dep.on_bar(_bar(equities, 301))   # the good next bar still goes through
    assert len(dep.equity) == 2


def test_unknown_strategy_or_parameter_is_refused():
    with pytest.raises(ValueError, match="unknown strategy"):
        ql.deploy("momentun")
    with pytest.raises(ValueError, match="unknown parameter"):
        ql.deploy("volatility_regime", {"windw": 3})
    with pytest.raises(ValueError, match="one parameter combination"):
        ql.deploy("volatility_regime", {"window": [10, 20]})


def test_checkpoint_restore_continues_to_the_same_state(equities, tmp_path):
    kw = dict(fees=0.001, sl_stop=0.05)
    hist = equities.isel(time=slice(0, HISTORY))
    bars = equities.isel(time=slice(HISTORY, HISTORY + 60))
    whole = ql.deploy("volatility_regime", history=hist, **kw).replay(bars)
    part = ql.deploy("volatility_regime", history=hist, **kw)
    part.replay(bars.isel(time=slice(0, 25)))
    part.checkpoint(tmp_path / "ck")
    assert not list((tmp_path / "ck").glob("*.tmp"))
    back = ql.Deployment.restore(tmp_path / "ck")
    back.replay(bars.isel(time=slice(25, None)))
    np.testing.assert_array_equal(back.equity.values, whole.equity.values)
    pd.testing.assert_frame_equal(back.orders, whole.orders)
    with pytest.raises(ValueError, match="strategy 'volatility_regime', not 'spc'"):
        ql.Deployment.restore(tmp_path / "ck", strategy="spc")
    meta = json.loads((tmp_path / "ck" / "deployment.json").read_text())
    meta["format"] = 999
    (tmp_path / "ck" / "deployment.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format 999"):
        ql.Deployment.restore(tmp_path / "ck")


def test_risk_limits_change_targets_and_record_rejections(equities):
    hist = equities.isel(time=slice(0, HISTORY))
    bars = equities.isel(time=slice(HISTORY, HISTORY + 80))
    dep = ql.deploy("cross_sectional_momentum", {"lookback": 120, "skip": 5, "hold": 5},
                    history=hist, group=True, risk={"max_position": 0.1})
    dep.replay(bars)
    assert (dep.rejections["reason"] == "max_position").any()
    assert float(abs(dep.targets).max()) <= 0.1
    wanted = dep.signal.values[np.isfinite(dep.signal.values)]
    assert np.abs(wanted).max() > 0.1          # the strategy asked for more, kept beside


def test_drawdown_kill_switch_closes_everything(equities):
    hist = equities.isel(time=slice(0, HISTORY))
    bars = equities.isel(time=slice(HISTORY, HISTORY + 120))
    dep = ql.deploy("volatility_regime", history=hist, group=True, max_leverage=2.0,
                    risk={"max_drawdown_pct": 0.001})
    dep.replay(bars)
    assert dep.killed
    assert dep.health_check()["status"] == "critical"
    assert (dep.rejections["reason"] == "kill_switch").any()
    assert float(abs(dep.positions.isel(time=-1)).sum()) == 0


def test_health_is_waiting_before_any_bar_and_degraded_when_the_feed_is_silent(equities):
    dep = ql.deploy("volatility_regime", history=equities.isel(time=slice(0, 300)))
    assert dep.health_check()["status"] == "waiting"
    dep.on_bar(_bar(equities, 300))
    assert dep.health_check(bar_seconds=1e6, p99_limit_ms=1e9)["status"] == "healthy"
    dep._last_wall -= 10
    h = dep.health_check(bar_seconds=1.0, max_silent_bars=3, p99_limit_ms=1e9)
    assert h["status"] == "degraded" and "silent" in h["message"]
    h = dep.health_check(bar_seconds=1e6, p99_limit_ms=1e-9)
    assert h["status"] == "degraded" and "decision time" in h["message"]


def test_a_feed_that_disconnects_keeps_every_bar_before(equities):
    dep = ql.deploy("volatility_regime", history=equities.isel(time=slice(0, 300)))

    async def feed():
        for i in range(300, 305):
            yield _bar(equities, i)
        raise ConnectionResetError("peer went away")

    with pytest.raises(ql.engine.FeedError, match="after 5 bars"):
        asyncio.run(dep.run_feed(feed()))
    assert len(dep.equity) == 5


def _deploy_cmd(ck, *extra):
    import sys
    return [sys.executable, "-m", "quantlab", "deploy", "volatility_regime", "--replay",
            "equities", "--start", "2012-10-01", "--set", "fees", "0.001", "--set",
            "sl_stop", "0.05", "--checkpoint", str(ck), "--every", "1", *extra]


def test_a_killed_deploy_process_restored_from_its_checkpoint_ends_as_an_uninterrupted_run(
        tmp_path):
    """SIGKILL `quantlab deploy --replay` mid-way, run the same command again (it resumes
    from the checkpoint): the final state equals an uninterrupted run's."""
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    whole = subprocess.run(_deploy_cmd(tmp_path / "whole"), capture_output=True, text=True,
                           env=env, timeout=600)
    assert whole.returncode == 0, whole.stderr
    proc = subprocess.Popen(_deploy_cmd(tmp_path / "killed"), stdout=subprocess.PIPE,
                            text=True, env=env)
    lines = 0
    for line in proc.stdout:          # one line per bar once it is checkpointed
        lines += line.startswith("20")
        if lines == 20:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    again = subprocess.run(_deploy_cmd(tmp_path / "killed"), capture_output=True, text=True,
                           env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "resumed from" in again.stdout
    a = ql.Deployment.restore(tmp_path / "whole")
    b = ql.Deployment.restore(tmp_path / "killed")
    assert len(a.equity) > 40
    np.testing.assert_array_equal(b.equity.values, a.equity.values)
    np.testing.assert_array_equal(b.positions.values, a.positions.values)
    pd.testing.assert_frame_equal(b.orders, a.orders)
    for k, v in a.state.to_dict().items():
        np.testing.assert_array_equal(b.state.to_dict()[k], v, err_msg=k)
    # --block 16: one strategy call per 16 bars; the windows' sums start elsewhere, so
    # the signals (and equity) agree to rounding, and the orders are the same
    blocked = subprocess.run(_deploy_cmd(tmp_path / "blocked", "--block", "16"),
                             capture_output=True, text=True, env=env, timeout=600)
    assert blocked.returncode == 0, blocked.stderr
    c = ql.Deployment.restore(tmp_path / "blocked")
    np.testing.assert_allclose(c.equity.values, a.equity.values, rtol=1e-12)
    pd.testing.assert_frame_equal(c.orders, a.orders, rtol=1e-12)


def test_engine_ticks_become_the_bars_and_drive_the_same_deployment(equities):
    """Ticks synthesised from daily bars go through TickEngine.process_ticks; the engine's
    bars equal the originals and the deployment they drive equals a replay of the bars."""
    hist, bars = equities.isel(time=slice(0, HISTORY)), equities.isel(time=slice(HISTORY, HISTORY + 60))
    ticks = ql.testing.ticks_from_bars(bars)
    eng = ql.engine.TickEngine({"engine": {"max_symbols": 8}})
    dep = eng.load_strategy_params({"window": 15}, strategy="volatility_regime", bar="1D",
                                   history=hist, fees=0.001)
    for i in range(0, len(ticks["timestamp"]), 97):          # in uneven batches
        eng.process_ticks({k: v[i:i + 97] for k, v in ticks.items()})
    eng.flush_bars()
    direct = ql.deploy("volatility_regime", {"window": 15}, history=hist, fees=0.001)
    direct.replay(bars[["open", "high", "low", "close", "volume"]])
    assert len(dep.equity) == bars.sizes["time"]
    np.testing.assert_array_equal(dep.equity.values, direct.equity.values)
    pd.testing.assert_frame_equal(dep.orders, direct.orders)
    with pytest.raises(TypeError, match="strategy="):
        eng.load_strategy_params({"window": 15})


def _extreme(bar):
    """``bar`` with a range of 50x its close: the adaptive slippage reaches >= 1 on it."""
    bad = bar.copy(deep=True)
    bad["high"][:] = bad["close"].values * 50
    return bad


@pytest.mark.parametrize("kind", ["per_bar", "window"])
@pytest.mark.parametrize("name", ["cross_sectional_momentum", "volatility_regime", "spc"])
def test_a_bar_that_raises_once_buffered_is_forgotten(name, kind, equities, monkeypatch):
    """A bar refused after it was buffered (the adaptive slippage reaching 1 on it, a
    per-bar signal raising) leaves the deployment as before it: the same time can be sent
    again, corrected, and it trades on with the bits of one that never saw the bad bar.
    (It stayed buffered: the retry was refused as a duplicate and the deployment stuck.)"""
    s = ql.strategies.get(name, **PARAMS.get(name, {}))
    if kind == "window":
        monkeypatch.setattr(type(s), "live", lambda self, **inputs: None)
    opts = {"slippage": ql.Slippage("adaptive", bps=2), "fees": 0.0005}
    hist = equities.isel(time=slice(0, HISTORY))
    dep, ref = (ql.deploy(s, history=hist, **opts) for _ in range(2))
    assert (dep._live is None) == (kind == "window")
    for i in range(HISTORY, HISTORY + 40):
        bar = equities.isel(time=i)
        ref.on_bar(bar)
        if i == HISTORY + 10:
            with pytest.raises(ValueError, match="reaches a slippage"):
                dep.on_bar(_extreme(bar))
        if i == HISTORY + 20 and kind == "per_bar":
            monkeypatch.setattr(dep._live, "update", lambda *a: 1 / 0)
            with pytest.raises(ZeroDivisionError):
                dep.on_bar(bar)
            assert "update" not in vars(dep._live)   # rebuilt: the failed one is gone
        dep.on_bar(bar)
    np.testing.assert_array_equal(dep.equity.values, ref.equity.values)
    pd.testing.assert_frame_equal(dep.orders, ref.orders)
    pd.testing.assert_frame_equal(dep.rejections, ref.rejections)
    for k, v in ref.state.to_dict().items():
        np.testing.assert_array_equal(dep.state.to_dict()[k], v, err_msg=k)
    np.testing.assert_array_equal(dep._live_out, ref._live_out)
    for k in ("_prev_close", "_slip_prev", "_last_px"):
        np.testing.assert_array_equal(getattr(dep, k), getattr(ref, k), err_msg=k)


def test_a_first_bar_that_raises_leaves_an_empty_deployment(equities):
    """Without history, a first bar refused once buffered leaves nothing behind."""
    opts = {"slippage": ql.Slippage("adaptive", bps=2)}
    dep, ref = (ql.deploy("volatility_regime", **opts) for _ in range(2))
    with pytest.raises(ValueError, match="reaches a slippage"):
        dep.on_bar(_extreme(equities.isel(time=0)))
    assert len(dep._buf) == 0 and dep._seen == 0 and dep._last_px is None
    for i in range(5):
        dep.on_bar(equities.isel(time=i))
        ref.on_bar(equities.isel(time=i))
    np.testing.assert_array_equal(dep.equity.values, ref.equity.values)


def test_engine_bars_after_one_the_deployment_refuses_are_handed_on_later(equities):
    """A batch of ticks closes several bars; the deployment raises on one (the adaptive
    slippage reaching 1 on it): that bar is left out, and the bars after it are handed on
    at the next call, not lost with the error (they were)."""
    hist, bars = equities.isel(time=slice(0, HISTORY)), equities.isel(time=slice(HISTORY, HISTORY + 12))
    bad = bars.copy(deep=True)
    bad["high"][4] = bad["close"][4] * 50
    opts = {"slippage": ql.Slippage("adaptive", bps=2), "fees": 0.001}
    eng = ql.engine.TickEngine({"engine": {"max_symbols": 8}})
    dep = eng.load_strategy_params({"window": 15}, strategy="volatility_regime", bar="1D",
                                   history=hist, **opts)
    with pytest.raises(ValueError, match="reaches a slippage"):
        eng.process_ticks(ql.testing.ticks_from_bars(bad))     # one batch: 11 bars close
    assert len(dep.equity) == 4
    eng.flush_bars()
    direct = ql.deploy("volatility_regime", {"window": 15}, history=hist, **opts)
    direct.replay(bars.drop_isel(time=4)[["open", "high", "low", "close", "volume"]])
    assert len(dep.equity) == bars.sizes["time"] - 1
    np.testing.assert_array_equal(dep.equity.values, direct.equity.values)
    pd.testing.assert_frame_equal(dep.orders, direct.orders)


def test_a_refused_first_bar_sets_neither_the_universe_nor_the_state(equities, tmp_path):
    """The first bar's assets make the universe and its kernel step the state: refused
    once buffered, it sets neither, so the next first bar may carry other assets (the
    one that broke the slippage left out) and the checkpoints are a fresh deployment's.
    (The refused bar's assets stayed the universe: the corrected bar was refused.)"""
    opts = {"slippage": ql.Slippage("adaptive", bps=2)}
    bad = _extreme(equities.isel(time=0))
    fewer = equities.isel(time=slice(0, 5), asset=slice(1, None))
    dep, ref = (ql.deploy("volatility_regime", **opts) for _ in range(2))
    with pytest.raises(ValueError, match="reaches a slippage"):
        dep.on_bar(bad)
    assert dep.universe is None and dep.state is None
    dep.replay(fewer)
    ref.replay(fewer)
    assert dep.universe == ref.universe == [str(a) for a in fewer.asset.values]
    np.testing.assert_array_equal(dep.equity.values, ref.equity.values)
    hist = equities.isel(time=slice(0, HISTORY))          # a universe, no traded bar yet
    dep, ref = (ql.deploy("volatility_regime", history=hist, **opts) for _ in range(2))
    with pytest.raises(ValueError, match="reaches a slippage"):
        dep.on_bar(_extreme(equities.isel(time=HISTORY)))
    assert dep.state is None and dep.universe == ref.universe
    for d, name in ((dep, "dep"), (ref, "ref")):
        d.checkpoint(tmp_path / name)
    assert sorted(np.load(next((tmp_path / "dep").glob("seg-*.npz")))) == \
        sorted(np.load(next((tmp_path / "ref").glob("seg-*.npz"))))


def test_engine_bars_queued_for_a_replaced_deployment_are_not_handed_to_the_new(equities):
    """Bars left queued after the deployment raised belong to it (its bar aggregator,
    its symbols): a deployment loaded in its place starts with none of them. (They went
    to it first: refused one by one, an error a call, its own bars delayed behind.)"""
    hist, bars = equities.isel(time=slice(0, HISTORY)), equities.isel(time=slice(HISTORY, HISTORY + 12))
    bad = bars.copy(deep=True)
    bad["high"][4] = bad["close"][4] * 50
    opts = {"slippage": ql.Slippage("adaptive", bps=2)}
    eng = ql.engine.TickEngine({"engine": {"max_symbols": 8}})
    eng.load_strategy_params({"window": 15}, strategy="volatility_regime", bar="1D",
                             history=hist, **opts)
    with pytest.raises(ValueError, match="reaches a slippage"):
        eng.process_ticks(ql.testing.ticks_from_bars(bad))   # bars 5.. stay queued
    later = equities.isel(time=slice(HISTORY + 20, HISTORY + 30))
    fewer = equities.isel(time=slice(0, HISTORY + 20), asset=slice(0, 3))
    dep = eng.load_strategy_params({"window": 15}, strategy="volatility_regime", bar="1D",
                                   history=fewer, **opts)
    eng.process_ticks(ql.testing.ticks_from_bars(later.isel(asset=slice(0, 3))))
    eng.flush_bars()
    direct = ql.deploy("volatility_regime", {"window": 15}, history=fewer, **opts)
    direct.replay(later.isel(asset=slice(0, 3))[["open", "high", "low", "close", "volume"]])
    np.testing.assert_array_equal(dep.equity.values, direct.equity.values)
    pd.testing.assert_frame_equal(dep.orders, direct.orders)


def test_an_interrupt_after_the_kernel_step_refuses_further_bars(equities, monkeypatch,
                                                                 tmp_path):
    """Ctrl-C landing after a bar's kernel step changed the state (the kernel returns,
    the records are not yet kept) cannot be undone: the deployment then refuses bars and
    checkpoints, naming the restore, where it stepped the same bar again (a rollback of
    the buffer alone) or refused it as a duplicate."""
    hist = equities.isel(time=slice(0, HISTORY))
    dep = ql.deploy("volatility_regime", history=hist, fees=0.001)
    ck = dep.checkpoint(tmp_path / "ck")
    real = dispatch.Stepper.step

    def interrupted(self, *a, **kw):
        real(self, *a, **kw)
        raise KeyboardInterrupt
    monkeypatch.setattr(dispatch.Stepper, "step", interrupted)
    bar = equities.isel(time=HISTORY)
    with pytest.raises(KeyboardInterrupt):
        dep.on_bar(bar)
    monkeypatch.setattr(dispatch.Stepper, "step", real)
    for call in (lambda: dep.on_bar(bar), lambda: dep.on_bar(equities.isel(time=HISTORY + 1)),
                 lambda: dep.checkpoint(ck)):
        with pytest.raises(RuntimeError, match="restore the deployment"):
            call()
    again = ql.Deployment.restore(ck)     # the checkpoint before it is intact
    again.on_bar(bar)
    assert len(again.equity) == 1


def test_an_interrupt_before_the_kernel_step_is_undone(equities, monkeypatch):
    """Ctrl-C in the strategy's signal (most of a bar's time): the bar is forgotten."""
    hist = equities.isel(time=slice(0, HISTORY))
    dep, ref = (ql.deploy("volatility_regime", history=hist, fees=0.001) for _ in range(2))
    monkeypatch.setattr(type(dep), "_decide", lambda self: (_ for _ in ()).throw(
        KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        dep.on_bar(equities.isel(time=HISTORY))
    monkeypatch.undo()
    for i in range(HISTORY, HISTORY + 5):
        dep.on_bar(equities.isel(time=i))
        ref.on_bar(equities.isel(time=i))
    np.testing.assert_array_equal(dep.equity.values, ref.equity.values)


def test_a_listener_that_raises_does_not_keep_the_bar_from_the_others(equities, tmp_path):
    """A dashboard's error skipped the listeners after it (a checkpoint among them); now
    every listener sees the bar, then the first error is raised (the bar stays traded)."""
    dep = ql.deploy("volatility_regime", history=equities.isel(time=slice(0, HISTORY)))
    seen = []

    def broken(status):
        raise KeyError("dashboard")
    dep.listeners += [broken, lambda st: dep.checkpoint(tmp_path / "ck"),
                      lambda st: seen.append(st["time"])]
    bar = equities.isel(time=HISTORY)
    with pytest.raises(KeyError, match="dashboard"):
        dep.on_bar(bar)
    assert seen == [bar.time.values] and len(dep.equity) == 1
    assert len(ql.Deployment.restore(tmp_path / "ck").equity) == 1
    with pytest.raises(DataError, match="duplicated"):   # traded: not taken twice
        dep.on_bar(bar)
