"""Exceptions shared across quantlab (kept import-light)."""

__all__ = ["DataError"]


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
