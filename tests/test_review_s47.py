"""Session 47 review of the streamed backtest: the margin check left off per time chunk
(and per bar in a deployment) where no account can breach it, equity/cash stored without
codecs (store.row_writer's direct chunk writes), the orders of independent accounts over
several chains in the in-memory order, chains cut inside an asset chunk. Each streamed
(or stepped) run equals the in-memory ``ql.backtest`` of the same panel to 1e-12."""
import pickle

import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab import store as qstore
from quantlab.backtesting import dispatch
from quantlab.backtesting.dispatch import Stepper
from quantlab.backtesting.options import BacktestOptions

from test_outofcore import _assert_equal

zarr = pytest.importorskip("zarr")


def _bars(seed, n=40, m=3, short_from=None, vol=0.08, missing=0.1, drift=0.01):
    """OHLC bars (``drift`` up a bar, ``missing`` of them NaN) and targets in
    {0, .3, .7, 1, NaN}; from bar ``short_from`` on mostly NaN (holding), some short
    (-1, -0.5) or 0.5: long-only, unlevered chunks before it, margin calls after it."""
    rng = np.random.default_rng(seed)
    t = pd.bdate_range("2024-01-01", periods=n)
    c = 100 * np.exp(np.cumsum(rng.normal(drift, vol, (n, m)), 0))
    o = c * np.exp(rng.normal(0, 0.03, (n, m)))
    h = np.maximum(c, o) * (1 + rng.random((n, m)) * 0.03)
    lo = np.minimum(c, o) * (1 - rng.random((n, m)) * 0.03)
    gone = rng.random((n, m)) < missing
    for a in (c, o, h, lo):
        a[gone] = np.nan
    ds = xr.Dataset({k: (("time", "asset"), v) for k, v in
                     dict(open=o, high=h, low=lo, close=c).items()},
                    coords={"time": t, "asset": [f"A{i}" for i in range(m)]})
    s = rng.choice([0.0, 0.3, 0.7, 1.0, np.nan], size=(n, m))
    if short_from is not None:
        s[short_from:] = rng.choice([-1.0, -0.5, np.nan, 0.5], size=(n - short_from, m),
                                    p=[0.1, 0.05, 0.8, 0.05])
    return ds, xr.DataArray(s, coords=ds["close"].coords)


OPTIONS = {
    "plain": dict(fees=0.001),
    "slippage": dict(fees=0.01, slippage=0.02),
    "stops": dict(sl_stop=0.03, tp_stop=0.05, sl_trail=0.04, fees=0.001),
    "limits": dict(order_type="limit", limit_offset=0.01, limit_tif=3),
    "drawdown": dict(dd_limit=0.05, dd_cooldown=3),
    "next_open": dict(execution="next_open", fees=0.001),
    "daily": dict(rebalance="daily", fees=0.002),
    "borrow": dict(borrow_rate=0.5, fees=0.001),
    "high_margin": dict(maintenance_margin=0.9, execution="next_open", slippage=0.05),
}


def _margin_calls(res):
    return int((res.orders["reason"] == "margin_call").sum())


# ---- 1. the margin check off per time chunk / per bar


@pytest.mark.parametrize("name", sorted(OPTIONS))
@pytest.mark.parametrize("group", [False, True])
def test_shorts_only_in_later_chunks_stream_as_in_memory(name, group):
    # in memory the shorts turn the margin check on for every bar; streamed, the chunks
    # before them run without it (the kernel's fast path where nothing else needs the
    # slow one): no long-only, unlevered account can breach it there
    calls = 0
    for seed in range(2):
        ds, sig = _bars(seed, short_from=20, drift=0.05)
        kw = dict(OPTIONS[name], group=group, init_cash=100.0)
        ref = ql.backtest(ds, sig, **kw)
        calls += _margin_calls(ref)
        for k in (7, 20):
            _assert_equal(ql.backtest(ds.chunk(time=k), sig, **kw), ref)
    if name not in ("stops", "drawdown", "daily"):   # they exit the shorts before
        assert calls > 0        # the later chunks' margin check did something


def _stepped(ds, sig, kw):
    """(equity, positions) of a deployment's per-bar steps over ``ds``."""
    st = Stepper(BacktestOptions(**kw), list(ds.asset.values))
    state, eq, pos = st.new_state(), [], []
    for t in range(ds.sizes["time"]):
        rows = slice(max(0, t - 30), t + 1)
        base, impact = st.slippage({v: ds[v].values[rows] for v in ds.data_vars},
                                   ds.time.values[rows])
        e, _, p, _, _, _ = st.step(state, {v: ds[v].values[t] for v in ds.data_vars},
                             sig.values[t], base, impact)
        eq.append(e.copy())
        pos.append(p.copy())
    return np.array(eq), np.array(pos)


@pytest.mark.parametrize("name", sorted(OPTIONS))
@pytest.mark.parametrize("group", [False, True])
def test_a_deployment_with_shorts_from_a_later_bar_steps_as_in_memory(name, group):
    # Stepper decides the margin check bar by bar (the bar's targets, the state's shorts)
    for seed, short_from in ((0, 5), (1, 15), (2, 30)):
        ds, sig = _bars(seed, short_from=short_from)
        kw = dict(OPTIONS[name], group=group, init_cash=100.0)
        ref = ql.backtest(ds, sig, **kw)
        eq, pos = _stepped(ds, sig, kw)
        np.testing.assert_allclose(eq, ref.equity.values.reshape(len(eq), -1),
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(pos, ref.positions.values, rtol=1e-12, atol=1e-12)


def test_a_margin_next_to_1_is_checked_in_every_chunk_and_bar():
    # maintenance_margin=1 - 1e-16 (allowed: < 1, x max_leverage 1 < 1): a long-only,
    # unlevered account's cash rounding residue (-3e-15 after buying with all of it)
    # breaches it; in memory (shorts later: the check on) both accounts were
    # margin-called at bar 4, streamed the chunk before the shorts ran without the check
    ds, sig = _bars(16, n=20, m=2, short_from=15)
    kw = dict(group=True, init_cash=100.0, fees=0.001,
              maintenance_margin=float(np.nextafter(1.0, 0.0)))
    ref = ql.backtest(ds, sig, **kw)
    assert 4 in set(ref.orders["t"][ref.orders["reason"] == "margin_call"])
    _assert_equal(ql.backtest(ds.chunk(time=10), sig, **kw), ref)
    eq, pos = _stepped(ds, sig, kw)
    np.testing.assert_allclose(eq, ref.equity.values.reshape(len(eq), -1), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("kw", [
    dict(fees=0.3, slippage=0.2, dd_limit=0.02, dd_cooldown=1, rebalance="daily"),
    dict(fees=0.4, slippage=0.3, sl_stop=0.02, tp_stop=0.02, rebalance="daily"),
    dict(order_type="limit", limit_offset=0.05, limit_tif=5, fees=0.2),
    dict(execution="next_open", fees=0.3, slippage=0.3, sl_stop=0.05)])
@pytest.mark.parametrize("group", [False, True])
def test_a_short_on_the_last_bar_changes_no_earlier_bar(kw, group):
    # the premise of the margin check left off: a long-only, unlevered account (heavy
    # fees and slippage, 30% missing bars, forced exits) never breaches it, so turning it
    # on (a short anywhere, in memory) changes nothing before the short
    for seed in range(4):
        ds, sig = _bars(seed, n=30, m=4, missing=0.3)
        sig[:, 3] = np.nan
        shorted = sig.copy()
        shorted[-1, 3] = -1.0
        a = ql.backtest(ds, sig, group=group, init_cash=100.0, **kw)
        b = ql.backtest(ds, shorted, group=group, init_cash=100.0, **kw)
        np.testing.assert_allclose(a.equity.values[:-1], b.equity.values[:-1],
                                   rtol=1e-12, atol=1e-12)
        assert a.cash.values.min() > -1e-9


# ---- 2. row_writer: the files zarr writes


@pytest.mark.parametrize("codecs", ["none", "store", "store+crc"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, bool])
@pytest.mark.parametrize("layout", ["c", "fortran", "big_endian", "other_dtype", "strided"])
def test_row_writer_files_are_zarrs_own(tmp_path, codecs, dtype, layout):
    kw = {"none": dict(compressors=None), "store": dict(compressors=qstore.compressors()),
          "store+crc": dict(compressors=qstore.compressors(checksum=True))}[codecs]
    rng = np.random.default_rng(0)
    cases = (((10, 3), (4, 3), (0, 10)), ((10, 3), (4, 3), (4, 10)),   # edge chunk
             ((8, 3), (4, 3), (0, 8)), ((5, 2, 2), (2, 2, 2), (0, 5)), ((7,), (3,), (3, 7)))
    for shape, chunks, (t0, t1) in cases:
        mine = zarr.create_array(tmp_path / f"a{shape}{t0}", shape=shape, chunks=chunks,
                                 dtype=dtype, **kw)
        theirs = zarr.create_array(tmp_path / f"b{shape}{t0}", shape=shape, chunks=chunks,
                                   dtype=dtype, **kw)
        v = rng.random((t1 - t0, *shape[1:])) * 100
        v = v > 50 if dtype is bool else v.astype(dtype)
        if layout == "fortran":
            v = np.asfortranarray(v)
        elif layout == "big_endian" and v.dtype.itemsize > 1:
            v = v.astype(v.dtype.newbyteorder(">"))
        elif layout == "other_dtype":
            v = v.astype(np.float32 if dtype is np.float64 else np.float64)
        elif layout == "strided" and v.ndim > 1:
            wide = np.empty((*v.shape[:-1], 2 * v.shape[-1]), v.dtype)
            wide[..., ::2] = v
            v = wide[..., ::2]
        put = qstore.row_writer(mine)
        if put is None:
            assert codecs != "none"        # uncompressed arrays are always written direct
            continue
        put(t0, v)
        theirs[t0:t1] = v
        files = {}
        for name, a in (("mine", mine), ("theirs", theirs)):
            root = tmp_path / a.store_path.store.root
            files[name] = {p.relative_to(root): p.read_bytes() for p in root.rglob("*")
                           if p.is_file() and p.name != "zarr.json"}
        assert files["mine"] == files["theirs"], (shape, t0)
        np.testing.assert_array_equal(zarr.open_array(mine.store_path.store.root)[:],
                                      zarr.open_array(theirs.store_path.store.root)[:])


@pytest.mark.parametrize("group", [False, True])
def test_uncompressed_results_read_back_lazily_computed_and_pickled(group):
    ds, sig = _bars(3, n=50, m=5)
    ref = ql.backtest(ds, sig, group=group, fees=0.001)
    res = ql.backtest(ds.chunk(time=8, asset=2), sig, group=group, fees=0.001)
    for k in ("equity", "cash"):
        lazy = getattr(res, k)
        np.testing.assert_allclose(lazy[7:19].values, getattr(ref, k)[7:19].values,
                                   rtol=1e-12, atol=1e-12)
        copy = pickle.loads(pickle.dumps(lazy))
        np.testing.assert_allclose(copy.values, getattr(ref, k).values, rtol=1e-12,
                                   atol=1e-12)
    _assert_equal(res, ref)


# ---- 3./4. independent accounts over several chains, chains cut inside asset chunks


def _events(sig, seed):
    rng = np.random.default_rng(seed)
    return (xr.DataArray(rng.random(sig.shape) < 0.3, coords=sig.coords),
            xr.DataArray(rng.random(sig.shape) < 0.3, coords=sig.coords))


CHAIN_OPTIONS = {
    **OPTIONS,
    "fixed_fees": dict(fixed_fees=5.0, fees=0.001),
    "leverage": dict(max_leverage=2.0, fees=0.001, borrow_rate=0.1),
    "sweep": dict(fees=xr.DataArray([0.0, 0.01], dims="fz"), sl_stop=0.05),
}


@pytest.mark.parametrize("name", sorted(CHAIN_OPTIONS))
@pytest.mark.parametrize("m, asset_chunk", [(1, 1), (3, 2), (5, 4), (7, 7), (5, 3)])
def test_chains_of_independent_accounts_stream_as_in_memory(monkeypatch, name, m,
                                                            asset_chunk):
    # 4 workers: 2 chains writing per-bar results, cut inside an asset chunk where no
    # boundary is near; the orders (stops and signals on one bar, limit fills, drawdown
    # exits, margin calls, fixed-fee skips, swept params) in the in-memory order
    widths, real = set(), dispatch.simulate

    def spy(data, signal, *a, **k):
        widths.add(data.sizes["asset"])
        return real(data, signal, *a, **k)
    monkeypatch.setattr(dispatch, "simulate", spy)
    ds, sig = _bars(m, n=24, m=m, short_from=10)
    kw = dict(CHAIN_OPTIONS[name], group=False, init_cash=100.0)
    ref = ql.backtest(ds, sig, **kw)
    for signal in (sig, sig.chunk(time=4, asset=max(1, asset_chunk - 1))):
        with dask.config.set(scheduler="threads", num_workers=4):
            _assert_equal(ql.backtest(ds.chunk(time=5, asset=asset_chunk), signal, **kw),
                          ref)
    if m >= 5:
        assert len(widths - {m}) >= 1   # more than one chain ran
    if name in ("stops", "limits", "drawdown", "sweep"):
        return
    entries, exits = _events(sig, m)
    ev = dict(kw, size=0.5, accumulate=True) if name != "daily" else None
    if ev is not None:
        ref = ql.backtest(ds, entries=entries, exits=exits, **ev)
        with dask.config.set(scheduler="threads", num_workers=4):
            _assert_equal(ql.backtest(ds.chunk(time=5, asset=asset_chunk), entries=entries,
                                      exits=exits, **ev), ref)


@pytest.mark.parametrize("m, asset_chunk", [(1, 1), (3, 2), (7, 7)])
def test_metrics_only_chains_as_in_memory(m, asset_chunk):
    ds, sig = _bars(m, n=24, m=m, short_from=10)
    names = ("total_return", "sharpe_ratio", "n_orders", "fees_paid")
    kw = dict(group=False, init_cash=100.0, fees=0.001, sl_stop=0.05)
    ref = ql.backtest(ds, sig, metrics_only=names, **kw)
    with dask.config.set(scheduler="threads", num_workers=4):
        got = ql.backtest(ds.chunk(time=5, asset=asset_chunk), sig, metrics_only=names,
                          **kw)
    for k in names:
        np.testing.assert_allclose(np.asarray(got[k]), np.asarray(ref[k]), rtol=1e-10,
                                   atol=1e-12, err_msg=k)


def test_a_store_backed_panel_streams_over_chains_as_in_memory(tmp_path):
    ds, sig = _bars(7, n=60, m=6, short_from=30, missing=0.0)
    ds["volume"] = ds["close"] * 0 + 1e6
    src = tmp_path / "src"
    src.mkdir()
    for a in ds.asset.values:
        df = ds.sel(asset=a).to_dataframe()[["open", "high", "low", "close", "volume"]]
        df.index.name = "Date"
        df.to_csv(src / f"{a}.csv")
    path = ql.data.ingest(src, tmp_path / "st", chunk_time=25, chunk_asset=4)
    mem = ql.data.load_csv(src)
    for kw in (dict(fees=0.001, sl_stop=0.03), dict(order_type="limit", limit_offset=0.01,
                                                    limit_tif=3)):
        ref = ql.backtest(mem, sig, group=False, init_cash=100.0, **kw)
        with dask.config.set(scheduler="threads", num_workers=4):
            _assert_equal(ql.backtest(ql.data.open(path), sig, group=False, init_cash=100.0,
                                      **kw), ref)
