"""Per-bar signals of the traditional strategies (issue #27; protocol in
quantlab/strategies/_live.py): fed real data bar by bar, from the first bar and from a
later start (``history_start(t)``, as a deployment given that much history), every row
equals the full-history ``signal`` (rtol 1e-9, the same NaN pattern). Before, a
deployment recomputed the whole trailing window at every bar (33-50 ms at 500 assets,
O(all history) for spc and factor_momentum)."""
import numpy as np
import pandas as pd
import xarray as xr
import pytest

import quantlab as ql
from quantlab.strategies import traditional as trad


@pytest.fixture(scope="module")
def data():
    return {"equities": ql.data.load().isel(time=slice(0, 1100)),
            "sp500_20": ql.data.load("sp500_20").isel(time=slice(0, 700))}


def _rows(ds):
    return {v: ds[v].transpose("time", "asset").values for v in ds.data_vars}


def _feed(live, ds, start=0):
    """The live signal's output at each bar from ``start`` (i counted from bar 0)."""
    rows, times = _rows(ds), ds.time.values
    return np.array([live.update(i, times[i], {v: a[i] for v, a in rows.items()})
                     for i in range(start, ds.sizes["time"])])


def _full(s, ds):
    return s.signal(ds, **s.default_inputs(ds)).transpose("time", "asset").values


def _mismatches(got, want) -> int:
    """Rows x assets that differ: another NaN pattern or beyond rtol 1e-9."""
    same_nan = np.isnan(got) == np.isnan(want)
    close = np.isclose(got, want, rtol=1e-9, atol=0, equal_nan=True)
    return int((~(same_nan & close)).sum())


# defaults and two other parameter sets per strategy (short enough for the test data)
CASES = [
    ("volatility_regime", {}, "equities"),
    ("volatility_regime", {"window": 5, "lookback": 60, "threshold": 0.5}, "equities"),
    ("volatility_regime", {"window": 30, "lookback": 126, "target_vol": 0.3}, "sp500_20"),
    ("liquidity_timing", {}, "equities"),
    ("liquidity_timing", {"window": 1, "lookback": 40, "threshold": 0.6}, "equities"),
    ("liquidity_timing", {"window": 10, "lookback": 200, "threshold": 0.95}, "equities"),
    ("cross_sectional_momentum", {}, "sp500_20"),
    ("cross_sectional_momentum", {}, "equities"),
    ("cross_sectional_momentum", {"lookback": 60, "skip": 0, "quantile": 0.5, "hold": 1},
     "sp500_20"),
    ("cross_sectional_momentum", {"lookback": 120, "skip": 5, "quantile": 0.1, "hold": 7},
     "sp500_20"),
    ("spc", {}, "equities"),
    ("spc", {"span": 20, "k": 0.0, "h": 2.0}, "equities"),
    ("spc", {"span": 60, "k": 1.5, "h": 3.0}, "sp500_20"),
    ("factor_momentum", {}, "equities"),
    ("factor_momentum", {"lookback": 3, "beta_window": 12, "release_lag": 0}, "equities"),
    ("factor_momentum", {"lookback": 6, "beta_window": 12, "release_lag": 30}, "sp500_20"),
]


@pytest.mark.parametrize("name, params, data_name", CASES)
def test_live_signal_equals_the_full_history_signal_at_every_bar(name, params, data_name,
                                                                  data):
    ds = data[data_name]
    s = ql.strategies.get(name, **params)
    want = _full(s, ds)
    got = _feed(s.live(), ds)
    assert got.shape == want.shape
    assert _mismatches(got, want) == 0
    assert np.isfinite(want).sum() > 50 and (np.nan_to_num(want) != 0).any()  # not vacuous


@pytest.mark.parametrize("name, params, data_name",
                         [c for c in CASES if ql.strategies.get(c[0], **c[1]).warmup])
def test_live_signal_fed_from_a_later_start_equals_the_full_history_signal(
        name, params, data_name, data):
    """As a deployment whose history starts at history_start(t): rows t.. equal."""
    ds = data[data_name]
    s = ql.strategies.get(name, **params)
    t = ds.sizes["time"] - 150
    start = s.history_start(t)
    assert start > 0
    got = _feed(s.live(), ds, start)[t - start:]
    assert _mismatches(got, _full(s, ds)[t:]) == 0


def test_the_comparison_catches_a_wrong_window_and_a_wrong_rebalance_phase(data):
    """The checks above can fail: a live signal one bar too long, or rebalancing one bar
    late, differs from signal."""
    ds = data["equities"]
    want = _full(ql.strategies.get("volatility_regime"), ds)
    assert _mismatches(_feed(trad._VolRegimeLive(22, 252, 0.8, 0.15), ds), want) > 0
    s = ql.strategies.get("cross_sectional_momentum", lookback=60, skip=5, hold=7)
    late = s.live()
    rows, times = _rows(ds), ds.time.values
    got = np.array([late.update(i + 1, times[i], {v: a[i] for v, a in rows.items()})
                    for i in range(ds.sizes["time"])])
    assert _mismatches(got, _full(s, ds)) > 0


def test_live_signal_returns_bridge_a_gap_as_the_full_history_does(data):
    """An asset without bars for a while: its first return after the gap is measured from
    its last valid close, in the live signal as in ql.data.returns."""
    ds = data["equities"].isel(time=slice(0, 500)).copy(deep=True)
    for v in ds.data_vars:
        ds[v][300:305, 1] = np.nan
    for name, params in (("volatility_regime", {"window": 10, "lookback": 60}),
                         ("spc", {"span": 30}),
                         ("cross_sectional_momentum", {"lookback": 60, "hold": 1,
                                                        "skip": 0})):
        s = ql.strategies.get(name, **params)
        assert _mismatches(_feed(s.live(), ds), _full(s, ds)) == 0, name


def test_grid_parameters_have_no_live_signal():
    assert ql.strategies.get("spc", span=[20, 30]).live() is None
    assert ql.strategies.get("volatility_regime").live() is not None


# ---- factor_momentum month by month (issue #27: p99 <= 8 ms at 500 assets with years of
# history). Before, the live signal recomputed `signal` over every bar fed at each new
# usable month: 0.24 s at 20 assets and 2.4-4.9 s at 500 with 1,300 bars of history.

def _gbm_panel(n_assets, n_bars, seed=0, freq="B", end="2018-10-31"):
    """Closes (GBM) on dates inside the bundled factors' span, with assets listed late
    (NaN first), one asset without bars for a calendar month, and one calendar month
    without any bar (a resample bin with no close)."""
    rng = np.random.default_rng(seed)
    time = pd.date_range(end=end, periods=n_bars, freq=freq)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.02, (n_bars, n_assets)), axis=0))
    for j in range(0, n_assets, 3):              # every third asset starts late
        close[: (j * 37) % (n_bars // 2), j] = np.nan
    month = time.to_period("M")
    close[(month == month[n_bars // 2]), 1] = np.nan            # asset 1: a month off
    keep = month != month[n_bars // 3]                            # nobody: a month off
    ds = xr.Dataset({"close": (("time", "asset"), close[keep])},
                    coords={"time": time[keep], "asset": [f"S{i:03d}" for i in range(n_assets)]})
    return ds


def test_factor_momentum_live_at_500_assets_equals_the_full_history_signal():
    """Late listings, an asset's missing month and a month without bars, release lags 0
    and 30, at 500 assets: every row as the full-history signal."""
    ds = _gbm_panel(500, 420, seed=3)
    for lag in (0, 30):
        s = ql.strategies.get("factor_momentum", lookback=3, beta_window=12, release_lag=lag)
        want = _full(s, ds)
        assert _mismatches(_feed(s.live(), ds), want) == 0, lag
        started = np.isfinite(want).any(axis=1)
        assert np.isfinite(want).sum() > 1000 and np.isnan(want[started]).any()   # late ones


def test_factor_momentum_live_over_13_years_never_recomputes_and_keeps_bounded_state(
        monkeypatch):
    """All 3,270 bundled bars, default parameters: equal to the full-history signal,
    without a call to ``signal`` (before: one over every bar fed, each month) and with
    at most beta_window + 1 months of returns kept (before: every close)."""
    ds = ql.data.load()
    s = ql.strategies.get("factor_momentum")
    want = _full(s, ds)
    live = s.live()
    monkeypatch.setattr(type(s), "signal", lambda *a, **k: pytest.fail("signal called"))
    got = _feed(live, ds)
    assert _mismatches(got, want) == 0
    assert np.isfinite(want).sum() > 5000
    assert 0 < len(live.excess) <= 37


def _state_bytes(live) -> int:
    """Bytes of the arrays a live signal holds (attributes, lists and dicts of them)."""
    def size(v):
        if isinstance(v, np.ndarray):
            return v.nbytes
        if isinstance(v, dict):
            return sum(size(x) for x in v.values())
        if isinstance(v, (list, tuple)):
            return sum(size(x) for x in v)
        return sum(size(x) for x in vars(v).values()) if hasattr(v, "__dict__") else 0
    return size(live)


@pytest.mark.parametrize("name, params", [
    ("factor_momentum", {"lookback": 3, "beta_window": 12}), ("spc", {"span": 30})])
def test_live_signals_reading_all_history_keep_state_that_does_not_grow_with_it(
        name, params, data):
    """warmup None strategies: a deployment running for years holds as much as one
    running for months (before: factor_momentum kept every close and time fed)."""
    ds = data["equities"]
    live, rows, times = ql.strategies.get(name, **params).live(), _rows(ds), ds.time.values
    size = {}
    for i in range(ds.sizes["time"]):
        live.update(i, times[i], {v: a[i] for v, a in rows.items()})
        if i + 1 in (550, 1100):
            size[i + 1] = _state_bytes(live)
    assert 0 < size[1100] <= size[550]


def test_factor_momentum_live_with_missing_and_nan_factor_months_equals_the_full_history():
    """Factors without rows for some months (the OLS window spans factor rows) and with
    a NaN value (that month is left out of the fits, as a NaN return is)."""
    ds = ql.data.load().isel(time=slice(0, 900))
    ff3 = ql.data.load("ff3")
    months = ff3.indexes["time"]
    drop = months.isin(pd.to_datetime(["2001-02-01", "2001-03-01", "2002-07-01"]))
    f = ff3.isel(time=~drop)
    f["smb"] = f["smb"].where(f.time != np.datetime64("2001-09-01"))
    for lag in (0, 5):
        s = ql.strategies.get("factor_momentum", lookback=3, beta_window=12, release_lag=lag)
        want = s.signal(ds, factors=f).transpose("time", "asset").values
        got = _feed(s.live(factors=f), ds)
        assert _mismatches(got, want) == 0, lag
        assert np.isfinite(want).sum() > 1000


def test_factor_momentum_nan_factor_month_is_left_out_of_the_fit_not_an_svd_error():
    """Before: np.linalg.lstsq raised 'SVD did not converge' (LAPACK noise on stderr)."""
    ds = ql.data.load().isel(time=slice(0, 900))
    f = ql.data.load("ff3").sel(time=slice("1995-01-01", "2004-01-01"))
    bad = np.datetime64("2001-09-01")
    f["hml"] = f["hml"].where(f.time != bad)
    s = ql.strategies.get("factor_momentum", lookback=3, beta_window=12, release_lag=0)
    beta = s.diagnostics(ds, factors=f)["beta"]
    # the betas usable from 2002-01-31: the fit over Feb..Dec 2001 without September
    got = beta.sel(time="2002-02-01").isel(asset=0).values
    close = ds["close"].isel(asset=0).to_pandas().ffill().resample("ME").last()
    r = close.pct_change(fill_method=None)
    r.index = r.index.to_period("M")
    fm = f.to_dataframe()
    fm.index = fm.index.to_period("M")
    win = pd.period_range("2001-02", "2002-01", freq="M").drop(pd.Period("2001-09", "M"))
    y = (r - fm["rf"]).loc[win].to_numpy()
    x = np.column_stack([np.ones(len(win)), fm.loc[win, ["mkt_rf", "smb", "hml"]]])
    np.testing.assert_allclose(got, np.linalg.lstsq(x, y, rcond=None)[0][1:], rtol=1e-12)


def test_factor_momentum_live_follows_the_months_close_on_its_last_day_with_lag_0():
    """Several bars on a month's last calendar day with release_lag 0: that month's
    betas are usable and move with each bar's close (before: frozen at the first)."""
    base = _gbm_panel(4, 420, seed=5, freq="D")
    t = base.indexes["time"]
    last_day = t[t.is_month_end]
    extra = base.sel(time=last_day)
    extra = [extra.assign_coords(time=last_day + pd.Timedelta(hours=h)) * m
             for h, m in ((6, 1.03), (12, 0.96))]
    ds = xr.concat([base, *extra], "time").sortby("time")
    s = ql.strategies.get("factor_momentum", lookback=3, beta_window=8, release_lag=0)
    got = _feed(s.live(), ds)
    times = ds.indexes["time"]
    idx = [i for i in np.flatnonzero(times.is_month_end) if i > ds.sizes["time"] * 0.6]
    inputs = s.default_inputs(ds)
    want = np.array([s.signal(ds.isel(time=slice(0, i + 1)), **inputs).values[-1]
                     for i in idx])
    assert _mismatches(got[idx], want) == 0
    assert np.isfinite(want).sum() > 20 and (want[1::3] != want[0::3]).any()


def test_factor_momentum_live_refuses_malformed_factors_when_built():
    s = ql.strategies.get("factor_momentum")
    with pytest.raises(TypeError, match="factor_momentum: factors must be an xarray Dataset"):
        s.live(factors=[0.01, 0.02])
    with pytest.raises(ql.DataError, match="must hold Fama-French returns"):
        s.live(factors=ql.data.load("ff3")[["rf"]])


def test_factor_momentum_deployment_restored_from_its_bars_continues_bit_for_bit(tmp_path):
    ds = ql.data.load().isel(time=slice(0, 760))
    hist, bars = ds.isel(time=slice(0, 500)), ds.isel(time=slice(500, None))
    params = {"lookback": 3, "beta_window": 12}
    whole = ql.deploy("factor_momentum", params, history=hist, fees=0.001).replay(bars)
    part = ql.deploy("factor_momentum", params, history=hist, fees=0.001)
    part.replay(bars.isel(time=slice(0, 130)))
    part.checkpoint(tmp_path / "ck")
    back = ql.Deployment.restore(tmp_path / "ck").replay(bars.isel(time=slice(130, None)))
    np.testing.assert_array_equal(back.signal.values, whole.signal.values)
    np.testing.assert_array_equal(back.equity.values, whole.equity.values)
    assert np.isfinite(whole.signal.values).sum() > 500


@pytest.mark.parametrize("variant", ["float32", "mkt_rf only", "no rf"])
def test_factor_momentum_live_with_other_factor_sets_equals_the_full_history(variant):
    ds = ql.data.load().isel(time=slice(0, 700))
    f = ql.data.load("ff3")
    f = {"float32": f.astype("float32"), "mkt_rf only": f[["mkt_rf", "rf"]],
         "no rf": f.drop_vars("rf")}[variant]
    s = ql.strategies.get("factor_momentum", lookback=3, beta_window=12)
    want = s.signal(ds, factors=f).transpose("time", "asset").values
    assert _mismatches(_feed(s.live(factors=f), ds), want) == 0
    assert np.isfinite(want).sum() > 1000


def test_factor_momentum_live_refed_from_keep_since_continues_as_the_full_feed(data):
    """The bound a deployment's buffer could use (warmup None keeps every bar): refed
    from ``keep_since()`` -- about beta_window + 1 months of bars, whatever the history
    -- the live signal gives the same values as the one fed from the first bar."""
    ds = ql.data.load()
    s = ql.strategies.get("factor_momentum")
    rows, times = _rows(ds), ds.time.values
    full = s.live()
    want = np.array([full.update(i, times[i], {v: a[i] for v, a in rows.items()})
                     for i in range(ds.sizes["time"])])
    for t0 in (1500, 3000):
        ref = s.live()
        _feed(ref, ds.isel(time=slice(0, t0 + 1)))
        start = int(np.searchsorted(times, ref.keep_since()))
        assert 700 < t0 + 1 - start < 850                # 37-38 months of daily bars
        got = _feed(s.live(), ds, start)[t0 - start:]
        assert _mismatches(got, want[t0:]) == 0
    assert s.live().keep_since() is None
