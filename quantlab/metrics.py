"""Performance metrics: a drop-in for empyrical, vectorised over any dims, one pass.

Same names and arguments as empyrical (``risk_free``/``required_return`` per period,
``period="daily"`` or ``annualization=``, ``cutoff``), plus ``dim=`` for DataArrays
(reduce ``time``, keep every other dim). pandas in -> pandas out (Series -> float,
DataFrame -> Series), NumPy in -> NumPy out (1-D -> float64, N-D reduces axis 0),
inputs never modified. Annualised as empyrical (``period``, 252 a year for daily), except
that labelled returns left at ``period="daily"`` use their ``periods_per_year`` attr or
their datetime index's calendar (365 for a daily index of 7 days a week). Signs as
empyrical: ``max_drawdown <= 0``; ``value_at_risk`` and ``conditional_value_at_risk``
are return quantiles (negative for losses).

NaN rule: a NaN is "no observation" and is skipped by every metric, so each result
equals empyrical's on the NaN-dropped series. (empyrical itself is inconsistent:
``annual_return`` counts NaN periods as years, ``value_at_risk`` returns NaN if any NaN.)
With a benchmark, paired metrics use the periods where both are valid; a benchmark or
rate DataArray's dims that the returns lack (several benchmarks) are dims of the
result. Empty or all-NaN -> NaN (empyrical gives 0 for some of these, e.g.
``max_drawdown``).

``risk_free``/``required_return``: a number, or a per-period series aligned on time as
empyrical takes it (pd.Series on the returns' index, DataArray on ``dim``, or an array
of the returns' length or shape); a NaN rate or a date the rate lacks is a skipped
period. ``cutoff`` is in [0, 1] (historical: 0 = the minimum, 1 = the maximum; the
parametric methods need (0, 1)). Complex, datetime and non-numeric input is refused;
bools and ints are taken as floats. ±inf returns follow IEEE arithmetic for the
one-series metrics (a +inf return makes the mean +inf and the standard deviation NaN,
as in empyrical; returns whose squares overflow have an infinite one); the benchmark
regression (``alpha``, ``beta``) of a series holding ±inf is NaN, where empyrical
returns an infinity whose sign depends on the benchmark's residual that day.

Every metric is a closed form of per-column sufficient statistics from one Cython pass
(``cython_kernels/metrics.pyx``); quantiles use selection, not sorting. A metric called
alone runs only the pass it needs (``_SINGLE``: shifted sums for Sharpe/volatility, mean
and downside squares for Sortino, a running product for annual return, product and
peak for drawdown/Calmar, the asked quantile levels only); ``summary()`` and benchmark
metrics run the fused pass of every accumulator. Both give the same values (to ~1e-15
relative for returns whose mean is within a few standard deviations of 0, ~1e-8 for a
level of 1e9 with unit noise, where both lose digits to the level; the products and
drawdowns bit for bit).
"""
from __future__ import annotations

import functools
import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import xarray as xr

from quantlab import _plugins, _threads, fmt
from quantlab import _validate as _v
from quantlab import calendar as _calendar
from quantlab._doc import fill
from quantlab.data import check_time
from quantlab.errors import DataError
from quantlab._kernels import load

# the x86-64-v3/v4 build where the CPU runs it and one is built
# (cython_kernels/simd/metrics_v3.pyx, _v4.pyx), else the baseline
_k = load("metrics")

__all__ = [
    "sharpe_ratio", "sortino_ratio", "calmar_ratio", "max_drawdown", "value_at_risk",
    "conditional_value_at_risk", "annual_return", "annual_volatility", "downside_risk",
    "cum_returns_final", "tail_ratio", "stability_of_timeseries", "alpha", "beta",
    "up_capture", "down_capture", "total_return", "recovery_time", "drawdown_duration",
    "win_rate", "profit_factor", "information_ratio", "tracking_error", "summary",
    "annualization_factor", "METRICS", "BUILTIN", "register", "unregister", "registered",
]

ANNUALIZATION = {"daily": 252, "weekly": 52, "monthly": 12, "quarterly": 4, "yearly": 1}
_F = {name: i for i, name in enumerate(_k.FIELDS)}
# each statistic acc_add may skip -> its group bit (the count, mean, M2 and the benchmark
# fields have none)
_GROUP_OF = {f: _k.acc_groups([f]) for f in _k.FIELDS[:_k.F_ST_CKY + 1]
             if f not in ("n", "mean", "m2")}


def annualization_factor(period="daily", annualization=None) -> float:
    """Periods per year: ``annualization`` if given, else 252/52/12/4/1 by ``period``.

    Parameters
    ----------
    period : {'daily', 'weekly', 'monthly', 'quarterly', 'yearly'}, default 'daily'
        Sampling period.
    annualization : float, optional
        Periods per year (> 0); overrides ``period``.

    Returns
    -------
    float
        Periods per year.

    Raises
    ------
    ValueError
        If ``period`` is unknown or ``annualization`` is not a positive number.

    Examples
    --------
    >>> import quantlab as ql
    >>> ql.metrics.annualization_factor("monthly")
    12.0
    >>> ql.metrics.annualization_factor(annualization=365)
    365.0
    """
    if annualization is not None:
        return _v.number("annualization", annualization, 0, None, lo_open=True)
    return float(ANNUALIZATION[_v.choice("period", period, tuple(ANNUALIZATION))])


# --------------------------------------------------------------------------- formulas
# Each takes the accumulator dict (field -> array over columns) and keyword parameters.

def _std(a, ddof=1):
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(a["n"] > ddof, a["m2"] / (a["n"] - ddof), np.nan)
    sd = np.sqrt(np.maximum(var, 0.0))
    # a constant series has exactly zero dispersion (empyrical's _zero_dispersion_std);
    # the single-metric sums have no min/max: their M2 of a constant column is exactly 0
    return sd if "min" not in a else np.where(a["min"] == a["max"], 0.0, sd)


def _nan_below(a, n_min, values):
    return np.where(a["n"] >= n_min, values, np.nan)


def _rate(wealth, power):
    """wealth^power - 1, a compound rate; -1 for a wealth below 0 (a period's return
    below -1: more than the capital lost), which has none: its power flipped sign with
    the parity of the exponent (+432 % a year after losing 202 %), as at a wealth of 0."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return np.where(wealth < 0, -1.0, wealth ** power - 1.0)


def _annual_return(a, ann):
    with np.errstate(invalid="ignore", divide="ignore"):
        return _nan_below(a, 1, _rate(a["wealth"], ann / a["n"]))


def _f_sharpe(a, risk_free=0.0, ann=252.0, **_):
    with np.errstate(invalid="ignore", divide="ignore"):
        return _nan_below(a, 2, (a["mean"] - risk_free) / _std(a) * np.sqrt(ann))


def _f_downside(a, required_return=0.0, ann=252.0, **_):
    with np.errstate(invalid="ignore", divide="ignore"):
        return _nan_below(a, 1, np.sqrt(a["down2"] / a["n"]) * np.sqrt(ann))


def _f_sortino(a, required_return=0.0, ann=252.0, **_):
    with np.errstate(invalid="ignore", divide="ignore"):
        return _nan_below(a, 2, (a["mean"] - required_return) * ann
                          / _f_downside(a, required_return, ann))


def _f_max_drawdown(a, **_):
    return _nan_below(a, 1, a["max_dd"])


def _f_calmar(a, ann=252.0, **_):
    with np.errstate(invalid="ignore", divide="ignore"):
        c = _annual_return(a, ann) / np.abs(a["max_dd"])
    return np.where((a["max_dd"] < 0) & np.isfinite(c), c, np.nan)


def _f_annual_volatility(a, ann=252.0, alpha=2.0, **_):
    return _nan_below(a, 2, _std(a) * ann ** (1.0 / alpha))


def _f_cum_returns_final(a, starting_value=0.0, **_):
    w = _nan_below(a, 1, a["wealth"])
    return w - 1.0 if starting_value == 0 else w * starting_value


def _f_total_return(a, **_):
    return _nan_below(a, 1, a["wealth"] - 1.0)


def _f_annual_return(a, ann=252.0, **_):
    return _annual_return(a, ann)


def _f_stability(a, **_):
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = a["st_cky"] ** 2 / (a["st_ckk"] * a["st_cyy"])
    return _nan_below(a, 2, r2)


def _f_recovery(a, **_):
    # never under water: recovered at once (0, as drawdown_duration); NaN was read as
    # "never regained" by the tear sheet and dropped such a trial from an optimisation
    return _nan_below(a, 1, np.where(a["max_dd"] == 0, 0.0, a["recovery"]))


def _f_drawdown_duration(a, **_):
    return _nan_below(a, 1, a["uw_max"])


def _f_win_rate(a, **_):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(a["n_nonzero"] > 0, a["n_pos"] / a["n_nonzero"], np.nan)


def _f_profit_factor(a, **_):
    with np.errstate(invalid="ignore", divide="ignore"):
        pf = a["sum_pos"] / np.abs(a["sum_neg"])
    return np.where(a["n_nonzero"] > 0, pf, np.nan)


def _moments(a):
    """mean, sample std (ddof=1), population skewness and excess kurtosis."""
    with np.errstate(invalid="ignore", divide="ignore"):
        n = a["n"]
        skew = np.sqrt(n) * a["m3"] / a["m2"] ** 1.5
        kurt = n * a["m4"] / a["m2"] ** 2 - 3.0
    return a["mean"], _std(a), skew, kurt


def _cf_z(z, skew, kurt):
    """Cornish-Fisher quantile z_cf = z + (z²-1)S/6 + (z³-3z)K/24 - (2z³-5z)S²/36."""
    return (z + (z ** 2 - 1) * skew / 6 + (z ** 3 - 3 * z) * kurt / 24
            - (2 * z ** 3 - 5 * z) * skew ** 2 / 36)


# the tail below Φ⁻¹(1e-15) adds nothing a double holds to a VaR or CVaR: the expansion
# must be increasing from there up to the cutoff's quantile
_CF_FROM = NormalDist().inv_cdf(1e-15)


def _cf_tail(mu, sd, skew, kurt, z, value):
    """``value`` (a Cornish-Fisher VaR or CVaR at ``z``) where the expansion describes a
    tail: z_cf increasing on [Φ⁻¹(1e-15), z], i.e. dz_cf/dz = A x² + B x + C >= 0 there
    (A = K/8 - S²/6, B = S/3, C = 1 - K/8 + 5S²/36; Maillard 2012, "A user's guide to
    the Cornish Fisher expansion"). Outside it CVaR came out above VaR and above the
    largest return; NaN there. A constant column (sd 0; S and K are 0/0) is its
    constant, as the other methods give."""
    A, B, C = kurt / 8 - skew ** 2 / 6, skew / 3, 1 - kurt / 8 + 5 * skew ** 2 / 36

    def slope(x):
        return A * x * x + B * x + C

    lo, hi = min(_CF_FROM, z), max(_CF_FROM, z)   # a cutoff below 1e-15: [z, Φ⁻¹(1e-15)]
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.clip(-B / (2 * A), lo, hi)   # the slope's lowest point when A > 0
    ok = (slope(lo) >= 0) & (slope(hi) >= 0) & ((A <= 0) | (slope(v) >= 0))
    return np.where(sd == 0, mu, np.where(ok, value, np.nan))


def _var_param(a, cutoff, method):
    mu, sd, skew, kurt = _moments(a)
    z = NormalDist().inv_cdf(cutoff)
    if method == "parametric":
        return _nan_below(a, 2, mu + sd * z)
    return _nan_below(a, 2, _cf_tail(mu, sd, skew, kurt, z, mu + sd * _cf_z(z, skew, kurt)))


def _cvar_param(a, cutoff, method):
    """Mean of the lower ``cutoff`` tail of the fitted distribution: the normal, or the
    Cornish-Fisher expansion of it, ∫_{-inf}^{z_a} z_cf(z) φ(z) dz / cutoff in closed form
    (∫z^k φ on (-inf, a]: I0 = Φ(a), I1 = -φ(a), I2 = Φ(a) - aφ(a), I3 = -(a²+2)φ(a))."""
    mu, sd, skew, kurt = _moments(a)
    nd = NormalDist()
    z = nd.inv_cdf(cutoff)
    phi = nd.pdf(z)
    i0, i1, i2, i3 = cutoff, -phi, cutoff - z * phi, -(z * z + 2) * phi
    if method == "parametric":
        return _nan_below(a, 2, mu + sd * i1 / cutoff)
    e = (i1 + skew / 6 * (i2 - i0) + kurt / 24 * (i3 - 3 * i1)
         - skew ** 2 / 36 * (2 * i3 - 5 * i1))
    return _nan_below(a, 2, _cf_tail(mu, sd, skew, kurt, z, mu + sd * e / cutoff))


def _f_beta(a, **_):
    with np.errstate(invalid="ignore", divide="ignore"):
        var_b = a["p_cbb"] / a["p_n"]
        b = np.where(var_b < 1e-30, np.nan, a["p_crb"] / a["p_cbb"])
    return np.where(a["p_n"] >= 2, b, np.nan)


def _f_alpha(a, risk_free=0.0, ann=252.0, **_):
    b = _f_beta(a)
    mean_alpha = (a["p_mr"] - risk_free) - b * (a["p_mb"] - risk_free)
    return _rate(1.0 + mean_alpha, ann)


def _capture(a, side, ann):
    n = a[f"{side}_n"]
    with np.errstate(invalid="ignore", divide="ignore"):
        ar = _rate(a[f"{side}_wr"], ann / n)
        ab = _rate(a[f"{side}_wb"], ann / n)
        return np.where(n > 0, ar / ab, np.nan)


def _f_up_capture(a, ann=252.0, **_):
    return _capture(a, "up", ann)


def _f_down_capture(a, ann=252.0, **_):
    return _capture(a, "dn", ann)


def _active_std(a):
    # var(r - b) from paired co-moments: (Crr + Cbb - 2 Crb) / (n - 1). Where r tracks b
    # the difference cancels to rounding (n·eps of Crr + Cbb): that is 0, not a spread
    # (a stream equal to its benchmark up to rounding had an information ratio of ±inf,
    # or a finite one made of noise, beside a tracking error of 0.0 %)
    with np.errstate(invalid="ignore", divide="ignore"):
        m2 = a["p_crr"] + a["p_cbb"] - 2.0 * a["p_crb"]
        m2 = np.where(m2 > a["p_n"] * np.finfo(np.float64).eps * (a["p_crr"] + a["p_cbb"]),
                      m2, 0.0)
        return np.where(a["p_n"] >= 2, np.sqrt(m2 / (a["p_n"] - 1)), np.nan)


def _f_tracking_error(a, ann=252.0, **_):
    return _active_std(a) * np.sqrt(ann)


def _f_information_ratio(a, ann=252.0, **_):
    te = _f_tracking_error(a, ann)
    with np.errstate(invalid="ignore", divide="ignore"):   # no tracking error: undefined
        return np.where(te > 0, (a["p_mr"] - a["p_mb"]) * ann / te, np.nan)


# name -> (formula, needs a benchmark)
METRICS = {
    "sharpe_ratio": (_f_sharpe, False),
    "sortino_ratio": (_f_sortino, False),
    "calmar_ratio": (_f_calmar, False),
    "max_drawdown": (_f_max_drawdown, False),
    "value_at_risk": (None, False),
    "conditional_value_at_risk": (None, False),
    "annual_return": (_f_annual_return, False),
    "annual_volatility": (_f_annual_volatility, False),
    "downside_risk": (_f_downside, False),
    "cum_returns_final": (_f_cum_returns_final, False),
    "tail_ratio": (None, False),
    "stability_of_timeseries": (_f_stability, False),
    "alpha": (_f_alpha, True),
    "beta": (_f_beta, True),
    "up_capture": (_f_up_capture, True),
    "down_capture": (_f_down_capture, True),
    "total_return": (_f_total_return, False),
    "recovery_time": (_f_recovery, False),
    "drawdown_duration": (_f_drawdown_duration, False),
    "win_rate": (_f_win_rate, False),
    "profit_factor": (_f_profit_factor, False),
    "information_ratio": (_f_information_ratio, True),
    "tracking_error": (_f_tracking_error, True),
}
# the built-in names (METRICS gains those of register)
BUILTIN = tuple(METRICS)
# the metrics whose formula reads the periods per year (the others need no calendar)
_ANNUALISED = frozenset(n for n, (f, _) in METRICS.items() if f is not None
                        and "ann" in f.__code__.co_varnames[:f.__code__.co_argcount])
_QUANTILE = ("value_at_risk", "conditional_value_at_risk", "tail_ratio")
# name -> (func, lower_is_better): the metrics added by ``register``, in ``METRICS`` with
# no formula: they read the whole return series, never the running statistics
_WHOLE: dict = {}
# the coordinates of every backtest's returns and data (a metric of that name could not be
# a variable beside them in res.metrics() or summary()) and the tear sheet's first rows
# (a second 'start' row)
_RESERVED = ("time", "asset", "asset_class", "start", "end")
VAR_METHODS = ("historical", "parametric", "cornish_fisher")


# --------------------------------------------------------------------------- engine

def _panel(x) -> np.ndarray:
    """(time, ...) float array -> C-contiguous float64 (time, columns)."""
    x = np.asarray(x, dtype=np.float64)
    return np.ascontiguousarray(x.reshape(x.shape[0], math.prod(x.shape[1:])))


def _along_time(x, r):
    """``x`` indexed by time (its leading axis), broadcast to the shape of ``r``."""
    return np.broadcast_to(x.reshape(x.shape + (1,) * (r.ndim - x.ndim)), r.shape)


# the per-period rate parameter each metric takes (empyrical's names)
_RATE = {"sharpe_ratio": "risk_free", "alpha": "risk_free",
         "sortino_ratio": "required_return", "downside_risk": "required_return"}


def _with_rate(name, r, b, params, rate):
    """Metric ``name`` with a per-period rate series ``rate`` (aligned on r's time axis).

    As empyrical: sharpe, sortino and downside risk are those of the excess returns
    r - rate (a NaN rate = no observation); alpha is (1 + mean((r - rf) - β (b - rf)))^
    periods - 1, the mean over the periods where r, b and rf are valid and β the beta of
    the raw series over the paired periods (rf cancels in empyrical's beta)."""
    rate = _along_time(rate, r)
    p = dict(params, **{_RATE[name]: 0.0})
    if name != "alpha":
        with np.errstate(invalid="ignore"):
            return _compute_np([name], r - rate, b, p)[name]
    beta_ = _compute_np(["beta"], r, b, p)["beta"]
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        d = r - rate - beta_ * (_along_time(b, r) - rate)
        # np.nanmean's sum / count, bit for bit, without its all-NaN RuntimeWarning (an
        # all-NaN column: 0 / 0 = NaN); a warnings filter is process-wide, errstate per thread
        excess = np.nansum(d, axis=0) / np.sum(~np.isnan(d), axis=0)
        return np.asarray((1.0 + excess) ** p["ann"] - 1.0, dtype=np.float64)


# The one kernel that serves each metric called alone (or with metrics of the same
# kernel): its pass reads only what the formula needs. Any other mix, summary() and
# benchmark metrics run the fused ``accumulate`` pass.
_SINGLE = {"sharpe_ratio": "sums", "annual_volatility": "sums",
           "sortino_ratio": "downside", "downside_risk": "downside",
           "annual_return": "wealth", "cum_returns_final": "wealth", "total_return": "wealth",
           "max_drawdown": "drawdown", "calmar_ratio": "drawdown"}


def _single_pass(names, params, b):
    """The single-metric kernel serving all ``names``, or None (the fused pass)."""
    if b is not None:
        return None
    kinds = {_SINGLE.get(n) for n in names
             if not (n in _QUANTILE and params["method"] == "historical")}
    return kinds.pop() if len(kinds) == 1 and None not in kinds else None


# each kernel's time per value in copies of a value (quantlab._threads.PAYS_FROM). The
# one-pass kernels read column blocks in place (no copy), so they are threaded too: on an
# idle 2-core machine two threads ran annual_volatility, annual_return, sharpe and
# max_drawdown 1.3-1.7x faster (2520 x 1000; on a loaded machine threads lose, as any
# threaded kernel does -- QUANTLAB_THREADS=1 turns them off)
_COST = {"accumulate": 30.0, "quantiles": 6.0, "pass": 6.0}


def _columns(kernel, *panels, cost="accumulate"):
    """``kernel(*panels)`` ((time, column) panels -> (fields, column)) over blocks of
    columns on the package's threads (``quantlab._threads``): the kernels treat columns
    independently, so the bits are those of one call. Every kernel reads rows of
    contiguous values at any row stride, so a block is a view of the panel, never a
    copy (20 MB per call of a 2520 x 1000 panel); one block: the panel itself.

    The one-pass kernels (``cost="pass"``) take one block per thread, not the pool's two:
    they stream the panel at memory speed, and a narrower block reads shorter pieces of
    each row (one thread, 2520 x 1000, sums: 1 block 0.98 ms, 2 blocks 1.12 ms, 4 blocks
    1.35 ms of CPU; the second block per thread only pays on a loaded machine)."""
    if cost != "pass":
        return _threads.by_columns(kernel, *panels, contiguous=False, cost=_COST[cost])
    m = panels[0].shape[1]
    n, _ = _threads.blocks(m, panels[0].size * _COST[cost], cost=_COST[cost], copied=False)
    if n == 1:
        return kernel(*panels)
    edges = [m * i // n for i in range(n + 1)]
    res = [None] * n

    def one(i, _):
        res[i] = kernel(*(p[:, edges[i]:edges[i + 1]] for p in panels))

    _threads.run(one, [(i, i + 1) for i in range(n)], n)
    return np.concatenate(res, axis=-1)


def _fused(rp, bp, params, columns=None) -> dict:
    """Every accumulator field (``accumulate``: the one fused pass) of the columns of the
    (time, column) panel ``rp`` (or of ``columns`` of it)."""
    if columns is not None:
        rp = np.ascontiguousarray(rp[:, columns])
    rr = float(params.get("required_return", 0.0))

    def block(r, b):   # log1p per block: on the block's thread, while in cache
        with np.errstate(invalid="ignore", divide="ignore"):
            return _k.accumulate(r, np.log1p(r), b, rr)

    acc = _columns(block, rp, bp)
    a = {f: acc[i] for f, i in _F.items()}
    # Welford's running mean turns inf into NaN (inf - inf); the mean of a column
    # holding +inf (-inf, not both) is +inf (-inf), as numpy's and empyrical's
    with np.errstate(invalid="ignore"):
        a["mean"] = np.where(a["max"] == np.inf, np.where(a["min"] == -np.inf, np.nan, np.inf),
                             np.where(a["min"] == -np.inf, -np.inf, a["mean"]))
    # Welford's M2 of such a column was NaN or inf by where the infinity stood (inf in
    # the last two rows, NaN elsewhere: annual_volatility inf or NaN for one multiset of
    # returns); it is NaN, as numpy's and empyrical's std (deviations inf - inf). A
    # finite column whose M2 overflowed (|x| ~ 1e154 and beyond) is +inf, as empyrical's
    # std, where an overflow in the first row gave NaN (inf * 0).
    infinite = (a["max"] == np.inf) | (a["min"] == -np.inf)
    a["m2"] = np.where(infinite, np.nan,
                       np.where((a["n"] >= 2) & np.isnan(a["m2"]), np.inf, a["m2"]))
    return a


def _fast_acc(kind, rp, required_return) -> dict:
    """The accumulator fields a ``kind`` metric's formula reads, from its own pass.

    sums/downside give the mean and M2 from blocked shifted sums (equal to the fused
    pass's Welford values to ~1e-15 relative, less far from 0: see the module); a column where they are not finite
    (±inf, or |x| ~ 1e154 overflowing a square) takes the fused pass's fields, so every
    input gives what ``summary()`` gives. wealth/drawdown are
    the fused pass's own operations (same bits)."""
    if kind in ("wealth", "drawdown"):
        out = _columns(_k.wealth if kind == "wealth" else _k.drawdown, rp, cost="pass")
        return dict(zip(("n", "wealth", "max_dd"), out))
    if kind == "sums":
        n, mean, m2 = _columns(_k.sums, rp, cost="pass")
        a = {"n": n, "mean": mean, "m2": m2}
        bad = ~np.isfinite(m2)
    else:
        n, mean, d2 = _columns(lambda r: _k.downside(r, required_return), rp, cost="pass")
        a = {"n": n, "mean": mean, "down2": d2}
        bad = ~np.isfinite(mean)
    # no min/max (``_std`` skips its min == max test): a constant column has M2 exactly
    # 0 (each x - k is 0), std 0 as the fused pass's test gives
    if bad.any():
        fused = _fused(rp, np.empty((0, 0)), {"required_return": required_return}, bad)
        for f in a:
            a[f][bad] = fused[f]
    return a


def register(name: str, func, *, lower_is_better: bool = False, kind: str = "general"):
    """Add a returns metric of your own, computed from the whole return series.

    It then appears wherever the built-in ones do: ``ql.metrics.summary``,
    ``res.metrics()`` (a deployment's ``dep.result().metrics()`` too), tear sheets and
    as an optimiser ``objective`` (minimised when ``lower_is_better``). Not in a
    metrics-only run (``ql.sweep``, ``metrics_only=``), which keeps running statistics,
    not the series. To have it in the ``quantlab`` command, notebooks run in batch and
    dask workers, register it in a module named in ``$QUANTLAB_PLUGINS``. Registering
    a name again replaces the function (re-running a notebook cell).

    Parameters
    ----------
    name : str
        A new metric name (an identifier; not a built-in metric or backtest variable).
    func : callable
        ``func(returns, periods)``: ``returns`` a read-only (time, n) float64 array of
        simple returns, NaN where a column has no observation (skip it, as the built-in
        metrics do); ``periods`` the periods per year. Returns n values.
    lower_is_better : bool, default False
        The optimisers minimise it.
    kind : {'general', 'return', 'pct', 'ratio', 'money', 'count', 'duration'}
        How tear sheets format it (``quantlab.fmt``).

    Returns
    -------
    callable
        ``func``, unchanged.

    Raises
    ------
    ValueError
        If ``name`` is not an identifier or is taken by a built-in name, or ``kind``
        is unknown.
    TypeError
        If ``func`` is not callable.

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> def worst_day(r, periods):
    ...     return np.nanmin(np.where(np.isnan(r), np.inf, r), axis=0)
    >>> _ = ql.metrics.register("worst_day", worst_day, kind="return")
    >>> s = ql.metrics.summary(np.array([0.01, -0.03, np.nan, 0.02]))
    >>> float(s["worst_day"])
    -0.03
    >>> ql.metrics.register("sharpe_ratio", worst_day)
    Traceback (most recent call last):
    ...
    ValueError: metric name 'sharpe_ratio' is taken by a built-in metric, result variable, coordinate or tear sheet row; choose another
    >>> ql.metrics.unregister("worst_day")
    """
    if not (isinstance(name, str) and name.isidentifier()):
        raise ValueError(f"metric name must be an identifier (a variable name), got {name!r}")
    if (name in BUILTIN or name in fmt.KINDS or name in _RESERVED) and name not in _WHOLE:
        raise ValueError(f"metric name {name!r} is taken by a built-in metric, result "
                         "variable, coordinate or tear sheet row; choose another")
    if not callable(func):
        raise TypeError(f"func must be callable func(returns, periods), got "
                        f"{type(func).__name__}")
    kinds = {*fmt.KINDS.values(), "general"}
    _v.choice("kind", kind, sorted(kinds))
    _WHOLE[name] = (func, bool(lower_is_better))
    METRICS[name] = (None, False)
    fmt.KINDS[name] = kind
    return func


def unregister(name: str) -> None:
    """Remove a metric :func:`register` added (built-in ones stay).

    Parameters
    ----------
    name : str
        A name of :func:`registered`.

    Raises
    ------
    ValueError
        If ``name`` was not registered.

    Examples
    --------
    >>> import quantlab as ql
    >>> ql.metrics.unregister("sharpe_ratio")
    Traceback (most recent call last):
    ...
    ValueError: 'sharpe_ratio' is not a registered metric; registered: none
    """
    if name not in _WHOLE:
        raise ValueError(f"{name!r} is not a registered metric; registered: "
                         f"{', '.join(_WHOLE) or 'none'}")
    del _WHOLE[name], METRICS[name], fmt.KINDS[name]


def registered() -> dict[str, bool]:
    """The metrics added by :func:`register`: name -> lower_is_better.

    Returns
    -------
    dict of str to bool

    Examples
    --------
    >>> import quantlab as ql
    >>> "sharpe_ratio" in ql.metrics.registered()
    False
    """
    _plugins.load()   # at the first look-up: a plugin imports this module (no cycle)
    return {n: lower for n, (_, lower) in _WHOLE.items()}


def _own(name, rp, ann) -> np.ndarray:
    """A registered metric of the (time, column) panel ``rp``, checked: one float per
    column (a wrong shape would be broadcast, or mislabel the columns)."""
    v = np.asarray(_WHOLE[name][0](rp, ann), dtype=np.float64)
    if v.shape != (rp.shape[1],):
        raise ValueError(f"registered metric {name!r} returned shape {v.shape} for returns "
                         f"of shape {rp.shape}; it must return one value per column "
                         f"({rp.shape[1]},)")
    return v


def _compute_np(names, r, b, params, rate=None) -> dict[str, np.ndarray]:
    """Metrics ``names`` of a (time, ...) array ``r`` (benchmark ``b`` broadcastable;
    ``rate`` the per-period risk_free/required_return series, if not a scalar)."""
    own = [n for n in names if n in _WHOLE]
    if own:
        rest = [n for n in names if n not in _WHOLE]
        out = _compute_np(rest, r, b, params, rate) if rest else {}
        rp = _panel(r).view()
        rp.flags.writeable = False   # a view of the caller's returns, never modified
        out.update({n: _own(n, rp, params["ann"]).reshape(r.shape[1:]) for n in own})
        return {n: out[n] for n in names}
    if rate is not None:
        return {n: _with_rate(n, r, b, params, rate) for n in names}
    shape = r.shape[1:]
    rp = _panel(r)
    bp = np.empty((0, 0))
    if b is not None:
        # a view: a benchmark series broadcast over the columns keeps stride 0 (the
        # fused kernel takes any strides), never a (time, column) copy
        b = _along_time(np.asarray(b, dtype=np.float64), r)
        bp = b.reshape(b.shape[0], int(np.prod(b.shape[1:])))
    out = {}
    historical = params["method"] == "historical"
    var_names = [n for n in names if n in ("value_at_risk", "conditional_value_at_risk")]
    # parametric VaR/CVaR come from the moments; only historical ones need order statistics
    need_moments = any(n not in _QUANTILE for n in names) or (var_names and not historical)
    need_quantiles = "tail_ratio" in names or (var_names and historical)
    if need_moments:
        kind = _single_pass(names, params, b)
        a = (_fused(rp, bp, params) if kind is None
             else _fast_acc(kind, rp, float(params.get("required_return", 0.0))))
    if need_quantiles:
        cutoff = params["cutoff"]
        levels = sorted(({cutoff} if "value_at_risk" in var_names and historical else set())
                        | ({0.05, 0.95} if "tail_ratio" in names else set()))
        tail = cutoff if "conditional_value_at_risk" in var_names and historical else -1.0
        lv = np.array(levels, dtype=np.float64)
        qv = _columns(lambda r: _k.quantiles(r, lv, tail), rp, cost="quantiles")
        q = [qv[levels.index(x)] if x in levels else None for x in (cutoff, 0.05, 0.95)]
        q.append(qv[-1])
    for n in names:
        if n == "tail_ratio":
            with np.errstate(invalid="ignore", divide="ignore"):
                v = np.abs(q[2]) / np.abs(q[1])
        elif n in ("value_at_risk", "conditional_value_at_risk"):
            if params["method"] == "historical":
                v = q[0] if n == "value_at_risk" else q[3]
            elif n == "value_at_risk":
                v = _var_param(a, params["cutoff"], params["method"])
            else:
                v = _cvar_param(a, params["cutoff"], params["method"])
        else:
            v = METRICS[n][0](a, **params)
        out[n] = np.asarray(v, dtype=np.float64).reshape(shape)
    return out


class _Reads(dict):
    """A dict that records the keys read (``acc_need``'s trace of the formulas)."""

    def __init__(self, *a):
        super().__init__(*a)
        self.read = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def acc_need(names) -> int:
    """The groups of running statistics (``acc_add``'s ``need`` bits, ``A_*``) the
    formulas of the streaming metrics among ``names`` read, found by running them: a
    metrics-only backtest keeps only those (a Sharpe ratio alone: the count, mean, M2 and
    the range, whose min == max is a constant series' zero spread; no log1p per return).
    Other names are ignored. Traced once per set of formulas (:func:`_traced`), not on
    every kernel call of a streamed run."""
    return _traced(frozenset(METRICS[n][0] for n in set(names) & set(streaming_names())))


@functools.lru_cache(maxsize=256)
def _traced(formulas) -> int:
    """``acc_need`` of these formula functions (keyed by the functions: a formula
    replaced in ``METRICS`` is traced anew)."""
    a = _Reads({f: np.ones(1) for f in _F})
    params = _params("daily", 252.0, risk_free=0.0, required_return=0.0)
    with np.errstate(all="ignore"):
        for f in formulas:
            f(a, **params)
    return _k.acc_groups(a.read)


def streaming_names() -> list[str]:
    """Returns metrics computable from the running statistics alone (no quantiles, no
    benchmark): what a metrics-only backtest can report."""
    return [n for n, (_, needs_b) in METRICS.items()
            if not needs_b and n not in _QUANTILE and n not in _WHOLE]


def from_accumulator(acc, names, annualization, risk_free=0.0, need=None) -> dict:
    """Metrics ``names`` from running statistics (NFIELDS x m, as the kernels'
    ``acc_add`` builds them), with the formulas every other path uses. ``need``: the
    statistics groups the accumulator kept (``acc_need``; None: all); the others read
    as NaN, so a formula reading one it did not keep gives NaN, never its start value."""
    bad = sorted(set(names) - set(streaming_names()))
    if bad:
        raise ValueError(f"{bad} need the whole return series (quantiles or a benchmark); "
                         f"available without it: {', '.join(streaming_names())}")
    a = {f: acc[i] for f, i in _F.items()}
    if need is not None:
        a.update({f: np.full_like(acc[i], np.nan) for f, i in _F.items()
                  if f in _GROUP_OF and not need & _GROUP_OF[f]})
    params = _params("daily", annualization, risk_free=risk_free, required_return=0.0)
    return {n: np.asarray(METRICS[n][0](a, **params), dtype=np.float64) for n in names}


def _is_scalar(x) -> bool:
    return np.ndim(x) == 0


def _no_dataset(name, x) -> None:
    """Refuse an xarray Dataset for ``name`` (returns, benchmark or a rate series): NumPy
    cannot take one ("cannot directly convert an xarray.Dataset into a numpy array")."""
    if isinstance(x, xr.Dataset):
        raise TypeError(f"metrics take {name} as a DataArray; for a Dataset pick a variable "
                        f"(one of {list(x.data_vars)})")


def _params(period, annualization, **kw):
    """Checked keyword parameters of the formulas (plus ``ann``, periods per year)."""
    kw["ann"] = annualization_factor(period, annualization)
    method = _v.choice("method", kw.setdefault("method", "historical"), VAR_METHODS)
    cutoff = kw["cutoff"] = _v.number("cutoff", kw.get("cutoff", 0.05), 0, 1)
    if method != "historical" and cutoff in (0.0, 1.0):
        # the fitted distribution's 0 and 1 quantiles are -inf and +inf
        raise ValueError(f"cutoff must be in (0, 1) for method={method!r}, got {cutoff!r}; "
                         "cutoff 0 or 1 (the sample's min or max) needs method='historical'")
    if "alpha" in kw:
        kw["alpha"] = _v.number("alpha", kw["alpha"], 0, None, lo_open=True)
    if "starting_value" in kw:
        kw["starting_value"] = _v.number("starting_value", kw["starting_value"])
    for key in ("risk_free", "required_return"):
        x = kw.get(key)
        _no_dataset(key, x)
        if key in kw and _is_scalar(x):   # None too: a TypeError naming it, not from a kernel
            if isinstance(x, (np.ndarray, xr.DataArray)):
                x = x.item()
            kw[key] = _v.number(key, x)
    return kw


def _real(name, x) -> np.ndarray:
    """``x`` as a float64 array, refusing complex, datetime and non-numeric input."""
    a = _v.pandas_values(x) if isinstance(x, (pd.Series, pd.DataFrame)) else np.asarray(x)
    _v.real_array(name, a.dtype)
    return a.astype(np.float64, copy=False)


def _factor_array(x, r) -> np.ndarray:
    """The benchmark as a float array along the time axis of ``r``: one series, or one per
    column of ``r``. Length-1 axes beyond ``r``'s are dropped (a one-column DataFrame or
    (n, 1) array for one series: empyrical takes them)."""
    b = _real("factor_returns", x)
    while b.ndim > r.ndim and b.shape[-1] == 1:
        b = b[..., 0]
    if b.ndim == 0 or b.shape[0] != r.shape[0]:
        raise ValueError(f"factor_returns has {b.shape[0] if b.ndim else 0} periods, "
                         f"returns {r.shape[0]}")
    if b.ndim > r.ndim or any(m not in (1, n) for m, n in zip(b.shape[1:], r.shape[1:])):
        raise ValueError(f"factor_returns has shape {b.shape}, the returns {r.shape}: give "
                         "one benchmark series or one per column")
    return b


def _rate_array(name, x, shape) -> np.ndarray:
    """A positional rate series for returns of ``shape``: (time,) or the returns' shape."""
    a = _real(name, x)
    if not (a.shape == shape or (a.ndim == 1 and len(shape) >= 1 and a.shape[0] == shape[0])):
        raise ValueError(f"{name} must be a number or a per-period series aligned on the "
                         f"returns' time axis: {shape[0] if shape else 0} values or the "
                         f"returns' shape {shape}; got shape {a.shape}")
    return a


def _rate_for_xarray(name, x, returns, dim) -> xr.DataArray:
    """A rate series as a DataArray on ``returns``' ``dim`` (labels aligned when both
    have them, else by position)."""
    if isinstance(x, xr.DataArray):
        _v.real_array(name, x.dtype)
        if dim not in x.dims:
            raise ValueError(f"{name} has no {dim!r} dimension (dims {x.dims}); a rate series "
                             f"must be aligned on the returns' {dim!r}")
        for d in x.dims:   # a member the rate lacks: NaN rates, a NaN metric (silently)
            if d != dim and d in x.coords and d in returns.coords:
                _rate_members(name, returns[d].values, x[d].values)
        _same_clock(name, x.indexes.get(dim), returns.indexes.get(dim))
        return x
    if isinstance(x, pd.Series) and dim in returns.coords:
        _same_clock(name, x.index, returns.indexes.get(dim))
        return xr.DataArray(_real(name, x), dims=(dim,), coords={dim: x.index})
    a = _rate_array(name, x, (returns.sizes[dim],) + tuple(
        s for d, s in returns.sizes.items() if d != dim))
    dims = (dim,) + tuple(d for d in returns.dims if d != dim)
    dims = dims[:a.ndim]
    coords = {d: returns[d].values for d in dims if d in returns.coords}
    return xr.DataArray(a, dims=dims, coords=coords)


def _rate_members(name, want, have):
    """Refuse a rate series lacking a member (column, asset) of the returns: its rates
    would be NaN, every period of that member skipped, its metric NaN."""
    have = set(have.tolist())
    missing = [c for c in want.tolist() if c not in have]
    if missing:
        raise ValueError(f"{name} has no rate for {missing[:5]} of the returns (a rate "
                         "series per column is aligned by label); give every column one")


def _factor_for_xarray(x, returns, dim, name="factor_returns") -> xr.DataArray:
    """The benchmark as a DataArray on ``dim``: a DataArray or a pd.Series is aligned by
    label (the periods both have), an array by position (same length). ``name``: the
    argument the errors name (``summary``'s is ``benchmark``)."""
    if isinstance(x, xr.DataArray):
        _v.real_array(name, x.dtype)
        if dim not in x.dims:
            raise ValueError(f"{name} has no {dim!r} dimension (dims {x.dims})")
        _paired(name, x.indexes.get(dim), returns.indexes.get(dim))
        return x
    if isinstance(x, pd.DataFrame) and x.shape[1] == 1:   # one column: that series
        x = x.iloc[:, 0]
    if isinstance(x, pd.Series) and dim in returns.coords:
        _paired(name, x.index, returns.indexes.get(dim))
        return xr.DataArray(_real(name, x), dims=(dim,), coords={dim: x.index})
    a = _real(name, x)
    while a.ndim > 1 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 1 or a.shape[0] != returns.sizes[dim]:
        raise ValueError(f"{name} has shape {a.shape}, the returns "
                         f"{returns.sizes[dim]} periods along {dim!r}")
    return xr.DataArray(a, dims=(dim,), coords={dim: returns[dim].values})


def _same_clock(name, index, returns_index):
    """Refuse a time-zone-aware time index paired with a naive one: no date is equal
    (pandas), or the aware one's are taken in UTC (a series as a DataArray), so a
    benchmark or rate paired with none of the returns' dates gave NaN without a word."""
    if not (isinstance(index, pd.DatetimeIndex) and isinstance(returns_index, pd.DatetimeIndex)):
        return
    tz, rtz = index.tz, returns_index.tz
    if (tz is None) != (rtz is None):
        raise ValueError(f"{name}'s time index is {f'in {tz}' if tz else 'naive'}, the "
                         f"returns' {f'in {rtz}' if rtz else 'naive'}: aware and naive dates "
                         "are not paired; give both naive (.tz_convert('UTC')"
                         ".tz_localize(None)) or both aware")


def _paired(name, index, returns_index):
    """Refuse a labelled benchmark that shares no date with the returns (another clock,
    a wrong index): every paired metric was NaN, silently."""
    _same_clock(name, index, returns_index)
    if index is not None and returns_index is not None and len(returns_index) and \
            len(index) and not returns_index.isin(index).any():
        raise ValueError(f"{name} shares no date with the returns: align it on the "
                         "returns' index")


def _check_overlap(name, before, after):
    # a rate with values, none of them on the returns' dates: a wrong index, not "no data"
    if np.any(~np.isnan(np.asarray(before))) and not np.any(~np.isnan(np.asarray(after))):
        raise ValueError(f"{name} shares no date with the returns: align it on the "
                         "returns' index")


def _rate_for_pandas(name, x, returns, dim="time"):
    """A rate series as a pandas object on ``returns``' index (and columns)."""
    if isinstance(x, xr.DataArray):
        # time on the index, as a benchmark DataArray: an (asset, time) one had its assets
        # as the index ("no rate for ['A0', ...] of the returns")
        x = (x.transpose(dim, ...) if dim in x.dims else x).to_pandas()
    if isinstance(x, (pd.Series, pd.DataFrame)):
        _real(name, x)
        if isinstance(x, pd.DataFrame) and not isinstance(returns, pd.DataFrame):
            raise ValueError(f"{name} is a DataFrame, the returns a Series")
        _same_clock(name, x.index, returns.index)
        if isinstance(x, pd.DataFrame):
            _rate_members(name, returns.columns, x.columns)
        return x
    a = _rate_array(name, x, returns.shape)
    if a.ndim == 1:
        return pd.Series(a, index=returns.index)
    return pd.DataFrame(a, index=returns.index, columns=returns.columns)


def _time_index(x, dim):
    """The labels of ``x`` along time (a pandas index, the ``dim`` index), else None."""
    if isinstance(x, xr.DataArray):
        return getattr(x.xindexes.get(dim), "index", None)
    return x.index if isinstance(x, (pd.Series, pd.DataFrame)) else None


def _in_time_order(x, dim, by_position=()):
    """``x`` with its datetime labels in time order: drawdowns and compounding read the
    returns in their order, and a shuffled series' max drawdown was another number (-0.186
    against -0.214) with no error. Repeated or NaT timestamps are a DataError naming one
    (``ql.data.check_time``): no order is right for them; so are unsorted returns beside
    inputs paired with them by position (``by_position``: their names)."""
    index = _time_index(x, dim)
    if not isinstance(index, pd.DatetimeIndex) or (index.is_monotonic_increasing
                                                   and index.is_unique):
        return x
    if index.has_duplicates or index.hasnans or by_position:
        try:
            check_time(index, "returns: ")
        except DataError as e:
            raise DataError(f"{e}" + (f"; {' and '.join(by_position)} paired by position: "
                                      "sort them with the returns, or give them dates"
                                      if by_position else "")) from None
    return x.sortby(dim) if isinstance(x, xr.DataArray) else x.sort_index()


def _by_position(dim, **inputs) -> list:
    """The names of ``inputs`` (benchmark, rate) without dates: paired by position."""
    return [k for k, v in inputs.items() if v is not None and not _is_scalar(v)
            and not isinstance(v, (pd.Series, pd.DataFrame))
            and not (isinstance(v, xr.DataArray) and dim in v.indexes)]


def _dispatch(names, returns, factor_returns, dim, params):
    """Route any supported input (DataArray, pandas, array-like) through ``_compute_np``;
    returns {name: result}."""
    _no_dataset("returns", returns)
    _no_dataset("factor_returns", factor_returns)
    returns, factor_returns = _v.numpy_data(returns), _v.numpy_data(factor_returns)
    needs_b = [n for n in names if METRICS[n][1]]
    if needs_b and factor_returns is None:
        raise ValueError(f"{needs_b[0]} needs factor_returns (the benchmark)")
    rate_key = next((k for k in ("risk_free", "required_return")
                     if k in params and not _is_scalar(params[k])), None)
    rate_obj = None
    if rate_key is not None:
        if not all(n in _RATE for n in names):
            raise ValueError(f"{rate_key} must be a number here, got {type(params[rate_key])}")
        rate_obj = _v.numpy_data(params[rate_key])
        params = dict(params, **{rate_key: 0.0})
    route = (_dispatch_xarray if isinstance(returns, xr.DataArray) else _dispatch_pandas
             if isinstance(returns, (pd.Series, pd.DataFrame)) else _dispatch_numpy)
    return route(names, returns, factor_returns, dim, params, rate_key, rate_obj)


def _reduced(returns, dim, res):
    """{name: DataArray} of the arrays ``res`` (the returns with ``dim`` reduced): the
    coordinates without ``dim`` and their indexes, name, attrs -- what
    ``returns.isel({dim: 0}, drop=True)`` keeps. Built from the returns' own Variables
    and indexes on xarray's fast path (no index is rebuilt, nothing is checked again):
    the template that isel/drop_vars built cost ~0.1-0.3 ms a call, a third of
    annual_volatility's time on a 2520 x 1000 panel (issue 32)."""
    dims = tuple(d for d in returns.dims if d != dim)
    keep = {k: v for k, v in returns.coords.variables.items() if dim not in v.dims}
    indexes = {k: i for k, i in returns.xindexes.items() if k in keep}
    out = {}
    for n, v in res.items():
        coords = {k: c.copy(deep=False) for k, c in keep.items()}
        var = xr.Variable(dims, v, attrs=dict(returns.attrs))
        out[n] = xr.DataArray(var, coords, name=n, indexes=dict(indexes), fastpath=True)
    return out


def _dispatch_xarray(names, returns, factor_returns, dim, params, rate_key, rate_obj):
    """``_dispatch`` for a DataArray: benchmark and rate aligned on ``dim`` by label; in
    memory and alone, the arrays directly, else ``xr.apply_ufunc`` (dask too)."""
    if dim not in returns.dims:
        raise ValueError(f"dim={dim!r} is not a dimension of the returns {returns.dims}")
    _v.real_array("returns", returns.dtype)
    returns = _in_time_order(returns, dim, _by_position(dim, factor_returns=factor_returns,
                                                         **{rate_key or "rate": rate_obj}))
    rt = None
    if rate_key is not None:
        rt = _rate_for_xarray(rate_key, rate_obj, returns, dim)
    b = None
    if factor_returns is not None:
        fb = _factor_for_xarray(factor_returns, returns, dim)
        returns, fb = xr.align(returns, fb, join="inner")
        # a dim only the benchmark has (several benchmarks, a singleton) is one of the
        # results' (it was xarray's "must be a permuted list of" transposing onto the
        # returns' dims)
        returns, b = xr.broadcast(returns, fb)
        b = b.transpose(*returns.dims)
    if rt is not None:
        aligned = xr.align(returns, rt, join="left")[1]
        if isinstance(aligned.data, np.ndarray):
            _check_overlap(rate_key, rt, aligned)
        returns, rt = xr.broadcast(returns, aligned)   # as the benchmark's dims
        rt = rt.transpose(*returns.dims)
    if returns.size == 0:   # nothing to compute lazily (dask's gufunc divides by a
        # zero-size chunk: a ZeroDivisionError): NaN per column, as in memory
        returns, b, rt = (None if v is None else v.copy(data=np.asarray(v.values))
                          for v in (returns, b, rt))
    has_b, has_rate = b is not None, rt is not None

    if not (has_b or has_rate) and isinstance(returns.data, np.ndarray):
        # in memory, one input: what apply_ufunc would build, without its ~0.1 ms
        res = _compute_np(names, np.moveaxis(returns.data, returns.dims.index(dim), 0),
                          None, params)
        return _reduced(returns, dim, res)

    def f(r, *more):
        bb = np.moveaxis(more[0], -1, 0) if has_b else None
        rr = np.moveaxis(more[-1], -1, 0) if has_rate else None
        res = _compute_np(names, np.moveaxis(r, -1, 0), bb, params, rate=rr)
        out = tuple(res[n] for n in names)
        return out if len(out) > 1 else out[0]

    args = [returns] + ([b] if has_b else []) + ([rt] if has_rate else [])
    res = xr.apply_ufunc(f, *args, input_core_dims=[[dim]] * len(args),
                         output_core_dims=[[] for _ in names], dask="parallelized",
                         output_dtypes=[np.float64] * len(names),
                         dask_gufunc_kwargs={"allow_rechunk": True})
    res = res if isinstance(res, tuple) else (res,)
    return {n: v.rename(n) for n, v in zip(names, res)}


def _benchmark_columns(b, returns):
    """A benchmark DataFrame of several columns (one per returns column) in the order of
    the returns' columns, paired by label as the index is: it was paired by position, so
    swapped columns gave each asset another's beta (0.996 -> -0.034)."""
    if not (isinstance(b, pd.DataFrame) and b.shape[1] > 1
            and isinstance(returns, pd.DataFrame)):
        return b
    missing = [c for c in returns.columns if c not in b.columns]
    if missing:
        raise ValueError(f"factor_returns has no column {missing[:5]} of the returns: a "
                         "benchmark DataFrame is paired with the returns' columns by label "
                         f"(its columns: {list(b.columns)[:5]}); pass one benchmark series "
                         "or a column per returns column")
    return b.reindex(columns=returns.columns)


def _dispatch_pandas(names, returns, factor_returns, dim, params, rate_key, rate_obj):
    """``_dispatch`` for a Series (-> floats) or DataFrame (-> Series per metric): a
    pandas benchmark is aligned on the index, a rate reindexed on it."""
    returns = _in_time_order(returns, dim, _by_position(dim, factor_returns=factor_returns,
                                                         **{rate_key or "rate": rate_obj}))
    ra = _real("returns", returns)
    rt = None if rate_key is None else _rate_for_pandas(rate_key, rate_obj, returns, dim)
    b = None
    if factor_returns is not None:
        if (isinstance(factor_returns, xr.DataArray) and factor_returns.ndim <= 2
                and dim in factor_returns.indexes):
            # labelled: aligned on dates as a Series is (it was paired by position)
            factor_returns = factor_returns.transpose(dim, ...).to_pandas()
        if isinstance(factor_returns, (pd.Series, pd.DataFrame)):
            factor_returns = _benchmark_columns(factor_returns, returns)
            _paired("factor_returns", factor_returns.index, returns.index)
            idx = returns.index.intersection(factor_returns.index)
            returns, factor_returns = returns.loc[idx], factor_returns.loc[idx]
            ra = _real("returns", returns)
        b = _factor_array(factor_returns, ra)
    rate = None
    if rt is not None:
        aligned = (rt.reindex(index=returns.index, columns=returns.columns)
                   if isinstance(rt, pd.DataFrame) else rt.reindex(returns.index))
        _check_overlap(rate_key, rt, aligned)
        rate = aligned.to_numpy(dtype=np.float64)
    res = _compute_np(names, ra, b, params, rate=rate)
    if isinstance(returns, pd.Series):
        return {n: float(v) for n, v in res.items()}
    return {n: pd.Series(v, index=returns.columns, name=n) for n, v in res.items()}


def _dispatch_numpy(names, returns, factor_returns, dim, params, rate_key, rate_obj):
    """``_dispatch`` for array-likes: time on the leading axis, matched by position."""
    r = _real("returns", returns)
    if r.ndim == 0:
        raise ValueError("returns must have a time axis, got a scalar")
    b = None if factor_returns is None else _factor_array(factor_returns, r)
    rate = None if rate_key is None else _rate_array(rate_key, rate_obj, r.shape)
    res = _compute_np(names, r, b, params, rate=rate)
    return {n: (np.float64(v) if r.ndim == 1 else v) for n, v in res.items()}


def _data_periods(returns, period, annualization, dim="time"):
    """``annualization``, else, when ``period`` is left at "daily", of labelled returns
    their ``periods_per_year`` attr (a calendar set by ``ql.data.load``/``open``) or the
    calendar of their datetime index along ``dim`` (``ql.calendar.periods_for``: returns
    derived from prices lose attrs), else None (252); bare arrays keep empyrical's 252."""
    if annualization is not None or period != "daily" or not isinstance(
            returns, (xr.DataArray, pd.Series, pd.DataFrame)):
        return annualization
    index = _time_index(returns, dim)
    if (isinstance(index, pd.DatetimeIndex) and not index.is_monotonic_increasing
            and "periods_per_year" not in returns.attrs):
        # the calendar of the times in order (reversed monthly returns read 252); only
        # the index is sorted here, the data once by _dispatch
        returns = index.sort_values()
    try:
        return _calendar.periods_for(returns, dim=dim)
    except ValueError:   # DataError included: repeated or NaT times, said by _dispatch
        return None


def _metric(name, returns, factor_returns=None, dim="time", period="daily",
            annualization=None, **kw):
    if name in _ANNUALISED:   # the others never read it: no calendar to infer
        annualization = _data_periods(returns, period, annualization, dim)
    return _dispatch([name], returns, factor_returns, dim,
                     _params(period, annualization, **kw))[name]


# --------------------------------------------------------------------------- public API

# Shared numpydoc blocks (quantlab._doc.fill): each described once, so they cannot drift
_DOC = {
    "returns": """returns : array-like, pandas.Series/DataFrame or xarray.DataArray
    Simple per-period returns, time along ``dim`` (the leading axis for arrays and
    pandas). NaN periods are skipped.""",
    "factor_returns": """factor_returns : array-like, pandas.Series or xarray.DataArray
    Benchmark returns on the same time axis (aligned by label for pandas/xarray);
    periods where either side is NaN are dropped. One per returns column: an array's
    columns by position, a DataFrame's by column label.""",
    "dim": """dim : str, default 'time'
    The time dimension of an xarray input.""",
    "period": """period : {'daily', 'weekly', 'monthly', 'quarterly', 'yearly'}, default 'daily'
    Sampling period; sets the periods per year (252/52/12/4/1). Left at 'daily', pandas
    and xarray returns use their ``periods_per_year`` attr, else the calendar of their
    datetime index (``ql.calendar.periods_for``: 365 for 7 days a week, where empyrical
    assumes 252); arrays 252.""",
    "annualization": """annualization : float, optional
    Periods per year, overriding ``period`` (> 0).""",
    "risk_free": """risk_free : float or array-like, default 0.0
    Risk-free rate PER PERIOD: a number or a series aligned on time.""",
    "required_return": """required_return : float or array-like, default 0.0
    Minimum acceptable return per period: a number or a series aligned on time.""",
    "cutoff": """cutoff : float, default 0.05
    Tail probability in [0, 1] ((0, 1) for the fitted methods).""",
    "method": """method : {'historical', 'parametric', 'cornish_fisher'}, default 'historical'
    How the tail is estimated (see Notes).""",
    "per_column": """float, pandas.Series or xarray.DataArray
    A scalar for 1-D input, else one value per column (the time dimension reduced).""",
    "type_error": """TypeError
    If ``returns`` is complex, datetime or non-numeric.""",
    "period_error": """ValueError
    If ``period`` is unknown or ``annualization`` is not a positive number.""",
    "cutoff_error": """ValueError
    If ``cutoff`` is outside [0, 1] (0 and 1 need method='historical') or ``method``
    is unknown.""",
}



@fill(_DOC)
def sharpe_ratio(returns, risk_free=0.0, period="daily", annualization=None, dim="time"):
    """Annualised Sharpe ratio: mean(r - rf) / std(r - rf, ddof=1) · sqrt(periods).

    rf is per period, a number or a series aligned on time.

    Parameters
    ----------
    {{returns}}
    {{risk_free}}
    {{period}}
    {{annualization}}
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}
    {{period_error}}

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> r = np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007])
    >>> round(float(ql.metrics.sharpe_ratio(r)), 4)
    2.1031

    One value per asset of a Dataset's returns:

    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> ql.metrics.sharpe_ratio(ql.data.returns(ds["close"])).round(3).values
    array([-0.47 ,    nan,  0.53 , -0.052])
    """
    return _metric("sharpe_ratio", returns, dim=dim, period=period,
                   annualization=annualization, risk_free=risk_free)


@fill(_DOC)
def sortino_ratio(returns, required_return=0.0, period="daily", annualization=None,
                  dim="time"):
    """Annualised Sortino ratio: mean(r - req) · periods / downside_risk(r, req).

    req is a number or a series.

    Parameters
    ----------
    {{returns}}
    {{required_return}}
    {{period}}
    {{annualization}}
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}
    {{period_error}}

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> r = np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007])
    >>> round(float(ql.metrics.sortino_ratio(r)), 4)
    3.1436
    """
    return _metric("sortino_ratio", returns, dim=dim, period=period,
                   annualization=annualization, required_return=required_return)


@fill(_DOC)
def downside_risk(returns, required_return=0.0, period="daily", annualization=None,
                  dim="time"):
    """Annualised downside deviation: sqrt(mean(min(r - req, 0)²)) · sqrt(periods).

    req is a number or a series.

    Parameters
    ----------
    {{returns}}
    {{required_return}}
    {{period}}
    {{annualization}}
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}
    {{period_error}}

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> r = np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007])
    >>> round(float(ql.metrics.downside_risk(r)), 4)
    0.1336
    """
    return _metric("downside_risk", returns, dim=dim, period=period,
                   annualization=annualization, required_return=required_return)


@fill(_DOC)
def calmar_ratio(returns, period="daily", annualization=None, dim="time"):
    """Calmar ratio: annual_return / |max_drawdown|; NaN without a drawdown.

    Parameters
    ----------
    {{returns}}
    {{period}}
    {{annualization}}
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}
    {{period_error}}

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> r = np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007])
    >>> round(float(ql.metrics.calmar_ratio(r)), 4)
    24.814
    """
    return _metric("calmar_ratio", returns, dim=dim, period=period,
                   annualization=annualization)


@fill(_DOC)
def max_drawdown(returns, dim="time"):
    """Maximum drawdown: min_t (W_t / max_{s<=t} W_s - 1), W = Π(1 + r) from 1.

    The start is a peak; the result is <= 0.

    Parameters
    ----------
    {{returns}}
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> r = np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007])
    >>> round(float(ql.metrics.max_drawdown(r)), 4)
    -0.02
    """
    return _metric("max_drawdown", returns, dim=dim)


@fill(_DOC)
def annual_return(returns, period="daily", annualization=None, dim="time"):
    """Compound annual growth: Π(1 + r)^(periods / n) - 1, n valid periods; -1 where the
    wealth Π(1 + r) is 0 or below (a return of -1 or below: the capital lost).

    Parameters
    ----------
    {{returns}}
    {{period}}
    {{annualization}}
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}
    {{period_error}}

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> r = np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007])
    >>> round(float(ql.metrics.annual_return(r)), 4)
    0.4963
    """
    return _metric("annual_return", returns, dim=dim, period=period,
                   annualization=annualization)


@fill(_DOC)
def annual_volatility(returns, period="daily", alpha=2.0, annualization=None, dim="time"):
    """Annualised volatility: std(r, ddof=1) · periods^(1/alpha).

    Parameters
    ----------
    {{returns}}
    {{period}}
    alpha : float, default 2.0
        Scaling exponent: volatility grows as periods^(1/alpha) (> 0).
    {{annualization}}
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}
    {{period_error}}

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> r = np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007])
    >>> round(float(ql.metrics.annual_volatility(r)), 4)
    0.1997
    """
    return _metric("annual_volatility", returns, dim=dim, period=period,
                   annualization=annualization, alpha=alpha)


@fill(_DOC)
def cum_returns_final(returns, starting_value=0.0, dim="time"):
    """Final cumulative return: Π(1 + r) - 1, or Π(1 + r) · starting_value when it is non-zero.

    Parameters
    ----------
    {{returns}}
    starting_value : float, default 0.0
        Initial capital; 0 returns the cumulative return instead of a final value.
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> r = np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007])
    >>> round(float(ql.metrics.cum_returns_final(r)), 4)
    0.0096
    >>> round(float(ql.metrics.cum_returns_final(r, starting_value=100)), 2)
    100.96
    """
    return _metric("cum_returns_final", returns, dim=dim, starting_value=starting_value)


@fill(_DOC)
def total_return(returns, dim="time"):
    """Total compounded return: Π(1 + r) - 1.

    Precision: the product of the returns as given, to about n x 1.1e-16 relative.
    Returns computed from prices carry their own rounding: a bar that keeps a fraction
    g < 1/2 of the value (r = g - 1, near -1) holds 1 + r only to 1.1e-16 / g relative,
    so a price that jumps x1e15 for one bar and back compounds about 1% off
    prices[-1] / prices[0] - 1 (g = 1e-15: 11% of 1 + r at that bar).

    Parameters
    ----------
    {{returns}}
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> r = np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007])
    >>> round(float(ql.metrics.total_return(r)), 4)
    0.0096
    """
    return _metric("total_return", returns, dim=dim)


@fill(_DOC)
def tail_ratio(returns, dim="time"):
    """Tail ratio: |95th percentile| / |5th percentile| of the returns.

    Parameters
    ----------
    {{returns}}
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> r = np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007])
    >>> round(float(ql.metrics.tail_ratio(r)), 4)
    0.8462
    """
    return _metric("tail_ratio", returns, dim=dim)


@fill(_DOC)
def stability_of_timeseries(returns, dim="time"):
    """Stability: R² of the linear fit of cumulative log returns Σ log(1 + r) on time.

    Parameters
    ----------
    {{returns}}
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> r = np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007])
    >>> round(float(ql.metrics.stability_of_timeseries(r)), 4)
    0.0794
    """
    return _metric("stability_of_timeseries", returns, dim=dim)


@fill(_DOC)
def value_at_risk(returns, cutoff=0.05, method="historical", dim="time"):
    """Value at risk: the ``cutoff`` quantile of returns (negative = loss).

    Parameters
    ----------
    {{returns}}
    {{cutoff}}
    {{method}}
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}
    {{cutoff_error}}

    Notes
    -----
    historical: percentile with linear interpolation (numpy, as empyrical);
    parametric: mean + std · Φ⁻¹(cutoff) (std ddof=1);
    cornish_fisher: mean + std · z_cf with z_cf the Cornish-Fisher expansion using the
    sample's skewness and excess kurtosis (population moments, scipy's default); NaN
    where z_cf is not increasing from Φ⁻¹(1e-15) up to Φ⁻¹(cutoff) (skewness and
    kurtosis outside the expansion's domain of validity: no distribution has such a
    tail).

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> r = np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007])
    >>> round(float(ql.metrics.value_at_risk(r)), 4)
    -0.0163
    """
    return _metric("value_at_risk", returns, dim=dim, cutoff=cutoff, method=method)


@fill(_DOC)
def conditional_value_at_risk(returns, cutoff=0.05, method="historical", dim="time"):
    """Conditional value at risk: the mean return in the worst ``cutoff`` tail (negative = loss).

    Parameters
    ----------
    {{returns}}
    {{cutoff}}
    {{method}}
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}
    {{cutoff_error}}

    Notes
    -----
    historical: mean of the int((n-1)·cutoff)+1 smallest returns (empyrical; cutoff 0:
    the minimum, 1: the mean);
    parametric: mean - std · φ(z)/cutoff (normal expected shortfall);
    cornish_fisher: the tail mean of the Cornish-Fisher distribution (closed form); NaN
    outside the expansion's domain of validity, as for ``value_at_risk``.

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> r = np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007])
    >>> round(float(ql.metrics.conditional_value_at_risk(r)), 4)
    -0.02
    """
    return _metric("conditional_value_at_risk", returns, dim=dim, cutoff=cutoff,
                   method=method)


@fill(_DOC)
def alpha(returns, factor_returns, risk_free=0.0, period="daily", annualization=None,
          dim="time"):
    """Annualised alpha: (1 + mean(r - rf - β(b - rf)))^periods - 1 (empyrical's).

    Parameters
    ----------
    {{returns}}
    {{factor_returns}}
    {{risk_free}}
    {{period}}
    {{annualization}}
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}
    {{period_error}}

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> r = np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007])
    >>> b = np.array([0.005, -0.01, 0.01, 0.002, -0.004, 0.003])
    >>> round(float(ql.metrics.alpha(r, b)), 4)
    -0.0238
    """
    return _metric("alpha", returns, factor_returns, dim=dim, period=period,
                   annualization=annualization, risk_free=risk_free)


@fill(_DOC)
def beta(returns, factor_returns, risk_free=0.0, dim="time"):
    """Beta: cov(r, b) / var(b) over paired periods.

    risk_free cancels, as in empyrical (it is checked, then unused).

    Parameters
    ----------
    {{returns}}
    {{factor_returns}}
    {{risk_free}}
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> r = np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007])
    >>> b = np.array([0.005, -0.01, 0.01, 0.002, -0.004, 0.003])
    >>> round(float(ql.metrics.beta(r, b)), 4)
    1.7621
    """
    if _is_scalar(risk_free):
        _params("daily", None, risk_free=risk_free)  # checked, then unused
    return _metric("beta", returns, factor_returns, dim=dim)


@fill(_DOC)
def up_capture(returns, factor_returns, period="daily", annualization=None, dim="time"):
    """Up capture: annual_return(r | b > 0) / annual_return(b | b > 0).

    Parameters
    ----------
    {{returns}}
    {{factor_returns}}
    {{period}}
    {{annualization}}
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}
    {{period_error}}

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> r = np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007])
    >>> b = np.array([0.005, -0.01, 0.01, 0.002, -0.004, 0.003])
    >>> round(float(ql.metrics.up_capture(r, b)), 4)
    3.172
    """
    return _metric("up_capture", returns, factor_returns, dim=dim, period=period,
                   annualization=annualization)


@fill(_DOC)
def down_capture(returns, factor_returns, period="daily", annualization=None, dim="time"):
    """Down capture: annual_return(r | b < 0) / annual_return(b | b < 0).

    Parameters
    ----------
    {{returns}}
    {{factor_returns}}
    {{period}}
    {{annualization}}
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}
    {{period_error}}

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> r = np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007])
    >>> b = np.array([0.005, -0.01, 0.01, 0.002, -0.004, 0.003])
    >>> round(float(ql.metrics.down_capture(r, b)), 4)
    1.1547
    """
    return _metric("down_capture", returns, factor_returns, dim=dim, period=period,
                   annualization=annualization)


@fill(_DOC)
def recovery_time(returns, dim="time"):
    """Periods from the max-drawdown trough until the prior peak is regained; NaN if never
    regained, 0 if never under water.

    Parameters
    ----------
    {{returns}}
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> round(float(ql.metrics.recovery_time([0.1, -0.2, 0.1, 0.1, 0.1])), 4)
    3.0
    >>> [float(ql.metrics.recovery_time(r)) for r in ([0.1, 0.0, 0.2], [0.1, -0.2])]
    [0.0, nan]
    """
    return _metric("recovery_time", returns, dim=dim)


@fill(_DOC)
def drawdown_duration(returns, dim="time"):
    """Longest run of consecutive periods spent below the running peak (underwater).

    Parameters
    ----------
    {{returns}}
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> r = np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007])
    >>> round(float(ql.metrics.drawdown_duration(r)), 4)
    5.0
    """
    return _metric("drawdown_duration", returns, dim=dim)


@fill(_DOC)
def win_rate(returns, dim="time"):
    """Share of non-zero periods that are positive.

    Parameters
    ----------
    {{returns}}
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> r = np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007])
    >>> round(float(ql.metrics.win_rate(r)), 4)
    0.6667
    """
    return _metric("win_rate", returns, dim=dim)


@fill(_DOC)
def profit_factor(returns, dim="time"):
    """Profit factor: Σ positive returns / |Σ negative returns| (inf without losses).

    Parameters
    ----------
    {{returns}}
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> r = np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007])
    >>> round(float(ql.metrics.profit_factor(r)), 4)
    1.4
    """
    return _metric("profit_factor", returns, dim=dim)


@fill(_DOC)
def information_ratio(returns, factor_returns, period="daily", annualization=None,
                      dim="time"):
    """Information ratio: annualised mean active return / tracking error, mean(r - b) · periods / TE.

    Parameters
    ----------
    {{returns}}
    {{factor_returns}}
    {{period}}
    {{annualization}}
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}
    {{period_error}}

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> r = np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007])
    >>> b = np.array([0.005, -0.01, 0.01, 0.002, -0.004, 0.003])
    >>> round(float(ql.metrics.information_ratio(r, b)), 4)
    1.8404
    """
    return _metric("information_ratio", returns, factor_returns, dim=dim, period=period,
                   annualization=annualization)


@fill(_DOC)
def tracking_error(returns, factor_returns, period="daily", annualization=None, dim="time"):
    """Annualised tracking error: std(r - b, ddof=1) · sqrt(periods).

    Parameters
    ----------
    {{returns}}
    {{factor_returns}}
    {{period}}
    {{annualization}}
    {{dim}}

    Returns
    -------
    {{per_column}}

    Raises
    ------
    {{type_error}}
    {{period_error}}

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> r = np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007])
    >>> b = np.array([0.005, -0.01, 0.01, 0.002, -0.004, 0.003])
    >>> round(float(ql.metrics.tracking_error(r, b)), 4)
    0.0913
    """
    return _metric("tracking_error", returns, factor_returns, dim=dim, period=period,
                   annualization=annualization)


@fill(_DOC)
def summary(returns, benchmark=None, risk_free_rate=0.0, period="daily",
            annualization=None, cutoff=0.05, dim="time") -> xr.Dataset:
    """Every returns metric as an ``xr.Dataset`` (one variable per metric, the non-time dims kept).

    ``risk_free_rate`` is ANNUAL, converted per period as (1 + rf)^(1/periods) - 1
    (DESIGN.md); benchmark metrics only with a benchmark. Annualised with
    ``annualization``, else the returns' ``periods_per_year`` attr, else the calendar of
    their datetime index along ``dim`` (``ql.calendar.infer``), else ``period`` (252
    daily); ``attrs["periods"]`` says which.

    Parameters
    ----------
    returns : array-like, pandas.Series/DataFrame or xarray.DataArray
        Simple per-period returns, time along ``dim`` (the leading axis for arrays and
        pandas).
    benchmark : array-like, pandas.Series or xarray.DataArray, optional
        Benchmark returns on the same time axis (aligned by label for pandas/xarray, by
        position for arrays); adds alpha, beta, captures, information ratio and
        tracking error.
    risk_free_rate : float, default 0.0
        ANNUAL risk-free rate (> -1).
    period : {'daily', 'weekly', 'monthly', 'quarterly', 'yearly'}, default 'daily'
        Sampling period; sets the periods per year.
    annualization : float, optional
        Periods per year, overriding ``period``.
    cutoff : float, default 0.05
        Tail probability of the VaR and CVaR.
    dim : str, default 'time'
        The time dimension.

    Returns
    -------
    xarray.Dataset
        One variable per metric; attrs ``periods_per_year``, ``risk_free_rate_annual``,
        ``risk_free_per_period`` and ``cutoff``.

    Raises
    ------
    ValueError
        If ``returns`` is a scalar, ``risk_free_rate`` <= -1, or ``period``/``cutoff`` is
        out of range.
    {{type_error}}

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> s = ql.metrics.summary(np.array([0.01, -0.02, 0.015, 0.003, -0.005, 0.007]))
    >>> round(float(s["sharpe_ratio"]), 4), round(float(s["max_drawdown"]), 4)
    (2.1031, -0.02)
    >>> "beta" in s
    False
    """
    _no_dataset("returns", returns)
    _no_dataset("benchmark", benchmark)
    returns, benchmark = _v.numpy_data(returns), _v.numpy_data(benchmark)
    annualization = _data_periods(returns, period, annualization, dim)
    ann = annualization_factor(period, annualization)
    risk_free_rate = _v.number("risk_free_rate", risk_free_rate, -1, None, lo_open=True)
    rf = (1.0 + risk_free_rate) ** (1.0 / ann) - 1.0
    registered()   # loads $QUANTLAB_PLUGINS' metrics
    names = [n for n, (_, needs_b) in METRICS.items() if benchmark is not None or not needs_b]
    if not isinstance(returns, xr.DataArray):
        arr = _real("returns", returns)
        if arr.ndim == 0:
            raise ValueError("returns must have a time axis, got a scalar")
        # a pandas index stays the time coordinate: a pandas benchmark is aligned on it
        # by label, as by the metric functions (it was paired by position)
        coords = ({dim: returns.index}   # the index (its values lose a time zone)
                  if isinstance(returns, (pd.Series, pd.DataFrame)) else None)
        if isinstance(returns, pd.DataFrame):   # its columns label the results (they
            coords["dim_1"] = returns.columns.values   # were dim_1 without coordinates)
        returns = xr.DataArray(arr, dims=(dim,) + tuple(f"dim_{i}" for i in range(1, arr.ndim)),
                               coords=coords)
    # a registered metric named as a dim or coordinate of the returns (a sweep's param
    # dim): the Dataset kept the coordinate under that name, silently, or raised MergeError
    clash = sorted(set(names) & set(_WHOLE) & ({*returns.dims} | {*returns.coords}))
    if clash:
        raise ValueError(f"registered metric(s) {clash} share a name with a dim or "
                         "coordinate of returns; rename the dim or register the metric "
                         "under another name")
    params = _params(period, annualization, risk_free=rf, required_return=0.0, cutoff=cutoff)
    if benchmark is not None:   # checked here so that errors name benchmark, not factor_returns
        benchmark = _factor_for_xarray(benchmark, returns, dim, "benchmark")
    res = _dispatch(names, returns, benchmark, dim, params)
    ds = xr.Dataset(res)
    ds.attrs.update(periods_per_year=ann, periods=ann, risk_free_rate_annual=risk_free_rate,
                    risk_free_per_period=rf, cutoff=cutoff)
    return ds
