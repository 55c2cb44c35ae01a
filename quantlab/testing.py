"""Checks offered to users for their own strategies, and the tick engine's synthetic
data (``synthetic_ticks``, ``to_dicts``, ``seed_batch``: tests, benchmarks, notebooks)."""
from __future__ import annotations

import numpy as np

from quantlab import _validate as _v

__all__ = ["assert_no_lookahead", "synthetic_ticks", "to_dicts", "seed_batch",
           "synthetic_minute_panel"]


def assert_no_lookahead(strategy, ds, n_cuts: int = 5, min_history: int | None = None) -> None:
    """Assert that the signal at t uses data up to t only: computed on
    ``ds.isel(time=slice(0, t + 1))`` (with that truncated data's ``default_inputs``) it
    equals the signal at t computed on all of ``ds``, at ``n_cuts`` times spread over the
    second half of the data. Raises AssertionError naming the first differing time."""
    full = strategy.signal(ds, **strategy.default_inputs(ds))
    n = ds.sizes["time"]
    start = n // 2 if min_history is None else min_history
    cuts = np.unique(np.linspace(start, n - 2, n_cuts).astype(int))
    for t in cuts:
        part = ds.isel(time=slice(0, t + 1))
        got = strategy.signal(part, **strategy.default_inputs(part)).isel(time=-1)
        want = full.isel(time=t)
        if not np.allclose(got.values, want.values, equal_nan=True, rtol=1e-9, atol=1e-12):
            raise AssertionError(
                f"{strategy!r} looks ahead: its signal at {str(ds.time.values[t])[:10]} "
                f"differs when later data is removed ({got.values} vs {want.values})")


# ---- tick engine data ----------------------------------------------------------------

def synthetic_ticks(n=10_000, n_symbols=50, seed=0, bad_fraction=0.0, start_price=100.0,
                    tick_size=0.01) -> dict:
    """Random-walk quotes with varying book imbalance (columns; prices in currency,
    timestamps in µs). ``bad_fraction`` of ticks are corrupted (crossed quotes,
    negative or NaN prices, negative sizes, unknown symbols, out-of-order timestamps)."""
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
    """Columns -> the seed's list of dicts (prices as decimal strings if asked)."""
    n = len(cols["timestamp"])
    fmt = (lambda x: f"{x:.2f}") if as_strings else float
    return [{"symbol_id": int(cols["symbol_id"][i]), "bid_price": fmt(cols["bid_price"][i]),
             "ask_price": fmt(cols["ask_price"][i]), "bid_size": int(cols["bid_size"][i]),
             "ask_size": int(cols["ask_size"][i]), "timestamp": int(cols["timestamp"][i]),
             "venue_id": 1, "flags": 0} for i in range(n)]


def seed_batch(n_symbols=100, n_ticks=1000) -> list:
    """The seed's sample batch shape: n_symbols x n_ticks dicts, prices as strings,
    constant prices per symbol (so, rightly, no signals)."""
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
    chunking."""
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
    spacing) are the bars of ``ds`` again (exactly, with ``spread=0``)."""
    t = ds.indexes["time"].asi8 // {"s": 10 ** 9, "ms": 10 ** 6, "us": 10 ** 3, "ns": 1}[unit]
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
