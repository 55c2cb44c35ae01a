"""Session 51: a delisted (or long-halted) asset is not ranked on a stale price for ever.

The strategies forward-filled ``close`` without a limit, so an asset that stopped trading
kept the score of its frozen price: cross_sectional_momentum ranked it in a quantile
(and changed the other assets' signals) for as long as its stale momentum lasted.
Prices are now carried at most ``ql.data.CARRY_BARS`` (5) bars (``ql.data.carried``):
beyond that the asset leaves the cross-section and gets 0 (flat). A halt of at most
``CARRY_BARS`` bars is carried as before. The deployments (per-bar signals, trailing
windows, replay blocks, restored checkpoints) trade as the backtest of the same bars.
"""
import numpy as np
import pytest

import quantlab as ql
from quantlab.strategies import _live

C = ql.data.CARRY_BARS
D = 500                  # the bar the asset's data ends (delisted) or its halt begins


def _trending(ds, end, n=252):
    """The asset with the largest |return| over the ``n`` bars before ``end``."""
    c = ds["close"].transpose("time", "asset").values
    return int(np.nanargmax(np.abs(c[end - 1] / c[end - 1 - n] - 1)))


def _sp500(n_assets=8, bars=700):
    return ql.data.load("sp500_20").isel(time=slice(-bars, None), asset=slice(0, n_assets))


def _equities(bars=900):
    return ql.data.load().isel(time=slice(2370 - bars, 2370))   # all 4 listed


def _blank(ds, j, start, stop=None):
    """``ds`` with asset ``j`` without bars from ``start`` to ``stop`` (None: the end)."""
    ds = ds.copy(deep=True)
    for v in ds.data_vars:
        a = ds[v].transpose("time", "asset").values.copy()
        a[start:stop, j] = np.nan
        ds[v] = (("time", "asset"), a)
    return ds


def _signal(s, ds):
    return s.signal(ds, **s.default_inputs(ds)).transpose("time", "asset")


# name, data, params, first bar after D whose OTHER assets' signals depend on the
# delisted asset no more (the carry limit; windows over returns it still had: theirs)
CASES = [
    ("cross_sectional_momentum", _sp500, {}, C),
    ("cross_sectional_momentum", _sp500, {"lookback": 120, "skip": 5, "hold": 1}, C),
    ("cross_sectional_momentum", _sp500, {"lookback": 60, "skip": 0, "quantile": 0.5,
                                          "hold": 3}, C),
    ("sentiment_regime", _sp500, {"anchor_window": 126, "hold": 1, "herd_window": 63}, 64),
    ("factor_momentum", _equities, {"beta_window": 12, "lookback": 3}, 0),
    ("info_theory", lambda: _sp500(5), {"window": 60, "te_min": 0.01, "trend": 5}, 62),
    ("fractal_chaos", _equities, {"window": 60, "trend": 10}, 0),
    ("quantum", _equities, {"window": 40, "vol_window": 5}, 0),
]
IDS = [f"{c[0]}-{i}" for i, c in enumerate(CASES)]


@pytest.mark.parametrize("name, data, params, settle", CASES, ids=IDS)
def test_a_delisted_asset_leaves_the_cross_section_after_the_carry_limit(
        name, data, params, settle):
    """Past the carry limit the other assets' signals are those of the panel without
    the delisted asset (1e-12), and its own is 0: flat, not held on a frozen price.
    Before, over the 195 bars after the limit: momentum (lookback 120, hold 1) ranked
    it on its last price, ±1 on 168 bars, and 168 of the other 7 assets' 1,365 signals
    differed; sentiment_regime and factor_momentum kept it non-zero on every bar;
    info_theory and fractal_chaos gave NaN (hold: a position kept for ever), quantum
    traded its frozen window for 33 bars, then NaN."""
    base = data()
    j = _trending(base, D)
    s = ql.strategies.get(name, **params)
    got = _signal(s, _blank(base, j, D)).values
    without = _signal(s, base.drop_isel(asset=j)).values
    others = np.delete(got, j, axis=1)
    after = slice(D + max(C, settle), None)
    np.testing.assert_allclose(others[after], without[after], rtol=1e-12, atol=1e-12)
    own = got[D + C:, j]
    assert not np.isnan(own[:-1]).all()
    period = s.period          # rebalance bars: 0; between them NaN = hold (that 0)
    on = (np.arange(D + C, got.shape[0]) % period) == 0
    assert (own[on] == 0).all() and np.isnan(own[~on]).all()
    assert np.isfinite(without[after]).sum() > 50, "a comparison of NaNs tests nothing"


def test_momentum_ranked_the_delisted_asset_on_its_frozen_price_before():
    """The fault, in numbers: with the close forward-filled for ever, the delisted asset
    keeps a score and a quantile slot; carried at most CARRY_BARS bars it has none."""
    base = _sp500()
    j = _trending(base, D)
    s = ql.strategies.get("cross_sectional_momentum", lookback=120, skip=5, hold=1)
    score = s.diagnostics(_blank(base, j, D))["score"].transpose("time", "asset").values
    assert np.isfinite(score[D:D + C, j]).all()          # carried: still scored
    assert np.isnan(score[D + C:, j]).all()             # beyond: no score


@pytest.fixture
def unlimited_carry(monkeypatch):
    """Today's behaviour for a halt: the close carried without a limit (as ffill)."""
    def apply():
        monkeypatch.setattr(ql.data, "CARRY_BARS", 10 ** 9)
        monkeypatch.setattr(_live, "CARRY_BARS", 10 ** 9)
    return apply


@pytest.mark.parametrize("name, data, params, settle", CASES, ids=IDS)
def test_a_halt_of_at_most_carry_bars_is_carried_as_before(name, data, params, settle,
                                                           unlimited_carry):
    """A halt of CARRY_BARS bars: the same signals as an unlimited forward fill (the
    code before), for every asset; the live twin too."""
    base = data()
    j = _trending(base, D)
    ds = _blank(base, j, D, D + C)
    s = ql.strategies.get(name, **params)
    now = _signal(s, ds).values
    live = _feed(s.live(), ds)
    unlimited_carry()
    before = _signal(s, ds).values
    np.testing.assert_array_equal(now, before)
    assert _mismatches(live, before) == 0
    assert np.isfinite(now[D:]).sum() > 50, "a comparison of NaNs tests nothing"


def _feed(live, ds, start=0):
    vals = {v: ds[v].transpose("time", "asset").values for v in ds.data_vars}
    times = ds.time.values
    return np.array([live.update(i, times[i], {v: a[i] for v, a in vals.items()})
                     for i in range(start, ds.sizes["time"])])


def _mismatches(got, want) -> int:
    same = (np.isnan(got) & np.isnan(want)) | np.isclose(got, want, rtol=1e-9, atol=0)
    return int((~same).sum())


GAPS = {"delisted": (D, None), "halt_short": (D, D + C), "halt_long": (D, D + 40)}


@pytest.mark.parametrize("gap", list(GAPS))
@pytest.mark.parametrize("name, data, params, settle", CASES, ids=IDS)
def test_live_twin_equals_the_signal_across_a_delisting_and_halts(name, data, params,
                                                                  settle, gap):
    """The per-bar signal of a deployment, fed from bar 0, row by row (rtol 1e-9, the
    same NaN pattern): the carried closes and the 0 of an asset beyond the limit."""
    base = data()
    ds = _blank(base, _trending(base, D), *GAPS[gap])
    s = ql.strategies.get(name, **params)
    assert _mismatches(_feed(s.live(), ds), _signal(s, ds).values) == 0


# ---- deployments: replay, trailing windows, replay blocks, restored checkpoints
H = 380          # history bars; the replay from there crosses D
DEPLOYED = {
    "cross_sectional_momentum": {"lookback": 40, "skip": 5, "hold": 5},
    "sentiment_regime": {"anchor_window": 40, "hold": 3, "herd_window": 30},
    "quantum": {"window": 30, "vol_window": 5},
}


def _panel(gap, name):
    base = _sp500(6, 650) if name != "quantum" else _equities(650)
    return _blank(base, _trending(base, D, 120), *GAPS[gap])


def _backtest(s, ds, options):
    sig = _signal(s, ds)
    return ql.backtest(ds, sig.where(sig.time >= ds.time[H]), **options)


def _assert_same(dep, res, rtol):
    np.testing.assert_allclose(dep.equity.values, res.equity.isel(time=slice(H, None)).values,
                               rtol=rtol, atol=0)
    got, want = dep.orders.reset_index(drop=True), res.orders.reset_index(drop=True)
    assert len(got) == len(want)
    assert (got["time"].values == want["time"].values).all()
    assert (got["asset"].values == want["asset"].values).all()
    np.testing.assert_allclose(got["size"].values, want["size"].values, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("kind", ["per_bar", "window", "blocks"])
@pytest.mark.parametrize("gap", list(GAPS))
@pytest.mark.parametrize("name", list(DEPLOYED))
def test_a_deployment_across_a_delisting_trades_as_its_backtest(name, gap, kind,
                                                                 monkeypatch):
    """ql.deploy (its per-bar signal; the trailing window of a strategy without one,
    bar by bar and in replay blocks) trades as ql.backtest of the same bars. The
    trailing window places the close carried into it ``_lead`` bars before its start
    (before: on the bar just before it, so a close from before a 40-bar halt was
    carried 5 bars past the start, where the full history's had ended: momentum's and
    sentiment_regime's windows left the backtest by up to 3,443 in equity, 3.4%)."""
    ds = _panel(gap, name)
    s = ql.strategies.get(name, **DEPLOYED[name])
    if kind != "per_bar":
        monkeypatch.setattr(type(s), "live", lambda self, **inputs: None)
    options = {"fees": 0.0005, "group": True}
    dep = ql.deploy(s, history=ds.isel(time=slice(0, H)), **options)
    dep.replay(ds.isel(time=slice(H, None)), block=16 if kind == "blocks" else 1)
    res = _backtest(s, ds, options)
    # quantum's per-bar tunnelling matches its signal to 1e-9 (the LiveSignal contract)
    _assert_same(dep, res, 1e-12 if kind == "per_bar" and name != "quantum" else 1e-9)
    assert len(res.orders) > 20


@pytest.mark.parametrize("kind", ["per_bar", "window"])
@pytest.mark.parametrize("gap", ["delisted", "halt_long"])
@pytest.mark.parametrize("name", list(DEPLOYED))
def test_a_deployment_restored_in_and_after_the_gap_continues_bit_for_bit(
        name, gap, kind, monkeypatch, tmp_path):
    """Checkpoints inside the carry limit, just past it, and long after (the buffer then
    holds no close of the asset), restored and continued: the uninterrupted run."""
    ds = _panel(gap, name)
    s = ql.strategies.get(name, **DEPLOYED[name])
    if kind != "per_bar":
        monkeypatch.setattr(type(s), "live", lambda self, **inputs: None)
    hist = ds.isel(time=slice(0, H))
    whole = ql.deploy(s, history=hist).replay(ds.isel(time=slice(H, None)))
    for cut in (D + 2, D + C + 1, D + 150):
        part = ql.deploy(s, history=hist).replay(ds.isel(time=slice(H, cut)))
        back = ql.Deployment.restore(part.checkpoint(tmp_path / f"{cut}"))
        back.replay(ds.isel(time=slice(cut, None)))
        np.testing.assert_array_equal(back.equity.values, whole.equity.values)
        assert back.orders.equals(whole.orders)
    if gap == "delisted":
        assert len(whole._buf) < 150    # the last cut's buffer holds no close of it


def test_carried_and_its_live_twin_agree_and_detect_regimes_uses_it():
    """One rule: ``ql.data.carried`` (the strategies, detect_regimes) and the per-bar
    ``Returns.carried``/``gone`` of the deployments."""
    x = np.array([1.0, np.nan, 2.0] + [np.nan] * 7 + [3.0, np.nan])
    da = ql.data.carried(__import__("xarray").DataArray(x, dims="time"))
    r = _live.Returns()
    rows = []
    for v in x:
        r.push(np.array([v]))
        rows.append((r.carried[0], r.gone[0]))
    np.testing.assert_array_equal([c for c, _ in rows], da.values)
    assert [g for _, g in rows] == [False] * 8 + [True, True, False, False]
    from quantlab import ensemble
    assert ensemble.CARRY_BARS == C == 5
