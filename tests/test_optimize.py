"""ql.optimize: every method finds a planted optimum, scores only inside its window (with
warm-up before it), reproduces with a seed, resumes a stored study, spreads trials over
threads or a dask client with the same values; walk-forward folds, stitching and
stability; regime-adaptive parameters and their switching signal without look-ahead; DSR
and PBO from the result's own trials; clear errors."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql

O = ql.optimize


class LagSign(ql.strategies.Strategy):
    """Signal at t = sign of the return k - 1 bars before t (a test strategy, unregistered):
    it earns the return of t + 1 when returns are autocorrelated at lag k."""

    name = "lag_sign_test"
    defaults = {"k": 1, "scale": 1.0}
    param_space = {"k": (1, 10), "scale": (0.5, 1.0)}

    def _signal(self, ds, k, scale):
        r = ql.data.returns(ds["close"])
        return scale * np.sign(r.shift(time=k - 1))


class Spy(LagSign):
    """Records the last timestamp of every Dataset it is given."""

    name = "spy_test"
    seen: list = []

    def _signal(self, ds, k, scale):
        Spy.seen.append(ds.time.values[-1])
        return super()._signal(ds, k, scale)


def _market(n=1200, lag=5, rho=0.5, m=2, seed=0, regime_lags=None):
    """Returns autocorrelated at ``lag`` (r_t = rho r_{t-lag} + noise); with
    ``regime_lags`` {label: lag} and 100-bar alternating regimes, the lag of bar t is
    the one of the label at t - 1 (the label known when the position was chosen)."""
    rng = np.random.default_rng(seed)
    e = rng.normal(0.0, 0.01, (n, m))
    r = e.copy()
    labels = _regime_labels(n)
    for t in range(12, n):
        L = lag if regime_lags is None else regime_lags[labels[t - 1]]
        r[t] = rho * r[t - L] + e[t]
    close = 100 * np.cumprod(1 + r, axis=0)
    times = pd.bdate_range("2001-01-01", periods=n)
    return xr.Dataset({"close": (("time", "asset"), close)},
                      coords={"time": times, "asset": [f"S{i}" for i in range(m)],
                              "asset_class": ("asset", ["equity"] * m)})


def _regime_labels(n):
    return np.where((np.arange(n) // 100) % 2 == 0, "A", "B")


def _regimes(ds):  # causal: a bar's label depends only on its position
    return xr.DataArray(_regime_labels(ds.sizes["time"]), dims="time",
                        coords={"time": ds.time})


@pytest.fixture(scope="module")
def market():
    return _market()


@pytest.mark.parametrize("method", ["grid", "tpe", "genetic", "bayesian"])
def test_every_method_finds_the_planted_lag(market, method):
    res = O.optimize_strategy_parameters(LagSign(), {"k": (1, 10)}, market,
                                         optimization_method=method, n_trials=25,
                                         fees=0.0005, progress=False)
    assert res["k"] == 5 and isinstance(res["k"], int)
    assert res.best_value == pytest.approx(res.trials["sharpe_ratio"].max())
    assert res.best_value > 2.0                       # a strong planted edge
    assert res.dsr > 0.95 and res.pbo < 0.1           # and the guards see it is real


def test_noise_is_flagged_as_overfit():
    # six markets without any autocorrelation: the best lag is luck, and the guards say so
    pbos, dsrs = [], []
    for seed in range(6):
        res = O.optimize_strategy_parameters(LagSign(), {"k": (1, 10), "scale": [1.0]},
                                             _market(rho=0.0, seed=seed),
                                             optimization_method="grid", n_trials=10,
                                             progress=False)
        pbos.append(res.pbo)
        dsrs.append(res.dsr)
    assert 0.3 < np.mean(pbos) < 0.9 and max(dsrs) < 0.9


def test_grid_is_one_vectorised_backtest_equal_to_scoring_by_hand(market):
    start, end = "2002-01-01", "2004-06-30"
    res = O.optimize_strategy_parameters(LagSign(), {"k": [2, 5, 7], "scale": (0.5, 1.0)},
                                         market, start_date=start, end_date=end,
                                         optimization_method="grid", n_trials=9,
                                         fees=0.001, progress=False)
    assert len(res.trials) == 9 and sorted(set(res.trials["scale"])) == [0.5, 0.75, 1.0]
    for _, row in res.trials.iterrows():
        s = LagSign(k=int(row["k"]), scale=row["scale"])
        hist = market.sel(time=slice(None, end))
        sig = s.signal(hist).sel(time=slice(start, None))
        bt = ql.backtest(hist.sel(time=slice(start, None)), sig, group=True, fees=0.001)
        assert row["sharpe_ratio"] == pytest.approx(float(ql.metrics.sharpe_ratio(bt.returns)),
                                                    rel=1e-12)
        assert row["max_drawdown"] == pytest.approx(float(ql.metrics.max_drawdown(bt.returns)),
                                                     rel=1e-12)
    best = res.backtest(market, start, end, fees=0.001)
    assert float(ql.metrics.sharpe_ratio(best.returns)) == pytest.approx(res.best_value,
                                                                        rel=1e-12)
    # the trial returns span exactly the scoring window
    t = res.trial_returns.time.values
    assert t[0] == np.datetime64(pd.Timestamp("2002-01-01")) and t[-1] <= np.datetime64(end)


def test_scoring_window_sees_no_later_data_and_warms_up_on_earlier(equities):
    Spy.seen.clear()
    start, end = equities.time.values[300], equities.time.values[700]
    O.optimize_strategy_parameters(Spy(), {"k": (1, 20)}, equities, start_date=start,
                                   end_date=end, n_trials=5, progress=False)
    assert Spy.seen and max(Spy.seen) == end
    # a 252-bar lookback warms up before the window: the window's signal is not all NaN
    res = O.optimize_strategy_parameters("volatility_regime", {"threshold": (0.5, 0.9)},
                                         equities, start_date=start, end_date=end,
                                         n_trials=4, progress=False)
    first = res.best_returns.isel(time=slice(1, 40))
    assert float(abs(first).sum()) > 0 and np.isfinite(res.best_value)


@pytest.mark.parametrize("method", ["tpe", "genetic", "bayesian"])
def test_seed_reproduces_the_search(market, method):
    kw = dict(param_bounds={"k": (1, 10), "scale": (0.5, 1.0)}, data=market,
              optimization_method=method, n_trials=12, progress=False)
    a = O.optimize_strategy_parameters(LagSign(), seed=7, **kw)
    b = O.optimize_strategy_parameters(LagSign(), seed=7, **kw)
    c = O.optimize_strategy_parameters(LagSign(), seed=8, **kw)
    pd.testing.assert_frame_equal(a.trials, b.trials)
    assert not a.trials[["k", "scale"]].equals(c.trials[["k", "scale"]])


def test_stored_study_resumes(market, tmp_path):
    db = f"sqlite:///{tmp_path / 'study.db'}"
    kw = dict(param_bounds={"k": (1, 10)}, data=market, optimization_method="tpe",
              storage=db, study_name="lag", progress=False)
    first = O.optimize_strategy_parameters(LagSign(), n_trials=6, **kw)
    again = O.optimize_strategy_parameters(LagSign(), n_trials=10, **kw)
    assert len(again.study.trials) == 10 and len(again.trials) == 10
    pd.testing.assert_frame_equal(again.trials.iloc[:6], first.trials)
    with pytest.raises(ValueError, match="searched"):
        O.optimize_strategy_parameters(LagSign(), {"scale": (0.5, 1.0)}, market,
                                       storage=db, study_name="lag", n_trials=12,
                                       progress=False)


@pytest.mark.parametrize("storage", ["foo", "sqlite:////no/such/dir/study.db", 42])
def test_a_storage_optuna_cannot_open_is_named(market, storage):
    """sqlalchemy's "Could not parse SQLAlchemy URL" / "unable to open database file" (or
    an AttributeError for 42) did not say it was storage= that failed."""
    with pytest.raises(ValueError, match=r"storage=.*(sqlite:///study.db|optuna storage)"):
        O.optimize_strategy_parameters(LagSign(), {"k": (1, 10)}, market,
                                       optimization_method="tpe", storage=storage,
                                       n_trials=2, progress=False)


def _rescore(res, market, **kw):
    """Every trial's objective evaluated again, one at a time."""
    for _, row in res.trials.iterrows():
        one = O.optimize_strategy_parameters(
            LagSign(), {"k": [int(row["k"])], "scale": [row["scale"]]}, market,
            optimization_method="grid", progress=False, **kw)
        assert row["sharpe_ratio"] == pytest.approx(one.best_value, rel=1e-12)


def test_threads_and_a_dask_client_give_the_values_of_a_sequential_run(market):
    bounds = {"k": (1, 10), "scale": (0.5, 1.0)}
    res = O.optimize_strategy_parameters(LagSign(), bounds, market, n_trials=8, n_jobs=2,
                                         fees=0.001, progress=False)
    assert len(res.trials) == 8
    _rescore(res, market, fees=0.001)
    from distributed import Client

    with Client(processes=False, n_workers=1, threads_per_worker=2,
                dashboard_address=None) as client:
        res = O.optimize_strategy_parameters(LagSign(), bounds, market, n_trials=6,
                                             client=client, fees=0.001, progress=False)
    assert len(res.trials) == 6
    _rescore(res, market, fees=0.001)


def test_multi_objective_pareto_front(market):
    res = O.optimize_strategy_parameters(LagSign(), {"k": (1, 10), "scale": (0.5, 1.0)},
                                         market, optimization_method="genetic",
                                         objective=("sharpe_ratio", "annual_volatility"),
                                         n_trials=24, progress=False)
    front, t = res.pareto, res.trials
    assert len(front) >= 1 and res.best_trial in front.index
    for _, p in front.iterrows():   # no trial is better on both and strictly on one
        better = (t["sharpe_ratio"] >= p["sharpe_ratio"]) & (
            t["annual_volatility"] <= p["annual_volatility"])
        strictly = (t["sharpe_ratio"] > p["sharpe_ratio"]) | (
            t["annual_volatility"] < p["annual_volatility"])
        assert not (better & strictly).any()
    assert isinstance(res.best_value, tuple) and len(res.best_value) == 2


def test_guards_come_from_the_distinct_trials(market):
    res = O.optimize_strategy_parameters(LagSign(), {"k": (1, 4)}, market, n_trials=12,
                                         progress=False)
    # TPE proposes some of the 4 values again: each distinct trial counts once
    assert res.trial_returns.sizes["trial"] == res.trials["k"].nunique() <= 4
    x = res.trial_returns.values
    sr = x.mean(0) / x.std(0, ddof=1)
    assert res.dsr == pytest.approx(ql.integrity.deflated_sharpe_ratio(
        res.best_returns.values, trial_sharpes=sr), rel=1e-12)
    assert res.pbo == ql.integrity.pbo(x, n_splits=16)["pbo"]


def test_seed_keywords_mapping_and_minimised_objectives(market):
    res = O.optimize_strategy_parameters(strategy_class=LagSign, parameter_bounds={
        "k": (1, 10)}, price_data=market, optimization_method="grid", n_trials=10,
        objective="annual_volatility", progress=False)
    assert dict(res.items()) == res.best_params == {"k": res["k"]} and len(res) == 1
    assert res.best_value == pytest.approx(res.trials["annual_volatility"].min())
    assert "OptimizationResult(grid: annual_volatility" in repr(res)
    res = O.optimize_strategy_parameters(LagSign(), {"k": (1, 10)}, market, n_trials=10,
                                         optimization_method="grid", objective="turnover",
                                         direction="maximize", progress=False)
    assert res.best_value == pytest.approx(res.trials["turnover"].max())


def test_errors(market):
    f = O.optimize_strategy_parameters
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['kk'\]"):
        f(LagSign(), {"kk": (1, 3)}, market)
    with pytest.raises(ValueError, match="empty range, low 5 > high 2"):
        f(LagSign(), {"k": (5, 2)}, market)
    with pytest.raises(ValueError, match="empty list"):
        f(LagSign(), {"k": []}, market)
    with pytest.raises(ValueError, match="Did you mean 'bayesian'"):
        f(LagSign(), {"k": (1, 3)}, market, optimization_method="bayes")
    with pytest.raises(ValueError, match="Did you mean 'sharpe_ratio'"):
        f(LagSign(), {"k": (1, 3)}, market, objective="sharpe")
    with pytest.raises(ValueError, match="'bayesian' optimises one objective"):
        f(LagSign(), {"k": (1, 3)}, market, optimization_method="bayesian",
          objective=("sharpe_ratio", "turnover"))
    with pytest.raises(ValueError, match="start_date 2030-01-01.*outside the data's span"):
        f(LagSign(), {"k": (1, 3)}, market, start_date="2030-01-01")
    with pytest.raises(ValueError, match="unknown strategy"):
        f("no_such_strategy", {"k": (1, 3)}, market)
    with pytest.raises(ValueError, match="n_trials"):
        f(LagSign(), {"k": (1, 3)}, market, n_trials=0)
    with pytest.raises(ValueError, match="fewer than optimization_window"):
        O.WalkForwardOptimizer().fold_bounds(300)
    with pytest.raises(ValueError, match="step_size"):
        O.WalkForwardOptimizer(validation_window=21, step_size=63)


def test_walk_forward_folds_stitching_and_stability():
    assert len(O.WalkForwardOptimizer().fold_bounds(3270)) == (3270 - 252 - 63) // 21 + 1
    ds = _market(n=800)
    wf = O.WalkForwardOptimizer(optimization_window=250, validation_window=50, step_size=50,
                                optimization_method="grid", n_trials=10, progress=False)
    res = wf.run(LagSign(), {"k": (1, 10)}, ds, fees=0.0005)
    n_folds = (800 - 250 - 50) // 50 + 1
    assert len(res.folds) == n_folds and (res.folds["k"] == 5).mean() >= 0.8
    f = res.folds
    t = ds.time.values
    assert (f["is_start"].values == t[np.arange(n_folds) * 50]).all()
    assert (f["oos_start"].values == t[250 + np.arange(n_folds) * 50]).all()
    assert (f["is_end"].values < f["oos_start"].values).all()
    # stitched: the first step_size OOS bars of each fold, contiguous, no overlap
    assert res.oos_returns.sizes["time"] == n_folds * 50
    assert (res.oos_returns.time.values == t[250:250 + n_folds * 50]).all()
    assert float(res.oos_metrics["sharpe_ratio"]) > 1.0 and res.oos_psr > 0.95
    assert 0 < res.efficiency
    st = res.stability.loc["k"]
    assert st["changes"] == int((f["k"] != f["k"].shift()).iloc[1:].sum())
    assert st["mode_share"] == pytest.approx((f["k"] == f["k"].mode()[0]).mean())
    assert f["dsr"].notna().all() and f["pbo"].between(0, 1).all()


def test_regime_adaptive_finds_each_regimes_lag_and_switches_without_lookahead():
    ds = _market(n=1600, regime_lags={"A": 5, "B": 2}, seed=1)
    opt = O.RegimeAdaptiveOptimizer(_regimes, optimization_method="grid", n_trials=10,
                                    progress=False)
    res = opt.run(LagSign(), {"k": (1, 10)}, ds)
    assert res.params == {"A": {"k": 5}, "B": {"k": 2}}
    sig = res.signal(ds)
    lab = _regimes(ds)
    for label, k in (("A", 5), ("B", 2)):
        want = LagSign(k=k).signal(ds).where(lab == label)
        xr.testing.assert_equal(sig.where(lab == label), want.transpose("time", "asset"))
    ql.testing.assert_no_lookahead(res, ds)
    # switching beats either single choice on this market
    one = lambda k: float(ql.backtest(ds, LagSign(k=k).signal(ds), group=True)["sharpe_ratio"])  # noqa: E731
    assert float(res.backtest(ds)["sharpe_ratio"]) > max(one(5), one(2))
    with pytest.raises(ValueError, match="regimes must be labels on time"):
        O.RegimeAdaptiveOptimizer(np.zeros(3), progress=False).run(LagSign(), {"k": (1, 3)}, ds)


def test_result_figures(market):
    res = O.optimize_strategy_parameters(LagSign(), {"k": (1, 10)}, market, n_trials=10,
                                         progress=False)
    fig = res.plot()
    assert len(fig.children) == 2                    # trials and the CSCV logits
    wf = O.WalkForwardOptimizer(250, 50, 50, optimization_method="grid", n_trials=5,
                                progress=False).run(LagSign(), {"k": (1, 10)},
                                                     _market(n=500))
    assert len(wf.plot().children) == 3              # equity, Sharpe per fold, chosen k


class Counted(LagSign):
    """LagSign with a limit on ``scale`` (>= 0), counting its signal calls."""

    name = "counted_test"
    limits = {"scale": (0.0, None, "a position size")}
    calls: list = []

    def _signal(self, ds, k, scale):
        Counted.calls.append((k, scale))
        return super()._signal(ds, k, scale)


BAD_BOUNDS = [({"scale": (-5.0, 5.0)}, r"param_bounds\['scale'\] low end must be >= 0.0, got -5.0"),
              ({"scale": (0.5, -0.1)}, "empty range"),
              ({"k": (0, 5)}, r"param_bounds\['k'\] low end must be an integer >= 1, got 0"),
              ({"k": (1, 10 ** 7)}, r"param_bounds\['k'\] high end must be an integer <= "),
              ({"k": (1.5, 4)}, r"param_bounds\['k'\] low end must be an integer"),
              ({"scale": [0.5, 1.0, -1.0]}, r"param_bounds\['scale'\] choice must be >= 0.0, "
                                            "got -1.0"),
              ({"k": [2, 0]}, r"param_bounds\['k'\] choice must be an integer >= 1, got 0")]


@pytest.mark.parametrize("bounds, match", BAD_BOUNDS)
def test_search_bounds_outside_the_parameter_limits_are_refused_before_any_trial(
        market, bounds, match):
    # spc's k (the CUSUM allowance) must be >= 0: a (-5, 5) range used to be searched
    with pytest.raises(ValueError, match=r"spc param_bounds\['k'\] low end must be >= 0.0, "
                                         r"got -5.0 \(the CUSUM allowance\)"):
        O.optimize_strategy_parameters("spc", {"k": (-5.0, 5.0)}, market, n_trials=3,
                                       progress=False)
    runs = [lambda: O.optimize_strategy_parameters(Counted(), bounds, market, n_trials=3,
                                                   progress=False, optimization_method=m)
            for m in O.METHODS]
    runs.append(lambda: O.WalkForwardOptimizer(300, 100, 100, n_trials=2, progress=False)
                .run(Counted(), bounds, market))
    runs.append(lambda: O.RegimeAdaptiveOptimizer(_regimes, n_trials=2, progress=False)
                .run(Counted(), bounds, market))
    for run in runs:
        Counted.calls.clear()
        with pytest.raises(ValueError, match=match):
            run()
        assert Counted.calls == []               # refused before any trial


def test_integer_bounds_given_as_floats_search_integers(market):
    res = O.optimize_strategy_parameters(LagSign(), {"k": (2.0, 6.0)}, market, n_trials=4,
                                         progress=False)
    assert all(isinstance(v, int) and 2 <= v <= 6 for v in res.trials["k"].tolist())
    assert isinstance(res.best_params["k"], int)


BAD_DATES = [(dict(start_date="notadate"), ValueError,
              "start_date must be a date such as '2020-01-31', got 'notadate'"),
             (dict(end_date="2003-13-45"), ValueError, "end_date must be a date"),
             (dict(start_date="2003-06-01", end_date="2003-01-01"), ValueError,
              "end_date 2003-01-01 is before start_date 2003-06-01"),
             (dict(start_date="1990-01-01"), ValueError,
              "start_date 1990-01-01.*outside the data's span: the data runs from 2001-01-01"),
             (dict(end_date="2035-01-01"), ValueError, "end_date 2035-01-01.*outside"),
             (dict(start_date=20020101), TypeError, "start_date must be a date"),
             (dict(start_date=np.datetime64("NaT")), ValueError, "start_date must be a date"),
             (dict(end_date=pd.Timestamp("2003-01-01", tz="UTC")), ValueError,
              "end_date.*time zone")]


@pytest.mark.parametrize("kw, exc, match", BAD_DATES)
def test_bad_start_or_end_date_is_a_clear_error_not_a_pandas_slice_error(market, kw, exc,
                                                                         match):
    f = O.optimize_strategy_parameters
    with pytest.raises(exc, match=match):
        f(LagSign(), {"k": (1, 3)}, market, n_trials=2, progress=False, **kw)
    with pytest.raises(exc, match=match):
        O.RegimeAdaptiveOptimizer(_regimes, n_trials=2, progress=False).run(
            LagSign(), {"k": (1, 3)}, market, **kw)
    res = f(LagSign(), {"k": [2, 3]}, market, optimization_method="grid", progress=False)
    with pytest.raises(exc, match=match):
        res.backtest(market, **kw)
    # good dates of every kind still work, and give the same window
    t = market.time.values
    a = f(LagSign(), {"k": [2, 3]}, market, start_date="2002-01-01", end_date="2003-01-01",
          optimization_method="grid", progress=False)
    b = f(LagSign(), {"k": [2, 3]}, market, start_date=np.datetime64("2002-01-01"),
          end_date=pd.Timestamp("2003-01-01").to_pydatetime(), optimization_method="grid",
          progress=False)
    assert a.trials.equals(b.trials)
    assert a.trial_returns.time.values[0] == np.datetime64("2002-01-01")
    assert a.trial_returns.time.values[-1] == t[t <= np.datetime64("2003-01-01")][-1]


class Paired(Counted):
    """Counted with a combination rule: k * scale <= 5."""

    name = "paired_test"

    @classmethod
    def _check_combination(cls, k, scale, **_):
        if k * scale > 5:
            raise ValueError(f"{cls.name}: k * scale ({k * scale}) must be <= 5")


@pytest.mark.parametrize("bounds", [{"k": (1, 10), "scale": (0.5, 1.0)},
                                    {"k": [2, 10, 3], "scale": (0.5, 1.0)}])
def test_search_bounds_with_an_invalid_combination_are_refused_before_any_trial(market,
                                                                               bounds):
    """A space whose corner breaks a combination rule (lookback >= window, ...) used to
    fail in the middle of the search, when a trial landed there."""
    for method in O.METHODS:
        Counted.calls.clear()
        with pytest.raises(ValueError, match=r"include an invalid combination \{'k': 10, "
                                             r"'scale': 1.0\}: paired_test: k \* scale"):
            O.optimize_strategy_parameters(Paired(), bounds, market, n_trials=3,
                                           optimization_method=method, progress=False)
        assert Counted.calls == []
    with pytest.raises(ValueError, match="lookback \\(50\\) must be >= window \\(100\\)"):
        O.optimize_strategy_parameters("volatility_regime", {"window": (10, 100),
                                                             "lookback": (50, 300)},
                                       market, n_trials=2, progress=False)
    # a space valid everywhere runs, and stays inside it
    res = O.optimize_strategy_parameters(Paired(), {"k": (1, 5), "scale": (0.5, 1.0)}, market,
                                         n_trials=3, progress=False)
    assert all(k * s <= 5 for k, s in Counted.calls)
    assert 1 <= res.best_params["k"] <= 5


def test_walk_forward_windows_too_short_to_score_are_refused_up_front():
    # every fold failed on "the scoring window [...] holds 1 bars" after the search
    for kw in ({"optimization_window": 2}, {"validation_window": 1, "step_size": 1}):
        name = next(iter(kw))
        with pytest.raises(ValueError, match=f"{name} \\({kw[name]} bars\\) must be at least 3"):
            O.WalkForwardOptimizer(**kw)
    assert O.WalkForwardOptimizer(3, 3, 3).fold_bounds(9) == [(0, 3, 6), (3, 6, 9)]
    with pytest.raises(ValueError, match="n_bars must be an integer"):   # a bare TypeError
        O.WalkForwardOptimizer(3, 3, 3).fold_bounds(20.5)


def test_regime_labels_too_rare_to_score_or_on_other_times():
    ds = _market(n=300)
    n = ds.sizes["time"]
    rare = xr.DataArray(np.where(np.arange(n) == 150, "rare", "common"),
                        coords={"time": ds.time})
    # one bar of "rare" with min_bars=0: its search had no score and the whole run failed
    out = O.RegimeAdaptiveOptimizer(rare, optimization_method="grid", n_trials=2, min_bars=0,
                                    progress=False).run(LagSign(), {"k": [1, 2]}, ds)
    assert list(out.params) == ["common"]
    # labels an hour off the bars: all dropped by the reindex, the default alone, silently
    off = rare.assign_coords(time=ds.time.values + np.timedelta64(1, "h"))
    with pytest.raises(ql.DataError, match="share no timestamp"):
        O.RegimeAdaptiveOptimizer(off, optimization_method="grid", n_trials=2,
                                  progress=False).run(LagSign(), {"k": [1, 2]}, ds)


def test_result_backtest_trades_with_the_searchs_costs_unless_told_otherwise(market):
    # documented "default: the search's", but the options were dropped: an out-of-sample
    # run of a search with fees traded for free
    res = O.optimize_strategy_parameters(LagSign(), {"k": [2, 3]}, market, end_date="2002-12-31",
                                         optimization_method="grid", fees=0.01, progress=False)
    oos = lambda **kw: float(res.backtest(market, "2003-01-01", **kw)["total_return"])  # noqa: E731
    assert oos() == oos(fees=0.01) != oos(fees=0.0)
    assert oos(fees=0.0) > oos()


def test_a_grid_too_big_for_one_backtest_is_refused_before_it_runs(market, monkeypatch):
    # n_trials=10**9 over two float ranges: ~10^9 combinations in one vectorised backtest,
    # which allocated until the process ran out of memory (10**9 is now refused as a count,
    # above _validate.MAX_COUNT: the count's bound, 10**6 combinations, is still too many)
    with pytest.raises(ValueError, match="combinations x .* MAX_GRID_CELLS"):
        O.optimize_strategy_parameters(LagSign(), {"k": (1, 10), "scale": (0.5, 1.0)}, market,
                                       optimization_method="grid", n_trials=10**6,
                                       progress=False)
    cells = market.sizes["time"] * market.sizes["asset"]
    monkeypatch.setattr(O, "MAX_GRID_CELLS", 2 * cells)      # the bound itself is allowed
    f = lambda ks: O.optimize_strategy_parameters(  # noqa: E731
        LagSign(), {"k": ks}, market, optimization_method="grid", progress=False)
    assert len(f([1, 2]).trials) == 2
    with pytest.raises(ValueError, match="3 combinations"):
        f([1, 2, 3])
