"""A deployment resumed from its checkpoint continues the run that wrote it (helper
"resume", session 45): what the resume is given must agree with what was saved."""
import json

import pytest

import quantlab as ql
from quantlab.live import Deployment


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A checkpoint of volatility_regime (window 10, lookback 20, fees 0.001) after 5
    bars of the bundled equities' last 12, and the first of those bars."""
    ds = ql.data.load("equities")
    start = ds.time.values[-12]
    ck = tmp_path_factory.mktemp("resume") / "ck"
    dep = ql.deploy("volatility_regime", {"window": 10, "lookback": 20},
                    history=ds.sel(time=ds.time < start).isel(time=slice(-80, None)),
                    fees=0.001)
    dep.replay(ds.sel(time=ds.time >= start).isel(time=slice(0, 5)))
    dep.checkpoint(ck)
    return ck, str(start)[:10]


@pytest.mark.parametrize("extra, named", [
    (["--set", "fees", "0.002"], "fees"),
    (["--set", "execution", "next_open"], "execution"),
    (["--set", "sl_stop", "0.05"], "sl_stop"),
    (["--params", "{params}"], "window"),
])
def test_cli_resume_with_other_options_or_parameters_is_refused(saved, tmp_path, capsys,
                                                                extra, named):
    """`quantlab deploy --checkpoint DIR` resumed with the checkpoint's own parameters and
    options whatever the command line said: `--set fees 0.002` over a run saved with
    fees 0.001 went on at 0.001, silently. Now a value given that differs from the
    saved one is refused (exit 2, before any bar, the folder untouched), naming it."""
    import shutil

    from quantlab import cli
    ck, start = tmp_path / "ck", saved[1]
    shutil.copytree(saved[0], ck)
    (tmp_path / "p.json").write_text(json.dumps({"window": 15, "lookback": 20}))
    extra = [e.format(params=tmp_path / "p.json") for e in extra]
    before = {p.name: p.stat().st_mtime_ns for p in ck.iterdir()}
    code = cli.main(["deploy", "volatility_regime", "--replay", "equities", "--start", start,
                     "--checkpoint", str(ck), "--every", "100", *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "cannot resume from --checkpoint" in err and f"{named}=" in err
    assert {p.name: p.stat().st_mtime_ns for p in ck.iterdir()} == before


def test_cli_resume_with_the_saved_or_no_options_continues(saved, tmp_path, capsys):
    """The same values, or none (they come from the checkpoint), resume."""
    import shutil

    from quantlab import cli
    ck, start = saved
    (tmp_path / "p.json").write_text(json.dumps({"params": {"window": 10},
                                                 "backtest": {"fees": 0.001}}))
    for i, extra in enumerate([[], ["--set", "fees", "0.001"], ["--params",
                                                                 str(tmp_path / "p.json")]]):
        shutil.copytree(ck, tmp_path / f"ck{i}")
        assert cli.main(["deploy", "volatility_regime", "--replay", "equities", "--start",
                         start, "--checkpoint", str(tmp_path / f"ck{i}"), "--every", "100",
                         *extra]) == 0, capsys.readouterr().err
        back = Deployment.restore(tmp_path / f"ck{i}")
        assert len(back.equity) == 12 and back.options.fees == 0.001


def test_cli_resume_of_a_feed_with_other_symbols_is_refused(saved, tmp_path, capsys):
    """--feed --symbols naming other assets than the checkpoint's universe was taken,
    and every bar then refused after the feed connected; now refused at once."""
    from quantlab import cli
    code = cli.main(["deploy", "volatility_regime", "--feed", "ws://127.0.0.1:1/x",
                     "--symbols", "AAPL,GOOG,IBM,XOM", "--checkpoint", str(saved[0])])
    err = capsys.readouterr().err
    assert code == 2 and "cannot resume from --checkpoint" in err and "universe=" in err


def _around_the_clock(n=40, seed=0):
    import numpy as np
    import pandas as pd
    import xarray as xr
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, 2)), 0))
    return xr.Dataset({"close": (("time", "asset"), c)},
                      coords={"time": pd.date_range("2024-01-01", periods=n, freq="D"),
                              "asset": ["X", "Y"]})


def test_deploy_without_history_does_not_guess_the_calendar_of_borrow_rate():
    """A deployment without history= annualised borrow_rate with 252 periods whatever
    its bars: on a 24/7 market's daily bars its equity was 1.5% off ql.backtest of the
    same bars (365) after 40 bars at borrow_rate=0.5, silently. It cannot tell the
    calendar before its first bars: borrow_rate without history= needs periods=; given
    periods= (or history=) it trades as the backtest."""
    import numpy as np
    ds = _around_the_clock()
    s = ql.strategies.get("volatility_regime", window=5, lookback=10)
    kw = dict(borrow_rate=0.5, max_leverage=2.0, group=True)
    with pytest.raises(ValueError, match="borrow_rate.*periods="):
        ql.deploy(s, **kw)
    ql.deploy(s, fees=0.001)        # no borrowing: the calendar changes nothing
    res = ql.backtest(ds, s.signal(ds), **kw)
    assert res.periods == 365 and len(res.orders) > 0
    for dep in (ql.deploy(s, periods=365, **kw).replay(ds.isel(time=slice(0, 1))),
                ql.deploy(s, history=ds.isel(time=slice(0, 1)), periods=365, **kw)):
        dep.replay(ds.isel(time=slice(1, None)))
        np.testing.assert_allclose(dep.equity.values.ravel(), res.equity.values[-len(dep.equity):],
                                   rtol=1e-12)


class _Panel(ql.strategies.Strategy):
    """The exposures of a given panel (a test double, not registered)."""

    name = "resume_panel"
    defaults = {"k": 0}
    param_space = {"k": [0]}
    SIG = None

    def _signal(self, ds, k):
        return self.SIG.sel(time=ds.time, asset=ds.asset)


def test_a_drained_account_s_cut_fee_reaches_the_deployment_s_orders(tmp_path, monkeypatch):
    """A forced exit whose fee took a portfolio's equity has that fee cut on a later bar
    (its other asset had no bar, then closes lower): ql.backtest's order carries the cut
    fee, a deployment's kept the fee of the bar it was placed (17,392.83 where the
    backtest's is 11,097.72 at seed 57), and so did a restored one. Now the deployment's record
    takes the fee the kernel's state holds for it, bar by bar and on restore."""
    import numpy as np
    from test_outofcore_stream import DRAIN, _drain_panel

    from quantlab import strategies
    monkeypatch.setitem(strategies._REGISTRY, _Panel.name, _Panel)   # restore finds it
    ds, sig = _drain_panel(seed=57)
    _Panel.SIG = sig.isel(p=0, drop=True)
    s, kw = _Panel(), dict(DRAIN, group=True)
    res = ql.backtest(ds, s.signal(ds).where(ds.time >= ds.time[1]), **kw)
    hist, bars = ds.isel(time=slice(0, 1)), ds.isel(time=slice(1, None))
    whole = ql.deploy(s, history=hist, **kw).replay(bars)
    want = res.orders.reset_index(drop=True)
    drained = want.time[want.reason == "drawdown"].iloc[0]
    k = int((bars.time <= drained).sum())       # the bars up to the forced exit's
    dep = ql.deploy(s, history=hist, **kw).replay(bars.isel(time=slice(0, k)))
    dep = Deployment.restore(dep.checkpoint(tmp_path / "ck"))   # its uncut fee saved
    dep = Deployment.restore(dep.replay(bars.isel(time=slice(k, None)))
                             .checkpoint(tmp_path / "ck"))      # cut since: a segment later
    for got in (whole.orders, dep.orders):
        got = got.reset_index(drop=True)
        assert len(got) == len(want) and (got.time.values == want.time.values).all()
        for k in ("size", "price", "fee"):
            np.testing.assert_allclose(got[k].values, want[k].values, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(dep.equity.values, whole.equity.values)
