"""A low-latency tick engine in Cython: quotes in, signals, risk-checked orders,
positions and P&L out, with sampled latency statistics, health checks and alerts.

One engine replaces the seed's Rust/Go/C++ trio. ``TickEngine.process_ticks(columns)``
runs NumPy columns through the Cython core without per-tick Python objects;
``process_market_data(ticks)`` takes the seed's dicts (prices and sizes as strings or
numbers). The pure-Python oracle ``quantlab.engine_reference.PyTickEngine`` does the same
work tick by tick, and the tests require identical results. Tick semantics and the int64
bounds (a quote or fill that would take cash or marks past 2^60 is rejected): see
``cython_kernels/ticks.pyx``. Bad ticks are counted and skipped, never raised; so are
malformed feed messages (``run_feed``). A feed that fails raises ``FeedError`` after its
ticks are processed (or reconnects, ``reconnect=``); a paced ``replay`` waits at most
``max_gap`` per gap and rejects corrupt far-off timestamps. On every path a tick stamped
more than ``risk.max_clock_skew_s`` after the newest accepted timestamp is rejected
(``clock_skew``): accepted, a corrupt far-future stamp would make every later signal
stale and its symbol's later ticks out of order. Replay files that cannot be read (not
UTF-8, binary, corrupt Parquet or gzip, missing columns, naive and offset timestamps
mixed) are a ``DataError`` naming the file. Arguments and settings out of
range raise ``ValueError``/``TypeError`` naming them (``quantlab._validate``).

Config: the YAML shipped as ``quantlab/config/engine.yaml`` (``config/engine.yaml`` in the
repo is a copy to edit), then a YAML path or dict given to the engine, then environment
variables ``QUANTLAB_<SECTION>_<KEY>`` (e.g. ``QUANTLAB_RISK_MAX_POSITION=500``). Unknown
sections or keys, or values of the wrong type, raise ``ValueError`` naming the key.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from quantlab import _validate as _v
from quantlab._kernels import ticks as _k
from quantlab.engine_reference import FIELDS, PyTickEngine, _not_real, to_int, to_ticks

__all__ = ["TickEngine", "TickResult", "AlertMonitor", "FeedError", "load_config",
           "reference_engine", "synthetic_ticks", "seed_batch", "websocket_feed", "dashboard",
           "bench", "DEFAULT_CONFIG"]
SEED_TICKS_PER_S = 42_735   # the seed's own published sample benchmark (23.4 µs a tick)

DEFAULT_CONFIG = Path(__file__).parent / "config" / "engine.yaml"
log = logging.getLogger("quantlab.engine")


# ---- configuration -------------------------------------------------------------------

def load_config(config=None, environ=None) -> dict:
    """Defaults <- ``config`` (a YAML path or a dict of sections) <- QUANTLAB_* variables."""
    import yaml

    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())

    def merge(update, where):
        for section, values in update.items():
            if section not in cfg:
                raise ValueError(f"{where}: unknown config section {section!r}; sections: "
                                 f"{', '.join(cfg)}")
            if values is None:       # an empty section in a YAML file
                continue
            if not isinstance(values, Mapping):
                raise ValueError(f"{where}: section {section!r} must be a mapping, got "
                                 f"{values!r}")
            for key, value in values.items():
                if key not in cfg[section]:
                    raise ValueError(f"{where}: unknown config key {section}.{key}; keys: "
                                     f"{', '.join(cfg[section])}")
                cfg[section][key] = _typed(section, key, value, cfg[section][key], where)

    if config is not None:
        if isinstance(config, (str, Path)):
            try:
                loaded = yaml.safe_load(Path(config).read_text())
            except yaml.YAMLError as exc:
                raise ValueError(f"{config}: not a valid YAML file: {exc}") from None
            if loaded is not None and not isinstance(loaded, dict):
                raise ValueError(f"{config}: a config file is a mapping of sections "
                                 f"({', '.join(cfg)}), got a {type(loaded).__name__} at the "
                                 "top level")
            merge(loaded or {}, str(config))
        elif isinstance(config, Mapping):
            merge(config, "config")
        else:
            raise TypeError(f"config must be a YAML path, a dict or None, got "
                            f"{type(config).__name__}")
    env = os.environ if environ is None else environ
    for name, value in env.items():
        if not name.startswith("QUANTLAB_"):
            continue
        rest = name[len("QUANTLAB_"):].lower()
        section = next((s for s in cfg if rest.startswith(s + "_")), None)
        if section is None:
            continue   # other quantlab variables are not engine settings
        merge({section: {rest[len(section) + 1:]: value}}, f"environment {name}")
    _check(cfg)
    return cfg


_BOOLS = {"1": True, "true": True, "yes": True, "on": True,
          "0": False, "false": False, "no": False, "off": False}


def _typed(section, key, value, default, where):
    """``value`` as the type of the default; a value that is not one (a fractional int,
    "maybe" for a bool) is an error, never truncated or guessed."""
    kind = type(default)
    try:
        if kind is bool:
            return value if isinstance(value, bool) else _BOOLS[str(value).strip().lower()]
        if kind is int:
            if isinstance(value, bool):
                raise TypeError
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            return int(number)
        return kind(value)
    except (TypeError, ValueError, KeyError, OverflowError):
        raise ValueError(f"{where}: {section}.{key} must be {kind.__name__}, got "
                         f"{value!r}") from None


# Upper bounds: arrays sized by a setting are bounded before they are allocated
# (max_symbols: 6 per-symbol arrays; max_latency_samples; max_orders_per_second: the rate
# ring), and integers fit the core's int64 state (order_size below its 2^60 state bound).
MAX_SYMBOLS = 2 ** 22
MAX_SAMPLES = 2 ** 26
MAX_RING = 2 ** 24
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _check(cfg):
    """Every setting through the shared checkers (quantlab._validate): the error names the
    key, the value and the accepted range; nothing is clamped."""
    e, s, r = cfg["engine"], cfg["signal"], cfg["risk"]
    big = 2 ** 62

    def integer(key, lo, hi=big):
        sec, k = key.split(".")
        cfg[sec][k] = _v.integer(f"config: {key}", cfg[sec][k], lo, hi)

    def number(key, lo, hi=None, **kw):
        sec, k = key.split(".")
        cfg[sec][k] = _v.number(f"config: {key}", cfg[sec][k], lo, hi, **kw)

    integer("engine.max_symbols", 1, MAX_SYMBOLS)
    number("engine.tick_size", 0, lo_open=True)
    _v.choice("config: engine.timestamp_unit", e["timestamp_unit"], ("us", "ns"))
    integer("engine.latency_sample_every", 0)            # 0: no latency samples
    integer("engine.max_latency_samples", 1, MAX_SAMPLES)
    integer("signal.fast_span", 1)
    integer("signal.slow_span", 1)
    for k in ("imbalance_threshold", "min_confidence"):   # |imbalance| <= 1
        number(f"signal.{k}", 0, 1)
    integer("signal.max_signal_age_us", 0, 2 ** 52)      # x 1000 for ns stays below 2^62
    integer("signal.order_size", 1, 2 ** 60 - 1)
    integer("risk.max_position", 0)
    integer("risk.max_orders_per_second", 0, MAX_RING)
    integer("risk.max_positions", 0)
    for k in ("max_order_notional", "max_drawdown", "max_concentration",
              "concentration_base", "max_clock_skew_s"):  # inf: no limit; NaN refused
        number(f"risk.{k}", 0, finite=False)
    level = str(cfg["log"]["level"]).upper()
    cfg["log"]["level"] = _v.choice("config: log.level", level, LOG_LEVELS)
    if s["fast_span"] >= s["slow_span"]:
        raise ValueError(f"config: signal.fast_span ({s['fast_span']}) must be below "
                         f"signal.slow_span ({s['slow_span']})")


def _core_params(cfg) -> dict:
    e, s, r = cfg["engine"], cfg["signal"], cfg["risk"]
    per_us = 1000 if e["timestamp_unit"] == "ns" else 1
    return dict(capacity=e["max_symbols"], tick_size=e["tick_size"],
                fast_span=s["fast_span"], slow_span=s["slow_span"],
                threshold=s["imbalance_threshold"], min_confidence=s["min_confidence"],
                max_age=s["max_signal_age_us"] * per_us, order_size=s["order_size"],
                max_position=r["max_position"], max_order_notional=r["max_order_notional"],
                max_orders_per_second=r["max_orders_per_second"],
                max_drawdown=r["max_drawdown"], max_positions=r["max_positions"],
                max_concentration=r["max_concentration"],
                concentration_base=r["concentration_base"], second=1_000_000 * per_us,
                sample_every=e["latency_sample_every"],
                max_skew=_skew_units(r["max_clock_skew_s"], per_us))


def _skew_units(seconds: float, per_us: int) -> int:
    """risk.max_clock_skew_s in timestamp units; 2^62 (never reached: timestamps are
    below it) for inf or anything as large."""
    units = seconds * 1e6 * per_us
    return int(units) if units < 2 ** 62 else 2 ** 62


def reference_engine(config=None) -> PyTickEngine:
    """The pure-Python oracle with the same configuration."""
    return PyTickEngine(_core_params(load_config(config)))


# ---- parsing -------------------------------------------------------------------------

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
    try:
        _v.real_array(f"{where}: column {f!r}", v.dtype)
    except TypeError as e:
        hint = ("; convert text with pd.to_numeric(col, errors='coerce') (unparsable -> NaN: "
                "a rejected tick), or pass tick dicts to process_market_data"
                if v.dtype.kind in "OUS" else "")
        raise TypeError(f"{e}{hint}") from None
    return v


# ---- results -------------------------------------------------------------------------

@dataclass
class TickResult:
    """One batch: counts, the orders, and the batch's wall time. ``order_array`` holds the
    orders as the rows (tick index, symbol, signed qty, price in ticks) of a (4, orders)
    int64 array; the ``orders`` DataFrame (price in currency) is built on first access,
    because building one (~60 µs) takes longer than processing a hundred ticks."""

    ticks: int
    signal_count: int
    order_count: int
    rejected_ticks: int
    rejected_orders: int
    processing_time_us: float
    order_array: np.ndarray = field(repr=False)
    tick_size: float = field(repr=False)

    def __getitem__(self, key):     # the seed reads results as dicts
        return getattr(self, key)

    @cached_property
    def orders(self) -> pd.DataFrame:
        tick, symbol, qty, price = self.order_array
        return pd.DataFrame({"tick": tick, "symbol_id": symbol, "qty": qty,
                             "price": price * self.tick_size})

    @classmethod
    def combine(cls, parts, tick_size) -> "TickResult":
        """One result for consecutive batches (their order tick indices already offset)."""
        counts = ("ticks", "signal_count", "order_count", "rejected_ticks", "rejected_orders",
                  "processing_time_us")
        totals = {k: sum(getattr(p, k) for p in parts) for k in counts}
        totals["processing_time_us"] = float(totals["processing_time_us"])
        orders = np.concatenate([p.order_array for p in parts] + [np.empty((4, 0), np.int64)],
                                axis=1)
        return cls(**totals, order_array=orders, tick_size=tick_size)


def _read_tick_file(path: Path) -> dict:
    """The ``FIELDS`` columns of a replay file. Parquet is recognised by its magic bytes
    (any suffix case); anything else is CSV text read as ``ql.data.load_csv`` reads it
    (gzip by content, UTF-8/16/32, binary refused). Timestamp text goes through
    ``load_csv``'s date parser: UTC offsets become UTC, and a column mixing naive and
    offset timestamps is refused (the naive ones' zone is unknown). Every failure is a
    ``DataError`` naming the file."""
    from quantlab.data import _parse_dates, _read_text
    from quantlab.errors import DataError

    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    suffixes = [x.lower() for x in path.suffixes]
    if head == b"PAR1" or suffixes[-1:] in ([".parquet"], [".pq"]):
        try:
            df = pd.read_parquet(path)
        except Exception as e:      # pyarrow raises ArrowInvalid, OSError, ...
            raise DataError(f"{path}: not a readable Parquet file "
                            f"({type(e).__name__}: {str(e)[:200]})") from None
    else:
        import io

        text = _read_text(path)
        try:
            df = pd.read_csv(io.StringIO(text))
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
            raise DataError(f"{path}: not a readable CSV file ({str(e).strip()[:200]})") from None
    df = df.rename(columns=lambda c: str(c).strip().lower())   # " Bid_Price" is bid_price
    twice = sorted({c for c in df.columns if list(df.columns).count(c) > 1} & set(FIELDS))
    if twice:
        raise DataError(f"{path}: column(s) {twice} appear more than once (names compared "
                        "without case and surrounding spaces)")
    missing = [f for f in FIELDS if f not in df]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; a replay file needs the "
                        f"columns {', '.join(FIELDS)} (it has {[str(c) for c in df.columns]})")
    ts = df["timestamp"]
    if ts.dtype == object or pd.api.types.is_string_dtype(ts):   # ISO 8601 text
        text = ts.astype("string")
        blank = (text.isna() | (text.str.strip() == "")).to_numpy(bool)
        out = np.full(len(ts), np.datetime64("NaT"), "datetime64[ns]")  # NaT: a rejected tick
        if (~blank).any():
            rows = np.flatnonzero(~blank)
            out[rows], _ = _parse_dates(text[~blank].astype(str), rows + 1, path)
        df["timestamp"] = out
    for f in FIELDS[:-1]:   # a cell that is not a number is a rejected tick, as in a dict
        if not pd.api.types.is_numeric_dtype(df[f].dtype):
            df[f] = np.fromiter((_float_or_nan(x) for x in df[f]), np.float64, len(df))
    return {f: df[f] for f in FIELDS}


def _float_or_nan(x) -> float:
    """A file cell as the oracle parses it (``float(x)``); NaN (a rejected tick) if it
    is not a real number."""
    if _not_real(x):
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError, OverflowError):
        return math.nan


class TickEngine:
    """``TickEngine(config=None)``; see the module docstring."""

    def __init__(self, config=None):
        self.config = load_config(config)
        logging.getLogger("quantlab.engine").setLevel(self.config["log"]["level"])
        self._params = _core_params(self.config)
        p = dict(self._params)
        p["max_samples"] = self.config["engine"]["max_latency_samples"]
        self.core = _k.TickCore(**p)
        self.tick_size = self.config["engine"]["tick_size"]
        self._wall = 0.0
        self.signal_errors = 0     # feed messages dropped as malformed (run_feed)
        self.feed_rejects = dict.fromkeys(_FEED_REJECTS, 0)

    def __repr__(self):
        return (f"TickEngine({self.core.ticks} ticks, {self.core.orders} orders, "
                f"status={self.health_check()['status']!r})")

    @property
    def ticks(self) -> int:
        """Ticks processed so far (rejected ones included)."""
        return self.core.ticks

    # ---- processing ------------------------------------------------------------------
    def process_ticks(self, columns, check_risk=True) -> TickResult:
        """NumPy columns (symbol_id, bid_price, ask_price, bid_size, ask_size, timestamp;
        prices as floats, or int64 ticks when ``columns["prices_in_ticks"]`` is true;
        timestamps as integers of the configured unit, or datetimes). A complex,
        timedelta, text or object column (datetimes elsewhere than the timestamp) is a
        TypeError naming it, raised before any tick is processed; NaN is a rejected tick."""
        if not isinstance(columns, (Mapping, pd.DataFrame)):
            raise TypeError(f"process_ticks takes a mapping of columns ({', '.join(FIELDS)}) "
                            f"or a DataFrame, got {type(columns).__name__}; a list of tick "
                            "dicts goes to process_market_data")
        missing = [f for f in FIELDS if f not in columns]
        if missing:
            raise ValueError(f"process_ticks: missing column(s) {missing}")
        in_ticks = bool(columns.get("prices_in_ticks", False))
        arr = {}
        for f in FIELDS:
            v = _real_column("process_ticks", f, self._timestamps(columns[f])
                             if f == "timestamp" else columns[f], in_ticks)
            if v.ndim != 1:
                raise ValueError(f"process_ticks: column {f!r} must be one-dimensional, got "
                                 f"shape {v.shape}")
            if f in ("bid_price", "ask_price") and not in_ticks:
                arr[f] = _column(v, to_ticks, self.tick_size)
            elif v.dtype == np.int64:
                arr[f] = np.ascontiguousarray(v)
            else:
                arr[f] = _column(v, to_int, integral=f in _INTEGRAL)
        return self._run(lambda core: core.process(*(arr[f] for f in FIELDS), bool(check_risk)))

    def process_market_data(self, ticks, check_risk=True) -> TickResult:
        """The seed's list of tick dicts (``venue_id`` and ``flags`` are accepted and
        ignored); one dict is one tick; a DataFrame goes to ``process_ticks``.
        ``check_risk=False`` skips the order risk checks (kill switch included): for
        simulations that study the raw signal only."""
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
        return self._run(lambda core: core.process_dicts(ticks, bool(check_risk)))

    def _run(self, process) -> TickResult:
        """``process(core)`` -> the orders as the rows of a (4, n) array; timed (the dict
        path's time includes parsing)."""
        core = self.core
        before = (core.ticks, core.signals, core.orders, core.rejected_ticks,
                  core.rejected_orders)
        t0 = time.perf_counter()
        orders = process(core)
        dt = time.perf_counter() - t0
        self._wall += dt
        return TickResult(ticks=core.ticks - before[0], signal_count=core.signals - before[1],
                          order_count=core.orders - before[2],
                          rejected_ticks=core.rejected_ticks - before[3],
                          rejected_orders=core.rejected_orders - before[4],
                          processing_time_us=dt * 1e6, order_array=orders,
                          tick_size=self.tick_size)

    # ---- state -----------------------------------------------------------------------
    def positions(self) -> pd.Series:
        """Open positions (shares) by symbol id."""
        pos = np.asarray(self.core.pos)
        nz = np.flatnonzero(pos)
        return pd.Series(pos[nz], index=pd.Index(nz, name="symbol_id"), name="position")

    def pnl(self) -> dict:
        """Cash, marked value (at mids) and equity in currency; drawdown from the peak."""
        c = self.core
        ts = self.tick_size
        equity = (2 * c.cash + c.mtm2) * 0.5 * ts
        return {"cash": c.cash * ts, "market_value": c.mtm2 * 0.5 * ts, "equity": equity,
                "drawdown": (c.peak2 - (2 * c.cash + c.mtm2)) * 0.5 * ts,
                "gross_notional": c.gross2 * 0.5 * ts}

    def get_performance_stats(self) -> dict:
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
        }

    def health_check(self, p99_limit_us=10.0, reject_limit=0.05) -> dict:
        """critical: kill switch on; degraded: p99 latency above ``p99_limit_us`` or more
        than ``reject_limit`` of ticks rejected; healthy otherwise."""
        p99_limit_us = _v.number("p99_limit_us", p99_limit_us, 0, finite=False)
        reject_limit = _v.number("reject_limit", reject_limit, 0, 1)
        s = self.get_performance_stats()
        if s["kill_switch"]:
            return {"status": "critical", "message": "drawdown kill switch is on: no orders"}
        problems = []
        if s["p99_latency_us"] > p99_limit_us:
            problems.append(f"p99 latency {s['p99_latency_us']:.2f} µs > {p99_limit_us} µs")
        if s["ticks_processed"] and s["rejected_ticks"] / s["ticks_processed"] > reject_limit:
            problems.append(f"{s['rejected_ticks']} of {s['ticks_processed']} ticks rejected")
        if problems:
            return {"status": "degraded", "message": "; ".join(problems)}
        return {"status": "healthy", "message": f"{s['ticks_processed']} ticks, "
                f"{s['orders_submitted']} orders"}

    # ---- feeds -----------------------------------------------------------------------
    def _timestamps(self, values):
        """Datetimes (NumPy or pandas, time zones included) as int64 counts of the
        configured unit since the epoch (UTC; NaT becomes negative, a rejected tick); other
        values as they are. Their nanoseconds, taken as µs, would be silently 1000x off."""
        dtype = getattr(values, "dtype", None)
        if isinstance(dtype, pd.DatetimeTZDtype):
            values = pd.DatetimeIndex(values).tz_convert("UTC").tz_localize(None)
        v = np.asarray(values)
        if v.dtype.kind != "M":
            return values
        return v.astype(f"datetime64[{self.config['engine']['timestamp_unit']}]").view(np.int64)

    def replay(self, path_or_arrays, speed=None, chunk=10_000, on_chunk=None,
               max_gap=1.0) -> TickResult:
        """Replay recorded ticks: a CSV (gzip allowed) or Parquet file with the six
        ``FIELDS`` columns (prices in currency, timestamps as integers of the configured
        unit, datetimes, or ISO 8601 text: all with UTC offsets or none), or a dict of
        arrays (or a DataFrame). A file that cannot be read is a ``DataError`` naming it.

        ``speed=None`` runs flat out; ``speed=1.0`` paces chunks by their timestamps (2.0 =
        twice as fast). The replay clock is the stream's time with each gap between
        consecutive ticks capped at ``max_gap`` seconds (default 1 s; ``math.inf``: no
        cap) and backward steps counted as none, so a session break or a corrupt
        timestamp pauses a paced replay for at most ``max_gap / speed`` seconds.
        A tick whose timestamp is more than ``max_gap`` + 2 IQR from the median of the 16
        ticks around it (a corrupt far-future or far-past stamp; runs of up to 4) is
        rejected as out of order whatever the speed: accepted, it would make every later
        tick of its symbol out of order and every signal stale.
        ``chunk``: ticks per batch; ``on_chunk(engine, result)`` is called after each."""
        chunk = _v.integer("chunk", chunk, 1)
        if speed is not None:
            speed = _v.number("speed", speed, 0, lo_open=True)
        max_gap = _v.number("max_gap", max_gap, 0, lo_open=True, finite=False)
        if on_chunk is not None and not callable(on_chunk):
            raise TypeError(f"on_chunk must be a callable f(engine, result) or None, got "
                            f"{on_chunk!r}")
        if isinstance(path_or_arrays, (str, os.PathLike)):
            cols = _read_tick_file(Path(path_or_arrays))
        elif isinstance(path_or_arrays, (Mapping, pd.DataFrame)):
            cols = {k: path_or_arrays[k] for k in path_or_arrays}
            missing = [f for f in FIELDS if f not in cols]
            if missing:
                raise ValueError(f"replay: missing column(s) {missing}; columns are "
                                 f"{', '.join(FIELDS)}")
        else:
            raise TypeError(f"replay takes a CSV/Parquet path, a dict of columns or a "
                            f"DataFrame, got {type(path_or_arrays).__name__}")
        in_ticks = bool(cols.get("prices_in_ticks", False))
        for f in FIELDS:    # every column checked before the first chunk runs
            cols[f] = _real_column("replay", f, self._timestamps(cols[f])
                                   if f == "timestamp" else cols[f], in_ticks)
        ts = cols["timestamp"]
        ts = (np.array(ts, dtype=np.int64) if ts.dtype == np.int64
              else _column(ts, to_int, integral=True))          # a copy: marked below
        per_s = 1e6 if self.config["engine"]["timestamp_unit"] == "us" else 1e9
        ts[_far_off(ts, max_gap * per_s)] = -1                  # rejected: out of order
        cols["timestamp"] = ts
        n = len(ts)
        clock = _replay_clock(ts, max_gap * per_s) / per_s if speed else None
        parts = []
        start_wall = time.perf_counter()
        for a in range(0, n, chunk):
            part = {f: v if f == "prices_in_ticks" else np.asarray(v)[a:a + chunk]
                    for f, v in cols.items()}
            if speed:
                wait = clock[a] / speed - (time.perf_counter() - start_wall)
                if wait > 0:
                    time.sleep(wait)
            res = self.process_ticks(part)
            res.order_array[0] += a
            parts.append(res)
            if on_chunk is not None:
                on_chunk(self, res)
        return TickResult.combine(parts, self.tick_size)

    async def run_feed(self, feed, batch=1000, max_delay=0.001, max_messages=None,
                       timeout=None, *, reconnect=0, backoff=0.5,
                       max_message_bytes=2 ** 20) -> TickResult:
        """Consume an async iterator of ticks (dicts, or JSON text/bytes of one dict or a
        list of dicts); stops at the feed's end, after ``max_messages`` messages or
        ``timeout`` seconds. Ticks are processed in batches of up to ``batch``, and whenever
        the feed is quiet for ``max_delay`` seconds: on a slow feed a tick waits at most
        that long for its signal (``None``: only full batches, and the rest at the end).

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
        the count starting again after each message received; past N, ``FeedError``."""
        batch = _v.integer("batch", batch, 1)
        if max_delay is not None:
            max_delay = _v.number("max_delay", max_delay, 0)
        if max_messages is not None:
            max_messages = _v.integer("max_messages", max_messages, 0)
        if timeout is not None:
            timeout = _v.number("timeout", timeout, 0, lo_open=True, finite=False)
            timeout = None if math.isinf(timeout) else timeout
        reconnect = _v.integer("reconnect", reconnect, 0)
        backoff = _v.number("backoff", backoff, 0)
        max_message_bytes = _v.integer("max_message_bytes", max_message_bytes, 1)
        reopen = callable(feed) and not hasattr(feed, "__aiter__")
        if reconnect and not reopen:
            raise TypeError("run_feed(reconnect=N) needs feed to be a callable that opens "
                            "the feed again, e.g. lambda: websocket_feed(url); got "
                            f"{type(feed).__name__}")
        if not reopen and not hasattr(feed, "__aiter__"):
            raise TypeError(f"feed must be an async iterator of messages (or a callable "
                            f"returning one), got {type(feed).__name__}")
        pending: list = []
        parts: list = []
        state = {"count": 0, "error": None, "reconnects": 0}

        def flush():
            if pending:
                res = self.process_market_data(pending)
                res.order_array[0] += sum(p.ticks for p in parts)
                parts.append(res)
                pending.clear()

        def drop(reason, detail):
            self.signal_errors += 1
            self.feed_rejects[reason] += 1
            log.warning("feed: a message was dropped (%s): %s", reason, detail)

        def decode(msg):
            """The message's ticks (a list), or None when it is malformed."""
            if isinstance(msg, (bytes, bytearray, memoryview)):
                if len(msg) > max_message_bytes:
                    return drop("oversized", f"{len(msg):,} bytes > {max_message_bytes:,}")
                try:
                    msg = bytes(msg).decode("utf-8")
                except UnicodeDecodeError as exc:
                    return drop("not_utf8", exc)
            if isinstance(msg, str):
                if len(msg) > max_message_bytes:
                    return drop("oversized", f"{len(msg):,} characters > "
                                f"{max_message_bytes:,}")
                try:
                    msg = json.loads(msg)
                except (ValueError, RecursionError) as exc:   # JSONDecodeError, too deep
                    return drop("not_json", f"{type(exc).__name__}: {str(exc)[:100]}")
            if isinstance(msg, Mapping):
                return [msg]
            if isinstance(msg, list):
                return msg
            return drop("wrong_type", f"a {type(msg).__name__}, not a tick or a list")

        async def opened():
            """``feed()``'s messages: a factory that raises fails on the first read, like a
            feed that cannot connect, so both take the same path below."""
            async for m in feed():
                yield m

        async def consume():
            source = opened() if reopen else feed
            failures = 0
            while True:
                it = source.__aiter__()
                nxt = asyncio.ensure_future(it.__anext__())
                try:
                    while True:
                        if pending and max_delay is not None:
                            done, _ = await asyncio.wait({nxt}, timeout=max_delay)
                            if not done:     # quiet: act on what has arrived
                                flush()
                        try:
                            msg = await nxt
                        except StopAsyncIteration:
                            return
                        except Exception as exc:   # the feed broke: keep what arrived
                            flush()
                            if failures >= reconnect:
                                state["error"] = exc
                                return
                            wait = min(backoff * 2 ** failures, 30.0)
                            failures += 1
                            state["reconnects"] += 1
                            log.warning("feed: %s: %s; reconnecting in %.2f s (%d of %d)",
                                        type(exc).__name__, exc, wait, failures, reconnect)
                            await asyncio.sleep(wait)
                            source = opened()
                            break
                        failures = 0
                        state["count"] += 1
                        count = state["count"]
                        if max_messages is None or count < max_messages:
                            nxt = asyncio.ensure_future(it.__anext__())
                        ticks = decode(msg)
                        if ticks:
                            pending.extend(ticks)
                            if len(pending) >= batch:
                                flush()
                        if max_messages is not None and count >= max_messages:
                            return
                finally:
                    nxt.cancel()

        if max_messages != 0:
            try:
                await asyncio.wait_for(consume(), timeout)
            except asyncio.TimeoutError:
                pass
        flush()
        result = TickResult.combine(parts, self.tick_size)
        exc = state["error"]
        if exc is not None:
            again = (f" and {reconnect} reconnect attempt(s) in a row" if reconnect else "")
            raise FeedError(f"the feed failed ({type(exc).__name__}: {exc}) after "
                            f"{state['count']} message(s){again}; {result.ticks} tick(s) "
                            f"received before that were processed ({result.order_count} "
                            "order(s)); their result is this error's .result",
                            result) from exc
        return result


_FEED_REJECTS = ("not_json", "not_utf8", "oversized", "wrong_type")
_WINDOW = 8    # _far_off's neighbours: 2 * _WINDOW ticks


class FeedError(ConnectionError):
    """A feed failed (disconnected) after its ticks were processed; ``.result`` is the
    ``TickResult`` of what was processed, ``.ticks`` its tick count."""

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result
        self.ticks = result.ticks


def _far_off(ts, gap) -> np.ndarray:
    """Mask of corrupt timestamps (a Tukey fence): a tick more than ``gap`` + 2 IQR from
    the median of its 2 * _WINDOW nearest ticks (itself excluded; the window is centred,
    shifted inwards at the ends). Only unsorted streams with a jump of more than ``gap``
    between consecutive valid ticks are looked at. The IQR scales the fence to the local
    spacing, so an outlier among the neighbours moves the median by less than the fence:
    runs of up to _WINDOW // 2 corrupt ticks are caught. Negative (invalid) timestamps
    are left to the engine."""
    bad = np.zeros(len(ts), dtype=bool)
    valid = np.flatnonzero(ts >= 0)
    w, n = _WINDOW, len(valid)
    if n < 2 * w + 1 or math.isinf(gap):
        return bad
    v = ts[valid].astype(np.float64)
    step = np.diff(v)
    if (step >= 0).all() or not (np.abs(step) > gap).any():
        return bad
    # only ticks within 2w of a jump can be that far from their neighbours' median
    jump = np.zeros(n, dtype=bool)
    jump[1:] = np.abs(step) > gap
    jump[:-1] |= jump[1:]
    near = np.flatnonzero(np.convolve(jump, np.ones(4 * w + 1), mode="same") > 0)
    rows = np.lib.stride_tricks.sliding_window_view(v, 2 * w + 1)   # row r: v[r .. r+2w]
    start = np.clip(near - w, 0, n - 2 * w - 1)                      # each tick's row
    win = np.sort(np.where(np.arange(2 * w + 1) == (near - start)[:, None], np.nan,
                           rows[start]), axis=1)[:, :2 * w]         # self out (NaN sorts last)
    med = 0.5 * (win[:, w - 1] + win[:, w])
    iqr = win[:, (3 * 2 * w) // 4] - win[:, (2 * w) // 4]
    bad[valid[near[np.abs(v[near] - med) > gap + 2 * iqr]]] = True
    return bad


def _replay_clock(ts, gap) -> np.ndarray:
    """Each tick's time on the replay clock (timestamp units from the first valid tick):
    the sum of the gaps between consecutive valid timestamps, each clipped to [0, gap];
    invalid (negative) timestamps add nothing."""
    t = ts.astype(np.float64)
    valid = t >= 0
    if not valid.any():
        return np.zeros(len(t))
    idx = np.where(valid, np.arange(len(t)), 0)
    np.maximum.accumulate(idx, out=idx)
    t = t[idx]
    t[: np.argmax(valid)] = t[np.argmax(valid)]     # before the first valid one
    steps = np.clip(np.diff(t, prepend=t[0]), 0, gap)
    return np.cumsum(steps)


async def websocket_feed(url, max_messages=None, close_timeout=0.5):
    """An async iterator over a websocket's text messages (the ``websockets`` package).

    Stopping while the server still sends (``max_messages``, or the consumer's timeout)
    leaves unread messages ahead of the server's close frame, so the closing handshake
    cannot finish: the connection is dropped after ``close_timeout`` seconds
    (websockets' default, 10 s, made every early stop take 10 s; websockets#1555).
    A close with an error code or a dropped connection raises websockets'
    ``ConnectionClosedError``; ``TickEngine.run_feed`` keeps what arrived before it."""
    import websockets

    if max_messages is not None:
        max_messages = _v.integer("max_messages", max_messages, 1)
    close_timeout = _v.number("close_timeout", close_timeout, 0)
    async with websockets.connect(url, close_timeout=close_timeout) as ws:
        count = 0
        async for msg in ws:
            yield msg
            count += 1
            if max_messages is not None and count >= max_messages:
                return


# ---- alerts --------------------------------------------------------------------------

class AlertMonitor:
    """Rules on the engine's statistics; each breach goes to every sink.

    ``rules``: {"p99_latency_us": 10, "error_rate": 0.01 (rejected ticks / ticks),
    "rejection_rate": 0.5 (rejected orders / signals acted on), "drawdown": 1000 (currency)}.
    ``sinks``: "log" (the ``quantlab.engine`` logger) or callables ``f(alert_dict)``.
    """

    KNOWN = ("p99_latency_us", "error_rate", "rejection_rate", "drawdown")

    def __init__(self, engine: TickEngine, rules: dict, sinks=("log",)):
        unknown = set(rules) - set(self.KNOWN)
        if unknown:
            raise ValueError(f"unknown alert rule(s) {sorted(unknown)}; rules: "
                             f"{', '.join(self.KNOWN)}")
        bad = [s for s in sinks if s != "log" and not callable(s)]
        if bad:
            raise ValueError(f"alert sinks are 'log' or callables, got {bad!r}")
        if not isinstance(engine, TickEngine):
            raise TypeError(f"AlertMonitor watches a TickEngine, got {type(engine).__name__}")
        rules = {k: _v.number(f"alert rule {k!r}", v, 0, finite=False)   # NaN never fires
                 for k, v in rules.items()}
        self.engine, self.rules, self.sinks = engine, rules, list(sinks)
        self.history: list = []

    def check(self) -> list:
        s = self.engine.get_performance_stats()
        tried = s["orders_submitted"] + s["orders_rejected"]
        values = {"p99_latency_us": s["p99_latency_us"],
                  "error_rate": s["rejected_ticks"] / s["ticks_processed"]
                  if s["ticks_processed"] else 0.0,
                  "rejection_rate": s["orders_rejected"] / tried if tried else 0.0,
                  "drawdown": self.engine.pnl()["drawdown"]}
        alerts = [{"rule": k, "value": values[k], "limit": lim,
                   "message": f"{k} = {values[k]:.4g} above {lim}"}
                  for k, lim in self.rules.items() if values[k] > lim]
        for a in alerts:
            for sink in self.sinks:
                if sink == "log":
                    log.warning("alert: %s", a["message"])
                else:
                    sink(a)
        self.history += alerts
        return alerts


# ---- test and benchmark data ---------------------------------------------------------

def synthetic_ticks(n=10_000, n_symbols=50, seed=0, bad_fraction=0.0, start_price=100.0,
                    tick_size=0.01) -> dict:
    """Random-walk quotes with varying book imbalance (columns; prices in currency,
    timestamps in µs). ``bad_fraction`` of ticks are corrupted (crossed quotes,
    negative or NaN prices, negative sizes, unknown symbols, out-of-order timestamps)."""
    n = _v.integer("n", n, 0, 10 ** 8)          # ~10 arrays of n: bounded before allocating
    n_symbols = _v.integer("n_symbols", n_symbols, 1, MAX_SYMBOLS)
    bad_fraction = _v.number("bad_fraction", bad_fraction, 0, 1)
    start_price = _v.number("start_price", start_price, 0, lo_open=True)
    tick_size = _v.number("tick_size", tick_size, 0, lo_open=True)
    rng = np.random.default_rng(seed)
    sym = rng.integers(0, n_symbols, n)
    drift = rng.normal(0, 0.1, n_symbols)           # some symbols trend
    steps = rng.choice([-1, 0, 1], n, p=[0.3, 0.4, 0.3]) + rng.binomial(
        1, np.abs(drift[sym])) * np.sign(drift[sym])
    mid = np.empty(n)
    for s in range(n_symbols):                       # each symbol's own random walk
        idx = np.flatnonzero(sym == s)
        mid[idx] = round(start_price / tick_size) + np.cumsum(steps[idx])
    mid = np.maximum(mid, 10)
    spread = rng.integers(1, 4, n)
    bid, ask = (mid - spread) * tick_size, (mid + spread) * tick_size
    imb = np.clip(rng.normal(0, 0.45, n), -0.95, 0.95)
    total = rng.integers(200, 2000, n)
    bsz = np.rint(total * (1 + imb) / 2).astype(np.int64)
    cols = {"symbol_id": sym.astype(np.int64), "bid_price": bid, "ask_price": ask,
            "bid_size": bsz, "ask_size": (total - bsz).astype(np.int64),
            "timestamp": 1_700_000_000_000_000 + np.cumsum(rng.integers(1, 200, n))}
    if bad_fraction:
        idx = rng.choice(n, int(n * bad_fraction), replace=False)
        kind = rng.integers(0, 6, idx.size)
        b, a = cols["bid_price"], cols["ask_price"]
        k0 = idx[kind == 0]
        b[k0], a[k0] = a[k0] + 0.05, b[k0].copy()          # crossed
        b[idx[kind == 1]] *= -1                             # negative price
        a[idx[kind == 2]] = np.nan                          # missing price
        cols["bid_size"][idx[kind == 3]] = -5               # negative size
        cols["symbol_id"][idx[kind == 4]] = n_symbols + 10_000_000
        cols["timestamp"][idx[kind == 5]] -= 10_000         # out of order
    return cols


def to_dicts(cols, as_strings=False) -> list:
    """Columns -> the seed's list of dicts (prices as decimal strings if asked)."""
    n = len(cols["timestamp"])
    fmt = (lambda x: f"{x:.2f}") if as_strings else float
    return [{"symbol_id": int(cols["symbol_id"][i]), "bid_price": fmt(cols["bid_price"][i]),
             "ask_price": fmt(cols["ask_price"][i]), "bid_size": int(cols["bid_size"][i]),
             "ask_size": int(cols["ask_size"][i]), "timestamp": int(cols["timestamp"][i]),
             "venue_id": 1, "flags": 0} for i in range(n)]


def seed_batch(n_symbols=100, n_ticks=1000) -> list:
    """The seed's sample batch shape: n_symbols x n_ticks dicts, prices as strings,
    constant prices per symbol (so, rightly, no signals)."""
    n_symbols = _v.integer("n_symbols", n_symbols, 0, MAX_SYMBOLS)
    n_ticks = _v.integer("n_ticks", n_ticks, 0, 10 ** 7)
    out = []
    for t in range(n_ticks):
        for s in range(n_symbols):
            p = 100.0 + s
            out.append({"symbol_id": s, "bid_price": f"{p:.2f}", "ask_price": f"{p + 0.01:.2f}",
                        "bid_size": "500", "ask_size": "500", "timestamp": 1_700_000_000_000_000 + t,
                        "venue_id": 1, "flags": 0})
    return out


# ---- dashboard -----------------------------------------------------------------------

def dashboard(engine: TickEngine, history=300):
    """A live bokeh dashboard (a jupyter_bokeh widget): throughput, latency histogram,
    positions and P&L. Call ``.update()`` (or pass it as ``replay(on_chunk=...)``) to
    refresh while a replay runs."""
    history = _v.integer("history", history, 1, 10 ** 6)
    from bokeh.layouts import gridplot
    from bokeh.models import ColumnDataSource

    from quantlab import plots

    src = {"tp": ColumnDataSource({"t": [], "tps": []}),
           "pnl": ColumnDataSource({"t": [], "equity": []}),
           "lat": ColumnDataSource({"left": [], "right": [], "count": []}),
           "pos": ColumnDataSource({"symbol": [], "position": []})}
    f_tp = plots._figure(title="throughput (ticks/s)", height=220)
    f_tp.line("t", "tps", source=src["tp"])
    f_pnl = plots._figure(title="equity (currency)", height=220)
    f_pnl.line("t", "equity", source=src["pnl"], color="#2ca02c")
    f_lat = plots._figure(title="latency (µs, sampled ticks)", height=220)
    f_lat.quad(left="left", right="right", top="count", bottom=0, source=src["lat"])
    f_pos = plots._figure(title="positions (shares)", height=220)
    f_pos.vbar(x="symbol", top="position", width=0.8, source=src["pos"])
    grid = gridplot([[f_tp, f_pnl], [f_lat, f_pos]], sizing_mode="stretch_width")
    state = {"t": 0, "ticks": engine.core.ticks, "wall": time.perf_counter()}

    def update(_engine=None, _result=None):
        now = time.perf_counter()
        s = engine.get_performance_stats()
        state["t"] += 1
        tps = (s["ticks_processed"] - state["ticks"]) / max(now - state["wall"], 1e-9)
        state["ticks"], state["wall"] = s["ticks_processed"], now
        src["tp"].stream({"t": [state["t"]], "tps": [tps]}, rollover=history)
        src["pnl"].stream({"t": [state["t"]], "equity": [engine.pnl()["equity"]]},
                          rollover=history)
        n = min(engine.core.n_samples, len(engine.core.samples))
        if n:
            counts, edges = np.histogram(np.asarray(engine.core.samples[:n]) / 1000.0, 40)
            src["lat"].data = {"left": edges[:-1], "right": edges[1:], "count": counts}
        pos = engine.positions()
        src["pos"].data = {"symbol": pos.index.to_numpy(), "position": pos.to_numpy()}

    try:
        from jupyter_bokeh import BokehModel

        widget = BokehModel(grid)
    except ImportError:   # outside Jupyter: the bokeh layout itself
        widget = grid
    widget.update = update   # type: ignore[attr-defined]
    widget.sources = src     # type: ignore[attr-defined]
    update()
    return widget


# ---- benchmark -----------------------------------------------------------------------

def bench(n_columnar=2_000_000, n_reference=100_000) -> str:
    """``quantlab engine-bench``: a Markdown table of the engine vs the pure-Python
    reference in the same run, and the seed's published 42,735 ticks/s beside them.

    Rows: the seed's batch (100 symbols x 1000 ticks, its dict shape, constant prices)
    and a random-walk dict batch (signals and orders happen) through
    ``process_market_data``; ``n_columnar`` random-walk ticks through ``process_ticks``.
    The reference runs the dict batches whole and ``n_reference`` columnar ticks
    (pre-parsed, so it is timed on the same work), extrapolated per tick. The last row is
    a floor, not an engine: summing the columns once, what reading them costs."""
    n_columnar = _v.integer("n_columnar", n_columnar, 1, 10 ** 8)
    n_reference = _v.integer("n_reference", n_reference, 1, 10 ** 9)
    def timed(f):
        t = time.perf_counter()
        f()
        return time.perf_counter() - t

    rows = []
    seed = seed_batch()
    walk = to_dicts(synthetic_ticks(100_000, n_symbols=100, seed=1), as_strings=True)
    for name, ticks in (("seed batch, 100 symbols x 1000 ticks (dicts)", seed),
                        ("random walk, 100,000 ticks (dicts, orders happen)", walk)):
        # a fresh engine per run: a second pass of the same ticks would be rejected as
        # out of order, which is cheaper than processing them
        engines = [TickEngine() for _ in range(3)]
        ours = min(timed(lambda: e.process_market_data(ticks)) for e in engines)
        ref = reference_engine()
        theirs = timed(lambda: ref.process_market_data(ticks))
        rows.append((name, len(ticks) / ours, len(ticks) / theirs, None))
    cols = synthetic_ticks(n_columnar, n_symbols=100, seed=2)
    eng = TickEngine()
    ours = timed(lambda: eng.process_ticks(cols))
    s = eng.get_performance_stats()
    ref = reference_engine()
    parsed = list(zip(*(np.asarray(_column(cols[f], to_ticks, eng.tick_size)
                                   if f in ("bid_price", "ask_price") else cols[f]).tolist()
                        for f in FIELDS)))[:n_reference]
    theirs = timed(lambda: [ref.tick(i, *t) for i, t in enumerate(parsed)])
    rows.append((f"{n_columnar:,} ticks (NumPy columns)", n_columnar / ours,
                 len(parsed) / theirs, s))
    # the floor of any columnar engine: reading the six input columns once
    arrays = [np.asarray(cols[f]) for f in FIELDS]
    floor = min(timed(lambda: [a.sum() for a in arrays]) for _ in range(5))
    rows.append(("reading those columns once (NumPy sums; no work)", n_columnar / floor,
                 len(parsed) / theirs, None))
    lines = ["| workload | quantlab ticks/s | pure-Python ticks/s | ratio | seed's 42,735/s x |"
             " p50 / p99 / p99.9 latency |", "|---|---|---|---|---|---|"]
    for name, q, r, st in rows:
        lat = (f"{st['p50_latency_us']:.2f} / {st['p99_latency_us']:.2f} / "
               f"{st['p999_latency_us']:.2f} µs" if st else "—")
        lines.append(f"| {name} | {q:,.0f} | {r:,.0f} | {q / r:.0f}x | "
                     f"{q / SEED_TICKS_PER_S:.0f}x | {lat} |")
    return "\n".join(lines)
