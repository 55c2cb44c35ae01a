"""ql.backtest equals vectorbt's Portfolio.from_signals (moved from tests/test_backtest.py)."""
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from test_backtest import _assert_accounting, _crossover, _panel


CASES = [("random1", _panel(1)), ("random2", _panel(2, n=500, m=6)),
         ("bundled", ql.data.load())]


@pytest.mark.parametrize("name,ds", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("fees,slippage", [(0.0, 0.0), (0.001, 0.0005), (0.003, 0.002)])
@pytest.mark.parametrize("engine", ["numba", "rust"])
def test_equals_vectorbt_from_signals(name, ds, fees, slippage, engine, vbt):
    entries, exits = _crossover(ds["close"])
    res = ql.backtest(ds, entries=entries, exits=exits, fees=fees, slippage=slippage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pf = vbt.Portfolio.from_signals(ds["close"].to_pandas(), entries.to_pandas(),
                                        exits.to_pandas(), fees=fees, slippage=slippage,
                                        init_cash=100_000.0, engine=engine)
        np.testing.assert_allclose(res.equity.isel(time=-1).values, pf.final_value().values,
                                   rtol=1e-9)
        np.testing.assert_allclose(res.equity.values, pf.value().values, rtol=1e-9)
        np.testing.assert_allclose(res.metrics()["max_drawdown"].values,
                                   pf.max_drawdown().values, rtol=1e-9)
        theirs = pf.orders.records_readable
    _assert_accounting(res)
    ours = res.orders
    assert len(ours) == len(theirs)
    ours = ours.sort_values(["asset", "time"]).reset_index(drop=True)
    theirs = theirs.sort_values(["Column", "Timestamp"]).reset_index(drop=True)
    assert list(ours["asset"]) == list(theirs["Column"])
    assert (ours["time"].values == theirs["Timestamp"].values).all()
    sign = np.where(theirs["Side"] == "Buy", 1.0, -1.0)
    np.testing.assert_allclose(ours["size"], sign * theirs["Size"], rtol=1e-9)
    np.testing.assert_allclose(ours["price"], theirs["Price"], rtol=1e-12)
    np.testing.assert_allclose(ours["fee"], theirs["Fees"], rtol=1e-9, atol=1e-12)


# vectorbt's own tests/test_portfolio.py inputs (TestFromSignals, TestFromHolding): 5
# hand-made bars, long-only; quantlab's departures (events carried over a missing bar,
# slippage on stop fills, stops kept when a position is added to) are left out
_T = pd.date_range("2020-01-01", periods=5)
_UP, _DOWN = [1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 4.0, 3.0, 2.0, 1.0]
_EN, _EX = [1, 1, 1, 0, 0], [0, 0, 1, 1, 1]   # entries and exits meet on bar 2
_FIRST, _NONE = [1, 0, 0, 0, 0], [0] * 5
OWN = {
    "one_column": (_UP, _EN, _EX, {}, {}),
    "amount_1": (_UP, _EN, _EX, dict(size=1.0, size_type="shares"), dict(size=1.0)),
    "amount_0": (_UP, _EN, _EX, dict(size=0.0, size_type="shares"), dict(size=0.0)),
    "value_1": (_UP, _EN, _EX, dict(size=1.0, size_type="value"),
                dict(size=1.0, size_type="value")),
    "percent_0.5": (_UP, _EN, _EX, dict(size=0.5, size_type="equity"),
                    dict(size=0.5, size_type="percent")),
    "fees_0.1": (_UP, _EN, _EX, dict(size=1.0, size_type="shares", fees=0.1),
                 dict(size=1.0, fees=0.1)),
    "fees_0.9_all_cash": (_UP, _EN, _EX, dict(fees=0.9), dict(fees=0.9)),
    "fixed_fees_1": (_UP, _EN, _EX, dict(size=1.0, size_type="shares", fixed_fees=1.0),
                     dict(size=1.0, fixed_fees=1.0)),
    "slippage_0.1": (_UP, _EN, _EX, dict(size=1.0, size_type="shares", slippage=0.1),
                     dict(size=1.0, slippage=0.1)),
    "allow_partial": (_UP, _EN, _EX, dict(size=1000.0, size_type="shares"), dict(size=1000.0)),
    "accumulate": (_UP, _EN, _EX, dict(size=1.0, size_type="shares", accumulate=True),
                   dict(size=1.0, accumulate=True)),
    "init_cash_1": (_UP, _EN, _EX, dict(size=1.0, size_type="shares", init_cash=1.0),
                    dict(size=1.0, init_cash=1.0)),
    "all_false": (_UP, _NONE, _NONE, {}, {}),
    "nan_start_middle": ([np.nan, 2.0, np.nan, 4.0, 5.0], [0, 1, 0, 0, 0], [0, 0, 0, 1, 0], {}, {}),
    "nan_end_exit": ([1.0, 2.0, 3.0, 4.0, np.nan], _FIRST, [0, 0, 0, 0, 1], {}, {}),
    "sl_stop_close": (_DOWN, _FIRST, _NONE, dict(sl_stop=0.1), dict(sl_stop=0.1)),
    "sl_stop_ohlc_gap": (_DOWN, _FIRST, _NONE, dict(sl_stop=0.1, ohlc=0.25), dict(sl_stop=0.1)),
    "sl_stop_ohlc_level": (_DOWN, _FIRST, _NONE, dict(sl_stop=0.2, ohlc=0.25),
                           dict(sl_stop=0.2)),
    "tp_stop_ohlc": (_UP, _FIRST, _NONE, dict(tp_stop=0.75, ohlc=-0.25), dict(tp_stop=0.75)),
    "ts_stop_ohlc": ([4.0, 5.0, 4.0, 3.0, 2.0], _FIRST, _NONE, dict(sl_trail=0.2, ohlc=0.25),
                     dict(sl_stop=0.2, sl_trail=True)),
    "stop_and_fees": (_DOWN, _FIRST, _NONE, dict(sl_stop=0.1, fees=0.01),
                      dict(sl_stop=0.1, fees=0.01)),
}


@pytest.mark.parametrize("case", list(OWN))
def test_vectorbt_own_test_inputs(case, vbt):
    close, en, ex, ours, theirs = OWN[case]
    ours, theirs = dict(ours), dict(theirs)
    gap = ours.pop("ohlc", None)   # open = close + gap, high/low = close +- 0.5
    c = xr.DataArray(np.array(close)[:, None], dims=("time", "asset"),
                     coords={"time": _T, "asset": ["a"]})
    ds = c.to_dataset(name="close")
    if gap is not None:
        ds = ds.assign(open=c + gap, high=c + 0.5, low=c - 0.5)
        theirs.update({k: ds[k].to_pandas()["a"] for k in ("open", "high", "low")})
    entries, exits = (c.copy(data=np.array(v, bool)[:, None]) for v in (en, ex))
    init_cash = ours.pop("init_cash", 100.0)
    theirs.pop("init_cash", None)
    res = ql.backtest(ds, entries=entries, exits=exits, init_cash=init_cash, **ours)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        close = c.to_pandas()["a"]
        pf = vbt.Portfolio.from_signals(close, pd.Series(en, close.index, bool),
                                        pd.Series(ex, close.index, bool),
                                        init_cash=init_cash, **theirs)
        value, cash, assets = pf.value().values, pf.cash().values, pf.assets().values
        theirs_o = pf.orders.records_readable
    np.testing.assert_allclose(res.equity.values[:, 0], value, rtol=1e-12)
    np.testing.assert_allclose(res.cash.values[:, 0], cash, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.positions.values[:, 0], assets, rtol=1e-12)
    o = res.orders
    assert list(o["time"]) == list(theirs_o["Timestamp"])
    sign = np.where(theirs_o["Side"] == "Buy", 1.0, -1.0)
    np.testing.assert_allclose(o["size"], sign * theirs_o["Size"], rtol=1e-12)
    np.testing.assert_allclose(o["price"], theirs_o["Price"], rtol=1e-12)
    np.testing.assert_allclose(o["fee"], theirs_o["Fees"], rtol=1e-12, atol=1e-15)
