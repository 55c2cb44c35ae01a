"""Orders beyond target changes, options of the one backtest kernel: pyramiding with order
events (vectorbt parity: tests/parity/test_vectorbt_orders.py), limit orders, leverage
with borrowing costs and margin calls. Hand-made bars for every rule; accounting identity
and causality with every option."""
import numpy as np
import pytest
import xarray as xr

import quantlab as ql
from test_backtest import _assert_accounting, _panel
from test_stops import _bars, _sig


FLAT = (100, 101, 99, 100)
NA = np.nan


def _events(close, seed, p_entry=0.15, p_exit=0.08):
    rng = np.random.default_rng(seed)
    mk = lambda p: xr.DataArray(rng.random(close.shape) < p, dims=close.dims,
                                coords=close.coords)
    return mk(p_entry), mk(p_exit)


def test_pyramiding_adds_a_fraction_of_equity_up_to_the_cap_and_exits_partially():
    ds = _bars([FLAT] * 8)
    entries = _sig(ds, [1, 1, 1, 1, 1, 0, 0, 0]).astype(bool)
    exits = _sig(ds, [0, 0, 0, 0, 0, 1, 1, 1]).astype(bool)
    res = ql.backtest(ds, entries=entries, exits=exits, size=0.3, accumulate=True,
                      max_position_size=1.0)
    q = res.positions.values[:, 0]
    # equity stays 100,000 at a flat price without costs: 300 shares per entry up to the
    # cap of 1,000 shares; exits sell 300 each, the last one what is left
    np.testing.assert_allclose(q, [300, 600, 900, 1000, 1000, 700, 400, 100])
    assert list(res.orders["size"]) == pytest.approx([300, 300, 300, 100, -300, -300, -300])
    assert len(res.trades) == 1 and res.trades["exit_reason"].iloc[0] == "end_of_data"
    # without accumulate a repeated entry does nothing and an exit closes everything
    res = ql.backtest(ds, entries=entries, exits=exits, size=0.3)
    np.testing.assert_allclose(res.positions.values[:, 0], [300] * 5 + [0] * 3)


def test_entry_size_counts_equity_at_the_order():
    ds = _panel(3, n=200, m=3)
    entries, exits = _events(ds["close"], 2, 0.2, 0.05)
    res = ql.backtest(ds, entries=entries, exits=exits, size=0.1, accumulate=True,
                      fees=0.001, max_position_size=0.8)
    o = res.orders[res.orders["size"] > 0]
    exact = 0
    for r in o.itertuples():
        pos = res.positions.sel(asset=r.asset)
        before = float(pos.isel(time=r.t - 1)) if r.t else 0.0
        # equity before the order, at this bar's price
        eq = (float(res.cash.sel(asset=r.asset).isel(time=r.t - 1)) if r.t else 100_000.0) \
            + before * r.price
        if r.size * r.price == pytest.approx(0.1 * eq, rel=1e-9):
            exact += 1
        else:   # bound by the 80% cap or by the cash
            assert (before + r.size) * r.price == pytest.approx(0.8 * eq, rel=1e-9) or \
                float(res.cash.sel(asset=r.asset).isel(time=r.t)) == pytest.approx(0, abs=1e-6)
    assert exact > len(o) / 2
    _assert_accounting(res)


# ---------------------------------------------------------------- limit orders
def test_limit_orders_fill_at_the_limit_or_a_better_open_and_expire():
    ds = _bars([FLAT, FLAT, (99.5, 100, 98.5, 99), (97, 98, 96, 97), FLAT, FLAT])
    lim = dict(order_type="limit", limit_offset=0.01, limit_tif=3, fees=0.001)
    res = ql.backtest(ds, _sig(ds, [1, NA, NA, NA, 0, NA]), **lim)
    o = res.orders
    # the buy rests at 99 from bar 1, whose low touches it; the sell at 101 fills on bar 5
    assert list(o["t"]) == [1, 5] and list(o["price"]) == [99.0, 101.0]
    assert o["size"].iloc[0] * 99 * 1.001 == pytest.approx(100_000)   # all cash, fees
    assert res.trades["exit_reason"].iloc[0] == "signal"
    # 2% below 100: bar 2 (low 98.5) misses it; bar 3 opens at 97, through the limit
    sig = _sig(ds, [NA, 1, NA, NA, NA, NA])
    one = ql.backtest(ds, sig, order_type="limit", limit_offset=0.02, limit_tif=1)
    assert one.orders.empty, "never touched within its one bar: expired"
    two = ql.backtest(ds, sig, order_type="limit", limit_offset=0.02, limit_tif=2)
    assert list(two.orders["t"]) == [3] and two.orders["price"].iloc[0] == 97.0
    gtc = ql.backtest(ds, sig, order_type="limit", limit_offset=0.02)
    assert list(gtc.orders["t"]) == [3]
    for r in (res, one, two, gtc):
        _assert_accounting(r)


def test_a_new_order_replaces_a_resting_limit():
    ds = _bars([FLAT, FLAT, FLAT, (95, 96, 94, 95), FLAT])
    # the entry's limit at 98 is still resting when the exit arrives: cancelled
    res = ql.backtest(ds, _sig(ds, [1, 0, NA, NA, NA]), order_type="limit", limit_offset=0.02)
    assert res.orders.empty
    res = ql.backtest(ds, _sig(ds, [1, NA, NA, NA, NA]), order_type="limit", limit_offset=0.02)
    assert list(res.orders["t"]) == [3] and res.orders["price"].iloc[0] == 95.0


def test_limit_entry_is_the_stop_reference_and_stops_stay_market_orders():
    ds = _bars([FLAT, (98, 99, 97, 98), (97, 97.5, 92, 93), FLAT])
    res = ql.backtest(ds, _sig(ds, [1, NA, NA, NA]), order_type="limit", limit_offset=0.01,
                      sl_stop=0.05)
    # filled at the open 98 (<= 99); the stop at 98 * 0.95 = 93.1 is hit on bar 2
    assert list(res.orders["price"]) == [98.0, pytest.approx(93.1)]
    assert list(res.orders["reason"]) == ["signal", "stop"]


def test_limit_offset_grid_is_a_dim_equal_to_single_runs():
    ds = _panel(4, n=250, m=3)
    entries, exits = _events(ds["close"], 3, 0.05, 0.05)
    off = xr.DataArray([0.0, 0.005, 0.02], dims="offset", coords={"offset": [0, 0.5, 2]})
    kw = dict(entries=entries, exits=exits, fees=0.001, order_type="limit", limit_tif=5)
    res = ql.backtest(ds, limit_offset=off, **kw)
    for i, v in enumerate(off.values):
        one = ql.backtest(ds, limit_offset=float(v), **kw)
        np.testing.assert_allclose(res.equity.isel(offset=i).transpose("time", "asset"),
                                   one.equity, rtol=1e-12)
    n = res["n_trades"].sum("asset")
    assert n.isel(offset=0) > n.isel(offset=2) > 0, "deeper limits fill less often"
    _assert_accounting(res)


# ---------------------------------------------------------------- leverage
def test_leverage_borrows_cash_and_pays_interest_on_it():
    ds = _bars([FLAT] * 5)
    rate = 0.05
    # five daily bars over a weekend: a 24/7 calendar, 365 bars a year (ql.calendar)
    res = ql.backtest(ds, _sig(ds, [1, NA, NA, NA, NA]), max_leverage=2, borrow_rate=rate)
    assert res.positions.values[0, 0] == pytest.approx(2000)       # 2 x equity
    assert res.periods == 365
    per_bar = (1 + rate) ** (1 / 365) - 1
    cash = -100_000.0
    for t in range(5):   # interest on the borrowed cash at every close, compounding
        cash -= per_bar * -cash
        assert float(res.cash[t, 0]) == pytest.approx(cash, rel=1e-12)
        assert float(res.interest[t, 0]) == pytest.approx(per_bar * -(cash / (1 + per_bar)))
    # shorts pay it on their value (and earn nothing on the proceeds)
    short = ql.backtest(ds, _sig(ds, [-1, NA, NA, NA, NA]), borrow_rate=rate)
    np.testing.assert_allclose(short.interest.values[:, 0], per_bar * 100_000.0)
    assert float(short.equity[-1, 0]) == pytest.approx(100_000 * (1 - 5 * per_bar))
    free = ql.backtest(ds, _sig(ds, [1, NA, NA, NA, NA]), max_leverage=2)
    assert free.interest is None and float(free.equity[-1, 0]) == 100_000.0
    for r in (res, short, free):
        _assert_accounting(r)


def test_margin_call_liquidates_at_the_close_and_the_account_stays_flat():
    rows = [FLAT, FLAT, (90,) * 4, (70,) * 4, (65,) * 4, (80,) * 4]
    ds = _bars(rows)
    res = ql.backtest(ds, _sig(ds, [1] + [NA] * 5), max_leverage=2)
    # 2,000 shares on 100,000 borrowed: at 70 equity 40,000 >= 25% of 140,000; at 65
    # equity 30,000 < 25% of 130,000 -> liquidated at 65
    assert list(res.orders["reason"]) == ["signal", "margin_call"]
    assert res.orders["t"].iloc[1] == 4 and res.orders["price"].iloc[1] == 65.0
    assert res.trades["exit_reason"].iloc[0] == "margin_call"
    np.testing.assert_allclose(res.equity.values[4:, 0], 30_000.0)
    # a lower maintenance margin holds on; none (0) never liquidates
    assert ql.backtest(ds, _sig(ds, [1] + [NA] * 5), max_leverage=2,
                       maintenance_margin=0.2).orders["reason"].tolist() == ["signal"]
    # the next signal change re-enters after a margin call
    again = ql.backtest(ds, _sig(ds, [1, NA, NA, NA, NA, 1]), max_leverage=2)
    assert list(again.orders["reason"]) == ["signal", "margin_call", "signal"]
    _assert_accounting(res)
    _assert_accounting(again)


def test_short_margin_call_and_a_bust_account_stops_trading():
    rows = [FLAT, (150,) * 4, (200,) * 4, (260,) * 4, (100,) * 4]
    ds = _bars(rows)
    res = ql.backtest(ds, _sig(ds, [-1, NA, NA, NA, NA]), maintenance_margin=0.3)
    # short 1,000 at 100 with 200,000 cash: at 150 equity 50,000 >= 30% of 150,000; at
    # 200 equity 0 < 60,000 -> bought back at 200, nothing left: no more orders
    assert list(res.orders["reason"]) == ["signal", "margin_call"]
    assert float(res.equity[-1, 0]) == pytest.approx(0.0, abs=1e-6)
    bust = ql.backtest(ds, _sig(ds, [-1, NA, NA, 0.5, 1]), maintenance_margin=0.3,
                       borrow_rate=0.1)
    assert list(bust.orders["reason"]) == ["signal", "margin_call"]
    assert (bust.interest.values[3:] == 0).all(), "a closed account accrues nothing"
    # a gap past the margin: 2x long through a 60% fall leaves less than nothing
    gap = _bars([FLAT, FLAT, (40,) * 4, (50,) * 4])
    res = ql.backtest(gap, _sig(gap, [1, NA, NA, 1]), max_leverage=2)
    assert list(res.orders["reason"]) == ["signal", "margin_call"]
    np.testing.assert_allclose(res.equity.values[2:, 0], 100_000 - 2000 * 60)
    _assert_accounting(res)


def test_leverage_caps_and_group_exposure():
    ds = _panel(8, n=120, m=4)
    sig = xr.full_like(ds["close"], 0.5)
    res = ql.backtest(ds, sig, max_leverage=3, group=True, maintenance_margin=0.0)
    value = (res.positions * ds["close"]).isel(time=0)
    # exposure 0.5 x 3 = 1.5 per asset, 6 in total, scaled pro rata to 3
    np.testing.assert_allclose(value / res.equity.isel(time=0), 0.75, rtol=1e-9)
    capped = ql.backtest(ds, sig, max_leverage=3, max_position_size=1.0)
    np.testing.assert_allclose((capped.positions * ds["close"] / capped.equity).isel(time=0),
                               1.0, rtol=1e-9)
    _assert_accounting(res)
    _assert_accounting(capped)


# ---------------------------------------------------------------- every option at once
@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("mode", ["targets", "events"])
def test_every_option_keeps_the_books_and_never_looks_ahead(group, mode):
    ds = _panel(6, n=250, holes=True)
    rng = np.random.default_rng(1)
    if mode == "targets":
        raw = np.round(rng.uniform(-1, 1, ds["close"].shape), 1)
        raw[rng.random(raw.shape) < 0.8] = np.nan
        given = dict(signal=xr.DataArray(raw, dims=("time", "asset"),
                                         coords=ds["close"].coords))
    else:
        entries, exits = _events(ds["close"], 9, 0.2, 0.1)
        given = dict(entries=entries, exits=exits, size=0.2, accumulate=True)
    kw = dict(fees=0.001, slippage=0.0005, sl_stop=0.05, max_leverage=2, borrow_rate=0.04,
              maintenance_margin=0.3, order_type="limit", limit_offset=0.003, limit_tif=3,
              group=group, **given)
    res = ql.backtest(ds, **kw)
    _assert_accounting(res)
    assert (res.cash < 0).any(), "leverage borrowed cash"
    assert float(res.interest.sum()) > 0
    cut = 150
    part = ql.backtest(ds.isel(time=slice(0, cut)), **{
        k: v.isel(time=slice(0, cut)) if isinstance(v, xr.DataArray) else v
        for k, v in kw.items()})
    np.testing.assert_allclose(part.equity.values, res.equity.isel(time=slice(0, cut)).values,
                               rtol=1e-12)
    streamed = ql.backtest(ds, metrics_only=("sharpe_ratio", "fees_paid"), **kw)
    full = res.metrics()
    np.testing.assert_allclose(streamed["sharpe_ratio"].transpose(*full["sharpe_ratio"].dims),
                               full["sharpe_ratio"], rtol=1e-9)


def test_bad_order_options():
    ds = _panel(7, n=50, m=1)
    e = xr.zeros_like(ds["close"], dtype=bool)
    with pytest.raises(ValueError, match=r"size \(inf = all the buying power\) must be >= 0"):
        ql.backtest(ds, entries=e, exits=e, size=-1.0)
    # vectorbt's accumulate modes are strings, all truthy: "disabled" must not switch it on
    for name, bad in (("accumulate", "disabled"), ("accumulate", 1), ("group", "no")):
        with pytest.raises(TypeError, match=f"{name} must be True or False, got {bad!r}"):
            ql.backtest(ds, entries=e, exits=e, size=1.0, **{name: bad})
    with pytest.raises(ValueError, match="rebalance='daily' applies to target"):
        ql.backtest(ds, entries=e, exits=e, accumulate=True, rebalance="daily")
    with pytest.raises(ValueError, match=r"limit_offset must be in \[0, 1\), got 1.5"):
        ql.backtest(ds, entries=e, exits=e, order_type="limit", limit_offset=1.5)
    with pytest.raises(ValueError, match="use execution='close'"):
        ql.backtest(ds, entries=e, exits=e, order_type="limit", limit_offset=0.01,
                    execution="next_open")
    with pytest.raises(ValueError, match="maintenance_margin must be"):
        ql.backtest(ds, entries=e, exits=e, maintenance_margin=1.0)
