"""Session 52 (lead): fixes found reviewing session 51's change, and this session's own."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab.backtesting import result

from quantlab import _progress


def test_progress_bar_takes_a_numpy_count_as_a_count():
    # a count computed with NumPy (np.int64) was taken for an iterable: TypeError
    with _progress.bar(np.int64(3), "demo", "step") as b:
        b.update(2)
    assert (b.total, b.n) == (3, 2)
    with _progress.bar(range(4), "demo", "step") as b:
        assert list(b) == [0, 1, 2, 3]
    assert b.total == 4



def _minute_panel(n=600, m=4, seed=0):
    rng = np.random.default_rng(seed)
    t = pd.date_range("2024-01-01", periods=n, freq="min")
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, (n, m)), 0))
    ds = xr.Dataset({"close": (("time", "asset"), c)},
                    coords={"time": t, "asset": [f"A{i}" for i in range(m)]})
    return ds, ds["close"].coords


def _compressed(path, key):
    """Per block of the results store at ``path``: whether ``key`` has a codec."""
    import zarr
    g = zarr.open_group(path, path=key, mode="r")
    return [len(g[b].compressors) > 0 for b in sorted(g.array_keys())]


@pytest.mark.parametrize("group", [False, True])
def test_streamed_results_are_compressed_where_their_first_chunk_compresses(
        tmp_path, group, monkeypatch):
    # A streamed run wrote equity and cash uncompressed, always: writing a (8192, 200)
    # chunk's 13 MB took 12-13 ms, LZ4 of a cash column constant between orders 2.3 ms
    # for 0.007 of its bytes. Each array's first chunk now chooses: constant stretches
    # (a signal flat 3/4 of the time) compressed, a random walk (invested every bar,
    # rebalanced) as its bytes; the values are the in-memory run's either way.
    ds, coords = _minute_panel()
    n, m = ds.sizes["time"], ds.sizes["asset"]
    flat = xr.DataArray(np.where(np.arange(n)[:, None] % 200 < 50, 0.5, 0.0) * np.ones(m),
                        dims=("time", "asset"), coords=coords)
    busy = xr.DataArray(np.full((n, m), 0.5), dims=("time", "asset"), coords=coords)
    kw = dict(group=group, fees=0.001, periods=525_600)
    for name, sig, rebalance, packed in (("flat", flat, "on_change", True),
                                         ("busy", busy, "daily", False)):
        (tmp_path / name).mkdir()
        monkeypatch.setattr(result.tempfile, "tempdir", str(tmp_path / name))
        res = ql.backtest(ds.chunk(time=100, asset=2), sig.chunk(time=100, asset=2),
                          rebalance=rebalance, **kw)
        path, = (tmp_path / name).glob("ql-backtest-*")
        mem = ql.backtest(ds, sig, rebalance=rebalance, **kw)
        for key in ("equity", "cash", "positions"):
            np.testing.assert_array_equal(getattr(res, key).values, getattr(mem, key).values)
        got = {k: _compressed(path, k) for k in ("equity", "cash", "positions")}
        if packed:   # held between orders
            assert all(got["cash"]) and all(got["positions"]), got
        else:        # a random walk: LZ4 would keep most of it
            assert not any(got["equity"]), got


def test_compressible_is_the_ratio_of_the_store_codec():
    from quantlab import store
    rng = np.random.default_rng(0)
    walk = 100 + rng.normal(size=(4096, 8)).cumsum(0)
    assert not store.compressible(walk)            # LZ4 keeps most of a random walk
    steps = np.repeat(walk[::256], 256, axis=0)    # constant for 256 rows at a time
    assert store.compressible(steps)
    assert not store.compressible(np.empty((0, 3)))
