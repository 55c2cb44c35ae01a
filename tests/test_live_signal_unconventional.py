"""Per-bar signals of the unconventional strategies (issue #27): ``s.live().update`` fed
real data bar by bar gives, at every bar, the full-history ``s.signal`` row (rtol 1e-9,
same NaN pattern), from bar 0 and from a deployment's later start (``history_start``).
Before, ``live()`` was None and a deployment recomputed the trailing window each bar
(fractal_chaos: ~12 s per bar at 500 assets)."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql

RTOL = 1e-9


def _equities():
    # bars 800..1499: asset 1 is listed at bar 1122 (NaN before), a late listing inside
    return ql.data.load().isel(time=slice(800, 1500))


def _sp500(n_assets=8):
    return ql.data.load("sp500_20").isel(time=slice(-700, None), asset=slice(0, n_assets))


def _ticks(ds, tick=0.5):
    """``ds`` with prices on a coarse tick grid: many equal returns (ties in the
    quantile bins of the transfer entropy)."""
    return ds.copy(data={v: np.round(ds[v].values / tick) * tick for v in ds.data_vars})


def _gappy(ds, seed=7):
    """``ds`` with holidays: whole bars missing (every variable) at random bars of
    random assets, and one asset listed late."""
    rng = np.random.default_rng(seed)
    ds = ds.copy(deep=True)
    hole = rng.uniform(size=(ds.sizes["time"], ds.sizes["asset"])) < 0.03
    hole[:150, -1] = True
    for v in ds.data_vars:
        a = ds[v].transpose("time", "asset").values.copy()
        a[hole] = np.nan
        ds[v] = (("time", "asset"), a)
    return ds


def _feed(live, ds, start=0):
    """Each bar from ``start`` on, with i counted from ``start``: the (bar, asset) rows."""
    vals = {v: ds[v].transpose("time", "asset").values for v in ds.data_vars}
    times = ds.time.values
    return np.array([live.update(i - start, times[i], {v: a[i] for v, a in vals.items()})
                     for i in range(start, ds.sizes["time"])])


def _mismatches(got, want):
    """Cells where got and want differ: NaN pattern or value beyond rtol."""
    same = (np.isnan(got) & np.isnan(want)) | np.isclose(got, want, rtol=RTOL, atol=0.0)
    return int((~same).sum())


def _full(s, ds):
    return s.signal(ds).transpose("time", "asset").values


def _check(name, ds, params, restart_at):
    s = ql.strategies.get(name, **params)
    want = _full(s, ds)
    assert np.nanmax(np.abs(want)) > 0, "a signal that is never on tests nothing"
    got = _feed(s.live(), ds)
    assert got.shape == want.shape
    assert _mismatches(got, want) == 0, f"{name} {params} from bar 0"
    # a deployment restored at bar t holds the bars from history_start(t): from t on it
    # gives the full-history rows, before t the rows of the signal over what it holds
    t = ds.sizes["time"] - restart_at
    start = s.history_start(t)
    assert 0 < start < t
    got = _feed(s.live(), ds, start)
    assert _mismatches(got[t - start:], want[t:]) == 0, f"{name} {params} restored at {t}"
    held = _full(s, ds.isel(time=slice(start, None)))
    assert _mismatches(got, held) == 0, f"{name} {params} from bar {start}"


CASES = [
    ("attention", _equities, {}),
    ("attention", _equities, dict(window=21, threshold=1.0, hold=3, mode="reversal")),
    ("attention", lambda: _gappy(_equities()), dict(window=30, threshold=1.5, hold=5)),
    ("sentiment_regime", _sp500, {}),
    ("sentiment_regime", _sp500, dict(anchor_window=126, quantile=0.1, hold=5,
                                      herd_window=63, herd_scale=0.0)),
    ("sentiment_regime", lambda: _gappy(_sp500()), dict(anchor_window=60, hold=3,
                                                        herd_window=40)),
    ("fractal_chaos", _equities, {}),
    ("fractal_chaos", _equities, dict(window=126, band=0.0, trend=5, chaos_quantile=0.3)),
    ("fractal_chaos", lambda: _gappy(_equities()), dict(window=60, band=0.02, trend=10)),
    ("quantum", _equities, {}),
    ("quantum", _equities, dict(window=63, energy=5.0, vol_window=5)),
    ("quantum", lambda: _gappy(_equities()), dict(window=40, energy=0.3, vol_window=50)),
    ("complex_systems", _sp500, {}),
    ("complex_systems", _sp500, dict(window=21, shift=5, lookback=126, threshold=0.0)),
    ("complex_systems", lambda: _gappy(_sp500()), dict(window=30, lookback=100)),
    ("info_theory", lambda: _sp500(5), {}),
    ("info_theory", lambda: _equities().isel(time=slice(0, 500)),
     dict(window=126, te_min=0.0, entropy_max=0.99, trend=5)),
    ("info_theory", lambda: _ticks(_gappy(_sp500(5))), dict(window=60, te_min=0.01)),
]


@pytest.mark.parametrize("name, data, params", CASES,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(CASES)])
def test_live_signal_of_unconventional_strategy_equals_full_history_signal_each_bar(
        name, data, params):
    _check(name, data(), params, restart_at=120)


@pytest.mark.parametrize("name, wrong", [("fractal_chaos", dict(window=127)),
                                         ("quantum", dict(vol_window=11)),
                                         ("attention", dict(hold=9)),
                                         ("sentiment_regime", dict(anchor_window=200)),
                                         ("complex_systems", dict(window=62)),
                                         ("info_theory", dict(window=60))])
def test_live_signal_comparison_catches_a_wrong_window(name, wrong):
    # the check above can fail: a live signal built with another window differs
    ds = _sp500() if name in ("sentiment_regime", "complex_systems") else _equities()
    base = {"fractal_chaos": dict(window=126), "info_theory": dict(window=61)}.get(name, {})
    if name == "info_theory":
        ds = _sp500(4).isel(time=slice(0, 300))
    want = _full(ql.strategies.get(name, **base), ds)
    got = _feed(ql.strategies.get(name, **{**base, **wrong}).live(), ds)
    assert _mismatches(got, want) > 0


@pytest.mark.parametrize("name, n", [("sentiment_regime", 2), ("complex_systems", 1)])
def test_live_signal_refuses_a_cross_section_too_small_as_signal_does(name, n):
    live = ql.strategies.get(name).live()
    with pytest.raises(ValueError, match=f"at least {n + 1} assets"):
        live.update(0, None, {"close": np.arange(1.0, n + 1)})


def test_live_signal_is_none_for_a_parameter_grid():
    assert ql.strategies.get("quantum", window=[63, 126]).live() is None


@pytest.mark.parametrize("name, params, bars", [
    ("fractal_chaos", dict(window=60, trend=3, chaos_quantile=0.9), 125),
    ("quantum", dict(window=20, vol_window=5), 40)])
def test_live_signal_on_threads_over_blocks_of_assets_equals_signal(name, params, bars,
                                                                    monkeypatch):
    # 300 assets: enough work that each bar's windows run on 2 threads in blocks of
    # assets (_threads.blocks: >= 500k copies per thread)
    monkeypatch.setenv("QUANTLAB_THREADS", "2")
    rng = np.random.default_rng(5)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (bars, 300)), axis=0))
    ds = xr.Dataset({"close": (("time", "asset"), close)},
                    coords={"time": pd.bdate_range("2020-01-01", periods=bars),
                            "asset": [f"S{i}" for i in range(300)]})
    s = ql.strategies.get(name, **params)
    want = _full(s, ds)
    assert np.isfinite(want).sum() > 1000 and np.nanmax(np.abs(want)) > 0
    assert _mismatches(_feed(s.live(), ds), want) == 0


def test_complex_systems_live_update_runs_blas_on_one_thread(monkeypatch):
    # at 500 assets on 2 busy cores a bar's eigh cost 130-900 ms of CPU while BLAS's
    # threads fought the others for the cores, 35-42 ms on one thread; BLAS is back to
    # its threads after the update, and threadpoolctl is imported only by it
    from threadpoolctl import threadpool_info

    from quantlab.strategies import unconventional as u

    def blas():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    seen, network = [], u._network_arrays
    monkeypatch.setattr(u, "_network_arrays", lambda a: seen.append(blas()) or network(a))
    ds = _sp500(4).isel(time=slice(0, 30))
    before = blas()
    _feed(ql.strategies.get("complex_systems", window=21).live(), ds)
    assert len(seen) == 30 and all(t == [1] * len(before) for t in seen) and before
    assert blas() == before
    code = ("import sys, quantlab, quantlab.strategies.unconventional; "
            "print('threadpoolctl' in sys.modules)")
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


def test_overlapping_blas_limits_restore_blas_once_the_last_one_ends():
    # two complex_systems updates on threads overlap: the limit is process-wide, so it
    # holds until the last one ends and BLAS then gets its own threads back (entered A,
    # B; left A, B: each restoring what it saw on entry left BLAS at one thread)
    from threadpoolctl import threadpool_info

    from quantlab.strategies import unconventional as u

    def blas():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas()
    a, b = u._one_blas_thread(), u._one_blas_thread()
    a.__enter__()
    b.__enter__()
    assert blas() == [1] * len(before)
    a.__exit__(None, None, None)
    assert blas() == [1] * len(before)          # B still running on one thread
    b.__exit__(None, None, None)
    assert blas() == before and before
