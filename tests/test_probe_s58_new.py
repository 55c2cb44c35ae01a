"""Session 58 probe: hostile inputs on the day's new surface (Deployment.result,
BacktestResult.as_portfolio/.options, BacktestOptions.differences, deployment_html,
quantlab deploy --report/--params, OptimizationResult.save)."""
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import quantlab as ql

VR = {"window": 5, "lookback": 20}


@pytest.fixture(scope="module")
def ds():
    return ql.data.load().isel(time=slice(0, 40))


@pytest.fixture(scope="module")
def dep(ds):
    d = ql.deploy("volatility_regime", VR, history=ds.isel(time=slice(0, 30)))
    return d.replay(ds.isel(time=slice(30, 40)), echo=None)


@pytest.mark.parametrize("stop", ["sl_stop", "tp_stop", "sl_trail"])
def test_a_nan_stop_is_off_as_none_is(stop):
    # before: NaN (the constructor's "off") differed from None and even from NaN
    # (nan != nan): the dashboard refused a backtest trading as the deployment, and
    # opt.save wrote a bare NaN, which is not JSON
    off = ql.BacktestOptions(**{stop: np.nan})
    assert off.differences(ql.BacktestOptions()) == {}
    assert off.differences(ql.BacktestOptions(**{stop: xr.DataArray(np.nan)})) == {}
    assert off.to_dict()[stop] is None
    json.loads(json.dumps(off.to_dict()), parse_constant=pytest.fail)
    assert ql.BacktestOptions(**{stop: 0.05}).differences(off) == {stop: (0.05, None)}


def test_the_dashboard_takes_a_backtest_selected_at_a_nan_stop(ds, dep):
    s = ql.strategies.get("volatility_regime", **VR)
    bars = ds.isel(time=slice(30, 40))
    sig = s.signal(ds).sel(time=bars.time)
    stops = xr.DataArray([np.nan, 0.05], dims="stop", coords={"stop": [0, 1]})
    bt = ql.backtest(bars, sig, sl_stop=stops).sel(stop=0)
    ql.plots.deployment_dashboard(dep, bt)   # was: "sl_stop nan (the deployment's: None)"


def _deploy_args(*extra):
    return ["deploy", "volatility_regime", "--replay", "equities", "--start", "2013-02-26",
            "--every", "1000", *extra]


def test_cli_refuses_a_report_in_or_holding_the_checkpoint(tmp_path, capsys):
    # before: --report CK/deployment.json overwrote the checkpoint's manifest with the
    # page (exit 0; the checkpoint no longer resumed); --report CK (or a folder holding
    # CK) failed at its first write, a minute into the run, and stopped the trading
    from quantlab import cli
    ck = tmp_path / "ck"
    for report, at in ((ck / "deployment.json", ck), (ck, ck), (ck / "pages" / "p.html", ck),
                       (tmp_path / "outer", tmp_path / "outer" / "ck")):
        assert cli.main(_deploy_args("--checkpoint", str(at), "--report", str(report))) == 2
        assert "--checkpoint" in capsys.readouterr().err
        assert not (at / "deployment.json").exists()
    link = tmp_path / "link.html"
    link.symlink_to(ck / "deployment.json")
    assert cli.main(_deploy_args("--checkpoint", str(ck), "--report", str(link))) == 2
    assert cli.main(_deploy_args("--checkpoint", str(ck),
                                 "--report", str(tmp_path / "page é.html"))) == 0
    capsys.readouterr()
    json.loads((ck / "deployment.json").read_text())   # still the checkpoint's manifest


def test_cli_refuses_a_report_whose_folder_cannot_be_made(tmp_path, capsys):
    # before: found at its first write (a minute or a whole run later), after trading
    from quantlab import cli
    (tmp_path / "file").write_text("")
    assert cli.main(_deploy_args("--report", str(tmp_path / "file" / "sub" / "p.html"))) == 2
    assert "cannot make its folder" in capsys.readouterr().err


def test_cli_trades_on_when_a_report_write_fails_midway(tmp_path, capsys, monkeypatch):
    # before: a failed write as bars came (a full disk, a folder removed) stopped the
    # deployment with exit 1 and a message not naming --report
    from quantlab import cli
    page = tmp_path / "p.html"
    calls = []

    def write(dep, path):
        calls.append(len(dep.equity["time"]))
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        cli.suite._atomic_write(Path(path), "page")

    monkeypatch.setattr(cli, "_write_report", write)
    monkeypatch.setattr(cli, "REPORT_SECONDS", 0.0)
    assert cli.main(_deploy_args("--report", str(page))) == 0
    err = capsys.readouterr().err
    assert "cannot write --report" in err and "trading on" in err
    assert calls[0] == 1 and calls[-1] > 1 and page.read_text() == "page"


@pytest.mark.parametrize("saved, said", [
    ({"strategy": "no_such_strategy", "params": {}}, "holds the parameters of 'no_such_strategy'"),
    ({"strategy": "volatility_regime", "backtest": {"fees": 0.001}}, 'no "params"'),
])
def test_cli_names_the_params_file_of_a_hand_edited_save(tmp_path, capsys, saved, said):
    # before: "unknown strategy 'no_such_strategy'. Available: ..." for a valid STRATEGY
    # argument, the file unnamed; a save with its "params" deleted read as parameters
    # named "strategy" and "backtest" ("unknown parameter(s) ['backtest', 'strategy']")
    from quantlab import cli
    f = tmp_path / "best.json"
    f.write_text(json.dumps(saved))
    assert cli.main(_deploy_args("--params", str(f))) == 2
    err = capsys.readouterr().err
    assert f"--params {f}" in err and said in err


def test_risk_limits_apply_an_integer_target_as_floats():
    # before: the limits wrote into a copy of the target's own dtype: an int target
    # clipped to max_position 0.3 became 0 (the rejection said 0.3), and a rejected
    # max_order_value raised "cannot convert float NaN to integer"
    lim = ql.live.RiskLimits(max_position=0.3)
    target, rej = lim.apply(np.array([1, -1]), np.zeros(2), np.array([10., 20.]), 1e5, False)
    assert target.tolist() == [0.3, -0.3] and [r[3] for r in rej] == [0.3, -0.3]
    target, _ = ql.live.RiskLimits(max_order_value=1_000).apply(
        [1, 0], np.zeros(2), np.array([10., 20.]), 1e5, False)
    assert np.isnan(target[0]) and target[1] == 0


@pytest.mark.parametrize("bad", [
    {"held": np.zeros(3)}, {"price": np.ones(1)}, {"equity": np.ones(3)},
    {"held": np.zeros(1)},
])
def test_risk_limits_apply_refuses_arrays_of_another_length(bad):
    # before: a length-1 held/price broadcast over every asset (their orders valued
    # from another asset's numbers); others raised numpy's broadcast error
    args = {"held": np.zeros(2), "price": np.array([10., 20.]), "equity": 1e5, **bad}
    with pytest.raises(ValueError, match=f"{next(iter(bad))} has"):
        ql.live.RiskLimits(max_order_value=30_000).apply(
            np.array([0.5, 0.5]), args["held"], args["price"], args["equity"], False)
