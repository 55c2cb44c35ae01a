"""The kernel's arrays -> ``BacktestResult`` (or a metrics-only Dataset)."""
from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd
import xarray as xr

from quantlab import _validate, metrics
from quantlab._kernels import backtest as _k
from quantlab.backtesting import dispatch
from quantlab.backtesting.dispatch import Run
from quantlab.backtesting.options import STREAMED_EXTRAS, BacktestOptions
from quantlab.backtesting.trades import REASONS, build_trades

# from_run, streamed_metrics, chunked and is_lazy serve quantlab.backtest and the
# deployment (the layers above); they are not public API
__all__ = ["BacktestResult"]


@dataclass
class BacktestResult:
    """Equity, cash, positions (shares) and returns as DataArrays; orders and trades.

    Made by :func:`quantlab.backtest`. ``res["total_return"]`` reads one metric (a float
    for a single account). Printed, it shows a summary table per account.

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

    def __post_init__(self):
        for name in _LAZY:   # built on first use (a lean run's cash and positions)
            if isinstance(self.__dict__.get(name), (_LazyOrders, _LazyPanel)):
                self.__dict__["_lazy_" + name] = self.__dict__.pop(name)

    def __getattr__(self, name):   # only for attributes not set: a lazy field
        lazy = self.__dict__.get("_lazy_" + name) if name in _LAZY else None
        if lazy is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        self.__dict__[name] = lazy.frame()
        del self.__dict__["_lazy_" + name]
        return self.__dict__[name]

    @property
    def returns(self) -> xr.DataArray:
        """Per-bar simple returns of each account's equity (the first from ``init_cash``).

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 300))
        >>> sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds)
        >>> res = ql.backtest(ds, sig, fees=0.001)
        >>> res.returns.isel(time=-1).round(5).values
        array([-0.00406,  0.     ,  0.00858,  0.00396])
        """
        prev = self.equity.shift(time=1).fillna(self.init_cash)
        return (self.equity / prev - 1.0).rename("returns")

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
        return build_trades(self.orders_frame, self.prices)

    def metrics(self, risk_free_rate: float | None = None) -> xr.Dataset:
        """Performance metrics of every account.

        ``ql.metrics.summary`` of the returns plus n_trades, fees_paid, turnover (traded value /
        mean equity), exposure (mean |position value| / equity), trade_win_rate and
        trade_profit_factor (closed and open trades).

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
        array([ 0.0185,  0.    ,  0.0531, -0.2407])
        """
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

        o = self.orders_frame
        o = o.assign(traded=o["size"].abs() * o["price"])
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

    @property
    def orders_frame(self) -> pd.DataFrame:
        """``orders`` as a pandas frame (a dask-backed result's are computed)."""
        o = self.orders
        if not hasattr(o, "compute"):
            return o
        o = o.compute().reset_index(drop=True)
        # dask converts text to pyarrow strings: back to pandas' default as in memory
        text = [c for c in o.columns if isinstance(o[c].dtype, pd.StringDtype)]
        return o.astype({c: "str" for c in text}) if text else o

    def __repr__(self):
        from quantlab import tearsheet   # lazy: the face formats numbers

        return tearsheet.summary_text(self)

    def _repr_html_(self):
        from quantlab import tearsheet   # lazy: the face formats numbers

        return tearsheet.summary_html(self)


_LAZY = ("orders", "cash", "positions")   # BacktestResult fields that may come lazy


@dataclass(frozen=True)
class _LazyPanel:
    """A lean run's cash or positions (``name``), rebuilt from its order records when
    first read: the kernel's own operations in its order, so the bits it would have
    written (``positions_from_orders``, ``cash_from_orders``)."""

    run: Run
    name: str
    init_cash: float

    def frame(self) -> xr.DataArray:
        run, orders = self.run, self.run.out[3]
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
class _LazyOrders:
    """A run's order arrays, labelled into the orders table when it is first read."""

    run: Run
    arrays: tuple

    def frame(self) -> pd.DataFrame:
        return _orders(self.run, *self.arrays)


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
                          dd_mode=opts.dd_mode if opts.dd_limit else None)


def streamed_metrics(run: Run, opts: BacktestOptions, n_bars=None) -> xr.Dataset:
    """The metrics-only kernel's statistics -> a Dataset over the account dims;
    ``n_bars``: the bars the statistics ran over (default: the run's)."""
    stats, extra = run.out
    names = opts.metrics_only
    n_bars = run.signal.shape[0] if n_bars is None else n_bars
    ret_names = [k for k in names if k not in STREAMED_EXTRAS]
    values = (metrics.from_accumulator(stats.T, ret_names, run.periods)
              if ret_names else {})
    x = dict(zip(_k.EXTRAS, extra.T))
    values.update(fees_paid=x["fees"], turnover=x["traded"] / (x["eq_sum"] / n_bars),
                  n_orders=x["orders"], exposure=x["exposure"] / n_bars)
    dims, shape = run.acct_dims[1:], run.acct_shape[1:]
    coords = {d: run.signal[d] for d in dims}
    return xr.Dataset({k: (tuple(dims), np.asarray(values[k]).reshape(shape)) for k in names},
                      coords=coords, attrs={"periods": run.periods})


# ---- out-of-core: a dask-backed panel, run chunk by chunk ------------------------------

def is_lazy(*objs) -> bool:
    """True when any of the inputs (Datasets or DataArrays) holds dask arrays."""
    def lazy(o):
        if isinstance(o, xr.Dataset):
            return any(v.chunks is not None for v in o.data_vars.values())
        return isinstance(o, xr.DataArray) and o.chunks is not None
    return any(lazy(o) for o in objs)


def _bounds(obj, dim, n):
    """Chunk boundaries along ``dim`` from the first dask-backed input (one chunk if none)."""
    for o in obj:
        das = o.data_vars.values() if isinstance(o, xr.Dataset) else [o]
        for da in das:
            if isinstance(da, xr.DataArray) and da.chunks is not None and dim in da.dims:
                sizes = da.chunksizes[dim]
                return np.r_[0, np.cumsum(sizes)].astype(int)
    return np.array([0, n])


def _sliced_opts(opts: BacktestOptions, **sel) -> BacktestOptions:
    """``opts`` with every DataArray option cut to the block (``isel`` over its dims)."""
    changes = {}
    for name in opts.__dataclass_fields__:
        v = getattr(opts, name)
        if isinstance(v, xr.DataArray) and set(sel) & set(v.dims):
            changes[name] = v.isel({d: s for d, s in sel.items() if d in v.dims})
    return replace(opts, **changes) if changes else opts


def _load(x, **sel):
    return None if x is None else x.isel({d: s for d, s in sel.items() if d in x.dims}).compute()


def _data_vars(ds):   # the variables a backtest reads: only those are loaded per chunk
    return ds[[v for v in ("open", "high", "low", "close", "volume") if v in ds]]


def _asset_block(ds, signal, entries, exits, opts, a, n_par):
    """One asset chunk of independent accounts (its inputs already cut to the chunk and
    loaded by dask), run in memory: its arrays and orders."""
    o = _sliced_opts(opts, asset=slice(int(a[0]), int(a[1])))
    run = dispatch.simulate(ds, signal, entries, exits, o)
    if opts.metrics_only is not None:
        m = streamed_metrics(run, o)
        return {k: m[k].transpose("asset", *run.params).values for k in opts.metrics_only}
    eq, cash, pos, orders, halted, interest = run.out
    shape = run.signal.shape
    frame = _orders(run, *orders)
    frame["col"] += int(a[0]) * n_par   # the column number in the whole panel
    return {"equity": eq.reshape(shape), "cash": cash.reshape(shape),
            "positions": pos.reshape(shape), "halted": halted.astype(bool).reshape(shape),
            "interest": (interest.reshape(shape) if opts.borrow_rate else None),
            "orders": frame}


def _template(data, signal, entries, exits, opts):
    """The lazily aligned data and signal and the broadcast (time, asset, *params) frame."""
    ds = dispatch.as_dataset(data)
    sig = dispatch.input_signal(signal, entries, exits, opts)
    if not isinstance(sig, xr.DataArray):
        raise TypeError("signal must be an xarray DataArray on (time, asset[, params])")
    _validate.coords(sig, what="signal")
    missing = set(sig.asset.values.tolist()) - set(ds.asset.values.tolist())
    if missing:
        raise ValueError(f"signal has assets not in the data: {sorted(missing)}")
    if not ds.indexes["asset"].equals(sig.indexes["asset"]):
        ds = ds.sel(asset=sig.asset.values)
    tmpl, params = dispatch.broadcast(sig, opts)
    return _data_vars(ds), tmpl, params


def chunked(data, signal, entries, exits, opts: BacktestOptions):
    """``ql.backtest`` of a dask-backed panel (see ``backtest``): per asset chunk for
    independent accounts, streamed over time chunks for portfolios."""
    ds, tmpl, params = _template(data, signal, entries, exits, opts)
    opts = replace(opts, periods=dispatch.resolve_periods(dispatch.as_dataset(data), opts))
    # the inputs each block reads: the user's signal (or entries/exits), on the data's assets
    if opts.group:
        return _streamed(ds, tmpl, params, signal, entries, exits, opts)
    return _per_asset(ds, tmpl, params, signal, entries, exits, opts)


def _per_asset(ds, tmpl, params, signal, entries, exits, opts):
    """Independent accounts: one delayed kernel call per asset chunk, results lazy."""
    import dask   # lazy: dask is only needed for dask-backed panels
    import dask.array as da
    import dask.dataframe as dd

    n_par = int(np.prod(tmpl.shape[2:]))
    edges = _bounds([ds, signal, entries], "asset", tmpl.sizes["asset"])
    sig_in = None if signal is None else signal.sel(asset=tmpl.asset.values)
    ent = None if entries is None else entries.sel(asset=tmpl.asset.values)
    ex = None if exits is None else exits.sel(asset=tmpl.asset.values)
    def cut(x, a0, a1):   # a block's inputs: dask loads only this asset chunk
        return None if x is None else x.isel(asset=slice(int(a0), int(a1)))

    blocks = [dask.delayed(_asset_block, pure=True)(
        *(cut(x, a0, a1) for x in (ds, sig_in, ent, ex)), opts, (a0, a1), n_par)
        for a0, a1 in zip(edges[:-1], edges[1:])]
    widths = np.diff(edges)

    def lazy(key, lead, dtype=np.float64):   # concatenated along the asset axis
        parts = [da.from_delayed(dask.delayed(dict.get)(b, key),
                                 (*lead, int(w), *tmpl.shape[2:]), dtype=dtype)
                 for b, w in zip(blocks, widths)]
        return da.concatenate(parts, axis=len(lead))

    coords = {d: tmpl[d] for d in tmpl.dims}
    if opts.metrics_only is not None:
        dims = ("asset", *params)
        return xr.Dataset({k: (dims, lazy(k, ())) for k in opts.metrics_only},
                          coords={d: tmpl[d] for d in dims},
                          attrs={"periods": opts.periods})

    def arr(key, dtype=np.float64):
        return xr.DataArray(lazy(key, (tmpl.sizes["time"],), dtype), dims=tmpl.dims,
                            coords=coords, name=key)

    meta = _orders(Run(None, tmpl, None, params, False), *_no_orders())
    orders = dd.from_delayed([dask.delayed(dict.get)(b, "orders") for b in blocks], meta=meta,
                             verify_meta=False)
    return BacktestResult(arr("equity"), arr("cash"), arr("positions"), orders,
                          float(opts.init_cash), opts.periods, False,
                          ds["close"].transpose("time", "asset"),
                          halted=arr("halted", bool) if opts.dd_limit else None,
                          interest=arr("interest") if opts.borrow_rate else None,
                          dd_mode=opts.dd_mode if opts.dd_limit else None)


def _no_orders():
    return (np.empty(0, np.intp), np.empty(0, np.intp), np.empty(0), np.empty(0),
            np.empty(0), np.empty(0, np.int8))


# about 80 lines: one loop over the time chunks and its five outputs, kept together so
# the chain of states is read in one place
def _streamed(ds, tmpl, params, signal, entries, exits, opts, store=None):
    """A portfolio streamed over time chunks, the kernel's state carried between them.

    Each chunk reads its rows plus the slippage model's window before them
    (``history_needed``), so memory is one time chunk. The per-bar outputs are written
    chunk by chunk into a zarr store (a temporary directory) and come back as dask
    arrays reading it: a lazy graph cannot carry the state, since a later chunk may still
    cut the fee of an order an earlier chunk returned (a drained account), and
    recomputing a chunk would rerun every chunk before it."""
    import dask.array as da
    import zarr

    from quantlab._kernels.backtest import SimState   # lazy: only streamed runs need it

    n = tmpl.sizes["time"]
    n_par = int(np.prod(tmpl.shape[2:]))
    n_cols = int(np.prod(tmpl.shape[1:]))
    acct_shape = (n, *tmpl.shape[2:])
    state = SimState(n_cols, n_par, float(opts.init_cash))
    edges = _bounds([ds, signal, entries], "time", n)
    h = opts.history_needed() - 1
    sig_in = None if signal is None else signal.sel(asset=tmpl.asset.values)
    ent = None if entries is None else entries.sel(asset=tmpl.asset.values)
    ex = None if exits is None else exits.sel(asset=tmpl.asset.values)
    metrics_only = opts.metrics_only is not None
    if not metrics_only:
        path = store or tempfile.mkdtemp(prefix="ql-backtest-")
        if store is None:
            atexit.register(shutil.rmtree, path, True)
        root = zarr.open_group(path, mode="w")
        step = int(max(np.diff(edges).max(), 1))
        shapes = {"equity": acct_shape, "cash": acct_shape, "positions": tmpl.shape,
                  "halted": acct_shape, "interest": acct_shape}
        out = {k: root.create_array(k, shape=s, chunks=(step, *s[1:]),
                                    dtype=bool if k == "halted" else np.float64)
               for k, s in shapes.items()}
        order_parts = []
    run = None
    for t0, t1 in zip(edges[:-1], edges[1:]):
        w0 = max(0, int(t0) - h)
        sel = {"time": slice(w0, int(t1))}
        run = dispatch.simulate(_load(ds, **sel), _load(sig_in, **sel), _load(ent, **sel),
                                _load(ex, **sel), _sliced_opts(opts, **sel), state=state,
                                start=int(t0) - w0)
        if metrics_only:
            continue
        eq, cash, pos, orders, halted, interest = run.out
        rows = slice(int(t0), int(t1))
        out["equity"][rows] = eq.reshape((-1, *acct_shape[1:]))
        out["cash"][rows] = cash.reshape((-1, *acct_shape[1:]))
        out["positions"][rows] = pos.reshape((-1, *tmpl.shape[1:]))
        out["halted"][rows] = halted.astype(bool).reshape((-1, *acct_shape[1:]))
        if opts.borrow_rate:
            out["interest"][rows] = interest.reshape((-1, *acct_shape[1:]))
        orders[0][:] += int(t0)        # row numbers in the whole run
        order_parts.append(orders)     # kept as arrays: a later chunk may cut a fee
    if metrics_only:
        return streamed_metrics(run, opts, n_bars=n)
    orders = _orders(Run(None, tmpl, None, params, True),
                     *(np.concatenate(p) for p in zip(*order_parts)))
    acct_dims = ["time", *params]

    def arr(key, dims):
        return xr.DataArray(da.from_zarr(path, component=key), dims=dims,
                            coords={d: tmpl[d] for d in dims}, name=key)

    return BacktestResult(arr("equity", acct_dims), arr("cash", acct_dims),
                          arr("positions", list(tmpl.dims)), orders,
                          float(opts.init_cash), opts.periods, True,
                          ds["close"].transpose("time", "asset"),
                          halted=arr("halted", acct_dims) if opts.dd_limit else None,
                          interest=arr("interest", acct_dims) if opts.borrow_rate else None,
                          dd_mode=opts.dd_mode if opts.dd_limit else None)
