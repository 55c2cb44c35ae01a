"""Session 60 probe: one number, every surface that shows it.

The same backtests on the bundled equities read through ``res.metrics()``, the repr,
the tear sheet (its HTML parsed), the deployment page, the CLI's lines, the sweep
explorer and the report index: each test is a value one surface showed otherwise than
another (another unit, sign or rounding; a number where another says n/a; a bare n/a;
a page not saying what ran).
"""
import base64
import gzip
import html
import json
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab import fmt, suite
from quantlab import tearsheet as ts


@pytest.fixture(scope="module")
def ds():
    return ql.data.load().isel(time=slice(0, 400))


def _sources(page: str) -> list:
    """(name, data dict) of every ColumnDataSource of a bokeh HTML page, in page order."""
    def value(v):
        if isinstance(v, dict) and v.get("type") == "ndarray":
            a = v["array"]
            if isinstance(a, dict) and a.get("type") == "bytes":
                raw = base64.b64decode(a["data"])
                if raw[:2] == b"\x1f\x8b":   # bokeh gzips large arrays
                    raw = gzip.decompress(raw)
                return np.frombuffer(raw, dtype=v["dtype"]).tolist()
            return a
        return v

    found = []
    for doc in _docs(page):
        for o in _objects(doc, "ColumnDataSource"):
            data = o["attributes"].get("data", {})
            if isinstance(data, dict) and data.get("type") == "map":
                found.append((o["attributes"].get("name"),
                              {k: value(v) for k, v in data["entries"]}))
    return found


def _docs(page: str) -> list:
    return [json.loads(m.group(1)) for m in re.finditer(
        r'<script type="application/json" id="[^"]+">\s*(.*?)\s*</script>', page, re.S)]


def _objects(o, name):
    """Every serialised bokeh model named ``name`` in ``o`` (depth first, page order)."""
    if isinstance(o, dict):
        if o.get("name") == name and "attributes" in o:
            yield o
        for v in o.values():
            yield from _objects(v, name)
    elif isinstance(o, list):
        for v in o:
            yield from _objects(v, name)


def _summaries(page: str) -> list:
    """The tear sheet's summary tables: the one shown (its first column's), then one per
    column in the Select's order when there are several."""
    tables = [(n, d) for n, d in _sources(page) if {"metric", "strategy", "note"} <= set(d)]
    shown = [d for n, d in tables if n == "summary"]
    return shown + [d for n, d in tables if n is None]


def _page(layout) -> str:
    from bokeh.embed import file_html
    from bokeh.resources import CDN

    return file_html(layout, CDN, "t")


def _tracking(ds, asset, n):
    """A buy-and-hold account beside its own buy-and-hold benchmark, a 30-bar gap in
    its bars: the two streams agree up to rounding."""
    d = ds.sel(asset=[asset]).dropna("time").isel(time=slice(0, n))
    d = d.where(~((d.time >= d.time[50]) & (d.time < d.time[80])))
    return ql.backtest(d, xr.ones_like(d["close"]).where(d["close"].notnull()), progress=False)


# ---- information ratio: a stream tracking its benchmark --------------------------------

@pytest.mark.parametrize("asset, n", [("AAPL", 200), ("MSFT", 400), ("GOOG", 1000)])
def test_information_ratio_of_a_stream_tracking_its_benchmark_is_undefined(asset, n):
    # the co-moments' difference cancelled to rounding: a tracking error of 0.0 % beside
    # an information ratio of inf or -inf ("no losing period"), or of a noise-made 4e-08
    # beside a tracking error of 1e-08
    res = _tracking(ql.data.load(), asset, n)
    kw = ts.result_inputs(res, "buy_and_hold")
    r, b = kw["returns"].isel(asset=0), kw["benchmark"].isel(asset=0)
    assert float(np.nanmax(np.abs((r - b).values))) < 1e-12   # the same stream
    assert float(ql.metrics.tracking_error(r, b)) == 0.0
    assert np.isnan(ql.metrics.information_ratio(r, b))
    s = ql.metrics.summary(r, benchmark=b)
    assert np.isnan(s["information_ratio"]) and float(s["tracking_error"]) == 0.0
    table = _summaries(_page(ql.plots.tearsheet(res, "buy_and_hold")))[0]
    row = dict(zip(table["name"], zip(table["strategy"], table["note"])))
    assert row["information_ratio"] == ("n/a", "tracks the benchmark exactly (tracking "
                                        "error 0)")
    assert row["tracking_error"][0] == "0.0 %"


def test_information_ratio_away_from_the_benchmark_is_unchanged(ds):
    r = ql.data.returns(ds["close"].sel(asset="IBM"))
    b = ql.data.returns(ds["close"].sel(asset="MSFT"))
    ok = (r.notnull() & b.notnull()).values
    d = (r - b).values[ok]
    want = d.mean() * 252 / (d.std(ddof=1) * np.sqrt(252))
    assert float(ql.metrics.information_ratio(r, b)) == pytest.approx(want, rel=1e-9)
    tiny = r + 1e-4 * b   # a small, real spread is still measured
    assert float(ql.metrics.tracking_error(tiny, r)) == pytest.approx(
        1e-4 * np.nanstd(b.values[ok], ddof=1) * np.sqrt(252), rel=1e-6)


# ---- why a value reads n/a or inf -------------------------------------------------------

def test_a_constant_gain_reads_inf_sharpe_for_its_lack_of_volatility():
    r = pd.Series([0.001] * 30, index=pd.bdate_range("2020-01-01", periods=30))
    t = ts.summary_table(r).set_index("name")
    assert t.loc["sharpe_ratio", "strategy"] == "inf"
    assert t.loc["sharpe_ratio", "note"] == "returns never vary (volatility 0)"   # was:
    # "no losing period", the Sortino ratio's and profit factor's reason
    assert t.loc["sortino_ratio", "note"] == "no losing period"


def test_stability_after_losing_all_the_capital_says_why_it_reads_n_a(ds):
    # a levered account lost more than its equity in one bar: log1p of that return has
    # no value, and the tear sheet showed a bare n/a (every other n/a has a reason)
    d = ql.data.load().sel(asset=["AAPL"]).isel(time=slice(0, 800))
    res = ql.backtest(d, xr.ones_like(d["close"]), max_leverage=3.5,
                      maintenance_margin=0.2, progress=False)
    assert float(res.returns.min()) < -1
    t = _summaries(_page(ql.plots.tearsheet(res)))[0]
    row = dict(zip(t["name"], zip(t["strategy"], t["note"])))
    assert row["stability_of_timeseries"] == (
        "n/a", "a period lost all the capital (a return of -100 % or below)")
    na = [k for k, (shown, note) in row.items() if shown == "n/a" and not note]
    assert not na, f"n/a without a reason: {na}"


# ---- the sweep explorer's cells in the metric's unit ------------------------------------

def test_sweep_explorer_labels_cells_as_the_tear_sheet_shows_the_metric(ds):
    # the heatmap wrote every metric with '.3g': a drawdown of -15.0 % as "-0.15", fees
    # paid of 37,926 as "3.79e+04", a duration without its unit
    d = ds.isel(time=slice(0, 300))
    names = ("max_drawdown", "fees_paid", "drawdown_duration", "sharpe_ratio")
    sw = ql.sweep("volatility_regime", d, {"window": [10, 20], "lookback": [40, 60]},
                  metrics=names, fees=0.001, progress=False)
    for name in names:
        e = ql.widgets.SweepExplorer(sw, d, metric=name)
        want = [fmt.metric(name, v) for v in e.source.data["value"]]
        assert e.source.data["label"] == want, name
    s = ql.strategies.get("volatility_regime", window=10, lookback=40)
    res = ql.backtest(d, s.signal(d), fees=0.001, progress=False)
    e = ql.widgets.SweepExplorer(sw, d, metric="max_drawdown")
    cell = e.source.data["label"][0]   # x = window 10, y = lookback 40, asset AAPL
    assert cell == fmt.metric("max_drawdown", float(res.metrics()["max_drawdown"].sel(
        asset="AAPL"))) and cell.endswith(" %")


# ---- the deployment page says what runs -------------------------------------------------

def test_deployment_page_heads_with_the_strategy_parameters_and_options(ds):
    # only the <title> named the strategy (no parameters, no fees, a time of day
    # "T00:00:00" unlike every other date); the heading the docstring promised was missing
    dep = ql.deploy("volatility_regime", {"window": 5, "lookback": 20},
                    history=ds.isel(time=slice(0, 30)), fees=0.001)
    dep.replay(ds.isel(time=slice(30, 40)), echo=None)
    page = ql.plots.deployment_html(dep)
    assert "<title>Deployment: volatility_regime, to 2000-04-26</title>" in page
    div = [html.unescape(t["attributes"]["text"])   # the page escapes its JSON's text
           for d in _docs(page) for t in _objects(d, "Div")]
    head = [t for t in div if t.startswith("<h2>Deployment")]
    assert head == ["<h2>Deployment: volatility_regime, to 2000-04-26</h2><p>"
                    "ql.strategies.get(&#x27;volatility_regime&#x27;, window=5, lookback=20, "
                    "threshold=0.8, target_vol=0.15), fees=0.001</p>"]



# ---- every surface of a backtest shows its metrics alike --------------------------------

_CASES = {
    "per_asset": dict(),
    "group_costs": dict(group=True, fees=0.001, slippage=0.0005),
    "drawdown_halt": dict(dd_limit=0.1, dd_mode="halt"),
}


@pytest.mark.parametrize("case", list(_CASES))
def test_tear_sheet_repr_and_metrics_agree(case):
    ds = ql.data.load().isel(time=slice(1300, 1700))   # every stock listed (GOOG: 2004)
    sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds)
    res = ql.backtest(ds, sig, progress=False, **_CASES[case])
    m = res.metrics()
    tables = _summaries(_page(ql.plots.tearsheet(res, "buy_and_hold")))
    keys = [d for d in res.returns.dims if d != "time"]
    labels = [str(v) for v in res.returns[keys[0]].values] if keys else ["strategy"]
    assert len(tables) == (1 if len(labels) == 1 else 1 + len(labels))
    text = ts.summary_text(res)
    odd = re.compile(r"nan|NaN|^-0(\.0+)?( %)?$|^\+0(\.0+)?( %)?$")
    for i, label in enumerate(labels):
        mm = m.sel({keys[0]: label}) if keys else m
        table = tables[0] if len(labels) == 1 else tables[1 + i]
        for k, shown, bench, note in zip(table["name"], table["strategy"],
                                         table["benchmark"], table["note"]):
            assert not odd.search(shown) and not odd.search(bench), (label, k, shown, bench)
            if shown == "n/a":
                assert note, (label, k)
            if k in mm and k != "recovery_time":
                assert shown == fmt.metric(k, float(mm[k])), (label, k)
        row = dict(zip(table["name"], table["strategy"]))
        n = int(res.returns.sel({keys[0]: label}).notnull().sum()) if keys else \
            int(res.returns.notnull().sum())
        assert row["periods"] == fmt.count(n)
        line = next(ln for ln in text.splitlines()
                    if ln.strip().startswith("portfolio" if not keys else label))
        for k in ts.HEADLINE:
            assert fmt.metric(k, float(mm[k])) in line, (label, k, line)
    assert f"{res.periods} per year" in text


# ---- a risk manager's VaR in the report index --------------------------------------------

def test_recorded_risk_manager_var_reads_as_a_loss_not_a_gain(tmp_path, ds):
    # RiskManager's var_95 is a loss as a positive fraction; the index formatted it as
    # ql.metrics.value_at_risk (a signed return): a 2.1 % loss read "+2.1 %"
    r = ql.data.returns(ds["close"].sel(asset="IBM"))
    var = ql.risk.RiskManager().calculate_var(r)["var_95"]
    cvar = ql.risk.RiskManager().calculate_cvar(r)["cvar_95"]
    assert var > 0 and cvar > 0
    assert suite._fmt(float(var), "var_95") == fmt.pct(float(var), sign=False)
    assert suite._fmt(float(cvar), "cvar_99") == fmt.pct(float(cvar), sign=False)
    # the signed quantile of ql.metrics keeps its sign: the same loss, the same digits
    q = float(ql.metrics.value_at_risk(r))
    assert suite._fmt(q, "value_at_risk") == "-" + suite._fmt(float(var), "var_95")
    page = suite.write_index([suite.Run("r.ipynb", "r", status="ok",
                                        records={"var_95": float(var)})], tmp_path,
                             {"git_commit": "c", "data_sha256": "d"}).read_text()
    assert f'<span class="v">{fmt.pct(float(var), sign=False)}</span>' in page
    assert "+" not in fmt.pct(float(var), sign=False)


# ---- the tear sheet's drawdown table and distribution beside its summary -----------------

def _gapped_hold():
    """AAPL bought and held from 2000 (its long drawdown), a 30-bar gap in its bars."""
    d = ql.data.load().sel(asset=["AAPL"]).isel(time=slice(0, 700))
    d = d.where(~((d.time >= d.time[300]) & (d.time < d.time[330])))
    return ql.backtest(d, xr.ones_like(d["close"]).where(d["close"].notnull()),
                       progress=False)


@pytest.mark.parametrize("gap", [False, True])
def test_drawdown_lengths_count_what_the_summary_counts(gap):
    # "length" ran from the peak's bar to the recovery (one more than the bars under
    # water: 355 beside a "Longest drawdown" of 354) and counted the bars without a
    # return (340 beside 278)
    if gap:
        res = _gapped_hold()
    else:
        d = ql.data.load().isel(time=slice(0, 900)).sel(asset=["AAPL", "IBM", "MSFT"])
        sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(d)
        res = ql.backtest(d, sig, progress=False)
    for asset in res.returns["asset"].values:
        r = res.returns.sel(asset=asset)
        table = ts.drawdown_table(r, res.init_cash, top=1000)
        assert int(table["length"].max()) == float(ql.metrics.drawdown_duration(r)), asset
        done = table.dropna(subset=["recovery"]).iloc[0]   # peak and recovery excluded
        between = r.sel(time=(r.time > done["start"]) & (r.time < done["recovery"]))
        assert done["length"] == int(between.notnull().sum()), asset
    if gap:   # the page: its longest drawdown is among the deepest 5, as the summary says
        page = _page(ql.plots.tearsheet(res))
        dd = next(d for n, d in _sources(page) if n == "ddtab")
        shown = dict(zip(_summaries(page)[0]["name"], _summaries(page)[0]["strategy"]))
        assert shown["drawdown_duration"] == fmt.metric("length", max(dd["length"]))


def test_distribution_marks_var_and_cvar_as_the_summary_rounds_them():
    # the legend said "VaR 95 % -2.96 %" beside the summary's "-3.0 %"
    page = _page(ql.plots.tearsheet(_gapped_hold(), "buy_and_hold"))
    risk = next(d for n, d in _sources(page) if n == "risk")
    summary = _summaries(page)[0]
    shown = dict(zip(summary["name"], summary["strategy"]))
    assert risk["name"] == [f"VaR 95 % {shown['value_at_risk']}",
                            f"CVaR 95 % {shown['conditional_value_at_risk']}"]


# ---- an infinite record ------------------------------------------------------------------

def test_an_infinite_record_is_stored_as_json_and_read_back_as_the_number(monkeypatch,
                                                                          tmp_path):
    # JSON has no infinity: the kernel failed to pack the bundle, printed jupyter_client's
    # "Message serialization failed ... deprecated" warning into the report, and stored
    # the text 'inf', which the index then neither sorted nor counted as a number
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    monkeypatch.setattr("IPython.get_ipython", lambda: object())
    suite.record(profit_factor=np.inf, worst=-np.inf, sharpe_AAPL=np.float64(1.5))
    bundle = shown[0]
    json.dumps(bundle, allow_nan=False)   # strict JSON: what the kernel sends
    assert bundle[suite.RECORD_MIME] == {"profit_factor": "inf", "worst": "-inf",
                                         "sharpe_AAPL": 1.5}
    assert bundle["text/plain"] == "profit_factor: inf\nworst: -inf\nsharpe_AAPL: 1.50"
    runs = [suite.Run("a.ipynb", "a", status="ok", records=bundle[suite.RECORD_MIME]),
            suite.Run("b.ipynb", "b", status="ok", records={"profit_factor": 1.25})]
    page = suite.write_index(runs, tmp_path, {"git_commit": "c", "data_sha256": "d"}
                             ).read_text()
    assert '<th class="sort num">profit_factor</th>' in page
    assert '<td class="num" data-sort="Infinity">inf</td>' in page
    assert '<td class="num" data-sort="1.25">1.25</td>' in page
