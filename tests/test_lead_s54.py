"""Session 54 (lead): an account a forced close empties holds exactly 0, not rounding dust.

A margin call, stop or drawdown exit whose fees are capped at the equity left (the
account has nothing more) left its cash at +-1e-13 from the rounding of the closes'
cash flows. At +1e-13 a margin-called account was not closed: it went on placing orders
on that dust (a ``fixed_fee`` skip record on every later bar), and its returns read 0
(counted by the Sharpe ratio, the volatility, the win rate) where an account at exactly 0
has 0/0 (NaN, skipped): which of the two a run got depended on the CPU's rounding.
"""
import numpy as np
import pytest

import quantlab as ql
from panels import ohlcv_panel

# (options, what empties the account): fixed fees of 500 on 5,000 or 2,000 of cash
CASES = [
    (dict(fixed_fees=500.0, init_cash=5_000.0, group=True, max_leverage=2.0), "margin_call"),
    (dict(fixed_fees=500.0, init_cash=5_000.0, group=True, max_leverage=3.0,
          maintenance_margin=0.3), "margin_call"),
    (dict(fixed_fees=300.0, init_cash=2_000.0, group=True, dd_limit=0.1), "drawdown"),
    (dict(fixed_fees=900.0, init_cash=5_000.0, group=False, sl_stop=0.01), "stop"),
]


def _runs(kw):
    for seed in range(40):
        ds, sig = ohlcv_panel(seed, n=36, m=2, n_params=2, fraction=0.4)
        yield seed, ds, sig, ql.backtest(ds, sig, **kw)


@pytest.mark.parametrize("kw, why", CASES)
def test_an_emptied_account_holds_exactly_zero_and_places_no_more_orders(kw, why):
    emptied = 0
    for seed, _, _, res in _runs(kw):
        eq = res.equity.values.reshape(len(res.equity.time), -1)
        cash = res.cash.values.reshape(eq.shape)
        flat = (res.positions.values.reshape(len(eq), res.positions.sizes["asset"], -1)
                == 0).all(axis=1) if kw["group"] else (
            res.positions.values.reshape(eq.shape) == 0)
        # a flat account within rounding of 0 is exactly 0 (no dust of either sign)
        near = flat & (np.abs(eq) < 1e-6)
        assert (eq[near] == 0).all() and (cash[near] == 0).all(), (seed, eq[near])
        emptied += near[-1].sum()
        # no order after the bar an account first reached 0 while flat
        orders = res.orders_frame
        cols = (orders["p"].to_numpy() if kw["group"] else
                orders["col"].to_numpy())
        for a in np.nonzero(near.any(axis=0))[0]:
            first = int(np.argmax(near[:, a]))
            assert not (orders["t"].to_numpy()[cols == a] > first).any(), (seed, a)
            # and its returns after it are 0/0, skipped by the metrics
            r = res.returns.values.reshape(eq.shape)[first + 1:, a]
            assert np.isnan(r).all(), (seed, a, r)
    assert emptied >= 3   # the cases do empty accounts (11-40 per case here)


@pytest.mark.parametrize("kw, why", CASES)
def test_the_fees_take_the_dust_so_cash_still_balances_the_orders(kw, why):
    """The residue goes into the capped fee (it took all there was): the cash is still
    the initial cash less every order's cost and fee, and streamed runs (whose drain
    record may have gone out with an earlier chunk) and metrics-only runs agree."""
    for seed, ds, sig, res in _runs(kw):
        if seed % 4:
            continue
        o = res.orders_frame
        key = "p" if kw["group"] else "col"
        spent = (o["size"] * o["price"] + o["fee"]).groupby(o[key]).sum()
        last = res.cash.values.reshape(len(res.cash.time), -1)[-1]
        for a, s in spent.items():
            a = int(a) if kw["group"] else int(a)
            np.testing.assert_allclose(last[a], kw["init_cash"] - s, rtol=0,
                                       atol=1e-9 * kw["init_cash"])
        streamed = ql.backtest(ds.chunk(time=7), sig, **kw)
        np.testing.assert_array_equal(streamed.equity.values, res.equity.values)
        np.testing.assert_allclose(streamed.orders_frame["fee"].to_numpy(),
                                   o["fee"].to_numpy(), rtol=1e-15, atol=0)
        m = ql.backtest(ds, sig, metrics_only=("fees_paid", "sharpe_ratio"), **kw)
        full = res.metrics()
        for k in ("fees_paid", "sharpe_ratio"):
            np.testing.assert_allclose(m[k].values, full[k].values, rtol=1e-12, err_msg=k)


def test_a_checkpoint_is_on_the_disk_before_it_replaces_the_one_before(tmp_path,
                                                                       monkeypatch):
    """Each file of a checkpoint is fsynced before its rename (a power cut after the
    rename could leave the name with no data on ext4/xfs, the previous checkpoint
    already replaced), and the folder after the renames; the checkpoint still
    restores."""
    import os

    from quantlab import live

    ds = ql.data.load().isel(time=slice(0, 300))
    dep = ql.deploy("volatility_regime", history=ds.isel(time=slice(0, 280)))
    dep.replay(ds.isel(time=slice(280, 290)))
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(a, b):
        events.append(("replace", str(a)))
        return real_replace(a, b)

    monkeypatch.setattr(live.os, "fsync", fsync)
    monkeypatch.setattr(live.os, "replace", replace)
    for i in range(2):   # the whole first write, then an appended segment
        events.clear()
        dep.checkpoint(tmp_path / "ck")
        renamed = [p for what, p in events if what == "replace"]
        assert len(renamed) == 2 and renamed[1].endswith("deployment.json.tmp")
        for p in renamed:   # synced, then renamed
            assert events.index(("fsync", p)) < events.index(("replace", p))
        assert events[-1] == ("fsync", str(tmp_path / "ck"))
        dep.replay(ds.isel(time=slice(290 + i, 291 + i)))
    monkeypatch.undo()
    back = ql.Deployment.restore(tmp_path / "ck")
    assert len(back.equity) == len(dep.equity) - 1
