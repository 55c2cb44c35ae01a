"""Random OHLCV panels and signals shared by the backtest tests (tests/ is on sys.path:
tests/conftest.py). One generator: the streamed-backtest tests (test_outofcore.py,
test_resume_stream.py) each had a copy. And a deployment of given targets on a flat
market, for the risk limits' tests (test_lead_s59.py, test_review_s59.py)."""
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


def flat_market(closes, assets=("A",)):
    """Bars with open = close = ``closes`` (a row per bar, or one value for every asset)."""
    c = np.asarray(closes, dtype=float).reshape(len(closes), -1) * np.ones(len(assets))
    return xr.Dataset({"open": (("time", "asset"), c), "close": (("time", "asset"), c)},
                      coords={"time": pd.bdate_range("2020-01-01", periods=len(c)),
                              "asset": list(assets)})


def deploy_targets(ds, targets, limit, upto=None, **opts):
    """A deployment trading ``targets`` (a row per bar) on ``ds`` after its first 2 bars
    (up to bar ``upto``, None: all), with ``max_order_value=limit`` (None: no limit)."""
    import quantlab as ql
    from quantlab.strategies import Strategy

    class Given(Strategy):   # the exposures of ``table``: a test double, not registered
        name, defaults, param_space, table = "given", {"k": 0}, {"k": (0, 1)}, None

        def _warmup(self, k):
            return 1

        def _signal(self, ds, k):
            return self.table.sel(time=ds["time"], asset=ds["asset"])

    s = Given()
    t = np.asarray(targets, dtype=float).reshape(len(targets), -1) * np.ones(ds.sizes["asset"])
    s.table = xr.DataArray(t, dims=("time", "asset"), coords={"time": ds.time, "asset": ds.asset})
    risk = None if limit is None else {"max_order_value": limit}
    dep = ql.deploy(s, history=ds.isel(time=slice(0, 2)), risk=risk, **opts)
    return dep.replay(ds.isel(time=slice(2, upto)), echo=None)
