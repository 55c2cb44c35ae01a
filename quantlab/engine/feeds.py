"""Ticks from outside: recorded files and arrays (``replay``), async feeds (``run_feed``,
``websocket_feed``), and the clock of a paced replay. ``TickEngine.replay`` and
``TickEngine.run_feed`` (their docstrings give the contract) run the functions here.

A feed that fails raises ``FeedError`` after its ticks are processed (or reconnects);
malformed feed messages are counted and skipped, never raised. A paced replay waits at
most ``max_gap`` per gap and rejects corrupt far-off timestamps. Replay files that cannot
be read (not UTF-8, binary, corrupt Parquet or gzip, missing columns, naive and offset
timestamps mixed) are a ``DataError`` naming the file."""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from quantlab import _validate as _v
from quantlab.data import parse_dates, read_text, user_path
from quantlab.engine.core import _column, _in_ticks, _real_column
from quantlab.engine.reference import FIELDS, _not_real, to_int
from quantlab.engine.results import TickResult
from quantlab.errors import DataError

__all__ = ["replay", "run_feed", "websocket_feed", "FeedError"]

log = logging.getLogger("quantlab.engine")
_WINDOW = 8    # _far_off's neighbours: 2 * _WINDOW ticks


class FeedError(ConnectionError):
    """A feed failed (disconnected) after its ticks (or a deployment's bars) were
    processed; ``.result`` is the ``TickResult`` of what was processed (a deployment's
    statistics), ``.ticks`` its tick count (bars).

    Examples
    --------
    >>> import asyncio
    >>> from quantlab.engine import FeedError, TickEngine
    >>> from quantlab.testing import synthetic_ticks, to_dicts
    >>> async def dropped():
    ...     for t in to_dicts(synthetic_ticks(300, n_symbols=2, seed=0)):
    ...         yield t
    ...     raise ConnectionResetError("peer reset")
    >>> try:
    ...     asyncio.run(TickEngine().run_feed(dropped()))
    ... except FeedError as e:
    ...     print(e.ticks, e.result.ticks, type(e.__cause__).__name__)
    300 300 ConnectionResetError
    """

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result
        self.ticks = result.ticks if hasattr(result, "ticks") else result["ticks_processed"]


# ---- replay --------------------------------------------------------------------------

def replay(engine, path_or_arrays, speed=None, chunk=10_000, on_chunk=None,
           max_gap=1.0) -> TickResult:
    """``engine.replay(...)``: see ``TickEngine.replay``.

    Parameters
    ----------
    engine : TickEngine
        The engine the ticks go through.
    path_or_arrays, speed, chunk, on_chunk, max_gap
        As in ``TickEngine.replay``.

    Returns
    -------
    TickResult

    Examples
    --------
    >>> from quantlab.engine import TickEngine
    >>> from quantlab.engine.feeds import replay
    >>> from quantlab.testing import synthetic_ticks
    >>> replay(TickEngine(), synthetic_ticks(2000, n_symbols=5, seed=1), chunk=700).ticks
    2000
    """
    chunk = _v.integer("chunk", chunk, 1)
    if speed is not None:
        speed = _v.number("speed", speed, 0, lo_open=True)
    max_gap = _v.number("max_gap", max_gap, 0, lo_open=True, finite=False)
    if on_chunk is not None and not callable(on_chunk):
        raise TypeError(f"on_chunk must be a callable f(engine, result) or None, got "
                        f"{on_chunk!r}")
    if isinstance(path_or_arrays, (str, os.PathLike)):
        cols = _read_tick_file(user_path("replay: path_or_arrays", path_or_arrays))
    elif isinstance(path_or_arrays, (Mapping, pd.DataFrame)):
        cols = {k: path_or_arrays[k] for k in path_or_arrays}
        missing = [f for f in FIELDS if f not in cols]
        if missing:
            raise ValueError(f"replay: missing column(s) {missing}; columns are "
                             f"{', '.join(FIELDS)}")
    else:
        raise TypeError(f"replay takes a CSV/Parquet path, a dict of columns or a "
                        f"DataFrame, got {type(path_or_arrays).__name__}")
    in_ticks = _in_ticks("replay", cols)
    for f in FIELDS:    # every column checked before the first chunk runs
        cols[f] = _real_column("replay", f, engine._timestamps(cols[f], "replay")
                               if f == "timestamp" else cols[f], in_ticks)
    ts = cols["timestamp"]
    # a copy (marked below); integers exactly, as process_ticks takes them (a uint64
    # beyond 2^63 wraps negative: rejected), not rounded through float64
    ts = (ts.astype(np.int64) if ts.dtype.kind in "iu"
          else _column(ts, to_int, integral=True))
    per_s = 1e6 if engine.config["engine"]["timestamp_unit"] == "us" else 1e9
    ts[_far_off(ts, max_gap * per_s)] = -1                  # rejected: bad_timestamp
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
        res = engine.process_ticks(part)
        res.order_array[0] += a
        parts.append(res)
        if on_chunk is not None:
            on_chunk(engine, res)
    return TickResult.combine(parts, engine.tick_size)


def _read_tick_file(path: Path) -> dict:
    """The ``FIELDS`` columns of a replay file. Parquet is recognised by its magic bytes
    (any suffix case); anything else is CSV text read as ``ql.data.load_csv`` reads it
    (gzip by content, UTF-8/16/32, binary refused). Timestamp text goes through
    ``load_csv``'s date parser: UTC offsets become UTC, and a column mixing naive and
    offset timestamps is refused (the naive ones' zone is unknown). Every failure is a
    ``DataError`` naming the file."""
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

        text = read_text(path)
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
        df["timestamp"] = _text_times(ts, 1, path)
    for f in FIELDS[:-1]:   # a cell that is not a number is a rejected tick, as in a dict
        if not pd.api.types.is_numeric_dtype(df[f].dtype):
            df[f] = np.fromiter((_float_or_nan(x) for x in df[f]), np.float64, len(df))
    return {f: df[f] for f in FIELDS}


def _text_times(text: pd.Series, first_row: int, where) -> np.ndarray:
    """Timestamp text as datetime64[ns] by a replay file's rules (``ql.data.parse_dates``:
    one format per column, UTC offsets to UTC, naive and offset stamps not mixed); None,
    NaN and blank entries are NaT (a rejected tick). Text that is no date is a
    ``DataError`` naming ``where`` and its row (numbered from ``first_row``)."""
    text = text.astype("string")
    blank = (text.isna() | (text.str.strip() == "")).to_numpy(bool)
    out = np.full(len(text), np.datetime64("NaT"), "datetime64[ns]")
    if (~blank).any():
        rows = np.flatnonzero(~blank)
        out[rows], _ = parse_dates(text[~blank].astype(str), rows + first_row, where)
    return out


def _float_or_nan(x) -> float:
    """A file cell as the oracle parses it (``float(x)``); NaN (a rejected tick) if it
    is not a real number."""
    if _not_real(x):
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError, OverflowError):
        return math.nan


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
    ``ConnectionClosedError``; ``TickEngine.run_feed`` keeps what arrived before it.

    Parameters
    ----------
    url : str
        ``ws://`` or ``wss://`` address.
    max_messages : int or None
        Stop after this many messages (>= 1).
    close_timeout : float
        Seconds to wait for the closing handshake (>= 0).

    Yields
    ------
    str or bytes
        Each message as received.

    Examples
    --------
    A local server sending 50 ticks, consumed by an engine:

    >>> import asyncio, json, websockets
    >>> from quantlab.engine import TickEngine, websocket_feed
    >>> from quantlab.testing import synthetic_ticks, to_dicts
    >>> ticks = to_dicts(synthetic_ticks(50, n_symbols=2, seed=0))
    >>> async def main():
    ...     async def send(ws):
    ...         for t in ticks:
    ...             await ws.send(json.dumps(t))
    ...     async with websockets.serve(send, "127.0.0.1", 0) as server:
    ...         port = server.sockets[0].getsockname()[1]
    ...         feed = websocket_feed(f"ws://127.0.0.1:{port}", max_messages=40)
    ...         return await TickEngine().run_feed(feed, batch=16, timeout=10)
    >>> asyncio.run(main()).ticks
    40
    """
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


# ---- async feeds ---------------------------------------------------------------------

async def run_feed(engine, feed, batch=1000, max_delay=0.001, max_messages=None,
                   timeout=None, *, reconnect=0, backoff=0.5,
                   max_message_bytes=2 ** 20) -> TickResult:
    """``engine.run_feed(...)``: see ``TickEngine.run_feed``.

    Parameters
    ----------
    engine : TickEngine
        The engine the ticks go through.
    feed, batch, max_delay, max_messages, timeout, reconnect, backoff, max_message_bytes
        As in ``TickEngine.run_feed``.

    Returns
    -------
    TickResult

    Examples
    --------
    >>> import asyncio
    >>> from quantlab.engine import TickEngine
    >>> from quantlab.engine.feeds import run_feed
    >>> async def feed():
    ...     yield [{"symbol_id": 0, "bid_price": 100.0, "ask_price": 100.02,
    ...             "bid_size": 300, "ask_size": 100, "timestamp": 1}]
    ...     yield b'{"symbol_id": 0, "bid_price": 100.01}'     # incomplete: rejected
    >>> res = asyncio.run(run_feed(TickEngine(), feed()))
    >>> res.ticks, res.rejected_ticks
    (2, 1)
    """
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
    run = _FeedRun(engine, batch, max_delay, max_messages, reconnect, backoff,
                   max_message_bytes)
    if max_messages != 0:
        try:
            await asyncio.wait_for(run.consume(feed, reopen), timeout)
        except asyncio.TimeoutError:
            pass
    run.flush()
    result = TickResult.combine(run.parts, engine.tick_size)
    exc = run.error
    if exc is not None:
        again = (f" and {reconnect} reconnect attempt(s) in a row" if reconnect else "")
        raise FeedError(f"the feed failed ({type(exc).__name__}: {exc}) after "
                        f"{run.count} message(s){again}; {result.ticks} tick(s) "
                        f"received before that were processed ({result.order_count} "
                        "order(s)); their result is this error's .result",
                        result) from exc
    return result


class _FeedRun:
    """One ``run_feed``: the ticks waiting for a batch (``pending``), the results so far
    (``parts``), the message count and the feed's final error."""

    def __init__(self, engine, batch, max_delay, max_messages, reconnect, backoff,
                 max_message_bytes):
        self.engine, self.batch, self.max_delay = engine, batch, max_delay
        self.max_messages, self.reconnect, self.backoff = max_messages, reconnect, backoff
        self.max_message_bytes = max_message_bytes
        self.pending: list = []
        self.parts: list = []
        self.count = self.reconnects = 0
        self.error = None

    def flush(self):
        if self.pending:
            res = self.engine.process_market_data(self.pending)
            res.order_array[0] += sum(p.ticks for p in self.parts)
            self.parts.append(res)
            self.pending.clear()

    def drop(self, reason, detail):
        self.engine.signal_errors += 1
        self.engine.feed_rejects[reason] += 1
        log.warning("feed: a message was dropped (%s): %s", reason, detail)

    def decode(self, msg):
        """The message's ticks (a list), or None when it is malformed."""
        limit = self.max_message_bytes
        if isinstance(msg, (bytes, bytearray, memoryview)):
            if len(msg) > limit:
                return self.drop("oversized", f"{len(msg):,} bytes > {limit:,}")
            try:
                msg = bytes(msg).decode("utf-8")
            except UnicodeDecodeError as exc:
                return self.drop("not_utf8", exc)
        if isinstance(msg, str):
            if len(msg) > limit:
                return self.drop("oversized", f"{len(msg):,} characters > {limit:,}")
            try:
                msg = json.loads(msg)
            except (ValueError, RecursionError) as exc:   # JSONDecodeError, too deep
                return self.drop("not_json", f"{type(exc).__name__}: {str(exc)[:100]}")
        if isinstance(msg, Mapping):
            return [msg]
        if isinstance(msg, list):
            return msg
        return self.drop("wrong_type", f"a {type(msg).__name__}, not a tick or a list")

    @staticmethod
    async def _opened(feed):
        """``feed()``'s messages: a factory that raises fails on the first read, like a
        feed that cannot connect, so both take the same path in ``consume``."""
        async for m in feed():
            yield m

    async def consume(self, feed, reopen):
        """Read messages until the feed ends, ``max_messages`` or a failure that is not
        reconnected (kept as ``self.error``); reopen the feed after a failure."""
        source = self._opened(feed) if reopen else feed
        failures = 0
        while True:
            it = source.__aiter__()
            nxt = asyncio.ensure_future(it.__anext__())
            try:
                while True:
                    if self.pending and self.max_delay is not None:
                        done, _ = await asyncio.wait({nxt}, timeout=self.max_delay)
                        if not done:     # quiet: act on what has arrived
                            self.flush()
                    try:
                        msg = await nxt
                    except StopAsyncIteration:
                        return
                    except Exception as exc:   # the feed broke: keep what arrived
                        self.flush()
                        if failures >= self.reconnect:
                            self.error = exc
                            return
                        await self._backoff(exc, failures)
                        failures += 1
                        source = self._opened(feed)
                        break
                    failures = 0
                    self.count += 1
                    last = self.max_messages is not None and self.count >= self.max_messages
                    if not last:
                        nxt = asyncio.ensure_future(it.__anext__())
                    self.queue(msg)
                    if last:
                        return
            finally:
                nxt.cancel()

    def queue(self, msg):
        """``msg``'s ticks join the pending batch, which runs once it is full."""
        ticks = self.decode(msg)
        if ticks:
            self.pending.extend(ticks)
            if len(self.pending) >= self.batch:
                self.flush()

    async def _backoff(self, exc, failures):
        wait = min(self.backoff * 2 ** failures, 30.0)
        self.reconnects += 1
        log.warning("feed: %s: %s; reconnecting in %.2f s (%d of %d)",
                    type(exc).__name__, exc, wait, failures + 1, self.reconnect)
        await asyncio.sleep(wait)
