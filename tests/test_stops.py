"""Stops in the backtest kernel (vectorbt parity on OHLC data:
tests/parity/test_vectorbt_stops.py): stop-loss, take-profit, both, trailing; every rule on
hand-made bars (gaps, a stop and a take-profit in one bar, the trailing ratchet, a stop
against a new signal, shorts, close-only data), exit reasons, accounting identity,
causality, stop grids as dims."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from test_backtest import _assert_accounting, _crossover, _panel


def _bars(rows, start="2020-01-01"):
    """One asset from (open, high, low, close) rows."""
    a = np.array(rows, dtype=float)
    t = pd.date_range(start, periods=len(a), freq="D")
    return xr.Dataset({k: (("time", "asset"), a[:, [i]])
                       for i, k in enumerate(("open", "high", "low", "close"))},
                      coords={"time": t, "asset": ["X"]})


def _sig(ds, values):
    return xr.DataArray(np.array(values, dtype=float)[:, None], dims=("time", "asset"),
                        coords={"time": ds.time, "asset": ds.asset})


def _run(rows, signal, **kw):
    ds = _bars(rows)
    res = ql.backtest(ds, _sig(ds, signal), **kw)
    _assert_accounting(res)
    return res


FLAT = (100, 101, 99, 100)


@pytest.mark.parametrize("rows,stops,price,reason", [
    ([FLAT, (90, 92, 88, 91)], dict(sl_stop=0.05), 90.0, "stop"),          # gap: the open
    ([FLAT, (99, 100, 94, 96)], dict(sl_stop=0.05), 95.0, "stop"),         # in range: the level
    ([FLAT, (100, 106, 94, 100)], dict(sl_stop=0.05, tp_stop=0.05), 95.0, "stop"),  # both
    ([FLAT, (110, 112, 109, 111)], dict(tp_stop=0.05), 110.0, "take_profit"),       # gap up
    ([FLAT, (101, 106, 100, 104)], dict(tp_stop=0.05), 105.0, "take_profit"),
])
def test_one_bar_rules(rows, stops, price, reason):
    res = _run(rows + [FLAT], [1, np.nan, np.nan], **stops)
    tr = res.trades
    assert len(tr) == 1 and tr["exit_reason"][0] == reason
    assert tr["exit_price"][0] == pytest.approx(price, rel=1e-12)
    assert tr["exit_time"][0] == res.equity.time.values[1]
    assert float(res.positions[-1, 0]) == 0.0


def test_trailing_stop_ratchets_after_each_bar():
    rows = [FLAT,
            (108, 120, 107, 118),   # its own high cannot stop it: level 100·0.9 = 90
            (117, 119, 110, 112),   # level now 120·0.9 = 108: not touched
            (111, 112, 105, 106)]   # touched: out at 108
    res = _run(rows, [1, np.nan, np.nan, np.nan], sl_trail=0.1)
    tr = res.trades
    assert list(tr["exit_reason"]) == ["trailing"]
    assert tr["exit_price"][0] == pytest.approx(108.0) and tr["exit_time"][0] == res.equity.time.values[3]
    # with a fixed stop too, the tighter level acts: here the fixed one (98 > 90)
    res = _run([FLAT, (99, 100, 97, 98), FLAT], [1, np.nan, np.nan], sl_trail=0.1,
               sl_stop=0.02)
    assert res.trades["exit_reason"][0] == "stop" and res.trades["exit_price"][0] == 98.0
    # ... and later the trailing one (108 > 98)
    res = _run(rows, [1, np.nan, np.nan, np.nan], sl_trail=0.1, sl_stop=0.02)
    assert res.trades["exit_reason"][0] == "trailing" and res.trades["exit_price"][0] == 108.0


def test_stop_replaces_the_signal_of_its_bar_and_the_next_entry_reenters():
    rows = [FLAT, (99, 100, 94, 96), FLAT, FLAT]
    res = _run(rows, [1, 1, np.nan, 1], sl_stop=0.05)
    o = res.orders
    assert list(o["reason"]) == ["signal", "stop", "signal"]
    assert list(o["t"]) == [0, 1, 3]              # bar 1's entry is ignored; bar 3 re-enters
    # an exit on the stop's bar is not a second order
    res = _run(rows, [1, 0, np.nan, np.nan], sl_stop=0.05)
    assert list(res.orders["reason"]) == ["signal", "stop"]
    # a level signal (1 every bar) re-enters on the next bar, as vectorbt's entries do
    res = _run(rows, [1, 1, 1, 1], sl_stop=0.05)
    assert list(res.orders["t"]) == [0, 1, 2]


def test_short_stops_mirror_long_ones():
    res = _run([FLAT, (101, 106, 100, 104), FLAT], [-1, np.nan, np.nan], sl_stop=0.05)
    assert res.trades["exit_reason"][0] == "stop" and res.trades["exit_price"][0] == 105.0
    res = _run([FLAT, (97, 98, 90, 93), FLAT], [-1, np.nan, np.nan], tp_stop=0.05)
    assert res.trades["exit_reason"][0] == "take_profit" and res.trades["exit_price"][0] == 95.0
    rows = [FLAT, (99, 100, 80, 82), (83, 89, 82, 88), FLAT]   # trough 80 -> level 88
    res = _run(rows, [-1, np.nan, np.nan, np.nan], sl_trail=0.1)
    assert res.trades["exit_reason"][0] == "trailing" and res.trades["exit_price"][0] == 88.0


def test_close_only_data_checks_the_close():
    t = pd.date_range("2020-01-01", periods=4, freq="D")
    ds = xr.Dataset({"close": (("time", "asset"), [[100.0], [96.0], [94.0], [94.0]])},
                    coords={"time": t, "asset": ["X"]})
    res = ql.backtest(ds, _sig(ds, [1, np.nan, np.nan, np.nan]), sl_stop=0.05)
    assert res.trades["exit_time"][0] == t[2] and res.trades["exit_price"][0] == 94.0


def test_stop_fills_pay_slippage_and_fees_and_open_trades_end_of_data():
    res = _run([FLAT, (99, 100, 94, 96)], [1, np.nan], sl_stop=0.05, slippage=0.001,
               fees=0.002)
    o = res.orders.iloc[1]
    assert o["price"] == pytest.approx(95.0 * 0.999)
    assert o["fee"] == pytest.approx(abs(o["size"]) * o["price"] * 0.002)
    res = _run([FLAT, FLAT], [1, np.nan], sl_stop=0.05)
    assert list(res.trades["exit_reason"]) == ["end_of_data"]


def test_stop_grid_as_dims_equals_single_runs_and_metrics_only():
    ds = _panel(5, n=300, m=3)
    entries, exits = _crossover(ds["close"], 5, 20)
    sl = xr.DataArray([0.02, 0.05, np.nan], dims="sl", coords={"sl": [0.02, 0.05, 0.0]})
    tp = xr.DataArray([0.05, 0.1], dims="tp", coords={"tp": [0.05, 0.1]})
    res = ql.backtest(ds, entries=entries, exits=exits, fees=0.001, sl_stop=sl, tp_stop=tp)
    assert set(res.equity.dims) == {"time", "asset", "sl", "tp"}
    for i, s in enumerate([0.02, 0.05, None]):
        for p in (0.05, 0.1):
            one = ql.backtest(ds, entries=entries, exits=exits, fees=0.001, sl_stop=s,
                              tp_stop=p)
            got = res.equity.isel(sl=i).sel(tp=p).transpose("time", "asset")
            np.testing.assert_allclose(got.values, one.equity.values, rtol=1e-12)
    _assert_accounting(res)
    streamed = ql.backtest(ds, entries=entries, exits=exits, fees=0.001, sl_stop=sl,
                           tp_stop=tp, metrics_only=("sharpe_ratio", "fees_paid", "n_orders"))
    full = res.metrics()
    np.testing.assert_allclose(streamed["sharpe_ratio"].transpose(*full["sharpe_ratio"].dims),
                               full["sharpe_ratio"], rtol=1e-9)
    np.testing.assert_allclose(streamed["fees_paid"].transpose(*full["fees_paid"].dims),
                               full["fees_paid"], rtol=1e-9)


@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("execution", ["close", "next_open"])
def test_stops_keep_the_books_and_never_look_ahead(group, execution):
    ds = _panel(6, n=250, holes=True)
    rng = np.random.default_rng(1)
    raw = np.round(rng.uniform(-1, 1, ds["close"].shape), 1)
    raw[rng.random(raw.shape) < 0.8] = np.nan
    sig = xr.DataArray(raw, dims=("time", "asset"), coords=ds["close"].coords)
    kw = dict(fees=0.001, slippage=0.0005, sl_stop=0.03, tp_stop=0.05, sl_trail=0.04,
              group=group, execution=execution)
    res = ql.backtest(ds, sig, **kw)
    _assert_accounting(res)
    assert {"stop", "take_profit", "trailing"} <= set(res.orders["reason"])
    cut = 150   # the first 150 bars do not depend on later ones
    part = ql.backtest(ds.isel(time=slice(0, cut)), sig.isel(time=slice(0, cut)), **kw)
    np.testing.assert_allclose(part.equity.values, res.equity.isel(time=slice(0, cut)).values,
                               rtol=1e-12)


def test_bad_stops():
    ds = _panel(7, n=50, m=1)
    sig = xr.ones_like(ds["close"])
    with pytest.raises(ValueError, match=r"sl_stop \(NaN = off\) must be > 0, got -0.1"):
        ql.backtest(ds, sig, sl_stop=-0.1)
    with pytest.raises(ValueError, match=r"tp_stop \(NaN = off\) must be > 0, got 0.0"):
        ql.backtest(ds, sig, tp_stop=0.0)
    with pytest.raises(ValueError, match="not time"):
        ql.backtest(ds, sig, sl_trail=xr.full_like(ds["close"], 0.1))
