"""Parameter optimisation, reported with how likely its result is to be overfit.

``optimize_strategy_parameters`` searches a strategy's parameters for the best
``objective`` (a metric name of DESIGN.md) of its strategy return stream,
``backtest(data, signal, group=True, **backtest_kw)``, scored only on the bars inside
``[start_date, end_date]``. The signal is computed on all data up to ``end_date``, so
indicators warm up on earlier bars; the account starts flat at ``start_date``.

Methods: ``"bayesian"`` (Gaussian-process surrogate of the ``bayesian-optimization``
package, its default acquisition; integers rounded and choices indexed from a continuous
box), ``"tpe"`` (optuna's TPE), ``"genetic"`` (optuna's NSGA-II, one or several
objectives) and ``"grid"`` (every combination as labelled dims of one vectorised
backtest). Every result carries, from its own distinct trials, the deflated Sharpe ratio
of the best trial (Bailey & López de Prado 2014) and the probability of backtest
overfitting by CSCV (PBO, ranking trials by their Sharpe ratio whatever the objective);
``result.reality_check()`` adds White's Reality Check / Hansen's SPA.

``WalkForwardOptimizer`` re-optimises on rolling in-sample windows and trades each
choice on the following bars; ``RegimeAdaptiveOptimizer`` picks parameters per regime
label and switches between them as the label (known at each bar's close) changes.
"""
from __future__ import annotations

import difflib
import inspect
import itertools
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from quantlab import _progress, _validate, fmt, integrity
from quantlab._doc import fill
from quantlab._threads import MAX_THREADS
from quantlab.backtesting import backtest
from quantlab.backtesting.options import BacktestOptions
from quantlab.calendar import periods_for
from quantlab.compat import seed_optimizer_arguments, seed_walk_forward
from quantlab.data import load as load_data, shifted, time_label, user_path
from quantlab.errors import DataError
from quantlab.metrics import BUILTIN, METRICS, registered, summary
from quantlab.strategies import resolve

__all__ = ["optimize_strategy_parameters", "OptimizationResult", "WalkForwardOptimizer",
           "WalkForwardResult", "RegimeAdaptiveOptimizer", "RegimeAdaptiveResult",
           "METHODS", "OBJECTIVES"]


# shared docstring blocks (quantlab._doc.fill): the examples' common setup, written once
_DOC = {
    "search": """\
>>> import quantlab as ql
>>> from quantlab import optimize
>>> ds = ql.data.load().isel(time=slice(0, 300))
>>> s = ql.strategies.get("volatility_regime", lookback=60)
>>> res = optimize.optimize_strategy_parameters(s, {"window": [10, 21]}, ds,
...     optimization_method="grid", n_trials=2, progress=False, end_date="2000-12-29")""",
    "walk": """\
>>> import quantlab as ql
>>> from quantlab import optimize
>>> ds = ql.data.load().isel(time=slice(0, 300))
>>> s = ql.strategies.get("volatility_regime", lookback=60)
>>> wf = optimize.WalkForwardOptimizer(optimization_window=100, validation_window=50,
...     step_size=50, optimization_method="grid", n_trials=2, progress=False)
>>> out = wf.run(s, {"window": [10, 21]}, ds)""",
    "plot_kw": """\
Parameters
----------
**kw
    Options of the ``ql.plots`` figure function (``title``).

Returns
-------
bokeh.models.Column""",
    "run_args": """\
strategy : str, Strategy or Strategy class
    As in :func:`optimize_strategy_parameters`.
param_bounds : dict, optional
    As in :func:`optimize_strategy_parameters`.
data : xarray.Dataset, optional
    Prices; default the bundled equities.""",
    "walk_setup": """\
>>> import quantlab as ql
>>> from quantlab import optimize
>>> ds = ql.data.load().isel(time=slice(0, 300))
>>> wf = optimize.WalkForwardOptimizer(optimization_window=100, validation_window=50,
...     step_size=50, optimization_method="grid", n_trials=2, progress=False)""",
    "regime": """\
>>> import quantlab as ql
>>> from quantlab import optimize
>>> ds = ql.data.load().isel(time=slice(0, 300))
>>> s = ql.strategies.get("volatility_regime", lookback=60)
>>> import numpy as np, xarray as xr
>>> halves = xr.DataArray(np.where(np.arange(300) < 150, "early", "late"),
...                       coords={"time": ds["time"]})
>>> ra = optimize.RegimeAdaptiveOptimizer(halves, optimization_method="grid", n_trials=2,
...     min_bars=20, progress=False).run(s, {"window": [10, 21]}, ds)""",
}

METHODS = ("bayesian", "tpe", "genetic", "grid")
# a grid is one vectorised backtest holding ~750 bytes per combination x bar x asset
# (measured on the bundled strategies): 10^7 of them are ~7.5 GB
MAX_GRID_CELLS = 10 ** 7
_BACKTEST_ONLY = ("n_trades", "fees_paid", "turnover", "exposure", "trade_win_rate",
                  "trade_profit_factor")
# smaller is better for these; every other objective is maximised (max_drawdown <= 0 too)
_MINIMISE = {"annual_volatility", "downside_risk", "drawdown_duration", "recovery_time",
             "fees_paid", "turnover", "exposure"}
_HEADLINE = ("sharpe_ratio", "annual_return", "max_drawdown", "total_return")


# the built-in returns metrics that need no benchmark, then the account-level ones; the
# metrics of ql.metrics.register are objectives too, looked up when called (one
# registered before this module's lazy import was in the tuple, and stayed after
# ql.metrics.unregister)
OBJECTIVES = tuple(n for n in BUILTIN if not METRICS[n][1]) + _BACKTEST_ONLY


# ----------------------------------------------------------------------------- space
@dataclass(frozen=True)
class _Param:
    name: str
    low: float | None = None
    high: float | None = None
    integer: bool = False
    choices: tuple | None = None

    @property
    def fixed(self) -> bool:
        return (len(self.choices) == 1) if self.choices is not None else self.low == self.high

    def values(self, n: int) -> list:
        """``n`` evenly spaced values (all choices for a list; unique ints)."""
        if self.choices is not None:
            return list(self.choices)
        if self.fixed:
            return [self.low]
        v = np.linspace(self.low, self.high, n)
        return sorted({int(round(x)) for x in v}) if self.integer else [float(x) for x in v]


def _py(v):
    return v.item() if isinstance(v, np.generic) else v


def _space(strat, bounds) -> dict[str, _Param]:
    """The search space of ``bounds`` (default ``strat.param_space``), each range's two
    ends and every choice checked by the strategy's own parameter rules
    (``Strategy._check_param``: type, choices, ``limits``) before any trial runs."""
    bounds = strat.param_space if bounds is None else bounds
    if not bounds:
        raise ValueError(f"{strat.name}: no parameters to optimise (param_bounds is empty)")
    unknown = sorted(set(bounds) - set(strat.defaults))
    if unknown:
        raise ValueError(f"{strat.name}: unknown parameter(s) {unknown}; parameters are "
                         f"{sorted(strat.defaults)}")
    out = {}
    for k, b in bounds.items():
        number = lambda v: isinstance(v, (int, float, np.number)) and not isinstance(v, bool)  # noqa: E731
        if isinstance(b, tuple) and len(b) == 2 and all(map(number, b)):
            lo, hi = map(_py, b)
            for v in (lo, hi):   # checked only: the ints stay ints (an integer range)
                _validate.number(f"{k}: each bound", v)
            if lo > hi:
                raise ValueError(f"{k}: empty range, low {lo} > high {hi}")
            # converted too: (20.0, 60.0) for an integer parameter searches integers
            lo, hi = (strat._check_param(k, v, label=f"{strat.name} param_bounds[{k!r}] "
                                         f"{end} end") for end, v in (("low", lo), ("high", hi)))
            out[k] = _Param(k, lo, hi, integer=all(isinstance(v, int) for v in (lo, hi)))
        elif isinstance(b, (list, np.ndarray, pd.Index)):
            if len(b) == 0:
                raise ValueError(f"{k}: empty list of choices")
            choices = tuple(_py(v) for v in b)
            for v in choices:   # a NaN choice used to score as "no finite objective"
                if isinstance(v, float) and not math.isfinite(v):
                    raise ValueError(f"{k}: choices must be finite numbers, got {v!r}")
            choices = tuple(strat._check_param(k, v, label=f"{strat.name} param_bounds"
                                               f"[{k!r}] choice") for v in choices)
            dup = [v for i, v in enumerate(choices) if v in choices[:i]]
            if dup:   # a repeated choice used to crash the grid's unstack
                raise ValueError(f"{k}: choices repeat {dup}; give each value once")
            out[k] = _Param(k, choices=choices)
        else:
            raise ValueError(f"{k}: bounds must be (low, high) numbers or a list of choices, "
                             f"got {b!r}")
    # combinations (e.g. lookback >= window): their rules compare values, so the extreme
    # corners of the space (both ends, smallest/largest numeric choice) are the worst
    corners = {k: ((p.low, p.high) if p.choices is None
                   else (min(p.choices), max(p.choices))
                   if all(isinstance(c, numbers.Real) and not isinstance(c, bool)
                          for c in p.choices) else p.choices)
               for k, p in out.items()}
    for combo in itertools.product(*corners.values()):
        try:
            strat._check_combinations({**strat.params, **dict(zip(corners, combo))})
        except ValueError as e:
            raise ValueError(f"param_bounds {bounds!r} include an invalid combination "
                             f"{dict(zip(corners, combo))}: {e}; narrow the ranges so "
                             "every combination is valid") from None
    return out


def _check_backtest_kw(kw: dict, optimizer: bool = False) -> None:
    """Refuse a keyword ``ql.backtest`` (or, with ``optimizer``, the optimiser) does not
    take, before any trial: a misspelt or misplaced one (``WalkForwardOptimizer(
    n_splits=2)``) failed in the first trial as "backtest() got an unexpected keyword
    argument"."""
    known = [p for p in inspect.signature(backtest).parameters
             if p not in ("data", "signal", "entries", "exits")]
    own = inspect.signature(optimize_strategy_parameters).parameters if optimizer else ()
    for k in kw:
        if k not in known and k not in own:
            near = difflib.get_close_matches(str(k), known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise TypeError(f"unknown argument {k!r}{hint}: neither the optimiser nor "
                            f"ql.backtest takes it; backtest options: {', '.join(known)}")


def _one_of(kind, value, choices):
    """``_validate.choice`` with a hint at the closest choice (a typo's likely fix)."""
    try:
        _validate.choice(kind, value, choices)
    except ValueError as e:
        near = difflib.get_close_matches(str(value), choices, n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise ValueError(f"{e}.{hint}") from None


def _check_objectives(objective):
    # None or 5 (not a name, not a sequence of names): "'int' object is not iterable"
    objs = (tuple(objective) if isinstance(objective, (list, tuple, np.ndarray))
            else (objective,))
    if not objs:
        raise ValueError("objective is empty")
    for o in objs:
        _one_of("objective", o, OBJECTIVES + tuple(registered()))
    if len(set(objs)) != len(objs):   # a front over one metric twice: its columns repeat
        raise ValueError(f"objective repeats {sorted({o for o in objs if objs.count(o) > 1})}"
                         f"; give each metric once, got {list(objs)}")
    return objs


def _check_method(method):
    _one_of("optimization_method", method, METHODS)


def _check_dates(data, start, end) -> tuple:
    """(start, end) as Timestamps (None kept), refused when unparseable, end before
    start, or outside the data's span [first bar, last bar]."""
    start, named = _validate.date("start_date", start), _validate.date("end_date", end)
    end = _validate.period_end("end_date", end)     # '2009': the whole of 2009
    if start is not None and end is not None and end < start:
        raise ValueError(f"end_date {end.date()} is before start_date {start.date()}")
    t = data.time.values if isinstance(data, (xr.Dataset, xr.DataArray)) \
        and "time" in data.coords and data.sizes.get("time", 0) else None
    if t is not None:
        first, last = pd.Timestamp(t[0]), pd.Timestamp(t[-1])
        span = f"the data runs from {first.date()} to {last.date()}"
        # a period named by end_date must begin inside the data ('2013' of data ending
        # 2013-03-01 is its last bars) and end after its first bar
        for name, v, ok in (("start_date", start, lambda v: first <= v <= last),
                            ("end_date", named, lambda v: first <= end and v <= last)):
            if v is not None and not ok(v):
                raise ValueError(f"{name} {v} is outside the data's span: {span}")
    return start, end


def _check_data(data) -> xr.Dataset:
    """``data`` as a Dataset (``_validate.dataset``: closes as a DataArray or DataFrame
    too), else a TypeError naming it (a walk-forward or regime run given a DataFrame
    failed as "'DataFrame' object has no attribute 'time'")."""
    return _validate.dataset("data", data)


# ----------------------------------------------------------------------------- scoring
class _Evaluator:
    """Backtests parameter sets of one strategy and scores them inside a window."""

    def __init__(self, strat, data, start, end, objectives, backtest_kw, risk_free_rate=0.0,
                 mask=None):
        data = _check_data(data)
        self.strat, self.objectives = strat, objectives
        start, end = _check_dates(data, start, end)
        self.history = data.sel(time=slice(None, end))
        window = self.history.time.sel(time=slice(start, None)).values
        if window.size < 3:
            raise ValueError(f"the scoring window [{start}, {end}] holds {window.size} bars "
                             f"of data from {str(data.time.values[0])[:10]} to "
                             f"{str(data.time.values[-1])[:10]}")
        self.window = slice(window[0], window[-1])
        self.times = window
        self.inputs = strat.default_inputs(self.history)
        self.kw = dict(backtest_kw)
        self.kw.pop("group", None)
        _check_backtest_kw(self.kw)
        # the data's calendar unless periods= is given (ql.backtest resolves it the same way)
        self.periods = int(round(periods_for(data, self.kw.get("periods"), default=252)))
        self.rf = risk_free_rate
        self.mask = None if mask is None else np.asarray(mask, dtype=bool)
        if self.mask is not None and self.mask.shape != window.shape:
            raise ValueError("mask must have one value per bar of the scoring window")

    def backtest(self, params):
        s = type(self.strat)(**{**self.strat.params, **params})
        sig = s.signal(self.history, **self.inputs).sel(time=self.window)
        return backtest(self.history.sel(time=self.window), sig, group=True, **self.kw)

    def score(self, res) -> tuple[xr.Dataset, xr.DataArray]:
        """(objectives and headline metrics, returns scored) over the param dims."""
        r = res.returns
        if self.mask is not None:
            r = r.where(xr.DataArray(self.mask, dims="time", coords={"time": r.time}))
        m = summary(r, risk_free_rate=self.rf, annualization=self.periods)
        out = m[[n for n in dict.fromkeys(_HEADLINE + self.objectives) if n in m]]
        extra = [o for o in self.objectives if o in _BACKTEST_ONLY]
        if extra:
            if self.mask is not None:
                raise ValueError(f"objective(s) {extra} are account-level and cannot be "
                                 "scored on a subset of bars; use a returns metric")
            out = out.assign(res.metrics(risk_free_rate=self.rf)[extra])
        return out, r

    def __call__(self, params) -> tuple[tuple, np.ndarray, dict]:
        m, r = self.score(self.backtest(params))
        return (tuple(float(m[o]) for o in self.objectives), r.values,
                {k: float(m[k]) for k in _HEADLINE})


def _call(evaluator, params):  # a module-level function: dask pickles it by name
    """(None, the trial's outcome), or (the exception it raised, None): one trial's error
    does not lose the other trials of its batch."""
    try:
        return None, evaluator(params)
    except Exception as e:   # noqa: BLE001 -- raised by _search, named with the params
        return e, None


def _named(err: BaseException, params: dict, what: str) -> BaseException:
    """``err`` with a note naming the trial's parameters (its type kept: a DataError is
    still one); the traceback showed the strategy's line, never which parameters."""
    err.add_note(f"(raised by the {what} with parameters {params})")
    return err


# ----------------------------------------------------------------------------- samplers
class _Optuna:
    """optuna's TPE or NSGA-II through the ask-and-tell interface."""

    def __init__(self, method, space, directions, seed, storage, study_name, n_trials,
                 population_size):
        import optuna
        from optuna.distributions import (CategoricalDistribution, FloatDistribution,
                                          IntDistribution)

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if method == "tpe":
            sampler = optuna.samplers.TPESampler(seed=seed)
        else:
            pop = population_size or max(4, min(50, n_trials // 5))
            sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=pop)
        try:
            self.study = optuna.create_study(study_name=study_name, storage=storage,
                                             sampler=sampler, directions=directions,
                                             load_if_exists=True)
        except Exception as e:   # sqlalchemy's or optuna's words alone did not say which
            if storage is None:
                raise
            first = (str(e).splitlines() or [""])[0]
            raise ValueError(f"optuna could not create or load the study in storage="
                             f"{_validate._show(storage)} ({type(e).__name__}: {first}); "
                             "give a database URL such as 'sqlite:///study.db' or an optuna "
                             "storage") from e
        self.dists = {
            k: CategoricalDistribution(p.choices) if p.choices is not None
            else IntDistribution(p.low, p.high) if p.integer
            else FloatDistribution(p.low, p.high)
            for k, p in space.items()}
        self.state = optuna.trial.TrialState

    def previous(self) -> list[dict]:
        """The stored study's completed trials, if it searched this space. A stored
        trial of other bounds was re-run and could be the best, outside the bounds given
        (window 10 for (30, 45)); other choices failed after the re-runs in optuna's
        "CategoricalDistribution does not support dynamic value space"."""
        name = self.study.study_name
        for t in self.study.trials:
            if t.params and set(t.params) != set(self.dists):
                raise ValueError(f"the stored study {name!r} searched "
                                 f"{sorted(t.params)}, not {sorted(self.dists)}; use another "
                                 "study_name or storage")
            for k, d in t.distributions.items():
                if d != self.dists[k]:
                    raise ValueError(f"the stored study {name!r} searched {k} over {d}, not "
                                     f"{self.dists[k]}; use another study_name or storage")
        return [t.params for t in self.study.trials if t.state == self.state.COMPLETE]

    def ask(self):
        t = self.study.ask(self.dists)
        return t, dict(t.params)

    def tell(self, handle, values):
        if any(math.isnan(v) for v in values):
            self.study.tell(handle, state=self.state.FAIL)
        else:
            self.study.tell(handle, list(values))

    def fail(self, handle):
        """A trial that raised or was interrupted: FAIL, not RUNNING for ever in a stored
        study."""
        self.study.tell(handle, state=self.state.FAIL)


class _GaussianProcess:
    """bayesian-optimization's GP on a continuous box: integers are rounded, choices
    indexed. The first ``n_init`` points are uniform random (seeded); a trial without a
    score (or -inf) is registered at the worst score seen so far, +inf at the best."""

    def __init__(self, space, direction, seed, n_trials):
        from bayes_opt import BayesianOptimization

        self.space = space
        self.box = {k: ((p.low - 0.5, p.high + 0.5) if p.integer
                        else (0.0, float(len(p.choices))) if p.choices is not None
                        else (float(p.low), float(p.high))) for k, p in space.items()}
        self.opt = BayesianOptimization(f=None, pbounds=self.box, random_state=seed,
                                        verbose=0, allow_duplicate_points=True)
        self.sign = 1.0 if direction == "maximize" else -1.0
        self.rng = np.random.default_rng(seed)
        self.n_init, self.asked, self.seen = max(2, min(10, n_trials // 5)), 0, []

    def previous(self):
        return []

    def decode(self, x) -> dict:
        out = {}
        for k, p in self.space.items():
            v = float(x[k])
            if p.integer:
                out[k] = int(min(max(math.floor(v + 0.5), p.low), p.high))
            elif p.choices is not None:
                out[k] = p.choices[min(int(v), len(p.choices) - 1)]
            else:
                out[k] = min(max(v, p.low), p.high)
        return out

    def ask(self):
        self.asked += 1
        if self.asked <= self.n_init:
            x = {k: float(self.rng.uniform(lo, hi)) for k, (lo, hi) in self.box.items()}
        else:
            x = {k: float(v) for k, v in self.opt.suggest().items()}
        return x, self.decode(x)

    def fail(self, handle):
        """A trial that raised: nothing registered (the search stops)."""

    def tell(self, handle, values):
        v = self.sign * values[0]
        # the GP fits finite targets only: a profit factor or Sortino ratio of a trial
        # without a loss (+inf) failed in sklearn ("Input y contains infinity"); +inf is
        # registered at the best score seen, -inf and NaN at the worst (the trial's own
        # record keeps its value)
        if math.isnan(v) or v == -math.inf:
            v = min(self.seen) if self.seen else 0.0
        elif v == math.inf:
            v = max(self.seen) if self.seen else 0.0
        self.seen.append(v)
        self.opt.register(params=handle, target=v)


# ----------------------------------------------------------------------------- result
@fill(_DOC)
@dataclass(repr=False)
class OptimizationResult(Mapping):
    """The best parameters (a mapping: ``dict(res)``, ``res.items()``) and the search.

    Made by :func:`optimize_strategy_parameters`; the parameters are its attributes.

    Parameters
    ----------
    best_params : dict
        The best parameters.
    best_value : float or tuple
        Its objective (a tuple for several objectives).
    best_trial : int
        Its row in ``trials``.
    objective : str or tuple of str
        The objective name(s).
    method : str
        The search method.
    trials : pandas.DataFrame
        One row per trial: parameters, objective(s), headline metrics.
    trial_returns : xarray.DataArray
        (time, trial) returns of the distinct trials.
    dsr, pbo : float
        Deflated Sharpe ratio and probability of backtest overfitting from those trials.
    pbo_logits : numpy.ndarray, optional
        The CSCV logits behind ``pbo``.
    pareto : pandas.DataFrame or None
        The non-dominated trials of a multi-objective search.
    study : optuna.Study or None
        Optuna's study, for tpe/genetic.
    directions : tuple of str, default ('maximize',)
        'maximize' or 'minimize', per objective.
    strategy : Strategy
        The strategy with the best parameters.
    backtest_options : dict, optional
        The search's backtest options (``group=True``), carried over by ``ql.deploy``.
    research_times : numpy.ndarray, optional
        The bars the search's signals were computed on (its data up to ``end_date``):
        ``ql.deploy`` checks its ``history`` rebalances on the same bars.

    Examples
    --------
    {{search}}
    >>> dict(res), len(res.trials)
    ({'window': 21}, 2)
    """

    best_params: dict
    best_value: float | tuple
    best_trial: int
    objective: str | tuple
    method: str
    trials: pd.DataFrame
    trial_returns: xr.DataArray
    dsr: float
    pbo: float
    pbo_logits: np.ndarray = field(default_factory=lambda: np.array([]))
    pareto: pd.DataFrame | None = None
    study: object = None
    directions: tuple = ("maximize",)
    strategy: object = None
    backtest_options: dict = field(default_factory=dict)   # what ql.deploy carries over
    research_times: np.ndarray | None = None

    def backtest(self, data, start_date=None, end_date=None, **backtest_kw):
        """The best parameters' strategy backtested on ``[start_date, end_date]`` of ``data``, e.g. out of sample.

        The signal is warmed up on earlier bars.

        Parameters
        ----------
        data : xarray.Dataset
            Prices.
        start_date, end_date : str or datetime-like, optional
            The window (None: the data's first/last bar).
        **backtest_kw
            Options of :func:`quantlab.backtest` (default: the search's).

        Returns
        -------
        BacktestResult
            One portfolio account.

        Examples
        --------
        {{search}}
        >>> oos = res.backtest(ds, start_date="2001-01-02")
        >>> round(float(oos.metrics()["total_return"]), 4)
        0.2928
        """
        # the search's costs unless overridden, as documented: they were dropped, and an
        # out-of-sample run of a search with fees traded for free
        ev = _Evaluator(self.strategy, data, start_date, end_date, ("sharpe_ratio",),
                        {**self.backtest_options, **backtest_kw})
        return ev.backtest({})

    def save(self, path) -> Path:
        """The chosen parameters and the search's backtest options as JSON: the file
        ``quantlab deploy STRATEGY --params FILE`` deploys (``{"strategy", "params",
        "backtest"}``; the options as ``BacktestOptions.to_dict`` writes them, the slippage
        model included).

        Parameters
        ----------
        path : str or Path
            The file to write (its folder is created).

        Returns
        -------
        Path

        Examples
        --------
        {{search}}
        >>> import json, tempfile
        >>> f = res.save(tempfile.mkdtemp() + "/best.json")
        >>> saved = json.loads(f.read_text())
        >>> saved["strategy"], saved["params"], saved["backtest"]["group"]
        ('volatility_regime', {'window': 21}, True)
        """
        import json   # lazy: only saving needs it

        path = user_path("path", path)
        params = {k: v.item() if isinstance(v, np.generic) else v
                  for k, v in self.best_params.items()}
        text = json.dumps({"strategy": self.strategy.name, "params": params,
                           "backtest": BacktestOptions(**self.backtest_options).to_dict()},
                          indent=1)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
        return path

    def __getitem__(self, key):
        return self.best_params[key]

    def __iter__(self):
        return iter(self.best_params)

    def __len__(self):
        return len(self.best_params)

    def __repr__(self):
        obj = self.objective if isinstance(self.objective, str) else "/".join(self.objective)
        # as the tear sheet shows them: an annual return of 0.0234 reads "+2.3 %"
        objs = [self.objective] if isinstance(self.objective, str) else self.objective
        vals = [fmt.metric(o, v) for o, v in zip(objs, np.atleast_1d(self.best_value))]
        val = vals[0] if isinstance(self.objective, str) else "(" + ", ".join(vals) + ")"
        return (f"OptimizationResult({self.method}: {obj} = {val} at {self.best_params}; "
                f"{len(self.trials)} trials, DSR {self.dsr:.3f}, PBO {self.pbo:.3f})")

    @property
    def best_returns(self) -> xr.DataArray:
        """The best trial's returns over the scoring window.

        Examples
        --------
        {{search}}
        >>> res.best_returns.sizes["time"]
        212
        """
        key = _key(self.best_params)
        i = [j for j, k in enumerate(self.trial_returns.attrs["keys"]) if k == key][0]
        return self.trial_returns.isel(trial=i, drop=True)

    def reality_check(self, benchmark=None, **kw) -> dict:
        """``ql.integrity.reality_check`` of the trials against ``benchmark`` returns (cash by default).

        Is the best one better once the search is accounted for?

        Parameters
        ----------
        benchmark : array-like, optional
            Benchmark returns on the scoring window; default cash.
        **kw
            Options of :func:`quantlab.integrity.reality_check` (reps, seed, ...);
            ``reps`` at most ``_validate.MAX_COUNT``, ``block_size`` at most half the
            complete rows.

        Returns
        -------
        dict
            ``{"spa_pvalue", "spa_lower", "spa_upper", "reality_check_pvalue"}``.

        Examples
        --------
        {{search}}
        >>> round(res.reality_check(reps=100)["spa_pvalue"], 2)
        0.95
        """
        if benchmark is not None and isinstance(benchmark, xr.DataArray):
            benchmark = benchmark.reindex(time=self.trial_returns.time).values
        if "reps" in kw:   # 1e30: numpy's "Maximum allowed dimension exceeded"
            kw["reps"] = _validate.count("reps", kw["reps"])
        if kw.get("block_size") is not None:   # longer than the bars: NaN variances
            kw["block_size"] = _validate.integer("block_size", kw["block_size"], 1,
                                                 self.trial_returns.sizes["time"])
        return integrity.reality_check(self.trial_returns.values, benchmark, **kw)

    def plot(self, **kw):
        """The trials in the order run, the running best, and the histogram of the CSCV
        logits (``ql.plots.optimization_figure``).

        {{plot_kw}}

        Examples
        --------
        {{search}}
        >>> type(res.plot(title="window")).__name__
        'Column'
        """
        from quantlab import plots  # lazy: the face (bokeh); research must not import it

        return plots.optimization_figure(self, **kw)


def _key(params: dict) -> str:
    return repr(sorted((k, _py(v)) for k, v in params.items()))


def _guards(returns: np.ndarray, best: int) -> tuple[float, float, np.ndarray]:
    """DSR of trial ``best`` among all, PBO of all (NaN when undefined)."""
    rows = np.isfinite(returns).all(axis=1)
    x = returns[rows]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean, sd = x.mean(0), x.std(0, ddof=1)
        # a trial that never traded earned nothing: a Sharpe ratio of 0, and one of the N
        # trials tried (its 0/0 was dropped, deflating by fewer trials than were run)
        sr = np.where((sd == 0) & (mean == 0), 0.0, mean / sd)
    try:
        dsr = integrity.deflated_sharpe_ratio(x[:, best], trial_sharpes=sr)
    except ValueError:
        dsr = math.nan
    n_splits = min(16, (x.shape[0] // 4) // 2 * 2)
    try:
        p = integrity.pbo(x, n_splits=n_splits)
        return dsr, p["pbo"], p["logits"]
    except ValueError:  # one trial, too few rows, or no finite score
        return dsr, math.nan, np.array([])


def _pareto(table: pd.DataFrame, objectives, directions) -> pd.DataFrame:
    v = np.column_stack([table[o].to_numpy() * (1 if d == "maximize" else -1)
                         for o, d in zip(objectives, directions)])
    ok = np.isfinite(v).all(1)
    front = [i for i in np.flatnonzero(ok)
             if not any((v[j] >= v[i]).all() and (v[j] > v[i]).any() for j in np.flatnonzero(ok))]
    return table.iloc[front]


def _carry(result: OptimizationResult, ev: _Evaluator) -> OptimizationResult:
    """The search's backtest options on its result (one account: group=True)."""
    result.backtest_options = {**ev.kw, "group": True}
    result.research_times = ev.history.time.values
    return result


class _NoFiniteTrial(ValueError):
    """No trial of a search scored (the strategy never traded in the window): a
    walk-forward adds the fold to the message."""


def _build_result(strat, method, objectives, directions, records, times, study=None):
    """records: list of (params, values, returns, headline)."""
    keys = list(records[0][0])
    rows = [{**p, **dict(zip(objectives, v)), **{k: h[k] for k in _HEADLINE
                                                   if k not in objectives}}
            for p, v, _, h in records]
    table = pd.DataFrame(rows)
    table.index.name = "trial"
    # distinct parameter sets (a sampler may propose one twice) for DSR and PBO
    first = {}
    for i, (p, *_rest) in enumerate(records):
        first.setdefault(_key(p), i)
    distinct = sorted(first.values())
    score = table[objectives[0]].to_numpy(dtype=float) * (
        1 if directions[0] == "maximize" else -1)
    pareto = None
    if len(objectives) > 1:
        pareto = _pareto(table, objectives, directions)
        cand = pareto.index.to_numpy() if len(pareto) else np.arange(len(table))
        best = int(cand[np.nanargmax(score[cand])]) if np.isfinite(score[cand]).any() else 0
    else:
        if not np.isfinite(score).any():
            warm = strat.warmup
            raise _NoFiniteTrial(
                f"{strat.name}: no trial produced a finite {objectives[0]} in the scoring "
                f"window {str(times[0])[:10]} .. {str(times[-1])[:10]} ({len(times)} bars): "
                "does the strategy trade there?" + ("" if warm is None else
                f" (its warm-up at its given parameters: {warm} bars)"))
        best = int(np.nanargmax(score))
    ret = np.column_stack([records[i][2] for i in distinct])
    tr = xr.DataArray(ret, dims=("time", "trial"), coords={"time": times, "trial": distinct},
                      name="returns", attrs={"keys": [_key(records[i][0]) for i in distinct]})
    dsr, pbo, logits = _guards(ret, distinct.index(first[_key(records[best][0])]))
    best_params = {k: records[best][0][k] for k in keys}
    value = tuple(records[best][1]) if len(objectives) > 1 else records[best][1][0]
    return OptimizationResult(best_params, value, best, objectives if len(objectives) > 1
                              else objectives[0], method, table, tr, dsr, pbo, logits,
                              pareto, study, tuple(directions),
                              type(strat)(**{**strat.params, **best_params}))


# ----------------------------------------------------------------------------- search
@fill(_DOC)
def optimize_strategy_parameters(strategy=None, param_bounds=None, data=None, start_date=None,
                                 end_date=None, optimization_method="tpe",
                                 objective="sharpe_ratio", n_trials=50, seed=0, storage=None,
                                 n_jobs=1, *, study_name=None, client=None, direction=None,
                                 risk_free_rate=0.0, population_size=None, progress=True,
                                 strategy_class=None, parameter_bounds=None, price_data=None,
                                 _mask=None, **backtest_kw) -> OptimizationResult:
    """Search ``param_bounds`` of ``strategy`` for the best ``objective``.

    Each trial is a ``group=True`` backtest scored on the window ``start_date`` to
    ``end_date``; the result carries the overfitting guards (DSR and PBO over the distinct
    trials).

    Parameters
    ----------
    strategy : str, Strategy or Strategy class
        A registry name, a Strategy (its other parameters stay as given) or a Strategy
        class (the seed's ``strategy_class``).
    param_bounds : dict, optional
        {name: (low, high)} (two ints -> integers) or {name: [choices]}; default
        ``strategy.param_space``. Both ends of a range and every choice must pass the
        strategy's parameter rules, and the space's corners its combination rules (checked
        before any trial).
    data : xarray.Dataset, optional
        The seed's ``price_data``; default the bundled equities.
    start_date, end_date : str or datetime-like, optional
        The scoring window, dates inside the data's span (None: its first/last bar).
        Text names a period as ``ds.sel`` reads it: ``end_date="2009"`` is all of 2009.
    optimization_method : {'tpe', 'bayesian', 'genetic', 'grid'}, default 'tpe'
        The search (``METHODS``; bayesian = a Gaussian-process search).
    objective : str or sequence of str, default 'sharpe_ratio'
        A metric name, or several for ``"genetic"``/``"tpe"``/``"grid"`` (Pareto front in
        ``result.pareto``; the best is the front's best on the first one).
    n_trials : int, default 50
        Evaluations (for ``"grid"``, the budget: ⌊n_trials^(1/k)⌋ values per (low, high)
        range of the k ranges, at least 2; lists are used as given; a grid of more than
        ``MAX_GRID_CELLS`` combinations x bars x assets is refused, as one backtest of it
        would exhaust memory).
    seed : int, default 0
        Random seed.
    storage : str, optional
        ``"sqlite:///study.db"``: with ``study_name``, keeps an optuna study so a rerun
        resumes it (its stored trials count towards ``n_trials`` and are re-run once for
        their returns).
    n_jobs : int, default 1
        Threads evaluating trials in batches (tpe/genetic; a batch is asked before it is
        told, so only ``n_jobs=1`` is reproducible; the GP runs one trial at a time).
    study_name : str, optional
        The optuna study's name in ``storage``.
    client : dask.distributed.Client, optional
        Evaluate trials on a dask cluster instead of threads.
    direction : {'maximize', 'minimize'}, optional
        Overrides the metric's natural direction.
    risk_free_rate : float, default 0.0
        Annual, for the metrics.
    population_size : int, optional
        Population of the genetic search.
    progress : bool, default True
        Show a progress bar.
    strategy_class, parameter_bounds, price_data : optional
        The seed's names of ``strategy``, ``param_bounds`` and ``data``
        (``quantlab.compat.OPTIMIZER_KEYWORDS``; giving both names is a TypeError).
    **backtest_kw
        Options of ``ql.backtest`` (fees, slippage, ...; always ``group=True``).

    Returns
    -------
    OptimizationResult

    Raises
    ------
    ValueError
        If the method, objective, bounds, dates or a count is invalid.
    TypeError
        If a seed keyword and its quantlab name are both given, or a keyword is neither
        the optimiser's nor ``ql.backtest``'s.

    Examples
    --------
    >>> import quantlab as ql
    >>> from quantlab import optimize
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> s = ql.strategies.get("volatility_regime", lookback=60)
    >>> res = optimize.optimize_strategy_parameters(
    ...     s, {"window": [10, 21]}, ds, optimization_method="grid", n_trials=2, progress=False)
    >>> res.best_params, round(res.best_value, 4)
    ({'window': 21}, 0.0961)
    """
    client = _validate.client(client)
    progress = _validate.flag("progress", progress)   # "no" is truthy: a bar shown
    args = _setup(strategy, param_bounds, data, start_date, end_date, optimization_method,
                  objective, n_trials, seed, n_jobs, direction, risk_free_rate,
                  population_size, strategy_class, parameter_bounds, price_data, _mask,
                  backtest_kw)
    strat, objectives, directions, n_trials, n_jobs, seed, population_size, space, fixed, \
        free, ev = args
    if optimization_method == "grid" or not free:
        return _carry(_grid(strat, space, free, n_trials, ev, objectives, directions,
                            ev.times, "grid" if free else optimization_method), ev)
    sampler, batch = _sampler(strat, optimization_method, free, objectives, directions,
                              seed, storage, study_name, n_trials, population_size, n_jobs, client)
    records = _search(ev, sampler, fixed, n_trials, batch, client,
                      f"{optimization_method} {strat.name}", progress)
    study = getattr(sampler, "study", None)
    return _carry(_build_result(strat, optimization_method, objectives, directions, records,
                                ev.times, study), ev)


def _setup(strategy, param_bounds, data, start_date, end_date, method, objective, n_trials,
           seed, n_jobs, direction, risk_free_rate, population_size, strategy_class,
           parameter_bounds, price_data, mask, backtest_kw):
    """Validate the arguments (before any trial) and build the search space and evaluator."""
    strategy, param_bounds, data = seed_optimizer_arguments(   # quantlab.compat
        strategy, param_bounds, data, strategy_class=strategy_class,
        parameter_bounds=parameter_bounds, price_data=price_data)
    if strategy is None:
        raise ValueError("give a strategy (registry name, Strategy or Strategy class)")
    strat = resolve(strategy)
    data = load_data() if data is None else data
    _check_method(method)
    objectives = _check_objectives(objective)
    if direction is not None:
        _validate.choice("direction", direction, ("maximize", "minimize"))
    lower = registered()
    directions = [direction or ("minimize" if o in _MINIMISE or lower.get(o) else "maximize")
                  for o in objectives]
    n_trials = _validate.count("n_trials", n_trials)
    n_jobs = 1 if n_jobs is None else _validate.count("n_jobs", n_jobs, 1, MAX_THREADS)
    seed = _validate.integer("seed", seed, lo=0, hi=2**32 - 1)
    if population_size is not None:
        population_size = _validate.count("population_size", population_size, lo=2)
    space = _space(strat, param_bounds)
    fixed = {k: (p.choices[0] if p.choices is not None else p.low)
             for k, p in space.items() if p.fixed}
    free = {k: p for k, p in space.items() if not p.fixed}
    ev = _Evaluator(strat, data, start_date, end_date, objectives, backtest_kw,
                    risk_free_rate, mask)
    return (strat, objectives, directions, n_trials, n_jobs, seed, population_size, space,
            fixed, free, ev)


def _study_name(strat, method, objectives) -> str:
    """The default name of a stored study."""
    return f"{strat.name}-{method}-{'-'.join(objectives)}"


def _own_study(kw: dict, strat, method, objective, part: str) -> dict:
    """``kw`` with a study name of its own for one search of several (a walk-forward
    fold, a regime): under one name each resumed the first one's study, its trials
    (scored on another window) counting towards ``n_trials``: with storage= every fold
    re-ran fold 0's trials and searched nothing."""
    if kw.get("storage") is None:
        return kw
    base = kw.get("study_name") or _study_name(strat, method, (objective,))
    return {**kw, "study_name": f"{base}-{part}"}


def _sampler(strat, method, free, objectives, directions, seed, storage, study_name,
             n_trials, population_size, n_jobs, client):
    """The sampler of ``method`` and how many trials it proposes per batch."""
    if method == "bayesian":
        if len(objectives) > 1:
            raise ValueError("'bayesian' optimises one objective; use 'genetic' or 'tpe' "
                             "for several")
        if storage is not None:
            raise ValueError("storage= keeps optuna studies ('tpe', 'genetic'); the "
                             "Gaussian-process search is not persisted")
        return _GaussianProcess(free, directions[0], seed, n_trials), 1
    name = study_name or _study_name(strat, method, objectives)
    sampler = _Optuna(method, free, directions, seed, storage, name, n_trials,
                      population_size)
    return sampler, n_jobs if client is None else max(1, sum(client.nthreads().values()))


def _search(ev, sampler, fixed, n_trials, batch, client, desc, progress):
    """Ask, evaluate (dask, threads or inline) and tell until ``n_trials`` records:
    [(params, objective values, returns, headline)], a resumed study's trials first."""
    pool = None
    if client is not None:
        remote = client.scatter(ev, broadcast=True)
        run = lambda ps: client.gather(client.map(_call, [remote] * len(ps), ps, pure=False))  # noqa: E731
    elif batch > 1:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(batch)
        run = lambda ps: list(pool.map(_call, [ev] * len(ps), ps))  # noqa: E731
    else:
        run = lambda ps: [_call(ev, p) for p in ps]  # noqa: E731

    records = []
    previous = sampler.previous()
    bar = _progress.bar(n_trials, desc, "trial", progress)
    what = f"trial of the {desc} search"
    try:
        for i in range(0, min(len(previous), n_trials), max(batch, 1)):   # resumed study
            stored = previous[i:i + max(batch, 1)][: n_trials - len(records)]
            ps = [{**p, **fixed} for p in stored]
            for p, (err, out) in zip(ps, run(ps)):
                if err is not None:
                    raise _named(err, p, f"re-run of a stored {what}")
                records.append((p, *out))
            bar.update(len(ps))
        while len(records) < n_trials:
            asked = [sampler.ask() for _ in range(min(batch, n_trials - len(records)))]
            told = 0   # an error or Ctrl-C: the untold trials FAIL (were RUNNING for ever)
            try:
                outcomes = run([{**p, **fixed} for _, p in asked])
                errors = [(err, {**p, **fixed}) for (_, p), (err, _) in zip(asked, outcomes)
                          if err is not None]
                for (handle, p), (err, out) in zip(asked, outcomes):   # in asked order
                    told += 1
                    if err is None:
                        sampler.tell(handle, out[0])
                        records.append(({**p, **fixed}, *out))
                    else:
                        sampler.fail(handle)
            except BaseException:
                for handle, _ in asked[told:]:
                    sampler.fail(handle)
                raise
            if errors:   # the batch's other trials are told and kept (a stored study)
                raise _named(errors[0][0], errors[0][1], what)
            bar.update(len(asked))
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown()
    return records

def _grid(strat, space, free, n_trials, ev, objectives, directions, times, method):
    """Every combination as list parameters: dims of one signal and one backtest."""
    n_num = sum(p.choices is None for p in free.values())
    n_cat = int(np.prod([len(p.choices) for p in free.values() if p.choices is not None]))
    per = max(2, int(math.floor((max(n_trials, 1) / n_cat) ** (1 / n_num) + 1e-9))) \
        if n_num else 1
    values = {k: p.values(per) for k, p in space.items()}
    combos = math.prod(len(v) for v in values.values())
    cells = combos * ev.history.sizes["time"] * ev.history.sizes.get("asset", 1)
    if cells > MAX_GRID_CELLS:   # one vectorised backtest: it ran out of memory
        raise ValueError(
            f"the grid is {combos:,} combinations x {ev.history.sizes['time']:,} bars x "
            f"{ev.history.sizes.get('asset', 1):,} assets = {cells:,} values in one "
            f"vectorised backtest, more than MAX_GRID_CELLS = {MAX_GRID_CELLS:,} (hundreds "
            "of bytes each); lower n_trials or the choices, search with 'tpe', or run the "
            "grid in chunks with ql.sweeps.sweep")
    grid_params = {k: v for k, v in values.items() if len(v) > 1}
    single = {k: v[0] for k, v in values.items() if len(v) == 1}
    params = {**single, **{k: list(v) for k, v in grid_params.items()}}
    try:   # one vectorised backtest of every combination
        res = ev.backtest(params)
    except Exception as e:
        raise _named(e, params, f"grid ({combos:,} combinations, one backtest)") from None
    m, r = ev.score(res)
    dims = list(grid_params)
    if dims:
        m, r = m.stack(trial=dims), r.stack(trial=dims)
        combos = [dict(zip(dims, t if isinstance(t, tuple) else (t,)))
                  for t in m.indexes["trial"]]
    else:
        m, r = m.expand_dims(trial=1), r.expand_dims(trial=1, axis=1)
        combos = [{}]
    records = []
    for j, c in enumerate(combos):
        p = {k: _py(c.get(k, single.get(k))) for k in space}
        vals = tuple(float(m[o].values[j]) for o in objectives)
        head = {k: float(m[k].values[j]) for k in _HEADLINE}
        records.append((p, vals, r.transpose("time", "trial").values[:, j], head))
    return _build_result(strat, method, objectives, directions, records, times)


# ----------------------------------------------------------------------------- walk-forward
@fill(_DOC)
@dataclass(repr=False)
class WalkForwardResult:
    """The folds of a walk-forward run and the stitched out-of-sample account.

    Made by :meth:`WalkForwardOptimizer.run`; the parameters are its attributes.

    Parameters
    ----------
    folds : pandas.DataFrame
        One row per fold (in-sample and out-of-sample windows, chosen parameters, IS and
        OOS objective and Sharpe ratio, the fold's DSR and PBO).
    oos_returns, oos_equity : xarray.DataArray
        The stitched out-of-sample account (one backtest whose parameters switch at each
        fold's first OOS bar, ``step_size`` bars per fold).
    oos_metrics : xarray.Dataset
        Metrics of that account.
    stability : pandas.DataFrame
        Per parameter, its spread across folds and how often it changed.
    objective : str
        The objective optimised in each fold.
    results : list of OptimizationResult, optional
        Each fold's search.

    Examples
    --------
    {{walk}}
    >>> out.folds.columns.tolist()
    ['is_start', 'is_end', 'oos_start', 'oos_end', 'window', 'is_sharpe_ratio', 'oos_sharpe_ratio', 'dsr', 'pbo']
    """

    folds: pd.DataFrame
    oos_returns: xr.DataArray
    oos_equity: xr.DataArray
    oos_metrics: xr.Dataset
    stability: pd.DataFrame
    objective: str
    results: list = field(default_factory=list)

    @property
    def efficiency(self) -> float:
        """Mean OOS Sharpe ratio / mean IS Sharpe ratio over the folds (1 = no decay).

        NaN when the mean IS Sharpe ratio is not positive: there is no in-sample edge to
        decay, and the ratio's sign would invert (IS -0.1, OOS -0.2 gave 2.0, "better out
        of sample"; IS 0 gave ±inf).

        Examples
        --------
        {{walk}}
        >>> round(float(out.folds["is_sharpe_ratio"].mean()), 3), out.efficiency
        (-0.068, nan)
        """
        is_mean = float(self.folds["is_sharpe_ratio"].mean())
        if not is_mean > 0:
            return math.nan
        return float(self.folds["oos_sharpe_ratio"].mean()) / is_mean

    @property
    def oos_psr(self) -> float:
        """Probabilistic Sharpe ratio (vs 0) of the stitched out-of-sample returns.

        Examples
        --------
        {{walk}}
        >>> f"{out.oos_psr:.1%} that the true Sharpe ratio is above 0"
        '43.8% that the true Sharpe ratio is above 0'
        """
        try:
            return integrity.probabilistic_sharpe_ratio(self.oos_returns.values)
        except ValueError:
            return math.nan

    def __repr__(self):
        o = self.objective
        return (f"WalkForwardResult({len(self.folds)} folds, {o}: IS mean "
                f"{fmt.metric(o, self.folds['is_' + o].mean())}, OOS mean "
                f"{fmt.metric(o, self.folds['oos_' + o].mean())}; stitched OOS Sharpe "
                f"{fmt.metric('sharpe_ratio', float(self.oos_metrics['sharpe_ratio']))}, "
                f"median PBO {self.folds['pbo'].median():.2f})")

    def plot(self, **kw):
        """Stitched out-of-sample equity, in- and out-of-sample Sharpe ratio per fold and
        the chosen parameters per fold (``ql.plots.walk_forward_figure``).

        {{plot_kw}}

        Examples
        --------
        {{walk}}
        >>> type(out.plot()).__name__
        'Column'
        """
        from quantlab import plots  # lazy: the face (bokeh); research must not import it

        return plots.walk_forward_figure(self, **kw)


@fill(_DOC)
class WalkForwardOptimizer:
    """Walk-forward optimisation.

    Optimise on ``optimization_window`` bars, validate on the next ``validation_window``,
    move by ``step_size``: ⌊(T - W - V) / step⌋ + 1 folds. Each fold's optimisation sees no
    bar after its in-sample window.

    Parameters
    ----------
    optimization_window : int, default 252
        In-sample bars W (>= 3).
    validation_window : int, default 63
        Out-of-sample bars V (>= 3).
    step_size : int, default 21
        Bars between folds (>= 1, <= ``validation_window``).
    optimization_method : str, default 'tpe'
        As in :func:`optimize_strategy_parameters`.
    n_trials : int, default 20
        Evaluations per fold.
    objective : str, default 'sharpe_ratio'
        One metric name.
    seed : int, default 0
        Random seed.
    progress : bool, default True
        Show a progress bar.
    **optimize_kw
        Go to :func:`optimize_strategy_parameters` (n_jobs, ...); with ``storage=``,
        fold i keeps its own study, ``<study_name>-fold<i>``.

    Raises
    ------
    ValueError
        If a window is out of range, ``step_size`` > ``validation_window`` (bars left
        untested), or the method/objective is invalid.
    TypeError
        If a keyword is neither the optimiser's nor ``ql.backtest``'s.

    Examples
    --------
    {{walk}}
    >>> wf.fold_bounds(300)
    [(0, 100, 150), (50, 150, 200), (100, 200, 250), (150, 250, 300)]
    >>> len(out.folds)
    4
    """

    def __init__(self, optimization_window=252, validation_window=63, step_size=21,
                 optimization_method="tpe", n_trials=20, objective="sharpe_ratio", seed=0,
                 progress=True, **optimize_kw):
        optimization_window, validation_window, step_size = (
            _validate.integer(name, v, lo=1) for name, v in (
                ("optimization_window (bars)", optimization_window),
                ("validation_window (bars)", validation_window), ("step_size (bars)", step_size)))
        for name, v in (("optimization_window", optimization_window),
                        ("validation_window", validation_window)):
            if v < 3:   # else every fold failed on 'the scoring window ... holds 1 bars'
                raise ValueError(f"{name} ({v} bars) must be at least 3: each fold's "
                                 "search and its out-of-sample test are scored on 3+ bars")
        if step_size > validation_window:
            raise ValueError(f"step_size ({step_size}) > validation_window "
                             f"({validation_window}) would leave bars out of sample untested")
        _check_method(optimization_method)
        if not isinstance(objective, str):
            raise ValueError("walk-forward takes one objective")
        _check_objectives(objective)
        n_trials = _validate.count("n_trials", n_trials)
        seed = _validate.integer("seed", seed, lo=0, hi=2**32 - 1)
        self.w, self.v, self.step = int(optimization_window), int(validation_window), int(step_size)
        self.method, self.n_trials, self.objective = optimization_method, n_trials, objective
        _check_backtest_kw(optimize_kw, optimizer=True)
        self.seed, self.kw = seed, optimize_kw
        self.progress = _validate.flag("progress", progress)

    def fold_bounds(self, n_bars: int) -> list[tuple[int, int, int]]:
        """(is_start, oos_start, oos_end) bar positions of every fold.

        Parameters
        ----------
        n_bars : int
            Bars of the data.

        Returns
        -------
        list of tuple of int

        Examples
        --------
        {{walk_setup}}
        >>> wf.fold_bounds(300)
        [(0, 100, 150), (50, 150, 200), (100, 200, 250), (150, 250, 300)]
        """
        n_bars = _validate.integer("n_bars", n_bars, lo=0)
        if n_bars < self.w + self.v:
            raise ValueError(f"{n_bars} bars are fewer than optimization_window + "
                             f"validation_window = {self.w + self.v}")
        k = (n_bars - self.w - self.v) // self.step + 1
        if k > _validate.MAX_COUNT:   # 1e30 bars: a list of 2e28 folds, built until killed
            raise ValueError(f"n_bars={n_bars:,} gives {k:,} folds (step_size {self.step}), "
                             f"more than {_validate.MAX_COUNT:,}")
        return [(i * self.step, i * self.step + self.w, i * self.step + self.w + self.v)
                for i in range(k)]

    def optimize_strategy(self, *args, **kwargs) -> WalkForwardResult:
        """The seed's name of :meth:`run` (seed keywords accepted): quantlab.compat.

        Parameters
        ----------
        *args, **kwargs
            As :meth:`run`, or the seed's ``strategy_class``, ``parameter_bounds``,
            ``price_data``.

        Returns
        -------
        WalkForwardResult

        Examples
        --------
        {{walk_setup}}
        >>> out = wf.optimize_strategy(strategy_class=ql.strategies.get("volatility_regime", lookback=60),
        ...                            parameter_bounds={"window": [10, 21]}, price_data=ds)
        >>> len(out.folds)
        4
        """
        return seed_walk_forward(self, *args, **kwargs)

    def _fold(self, i, bounds, strat, param_bounds, data, backtest_kw):
        """Fold ``i`` of bar positions ``bounds`` = (is_start, oos_start, oos_end): its
        folds row, its search and its signal on the first ``step_size`` OOS bars."""
        a, b, c = bounds
        t = data.time.values
        res = optimize_strategy_parameters(
            strat, param_bounds, data.isel(time=slice(0, b)), start_date=t[a],
            end_date=t[b - 1], optimization_method=self.method, n_trials=self.n_trials,
            objective=self.objective, seed=self.seed + i, progress=False,
            **_own_study(self.kw, strat, self.method, self.objective, f"fold{i}"),
            **backtest_kw)
        chosen = res.strategy
        oos = _Evaluator(chosen, data.isel(time=slice(0, c)), t[b], t[c - 1],
                         (self.objective,), backtest_kw, self.kw.get("risk_free_rate", 0.0))
        vals, _, head = oos({})
        # the stitched account trades these parameters on the first step_size OOS bars
        seg_end = min(b + self.step, len(t))
        hist = data.isel(time=slice(0, seg_end))
        segment = (chosen.signal(hist, **chosen.default_inputs(hist))
                   .isel(time=slice(b, seg_end)))
        best = res.trials.iloc[res.best_trial]
        row = {"is_start": t[a], "is_end": t[b - 1], "oos_start": t[b],
               "oos_end": t[c - 1], **res.best_params,
               f"is_{self.objective}": float(best[self.objective]),
               f"oos_{self.objective}": vals[0],
               "is_sharpe_ratio": float(best["sharpe_ratio"]),
               "oos_sharpe_ratio": head["sharpe_ratio"],
               "dsr": res.dsr, "pbo": res.pbo}
        return row, res, segment

    def run(self, strategy, param_bounds=None, data=None, **backtest_kw) -> WalkForwardResult:
        """Run every fold and stitch the out-of-sample account.

        Each fold searches ``param_bounds`` on its in-sample bars only
        (:func:`optimize_strategy_parameters`), then trades the chosen parameters on the next
        ``step_size`` out-of-sample bars.

        Parameters
        ----------
        {{run_args}}
        **backtest_kw
            Options of :func:`quantlab.backtest` (fees, slippage, ...; always one account).

        Returns
        -------
        WalkForwardResult

        Raises
        ------
        ValueError
            If the bounds are invalid or the data is too short for one fold.

        Examples
        --------
        {{walk}}
        >>> out.folds[["oos_start", "window"]].astype(str).values.tolist()[:2]
        [['2000-07-24', '21'], ['2000-10-03', '10']]
        """
        strat = resolve(strategy)
        _space(strat, param_bounds)        # refuse bad bounds before any fold
        data = load_data() if data is None else _check_data(data)
        t = data.time.values
        rows, results, segments = [], [], []
        for i, (a, b, c) in enumerate(_progress.bar(self.fold_bounds(len(t)), "walk-forward",
                                                    "fold", self.progress)):
            try:
                row, res, segment = self._fold(i, (a, b, c), strat, param_bounds, data,
                                               backtest_kw)
            except _NoFiniteTrial as e:   # which fold: the first ones lack warm-up history
                raise _NoFiniteTrial(f"walk-forward fold {i} ({b} bars of history): {e}; "
                                     "lengthen optimization_window or start the data "
                                     "earlier") from None
            except Exception as e:   # a trial, or the out-of-sample test: which fold
                e.add_note(f"(in walk-forward fold {i}: in-sample {str(t[a])[:10]} .. "
                           f"{str(t[b - 1])[:10]}, out of sample to {str(t[c - 1])[:10]})")
                raise
            rows.append(row)
            results.append(res)
            segments.append(segment)
        folds = pd.DataFrame(rows)
        folds.index.name = "fold"
        sig = xr.concat(segments, dim="time")
        span = slice(sig.time.values[0], sig.time.values[-1])
        kw = {k: v for k, v in backtest_kw.items() if k != "group"}
        acct = backtest(data.sel(time=span), sig, group=True, **kw)
        oos_r = acct.returns
        metrics = summary(oos_r, risk_free_rate=self.kw.get("risk_free_rate", 0.0),
                          annualization=acct.periods)
        params = list(results[0].best_params)
        return WalkForwardResult(folds, oos_r, acct.equity, metrics,
                                 _stability(folds[params]), self.objective, results)


def _stability(chosen: pd.DataFrame) -> pd.DataFrame:
    """Per parameter: mean, std, min, max and coefficient of variation over the folds
    (numbers), the share of folds holding its most common value, and how many times it
    changed from one fold to the next."""
    rows = {}
    for k in chosen:
        s = chosen[k]
        num = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
        mean, std = (float(s.mean()), float(s.std(ddof=0))) if num else (math.nan, math.nan)
        rows[k] = {"mean": mean, "std": std,
                   "min": float(s.min()) if num else math.nan,
                   "max": float(s.max()) if num else math.nan,
                   "cv": std / abs(mean) if num and mean else math.nan,
                   "mode_share": float(s.value_counts(normalize=True).iloc[0]),
                   "changes": int((s != s.shift()).iloc[1:].sum())}
    return pd.DataFrame(rows).T.astype({"changes": int, "mode_share": float})


# ----------------------------------------------------------------------------- regimes
@fill(_DOC)
@dataclass(repr=False)
class RegimeAdaptiveResult:
    """Parameters per regime label (``params``; ``default`` where the label is empty or unseen) and their searches (``results``).

    ``signal(ds)`` switches between them with the label known at each bar, so it looks no
    further ahead than the labels do.

    Made by :meth:`RegimeAdaptiveOptimizer.run`; the parameters are its attributes.

    Parameters
    ----------
    strategy : Strategy
        The strategy whose parameters switch.
    params : dict
        ``{label: parameters}`` found per regime.
    default : dict
        Parameters for bars whose label is empty or was not seen in the search.
    results : dict
        ``{label: OptimizationResult}``, each regime's search.
    regimes : xarray.DataArray or callable
        The labels on time, or a function ``ds -> labels``.

    Examples
    --------
    {{regime}}
    >>> ra.default
    {'window': 21}
    >>> ra.signal(ds).dims
    ('time', 'asset')
    """

    strategy: object
    params: dict
    default: dict
    results: dict
    regimes: object

    def __repr__(self):
        return f"RegimeAdaptiveResult({self.strategy.name}: {self.params}, default {self.default})"

    def labels(self, ds) -> xr.DataArray:
        """The regime labels on ``ds``'s times ("" where unknown).

        Parameters
        ----------
        ds : xarray.Dataset
            Prices.

        Returns
        -------
        xarray.DataArray
            String labels on ``time``.

        Examples
        --------
        {{regime}}
        >>> ra.labels(ds).values[[0, -1]].tolist()
        ['early', 'late']
        """
        lab = self.regimes(ds) if callable(self.regimes) else self.regimes
        return _labels(lab, ds)

    def default_inputs(self, ds) -> dict:
        """The strategy's bundled external inputs cut at ``ds``'s last timestamp.

        Parameters
        ----------
        ds : xarray.Dataset
            Prices; the inputs end at its last timestamp.

        Returns
        -------
        dict
            ``{name: series}`` for ``signal(ds, **inputs)``; empty for a strategy that
            uses prices only.

        Examples
        --------
        {{regime}}
        >>> ra.default_inputs(ds)
        {}
        """
        return self.strategy.default_inputs(ds)

    def signal(self, ds, **inputs) -> xr.DataArray:
        """The strategy's signal with each bar's parameters chosen by the label known at that bar.

        Parameters
        ----------
        ds : xarray.Dataset
            Prices.
        **inputs
            External inputs (default: the strategy's ``default_inputs``).

        Returns
        -------
        xarray.DataArray
            (time, asset) exposure.

        Examples
        --------
        {{regime}}
        >>> ra.signal(ds).dims
        ('time', 'asset')
        """
        inputs = inputs or self.default_inputs(ds)
        lab = self.labels(ds)
        make = lambda p: type(self.strategy)(**{**self.strategy.params, **p}).signal(ds, **inputs)  # noqa: E731
        out = make(self.default)
        for label, p in self.params.items():
            out = xr.where(lab == label, make(p), out)
        return out.transpose("time", "asset").rename("signal")

    def backtest(self, ds, **backtest_kw):
        """``ql.backtest`` of :meth:`signal` as one portfolio account (``group=True``).

        Parameters
        ----------
        ds : xarray.Dataset
            Prices.
        **backtest_kw
            Options of ``ql.backtest``.

        Returns
        -------
        BacktestResult

        Examples
        --------
        {{regime}}
        >>> ra.backtest(ds).equity.dims
        ('time',)
        """
        return backtest(ds, self.signal(ds), group=True, **backtest_kw)


def _labels(lab, ds, search=False) -> xr.DataArray:
    if isinstance(lab, pd.Series):
        lab = xr.DataArray(lab.to_numpy(), dims="time", coords={"time": lab.index.values})
    if not isinstance(lab, xr.DataArray) or lab.dims != ("time",):
        raise ValueError("regimes must be labels on time: a (time,) DataArray, a Series, or "
                         "a function of the Dataset returning one (e.g. "
                         "lambda ds: ql.ensemble.detect_regimes(ds)['volatility'])")
    t = lab.indexes["time"] if "time" in lab.indexes else pd.Index([])
    if t.has_duplicates:   # xarray's "cannot reindex or align along dimension 'time'"
        raise DataError(f"regimes: two labels at {time_label(t[t.duplicated()][0])}; give "
                        "one label per timestamp")
    if search and lab.sizes["time"] and not lab.indexes["time"].isin(ds.indexes["time"]).any():
        # every label was dropped by the reindex: a run of the default alone, without a word
        raise DataError(f"regimes share no timestamp with the data (labels from "
                        f"{str(lab.time.values[0])[:19]}, bars from "
                        f"{str(ds.time.values[0])[:19]}); put them on the data's times")
    lab = lab.reindex(time=ds.time)
    return lab.where(lab.notnull(), "").astype(str)


@fill(_DOC)
class RegimeAdaptiveOptimizer:
    """Best parameters per regime.

    For each label, a search scored only on the returns earned while that label held (the
    return of bar t+1 belongs to the label at t, when the position was chosen). Labels with
    fewer than ``min_bars`` such returns, and empty labels, use the parameters that are
    best over all bars (``default``).

    Parameters
    ----------
    regimes : xarray.DataArray or callable
        String labels on ``time``, or a function of the data returning them (e.g.
        ``lambda ds: ql.ensemble.detect_regimes(ds)["regime"]``).
    optimization_method : str, default 'tpe'
        As in :func:`optimize_strategy_parameters`.
    n_trials : int, default 30
        Evaluations per label.
    objective : str, default 'sharpe_ratio'
        One returns metric (an account-level one, such as ``n_trades``, cannot be scored
        on a regime's bars alone).
    min_bars : int, default 63
        Returns a label needs for its own search (>= 0; a search needs 3 at least).
    seed : int, default 0
        Random seed.
    progress : bool, default True
        Show a progress bar.
    **optimize_kw
        Go to :func:`optimize_strategy_parameters`; with ``storage=``, each search keeps
        its own study, ``<study_name>-*`` (the default) and ``<study_name>-regime-<label>``.

    Raises
    ------
    ValueError
        If the method is unknown, ``objective`` is not one returns metric, or a count is
        out of range (the message names it).
    TypeError
        If a keyword is neither the optimiser's nor ``ql.backtest``'s.

    Examples
    --------
    {{regime}}
    >>> ra.params
    {'early': {'window': 21}, 'late': {'window': 21}}
    """

    def __init__(self, regimes, optimization_method="tpe", n_trials=30,
                 objective="sharpe_ratio", min_bars=63, seed=0, progress=True, **optimize_kw):
        _check_method(optimization_method)
        # checked here, not after the default search over all bars had run: a list ran a
        # Pareto search the regimes then ignored, a typo or an account-level metric (it
        # cannot be scored on a regime's bars) failed only at the first regime's search
        if not isinstance(objective, str):
            raise ValueError(f"a regime-adaptive search takes one objective, got "
                             f"{_validate._show(objective)}")
        _check_objectives(objective)
        if objective in _BACKTEST_ONLY:
            raise ValueError(f"objective {objective!r} is account-level and cannot be scored "
                             "on a regime's bars alone; use a returns metric")
        n_trials = _validate.count("n_trials", n_trials)
        min_bars = _validate.integer("min_bars", min_bars, lo=0)
        seed = _validate.integer("seed", seed, lo=0, hi=2**32 - 1)
        self.regimes, self.method, self.n_trials = regimes, optimization_method, n_trials
        self.objective, self.min_bars, self.seed = objective, min_bars, seed
        _check_backtest_kw(optimize_kw, optimizer=True)
        self.progress, self.kw = _validate.flag("progress", progress), optimize_kw

    def run(self, strategy, param_bounds=None, data=None, start_date=None, end_date=None,
            **backtest_kw) -> RegimeAdaptiveResult:
        """Search the parameters of each regime label, and the default over all bars.

        Parameters
        ----------
        {{run_args}}
        start_date, end_date : str or datetime-like, optional
            The scoring window.
        **backtest_kw
            Options of ``ql.backtest``.

        Returns
        -------
        RegimeAdaptiveResult

        Raises
        ------
        ValueError
            If the bounds, dates or labels are invalid.

        Examples
        --------
        {{regime}}
        >>> ra.params
        {'early': {'window': 21}, 'late': {'window': 21}}
        """
        strat = resolve(strategy)
        _space(strat, param_bounds)        # refuse bad bounds before any search
        data = load_data() if data is None else _check_data(data)
        start, end = _check_dates(data, start_date, end_date)
        hist = data.sel(time=slice(None, end))
        lab = _labels(self.regimes(hist) if callable(self.regimes) else self.regimes, hist,
                      search=True)
        window = hist.time.sel(time=slice(start, None))
        held = shifted(lab, fill_value="").sel(time=window)   # label when chosen
        labels = [str(v) for v in np.unique(held.values) if v != ""]
        if "*" in labels:   # its search replaced the default's, and its params were dropped
            raise ValueError("regime label '*' is the key of the default search in "
                             "results; rename that label")
        common = dict(optimization_method=self.method, objective=self.objective,
                      n_trials=self.n_trials, seed=self.seed, progress=False,
                      start_date=start_date, end_date=end_date, **backtest_kw)

        def own(part):   # each search its own stored study
            return {**common, **_own_study(self.kw, strat, self.method, self.objective, part)}
        results = {"*": optimize_strategy_parameters(strat, param_bounds, data, **own("*"))}
        for label in _progress.bar(labels, "regimes", "regime", self.progress):
            mask = (held == label).values
            if mask.sum() < max(self.min_bars, 3):   # fewer: no score, and the run failed
                continue
            results[label] = optimize_strategy_parameters(strat, param_bounds, data,
                                                          _mask=mask, **own(f"regime-{label}"))
        params = {k: dict(r.best_params) for k, r in results.items() if k != "*"}
        return RegimeAdaptiveResult(strat, params, dict(results["*"].best_params), results,
                                    self.regimes)
