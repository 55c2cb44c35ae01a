"""Session 55 (lead): strategies that measure returns over a window read a carried bar's
return as 0 (a holiday no longer voids every window holding it), and a deployment
interrupted while it checkpoints says as many bars as its checkpoint holds."""
from __future__ import annotations

import os
import signal

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab import cli
from quantlab.errors import DataError
from quantlab.live import Deployment

SMALL = {"fractal_chaos": {"window": 60, "trend": 10},
         "info_theory": {"window": 60, "trend": 10, "te_min": 0.0}}


def _holidays(ds, every=17, seed=3):
    """``ds`` with whole bars missing (every asset, every variable, 1-3 bars in a row)
    about every ``every`` bars, as an exchange's holidays; and the same bars carried."""
    rng = np.random.default_rng(seed)
    hole = np.zeros(ds.sizes["time"], bool)
    for t in range(every, ds.sizes["time"] - 3, every):
        hole[t:t + rng.integers(1, 4)] = True
    gaps = ds.where(~ds.time.copy(data=hole))
    return gaps, gaps.ffill("time")


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_holiday_is_a_zero_return_not_a_void_window(name):
    """Before, fractal_chaos and info_theory took no decision on any bar whose window held
    a holiday: on vix, wti and cross_market (holidays of their exchanges) never one.
    Now the signal of the data with holidays is that of the data with the closes carried
    over them (as their docstrings say), holidays included."""
    ds = ql.data.load().isel(time=slice(-500, None))
    gaps, filled = _holidays(ds)
    s = ql.strategies.get(name, **SMALL[name])
    got, want = s.signal(gaps), s.signal(filled)
    assert int(got.count()) > 200 * ds.sizes["asset"]
    assert float(np.abs(got).sum()) > 0
    np.testing.assert_array_equal(got.values, want.values)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_deployment_over_holidays_takes_the_backtest_s_decisions(name):
    """The per-bar signal carries the price as the full-history one does: fed the bars
    with holidays one by one, every row equals the full-history signal's."""
    gaps, _ = _holidays(ql.data.load().isel(time=slice(-400, None)))
    s = ql.strategies.get(name, **SMALL[name])
    want = s.signal(gaps).transpose("time", "asset").values
    live = s.live()
    close = gaps["close"].transpose("time", "asset").values
    got = np.array([live.update(i, t, {"close": close[i]})
                    for i, t in enumerate(gaps.time.values)])
    assert np.isfinite(want).sum() > 200
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_real_data_with_holidays_trades(name):
    """vix (FRED VIXCLS, NaN on US holidays): 0 decisions before."""
    pytest.importorskip("arch")
    sig = ql.strategies.get(name).signal(ql.data.load("vix").isel(time=slice(-900, None)))
    assert int(np.isfinite(sig).sum()) > 100
    assert float(np.abs(sig).sum()) > 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_a_checkpoint_counts_only_the_bars_it_holds(tmp_path, capsys,
                                                                   monkeypatch, sig):
    """A signal raised inside ``checkpoint`` (its files half written) used to leave the
    bar counted: "interrupted after 5 bars" over a checkpoint of 4 (a fresh-clone CI run
    saw 31 over 30). Now the signal waits for the checkpoint and the count, then stops
    the run as before."""
    ds = ql.data.load()
    start = str(ds.time.values[-60])[:10]
    ck = tmp_path / "ck"
    save, calls = Deployment.checkpoint, []

    def checkpoint(self, path):
        calls.append(path)
        if len(calls) == 5:
            os.kill(os.getpid(), sig)   # delivered now, between two of its files
        return save(self, path)

    monkeypatch.setattr(Deployment, "checkpoint", checkpoint)
    code = cli.main(["deploy", "volatility_regime", "--replay", "equities", "--start", start,
                     "--every", "100", "--checkpoint", str(ck)])
    err = capsys.readouterr().err
    assert code == (143 if sig == signal.SIGTERM else 130), err
    assert "interrupted after 5 bars" in err, err
    monkeypatch.undo()
    assert len(Deployment.restore(ck).equity) == 5
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # restored


def _shuffled():
    idx = pd.bdate_range("2020-01-01", periods=300)
    r = pd.Series(np.random.default_rng(0).normal(0, 0.01, 300), idx)
    return r, r.sample(frac=1, random_state=1)


@pytest.mark.parametrize("kind", ["pandas", "xarray", "frame"])
@pytest.mark.parametrize("metric", ["max_drawdown", "calmar_ratio", "stability_of_timeseries",
                                    "sharpe_ratio"])
def test_returns_out_of_time_order_are_read_in_time_order(kind, metric):
    """A shuffled series' max drawdown was -0.186 against -0.214 in time order, with no
    error (its order was read as its path). Repeated timestamps have no order: refused."""
    r, s = _shuffled()
    wrap = {"pandas": lambda x: x, "frame": lambda x: x.to_frame("a"),
            "xarray": lambda x: xr.DataArray(x.values, dims="time", coords={"time": x.index})}[kind]
    f = getattr(ql.metrics, metric)
    want = float(np.asarray(f(wrap(r))).ravel()[0])
    assert np.isfinite(want)
    assert float(np.asarray(f(wrap(s))).ravel()[0]) == pytest.approx(want, rel=1e-12)
    with pytest.raises(DataError, match="returns: duplicate timestamp 2020-01-01"):
        f(wrap(pd.concat([r, r.iloc[:2]])))


def test_positions_without_times_are_still_read_in_order():
    r, _ = _shuffled()
    np.testing.assert_allclose(ql.metrics.max_drawdown(r.to_numpy()),
                               ql.metrics.max_drawdown(r.reset_index(drop=True)))
    assert ql.metrics.max_drawdown(r) == ql.metrics.max_drawdown(r.to_numpy())


def test_a_tear_sheet_s_benchmark_is_measured_over_the_strategy_s_span():
    """A strategy listed late stood beside its benchmark's whole history: total return,
    Start and End of two different periods side by side."""
    ds = ql.data.load()
    ret = ql.data.returns(ds["close"])
    r = ret.sel(asset="IBM").where(ret.time >= ret.time[2000]).drop_vars("asset")
    b = ret.sel(asset="AAPL").drop_vars("asset")
    t = ql.tearsheet.summary_table(r, b).set_index("name")
    assert t.loc["start", "strategy"] == t.loc["start", "benchmark"]
    assert t.loc["end", "strategy"] == t.loc["end", "benchmark"]
    alone = ql.tearsheet.summary_table(b.sel(time=slice(ret.time[2000], None)))
    for k in ("total_return", "annual_return", "sharpe_ratio", "max_drawdown", "periods"):
        assert t.loc[k, "benchmark"] == alone.set_index("name").loc[k, "strategy"], k


def test_the_strategy_explorer_keeps_a_bounded_number_of_signals(monkeypatch):
    """Every parameter setting a slider passed through was kept (~1.3 MB each on
    sp500_20), for the life of the explorer."""
    pytest.importorskip("ipywidgets")
    from quantlab import widgets

    monkeypatch.setattr(widgets, "CACHED_SIGNALS", 3)
    e = widgets.StrategyExplorer(ql.data.load().isel(time=slice(0, 300)), "volatility_regime")
    slider = next(c for c in e.params.children if c.description == "window")
    for v in range(slider.min, slider.min + 6):
        slider.value = v
        e.signal()
    assert len(e._cache) == 3
    slider.value = slider.min + 5
    assert e.signal() is e._cache[next(reversed(e._cache))]   # a hit: most recent


def test_a_histogram_of_values_wider_than_a_float_says_so():
    """NumPy's 'Too many bins for data range' before."""
    pytest.importorskip("bokeh")
    with pytest.raises(DataError, match="span -1e\\+308 to 1e\\+308, wider than a float"):
        ql.plots.histogram_figure(np.array([-1e308, 0.0, 1e308]))


def test_the_index_says_which_commit_made_an_earlier_batch_s_run(tmp_path):
    """The header's one commit stood for every run, including runs kept from earlier
    batches made by other commits."""
    from quantlab import suite

    suite.write_index([suite.Run("a.ipynb", status="ok")], tmp_path,
                      {"git_commit": "aaa111", "data_sha256": "y"})
    page = suite.write_index([suite.Run("b.ipynb", status="ok")], tmp_path,
                             {"git_commit": "bbb222", "data_sha256": "y"}).read_text()
    assert "commit bbb222" in page and "commit aaa111" in page   # header; a's row
    assert page.count("commit bbb222") == 1                      # b's row says nothing
    assert {r.name: r.commit for r in suite.read_index(tmp_path)} == {"a": "aaa111",
                                                                      "b": "bbb222"}


def test_the_index_says_a_run_from_stored_outputs_was_not_timed(tmp_path):
    """A run rendered from stored outputs (--from-stored) read 0.0 s."""
    from quantlab import suite

    run = suite.Run("a.ipynb", status="ok", source="stored outputs")
    page = suite.write_index([run], tmp_path, {"git_commit": "x", "data_sha256": "y"})
    row = page.read_text().split('data-name="a"')[1].split("</tr>")[0]
    assert '<td class="num" data-sort="-1">stored outputs</td>' in row and " s</td>" not in row
    assert suite.read_index(tmp_path)[0].source == "stored outputs"


def _paired():
    rng = np.random.default_rng(5)
    idx = pd.bdate_range("2021-01-01", periods=250)
    b = pd.Series(rng.normal(0, 0.01, 250), idx)
    return 1.5 * b + pd.Series(rng.normal(0, 0.005, 250), idx), b


@pytest.mark.parametrize("kind", ["pandas", "xarray"])
def test_returns_out_of_time_order_beside_a_benchmark_by_position_are_refused(kind):
    """Sorting the returns paired an array benchmark with other days: beta 0.051 for
    1.488 (found by this session's review)."""
    r, b = _paired()
    want = ql.metrics.beta(r, b)
    rev = r[::-1] if kind == "pandas" else xr.DataArray(
        r.values[::-1], dims="time", coords={"time": r.index[::-1]})
    with pytest.raises(DataError, match="timestamps not sorted.*factor_returns paired by "
                                        "position"):
        ql.metrics.beta(rev, b.values[::-1])
    with pytest.raises(DataError, match="risk_free paired by position"):
        ql.metrics.sharpe_ratio(rev, risk_free=np.full(250, 1e-4))
    assert float(ql.metrics.beta(rev, b[::-1])) == pytest.approx(want, rel=1e-12)  # dated


def test_returns_out_of_time_order_are_annualised_by_their_calendar():
    """Reversed monthly returns were annualised with 252 (the calendar was inferred
    before the sort): Sharpe 3.00 for 0.65."""
    rng = np.random.default_rng(2)
    idx = pd.date_range("2000-01-31", periods=120, freq="ME")
    x = xr.DataArray(rng.normal(0.01, 0.04, 120), dims="time", coords={"time": idx})
    rev = x.isel(time=slice(None, None, -1))
    for f in (ql.metrics.sharpe_ratio, ql.metrics.annual_volatility, ql.metrics.annual_return):
        assert float(f(rev)) == pytest.approx(float(f(x)), rel=1e-12), f.__name__
    assert float(ql.metrics.summary(rev)["sharpe_ratio"]) == pytest.approx(
        float(ql.metrics.sharpe_ratio(x)), rel=1e-12)


def test_a_sweep_explorer_over_integer_asset_labels_shows_the_equity():
    """The asset label was made a string, then selected: KeyError, no equity shown
    (found by this session's review)."""
    pytest.importorskip("ipywidgets")
    ds = ql.data.load().isel(time=slice(0, 300)).assign_coords(asset=np.arange(4))
    sw = ql.sweep("volatility_regime", ds, {"window": [10, 20], "lookback": [40, 60]},
                  progress=False)
    e = ql.widgets.SweepExplorer(sw, ds)
    e.select(0)
    assert e.error is None
    assert len(e.eq_source.data["equity"]) == 300
    assert e.eq.title.text.startswith("equity of 0: ")


def test_a_failed_checkpoint_is_not_hidden_by_a_signal_held_over_it():
    """A Ctrl-C held over a checkpoint that failed (a full disk) was raised instead of
    the failure, which the user then never saw."""
    with pytest.raises(OSError, match="No space"):
        with cli._signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            raise OSError(28, "No space left on device")
    with pytest.raises(KeyboardInterrupt):
        with cli._signals_held():
            os.kill(os.getpid(), signal.SIGINT)
