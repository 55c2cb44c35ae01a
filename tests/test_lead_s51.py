"""Session 51, the lead engineer's changes: prices so small that their arithmetic fails
(subnormal, or sizing more shares than a double holds) are refused by name."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab._kernels import backtest as _bt
from quantlab.backtesting.dispatch import Stepper
from quantlab.backtesting.options import BacktestOptions

import reference as ref

T = pd.date_range("2024-01-01", periods=6, freq="B")
PATH = np.array([1.0, 1.1, 1.2, 1.1, 1.0, 1.05])


def _panel(scale, m=2, bars=False):
    close = np.outer(PATH, np.ones(m))
    close[:, 0] *= scale
    ds = xr.Dataset({"close": (("time", "asset"), close)},
                    coords={"time": T, "asset": [f"A{j}" for j in range(m)]})
    if bars:
        ds["open"], ds["high"], ds["low"] = ds["close"], ds["close"] * 1.01, ds["close"] * 0.99
        ds["volume"] = ds["close"] * 0 + 1e6
    sig = xr.DataArray(np.zeros((6, m)), coords=ds["close"].coords)
    sig[2:, 0] = 1.0
    return ds, sig


@pytest.mark.parametrize("price", [1e-310, 5e-324, 2e-308])
@pytest.mark.parametrize("bars", [False, True])
def test_a_subnormal_price_is_refused_by_name(price, bars):
    # a price below the smallest normal double (2.2e-308) has lost precision: it sized
    # infinitely many shares, and the equity went NaN (was: validate passed it)
    ds, sig = _panel(1.0, bars=bars)
    ds["close"][3, 1] = price
    if bars:
        ds["low"][3, 1] = price
    with pytest.raises(ql.DataError, match=r"'(open|close|low)' of asset 'A1' at 2024-01-04: "
                       r"price .* below the smallest normal double 2.225e-308 \(subnormal"):
        ql.data.validate(ds)
    for group in (False, True):
        with pytest.raises(ql.DataError, match="below the smallest normal double"):
            ql.backtest(ds, sig, group=group)


def test_the_smallest_normal_price_is_a_price():
    ds, sig = _panel(1.0)
    ds["close"][3, 1] = ql.data.MIN_PRICE
    assert ql.data.validate(ds) is not None


def test_load_csv_names_a_subnormal_price(tmp_path):
    f = tmp_path / "X.csv"
    f.write_text("date,close\n2020-01-02,10\n2020-01-03,1e-310\n")
    with pytest.raises(ql.DataError, match=r"'close' of asset 'X' at 2020-01-03: price "
                                           r"1e-310 below the smallest normal double"):
        ql.data.load_csv(f)


def test_crossmarket_refuses_a_subnormal_price():
    s = pd.Series([1.0, 2.0, 1e-310, 2.0], index=pd.date_range("2020-01-01", periods=4))
    with pytest.raises(ql.DataError, match=r"X: subnormal price 1e-310 .* at 2020-01-03"):
        ql.crossmarket.CrossMarketAnalyzer().add_market_data("equity", "X", s)


@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("chunked", [False, True])
def test_an_order_of_more_shares_than_a_double_holds_is_refused(group, chunked):
    # 1e5 of cash at 1e-304 a share is 1e309 shares: was a position of inf and a NaN
    # equity for asset A0 (group=False) or the whole portfolio (group=True)
    ds, sig = _panel(1e-304)
    data = ds.chunk(time=3) if chunked else ds
    with pytest.raises(ql.DataError) as e:
        res = ql.backtest(data, sig, group=group, fees=0.001)
        res.equity.values
    assert str(e.value) == (
        "an order at 2024-01-03 sizes more than 1.8e308 shares (equity / price overflows "
        "a double): the smallest close that bar is 1.2e-304 for asset 'A0', with "
        "init_cash 100000; quote the prices in a smaller unit or start with less cash")


def test_an_overflowing_order_in_a_column_block_on_threads_is_named():
    # _by_accounts: blocks of columns on the pool; the error names the panel's asset
    ds, sig = _panel(1.0, m=40)
    ds["close"][:, 37] = PATH * 1e-305
    sig[2:, :] = 0.5
    with pytest.raises(ql.DataError, match="smallest close that bar is 1.2e-305 for asset "
                                           "'A37'"):
        ql.backtest(ds, sig, group=False, threads=2)


def test_the_largest_price_ratio_a_double_holds_still_trades_as_the_twin():
    # 1e5 / 1.2e-303 = 8.3e307 shares: finite, traded, and the same as the twin's
    ds, sig = _panel(1e-303)
    res = ql.backtest(ds, sig, group=False)
    assert np.isfinite(res.equity.values).all()
    assert res.positions.values[-1, 0] == pytest.approx(1e5 / 1.2e-303, rel=1e-12)
    close = ds["close"].values
    cols = np.arange(2, dtype=np.intp)
    args = (close, close, sig.values, np.zeros((6, 2)), np.zeros((6, 2)), 0.0, cols, cols,
            2, 1e5, np.zeros(2), np.zeros(2), 1.0, 1.0, False, False)
    got, want = _bt.simulate(*args), ref.backtest.simulate(*args)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)


def test_kernel_and_twin_stop_at_the_same_overflowing_row():
    ds, sig = _panel(1e-304)
    close = ds["close"].values
    cols = np.arange(2, dtype=np.intp)
    args = (close, close, sig.values, np.zeros((6, 2)), np.zeros((6, 2)), 0.0, cols, cols,
            2, 1e5, np.zeros(2), np.zeros(2), 1.0, 1.0, False, False)
    with pytest.raises(_bt.OrderOverflow) as got:
        _bt.simulate(*args)
    with pytest.raises(OverflowError) as want:
        ref.backtest.simulate(*args)
    assert got.value.args == want.value.args == (2,)


def test_a_deployment_step_names_the_overflowing_order():
    st = Stepper(BacktestOptions(init_cash=1e5), ["A", "B"])
    state = st.new_state()
    bar = {"close": np.array([1e-304, 20.0])}
    base, impact = st.slippage({"close": bar["close"][None]})
    with pytest.raises(ql.DataError, match=r"an order at 2024-01-02 sizes more than "
                                           r"1.8e308 shares .* 1e-304 for asset 'A'"):
        st.step(state, bar, np.array([1.0, 0.0]), base, impact,
                when=pd.Timestamp("2024-01-02"))


@pytest.mark.parametrize("tz", [None, "America/New_York"])
def test_dates_formats_as_the_scalar_strftime(tz):
    # fmt.dates (the tear sheet's trade and drawdown tables) against strftime one by one
    from quantlab import fmt

    rng = np.random.default_rng(5)
    ns = rng.integers(pd.Timestamp("1700-01-01").value, pd.Timestamp("2200-01-01").value,
                      3000)
    ns[::3] -= ns[::3] % (86400 * 10**9)          # midnights: the date alone
    t = pd.DatetimeIndex(ns).tz_localize("UTC")
    t = t.tz_convert(tz) if tz else t.tz_localize(None)
    vals = list(t) + [pd.NaT]

    def one(x):
        return ("open" if pd.isna(x) else x.strftime("%Y-%m-%d") if x == x.normalize()
                else x.strftime("%Y-%m-%d %H:%M"))
    assert fmt.dates(vals, missing="open") == [one(x) for x in vals]
    assert fmt.dates([]) == []
    assert [fmt.date(x) for x in vals[:50]] == fmt.dates(vals[:50])


def test_a_search_deflates_by_its_trials_that_never_traded():
    # optimize._guards: a flat trial's Sharpe is 0/0; it was dropped from the N trials
    # (and their variance), so the DSR deflated by fewer trials than the search ran
    from quantlab import integrity, optimize

    rng = np.random.default_rng(3)
    x = np.column_stack([rng.normal(0.001, 0.01, 500), rng.normal(0, 0.01, 500),
                         np.zeros(500), np.zeros(500), rng.normal(0.0005, 0.01, 500)])
    dsr, _, _ = optimize._guards(x, 0)
    sr = x.mean(0) / np.where(x.std(0, ddof=1) == 0, np.inf, x.std(0, ddof=1))
    assert sr[2] == sr[3] == 0
    want = integrity.deflated_sharpe_ratio(x[:, 0], n_trials=5,
                                           trials_sharpe_variance=float(sr.var(ddof=1)))
    assert dsr == pytest.approx(want, rel=1e-12)
    dropped = integrity.deflated_sharpe_ratio(x[:, 0], trial_sharpes=sr[[0, 1, 4]])
    assert abs(dsr - dropped) > 1e-3


def test_the_package_namespace_holds_only_its_public_names():
    # `from importlib import import_module` showed as ql.import_module in tab completion
    public = {n for n in dir(ql) if not n.startswith("_")}
    assert public <= set(ql.__all__) | {"errors"}, public - set(ql.__all__)


def test_make_test_keeps_a_notebooks_cells_in_one_worker():
    # nbval runs a notebook's cells in order in one kernel: under pytest-xdist the
    # default --dist load would spread them over workers (NameError in the later cells)
    import pathlib
    import re

    make = (pathlib.Path(__file__).parents[1] / "Makefile").read_text()
    recipe = make.split("\ntest:", 1)[1].split("\n\n", 1)[0].replace("\\\n", " ")
    line = next(s for s in recipe.splitlines() if "--nbval" in s)
    assert re.search(r"-n \$\(TEST_WORKERS\)", line) and "--dist loadscope" in line, line
