"""Strategy signal values cross-checked with nolds and pyinform (moved from
tests/test_signal_values.py); each skips without its peer."""
import math

import numpy as np
import pandas as pd
import pytest

import quantlab as ql
from test_signal_values import _frame, _panel, _returns, _same, _signal


def _higuchi_by_hand(x, kmax=10):
    """Higuchi (1988): slope of log L(k) on log(1/k), L(k) the mean over m < k of
    (N-1)/(k² N_m) Σ_j |x[m+jk] - x[m+(j-1)k]|, N_m = (N-m-1)//k (antropy's definition;
    written out here because importing antropy compiles numba for ~40 s)."""
    n = len(x)
    lk = []
    for k in range(1, kmax + 1):
        lm = []
        for m in range(k):
            nm = (n - m - 1) // k
            steps = np.abs(np.diff(x[m::k][:nm + 1]))
            lm.append(steps.sum() * (n - 1) / (k * k * nm))
        lk.append(np.mean(lm))
    return np.polyfit(np.log(1.0 / np.arange(1, kmax + 1)), np.log(lk), 1)[0]


def _perm_entropy_by_hand(x, order=3):
    """Bandt-Pompe permutation entropy (delay 1) in bits / log2(order!) (antropy's)."""
    patterns = {}
    for i in range(len(x) - order + 1):
        key = tuple(np.argsort(x[i:i + order], kind="quicksort"))
        patterns[key] = patterns.get(key, 0) + 1
    p = np.array(list(patterns.values()), dtype=float)
    p /= p.sum()
    return -(p * np.log2(p)).sum() / np.log2(math.factorial(order))


def test_fractal_chaos_measure_windows_and_combination_exact():
    nolds = pytest.importorskip("nolds")
    ds = _panel(150)
    window, band, trend = 64, 0.0, 5
    cqs = [0.3, 0.6, 0.7]   # 0.3 and 0.7 sit where a rank window off by one flips the gate
    s = ql.strategies.get("fractal_chaos", window=window, band=band, trend=trend,
                          chaos_quantile=cqs)
    grid = s.signal(ds)
    diag = s.diagnostics(ds)
    h, d, lam = (diag[v].transpose("time", "asset").to_pandas()
                 for v in ("hurst", "higuchi_fd", "lyapunov"))
    close = _frame(ds)
    r = _returns(close).to_numpy()
    logp = np.log(close.to_numpy())
    # the measures on the window ending at t (returns t-63..t), by the reference libraries
    for t, a in [(64, 0), (100, 1), (149, 3)]:
        rw = r[t - window + 1:t + 1, a]
        assert h.iat[t, a] == pytest.approx(nolds.hurst_rs(rw, fit="poly", corrected=True),
                                            rel=1e-9)
        assert d.iat[t, a] == pytest.approx(
            _higuchi_by_hand(logp[t - window + 1:t + 1, a], kmax=10), rel=1e-8)
        assert lam.iat[t, a] == pytest.approx(
            nolds.lyap_r(rw, emb_dim=5, lag=1, min_tsep=5, trajectory_len=10, fit="poly"),
            rel=1e-8)
    assert h.iloc[:window].isna().all().all() and h.iloc[window:].notna().all().all()
    # the combination: H and D agree on a regime, the trend-bar move, the calm gate
    move = np.sign(close / close.shift(trend) - 1)
    regime = np.where((h > 0.5 + band) & (d < 1.5), 1.0,
                      np.where((h < 0.5 - band) & (d > 1.5), -1.0, 0.0))
    lam_rank = lam.rolling(window, min_periods=window // 4).rank(pct=True)
    for cq in cqs:
        got = grid.sel(chaos_quantile=cq).transpose("time", "asset").to_pandas()
        want = (regime * move * (lam_rank <= cq)).where(h.notna() & d.notna() & lam.notna())
        _same(got, want, min_nonzero=10)


def _terciles(x):
    """3 equal-count symbols by rank, ties in time order."""
    order = np.argsort(x, kind="stable")
    rank = np.empty(len(x), dtype=int)
    rank[order] = np.arange(len(x))
    return rank * 3 // len(x)


def test_info_theory_transfer_entropy_vote_and_entropy_regime_exact():
    pyinform = pytest.importorskip("pyinform")
    ds = _panel(110)
    window, te_min, entropy_max, trend = 40, 0.05, 0.99, 5
    got = _signal("info_theory", ds, window=window, te_min=te_min, entropy_max=entropy_max,
                  trend=trend)
    close = _frame(ds)
    r = _returns(close)
    rv = r.to_numpy()
    n, m = rv.shape
    lagged = r.shift(1)
    mean = lambda v: v.rolling(window, min_periods=window // 2).mean()  # noqa: E731
    # cov(r_i,t, r_j,t-1) over the trailing window
    cov = np.stack([(mean(r.mul(lagged[j], axis=0)) - mean(r).mul(mean(lagged[j]), axis=0))
                    .to_numpy() for j in r.columns], axis=-1)           # (time, i, j)
    own = np.sign(close / close.shift(trend) - 1).to_numpy()
    want = np.full((n, m), np.nan)
    for t in range(window, n):          # windows of `window` returns, all valid
        w = rv[t - window + 1:t + 1]
        sym = [_terciles(w[:, a]).tolist() for a in range(m)]
        te = np.array([[pyinform.transfer_entropy(sym[j], sym[i], k=1) for j in range(m)]
                       for i in range(m)])                           # te[i, j]: j -> i
        flow = te - te.T
        wts = np.where(flow > te_min, flow, 0.0)
        for i in range(m):
            pe = _perm_entropy_by_hand(w[:, i])
            total = wts[i].sum()
            if total > 0:
                lead = np.sign(rv[t]) * np.sign(cov[t, i])
                want[t, i] = (wts[i] * lead).sum() / total
            else:
                want[t, i] = own[t, i] if pe < entropy_max else 0.0
    _same(got.iloc[window:], pd.DataFrame(want, index=got.index, columns=got.columns)
          .iloc[window:], rtol=1e-8, min_nonzero=10)
    assert got.iloc[:window].isna().all().all()
