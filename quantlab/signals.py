"""Signal helpers: turn boolean events into target exposures."""
from __future__ import annotations

import numpy as np
import xarray as xr

from quantlab import _validate

__all__ = ["from_entries_exits"]


def from_entries_exits(entries, exits) -> xr.DataArray:
    """Boolean entries/exits -> long-only target exposure: 1.0 on an entry bar, 0.0 on an
    exit bar, NaN (hold) otherwise, so with ``rebalance="on_change"`` a repeated entry
    while long does nothing. An entry and an exit on the same bar cancel (NaN), as in
    vectorbt's ``from_signals``."""
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
