"""Plain NumPy twins of the Cython kernels (bottleneck's "slow" functions): slow, obvious,
and the definition the fast kernels are tested against."""
import numpy as np

CODE_NAMES = ("ok", "partial", "nonpositive", "high_below_low", "close_outside",
              "open_outside", "negative_volume")


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


def check_bars(x, i_open, i_high, i_low, i_close, i_volume):
    """First offending (code, variable, t, asset) in time-major order, or (0, -1, -1, -1)."""
    nv, n, m = x.shape
    for t in range(n):
        for a in range(m):
            bar = x[:, t, a]
            nan = np.isnan(bar)
            if nan.all():
                continue
            if nan.any():
                return 1, int(np.flatnonzero(nan)[-1]), t, a
            if i_volume >= 0 and bar[i_volume] < 0:
                return 6, i_volume, t, a
            prices = [v for v in range(nv) if v != i_volume]
            bad = [v for v in prices if bar[v] <= 0]
            if bad:
                return 2, bad[0], t, a
            if i_high >= 0 and i_low >= 0:
                hi, lo = bar[i_high], bar[i_low]
                if hi < lo:
                    return 3, i_high, t, a
                if i_close >= 0 and not lo <= bar[i_close] <= hi:
                    return 4, i_close, t, a
                if i_open >= 0 and not lo <= bar[i_open] <= hi:
                    return 5, i_open, t, a
    return 0, -1, -1, -1
