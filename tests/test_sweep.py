"""Metrics-only backtests and ql.sweep: equal to full backtests + metrics(), chunked,
threaded or on a dask LocalCluster, resumable from a store; the SweepExplorer re-runs a
clicked cell."""
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import quantlab as ql
from quantlab import suite

ALL = ql.metrics.streaming_names() + ["fees_paid", "turnover", "exposure", "n_orders"]


@pytest.mark.parametrize("kw", [dict(fees=0.001, slippage=0.0005),
                                dict(group=True, fees=0.002, fixed_fees=1.0),
                                dict(execution="next_open", rebalance="daily", group=True),
                                dict(dd_limit=0.15, dd_cooldown=5)])
def test_metrics_only_equals_the_full_backtest(kw, equities):
    sig = ql.strategies.get("volatility_regime", window=[10, 21],
                            threshold=[0.7, 0.9]).signal(equities)
    mo = ql.backtest(equities, sig, metrics_only=tuple(ALL), **kw)
    full = ql.backtest(equities, sig, **kw)
    m = full.metrics()
    for k in ALL:
        if k == "n_orders":
            assert int(mo[k].sum()) == len(full.orders)
            continue
        np.testing.assert_allclose(mo[k].values, m[k].transpose(*mo[k].dims).values,
                                   rtol=1e-9, atol=1e-12, err_msg=k)
    assert set(mo.dims) == ({"window", "threshold"} if kw.get("group")
                            else {"asset", "window", "threshold"})


def test_metrics_only_rejects_what_needs_the_series(equities):
    sig = ql.strategies.get("spc").signal(equities)
    with pytest.raises(ValueError, match="value_at_risk"):
        ql.backtest(equities, sig, metrics_only=("value_at_risk",))
    with pytest.raises(ValueError, match="n_trades"):
        ql.backtest(equities, sig, metrics_only=("n_trades",))


GRID = {"window": [10, 21, 42], "threshold": [0.6, 0.8, 0.95]}


def test_sweep_equals_one_vectorised_backtest(equities):
    res = ql.sweep("volatility_regime", equities, GRID, chunks=2, progress=False, fees=0.001)
    assert res.sharpe_ratio.dims == ("window", "threshold", "asset")
    assert res.attrs["combinations"] == 9 and res.attrs["chunks"] == 5
    full = ql.backtest(equities, ql.strategies.get("volatility_regime", **GRID).signal(equities),
                       fees=0.001).metrics()
    for k in res.data_vars:
        xr.testing.assert_allclose(res[k], full[k].transpose(*res[k].dims), rtol=1e-9)
    grouped = ql.sweep("volatility_regime", equities, GRID, group=True, progress=False,
                       metrics=("sharpe_ratio",))
    assert grouped.sharpe_ratio.dims == ("window", "threshold")


def test_sweep_on_a_dask_local_cluster_and_resume(equities, tmp_path):
    from distributed import Client, LocalCluster

    local = ql.sweep("volatility_regime", equities, GRID, chunks=3, progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        remote = ql.sweep("volatility_regime", equities, GRID, chunks=3, client=client,
                          progress=False)
    xr.testing.assert_identical(local, remote)
    store = tmp_path / "sweep"
    first = ql.sweep("volatility_regime", equities, GRID, chunks=3, store=store,
                     progress=False)
    assert sorted(p.name for p in store.glob("chunk_*.npz")) == [
        "chunk_0.npz", "chunk_1.npz", "chunk_2.npz"]
    (store / "chunk_1.npz").unlink()                  # as if interrupted
    stamp = (store / "chunk_0.npz").stat().st_mtime_ns
    again = ql.sweep("volatility_regime", equities, GRID, chunks=3, store=store,
                     progress=False)
    xr.testing.assert_identical(first, again)
    assert (store / "chunk_0.npz").stat().st_mtime_ns == stamp   # loaded, not recomputed
    with pytest.raises(ValueError, match="different sweep"):
        ql.sweep("volatility_regime", equities, {"window": [5]}, store=store, progress=False)


def test_sweep_errors(equities):
    with pytest.raises(ValueError, match="unknown grid parameter"):
        ql.sweep("spc", equities, {"spann": [1]}, progress=False)
    with pytest.raises(ValueError, match="not available in a metrics-only run"):
        ql.sweep("spc", equities, {"k": [0.5]}, metrics=("tail_ratio",), progress=False)


def test_sweep_explorer_reruns_a_clicked_cell(equities):
    res = ql.sweep("volatility_regime", equities, GRID, progress=False, fees=0.001)
    ex = ql.widgets.SweepExplorer(res, equities)
    assert len(ex.source.data["value"]) == 9
    ex.fixed["asset"].value = "IBM"
    back = ex.select(4)                                 # window 21, threshold 0.8
    assert float(back.metrics()["sharpe_ratio"].sel(asset="IBM")) == pytest.approx(
        float(res.sharpe_ratio.sel(window=21, threshold=0.8, asset="IBM")))
    assert len(ex.eq_source.data["equity"]) == equities.sizes["time"]
    ex.source.selected.indices = [0]                   # a click: the callback re-runs
    assert "'window': 10" in ex.eq.title.text and "'threshold': 0.6" in ex.eq.title.text
    ex.x.value = "threshold"                           # x == y: one row
    assert set(ex.source.data["y"]) == {""}


# ---- argument checks at the entry (each was a deep or silent failure before)
SMALL = dict(progress=False, metrics=("sharpe_ratio",), group=True)


@pytest.mark.parametrize("grid, match", [
    ({"window": []}, r"grid\['window'\] is empty"),          # was: need at least one array
    ({"window": ()}, r"grid\['window'\] is empty"),
    ({"window": np.array([])}, r"grid\['window'\] is empty"),
    ({}, "grid is empty"),
])
def test_sweep_empty_grid_list_is_a_clear_error_not_need_at_least_one_array(grid, match,
                                                                          equities):
    with pytest.raises(ValueError, match=match):
        ql.sweep("volatility_regime", equities, grid, **SMALL)


@pytest.mark.parametrize("chunks, exc", [(-1, ValueError), (0, ValueError), (1.5, ValueError),
                                         (True, TypeError), ("2", TypeError)])
def test_sweep_chunks_minus_one_is_a_clear_error(chunks, exc, equities):
    with pytest.raises(exc, match=f"chunks must be an integer.*got {chunks!r}"):
        ql.sweep("volatility_regime", equities, {"window": [10]}, chunks=chunks, **SMALL)


@pytest.mark.parametrize("workers", [0, -1, 2.5, False])
def test_sweep_workers_zero_or_negative_is_a_clear_error(workers, equities):
    with pytest.raises((ValueError, TypeError), match=f"workers must be an integer.*{workers!r}"):
        ql.sweep("volatility_regime", equities, {"window": [10]}, workers=workers, **SMALL)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_sweep_threshold_nan_is_refused_not_run(bad, equities):
    with pytest.raises(ValueError, match=r"grid\['threshold'\] value must be a finite number"):
        ql.sweep("volatility_regime", equities, {"threshold": [0.8, bad]}, **SMALL)


@pytest.mark.parametrize("strategy, grid, exc, match", [
    ("volatility_regime", {"window": [10, 2.5]}, ValueError, "must be an integer, got 2.5"),
    ("volatility_regime", {"window": ["21"]}, TypeError, "must be an integer, got '21'"),
    ("volatility_regime", {"window": [True]}, TypeError, "must be an integer, got True"),
    ("volatility_regime", {"threshold": ["0.8"]}, TypeError, "must be a real number"),
    ("volatility_regime", {"threshold": [None]}, TypeError, "must be a real number"),
    ("cross_sectional_momentum", {"skip": [21, -5]}, ValueError, "integer >= 0, got -5"),
    ("attention", {"mode": ["reversal", "fade"]}, ValueError, "must be one of"),
    ("volatility_regime", {"window": {10, 21}}, TypeError, "a set has no order"),
    ("volatility_regime", {"window": np.array([[10, 21]])}, ValueError, "one-dimensional"),
    ("volatility_regime", [("window", [10])], TypeError, "grid must be a dict"),
])
def test_sweep_grid_values_of_the_wrong_type_are_refused(strategy, grid, exc, match, equities):
    with pytest.raises(exc, match=match):
        ql.sweep(strategy, equities, grid, **SMALL)


@pytest.mark.parametrize("values", [[10, 21, 10], [10, 10.0], np.array([21, 21])])
def test_sweep_duplicate_grid_values_are_refused(values, equities):
    with pytest.raises(ValueError, match=r"grid\['window'\] repeats \[(10|21)\]"):
        ql.sweep("volatility_regime", equities, {"window": values}, **SMALL)


def test_sweep_numpy_range_and_scalar_grid_values_equal_plain_lists(equities, tmp_path):
    plain = ql.sweep("volatility_regime", equities, {"window": [10, 20], "threshold": [0.8]},
                     store=tmp_path / "s", **SMALL)
    stamp = (tmp_path / "s" / "chunk_0.npz").stat().st_mtime_ns
    for grid in ({"window": np.array([10, 20]), "threshold": np.float64(0.8)},
                 {"window": range(10, 21, 10), "threshold": 0.8},
                 {"window": [10.0, np.int64(20)], "threshold": (0.8,)}):
        again = ql.sweep("volatility_regime", equities, grid, store=tmp_path / "s", **SMALL)
        xr.testing.assert_identical(plain, again)       # the same store: same signature
    assert (tmp_path / "s" / "chunk_0.npz").stat().st_mtime_ns == stamp
    assert plain.window.values.tolist() == [10, 20]
    one = ql.backtest(equities, ql.strategies.get("volatility_regime", window=20,
                                                  threshold=0.8).signal(equities),
                      group=True).metrics()
    assert float(plain.sharpe_ratio.sel(window=20, threshold=0.8)) == pytest.approx(
        float(one.sharpe_ratio), rel=1e-9)


@pytest.mark.parametrize("metrics, exc, match", [
    ((), ValueError, "metrics is empty"),
    ((3,), TypeError, "metric names"),
    (("sharpe",), ValueError, "not available in a metrics-only run"),
])
def test_sweep_metric_names_are_checked(metrics, exc, match, equities):
    with pytest.raises(exc, match=match):
        ql.sweep("volatility_regime", equities, {"window": [10]}, metrics=metrics,
                 progress=False)


def test_sweep_repeated_metric_name_is_reported_once(equities):
    res = ql.sweep("volatility_regime", equities, {"window": [10]}, progress=False,
                   metrics=("sharpe_ratio", "sharpe_ratio"))
    assert list(res.data_vars) == ["sharpe_ratio"]


@pytest.mark.parametrize("kw, exc, match", [
    (dict(periods=0), ValueError, "periods must be > 0, got 0"),      # was ZeroDivisionError
    (dict(periods=-1), ValueError, "periods must be > 0"),
    (dict(periods=np.nan), ValueError, "periods must be a finite number"),
    (dict(periods="252"), TypeError, "periods must be a real number"),
    (dict(feez=0.1), TypeError, "unexpected keyword argument 'feez'"),
    (dict(metrics_only=("sharpe_ratio",)), TypeError, "sweep sets"),
    (dict(fees=xr.DataArray([0.0, 0.001], dims="fee")), ValueError, "must be one value"),
])
def test_sweep_backtest_options_are_checked_before_any_chunk_or_store(kw, exc, match,
                                                                       equities, tmp_path):
    with pytest.raises(exc, match=match):
        ql.sweep("volatility_regime", equities, {"window": [10]}, progress=False,
                 store=tmp_path / "s", **kw)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("make", [
    lambda ds: ds.drop_vars("time"), lambda ds: ds.drop_vars("asset"),
    lambda ds: ds.rename(time="date"), lambda ds: ds["close"].drop_vars("time"),
    lambda ds: ds["close"].rename(asset="symbol"),
], ids=["no_time_coord", "no_asset_coord", "time_renamed", "array_no_time_coord",
        "array_asset_renamed"])
def test_sweep_data_without_time_or_asset_is_a_data_error_not_keyerror_time(make, equities):
    with pytest.raises(ql.DataError, match="sweep data"):
        ql.sweep("volatility_regime", make(equities), {"window": [10]}, **SMALL)


def test_sweep_empty_data_is_a_data_error_not_zero_division(equities):
    with pytest.raises(ql.DataError, match="sweep data is empty"):
        ql.sweep("volatility_regime", equities.isel(time=slice(0, 0)), {"window": [10]},
                 **SMALL)
    with pytest.raises(TypeError, match="xarray Dataset"):   # a DataFrame is closes (s60)
        ql.sweep("volatility_regime", equities["close"].values, {"window": [10]}, **SMALL)


def test_sweep_accepts_a_close_dataarray_as_backtest_does(equities):
    grid = {"window": [10, 21]}
    via_array = ql.sweep("volatility_regime", equities["close"], grid, **SMALL)
    via_ds = ql.sweep("volatility_regime", equities[["close"]], grid, **SMALL)
    xr.testing.assert_identical(via_array, via_ds.assign_attrs(data=""))


class _Boom(ql.strategies.Strategy):
    name, defaults, param_space, calls = "boom", {"k": 1}, {"k": (0, 10)}, []

    def _signal(self, ds, k):
        _Boom.calls.append(k)
        if k == 0:
            raise RuntimeError("boom at k=0")
        return xr.zeros_like(ds["close"])


def test_sweep_failing_chunk_stops_the_sweep_without_running_the_queued_chunks(equities):
    _Boom.calls.clear()
    with pytest.raises(RuntimeError, match="boom at k=0"):
        ql.sweep(_Boom(), equities, {"k": list(range(0, 11))}, chunks=1, workers=1,
                 **SMALL)
    assert len(_Boom.calls) <= 3          # the failing chunk and at most the next ones


# ---- the same class of arguments in ql.optimize (counts, seeds, lists of choices)
@pytest.mark.parametrize("kw, exc, match", [
    (dict(n_trials=True), TypeError, "n_trials must be an integer, got True"),
    (dict(n_jobs=-1), ValueError, "n_jobs must be an integer >= 1, got -1"),   # was: 1 job
    (dict(n_jobs=0), ValueError, "n_jobs must be an integer >= 1, got 0"),
    (dict(n_jobs=2.7), ValueError, "n_jobs must be an integer, got 2.7"),      # was: 2
    (dict(population_size=2.5, optimization_method="genetic"), ValueError,
     "population_size must be an integer"),
    (dict(population_size=1, optimization_method="genetic"), ValueError,
     "population_size must be an integer >= 2"),
    (dict(seed=-1), ValueError, r"seed must be an integer in \[0, 4294967295\]"),
    (dict(seed=1.5), ValueError, "seed must be an integer, got 1.5"),
    (dict(param_bounds={"k": [0.5, np.nan]}), ValueError, "choices must be finite"),
    (dict(param_bounds={"k": [0.5, 0.7, 0.5]}), ValueError, r"choices repeat \[0.5\]"),
])
def test_optimize_counts_seeds_and_choices_are_checked_before_any_trial(kw, exc, match,
                                                                       equities):
    kw = {"param_bounds": {"k": (0.1, 1.0)}, "n_trials": 2, **kw}
    with pytest.raises(exc, match=match):
        ql.optimize.optimize_strategy_parameters("spc", data=equities, progress=False, **kw)


def test_optimize_walk_forward_and_regime_counts_are_checked_at_construction():
    O = ql.optimize
    with pytest.raises(ValueError, match="n_trials must be an integer >= 1, got 0"):
        O.WalkForwardOptimizer(100, 50, 50, n_trials=0)
    with pytest.raises(ValueError, match="n_trials must be an integer >= 1, got 0"):
        O.RegimeAdaptiveOptimizer(lambda d: d.time.dt.year.astype(str), n_trials=0)
    with pytest.raises(ValueError, match="min_bars must be an integer >= 0, got -1"):
        O.RegimeAdaptiveOptimizer(lambda d: d.time.dt.year.astype(str), min_bars=-1)
    with pytest.raises(ValueError, match="min_bars must be an integer, got nan"):
        O.RegimeAdaptiveOptimizer(lambda d: d.time.dt.year.astype(str), min_bars=np.nan)


class _CountedSPC(type(ql.strategies.get("spc"))):
    """spc counting its combination checks and signals (the sweep's work)."""

    name = "spc_counted_test"
    work: list = []

    @classmethod
    def _check_combination(cls, **params):
        cls.work.append("combination")

    def _signal(self, ds, **kw):
        _CountedSPC.work.append("signal")
        return super()._signal(ds, **kw)


def test_sweep_huge_grid_is_refused_upfront_with_its_count_unless_opted_in(equities,
                                                                           tmp_path):
    d = equities.isel(time=slice(-300, None))
    assert ql.sweeps.MAX_COMBINATIONS == 10 ** 6     # the documented default limit
    strat = _CountedSPC()
    _CountedSPC.work.clear()                         # (made: its own combination checked)
    grid = {"k": np.linspace(0.0, 1.5, 10 ** 4), "h": list(np.linspace(2.0, 8.0, 10 ** 4))}
    store = tmp_path / "store"
    with pytest.raises(ValueError, match=r"the grid has 100,000,000 combinations \(10000 k x "
                                         r"10000 h\), more than max_combinations=1,000,000"):
        ql.sweep(strat, d, grid, store=store, progress=False)
    # 1001 x 1000 = 1,001,000: just over; refused before any check, signal or store file
    with pytest.raises(ValueError, match="1,001,000 combinations"):
        ql.sweep(strat, d, {"k": np.linspace(0.0, 1.5, 1001),
                                    "h": np.linspace(2.0, 8.0, 1000)}, store=store,
                 progress=False)
    assert _CountedSPC.work == [] and not store.exists()
    # an explicit opt-in runs a grid above a (lowered) limit; at the limit it runs
    small = {"k": [0.1, 0.2, 0.3], "h": [3.0, 4.0]}
    with pytest.raises(ValueError, match=r"6 combinations .*max_combinations=5; .*pass "
                                         r"max_combinations=6"):
        ql.sweep("spc", d, small, max_combinations=5, progress=False)
    got = ql.sweep("spc", d, small, max_combinations=6, progress=False, group=True)
    want = ql.sweep("spc", d, small, progress=False, group=True)
    xr.testing.assert_identical(got, want)
    sig = ql.strategies.get("spc", k=0.2, h=4.0).signal(d)
    ref = ql.backtest(d, sig, group=True)
    assert float(got["sharpe_ratio"].sel(k=0.2, h=4.0)) == pytest.approx(
        float(ql.metrics.sharpe_ratio(ref.returns)), rel=1e-9)


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-1, ValueError), (2.5, ValueError),
                                      (None, TypeError), (True, TypeError)])
def test_sweep_max_combinations_is_checked(bad, exc, equities):
    with pytest.raises(exc, match=f"max_combinations must be an integer.*{bad!r}"):
        ql.sweep("spc", equities, {"k": [0.1]}, max_combinations=bad, progress=False)


@pytest.mark.parametrize("where", ["sweep", "optimize", "run_suite"])
def test_a_client_that_is_not_one_is_named(where, tmp_path):
    """client=42 was an AttributeError deep in the run (or after its first chunk)."""
    ds = ql.data.load().isel(time=slice(0, 120))
    calls = {
        "sweep": lambda: ql.sweep("volatility_regime", ds, {"window": [10, 20]},
                                  client=42, progress=False),
        "optimize": lambda: ql.optimize.optimize_strategy_parameters(
            "volatility_regime", {"window": [10, 20]}, ds, optimization_method="tpe",
            n_trials=2, client=42, progress=False),
        "run_suite": lambda: suite.run_suite(
            [suite.Run(str(Path(__file__).parents[1] / "notebooks" / "00_quickstart.ipynb"))],
            tmp_path, client=42),
    }
    with pytest.raises(TypeError, match="client must be a dask.distributed.Client.*int 42"):
        calls[where]()


def test_sweep_metrics_true_keeps_every_streamed_metric(equities):
    """metrics=True is backtest(metrics_only=True)'s every metric, one sweep result each;
    metrics=False is refused (a sweep keeps metrics)."""
    res = ql.sweep("volatility_regime", equities, {"window": [10]}, progress=False,
                   metrics=True)
    assert set(res.data_vars) == set(ql.metrics.streaming_names()) | set(
        ql.backtesting.STREAMED_EXTRAS)
    with pytest.raises(ValueError, match="a sweep keeps metrics"):
        ql.sweep("volatility_regime", equities, {"window": [10]}, progress=False,
                 metrics=False)


@pytest.mark.parametrize("kw", [dict(fees=0.001), dict(group=True, fees=0.002, dd_limit=0.1)])
def test_each_metric_alone_keeps_only_its_statistics_with_the_bits_of_all(kw, equities):
    """A metrics-only run keeps only the running statistics its metrics read (acc_need:
    a Sharpe ratio alone, no log1p per return); each metric alone, in memory and
    streamed, has the bits of the run that keeps every statistic."""
    sig = ql.strategies.get("volatility_regime", window=[10, 21]).signal(equities)
    every = ql.backtest(equities, sig, metrics_only=True, **kw)
    full = ql.backtest(equities, sig, **kw).metrics()
    lazy = equities.chunk(time=700, asset=2)
    for name in ql.metrics.streaming_names():
        need = ql.metrics.acc_need([name])
        assert need != ql.metrics.acc_need(ql.metrics.streaming_names()), name
        want = full[name].transpose(*every[name].dims).values
        assert np.isfinite(want).any(), name
        np.testing.assert_allclose(every[name].values, want, rtol=1e-9, err_msg=name)
        for data in (equities, lazy):
            one = ql.backtest(data, sig, metrics_only=[name], **kw)
            np.testing.assert_array_equal(one[name].values, every[name].values,
                                          err_msg=name)


def test_statistics_a_run_did_not_keep_read_as_nan():
    """from_accumulator(need=): a formula reading a statistic the accumulator skipped
    gives NaN, never the statistic's start value (a wealth of 1.0: a 0 % return)."""
    from quantlab._kernels import metrics as km
    r = np.random.default_rng(3).normal(0, 0.01, (300, 2))
    acc = km.accumulate(r, np.log1p(r), np.empty((0, 2)), 0.0)
    need = ql.metrics.acc_need(["sharpe_ratio"])
    got = ql.metrics.from_accumulator(acc, ["sharpe_ratio", "total_return"], 252, need=need)
    want = ql.metrics.from_accumulator(acc, ["sharpe_ratio"], 252)
    np.testing.assert_array_equal(got["sharpe_ratio"], want["sharpe_ratio"])
    assert np.isnan(got["total_return"]).all()
