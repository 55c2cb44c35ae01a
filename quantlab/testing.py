"""Checks offered to users for their own strategies, and the tick engine's synthetic
data (``synthetic_ticks``, ``to_dicts``, ``seed_batch``: tests, benchmarks, notebooks)."""
from __future__ import annotations

import numpy as np

from quantlab import _validate as _v

__all__ = ["assert_no_lookahead", "synthetic_ticks", "to_dicts", "seed_batch",
           "synthetic_minute_panel", "ticks_from_bars"]


def assert_no_lookahead(strategy, ds, n_cuts: int = 5, min_history: int | None = None) -> None:
    """Assert that the signal at t uses data up to t only: computed on
    ``ds.isel(time=slice(0, t + 1))`` (with that truncated data's ``default_inputs``) it
    equals the signal at t computed on all of ``ds``, at ``n_cuts`` times spread over the
    second half of the data.

    Parameters
    ----------
    strategy : quantlab.strategies.Strategy
        The strategy, with its parameters.
    ds : xarray.Dataset
        The bars (time, asset).
    n_cuts : int, default 5
        Truncation points checked.
    min_history : int, optional
        First cut (bars); default: half of ``ds``.

    Raises
    ------
    AssertionError
        Naming the first time where the truncated signal differs (rtol 1e-9).

    Examples
    --------
    >>> import quantlab as ql
    >>> from quantlab.testing import assert_no_lookahead
    >>> ds = ql.data.load().isel(time=slice(0, 400))
    >>> assert_no_lookahead(ql.strategies.get("volatility_regime"), ds, n_cuts=3)
    >>> class Peek(ql.strategies.Strategy):   # reads tomorrow's close
    ...     name, defaults, param_space = "peek_demo", {}, {}
    ...     def _signal(self, ds):
    ...         return (ds["close"].shift(time=-1) > ds["close"]).astype(float)
    >>> assert_no_lookahead(Peek(), ds, n_cuts=3)
    Traceback (most recent call last):
    ...
    AssertionError: ql.strategies.get('peek_demo') looks ahead: its signal at 2000-12-13 differs when later data is removed (IBM: 0 with data up to then, 1 with all data)
    """
    full = strategy.signal(ds, **strategy.default_inputs(ds))
    n = ds.sizes["time"]
    start = n // 2 if min_history is None else min_history
    cuts = np.unique(np.linspace(start, n - 2, n_cuts).astype(int))
    for t in cuts:
        part = ds.isel(time=slice(0, t + 1))
        got = strategy.signal(part, **strategy.default_inputs(part)).isel(time=-1)
        want = full.isel(time=t)
        off = ~np.isclose(got.values, want.values, equal_nan=True, rtol=1e-9, atol=1e-12)
        if off.any():
            # by label, saying which value is which: "([nan nan nan] vs [1. 1. 1.])" named
            # neither the assets nor the run each array came from
            keys = got.to_series().index[off.ravel()] if got.ndim else [None]
            if got.ndim > 1:   # ('AAPL', 1) -> asset=AAPL, k=1
                keys = [", ".join(f"{n}={v}" for n, v in zip(keys.names, k)) for k in keys]
            cut, whole = got.values[off], want.values[off]
            shown = [f"{'' if k is None else f'{k}: '}{a:g} with data up to then, {b:g} with "
                     "all data" for k, a, b in zip(keys[:5], cut[:5], whole[:5])]
            more = f"; and {len(cut) - 5} more" if len(cut) > 5 else ""
            raise AssertionError(
                f"{strategy!r} looks ahead: its signal at {str(ds.time.values[t])[:10]} "
                f"differs when later data is removed ({'; '.join(shown)}{more})")


# ---- tick engine data ----------------------------------------------------------------

def synthetic_ticks(n=10_000, n_symbols=50, seed=0, bad_fraction=0.0, start_price=100.0,
                    tick_size=0.01) -> dict:
    """Random-walk quotes with varying book imbalance (columns; prices in currency,
    timestamps in µs). ``bad_fraction`` of ticks are corrupted (crossed quotes,
    negative or NaN prices, negative sizes, unknown symbols, out-of-order timestamps).

    Parameters
    ----------
    n : int, default 10000
        Ticks (at most 1e8).
    n_symbols : int, default 50
        Symbols, ids 0 .. n_symbols - 1.
    seed : int, default 0
        Random seed: the same seed gives the same ticks.
    bad_fraction : float, default 0.0
        Fraction of corrupted ticks, in [0, 1].
    start_price : float, default 100.0
        First mid of every symbol (> 0).
    tick_size : float, default 0.01
        Price grid (> 0).

    Returns
    -------
    dict of numpy.ndarray
        ``symbol_id``, ``bid_price``, ``ask_price``, ``bid_size``, ``ask_size``,
        ``timestamp``: the columns :meth:`quantlab.engine.TickEngine.process_ticks` reads.

    Examples
    --------
    >>> from quantlab.testing import synthetic_ticks
    >>> cols = synthetic_ticks(5, n_symbols=2, seed=1)
    >>> sorted(cols)
    ['ask_price', 'ask_size', 'bid_price', 'bid_size', 'symbol_id', 'timestamp']
    >>> cols["symbol_id"], cols["bid_price"]
    (array([0, 1, 1, 1, 0]), array([ 99.99, 100.  ,  99.99,  99.98,  99.98]))
    """
    from quantlab.engine.config import MAX_SYMBOLS   # lazy: cycle (engine's bench imports us)

    n = _v.integer("n", n, 0, 10 ** 8)          # ~10 arrays of n: bounded before allocating
    n_symbols = _v.integer("n_symbols", n_symbols, 1, MAX_SYMBOLS)
    bad_fraction = _v.number("bad_fraction", bad_fraction, 0, 1)
    start_price = _v.number("start_price", start_price, 0, lo_open=True)
    tick_size = _v.number("tick_size", tick_size, 0, lo_open=True)
    rng = np.random.default_rng(seed)
    sym = rng.integers(0, n_symbols, n)
    drift = rng.normal(0, 0.1, n_symbols)           # some symbols trend
    steps = rng.choice([-1, 0, 1], n, p=[0.3, 0.4, 0.3]) + rng.binomial(
        1, np.abs(drift[sym])) * np.sign(drift[sym])
    mid = np.empty(n)
    for s in range(n_symbols):                       # each symbol's own random walk
        idx = np.flatnonzero(sym == s)
        mid[idx] = round(start_price / tick_size) + np.cumsum(steps[idx])
    mid = np.maximum(mid, 10)
    spread = rng.integers(1, 4, n)
    bid, ask = (mid - spread) * tick_size, (mid + spread) * tick_size
    imb = np.clip(rng.normal(0, 0.45, n), -0.95, 0.95)
    total = rng.integers(200, 2000, n)
    bsz = np.rint(total * (1 + imb) / 2).astype(np.int64)
    cols = {"symbol_id": sym.astype(np.int64), "bid_price": bid, "ask_price": ask,
            "bid_size": bsz, "ask_size": (total - bsz).astype(np.int64),
            "timestamp": 1_700_000_000_000_000 + np.cumsum(rng.integers(1, 200, n))}
    if bad_fraction:
        idx = rng.choice(n, int(n * bad_fraction), replace=False)
        kind = rng.integers(0, 6, idx.size)
        b, a = cols["bid_price"], cols["ask_price"]
        k0 = idx[kind == 0]
        b[k0], a[k0] = a[k0] + 0.05, b[k0].copy()          # crossed
        b[idx[kind == 1]] *= -1                             # negative price
        a[idx[kind == 2]] = np.nan                          # missing price
        cols["bid_size"][idx[kind == 3]] = -5               # negative size
        cols["symbol_id"][idx[kind == 4]] = n_symbols + 10_000_000
        cols["timestamp"][idx[kind == 5]] -= 10_000         # out of order
    return cols


def to_dicts(cols, as_strings=False) -> list:
    """Columns -> the seed's list of dicts (prices as decimal strings if asked).

    Parameters
    ----------
    cols : dict of numpy.ndarray
        Tick columns, as :func:`synthetic_ticks` returns.
    as_strings : bool, default False
        Prices as ``"%.2f"`` strings (the seed's wire format) instead of floats.

    Returns
    -------
    list of dict
        One dict per tick, with ``venue_id`` 1 and ``flags`` 0.

    Examples
    --------
    >>> from quantlab.testing import synthetic_ticks, to_dicts
    >>> to_dicts(synthetic_ticks(5, n_symbols=2, seed=1), as_strings=True)[0]
    {'symbol_id': 0, 'bid_price': '99.99', 'ask_price': '100.01', 'bid_size': 476, 'ask_size': 620, 'timestamp': 1700000000000192, 'venue_id': 1, 'flags': 0}
    """
    n = len(cols["timestamp"])
    fmt = (lambda x: f"{x:.2f}") if as_strings else float
    return [{"symbol_id": int(cols["symbol_id"][i]), "bid_price": fmt(cols["bid_price"][i]),
             "ask_price": fmt(cols["ask_price"][i]), "bid_size": int(cols["bid_size"][i]),
             "ask_size": int(cols["ask_size"][i]), "timestamp": int(cols["timestamp"][i]),
             "venue_id": 1, "flags": 0} for i in range(n)]


def seed_batch(n_symbols=100, n_ticks=1000) -> list:
    """The seed's sample batch shape: n_symbols x n_ticks dicts, prices as strings,
    constant prices per symbol (so, rightly, no signals).

    Parameters
    ----------
    n_symbols : int, default 100
        Symbols per tick time.
    n_ticks : int, default 1000
        Tick times (at most 1e7).

    Returns
    -------
    list of dict
        ``n_symbols * n_ticks`` dicts, time-major.

    Examples
    --------
    >>> from quantlab.testing import seed_batch
    >>> batch = seed_batch(2, 3)
    >>> len(batch), batch[1]["symbol_id"], batch[1]["bid_price"]
    (6, 1, '101.00')
    """
    from quantlab.engine.config import MAX_SYMBOLS   # lazy: cycle (engine's bench imports us)

    n_symbols = _v.integer("n_symbols", n_symbols, 0, MAX_SYMBOLS)
    n_ticks = _v.integer("n_ticks", n_ticks, 0, 10 ** 7)
    out = []
    for t in range(n_ticks):
        for s in range(n_symbols):
            p = 100.0 + s
            out.append({"symbol_id": s, "bid_price": f"{p:.2f}", "ask_price": f"{p + 0.01:.2f}",
                        "bid_size": "500", "ask_size": "500", "timestamp": 1_700_000_000_000_000 + t,
                        "venue_id": 1, "flags": 0})
    return out


# ---- the store's benchmark data ------------------------------------------------------

_MAX_IN_MEMORY = 2 * 10 ** 9   # bytes of a panel returned in memory (store=None)


def synthetic_minute_panel(n_assets, n_days, store=None, seed=0, calendar="24/7",
                           chunk_time=None, chunk_asset=None):
    """A random-walk 1-minute OHLCV panel of ``n_assets`` x ``n_days`` days from
    2024-01-01: ``calendar="24/7"`` (1440 bars a day, every day) or ``"session"``
    (business days, 09:30-15:59 bars, 390 a day). Open = previous close, log returns
    N(0, 0.0005), high/low beyond both by |N(0, 0.0003)|, volume lognormal.

    ``store``: a new directory to write straight into, one day generated and one chunk
    row held at a time (returns its path; open it with ``ql.data.open``); None returns
    the Dataset in memory (at most 2 GB). The values depend on the seed only, not on the
    chunking.

    Parameters
    ----------
    n_assets, n_days : int
        Panel size.
    store : str or path, optional
        A new directory to write a zarr store into; None: return the Dataset.
    seed : int, default 0
        Random seed.
    calendar : {"24/7", "session"}, default "24/7"
        Every minute of every day, or 390 session minutes of business days.
    chunk_time, chunk_asset : int, optional
        The store's chunk shape (defaults: a day of bars, all assets).

    Returns
    -------
    xarray.Dataset or pathlib.Path
        The panel (with ``freq``/``calendar``/``periods_per_year`` attrs), or the store.

    Examples
    --------
    >>> from quantlab.testing import synthetic_minute_panel
    >>> ds = synthetic_minute_panel(3, 2)
    >>> dict(ds.sizes), list(ds.data_vars), ds.attrs["periods_per_year"]
    ({'time': 2880, 'asset': 3}, ['open', 'high', 'low', 'close', 'volume'], 525600)
    >>> dict(synthetic_minute_panel(2, 3, calendar="session").sizes)
    {'time': 1170, 'asset': 2}
    """
    import pandas as pd
    import xarray as xr

    from quantlab import calendar as _cal   # lazy: xarray/pandas, only for a panel
    from quantlab import store as _store     # lazy: zarr, only for a store

    n_assets = _v.integer("n_assets", n_assets, 1, 10 ** 5)
    n_days = _v.integer("n_days", n_days, 1, 10 ** 5)
    _v.choice("calendar", calendar, ("24/7", "session"))
    days = (pd.date_range("2024-01-01", periods=n_days, freq="D") if calendar == "24/7"
            else pd.bdate_range("2024-01-01", periods=n_days))
    first, per_day = (0, 1440) if calendar == "24/7" else (570, 390)
    if store is None and n_assets * n_days * per_day * 5 * 8 > _MAX_IN_MEMORY:
        raise ValueError(f"synthetic_minute_panel: {n_assets} assets x {n_days} days is over "
                         f"{_MAX_IN_MEMORY / 1e9:g} GB in memory; pass store= to write it to disk")
    assets = [f"A{i:04d}" for i in range(n_assets)]
    minutes = (first + np.arange(per_day)).astype("timedelta64[m]")

    def pieces():
        rng = np.random.default_rng(seed)
        last = 100.0 * np.exp(rng.normal(0, 0.5, n_assets))
        for day in days.values.astype("datetime64[m]"):
            r = rng.normal(0, 0.0005, (per_day, n_assets))
            close = last * np.exp(np.cumsum(r, axis=0))
            open_ = np.vstack([last, close[:-1]])
            wick = np.abs(rng.normal(0, 0.0003, (2, per_day, n_assets)))
            high = np.maximum(open_, close) * (1 + wick[0])
            low = np.minimum(open_, close) * (1 - wick[1])
            volume = np.round(rng.lognormal(5, 1, (per_day, n_assets)))
            last = close[-1]
            yield day + minutes, {"open": open_, "high": high, "low": low, "close": close,
                                  "volume": volume}

    # the calendar made here, told to the inference (write_panel's and annotate's): days
    # this few cannot tell 24/7 from 24/5, nor one day's session from a longer one
    told = (("24/7", 365 * 1440) if calendar == "24/7" else
            (f"session {first // 60:02d}:{first % 60:02d}-{(first + per_day) // 60:02d}:"
             f"{(first + per_day) % 60:02d}", 252 * per_day))
    with _cal.known("1min", *told):
        if store is not None:
            return _store.write_panel(store, pieces(), assets, asset_class="synthetic",
                                      chunk_time=chunk_time, chunk_asset=chunk_asset,
                                      source=f"synthetic_minute_panel(seed={seed}, "
                                             f"calendar={calendar!r})")
        parts = list(pieces())
        time = np.concatenate([t for t, _ in parts]).astype("datetime64[ns]")
        ds = xr.Dataset({v: (("time", "asset"), np.concatenate([p[v] for _, p in parts]))
                         for v in ("open", "high", "low", "close", "volume")},
                        coords={"time": time, "asset": assets,
                                "asset_class": ("asset", ["synthetic"] * n_assets)})
        ds.attrs["source"] = f"synthetic_minute_panel(seed={seed}, calendar={calendar!r})"
        return _cal.annotate(ds)


def ticks_from_bars(ds, spread: float = 0.0, unit: str = "us") -> dict:
    """Engine tick columns that replay the bars of ``ds`` (a (time, asset) Dataset with
    open/high/low/close, optionally volume): per asset and bar, four quotes with mid =
    open, high, low, close at 0, 1/4, 1/2, 3/4 of the bar (the high before the low), the
    bar's volume split evenly over their sizes; assets without a bar send nothing. Bars
    aggregated from them by the engine (``quantlab.engine.bars``, ``freq`` = the bar
    spacing) are the bars of ``ds`` again (exactly, with ``spread=0``).

    Parameters
    ----------
    ds : xarray.Dataset
        Bars with open/high/low/close (and optionally volume) on (time, asset).
    spread : float, default 0.0
        Quoted spread around each mid (currency).
    unit : {"s", "ms", "us", "ns"}, default "us"
        Unit of the integer timestamps.

    Returns
    -------
    dict of numpy.ndarray
        Tick columns in time order, as :meth:`quantlab.engine.TickEngine.process_ticks`
        reads them.

    Examples
    --------
    >>> import quantlab as ql
    >>> from quantlab.testing import ticks_from_bars
    >>> ticks = ticks_from_bars(ql.data.load().isel(time=slice(0, 2)))
    >>> len(ticks["timestamp"])   # 2 bars x 3 assets x 4 quotes (GOOG has no bars in 2000)
    24
    """
    # in ns whatever the index's unit (pandas 3 makes µs indexes: they were read as ns,
    # ticks of 1970)
    t = ds.indexes["time"].as_unit("ns").asi8 // {"s": 10 ** 9, "ms": 10 ** 6, "us": 10 ** 3,
                                                  "ns": 1}[unit]
    step = int(np.min(np.diff(t))) if len(t) > 1 else 4
    px = np.stack([ds[v].transpose("time", "asset").values
                   for v in ("open", "high", "low", "close")], axis=-1)   # (time, asset, 4)
    vol = (ds["volume"].transpose("time", "asset").values if "volume" in ds
           else np.zeros(px.shape[:2]))
    ti, ai, k = np.nonzero(np.isfinite(px))
    ts = t[ti] + k * (step // 4)
    order = np.lexsort((ai, ts))
    mid, size = px[ti, ai, k][order], (vol[ti, ai] / 8)[order]
    return {"symbol_id": ai[order].astype(np.int64), "bid_price": mid - spread / 2,
            "ask_price": mid + spread / 2, "bid_size": size, "ask_size": size,
            "timestamp": ts[order].astype(np.int64)}
