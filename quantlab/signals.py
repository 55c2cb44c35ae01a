"""Signal helpers: turn boolean events into target exposures."""
from __future__ import annotations

import numpy as np
import xarray as xr

from quantlab import _validate

__all__ = ["from_entries_exits"]


def from_entries_exits(entries, exits) -> xr.DataArray:
    """Boolean entries/exits -> long-only target exposure.

    1.0 on an entry bar, 0.0 on an exit bar, NaN (hold) otherwise, so with
    ``rebalance="on_change"`` a repeated entry while long does nothing. An entry and an
    exit on the same bar cancel (NaN), as in vectorbt's ``from_signals``.

    Parameters
    ----------
    entries : xarray.DataArray of bool
        Entry events on (time, asset[, params]), with coordinates on time/asset.
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
    entries, exits = xr.align(_bool(entries, "entries"), _bool(exits, "exits"), join="exact")
    both = entries & exits
    out = xr.where(entries & ~both, 1.0, np.nan)
    return xr.where(exits & ~both, 0.0, out).rename("signal")


def _bool(x, name):
    if not isinstance(x, xr.DataArray):
        raise TypeError(f"{name} must be a boolean DataArray on (time, asset[, params])")
    if x.dtype != bool:
        raise TypeError(f"{name} must be boolean, got {x.dtype}")
    # entries and exits are matched by label: the time/asset dims they have need coords
    _validate.coords(x, tuple(d for d in ("time", "asset") if d in x.dims), what=name)
    return x
