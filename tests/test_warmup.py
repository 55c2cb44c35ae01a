"""Each strategy's declared history (``warmup``, ``period``) is enough: the signal at t
computed from the trailing window ``history_start(t) .. t`` equals the full-history one.
A deployment computes every decision from that window, so a too-short warmup would
trade differently from the backtest."""
import numpy as np
import pytest

import quantlab as ql

CUTS = 6


def _mismatches(s, ds, start_of, cuts=CUTS):
    """Times t (over the second part of ds) whose trailing-window signal differs."""
    full = s.signal(ds, **s.default_inputs(ds)).transpose("time", "asset", ...).values
    n = ds.sizes["time"]
    first = min(n - 2, (s.warmup or 0) + s.period + 20)
    bad = []
    for t in np.unique(np.linspace(first, n - 1, cuts).astype(int)):
        part = ds.isel(time=slice(start_of(t), t + 1))
        got = s.signal(part, **s.default_inputs(part)).transpose("time", "asset", ...)
        if not np.allclose(got.values[-1], full[t], rtol=1e-9, atol=1e-12, equal_nan=True):
            bad.append(str(ds.time.values[t])[:10])
    return bad


@pytest.fixture(scope="module")
def equities():
    return ql.data.load().isel(time=slice(0, 1400))


@pytest.mark.parametrize("name", ql.strategies.names())
def test_trailing_window_signal_equals_full_history_signal(name, equities):
    s = ql.strategies.get(name)
    assert _mismatches(s, equities, s.history_start) == [], \
        f"{name}: warmup {s.warmup} / period {s.period} is too short"


@pytest.mark.parametrize("name", ["cross_sectional_momentum", "sentiment_regime",
                                  "complex_systems", "volatility_regime"])
def test_trailing_window_signal_equals_full_history_on_a_cross_section(name):
    ds = ql.data.load("sp500_20").isel(time=slice(0, 900))
    s = ql.strategies.get(name)
    assert _mismatches(s, ds, s.history_start) == []


@pytest.mark.parametrize("name", [n for n in ql.strategies.names()
                                  if ql.strategies.get(n).warmup is not None])
def test_a_warmup_half_as_long_is_caught(name, equities):
    """The comparison above can fail: half the declared history changes some signal."""
    s = ql.strategies.get(name)
    assert _mismatches(s, equities, lambda t: max(0, t + 1 - s.warmup // 2), cuts=20) != []


def test_momentum_windows_keep_the_rebalance_phase(equities):
    """Rebalance days are every `hold` bars from the first bar: a window starting off the
    phase would rebalance on other days (and does: the check catches it)."""
    s = ql.strategies.get("cross_sectional_momentum", lookback=60, skip=5, hold=7)
    assert (s.warmup, s.period) == (61, 7)
    assert [s.history_start(t) for t in (0, 60, 61, 67, 68, 100)] == [0, 0, 0, 7, 7, 35]
    assert _mismatches(s, equities, lambda t: max(0, t + 1 - s.warmup)) != []
    assert _mismatches(s, equities, s.history_start) == []


def test_grid_warmup_is_the_longest_and_period_the_common_multiple():
    s = ql.strategies.get("cross_sectional_momentum", lookback=[60, 120], skip=5,
                          hold=[4, 6])
    assert (s.warmup, s.period) == (121, 12)
    assert ql.strategies.get("spc").warmup is None
    assert ql.strategies.get("spc").history_start(5000) == 0
