"""ql.backtest equals vectorbt's Portfolio.from_signals (moved from tests/test_backtest.py)."""
import warnings

import numpy as np
import pytest

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
