"""Monitoring a deployment: the dashboard (plots.deployment_dashboard / Deployment.plot)
and AlertMonitor on a ql.Deployment (it refused anything but a TickEngine)."""
import numpy as np
import pytest
from bokeh.embed import file_html
from bokeh.models import ColumnDataSource
from bokeh.resources import INLINE

import quantlab as ql

HISTORY, REPLAY = 300, 40
PARAMS = {"window": 15}
OPTIONS = {"fees": 0.001}


@pytest.fixture(scope="module")
def run():
    """A deployment with fills and risk rejections, and the backtest of the same bars."""
    ds = ql.data.load().isel(time=slice(0, HISTORY + REPLAY))
    hist, bars = ds.isel(time=slice(0, HISTORY)), ds.isel(time=slice(HISTORY, None))
    dep = ql.deploy("volatility_regime", PARAMS, history=hist, risk={"max_position": 0.3},
                    **OPTIONS)
    dep.replay(bars)
    s = ql.strategies.get("volatility_regime", **PARAMS)
    # the backtest gets the deployment's targets (after its risk limits): same bars, same
    # accounting, so the same equity
    res = ql.backtest(bars, dep.targets, **OPTIONS)
    return dep, res, s


def _sources(layout) -> dict:
    return {m.name: m.data for m in layout.select({"type": ColumnDataSource})}


def test_deployment_dashboard_draws_every_panel_with_data(run):
    dep, res, _ = run
    assert len(dep.orders) and len(dep.rejections)      # the fixture exercises every panel
    src = _sources(ql.plots.deployment_dashboard(dep, backtest=res))
    eq = dep.equity.sum("asset").values
    np.testing.assert_array_equal(src["deployment.equity"]["equity"], eq)
    np.testing.assert_allclose(src["deployment.equity"]["drawdown"],
                               eq / np.maximum.accumulate(np.fmax(eq, dep.equity_start())) - 1)
    np.testing.assert_allclose(src["deployment.backtest"]["equity"],
                               res.equity.sum("asset").values, rtol=1e-9)
    assert np.abs(src["deployment.backtest"]["difference"]).max() < 1e-6 * eq.max()
    o = dep.orders
    assert len(src["deployment.buy"]["time"]) == (o["size"] > 0).sum()
    assert len(src["deployment.sell"]["time"]) == (o["size"] < 0).sum()
    np.testing.assert_array_equal(src["deployment.buy"]["price"], o.loc[o["size"] > 0, "price"])
    counts = dep.rejections["reason"].value_counts()
    assert dict(zip(src["deployment.rejections"]["reason"],
                    src["deployment.rejections"]["count"])) == counts.to_dict()
    np.testing.assert_allclose(src["deployment.latency"]["ms"], dep.latency.to_numpy() * 1e3)


def test_deployment_dashboard_is_static_html_with_its_data(run):
    dep, res, _ = run
    html = file_html(ql.plots.deployment_dashboard(dep, backtest=res), INLINE, "deployment")
    assert "max_position" in html and "rejections by reason" in html
    assert "fills (price)" in html and "backtest, same bars" in html


def test_deployment_plot_returns_the_dashboard(run):
    dep, _, _ = run
    src = _sources(dep.plot())
    assert set(src) == {"deployment.equity", "deployment.buy", "deployment.sell",
                        "deployment.rejections", "deployment.latency",
                        "deployment.summary"}   # no backtest given
    assert len(src["deployment.equity"]["time"]) == REPLAY


def test_deployment_dashboard_before_any_bar_draws_empty_panels():
    src = _sources(ql.deploy("volatility_regime", PARAMS).plot())
    assert len(src["deployment.equity"]["time"]) == 0
    assert src["deployment.rejections"] == {"reason": ["none"], "count": [0]}


def test_deployment_dashboard_refuses_what_it_cannot_draw(run):
    dep, res, s = run
    with pytest.raises(TypeError, match="draws a ql.Deployment, got TickEngine"):
        ql.plots.deployment_dashboard(ql.engine.TickEngine())
    with pytest.raises(TypeError, match="backtest is a BacktestResult"):
        ql.plots.deployment_dashboard(dep, backtest=dep.equity.values)
    ds = ql.data.load().isel(time=slice(HISTORY, HISTORY + REPLAY))
    grid = ql.backtest(ds, ql.strategies.get("volatility_regime", window=[10, 15]).signal(ds))
    with pytest.raises(ValueError, match="parameter dims"):
        ql.plots.deployment_dashboard(dep, backtest=grid)


def test_alert_monitor_watches_a_deployment(run):
    """AlertMonitor refused a Deployment ("watches a TickEngine"); its rules now read the
    deployment's statistics, equal to hand computations from its records."""
    dep, _, _ = run
    eq = dep.equity.sum("asset").values
    drawdown = max(np.maximum.accumulate(eq)[-1], dep.options.init_cash * 4) - eq[-1]
    n_ord, n_rej = len(dep.orders), len(dep.rejections)
    p99 = np.percentile(dep.latency.to_numpy() * 1e6, 99)
    mon = ql.engine.AlertMonitor(dep, {"drawdown": 0.0, "rejection_rate": 0.0,
                                       "p99_latency_us": 0.0}, sinks=[])
    got = {a["rule"]: a["value"] for a in mon.check()}
    assert got["drawdown"] == pytest.approx(drawdown, rel=1e-12)
    assert got["rejection_rate"] == pytest.approx(n_rej / (n_ord + n_rej))
    assert got["p99_latency_us"] == pytest.approx(p99)
    quiet = ql.engine.AlertMonitor(dep, {"drawdown": drawdown + 1,
                                         "rejection_rate": 1.0, "p99_latency_us": np.inf},
                                   sinks=[])
    assert quiet.check() == []


def test_seed_alert_names_work_on_a_deployment(run):
    dep, _, _ = run
    seen = []
    seed = ql.engine.AlertMonitor(dep, {"max_latency_us": 0.0, "max_error_rate": 0.0,
                                        "min_success_rate": 1.0}, sinks=[seen.append])
    ours = ql.engine.AlertMonitor(dep, {"p99_latency_us": 0.0}, sinks=[])
    alerts = seed.check()
    # bad bars raise instead of being counted: error rate 0, success rate 1, no alert
    assert [a["rule"] for a in alerts] == ["max_latency_us"] and seen == alerts
    assert alerts[0]["value"] == ours.check()[0]["value"]


def test_alert_monitor_on_a_deployment_before_its_first_bar_is_quiet():
    dep = ql.deploy("volatility_regime", PARAMS)
    assert ql.engine.AlertMonitor(dep, {"drawdown": 0.0, "rejection_rate": 0.0},
                                  sinks=[]).check() == []


def test_alert_monitor_still_refuses_other_objects():
    with pytest.raises(TypeError, match="watches a TickEngine or a ql.Deployment, got dict"):
        ql.engine.AlertMonitor({}, {"drawdown": 1})


def test_deployment_dashboard_of_one_group_account_compares_with_its_backtest():
    """group=True: one account, equity (time,) for both the deployment and the backtest."""
    ds = ql.data.load().isel(time=slice(0, HISTORY + 5))
    hist, bars = ds.isel(time=slice(0, HISTORY)), ds.isel(time=slice(HISTORY, None))
    dep = ql.deploy("volatility_regime", PARAMS, history=hist, group=True,
                    execution="next_open", **OPTIONS)
    dep.replay(bars)
    res = ql.backtest(bars, dep.targets, group=True, execution="next_open", **OPTIONS)
    src = _sources(dep.plot(backtest=res))
    assert dep.equity.dims == ("time",)
    np.testing.assert_array_equal(src["deployment.equity"]["equity"], dep.equity.values)
    np.testing.assert_allclose(src["deployment.backtest"]["equity"], res.equity.values,
                               rtol=1e-9)
