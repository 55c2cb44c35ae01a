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
                                            ".* of asset '\w+' at 20\d\d-"):
            s.signal(ds, **inputs).compute()


def test_a_float32_panel_is_computed_like_its_float64_values(equities):
    f32 = equities.astype(np.float32)
    for name in ("volatility_regime", "liquidity_timing", "cross_sectional_momentum"):
        s = ql.strategies.get(name)
        got = _signal(s, f32)
        want = _signal(s, f32.astype(np.float64))
        _same(got, want, 1e-5)
