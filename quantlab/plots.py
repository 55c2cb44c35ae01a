"""Bokeh figures as plain functions of research results (bokeh is imported lazily).

Figures are returned, not shown: ``ql.plots.show(fig)`` displays one in a notebook.
Call :func:`init_notebook` once per notebook: it inlines BokehJS so plots render
offline, in JupyterLab and in the HTML reports alike. :func:`figure` is bokeh's
``figure`` with quantlab's defaults, for plots of your own.

This is the one module of the library that draws: research modules return data and
result objects whose ``plot()`` / ``figure()`` / ``to_html()`` / ``report()`` /
``tearsheet()`` delegate here. :func:`tearsheet` draws the data of ``ql.tearsheet``;
:func:`money_tick_formatter` / :func:`pct_tick_formatter` put ``ql.fmt``'s rules on axes.
Interactive views derive from :class:`StaticView` (they must define ``static_figure``).
"""
from __future__ import annotations

import abc
import html as _html

import numpy as np
import pandas as pd
import xarray as xr

from quantlab import _validate as _v
from quantlab import fmt
from quantlab import tearsheet as _ts
from quantlab.backtesting import BacktestOptions, BacktestResult
from quantlab.errors import DataError

__all__ = ["PALETTE", "NEEDS_KERNEL", "init_notebook", "show", "figure", "static_html",
           "StaticView", "copy_source", "money_tick_formatter", "pct_tick_formatter",
           "money_axis", "pct_axis", "sign_changes", "fills_and_position", "price_figure",
           "histogram_figure", "line_figure", "backtest_figure", "diagnostics_figure",
           "heatmap_figure", "network_figure", "crossmarket_figure", "risk_report_figure",
           "risk_report_html", "optimization_figure", "walk_forward_figure", "tearsheet",
           "engine_dashboard", "deployment_dashboard", "deployment_html", "MAX_LINES"]

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
# lines of one figure, at most: each carries its data and a legend entry, so 10,000 assets
# made a 62 MB page (2+ min to build) that froze the browser
MAX_LINES = _ts.MAX_COLUMNS


def _check_lines(what: str, n: int) -> None:
    """Refuse more than MAX_LINES lines in one figure, before any is sliced out."""
    if n > MAX_LINES:
        raise ValueError(f"{what}: {n} lines, at most {MAX_LINES} in one figure (each "
                         "embeds its data and a legend entry): select some with "
                         ".sel()/.isel() first")


def _known_assets(what: str, obj, assets: list) -> list:
    """``assets``, each a label of ``obj``'s asset coordinate; else a KeyError naming the
    unknown ones and what there is (xarray's "not all values found in index 'asset'"
    named neither)."""
    have = [str(a) for a in obj["asset"].values]
    unknown = [a for a in assets if str(a) not in have]
    if unknown:
        shown = ", ".join(have[:20]) + (f", ... ({len(have)} in all)" if len(have) > 20 else "")
        raise KeyError(f"{what}: unknown asset(s) {unknown}; available: {shown}")
    return assets


def _series(what: str, parts: list) -> list:
    """``parts`` ((label, DataArray) pairs, one line each) with some finite value among
    them: a figure of all-NaN series was silently blank."""
    if not any(np.isfinite(np.asarray(s.values, dtype=float)).any() for _, s in parts):
        raise DataError(f"{what}: no finite value to draw (every series is all-NaN/inf or "
                        "empty)")
    return parts


def _time_axis(time) -> dict:
    """``figure`` keywords of an x axis for ``time`` (values): a datetime axis for
    timestamps, else a linear one titled "time" (bar numbers drawn on a datetime axis
    read as milliseconds after 1970-01-01, silently)."""
    import datetime

    t = np.asarray(time)
    dated = np.issubdtype(t.dtype, np.datetime64) or (   # tz-aware times: objects
        t.dtype == object and t.size > 0 and isinstance(t.flat[0], datetime.date))
    return ({"x_axis_type": "datetime", "x_axis_label": "date"} if dated or t.size == 0
            else {"x_axis_type": "linear", "x_axis_label": "time"})


def init_notebook() -> None:
    """Load BokehJS inline (no CDN: the machine and the reports may be offline).

    Call it once per notebook, before the first figure is shown.

    Examples
    --------
    >>> import quantlab as ql
    >>> ql.plots.init_notebook()   # in a script it only sets bokeh's output mode
    """
    from bokeh.io import output_notebook
    from bokeh.resources import INLINE

    output_notebook(INLINE, hide_banner=True)


def show(obj) -> None:
    """Display a bokeh figure or layout (in a notebook: as the cell's output).

    Parameters
    ----------
    obj : bokeh.models.LayoutDOM
        A figure or layout, e.g. of :func:`price_figure`.

    Examples
    --------
    >>> import quantlab as ql
    >>> from unittest import mock
    >>> fig = ql.plots.figure(title="empty")
    >>> with mock.patch("bokeh.io.show") as shown:   # no browser in a doctest
    ...     ql.plots.show(fig)
    >>> shown.call_count
    1
    """
    from bokeh.io import show as _show

    _show(obj)


def figure(**kw):
    """A ``bokeh.plotting.figure`` with quantlab's defaults.

    300 px high, stretched to the cell's width, tools pan/zoom/reset/save/hover. Use it
    for your own plots so they match ours.

    Parameters
    ----------
    **kw
        Keyword arguments of ``bokeh.plotting.figure``; each overrides a default.

    Returns
    -------
    bokeh.plotting.figure

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 50))
    >>> fig = ql.plots.figure(x_axis_type="datetime", title="IBM")
    >>> r = fig.line(ds.time.values, ds["close"].sel(asset="IBM").values)
    >>> fig.height, len(fig.renderers)
    (300, 1)
    """
    from bokeh.plotting import figure as bokeh_figure

    kw.setdefault("height", 300)
    kw.setdefault("sizing_mode", "stretch_width")
    kw.setdefault("tools", "pan,wheel_zoom,box_zoom,reset,save,hover")
    return bokeh_figure(**kw)


# ---- static copies of interactive views ---------------------------------------------
# A live view (ipywidgets + jupyter_bokeh) needs a kernel; a saved or exported notebook
# has none. nbconvert's HTML exporter skips a widget-view output whose model is not in
# the notebook's widget state and renders the next mimetype of the same bundle
# (nbconvert PR #1643, the ipympl pattern), so each view's display bundle carries the
# widget AND a text/html copy of its current figures with its controls shown disabled.
NEEDS_KERNEL = "needs a running kernel: run the notebook to change these"


def static_html(layout, controls=(), note: str = NEEDS_KERNEL) -> str:
    """HTML of a bokeh layout below its controls drawn disabled.

    BokehJS must be on the page (:func:`init_notebook` or a report loads it); the script
    waits for it.

    Parameters
    ----------
    layout : bokeh.models.LayoutDOM
        The figures.
    controls : sequence of (str, object), default ()
        (label, current value) of each control, drawn as a disabled select.
    note : str, default :data:`NEEDS_KERNEL`
        Text beside the controls.

    Returns
    -------
    str

    Examples
    --------
    >>> import quantlab as ql
    >>> page = ql.plots.static_html(ql.plots.figure(), [("asset", "IBM")])
    >>> page.startswith('<div class="quantlab-static-view">'), "<select disabled>" in page
    (True, True)
    """
    from bokeh.embed import components

    script, div = components(layout, wrap_script=False)
    ctl = "".join(f'<label style="margin-right:1em">{_html.escape(str(k))} '
                  f'<select disabled><option selected>{_html.escape(str(v))}</option>'
                  f'</select></label>' for k, v in controls)
    head = (f'<fieldset disabled style="border:0;padding:0;margin:0 0 4px 0">{ctl}'
            f'<em style="color:#777">{_html.escape(note)}</em></fieldset>') if controls else ""
    # wait for BokehJS (loaded by an earlier output) instead of failing on a missing Bokeh
    wait = ("(function(){var n=0;(function go(){if(window.Bokeh&&window.Bokeh.embed){"
            + script + "}else if(n++<200){setTimeout(go,50);}})();})();")
    return f'<div class="quantlab-static-view">{head}{div}<script type="text/javascript">' \
           f'{wait}</script></div>'


class StaticView(abc.ABC):
    """Base of the interactive views: one output with the live widget and a static copy.

    The output's bundle holds the live widget (``self.widget``; a kernel renders it) and
    a static copy of the current state (:meth:`static_figure` and :meth:`controls`),
    which exports and kernel-less viewers show. :meth:`refresh` re-publishes the output,
    so a view changed by later cells (a replay feeding a dashboard) is stored in its
    final state by papermill/nbclient. A subclass must define :meth:`static_figure`
    (an abstract method: a view without a static copy cannot be built).

    Parameters
    ----------
    *args, **kwargs
        Those of the subclass's ``__init__`` (this base takes none).

    Examples
    --------
    >>> import quantlab as ql
    >>> class Price(ql.plots.StaticView):
    ...     def static_figure(self):
    ...         return ql.plots.figure(title="price")
    >>> Price()._repr_mimebundle_()["text/plain"]
    'Price (interactive: needs a running kernel; run the cell)'
    >>> class NoCopy(ql.plots.StaticView):   # no static_figure: refused when built
    ...     pass
    >>> try:
    ...     NoCopy()
    ... except TypeError as e:
    ...     print("static_figure" in str(e))
    True
    """

    widget = None
    _display_id = None

    @abc.abstractmethod
    def static_figure(self):
        """A bokeh layout of the view's current state on its own sources (a copy).

        Returns
        -------
        bokeh.models.LayoutDOM

        Examples
        --------
        >>> import quantlab as ql
        >>> class Price(ql.plots.StaticView):
        ...     def static_figure(self):
        ...         return ql.plots.figure(title="price")
        >>> Price().static_figure().title.text
        'price'
        """

    def controls(self) -> list:
        """(label, current value) of each control that needs a kernel.

        Returns
        -------
        list of (str, object)

        Examples
        --------
        >>> import quantlab as ql
        >>> class Price(ql.plots.StaticView):
        ...     def static_figure(self):
        ...         return ql.plots.figure()
        >>> Price().controls()
        []
        """
        return []

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = {}
        if self.widget is not None and hasattr(self.widget, "_repr_mimebundle_"):
            bundle.update(self.widget._repr_mimebundle_() or {})
        bundle["text/plain"] = (f"{type(self).__name__} (interactive: needs a running "
                                f"kernel; run the cell)")
        bundle["text/html"] = (static_html(self.static_figure(), self.controls())
                               + self.static_extra())
        return bundle

    def static_extra(self) -> str:
        """HTML shown below the static figure (a metrics table); empty by default.

        Returns
        -------
        str

        Examples
        --------
        >>> import quantlab as ql
        >>> class Price(ql.plots.StaticView):
        ...     def static_figure(self):
        ...         return ql.plots.figure()
        >>> Price().static_extra()
        ''
        """
        return ""

    def _ipython_display_(self):
        from IPython.display import display

        self._display_id = self._display_id or f"quantlab-view-{id(self)}"
        display(self._repr_mimebundle_(), raw=True, display_id=self._display_id)

    def refresh(self) -> None:
        """Re-publish the displayed output (no-op before it is displayed).

        Examples
        --------
        >>> import quantlab as ql
        >>> class Price(ql.plots.StaticView):
        ...     def static_figure(self):
        ...         return ql.plots.figure()
        >>> Price().refresh() is None   # not displayed yet: nothing to update
        True
        """
        if self._display_id is None:
            return
        from IPython.display import update_display

        update_display(self._repr_mimebundle_(), raw=True, display_id=self._display_id)


def copy_source(src):
    """A new ColumnDataSource with ``src``'s current data.

    A bokeh model belongs to one document, so a static copy of a live figure needs its
    own sources.

    Parameters
    ----------
    src : bokeh.models.ColumnDataSource
        The live source.

    Returns
    -------
    bokeh.models.ColumnDataSource

    Examples
    --------
    >>> import quantlab as ql
    >>> from bokeh.models import ColumnDataSource
    >>> src = ColumnDataSource({"x": [1, 2], "y": (3.0, 4.0)})
    >>> copy = ql.plots.copy_source(src)
    >>> copy is src, copy.data
    (False, {'x': [1, 2], 'y': [3.0, 4.0]})
    """
    from bokeh.models import ColumnDataSource

    return ColumnDataSource({k: list(v) if isinstance(v, tuple) else v
                             for k, v in src.data.items()})


# ---- axes ----------------------------------------------------------------------------
# the rules of fmt.money(compact=True) / fmt.pct(), in JavaScript: static HTML needs no kernel
_MONEY_JS = """
const a = Math.abs(tick), s = tick < 0 ? "-" : "";
const units = [[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "k"]];
for (const [scale, unit] of units) {
    if (Math.round(a / scale * 10) / 10 >= 1 && (a >= scale || unit != "k"))
        return s + (a / scale).toFixed(1) + unit;
}
return s + String(Number(a.toFixed(2)));
"""

_PCT_JS = """
const v = 100 * tick;
if (Math.abs(v) < 0.05) return "0 %";
const d = Math.abs(v) < 10 && v != Math.round(v) ? 1 : 0;
const t = v.toFixed(d);
return (Number(t) == 0 ? t.replace("-", "") : t) + " %";
"""


def money_tick_formatter():
    """A bokeh tick formatter for money axes: ``1.0M``, ``250.0k``, ``37.9k``, ``500``.

    The rules of ``fmt.money(compact=True)`` in JavaScript: static HTML needs no kernel.

    Returns
    -------
    bokeh.models.CustomJSTickFormatter

    Examples
    --------
    >>> import quantlab as ql
    >>> type(ql.plots.money_tick_formatter()).__name__
    'CustomJSTickFormatter'
    """
    from bokeh.models import CustomJSTickFormatter

    return CustomJSTickFormatter(code=_MONEY_JS)


def pct_tick_formatter():
    """A bokeh tick formatter for axes of fractions: ``0.25`` -> ``25 %``.

    The rules of ``fmt.pct`` in JavaScript: static HTML needs no kernel.

    Returns
    -------
    bokeh.models.CustomJSTickFormatter

    Examples
    --------
    >>> import quantlab as ql
    >>> type(ql.plots.pct_tick_formatter()).__name__
    'CustomJSTickFormatter'
    """
    from bokeh.models import CustomJSTickFormatter

    return CustomJSTickFormatter(code=_PCT_JS)


def money_axis(axis) -> None:
    """Format a bokeh axis (or a splattable list of axes) as money: 1.0M, 250.0k.

    Parameters
    ----------
    axis : bokeh axis or list of axes
        E.g. ``fig.yaxis``.

    Examples
    --------
    >>> import quantlab as ql
    >>> fig = ql.plots.figure()
    >>> ql.plots.money_axis(fig.yaxis)
    >>> fig.yaxis[0].formatter.code == ql.plots.money_tick_formatter().code
    True
    """
    axis.formatter = money_tick_formatter()


def pct_axis(axis) -> None:
    """Format an axis of fractions as percentages: 0.25 -> 25 %.

    Parameters
    ----------
    axis : bokeh axis or list of axes
        E.g. ``fig.yaxis``.

    Examples
    --------
    >>> import quantlab as ql
    >>> fig = ql.plots.figure()
    >>> ql.plots.pct_axis(fig.yaxis)
    >>> type(fig.yaxis[0].formatter).__name__
    'CustomJSTickFormatter'
    """
    axis.formatter = pct_tick_formatter()


def sign_changes(size, start: float = 0.0) -> np.ndarray:
    """Where a sequence of fills enters, exits or flips the position.

    For the signed fill sizes of one account (in time order): True where the position's
    sign changes, False where a fill only re-sizes it. Sizes within 1e-9 of the largest
    position of zero count as flat (dust of fractional sizes).

    Parameters
    ----------
    size : array-like of float
        Signed fill sizes (buys > 0).
    start : float, default 0.0
        The position before the first fill.

    Returns
    -------
    numpy.ndarray of bool

    Examples
    --------
    >>> import quantlab as ql
    >>> ql.plots.sign_changes([10, 5, -15, -3, 3])   # enter, resize, exit, short, exit
    array([ True, False,  True,  True,  True])
    """
    start = _v.number("start", start)   # NaN: every fill a "change"; "3": a ufunc error
    size = np.asarray(size, dtype=float)
    after = start + np.cumsum(size)
    before = np.concatenate([[start], after[:-1]])
    # tolerance: cumulative sums of fractional sizes leave dust where the book is flat
    tol = 1e-9 * max(1.0, float(np.nanmax(np.abs(after))) if after.size else 1.0)
    sa = np.where(np.abs(after) <= tol, 0, np.sign(after))
    sb = np.where(np.abs(before) <= tol, 0, np.sign(before))
    return sa != sb


def fills_and_position(fig_p, orders, position, x_range=None, title="position (shares)"):
    """Fill markers on a price figure and a step figure of the position.

    Entries, exits and flips (:func:`sign_changes`) are drawn on ``fig_p`` as buy/sell
    triangles; re-sizing fills are steps of the returned position figure, not markers.

    Parameters
    ----------
    fig_p : bokeh.plotting.figure
        The price figure (datetime x axis).
    orders : pandas.DataFrame
        Fills of one account, like ``res.orders``: ``time``, ``size``, ``price``.
    position : xarray.DataArray
        The position on ``time`` (shares).
    x_range : bokeh range, optional
        Shared x range (default ``fig_p``'s).
    title : str, default 'position (shares)'
        Title of the position figure.

    Returns
    -------
    bokeh.plotting.figure
        The position figure.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300)).sel(asset=["IBM"])
    >>> res = ql.backtest(ds, ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds))
    >>> fig = ql.plots.price_figure(ds, log=False)
    >>> pos = ql.plots.fills_and_position(fig, res.orders, res.positions.sel(asset="IBM"))
    >>> len(fig.renderers), len(pos.renderers)
    (3, 1)
    """
    o = orders.sort_values("time", kind="stable")
    key = sign_changes(o["size"].to_numpy())
    for side, color, marker, label in ((o["size"].to_numpy() > 0, PALETTE[2], "triangle", "buy"),
                                       (o["size"].to_numpy() < 0, PALETTE[3],
                                        "inverted_triangle", "sell")):
        m = side & key
        fig_p.scatter(o["time"].to_numpy()[m], o["price"].to_numpy()[m], size=9, color=color,
                      marker=marker, legend_label=f"{label} (enter/exit/flip)")
    fig_q = figure(x_axis_type="datetime", height=150, title=title,
                   x_range=x_range or fig_p.x_range, x_axis_label="date",
                   y_axis_label="shares")
    money_axis(fig_q.yaxis)   # compact: 60.0k shares
    fig_q.step(position.time.values, np.nan_to_num(np.asarray(position.values, dtype=float)),
               mode="after", color=PALETTE[4])
    return fig_q


def price_figure(ds, assets=None, var: str = "close", log: bool = True, title=None):
    """Price lines of ``ds[var]``, one per asset, on a log axis by default.

    Parameters
    ----------
    ds : xarray.Dataset
        Bars on (time, asset).
    assets : str or list of str, optional
        Assets to draw (default all).
    var : str, default 'close'
        The variable.
    log : bool, default True
        Log y axis.
    title : str, optional
        Default ``"<var> (adjusted)"``.

    Returns
    -------
    bokeh.plotting.figure

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> fig = ql.plots.price_figure(ds, ["IBM", "MSFT"])
    >>> len(fig.renderers), fig.title.text
    (2, 'close (adjusted)')
    """
    da = ds[var]
    assets = list(da.asset.values) if assets is None else np.atleast_1d(assets).tolist()
    what = f"price_figure of {var!r}"
    _check_lines(what, len(assets))
    _known_assets(what, da, assets)
    parts = _series(what, [(a, da.sel(asset=a)) for a in assets])
    if log:   # a log axis drops values <= 0: the line vanished, silently
        for a, s in parts:
            bad = s.where(s <= 0).dropna("time")
            if bad.sizes["time"]:
                raise ValueError(f"{what}: {a} has values <= 0 ({float(bad[0]):g} at "
                                 f"{str(bad.time.values[0])[:19]}), which a log axis cannot "
                                 "show: pass log=False")
    fig = figure(y_axis_type="log" if log else "linear", title=title or f"{var} (adjusted)",
                 y_axis_label=var, **_time_axis(da.time.values))
    for i, (a, s) in enumerate(parts):
        fig.line(s.time.values, s.values, legend_label=str(a),
                 color=PALETTE[i % len(PALETTE)], line_width=1.5)
    fig.legend.location = "top_left"
    fig.legend.click_policy = "hide"
    return fig


def histogram_figure(values, bins: int = 80, title: str = "distribution", x_label: str = ""):
    """Histogram of the finite entries of ``values`` with a normal curve of the
    same mean and standard deviation.

    Parameters
    ----------
    values : array-like
        Any shape; NaN and inf are left out.
    bins : int, default 80
        Histogram bins, in [1, 10**6].
    title : str, default 'distribution'
        The title.
    x_label : str, default ''
        Axis title (default ``"value"``).

    Returns
    -------
    bokeh.plotting.figure

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> r = ql.data.returns(ds["close"].sel(asset="IBM"))
    >>> fig = ql.plots.histogram_figure(r.values, bins=30, x_label="daily return")
    >>> [type(g.glyph).__name__ for g in fig.renderers]
    ['Quad', 'Line']
    """
    # a count, as the docstring says: 10**12 allocated 7 TiB of edges, "3" and 2.5 failed
    # in NumPy's words, True drew one bin
    bins = _v.count("bins", bins)
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if not v.size:   # np.histogram drew an empty (0, 1) axis and a NaN curve, silently
        raise DataError(f"histogram_figure {title!r}: no finite value to draw (all NaN/inf "
                        "or empty)")
    with np.errstate(over="ignore"):
        span = v.max() - v.min()
    if not np.isfinite(span):   # NumPy: "Too many bins for data range"
        raise DataError(f"histogram_figure {title!r}: the values span {v.min():g} to "
                        f"{v.max():g}, wider than a float can hold; rescale them")
    counts, edges = np.histogram(v, bins=bins, density=True)
    fig = figure(title=title, x_axis_label=x_label or "value", y_axis_label="density",
                  tools="pan,wheel_zoom,box_zoom,reset,save")
    fig.quad(top=counts, bottom=0, left=edges[:-1], right=edges[1:],
             fill_color=PALETTE[0], line_color="white", alpha=0.8)
    x = np.linspace(edges[0], edges[-1], 200)
    mu, sd = v.mean(), v.std(ddof=1) if v.size > 1 else np.nan
    if not sd > 0:   # one value or a constant: the curve was all NaN under its legend
        fig.title.text = f"{title} (no spread: no normal curve)"
        return fig
    fig.line(x, np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi)),
             color=PALETTE[3], line_width=2, legend_label="normal, same mean and std")
    return fig


def line_figure(da, title: str = "", y_label: str = "", bands=()):
    """Lines of a (time[, other]) DataArray, one per entry of its non-time dim.

    Parameters
    ----------
    da : xarray.DataArray
        On ``time`` and at most one other dim.
    title : str, default ''
        The title.
    y_label : str, default ''
        Axis title (default the array's name).
    bands : sequence of float, default ()
        Horizontal reference lines (e.g. z-score ±2).

    Returns
    -------
    bokeh.plotting.figure

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> z = ql.rolling.zscore(ds["close"], 20)
    >>> fig = ql.plots.line_figure(z, title="z-score", bands=(-2, 2))
    >>> len(fig.renderers), sum(type(c).__name__ == "Span" for c in fig.center)
    (4, 2)
    """
    from bokeh.models import Span

    fig = figure(title=title, y_axis_label=y_label or str(da.name or "value"),
                 **_time_axis(da.time.values))
    others = [d for d in da.dims if d != "time"]
    if len(others) > 1:
        raise ValueError(f"line_figure: da has dims {tuple(da.dims)}; one besides 'time' at "
                         "most (select or stack the others first)")
    what = f"line_figure of {da.name or 'da'!r}"
    _check_lines(what, da.sizes[others[0]] if others else 1)
    series = _series(what, [(str(v), da.sel({others[0]: v})) for v in da[others[0]].values]
                     if others else [(str(da.name or ""), da)])
    for i, (label, s) in enumerate(series):
        fig.line(s.time.values, s.values, color=PALETTE[i % len(PALETTE)], line_width=1.2,
                 legend_label=label or "value")
    for b in bands:
        fig.add_layout(Span(location=b, dimension="width", line_dash="dashed",
                            line_color="gray"))
    fig.legend.location = "top_left"
    return fig


def backtest_figure(res, asset=None, **sel):
    """Price with fills, position, equity against buy-and-hold, and drawdown
    of one backtest column.

    Parameters
    ----------
    res : BacktestResult
        A backtest.
    asset : str, optional
        The asset (default the first).
    **sel
        Parameter values picking the column (default the first of each parameter dim).

    Returns
    -------
    bokeh.models.Column

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> res = ql.backtest(ds, ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds))
    >>> [f.title.text for f in ql.plots.backtest_figure(res, asset="IBM").children]
    ['IBM: close and fills', 'position (shares)', 'equity', 'drawdown']
    """
    from bokeh.layouts import column

    res = res._asset_dim()   # an asset picked by a scalar (res.sel(asset="IBM")): a dim again
    assets = list(res.positions.asset.values)
    asset = assets[0] if asset is None else _known_assets("backtest_figure", res.positions,
                                                          [asset])[0]
    params = {d: res.positions[d].values[0] for d in res.positions.dims
              if d not in ("time", "asset")}
    params.update(sel)
    eq = res.equity.sel({k: v for k, v in params.items() if k in res.equity.dims})
    if "asset" in eq.dims:
        eq = eq.sel(asset=asset)
    price = res.prices.sel(asset=asset)
    # an asset without a bar in the backtest: IndexError on its first price
    _series(f"backtest_figure of {asset}", [(asset, price)])
    bars = price.dropna("time")   # a holiday (NaN: no bar) broke the line
    fig_p = figure(x_axis_type="datetime", title=f"{asset}: close and fills", height=250,
                   x_axis_label="date", y_axis_label="price")
    fig_p.line(bars.time.values, bars.values, color=PALETTE[0])
    o = res.orders[res.orders["asset"] == asset]
    for k, v in params.items():
        o = o[o[k] == v]
    pos = res.positions.sel(asset=asset, **{k: v for k, v in params.items()
                                            if k in res.positions.dims})
    fig_q = fills_and_position(fig_p, o, pos)
    fig_p.legend.location = "top_left"
    fig_e = figure(x_axis_type="datetime", title="equity", height=250, x_range=fig_p.x_range,
                   x_axis_label="date", y_axis_label="equity")
    money_axis(fig_e.yaxis)
    fig_e.line(eq.time.values, eq.values, color=PALETTE[1], legend_label="strategy")
    bh = res.init_cash * price.ffill("time") / float(bars[0])
    fig_e.line(bh.time.values, bh.values, color="gray", legend_label=f"buy and hold {asset}")
    fig_e.legend.location = "top_left"
    # the peak counts the initial cash, as res.metrics()' max_drawdown does
    dd = eq.copy(data=_ts.underwater(eq.values, res.init_cash))
    fig_d = figure(x_axis_type="datetime", title="drawdown", height=180, x_range=fig_p.x_range,
                   x_axis_label="date", y_axis_label="drawdown")
    pct_axis(fig_d.yaxis)
    fig_d.varea(dd.time.values, dd.values, 0, color=PALETTE[3], alpha=0.4)
    return column(fig_p, fig_q, fig_e, fig_d, sizing_mode="stretch_width")


def diagnostics_figure(diag, asset, title: str = ""):
    """One small panel per (time, asset) variable of a strategy's
    ``diagnostics`` Dataset, for one asset, with linked x ranges.

    Parameters
    ----------
    diag : xarray.Dataset
        ``strategy.diagnostics(ds)``.
    asset : str
        The asset.
    title : str, default ''
        Prefix of the first panel's title.

    Returns
    -------
    bokeh.models.Column

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> s = ql.strategies.get("spc")
    >>> col = ql.plots.diagnostics_figure(s.diagnostics(ds), "IBM", title="spc")
    >>> len(col.children) == len([v for v in s.diagnostics(ds).data_vars.values()
    ...                           if {"time", "asset"} <= set(v.dims)])
    True
    """
    from bokeh.layouts import column

    if "asset" in diag.coords:
        _known_assets("diagnostics_figure", diag, [asset])
    figs = []
    for i, (name, da) in enumerate(diag.data_vars.items()):
        if "time" not in da.dims or "asset" not in da.dims:
            continue
        s = da.sel(asset=asset)
        kw = {"x_range": figs[0].x_range} if figs else {}
        fig = figure(x_axis_type="datetime", height=170, x_axis_label="date",
                     y_axis_label=name,
                     title=f"{title + ': ' if title and not figs else ''}{name}", **kw)
        _check_lines(f"diagnostics_figure {name!r}",
                     sum(s.sizes[d] for d in s.dims if d != "time"))
        parts = [(str(v), s.sel({d: v})) for d in s.dims if d != "time"
                 for v in s[d].values] or [(name, s)]
        for j, (label, part) in enumerate(parts):
            fig.line(part.time.values, np.asarray(part.values, dtype=float),
                     color=PALETTE[(i + j) % len(PALETTE)], legend_label=label)
        fig.legend.location = "top_left"
        figs.append(fig)
    return column(*figs, sizing_mode="stretch_width")


def heatmap_figure(table, title: str = "", x_label: str | None = None,
                   y_label: str | None = None, metric: str | None = None):
    """A labelled heatmap of a DataFrame (rows x columns), values in the cells.

    Colours diverge around 0 (red below, green above: returns, Sharpe ratios,
    correlations), the limit is the largest absolute value; each label is white on dark
    cells and black on light ones.

    Parameters
    ----------
    table : pandas.DataFrame
        The values.
    title : str, default ''
        The title.
    x_label, y_label : str, optional
        Axis titles (default the columns' and the index's names).
    metric : str, optional
        The metric the values are: labels as tear sheets show it (``quantlab.fmt``;
        an annual return of -0.15 reads "-15.0 %"); default two decimals.

    Returns
    -------
    bokeh.plotting.figure

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> corr = ql.data.returns(ds["close"]).to_pandas().corr().round(2)
    >>> fig = ql.plots.heatmap_figure(corr, title="correlations")
    >>> len(fig.renderers[0].data_source.data["value"])   # 4 x 4 cells
    16
    >>> ret = ql.plots.heatmap_figure(corr * 0 - 0.15, metric="annual_return")
    >>> ret.renderers[0].data_source.data["label"][0]
    '-15.0 %'
    """
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure as bokeh_figure

    rows, cols = [str(r) for r in table.index], [str(c) for c in table.columns]
    stacked = table.stack(future_stack=True)
    vals = stacked.to_numpy(dtype=float)
    lim = float(np.nanmax(np.abs(vals))) if np.isfinite(vals).any() else 1.0
    fill, ink = _diverging(vals, lim or 1.0)
    src = ColumnDataSource({"row": [str(r) for r, _ in stacked.index],
                            "col": [str(c) for _, c in stacked.index], "value": vals,
                            "label": [("" if not np.isfinite(v) else fmt.metric(metric, v)
                                       if metric else f"{v:.2f}") for v in vals],
                            "fill": fill, "ink": ink})
    fig = bokeh_figure(x_range=cols, y_range=list(reversed(rows)), title=title,
                       height=90 + 40 * len(rows), sizing_mode="stretch_width",
                       tools="hover,save", toolbar_location="right",
                       tooltips=[("", "@row / @col"), ("value", "@label")],
                       x_axis_label=x_label or str(table.columns.name or "column"),
                       y_axis_label=y_label or str(table.index.name or "row"))
    fig.rect("col", "row", 1, 1, source=src, fill_color="fill", line_color="white")
    fig.text("col", "row", text="label", source=src, text_align="center",
             text_baseline="middle", text_font_size="11px", text_color="ink")
    fig.xaxis.major_label_orientation = 0.6
    fig.grid.visible = False
    return fig


def network_figure(edges, title: str = "", source: str = "leader", target: str = "follower",
                   weight: str = "transfer_entropy", keep: str = "significant"):
    """A directed graph on a circle, one arrow per row of ``edges`` where
    ``keep`` is true, its width by ``weight``.

    Parameters
    ----------
    edges : pandas.DataFrame
        E.g. ``CrossMarketAnalyzer.lead_lag()``.
    title : str, default ''
        The title.
    source, target : str, default 'leader', 'follower'
        Columns naming the nodes of each arrow.
    weight : str, default 'transfer_entropy'
        Column of the arrow width.
    keep : str, default 'significant'
        Boolean column of the arrows to draw (all when the frame lacks it).

    Returns
    -------
    bokeh.plotting.figure

    Examples
    --------
    >>> import pandas as pd
    >>> import quantlab as ql
    >>> edges = pd.DataFrame({"leader": ["IBM", "MSFT"], "follower": ["MSFT", "AAPL"],
    ...                       "transfer_entropy": [0.02, 0.01], "significant": [True, False]})
    >>> fig = ql.plots.network_figure(edges, title="lead-lag")
    >>> sum(type(a).__name__ == "Arrow" for a in fig.center)   # the significant pair
    1
    """
    from bokeh.models import Arrow, ColumnDataSource, LabelSet, VeeHead

    nodes = sorted(set(edges[source]) | set(edges[target]))
    angle = 2 * np.pi * np.arange(len(nodes)) / max(len(nodes), 1)
    xy = {n: (np.cos(a), np.sin(a)) for n, a in zip(nodes, angle)}
    fig = figure(title=title, height=420, x_range=(-1.5, 1.5), y_range=(-1.4, 1.4),
                  match_aspect=True)
    fig.axis.visible = False
    fig.grid.visible = False
    shown = edges[edges[keep]] if keep in edges else edges
    top = float(shown[weight].max()) if len(shown) else 1.0
    for _, e in shown.iterrows():
        (x0, y0), (x1, y1) = xy[e[source]], xy[e[target]]
        fig.add_layout(Arrow(end=VeeHead(size=10, fill_color=PALETTE[3], line_color=PALETTE[3]),
                             x_start=x0, y_start=y0, x_end=0.9 * x1 + 0.1 * x0,
                             y_end=0.9 * y1 + 0.1 * y0, line_color=PALETTE[3], line_alpha=0.7,
                             line_width=1 + 4 * float(e[weight]) / top if top > 0 else 1))
    src = ColumnDataSource({"x": [xy[n][0] for n in nodes], "y": [xy[n][1] for n in nodes],
                            "name": nodes})
    fig.scatter("x", "y", source=src, size=14, color=PALETTE[0])
    fig.add_layout(LabelSet(x="x", y="y", text="name", source=src, x_offset=8, y_offset=8))
    return fig


def crossmarket_figure(parts: dict):
    """A column for ``CrossMarketAnalyzer.report``: correlation heatmap,
    lead-lag network, rolling betas on the commodity (when present) and the macro regime
    signals.

    Parameters
    ----------
    parts : dict
        ``CrossMarketAnalyzer.report_data()``: ``correlations`` (a DataArray with a
        ``window`` attribute), ``lead_lag`` (DataFrame), ``commodity_beta`` (DataArray or
        None) and ``macro`` (DataArray on time and signal).

    Returns
    -------
    bokeh.models.Column

    Examples
    --------
    >>> import pandas as pd
    >>> import xarray as xr
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> r = ql.data.returns(ds["close"])
    >>> corr = r.to_pandas().corr().rename_axis(columns="asset_other")
    >>> parts = {"correlations": xr.DataArray(corr, attrs={"window": "2000"}),
    ...          "lead_lag": pd.DataFrame({"leader": ["IBM"], "follower": ["MSFT"],
    ...                                    "transfer_entropy": [0.02], "significant": [True]}),
    ...          "commodity_beta": None, "macro": r.rename(asset="signal")}
    >>> [f.title.text for f in ql.plots.crossmarket_figure(parts).children]
    ['return correlations, 2000', 'lead-lag (significant after Holm)', 'macro regime signals (1 = up / stress)']
    """
    from bokeh.layouts import column

    c = parts["correlations"]
    figs = [heatmap_figure(c.to_pandas().round(2),
                           title=f"return correlations, {c.attrs['window']}"),
            network_figure(parts["lead_lag"], title="lead-lag (significant after Holm)")]
    if parts.get("commodity_beta") is not None:
        figs.append(line_figure(parts["commodity_beta"], title="rolling beta on oil"))
    figs.append(line_figure(parts["macro"], title="macro regime signals (1 = up / stress)"))
    return column(*figs, sizing_mode="stretch_width")


def risk_report_figure(report):
    """The drawdown of a ``RiskReport``'s equity, or None when it has none.

    Parameters
    ----------
    report : quantlab.risk.RiskReport
        From ``RiskManager().generate_risk_report`` (of a backtest: it has an equity).

    Returns
    -------
    bokeh.plotting.figure or None

    Examples
    --------
    >>> import quantlab as ql
    >>> from quantlab import risk
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds)
    >>> report = risk.RiskManager().generate_risk_report(ql.backtest(ds, sig, group=True))
    >>> ql.plots.risk_report_figure(report).title.text
    'drawdown'
    """
    dd = report.drawdown_series()
    if dd is None:
        return None
    fig = line_figure(dd, title="drawdown", y_label="drawdown")
    pct_axis(fig.yaxis)
    return fig


def risk_report_html(report) -> str:
    """A ``RiskReport`` as a self-contained HTML page (BokehJS inlined: opens
    offline).

    Parameters
    ----------
    report : quantlab.risk.RiskReport
        From ``RiskManager().generate_risk_report``.

    Returns
    -------
    str

    Examples
    --------
    >>> import quantlab as ql
    >>> from quantlab import risk
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> sig = ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds)
    >>> report = risk.RiskManager().generate_risk_report(ql.backtest(ds, sig, group=True))
    >>> page = ql.plots.risk_report_html(report)
    >>> page.startswith("<!DOCTYPE html>"), "<h2>Risk report</h2>" in page
    (True, True)
    """
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    fig = risk_report_figure(report)
    body = report.tables_html()
    if fig is None:
        return f"<html><body><h2>Risk report</h2>{body}</body></html>"
    page = file_html(fig, INLINE, "Risk report")
    return page.replace("<body>", f"<body><h2>Risk report</h2>{body}", 1)


def optimization_figure(res, title: str = ""):
    """An optimisation's trials in the order run, the running best, and the
    histogram of its CSCV logits (mass at or below 0 is the PBO).

    Parameters
    ----------
    res : quantlab.optimize.OptimizationResult
        From ``optimize_strategy_parameters``.
    title : str, default ''
        Default: method, objective, DSR and PBO.

    Returns
    -------
    bokeh.models.Column or bokeh.plotting.figure
        A figure alone when there are no CSCV logits.

    Examples
    --------
    >>> import quantlab as ql
    >>> from quantlab import optimize
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> s = ql.strategies.get("volatility_regime", lookback=60)
    >>> res = optimize.optimize_strategy_parameters(s, {"window": [10, 21]}, ds,
    ...     optimization_method="grid", n_trials=2, progress=False, end_date="2000-12-29")
    >>> [f.title.text[:22] for f in ql.plots.optimization_figure(res).children]
    ['grid: sharpe_ratio per', 'CSCV logits (<= 0: ove']
    """
    from bokeh.layouts import column

    obj = res.objective if isinstance(res.objective, str) else res.objective[0]
    v = res.trials[obj].to_numpy(dtype=float)
    best = np.fmin if res.directions[0] == "minimize" else np.fmax
    run = best.accumulate(np.where(np.isfinite(v), v, np.nan))
    fig = figure(title=title or f"{res.method}: {obj} per trial (DSR {res.dsr:.2f}, "
                  f"PBO {res.pbo:.2f})", x_axis_label="trial", y_axis_label=obj, height=260)
    fig.scatter(np.arange(v.size), v, size=6, color=PALETTE[0], alpha=0.7, legend_label="trial")
    fig.line(np.arange(v.size), run, color=PALETTE[3], line_width=2, legend_label="best so far")
    fig.legend.location = "bottom_right"
    if res.pbo_logits.size == 0:
        return fig
    hist = histogram_figure(res.pbo_logits, bins=30, x_label="logit of the best IS trial's "
                            "OOS rank", title="CSCV logits (<= 0: overfit split)")
    hist.height = 220
    return column(fig, hist, sizing_mode="stretch_width")


def walk_forward_figure(wf, title: str = ""):
    """Stitched out-of-sample equity, in- and out-of-sample Sharpe ratio
    per fold, and the chosen parameters per fold.

    Parameters
    ----------
    wf : quantlab.optimize.WalkForwardResult
        From ``WalkForwardOptimizer.run``.
    title : str, default ''
        Title of the equity panel.

    Returns
    -------
    bokeh.models.Column

    Examples
    --------
    >>> import quantlab as ql
    >>> from quantlab import optimize
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> s = ql.strategies.get("volatility_regime", lookback=60)
    >>> wf = optimize.WalkForwardOptimizer(optimization_window=150, validation_window=100,
    ...     step_size=100, optimization_method="grid", n_trials=2, progress=False)
    >>> out = wf.run(s, {"window": [10, 21]}, ds)
    >>> [f.title.text for f in ql.plots.walk_forward_figure(out).children]
    ['walk-forward: stitched out-of-sample equity', 'Sharpe ratio per fold', 'chosen window']
    """
    from bokeh.layouts import column
    from bokeh.models import Span

    eq = wf.oos_equity
    fig_e = figure(x_axis_type="datetime", height=250, x_axis_label="date",
                   y_axis_label="equity",
                   title=title or "walk-forward: stitched out-of-sample equity")
    money_axis(fig_e.yaxis)
    fig_e.line(eq.time.values, eq.values, color=PALETTE[1], line_width=1.5)
    f = wf.folds
    t = f["oos_start"].values
    fig_s = figure(x_axis_type="datetime", height=220, x_range=fig_e.x_range,
                    title="Sharpe ratio per fold", x_axis_label="out-of-sample start",
                    y_axis_label="annualised Sharpe ratio")
    fig_s.line(t, f["is_sharpe_ratio"].values, color=PALETTE[0], legend_label="in sample")
    fig_s.line(t, f["oos_sharpe_ratio"].values, color=PALETTE[3], legend_label="out of sample")
    fig_s.add_layout(Span(location=0, dimension="width", line_color="gray"))
    fig_s.legend.location = "top_left"
    figs = [fig_e, fig_s]
    for i, k in enumerate(wf.stability.index):
        if not np.issubdtype(f[k].dtype, np.number):
            continue
        fig_p = figure(x_axis_type="datetime", height=150, x_range=fig_e.x_range,
                       title=f"chosen {k}", x_axis_label="out-of-sample start",
                       y_axis_label=k)
        fig_p.step(t, f[k].values, color=PALETTE[(i + 2) % len(PALETTE)], mode="after")
        figs.append(fig_p)
    return column(*figs, sizing_mode="stretch_width")


# ---- tear sheets ----------------------------------------------------------------------
# The data come from quantlab.tearsheet (pandas tables); here they become one display
# source per section, and the figures and tables drawn from those sources.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
           "Dec")
_BLUE, _GREY, _RED, _GREEN = "#1f77b4", "#7f7f7f", "#d62728", "#2ca02c"


def _diverging(v: np.ndarray, lim: float):
    """Cell colours from a red-white-green palette centred on 0, and a label colour
    chosen by the cell's brightness (white on dark cells)."""
    from bokeh.palettes import RdYlGn11

    pal = list(reversed(RdYlGn11))   # red for losses, green for gains
    fill, ink = [], []
    for x in v:
        if not np.isfinite(x):
            fill.append("#eeeeee")
            ink.append("#000000")
            continue
        i = int(np.clip(np.floor((x / lim + 1) / 2 * len(pal)), 0, len(pal) - 1))
        c = pal[i]
        rgb = [int(c[k:k + 2], 16) / 255 for k in (1, 3, 5)]
        lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
        fill.append(c)
        ink.append("#ffffff" if lum < 0.5 else "#000000")
    return fill, ink


def _column(r, b, trades, pos, ex, *, window, periods, capital, rf, lim) -> dict:
    """Every section's data for one column: {section: ColumnDataSource data dict}."""
    t = pd.DatetimeIndex(r["time"].values)
    rs = pd.Series(r.values, index=t)
    bs = None if b is None else pd.Series(b.values, index=t)
    data = {"eq": {"time": t}, "dd": {"time": t}}
    for key, s in (("strategy", rs), ("benchmark", bs)):
        if s is not None:
            eq = _ts._equity(s.to_numpy(), capital)
            data["eq"][key], data["dd"][key] = eq, _ts.underwater(eq, capital)
    table = _ts.summary_table(r, b, periods=periods, risk_free_rate=rf, extra=ex)
    data["summary"] = {c: table[c].tolist() for c in table.columns}
    data.update(_drawdown_rows(r, capital))
    data.update(_calendar(rs, bs, lim))
    data["roll"] = {"time": rs.index, "zero": np.zeros(len(rs))}   # a reference line
    for key, s in (("strategy", rs), ("benchmark", bs)):
        if s is not None:
            st = _ts.rolling_stats(s, window, periods, rf)
            data["roll"][f"sharpe_{key}"] = st["sharpe_ratio"].to_numpy()
            data["roll"][f"vol_{key}"] = st["volatility"].to_numpy()
    value = dict(zip(table["name"], table["value"]))
    data.update(_distribution(rs, value["value_at_risk"], value["conditional_value_at_risk"]))
    data["trades"] = _trade_rows(trades)
    if pos is not None:
        others = [d for d in pos.dims if d != "time"]
        lines = [(str(a), pos.sel({others[0]: a}).values) for a in pos[others[0]].values] \
            if others else [("exposure", pos.values)]
        data["pos"] = {"xs": [t] * len(lines), "ys": [y for _, y in lines],
                       "name": [n for n, _ in lines],
                       "color": [PALETTE[i % len(PALETTE)] for i in range(len(lines))]}
    return data


def _drawdown_rows(r, capital) -> dict:
    top = _ts.drawdown_table(r, capital)
    last = pd.Timestamp(r["time"].values[-1])
    return {"ddtab": {"rank": list(range(1, len(top) + 1)),
                      "start": fmt.dates(top["start"]),
                      "trough": fmt.dates(top["trough"]),
                      "recovery": fmt.dates(top["recovery"], missing="not yet"),
                      "depth": top["depth"].to_numpy(), "length": top["length"].to_numpy(),
                      "depth_s": [fmt.metric("depth", x) for x in top["depth"]],
                      "length_s": [fmt.metric("length", x) for x in top["length"]]},
            "ddspan": {"left": top["start"].to_numpy(),
                       "right": top["recovery"].fillna(last).to_numpy(),
                       "bottom": top["depth"].to_numpy(), "top": np.zeros(len(top))}}


def _calendar(rs, bs, lim) -> dict:
    """Monthly heatmap cells (value, % label, fill and ink colours) and yearly bars."""
    mo = _ts.monthly_returns(rs)
    val = mo.to_numpy()
    fill, ink = _diverging(val, lim)
    heat = {"year": [str(d.year) for d in mo.index],
            "month": [_MONTHS[d.month - 1] for d in mo.index], "value": val,
            "label": ["" if not np.isfinite(x) else
                      fmt.pct(x, sign=False).removesuffix(" %") for x in val],
            "fill": fill, "ink": ink}
    yr = _ts.yearly_returns(rs)
    year = {"year": [str(d.year) for d in yr.index], "strategy": yr.to_numpy(),
            "s_label": [fmt.pct(x) for x in yr],
            "color": [_GREEN if x >= 0 else _RED for x in yr.fillna(0)]}
    if bs is not None:
        by = _ts.yearly_returns(bs)
        year.update(benchmark=by.to_numpy(), b_label=[fmt.pct(x) for x in by])
    return {"heat": heat, "year": year}


def _distribution(rs, var, cvar) -> dict:
    """Histogram of the observed returns; VaR and CVaR (5 %) from ``ql.metrics``."""
    v = rs.dropna().to_numpy()
    counts, edges = np.histogram(v, bins=60, density=True) if v.size else \
        (np.zeros(1), np.array([0.0, 1.0]))
    hi = float(counts.max()) if counts.max() > 0 else 1.0
    return {"hist": {"left": edges[:-1], "right": edges[1:], "top": counts},
            "risk": {"x": [var, cvar], "y0": [0.0, 0.0], "y1": [hi, hi],
                     # rounded as the summary table beside it shows them (-2.96 % there
                     # read -3.0 %)
                     "name": [f"VaR 95 % {fmt.metric('value_at_risk', var)}",
                              f"CVaR 95 % {fmt.metric('conditional_value_at_risk', cvar)}"],
                     "color": ["#ff7f0e", _RED]}}


def _trade_rows(trades) -> dict:
    """The trade list (``tearsheet.trade_list``) as display columns: numbers to sort by
    and their formatted text (``*_s``); asset and reason HTML-escaped."""
    cols = {"asset": [], "entry": [], "exit": [], "ret": [], "ret_s": [], "pnl": [],
            "pnl_s": [], "reason": []}
    if trades is None or len(trades) == 0:
        return cols
    tr = _ts.trade_list(trades)
    cols["asset"] = [_html.escape(a) for a in tr["asset"]]
    cols["entry"] = fmt.dates(tr["entry_time"])
    cols["exit"] = fmt.dates(tr["exit_time"], missing="open")
    cols["ret"] = tr["return"].to_numpy(float)
    cols["ret_s"] = [fmt.metric("trade_return", x) for x in cols["ret"]]
    cols["pnl"] = tr["pnl"].to_numpy(float)
    cols["pnl_s"] = [fmt.money(x) for x in cols["pnl"]]
    cols["reason"] = [_html.escape(x) for x in tr["exit_reason"]]
    return cols


def tearsheet(returns, benchmark=None, *, trades=None, positions=None, window: int | None = None,
              periods: int | None = None, title: str | None = None,
              capital: float | None = None, risk_free_rate: float | None = None,
              extra=None):
    """A tear sheet: one bokeh layout summarising a return stream or a backtest.

    Summary table (strategy beside benchmark, values of ``ql.metrics``, a note saying why
    a value reads n/a or extrapolates under a year), equity on a log axis, the underwater
    curve with the top-5 drawdowns, monthly-returns heatmap and yearly bars, rolling
    Sharpe ratio and volatility, the return distribution with VaR/CVaR and, when given,
    exposure and the trade list. Returns with more dims than
    ``time`` (assets, parameters) get one column per combination and a Select that
    switches every section in the browser (CustomJS: works in static HTML, no kernel).
    The data are those of ``ql.tearsheet`` (``summary_table``, ``drawdown_table``, ...).

    Parameters
    ----------
    returns : xarray.DataArray, pandas.Series, pandas.DataFrame or BacktestResult
        Simple returns on ``time`` (at most 64 columns). A BacktestResult brings its
        returns, trades, exposure, backtest metrics, periods, risk-free rate and
        ``init_cash`` (``ql.tearsheet.result_inputs``); the options below override them.
    benchmark : xarray.DataArray or pandas.Series, optional
        Returns on ``time`` (or on a subset of the returns' dims), aligned on the returns'
        times; for a BacktestResult also ``"buy_and_hold"``.
    trades : pandas.DataFrame or False, optional
        A frame like ``res.trades`` (a BacktestResult's by default); False: no trade list.
    positions : xarray.DataArray, optional
        Exposure (position value / equity) on ``time`` [``asset``, ...].
    window : int, optional
        Bars of the rolling Sharpe/volatility, 2 to the number of bars (default 126, or
        all the bars when there are fewer).
    periods : int, optional
        Bars per year (default: the result's, else the returns' calendar as ``ql.metrics``
        infers it: 252 business days, 365 daily 24/7, 8760 hourly 24/7).
    title : str, optional
        The heading.
    capital : float, optional
        Starting value of the equity curves, > 0 (default 1, or ``res.init_cash``).
    risk_free_rate : float, optional
        Annual, > -1 (default 0, or the result's).
    extra : xarray.Dataset, optional
        More per-column values for the summary table (a result's backtest metrics).

    Returns
    -------
    bokeh.models.Column
        The layout (``ql.plots.show`` it, or save it as static HTML).

    Raises
    ------
    ValueError, TypeError, quantlab.DataError
        If an argument is out of range or of the wrong type, or a column has no data.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> r = ql.data.returns(ds["close"].sel(asset="IBM"))
    >>> sheet = ql.plots.tearsheet(r.isel(time=slice(0, 150)), window=21, title="IBM")
    >>> from bokeh.models import Plot
    >>> type(sheet).__name__, len(list(sheet.select({"type": Plot})))   # 7 figures
    ('Column', 7)

    A backtest's (``res.tearsheet("buy_and_hold")``) adds its exposure and trade list:
    ``ql.plots.tearsheet(res, "buy_and_hold")``.
    """
    from bokeh.models import ColumnDataSource

    if isinstance(returns, BacktestResult):
        given = {"positions": positions, "periods": periods, "capital": capital,
                 "risk_free_rate": risk_free_rate, "extra": extra}
        kw = _ts.result_inputs(returns, benchmark, trades=True if trades is None else trades,
                               **{k: v for k, v in given.items() if v is not None})
        return tearsheet(**kw, window=window, title=title)
    r, b, opts, cols = _ts._inputs(
        returns, benchmark, trades=trades, positions=positions, window=window,
        periods=periods, capital=1.0 if capital is None
        else capital, risk_free_rate=0.0 if risk_free_rate is None else risk_free_rate,
        extra=extra)
    # one colour scale for every column's heatmap (the colour bar stays true when switching)
    mo = (1.0 + r).resample(time="ME").prod(min_count=1) - 1.0
    finite = np.abs(mo.values[np.isfinite(mo.values)])
    lim = float(finite.max()) if finite.size and finite.max() > 0 else 0.1
    per_col = [_column(*c[1:], lim=lim, **opts) for c in cols]
    first = per_col[0]
    log = all(np.nanmin(d["eq"][k]) > 0 for d in per_col for k in d["eq"] if k != "time")
    src = {k: ColumnDataSource(v, name=k) for k, v in first.items()}   # named: tests
    parts = _sections(src, first, b is not None, log, opts["window"], lim, opts["capital"])
    return _tearsheet_layout(src, per_col, [c[0] for c in cols], parts, title,
                             any(c[3] is not None for c in cols))


def _tearsheet_layout(src, per_col, labels, parts, title, has_trades):
    """Heading, the Select switching every source between the columns, the tables and
    figures."""
    from bokeh.layouts import column as bcol
    from bokeh.layouts import row as brow
    from bokeh.models import ColumnDataSource, CustomJS, Div, Select

    head = [Div(text=f"<h2>{_html.escape(str(title or 'Tear sheet'))}</h2>")]
    if len(labels) > 1:
        sel = Select(title="column (switches every section)", value=labels[0], options=labels)
        keys = list(src)
        alts = [[ColumnDataSource(d[k]) for d in per_col] for k in keys]
        sel.js_on_change("value", CustomJS(
            args={"srcs": [src[k] for k in keys], "alts": alts, "labels": labels},
            code="const i = labels.indexOf(cb_obj.value);\n"
                 "for (let j = 0; j < srcs.length; j++) srcs[j].data = alts[j][i].data;"))
        head.append(sel)
    tail = [Div(text="<b>trades</b> (click a header to sort)"), parts["trades"]] \
        if has_trades else []
    layout = bcol(*head, brow(parts["summary"], parts["ddtab"], sizing_mode="stretch_width"),
                  *parts["figures"], *tail, sizing_mode="stretch_width")
    layout.tags = [{"columns": list(labels)}]
    return layout


def _sections(src, first, has_b, log, window, lim, capital) -> dict:
    """The figures and tables drawn from the display sources (one per section)."""
    from bokeh.layouts import row

    summary, ddtab, trades = _tables(src, first, has_b)
    eq, dd = _equity_figures(src, has_b, log, capital)
    heat, yearly = _calendar_figures(src, first, has_b, lim)
    figs = [eq, dd, row(heat, yearly, sizing_mode="stretch_width"),
            *_rolling_figures(src, has_b, window, eq.x_range), _distribution_figure(src)]
    if "pos" in src:
        figs.append(_exposure_figure(src, eq.x_range))
    return {"summary": summary, "ddtab": ddtab, "trades": trades, "figures": figs}


def _tables(src, first, has_b):
    """The summary, drawdown and trade tables (numbers sort by value, shown via fmt)."""
    from bokeh.models import DataTable, HTMLTemplateFormatter, TableColumn

    def num_col(field, title, width=90):   # numeric (sorts by value), shown via fmt
        return TableColumn(field=field, title=title, width=width,
                           formatter=HTMLTemplateFormatter(template=f"<%= {field}_s %>"))

    summary = DataTable(source=src["summary"], sortable=False, reorderable=False,
                        index_position=None,
                        height=30 + 25 * len(first["summary"]["metric"]),
                        width=170 + 100 * (1 + has_b) + 230,   # beside ddtab (640)
                        columns=[TableColumn(field="metric", title="metric", width=170),
                                 TableColumn(field="strategy", title="strategy", width=100),
                                 *([TableColumn(field="benchmark", title="benchmark",
                                                width=100)] if has_b else []),
                                 # why a value reads n/a: never a bare "n/a"
                                 TableColumn(field="note", title="note", width=230)])
    ddtab = DataTable(source=src["ddtab"], index_position=None, reorderable=False,
                      height=190, width=640,
                      columns=[TableColumn(field="rank", title="#", width=30),
                               TableColumn(field="start", title="start (peak)"),
                               TableColumn(field="trough", title="trough"),
                               TableColumn(field="recovery", title="recovery"),
                               num_col("depth", "depth"), num_col("length", "length")])
    trades = DataTable(source=src["trades"], index_position=None, reorderable=False, height=300,
                       sizing_mode="stretch_width",
                       columns=[TableColumn(field="asset", title="asset"),
                                TableColumn(field="entry", title="entry"),
                                TableColumn(field="exit", title="exit"),
                                num_col("ret", "return"), num_col("pnl", "P&L"),
                                TableColumn(field="reason", title="exit reason")])
    return summary, ddtab, trades


def _equity_figures(src, has_b, log, capital):
    """Equity (log axis unless it reached 0) and the underwater curve."""
    eq = figure(x_axis_type="datetime", y_axis_type="log" if log else "linear",
                title="equity" + ("" if log else " (linear axis: equity reached 0)")
                + (" vs benchmark" if has_b else ""), x_axis_label="time",
                y_axis_label="equity" if capital != 1.0 else "growth of 1")
    eq.line("time", "strategy", source=src["eq"], color=_BLUE, line_width=1.5,
            legend_label="strategy")
    if has_b:
        eq.line("time", "benchmark", source=src["eq"], color=_GREY, legend_label="benchmark")
    eq.yaxis.formatter = money_tick_formatter()
    eq.legend.location = "top_left"
    dd = figure(x_axis_type="datetime", height=220, x_range=eq.x_range,
                title="underwater (top-5 drawdowns shaded)", x_axis_label="time",
                y_axis_label="drawdown")
    dd.quad(left="left", right="right", bottom="bottom", top="top", source=src["ddspan"],
            color=_RED, alpha=0.12)
    dd.varea(x="time", y1="strategy", y2=0, source=src["dd"], color=_RED, alpha=0.5,
             legend_label="strategy")
    if has_b:
        dd.line("time", "benchmark", source=src["dd"], color=_GREY, legend_label="benchmark")
    dd.yaxis.formatter = pct_tick_formatter()
    dd.legend.location = "bottom_left"
    return eq, dd


def _calendar_figures(src, first, has_b, lim):
    """The monthly-returns heatmap (one colour scale for every column) and yearly bars."""
    from bokeh.models import ColorBar, LinearColorMapper
    from bokeh.palettes import RdYlGn11

    years = sorted(set(first["heat"]["year"]))
    heat = figure(x_range=list(_MONTHS), y_range=list(reversed(years)), height=60 + 22 * len(years),
                  title="monthly returns (%)", x_axis_label="month", y_axis_label="year",
                  tools="save,hover", tooltips=[("", "@month @year"), ("return", "@label %")])
    heat.rect("month", "year", 1, 1, source=src["heat"], fill_color="fill", line_color="white")
    heat.text("month", "year", text="label", source=src["heat"], text_color="ink",
              text_align="center", text_baseline="middle", text_font_size="10px")
    heat.add_layout(ColorBar(color_mapper=LinearColorMapper(
        palette=list(reversed(RdYlGn11)), low=-lim, high=lim),
        formatter=pct_tick_formatter(), title="return"), "right")
    heat.grid.visible = False
    yearly = figure(x_range=years, height=heat.height, title="yearly returns",
                    x_axis_label="year", y_axis_label="return",
                    tooltips=[("year", "@year"), ("strategy", "@s_label")]
                    + ([("benchmark", "@b_label")] if has_b else []))
    if has_b:
        from bokeh.transform import dodge

        yearly.vbar(x=dodge("year", -0.18, range=yearly.x_range), top="strategy", width=0.35,
                    source=src["year"], color="color", legend_label="strategy")
        yearly.vbar(x=dodge("year", 0.18, range=yearly.x_range), top="benchmark", width=0.35,
                    source=src["year"], color=_GREY, legend_label="benchmark")
        yearly.legend.location = "top_left"
    else:
        yearly.vbar(x="year", top="strategy", width=0.7, source=src["year"], color="color")
    yearly.yaxis.formatter = pct_tick_formatter()
    yearly.xaxis.major_label_orientation = 0.8
    return heat, yearly


def _rolling_figures(src, has_b, window, x_range):
    """Rolling Sharpe ratio (with a 0 line) and rolling volatility."""
    figs = []
    for key, name, ylab in (("sharpe", "rolling Sharpe ratio", "Sharpe ratio (annualised)"),
                            ("vol", "rolling volatility", "volatility (annualised)")):
        name = f"{name} ({window} bars)"
        f = figure(x_axis_type="datetime", height=220, x_range=x_range, title=name,
                   x_axis_label="time", y_axis_label=ylab)
        f.line("time", f"{key}_strategy", source=src["roll"], color=_BLUE, legend_label="strategy")
        if has_b:
            f.line("time", f"{key}_benchmark", source=src["roll"], color=_GREY,
                   legend_label="benchmark")
        if key == "vol":
            f.yaxis.formatter = pct_tick_formatter()
        else:   # Sharpe is NaN on flat windows: the 0 line keeps the axis when all are
            f.line("time", "zero", source=src["roll"], color="black", line_dash="dotted",
                   line_width=1)
        f.legend.location = "top_left"
        figs.append(f)
    return figs


def _distribution_figure(src):
    """Histogram of the period returns with VaR and CVaR marked."""
    hist = figure(height=260, title="distribution of period returns (VaR/CVaR: ql.metrics, 5 %)",
                  x_axis_label="return per period", y_axis_label="density",
                  tools="pan,wheel_zoom,box_zoom,reset,save")
    hist.quad(left="left", right="right", top="top", bottom=0, source=src["hist"],
              color=_BLUE, alpha=0.6, line_color="white")
    hist.segment(x0="x", x1="x", y0="y0", y1="y1", source=src["risk"], color="color",
                 line_width=2, line_dash="dashed", legend_field="name")
    hist.xaxis.formatter = pct_tick_formatter()
    hist.legend.location = "top_left"
    return hist


def _exposure_figure(src, x_range):
    """One exposure line per asset."""
    pos = figure(x_axis_type="datetime", height=200, x_range=x_range,
                 title="exposure (position value / equity)", x_axis_label="time",
                 y_axis_label="exposure")
    pos.multi_line(xs="xs", ys="ys", source=src["pos"], color="color", legend_field="name")
    pos.yaxis.formatter = pct_tick_formatter()
    pos.legend.location = "top_left"
    return pos


# ---- tick engine ---------------------------------------------------------------------



class _LiveView(StaticView):
    """A dashboard updated in place: live figures with ranges that follow the data until
    the user zooms (:meth:`_follow`), re-published after each update (:meth:`_publish`)."""

    _fitted: dict = None

    def _attach_widget(self):
        try:   # built after the first update: the embedded (saved) state has data
            from jupyter_bokeh import BokehModel

            self.widget = BokehModel(self.figure)
        except ImportError:   # outside Jupyter: the static copy only
            self.widget = None

    def _follow(self, spec):
        """Fit each live Range1d of ``spec`` ((range, columns, include 0) triples) to its
        data unless the user has zoomed or panned it.

        Each update re-renders the live view from the document (``render_bundle``,
        ``refresh``), and a re-rendered DataRange1d forgets the user's zoom (BokehJS keeps
        it only in the view). So the ranges are Range1d, fitted here: a range whose
        start/end (synced back from the browser) differ from the last fit was moved by
        the user and is left alone; ``reset_start/end`` always hold the current fit, so
        the reset tool returns to following the data.
        """
        if self._fitted is None:
            self._fitted = {}   # range id -> the (start, end) the last update fitted
        for rng, cols, zero in spec:
            fit = _data_fit(cols, zero)
            if fit is None:   # no data yet: keep 0..1
                continue
            if (rng.start, rng.end) == self._fitted.get(rng.id, (0, 1)):
                rng.update(start=fit[0], end=fit[1])
            rng.update(reset_start=fit[0], reset_end=fit[1])
            self._fitted[rng.id] = fit

    def _publish(self):
        if self.widget is not None:
            # the widget's synced snapshot of the document: patches sent to a live
            # view are not widget state, so a saved/exported notebook (papermill
            # stores widget state) would otherwise show the construction-time data
            self.widget.render_bundle = type(self.widget)._model_to_traits(self.figure)
        self.refresh()


class _EngineDashboard(_LiveView):
    """The tick engine dashboard: live (a jupyter_bokeh widget) and static (its current
    data, re-published by each ``update``)."""

    def __init__(self, engine, history):
        import time

        self.engine, self.history = engine, history
        self.sources = self._sources()
        self.figure, self._figs = self._layout(self.sources)
        self.state = {"t": 0, "ticks": engine.core.ticks, "wall": time.perf_counter()}
        self.update(publish=False)
        self._attach_widget()

    @staticmethod
    def _sources():
        from bokeh.models import ColumnDataSource

        return {"tp": ColumnDataSource({"t": [], "tps": []}),
                "pnl": ColumnDataSource({"t": [], "equity": []}),
                "lat": ColumnDataSource({"left": [], "right": [], "count": []}),
                "pos": ColumnDataSource({"symbol": [], "position": []})}

    @staticmethod
    def _layout(src, static=False):
        from bokeh.layouts import gridplot
        from bokeh.models import Range1d

        # live figures: Range1d fitted by _fit_ranges (why: see there); the static copy
        # keeps bokeh's auto-fitting DataRange1d
        def live(*axes):
            return {} if static else {f"{a}_range": Range1d(0, 1) for a in axes}

        symbols = [str(v) for v in src["pos"].data["symbol"]]
        f_tp = figure(title="throughput", height=220, x_axis_label="update",
                      y_axis_label="ticks/s", **live("x", "y"))
        f_tp.line("t", "tps", source=src["tp"])
        f_tp.scatter("t", "tps", source=src["tp"], size=4)  # one update is still visible
        f_pnl = figure(title="equity", height=220, x_axis_label="update",
                       y_axis_label="equity (currency)", **live("x", "y"))
        money_axis(f_pnl.yaxis)
        f_pnl.line("t", "equity", source=src["pnl"], color="#2ca02c")
        f_pnl.scatter("t", "equity", source=src["pnl"], size=4, color="#2ca02c")
        f_lat = figure(title="latency (sampled ticks)", height=220, x_axis_label="µs",
                       y_axis_label="ticks", **live("x", "y"))
        f_lat.quad(left="left", right="right", top="count", bottom=0, source=src["lat"])
        f_pos = figure(title="positions", height=220, x_range=symbols or ["-"],
                       x_axis_label="symbol", y_axis_label="shares", **live("y"))
        f_pos.vbar(x="symbol", top="position", width=0.8, source=src["pos"])
        f_pos.xaxis.major_label_orientation = 1.2
        # a static copy of an empty source (no latency sample yet) gets fixed ranges:
        # empty axes, not BokehJS's "could not set initial ranges"
        for f, key in ((f_tp, "tp"), (f_pnl, "pnl"), (f_lat, "lat")):
            if static and not len(src[key].data[next(iter(src[key].data))]):
                f.x_range.start, f.x_range.end = 0, 1
                f.y_range.start, f.y_range.end = 0, 1
        grid = gridplot([[f_tp, f_pnl], [f_lat, f_pos]], sizing_mode="stretch_width")
        return grid, {"tp": f_tp, "pnl": f_pnl, "lat": f_lat, "pos": f_pos}

    # source -> (x columns, y columns, whether y starts at 0 (bars)); None: a factor axis
    _FIT = {"tp": (("t",), ("tps",), False), "pnl": (("t",), ("equity",), False),
            "lat": (("left", "right"), ("count",), True), "pos": (None, ("position",), True)}

    def _fit_ranges(self):
        spec = []
        for key, (xs, ys, zero) in self._FIT.items():
            fig, data = self._figs[key], self.sources[key].data
            if xs is not None:
                spec.append((fig.x_range, [data[c] for c in xs], False))
            spec.append((fig.y_range, [data[c] for c in ys], zero))
        self._follow(spec)

    def update(self, _engine=None, _result=None, publish: bool = True):
        import time

        src, state, engine = self.sources, self.state, self.engine
        now = time.perf_counter()
        s = engine.get_performance_stats()
        state["t"] += 1
        tps = (s["ticks_processed"] - state["ticks"]) / max(now - state["wall"], 1e-9)
        state["ticks"], state["wall"] = s["ticks_processed"], now
        src["tp"].stream({"t": [state["t"]], "tps": [tps]}, rollover=self.history)
        src["pnl"].stream({"t": [state["t"]], "equity": [engine.pnl()["equity"]]},
                          rollover=self.history)
        n = min(engine.core.n_samples, len(engine.core.samples))
        if n:
            counts, edges = np.histogram(np.asarray(engine.core.samples[:n]) / 1000.0, 40)
            src["lat"].data = {"left": edges[:-1], "right": edges[1:], "count": counts}
        pos = engine.positions()
        symbols = [str(v) for v in pos.index.to_numpy()]
        src["pos"].data = {"symbol": symbols, "position": pos.to_numpy()}
        fig_pos = self._figs["pos"]
        if symbols and list(fig_pos.x_range.factors) != symbols:
            fig_pos.x_range.factors = symbols
        self._fit_ranges()
        if publish:
            self._publish()

    def static_figure(self):
        return self._layout({k: copy_source(v) for k, v in self.sources.items()}, True)[0]


def _as_float(c) -> np.ndarray:
    """Numbers as float; datetimes as bokeh's datetime axes hold them: ms since the epoch
    (NaT: NaN)."""
    a = np.asarray(c)
    if a.dtype.kind != "M":
        return a.astype(float).ravel()
    ms = a.astype("datetime64[ms]").astype(np.int64).astype(float)
    return np.where(np.isnat(a), np.nan, ms).ravel()


def _data_fit(cols, zero=False):
    """(start, end) as bokeh's DataRange1d fits the finite values of ``cols`` (and 0 if
    ``zero``): 5 % padding a side, ±1 around a single value; None without data."""
    v = np.concatenate([_as_float(c) for c in cols])
    v = v[np.isfinite(v)]
    if not v.size:
        return None
    lo, hi = float(v.min()), float(v.max())
    if zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    return lo - pad, hi + pad


def engine_dashboard(engine, history=300):
    """A live bokeh dashboard of a ``TickEngine``: throughput, equity, latency
    histogram and positions.

    Call ``.update()`` (or pass it as ``replay(on_chunk=...)``) to refresh while a replay
    runs; a saved or exported notebook shows the last update (a :class:`StaticView`).
    A zoom or pan survives the updates; the reset tool returns to following the data.

    Parameters
    ----------
    engine : quantlab.engine.TickEngine
        The engine.
    history : int, default 300
        Updates kept on the throughput and equity lines, 1 to 1e6.

    Returns
    -------
    StaticView

    Raises
    ------
    TypeError
        If ``engine`` is not a TickEngine.

    Examples
    --------
    >>> import quantlab as ql
    >>> from quantlab import testing
    >>> eng = ql.engine.TickEngine()
    >>> dash = ql.plots.engine_dashboard(eng)
    >>> result = eng.replay(testing.synthetic_ticks(500, n_symbols=3, seed=1), chunk=250,
    ...                     on_chunk=dash.update)
    >>> dash.sources["pos"].data["symbol"], len(dash.sources["tp"].data["t"])
    (['0', '1', '2'], 3)
    """
    from quantlab.engine import TickEngine  # lazy: heavy, the tick engine loads pandas+xarray

    if not isinstance(engine, TickEngine):
        raise TypeError(f"engine_dashboard draws a ql.engine.TickEngine, got "
                        f"{type(engine).__name__}")
    history = _v.integer("history", history, 1, 10 ** 6)
    return _EngineDashboard(engine, history)


# ---- deployments -------------------------------------------------------------------------

def _total(da):
    """Equity summed over accounts (time,); refuses parameter dims (one column only)."""
    extra = [d for d in da.dims if d not in ("time", "asset")]
    if extra:
        raise ValueError(f"backtest has parameter dims {extra}: select one combination "
                         f"(res.isel({extra[0]}=0) or .sel(...)) before comparing it with "
                         "a deployment")
    return da.sum("asset") if "asset" in da.dims else da


def deployment_dashboard(dep, backtest=None, live: bool = False):
    """A static bokeh layout of a ``ql.Deployment`` (the data live in the
    figure, so it works in saved HTML), or with ``live=True`` a view to update as bars
    arrive (``dep.listeners.append(dash.update)``): the same figures are refreshed, so a
    zoom or pan survives the updates and the reset tool returns to following the data.

    Equity against ``backtest``'s (summed over accounts, on the deployment's bars),
    drawdown from the running peak (the initial cash included), fills (buys and
    sells), risk-limit rejections by reason, and decision time per bar (ms, with its
    p50 and p99), under a summary of the whole book (``dep.result().as_portfolio()``:
    return, Sharpe ratio, drawdown, exposure, turnover, trades, fees) beside the
    backtest's, with the tracking error between them. Its data sources are named
    ``deployment.<summary|equity|backtest|buy|sell|rejections|latency>``
    (``layout.select(name=...)``).

    Parameters
    ----------
    dep : quantlab.live.Deployment
        A deployment (``ql.deploy``).
    backtest : BacktestResult, optional
        A backtest of the same bars, one parameter combination.
    live : bool, default False
        Return a :class:`StaticView` with ``update()`` and ``sources`` (a saved or
        exported notebook shows the last update) instead of a plain layout. An update
        re-publishes the whole document (about 20 bars' worth of decision time at 300
        bars): on a fast replay update every few bars, then once at the end.

    Returns
    -------
    bokeh.models.Column or StaticView

    Raises
    ------
    TypeError
        If ``dep`` is not a Deployment or ``backtest`` not a BacktestResult.
    ValueError
        If ``backtest`` has parameter dims, or was run with other options (fees,
        init_cash, group, ...: :meth:`BacktestOptions.differences`).

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 40))
    >>> dep = ql.deploy("volatility_regime", {"window": 5, "lookback": 20},
    ...                 history=ds.isel(time=slice(0, 30)))
    >>> dep = dep.replay(ds.isel(time=slice(30, 40)), echo=None)
    >>> layout = ql.plots.deployment_dashboard(dep)
    >>> len(layout.select_one({"name": "deployment.equity"}).data["time"])
    10
    """
    from bokeh.models import ColumnDataSource

    from quantlab.live import Deployment  # lazy: drawing is the face, live the research side

    if not isinstance(dep, Deployment):
        raise TypeError(f"deployment_dashboard draws a ql.Deployment, got "
                        f"{type(dep).__name__}")
    if backtest is not None and not hasattr(backtest, "equity"):
        raise TypeError(f"backtest is a BacktestResult (ql.backtest(...)) of the same bars, "
                        f"got {type(backtest).__name__}")
    if backtest is not None:
        _total(backtest.equity)   # one parameter combination, before its options
        _check_same_options(dep, backtest)
    if live:
        return _DeploymentDashboard(dep, backtest)
    src = {k: ColumnDataSource(v) for k, v in _deployment_data(dep, backtest).items()}
    return _deployment_layout(src)[0]


def deployment_html(dep, backtest=None, title: str | None = None) -> str:
    """A deployment as one self-contained HTML page (BokehJS inlined: opens offline):
    its dashboard (:func:`deployment_dashboard`, the summary of the whole book first) and,
    from its second traded bar, the tear sheet of the whole book
    (``dep.result().as_portfolio()``, beside the buy-and-hold of its assets).
    ``quantlab deploy --report FILE`` writes it as the run goes.

    Parameters
    ----------
    dep : quantlab.live.Deployment
        A deployment (``ql.deploy``).
    backtest : BacktestResult, optional
        A backtest of the same bars, with the deployment's options.
    title : str, optional
        The page's title and heading (default: the strategy and its last bar).

    Returns
    -------
    str

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 40))
    >>> dep = ql.deploy("volatility_regime", {"window": 5, "lookback": 20},
    ...                 history=ds.isel(time=slice(0, 30)))
    >>> dep = dep.replay(ds.isel(time=slice(30, 40)), echo=None)
    >>> page = ql.plots.deployment_html(dep)
    >>> page.startswith("<!DOCTYPE html>"), "deployment.summary" in page
    (True, True)
    """
    from bokeh.embed import file_html
    from bokeh.layouts import column
    from bokeh.models import Div
    from bokeh.resources import INLINE

    last = dep.last_bar
    if title is None:
        title = f"Deployment: {dep.strategy.name}" + (
            f", to {fmt.date(last)}" if last is not None else "")
    # what runs: the page showed only the strategy's name (two runs of other parameters
    # or fees read alike), its heading promised here missing
    changed = dep.options.differences(BacktestOptions())
    run = repr(dep.strategy) + "".join(f", {k}={v[0]!r}" for k, v in changed.items())
    parts = [Div(text=f"<h2>{_html.escape(str(title))}</h2><p>{_html.escape(run)}</p>"),
             deployment_dashboard(dep, backtest)]
    if len(dep.equity["time"]) >= 2:   # a tear sheet reads returns: two bars at least
        parts.append(tearsheet(dep.result().as_portfolio(), "buy_and_hold",
                               title="the whole book: tear sheet"))
    return file_html(column(*parts, sizing_mode="stretch_width"), INLINE, title)


def _check_same_options(dep, backtest) -> None:
    """Refuse a backtest run with other options than the deployment's: another init_cash
    or group drew as a drift between two runs trading alike (4 accounts of init_cash
    each against one), other fees as the deployment's 'slippage' from its research."""
    fix = ("backtest with the deployment's options (e.g. opt.backtest(ds, start, end, "
           "**opt.backtest_options), or ql.backtest(..., **dep.options.to_dict()))")
    ours = (float(dep.options.init_cash), bool(dep.options.group))
    theirs = (float(backtest.init_cash), bool(backtest.group))
    if ours != theirs:
        raise ValueError(f"backtest has init_cash {theirs[0]:,.0f} and group={theirs[1]}, "
                         f"the deployment {ours[0]:,.0f} and group={ours[1]}: {fix}")
    if getattr(backtest, "options", None) is None:   # made otherwise: nothing to compare
        return
    diff = dep.options.differences(backtest.options)
    if float(dep.options.borrow_rate) and backtest.periods != dep.options.periods:
        diff["periods"] = (dep.options.periods, backtest.periods)   # annualise the charges
    if diff:
        def shown(v):
            return f"<varies over {v.dims}>" if isinstance(v, xr.DataArray) else repr(v)
        said = "; ".join(f"{k} {shown(b)} (the deployment's: {shown(a)})"
                         for k, (a, b) in diff.items())
        raise ValueError(f"backtest ran with other options than the deployment: {said}: "
                         f"{fix}")


def _deployment_data(dep, backtest) -> dict:
    """The columns of each source of a deployment dashboard, from its records."""
    eq = _total(dep.equity)
    t = eq.time.values
    # the peak counts the initial cash, as Deployment.pnl, its kill switch and
    # ql.metrics.max_drawdown do: a deployment below it from its first bar showed 0
    data = {"equity": {"time": t, "equity": eq.values,
                       "drawdown": _ts.underwater(eq.values, dep.equity_start())}}
    if backtest is not None:
        be = _total(backtest.equity).reindex(time=t)
        data["backtest"] = {"time": t, "equity": be.values, "difference": eq.values - be.values}
    data["summary"] = _deployment_summary(dep, backtest)
    o = dep.orders
    for side in ("buy", "sell"):
        sel = o[(o["size"] > 0) if side == "buy" else (o["size"] < 0)]
        data[side] = {"time": sel["time"].values, "price": sel["price"].values,
                      "asset": sel["asset"].astype(str).values, "size": sel["size"].values}
    counts = dep.rejections["reason"].value_counts()
    data["rejections"] = {"reason": [str(r) for r in counts.index] or ["none"],
                          "count": counts.to_numpy().tolist() or [0]}
    lat = dep.latency * 1e3
    data["latency"] = {"time": lat.index.values, "ms": lat.to_numpy()}
    return data


# the dashboard's summary rows: the tear sheet's headline, the divergence from the
# backtest (tracking error: annualised std of the return difference) and the costs
_DASH_ROWS = ("start", "end", "periods", "total_return", "annual_return",
              "annual_volatility", "sharpe_ratio", "max_drawdown", "tracking_error",
              "exposure", "turnover", "n_trades", "fees_paid")


def _deployment_summary(dep, backtest) -> dict:
    """The summary table's columns: the deployment's whole book (its accounts as one,
    ``as_portfolio``) beside the backtest's returns over the same bars (the tear sheet's
    ``summary_table``; the order counts and costs are the deployment's)."""
    try:
        book = dep.result().as_portfolio()
    except ValueError as e:   # before the first bar; closes not recorded (older checkpoint)
        return {"metric": ["(no summary)"], "deployment": [""], "backtest": [""],
                "note": [str(e).split(":")[0]]}
    r = book.returns
    b = None if backtest is None else \
        backtest.as_portfolio().returns.reindex(time=r["time"]).rename("backtest")
    m = book.metrics()
    table = _ts.summary_table(r, b, periods=book.periods, extra={
        k: float(m[k]) for k in ("exposure", "turnover", "n_trades", "fees_paid")})
    table = table[table["name"].isin(_DASH_ROWS)]
    return {"metric": table["metric"].tolist(), "deployment": table["strategy"].tolist(),
            "backtest": table["benchmark"].tolist(), "note": table["note"].tolist()}


def _deployment_layout(src, live=False):
    """(layout, figures, p50/p99 spans) of a deployment dashboard on the sources ``src``;
    ``live``: Range1d ranges that :meth:`_LiveView._follow` fits."""
    from bokeh.layouts import column, gridplot
    from bokeh.models import DataTable, HoverTool, Range1d, Span, TableColumn

    def rng(axis="y"):
        return {f"{axis}_range": Range1d(0, 1)} if live else {}

    f_eq = figure(x_axis_type="datetime", title="equity: deployment vs backtest", height=250,
                  y_axis_label="currency", **rng("x"), **rng())
    f_eq.line("time", "equity", source=src["equity"], color=PALETTE[1], line_width=1.5,
              legend_label="deployment")
    if "backtest" in src:
        f_eq.line("time", "equity", source=src["backtest"], color="gray", line_dash="dashed",
                  line_width=1.5, legend_label="backtest, same bars")
    f_eq.legend.location = "top_left"
    f_dd = figure(x_axis_type="datetime", title="drawdown", height=180, x_range=f_eq.x_range,
                  **rng())
    f_dd.varea("time", "drawdown", 0, source=src["equity"], color=PALETTE[3], alpha=0.4)
    f_or = figure(x_axis_type="datetime", title="fills (price)", height=220,
                  x_range=f_eq.x_range, tools="pan,wheel_zoom,box_zoom,reset,save", **rng())
    for side, color, marker in (("buy", PALETTE[2], "triangle"),
                                ("sell", PALETTE[3], "inverted_triangle")):
        f_or.scatter("time", "price", source=src[side], size=7, color=color, marker=marker,
                     legend_label=side)
    f_or.add_tools(HoverTool(tooltips=[("asset", "@asset"), ("size", "@size{0,0.00}"),
                                       ("price", "@price{0,0.00}")]))
    f_or.legend.location = "top_left"
    rej = src["rejections"].data
    f_rej = figure(x_range=list(rej["reason"]), title=_rejections_title(rej), height=220,
                   **rng())
    f_rej.vbar(x="reason", top="count", width=0.7, source=src["rejections"], color=PALETTE[3])
    f_lat = figure(x_axis_type="datetime", title="decision time per bar (ms)", height=220,
                   x_range=f_eq.x_range, **rng())
    f_lat.scatter("time", "ms", source=src["latency"], size=3, color=PALETTE[0])
    spans = [Span(location=None, dimension="width", line_dash=d, line_color="gray")
             for d in ("dashed", "dotted")]    # p50, p99
    for span, loc in zip(spans, _latency_lines(src["latency"].data["ms"])):
        span.location = loc
        f_lat.add_layout(span)
    for k, v in src.items():     # findable: layout.select(name="deployment.equity")
        v.name = f"deployment.{k}"
    rows = src["summary"].data["metric"]
    summary = DataTable(source=src["summary"], sortable=False, reorderable=False,
                        index_position=None, height=30 + 25 * max(len(rows), 13), width=760,
                        columns=[TableColumn(field="metric", title="metric", width=170),
                                 TableColumn(field="deployment", title="deployment",
                                             width=110),
                                 *([TableColumn(field="backtest", title="backtest, same bars",
                                                width=130)] if "backtest" in src else []),
                                 TableColumn(field="note", title="note", width=350)])
    layout = column(summary, f_eq, f_dd, f_or,
                    gridplot([[f_rej, f_lat]], sizing_mode="stretch_width"),
                    sizing_mode="stretch_width")
    return layout, {"eq": f_eq, "dd": f_dd, "or": f_or, "rej": f_rej, "lat": f_lat}, spans


def _rejections_title(rej) -> str:
    return f"rejections by reason ({int(np.sum(rej['count']))})"


def _latency_lines(ms):
    """p50 and p99 of the decision times (None: no bar yet)."""
    ms = np.asarray(ms, dtype=float)
    return [float(np.percentile(ms, q)) if len(ms) else None for q in (50, 99)]


class _DeploymentDashboard(_LiveView):
    """The live deployment dashboard: the figures of :func:`deployment_dashboard`, whose
    sources ``update`` refreshes from the deployment (a zoom survives, see ``_follow``)."""

    def __init__(self, dep, backtest):
        from bokeh.models import ColumnDataSource

        self.dep, self.backtest = dep, backtest
        self.sources = {k: ColumnDataSource(v)
                        for k, v in _deployment_data(dep, backtest).items()}
        self.figure, self._figs, self._spans = _deployment_layout(self.sources, live=True)
        self.update(publish=False)
        self._attach_widget()

    def update(self, _status=None, publish: bool = True):
        """Redraw from the deployment's records (a ``dep.listeners`` entry: called with
        each bar's status, which it does not need).

        Parameters
        ----------
        _status : dict, optional
            The bar's status (ignored).
        publish : bool, default True
            Re-publish the displayed output and the widget's saved state.

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 40))
        >>> dep = ql.deploy("volatility_regime", {"window": 5, "lookback": 20},
        ...                 history=ds.isel(time=slice(0, 30)))
        >>> dash = ql.plots.deployment_dashboard(dep, live=True)
        >>> dep.listeners.append(dash.update)
        >>> dep = dep.replay(ds.isel(time=slice(30, 40)), echo=None)
        >>> len(dash.sources["equity"].data["time"])
        10
        """
        data = _deployment_data(self.dep, self.backtest)
        for k, v in data.items():
            self.sources[k].data = v
        f, src = self._figs, data
        f["rej"].x_range.factors = list(src["rejections"]["reason"])
        f["rej"].title.text = _rejections_title(src["rejections"])
        for span, loc in zip(self._spans, _latency_lines(src["latency"]["ms"])):
            span.location = loc
        times = [src[k]["time"] for k in ("equity", "buy", "sell", "latency")]
        prices = [src["buy"]["price"], src["sell"]["price"]]
        self._follow([(f["eq"].x_range, times, False),
                      (f["eq"].y_range, [src[k]["equity"] for k in ("equity", "backtest")
                                         if k in src], False),
                      (f["dd"].y_range, [src["equity"]["drawdown"]], True),
                      (f["or"].y_range, prices, False),
                      (f["rej"].y_range, [src["rejections"]["count"]], True),
                      (f["lat"].y_range, [src["latency"]["ms"]], False)])
        if publish:
            self._publish()

    def static_figure(self):
        return _deployment_layout({k: copy_source(v) for k, v in self.sources.items()})[0]
