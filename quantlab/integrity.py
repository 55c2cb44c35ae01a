"""How likely a backtest result is to be luck or overfitting.

- ``probabilistic_sharpe_ratio`` (Bailey & López de Prado 2012): the probability that the
  true Sharpe ratio exceeds a benchmark, given the sample's length, skewness and kurtosis.
- ``deflated_sharpe_ratio`` (Bailey & López de Prado 2014): the PSR against the Sharpe ratio
  the best of ``n_trials`` unskilled trials would reach by chance.
- ``min_track_record_length`` (Bailey & López de Prado 2012): how long a record must be
  for its Sharpe ratio to beat a benchmark at a given confidence.
- ``pbo`` (Bailey, Borwein, López de Prado & Zhu 2017): the probability of backtest
  overfitting by combinatorially symmetric cross-validation (CSCV).
- ``reality_check``: White's Reality Check and Hansen's SPA test (``arch.bootstrap``).

Conventions (DESIGN.md): Sharpe ratios are per period (not annualised); kurtosis is
Pearson's (3 for a normal distribution), not excess.
"""
from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import numpy as np

from quantlab import _validate
from quantlab._doc import fill
from quantlab.data import FLAT_VARIANCE

__all__ = ["probabilistic_sharpe_ratio", "deflated_sharpe_ratio", "min_track_record_length",
           "expected_max_sharpe", "pbo", "reality_check"]

_N = NormalDist()
EULER_GAMMA = 0.5772156649015329
# CSCV tries C(S, S/2) splits: 184,756 at S = 20 (12,870 at the usual 16); each more
# pair of blocks multiplies them by ~4, so a larger S only exhausts memory
MAX_SPLITS = 20


# shared docstring blocks (quantlab._doc.fill): written once, used by many docstrings
_SHARPE = """\
sharpe : float, optional
    Per-period Sharpe ratio, instead of ``returns``."""
_MOMENTS = """\
skew : float, default 0.0
    Skewness γ3 of the returns (with ``sharpe``).
kurtosis : float, default 3.0
    Pearson kurtosis γ4 of the returns (3 for the normal; with ``sharpe``)."""
_DOC = {
    "returns_benchmark": """\
Parameters
----------
returns : array-like, optional
    Per-period returns of the strategy.
sr_benchmark : float, default 0.0
    The per-period Sharpe ratio SR* to beat.""",
    "sharpe_stats": _SHARPE + """
n_obs : float, optional
    Number of observations (> 1), with ``sharpe``.
""" + _MOMENTS,
    "sharpe_moments": _SHARPE + "\n" + _MOMENTS,
    "stats_raises": """\
Raises
------
ValueError
    If neither ``returns`` nor the needed statistics are given, or both are,
    ``kurtosis`` is below ``1 + skew**2`` (no distribution's; an excess kurtosis), or the
    Sharpe ratio's variance estimate 1 - γ3·SR + (γ4 - 1)/4 · SR² is not positive (or
    overflows).""",
}


def _no_inf(name: str, x: np.ndarray) -> None:
    """Refuse ±inf returns (a price from 0): NaN is a missing return and skipped, ±inf is
    no return at all. pbo and reality_check took it as missing, without a word, and
    scored the trial on its other rows."""
    bad = np.argwhere(np.isinf(x))
    if len(bad):
        at = ", ".join(f"{d} {i}" for d, i in zip(("row", "trial"), bad[0]))
        raise ValueError(f"{name} hold ±inf ({at}: {x[tuple(bad[0])]}): a return of a "
                         "price from 0 is none; NaN marks a missing one")


def _moments(returns):
    r = _validate.floats("returns", returns)
    if r.ndim != 1:   # checked before the NaN mask, which flattens a table into one series
        raise ValueError(f"need a 1-D series of returns, got shape {r.shape}")
    r = r[~np.isnan(r)]
    if r.size < 3:
        raise ValueError(f"need a 1-D series of at least 3 returns, got {r.size}")
    if np.isinf(r).any():
        raise ValueError(f"returns hold ±inf (position {int(np.flatnonzero(np.isinf(r))[0])} "
                         "of the non-NaN values): the moments are undefined")
    if r.max() == r.min():   # exact: the std of a constant is a rounding residue, not 0
        raise ValueError("returns have zero variance: the Sharpe ratio is undefined")
    # a crawl (prices x 1.0001 a bar): sigma is rounding noise, and so were the PSR of 1.0
    # and a MinTRL from the noise's skew and kurtosis; the rule of Kelly and the betas
    if r.var() <= FLAT_VARIANCE * np.mean(r * r):
        raise ValueError(f"returns barely vary (variance {r.var():.3g}, below "
                         f"{FLAT_VARIANCE:g} of their mean square): their spread is rounding "
                         "noise and the Sharpe ratio is undefined")
    sd = r.std(ddof=1)
    z = (r - r.mean()) / r.std(ddof=0)
    return r.mean() / sd, float((z ** 3).mean()), float((z ** 4).mean()), r.size


@fill(_DOC)
def probabilistic_sharpe_ratio(returns=None, sr_benchmark=0.0, *, sharpe=None, n_obs=None,
                               skew=0.0, kurtosis=3.0) -> float:
    """Probabilistic Sharpe ratio: PSR(SR*) = Φ((SR - SR*) √(n - 1) / √(1 - γ3·SR + (γ4 - 1)/4 · SR²)).

    From ``returns`` (per-period Sharpe, skewness and Pearson kurtosis estimated), or from
    ``sharpe`` (per period), ``n_obs``, ``skew`` and ``kurtosis`` directly (Bailey & López
    de Prado 2012).

    {{returns_benchmark}}
    {{sharpe_stats}}

    Returns
    -------
    float
        The probability that the true Sharpe ratio exceeds SR*.

    {{stats_raises}}

    Examples
    --------
    >>> import quantlab as ql
    >>> round(ql.integrity.probabilistic_sharpe_ratio(sharpe=0.1, n_obs=252), 4)
    0.943
    """
    if returns is not None:
        _not_beside_returns(sharpe=sharpe, n_obs=n_obs, skew=skew, kurtosis=kurtosis)
        sharpe, skew, kurtosis, n_obs = _moments(returns)
    if sharpe is None or n_obs is None:
        raise ValueError("give returns, or sharpe and n_obs")
    n_obs = _validate.number("n_obs", n_obs, lo=1, lo_open=True)   # MinTRL's are fractional
    sharpe, sr_benchmark = _finite(sharpe=sharpe, sr_benchmark=sr_benchmark)
    return _N.cdf((sharpe - sr_benchmark) * math.sqrt(n_obs - 1)
                  / math.sqrt(_sr_var_factor(sharpe, skew, kurtosis)))


_STAT_DEFAULTS = {"sharpe": None, "n_obs": None, "skew": 0.0, "kurtosis": 3.0}


def _not_beside_returns(**given) -> None:
    """Refuse statistics given with ``returns``, which replaced them without a word
    (``skew=-2`` with returns was the returns' skew), as ``trial_sharpes`` with
    ``n_trials`` is refused."""
    named = [f"{k}={_validate._show(v)}" for k, v in given.items() if not (
        v is _STAT_DEFAULTS[k] or (isinstance(v, (int, float)) and not isinstance(v, bool)
                                   and v == _STAT_DEFAULTS[k]))]
    if named:
        raise ValueError(f"give returns, or the statistics (sharpe, n_obs, skew, kurtosis), "
                         f"not both: from returns they are estimated; got {', '.join(named)}")


def _finite(**values) -> list[float]:
    """Each value as a float, or a ValueError naming it (NaN or ±inf made every
    probability NaN, or 0 or 1, without a word)."""
    return [_validate.number(k, v) for k, v in values.items()]


def _sr_var_factor(sharpe, skew, kurtosis) -> float:
    """1 - γ3·SR + (γ4 - 1)/4 · SR²: (n - 1) × the variance of the Sharpe estimate."""
    skew, kurtosis = _finite(skew=skew, kurtosis=kurtosis)
    # no distribution has γ4 < 1 + γ3² (Pearson): such a value is an excess kurtosis
    # (0 for the normal, what scipy.stats.kurtosis returns), and it made the Sharpe ratio
    # look steadier than it is: a silently higher PSR/DSR. The tolerance keeps a
    # two-point sample (γ4 = 1 + γ3² exactly) in
    if kurtosis < (1.0 + skew * skew) * (1.0 - 1e-9):
        raise ValueError(f"kurtosis {kurtosis:g} is below 1 + skew² = {1 + skew * skew:g}, "
                         "which no distribution has: give Pearson's kurtosis (3 for the "
                         "normal), not the excess kurtosis (0 for the normal; "
                         "scipy.stats.kurtosis(x, fisher=False) is Pearson's)")
    v = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    if not math.isfinite(v):   # SR² beyond the largest double: PSR was Φ(x / inf) = 0.5
        raise ValueError(f"the Sharpe ratio's variance estimate 1 - γ3·SR + (γ4 - 1)/4 · SR² "
                         f"overflows for sharpe={sharpe:g}, skew={skew:g}, kurtosis="
                         f"{kurtosis:g}: give a per-period Sharpe ratio (a few units at most)")
    if v <= 0:
        raise ValueError("the Sharpe ratio's variance estimate is not positive "
                         "(extreme skewness/kurtosis for this Sharpe ratio)")
    return v


@fill(_DOC)
def min_track_record_length(returns=None, sr_benchmark=0.0, confidence=0.95, *, sharpe=None,
                            skew=0.0, kurtosis=3.0) -> float:
    """Minimum track record length for PSR(SR*) to reach ``confidence``.

    MinTRL = 1 + (1 - γ3·SR + (γ4 - 1)/4 · SR²) · (Φ⁻¹(confidence) / (SR - SR*))²: the
    number of observations needed for PSR(SR*) to reach ``confidence`` (Bailey & López de
    Prado 2012). Per-period Sharpe ratios; ``inf`` when SR <= SR*.

    {{returns_benchmark}}
    confidence : float, default 0.95
        The PSR to reach.
    {{sharpe_moments}}

    Returns
    -------
    float
        Observations (periods); ``inf`` when SR <= SR*.

    {{stats_raises}}

    Examples
    --------
    >>> import quantlab as ql
    >>> round(ql.integrity.min_track_record_length(sharpe=0.1), 1)
    272.9
    """
    if returns is not None:
        _not_beside_returns(sharpe=sharpe, skew=skew, kurtosis=kurtosis)
        sharpe, skew, kurtosis, _ = _moments(returns)
    if sharpe is None:
        raise ValueError("give returns, or sharpe")
    sharpe, sr_benchmark = _finite(sharpe=sharpe, sr_benchmark=sr_benchmark)
    confidence = _validate.number("confidence", confidence, 0, 1, lo_open=True, hi_open=True)
    if sharpe <= sr_benchmark:
        return math.inf
    return 1.0 + _sr_var_factor(sharpe, skew, kurtosis) * (
        _N.inv_cdf(confidence) / (sharpe - sr_benchmark)) ** 2


def expected_max_sharpe(n_trials, sr_variance) -> float:
    """Expected maximum Sharpe ratio of ``n_trials`` unskilled trials (the false-strategy theorem).

    E[max] ≈ √V · ((1 - γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e))), γ Euler's constant.

    Parameters
    ----------
    n_trials : int
        Number of trials N; below 2 the result is 0.
    sr_variance : float
        Variance V of the trials' per-period Sharpe ratios.

    Returns
    -------
    float
        The expected maximum per-period Sharpe ratio.

    Examples
    --------
    >>> import quantlab as ql
    >>> round(ql.integrity.expected_max_sharpe(100, 0.01), 4)
    0.2531
    """
    n_trials = _validate.integer("n_trials", n_trials, lo=1, hi=2 ** 62)
    sr_variance = _validate.number("sr_variance", sr_variance, lo=0)
    if n_trials < 2:
        return 0.0
    # Φ⁻¹(1 - p) = -Φ⁻¹(p): 1 - 1/N rounds to 1.0 from N ~ 1e16 (a StatisticsError)
    return -math.sqrt(sr_variance) * ((1 - EULER_GAMMA) * _N.inv_cdf(1 / n_trials)
                                      + EULER_GAMMA * _N.inv_cdf(1 / (n_trials * math.e)))


@fill(_DOC)
def deflated_sharpe_ratio(returns=None, n_trials=None, trials_sharpe_variance=None, *,
                          trial_sharpes=None, sharpe=None, n_obs=None, skew=0.0,
                          kurtosis=3.0) -> float:
    """Deflated Sharpe ratio: DSR = PSR(SR0) with SR0 = ``expected_max_sharpe(N, V)``.

    N trials whose per-period Sharpe ratios have variance V (``n_trials`` and
    ``trials_sharpe_variance``, or both from ``trial_sharpes``). The chosen strategy's
    ``returns`` (or ``sharpe``, ``n_obs``, ``skew``, ``kurtosis``) give the rest.

    Parameters
    ----------
    returns : array-like, optional
        Per-period returns of the chosen strategy.
    n_trials : int, optional
        Number of configurations tried.
    trials_sharpe_variance : float, optional
        Variance of their per-period Sharpe ratios.
    trial_sharpes : array-like, optional
        The trials' per-period Sharpe ratios (non-finite ones dropped), instead of
        ``n_trials`` and ``trials_sharpe_variance``.
    {{sharpe_stats}}

    Returns
    -------
    float
        The probability that the chosen strategy's true Sharpe ratio exceeds SR0.

    Raises
    ------
    ValueError
        If the trials are not described, or described twice (``trial_sharpes`` with
        ``n_trials`` or ``trials_sharpe_variance``), ``trial_sharpes`` is not 1-D, or the
        statistics are missing or impossible (see :func:`probabilistic_sharpe_ratio`).

    Examples
    --------
    >>> import quantlab as ql
    >>> dsr = ql.integrity.deflated_sharpe_ratio(
    ...     sharpe=0.1, n_obs=252, trial_sharpes=[0.02, 0.05, 0.1, -0.01, 0.03])
    >>> round(dsr, 4)
    0.7911
    """
    if trial_sharpes is not None:
        if n_trials is not None or trials_sharpe_variance is not None:
            # trial_sharpes won without a word: n_trials=100 with the Sharpe ratios of
            # the 5 trials kept deflated by 5 trials
            raise ValueError("give trial_sharpes, or n_trials and trials_sharpe_variance, "
                             "not both (trial_sharpes gives N and V itself)")
        t = _validate.floats("trial_sharpes", trial_sharpes)
        if t.ndim != 1:   # a (time, trials) table was flattened into its cells' count
            raise ValueError(f"trial_sharpes must be a 1-D array of the trials' Sharpe "
                             f"ratios, got shape {t.shape}")
        t = t[np.isfinite(t)]
        if t.size == 0:
            raise ValueError("trial_sharpes holds no finite Sharpe ratio")
        n_trials = t.size
        trials_sharpe_variance = float(t.var(ddof=1)) if t.size > 1 else 0.0
    if n_trials is None or trials_sharpe_variance is None:
        raise ValueError("give n_trials and trials_sharpe_variance, or trial_sharpes")
    sr0 = expected_max_sharpe(_validate.integer("n_trials", n_trials, lo=1),
                              _validate.number("trials_sharpe_variance",
                                               trials_sharpe_variance, lo=0))
    return probabilistic_sharpe_ratio(returns, sr0, sharpe=sharpe, n_obs=n_obs, skew=skew,
                                      kurtosis=kurtosis)


def pbo(trial_returns, n_splits=16, metric=None) -> dict:
    """Probability of backtest overfitting by CSCV (Bailey, Borwein, López de Prado & Zhu).

    The rows are cut into ``n_splits`` (even) blocks; for each of the C(S, S/2) ways to
    pick half the blocks as in-sample, the best in-sample trial (by ``metric``, default the
    per-period Sharpe ratio) is ranked out of sample; λ = logit of its relative rank.
    PBO = share of splits with λ ≤ 0, i.e. the best in-sample trial is at or below the
    out-of-sample median. Scores closer than 1e-9 x the larger of their |score| and the
    split's median |score| tie (a trial and its 3x-levered copy): the first of tied best
    trials is the pick, and ties
    share their average rank. A split whose best in-sample trial has no out-of-sample
    score (missing or constant returns there) is left out. A trial that does not trade (zero
    returns) has a Sharpe ratio of 0.
    The default Sharpe ratio is computed for all splits at once from per-block sums (a
    split's mean and variance are sums over its blocks); a custom ``metric(rows x trials)
    -> trials`` is called twice per split.

    Parameters
    ----------
    trial_returns : array-like or xarray.DataArray
        (time, trials) returns of every configuration tried (at least 2 trials); a
        DataArray's ``time`` dim, if it has one, is taken as time whatever its position.
    n_splits : int, default 16
        Number of blocks S, even, in [2, ``MAX_SPLITS``] (20: C(20, 10) = 184,756
        splits); rows beyond a multiple of S are dropped.
    metric : callable, optional
        ``metric(rows x trials) -> trials`` score, higher is better.

    Returns
    -------
    dict
        ``{"pbo", "logits", "n_splits", "n_combinations"}``: ``logits`` of the ranked
        splits (all ``n_combinations`` unless some were left out).

    Raises
    ------
    ValueError
        If ``trial_returns`` is not (time, trials) with 2+ distinct trials or holds ±inf,
        ``n_splits`` is odd or outside [2, 20], there are fewer than 2·S rows, a split has
        no finite in-sample score, no split can be ranked, or ``metric`` does not return
        one score per trial.
    TypeError
        If ``trial_returns`` is not numbers (e.g. a Dataset) or ``metric`` is not callable.

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> noise = np.random.default_rng(1).normal(0, 0.01, (400, 10))  # 10 unskilled trials
    >>> out = ql.integrity.pbo(noise, n_splits=8)
    >>> out["pbo"], out["n_combinations"]
    (0.4, 70)
    """
    x = _validate.floats("trial_returns", trial_returns)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError("trial_returns must be (time, trials) with at least 2 trials")
    _no_inf("trial_returns", x)
    n_splits = _validate.integer("n_splits", n_splits, lo=2, hi=MAX_SPLITS)
    if n_splits % 2:
        raise ValueError(f"n_splits must be even and >= 2, got {n_splits}")
    x = x[: x.shape[0] - x.shape[0] % n_splits]
    if x.shape[0] < 2 * n_splits:
        raise ValueError(f"{x.shape[0]} rows are too few for {n_splits} splits")
    combos = np.array(list(itertools.combinations(range(n_splits), n_splits // 2)))
    in_sample = np.zeros((len(combos), n_splits), dtype=bool)
    in_sample[np.arange(len(combos))[:, None], combos] = True
    if metric is not None and not callable(metric):   # "'str' object is not callable"
        raise TypeError(f"metric must be a function (rows x trials) -> trials or None, got "
                        f"{_validate._show(metric)}")
    rows = np.arange(x.shape[0]).reshape(n_splits, -1)
    if metric is None:
        blocks = x.reshape(n_splits, -1, x.shape[1])          # (split, rows, trials)
        ok = np.isfinite(blocks)
        stats = [ok.sum(1), np.where(ok, blocks, 0).sum(1), np.where(ok, blocks ** 2, 0).sum(1)]

        def score(mask):                                       # (combos, trials)
            n, s1, s2 = (mask.astype(float) @ st for st in stats)
            with np.errstate(invalid="ignore", divide="ignore"):
                var = (s2 - s1 * s1 / n) / (n - 1)
                # a constant trial's variance is rounding noise, not a tiny risk
                flat = var <= 1e-14 * s2 / n
                sr = np.where(flat, np.nan, (s1 / n) / np.sqrt(np.where(flat, 1.0, var)))
                # a trial that did not trade earned nothing: Sharpe 0 (as the optimisers'
                # DSR counts it), not unranked; a "stay flat" trial best in sample was
                # never ranked and the others' chance ranks made the PBO
                return np.where((s2 == 0) & (n > 1), 0.0, sr)
    else:
        def score(mask):
            out = np.array([metric(x[rows[m].ravel()]) for m in mask], dtype=float)
            if out.shape != (len(mask), x.shape[1]):
                # another shape broadcast into the ranks (a wrong PBO) or failed in numpy
                raise ValueError(f"metric must return one score per trial ({x.shape[1]}), "
                                 f"got shape {out.shape[1:]}")
            return out
    # the splits in chunks of ~2**20 scores: (splits x trials) arrays of all 12,870
    # splits took 2.6 GB for 3,000 trials, and grew with them until memory ran out
    step = max(1, _CHUNK_SCORES // x.shape[1])
    logits = [_split_logits(score(m), score(~m))
              for m in (in_sample[i:i + step] for i in range(0, len(combos), step))]
    same = (x == x[:, :1]) | (np.isnan(x) & np.isnan(x[:, :1]))
    if same.all():   # every split's pick ties at the median: PBO 1.0 from no selection at all
        raise ValueError("the trials' returns are identical: there is no selection to "
                         "overfit, PBO is undefined")
    logits = np.concatenate(logits)
    if not logits.size:
        raise ValueError("no split's best in-sample trial has an out-of-sample score "
                         "(its returns there are missing or constant): PBO is undefined")
    return {"pbo": float(np.mean(logits <= 0)), "logits": logits, "n_splits": n_splits,
            "n_combinations": len(combos)}


_CHUNK_SCORES = 2 ** 20


def _split_logits(is_score: np.ndarray, oos_score: np.ndarray) -> np.ndarray:
    """λ of each split (row) whose best in-sample trial has an out-of-sample score."""
    if np.isnan(is_score).all(axis=1).any():
        raise ValueError("a split has no finite in-sample score (constant or empty trials)")
    # scores equal but for rounding tie (3·r and r have one Sharpe ratio, which the
    # per-block sums rounded apart): the pick among them and its rank were the rounding's
    # (PBO 0.443 for the definition's 0.429); the first trial of a tie is the pick
    top = np.nanmax(is_score, axis=1, keepdims=True)
    best = np.argmax(is_score >= top - _tie_tolerance(is_score, top), axis=1)
    val = oos_score[np.arange(len(best)), best][:, None]
    # a best in-sample trial with no out-of-sample score (NaN there, or constant) has no
    # rank: its split is left out. It was ranked 0.5 / (N + 1), "overfit", an artefact
    # of the tie count (-1 for itself) on a NaN
    ranked = np.isfinite(val[:, 0])
    val, oos_score = val[ranked], oos_score[ranked]
    tol = _tie_tolerance(oos_score, np.maximum(np.abs(val), np.abs(oos_score)))
    gap = oos_score - val
    below = (gap < -tol).sum(1)
    rank = (below + 0.5 * ((np.abs(gap, out=gap) <= tol).sum(1) - 1) + 1) / (
        np.isfinite(oos_score).sum(1) + 1)
    return np.log(rank / (1 - rank))


def _tie_tolerance(score: np.ndarray, pair) -> np.ndarray:
    """The gap below which two scores of a split (row) are one: 1e-9 of the larger of the
    pair's |score| and the split's median finite |score| (a Sharpe ratio's rounding is
    ~1e-15 of it; two trials 1e-9 apart are one). Not of its largest: one outlying score
    (a metric's -1e10 for a rejected trial, a near-constant trial's Sharpe ratio of 1e8)
    tied every other trial, and the first of them was the pick."""
    finite = np.isfinite(score)
    scale = (np.median(np.abs(score), axis=1, keepdims=True) if finite.all() else   # faster
             np.nanmedian(np.abs(np.where(finite, score, np.nan)), axis=1, keepdims=True))
    return 1e-9 * np.maximum(np.abs(pair), scale)


def reality_check(trial_returns, benchmark=None, block_size=None, reps=1000, seed=0) -> dict:
    """Is the best trial better than ``benchmark`` once the search over all trials is accounted for?

    Hansen's SPA test (studentised; p-values lower/consistent/upper) and White's Reality
    Check (not studentised, upper p-value) by the stationary bootstrap of
    ``arch.bootstrap`` on losses = -returns. Rows with any NaN are dropped. Small
    p-values: some trial beats the benchmark beyond data snooping. A trial that differs
    from the benchmark by a constant has no variance to bootstrap: one ahead by a constant
    > 0 beats it surely (p-values 0); one never ahead (e.g. a trial that never trades,
    against cash) cannot be the edge and is left out (p-values 1 when no trial is left).

    Parameters
    ----------
    trial_returns : array-like or xarray.DataArray
        (time, trials) returns of every configuration tried; a DataArray's ``time`` dim,
        if it has one, is taken as time whatever its position.
    benchmark : array-like, optional
        (time,) benchmark returns; default cash (zero returns).
    block_size : int, optional
        Mean block length of the bootstrap, in [1, half the complete rows] (``arch``'s
        default when None).
    reps : int, default 1000
        Bootstrap replications, in [1, 10**6] (``_validate.MAX_COUNT``).
    seed : int, default 0
        Random seed, >= 0.

    Returns
    -------
    dict
        ``{"spa_pvalue", "spa_lower", "spa_upper", "reality_check_pvalue"}``.

    Raises
    ------
    ImportError
        If ``arch`` is not installed.
    ValueError
        If ``trial_returns`` is not 2-D, ``benchmark`` has another length, either holds
        ±inf, fewer than 20 complete rows remain or ``block_size`` exceeds half of them.
    TypeError
        If ``trial_returns`` or ``benchmark`` is not numbers (e.g. a Dataset or a string).

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> noise = np.random.default_rng(1).normal(0, 0.01, (200, 5))
    >>> out = ql.integrity.reality_check(noise, reps=100)
    >>> round(out["spa_pvalue"], 2), round(out["reality_check_pvalue"], 2)
    (0.78, 0.83)
    """
    try:
        from arch.bootstrap import SPA
    except ImportError as err:
        raise ImportError("reality_check needs the 'arch' package: pip install arch "
                          "(or quantlab[data])") from err

    if block_size is not None:
        block_size = _validate.integer("block_size", block_size, lo=1)
    reps = _validate.count("reps", reps)   # 10**12: arch allocated (3, reps, trials)
    seed = _validate.integer("seed", seed, lo=0)
    x = _validate.floats("trial_returns", trial_returns)
    if x.ndim != 2:
        raise ValueError("trial_returns must be (time, trials)")
    b = np.zeros(x.shape[0]) if benchmark is None else _validate.floats("benchmark", benchmark)
    if b.shape != x.shape[:1]:   # a number: was an IndexError writing this message
        raise ValueError(f"benchmark must be ({x.shape[0]},) returns like trial_returns' "
                         f"rows, got shape {b.shape}")
    _no_inf("trial_returns", x)
    _no_inf("benchmark", b)
    keep = np.isfinite(x).all(1) & np.isfinite(b)
    if keep.sum() < 20:
        raise ValueError(f"{keep.sum()} complete rows are too few for a bootstrap test")
    x, b = x[keep], b[keep]
    if block_size is not None and block_size > len(x) // 2:
        # fewer than 2 blocks a resample: mostly a rotation of the rows, whose mean is the
        # sample's, so noise tested significant (block_size=10**6: p-values 0)
        raise ValueError(f"block_size must be at most half the {len(x)} complete rows "
                         f"({len(x) // 2}), got {_validate._show(block_size)}: longer "
                         "blocks leave the bootstrap nothing to resample")
    # a constant difference has no variance: the studentised statistic was 0/0 and arch
    # reported p = 0 ("beats the benchmark") for trials equal to it or always behind it
    d = x - b[:, None]
    const = d.max(0) == d.min(0)
    if (const & (d[0] > 0)).any():
        return dict.fromkeys(("spa_pvalue", "spa_lower", "spa_upper",
                              "reality_check_pvalue"), 0.0)
    x = x[:, ~const]
    if x.shape[1] == 0:
        return dict.fromkeys(("spa_pvalue", "spa_lower", "spa_upper",
                              "reality_check_pvalue"), 1.0)
    spa = SPA(-b, -x, block_size=block_size, reps=reps, seed=seed)
    spa.compute()
    rc = SPA(-b, -x, block_size=block_size, reps=reps, seed=seed, studentize=False)
    rc.compute()
    p = spa.pvalues
    return {"spa_pvalue": float(p["consistent"]), "spa_lower": float(p["lower"]),
            "spa_upper": float(p["upper"]), "reality_check_pvalue": float(rc.pvalues["upper"])}
