"""Random OHLCV panels and signals shared by the backtest tests (tests/ is on sys.path:
tests/conftest.py). One generator: the streamed-backtest tests (test_outofcore.py,
test_resume_stream.py) each had a copy."""
from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr


def ohlcv_panel(seed=0, n=40, m=4, n_params=None, fraction=0.35):
    """``n`` business days from 2024-01-01 x ``m`` assets (A0, A1, ...) of OHLCV random
    walks (3% daily), and a signal rounded to 0.1 in [-1, 1] given on about ``fraction``
    of the bars (NaN: hold), over a parameter dim ``p`` of ``n_params`` values if given.
    The draws are in one order, so a seed gives the same panel whatever the signal."""
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, (n, m)), 0))
    o = c * (1 + rng.normal(0, 0.01, (n, m)))
    hi = np.maximum(o, c) * (1 + np.abs(rng.normal(0, 0.01, (n, m))))
    lo = np.minimum(o, c) * (1 - np.abs(rng.normal(0, 0.01, (n, m))))
    dims = ("time", "asset")
    ds = xr.Dataset({"open": (dims, o), "high": (dims, hi), "low": (dims, lo),
                     "close": (dims, c), "volume": (dims, rng.lognormal(8, 1, (n, m)))},
                    coords={"time": pd.bdate_range("2024-01-01", periods=n),
                            "asset": [f"A{i}" for i in range(m)]})
    shape, sdims, coords = (n, m), dims, dict(ds["close"].coords)
    if n_params is not None:
        shape, sdims = (n, m, n_params), (*dims, "p")
        coords["p"] = list(range(n_params))
    sig = xr.DataArray(np.round(rng.uniform(-1, 1, shape), 1), dims=sdims, coords=coords)
    return ds, sig.where(rng.random(shape) < fraction)
