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


# ---- the tick engine's clock-skew rule after a quiet spell (the "faults" probe)

def _quote(sym, ts, bid="100.00"):
    return {"symbol_id": sym, "bid_price": bid, "ask_price": "100.02", "bid_size": 10,
            "ask_size": 12, "timestamp": ts}


def _skew_feed(gap_s=5.0, n_after=1500):
    """Ticks 1 ms apart, a quiet spell of ``gap_s``, ticks 1 ms apart again (µs stamps)."""
    t0 = 10 * 86_400 * 10 ** 6
    before = [_quote(i % 3, t0 + i * 1000) for i in range(100)]
    start = before[-1]["timestamp"] + int(gap_s * 10 ** 6)
    return before + [_quote(i % 3, start + i * 1000) for i in range(n_after)]


def test_a_quiet_spell_longer_than_the_skew_limit_does_not_stop_the_feed():
    # max_clock_skew_s=1: the newest accepted stamp only moved on accepted ticks, so a
    # 5 s quiet spell rejected all 1,500 later ticks as clock_skew, for ever. Now the
    # third tick in a row past the limit, each within it of the one before, moves the
    # clock on; the engine, its pure-Python oracle and the bar aggregator agree.
    from quantlab import engine as E
    from quantlab._kernels import ticks
    from quantlab.engine import BarAggregator
    cfg = {"risk": {"max_clock_skew_s": 1.0}}
    eng, ref = E.TickEngine(cfg), E.reference_engine(cfg)
    feed = _skew_feed()
    eng.process_market_data(feed)
    ref.process_market_data(feed)
    rejects = eng.get_performance_stats()["tick_rejects"]
    assert ticks.SKEW_CONFIRM == 3
    assert rejects["clock_skew"] == 2                   # the first two after the spell
    assert list(eng.core.tick_rejects) == ref.tick_rejects
    assert int(np.asarray(eng.core.n_ticks).sum()) == len(feed) - 2
    assert list(eng.core.pos) == ref.pos and eng.core.cash == ref.cash
    agg = BarAggregator("1s", ["A", "B", "C"], unit="us", max_skew_s=1.0)
    cols = {k: np.array([float(q[k]) for q in feed]) for k in feed[0]}
    bars = agg.add({k: v[:700] for k, v in cols.items()})
    bars += agg.add({k: v[700:] for k, v in cols.items()}) + agg.flush()
    assert agg.skipped == 2
    assert sum(float(b["volume"].sum()) for b in bars) == 22.0 * (len(feed) - 2)


@pytest.mark.parametrize("stamps, rejected", [
    ([10 ** 13], 1),                         # one corrupt far-future stamp
    ([10 ** 13, 10 ** 13 + 5], 2),           # two in a row that agree: still rejected
    ([10 ** 13, 2 * 10 ** 13, 3 * 10 ** 13, 4 * 10 ** 13], 4),   # far apart: none agree
])
def test_corrupt_far_future_stamps_stay_rejected(stamps, rejected):
    from quantlab import engine as E
    from quantlab.engine import BarAggregator
    t0 = 10 * 86_400 * 10 ** 6
    feed = ([_quote(0, t0 + i * 1000) for i in range(50)] + [_quote(1, s) for s in stamps]
            + [_quote(i % 3, t0 + 50_000 + i * 1000) for i in range(50)])
    cfg = {"risk": {"max_clock_skew_s": 1.0}}
    eng, ref = E.TickEngine(cfg), E.reference_engine(cfg)
    eng.process_market_data(feed)
    ref.process_market_data(feed)
    assert eng.get_performance_stats()["tick_rejects"]["clock_skew"] == rejected
    assert list(eng.core.tick_rejects) == ref.tick_rejects
    assert int(np.asarray(eng.core.n_ticks).sum()) == 100   # every clean tick taken
    agg = BarAggregator("1s", ["A", "B", "C"], unit="us", max_skew_s=1.0)
    cols = {k: np.array([float(q[k]) for q in feed]) for k in feed[0]}
    agg.add(cols)
    agg.flush()
    assert agg.skipped == rejected


def test_an_ensemble_refuses_an_unknown_backtest_option_when_made():
    # Ensemble(["momentum"], feez=0.001) was accepted and failed only in a backtest,
    # after every stream's strategy had run (the faults probe)
    with pytest.raises(TypeError, match=r"Ensemble: unknown option\(s\) \['feez'\]; the "
                                        r"options of ql.backtest are .*\bfees\b"):
        ql.ensemble.Ensemble(["spc", "volatility_regime"], feez=0.001)
    ens = ql.ensemble.Ensemble(["spc", "volatility_regime"], fees=0.001, slippage=0.0005)
    assert ens.backtest_kw == {"fees": 0.001, "slippage": 0.0005}


@pytest.mark.parametrize("value", [np.int64(1234), np.float64(5.5), 1234, "2000-06-08",
                                   np.array(1234)])
def test_a_bar_time_that_is_a_number_or_text_is_refused_also_as_a_scalar(value):
    # a NumPy scalar number (an integer time index's bar) was nanoseconds after 1970 to
    # pandas, and passed: only 0-d arrays were refused, as their docstring says of numbers
    from quantlab.errors import DataError
    from quantlab.live import _bar_time
    with pytest.raises(DataError, match=r"a bar's time must be a datetime64 date, got "):
        _bar_time(value)
    assert _bar_time(np.datetime64("2024-01-02")) == np.datetime64("2024-01-02", "ns")
    assert np.isnat(_bar_time(np.datetime64("NaT", "ns")))
