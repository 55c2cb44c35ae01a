"""A strategy ensemble: several strategies' exposures blended into one portfolio, with
weights decided from each strategy's return stream up to the previous bar.

The strategy return stream (DESIGN.md) is ``backtest(ds, signal, group=True)`` with the
ensemble's costs. ``weights(ds)`` sums to 1 at every bar and is never NaN: equal weights
until ``lookback`` bars of streams exist. The blended exposure Σ_k w_k(t)·signal_k(t)
stays in [-1, 1] and is backtested as one account, so offsetting trades of different
strategies net out.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import xarray as xr

from quantlab import _validate, rolling
from quantlab import strategies as registry
from quantlab._doc import fill
from quantlab.backtesting import BacktestOptions, backtest
# CARRY_BARS lived here before quantlab.data: ensemble.CARRY_BARS still names it
from quantlab.data import CARRY_BARS, carried, returns, shifted  # noqa: F401
from quantlab.risk import risk_parity_weights

# the options an ensemble passes on to ql.backtest (its streams and itself)
_BACKTEST_KW = frozenset(inspect.signature(backtest).parameters) - {
    "data", "signal", "entries", "exits"}
_OPTION_FIELDS = frozenset(f.name for f in dataclasses.fields(BacktestOptions))

__all__ = ["ALLOCATIONS", "Ensemble", "detect_regimes", "create_unconventional_ensemble",
           "check_reweight"]

ALLOCATIONS = ("equal", "risk_parity", "performance_momentum", "regime")


# shared docstring blocks (quantlab._doc.fill): written once, used by many docstrings
_EX_ENS = """\
>>> import quantlab as ql
>>> from quantlab import ensemble
>>> ds = ql.data.load().isel(time=slice(0, 300))
>>> ens = ensemble.Ensemble(["volatility_regime", "spc"])"""
_DOC = {
    "ens": _EX_ENS,
    "ens_examples": "Examples\n--------\n" + _EX_ENS,
    "ds_param": """\
Parameters
----------
ds : xarray.Dataset
    Prices on (time, asset).""",
}


def detect_regimes(ds: xr.Dataset, window: int = 63, trend_window: int = 200,
                   breadth_window: int = 50) -> xr.Dataset:
    """Market regimes from the equal-weighted universe, each known at its bar's close.

    volatility: ``high_vol`` when the ``window``-bar realised volatility is above its
    expanding median (up to t), else ``low_vol``; trend: ``bull`` when the equal-weighted
    index is above its ``trend_window``-bar mean, else ``bear``; sentiment (breadth):
    ``risk_on`` when at least half the assets trade above their ``breadth_window``-bar
    mean, else ``risk_off``. ``regime`` joins the three labels ("low_vol|bull|risk_on");
    "" before enough history exists. The universe at t is the assets with a close in the
    last ``CARRY_BARS`` (5) bars: a missing bar carries the last close that long (a
    holiday); an asset delisted or halted longer is out.

    Parameters
    ----------
    ds : xarray.Dataset
        Prices on (time, asset).
    window : int, default 63
        Bars of the realised volatility.
    trend_window : int, default 200
        Bars of the trend mean.
    breadth_window : int, default 50
        Bars of each asset's mean for the breadth.

    Returns
    -------
    xarray.Dataset
        String labels on ``time``: ``volatility``, ``trend``, ``sentiment``, ``regime``.

    Examples
    --------
    >>> import quantlab as ql
    >>> from quantlab import ensemble
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> labels = ensemble.detect_regimes(ds)
    >>> list(labels.data_vars), str(labels["regime"].values[-1])
    (['volatility', 'trend', 'sentiment', 'regime'], 'low_vol|bull|risk_on')
    """
    window, trend_window, breadth_window = (   # each named (rolling's error said "window")
        _validate.integer(k, v, 1) for k, v in (("window", window), ("trend_window", trend_window),
                                                 ("breadth_window", breadth_window)))
    close = _validate.dataset("ds", ds)["close"]                  # a DataFrame: KeyError
    # a missing bar carries the last close for CARRY_BARS bars (a holiday), no longer: a
    # delisted asset stayed in the universe for ever with return 0 (the market's return
    # 1/N too small) and its stale close in the breadth. Known at t (a delisting is not:
    # at t it is a gap like a halt's)
    close = carried(close)
    mkt = returns(close).mean("asset")
    index = (1 + mkt.fillna(0.0)).cumprod("time")
    vol = rolling.std(mkt, window)
    med = vol.copy(data=vol.to_pandas().expanding().median().to_numpy())
    trend = rolling.mean(index, trend_window)
    mean = rolling.mean(close, breadth_window)
    # not yet a mean (a new listing's first bars): out of the breadth, not "below"
    above = (close > mean).where(close.notnull() & mean.notnull())
    # the labels are strings on time: built in memory (on dask-backed data, dask's
    # string + was "unsupported operand type(s) for +: 'Array' and 'str'")
    parts = xr.Dataset({"vol": vol, "med": med, "index": index, "trend": trend,
                        "breadth": above.mean("asset")}).compute()
    vol, med, index, trend, breadth = (parts[k] for k in parts.data_vars)
    ok = vol.notnull() & trend.notnull() & breadth.notnull()
    lab = lambda cond, a, b: xr.where(ok, xr.where(cond, a, b), "")  # noqa: E731
    v, t, s = (lab(vol > med, "high_vol", "low_vol"), lab(index > trend, "bull", "bear"),
               lab(breadth >= 0.5, "risk_on", "risk_off"))
    regime = xr.where(ok, v.astype(object) + "|" + t.astype(object) + "|" + s.astype(object), "")
    return xr.Dataset({"volatility": v, "trend": t, "sentiment": s,
                       "regime": regime.astype(str)})


_PERIODS = re.compile(r"\s*(\d*)\s*([DWMQY])\s*")


def check_reweight(reweight, name: str = "reweight"):
    """Check an ensemble's ``reweight``: a number of calendar periods or of bars.

    The one rule :class:`Ensemble` applies (when it is built) and notebooks apply to
    their parameter (``ql.suite.reweight``) before any work.

    Parameters
    ----------
    reweight : str or int
        Every n calendar periods ('1D', '1W', '2W', '1M', '3M', '1Q', '1Y': the first
        bar of each) or every n bars (an int >= 1; not a bool).
    name : str, default "reweight"
        The name the error gives it.

    Returns
    -------
    str or int
        ``reweight``.

    Raises
    ------
    ValueError
        For anything else ('1h', '0W', 0, True).

    Examples
    --------
    >>> from quantlab.ensemble import check_reweight
    >>> check_reweight("2W"), check_reweight(5)
    ('2W', 5)
    >>> check_reweight("1h", "every")
    Traceback (most recent call last):
    ...
    ValueError: every must be a number of calendar periods ('1D', '1W', '2W', '1M', '3M', '1Q', '1Y') or of bars (an int >= 1), got '1h'
    """
    if isinstance(reweight, (int, np.integer)) and not isinstance(reweight, bool):
        if reweight < 1:
            raise ValueError(f"{name} must be >= 1 bar, got {reweight}")
        return reweight   # beyond the bars: the first bar's weights only (_rebalance_mask)
    m = _PERIODS.fullmatch(reweight) if isinstance(reweight, str) else None
    if m is None or (m.group(1) and int(m.group(1)) < 1):
        # "2W" read as weekly and "1h" as every bar before: only these are understood
        raise ValueError(f"{name} must be a number of calendar periods ('1D', '1W', '2W', "
                         f"'1M', '3M', '1Q', '1Y') or of bars (an int >= 1), got {reweight!r}")
    return reweight


def _observed(stat, past: np.ndarray, window: int) -> np.ndarray:
    """``stat`` (a ``ql.rolling`` statistic) of each column over its last ``window``
    observations: a stream's NaN (no observation: a bar on which none of its assets has
    a close, since s56) is skipped, and that bar keeps the value before it. A NaN in the
    window blanked the score for ``window`` bars (equal weights after each of WTI's
    holidays in cross_market)."""
    out = np.full(past.shape, np.nan)
    for k in range(past.shape[1]):
        seen = ~np.isnan(past[:, k])
        # the leading NaN rows stay (the kernel's sums then run as over the whole column:
        # the same bits without a gap)
        ok = np.flatnonzero(seen | (np.cumsum(seen) == 0))
        out[ok, k] = stat(past[ok, k], window)
    return pd.DataFrame(out).ffill().to_numpy()


def _rebalance_mask(index: pd.DatetimeIndex, reweight) -> np.ndarray:
    """True on the bars where weights may change: every n bars (an int; 1 = every bar),
    or the first bar of each calendar period ("1D", "1W", "2W", "1M", "3M", "1Q", "1Y":
    n days, weeks, months, quarters or years counted from the epoch, as pandas' period
    ordinals). ``reweight`` as :func:`check_reweight` accepts it."""
    check_reweight(reweight)
    if not isinstance(reweight, str):
        # at most the bars: 10**30 overflowed numpy's int64 ("Python int too large to
        # convert to C long"); any period >= the bars keeps the first bar's weights
        return np.arange(len(index)) % min(int(reweight), max(len(index), 1)) == 0
    m = _PERIODS.fullmatch(reweight)
    n, unit = int(m.group(1) or 1), m.group(2)
    if index.tz is not None:   # local wall-time periods, without pandas' tz-drop warning
        index = index.tz_localize(None)
    codes = index.to_period(unit).asi8 // n
    return np.r_[True, codes[1:] != codes[:-1]] if len(index) else np.zeros(0, bool)


@fill(_DOC)
class Ensemble:
    """A portfolio of strategies whose weights follow an allocation rule.

    Weights at t use streams up to t-1; ``reweight`` sets how often they change.

    Parameters
    ----------
    strategies : list of str or Strategy
        Registry names, ``Strategy`` objects or classes (one alone: an ensemble of one).
    allocation : {'equal', 'risk_parity', 'performance_momentum', 'regime'}, default 'equal'
        - ``equal``: 1/K;
        - ``risk_parity``: equal risk contributions of the streams' ``lookback``-bar
          covariance (``ql.risk.risk_parity_weights``); equal where none exist (a stream
          of zero variance, or streams hedging each other exactly);
        - ``performance_momentum``: tilt to recent risk-adjusted winners: w ∝ max(Sharpe
          over a stream's last ``lookback`` observations, 0), shrunk toward equal by
          ``shrinkage`` (equal if no winner);
        - ``regime``: as performance momentum, but each strategy's Sharpe is measured only
          over past bars in the same regime as today (``detect_regimes``), so a strategy
          that earns in calm bull markets gets weight in them.
    reweight : str or int, default '1D'
        How often the weights change: every n calendar periods ('1D', '1W', '2W', '1M',
        '3M', '1Q', '1Y'; the first bar of each) or every n bars (an int).
    lookback : int, default 63
        Bars of the covariance / Sharpe estimates (>= 2).
    shrinkage : float, default 0.5
        Shrinkage toward equal weights, in [0, 1].
    **backtest_kw
        Options of ``ql.backtest`` for the streams and the ensemble.

    Raises
    ------
    ValueError
        If ``allocation`` is unknown, ``shrinkage`` is outside [0, 1], ``lookback`` < 2
        or ``reweight`` is not one :func:`check_reweight` accepts.
    TypeError
        If a member is not a name, Strategy or Strategy class.

    Examples
    --------
    {{ens}}
    >>> ens.weights(ds).isel(time=-1).values
    array([0.5, 0.5])
    >>> ens.signal(ds).dims
    ('time', 'asset')
    """

    def __init__(self, strategies, allocation="equal", reweight="1D", lookback=63,
                 shrinkage=0.5, **backtest_kw):
        if allocation not in ALLOCATIONS:
            raise ValueError(f"unknown allocation {allocation!r}; use one of "
                             f"{', '.join(ALLOCATIONS)}")
        shrinkage = _validate.number("shrinkage", shrinkage, 0, 1)
        lookback = _validate.integer("lookback", lookback, lo=2)   # a std needs 2 returns
        check_reweight(reweight)     # refused here, not once every stream is computed
        unknown = sorted(set(backtest_kw) - _BACKTEST_KW)   # feez=: at backtest time only
        if unknown:
            raise TypeError(f"Ensemble: unknown option(s) {unknown}; the options of "
                            f"ql.backtest are {', '.join(sorted(_BACKTEST_KW))}")
        if backtest_kw.get("group", True) is not True:   # it was dropped without a word
            raise ValueError(f"Ensemble: group={backtest_kw['group']!r}: the streams and the "
                             "ensemble are each one account (group=True)")
        # checked here, as reweight: fees=-1 was refused only once the first member's
        # signal was computed
        BacktestOptions(**{k: v for k, v in backtest_kw.items() if k in _OPTION_FIELDS})
        if isinstance(strategies, Mapping):   # its values (weights?) were dropped silently
            raise TypeError(f"strategies must be a strategy or a list of them, got a "
                            f"{type(strategies).__name__} {_validate._show(strategies)}: an "
                            "ensemble's weights follow its allocation, none are given")
        if isinstance(strategies, (str, registry.Strategy, type)):   # one, not its letters
            strategies = [strategies]
        if not isinstance(strategies, Iterable):   # None, 5: "'int' object is not iterable"
            raise TypeError(f"strategies must be a strategy or a list of them, got "
                            f"{_validate._show(strategies)}")
        objs = [registry.resolve(s) for s in strategies]
        if len(objs) < 1:
            raise ValueError("an ensemble needs at least one strategy")
        names = [s.name for s in objs]
        if len(set(names)) != len(names):
            raise ValueError(f"strategy names must be unique, got {names}")
        self.strategies = dict(zip(names, objs))
        self.allocation, self.reweight = allocation, reweight
        self.lookback, self.shrinkage = int(lookback), float(shrinkage)
        self.backtest_kw = {k: v for k, v in backtest_kw.items() if k != "group"}
        self._cache: dict = {}

    def __repr__(self):
        return (f"Ensemble({list(self.strategies)}, allocation={self.allocation!r}, "
                f"reweight={self.reweight!r}, lookback={self.lookback})")

    # ---- the parts -----------------------------------------------------------------
    def _parts(self, ds):
        # one data set cached (held, so ids stay unique); None is no hit (was KeyError 'parts')
        if "parts" not in self._cache or self._cache["ds"] is not ds:
            sigs, streams = {}, {}
            for name, s in self.strategies.items():
                sig = s.signal(ds, **s.default_inputs(ds))
                if set(sig.dims) != {"time", "asset"}:
                    raise ValueError(f"{name}: list parameters are not allowed in an ensemble")
                sigs[name] = sig
                streams[name] = backtest(ds, sig, group=True, **self.backtest_kw).returns
            dim = pd.Index(list(sigs), name="strategy")
            # members trading different assets: the union, a member silent (0) on the
            # assets it lacks. Left to xarray's default, a FutureWarning said it becomes
            # join='exact', a ValueError
            join = dict(dim=dim, coords="minimal", compat="override", join="outer")
            self._cache = {"ds": ds, "parts": (
                xr.concat(list(sigs.values()), **join),
                xr.concat(list(streams.values()), **join).transpose("time", "strategy"))}
        return self._cache["parts"]

    def streams(self, ds) -> xr.DataArray:
        """Each strategy's return stream, (time, strategy).

        {{ds_param}}

        Returns
        -------
        xarray.DataArray
            (time, strategy) returns, one account per strategy.

        {{ens_examples}}
        >>> ens.streams(ds).isel(time=-1).round(4).values
        array([0.0093, 0.    ])
        """
        return self._parts(ds)[1]

    def weights(self, ds) -> xr.DataArray:
        """(time, strategy) weights summing to 1, from streams up to t-1.

        {{ds_param}}

        Returns
        -------
        xarray.DataArray
            Named ``weight``; never NaN (equal weights until the streams exist).

        {{ens_examples}}
        >>> ens.weights(ds).isel(time=-1).values
        array([0.5, 0.5])
        """
        r = self.streams(ds)
        past = shifted(r)                              # decided before bar t trades
        k = r.sizes["strategy"]
        n = r.sizes["time"]
        equal = np.full((n, k), 1.0 / k)
        if self.allocation == "equal":
            w = equal
        elif self.allocation == "risk_parity":
            w = self._risk_parity(past.values, equal)
        elif self.allocation == "performance_momentum":
            mean = _observed(rolling.mean, past.values, self.lookback)
            sd = _observed(rolling.std, past.values, self.lookback)
            w = self._tilt(mean / np.where(sd > 0, sd, np.nan), equal)
        else:
            w = self._tilt(self._regime_sharpe(ds, r), equal)
        mask = _rebalance_mask(r.indexes["time"], self.reweight)
        w = pd.DataFrame(np.where(mask[:, None], w, np.nan)).ffill().to_numpy()
        return xr.DataArray(w, dims=("time", "strategy"),
                            coords={"time": r.time, "strategy": r.strategy}, name="weight")

    def _tilt(self, score, equal):
        raw = np.where(np.isfinite(score), np.maximum(score, 0.0), 0.0)
        total = raw.sum(1, keepdims=True)
        tilt = np.divide(raw, total, out=equal.copy(), where=total > 0)
        return self.shrinkage * equal + (1 - self.shrinkage) * tilt

    def _risk_parity(self, past, equal):
        w = equal.copy()
        L = self.lookback
        for t in range(L, past.shape[0]):
            win = past[t - L + 1:t + 1]
            win = win[~np.isnan(win).any(1)]
            if len(win) < L // 2:
                continue
            cov = np.atleast_2d(np.cov(win, rowvar=False))   # one stream: a 0-d variance
            if np.all(np.diag(cov) > 0):
                try:
                    w[t] = risk_parity_weights(cov).to_numpy()
                except ValueError:   # streams hedging each other exactly (a long and a
                    pass             # short of one asset): none exist; numpy's LinAlgError
        return w

    def _regime_sharpe(self, ds, r):
        """Sharpe of each stream over the bars s < t that began in the regime bar t
        begins in: r_s counts for the regime at s-1's close, the one known when its
        position was set; bar t's regime is the one at t-1's close."""
        reg = detect_regimes(ds)["regime"].values
        x = r.values
        out = np.full(x.shape, np.nan)
        sums: dict = {}
        for t in range(x.shape[0]):
            cur = reg[t - 1] if t else ""
            if cur in sums and sums[cur][0] >= 20:
                n, s1, s2 = sums[cur]
                mu = s1 / n
                var = s2 / n - mu ** 2
                out[t] = mu / np.sqrt(np.where(var > 0, var, np.nan))
            if cur and not np.isnan(x[t]).any():       # r_t is known after bar t
                n, s1, s2 = sums.get(cur, (0, 0.0, 0.0))
                sums[cur] = (n + 1, s1 + x[t], s2 + x[t] ** 2)
        return out

    # ---- the blended portfolio -----------------------------------------------------
    def signal(self, ds) -> xr.DataArray:
        """Σ_k w_k(t) · signal_k(t): the combined exposure, (time, asset), in [-1, 1].

        {{ds_param}}

        Returns
        -------
        xarray.DataArray
            The blended target exposure, clipped to [-1, 1].

        {{ens_examples}}
        >>> ens.signal(ds).dims
        ('time', 'asset')
        """
        sigs = self._parts(ds)[0]
        w = self.weights(ds)
        held = sigs.ffill("time").fillna(0.0)        # NaN = hold: the held target counts
        out = (held * w).sum("strategy")
        return out.where(sigs.notnull().any("strategy") | (out != 0)).clip(-1, 1) \
            .transpose("time", "asset").rename("signal")

    def backtest(self, ds):
        """The ensemble as one portfolio account with the ensemble's costs.

        {{ds_param}}

        Returns
        -------
        BacktestResult
            One account (``group=True``).

        {{ens_examples}}
        >>> ens.backtest(ds).equity.dims
        ('time',)
        """

        return backtest(ds, self.signal(ds), group=True, **self.backtest_kw)

    def attribution(self, ds) -> pd.DataFrame:
        """P&L per strategy: w_k(t) · stream_k(t), cumulated.

        An approximation of each strategy's share (it ignores the netting of trades inside the
        portfolio).

        {{ds_param}}

        Returns
        -------
        pandas.DataFrame
            (time, strategy) cumulative P&L.

        {{ens_examples}}
        >>> ens.attribution(ds).iloc[-1].round(4).tolist()
        [-0.0044, 0.0]
        """
        contrib = (self.weights(ds) * self.streams(ds).fillna(0.0))
        return contrib.cumsum("time").to_pandas()


def create_unconventional_ensemble(allocation="regime", **kw) -> Ensemble:
    """The seed's ensemble of the six unconventional strategies.

    Parameters
    ----------
    allocation : str, default 'regime'
        As in :class:`Ensemble`.
    **kw
        Other :class:`Ensemble` options.

    Returns
    -------
    Ensemble

    Examples
    --------
    >>> from quantlab import ensemble
    >>> sorted(ensemble.create_unconventional_ensemble().strategies)
    ['attention', 'complex_systems', 'fractal_chaos', 'info_theory', 'quantum', 'sentiment_regime']
    """
    return Ensemble(registry.names("unconventional"), allocation=allocation, **kw)
