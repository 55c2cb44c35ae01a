"""ql.deploy across an asset's gap longer than the slippage window and the warmup.

The return after a run of missing closes is measured from the last close before the run
(ql.data.returns), for the data-driven slippage models' rolling std as for the
strategies' signals. Before: a deployment computed them from its last bars only, so
once the gap covered those the return across it was lost and its fills and equity left
ql.backtest's: by up to 364 in equity for the slippage; for the signals recomputed from
a trailing window (no per-bar signal, and replay(block=)) by up to 25,000, and for a
per-bar signal rebuilt on restore from a buffer holding no close of the asset by up to
7,200. Now it carries each asset's last valid close before the buffer and before the
slippage window, bar by bar and through its checkpoints.
"""
import hashlib
import json

import numpy as np
import pytest

import quantlab as ql
from quantlab.live import _manifest_digest

H, N = 200, 400                 # bars of warm-up history; bars in all
PARAMS = {"window": 5, "lookback": 20}    # the deployment buffers 51 bars
WINDOW = 20                     # the slippage std's window
# IBM has no bar over these: ending in the replay, straddling the history's end, and
# longer than the deployment's buffer
GAPS = {"replay": (220, 280), "from_history": (160, 230), "past_buffer": (210, 360)}
MODELS = ("volume_based", "adaptive")
# warmups of 21-26 bars, buffers of 31-58: the gaps (60-150 bars) are longer. Momentum's
# lookback (40 before session 51) leaves it a score after the 150-bar gap: its closes are
# carried at most CARRY_BARS bars, so it is not scored until t - lookback is past the gap
STRATEGIES = {
    "volatility_regime": PARAMS,
    "cross_sectional_momentum": {"lookback": 20, "skip": 5, "hold": 5},  # period 5, carried
    "liquidity_timing": {"window": 5, "lookback": 20},                   # volume too
    "attention": {"window": 20, "hold": 5, "threshold": 1.0},  # open, high, low, volume
}
# attention's signal is the same across these gaps after a restore: not a test of it
RESTORED = ["volatility_regime", "cross_sectional_momentum", "liquidity_timing"]
KINDS = ("per_bar", "window", "blocks")   # live(); trailing windows bar by bar; block=16


def _gappy(gap):
    ds = ql.data.load().isel(time=slice(1300, 1300 + N)).copy(deep=True)
    j = list(ds.asset.values).index("IBM")
    for v in ds.data_vars:
        ds[v].values[slice(*gap), j] = np.nan
    return ds


@pytest.fixture(scope="module")
def panels():
    return {k: _gappy(g) for k, g in GAPS.items()}


def _options(model, group):
    # daily rebalancing: IBM trades at most bars after its gap, where the slippage differs
    return {"slippage": ql.Slippage(model, window=WINDOW), "group": group, "fees": 0.0005,
            "rebalance": "daily"}


def _backtest(s, ds, options):
    """The full-history signal traded from the first replayed bar (before: NaN, flat)."""
    signal = s.signal(ds, **s.default_inputs(ds))
    return ql.backtest(ds, signal.where(signal.time >= ds.time[H]), **options)


def _no_live(monkeypatch, s):
    """Decisions from the trailing window, as a strategy without a per-bar signal (and
    replay's blocks, which need one such)."""
    monkeypatch.setattr(type(s), "live", lambda self, **inputs: None)


def _assert_same(dep, res, rtol=1e-12):
    """Equity and orders of ``res`` from the first replayed bar; 1e-9 (as
    tests/test_deploy.py) where the signal comes from a trailing window, whose rolling
    sums start elsewhere than the full history's."""
    equity = res.equity.isel(time=slice(H, None)).values
    np.testing.assert_allclose(dep.equity.values, equity, rtol=rtol, atol=0)
    got, want = dep.orders.reset_index(drop=True), res.orders.reset_index(drop=True)
    assert len(got) == len(want)
    assert (got["time"].values == want["time"].values).all()
    assert (got["asset"].values == want["asset"].values).all()
    for k in ("size", "price", "fee"):
        np.testing.assert_allclose(got[k].values, want[k].values, rtol=rtol, atol=rtol)


def _traded_after(res, ds, end, n=3):
    """Assert that ``res`` trades IBM at least ``n`` times from bar ``end`` (its gap's
    end) on: the comparisons are not vacuous."""
    after = res.orders[(res.orders.asset == "IBM") & (res.orders.time >= ds.time.values[end])]
    assert len(after) >= n, "IBM must trade after its gap: a vacuous comparison"


@pytest.mark.parametrize("gap", list(GAPS))
@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("model", MODELS)
def test_a_replay_across_a_long_gap_trades_as_its_backtest(model, group, gap, panels):
    _replay_vs_backtest(panels[gap], _options(model, group), GAPS[gap][1])


@pytest.mark.parametrize("model", MODELS)
def test_next_open_across_a_long_gap_trades_as_its_backtest(model, panels):
    """One bar more in the window (costs from the decision bar): the same."""
    options = {**_options(model, False), "execution": "next_open"}
    _replay_vs_backtest(panels["past_buffer"], options, GAPS["past_buffer"][1])


def _replay_vs_backtest(ds, options, end):
    """A replay of ``ds`` after its history, IBM's gap ending at ``end``: the backtest."""
    s = ql.strategies.get("volatility_regime", **PARAMS)
    dep = ql.deploy(s, history=ds.isel(time=slice(0, H)), **options)
    dep.replay(ds.isel(time=slice(H, None)))
    res = _backtest(s, ds, options)
    after = res.orders[(res.orders.asset == "IBM")
                       & (res.orders.time >= ds.time.values[end])
                       & (res.orders.time < ds.time.values[end + WINDOW])]
    assert len(after) >= 5, "IBM must trade after its gap: a vacuous comparison"
    _assert_same(dep, res)


@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("model", MODELS)
def test_bars_one_by_one_and_replay_blocks_trade_as_the_backtest(model, group, panels,
                                                                  monkeypatch):
    """on_bar, and replay(block=) (its batched signals need a strategy without a per-bar
    signal): the slippage is each bar's in both."""
    ds, options = panels["replay"], _options(model, group)
    s = ql.strategies.get("volatility_regime", **PARAMS)
    one = ql.deploy(s, history=ds.isel(time=slice(0, H)), **options)
    for i in range(H, N):
        one.on_bar(ds.isel(time=i))
    _assert_same(one, _backtest(s, ds, options))
    _no_live(monkeypatch, s)
    blocks = ql.deploy(s, history=ds.isel(time=slice(0, H)), **options)
    assert blocks._live is None
    blocks.replay(ds.isel(time=slice(H, None)), block=16)
    _assert_same(blocks, _backtest(s, ds, options), rtol=1e-9)


@pytest.mark.parametrize("gap", list(GAPS))
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_signals_across_a_gap_longer_than_the_warmup_trade_as_the_backtest(
        name, kind, gap, panels, monkeypatch):
    """The signal at IBM after its gap reads the return across it (and, where forward
    filled, the close before it): a per-bar signal carries it; a trailing window gets
    it as the close of the bar before the window (before: lost, up to 25,000 in
    equity)."""
    ds, options = panels[gap], _options("volume_based", False)
    s = ql.strategies.get(name, **STRATEGIES[name])
    if kind != "per_bar":
        _no_live(monkeypatch, s)
    dep = ql.deploy(s, history=ds.isel(time=slice(0, H)), **options)
    assert (dep._live is None) == (kind != "per_bar")
    dep.replay(ds.isel(time=slice(H, None)), block=16 if kind == "blocks" else 1)
    res = _backtest(s, ds, options)
    _traded_after(res, ds, GAPS[gap][1])
    _assert_same(dep, res, rtol=1e-12 if kind == "per_bar" else 1e-9)


# what older quantlabs wrote: without prev_close (39379ed), without slip_prev too (before)
OLD = {"current": (), "without_prev_close": ("prev_close",),
       "without_both": ("prev_close", "slip_prev")}


def _drop(path, keys):
    """The checkpoint at ``path`` as an older quantlab wrote it: without ``keys``."""
    for seg in path.glob("seg-*.npz"):
        with np.load(seg) as z:
            assert set(keys) <= set(z.files)
            arrays = {k: z[k] for k in z.files if k not in keys}
        np.savez(seg, **arrays)
    if keys:      # nor the segments' digests (session 49)
        meta = json.loads((path / "deployment.json").read_text())
        meta.pop("digests")
        meta.pop("digest")      # nor the manifest's own (session 51)
        (path / "deployment.json").write_text(json.dumps(meta))


def _restored_runs(s, ds, options, cuts, olds, tmp_path, g1):
    """Assert that checkpoints at ``cuts``, as written and as each of ``olds`` (OLD's
    keys) wrote them, each restored and continued, give the uninterrupted run bit for
    bit (itself ql.backtest's); return it. The oldest format: not after the gap's end
    ``g1``, where it cannot know the close before the buffer."""
    hist = ds.isel(time=slice(0, H))
    whole = ql.deploy(s, history=hist, **options).replay(ds.isel(time=slice(H, None)))
    _assert_same(whole, _backtest(s, ds, options),
                 rtol=1e-12 if whole._live is not None else 1e-9)
    parts = {cut: ql.deploy(s, history=hist, **options).replay(ds.isel(time=slice(H, cut)))
             for cut in cuts}
    saved = []
    for old in olds:
        for cut, part in parts.items():
            if old == "without_both" and cut > g1:
                continue
            path = part.checkpoint(tmp_path / f"{old}-{cut}")
            _drop(path, OLD[old])
            back = ql.Deployment.restore(path)
            np.testing.assert_array_equal(back._slip_prev, part._slip_prev)
            back.replay(ds.isel(time=slice(cut, None)))
            np.testing.assert_array_equal(back.equity.values, whole.equity.values)
            np.testing.assert_array_equal(back.positions.values, whole.positions.values)
            assert back.orders.equals(whole.orders)
            if old == "current":     # an older one rebuilds what the next bars need
                saved.append((path, part))
    for path, part in saved:         # after the runs: a mismatch is the clearer failure
        np.testing.assert_array_equal(ql.Deployment.restore(path)._prev_close,
                                      part._prev_close)
    return whole


@pytest.mark.parametrize("kind", ["per_bar", "window"])
@pytest.mark.parametrize("gap", ["replay", "past_buffer"])
@pytest.mark.parametrize("model", MODELS)
def test_a_checkpoint_in_a_long_gap_restores_to_the_same_run(model, gap, kind, panels,
                                                              tmp_path, monkeypatch):
    """Checkpoints inside the gap, on its last bar, 10 bars after it and 23 bars into it
    (the buffer then still holds the close before the gap), each restored and continued.
    A per-bar signal is rebuilt from a bar holding each asset's last close before the
    buffer, then the buffered bars (before: from those alone, so once the buffer held
    no IBM close the return across the gap was lost: up to 900 in equity); a trailing
    window reads it too.

    An older checkpoint rebuilds what it lacks, exactly here: ``prev_close`` is the last
    close seen where the buffer holds none of the asset (in the gap), else ``slip_prev``
    where no close precedes the slippage window (after the gap; a checkpoint without
    either cannot know it there); ``slip_prev`` is the last close before the slippage
    window in the buffer (23 bars in) or ``prev_close``."""
    ds, options = panels[gap], _options(model, True)
    s = ql.strategies.get("volatility_regime", **PARAMS)
    if kind == "window":
        _no_live(monkeypatch, s)
    g0, g1 = GAPS[gap]
    whole = _restored_runs(s, ds, options, (g1 - 15, g1, g1 + 10, g0 + 23), list(OLD),
                           tmp_path, g1)
    # the first cut's buffer reaches back before the gap (5 bars more than the window
    # needs since session 51: those a close carried into it comes from, _lead)
    assert len(whole._buf) == (56 if kind == "per_bar" else 31)


@pytest.mark.parametrize("kind", ["per_bar", "window"])
@pytest.mark.parametrize("name", RESTORED)
def test_each_strategy_restores_across_a_gap_longer_than_its_buffer(name, kind, panels,
                                                                     tmp_path, monkeypatch):
    """Other rebalance periods and variables: restored on the gap's last bar and after
    it (the buffer then holds IBM's new closes, not the one before the gap), from this
    checkpoint and from one without ``prev_close``."""
    ds, options = panels["past_buffer"], _options("volume_based", False)
    s = ql.strategies.get(name, **STRATEGIES[name])
    if kind == "window":
        _no_live(monkeypatch, s)
    g0, g1 = GAPS["past_buffer"]
    whole = _restored_runs(s, ds, options, (g1, g1 + 10),
                           ["current", "without_prev_close"], tmp_path, g1)
    assert len(whole._buf) < g1 - g0
    _traded_after(_backtest(s, ds, options), ds, g1)


def _tampered(path, key, edit):
    for seg in sorted(path.glob("seg-*.npz"))[-1:]:   # the per-asset arrays: the last's
        with np.load(seg) as z:
            arrays = {k: z[k] for k in z.files}
        arrays[key] = edit(arrays[key].copy())
        np.savez(seg, **arrays)
        meta = json.loads((path / "deployment.json").read_text())   # as if written so
        k = int(seg.stem.split("-")[-1])
        meta["digests"][k] = hashlib.sha256(seg.read_bytes()).hexdigest()
        meta["digest"] = _manifest_digest(meta)
        (path / "deployment.json").write_text(json.dumps(meta))


def test_a_checkpoint_s_closes_before_the_windows_are_checked(panels, tmp_path):
    """The review: prev_close, slip_prev and last_close were restored as saved. inf, 0
    or a negative price changed every later fill (up to 6,633 in equity), and a small
    slip_prev restored, then refused IBM's next bar (a slippage of 4.5e6) with the bar
    already buffered: the deployment could not go on. Now a close outside NaN or a
    finite price > 0 is refused, and slip_prev must be what prev_close and the buffered
    bars make it (last_close too, where the buffer holds no close of the asset)."""
    ds, options = panels["past_buffer"], _options("adaptive", True)
    s = ql.strategies.get("volatility_regime", **PARAMS)
    g0, g1 = GAPS["past_buffer"]
    dep = ql.deploy(s, history=ds.isel(time=slice(0, H)), **options)
    dep.replay(ds.isel(time=slice(H, g1 - 11)))     # in the gap, past the buffer
    j = list(ds.asset.values).index("IBM")
    cases = {("prev_close", "inf"): lambda a: np.where(np.arange(a.size) == j, np.inf, a),
             ("slip_prev", "0"): lambda a: np.where(np.arange(a.size) == 0, 0.0, a),
             ("last_close", "-1"): lambda a: np.where(np.arange(a.size) == 0, -1.0, a)}
    for (key, what), edit in cases.items():
        path = dep.checkpoint(tmp_path / f"{key}-{what}")
        _tampered(path, key, edit)
        with pytest.raises(ql.DataError, match=f"array '{key}' holds .*NaN or a finite "
                                               "price >= 2.2e-308"):
            ql.Deployment.restore(path)
    for key, value, msg in (("slip_prev", 1e-6, "'slip_prev' disagrees"),
                            ("prev_close", 50.0, "'last_close' and 'prev_close' disagree")):
        path = dep.checkpoint(tmp_path / f"{key}-off")
        _tampered(path, key, lambda a: np.where(np.arange(a.size) == j, value, a))
        with pytest.raises(ql.DataError, match=msg):
            ql.Deployment.restore(path)
    back = ql.Deployment.restore(dep.checkpoint(tmp_path / "intact"))   # untouched: fine
    np.testing.assert_array_equal(back._slip_prev, dep._slip_prev)
