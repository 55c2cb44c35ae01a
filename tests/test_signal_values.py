"""Exact values of every strategy's signal, recomputed by independent code.

The strategy tests elsewhere check direction and contracts; a lag shifted by one bar
(``shift(time=skip - 1)``) passes them. Here each signal is recomputed from its
docstring with plain NumPy/pandas (pandas rolling, loops), never with the strategy's own
helpers, on a small slice of the bundled data, and compared value by value (NaN where
the strategy has no value). Where a measure is too long to re-derive (fractal and
information measures), it comes from the reference library (nolds, PyInform)
or is written out here from its definition on the window ending at t, and the strategy's
combination step, lags and windows are recomputed around it.
"""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql

ANN = np.sqrt(252.0)


def _panel(n, start=1300):
    """n bars of the 4 bundled equities from 2005-05 on (no missing bars there)."""
    return ql.data.load().isel(time=slice(start, start + n))


def _frame(ds, var="close"):
    return ds[var].transpose("time", "asset").to_pandas()


def _signal(name, ds, **params):
    s = ql.strategies.get(name, **params)
    return s.signal(ds, **s.default_inputs(ds)).transpose("time", "asset").to_pandas()


def _same(got: pd.DataFrame, want: pd.DataFrame, min_valid=20, min_nonzero=5, rtol=1e-9):
    """Equal everywhere (NaN where NaN), and the comparison is not vacuous."""
    want = want.reindex_like(got)
    np.testing.assert_array_equal(got.isna().to_numpy(), want.isna().to_numpy())
    np.testing.assert_allclose(got.to_numpy(float), want.to_numpy(float), rtol=rtol,
                               atol=1e-12, equal_nan=True)
    valid = got.notna().to_numpy()
    assert valid.sum() >= min_valid
    assert (got.to_numpy()[valid] != 0).sum() >= min_nonzero


def _pct_rank_row(row: np.ndarray) -> np.ndarray:
    """pandas rank(pct=True, method='average') of one row, NaN kept, by hand."""
    out = np.full(row.shape, np.nan)
    ok = ~np.isnan(row)
    vals = row[ok]
    out[ok] = [((vals < v).sum() + ((vals == v).sum() + 1) / 2) / vals.size for v in vals]
    return out


def _side(rank, quantile):
    return np.where(np.isnan(rank), np.nan,
                    np.where(rank > 1 - quantile, 1.0, np.where(rank <= quantile, -1.0, 0.0)))


def _every(sig: np.ndarray, hold: int) -> np.ndarray:
    out = np.full(sig.shape, np.nan)
    out[::hold] = sig[::hold]
    return out


def _returns(close: pd.DataFrame) -> pd.DataFrame:
    p = close.to_numpy()
    r = np.full(p.shape, np.nan)
    r[1:] = p[1:] / p[:-1] - 1.0
    return pd.DataFrame(r, index=close.index, columns=close.columns)


# ---- traditional -------------------------------------------------------------------

def test_cross_sectional_momentum_score_skip_and_lookback_exact():
    ds = _panel(60)
    lookback, skip, quantile, hold = 20, 3, 0.3, 4
    c = _frame(ds).to_numpy()
    score = np.full(c.shape, np.nan)
    for t in range(lookback, c.shape[0]):
        score[t] = c[t - skip] / c[t - lookback] - 1.0
    side = np.array([_side(_pct_rank_row(row), quantile) for row in score])
    want = _every(np.where(np.isnan(score), np.nan, side), hold)
    got = _signal("cross_sectional_momentum", ds, lookback=lookback, skip=skip,
                  quantile=quantile, hold=hold)
    _same(got, pd.DataFrame(want, index=got.index, columns=got.columns))
    # one point by hand: MSFT on bar 40, its score c[37] / c[20] - 1
    diag = ql.strategies.get("cross_sectional_momentum", lookback=lookback, skip=skip,
                             quantile=quantile, hold=hold).diagnostics(ds)
    m = list(ds.asset.values).index("MSFT")
    assert float(diag["score"].isel(time=40, asset=m)) == pytest.approx(
        c[37, m] / c[20, m] - 1.0, rel=1e-12)


def test_volatility_regime_vol_window_and_percentile_exact():
    ds = _panel(90)
    window, lookback, threshold, target_vol = 10, 30, 0.7, 0.2
    r = _returns(_frame(ds))
    vol = r.rolling(window).std() * ANN
    pct = vol.rolling(lookback, min_periods=window).rank(pct=True)
    expo = (target_vol / vol).clip(upper=1.0)
    want = expo.where(~(pct > threshold), 0.0).where(vol.notna() & pct.notna())
    got = _signal("volatility_regime", ds, window=window, lookback=lookback,
                  threshold=threshold, target_vol=target_vol)
    _same(got, want)
    assert (got == 0).to_numpy().sum() >= 5   # the high-volatility regime occurs
    # one point by hand: the 10 returns ending at bar 50 (bars 41..50)
    a = 2
    rr = _frame(ds).to_numpy()[40:51, a]
    sd = np.std(rr[1:] / rr[:-1] - 1, ddof=1) * ANN
    assert vol.iloc[50, a] == pytest.approx(sd, rel=1e-12)


def test_liquidity_timing_amihud_window_and_percentile_exact():
    ds = _panel(90)
    window, lookback, threshold = 8, 30, 0.6
    close, volume = _frame(ds), _frame(ds, "volume")
    dollar = close * volume
    illiq = (_returns(close).abs() / dollar.where(dollar > 0)).rolling(window).mean()
    pct = illiq.rolling(lookback, min_periods=window).rank(pct=True)
    want = pd.DataFrame(np.where(pct > threshold, 0.0, 1.0), index=pct.index,
                        columns=pct.columns).where(pct.notna())
    got = _signal("liquidity_timing", ds, window=window, lookback=lookback,
                  threshold=threshold)
    _same(got, want)
    assert (got == 0).to_numpy().sum() >= 5


def test_spc_cusum_uses_previous_bar_ewm_exactly():
    ds = _panel(150)
    span, k, h = 15, 0.25, 1.5
    r = _returns(_frame(ds))
    mu = r.ewm(span=span, adjust=True, min_periods=span).mean()
    sd = np.sqrt((r.pow(2).ewm(span=span, adjust=True, min_periods=span).mean()
                  - mu ** 2).clip(lower=0))
    z = ((r - mu.shift(1)) / sd.shift(1).where(sd.shift(1) > 0)).to_numpy()
    want = np.full(z.shape, np.nan)
    for a in range(z.shape[1]):
        s_up = s_dn = 0.0
        started = False
        for t in range(z.shape[0]):
            if not np.isnan(z[t, a]):
                started = True
                s_up = max(0.0, s_up + z[t, a] - k)
                s_dn = max(0.0, s_dn - z[t, a] - k)
            if started:
                want[t, a] = float(s_up > h) - float(s_dn > h)
    got = _signal("spc", ds, span=span, k=k, h=h)
    _same(got, pd.DataFrame(want, index=got.index, columns=got.columns))


def test_factor_momentum_betas_directions_and_release_lag_exact():
    ds = _panel(520)
    lookback, beta_window, release_lag = 3, 8, 5
    s = ql.strategies.get("factor_momentum", lookback=lookback, beta_window=beta_window,
                          release_lag=release_lag)
    # monthly Fama-French-style factors labelled by the month's first day (the bundled
    # ff3 set comes through the `arch` package, whose import alone takes seconds)
    rng = np.random.default_rng(7)
    months_ = pd.date_range("2004-01-01", "2007-06-01", freq="MS")
    factors = xr.Dataset({v: ("time", rng.normal(mu, 0.03, len(months_)))
                          for v, mu in (("mkt_rf", 0.005), ("smb", 0.0), ("hml", 0.0))},
                         coords={"time": months_})
    factors["rf"] = ("time", np.full(len(months_), 0.002))
    got = s.signal(ds, factors=factors).transpose("time", "asset").to_pandas()
    names = ["mkt_rf", "smb", "hml"]
    f = factors[names].to_dataframe()
    rf = factors["rf"].to_series()
    months = pd.PeriodIndex(f.index, freq="M")
    close = _frame(ds)
    # month-end closes -> monthly simple returns, minus that month's risk-free rate
    m_close = close.groupby(close.index.to_period("M")).last()
    m_ret = m_close / m_close.shift(1) - 1
    m_ret = m_ret.sub(pd.Series(rf.to_numpy(), index=months).reindex(m_ret.index), axis=0)
    fm = pd.DataFrame(f.to_numpy(), index=months, columns=names)
    common = m_ret.index.intersection(fm.index)
    # the exposure each month's data gives (betas over the `beta_window` months ending
    # there, directions over the `lookback` months ending there)
    expo = {}
    for i in range(beta_window - 1, len(common)):
        win = common[i - beta_window + 1: i + 1]
        X = np.column_stack([np.ones(beta_window), fm.loc[win].to_numpy()])
        mom_months = fm.index[(fm.index <= common[i]) & (fm.index > common[i] - lookback)]
        if len(mom_months) < lookback:
            continue
        d = np.sign(np.log1p(fm.loc[mom_months]).sum().to_numpy())
        row = np.full(len(got.columns), np.nan)
        for j, a in enumerate(got.columns):
            y = m_ret.loc[win, a].to_numpy()
            ok = ~np.isnan(y)
            if ok.sum() >= beta_window // 2:
                beta = np.linalg.lstsq(X[ok], y[ok], rcond=None)[0][1:]
                if np.abs(beta).sum() > 0:
                    row[j] = np.clip((beta * d).sum() / np.abs(beta).sum(), -1, 1)
        expo[i] = row
    # ... used on each day from the latest month whose end + release_lag days has passed
    usable_from = np.array([p.end_time.normalize() + pd.Timedelta(days=release_lag)
                            for p in common], dtype="datetime64[ns]")
    latest = np.searchsorted(usable_from, got.index.to_numpy(), side="right") - 1
    want = pd.DataFrame([expo.get(i, np.full(len(got.columns), np.nan)) for i in latest],
                        index=got.index, columns=got.columns)
    _same(got, want, min_valid=100, rtol=1e-7)


# ---- unconventional ----------------------------------------------------------------

class _nullctx:
    def __enter__(self):
        import warnings
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *a):
        self._w.__exit__(*a)



def _trailing_z(x: pd.DataFrame, window: int) -> pd.DataFrame:
    """(x_t - mean) / std (ddof 1) of the ``window`` bars before t, >= window // 2 of them."""
    out = pd.DataFrame(np.nan, index=x.index, columns=x.columns)
    v = x.to_numpy()
    for t in range(v.shape[0]):
        for a in range(v.shape[1]):
            base = v[max(0, t - window):t, a]
            base = base[~np.isnan(base)]
            if base.size >= max(window // 2, 1) and base.size >= 2:
                sd = base.std(ddof=1)
                if sd > 0:
                    out.iat[t, a] = (v[t, a] - base.mean()) / sd
    return out


@pytest.mark.parametrize("mode", ["continuation", "reversal"])
def test_attention_shock_score_and_hold_exact(mode):
    ds = _panel(80)
    window, threshold, hold = 12, 1.0, 3
    close, vol = _frame(ds), _frame(ds, "volume")
    proxies = [np.log(vol.where(vol > 0)), np.log(_frame(ds, "high") / _frame(ds, "low")),
               (_frame(ds, "open") / close.shift(1) - 1).abs()]
    zs = [_trailing_z(p, window).to_numpy() for p in proxies]
    with _nullctx():   # an all-NaN bar: NaN score
        score = np.nanmean(np.stack(zs), axis=0)
    direction = np.sign(_returns(close).to_numpy()) * (1.0 if mode == "continuation" else -1.0)
    want = np.zeros(score.shape)
    for a in range(score.shape[1]):
        left, value = 0, 0.0
        for t in range(score.shape[0]):
            if score[t, a] > threshold:          # a shock opens (or renews) a position
                left, value = hold, direction[t, a]
            if left > 0:
                want[t, a] = value
                left -= 1
    want = np.where(np.isnan(score) & (want == 0), np.nan, want)
    got = _signal("attention", ds, window=window, threshold=threshold, hold=hold, mode=mode)
    _same(got, pd.DataFrame(want, index=got.index, columns=got.columns))


def test_sentiment_regime_nearness_and_herding_gamma_exact():
    ds = _panel(90)
    anchor, quantile, hold, herd, scale = 15, 0.3, 3, 20, 0.5
    close = _frame(ds)
    c = close.to_numpy()
    near = np.full(c.shape, np.nan)
    for t in range(anchor - 1, c.shape[0]):
        near[t] = c[t] / c[t - anchor + 1:t + 1].max(axis=0)
    side = np.array([_side(_pct_rank_row(row), quantile) for row in near])
    r = _returns(close).to_numpy()
    with np.errstate(invalid="ignore"), _nullctx():
        rm = np.nanmean(r, axis=1)
        csad = np.nanmean(np.abs(r - rm[:, None]), axis=1)
    gamma = np.full(len(rm), np.nan)
    for t in range(len(rm)):
        lo = max(0, t - herd + 1)
        X = np.column_stack([np.ones(t + 1 - lo), np.abs(rm[lo:t + 1]), rm[lo:t + 1] ** 2])
        y = csad[lo:t + 1]
        ok = np.isfinite(X).all(1) & np.isfinite(y)
        if ok.sum() >= herd // 2:
            gamma[t] = np.linalg.lstsq(X[ok], y[ok], rcond=None)[0][2]
    mult = np.where(np.isnan(gamma), np.nan, np.where(gamma < 0, scale, 1.0))
    want = _every(np.where(np.isnan(near), np.nan, side * mult[:, None]), hold)
    got = _signal("sentiment_regime", ds, anchor_window=anchor, quantile=quantile, hold=hold,
                  herd_window=herd, herd_scale=scale)
    _same(got, pd.DataFrame(want, index=got.index, columns=got.columns), rtol=1e-7)
    assert (np.abs(got.to_numpy()) == scale).sum() >= 3   # herding scales some bars


def test_complex_systems_centrality_and_absorption_shift_exact():
    ds = _panel(110)
    window, shift, lookback, threshold = 15, 4, 30, 0.5
    r = _returns(_frame(ds))
    n_assets = r.shape[1]
    k = int(np.ceil(n_assets / 5))
    weights = np.full(r.shape, np.nan)
    ar = np.full(len(r), np.nan)
    for t in range(window - 1, len(r)):
        block = r.iloc[t - window + 1:t + 1]
        if block.isna().any().any():
            continue
        C = np.corrcoef(block.to_numpy().T)
        vals = np.linalg.eigvalsh(C)
        ar[t] = vals[-k:].sum() / vals.sum()
        lead = np.abs(np.linalg.eigh(np.abs(C))[1][:, -1])   # Perron vector of |C|
        cent = lead / lead.sum()
        weights[t] = (1 / cent) / (1 / cent).sum()
    ar = pd.Series(ar)
    sd = ar.rolling(lookback, min_periods=lookback // 2).std()
    z = (ar.rolling(shift).mean() - ar.rolling(lookback, min_periods=lookback // 2).mean()) \
        / sd.where(sd > 0)
    on = np.where(z > threshold, 0.0, 1.0)
    want = np.where(z.notna().to_numpy()[:, None], weights * on[:, None], np.nan)
    got = _signal("complex_systems", ds, window=window, shift=shift, lookback=lookback,
                  threshold=threshold)
    _same(got, pd.DataFrame(want, index=got.index, columns=got.columns), rtol=1e-7)
    assert (got == 0).to_numpy().sum() >= 4   # the contagion gate closes some bars
    # the gate's input itself (a window off by one rarely flips the gate)
    diag = ql.strategies.get("complex_systems", window=window, shift=shift, lookback=lookback,
                             threshold=threshold).diagnostics(ds)
    np.testing.assert_allclose(diag["absorption_ratio"].values, ar.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(diag["absorption_shift"].values, z.to_numpy(), rtol=1e-7,
                               atol=1e-9)


GRID = np.linspace(-3.0, 3.0, 61)


def _tunnel_by_hand(window_prices, energy):
    """The Quantum docstring, one window at a time with plain loops."""
    z = (window_prices - window_prices.mean()) / window_prices.std()
    dz = GRID[1] - GRID[0]
    bw = 1.06 * len(z) ** -0.2
    rho = np.array([np.exp(-0.5 * ((g - z) / bw) ** 2).sum() for g in GRID])
    psi = np.sqrt(rho / (rho.sum() * dz))
    V = np.empty(GRID.size)
    for i in range(1, GRID.size - 1):
        V[i] = (psi[i + 1] - 2 * psi[i] + psi[i - 1]) / dz ** 2 / max(psi[i], 1e-300)
    V[0], V[-1] = V[1], V[-2]
    pos = min(int(np.searchsorted(GRID, z[-1])), GRID.size - 1)
    E = V[pos] + energy

    def through(cells):
        total, inside = 0.0, False
        for e in cells:          # integrate over the first barrier, stop in the next well
            if e > 0:
                inside = True
                total += e
            elif inside:
                break
        return np.exp(-2 * dz * total)

    excess = np.sqrt(np.maximum(V - E, 0.0))
    return through(excess[pos + 1:]), through(excess[:pos][::-1])


def test_quantum_tunnelling_window_and_energy_exact():
    ds = _panel(70)
    window, energy, vol_window = 40, 1.5, 6
    logp = np.log(_frame(ds))
    r = logp.diff()
    ratio = (r.rolling(vol_window).std() / r.rolling(window - 1).std()) ** 2
    got = _signal("quantum", ds, window=window, energy=energy, vol_window=vol_window)
    want = pd.DataFrame(np.nan, index=got.index, columns=got.columns)
    lp = logp.to_numpy()
    for t in range(window - 1, len(lp)):
        for a in range(lp.shape[1]):
            kin = energy * ratio.iat[t, a]
            if np.isnan(kin):
                continue
            up, down = _tunnel_by_hand(lp[t - window + 1:t + 1, a], kin)
            want.iat[t, a] = (up - down) / (up + down)
    _same(got, want, rtol=1e-8)
