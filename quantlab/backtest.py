"""Backtests of target-exposure signals with realistic costs (DESIGN.md conventions).

``signal`` is the target exposure in [-1, 1] as a fraction of equity on (time, asset[,
parameter dims]); NaN = hold; 0 = flat. Stamped t = decided with data up to t.
``execution="close"`` fills at t's close, ``"next_open"`` at t+1's open. An order is
placed when the target changes (``rebalance="on_change"``) or every bar
(``"daily"``). A target set on a missing bar (NaN price) waits for the next bar with a
price; positions are marked at the last valid close.

Sizing: exposure e invests e · equity net of costs, so e = 1 from cash buys
``(cash - fixed_fees) / (price · (1 + slippage) · (1 + fees))`` shares (vectorbt's
all-cash entry), and e = 0 sells the whole position.

``group=True`` runs one cash account per parameter combination across the assets (a
portfolio): exposure = signal × max_leverage per asset, Σ|exposure| capped at
max_leverage pro rata. Only assets whose target changed trade on a bar (unchanged
assets keep their shares and drift with prices) unless ``rebalance="daily"``, which
rebalances every asset every bar. Each order is sized against the account's equity
before the bar's orders; sells go first, and a buy never spends more cash than the
account has.

Stops (``sl_stop``, ``tp_stop``, ``sl_trail``: fractions, scalars or DataArrays over
asset and parameter dims, which then become dims of the result, so a stop grid is one
call): from the bar after a position opens, each bar is checked before its signal, on
open/high/low/close when the data has them (close only otherwise). Stop-loss at
entry·(1 - sl_stop), trailing stop at the highest high since entry·(1 - sl_trail)
(mirrored for shorts), take-profit at entry·(1 + tp_stop); entry = the close of the bar
the position opened on (vectorbt's ``stop_entry_price="close"``); adding to a position
does not move it. Rules: the protective stop (the tighter of stop-loss and trailing)
wins over the take-profit when one bar reaches both (vectorbt's order); a level the open
gapped through fills at the open, otherwise at the level; the extreme moves after the
bar's check. A stop fills with the same slippage and fees as any order (vectorbt's
default fills stops at the bare level). A stop replaces its column's signal on that bar
and sets its target to 0, so the next entry (a new non-zero target) re-enters, as in
vectorbt. Every trade records why it closed: ``signal``, ``stop``, ``take_profit``,
``trailing``, ``drawdown`` (``dd_limit``), ``margin_call`` or ``end_of_data`` (still
open). A trade is a round trip (the position leaves 0 until it is back at 0 or flips),
vectorbt's ``positions``; with partial exits vectorbt's ``trades`` (one per reducing
order) are more. An order skipped because of its fixed fee stays in ``res.orders`` with
size 0 and reason ``fixed_fee`` (see ``backtest``).

Order events (``entries``/``exits`` with ``size``/``accumulate``: pyramiding), limit
orders and leverage (``max_leverage``, ``borrow_rate``, ``maintenance_margin``): see
``backtest``. Events on a missing bar wait for the next bar with a price (vectorbt drops
them).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import xarray as xr

from quantlab import _validate
from quantlab._kernels import backtest as _k
from quantlab.errors import DataError

__all__ = ["backtest", "Slippage", "BacktestResult", "BacktestingEngine"]

# the kernel's order reasons (cython_kernels/backtest.pyx R_*) and size types (S_*)
# "fixed_fee" marks an order that was skipped, not filled (size 0, fee 0): its fixed fee
# was more than the account could pay (see ``backtest``)
REASONS = ("signal", "stop", "take_profit", "trailing", "drawdown", "margin_call",
           "fixed_fee")
# dd_limit's modes: "cooldown" flat for dd_cooldown bars then back in with the peak
# restarted; "halt" measured from the all-time peak and flat for the rest of the run
DD_MODES = ("cooldown", "halt")
MAX_LEVERAGE = 100.0   # a sanity bound: gross exposure of 100 x equity
SIZE_TYPES = ("equity", "value", "shares")
# backtest-only metrics a metrics-only run accumulates (n_trades needs the order list)
STREAMED_EXTRAS = ("fees_paid", "turnover", "exposure", "n_orders")


_RESERVED = {"t", "col", "time", "asset", "size", "price", "fee", "reason", "traded",
             "entry_time", "exit_time", "entry_price", "exit_price", "pnl", "exit_reason",
             "w", "g"}


@dataclass(frozen=True)
class Slippage:
    """A slippage model, evaluated from data up to the decision bar only.

    - ``Slippage("fixed", bps=5)``: a constant fraction bps / 1e4 of the price.
    - ``Slippage("volume_based", coef=0.1, cap=0.05, window=20, bps=0)``: square-root
      market impact (Almgren et al. 2005; Kissell & Glantz 2003): slippage of an order of
      Δ shares = bps/1e4 + min(coef · σ · sqrt(|Δ| / V), cap) with σ the ``window``-bar
      std of returns and V the bar's volume. Needs ``volume``.
    - ``Slippage("adaptive", bps=2, vol_mult=0.1, range_mult=0.1, window=20)``:
      bps/1e4 + vol_mult · σ + range_mult · (high - low) / close of the decision bar: wider
      in volatile markets. Needs ``high`` and ``low``.
    """

    model: str = "fixed"
    bps: float = 0.0
    coef: float = 0.1
    cap: float = 0.05
    window: int = 20
    vol_mult: float = 0.1
    range_mult: float = 0.1

    def __post_init__(self):
        if self.model not in ("fixed", "volume_based", "adaptive"):
            raise ValueError(f"unknown slippage model {self.model!r}; use fixed, "
                             "volume_based or adaptive")
        # a slippage fraction of 1 or more would fill a sell at a price <= 0
        checked = dict(
            bps=_validate.number("Slippage bps", self.bps, 0, 1e4, hi_open=True),
            coef=_validate.number("Slippage coef", self.coef, 0),
            cap=_validate.number("Slippage cap", self.cap, 0, 1, hi_open=True),
            window=_validate.integer("Slippage window", self.window, 2),
            vol_mult=_validate.number("Slippage vol_mult", self.vol_mult, 0),
            range_mult=_validate.number("Slippage range_mult", self.range_mult, 0))
        if self.model == "volume_based" and checked["bps"] / 1e4 + checked["cap"] >= 1:
            raise ValueError(f"Slippage('volume_based'): bps / 1e4 + cap must be < 1 (the "
                             f"largest slippage), got {checked['bps'] / 1e4 + checked['cap']!r}")
        for k, v in checked.items():   # frozen: set the converted values once
            object.__setattr__(self, k, v)

    def panels(self, ds: xr.Dataset) -> tuple[xr.DataArray, xr.DataArray, float]:
        """(base fraction, impact coefficient per sqrt(share), cap) on (time, asset)."""
        from quantlab import rolling
        from quantlab.data import returns

        close = ds["close"].transpose("time", "asset")

        def const(v):  # a stride-0 view: no 20 MB panel for a constant
            return close.copy(data=np.broadcast_to(np.float64(v), close.shape))

        base, impact = const(self.bps / 1e4), const(0.0)
        if self.model == "volume_based":
            if "volume" not in ds:
                raise DataError("Slippage('volume_based') needs a 'volume' variable")
            sigma = rolling.std(returns(close), self.window, min_periods=2)
            with np.errstate(divide="ignore", invalid="ignore"):
                impact = (self.coef * sigma / np.sqrt(ds["volume"])).where(ds["volume"] > 0)
            impact = impact.fillna(0.0)
        elif self.model == "adaptive":
            missing = [v for v in ("high", "low") if v not in ds]
            if missing:
                raise DataError(f"Slippage('adaptive') needs {', '.join(missing)}")
            sigma = rolling.std(returns(close), self.window, min_periods=2).fillna(0.0)
            rng = ((ds["high"] - ds["low"]) / close).fillna(0.0)
            base = base + self.vol_mult * sigma + self.range_mult * rng
        return base, impact, self.cap


@dataclass
class BacktestResult:
    """Equity, cash, positions (shares) and returns as DataArrays; orders and trades."""

    equity: xr.DataArray
    cash: xr.DataArray
    positions: xr.DataArray
    orders: pd.DataFrame
    init_cash: float
    periods: int
    group: bool
    prices: xr.DataArray = field(repr=False)
    risk_free_rate: float = 0.0  # annual; the default of metrics()
    halted: xr.DataArray | None = field(default=None, repr=False)  # dd_limit's flat bars
    interest: xr.DataArray | None = field(default=None, repr=False)  # borrow_rate charges
    dd_mode: str | None = None  # the drawdown control that ran ("cooldown", "halt"; None: off)

    @property
    def returns(self) -> xr.DataArray:
        prev = self.equity.shift(time=1).fillna(self.init_cash)
        return (self.equity / prev - 1.0).rename("returns")

    @cached_property
    def trades(self) -> pd.DataFrame:  # built once: metrics() and users both read it
        return _trades(self.orders, self.prices)

    def metrics(self, risk_free_rate: float | None = None) -> xr.Dataset:
        """``ql.metrics.summary`` of the returns plus n_trades, fees_paid, turnover
        (traded value / mean equity), exposure (mean |position value| / equity),
        trade_win_rate and trade_profit_factor (closed and open trades)."""
        from quantlab import metrics

        rf = self.risk_free_rate if risk_free_rate is None else risk_free_rate
        rf = _validate.number("risk_free_rate (annual)", rf, -1, None, lo_open=True)
        ds = metrics.summary(self.returns, risk_free_rate=rf,
                             annualization=self.periods)
        ds.attrs.update(periods=self.periods, dd_mode=str(self.dd_mode))
        keys = [d for d in self.equity.dims if d != "time"]  # one account per key
        tr = self.trades
        value = (self.positions * self.prices.ffill("time")).fillna(0.0)
        gross = abs(value).sum("asset") if self.group else abs(value)
        ds["exposure"] = (gross / self.equity).mean("time")
        zero = xr.zeros_like(ds["sharpe_ratio"])

        def per_account(frame, col, how):
            if frame.empty:
                return zero.copy()
            s = frame.groupby(keys)[col].agg(how) if keys else frame[col].agg(how)
            if not keys:
                return xr.full_like(zero, float(s))
            return zero + xr.DataArray.from_series(s).reindex_like(zero).fillna(0.0)

        o = self.orders.assign(traded=self.orders["size"].abs() * self.orders["price"])
        ds["n_trades"] = per_account(tr, "pnl", "count")
        ds["fees_paid"] = per_account(o, "fee", "sum")
        ds["turnover"] = per_account(o, "traded", "sum") / self.equity.mean("time")
        with np.errstate(invalid="ignore", divide="ignore"):
            wins = per_account(tr.assign(w=tr["pnl"] > 0), "w", "sum")
            ds["trade_win_rate"] = (wins / ds["n_trades"]).where(ds["n_trades"] > 0)
            gp = per_account(tr.assign(g=tr["pnl"].clip(lower=0)), "g", "sum")
            gl = per_account(tr.assign(g=-tr["pnl"].clip(upper=0)), "g", "sum")
            ds["trade_profit_factor"] = (gp / gl).where(ds["n_trades"] > 0)
        return ds

    def __getitem__(self, name):  # res["total_return"] as in the seed's dict results
        m = self.metrics()
        if name not in m:
            raise KeyError(f"unknown metric {name!r}; available: {', '.join(m.data_vars)}")
        v = m[name]
        return float(v) if v.ndim == 0 else v

    def plot(self, **kw):
        from quantlab import plots

        return plots.backtest_figure(self, **kw)


def _trades(orders: pd.DataFrame, prices: xr.DataArray):
    """Round trips from the orders: a trade opens when a position leaves 0 and closes when
    it returns to 0 or flips sign; one still open is marked at the last close."""
    cols = ["asset", *[c for c in orders.columns if c not in
                       ("t", "col", "time", "asset", "size", "price", "fee", "reason")]]
    orders = orders[orders["size"] != 0]   # skipped orders (reason fixed_fee) trade nothing
    rows = []
    last_px = prices.ffill("time").isel(time=-1)
    for key, g in orders.groupby(cols, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        q = 0.0
        cur = None
        for o in g.itertuples(index=False):
            flow = -o.size * o.price - o.fee
            if cur is None:
                cur = dict(zip(cols, key), entry_time=o.time, entry_price=o.price,
                           size=o.size, fee=0.0, pnl=0.0)
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
                    cur = dict(zip(cols, key), entry_time=o.time, entry_price=o.price,
                               size=newq, fee=o.fee * (1 - frac), pnl=flow * (1 - frac))
                else:
                    rows.append(cur)
                    cur = None
            q = newq
        if cur is not None:  # open at the end: mark at the last close
            px = float(last_px.sel(asset=cur["asset"]))
            cur.update(exit_time=pd.NaT, exit_price=px, exit_reason="end_of_data")
            cur["pnl"] += q * px
            rows.append(cur)
    columns = [*cols, "entry_time", "exit_time", "size", "entry_price", "exit_price",
               "fee", "pnl", "exit_reason"]
    return pd.DataFrame(rows, columns=columns)


def _as_dataset(data) -> xr.Dataset:
    if isinstance(data, xr.DataArray):
        data = data.to_dataset(name="close")
    if not isinstance(data, xr.Dataset):
        raise TypeError("data must be an xarray Dataset with 'close' (or a close DataArray)")
    if "close" not in data:
        raise DataError("data has no 'close' variable")
    _validate.coords(data, what="data")
    return data


def _check_slippage_panel(slip, base):
    """The adaptive slippage (bps/1e4 + vol_mult · σ + range_mult · range, from the data)
    must stay below 1 everywhere, else a sell fills at a price <= 0: name the bar where
    it does not (volume_based is bounded by bps/1e4 + cap < 1 at construction)."""
    worst = base.fillna(0.0).argmax(...)
    v = float(base.isel(worst))
    if v >= 1:
        where = {d: str(base[d].values[int(i)])[:19] for d, i in worst.items()}
        raise ValueError(f"Slippage({slip.model!r}) reaches a slippage of {v:.4g} at {where}; "
                         "it must stay < 1 (a sell would fill at a price <= 0): lower "
                         "bps, vol_mult or range_mult")


def _labelled(obj, what, dims=("time", "asset")):
    """A labelled option (size, stops, fees as DataArrays) is matched to the data by its
    labels: each of ``dims`` it has needs its coordinate (DataError otherwise)."""
    if isinstance(obj, xr.DataArray):
        _validate.coords(obj, tuple(d for d in dims if d in obj.dims), what=what)


def _param(name, v, lo=None, hi=None, *, lo_open=False, hi_open=False, finite=True,
           nan_ok=False) -> xr.DataArray:
    """A numeric option as a 0-d DataArray (a scalar) or the DataArray itself (a sweep over
    its dims), every value in the range (``_validate.number``'s rules and words; NaN
    passes only with ``nan_ok``, where it means "off")."""
    if not isinstance(v, xr.DataArray):
        if nan_ok and isinstance(v, (float, np.floating)) and np.isnan(v):
            return xr.DataArray(np.nan)
        return xr.DataArray(_validate.number(name, v, lo, hi, lo_open=lo_open,
                                             hi_open=hi_open, finite=finite))
    _labelled(v, name)
    _validate.real_array(name, v.dtype)
    a = np.asarray(v.values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ok = ~np.isnan(a) & (np.isfinite(a) | (not finite))
        if lo is not None:
            ok &= (a > lo) if lo_open else (a >= lo)
        if hi is not None:
            ok &= (a < hi) if hi_open else (a <= hi)
    bad = ~ok & ~(np.isnan(a) if nan_ok else np.zeros(a.shape, bool))
    if bad.any():   # raises, worded as for a scalar
        _validate.number(name, float(a.ravel()[np.flatnonzero(bad)[0]]), lo, hi,
                         lo_open=lo_open, hi_open=hi_open, finite=finite)
    return v.astype(np.float64)


def _check_signal(signal: xr.DataArray, ds: xr.Dataset) -> xr.DataArray:
    if not isinstance(signal, xr.DataArray):
        raise TypeError("signal must be an xarray DataArray on (time, asset[, params])")
    _validate.coords(signal, what="signal")
    _validate.real_array("signal", signal.dtype)
    if not signal.indexes["time"].equals(ds.indexes["time"]):
        extra = signal.indexes["time"].difference(ds.indexes["time"])
        raise ValueError("signal and data have different time axes"
                         + (f" (e.g. {extra[0]} is not in the data)" if len(extra) else "")
                         + "; align them first (signal.reindex(time=ds.time))")
    missing = set(signal.asset.values.tolist()) - set(ds.asset.values.tolist())
    if missing:
        raise ValueError(f"signal has assets not in the data: {sorted(missing)}")
    v = signal.values
    with np.errstate(invalid="ignore"):
        bad = np.abs(v) > 1.0 + 1e-12  # NaN compares False
    if bad.any():
        i = np.unravel_index(np.flatnonzero(bad)[0], v.shape)
        where = {d: str(signal[d].values[j])[:19] for d, j in zip(signal.dims, i)}
        raise ValueError(f"signal must be in [-1, 1] (target exposure); {int(bad.sum())} "
                         f"values are not, first {float(v[i])} at {where}")
    return signal


def _level(name, v, **rng) -> xr.DataArray:
    """A fraction-of-price option (stop, limit offset) in its range; scalar or over asset
    and parameter dims, never time."""
    v = _param(name, v, **rng)
    if "time" in v.dims:
        raise ValueError(f"{name} may vary over asset and parameter dims, not time")
    return v


def backtest(data, signal=None, *, entries=None, exits=None, size=None, accumulate=False,
             size_type="equity", init_cash=100_000.0, fees=0.0, fixed_fees=0.0, slippage=0.0,
             max_position_size=None, max_leverage=1.0, borrow_rate=0.0,
             maintenance_margin=0.25, execution="close", rebalance="on_change", group=False,
             periods=252, sl_stop=None, tp_stop=None, sl_trail=None, order_type="market",
             limit_offset=None, limit_tif=None, metrics_only=None, dd_limit=None,
             dd_cooldown=21, dd_mode="cooldown") -> BacktestResult:
    """Simulate ``signal`` (or ``entries``/``exits``) on ``data``; see the module doc.

    ``metrics_only`` (a tuple of metric names): keep no equity, positions or orders and
    return an ``xr.Dataset`` of those metrics per account, accumulated while the kernel
    runs (memory independent of the number of bars). Names: the returns metrics that need
    no quantiles or benchmark (``ql.metrics.streaming_names()``) and ``fees_paid,
    turnover, exposure, n_orders``; equal to ``metrics()`` of the full backtest.

    ``dd_limit`` (a fraction, e.g. 0.2): drawdown control inside the simulation. When an
    account's equity falls to (1 - dd_limit) x its peak, all its positions are closed on
    that bar (at the prices that revealed the breach). ``dd_mode="cooldown"`` (default):
    it stays flat for ``dd_cooldown`` bars, then re-enters at the signal's current
    targets and its peak restarts from the equity at re-entry, so each episode is
    limited but the run's max drawdown is not (two 20% episodes lose 36%).
    ``dd_mode="halt"``: the peak is the all-time peak and the account stays flat for the
    rest of the run (``dd_cooldown`` is ignored): a flat account cannot climb back to
    within the limit of that peak, so any re-entry rule would re-enter below the line;
    the run's max drawdown is then the limit plus the breach bar's own move and costs.
    ``res.halted`` marks the flat bars and ``res.dd_mode`` names the mode (both None
    without ``dd_limit``).

    Ranges (a ValueError names the argument, value and range): ``init_cash`` > 0 finite;
    ``fees`` in [0, 1) (fraction of traded value); ``fixed_fees`` >= 0 finite (per order);
    ``slippage`` in [0, 1) or a ``Slippage`` whose largest slippage stays < 1 (a sell
    never fills at a price <= 0); ``max_leverage`` in (0, 100]; ``max_position_size`` > 0
    (inf = no cap); ``borrow_rate`` and ``maintenance_margin`` in [0, 1), with
    ``max_leverage * maintenance_margin < 1`` (else every levered order is margin-called
    on its own bar); ``periods`` an
    integer >= 1; ``sl_stop``/``tp_stop``/``sl_trail`` > 0 finite (NaN = off);
    ``limit_offset`` in [0, 1); ``limit_tif`` an integer >= 1; ``size`` >= 0 (inf = all
    the buying power); ``dd_limit`` in (0, 1); ``dd_cooldown`` an integer >= 0. DataArray
    options are checked value by value and need coordinates for the time/asset dims they
    have, as ``data`` and ``signal`` do (a missing one is a DataError saying how to add it).

    Fixed fees: a signal or entry order is skipped, never reversed or filled at a loss the
    account cannot pay, when the account's equity after it (after the bar's earlier
    orders and this order's slippage and fees) would be <= 0, when paying the fee would
    turn the order around (sizing nets the fee out of the target, so a fee above the
    target value would turn a buy into a sell), or when the fee takes all of a buy's
    buying power. It is kept in ``res.orders`` with size 0, fee 0 and reason
    ``fixed_fee`` (not a trade). Stops, drawdown exits and margin calls always fill, but
    their fees are capped at the equity the account has left after the fill (0 when
    none), so fees never make equity negative; an account a forced order's fees drain
    closes its other positions on that bar (reason ``margin_call``, no fees; the
    draining fee pays only what those closes leave) and places no more orders.

    Orders (``entries=``/``exits=`` booleans with ``size=`` or ``accumulate=True``):
    long-only order events instead of target exposures. An entry buys ``size`` while
    flat (with ``accumulate``: adds ``size`` to the position, up to
    ``max_position_size`` x equity in value); an exit sells everything (with
    ``accumulate``: sells ``size``, at most the position). ``size_type``: ``"equity"``
    (fraction of the equity at the order, default), ``"value"`` (cash) or ``"shares"``;
    ``size=np.inf`` = all the buying power (vectorbt's default). Without ``size`` and
    ``accumulate``, entries/exits are the target exposures 1 and 0.

    Limit orders (``order_type="limit"``, ``limit_offset`` a fraction, ``limit_tif`` bars
    or None = until replaced; ``execution="close"``): a signal's order on bar t rests as
    a limit at close_t·(1 - limit_offset) to buy or close_t·(1 + limit_offset) to sell,
    for the shares the signal asks for at that price. The next ``limit_tif`` bars fill it
    when their low (high) reaches it, at the limit or at the open if the bar opened
    through it, with fees and no slippage; a new order on the asset replaces it; an
    unfilled one expires. Stops, drawdown control and margin calls stay market orders.

    Leverage: exposure = signal x ``max_leverage``, each asset capped at
    ``max_position_size`` (default: ``max_leverage``); a buy spends at most the buying
    power cash + (max_leverage - 1) x equity. ``borrow_rate`` (annual, converted per bar
    as (1 + r)^(1/periods) - 1) is charged at every close on borrowed cash (negative
    cash) and on the value of short positions; ``res.interest`` has the charges. With
    leverage or shorts, an account whose equity at a close is below
    ``maintenance_margin`` x its gross position value is liquidated at that close
    (slippage and fees apply; exit reason ``margin_call``); its targets become 0, so the
    next signal change re-enters. A gap can jump past the margin: an account left with
    equity <= 0 is closed (no more orders or interest; its equity stays where it ended).
    """
    ds = _as_dataset(data)
    if (signal is None) == (entries is None):
        raise ValueError("give exactly one of signal= or entries= (with exits=)")
    events = entries is not None and (size is not None or accumulate)
    if signal is not None and (size is not None or accumulate):
        raise ValueError("size= and accumulate= go with entries=/exits= (order events), "
                         "not with signal= (target exposures)")
    if entries is not None:
        from quantlab.signals import from_entries_exits

        for name, v in (("entries", entries), ("exits", exits)):
            if isinstance(v, xr.DataArray):
                _validate.coords(v, what=name)
        signal = from_entries_exits(entries, exits)
    signal = _check_signal(signal, ds)
    # every numeric option: finite (unless inf has a meaning) and in its range
    init_cash = _validate.number("init_cash", init_cash, 0, None, lo_open=True)
    max_leverage = _validate.number("max_leverage", max_leverage, 0, MAX_LEVERAGE,
                                    lo_open=True)
    max_position_size = max_leverage if max_position_size is None else _validate.number(
        "max_position_size", max_position_size, 0, None, lo_open=True,
        finite=False)
    borrow_rate = _validate.number("borrow_rate", borrow_rate, 0, 1, hi_open=True)
    maintenance_margin = _validate.number("maintenance_margin", maintenance_margin, 0, 1,
                                          hi_open=True)
    if max_leverage * maintenance_margin >= 1:
        # at full leverage equity / gross = 1 / max_leverage <= the margin: every order
        # would be margin-called on the bar it fills (silent churn)
        raise ValueError(
            f"max_leverage * maintenance_margin must be < 1 (a fully levered account holds "
            f"equity 1/max_leverage of its positions, which must stay above the margin), "
            f"got max_leverage={max_leverage!r} * maintenance_margin={maintenance_margin!r}"
            f" = {max_leverage * maintenance_margin:.4g}; use max_leverage < "
            f"{1 / maintenance_margin:.4g} or a lower maintenance_margin (0 = off)")
    periods = _validate.integer("periods", periods, 1)
    _validate.choice("size_type", size_type, SIZE_TYPES)
    _validate.choice("order_type", order_type, ("market", "limit"))
    _validate.choice("execution", execution, ("close", "next_open"))
    _validate.choice("rebalance", rebalance, ("on_change", "daily"))
    _validate.choice("dd_mode", dd_mode, DD_MODES)
    if dd_limit is not None:
        dd_limit = _validate.number("dd_limit", dd_limit, 0, 1, lo_open=True, hi_open=True)
    dd_cooldown = _validate.integer("dd_cooldown", dd_cooldown, 0)
    if events:
        if rebalance != "on_change":
            raise ValueError("rebalance='daily' applies to target exposures (signal=), not "
                             "to order events (entries= with size= or accumulate=True)")
        size = _param("size (inf = all the buying power)", np.inf if size is None else size,
                      0, None, finite=False)
    if order_type == "market" and (limit_offset is not None or limit_tif is not None):
        raise ValueError("limit_offset/limit_tif need order_type='limit'")
    if order_type == "limit":
        if limit_offset is None:
            raise ValueError("order_type='limit' needs limit_offset (a fraction from the "
                             "signal bar's close, e.g. 0.01)")
        if execution != "close":
            raise ValueError("limit orders rest from the bar after the signal; use "
                             "execution='close' with order_type='limit'")
        if limit_tif is not None:
            limit_tif = _validate.integer("limit_tif",
                                          limit_tif, 1)
    costs = {"fees": _param("fees", fees, 0, 1, hi_open=True),
             "fixed_fees": _param("fixed_fees", fixed_fees, 0, None)}
    for name, v in costs.items():
        bad = set(v.dims) & {"time", "asset"}
        if bad:
            raise ValueError(f"{name} may vary over parameter dims only, not {sorted(bad)}")
    # price levels relative to entry or close, per column: stops (NaN = off), limit offset
    stops = {name: _level(f"{name} (NaN = off)", v, lo=0, lo_open=True, nan_ok=True)
             for name, v in (("sl_stop", sl_stop), ("tp_stop", tp_stop), ("sl_trail", sl_trail))
             if v is not None}
    limits = {} if limit_offset is None else {"limit_offset": _level(
        "limit_offset", limit_offset, lo=0, hi=1, hi_open=True)}
    # a cost, level or size given over a dim (a fee or stop sweep) becomes a parameter dim
    sized = [size] if events else []
    signal = xr.broadcast(signal, *costs.values(), *stops.values(), *limits.values(),
                          *sized)[0]
    if execution == "next_open" and "open" not in ds:
        raise DataError("execution='next_open' needs an 'open' variable")
    if not ds.indexes["asset"].equals(signal.indexes["asset"]):
        ds = ds.sel(asset=signal.asset.values)   # a copy of every variable: only if needed
    from quantlab.data import validate

    validate(ds[[v for v in ("open", "high", "low", "close", "volume") if v in ds]])

    if isinstance(slippage, Slippage):
        slip = slippage
    else:
        slip = Slippage("fixed", bps=_validate.number("slippage", slippage, 0, 1,
                                                      hi_open=True) * 1e4)
    base, impact, cap = slip.panels(ds)
    if slip.model == "adaptive":   # data-driven: its largest value must still be < 1
        _check_slippage_panel(slip, base)
    if execution == "next_open" and slip.model != "fixed":  # costs from bars up to t only
        base, impact = base.shift(time=1).fillna(0.0), impact.shift(time=1).fillna(0.0)
    params = [d for d in signal.dims if d not in ("time", "asset")]
    clash = set(params) & _RESERVED
    if clash:
        raise ValueError(f"parameter dim name(s) {sorted(clash)} clash with the orders/trades "
                         f"table columns; rename them (reserved: {sorted(_RESERVED)})")
    signal = signal.transpose("time", "asset", *params)
    shape = signal.shape
    n, n_cols = shape[0], int(np.prod(shape[1:]))
    n_par = int(np.prod(shape[2:])) if params else 1

    def panel(da):  # (time, asset) float64; constants stay stride-0 views (no copy)
        return np.asarray(da.transpose("time", "asset").data, dtype=np.float64)

    exec_px = ds["open"] if execution == "next_open" else ds["close"]
    if group:
        grp = np.tile(np.arange(n_par, dtype=np.intp), shape[1])
        n_groups = n_par
    else:
        grp = np.arange(n_cols, dtype=np.intp)
        n_groups = n_cols
    asset_of_col = np.repeat(np.arange(shape[1], dtype=np.intp), n_par)

    def per_col(v):  # a per-parameter cost -> one value per column
        return np.ascontiguousarray(
            xr.broadcast(v, signal.isel(time=0, drop=True))[0]
            .transpose(*signal.dims[1:]).values.reshape(n_cols), dtype=np.float64)

    if metrics_only is not None:
        from quantlab import metrics as _m

        names = [metrics_only] if isinstance(metrics_only, str) else list(metrics_only)
        unknown = sorted(set(names) - set(_m.streaming_names()) - set(STREAMED_EXTRAS))
        if unknown or not names:
            raise ValueError(f"metrics_only: unknown or unavailable metric(s) {unknown}; "
                             f"choose from {', '.join(_m.streaming_names())}, "
                             f"{', '.join(STREAMED_EXTRAS)}")
    nan = xr.DataArray(np.nan)
    stop_args = bars = event_args = limit_args = None
    if stops or limits:   # checked within each bar's range
        bars = tuple(panel(ds[v] if v in ds else ds["close"]) for v in ("open", "high", "low"))
    if stops:
        stop_args = tuple(per_col(stops.get(k, nan)) for k in ("sl_stop", "tp_stop", "sl_trail"))
    if limits:
        limit_args = (per_col(limits["limit_offset"]), min(int(limit_tif or 0), n + 1))
    if events:
        sz = xr.broadcast(size, signal)[0].transpose(*signal.dims)
        event_args = (np.asarray(sz.data, dtype=np.float64).reshape(n, n_cols),
                      SIZE_TYPES.index(size_type), bool(accumulate))
    margin = 0.0
    if maintenance_margin and (max_leverage > 1 or bool((signal < 0).any())):
        margin = float(maintenance_margin)   # no account can breach it otherwise
    out = _k.simulate(
        panel(ds["close"]), panel(exec_px),
        np.ascontiguousarray(signal.values.reshape(n, n_cols), dtype=np.float64),
        panel(base), panel(impact), float(cap), asset_of_col, grp, n_groups,
        float(init_cash), per_col(costs["fees"]), per_col(costs["fixed_fees"]),
        float(max_leverage), float(max_position_size),
        rebalance == "daily", execution == "next_open", float(dd_limit or 0.0),
        n if dd_mode == "halt" else min(dd_cooldown, n), metrics_only is not None, bars=bars, stops=stop_args,
        events=event_args, limit=limit_args,
        borrow=(1 + float(borrow_rate)) ** (1 / periods) - 1, margin=margin)
    acct_dims = ["time", *params] if group else list(signal.dims)
    acct_shape = (n, *shape[2:]) if group else shape
    if metrics_only is not None:
        return _streamed_metrics(out, names, acct_dims[1:] if group else signal.dims[1:],
                                 acct_shape[1:], signal, n, periods)
    eq, cash, pos, (ot, oc, osz, opx, ofee, oreason), halted, interest = out

    coords = {d: signal[d] for d in signal.dims}
    positions = xr.DataArray(pos.reshape(shape), dims=signal.dims, coords=coords,
                             name="positions")
    acct_coords = {d: signal[d] for d in acct_dims}
    equity = xr.DataArray(eq.reshape(acct_shape), dims=acct_dims, coords=acct_coords,
                          name="equity")
    cash_da = xr.DataArray(cash.reshape(acct_shape), dims=acct_dims, coords=acct_coords,
                           name="cash")
    halted_da = None if not dd_limit else xr.DataArray(
        halted.reshape(acct_shape).astype(bool), dims=acct_dims, coords=acct_coords,
        name="halted")
    interest_da = None if not borrow_rate else xr.DataArray(
        interest.reshape(acct_shape), dims=acct_dims, coords=acct_coords, name="interest")
    # orders table with labels
    idx = np.unravel_index(oc, shape[1:])
    orders = pd.DataFrame({"t": ot, "col": oc, "time": signal.time.values[ot],
                           "asset": signal.asset.values[idx[0]]})
    for j, d in enumerate(params, start=1):
        orders[d] = signal[d].values[idx[j]]
    orders["size"], orders["price"], orders["fee"] = osz, opx, ofee
    orders["reason"] = np.asarray(REASONS, dtype=object)[oreason]
    prices = ds["close"].transpose("time", "asset")
    return BacktestResult(equity, cash_da, positions, orders, float(init_cash), periods,
                          bool(group), prices, halted=halted_da, interest=interest_da,
                          dd_mode=dd_mode if dd_limit else None)


def _streamed_metrics(out, names, dims, shape, signal, n_bars, periods) -> xr.Dataset:
    """The metrics-only kernel's statistics -> a Dataset over the account dims."""
    from quantlab import metrics as _m

    stats, extra = out
    ret_names = [k for k in names if k not in STREAMED_EXTRAS]
    values = _m.from_accumulator(stats.T, ret_names, periods) if ret_names else {}
    fees, traded, eq_sum, n_orders, expo = extra.T
    values.update(fees_paid=fees, turnover=traded / (eq_sum / n_bars), n_orders=n_orders,
                  exposure=expo / n_bars)
    coords = {d: signal[d] for d in dims}
    return xr.Dataset({k: (tuple(dims), np.asarray(values[k]).reshape(shape)) for k in names},
                      coords=coords)


class BacktestingEngine:
    """The seed's facade: ``BacktestingEngine(initial_capital=100000,
    commission_per_trade=0.001, slippage_bps=5, risk_free_rate=0.02)
    .run_backtest(signals, price_data)``; ``result["total_return"]`` etc. work.
    commission -> ``fees`` (fraction of traded value), bps -> ``slippage = bps / 1e4``,
    risk_free_rate is annual."""

    def __init__(self, initial_capital=100_000.0, commission_per_trade=0.001, slippage_bps=5.0,
                 risk_free_rate=0.02):
        self.initial_capital = _validate.number("initial_capital", initial_capital, 0, None,
                                                lo_open=True)
        self.fees = _validate.number("commission_per_trade", commission_per_trade, 0, 1,
                                     hi_open=True)
        self.slippage = _validate.number("slippage_bps", slippage_bps, 0, 1e4,
                                         hi_open=True) / 1e4
        self.risk_free_rate = _validate.number("risk_free_rate", risk_free_rate, -1, None,
                                               lo_open=True)

    def run_backtest(self, signals, price_data, **kw):
        res = backtest(price_data, signals, init_cash=self.initial_capital, fees=self.fees,
                       slippage=self.slippage, **kw)
        res.risk_free_rate = self.risk_free_rate
        return res


class _CallableModule(sys.modules[__name__].__class__):
    """``ql.backtest(...)`` runs a backtest while ``ql.backtest.Slippage`` etc. stay
    reachable: the module is callable (DESIGN.md names both the file and the function)."""

    def __call__(self, *args, **kwargs):
        return backtest(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
