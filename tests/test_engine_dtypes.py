"""Issue #32: tick columns of natural dtypes (int32/int16 ids, float or int32 sizes, float32
prices, as pandas and Parquet frames hold them) are converted chunk by chunk inside the
kernel, and give bit for bit what the int64 columns of the same values give."""
import tracemalloc

import numpy as np
import pandas as pd
import pytest

import quantlab as ql
from quantlab.engine.core import _column
from quantlab.engine.reference import to_int, to_ticks

E = ql.engine
INTS = ("symbol_id", "bid_size", "ask_size", "timestamp")
CONFIG = {"signal": {"slow_span": 16, "fast_span": 4, "min_confidence": 0.2,
                     "imbalance_threshold": 0.2}}


def _state(eng, res):
    c = eng.core
    return {"orders": res.order_array.tolist(), "ticks": res.ticks,
            "signals": res.signal_count, "rejected": res.rejected_ticks,
            "tick_rejects": list(c.tick_rejects), "order_rejects": list(c.order_rejects),
            "pos": list(c.pos), "cash": c.cash, "mtm2": c.mtm2, "gross2": c.gross2,
            "stale": c.stale, "killed": c.killed}


def _run(cols, **kw):
    eng = E.TickEngine(CONFIG)
    return _state(eng, eng.process_ticks(cols, **kw))


def _ticks(signed=True, n=6000):
    """Synthetic ticks whose values fit every dtype tried below (ids < 100, sizes < 2^15);
    with ``signed`` some bad ones: NaN and negative prices, negative sizes and ids, crossed
    quotes, out-of-order timestamps."""
    cols = ql.testing.synthetic_ticks(n, n_symbols=40, seed=7, bad_fraction=0.1 if signed
                                      else 0.0)
    sym = cols["symbol_id"]
    sym[sym >= 40] = -3      # an unknown id every signed dtype can hold
    return cols


# (symbol_id, prices, sizes, timestamp) dtypes
NATURAL = [("int32", "float64", "float64", "int64"),     # pandas / Parquet's usual
           ("int16", "float32", "int32", "int64"),
           ("int8", "float32", "float32", "float64"),    # µs since 2023 fit a double
           ("float64", "float64", "int16", "int64"),
           ("int32", "float64", "bool", "int64")]
UNSIGNED = [("uint8", "float32", "uint16", "uint64"), ("uint16", "float64", "uint32", "int64"),
            ("uint32", "float64", "uint64", "uint64")]


def _as(cols, ids, prices, sizes, ts):
    out = {"symbol_id": cols["symbol_id"].astype(ids),
           "bid_price": cols["bid_price"].astype(prices),
           "ask_price": cols["ask_price"].astype(prices),
           "bid_size": cols["bid_size"].astype(sizes), "ask_size": cols["ask_size"].astype(sizes),
           "timestamp": cols["timestamp"].astype(ts)}
    if sizes == "bool":
        out["bid_size"] = cols["bid_size"] > 500
        out["ask_size"] = cols["ask_size"] > 500
    return out


def _int64_twin(cols):
    """The same values as the int64 path takes them: int64 ids, sizes and timestamps,
    float64 prices (a float32 price is its exact double)."""
    return {f: np.asarray(v, dtype=np.float64) if f.endswith("price")
            else np.asarray(v).astype(np.int64) for f, v in cols.items()}


@pytest.mark.parametrize("dtypes", NATURAL + UNSIGNED, ids="-".join)
@pytest.mark.parametrize("check_risk", [True, False])
def test_natural_dtype_columns_give_the_int64_paths_results_bit_for_bit(dtypes, check_risk):
    cols = _as(_ticks(signed=dtypes in NATURAL), *dtypes)
    want = _run(_int64_twin(cols), check_risk=check_risk)
    assert _run(cols, check_risk=check_risk) == want
    assert want["orders"][0] and want["rejected"] > (0 if dtypes in NATURAL else -1)
    # and as a DataFrame (pandas keeps the dtypes), and in chunks of an odd size
    frame = pd.DataFrame(cols)
    assert _run(frame, check_risk=check_risk) == want
    eng = E.TickEngine(CONFIG)
    parts = []
    for i in range(0, len(frame), 777):     # tick indices count from each batch's start
        o = eng.process_ticks({f: v[i:i + 777] for f, v in cols.items()}, check_risk)
        parts.append(o.order_array + np.array([[i], [0], [0], [0]]))
    assert np.concatenate(parts, axis=1).tolist() == want["orders"]


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int32", "int64", "uint16", "uint32",
                                   "uint64", "float32", "float64", ">i4", ">f8", "float16"])
def test_prices_in_ticks_of_any_dtype_match_int64_ticks(dtype):
    cols = _ticks(signed=False)
    cols = dict(cols, bid_price=np.rint(cols["bid_price"] * 100) - 9900,
                ask_price=np.rint(cols["ask_price"] * 100) - 9900, prices_in_ticks=True)
    assert 0 < cols["bid_price"].min() and cols["ask_price"].max() < 256   # fit a uint8
    want = _run(dict(cols, bid_price=cols["bid_price"].astype(np.int64),
                     ask_price=cols["ask_price"].astype(np.int64)))
    if dtype == "float16":    # 2048+ ticks are not all exact in float16: compare as read
        cols = dict(cols, bid_price=cols["bid_price"] % 1000 + 10,
                    ask_price=cols["bid_price"] % 1000 + 13)
        want = _run(dict(cols, bid_price=cols["bid_price"].astype(np.int64),
                         ask_price=cols["ask_price"].astype(np.int64)))
    got = _run(dict(cols, bid_price=cols["bid_price"].astype(dtype),
                    ask_price=cols["ask_price"].astype(dtype)))
    assert got == want and want["orders"][0]


def _old_process_ticks(cols, in_ticks=False):
    """What process_ticks did before issue #32: whole-column conversions to int64, then
    the int64 kernel (the semantics the chunked conversion must keep)."""
    eng = E.TickEngine(CONFIG)
    arr = []
    for f in E.FIELDS:
        v = np.asarray(cols[f])
        if f.endswith("price") and not in_ticks:
            arr.append(_column(v, to_ticks, eng.tick_size))
        elif v.dtype == np.int64:
            arr.append(v)
        else:
            arr.append(_column(v, to_int, integral=f in ("symbol_id", "timestamp")))
    orders = eng.core.process(*arr)
    return eng, orders


@pytest.mark.parametrize("ftype", ["float64", "float32"])
def test_nan_inf_fractional_and_huge_values_are_rejected_or_rounded_exactly_as_before(ftype):
    """Sizes are rounded half to even (2.5 -> 2); ids and timestamps with a fraction, NaN,
    inf, non-positive and out-of-range values are rejected under the same reasons."""
    n = 64
    base = _ticks(signed=False, n=n)
    weird = np.array([np.nan, np.inf, -np.inf, 1.5, 2.5, -0.0, 0.5, 3.0, 1e30, -1e30,
                      2.0 ** 62, 2.0 ** 61, 7.25, 1e-300, 11.0, 40.0])
    cols = {f: np.asarray(v, dtype=np.float64).copy() for f, v in base.items()}
    for j, f in enumerate(E.FIELDS):
        k = slice(4 * j, 4 * j + 16)
        v = weird if f in INTS else weird + 0.001 * (f == "ask_price")
        cols[f][k] = v if f != "timestamp" else np.where(np.isfinite(v) & (np.abs(v) < 1e20),
                                                          cols[f][k] + v, v)
    cols = {f: v.astype(ftype) if f != "timestamp" else v for f, v in cols.items()}
    old, orders = _old_process_ticks(cols)
    eng = E.TickEngine(CONFIG)
    res = eng.process_ticks(cols)
    assert res.order_array.tolist() == orders.tolist()
    assert list(eng.core.tick_rejects) == list(old.core.tick_rejects)
    assert sum(old.core.tick_rejects) > 10     # the weird values were rejected, not parsed
    assert list(eng.core.pos) == list(old.core.pos) and eng.core.cash == old.core.cash


def test_uint64_ids_and_timestamps_beyond_2_53_are_exact_not_rounded_through_float64():
    """uint64 columns went through float64: 2^53 + 3 became 2^53 + 4 and 2^53 + 1 became
    2^53, a timestamp silently moved; taken exactly now, as int64 columns are (the second
    tick is earlier than the first: out of order)."""
    ts = np.array([2 ** 53 + 3, 2 ** 53 + 1], dtype=np.uint64)   # the second is earlier
    cols = {"symbol_id": np.zeros(2, np.uint64), "bid_price": np.array([100.0, 100.0]),
            "ask_price": np.array([100.02, 100.02]), "bid_size": np.array([10, 10], np.uint64),
            "ask_size": np.array([10, 10], np.uint64), "timestamp": ts}
    eng = E.TickEngine()
    eng.process_ticks(cols)
    assert eng.get_performance_stats()["tick_rejects"]["out_of_order"] == 1
    assert list(eng.core.last_ts)[0] == 2 ** 53 + 3
    huge = dict(cols, symbol_id=np.array([2 ** 64 - 1, 0], np.uint64))   # wraps to -1
    eng = E.TickEngine()
    eng.process_ticks(huge)
    assert eng.get_performance_stats()["tick_rejects"]["bad_symbol"] == 1


@pytest.mark.parametrize("dtype", ["uint64", "int64"])
def test_replay_of_uint64_timestamps_beyond_2_53_matches_the_int64_columns(dtype):
    """replay converted non-int64 timestamps through float64 (its far-off check needs
    int64 ones): uint64 stamps past 2^53 moved by a few µs, reordering ticks."""
    cols = _ticks(signed=False, n=3000)
    cols["timestamp"] = cols["timestamp"] - cols["timestamp"][0] + 2 ** 53 + 1
    want = E.TickEngine(CONFIG)
    want_res = want.process_ticks(cols)
    eng = E.TickEngine(CONFIG)
    res = eng.replay(dict(cols, timestamp=cols["timestamp"].astype(dtype)), chunk=1000)
    assert res.order_array.tolist() == want_res.order_array.tolist()
    assert list(eng.core.last_ts) == list(want.core.last_ts)


def test_natural_dtype_columns_are_converted_in_chunks_not_whole_columns():
    """The old path made a float64 and an int64 copy of every non-int64 column before
    the kernel ran (issue #32: most of the time of int32 ids and float sizes); now only
    the orders' (4, n) output is allocated per batch."""
    n = 100_000
    cols = _as(_ticks(signed=False, n=n), "int32", "float32", "float64", "int64")
    eng = E.TickEngine()
    eng.process_ticks({f: v[:10] for f, v in cols.items()})   # warm up (imports, caches)
    tracemalloc.start()
    try:
        eng.process_ticks(cols)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 8 * n + 2 ** 20, peak      # the output, not 4+ columns of 8n


def test_read_only_strided_and_misaligned_columns_give_the_same_results():
    """Columns as buffers hand them over: read-only (pyarrow's zero-copy arrays), strided
    (a column of a 2-D array), misaligned (a view at an odd byte offset)."""
    cols = _as(_ticks(), "int32", "float64", "float32", "int64")
    want = _run(_int64_twin(cols))
    ro = {f: v.copy() for f, v in cols.items()}
    for v in ro.values():
        v.flags.writeable = False
    wide = np.stack([cols["bid_price"], cols["ask_price"]], axis=1)     # strided columns
    raw = np.zeros(len(cols["symbol_id"]) * 4 + 1, np.uint8)
    odd = raw[1:].view(np.int32)                                       # misaligned
    odd[:] = cols["symbol_id"]
    assert not odd.flags.aligned
    for variant in (ro, dict(cols, bid_price=wide[:, 0], ask_price=wide[:, 1]),
                    dict(cols, symbol_id=odd)):
        assert _run(variant) == want


def test_process_columns_refuses_what_it_cannot_convert():
    core = E.TickEngine().core
    ok = [np.zeros(3, np.int64)] * 6
    args = ((1.0,) * 6, (False,) * 6, (True,) * 6)
    with pytest.raises(TypeError, match="dtype complex128"):
        core.process_columns(ok[:5] + [np.zeros(3, complex)], *args)
    with pytest.raises(ValueError, match="different lengths"):
        core.process_columns(ok[:5] + [np.zeros(4, np.int64)], *args)
    with pytest.raises(ValueError, match="contiguous"):
        core.process_columns(ok[:5] + [np.zeros(6, np.int64)[::2]], *args)
    assert core.process_columns(ok, *args).shape == (4, 0) and core.ticks == 3


@pytest.mark.parametrize("np_int", [np.int64, np.uint64])
def test_numpy_integer_scalars_in_tick_dicts_are_exact_like_python_ints(np_int):
    """Dicts built from NumPy arrays hold np.int64 scalars: they went through float(), so
    an ns timestamp (~1.7e18 > 2^53) lost its last bits in both the kernel's parser and
    the oracle's (ticks 1 ns apart became equal or out of order)."""
    cols = _ticks(signed=False, n=400)
    base = 1_700_000_000_000_000_001
    cols["timestamp"] = base + np.cumsum(np.ones(400, np.int64) * 3)
    plain = ql.testing.to_dicts(cols)             # Python ints
    scalars = [{k: (np_int(v) if isinstance(v, int) else v) for k, v in t.items()}
               for t in plain]
    config = dict(CONFIG, engine={"timestamp_unit": "ns"})
    want = E.TickEngine(config)
    want_res = want.process_market_data(plain)
    eng, ref = E.TickEngine(config), E.reference_engine(config)
    res = eng.process_market_data(scalars)
    orders = ref.process_market_data(scalars)
    assert res.order_array.tolist() == want_res.order_array.tolist()
    assert [list(o) for o in orders] == want_res.order_array.T.tolist()
    assert list(eng.core.last_ts) == list(want.core.last_ts) == ref.last_ts
    assert max(ref.last_ts) == int(cols["timestamp"].max())    # to the nanosecond


@pytest.mark.parametrize("flag", ["no", "False", 1, np.array([True]), None])
def test_prices_in_ticks_that_is_not_a_bool_is_refused_naming_it(flag):
    cols = dict(_ticks(signed=False), prices_in_ticks=flag)
    for run in (lambda e: e.process_ticks(cols), lambda e: e.replay(cols)):
        eng = ql.engine.TickEngine()
        with pytest.raises(TypeError, match="prices_in_ticks must be True or False"):
            run(eng)
        assert eng.ticks == 0
    assert _run(dict(cols, prices_in_ticks=np.bool_(False))) == _run(_ticks(signed=False))
