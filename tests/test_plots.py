"""Figures of ql.plots (issue #28): heatmap colours and labels, axis titles, fills,
money axes."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from bokeh.models import ColumnDataSource, CustomJSTickFormatter, GlyphRenderer, Plot

import quantlab as ql


def _figs(layout):
    return list(layout.select({"type": Plot})) if not isinstance(layout, Plot) else [layout]


def _lum(c):
    rgb = [int(c[k:k + 2], 16) / 255 for k in (1, 3, 5)]
    return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]


@pytest.fixture(scope="module")
def ds():
    return ql.data.load()


def test_heatmap_labels_are_readable_on_dark_cells_and_colours_centre_on_zero():
    t = pd.DataFrame([[-2.0, -0.05, 0.0], [0.05, 1.0, 2.0]],
                     index=pd.Index([0.02, 0.04], name="stop_loss"),
                     columns=pd.Index([0.1, 0.2, 0.3], name="take_profit"))
    fig = ql.plots.heatmap_figure(t, title="Sharpe")
    data = [r for r in fig.renderers if isinstance(r, GlyphRenderer)][0].data_source.data
    by_value = dict(zip(data["value"], zip(data["fill"], data["ink"])))
    for v, (fill, ink) in by_value.items():
        assert ink == ("#ffffff" if _lum(fill) < 0.5 else "#000000")
    assert by_value[-2.0][1] == "#ffffff" and by_value[2.0][1] == "#ffffff"  # dark extremes
    assert by_value[0.0][1] == "#000000"
    # diverging around 0: losses red-ish, gains green-ish, +-x mirror each other
    r_lo, g_lo = int(by_value[-2.0][0][1:3], 16), int(by_value[-2.0][0][3:5], 16)
    r_hi, g_hi = int(by_value[2.0][0][1:3], 16), int(by_value[2.0][0][3:5], 16)
    assert r_lo > g_lo and g_hi > r_hi
    assert fig.xaxis[0].axis_label == "take_profit" and fig.yaxis[0].axis_label == "stop_loss"
    # text glyph colours come from the ink column
    text = [r for r in fig.renderers if type(r.glyph).__name__ == "Text"][0]
    assert text.glyph.text_color == "ink" or text.glyph.text_color.field == "ink"


def test_every_axis_has_a_title(ds):
    res = ql.backtest(ds, ql.strategies.get("volatility_regime").signal(ds), fees=0.001)
    s = ql.strategies.get("spc")
    figs = [ql.plots.price_figure(ds), ql.plots.line_figure(ds["close"]),
            ql.plots.histogram_figure(np.random.default_rng(0).normal(size=500)),
            ql.plots.backtest_figure(res, asset="IBM"),
            ql.plots.diagnostics_figure(s.diagnostics(ds), "AAPL", title="spc"),
            ql.plots.heatmap_figure(pd.DataFrame([[1.0, -1.0]]))]
    for layout in figs:
        for f in _figs(layout):
            for ax in [*f.xaxis, *f.yaxis]:
                assert ax.axis_label, f"{f.title.text!r}: untitled axis"


def test_backtest_figure_marks_only_position_sign_changes_and_steps_the_position(ds):
    # sizes that re-size often (0.5 <-> 1.0) and flip rarely
    close = ds["close"].sel(asset=["AAPL"])
    t = np.arange(close.sizes["time"])
    sig = xr.DataArray(np.where((t // 250) % 2 == 0, 1.0, -1.0) * np.where(t % 10 < 5, 1.0, 0.5),
                       dims="time", coords={"time": close.time}).expand_dims(asset=["AAPL"]).T
    res = ql.backtest(ds.sel(asset=["AAPL"]), sig.transpose("time", "asset"), fees=0.001)
    layout = ql.plots.backtest_figure(res, asset="AAPL")
    figs = _figs(layout)
    fills = [f for f in figs if "fills" in f.title.text][0]
    marked = sum(len(r.data_source.data["x"]) for r in fills.renderers
                 if type(r.glyph).__name__ == "Scatter")
    pos = res.positions.sel(asset="AAPL").values
    sgn = np.sign(pos)
    flips = int((sgn[1:] != sgn[:-1]).sum() + (sgn[0] != 0))
    assert marked == flips and len(res.orders) > 3 * flips
    step = [f for f in figs if f.title.text.startswith("position")][0]
    np.testing.assert_allclose(step.renderers[0].data_source.data["y"], pos)


def test_sign_changes_by_hand():
    # positions 10 15 10 0 -3 0 8: enter, resize, resize, exit, enter short, exit, enter
    got = ql.plots.sign_changes([10, 5, -5, -10, -3, 3, 8])
    assert got.tolist() == [True, False, False, True, True, True, True]
    assert ql.plots.sign_changes([]).tolist() == []


def test_money_axes_are_formatted_compactly(ds):
    res = ql.backtest(ds, ql.strategies.get("volatility_regime").signal(ds), fees=0.001)
    figs = _figs(ql.plots.backtest_figure(res))
    eq = [f for f in figs if f.title.text == "equity"][0]
    fmt_ = eq.yaxis[0].formatter
    assert isinstance(fmt_, CustomJSTickFormatter) and fmt_.code == ql.plots._MONEY_JS
    dd = [f for f in figs if f.title.text == "drawdown"][0]
    assert dd.yaxis[0].formatter.code == ql.plots._PCT_JS


def test_static_view_without_static_figure_fails_at_construction():
    # it used to build and raise NotImplementedError only when displayed (issue #26)
    class NoCopy(ql.plots.StaticView):
        def controls(self):
            return [("asset", "IBM")]

    with pytest.raises(TypeError, match="static_figure"):
        NoCopy()

    class Copy(NoCopy):
        def static_figure(self):
            return ql.plots.figure(title="copy")

    bundle = Copy()._repr_mimebundle_()
    assert "<select disabled><option selected>IBM</option>" in bundle["text/html"]
    assert bundle["text/plain"].startswith("Copy (interactive")


def test_every_view_of_the_library_defines_its_static_copy():
    import inspect

    from quantlab import plots, widgets

    views = [c for m in (plots, widgets) for c in vars(m).values()
             if inspect.isclass(c) and issubclass(c, plots.StaticView)
             and c not in (plots.StaticView, plots._LiveView)]   # the two abstract bases
    assert {c.__name__ for c in views} >= {"RollingExplorer", "StrategyExplorer",
                                           "SweepExplorer", "_EngineDashboard",
                                           "_DeploymentDashboard"}
    assert inspect.isabstract(plots._LiveView)
    assert not [c.__name__ for c in views if inspect.isabstract(c)]
    assert inspect.isabstract(plots.StaticView)


def _panel(n_time, n_asset, fill=1.0):
    t = pd.date_range("2020-01-01", periods=n_time)
    return xr.DataArray(np.full((n_time, n_asset), fill), dims=("time", "asset"), name="close",
                        coords={"time": t, "asset": [f"A{i}" for i in range(n_asset)]})


def test_line_figures_refuse_more_lines_than_a_browser_can_take_before_building():
    """10,000 assets made a 62 MB page (2+ min to build) with a 10,000-entry legend."""
    many = _panel(5, ql.plots.MAX_LINES + 1)
    with pytest.raises(ValueError, match=r"65 lines, at most 64 in one figure"):
        ql.plots.line_figure(many)
    with pytest.raises(ValueError, match=r"price_figure of 'close': 65 lines"):
        ql.plots.price_figure(xr.Dataset({"close": many}))
    with pytest.raises(ValueError, match=r"one besides 'time' at most"):
        ql.plots.line_figure(many.expand_dims(other=2))
    assert len(ql.plots.line_figure(many.isel(asset=slice(0, 64))).renderers) == 64


@pytest.mark.parametrize("fill", [np.nan, np.inf])
def test_figures_of_nothing_finite_are_a_data_error_not_a_blank_plot(fill):
    nothing = _panel(30, 3, fill)
    with pytest.raises(ql.errors.DataError, match="line_figure of 'close': no finite value"):
        ql.plots.line_figure(nothing)
    with pytest.raises(ql.errors.DataError, match="price_figure of 'close': no finite value"):
        ql.plots.price_figure(xr.Dataset({"close": nothing}))
    with pytest.raises(ql.errors.DataError, match="histogram_figure 'r': no finite value"):
        ql.plots.histogram_figure(nothing.values, title="r")
    with pytest.raises(ql.errors.DataError, match="no finite value"):
        ql.plots.histogram_figure([])
    one_bar = _panel(1, 1)   # one finite value is drawn
    assert len(ql.plots.line_figure(one_bar).renderers) == 1
    part = nothing.copy(data=np.where(np.arange(3) == 1, 1.0, nothing.values))
    assert len(ql.plots.line_figure(part).renderers) == 3   # one series with data is enough


def test_plots_and_widgets_all_list_their_public_names_only():
    import inspect

    from quantlab import plots, widgets

    for mod in (plots, widgets):
        own = {n for n, v in vars(mod).items() if not n.startswith("_")
               and (inspect.isfunction(v) or inspect.isclass(v))
               and v.__module__ == mod.__name__}
        assert set(mod.__all__) - {"PALETTE", "NEEDS_KERNEL", "MAX_LINES"} == own, mod.__name__
        assert all(hasattr(mod, n) for n in mod.__all__)


# ---- live dashboards: a user's zoom survives updates (issue #26) ---------------------------

def _browser_sets(dash, rng, start, end):
    """A range change arriving from the browser, as jupyter_bokeh syncs it (or plainly set
    when jupyter_bokeh is missing)."""
    for attr, v in (("start", start), ("end", end)):
        if dash.widget is None:
            setattr(rng, attr, v)
        else:
            dash.widget._sync_model(dash.widget, {"event": "jsevent", "kind": "ModelChanged",
                                                  "model": {"id": rng.id}, "attr": attr,
                                                  "new": v}, [])


def _padded(lo, hi):   # bokeh's DataRange1d default: 10 % padding, half on each side
    return pytest.approx((lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)), rel=1e-12)


def test_engine_dashboard_zoom_survives_updates_and_reset_returns_to_following_the_data():
    from quantlab import testing

    eng = ql.engine.TickEngine()
    dash = ql.plots.engine_dashboard(eng)
    ticks = testing.synthetic_ticks(4000, n_symbols=3, seed=1)

    def part(a, b):
        return {k: v[a:b] for k, v in ticks.items()}

    eng.replay(part(0, 2000), chunk=500, on_chunk=dash.update)
    figs = {f.title.text: f for f in _figs(dash.figure)}
    x, y_eq = figs["throughput"].x_range, figs["equity"].y_range
    assert dash.sources["tp"].data["t"] == [1, 2, 3, 4, 5]
    assert (x.start, x.end) == _padded(1, 5)                     # follows the data
    eq = dash.sources["pnl"].data["equity"]
    assert (y_eq.start, y_eq.end) == _padded(min(eq), max(eq))
    _browser_sets(dash, x, 1.5, 2.5)                              # the user zooms
    eng.replay(part(2000, 3000), chunk=500, on_chunk=dash.update)
    assert (x.start, x.end) == (1.5, 2.5)                         # kept over two updates
    assert (x.reset_start, x.reset_end) == _padded(1, 7)          # reset: the current fit
    if dash.widget is not None:   # a re-rendered live view (and a saved notebook) keeps it
        bundle = dash.widget.get_state()["render_bundle"]
        assert '"start":1.5' in bundle and '"end":2.5' in bundle
    eq = dash.sources["pnl"].data["equity"]
    assert (y_eq.start, y_eq.end) == _padded(min(eq), max(eq))   # untouched axes follow
    _browser_sets(dash, x, x.reset_start, x.reset_end)            # the reset tool
    eng.replay(part(3000, 4000), chunk=500, on_chunk=dash.update)
    assert (x.start, x.end) == _padded(1, 9)                      # follows the data again


def test_engine_dashboard_ranges_fit_like_bokeh_and_static_copy_auto_fits():
    from bokeh.models import DataRange1d

    fit = ql.plots._data_fit
    assert fit([[0.0, 10.0]]) == pytest.approx((-0.5, 10.5))
    assert fit([[3.0, np.nan]]) == (2.0, 4.0)                     # one value: ±1
    assert fit([[2.0, 5.0]], zero=True) == pytest.approx((-0.25, 5.25))   # bars start at 0
    assert fit([[np.nan], []]) is None and fit([[]], zero=True) is None
    dash = ql.plots.engine_dashboard(ql.engine.TickEngine())
    lat = {f.title.text: f for f in _figs(dash.figure)}["latency (sampled ticks)"]
    assert (lat.x_range.start, lat.x_range.end) == (0, 1)         # no sample yet
    assert all(isinstance(f.y_range, DataRange1d) for f in _figs(dash.static_figure())
               if "latency" not in f.title.text)


def test_live_deployment_dashboard_zoom_survives_bars_and_reset_follows_the_data():
    from bokeh.models import Span

    ds = ql.data.load().isel(time=slice(0, 60))
    dep = ql.deploy("volatility_regime", {"window": 5, "lookback": 20},
                    history=ds.isel(time=slice(0, 30)), fees=0.001)
    dash = ql.plots.deployment_dashboard(dep, live=True)
    assert len(dash.sources["equity"].data["time"]) == 0          # before any bar: 0..1
    assert (dash._figs["eq"].x_range.start, dash._figs["eq"].x_range.end) == (0, 1)
    dep.listeners.append(dash.update)
    dep.replay(ds.isel(time=slice(30, 45)), echo=None)
    figs = {f.title.text: f for f in _figs(dash.figure)}
    x, y = figs["equity: deployment vs backtest"].x_range, figs["drawdown"].y_range
    ms = ds.time.values[30:45].astype("datetime64[ms]").astype(np.int64).astype(float)
    assert (x.start, x.end) == _padded(ms[0], ms[-1])             # follows the bars
    eq = dep.equity.sum("asset").values
    np.testing.assert_array_equal(dash.sources["equity"].data["equity"], eq)
    dd = eq / np.maximum.accumulate(eq) - 1
    assert (y.start, y.end) == _padded(min(dd.min(), 0), 0)       # from 0 (an area)
    zoom = (ms[3], ms[6])
    _browser_sets(dash, x, *zoom)                                 # the user zooms
    dep.replay(ds.isel(time=slice(45, 55)), echo=None)
    assert (x.start, x.end) == zoom                               # kept over ten bars
    ms = ds.time.values[30:55].astype("datetime64[ms]").astype(np.int64).astype(float)
    assert (x.reset_start, x.reset_end) == _padded(ms[0], ms[-1])
    for f in ("fills (price)", "decision time per bar (ms)", "drawdown"):
        assert figs[f].x_range is x                               # one shared time axis
    lat = dep.latency.to_numpy() * 1e3
    spans = [s for s in figs["decision time per bar (ms)"].center if isinstance(s, Span)]
    assert [s.location for s in spans] == pytest.approx([np.percentile(lat, 50),
                                                         np.percentile(lat, 99)])
    _browser_sets(dash, x, x.reset_start, x.reset_end)            # the reset tool
    dep.replay(ds.isel(time=slice(55, 60)), echo=None)
    ms = ds.time.values[30:60].astype("datetime64[ms]").astype(np.int64).astype(float)
    assert (x.start, x.end) == _padded(ms[0], ms[-1])             # follows again
    static = {m.name: m.data for m in dash.static_figure().select({"type": ColumnDataSource})}
    np.testing.assert_array_equal(static["deployment.equity"]["equity"],
                                  dep.equity.sum("asset").values)


def test_an_unknown_asset_is_named_with_what_there_is(ds):
    """xarray's "not all values found in index 'asset'" named neither (papermill
    -p symbol NOPE in 02 and 04)."""
    few = ds.isel(time=slice(0, 300))
    with pytest.raises(KeyError, match=r"price_figure of 'close': unknown asset\(s\) \['NOPE'\]; "
                       "available: AAPL, GOOG, IBM, MSFT"):
        ql.plots.price_figure(few, ["IBM", "NOPE"])
    with pytest.raises(KeyError, match=r"diagnostics_figure: unknown asset\(s\) \['NOPE'\]"):
        ql.plots.diagnostics_figure(ql.strategies.get("spc").diagnostics(few), "NOPE")
    res = ql.backtest(few, ql.strategies.get("volatility_regime", window=10,
                                              lookback=60).signal(few))
    with pytest.raises(KeyError, match=r"backtest_figure: unknown asset\(s\) \['NOPE'\]"):
        res.plot(asset="NOPE")
