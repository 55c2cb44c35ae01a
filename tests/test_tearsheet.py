"""Tear sheets and number formatting (issue #28) on the bundled real data."""
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab import fmt
from quantlab import plots
from quantlab import tearsheet as T

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ds():
    return ql.data.load()


@pytest.fixture(scope="module")
def sig(ds):
    return ql.strategies.get("attention").signal(ds)


@pytest.fixture(scope="module")
def res(ds, sig):
    return ql.backtest(ds, sig, fees=0.001)


@pytest.fixture(scope="module")
def res_group(ds, sig):
    return ql.backtest(ds, sig, fees=0.001, group=True)


@pytest.fixture(scope="module")
def sheet(res):
    return res.tearsheet(benchmark="buy_and_hold")


def _source(layout, name):
    """The displayed data source of a section (eq, dd, ddtab, heat, year, roll, hist,
    risk, summary, trades, pos); the Select's alternatives are unnamed."""
    from bokeh.models import ColumnDataSource

    (found,) = layout.select({"type": ColumnDataSource, "name": name})
    return found


def _figures(layout):
    from bokeh.models import Plot

    return list(layout.select({"type": Plot}))


def _tables(layout):
    from bokeh.models import DataTable

    return list(layout.select({"type": DataTable}))


# --------------------------------------------------------------------------- fmt

def test_fmt_percent_money_count_ratio_duration_general_cases():
    assert fmt.pct(9.201) == "+920.1 %"
    assert fmt.pct(-0.4309) == "-43.1 %"
    assert fmt.pct(0.25, sign=False) == "25.0 %"
    assert fmt.pct(0.0) == fmt.pct(-1e-9) == fmt.pct(1e-12) == "0.0 %"   # no "-0.0 %"
    assert fmt.pct(123.4) == "+12,340.0 %"
    assert fmt.pct(float("nan")) == "n/a" and fmt.pct(None) == "n/a"
    assert fmt.pct(math.inf) == "inf %" and fmt.pct(-math.inf) == "-inf %"
    assert fmt.money(37926.211) == "37,926"
    assert fmt.money(-1234.6) == "-1,235"
    assert fmt.money(12.5) == "12.50" and fmt.money(0.0) == "0"
    assert fmt.money(1e12) == "1,000,000,000,000"
    assert fmt.money(-1e-9) == fmt.money(1e-9) == "0.00"
    assert fmt.money(2e6, compact=True) == "2.0M"
    assert fmt.money(999_960, compact=True) == "1.0M"     # not "1000.0k"
    assert fmt.money(37926.2, compact=True) == "37.9k"
    assert fmt.money(1e12, compact=True) == "1.0T"
    assert fmt.money(-2.5e9, compact=True) == "-2.5B"
    assert fmt.money(500, compact=True) == "500"
    assert fmt.money(1.5, compact=True) == "1.5"
    assert fmt.money(0, compact=True) == "0"
    assert fmt.money(math.inf) == "inf" and fmt.money(math.nan) == "n/a"
    assert fmt.count(8017.0) == "8,017" and fmt.count(49) == "49"
    assert fmt.count(1e12) == "1,000,000,000,000" and fmt.count(-3.0) == "-3"
    assert fmt.count(math.nan) == "n/a" and fmt.count(-math.inf) == "-inf"
    assert fmt.ratio(0.459572) == "0.46" and fmt.ratio(12.4086) == "12.41"
    assert fmt.ratio(-0.0) == fmt.ratio(-1e-12) == "0.00"
    assert fmt.ratio(1e12) == "1.00e+12" and fmt.ratio(-1234.567) == "-1,234.57"
    assert fmt.ratio(math.inf) == "inf"
    assert fmt.duration(1) == "1 bar" and fmt.duration(1103.0) == "1,103 bars"
    assert fmt.duration(pd.Timedelta(days=3)) == "3 days"
    assert fmt.duration(np.timedelta64(1, "D")) == "1 day"
    assert fmt.duration(math.nan) == "n/a" and fmt.duration(pd.NaT) == "n/a"
    assert fmt.general(12.4086) == "12.41" and fmt.general(0.459572) == "0.4596"
    assert fmt.general(1e12) == "1,000,000,000,000" and fmt.general(1e-9) == "1.000e-09"
    assert fmt.general(0.0) == "0" and fmt.general(-math.inf) == "-inf"
    assert fmt.date(pd.Timestamp("2008-10-09")) == "2008-10-09" and fmt.date(pd.NaT) == "n/a"


def test_fmt_metric_formats_by_name_numpy_xarray_and_arrays():
    assert fmt.metric("total_return", 9.201) == "+920.1 %"
    assert fmt.metric("n_trades", 49.0) == "49"
    assert fmt.metric("fees_paid", 37926.211) == "37,926"
    assert fmt.metric("sharpe_ratio", np.float64(0.459572)) == "0.46"
    assert fmt.metric("annual_volatility", xr.DataArray(0.2)) == "20.0 %"   # unsigned level
    assert fmt.metric("drawdown_duration", 1103.0) == "1,103 bars"
    assert fmt.metric("not_a_metric", 12.4086) == "12.41"   # general fallback
    out = fmt.metric("max_drawdown", np.array([-0.431, np.nan]))
    assert out.tolist() == ["-43.1 %", "n/a"]
    da = fmt.metric("n_trades", xr.DataArray([3.0, 4.0], dims="asset"))
    assert da.dims == ("asset",) and da.values.tolist() == ["3", "4"]
    assert fmt.label("sharpe_ratio") == "Sharpe ratio"


@pytest.mark.parametrize("call", [lambda: fmt.pct("0.5"), lambda: fmt.money(1 + 2j),
                                  lambda: fmt.ratio(True), lambda: fmt.metric(3, 1.0),
                                  lambda: fmt.count([1, 2])])
def test_fmt_non_numbers_are_a_type_error(call):
    with pytest.raises(TypeError, match="must be"):
        call()


def test_fmt_duration_unknown_unit_is_refused():
    with pytest.raises(ValueError, match="'weeks'"):
        fmt.duration(3, unit="weeks")


def test_fmt_metric_table_covers_every_metric_name(ds, sig, res):
    names = set(res.metrics().data_vars) | set(ql.metrics.METRICS)
    streamed = ql.backtest(ds, sig, metrics_only=("n_orders", "fees_paid", "turnover",
                                                  "exposure", "sharpe_ratio"))
    names |= set(streamed.data_vars)
    missing = sorted(n for n in names if n not in fmt.KINDS)
    assert not missing, f"fmt.KINDS lacks {missing}"
    assert set(fmt.KINDS.values()) <= {"return", "pct", "ratio", "money", "count", "duration"}


@pytest.mark.skipif(shutil.which("node") is None, reason="no node to run the tick JS")
def test_money_and_pct_tick_formatters_match_python():
    values = [0, 1.5, 12.25, 500, 999.96, 37926.2, 999_960, 2e6, -2.5e9, 1e12]
    fracs = [0, 0.25, -0.4, 0.055, -1e-12]
    script = (f"const m = (tick) => {{{plots._MONEY_JS}}};\nconst p = (tick) => {{{plots._PCT_JS}}};\n"
              f"console.log(JSON.stringify([{values}.map(m), {fracs}.map(p)]));")
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True)
    import json

    money, pct = json.loads(out.stdout)
    assert money == [fmt.money(v, compact=True) for v in values]
    assert pct == ["0 %", "25 %", "-40 %", "5.5 %", "0 %"]


# --------------------------------------------------------------------------- tear sheet

def test_tearsheet_every_section_has_data_per_asset(sheet, res):
    from bokeh.models import GlyphRenderer, Select

    figs = _figures(sheet)
    titles = " | ".join(f.title.text for f in figs)
    for part in ("equity", "underwater", "monthly returns", "yearly returns",
                 "rolling Sharpe", "rolling volatility", "distribution", "exposure"):
        assert part in titles
    for f in figs:
        glyphs = [g for g in f.renderers if isinstance(g, GlyphRenderer)]
        assert any(len(next(iter(g.data_source.data.values()))) > 0 for g in glyphs), \
            f.title.text
    assert res_has_log_axis(figs)
    summary, ddtab, trades = (_source(sheet, k) for k in ("summary", "ddtab", "trades"))
    assert len(summary.data["metric"]) > 20 and len(ddtab.data["rank"]) == 5
    n_first = int((res.trades["asset"] == "AAPL").sum())
    assert len(trades.data["entry"]) == n_first > 0
    sel = list(sheet.select({"type": Select}))[0]
    assert sel.options == [str(a) for a in res.equity.asset.values]


def res_has_log_axis(figs):
    from bokeh.models import LogAxis

    eq = [f for f in figs if f.title.text.startswith("equity")][0]
    return isinstance(eq.left[0], LogAxis)


def test_tearsheet_summary_numbers_equal_ql_metrics(sheet, res, ds):
    s = _source(sheet, "summary").data
    values = dict(zip(s["name"], s["value"]))
    r = res.returns.sel(asset="AAPL")
    close = ds["close"].sel(asset="AAPL").ffill("time")
    b = close / close.shift(time=1) - 1
    for name in ("total_return", "sharpe_ratio", "sortino_ratio", "max_drawdown",
                 "annual_volatility", "value_at_risk", "conditional_value_at_risk",
                 "win_rate", "profit_factor", "drawdown_duration"):
        expect = float(getattr(ql.metrics, name)(r))
        assert values[name] == pytest.approx(expect, rel=1e-12, nan_ok=True), name
        row = s["name"].index(name)
        assert s["strategy"][row] == fmt.metric(name, expect)
    for name in ("alpha", "beta", "information_ratio"):
        assert values[name] == pytest.approx(float(getattr(ql.metrics, name)(r, b)), rel=1e-9)
    m = res.metrics().sel(asset="AAPL")
    for name in ("n_trades", "fees_paid", "turnover", "trade_win_rate"):
        assert values[name] == float(m[name])
    row = s["name"].index("n_trades")
    assert s["strategy"][row] == fmt.count(float(m["n_trades"]))
    # VaR/CVaR marked on the distribution are the same numbers
    row = s["name"].index("recovery_time")   # NaN in ql.metrics: never regained
    assert np.isnan(values["recovery_time"]) == (s["strategy"][row] == "not yet")
    risk = _source(sheet, "risk").data
    assert risk["x"] == [values["value_at_risk"], values["conditional_value_at_risk"]]


def _pandas_drawdowns(equity: pd.Series, capital: float, top=5) -> pd.DataFrame:
    """Plain pandas: peaks by cummax (the starting capital counts), periods between new
    highs, depth = the period's minimum."""
    eq = pd.concat([pd.Series([capital], index=[equity.index[0] - pd.Timedelta(days=1)]),
                    equity])
    dd = eq / eq.cummax() - 1
    period = (dd == 0).cumsum()
    rows = []
    for _, g in dd.groupby(period):
        under = g[g < 0]
        if under.empty:
            continue
        start = g.index[0] if g.index[0] in equity.index else equity.index[0]
        after = dd.index[dd.index > g.index[-1]]
        rec = after[0] if len(after) else pd.NaT
        rows.append({"start": start, "trough": under.idxmin(), "recovery": rec,
                     "depth": under.min(), "length": len(under)})   # bars under water
    return (pd.DataFrame(rows).sort_values("depth", kind="stable").head(top)
            .reset_index(drop=True))


@pytest.mark.parametrize("asset", ["AAPL", "GOOG"])
def test_top5_drawdowns_equal_pandas_cummax(res, asset):
    eq = res.equity.sel(asset=asset).to_series()
    got = T.drawdown_table(res.returns.sel(asset=asset), capital=res.init_cash)
    want = _pandas_drawdowns(eq, res.init_cash)
    assert len(got) == 5
    for c in ("start", "trough", "recovery", "length"):
        assert got[c].tolist() == want[c].tolist(), c
    np.testing.assert_allclose(got["depth"], want["depth"], rtol=1e-9)
    assert got["depth"][0] == pytest.approx(float(ql.metrics.max_drawdown(
        res.returns.sel(asset=asset))), rel=1e-9)


def test_monthly_returns_equal_pandas_resample_compounded(sheet, res):
    r = res.returns.sel(asset="AAPL").to_series()
    want = (1 + r).groupby([r.index.year, r.index.month]).prod() - 1
    heat = _source(sheet, "heat").data
    got = {(int(y), m): v for y, m, v in zip(heat["year"], heat["month"], heat["value"])}
    months = dict(zip(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                       "Nov", "Dec"), range(1, 13)))
    assert len(got) == len(want)
    for (y, m), v in got.items():
        assert v == pytest.approx(want[(y, months[m])], rel=1e-12, abs=1e-15)


def test_rolling_sharpe_and_volatility_equal_ql_metrics_on_each_window(sheet, res):
    roll = _source(sheet, "roll").data
    r = res.returns.sel(asset="AAPL")
    w = 126
    for i in (w - 1, 1000, len(r) - 1):
        win = r.isel(time=slice(i - w + 1, i + 1))
        assert roll["sharpe_strategy"][i] == pytest.approx(float(ql.metrics.sharpe_ratio(win)),
                                                           rel=1e-9)
        assert roll["vol_strategy"][i] == pytest.approx(
            float(ql.metrics.annual_volatility(win)), rel=1e-9)
    assert np.isnan(roll["sharpe_strategy"][: w - 1]).all()


def test_monthly_heatmap_skips_months_without_data_and_inks_by_brightness(ds):
    r = ds["close"].sel(asset="GOOG").pipe(lambda c: c / c.shift(time=1) - 1)  # listed 2004
    mo = T.monthly_returns(r)
    assert mo[: "2004-07"].isna().all() and np.isfinite(mo["2004-09":]).all()
    fill, ink = plots._diverging(np.array([-0.4, -0.001, 0.4, np.nan]), 0.4)
    assert ink == ["#ffffff", "#000000", "#ffffff", "#000000"]   # dark cells: white labels
    assert fill[3] == "#eeeeee"


def test_tearsheet_group_true_is_one_portfolio(res_group):
    from bokeh.models import Select

    sheet = res_group.tearsheet(benchmark="buy_and_hold")
    assert not list(sheet.select({"type": Select}))
    trades = _source(sheet, "trades").data
    assert len(trades["entry"]) == len(res_group.trades) > 0
    assert set(trades["asset"]) == set(res_group.trades["asset"])
    assert len(_source(sheet, "pos").data["xs"]) == 4    # one exposure line per asset
    tr = res_group.trades.sort_values("entry_time", kind="stable")
    assert trades["entry"] == [fmt.date(x) for x in tr["entry_time"]]   # in time order
    np.testing.assert_allclose(trades["ret"], tr["pnl"] / (tr["size"].abs() * tr["entry_price"]))
    assert trades["ret_s"][0] == fmt.pct(trades["ret"][0])
    assert all(t.sortable for t in _tables(sheet) if t.source.name == "trades")
    eq = _source(sheet, "eq").data
    np.testing.assert_allclose(eq["strategy"], res_group.equity.values, rtol=1e-12)


def test_tearsheet_parameter_dim_select_switches_every_section(ds, sig):
    from bokeh.models import CustomJS, Select

    fees = xr.DataArray([0.0, 0.005], dims="cost", coords={"cost": [0.0, 0.005]})
    res = ql.backtest(ds.sel(asset=["AAPL", "IBM"]), sig.sel(asset=["AAPL", "IBM"]),
                      fees=fees)
    sheet = res.tearsheet()
    sel = list(sheet.select({"type": Select}))[0]
    assert sel.options == ["AAPL · cost=0.0", "AAPL · cost=0.005", "IBM · cost=0.0",
                           "IBM · cost=0.005"]
    cb = list(sheet.select({"type": CustomJS}))
    assert len(cb) == 1
    srcs, alts = cb[0].args["srcs"], cb[0].args["alts"]
    assert len(srcs) == len(alts) and all(len(a) == 4 for a in alts)
    names = [s.name for s in srcs]
    assert {"summary", "eq", "dd", "ddtab", "heat", "year", "roll", "hist", "risk",
            "trades", "pos"} <= set(names)
    eq, tr = alts[names.index("eq")], alts[names.index("trades")]
    t = res.trades
    for i, (asset, cost) in enumerate([("AAPL", 0.0), ("AAPL", 0.005), ("IBM", 0.0),
                                       ("IBM", 0.005)]):
        np.testing.assert_allclose(eq[i].data["strategy"],
                                   res.equity.sel(asset=asset, cost=cost).values, rtol=1e-12)
        # the trade list differs per column and matches res.trades
        n = int(((t["asset"] == asset) & (t["cost"] == cost)).sum())
        assert len(tr[i].data["entry"]) == n > 0
    assert "cb_obj.value" in cb[0].code and "srcs[j].data = alts[j][i].data" in cb[0].code


def test_tearsheet_plain_returns_series_and_dataframe(res):
    from bokeh.models import Select

    r = res.returns.sel(asset="IBM").to_series()
    sheet = plots.tearsheet(r, window=21, title="IBM <b>")
    assert not list(sheet.select({"type": Select}))
    assert "IBM &lt;b&gt;" in sheet.children[0].text
    assert not list(sheet.select({"name": "trades"}))   # no trades given: no trade list
    frame = res.returns.to_pandas()[["AAPL", "MSFT"]]
    sheet2 = plots.tearsheet(frame, benchmark=r, window=21)
    assert list(sheet2.select({"type": Select}))[0].options == ["AAPL", "MSFT"]


def test_res_tearsheet_trades_false_leaves_out_the_trade_list(res_group):
    sheet = res_group.tearsheet(trades=False, window=63)
    assert not list(sheet.select({"name": "trades"}))
    assert "63 bars" in " ".join(f.title.text for f in _figures(sheet))


def test_tearsheet_equity_through_zero_uses_a_linear_axis():
    from bokeh.models import LinearAxis

    t = pd.date_range("2020-01-01", periods=50, freq="B")
    r = pd.Series(0.01, index=t)
    r.iloc[30] = -1.0     # wiped out: a log axis cannot show 0
    sheet = plots.tearsheet(r, window=10)
    eq = [f for f in _figures(sheet) if f.title.text.startswith("equity")][0]
    assert isinstance(eq.left[0], LinearAxis) and "linear" in eq.title.text


def test_tearsheet_static_html_has_no_http_resource(sheet):
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    page = file_html(sheet, INLINE, "tear sheet")
    assert not re.findall(r"""<(?:script|link)[^>]*(?:src|href)\s*=\s*["']?https?:""", page)
    assert "Bokeh.embed" in page and '"DataTable"' in page   # tables serialised, JS inline


@pytest.mark.parametrize("kw, err, match", [
    ({"window": 10_000}, ValueError, "window"),
    ({"window": 1}, ValueError, "window"),
    ({"periods": 0}, ValueError, "periods"),
    ({"capital": -1.0}, ValueError, "capital"),
    ({"trades": pd.DataFrame({"pnl": [1.0]})}, ValueError, "entry_time"),
    ({"trades": [1, 2]}, TypeError, "trades"),
    ({"positions": xr.DataArray(np.zeros((3270, 2, 2)), dims=("time", "asset", "x"))},
     ql.DataError, "'time' coordinate"),
])
def test_tearsheet_bad_options_are_named(res, kw, err, match):
    with pytest.raises(err, match=match):
        plots.tearsheet(res.returns.sel(asset="AAPL"), **kw)


def test_tearsheet_repeated_column_labels_and_extra_beyond_the_columns_are_refused():
    t = pd.date_range("2020-01-01", periods=40, freq="B")
    frame = pd.DataFrame(np.full((40, 2), 0.001), index=t, columns=["a", "a"])
    with pytest.raises(ql.DataError, match=r"repeated column labels \['a'\]"):
        plots.tearsheet(frame, window=5)
    r = xr.DataArray(np.full((40, 2), 0.001), dims=("time", "asset"),
                     coords={"time": t, "asset": ["a", "b"]})
    extra = xr.Dataset({"n_trades": (("asset", "k"), np.zeros((2, 3)))},
                       coords={"asset": ["a", "b"]})
    with pytest.raises(ValueError, match="one value per returns column"):
        plots.tearsheet(r, window=5, extra=extra)


def test_tearsheet_bad_returns_are_refused():
    t = pd.date_range("2020-01-01", periods=30, freq="B")
    with pytest.raises(ql.DataError, match="inf"):
        plots.tearsheet(pd.Series([0.01] * 29 + [np.inf], index=t), window=5)
    with pytest.raises(TypeError, match="returns"):
        plots.tearsheet([0.01, 0.02])
    with pytest.raises(TypeError, match="complex"):
        plots.tearsheet(pd.Series(np.ones(30) * 1j, index=t), window=5)
    with pytest.raises(ql.DataError, match="time"):
        plots.tearsheet(xr.DataArray(np.zeros(30), dims="x"), window=5)
    with pytest.raises(ql.DataError, match="no timestamp"):
        plots.tearsheet(pd.Series(0.01, index=t), pd.Series(0.01, index=t + pd.Timedelta(days=3650)),
                    window=5)
    with pytest.raises(ql.DataError, match="strictly increasing"):
        plots.tearsheet(pd.Series(0.01, index=t[::-1]), window=5)
    with pytest.raises(ql.DataError, match="datetimes"):
        plots.tearsheet(xr.DataArray(np.zeros(30), dims="time", coords={"time": np.arange(30)}),
                    window=5)
    wide = xr.DataArray(np.zeros((30, 65)), dims=("time", "asset"),
                        coords={"time": t, "asset": [f"A{i}" for i in range(65)]})
    with pytest.raises(ValueError, match="65 columns"):
        plots.tearsheet(wide, window=5)


def test_tearsheet_positions_with_two_extra_dims_is_refused(res):
    pos = xr.DataArray(np.zeros((res.returns.sizes["time"], 2, 2)), dims=("time", "a", "b"),
                       coords={"time": res.returns["time"].values})
    with pytest.raises(ValueError, match="at most one dim"):
        plots.tearsheet(res.returns.sel(asset="AAPL"), positions=pos)


def test_summary_text_and_html_are_short_and_formatted(res, res_group):
    text = T.summary_text(res)
    assert len(text.splitlines()) < 15 and "4 accounts (asset: 4)" in text
    m = res.metrics().sel(asset="AAPL")
    assert fmt.metric("total_return", float(m["total_return"])) in text
    assert fmt.money(float(m["fees_paid"])) in text
    assert "res.equity" in text and "res.tearsheet()" in text
    assert "2000-03-01" in text and "3,270 bars" in text
    html = T.summary_html(res_group)
    assert "<table" in html and "1 account, a portfolio of 4 assets" in html
    assert f"{len(res_group.trades)} trades" in html
    assert fmt.metric("total_return", float(res_group.metrics()["total_return"])) in html


def test_tearsheet_leaves_out_an_all_nan_column_and_refuses_all(res):
    # a backtest's asset not yet listed has no observation (session 56): its column is
    # left out and said; only returns with no observation at all are refused
    r = res.returns.copy()
    r.loc[{"asset": "IBM"}] = np.nan
    with pytest.warns(UserWarning, match=r"column\(s\) \['IBM'\] left out: no observation"):
        _, _, _, cols = T._inputs(r)
    assert [c[0] for c in cols] == [a for a in r.asset.values.tolist() if a != "IBM"]
    with pytest.raises(ql.DataError, match="'AAPL' has no observation"):
        plots.tearsheet(r * np.nan)


def test_tearsheet_flat_column_still_draws_every_figure():
    from bokeh.models import GlyphRenderer

    t = pd.date_range("2020-01-01", periods=60, freq="B")
    sheet = plots.tearsheet(pd.Series(0.0, index=t), window=20)   # Sharpe NaN everywhere
    for f in _figures(sheet):
        data = [g.data_source.data for g in f.renderers if isinstance(g, GlyphRenderer)]
        assert any(np.isfinite(np.asarray(v, dtype=float)).any() for d in data
                   for k, v in d.items() if k not in ("time", "xs", "ys") and len(v)
                   and np.asarray(v).dtype.kind == "f"), f.title.text


def test_tearsheet_static_html_select_switches_offline_in_a_browser(tmp_path, res):
    """The saved page, all network blocked: no bokeh warning or error, every plot has
    data, and the Select swaps the data to the chosen column (CustomJS, no kernel)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    from bokeh.embed import file_html
    from bokeh.resources import INLINE
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "tearsheet.html"
    page_file.write_text(file_html(res.tearsheet(benchmark="buy_and_hold"), INLINE,
                                   "tear sheet"))
    last = "d => d.get_model_by_name('eq').data.strategy.at(-1)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium,
                                     args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        logs, requests = [], []
        page.on("console", lambda m: logs.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: logs.append(f"error: {e}"))
        page.route("http*://**", lambda route: (requests.append(route.request.url),
                                                route.abort()))
        page.goto(page_file.as_uri())
        page.wait_for_function("window.Bokeh && Bokeh.documents.length > 0")
        page.wait_for_timeout(1500)
        doc = "Bokeh.documents[0]"
        empty = page.evaluate(f"""() => {{
            const d = {doc}, out = [];
            let n = 0;
            for (const m of d.all_models) {{
                if (!(m.renderers && m.toolbar)) continue;
                n += 1;
                const ok = m.renderers.some(r => r.data_source &&
                    Object.values(r.data_source.data).some(v => v.length > 0));
                if (!ok) out.push(m.title ? m.title.text : m.id);
            }}
            return [n, out]; }}""")
        before = page.evaluate(f"() => ({last})({doc})")
        page.select_option("select", "MSFT")
        page.wait_for_timeout(500)
        after = page.evaluate(f"() => ({last})({doc})")
        browser.close()
    assert not requests
    assert not [x for x in logs if x.startswith(("warning", "error"))], logs
    assert empty == [8, []]   # 8 plots (with exposure), none without data
    assert before == pytest.approx(float(res.equity.sel(asset="AAPL")[-1]), rel=1e-12)
    assert after == pytest.approx(float(res.equity.sel(asset="MSFT")[-1]), rel=1e-12)


# --------------------------------------------------------------------------- data vs drawing
# issue #26: tearsheet.py and fmt.py are research modules (data and number formatting);
# the drawing of the tear sheet lives in ql.plots

def test_tearsheet_and_fmt_data_functions_run_without_loading_bokeh():
    code = r"""
import sys
import quantlab as ql
from quantlab import fmt, tearsheet as T
ds = ql.data.load().isel(time=slice(0, 200)).sel(asset=["IBM", "MSFT"])
sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds)
res = ql.backtest(ds, sig, fees=0.001)
r = res.returns.sel(asset="IBM")
T.summary_table(r, r * 0.5, extra={"n_trades": 3.0}); T.drawdown_table(r)
T.monthly_returns(r); T.yearly_returns(r); T.rolling_stats(r, 21); T.trade_list(res.trades)
T.result_inputs(res, "buy_and_hold"); T.summary_text(res); T.summary_html(res)
fmt.metric("total_return", 0.1)
assert not hasattr(fmt, "money_tick_formatter") and not hasattr(T, "tearsheet")
print(sorted(m for m in sys.modules if m.split(".")[0] in ("bokeh", "ipywidgets", "jupyter_bokeh")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[]", out.stdout


def _canonical_json(layout) -> str:
    from bokeh.embed import json_item

    s = json.dumps(json_item(layout), sort_keys=True)
    ids = {}
    return re.sub(r'"p\d+"', lambda m: ids.setdefault(m.group(0), f'"ID{len(ids)}"'), s)


def test_res_tearsheet_draws_the_same_document_as_plots_tearsheet():
    ds = ql.data.load().isel(time=slice(0, 150)).sel(asset=["IBM", "MSFT"])
    res = ql.backtest(ds, ql.strategies.get("volatility_regime", window=10,
                                            lookback=60).signal(ds), fees=0.001)
    want = _canonical_json(plots.tearsheet(res, "buy_and_hold", window=21, title="t"))
    assert _canonical_json(res.tearsheet("buy_and_hold", window=21, title="t")) == want
    # the pieces it draws are ql.tearsheet's data
    kw = T.result_inputs(res, "buy_and_hold")
    assert kw["capital"] == res.init_cash and kw["trades"] is res.trades
    assert list(kw["extra"].data_vars) == ["n_trades", "fees_paid", "turnover", "exposure",
                                           "trade_win_rate", "trade_profit_factor"]
    np.testing.assert_allclose(kw["positions"].sel(asset="IBM"),
                               (res.positions * ds["close"]).sel(asset="IBM")
                               / res.equity.sel(asset="IBM"), rtol=1e-12)
    assert "trades" not in T.result_inputs(res, trades=False)
    with pytest.raises(ValueError, match="benchmark"):
        T.result_inputs(res, "sp500")


def test_summary_table_values_equal_ql_metrics_with_benchmark_and_extra(res):
    r, b = res.returns.sel(asset="AAPL"), res.returns.sel(asset="MSFT")
    t = T.summary_table(r.to_series(), b.to_series(), periods=252, risk_free_rate=0.02,
                        extra={"n_trades": 7.0})
    assert list(t.columns) == ["metric", "strategy", "benchmark", "name", "value", "note"]
    assert t["name"].tolist() == ["start", "end", "periods", *T.SUMMARY, *T.PAIRED,
                                  "n_trades"]
    v = dict(zip(t["name"], t["value"]))
    rf = 1.02 ** (1 / 252) - 1
    assert v["sharpe_ratio"] == pytest.approx(float(ql.metrics.sharpe_ratio(r, risk_free=rf)),
                                              rel=1e-12)
    assert v["beta"] == pytest.approx(float(ql.metrics.beta(r, b)), rel=1e-9)
    row = t.set_index("name").loc["total_return"]
    assert row["strategy"] == fmt.pct(float(ql.metrics.total_return(r)))
    assert row["benchmark"] == fmt.pct(float(ql.metrics.total_return(b)))
    assert t.set_index("name").loc["n_trades", "strategy"] == "7"
    assert t.set_index("name").loc["periods", "strategy"] == fmt.count(int(r.notnull().sum()))


def test_rolling_stats_equal_a_numpy_window_by_window_reference():
    rng = np.random.default_rng(3)
    t = pd.date_range("2020-01-01", periods=80, freq="B")
    r = pd.Series(rng.normal(0.001, 0.01, 80), index=t)
    r.iloc[10] = np.nan                        # no observation: NaN there, windows skip it
    r.iloc[50:60] = 0.002                      # a flat window: no Sharpe ratio
    got = T.rolling_stats(r, window=10, periods=12, risk_free_rate=0.05)
    rf = 1.05 ** (1 / 12) - 1
    x = r.to_numpy()
    for i in range(80):
        seen = x[:i + 1][~np.isnan(x[:i + 1])]
        w = seen[-10:]                         # the last 10 observations
        if np.isnan(x[i]) or len(w) < 10:
            assert np.isnan(got["volatility"].iloc[i]), i
            continue
        sd = w.std(ddof=1)   # a flat window leaves ~1e-19 of rounding here, 0 in pandas
        assert got["volatility"].iloc[i] == pytest.approx(sd * np.sqrt(12), rel=1e-9, abs=1e-12)
        want = (w.mean() - rf) / sd * np.sqrt(12) if sd > 1e-12 else np.nan
        assert got["sharpe_ratio"].iloc[i] == pytest.approx(want, rel=1e-6, nan_ok=True), i
    assert np.isnan(got["sharpe_ratio"].iloc[59])   # 50..59 flat
    with pytest.raises(ValueError, match="window"):
        T.rolling_stats(r, window=1)
    with pytest.raises(ValueError, match="periods"):
        T.rolling_stats(r, periods=0)


def test_yearly_returns_equal_pandas_groupby_compounded(res):
    r = res.returns.sel(asset="GOOG").to_series()          # listed 2004: NaN years first
    got = T.yearly_returns(res.returns.sel(asset="GOOG"))
    want = (1 + r).groupby(r.index.year).prod(min_count=1) - 1
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-12)
    assert got.index.year.tolist() == want.index.tolist()


def test_trade_list_returns_are_pnl_over_entry_value_in_entry_order(res_group):
    tr = T.trade_list(res_group.trades)
    want = res_group.trades.sort_values("entry_time", kind="stable")
    assert tr["entry_time"].tolist() == want["entry_time"].tolist()
    np.testing.assert_allclose(tr["return"], want["pnl"] / (want["size"].abs()
                                                            * want["entry_price"]))
    assert tr["asset"].tolist() == want["asset"].astype(str).tolist()
    bare = res_group.trades[list(T.TRADE_COLUMNS)]         # no size: return unknown
    assert T.trade_list(bare)["return"].isna().all() and set(T.trade_list(bare)["asset"]) == {""}
    with pytest.raises(ValueError, match="entry_time"):
        T.trade_list(pd.DataFrame({"pnl": [1.0]}))
    with pytest.raises(TypeError, match="DataFrame"):
        T.trade_list([1, 2])


@pytest.mark.parametrize("func", [T.drawdown_table, T.monthly_returns, T.yearly_returns,
                                  T.rolling_stats, T.summary_table])
def test_tearsheet_data_functions_refuse_bad_series_by_name(func):
    t = pd.date_range("2020-01-01", periods=30, freq="B")
    with pytest.raises(TypeError, match="returns"):
        func([0.01, 0.02])                                   # no time index
    with pytest.raises(ValueError, match="one series on time"):
        func(xr.DataArray(np.zeros((30, 2)), dims=("time", "asset"),
                          coords={"time": t, "asset": ["a", "b"]}))
    with pytest.raises(ql.DataError, match="inf"):
        func(pd.Series([0.01] * 29 + [np.inf], index=t))
    with pytest.raises(ql.DataError, match="strictly increasing"):
        func(pd.Series(0.01, index=t[::-1]))
    with pytest.raises(TypeError, match="complex"):
        func(pd.Series(np.ones(30) * 1j, index=t))


@pytest.mark.parametrize("func, rule", [(T.monthly_returns, "ME"), (T.yearly_returns, "YE")])
def test_monthly_and_yearly_returns_are_one_compounding_bit_identical(ds, func, rule):
    # issue #26: both go through _compounded; values stay bit-identical to the old formula
    r = ql.data.returns(ds["close"].sel(asset="GOOG"))      # listed 2004: NaN periods first
    s = r.to_series()
    want = (1.0 + s).resample(rule).prod(min_count=1) - 1.0
    got = func(r)
    assert got.index.equals(want.index)
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())   # exact, NaN in place
    assert got.isna().any() and T._compounded(r, rule).equals(got)


@pytest.mark.parametrize("labels, message", [
    ([np.nan, "A"], r"returns column 0 has no label \(nan\)"),
    ([None, "A"], r"returns column 0 has no label \(None\)"),
    (["", "A"], r"returns column 0 has no label \(''\)"),
    (["A", "  "], r"returns column 1 has no label \('  '\)"),
    (["Nestl\u00e9", "Nestle\u0301"], r"repeated column labels \['Nestl"),   # NFC vs NFD
    (["AAPL", " AAPL "], r"repeated column labels \[' AAPL ', 'AAPL'\]"),
])
def test_tearsheet_columns_without_a_visible_distinct_label_are_refused(labels, message):
    t = pd.date_range("2020-01-01", periods=30, freq="B")
    df = pd.DataFrame(0.01, index=t, columns=pd.Index(labels, dtype=object))
    with pytest.raises(ql.DataError, match=message):
        plots.tearsheet(df, window=5)
    da = xr.DataArray(df.to_numpy(), dims=("time", "asset"),
                      coords={"time": t, "asset": np.array(labels, dtype=object)})
    on_asset = re.sub(r"column (\d) has no label.*", r"asset \1 has no label", message)
    with pytest.raises(ql.DataError, match=on_asset):   # xarray may store None as nan
        plots.tearsheet(da, window=5)


def test_tearsheet_keeps_labels_that_look_like_numbers_dates_or_nan_strings():
    t = pd.date_range("2020-01-01", periods=30, freq="B")
    labels = ["NaN", "None", "1", "1.0", "2020-01-01", "a", "A"]
    df = pd.DataFrame(np.arange(7) / 100 + np.zeros((30, 1)), index=t, columns=labels)
    from bokeh.models import Select
    lay = plots.tearsheet(df, window=5)
    assert lay.select_one({"type": Select}).options == labels


def test_a_short_result_gets_a_tear_sheet_with_the_default_window(ds):
    # 2 bars: "window must be an integer in [2, 2], got 126", a window never given
    short = ds.isel(time=slice(0, 2))
    res = ql.backtest(short, xr.ones_like(short["close"]))
    assert type(res.tearsheet()).__name__ == "Column"
    with pytest.raises(ValueError, match=r"window must be an integer in \[2, 2\], got 5"):
        res.tearsheet(window=5)                     # one given is still checked


def test_drawdown_table_capital_and_top_are_checked(res):
    r = res.returns.isel(asset=0)
    for capital in (0, -1.0, np.nan):   # an empty table (NaN drawdowns), or nonsense
        with pytest.raises(ValueError, match="capital"):
            T.drawdown_table(r, capital=capital)
    with pytest.raises(ValueError, match="top"):   # head(-1): all but the shallowest
        T.drawdown_table(r, top=-1)
    assert T.drawdown_table(r, top=0).empty
