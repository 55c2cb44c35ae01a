"""Explorers: controls update the figures' data in place; cached signals keep it fast."""
import numpy as np
import pytest

import quantlab as ql


def test_rolling_explorer_updates_in_place():
    ds = ql.data.load()
    e = ql.widgets.RollingExplorer(ds, window=20)
    before = np.array(e.source.data["z"])
    e.window.value = 60
    after = np.array(e.source.data["z"])
    np.testing.assert_allclose(after, ql.rolling.zscore(ds["close"].sel(asset="AAPL"), 60).values,
                               equal_nan=True)
    assert not np.allclose(before, after, equal_nan=True)


def test_strategy_explorer_controls_drive_the_backtest():
    ds = ql.data.load()
    e = ql.widgets.StrategyExplorer(ds, strategy="cross_sectional_momentum")
    names = [c.description for c in e.params.children]
    assert names == list(ql.strategies.get("cross_sectional_momentum").param_space)
    # the table equals a direct backtest of the same settings
    sig = ql.strategies.get("cross_sectional_momentum").signal(ds)
    res = ql.backtest(ds.sel(asset=["AAPL"]), sig.sel(asset=["AAPL"]), fees=0.001,
                      slippage=ql.Slippage("fixed", bps=5.0))
    assert e.metrics["total_return"] == float(res.metrics()["total_return"].sel(asset="AAPL"))
    eq_before = np.array(e.src["equity"].data["y"])
    e.fees.value = 0.005
    assert e.metrics["fees_paid"] > 0
    assert not np.allclose(eq_before, e.src["equity"].data["y"])
    e.asset.value = "IBM"
    np.testing.assert_allclose(e.src["price"].data["y"], ds["close"].sel(asset="IBM").values)
    n_cached = len(e._cache)
    e.asset.value = "MSFT"  # same strategy and parameters: the signal comes from the cache
    assert len(e._cache) == n_cached
    e.strategy.value = "spc"
    assert [c.description for c in e.params.children] == ["span", "k", "h"]
    e.params.children[0].value = 126
    assert ("spc", (("h", 4.0), ("k", 0.5), ("span", 126))) in e._cache
    # strategies whose data is missing are not offered
    close_only = ds[["close"]]
    assert "liquidity_timing" not in ql.widgets.StrategyExplorer(close_only).strategy.options


# ---- static copies (issue #28): exports and kernel-less viewers show the current state
from bokeh.models import GlyphRenderer, Plot  # noqa: E402

WIDGET = "application/vnd.jupyter.widget-view+json"


def _assert_figures_have_data(layout):
    figs = list(layout.select({"type": Plot}))
    assert figs
    for f in figs:
        glyphs = [r for r in f.renderers if isinstance(r, GlyphRenderer)]
        assert glyphs, f"figure {f.title.text!r} has no renderer"
        for r in glyphs:
            data = r.data_source.data
            assert data and all(len(v) for v in data.values()), \
                f"figure {f.title.text!r}: a glyph with an empty data source"
        for ax in [*f.xaxis, *f.yaxis]:
            assert ax.axis_label, f"figure {f.title.text!r}: an axis without a title"
    return figs


def _data(figs, title):
    """The first glyph's data of the figure whose title starts with ``title``."""
    f = [f for f in figs if f.title.text.startswith(title)][0]
    return [r for r in f.renderers if isinstance(r, GlyphRenderer)][0].data_source.data


def _assert_bundle(view):
    b = view._repr_mimebundle_()
    assert WIDGET in b                                   # a kernel renders the live widget
    assert not b["text/plain"].startswith(("VBox", "BokehModel"))
    html = b["text/html"]                                # exports render this one
    assert "needs a running kernel" in html and "<fieldset disabled" in html
    assert "ColumnDataSource" in html and "Bokeh.embed" in html
    return html


def test_rolling_explorer_static_output_is_its_current_state():
    ds = ql.data.load()
    e = ql.widgets.RollingExplorer(ds, window=20)
    e.window.value = 60
    figs = _assert_figures_have_data(e.static_figure())
    z = _data(figs, "rolling z-score")["z"]
    np.testing.assert_allclose(z, ql.rolling.zscore(ds["close"].sel(asset="AAPL"), 60).values,
                               equal_nan=True)
    assert ("window", 60) in e.controls()
    _assert_bundle(e)


def test_strategy_explorer_static_output_has_data_and_disabled_controls():
    ds = ql.data.load()
    e = ql.widgets.StrategyExplorer(ds, strategy="volatility_regime")
    e.asset.value = "IBM"
    figs = _assert_figures_have_data(e.static_figure())
    np.testing.assert_allclose(_data(figs, "price")["y"], ds["close"].sel(asset="IBM").values)
    html = _assert_bundle(e)
    assert "volatility_regime" in html and "IBM" in html
    assert "Sharpe" in html and "e+" not in e._table_html()   # formatted by ql.fmt


def test_strategy_explorer_marks_only_entries_exits_and_flips():
    ds = ql.data.load()
    e = ql.widgets.StrategyExplorer(ds, strategy="volatility_regime")
    pos = np.asarray(e.src["position"].data["y"])
    sgn = np.sign(pos)
    flips = int((sgn[1:] != sgn[:-1]).sum() + (sgn[0] != 0))
    marked = len(e.src["buy"].data["time"]) + len(e.src["sell"].data["time"])
    n_fills = int((np.diff(np.concatenate([[0.0], pos])) != 0).sum())
    assert marked == flips < n_fills     # re-sizing fills (most of them) are not marked


def test_sweep_explorer_static_heatmap_and_equity_are_not_empty():
    ds = ql.data.load()
    grid = {"window": [10, 21], "threshold": [0.6, 0.8]}
    res = ql.sweep("volatility_regime", ds, grid, progress=False, fees=0.001)
    e = ql.widgets.SweepExplorer(res, ds)
    figs = _assert_figures_have_data(e.static_figure())
    heat = [f for f in figs if "sharpe" in f.title.text][0]
    assert heat.xaxis[0].axis_label == "window" and heat.yaxis[0].axis_label == "threshold"
    # the equity panel starts with the best cell's backtest
    vals = np.asarray(e.source.data["value"], dtype=float)
    assert len(e.eq_source.data["equity"]) == ds.sizes["time"]
    best = e.select(int(np.nanargmax(vals)))
    eq = best.equity.sel(asset=e.fixed["asset"].value).values
    np.testing.assert_allclose(e.eq_source.data["equity"], eq)
    # labels: white on dark cells, black on light ones
    for fill, ink in zip(e.source.data["fill"], e.source.data["ink"]):
        rgb = [int(fill[k:k + 2], 16) / 255 for k in (1, 3, 5)]
        lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
        assert ink == ("#ffffff" if lum < 0.5 else "#000000")
    _assert_bundle(e)


def test_engine_dashboard_static_output_shows_the_last_update(monkeypatch):
    import IPython.display as d

    from quantlab import testing as T

    shown, updated = [], []
    monkeypatch.setattr(d, "display", lambda b, **kw: shown.append((b, kw)))
    monkeypatch.setattr(d, "update_display", lambda b, **kw: updated.append((b, kw)))
    eng = ql.engine.TickEngine()
    dash = ql.plots.engine_dashboard(eng)
    dash._ipython_display_()
    eng.replay(T.synthetic_ticks(20_000, n_symbols=10, seed=7), chunk=5000, on_chunk=dash.update)
    assert len(updated) == 4 and updated[-1][1]["display_id"] == shown[0][1]["display_id"]
    assert "needs a running kernel" not in updated[-1][0]["text/html"]   # no controls
    # the widget state a saved notebook keeps is the last update too, not the first
    state = dash.widget.get_state()["render_bundle"]
    assert '["t",[1,2,3,4,5]]' in state
    figs = _assert_figures_have_data(dash.static_figure())
    pos = _data(figs, "positions")
    np.testing.assert_allclose(pos["position"], eng.positions().to_numpy())
    f_pos = [f for f in figs if f.title.text == "positions"][0]
    assert list(f_pos.x_range.factors) == [str(s) for s in eng.positions().index]


def test_engine_dashboard_static_copy_before_any_sample_has_fixed_ranges():
    dash = ql.plots.engine_dashboard(ql.engine.TickEngine())
    lat = [f for f in dash.static_figure().select({"type": Plot}) if "latency" in f.title.text][0]
    assert (lat.x_range.start, lat.x_range.end) == (0, 1)   # not "could not set initial ranges"


def test_exported_notebook_without_widget_state_shows_the_static_copy():
    """nbconvert skips a widget-view whose model is not in the notebook's widget state
    and renders the bundle's next mimetype: the static copy with the disabled controls."""
    import nbformat
    from nbconvert import HTMLExporter

    e = ql.widgets.RollingExplorer(ql.data.load(), window=20)
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("explorer")
    cell.outputs = [nbformat.v4.new_output("display_data", data=e._repr_mimebundle_())]
    nb.cells = [cell]
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    assert "quantlab-static-view" in body and "needs a running kernel" in body
    assert 'type="application/vnd.jupyter.widget-view+json"' not in body


def test_explorers_refuse_a_start_value_their_controls_cannot_show():
    """An unknown strategy or metric was ipywidgets' 'Invalid selection: value not found'
    (papermill -p strategy nope in 01_explore); a window beyond the slider was clamped
    silently (500 showed 252)."""
    ds = ql.data.load().isel(time=slice(0, 300))
    with pytest.raises(ValueError, match="strategy must be one of .*got 'nope'"):
        ql.widgets.StrategyExplorer(ds, "nope")
    with pytest.raises(ValueError, match=r"'attention' needs data variable\(s\) \['open', "
                       r"'high', 'low', 'volume'\]; data set 'equities' has \['close'\]"):
        ql.widgets.StrategyExplorer(ds[["close"]], "attention")
    with pytest.raises(ValueError, match=r"window must be an integer in \[2, 252\], got 500"):
        ql.widgets.RollingExplorer(ds, window=500)
    with pytest.raises(ValueError, match="var must be one of"):
        ql.widgets.RollingExplorer(ds, var="nope")
    res = ql.sweep("volatility_regime", ds, {"window": [10, 20]}, progress=False)
    with pytest.raises(ValueError, match="metric must be one of"):
        ql.widgets.SweepExplorer(res, ds, metric="nope")
