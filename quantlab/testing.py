"""Checks offered to users for their own strategies."""
from __future__ import annotations

import numpy as np

__all__ = ["assert_no_lookahead"]


def assert_no_lookahead(strategy, ds, n_cuts: int = 5, min_history: int | None = None) -> None:
    """Assert that the signal at t uses data up to t only: computed on
    ``ds.isel(time=slice(0, t + 1))`` (with that truncated data's ``default_inputs``) it
    equals the signal at t computed on all of ``ds``, at ``n_cuts`` times spread over the
    second half of the data. Raises AssertionError naming the first differing time."""
    full = strategy.signal(ds, **strategy.default_inputs(ds))
    n = ds.sizes["time"]
    start = n // 2 if min_history is None else min_history
    cuts = np.unique(np.linspace(start, n - 2, n_cuts).astype(int))
    for t in cuts:
        part = ds.isel(time=slice(0, t + 1))
        got = strategy.signal(part, **strategy.default_inputs(part)).isel(time=-1)
        want = full.isel(time=t)
        if not np.allclose(got.values, want.values, equal_nan=True, rtol=1e-9, atol=1e-12):
            raise AssertionError(
                f"{strategy!r} looks ahead: its signal at {str(ds.time.values[t])[:10]} "
                f"differs when later data is removed ({got.values} vs {want.values})")
