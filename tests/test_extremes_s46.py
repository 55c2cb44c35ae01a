"""Strategies at the edges of magnitude (session 46): every strategy of the registry on
panels scaled to 1e300 / 1e-300 prices and 1e300 / subnormal volumes gives the signal of
the unscaled panel (each is scale-invariant in price and volume by definition: returns,
ranks, z-scores, log volume), and ±inf in a required variable is a DataError naming it,
never inf-driven numbers."""
import warnings

import numpy as np
import pytest

import quantlab as ql
from quantlab.errors import DataError
from quantlab.strategies import traditional as trad

PRICES = ("open", "high", "low", "close")


@pytest.fixture(scope="module")
def equities():
    return ql.data.load().isel(time=slice(-700, None))


def _scaled(ds, price=1.0, volume=1.0):
    out = ds.copy()
    for v in PRICES:
        out[v] = ds[v] * price
    out["volume"] = ds["volume"] * volume
    return out


def _signal(s, ds):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return s.signal(ds, **s.default_inputs(ds)).transpose("time", "asset").values


def _same(got, want, rtol):
    assert (np.isnan(got) == np.isnan(want)).all(), "another NaN pattern"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


SCALES = {"prices x 1e300": (1e300, 1.0), "prices x 1e-300": (1e-300, 1.0),
          "volumes near 1e300": (1.0, 1e300 / 2.1e9), "subnormal volumes": (1.0, 1e-318),
          "prices x 1e300, volumes near 1e300": (1e300, 1e300 / 2.1e9),
          "prices x 1e-300, subnormal volumes": (1e-300, 1e-318),
          "prices x 1e300, volumes x 1e-300": (1e300, 1e-300)}


@pytest.mark.parametrize("case", list(SCALES))
@pytest.mark.parametrize("name", ql.strategies.names())
def test_a_panel_scaled_to_extreme_magnitudes_gives_the_unscaled_signal(name, case, equities):
    """liquidity_timing's dollar volume close x volume overflowed to inf at 1e300 prices
    (|r| / inf = 0: 652 of 2,800 decisions flipped to long) and underflowed to 0 at
    1e-300 prices x 1e-318 volumes (every decision NaN). The others already held; the
    quantum heuristic's KDE of standardised log prices moves in the last bits (1e-10)."""
    s = ql.strategies.get(name)
    price, volume = SCALES[case]
    ds = _scaled(equities, price, volume)
    assert np.isfinite(ds["volume"].values[~np.isnan(ds["volume"].values)]).all()
    _same(_signal(s, ds), _signal(s, equities), 1e-8)


@pytest.mark.parametrize("case", ["prices x 1e300, volumes near 1e300",
                                  "prices x 1e-300, subnormal volumes"])
def test_liquidity_timing_live_signal_equals_the_signal_at_extreme_magnitudes(case, equities):
    """The deployment's per-bar liquidity_timing had the same overflow: its rows equal
    the full-history signal's on the scaled panel (and the unscaled one's)."""
    s = ql.strategies.get("liquidity_timing", window=10, lookback=120)
    ds = _scaled(equities, *SCALES[case])
    rows = {v: ds[v].transpose("time", "asset").values for v in ("close", "volume")}
    live = s.live()
    got = np.array([live.update(i, t, {v: a[i] for v, a in rows.items()})
                    for i, t in enumerate(ds.time.values)])
    _same(got, _signal(s, equities), 0)


def test_liquidity_diagnostic_is_the_true_illiquidity(equities):
    """The rescaling is internal: the reported Amihud illiquidity is |r| / dollar volume
    as before (2**k exact), not the scaled number."""
    s = ql.strategies.get("liquidity_timing")
    d = s.diagnostics(equities)["amihud_illiquidity"]
    dollar = equities["close"] * equities["volume"]
    want = ql.rolling.mean(abs(ql.data.returns(equities["close"])) / dollar, 21)
    np.testing.assert_allclose(d.values, want.transpose(*d.dims).values, rtol=1e-12)


def _with_inf(ds, var):
    out = ds.copy(deep=True)
    out[var][400, 1] = np.inf
    out[var][500, 2] = -np.inf
    return out


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("name", ql.strategies.names())
def test_an_infinite_price_or_volume_is_a_data_error_naming_it(name, chunked, equities):
    """±inf was taken as data: an inf close ranked top in cross_sectional_momentum, made
    |r| / dollar volume 0 in liquidity_timing, and gave numbers without an error in every
    strategy. It is refused as ql.data.validate refuses it, on a chunked panel when
    the chunk holding it is computed."""
    s = ql.strategies.get(name)
    for var in [v for v in ("close", "volume") if v in s.requires]:
        ds = _with_inf(equities, var)
        inputs = s.default_inputs(ds)
        if chunked:
            ds = ds.chunk({"time": 100, "asset": 2})
        with pytest.raises(DataError, match=f"{name}: data variable '{var}' has .*infinite"
                                            r".* of asset '\w+' at 20\d\d-"):
            s.signal(ds, **inputs).compute()


def test_a_float32_panel_is_computed_like_its_float64_values(equities):
    f32 = equities.astype(np.float32)
    for name in ("volatility_regime", "liquidity_timing", "cross_sectional_momentum"):
        s = ql.strategies.get(name)
        got = _signal(s, f32)
        want = _signal(s, f32.astype(np.float64))
        _same(got, want, 1e-5)


# ---- the tick engine's bars: late ticks are counted and said, locked quotes taken

def _tick(**kw):
    base = {"symbol_id": [0], "bid_price": [10.0], "ask_price": [10.2], "bid_size": [2.0],
            "ask_size": [3.0], "timestamp": [0]}
    n = max(len(v) for v in kw.values())
    return {**{k: v * n for k, v in base.items()}, **{k: list(v) for k, v in kw.items()}}


def test_late_ticks_are_counted_per_asset_with_their_volume_and_logged_once(caplog):
    """A tick for a bar already handed on was dropped with only a total count: which
    asset lost how much volume was not said anywhere. Now per asset (ticks, volume) and
    one warning on the engine's logger at the first one."""
    from quantlab.engine import BarAggregator
    agg = BarAggregator("1min", ["A", "B"], unit="s")
    agg.add(_tick(symbol_id=[0, 1], timestamp=[1, 2]))
    assert len(agg.add(_tick(symbol_id=[0], timestamp=[61]))) == 1   # minute 0 handed on
    with caplog.at_level("WARNING", logger="quantlab.engine"):
        agg.add(_tick(symbol_id=[1, 1, 0], timestamp=[5, 30, 62], bid_size=[4, 1, 1],
                      ask_size=[1, 1, 1]))
        agg.add(_tick(symbol_id=[0], timestamp=[10], bid_size=[7], ask_size=[0]))
    assert agg.late == 3
    assert agg.late_ticks == {"A": 1, "B": 2}
    assert agg.late_volume == {"A": 7.0, "B": 7.0}
    warned = [r for r in caplog.records if "late" in r.getMessage()]
    assert len(warned) == 1 and "'B'" in warned[0].getMessage()
    (bar,) = agg.flush()                              # minute 1: the on-time ticks
    assert float(bar["volume"].sel(asset="A")) == 5.0 + 2.0


def test_the_engine_reports_late_ticks_in_its_stats_and_at_flush(caplog):
    import quantlab as ql
    from quantlab.engine import TickEngine
    ds = ql.data.load("equities").isel(time=slice(0, 70), asset=slice(0, 2))
    eng = TickEngine({"engine": {"max_symbols": 8, "timestamp_unit": "us"}})
    eng.load_strategy_params({"window": 15}, strategy="volatility_regime", bar="1D",
                             history=ds.isel(time=slice(0, 60)))
    assert eng.get_performance_stats()["late_ticks"] == {}
    day = 86_400 * 10 ** 6
    t0 = int(ds.time.values[60].astype("datetime64[us]").astype(np.int64))
    eng.process_ticks({k: np.asarray(v) for k, v in _tick(
        symbol_id=[0, 1, 0], timestamp=[t0, t0 + 1, t0 + day]).items()})
    with caplog.at_level("WARNING", logger="quantlab.engine"):
        eng.process_ticks({k: np.asarray(v) for k, v in _tick(
            symbol_id=[1], timestamp=[t0 + 5]).items()})
        eng.flush_bars()
    s = eng.get_performance_stats()
    assert s["late_ticks"] == {str(ds.asset.values[1]): 1}
    assert s["late_volume"] == {str(ds.asset.values[1]): 5.0}
    assert any("1 late tick(s) dropped" in r.getMessage() for r in caplog.records)


def test_a_locked_quote_goes_into_the_bar_at_its_price_a_crossed_one_is_skipped():
    """Documented choice: bid == ask is a (locked) quote, its mid is the price; bid > ask
    is no quote."""
    from quantlab.engine import BarAggregator
    agg = BarAggregator("1min", ["A"], unit="s")
    agg.add(_tick(bid_price=[10.0, 10.5], ask_price=[10.0, 10.4], timestamp=[1, 2]))
    (bar,) = agg.flush()
    assert float(bar["close"][0]) == 10.0 and float(bar["volume"][0]) == 5.0
    assert agg.skipped == 1


# ---- returns of another size: what a strategy's definition makes scale-free

@pytest.mark.parametrize("k", [0.1, 0.01, 1e-4])
def test_the_herding_fit_of_sentiment_regime_does_not_depend_on_the_size_of_returns(k):
    """CSAD = a + b|R_m| + c R_m^2: returns k times as large give c / k, the same sign
    (the herding regime). |det(X'X)| > 1e-18 called the fit singular for returns of
    0.2% a bar (X'X holds E|R_m|^4): gamma NaN on 90% of the bars at k = 0.1 (daily
    equities scaled to the size of minute bars), on all of them at k = 0.01, and the
    signal silently NaN. Singular is now judged scale-free (unit diagonal)."""
    ds = ql.data.load("sp500_20").isel(time=slice(0, 1000), asset=slice(0, 8))
    r = ql.data.returns(ds["close"]).fillna(0.0)
    small = ds.copy()
    small["close"] = (100.0 * (1 + k * r).cumprod("time")).where(ds["close"].notnull())
    s = ql.strategies.get("sentiment_regime", anchor_window=126, herd_window=63)
    want = s.diagnostics(ds)["herding_gamma"].values
    got = s.diagnostics(small)["herding_gamma"].values * k
    assert np.isnan(want).mean() < 0.1
    _same(got, want, 1e-6)
    rows = {"close": small["close"].transpose("time", "asset").values}
    live = s.live()
    sig = np.array([live.update(i, t, {"close": rows["close"][i]})
                    for i, t in enumerate(small.time.values)])
    _same(sig, _signal(s, small), 1e-9)


def test_liquidity_timing_on_float32_prices_and_volumes_whose_product_overflows_float32(
        equities):
    """close x volume of a float32 panel was computed in float32: 4e32 x 5e33 is inf
    there though each is representable."""
    s = ql.strategies.get("liquidity_timing")
    big = _scaled(equities, 1e30, 1e25).astype(np.float32)
    _same(_signal(s, big), _signal(s, equities.astype(np.float32).astype(np.float64)), 0)


SHORT = {"factor_momentum": {"beta_window": 12, "lookback": 3},
         "info_theory": {"window": 60}, "complex_systems": {"window": 60, "lookback": 100},
         "fractal_chaos": {"window": 60}, "quantum": {"window": 63},
         "sentiment_regime": {"anchor_window": 60, "herd_window": 40},
         "cross_sectional_momentum": {"lookback": 60, "hold": 5}, "spc": {"span": 40},
         "attention": {"window": 30}}


@pytest.mark.parametrize("case", [(1e300, 1e300 / 2.1e9), (1e-300, 1e-318)])
@pytest.mark.parametrize("name", ql.strategies.names())
def test_every_live_signal_at_extreme_magnitudes_equals_the_unscaled_signal(name, case,
                                                                            equities):
    s = ql.strategies.get(name, **SHORT.get(name, {}))
    base = equities.isel(time=slice(-400, None))
    ds = _scaled(base, *case)
    rows = {v: ds[v].transpose("time", "asset").values for v in s.requires}
    live = s.live()
    got = np.array([live.update(i, t, {v: a[i] for v, a in rows.items()})
                    for i, t in enumerate(ds.time.values)])
    _same(got, _signal(s, base), 1e-9)


# ---- panels at the edges of shape: a sensible signal or a clear error, equal when chunked

def _edge_panels():
    base = ql.data.load("equities").isel(time=slice(0, 400))   # GOOG (asset 1) unlisted

    def on(asset, fn):
        out = base.copy(deep=True)
        for v in ("open", "high", "low", "close", "volume"):
            out[v].values[:, asset] = fn(v, out[v].values[:, asset].copy())
        return out

    def cut(sl):
        def fn(v, x):
            x[sl] = np.nan
            return x
        return fn

    def zero_volume(v, x):
        if v == "volume":
            x[::7] = 0.0
        return x

    twin = base.copy(deep=True)
    for v in ("open", "high", "low", "close", "volume"):
        twin[v].values[:, 3] = twin[v].values[:, 0]
    return {"constant asset": on(2, lambda v, x: np.full_like(x, 1e6 if v == "volume"
                                                              else 50.0)),
            "all-NaN asset": on(2, lambda v, x: np.full_like(x, np.nan)),
            "late listing": on(2, cut(slice(0, 200))),
            "early delisting": on(2, cut(slice(250, None))),
            "zero-volume bars": on(2, zero_volume),
            "twin assets (ties)": twin,
            "single asset": base.isel(asset=[0]),
            "2 bars": base.isel(time=slice(0, 2))}


EDGES = _edge_panels()
NEEDS = {"sentiment_regime": "at least 3 assets", "complex_systems": "at least 2 assets",
         "cross_sectional_momentum": "at least 2 assets"}   # one asset alone ranks top


@pytest.mark.parametrize("case", list(EDGES))
@pytest.mark.parametrize("name", ql.strategies.names())
def test_edge_panels_give_a_sensible_signal_or_a_clear_error_equal_when_chunked(name, case):
    s = ql.strategies.get(name, **SHORT.get(name, {}))
    ds = EDGES[case]
    inputs = s.default_inputs(ds)
    if case == "single asset" and name in NEEDS:
        for d in (ds, ds.chunk({"time": 100})):
            with pytest.raises(ValueError, match=f"{name} needs .*{NEEDS[name]}"):
                s.signal(d, **inputs)
        return
    full = _signal(s, ds)
    assert np.nanmax(np.abs(full), initial=0.0) <= 1.0
    chunked = s.signal(ds.chunk({"time": 100, "asset": 2}), **inputs)
    got = chunked.compute().transpose("time", "asset").values
    np.testing.assert_allclose(got, full, rtol=1e-12, atol=1e-14)
    if case == "all-NaN asset":
        assert np.isnan(full[:, 2]).all()            # no bar, no decision
    if case == "twin assets (ties)":                  # ties ranked alike
        np.testing.assert_allclose(full[:, 3], full[:, 0], rtol=0, atol=1e-12)
    if case == "late listing":                        # nothing before its first bar
        assert np.isnan(full[:200, 2]).all()
