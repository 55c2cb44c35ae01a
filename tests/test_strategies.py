"""Strategy registry and the traditional strategies: API, no look-ahead, and a synthetic
market where each hypothesis holds by construction (so a wrong sign or noise fails)."""
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql

TRADITIONAL = ["cross_sectional_momentum", "volatility_regime", "liquidity_timing", "spc",
               "factor_momentum"]


def _market(r, volume=None):
    """Dataset from a (time, asset) array of returns (prices start at 100)."""
    n, m = r.shape
    close = 100 * np.cumprod(1 + r, axis=0)
    t = pd.bdate_range("2000-01-03", periods=n)
    data = {"close": (("time", "asset"), close)}
    if volume is not None:
        data["volume"] = (("time", "asset"), volume)
    return xr.Dataset(data, coords={"time": t, "asset": [f"S{i}" for i in range(m)],
                                    "asset_class": ("asset", ["equity"] * m)})


def test_registry_api():
    assert set(TRADITIONAL) <= set(ql.strategies.names())
    s = ql.strategies.get("momentum", lookback=126)  # the seed's alias
    assert s.name == "cross_sectional_momentum" and s.params["lookback"] == 126
    with pytest.raises(ValueError, match="Did you mean 'spc'"):
        ql.strategies.get("spcc")
    with pytest.raises(ValueError, match="unknown parameter.*'windw'"):
        ql.strategies.get("volatility_regime", windw=5)
    for name in TRADITIONAL:
        s = ql.strategies.get(name)
        assert s.__doc__ and "(" in s.__doc__  # hypothesis with a citation
        assert set(s.param_space) == set(s.defaults)


def test_register_user_strategy_and_lookahead_check_catches_cheats(registry):
    @ql.strategies.register
    class Peek(ql.strategies.Strategy):
        """Cheats on purpose: tomorrow's return decides today (for this test only)."""

        name = "peek_test"
        defaults = {"lag": 1}
        param_space = {"lag": (1, 5)}

        def _signal(self, ds, lag):
            nxt = ds["close"].shift(time=-lag) / ds["close"] - 1
            return xr.where(nxt > 0, 1.0, -1.0).where(nxt.notnull())

    ds = ql.data.load()
    s = ql.strategies.get("peek_test")
    assert "peek_test" in ql.strategies.names()
    with pytest.raises(AssertionError, match="looks ahead"):
        ql.testing.assert_no_lookahead(s, ds)


@pytest.mark.parametrize("name", TRADITIONAL)
def test_no_lookahead_and_signal_contract_on_real_data(name):
    ds = ql.data.load()
    s = ql.strategies.get(name)
    inputs = s.default_inputs(ds)
    sig = s.signal(ds, **inputs)
    assert sig.dims == ("time", "asset") and sig.name == "signal"
    v = sig.values[~np.isnan(sig.values)]
    assert v.size > 0 and v.min() >= -1 and v.max() <= 1
    ql.testing.assert_no_lookahead(s, ds)
    diag = s.diagnostics(ds, **inputs)
    assert isinstance(diag, xr.Dataset) and len(diag.data_vars) >= 2
    res = ql.backtest(ds, sig, fees=0.001, group=True)  # the strategy return stream
    assert np.isfinite(float(res.metrics()["sharpe_ratio"]))


def test_list_parameters_become_dims():
    ds = ql.data.load()
    sig = ql.strategies.get("cross_sectional_momentum", lookback=[63, 252], quantile=0.25).signal(ds)
    assert sig.dims == ("time", "asset", "lookback")
    one = ql.strategies.get("cross_sectional_momentum", lookback=252, quantile=0.25).signal(ds)
    np.testing.assert_array_equal(sig.sel(lookback=252).values, one.values)
    two = ql.strategies.get("volatility_regime", window=[10, 21], threshold=[0.7, 0.9]).signal(ds)
    assert two.dims == ("time", "asset", "window", "threshold")
    res = ql.backtest(ds, two, group=True)
    assert res.equity.dims == ("time", "window", "threshold")


def test_missing_data_variable_is_named():
    close_only = ql.data.load()[["close"]]
    with pytest.raises(ValueError, match=r"liquidity_timing needs data variable\(s\) \['volume'\]"):
        ql.strategies.get("liquidity_timing").signal(close_only)


def test_momentum_is_long_winners_short_losers_when_momentum_is_planted():
    rng = np.random.default_rng(0)
    drift = np.linspace(-0.001, 0.001, 6)  # persistent differences in expected return
    ds = _market(drift + rng.normal(0, 0.005, (600, 6)))
    sig = ql.strategies.get("cross_sectional_momentum", quantile=0.34).signal(ds)
    held = sig.ffill("time").isel(time=slice(300, None)).mean("time")
    assert float(held.sel(asset="S5")) > 0.9 and float(held.sel(asset="S0")) < -0.9
    res = ql.backtest(ds, sig, group=True)
    assert float(res.metrics()["total_return"]) > 0


def test_volatility_regime_cuts_exposure_in_volatile_times():
    rng = np.random.default_rng(1)
    sd = np.where((np.arange(800) // 100) % 2 == 0, 0.005, 0.03)  # calm / wild blocks
    ds = _market(rng.normal(0, 1, (800, 1)) * sd[:, None])
    sig = ql.strategies.get("volatility_regime", window=10, lookback=200).signal(ds)
    s = sig.isel(asset=0).values
    calm, wild = s[(sd == 0.005) & ~np.isnan(s)][50:], s[(sd == 0.03) & ~np.isnan(s)][50:]
    assert calm.mean() > 0.6 and wild.mean() < 0.35


def test_liquidity_timing_steps_out_when_liquidity_dries_up():
    rng = np.random.default_rng(2)
    n = 700
    vol = np.full((n, 1), 1e6)
    vol[500:560] = 1e4  # a liquidity drought
    ds = _market(rng.normal(0, 0.01, (n, 1)), volume=vol)
    sig = ql.strategies.get("liquidity_timing", window=10, lookback=250).signal(ds).isel(asset=0)
    assert float(sig.isel(time=slice(515, 560)).mean()) < 0.1
    assert float(sig.isel(time=slice(300, 490)).mean()) > 0.7


def test_spc_follows_a_mean_shift():
    rng = np.random.default_rng(3)
    r = rng.normal(0, 0.01, (900, 2))
    r[600:, 0] += 0.01   # S0's mean jumps up by one sigma (k = 0.5 tunes CUSUM to 1-sigma shifts)
    r[600:, 1] -= 0.01   # S1's mean jumps down
    sig = ql.strategies.get("spc").signal(_market(r))  # a year of EWMA baseline
    after = sig.isel(time=slice(600, 700)).mean("time")  # detected within 100 bars
    before = sig.isel(time=slice(300, 600))
    assert float(after.sel(asset="S0")) > 0.5 and float(after.sel(asset="S1")) < -0.5
    assert float(abs(before).mean()) < 0.05  # in control: flat
    # the baseline then re-adapts: a shift is news only while it is new
    assert float(abs(sig.isel(time=slice(800, 900))).mean()) < 0.5


def test_factor_momentum_follows_factor_trends_through_betas():
    rng = np.random.default_rng(4)
    months = pd.period_range("2001-01", periods=96, freq="M")
    mkt = rng.normal(0.01, 0.03, 96)          # the market trends up: positive momentum
    smb = rng.normal(-0.01, 0.02, 96)         # size trends down: negative momentum
    hml = rng.normal(0.0, 0.02, 96)
    factors = xr.Dataset({k: ("time", v) for k, v in
                          {"mkt_rf": mkt, "smb": smb, "hml": hml, "rf": np.zeros(96)}.items()},
                         coords={"time": months.to_timestamp()})
    betas = np.array([[1.0, 1.0, 0.0],     # S0: market + small caps
                      [1.0, -1.5, 0.0],    # S1: market, big caps (short size)
                      [-1.0, 1.0, 0.0]])   # S2: short market, small caps
    monthly = np.column_stack([(np.column_stack([mkt, smb, hml]) @ b)
                               + rng.normal(0, 0.005, 96) for b in betas])
    days = pd.bdate_range("2001-01-01", "2008-12-31")
    m_of_day = days.to_period("M")
    per_day = np.vstack([(1 + monthly[months.get_loc(p)]) ** (1 / (m_of_day == p).sum()) - 1
                         for p in m_of_day])
    close = 100 * np.cumprod(1 + per_day, axis=0)
    ds = xr.Dataset({"close": (("time", "asset"), close)},
                    coords={"time": days, "asset": ["S0", "S1", "S2"]})
    s = ql.strategies.get("factor_momentum", beta_window=24)
    with pytest.raises(ValueError, match=r"needs the external input\(s\) \['factors'\]"):
        s.signal(ds)
    late = s.signal(ds, factors=factors).isel(time=slice(-500, None)).mean("time")
    # market up, size down: S1 (long market, short size) is the best bet, S2 the worst
    assert float(late.sel(asset="S1")) > 0.5
    assert float(late.sel(asset="S2")) < -0.5
    full = s.signal(ds, factors=factors)
    cut = ds.isel(time=slice(0, 1500))
    np.testing.assert_array_equal(s.signal(cut, factors=factors).isel(time=-1).values,
                                  full.isel(time=1499).values)


# ---- parameter checks: one place (Strategy._check_param), for every strategy
def _bad_values(cls, key):
    """Values of ``key`` that ``cls`` must refuse, generated from its declared defaults,
    param_space and limits (so a newly registered strategy is covered automatically)."""
    default, space, lim = cls.defaults[key], cls.param_space[key], cls.limits.get(key)
    if isinstance(default, str):
        return (["no_such_choice"] if isinstance(lim, list) else []) + [3, None]
    bad = [np.nan, np.inf, -np.inf, "5", None, True]
    lo = (lim.get("lo") if isinstance(lim, dict) else lim[0]) if lim is not None else None
    hi = (lim.get("hi") if isinstance(lim, dict) else lim[1]) if lim is not None else None
    if isinstance(default, int):
        bad += [2.5, 10 ** 400]
        if lo is None and space[0] >= 0:
            lo = 1 if space[0] >= 1 else 0
        if lo is not None:
            bad.append(lo - 1)
        if lo is not None and lo > 0:
            bad.append(-3)
        bad.append((hi if hi is not None else ql.strategies.MAX_BARS) + 1)
    else:
        bad.append(10 ** 400)                   # beyond float range: not an OverflowError
        if lo is not None:
            bad += [lo - 0.01, -1e9]
        if hi is not None:
            bad += [hi + 0.01, 1e9]
    return bad


CASES = [(name, key, bad) for name in ql.strategies.names()
         for key in ql.strategies.get(name).defaults
         for bad in _bad_values(type(ql.strategies.get(name)), key)]


@pytest.mark.parametrize("name, key, bad", CASES,
                         ids=[f"{n}-{k}-{b!r}" for n, k, b in CASES])
def test_every_strategy_refuses_a_bad_value_of_every_parameter(name, key, bad):
    cls = type(ql.strategies.get(name))
    shown = repr(bad) if len(repr(bad)) <= 60 else repr(bad)[:40]  # long values are shortened
    pattern = rf"{name}.*'{key}'.*got {re.escape(shown)}"
    with pytest.raises((ValueError, TypeError), match=pattern):
        ql.strategies.get(name, **{key: bad})
    with pytest.raises((ValueError, TypeError), match=pattern):   # in a list: each element
        ql.strategies.get(name, **{key: [cls.defaults[key], bad]})


@pytest.mark.parametrize("name", ql.strategies.names())
def test_defaults_and_param_space_ends_are_valid_parameters(name):
    """The optimisers, sweeps and notebooks draw from param_space: all of it must pass."""
    cls = type(ql.strategies.get(name))
    for key, space in cls.param_space.items():
        values = list(space) if isinstance(space, list) else [
            type(cls.defaults[key])(space[0]), type(cls.defaults[key])(space[1])]
        s = ql.strategies.get(name, **{key: values})
        assert s.params[key] == values


def test_parameters_are_converted_to_their_declared_type():
    s = ql.strategies.get("volatility_regime", window=np.int64(10), lookback=126.0,
                          threshold=1, target_vol=np.float32(0.25))
    assert s.params == {"window": 10, "lookback": 126, "threshold": 1.0, "target_vol": 0.25}
    assert type(s.params["lookback"]) is int and type(s.params["threshold"]) is float
    s = ql.strategies.get("volatility_regime", window=np.array([10, 21]))
    assert s.params["window"] == [10, 21]
    with pytest.raises(ValueError, match="'window' repeats a value"):
        ql.strategies.get("volatility_regime", window=[10, 10.0])
    with pytest.raises(ValueError, match="'window' is an empty list"):
        ql.strategies.get("volatility_regime", window=[])


@pytest.mark.parametrize("name, params, match", [
    ("cross_sectional_momentum", dict(lookback=63, skip=63), r"skip \(63\) must be < lookback"),
    ("cross_sectional_momentum", dict(lookback=[252, 21], skip=21), r"skip \(21\) must be <"),
    ("volatility_regime", dict(window=63, lookback=21), r"lookback \(21\) must be >= window"),
    ("liquidity_timing", dict(window=[5, 63], lookback=42), r"lookback \(42\) must be >= window"),
])
def test_parameter_combinations_that_cannot_work_are_refused(name, params, match):
    with pytest.raises(ValueError, match=match):
        ql.strategies.get(name, **params)


def test_cross_sectional_momentum_negative_skip_is_refused_not_lookahead():
    from quantlab.testing import assert_no_lookahead

    rng = np.random.default_rng(3)
    ds = _market(rng.normal(0.0005, 0.01, (160, 6)))
    with pytest.raises(ValueError, match=r"cross_sectional_momentum parameter 'skip' must be "
                                         r"an integer >= 0, got -3 \(.*look-ahead\)"):
        ql.strategies.get("cross_sectional_momentum", lookback=63, skip=-3)
    with pytest.raises(ValueError, match=r"'skip' value must be an integer >= 0, got -3"):
        ql.strategies.get("cross_sectional_momentum", lookback=63, skip=[0, -3])
    ok = ql.strategies.get("cross_sectional_momentum", lookback=63, skip=0, hold=1)
    assert_no_lookahead(ok, ds, n_cuts=4)                # skip = 0 uses p[t]: allowed
    cheat = ql.strategies.get("cross_sectional_momentum", lookback=63, skip=0, hold=1)
    cheat.params["skip"] = -3                           # what the check used to let through
    with pytest.raises(AssertionError, match="looks ahead"):
        assert_no_lookahead(cheat, ds, n_cuts=4)


def test_sweep_uses_the_strategy_checks_for_its_grid(equities):
    for grid, match in [({"hold": [21, 0]}, r"cross_sectional_momentum grid\['hold'\] value "
                                            r"must be an integer >= 1, got 0"),
                        ({"quantile": [0.3, 0.7]}, r"grid\['quantile'\] value must be in "
                                                   r"\[0.0, 0.5\], got 0.7"),
                        ({"skip": [21, 300]}, r"skip \(300\) must be < lookback \(252\)")]:
        with pytest.raises(ValueError, match=match):
            ql.sweep("cross_sectional_momentum", equities, grid, progress=False)


@pytest.mark.parametrize("make", [lambda ds: ds.drop_vars("time"),
                                  lambda ds: ds.rename(asset="ticker"),
                                  lambda ds: ds.rename(time="date")])
@pytest.mark.parametrize("name", ["spc", "cross_sectional_momentum"])
def test_signal_on_data_without_time_or_asset_coords_is_a_data_error(make, name, equities):
    with pytest.raises(ql.DataError, match=f"{name} data has"):
        ql.strategies.get(name).signal(make(equities))


@pytest.mark.parametrize("make, exc, match", [
    (lambda f: f.to_dataframe(), TypeError, "factors must be an xarray Dataset"),
    (lambda f: f.assign_coords(time=np.arange(f.sizes["time"])), ql.DataError,
     "time index must hold dates"),
    (lambda f: f.drop_vars("time"), ql.DataError, "no 'time' coordinate|but no 'time'"),
    (lambda f: f.rename(time="date"), ql.DataError, "no 'time' dimension"),
    (lambda f: f.isel(time=slice(None, None, -1)), ql.DataError, "must be increasing"),
    (lambda f: f.assign_coords(time=f.indexes["time"].tz_localize("UTC")), ql.DataError,
     "timezone-aware"),
    (lambda f: f.assign_coords(time=pd.date_range("2000-01-03", periods=f.sizes["time"])),
     ql.DataError, "must be monthly"),
    (lambda f: f[["rf"]], ql.DataError, "must hold Fama-French returns"),
    (lambda f: f.assign(smb=f["smb"].astype(str)), TypeError, r"factors\['smb'\] must be numeric"),
])
def test_factor_momentum_factors_with_a_wrong_index_are_a_clear_error(make, exc, match,
                                                                       equities):
    s = ql.strategies.get("factor_momentum")
    factors = s.default_inputs(equities)["factors"]
    with pytest.raises(exc, match=f"factor_momentum.*({match})"):
        s.signal(equities, factors=make(factors))


def test_huge_window_is_refused_before_allocating_not_a_memory_error(equities):
    # windows of 10**12 bars made the rolling kernels ask for terabytes (MemoryError);
    # up to MAX_BARS a window longer than the data is simply no signal yet (NaN)
    with pytest.raises(ValueError, match=r"fractal_chaos parameter 'window' must be an "
                                         r"integer <= 1000000 .*got 1000000000000"):
        ql.strategies.get("fractal_chaos", window=10 ** 12)
    ds = equities.isel(time=slice(0, 60))
    for name in ("quantum", "sentiment_regime", "info_theory"):
        key = "anchor_window" if name == "sentiment_regime" else "window"
        s = ql.strategies.get(name, **{key: ql.strategies.MAX_BARS})
        if name == "sentiment_regime":
            ds = ql.data.load("sp500_20").isel(time=slice(0, 60))
        sig = s.signal(ds)
        assert sig.sizes["time"] == 60 and int(sig.notnull().sum()) == 0


def test_factor_momentum_on_data_with_a_non_date_time_index_is_a_data_error(equities):
    s = ql.strategies.get("factor_momentum")
    factors = s.default_inputs(equities)["factors"]
    bad = equities.assign_coords(time=np.arange(equities.sizes["time"]))
    with pytest.raises(ql.DataError, match="factor_momentum: data's time index must hold dates"):
        s.signal(bad, factors=factors)
    with pytest.raises(ql.DataError, match="factor_momentum data has no 'time'"):
        s.default_inputs(equities.rename(time="date"))


ALL = TRADITIONAL + ["attention", "sentiment_regime", "info_theory", "complex_systems",
                     "fractal_chaos", "quantum"]


@pytest.mark.parametrize("name", ALL)
def test_data_with_asset_time_dim_order_gives_the_time_asset_signal(name, equities):
    # the pandas cross-sectional ranks read the array as (time, asset): a Dataset stored
    # (asset, time) ranked each asset over time instead, without an error
    ds = equities.isel(time=slice(-700, None))
    s = ql.strategies.get(name)
    inputs = s.default_inputs(ds)
    want = s.signal(ds, **inputs)
    got = s.signal(ds.transpose("asset", "time"), **inputs)
    xr.testing.assert_identical(got, want)
    xr.testing.assert_identical(s.diagnostics(ds.transpose("asset", "time"), **inputs),
                                s.diagnostics(ds, **inputs))


@pytest.mark.parametrize("make, match", [
    (lambda ds: ds.isel(asset=[0, 1, 0, 2, 3]), "duplicate asset 'AAPL'"),
    (lambda ds: ds.isel(time=np.r_[np.arange(5, 600), np.arange(5)]),
     "time must be strictly increasing; 2000-03-01 00:00:00 comes after"),
    (lambda ds: ds.isel(time=np.r_[np.arange(300), np.arange(299, 600)]),
     "time must be strictly increasing; .* comes after"),
    (lambda ds: ds.assign_coords(time=np.arange(600)[::-1]),
     "time must be strictly increasing; 598 comes after 599"),
])
@pytest.mark.parametrize("name", ALL)
def test_repeated_assets_or_unsorted_repeated_times_are_a_data_error(make, match, name,
                                                                      equities):
    # windows count bars and ranks compare assets: these gave numbers, no error
    s = ql.strategies.get(name)
    ds = equities.isel(time=slice(0, 600))
    inputs = s.default_inputs(ds)
    with pytest.raises(ql.DataError, match=f"{name}: {match}"):
        s.signal(make(ds), **inputs)


@pytest.mark.parametrize("make", [lambda t: np.arange(len(t)),
                                  lambda t: pd.DatetimeIndex(t).tz_localize("UTC")])
def test_factor_momentum_default_inputs_of_non_date_or_zoned_times_is_a_data_error(make,
                                                                                   equities):
    # a bare "Invalid comparison between dtype=datetime64 and int64" before
    s = ql.strategies.get("factor_momentum")
    bad = equities.assign_coords(time=make(equities.indexes["time"]))
    with pytest.raises(ql.DataError, match="factor_momentum: data's time index"):
        s.default_inputs(bad)


@pytest.mark.parametrize("name", [None, 5, ["spc"]])
def test_a_strategy_name_that_is_not_a_string_is_a_type_error_naming_it(name):
    # None and 5 were a bare "'NoneType' object is not iterable" from difflib
    with pytest.raises(TypeError, match="strategy name must be a string"):
        ql.strategies.get(name)


@pytest.mark.parametrize("name, near", [("SPC", "spc"), (" Quantum ", "quantum"),
                                        ("Cross_Sectional_Momentum", "cross_sectional_momentum")])
def test_a_near_miss_in_case_or_spaces_suggests_the_name(name, near):
    with pytest.raises(ValueError, match=f"unknown strategy {name!r}. Did you mean {near!r}"):
        ql.strategies.get(name)


@pytest.mark.parametrize("make, exc, match", [
    (lambda c: c.astype(str), TypeError, "data variable 'close' must be numeric"),
    (lambda c: c + 0j, TypeError, "data variable 'close' is complex"),
    (lambda c: c.astype("int64").astype("datetime64[ns]"), TypeError,
     "data variable 'close' holds datetime64"),
    (lambda c: c.expand_dims(x=2), ql.DataError,
     r"data variable 'close' has dims \('x', 'time', 'asset'\)"),
])
@pytest.mark.parametrize("name", ALL)
def test_a_price_variable_of_the_wrong_kind_is_refused_naming_it(make, exc, match, name,
                                                                  equities):
    # a bare pandas 'Unsupported dtype for fill operation', a ZeroDivisionError, a
    # transpose error deep inside before
    s = ql.strategies.get(name)
    ds = equities.isel(time=slice(-300, None))
    inputs = s.default_inputs(ds)
    with pytest.raises(exc, match=f"{name}: {match}"):
        s.signal(ds.assign(close=make(ds["close"])), **inputs)


@pytest.mark.parametrize("name", ALL)
def test_an_empty_panel_is_a_data_error(name, equities):
    s = ql.strategies.get(name)
    for ds, sizes in ((equities.isel(time=[]), "time=0"), (equities.isel(asset=[]), "asset=0")):
        with pytest.raises(ql.DataError, match=f"{name}: empty data set .*{sizes}"):
            s.signal(ds, **(s.default_inputs(ds) if ds.sizes["time"] else {}))
    if name == "factor_momentum":     # an IndexError before
        with pytest.raises(ql.DataError, match="empty data set"):
            s.default_inputs(equities.isel(time=[]))


@pytest.mark.parametrize("name", ALL)
def test_float16_and_integer_prices_give_the_float64_signal_of_the_same_values(name,
                                                                              equities):
    # float16 was a NotImplementedError from bottleneck's fill in most strategies
    s = ql.strategies.get(name)
    ds = equities.isel(time=slice(-600, None))
    inputs = s.default_inputs(ds)
    for dtype in ("float16", "int64"):
        close = (ds["close"] * 10).round().astype(dtype)   # vs the same values as float64
        want = s.signal(ds.assign(close=close.astype("float64")), **inputs)
        xr.testing.assert_identical(s.signal(ds.assign(close=close), **inputs), want)
