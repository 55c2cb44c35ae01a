"""Every cost option and slippage model of ``ql.backtest`` against a hand calculation on a
5-bar, 2-asset panel (plain arithmetic here, none of the module's helpers), the
annualisation of ``res.metrics()``, the fixed-fee skip rule, and the range checks of
every numeric option (regressions of the hardening issue, named after each failure)."""
import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql

E0 = 100_000.0
T = pd.date_range("2021-01-04", periods=5, freq="D")
CLOSE = np.array([[100.0, 50.0], [102.0, 49.0], [99.0, 51.0], [105.0, 52.0], [104.0, 50.0]])
OPEN = np.array([[100.0, 50.0], [101.0, 50.5], [103.0, 48.0], [98.0, 51.5], [106.0, 52.5]])
HIGH = np.maximum(OPEN, CLOSE) + np.array([[1.0, 0.5], [2.0, 0.5], [1.5, 1.0], [3.0, 0.5],
                                           [1.0, 1.0]])
LOW = np.minimum(OPEN, CLOSE) - np.array([[1.0, 0.5], [0.5, 1.0], [2.5, 0.5], [1.0, 0.5],
                                          [2.0, 0.5]])
VOLUME = np.array([[1e4, 5e3], [2e4, 6e3], [1.5e4, 4e3], [1e4, 5e3], [3e4, 7e3]])
A, B = 0, 1
NA = np.nan


def _ds():
    return xr.Dataset({k: (("time", "asset"), v.copy()) for k, v in
                       (("open", OPEN), ("high", HIGH), ("low", LOW), ("close", CLOSE),
                        ("volume", VOLUME))},
                      coords={"time": T, "asset": ["A", "B"]})


def _sig(a=(NA,) * 5, b=(NA,) * 5):
    return xr.DataArray(np.array([a, b], dtype=float).T, dims=("time", "asset"),
                        coords={"time": T, "asset": ["A", "B"]})


def _eq(res, j):
    return res.equity.values[:, j]


def _sigma(t, window):
    """Sample std (ddof=1) of the simple returns of asset A over the ``window`` bars up to
    t (the first bar has no return)."""
    r = [CLOSE[k, A] / CLOSE[k - 1, A] - 1 for k in range(max(1, t - window + 1), t + 1)]
    return float(np.std(r, ddof=1))


LONG_A = dict(a=(1, NA, 0, NA, NA))   # buy A at bar 0, sell at bar 2


def _round_trip(buy_px, sell_px, shares, fee_buy, fee_sell):
    """Equity path of A: cash E0 - shares·buy_px - fee_buy, marked at the closes, then
    the sale at bar 2."""
    cash = E0 - shares * buy_px - fee_buy
    eq = [cash + shares * CLOSE[t, A] for t in range(2)]
    return np.array(eq + [cash + shares * sell_px - fee_sell] * 3)


# ------------------------------------------------------------------ each cost option
def test_fees_value_against_hand_calculation():
    f = 0.002
    res = ql.backtest(_ds(), _sig(**LONG_A), fees=f)
    shares = E0 / (100.0 * (1 + f))           # all cash, net of the fee
    np.testing.assert_allclose(_eq(res, A), _round_trip(100.0, 99.0, shares,
                                                        shares * 100 * f, shares * 99 * f),
                               rtol=1e-12)
    np.testing.assert_allclose(res.orders["fee"], [shares * 100 * f, shares * 99 * f],
                               rtol=1e-12)
    np.testing.assert_allclose(_eq(res, B), E0)


def test_fixed_fees_value_against_hand_calculation():
    fixed = 25.0
    res = ql.backtest(_ds(), _sig(**LONG_A), fixed_fees=fixed)
    shares = (E0 - fixed) / 100.0
    np.testing.assert_allclose(_eq(res, A), _round_trip(100.0, 99.0, shares, fixed, fixed),
                               rtol=1e-12)
    np.testing.assert_allclose(res.orders["fee"], [fixed, fixed])


@pytest.mark.parametrize("slippage", [0.001, ql.Slippage("fixed", bps=10)],
                         ids=["fraction", "fixed_bps"])
def test_fixed_slippage_value_against_hand_calculation(slippage):
    s = 0.001
    res = ql.backtest(_ds(), _sig(**LONG_A), slippage=slippage)
    shares = E0 / (100.0 * (1 + s))
    np.testing.assert_allclose(res.orders["price"], [100 * (1 + s), 99 * (1 - s)], rtol=1e-12)
    np.testing.assert_allclose(_eq(res, A), _round_trip(100 * (1 + s), 99 * (1 - s), shares,
                                                        0, 0), rtol=1e-12)


@pytest.mark.parametrize("coef", [0.5, 50.0], ids=["impact", "capped"])
def test_volume_based_slippage_value_against_hand_calculation(coef):
    bps, cap, window = 2.0, 0.05, 3
    slip = ql.Slippage("volume_based", bps=bps, coef=coef, cap=cap, window=window)
    res = ql.backtest(_ds(), _sig(a=(NA, NA, NA, 1, NA)), slippage=slip)
    p, v = CLOSE[3, A], VOLUME[3, A]
    impact = coef * _sigma(3, window) / math.sqrt(v)
    first = E0 / (p * (1 + bps / 1e4))                  # sized at the base slippage ...
    s = bps / 1e4 + min(impact * math.sqrt(first), cap)  # ... its impact, then re-sized
    shares = E0 / (p * (1 + s))
    if coef == 50.0:
        assert s == pytest.approx(bps / 1e4 + cap)
    else:
        assert bps / 1e4 < s < bps / 1e4 + cap
    o = res.orders
    assert len(o) == 1
    assert o["price"].iloc[0] == pytest.approx(p * (1 + s), rel=1e-12)
    assert o["size"].iloc[0] == pytest.approx(shares, rel=1e-12)
    assert _eq(res, A)[4] == pytest.approx(shares * CLOSE[4, A], rel=1e-12)


@pytest.mark.parametrize("vol_mult,range_mult", [(0.5, 0.2), (0.5, 0.0), (0.0, 0.2)])
def test_adaptive_slippage_value_against_hand_calculation(vol_mult, range_mult):
    bps, window = 3.0, 3
    slip = ql.Slippage("adaptive", bps=bps, vol_mult=vol_mult, range_mult=range_mult,
                       window=window)
    res = ql.backtest(_ds(), _sig(a=(NA, NA, NA, 1, 0)), slippage=slip)
    s3 = (bps / 1e4 + vol_mult * _sigma(3, window)
          + range_mult * (HIGH[3, A] - LOW[3, A]) / CLOSE[3, A])
    s4 = (bps / 1e4 + vol_mult * _sigma(4, window)
          + range_mult * (HIGH[4, A] - LOW[4, A]) / CLOSE[4, A])
    shares = E0 / (CLOSE[3, A] * (1 + s3))
    np.testing.assert_allclose(res.orders["price"],
                               [CLOSE[3, A] * (1 + s3), CLOSE[4, A] * (1 - s4)], rtol=1e-12)
    assert _eq(res, A)[4] == pytest.approx(shares * CLOSE[4, A] * (1 - s4), rel=1e-12)
    if vol_mult:   # the volatility term is a real part of the cost
        assert s3 - (bps / 1e4 + range_mult * (HIGH[3, A] - LOW[3, A]) / CLOSE[3, A]) > 0.005


def test_borrow_rate_value_against_hand_calculation():
    rate = 0.1
    res = ql.backtest(_ds(), _sig(a=(-1, NA, NA, NA, NA)), borrow_rate=rate)
    per_bar = (1 + rate) ** (1 / 252) - 1
    shares = -E0 / 100.0
    cash, eq, charged = E0 - shares * 100.0, [], []
    for t in range(5):   # interest on the short's value at each close
        charged.append(per_bar * -shares * CLOSE[t, A])
        cash -= charged[-1]
        eq.append(cash + shares * CLOSE[t, A])
    np.testing.assert_allclose(res.interest.values[:, A], charged, rtol=1e-12)
    np.testing.assert_allclose(_eq(res, A), eq, rtol=1e-12)
    # a long with borrowed cash pays it on the loan, compounding
    lev = ql.backtest(_ds(), _sig(a=(1, NA, NA, NA, NA)), borrow_rate=rate, max_leverage=2)
    loan = E0
    for t in range(5):
        loan *= 1 + per_bar
        assert float(lev.cash[t, A]) == pytest.approx(-loan, rel=1e-12)


def test_max_leverage_value_against_hand_calculation():
    res = ql.backtest(_ds(), _sig(a=(1, NA, NA, NA, NA)), max_leverage=2.0)
    shares = 2 * E0 / 100.0
    np.testing.assert_allclose(_eq(res, A), -E0 + shares * CLOSE[:, A], rtol=1e-12)
    capped = ql.backtest(_ds(), _sig(a=(1, NA, NA, NA, NA)), max_leverage=2.0,
                         max_position_size=1.2)
    np.testing.assert_allclose(capped.positions.values[:, A], 1.2 * E0 / 100.0, rtol=1e-12)
    # a portfolio: exposures 1.5 + 1.5 scaled pro rata to the 1.5 cap -> 0.75 each
    grp = ql.backtest(_ds(), _sig(a=(1, NA, NA, NA, NA), b=(1, NA, NA, NA, NA)),
                      max_leverage=1.5, group=True, maintenance_margin=0.0)
    qa, qb = 0.75 * E0 / 100.0, 0.75 * E0 / 50.0
    np.testing.assert_allclose(grp.equity.values,
                               E0 - 1.5 * E0 + qa * CLOSE[:, A] + qb * CLOSE[:, B], rtol=1e-12)


def test_next_open_execution_value_against_hand_calculation():
    f, s = 0.001, 0.002
    res = ql.backtest(_ds(), _sig(**LONG_A), execution="next_open", fees=f, slippage=s)
    buy, sell = OPEN[1, A] * (1 + s), OPEN[3, A] * (1 - s)
    shares = E0 / (buy * (1 + f))
    np.testing.assert_allclose(res.orders["price"], [buy, sell], rtol=1e-12)
    assert list(res.orders["t"]) == [1, 3]
    cash = E0 - shares * buy * (1 + f)
    expect = [E0, cash + shares * CLOSE[1, A], cash + shares * CLOSE[2, A]]
    expect += [cash + shares * sell * (1 - f)] * 2
    np.testing.assert_allclose(_eq(res, A), expect, rtol=1e-12)


def test_metrics_annualise_with_periods():
    sig = _sig(a=(1, NA, NA, NA, NA), b=(-1, NA, 0, NA, NA))
    m12 = ql.backtest(_ds(), sig, periods=12).metrics()
    m252 = ql.backtest(_ds(), sig, periods=252).metrics()
    np.testing.assert_allclose(m252["sharpe_ratio"] / m12["sharpe_ratio"],
                               math.sqrt(252 / 12), rtol=1e-12)
    res = ql.backtest(_ds(), sig, periods=12)
    eq = np.r_[E0, res.equity.values[:, A]]
    r = eq[1:] / eq[:-1] - 1
    assert float(m12["sharpe_ratio"][A]) == pytest.approx(
        r.mean() / r.std(ddof=1) * math.sqrt(12), rel=1e-12)
    assert float(m12["annual_volatility"][A]) == pytest.approx(r.std(ddof=1) * math.sqrt(12),
                                                               rel=1e-12)
    assert float(m12["annual_return"][A]) == pytest.approx(
        (eq[-1] / E0) ** (12 / 5) - 1, rel=1e-12)
    # an annual risk-free rate is converted per period with the same periods
    rf = 0.05
    per = (1 + rf) ** (1 / 12) - 1
    assert float(res.metrics(risk_free_rate=rf)["sharpe_ratio"][A]) == pytest.approx(
        (r - per).mean() / r.std(ddof=1) * math.sqrt(12), rel=1e-12)
    assert m12.attrs["periods"] == 12


# ------------------------------------------------------------------ fixed fees
@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("execution", ["close", "next_open"])
def test_fixed_fees_larger_than_cash_skip_the_order_never_short(group, execution):
    res = ql.backtest(_ds(), _sig(a=(1, NA, NA, NA, NA), b=(1, NA, NA, NA, NA)),
                      init_cash=100.0, fixed_fees=700.0, group=group, execution=execution)
    assert (res.positions.values == 0).all()
    np.testing.assert_allclose(res.equity.values, 100.0)
    o = res.orders
    assert list(o["reason"]) == ["fixed_fee", "fixed_fee"]
    assert (o["size"] == 0).all() and (o["fee"] == 0).all()
    assert list(o["t"]) == [1 if execution == "next_open" else 0] * 2
    assert res.trades.empty and int(res.metrics()["n_trades"].sum()) == 0


@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("execution", ["close", "next_open"])
def test_fixed_fee_larger_than_cash_skips_order_events(group, execution):
    e = _sig(a=(1, NA, NA, NA, NA)).notnull()
    x = xr.zeros_like(e)
    res = ql.backtest(_ds(), entries=e, exits=x, size=0.5, init_cash=100.0,
                      fixed_fees=700.0, group=group, execution=execution)
    assert (res.positions.values == 0).all()
    assert list(res.orders["reason"]) == ["fixed_fee"]
    streamed = ql.backtest(_ds(), entries=e, exits=x, size=0.5, init_cash=100.0,
                           fixed_fees=700.0, group=group, execution=execution,
                           metrics_only=("n_orders", "fees_paid"))
    # a row of the orders table, so metrics-only counts it; it paid nothing
    assert float(streamed["n_orders"].sum()) == 1 and float(streamed["fees_paid"].sum()) == 0


@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("execution", ["close", "next_open"])
def test_a_fixed_fee_of_all_the_equity_skips_the_order(group, execution):
    # sizing nets the fee out of the target: 1 x (100 - 100) buys 0 shares. The fee
    # stops the order (vectorbt's fixed_fees=100 on init_cash=100 fills nothing either),
    # so it is recorded as for a larger fee, not dropped as "already at the target"
    kw = dict(init_cash=100.0, fixed_fees=100.0, group=group, execution=execution)
    res = ql.backtest(_ds(), _sig(a=(1, NA, NA, NA, NA)), **kw)
    assert list(res.orders["reason"]) == ["fixed_fee"]
    assert list(res.orders["t"]) == [1 if execution == "next_open" else 0]
    assert (res.positions.values == 0).all()
    np.testing.assert_allclose(res.equity.values, 100.0)
    streamed = ql.backtest(_ds(), _sig(a=(1, NA, NA, NA, NA)), metrics_only=("n_orders",), **kw)
    assert float(streamed["n_orders"].sum()) == 1


def test_fixed_fee_that_turns_a_buy_into_a_sell_skips_it():
    # bar 0: 0.5 of (10,000 - 600) -> 47 shares, cash 4,700, equity 9,400 at 100; a
    # target of 0.52 at bar 1 asks to buy (0.52 x 9,400 / 100 = 48.88 > 47) but net of
    # the fee it would sell ((0.52 x 8,800 - 4,700) / 100 = -1.24): skipped
    ds = _ds()
    for v, x in (("open", 100.0), ("high", 101.0), ("low", 99.0), ("close", 100.0)):
        ds[v][1, A] = x
    sig = _sig(a=(0.5, 0.52, NA, NA, NA))
    res = ql.backtest(ds, sig, init_cash=10_000.0, fixed_fees=600.0)
    assert list(res.orders["reason"]) == ["signal", "fixed_fee"]
    assert float(res.orders["size"].iloc[0]) == pytest.approx(47.0)
    np.testing.assert_allclose(res.positions.values[:, A], 47.0)
    # a fee that does not turn it around still fills (0.6: buys 0.6 x 8,800 - 4,700)
    ok = ql.backtest(ds, _sig(a=(0.5, 0.6, NA, NA, NA)), init_cash=10_000.0,
                     fixed_fees=600.0)
    assert list(ok.orders["reason"]) == ["signal", "signal"]
    assert float(ok.orders["size"].iloc[1]) == pytest.approx((0.6 * 8_800 - 4_700) / 100)


def test_fixed_fee_skip_in_a_portfolio_after_cash_is_spent():
    # A leaves 100,000 - 0.99995 x (100,000 - 10) - 10 = 4.9995 in cash on bar 0; B's
    # buy on bar 1 has that buying power, less than its fee of 10: skipped, recorded
    res = ql.backtest(_ds(), _sig(a=(0.99995, NA, NA, NA, NA), b=(NA, 0.00005, NA, NA, NA)),
                      group=True, fixed_fees=10.0)
    assert float(res.cash[0]) == pytest.approx(E0 - 0.99995 * (E0 - 10) - 10, rel=1e-9)
    assert list(res.orders["reason"]) == ["signal", "fixed_fee"]
    assert float(res.positions[-1, B]) == 0.0
    assert (res.cash.values > 0).all()
    # with no cash at all, a buy is not the fee's fault: nothing is recorded
    none = ql.backtest(_ds(), _sig(a=(1, NA, NA, NA, NA), b=(NA, 0.00005, NA, NA, NA)),
                       group=True, fixed_fees=10.0)
    assert list(none.orders["reason"]) == ["signal"]


# ------------------------------------------------------------------ impossible costs
def test_slippage_2_fills_at_negative_prices_is_refused():
    with pytest.raises(ValueError, match=r"slippage must be in \[0, 1\), got 2.0"):
        ql.backtest(_ds(), _sig(**LONG_A), slippage=2.0)


def test_slippage_below_zero_is_refused():
    with pytest.raises(ValueError, match=r"slippage must be in \[0, 1\), got -0.001"):
        ql.backtest(_ds(), _sig(**LONG_A), slippage=-0.001)
    with pytest.raises(ValueError, match=r"Slippage bps must be in \[0, 10000.0\)"):
        ql.Slippage("fixed", bps=-1)


def test_adaptive_slippage_reaching_1_is_refused():
    slip = ql.Slippage("adaptive", bps=0, vol_mult=0, range_mult=30.0)
    with pytest.raises(ValueError, match=r"Slippage\('adaptive'\) reaches a slippage of .*"
                                         r"must stay < 1"):
        ql.backtest(_ds(), _sig(**LONG_A), slippage=slip)


def test_volume_based_slippage_cap_5_is_refused():
    with pytest.raises(ValueError, match=r"Slippage cap must be in \[0, 1\), got 5"):
        ql.Slippage("volume_based", cap=5)
    with pytest.raises(ValueError, match=r"bps / 1e4 \+ cap must be < 1"):
        ql.Slippage("volume_based", bps=6000, cap=0.5)


BAD = [  # (option, value, message) -- each was silently wrong, NaN or a bare error
    ("init_cash", 0, r"init_cash must be > 0"), ("init_cash", np.inf, "init_cash must be a finite"),
    ("init_cash", np.nan, "init_cash must be a finite"),
    ("fees", 5.0, r"fees must be in \[0, 1\), got 5.0"), ("fees", 1.0, r"fees must be in \[0, 1\)"),
    ("fees", np.inf, "fees must be a finite"), ("fees", -0.01, r"fees must be in \[0, 1\)"),
    ("fees", np.nan, "fees must be a finite"),
    ("fixed_fees", -1.0, "fixed_fees must be >= 0"), ("fixed_fees", np.inf, "fixed_fees must be a finite"),
    ("fixed_fees", np.nan, "fixed_fees must be a finite"),
    ("slippage", np.nan, "slippage must be a finite"), ("slippage", np.inf, "slippage must be a finite"),
    ("slippage", 1.0, r"slippage must be in \[0, 1\)"), ("slippage", "5bps", "slippage must be a real"),
    ("max_leverage", np.inf, r"max_leverage must be a finite number in \(0, 100.0\]"),
    ("max_leverage", 0, r"max_leverage must be in \(0, 100.0\]"),
    ("max_leverage", np.nan, "max_leverage must be a finite"),
    ("max_leverage", 1000, r"max_leverage must be in \(0, 100.0\]"),
    ("max_position_size", 0, "max_position_size must be > 0"),
    ("max_position_size", np.nan, "max_position_size must be a"),
    ("borrow_rate", np.nan, "borrow_rate must be a finite"), ("borrow_rate", np.inf, "borrow_rate must be a finite"),
    ("borrow_rate", 1.0, r"borrow_rate must be in \[0, 1\)"),
    ("maintenance_margin", np.nan, "maintenance_margin must be"),
    ("maintenance_margin", -0.1, r"maintenance_margin must be in \[0, 1\)"),
    ("periods", 0, "periods must be an integer >= 1, got 0"), ("periods", -252, "periods must be an integer >= 1"),
    ("periods", 2.5, "periods must be an integer"), ("periods", np.nan, "periods must be an integer"),
    ("periods", np.inf, "periods must be an integer"), ("periods", "252", "periods must be an integer"),
    ("sl_stop", np.inf, r"sl_stop \(NaN = off\) must be a finite"), ("sl_stop", 0.0, r"sl_stop \(NaN = off\) must be > 0"),
    ("tp_stop", -0.1, r"tp_stop \(NaN = off\) must be > 0"), ("sl_trail", np.inf, "sl_trail .* must be a finite"),
    ("dd_limit", 0.0, r"dd_limit must be in \(0, 1\)"), ("dd_limit", np.nan, "dd_limit must be a finite"),
    ("dd_limit", 1.0, r"dd_limit must be in \(0, 1\)"),
    ("dd_cooldown", -1, "dd_cooldown must be an integer >= 0"), ("dd_cooldown", 1.5, "dd_cooldown must be an integer"),
    ("dd_mode", "forever", "dd_mode must be one of 'cooldown', 'halt'"),
    ("execution", "open", "execution must be one of"), ("rebalance", "weekly", "rebalance must be one of"),
]


@pytest.mark.parametrize("name,value,match", BAD, ids=[f"{n}={v!r}" for n, v, _ in BAD])
def test_every_numeric_option_is_checked_with_its_range(name, value, match):
    kw = {name: value}
    if name.startswith("dd_") and name != "dd_limit":
        kw["dd_limit"] = 0.2
    with pytest.raises((ValueError, TypeError), match=match):
        ql.backtest(_ds(), _sig(**LONG_A), **kw)


LIMIT_BAD = [("limit_offset", -0.01, r"limit_offset must be in \[0, 1\)"),
             ("limit_offset", 1.0, r"limit_offset must be in \[0, 1\)"),
             ("limit_offset", np.nan, "limit_offset must be a finite"),
             ("limit_offset", np.inf, "limit_offset must be a finite"),
             ("limit_tif", 0, "limit_tif must be an integer >= 1"),
             ("limit_tif", 1.5, "limit_tif must be an integer"),
             ("limit_tif", np.inf, "limit_tif must be an integer")]


@pytest.mark.parametrize("name,value,match", LIMIT_BAD,
                         ids=[f"{n}={v!r}" for n, v, _ in LIMIT_BAD])
def test_limit_order_options_are_checked_with_their_range(name, value, match):
    kw = {"limit_offset": 0.01, name: value}
    with pytest.raises((ValueError, TypeError), match=match):
        ql.backtest(_ds(), _sig(**LONG_A), order_type="limit", **kw)


@pytest.mark.parametrize("size,match", [(-1.0, "size .* must be >= 0"),
                                        (np.nan, "size .* must be a .*number >= 0, got nan"),
                                        ("all", "size .* must be a real number")])
def test_order_size_is_checked_with_its_range(size, match):
    e = _sig(**LONG_A) == 1
    with pytest.raises((ValueError, TypeError), match=match):
        ql.backtest(_ds(), entries=e, exits=~e, size=size)


def test_array_options_are_checked_value_by_value():
    grid = xr.DataArray([0.001, np.nan], dims="fee", coords={"fee": [1, 2]})
    with pytest.raises(ValueError, match="fees must be a finite"):
        ql.backtest(_ds(), _sig(**LONG_A), fees=grid)
    stops = xr.DataArray([0.05, np.inf], dims="asset", coords={"asset": ["A", "B"]})
    with pytest.raises(ValueError, match="sl_stop .* must be a finite"):
        ql.backtest(_ds(), _sig(**LONG_A), sl_stop=stops)
    # NaN is "off" for a stop
    off = xr.DataArray([0.05, np.nan], dims="asset", coords={"asset": ["A", "B"]})
    assert ql.backtest(_ds(), _sig(**LONG_A), sl_stop=off).equity.shape == (5, 2)


@pytest.mark.parametrize("name,value,match", [
    ("coef", -1.0, "Slippage coef must be >= 0"), ("coef", np.inf, "Slippage coef must be a finite"),
    ("cap", 1.0, r"Slippage cap must be in \[0, 1\)"), ("cap", np.nan, "Slippage cap must be a finite"),
    ("window", 1, "Slippage window must be an integer >= 2"), ("window", 2.5, "Slippage window must be an integer"),
    ("vol_mult", -0.1, "Slippage vol_mult must be >= 0"), ("vol_mult", np.inf, "Slippage vol_mult must be a finite"),
    ("range_mult", np.nan, "Slippage range_mult must be a finite"),
    ("bps", 1e4, r"Slippage bps must be in \[0, 10000.0\)"), ("bps", np.nan, "Slippage bps must be a finite"),
])
def test_slippage_model_options_are_checked_with_their_range(name, value, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ql.Slippage("adaptive", **{name: value})


def test_metrics_risk_free_rate_is_checked():
    res = ql.backtest(_ds(), _sig(**LONG_A))
    with pytest.raises(ValueError, match="risk_free_rate"):
        res.metrics(risk_free_rate=np.nan)


def test_huge_limit_tif_and_dd_cooldown_do_not_overflow():
    sig = _sig(a=(1, NA, NA, NA, NA))
    a = ql.backtest(_ds(), sig, order_type="limit", limit_offset=0.02, limit_tif=10 ** 30)
    b = ql.backtest(_ds(), sig, order_type="limit", limit_offset=0.02)
    np.testing.assert_array_equal(a.equity.values, b.equity.values)
    assert len(b.orders) == 1   # 98 reached on bar 2 (low 96.5), so it rested and filled
    c = ql.backtest(_ds(), sig, dd_limit=0.01, dd_cooldown=10 ** 30)
    assert bool(c.halted.values[-1, A])


# ------------------------------------------------------------------ missing coordinates
def _drop(obj, dim):
    return obj.drop_vars(dim)


LABELLED = [(w, d) for w in ("data", "signal", "entries", "exits", "size", "sl_stop",
                              "close_dataarray", "stops_path") for d in ("time", "asset")
            if (w, d) != ("sl_stop", "time")]   # a stop never varies over time


@pytest.mark.parametrize("what,dim", LABELLED)
def test_missing_time_or_asset_coordinate_is_a_data_error_not_keyerror(what, dim):
    ds, sig = _ds(), _sig(**LONG_A)
    e = sig == 1
    x = sig == 0
    kw = {}
    if what == "data":
        args = (_drop(ds, dim), sig)
    elif what == "close_dataarray":
        args = (_drop(ds["close"], dim), sig)
    elif what == "stops_path":
        args = (_drop(ds, dim), sig)
        kw = dict(sl_stop=0.05, tp_stop=0.1)
    elif what == "signal":
        args = (ds, _drop(sig, dim))
    elif what == "entries":
        args, kw = (ds,), dict(entries=_drop(e, dim), exits=x)
    elif what == "exits":
        args, kw = (ds,), dict(entries=e, exits=_drop(x, dim))
    elif what == "size":
        args, kw = (ds,), dict(entries=e, exits=x, size=_drop(xr.full_like(sig, 0.5), dim))
    else:   # sl_stop over assets
        args, kw = (ds, sig), dict(sl_stop=xr.DataArray([0.05, 0.05], dims="asset"))
    name = {"close_dataarray": "data", "stops_path": "data"}.get(what, what)
    with pytest.raises(ql.DataError, match=rf"{name}.* no '{dim}' coordinate; add one with "
                                           rf"\.assign_coords\({dim}=\.\.\.\)"):
        ql.backtest(*args, **kw)


def test_missing_time_dim_is_a_data_error_saying_how_to_rename():
    ds = _ds().rename(time="date")
    with pytest.raises(ql.DataError, match=r"data has no 'time' dimension.*\.rename"):
        ql.backtest(ds, _sig(**LONG_A).rename(time="date"))
    with pytest.raises(ql.DataError, match="no 'time' coordinate"):
        ql.risk.RiskManager().backtest(_drop(_ds(), "time"), _sig(**LONG_A))


def test_from_entries_exits_without_a_time_coordinate_is_a_data_error():
    e = _sig(**LONG_A) == 1
    with pytest.raises(ql.DataError, match="exits has the dimension 'time' but no 'time' coord"):
        ql.signals.from_entries_exits(e, _drop(e, "time"))


@pytest.mark.parametrize("name,value,match", [
    ("initial_capital", np.inf, "initial_capital must be a finite"),
    ("commission_per_trade", 5.0, r"commission_per_trade must be in \[0, 1\)"),
    ("slippage_bps", 20_000, r"slippage_bps must be in \[0, 10000.0\)"),
    ("slippage_bps", np.nan, "slippage_bps must be a finite"),
    ("risk_free_rate", np.nan, "risk_free_rate must be a finite")])
def test_seed_facade_costs_are_checked_with_their_range(name, value, match):
    with pytest.raises(ValueError, match=match):
        ql.BacktestingEngine(**{name: value})


# --- max_leverage above 1 / maintenance_margin (outside tester, finding 2) -----------------

def _alternating(n=60, m=2, seed=0):
    rng = np.random.default_rng(seed)
    t = pd.date_range("2021-01-01", periods=n, freq="D")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, m)), axis=0))
    ds = xr.Dataset({"close": (("time", "asset"), close)},
                    coords={"time": t, "asset": [f"A{i}" for i in range(m)]})
    sig = xr.DataArray(np.where(np.arange(n) % 2 == 0, 1.0, -1.0)[:, None].repeat(m, 1),
                       dims=("time", "asset"), coords={"time": t, "asset": ds.asset})
    return ds, sig


@pytest.mark.parametrize("lev,mm", [(5, 0.25), (4, 0.25), (2, 0.5), (10, 0.2), (1.5, 0.9)])
def test_max_leverage_5_with_margin_025_churns_margin_calls_is_refused(lev, mm):
    """max_leverage x maintenance_margin >= 1: a full-leverage account starts below the
    margin, so every signal order was margin-called on its own bar (120 + 120 orders)."""
    ds, sig = _alternating()
    with pytest.raises(ValueError, match=rf"max_leverage \* maintenance_margin must be < 1"
                                         rf".*max_leverage={lev!r}.*maintenance_margin={mm!r}"):
        ql.backtest(ds, sig, max_leverage=lev, maintenance_margin=mm, fees=0.001)
    with pytest.raises(ValueError, match="maintenance_margin must be < 1"):   # the facade
        ql.BacktestingEngine().run_backtest(sig, ds, max_leverage=lev, maintenance_margin=mm)
    with pytest.raises(ValueError, match="maintenance_margin must be < 1"):   # order events
        ql.backtest(ds, entries=sig > 0, exits=sig < 0, size=1.0, max_leverage=lev,
                    maintenance_margin=mm)


def test_max_leverage_below_1_over_margin_is_accepted_and_margin_off_allows_any():
    ds, sig = _alternating()
    res = ql.backtest(ds, sig, max_leverage=3.9, maintenance_margin=0.25, group=True)
    assert "margin_call" not in set(res.orders["reason"])
    # no margin (0) = no rule; 100x is within max_leverage's own range
    assert ql.backtest(ds, sig, max_leverage=100, maintenance_margin=0.0).equity.notnull().all()


# --- fixed fees never drive an account negative (outside tester, finding 1) ---------------

def test_fixed_fees_1e4_alternating_signal_never_drive_equity_negative():
    """60 bars x 2 assets, signal +-1, fixed_fees=1e4 in one account: equity fell to
    -19,845.5 (a signal order at ~10,154 equity, then two margin calls paying 10,000 each)."""
    ds, sig = _alternating(seed=3)
    res = ql.backtest(ds, sig, fixed_fees=1e4, group=True)
    eq = res.equity.values
    assert (eq >= 0).all(), eq.min()
    o = res.orders
    filled = o[o["size"] != 0]
    assert (filled.loc[filled["reason"] == "signal", "fee"] == 1e4).all()
    assert (o.loc[o["reason"] == "fixed_fee", "fee"] == 0).all()
    # a forced order's fee never exceeds the account's equity before it (no slippage here)
    for t, rows in o[o["reason"] == "margin_call"].groupby("t"):
        before = float(eq[t - 1]) if t else E0
        assert rows["fee"].sum() <= max(before, 0) + 1e-6 * E0


def test_second_order_on_a_bar_is_skipped_when_the_first_fee_used_the_equity():
    """Both sells of one account on one bar were checked against the equity before the
    bar (15,500 > 10,000) though the first fee left 5,500: the second is now skipped.
    Bar 0: sell 250 B at 50, buy 125 A at 100 (fee 10,000 each); bar 1: A at 102, B at 49
    -> equity 15,000 + 12,750 - 12,250 = 15,500; close both: sell A (fee: 5,500 left),
    cover B skipped; then cash 17,750 - 250 B at the closes."""
    res = ql.backtest(_ds(), _sig(a=(1, 0, NA, NA, NA), b=(-1, 0, NA, NA, NA)),
                      init_cash=35_000.0, fixed_fees=10_000.0, group=True)
    o = res.orders
    assert list(zip(o["asset"], o["reason"])) == [("B", "signal"), ("A", "signal"),
                                                  ("A", "signal"), ("B", "fixed_fee")]
    np.testing.assert_allclose(o["size"], [-250, 125, -125, 0], rtol=1e-12)
    np.testing.assert_allclose(res.equity.values, [15_000.0] + [17_750.0 - 250 * c for c in
                                                               CLOSE[1:, B]], rtol=1e-12)


def test_sell_whose_slippage_and_fees_leave_no_equity_is_skipped():
    """The skip counts the order's own slippage and proportional fee, not only the fixed
    fee. Slippage 0.1, fees 0.05, fixed 900, cash 2,055: bar 0 buys (2,055 - 900) / 115.5
    = 10 A (all the cash); the exit at bar 2 (99) sees equity 990 > 900 (it was filled,
    leaving 10 x 99 x 0.9 x 0.95 - 900 = -53.55); now skipped. Fixed 800: it leaves
    10.866 x 84.645 - 800 > 0 and fills."""
    for fixed, filled in ((900.0, False), (800.0, True)):
        res = ql.backtest(_ds(), _sig(a=(1, NA, 0, NA, NA)), init_cash=2_055.0,
                          fixed_fees=fixed, slippage=0.1, fees=0.05)
        o = res.orders
        shares = (2_055.0 - fixed) / 115.5
        assert o["size"].iloc[0] == pytest.approx(shares, rel=1e-12)
        if filled:
            assert list(o["reason"]) == ["signal", "signal"]
            np.testing.assert_allclose(_eq(res, A)[2:], shares * 99 * 0.9 * 0.95 - fixed,
                                       rtol=1e-12)
        else:
            assert list(o["reason"]) == ["signal", "fixed_fee"]
            np.testing.assert_allclose(_eq(res, A), shares * CLOSE[:, A], rtol=1e-12)


@pytest.mark.parametrize("kw,reason,fee", [
    # short 50 A at 100 (5,000 of equity); the close of 102 breaches a 0.99 margin:
    # equity 0.98 x 5,000 = 4,900 pays the fee, not 10,000
    (dict(a=(-1, NA, NA, NA, NA), maintenance_margin=0.99), "margin_call", 4_900.0),
    # long 50 A; the stop at 99 (bar 2) leaves 50 x 99 = 4,950 for the fee
    (dict(a=(1, NA, NA, NA, NA), sl_stop=0.01), "stop", 4_950.0),
    # long 50 A; equity 5,100 at bar 1 is 66% below the peak (init_cash): the drawdown
    # exit at 102 leaves 50 x 102 = 5,100 for the fee
    (dict(a=(1, NA, NA, NA, NA), dd_limit=0.01), "drawdown", 5_100.0),
])
def test_forced_order_fixed_fee_is_capped_at_the_equity_left(kw, reason, fee):
    kw = dict(kw)
    sig = _sig(a=kw.pop("a"))
    res = ql.backtest(_ds(), sig, init_cash=15_000.0, fixed_fees=10_000.0, **kw)
    o = res.orders
    assert list(o["reason"]) == ["signal", reason]
    assert float(o["fee"].iloc[1]) == pytest.approx(fee, rel=1e-12)
    assert float(o["size"].iloc[1]) == pytest.approx(-float(o["size"].iloc[0]), rel=1e-12)
    assert res.equity.values[0, A] == pytest.approx(5_000.0, rel=1e-12)
    assert np.abs(res.equity.values[2:, A]).max() < 1e-9   # all of it went to the fee
    assert (res.equity.values >= -1e-9).all()


@pytest.mark.parametrize("seed", range(24))
def test_random_signals_and_large_fixed_fees_never_make_equity_negative(seed):
    """Property: positive prices moving < 4% a bar, leverage 1, fixed fees large relative
    to cash, any signal, stops, drawdown control, execution and grouping: the fees alone
    never take equity below 0 (price moves this small cannot bust a leverage-1 account).
    Covers a stop whose capped fee drains a portfolio that still holds other assets
    (they are closed on that bar; the fee pays only what the closes leave)."""
    rng = np.random.default_rng(seed)
    n, m = 40, 3
    t = pd.date_range("2021-01-01", periods=n, freq="D")
    close = 100 * np.exp(np.cumsum(rng.uniform(-0.03, 0.03, (n, m)), axis=0))
    ds = xr.Dataset({"close": (("time", "asset"), close),
                     "open": (("time", "asset"), close * np.exp(rng.uniform(-0.005, 0.005, (n, m))))},
                    coords={"time": t, "asset": ["A", "B", "C"]})
    raw = rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0, np.nan], (n, m))
    sig = xr.DataArray(raw, dims=("time", "asset"), coords={"time": t, "asset": ds.asset})
    for _ in range(6):
        kw = dict(init_cash=float(rng.choice([1e3, 1e4, 1e5])),
                  fees=float(rng.choice([0.0, 0.001, 0.01])),
                  slippage=float(rng.choice([0.0, 0.001, 0.005])),
                  group=bool(rng.integers(2)),
                  execution=str(rng.choice(["close", "next_open"])),
                  rebalance=str(rng.choice(["on_change", "daily"])),
                  maintenance_margin=float(rng.choice([0.0, 0.25, 0.9])))
        kw["fixed_fees"] = kw["init_cash"] * float(rng.choice([0.05, 0.3, 0.6, 0.95, 1.5]))
        if rng.integers(2):
            kw["sl_stop"] = float(rng.choice([0.01, 0.03]))
        if rng.integers(2):
            kw["dd_limit"] = 0.05
        res = ql.backtest(ds, sig, **kw)
        eq = res.equity.values
        assert (eq >= -1e-9 * kw["init_cash"]).all(), (kw, eq.min())
        skipped = res.orders[res.orders["reason"] == "fixed_fee"]
        assert (skipped["size"] == 0).all() and (skipped["fee"] == 0).all()
