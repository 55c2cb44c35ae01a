"""Risk management: VaR/CVaR, Kelly sizing, drawdown control, volatility targeting,
stress tests, risk budgets and a risk report.

Signs (DESIGN.md): ``ql.metrics`` returns empyrical-signed quantiles (negative = loss);
``RiskManager`` reports losses as positive fractions, ``var_95 = -value_at_risk(r,
cutoff=0.05)``, and compares drawdown limits with ``abs(max_drawdown)``. Every number
``ql.metrics`` can give comes from there; Monte Carlo VaR is the one computed here.
Drawdown control that cuts exposure must see the controlled equity, so it runs inside
the backtest kernel (``ql.backtest(..., dd_limit=, dd_cooldown=)``), configured by
:meth:`RiskManager.backtest_kwargs`.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import pandas as pd
import xarray as xr

from quantlab import _validate, fmt, metrics, rolling
from quantlab._doc import fill
from quantlab.backtesting import DD_MODES, backtest
from quantlab.data import FLAT_VARIANCE, returns as simple_returns, shifted
from quantlab.errors import DataError
from quantlab.tearsheet import underwater

__all__ = ["RiskManager", "RiskReport", "KellyFraction", "risk_parity_weights",
           "risk_contributions", "HISTORICAL_SCENARIOS"]

# Market stress windows (peak to trough of the S&P 500, or the event's weeks); a window
# the data do not cover is reported as not covered, never extrapolated.
HISTORICAL_SCENARIOS = {
    "dot-com bust 2000-02": ("2000-03-24", "2002-10-09"),
    "global financial crisis 2008": ("2007-10-09", "2009-03-09"),
    "US downgrade 2011": ("2011-07-22", "2011-10-03"),
    "China devaluation 2015": ("2015-08-10", "2015-08-25"),
    "Q4 2018 sell-off": ("2018-10-01", "2018-12-24"),
    "COVID crash 2020": ("2020-02-19", "2020-03-23"),
}
METHODS = ("historical", "parametric", "cornish_fisher", "monte_carlo")
MIN_OBS = 20


def _scenarios(scenarios, assets, taken=()) -> dict:
    """``stress_test``'s extra ``{name: {asset: shock}}``, checked: a string or a list
    failed as "dictionary update sequence element #0 has length 1; 2 is required". Each
    asset must be one of ``assets`` (a typo, " IBM", was a shock to nothing: a P&L of 0),
    each shock a finite number >= -1 (NaN made the P&L NaN; -2 took a price below 0), and
    a name none of the ``taken`` rows (a second "vol x3" row)."""
    if scenarios is None:
        return {}
    if not isinstance(scenarios, dict) or not all(isinstance(v, dict)
                                                   for v in scenarios.values()):
        raise TypeError(f"scenarios must be a dict {{name: {{asset: shock}}}}, got "
                        f"{_validate._show(scenarios)}")
    for name, shock in scenarios.items():
        if name in taken:
            raise ValueError(f"scenario name {name!r} is a built-in scenario's; give "
                             "another name")
        unknown = [a for a in shock if a not in assets]
        if unknown:
            raise ValueError(f"scenario {name!r}: asset(s) {unknown} not in data "
                             f"({', '.join(map(str, assets))})")
        for a, v in shock.items():
            _validate.number(f"scenario {name!r}: the shock to {a!r} (a price change, "
                             "-0.3 = -30%)", v, lo=-1)
    return scenarios


def _returns(returns, name="returns"):
    """A 1-D float array without NaN, or a DataArray; too few observations is an error."""
    where = ""
    if isinstance(returns, xr.DataArray) and returns.ndim > 1:
        counts = returns.notnull().sum("time")
        n = int(counts.min())
        if n < MIN_OBS:   # the series that has too few, named (of maybe hundreds)
            where = f" at {_validate.where(counts, counts.argmin(...))}"
    else:
        returns = _validate.floats(name, returns)   # a Dataset: "not 'method'"
        if returns.ndim != 1:
            raise ValueError(f"{name} must be 1-D or a DataArray with a time dim, got shape "
                             f"{returns.shape}")
        returns = returns[~np.isnan(returns)]
        n = returns.size
    if n < MIN_OBS:
        raise ValueError(f"{name}: {n} non-NaN observations{where}; risk estimates need "
                         f"at least {MIN_OBS}")
    return returns, n


def _sims(n_sims, seed) -> tuple[int, int]:
    """The Monte Carlo's draws and seed, checked (0 draws failed as an IndexError; 1e30
    as NumPy's "Maximum allowed dimension exceeded"): at most 10**8 draws (0.8 GB)."""
    return (_validate.count("n_sims", n_sims, hi=MAX_SIMS),
            _validate.integer("seed", seed, lo=0))


MAX_SIMS = 10 ** 8


def _pick(x, keep="time") -> str:
    """``.sel(...)`` of ``x``'s first column (over its dims but ``keep``), for messages
    that ask to select one; "" if ``x`` is no DataArray."""
    if not isinstance(x, xr.DataArray):
        return ""
    dims = [d for d in x.dims if d != keep]
    if not all(d in x.indexes for d in dims):
        return f".isel({', '.join(f'{d}=0' for d in dims)})"
    first = [x.indexes[d][0] for d in dims]
    return ".sel(" + ", ".join(f"{d}={(v.item() if isinstance(v, np.generic) else v)!r}"
                               for d, v in zip(dims, first)) + ")"


def _one_account(res, where):
    """The one account of ``res``, else refuse a result of several (a parameter sweep,
    one account per asset), saying how to select one. A one-asset result of independent
    accounts (equity on time and an asset dim of size 1) is its asset's account."""
    eq = res.equity
    if (not getattr(res, "group", True) and eq.dims[1:] == ("asset",)
            and eq.sizes["asset"] == 1 and hasattr(res, "isel")):
        return res.isel(asset=0)
    others = [d for d in eq.dims if d != "time"]
    if not others:
        return res
    sizes = ", ".join(f"{d} ({eq.sizes[d]})" for d in others)
    raise ValueError(f"{where} takes one account (equity on time only); this result's is "
                     f"also on {sizes}: select one, e.g. res{_pick(eq)} (its full "
                     "result; the assets as one account: backtest with group=True), or "
                     f"pass its returns, e.g. res.returns{_pick(eq)}")


def _with_assets(res):
    """``res`` with its positions and prices on asset (an asset picked by a scalar,
    ``res.sel(asset="IBM")``, back as a dim of size 1)."""
    return res._asset_dim() if hasattr(res, "_asset_dim") else res


# shared docstring blocks (quantlab._doc.fill): written once, used by many docstrings
_EX_RETURNS = """\
>>> import quantlab as ql
>>> from quantlab import risk
>>> ds = ql.data.load().isel(time=slice(0, 300))
>>> r = ql.data.returns(ds["close"]).sel(asset="IBM").values[1:]"""
_EX_RM = _EX_RETURNS + "\n>>> rm = risk.RiskManager()"
_DOC = {
    "rm": _EX_RM,
    "rm_sig": _EX_RM + """
>>> sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds)""",
    "report": _EX_RETURNS + "\n>>> report = risk.RiskManager().generate_risk_report(r)",
    "cov": """\
>>> import pandas as pd
>>> from quantlab import risk
>>> cov = pd.DataFrame([[0.04, 0.006], [0.006, 0.01]], index=["a", "b"], columns=["a", "b"])""",
    "var_params": """\
Parameters
----------
returns : array-like, pandas.Series or xarray.DataArray
    Per-period simple returns.
method : {'historical', 'parametric', 'cornish_fisher', 'monte_carlo'}, default 'historical'
    The estimator.
n_sims : int, default 100000
    Draws of ``monte_carlo`` (a Student t fitted by moments).
seed : int, default 0
    Random seed of ``monte_carlo``.""",
    "var_raises_examples": """\
Raises
------
ValueError
    If ``method`` is not one of ``METHODS`` (the message lists them).

Examples
--------
""" + _EX_RM,
    "kelly_params": """\
returns : array-like, pandas.Series or xarray.DataArray
    Per-period simple returns.
fraction : float, default 1.0
    Multiplier of μ / σ² (half Kelly = 0.5).
cap : float, default 1.0
    Largest fraction returned.""",
}

def _scalar(v):
    return float(v) if np.ndim(v) == 0 else v


class KellyFraction(float):
    """The capped Kelly fraction (a float, as before), with the estimate behind it.

    ``.uncapped`` (fraction x μ / σ², before the cap), ``.cap`` and ``.capped`` (True when
    the cap bound it). Returned by :meth:`RiskManager.calculate_kelly_criterion`.

    Parameters
    ----------
    capped : float
        The fraction after the cap.
    uncapped : float
        fraction x μ / σ².
    cap : float
        The cap.

    Examples
    --------
    >>> from quantlab import risk
    >>> k = risk.KellyFraction(1.0, uncapped=1.05, cap=1.0)
    >>> float(k), k.capped
    (1.0, True)
    """

    def __new__(cls, capped, uncapped, cap):
        obj = super().__new__(cls, capped)
        obj.uncapped, obj.cap = float(uncapped), float(cap)
        obj.capped = bool(uncapped > cap)
        return obj

    def __repr__(self):
        return f"KellyFraction({float(self)!r}, uncapped={self.uncapped!r}, cap={self.cap!r})"


@fill(_DOC)
class RiskManager:
    """Risk measures, sizing, drawdown control and reports.

    Losses are positive fractions at ``confidence_level``; ``max_drawdown_limit`` is a
    positive fraction.

    ``dd_mode`` (with ``dd_cooldown``) chooses how ``backtest`` enforces the limit:
    ``"cooldown"`` (default) flattens on a breach, waits ``dd_cooldown`` bars and re-enters
    with the peak restarted, so the run's max drawdown can exceed the limit over several
    episodes; ``"halt"`` measures from the all-time peak and stays flat for the rest of the
    run, so the limit holds (up to the breach bar's own move and costs).

    Parameters
    ----------
    confidence_level : float, default 0.95
        In (0.5, 1).
    max_drawdown_limit : float, default 0.20
        In (0, 1).
    dd_cooldown : int, default 21
        Bars flat after a breach (>= 0).
    periods : int, default 252
        Bars per year (>= 1).
    dd_mode : {'cooldown', 'halt'}, default 'cooldown'
        See above.

    Raises
    ------
    ValueError
        If a parameter is out of range (the message names it and the range).

    Examples
    --------
    >>> import quantlab as ql
    >>> from quantlab import risk
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> r = ql.data.returns(ds["close"]).sel(asset="IBM").values[1:]
    >>> rm = risk.RiskManager(confidence_level=0.95, max_drawdown_limit=0.2)
    >>> round(rm.calculate_var(r)["var_95"], 4)
    0.0471
    >>> rm.calculate_kelly_criterion(r)
    KellyFraction(1.0, uncapped=1.04915882224626, cap=1.0)
    """

    def __init__(self, confidence_level=0.95, max_drawdown_limit=0.20, dd_cooldown=21,
                 periods=252, dd_mode="cooldown"):
        self.confidence_level = _validate.number("confidence_level", confidence_level, 0.5,
                                                 1, lo_open=True, hi_open=True)
        self.max_drawdown_limit = _validate.number("max_drawdown_limit", max_drawdown_limit,
                                                   0, 1, lo_open=True, hi_open=True)
        self.dd_cooldown = _validate.integer("dd_cooldown", dd_cooldown, 0)
        self.periods = _validate.integer("periods", periods, 1)

        self.dd_mode = _validate.choice("dd_mode", dd_mode, DD_MODES)

    @property
    def cutoff(self) -> float:
        return 1.0 - self.confidence_level

    def _key(self, what):
        return f"{what}_{self.confidence_level * 100:g}".replace(".", "_")

    def _method(self, method):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")

    # ---- VaR / CVaR ----------------------------------------------------------------
    def _monte_carlo(self, r, n_sims, seed):
        """Draws from a Student t fitted by moments: ν = 4 + 6 / excess kurtosis (normal
        when the excess kurtosis is ≤ 0), scaled to the sample mean and std."""
        if isinstance(r, xr.DataArray):
            raise ValueError(f"method='monte_carlo' takes 1-D returns, got dims "
                             f"{dict(r.sizes)}: select one column, e.g. returns{_pick(r)}")
        mu, sd = r.mean(), r.std(ddof=1)
        k = ((r - mu) ** 4).mean() / r.var() ** 2 - 3.0
        rng = np.random.default_rng(seed)
        if k > 0:
            nu = 4.0 + 6.0 / k
            z = rng.standard_t(nu, n_sims) * math.sqrt((nu - 2) / nu)
        else:
            z = rng.standard_normal(n_sims)
        return mu + sd * z

    def calculate_var(self, returns, method="historical", n_sims=100_000, seed=0) -> dict:
        """Value at risk as a positive loss: ``{"var_95": ..., "method", "n"}``.

        {{var_params}}

        Returns
        -------
        dict
            ``var_<confidence>``, ``method`` and ``n`` (observations used).

        {{var_raises_examples}}
        >>> round(rm.calculate_var(r, method="parametric")["var_95"], 4)
        0.0513
        """
        self._method(method)
        n_sims, seed = _sims(n_sims, seed)   # whatever the method: "many" went unread
        r, n = _returns(returns)
        if method == "monte_carlo":
            v = -float(np.percentile(self._monte_carlo(r, n_sims, seed), self.cutoff * 100))
        else:
            v = -metrics.value_at_risk(r, cutoff=self.cutoff, method=method)
        return {self._key("var"): _scalar(v), "method": method, "n": n}

    def calculate_cvar(self, returns, method="historical", n_sims=100_000, seed=0) -> dict:
        """Conditional VaR (expected shortfall) as a positive loss: ``{"cvar_95": ...}``.

        {{var_params}}

        Returns
        -------
        dict
            ``cvar_<confidence>``, ``method`` and ``n``.

        {{var_raises_examples}}
        >>> round(rm.calculate_cvar(r)["cvar_95"], 4)
        0.0651
        """
        self._method(method)
        n_sims, seed = _sims(n_sims, seed)
        r, n = _returns(returns)
        if method == "monte_carlo":
            sims = np.sort(self._monte_carlo(r, n_sims, seed))
            v = -float(sims[: max(1, int(self.cutoff * n_sims))].mean())
        else:
            v = -metrics.conditional_value_at_risk(r, cutoff=self.cutoff, method=method)
        return {self._key("cvar"): _scalar(v), "method": method, "n": n}

    # ---- sizing --------------------------------------------------------------------
    def calculate_kelly_criterion(self, returns, fraction=1.0, cap=1.0):
        """Continuous-time Kelly fraction f* = μ / σ² of per-period returns (Merton 1969; Thorp 2006).

        Times ``fraction`` (half Kelly = 0.5), capped at ``cap``. ≤ 0 means no bet (do not
        short on it: the estimate's error is large).

        Parameters
        ----------
        {{kelly_params}}

        Returns
        -------
        KellyFraction or xarray.DataArray
            The capped value, as before: a ``KellyFraction`` (a float with ``.uncapped``,
            ``.cap``, ``.capped``) for 1-D returns, a DataArray with the coordinate
            ``kelly_uncapped`` for a DataArray; :meth:`kelly` reports both.

        Examples
        --------
        {{rm}}
        >>> k = rm.calculate_kelly_criterion(r, fraction=0.5)
        >>> round(float(k), 4), k.capped
        (0.5246, False)
        """
        fraction = _validate.number("fraction", fraction, 0, None, lo_open=True)
        cap = _validate.number("cap", cap, 0, None, lo_open=True, finite=False)
        r, _ = _returns(returns)
        kw = {"dim": "time"} if isinstance(r, xr.DataArray) else {}
        var = r.var("time", ddof=1) if isinstance(r, xr.DataArray) else r.var(ddof=1)
        mu = r.mean("time") if isinstance(r, xr.DataArray) else r.mean()
        # below 1e-10 of the mean square, the variance is rounding (a fund accruing 0.01% a
        # day: 1e-32), not risk: its Kelly fraction was 1e28, where a constant's raised
        flat = np.asarray(var <= FLAT_VARIANCE * (r * r).mean(**kw))
        if flat.any():
            where = (f" ({r.dims[-1]} {str(r[r.dims[-1]].values[np.flatnonzero(flat)[0]])!r})"
                     if isinstance(r, xr.DataArray) and flat.ndim else "")
            raise ValueError(f"returns have zero variance{where}: the Kelly fraction is "
                             "undefined")
        f = fraction * mu / var
        if isinstance(f, xr.DataArray):
            return f.clip(max=cap).assign_coords(kelly_uncapped=f)
        return KellyFraction(min(float(f), cap), float(f), cap)

    def kelly(self, returns, fraction=1.0, cap=1.0) -> dict:
        """Kelly sizing as a report.

        ``{"kelly": capped, "kelly_uncapped": fraction x μ/σ², "capped": whether the cap bound
        it, "fraction", "cap"}`` (full and half Kelly differ in ``kelly_uncapped`` even when
        both hit the cap).

        Parameters
        ----------
        {{kelly_params}}

        Returns
        -------
        dict

        Examples
        --------
        {{rm}}
        >>> out = rm.kelly(r)
        >>> round(out["kelly_uncapped"], 4), out["capped"]
        (1.0492, True)
        """
        k = self.calculate_kelly_criterion(returns, fraction, cap)
        if isinstance(k, xr.DataArray):
            unc = k["kelly_uncapped"].drop_vars("kelly_uncapped")
            return {"kelly": k.drop_vars("kelly_uncapped"), "kelly_uncapped": unc,
                    "capped": unc > cap, "fraction": float(fraction), "cap": float(cap)}
        return {"kelly": float(k), "kelly_uncapped": k.uncapped, "capped": k.capped,
                "fraction": float(fraction), "cap": float(cap)}

    def position_size(self, signal, returns, target_vol=0.15, window=63, max_leverage=1.0):
        """Volatility targeting: signal × min(max_leverage, target_vol / σ_t).

        σ_t is the annualised std of the ``window`` returns up to t (Moreira & Muir 2017);
        where it is 0 (a constant price) the scale is ``max_leverage``, where it is not yet
        known the result is NaN (hold), except that a signal of 0 stays 0 (an exit).

        Parameters
        ----------
        signal : xarray.DataArray
            Target exposure on (time, asset).
        returns : xarray.DataArray
            Returns on the same coordinates.
        target_vol : float, default 0.15
            Annualised volatility target, > 0.
        window : int, default 63
            Bars of σ_t, >= 2.
        max_leverage : float, default 1.0
            Largest scale, > 0 (inf: no cap).

        Returns
        -------
        xarray.DataArray
            The scaled signal.

        Raises
        ------
        TypeError, ValueError
            For an argument of the wrong type or out of range.
        DataError
            If signal and returns differ in their time or asset coordinates.

        Examples
        --------
        {{rm_sig}}
        >>> rm.position_size(sig, ql.data.returns(ds["close"])).isel(time=-1).round(3).values
        array([0.054,   nan, 0.151, 0.122])
        """
        target_vol = _validate.number("target_vol", target_vol, 0, lo_open=True)
        max_leverage = _validate.number("max_leverage", max_leverage, 0, lo_open=True,
                                        finite=False)
        window = _validate.integer("window", window, lo=2)   # a std needs 2 returns
        if not (isinstance(signal, xr.DataArray) and isinstance(returns, xr.DataArray)):
            raise TypeError("signal and returns must be xarray DataArrays on (time, asset)")
        try:   # an inner join kept the common labels only: other assets gave an empty signal
            # the same labels in another order are matched by label (they were refused)
            returns = _validate.on_labels(returns, signal, "returns", "signal")
            xr.align(signal, returns, join="exact")
        except ValueError:
            raise DataError("signal and returns must have the same time and asset "
                            "coordinates") from None
        sd = rolling.std(returns, window, min_periods=window // 2) * math.sqrt(self.periods)
        if math.isinf(max_leverage):   # σ = 0 (a constant price) would size it infinite
            flat = (sd == 0) & (signal != 0) & signal.notnull()
            if bool(flat.any()):
                at = _validate.where(flat, flat.argmax(...))
                raise DataError(f"zero volatility at {at} with max_leverage=inf: the "
                                "position would be infinite; give a finite max_leverage")
        with np.errstate(divide="ignore"):   # σ = 0: inf, capped; it was NaN, i.e. hold
            scale = (target_vol / sd).clip(max=max_leverage)
        return (signal * scale).clip(-max_leverage, max_leverage).where(signal != 0, 0.0)

    # ---- drawdowns -----------------------------------------------------------------
    def check_drawdown(self, equity, capital=None) -> dict:
        """Drawdown state of an equity curve against the limit.

        Current drawdown, max drawdown, whether |max drawdown| breached the limit, the breach
        episodes, bars under water now, and recovery times (bars from each drawdown's trough
        back to its prior peak) of the episodes that recovered.

        Parameters
        ----------
        equity : array-like, pandas.Series or xarray.DataArray
            One equity curve (1-D). A ruined account (equity 0 or below later: a short
            through a price jump) has a drawdown of -1 or below, not an error.
        capital : float, optional
            The starting capital (a backtest's ``init_cash``), > 0: a peak before the
            first bar, as the tear sheet counts it, so a first bar that already loses is
            under water. None: the first value is the start (then it must be > 0).

        Returns
        -------
        dict
            ``current_drawdown``, ``max_drawdown``, ``limit``, ``breached``, ``breaches``
            (episodes: ``peak``, ``trough``, ``recovered``, ``depth``, ``recovery_bars``),
            ``time_under_water``, ``recovery_times``. An episode under water from the
            first bar (its peak is ``capital``) has the first bar's label as its
            ``peak``: the capital is the account's value as that bar opens (as the tear
            sheet's drawdown table starts it).

        Raises
        ------
        ValueError
            If ``equity`` is not one curve (the message says how to select one), or has
            too few finite values, or ``capital`` is not a positive finite number.

        Examples
        --------
        >>> import pandas as pd
        >>> from quantlab import risk
        >>> out = risk.RiskManager().check_drawdown(pd.Series([100, 110, 99, 104, 120, 90.0]))
        >>> out["max_drawdown"], out["breached"], out["recovery_times"]
        (-0.25, True, [2])
        >>> eq = pd.Series([90, 75, 101.0])   # the first bar lost 10% of the capital, 100
        >>> round(risk.RiskManager().check_drawdown(eq)["max_drawdown"], 4)
        -0.1667
        >>> out = risk.RiskManager().check_drawdown(eq, capital=100)
        >>> round(out["max_drawdown"], 4), out["breaches"][0]["peak"]
        (-0.25, 0)
        """
        if capital is not None:
            capital = _validate.number("capital", capital, 0, lo_open=True)
        values = _validate.floats("equity", equity)
        if values.ndim != 1:   # was pandas' "Data must be 1-dimensional"
            raise ValueError(f"equity must be one curve (1-D), got shape {values.shape}"
                             + (f" (dims {dict(equity.sizes)}): select one, e.g. equity"
                                f"{_pick(equity, equity.dims[0])}"
                                if isinstance(equity, xr.DataArray) else ""))
        # a list's .index is a method: only a Series brings its index, a DataArray its
        # dim's (if it has one: a bare 'time' dim was a KeyError 'time', another name
        # xarray's "Dimension 'time' not found")
        index = (equity.index if isinstance(equity, pd.Series) else
                 equity.indexes.get(equity.dims[0]) if isinstance(equity, xr.DataArray)
                 else None)
        eq = pd.Series(values, index=index).dropna()
        # with the capital, one value is a curve (capital -> value): a 1-bar run
        if (np.isinf(eq.to_numpy()).any() or eq.size < (1 if capital else 2)
                or (capital is None and eq.iloc[0] <= 0)):
            need = ("finite values, at least 1" if capital else "at least 2 finite values "
                    "starting at a positive finite one (or pass capital=, the start)")
            raise ValueError(f"equity must hold {need}, got {eq.size} non-NaN value(s)"
                             + (f" starting at {eq.iloc[0]}" if eq.size else ""))
        start = eq.iloc[0] if capital is None else capital
        dd = pd.Series(underwater(eq.to_numpy(), start), index=eq.index)
        episodes, breaches, begin = [], [], None
        for i, v in enumerate(dd.to_numpy()):
            if v < 0 and begin is None:
                begin = i - 1   # the peak's bar; -1: the capital, before the first bar
            if (v == 0 or i == dd.size - 1) and begin is not None:
                seg = dd.iloc[max(begin, 0):i + 1]
                trough = int(np.argmin(seg.values)) + max(begin, 0)
                ep = {"peak": dd.index[max(begin, 0)], "trough": dd.index[trough],
                      "recovered": dd.index[i] if v == 0 else None,
                      "depth": float(seg.min()),
                      "recovery_bars": (i - trough) if v == 0 else None}
                episodes.append(ep)
                if abs(ep["depth"]) > self.max_drawdown_limit:
                    breaches.append(ep)
                begin = None
        if (eq > 0).all():
            prev = np.r_[start, eq.to_numpy()[:-1]]
            max_dd = float(metrics.max_drawdown(eq.to_numpy() / prev - 1.0))
        else:   # a ruined account (equity 0 or below): its returns through 0 are undefined,
            max_dd = float(dd.min())   # its drawdown from the positive peak is not (<= -1)
        under = int((dd.values[::-1] < 0).cumprod().sum())
        return {"current_drawdown": float(dd.iloc[-1]), "max_drawdown": max_dd,
                "limit": self.max_drawdown_limit,
                "breached": abs(max_dd) > self.max_drawdown_limit,
                "breaches": breaches, "time_under_water": under,
                "recovery_times": [e["recovery_bars"] for e in episodes
                                   if e["recovery_bars"] is not None]}

    def backtest_kwargs(self) -> dict:
        """The drawdown control for ``ql.backtest``.

        Flat after a breach of the limit; ``dd_mode="cooldown"``: ``dd_cooldown`` bars out, then
        back in with the peak reset; ``"halt"``: out for the rest of the run (see ``backtest``).

        Returns
        -------
        dict
            ``dd_limit``, ``dd_cooldown``, ``dd_mode``.

        Examples
        --------
        >>> from quantlab import risk
        >>> risk.RiskManager(max_drawdown_limit=0.2).backtest_kwargs()
        {'dd_limit': 0.2, 'dd_cooldown': 21, 'dd_mode': 'cooldown'}
        """
        return {"dd_limit": self.max_drawdown_limit, "dd_cooldown": self.dd_cooldown,
                "dd_mode": self.dd_mode}

    def backtest(self, data, signal, **kw):
        """``ql.backtest`` with this manager's drawdown control.

        Parameters
        ----------
        data : xarray.Dataset
            Prices.
        signal : xarray.DataArray
            Target exposure.
        **kw
            Other options of :func:`quantlab.backtest`.

        Returns
        -------
        BacktestResult

        Examples
        --------
        {{rm_sig}}
        >>> rm.backtest(ds, sig).metrics()["max_drawdown"].round(3).values
        array([-0.152,    nan, -0.131, -0.294])
        """

        return backtest(data, signal, **{**self.backtest_kwargs(), **kw})

    # ---- stress tests --------------------------------------------------------------
    def stress_test(self, portfolio, scenarios=None, data=None) -> pd.DataFrame:
        """P&L (fraction of equity) under historical windows present in the data and hypothetical shocks.

        Hypothetical: ``equities -20%`` (every asset of class equity drops 20%), ``vol x3``
        (parametric VaR with three times the volatility), ``correlations -> 1`` (parametric VaR
        with σ = Σ|w_i|σ_i: all correlations 1 in a long-only book; in a long/short book the
        legs stop hedging too, correlation -1 between a long and a short, the worst case).
        Both are zero-mean one-bar VaRs, Φ⁻¹(1 - confidence) x σ.

        Parameters
        ----------
        portfolio : BacktestResult or pandas.Series
            A ``BacktestResult`` of one account (its equity for the historical windows, its
            last bar's weights for the shocks; a sweep's: ``res.sel(window=10)``; a
            one-asset result is its asset's account) or a pandas Series of asset weights
            with ``data``.
        scenarios : dict, optional
            Adds ``{name: {asset: shock}}`` price shocks: assets of the data, shocks
            finite and >= -1 (-0.3 = a 30% fall); a name ``"equities -20%"`` replaces that
            scenario, another built-in name is refused.
        data : xarray.Dataset, optional
            Prices for a weights Series.

        Returns
        -------
        pandas.DataFrame
            One row per scenario: ``kind``, ``pnl``, ``covered``, ``window``.

        Raises
        ------
        ValueError
            If a result has several accounts (select one first), or a scenario names an
            asset not in the data or a shock that is not a finite number >= -1.

        Examples
        --------
        {{rm}}
        >>> import pandas as pd
        >>> table = rm.stress_test(pd.Series({"IBM": 0.5, "MSFT": 0.5}), data=ds)
        >>> table.columns.tolist(), table.index[-1]
        (['kind', 'pnl', 'covered', 'window'], 'correlations -> 1')
        """
        if hasattr(portfolio, "equity"):
            portfolio = _one_account(portfolio, "stress_test")
            eq = portfolio.equity
            portfolio = _with_assets(portfolio)
            prices = portfolio.prices
            # an asset not listed yet holds nothing (its NaN value made every shock's
            # P&L NaN: a group=True run over a later listing)
            value = (portfolio.positions * prices.ffill("time")).isel(time=-1).fillna(0.0)
            w = value / float(eq.isel(time=-1))
            w = (w.to_series() if "asset" in w.dims
                 else pd.Series({str(portfolio.positions.asset.values): float(w)}))
            ds = data if data is not None else prices.to_dataset(name="close")
        else:
            if data is None:
                raise ValueError("pass data= (a Dataset) with a weights Series")
            w = pd.Series(portfolio, dtype=float)
            ds = data
            bad = [a for a, v in w.items() if not math.isfinite(v)]
            if bad:   # NaN or inf made every P&L NaN, or inf, without a word
                raise ValueError(f"weights must be finite numbers; {bad[0]!r} is {w[bad[0]]}")
            unknown = [a for a in w.index if a not in ds.indexes["asset"]]
            if unknown:
                raise ValueError(f"weights name asset(s) {unknown} not in data "
                                 f"({', '.join(map(str, ds.asset.values))})")
            r = simple_returns(ds["close"].sel(asset=list(w.index))).fillna(0.0)
            eq = (1 + (r * xr.DataArray(w, dims="asset")).sum("asset")).cumprod("time")
        rows = []
        times = eq.indexes["time"]
        for name, (a, b) in HISTORICAL_SCENARIOS.items():
            covered = times[0] <= pd.Timestamp(a) and pd.Timestamp(b) <= times[-1]
            pnl = float(eq.sel(time=b, method="ffill") / eq.sel(time=a, method="bfill") - 1) \
                if covered else np.nan
            rows.append({"scenario": name, "kind": "historical", "pnl": pnl,
                         "covered": covered, "window": f"{a} .. {b}"})
        # time first: an (asset, time) panel's table had the dates as columns (the
        # parametric scenarios' covariance of other numbers, silently)
        r = simple_returns(ds["close"].sel(asset=list(w.index))).transpose("time", ...)
        r = r.to_pandas().dropna(how="all")
        classes = (ds["asset_class"].sel(asset=list(w.index)).to_series()
                   if "asset_class" in ds.coords else pd.Series("equity", index=w.index))
        shocks = {"equities -20%": {a: -0.2 for a in w.index if classes.get(a) == "equity"}}
        shocks.update(_scenarios(scenarios, ds.indexes["asset"],
                                 (*HISTORICAL_SCENARIOS, "vol x3", "correlations -> 1")))
        for name, shock in shocks.items():
            pnl = float(sum(w.get(a, 0.0) * s for a, s in shock.items()))
            rows.append({"scenario": name, "kind": "hypothetical", "pnl": pnl,
                         "covered": True, "window": ""})
        # fewer than 2 rows: no covariance (numpy's cov warned "Degrees of freedom <= 0")
        cov = r.cov() if len(r) > 1 else pd.DataFrame(np.nan, r.columns, r.columns)
        cov = cov.reindex(index=w.index, columns=w.index).to_numpy()
        wv = w.to_numpy()
        held = wv != 0
        # a held asset's covariance needs 2 returns (a 2-bar run has 1): its NaN was filled
        # with 0, a P&L of 0 for the vol scenarios; an asset not held weighs nothing
        short = [a for a, h, c in zip(w.index, held, cov) if h and np.isnan(c[held]).any()]
        cov = np.nan_to_num(cov, nan=0.0)
        sd = np.sqrt(np.diag(cov))
        z = NormalDist().inv_cdf(self.cutoff)
        level = fmt.pct(self.confidence_level, None, sign=False)   # 97.5 % read "98%"
        window = f"1-bar parametric VaR {level}"
        for name, var in (("vol x3", 3 * math.sqrt(max(wv @ cov @ wv, 0))),
                          ("correlations -> 1", float(np.abs(wv) @ sd))):
            rows.append({"scenario": name, "kind": "hypothetical",
                         "pnl": np.nan if short else z * var + 0.0, "covered": not short,
                         "window": f"{window}; too few returns of {', '.join(map(str, short))}"
                         if short else window})
        return pd.DataFrame(rows).set_index("scenario")

    # ---- risk budgets --------------------------------------------------------------
    def risk_budget(self, returns_or_cov, weights=None, budgets=None) -> pd.DataFrame:
        """Risk contributions of ``weights`` next to the budgets.

        Parameters
        ----------
        returns_or_cov : pandas.DataFrame or xarray.DataArray
            A covariance matrix (DataFrame) or a (time x asset) returns DataFrame/DataArray.
        weights : array-like, optional
            Default: the risk-parity weights for ``budgets``.
        budgets : array-like or dict, optional
            Risk budgets, one positive number per asset (a dict: by asset), normalised
            to sum 1; default equal. Others are a ValueError.

        Returns
        -------
        pandas.DataFrame
            ``weight``, ``risk_contribution``, ``budget`` per asset.

        Examples
        --------
        {{rm}}
        >>> rets = ql.data.returns(ds["close"]).sel(asset=["IBM", "MSFT"]).to_pandas().dropna()
        >>> rm.risk_budget(rets).round(3)
               weight  risk_contribution  budget
        asset
        IBM     0.532                0.5     0.5
        MSFT    0.468                0.5     0.5
        """
        cov = _cov(returns_or_cov)
        if weights is None:
            weights = risk_parity_weights(cov, budgets)
        w = pd.Series(_weights(weights, len(cov)), index=cov.index, dtype=float)
        # checked as risk_parity_weights checks them: a budget of -1, NaN or all 0 was
        # shown normalised (-1 -> -1.0, NaN, NaN) beside weights it had not shaped
        b = pd.Series(_budgets(budgets, cov.index), index=cov.index, dtype=float)
        return pd.DataFrame({"weight": w, "risk_contribution": risk_contributions(cov, w),
                             "budget": b})

    # ---- report --------------------------------------------------------------------
    def generate_risk_report(self, result_or_returns) -> "RiskReport":
        """A risk report of a backtest result (or of a returns series).

        VaR/CVaR by method, drawdowns, stress tests, risk contributions and P&L attribution per
        asset. Drawdowns count the start as a peak (a backtest's ``init_cash``; 1 before a
        returns series' first return), as the tear sheet does.

        Parameters
        ----------
        result_or_returns : BacktestResult or array-like
            A backtest of one account (a sweep's: ``res.sel(window=10, asset="IBM")``; a
            one-asset result is its asset's account), or one account's per-period returns
            (NaN: no observation, skipped; a Series' or DataArray's dates label the
            drawdowns).

        Raises
        ------
        ValueError
            If the result has several accounts or the returns several columns (the
            message says how to select one), or fewer than 20 non-NaN returns.

        Returns
        -------
        RiskReport

        Examples
        --------
        {{rm}}
        >>> rm.generate_risk_report(r).var.index.tolist()
        ['historical', 'parametric', 'cornish_fisher', 'monte_carlo']
        """
        res = result_or_returns if hasattr(result_or_returns, "equity") else None
        if res is not None:
            res = _one_account(res, "generate_risk_report")
            r = res.returns
        else:
            r = result_or_returns
            if isinstance(r, xr.DataArray) and r.ndim > 1:   # was monte_carlo's "1-D"
                raise ValueError(f"generate_risk_report takes one account's returns (1-D), "
                                 f"got dims {dict(r.sizes)}: select one, e.g. "
                                 f"returns{_pick(r)}")
        rr, _ = _returns(r)
        var = pd.DataFrame({m: {"VaR": self.calculate_var(rr, m)[self._key("var")],
                                "CVaR": self.calculate_cvar(rr, m)[self._key("cvar")]}
                            for m in METHODS}).T
        # the start is a peak, as in the tear sheet: a first bar that lost was not counted
        if res is not None:
            eq, capital = res.equity, res.init_cash
        else:   # dated as the returns are (the episodes were bar numbers)
            index = (r.index if isinstance(r, pd.Series) else
                     r.indexes.get(r.dims[0]) if isinstance(r, xr.DataArray) else None)
            if index is not None:
                index = index[~np.isnan(_validate.floats("returns", r))]
            eq, capital = pd.Series(np.cumprod(1 + rr), index=index), 1.0
        dd = self.check_drawdown(eq, capital=capital)
        report = RiskReport(confidence_level=self.confidence_level, var=var, drawdown=dd,
                            equity=eq if isinstance(eq, xr.DataArray) else None,
                            dd_mode=getattr(res, "dd_mode", None), capital=capital)
        held = None if res is None else _with_assets(res)
        if held is not None and "asset" in held.positions.dims:
            report.stress = self.stress_test(res)
            px = held.prices.ffill("time")
            pnl = (shifted(held.positions) * px.diff("time")).sum("time").to_series()
            report.attribution = (pnl / res.init_cash).rename("pnl_fraction")
            # means over the account's observations (res.returns' NaN bars are none); an
            # asset not listed yet holds nothing: its value is 0, not unknown (its mean
            # over its own bars only, over the equity's mean over all bars, overstated
            # a late listing's weight: GOOG's 0.28 for 0.19)
            obs = res.returns.notnull()
            value = (held.positions * px).fillna(0.0).where(obs).mean("time")
            w = (value / float(res.equity.where(obs).mean("time"))).to_series()
            cov = (px / shifted(px) - 1).where(obs).to_pandas().cov()
            # an asset never priced in the run (listed later) holds nothing and has no
            # variance: its NaN covariance made every contribution NaN
            priced = held.prices.notnull().any("time").to_numpy()
            w, cov = w[priced], cov.loc[priced, priced]
            if w.abs().sum() > 0:
                report.contributions = self.risk_budget(cov, weights=w)
        return report


@fill(_DOC)
@dataclass(repr=False)
class RiskReport:
    """Tables of a risk report; ``to_html()`` (self-contained, BokehJS inline) and the notebook's rich display.

    :meth:`RiskManager.generate_risk_report` builds it; each parameter below is kept as
    an attribute of the same name.

    Parameters
    ----------
    confidence_level : float
        The VaR/CVaR confidence.
    var : pandas.DataFrame
        VaR and CVaR per method (losses as positive fractions).
    drawdown : dict
        The drawdown check.
    equity : xarray.DataArray or None
        The equity curve, when built from a backtest.
    stress : pandas.DataFrame or None
        Stress-test results.
    contributions : pandas.DataFrame or None
        Risk contributions.
    attribution : pandas.Series or None
        Return attribution.
    extra : dict, optional
        Further tables by name.
    dd_mode : str or None
        The backtest's drawdown control ("cooldown", "halt").
    capital : float or None
        The equity's starting value (a backtest's ``init_cash``), counted as a peak by
        :meth:`drawdown_series`; None: the equity's first value is the start.

    Examples
    --------
    {{report}}
    >>> report.var.round(4)
                       VaR    CVaR
    historical      0.0471  0.0651
    parametric      0.0513  0.0645
    cornish_fisher  0.0496  0.0755
    monte_carlo     0.0495  0.0694
    """

    confidence_level: float
    var: pd.DataFrame
    drawdown: dict
    equity: xr.DataArray | None = None
    stress: pd.DataFrame | None = None
    contributions: pd.DataFrame | None = None
    attribution: pd.Series | None = None
    extra: dict = field(default_factory=dict)
    dd_mode: str | None = None   # the backtest's drawdown control ("cooldown", "halt")
    capital: float | None = None   # the equity's start, a peak (None: its first value)

    @property
    def drawdown_control(self) -> str:
        """Which drawdown control produced the equity, in words.

        Examples
        --------
        {{report}}
        >>> report.drawdown_control
        'none in the backtest'
        """
        return {None: "none in the backtest",
                "cooldown": "cooldown (flat dd_cooldown bars, then re-entry with the peak "
                            "restarted)",
                "halt": "halt (all-time peak; flat for the rest of the run)"}[self.dd_mode]

    def __repr__(self):
        v = self.var.loc["historical"]
        level, limit = (fmt.pct(x, None, sign=False)
                        for x in (self.confidence_level, self.drawdown["limit"]))
        return (f"RiskReport({level}: historical VaR "
                f"{fmt.pct(v['VaR'], 2, sign=False)}, CVaR {fmt.pct(v['CVaR'], 2, sign=False)}; "
                f"max drawdown {fmt.pct(self.drawdown['max_drawdown'], sign=False)}, "
                f"{len(self.drawdown['breaches'])} breach(es) of "
                f"{limit}; drawdown control: {self.dd_mode or 'none'})")

    def tables_html(self) -> str:
        """The report's tables as HTML fragments (no figure).

        Returns
        -------
        str
            HTML fragments: an h3 heading and a table per section.

        Examples
        --------
        {{report}}
        >>> report.tables_html()[:31]
        '<h3>Value at risk, 95 % (losses'
        """
        d = dict(self.drawdown)   # a report made by hand may lack entries: n/a
        rec = d.get("recovery_times") or []
        breached = d.get("breached")
        # read as a tear sheet's: percentages, bars, yes/no (the raw dict printed
        # -0.569547 beside a limit of 0.2 of the other sign and 108 without a unit)
        dd = {"Current drawdown": fmt.pct(d.get("current_drawdown", np.nan), sign=False),
              "Max drawdown": fmt.pct(d.get("max_drawdown", np.nan), sign=False),
              "Limit (max drawdown beyond it: a breach)": fmt.pct(-d.get("limit", np.nan),
                                                                  sign=False),
              "Breached": fmt.NA if breached is None else "yes" if breached else "no",
              "Breaches": fmt.count(len(d.get("breaches") or [])),
              "Time under water now": fmt.duration(d.get("time_under_water", np.nan)),
              "Median recovery (trough to peak)": fmt.duration(
                  float(np.median(rec)) if rec else np.nan),
              "Drawdown control": self.drawdown_control}
        na = fmt.NA   # pandas wrote "NaN" where a value cannot be computed

        def pct(t, sign):   # percentages as the drawdowns beside them (it read 0.0471)
            t = t.to_frame() if isinstance(t, pd.Series) else t.copy()
            for c in t.columns:
                if pd.api.types.is_float_dtype(t[c]):
                    t[c] = [fmt.pct(v, 2, sign=sign) for v in t[c]]
            return t.to_html(na_rep=na)

        level = fmt.pct(self.confidence_level, None, sign=False)
        parts = [f"<h3>Value at risk, {level} (losses, positive)</h3>",
                 pct(self.var, False),
                 "<h3>Drawdowns</h3>", pd.Series(dd).to_frame("value").to_html(na_rep=na)]
        for title, t, sign in (("Stress tests (P&L, % of equity; n/a: a window the data do "
                                "not cover)", self.stress, True),
                               ("Risk contributions", self.contributions, False),
                               ("P&L attribution per asset (% of initial cash)",
                                self.attribution, True)):
            if t is not None:
                parts += [f"<h3>{title}</h3>", pct(t, sign)]
        return "\n".join(parts)

    def drawdown_series(self) -> xr.DataArray | None:
        """Drawdown of the equity (fraction below its running peak, <= 0), or None.

        The peak includes ``capital`` (the tear sheet's drawdown, ``res.plot()``'s).

        Returns
        -------
        xarray.DataArray or None

        Examples
        --------
        {{report}}
        >>> report.drawdown_series() is None  # built from returns: no equity curve
        True
        """
        if self.equity is None:
            return None
        v = self.equity.values
        start = self.capital if self.capital is not None else v[0]
        return self.equity.copy(data=underwater(v, start)).rename("drawdown")

    def figure(self):
        """The drawdown as a bokeh figure (``ql.plots.risk_report_figure``), or None.

        Returns
        -------
        bokeh.plotting.figure or None
            None when the report has no equity curve (built from returns).

        Examples
        --------
        {{rm_sig}}
        >>> bt = rm.backtest(ds.sel(asset=["IBM"]), sig.sel(asset=["IBM"]), group=True)
        >>> type(rm.generate_risk_report(bt).figure()).__name__
        'figure'
        """
        from quantlab import plots  # lazy: the face imports bokeh; research must not

        return plots.risk_report_figure(self)

    def to_html(self) -> str:
        """A self-contained HTML page (BokehJS inlined: opens offline).

        Returns
        -------
        str
            The page.

        Examples
        --------
        {{report}}
        >>> report.to_html().startswith("<html><body><h2")
        True
        """
        from quantlab import plots  # lazy: the face imports bokeh; research must not

        return plots.risk_report_html(self)

    def _repr_html_(self) -> str:
        return f"<h2>Risk report</h2>{self.tables_html()}"


# ---- risk parity ---------------------------------------------------------------------

def _weights(weights, n) -> np.ndarray:
    """``weights`` as n finite floats (NaN made every contribution NaN)."""
    try:
        w = np.asarray(weights, dtype=float)
    except (TypeError, ValueError):   # a string, a dict: numpy's words named no argument
        raise TypeError(f"weights must be {n} finite numbers, got "
                        f"{_validate._show(weights)}") from None
    if w.shape != (n,) or not np.isfinite(w).all():
        raise ValueError(f"weights must be {n} finite numbers, got "
                         f"{_validate._show(w.tolist())}")
    return w


def _budgets(budgets, index) -> np.ndarray:
    """Risk budgets, one positive finite number per asset of ``index`` (a dict: by
    asset), normalised to sum 1; None: equal. NaN made NaN weights; a list of the wrong
    length failed in pandas."""
    n = len(index)
    if budgets is None:   # normalised too: 1/n sums to 1 +- an ulp (the weights' bits)
        budgets = np.full(n, 1.0 / n)
    if isinstance(budgets, dict):
        unknown = [k for k in budgets if k not in index]
        if unknown:
            raise ValueError(f"budgets name asset(s) {unknown} not in the covariance "
                             f"({', '.join(map(str, index))})")
        budgets = pd.Series(budgets, index=index, dtype=float)
    try:
        b = np.asarray(budgets, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"budgets must be {n} positive numbers, got "
                        f"{_validate._show(budgets)}") from None
    if b.shape != (n,) or not np.all(np.isfinite(b) & (b > 0)):   # NaN: NaN weights
        raise ValueError(f"budgets must be {n} positive numbers, one per asset "
                         f"({', '.join(map(str, index))}), got {_validate._show(b.tolist())}")
    return b / b.sum()


def _cov(x) -> pd.DataFrame:
    if isinstance(x, xr.DataArray):
        x = x.transpose("time", ...).to_pandas()
    if isinstance(x, pd.DataFrame) and x.shape[0] == x.shape[1] and (x.index == x.columns).all():
        return x.astype(float)
    if isinstance(x, pd.DataFrame):
        return x.cov()
    a = np.asarray(x, dtype=float)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError("pass a square covariance matrix or a (time x asset) returns table")
    return pd.DataFrame(a)


@fill(_DOC)
def risk_contributions(cov, weights) -> pd.Series:
    """Each asset's share of portfolio variance: w_i (Σw)_i / w'Σw (sums to 1).

    Parameters
    ----------
    cov : pandas.DataFrame or array-like
        Covariance matrix Σ.
    weights : array-like or pandas.Series
        Portfolio weights w.

    Returns
    -------
    pandas.Series
        Named ``risk_contribution``.

    Examples
    --------
    {{cov}}
    >>> risk.risk_contributions(cov, [1 / 3, 2 / 3]).round(4)
    a    0.5
    b    0.5
    Name: risk_contribution, dtype: float64
    """
    c = _cov(cov)
    w = _weights(weights, len(c))
    var = w @ c.to_numpy() @ w
    if var <= 0:
        raise ValueError("portfolio variance is zero: risk contributions are undefined")
    return pd.Series(w * (c.to_numpy() @ w) / var, index=c.index, name="risk_contribution")


@fill(_DOC)
def risk_parity_weights(cov, budgets=None, tol=1e-12, max_iter=100) -> pd.Series:
    """Long-only weights whose risk contributions equal ``budgets`` (default equal).

    Newton's method on Spinu's (2013) convex problem min ½ y'Σy - Σ b_i ln y_i, whose
    solution scaled to sum 1 is the risk-budgeting portfolio (no scipy needed; converges to
    machine precision in a few steps).

    Parameters
    ----------
    cov : pandas.DataFrame or array-like
        Covariance matrix Σ (symmetric positive definite).
    budgets : array-like, optional
        Risk budgets b (positive; normalised to sum 1); default equal.
    tol : float, default 1e-12
        Convergence tolerance: the gradient Σy - b/y at most ``tol`` x max(b/y), its
        terms' scale (an absolute one is below the rounding of a large Σ).
    max_iter : int, default 100
        Newton steps at most (0: the inverse-volatility start); a RuntimeWarning says
        when they end before ``tol``.

    Returns
    -------
    pandas.Series
        Weights summing to 1, named ``weight``.

    Raises
    ------
    ValueError
        If ``cov`` is not a valid covariance matrix or ``budgets`` does not fit it, or
        ``tol``/``max_iter`` is out of range; if a long-only portfolio of ``cov`` has
        zero variance (a correlation of -1), where no risk-parity weights exist.
    TypeError
        If ``tol`` is not a number or ``max_iter`` not an integer.

    Examples
    --------
    {{cov}}
    >>> risk.risk_parity_weights(cov).round(4)
    a    0.3333
    b    0.6667
    Name: weight, dtype: float64
    """
    tol = _validate.number("tol", tol, 0)   # True ran as 1.0, "1e-9" crashed in numpy
    max_iter = _validate.count("max_iter", max_iter, 0)   # 0: the inverse-vol start
    c = _cov(cov)
    S = c.to_numpy()
    n = S.shape[0]
    # named (of maybe hundreds): NaN is an asset with < 2 returns (a later listing), 0 a
    # constant price; a NaN covariance alone, two assets without common returns
    bad = [str(a) for a, v in zip(c.index, np.diag(S)) if not (np.isfinite(v) and v > 0)]
    if not bad and not np.isfinite(S).all():
        i, j = np.argwhere(~np.isfinite(S))[0]
        bad = [f"{c.index[i]} with {c.index[j]}"]
    if bad:
        raise ValueError(f"covariance must be finite with positive variances; not for "
                         f"{', '.join(bad)} (fewer than 2 returns, or a constant price?)")
    if not np.allclose(S, S.T, rtol=1e-9, atol=0):   # the Newton steps assume Σ = Σ'
        raise ValueError("covariance must be symmetric")
    b = _budgets(budgets, c.index)
    y = b / np.sqrt(np.diag(S))
    gap = 0.0   # the last gradient relative to its terms (0: max_iter=0, asked for)
    for _ in range(max_iter):
        by = b / y
        g = S @ y - by
        gap = np.abs(g).max() / by.max()   # b, y > 0
        H = S + np.diag(b / y ** 2)
        try:
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:   # was numpy's bare "Singular matrix"
            raise ValueError(_HEDGED) from None
        t = 1.0
        while np.any(y - t * step <= 0):   # stay in the positive orthant
            t /= 2
        y = y - t * step
        if gap < tol:
            break
    else:
        if max_iter:   # the weights of the last step were returned without a word
            warnings.warn(f"risk_parity_weights: {max_iter} Newton steps ended before "
                          f"tol={tol:g} (gradient {gap:.2g} of its scale): the weights are "
                          "the last step's; raise max_iter or tol", RuntimeWarning,
                          stacklevel=2)
    w = y / y.sum()
    # a zero-variance long-only portfolio: Newton walks y off to infinity towards it, and
    # stopped anywhere (or in a singular solve) by rounding: weights one run, an error
    # the next, for streams r and -2r; variance left below 1e-12 of its undiversified
    # scale is that hedge, whose risk contributions are 0/0
    if w @ S @ w <= 1e-12 * (w @ np.sqrt(np.diag(S))) ** 2:
        raise ValueError(_HEDGED)
    return pd.Series(w, index=c.index, name="weight")


_HEDGED = ("covariance is singular along long-only weights (a perfect hedge, e.g. "
           "correlation -1: some long-only portfolio has zero variance); risk-parity "
           "weights do not exist")
