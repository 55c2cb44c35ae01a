"""Traditional strategies. Each docstring states the market hypothesis and its source."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr

from quantlab import _validate, rolling
from quantlab.calendar import periods_for
from quantlab.data import as_of, carried, load, returns, shifted
from quantlab.errors import DataError
from quantlab.strategies import Strategy, register
from quantlab.strategies._live import LiveSignal, Returns, Rows, rank_last, rolling_last

__all__ = ["CrossSectionalMomentum", "FactorMomentum", "LiquidityTiming", "SPC", "VolatilityRegime"]

def _on_rebalance_days(sig: xr.DataArray, every: int) -> xr.DataArray:
    """Keep the target on every ``every``-th bar (counted from the first); NaN (= hold)
    between, so positions change at most once per period."""
    keep = (np.arange(sig.sizes["time"]) % every) == 0
    return sig.where(xr.DataArray(keep, dims="time", coords={"time": sig.time}))


def _listed(close: xr.DataArray, lag: int = 0) -> xr.DataArray:
    """Whether each asset had a close at or before ``t - lag`` (False before that).

    With :func:`ql.data.carried <quantlab.data.carried>`: an asset listed whose carried
    close is NaN is beyond the carry limit (delisted, or halted more than
    ``CARRY_BARS`` bars); the strategies leave it out of their cross-sections and give
    it 0, so a position in it is closed at its next bar, if it has one (a backtest
    fills nothing on a bar without a close: the target waits for one)."""
    return shifted(close.notnull().cumsum("time") > 0, lag, fill_value=False)


# ---- per-bar signals for deployments (issue #27; the protocol: strategies/_live.py).
# Each equals the last row of its strategy's `signal` over the bars fed so far (checked
# row by row in tests/test_live_signal.py); each window statistic is computed from its
# own window (NumPy over a Rows view), so a feed restarted `warmup` bars back continues
# with the same bits.

def _full(n: int) -> np.ndarray:
    return np.full(n, np.nan)


def _cross_rank(x: np.ndarray) -> np.ndarray:
    """pandas ``rank(axis=1, pct=True)`` of one row: average ranks of the finite values
    over their count; NaN stays NaN."""
    out = np.full(x.shape, np.nan)
    ok = ~np.isnan(x)
    if ok.any():
        v, inv, cnt = np.unique(x[ok], return_inverse=True, return_counts=True)
        below = np.concatenate([[0], np.cumsum(cnt)[:-1]])
        out[ok] = (below + (cnt + 1) / 2)[inv] / ok.sum()
    return out


class _MomentumLive(LiveSignal):
    """cross_sectional_momentum: p[t-skip] / p[t-lookback] - 1 of the carried closes
    (``ql.data.carried``; none at t: no score), ranked across assets on rebalance bars
    (i % hold == 0), NaN between; 0 without a score for an asset listed by t-lookback."""

    def __init__(self, lookback, skip, quantile, hold):
        self.skip, self.q, self.hold = skip, quantile, hold
        self.ret, self.closes = Returns(), Rows(lookback + 1)
        self.listed = Rows(lookback + 1)

    def update(self, i, time, rows):
        self.ret.push(rows["close"])
        w = self.closes.push(self.ret.carried)
        listed = self.listed.push(~np.isnan(self.ret.last))
        if i % self.hold or len(w) < self.closes.k:
            return _full(w.shape[1])
        with np.errstate(invalid="ignore"):
            score = np.where(np.isnan(w[-1]), np.nan, w[-1 - self.skip] / w[0] - 1)
        rank = _cross_rank(score)
        sig = np.where(rank > 1 - self.q, 1.0, np.where(rank <= self.q, -1.0, 0.0))
        return np.where(np.isnan(score), np.where(listed[0] > 0, 0.0, np.nan), sig)


class _PercentileLive(LiveSignal):
    """volatility_regime and liquidity_timing: a ``window``-bar statistic per bar, its
    percentile rank over the last ``lookback`` of them (min_periods ``window``), of the
    returns of the carried closes (``returns(carried(close))``, as ``signal``)."""

    def __init__(self, window, lookback, threshold):
        self.window, self.threshold = window, threshold
        self.ret, self.x, self.stat = Returns(), Rows(2 * window), Rows(lookback)

    def update(self, i, time, rows):
        self.x.push(self._value(self.ret.push(rows["close"], carry=True), rows))
        # the kernel's bits (rolling_last): windows equal in exact arithmetic tie as in
        # `signal`, so a percentile at the threshold decides the same way
        stat = rolling_last(self._stat, self.x, i, self.window)
        return self._signal(stat, rank_last(self.stat.push(stat), self.window))


class _VolRegimeLive(_PercentileLive):
    def __init__(self, window, lookback, threshold, target_vol):
        super().__init__(window, lookback, threshold)
        self.target_vol = target_vol

    def _value(self, r, rows):
        return r

    def _stat(self, x, window):
        return rolling.std(x, window) * np.sqrt(self.periods)

    def _signal(self, vol, pct):
        with np.errstate(divide="ignore", invalid="ignore"):
            expo = np.minimum(self.target_vol / vol, 1.0)
        out = np.where(pct > self.threshold, 0.0, expo)
        return np.where(np.isnan(vol) | np.isnan(pct), np.nan, out)


class _LiquidityLive(_PercentileLive):
    exps = None   # per asset: the binary exponents of its first close and volume

    def _value(self, r, rows):
        c, v = (np.asarray(rows[k], dtype=np.float64) for k in ("close", "volume"))
        if self.exps is None:
            self.exps = np.zeros((2, c.size), dtype=np.int64)
            self.seen = np.zeros((2, c.size), dtype=bool)
        for k, x in enumerate((c, v)):   # any power of two per asset leaves its ranks
            new = ~self.seen[k] & np.isfinite(x) & (x != 0)   # as they are
            self.exps[k, new] = np.frexp(x[new])[1]
            self.seen[k] |= new
        dollar = np.ldexp(c, -self.exps[0]) * np.ldexp(v, -self.exps[1])
        with np.errstate(divide="ignore", invalid="ignore"):
            # a holiday: 0, as `signal`
            return np.where(self.ret.held, 0.0,
                            np.abs(r) / np.where(dollar > 0, dollar, np.nan))

    _stat = staticmethod(rolling.mean)

    def _signal(self, illiq, pct):
        return np.where(np.isnan(pct), np.nan, np.where(pct > self.threshold, 0.0, 1.0))


class _Ewm:
    """``ql.rolling.ewm_mean`` (pandas ``ewm(span, adjust=True)``, ``ignore_na=False``)
    one bar at a time: the kernel's recursion, vectorised over assets."""

    def __init__(self, span, minp):
        self.f, self.minp = 1.0 - 2.0 / (span + 1.0), max(minp, 1)
        self.mean = self.wt = self.nobs = None

    def push(self, x):
        if self.mean is None:
            self.mean, self.wt = np.full(x.shape, np.nan), np.ones(x.shape)
            self.nobs = np.zeros(x.shape, dtype=np.intp)
        valid = np.isfinite(x)
        self.nobs += valid
        has = ~np.isnan(self.mean)
        self.wt = np.where(has, self.wt * self.f, self.wt)
        upd = has & valid
        with np.errstate(invalid="ignore"):
            new = (self.wt * self.mean + x) / (self.wt + 1.0)
        self.mean = np.where(upd & (self.mean != x), new, self.mean)
        self.wt = np.where(upd, self.wt + 1.0, self.wt)
        first = ~has & valid
        self.mean = np.where(first, x, self.mean)
        self.wt = np.where(first, 1.0, self.wt)
        return np.where(self.nobs >= self.minp, self.mean, np.nan)


class _FactorLive(LiveSignal):
    """factor_momentum month by month: the exposure at t uses the betas of the latest
    month usable at t (month end + ``release_lag`` days <= t, ``ql.data.as_of``) and the
    factor directions of the latest usable factor month, so it changes only when a month
    becomes usable (or, with lag 0 on a month's last day, with that month's close).

    The monthly excess returns of the completed months are kept as they complete (the
    last close of each calendar month, as ``resample("ME").last()``; a month without a
    close of the asset has none); a new usable month costs one
    OLS per distinct NaN pattern over its ``beta_window`` months (the solution
    ``np.linalg.lstsq`` gives on the rows ``FactorMomentum._parts`` fits, for all assets
    of a pattern at once). Kept: the months of the next window and those not yet usable,
    so neither time nor memory grows with the history (issue #27). The directions
    depend on the factors alone: computed once, as ``_parts`` does."""

    def __init__(self, lookback, beta_window, release_lag, factors):
        f = load("ff3") if factors is None else factors   # the bundled defaults, uncut:
        names = [v for v in ("mkt_rf", "smb", "hml") if v in f]   # windows only trail
        frame = f[names].to_dataframe()
        frame.index = frame.index.to_period("M")
        self.months = _month(frame.index.to_timestamp().values)
        self.x = frame.to_numpy()
        self.direction = np.sign(np.log1p(frame).rolling(lookback).sum()).to_numpy()
        self.rf = f["rf"].to_numpy() if "rf" in f else None
        self.bw, self.lag = beta_window, np.timedelta64(release_lag, "D")
        self.month = self.first = self.last = self.prev = None   # last: the month's
        self.ret = Returns()              # last close so far; ret: which assets are gone
        self.excess = {}                  # factor row -> excess returns of that month
        self.key = self.out = None

    def _complete(self, mt):
        """Close the calendar months before ``mt``: the current one with its last close,
        the empty ones between without a close (NaN returns)."""
        close = self.last
        for m in range(self.month, mt):
            self._store(m, close)
            self.prev, close = close, _full(close.shape[0])
        self.month, self.last = mt, close

    def _store(self, m, close):
        row = np.searchsorted(self.months, m)
        if row < len(self.months) and self.months[row] == m:   # a month of `common`
            self.excess[row] = self._excess(row, close)

    def _excess(self, row, close):
        with np.errstate(all="ignore"):
            r = close / self.prev - 1.0
        return r if self.rf is None else r - self.rf[row]

    def update(self, i, time, rows):
        close = np.asarray(rows["close"], dtype=np.float64)
        self.ret.push(close)
        t = np.datetime64(time, "ns")
        mt = int(_month(t))
        if self.month is None:
            self.month = self.first = mt
            self.last, self.prev = _full(close.shape[0]), _full(close.shape[0])
        elif mt > self.month:
            self._complete(mt)
        self.last = np.where(np.isnan(close), self.last, close)
        # rows of the latest factor month usable at t (end + lag <= t): months < km
        km = int(_month((t - self.lag).astype("datetime64[D]") + 1))
        rd = int(np.searchsorted(self.months, km)) - 1
        rb = rd if rd >= 0 and self.months[rd] >= self.first else -1
        key = (rb, rd)
        if key != self.key or (rb >= 0 and self.months[rb] == mt):   # new, or in progress
            self.key, self.out = key, self._exposure(rb, rd, mt, close.shape[0])
        return np.where(self.ret.gone, 0.0, self.out)

    def keep_since(self):
        """The first bar time a rebuild needs (None: every bar fed): the first day of the
        month before the current betas' window. Refed from there, this signal continues
        with the same values as the one fed from the start (for a deployment's restore:
        its buffer could drop older bars), provided no asset is gone (a close before
        that day, none carried now: 0 from the full feed, NaN from the refed one)."""
        rb = self.key[0] if self.key else -1
        if rb < 0 or rb - self.bw + 1 < np.searchsorted(self.months, self.first):
            return None
        month = self.months[rb - self.bw + 1] - 1
        return np.datetime64(int(month), "M").astype("datetime64[ns]")

    def _exposure(self, rb, rd, mt, n):
        if rd < 0 or rb - self.bw + 1 < np.searchsorted(self.months, self.first):
            return _full(n)              # no usable month, or fewer than beta_window
        lo = rb - self.bw + 1
        ys = np.array([self.excess[r] if r in self.excess or self.months[r] != mt
                       else self._excess(r, self.last) for r in range(lo, rb + 1)])
        for r in [r for r in self.excess if r < lo]:   # later windows start later
            del self.excess[r]
        beta = _ols_betas(self.x[lo:rb + 1], ys, self.bw // 2)
        gross = np.nansum(np.abs(beta), axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            expo = (beta * self.direction[rd]).sum(axis=1) / np.where(gross > 0, gross, np.nan)
        return np.clip(expo, -1.0, 1.0)


def _month(t):
    """Months since 1970-01 of datetime64 values."""
    return np.asarray(t).astype("datetime64[M]").astype(np.int64)


def _ols_betas(xs, ys, need):
    """The slopes of ``lstsq([1, xs], y)`` per column of ``ys`` (months, assets) over its
    finite months, as ``FactorMomentum._parts``; NaN for fewer than ``need`` months.
    Columns with the same months share one solve."""
    design = np.column_stack([np.ones(len(xs)), xs])
    ok = ~np.isnan(ys) & ~np.isnan(xs).any(axis=1)[:, None]
    beta = np.full((ys.shape[1], xs.shape[1]), np.nan)
    full = ok.all(axis=0)              # the common case: one solve, no grouping
    groups = [(np.ones(len(xs), dtype=bool), np.flatnonzero(full))]
    cols = np.flatnonzero(~full & (ok.sum(axis=0) >= need))
    if len(cols):
        pats, inv = np.unique(ok[:, cols].T, axis=0, return_inverse=True)
        groups += [(rows, cols[inv.ravel() == g]) for g, rows in enumerate(pats)]
    for rows, c in groups:
        if len(c):
            beta[c] = (_pinv(design[rows]) @ ys[rows][:, c])[1:].T
    return beta


def _pinv(a):
    """The pseudo-inverse ``np.linalg.lstsq(a, ., rcond=None)`` applies: singular values
    below eps * max(a.shape) * the largest are dropped. A (k, months) matrix, so the
    fit of all assets is one small product (lstsq with 500 right-hand sides took 10-30
    ms in LAPACK on a loaded machine)."""
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    keep = s > np.finfo(float).eps * max(a.shape) * s[0]
    return (vt[keep].T / s[keep]) @ u[:, keep].T


class _SPCLive(LiveSignal):
    """spc: the EWMA standardisation and the CUSUM recursion carried bar to bar: O(asset)
    time and state per bar whatever the history (warmup None: the deployment keeps and
    refeeds every bar)."""

    def __init__(self, span, k, h):
        self.k, self.h = k, h
        self.ret, self.m1, self.m2 = Returns(), _Ewm(span, span), _Ewm(span, span)
        self.mu = self.sd = self.up = self.dn = self.started = None

    def update(self, i, time, rows):
        r = self.ret.push(rows["close"])
        if self.mu is None:
            self.mu, self.sd = _full(r.shape[0]), _full(r.shape[0])
            self.up, self.dn = np.zeros(r.shape[0]), np.zeros(r.shape[0])
            self.started = np.zeros(r.shape[0], dtype=bool)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (r - self.mu) / np.where(self.sd > 0, self.sd, np.nan)
            mu, m2 = self.m1.push(r), self.m2.push(r ** 2)
            self.mu, self.sd = mu, np.sqrt(np.clip(m2 - mu ** 2, 0, None))
        ok = ~np.isnan(z)
        self.up = np.where(ok, np.maximum(0.0, self.up + np.nan_to_num(z) - self.k), self.up)
        self.dn = np.where(ok, np.maximum(0.0, self.dn - np.nan_to_num(z) - self.k), self.dn)
        self.started |= ok
        sig = (self.up > self.h).astype(float) - (self.dn > self.h).astype(float)
        return np.where(self.started, sig, np.nan)


@register
class CrossSectionalMomentum(Strategy):
    """Cross-sectional momentum: assets that outperformed their peers over the past year,
    skipping the latest month, keep outperforming over the next months (Jegadeesh &
    Titman 1993). Score = p[t-skip] / p[t-lookback] - 1, ranked across the universe each
    rebalance: long the top ``quantile``, short the bottom, flat between.
    Meaningful on a cross-section (``"sp500_20"``); on 4 stocks it is a toy.
    Prices are carried over missing bars at most ``CARRY_BARS`` (5) bars
    (``ql.data.carried``): an asset without a carried close at t, t-skip or t-lookback
    (delisted, or halted longer) has no score, is not ranked and does not count in the
    quantiles; listed by t-lookback, it gets 0 (flat) on rebalance bars (a backtest
    closes a position in it at its next bar, if any).

    Parameters
    ----------
    lookback : int, default 252
        Bars of the past return, p[t-lookback]; searched over [63, 378] by the
        optimiser.
    skip : int, default 21
        Most recent bars left out, p[t-skip] (< lookback); searched over [0, 42] by the
        optimiser.
    quantile : float, default 0.3
        Fraction of the universe held long (top) and short (bottom); searched over [0.1,
        0.5] by the optimiser.
    hold : int, default 21
        Bars between rebalances; searched over [5, 63] by the optimiser.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load("sp500_20").isel(time=slice(-600, None), asset=slice(0, 6))
    >>> sig = ql.strategies.get("cross_sectional_momentum").signal(ds)
    >>> last = sig.dropna("time", how="all").isel(time=-1)   # the last bar with a decision
    >>> str(last.time.values)[:10], last.round(2).values.tolist()
    ('2022-12-12', [0.0, -1.0, 0.0, 0.0, 1.0, 1.0])
    """

    name = "cross_sectional_momentum"
    min_assets = 2   # ranked against peers: one asset alone is always top
    defaults = {"lookback": 252, "skip": 21, "quantile": 0.3, "hold": 21}
    param_space = {"lookback": (63, 378), "skip": (0, 42), "quantile": (0.1, 0.5),
                   "hold": (5, 63)}
    limits = {"lookback": (1, None), "hold": (1, None),
              "skip": (0, None, "a negative skip reads prices after t: look-ahead"),
              "quantile": (0.0, 0.5, "the top and bottom quantile must not overlap")}

    @classmethod
    def _check_combination(cls, lookback, skip, **_):
        if skip >= lookback:
            raise ValueError(f"{cls.name}: skip ({skip}) must be < lookback ({lookback}): "
                             "the score is p[t-skip] / p[t-lookback] - 1")

    def _warmup(self, lookback, **_):
        return lookback + 1            # p[t-lookback]

    def _period(self, hold, **_):
        return hold                    # rebalance days counted from the first bar

    def _live(self, lookback, skip, quantile, hold):
        return _MomentumLive(lookback, skip, quantile, hold)

    def _parts(self, ds, lookback, skip):
        # carried at most CARRY_BARS bars: a delisted asset kept its frozen score (and a
        # slot of a quantile) for ever; and one with no close at t has no score
        close = carried(ds["close"])
        score = (shifted(close, skip) / shifted(close, lookback) - 1).where(close.notnull())
        rank = score.copy(data=score.to_pandas().rank(axis=1, pct=True).to_numpy())
        return score, rank

    def _signal(self, ds, lookback, skip, quantile, hold):
        score, rank = self._parts(ds, lookback, skip)
        sig = xr.where(rank > 1 - quantile, 1.0, xr.where(rank <= quantile, -1.0, 0.0))
        sig = xr.where(score.isnull() & _listed(ds["close"], lookback), 0.0,
                       sig.where(score.notnull()))
        return _on_rebalance_days(sig, hold)

    def _diagnostics(self, ds, lookback, skip, quantile, hold):
        score, rank = self._parts(ds, lookback, skip)
        return xr.Dataset({"score": score, "rank": rank})


@register
class VolatilityRegime(Strategy):
    """Volatility-managed exposure: high realised volatility is not compensated by higher
    returns, so scaling exposure by 1/variance raises Sharpe ratios (Moreira & Muir 2017,
    "Volatility-Managed Portfolios"). Exposure = min(1, target_vol / σ_t) (vol
    targeting), and flat when σ_t is above its ``threshold`` percentile of the last
    ``lookback`` bars (the high-volatility regime). σ_t is the std of the returns of
    the closes carried over missing bars at most ``CARRY_BARS`` (5) bars
    (``ql.data.carried``): a holiday is a 0 return, not a hole in ``window`` bars of
    volatilities.

    Parameters
    ----------
    window : int, default 21
        Bars of the realised volatility σ_t; searched over [5, 63] by the optimiser.
    lookback : int, default 252
        Bars of the percentile's history; searched over [126, 504] by the optimiser.
    threshold : float, default 0.8
        Percentile of σ above which the asset is flat; searched over [0.5, 0.95] by the
        optimiser.
    target_vol : float, default 0.15
        Annualised volatility targeted (exposure = min(1, target_vol / σ_t), σ_t
        annualised by the data's calendar, ``ql.calendar.periods_for(ds, default=252)``:
        x √98,280 for 09:30-16:00 minute bars); searched over [0.05, 0.4] by the optimiser.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(-600, None))
    >>> sig = ql.strategies.get("volatility_regime").signal(ds)
    >>> last = sig.dropna("time", how="all").isel(time=-1)   # the last bar with a decision
    >>> str(last.time.values)[:10], last.round(2).values.tolist()
    ('2013-03-01', [0.56, 0.87, 1.0, 0.94])
    """

    name = "volatility_regime"
    defaults = {"window": 21, "lookback": 252, "threshold": 0.8, "target_vol": 0.15}
    param_space = {"window": (5, 63), "lookback": (126, 504), "threshold": (0.5, 0.95),
                   "target_vol": (0.05, 0.4)}
    limits = {"window": (2, None, "a volatility needs 2 returns"), "lookback": (1, None),
              "threshold": (0.0, 1.0, "a percentile"),
              "target_vol": {"lo": 0.0, "lo_open": True}}

    @classmethod
    def _check_combination(cls, window, lookback, **_):
        if lookback < window:
            raise ValueError(f"{cls.name}: lookback ({lookback}) must be >= window "
                             f"({window}): the percentile needs window volatilities")

    def _warmup(self, window, lookback, **_):
        return window + lookback       # window-bar vols (window + 1 closes), ranked over lookback

    def _live(self, window, lookback, threshold, target_vol):
        return _VolRegimeLive(window, lookback, threshold, target_vol)

    def _parts(self, ds, window, lookback):
        # carried over holidays (at most CARRY_BARS): a NaN return on a holiday left
        # `window` bars after it without a volatility (vix, wti: 64% of bars held)
        vol = rolling.std(returns(carried(ds["close"])), window) * \
            np.sqrt(periods_for(ds, default=252))
        pct = rolling.rank(vol, lookback, min_periods=window)
        return vol, pct

    def _signal(self, ds, window, lookback, threshold, target_vol):
        vol, pct = self._parts(ds, window, lookback)
        expo = (target_vol / vol).clip(max=1.0)
        return xr.where(pct > threshold, 0.0, expo).where(vol.notnull() & pct.notnull())

    def _diagnostics(self, ds, window, lookback, threshold, target_vol):
        vol, pct = self._parts(ds, window, lookback)
        return xr.Dataset({"realised_vol": vol, "vol_percentile": pct,
                           "high_vol_regime": pct > threshold})


@register
class LiquidityTiming(Strategy):
    """Liquidity timing: stock returns fall when market illiquidity rises (Amihud 2002,
    "Illiquidity and stock returns"). Amihud illiquidity = rolling mean of |r| / dollar
    volume; long while it is at or below its ``threshold`` percentile of the last
    ``lookback`` bars, flat when liquidity dries up. Returns are those of the closes
    carried over missing bars at most ``CARRY_BARS`` (5) bars (``ql.data.carried``): a
    holiday counts 0 (no price impact), not a hole in ``window`` bars.

    Parameters
    ----------
    window : int, default 21
        Bars of the rolling mean of |r| / dollar volume; searched over [5, 63] by the
        optimiser.
    lookback : int, default 252
        Bars of the percentile's history; searched over [126, 504] by the optimiser.
    threshold : float, default 0.8
        Percentile of illiquidity above which the asset is flat; searched over [0.5,
        0.95] by the optimiser.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(-600, None))
    >>> sig = ql.strategies.get("liquidity_timing").signal(ds)
    >>> last = sig.dropna("time", how="all").isel(time=-1)   # the last bar with a decision
    >>> str(last.time.values)[:10], last.round(2).values.tolist()
    ('2013-03-01', [0.0, 1.0, 1.0, 1.0])
    """

    name = "liquidity_timing"
    defaults = {"window": 21, "lookback": 252, "threshold": 0.8}
    param_space = {"window": (5, 63), "lookback": (126, 504), "threshold": (0.5, 0.95)}
    limits = {"window": (1, None), "lookback": (1, None), "threshold": (0.0, 1.0, "a percentile")}
    requires = ("close", "volume")

    @classmethod
    def _check_combination(cls, window, lookback, **_):
        if lookback < window:
            raise ValueError(f"{cls.name}: lookback ({lookback}) must be >= window "
                             f"({window}): the percentile needs window values")

    def _warmup(self, window, lookback, **_):
        return window + lookback       # window-bar illiquidity ranked over lookback

    def _live(self, window, lookback, threshold):
        return _LiquidityLive(window, lookback, threshold)

    def _parts(self, ds, window, lookback):
        # close x volume overflowed to inf at 1e300 prices (|r| / inf = 0: every bar
        # "liquid", a signal flipped to long) and underflowed to 0 at 1e-300 x 1e-300 (no
        # signal). Each is taken times a power of two per asset (exact: only exponents
        # change), so the dollar volume stays near 1 and the illiquidity is the true one
        # times a power of two per asset: its ranks over time, the signal, are the
        # unscaled panel's. The diagnostic is scaled back (inf or 0 where the true value
        # is beyond float64).
        close, e_c = _near_one(ds["close"])
        volume, e_v = _near_one(ds["volume"])
        dollar = close * volume
        # a holiday (a close carried, ql.data.carried) is a 0 return, no price impact:
        # its NaN blanked `window` bars after it (0.95 of the bars decided -> 0.22 on
        # OHLCV data with a market holiday every 28 bars)
        held = carried(ds["close"])
        ratio = abs(returns(held)) / dollar.where(dollar > 0)
        illiq = rolling.mean(ratio.where(ds["close"].notnull() | held.isnull(), 0.0), window)
        return illiq, rolling.rank(illiq, lookback, min_periods=window), e_c + e_v

    def _signal(self, ds, window, lookback, threshold):
        illiq, pct, _ = self._parts(ds, window, lookback)
        return xr.where(pct > threshold, 0.0, 1.0).where(pct.notnull())

    def _diagnostics(self, ds, window, lookback, threshold):
        illiq, pct, exps = self._parts(ds, window, lookback)
        with np.errstate(over="ignore", under="ignore"):
            illiq = np.ldexp(illiq, -exps)
        return xr.Dataset({"amihud_illiquidity": illiq, "illiquidity_percentile": pct})


def _near_one(x: xr.DataArray):
    """``x`` times 2**-e per asset, e the binary exponent of the asset's largest finite
    |value| (0 for an asset without one), and e: exact, lazy on a dask-backed panel."""
    big = abs(x).where(np.isfinite(x)).max("time")
    e = xr.apply_ufunc(lambda m: np.frexp(np.nan_to_num(m))[1].astype(np.int64), big,
                       dask="parallelized", output_dtypes=[np.int64])
    return np.ldexp(x, -e), e


@register
class SPC(Strategy):
    """Statistical process control: a persistent shift in the mean return (a trend
    starting) shows as an out-of-control CUSUM chart before it is obvious in prices (Page
    1954, "Continuous inspection schemes"; Roberts 1959 for the EWMA chart). Returns
    are standardised by the EWMA mean and std up to the previous bar,
    z_t = (r_t - μ_{t-1}) / σ_{t-1}; S⁺ = max(0, S⁺ + z - k), S⁻ = max(0, S⁻ - z - k).
    Long while S⁺ > h (upward shift), short while S⁻ > h, flat when in control.

    Parameters
    ----------
    span : int, default 252
        Span of the EWMA mean and std that standardise returns; searched over [20, 252]
        by the optimiser.
    k : float, default 0.5
        CUSUM allowance (in std units); searched over [0.0, 1.5] by the optimiser.
    h : float, default 4.0
        CUSUM decision limit (in std units); searched over [2.0, 8.0] by the optimiser.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(-600, None))
    >>> sig = ql.strategies.get("spc").signal(ds)
    >>> last = sig.dropna("time", how="all").isel(time=-1)   # the last bar with a decision
    >>> str(last.time.values)[:10], last.round(2).values.tolist()
    ('2013-03-01', [0.0, 0.0, 0.0, 0.0])
    """

    name = "spc"
    defaults = {"span": 252, "k": 0.5, "h": 4.0}
    param_space = {"span": (20, 252), "k": (0.0, 1.5), "h": (2.0, 8.0)}
    limits = {"span": (2, None, "an EWMA std needs span >= 2"),
              "k": (0.0, None, "the CUSUM allowance"), "h": (0.0, None, "the CUSUM limit")}

    def _live(self, span, k, h):
        return _SPCLive(span, k, h)

    def _parts(self, ds, span, k, h):
        r = returns(ds["close"])
        mu = rolling.ewm_mean(r, span, min_periods=span)
        sd = np.sqrt((rolling.ewm_mean(r ** 2, span, min_periods=span) - mu ** 2).clip(min=0))
        prev_sd = shifted(sd)
        z = (r - shifted(mu)) / prev_sd.where(prev_sd > 0)
        zt = z.transpose("time", "asset").values
        up, dn = np.zeros_like(zt), np.zeros_like(zt)
        su = np.zeros(zt.shape[1])
        sdn = np.zeros(zt.shape[1])
        for t in range(zt.shape[0]):  # one vectorised step per bar over all assets
            ok = ~np.isnan(zt[t])
            su = np.where(ok, np.maximum(0.0, su + np.nan_to_num(zt[t]) - k), su)
            sdn = np.where(ok, np.maximum(0.0, sdn - np.nan_to_num(zt[t]) - k), sdn)
            up[t], dn[t] = su, sdn
        coords = z.transpose("time", "asset").coords
        dims = ("time", "asset")
        return (z, xr.DataArray(up, dims=dims, coords=coords),
                xr.DataArray(dn, dims=dims, coords=coords))

    def _signal(self, ds, span, k, h):
        z, up, dn = self._parts(ds, span, k, h)
        sig = xr.where(up > h, 1.0, 0.0) - xr.where(dn > h, 1.0, 0.0)
        started = z.notnull().cumsum("time") > 0
        return sig.where(started)

    def _diagnostics(self, ds, span, k, h):
        z, up, dn = self._parts(ds, span, k, h)
        return xr.Dataset({"z": z, "cusum_up": up, "cusum_down": dn})


@register
class FactorMomentum(Strategy):
    """Factor momentum: factors whose returns were positive over the past year keep
    earning positive returns, and this explains much of stock momentum (Ehsani &
    Linnainmaa 2022, "Factor Momentum and the Momentum Factor", J. Finance). Each
    Fama-French factor's trailing ``lookback``-month return sets its direction
    d_f = sign(Σ log(1 + f)); assets are held by their rolling factor betas:
    exposure = Σ_f β_af d_f / Σ_f |β_af|, β from OLS of monthly excess returns on the
    factors over ``beta_window`` months. Factors arrive monthly and are used only from
    month end + ``release_lag`` days (``ql.data.as_of``). A month's close is the asset's
    last close in it (none in the month: no return for that month nor the next, not a
    stale 0); an asset without a carried close at t (``ql.data.carried``, at most
    ``CARRY_BARS`` (5) bars: delisted, or halted longer) gets 0 (flat; a backtest
    closes a position in it at its next bar, if any).

    Computed in memory: the monthly factor regressions run in pandas on the whole close
    panel, so a dask-backed panel is loaded.

    Parameters
    ----------
    lookback : int, default 12
        Months of each factor's trailing return (its direction); searched over [3, 24]
        by the optimiser.
    beta_window : int, default 36
        Months of each rolling OLS fit of the betas; searched over [24, 60] by the
        optimiser.
    release_lag : int, default 5
        Days after month end a factor value becomes known; searched over [0, 30] by the
        optimiser.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load()
    >>> s = ql.strategies.get("factor_momentum")
    >>> sig = s.signal(ds, **s.default_inputs(ds))   # the bundled Fama-French factors
    >>> last = sig.dropna("time", how="all").isel(time=-1)   # the last bar with a decision
    >>> str(last.time.values)[:10], last.round(2).values.tolist()
    ('2013-03-01', [0.01, 0.77, 0.45, 1.0])
    """

    name = "factor_momentum"
    defaults = {"lookback": 12, "beta_window": 36, "release_lag": 5}
    param_space = {"lookback": (3, 24), "beta_window": (24, 60), "release_lag": (0, 30)}
    limits = {"lookback": (1, None),
              "beta_window": (8, None, "each OLS fit needs >= beta_window // 2 >= 4 months "
                              "for 4 coefficients"),
              "release_lag": (0, 3650, "days after the month's end; a negative lag uses "
                              "factors before they are published: look-ahead")}
    inputs = ("factors",)

    def default_inputs(self, ds):
        _validate.coords(ds, dims=("time",), what=f"{self.name} data")
        self._check_dates(ds)    # the cut compares ds's last timestamp with month ends
        ff3 = load("ff3")
        end = ds.indexes["time"][-1]
        month_end = ff3.indexes["time"].to_period("M").end_time.normalize()
        return {"factors": ff3.isel(time=np.flatnonzero(month_end <= end))}

    def _check_inputs(self, ds, inputs):
        self._check_dates(ds)
        self._check_factors(inputs["factors"])

    def _check_dates(self, ds):
        """``ds``'s time index: naive dates (monthly returns are resampled from it and
        compared with the factors' months)."""
        idx = ds.indexes["time"]
        if len(idx) == 0:
            raise DataError(f"{self.name}: empty data set (time=0)")
        self._naive_dates(idx, "data's", "monthly returns are resampled from it",
                          ".tz_convert('UTC').tz_localize(None)")

    def _naive_dates(self, idx, whose, why, fix):
        """``idx`` (``whose`` time index) holds naive dates: a DataError saying ``why``
        dates are needed, or ``fix`` for a timezone-aware index."""
        if not isinstance(idx, pd.DatetimeIndex):
            raise DataError(f"{self.name}: {whose} time index must hold dates ({why}), got "
                            f"{idx.dtype} values such as {idx[:2].tolist()}")
        if idx.tz is not None:
            raise DataError(f"{self.name}: {whose} time index is timezone-aware ({idx.tz}); "
                            f"use naive dates ({fix})")

    def _check_factors(self, f):
        """The checks of ``factors`` (also those a deployment passes to ``live``)."""
        if not isinstance(f, xr.Dataset):
            raise TypeError(f"{self.name}: factors must be an xarray Dataset of monthly "
                            f"returns on 'time' (ql.data.load('ff3')), got {type(f).__name__}")
        _validate.coords(f, dims=("time",), what=f"{self.name} factors")
        idx = f.indexes["time"]
        self._naive_dates(idx, "factors'", "one per month", "as ds does: .tz_localize(None)")
        if not idx.is_monotonic_increasing or idx.has_duplicates or idx.hasnans:
            raise DataError(f"{self.name}: factors' time index must be increasing, without "
                            "repeats or NaT")
        if idx.to_period("M").has_duplicates:
            raise DataError(f"{self.name}: factors must be monthly (one row per month); "
                            f"{idx.to_period('M').duplicated().sum()} months repeat")
        names = [v for v in ("mkt_rf", "smb", "hml") if v in f]
        if not names:
            raise DataError(f"{self.name}: factors must hold Fama-French returns (mkt_rf, "
                            f"smb, hml); got {sorted(map(str, f.data_vars))}")
        for v in names + (["rf"] if "rf" in f else []):
            if f[v].dims != ("time",):
                raise DataError(f"{self.name}: factors[{v!r}] must be on ('time',) only, "
                                f"got {f[v].dims}")
            _validate.real_array(f"{self.name} factors[{v!r}]", f[v].dtype)

    def _live(self, lookback, beta_window, release_lag, factors=None):
        # factors None: the bundled defaults (a deployment given no inputs)
        if factors is not None:
            self._check_factors(factors)
        return _FactorLive(lookback, beta_window, release_lag, factors)

    def _parts(self, ds, lookback, beta_window, release_lag, factors):
        names = [v for v in ("mkt_rf", "smb", "hml") if v in factors]
        if not names:
            raise ValueError("factors must hold Fama-French returns (mkt_rf, smb, hml)")
        f = factors[names].to_dataframe()
        rf = factors["rf"].to_series() if "rf" in factors else 0.0
        f.index = f.index.to_period("M")
        mom = np.log1p(f).rolling(lookback).sum()
        close = ds["close"].transpose("time", "asset").to_pandas()
        # each month's last close (resample's last skips NaN); forward-filled from an
        # earlier month, a month without one had a stale return of 0
        monthly = close.resample("ME").last().pct_change(fill_method=None)
        monthly.index = monthly.index.to_period("M")
        if not np.isscalar(rf):
            rf.index = rf.index.to_period("M")
            monthly = monthly.sub(rf.reindex(monthly.index), axis=0)
        common = monthly.index.intersection(f.index)
        X, Y = f.loc[common].to_numpy(), monthly.loc[common]
        Yv = Y.to_numpy()     # not Y[a]: a column lookup per asset-month cost more than its fit
        betas = {a: np.full((len(common), len(names)), np.nan) for a in Y}
        for i in range(beta_window - 1, len(common)):
            xs = X[i - beta_window + 1: i + 1]
            design = np.column_stack([np.ones(len(xs)), xs])
            xok = ~np.isnan(xs).any(axis=1)     # a month without factor values: no fit row
            for j, a in enumerate(Y):
                ys = Yv[i - beta_window + 1: i + 1, j]
                ok = ~np.isnan(ys) & xok
                if ok.sum() >= beta_window // 2:
                    betas[a][i] = np.linalg.lstsq(design[ok], ys[ok], rcond=None)[0][1:]
        index = ds.indexes["time"]
        import pandas as pd

        wide = pd.DataFrame(np.concatenate([betas[a] for a in Y], axis=1),
                            index=common.to_timestamp(),
                            columns=pd.MultiIndex.from_product([list(Y), names]))
        wide = as_of(wide, release_lag, index=index, period="M")
        beta = xr.DataArray(wide.to_numpy().reshape(len(index), len(Y.columns), len(names)),
                            dims=("time", "asset", "factor"),
                            coords={"time": index, "asset": list(Y), "factor": names})
        direction = np.sign(mom)
        direction.index = direction.index.to_timestamp()
        d = as_of(direction, release_lag, index=index, period="M")
        d = xr.DataArray(d.to_numpy(), dims=("time", "factor"),
                         coords={"time": index, "factor": names})
        return beta, d

    def _signal(self, ds, lookback, beta_window, release_lag, factors):
        beta, d = self._parts(ds, lookback, beta_window, release_lag, factors)
        gross = abs(beta).sum("factor")
        expo = (beta * d).sum("factor", skipna=False) / gross.where(gross > 0)
        self._warn_coverage(ds, beta_window, release_lag, factors, expo)
        close = ds["close"].compute()     # in memory, as _parts: the signal is not lazy
        gone = carried(close).isnull() & _listed(close)
        return xr.where(gone, 0.0, expo).transpose("time", "asset")

    def _warn_coverage(self, ds, beta_window, release_lag, factors, expo):
        """Warn where the factors leave the signal stale or empty (silent before: on
        sp500_20, whose closes run 4 years past the bundled factors, the decisions of
        2019-2022 used the betas and directions of 2018; its last 1000 bars, all after
        them, had none)."""
        idx, fidx = ds.indexes["time"], factors.indexes["time"].to_period("M")
        span = f"{idx[0]:%Y-%m-%d}..{idx[-1]:%Y-%m-%d}"
        have = f"the factors cover {fidx[0]}..{fidx[-1]}" if len(fidx) else "no factors"
        if bool(expo.isnull().all()):
            months = idx.to_period("M").unique()
            n = len(months.intersection(fidx))
            warnings.warn(f"{self.name}: no decision on the data ({span}): each beta is "
                          f"fit over {beta_window} months of the data with factor values "
                          f"(beta_window; >= {beta_window // 2} of them with a return); the "
                          f"data has {len(months)} months, {n} of them with factors "
                          f"({have}): give a longer history or factors covering it",
                          stacklevel=4)
            return
        # the latest factor month usable on the last bar (month end + release_lag <= t)
        due = ((idx[-1] - pd.Timedelta(days=release_lag)).normalize()
               + pd.Timedelta(days=1)).to_period("M") - 1
        if len(fidx) and fidx[-1] < due:
            stale = (fidx[-1] + 1).end_time.normalize() + pd.Timedelta(days=release_lag)
            warnings.warn(f"{self.name}: {have}, the data runs to {idx[-1]:%Y-%m-%d}: the "
                          f"decisions from {stale:%Y-%m-%d} on keep using the factors of "
                          f"{fidx[-1]} ({(due - fidx[-1]).n} months stale at the end); give "
                          f"factors covering the data or cut it: .sel(time=slice(None, "
                          f"'{stale - pd.Timedelta(days=1):%Y-%m-%d}'))", stacklevel=4)

    def _diagnostics(self, ds, lookback, beta_window, release_lag, factors):
        beta, d = self._parts(ds, lookback, beta_window, release_lag, factors)
        return xr.Dataset({"beta": beta, "factor_direction": d})
