"""Tear sheets: one bokeh layout summarising a return stream (face layer, bokeh lazily).

``tearsheet(returns, benchmark)`` shows a formatted summary table (strategy beside
benchmark, values of ``ql.metrics``), equity vs benchmark on a log axis, the underwater
curve with the top-5 drawdowns table, monthly-returns heatmap and yearly bars, rolling
Sharpe ratio and volatility, the return distribution with VaR/CVaR marked, and the trade
list. Returns with more dims than ``time`` (assets, parameter combinations) get one
column per combination and a Select that switches every section in the browser
(CustomJS: it works in static HTML, no kernel). ``from_result(res)`` builds it from a
BacktestResult; ``summary_text``/``summary_html`` are its short repr.

NaN returns are "no observation": skipped by the metrics, a flat step on the curves.
Equity = capital · Π(1 + r); drawdowns are measured from the running peak including the
starting capital (as ``ql.metrics.max_drawdown``).
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import xarray as xr

from quantlab import _validate, fmt, metrics
from quantlab.plots import PALETTE, figure
from quantlab.errors import DataError

__all__ = ["tearsheet", "from_result", "summary_text", "summary_html", "drawdown_table",
           "monthly_returns"]

MAX_COLUMNS = 64   # every column's data is embedded in the page: bound the HTML size
SUMMARY = ("total_return", "annual_return", "annual_volatility", "sharpe_ratio",
           "sortino_ratio", "calmar_ratio", "max_drawdown", "drawdown_duration",
           "recovery_time", "value_at_risk", "conditional_value_at_risk", "tail_ratio",
           "stability_of_timeseries", "win_rate", "profit_factor")
PAIRED = ("alpha", "beta", "information_ratio", "tracking_error", "up_capture",
          "down_capture")
HEADLINE = ("total_return", "annual_return", "sharpe_ratio", "max_drawdown", "n_trades",
            "fees_paid")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
           "Dec")
_BLUE, _GREY, _RED, _GREEN = "#1f77b4", "#7f7f7f", "#d62728", "#2ca02c"


# --------------------------------------------------------------------------- inputs

def _as_returns(name, x) -> xr.DataArray:
    """A DataArray with ``time`` first (pd.Series/DataFrame accepted), float64."""
    if isinstance(x, (pd.Series, pd.DataFrame)):
        idx = x.index
        if isinstance(idx, pd.DatetimeIndex) and idx.tz is not None:
            idx = idx.tz_convert(None)   # UTC wall time: xarray holds naive datetimes
        if isinstance(x, pd.Series):
            x = xr.DataArray(x.to_numpy(), dims=("time",), coords={"time": idx})
        else:
            x = xr.DataArray(x.to_numpy(), dims=("time", "column"),
                             coords={"time": idx, "column": [str(c) for c in x.columns]})
    if not isinstance(x, xr.DataArray):
        raise TypeError(f"{name} must be an xarray DataArray or a pandas Series/DataFrame "
                        f"with a time index, got {type(x).__name__}")
    _validate.coords(x, dims=("time",), what=name)
    _validate.real_array(name, x.dtype)
    t = x["time"].values
    if not np.issubdtype(t.dtype, np.datetime64):
        raise DataError(f"{name}'s time coordinate must hold datetimes, got dtype {t.dtype}")
    if t.size > 1 and not (t[1:] > t[:-1]).all():
        raise DataError(f"{name}'s time coordinate must be strictly increasing (sorted, no "
                        "duplicate timestamps): compounding needs the order of the periods")
    x = x.astype(np.float64).transpose("time", ...)
    if np.isinf(x.values).any():
        raise DataError(f"{name} holds ±inf; a return must be finite (NaN = no observation)")
    return x


def _columns(r: xr.DataArray) -> list[tuple[str, dict]]:
    """(label, selection) per combination of the non-time dims, bounded before building."""
    others = [d for d in r.dims if d != "time"]
    n = int(np.prod([r.sizes[d] for d in others])) if others else 1
    if n > MAX_COLUMNS:
        shape = ", ".join(f"{d}: {r.sizes[d]}" for d in others)
        raise ValueError(f"returns has {n} columns ({shape}); a tear sheet embeds every "
                         f"column, at most {MAX_COLUMNS}: select some with .sel()/.isel() "
                         "first")
    if n == 0:
        raise ValueError("returns has no columns (a non-time dim of size 0)")
    if not others:
        return [("strategy", {})]
    idx = pd.MultiIndex.from_product([r[d].values for d in others], names=others)
    plain = ("asset", "column")   # named by their value; parameters as name=value
    labels = [" · ".join(str(v) if d in plain else f"{d}={v}" for d, v in zip(others, key))
              for key in idx]
    if len(set(labels)) < len(labels):   # the Select finds a column by its label
        dup = sorted({s for s in labels if labels.count(s) > 1})
        raise DataError(f"returns has repeated column labels {dup}; make them unique")
    return [(s, dict(zip(others, key))) for s, key in zip(labels, idx)]


def _pick(da, sel):
    """da at the column's coordinates it has (a benchmark or positions may have fewer)."""
    if da is None:
        return None
    return da.sel({d: v for d, v in sel.items() if d in da.dims})


# --------------------------------------------------------------------------- computations

def _equity(r: np.ndarray, capital: float) -> np.ndarray:
    return capital * np.cumprod(1.0 + np.nan_to_num(r, nan=0.0))


def _underwater(eq: np.ndarray, capital: float) -> np.ndarray:
    peak = np.fmax.accumulate(np.r_[capital, eq])[1:]   # the start counts as a peak
    return eq / peak - 1.0


def drawdown_table(returns, capital: float = 1.0, top: int = 5) -> pd.DataFrame:
    """The ``top`` deepest drawdowns of a 1-D return series.

    Start (the peak's bar), trough, recovery (first bar back at the peak; NaT if not yet),
    depth (<= 0) and length (bars from the peak to the recovery, or to the last bar).

    Parameters
    ----------
    returns : array-like, pandas.Series or xarray.DataArray
        1-D simple returns (on ``time`` for dates).
    capital : float, default 1.0
        Starting value of the equity.
    top : int, default 5
        Rows to keep.

    Returns
    -------
    pandas.DataFrame
        Columns start, trough, recovery, depth, length; deepest first.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> r = ql.data.returns(ds["close"].sel(asset="IBM"))
    >>> ql.tearsheet.drawdown_table(r, top=2).round({"depth": 4})
           start     trough   recovery   depth  length
    0 2000-09-01 2000-12-21        NaT -0.3889     170
    1 2000-03-27 2000-07-06 2000-08-25 -0.2010     106
    """
    r = returns if isinstance(returns, xr.DataArray) else _as_returns("returns", returns)
    t = pd.DatetimeIndex(r["time"].values)
    dd = _underwater(_equity(r.values, capital), capital)
    under = dd < 0
    edges = np.diff(np.r_[0, under.astype(np.int8), 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # [s, e)
    rows = []
    for s, e in zip(starts, ends):
        trough = s + int(np.argmin(dd[s:e]))
        peak = max(s - 1, 0)
        rec = e if e < len(dd) else None
        rows.append({"start": t[peak], "trough": t[trough],
                     "recovery": t[rec] if rec is not None else pd.NaT,
                     "depth": float(dd[trough]),
                     "length": (rec if rec is not None else len(dd) - 1) - peak})
    out = pd.DataFrame(rows, columns=["start", "trough", "recovery", "depth", "length"])
    return out.sort_values("depth", kind="stable").head(top).reset_index(drop=True)


def monthly_returns(returns) -> pd.Series:
    """Compounded calendar-month returns of a 1-D series (NaN: a month without data).

    Parameters
    ----------
    returns : pandas.Series or xarray.DataArray
        1-D simple returns on ``time``.

    Returns
    -------
    pandas.Series
        Indexed by month end.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> r = ql.data.returns(ds["close"].sel(asset="IBM"))
    >>> ql.tearsheet.monthly_returns(r).head(3).round(4)
    2000-03-31    0.1807
    2000-04-30   -0.0580
    2000-05-31   -0.0364
    Freq: ME, dtype: float64
    """
    r = returns if isinstance(returns, pd.Series) else \
        pd.Series(np.asarray(returns.values), index=pd.DatetimeIndex(returns["time"].values))
    return (1.0 + r).resample("ME").prod(min_count=1) - 1.0


def _yearly(r: pd.Series) -> pd.Series:
    return (1.0 + r).resample("YE").prod(min_count=1) - 1.0


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


def _column(r: xr.DataArray, b: xr.DataArray | None, trades, pos, *, window, periods,
            capital, rf, extra, lim) -> dict:
    """Every section's data for one column: {section: ColumnDataSource data dict}."""
    t = pd.DatetimeIndex(r["time"].values)
    rs = pd.Series(r.values, index=t)
    bs = None if b is None else pd.Series(b.values, index=t)
    m = metrics.summary(r, benchmark=b, risk_free_rate=rf, annualization=periods)
    mb = None if b is None else metrics.summary(b, risk_free_rate=rf, annualization=periods)
    data = {"eq": {"time": t}, "dd": {"time": t}}
    for key, s in (("strategy", rs), ("benchmark", bs)):
        if s is not None:
            eq = _equity(s.to_numpy(), capital)
            data["eq"][key], data["dd"][key] = eq, _underwater(eq, capital)
    data["summary"] = _summary_rows(rs, bs, m, mb, extra)
    data.update(_drawdown_rows(r, capital))
    data.update(_calendar(rs, bs, lim))
    data["roll"] = _rolling(rs, bs, window, periods, rf)
    data.update(_distribution(rs, m))
    data["trades"] = _trade_rows(trades)
    if pos is not None:
        others = [d for d in pos.dims if d != "time"]
        lines = [(str(a), pos.sel({others[0]: a}).values) for a in pos[others[0]].values] \
            if others else [("exposure", pos.values)]
        data["pos"] = {"xs": [t] * len(lines), "ys": [y for _, y in lines],
                       "name": [n for n, _ in lines],
                       "color": [_palette(i) for i in range(len(lines))]}
    return data


def _summary_rows(rs, bs, m, mb, extra) -> dict:
    """Formatted rows (strategy beside benchmark) and the raw values (``value``)."""
    def head(s):
        return [fmt.date(s.index[0]), fmt.date(s.index[-1]), fmt.count(int(s.notna().sum()))]

    rows = {"metric": ["Start", "End", "Periods"], "strategy": head(rs),
            "benchmark": ["", "", ""] if bs is None else head(bs),
            "name": ["start", "end", "periods"], "value": [np.nan] * 3}
    names = list(SUMMARY) + (list(PAIRED) if bs is not None else [])
    values = [(k, _shown(k, m), _shown(k, mb) if mb is not None and k in mb else "",
               float(m[k])) for k in names]
    values += [(k, fmt.metric(k, float(v)), "", float(v)) for k, v in (extra or {}).items()]
    for k, shown, shown_b, v in values:
        rows["metric"].append(fmt.label(k))
        rows["strategy"].append(shown)
        rows["benchmark"].append(shown_b)
        rows["name"].append(k)
        rows["value"].append(v)
    return rows


def _drawdown_rows(r, capital) -> dict:
    top = drawdown_table(r, capital)
    last = pd.Timestamp(r["time"].values[-1])
    return {"ddtab": {"rank": list(range(1, len(top) + 1)),
                      "start": [fmt.date(x) for x in top["start"]],
                      "trough": [fmt.date(x) for x in top["trough"]],
                      "recovery": [fmt.date(x) if pd.notna(x) else "not yet"
                                   for x in top["recovery"]],
                      "depth": top["depth"].to_numpy(), "length": top["length"].to_numpy(),
                      "depth_s": [fmt.metric("depth", x) for x in top["depth"]],
                      "length_s": [fmt.metric("length", x) for x in top["length"]]},
            "ddspan": {"left": top["start"].to_numpy(),
                       "right": top["recovery"].fillna(last).to_numpy(),
                       "bottom": top["depth"].to_numpy(), "top": np.zeros(len(top))}}


def _calendar(rs, bs, lim) -> dict:
    """Monthly heatmap cells (value, % label, fill and ink colours) and yearly bars."""
    mo = monthly_returns(rs)
    val = mo.to_numpy()
    fill, ink = _diverging(val, lim)
    heat = {"year": [str(d.year) for d in mo.index],
            "month": [_MONTHS[d.month - 1] for d in mo.index], "value": val,
            "label": ["" if not np.isfinite(x) else
                      fmt.pct(x, sign=False).removesuffix(" %") for x in val],
            "fill": fill, "ink": ink}
    yr = _yearly(rs)
    year = {"year": [str(d.year) for d in yr.index], "strategy": yr.to_numpy(),
            "s_label": [fmt.pct(x) for x in yr],
            "color": [_GREEN if x >= 0 else _RED for x in yr.fillna(0)]}
    if bs is not None:
        by = _yearly(bs)
        year.update(benchmark=by.to_numpy(), b_label=[fmt.pct(x) for x in by])
    return {"heat": heat, "year": year}


def _rolling(rs, bs, window, periods, rf) -> dict:
    """Rolling annualised Sharpe ratio (excess over the per-period rate, as
    ``metrics.summary``) and volatility over ``window`` bars (ddof=1)."""
    rf_p = (1.0 + rf) ** (1.0 / periods) - 1.0
    roll = {"time": rs.index, "zero": np.zeros(len(rs))}   # a reference line, and a range
    for key, s in (("strategy", rs), ("benchmark", bs)):
        if s is None:
            continue
        w = s.rolling(window, min_periods=window)
        sd = w.std(ddof=1).to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            sharpe = np.where(sd > 0, (w.mean().to_numpy() - rf_p) / sd, np.nan)
        roll[f"sharpe_{key}"] = sharpe * np.sqrt(periods)
        roll[f"vol_{key}"] = sd * np.sqrt(periods)
    return roll


def _distribution(rs, m) -> dict:
    """Histogram of the observed returns; VaR and CVaR (5 %) from ``ql.metrics``."""
    v = rs.dropna().to_numpy()
    counts, edges = np.histogram(v, bins=60, density=True) if v.size else \
        (np.zeros(1), np.array([0.0, 1.0]))
    hi = float(counts.max()) if counts.max() > 0 else 1.0
    var, cvar = float(m["value_at_risk"]), float(m["conditional_value_at_risk"])
    return {"hist": {"left": edges[:-1], "right": edges[1:], "top": counts},
            "risk": {"x": [var, cvar], "y0": [0.0, 0.0], "y1": [hi, hi],
                     "name": [f"VaR 95 % {fmt.pct(var, 2)}", f"CVaR 95 % {fmt.pct(cvar, 2)}"],
                     "color": ["#ff7f0e", _RED]}}


def _shown(name, m) -> str:
    v = float(m[name])
    if name == "recovery_time" and np.isnan(v) and float(m["max_drawdown"]) < 0:
        return "not yet"   # metrics: NaN = the max-drawdown peak was never regained
    return fmt.metric(name, v)


def _palette(i):
    return PALETTE[i % len(PALETTE)]


TRADE_COLUMNS = ("entry_time", "exit_time", "pnl", "exit_reason")


def _trade_rows(trades) -> dict:
    """The trade list: entry, exit, return (P&L / entry value of the opening order), P&L,
    exit reason (+ asset when the frame has one)."""
    cols = {"asset": [], "entry": [], "exit": [], "ret": [], "ret_s": [], "pnl": [],
            "pnl_s": [], "reason": []}
    if trades is None or len(trades) == 0:
        return cols
    tr = trades.sort_values("entry_time", kind="stable")   # a portfolio: all assets in order
    with np.errstate(invalid="ignore", divide="ignore"):
        if "size" in tr and "entry_price" in tr:
            ret = tr["pnl"].to_numpy(float) / (tr["size"].abs() * tr["entry_price"]).to_numpy(float)
        else:
            ret = np.full(len(tr), np.nan)
    cols["asset"] = [html.escape(str(a)) for a in tr["asset"]] if "asset" in tr else [""] * len(tr)
    cols["entry"] = [fmt.date(x) for x in tr["entry_time"]]
    cols["exit"] = [fmt.date(x) if pd.notna(x) else "open" for x in tr["exit_time"]]
    cols["ret"], cols["ret_s"] = ret, [fmt.metric("trade_return", x) for x in ret]
    cols["pnl"] = tr["pnl"].to_numpy(float)
    cols["pnl_s"] = [fmt.money(x) for x in cols["pnl"]]
    cols["reason"] = [html.escape(str(x)) for x in tr["exit_reason"]]
    return cols


def _trades_of(trades, sel):
    if trades is None:
        return None
    missing = [c for c in TRADE_COLUMNS if c not in trades]
    if missing:
        raise ValueError(f"trades lacks column(s) {missing}; it needs {list(TRADE_COLUMNS)} "
                         "(the layout of res.trades)")
    keep = np.ones(len(trades), bool)
    for d, v in sel.items():
        if d in trades:
            keep &= (trades[d] == v).to_numpy()
    return trades[keep]


# --------------------------------------------------------------------------- layout

def tearsheet(returns, benchmark=None, *, trades=None, positions=None, window: int = 126,
              periods: int = 252, title: str | None = None, capital: float = 1.0,
              risk_free_rate: float = 0.0, extra=None):
    """A bokeh layout summarising ``returns``.

    Summary table, equity, drawdowns, monthly returns, rolling Sharpe/volatility,
    distribution and, when given, trades and exposure.

    Parameters
    ----------
    returns : xarray.DataArray
        Simple returns on ``time``; more dims = one column per combination, switched by a
        Select.
    benchmark : xarray.DataArray, optional
        Returns on ``time`` (or on a subset of the returns' dims), aligned on the returns'
        times.
    trades : pandas.DataFrame, optional
        A frame like ``res.trades``.
    positions : xarray.DataArray, optional
        Exposure (position value / equity) on ``time`` [``asset``, ...].
    window : int, default 126
        Bars of the rolling Sharpe/volatility.
    periods : int, default 252
        Bars per year.
    title : str, optional
        The heading.
    capital : float, default 1.0
        Starting value of the equity curves.
    risk_free_rate : float, default 0.0
        Annual.
    extra : xarray.Dataset, optional
        More per-column values for the summary table (``from_result`` passes the backtest
        metrics).

    Returns
    -------
    bokeh.models.Column
        The layout (``bokeh.io.show`` it, or save it as static HTML).

    Raises
    ------
    ValueError, TypeError
        If an argument is out of range or of the wrong type.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300))
    >>> r = ql.data.returns(ds["close"].sel(asset="IBM"))
    >>> type(ql.tearsheet.tearsheet(r)).__name__
    'Column'
    """
    from bokeh.layouts import column as bcol
    from bokeh.layouts import row as brow
    from bokeh.models import ColumnDataSource, CustomJS, Div, Select

    r = _as_returns("returns", returns)
    n = r.sizes["time"]
    if n < 2:
        raise ValueError(f"returns needs at least 2 periods, got {n}")
    periods = _validate.integer("periods", periods, 1)
    window = _validate.integer("window", window, 2, n)
    capital = _validate.number("capital", capital, 0, None, lo_open=True)
    rf = _validate.number("risk_free_rate (annual)", risk_free_rate, -1, None, lo_open=True)
    b = None
    if benchmark is not None:
        b = _as_returns("benchmark", benchmark)
        if not set(b.dims) <= set(r.dims):
            raise ValueError(f"benchmark dims {b.dims} must be a subset of the returns' dims "
                             f"{r.dims}")
        if not np.isin(b["time"].values, r["time"].values).any():
            raise DataError("benchmark shares no timestamp with returns")
        b = b.reindex(time=r["time"])
    if positions is not None:
        positions = _as_returns("positions", positions).reindex(time=r["time"])
        own = [d for d in positions.dims if d not in r.dims]
        if len(own) > 1:   # one line per entry of at most one dim the returns lack
            raise ValueError(f"positions may have at most one dim the returns lack (one "
                             f"line per asset), got {own}")
    cols = _columns(r)
    if trades is not None and not isinstance(trades, pd.DataFrame):
        raise TypeError(f"trades must be a pandas DataFrame like res.trades, got "
                        f"{type(trades).__name__}")
    if extra is not None and not isinstance(extra, xr.Dataset):
        raise TypeError(f"extra must be an xarray Dataset, got {type(extra).__name__}")
    # one colour scale for every column's heatmap (the colour bar stays true when switching)
    mo = (1.0 + r).resample(time="ME").prod(min_count=1) - 1.0
    finite = np.abs(mo.values[np.isfinite(mo.values)])
    lim = float(finite.max()) if finite.size and finite.max() > 0 else 0.1
    per_col = []
    for name, sel in cols:
        if not np.isfinite(r.sel(sel).values).any():   # nothing to draw: every figure empty
            raise DataError(f"returns column {name!r} has no observation (all NaN); drop it")
        ex = None if extra is None else {k: _pick(extra[k], sel) for k in extra.data_vars}
        if ex and any(v.ndim for v in ex.values()):
            raise ValueError(f"extra must hold one value per returns column; its dims "
                             f"{dict(extra.sizes)} go beyond the returns' {dict(r.sizes)}")
        per_col.append(_column(r.sel(sel), _pick(b, sel), _trades_of(trades, sel),
                               _pick(positions, sel), window=window, periods=periods,
                               capital=capital, rf=rf, extra=ex, lim=lim))
    first = per_col[0]
    log = all(np.nanmin(d["eq"][k]) > 0 for d in per_col for k in d["eq"] if k != "time")
    src = {k: ColumnDataSource(v, name=k) for k, v in first.items()}   # named: tests
    parts = _sections(src, first, b is not None, log, window, lim, capital)
    head = [Div(text=f"<h2>{html.escape(str(title or 'Tear sheet'))}</h2>")]
    if len(cols) > 1:
        labels = [c[0] for c in cols]
        sel = Select(title="column (switches every section)", value=labels[0], options=labels)
        keys = list(src)
        alts = [[ColumnDataSource(d[k]) for d in per_col] for k in keys]
        sel.js_on_change("value", CustomJS(
            args={"srcs": [src[k] for k in keys], "alts": alts, "labels": labels},
            code="const i = labels.indexOf(cb_obj.value);\n"
                 "for (let j = 0; j < srcs.length; j++) srcs[j].data = alts[j][i].data;"))
        head.append(sel)
    tail = [Div(text="<b>trades</b> (click a header to sort)"), parts["trades"]] \
        if trades is not None else []
    layout = bcol(*head, brow(parts["summary"], parts["ddtab"], sizing_mode="stretch_width"),
                  *parts["figures"], *tail, sizing_mode="stretch_width")
    layout.tags = [{"columns": [c[0] for c in cols]}]
    return layout


def _sections(src, first, has_b, log, window, lim, capital) -> dict:
    """The figures and tables drawn from the display sources (one per section).

    Long but flat: one block per section, each only styling one figure or table;
    splitting it would only pass the same sources and flags around."""
    from bokeh.models import (ColorBar, DataTable, HTMLTemplateFormatter, LinearColorMapper,
                              TableColumn)
    from bokeh.palettes import RdYlGn11

    def num_col(field, title, width=90):   # numeric (sorts by value), shown via fmt
        return TableColumn(field=field, title=title, width=width,
                           formatter=HTMLTemplateFormatter(template=f"<%= {field}_s %>"))

    summary = DataTable(source=src["summary"], sortable=False, reorderable=False,
                        index_position=None,
                        height=30 + 25 * len(first["summary"]["metric"]), width=520,
                        columns=[TableColumn(field="metric", title="metric", width=220),
                                 TableColumn(field="strategy", title="strategy"),
                                 *([TableColumn(field="benchmark", title="benchmark")]
                                   if has_b else [])])
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
    figs = []
    money = capital != 1.0
    eq = figure(x_axis_type="datetime", y_axis_type="log" if log else "linear",
                title="equity" + ("" if log else " (linear axis: equity reached 0)")
                + (" vs benchmark" if has_b else ""), x_axis_label="time",
                y_axis_label="equity" if money else "growth of 1")
    eq.line("time", "strategy", source=src["eq"], color=_BLUE, line_width=1.5,
            legend_label="strategy")
    if has_b:
        eq.line("time", "benchmark", source=src["eq"], color=_GREY, legend_label="benchmark")
    eq.yaxis.formatter = fmt.money_tick_formatter()
    eq.legend.location = "top_left"
    figs.append(eq)
    dd = figure(x_axis_type="datetime", height=220, x_range=eq.x_range,
                title="underwater (top-5 drawdowns shaded)", x_axis_label="time",
                y_axis_label="drawdown")
    dd.quad(left="left", right="right", bottom="bottom", top="top", source=src["ddspan"],
            color=_RED, alpha=0.12)
    dd.varea(x="time", y1="strategy", y2=0, source=src["dd"], color=_RED, alpha=0.5,
             legend_label="strategy")
    if has_b:
        dd.line("time", "benchmark", source=src["dd"], color=_GREY, legend_label="benchmark")
    dd.yaxis.formatter = fmt.pct_tick_formatter()
    dd.legend.location = "bottom_left"
    figs.append(dd)
    years = sorted(set(first["heat"]["year"]))
    heat = figure(x_range=list(_MONTHS), y_range=list(reversed(years)), height=60 + 22 * len(years),
                  title="monthly returns (%)", x_axis_label="month", y_axis_label="year",
                  tools="save,hover", tooltips=[("", "@month @year"), ("return", "@label %")])
    heat.rect("month", "year", 1, 1, source=src["heat"], fill_color="fill", line_color="white")
    heat.text("month", "year", text="label", source=src["heat"], text_color="ink",
              text_align="center", text_baseline="middle", text_font_size="10px")
    heat.add_layout(ColorBar(color_mapper=LinearColorMapper(
        palette=list(reversed(RdYlGn11)), low=-lim, high=lim),
        formatter=fmt.pct_tick_formatter(), title="return"), "right")
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
    yearly.yaxis.formatter = fmt.pct_tick_formatter()
    yearly.xaxis.major_label_orientation = 0.8
    figs += [heat, yearly]
    for key, name, ylab in (("sharpe", "rolling Sharpe ratio", "Sharpe ratio (annualised)"),
                            ("vol", "rolling volatility", "volatility (annualised)")):
        name = f"{name} ({window} bars)"
        f = figure(x_axis_type="datetime", height=220, x_range=eq.x_range, title=name,
                   x_axis_label="time", y_axis_label=ylab)
        f.line("time", f"{key}_strategy", source=src["roll"], color=_BLUE, legend_label="strategy")
        if has_b:
            f.line("time", f"{key}_benchmark", source=src["roll"], color=_GREY,
                   legend_label="benchmark")
        if key == "vol":
            f.yaxis.formatter = fmt.pct_tick_formatter()
        else:   # Sharpe is NaN on flat windows: the 0 line keeps the axis when all are
            f.line("time", "zero", source=src["roll"], color="black", line_dash="dotted",
                   line_width=1)
        f.legend.location = "top_left"
        figs.append(f)
    hist = figure(height=260, title="distribution of period returns (VaR/CVaR: ql.metrics, 5 %)",
                  x_axis_label="return per period", y_axis_label="density",
                  tools="pan,wheel_zoom,box_zoom,reset,save")
    hist.quad(left="left", right="right", top="top", bottom=0, source=src["hist"],
              color=_BLUE, alpha=0.6, line_color="white")
    hist.segment(x0="x", x1="x", y0="y0", y1="y1", source=src["risk"], color="color",
                 line_width=2, line_dash="dashed", legend_field="name")
    hist.xaxis.formatter = fmt.pct_tick_formatter()
    hist.legend.location = "top_left"
    figs.append(hist)
    if "pos" in src:
        pos = figure(x_axis_type="datetime", height=200, x_range=eq.x_range,
                     title="exposure (position value / equity)", x_axis_label="time",
                     y_axis_label="exposure")
        pos.multi_line(xs="xs", ys="ys", source=src["pos"], color="color", legend_field="name")
        pos.yaxis.formatter = fmt.pct_tick_formatter()
        pos.legend.location = "top_left"
        figs.append(pos)
    from bokeh.layouts import row

    figs = figs[:2] + [row(heat, yearly, sizing_mode="stretch_width")] + figs[4:]
    return {"summary": summary, "ddtab": ddtab, "trades": trades, "figures": figs}


# --------------------------------------------------------------------------- results

def _exposure(res) -> xr.DataArray:
    value = (res.positions * res.prices.ffill("time")).fillna(0.0)
    return value / res.equity


def from_result(res, benchmark=None, **kw):
    """The tear sheet of a BacktestResult.

    Its returns, trades (``trades=False``: no trade list), exposure and backtest metrics,
    equity in money from ``res.init_cash``. ``benchmark="buy_and_hold"`` uses the close
    prices (per asset; the equal-weight mean of the assets' returns for ``group=True``), or
    pass returns.

    Parameters
    ----------
    res : BacktestResult
        A backtest.
    benchmark : {'buy_and_hold'} or xarray.DataArray, optional
        The benchmark.
    **kw
        Options of :func:`tearsheet` (``trades=False`` drops the trade list).

    Returns
    -------
    bokeh.models.Column

    Raises
    ------
    ValueError
        If ``benchmark`` is an unknown string.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300)).sel(asset=["IBM"])
    >>> res = ql.backtest(ds, ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds))
    >>> type(ql.tearsheet.from_result(res, "buy_and_hold")).__name__
    'Column'
    """
    if isinstance(benchmark, str):
        _validate.choice("benchmark", benchmark, ("buy_and_hold",))
        ret = res.prices.ffill("time") / res.prices.ffill("time").shift(time=1) - 1.0
        benchmark = ret.mean("asset", skipna=True) if res.group else ret
        benchmark = benchmark.rename("buy_and_hold")
    trades = kw.pop("trades", True)
    if trades is True:
        kw["trades"] = res.trades
    elif trades is not False and trades is not None:
        kw["trades"] = trades
    m = res.metrics()
    extra = m[[k for k in ("n_trades", "fees_paid", "turnover", "exposure",
                           "trade_win_rate", "trade_profit_factor") if k in m]]
    kw.setdefault("positions", _exposure(res))
    kw.setdefault("periods", res.periods)
    kw.setdefault("capital", res.init_cash)
    kw.setdefault("risk_free_rate", getattr(res, "risk_free_rate", 0.0))
    kw.setdefault("extra", extra)
    return tearsheet(res.returns, benchmark, **kw)


def _summary_parts(res, max_rows: int = 8):
    keys = [d for d in res.equity.dims if d != "time"]
    n_acc = int(np.prod([res.equity.sizes[d] for d in keys])) if keys else 1
    t = res.equity["time"].values
    acc = f"{n_acc} account{'s' if n_acc != 1 else ''}" + (
        f" ({', '.join(f'{d}: {res.equity.sizes[d]}' for d in keys)})" if keys else "") + (
        f", {'each ' if n_acc > 1 else ''}a portfolio of {res.positions.sizes['asset']} assets"
        if res.group else "")
    span = f"{fmt.date(t[0])} – {fmt.date(t[-1])}, {fmt.count(len(t))} bars, " \
           f"{res.periods} per year, initial cash {fmt.money(res.init_cash)}"
    m = res.metrics()[[k for k in HEADLINE]]
    flat = m.to_dataframe()[list(HEADLINE)] if keys else \
        pd.DataFrame([{k: float(m[k]) for k in HEADLINE}])
    shown = flat.head(max_rows)
    table = pd.DataFrame({fmt.label(k): [fmt.metric(k, v) for v in shown[k]] for k in HEADLINE},
                         index=shown.index if keys else ["portfolio" if res.group else "account"])
    more = len(flat) - len(shown)
    how = ["arrays: res.equity, res.cash, res.positions, res.returns (DataArrays)",
           f"tables: res.orders ({fmt.count(len(res.orders))} orders), res.trades "
           f"({fmt.count(len(res.trades))} trades); res.metrics() (every metric), "
           "res.tearsheet() (the full report)"]
    return acc, span, table, more, how


def summary_text(res) -> str:
    """A few lines describing a BacktestResult (its ``__repr__``).

    Parameters
    ----------
    res : BacktestResult

    Returns
    -------
    str

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300)).sel(asset=["IBM"])
    >>> res = ql.backtest(ds, ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds))
    >>> print(ql.tearsheet.summary_text(res))  # doctest: +ELLIPSIS
    BacktestResult: 1 account (asset: 1)
      2000-03-01 – 2001-05-08, 300 bars, 252 per year, initial cash 100,000
            Total return Annual return Sharpe ratio Max drawdown Trades Fees paid
      asset
      IBM         +6.6 %        +5.5 %         0.43      -13.1 %     10         0
    ...
    """
    acc, span, table, more, how = _summary_parts(res)
    lines = [f"BacktestResult: {acc}", f"  {span}", *("  " + ln for ln in
             table.to_string().splitlines())]
    if more:
        lines.append(f"  … {more} more accounts")
    lines += [f"  {h}" for h in how]
    return "\n".join(lines)


def summary_html(res) -> str:
    """The same summary as HTML (its ``_repr_html_``).

    Parameters
    ----------
    res : BacktestResult

    Returns
    -------
    str

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load().isel(time=slice(0, 300)).sel(asset=["IBM"])
    >>> res = ql.backtest(ds, ql.strategies.get("volatility_regime", window=10, lookback=60).signal(ds))
    >>> ql.tearsheet.summary_html(res)[:39]
    '<div><b>BacktestResult</b>: 1 account ('
    """
    acc, span, table, more, how = _summary_parts(res)
    e = html.escape
    return (f"<div><b>BacktestResult</b>: {e(acc)}<br>{e(span)}"
            f"{table.to_html(escape=True, border=0)}"
            + (f"<i>… {more} more accounts</i><br>" if more else "")
            + f"<small>{'<br>'.join(map(e, how))}</small></div>")
