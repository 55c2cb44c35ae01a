"""ql.deploy with per-bar signals (issue #27) and appending checkpoints.

Before: every decision recomputed ``strategy.signal`` over the trailing window (33-50 ms
at 500 assets; all history for spc and factor_momentum), and every checkpoint rewrote
every record, so a CLI replay checkpointing each bar slowed down as it went."""
import json
import os

import numpy as np
import pandas as pd
import pytest

import quantlab as ql
from quantlab.live import Deployment

# fractal_chaos: its Lyapunov stream (measures._LyapStream) is rebuilt from the buffer
LIVE = ["volatility_regime", "liquidity_timing", "cross_sectional_momentum", "spc",
        "fractal_chaos"]
PARAMS = {"volatility_regime": {"window": 10, "lookback": 40},
          "fractal_chaos": {"window": 40, "band": 0.0, "trend": 5, "chaos_quantile": 0.6},
          "liquidity_timing": {"window": 5, "lookback": 30},
          "cross_sectional_momentum": {"lookback": 40, "skip": 5, "hold": 7},
          "spc": {"span": 30, "h": 2.0}}


@pytest.fixture(scope="module")
def equities():
    return ql.data.load().isel(time=slice(0, 420))


@pytest.mark.parametrize("name", LIVE)
def test_deploy_does_not_recompute_the_trailing_window_at_each_bar(name, equities,
                                                                    monkeypatch):
    """The decisions come from the live signal: strategy.signal is never called, and they
    equal the full-history signal over the same bars."""
    s = ql.strategies.get(name, **PARAMS[name])
    want = s.signal(equities).transpose("time", "asset").values[300:]
    calls = []
    monkeypatch.setattr(type(s), "signal", lambda *a, **k: calls.append(1))
    dep = ql.deploy(s, history=equities.isel(time=slice(0, 300)), fees=0.001)
    dep.replay(equities.isel(time=slice(300, None)), block=16)
    assert calls == []
    np.testing.assert_allclose(dep.signal.values, want, rtol=1e-9, atol=0)
    assert np.isfinite(want).any()


def test_factor_momentum_deploy_never_recomputes_the_signal(equities, monkeypatch):
    """The live signal fits each new month's betas itself: no full-history ``signal``
    call while bars arrive (it used to run one a month, its cost growing with history)."""
    s = ql.strategies.get("factor_momentum", beta_window=12, lookback=3)
    n = []
    signal = type(s).signal
    monkeypatch.setattr(type(s), "signal", lambda *a, **k: n.append(1) or signal(*a, **k))
    dep = ql.deploy(s, history=equities.isel(time=slice(0, 300)))
    before = len(n)
    dep.replay(equities.isel(time=slice(300, None)))
    assert len(n) == before


@pytest.mark.parametrize("name", LIVE)
def test_restored_live_deployment_continues_bit_for_bit(name, equities, tmp_path):
    """Kill after 50 bars, restore: the live signal is rebuilt from the buffered bars
    (their original indices: the rebalance phase) and the rest is bit-identical."""
    s = ql.strategies.get(name, **PARAMS[name])
    hist, bars = equities.isel(time=slice(0, 200)), equities.isel(time=slice(200, None))
    whole = ql.deploy(s, history=hist, fees=0.001).replay(bars)
    part = ql.deploy(s, history=hist, fees=0.001)
    for k in range(0, 50, 10):                 # appending checkpoints on the way
        part.replay(bars.isel(time=slice(k, k + 10)))
        part.checkpoint(tmp_path / "ck")
    back = Deployment.restore(tmp_path / "ck")
    back.replay(bars.isel(time=slice(50, None)))
    np.testing.assert_array_equal(back.signal.values, whole.signal.values)
    np.testing.assert_array_equal(back.equity.values, whole.equity.values)
    pd.testing.assert_frame_equal(back.orders, whole.orders)
    assert len(whole.orders) > 0


def test_checkpoint_appends_only_what_came_since_the_last(equities, tmp_path):
    """Each checkpoint at the same path writes one segment holding the bars and records
    since the previous one: its size does not grow with the bars traded."""
    dep = ql.deploy("volatility_regime", PARAMS["volatility_regime"],
                    history=equities.isel(time=slice(0, 100)), fees=0.001)
    sizes, first = [], None
    for i in range(100, 160):
        dep.on_bar(equities.isel(time=i))
        dep.checkpoint(tmp_path)
        gen = json.loads((tmp_path / "deployment.json").read_text())["generation"]
        sizes.append(os.path.getsize(tmp_path / f"seg-{gen}-{len(sizes)}.npz"))
        first = first or (tmp_path / f"seg-{gen}-1.npz").read_bytes() if i > 100 else None
    assert max(sizes[5:]) - min(sizes[5:]) < 500          # a few orders more or less
    assert sizes[0] > min(sizes[5:]) + 100 * 4 * 5 * 8      # the history's bars
    assert (tmp_path / f"seg-{gen}-1.npz").read_bytes() == first    # never rewritten
    back = Deployment.restore(tmp_path)
    np.testing.assert_array_equal(back.equity.values, dep.equity.values)
    np.testing.assert_array_equal(back.positions.values, dep.positions.values)
    pd.testing.assert_frame_equal(back.orders, dep.orders)
    pd.testing.assert_frame_equal(back.rejections, dep.rejections)
    np.testing.assert_array_equal(back._buf.times(), dep._buf.times())
    assert back._seen == dep._seen


def test_checkpoint_compacts_into_a_new_generation(equities, tmp_path, monkeypatch):
    monkeypatch.setattr(Deployment, "COMPACT", 4)
    dep = ql.deploy("spc", history=equities.isel(time=slice(0, 100)))
    for i in range(100, 111):
        dep.on_bar(equities.isel(time=i))
        dep.checkpoint(tmp_path)
    meta = json.loads((tmp_path / "deployment.json").read_text())
    assert (meta["generation"], meta["segments"]) == (3, 3)
    assert sorted(p.name for p in tmp_path.glob("seg-*")) == \
        ["seg-3-0.npz", "seg-3-1.npz", "seg-3-2.npz"]
    back = Deployment.restore(tmp_path)
    assert len(back._buf) == len(dep._buf) == 111     # spc keeps every bar
    back.on_bar(equities.isel(time=111))
    dep.on_bar(equities.isel(time=111))
    np.testing.assert_array_equal(back.equity.values, dep.equity.values)


def test_a_checkpoint_killed_mid_write_leaves_the_previous_one(equities, tmp_path,
                                                               monkeypatch):
    dep = ql.deploy("volatility_regime", PARAMS["volatility_regime"],
                    history=equities.isel(time=slice(0, 100)))
    dep.replay(equities.isel(time=slice(100, 120)))
    dep.checkpoint(tmp_path)
    n = len(dep.equity)
    dep.replay(equities.isel(time=slice(120, 130)))

    def die(*a, **k):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(np, "savez", die)
    with pytest.raises(KeyboardInterrupt):
        dep.checkpoint(tmp_path)
    monkeypatch.undo()
    back = Deployment.restore(tmp_path)
    assert len(back.equity) == n
    back.replay(equities.isel(time=slice(120, 130)))
    np.testing.assert_array_equal(back.equity.values, dep.equity.values)


def test_a_format_1_checkpoint_still_restores(equities, tmp_path):
    """The one-npz layout of quantlab <= 0.1 (deployment.json + deployment.npz)."""
    dep = ql.deploy("volatility_regime", PARAMS["volatility_regime"],
                    history=equities.isel(time=slice(0, 100)), fees=0.001)
    dep.replay(equities.isel(time=slice(100, 130)))
    dep.checkpoint(tmp_path / "v2")
    meta = json.loads((tmp_path / "v2" / "deployment.json").read_text())
    from quantlab.live import _read_segments
    meta, arrays = _read_segments(tmp_path / "v2", meta)
    (tmp_path / "v1").mkdir()
    np.savez(tmp_path / "v1" / "deployment.npz", **arrays)
    (tmp_path / "v1" / "deployment.json").write_text(json.dumps({**meta, "format": 1}))
    back = Deployment.restore(tmp_path / "v1")
    np.testing.assert_array_equal(back.equity.values, dep.equity.values)
    pd.testing.assert_frame_equal(back.orders, dep.orders)


def test_reading_the_records_after_every_bar_converts_only_the_new_ones(equities):
    """`quantlab deploy` reads len(dep.equity) after every bar: the records are stacked
    incrementally (it was a full conversion of every record each bar: quadratic), with
    the same values as a deployment read once at the end."""
    hist, bars = equities.isel(time=slice(0, 200)), equities.isel(time=slice(200, 260))
    dep = ql.deploy("volatility_regime", PARAMS["volatility_regime"], history=hist,
                    group=True)
    seen = []
    dep.listeners.append(lambda st: seen.append((len(dep.equity), dep.positions.values[-1])))
    dep.replay(bars)
    once = ql.deploy("volatility_regime", PARAMS["volatility_regime"], history=hist,
                     group=True).replay(bars)
    assert [n for n, _ in seen] == list(range(1, 61))
    np.testing.assert_array_equal(np.array([p for _, p in seen]), once.positions.values)
    for k in ("equity", "cash", "positions", "signal", "targets"):
        xr_equal = getattr(dep, k).identical(getattr(once, k))
        assert xr_equal, k
    assert "_stack" in dep.__dict__ and dep.__dict__["_stack"]["time"][0].size >= 60


def test_a_new_deployment_checkpointing_into_a_used_folder_leaves_the_old_one_readable(
        equities, tmp_path, monkeypatch):
    """Its first (whole) checkpoint is a new generation: killed while writing it, the
    folder still restores the previous deployment."""
    a = ql.deploy("spc", history=equities.isel(time=slice(0, 100)))
    for i in range(100, 104):
        a.on_bar(equities.isel(time=i))
        a.checkpoint(tmp_path)
    b = ql.deploy("volatility_regime", PARAMS["volatility_regime"],
                  history=equities.isel(time=slice(0, 100)))
    b.on_bar(equities.isel(time=100))
    monkeypatch.setattr(json, "dumps", lambda *x, **k: (_ for _ in ()).throw(
        KeyboardInterrupt("killed")))
    with pytest.raises(KeyboardInterrupt):
        b.checkpoint(tmp_path)
    monkeypatch.undo()
    back = Deployment.restore(tmp_path)
    assert back.strategy.name == "spc"
    np.testing.assert_array_equal(back.equity.values, a.equity.values)
    b.checkpoint(tmp_path)
    assert Deployment.restore(tmp_path).strategy.name == "volatility_regime"
    assert len(list(tmp_path.glob("seg-*"))) == 1
