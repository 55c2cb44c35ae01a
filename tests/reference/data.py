"""Twins of the data kernels (quantlab/_kernels/data): returns and bar checks."""
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
            bad = [v for v in roles if v != 4 and bar[v] < np.finfo(float).tiny]   # subnormal too
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
