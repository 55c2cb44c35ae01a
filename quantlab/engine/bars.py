"""Ticks -> time bars: the tick engine's quotes aggregated into OHLCV bars a deployment
trades on.

A bar of frequency ``freq`` covers [start, start + freq) (pandas' ``resample`` with its
defaults: closed and labelled on the left) and is stamped with its start. Its price is
the quote mid (bid + ask) / 2; open/high/low/close are the first, highest, lowest and
last mid of its ticks, volume the sum of the quoted sizes (bid_size + ask_size). A bar
is closed -- handed on -- when a tick of a later bar arrives (or at :meth:`flush`). An
asset without a tick in a bar has a missing (all-NaN) bar, as in quantlab Datasets.
A tick arriving for a bar already handed on (late) cannot change it: it is dropped, and
counted per asset with its volume (``late_ticks``, ``late_volume``; the engine's
``get_performance_stats``), and the first one of a run is logged as a warning on the
``quantlab.engine`` logger, so lost volume is never silent.
A locked quote (bid == ask) is a quote: locked markets happen (across venues, for an
instant) and its mid is its price, so it goes into the bar; a crossed one (bid > ask)
is no valid quote and is skipped.
Within a bar, ticks are taken in timestamp order (ties in arrival order), as ``resample``
does. Symbol ids and timestamps are never rounded or truncated (1.5 is no symbol), and a
tick stamped more than ``max_skew_s`` after the newest one accepted before it (a corrupt
far-future stamp) is skipped, as the engine's ``clock_skew`` rule does: accepted, it would
close the open bars early and make every later tick late. As in the engine, the third such
tick in a row, each within ``max_skew_s`` of the one before, is taken: the feed's clock
moved on after a quiet spell longer than ``max_skew_s`` (every later tick was skipped).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import xarray as xr

from quantlab import _validate
from quantlab.data import asset_names
from quantlab._kernels import ticks as _k

__all__ = ["BarAggregator"]

_UNITS = {"s": 1, "ms": 10 ** 3, "us": 10 ** 6, "ns": 10 ** 9}
_FIELDS = ("symbol_id", "bid_price", "ask_price", "bid_size", "ask_size", "timestamp")
_NONE = np.iinfo(np.int64).min       # no tick accepted yet
log = logging.getLogger("quantlab.engine")


# datetime64 units, coarsest first: a cast down this list can overflow int64
_DT_UNITS = ("Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as")


def _datetime_ints(v: np.ndarray, unit: str) -> np.ndarray:
    """A datetime64 array as int64 counts of ``unit`` since the epoch; NaT, dates before
    1970 and dates beyond int64 in ``unit`` are negative (rejected). NumPy's cast to a
    finer unit wraps silently: 2608-08-01 in µs became 2024-01-11 in ns."""
    out = v.astype(f"datetime64[{unit}]").view(np.int64)
    src = np.datetime_data(v.dtype)[0]
    if src in _DT_UNITS and _DT_UNITS.index(src) < _DT_UNITS.index(unit):
        last = np.datetime64(np.iinfo(np.int64).max, unit).astype(v.dtype)  # floored
        # one pass: as uint64, NaT and dates before 1970 are beyond ``last`` too
        wrapped = v.view(np.uint64) > last.view(np.uint64)
        if wrapped.any():
            out[wrapped] = -1     # astype copied: v is untouched
    return out


def _timestamps(values, unit: str, where: str):
    """A timestamp column by the one rule of the engine's paths: each value as the same
    value in a tick dict. Numbers are counts of ``unit`` already: returned as they are
    (the caller's integer path). Datetimes -- datetime64 of any unit, a time zone or Arrow's
    -- become int64 counts of ``unit`` since the epoch (UTC), whole (``_datetime_ints``).
    Text, bytes and objects go value by value through the tick dicts' own parser
    (``_k.parse_dicts``: digit text is a number of ``unit``, ISO 8601 text and datetime
    objects are converted, naive ones taken as UTC; anything else is -1, a rejected
    tick); a column of datetime objects alone through pandas, which reads them alike
    (tests/test_probe_s58_ticks.py checks it) 20x faster (one zone). ``where`` names the
    column in errors."""
    dtype = getattr(values, "dtype", None)
    if isinstance(dtype, pd.DatetimeTZDtype):
        values = pd.DatetimeIndex(values).tz_convert("UTC").tz_localize(None)
    elif isinstance(dtype, pd.ArrowDtype) and dtype.kind == "M":
        # Arrow keeps UTC instants: dropping the zone is the UTC time. NumPy would
        # get Timestamp objects (3 s per million)
        import pyarrow as pa    # loaded: the column is Arrow's

        arr = pa.array(getattr(values, "array", values))
        values = arr.cast(pa.timestamp(arr.type.unit)).to_numpy(zero_copy_only=False)
    elif isinstance(dtype, pd.api.extensions.ExtensionDtype) and \
            pd.api.types.is_numeric_dtype(dtype):
        return values           # nullable numbers: NA is a rejected tick (_real_column)
    v = np.asarray(values)
    if v.dtype.kind == "M":
        return _datetime_ints(v, unit)
    if v.dtype.kind not in "OUS":
        return values
    if v.ndim != 1:   # a 2-D column's rows were parsed as values: one -1 per row
        raise ValueError(f"{where} must be one-dimensional, got shape {v.shape}")
    obj = v.astype(object)
    if pd.api.types.infer_dtype(obj, skipna=True) == "datetime":
        try:   # naive ones as UTC, zones converted: the dict rule
            t = pd.DatetimeIndex(pd.to_datetime(obj, utc=True)).tz_localize(None)
            return _datetime_ints(t.to_numpy(), unit)
        except (ValueError, OverflowError):   # OutOfBoundsDatetime: value by value
            pass
    return _k.parse_dicts([{"timestamp": x} for x in obj], 1.0, 10 ** 9 // _UNITS[unit])[5]


def _whole(values, unit: str) -> np.ndarray:
    """Symbol ids or timestamps as int64: integers as they are (uint64 beyond int64 wraps
    negative: skipped), datetimes in ``unit``; a float with a fraction, NaN or inf is -1
    (skipped), never truncated into another symbol or bar."""
    v = np.asarray(values)
    if v.dtype.kind == "M":
        return _datetime_ints(v, unit)      # NaT: negative
    if v.dtype.kind in "iub":
        return v.astype(np.int64)
    return _k.quantise(np.ascontiguousarray(v, dtype=np.float64).ravel(), 1.0, True)


class BarAggregator:
    """Aggregate tick columns into bars.

    ``freq``: a pandas frequency ("1min", "5s", "1D"); ``symbols``: the asset name of
    each symbol_id (a list: id = position; or a dict); ``unit``: the timestamps' unit
    ("s", "ms", "us", "ns"; the engine's ``timestamp_unit``). Ticks whose quote is not a
    valid one (NaN or non-positive prices, bid > ask, a negative or NaN size or both sizes
    0, as the engine's ``bad_size``, unknown symbol, a timestamp that is negative, beyond
    pandas' datetimes or more than ``max_skew_s`` ahead) are skipped and
    counted in ``skipped`` (an unknown symbol's first tick logged as a warning, its ids in
    ``unknown_symbols``); ticks of a bar already closed are dropped and counted in
    ``late`` (in all), ``late_ticks`` and ``late_volume`` (per asset), the first one
    logged as a warning. A locked quote (bid == ask) is taken (its mid is its price).

    Parameters
    ----------
    freq : str
        A fixed pandas frequency, a whole number of ``unit``.
    symbols : list or dict
        Asset name per symbol_id.
    unit : {"s", "ms", "us", "ns"}
        The timestamps' unit.
    max_skew_s : float
        Seconds (>= 0; inf: no limit): a tick stamped further ahead of the newest tick
        accepted before it is skipped (the engine's ``risk.max_clock_skew_s``).
    tick_size : float, optional
        The engine's tick size (currency): a quote of no whole tick or of 2^62 ticks
        or more (a corrupt 1e200) is skipped, as the engine's ``bad_price`` (the bar
        took the price the engine refused). None: prices above 0 are taken.
    after : datetime64, optional
        The last bar handed on before this aggregator (a resumed deployment's, or its
        history's): ticks of it and earlier bars are late. Without it, a feed re-sending
        ticks from before a restart made bars the deployment refused as out of order,
        which stopped it.

    Examples
    --------
    >>> from quantlab.engine import BarAggregator
    >>> agg = BarAggregator("1s", ["AAA", "BBB"], unit="us")
    >>> ticks = {"symbol_id": [0, 1, 0, 0], "bid_price": [10.0, 20.0, 10.2, 10.4],
    ...          "ask_price": [10.2, 20.2, 10.4, 10.6], "bid_size": [1, 1, 1, 1],
    ...          "ask_size": [1, 1, 1, 1], "timestamp": [0, 10, 500_000, 1_200_000]}
    >>> bars = agg.add(ticks)        # the tick at 1.2 s closes the first second's bar
    >>> len(bars), bars[0]["close"].values.round(2).tolist(), agg.skipped
    (1, [10.3, 20.1], 0)
    """

    def __init__(self, freq: str, symbols, unit: str = "us", max_skew_s: float = 2592000.0,
                 tick_size: float | None = None, after=None):
        unit = _validate.choice("unit", unit, tuple(_UNITS))
        max_skew_s = _validate.number("max_skew_s", max_skew_s, 0, finite=False)
        try:
            step = pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
        except (ValueError, TypeError):
            step = pd.NaT
        if pd.isna(step) or step <= pd.Timedelta(0):     # None gave NaT; '0min', '-1D'
            raise ValueError(f"freq must be a fixed pandas frequency such as '1min' or "
                             f"'1D', got {freq!r}")
        per = _UNITS[unit]
        width = step.value * per / 10 ** 9        # bar width in timestamp units
        if width < 1 or width != int(width):
            raise ValueError(f"freq {freq!r} is not a whole number of {unit}")
        self.freq, self.unit, self._width = freq, unit, int(width)
        self._tick = None if tick_size is None else \
            _validate.number("tick_size", tick_size, 0, lo_open=True)
        self._skew = max_skew_s * per              # float: inf compares as no limit
        self._max_ts = np.iinfo(np.int64).max // (10 ** 9 // per)   # pandas' last datetime
        self._newest = _NONE                       # newest accepted timestamp
        self._skew_ts = self._skew_n = 0   # the last skipped far stamp, how many agree in a row
        if isinstance(symbols, (str, bytes)) or not isinstance(symbols, (Mapping, Iterable)):
            raise TypeError(f"symbols must be a list of asset names (symbol_id = position) "
                            f"or a dict symbol_id -> name, got {type(symbols).__name__}")
        names = dict(symbols) if isinstance(symbols, Mapping) else dict(enumerate(symbols))
        if not names:
            raise ValueError("symbols is empty: give the asset name of each symbol_id")
        # a key 1.5 was truncated to symbol 1, a missing name became the asset 'None';
        # digit strings are ids (the keys of a JSON object)
        self.symbols = {_validate.integer("symbols: symbol_id", int(k) if isinstance(k, str)
                                          and k.strip().lstrip("+-").isdigit() else k): str(v)
                        for k, v in names.items()}
        for k, v in names.items():
            if v is None or str(v).strip() == "":
                raise ValueError(f"symbols: symbol_id {k!r} has no asset name ({v!r})")
        first: dict = {}   # 'A,B,A' traded the third symbol's ticks as A's bars
        for k, v in sorted(self.symbols.items()):
            if first.setdefault(v, k) != k:
                raise ValueError(f"symbols: symbol_ids {first[v]} and {k} are both asset "
                                 f"{v!r}; give each symbol_id its own asset name")
        self.assets = asset_names("symbols", list(self.symbols.values()))
        self._ids = np.array(sorted(self.symbols), dtype=np.int64)
        self._cols = np.array([self.assets.index(self.symbols[i]) for i in self._ids.tolist()])
        self._pending = None          # the open bar's ticks: (bucket, col, mid, vol)
        self._last_closed = None      # bucket of the last bar handed on
        if after is not None:   # the bar stamped at or before it (floored) was handed on
            self._last_closed = int(_datetime_ints(np.array([after], dtype="datetime64[ns]"),
                                                   unit)[0]) // self._width
        self.skipped = 0
        self.unknown_symbols: set = set()   # symbol_ids seen that no asset is named for
        self.late = 0
        self._late_n = np.zeros(len(self.assets), dtype=np.int64)   # per asset
        self._late_v = np.zeros(len(self.assets))

    @property
    def late_ticks(self) -> dict:
        """Ticks dropped as late (their bar already handed on), per asset that had any.

        Examples
        --------
        >>> from quantlab.engine import BarAggregator
        >>> agg = BarAggregator("1min", ["A"], unit="s")
        >>> tick = {"symbol_id": [0], "bid_price": [10.0], "ask_price": [10.0],
        ...         "bid_size": [2], "ask_size": [3], "timestamp": [61]}
        >>> _ = agg.add(tick)
        >>> _ = agg.add(dict(tick, timestamp=[125]))     # closes the bar of minute 1
        >>> _ = agg.add(dict(tick, timestamp=[90]))      # minute 1 again: late
        >>> agg.late_ticks, agg.late_volume
        ({'A': 1}, {'A': 5.0})
        """
        return {a: int(n) for a, n in zip(self.assets, self._late_n) if n}

    @property
    def late_volume(self) -> dict:
        """The quoted sizes (bid_size + ask_size) of the late ticks, per asset that had any.

        Examples
        --------
        See :attr:`late_ticks`.
        """
        return {a: float(v) for a, v, n in zip(self.assets, self._late_v, self._late_n) if n}

    def _unknown(self, sym) -> None:
        """Log each symbol_id not in ``symbols`` once (its ticks were left out of the
        bars silently, the deployment trading without them)."""
        new = sorted(set(sym.tolist()) - self.unknown_symbols)   # valid ids (>= 0)
        if new:
            self.unknown_symbols.update(new)
            log.warning("bars: ticks of symbol_id(s) %s, not in symbols (%s): left out of "
                        "the bars; give every traded symbol_id an asset name",
                        ", ".join(map(str, new[:10])) + (" ..." if len(new) > 10 else ""),
                        ", ".join(f"{k}: {v}" for k, v in list(self.symbols.items())[:10]))

    def _drop_late(self, col, vol, bucket) -> None:
        """Count the late ticks (their asset columns, sizes and bars); the first one of
        this aggregator logged as a warning."""
        first = self.late == 0
        self.late += col.size
        np.add.at(self._late_n, col, 1)
        np.add.at(self._late_v, col, vol)
        if first:
            a = self.assets[int(col[0])]
            log.warning("bars: %d tick(s) arrived for a bar already handed on (late; the "
                        "first of asset %r for the bar of %s, bars up to %s handed on): "
                        "dropped with their volume; counted per asset in late_ticks / "
                        "late_volume (engine: get_performance_stats)", col.size, a,
                        pd.Timestamp(int(bucket[0]) * self._width, unit=self.unit),
                        pd.Timestamp(int(self._last_closed) * self._width, unit=self.unit))

    def check_grid(self, times, what: str = "history") -> None:
        """Refuse bars that do not start on this aggregator's bar edges (whole multiples
        of ``freq`` since 1970-01-01 UTC, as pandas' ``resample`` bins): the bars made
        from ticks would not continue them (hourly bars of a 09:30 session stamped at
        :30 went on with bars at :00, the first of them half a bar), a ValueError naming
        the first such bar.

        Parameters
        ----------
        times : array-like of datetime64
            Bar start times (naive UTC, or zoned).
        what : str, default "history"
            What the message calls them.

        Raises
        ------
        ValueError
            If a time is not a bar edge.

        Examples
        --------
        >>> import pandas as pd
        >>> from quantlab.engine import BarAggregator
        >>> agg = BarAggregator("1h", ["A"])
        >>> agg.check_grid(pd.date_range("2024-01-02 14:00", periods=3, freq="h"))
        >>> agg.check_grid(pd.date_range("2024-01-02 14:30", periods=3, freq="h"))
        Traceback (most recent call last):
        ...
        ValueError: history: its bar at 2024-01-02 14:30:00 (UTC) does not start a 1h bar of the ticks (bins of 1h from 1970-01-01 00:00 UTC, as pandas' resample): the bars made from ticks would not continue it; resample it to those bins, or trade a bar size it starts on
        """
        t = pd.DatetimeIndex(np.atleast_1d(np.asarray(times)) if not isinstance(
            times, pd.DatetimeIndex) else times)
        if t.tz is not None:
            t = t.tz_convert("UTC").tz_localize(None)
        off = np.flatnonzero(t.as_unit("ns").asi8 % (self._width * (10 ** 9 // _UNITS[
            self.unit])))
        if off.size:
            raise ValueError(f"{what}: its bar at {t[off[0]]} (UTC) does not start a "
                             f"{self.freq} bar of the ticks (bins of {self.freq} from "
                             "1970-01-01 00:00 UTC, as pandas' resample): the bars made from "
                             "ticks would not continue it; resample it to those bins, or "
                             "trade a bar size it starts on")

    def add(self, columns) -> list:
        """Ticks in (a mapping of the engine's columns: symbol_id, bid_price, ask_price,
        bid_size, ask_size, timestamp); the bars they close out, oldest first (each a
        Dataset row with a scalar ``time`` and an ``asset`` dim).

        Parameters
        ----------
        columns : mapping of arrays
            The engine's tick columns (prices in currency; timestamps read as the
            engine reads them, the ``quantlab.engine`` docstring: numbers in ``unit``,
            datetimes and ISO 8601 text converted to it).

        Returns
        -------
        list of xr.Dataset

        Examples
        --------
        >>> from quantlab.engine import BarAggregator
        >>> agg = BarAggregator("1min", {7: "AAA"}, unit="s")
        >>> tick = {"symbol_id": [7], "bid_price": [10.0], "ask_price": [10.2],
        ...         "bid_size": [5], "ask_size": [3], "timestamp": [30]}
        >>> agg.add(tick)        # the bar is still open
        []
        >>> bar = agg.add(dict(tick, timestamp=[90]))[0]
        >>> str(bar.time.values), float(bar["volume"].sel(asset="AAA"))
        ('1970-01-01T00:00:00.000000000', 8.0)
        """
        lengths = {f: np.size(columns[f]) for f in _FIELDS}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"BarAggregator.add: columns of different lengths {lengths}")
        sym = _whole(columns["symbol_id"], self.unit)
        bid = np.asarray(columns["bid_price"], dtype=float)
        ask = np.asarray(columns["ask_price"], dtype=float)
        bsz = np.asarray(columns["bid_size"], dtype=float)
        asz = np.asarray(columns["ask_size"], dtype=float)
        size = bsz + asz
        ts = _whole(_timestamps(columns["timestamp"], self.unit,
                                "BarAggregator.add: column 'timestamp'"), self.unit)
        known = np.isin(sym, self._ids)
        if not known.all():   # a NaN, fractional or negative id (-1 here) is no id at all
            self._unknown(sym[~known & (sym >= 0)])
        col = np.full(sym.shape, -1, dtype=np.int64)
        col[known] = self._cols[np.searchsorted(self._ids, sym[known])]
        with np.errstate(invalid="ignore"):
            # sizes as the engine's bad_size: a side below 0 (bid_size -1000 with ask_size
            # 1010 passed as 10) or none at all; the engine rejected the tick, the bar took
            # its price and volume
            ok = (col >= 0) & (bid > 0) & (ask >= bid) & np.isfinite(ask) & \
                np.isfinite(size) & (bsz >= 0) & (asz >= 0) & (size > 0) & (ts >= 0) & \
                (ts <= self._max_ts)
        if self._tick is not None:   # the engine's bad_price: 0 < rint(price/tick) < 2^62
            for px in (bid, ask):
                ok &= _k.quantise(np.ascontiguousarray(px).ravel(), self._tick) > 0
        ok &= ~self._skewed(ts, ok)
        self.skipped += int((~ok).sum())
        if ok.any():
            self._newest = max(self._newest, int(ts[ok].max()))
        bucket = ts[ok] // self._width
        new = self._on_time((bucket, col[ok], ts[ok], (bid[ok] + ask[ok]) / 2, size[ok]))
        if self._pending is not None:
            new = tuple(np.concatenate([p, n]) for p, n in zip(self._pending, new))
        if new[0].size == 0:
            self._pending = None
            return []
        latest = new[0].max()
        done = new[0] < latest
        self._pending = tuple(a[~done] for a in new)
        return self._bars(tuple(a[done] for a in new))

    def _on_time(self, ticks: tuple) -> tuple:
        """``ticks`` (bucket, col, ts, mid, vol) less those of a bar already handed on,
        which are counted late (``_drop_late``)."""
        if self._last_closed is None:
            return ticks
        keep = ticks[0] > self._last_closed
        if keep.all():
            return ticks
        self._drop_late(ticks[1][~keep], ticks[4][~keep], ticks[0][~keep])
        return tuple(a[keep] for a in ticks)

    def _skewed(self, ts, ok) -> np.ndarray:
        """The ``ok`` ticks stamped more than max_skew after the newest tick accepted
        before them (across batches), but for the ``SKEW_CONFIRM``-th of such ticks in a
        row that agree (each within max_skew of the one before), which is taken, as the
        engine takes it. One vectorised pass when no tick is ahead of all before it,
        else tick by tick."""
        skewed = np.zeros(ts.shape, dtype=bool)
        if self._skew == np.inf or not ok.any():
            return skewed
        before = np.maximum.accumulate(np.r_[self._newest, np.where(ok, ts, _NONE)[:-1]])
        if not (ok & (before != _NONE) & (ts - np.maximum(before, 0) > self._skew)).any():
            self._skew_n = 0
            return skewed   # none ahead of every tick before it: none skewed
        newest = self._newest   # else tick by tick, as the engine (its runs of far stamps)
        for i in np.flatnonzero(ok):
            t = int(ts[i])
            if newest != _NONE and t - newest > self._skew:
                agree = self._skew_n > 0 and abs(t - self._skew_ts) <= self._skew
                self._skew_n, self._skew_ts = (self._skew_n + 1 if agree else 1), t
                if self._skew_n < _k.SKEW_CONFIRM:
                    skewed[i] = True
                    continue
            self._skew_n = 0
            newest = max(newest, t)
        return skewed

    def open_bar(self) -> dict | None:
        """The open bar's ticks (not yet in a bar), to carry over a restart
        (:meth:`reopen`): ``asset``, ``timestamp`` (in ``unit``), ``mid``, ``volume``
        arrays and ``unit``; None when no bar is open. Four ticks per asset stand for its
        own: the first (with all the volume), the high and the low at the first's time,
        the last; they make the same bar with any later ticks (a bar reads the first and
        last by time, ties by arrival, the extremes and the sum), in a few bytes.

        Examples
        --------
        >>> from quantlab.engine import BarAggregator
        >>> agg = BarAggregator("1min", ["AAA"], unit="s")
        >>> _ = agg.add({"symbol_id": [0], "bid_price": [10.0], "ask_price": [10.2],
        ...              "bid_size": [5], "ask_size": [3], "timestamp": [30]})
        >>> t = agg.open_bar()
        >>> t["timestamp"].tolist(), t["mid"].tolist(), t["volume"].tolist(), t["unit"]
        ([30, 30, 30, 30], [10.1, 10.1, 10.1, 10.1], [8.0, 0.0, 0.0, 0.0], 's')
        """
        if self._pending is None or self._pending[0].size == 0:
            return None
        _, col, first, last, o, h, lo, c, v = self._summarise(self._pending)
        zero = np.zeros(col.size)
        return {"asset": np.repeat(np.array(self.assets)[col], 4),
                "timestamp": np.column_stack([first, first, first, last]).ravel(),
                "mid": np.column_stack([o, h, lo, c]).ravel(),
                "volume": np.column_stack([v, zero, zero, zero]).ravel(),
                "unit": self.unit}

    def reopen(self, ticks: dict) -> int:
        """Take back the open bar's ticks of the aggregator before a restart
        (:meth:`open_bar`), ahead of the ticks to come: a resumed feed builds that bar
        from all its ticks, not only those after the restart (its open, high, low and
        volume differed). Ticks of a bar already handed on (``after``) are late.

        Parameters
        ----------
        ticks : dict
            :meth:`open_bar`'s arrays.

        Returns
        -------
        int
            The ticks taken back.

        Raises
        ------
        ValueError
            If their unit or an asset is not this aggregator's.

        Examples
        --------
        >>> from quantlab.engine import BarAggregator
        >>> tick = {"symbol_id": [0], "bid_price": [10.0], "ask_price": [10.2],
        ...         "bid_size": [5], "ask_size": [3], "timestamp": [30]}
        >>> before = BarAggregator("1min", ["AAA"], unit="s")
        >>> _ = before.add(tick)
        >>> after = BarAggregator("1min", ["AAA"], unit="s")
        >>> after.reopen(before.open_bar())
        4
        >>> bar = after.add(dict(tick, bid_price=[11.0], ask_price=[11.2], timestamp=[50]))
        >>> [float(b["open"][0]) for b in after.flush()]      # the tick before the restart
        [10.1]
        """
        if str(ticks["unit"]) != self.unit:
            raise ValueError(f"the open bar's ticks are stamped in {ticks['unit']}, this "
                             f"aggregator's in {self.unit}")
        names = [str(a) for a in np.asarray(ticks["asset"]).tolist()]
        unknown = sorted(set(names) - set(self.assets))
        if unknown:
            raise ValueError(f"the open bar holds ticks of assets {unknown} that are not "
                             f"among {self.assets}")
        ts = np.asarray(ticks["timestamp"], dtype=np.int64)
        where = {a: i for i, a in enumerate(self.assets)}
        back = self._on_time((ts // self._width,
                              np.array([where[a] for a in names], dtype=np.int64), ts,
                              np.asarray(ticks["mid"], dtype=float),
                              np.asarray(ticks["volume"], dtype=float)))
        if self._pending is not None:
            back = tuple(np.concatenate([b, p]) for b, p in zip(back, self._pending))
        self._pending = back if back[0].size else None
        if back[0].size:
            self._newest = max(self._newest, int(back[2].max()))
        return int(back[0].size)

    def flush(self) -> list:
        """Close the open bar (end of a replay or a session).

        Examples
        --------
        >>> from quantlab.engine import BarAggregator
        >>> agg = BarAggregator("1min", ["AAA"], unit="s")
        >>> _ = agg.add({"symbol_id": [0], "bid_price": [10.0], "ask_price": [10.2],
        ...              "bid_size": [5], "ask_size": [3], "timestamp": [30]})
        >>> [float(b["open"][0]) for b in agg.flush()], agg.flush()
        ([10.1], [])
        """
        pending, self._pending = self._pending, None
        return [] if pending is None else self._bars(pending)

    def _summarise(self, ticks) -> tuple:
        """Per (bucket, asset) that has ticks, in that order: bucket, col, the first and
        last tick's timestamps, open, high, low, close and volume; a bar's ticks in
        timestamp order, ties in arrival order (open = first, close = last)."""
        bucket, col, ts, mid, vol = ticks
        order = np.lexsort((np.arange(bucket.size), ts, col, bucket))
        bucket, col, ts, mid, vol = (a[order] for a in (bucket, col, ts, mid, vol))
        key = bucket * len(self.assets) + col
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        last = np.r_[starts[1:], key.size] - 1
        return (bucket[starts], col[starts], ts[starts], ts[last], mid[starts],
                np.maximum.reduceat(mid, starts), np.minimum.reduceat(mid, starts),
                mid[last], np.add.reduceat(vol, starts))

    def _bars(self, ticks) -> list:
        """One Dataset row per bucket that has ticks, in time order (:meth:`_summarise`)."""
        if ticks[0].size == 0:
            return []
        bucket, col, _, _, o, h, lo, c, v = self._summarise(ticks)
        out = []
        for b in np.unique(bucket):
            rows = bucket == b
            fields = {}
            for name, val in (("open", o), ("high", h), ("low", lo), ("close", c),
                              ("volume", v)):
                a = np.full(len(self.assets), np.nan)
                a[col[rows]] = val[rows]
                fields[name] = ("asset", a)
            t = pd.Timestamp(int(b) * self._width, unit=self.unit)
            out.append(xr.Dataset(fields, coords={"time": t, "asset": self.assets}))
        self._last_closed = int(bucket.max())
        return out
