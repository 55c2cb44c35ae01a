"""Bar frequency and trading calendar inferred from a time index, and the number of
periods per year that annualises returns on it.

========================  ==============================  ===================
bars                      ``calendar``                    ``periods_per_year``
========================  ==============================  ===================
daily, weekdays only      ``"business_day"`` (also with   252
                          a few stray weekend bars,
                          a third of a weekday's or
                          fewer, with a warning)
daily, weekends too       ``"24/7"``                      365
intraday, whole days      ``"24/7"`` (weekends seen, or   365 x bars per day
                          under a week of data)           (525,600 for 1min)
intraday, whole weekdays  ``"24/5"`` (a week or more,     260 x bars per day
                          no weekend bar, or a pause of
                          a day or more every week)
intraday, a session       ``"session HH:MM-HH:MM"``       252 x bars per session
                          (the usual first bar's open to  (98,280 for 1-minute
                          the usual last bar's close)     09:30-16:00 bars); 365 x
                                                          when sessions come six or
                                                          more days a week
weekly/monthly/quarterly  ``"periodic"``                  52 / 12 / 4 (yearly 1)
========================  ==============================  ===================

Bars are labelled at their open (a 09:30-16:00 minute session is stamped 09:30 ..
15:59). Holidays and missing bars are gaps, not a different frequency: the frequency is
the smallest step between timestamps, and every step must be a whole multiple of it.
A session crossing midnight (futures) reads as whole days; one with a few hours' worth of
bars a day (ASX, NZX in UTC) as a ``"session across midnight UTC"``, 252 x its bars a
day. Daily bars stamped at a local time of day and read in UTC are still daily: a
daylight-saving change makes a step 23 or 25 hours, and business days east of UTC (a
Tokyo Monday is a Sunday in UTC) are told from 24/7 bars by the five weekdays they fall
on over two weeks or more.

Too few bars to tell two calendars apart give the first one of the table that fits, with
a :class:`~quantlab.errors.CalendarWarning` naming the other: daily bars over under a
week without a weekend (business days or 24/7?), or over under two weeks on five
weekdays or fewer (24/7 or business days east of UTC?); intraday bars around the clock
over under a week without a weekend (24/7 or 24/5?); a session seen on one UTC day (the
data's own span: the market may open longer). ``periods=`` decides.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import warnings
import weakref

import numpy as np
import pandas as pd

from quantlab import _validate as _v
from quantlab.errors import CalendarWarning

__all__ = ["infer", "annotate", "periods_for", "known", "bar_size"]

_DAY = 86_400 * 10 ** 9   # ns
# (median step in days lo..hi, freq, periods per year)
_PERIODIC = ((6, 8, "1W", 52), (28, 31, "1M", 12), (89, 92, "1Q", 4), (365, 366, "1Y", 1))


def _freq_str(step: int) -> str:
    """A step in ns as a pandas frequency string: '1D', '1h', '5min', '30s', '100ms'."""
    for unit, ns in (("D", _DAY), ("h", 3600 * 10 ** 9), ("min", 60 * 10 ** 9),
                     ("s", 10 ** 9), ("ms", 10 ** 6), ("us", 10 ** 3), ("ns", 1)):
        if step % ns == 0:
            return f"{step // ns}{unit}"
    raise AssertionError(step)   # ns divides every step


def _step(freq) -> int:
    """A fixed bar step ('1D', '1h', '5min', ...) in ns, at most one day."""
    try:
        step = int(pd.Timedelta(pd.tseries.frequencies.to_offset(freq)).value)
    except (ValueError, TypeError):
        raise ValueError(f"freq must be a fixed frequency such as '1D', '1h' or '1min', "
                         f"got {freq!r}") from None
    if step <= 0 or step > _DAY:
        raise ValueError(f"freq must be a positive step of at most one day, got {freq!r}")
    return step


def _time_index(obj, dim="time") -> pd.DatetimeIndex | None:
    if isinstance(obj, pd.DatetimeIndex):
        return obj
    if hasattr(obj, "indexes") and dim in getattr(obj, "dims", ()):
        if dim in obj.indexes:
            ix = obj.indexes[dim]
            return ix if isinstance(ix, pd.DatetimeIndex) else None
        return None
    if isinstance(obj, (pd.Series, pd.DataFrame)) and isinstance(obj.index, pd.DatetimeIndex):
        return obj.index
    if isinstance(obj, np.ndarray) and np.issubdtype(obj.dtype, np.datetime64):
        return pd.DatetimeIndex(obj)
    return None


def _hhmm(ns: int) -> str:
    ns %= _DAY
    return f"{ns // 3_600_000_000_000:02d}:{ns // 60_000_000_000 % 60:02d}"


def infer(time, freq=None) -> dict:
    """The bar frequency, calendar and periods per year of a time index (see the module table).

    Parameters
    ----------
    time : pandas.DatetimeIndex, numpy.ndarray or xarray object
        A DatetimeIndex, a datetime64 array, or an object with a ``time`` coordinate.
    freq : str, optional
        The bar step (e.g. ``"1min"``), overriding the inferred one; every step must still
        be a whole multiple of it.

    Returns
    -------
    dict
        ``{"freq", "calendar", "periods_per_year"}``.

    Raises
    ------
    ValueError
        When the index is too short (< 3 stamps), not strictly increasing, or irregular
        (ticks), or ``freq`` does not fit it.

    Examples
    --------
    >>> import pandas as pd, quantlab as ql
    >>> ql.calendar.infer(ql.data.load().isel(time=slice(0, 300)))
    {'freq': '1D', 'calendar': 'business_day', 'periods_per_year': 252}
    >>> ql.calendar.infer(pd.date_range("2024-01-01", periods=240, freq="h"))
    {'freq': '1h', 'calendar': '24/7', 'periods_per_year': 8760}
    """
    idx = _time_index(time)
    if idx is None:
        raise ValueError(f"no datetime time index in {type(time).__name__}")
    told = _told(idx, freq)
    if told is not None:
        return told
    if freq is not None:
        return _infer(idx, freq)
    global _LAST
    ref, found = _LAST
    if ref is None or ref() is not idx:   # an index is immutable: its answer is too
        try:
            found = _infer(idx, None)
        except ValueError as e:
            found = e.args   # not the error: its traceback holds the caller's data
        _LAST = (weakref.ref(idx), found)
    if isinstance(found, tuple):
        raise ValueError(*found)
    return dict(found)


# (weakref to the last index inferred without freq, its answer or error): a backtest,
# its metrics and a tear sheet of one panel infer its calendar once (~0.2 ms a call on
# 2520 daily bars, 10 ms on 500,000 minutes)
_LAST = (None, None)


def _infer(idx: pd.DatetimeIndex, freq) -> dict:
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    if len(idx) < (2 if freq is not None else 3):
        raise ValueError(f"cannot infer the bar frequency from {len(idx)} timestamp(s) "
                         "(need 3 or more)")
    ns = idx.as_unit("ns").asi8
    d = np.diff(ns)
    if (d <= 0).any():
        raise ValueError("the time index is not strictly increasing")
    days = np.rint(d / _DAY)
    if days.min() >= 1 and (np.abs(d - days * _DAY) <= _DAY // 24).all():
        # daily bars stamped at a local time of day, read in UTC: a daylight-saving
        # change makes a step 23 or 25 hours
        d = days.astype(np.int64) * _DAY
    weekdays = np.unique(idx.day_of_week)
    weekend = bool((weekdays >= 5).any())
    if weekend and d.min() == _DAY and weekdays.size <= 5 and ns[-1] - ns[0] >= 14 * _DAY:
        # over two weeks, five weekdays, one of them a weekend day: business days stamped
        # east of UTC (local midnight in Tokyo is 15:00 UTC the day before, a Sunday)
        weekend = False
    if freq is not None:
        step = _step(freq)
        bad = np.flatnonzero(d % step)
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"freq={freq!r} does not fit the data: {idx[i]} to {idx[i + 1]} "
                             f"is not a whole number of {freq!r} steps")
    else:
        step = int(d.min())
        med = float(np.median(d)) / _DAY
        for lo, hi, name, ppy in _PERIODIC:
            if lo <= med <= hi and step >= (lo - 3) * _DAY:
                return {"freq": name, "calendar": "periodic", "periods_per_year": ppy}
        if step > _DAY or (d % step).any() or (d == step).mean() < 0.5:
            raise ValueError(f"irregular timestamps (smallest step {pd.Timedelta(step)}, "
                             "not a whole divisor of the others, or not the usual step)")
    fs = _freq_str(step)
    span = ns[-1] - ns[0]
    if step == _DAY:
        strays = weekend and span >= 14 * _DAY and _trading_weekdays(idx.day_of_week) < 6
        return _daily(fs, weekend, weekdays.size, span, strays)
    # intraday: the usual first and last bar of a day (mode: robust to half days, gaps
    # and a daylight-saving shift of UTC stamps)
    day = ns // _DAY
    starts = np.r_[0, np.flatnonzero(np.diff(day)) + 1]
    ends = np.r_[starts[1:] - 1, len(ns) - 1]
    first = pd.Series(ns[starts] % _DAY).mode().iloc[0]
    last = pd.Series(ns[ends] % _DAY).mode().iloc[0]
    counts = np.diff(np.r_[starts, len(ns)])        # bars per UTC day
    if starts.size == 2:
        # two days, both cut by the data's ends (two hours of 24/7 bars across midnight
        # UTC tied into a "session 00:00-02:00"): the second day's first bar and the
        # first day's last are the only open and close seen; their counts tell nothing
        first, last, counts = ns[starts[1]] % _DAY, ns[ends[0]] % _DAY, counts[:0]
    per_day = _DAY / step
    weeks = (ns[-1] - ns[0]) // (7 * _DAY)
    pauses = int((d >= _DAY).sum())                 # a day or more without a bar
    if (first < step and last >= _DAY - step and counts.size
            and np.median(counts) < 0.8 * per_day):
        # bars around the clock in UTC but a few hours' worth a day: a session across
        # midnight UTC (ASX 10:00-16:00 local), each UTC day the end of one and the
        # start of the next
        weekly = weekdays.size <= 6 or pauses >= 0.7 * weeks
        ppy = (252 if weekly else 365) * float(np.median(counts))
        return {"freq": fs, "calendar": "session across midnight UTC",
                "periods_per_year": int(ppy) if ppy.is_integer() else ppy}
    if first < step and last >= _DAY - step:        # whole days
        if weeks >= 2 and 0.7 * weeks <= pauses <= 1.5 * weeks and weekdays.size <= 6:
            # a pause of a day or more about once a week and a weekday never seen: a 24/5
            # market, also when its week opens on Sunday evening in UTC (FX: Sunday
            # 22:00 to Friday 22:00); not a 24/7 market's outages
            cal, days = "24/5", 260
        elif weekend or span < 7 * _DAY:
            cal, days = "24/7", 365
            if not weekend and span < _DAY:   # a few hours across midnight UTC
                _guess(f"{fs} bars of under a day", cal, days * per_day,
                       "a session of those hours (e.g. ASX's, across midnight UTC) or a 24/5 "
                       "market fit them as well")
            elif not weekend:
                _guess(f"{fs} bars around the clock over under a week without a weekend",
                       cal, days * per_day, f"a 24/5 market gives {260 * per_day:,.0f}")
        else:
            cal, days = "24/5", 260
    else:
        per_day = (last - first) / step + 1
        # a market open on weekends (a session on six days a week or more): 365 days;
        # not a weekday market whose file starts on a Sunday, nor a Sunday-Thursday one
        # (Tel Aviv, Riyadh), which trade about 252 days a year
        daily = (_trading_weekdays((day[starts] + 3) % 7) >= 6   # 1970-01-01: a Thursday
                 if day[-1] - day[0] >= 13 else weekend)
        cal, days = f"session {_hhmm(first)}-{_hhmm(last + step)}", 365 if daily else 252
        if starts.size == 1:
            # the session is the data's own span: nothing says the market closes there
            # (on two days, the pause between them shows a close and an open)
            _guess(f"{fs} bars of one UTC day", cal, days * per_day,
                   f"a longer session or a 24/7 market ({365 * _DAY // step:,} a year) fit "
                   "them as well")
    ppy = days * per_day
    return {"freq": fs, "calendar": cal,
            "periods_per_year": int(ppy) if float(ppy).is_integer() else float(ppy)}


# (step in ns, the answer) of the innermost `known` block of this thread (or task): a
# context variable, not a warnings filter (catch_warnings changes the process's filters,
# so another thread's warnings were lost while it was in place)
_KNOWN: contextvars.ContextVar = contextvars.ContextVar("quantlab_calendar_known",
                                                        default=None)
_QUIET: contextvars.ContextVar = contextvars.ContextVar("quantlab_calendar_quiet",
                                                        default=False)


@contextlib.contextmanager
def known(freq, calendar: str, periods_per_year):
    """Inside the block, in this thread (or asyncio task) only, :func:`infer` (and so
    :func:`annotate` and :func:`periods_for`) answers ``freq``, ``calendar`` and
    ``periods_per_year`` for a time index whose every step is a whole number of
    ``freq``, without guessing or a :class:`~quantlab.errors.CalendarWarning`; other
    indexes are inferred as usual. For code that made the bars and so knows their
    calendar (``quantlab.testing.synthetic_minute_panel``): a day or two of bars
    cannot tell 24/7 from 24/5.

    Parameters
    ----------
    freq : str
        The bar step ('1min', '1h', '1D'), at most a day.
    calendar : str
        The calendar's name, as :func:`infer` gives it ('24/7', 'session 09:30-16:00').
    periods_per_year : float
        Bars a year (> 0).

    Yields
    ------
    None

    Examples
    --------
    >>> import warnings, pandas as pd, quantlab as ql
    >>> two_days = pd.date_range("2024-01-01", periods=2880, freq="min")
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     with ql.calendar.known("1min", "24/7", 525_600):
    ...         told = ql.calendar.infer(two_days)
    >>> told, seen
    ({'freq': '1min', 'calendar': '24/7', 'periods_per_year': 525600}, [])
    """
    step = _step(freq)
    if not isinstance(calendar, str) or not calendar:
        raise TypeError(f"calendar must be a calendar's name such as '24/7', got "
                        f"{_v._show(calendar)}")
    ppy = _v.number("periods_per_year", periods_per_year, 0, lo_open=True)
    ppy = int(ppy) if ppy.is_integer() else ppy
    token = _KNOWN.set((step, {"freq": _freq_str(step), "calendar": calendar,
                               "periods_per_year": ppy}))
    try:
        yield
    finally:
        _KNOWN.reset(token)


def _told(idx: pd.DatetimeIndex, freq):
    """The answer of the enclosing :func:`known` block, if ``idx`` (and ``freq``) fit
    it; else None."""
    told = _KNOWN.get()
    if told is None or len(idx) < 2 or (freq is not None and _step(freq) != told[0]):
        return None
    d = np.diff(idx.as_unit("ns").asi8)
    if (d <= 0).any() or (d % told[0]).any():
        return None
    return dict(told[1])


def bar_size(time):
    """The bar frequency of a time index, as :func:`infer` reads it (``"freq"``), without
    its calendar: never a :class:`~quantlab.errors.CalendarWarning`; None when the index
    does not tell (under 3 stamps, irregular). A deployment's checkpoint records it.

    Parameters
    ----------
    time : pandas.DatetimeIndex, numpy.ndarray or xarray object
        As in :func:`infer`.

    Returns
    -------
    str or None
        A pandas frequency ('1D', '1min', '1W', ...).

    Examples
    --------
    >>> import pandas as pd, quantlab as ql
    >>> ql.calendar.bar_size(pd.date_range("2024-01-01", periods=3, freq="5min"))
    '5min'
    >>> ql.calendar.bar_size(ql.data.load().isel(time=slice(0, 10))), ql.calendar.bar_size(
    ...     pd.DatetimeIndex(["2024-01-01"]))
    ('1D', None)
    """
    idx = _time_index(time)
    if idx is None:
        raise ValueError(f"no datetime time index in {type(time).__name__}")
    told = _told(idx, None)
    if told is not None:
        return told["freq"]
    token = _QUIET.set(True)      # the calendar is not asked for: no guess to warn of
    try:
        return _infer(idx, None)["freq"]
    except ValueError:
        return None
    finally:
        _QUIET.reset(token)


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _trading_weekdays(day_of_week) -> int:
    """The weekdays (0 Monday .. 6 Sunday) with more than a third of the busiest one's
    days: a few weekend rows among business days are strays (one Saturday in years read
    365, Sharpe ratios x1.2; one Sunday before four weeks of sessions too), while a 24/7
    market's missing days (even 2 in 9) keep each weekday near the others."""
    counts = np.bincount(np.asarray(day_of_week, dtype=np.int64), minlength=7)
    return int((counts > counts.max() / 3).sum())


def _daily(fs: str, weekend: bool, n_weekdays: int, span: int, strays: bool) -> dict:
    """Daily bars: 24/7 when a weekend day is seen, else business days (warning when
    too few bars tell them apart, or the weekend's are ``strays``)."""
    if strays:
        _guess("daily bars with a few on weekend days", "business_day", 252,
               "a 24/7 market gives 365")
        return {"freq": fs, "calendar": "business_day", "periods_per_year": 252}
    if weekend:
        if n_weekdays <= 5 and span < 14 * _DAY:
            _guess("daily bars over under two weeks with five weekdays or fewer",
                   "24/7", 365, "business days stamped east of UTC (a Tokyo Monday is a "
                   "Sunday in UTC) give 252")
        return {"freq": fs, "calendar": "24/7", "periods_per_year": 365}
    if span < 7 * _DAY:
        _guess("daily bars over under a week without a weekend", "business_day", 252,
               "a 24/7 market gives 365")
    return {"freq": fs, "calendar": "business_day", "periods_per_year": 252}


def _guess(what, cal, ppy, other):
    """Warn that ``cal`` (``ppy`` periods a year) was read from data that fit ``other``
    (not for :func:`bar_size`, which does not report the calendar)."""
    if _QUIET.get():
        return
    # attributed to the user's line (load_csv, a metric, a backtest), not to quantlab's
    level, f = 2, sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(_PACKAGE):
        level, f = level + 1, f.f_back
    warnings.warn(f"calendar inferred from {what}: {cal!r} ({ppy:,.0f} periods a year) is a "
                  f"guess; {other}. Pass periods= (or set attrs['periods_per_year']) to "
                  "decide.", CalendarWarning, stacklevel=level)


def annotate(ds, freq=None):
    """Set ``freq``, ``calendar`` and ``periods_per_year`` in ``ds.attrs`` when they can be inferred.

    In place, and returned; left absent otherwise (a single bar, ticks): :func:`periods_for`
    then asks for ``periods=``.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        Data with a ``time`` coordinate.
    freq : str, optional
        The bar step, as in :func:`infer`.

    Returns
    -------
    same type as ``ds``
        ``ds`` itself.

    Raises
    ------
    ValueError
        Only when ``freq`` is given and does not fit.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.calendar.annotate(ql.data.load().isel(time=slice(0, 300)))
    >>> ds.attrs["calendar"], ds.attrs["periods_per_year"]
    ('business_day', 252)
    """
    try:
        ds.attrs.update(infer(ds, freq=freq))
    except ValueError:
        if freq is not None:
            raise
    return ds


def periods_for(obj, periods=None, default=None, dim="time"):
    """The periods per year to annualise ``obj`` with.

    ``periods`` when given (a positive number), else ``obj.attrs["periods_per_year"]``, else
    inferred from its time index (along ``dim`` of a Dataset or DataArray; the index of a
    pandas object; a DatetimeIndex), else ``default`` when given (e.g. 252 for a bare NumPy
    array, as empyrical assumes).

    Parameters
    ----------
    obj : object
        The data.
    periods : float, optional
        Explicit periods per year (> 0).
    default : float, optional
        Fallback (> 0) when nothing can be inferred.
    dim : str, default "time"
        The time dimension of a Dataset or DataArray.

    Returns
    -------
    float or int

    Raises
    ------
    ValueError
        Naming what is missing when none exists, or if ``periods``/``default`` is not
        positive.

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> ql.calendar.periods_for(ql.data.load().isel(time=slice(0, 300)))
    252
    >>> ql.calendar.periods_for(np.zeros(3), default=252)
    252.0
    """
    if periods is not None:
        return _v.number("periods", periods, 0, lo_open=True)
    if default is not None:
        default = _v.number("default", default, 0, lo_open=True)
        try:
            return periods_for(obj, dim=dim)
        except ValueError:
            return default
    attrs = getattr(obj, "attrs", None) or {}
    if "periods_per_year" in attrs:
        return attrs["periods_per_year"]
    idx = _time_index(obj, dim)
    if idx is None:
        raise ValueError(f"periods_for: a {type(obj).__name__} without a datetime {dim} index "
                         "or a periods_per_year attr; pass periods= (252 business days, 365 "
                         "daily 24/7, 525600 for 24/7 minutes, ...)")
    try:
        return infer(idx)["periods_per_year"]
    except ValueError as e:
        raise ValueError(f"periods_for: {e}; pass periods= (252 business days, 365 daily "
                         "24/7, 525600 for 24/7 minutes, ...)") from None
