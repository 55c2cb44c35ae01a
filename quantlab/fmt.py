"""Number formatting for everything shown to a person (tear sheets, summaries, tables).

One kind per quantity: percentages as % (``pct(9.201) == "+920.1 %"``), money with
thousands separators (``money(37926.2) == "37,926"``) or compact units on axes
(``money(2e6, compact=True) == "2.0M"``), counts as integers, ratios to 2 decimals,
durations in bars or days. :func:`metric` formats a value by its metric name through the
one table :data:`KINDS` (every name of ``ql.metrics`` and of ``res.metrics()``); an unknown
name gets :func:`general`.

Missing and infinite values: NaN (and None) -> ``"n/a"``, ±inf -> ``"inf"`` / ``"-inf"``
(a profit factor without losses is inf). A value that rounds to zero is shown unsigned
(never ``"-0.0 %"``). Non-numbers (strings, complex) are a TypeError naming the argument.

Pure formatting (a research module: no bokeh); the same rules for bokeh axes, in
JavaScript, are ``ql.plots.money_tick_formatter`` and ``ql.plots.pct_tick_formatter``.
"""
from __future__ import annotations

import datetime
import math
import numbers

import numpy as np
import pandas as pd

from quantlab import _validate

__all__ = ["KINDS", "metric", "kind", "label", "pct", "money", "count", "ratio",
           "duration", "general", "date", "dates"]

NA = "n/a"

# metric name -> kind. "return": signed % (a change); "pct": unsigned % (a level or
# share); "ratio": 2 decimals; "money"; "count"; "duration": bars
KINDS = {
    # returns metrics (quantlab.metrics.METRICS)
    "total_return": "return", "annual_return": "return", "cum_returns_final": "return",
    "max_drawdown": "return", "value_at_risk": "return",
    "conditional_value_at_risk": "return", "alpha": "return",
    "annual_volatility": "pct", "downside_risk": "pct", "tracking_error": "pct",
    "win_rate": "pct",
    "sharpe_ratio": "ratio", "sortino_ratio": "ratio", "calmar_ratio": "ratio",
    "tail_ratio": "ratio", "stability_of_timeseries": "ratio", "beta": "ratio",
    "up_capture": "ratio", "down_capture": "ratio", "information_ratio": "ratio",
    "profit_factor": "ratio",
    "recovery_time": "duration", "drawdown_duration": "duration",
    # backtest-only (res.metrics(), metrics_only runs)
    "n_trades": "count", "n_orders": "count", "fees_paid": "money", "turnover": "ratio",
    "exposure": "pct", "trade_win_rate": "pct", "trade_profit_factor": "ratio",
    # tear sheet and summary rows
    "periods": "count", "init_cash": "money", "final_equity": "money", "pnl": "money",
    "trade_return": "return", "depth": "return", "length": "duration",
    # RiskManager's var_95/cvar_95 (calculate_var, calculate_cvar): losses as positive
    # fractions, so unsigned (value_at_risk's sign showed a 2.1 % loss as "+2.1 %")
    "var": "pct", "cvar": "pct",
}

_LABELS = {"value_at_risk": "VaR", "conditional_value_at_risk": "CVaR (expected shortfall)",
           "cum_returns_final": "Cumulative return", "stability_of_timeseries": "Stability (R²)",
           "var": "VaR (loss)", "cvar": "CVaR (loss)", "n_trades": "Trades",
           "n_orders": "Orders", "fees_paid": "Fees paid",
           "pnl": "P&L", "init_cash": "Initial cash", "drawdown_duration":
           "Longest drawdown", "recovery_time": "Max-drawdown recovery"}


def _real(name, x) -> float:
    """x as a float (None -> NaN); a TypeError for anything that is not a real number."""
    if x is None:
        return math.nan
    if hasattr(x, "ndim") and getattr(x, "ndim") == 0 and hasattr(x, "item"):
        x = x.item()   # 0-d numpy / xarray
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {x!r} "
                        f"({type(x).__name__})")
    return float(x)


def _special(v):
    if math.isnan(v):
        return NA
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return None


def _unsigned_zero(s: str) -> str:
    """'-0.0' -> '0.0': a value that rounds to zero carries no sign."""
    if s.startswith(("-", "+")) and not any(c in "123456789" for c in s):
        return s[1:]
    return s


def pct(x, digits: int = 1, sign: bool = True) -> str:
    """A fraction as a percentage, with thousands separators from 10,000 %.

    Parameters
    ----------
    x : float
        The value.
    digits : int or None, default 1
        Decimals; None: as few as the value needs, at most 3 (a level: 97.5 %, 95 %).
    sign : bool, default True
        Show ``+`` on positive values.

    Returns
    -------
    str

    Raises
    ------
    TypeError
        If ``x`` is not a real number (None is NaN, shown as ``n/a``).

    Examples
    --------
    >>> from quantlab import fmt
    >>> fmt.pct(9.201)
    '+920.1 %'
    >>> fmt.pct(0.25, sign=False)
    '25.0 %'
    >>> fmt.pct(0.975, None, sign=False), fmt.pct(0.95, None, sign=False), fmt.pct(1 / 3, None)
    ('97.5 %', '95 %', '+33.333 %')
    """
    v = _real("pct value", x)
    if digits is not None:
        digits = _validate.integer("digits", digits, 0, 12)
    sp = _special(v)
    if sp:
        return sp + (" %" if sp != NA else "")
    # None: at most 3 decimals (0.95 * 100 is 95.00000000000001; a limit of 1/3 is not
    # 12 digits' worth), trailing zeros cut
    s = f"{100 * v:{'+' if sign else ''},.{3 if digits is None else digits}f}"
    if digits is None and "." in s:
        s = s.rstrip("0").rstrip(".")
    s = _unsigned_zero(s)
    return f"{s} %"


_UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))


def money(x, compact: bool = False, currency: str = "") -> str:
    """Money: ``"37,926"`` (cents only below 1,000: ``"12.50"``; zero is ``"0"``).

    ``compact=True`` for axes and tight cells: ``"1.0M"``, ``"37.9k"``, ``"2.5B"``, ``"1.0T"``.

    Parameters
    ----------
    x : float
        The value.
    compact : bool, default False
        Abbreviate with k/M/B/T.
    currency : str, default ''
        Prefix, e.g. ``"$"``.

    Returns
    -------
    str

    Raises
    ------
    TypeError
        If ``x`` is not a real number (None is NaN, shown as ``n/a``).

    Examples
    --------
    >>> from quantlab import fmt
    >>> fmt.money(37926.4), fmt.money(12.5), fmt.money(1e6, compact=True)
    ('37,926', '12.50', '1.0M')
    """
    v = _real("money value", x)
    if not isinstance(currency, str):
        raise TypeError(f"currency must be a string such as '$', got {currency!r}")
    sp = _special(v)
    if sp:
        return sp
    sign = "-" if v < 0 else ""
    a = abs(v)
    if compact:
        for scale, unit in _UNITS:
            if round(a / scale, 1) >= 1 and (a >= scale or unit != "k"):
                if a / scale >= 1e3 and unit == "T":
                    return f"{sign}{currency}{a / scale:,.0f}{unit}"
                body = f"{a / scale:.1f}{unit}"
                break
        else:
            body = f"{a:.2f}".rstrip("0").rstrip(".")
    else:
        body = f"{a:,.0f}" if a >= 1e3 or a == 0 else f"{a:.2f}"
    return _unsigned_zero(f"{sign}{currency}{body}")


def count(x) -> str:
    """An integer count with thousands separators.

    Parameters
    ----------
    x : float
        The value.

    Returns
    -------
    str

    Raises
    ------
    TypeError
        If ``x`` is not a real number (None is NaN, shown as ``n/a``).

    Examples
    --------
    >>> from quantlab import fmt
    >>> fmt.count(8017.0)
    '8,017'
    """
    v = _real("count value", x)
    return _special(v) or f"{round(v):,d}"


def ratio(x, digits: int = 2) -> str:
    """A ratio to 2 decimals (``"1.23"``, ``"-0.45"``); beyond 1e6 in exponent form.

    Parameters
    ----------
    x : float
        The value.
    digits : int, default 2
        Decimals.

    Returns
    -------
    str

    Raises
    ------
    TypeError
        If ``x`` is not a real number (None is NaN, shown as ``n/a``).

    Examples
    --------
    >>> from quantlab import fmt
    >>> fmt.ratio(1.2345)
    '1.23'
    """
    v = _real("ratio value", x)
    digits = _validate.integer("digits", digits, 0, 12)
    sp = _special(v)
    if sp:
        return sp
    if abs(v) >= 1e6:
        return f"{v:.{digits}e}"
    return _unsigned_zero(f"{v:,.{digits}f}")


def duration(x, unit: str = "bars") -> str:
    """A length in bars (``"1 bar"``, ``"123 bars"``) or, for ``unit="days"`` or a timedelta, in days.

    Parameters
    ----------
    x : float or timedelta
        The length.
    unit : {'bars', 'days'}, default 'bars'
        Unit of a number.

    Returns
    -------
    str

    Raises
    ------
    TypeError
        If ``x`` is not a real number (None is NaN, shown as ``n/a``).

    Examples
    --------
    >>> from quantlab import fmt
    >>> fmt.duration(1), fmt.duration(123), fmt.duration(10, unit="days")
    ('1 bar', '123 bars', '10 days')
    """
    if unit not in ("bars", "days"):
        raise ValueError(f"duration unit must be 'bars' or 'days', got {unit!r}")
    if x is pd.NaT:
        return NA
    if isinstance(x, (datetime.timedelta, np.timedelta64)):
        td = pd.Timedelta(x)
        x, unit = (math.nan if pd.isna(td) else td / pd.Timedelta(days=1)), "days"
    v = _real("duration value", x)
    sp = _special(v)
    if sp:
        return sp
    n = round(v)
    return f"{n:,d} {unit[:-1] if abs(n) == 1 else unit}"


def general(x) -> str:
    """Any number, 4 significant digits, no exponent between 1e-3 and 1e15.

    Parameters
    ----------
    x : float
        The value.

    Returns
    -------
    str

    Raises
    ------
    TypeError
        If ``x`` is not a real number (None is NaN, shown as ``n/a``).

    Examples
    --------
    >>> from quantlab import fmt
    >>> fmt.general(12.4123), fmt.general(1234567.8)
    ('12.41', '1,234,568')
    """
    v = _real("value", x)
    sp = _special(v)
    if sp:
        return sp
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 1e15 or a < 1e-3:
        return f"{v:.3e}"
    if a >= 1e4:
        return f"{v:,.0f}"
    return f"{v:.4g}"


def date(t) -> str:
    """A timestamp as ``YYYY-MM-DD`` (with the time of day when it is not midnight).

    Parameters
    ----------
    t : datetime-like
        The timestamp.

    Returns
    -------
    str

    Examples
    --------
    >>> from quantlab import fmt
    >>> import pandas as pd
    >>> fmt.date(pd.Timestamp("2024-01-02")), fmt.date(pd.Timestamp("2024-01-02 13:30"))
    ('2024-01-02', '2024-01-02 13:30')
    """
    if t is None or (not isinstance(t, str) and pd.isna(t)):
        return NA
    return dates([t])[0]


def dates(values, missing: str = NA) -> list[str]:
    """:func:`date` of each timestamp, at once (a trade list's 60,000 took 1.8 s one by
    one, 70 ms here); a missing one (NaT) reads ``missing``.

    Parameters
    ----------
    values : sequence of datetime-like
        The timestamps (naive, or of one time zone: shown as its wall time).
    missing : str, default "n/a"
        The text of a missing timestamp.

    Returns
    -------
    list of str

    Examples
    --------
    >>> from quantlab import fmt
    >>> fmt.dates(["2024-01-02", "2024-01-02 13:30:59", None], missing="open")
    ['2024-01-02', '2024-01-02 13:30', 'open']
    """
    idx = pd.DatetimeIndex(values)
    if idx.tz is not None:
        idx = idx.tz_localize(None)   # its wall time, as strftime shows it
    v = idx.values
    text = np.datetime_as_string(v, unit="m").astype("<U16")   # YYYY-MM-DDTHH:MM
    text.view("<U1").reshape(-1, 16)[:, 10] = " "
    out = np.where(idx == idx.normalize(), text.astype("<U10"), text).astype(object)
    out[np.isnat(v)] = missing
    return out.tolist()


_FORMATTERS = {"return": pct, "pct": lambda v: pct(v, sign=False), "ratio": ratio,
               "money": money, "count": count, "duration": duration, "general": general}


def kind(name: str) -> str:
    """The kind of a metric name (``"general"`` for a name not in :data:`KINDS`).

    Parameters
    ----------
    name : str
        A metric name.

    Returns
    -------
    str

    Raises
    ------
    TypeError
        If ``name`` is not a string.

    Examples
    --------
    >>> from quantlab import fmt
    >>> fmt.kind("total_return"), fmt.kind("my_score")
    ('return', 'general')
    """
    if not isinstance(name, str):
        raise TypeError(f"metric name must be a string, got {name!r}")
    return KINDS.get(name, "general")


def label(name: str) -> str:
    """A person's label for a metric name: ``"sharpe_ratio"`` -> ``"Sharpe ratio"``.

    Parameters
    ----------
    name : str
        A metric name.

    Returns
    -------
    str

    Raises
    ------
    TypeError
        If ``name`` is not a string.

    Examples
    --------
    >>> from quantlab import fmt
    >>> fmt.label("sharpe_ratio")
    'Sharpe ratio'
    """
    kind(name)
    return _LABELS.get(name, name.replace("_", " ").capitalize())


def metric(name: str, value) -> str | np.ndarray:
    """Format ``value`` as the metric ``name`` (:data:`KINDS`).

    An array (or DataArray) gives an array of strings of the same shape.

    Parameters
    ----------
    name : str
        A metric name.
    value : float or array-like
        The value(s).

    Returns
    -------
    str or numpy.ndarray
        A string, or an object array of strings for array input.

    Raises
    ------
    TypeError
        If ``name`` is not a string or a value is not a real number.

    Examples
    --------
    >>> from quantlab import fmt
    >>> fmt.metric("total_return", 9.201), fmt.metric("n_trades", 49.0)
    ('+920.1 %', '49')
    >>> fmt.metric("total_return", [0.1, -0.05])
    array(['+10.0 %', '-5.0 %'], dtype=object)
    """
    f = _FORMATTERS[kind(name)]
    if np.ndim(value) == 0:
        return f(value)
    return np.frompyfunc(f, 1, 1)(value)

