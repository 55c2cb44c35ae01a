"""Stops equal vectorbt's from_signals on OHLC data (moved from tests/test_stops.py)."""
import warnings

import numpy as np
import pytest

import quantlab as ql
from test_backtest import _assert_accounting, _crossover, _panel


CASES = [("random1", _panel(1, n=400)), ("random2", _panel(2, n=500, m=6)),
         ("bundled", ql.data.load())]


STOPS = {"sl": dict(sl_stop=0.05), "tp": dict(tp_stop=0.08),
         "sl+tp": dict(sl_stop=0.04, tp_stop=0.06), "trail": dict(sl_trail=0.07)}


def _vbt_kw(stops):
    kw = {k: v for k, v in stops.items() if k != "sl_trail"}
    if "sl_trail" in stops:
        kw.update(sl_stop=stops["sl_trail"], sl_trail=True)
    return kw


@pytest.mark.parametrize("name,ds", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("stop", list(STOPS))
def test_stops_equal_vectorbt_from_signals(name, ds, stop, vbt):
    entries, exits = _crossover(ds["close"], 5, 20)
    res = ql.backtest(ds, entries=entries, exits=exits, fees=0.001, **STOPS[stop])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pf = vbt.Portfolio.from_signals(
            ds["close"].to_pandas(), entries.to_pandas(), exits.to_pandas(),
            open=ds["open"].to_pandas(), high=ds["high"].to_pandas(),
            low=ds["low"].to_pandas(), fees=0.001, init_cash=100_000.0,
            **_vbt_kw(STOPS[stop]))
        final = pf.final_value().values
        value = pf.value().values
        theirs = pf.orders.records_readable
        n_trades = pf.trades.count().values
    np.testing.assert_allclose(res.equity.isel(time=-1).values, final, rtol=1e-9)
    np.testing.assert_allclose(res.equity.values, value, rtol=1e-9)
    ours = res.orders.sort_values(["asset", "time"]).reset_index(drop=True)
    theirs = theirs.sort_values(["Column", "Timestamp"]).reset_index(drop=True)
    assert len(ours) == len(theirs)
    np.testing.assert_allclose(ours["price"], theirs["Price"], rtol=1e-12)
    np.testing.assert_allclose(res["n_trades"].values, n_trades)
    assert (ours["reason"] != "signal").sum() > 0, "some stop fired"
    _assert_accounting(res)
