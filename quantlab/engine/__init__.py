"""A low-latency tick engine in Cython: quotes in, signals, risk-checked orders,
positions and P&L out, with sampled latency statistics, health checks and alerts.

One engine replaces the seed's Rust/Go/C++ trio. ``TickEngine.process_ticks(columns)``
runs NumPy columns of any real dtype (int32 ids, float32 prices, float sizes as pandas and
Parquet hold them: converted chunk by chunk in the kernel) through the Cython core without
per-tick Python objects;
``process_market_data(ticks)`` takes the seed's dicts (prices and sizes as strings or
numbers). The pure-Python oracle ``reference_engine()`` (``quantlab.engine.reference``)
does the same work tick by tick, and the tests require identical results. Tick semantics
and the int64 bounds (a quote or fill that would take cash or marks past 2^60 is
rejected): see ``cython_kernels/ticks.pyx``. Bad ticks are counted and skipped, never
raised; so are malformed feed messages (``run_feed``). A feed that fails raises
``FeedError`` after its ticks are processed (or reconnects, ``reconnect=``); a paced
``replay`` waits at most ``max_gap`` per gap and rejects corrupt far-off timestamps. On
every path a tick stamped more than ``risk.max_clock_skew_s`` after the newest accepted
timestamp is rejected (``clock_skew``): accepted, a corrupt far-future stamp would make
every later signal stale and its symbol's later ticks out of order. The third such tick in
a row, each within the limit of the one before, is accepted: after a quiet spell longer
than the limit the feed's clock has moved on (``SKEW_CONFIRM`` in ``cython_kernels/ticks.pyx``). Replay files that
cannot be read (not UTF-8, binary, corrupt Parquet or gzip, missing columns, naive and
offset timestamps mixed) are a ``DataError`` naming the file. Arguments and settings out
of range raise ``ValueError``/``TypeError`` naming them (``quantlab._validate``).

Timestamps, one rule for columns and dicts (``bars._timestamps`` reads a text, bytes or
object column value by value with the dicts' own parser), so a tick gives the same result
whichever way it arrives: a number -- an int, a float without a fraction, a bool, or
their text: ``"1700000000"`` -- is a count of ``engine.timestamp_unit`` since the epoch
(never guessed from its digit count); a datetime -- datetime64 of any unit,
``datetime``, ``pd.Timestamp`` or ``np.datetime64`` objects, ISO 8601 text -- is
converted to the unit, floored, with its zone or UTC offset to UTC, and without one taken
as UTC (naive and zoned stamps may mix). Anything else -- text that is no ISO 8601
date, bytes that are no number, NaN, None, NaT, a fraction, before 1970, or 2^62 units
on (2500-01-01 in ns; in µs it is a stamp, far ahead: ``clock_skew``) -- is that tick's
``bad_timestamp``, never an error for its batch. A column whose dtype holds no stamps
(complex, timedelta64) is a ``TypeError``. A replay file's text timestamps keep
``ql.data.load_csv``'s date rules (one format per column; naive and offset mixed: above).

Modules: ``config`` (settings: YAML, dict, ``QUANTLAB_<SECTION>_<KEY>`` variables),
``core`` (``TickEngine`` and its column parsing), ``results`` (``TickResult``), ``feeds``
(replay, async and websocket feeds, ``FeedError``), ``alerts`` (``AlertMonitor``,
health), ``reference`` (the pure-Python oracle), ``bench`` (``quantlab engine-bench``),
``bars`` (``BarAggregator``: ticks -> time bars a deployment trades on).
The live dashboard is ``quantlab.plots.engine_dashboard``; synthetic ticks are in
``quantlab.testing``.
"""
from quantlab.engine.alerts import AlertMonitor
from quantlab.engine.bars import BarAggregator
from quantlab.engine.config import DEFAULT_CONFIG, load_config
from quantlab.engine.core import TickEngine
from quantlab.engine.feeds import FeedError, websocket_feed
from quantlab.engine.reference import FIELDS, PyTickEngine, reference_engine
from quantlab.engine.results import TickResult

# the function, not the module: `from quantlab.engine import bench` (the CLI) runs it
from quantlab.engine.bench import bench  # noqa: E402  (isort: skip)

__all__ = ["TickEngine", "TickResult", "AlertMonitor", "BarAggregator", "FeedError", "load_config",
           "reference_engine", "PyTickEngine", "websocket_feed", "bench", "DEFAULT_CONFIG",
           "FIELDS"]
