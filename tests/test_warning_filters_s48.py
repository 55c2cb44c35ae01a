"""No process-wide warning filters in library code (session 48, helper "shape").

``warnings.catch_warnings()`` swaps the process's ``warnings.filters``: while one thread
(a kernel on the pool, a deployment) holds it, another thread's warning is lost, and two
overlapping blocks can restore each other's filters wrongly (the Python docs say it is
not thread-safe). quantlab silenced NaN warnings this way in metrics.alpha with a rate
series, two live signals of the unconventional strategies and crossmarket's Granger test;
those paths now do not warn at all (np.errstate is per thread), with the same numbers.
Here the test itself uses catch_warnings: a test is single-threaded."""
from __future__ import annotations

import ast
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import quantlab as ql

ROOT = Path(__file__).resolve().parent.parent / "quantlab"
FILTERS = {"catch_warnings", "simplefilter", "filterwarnings", "resetwarnings"}


def _filter_calls():
    """(file, line, name) of every call of a warnings-filter function in quantlab's
    code (docstring examples are strings, not calls: they are not counted)."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
                if name in FILTERS:
                    found.append((str(path.relative_to(ROOT.parent)), node.lineno, name))
            elif isinstance(node, ast.ImportFrom) and node.module == "warnings":
                found += [(str(path.relative_to(ROOT.parent)), node.lineno, a.name)
                          for a in node.names if a.name in FILTERS]
    return found


def test_no_quantlab_module_changes_the_process_warning_filters():
    assert _filter_calls() == []


def _quiet_call(fn, *args, **kwargs):
    """fn's result and the warnings it emitted (every one recorded)."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, [f"{w.category.__name__}: {w.message}" for w in seen]


def _nanmean_silenced(x, axis=None):
    """np.nanmean with its all-NaN RuntimeWarning silenced: what the code did before."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


# ---------------------------------------------------------------- metrics.alpha with a rate

@pytest.mark.parametrize("rate_nan", [False, True])
def test_alpha_with_a_rate_series_is_nanmean_s_value_and_silent_on_an_all_nan_column(rate_nan):
    rng = np.random.default_rng(3)
    t = pd.date_range("2020-01-01", periods=60, freq="B")
    r = pd.DataFrame(rng.normal(0, 0.01, (60, 4)), index=t, columns=list("abcd"))
    r["b"] = np.nan                      # all NaN: NaN
    r.iloc[::3, 2] = np.nan              # partial NaN
    r.iloc[:-1, 3] = np.nan              # one value: beta NaN -> NaN
    b = pd.Series(rng.normal(0, 0.01, 60), index=t)
    rf = pd.Series(np.full(60, 1e-4), index=t)
    if rate_nan:
        rf.iloc[5:9] = np.nan
    got, seen = _quiet_call(ql.metrics.alpha, r, b, risk_free=rf)
    assert seen == []
    beta = ql.metrics.beta(r, b).to_numpy()
    R, B, F = r.to_numpy(), b.to_numpy()[:, None], rf.to_numpy()[:, None]
    want = (1 + _nanmean_silenced(R - F - beta * (B - F), axis=0)) ** 252 - 1
    np.testing.assert_array_equal(got.to_numpy(), want)
    assert np.isnan(got["b"]) and np.isfinite(got[["a", "c"]]).all()


# ---------------------------------------------------------------- the live signals' means

def test_the_live_signals_nanmean_is_numpy_s_bit_for_bit_without_a_warning():
    from quantlab.strategies.unconventional import _nanmean

    rng = np.random.default_rng(0)
    checked = 0
    for shape in [(3, 7), (3, 1), (3, 0), (0, 4), (5,), (0,)]:
        for frac in (0.0, 0.3, 0.7, 1.0):
            x = rng.normal(size=shape) * 10.0 ** rng.integers(-5, 5, size=shape)
            x[rng.random(shape) < frac] = np.nan
            for axis in ([0, None] if len(shape) == 2 else [None]):
                with np.errstate(all="ignore"):
                    got, seen = _quiet_call(_nanmean, x, axis=axis)
                want = _nanmean_silenced(x, axis=axis)
                assert seen == []
                assert type(got) is type(want) and np.shape(got) == np.shape(want)
                np.testing.assert_array_equal(got, want)
                checked += np.size(want)
    assert checked > 50


def _holidays(ds, bars):
    """``ds`` with every asset's every variable NaN at ``bars`` (a market holiday)."""
    ds = ds.copy(deep=True)
    for v in ds.data_vars:
        a = ds[v].transpose("time", "asset").values.copy()
        a[bars] = np.nan
        ds[v] = (("time", "asset"), a)
    return ds


@pytest.mark.parametrize("name, params", [
    ("attention", {"window": 20, "threshold": 1.0, "hold": 3}),
    ("sentiment_regime", {"anchor_window": 60, "herd_window": 40, "hold": 5})])
def test_live_signals_on_all_nan_bars_are_silent_and_match_the_full_history(
        name, params, monkeypatch):
    """An all-NaN bar (every proxy's z NaN; every return NaN) took np.nanmean's all-NaN
    path: NaN, with a RuntimeWarning silenced by a process-wide filter."""
    from quantlab.strategies import unconventional

    all_nan = []

    def spy(x, axis=None):
        all_nan.append(bool(np.isnan(x).all(axis=axis).any()))
        return nanmean(x, axis=axis)

    nanmean = unconventional._nanmean
    monkeypatch.setattr(unconventional, "_nanmean", spy)
    ds = _holidays(ql.data.load().isel(time=slice(800, 1100)), [100, 101, 150, 220])
    s = ql.strategies.get(name, **params)
    with np.errstate(all="ignore"):
        want = s.signal(ds).transpose("time", "asset").values
    assert np.nanmax(np.abs(want)) > 0
    live = s.live()
    vals = {v: ds[v].transpose("time", "asset").values for v in ds.data_vars}
    times = ds.time.values

    def feed():
        return np.array([live.update(i, times[i], {v: a[i] for v, a in vals.items()})
                         for i in range(ds.sizes["time"])])

    got, seen = _quiet_call(feed)
    assert seen == []
    assert any(all_nan), "no all-NaN slice reached the mean: the test tests nothing"
    same = (np.isnan(got) & np.isnan(want)) | np.isclose(got, want, rtol=1e-9, atol=0.0)
    assert same.all()


# ---------------------------------------------------------------- crossmarket's Granger test

def _returns(n_pairs=6):
    close = ql.data.load()["close"].to_pandas()
    r = np.log(close).diff().iloc[1:]
    return r[list(r.columns[:n_pairs])]


def test_granger_p_is_statsmodels_ssr_ftest_bit_for_bit():
    from statsmodels.tsa.stattools import grangercausalitytests

    from quantlab.crossmarket import _granger_p

    r = _returns(5)
    rng = np.random.default_rng(1)
    y0 = r.iloc[:, 0].dropna().to_numpy()
    cases = [(p[:, 1], p[:, 0]) for a in r for b in r if a != b
             for p in [r[[a, b]].dropna().to_numpy()]]
    cases += [(y0, 2 * y0 + 1), (rng.normal(size=40), rng.normal(size=40) * 1e-7)]
    for y, x in cases:
        for k in (1, 2, 5):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                g = grangercausalitytests(np.column_stack([y, x]), [k])
            got, seen = _quiet_call(_granger_p, y, x, k)
            assert seen == []
            assert got == float(g[k][0]["ssr_ftest"][1])


def _analyzer(series):
    cm = ql.crossmarket.CrossMarketAnalyzer()
    for name, s in series.items():
        cm.add_market_data("equity", name, s)
    return cm


def test_lead_lag_of_a_series_added_twice_is_silent_with_p_one():
    """A symbol added under two names: the leader's lags repeat the follower's, a
    rank-deficient design (statsmodels' SingularMatrixWarning); the ssr F is 0, p 1."""
    close = ql.data.load()["close"].to_pandas()
    cm = _analyzer({"IBM": close["IBM"], "IBM2": close["IBM"].copy(), "MSFT": close["MSFT"]})
    out, seen = _quiet_call(cm.lead_lag, max_lag=3, min_obs=100)
    assert seen == []
    twin = out[out.leader.str.startswith("IBM") & out.follower.str.startswith("IBM")]
    assert len(twin) == 2 and (twin.granger_p == 1.0).all()
    assert (out.granger_p < 1).sum() >= 2


def test_lead_lag_of_a_shifted_copy_is_p_zero_not_an_error():
    """The follower fitted exactly by the leader's past: statsmodels raised its own
    InfeasibleTestError (a RuntimeError naming neither series) out of lead_lag; session
    48 made it a DataError naming the pair, which still lost the whole call (a report
    drew no lead-lag network). The leader's past explains what the follower's own cannot:
    F is infinite, p 0 (session 49); the pair the other way is an ordinary test."""
    close = ql.data.load()["close"].to_pandas()
    cm = _analyzer({"IBM": close["IBM"], "LAG": close["IBM"].shift(1),
                    "MSFT": close["MSFT"]})
    out, seen = _quiet_call(cm.lead_lag, max_lag=3, min_obs=100)
    assert seen == []
    row = out[(out.leader == "IBM") & (out.follower == "LAG")]
    assert len(row) == 1 and row.granger_p.iloc[0] == 0.0 and row.significant.iloc[0]
    assert np.isfinite(out.granger_p).all() and (out.granger_p > 0).sum() == len(out) - 1


# ---------------------------------------------------------------- load_csv's date formats

def _formats_silenced(first):
    """load_csv's formats before: both pandas guesses, their dayfirst warning silenced."""
    from pandas.tseries.api import guess_datetime_format

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return [f for f in dict.fromkeys((guess_datetime_format(first),
                                          guess_datetime_format(first, dayfirst=True))) if f]


def _first_dates():
    """Dates as CSV files write them: day or month first or forced (a day > 12), padded or
    not, /-. and space separated, 2- and 4-digit years, digits run together, month names,
    times and offsets."""
    import itertools

    out = ["2020", "2020-01", "01/2020", "13/13/2020", "32/01/2020", "2020-13-01", "x",
           "Thu, 02 Jan 2020", "Monday 13 January 2020", "15:30", "20200113", "200113",
           "20200113153000", "20200113T1530", "20201301", "2020-01-13T15:30:00.123456Z"]
    times = ["", " 13:45", "T15:30:00", " 23:59:59.5", " 12:30:00+00:00", " 10:00:00-05:30",
             " 1:30 PM"]
    for (d, m), y, sep, t in itertools.product([(1, 1), (2, 12), (12, 2), (13, 1), (31, 12),
                                                (9, 10), (20, 3)], ["2020", "99"], "/-. ",
                                               times):
        for day, mon in ((f"{d:02d}", f"{m:02d}"), (str(d), str(m))):
            out += [f"{day}{sep}{mon}{sep}{y}{t}", f"{mon}{sep}{day}{sep}{y}{t}",
                    f"{y}{sep}{mon}{sep}{day}{t}"]
        name = pd.Timestamp(2020, m, 1).strftime("%b")
        out += [f"{d} {name} {y}{t}", f"{name} {d}, {y}{t}", f"{d}-{name}-{y}{t}"]
    return sorted(set(out))


def test_load_csv_date_formats_are_pandas_guesses_without_the_dayfirst_warning():
    """13/01/2020 asked month-first (and 01/13/2020 or 20200113 day-first) made pandas
    warn; load_csv silenced it with a process-wide filter. The same formats now, asked
    only in the orders the date fits."""
    from pandas.tseries.api import guess_datetime_format

    from quantlab.data import _date_formats

    dates = _first_dates()
    assert len(dates) > 1000
    warned_before = 0
    for first in dates:
        want = _formats_silenced(first)
        _, before = _quiet_call(lambda: [guess_datetime_format(first, dayfirst=d)
                                         for d in (False, True)])
        warned_before += bool(before)
        got, seen = _quiet_call(_date_formats, first)
        assert (got, seen) == (want, []), first
    assert warned_before > 100    # the dates exercise pandas' warning


@pytest.mark.parametrize("rows, day", [("02/01/2020,1\n13/01/2020,2\n", 13),
                                       ("01/02/2020,1\n01/13/2020,2\n", 13),
                                       ("13/01/2020,1\n14/01/2020,2\n", 14),
                                       ("20200102,1\n20200113,2\n", 13)])
def test_load_csv_of_day_first_month_first_and_compact_dates_is_silent(tmp_path, rows, day):
    path = tmp_path / "X.csv"
    path.write_text("Date,Close\n" + rows)
    ds, seen = _quiet_call(ql.data.load_csv, path)
    assert seen == []
    assert pd.Timestamp(ds.time.values[-1]) == pd.Timestamp(2020, 1, day)
