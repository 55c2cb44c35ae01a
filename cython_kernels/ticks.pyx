# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The tick engine's core: per-tick validation, signals, risk checks and fills.

State is preallocated per symbol (capacity fixed at construction); nothing is allocated
per tick. Prices are int64 ticks (quantised by the caller), cash is int64 ticks x shares
and marks are in half ticks (bid + ask), so positions, cash and P&L are exact integers;
only the signal (EWMAs of the microprice, book imbalance) uses doubles. The pure-Python
oracle ``quantlab/engine/reference.py`` performs the same operations in the same order,
and the tests require identical signals, orders, rejections, positions and P&L.
Input: int64 columns (``process``), columns of any real dtype converted 512 ticks at a
time into a reused buffer (``process_columns``), or the seed's dicts parsed the same way
(``process_dicts``; a dict's timestamp may also be a datetime: ``_timestamp``).

Per tick, in order:
1. validate (reject and count: bad price, bad size, crossed or locked book, symbol id out
   of range, bad timestamp (missing, unparsable, with a fraction, negative or from 2^62
   on), out of order (before the symbol's last); clock skew: a
   timestamp more than max_skew ahead of the newest accepted one, a corrupt far-future
   stamp that would otherwise make every later signal stale and the symbol's later ticks
   out of order, unless SKEW_CONFIRM such ticks in a row, each within max_skew of the
   one before, confirm the jump: the feed's clock moved on after a quiet spell longer
   than max_skew, whose ticks were all rejected before);
2. mark: mid2 = bid + ask; running Σ pos·mid2 and Σ |pos|·mid2 updated by the change
   (a quote whose move times the position would take them beyond ±STATE_LIMIT is a bad
   price: rejected before anything changes); drawdown kill switch when peak - equity
   exceeds the limit;
3. signal after ``warmup`` ticks of the symbol: +1 when the fast EWMA of the microprice is
   above the slow one and imbalance >= threshold, -1 mirrored; kept when |imbalance| >=
   min_confidence, dropped as stale when the tick is older than the newest seen by more
   than max_age;
4. order of ``order_size`` at the touch, through the risk checks in this order: kill
   switch, orders per second, max position, max order notional, max open positions,
   concentration; filled at once.

Overflow (exact int64 state): inputs are bounded by parsing and validation (prices and
sizes in (0, 2^62), timestamps in [0, 2^62)), and cash (ticks x shares), Σ pos·mid2 and
Σ |pos|·mid2 (half ticks x shares) are kept within (-2^60, 2^60) (STATE_LIMIT; 1.15e18,
e.g. 1.15e16 currency at a 0.01 tick), so |position| < 2^60 / 3 (mid2 >= 3) and
order_size < 2^60 (the config's bound). The products and sums that update them are
computed with overflow-checked arithmetic and refused when the exact result is beyond the
limit: a mark as a bad price (the tick is rejected, nothing changes), a fill as
max_order_notional, even with check_risk=False. With every state value below 2^60, equity
2 cash + Σ pos·mid2, its peak and the drawdown (peak - equity) stay below 2^63 unchecked.
"""
from datetime import datetime as _datetime
from numbers import Complex as _Complex, Integral as _Integral, Real as _Real

import numpy as np

from numpy import datetime64 as _datetime64, timedelta64 as _timedelta64

from libc.math cimport fabs
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

# rejection reasons: indices into the counters, names in the same order
cdef enum:
    BAD_PRICE, BAD_SIZE, CROSSED, BAD_SYMBOL, OUT_OF_ORDER, CLOCK_SKEW, BAD_TIMESTAMP,
    N_TICK_REJECTS
cdef enum:
    KILL, RATE, POSITION, NOTIONAL, MAX_POSITIONS, CONCENTRATION
# bad_timestamp last: the older reasons keep their indices
TICK_REJECTS = ("bad_price", "bad_size", "crossed", "bad_symbol", "out_of_order",
                "clock_skew", "bad_timestamp")
# ticks in a row past max_skew, each within it of the one before, that move the clock on
# (the last of them accepted): one corrupt stamp, or two, stay rejected
cdef enum:
    SKEW_RUN = 3
SKEW_CONFIRM = SKEW_RUN
ORDER_REJECTS = ("kill_switch", "rate", "max_position", "max_order_notional",
                 "max_positions", "concentration")


cdef inline long long _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1000000000LL + ts.tv_nsec


cdef extern from *:
    """
    /* overflow-checked int64 arithmetic (GCC >= 5, Clang; the module is POSIX-only):
       true when the exact result does not fit, *r then holds the wrapped value */
    #define QL_MUL(a, b, r) __builtin_mul_overflow((long long)(a), (long long)(b), (r))
    #define QL_ADD(a, b, r) __builtin_add_overflow((long long)(a), (long long)(b), (r))
    #define QL_SUB(a, b, r) __builtin_sub_overflow((long long)(a), (long long)(b), (r))
    """
    bint QL_MUL(long long a, long long b, long long* r) noexcept nogil
    bint QL_ADD(long long a, long long b, long long* r) noexcept nogil
    bint QL_SUB(long long a, long long b, long long* r) noexcept nogil

# |cash|, |Σ pos·mid2| and Σ |pos|·mid2 stay below this (module docstring)
cdef long long STATE_LIMIT = 1152921504606846976   # 2**60
cdef long long LIMIT_I = 4611686018427387904   # 2**62: larger inputs are invalid (-1)


cdef inline bint _out(long long v) noexcept nogil:
    """v is beyond the state bound (-2^60, 2^60)."""
    return v <= -STATE_LIMIT or v >= STATE_LIMIT


cdef inline long long _abs(long long v) noexcept nogil:
    return -v if v < 0 else v


cdef inline long long _total(const long long* counts, Py_ssize_t n) noexcept nogil:
    cdef long long t = 0
    cdef Py_ssize_t j
    for j in range(n):
        t += counts[j]
    return t


cdef struct Params:
    Py_ssize_t capacity, warmup, max_positions
    double alpha_fast, alpha_slow, threshold, min_confidence, tick_size
    double max_order_notional, max_drawdown, max_concentration, conc_floor
    long long max_position, order_size, max_age, second, max_ops, max_skew
    long long unit_ns     # nanoseconds per timestamp unit (dict datetimes; divides 10^9)


cdef struct State:
    # per-symbol state (pointers into TickCore's arrays)
    long long *last_ts
    long long *n_ticks
    long long *pos
    long long *mid2
    double *fast
    double *slow
    # book-wide
    long long cash, mtm2, gross2, peak2, latest_ts, open_positions
    long long skew_ts, skew_n   # the last clock-skew reject and how many in a row agree
    bint killed, started
    long long *ring      # times of the last max_ops orders
    Py_ssize_t ring_n, ring_i
    # counters
    long long ticks, signals, stale, orders
    long long *tick_rejects
    long long *order_rejects


cdef class TickCore:
    """Engine state and the per-tick loop. Parameters are fixed at construction.

    A batch runs on local copies of the parameters and the book-wide state (``Params``,
    ``State``): stores into the per-symbol arrays could alias fields of ``self``, so the
    compiler would reload and store every field on every tick."""
    cdef Params p
    cdef State st
    cdef readonly Py_ssize_t sample_every
    # per-symbol state; readonly: ``st`` points into these arrays
    cdef readonly long long[::1] last_ts, n_ticks, pos, mid2, ring
    cdef readonly double[::1] fast, slow
    cdef readonly long long[::1] tick_rejects, order_rejects
    # latency samples (ns), a ring
    cdef readonly long long[::1] samples
    cdef public Py_ssize_t n_samples

    def __init__(self, Py_ssize_t capacity, double tick_size, Py_ssize_t fast_span,
                 Py_ssize_t slow_span, double threshold, double min_confidence,
                 long long max_age, long long order_size, long long max_position,
                 double max_order_notional, Py_ssize_t max_orders_per_second,
                 double max_drawdown, Py_ssize_t max_positions, double max_concentration,
                 double concentration_base, long long second, Py_ssize_t sample_every,
                 Py_ssize_t max_samples, long long max_skew=LIMIT_I, long long unit_ns=1000):
        if unit_ns <= 0 or 1000000000 % unit_ns:
            raise ValueError(f"unit_ns must divide 10^9 (1000: us, 1: ns), got {unit_ns}")
        self.p = Params(
            capacity=capacity, warmup=slow_span, max_positions=max_positions,
            alpha_fast=2.0 / (fast_span + 1), alpha_slow=2.0 / (slow_span + 1),
            threshold=threshold, min_confidence=min_confidence, tick_size=tick_size,
            max_order_notional=max_order_notional, max_drawdown=max_drawdown,
            max_concentration=max_concentration,
            conc_floor=2.0 * concentration_base / tick_size,
            max_position=max_position, order_size=order_size, max_age=max_age,
            second=second, max_ops=max_orders_per_second,
            max_skew=max_skew if 0 <= max_skew < LIMIT_I else LIMIT_I, unit_ns=unit_ns)
        self.sample_every = sample_every
        self.last_ts = np.zeros(capacity, dtype=np.int64)
        self.n_ticks = np.zeros(capacity, dtype=np.int64)
        self.pos = np.zeros(capacity, dtype=np.int64)
        self.mid2 = np.zeros(capacity, dtype=np.int64)
        self.fast = np.zeros(capacity)
        self.slow = np.zeros(capacity)
        self.ring = np.full(max(max_orders_per_second, 1), np.iinfo(np.int64).min, dtype=np.int64)
        self.tick_rejects = np.zeros(N_TICK_REJECTS, dtype=np.int64)
        self.order_rejects = np.zeros(6, dtype=np.int64)
        self.samples = np.zeros(max(max_samples, 1), dtype=np.int64)
        self.st = State(
            last_ts=&self.last_ts[0], n_ticks=&self.n_ticks[0], pos=&self.pos[0],
            mid2=&self.mid2[0], fast=&self.fast[0], slow=&self.slow[0],
            cash=0, mtm2=0, gross2=0, peak2=0, latest_ts=0, open_positions=0,
            skew_ts=0, skew_n=0, killed=False, started=False, ring=&self.ring[0], ring_n=self.ring.shape[0],
            ring_i=0, ticks=0, signals=0, stale=0, orders=0,
            tick_rejects=&self.tick_rejects[0], order_rejects=&self.order_rejects[0])

    # the book-wide state and counters, read-only from Python
    @property
    def cash(self):
        return self.st.cash

    @property
    def mtm2(self):
        return self.st.mtm2

    @property
    def gross2(self):
        return self.st.gross2

    @property
    def peak2(self):
        return self.st.peak2

    @property
    def killed(self):
        return self.st.killed

    @property
    def open_positions(self):
        return self.st.open_positions

    @property
    def ticks(self):
        return self.st.ticks

    @property
    def signals(self):
        return self.st.signals

    @property
    def stale(self):
        return self.st.stale

    @property
    def orders(self):
        return self.st.orders

    @property
    def rejected_ticks(self):
        return _total(self.st.tick_rejects, N_TICK_REJECTS)

    @property
    def rejected_orders(self):
        return _total(self.st.order_rejects, 6)

    def process(self, const long long[::1] sym, const long long[::1] bid,
                const long long[::1] ask, const long long[::1] bsz,
                const long long[::1] asz, const long long[::1] ts, bint check_risk=True):
        """Process a batch; returns the orders' (tick index, symbol, signed qty, price
        ticks) as the rows of a (4, orders) array. ``check_risk=False`` skips step 4's
        checks (the order is filled regardless)."""
        cdef Py_ssize_t n = sym.shape[0], k = 0
        lengths = (n, bid.shape[0], ask.shape[0], bsz.shape[0], asz.shape[0], ts.shape[0])
        if len(set(lengths)) > 1:
            raise ValueError(f"columns of different lengths {lengths} (symbol_id, bid_price, "
                             "ask_price, bid_size, ask_size, timestamp)")
        out_np = np.empty((4, n), dtype=np.int64)
        cdef long long[:, ::1] out = out_np
        cdef const long long* cols[6]
        if n:
            cols = [&sym[0], &bid[0], &ask[0], &bsz[0], &asz[0], &ts[0]]
            with nogil:
                k = self._batch(cols, n, 0, check_risk, &out[0, 0], n, 0)
        return out_np[:, :k].copy()   # not a view that keeps the (4, n) buffer alive

    def process_dicts(self, list ticks, bint check_risk=True):
        """``process`` of ``parse_dicts(ticks, tick_size)``, parsed CHUNK ticks at a time
        into a buffer that stays in cache (a whole batch parsed first costs a pass through
        memory and fresh pages)."""
        cdef Py_ssize_t n = len(ticks), a, m, k = 0
        out_np = np.empty((4, n), dtype=np.int64)
        buf_np = np.empty((6, CHUNK), dtype=np.int64)
        cdef long long[:, ::1] out = out_np, buf = buf_np
        cdef const long long* cols[6]
        cols = [&buf[0, 0], &buf[1, 0], &buf[2, 0], &buf[3, 0], &buf[4, 0], &buf[5, 0]]
        for a in range(0, n, CHUNK):
            m = min(CHUNK, n - a)
            _parse_into(ticks, a, a + m, &buf[0, 0], CHUNK, self.p.tick_size, self.p.unit_ns)
            with nogil:
                k = self._batch(cols, m, a, check_risk, &out[0, 0], n, k)
        return out_np[:, :k].copy()   # not a view that keeps the (4, n) buffer alive

    def process_columns(self, list columns, tuple scale, tuple integral, tuple exact,
                        bint check_risk=True):
        """``process`` of six columns of any real NumPy dtype (``COLUMN_DTYPES``; bool as
        uint8), converted CHUNK ticks at a time into a reused int64 buffer inside the nogil
        loop (issue #32: whole-column conversions cost more than the engine). Column f:
        integers taken exactly when ``exact[f]`` (int64 ones not even copied), else, like
        floats, ``_quantise(x, scale[f], integral[f])``."""
        cdef Py_ssize_t n, a, m, k = 0, f, chunk = CHUNK
        cdef const char* src[6]
        cdef int code[6]
        cdef double sc[6]
        cdef bint integ[6]
        cdef bint ex[6]
        cdef const unsigned char[::1] raw
        if len(columns) != 6:
            raise ValueError(f"process_columns takes 6 columns, got {len(columns)}")
        lengths = tuple(len(c) for c in columns)
        if len(set(lengths)) > 1:
            raise ValueError(f"columns of different lengths {lengths} (symbol_id, bid_price, "
                             "ask_price, bid_size, ask_size, timestamp)")
        n = lengths[0]
        for f in range(6):
            col = columns[f]
            if not isinstance(col, np.ndarray) or col.ndim != 1 or not col.flags.c_contiguous:
                raise ValueError("process_columns takes one-dimensional contiguous arrays")
            c = _CODES.get(col.dtype)
            if c is None:
                raise TypeError(f"column {f} has dtype {col.dtype}; supported: "
                                f"{', '.join(map(str, COLUMN_DTYPES))}")
            code[f] = c
            sc[f] = scale[f]
            integ[f] = integral[f]
            ex[f] = exact[f]
            if n:
                raw = col.view(np.uint8)    # the pointer outlives raw: ``columns`` holds col
                src[f] = <const char*>&raw[0]
        out_np = np.empty((4, n), dtype=np.int64)
        buf_np = np.empty((6, CHUNK), dtype=np.int64)
        cdef long long[:, ::1] out = out_np, buf = buf_np
        cdef const long long* cols[6]
        if n == 0:
            return out_np[:, :0].copy()
        with nogil:
            a = 0
            while a < n:
                m = min(chunk, n - a)
                for f in range(6):
                    if code[f] == C_I64 and ex[f]:
                        cols[f] = <const long long*>src[f] + a
                    else:
                        _convert(src[f], code[f], a, m, &buf[f, 0], sc[f], integ[f], ex[f])
                        cols[f] = &buf[f, 0]
                k = self._batch(cols, m, a, check_risk, &out[0, 0], n, k)
                a += m
        return out_np[:, :k].copy()   # not a view that keeps the (4, n) buffer alive

    cdef Py_ssize_t _batch(self, const long long** cols, Py_ssize_t n, Py_ssize_t idx0,
                           bint check_risk, long long* out, Py_ssize_t out_stride,
                           Py_ssize_t k) noexcept nogil:
        """Ticks ``cols[f][i]``, i < n (tick indices from ``idx0``); orders go to
        ``out`` (4 rows of ``out_stride``) from column ``k``; returns the new k."""
        cdef Py_ssize_t i, every = self.sample_every, left = 0
        cdef Py_ssize_t n_samples = self.n_samples, max_samples = self.samples.shape[0]
        cdef long long* samples = &self.samples[0]
        cdef long long t0
        cdef bint sample
        cdef Params p = self.p
        cdef State st = self.st
        cdef const long long* sym = cols[0]
        cdef const long long* bid = cols[1]
        cdef const long long* ask = cols[2]
        cdef const long long* bsz = cols[3]
        cdef const long long* asz = cols[4]
        cdef const long long* ts = cols[5]
        # ticks until the next sampled one (those with ticks % every == 0): a countdown,
        # not a 64-bit division per tick (tens of cycles, a third of a tick's time)
        if every > 0:
            left = (every - st.ticks % every) % every
        for i in range(n):
            sample = every > 0 and left == 0
            if sample:
                t0 = _now_ns()
            k += _tick(&p, &st, idx0 + i, sym[i], bid[i], ask[i], bsz[i], asz[i], ts[i],
                       check_risk, out + k, out + out_stride + k,
                       out + 2 * out_stride + k, out + 3 * out_stride + k)
            if sample:
                samples[n_samples % max_samples] = _now_ns() - t0
                n_samples += 1
            left = every - 1 if left == 0 else left - 1
        self.st = st
        self.n_samples = n_samples
        return k


# ---- process_columns' per-chunk conversion (issue #32) -----------------------------------
cdef enum:
    C_I8, C_I16, C_I32, C_I64, C_U8, C_U16, C_U32, C_U64, C_F32, C_F64
# native byte order only; the caller converts anything else (float16, longdouble, swapped)
COLUMN_DTYPES = tuple(np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64, np.uint8,
                                            np.uint16, np.uint32, np.uint64, np.float32,
                                            np.float64))
_CODES = {d: i for i, d in enumerate(COLUMN_DTYPES)}

ctypedef fused _num:
    signed char
    short
    int
    long long
    unsigned char
    unsigned short
    unsigned int
    unsigned long long
    float
    double


cdef inline void _conv(const _num* x, Py_ssize_t m, long long* dst, double scale,
                       bint integral, bint exact) noexcept nogil:
    """x[:m] as int64: floats (and integers unless ``exact``) as ``_quantise`` of their
    double, which is what NumPy's float64 conversion and ``quantise`` gave; integers
    exactly otherwise (uint64 beyond int64 wraps negative: rejected for the same reason
    as -1)."""
    cdef Py_ssize_t i
    if _num is float or _num is double or not exact:
        for i in range(m):
            dst[i] = _quantise(<double>x[i], scale, integral)
    else:
        for i in range(m):
            dst[i] = <long long>x[i]


cdef void _convert(const char* src, int code, Py_ssize_t a, Py_ssize_t m, long long* dst,
                   double scale, bint integral, bint exact) noexcept nogil:
    """Elements a..a+m-1 of a column of type ``code`` into dst (``_conv``)."""
    if code == C_I8:
        _conv(<const signed char*>src + a, m, dst, scale, integral, exact)
    elif code == C_I16:
        _conv(<const short*>src + a, m, dst, scale, integral, exact)
    elif code == C_I32:
        _conv(<const int*>src + a, m, dst, scale, integral, exact)
    elif code == C_I64:
        _conv(<const long long*>src + a, m, dst, scale, integral, exact)
    elif code == C_U8:
        _conv(<const unsigned char*>src + a, m, dst, scale, integral, exact)
    elif code == C_U16:
        _conv(<const unsigned short*>src + a, m, dst, scale, integral, exact)
    elif code == C_U32:
        _conv(<const unsigned int*>src + a, m, dst, scale, integral, exact)
    elif code == C_U64:
        _conv(<const unsigned long long*>src + a, m, dst, scale, integral, exact)
    elif code == C_F32:
        _conv(<const float*>src + a, m, dst, scale, integral, exact)
    else:
        _conv(<const double*>src + a, m, dst, scale, integral, exact)


cdef inline int _tick(const Params* p, State* st, Py_ssize_t idx, long long s, long long bid,
                      long long ask, long long bsz, long long asz, long long ts,
                      bint check_risk, long long* oi, long long* os, long long* oq,
                      long long* op) noexcept nogil:
    """One tick through the four steps of the module docstring; 1 when it placed an
    order (written to oi, os, oq, op), else 0. The steps are inline helpers: gcc inlines
    them into the batch loop, so the split costs nothing per tick."""
    cdef long long seen, pos, m2, qty, price
    cdef int direction
    st.ticks += 1
    if not _valid(p, st, s, bid, ask, bsz, asz, ts):    # 1. validation
        return 0
    seen = st.n_ticks[s]
    pos = st.pos[s]
    m2 = bid + ask
    if not _mark(p, st, s, m2, ts, seen, pos):           # 2. marks, kill switch
        return 0
    direction = _signal(p, st, s, bid, ask, bsz, asz, seen)   # 3. signal
    if direction == 0:
        return 0
    st.signals += 1
    if st.latest_ts - ts > p.max_age:
        st.stale += 1
        return 0
    qty = direction * p.order_size                       # 4. the order
    price = ask if direction > 0 else bid
    if not _fill(p, st, s, ts, qty, price, pos, m2, check_risk):
        return 0
    oi[0] = idx
    os[0] = s
    oq[0] = qty
    op[0] = price
    return 1


cdef inline bint _valid(const Params* p, State* st, long long s, long long bid,
                        long long ask, long long bsz, long long asz,
                        long long ts) noexcept nogil:
    """Step 1: False (the reason counted) for a tick to reject. The upper bounds keep
    bid + ask and bsz + asz within int64 for columns given as raw int64; the dict and
    float paths already stop at 2^62. One unsigned compare per range: 0 <= v < 2^62 is
    (unsigned)v < 2^62 (negatives wrap above), 0 < v < 2^62 is (unsigned)v - 1 < 2^62 - 1
    (0 wraps too)."""
    cdef unsigned long long lim = LIMIT_I
    if s < 0 or s >= p.capacity:
        st.tick_rejects[BAD_SYMBOL] += 1
        return False
    if (<unsigned long long>bid - 1 >= lim - 1) | (<unsigned long long>ask - 1 >= lim - 1):
        st.tick_rejects[BAD_PRICE] += 1
        return False
    if ((<unsigned long long>bsz >= lim) | (<unsigned long long>asz >= lim)) or bsz + asz == 0:
        st.tick_rejects[BAD_SIZE] += 1
        return False
    if bid >= ask:
        st.tick_rejects[CROSSED] += 1
        return False
    if <unsigned long long>ts >= lim:
        st.tick_rejects[BAD_TIMESTAMP] += 1
        return False
    if st.n_ticks[s] > 0 and ts < st.last_ts[s]:
        st.tick_rejects[OUT_OF_ORDER] += 1
        return False
    if st.started and ts - st.latest_ts > p.max_skew:   # both in [0, 2^62): no overflow
        # one of a run of ticks that agree (each within max_skew of the one before)? A
        # quiet spell longer than max_skew rejected every later tick for ever
        st.skew_n = st.skew_n + 1 if (st.skew_n > 0 and
                                      _abs(ts - st.skew_ts) <= p.max_skew) else 1
        st.skew_ts = ts
        if st.skew_n < SKEW_RUN:
            st.tick_rejects[CLOCK_SKEW] += 1
            return False
    st.skew_n = 0
    return True


cdef inline bint _mark(const Params* p, State* st, long long s, long long m2, long long ts,
                       long long seen, long long pos) noexcept nogil:
    """Step 2: the symbol's mark and the drawdown kill switch. False (a bad price,
    counted; nothing changed) when the exact state cannot hold the new mark."""
    cdef long long d, t, eq2, mtm2 = st.mtm2, gross2 = st.gross2
    if seen > 0 and pos != 0:
        d = m2 - st.mid2[s]
        if (QL_MUL(pos, d, &t) or QL_ADD(mtm2, t, &mtm2) or _out(mtm2)
                or QL_MUL(_abs(pos), d, &t) or QL_ADD(gross2, t, &gross2) or _out(gross2)):
            st.tick_rejects[BAD_PRICE] += 1
            return False
        st.mtm2 = mtm2
        st.gross2 = gross2
    st.mid2[s] = m2
    st.last_ts[s] = ts
    if not st.started or ts > st.latest_ts:
        st.latest_ts = ts
        st.started = True
    eq2 = 2 * st.cash + st.mtm2
    if eq2 > st.peak2:
        st.peak2 = eq2
    if (st.peak2 - eq2) * 0.5 * p.tick_size > p.max_drawdown:
        st.killed = True
    return True


cdef inline int _signal(const Params* p, State* st, long long s, long long bid,
                        long long ask, long long bsz, long long asz,
                        long long seen) noexcept nogil:
    """Step 3: update the symbol's EWMAs of the microprice; the signal +1, -1, or 0
    (none, or still in warmup)."""
    cdef double micro, imb, fast, slow, tot = <double>(bsz + asz)
    cdef int up, down
    micro = (<double>bid * asz + <double>ask * bsz) / tot
    if seen == 0:
        fast = micro
        slow = micro
    else:
        fast = st.fast[s]
        slow = st.slow[s]
        fast = fast + p.alpha_fast * (micro - fast)
        slow = slow + p.alpha_slow * (micro - slow)
    st.fast[s] = fast
    st.slow[s] = slow
    st.n_ticks[s] = seen + 1
    if seen + 1 < p.warmup:
        return 0
    imb = (<double>bsz - <double>asz) / tot
    # bitwise, one rarely taken branch: the two-way test on noisy quotes mispredicted
    up = (fast > slow) & (imb >= p.threshold)
    down = (fast < slow) & (imb <= -p.threshold)
    if not ((up | down) & (fabs(imb) >= p.min_confidence)):
        return 0
    return up - down


cdef inline bint _fill(const Params* p, State* st, long long s, long long ts, long long qty,
                       long long price, long long pos, long long m2,
                       bint check_risk) noexcept nogil:
    """Step 4: the state after the fill, refused (even without risk checks) when the
    exact state cannot hold it, then the risk checks; True when filled."""
    cdef long long t, cash, mtm2, gross_after
    cdef long long newpos = pos + qty   # |pos| < 2^60 / 3 (gross bound, mid2 >= 3),
                                        # order_size < 2^60
    if (QL_MUL(qty, price, &t) or QL_SUB(st.cash, t, &cash) or _out(cash)
            or QL_MUL(qty, m2, &t) or QL_ADD(st.mtm2, t, &mtm2) or _out(mtm2)
            or QL_MUL(_abs(newpos) - _abs(pos), m2, &t) or QL_ADD(st.gross2, t, &gross_after)
            or _out(gross_after)):
        st.order_rejects[NOTIONAL] += 1
        return False
    if check_risk and not _allowed(p, st, pos, ts, price, newpos, m2, gross_after):
        return False
    st.cash = cash
    st.mtm2 = mtm2
    st.gross2 = gross_after
    if pos == 0:
        st.open_positions += 1
    elif newpos == 0:
        st.open_positions -= 1
    st.pos[s] = newpos
    st.ring[st.ring_i] = ts
    st.ring_i = st.ring_i + 1 if st.ring_i + 1 < st.ring_n else 0
    st.orders += 1
    return True


cdef inline bint _allowed(const Params* p, State* st, long long pos, long long ts,
                          long long price, long long newpos, long long m2,
                          long long gross_after) noexcept nogil:
    """The risk checks in order; a rejection is counted under its reason."""
    if st.killed:
        st.order_rejects[KILL] += 1
        return False
    if p.max_ops <= 0 or st.ring[st.ring_i] > ts - p.second:
        st.order_rejects[RATE] += 1
        return False
    if _abs(newpos) > p.max_position:
        st.order_rejects[POSITION] += 1
        return False
    if <double>p.order_size * price * p.tick_size > p.max_order_notional:
        st.order_rejects[NOTIONAL] += 1
        return False
    if pos == 0 and st.open_positions >= p.max_positions:
        st.order_rejects[MAX_POSITIONS] += 1
        return False
    if <double>_abs(newpos) * m2 > p.max_concentration * max(<double>gross_after, p.conc_floor):
        st.order_rejects[CONCENTRATION] += 1
        return False
    return True


# ---- the dict API's parser: C speed, Python's float() semantics ------------------------
# Short decimal strings, ints and floats are parsed here (``_value``); anything else
# (long or exponent strings, whitespace, underscores, other digits, hex, objects) goes
# through float() itself. The oracle's to_ticks/to_int apply the same rules, so both
# engines see the same integers.

from cpython.dict cimport PyDict_GetItemWithError
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.object cimport PyObject
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.unicode cimport PyUnicode_DATA, PyUnicode_GET_LENGTH
from libc.math cimport rint


cdef extern from "Python.h":
    bint PyUnicode_IS_COMPACT_ASCII(object o)

cdef double LIMIT = LIMIT_I                      # the same bound for doubles (exact)


cdef unsigned long long[16] _P10 = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
                                     100000000, 1000000000, 10000000000, 100000000000,
                                     1000000000000, 10000000000000, 100000000000000,
                                     1000000000000000]
cdef unsigned long long[16] _EXACT      # 2**50 // 10**j: m 10^j below 2**50 is exact
for _j in range(16):
    _EXACT[_j] = 1125899906842624 // _P10[_j]


cdef bint _short_digits(const char* s, Py_ssize_t n, unsigned long long* m, int* frac,
                        bint* neg) noexcept:
    """``[+-]digits[.digits]`` with at most 15 digits as (m, frac, neg): the value is
    (-1)^neg m / 10^frac, m < 10^15 exactly."""
    cdef Py_ssize_t i = 0
    cdef int digits = 0
    cdef bint dot = False
    cdef char c
    m[0] = 0
    frac[0] = 0
    neg[0] = False
    if n and (s[0] == 45 or s[0] == 43):     # '-', '+'
        neg[0] = s[0] == 45
        i = 1
    while i < n:
        c = s[i]
        if 48 <= c <= 57:
            digits += 1
            if digits > 15:
                return False
            m[0] = m[0] * 10 + <unsigned long long>(c - 48)
            frac[0] += dot
        elif c == 46 and not dot:               # '.'
            dot = True
        else:
            return False
        i += 1
    return digits > 0


cdef int decimal_exponent(double scale) noexcept:
    """d when ``scale`` is the double nearest 10^-d (0 <= d <= 15), else -1."""
    cdef int d
    for d in range(16):
        if scale == 1.0 / _P10[d]:
            return d
    return -1


cdef long long _str_ticks(const char* s, Py_ssize_t n, double scale, int dec,
                          bint integral=False) noexcept:
    """A short decimal string as ticks of ``scale``: -2 when it is not one; -1 when
    ``integral`` (ids, timestamps; scale 1) and it has a non-zero fraction (a decimal of at
    most 15 digits with a fraction is never an integral double, so float() agrees).

    Where the tick is 10^-dec and the string has at most dec decimals (trailing zeros
    aside), the ticks are the integer N = m 10^(dec - frac), computed exactly. The oracle's
    round(float(s) / tick) gives the same N below 2^50: float(s), the tick and the division
    each round by at most 2^-53 relative, so the quotient is within 3 N 2^-53 < 0.5 of N.
    Otherwise Clinger's (1990) fast path: m and 10^frac are exact doubles, so one correctly
    rounded division gives the double float() gives (at a fraction of strtod's cost), then
    ``_quantise``."""
    cdef unsigned long long m
    cdef int frac
    cdef bint neg
    cdef double x
    if not _short_digits(s, n, &m, &frac, &neg):
        return -2
    if dec >= 0:
        while frac > dec and m % 10 == 0:
            m = m // 10
            frac -= 1
        if frac <= dec and m < _EXACT[dec - frac]:
            m = m * _P10[dec - frac]
            return -<long long>m if neg else <long long>m
    if integral and frac > 0:
        return -1
    x = (<double>m) / _P10[frac]
    return _quantise(-x if neg else x, scale)


cdef inline long long _quantise(double x, double scale, bint integral=False) noexcept nogil:
    """rint(x / scale) as int64, -1 where that is not a finite number in (-2^62, 2^62), or
    (``integral``) where x / scale has a fraction (the oracle's to_ticks / to_int; x / 1.0
    is x exactly)."""
    cdef double r
    x = x / scale
    r = rint(x)
    if integral and r != x:
        return -1
    return <long long>r if -LIMIT < r < LIMIT else -1    # NaN and inf fail both tests


cdef long long _exact(object v) except? -2:
    """An int (or subclass) as int64 exactly, -1 beyond 2^62."""
    cdef int overflow
    # not try/except: Cython saves the exception state on entering a try
    cdef long long k = PyLong_AsLongLongAndOverflow(v, &overflow)
    return k if not overflow and -LIMIT_I < k < LIMIT_I else -1


cdef long long _parse(object v, double scale, bint exact, bint integral) except? -2:
    """rint(float(v) / scale) as int64, or -1 when v is not a finite number in range (or,
    ``integral``, has a fraction); ints are taken exactly when ``exact`` (ids, sizes,
    timestamps: the oracle's to_int). The general case of ``_value``."""
    cdef double x
    if v is None or isinstance(v, (_timedelta64, _datetime64, _datetime)):
        # NumPy calls timedelta64 an integer; float() of one or a datetime64 in ns gave
        # its count; of a datetime it raised (slowly): dict timestamps go to _timestamp
        return -1
    if exact and isinstance(v, _Integral):
        # NumPy integer scalars too: through float() an int64 ns timestamp lost its
        # last 8 bits (the oracle's to_int does the same)
        return _exact(int(v))
    if isinstance(v, _Complex) and not isinstance(v, _Real):
        return -1     # NumPy's complex scalars convert to float by dropping the imaginary part
    try:
        x = float(v)
    except (TypeError, ValueError, OverflowError):
        return -1
    return _quantise(x, scale, integral)


cdef inline long long _value(PyObject* item, double scale, int dec, bint exact,
                             bint integral) except? -2:
    """``_parse`` with the common cases (ASCII strings, ints, floats) inline; ``item`` may
    be NULL (missing). ``dec``: ``decimal_exponent(scale)``."""
    cdef object v
    cdef long long k
    cdef const char* s
    cdef Py_ssize_t n
    if item == NULL:
        return -1
    v = <object>item
    if type(v) is str and PyUnicode_IS_COMPACT_ASCII(v):
        s = <const char*>PyUnicode_DATA(v)
        n = PyUnicode_GET_LENGTH(v)
        k = _str_ticks(s, n, scale, dec, integral)
        if k != -2:
            return k
        if n > 4 and s[4] == 45 and _d2(s, 0) >= 0 and _d2(s, 2) >= 0:
            return -1     # 'DDDD-' (a date) is never a number: spare float() raising
    elif type(v) is int and exact:
        return _exact(v)
    elif type(v) is float:
        return _quantise(PyFloat_AS_DOUBLE(v), scale, integral)
    return _parse(v, scale, exact, integral)


def quantise(const double[::1] x, double scale, bint integral=False):
    """``_quantise`` over a float column (the dict parser's float path): one pass instead
    of NumPy's five over temporaries. ``integral``: values with a fraction are -1 (symbol
    ids and timestamps are never rounded)."""
    cdef Py_ssize_t i, n = x.shape[0]
    out_np = np.empty(n, dtype=np.int64)
    cdef long long[::1] out = out_np
    with nogil:
        for i in range(n):
            out[i] = _quantise(x[i], scale, integral)
    return out_np


# ---- a dict's datetime timestamp: ISO 8601 text, datetime, pd.Timestamp, datetime64 ------
# The oracle's to_timestamp: the same values, written independently (regex and
# datetime.date there; a hand parser and days_from_civil here). Naive values are UTC, as a
# naive datetime64 column is; offsets and time zones are converted to UTC; sub-unit digits
# are floored, as a datetime64 column's astype to the unit floors them.

# ns per datetime64 unit as (numerator, denominator); Y and M are converted to days first
_DT64_NS = {"W": (604800000000000, 1), "D": (86400000000000, 1), "h": (3600000000000, 1),
            "m": (60000000000, 1), "s": (1000000000, 1), "ms": (1000000, 1),
            "us": (1000, 1), "ns": (1, 1), "ps": (1, 1000), "fs": (1, 1000000),
            "as": (1, 1000000000)}


cdef inline long long _days_from_civil(long long y, long long m, long long d) noexcept nogil:
    """Days from 1970-01-01 to y-m-d (proleptic Gregorian, y >= 1; H. Hinnant's
    algorithm; C division is floor here: y - (m <= 2) >= 0)."""
    cdef long long era, yoe, doy, doe
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef long long _civil_ticks(long long y, long long mo, long long d, long long h,
                            long long mi, long long s, long long frac_ns, long long off_ns,
                            long long unit_ns) noexcept nogil:
    """floor(ns since the epoch / unit_ns) of the wall time y-m-d h:mi:s + frac_ns at
    ``off_ns`` east of UTC (|off_ns| < 1 day, 0 <= frac_ns < 10^9); -1 for no valid date
    or time (years 1..9999, as Python's), before 1970, or from 2^62 units on."""
    cdef long long dim, secs, off_s, off_sub, sub, t
    if not (1 <= y <= 9999 and 1 <= mo <= 12 and 1 <= d and 0 <= h <= 23 and
            0 <= mi <= 59 and 0 <= s <= 59 and 0 <= frac_ns < 1000000000):
        return -1
    if mo == 2:
        dim = 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    else:
        dim = 30 if (mo == 4 or mo == 6 or mo == 9 or mo == 11) else 31
    if d > dim:
        return -1
    secs = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s   # |secs| < 2^39
    # the offset as floor seconds and a sub-second rest in [0, 10^9)
    off_s = off_ns // 1000000000       # C: truncated
    off_sub = off_ns - off_s * 1000000000
    if off_sub < 0:
        off_sub += 1000000000
        off_s -= 1
    secs -= off_s
    sub = frac_ns - off_sub
    if sub < 0:
        sub += 1000000000
        secs -= 1
    if secs < 0:                       # the whole value secs * 10^9 + sub is negative
        return -1
    # exact: unit_ns divides 10^9, secs * 10^9 + sub >= 0
    if QL_MUL(secs, 1000000000 // unit_ns, &t) or QL_ADD(t, sub // unit_ns, &t) \
            or t >= LIMIT_I:
        return -1
    return t


cdef inline int _d2(const char* s, Py_ssize_t i) noexcept nogil:
    """The two ASCII digits at s[i], s[i + 1] as a number, -1 if they are not digits."""
    if 48 <= s[i] <= 57 and 48 <= s[i + 1] <= 57:
        return (s[i] - 48) * 10 + s[i + 1] - 48
    return -1


cdef long long _iso_ticks(const char* s, Py_ssize_t n, long long unit_ns) noexcept nogil:
    """ISO 8601 extended text YYYY-MM-DD[(T|t| )HH:MM[:SS[(.|,)digits]][Z|z|+-HH[[:]MM]]]
    as ``_civil_ticks`` (digits past the ninth dropped); -1 when it is not one."""
    cdef long long y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, off = 0, scale = 100000000
    cdef int oh, om = 0, sign
    cdef Py_ssize_t i
    if n < 10 or s[4] != 45 or s[7] != 45 or _d2(s, 0) < 0 or _d2(s, 2) < 0:
        return -1
    y = _d2(s, 0) * 100 + _d2(s, 2)
    mo = _d2(s, 5)
    d = _d2(s, 8)
    if mo < 0 or d < 0:
        return -1
    i = 10
    if i < n:
        if not (s[i] == 84 or s[i] == 116 or s[i] == 32) or n < i + 6 or s[i + 3] != 58:
            return -1                  # 'T', 't', ' '; HH:MM
        h = _d2(s, i + 1)
        mi = _d2(s, i + 4)
        if h < 0 or mi < 0:
            return -1
        i += 6
        if i < n and s[i] == 58:       # ':SS'
            if n < i + 3 or _d2(s, i + 1) < 0:
                return -1
            sec = _d2(s, i + 1)
            i += 3
            if i < n and (s[i] == 46 or s[i] == 44):    # '.' or ',' and 1+ digits
                i += 1
                if i >= n or not 48 <= s[i] <= 57:
                    return -1
                while i < n and 48 <= s[i] <= 57:
                    frac += (s[i] - 48) * scale
                    scale //= 10
                    i += 1
        if i < n:                      # the zone
            if s[i] == 90 or s[i] == 122:              # 'Z', 'z'
                i += 1
            elif s[i] == 43 or s[i] == 45:             # '+', '-'
                sign = 1 if s[i] == 43 else -1
                if n < i + 3 or _d2(s, i + 1) < 0:
                    return -1
                oh = _d2(s, i + 1)
                i += 3
                if i < n:
                    i += s[i] == 58                    # ':' optional
                    if n != i + 2 or _d2(s, i) < 0:
                        return -1
                    om = _d2(s, i)
                    i += 2
                if oh > 23 or om > 59:
                    return -1
                off = <long long>sign * (oh * 60 + om) * 60000000000LL
    if i != n:
        return -1
    return _civil_ticks(y, mo, d, h, mi, sec, frac, off, unit_ns)


cdef long long _timestamp(object v, long long unit_ns) except? -2:
    """A dict timestamp the number parser rejected, as a datetime in units of ``unit_ns``
    ns since the epoch (UTC): ISO 8601 text (``_iso_ticks``; ASCII bytes too), a ``datetime.datetime`` (a
    ``pd.Timestamp`` too, with its nanoseconds) or an ``np.datetime64``; -1 for anything
    else (the tick is rejected as ``bad_timestamp``)."""
    cdef long long t
    if isinstance(v, (bytes, bytearray)):   # read as its ASCII text (float() read only
        try:                                # digits: b"2024-01-02" was rejected)
            v = bytes(v).decode("ascii")
        except UnicodeDecodeError:
            return -1
    if type(v) is not str and isinstance(v, str):
        v = str.__str__(v)         # its text, not what a subclass's __str__ says
    if type(v) is str:
        if not PyUnicode_IS_COMPACT_ASCII(v):
            return -1
        return _iso_ticks(<const char*>PyUnicode_DATA(v), PyUnicode_GET_LENGTH(v), unit_ns)
    if isinstance(v, _datetime):
        if v != v:                 # pd.NaT is a datetime too
            return -1
        off = v.utcoffset()
        return _civil_ticks(v.year, v.month, v.day, v.hour, v.minute, v.second,
                            v.microsecond * 1000 + getattr(v, "nanosecond", 0),
                            0 if off is None else
                            ((off.days * 86400 + off.seconds) * 1000000 + off.microseconds)
                            * 1000, unit_ns)
    if isinstance(v, _datetime64) and not np.isnat(v):
        unit, count = np.datetime_data(v.dtype)
        if unit == "Y" or unit == "M":
            v, unit, count = v.astype("datetime64[D]"), "D", 1
        if unit not in _DT64_NS:
            return -1
        num, den = _DT64_NS[unit]
        n = int(v.astype(np.int64)) * count * num // (den * unit_ns)   # Python ints: exact
        return n if 0 <= n < LIMIT_I else -1
    return -1


CHUNK = 512      # ticks parsed (converted) at a time: 6 x 512 int64 = 24 KiB, in L1
_KEYS = ("symbol_id", "bid_price", "ask_price", "bid_size", "ask_size", "timestamp")


cdef int _parse_into(list ticks, Py_ssize_t a, Py_ssize_t b, long long* out,
                     Py_ssize_t stride, double tick_size, long long unit_ns) except -1:
    """Ticks a..b-1 into six rows of ``out`` (row f at out + f * stride). An item that is
    not a mapping is a tick with every field missing (the core rejects it). A timestamp
    the number parser fails on (-1) is tried as a datetime (``_timestamp``): numbers
    never pay for it."""
    cdef Py_ssize_t i, f
    cdef long long k
    cdef double[6] scale = [1.0, tick_size, tick_size, 1.0, 1.0, 1.0]
    cdef bint[6] exact = [True, False, False, True, True, True]
    cdef bint[6] integral = [True, False, False, False, False, True]   # ids, timestamps
    cdef int[6] dec
    cdef PyObject* item
    cdef object d, v, get
    keys = _KEYS
    for f in range(6):
        dec[f] = decimal_exponent(scale[f])
    for i in range(a, b):
        d = ticks[i]
        if type(d) is dict:
            for f in range(6):
                # WithError: plain PyDict_GetItem saves and restores the error state
                item = PyDict_GetItemWithError(d, keys[f])
                k = _value(item, scale[f], dec[f], exact[f], integral[f])
                if k == -1 and f == 5 and item != NULL:
                    k = _timestamp(<object>item, unit_ns)
                out[f * stride + i - a] = k
        else:
            get = getattr(d, "get", None)     # another mapping; anything else: all missing
            for f in range(6):
                v = get(keys[f]) if get is not None else None
                k = _value(<PyObject*>v, scale[f], dec[f], exact[f], integral[f])
                if k == -1 and f == 5:
                    k = _timestamp(v, unit_ns)
                out[f * stride + i - a] = k
    return 0


def parse_dicts(list ticks, double tick_size, long long unit_ns=1000):
    """The seed's tick dicts -> six int64 columns (symbol, bid, ask, bid size, ask size,
    timestamp), prices in ticks, timestamps in units of ``unit_ns`` ns (datetimes
    converted: ``_timestamp``); -1 marks what is missing or not a number, and a symbol id
    or timestamp with a fraction (1.5 is no symbol; sizes are rounded half to even)."""
    cdef Py_ssize_t n = len(ticks)
    if unit_ns <= 0 or 1000000000 % unit_ns:
        raise ValueError(f"unit_ns must divide 10^9 (1000: us, 1: ns), got {unit_ns}")
    out_np = np.empty((6, n), dtype=np.int64)
    cdef long long[:, ::1] out = out_np
    if n:
        _parse_into(ticks, 0, n, &out[0, 0], n, tick_size, unit_ns)
    return out_np
