"""Order events (pyramiding) equal vectorbt's from_signals (moved from tests/test_orders.py)."""
import warnings

import numpy as np
import pytest

import quantlab as ql
from test_backtest import _assert_accounting, _panel
from test_orders import _events


CASES = [("random1", _panel(1, n=400)), ("random2", _panel(2, n=500, m=6)),
         ("bundled", ql.data.load())]


# ---------------------------------------------------------------- pyramiding
@pytest.mark.parametrize("name,ds", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("size_type,size", [("value", 20_000.0), ("shares", 150.0),
                                            ("value", np.inf)])
@pytest.mark.parametrize("accumulate", [True, False])
def test_order_events_equal_vectorbt_from_signals(name, ds, size_type, size, accumulate, vbt):
    entries, exits = _events(ds["close"], 5)
    # vectorbt drops an event on a missing bar; quantlab carries it to the next bar with
    # a price (DESIGN.md missing bars), so compare on events at bars with prices
    entries, exits = entries & ds["close"].notnull(), exits & ds["close"].notnull()
    res = ql.backtest(ds, entries=entries, exits=exits, size=size, size_type=size_type,
                      accumulate=accumulate, fees=0.001, max_position_size=np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pf = vbt.Portfolio.from_signals(
            ds["close"].to_pandas(), entries.to_pandas(), exits.to_pandas(),
            open=ds["open"].to_pandas(), high=ds["high"].to_pandas(),
            low=ds["low"].to_pandas(), size=size,
            size_type="amount" if size_type == "shares" else size_type,
            accumulate=accumulate, fees=0.001, init_cash=100_000.0)
        value, theirs = pf.value().values, pf.orders.records_readable
        positions, exit_trades = pf.positions.count().values, pf.trades.count().values
    np.testing.assert_allclose(res.equity.values, value, rtol=1e-9)
    ours = res.orders.sort_values(["asset", "time"]).reset_index(drop=True)
    theirs = theirs.sort_values(["Column", "Timestamp"]).reset_index(drop=True)
    assert len(ours) == len(theirs)
    np.testing.assert_allclose(ours["size"].abs(), theirs["Size"], rtol=1e-9)
    np.testing.assert_allclose(ours["price"], theirs["Price"], rtol=1e-12)
    np.testing.assert_allclose(ours["fee"], theirs["Fees"], rtol=1e-9)
    # a quantlab trade is a round trip (vectorbt's positions); vectorbt's trades are exit
    # trades, one per order that reduces a position, so they differ once exits are partial
    np.testing.assert_allclose(res["n_trades"].values, positions)
    if accumulate and np.isfinite(size):   # inf buys all, sells all: nothing partial
        assert (exit_trades > positions).any(), "partial exits happened"
        assert (ours.groupby("asset")["size"].apply(lambda s: (s > 0).sum())
                > res["n_trades"].to_series().values).any(), "entries were repeated"
    _assert_accounting(res)
