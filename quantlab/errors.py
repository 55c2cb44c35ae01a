"""Exceptions shared across quantlab (kept import-light)."""

__all__ = ["DataError", "CalendarWarning"]


class DataError(ValueError):
    """Input data that would give silently wrong numbers; the message names the
    file or variable, the asset and the timestamp at fault.

    A subclass of ValueError, so ``except ValueError`` catches it too.

    Parameters
    ----------
    message : str
        What is wrong and where.

    Examples
    --------
    >>> import numpy as np, quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 3))
    >>> ds["close"][1, 0] = -1.0
    >>> ql.data.validate(ds)
    Traceback (most recent call last):
    ...
    quantlab.errors.DataError: 'close' of asset 'AAPL' at 2000-03-02: non-positive price -1
    """


class CalendarWarning(UserWarning):
    """A calendar inferred from too few bars to tell it from another
    (``ql.calendar.infer``): the periods per year it gives are a guess.

    Five weekday daily bars fit business days and a 24/7 market alike; one day of
    minute bars fits a session and a 24/7 market. Pass ``periods=`` (or set the
    data's ``periods_per_year`` attr) to decide, or filter this warning.

    Parameters
    ----------
    message : str
        The calendar guessed, its periods per year and the alternative.

    Examples
    --------
    >>> import warnings, pandas as pd, quantlab as ql
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     ql.calendar.infer(pd.date_range("2024-01-01", periods=5, freq="D"))["calendar"]
    'business_day'
    >>> w[0].category.__name__
    'CalendarWarning'
    """
