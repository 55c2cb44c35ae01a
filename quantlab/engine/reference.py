"""The tick engine's oracle: a straightforward pure-Python engine doing the same work as
``cython_kernels/ticks.pyx``, operation for operation (the tests require identical
signals, orders, rejections, positions and P&L), and the peer of ``quantlab
engine-bench``. Readable first: one tick at a time, plain Python numbers.
``reference_engine(config)`` builds one with a ``TickEngine``'s configuration."""
from __future__ import annotations

import datetime
import math
import numbers
import re
import time

import numpy as np

from quantlab.engine.config import _core_params, load_config

__all__ = ["PyTickEngine", "reference_engine", "FIELDS", "TICK_REJECTS", "ORDER_REJECTS"]

TICK_REJECTS = ("bad_price", "bad_size", "crossed", "bad_symbol", "out_of_order",
                "clock_skew", "bad_timestamp")
ORDER_REJECTS = ("kill_switch", "rate", "max_position", "max_order_notional",
                 "max_positions", "concentration")
FIELDS = ("symbol_id", "bid_price", "ask_price", "bid_size", "ask_size", "timestamp")


SKEW_CONFIRM = 3       # ticks in a row past max_skew that move the clock on (ticks.pyx)
LIMIT = 2 ** 62        # inputs (prices, sizes, timestamps) beyond it are invalid (-1)
STATE_LIMIT = 2 ** 60  # |cash|, |Σ pos·mid2|, Σ |pos|·mid2 stay below it; a mark or a
                       # fill that would take one beyond is refused (ticks.pyx)


def _bounded(k: int) -> int:
    return k if -LIMIT < k < LIMIT else -1


def _not_real(value) -> bool:
    """A complex number (NumPy's complex scalars would convert by dropping the imaginary
    part), or a NumPy timedelta or datetime (NumPy calls timedelta64 an integer: int()
    of one raised; float() of either in ns gave its count: to_timestamp reads datetimes)."""
    return (isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real)
            or isinstance(value, (np.timedelta64, np.datetime64)))


def to_ticks(value, tick_size: float) -> int:
    """A price (number or decimal string) as integer ticks, rounded half to even; -1 when
    it is not a finite number (or is absurdly large)."""
    if _not_real(value):
        return -1
    try:
        x = float(value) / tick_size
    except (TypeError, ValueError, OverflowError):
        return -1
    # x / tick_size itself may overflow: 1e308 at a 0.01 tick is inf (round raised)
    return _bounded(round(x)) if math.isfinite(x) else -1


def to_int(value, integral: bool = False) -> int:
    """A size, id or timestamp as an integer (ints exactly, others rounded half to even);
    -1 if unparsable or absurdly large, or (``integral``: ids, timestamps) if it has a
    fraction: symbol 1.5 is no symbol, never symbol 2."""
    if isinstance(value, numbers.Integral) and not isinstance(value, np.timedelta64):
        return _bounded(int(value))           # NumPy integers too: exact, not via float
    if _not_real(value):
        return -1
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        return -1
    if not math.isfinite(x) or (integral and not x.is_integer()):
        return -1
    return _bounded(round(x))


# ISO 8601 extended format (RFC 3339 and its relatives): a date, optionally a time with
# minutes, seconds and any number of fraction digits, then optionally Z or a UTC offset
_ISO = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
                  r"(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]+))?)?"
                  r"([Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?)?")
_EPOCH_DAY = datetime.date(1970, 1, 1).toordinal()
# nanoseconds per unit of a datetime64, as (numerator, denominator); Y and M go via days
_NS_PER = {"W": (7 * 86_400 * 10 ** 9, 1), "D": (86_400 * 10 ** 9, 1),
           "h": (3_600 * 10 ** 9, 1), "m": (60 * 10 ** 9, 1), "s": (10 ** 9, 1),
           "ms": (10 ** 6, 1), "us": (10 ** 3, 1), "ns": (1, 1), "ps": (1, 10 ** 3),
           "fs": (1, 10 ** 6), "as": (1, 10 ** 9)}


def _civil(y, mo, d, h=0, mi=0, s=0, frac_ns=0, offset_ns=0) -> int | None:
    """Nanoseconds since the epoch (UTC) of a wall time at ``offset_ns`` east of UTC;
    None when it is no date or time (Feb 30, 25:00)."""
    try:
        day = datetime.date(y, mo, d).toordinal() - _EPOCH_DAY
        datetime.time(h, mi, s)
    except ValueError:
        return None
    return ((day * 86_400 + h * 3_600 + mi * 60 + s) * 10 ** 9 + frac_ns - offset_ns)


def _iso_ns(text: str) -> int | None:
    """``_ISO`` text as nanoseconds since the epoch (digits past the ninth dropped); None
    when it is not one. No offset: UTC."""
    m = _ISO.fullmatch(text)
    if m is None:
        return None
    y, mo, d, h, mi, s, frac, off = m.groups()
    offset = 0
    if off and off not in "Zz":
        oh, om = int(off[1:3]), int(off[-2:]) if len(off) > 3 else 0
        if oh > 23 or om > 59:
            return None
        offset = (1 if off[0] == "+" else -1) * (oh * 60 + om) * 60 * 10 ** 9
    return _civil(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0),
                  int((frac or "")[:9].ljust(9, "0")), offset)


def to_timestamp(value, unit_ns: int = 1000) -> int:
    """A tick's timestamp as an integer count of ``unit_ns`` nanoseconds since the epoch
    (UTC), -1 when it is none (``bad_timestamp``). Numbers (and numeric strings) as
    ``to_int(value, integral=True)``: already in the unit, a fraction is rejected.
    Datetimes -- ISO 8601 text (``2024-01-02T14:30:00.123Z``, ``+01:00`` offsets, ``T``
    or a space, a date alone; ASCII bytes too), ``datetime.datetime`` and ``pd.Timestamp``,
    ``np.datetime64`` -- are converted, floored to the unit as a datetime64 column is:
    with a UTC offset (or time zone) to UTC; without, taken as UTC, as a naive datetime64
    column is. Before 1970 or from 2^62 units on: -1."""
    k = to_int(value, True)
    if k != -1:
        return k
    if isinstance(value, (bytes, bytearray)):   # ASCII bytes: their text (the kernel's)
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            return -1
    if isinstance(value, str):
        ns = _iso_ns(value)
    elif isinstance(value, datetime.datetime):      # pd.Timestamp is one, pd.NaT too
        if value != value:
            return -1
        off = value.utcoffset()
        ns = _civil(value.year, value.month, value.day, value.hour, value.minute,
                    value.second, value.microsecond * 1000 + getattr(value, "nanosecond", 0),
                    0 if off is None else off // datetime.timedelta(microseconds=1) * 1000)
    elif isinstance(value, np.datetime64) and not np.isnat(value):
        unit, count = np.datetime_data(value.dtype)
        if unit in ("Y", "M"):
            value, unit, count = value.astype("datetime64[D]"), "D", 1
        if unit not in _NS_PER:
            return -1
        num, den = _NS_PER[unit]
        ticks = int(value.astype(np.int64)) * count * num // (den * unit_ns)
        return _bounded(ticks) if ticks >= 0 else -1
    else:
        return -1
    return _bounded(ns // unit_ns) if ns is not None and ns >= 0 else -1


def parse_tick(tick: dict, tick_size: float, unit_ns: int = 1000) -> tuple:
    """(symbol, bid, ask, bid_size, ask_size, timestamp) as integers from a seed dict
    (timestamps in units of ``unit_ns`` ns: ``to_timestamp``); something that is not a
    mapping has every field missing (-1)."""
    get = getattr(tick, "get", None)
    if get is None:
        return (-1,) * 6
    return (to_int(get("symbol_id"), True), to_ticks(get("bid_price"), tick_size),
            to_ticks(get("ask_price"), tick_size), to_int(get("bid_size")),
            to_int(get("ask_size")), to_timestamp(get("timestamp"), unit_ns))


def _out(v: int) -> bool:
    return not -STATE_LIMIT < v < STATE_LIMIT


class PyTickEngine:
    """The pure-Python oracle: the kernel's state and steps in plain Python numbers;
    made by ``reference_engine(config)``.

    Parameters
    ----------
    p : dict
        ``TickCore``'s parameters (``quantlab.engine.config._core_params``).

    Examples
    --------
    >>> from quantlab.engine import TickEngine, reference_engine
    >>> from quantlab.testing import synthetic_ticks, to_dicts
    >>> ticks = to_dicts(synthetic_ticks(1000, n_symbols=3, seed=1))
    >>> ref = reference_engine()
    >>> orders = ref.process_market_data(ticks)
    >>> len(orders) == TickEngine().process_market_data(ticks).order_count
    True
    >>> ref.ticks, ref.tick_rejects
    (1000, [0, 0, 0, 0, 0, 0, 0])
    """

    def __init__(self, p: dict):
        self.p = p
        n = p["capacity"]
        self.last_ts, self.n_ticks, self.pos, self.mid2 = [0] * n, [0] * n, [0] * n, [0] * n
        self.fast, self.slow = [0.0] * n, [0.0] * n
        self.alpha_fast = 2.0 / (p["fast_span"] + 1)
        self.alpha_slow = 2.0 / (p["slow_span"] + 1)
        self.cash = self.mtm2 = self.gross2 = self.peak2 = self.latest_ts = 0
        self.open_positions = 0
        self.killed = self.started = False
        self.ring = [-(2 ** 63)] * max(p["max_orders_per_second"], 1)
        self.ring_i = 0
        self.ticks = self.signals = self.stale = self.orders = 0
        self.tick_rejects = [0] * len(TICK_REJECTS)
        skew = p.get("max_skew", LIMIT)
        self.max_skew = skew if 0 <= skew < LIMIT else LIMIT
        self.skew_ts = self.skew_n = 0   # the last clock-skew reject, how many in a row agree
        self.order_rejects = [0] * 6
        self.latencies: list[int] = []

    def process_market_data(self, ticks, check_risk=True) -> list:
        """Seed dicts in, orders (tick index, symbol, qty, price ticks) out.

        Parameters
        ----------
        ticks : iterable of dict
            The seed's tick dicts (``TickEngine.process_market_data``).
        check_risk : bool
            False skips the order risk checks.

        Returns
        -------
        list of tuple

        Examples
        --------
        >>> from quantlab.engine import reference_engine
        >>> ref = reference_engine()
        >>> ref.process_market_data([{"symbol_id": 0, "bid_price": "100.00",
        ...     "ask_price": "100.02", "bid_size": 300, "ask_size": 100, "timestamp": 1}])
        []
        >>> ref.ticks, ref.mid2[0]
        (1, 20002)
        """
        out = []
        every = self.p["sample_every"]
        tick_size, unit_ns = self.p["tick_size"], self.p.get("unit_ns", 1000)
        for i, tick in enumerate(ticks):
            t0 = time.perf_counter_ns() if every and self.ticks % every == 0 else None
            order = self.tick(i, *parse_tick(tick, tick_size, unit_ns), check_risk)
            if order:
                out.append(order)
            if t0 is not None:
                self.latencies.append(time.perf_counter_ns() - t0)
        return out

    def tick(self, idx, s, bid, ask, bsz, asz, ts, check_risk=True):
        """One parsed tick through the kernel's four steps (``ticks.pyx``'s ``_tick``):
        validate, mark, signal, order.

        Parameters
        ----------
        idx : int
            The tick's index (reported with its order).
        s, bid, ask, bsz, asz, ts : int
            Symbol id, bid and ask in ticks, sizes, timestamp (``parse_tick``; -1: missing).
        check_risk : bool
            False skips the order risk checks.

        Returns
        -------
        tuple or None
            The order (idx, symbol, qty, price ticks), or None.

        Examples
        --------
        >>> from quantlab.engine import reference_engine
        >>> ref = reference_engine({"signal": {"slow_span": 2, "fast_span": 1}})
        >>> ref.tick(0, 0, 10000, 10002, 300, 100, 1)      # warm-up
        >>> ref.tick(1, 0, 10001, 10003, 300, 100, 2)      # rising, bid-heavy: buy
        (1, 0, 100, 10003)
        >>> ref.tick(2, 0, 10003, 10002, 300, 100, 3), ref.tick_rejects[2]   # crossed
        (None, 1)
        """
        self.ticks += 1
        if not self._valid(s, bid, ask, bsz, asz, ts):          # 1. validation
            return None
        m2 = bid + ask
        if not self._mark(s, m2, ts):                            # 2. marks, kill switch
            return None
        direction = self._signal(s, bid, ask, bsz, asz)          # 3. signal
        if direction == 0:
            return None
        self.signals += 1
        if self.latest_ts - ts > self.p["max_age"]:
            self.stale += 1
            return None
        qty = direction * self.p["order_size"]                   # 4. the order
        price = ask if direction > 0 else bid
        if not self._fill(s, ts, qty, price, m2, check_risk):
            return None
        return (idx, s, qty, price)

    def _valid(self, s, bid, ask, bsz, asz, ts) -> bool:
        """Step 1: False (the reason counted) for a tick to reject."""
        if s < 0 or s >= self.p["capacity"]:
            self.tick_rejects[3] += 1
            return False
        if bid <= 0 or ask <= 0 or bid >= LIMIT or ask >= LIMIT:
            self.tick_rejects[0] += 1
            return False
        if bsz < 0 or asz < 0 or bsz >= LIMIT or asz >= LIMIT or bsz + asz == 0:
            self.tick_rejects[1] += 1
            return False
        if bid >= ask:
            self.tick_rejects[2] += 1
            return False
        if ts < 0 or ts >= LIMIT:          # missing, unparsable, before 1970, absurd
            self.tick_rejects[6] += 1
            return False
        if self.n_ticks[s] > 0 and ts < self.last_ts[s]:
            self.tick_rejects[4] += 1
            return False
        if self.started and ts - self.latest_ts > self.max_skew:   # a far-future stamp,
            # unless SKEW_CONFIRM in a row (each within max_skew of the one before) agree
            agree = self.skew_n > 0 and abs(ts - self.skew_ts) <= self.max_skew
            self.skew_n = self.skew_n + 1 if agree else 1
            self.skew_ts = ts
            if self.skew_n < SKEW_CONFIRM:
                self.tick_rejects[5] += 1
                return False
        self.skew_n = 0
        return True

    def _mark(self, s, m2, ts) -> bool:
        """Step 2: the symbol's mark and the drawdown kill switch; False (a bad price,
        nothing changed) when the exact state cannot hold the new mark."""
        if self.n_ticks[s] > 0:
            d = m2 - self.mid2[s]
            mtm2 = self.mtm2 + self.pos[s] * d
            gross2 = self.gross2 + abs(self.pos[s]) * d
            if _out(mtm2) or _out(gross2):
                self.tick_rejects[0] += 1
                return False
            self.mtm2, self.gross2 = mtm2, gross2
        self.mid2[s] = m2
        self.last_ts[s] = ts
        if not self.started or ts > self.latest_ts:
            self.latest_ts = ts
            self.started = True
        eq2 = 2 * self.cash + self.mtm2
        if eq2 > self.peak2:
            self.peak2 = eq2
        if (self.peak2 - eq2) * 0.5 * self.p["tick_size"] > self.p["max_drawdown"]:
            self.killed = True
        return True

    def _signal(self, s, bid, ask, bsz, asz) -> int:
        """Step 3: update the symbol's EWMAs of the microprice; +1, -1 or 0 (none, or
        still in warmup)."""
        p = self.p
        tot = float(bsz + asz)
        micro = (float(bid) * asz + float(ask) * bsz) / tot
        if self.n_ticks[s] == 0:
            self.fast[s] = micro
            self.slow[s] = micro
        else:
            self.fast[s] = self.fast[s] + self.alpha_fast * (micro - self.fast[s])
            self.slow[s] = self.slow[s] + self.alpha_slow * (micro - self.slow[s])
        self.n_ticks[s] += 1
        if self.n_ticks[s] < p["slow_span"]:
            return 0
        imb = (float(bsz) - float(asz)) / tot
        direction = 0
        if self.fast[s] > self.slow[s] and imb >= p["threshold"]:
            direction = 1
        elif self.fast[s] < self.slow[s] and imb <= -p["threshold"]:
            direction = -1
        return 0 if abs(imb) < p["min_confidence"] else direction

    def _fill(self, s, ts, qty, price, m2, check_risk) -> bool:
        """Step 4: the state after the fill, refused (risk checks or not) when the exact
        state cannot hold it, then the risk checks; True when filled."""
        newpos = self.pos[s] + qty
        cash = self.cash - qty * price
        mtm2 = self.mtm2 + qty * m2
        gross_after = self.gross2 + (abs(newpos) - abs(self.pos[s])) * m2
        if _out(cash) or _out(mtm2) or _out(gross_after):
            self.order_rejects[3] += 1
            return False
        if check_risk and not self.allowed(s, ts, qty, price, newpos, m2, gross_after):
            return False
        self.cash, self.mtm2, self.gross2 = cash, mtm2, gross_after
        if self.pos[s] == 0:
            self.open_positions += 1
        elif newpos == 0:
            self.open_positions -= 1
        self.pos[s] = newpos
        self.ring[self.ring_i] = ts
        self.ring_i = (self.ring_i + 1) % len(self.ring)
        self.orders += 1
        return True

    def allowed(self, s, ts, qty, price, newpos, m2, gross_after) -> bool:
        """The risk checks in the kernel's order (kill switch, rate, max position, max
        order notional, max positions, concentration); a rejection is counted under its
        reason.

        Parameters
        ----------
        s : int
            Symbol id.
        ts : int
            The tick's timestamp.
        qty, price : int
            The order: signed shares, price in ticks.
        newpos : int
            The symbol's position after the fill.
        m2 : int
            The symbol's mark in half ticks (bid + ask).
        gross_after : int
            Σ |pos|·mid2 after the fill.

        Returns
        -------
        bool

        Examples
        --------
        >>> from quantlab.engine import reference_engine
        >>> ref = reference_engine({"risk": {"max_position": 100}})
        >>> ref.allowed(0, 1, 100, 10001, 100, 20002, 2_000_200)
        True
        >>> ref.allowed(0, 1, 100, 10001, 200, 20002, 4_000_400), ref.order_rejects
        (False, [0, 0, 1, 0, 0, 0])
        """
        p = self.p
        if self.killed:
            self.order_rejects[0] += 1
            return False
        if p["max_orders_per_second"] <= 0 or self.ring[self.ring_i] > ts - p["second"]:
            self.order_rejects[1] += 1
            return False
        if abs(newpos) > p["max_position"]:
            self.order_rejects[2] += 1
            return False
        if float(p["order_size"]) * price * p["tick_size"] > p["max_order_notional"]:
            self.order_rejects[3] += 1
            return False
        if self.pos[s] == 0 and self.open_positions >= p["max_positions"]:
            self.order_rejects[4] += 1
            return False
        if float(abs(newpos)) * m2 > p["max_concentration"] * max(
                float(gross_after), 2.0 * p["concentration_base"] / p["tick_size"]):
            self.order_rejects[5] += 1
            return False
        return True


def reference_engine(config=None) -> PyTickEngine:
    """The pure-Python oracle with the same configuration as ``TickEngine(config)``.

    Parameters
    ----------
    config : str, Path, dict or None
        As for ``TickEngine`` (``load_config``).

    Returns
    -------
    PyTickEngine

    Examples
    --------
    >>> from quantlab.engine import reference_engine
    >>> ref = reference_engine({"risk": {"max_position": 500}})
    >>> ref.p["max_position"], ref.p["tick_size"]
    (500, 0.01)
    """
    return PyTickEngine(_core_params(load_config(config)))
