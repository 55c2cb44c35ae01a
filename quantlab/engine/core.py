"""``TickEngine``: the Cython tick core (``quantlab._kernels.ticks``) behind a Python
object, and the parsing of its input columns and dicts. Tick semantics and the int64
bounds: see ``cython_kernels/ticks.pyx``; feeds and replay: ``quantlab.engine.feeds``."""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import numpy as np
import pandas as pd

from quantlab import _validate as _v
from quantlab._kernels import ticks as _k
from quantlab.engine.bars import BarAggregator, _timestamps
from quantlab.engine.config import _core_params, configure_logging, load_config
from quantlab.engine.reference import FIELDS, to_int, to_ticks
from quantlab.engine.results import TickResult

__all__ = ["TickEngine", "FEED_REJECTS"]

log = logging.getLogger("quantlab.engine")

# reasons a feed message is dropped (TickEngine.feed_rejects; quantlab.engine.feeds)
FEED_REJECTS = ("not_json", "not_utf8", "oversized", "wrong_type")


def _column(values, convert, tick_size=None, integral=False) -> np.ndarray:
    """Vectorised parse of one field; per-element (the oracle's own functions) only when
    the batch holds something non-numeric. ``integral`` (symbol ids, timestamps): values
    with a fraction are -1 (rejected), never rounded."""
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        if tick_size is None:
            return np.fromiter((convert(v, integral) for v in values), dtype=np.int64,
                               count=len(values))
        return np.fromiter((convert(v, tick_size) for v in values), dtype=np.int64,
                           count=len(values))
    return _k.quantise(x.ravel(), 1.0 if tick_size is None else float(tick_size),
                       integral).reshape(x.shape)


_INTEGRAL = ("symbol_id", "timestamp")   # never rounded: 1.5 is no symbol id


def _real_column(where: str, f: str, values, in_ticks: bool = False) -> np.ndarray:
    """One column as a NumPy array of real numbers (bool, int or float), checked before
    any state changes. Complex (the imaginary part would be dropped), datetime/timedelta
    (timestamps are converted before) and text/object columns (parsed per element, so
    junk became a silent rejected tick) are a TypeError naming the column. pandas'
    nullable numbers: NA is NaN for a float price, else -1 (missing: a rejected tick)."""
    dtype = getattr(values, "dtype", None)
    if (isinstance(dtype, pd.api.extensions.ExtensionDtype)
            and pd.api.types.is_numeric_dtype(dtype)):
        if (f in ("bid_price", "ask_price") and not in_ticks) or dtype.kind == "f":
            values = values.to_numpy(np.float64, na_value=np.nan)
        else:
            values = values.to_numpy(np.int64, na_value=-1)
    v = np.asarray(values)
    if v.size == 0 and v.dtype.kind in "OUS":   # pd.DataFrame(columns=FIELDS): no values
        return np.zeros(v.shape, np.int64)      # to misread
    try:
        _v.real_array(f"{where}: column {f!r}", v.dtype)
    except TypeError as e:
        hint = ("; a timestamp column holds integers of the configured unit, datetime64, "
                "datetime objects or ISO 8601 text" if f == "timestamp" else
                "; convert text with pd.to_numeric(col, errors='coerce') (unparsable -> NaN: "
                "a rejected tick), or pass tick dicts to process_market_data"
                if v.dtype.kind in "OUS" else "")
        raise TypeError(f"{e}{hint}") from None
    return v


def _in_ticks(where: str, columns) -> bool:
    """The ``prices_in_ticks`` flag of a batch: True or False (default), else a TypeError;
    ``bool("no")`` would be True (prices read as ticks: 100x off at a 0.01 tick)."""
    return _v.flag(f"{where}: prices_in_ticks", columns.get("prices_in_ticks", False))


def _native(v: np.ndarray) -> np.ndarray:
    """A checked real column as one the kernel converts itself (``COLUMN_DTYPES``): bool
    as uint8; float16, long double and byte-swapped columns (rare) converted whole;
    strided or misaligned ones (a view into a buffer) copied whole, as they are."""
    v = np.ascontiguousarray(v)
    if not v.flags.aligned:      # the kernel reads typed pointers
        v = v.copy()
    if v.dtype.kind == "b":
        return v.view(np.uint8)
    if v.dtype not in _k.COLUMN_DTYPES:
        return v.astype(np.float64 if v.dtype.kind == "f" else np.int64)
    return v


def _int_column(v: np.ndarray, f: str) -> np.ndarray:
    """A non-price column as the kernel reads it, whole (for the deployment's bars)."""
    return v if v.dtype == np.int64 else _column(v, to_int, integral=f in _INTEGRAL)


class TickEngine:
    """The Cython tick engine: quotes in, signals, risk-checked orders, positions and P&L
    out (tick semantics: ``cython_kernels/ticks.pyx``; the package docstring).

    Parameters
    ----------
    config : str, Path, dict or None
        Settings (``load_config``): a YAML path or a dict of sections over the defaults
        in ``quantlab/config/engine.yaml``; ``QUANTLAB_<SECTION>_<KEY>`` variables
        override both. Out-of-range settings raise ``ValueError`` naming them.

    Examples
    --------
    >>> from quantlab.engine import TickEngine
    >>> from quantlab.testing import synthetic_ticks
    >>> eng = TickEngine({"engine": {"max_symbols": 8}})
    >>> res = eng.process_ticks(synthetic_ticks(2000, n_symbols=5, seed=1))
    >>> res.ticks, res.order_count, eng.ticks
    (2000, 274, 2000)
    """

    def __init__(self, config=None):
        self.config = load_config(config)
        configure_logging(self.config)    # log.level, log.file: process-wide
        self._params = _core_params(self.config)
        p = dict(self._params)
        p["max_samples"] = self.config["engine"]["max_latency_samples"]
        self.core = _k.TickCore(**p)
        self.tick_size = self.config["engine"]["tick_size"]
        self._wall = 0.0
        self.signal_errors = 0     # feed messages dropped as malformed (run_feed)
        self.feed_rejects = dict.fromkeys(FEED_REJECTS, 0)
        self.deployment = None     # a research strategy on this engine's bars
        self._bars = None          # its BarAggregator
        self._queued: list = []    # closed bars not yet handed to the deployment
        r = self.config["risk"]
        log.info("tick engine started: %d symbols, tick size %g; risk: max_position %d, "
                 "max_order_notional %g, max_orders_per_second %d, max_drawdown %g "
                 "(currency%s), max_positions %d, max_concentration %g",
                 self.config["engine"]["max_symbols"], self.tick_size, r["max_position"],
                 r["max_order_notional"], r["max_orders_per_second"], r["max_drawdown"],
                 "" if r["max_drawdown_pct"] is None else
                 f": {r['max_drawdown_pct']:g} x initial_capital {r['initial_capital']:g}",
                 r["max_positions"], r["max_concentration"])

    def __repr__(self):
        return (f"TickEngine({self.core.ticks} ticks, {self.core.orders} orders, "
                f"status={self.health_check()['status']!r})")

    @property
    def ticks(self) -> int:
        """Ticks processed so far (rejected ones included)."""
        return self.core.ticks

    # ---- processing ------------------------------------------------------------------
    def process_ticks(self, columns, check_risk=True) -> TickResult:
        """Process a batch of tick columns through the kernel.

        Parameters
        ----------
        columns : mapping of arrays or DataFrame
            ``FIELDS``: symbol_id, bid_price, ask_price, bid_size, ask_size, timestamp;
            prices in currency, or in ticks when ``columns["prices_in_ticks"]`` is true;
            timestamps by the rule of every path (the package docstring): each value as
            in a tick dict, so a tick gives the same result as a column or a dict. A
            datetime64 column (any unit, a time zone, Arrow's) is converted whole; text,
            bytes and object columns value by value by the tick dicts' own parser: a
            bad value is that tick's rejection (``bad_timestamp``), never an error for
            the batch; naive and zoned stamps may mix. Any real dtype
            (int8..uint64, float32/64, bool) is converted chunk by chunk in the kernel,
            with the int64 path's results. A complex, timedelta, text or object column
            (datetimes elsewhere than the timestamp) is a ``TypeError`` naming it, raised
            before any tick is processed; NaN, inf or a fractional id/timestamp is a
            rejected tick; sizes are rounded half to even.
        check_risk : bool
            False skips the order risk checks (kill switch included).

        Returns
        -------
        TickResult

        Examples
        --------
        >>> import numpy as np
        >>> from quantlab.engine import TickEngine
        >>> from quantlab.testing import synthetic_ticks
        >>> cols = synthetic_ticks(2000, n_symbols=5, seed=1)
        >>> res = TickEngine().process_ticks(cols)
        >>> res.order_count, res.rejected_ticks
        (274, 0)
        >>> narrow = dict(cols, symbol_id=cols["symbol_id"].astype(np.int16),
        ...               bid_size=cols["bid_size"].astype(float))
        >>> TickEngine().process_ticks(narrow).order_count      # same as int64 columns
        274
        """
        check_risk = _v.flag("check_risk", check_risk)   # None, 0: the risk checks off
        if not isinstance(columns, (Mapping, pd.DataFrame)):
            raise TypeError(f"process_ticks takes a mapping of columns ({', '.join(FIELDS)}) "
                            f"or a DataFrame, got {type(columns).__name__}; a list of tick "
                            "dicts goes to process_market_data")
        missing = [f for f in FIELDS if f not in columns]
        if missing:
            raise ValueError(f"process_ticks: missing column(s) {missing}")
        in_ticks = _in_ticks("process_ticks", columns)
        cols = []
        for f in FIELDS:
            v = _real_column("process_ticks", f, self._timestamps(columns[f])
                             if f == "timestamp" else columns[f], in_ticks)
            if v.ndim != 1:
                raise ValueError(f"process_ticks: column {f!r} must be one-dimensional, got "
                                 f"shape {v.shape}")
            cols.append(_native(v))
        # converted chunk by chunk inside the kernel (issue #32): prices in currency via
        # their double, in tick_size units; integers exactly; floats rounded (ids and
        # timestamps with a fraction are -1)
        price = tuple(f in ("bid_price", "ask_price") and not in_ticks for f in FIELDS)
        scale = tuple(float(self.tick_size) if p else 1.0 for p in price)
        integral = tuple(f in _INTEGRAL for f in FIELDS)
        exact = tuple(not p for p in price)
        out = self._run(lambda core: core.process_columns(cols, scale, integral, exact,
                                                          check_risk))
        if self.deployment is not None:   # bars of the quotes as sent (in currency)
            ticks_scale = self.tick_size if in_ticks else 1.0
            self._to_bars({f: np.asarray(columns[f], dtype=float) * ticks_scale
                           if f in ("bid_price", "ask_price") else _int_column(v, f)
                           for f, p, v in zip(FIELDS, price, cols)})
        return out

    def process_market_data(self, ticks, check_risk=True) -> TickResult:
        """Process the seed's tick dicts.

        Parameters
        ----------
        ticks : list of dict, dict or DataFrame
            One dict per tick with the ``FIELDS`` keys (prices and sizes as numbers or
            decimal strings; ``venue_id`` and ``flags`` are accepted and ignored); one
            dict is one tick; a DataFrame goes to ``process_ticks``. Missing or
            unparsable values are a rejected tick. A timestamp is read as in a column
            (one rule: the package docstring): a number, or its text
            (``"1700000000"``), is a count of the configured unit; a datetime (ISO 8601
            text such as ``"2024-01-02T14:30:00.123Z"`` or ``+01:00``,
            ``datetime.datetime``, ``pd.Timestamp``, ``np.datetime64``) is converted to the
            unit, UTC; anything else is rejected as ``bad_timestamp``.
        check_risk : bool
            False skips the order risk checks (kill switch included): for simulations
            that study the raw signal only.

        Returns
        -------
        TickResult

        Examples
        --------
        >>> from quantlab.engine import TickEngine
        >>> eng = TickEngine()
        >>> res = eng.process_market_data([
        ...     {"symbol_id": 0, "bid_price": "100.00", "ask_price": "100.02",
        ...      "bid_size": 300, "ask_size": 100, "timestamp": 1},
        ...     {"symbol_id": 0, "bid_price": "abc", "ask_price": "100.02",
        ...      "bid_size": 300, "ask_size": 100, "timestamp": 2}])
        >>> res.ticks, res.rejected_ticks
        (2, 1)
        """
        if isinstance(ticks, pd.DataFrame):
            return self.process_ticks(ticks, check_risk)
        if isinstance(ticks, Mapping):
            if any(isinstance(v, (list, tuple, np.ndarray, pd.Series)) for v in ticks.values()):
                raise TypeError("process_market_data got one mapping of columns; pass "
                                "columns to process_ticks, or a list of tick dicts here")
            ticks = [ticks]
        elif isinstance(ticks, (str, bytes)) or not hasattr(ticks, "__iter__"):
            raise TypeError(f"process_market_data takes a list of tick dicts (or one dict), "
                            f"got {type(ticks).__name__}")
        ticks = ticks if isinstance(ticks, list) else list(ticks)
        # a flag: None or 0 turned the risk checks (kill switch included) off, "no" on
        check_risk = _v.flag("check_risk", check_risk)
        out = self._run(lambda core: core.process_dicts(ticks, check_risk))
        if self.deployment is not None and ticks:
            rows = [t for t in ticks if isinstance(t, Mapping)]
            frame = pd.DataFrame(rows)
            cols = {f: pd.to_numeric(frame[f], errors="coerce").to_numpy()
                    if f in frame else np.full(len(frame), np.nan) for f in FIELDS[:-1]}
            # the engine's own timestamps: ISO text and datetimes were NaN (skipped) or,
            # as a datetime64 column, nanoseconds read as the unit
            cols["timestamp"] = _k.parse_dicts(rows, self.tick_size,
                                               self._params["unit_ns"])[5]
            self._to_bars(cols)
        return out

    def _run(self, process) -> TickResult:
        """``process(core)`` -> the orders as the rows of a (4, n) array; timed (the dict
        path's time includes parsing)."""
        core = self.core
        before = (core.ticks, core.signals, core.orders, core.rejected_ticks,
                  core.rejected_orders)
        killed = core.killed
        t0 = time.perf_counter()
        orders = process(core)
        dt = time.perf_counter() - t0
        self._wall += dt
        res = TickResult(ticks=core.ticks - before[0], signal_count=core.signals - before[1],
                         order_count=core.orders - before[2],
                         rejected_ticks=core.rejected_ticks - before[3],
                         rejected_orders=core.rejected_orders - before[4],
                         processing_time_us=dt * 1e6, order_array=orders,
                         tick_size=self.tick_size)
        if core.killed and not killed:
            log.warning("drawdown kill switch on: the drawdown passed risk.max_drawdown %g "
                        "in this batch; no more orders (drawdown at its end: %.2f)",
                        self.config["risk"]["max_drawdown"], self.pnl()["drawdown"])
        if log.isEnabledFor(logging.DEBUG):
            log.debug("batch: %d ticks (%d rejected), %d signals, %d orders (%d rejected), "
                      "%.0f µs", res.ticks, res.rejected_ticks, res.signal_count,
                      res.order_count, res.rejected_orders, res.processing_time_us)
        return res

    # ---- state -----------------------------------------------------------------------
    def positions(self) -> pd.Series:
        """Open positions (shares) by symbol id.

        Examples
        --------
        >>> from quantlab.engine import TickEngine
        >>> from quantlab.testing import synthetic_ticks
        >>> eng = TickEngine()
        >>> _ = eng.process_ticks(synthetic_ticks(2000, n_symbols=5, seed=1))
        >>> eng.positions().to_dict()
        {0: -1000, 1: -800, 2: 1000, 3: 800, 4: -1000}
        """
        pos = np.asarray(self.core.pos)
        nz = np.flatnonzero(pos)
        return pd.Series(pos[nz], index=pd.Index(nz, name="symbol_id"), name="position")

    def pnl(self) -> dict:
        """The book since the engine started, in currency: cash flows (from 0, not from
        ``risk.initial_capital``), marked value (at mids), equity = their sum, i.e. the
        P&L (add the initial capital for the account's value); drawdown from the peak
        P&L; gross notional.

        Examples
        --------
        >>> from quantlab.engine import TickEngine
        >>> from quantlab.testing import synthetic_ticks
        >>> eng = TickEngine()
        >>> _ = eng.process_ticks(synthetic_ticks(2000, n_symbols=5, seed=1))
        >>> {k: round(v, 2) for k, v in eng.pnl().items()}
        {'cash': 98974.0, 'market_value': -98944.0, 'equity': 30.0, 'drawdown': 75.0,
         'gross_notional': 459680.0}
        """
        c = self.core
        ts = self.tick_size
        equity = (2 * c.cash + c.mtm2) * 0.5 * ts
        return {"cash": c.cash * ts, "market_value": c.mtm2 * 0.5 * ts, "equity": equity,
                "drawdown": (c.peak2 - (2 * c.cash + c.mtm2)) * 0.5 * ts,
                "gross_notional": c.gross2 * 0.5 * ts}

    def get_performance_stats(self) -> dict:
        """Counters since the engine was made (ticks, signals, orders, rejections by
        reason, feed rejects), sampled latency percentiles (µs) and throughput; with a
        deployment, the ticks its bars dropped as late per asset (``late_ticks``) and
        their volume (``late_volume``).

        Examples
        --------
        >>> from quantlab.engine import TickEngine
        >>> from quantlab.testing import synthetic_ticks
        >>> eng = TickEngine()
        >>> _ = eng.process_ticks(synthetic_ticks(2000, n_symbols=5, seed=1, bad_fraction=0.01))
        >>> s = eng.get_performance_stats()
        >>> s["ticks_processed"], s["rejected_ticks"], s["tick_rejects"]["crossed"]
        (2000, 20, 2)
        """
        c = self.core
        n = min(c.n_samples, len(c.samples))
        lat = np.asarray(c.samples[:n], dtype=float) / 1000.0   # µs
        q = (lambda p: float(np.percentile(lat, p))) if n else (lambda p: float("nan"))
        return {
            "avg_signal_latency_us": float(lat.mean()) if n else float("nan"),
            "p50_latency_us": q(50), "p99_latency_us": q(99), "p999_latency_us": q(99.9),
            "latency_samples": n,
            "signals_processed": c.signals, "stale_signals": c.stale,
            "orders_submitted": c.orders, "orders_rejected": c.rejected_orders,
            "signal_errors": self.signal_errors,
            "rejected_ticks": c.rejected_ticks, "ticks_processed": c.ticks,
            "feed_rejects": dict(self.feed_rejects),
            "throughput_ticks_per_s": c.ticks / self._wall if self._wall else float("nan"),
            "tick_rejects": dict(zip(_k.TICK_REJECTS, map(int, c.tick_rejects))),
            "order_rejects": dict(zip(_k.ORDER_REJECTS, map(int, c.order_rejects))),
            "kill_switch": bool(c.killed),
            # ticks of a deployment's bars already handed on: dropped (engine.bars)
            "late_ticks": self._bars.late_ticks if self._bars is not None else {},
            "late_volume": self._bars.late_volume if self._bars is not None else {},
        }


    def health_check(self, p99_limit_us=10.0, reject_limit=0.05) -> dict:
        """The engine's status: critical (kill switch on), degraded (p99 latency above
        ``p99_limit_us`` or more than ``reject_limit`` of ticks rejected) or healthy.

        Parameters
        ----------
        p99_limit_us : float
            Sampled p99 latency (µs) above which the engine is degraded (>= 0; inf: off).
        reject_limit : float
            Share of rejected ticks, in [0, 1], above which it is degraded.

        Returns
        -------
        dict
            ``{"status": ..., "message": ...}``.

        Examples
        --------
        >>> from quantlab.engine import TickEngine
        >>> from quantlab.testing import synthetic_ticks
        >>> eng = TickEngine()
        >>> _ = eng.process_ticks(synthetic_ticks(1000, n_symbols=5, seed=1, bad_fraction=0.1))
        >>> eng.health_check(p99_limit_us=float("inf"))["status"]
        'degraded'
        >>> eng.health_check(p99_limit_us=float("inf"), reject_limit=0.2)
        {'status': 'healthy', 'message': '1000 ticks, 114 orders'}
        """
        from quantlab.engine.alerts import health_check  # lazy: cycle, alerts imports core

        return health_check(self, p99_limit_us, reject_limit)

    # ---- feeds (quantlab.engine.feeds) -----------------------------------------------
    def _timestamps(self, values, where: str = "process_ticks"):
        """The timestamp column as int64 counts of the configured unit, or numbers as they
        are: ``bars._timestamps``, each value read as in a tick dict."""
        return _timestamps(values, self.config["engine"]["timestamp_unit"],
                           f"{where}: column 'timestamp'")

    def replay(self, path_or_arrays, speed=None, chunk=10_000, on_chunk=None,
               max_gap=1.0) -> TickResult:
        """Replay recorded ticks in chunks, flat out or paced by their timestamps.

        A tick whose timestamp is more than ``max_gap`` + 2 IQR from the median of the 16
        ticks around it (a corrupt far-future or far-past stamp; runs of up to 4) is
        rejected as ``bad_timestamp`` whatever the speed: accepted, it would make every
        later tick of its symbol out of order and every signal stale.

        Parameters
        ----------
        path_or_arrays : str, Path, dict of arrays or DataFrame
            A CSV (gzip allowed) or Parquet file with the six ``FIELDS`` columns (prices
            in currency, timestamps as integers of the configured unit, datetimes, or
            ISO 8601 text: all with UTC offsets or none), or the columns themselves (as
            ``process_ticks`` takes them). A file that cannot be read is a ``DataError``
            naming it.
        speed : float or None
            None runs flat out; 1.0 paces chunks by their timestamps (2.0 = twice as
            fast).
        chunk : int
            Ticks per batch (>= 1).
        on_chunk : callable or None
            ``on_chunk(engine, result)``, called after each batch.
        max_gap : float
            Seconds: the replay clock is the stream's time with each gap between
            consecutive ticks capped at ``max_gap`` (``math.inf``: no cap) and backward
            steps counted as none, so a session break or a corrupt timestamp pauses a
            paced replay for at most ``max_gap / speed`` seconds.

        Returns
        -------
        TickResult
            All chunks combined.

        Examples
        --------
        >>> from quantlab.engine import TickEngine
        >>> from quantlab.testing import synthetic_ticks
        >>> sizes = []
        >>> res = TickEngine().replay(synthetic_ticks(2000, n_symbols=5, seed=1), chunk=500,
        ...                           on_chunk=lambda eng, r: sizes.append(r.ticks))
        >>> res.ticks, res.order_count, sizes
        (2000, 274, [500, 500, 500, 500])
        """
        from quantlab.engine.feeds import replay  # lazy: cycle, feeds imports core

        return replay(self, path_or_arrays, speed, chunk, on_chunk, max_gap)

    async def run_feed(self, feed, batch=1000, max_delay=0.001, max_messages=None,
                       timeout=None, *, reconnect=0, backoff=0.5,
                       max_message_bytes=2 ** 20) -> TickResult:
        """Consume an async iterator of ticks (dicts, or JSON text/bytes of one dict or a
        list of dicts); stops at the feed's end, after ``max_messages`` messages or
        ``timeout`` seconds.

        Malformed messages (not JSON, nested too deep, not UTF-8, longer than
        ``max_message_bytes``, or JSON that is neither an object nor a list) are counted
        (``signal_errors``; by reason in ``feed_rejects``) and skipped, like bad ticks.

        Disconnects: when the feed raises (a websocket closed with an error code, a TCP
        reset, ...), every tick received so far is processed first. Then, with
        ``reconnect=0`` (default), ``FeedError`` is raised: it says how many ticks were
        processed and carries their ``TickResult`` as ``.result`` (the feed's exception
        as ``__cause__``). With ``reconnect=N``, ``feed`` must be a callable that opens the
        feed anew (e.g. ``lambda: websocket_feed(url)``); it is called again after
        ``backoff * 2**k`` seconds (k = 0, 1, ...; at most 30 s) up to N times in a row,
        the count starting again after each message received; past N, ``FeedError``.

        Parameters
        ----------
        feed : async iterator, or a callable returning one
            The messages (e.g. ``websocket_feed(url)``); a callable with ``reconnect``.
        batch : int
            Ticks processed at a time (>= 1).
        max_delay : float or None
            Seconds: the pending ticks are processed whenever the feed is quiet this
            long, so on a slow feed a tick waits at most that long for its signal
            (``None``: only full batches, and the rest at the end).
        max_messages : int or None
            Stop after this many messages.
        timeout : float or None
            Stop after this many seconds.
        reconnect : int
            Reopen a failed feed up to this many times in a row (0: raise ``FeedError``).
        backoff : float
            Seconds before the first reopening (doubled each time, at most 30 s).
        max_message_bytes : int
            Longer messages are skipped (``feed_rejects["oversized"]``).

        Returns
        -------
        TickResult
            All batches combined.

        Examples
        --------
        >>> import asyncio, json
        >>> from quantlab.engine import TickEngine
        >>> from quantlab.testing import synthetic_ticks, to_dicts
        >>> ticks = to_dicts(synthetic_ticks(500, n_symbols=2, seed=0))
        >>> async def feed():
        ...     for t in ticks:
        ...         yield json.dumps(t)
        ...     yield "not json"
        >>> eng = TickEngine()
        >>> res = asyncio.run(eng.run_feed(feed(), batch=100))
        >>> res.ticks, eng.signal_errors, eng.feed_rejects["not_json"]
        (500, 1, 1)
        """
        from quantlab.engine.feeds import run_feed  # lazy: cycle, feeds imports core

        return await run_feed(self, feed, batch, max_delay, max_messages, timeout,
                              reconnect=reconnect, backoff=backoff,
                              max_message_bytes=max_message_bytes)

    # ---- a research strategy on the engine's bars ---------------------------------------
    def load_strategy_params(self, result_or_params, strategy=None, *, symbols=None,
                             bar: str | None = None, history=None, risk=None,
                             **backtest_options):
        """Trade a research strategy on this engine's ticks: each tick also goes into
        time bars of frequency ``bar`` (``quantlab.engine.bars``: OHLC of the quote mid,
        volume of the quoted sizes) and each closed bar to a :class:`ql.Deployment`
        (``self.deployment``, returned): the strategy's signal, the risk limits and
        ``ql.backtest``'s accounting, bar by bar.

        ``result_or_params``: an OptimizationResult (its strategy, parameters and
        backtest options), a parameter dict with ``strategy=`` a registry name, or a
        Deployment to go on with (one ``ql.Deployment.restore`` read from a
        checkpoint: its bars must be of its own size, see ``Deployment.check_bar``).
        ``symbols``: the asset name of each symbol_id (a list: id = position, or a
        dict); default the assets of ``history`` (bars before the first tick, for the
        signal's warm-up). Call :meth:`flush_bars` at the end of a replay.

        Parameters
        ----------
        result_or_params : OptimizationResult, dict or Deployment
            The strategy's result, its parameters (then ``strategy=`` is required), or
            a deployment to resume.
        strategy : str or None
            A registry name (``ql.strategies.names()``) for a parameter dict.
        symbols : list or dict or None
            The asset name of each symbol_id.
        bar : str or None
            A fixed pandas frequency ("1min", "1D"); default "1min", or a resumed
            deployment's own (another one is refused).
        history : xr.Dataset or None
            Bars before the first tick.
        risk : dict or RiskLimits, optional
            Pre-trade limits, as ``ql.deploy``'s (a resumed deployment keeps its own).
        **backtest_options
            ``ql.backtest`` options (fees, slippage, ...).

        Returns
        -------
        ql.Deployment

        Examples
        --------
        >>> import quantlab as ql
        >>> from quantlab.engine import TickEngine
        >>> ds = ql.data.load("equities").isel(time=slice(0, 70), asset=slice(0, 2))
        >>> eng = TickEngine({"engine": {"max_symbols": 8}})
        >>> dep = eng.load_strategy_params({"window": 15}, strategy="volatility_regime",
        ...                                bar="1D", history=ds.isel(time=slice(0, 60)))
        >>> _ = eng.process_ticks(ql.testing.ticks_from_bars(ds.isel(time=slice(60, 70))))
        >>> eng.flush_bars()
        >>> len(dep.equity)
        10
        """
        from quantlab import live   # lazy: the research stack loads only when deploying

        if isinstance(result_or_params, live.Deployment):
            return self._resume(result_or_params, strategy, symbols, bar, history,
                                {**backtest_options, **({} if risk is None else
                                                        {"risk": risk})})
        bar = "1min" if bar is None else bar
        if hasattr(result_or_params, "best_params"):
            target = result_or_params
        elif isinstance(result_or_params, Mapping) and strategy is not None:
            target = strategy
        else:
            raise TypeError("load_strategy_params takes an OptimizationResult, or a dict of "
                            "parameters with strategy= a registry name (ql.strategies.names())")
        params = None if target is result_or_params else dict(result_or_params)
        if history is not None:   # a DataFrame of closes too: its bars' grid is checked
            history = _v.dataset("history", history)
        if symbols is None:
            if history is None:
                raise ValueError("give symbols= (asset name per symbol_id) or history= bars")
            symbols = [str(a) for a in history.asset.values]
        bars = self._bar_aggregator(bar, symbols)
        stamps = None if history is None else history.indexes.get("time")
        if isinstance(stamps, pd.DatetimeIndex):   # else deploy refuses the history
            bars.check_grid(stamps)
        dep = live.deploy(target, params, universe=bars.assets, history=history, bar=bar,
                          risk=risk, **backtest_options)
        return self._attach(dep, self._bar_aggregator(bar, symbols, dep.last_bar))

    def _resume(self, dep, strategy, symbols, bar, history, backtest_options):
        """``load_strategy_params`` of a Deployment: its own strategy, options, history
        and bar size go on; what would change them is refused."""
        given = [k for k, v in (("strategy", strategy), ("history", history)) if v is not None]
        if given or backtest_options:
            raise TypeError(f"load_strategy_params(deployment) goes on with the deployment's "
                            f"own strategy, options, risk limits and history; got "
                            f"{', '.join([*given, *backtest_options])}")
        bar = bar if bar is not None else dep.bar or "1min"
        dep.check_bar(bar)
        symbols = dep.universe if symbols is None else symbols
        bars = self._bar_aggregator(bar, symbols, dep.last_bar)
        if dep.last_bar is not None:
            bars.check_grid([dep.last_bar], "the deployment's last bar")
        if list(bars.assets) != list(dep.universe or []):   # a reorder swaps prices
            raise ValueError(f"symbols {list(bars.assets)} are not the deployment's assets "
                             f"by symbol_id, {dep.universe}")
        return self._attach(dep, bars)

    def _attach(self, dep, bars):
        self.deployment, self._bars = dep, bars
        self._queued = []    # the bars of the deployment this one replaces are not its
        return dep

    def _bar_aggregator(self, bar: str, symbols, after=None) -> BarAggregator:
        """Bars of this engine's ticks: its timestamp unit, clock-skew limit and price
        bounds; the ticks of bars up to ``after`` (the deployment's last bar) late."""
        e = self.config["engine"]
        return BarAggregator(bar, symbols, unit=e["timestamp_unit"],
                             max_skew_s=self.config["risk"]["max_clock_skew_s"],
                             tick_size=e["tick_size"], after=after)

    def _to_bars(self, columns) -> None:
        self._hand_on(self._bars.add(columns))

    def _hand_on(self, bars: list) -> None:
        """Closed bars to the deployment, oldest first. A bar it raises on is left out
        (the deployment is as before it, the error names it; a listener's error comes
        after the bar was traded); the bars after it are handed on first at the next
        call, not lost with the error."""
        self._queued.extend(bars)
        while self._queued:
            self.deployment.on_bar(self._queued.pop(0))

    def open_bar(self) -> dict | None:
        """The deployment's open bar's ticks (``BarAggregator.open_bar``), None without
        one; ``quantlab deploy --feed`` saves them beside its checkpoint when stopped.

        Examples
        --------
        >>> from quantlab.engine import TickEngine
        >>> TickEngine().open_bar() is None      # no deployment
        True
        """
        return None if self._bars is None else self._bars.open_bar()

    def reopen_bar(self, ticks: dict) -> int:
        """Take back an open bar's ticks saved before a restart
        (``BarAggregator.reopen``); the number taken.

        Parameters
        ----------
        ticks : dict
            :meth:`open_bar`'s arrays (through JSON: lists).

        Returns
        -------
        int

        Examples
        --------
        >>> from quantlab.engine import TickEngine
        >>> TickEngine().reopen_bar({})
        Traceback (most recent call last):
        ...
        ValueError: reopen_bar: no deployment (load_strategy_params first)
        """
        if self._bars is None:
            raise ValueError("reopen_bar: no deployment (load_strategy_params first)")
        return self._bars.reopen(ticks)

    def flush_bars(self) -> None:
        """Hand the open bar to the deployment (at the end of a replay); nothing without
        one (:meth:`load_strategy_params`).

        Examples
        --------
        >>> from quantlab.engine import TickEngine
        >>> eng = TickEngine()
        >>> eng.flush_bars() is None      # no deployment: nothing to hand on
        True
        """
        if self._bars is not None:
            self._hand_on(self._bars.flush())
            if self._bars.late:   # the run's summary: what the bars lost
                log.warning("bars: %d late tick(s) dropped (their bar already handed on): "
                            "%s", self._bars.late, ", ".join(
                                f"{a} {n} ({self._bars.late_volume[a]:g} volume)"
                                for a, n in self._bars.late_ticks.items()))
