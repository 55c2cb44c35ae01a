"""Per-bar signals of the traditional strategies (issue #27; protocol in
quantlab/strategies/_live.py): fed real data bar by bar, from the first bar and from a
later start (``history_start(t)``, as a deployment given that much history), every row
equals the full-history ``signal`` (rtol 1e-9, the same NaN pattern). Before, a
deployment recomputed the whole trailing window at every bar (33-50 ms at 500 assets,
O(all history) for spc and factor_momentum)."""
import numpy as np
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
# factor_momentum recomputes its signal once a month over every bar: fewer bars (the
# default needs 36 months of betas before its first value)
BARS = {("factor_momentum", "equities", 36): 950, ("factor_momentum", "equities", 12): 400,
        ("factor_momentum", "sp500_20", 12): 400}


@pytest.mark.parametrize("name, params, data_name", CASES)
def test_live_signal_equals_the_full_history_signal_at_every_bar(name, params, data_name,
                                                                  data):
    ds = data[data_name].isel(time=slice(0, BARS.get((name, data_name,
                                                        params.get("beta_window", 36)))))
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
