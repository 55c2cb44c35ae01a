"""Session 57 review: BacktestResult.sel/isel, risk report and the day's other changes
seen from outside."""
import numpy as np
import pytest

import quantlab as ql


@pytest.fixture(scope="module")
def ds():
    return ql.data.load().isel(time=slice(0, 300))


@pytest.fixture(scope="module")
def res(ds):
    sig = ql.strategies.get("volatility_regime", window=[10, 15]).signal(ds)
    return ql.backtest(ds, sig, fees=0.001)


@pytest.mark.parametrize("pick", [dict(window=[10, 10]), dict(window=[10, 11]),
                                  dict(asset=["IBM", "IBM"])])
def test_sel_refuses_an_account_picked_twice(res, pick):
    # the orders' col map kept one of the two columns: the other had no orders (its
    # trades and n_trades lost), then metrics() failed on "uniquely valued Index"
    with pytest.raises(ValueError, match=r"more than once"):
        res.sel(pick, method="nearest" if pick.get("window") == [10, 11] else None)
    with pytest.raises(ValueError, match=r"window picks 15 more than once"):
        res.isel(window=[1, -1])


def test_a_tick_without_a_valid_symbol_id_is_not_named_an_unknown_symbol(caplog):
    # a NaN or fractional symbol_id (read as -1: skipped) was named "symbol_id -1, not in
    # symbols: give every traded symbol_id an asset name", a fix that does not exist
    from quantlab.engine import BarAggregator

    agg = BarAggregator("1s", {0: "AAA"}, unit="us")
    tick = {"symbol_id": [0.0, np.nan, 0.5, 3.0], "bid_price": [10.0] * 4,
            "ask_price": [10.2] * 4, "bid_size": [1] * 4, "ask_size": [1] * 4,
            "timestamp": [0, 10, 20, 30]}
    with caplog.at_level("WARNING", logger="quantlab"):
        agg.add(tick)
    said = [r.getMessage() for r in caplog.records if "not in symbols" in r.getMessage()]
    assert agg.unknown_symbols == {3} and agg.skipped == 3
    assert len(said) == 1 and "symbol_id(s) 3," in said[0] and "-1" not in said[0], said


def test_a_timestamp_column_of_datetime64_and_datetime_objects_runs_as_the_int_column():
    # each a datetime the docs accept; together (pandas infers "mixed") the column was
    # "must be numeric ...; a timestamp column holds ... datetime objects"
    import datetime as dt

    import pandas as pd

    from quantlab.engine import TickEngine

    n = 3
    cols = {"symbol_id": np.zeros(n, int), "bid_price": [10.0, 10.2, 10.1],
            "ask_price": [10.1, 10.3, 10.2], "bid_size": np.ones(n), "ask_size": np.ones(n)}
    us = np.array([0, 1_500_000, 2_000_000]) + 1_704_153_600_000_000   # 2024-01-02 UTC
    mixed = np.array([np.datetime64(int(us[0]), "us"), dt.datetime(2024, 1, 2, 0, 0, 1, 500000),
                      pd.Timestamp(int(us[2]), unit="us")], dtype=object)
    eng = TickEngine()
    eng.config["engine"]["timestamp_unit"] = "us"
    np.testing.assert_array_equal(eng._timestamps(mixed), us)
    eng.process_ticks(dict(cols, timestamp=mixed))
    assert sum(eng.get_performance_stats()["tick_rejects"].values()) == 0
