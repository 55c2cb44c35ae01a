"""Ticks -> bars (quantlab.engine.bars.BarAggregator) equal a pandas resample of the same ticks."""
import numpy as np
import pandas as pd
import pytest

from quantlab.engine.bars import BarAggregator


def _ticks(n=20_000, n_sym=3, seed=1):
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, 3_600 * 10 ** 6, n))          # one hour, in µs
    sym = rng.integers(0, n_sym, n)
    mid = 100 * np.exp(np.cumsum(rng.normal(0, 1e-4, n)))
    spread = rng.uniform(0.01, 0.05, n)
    return {"symbol_id": sym, "bid_price": mid - spread / 2, "ask_price": mid + spread / 2,
            "bid_size": rng.integers(1, 500, n).astype(float),
            "ask_size": rng.integers(1, 500, n).astype(float), "timestamp": ts}


def _pandas_bars(cols, names, freq):
    df = pd.DataFrame({"asset": np.asarray(names)[cols["symbol_id"]],
                       "mid": (cols["bid_price"] + cols["ask_price"]) / 2,
                       "volume": cols["bid_size"] + cols["ask_size"]},
                      index=pd.to_datetime(cols["timestamp"], unit="us"))
    g = df.groupby("asset").resample(freq)
    out = g["mid"].ohlc().join(g["volume"].sum(min_count=1))
    return out.dropna(subset=["close"])


@pytest.mark.parametrize("freq, batch", [("1min", 997), ("5s", 20_000), ("15min", 1)])
def test_bars_equal_a_pandas_resample_of_the_same_ticks(freq, batch):
    cols = _ticks() if batch != 1 else {k: v[:3000] for k, v in _ticks().items()}
    names = ["AAA", "BBB", "CCC"]
    agg = BarAggregator(freq, names, unit="us")
    n = len(cols["timestamp"])
    bars = []
    for i in range(0, n, batch):
        bars += agg.add({k: v[i:i + batch] for k, v in cols.items()})
    bars += agg.flush()
    got = pd.DataFrame({
        "asset": np.tile(names, len(bars)),
        "time": np.repeat([b.time.values for b in bars], len(names)),
        **{k: np.concatenate([b[k].values for b in bars])
           for k in ("open", "high", "low", "close", "volume")}})
    got = got.dropna(subset=["close"]).set_index(["asset", "time"]).sort_index()
    want = _pandas_bars(cols, names, freq).sort_index()
    want.index = want.index.set_names(["asset", "time"])
    assert len(got) == len(want) > 0
    for k in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(got[k].to_numpy(), want[k].to_numpy(), err_msg=k)
    times = [b.time.values for b in bars]
    assert all(a < b for a, b in zip(times, times[1:]))     # in order, each bar once


def test_invalid_and_late_ticks_are_skipped_and_counted():
    agg = BarAggregator("1min", ["A"], unit="s")
    good = {"symbol_id": [0, 0], "bid_price": [10.0, 10.2], "ask_price": [10.1, 10.3],
            "bid_size": [1.0, 1.0], "ask_size": [1.0, 1.0], "timestamp": [0, 61]}
    assert len(agg.add(good)) == 1                  # the tick at 61 s closes bar 0
    bad = {"symbol_id": [0, 0, 7, 0], "bid_price": [10.5, np.nan, 10.0, 10.0],
           "ask_price": [10.4, 10.0, 10.1, 10.1], "bid_size": [1.0] * 4,
           "ask_size": [1.0] * 4, "timestamp": [62, 63, 64, 5]}
    assert agg.add(bad) == []
    assert (agg.skipped, agg.late) == (3, 1)        # crossed, NaN, unknown; one late
    (bar,) = agg.flush()
    assert float(bar["close"].values[0]) == pytest.approx(10.25)


def test_a_frequency_that_is_not_a_whole_number_of_units_is_refused():
    with pytest.raises(ValueError, match="whole number"):
        BarAggregator("500ms", ["A"], unit="s")
    for freq in ("bogus", None, "0min", "-1D"):     # None and 0 were "not a whole number"
        with pytest.raises(ValueError, match="fixed pandas frequency"):
            BarAggregator(freq, ["A"])


def _bars_frame(bars, names):
    got = pd.DataFrame({
        "asset": np.tile(names, len(bars)),
        "time": np.repeat([b.time.values for b in bars], len(names)),
        **{k: np.concatenate([b[k].values for b in bars])
           for k in ("open", "high", "low", "close", "volume")}})
    return got.dropna(subset=["close"]).set_index(["asset", "time"]).sort_index()


def test_ticks_out_of_order_within_a_bar_are_taken_in_time_order_as_resample_does():
    cols = {k: v[:5000] for k, v in _ticks().items()}
    rng = np.random.default_rng(3)
    order = np.argsort(cols["timestamp"] + rng.integers(0, 20 * 10 ** 6, 5000), kind="stable")
    cols = {k: v[order] for k, v in cols.items()}         # arrival order: up to 20 s late
    names = ["AAA", "BBB", "CCC"]
    agg = BarAggregator("1min", names, unit="us")
    bars = agg.add(cols) + agg.flush()                    # one batch: no tick is late
    got = _bars_frame(bars, names)
    want = _pandas_bars(cols, names, "1min").sort_index()
    want.index = want.index.set_names(["asset", "time"])
    assert len(got) == len(want)
    for k in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(got[k].to_numpy(), want[k].to_numpy(), err_msg=k)


def test_a_far_future_timestamp_is_skipped_not_closing_the_open_bars():
    cols = _ticks(4000)
    names = ["AAA", "BBB", "CCC"]
    clean = BarAggregator("1min", names, unit="us")
    want = clean.add(cols) + clean.flush()
    i = 1500
    bad = {k: np.insert(v, [i, 3000], v[[i, 3000]]) for k, v in cols.items()}
    bad["timestamp"][i] += 40 * 86_400 * 10 ** 6           # 40 days ahead: corrupt
    bad["timestamp"][3001] = 2 ** 62                        # beyond pandas' datetimes
    agg = BarAggregator("1min", names, unit="us")
    got = agg.add({k: v[:2000] for k, v in bad.items()})
    got += agg.add({k: v[2000:] for k, v in bad.items()}) + agg.flush()
    assert (agg.skipped, agg.late) == (2, 0)
    assert [b.time.values for b in got] == [b.time.values for b in want]
    for g, w in zip(got, want):
        assert g.identical(w)
    off = BarAggregator("1min", names, unit="us", max_skew_s=float("inf"))
    off.add({k: v[:2000] for k, v in bad.items()})        # the stamp closes every bar:
    off.add({k: v[2000:] for k, v in bad.items()})
    assert off.late > 0                                   # later ticks of them are lost


def test_symbol_ids_and_timestamps_with_a_fraction_are_skipped_never_truncated():
    agg = BarAggregator("1min", ["A", "B"], unit="s")
    tick = {"symbol_id": [1.5, np.nan, 1.0, 0], "bid_price": [10.0, 11.0, 12.0, 13.0],
            "ask_price": [10.2, 11.2, 12.2, 13.2], "bid_size": [1] * 4, "ask_size": [1] * 4,
            "timestamp": [5, 5, 5, 6.5]}
    (bar,) = agg.add(tick) + agg.flush()
    assert agg.skipped == 3
    assert np.isnan(bar["close"].values[0]) and bar["close"].values[1] == pytest.approx(12.1)
    with pytest.raises(ValueError, match="different lengths"):
        agg.add(dict(tick, timestamp=[5]))


@pytest.mark.parametrize("symbols, exc, match", [
    ({1.5: "A"}, ValueError, "symbol_id must be an integer, got 1.5"),
    ({"x": "A"}, TypeError, "symbol_id must be an integer, got 'x'"),
    ({True: "A"}, TypeError, "symbol_id must be an integer, got True"),
    (["A", None], ValueError, "symbol_id 1 has no asset name"),
    ([], ValueError, "symbols is empty"),
    ("AB", TypeError, "symbols must be a list of asset names"),
    (None, TypeError, "symbols must be a list of asset names"),
])
def test_symbols_that_would_map_ticks_to_the_wrong_asset_are_refused(symbols, exc, match):
    # {1.5: 'A'} took symbol 1's ticks as A's, 'AB' made assets 'A' and 'B'
    with pytest.raises(exc, match=match):
        BarAggregator("1min", symbols)
    agg = BarAggregator("1min", {"3": "A", np.int64(5): "B", 7.0: "C"})   # JSON keys too
    assert agg.symbols == {3: "A", 5: "B", 7: "C"}
