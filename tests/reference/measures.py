"""Twins of the complexity and information measures (quantlab/measures.py)."""
import math

import numpy as np


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


def dfa(x, nvals=None, overlap=False):
    """DFA exponent from np.polyfit line fits per box (nolds' definition; default nvals
    nolds' logarithmic_n(4, 0.1 N, 1.2) for N > 70, else 4..9)."""
    x = np.asarray(x, dtype=float)
    if nvals is None:
        nvals = logarithmic_n(4, 0.1 * x.size, 1.2) if x.size > 70 else list(range(4, 10))
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


def logarithmic_n(min_n, max_n, factor):
    """nolds: min_n, ⌊min_n·factor^i⌋, ... (distinct) up to max_n."""
    ns = [min_n]
    for i in range(int(np.floor(np.log(max_n / min_n) / np.log(factor))) + 1):
        n = int(np.floor(min_n * factor ** i))
        if n > ns[-1]:
            ns.append(n)
    return ns


def expected_rs(n):
    """E[R/S] of n white-noise values: Anis & Lloyd (1976) with Peters' (1994) factor
    (n - 1/2)/n; Γ ratio replaced by its limit sqrt(2 / (n π)) past n = 340 (nolds)."""
    front = (n - 0.5) / n
    back = sum(math.sqrt((n - i) / i) for i in range(1, n))
    if n <= 340:
        middle = math.gamma((n - 1) * 0.5) / math.sqrt(math.pi) / math.gamma(n * 0.5)
    else:
        middle = 1.0 / math.sqrt(n * math.pi * 0.5)
    return front * middle * back


def hurst(x, nvals=None, corrected=True, unbiased=True):
    """Hurst (1951) rescaled range, nolds ``hurst_rs(fit="poly")``: (R/S)_n = mean over
    the len(x) // n blocks (R > 0) of range(cumsum(block - mean)) / std(block); H = slope
    of log (R/S)_n [- log E(R/S)_n] on log n [+ 0.5]. Default nvals: nolds' logmid_n,
    15 log-spaced sizes over the middle quarter of log len(x)."""
    x = np.asarray(x, dtype=float)
    if nvals is None:
        lg = math.log(x.size)
        nvals = np.unique(np.round(np.exp(lg * 0.375 + np.arange(15) / 15 * lg * 0.25))
                          .astype(int))
    ns, logs = [], []
    for n in nvals:
        ratios = []
        for b in range(x.size // n):
            block = x[b * n:(b + 1) * n]
            walk = np.cumsum(block - block.mean())
            r = walk.max() - walk.min()
            if r != 0:
                ratios.append(r / block.std(ddof=1 if unbiased else 0))
        if ratios:
            ns.append(n)
            logs.append(math.log(np.mean(ratios))
                        - (math.log(expected_rs(n)) if corrected else 0.0))
    if not ns:
        return np.nan
    return np.polyfit(np.log(ns), logs, 1)[0] + (0.5 if corrected else 0.0)


def lyapunov_r(x, emb_dim=10, lag=1, min_tsep=10, trajectory_len=20, tau=1.0):
    """Rosenstein et al. (1993), nolds ``lyap_r(fit="poly")`` with fixed lag/min_tsep:
    embed, pair each of the first ntraj = M - trajectory_len + 1 vectors with its nearest
    (Euclidean) neighbour among them more than min_tsep steps away, and fit the slope of
    the mean log distance (zero distances left out) after k = 0 .. trajectory_len - 1
    steps, per ``tau``."""
    x = np.asarray(x, dtype=float)
    m = x.size - (emb_dim - 1) * lag
    orbit = np.array([x[i:i + (emb_dim - 1) * lag + 1:lag] for i in range(m)])
    ntraj = m - trajectory_len + 1
    nb = []
    for i in range(ntraj):
        best, arg = np.inf, -1
        for j in range(ntraj):
            if abs(i - j) > min_tsep:
                d = math.sqrt(((orbit[i] - orbit[j]) ** 2).sum())
                if d < best:
                    best, arg = d, j
        nb.append(arg)
    ks, div = [], []
    for k in range(trajectory_len):
        d = np.array([math.sqrt(((orbit[i + k] - orbit[nb[i] + k]) ** 2).sum())
                      for i in range(ntraj)])
        d = d[d != 0]
        if d.size:
            ks.append(k)
            div.append(np.mean(np.log(d)))
    if not ks:
        return -np.inf
    return np.polyfit(ks, div, 1)[0] / tau


def katz_fd(x):
    """Katz (1988): log10(L/a) / log10(d/a), L = Σ|Δx|, a = L / (N - 1), d = max|x_i - x_0|."""
    x = np.asarray(x, dtype=float)
    length = np.abs(np.diff(x)).sum()
    a = length / (x.size - 1)
    d = np.abs(x - x[0]).max()
    return math.log10(length / a) / math.log10(d / a)
