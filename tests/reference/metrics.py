"""Twins of the metrics empyrical lacks, from their DESIGN.md definitions (NaN = no
observation)."""
import numpy as np


def _valid(r):
    r = np.asarray(r, dtype=float)
    return r[~np.isnan(r)]


def wealth_path(r):
    """W_0 = 1 (the initial peak), then W_k = Π_{i<=k} (1 + r_i) over valid returns."""
    return np.concatenate([[1.0], np.cumprod(1 + _valid(r))])


def recovery_time(r):
    w = wealth_path(r)
    peak = np.maximum.accumulate(w)
    dd = w / peak - 1
    if len(w) < 2:
        return np.nan
    if dd.min() >= 0:
        return 0.0                        # never under water
    trough = int(np.argmin(dd))           # first occurrence of the deepest drawdown
    after = np.flatnonzero(w[trough:] >= peak[trough])
    return float(after[0]) if len(after) else np.nan


def drawdown_duration(r):
    w = wealth_path(r)
    under = w < np.maximum.accumulate(w)
    best = run = 0
    for u in under:
        run = run + 1 if u else 0
        best = max(best, run)
    return float(best) if len(w) > 1 else np.nan


def win_rate(r):
    v = _valid(r)
    nz = v[v != 0]
    return (nz > 0).mean() if len(nz) else np.nan


def profit_factor(r):
    v = _valid(r)
    if not (v != 0).any():
        return np.nan
    neg = -v[v < 0].sum()
    return v[v > 0].sum() / neg if neg > 0 else np.inf


def tracking_error(r, b, ann=252):
    r, b = np.asarray(r, float), np.asarray(b, float)
    ok = ~np.isnan(r) & ~np.isnan(b)
    return np.std(r[ok] - b[ok], ddof=1) * np.sqrt(ann)


def information_ratio(r, b, ann=252):
    r, b = np.asarray(r, float), np.asarray(b, float)
    ok = ~np.isnan(r) & ~np.isnan(b)
    return np.mean(r[ok] - b[ok]) * ann / tracking_error(r, b, ann)
