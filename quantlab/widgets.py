"""ipywidgets explorers driving bokeh figures in place (no re-render, no bokeh server).

The figure is embedded with ``jupyter_bokeh.BokehModel``, so a control change only
sends the new column data to the browser. ipywidgets, bokeh and jupyter_bokeh are
imported when an explorer is built, never by ``import quantlab``.

Each explorer displays as one output holding the live widget and a static copy of its
current figures (controls drawn disabled, marked as needing a kernel): a kernel renders
the widget; a saved notebook opened without one, and an exported report, show the
static copy (``ql.plots.StaticView``).
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd

from quantlab import fmt, plots, rolling, strategies, tearsheet
from quantlab._validate import choice, coords, dataset, integer
from quantlab.backtesting import Slippage, backtest
from quantlab.data import validate
from quantlab.errors import DataError

# signals a StrategyExplorer keeps, least recently used dropped first: ~1.3 MB each on
# sp500_20, and every stop of a dragged slider is a parameter setting
CACHED_SIGNALS = 32

__all__ = ["RollingExplorer", "StrategyExplorer", "SweepExplorer"]


def _failed(err: Exception) -> str:
    """``err`` as the line an explorer shows in place of its figures.

    A control's callback that raised put a traceback in the log only (JupyterLab shows
    none) and left the previous selection's figures and numbers on screen as if current.
    """
    return (f"<b style='color:#d62728'>{html.escape(type(err).__name__)}: "
            f"{html.escape(str(err))}</b>")


def _bars(da, what: str):
    """``da`` (one asset on time) without its missing bars; a DataError when none is left.

    A holiday is NaN (no bar): left in, it broke the price line and every rolling window
    holding it (60 % of a cross_market asset's z-scores were NaN)."""
    bars = da.dropna("time")
    if bars.sizes["time"] == 0:
        raise DataError(f"{what}: no bars (every value is NaN)")
    return bars


def _slippage_models(ds) -> list:
    """The slippage models ``ds`` has the variables for (volume_based reads volume,
    adaptive high and low): one offered on a close-only set (sp500_20) raised when picked."""
    models = []
    for m in ("fixed", "volume_based", "adaptive"):
        try:
            Slippage(m).panels(ds.isel(time=slice(0, 2)))
        except DataError:
            continue
        models.append(m)
    return models


def _periods(time) -> tuple[str, str, list]:
    """The date slider's unit, its pandas frequency and its options: the coarsest of
    years, months, days and hours that gives the data at least two periods (a week of
    minute bars was one year, a slider that could not narrow)."""
    for unit, freq in (("years", "Y"), ("months", "M"), ("days", "D"), ("hours", "h")):
        periods = time.to_period(freq).unique()
        if len(periods) > 1:
            return unit, freq, [str(p) for p in periods]
    return "years", "Y", [str(p) for p in time.to_period("Y").unique()]   # one bar


class RollingExplorer(plots.StaticView):
    """Pick an asset and drag a window: the price and its rolling z-score update in place.

    Display it as the last expression of a cell. The statistic is ``ql.rolling.zscore``
    (Cython), so a drag answers in milliseconds on the bundled data.

    Parameters
    ----------
    ds : xarray.Dataset
        Bars on (time, asset).
    var : str, default 'close'
        The variable shown.
    window : int, default 20
        The first window of the slider.
    max_window : int, default 252
        The slider's largest window.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> e = ql.widgets.RollingExplorer(ds, window=10)
    >>> e.window.value = 30                     # what a drag does: the source updates
    >>> e.controls()
    [('asset', 'AAPL'), ('window', 30)]
    >>> [f.title.text for f in e.static_figure().children]
    ['price', 'rolling z-score']
    """

    def __init__(self, ds, var: str = "close", window: int = 20, max_window: int = 252):
        import ipywidgets as w
        from bokeh.models import ColumnDataSource
        from jupyter_bokeh import BokehModel

        self.ds = ds
        self.var = choice("var", var, list(ds.data_vars))
        coords(ds[self.var], what=f"ds[{self.var!r}]")   # ff3, macro: no asset dim
        # the slider clamped an out-of-range start silently (500 showed 252)
        max_window = integer("max_window", max_window, 2)
        window = integer("window", window, 2, max_window)
        assets = [str(a) for a in ds.asset.values]
        self.asset = w.Dropdown(options=assets, value=assets[0], description="asset")
        self.window = w.IntSlider(value=window, min=2, max=max_window, step=1,
                                  description="window", continuous_update=False)
        self.busy = w.HTML("")
        self.error = None   # the message shown in place of the figures, or None
        self.source = ColumnDataSource({"time": [], "price": [], "z": []})
        self._update()
        self.figure = self._layout(self.source)
        self.model = BokehModel(self.figure)
        self.asset.observe(self._update, names="value")
        self.window.observe(self._update, names="value")
        self.widget = w.VBox([w.HBox([self.asset, self.window, self.busy]), self.model])

    def _layout(self, source):
        from bokeh.layouts import column
        from bokeh.models import Span

        price = plots.figure(x_axis_type="datetime", title="price", height=220,
                             x_axis_label="date", y_axis_label=self.var)
        price.line("time", "price", source=source, color=plots.PALETTE[0])
        z = plots.figure(x_axis_type="datetime", title="rolling z-score", height=220,
                         x_range=price.x_range, x_axis_label="date",
                         y_axis_label="z-score")
        z.line("time", "z", source=source, color=plots.PALETTE[1])
        for level in (-2, 2):
            z.add_layout(Span(location=level, dimension="width", line_dash="dashed",
                              line_color="gray"))
        return column(price, z, sizing_mode="stretch_width")

    def _data(self) -> dict:
        # the asset's own bars: its window is its last `window` bars, across holidays
        s = _bars(self.ds[self.var].sel(asset=self.asset.value),
                  f"{self.asset.value} {self.var}")
        z = rolling.zscore(s, int(self.window.value))
        return {"time": s.time.values, "price": s.values.astype(float),
                "z": np.asarray(z.values, dtype=float)}

    def _update(self, _change=None) -> None:
        self.busy.value = "computing..."
        try:
            self.source.data = data = self._data()
        except Exception as err:   # shown, and no stale figure: see _failed
            self.source.data = {"time": [], "price": [], "z": []}
            self.error = self.busy.value = _failed(err)
            return
        self.error = None
        n = len(data["time"])   # a window beyond the asset's bars: a blank z-score
        self.busy.value = "" if np.isfinite(data["z"]).any() else (
            f"<i>window {self.window.value} needs more than the {n} bars of "
            f"{html.escape(self.asset.value)}: no z-score</i>")

    def controls(self) -> list:
        return [("asset", self.asset.value), ("window", self.window.value)]

    def static_figure(self):
        return self._layout(plots.copy_source(self.source))

    def static_extra(self) -> str:
        return self.error or ""


class StrategyExplorer(plots.StaticView):
    """A strategy's controls driving its backtest's figures and metrics, in place.

    Strategy dropdown, controls generated from its ``param_space``, asset, date range,
    fees and slippage model drive bokeh figures (price with entry/exit fills, the
    position, equity against buy-and-hold, drawdown) and a metrics table. Signals are
    computed on the whole universe (cross-sectional strategies need it) and cached per
    (strategy, parameters); a change of asset, dates or costs only re-runs the backtest,
    a few milliseconds on the bundled data.

    Parameters
    ----------
    ds : xarray.Dataset
        Bars on (time, asset); strategies needing variables it lacks are not offered.
    strategy : str, optional
        The first strategy shown (default the first offered).

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> e = ql.widgets.StrategyExplorer(ds, "volatility_regime")
    >>> e.asset.value = "IBM"                  # re-runs the backtest
    >>> e.controls()[:3], e.metrics["n_trades"] > 0
    ([('strategy', 'volatility_regime'), ('asset', 'IBM'), ('years', '2000-2001')], True)
    """

    METRICS = ("total_return", "annual_return", "sharpe_ratio", "sortino_ratio",
               "max_drawdown", "n_trades", "fees_paid", "exposure")

    def __init__(self, ds, strategy: str | None = None):
        import ipywidgets as w
        from bokeh.models import ColumnDataSource
        from jupyter_bokeh import BokehModel

        self.ds = ds = dataset("ds", ds)   # a DataFrame: "no attribute 'data_vars'"
        coords(ds["close"], what="ds['close']")   # ff3, macro: no asset dim
        # the time labels as ql.backtest checks them, before the date slider reads them: a
        # tz-aware index said "Cannot compare tz-naive and tz-aware" (the period bounds are
        # naive), an unsorted one a pandas KeyError on the slice
        validate(ds, "ds", values=False)
        self._cache: dict = {}
        n_assets = ds.sizes["asset"]
        # a ranking strategy on fewer assets than it ranks raised when chosen (vix, wti:
        # at once, complex_systems being the first offered)
        names = [n for n in strategies.names() if not strategies.get(n).lacks(ds)]
        if strategy is not None and strategy in strategies.names() and strategy not in names:
            raise ValueError(f"strategy {strategy!r} {strategies.get(strategy).lacks(ds)}")
        if not names:
            raise ValueError(f"no strategy runs on ds (variables {sorted(ds.data_vars)}, "
                             f"{n_assets} asset(s))")
        if strategy is not None:   # the Dropdown said only "Invalid selection: value not found"
            choice("strategy", strategy, names)
        self.strategy = w.Dropdown(options=names, value=strategy or names[0],
                                   description="strategy")
        assets = [str(a) for a in ds.asset.values]
        self.asset = w.Dropdown(options=assets, value=assets[0], description="asset")
        self._unit, self._freq, periods = _periods(ds.indexes["time"])
        self.dates = w.SelectionRangeSlider(options=periods, index=(0, len(periods) - 1),
                                            description=self._unit, continuous_update=False)
        self.fees = w.FloatSlider(value=0.001, min=0.0, max=0.01, step=0.0005, readout_format=".4f",
                                  description="fees", continuous_update=False)
        self.slip_model = w.Dropdown(options=_slippage_models(ds), value="fixed",
                                     description="slippage")
        self.slip_bps = w.FloatSlider(value=5.0, min=0.0, max=50.0, step=1.0,
                                      description="bps", continuous_update=False)
        self.params = w.VBox()
        self.table = w.HTML()
        self.busy = w.HTML()
        self.error = None   # the message shown in place of the figures, or None
        self.src = {k: ColumnDataSource({"time": [], "y": []})
                    for k in ("price", "buy", "sell", "position", "equity", "hold",
                              "drawdown")}
        self.strategy.observe(self._new_strategy, names="value")
        for c in (self.asset, self.dates, self.fees, self.slip_model, self.slip_bps):
            c.observe(self.update, names="value")
        # fill the figures before embedding them: the embedded state (what a saved
        # notebook shows) is the document at that moment
        self._new_strategy()
        self.model = BokehModel(self._layout(self.src))
        controls = w.HBox([w.VBox([self.strategy, self.asset, self.dates]),
                           w.VBox([self.fees, self.slip_model, self.slip_bps]), self.params])
        self.widget = w.VBox([controls, self.busy, self.model, self.table])

    @staticmethod
    def _layout(src):
        from bokeh.layouts import column

        fp = plots.figure(x_axis_type="datetime", height=220, title="price and fills",
                          x_axis_label="date", y_axis_label="price")
        fp.line("time", "y", source=src["price"], color=plots.PALETTE[0])
        fp.scatter("time", "y", source=src["buy"], marker="triangle", size=9,
                   color=plots.PALETTE[2], legend_label="buy (enter/exit/flip)")
        fp.scatter("time", "y", source=src["sell"], marker="inverted_triangle", size=9,
                   color=plots.PALETTE[3], legend_label="sell (enter/exit/flip)")
        fp.legend.location = "top_left"
        fq = plots.figure(x_axis_type="datetime", height=150, title="position",
                          x_range=fp.x_range, x_axis_label="date", y_axis_label="shares")
        plots.money_axis(fq.yaxis)   # compact: 60.0k shares
        fq.step("time", "y", source=src["position"], mode="after", color=plots.PALETTE[4])
        fe = plots.figure(x_axis_type="datetime", height=200, title="equity",
                          x_range=fp.x_range, x_axis_label="date", y_axis_label="equity")
        plots.money_axis(fe.yaxis)
        fe.line("time", "y", source=src["equity"], color=plots.PALETTE[1],
                legend_label="strategy")
        fe.line("time", "y", source=src["hold"], color="gray", legend_label="buy and hold")
        fe.legend.location = "top_left"
        fd = plots.figure(x_axis_type="datetime", height=150, title="drawdown",
                          x_range=fp.x_range, x_axis_label="date", y_axis_label="drawdown")
        plots.pct_axis(fd.yaxis)
        fd.line("time", "y", source=src["drawdown"], color=plots.PALETTE[3])
        return column(fp, fq, fe, fd, sizing_mode="stretch_width")

    def _controls_for(self, name):
        import ipywidgets as w

        s = strategies.get(name)
        out = []
        for p, space in s.param_space.items():
            default = s.defaults[p]
            if isinstance(space, list):
                c = w.Dropdown(options=space, value=default, description=p)
            elif isinstance(default, int):
                c = w.IntSlider(value=default, min=space[0], max=space[1], description=p,
                                continuous_update=False)
            else:
                c = w.FloatSlider(value=default, min=space[0], max=space[1],
                                  step=(space[1] - space[0]) / 100, description=p,
                                  continuous_update=False)
            c.observe(self.update, names="value")
            out.append(c)
        return out

    def _new_strategy(self, _change=None):
        self.params.children = self._controls_for(self.strategy.value)
        self.update()

    def current_params(self) -> dict:
        """The strategy parameters the controls show.

        Returns
        -------
        dict

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 300))
        >>> ql.widgets.StrategyExplorer(ds, "volatility_regime").current_params()
        {'window': 21, 'lookback': 252, 'threshold': 0.8, 'target_vol': 0.15}
        """
        return {c.description: c.value for c in self.params.children}

    def signal(self):
        """The cached universe-wide signal of the current strategy and parameters.

        Returns
        -------
        xarray.DataArray
            On (time, asset), in [-1, 1].

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 300))
        >>> e = ql.widgets.StrategyExplorer(ds, "volatility_regime")
        >>> e.signal().dims, e.signal() is e.signal()   # computed once per parameters
        (('time', 'asset'), True)
        """
        key = (self.strategy.value, tuple(sorted(self.current_params().items())))
        if key in self._cache:   # most recently used last
            self._cache[key] = self._cache.pop(key)
        else:
            if len(self._cache) >= CACHED_SIGNALS:   # a dragged slider's every stop was kept
                del self._cache[next(iter(self._cache))]
            s = strategies.get(self.strategy.value, **self.current_params())
            self._cache[key] = s.signal(self.ds, **s.default_inputs(self.ds))
        return self._cache[key]

    def update(self, _change=None) -> None:
        """Re-run the backtest of the current controls and refresh figures and table.

        Parameters
        ----------
        _change : dict, optional
            The ipywidgets change notice (unused: every control calls it).

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 300))
        >>> e = ql.widgets.StrategyExplorer(ds, "volatility_regime")
        >>> e.fees.value = 0.0                     # a control change calls update()
        >>> e.metrics["fees_paid"]
        0.0
        >>> e.update() is None                     # or call it directly
        True
        """
        self.busy.value = "<i>computing...</i>"
        try:
            note = self._run()
        except Exception as err:   # shown, and no stale figure or number: see _failed
            for src in self.src.values():
                src.data = {"time": [], "y": []}
            self.metrics, self.notes = dict.fromkeys(self.METRICS, np.nan), {}
            self.table.value = self._table_html()
            self.error = self.busy.value = _failed(err)
            return
        self.error = None
        self.busy.value = note

    def _run(self) -> str:
        """Backtest the controls' selection into the sources and the table; returns a
        note for the busy line ('' or why the figures are flat)."""
        first, last = sorted(self.dates.value)   # a reversed range: the same periods
        window = slice(pd.Period(first, self._freq).start_time,
                       pd.Period(last, self._freq).end_time)
        span, asset = self._span(), self.asset.value
        ds = self.ds.sel(asset=[asset], time=window)
        if not ds["close"].notnull().any():   # an asset not yet listed: a blank figure
            have = self.ds["close"].sel(asset=asset).dropna("time").time.values
            raise DataError(f"{asset} has no bars in {span}" + (
                f" (its bars: {str(have[0])[:10]} to {str(have[-1])[:10]})" if have.size
                else " (no bar at all)"))
        sig = self.signal().sel(asset=[asset], time=window)
        note = "" if sig.notnull().any() else (
            f"<i>{html.escape(self.strategy.value)} gives no signal for "
            f"{html.escape(asset)} in {span} (NaN throughout): no position "
            "taken</i>")
        slip = Slippage(self.slip_model.value, bps=self.slip_bps.value)
        res = backtest(ds, sig, fees=self.fees.value, slippage=slip)
        eq = res.equity.sel(asset=asset)
        price = ds["close"].sel(asset=asset)
        o = res.orders.sort_values("time", kind="stable")
        # markers only where the position enters, exits or flips; re-sizing fills are
        # the steps of the position panel (they buried the price before)
        key = plots.sign_changes(o["size"].to_numpy())
        buy, sell = key & (o["size"].to_numpy() > 0), key & (o["size"].to_numpy() < 0)
        bars = price.dropna("time")   # a holiday (NaN) broke the line
        first_px = float(bars[0])
        self.src["price"].data = {"time": bars.time.values, "y": bars.values}
        self.src["buy"].data = {"time": o["time"].to_numpy()[buy], "y": o["price"].to_numpy()[buy]}
        self.src["sell"].data = {"time": o["time"].to_numpy()[sell],
                                 "y": o["price"].to_numpy()[sell]}
        pos = res.positions.sel(asset=asset)
        self.src["position"].data = {"time": pos.time.values,
                                     "y": np.nan_to_num(np.asarray(pos.values, dtype=float))}
        self.src["equity"].data = {"time": eq.time.values, "y": eq.values}
        self.src["hold"].data = {"time": price.time.values,
                                 "y": res.init_cash * price.ffill("time").values / first_px}
        # the peak counts the initial cash, as the max_drawdown beside it does (IBM 2005,
        # volatility_regime, entered on the first bar: -24.78 % drawn for -24.89 %)
        self.src["drawdown"].data = {"time": eq.time.values,
                                     "y": tearsheet.underwater(eq.values, res.init_cash)}
        m = res.metrics().sel(asset=asset)
        self.metrics = {k: float(m[k]) for k in self.METRICS}
        # the tear sheet's notes: why a value reads n/a, or that it is annualised from
        # under a year (2013's 41 bars: -7.9 % total read as -39.8 % a year, unmarked)
        t = tearsheet.summary_table(res.returns.sel(asset=asset), periods=res.periods)
        self.notes = {k: v for k, v in zip(t["name"], t["note"]) if k in self.METRICS and v}
        self.table.value = self._table_html()
        return note

    def _table_html(self) -> str:
        cells = "".join(f"<tr><td>{fmt.label(k)}</td><td style='text-align:right'>"
                        f"{fmt.metric(k, v)}</td><td style='color:#777'>"
                        f"{html.escape(self.notes.get(k, ''))}</td></tr>"
                        for k, v in self.metrics.items())
        return f"<table>{cells}</table>"

    def _span(self) -> str:
        """The selected periods: '2000-2001' (years), '2024-01-02 to 2024-01-05'."""
        first, last = sorted(self.dates.value)
        return f"{first}{'-' if self._unit == 'years' else ' to '}{last}"

    def controls(self) -> list:
        return [("strategy", self.strategy.value), ("asset", self.asset.value),
                (self._unit, self._span()), ("fees", fmt.pct(self.fees.value, 2, sign=False)),
                ("slippage", f"{self.slip_model.value} {self.slip_bps.value:g} bps"),
                *self.current_params().items()]

    def static_figure(self):
        return self._layout({k: plots.copy_source(v) for k, v in self.src.items()})

    def static_extra(self) -> str:
        return (self.error or "") + self._table_html()


class SweepExplorer(plots.StaticView):
    """A metric of a ``ql.sweep`` result as a heatmap over two parameter dims.

    Clicking a cell re-runs that one backtest and shows its equity curve (at first: the
    best cell's). Other parameter dims (and ``asset``) get a dropdown each. The re-run
    uses the strategy, parameters and backtest keyword arguments recorded in
    ``result.attrs``. Colours diverge around 0 (the tear sheet's palette), labels are
    white on dark cells.

    Parameters
    ----------
    result : xarray.Dataset
        A ``ql.sweep`` result.
    data : xarray.Dataset
        The Dataset the sweep ran on.
    metric : str, optional
        The metric shown first (default the result's first variable).

    Raises
    ------
    ValueError
        If the result has no parameter dims.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> sw = ql.sweep("volatility_regime", ds, {"window": [10, 20], "lookback": [40, 60]},
    ...               metrics=("sharpe_ratio",), progress=False)
    >>> e = ql.widgets.SweepExplorer(sw, ds)
    >>> e.controls()
    [('metric', 'sharpe_ratio'), ('x', 'window'), ('y', 'lookback'), ('asset', 'AAPL')]
    >>> len(e.source.data["value"]), len(e.eq_source.data["equity"])   # 2 x 2 cells
    (4, 300)
    """

    def __init__(self, result, data, metric=None):
        import json

        import ipywidgets as w
        from bokeh.models import ColumnDataSource
        from jupyter_bokeh import BokehModel

        self.result, self.data = result, data
        self.params = [d for d in result.dims if d != "asset"]
        if not self.params:
            raise ValueError("the sweep result has no parameter dims")
        self.base = json.loads(result.attrs.get("params", "{}"))
        self.backtest_kw = json.loads(result.attrs.get("backtest_kw", "{}"))
        metrics = list(result.data_vars)
        if metric is not None:
            choice("metric", metric, metrics)
        self.metric = w.Dropdown(options=metrics, value=metric or metrics[0],
                                 description="metric")
        self.x = w.Dropdown(options=self.params, value=self.params[0], description="x")
        ys = [None] + self.params
        self.y = w.Dropdown(options=ys, value=self.params[1] if len(self.params) > 1 else None,
                            description="y")
        self.fixed = {d: w.Dropdown(options=list(result[d].values), description=d)
                      for d in [*self.params, *(["asset"] if "asset" in result.dims else [])]}
        self.busy = w.HTML("")
        self.error = None     # the message shown in place of the equity, or None
        self._shown = None    # (parameters, asset) of the equity shown
        self.source = ColumnDataSource({"x": [], "y": [], "value": [], "label": [],
                                        "fill": [], "ink": []})
        self.eq_source = ColumnDataSource({"time": [], "equity": []})
        self.heat, self.eq = self._layout(self.source, self.eq_source, live=True)
        self._draw()   # the equity panel starts with the best cell, not empty
        # built after drawing: the embedded (saved) state has the data
        from bokeh.layouts import column

        self.model = BokehModel(column(self.heat, self.eq, sizing_mode="stretch_width"))
        self.source.selected.on_change("indices", lambda attr, old, new: new and self._show(new[0]))
        for c in (self.metric, self.x, self.y, *self.fixed.values()):
            c.observe(self._draw, names="value")
        controls = w.HBox([self.metric, self.x, self.y])
        self.widget = w.VBox([controls, w.HBox(list(self.fixed.values())), self.busy,
                              self.model])

    @staticmethod
    def _layout(src, eq_src, live=False, heat=None, eq=None):
        """(heatmap, equity figure) on the given sources; ranges, axis titles and titles
        are copied from ``heat``/``eq`` (a static copy of the live figures)."""
        from bokeh.models import TapTool

        h = plots.figure(x_range=list(heat.x_range.factors) if heat else ["-"],
                         y_range=list(heat.y_range.factors) if heat else ["-"], height=320,
                         title="click a cell to re-run its backtest" if live else
                         "the sweep (click a cell in a running kernel to re-run it)",
                         tools="tap,hover,save" if live else "hover,save",
                         tooltips=[("value", "@label")])
        h.rect("x", "y", 1, 1, source=src, line_color="white", fill_color="fill")
        h.text("x", "y", text="label", source=src, text_align="center",
               text_baseline="middle", text_font_size="11px", text_color="ink")
        h.grid.visible = False
        if live:
            h.select_one(TapTool).mode = "replace"
        e = plots.figure(x_axis_type="datetime", height=240,
                         title=eq.title.text if eq else "equity", x_axis_label="date",
                         y_axis_label="equity")
        plots.money_axis(e.yaxis)
        e.line("time", "equity", source=eq_src, color=plots.PALETTE[1])
        if heat:
            h.xaxis.axis_label, h.yaxis.axis_label = heat.xaxis[0].axis_label, \
                heat.yaxis[0].axis_label
        return h, e

    def _cells(self):
        """(coords of each heatmap cell, in the source's order)."""
        x, y = self.x.value, self._y()
        free = {x} | ({y} if y else set())
        sel = {d: c.value for d, c in self.fixed.items() if d not in free}
        da = self.result[self.metric.value].sel(sel)
        ys = list(da[y].values) if y else [None]
        cells = [(xv, yv) for yv in ys for xv in da[x].values]
        return da, sel, cells

    def _y(self):
        return self.y.value if self.y.value != self.x.value else None

    def _draw(self, _change=None):
        da, sel, cells = self._cells()
        x, y = self.x.value, self._y()
        vals = np.array([float(da.sel({x: xv, **({y: yv} if y else {})})) for xv, yv in cells])
        fin = vals[np.isfinite(vals)]
        lim = float(np.abs(fin).max()) if fin.size else 1.0
        fill, ink = plots._diverging(vals, lim or 1.0)
        self.heat.x_range.factors = [str(v) for v in da[x].values]
        self.heat.y_range.factors = [str(v) for v in (da[y].values if y else [""])]
        self.heat.xaxis.axis_label = x
        self.heat.yaxis.axis_label = y or " "
        self.heat.title.text = f"{self.metric.value} (click a cell to re-run its backtest)"
        self.source.data = {"x": [str(c[0]) for c in cells],
                            "y": [str(c[1]) if y else "" for c in cells], "value": vals,
                            # in the metric's unit, as the tear sheet shows it (a
                            # drawdown read "-0.2", fees paid "3.79e+04")
                            "label": [fmt.metric(self.metric.value, v) if np.isfinite(v)
                                      else "" for v in vals],
                            "fill": fill, "ink": ink}
        self._sel = sel
        # the equity follows the cells: another asset's (or parameter's) curve stayed
        # below the new heatmap, its title not naming the asset
        if self._shown in [self._key(sel, c) for c in cells]:
            return
        if np.isfinite(vals).any():
            self._show(int(np.nanargmax(np.where(np.isfinite(vals), vals, -np.inf))))
        else:
            self._clear(DataError(f"no cell of {self.metric.value} is finite: no equity to "
                                  "show"))

    def _key(self, sel, cell):
        """(parameters, asset) that ``select`` runs for ``cell`` (an (x, y) of _cells)."""
        xv, yv = cell
        params = {**self.base, **{d: v for d, v in sel.items() if d != "asset"},
                  self.x.value: xv, **({self._y(): yv} if self._y() else {})}
        params = {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()}
        asset = sel.get("asset")   # the label itself: an int label as str was a KeyError
        return params, (asset.item() if hasattr(asset, "item") else asset)

    def _clear(self, err):
        self.eq_source.data = {"time": [], "equity": []}
        self.eq.title.text = "equity"
        self._shown = None
        self.error = self.busy.value = _failed(err)

    def _show(self, i: int) -> None:
        """``select(i)`` from a control or a click: a failure is shown, not logged."""
        try:
            self.select(i)
        except Exception as err:   # see _failed
            self._clear(err)

    def select(self, i: int):
        """Re-run the backtest of cell ``i`` (source order) and show its equity.

        Parameters
        ----------
        i : int
            The cell, in the order of ``self.source`` (x fastest).

        Returns
        -------
        BacktestResult

        Examples
        --------
        >>> import quantlab as ql
        >>> ds = ql.data.load().isel(time=slice(0, 300))
        >>> sw = ql.sweep("volatility_regime", ds, {"window": [10, 20], "lookback": [40, 60]},
        ...               metrics=("sharpe_ratio",), progress=False)
        >>> e = ql.widgets.SweepExplorer(sw, ds)
        >>> e.select(1).equity.dims, e.eq.title.text
        (('time', 'asset'), "equity of AAPL: {'window': 20, 'lookback': 40, 'threshold': 0.8, 'target_vol': 0.15}")
        """

        _, sel, cells = self._cells()
        params, asset = key = self._key(sel, cells[i])
        self.busy.value = f"running {html.escape(str(params))} ..."
        s = strategies.get(self.result.attrs["strategy"], **params)
        res = backtest(self.data, s.signal(self.data, **s.default_inputs(self.data)),
                       **self.backtest_kw)
        eq = res.equity
        if "asset" in eq.dims:
            eq = eq.sel(asset=asset) if asset is not None else eq.isel(asset=0)
            asset = eq.asset.item()
        self.eq_source.data = {"time": eq.time.values, "equity": eq.values}
        self.eq.title.text = (f"equity of {asset}: {params}" if asset is not None
                              else f"equity: {params}")
        self._shown, self.error = key, None
        self.busy.value = ""
        return res

    def controls(self) -> list:
        return [("metric", self.metric.value), ("x", self.x.value), ("y", self._y() or "-"),
                *((d, c.value.item() if isinstance(c.value, np.generic) else c.value)
                  for d, c in self.fixed.items() if d not in {self.x.value, self._y()})]

    def static_figure(self):
        from bokeh.layouts import column

        h, e = self._layout(plots.copy_source(self.source), plots.copy_source(self.eq_source),
                            heat=self.heat, eq=self.eq)
        h.title.text = self.heat.title.text.replace("click a cell", "in a running kernel, "
                                                    "click a cell")
        return column(h, e, sizing_mode="stretch_width")

    def static_extra(self) -> str:
        return self.error or ""
