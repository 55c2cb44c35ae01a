"""Signal helpers: turn boolean events into target exposures."""
from __future__ import annotations

import numpy as np
import xarray as xr

from quantlab import _validate

__all__ = ["align_events", "check_events", "from_entries_exits"]


def from_entries_exits(entries, exits) -> xr.DataArray:
    """Boolean entries/exits -> long-only target exposure.

    1.0 on an entry bar, 0.0 on an exit bar, NaN (hold) otherwise, so with
    ``rebalance="on_change"`` a repeated entry while long does nothing. An entry and an
    exit on the same bar cancel (NaN), as in vectorbt's ``from_signals``.

    Parameters
    ----------
    entries : xarray.DataArray of bool
        Entry events on (time, asset[, params]), with coordinates on time/asset (or a
        pandas DataFrame, time by asset; a Series: one asset).
    exits : xarray.DataArray of bool
        Exit events, on the same coordinates as ``entries``.

    Returns
    -------
    xarray.DataArray
        The target exposure, named ``signal``.

    Raises
    ------
    TypeError
        If either is not a boolean DataArray.
    ValueError
        If ``exits`` is None or the coordinates of the two differ.
    DataError
        If a time/asset dimension has no coordinate.

    Examples
    --------
    >>> import pandas as pd, xarray as xr, quantlab as ql
    >>> time = pd.date_range("2024-01-01", periods=7)
    >>> entries = xr.DataArray([0, 1, 0, 0, 0, 1, 0], coords={"time": time}).astype(bool)
    >>> exits = xr.DataArray([0, 0, 0, 1, 0, 0, 0], coords={"time": time}).astype(bool)
    >>> ql.signals.from_entries_exits(entries, exits).values
    array([nan,  1., nan,  0., nan,  1., nan])
    """
    if exits is None:
        raise ValueError("from_entries_exits needs exits as well as entries")
    entries, exits = align_events(check_events(entries, "entries"),
                                  check_events(exits, "exits"))
    both = entries & exits
    out = xr.where(entries & ~both, 1.0, np.nan)
    return xr.where(exits & ~both, 0.0, out).rename("signal")


def check_events(x, name: str) -> xr.DataArray:
    """Check one boolean event array (entries or exits) and return it unchanged.

    The checks ``from_entries_exits`` and ``ql.backtest(entries=, exits=)`` apply to each
    of their event arrays: a boolean DataArray whose time/asset dims have coordinates
    (events are matched by label, not by position); a pandas DataFrame (time by asset)
    or Series (one asset) is taken as one (``_validate.labelled``).

    Parameters
    ----------
    x : xarray.DataArray, pandas.DataFrame or pandas.Series of bool
        Events on (time, asset[, params]).
    name : str
        The argument's name, used in the error messages (``"entries"``, ``"exits"``).

    Returns
    -------
    xarray.DataArray
        ``x`` itself (no copy), or the DataArray of a DataFrame or Series.

    Raises
    ------
    TypeError
        If ``x`` is not a DataArray, DataFrame or Series, or not boolean.
    DataError
        If a time/asset dimension has no coordinate.

    Examples
    --------
    >>> import pandas as pd, xarray as xr, quantlab as ql
    >>> time = pd.date_range("2024-01-01", periods=3)
    >>> ev = xr.DataArray([True, False, True], coords={"time": time})
    >>> ql.signals.check_events(ev, "entries") is ev
    True
    >>> ql.signals.check_events(ev.astype(int), "entries")
    Traceback (most recent call last):
    TypeError: entries must be boolean, got int64
    """
    x = _validate.labelled(name, x)
    if not isinstance(x, xr.DataArray):
        raise TypeError(f"{name} must be a boolean DataArray on (time, asset[, params]) or "
                        "pandas DataFrame (time by asset)")
    if x.dtype != bool:
        raise TypeError(f"{name} must be boolean, got {x.dtype}")
    # entries and exits are matched by label: the time/asset dims they have need coords
    _validate.coords(x, tuple(d for d in ("time", "asset") if d in x.dims), what=name)
    return x


def align_events(entries: xr.DataArray, exits: xr.DataArray):
    """``entries`` and ``exits`` on the same labels, ``exits`` in ``entries``' order.

    Events are matched by label: the same assets (or times) in another order are
    reordered, as the signal is matched to the data (``xr.align(join="exact")``
    refused them with xarray's "cannot align objects with join='exact'"). Other
    labels are a ValueError naming the dim.

    Parameters
    ----------
    entries, exits : xarray.DataArray of bool
        Checked events (:func:`check_events`).

    Returns
    -------
    tuple of xarray.DataArray
        ``(entries, exits)``.

    Raises
    ------
    ValueError
        If a dim of both has other labels in one than in the other.

    Examples
    --------
    >>> import xarray as xr, quantlab as ql
    >>> ev = xr.DataArray([True, False], coords={"asset": ["A", "B"]})
    >>> ql.signals.align_events(ev, ev.isel(asset=[1, 0]))[1].asset.values
    array(['A', 'B'], dtype='<U1')
    """
    exits = _validate.on_labels(exits, entries, "exits", "entries")
    return xr.align(entries, exits, join="exact", copy=False)
