"""Research -> optimise -> deploy -> monitor hand-offs (session 57 probe).

Each test names the symptom it guards against (what the old code did)."""
import numpy as np
import pytest

import quantlab as ql


@pytest.fixture(scope="module")
def ds():
    return ql.data.load()


# ---- end_date "2009" is the whole of 2009, as ds.sel(time=slice(..., "2009")) reads it
def test_optimiser_end_date_year_scores_the_whole_year(ds):
    # before: end_date="2009" was 2009-01-01, so "optimise on 2001-2009" (the user guide's
    # example) scored 2001-2008 and its backtest "2010".."2013" stopped on 2013-01-01
    kw = dict(optimization_method="grid", n_trials=2, fees=0.001, progress=False)
    bounds = {"window": (10, 21)}
    short = ql.optimize.optimize_strategy_parameters(
        "volatility_regime", bounds, ds, start_date="2008", end_date="2009", **kw)
    full = ql.optimize.optimize_strategy_parameters(
        "volatility_regime", bounds, ds, start_date="2008-01-01", end_date="2009-12-31", **kw)
    assert short.trial_returns.time.values[-1] == ds.sel(time="2009").time.values[-1]
    assert short.trials.equals(full.trials)
    oos = short.backtest(ds, "2010", "2013")
    assert oos.equity.time.values[-1] == ds.time.values[-1]       # data ends 2013-03-01
    june = short.backtest(ds, "2010-06", "2010-06")
    np.testing.assert_array_equal(june.equity.time.values, ds.sel(time="2010-06").time.values)


def test_optimiser_end_date_outside_data_still_refused(ds):
    with pytest.raises(ValueError, match="end_date 2014-01-01 00:00:00 is outside"):
        ql.optimize.optimize_strategy_parameters(
            "volatility_regime", {"window": (10, 21)}, ds, start_date="2010",
            end_date="2014", optimization_method="grid", n_trials=2, progress=False)
    with pytest.raises(ValueError, match="before start_date"):
        ql.optimize.optimize_strategy_parameters(
            "volatility_regime", {"window": (10, 21)}, ds, start_date="2010-06",
            end_date="2010-05", optimization_method="grid", n_trials=2, progress=False)


def test_research_analysis_end_year(ds):
    # before: run_research_analysis(end="2009") analysed up to 2009-01-01
    small = ds.isel(asset=[0])
    sym = str(small.asset.values[0])
    a = ql.run_research_analysis([sym], "volatility", data=small, start="2008", end="2009",
                                 progress=False)
    b = ql.run_research_analysis([sym], "volatility", data=small, start="2008-01-01",
                                 end="2009-12-31", progress=False)
    ra, rb = a[sym]["volatility_regime"], b[sym]["volatility_regime"]
    assert ra["signals"].index[-1] == ds.sel(time="2009").time.values[-1]
    assert ra["signals"].equals(rb["signals"])
    assert {k: v for k, v in ra.items() if k != "signals"} == \
        {k: v for k, v in rb.items() if k != "signals"}


# ---- a sweep's best combination, read off the picked result's coordinates
def test_deploy_takes_params_read_off_a_sweep_selection(ds):
    # before: res.sel(window=21).equity["window"].values is array(21), and deploy refused
    # it ("parameter 'window' must be an integer, got array(21)"), as the 0-d DataArray
    sig = ql.strategies.get("volatility_regime", window=[10, 21], lookback=40,
                            threshold=[0.7, 0.9]).signal(ds.isel(time=slice(0, 200)))
    res = ql.backtest(ds.isel(time=slice(0, 200)), sig, group=True, fees=0.001)
    one = res.sel(window=21, threshold=0.7)
    hist, bars = ds.isel(time=slice(100, 200)), ds.isel(time=slice(200, 230))
    want = ql.deploy("volatility_regime", {"window": 21, "lookback": 40, "threshold": 0.7},
                     history=hist, fees=0.001).replay(bars)
    for picked in ({k: one.equity[k].values for k in ("window", "threshold")},
                   {k: one.equity[k] for k in ("window", "threshold")}):
        dep = ql.deploy("volatility_regime", {**picked, "lookback": 40}, history=hist,
                        fees=0.001).replay(bars)
        assert dep.strategy.params == want.strategy.params
        assert type(dep.strategy.params["window"]) is int
        np.testing.assert_array_equal(dep.equity.values, want.equity.values)
    with pytest.raises(ValueError, match="lists for \\['window'\\]"):   # a 1-d one: a grid
        ql.deploy("volatility_regime", {"window": res.equity["window"].values})


def test_numpy_scalars_floats_and_json_params_deploy_alike(ds):
    import json
    hist, bars = ds.isel(time=slice(100, 200)), ds.isel(time=slice(200, 230))
    base = {"window": 21, "lookback": 40, "threshold": 0.7}
    want = ql.deploy("volatility_regime", base, history=hist, fees=0.001).replay(bars)
    for p in ({"window": np.int64(21), "lookback": np.int32(40), "threshold": np.float64(0.7)},
              {"window": 21.0, "lookback": 40.0, "threshold": 0.7},
              json.loads(json.dumps(base))):
        dep = ql.deploy("volatility_regime", p, history=hist, fees=0.001).replay(bars)
        np.testing.assert_array_equal(dep.equity.values, want.equity.values)
    with pytest.raises(ValueError, match="parameter 'window' must be an integer"):
        ql.deploy("volatility_regime", {"window": 21.5})


def test_deploy_a_walk_forward_run_says_which_fold(ds):
    # before: "strategy must be a registry name, a Strategy or a Strategy class, got
    # WalkForwardResult", with no word of wfr.results[-1], the last fold's search
    wf = ql.optimize.WalkForwardOptimizer(200, 50, 50, optimization_method="grid", n_trials=2,
                                          progress=False)
    wfr = wf.run("volatility_regime", {"window": (5, 20)}, ds.isel(time=slice(0, 300)),
                 fees=0.001)
    with pytest.raises(TypeError, match=r"ql.deploy\(wfr.results\[-1\]\)"):
        ql.deploy(wfr)
    dep = ql.deploy(wfr.results[-1])
    assert dep.strategy.params["window"] == int(wfr.folds["window"].iloc[-1])
    assert float(dep.options.fees) == 0.001 and dep.options.group


def test_dashboard_refuses_a_backtest_of_other_accounts(ds):
    # before: a group=False backtest (4 accounts of 100,000) beside a group=True
    # deployment (one of 100,000) drew as a 300,000 'difference' between two runs
    s = ql.strategies.get("volatility_regime", window=10, lookback=40)
    hist, bars = ds.isel(time=slice(0, 100)), ds.isel(time=slice(100, 130))
    sig = s.signal(ds.isel(time=slice(0, 130))).sel(time=bars.time)
    dep = ql.deploy(s, history=hist, group=True, fees=0.001).replay(bars, echo=None)
    same = ql.backtest(bars, sig, group=True, fees=0.001)
    data = ql.plots._deployment_data(dep, same)
    np.testing.assert_allclose(data["backtest"]["difference"], 0, atol=1e-9)
    for other in (ql.backtest(bars, sig, group=False, fees=0.001),
                  ql.backtest(bars, sig, group=True, fees=0.001, init_cash=1e6)):
        with pytest.raises(ValueError, match="the deployment 100,000 and group=True"):
            dep.plot(backtest=other)


@pytest.mark.parametrize("group", [True, False])
@pytest.mark.parametrize("name,params", [
    ("volatility_regime", {"window": 10, "lookback": 40}),
    ("cross_sectional_momentum", {"lookback": 40, "skip": 5, "hold": 7}),
    ("spc", {"span": 30, "h": 2.0})])
def test_deployment_after_research_trades_as_the_backtest(ds, name, params, group):
    # the guide's hand-off: history = the research bars (from the data's first bar, so a
    # period > 1 strategy rebalances on the backtest's bars), the costs as researched
    kw = dict(fees=0.001, slippage=0.0005, fixed_fees=1.0, group=group)
    data = ds.isel(time=slice(0, 260))
    s = ql.strategies.get(name, **params)
    hist, bars = data.isel(time=slice(0, 200)), data.isel(time=slice(200, None))
    bt = ql.backtest(bars, s.signal(data).sel(time=bars.time), **kw)
    dep = ql.deploy(name, params, history=hist, **kw).replay(bars, echo=None)
    a, b = dep.orders, bt.orders
    assert len(a) == len(b) > 0
    assert (a["time"].values == b["time"].values).all()
    assert (a["asset"].astype(str).values == b["asset"].astype(str).values).all()
    np.testing.assert_allclose(a["size"], b["size"], rtol=1e-9)
    np.testing.assert_allclose(a["price"], b["price"], rtol=1e-9)
    np.testing.assert_allclose(dep.equity.values, bt.equity.values, rtol=1e-9)
    if group:   # the monitor's drawdown is the metrics' (the initial cash a peak)
        dd = ql.plots._deployment_data(dep, bt)["equity"]["drawdown"]
        assert np.nanmin(dd) == pytest.approx(float(bt.metrics()["max_drawdown"]), abs=1e-12)


def test_options_read_back_from_json_deploy_alike(ds, tmp_path):
    # before: to_dict() writes the slippage model as a dict (as a checkpoint does), and
    # ql.deploy(**options) or `quantlab deploy --params` {"backtest": ...} refused it:
    # "slippage must be a real number, got {'model': 'volume_based', ...}"
    import json

    from quantlab.cli import main
    opts = ql.BacktestOptions(fees=0.001, slippage=ql.Slippage("volume_based"), group=True)
    back = json.loads(json.dumps(opts.to_dict()))
    assert ql.BacktestOptions(**back).to_dict() == opts.to_dict()
    small = ds.isel(time=slice(0, 130))
    hist, bars = small.isel(time=slice(0, 100)), small.isel(time=slice(100, None))
    p = {"window": 10, "lookback": 40}
    want = ql.deploy("volatility_regime", p, history=hist, fees=0.001,
                     slippage=ql.Slippage("volume_based"), group=True).replay(bars, echo=None)
    got = ql.deploy("volatility_regime", p, history=hist, **back).replay(bars, echo=None)
    np.testing.assert_array_equal(got.equity.values, want.equity.values)
    f = tmp_path / "best.json"
    f.write_text(json.dumps({"params": p, "backtest": back}))
    assert main(["deploy", "volatility_regime", "--params", str(f), "--replay", "equities",
                 "--start", "2013-02-25", "--every", "1000"]) == 0
    with pytest.raises(TypeError, match="slippage .*unexpected keyword argument 'speed'"):
        ql.backtest(bars, bars["close"] * 0 + 1, slippage={"model": "fixed", "speed": 1})


def test_deploy_warns_when_history_rebalances_on_other_bars(ds):
    # before: history = the warmup + period bars before the first traded one (notebook
    # 12's recipe) started 2201 bars into the research data, not a multiple of 21: the
    # deployment rebalanced on other bars than opt.backtest, silently (18 orders vs 15)
    data = ds.isel(time=slice(0, 330))
    opt = ql.optimize.optimize_strategy_parameters(
        "cross_sectional_momentum", {"lookback": (40, 60)}, data, start_date=data.time.values[150],
        end_date=data.time.values[299], optimization_method="grid", n_trials=2, fees=0.001,
        progress=False)
    s = opt.strategy
    need = s.warmup + s.period
    off = (300 - need) % s.period
    assert off                                    # the recipe's start is off the phase
    bars = data.isel(time=slice(300, None))
    bt = opt.backtest(data, data.time.values[300], None, **opt.backtest_options)
    with pytest.warns(UserWarning, match=f"rebalances every 21 bars.*Start history {off} "):
        bad = ql.deploy(opt, history=data.isel(time=slice(300 - need, 300)))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        good = ql.deploy(opt, history=data.isel(time=slice(300 - need - off, 300)))
        ql.deploy(opt, history=data.isel(time=slice(0, 300)))
    good.replay(bars, echo=None)
    bad.replay(bars, echo=None)
    np.testing.assert_allclose(good.equity.values, bt.equity.values, rtol=1e-9)
    assert not np.allclose(bad.equity.values, bt.equity.values, rtol=1e-9)
