"""Orders -> round-trip trades (vectorbt's ``positions``), and the order reasons."""
from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from quantlab._kernels import backtest as _k

# build_trades serves BacktestResult.trades; not public API
__all__ = ["REASONS"]

# the kernel's order reasons (cython_kernels/backtest.pyx R_*), in its order.
# "fixed_fee" marks an order that was skipped, not filled (size 0, fee 0): its fixed fee
# was more than the account could pay (see ``backtest``)
REASONS = _k.REASONS


def build_trades(orders: pd.DataFrame, prices: xr.DataArray) -> pd.DataFrame:
    """Round trips from the orders: a trade opens when a position leaves 0 and closes when
    it returns to 0 or flips sign; one still open is marked at the last close."""
    cols = ["asset", *[c for c in orders.columns if c not in
                       ("t", "col", "time", "asset", "size", "price", "fee", "reason")]]
    orders = orders[orders["size"] != 0]   # skipped orders (reason fixed_fee) trade nothing
    rows = []
    last_px = prices.ffill("time").isel(time=-1)
    for key, g in orders.groupby(cols, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        rows += _round_trips(dict(zip(cols, key)), g, last_px)
    columns = [*cols, "entry_time", "exit_time", "size", "entry_price", "exit_price",
               "fee", "pnl", "exit_reason"]
    return pd.DataFrame(rows, columns=columns)


def _round_trips(labels: dict, g: pd.DataFrame, last_px: xr.DataArray) -> list[dict]:
    """The trades of one column's orders ``g`` (in time order); ``labels`` its asset and
    parameter values."""
    rows = []
    q = 0.0
    cur = None
    for o in g.itertuples(index=False):
        flow = -o.size * o.price - o.fee
        if cur is None:
            cur = dict(labels, entry_time=o.time, entry_price=o.price, size=o.size, fee=0.0,
                       pnl=0.0)
        cur["fee"] += o.fee
        cur["pnl"] += flow
        newq = q + o.size
        if newq == 0 or np.sign(newq) != np.sign(q) and q != 0:
            # closes (or flips: the part past zero opens the next trade)
            cur.update(exit_time=o.time, exit_price=o.price, exit_reason=o.reason)
            if newq != 0:  # flip: split the order's flow by shares
                frac = abs(q) / abs(o.size)
                cur["pnl"] -= flow * (1 - frac)
                cur["fee"] -= o.fee * (1 - frac)
                rows.append(cur)
                cur = dict(labels, entry_time=o.time, entry_price=o.price, size=newq,
                           fee=o.fee * (1 - frac), pnl=flow * (1 - frac))
            else:
                rows.append(cur)
                cur = None
        q = newq
    if cur is not None:  # open at the end: mark at the last close
        px = float(last_px.sel(asset=cur["asset"]))
        cur.update(exit_time=pd.NaT, exit_price=px, exit_reason="end_of_data")
        cur["pnl"] += q * px
        rows.append(cur)
    return rows
