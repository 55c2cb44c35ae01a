"""Orders -> round-trip trades (vectorbt's ``positions``), and the order reasons."""
from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from quantlab._kernels import backtest as _k
from quantlab.backtesting.options import last_valid

# build_trades serves BacktestResult.trades; not public API
__all__ = ["REASONS"]

# the kernel's order reasons (cython_kernels/backtest.pyx R_*), in its order.
# "fixed_fee" marks an order that was skipped, not filled (size 0, fee 0): its fixed fee
# was more than the account could pay (see ``backtest``)
REASONS = _k.REASONS


def build_trades(orders: pd.DataFrame, prices: xr.DataArray) -> pd.DataFrame:
    """Round trips from the orders: a trade opens when a position leaves 0 and closes when
    it returns to 0 or flips sign; one still open is marked at the last close.

    Per column (asset and parameter values, in order of first appearance), with ``q`` the
    running position before an order of ``size`` at ``price`` with ``fee``: the order's
    cash flow ``-size * price - fee`` and fee add to the open trade; it closes the trade
    when ``q + size == 0`` or changes sign, and a flip leaves the share ``1 - |q|/|size|``
    of its flow and fee to the trade it opens (size ``q + size``). An open trade's pnl
    adds ``q * last close``. Vectorised over all orders; every sum runs in order position
    by position (``_running_sums``), so values equal an order-by-order loop bit for bit.

    Parameters
    ----------
    orders : pandas.DataFrame
        The orders table (``BacktestResult.orders``): time, asset, parameter columns,
        size, price, fee, reason; in time order within each column.
    prices : xarray.DataArray
        Closes on (time, asset); the last non-NaN close marks open trades.

    Returns
    -------
    pandas.DataFrame
        One row per trade: the column labels, entry/exit time and price, size (signed
        shares at entry), fee, pnl (net of fees) and exit_reason.

    Examples
    --------
    >>> t = pd.date_range("2022-01-01", periods=3, freq="D")
    >>> orders = pd.DataFrame(dict(time=t, asset="X", size=[2.0, -6.0, 4.0],
    ...                            price=[10.0, 12.0, 11.0], fee=[0.2, 0.6, 0.4],
    ...                            reason="signal"))
    >>> prices = xr.DataArray([[10.0], [12.0], [11.0]], dims=("time", "asset"),
    ...                       coords={"time": t, "asset": ["X"]})
    >>> build_trades(orders, prices)[["size", "entry_price", "exit_price", "fee", "pnl"]]
       size  entry_price  exit_price  fee  pnl
    0   2.0         10.0        12.0  0.4  3.6
    1  -4.0         12.0        11.0  0.8  3.2
    """
    cols = ["asset", *[c for c in orders.columns if c not in
                       ("t", "col", "time", "asset", "size", "price", "fee", "reason")]]
    columns = [*cols, "entry_time", "exit_time", "size", "entry_price", "exit_price",
               "fee", "pnl", "exit_reason"]
    orders = orders[orders["size"] != 0]   # skipped orders (reason fixed_fee) trade nothing
    # dropna=False: a NaN label (a swept stop's "off") is a column like any other
    code = orders.groupby(cols, sort=False, dropna=False).ngroup().to_numpy()
    seq = np.argsort(code, kind="stable")             # by column, time order within
    if len(seq) == 0:
        return pd.DataFrame([], columns=columns)
    o = orders.iloc[seq]
    code = code[seq]
    sz, px, fee = (o[c].to_numpy(dtype=np.float64) for c in ("size", "price", "fee"))
    flow = -sz * px - fee
    n = len(o)
    new_col = np.r_[True, code[1:] != code[:-1]]
    first = np.flatnonzero(new_col)                   # each column's first order
    q = _running_sums(sz, first, np.diff(np.r_[first, n]), np.zeros(len(first)))[0]
    q0 = np.r_[0.0, q[:-1]]
    q0[first] = 0.0                                   # position before each order
    close = (q == 0) | ((np.sign(q) != np.sign(q0)) & (q0 != 0))
    flip = close & (q != 0)
    opener = q0 == 0
    # trade ids: one starts at each opener and each flip; a flip's own flow (before the
    # split) belongs to the trade it closes
    tid = np.cumsum(opener | flip) - 1
    cur = tid - flip
    nt = tid[-1] + 1
    tstart = np.flatnonzero(opener | flip)            # the order that starts each trade
    from_flip = flip[tstart]
    # member orders of trade j: cur == j, contiguous; a flip-started trade's start after it
    mstart = tstart + from_flip
    mlen = np.bincount(cur, minlength=nt)
    split = 1 - np.abs(q0) / np.abs(sz)               # used at flips only
    init_pnl = np.where(from_flip, flow[tstart] * split[tstart], 0.0)
    init_fee = np.where(from_flip, fee[tstart] * split[tstart], 0.0)
    pnl = _running_sums(flow, mstart, mlen, init_pnl)[1]
    tfee = _running_sums(fee, mstart, mlen, init_fee)[1]
    f = np.flatnonzero(flip)
    pnl[cur[f]] -= flow[f] * split[f]
    tfee[cur[f]] -= fee[f] * split[f]
    # exits: the closing order's, else open at the end (marked at the last close)
    closer = np.full(nt, -1)
    closer[cur[close]] = np.flatnonzero(close)
    is_open = closer < 0
    prices = prices.transpose("time", "asset")
    where = prices.indexes["asset"].get_indexer(o["asset"].iloc[tstart])
    if (where[is_open] < 0).any():
        raise KeyError("an order's asset is not in prices")
    end_px = last_valid(prices, None)[where]     # reads the last rows only
    last_q = q[np.r_[first[1:], n] - 1][np.cumsum(new_col)[tstart] - 1]  # column's end
    pnl[is_open] += last_q[is_open] * end_px[is_open]
    ci = np.where(is_open, 0, closer)
    times = o["time"].reset_index(drop=True)
    exit_time = times.iloc[ci].reset_index(drop=True)
    if times.dtype.kind == "M" and not is_open.all():
        exit_time[is_open] = pd.NaT
    else:  # as the loop's frame infers it (all NaT: datetime64[s]; other times: objects)
        exit_time = pd.Series([pd.NaT if e else v for e, v in zip(is_open, exit_time)],
                              dtype=None if len(exit_time) else object)
    reason = o["reason"].to_numpy()[ci].astype(object)
    reason[is_open] = "end_of_data"
    data = {c: _like_loop(o[c].iloc[tstart]) for c in cols}
    data.update(entry_time=_like_loop(times.iloc[tstart]), exit_time=exit_time,
                size=np.where(from_flip, q[tstart], sz[tstart]), entry_price=px[tstart],
                exit_price=np.where(is_open, end_px, px[ci]), fee=tfee, pnl=pnl,
                exit_reason=list(reason))
    return pd.DataFrame(data, columns=columns)


def _like_loop(v: pd.Series) -> pd.Series:
    """``v`` with the dtype a frame built from its values as Python scalars infers (the
    old loop built the table from dicts): numpy ints -> int64, floats -> float64."""
    v = v.reset_index(drop=True)
    kind = v.dtype.kind if isinstance(v.dtype, np.dtype) else ""
    if (kind in "bM" and kind) or isinstance(v.dtype, pd.StringDtype):
        return v    # text: the frame of its str values infers the same dtype
    if kind in "if" and kind and v.dtype != np.uint64:   # uint64 may exceed int64
        return v.astype(np.int64 if kind == "i" else np.float64)
    return pd.Series(v.tolist())


def _running_sums(x: np.ndarray, starts: np.ndarray, lens: np.ndarray, init: np.ndarray):
    """Running sums ``init[j] + x[starts[j]] + x[starts[j] + 1] + ...`` of segments, added
    left to right as a loop would (``np.add.reduceat`` may sum pairwise, and differences
    of one global cumsum round differently). Returns (per element, per segment total).
    Loops over the position in the segment, all segments at once: longest segment steps.
    """
    out = np.empty(len(x))
    by_len = np.argsort(-lens, kind="stable")
    s, ln = starts[by_len], lens[by_len]
    acc = init[by_len].astype(np.float64)
    for k in range(ln[0] if len(ln) else 0):
        na = np.searchsorted(-ln, -k, side="left")    # segments longer than k
        idx = s[:na] + k
        acc[:na] += x[idx]
        out[idx] = acc[:na]
    total = np.empty(len(acc))
    total[by_len] = acc
    return out, total
