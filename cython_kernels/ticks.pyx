# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The tick engine's core: per-tick validation, signals, risk checks and fills.

State is preallocated per symbol (capacity fixed at construction); nothing is allocated
per tick. Prices are int64 ticks (quantised by the caller), cash is int64 ticks x shares
and marks are in half ticks (bid + ask), so positions, cash and P&L are exact integers;
only the signal (EWMAs of the microprice, book imbalance) uses doubles. The pure-Python
oracle ``quantlab/engine_reference.py`` performs the same operations in the same order,
and the tests require identical signals, orders, rejections, positions and P&L.

Per tick, in order:
1. validate (reject and count: bad price, bad size, crossed or locked book, symbol id out
   of range, timestamp negative/unparsable or before the symbol's last);
2. mark: mid2 = bid + ask; running Σ pos·mid2 and Σ |pos|·mid2 updated by the change;
   drawdown kill switch when peak - equity exceeds the limit;
3. signal after ``warmup`` ticks of the symbol: +1 when the fast EWMA of the microprice is
   above the slow one and imbalance >= threshold, -1 mirrored; kept when |imbalance| >=
   min_confidence, dropped as stale when the tick is older than the newest seen by more
   than max_age;
4. order of ``order_size`` at the touch, through the risk checks in this order: kill
   switch, orders per second, max position, max order notional, max open positions,
   concentration; filled at once.
"""
import numpy as np

from libc.math cimport fabs
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

# rejection reasons: indices into the counters, names in the same order
cdef enum:
    BAD_PRICE, BAD_SIZE, CROSSED, BAD_SYMBOL, OUT_OF_ORDER
cdef enum:
    KILL, RATE, POSITION, NOTIONAL, MAX_POSITIONS, CONCENTRATION
TICK_REJECTS = ("bad_price", "bad_size", "crossed", "bad_symbol", "out_of_order")
ORDER_REJECTS = ("kill_switch", "rate", "max_position", "max_order_notional",
                 "max_positions", "concentration")


cdef inline long long _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1000000000LL + ts.tv_nsec


cdef inline long long _abs(long long v) noexcept nogil:
    return -v if v < 0 else v


cdef class TickCore:
    """Engine state and the per-tick loop. Parameters are fixed at construction."""
    # parameters
    cdef readonly Py_ssize_t capacity, warmup, max_positions, sample_every
    cdef readonly double alpha_fast, alpha_slow, threshold, min_confidence, tick_size
    cdef readonly double max_order_notional, max_drawdown, max_concentration, conc_base
    cdef readonly long long max_position, order_size, max_age, second, max_ops
    # per-symbol state
    cdef public long long[::1] last_ts, n_ticks, pos, mid2
    cdef public double[::1] fast, slow
    # book-wide state
    cdef public long long cash, mtm2, gross2, peak2, latest_ts, open_positions
    cdef public bint killed, started
    cdef long long[::1] ring
    cdef public Py_ssize_t ring_i
    # counters
    cdef public long long ticks, signals, stale, orders
    cdef public long long[::1] tick_rejects, order_rejects
    # latency samples (ns), a ring
    cdef public long long[::1] samples
    cdef public Py_ssize_t n_samples

    def __init__(self, Py_ssize_t capacity, double tick_size, Py_ssize_t fast_span,
                 Py_ssize_t slow_span, double threshold, double min_confidence,
                 long long max_age, long long order_size, long long max_position,
                 double max_order_notional, Py_ssize_t max_orders_per_second,
                 double max_drawdown, Py_ssize_t max_positions, double max_concentration,
                 double concentration_base, long long second, Py_ssize_t sample_every,
                 Py_ssize_t max_samples):
        self.capacity = capacity
        self.tick_size = tick_size
        self.alpha_fast = 2.0 / (fast_span + 1)
        self.alpha_slow = 2.0 / (slow_span + 1)
        self.warmup = slow_span
        self.threshold = threshold
        self.min_confidence = min_confidence
        self.max_age = max_age
        self.order_size = order_size
        self.max_position = max_position
        self.max_order_notional = max_order_notional
        self.max_ops = max_orders_per_second
        self.max_drawdown = max_drawdown
        self.max_positions = max_positions
        self.max_concentration = max_concentration
        self.conc_base = concentration_base
        self.second = second
        self.sample_every = sample_every
        self.last_ts = np.zeros(capacity, dtype=np.int64)
        self.n_ticks = np.zeros(capacity, dtype=np.int64)
        self.pos = np.zeros(capacity, dtype=np.int64)
        self.mid2 = np.zeros(capacity, dtype=np.int64)
        self.fast = np.zeros(capacity)
        self.slow = np.zeros(capacity)
        self.ring = np.full(max(max_orders_per_second, 1), np.iinfo(np.int64).min, dtype=np.int64)
        self.tick_rejects = np.zeros(5, dtype=np.int64)
        self.order_rejects = np.zeros(6, dtype=np.int64)
        self.samples = np.zeros(max(max_samples, 1), dtype=np.int64)

    def process(self, const long long[::1] sym, const long long[::1] bid,
                const long long[::1] ask, const long long[::1] bsz,
                const long long[::1] asz, const long long[::1] ts, bint check_risk=True):
        """Process a batch; returns (order tick index, symbol, signed qty, price ticks).
        ``check_risk=False`` skips step 4's checks (the order is filled regardless)."""
        cdef Py_ssize_t n = sym.shape[0], i
        o_i_np = np.empty(n, dtype=np.int64)
        o_s_np = np.empty(n, dtype=np.int64)
        o_q_np = np.empty(n, dtype=np.int64)
        o_p_np = np.empty(n, dtype=np.int64)
        cdef long long[::1] o_i = o_i_np, o_s = o_s_np, o_q = o_q_np, o_p = o_p_np
        cdef Py_ssize_t k = 0, every = self.sample_every, left = 0
        cdef long long t0
        cdef bint sample
        # ticks until the next sampled one (those with ticks % every == 0): a countdown,
        # not a 64-bit division per tick (tens of cycles, a third of a tick's time)
        if every > 0:
            left = (every - self.ticks % every) % every
        with nogil:
            for i in range(n):
                sample = every > 0 and left == 0
                if sample:
                    t0 = _now_ns()
                k += self._tick(i, sym[i], bid[i], ask[i], bsz[i], asz[i], ts[i], check_risk,
                                &o_i[k], &o_s[k], &o_q[k], &o_p[k])
                if sample:
                    self.samples[self.n_samples % self.samples.shape[0]] = _now_ns() - t0
                    self.n_samples += 1
                left = every - 1 if left == 0 else left - 1
        return o_i_np[:k], o_s_np[:k], o_q_np[:k], o_p_np[:k]

    cdef int _tick(self, Py_ssize_t idx, long long s, long long bid, long long ask,
                   long long bsz, long long asz, long long ts, bint check_risk,
                   long long* oi,
                   long long* os, long long* oq, long long* op) noexcept nogil:
        cdef long long m2, d, qty, price, newpos, gross_after, eq2
        cdef double micro, imb, tot
        cdef int direction = 0
        self.ticks += 1
        # 1. validation
        if s < 0 or s >= self.capacity:
            self.tick_rejects[BAD_SYMBOL] += 1
            return 0
        if bid <= 0 or ask <= 0:
            self.tick_rejects[BAD_PRICE] += 1
            return 0
        if bsz < 0 or asz < 0 or bsz + asz == 0:
            self.tick_rejects[BAD_SIZE] += 1
            return 0
        if bid >= ask:
            self.tick_rejects[CROSSED] += 1
            return 0
        if ts < 0 or (self.n_ticks[s] > 0 and ts < self.last_ts[s]):
            self.tick_rejects[OUT_OF_ORDER] += 1
            return 0
        # 2. marks and the drawdown kill switch
        m2 = bid + ask
        if self.n_ticks[s] > 0:
            d = m2 - self.mid2[s]
            self.mtm2 += self.pos[s] * d
            self.gross2 += _abs(self.pos[s]) * d
        self.mid2[s] = m2
        self.last_ts[s] = ts
        if not self.started or ts > self.latest_ts:
            self.latest_ts = ts
            self.started = True
        eq2 = 2 * self.cash + self.mtm2
        if eq2 > self.peak2:
            self.peak2 = eq2
        if (self.peak2 - eq2) * 0.5 * self.tick_size > self.max_drawdown:
            self.killed = True
        # 3. signal
        tot = <double>(bsz + asz)
        micro = (<double>bid * asz + <double>ask * bsz) / tot
        if self.n_ticks[s] == 0:
            self.fast[s] = micro
            self.slow[s] = micro
        else:
            self.fast[s] = self.fast[s] + self.alpha_fast * (micro - self.fast[s])
            self.slow[s] = self.slow[s] + self.alpha_slow * (micro - self.slow[s])
        self.n_ticks[s] += 1
        if self.n_ticks[s] < self.warmup:
            return 0
        imb = (<double>bsz - <double>asz) / tot
        if self.fast[s] > self.slow[s] and imb >= self.threshold:
            direction = 1
        elif self.fast[s] < self.slow[s] and imb <= -self.threshold:
            direction = -1
        if direction == 0 or fabs(imb) < self.min_confidence:
            return 0
        self.signals += 1
        if self.latest_ts - ts > self.max_age:
            self.stale += 1
            return 0
        # 4. the order through the risk checks
        qty = direction * self.order_size
        price = ask if direction > 0 else bid
        newpos = self.pos[s] + qty
        gross_after = self.gross2 + (_abs(newpos) - _abs(self.pos[s])) * m2
        if check_risk and not self._allowed(s, ts, qty, price, newpos, m2, gross_after):
            return 0
        self.cash -= qty * price
        self.mtm2 += qty * m2
        self.gross2 = gross_after
        if self.pos[s] == 0:
            self.open_positions += 1
        elif newpos == 0:
            self.open_positions -= 1
        self.pos[s] = newpos
        self.ring[self.ring_i] = ts
        self.ring_i = (self.ring_i + 1) % self.ring.shape[0]
        self.orders += 1
        oi[0] = idx
        os[0] = s
        oq[0] = qty
        op[0] = price
        return 1

    cdef bint _allowed(self, long long s, long long ts, long long qty, long long price,
                       long long newpos, long long m2, long long gross_after) noexcept nogil:
        """The risk checks in order; a rejection is counted under its reason."""
        if self.killed:
            self.order_rejects[KILL] += 1
            return False
        if self.max_ops <= 0 or self.ring[self.ring_i] > ts - self.second:
            self.order_rejects[RATE] += 1
            return False
        if _abs(newpos) > self.max_position:
            self.order_rejects[POSITION] += 1
            return False
        if <double>self.order_size * price * self.tick_size > self.max_order_notional:
            self.order_rejects[NOTIONAL] += 1
            return False
        if self.pos[s] == 0 and self.open_positions >= self.max_positions:
            self.order_rejects[MAX_POSITIONS] += 1
            return False
        if (<double>_abs(newpos) * m2 > self.max_concentration * max(
                <double>gross_after, 2.0 * self.conc_base / self.tick_size)):
            self.order_rejects[CONCENTRATION] += 1
            return False
        return True


# ---- the dict API's parser: C speed, Python's float() semantics ------------------------
# Python's float() and glibc's strtod are both correctly rounded, so a plain decimal
# string parses to the same double either way; anything else (whitespace, underscores,
# other digits, hex, objects) goes through float() itself. The oracle's to_ticks/to_int
# apply the same rules, so both engines see the same integers.

from cpython.dict cimport PyDict_GetItemWithError
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.math cimport rint
from libc.stdlib cimport strtod

cdef double LIMIT = 4611686018427387904.0   # 2**62: larger values are invalid (-1)


cdef bint _plain_decimal(const char* s, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i
    if n == 0 or n > 64:
        return False
    for i in range(n):
        if not (48 <= s[i] <= 57 or s[i] == 46 or s[i] == 43 or s[i] == 45
                or s[i] == 101 or s[i] == 69):
            return False
    return True


cdef double[23] _POW10 = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                           1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21,
                           1e22]


cdef bint _short_decimal(const char* s, Py_ssize_t n, double* out) noexcept:
    """Clinger's (1990) fast path: ``[+-]digits[.digits]`` with at most 15 digits is
    m / 10^k with m and 10^k exact doubles, so one correctly rounded division gives the
    double strtod (and float()) give; strtod was half of a dict tick's time."""
    cdef Py_ssize_t i = 0
    cdef unsigned long long m = 0
    cdef int digits = 0, frac = 0
    cdef bint neg = False, dot = False
    cdef char c
    if n and (s[0] == 45 or s[0] == 43):     # '-', '+'
        neg = s[0] == 45
        i = 1
    while i < n:
        c = s[i]
        if 48 <= c <= 57:
            digits += 1
            if digits > 15:
                return False
            m = m * 10 + <unsigned long long>(c - 48)
            frac += dot
        elif c == 46 and not dot:               # '.'
            dot = True
        else:
            return False
        i += 1
    if digits == 0:
        return False
    out[0] = (<double>m) / _POW10[frac]
    if neg:
        out[0] = -out[0]
    return True


cdef inline long long _quantise(double x, double scale) noexcept nogil:
    """rint(x / scale) as int64, -1 where that is not a finite number in (-2^62, 2^62)
    (the oracle's to_ticks / to_int; x / 1.0 is x exactly)."""
    x = rint(x / scale)
    return <long long>x if -LIMIT < x < LIMIT else -1    # NaN and inf fail both tests


cdef long long _parse(object v, double scale, bint exact_int) except? -2:
    """rint(float(v) / scale) as int64, or -1 when v is not a finite number in range;
    ints are taken exactly when ``exact_int``."""
    cdef double x
    cdef const char* s
    cdef Py_ssize_t n
    cdef char* end
    cdef long long k
    cdef int overflow
    if v is None:
        return -1
    if type(v) is int or type(v) is bool:
        if exact_int:
            try:
                k = v
            except OverflowError:
                return -1
            return k if -4611686018427387904 < k < 4611686018427387904 else -1
        x = float(v)
    elif type(v) is float:
        x = v
    elif type(v) is str:
        s = PyUnicode_AsUTF8AndSize(v, &n)
        if _short_decimal(s, n, &x):
            pass
        elif _plain_decimal(s, n):
            x = strtod(s, &end)
            if end != s + n:
                return -1       # float() rejects it too ("1e", "--1")
        else:
            try:
                x = float(v)
            except (TypeError, ValueError):
                return -1
    else:
        try:
            x = float(v)
        except (TypeError, ValueError, OverflowError):
            return -1
    return _quantise(x, scale)


def quantise(const double[::1] x, double scale):
    """``_quantise`` over a float column (the dict parser's float path): one pass instead
    of NumPy's five over temporaries."""
    cdef Py_ssize_t i, n = x.shape[0]
    out_np = np.empty(n, dtype=np.int64)
    cdef long long[::1] out = out_np
    with nogil:
        for i in range(n):
            out[i] = _quantise(x[i], scale)
    return out_np


def parse_dicts(list ticks, double tick_size):
    """The seed's tick dicts -> six int64 columns (symbol, bid, ask, bid size, ask size,
    timestamp), prices in ticks; -1 marks what is missing or not a number."""
    cdef Py_ssize_t n = len(ticks), i, f
    out_np = np.empty((6, n), dtype=np.int64)
    cdef long long[:, ::1] out = out_np
    keys = ("symbol_id", "bid_price", "ask_price", "bid_size", "ask_size", "timestamp")
    cdef double[6] scale = [1.0, tick_size, tick_size, 1.0, 1.0, 1.0]
    cdef PyObject* item
    cdef object d
    for i in range(n):
        d = ticks[i]
        if type(d) is dict:
            for f in range(6):
                # WithError: plain PyDict_GetItem saves and restores the error state
                item = PyDict_GetItemWithError(d, keys[f])
                out[f, i] = _parse(<object>item if item != NULL else None, scale[f],
                                   scale[f] == 1.0)
        else:
            for f in range(6):
                out[f, i] = _parse(d.get(keys[f]), scale[f], scale[f] == 1.0)
    return out_np
