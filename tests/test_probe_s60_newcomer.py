"""A newcomer's three changes, following the docs (session 60): a twelfth strategy known
by name everywhere (registry, sweep, optimiser, ``quantlab run-suite``, ``quantlab
deploy``, via ``$QUANTLAB_PLUGINS``), a metric of their own (``ql.metrics.register``:
summary, ``res.metrics()``, tear sheets, optimiser objective) and 24/7 crypto bars of
their own (CSV -> load_csv -> ingest -> backtest annualised by 365).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab import _plugins

ROOT = Path(__file__).resolve().parent.parent

# the worked example a newcomer writes: a module naming nothing private of quantlab
PLUGIN = textwrap.dedent('''
    import numpy as np
    import xarray as xr
    import quantlab as ql
    from quantlab.strategies import Strategy, register


    @register
    class Bollinger(Strategy):
        """Mean reversion: long below the lower band, short above the upper one."""
        name = "bollinger"
        defaults = {"window": 20, "k": 2.0}
        param_space = {"window": (5, 100), "k": (0.5, 3.0)}
        requires = ("close",)

        def _signal(self, ds, window, k):
            c = ds["close"]
            z = (c - ql.rolling.mean(c, window)) / ql.rolling.std(c, window)
            return xr.where(z < -k, 1.0, xr.where(z > k, -1.0, 0.0)).where(z.notnull())

        def _warmup(self, window, **_):
            return window   # the deployment decides from the last `window` bars


    def ulcer_index(r, periods):
        """sqrt(mean(drawdown^2)), drawdown from the running peak (the start counts)."""
        out = np.full(r.shape[1], np.nan)
        for j in range(r.shape[1]):
            x = r[~np.isnan(r[:, j]), j]
            if x.size:
                w = np.cumprod(1.0 + x)
                out[j] = np.sqrt(np.mean((w / np.maximum.accumulate(np.maximum(w, 1.0))
                                          - 1.0) ** 2))
        return out


    ql.metrics.register("ulcer_index", ulcer_index, lower_is_better=True, kind="pct")
''')


def _env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), **extra)
    env.pop("QUANTLAB_PLUGINS", None)
    env.update(extra)
    return env


@pytest.fixture
def plugin(tmp_path, monkeypatch, registry):
    """The example module as a $QUANTLAB_PLUGINS file, loaded in this process too; the
    strategy and metric registries restored after the test."""
    path = tmp_path / f"newcomer_{tmp_path.name.replace('-', '_')}.py"
    path.write_text(PLUGIN)
    monkeypatch.setenv("QUANTLAB_PLUGINS", str(path))
    monkeypatch.setattr(_plugins, "_done", set())
    monkeypatch.setattr(_plugins, "_loaded", set())
    yield path
    sys.modules.pop(path.stem, None)


def _pandas_bollinger(close: pd.DataFrame, window: int, k: float) -> pd.DataFrame:
    m = close.rolling(window).mean()
    z = (close - m) / close.rolling(window).std()
    sig = pd.DataFrame(np.where(z < -k, 1.0, np.where(z > k, -1.0, 0.0)),
                       index=close.index, columns=close.columns)
    return sig.where(z.notna())


def _pandas_ulcer(r: pd.Series) -> float:
    w = (1.0 + r.dropna()).cumprod()
    peak = np.maximum(w.cummax(), 1.0)
    return float(np.sqrt(((w / peak - 1.0) ** 2).mean()))


# --------------------------------------------------------------- 1. a twelfth strategy
def test_registered_strategy_through_the_public_entry_points(plugin):
    ds = ql.data.load()
    assert "bollinger" in ql.strategies.names()   # $QUANTLAB_PLUGINS loaded at look-up
    s = ql.strategies.get("bollinger", window=20, k=2.0)
    sig = s.signal(ds)
    ref = _pandas_bollinger(ds["close"].to_pandas(), 20, 2.0)
    np.testing.assert_array_equal(sig.values, ref.values)   # NaN where pandas has NaN
    res = ql.backtest(ds, sig, fees=0.001)
    grid = {"window": [10, 20], "k": [1.5, 2.0]}
    sw = ql.sweep("bollinger", ds, grid, metrics=("sharpe_ratio", "total_return"), fees=0.001)
    np.testing.assert_allclose(sw["sharpe_ratio"].sel(window=20, k=2.0).values,
                               res.metrics()["sharpe_ratio"].values, rtol=1e-12)
    opt = ql.optimize.optimize_strategy_parameters(
        "bollinger", {"window": (10, 30), "k": (1.5, 2.0)}, ds, start_date="2004",
        end_date="2009", optimization_method="grid", n_trials=4, fees=0.001)
    assert opt.trials["sharpe_ratio"].max() == pytest.approx(opt.best_value, abs=0)
    # the deployment trades it as ql.backtest does: the same bars, the same equity
    dep = ql.deploy(opt, history=ds.sel(time=slice(None, "2009")))
    dep.replay(ds.sel(time=slice("2010", "2010")))
    bt = opt.backtest(ds, "2010", "2010", **opt.backtest_options)
    np.testing.assert_allclose(dep.equity.values, bt.equity.values.ravel(), rtol=1e-12)


def test_unknown_strategy_says_how_a_users_strategy_becomes_known():
    with pytest.raises(ValueError, match=r"unknown strategy 'bollinger'.*\$QUANTLAB_PLUGINS"):
        ql.strategies.get("bollinger")


def test_quantlab_deploy_trades_a_plugin_strategy_as_the_backtest(plugin, tmp_path):
    ck = tmp_path / "ck"
    cmd = [sys.executable, "-m", "quantlab", "deploy", "bollinger", "--replay", "equities",
           "--start", "2012-07-02", "--set", "fees", "0.001", "--checkpoint", str(ck),
           "--every", "1000"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                         env=_env(QUANTLAB_PLUGINS=str(plugin)))
    assert out.returncode == 0, out.stderr
    dep = ql.Deployment.restore(ck)
    ds = ql.data.load()
    sig = ql.strategies.get("bollinger").signal(ds).sel(time=slice("2012-07-02", None))
    bt = ql.backtest(ds.sel(time=slice("2012-07-02", None)), sig, fees=0.001)
    assert dep.equity.shape == bt.equity.shape
    np.testing.assert_allclose(dep.equity.values, bt.equity.values, rtol=1e-12)


def test_quantlab_deploy_without_the_plugin_or_with_a_broken_one_says_so(tmp_path):
    cmd = [sys.executable, "-m", "quantlab", "deploy", "bollinger", "--replay", "equities"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                         env=_env())
    assert out.returncode == 2 and "QUANTLAB_PLUGINS" in out.stderr, out.stderr
    missing = tmp_path / "no_such_plugin.py"
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                         env=_env(QUANTLAB_PLUGINS=str(missing)))
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert f"QUANTLAB_PLUGINS entry {str(missing)!r}" in out.stderr
    assert "no file" in out.stderr


def test_quantlab_run_suite_takes_a_plugin_strategy_as_a_parameter(plugin, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "quantlab", "run-suite", str(ROOT / "notebooks" /
         "01_explore.ipynb"), "-p", "strategy", "bollinger", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env=_env(QUANTLAB_PLUGINS=str(plugin)))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "01_explore: ok" in out.stderr


# ---------------------------------------------------------------- 2. a metric of yours
def test_registered_metric_in_summary_results_tearsheet_and_optimiser(plugin):
    ds = ql.data.load()
    assert ql.metrics.registered() == {"ulcer_index": True}
    res = ql.backtest(ds, ql.strategies.get("bollinger").signal(ds), fees=0.001)
    m = res.metrics()
    for a in ds["asset"].values:
        want = _pandas_ulcer(res.returns.sel(asset=a).to_series())
        assert float(m["ulcer_index"].sel(asset=a)) == pytest.approx(want, rel=1e-12)
    r = ql.data.returns(ds)
    np.testing.assert_allclose(
        ql.metrics.summary(r)["ulcer_index"].values,
        [_pandas_ulcer(r.sel(asset=a).to_series()) for a in ds["asset"].values], rtol=1e-12)
    t = ql.tearsheet.summary_table(res.returns.sel(asset="IBM")).set_index("name")
    assert t.loc["ulcer_index", "value"] == pytest.approx(
        float(m["ulcer_index"].sel(asset="IBM")), rel=1e-12)
    assert t.loc["ulcer_index", "strategy"].endswith(" %")
    opt = ql.optimize.optimize_strategy_parameters(
        "bollinger", {"window": (10, 30)}, ds, start_date="2004", end_date="2009",
        optimization_method="grid", n_trials=3, fees=0.001, objective="ulcer_index")
    assert opt.directions == ("minimize",)
    assert opt.best_value == opt.trials["ulcer_index"].min()
    best = opt.backtest(ds, "2004", "2009", **opt.backtest_options)
    assert opt.best_value == pytest.approx(
        _pandas_ulcer(best.returns.squeeze().to_series()), rel=1e-12)


def test_registered_metric_refusals_name_the_problem(plugin):
    ds = ql.data.load().isel(time=slice(0, 300))
    assert "ulcer_index" in ql.metrics.registered()
    with pytest.raises(ValueError, match=r"\['ulcer_index'\] need the whole return series"):
        ql.sweep("bollinger", ds, {"window": [10, 20]}, metrics=("ulcer_index",))
    with pytest.raises(ValueError, match="'max_drawdown' is taken by a built-in"):
        ql.metrics.register("max_drawdown", lambda r, periods: r[0])
    with pytest.raises(ValueError, match="'n_trades' is taken by a built-in"):
        ql.metrics.register("n_trades", lambda r, periods: r[0])
    with pytest.raises(ValueError, match="kind"):
        ql.metrics.register("first_return", lambda r, periods: r[0], kind="percent")
    ql.metrics.register("first_column", lambda r, periods: r[:, 0])
    with pytest.raises(ValueError, match=r"'first_column' returned shape \(300,\).*"
                                         r"one value per column \(4,\)"):
        ql.metrics.summary(ql.data.returns(ds))
    ql.metrics.unregister("first_column")
    assert "first_column" not in ql.metrics.summary(ql.data.returns(ds))


# ---------------------------------------------------------- 3. 24/7 crypto bars of yours
def test_crypto_csv_load_ingest_backtest_annualise_365(plugin, tmp_path):
    bundled = ql.data.load().sel(time=slice("2010", "2012"))
    folder = tmp_path / "crypto"
    folder.mkdir()
    for asset, sym in (("AAPL", "BTCUSD"), ("MSFT", "ETHUSD")):
        f = bundled.sel(asset=asset, drop=True).to_dataframe().dropna(how="all")
        f.index = pd.date_range("2021-01-01", periods=len(f), freq="D", name="Date")
        f.columns = [c.capitalize() for c in f.columns]
        f.to_csv(folder / f"{sym}.csv", float_format="%.6f")
    ds = ql.data.load_csv(folder, asset_class="crypto")
    assert (ds.attrs["calendar"], ds.attrs["periods_per_year"]) == ("24/7", 365)
    store = ql.data.open(ql.data.ingest(folder, tmp_path / "store"))
    assert store.attrs["periods_per_year"] == 365
    s = ql.strategies.get("bollinger")
    res = ql.backtest(store, s.signal(store), fees=0.001)
    mem = ql.backtest(ds, s.signal(ds), fees=0.001)
    assert res.periods == mem.periods == 365
    np.testing.assert_allclose(np.asarray(res.equity), mem.equity.values, rtol=1e-12)
    m = mem.metrics()
    assert m.attrs["periods"] == 365
    for a in ("BTCUSD", "ETHUSD"):
        r = mem.returns.sel(asset=a).to_series().dropna()
        assert float(m["sharpe_ratio"].sel(asset=a)) == pytest.approx(
            r.mean() / r.std() * np.sqrt(365), rel=1e-12)
        assert float(m["annual_volatility"].sel(asset=a)) == pytest.approx(
            r.std() * np.sqrt(365), rel=1e-12)
        assert float(m["ulcer_index"].sel(asset=a)) == pytest.approx(_pandas_ulcer(r),
                                                                     rel=1e-12)


def test_register_refuses_a_bundled_strategys_name(registry):
    class MySPC(ql.strategies.Strategy):
        name = "spc"
        defaults = {"window": 20}

        def _signal(self, ds, window):
            return xr.zeros_like(ds["close"])

    with pytest.raises(ValueError, match=r"strategy name 'spc' is taken by quantlab's "
                                         r"quantlab\.strategies\.traditional\."):
        ql.strategies.register(MySPC)
    assert type(ql.strategies.get("spc")).__module__ == "quantlab.strategies.traditional"


def test_a_registered_metric_cannot_modify_the_callers_returns(registry):
    def zero_out(r, periods):
        r[:] = 0.0
        return r[0]

    r = ql.data.returns(ql.data.load().isel(time=slice(0, 50)))
    before = r.values.copy()
    ql.metrics.register("zero_out", zero_out)
    with pytest.raises(ValueError, match="read-only"):
        ql.metrics.summary(r)
    np.testing.assert_array_equal(r.values, before)
