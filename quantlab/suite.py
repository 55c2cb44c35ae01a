"""The notebook suite: batch runs with papermill, HTML reports and their index, ``record()``.

The command line (``quantlab run-suite``, ``quantlab report``) is :mod:`quantlab.cli`.

A suite config (YAML) lists runs; each names a notebook and its parameters::

    runs:
      - notebook: 00_quickstart.ipynb
      - notebook: 00_quickstart.ipynb
        name: 00_quickstart-MSFT
        parameters: {symbol: MSFT}

Without a config every ``notebooks/*.ipynb`` runs once with its default parameters.
A failing notebook is marked failed, the others still run, and the exit code is 1.

Batch rules (hostile names, faults):

- a run's name becomes ``--out/NAME.ipynb`` (``.html``): a name with ``/``, ``\\`` or a
  control character, ``.``/``..``, or a path that resolves outside ``--out`` is refused
  before anything runs;
- an output folder that cannot be written is refused before anything runs;
- output names are unique per batch (a repeat gets ``-2``, ``-3``; case-insensitive);
  a rerun into the same ``--out`` keeps earlier runs in the index: the same notebook
  with the same parameters replaces its earlier entry, other parameters get a new name;
  ``--clean`` forgets (and deletes) what the index lists first;
- a parameter the notebook's ``parameters`` cell does not set (or any parameter, when it
  has no such cell) fails that run, named in the index: papermill would only warn and
  run the defaults under the given name; ``-p`` goes to the runs whose notebook sets it
  (``give_parameters``), and a name no run's notebook sets is refused before anything
  runs;
- a failed run's report starts with what failed (papermill's banner for a failing cell,
  quantlab's for a timeout or stale stored outputs); a run that produced no notebook
  leaves no earlier ``NAME.ipynb``/``NAME.html`` behind;
- each notebook has a time limit (``--timeout``, else the config's ``timeout:``, else
  ``DEFAULT_TIMEOUT``): past it the run is failed and the batch moves on;
- one batch at a time writes a folder (:func:`batch_lock`): a second one is refused;
- a finished run is never recomputed (its dask future is released as soon as it is
  collected, so a worker dying later cannot resubmit it);
- ``--in-place`` writes a notebook back only when it ran cleanly (temp file + atomic
  replace), and refuses ``-p``, ``--params-file``, ``--out`` and ``--clean``.

Reports (``quantlab report``): light pages that link the folder's ``_static/`` (BokehJS,
the ipywidgets renderer, require.js, jupyter_bokeh; copied once per batch) by relative
path, so the folder opens offline from disk or any static server; ``--self-contained``
inlines them into each page instead. The executed notebooks are deleted once rendered
unless ``--keep-notebooks``. ``--from-stored`` renders the committed notebooks' STORED
outputs (``notebooks/``, kept current by ``make notebooks``) without executing them; a
run with parameters has no stored outputs and is executed. ``index.html`` lists every
run with a description line, formatted recorded values (:mod:`quantlab.fmt`), sorting,
a filter and a comparison.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import difflib
import html
import itertools
import json
import keyword
import os
import re
import stat
import subprocess
import sys
import unicodedata
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from quantlab import __version__, _plugins, _progress, _validate, _yaml, fmt
from quantlab._validate import integer, number
from quantlab._yaml import plain_loader, plain_scalar  # noqa: F401 -- cli.py's suite.plain_*
from quantlab.data import available, checksum, existing_path, io_error, user_path

__all__ = ["Run", "check_name", "check_parameters", "check_timeout", "clean_index",
           "config_timeout", "describe", "expand_grid", "folder_size", "give_parameters",
           "load_config", "parameter_names", "plan_outputs", "provenance", "read_index", "record", "render_html", "run_suite",
           "batch_lock", "stored_result", "write_index", "write_static",
           # checks of notebook parameters (one line each, after the data is loaded)
           "backtest_option", "has_variables", "integer_in", "number_in", "one_of", "period",
           "reweight", "subset_of"]

RECORD_MIME = "application/vnd.quantlab.record+json"
STRIP_TAG = "strip-output"  # outputs too big to commit (inline BokehJS)
REPO = Path(__file__).resolve().parent.parent
DEFAULT_TIMEOUT = 600.0  # s a notebook, when neither --timeout nor the config sets one
MAX_TIMEOUT = 7 * 86400.0  # beyond this a "limit" is a typo (and overflows poll timers)
NAME_MAX = 200  # bytes of a run name: room for "-NN" and ".ipynb" under NAME_MAX 255
RESERVED = ("index",)  # index.html / index.json belong to the batch
_UMASK = os.umask(0o022)
os.umask(_UMASK)


# ±inf stored as text: JSON has no infinity (the kernel's message failed to pack, its
# warning printed into the report, and the value came back as a string, not a number)
_INF = {"inf": float("inf"), "-inf": float("-inf")}


def _jsonable(v):
    """numpy/pandas scalars -> plain JSON values (NaN -> None, ±inf -> "inf"/"-inf")."""
    if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, float) and v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (_dt.date, _dt.datetime)) or type(v).__name__ in ("Timestamp", "datetime64"):
        return str(v)
    raise TypeError(f"record: {type(v).__name__} is not a scalar (str, number, bool, date)")


def record(**values) -> None:
    """Record headline values of a notebook run; the report index shows them.

    Displayed as a small table in the notebook and stored as a ``RECORD_MIME``
    output, which the suite runner reads back (no scraping of printed text).

    Parameters
    ----------
    **values : str, number, bool, date or None
        Scalars (numpy/pandas scalars are converted; NaN is stored as None).

    Examples
    --------
    >>> from quantlab.suite import record
    >>> record(sharpe_ratio=1.234, symbol="AAPL")  # outside a notebook: the table as text
    sharpe_ratio: 1.23
    symbol: AAPL
    """
    from IPython import get_ipython
    from IPython.display import display

    clean = {k: _jsonable(v) for k, v in values.items()}
    text = "\n".join(f"{k}: {_fmt(v, k)}" for k, v in clean.items())
    if get_ipython() is None:   # plain Python: no display system to carry the bundle
        print(text)
        return
    display({RECORD_MIME: clean, "text/plain": text}, raw=True)


# record names that carry a metric with a suffix (sharpe_AAPL): the metric they format as
# (var_95, cvar_99: RiskManager's losses, fmt.KINDS' var and cvar, not value_at_risk)
_METRIC_ALIASES = {"sharpe": "sharpe_ratio", "sortino": "sortino_ratio",
                   "calmar": "calmar_ratio", "trades": "n_trades", "orders": "n_orders",
                   "return": "total_return", "drawdown": "max_drawdown"}


def _metric_name(key: str) -> str:
    """The :data:`quantlab.fmt.KINDS` name a record key formats as: itself, else its
    longest known ``_``-prefix (``total_return_MSFT`` -> ``total_return``, ``sharpe_AAPL``
    -> ``sharpe_ratio``), else its longest known suffix (``worst_return`` ->
    ``total_return``); unknown names, and names with a unit word (``drawdown_days``,
    ``trades_per_year``), stay (fmt.general)."""
    parts = key.split("_")
    n = len(parts)
    if key not in fmt.KINDS and _UNIT_WORDS & {p.lower() for p in parts}:
        return key   # drawdown_days is not a drawdown
    for part in ["_".join(parts[:i]) for i in range(n, 0, -1)] + \
            ["_".join(parts[i:]) for i in range(1, n)]:
        part = _METRIC_ALIASES.get(part.lower(), part)
        if part in fmt.KINDS:
            return part
    return key


# words that make a record another quantity than the metric its name starts or ends with:
# drawdown_days=45 showed "+4,500.0 %", trades_per_year=12.5 showed "12"
_UNIT_WORDS = frozenset({"days", "bars", "weeks", "months", "years", "hours", "minutes",
                         "seconds", "per", "count", "number"})


def _fmt(v, key: str = "") -> str:
    """A recorded value for a person: numbers through :func:`quantlab.fmt.metric` by the
    record's name (percentages as %, counts as integers, ratios to 2 decimals); text,
    dates and booleans as they are; None (NaN) as n/a."""
    if v is None:
        return fmt.NA
    v = _number(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    name = _metric_name(str(key))
    if fmt.kind(name) == "count" and v == v and abs(v) != float("inf") and v != int(v):
        return fmt.general(v)   # a count rounded 12.5 trades to "12"
    return fmt.metric(name, v)


def _number(v):
    """A recorded value with a stored infinity ("inf", "-inf") read back as the float."""
    return _INF.get(v, v) if isinstance(v, str) else v


# --------------------------------------------------------------------------- notebook
# parameters: one line per parameter right after a notebook loads its data, so a bad
# value given with `-p`, papermill or a suite config fails there, naming the parameter,
# the value and what is allowed (instead of a bare KeyError or IndexError cells later).

_LISTED = 30   # names an error lists at most (a data set may have thousands of assets)


def _listing(options) -> str:
    names = [str(o) for o in options]
    more = f", ... ({len(names)} in all)" if len(names) > _LISTED else ""
    return ", ".join(names[:_LISTED]) + more


def _data_name(data) -> str:
    name = getattr(data, "attrs", {}).get("name")
    return f"data set {name!r}" if isinstance(name, str) and name else "the data"


def _options(options):
    """The allowed values and how an error words them: the assets of a Dataset or
    DataArray, the keys of a mapping (a strategy's ``param_space``), else the items."""
    if hasattr(options, "dims") and hasattr(options, "coords"):
        if "asset" not in options.coords:
            raise ValueError(f"{_data_name(options)} has no 'asset' coordinate to choose from "
                             f"(dims {tuple(options.dims)})")
        return ([str(a) for a in options["asset"].values], f"in {_data_name(options)}",
                "its assets")
    return list(options), None, "allowed"


def _one(name: str, value, allowed: list, what: str | None, label: str):
    if isinstance(value, (list, tuple, set, dict, np.ndarray, pd.Index)):
        raise TypeError(f"{name} must be one name, got {type(value).__name__} "
                        f"{_validate._show(value)}; {label}: {_listing(allowed)}")
    if value in allowed:
        return value
    near = difflib.get_close_matches(str(value).lower(), [str(a).lower() for a in allowed], 1)
    hint = ""
    if near:
        hint = f" (did you mean {next(a for a in allowed if str(a).lower() == near[0])!r}?)"
    raise ValueError(f"{name} {_validate._show(value)} is not {what or 'allowed'}{hint}; "
                     f"{label}: {_listing(allowed)}")


def one_of(name: str, value, options, what: str | None = None):
    """Check a notebook parameter that names one of ``options``.

    Parameters
    ----------
    name : str
        The parameter's name, for the message.
    value : object
        Its value.
    options : xarray.Dataset, xarray.DataArray, mapping or iterable
        The allowed values: a Dataset's (DataArray's) assets, a mapping's keys, or the
        items of a list.
    what : str, optional
        What the options are, for the message ("a parameter of strategy 'spc'"); for
        data it is "in data set NAME".

    Returns
    -------
    object
        ``value``.

    Raises
    ------
    TypeError
        If ``value`` is a list or another collection (one name is expected).
    ValueError
        If ``value`` is not one of ``options``, naming them.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load()
    >>> ql.suite.one_of("symbol", "MSFT", ds)
    'MSFT'
    >>> ql.suite.one_of("symbol", "AAPLX", ds)
    Traceback (most recent call last):
    ...
    ValueError: symbol 'AAPLX' is not in data set 'equities' (did you mean 'AAPL'?); its assets: AAPL, GOOG, IBM, MSFT
    """
    allowed, where, label = _options(options)
    return _one(name, value, allowed, what or where, label)


def subset_of(name: str, values, options, what: str | None = None) -> list:
    """Check a notebook parameter that lists some of ``options``.

    One name alone is a list of that name (``-p symbols AAPL`` is ``["AAPL"]``, not the
    letters A, A, P, L); the list must be non-empty and name each option at most once.

    Parameters
    ----------
    name : str
        The parameter's name, for the message.
    values : str or list of str
        Its value.
    options : xarray.Dataset, xarray.DataArray, mapping or iterable
        The allowed values, as for :func:`one_of`.
    what : str, optional
        What the options are, for the message.

    Returns
    -------
    list
        The names, in the given order.

    Raises
    ------
    TypeError
        If ``values`` is neither a name nor a list (tuple) of names.
    ValueError
        If it is empty, repeats a name or names something not in ``options``.

    Examples
    --------
    >>> import quantlab as ql
    >>> ql.suite.subset_of("symbols", "AAPL", ql.data.load())
    ['AAPL']
    >>> ql.suite.subset_of("params", ["window", "span"], ql.strategies.get("spc").param_space,
    ...                    what="a parameter of strategy 'spc'")
    Traceback (most recent call last):
    ...
    ValueError: params 'window' is not a parameter of strategy 'spc'; allowed: span, k, h
    """
    allowed, where, label = _options(options)
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{name} must be a list of names, got {type(values).__name__} "
                        f"{_validate._show(values)}; {label}: {_listing(allowed)}")
    if not values:
        raise ValueError(f"{name} is empty: give at least one; {label}: {_listing(allowed)}")
    seen = set()
    for v in values:
        _one(name, v, allowed, what or where, label)
        if v in seen:
            raise ValueError(f"{name} names {v!r} twice: {_validate._show(list(values))}")
        seen.add(v)
    return list(values)


def _bounded(check, name, value, lo, hi, why):
    try:
        return check(name, value, lo, hi)
    except ValueError as e:   # a value out of bounds: say where the bounds come from
        raise ValueError(f"{e} ({why})" if why else str(e)) from None


def integer_in(name: str, value, lo: int | None = None, hi: int | None = None,
               why: str = "") -> int:
    """Check a notebook parameter that is a whole number in [lo, hi].

    Parameters
    ----------
    name : str
        The parameter's name, for the message.
    value : int
        Its value; bools, text ("20") and non-integral floats are refused.
    lo, hi : int, optional
        Bounds (inclusive).
    why : str, optional
        Where the bounds come from, appended to the message ("more than fast = 20").

    Returns
    -------
    int

    Raises
    ------
    TypeError
        If ``value`` is not a number.
    ValueError
        If it is not whole or out of bounds.

    Examples
    --------
    >>> import quantlab as ql
    >>> ql.suite.integer_in("slow", 100, 21, 3270)
    100
    >>> ql.suite.integer_in("slow", 10, 21, 3270, why="more than fast = 20")
    Traceback (most recent call last):
    ...
    ValueError: slow must be an integer in [21, 3270], got 10 (more than fast = 20)
    """
    return _bounded(_validate.integer, name, value, lo, hi, why)


def number_in(name: str, value, lo: float | None = None, hi: float | None = None,
              why: str = "") -> float:
    """Check a notebook parameter that is a finite number in [lo, hi].

    Parameters
    ----------
    name : str
        The parameter's name, for the message.
    value : float
        Its value; bools and text ("5") are refused.
    lo, hi : float, optional
        Bounds (inclusive).
    why : str, optional
        Where the bounds come from, appended to the message.

    Returns
    -------
    float

    Raises
    ------
    TypeError
        If ``value`` is not a number.
    ValueError
        If it is NaN, infinite or out of bounds.

    Examples
    --------
    >>> import quantlab as ql
    >>> ql.suite.number_in("slippage_bps", 5, 0, 10_000)
    5.0
    >>> ql.suite.number_in("slippage_bps", "5", 0, 10_000)
    Traceback (most recent call last):
    ...
    TypeError: slippage_bps must be a real number, got '5'
    """
    return _bounded(_validate.number, name, value, lo, hi, why)


def backtest_option(name: str, value, option: str | None = None, scale: float = 1):
    """Check a notebook parameter that becomes a :func:`quantlab.backtest` option, with
    the backtest's own check (one source of truth: the bounds are the library's).

    Parameters
    ----------
    name : str
        The parameter's name, for the message.
    value : float
        Its value; bools and text ("5") are refused.
    option : str, optional
        The backtest option it becomes (default ``name``).
    scale : float, default 1
        The option is ``value / scale`` (``slippage = slippage_bps / 1e4``).

    Returns
    -------
    float
        ``value``, as a float.

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If the backtest refuses the option it becomes, with the backtest's words.

    Examples
    --------
    >>> import quantlab as ql
    >>> ql.suite.backtest_option("fees", 0.001)
    0.001
    >>> ql.suite.backtest_option("slippage_bps", 10_000, "slippage", scale=1e4)
    Traceback (most recent call last):
    ...
    ValueError: slippage_bps 10000 is slippage 1.0 (slippage_bps / 10000), which ql.backtest refuses: slippage must be in [0, 1), got 1.0
    """
    from quantlab.backtesting.options import BacktestOptions  # lazy: loads the kernels

    option = option or name
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be a real number, got {_validate._show(value)}")
    try:
        given = value / scale if scale != 1 else value
    except OverflowError:   # an int beyond the largest double
        given = float("inf") if value > 0 else float("-inf")
    try:
        BacktestOptions(**{option: given})
    except (TypeError, ValueError) as e:
        if option == name and scale == 1:
            raise   # the backtest's message names it already
        raise type(e)(f"{name} {_validate._show(value)} is {option} {given!r} ({name} / "
                      f"{scale:g}), which ql.backtest refuses: {e}") from None
    return float(value)


def reweight(name: str, value):
    """Check a notebook parameter that is an ensemble's ``reweight``, with the ensemble's
    own rule (which it applies only once the strategies' streams are computed).

    Parameters
    ----------
    name : str
        The parameter's name, for the message.
    value : str or int
        Its value: a number of calendar periods ('1D', '1W', '2W', '1M', '3M', '1Q',
        '1Y') or of bars (an int >= 1).

    Returns
    -------
    str or int
        ``value``.

    Raises
    ------
    ValueError
        If the ensemble would refuse it.

    Examples
    --------
    >>> import quantlab as ql
    >>> ql.suite.reweight("reweight", "2W")
    '2W'
    >>> ql.suite.reweight("reweight", "1h")
    Traceback (most recent call last):
    ...
    ValueError: reweight must be a number of calendar periods ('1D', '1W', '2W', '1M', '3M', '1Q', '1Y') or of bars (an int >= 1), got '1h'
    """
    from quantlab.ensemble import check_reweight  # lazy: the research stack

    return check_reweight(value, name)


def _date(label: str, value):
    """A period end as a Timestamp (None stays None); text such as '2005-01-01', a date."""
    if value is None:
        return None
    if not isinstance(value, (str, _dt.date)) and type(value).__name__ != "datetime64":
        raise TypeError(f"{label} must be a date as text such as '2005-01-01' (or None), "
                        f"got {type(value).__name__} {_validate._show(value)}")
    try:
        t = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        t = pd.NaT
    if t is pd.NaT:
        raise ValueError(f"{label} {_validate._show(value)} is not a date (text such as "
                         "'2005-01-01')")
    if t.tzinfo is not None:
        raise ValueError(f"{label} {_validate._show(value)} has a time zone; the data's "
                         "times have none")
    return t


def period(name, value, data, *, asset=None, after=None, min_bars: int = 1,
           inside: bool = False) -> tuple:
    """Check a notebook parameter that is a (start, end) period of ``data``.

    Each end is a date (text such as ``'2005-01-01'``, or a date) or None (the data's
    first/last bar). The period must run forward and hold at least ``min_bars`` bars
    of ``data`` (with ``asset``: bars where that asset, or each of those, has data); with
    ``after``, start after that other period ends.

    Parameters
    ----------
    name : str or (str, str)
        The parameter's name (``"in_sample"``), or the names of two parameters that
        give the start and the end (``("start", "end")``).
    value : (start, end)
        The period (a list or tuple of two).
    data : xarray.Dataset or xarray.DataArray
        The data with a ``time`` dimension the period selects from.
    asset : str or list of str, optional
        Count only the bars of this asset (of each of these assets): GOOG has none
        before its 2004 listing.
    after : (str, (start, end)), optional
        The name and value of a period this one must start after (an out-of-sample
        period after the in-sample one).
    min_bars : int, default 1
        Bars the period must hold.
    inside : bool, default False
        Each given end must lie within the data's first and last bar (as
        :func:`quantlab.optimize.optimize_strategy_parameters` requires of its dates).

    Returns
    -------
    tuple
        ``(start, end)`` as given.

    Raises
    ------
    TypeError
        If ``value`` is not a pair or an end is not a date.
    ValueError
        If an end is not a date, the period runs backwards, holds fewer than
        ``min_bars`` bars of ``data``, starts before ``after`` ends, or (``inside``)
        reaches past the data.

    Examples
    --------
    >>> import quantlab as ql
    >>> ds = ql.data.load()
    >>> ql.suite.period("in_sample", ["2001-01-01", "2009-12-31"], ds)
    ('2001-01-01', '2009-12-31')
    >>> ql.suite.period(("start", "end"), ("2010-01-01", "2005-01-01"), ds)
    Traceback (most recent call last):
    ...
    ValueError: start '2010-01-01' is after end '2005-01-01'
    >>> ql.suite.period("out_of_sample", ("2030-01-01", None), ds)
    Traceback (most recent call last):
    ...
    ValueError: out_of_sample ('2030-01-01', None): no bars of data set 'equities' (it runs 2000-03-01 .. 2013-03-01)
    >>> ql.suite.period("out_of_sample", ("2010-01-01", "2014-12-31"), ds, inside=True)
    Traceback (most recent call last):
    ...
    ValueError: out_of_sample end '2014-12-31' is outside data set 'equities' (it runs 2000-03-01 .. 2013-03-01)
    >>> ql.suite.period(("start", "end"), ("2001", "2002"), ds, asset="GOOG")
    Traceback (most recent call last):
    ...
    ValueError: start '2001', end '2002': no bars of 'GOOG' in data set 'equities' (it runs 2004-08-19 .. 2013-03-01)
    """
    pair = isinstance(name, (tuple, list))
    labels = tuple(name) if pair else (f"{name} start", f"{name} end")
    shown = " .. ".join(labels) if pair else name
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or len(value) != 2:
        raise TypeError(f"{shown} must be a (start, end) pair of dates such as "
                        f"('2005-01-01', '2009-12-31'), got {_validate._show(value)}")
    start, end = value
    t0, t1 = _date(labels[0], start), _date(labels[1], end)
    # text as given: pandas reads an end of '2009' as all of 2009, a Timestamp as its 1 Jan
    def select(times):
        return times.sel(time=slice(*(v if isinstance(v, str) else t for v, t in
                                      ((start, t0), (end, t1))))).to_index()

    chosen = select(data["time"])
    if len(chosen) == 0 and t0 is not None and t1 is not None and t0 > t1:
        raise ValueError(f"{labels[0]} {start!r} is after {labels[1]} {end!r}")
    if inside and len(data["time"]):
        first, last = (pd.Timestamp(data["time"].values[i]) for i in (0, -1))
        for label, v, t in ((labels[0], start, t0), (labels[1], end, t1)):
            if t is not None and not first <= t <= last:
                raise ValueError(f"{label} {_validate._show(v)} is outside {_data_name(data)} "
                                 f"(it runs {first.date()} .. {last.date()})")
    spans = [(data["time"], _data_name(data))]
    if asset is not None:   # the bars where each asset has a value
        spans = []
        for a in [asset] if isinstance(asset, str) else asset:
            one = data.sel(asset=one_of("asset", a, data))
            has = one.notnull() if not hasattr(one, "data_vars") else \
                one.to_array().notnull().any("variable")
            spans.append((data["time"][has.values], f"{a!r} in {_data_name(data)}"))
    for times, of in spans:
        n = len(select(times))
        if n >= max(min_bars, 1):
            continue
        span = (f"it runs {str(times.values[0])[:10]} .. {str(times.values[-1])[:10]}"
                if len(times) else "it has no bars")
        holds = f"{n} bar{'s' if n != 1 else ''}" if n else "no bars"
        need = f"; at least {min_bars} needed" if n else ""
        what = (f"{labels[0]} {_validate._show(start)}, {labels[1]} {_validate._show(end)}"
                if pair else f"{name} {_validate._show(tuple(value))}")
        raise ValueError(f"{what}: {holds} of {of} ({span}){need}")
    if after is not None:
        other, (o_start, o_end) = after
        last = data["time"].sel(time=slice(o_start, o_end)).to_index()
        if len(last) and chosen[0] <= last[-1]:
            raise ValueError(f"{shown} starts {str(chosen[0])[:10]}, before {other} ends "
                             f"{str(last[-1])[:10]}: it must start after it")
    return tuple(value)


def has_variables(name: str, data, variables):
    """Check that the data set a notebook parameter names has ``variables``.

    Parameters
    ----------
    name : str
        The parameter that named the data set (``"data_set"``), for the message.
    data : xarray.Dataset
        The data loaded from it.
    variables : str or list of str
        The variables the notebook uses.

    Returns
    -------
    xarray.Dataset
        ``data``.

    Raises
    ------
    ValueError
        If a variable is missing, naming the data sets that have them all.

    Examples
    --------
    >>> import quantlab as ql
    >>> ql.suite.has_variables("data_set", ql.data.load("ff3"), "close")
    Traceback (most recent call last):
    ...
    ValueError: data_set 'ff3' has no 'close' (its variables: mkt_rf, smb, hml, rf); the data sets with it: equities, indices, sp500_20, vix, wti, cross_market, fx_1980s
    """
    need = [variables] if isinstance(variables, str) else list(variables)
    missing = [v for v in need if v not in data.data_vars]
    if not missing:
        return data
    sets = available()["variables"].str.split()
    fit = [n for n, vs in sets.items() if set(need) <= set(vs)]
    label = data.attrs.get("name", "the data")
    raise ValueError(f"{name} {label!r} has no {', '.join(map(repr, missing))} (its variables: "
                     f"{', '.join(map(str, data.data_vars))}); the data sets with "
                     f"{'it' if len(need) == 1 else 'them'}: {', '.join(fit) or 'none'}")


# --------------------------------------------------------------------------- runs

@dataclass
class Run:
    """One notebook run of a batch: what to run, and what came of it.

    Parameters
    ----------
    notebook : str
        Path of the source notebook.
    name : str, optional
        Output name in ``--out`` (``NAME.ipynb``, ``NAME.html``); default the notebook's
        stem. An explicit ``""`` is refused by :func:`check_name`.
    parameters : dict
        Values papermill injects after the ``parameters`` cell.
    status, duration, started, ended, error, records, output, html, description
        Filled in by :func:`run_suite`.
    source : str
        ``"executed"``, or ``"stored outputs"`` (``--from-stored``: not run, no duration).
    commit : str
        The git commit of quantlab the run was made with (set by :func:`write_index`;
        ``""`` in an index written before it was recorded).
    timeout : float, optional
        Seconds for the whole notebook; None: the batch's default.

    Examples
    --------
    >>> from quantlab.suite import Run
    >>> r = Run("notebooks/00_quickstart.ipynb", parameters={"symbol": "MSFT"})
    >>> r.name, r.status
    ('00_quickstart', 'pending')
    """
    notebook: str
    name: str | None = None   # None: the notebook's stem (: * ? " < > | -> _); "" is refused
    parameters: dict = field(default_factory=dict)
    status: str = "pending"
    duration: float = 0.0
    started: str = ""
    ended: str = ""
    error: str = ""
    records: dict = field(default_factory=dict)
    output: str = ""
    html: str = ""
    timeout: float | None = None  # s for the whole notebook; None: run_suite's default
    description: str = ""  # the notebook's first markdown cell, first sentence
    source: str = "executed"   # or "stored outputs" (--from-stored)
    commit: str = ""   # quantlab's git commit of the run (an earlier batch's may differ)

    def __post_init__(self):
        if self.name is None:   # a default name: characters Windows forbids become '_'
            self.name = "".join("_" if c in _WINDOWS_FORBIDDEN else c
                                for c in Path(self.notebook).stem)


# Windows device names, reserved whatever the extension (superscript digits included)
_WINDOWS_FORBIDDEN = ':*?"<>|'
_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
                      | {f"{p}{d}" for p in ("COM", "LPT") for d in "0123456789\u00b9\u00b2\u00b3"})
# bidi embeddings/overrides/isolates: they make a listed name read as another (U+202E)
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_name(name) -> str:
    """Refuse a run name that is not one plain, portable file name in ``--out``.

    Refused: a separator, a control or bidi-override character, a character Windows
    forbids in file names (``: * ? " < > |``; ``a:b`` on NTFS names a hidden stream of
    ``a``), ``.``/``..``, a leading
    '.' (a hidden file), a Windows device name such as CON, NUL or COM1 with or without
    an extension (``NUL.ipynb`` cannot be created there), over ``NAME_MAX`` bytes.

    Parameters
    ----------
    name : str
        The run name.

    Returns
    -------
    str
        ``name``, unchanged.

    Raises
    ------
    ValueError
        Naming the name and the rule it breaks.

    Examples
    --------
    >>> from quantlab.suite import check_name
    >>> check_name("00_quickstart-MSFT")
    '00_quickstart-MSFT'
    >>> check_name("etc/x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: run name 'etc/x': a name becomes a file in --out, so it may not contain ...
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"run name {name!r}: must be a non-empty string (leave the name "
                         "out to use the notebook's)")
    if name.startswith(".") and name not in (".", ".."):
        raise ValueError(f"run name {name!r}: may not start with '.' (its outputs would be "
                         "hidden files)")
    if name.split(".")[0].rstrip(" ").upper() in _RESERVED:
        raise ValueError(f"run name {name!r}: {name.split('.')[0].rstrip(' ')!r} is a "
                         "reserved device name on Windows (CON, PRN, AUX, NUL, COM0-9, "
                         "LPT0-9): its files could not be created or copied there")
    if name in (".", "..") or any(c in "/\\" or ord(c) < 32 or ord(c) == 127
                                  or c in _BIDI for c in name):
        raise ValueError(f"run name {name!r}: a name becomes a file in --out, so it may not "
                         "contain '/', '\\', control or bidi-override characters, nor be "
                         "'.' or '..'")
    bad = sorted({c for c in name if c in _WINDOWS_FORBIDDEN})
    if bad:
        raise ValueError(f"run name {name!r}: contains {' '.join(bad)}; the characters "
                         f"{' '.join(_WINDOWS_FORBIDDEN)} are not allowed in Windows file "
                         "names (on NTFS 'a:b' writes a hidden stream of 'a'): the outputs "
                         "would not copy there")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"run name {name!r}: not valid UTF-8") from None
    if size > NAME_MAX:
        raise ValueError(f"run name {name[:40]!r}...: {size} bytes, at most {NAME_MAX}")
    return name


def _plain(value, what: str):
    """A parameter value as papermill can inject and JSON can store: YAML dates become
    their ISO text (papermill would store nothing and fail); other types are refused."""
    if isinstance(value, (_dt.date, _dt.datetime)):
        return str(value)
    if isinstance(value, list):
        return [_plain(v, what) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, what) for k, v in value.items()}
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(f"{what}: {type(value).__name__} value {value!r} is not a parameter "
                    "(str, number, bool, null, date, or a list/map of them)")


def check_parameters(params, what: str = "parameters") -> dict:
    """Check notebook parameters: names must be Python identifiers (papermill writes
    ``NAME = VALUE`` into the notebook, so a name like ``x=1;import os`` would be code);
    values plain (str, number, bool, None, a date as its ISO text, lists/maps of them).

    Parameters
    ----------
    params : dict
        NAME -> VALUE.
    what : str
        Where they come from, for the messages.

    Returns
    -------
    dict
        The parameters, dates as text.

    Examples
    --------
    >>> import datetime
    >>> from quantlab.suite import check_parameters
    >>> check_parameters({"symbol": "MSFT", "start": datetime.date(2020, 1, 2)})
    {'symbol': 'MSFT', 'start': '2020-01-02'}
    >>> check_parameters({"x=1;import os": 1})
    Traceback (most recent call last):
    ...
    ValueError: parameters: parameter name 'x=1;import os' is not a Python identifier
    """
    if not isinstance(params, dict):
        raise TypeError(f"{what}: expected a mapping NAME: VALUE, got {params!r}")
    for k in params:
        if not (isinstance(k, str) and k.isidentifier() and not keyword.iskeyword(k)):
            raise ValueError(f"{what}: parameter name {k!r} is not a Python identifier")
    return {k: _plain(v, f"{what}: {k}") for k, v in params.items()}


def check_timeout(value, what: str = "timeout") -> float:
    """Seconds for a whole notebook, in (0, MAX_TIMEOUT].

    Parameters
    ----------
    value : float
        The limit in seconds.
    what : str
        Its name in the message.

    Returns
    -------
    float

    Examples
    --------
    >>> from quantlab.suite import check_timeout
    >>> check_timeout(300)
    300.0
    >>> check_timeout(0, "--timeout")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --timeout ...
    """
    return number(what, value, 0, MAX_TIMEOUT, lo_open=True)


def _read_yaml_config(path) -> dict:
    """The suite config at ``path``, its plain values as YAML 1.2 reads them
    (:func:`plain_loader`): YAML 1.1 made ``symbol: ON`` (ON Semiconductor) True, ``NO``
    False and ``010`` 8."""
    import yaml  # lazy: its error type only

    path = Path(path)
    try:
        cfg = _yaml.load(_yaml.read_text(path, str(path))) or {}
    except yaml.YAMLError as e:   # a traceback and exit 1 before
        raise ValueError(f"{path}: not YAML ({e})") from None
    except OSError as e:    # a directory given as the config
        raise ValueError(f"{path}: {e.strerror or e}") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: expected a mapping with 'runs', got {type(cfg).__name__}")
    unknown = set(cfg) - {"runs", "notebooks_dir", "timeout"}
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {sorted(unknown)}; expected runs, "
                         "notebooks_dir, timeout")
    if "timeout" in cfg:
        cfg["timeout"] = check_timeout(cfg["timeout"], f"{path}: timeout")
    return cfg


def config_timeout(path) -> float | None:
    """The suite config's default per-notebook ``timeout:`` (None when it sets none).

    Parameters
    ----------
    path : path or None
        The suite YAML; None or a missing file: None.

    Returns
    -------
    float or None

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from quantlab.suite import config_timeout
    >>> cfg = Path(tempfile.mkdtemp()) / "suite.yaml"
    >>> _ = cfg.write_text("timeout: 120\\nruns: []\\n")
    >>> config_timeout(cfg)
    120.0
    """
    return _read_yaml_config(path).get("timeout") if path and Path(path).exists() else None


def load_config(path=None, notebooks_dir: Path | None = None) -> list[Run]:
    """Runs from a suite YAML file, or every notebook in ``notebooks/`` with defaults.

    Keys: ``runs`` (each ``notebook``, optional ``name``, ``parameters``, ``timeout``),
    ``notebooks_dir`` (relative to the file), ``timeout`` (seconds a notebook, default
    for every run). Unknown keys, bad names, repeated names and missing notebooks are
    refused before anything runs.

    Parameters
    ----------
    path : path, optional
        The suite YAML; None: every ``*.ipynb`` of ``notebooks_dir``.
    notebooks_dir : path, optional
        Where notebooks are found (default the repository's ``notebooks/``).

    Returns
    -------
    list of Run

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from quantlab.suite import load_config
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "a.ipynb").write_text("{}")
    >>> _ = (d / "suite.yaml").write_text(
    ...     "timeout: 60\\nruns:\\n  - notebook: a.ipynb\\n"
    ...     "  - {notebook: a.ipynb, name: a-MSFT, parameters: {symbol: MSFT}}\\n")
    >>> [(r.name, r.parameters, r.timeout) for r in load_config(d / "suite.yaml", d)]
    [('a', {}, 60.0), ('a-MSFT', {'symbol': 'MSFT'}, 60.0)]
    """
    nb_dir = Path(notebooks_dir or REPO / "notebooks")
    if path is None:
        return [Run(str(p)) for p in sorted(nb_dir.glob("*.ipynb"))]
    path = Path(path)
    cfg = _read_yaml_config(path)
    nb_dir = (path.parent / cfg["notebooks_dir"]) if "notebooks_dir" in cfg else nb_dir
    items = cfg.get("runs") or []
    if not isinstance(items, list):
        raise ValueError(f"{path}: 'runs' must be a list of runs")
    runs = []
    for i, item in enumerate(items):
        bad = set(item) - {"notebook", "name", "parameters", "timeout"} \
            if isinstance(item, dict) else {"?"}
        if bad or "notebook" not in item:
            raise ValueError(f"{path}: run {i}: needs 'notebook', may have 'name', "
                             f"'parameters' and 'timeout'; got {item!r}")
        nb = nb_dir / str(item["notebook"])
        if not nb.exists():
            raise FileNotFoundError(f"{path}: run {i}: notebook {nb} not found")
        # a name given but empty (name: "" or name: with no value) is refused, not
        # silently replaced by the notebook's stem
        run = Run(str(nb), ("" if item["name"] is None else item["name"])
                  if "name" in item else None,
                  check_parameters(item.get("parameters") or {}, f"{path}: run {i}"),
                  timeout=cfg.get("timeout"))
        try:
            check_name(run.name)
        except ValueError as e:
            raise ValueError(f"{path}: run {i}: {e}") from None
        if "timeout" in item:
            run.timeout = check_timeout(item["timeout"], f"{path}: run {i}: timeout")
        runs.append(run)
    names = [r.name for r in runs]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"{path}: run names must be unique, repeated: {sorted(dup)}")
    return runs


def execute_notebook_json(nb_json: str, parameters: dict, cwd: str | None = None,
                          timeout: float | None = None) -> dict:
    """Execute a notebook given as JSON text; return the executed JSON and the outcome.

    Pure function of its inputs, so a dask worker on another machine (or in another
    working directory) can run it and hand the result back to the client. ``timeout``
    bounds the whole notebook (s): papermill/nbclient only know a per-cell limit, so each
    cell gets what is left of the notebook's budget, and the kernel start at most 60 s.
    """
    import math

    import papermill as pm

    # same inputs -> same numbers: fix the kernel's hash seed (set/dict order of strings)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    _plugins.absolute()   # the kernel runs in another directory
    started = _dt.datetime.now().isoformat(timespec="seconds")
    t0 = time.perf_counter()
    limits = {}
    if timeout is not None:
        deadline = time.monotonic() + timeout
        # nbclient reads 0 as "no limit": never hand it less than a millisecond
        limits = {"start_timeout": int(min(60, max(1, math.ceil(timeout)))),
                  "timeout_func": lambda cell: max(deadline - time.monotonic(), 1e-3)}
    with tempfile.TemporaryDirectory(prefix="quantlab-run-") as tmp:
        src, dest = os.path.join(tmp, "in.ipynb"), os.path.join(tmp, "out.ipynb")
        with open(src, "w", encoding="utf-8") as f:
            f.write(nb_json)
        status, error = "ok", ""
        try:
            pm.execute_notebook(src, dest, parameters=parameters, kernel_name="python3",
                                progress_bar=False, cwd=cwd if cwd and os.path.isdir(cwd) else tmp,
                                log_output=False, **limits,
                                # the kernel's own log goes to this terminal: its warning
                                # that a local kernel talks TCP unencrypted (ipykernel 7, at
                                # every start) alarmed a newcomer's `make report`; errors stay
                                extra_arguments=["--IPKernelApp.log_level=ERROR"])
        except Exception as e:  # a failing cell: record it, keep the batch going
            status = "failed"
            # past the deadline any failure (a cell, a slow kernel start) is the timeout
            if timeout is not None and (isinstance(e, TimeoutError)
                                        or time.monotonic() >= deadline):
                error = (f"timeout: the notebook ran longer than its limit of {timeout:g} s "
                         "(--timeout, or timeout: in the suite config)")
            else:
                error = f"{getattr(e, 'ename', type(e).__name__)}: {getattr(e, 'evalue', e)}"
                cell = getattr(e, "exec_count", None)
                if cell is not None:
                    error = f"cell [{cell}] {error}"
        out = open(dest, encoding="utf-8").read() if os.path.exists(dest) else None
    return {"status": status, "error": error, "duration": time.perf_counter() - t0,
            "started": started, "ended": _dt.datetime.now().isoformat(timespec="seconds"),
            "notebook": out}


def _failed(error: str) -> dict:
    """The outcome of a run that never produced a notebook."""
    now = _dt.datetime.now().isoformat(timespec="seconds")
    return {"status": "failed", "error": error, "duration": 0.0, "started": now,
            "ended": now, "notebook": None}


def _atomic_write(path, text: str) -> None:
    """Write ``text`` to a temp file beside ``path`` and rename it over ``path``: readers
    (and a crash half-way) see the old file or the new one, never a mix. Keeps the mode
    of the file it replaces."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:50]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~_UMASK
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):    # a full disk said "No space left on device" alone
            raise io_error(e, f"writing {path}") from e
        raise


def _finish(run: Run, result: dict, dest: Path, prov: dict | None) -> Run:
    """Write the executed notebook and read its records; ``prov`` (the batch's provenance)
    goes into its metadata, or ``None`` for an in-place refresh, whose outputs are stripped
    of what must not be committed, and which is written only when the run succeeded (a
    failed run leaves the source notebook untouched)."""
    import nbformat

    run.status, run.error, run.duration = result["status"], result["error"], result["duration"]
    run.source = result.get("source", "executed")
    run.started, run.ended = result["started"], result["ended"]
    run.output = ""
    if result["notebook"] is None:
        if prov is not None:   # an earlier run's outputs under this name are not this run's
            for f in (dest, dest.with_suffix(".html")):
                if f.is_symlink() or f.is_file():
                    f.unlink()
        return run
    nb = nbformat.reads(result["notebook"], as_version=4)
    run.records = collect_records(nb)
    if prov is None:
        if run.status != "ok":
            return run
        strip_outputs(nb)
    else:
        nb.metadata["quantlab"] = {**prov, "parameters": run.parameters,
                                   "started": run.started, "ended": run.ended,
                                   "status": run.status}
        if run.status != "ok":
            _mark_failed(nb, run.error)
    text = nbformat.writes(nb)
    _atomic_write(dest, text if text.endswith("\n") else text + "\n")  # as nbformat.write
    run.output = str(dest)
    return run


FAILED_TAG = "quantlab-failed"


def _mark_failed(nb, error: str) -> None:
    """Put what failed at the top of a failed run's notebook (and so of its report), unless
    papermill's own banner is there: a timed-out or stale stored notebook was rendered as
    if complete, its last cells simply without outputs."""
    import nbformat

    if any(FAILED_TAG in c.metadata.get("tags", []) or "papermill-error-cell-tag"
           in c.metadata.get("tags", []) for c in nb.cells):
        return
    cell = nbformat.v4.new_markdown_cell(
        '<div style="color:#900; border:2px solid #900; padding:.5em 1em">'
        "<b>This run failed: the outputs below are incomplete.</b>"
        f"<pre>{html.escape(error or 'no reason given')}</pre></div>")
    cell.metadata["tags"] = [FAILED_TAG]
    nb.cells.insert(0, cell)


DESCRIPTION_MAX = 240  # characters of an index line


def describe(nb_json: str) -> str:
    """One line for the index: the first markdown cell's title (a leading heading) and
    first sentence, markdown marks removed; "" when there is none or the notebook cannot
    be parsed.

    Parameters
    ----------
    nb_json : str
        The notebook's JSON text.

    Returns
    -------
    str
        At most ``DESCRIPTION_MAX`` characters.

    Examples
    --------
    >>> import nbformat
    >>> from quantlab.suite import describe
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
    ...     "# Quickstart\\n\\nLoads **real** prices. Then plots them.")])
    >>> describe(nbformat.writes(nb))
    'Quickstart. Loads real prices.'
    """
    import re

    try:
        cells = json.loads(nb_json).get("cells", [])
        cell = next(c for c in cells if c.get("cell_type") == "markdown")
    except (ValueError, AttributeError, TypeError, StopIteration):
        return ""
    src = cell.get("source", "")
    src = "".join(src) if isinstance(src, list) else str(src)
    title, paras = "", [p.strip() for p in re.split(r"\n\s*\n", src) if p.strip()]
    if paras and paras[0].startswith("#"):
        title = paras.pop(0).splitlines()[0].lstrip("#").strip()
    text = " ".join(paras[0].split()) if paras else ""
    text = re.split(r"(?<=[.!?])\s+(?=[A-Z(`*\[])", text, maxsplit=1)[0]
    line = f"{title.rstrip('.')}. {text}" if title and text else title or text
    # markdown to plain text: links -> their text, no emphasis or code marks
    line = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", line)
    line = re.sub(r"\*{1,3}([^*]+)\*{1,3}", r"\1", line.replace("`", ""))
    return line if len(line) <= DESCRIPTION_MAX else line[:DESCRIPTION_MAX - 1].rstrip() + "…"


def collect_records(nb) -> dict:
    out = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            if RECORD_MIME in data:
                out.update(data[RECORD_MIME])
    return out


def strip_outputs(nb) -> None:
    """Drop outputs of cells tagged ``strip-output`` and papermill's run metadata."""
    for cell in nb.cells:
        if STRIP_TAG in cell.get("metadata", {}).get("tags", []):
            cell["outputs"] = []
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
    nb.metadata.pop("papermill", None)


BOKEH_LOAD_MIME = "application/vnd.bokehjs_load.v0+json"  # output_notebook()'s output
STATIC = "_static"  # shared assets of a light report folder, written once per batch


def _bokeh_files() -> list[Path]:
    """The installed BokehJS bundles (bokeh, gl, widgets, tables, mathjax): what
    ``output_notebook()`` inlines, and what drew the figures."""
    from bokeh.resources import Resources

    return [Path(f) for f in Resources(mode="absolute").js_files]


def _static_assets() -> dict[str, Path]:
    """``_static/``-relative name -> installed file, for every shared asset of a light
    report. BokehJS names carry its version, so reports of an older bokeh in the same
    folder keep theirs; the widget renderer's fonts sit beside it (its CSS asks for them
    by relative URL)."""
    import bokeh

    assets = {f"bokeh/{bokeh.__version__}/{f.name}": f for f in _bokeh_files()}
    renderer = JS_DIR / WIDGET_RENDERER
    if renderer.exists() and (JS_DIR / REQUIRE_JS).exists():
        assets["widgets/embed-amd.js"] = renderer
        assets["widgets/require.js"] = JS_DIR / REQUIRE_JS
        for font in renderer.parent.iterdir():
            if font.suffix in (".woff2", ".woff", ".ttf"):
                assets[f"widgets/{font.name}"] = font
        bokeh_widget = Path(sys.prefix) / "share/jupyter/nbextensions/jupyter_bokeh/index.js"
        if bokeh_widget.exists():
            assets["widgets/jupyter_bokeh.js"] = bokeh_widget
    return assets


def write_static(out_dir) -> Path:
    """Copy the shared assets into ``out_dir/_static/`` (a file already there with the
    same bytes is left alone): the light reports link them by relative path.

    Parameters
    ----------
    out_dir : path
        The report folder.

    Returns
    -------
    Path
        ``out_dir/_static``.

    Examples
    --------
    >>> import tempfile
    >>> from quantlab.suite import write_static
    >>> root = write_static(tempfile.mkdtemp())
    >>> root.name, (root / "bokeh").is_dir()
    ('_static', True)
    """
    import shutil

    root = Path(out_dir) / STATIC
    for rel, src in _static_assets().items():
        dest = root / rel
        if dest.is_file() and dest.stat().st_size == src.stat().st_size \
                and dest.read_bytes() == src.read_bytes():
            continue
        tmp = dest.with_name(f".{dest.name}.tmp")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        except BaseException as e:   # a full disk left a partial 1-4 MB .tmp behind
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            if isinstance(e, OSError):
                raise io_error(e, f"writing the reports' shared files in {root}") from e
            raise
    return root


def _bokeh_scripts(prefix: str) -> str:
    """``<script src>`` tags for the shared BokehJS: plain (not async) tags run in order
    before the figures' embed scripts below them, so ``window.Bokeh`` is there."""
    import bokeh

    return "".join(f'<script src="{prefix}bokeh/{bokeh.__version__}/{f.name}"></script>'
                   for f in _bokeh_files())


def _share_bokehjs(nb, prefix: str | None) -> None:
    """Keep BokehJS once per report: the first ``output_notebook()`` output stays (inline,
    ``prefix=None``) or becomes script tags to ``_static/`` (``prefix``); later copies
    (each notebook call inlines all ~4 MB again) are dropped."""
    import nbformat

    seen = False
    for cell in nb.cells:
        keep = []
        for o in cell.get("outputs", []):
            if BOKEH_LOAD_MIME in o.get("data", {}):
                if seen:
                    continue
                seen = True
                if prefix is not None:
                    o = nbformat.v4.new_output("display_data",
                                               data={"text/html": _bokeh_scripts(prefix)})
            keep.append(o)
        if "outputs" in cell:
            cell["outputs"] = keep
    if not seen:
        _load_bokehjs_before_first_figure(nb, prefix)


def _uses_bokeh(output) -> bool:
    """An output that draws with BokehJS: an embed (``bokehjs_exec``) or HTML/JS calling
    ``Bokeh.`` (the explorers' static copies)."""
    data = output.get("data", {})
    return "application/vnd.bokehjs_exec.v0+json" in data or any(
        isinstance(v, (str, list)) and "Bokeh." in "".join(v)
        for k, v in data.items() if k in ("text/html", "application/javascript"))


def _load_bokehjs_before_first_figure(nb, prefix: str | None) -> None:
    """A stored notebook has no ``output_notebook()`` output (stripped before committing,
    ~4 MB): load BokehJS just before its first figure, from ``_static/`` (``prefix``) or
    inline (``prefix=None``)."""
    import nbformat
    from bokeh.resources import INLINE

    for cell in nb.cells:
        outputs = cell.get("outputs", [])
        for i, o in enumerate(outputs):
            if _uses_bokeh(o):
                tags = _bokeh_scripts(prefix) if prefix is not None else INLINE.render_js()
                outputs.insert(i, nbformat.v4.new_output("display_data",
                                                         data={"text/html": tags}))
                return


def render_html(notebook_path, html_path, no_input: bool = False,
                self_contained: bool = True, index: bool = False) -> None:
    """Render an executed notebook to HTML that opens offline (nothing from a CDN).

    ``self_contained``: one file carrying BokehJS and the widget renderer inline (for
    e-mailing one report, ~4-15 MB). Otherwise a light page (the figures' data only)
    linking ``_static/`` beside it by relative path (:func:`write_static` puts the
    assets there), so the folder opens from disk (file://) or any static server.
    BokehJS is loaded once per page: from the notebook's ``output_notebook()`` output,
    or, when that was stripped (stored notebooks), just before the first figure. The
    page's title is the report's name (``html_path``'s stem).

    Parameters
    ----------
    notebook_path : path
        The executed (or stored) notebook.
    html_path : path
        Where the report goes (written atomically).
    no_input : bool
        Hide the code cells.
    self_contained : bool
        Inline the assets instead of linking ``_static/``.
    index : bool
        Start the page with a link to ``index.html`` beside it (a batch's folder).

    Examples
    --------
    >>> import tempfile, nbformat
    >>> from pathlib import Path
    >>> from quantlab.suite import render_html
    >>> d = Path(tempfile.mkdtemp())
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    >>> nb.cells[0].outputs = [nbformat.v4.new_output("execute_result",
    ...     data={"text/plain": "2"}, execution_count=1)]
    >>> nbformat.write(nb, d / "two.ipynb")
    >>> render_html(d / "two.ipynb", d / "two.html", self_contained=False)
    >>> "https://" in (d / "two.html").read_text().split("<body")[1]
    False
    """
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook_path, as_version=4)
    if _static_views_only(nb):
        # every widget output carries a static copy of its view (quantlab.plots.StaticView):
        # without the saved widget state nbconvert shows the copies, controls greyed out
        # and marked "needs a running kernel", instead of controls that do nothing
        nb.metadata.pop("widgets", None)
    _share_bokehjs(nb, None if self_contained else f"{STATIC}/")
    _escape_scripts(nb)
    exporter = HTMLExporter(template_name="lab", embed_images=True, exclude_input=no_input)
    modules = ""
    if "widgets" in nb.metadata:  # embedded widget state: load its renderer
        if self_contained:
            renderer, require = _js_asset(WIDGET_RENDERER), _js_asset(REQUIRE_JS)
            bokeh_widget = _data_url(Path(sys.prefix) / "share" / "jupyter" /
                                     "nbextensions/jupyter_bokeh/index.js")
        else:
            assets = _static_assets()
            renderer, require, bokeh_widget = (
                f"{STATIC}/{rel}" if rel in assets else None
                for rel in ("widgets/embed-amd.js", "widgets/require.js",
                            "widgets/jupyter_bokeh.js"))
            bokeh_widget = bokeh_widget and bokeh_widget[:-3]  # require adds the .js
        if renderer and require:
            exporter.widget_renderer_url, exporter.require_js_url = renderer, require
            modules = _widget_modules(bokeh_widget)
    # the page's <title> (a tab, a bookmark): the report's name, not nbconvert's "Notebook"
    body, _ = exporter.from_notebook_node(
        nb, resources={"metadata": {"name": Path(html_path).stem}})
    if modules:  # after require.js: where the renderer finds third-party widget modules
        tag = f'<script src="{exporter.require_js_url}"></script>'
        body = body.replace(tag, tag + modules, 1)
    if index:   # a report opened alone had no way back to the folder's other reports
        nav = ('<nav style="margin: 1em 2em; font-family: system-ui, sans-serif">'
               '<a href="./index.html">← all reports</a></nav>')
        body = re.sub(r"<body\b[^>]*>", lambda m: m.group(0) + nav, body, count=1)
    _atomic_write(html_path, _offline(body))


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _escape_scripts(nb) -> None:
    """Make JavaScript outputs safe inside the ``<script>`` element nbconvert puts them in:
    ``</script`` becomes ``<\\/script`` and ``<!--`` becomes ``<\\!--`` (the same text in a
    JS string, regex or comment). A bokeh figure titled with a parameter such as
    ``</script><script>alert(1)</script>`` closed the element and ran the rest as markup
    (JupyterLab evaluates the same output without HTML parsing)."""
    import re

    for cell in nb.cells:
        for o in cell.get("outputs", []):
            js = o.get("data", {}).get("application/javascript")
            if js:
                js = "".join(js) if isinstance(js, list) else js
                js = re.sub(r"</(script)", r"<\\/\1", js, flags=re.I)
                o["data"]["application/javascript"] = js.replace("<!--", "<\\!--")


def _static_views_only(nb) -> bool:
    """True when every widget output (if any) also holds an HTML copy. With none (their
    outputs stripped from a stored notebook) the saved widget state has nothing to draw
    and would only make the page fetch a widget renderer."""
    views = [o.get("data", {}) for c in nb.cells for o in c.get("outputs", [])
             if WIDGET_VIEW in o.get("data", {})]
    return all("text/html" in d for d in views)


# Pinned npm packages `make install` puts in .cache/npm (see the Makefile).
JS_DIR = REPO / ".cache" / "npm" / "node_modules"
WIDGET_RENDERER = "@jupyter-widgets/html-manager/dist/embed-amd.js"
REQUIRE_JS = "requirejs/require.js"


def _data_url(f: Path) -> str | None:
    """A local JS file as a data: URL, so the report carries it (no CDN, opens offline);
    None when the file is not installed."""
    import base64

    if not f.exists():
        return None
    return "data:text/javascript;base64," + base64.b64encode(f.read_bytes()).decode()


def _js_asset(relpath: str) -> str | None:
    """A pinned npm asset (None when `make install` has not fetched them: widgets then
    stay unrendered)."""
    return _data_url(JS_DIR / relpath)


def _widget_modules(bokeh_widget: str | None) -> str:
    """A require.config mapping third-party widget modules (jupyter_bokeh's BokehModel)
    to a local copy (a data: URL, or a path relative to the page), so the widget
    renderer never asks a CDN for them."""
    if not bokeh_widget:
        return ""
    paths = {"@bokeh/jupyter_bokeh": bokeh_widget}
    return f"<script>require.config({{paths: {json.dumps(paths)}}});</script>"


def _offline(body: str) -> str:
    """Remove the template's CDN scripts: reports must not fetch. Both ``<script src>``
    tags (require.js, MathJax) and inline scripts that ``import()`` from the network (the
    lab template's mermaid loader, which fetched from cdnjs as soon as a markdown cell held
    a mermaid diagram; the diagram then stays as its text)."""
    import re

    body = re.sub(r'<script[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>\s*', "", body)
    return re.sub(r'<script\b[^>]*>(?:(?!</script>).)*?\bimport\(\s*["\']https?://'
                  r'(?:(?!</script>).)*</script>\s*', "", body, flags=re.S)


def folder_size(out_dir) -> tuple[int, int]:
    """(bytes of the whole folder, bytes of its ``_static/``): what ``quantlab report``
    prints. Symlinks are not followed.

    Parameters
    ----------
    out_dir : path
        The report folder.

    Returns
    -------
    tuple of int

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from quantlab.suite import folder_size
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "a.html").write_text("x" * 10)
    >>> (d / "_static").mkdir()
    >>> _ = (d / "_static" / "b.js").write_text("y" * 5)
    >>> folder_size(d)
    (15, 5)
    """
    root = Path(out_dir)
    total = sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and not f.is_symlink())
    static = sum(f.stat().st_size for f in (root / STATIC).rglob("*") if f.is_file()) \
        if (root / STATIC).is_dir() else 0
    return total, static


def _key(run: Run) -> tuple:
    """What a run computes: the same notebook with the same parameters."""
    return (str(Path(run.notebook).resolve()),
            json.dumps(run.parameters, sort_keys=True, default=str))


def _fold(name: str) -> str:
    # one file on macOS (NFD on disk) and Windows (case-insensitive): 'é' vs 'e'+U+0301
    return unicodedata.normalize("NFC", name).casefold()


LOCK = ".quantlab-batch.lock"   # in --out: one batch at a time writes a folder
_HELD: set[str] = set()   # folders this process holds (run_suite inside the CLI's hold)


@contextlib.contextmanager
def batch_lock(out_dir):
    """Hold ``out_dir`` for one batch: an exclusive ``flock`` on ``out_dir/LOCK`` (removed
    when the batch ends; released by the system if the process dies). Two at once
    planned the same names: the later one's index dropped the other's runs (or listed
    them with the other's notebook). Where there are no locks (Windows, a file
    system without them), none; nor for a folder not there yet (nothing in it to plan
    against or delete: :func:`run_suite` takes the lock once it has made it).

    Parameters
    ----------
    out_dir : path
        The report folder.

    Raises
    ------
    BlockingIOError
        If another process is running a batch into ``out_dir``.

    Examples
    --------
    >>> import tempfile
    >>> from quantlab.suite import batch_lock
    >>> d = tempfile.mkdtemp()
    >>> with batch_lock(d), batch_lock(d):   # re-entered by the process holding it
    ...     pass
    """
    root = Path(out_dir).resolve()
    try:
        import fcntl
    except ImportError:   # Windows: no flock
        fcntl = None
    f = None if fcntl is None or str(root) in _HELD or not root.is_dir() else \
        _lock_file(root, fcntl)
    if f is None:
        yield
        return
    with f:
        f.truncate(0)
        f.write(f"pid {os.getpid()}, started {_dt.datetime.now():%Y-%m-%d %H:%M:%S}")
        f.flush()
        _HELD.add(str(root))
        try:
            yield
        finally:
            _HELD.discard(str(root))
            # removed while still held (the folder is the reports' alone); a batch that
            # opened it just before locks a removed file, sees so, and opens it again
            with contextlib.suppress(OSError):
                (root / LOCK).unlink()
            fcntl.flock(f, fcntl.LOCK_UN)


def _lock_file(root: Path, fcntl):
    """``root/LOCK`` open and locked (None where it cannot be: an unwritable folder,
    which plan_outputs names, or a file system without locks); BlockingIOError naming
    the batch that holds it."""
    path = root / LOCK
    while True:
        try:
            f = open(path, "a+", encoding="utf-8")
        except OSError:
            return None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            who = f.read().strip() or "another process"
            f.close()
            raise BlockingIOError(f"--out {root}: another batch ({who}) is writing there; "
                                  "wait for it to finish or choose another --out (two at "
                                  "once replace each other's runs in the index)") from None
        except OSError:
            f.close()
            return None
        try:
            if os.fstat(f.fileno()).st_ino == os.stat(path).st_ino:
                return f
        except OSError:   # removed by the batch that held it
            pass
        f.close()


def _check_writable(root: Path) -> None:
    """Refuse an output folder (or, not there yet, its nearest existing parent) that
    cannot be written, before anything runs: a read-only --out ran every notebook, then
    ended in a traceback writing the index (``report``: writing ``_static/``). A real
    file is tried: permission bits say nothing for root or an immutable folder."""
    where = next(d for d in (root, *root.parents) if d.exists())
    try:
        fd, tmp = tempfile.mkstemp(dir=where, prefix=".quantlab-write-check.")
    except OSError as e:
        raise PermissionError(f"--out {root}: cannot write in {where} ({e.strerror or e})") \
            from None
    os.close(fd)
    os.unlink(tmp)


def plan_outputs(runs: list[Run], out_dir) -> list[Run]:
    """Check every run's name and make the output names unique, before anything runs.

    A folder that cannot be written is refused (PermissionError). A name is refused
    when it is not a plain file name or its outputs would resolve outside ``out_dir``
    (a symlink planted there included). A repeat within the batch,
    ``index`` (the batch's own page), a source notebook of the batch, or a name that an
    earlier run in ``out_dir``'s index holds for another notebook or other parameters
    gets a suffix ``-2``, ``-3``... Names compare case-insensitively and in Unicode
    NFC form (``'é'`` and ``'e'`` + combining accent are one name), so the folder
    survives a copy to macOS or Windows. The same notebook with the same parameters keeps
    its earlier name and replaces that run.

    Parameters
    ----------
    runs : list of Run
        Renamed in place.
    out_dir : path
        The output folder.

    Returns
    -------
    list of Run
        ``runs``.

    Examples
    --------
    >>> import tempfile
    >>> from quantlab.suite import Run, plan_outputs
    >>> runs = [Run("a.ipynb", "q"), Run("b.ipynb", "Q"), Run("c.ipynb", "index")]
    >>> [r.name for r in plan_outputs(runs, tempfile.mkdtemp())]
    ['q', 'Q-2', 'index-2']
    """
    root = Path(out_dir).resolve()
    if root.exists() and not root.is_dir():
        raise ValueError(f"--out {root} is not a folder")
    _check_writable(root)
    earlier = {_fold(r.name): (r.name, _key(r)) for r in read_index(out_dir)}
    # the earlier name of a run computing the same, whatever this batch calls it:
    # `run-suite nb -p symbol MSFT` after `make report`'s 00_quickstart-MSFT was listed
    # again as 00_quickstart-2, beside the run it should have replaced
    named = {}
    for held_name, held_key in earlier.values():
        named.setdefault(held_key, held_name)
    sources = {str(Path(r.notebook).resolve()) for r in runs}  # --out may hold the inputs
    used = set()
    for run in runs:
        check_name(run.name)
        key, base = _key(run), run.name
        tries = itertools.chain([named[key]] if key in named else [], [base],
                                (f"{base}-{i}" for i in itertools.count(2)))
        for name in tries:
            fold = _fold(name)
            held = earlier.get(fold)
            if (fold not in used and fold not in RESERVED and (held is None or held[1] == key)
                    and str((root / f"{name}.ipynb").resolve()) not in sources):
                name = held[0] if held else name
                break
        for suffix in (".ipynb", ".html"):
            dest = (root / f"{name}{suffix}").resolve()
            if dest.parent != root:
                raise ValueError(f"run {run.name!r}: its output {dest} would be outside "
                                 f"--out {root}")
        used.add(_fold(name))
        run.name = name
    return runs


def run_suite(runs: list[Run], out_dir=None, in_place: bool = False, render: bool = False,
              jobs: int = 1, scheduler: str | None = None, client=None,
              no_input: bool = False, timeout: float | None = None, index: bool = False,
              self_contained: bool = False, keep_notebooks: bool = True,
              from_stored: bool = False, log=sys.stderr) -> list[Run]:
    """Execute ``runs`` (papermill) and write their notebooks, reports and index.

    Runs go one after another (``jobs=1``), on ``jobs`` local dask workers, or on an
    existing cluster (``scheduler="tcp://host:8786"`` or ``client``). Workers get the
    notebook as JSON and return the executed JSON, so they need no shared disk. A
    progress bar counts runs done and failed.

    Parameters
    ----------
    runs : list of Run
        What to run; names are checked and made unique (:func:`plan_outputs`) before
        anything runs.
    out_dir : path, optional
        Output folder (required unless ``in_place``).
    in_place : bool
        Write each notebook back over its source, only when its run succeeded and its
        file did not change meanwhile (outputs tagged ``strip-output`` dropped).
    render : bool
        An HTML report beside each notebook, light (linking ``out_dir/_static/``,
        written once per batch) unless ``self_contained``.
    jobs, scheduler, client
        Local dask workers, or an existing cluster's address or client.
    no_input : bool
        Hide code cells in the reports.
    timeout : float, optional
        Seconds for each notebook that sets none itself (``Run.timeout``); None: no limit.
    index : bool
        Rewrite ``out_dir/index.html`` after every finished run, so an interrupted batch
        still lists what it finished.
    self_contained, keep_notebooks : bool
        One file per report carrying BokehJS; ``keep_notebooks=False`` deletes each
        executed ``.ipynb`` once its report is written (the report is the product).
    from_stored : bool
        Do not execute runs without parameters: take their notebook's STORED outputs
        (the committed, executed notebooks; see :func:`stored_result`). A run with
        parameters has no stored outputs and is executed as usual.
    log : file
        Where progress and one line per finished run go.

    Returns
    -------
    list of Run
        ``runs``, each with its status, error, duration, records, output and html.

    Examples
    --------
    >>> import tempfile, nbformat
    >>> from pathlib import Path
    >>> from quantlab import suite
    >>> tmp = Path(tempfile.mkdtemp())
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    >>> nb.cells[0].execution_count = 1
    >>> nbformat.write(nb, tmp / "tiny.ipynb")
    >>> [run] = suite.run_suite([suite.Run(str(tmp / "tiny.ipynb"))], tmp / "out",
    ...                         from_stored=True, log=open(os.devnull, "w"))
    >>> run.status, Path(run.output).name
    ('ok', 'tiny.ipynb')
    """
    if from_stored and in_place:
        raise ValueError("from_stored renders stored outputs; in_place refreshes them: "
                         "choose one")
    out = _check_batch(runs, out_dir, in_place, render, self_contained, jobs, timeout)
    # one batch at a time per folder (the CLI holds it already, from planning on)
    with contextlib.nullcontext() if out is None else batch_lock(out):
        client = _validate.client(client)
        prov = None if in_place else provenance()  # once per batch: git and checksum cost I/O
        payload, sources = _read_notebooks(runs, timeout)
        bar = _progress.bar(len(runs), "notebooks", "run", len(runs) > 1, file=log)
        opts = {"in_place": in_place, "render": render, "no_input": no_input,
                "self_contained": self_contained, "keep_notebooks": keep_notebooks,
                "index": index}

        def done(run, result):
            _collect(run, result, out, prov, sources.get(id(run)), opts)
            if index:  # a failure here must not stop the batch: main writes it again at the end
                try:
                    write_index([r for r in runs if r.status != "pending"], out, prov)
                except Exception as e:
                    print(f"index not updated after {run.name}: {type(e).__name__}: {e}", file=log)
            bar.set_postfix(failed=sum(r.status == "failed" for r in runs))
            bar.update()
            took = f"{run.duration:.1f} s" if run.source == "executed" else run.source
            msg = f"{run.name}: {run.status} ({took}){' ' + run.error if run.error else ''}"
            (bar.write(msg, file=log) if len(runs) > 1 else print(msg, file=log, flush=True))

        todo = []
        for run, args in zip(runs, payload):
            if args is None:
                done(run, _failed(run.error))
            elif from_stored and not run.parameters:
                done(run, stored_result(args[0], run.notebook))
            else:
                todo.append((run, args))
        _execute(todo, done, jobs, scheduler, client)
        bar.close()
        return runs


def _check_batch(runs, out_dir, in_place, render, self_contained, jobs, timeout):
    """Refuse a bad batch before anything runs; returns the output folder (None in
    place), created, with its ``_static/`` when light reports are rendered."""
    integer("jobs", jobs, 1, 1024)
    if timeout is not None:
        check_timeout(timeout)
    for r in runs:
        if r.timeout is not None:
            r.timeout = check_timeout(r.timeout, f"run {r.name!r}: timeout")
    if in_place:
        with_params = [r.name for r in runs if r.parameters]
        if with_params:
            raise ValueError(f"in_place: stored outputs are of the default parameters; runs "
                             f"with parameters {with_params} cannot be written back")
        seen = [str(Path(r.notebook).resolve()) for r in runs]
        if len(set(seen)) < len(seen):
            raise ValueError("in_place: a notebook is listed twice")
        return None
    if out_dir is None:
        raise ValueError("out_dir is required unless in_place=True")
    out = user_path("out_dir", out_dir)   # "~/reports" is the home folder's, as on the CLI
    plan_outputs(runs, out)
    out.mkdir(parents=True, exist_ok=True)
    if render and not self_contained:
        write_static(out)
    return out


def _read_notebooks(runs, timeout):
    """Read every notebook first, so one that cannot be read fails alone, before the
    batch. Returns (per run: execution arguments or None, {id(run): source text})."""
    payload, sources = [], {}
    for r in runs:
        try:
            text = Path(r.notebook).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            payload.append(None)
            r.error = f"cannot read {r.notebook}: {type(e).__name__}: {e}"
            continue
        sources[id(r)] = text
        r.description = describe(text)
        unknown = _unknown_parameters(text, r.parameters)
        if unknown:
            payload.append(None)
            r.error = unknown
            continue
        payload.append((text, _here(r.parameters), str(Path(r.notebook).parent),
                        r.timeout if r.timeout is not None else timeout))
    return payload, sources


def _here(parameters: dict) -> dict:
    """``parameters`` with a relative path that exists here (``-p data_set my/bars.csv``)
    made absolute: the kernel runs in the notebook's folder, where it named nothing.
    Only text with a path separator or a file extension: a data set's name stays one."""
    out = {}
    for k, v in parameters.items():
        if isinstance(v, str) and not os.path.isabs(v) and ("/" in v or os.sep in v
                                                             or Path(v).suffix):
            found = existing_path(f"parameter {k}", v)
            v = v if found is None else str(found.resolve())
        out[k] = v
    return out


def parameter_names(nb_json: str):
    """The names a notebook's ``parameters`` cell sets.

    Parameters
    ----------
    nb_json : str
        The notebook's text (``.ipynb`` JSON).

    Returns
    -------
    set of str, None or Ellipsis
        The names; None when it has no cell tagged ``parameters``; ``...`` (any) when
        that cannot be told: not a notebook, a cell that is not plain Python.

    Examples
    --------
    >>> import nbformat
    >>> cell = nbformat.v4.new_code_cell("symbol = 'AAPL'; fast, slow = 20, 100")
    >>> cell.metadata["tags"] = ["parameters"]
    >>> sorted(parameter_names(nbformat.writes(nbformat.v4.new_notebook(cells=[cell]))))
    ['fast', 'slow', 'symbol']
    >>> parameter_names(nbformat.writes(nbformat.v4.new_notebook())) is None
    True
    """
    import ast

    try:
        cells = json.loads(nb_json).get("cells", [])
    except (ValueError, AttributeError):
        return ...   # not a notebook: papermill says so when it runs
    cell = next((c for c in cells if c.get("cell_type") == "code"
                 and "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        return None
    src = cell.get("source", "")
    try:
        tree = ast.parse("".join(src) if isinstance(src, list) else str(src))
    except SyntaxError:
        return ...
    targets = [t for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
               for t in (node.targets if isinstance(node, ast.Assign) else [node.target])]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _unknown_parameters(nb_json: str, parameters: dict) -> str:
    """Why ``parameters`` cannot be given to this notebook ("" when they can): papermill
    injects a name its ``parameters`` cell does not set with a warning only, so a misspelt
    ``-p symbl MSFT`` ran with the default and the index listed ``symbl = MSFT`` beside
    its results; without a parameters cell every value is overwritten by the notebook's
    own code. A cell that is not plain Python is not checked."""
    names = parameter_names(nb_json) if parameters else ...
    if names is ...:
        return ""
    if names is None:
        return (f"parameters {sorted(parameters)} given, but the notebook has no cell tagged "
                "'parameters' to override")
    unknown = sorted(set(parameters) - names)
    if not unknown:
        return ""
    return (f"unknown parameter(s) {unknown}: the notebook's parameters cell sets "
            f"{', '.join(sorted(names)) or 'nothing'} (an unknown name would run with the "
            "defaults and be listed as if it had been set)")


def give_parameters(runs: list[Run], params: dict, where: str = "-p") -> None:
    """``params`` added to each run whose notebook's parameters cell sets them (all of
    them where that cannot be told): ``-p symbol MSFT`` over the whole suite is for the
    notebooks that take a symbol, the others run as they are.

    Parameters
    ----------
    runs : list of Run
        The batch; each run's ``parameters`` is updated in place.
    params : dict
        Name -> value (``-p NAME VALUE``).
    where : str, default "-p"
        How errors name the option.

    Raises
    ------
    ValueError
        If a name is set by no notebook of the batch (a typo), naming those they set.

    Examples
    --------
    >>> runs = [Run(str(REPO / "notebooks" / "00_quickstart.ipynb")),
    ...         Run(str(REPO / "notebooks" / "09_tick_engine.ipynb"))]
    >>> give_parameters(runs, {"symbol": "MSFT"})
    >>> [r.parameters for r in runs]
    [{'symbol': 'MSFT'}, {}]
    """
    if not params:
        return
    takes = {}
    for r in runs:
        try:
            takes[id(r)] = parameter_names(Path(r.notebook).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            takes[id(r)] = ...   # read again, and named, when the batch runs
    def sets(names, k) -> bool:
        return names is ... or (names is not None and k in names)

    known = set().union(*(t for t in takes.values() if t not in (None, ...)))
    for k in params:
        if not any(sets(t, k) for t in takes.values()):
            raise ValueError(f"{where} {k}: no notebook of this batch sets {k!r} in its "
                             f"parameters cell (they set: {', '.join(sorted(known)) or 'none'})")
    for r in runs:
        r.parameters.update({k: v for k, v in params.items() if sets(takes[id(r)], k)})


def _collect(run: Run, result: dict, out, prov, source, opts) -> None:
    """One finished run: write its notebook (in place only if unchanged meanwhile),
    render its report, drop the notebook unless kept. A result that cannot be written
    or rendered fails that run only, and leaves none of an earlier batch's files under
    its name (the index linked the earlier report, other results, as this run's)."""
    dest = None
    try:
        if opts["in_place"]:
            dest = Path(run.notebook)
            if result["status"] == "ok" and _read_or_none(dest) != source:
                result = {**result, "status": "failed", "error": f"{dest} changed on "
                          "disk while it ran: not overwritten (run it again)"}
        else:
            dest = out / f"{run.name}.ipynb"
        _finish(run, result, dest, prov)
        if opts["render"] and run.output and Path(run.output).exists():
            html = Path(run.output).with_suffix(".html")
            render_html(run.output, html, no_input=opts["no_input"],
                        self_contained=opts["self_contained"],
                        # a single file travels alone (e-mailed): no link to a missing index
                        index=opts["index"] and not opts["self_contained"])
            run.html = str(html)
            if not opts["keep_notebooks"]:
                Path(run.output).unlink()
                run.output = ""
    except Exception as e:
        run.status = "failed"
        run.error = (run.error + "; " if run.error else "") + \
            f"writing the output: {type(e).__name__}: {e}"
        if dest is not None and not opts["in_place"]:   # in place: the source notebook
            for f in (dest, dest.with_suffix(".html")):
                if str(f) not in (run.output, run.html) and (f.is_symlink() or f.is_file()):
                    with contextlib.suppress(OSError):
                        f.unlink()


def _execute(todo, done, jobs, scheduler, client) -> None:
    """Execute ``(run, args)`` pairs here (``jobs=1``, no cluster) or on dask, calling
    ``done(run, result)`` as each finishes."""
    if jobs <= 1 and scheduler is None and client is None:
        for run, args in todo:
            done(run, execute_notebook_json(*args))
        return
    if not todo:
        return
    from dask.distributed import Client, LocalCluster, as_completed

    own = cluster = None
    if client is None:
        if scheduler:
            client = own = Client(scheduler)
        else:
            cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = own = Client(cluster)
    try:
        futures = {client.submit(execute_notebook_json, *args, pure=False): run
                   for run, args in todo}
        for fut in as_completed(list(futures)):
            run = futures.pop(fut)
            try:
                result = fut.result()
            except Exception as e:  # the worker died (too often) while running it
                result = _failed(f"worker died: {type(e).__name__}: {e}")
            # forget it at once: a result the client still holds is recomputed when
            # the worker keeping it dies, running the notebook's side effects twice
            fut.release()
            done(run, result)
    finally:
        if own is not None:
            own.close()
        if cluster is not None:
            cluster.close()


def stored_result(nb_json: str, notebook: str = "") -> dict:
    """The outcome of a run taken from a notebook's STORED outputs, without executing it
    (``quantlab report --from-stored``): ``ok`` when every code cell carries an
    execution count and no error output, else ``failed`` saying why. Started/ended are
    the notebook file's modification time, the duration 0. A cell whose outputs were
    stripped before committing (``strip-output``) gets a visible note saying so
    (``NOT_STORED``) instead of passing for a cell without output.

    Parameters
    ----------
    nb_json : str
        The notebook's JSON text.
    notebook : str
        Its path (for the time stamps and the messages).

    Returns
    -------
    dict
        As :func:`execute_notebook_json`: status, error, duration, started, ended, notebook.

    Examples
    --------
    >>> import nbformat
    >>> from quantlab.suite import stored_result
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    >>> stored_result(nbformat.writes(nb))["error"]
    'stored outputs are not current: code cell 0 was never executed (run `make notebooks`)'
    >>> nb.cells[0].execution_count = 1
    >>> stored_result(nbformat.writes(nb))["status"]
    'ok'
    """
    try:
        when = _dt.datetime.fromtimestamp(os.stat(notebook).st_mtime).isoformat(
            timespec="seconds")
    except OSError:
        when = _dt.datetime.now().isoformat(timespec="seconds")
    status, error = "ok", ""
    try:
        cells = json.loads(nb_json).get("cells", [])
    except (ValueError, AttributeError) as e:
        return {**_failed(f"{notebook}: not a notebook ({e})"), "started": when, "ended": when}
    for i, cell in enumerate(c for c in cells if c.get("cell_type") == "code"):
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            status = "failed"
            error = f"stored outputs: code cell {i}: {errors[0].get('ename')}: " \
                    f"{errors[0].get('evalue')}"
            break
        if not cell.get("execution_count"):
            status = "failed"
            error = (f"stored outputs are not current: code cell {i} was never executed "
                     "(run `make notebooks`)")
            break
    if status == "ok":
        nb_json = _mark_not_stored(nb_json)
    return {"status": status, "error": error, "duration": 0.0, "started": when,
            "ended": when, "notebook": nb_json, "source": "stored outputs"}


NOT_STORED = ("output not stored in the committed notebook (tagged strip-output, too big "
              "to commit): `quantlab report` without --from-stored executes it")


def _mark_not_stored(nb_json: str) -> str:
    """Say so where a stored notebook has no outputs because they were stripped before
    committing (cells tagged ``strip-output``), so a report rendered from stored outputs
    never passes a missing figure off as a cell without output. The cell that only loads
    BokehJS (``init_notebook``/``output_notebook``) is left alone: the report loads it."""
    nb = json.loads(nb_json)
    for cell in nb.get("cells", []):
        src = "".join(cell.get("source", ""))
        if (cell.get("cell_type") == "code" and not cell.get("outputs")
                and STRIP_TAG in cell.get("metadata", {}).get("tags", [])
                and "init_notebook" not in src and "output_notebook" not in src):
            cell["outputs"] = [{"output_type": "display_data", "metadata": {}, "data": {
                "text/html": f'<p class="ql-not-stored"><i>{html.escape(NOT_STORED)}</i></p>',
                "text/plain": NOT_STORED}}]
    return json.dumps(nb, indent=1, ensure_ascii=False)


def _read_or_none(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def provenance() -> dict:
    """What a run depended on: versions, commit, data checksum.

    Returns
    -------
    dict
        ``quantlab``, ``git_commit``, ``data_sha256``, ``packages``, ``python``.

    Examples
    --------
    >>> from quantlab.suite import provenance
    >>> sorted(provenance())
    ['data_sha256', 'git_commit', 'packages', 'python', 'quantlab']
    """
    from importlib.metadata import PackageNotFoundError, version

    pkgs = {}
    for name in ("numpy", "pandas", "xarray", "bokeh", "ipywidgets", "papermill", "cython"):
        try:
            pkgs[name] = version(name)
        except PackageNotFoundError:
            pkgs[name] = None
    return {"quantlab": __version__, "git_commit": _git_commit(),
            "data_sha256": checksum(), "packages": pkgs, "python": sys.version.split()[0]}


def expand_grid(runs: list[Run], grid: dict) -> list[Run]:
    """One run per combination of the grid's values (cartesian product), per notebook;
    names carry the parameters (``00_quickstart-symbol=MSFT-window=50``).

    Parameters
    ----------
    runs : list of Run
        The base runs (their parameters and time limits are kept, the grid's added).
    grid : dict
        Parameter name -> non-empty list of values.

    Returns
    -------
    list of Run

    Examples
    --------
    >>> from quantlab.suite import Run, expand_grid
    >>> runs = expand_grid([Run("q.ipynb")], {"symbol": ["MSFT", "IBM"], "window": [50]})
    >>> [(r.name, r.parameters) for r in runs]  # doctest: +NORMALIZE_WHITESPACE
    [('q-symbol=MSFT-window=50', {'symbol': 'MSFT', 'window': 50}),
     ('q-symbol=IBM-window=50', {'symbol': 'IBM', 'window': 50})]
    """
    import itertools
    import re

    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ValueError("a params file maps each parameter to a non-empty list of values")
    grid = check_parameters(grid, "params file")
    out = []
    keys = list(grid)
    for run in runs:
        for combo in itertools.product(*(grid[k] for k in keys)):
            params = {**run.parameters, **dict(zip(keys, combo))}
            label = "-".join(f"{k}={v}" for k, v in zip(keys, combo))
            name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{run.name}-{label}")
            # the run's own time limit (the config's timeout:) holds for each combination
            out.append(Run(run.notebook, name, params, timeout=run.timeout))
    return out


# --------------------------------------------------------------------------- index

def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


_INDEX_TYPES = {"notebook": str, "name": str, "parameters": dict, "status": str,
                "duration": (int, float), "started": str, "ended": str, "error": str,
                "records": dict, "output": str, "html": str, "timeout": (int, float, type(None)),
                "description": str, "source": str, "commit": str}


def read_index(out_dir) -> list[Run]:
    """The runs an earlier batch recorded in ``out_dir/index.json`` ([] when none).

    The file is input like any other: an entry of the wrong shape, or whose name is not
    a plain file name, is refused (ValueError) rather than linked or deleted.

    Parameters
    ----------
    out_dir : path
        The report folder.

    Returns
    -------
    list of Run

    Examples
    --------
    >>> import tempfile
    >>> from quantlab.suite import Run, read_index, write_index
    >>> d = tempfile.mkdtemp()
    >>> read_index(d)
    []
    >>> _ = write_index([Run("a.ipynb", status="ok")], d, {"git_commit": "x", "data_sha256": "y"})
    >>> [(r.name, r.status) for r in read_index(d)]
    [('a', 'ok')]
    """
    path = Path(out_dir) / "index.json"
    if not path.exists():
        return []
    fix = "; fix or delete it, or rerun with --clean"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a quantlab index ({e}){fix}") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: not a quantlab index (expected a list of runs){fix}")
    runs = []
    for i, d in enumerate(data):
        if not isinstance(d, dict):
            raise ValueError(f"{path}: entry {i} is not a run{fix}")
        kw = {k: d[k] for k in _INDEX_TYPES if k in d}
        wrong = [k for k, v in kw.items()
                 if not isinstance(v, _INDEX_TYPES[k]) or isinstance(v, bool)]
        if wrong or "notebook" not in kw or "name" not in kw:
            raise ValueError(f"{path}: entry {i}: missing or mistyped {wrong or ['notebook/name']}{fix}")
        try:
            check_name(kw["name"])
        except ValueError as e:
            raise ValueError(f"{path}: entry {i}: {e}{fix}") from None
        runs.append(Run(**kw))
    return runs


def clean_index(out_dir, log=sys.stderr) -> list[str]:
    """Forget the earlier runs in ``out_dir``: delete the notebooks and reports its index
    lists (only those, only inside ``out_dir``) and the index itself. Nothing else in the
    folder is touched.

    Parameters
    ----------
    out_dir : path
        The report folder.
    log : file
        Where a note goes when the index cannot be read (then only it is deleted).

    Returns
    -------
    list of str
        The deleted paths.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from quantlab.suite import Run, clean_index, write_index
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = write_index([Run("a.ipynb")], d, {"git_commit": "x", "data_sha256": "y"})
    >>> _ = (d / "a.html").write_text("report")
    >>> _ = (d / "notes.txt").write_text("mine")
    >>> sorted(Path(p).name for p in clean_index(d))
    ['a.html', 'index.html', 'index.json']
    >>> sorted(p.name for p in d.iterdir())
    ['notes.txt']
    """
    root = Path(out_dir).resolve()
    try:
        earlier = read_index(out_dir)
    except ValueError as e:  # an unreadable index lists nothing we may delete
        print(f"--clean: {e}: deleting only the index", file=log)
        earlier = []
    names = [f"{r.name}{suffix}" for r in earlier for suffix in (".ipynb", ".html")]
    deleted = []
    for name in names + ["index.html", "index.json"]:
        f = root / name  # names are checked plain file names: f is inside root
        if f.is_symlink() or f.is_file():  # a symlink is removed, never what it points to
            f.unlink()
            deleted.append(str(f))
    return deleted


def _href(html_path: str) -> str:
    """A link to a report inside the index's folder: the file name percent-encoded and
    prefixed ``./``, so neither a ``javascript:`` scheme nor ``%2e%2e%2f`` can come out."""
    return "./" + quote(Path(html_path).name, safe="")


METRIC_COLUMNS = 6  # sortable columns of recorded numbers in the index, at most

# The index's behaviour, plain JavaScript (the page opens offline, from disk): a text
# filter, click-to-sort headers (numbers by their raw value in data-sort), and a side by
# side comparison of the selected runs' recorded values. Text goes in with textContent
# only: names and values are never parsed as markup.
_INDEX_JS = """
const body = document.querySelector("#runs tbody");
const rows = () => [...body.rows];
const cellKey = c => c.dataset.sort !== undefined ? c.dataset.sort : c.innerText.trim();
document.querySelectorAll("#runs th.sort").forEach(th => th.addEventListener("click", () => {
  const i = th.cellIndex, dir = th.dataset.dir === "asc" ? -1 : 1;
  document.querySelectorAll("#runs th").forEach(h => delete h.dataset.dir);
  th.dataset.dir = dir === 1 ? "asc" : "desc";
  rows().sort((a, b) => {
    const x = cellKey(a.cells[i]), y = cellKey(b.cells[i]);
    if (x === "" || y === "") return (x === "") - (y === "");  // blanks last
    const nx = Number(x), ny = Number(y);
    return dir * (isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny);
  }).forEach(r => body.appendChild(r));
}));
const filter = document.getElementById("filter"), shown = document.getElementById("shown");
function applyFilter() {
  const words = filter.value.toLowerCase().split(/\\s+/).filter(w => w);
  let n = 0;
  rows().forEach(r => {
    const text = r.innerText.toLowerCase();
    r.hidden = !words.every(w => text.includes(w));
    n += !r.hidden;
  });
  shown.textContent = n + " of " + rows().length + " runs shown";
}
filter.addEventListener("input", applyFilter);
applyFilter();
document.getElementById("compare").addEventListener("click", () => {
  const picked = rows().filter(r => r.querySelector("input.pick").checked);
  const table = document.getElementById("comparison-table");
  const box = document.getElementById("comparison");
  table.replaceChildren();
  box.hidden = picked.length === 0;
  if (!picked.length) return;
  const keys = [];
  picked.forEach(r => r.querySelectorAll(".rec").forEach(d => {
    if (!keys.includes(d.dataset.key)) keys.push(d.dataset.key);
  }));
  const head = table.createTHead().insertRow();
  ["recorded value", ...picked.map(r => r.dataset.name)].forEach(t => {
    const th = document.createElement("th"); th.textContent = t; head.appendChild(th);
  });
  const tb = table.createTBody();
  keys.forEach(k => {
    const tr = tb.insertRow();
    tr.insertCell().textContent = k;
    picked.forEach(r => {
      const d = [...r.querySelectorAll(".rec")].find(d => d.dataset.key === k);
      tr.insertCell().textContent = d ? d.querySelector(".v").textContent : "";
    });
  });
});
"""

_INDEX_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .4em .7em;
vertical-align: top; text-align: left; } tr.failed { background: #fdd; }
th.sort { cursor: pointer; } th[data-dir=asc]::after { content: " \\25B2"; }
th[data-dir=desc]::after { content: " \\25BC"; } td.num { text-align: right; }
.err { color: #900; font-size: .85em; max-width: 40em; } .meta { color: #555; }
.desc { color: #444; font-size: .85em; max-width: 36em; } .controls { margin: 1em 0; }
#filter { width: 24em; padding: .3em; } #comparison { margin-top: 2em; }
"""


def _metric_columns(runs: list[Run]) -> list[str]:
    """Record keys shown as sortable columns: numbers recorded by two runs or more, or
    named after a known metric; in order of appearance, at most METRIC_COLUMNS."""
    seen: dict[str, int] = {}
    for r in runs:
        for k, v in r.records.items():
            v = _number(v)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                seen[k] = seen.get(k, 0) + 1
    keys = [k for k, n in seen.items() if n > 1 or _metric_name(k) in fmt.KINDS]
    return keys[:METRIC_COLUMNS]


def _index_row(r: Run, metrics: list[str], out: Path, commit: str) -> str:
    """One run of the index as a table row (every text escaped); its report is linked
    only while it is in ``out`` (an earlier batch's page deleted since stays listed), its
    commit shown where it is not this batch's ``commit``."""
    e = html.escape
    there = bool(r.html) and (out / Path(r.html).name).is_file()
    link = f'<a href="{e(_href(r.html))}">{e(r.name)}</a>' if there else e(r.name)
    desc = f'<div class="desc">{e(r.description)}</div>' if r.description else ""
    params = "<br>".join(f"{e(str(k))} = {e(json.dumps(v, default=str))}"
                         for k, v in r.parameters.items())
    recs = "".join(f'<div class="rec" data-key="{e(str(k))}"><span class="k">{e(str(k))}'
                   f'</span>: <span class="v">{e(_fmt(v, str(k)))}</span></div>'
                   for k, v in r.records.items())
    gone = (f'<div class="err">its report {e(Path(r.html).name)} is no longer in this '
            f'folder: run it again, or rebuild with --clean</div>'
            if r.html and not there else "")
    status = e(r.status) + (f'<div class="err">{e(r.error)}</div>' if r.error else "") + gone
    # an earlier batch's run was made by another commit, or one not recorded then
    made = (f'<div class="desc">commit {e(r.commit or "not recorded")}</div>'
            if r.commit != commit else "")
    took = (f'<td class="num" data-sort="-1">{e(r.source)}</td>' if r.source != "executed"
            else f'<td class="num" data-sort="{float(r.duration)!r}">{float(r.duration):.1f} s</td>')
    cells = []
    for k in metrics:
        v = _number(r.records.get(k))
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
        cells.append(f'<td class="num" data-sort="{e(json.dumps(float(v))) if ok else ""}">'
                     f'{e(_fmt(v, k)) if k in r.records else ""}</td>')
    return (f'<tr class="{e(r.status)}" data-name="{e(r.name)}">'
            f'<td><input type="checkbox" class="pick" aria-label="select {e(r.name)}"></td>'
            f'<td data-sort="{e(r.name)}">{link}{desc}</td><td>{params or "defaults"}</td>'
            f'<td>{status}</td><td>{e(r.started)}{made}</td>{took}'
            f'{"".join(cells)}<td>{recs}</td></tr>')


def write_index(runs: list[Run], out_dir, prov: dict | None = None) -> Path:
    """Write ``index.html`` (and ``index.json``) listing every run of the folder.

    Each run with its description (the notebook's first sentence), parameters, status,
    duration, its recorded values formatted by :mod:`quantlab.fmt` (the common numeric
    ones also as sortable columns) and the batch's provenance; a text filter, sorting by
    any column and a side by side comparison of selected runs (plain JavaScript, offline).
    Runs recorded by earlier batches in the same folder stay listed (a run of the same
    name replaces its entry). Every text is HTML-escaped and every link is a relative
    path inside ``out_dir``; both files are replaced atomically.

    Parameters
    ----------
    runs : list of Run
        This batch's runs.
    out_dir : path
        The report folder.
    prov : dict, optional
        ``git_commit`` and ``data_sha256`` shown on the page (default: computed).

    Returns
    -------
    Path
        ``out_dir/index.html``.

    Examples
    --------
    >>> import tempfile
    >>> from quantlab.suite import Run, write_index
    >>> run = Run("q.ipynb", status="ok", records={"sharpe_ratio": 1.5})
    >>> page = write_index([run], tempfile.mkdtemp(), {"git_commit": "abc", "data_sha256": "f00"})
    >>> page.name, "1.50" in page.read_text()
    ('index.html', True)
    """
    if prov is None:
        prov = {"git_commit": _git_commit(), "data_sha256": checksum()}
    # earlier batches first (minus the runs this one redoes), then this batch in order
    names = {r.name for r in runs}
    commit = str(prov["git_commit"])
    for r in runs:   # the header's commit is this batch's; earlier runs keep their own
        r.commit = r.commit or commit
    merged = [r for r in read_index(out_dir) if r.name not in names] + list(runs)
    e = html.escape
    metrics = _metric_columns(merged)
    out = Path(out_dir)
    rows = [_index_row(r, metrics, out, commit) for r in merged]
    heads = "".join(f'<th class="sort num">{e(k)}</th>' for k in metrics)
    n_failed = sum(r.status != "ok" for r in merged)
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>quantlab reports</title>
<style>{_INDEX_CSS}</style></head><body>
<h1>quantlab reports</h1>
<p class="meta">quantlab {e(__version__)} · commit {e(str(prov["git_commit"]))} ·
data sha256 {e(str(prov["data_sha256"])[:16])} · generated {e(_dt.datetime.now().isoformat(timespec='seconds'))}
· {len(merged) - n_failed} ok, {n_failed} failed</p>
<div class="controls"><input id="filter" type="search" aria-label="filter runs"
 placeholder="filter: name, description, parameters, values"> <button id="compare" type="button">compare selected</button>
 <span id="shown" class="meta"></span></div>
<table id="runs"><thead><tr><th title="select runs to compare"></th><th class="sort">run</th>
<th class="sort">parameters</th><th class="sort">status</th><th class="sort">started</th>
<th class="sort num">duration</th>{heads}<th>recorded values</th></tr></thead><tbody>
{chr(10).join(rows)}
</tbody></table>
<div id="comparison" hidden><h2>Selected runs side by side</h2>
<table id="comparison-table"></table></div>
<script>{_INDEX_JS}</script>
</body></html>
"""
    out.mkdir(parents=True, exist_ok=True)
    # index.json first: it is what the next batch merges with
    _atomic_write(out / "index.json", json.dumps([asdict(r) for r in merged], indent=1,
                                                 default=str))
    path = out / "index.html"
    _atomic_write(path, page)
    return path
