"""BacktestResult.metrics()' own quantities on their fast paths (session 48): exposure in
one kernel pass, returns in place, per-account sums by bincount, open trades marked at the
last valid close found from the end -- each against the xarray/pandas formula it replaced."""
import dataclasses

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab._kernels import backtest as _k
from quantlab.backtesting.options import last_valid


def _panel(rng, n, m, holes=0.2, lead=5):
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, m)), axis=0))
    close[rng.random((n, m)) < holes] = np.nan
    close[:lead, 0] = np.nan                   # no price yet: a position is worth 0
    if m > 2:
        close[n // 2:, 2] = np.nan             # delisted: marked at its last close
    t = pd.date_range("2020-01-01", periods=n, freq="D")
    return xr.Dataset({"close": (("time", "asset"), close)},
                      coords={"time": t, "asset": [f"A{i}" for i in range(m)],
                              "asset_class": ("asset", ["equity"] * m)})


def _exposure_xarray(res):
    """The formula metrics() used until session 48, over the bars with a return (no
    observation: no bar of the mean, since session 57)."""
    value = (res.positions * res.prices.ffill("time")).fillna(0.0)
    gross = abs(value).sum("asset") if res.group else abs(value)
    ratio = (gross / res.equity).where(gross != 0, 0.0)
    return ratio.where(res.returns.notnull()).mean("time")


def _per_account_pandas(frame, col, how, zero):
    keys = list(zero.dims)
    if frame.empty:
        return zero.copy()
    s = frame.groupby(keys)[col].agg(how) if keys else frame[col].agg(how)
    if not keys:
        return xr.full_like(zero, float(s))
    return zero + xr.DataArray.from_series(s).reindex_like(zero).fillna(0.0)


@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("params", [False, True])
def test_metrics_equal_the_xarray_and_pandas_formulas(group, params):
    rng = np.random.default_rng(7 + group + 2 * params)
    ds = _panel(rng, 300, 5)
    raw = rng.choice([-0.6, 0.0, 0.4, np.nan], size=(300, 5), p=[0.2, 0.3, 0.3, 0.2])
    sig = xr.DataArray(raw, dims=("time", "asset"), coords=ds["close"].coords)
    if params:   # a parameter dim (named "w": reserved while metrics() assigned a "w"
        # column to the trades table): accounts per (asset, w) or per w
        sig = xr.concat([sig, sig.shift(time=3), -sig], pd.Index([1, 2, 3], name="w"))
    res = ql.backtest(ds, sig, fees=0.002, group=group, periods=252)
    m = res.metrics()
    ref = _exposure_xarray(res)
    xr.testing.assert_allclose(m["exposure"], ref.transpose(*m["exposure"].dims),
                               rtol=1e-12, atol=0)
    assert set(m["exposure"].coords) == set(ref.coords)   # the asset_class coord too
    assert (m["exposure"] > 0).all()   # every account held something
    zero = xr.zeros_like(m["sharpe_ratio"])
    tr, o = res.trades, res.orders_frame
    o = o.assign(_traded=o["size"].abs() * o["price"])
    np.testing.assert_array_equal(m["n_trades"], _per_account_pandas(tr, "pnl", "count", zero))
    for name, frame, col in [("fees_paid", o, "fee")]:
        np.testing.assert_allclose(m[name], _per_account_pandas(frame, col, "sum", zero),
                                   rtol=1e-13)
    # mean equity over the bars with a return (a late listing's cash bars: none)
    turnover = (_per_account_pandas(o, "_traded", "sum", zero)
                / res.equity.where(res.returns.notnull()).mean("time"))
    np.testing.assert_allclose(m["turnover"], turnover, rtol=1e-13)
    wins = _per_account_pandas(tr.assign(_w=tr["pnl"] > 0), "_w", "sum", zero)
    np.testing.assert_allclose(m["trade_win_rate"], wins / m["n_trades"], rtol=1e-13)
    gp = _per_account_pandas(tr.assign(_g=tr["pnl"].clip(lower=0)), "_g", "sum", zero)
    gl = _per_account_pandas(tr.assign(_g=-tr["pnl"].clip(upper=0)), "_g", "sum", zero)
    np.testing.assert_allclose(m["trade_profit_factor"], gp / gl, rtol=1e-12)


def test_mean_exposure_kernel_edges_against_the_formula():
    """0 equity with a position (inf), 0 equity without (0/0 counts 0), a NaN equity bar
    (skipped), an account NaN throughout (NaN), and a (time, asset) price NaN at first."""
    q = np.array([[1.0, 0.0, 2.0], [1.0, 0.0, 2.0], [0.0, 0.0, 2.0], [3.0, 0.0, 2.0]])
    p = np.array([[np.nan, 5.0], [10.0, 5.0], [np.nan, np.nan], [11.0, 6.0]])
    eq = np.array([[100.0, 50.0, np.nan], [0.0, 0.0, np.nan], [90.0, 0.0, np.nan],
                   [np.nan, 40.0, np.nan]])
    asset = np.array([0, 1, 1], dtype=np.intp)
    group = np.arange(3, dtype=np.intp)
    out = _k.mean_exposure(q, p, eq, asset, group)
    # account 0: bars 0 (no price: 0), 1 (10/0 = inf), 2 (flat: 0), 3 (NaN equity: skip)
    assert out[0] == np.inf
    assert out[1] == 0.0                  # never a position, 0 equity included
    assert np.isnan(out[2])               # every bar's ratio NaN
    grouped = _k.mean_exposure(q[:, :2], p, eq[:, :1] + 1, asset[:2],
                               np.zeros(2, dtype=np.intp))
    # one account of columns 0 and 1 (column 1 flat): bar 0 no price (0), bar 1 10 / 1,
    # bar 2 flat (0), bar 3 33 / NaN skipped
    np.testing.assert_allclose(grouped, [(0 + 10 / 1 + 0) / 3], rtol=1e-15)
    with pytest.raises(ValueError, match="out of range"):
        _k.mean_exposure(q, p, eq, np.array([0, 1, 2], dtype=np.intp), group)
    with pytest.raises(ValueError, match="same bars"):
        _k.mean_exposure(q[:3], p, eq, asset, group)
    assert np.isnan(_k.mean_exposure(q[:0], p[:0], eq[:0], asset, group)).all()


def test_returns_in_place_equal_the_xarray_formula_bit_for_bit():
    rng = np.random.default_rng(3)
    ds = _panel(rng, 200, 4)
    sig = xr.DataArray(rng.choice([0.0, 0.5, 1.0], size=(200, 4)), dims=("time", "asset"),
                       coords=ds["close"].coords)
    res = ql.backtest(ds, sig, fees=0.001, periods=252)
    eq = res.equity.copy()
    eq[5, 1] = np.nan                      # the rule for a NaN equity: init_cash before it
    res = dataclasses.replace(res, equity=eq)
    prev = ql.data.shifted(eq).fillna(res.init_cash)
    ref = eq / prev - 1.0
    # no close and an unchanged equity: no observation (NaN)
    ref = ref.where(res.prices.notnull() | (ref != 0))
    assert ref.isnull().sum() > 1
    np.testing.assert_array_equal(res.returns.values, ref.values)
    assert res.returns.dims == ref.dims and res.returns.name == "returns"
    lazy = dataclasses.replace(res, equity=eq.chunk({"time": 50}))
    assert lazy.returns.chunks is not None        # a dask-backed result stays lazy
    np.testing.assert_array_equal(lazy.returns.values, ref.values)


@pytest.mark.parametrize("lazy", [False, True])
def test_last_valid_searches_back_as_far_as_a_column_needs(lazy):
    """Columns whose last valid value lies 0, 20, 100 and 999 rows back, one never valid;
    with and without ``prev``; a dask-backed panel the same."""
    close = np.arange(1000 * 5, dtype=np.float64).reshape(1000, 5)
    for c, back in enumerate([0, 20, 100, 999]):
        close[close.shape[0] - back:, c] = np.nan
    close[:, 4] = np.nan
    arr = xr.DataArray(close, dims=("time", "asset")).chunk({"time": 64}) if lazy else close
    valid = ~np.isnan(close)
    rows = close.shape[0] - 1 - valid[::-1].argmax(axis=0)
    want = np.where(valid.any(axis=0), close[rows, np.arange(5)], np.nan)
    np.testing.assert_array_equal(last_valid(arr, None), want)
    prev = np.full(5, -1.0)
    np.testing.assert_array_equal(last_valid(arr, prev), np.where(np.isnan(want), -1, want))
    assert (prev == -1).all()   # not changed in place


@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("rows", [1, 7, 64, 300])
def test_exposure_of_a_dask_backed_result_over_its_time_chunks(group, rows):
    """A dask-backed result's exposure: the kernel over its time chunks in turn, carrying
    the last prices (an asset delisted at bar 150 is valued at its last close in every
    later chunk) and each account's sum and count; lazy until computed; equal to the
    in-memory kernel and to the xarray formula."""
    import dask

    rng = np.random.default_rng(11)
    ds = _panel(rng, 300, 5)
    raw = rng.choice([-0.6, 0.0, 0.4, np.nan], size=(300, 5), p=[0.2, 0.3, 0.3, 0.2])
    sig = xr.DataArray(raw, dims=("time", "asset"), coords=ds["close"].coords)
    sig = xr.concat([sig, sig.shift(time=2)], pd.Index([1, 2], name="w"))
    res = ql.backtest(ds, sig, fees=0.002, group=group, periods=252)
    lazy = dataclasses.replace(
        res, equity=res.equity.chunk({"time": rows}), prices=res.prices.chunk({"time": rows}),
        positions=res.positions.chunk({"time": rows}))
    with dask.config.set(scheduler="sync"):
        got = lazy._exposure()
        assert got.chunks is not None                  # lazy
        np.testing.assert_allclose(got.values, res._exposure().values, rtol=1e-13)
    ref = _exposure_xarray(res).transpose(*got.dims)
    np.testing.assert_allclose(got.values, ref.values, rtol=1e-12)
    assert got.dims == res._exposure().dims


def test_mean_exposure_carry_equals_one_pass():
    rng = np.random.default_rng(5)
    q = rng.normal(size=(50, 4))
    p = np.where(rng.random((50, 3)) < 0.3, np.nan, rng.uniform(1, 2, (50, 3)))
    eq = rng.uniform(50, 100, (50, 2))
    asset = np.array([0, 1, 2, 2], dtype=np.intp)
    group = np.array([0, 0, 1, 1], dtype=np.intp)
    whole = _k.mean_exposure(q, p, eq, asset, group)
    carry = (np.full(3, np.nan), np.zeros(2), np.zeros(2))
    for t0, t1 in [(0, 1), (1, 20), (20, 20), (20, 50)]:
        part = _k.mean_exposure(q[t0:t1], p[t0:t1], eq[t0:t1], asset, group, carry)
    np.testing.assert_array_equal(part, whole)
    with pytest.raises(ValueError, match="carry is"):
        _k.mean_exposure(q, p, eq, asset, group, (np.zeros(2), np.zeros(2), np.zeros(2)))
