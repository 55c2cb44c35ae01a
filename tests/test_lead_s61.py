"""Session 61 (lead): the loose ends of session 60's surfaces. A relative
``$QUANTLAB_PLUGINS`` file reaches a notebook's kernel (it runs in another directory)."""
import io
import json
import os
from pathlib import Path

import nbformat
import pytest

import quantlab as ql
from quantlab import _plugins, suite

PLUGIN = '''
from quantlab.strategies import Strategy, register


@register
class LeadS61(Strategy):
    name = "lead_s61"
    defaults = {}
    requires = ("close",)

    def _signal(self, ds):
        return ds["close"] * 0.0 + 1.0
'''


def test_a_relative_plugin_file_is_made_absolute_from_the_working_directory(
        tmp_path, monkeypatch):
    (tmp_path / "mine.py").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(_plugins.ENV, os.pathsep.join(["mine.py", "json", "gone.py"]))
    assert _plugins.absolute().split(os.pathsep) == [str(tmp_path / "mine.py"), "json",
                                                     "gone.py"]
    assert os.environ[_plugins.ENV].startswith(str(tmp_path))


def test_a_notebook_kernel_finds_a_relative_plugin_file(tmp_path, monkeypatch):
    # before: the kernel ran in a temporary directory and the file was not found there
    (tmp_path / "mine.py").write_text(PLUGIN)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(_plugins.ENV, "mine.py")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import quantlab as ql\nprint('lead_s61' in ql.strategies.names())")])
    out = suite.execute_notebook_json(nbformat.writes(nb), {}, timeout=120)
    assert out["status"] == "ok", out
    cell = json.loads(out["notebook"])["cells"][-1]
    assert "".join(cell["outputs"][0]["text"]).strip() == "True"


def test_objectives_are_the_built_in_ones_whenever_a_metric_was_registered(tmp_path):
    # a metric registered before quantlab.optimize's first (lazy) import was in
    # ql.optimize.OBJECTIVES, and stayed there after ql.metrics.unregister
    import subprocess
    import sys

    code = """
import numpy as np, quantlab as ql
ql.metrics.register("gone", lambda r, p: np.nansum(r, axis=0))
from quantlab import optimize
print("gone" in optimize.OBJECTIVES, "sharpe_ratio" in optimize.OBJECTIVES)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(Path(ql.__file__).parents[1])})
    assert out.stdout.split() == ["False", "True"], out.stderr
    assert set(ql.metrics.BUILTIN) <= set(ql.metrics.METRICS)


@pytest.mark.parametrize("columns", [["Price", "Volume"], ["open", "high"],
                                     ["Adj Close", "Volume"]])
def test_a_frame_of_bar_fields_is_no_frame_of_assets(columns):
    # before: ["Price", "Volume"] and ["open", "high"] backtested as two assets
    import numpy as np
    import pandas as pd

    t = pd.date_range("2024-01-01", periods=30, name="time")
    df = pd.DataFrame(np.linspace(100, 130, 60).reshape(30, 2), index=t, columns=columns)
    with pytest.raises(TypeError, match=r"bar fields.*from_pandas"):
        ql.backtest(df, df * 0 + 1.0)


@pytest.mark.parametrize("make", [
    lambda ds: ql.optimize.WalkForwardOptimizer(n_splits=2),
    lambda ds: ql.optimize.RegimeAdaptiveOptimizer(None, fee=0.001),
    lambda ds: ql.optimize.optimize_strategy_parameters(
        "momentum", {"lookback": [30, 60]}, ds, optimization_method="grid", fee=0.001,
        progress=False)])
def test_an_argument_no_one_takes_is_refused_before_any_trial(make):
    # before: "backtest() got an unexpected keyword argument 'n_splits'" from the first
    # trial (of walk-forward fold 0)
    ds = ql.data.load().isel(time=slice(0, 400))
    with pytest.raises(TypeError, match=r"unknown argument '(n_splits|fee)'.*ql.backtest"):
        make(ds)


def test_optimisation_reprs_show_metrics_as_the_tear_sheet_does():
    # before: "annual_return = 0.0234", "IS mean 0.0512": raw fractions beside the
    # tear sheet's "+2.3 %"
    ds = ql.data.load().isel(time=slice(0, 700))
    res = ql.optimize.optimize_strategy_parameters(
        "momentum", {"lookback": [30, 60]}, ds, optimization_method="grid",
        objective=["annual_return", "max_drawdown"], progress=False)
    want = ", ".join(ql.fmt.metric(o, v) for o, v in zip(res.objective, res.best_value))
    assert f"annual_return/max_drawdown = ({want}) at" in repr(res) and " %" in want
    wf = ql.optimize.WalkForwardOptimizer(200, 100, 100, optimization_method="grid",
                                          n_trials=2, objective="annual_return",
                                          progress=False).run("momentum",
                                                              {"lookback": [30, 60]}, ds)
    is_mean = ql.fmt.metric("annual_return", wf.folds["is_annual_return"].mean())
    assert f"annual_return: IS mean {is_mean}, OOS mean" in repr(wf) and " %" in is_mean


def test_risk_report_levels_read_as_every_other_percentage():
    # before: "RiskReport(98%: ..." for a 97.5 % level, "breach(es) of 12%" for 12.5 %,
    # beside "2.13 %" (fmt's space) in the same line
    ds = ql.data.load().isel(time=slice(0, 600))
    res = ql.backtest(ds, ql.strategies.get("momentum").signal(ds), group=True)
    rep = ql.risk.RiskManager(confidence_level=0.975,
                             max_drawdown_limit=0.125).generate_risk_report(res)
    assert repr(rep).startswith("RiskReport(97.5 %: historical VaR")
    assert "breach(es) of 12.5 %;" in repr(rep)
    assert "<h3>Value at risk, 97.5 % (losses, positive)</h3>" in rep.tables_html()
    assert ql.fmt.pct(0.95, None, sign=False) == "95 %"


def test_a_frame_of_text_dates_is_refused_naming_the_fix():
    # read_csv without parse_dates: the index holds text. Beside a frame of timestamps
    # the backtest said "different time axes (2000-03-01 00:00:00 is not in the data)",
    # and a strategy's signal came back on text times
    import io

    import pandas as pd

    close = ql.data.load().isel(time=slice(0, 100))["close"].to_pandas()
    text = pd.read_csv(io.StringIO(close.to_csv()), index_col=0)
    sig = (close > close.rolling(5).mean()).astype(float)
    fix = r"index holds string \('2000-03-01', \.\.\.\), not times: .*parse_dates=True"
    with pytest.raises(ql.DataError, match="data: the DataFrame's " + fix):
        ql.backtest(text, sig)
    with pytest.raises(ql.DataError, match="signal: the DataFrame's " + fix):
        ql.backtest(close, sig.set_axis(text.index))
    with pytest.raises(ql.DataError, match=fix):
        ql.strategies.get("momentum").signal(text)
    assert ql.backtest(close, sig).equity.sizes["time"] == 100


@pytest.mark.parametrize("per_bar", [True, False])
def test_a_deployment_with_periods_trades_as_its_backtest_with_them(per_bar, tmp_path,
                                                                    monkeypatch):
    # periods= overrides the metrics' annualisation; the research signal still reads the
    # data's calendar (252 business days). The deployment's volatility target used
    # periods= (260): other exposures than the backtest's, also after a restore
    import numpy as np
    import xarray as xr

    s = ql.strategies.get("volatility_regime", window=20, lookback=120, threshold=0.8,
                          target_vol=0.1)
    if not per_bar:
        monkeypatch.setattr(type(s), "live", lambda self, **inputs: None)
    full = ql.data.load().isel(time=slice(0, 420))
    hist, live = full.isel(time=slice(0, 300)), full.isel(time=slice(300, None))
    dep = ql.deploy(s, history=hist, fees=0.001, periods=260)
    dep.replay(live.isel(time=slice(0, 60)), echo=None)
    dep.checkpoint(tmp_path / "ck")
    dep = ql.Deployment.restore(tmp_path / "ck")
    dep.replay(live.isel(time=slice(60, None)), echo=None)
    sig = s.signal(full)
    res = ql.backtest(full, sig.where(sig.time >= live.time[0]), fees=0.001, periods=260)
    assert float(sig.sel(time=live.time).min()) < 0.9      # the target binds
    np.testing.assert_allclose(dep.equity.values, res.equity.sel(time=live.time).values,
                               rtol=1e-12)
    assert isinstance(dep.equity, xr.DataArray)


def test_a_notebook_runs_on_your_csv_named_by_a_relative_path(tmp_path, monkeypatch):
    # data_set took only the bundled names ("unknown data set"); a relative path given to
    # run-suite would name a file in the notebook's folder, where the kernel runs
    import pandas as pd

    ds = ql.data.load().isel(time=slice(0, 300)).sel(asset=["IBM", "MSFT"])
    long = ds[["close"]].to_dataframe().reset_index()[["time", "asset", "close"]]
    (tmp_path / "mine").mkdir()
    long.rename(columns={"time": "date", "asset": "symbol"}).to_csv(
        tmp_path / "mine" / "two.csv", index=False)
    monkeypatch.chdir(tmp_path)
    got = ql.data.load("mine/two.csv")
    assert got["asset"].values.tolist() == ["IBM", "MSFT"]
    pd.testing.assert_frame_equal(got["close"].to_pandas(), ds["close"].to_pandas(),
                                  check_names=False, check_freq=False)
    nb = Path(ql.__file__).parents[1] / "notebooks" / "00_quickstart.ipynb"
    runs = suite.run_suite([suite.Run(str(nb), parameters={"data_set": "mine/two.csv",
                                                           "symbol": "MSFT"})],
                           tmp_path / "out", log=io.StringIO())
    assert [r.status for r in runs] == ["ok"], runs[0].error
    assert runs[0].parameters["data_set"] == "mine/two.csv"   # the index shows what was given
    with pytest.raises(KeyError, match=r"unknown data set 'gone.csv'; .* or the path of a CSV"):
        ql.data.load("gone.csv")


def test_psr_of_returns_that_barely_vary_is_refused_as_kelly_and_betas_are():
    # found by "stats": a price crawling x1.0001 a bar gave PSR 1.0 and a minimum track
    # record of 3.06 bars, both from the rounding noise's moments
    import numpy as np

    p = 100 * 1.0001 ** np.arange(300)
    r = p[1:] / p[:-1] - 1
    for f in (ql.integrity.probabilistic_sharpe_ratio, ql.integrity.min_track_record_length):
        with pytest.raises(ValueError, match="returns barely vary .* rounding noise"):
            f(r)
    noisy = r + np.random.default_rng(0).normal(0, 1e-4, r.size)
    assert 0.5 < ql.integrity.probabilistic_sharpe_ratio(noisy) <= 1.0


def test_business_days_with_a_stray_weekend_row_stay_business_days():
    # found by "calendars": one Saturday row in 300 business days read 24/7, 365 periods
    # a year (Sharpe ratios x1.2); now 252, with a CalendarWarning saying it is a guess
    import pandas as pd

    from quantlab import calendar

    stray = pd.DatetimeIndex(["2013-01-05"]).append(pd.bdate_range("2013-01-07", periods=300))
    with pytest.warns(ql.errors.CalendarWarning, match="a few on weekend days"):
        assert calendar.infer(stray)["periods_per_year"] == 252
    days = pd.date_range("2013-01-01", periods=400)
    assert calendar.infer(days.delete(range(0, 400, 9)))["periods_per_year"] == 365


def test_a_seven_day_session_market_missing_days_keeps_365_sessions():
    # found by the review: sessions every day of a year with 60 days missing read 252 x
    # bars a session (the six-days-a-week count fell under 6/7 of the calendar's days)
    import numpy as np
    import pandas as pd

    from quantlab import calendar

    days = pd.date_range("2013-01-01", periods=365)
    kept = days[np.sort(np.random.default_rng(0).choice(365, 305, replace=False))]
    t = pd.DatetimeIndex(np.concatenate([
        pd.date_range(f"{d.date()} 09:30", f"{d.date()} 16:00", freq="1min",
                      inclusive="left", tz="America/New_York") for d in kept]))
    assert calendar.infer(t.tz_convert("UTC"))["periods_per_year"] == 365 * 390


@pytest.mark.parametrize("text", ["", "x" * 5000, "a\0b.csv"])
def test_text_that_is_no_path_is_an_unknown_data_set_not_the_working_directory(text):
    # ql.data.load took any existing path: "" read the working directory's CSVs, a
    # 5,000-character name raised a raw OSError; run-suite's path parameters crashed too
    with pytest.raises(KeyError, match="unknown data set"):
        ql.data.load(text)
    assert suite._here({"p": text + "/x.csv"}) == {"p": text + "/x.csv"}
