"""The kernel's arrays -> ``BacktestResult`` (or a metrics-only Dataset)."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import xarray as xr

from quantlab import _validate, metrics
from quantlab._kernels import backtest as _k
from quantlab.backtesting.dispatch import Run
from quantlab.backtesting.options import STREAMED_EXTRAS, BacktestOptions
from quantlab.backtesting.trades import REASONS, build_trades

__all__ = ["BacktestResult", "from_run", "streamed_metrics"]


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
        return build_trades(self.orders, self.prices)

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
        from quantlab import plots   # lazy: drawing lives in the face (bokeh)

        return plots.backtest_figure(self, **kw)

    def tearsheet(self, benchmark=None, **kw):
        """A tear sheet of this backtest (``ql.tearsheet.from_result``).

        Summary beside ``benchmark`` ("buy_and_hold" or a return series), equity, drawdowns,
        monthly returns, rolling Sharpe, distribution, trades.

        Parameters
        ----------
        benchmark : str or array-like, optional
            "buy_and_hold" or a return series.
        **kw
            Passed to :func:`quantlab.tearsheet.from_result`.

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
        from quantlab import tearsheet   # lazy: drawing lives in the face (bokeh)

        return tearsheet.from_result(self, benchmark, **kw)

    def __repr__(self):
        from quantlab import tearsheet   # lazy: the face formats numbers

        return tearsheet.summary_text(self)

    def _repr_html_(self):
        from quantlab import tearsheet   # lazy: the face formats numbers

        return tearsheet.summary_html(self)


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


def from_run(run: Run, opts: BacktestOptions) -> BacktestResult:
    """A full run's arrays as labelled DataArrays and the orders table."""
    eq, cash, pos, order_arrays, halted, interest = run.out
    signal, acct_dims, acct_shape = run.signal, run.acct_dims, run.acct_shape

    def account(a, name):
        return xr.DataArray(a.reshape(acct_shape), dims=acct_dims,
                            coords={d: signal[d] for d in acct_dims}, name=name)

    positions = xr.DataArray(pos.reshape(signal.shape), dims=signal.dims,
                             coords={d: signal[d] for d in signal.dims}, name="positions")
    halted_da = None if not opts.dd_limit else account(halted.astype(bool), "halted")
    interest_da = None if not opts.borrow_rate else account(interest, "interest")
    prices = run.ds["close"].transpose("time", "asset")
    return BacktestResult(account(eq, "equity"), account(cash, "cash"), positions,
                          _orders(run, *order_arrays), float(opts.init_cash), opts.periods,
                          bool(opts.group), prices, halted=halted_da, interest=interest_da,
                          dd_mode=opts.dd_mode if opts.dd_limit else None)


def streamed_metrics(run: Run, opts: BacktestOptions) -> xr.Dataset:
    """The metrics-only kernel's statistics -> a Dataset over the account dims."""
    stats, extra = run.out
    names, n_bars = opts.metrics_only, run.signal.shape[0]
    ret_names = [k for k in names if k not in STREAMED_EXTRAS]
    values = (metrics.from_accumulator(stats.T, ret_names, opts.periods)
              if ret_names else {})
    x = dict(zip(_k.EXTRAS, extra.T))
    values.update(fees_paid=x["fees"], turnover=x["traded"] / (x["eq_sum"] / n_bars),
                  n_orders=x["orders"], exposure=x["exposure"] / n_bars)
    dims, shape = run.acct_dims[1:], run.acct_shape[1:]
    coords = {d: run.signal[d] for d in dims}
    return xr.Dataset({k: (tuple(dims), np.asarray(values[k]).reshape(shape)) for k in names},
                      coords=coords)
