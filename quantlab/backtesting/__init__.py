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

import pandas as pd
import xarray as xr

from quantlab import _threads, _validate
from quantlab.backtesting import dispatch, result
from quantlab.backtesting.options import (DD_MODES, MAX_LEVERAGE, SIZE_TYPES,
                                          STREAMED_EXTRAS, BacktestOptions, Slippage)
from quantlab.backtesting.result import BacktestResult
from quantlab.backtesting.trades import REASONS

__all__ = ["backtest", "BacktestResult", "BacktestOptions", "Slippage", "DD_MODES",
           "MAX_LEVERAGE", "REASONS", "SIZE_TYPES", "STREAMED_EXTRAS"]


# longer than 80 lines only by its docstring, the argument reference of ql.backtest
def backtest(data, signal=None, *, entries=None, exits=None, size=None, accumulate=False,
             size_type="equity", init_cash=100_000.0, fees=0.0, fixed_fees=0.0, slippage=0.0,
             max_position_size=None, max_leverage=1.0, borrow_rate=0.0,
             maintenance_margin=0.25, execution="close", rebalance="on_change", group=False,
             periods=None, sl_stop=None, tp_stop=None, sl_trail=None, order_type="market",
             limit_offset=None, limit_tif=None, metrics_only=None, dd_limit=None,
             dd_cooldown=21, dd_mode="cooldown", client=None, threads=None,
             progress=True) -> BacktestResult:
    """Simulate ``signal`` (or ``entries``/``exits``) on ``data``; see the package doc.

    Conventions (fills, sizing, group accounts, stops) are in the :mod:`quantlab.backtesting`
    module documentation; each option's details are in the Notes below.

    A dask-backed ``data`` (``ql.data.open``) or signal runs out of core, streamed over
    its time chunks carrying the kernel's state: for independent accounts
    (``group=False``) one chain per span of asset chunks, as many spans as dask's
    scheduler runs tasks at once, in parallel; one chain for portfolios (``group=True``).
    Each chunk is computed in turn into a temporary zarr store that the results' dask
    arrays read (``orders``: a pandas frame read on first use). Memory: one time chunk of
    the chain's assets per running chain. Both equal the in-memory backtest.

    Parameters
    ----------
    data : xarray.Dataset
        Prices with dims (time, asset): ``close``, plus ``open``/``high``/``low``/``volume``
        where execution, stops, limit orders or slippage models need them. Closes alone
        may come as a DataArray, a pandas DataFrame (rows: time, columns: assets) or a
        Series (one asset, named by its name).
    signal : xarray.DataArray, optional
        Target exposure in [-1, 1] on (time, asset[, parameter dims]); NaN = hold. A
        DataFrame (time by asset) or Series is matched to ``data`` by label too.
    entries, exits : xarray.DataArray of bool, optional
        Long-only order events instead of ``signal`` (see Notes, Orders); or boolean
        DataFrames.
    size : float or xarray.DataArray, optional
        Order size for ``entries``, in ``size_type`` units, >= 0 (inf = all the buying
        power).
    accumulate : bool, default False
        Entries add ``size`` and exits sell ``size`` instead of opening/closing.
    size_type : {'equity', 'value', 'shares'}, default 'equity'
        Unit of ``size``.
    init_cash : float, default 100000.0
        Initial cash per account (> 0).
    fees : float or xarray.DataArray, default 0.0
        Fraction of traded value, in [0, 1); a labelled DataArray sweeps it.
    fixed_fees : float or xarray.DataArray, default 0.0
        Per order, >= 0 (see Notes, Fixed fees).
    slippage : float, Slippage or dict, default 0.0
        Fraction of the price in [0, 1), or a :class:`Slippage` model (or its fields as
        a dict, as ``BacktestOptions.to_dict`` writes them).
    max_position_size : float, optional
        Cap on each asset's exposure (> 0; default ``max_leverage``; inf = no cap).
    max_leverage : float, default 1.0
        Exposure = signal x max_leverage, in (0, 100].
    borrow_rate : float, default 0.0
        Annual rate on borrowed cash and short value, in [0, 1).
    maintenance_margin : float, default 0.25
        Equity / gross position value below which an account is liquidated, in [0, 1).
    execution : {'close', 'next_open'}, default 'close'
        Fill at the decision bar's close or the next bar's open.
    rebalance : {'on_change', 'daily'}, default 'on_change'
        Order when the target changes (by more than 1e-12 of max(1, |target|): a
        difference in the last bits is no change), or every bar.
    group : bool, default False
        One cash account per parameter combination across the assets (a portfolio).
    periods : int, optional
        Bars per year (>= 1), for the metrics and ``borrow_rate``; default the data's
        ``periods_per_year`` attr or its inferred calendar (``ql.calendar.periods_for``),
        else 252.
    sl_stop, tp_stop, sl_trail : float or xarray.DataArray, optional
        Stop-loss, take-profit and trailing-stop fractions (> 0; NaN = off); DataArrays
        over asset/parameter dims become dims of the result.
    order_type : {'market', 'limit'}, default 'market'
        Limit orders need ``execution="close"`` (see Notes).
    limit_offset : float or xarray.DataArray, optional
        Limit distance from the close, in [0, 1).
    limit_tif : int, optional
        Bars a limit order rests (>= 1; None = until replaced).
    metrics_only : tuple of str or True, optional
        Return only these metrics (True: all it can keep), streamed (see Notes).
    dd_limit : float, optional
        Drawdown limit in (0, 1) (see Notes).
    dd_cooldown : int, default 21
        Bars an account stays flat after a breach (>= 0; ``dd_mode="cooldown"``).
    client : dask.distributed.Client, optional
        Where a dask-backed backtest runs (see Notes, Clusters). Default: the active
        ``Client`` if there is one (dask's default scheduler), else dask's threads.
    dd_mode : {'cooldown', 'halt'}, default 'cooldown'
        What follows a breach.
    threads : int, optional
        Threads for independent accounts (``group=False``, in memory; an integer >= 1):
        blocks of columns run side by side, with every option (stops, limits,
        ``dd_limit``, margin, borrowing, fixed fees, order events), each block writing
        its columns of the results and recording its own orders, merged back into one
        thread's row order: the same bits and order rows as ``threads=1``. The bars'
        checks run on as many threads. None: the package default (``$QUANTLAB_THREADS``
        or the core count, 1 inside other threads; measured, 2 threads vs 1: 1.0-1.6x
        over panels from 1M bars x 4 assets to 252 x 5000). Small runs use one
        thread whatever ``threads`` is, and so do portfolios' simulations
        (``group=True``: one account spans every column) and panels narrower than two
        blocks of 16 accounts. A dask-backed run does not read it: its chains run on
        dask's threads, each chunk's checks on the package default of the thread
        running it.
    progress : bool, default True
        A dask-backed run shows a progress bar of its time chunks once it has run 2
        seconds (tqdm's; a notebook widget in Jupyter); none for chains on a cluster's
        workers, a lazy ``metrics_only`` result, or a run in memory.

    Returns
    -------
    BacktestResult or xarray.Dataset
        A :class:`BacktestResult` (equity, cash, positions, orders, trades, metrics), or
        with ``metrics_only`` a Dataset of those metrics per account.

    Raises
    ------
    ValueError
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
        They are matched to the signal by label: a time or asset label of the signal that
        one lacks, or a parameter label the signal lacks, is refused (extra time/asset
        labels, e.g. an option over the whole history, are dropped).
    TypeError
        If an option has the wrong type (e.g. a list for ``fees``, or anything but True or
        False for ``accumulate``/``group``).
    DataError
        If ``data``/``signal`` lack a time/asset coordinate or the data is invalid.

    Notes
    -----
    Clusters (``client=``, dask-backed data only): independent accounts' chains run on
    the workers, each writing its block of the results into the results' store; a
    portfolio's time chunks are loaded through the client in turn while its chain runs
    here. The data must be readable by every worker (a store on a path they all see, or
    an object-store URL). The results' store is made in this machine's ``TMPDIR``: on a
    cluster of several machines, set ``TMPDIR`` (or ``tempfile.tempdir``) to storage
    every worker mounts at the same path.

    ``metrics_only`` (a tuple of metric names, or True for all of them): keep no equity,
    positions or orders and return an ``xr.Dataset`` of those metrics per account,
    accumulated while the kernel runs (memory independent of the number of bars). Names:
    the returns metrics that need
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
    leverage, shorts or fixed fees (a fixed fee can exceed a sale's proceeds and leave
    cash below 0), an account whose equity at a close is below
    ``maintenance_margin`` x its gross position value is liquidated at that close
    (slippage and fees apply; exit reason ``margin_call``); its targets become 0, so the
    next signal change re-enters. A gap can jump past the margin: an account left with
    equity <= 0 is closed (no more orders or interest; its equity stays where it ended).

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds)
    >>> res = ql.backtest(ds, sig, fees=0.001)
    >>> res.metrics()["total_return"].round(4).values
    array([ 0.0185,     nan,  0.0531, -0.2407])
    >>> ql.backtest(ds, sig, fees=0.001, metrics_only=("turnover",))["turnover"].round(2).values
    array([ 9.41,   nan, 12.53, 10.76])
    >>> ql.backtest(ds, sig, fees=1.5)
    Traceback (most recent call last):
    ...
    ValueError: fees must be in [0, 1), got 1.5
    """
    opts = BacktestOptions(
        size=size, accumulate=accumulate, size_type=size_type, init_cash=init_cash,
        fees=fees, fixed_fees=fixed_fees, slippage=slippage,
        max_position_size=max_position_size, max_leverage=max_leverage,
        borrow_rate=borrow_rate, maintenance_margin=maintenance_margin,
        execution=execution, rebalance=rebalance, group=group, periods=periods,
        sl_stop=sl_stop, tp_stop=tp_stop, sl_trail=sl_trail, order_type=order_type,
        limit_offset=limit_offset, limit_tif=limit_tif, metrics_only=metrics_only,
        dd_limit=dd_limit, dd_cooldown=dd_cooldown, dd_mode=dd_mode)
    if threads is not None:
        threads = _threads.resolve(threads)   # checked before any work
    progress = _validate.flag("progress", progress)
    if isinstance(data, (pd.DataFrame, pd.Series)):
        data = _validate.dataset("data", data)
    # an unnamed Series of targets or events is the data's asset when it has only one
    one = data["asset"].values if isinstance(data, (xr.Dataset, xr.DataArray)) and \
        data.sizes.get("asset") == 1 and "asset" in data.coords else [None]
    signal, entries, exits = (_validate.labelled(k, v, one[0]) for k, v in
                              (("signal", signal), ("entries", entries), ("exits", exits)))
    if signal is not None and not isinstance(signal, xr.DataArray):   # 1.0, a list, a
        raise TypeError("signal must be an xarray DataArray on (time, asset[, params]) or a "
                        f"pandas DataFrame (time by asset), got {type(signal).__name__}")
    if result.is_lazy(data, signal, entries, exits):
        return _lazy(data, signal, entries, exits, opts, client, progress)
    if client is not None:
        raise ValueError("client= runs dask-backed data on a cluster; this data is in "
                         "memory: chunk it (data.chunk({'asset': 50})) or drop client=")
    # lean: cash and positions are rebuilt from the orders on first read
    run = dispatch.simulate(data, signal, entries, exits, opts, lean=True, threads=threads)
    if opts.metrics_only is not None:
        out = result.streamed_metrics(run, opts)
        out.attrs["periods"] = run.periods
        return out
    return result.from_run(run, opts)


def _lazy(data, signal, entries, exits, opts, client, progress=False):
    """``result.chunked`` on ``client`` (None: dask's default scheduler)."""
    if client is None:
        return result.chunked(data, signal, entries, exits, opts, progress=progress)
    if not (callable(getattr(client, "get", None)) and callable(getattr(client, "persist", None))):
        raise TypeError(f"client must be a dask.distributed.Client, got {type(client).__name__}")
    import dask   # lazy: dask-backed runs only

    # the chains of independent accounts run on its workers; a portfolio's chunks are
    # loaded through it
    with dask.config.set(scheduler=client):
        out = result.chunked(data, signal, entries, exits, opts, progress=progress)
    if isinstance(out, xr.Dataset):   # metrics_only: one small task per asset chunk
        return client.persist(out)
    return out   # computed already, into the store the result reads
