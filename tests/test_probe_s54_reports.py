"""Session 54 probe of the shared reports: the index of a report folder and the tear
sheets on edge inputs (what they show, not only that they build)."""
import os
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab import suite, tearsheet

PROV = {"git_commit": "x", "data_sha256": "y"}


def test_index_does_not_link_an_earlier_batchs_report_deleted_since(tmp_path):
    # an earlier batch listed a.html and b.html; a.html was deleted, then a rebuild of b
    # kept a in the index (earlier runs stay listed) with a link to the missing page
    for name in ("a", "b"):
        (tmp_path / f"{name}.html").write_text("report")
    suite.write_index([suite.Run(f"{n}.ipynb", status="ok", html=str(tmp_path / f"{n}.html"))
                       for n in ("a", "b")], tmp_path, PROV)
    (tmp_path / "a.html").unlink()
    page = suite.write_index([suite.Run("b.ipynb", status="ok", html=str(tmp_path / "b.html"))],
                             tmp_path, PROV).read_text()
    assert 'href="./b.html"' in page
    assert 'href="./a.html"' not in page
    assert "its report a.html is no longer in this folder" in page
    assert [r.name for r in suite.read_index(tmp_path)] == ["a", "b"]   # still listed


# --------------------------------------------------------------------------- tear sheets
# A value the tear sheet cannot compute read a bare "n/a" (and an all-NaN benchmark's
# Start/End showed dates it never observed): each now says why, in the summary's note.


def _days(values, start="2020-01-01", freq="B"):
    t = pd.date_range(start, periods=len(values), freq=freq)
    return xr.DataArray(np.asarray(values, float), dims="time", coords={"time": t})


def _notes(table):
    t = table.set_index("name")
    return {k: (t.loc[k, "strategy"], t.loc[k, "benchmark"], t.loc[k, "note"]) for k in t.index}


def test_summary_says_why_a_flat_strategy_has_no_ratios():
    rows = _notes(tearsheet.summary_table(_days(np.zeros(300))))
    assert rows["sharpe_ratio"] == ("n/a", "", "returns never vary (no position?)")
    assert rows["profit_factor"][2] == "returns never vary (no position?)"
    assert rows["calmar_ratio"] == ("n/a", "", "no drawdown")
    assert rows["recovery_time"] == ("0 bars", "", "")   # never under water: recovered
    assert rows["total_return"] == ("0.0 %", "", "")   # a value needs no note


def test_summary_of_an_all_nan_benchmark_shows_no_dates_and_says_why():
    r = _days(np.random.default_rng(0).normal(0, 0.01, 300))
    rows = _notes(tearsheet.summary_table(r, r * np.nan))
    assert rows["start"][1:] == ("n/a", "benchmark: no observation")
    assert rows["end"][1] == "n/a" and rows["periods"][1] == "0"
    assert rows["sharpe_ratio"][1:] == ("n/a", "benchmark: no observation")
    assert rows["beta"] == ("n/a", "", "0 periods observed by both; needs 2")


def test_summary_of_a_very_short_series_says_what_it_extrapolates_and_cannot_compute():
    rows = _notes(tearsheet.summary_table(_days([np.nan, 0.03])))
    assert rows["annual_return"][2] == "annualised from 1 period (a year is 252)"
    assert rows["annual_volatility"] == ("n/a", "", "1 observed period; needs 2")
    assert rows["profit_factor"] == ("inf", "", "no losing period")
    # a 24/7 year of daily bars is a full year at periods=365: no note
    week = _days(np.random.default_rng(1).normal(0, 0.01, 400), freq="D")
    assert _notes(tearsheet.summary_table(week, periods=365))["sharpe_ratio"][2] == ""


def test_tearsheet_of_a_backtest_that_never_trades_shows_the_notes():
    from bokeh.models import ColumnDataSource, DataTable

    ds = ql.data.load().isel(time=slice(0, 300)).sel(asset=["IBM"])
    res = ql.backtest(ds, xr.zeros_like(ds["close"]))
    sheet = res.tearsheet()
    src = {m.name: m for m in sheet.select({"type": ColumnDataSource}) if m.name}
    summary = dict(zip(src["summary"].data["name"], src["summary"].data["note"]))
    assert summary["trade_win_rate"] == "no trades"
    assert summary["sharpe_ratio"] == "returns never vary (no position?)"
    table = next(t for t in sheet.select({"type": DataTable}) if t.source is src["summary"])
    assert [c.field for c in table.columns] == ["metric", "strategy", "note"]


def test_tear_sheet_annualises_a_24_7_series_by_its_calendar_as_ql_metrics():
    # a fixed default of 252 gave an hourly 24/7 series a Sharpe ratio of -0.44 where
    # ql.metrics (and the note's "a year") infer 8760 bars a year: -2.62
    from bokeh.models import ColumnDataSource

    rng = np.random.default_rng(0)
    hourly = pd.Series(rng.normal(0, 0.003, 2000),
                       index=pd.date_range("2021-01-01", periods=2000, freq="h"))
    daily = pd.Series(rng.normal(0, 0.03, 400),
                      index=pd.date_range("2021-01-01", periods=400, freq="D"))
    for r, ppy in ((hourly, 8760), (daily, 365)):
        want = float(ql.metrics.sharpe_ratio(r))
        t = tearsheet.summary_table(r).set_index("name")
        assert t.loc["sharpe_ratio", "value"] == pytest.approx(want, rel=1e-9)
        vol = tearsheet.rolling_stats(r, window=100)["volatility"].iloc[-1]
        assert vol == pytest.approx(r.iloc[-100:].std() * np.sqrt(ppy), rel=1e-9)
    sheet = ql.plots.tearsheet(hourly)
    src = {m.name: m for m in sheet.select({"type": ColumnDataSource}) if m.name}
    rows = dict(zip(src["summary"].data["name"], zip(src["summary"].data["value"],
                                                     src["summary"].data["note"])))
    assert rows["sharpe_ratio"][0] == pytest.approx(float(ql.metrics.sharpe_ratio(hourly)))
    assert rows["sharpe_ratio"][1] == "annualised from 2,000 periods (a year is 8,760)"
    # a given periods still wins
    given = tearsheet.summary_table(hourly, periods=252).set_index("name")
    assert given.loc["sharpe_ratio", "value"] == pytest.approx(
        float(ql.metrics.sharpe_ratio(hourly, annualization=252)), rel=1e-9)


def test_a_report_page_is_titled_by_its_run_name_escaped(tmp_path):
    # every report's <title> read "Notebook": fifteen tabs of a shared folder alike
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Quickstart")])
    nbformat.write(nb, tmp_path / "q.ipynb")
    for stem, title in (("00_quickstart-MSFT", "00_quickstart-MSFT"),
                        ("a <b>é", "a &lt;b&gt;é")):
        out = tmp_path / f"{stem}.html"
        suite.render_html(tmp_path / "q.ipynb", out, self_contained=False)
        assert f"<title>{title}</title>" in out.read_text(encoding="utf-8")


def test_a_never_trading_tear_sheet_opens_offline_and_shows_why_in_the_browser(tmp_path):
    # the one browser test: the saved page (BokehJS inline) opened from file:// with the
    # network blocked draws its figures and shows the notes' text in the summary table
    import shutil

    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no chromium found: .ci/run installs it (apt chromium)")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    ds = ql.data.load().isel(time=slice(0, 300)).sel(asset=["IBM"])
    page_file = tmp_path / "never trades <é>.html"
    page_file.write_text(file_html(ql.backtest(ds, xr.zeros_like(ds["close"])).tearsheet(),
                                   INLINE, "t"), encoding="utf-8")
    requests, errors = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium,
                                     args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.route(re.compile(r"^(https?|wss?)://"),
                       lambda route: (requests.append(route.request.url), route.abort()))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_file.as_uri())
            page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0",
                                   timeout=30_000)
            page.wait_for_timeout(1500)
            cells = page.evaluate("""() => {
              const out = [];
              const walk = n => { for (const e of n.querySelectorAll('*')) {
                if (e.classList && e.classList.contains('slick-cell')) out.push(e.innerText);
                if (e.shadowRoot) walk(e.shadowRoot); } };
              walk(document); return out; }""")
            canvases = page.evaluate("""() => { let k = 0;
              const walk = n => { for (const e of n.querySelectorAll('*')) {
                if (e.tagName === 'CANVAS') k++; if (e.shadowRoot) walk(e.shadowRoot); } };
              walk(document); return k; }""")
        finally:
            browser.close()
    assert requests == [] and errors == []
    assert canvases >= 7   # equity, underwater, heatmap, yearly, 2 rolling, histogram
    assert "returns never vary (no position?)" in cells and "no trades" in cells


def test_risk_report_tables_say_n_a_for_a_stress_window_outside_the_data():
    # 05_risk's report showed "NaN" as the P&L of the 2015-2020 scenarios (data end 2013)
    from quantlab import risk

    ds = ql.data.load().isel(time=slice(0, 300))
    sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds)
    report = risk.RiskManager().generate_risk_report(ql.backtest(ds, sig, group=True))
    uncovered = report.stress.loc[~report.stress["covered"]]
    assert len(uncovered) and uncovered["pnl"].isna().all()
    page = report.tables_html()
    assert "NaN" not in page
    assert "n/a: a window the data do not cover" in page
    for name in uncovered.index:
        row = page.split(f"<th>{name}</th>")[1].split("</tr>")[0]
        assert "<td>n/a</td>" in row and "<td>False</td>" in row


def test_a_batchs_report_links_back_to_its_index_and_a_lone_report_does_not(tmp_path):
    # a report opened from the folder had no way back to the others
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nb.cells[0].execution_count = 1
    nb.cells[0].outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "2"},
                                                  execution_count=1)]
    nbformat.write(nb, tmp_path / "two.ipynb")
    out = tmp_path / "my reports é"
    (run,) = suite.run_suite([suite.Run(str(tmp_path / "two.ipynb"))], out, render=True,
                             index=True, from_stored=True, keep_notebooks=False,
                             log=open(os.devnull, "w"))
    page = (out / "two.html").read_text(encoding="utf-8")
    assert run.status == "ok"
    assert page.count('<a href="./index.html">\u2190 all reports</a>') == 1
    assert re.search(r"<body[^>]*><nav", page)   # at the top
    suite.render_html(tmp_path / "two.ipynb", tmp_path / "alone.html", self_contained=False)
    assert "index.html" not in (tmp_path / "alone.html").read_text(encoding="utf-8")
