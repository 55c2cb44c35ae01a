"""ipywidgets explorers driving bokeh figures in place (no re-render, no bokeh server).

The figure is embedded with ``jupyter_bokeh.BokehModel``, so a control change only
sends the new column data to the browser. ipywidgets, bokeh and jupyter_bokeh are
imported when an explorer is built, never by ``import quantlab``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["RollingExplorer"]


class RollingExplorer:
    """Pick an asset and drag a window: the price and its rolling z-score update in place.

    ``RollingExplorer(ds, var="close", window=20)``; display it as the last expression of a
    cell. The statistic is ``ql.rolling.zscore`` (Cython), so a drag answers in
    milliseconds on the bundled data.
    """

    def __init__(self, ds, var: str = "close", window: int = 20, max_window: int = 252):
        import ipywidgets as w
        from bokeh.layouts import column
        from bokeh.models import ColumnDataSource, Span
        from jupyter_bokeh import BokehModel

        from quantlab import plots

        self.ds = ds
        self.var = var
        assets = [str(a) for a in ds.asset.values]
        self.asset = w.Dropdown(options=assets, value=assets[0], description="asset")
        self.window = w.IntSlider(value=window, min=2, max=max_window, step=1,
                                  description="window", continuous_update=False)
        self.busy = w.HTML("")
        self.source = ColumnDataSource(self._data())
        price = plots._figure(x_axis_type="datetime", title="price", height=220)
        price.line("time", "price", source=self.source, color=plots.PALETTE[0])
        z = plots._figure(x_axis_type="datetime", title="rolling z-score", height=220,
                          x_range=price.x_range)
        z.line("time", "z", source=self.source, color=plots.PALETTE[1])
        for level in (-2, 2):
            z.add_layout(Span(location=level, dimension="width", line_dash="dashed",
                              line_color="gray"))
        self.figure = column(price, z, sizing_mode="stretch_width")
        self.model = BokehModel(self.figure)
        self.asset.observe(self._update, names="value")
        self.window.observe(self._update, names="value")
        self.widget = w.VBox([w.HBox([self.asset, self.window, self.busy]), self.model])

    def _data(self) -> dict:
        from quantlab import rolling

        s = self.ds[self.var].sel(asset=self.asset.value)
        z = rolling.zscore(s, int(self.window.value))
        return {"time": s.time.values, "price": s.values.astype(float),
                "z": np.asarray(z.values, dtype=float)}

    def _update(self, _change=None) -> None:
        self.busy.value = "computing..."
        self.source.data = self._data()
        self.busy.value = ""

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
