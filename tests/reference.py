"""Plain NumPy twins of the Cython kernels (bottleneck's "slow" functions): slow, obvious,
and the definition the fast kernels are tested against."""
import numpy as np

CODE_NAMES = ("ok", "partial", "nonpositive", "high_below_low", "close_outside",
              "open_outside", "negative_volume", "infinite")


def simple_returns(prices):
    """r_t = p_t / p_last - 1 with p_last the last valid price before t; NaN at NaN bars."""
    p = np.asarray(prices, dtype=float)
    out = np.full(p.shape, np.nan)
    for a in range(p.shape[1]):
        last = np.nan
        for t in range(p.shape[0]):
            if not np.isnan(p[t, a]):
                out[t, a] = p[t, a] / last - 1
                last = p[t, a]
    return out


def check_bars(open_, high, low, close, volume):
    """First offence as (code, role, t, asset) and has (asset, role): the first bad bar in
    time-major order (an infinite value first), each asset's bar made of the variables it
    has (not all NaN); (0, -1, -1, -1) if valid."""
    panels = (open_, high, low, close, volume)
    n, m = next(p for p in panels if p is not None).shape
    has = np.array([[p is not None and not np.isnan(p[:, a]).all() for p in panels]
                    for a in range(m)])
    for t in range(n):
        for a in range(m):
            roles = [v for v in range(5) if has[a, v]]
            bar = {v: panels[v][t, a] for v in roles}
            inf = [v for v in roles if np.isinf(bar[v])]
            if inf:
                return (7, inf[0], t, a), has
            nan = [v for v in roles if np.isnan(bar[v])]
            if len(nan) == len(roles):
                continue
            if nan:
                return (1, nan[-1], t, a), has
            if 4 in roles and bar[4] < 0:
                return (6, 4, t, a), has
            bad = [v for v in roles if v != 4 and bar[v] <= 0]
            if bad:
                return (2, bad[0], t, a), has
            if 1 in roles and 2 in roles:
                hi, lo = bar[1], bar[2]
                if hi < lo:
                    return (3, 1, t, a), has
                if 3 in roles and not lo <= bar[3] <= hi:
                    return (4, 3, t, a), has
                if 0 in roles and not lo <= bar[0] <= hi:
                    return (5, 0, t, a), has
    return (0, -1, -1, -1), has


# ---- rolling: every window recomputed from scratch (O(n * window))

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


# ---- metrics empyrical lacks, from their DESIGN.md definitions (NaN = no observation)

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
    if len(w) < 2 or dd.min() >= 0:
        return np.nan
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


# ---- complexity and information measures (quantlab/measures.py)

def sample_entropy(x, order, r):
    """-ln(A/B) by brute force: B (A) = pairs i < j < N - order of templates of
    ``order`` (``order + 1``) points within Chebyshev distance < r."""
    x = np.asarray(x, dtype=float)
    n = x.size

    def pairs(m):
        emb = np.lib.stride_tricks.sliding_window_view(x, m)[: n - order]
        d = np.abs(emb[:, None, :] - emb[None, :, :]).max(axis=2)
        return (d[np.triu_indices(len(emb), 1)] < r).sum()

    return -np.log(pairs(order + 1) / pairs(order))


def higuchi_fd(x, kmax):
    """Higuchi (1988) from the formula, one k and m at a time."""
    x = np.asarray(x, dtype=float)
    n = x.size
    lk = []
    for k in range(1, kmax + 1):
        lm = []
        for m in range(k):
            idx = np.arange(m, n, k)
            nm = idx.size - 1
            lm.append(np.abs(np.diff(x[idx])).sum() * (n - 1) / (nm * k) / k)
        lk.append(np.mean(lm))
    return np.polyfit(np.log(1.0 / np.arange(1, kmax + 1)), np.log(lk), 1)[0]


def permutation_entropy(x, order, delay):
    """Bandt-Pompe entropy (bits) from stable argsorts of the raw values (integers
    compared as integers, not as float64)."""
    x = np.asarray(x)
    n = x.size - (order - 1) * delay
    emb = np.stack([x[i * delay:i * delay + n] for i in range(order)], axis=1)
    pats = np.argsort(emb, axis=1, kind="stable")
    return entropy_bits(pats)


def dfa(x, nvals, overlap=False):
    """DFA exponent from np.polyfit line fits per box (nolds' definition)."""
    x = np.asarray(x, dtype=float)
    walk = np.cumsum(x - x.mean())
    logs = []
    for n in nvals:
        starts = range(0, len(walk) - n, n // 2) if overlap else range(0, len(walk) - n + 1, n)
        t = np.arange(n)
        res = [np.sum((walk[s:s + n] - np.polyval(np.polyfit(t, walk[s:s + n], 1), t)) ** 2) / n
               for s in starts]
        logs.append(0.5 * np.log(np.mean(res)))
    return np.polyfit(np.log(nvals), logs, 1)[0]


def symbols(x, bins, binning):
    """Equal-width bins over [min, max] (max in the last bin) or equal-count bins by
    rank, ties averaged (equal values share the bin of their average rank)."""
    x = np.asarray(x, dtype=float)
    if binning == "quantile":
        _, inv, c = np.unique(x, return_inverse=True, return_counts=True)
        first = np.r_[0, np.cumsum(c)[:-1]]          # sorted position of each value's run
        return ((2 * first + c - 1)[inv] * bins) // (2 * x.size)
    lo, hi = x.min(), x.max()
    if hi == lo:
        return np.zeros(x.size, dtype=int)
    return np.minimum(((x - lo) / (hi - lo) * bins).astype(int), bins - 1)


def entropy_bits(*cols):
    """Plug-in joint entropy (bits) of the rows of the given symbol columns."""
    _, counts = np.unique(np.column_stack(cols), axis=0, return_counts=True)
    p = counts / counts.sum()
    return -(p * np.log2(p)).sum()


def mutual_information(a, b):
    return entropy_bits(a) + entropy_bits(b) - entropy_bits(a, b)


def transfer_entropy(src, tgt, k):
    """TE src -> tgt = H(next, hist) + H(hist, src) - H(hist) - H(next, hist, src)."""
    n = len(tgt)
    hist = np.column_stack([tgt[i:n - k + i] for i in range(k)])
    nxt, s = tgt[k:], src[k - 1:n - 1]
    return (entropy_bits(nxt, hist) + entropy_bits(hist, s) - entropy_bits(hist)
            - entropy_bits(nxt, hist, s))


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
