"""Twins of the rolling kernels: every window recomputed from scratch (O(n * window))."""
import numpy as np


def _windows(x, window, minp):
    """Yield (t, column, finite values of the window ending at t, x[t]) where n >= minp.
    ±inf is missing, as NaN (pandas' rolling turns inf into NaN)."""
    x = np.asarray(x, dtype=float)
    for t in range(x.shape[0]):
        win = x[max(0, t - window + 1): t + 1]
        for a in range(x.shape[1]):
            v = win[:, a]
            v = v[np.isfinite(v)]
            if len(v) >= minp:
                yield t, a, v, x[t, a]


def rolling(stat, x, window, minp, ddof=1):
    x = np.asarray(x, dtype=float)
    out = np.full(x.shape, np.nan)
    for t, a, v, cur in _windows(x, window, minp):
        n = len(v)
        if stat == "sum":
            out[t, a] = v.sum()
        elif n == 0:
            continue
        elif stat == "mean":
            out[t, a] = v.mean()
        elif stat in ("var", "std", "zscore"):
            if n <= ddof:
                continue
            var = 0.0 if (v == v[0]).all() else v.var(ddof=ddof)
            if stat == "var":
                out[t, a] = var
            elif stat == "std":
                out[t, a] = np.sqrt(var)
            elif var > 0 and np.isfinite(cur):
                out[t, a] = (cur - v.mean()) / np.sqrt(var)
        elif stat == "min":
            out[t, a] = v.min()
        elif stat == "max":
            out[t, a] = v.max()
        elif stat == "rank" and np.isfinite(cur):
            out[t, a] = ((v < cur).sum() + ((v == cur).sum() + 1) / 2) / n
    return out


def rolling_var_two_pass(x, window, minp, ddof=1):
    """Exact two-pass rolling variance of a (time, column) array, vectorised, and
    x_t - mean_t: each window's finite values are taken about one of them, K (so the mean
    K + Σ(x - K)/n keeps the digits that matter), then Σ(x - mean)² / (n - ddof); NaN where
    n < max(minp, ddof + 1). For accuracy tests at large levels, where the naive
    Σx² - (Σx)²/n fails."""
    x = np.asarray(x, dtype=float)
    n = x.shape[0]
    w = min(window, n)
    pad = np.concatenate([np.full((w - 1,) + x.shape[1:], np.nan), x])
    win = np.lib.stride_tricks.sliding_window_view(pad, w, axis=0)  # (time, col, w)
    ok = np.isfinite(win)
    cnt = ok.sum(-1)
    k = np.take_along_axis(win, np.argmax(ok, axis=-1)[..., None], -1)  # first finite
    d = np.where(ok, win - k, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_d = d.sum(-1) / cnt
        dev = np.where(ok, d - mean_d[..., None], 0.0)
        var = (dev * dev).sum(-1) / (cnt - ddof)
        x_minus_mean = (x - k[..., 0]) - mean_d
    bad = (cnt < max(minp, 1)) | (cnt <= ddof)
    return np.where(bad, np.nan, var), np.where(bad, np.nan, x_minus_mean)


def ewm_mean(x, span, minp=1):
    """y_t = Σ_{i<=t, x_i valid} (1-α)^(t-i) x_i / Σ (1-α)^(t-i), α = 2 / (span + 1)."""
    x = np.asarray(x, dtype=float)
    alpha = 2.0 / (span + 1.0)
    out = np.full(x.shape, np.nan)
    for a in range(x.shape[1]):
        for t in range(x.shape[0]):
            v = x[: t + 1, a]
            ok = np.isfinite(v)
            if ok.sum() >= max(minp, 1):
                # measured from the last observation: the same ratio (the common factor
                # cancels) and defined for alpha = 1, where a NaN bar shows the last value
                last = np.flatnonzero(ok)[-1]
                w = (1 - alpha) ** (last - np.arange(t + 1))[ok]
                out[t, a] = (w * v[ok]).sum() / w.sum()
    return out


def rolling_corr(x, window, minp):
    x = np.asarray(x, dtype=float)
    n, m = x.shape
    out = np.full((n, m, m), np.nan)
    for t in range(n):
        win = x[max(0, t - window + 1): t + 1]
        for i in range(m):
            for j in range(m):
                ok = np.isfinite(win[:, i]) & np.isfinite(win[:, j])
                a, b = win[ok, i], win[ok, j]
                if ok.sum() >= max(minp, 2) and a.std() > 0 and b.std() > 0:
                    out[t, i, j] = np.corrcoef(a, b)[0, 1]
    return out


def rolling_apply(fn, x, window):
    """fn over every full, NaN-free window of each column of a (time, asset) array."""
    x = np.asarray(x, dtype=float)
    out = np.full(x.shape, np.nan)
    for a in range(x.shape[1]):
        for t in range(window - 1, x.shape[0]):
            w = x[t - window + 1:t + 1, a]
            if not np.isnan(w).any():
                out[t, a] = fn(w)
    return out
