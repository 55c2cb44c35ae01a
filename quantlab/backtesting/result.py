"""The kernel's arrays -> ``BacktestResult`` (or a metrics-only Dataset)."""
from __future__ import annotations

import atexit
import concurrent.futures
import os
import queue
import shutil
import tempfile
import uuid
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd
import xarray as xr

from quantlab import _progress, _validate, metrics
from quantlab import data as _data
from quantlab import store as _store
from quantlab._kernels import backtest as _k
from quantlab.backtesting import dispatch
from quantlab.backtesting.dispatch import Run
from quantlab.backtesting.options import (STREAMED_EXTRAS, BacktestOptions, last_valid,
                                          no_metric_dims)
from quantlab.backtesting.trades import REASONS, build_trades

# from_run, streamed_metrics, chunked and is_lazy serve quantlab.backtest and the
# deployment (the layers above); they are not public API
__all__ = ["BacktestResult"]


@dataclass
class BacktestResult:
    """Equity, cash, positions (shares) and returns as DataArrays; orders and trades.

    Made by :func:`quantlab.backtest`. ``res["total_return"]`` reads one metric (a float
    for a single account). Printed, it shows a summary table per account.
    :meth:`sel`/:meth:`isel` pick accounts (a sweep's parameter combination) as a result.

    Attributes
    ----------
    equity, cash, positions : xarray.DataArray
        Per bar and account (positions in shares, per asset).
    orders : pandas.DataFrame
        Every order: bar, account, time, asset, size, price, fee, reason.
    init_cash : float
        Initial cash per account.
    periods : int
        Bars per year.
    group : bool
        Whether accounts span the assets.
    prices : xarray.DataArray
        The close prices the positions are marked at.
    risk_free_rate : float
        Annual; the default of :meth:`metrics`.
    halted : xarray.DataArray or None
        ``dd_limit``'s flat bars.
    interest : xarray.DataArray or None
        ``borrow_rate`` charges.
    dd_mode : str or None
        The drawdown control that ran ("cooldown", "halt"; None: off).
    options : BacktestOptions or None
        The options it ran with (None: made otherwise).

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds)
    >>> res = ql.backtest(ds, sig, fees=0.001)
    >>> res.equity.dims
    ('time', 'asset')
    >>> res["n_trades"].values
    array([12.,  0., 10.,  9.])
    >>> res.trades.columns.tolist()
    ['asset', 'entry_time', 'exit_time', 'size', 'entry_price', 'exit_price', 'fee', 'pnl', 'exit_reason']
    """

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
    options: BacktestOptions | None = field(default=None, repr=False)  # those it ran with

    def __post_init__(self):
        for name in _LAZY:   # built on first use (a lean run's cash and positions)
            if isinstance(self.__dict__.get(name), (_LazyOrders, _LazyPanel, _Derived)):
                self.__dict__["_lazy_" + name] = self.__dict__.pop(name)

    def __getattr__(self, name):   # only for attributes not set: a lazy field
        lazy = self.__dict__.get("_lazy_" + name) if name in _LAZY else None
        if lazy is None:
            if name in _LAZY and name in self.__dict__:   # built by another thread meanwhile
                return self.__dict__[name]
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        value = self.__dict__.setdefault(name, lazy.frame())   # the first thread's wins
        self.__dict__.pop("_lazy_" + name, None)
        return value

    @property
    def returns(self) -> xr.DataArray:
        """Per-bar simple returns of each account's equity (the first from ``init_cash``).
        NaN (no observation) on a bar where none of the account's assets has a close and
        its equity did not change: before a listing, on a holiday, after a delisting.
        Counted as 0-return periods, they diluted the annualised metrics (a late-listed
        stock's cash years: GOOG's buy-and-hold from 2000 read 17.4 % a year for 27.7 %
        over its own bars). ``ql.metrics`` of them annualise with their time index's
        calendar, as ``metrics()`` does unless the run was given ``periods=`` (no attr:
        it would outlive a ``resample``).

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 300))
        >>> sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds)
        >>> res = ql.backtest(ds, sig, fees=0.001)
        >>> res.returns.isel(time=-1).round(5).values
        array([-0.00406,      nan,  0.00858,  0.00396])
        """
        eq = self.equity
        priced = self.prices.notnull()
        if self.group:
            priced = priced.any("asset")
        if not isinstance(eq.data, np.ndarray) or eq.get_axis_num("time") != 0:
            prev = _data.shifted(eq).fillna(self.init_cash)   # lazy: stays lazy
            r = eq / prev - 1.0
            return r.where(priced | (r != 0)).rename("returns")
        # in place, the same operations as the xarray lines above (~4x faster)
        e = eq.values
        out = np.empty(e.shape, np.result_type(e.dtype, np.float64))
        out[:1] = self.init_cash
        out[1:] = e[:-1]
        if np.isnan(out).any():      # the kernel writes none; the rule as above
            out[np.isnan(out)] = self.init_cash
        with np.errstate(divide="ignore", invalid="ignore"):   # as xarray's arithmetic:
            np.divide(e, out, out=out)       # a drained account's 0 / 0 is NaN, silently
        out -= 1.0
        out[(out == 0) & ~priced.broadcast_like(eq).transpose(*eq.dims).values] = np.nan
        return eq.copy(data=out).rename("returns")

    @cached_property
    def trades(self) -> pd.DataFrame:  # built once: metrics() and users both read it
        """Round-trip trades (closed and still open), one row each, built once.

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 300))
        >>> sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds)
        >>> res = ql.backtest(ds, sig, fees=0.001)
        >>> len(res.trades)
        31
        """
        return build_trades(self.orders_frame, self._asset_dim().prices)

    def metrics(self, risk_free_rate: float | None = None) -> xr.Dataset:
        """Performance metrics of every account.

        ``ql.metrics.summary`` of the returns plus n_trades, fees_paid, turnover (traded value /
        mean equity), exposure (mean |position value| / equity), trade_win_rate and
        trade_profit_factor (closed and open trades). The means run over the bars with a
        return, as the annualised metrics do (``returns``: a late listing's cash years are
        no observation).

        Parameters
        ----------
        risk_free_rate : float, optional
            ANNUAL risk-free rate (> -1); default the result's ``risk_free_rate``.

        Returns
        -------
        xarray.Dataset
            One variable per metric, one value per account.

        Raises
        ------
        ValueError
            If ``risk_free_rate`` <= -1 or is not finite.

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 300))
        >>> sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds)
        >>> res = ql.backtest(ds, sig, fees=0.001)
        >>> res.metrics()["total_return"].round(4).values
        array([ 0.0185,     nan,  0.0531, -0.2407])
        """
        rf = self.risk_free_rate if risk_free_rate is None else risk_free_rate
        rf = _validate.number("risk_free_rate (annual)", rf, -1, None, lo_open=True)
        no_metric_dims(self.equity.dims, "metrics()")   # results made otherwise
        returns = self.returns
        ds = metrics.summary(returns, risk_free_rate=rf, annualization=self.periods)
        ds.attrs.update(periods=self.periods, dd_mode=str(self.dd_mode))
        observed = self._observed(returns)
        ds["exposure"] = self._exposure(observed)
        zero = xr.zeros_like(ds["sharpe_ratio"])
        tr, o = self.trades, self.orders_frame
        pnl = tr["pnl"].to_numpy(dtype=np.float64)
        at = _account_of(tr, zero)
        ds["n_trades"] = _per_account(at, ~np.isnan(pnl), zero)
        at_o = _account_of(o, zero)
        ds["fees_paid"] = _per_account(at_o, o["fee"].to_numpy(dtype=np.float64), zero)
        traded = np.abs(o["size"].to_numpy(dtype=np.float64)) * o["price"].to_numpy(
            dtype=np.float64)
        ds["turnover"] = _per_account(at_o, traded, zero) / observed.mean("time")
        with np.errstate(invalid="ignore", divide="ignore"):
            wins = _per_account(at, pnl > 0, zero)
            ds["trade_win_rate"] = (wins / ds["n_trades"]).where(ds["n_trades"] > 0)
            gp = _per_account(at, np.clip(pnl, 0, None), zero)
            gl = _per_account(at, -np.clip(pnl, None, 0), zero)
            ds["trade_profit_factor"] = (gp / gl).where(ds["n_trades"] > 0)
        return ds

    def _observed(self, returns=None) -> xr.DataArray:
        """The equity on the bars with a return, NaN elsewhere: what the per-bar means
        (exposure, turnover's mean equity) average, counting the bars the annualised
        metrics count (not a listing's cash years). ``returns``: ``self.returns``, if
        already computed."""
        returns = self.returns if returns is None else returns
        eq = self.equity.where(returns.notnull())
        if eq.chunks is not None:   # the equity's chunks (the mask's: the closes')
            eq = eq.chunk(self.equity.chunksizes)
        return eq

    def _exposure(self, eq=None) -> xr.DataArray:
        """Mean |position value| / equity per account over the bars with a return (``eq``:
        the equity NaN elsewhere, default :meth:`_observed`), a bar without a position
        counting 0, as metrics_only counts it; positions valued at the last valid close.
        One kernel pass (``mean_exposure``); a dask-backed result's time chunks in turn,
        lazily (:func:`_exposure_by_chunks`)."""
        if eq is None:
            eq = self._observed()
        if "asset" not in self.prices.dims:   # one asset picked by a scalar: the same sums
            return self._asset_dim()._exposure(eq.expand_dims("asset", axis=1)).isel(asset=0)
        q = self.positions
        price = self.prices.transpose("time", "asset")
        if not price.indexes["asset"].equals(q.indexes["asset"]):
            price = price.reindex(asset=q["asset"])
        keys = [d for d in q.dims if d not in ("time", "asset")]
        acct = [*([] if self.group else ["asset"]), *keys]
        n_asset, n_par = q.sizes["asset"], int(np.prod([q.sizes[k] for k in keys]))
        qv = q.transpose("time", "asset", *keys).data.reshape(q.sizes["time"], -1)
        eqv = eq.transpose("time", *acct).data.reshape(eq.sizes["time"], -1)
        asset = np.repeat(np.arange(n_asset, dtype=np.intp), n_par)
        group = (np.tile(np.arange(n_par, dtype=np.intp), n_asset) if self.group
                 else np.arange(n_asset * n_par, dtype=np.intp))
        panels = (qv, price.data, eqv)
        if all(isinstance(x, np.ndarray) for x in panels):
            out = _k.mean_exposure(qv, price.values.astype(np.float64, copy=False), eqv,
                                   asset, group)
        else:
            out = _exposure_by_chunks(*panels, asset, group)
        like = (eq if self.group else q).isel(time=0, drop=True).transpose(*acct)
        # the formula's coords: the closes' scalar ones, and (per asset) their asset_class
        kept = {(), ("asset",)} if not self.group else {()}
        like = like.assign_coords({k: c for k, c in price.coords.items()
                                   if k not in price.dims and c.dims in kept})
        return like.copy(data=out.reshape(like.shape)).rename(None)

    def __getitem__(self, name):  # res["total_return"] as in the seed's dict results
        m = self.metrics()
        if name not in m:
            raise KeyError(f"unknown metric {name!r}; available: {', '.join(m.data_vars)}")
        v = m[name]
        return float(v) if v.ndim == 0 else v

    def plot(self, **kw):
        """Price with fills, position and equity of one account (bokeh).

        Parameters
        ----------
        **kw
            Passed to :func:`quantlab.plots.backtest_figure`: ``asset=`` (the account to
            show; the first by default) and parameter-dim selections.

        Returns
        -------
        bokeh.models.Column
            The figures, linked on time.

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 300))
        >>> res = ql.backtest(ds, ql.strategies.get("volatility_regime").signal(ds))
        >>> type(res.plot(asset="AAPL")).__name__
        'Column'
        """
        from quantlab import plots   # lazy: drawing lives in the face (bokeh)

        return plots.backtest_figure(self, **kw)

    def tearsheet(self, benchmark=None, **kw):
        """A tear sheet of this backtest (:func:`quantlab.plots.tearsheet`).

        Summary beside ``benchmark`` ("buy_and_hold" or a return series), equity, drawdowns,
        monthly returns, rolling Sharpe, distribution, trades.

        Parameters
        ----------
        benchmark : str or array-like, optional
            "buy_and_hold" or a return series.
        **kw
            Passed to :func:`quantlab.plots.tearsheet` (``window``, ``trades``, ...).

        Returns
        -------
        bokeh layout
            The tear sheet.

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 300))
        >>> sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds)
        >>> res = ql.backtest(ds, sig, fees=0.001)
        >>> one = ql.backtest(ds.sel(asset=["IBM"]), sig.sel(asset=["IBM"]))
        >>> type(one.tearsheet("buy_and_hold")).__name__
        'Column'
        """
        from quantlab import plots   # lazy: drawing lives in the face (bokeh)

        return plots.tearsheet(self, benchmark, **kw)

    def compute(self) -> BacktestResult:
        """This result in memory: a dask-backed result's arrays loaded in one pass.

        Returns
        -------
        BacktestResult
            The same result with NumPy-backed arrays and the orders as a DataFrame.

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 300))
        >>> sig = ql.strategies.get("volatility_regime").signal(ds)
        >>> lazy = ql.backtest(ds.chunk({"asset": 2}), sig.chunk({"asset": 2}))
        >>> type(lazy.equity.data).__name__, type(lazy.compute().equity.data).__name__
        ('Array', 'ndarray')
        >>> bool((lazy.compute().equity == ql.backtest(ds, sig).equity).all())
        True
        """
        import dask   # lazy: only dask-backed results need it

        arrays = [self.equity, self.cash, self.positions, self.halted, self.interest]
        loaded = dask.compute(*[a for a in arrays if a is not None])
        it = iter(loaded)
        arrays = [None if a is None else next(it) for a in arrays]
        return replace(self, equity=arrays[0], cash=arrays[1], positions=arrays[2],
                       halted=arrays[3], interest=arrays[4], orders=self.orders_frame,
                       prices=self.prices.compute())

    def as_portfolio(self) -> BacktestResult:
        """Independent accounts (``group=False``) as one book of their assets: equity,
        cash and borrowing charges summed over the assets, ``init_cash`` times their
        number, per parameter combination. Its ``metrics()`` are the whole book's (its
        Sharpe ratio, drawdown, exposure and turnover), its trades and orders the
        accounts'. A portfolio is returned as it is.

        Returns
        -------
        BacktestResult
            ``group=True``; no drawdown-control flags (``halted``: each account's own);
            ``options`` None (no single run had them).

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 300))
        >>> sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds)
        >>> res = ql.backtest(ds, sig, fees=0.001)
        >>> book = res.as_portfolio()
        >>> book.init_cash, round(float(book.equity[-1]), 2) == round(float(res.equity[-1].sum()), 2)
        (400000.0, True)
        >>> round(book["total_return"], 4)
        -0.0423
        """
        if self.group:
            return self
        res = self._asset_dim()
        n = res.prices.sizes["asset"]

        def total(a):
            return a.sum("asset", skipna=False)

        return BacktestResult(
            total(res.equity), res._mapped("cash", total), res._mapped("positions", _same),
            res._mapped("orders", _same), res.init_cash * n, res.periods, True, res.prices,
            risk_free_rate=res.risk_free_rate, interest=res._mapped("interest", total),
            dd_mode=res.dd_mode)

    def sel(self, indexers=None, method=None, tolerance=None, drop=False,
            **indexers_kwargs) -> BacktestResult:
        """The result of some accounts, picked by label as ``xarray``'s ``sel`` picks them.

        A scalar drops the dim, a list keeps it; ``method`` and ``tolerance`` as in
        xarray. Every field follows: equity, cash, positions, halted and interest; the
        prices when ``asset`` is picked; the orders of the picked accounts, their ``col``
        numbered in the picked columns (a dim picked by a scalar has no column, as in a
        run of that selection); lazy fields stay lazy. Parameter dims and ``asset`` can
        be picked; ``time`` cannot (re-run the backtest on the period), nor ``asset`` of
        a ``group=True`` result (one account spans the assets).

        Parameters
        ----------
        indexers : dict, optional
            ``{dim: labels}``; or give them as keywords.
        method : {None, 'nearest', 'pad', 'ffill', 'backfill', 'bfill'}, optional
            For labels not in the index, as in xarray.
        tolerance : optional
            The largest distance ``method`` may go, as in xarray.
        drop : bool, default False
            Drop the scalar coordinates a scalar leaves (not ``asset``'s: the trades and
            plots read it).

        Returns
        -------
        BacktestResult

        Raises
        ------
        KeyError
            A dim not in the result, or a label not in its index (xarray's).
        ValueError
            ``time`` picked, ``asset`` picked in a ``group=True`` result, a label picked
            twice, or ``drop=True`` with a scalar ``asset``.

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 300))
        >>> sig = ql.strategies.get("volatility_regime", window=[10, 15]).signal(ds)
        >>> res = ql.backtest(ds, sig, fees=0.001)
        >>> one = res.sel(window=10, asset="IBM")
        >>> one.equity.dims, float(one.equity["window"]), str(one.equity["asset"].values)
        (('time',), 10.0, 'IBM')
        >>> bool(one.metrics()["total_return"]
        ...      == ql.backtest(ds, sig.sel(window=10), fees=0.001).metrics()["total_return"]
        ...      .sel(asset="IBM"))
        True
        >>> res.sel(window=[10, 15], asset=["IBM"]).equity.sizes
        Frozen({'time': 300, 'asset': 1, 'window': 2})
        """
        picked = self._picked("sel", _indexers(indexers, indexers_kwargs, "sel"),
                              method=method, tolerance=tolerance)
        return self._selected(picked, drop)

    def isel(self, indexers=None, drop=False, **indexers_kwargs) -> BacktestResult:
        """The result of some accounts, picked by position as ``xarray``'s ``isel`` picks
        them; as :meth:`sel` (a scalar drops the dim, a list or slice keeps it).

        Parameters
        ----------
        indexers : dict, optional
            ``{dim: positions}``; or give them as keywords.
        drop : bool, default False
            As in :meth:`sel`.

        Returns
        -------
        BacktestResult

        Raises
        ------
        ValueError
            A dim not in the result, ``time`` picked, ``asset`` picked in a ``group=True``
            result, a position picked twice, or ``drop=True`` with a scalar ``asset``.
        IndexError
            A position out of range (naming the dim).

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 300))
        >>> sig = ql.strategies.get("volatility_regime", window=[10, 15]).signal(ds)
        >>> res = ql.backtest(ds, sig, group=True)
        >>> res.isel(window=-1).equity.dims, int(res.isel(window=-1).equity["window"])
        (('time',), 15)
        >>> res.isel(asset=0)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: isel: asset of a group=True result: its one account spans the assets (4); ...
        """
        return self._selected(self._picked("isel", _indexers(indexers, indexers_kwargs,
                                                             "isel")), drop)

    def _picked(self, how, indexers, **opts) -> dict:
        """Each picked dim's positions (an int drops the dim, an array keeps it), by
        xarray's own ``sel``/``isel`` of the dim's index, so labels, methods and their
        errors are xarray's."""
        if "time" in indexers:
            raise ValueError(f"{how}: time cannot be picked from a result (its first bar's "
                             "return would come from init_cash, not from the equity before "
                             "it): re-run the backtest on the period, e.g. ql.backtest("
                             "ds.sel(time=...), signal.sel(time=...))")
        if self.group and "asset" in indexers:
            raise ValueError(f"{how}: asset of a group=True result: its one account spans "
                             f"the assets ({self.prices.sizes['asset']}); backtest the "
                             "assets wanted, e.g. ql.backtest(ds.sel(asset=[...]), "
                             "signal.sel(asset=[...]), group=True)")
        eq = self.equity   # its dims: the accounts' (the positions' too, but time)
        unknown = [d for d in indexers if d not in eq.dims]
        if unknown:
            raise (KeyError if how == "sel" else ValueError)(
                f"{how}: no dim {', '.join(map(repr, unknown))} in this result; its dims: "
                f"{', '.join(map(str, eq.dims))}")
        picked = {}
        for d, v in indexers.items():
            pos = xr.DataArray(np.arange(eq.sizes[d]), dims=d, coords={d: eq[d]})
            try:
                pos = getattr(pos, how)({d: v}, **opts)
            except IndexError as e:   # NumPy's says neither the dim nor the size
                raise IndexError(f"{how}: {d}={v!r} is out of range for {d} (size "
                                 f"{eq.sizes[d]})") from e
            if pos.dims not in ((), (d,)):   # a DataArray indexer on other dims
                raise ValueError(f"{how}: {d}'s indexer must be a scalar, a list or a slice "
                                 f"(a result's dims stay its own), got dims {pos.dims}")
            picked[d] = int(pos) if pos.ndim == 0 else pos.values
            # a column picked twice: the orders' col map keeps one of the two (the other
            # had none: its trades lost), and metrics() fails on the repeated label
            if pos.ndim and np.unique(pos.values).size < pos.size:
                twice = pd.Index(eq[d].values[pos.values])
                v = twice[twice.duplicated()][0]
                v = v.item() if isinstance(v, np.generic) else v
                raise ValueError(f"{how}: {d} picks {v!r} more than once (method="
                                 "'nearest' may map two labels to one): pick each once")
        return picked

    def _selected(self, picked: dict, drop: bool) -> BacktestResult:
        """This result with ``picked`` (:meth:`_picked`) applied to every field."""
        drop = _validate.flag("drop", drop)
        if drop and isinstance(picked.get("asset"), int):
            raise ValueError("drop=True with a scalar asset would drop the asset's label, "
                             "which the trades, plots and risk report read: pick "
                             "asset=[...] or keep drop=False")

        def cut(a):
            return a.isel({d: p for d, p in picked.items() if d in a.dims}, drop=drop)

        prices = self.prices
        if "asset" in picked:   # by label: the prices' assets may come in another order
            prices = prices.sel(asset=self.equity["asset"].values[picked["asset"]])
        # the orders' col: the picked columns numbered as a run of the selection numbers
        # them (C order over asset and the parameter dims; a size-1 dim is no column)
        layout = [d for d in self.equity.dims if d != "time"]
        sizes = dict(self.equity.sizes)
        if self.group:   # the parameter dims of a portfolio, asset first in the columns
            layout = ["asset", *layout]
            sizes["asset"] = self.prices.sizes["asset"]
        n_cols = int(np.prod([sizes[d] for d in layout]))
        grid = np.arange(n_cols).reshape([sizes[d] for d in layout])
        for axis, d in enumerate(layout):
            if d in picked:
                grid = np.take(grid, np.atleast_1d(picked[d]), axis=axis)
        cols = np.full(n_cols, -1, dtype=np.intp)   # old column -> new (-1: not picked)
        cols[grid.ravel()] = np.arange(grid.size)
        dropped = [d for d, p in picked.items() if isinstance(p, int) and d != "asset"]

        def orders(o):
            o = _frame(o)
            new = cols[o["col"].to_numpy(dtype=np.intp)]
            kept = new >= 0
            o = o.loc[kept].drop(columns=dropped).reset_index(drop=True)
            o["col"] = new[kept]
            return o

        return BacktestResult(
            cut(self.equity), self._mapped("cash", cut), self._mapped("positions", cut),
            self._mapped("orders", orders), self.init_cash, self.periods, self.group,
            prices, risk_free_rate=self.risk_free_rate, halted=self._mapped("halted", cut),
            interest=self._mapped("interest", cut), dd_mode=self.dd_mode,
            options=None if self.options is None else _picked_opts(self.options,
                                                                   self.equity, picked))

    def _mapped(self, name, fn):
        """``fn`` of field ``name``: now if it is built, else when first read (a lazy
        field stays lazy); None stays None."""
        lazy = self.__dict__.get("_lazy_" + name)
        if lazy is not None:
            return _Derived(lazy, fn)
        value = getattr(self, name)
        return None if value is None else fn(value)

    def _asset_dim(self) -> BacktestResult:
        """This result with an asset picked by a scalar (``res.sel(asset="IBM")``) back as
        a dim of size 1: the layout trades, exposure, plots and the risk report read
        (itself when it has the dim)."""
        if "asset" in self.prices.dims:
            return self

        def grow(a):
            return a.expand_dims("asset", axis=1)

        # the prices' scalar coords were on asset (asset_class): on it again
        prices = grow(self.prices)
        prices = prices.assign_coords({k: ("asset", c.values[None]) for k, c in
                                       prices.coords.items() if c.ndim == 0})
        return BacktestResult(
            grow(self.equity), self._mapped("cash", grow), self._mapped("positions", grow),
            self._mapped("orders", _same), self.init_cash, self.periods, self.group,
            prices, risk_free_rate=self.risk_free_rate,
            halted=self._mapped("halted", grow), interest=self._mapped("interest", grow),
            dd_mode=self.dd_mode, options=self.options)

    @property
    def orders_frame(self) -> pd.DataFrame:
        """``orders`` as a pandas frame (a dask-backed result's are computed)."""
        return _frame(self.orders)

    def __repr__(self):
        from quantlab import tearsheet   # lazy: the face formats numbers

        return tearsheet.summary_text(self)

    def _repr_html_(self):
        from quantlab import tearsheet   # lazy: the face formats numbers

        return tearsheet.summary_html(self)


_LAZY = ("orders", "cash", "positions")   # BacktestResult fields that may come lazy


def _same(x):
    return x


def _frame(o) -> pd.DataFrame:
    """An orders table as a pandas frame (a dask one computed)."""
    if not hasattr(o, "compute"):
        return o
    o = o.compute().reset_index(drop=True)
    # dask converts text to pyarrow strings: back to pandas' default as in memory
    text = [c for c in o.columns if isinstance(o[c].dtype, pd.StringDtype)]
    return o.astype({c: "str" for c in text}) if text else o


def _indexers(indexers, kw, how) -> dict:
    """``sel``/``isel``'s indexers, given as a dict or as keywords."""
    if indexers is not None and kw:
        raise ValueError(f"{how}: give the indexers as a dict or as keywords, not both")
    return dict(kw if indexers is None else indexers)


def _exposure_by_chunks(q, price, eq, asset, group):
    """``mean_exposure`` of (time, column) panels, dask-backed, over their time chunks in
    turn (the kernel's carry: the last prices, each account's sum and count), lazily: a
    task per chunk, each reading one chunk of the three panels."""
    import dask   # lazy: dask-backed results only
    import dask.array as da

    rows = next(x.chunks[0] for x in (eq, q, price) if hasattr(x, "chunks"))
    q, price, eq = (da.asarray(x).rechunk({0: rows, 1: -1}) for x in (q, price, eq))
    carry = None
    for i in range(len(rows)):
        carry = dask.delayed(_exposure_step)(q.blocks[i], price.blocks[i], eq.blocks[i],
                                             asset, group, carry)
    mean = dask.delayed(_nan_mean)(carry)
    return da.from_delayed(mean, shape=(eq.shape[1],), dtype=np.float64)


def _exposure_step(q, price, eq, asset, group, carry):
    """One time chunk of :func:`_exposure_by_chunks`: the carry a new one (tasks stay
    pure: dask may run a task twice)."""
    carry = ((np.full(price.shape[1], np.nan), np.zeros(eq.shape[1]), np.zeros(eq.shape[1]))
             if carry is None else tuple(a.copy() for a in carry))
    q, price, eq = (np.asarray(x, dtype=np.float64) for x in (q, price, eq))
    _k.mean_exposure(q, price, eq, asset, group, carry)
    return carry


def _nan_mean(carry):
    """Each account's mean from its carried sum and count (none counted: NaN)."""
    with np.errstate(invalid="ignore"):
        return carry[1] / carry[2]


def _account_of(frame: pd.DataFrame, zero: xr.DataArray) -> np.ndarray:
    """Each row's account: its position in ``zero`` (flat, C order) by the row's labels
    of ``zero``'s dims (-1: none of them)."""
    if not zero.dims:
        return np.zeros(len(frame), np.intp)
    if zero.ndim == 1:
        d = zero.dims[0]
        return zero.indexes[d].get_indexer(frame[d])
    grid = pd.MultiIndex.from_product([zero.indexes[d] for d in zero.dims])
    return grid.get_indexer(pd.MultiIndex.from_frame(frame[list(zero.dims)]))


def _per_account(account: np.ndarray, w: np.ndarray, zero: xr.DataArray) -> xr.DataArray:
    """Per account, the sum of ``w`` over its rows (NaN skipped; 0 for none)."""
    ok = (account >= 0) & ~np.isnan(w) if w.dtype.kind == "f" else account >= 0
    total = np.bincount(account[ok], weights=w[ok].astype(np.float64), minlength=zero.size)
    # float64 also for no rows (bincount of none is int64 whatever its weights)
    return zero.copy(data=total.astype(np.float64, copy=False).reshape(zero.shape))


@dataclass(frozen=True)
class _LazyPanel:
    """A lean run's cash or positions (``name``), rebuilt from its order records when
    first read: the kernel's own operations in its order, so the bits it would have
    written (``positions_from_orders``, ``cash_from_orders``)."""

    run: Run
    name: str
    init_cash: float

    def frame(self) -> xr.DataArray:
        run, orders = self.run, dispatch.order_arrays(self.run.out[3])
        n, m = run.signal.shape[0], int(np.prod(run.signal.shape[1:]))
        if self.name == "positions":
            pos = _k.positions_from_orders(n, m, orders)
            return xr.DataArray(pos.reshape(run.signal.shape), dims=run.signal.dims,
                                coords={d: run.signal[d] for d in run.signal.dims},
                                name="positions")
        n_par = int(np.prod(run.signal.shape[2:]))
        n_groups = n_par if run.group else m
        grp = np.tile(np.arange(n_par, dtype=np.intp), run.signal.shape[1]) if run.group \
            else np.arange(m, dtype=np.intp)
        cash = _k.cash_from_orders(n, grp, n_groups, self.init_cash, orders)
        return _account(run, cash, "cash")


@dataclass(frozen=True)
class _Derived:
    """A lazy field of a selection (:meth:`BacktestResult.sel`): ``fn`` of its source's
    value (``source``: a lazy field) when first read."""

    source: object
    fn: object

    def frame(self):
        return self.fn(self.source.frame())


@dataclass(frozen=True)
class _LazyOrders:
    """A run's order arrays, labelled into the orders table when it is first read."""

    run: Run
    arrays: tuple   # or dispatch.BlockOrders (joined on first read)

    def frame(self) -> pd.DataFrame:
        return _orders(self.run, *dispatch.order_arrays(self.arrays))


def _orders(run: Run, ot, oc, osz, opx, ofee, oreason) -> pd.DataFrame:
    """The kernel's order arrays as a table labelled with time, asset and parameters."""
    signal = run.signal
    idx = np.unravel_index(oc, signal.shape[1:])
    orders = pd.DataFrame({"t": ot, "col": oc, "time": signal.time.values[ot],
                           "asset": signal.asset.values[idx[0]]})
    for j, d in enumerate(run.params, start=1):
        orders[d] = signal[d].values[idx[j]]
    orders["size"], orders["price"], orders["fee"] = osz, opx, ofee
    orders["reason"] = np.asarray(REASONS, dtype=object)[oreason]
    return orders


def _account(run: Run, a, name) -> xr.DataArray:
    """A per-account kernel array labelled (time, *params) or (time, asset, *params)."""
    return xr.DataArray(a.reshape(run.acct_shape), dims=run.acct_dims,
                        coords={d: run.signal[d] for d in run.acct_dims}, name=name)


def from_run(run: Run, opts: BacktestOptions) -> BacktestResult:
    """A full run's arrays as labelled DataArrays and the orders table."""
    eq, cash, pos, order_arrays, halted, interest = run.out
    signal = run.signal

    def account(a, name):
        return _account(run, a, name)

    # a lean run (cash, positions None): rebuilt from the orders when first read
    init_cash = float(opts.init_cash)
    cash = _LazyPanel(run, "cash", init_cash) if cash is None else account(cash, "cash")
    positions = _LazyPanel(run, "positions", init_cash) if pos is None else xr.DataArray(
        pos.reshape(signal.shape), dims=signal.dims,
        coords={d: signal[d] for d in signal.dims}, name="positions")
    halted_da = None if not opts.dd_limit else account(halted.astype(bool), "halted")
    interest_da = None if not opts.borrow_rate else account(interest, "interest")
    prices = run.ds["close"].transpose("time", "asset")
    return BacktestResult(account(eq, "equity"), cash, positions,
                          _LazyOrders(run, order_arrays), init_cash, run.periods,
                          bool(opts.group), prices, halted=halted_da, interest=interest_da,
                          dd_mode=opts.dd_mode if opts.dd_limit else None, options=opts)


def streamed_metrics(run: Run, opts: BacktestOptions) -> xr.Dataset:
    """The metrics-only kernel's statistics -> a Dataset over the account dims; the
    per-bar means (turnover's mean equity, exposure) over the observed bars, the
    returns' count."""
    stats, extra = run.out
    names = opts.metrics_only
    n_obs = stats[:, _k.FIELDS.index("n")]
    ret_names = [k for k in names if k not in STREAMED_EXTRAS]
    values = (metrics.from_accumulator(stats.T, ret_names, run.periods,
                                       need=metrics.acc_need(ret_names))
              if ret_names else {})
    x = dict(zip(_k.EXTRAS, extra.T))
    with np.errstate(invalid="ignore", divide="ignore"):   # no observed bar: NaN
        values.update(fees_paid=x["fees"], turnover=x["traded"] / (x["eq_sum"] / n_obs),
                      n_orders=x["orders"], exposure=x["exposure"] / n_obs)
    dims, shape = run.acct_dims[1:], run.acct_shape[1:]
    coords = {d: run.signal[d] for d in dims}
    return xr.Dataset({k: (tuple(dims), np.asarray(values[k]).reshape(shape)) for k in names},
                      coords=coords, attrs={"periods": run.periods})


# ---- out-of-core: a dask-backed panel, run chunk by chunk ------------------------------
#
# Both account kinds run as chains over the time chunks with the kernel's state carried
# (a lazy graph cannot carry it: a later chunk may still cut the fee of an order an
# earlier chunk returned, a drained account). A portfolio is one chain; independent
# accounts are one chain per span of asset chunks, as many spans as the scheduler runs
# tasks at once, the chains in parallel as dask tasks. Each chain writes its per-bar
# outputs into its own arrays of one zarr store and its finished orders as parts beside
# them, so memory is one (time chunk x the chain's assets) of inputs (plus the next,
# prefetched) per running chain. The result reads the store.

_OUTPUTS = ("equity", "cash", "positions", "halted", "interest")
# an order part: t, col, size, price, fee, reason as float64 columns (independent
# accounts: and each record's phase of its bar, the key of the in-memory order)
_ORDER_COLS = 6


def is_lazy(*objs) -> bool:
    """True when any of the inputs (Datasets or DataArrays) holds dask arrays."""
    def lazy(o):
        if isinstance(o, xr.Dataset):
            return any(v.chunks is not None for v in o.data_vars.values())
        return isinstance(o, xr.DataArray) and o.chunks is not None
    return any(lazy(o) for o in objs)


def _bounds(obj, dim, n):
    """Chunk boundaries along ``dim`` from the first dask-backed input (one chunk if none);
    a chunk of length 0 (``chunk(time=(10, 0, 30))``) is no chunk (a chain's span of no
    rows failed as "empty data set" or "negative dimensions")."""
    for o in obj:
        das = o.data_vars.values() if isinstance(o, xr.Dataset) else [o]
        for da in das:
            if isinstance(da, xr.DataArray) and da.chunks is not None and dim in da.dims:
                sizes = da.chunks[da.get_axis_num(dim)]   # the data's (not a coord's)
                return np.unique(np.r_[0, np.cumsum(sizes)].astype(int))
    return np.array([0, n])


def _sliced_opts(opts: BacktestOptions, **sel) -> BacktestOptions:
    """``opts`` with every DataArray option cut to the block (``isel`` over its dims)."""
    changes = {}
    for name in opts.__dataclass_fields__:
        v = getattr(opts, name)
        if isinstance(v, xr.DataArray) and set(sel) & set(v.dims):
            changes[name] = v.isel({d: s for d, s in sel.items() if d in v.dims})
    return replace(opts, **changes) if changes else opts


def _picked_opts(opts: BacktestOptions, equity: xr.DataArray, picked: dict) -> BacktestOptions:
    """``opts`` of the accounts ``picked`` (:meth:`BacktestResult._picked`'s positions in
    ``equity``): by label where an option has them, since options sharing a dim may order
    its labels otherwise (the run aligned them by label)."""
    changes = {}
    for name in opts.__dataclass_fields__:
        v = getattr(opts, name)
        if isinstance(v, xr.DataArray) and set(picked) & set(v.dims):
            for d, p in picked.items():
                if d not in v.dims:
                    continue
                if d in v.indexes and d in equity.indexes:
                    v = v.sel({d: equity.indexes[d][p]})
                else:
                    v = v.isel({d: p})
            changes[name] = v
    return replace(opts, **changes) if changes else opts


def _cut(x, sel):
    return None if x is None else x.isel({d: s for d, s in sel.items() if d in x.dims})


def _load(inputs, sel, scheduler=None, graph=None, part=0):
    """The inputs' rows ``sel``, loaded together (graph parts the inputs share, e.g. the
    close a signal is computed from, are read once): from ``graph`` (a :class:`_Graph` of
    ``inputs``; ``part``: the chunk's number in the chain) on this thread, else in one
    ``dask.compute`` on ``scheduler`` (dask's; None: the current one)."""
    import dask   # lazy: dask-backed runs only

    cut = [_cut(x, sel) for x in inputs]
    if graph is not None:
        return graph.load(cut, sel["time"], part)
    lazy = [i for i, x in enumerate(cut) if x is not None and is_lazy(x)]
    kw = {} if scheduler is None else {"scheduler": scheduler}
    for i, x in zip(lazy, dask.compute(*(cut[i] for i in lazy), **kw)):
        cut[i] = x
    return cut


class _Graph:
    """The dask-backed variables of a chain's inputs as one task graph, built once: a
    time chunk's load runs only the tasks of its blocks (``dask.local.get_sync``), the
    tasks the inputs share (the close a signal is computed from) once. Per chunk,
    ``dask.compute`` of the cut inputs rebuilt, tokenized, culled and ordered the
    graph of every block in Python, holding the GIL a chain's other loads wait for:
    200 assets x 130k minute bars in 16 chunks, close and a signal from it, one core,
    medians of 5 on the 2-core Xeon of docs/benchmarks.md: 0.50 -> 0.32 s CPU.

    None (each chunk a ``dask.compute``) where a dask-backed variable has no time dim
    (e.g. the ``asset_class`` of ``ql.data.load().chunk(...)``), or the graph has over
    :data:`_GRAPH_TASKS` tasks: built whole, a rolling signal's graph over 1.3M minute
    bars x 200 assets (424k tasks) took ~10 s and ~200 MB per chain."""

    def __init__(self, variables, graph, slots):
        from dask.optimization import cull

        self.vars = variables   # (input, variable name, time-first dask array)
        keys = [k for _, _, a in variables for k in _flat_keys(a)]
        self.tasks = cull(dict(graph), keys)[0]   # the chain's assets only
        self.slots, self.buffers = slots, {}

    @classmethod
    def of(cls, inputs, depth=1):
        """The graph of ``inputs``' dask-backed variables (None: see the class), for a
        chain loading ``depth`` chunks ahead: while its kernel runs chunk ``i``, chunks
        ``i + 1`` to ``i + depth`` load, so chunk ``i``'s buffers (:meth:`_joined`,
        ``i % slots``) are not overwritten with ``depth + 1`` of them; one more is spare."""
        from dask.highlevelgraph import HighLevelGraph   # lazy: dask-backed runs only

        variables = []
        for i, x in enumerate(inputs):
            for name, v in _lazy_variables(x):
                if "time" not in v.dims:
                    return None
                variables.append((i, name, xr.Variable(v.dims, v.data)
                                  .transpose("time", ...).data))
        if not variables:
            return None
        # the layers the variables share (the close a signal is computed from) once
        graph = HighLevelGraph.merge(*(a.__dask_graph__() for _, _, a in variables))
        if sum(len(layer) for layer in graph.layers.values()) > _GRAPH_TASKS:
            return None
        return cls(variables, graph, depth + 2)

    def load(self, cut, rows: slice, part: int = 0):
        """``cut`` (the inputs cut to ``rows``, lazily) with these variables computed,
        the joined ones into buffers ``part % slots`` (``part``: the chunk's number)."""
        from dask.local import get_sync
        from dask.optimization import cull

        cut = [None if x is None else x.copy(deep=False) for x in cut]
        plan, keys = [], []
        for i, name, a in self.vars:
            edges = np.r_[0, np.cumsum(a.chunks[0])]
            b0 = int(np.searchsorted(edges, rows.start, "right")) - 1
            b1 = int(np.searchsorted(edges, rows.stop, "left"))
            grid = [(a.name, b, *j) for b in range(b0, b1)
                    for j in np.ndindex(*a.numblocks[1:])]
            plan.append((i, name, grid, (b1 - b0, *a.numblocks[1:]),
                         rows.start - edges[b0], rows.stop - edges[b0]))
            keys += grid
        blocks = dict(zip(keys, get_sync(cull(self.tasks, keys)[0], keys)))
        for i, name, grid, shape, r0, r1 in plan:
            x = cut[i]
            v = (x.variables[name] if isinstance(x, xr.Dataset) else
                 x.variable if name is None else x.coords.variables[name])
            if len(grid) == 1:   # one block: itself (a join copies)
                block = blocks[grid[0]][r0:r1]
            else:
                nested = np.empty(shape, dtype=object)   # block (b, j): time b, column j
                for at, k in zip(np.ndindex(*shape), grid):
                    nested[at] = blocks[k]
                block = self._joined((i, name), part, nested, r0, r1)
            v.data = np.moveaxis(block, 0, v.dims.index("time"))
        return cut

    def _joined(self, key, part, nested, r0, r1):
        """Rows ``r0:r1`` of the (time, column) blocks ``nested`` joined, as ``np.block``
        joins them, into buffer ``part % slots`` of variable ``key``, reused chunk after
        chunk: a fresh (8192, 200) panel per chunk and variable cost its page faults
        (``np.block`` 5.5-6.5 ms CPU in a streamed run, against ~3 ms for the copy
        alone). Blocks of other dims: ``np.block``."""
        if nested.ndim != 2 or any(b.ndim != 2 for b in nested.flat):
            return np.block(nested.tolist())[r0:r1]
        width, dtype = sum(b.shape[1] for b in nested[0]), np.result_type(*nested.flat)
        ring = self.buffers.setdefault(key, [None] * self.slots)
        buf = ring[part % self.slots]
        if buf is None or buf.dtype != dtype or buf.shape[1] != width or len(buf) < r1 - r0:
            buf = ring[part % self.slots] = np.empty((r1 - r0, width), dtype)
        out, top = buf[:r1 - r0], 0
        for row in nested:
            lo, hi, col = max(r0 - top, 0), min(r1 - top, len(row[0])), 0
            for b in row:
                if hi > lo:
                    out[top + lo - r0:top + hi - r0, col:col + b.shape[1]] = b[lo:hi]
                col += b.shape[1]
            top += len(row[0])
        return out


_GRAPH_TASKS = 50_000   # a chain's graph built whole up to this many tasks (~1 s, ~25 MB)


def _flat_keys(a):
    from dask.core import flatten   # lazy: dask-backed runs only
    return list(flatten(a.__dask_keys__()))


def _lazy_variables(x):
    """(name, variable) of each dask-backed variable of ``x`` (None: a DataArray's own)."""
    if x is None:
        return []
    if isinstance(x, xr.Dataset):
        return [(k, v) for k, v in x.variables.items() if v.chunks is not None]
    return [(k, v) for k, v in [(None, x.variable), *x.coords.variables.items()]
            if v.chunks is not None]


def _prefetched(loads, depth=1):
    """The results of ``loads`` (callables) in order, the next ``depth`` running in as
    many threads while the caller works on the current one (the kernel releases the
    GIL)."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(depth, thread_name_prefix="ql-prefetch") as pool:
        ahead = deque(pool.submit(f) for f in loads[:depth])
        for i in range(len(loads)):
            cur = ahead.popleft().result()
            if i + depth < len(loads):
                ahead.append(pool.submit(loads[i + depth]))
            yield cur


class _Inputs:
    """A chain's (data, signal, entries, exits), cut but not loaded: a plain holder, so a
    dask task receives the lazy objects (dask would load any collection it sees)."""

    def __init__(self, *inputs):
        self.inputs = inputs


class _Labels:
    """What ``_orders`` reads of a run's signal (its shape and coordinates), without the
    signal's data: cheap to send to a dask task."""

    def __init__(self, tmpl):
        self.shape = tuple(tmpl.shape)
        self.coords = xr.Dataset(coords={d: tmpl[d] for d in tmpl.dims})

    def __getattr__(self, name):   # signal.time, signal.asset
        if name.startswith("_") or name == "coords":
            raise AttributeError(name)
        return self.coords[name]

    def __getitem__(self, name):   # signal[param]
        return self.coords[name]


class _Sink:
    """Where one chain's outputs go: block ``block`` of the store at ``path`` (its own
    zarr arrays, so concurrent chains never share a zarr chunk) and its order parts.

    A part's fee can still change while its account is drained but not closed (the
    kernel's ``SimState`` keeps a reference to that record and cuts the fee in place):
    those parts stay in memory until the account closes or the run ends; every other
    part is written as soon as its chunk is done."""

    def __init__(self, path, block, col0, opts):
        self.path, self.block, self.col0 = path, block, col0
        self.keys = [k for k in _OUTPUTS if _wanted(k, opts)]
        self.held = []   # (part number, first absolute order number, order arrays)
        self.arrays = {}
        self.writer = self.pending = None

    def write(self, run, t0, t1, state, base, part):
        """The chunk's per-bar outputs go to the writer thread (compressing and writing
        them overlaps the next chunk's kernel run; at most one chunk is in flight); its
        orders are settled here, as they depend on ``state``, which the next run changes."""
        from concurrent.futures import ThreadPoolExecutor

        eq, cash, pos, orders, halted, interest = run.out
        values = dict(zip(_OUTPUTS, (eq, cash, pos, halted, interest)))
        values = {k: values[k].astype(bool) if k == "halted" else values[k]
                  for k in self.keys}   # halted only with a dd_limit
        self.wait()
        if self.writer is None:
            self.writer = ThreadPoolExecutor(1, thread_name_prefix="ql-results")
        self.pending = self.writer.submit(self._put, values, t0, t1)
        orders[0][:] += t0          # row numbers in the whole run
        self.held.append((part, base, orders))
        self.flush(state)

    def _put(self, values, t0, t1):
        try:
            self._write_rows(values, t0, t1)
        except OSError as e:   # a full disk said only "No space left on device"
            raise _data.io_error(e, f"writing the per-bar results of a streamed backtest "
                                    f"to {self.path}", "set TMPDIR to a folder with room, or "
                                    "pass metrics_only= to keep no per-bar results") from e

    def _write_rows(self, values, t0, t1):
        """Rows ``t0:t1`` of each output into the chain's arrays. Each array's first chunk
        chooses its codec (:func:`quantlab.store.compressible`): an output constant for
        stretches (cash between orders; equity and positions while flat) is written
        compressed, one that moves every bar (a random walk) as its bytes. A (8192, 200)
        chunk on a 2-core AMD EPYC: writing its 13 MB took 12-13 ms; LZ4 (no shuffle) of
        an equity flat 17 hours a day took 2.1 ms and kept 0.32 of it, of cash 1.0 ms and
        0.017; shuffled LZ4 of a random walk ~8.6 ms, keeping 0.75."""
        import zarr   # lazy: out-of-core runs only

        for k, v in values.items():
            if k not in self.arrays:     # opened once per chain, not once per chunk
                a = zarr.open_array(self.path, path=f"{k}/{self.block}", mode="r+")
                if _store.compressible(v):
                    a = _results_array(zarr.open_group(self.path, path=k, mode="r+"),
                                       str(self.block), a.shape, a.chunks[0], k,
                                       _store.run_compressors(), overwrite=True)
                a = _store.writes_all(a)
                self.arrays[k] = (a, _store.row_writer(a))
            a, put = self.arrays[k]
            v = v.reshape((t1 - t0, *a.shape[1:]))
            if put is None:
                a[t0:t1] = v
            else:
                put(t0, v)

    def wait(self):
        """Until the writer thread has written the last chunk (its error raised here)."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def close(self):
        """Wait for the last write and end the writer thread (also after an error)."""
        try:
            self.wait()
        finally:
            if self.writer is not None:
                self.writer.shutdown()
                self.writer = None

    def flush(self, state, final=False):
        """Write every held part no drained account can still change (all if ``final``).

        A drained account's record gets the fee the state holds for it (``drain_fee``,
        cut exactly as the record is): the kernel cannot reach a record an earlier call
        returned once the account is closed, though a close with cash < 0 still cuts."""
        drained = state["drained"] != 0
        recs, fees = state["drain_rec"][drained], state["drain_fee"][drained]
        may_cut = (state["bust"] == 0) | ((state["cash"] < 0) & (state["drain_fee"] > 0))
        pending = state["drain_rec"][drained & may_cut]
        keep = []
        for part, base, o in self.held:
            n = len(o[0])
            inside = (recs >= base) & (recs < base + n)
            o[4][recs[inside] - base] = fees[inside]
            if not final and ((pending >= base) & (pending < base + n)).any():
                keep.append((part, base, o))
            elif n:
                packed = np.column_stack([np.asarray(c, np.float64) for c in o])
                packed[:, 1] += self.col0   # the column number in the whole panel
                np.save(_part_file(self.path, self.block, part), packed)
        self.held = keep


def _wanted(key, opts):
    return ((key != "halted" or bool(opts.dd_limit))
            and (key != "interest" or bool(opts.borrow_rate)))


def _part_file(path, block, part):
    return os.path.join(path, "orders", f"{block:06d}-{part:07d}.npy")


class _Siblings:
    """The chains of one run on dask's local schedulers: when one fails, the others
    stop before their next chunk, and the run waits for them before it raises (a failed
    run left them calling the kernel after ``ql.backtest`` had raised); each chunk done
    moves the run's progress ``bar``. A pickled copy (dask's processes, a distributed
    cluster, even one in this process) is a fresh one, never stopped, without the bar:
    those chains run to their end."""

    def __init__(self, bar=None):
        import threading

        self._done = threading.Condition()
        self._running = 0
        self.stopped = False
        self.bar = bar

    def tick(self):
        """One more time chunk of a chain done."""
        if self.bar is not None:
            with self._done:
                self.bar.update()

    def __reduce__(self):
        return (_Siblings, ())

    def __enter__(self):
        with self._done:
            self._running += 1
        return self

    def __exit__(self, *exc):
        with self._done:
            self._running -= 1
            self._done.notify_all()

    def stop(self):
        """Stop the chains and wait until none runs (each ends its current chunk)."""
        with self._done:
            self.stopped = True
            self._done.wait_for(lambda: self._running == 0)


def _chain(inputs, opts, edges, n_cols, n_par, sink, scheduler=None, siblings=None,
           depth=1):
    """The kernel over the time chunks ``edges`` of one block of columns with one
    ``SimState``; each chunk reads its rows plus the slippage model's window before them
    (``history_needed``), loaded (:func:`_load`) while the previous chunk runs
    (``depth`` chunks loaded at once).
    Per-bar outputs and orders go to ``sink`` (None with metrics_only). The last run
    (None if ``siblings`` were stopped: another chain failed)."""
    from functools import partial

    from quantlab._kernels.backtest import SimState   # lazy: only streamed runs need it

    n_groups = n_par if opts.group else n_cols
    state = SimState(n_cols, n_groups, float(opts.init_cash))
    h = opts.history_needed() - 1
    spans = [(max(0, int(t0) - h), int(t0), int(t1)) for t0, t1 in zip(edges[:-1], edges[1:])]
    graph = _Graph.of(inputs, depth) if scheduler == "sync" else None
    loads = [partial(_load, inputs, {"time": slice(w0, t1)}, scheduler, graph, part)
             for part, (w0, _, t1) in enumerate(spans)]
    step = _rows_per_chunk(edges)
    ring = [] if sink is None else [_outputs(step, n_cols, n_groups) for _ in range(2)]
    run = prev = None   # prev: per asset, the last valid close before the chunk's rows
    try:
        for part, ((w0, t0, t1), loaded) in enumerate(zip(spans, _prefetched(loads, depth))):
            if siblings is not None and siblings.stopped:
                return None
            base = state.n_orders
            this = prev
            if h and part + 1 < len(spans):   # the next chunk's rows start at its w0
                prev = last_valid(loaded[0]["close"].transpose("time", "asset")
                                   .values[:spans[part + 1][0] - w0], prev)
            out = None
            if ring:   # the sink writes at most one chunk's set while the kernel fills the other
                out = tuple(a[:t1 - t0] for a in ring[part % 2])
                # halted and interest start at 0 (a bar the kernel skips keeps it); it
                # writes them only with a dd_limit or borrowing, and nothing reads them else
                if opts.dd_limit:
                    out[3][:] = 0
                if opts.borrow_rate:
                    out[4][:] = 0.0
            run = dispatch.simulate(*loaded, _sliced_opts(opts, time=slice(w0, t1)),
                                    state=state, start=t0 - w0, labels_checked=True,
                                    out=out, prev_close=this,
                                    keyed=sink is not None and not opts.group)
            if sink is not None:
                sink.write(run, t0, t1, state, base, part)
            if siblings is not None:
                siblings.tick()
        if sink is not None:
            sink.flush(state, final=True)   # the run is over: no fee can change any more
    finally:
        if sink is not None:
            sink.close()
    return run


def _rows_per_chunk(edges) -> int:
    """The most rows of a time chunk (``edges``: its boundaries): a chain's buffers and
    the results store's chunks."""
    return int(max(np.diff(edges).max(), 1))


def _outputs(step, n_cols, n_groups):
    """One set of a chain's per-bar outputs (the kernel's ``out=``: equity, cash,
    positions, halted, interest) for time chunks of up to ``step`` rows, reused chunk
    after chunk: a fresh 8192 x 200 positions panel per chunk cost its page faults.
    Equity, cash and positions empty, as the kernel's own (it writes every row of
    them): filling them with NaN first took ~10-20 ms of a 200-asset run's chain."""
    return (np.empty((step, n_groups)), np.empty((step, n_groups)),
            np.empty((step, n_cols)), np.zeros((step, n_groups), np.int8),
            np.zeros((step, n_groups)))


def _data_vars(ds, opts):
    """The variables loaded per chunk: every bar variable (``validate`` checks them all),
    or of an ingested store's panel, validated at ingest, only those the run reads
    (``close``, ``opts.needs()``, the bar range for stops and limits): a chunk's
    decode time is most of a streamed run's."""
    bars = [v for v in ("open", "high", "low", "close", "volume") if v in ds]
    if all(_store.validated(ds[v]) for v in bars):
        used = {"close", *opts.needs()}
        if dispatch.has_range_orders(opts):
            used |= {"open", "high", "low"}
        bars = [v for v in bars if v in used]
    return ds[bars]


def _template(data, signal, entries, exits, opts):
    """The lazily aligned data and signal, the broadcast (time, asset, *params) frame and
    the options on the signal's labels (``dispatch.align_options``)."""
    ds = dispatch.as_dataset(data)
    sig = dispatch.input_signal(signal, entries, exits, opts)
    if not isinstance(sig, xr.DataArray):
        raise TypeError("signal must be an xarray DataArray on (time, asset[, params])")
    _validate.coords(sig, what="signal")
    missing = set(sig.asset.values.tolist()) - set(ds.asset.values.tolist())
    if missing:
        raise ValueError(f"signal has assets not in the data: {sorted(missing)}")
    ds = _data_vars(ds, opts)     # before the selection: it makes new graphs
    if not ds.indexes["asset"].equals(sig.indexes["asset"]):
        ds = ds.sel(asset=sig.asset.values)
    # the labels of the whole panel, once: each chunk's run checks its values only
    _data.validate(ds, values=False)
    dispatch.check_labels(sig, ds)
    opts = dispatch.align_options(opts, sig)   # its chunks cut the options by position
    tmpl, params = dispatch.broadcast(sig, opts)
    return ds, tmpl, params, opts


def chunked(data, signal, entries, exits, opts: BacktestOptions, store=None,
            progress: bool = False):
    """``ql.backtest`` of a dask-backed panel (see ``backtest``): streamed over the time
    chunks, one chain for a portfolio, one per span of asset chunks (``_spans``) for
    independent accounts.
    ``store``: the directory of the per-bar results (default: a temporary one in
    ``TMPDIR``, removed once nothing reads it, :class:`_Results`); on a cluster, a path
    every worker can write. ``progress``: a bar of the chains' time chunks
    (:func:`quantlab._progress.bar`) where they run in this process."""
    ds, tmpl, params, opts = _template(data, signal, entries, exits, opts)
    opts = replace(opts, periods=dispatch.resolve_periods(dispatch.as_dataset(data), opts))
    # the inputs each chain reads: the user's signal (or entries/exits), on the data's assets
    inputs = [ds, *(None if x is None else x.sel(asset=tmpl.asset.values)
                    for x in (signal, entries, exits))]
    if opts.group:
        return _streamed(inputs, tmpl, params, opts, store, progress)
    return _per_asset(inputs, tmpl, params, opts, store, progress)


def _new_store(store, shapes, blocks, step, opts):
    """The zarr store of a run's per-bar outputs: per key, one array per block (block b:
    ``shapes[b][key]``), chunked (``step`` rows, the block's width), uncompressed until
    its chain's first chunk chooses (:meth:`_Sink._write_rows`)."""
    import zarr   # lazy: out-of-core runs only

    path = store or tempfile.mkdtemp(prefix="ql-backtest-")
    root = zarr.open_group(path, mode="w")
    for key in _OUTPUTS:
        if not _wanted(key, opts):
            continue
        grp = root.create_group(key)
        for b in range(blocks):
            s = shapes(b, key)
            _results_array(grp, str(b), s, max(min(step, s[0]), 1), key, None)
    os.makedirs(os.path.join(path, "orders"), exist_ok=True)
    return str(path)


def _results_array(grp, name, shape, rows, key, codecs, overwrite=False):
    """Results array ``name`` of group ``grp``: chunks of ``rows`` rows, the block's width."""
    return grp.create_array(name, shape=shape, chunks=(rows, *shape[1:]),
                            dtype=bool if key == "halted" else np.float64,
                            compressors=codecs, overwrite=overwrite)


class _Results:
    """A run's results store (``path``) as its readers hold it: a temporary one
    (``owned``) is removed when the last of them is gone -- the result, the dask arrays
    read from it (:func:`_stored`), its orders -- as a loop of streamed runs would
    otherwise fill ``TMPDIR`` with stores no one reads. Once a reader is pickled (a
    cluster's workers computing or persisting the arrays) this process cannot know who
    still reads the store: it is then removed at exit, as before. A copy never removes
    it; nor does a forked child; a user's ``store=`` stays."""

    def __init__(self, path, owned):
        self.path = path
        self._gone = weakref.finalize(self, _remove, path, os.getpid()) if owned else None
        if owned:
            _REMOVER.ready()

    def __reduce__(self):
        if self._gone is not None and self._gone.detach() is not None:
            atexit.register(_remove, self.path, os.getpid())
        return (_Results, (self.path, False))

    def check(self):
        """FileNotFoundError if the store was removed (zarr would read its chunks as
        zeros, and the orders as none)."""
        if not os.path.isdir(self.path):
            raise FileNotFoundError(
                f"the results store {self.path} of a streamed backtest was removed: it "
                "lives while its result or an array read from it does (keep the result, "
                "or res.compute() it)")


def _remove(path, pid):
    """Remove a results store: renamed at once (its path reads as removed), deleted in
    a background thread (:class:`_Remover`, joined at exit): ``rmtree`` of a 200-asset x 130k-bar run's
    store took ~0.1 s here (ext4 with discard), which the caller whose last reference
    dropped it (a loop of streamed runs) waited for."""
    if os.getpid() != pid:   # a forked child's exit
        return
    gone = os.path.join(os.path.dirname(path), f".ql-removing-{os.path.basename(path)}")
    try:
        os.rename(path, gone)
        _REMOVER.submit(shutil.rmtree, gone, True)
    except FileNotFoundError:
        return
    except (OSError, RuntimeError):   # RuntimeError: at exit, the remover has stopped
        shutil.rmtree(gone if os.path.isdir(gone) else path, True)


class _Remover:
    """One thread per process deleting removed stores, in order, fed through a
    ``queue.SimpleQueue``: its ``put`` is reentrant, so a store's finalizer can hand its
    deletion over wherever the garbage collector runs it. A ThreadPoolExecutor's
    ``submit`` there could deadlock: collected inside another executor's ``submit``
    (dask's scheduler, the chain's prefetch), which holds concurrent.futures' global
    lock, it waited for that lock for ever (a loop of streamed runs hung). The thread
    is started by :meth:`ready` from ordinary code (a finalizer must not start one: its
    start takes threading's own lock), again in a forked child, which has not its
    parent's thread (its stores were left in TMPDIR as ``.ql-removing-*``), and is
    joined at exit; ``submit`` raises RuntimeError where it is not running."""

    def __init__(self):
        self._pid, self._queue, self._thread = None, None, None

    def ready(self):
        """The thread of this process, started if it is not yet."""
        if self._pid != os.getpid():
            import threading
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._run, args=(self._queue,),
                                            name="ql-remove", daemon=True)
            self._thread.start()
            self._pid = os.getpid()

    @staticmethod
    def _run(work):
        while (item := work.get()) is not None:
            f, args, done = item
            try:
                done.set_result(f(*args))
            except BaseException as e:  # noqa: BLE001 (its future holds it)
                done.set_exception(e)

    def submit(self, f, *args) -> concurrent.futures.Future:
        """``f(*args)`` on the thread, after the work handed over before."""
        if self._pid != os.getpid() or not self._thread.is_alive():
            raise RuntimeError("the results store remover is not running here")
        done = concurrent.futures.Future()
        self._queue.put((f, args, done))
        return done

    def stop(self):
        """At exit: the work handed over is done, then the thread ends."""
        if self._pid == os.getpid() and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


_REMOVER = _Remover()
atexit.register(_REMOVER.stop)   # first registered: runs after _remove's at exit


class _Reader:
    """A stored zarr array for ``dask.array.from_array``: the graph that reads it holds
    ``results`` (:class:`_Results`), so the store lives as long as the graph."""

    def __init__(self, array, results):
        self.array, self.results = array, results
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, key):
        self.results.check()
        return self.array[key]


@contextmanager
def _dropped_on_failure(path, store):
    """Remove a failed run's temporary results store now, not at exit (a user's
    ``store=`` is left as it is)."""
    try:
        yield
    except BaseException:
        if store is None and path is not None:
            shutil.rmtree(path, ignore_errors=True)
        raise


def _stored(results, key, blocks, axis):
    """One output of every block, read lazily from the store (blocks joined on ``axis``)."""
    import dask.array as da
    import zarr   # lazy: out-of-core runs only

    run = uuid.uuid4().hex   # a user's store= rewritten by a later run is another array
    parts = []
    for b in range(blocks):
        z = zarr.open_array(results.path, path=f"{key}/{b}", mode="r")
        parts.append(da.from_array(_Reader(z, results), chunks=z.chunks,
                                   name=f"ql-results-{key}-{b}-{run}"))
    return parts[0] if len(parts) == 1 else da.concatenate(parts, axis=axis)


def _read_orders(path, labels, params, group, blocks):
    """The orders table of blocks ``blocks`` from the parts in the store, in the order of
    the in-memory run: (bar, phase, column) where the parts are keyed (independent
    accounts, whose blocks' parts come one block after another)."""
    import glob

    files = sorted(f for b in blocks
                   for f in glob.glob(os.path.join(path, "orders", f"{b:06d}-*.npy")))
    packed = (np.concatenate([np.load(f) for f in files]) if files
              else np.empty((0, _ORDER_COLS)))
    if packed.shape[1] > _ORDER_COLS:
        packed = packed[np.lexsort((packed[:, 1], packed[:, _ORDER_COLS], packed[:, 0]))]
    t, col, size, price, fee, reason = packed[:, :_ORDER_COLS].T
    return _orders(Run(None, labels, None, params, group), t.astype(np.intp),
                   col.astype(np.intp), size, price, fee, reason.astype(np.int8))


@dataclass(frozen=True)
class _StoredOrders(_LazyOrders):
    """A streamed run's orders, read from its store when the table is first used
    (``arrays``: the store's path and the blocks)."""

    def frame(self) -> pd.DataFrame:
        results, blocks = self.arrays
        results.check()
        return _read_orders(results.path, self.run.signal, self.run.params, self.run.group,
                            blocks)


def _result(path, store, tmpl, params, opts, blocks, group, prices):
    """The result reading the store at ``path`` (temporary unless ``store``): per-bar
    arrays lazily, the orders when first used."""
    acct_dims = ["time", *params] if opts.group else list(tmpl.dims)
    results = _Results(path, owned=store is None)
    orders = _StoredOrders(Run(None, _Labels(tmpl), None, params, group),
                           (results, range(blocks)))

    def arr(key, dims):
        if not _wanted(key, opts):
            return None
        return xr.DataArray(_stored(results, key, blocks, 1), dims=dims,
                            coords={d: tmpl[d] for d in dims}, name=key)

    return BacktestResult(arr("equity", acct_dims), arr("cash", acct_dims),
                          arr("positions", list(tmpl.dims)), orders,
                          float(opts.init_cash), opts.periods, bool(opts.group), prices,
                          halted=arr("halted", acct_dims), interest=arr("interest", acct_dims),
                          dd_mode=opts.dd_mode if opts.dd_limit else None, options=opts)


def _asset_chain(inputs, opts, a, edges, n_par, path, block, siblings):
    """One asset chunk ``a`` = (a0, a1) of independent accounts, streamed over the time
    chunks with its own state (a dask task: its loads run here, on dask's synchronous
    scheduler). metrics_only: its metrics; else its outputs go to block ``block``."""
    a0, a1 = int(a[0]), int(a[1])
    o = _sliced_opts(opts, asset=slice(a0, a1))
    cols = (a1 - a0) * n_par
    with siblings:
        if siblings.stopped:   # queued behind a failed chain
            return None
        sink = None if path is None else _Sink(path, block, a0 * n_par, opts)
        run = _chain(inputs.inputs, o, edges, cols, n_par, sink, scheduler="sync",
                     siblings=siblings)
    if opts.metrics_only is None or run is None:
        return None
    m = streamed_metrics(run, o)
    return {k: m[k].transpose("asset", *run.params).values for k in opts.metrics_only}


def _slots(writes: bool = True) -> int:
    """How many chains of independent accounts run at once: a distributed client's
    threads; on this machine's pool one per worker (``num_workers``, else the CPU
    count), or one per two workers for a run that ``writes`` per-bar results; 1 with the
    synchronous scheduler. Such a chain keeps ~1.6 cores busy (its loads in a prefetch
    thread, its writes in a writer thread beside the kernel), and more chains than that
    cost more CPU than they overlap: 200 assets x 26M minute bars on 2 cores, alternated,
    medians of 8 (session 47): 1 chain 0.77 s (1.25 s CPU), 2 chains 0.86 s (1.47 s),
    one per asset chunk 1.01 s; metrics-only (no writer) 2 chains 0.97 s, 1 chain 1.27 s.
    Session 46, its kernel then ~4x slower (the margin check kept it off its fast path):
    2 chains 1.22 s, 1 chain 1.36 s."""
    from dask.base import get_scheduler
    from dask.local import get_sync

    client = _client()
    if client is not None:
        # no workers yet (an adaptive cluster): one chain per asset chunk, as before
        return sum(client.nthreads().values()) or 1 << 30
    if get_scheduler() is get_sync:
        return 1
    return (_local_workers() + 1) // 2 if writes else _local_workers()


def _client():
    """The distributed Client dask's current scheduler is (its bound ``get``), else None."""
    from dask.base import get_scheduler   # lazy: dask-backed runs only

    client = getattr(get_scheduler(), "__self__", None)
    return client if callable(getattr(client, "nthreads", None)) else None


def _local_workers() -> int:
    """The workers of dask's local pool (``num_workers``, else the CPU count)."""
    import dask   # lazy: dask-backed runs only
    from dask.system import CPU_COUNT

    pool = dask.config.get("pool", None)     # dask.config.set(pool=ThreadPoolExecutor(n))
    workers = getattr(pool, "_max_workers", None) or dask.config.get("num_workers", None)
    return int(workers or CPU_COUNT)


def _portfolio_loads() -> tuple:
    """(scheduler, depth) of a portfolio's chunk loads. On dask's local threads with 2
    workers or more: two chunks at once, each on the synchronous scheduler in its own
    prefetch thread: one load at a time through the pool kept the chain waiting for its
    chunks. 200 assets x 130k minute bars in 16 time chunks, 2 cores, medians of 7:
    0.63 s against 0.72-0.76 s (pinned to one core: 0.91-0.95 s); 3 at once: no
    better. One worker, or the synchronous scheduler: one chunk ahead, also on the
    synchronous scheduler (the chain's task graph, :class:`_Graph`). Else the current
    scheduler (a client's workers), one chunk ahead. No scheduler set is dask's threads
    (before session 46 it took the last branch: a user's default ran one load at a time
    through dask's pool)."""
    import dask.local   # lazy: dask-backed runs only
    import dask.threaded
    from dask.base import get_scheduler

    get = get_scheduler() or dask.threaded.get   # none set: dask arrays' own
    if get is dask.threaded.get:
        return "sync", 2 if _local_workers() >= 2 else 1
    if get is dask.local.get_sync:
        return "sync", 1
    return None, 1


def _by_memory(rows, cols) -> int:
    """Spans needed for one time chunk of a chain's columns (``rows`` x ``cols`` float64)
    to stay within dask's ``array.chunk-size`` (128 MiB by default): a chain holds a few
    such blocks (its inputs, the prefetched next ones, its outputs), so joining asset
    chunks never makes a wide universe's chain outgrow memory."""
    import dask   # lazy: dask-backed runs only
    from dask.utils import parse_bytes

    return int(-(-rows * cols * 8 // parse_bytes(dask.config.get("array.chunk-size"))))


def _spans(edges, k):
    """The assets (``edges``: their chunk boundaries) cut into ``k`` spans of about equal
    width (at most one per asset), each cut at the chunk boundary nearest it when that
    is within 1/32 of the assets, else inside a chunk, which the two chains beside the
    cut then both read (an extra decode of that chunk, against a chain that would run
    the longest: 200 assets in chunks of 64 cut at a boundary were 128 + 72, so a second
    worker could add at most 1.56x; one chunk across the assets gave one chain, however
    many workers). Measured (200 assets in chunks of 64, 26M minute bars, 2 cores): a
    chain's every time chunk costs Python, dask and zarr steps whatever its width, so 4
    chains on 1-2 workers took 1.4-1.5x the time of 1-2 chains."""
    n = int(edges[-1])
    cuts = set()
    for i in range(1, max(1, min(k, n))):
        ideal = n * i / min(k, n)
        near = int(edges[np.abs(edges - ideal).argmin()])
        cuts.add(near if abs(near - ideal) <= n / 32 else int(round(ideal)))
    return np.array(sorted({0, n, *cuts}))


def _per_asset(inputs, tmpl, params, opts, store=None, progress=False):
    """Independent accounts: one chain per span of asset chunks, as many spans as
    ``_slots`` (from dask's scheduler), the chains in parallel as dask
    tasks (the current scheduler: threads, or a client's workers). The per-bar results
    are computed here into the store; metrics_only stays lazy (one task per span)."""
    import dask   # lazy: dask is only needed for dask-backed panels
    import dask.array as da

    n, n_par = tmpl.sizes["time"], int(np.prod(tmpl.shape[2:]))
    chunks = _bounds(inputs[:3], "asset", tmpl.sizes["asset"])
    t_edges = _bounds(inputs[:3], "time", n)
    step = _rows_per_chunk(t_edges)
    a_edges = _spans(chunks, max(_slots(opts.metrics_only is None),
                                 _by_memory(step, tmpl.sizes["asset"] * n_par)))
    spans = list(zip(a_edges[:-1], a_edges[1:]))
    metrics_only = opts.metrics_only is not None
    path = None
    if not metrics_only:   # zarr chunks as wide as the span: 1 per write, not 1 per asset
        # chunk (those cost the run 1.3x its time, 200 assets in chunks of 64)
        path = _new_store(store, lambda b, k: (n, int(np.diff(spans[b])[0]),
                                               *tmpl.shape[2:]), len(spans), step, opts)
    # metrics_only: computed later, never stopped, no bar; a cluster's chains: no bar
    bar = _progress.bar(len(spans) * (len(t_edges) - 1), "backtest: time chunks", "chunk",
                        progress and not metrics_only and _client() is None)
    siblings = _Siblings(bar)
    blocks = [dask.delayed(_asset_chain, pure=False)(
        _Inputs(*(_cut(x, {"asset": slice(int(a0), int(a1))}) for x in inputs)),
        opts, (a0, a1), t_edges, n_par, path, b, siblings)
        for b, (a0, a1) in enumerate(spans)]
    if metrics_only:
        def lazy(key, block, w):
            return da.from_delayed(dask.delayed(dict.get)(block, key),
                                   (int(w), *tmpl.shape[2:]), dtype=np.float64)
        dims = ("asset", *params)
        return xr.Dataset({k: (dims, da.concatenate([lazy(k, b, a1 - a0) for b, (a0, a1)
                                                     in zip(blocks, spans)]))
                           for k in opts.metrics_only},
                          coords={d: tmpl[d] for d in dims}, attrs={"periods": opts.periods})
    with _dropped_on_failure(path, store), bar:
        try:
            dask.compute(*blocks)
        except BaseException:
            siblings.stop()   # before the store goes: its chains end their chunks first
            raise
    return _result(path, store, tmpl, params, opts, len(spans), False,
                   inputs[0]["close"].transpose("time", "asset"))


def _streamed(inputs, tmpl, params, opts, store=None, progress=False):
    """A portfolio: one chain over the time chunks, the kernel's state carried, each
    chunk's inputs loaded (:func:`_portfolio_loads`) while the kernel runs the previous
    one. metrics_only keeps nothing per bar."""
    n = tmpl.sizes["time"]
    n_par = int(np.prod(tmpl.shape[2:]))
    n_cols = int(np.prod(tmpl.shape[1:]))
    edges = _bounds(inputs[:3], "time", n)
    scheduler, depth = _portfolio_loads()
    bar = _progress.bar(len(edges) - 1, "backtest: time chunks", "chunk", progress)
    if opts.metrics_only is not None:
        with bar:
            run = _chain(inputs, opts, edges, n_cols, n_par, None, scheduler,
                         siblings=_Siblings(bar), depth=depth)
        return streamed_metrics(run, opts)
    step = _rows_per_chunk(edges)
    shapes = {"positions": tmpl.shape}
    path = _new_store(store, lambda b, k: shapes.get(k, (n, *tmpl.shape[2:])), 1, step, opts)
    with _dropped_on_failure(path, store), bar:
        _chain(inputs, opts, edges, n_cols, n_par, _Sink(path, 0, 0, opts), scheduler,
               siblings=_Siblings(bar), depth=depth)
    return _result(path, store, tmpl, params, opts, 1, True,
                   inputs[0]["close"].transpose("time", "asset"))
