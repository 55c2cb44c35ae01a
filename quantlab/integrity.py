"""How likely a backtest result is to be luck or overfitting.

- ``probabilistic_sharpe_ratio`` (Bailey & López de Prado 2012): the probability that the
  true Sharpe ratio exceeds a benchmark, given the sample's length, skewness and kurtosis.
- ``deflated_sharpe_ratio`` (Bailey & López de Prado 2014): the PSR against the Sharpe ratio
  the best of ``n_trials`` unskilled trials would reach by chance.
- ``pbo`` (Bailey, Borwein, López de Prado & Zhu 2017): the probability of backtest
  overfitting by combinatorially symmetric cross-validation (CSCV).

Conventions (DESIGN.md): Sharpe ratios are per period (not annualised); kurtosis is
Pearson's (3 for a normal distribution), not excess.
"""
from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import numpy as np

__all__ = ["probabilistic_sharpe_ratio", "deflated_sharpe_ratio", "expected_max_sharpe",
           "pbo"]

_N = NormalDist()
EULER_GAMMA = 0.5772156649015329


def _moments(returns):
    r = np.asarray(getattr(returns, "values", returns), dtype=float)
    r = r[~np.isnan(r)]
    if r.ndim != 1 or r.size < 3:
        raise ValueError(f"need a 1-D series of at least 3 returns, got {r.size}")
    sd = r.std(ddof=1)
    if sd == 0:
        raise ValueError("returns have zero variance: the Sharpe ratio is undefined")
    z = (r - r.mean()) / r.std(ddof=0)
    return r.mean() / sd, float((z ** 3).mean()), float((z ** 4).mean()), r.size


def probabilistic_sharpe_ratio(returns=None, sr_benchmark=0.0, *, sr=None, n=None, skew=0.0,
                               kurtosis=3.0) -> float:
    """PSR(SR*) = Φ((SR - SR*) √(n - 1) / √(1 - γ3·SR + (γ4 - 1)/4 · SR²)).

    From ``returns`` (per-period Sharpe, skewness and Pearson kurtosis estimated), or from
    ``sr`` (per period), ``n``, ``skew`` and ``kurtosis`` directly."""
    if returns is not None:
        sr, skew, kurtosis, n = _moments(returns)
    if sr is None or n is None:
        raise ValueError("give returns, or sr and n")
    denom = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if denom <= 0:
        raise ValueError("the Sharpe ratio's variance estimate is not positive "
                         "(extreme skewness/kurtosis for this Sharpe ratio)")
    return _N.cdf((sr - sr_benchmark) * math.sqrt(n - 1) / math.sqrt(denom))


def expected_max_sharpe(n_trials, sr_variance) -> float:
    """E[max of n_trials Sharpe ratios of unskilled trials] ≈ √V · ((1 - γ) Φ⁻¹(1 - 1/N) +
    γ Φ⁻¹(1 - 1/(N e))), γ Euler's constant (the false-strategy theorem)."""
    if n_trials < 2:
        return 0.0
    return math.sqrt(sr_variance) * ((1 - EULER_GAMMA) * _N.inv_cdf(1 - 1 / n_trials)
                                     + EULER_GAMMA * _N.inv_cdf(1 - 1 / (n_trials * math.e)))


def deflated_sharpe_ratio(returns=None, trial_sharpes=None, *, n_trials=None,
                          sr_variance=None, sr=None, n=None, skew=0.0,
                          kurtosis=3.0) -> float:
    """DSR = PSR(SR0) with SR0 = ``expected_max_sharpe(N, V)``: N trials whose per-period
    Sharpe ratios have variance V (from ``trial_sharpes``, or ``n_trials`` and
    ``sr_variance``). The chosen strategy's ``returns`` (or sr, n, skew, kurtosis) give the
    rest."""
    if trial_sharpes is not None:
        t = np.asarray(trial_sharpes, dtype=float)
        t = t[np.isfinite(t)]
        n_trials, sr_variance = t.size, float(t.var(ddof=1)) if t.size > 1 else 0.0
    if n_trials is None or sr_variance is None:
        raise ValueError("give trial_sharpes, or n_trials and sr_variance")
    sr0 = expected_max_sharpe(n_trials, sr_variance)
    return probabilistic_sharpe_ratio(returns, sr0, sr=sr, n=n, skew=skew, kurtosis=kurtosis)


def pbo(trial_returns, n_splits=16, metric=None) -> dict:
    """Probability of backtest overfitting by CSCV.

    ``trial_returns``: (time, trials) returns of every configuration tried. The rows are
    cut into ``n_splits`` (even) blocks; for each of the C(S, S/2) ways to pick half the
    blocks as in-sample, the best in-sample trial (by ``metric``, default the per-period
    Sharpe ratio) is ranked out of sample; λ = logit of its relative rank. PBO = share of
    splits with λ ≤ 0, i.e. the best in-sample trial is at or below the out-of-sample
    median. Returns {"pbo", "logits", "n_splits", "n_combinations"}.
    """
    x = np.asarray(getattr(trial_returns, "values", trial_returns), dtype=float)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError("trial_returns must be (time, trials) with at least 2 trials")
    if n_splits % 2 or n_splits < 2:
        raise ValueError(f"n_splits must be even and >= 2, got {n_splits}")
    x = x[: x.shape[0] - x.shape[0] % n_splits]
    if x.shape[0] < 2 * n_splits:
        raise ValueError(f"{x.shape[0]} rows are too few for {n_splits} splits")
    blocks = np.array_split(np.arange(x.shape[0]), n_splits)

    def score(rows):
        v = x[rows]
        if metric is not None:
            return np.asarray(metric(v), dtype=float)
        sd = np.nanstd(v, axis=0, ddof=1)
        return np.nanmean(v, axis=0) / np.where(sd > 0, sd, np.nan)

    logits = []
    combos = list(itertools.combinations(range(n_splits), n_splits // 2))
    for ins in combos:
        outs = [b for b in range(n_splits) if b not in ins]
        is_rows = np.concatenate([blocks[b] for b in ins])
        oos_rows = np.concatenate([blocks[b] for b in outs])
        best = int(np.nanargmax(score(is_rows)))
        oos = score(oos_rows)
        rank = (np.sum(oos < oos[best]) + 0.5 * (np.sum(oos == oos[best]) - 1) + 1) / (
            np.isfinite(oos).sum() + 1)
        logits.append(math.log(rank / (1 - rank)))
    logits = np.array(logits)
    return {"pbo": float(np.mean(logits <= 0)), "logits": logits, "n_splits": n_splits,
            "n_combinations": len(combos)}
