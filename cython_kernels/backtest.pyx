# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The backtest simulator: one loop over time for many columns and accounts.

Columns are (asset x parameter) series; each column belongs to an account (``group``):
its own (``group=False``) or one shared by all assets of a parameter combination
(``group=True``). Per bar: mark positions, turn target exposures into orders (sells
before buys, so a portfolio's cash funds its buys), fill at the execution price with
slippage and fees, record orders. Policy (signal checks, slippage models, labels) lives
in ``quantlab/backtest.py``; this file is the loop only. Options (metrics-only
accumulation, drawdown control, stops, limit orders, order events with pyramiding,
leverage with borrowing costs and margin calls) extend this same loop.
"""
import numpy as np

cimport cython
from libc.float cimport DBL_EPSILON, DBL_MIN
from libc.math cimport INFINITY, NAN, fabs, isnan, log1p, sqrt
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy

cdef extern from *:
    void prefetch "__builtin_prefetch"(const void* p) noexcept nogil
    # a per-bar output's row: stores through it touch no other array (the compiler
    # keeps the inputs' pointers in registers, as with a C-contiguous memoryview)
    ctypedef double* out_row "double * __restrict__"

include "welford.pxi"
include "returns_acc.pxi"

# The kernel's codes and the names Python reads (quantlab/backtest.py labels with them);
# each tuple lists its enum's members in order, checked at import below.
# metrics-only extras per account: fees, traded value, Σ equity, orders, Σ gross / equity
cdef enum:
    X_FEES, X_TRADED, X_EQSUM, X_ORDERS, X_EXPO, NX
EXTRAS = ("fees", "traded", "eq_sum", "orders", "exposure")

# why an order was placed (the trades table names them: REASONS);
# R_FIXED_FEE marks an order that was NOT filled: its fixed fee is more than the account
# can pay (its equity after the order would be <= 0, or the fee takes a buy's buying
# power) or would turn the order around, recorded with size 0 and fee 0. Forced orders
# (stops, drawdown exits, margin calls) always fill, their fees capped at what the
# account has left after the fill's slippage: fees alone never make equity < 0
cdef enum:
    R_SIGNAL, R_STOP, R_TAKE_PROFIT, R_TRAILING, R_DRAWDOWN, R_MARGIN, R_FIXED_FEE, NR
REASONS = ("signal", "stop", "take_profit", "trailing", "drawdown", "margin_call",
           "fixed_fee")

# what ``size`` counts in order (entries/exits) mode
cdef enum:
    S_EQUITY, S_VALUE, S_SHARES, NS
SIZE_TYPES = ("equity", "value", "shares")
if (len(EXTRAS), len(REASONS), len(SIZE_TYPES)) != (NX, NR, NS):
    raise ImportError("backtest: EXTRAS, REASONS or SIZE_TYPES out of step with the enums")


cdef struct Order:
    Py_ssize_t t
    Py_ssize_t col
    double size      # shares, + buy / - sell
    double price     # fill price incl. slippage
    double fee
    int reason
    int phase        # the bar's phase that placed it (P_*): blocks' records merge by it


cdef struct Orders:
    Order* buf
    Py_ssize_t n
    Py_ssize_t cap
    int phase        # the phase now running: each record takes it


# The phases of a bar in the order they record orders: stops, resting limits (sells,
# then buys), the bar's orders (sells, then buys), margin calls. With one account per
# column a column records at most one order per phase and each phase goes through the
# columns in order, so a call's records are sorted by (bar, phase, column): column
# blocks run apart merge back into one call's order (merge_orders)
cdef enum:
    P_STOP, P_LIMIT_SELL, P_LIMIT_BUY, P_SELL, P_BUY, P_MARGIN


cdef int push(Orders* o, Py_ssize_t t, Py_ssize_t col, double size, double price,
              double fee, int reason) noexcept nogil:
    cdef Order* grown
    if o.n == o.cap:
        o.cap = o.cap * 2 if o.cap else 1024
        grown = <Order*>realloc(o.buf, o.cap * sizeof(Order))
        if grown == NULL:
            return -1
        o.buf = grown
    o.buf[o.n].t = t
    o.buf[o.n].col = col
    o.buf[o.n].size = size
    o.buf[o.n].price = price
    o.buf[o.n].fee = fee
    o.buf[o.n].reason = reason
    o.buf[o.n].phase = o.phase
    o.n += 1
    return 0


cdef inline double touch(double lvl, double op, double lo, double hi,
                         bint below) noexcept nogil:
    """Fill price of a stop or limit level reached from above (``below``) or below: the
    open when the bar gapped through it, the level when [lo, hi] reaches it, else NaN."""
    if below:
        return op if op <= lvl else (lvl if lo <= lvl else NAN)
    return op if op >= lvl else (lvl if hi >= lvl else NAN)


cdef inline out_row row_of(double[:, :] a, Py_ssize_t r) noexcept nogil:
    """Row r of a per-bar output (rows contiguous, as ``_out`` checks): a plain pointer
    the compiler can store through like a C-contiguous row (an output with rows only)."""
    return &a[r, 0]


# The per-bar phases read their arrays through plain pointers, not memoryview locals:
# each memoryview local costs two atomic updates of its buffer's acquisition count per
# call, and the fast path's phases held 17 a bar (~170 ns a bar whatever the width:
# a 1-column run took 173 ns a bar, a 128-column one 8.5 ns a value)

cdef inline double at(const char* row, Py_ssize_t stride, Py_ssize_t j) noexcept nogil:
    """Element j of a float64 row starting at ``row``, ``stride`` bytes apart."""
    return (<const double*>(row + j * stride))[0]


cdef inline double exposure(double want, double lev, double cap) noexcept nogil:
    """A column's exposure: its target times the leverage, within [-cap, cap] (NaN
    stays NaN)."""
    cdef double x = want * lev
    if x > cap:
        return cap
    if x < -cap:
        return -cap
    return x


cdef inline bint changed(double s, double w) noexcept nogil:
    """Target ``s`` is a change from ``w`` (rebalance on_change): by more than 1e-12 of
    max(1, |s|, |w|). A difference in the last bits (a signal recomputed over another
    window: a deployment's trailing one) is none; it rebalanced a drifted position back
    to its weight, an order the backtest never placed."""
    cdef double a = fabs(s), b = fabs(w)
    if s == w:   # most bars (a held target): one compare, as before the tolerance
        return False
    a = a if a > b else b   # not fmax: a libm call per column and bar (+15 % a backtest)
    return fabs(s - w) > 1e-12 * (a if a > 1.0 else 1.0)


cdef inline bint dust(double v, double scale) noexcept nogil:
    """``v`` is rounding dust of cash flows of size ``scale``: within 64 ulps of it (the
    one rule for a forced close's residue: ``settle_dust`` and ``drain_phase``)."""
    return fabs(v) <= 64 * DBL_EPSILON * scale


cdef inline void bar_range(double o, double h, double l, double cl, double* op, double* hi,
                           double* lo) noexcept nogil:
    """Open, high and low of a bar with close ``cl``; those the data lacks (NaN: close
    only) fall back to the open and close."""
    op[0] = cl if isnan(o) else o
    hi[0] = h if not isnan(h) else (op[0] if op[0] > cl else cl)
    lo[0] = l if not isnan(l) else (op[0] if op[0] < cl else cl)


cdef inline int record(Orders* o, double[:, ::1] extra, bint metrics_only, Py_ssize_t t,
                       Py_ssize_t c, Py_ssize_t g, double d, double pe, double fee,
                       int reason) noexcept nogil:
    """Book a fill: the account's running extras (metrics-only) or an order record."""
    if metrics_only:
        extra[g, X_FEES] += fee
        extra[g, X_TRADED] += fabs(d) * pe
        extra[g, X_ORDERS] += 1
        return 0
    return push(o, t, c, d, pe, fee, reason)


cdef inline int skip(Orders* o, double[:, ::1] extra, bint metrics_only, Py_ssize_t t,
                     Py_ssize_t c, Py_ssize_t g, double pe) noexcept nogil:
    """Record an order its fixed fee stops (size 0, fee 0, reason R_FIXED_FEE; counted in
    metrics-only mode's orders, as it is a row of the orders table): returns 1
    (skipped), or -1 when out of memory for the record."""
    return 1 if record(o, extra, metrics_only, t, c, g, 0.0, pe, 0.0, R_FIXED_FEE) == 0 else -1


cdef inline void stop_ref(double q0, double q1, double ref, double* entry,
                          double* extreme) noexcept nogil:
    """A fill moved a position from q0 to q1 shares: the stops' entry reference (and the
    trailing extreme) becomes ``ref`` when a position opens or flips, is cleared when it
    is flat, and stays when shares are added or taken off."""
    if q1 == 0:
        entry[0] = NAN
    elif q0 == 0 or (q0 > 0) != (q1 > 0):
        entry[0] = ref
        extreme[0] = ref


cdef inline int fill(Orders* o, double[:, ::1] extra, bint metrics_only, Py_ssize_t t,
                     Py_ssize_t c, Py_ssize_t g, double d, double pe, double fee_rate,
                     double fixed, double bp, double tiny, double ref, double mark,
                     double* live, bint forced, double* cash, double* q, double* entry,
                     double* extreme, int reason, double* paid=NULL) noexcept nogil:
    """Fill d shares of column c at pe (slippage included) with fees: a buy never spends
    more than the buying power ``bp`` (it shrinks to what bp pays for, or is skipped when
    at most ``tiny`` is left, a rounding residue; recorded as R_FIXED_FEE when there was
    buying power and the fixed fee took it); move cash and position, the stop reference
    (``ref`` when a position opens) and book it.

    ``live``: the account's equity now, with column c valued at ``mark``; the order moves
    it by -(d (pe - mark) + fees). An order (not ``forced``) with a fixed fee that would
    leave it <= 0 is skipped (R_FIXED_FEE); a forced one (stop, drawdown exit, margin
    call) fills with its fees capped at what is left after its fill (slippage), so fees
    never turn equity negative. Several orders of one account on one bar
    each see what the earlier ones left. Returns 0 when filled, 2 when filled with its
    fees capped (the account has nothing left: the caller closes it), 1 when skipped, -1
    when out of memory for the order record."""
    cdef double fee = fabs(d) * pe * fee_rate + fixed
    cdef double q0 = q[0], moved, left
    cdef int drained = 0
    if d > 0 and not forced and d * pe + fee > bp:
        if bp - fixed <= tiny:
            if fixed > 0 and bp > tiny:   # the fee, not a lack of cash, stops it
                return skip(o, extra, metrics_only, t, c, g, pe)
            return 1
        d = (bp - fixed) / (pe * (1 + fee_rate))
        fee = d * pe * fee_rate + fixed
    moved = d * (pe - (pe if isnan(mark) else mark))   # fill vs mark (slippage, gap)
    left = live[0] - moved   # equity after the fill, before its fees
    if forced:
        if fee > left:   # capped at the positive equity left (0 when none)
            fee = left if left > 0 else 0.0
            drained = 1
    elif fixed > 0 and left - fee <= 0:
        return skip(o, extra, metrics_only, t, c, g, pe)
    live[0] -= moved + fee
    if paid != NULL:
        paid[0] = fee
    cash[0] += -d * pe - fee
    q[0] += d
    stop_ref(q0, q[0], ref, entry, extreme)
    return -1 if record(o, extra, metrics_only, t, c, g, d, pe, fee, reason) != 0 else (
        2 if drained else 0)



cdef inline double order_size(double e, double equity, double q, double p, double slip,
                              double fees, double fixed) noexcept nogil:
    """Shares to trade so that, after costs, position value q'·p = e · equity after costs.

    Buying Δ > 0 at p(1+s) with fee f costs Δ(p(1+s)(1+f) - p) + F of equity, selling
    costs |Δ|(p - p(1-s)(1-f)) + F, hence (DESIGN.md: exposure 1 invests all cash net of
    fees; exposure 0 sells everything):
        Δ = (e (E - F) - q p) / (p + e (p(1+s)(1+f) - p))   (buy)
        Δ = (e (E - F) - q p) / (p - e (p - p(1-s)(1-f)))   (sell)
    """
    cdef double want = e * equity / p - q
    cdef double num, den
    if fabs(want) * p <= 1e-12 * fabs(equity):
        # already there (the held exposure re-asked, up to rounding: an all-in buy
        # leaves cash at +-1e-14): no order, so no fixed fee netted out of a zero trade
        return 0.0
    if e == 0:
        return -q
    num = e * (equity - fixed) - q * p
    if want > 0:
        den = p + e * (p * (1 + slip) * (1 + fees) - p)
    else:
        den = p - e * (p - p * (1 - slip) * (1 - fees))
    if den <= 0:
        return 0.0
    return num / den


cdef inline double event_size(double ev, double size, int size_type, bint accumulate,
                              double q, double equity, double p, double cap) noexcept nogil:
    """Shares of an entry (ev = 1) or exit (ev = 0) event of the long-only order mode.

    ``size`` counts a fraction of equity (S_EQUITY), cash (S_VALUE) or shares at the
    unslipped price p. An entry buys size while flat, or adds size with ``accumulate``,
    never past ``cap`` x equity of position value; an exit sells everything, or size
    (at most the position) with ``accumulate``. inf = as much as possible (vectorbt).
    """
    cdef double amt = size * equity / p if size_type == S_EQUITY else (
        size / p if size_type == S_VALUE else size)
    cdef double room
    if ev > 0:
        if q != 0 and not accumulate:
            return 0.0
        room = cap * equity / p - q
        if amt > room:
            amt = room
        return amt if amt > 0 else 0.0
    if accumulate and amt < q:
        return -amt
    return -q


cdef inline double slip_of(const double[:, :] base, const double[:, :] impact, double cap,
                           Py_ssize_t t, Py_ssize_t j, double d) noexcept nogil:
    """Slippage fraction of an order of d shares: base + min(impact · sqrt|d|, cap)."""
    if impact[t, j] > 0:
        return base[t, j] + min(impact[t, j] * sqrt(fabs(d)), cap)
    return base[t, j]



# ---------------------------------------------------------------------------------------
# The state carried from one bar to the next, and the per-bar phases
# ---------------------------------------------------------------------------------------

STATE_VERSION = 1
# the state's arrays: name, length ("col": one per column, "group": one per account, or
# (account, fields) for the metrics-only accumulators), dtype, initial value ("cash" =
# init_cash). Everything a bar reads that an earlier bar wrote is here.
_STATE_ARRAYS = (
    ("q", "col", "f8", 0.0),              # shares held
    ("last", "col", "f8", NAN),           # last valid close (the mark on a missing bar)
    ("want", "col", "f8", 0.0),           # target exposure in force (NaN rows hold it)
    ("pending", "col", "i1", 0),          # an order waits (through missing bars)
    ("entry", "col", "f8", NAN),          # stops' entry reference (NaN: flat)
    ("extreme", "col", "f8", NAN),        # trailing stop's extreme since entry
    ("ev", "col", "f8", NAN),             # pending order event (1 entry, 0 exit)
    ("ev_size", "col", "f8", 0.0),        # its size
    ("lim_px", "col", "f8", NAN),         # resting limit price (NaN: none)
    ("lim_q", "col", "f8", 0.0),          # its shares
    ("lim_end", "col", "intp", 0),        # its last bar (absolute)
    ("prev_target", "col", "f8", NAN),    # last target row (next_open acts on it)
    ("prev_size", "col", "f8", NAN),      # last event size row (next_open)
    ("cash", "group", "f8", "cash"),
    ("prev_eq", "group", "f8", "cash"),   # equity at the last close
    ("peak", "group", "f8", "cash"),      # drawdown control's peak
    ("resume", "group", "intp", -1),      # drawdown control: flat until this bar
    ("bust", "group", "i1", 0),           # closed: no orders, no interest
    ("drained", "group", "i1", 0),        # a forced order's fees took all equity
    ("drain_fee", "group", "f8", 0.0),    # that fee (cut if the closes lose more)
    ("drain_rec", "group", "intp", 0),    # its order record (absolute number)
    ("stats", "stats", "f8", None),       # metrics-only: acc_add statistics
    ("extras", "extras", "f8", 0.0),      # metrics-only: EXTRAS
)


cdef class SimState:
    """Everything ``simulate`` carries from one bar to the next, for ``n_columns`` columns
    and ``n_groups`` accounts starting with ``init_cash`` each: pass it as ``state=`` to
    start from it; it is updated in place to the state after the call's last row, so
    calls on consecutive row chunks give the bits of one call on all rows.

    ``bar``: rows done (absolute bar number of the next row); ``n_orders``: order records
    returned so far. ``state["cash"]`` etc. view the arrays (see ``_STATE_ARRAYS``).
    """
    cdef readonly Py_ssize_t n_columns, n_groups
    cdef public Py_ssize_t bar, n_orders
    cdef dict _a
    # account -> (fee array, index) of a drained account's order record returned by an
    # earlier call, whose fee a later bar may still cut (not saved by to_dict)
    cdef dict _drain_ref

    def __init__(self, n_columns, n_groups, init_cash):
        self.n_columns = _count("n_columns", n_columns, 0)
        self.n_groups = _count("n_groups", n_groups, 1)
        cash = float(init_cash)
        if not cash > 0 or cash == INFINITY:
            raise ValueError(f"init_cash must be a positive finite number, got {init_cash!r}")
        self.bar = self.n_orders = 0
        self._drain_ref = {}
        self._a = {}
        for name, per, dtype, init in _STATE_ARRAYS:
            if per == "stats":
                self._a[name] = _acc_new(self.n_groups)
                continue
            a = np.empty(self._shape(per), dtype=np.dtype(dtype))
            a[...] = cash if init == "cash" else init
            self._a[name] = a

    def _shape(self, per):
        return {"col": (self.n_columns,), "group": (self.n_groups,),
                "stats": (self.n_groups, NFIELDS), "extras": (self.n_groups, NX)}[per]

    def __getitem__(self, name):
        return self._a[name]

    def __repr__(self):
        return (f"SimState(n_columns={self.n_columns}, n_groups={self.n_groups}, "
                f"bar={self.bar}, n_orders={self.n_orders})")

    def to_dict(self):
        """Plain dict of numpy arrays and ints (``np.savez(**d)`` or JSON via tolist).

        It holds the state, not references to orders already returned: when an account's
        forced order took all its equity while another of its assets had no bar, a
        later bar cuts that order's fee in the array an earlier call returned; a state
        from ``from_dict`` (or ``copy``) cannot reach it (its cash is still right)."""
        d = {"version": STATE_VERSION, "n_columns": self.n_columns,
             "n_groups": self.n_groups, "bar": self.bar, "n_orders": self.n_orders}
        d.update({k: v.copy() for k, v in self._a.items()})
        return d

    @staticmethod
    def from_dict(d):
        """The state ``to_dict`` gave; ValueError naming the field that is missing or has
        the wrong version, shape or dtype."""
        if _scalar(d, "version") != STATE_VERSION:
            raise ValueError(f"SimState version: got {d['version']!r}, this kernel reads "
                             f"version {STATE_VERSION}")
        cdef SimState s = SimState.__new__(SimState)
        s.n_columns = _count("n_columns", _scalar(d, "n_columns"), 0)
        s.n_groups = _count("n_groups", _scalar(d, "n_groups"), 1)
        s.bar = _count("bar", _scalar(d, "bar"), 0)
        s.n_orders = _count("n_orders", _scalar(d, "n_orders"), 0)
        s._drain_ref = {}
        s._a = {}
        for name, per, dtype, _ in _STATE_ARRAYS:
            if name not in d:
                raise ValueError(f"SimState field {name!r} is missing")
            a = d[name]
            want = np.dtype(dtype)
            if not isinstance(a, np.ndarray) or a.dtype != want or a.shape != s._shape(per):
                raise ValueError(
                    f"SimState field {name!r}: expected a {want} array of shape "
                    f"{s._shape(per)}, got {type(a).__name__} "
                    f"{getattr(a, 'dtype', '')} {getattr(a, 'shape', '')}")
            s._a[name] = np.array(a, dtype=want, order="C")   # a copy
        return s

    def copy(self):
        """An independent copy (as ``from_dict(to_dict())``: see ``to_dict``)."""
        return SimState.from_dict(self.to_dict())


def _count(name, v, lo):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(v)


def _scalar(d, name):
    if name not in d:
        raise ValueError(f"SimState field {name!r} is missing")
    v = d[name]
    if isinstance(v, np.ndarray) and v.shape == () and v.dtype.kind in "iu":
        v = v.item()   # np.load gives 0-d arrays
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"SimState field {name!r} must be an integer, got {v!r}")
    return int(v)


@cython.final   # direct (inlinable) calls of the phases, no vtable
cdef class _Sim:
    """One call's inputs, the state's arrays, per-bar scratch and outputs; the phases are
    its methods (``step`` runs one bar). Row r of the inputs is absolute bar t0 + r."""
    # inputs (time-indexed ones by the call's row r)
    cdef const double[:, :] close, exec_price, target, slip_base, impact, size
    cdef const unsigned char[:, :] entries, exits   # boolean events instead of target
    cdef const double[:, :] bar_open, bar_high, bar_low
    cdef const double[::1] fees, fixed, sl_stop, tp_stop, sl_trail, lim_off
    cdef const Py_ssize_t[::1] asset, group
    cdef double impact_cap, max_leverage, max_pos, dd_limit, borrow, margin
    cdef Py_ssize_t m, n_groups, dd_cooldown, tif, t0, base
    cdef int size_type
    cdef bint daily, next_open, metrics_only, use_stops, use_events, use_limit, use_margin
    cdef bint accumulate, use_bool
    # no stops, limits, drawdown control, margin, borrowing or drained account: a bar is
    # its signals, the orders of the columns whose target changed and the marks
    cdef bint fast
    # fast path, one account per column (group[c] == c): a bar's equity at the execution
    # prices is only needed for the columns with an order
    cdef bint solo
    # lean: cash and positions are not written (rebuilt from the order records on
    # demand, ``cash_from_orders``/``positions_from_orders``); fast path only
    cdef bint lean
    cdef int acc_need   # metrics-only: the acc_add groups its metrics read (A_*)
    cdef Py_ssize_t[::1] todo   # fast path: the columns with a pending order this bar
    cdef Py_ssize_t n_todo
    cdef bint overflow   # a fill left a position that is no finite number (step returned -1)
    # the state (SimState's arrays)
    cdef double[::1] q, last, want, entry, extreme, ev, ev_size, lim_px, lim_q
    cdef double[::1] prev_target, prev_size, cash, prev_eq, peak, drain_fee
    cdef signed char[::1] pending, bust, drained
    cdef Py_ssize_t[::1] lim_end, resume, drain_rec
    cdef double[:, ::1] stats, extra
    # per bar: equity at the execution prices, gross target exposure, exposure per
    # column, execution price, live equity (as the bar's orders leave it: each order's
    # fixed-fee check sees it), gross and short value at the close, stopped this bar
    cdef double[::1] eq, gross, e, px, live, gross_v, short_v
    cdef signed char[::1] stopped
    # per bar and account: some asset of it has a close (metrics-only: a bar with no
    # close and an unchanged equity is no observation, as res.returns' NaN)
    cdef signed char[::1] priced
    cdef double[::1] late_cut   # fee cuts of order records returned by earlier calls
    # outputs
    # per-bar outputs: any strides (a column block of the caller's panel, out=)
    cdef double[:, :] equity, cash_out, positions, interest
    cdef signed char[:, :] halted
    cdef Orders orders

    def __dealloc__(self):
        free(self.orders.buf)

    cdef int step(self, Py_ssize_t r) noexcept nogil:
        """One bar; -1 when out of memory for the order records."""
        cdef Py_ssize_t g
        if self.fast:
            return self.fast_step(r)
        for g in range(self.n_groups):
            self.live[g] = self.prev_eq[g]   # the last closes' marks until equity_phase
        if self.use_stops and self.stops_phase(r) < 0:
            return -1
        if self.use_limit and self.limits_phase(r) < 0:
            return -1
        self.targets_phase(r)
        self.equity_phase(r)
        if self.orders_phase(r) < 0:
            return -1
        self.drain_phase()
        self.mark_phase(r, False)
        if self.use_margin and self.margin_phase(r) < 0:
            return -1
        self.record_phase(r)
        return 0

    cdef int fast_step(self, Py_ssize_t r) noexcept nogil:
        """``step`` without stops, limits, drawdown control, margin or borrowing (the
        phases that would do nothing are skipped; the others give the same bits): one
        pass for targets and equity, the orders of the columns whose target changed, one
        pass for the marks."""
        cdef Py_ssize_t g, k, side
        if self.signal_phase(r):
            if self.solo:
                self.solo_equity(r)
            else:
                self.exec_equity(r)
                for g in range(self.n_groups):
                    self.live[g] = self.eq[g]
            for side in range(2):   # orders_phase over the pending columns only
                self.orders.phase = P_SELL + side
                for k in range(self.n_todo):
                    if self.pending[self.todo[k]] and self.order(r, self.todo[k], side) < 0:
                        return -1
        if self.solo:
            if self.metrics_only:
                self.solo_stats(r)
            else:
                self.solo_close(r)
            return 0
        self.mark_phase(r, not self.metrics_only and not self.lean)
        self.record_accounts(r)
        return 0

    cdef bint signal_phase(self, Py_ssize_t r) noexcept nogil:
        """targets_phase without stops or drawdown control: the targets (or events), the
        columns with an order this bar in ``todo`` (their execution price in ``px``);
        True if any."""
        cdef Py_ssize_t c, n_todo = 0
        cdef double s, p
        cdef unsigned char en, ex
        # pointers in locals, not self's fields: a store through a char pointer (pending)
        # would make the compiler reload every field
        cdef Py_ssize_t es = self.exec_price.strides[1]
        cdef const char* ep = <const char*>&self.exec_price[r, 0]
        cdef const Py_ssize_t* asset = &self.asset[0]
        cdef double* px = &self.px[0]
        cdef double* want = &self.want[0]
        cdef signed char* pending = &self.pending[0]
        cdef Py_ssize_t* todo = &self.todo[0]
        cdef bint events = self.use_events, daily = self.daily
        cdef Py_ssize_t lag = 1 if self.next_open else 0, row = r - lag
        cdef bint bools = self.use_bool and row >= 0, floats = not self.use_bool and row >= 0
        cdef const char* tg = NULL
        cdef const unsigned char* ent = NULL
        cdef const unsigned char* ext = NULL
        cdef Py_ssize_t ts = 0, ens = 0, exs = 0
        if floats:
            tg, ts = <const char*>&self.target[row, 0], self.target.strides[1]
        if bools:
            ent, ens = &self.entries[row, 0], self.entries.strides[1]
            ext, exs = &self.exits[row, 0], self.exits.strides[1]
        cdef Py_ssize_t j, n_assets = self.exec_price.shape[1]
        if es == sizeof(double):
            # the few columns with an order read this row at random: fetch it now
            # (a cache line per 8 assets), while the signals are read
            for j in range(0, n_assets, 8):
                prefetch(ep + j * es)
        # boolean rows, on change: 8 columns at a time are skipped while they have no
        # entry, no exit and nothing pending (most bars of most columns)
        cdef bint skim = bools and not daily and ens == 1 and exs == 1
        cdef uint64_t w_en, w_ex, w_pe
        c = 0
        while c < self.m:
            if skim and c + 8 <= self.m and c % 8 == 0:
                memcpy(&w_en, ent + c, 8)
                memcpy(&w_ex, ext + c, 8)
                memcpy(&w_pe, pending + c, 8)
                if (w_en | w_ex | w_pe) == 0:
                    c += 8
                    continue
            if floats:
                s = at(tg, ts, c)
            elif bools:   # as row_target
                en, ex = ent[c * ens], ext[c * exs]
                if en == ex and not daily and not pending[c]:
                    c += 1
                    continue   # neither (or both, as bytes 1/1): nothing to do
                s = NAN if (en != 0) == (ex != 0) else (1.0 if en != 0 else 0.0)
            else:
                s = self.prev_target[c]
            if events:
                if not isnan(s):   # an event waits through missing bars
                    self.ev[c] = s
                    self.ev_size[c] = (self.size[r - lag, c] if r >= lag
                                       else self.prev_size[c])
                    pending[c] = 1
            else:
                # the target acted on moves only by a change (a creep within rounding
                # adds up to one); pending stays through missing bars
                if not isnan(s) and (daily or changed(s, want[c])):
                    pending[c] = 1
                    want[c] = s
                if daily:
                    pending[c] = 1
            if pending[c]:
                p = at(ep, es, asset[c])
                if not isnan(p):
                    px[c] = p
                    todo[n_todo] = c
                    n_todo += 1
            c += 1
        self.n_todo = n_todo
        return n_todo > 0

    cdef void exec_equity(self, Py_ssize_t r) noexcept nogil:
        """equity_phase without drawdown control or drained accounts: every account's
        equity at the execution prices (the last valid price if none), exposures."""
        cdef Py_ssize_t c, g
        cdef double p, x
        cdef double lev = self.max_leverage, cap = self.max_pos
        cdef Py_ssize_t es = self.exec_price.strides[1]
        cdef const char* ep = <const char*>&self.exec_price[r, 0]
        cdef const Py_ssize_t* asset = &self.asset[0]
        cdef const Py_ssize_t* group = &self.group[0]
        cdef double* want = &self.want[0]
        cdef double* q = &self.q[0]
        cdef double* last = &self.last[0]
        cdef double* eq = &self.eq[0]
        cdef double* gross = &self.gross[0]
        cdef double* e = &self.e[0]
        cdef double* cash = &self.cash[0]
        for g in range(self.n_groups):
            eq[g] = cash[g]
            gross[g] = 0
        for c in range(self.m):
            p = at(ep, es, asset[c])
            if isnan(p):
                p = last[c]
            g = group[c]
            if q[c] != 0 and not isnan(p):
                eq[g] += q[c] * p
            x = exposure(want[c], lev, cap)
            e[c] = x
            gross[g] += fabs(x)

    cdef void solo_equity(self, Py_ssize_t r) noexcept nogil:
        """exec_equity for one account per column: only the columns with an order (the
        same operations, so the same bits: cash + q p, 0 + |e|)."""
        cdef Py_ssize_t c, k
        cdef double x
        cdef double lev = self.max_leverage, cap = self.max_pos
        cdef double* want = &self.want[0]
        cdef double* q = &self.q[0]
        cdef double* px = &self.px[0]
        cdef double* eq = &self.eq[0]
        cdef double* gross = &self.gross[0]
        cdef double* e = &self.e[0]
        cdef double* cash = &self.cash[0]
        cdef double* live = &self.live[0]
        for k in range(self.n_todo):
            c = self.todo[k]   # px[c] is valid (not NaN) for a column in todo
            eq[c] = cash[c]
            if q[c] != 0:
                eq[c] += q[c] * px[c]
            live[c] = eq[c]
            x = exposure(want[c], lev, cap)
            e[c] = x
            gross[c] = 0
            gross[c] += fabs(x)

    cdef void solo_close(self, Py_ssize_t r) noexcept nogil:
        """mark_phase and record_accounts for one account per column, fused (no
        metrics-only statistics): the mark, the equity row, the peak."""
        cdef Py_ssize_t c, t = self.t0 + r
        cdef double v, cl
        cdef double* q = &self.q[0]
        cdef double* last = &self.last[0]
        cdef double* cash = &self.cash[0]
        cdef double* prev_eq = &self.prev_eq[0]
        cdef double* peak = &self.peak[0]
        cdef Py_ssize_t* resume = &self.resume[0]
        cdef Py_ssize_t cs = self.close.strides[1]
        cdef const char* cr = <const char*>&self.close[r, 0]
        cdef const Py_ssize_t* asset = &self.asset[0]
        cdef bint keep = not self.lean
        cdef out_row equity = row_of(self.equity, r)
        cdef out_row positions = row_of(self.positions, r) if keep else NULL
        cdef out_row cash_out = row_of(self.cash_out, r) if keep else NULL
        for c in range(self.m):
            cl = at(cr, cs, asset[c])
            if not isnan(cl):
                last[c] = cl
            v = cash[c]
            if q[c] != 0:
                v += q[c] * last[c]
            equity[c] = v
            prev_eq[c] = v
            peak[c] = v if (v > peak[c] and resume[c] < t) else peak[c]   # branch-free
        if keep:   # a loop of its own: the lean loop above tests nothing more
            for c in range(self.m):
                positions[c] = q[c]
                cash_out[c] = cash[c]

    cdef void solo_stats(self, Py_ssize_t r) noexcept nogil:
        """solo_close for metrics-only: mark_phase and record_accounts for one account
        per column, fused (the same operations: the bits of the two passes), each
        account's return into its statistics and extras. A 2520 x 1000 MA crossover,
        one thread: metrics-only Sharpe 83 -> 57 ms (the lean full run: 50 ms)."""
        cdef Py_ssize_t c, t = self.t0 + r
        cdef double v, x, gv, cl, ret
        cdef double* q = &self.q[0]
        cdef double* last = &self.last[0]
        cdef double* cash = &self.cash[0]
        cdef double* prev_eq = &self.prev_eq[0]
        cdef double* peak = &self.peak[0]
        cdef Py_ssize_t* resume = &self.resume[0]
        cdef Py_ssize_t cs = self.close.strides[1]
        cdef const char* cr = <const char*>&self.close[r, 0]
        cdef const Py_ssize_t* asset = &self.asset[0]
        cdef int need = self.acc_need
        for c in range(self.m):
            cl = at(cr, cs, asset[c])
            if not isnan(cl):
                last[c] = cl
            v = cash[c]
            gv = 0.0
            if q[c] != 0:
                x = q[c] * last[c]
                v += x
                gv = fabs(x)
            ret = v / prev_eq[c] - 1.0
            # 0/0 (an emptied account), and a bar without a close where nothing changed
            # (not yet listed, a holiday, delisted): no observation, as record_accounts.
            # The close first: almost always there, a predictable branch (ret != 0 first,
            # a coin toss on flat bars, cost metrics-only 25 %)
            # (the per-bar means, mean equity and exposure, count the same bars)
            if not isnan(ret) and (not isnan(cl) or ret != 0.0):
                acc_add(&self.stats[c, 0], ret, log1p(ret) if need & A_STABILITY else 0.0,
                        0.0, need)
                self.extra[c, X_EQSUM] += v
                if gv != 0.0:
                    self.extra[c, X_EXPO] += gv / v
            prev_eq[c] = v
            peak[c] = v if (v > peak[c] and resume[c] < t) else peak[c]

    cdef inline int fill_(self, Py_ssize_t r, Py_ssize_t c, double d, double pe,
                          double bp, double tiny, double ref, double mark, double* live,
                          bint forced, int reason, double* paid) noexcept nogil:
        """``fill`` on column c's account at bar r; -1 (``overflow`` set) when the
        position it leaves is not a finite number of shares: equity / price overflowed
        (a price near DBL_MIN, or cash near DBL_MAX), or an order sized inf shares
        (size=inf, "all it can buy", at such a price): simulate raises OrderOverflow."""
        cdef Py_ssize_t g = self.group[c]
        cdef int code = fill(&self.orders, self.extra, self.metrics_only, self.t0 + r, c, g,
                             d, pe, self.fees[c], self.fixed[c], bp, tiny, ref, mark, live,
                             forced, &self.cash[g], &self.q[c], &self.entry[c],
                             &self.extreme[c], reason, paid)
        if not fabs(self.q[c]) < INFINITY:
            self.overflow = True
            return -1
        return code

    cdef int close_out(self, Py_ssize_t r, Py_ssize_t c, double price, double sl,
                       double* live, int reason, double* paid) noexcept nogil:
        """Close column c's whole position at ``price`` with slippage ``sl`` and fees (a
        stop or a margin call: forced, so covering a short is never limited by buying
        power and the fixed fee is capped at the equity ``live`` has left, column c valued
        at its last close) and clear what the column was waiting for: its target becomes
        0, a pending order, event or resting limit is dropped. Returns ``fill``'s code."""
        cdef double d = -self.q[c]
        self.want[c] = 0.0
        self.ev[c] = NAN
        self.lim_px[c] = NAN
        self.pending[c] = 0
        return self.fill_(r, c, d, price * (1 + sl) if d > 0 else price * (1 - sl),
                          INFINITY, 0.0, NAN, self.last[c], live, True, reason, paid)

    cdef inline void drain(self, Py_ssize_t g, double fee) noexcept nogil:
        """Account g's forced order (the last record) had its fees capped at ``fee``."""
        if not self.drained[g]:
            self.drained[g] = 1
            self.drain_fee[g] = fee
            self.drain_rec[g] = self.base + self.orders.n - 1

    cdef int stops_phase(self, Py_ssize_t r) noexcept nogil:
        """Stops, before this bar's signal (they free cash for its orders)."""
        cdef Py_ssize_t c, j, g
        cdef double cl, op, hi, lo, lvl, tl, hit, sgn, cost = 0.0
        cdef int why, code
        cdef bint long_
        self.orders.phase = P_STOP
        for c in range(self.m):
            self.stopped[c] = 0
            if self.q[c] == 0 or isnan(self.entry[c]):
                continue
            j = self.asset[c]
            cl = self.close[r, j]
            if isnan(cl):
                continue   # no bar, no check
            bar_range(self.bar_open[r, j], self.bar_high[r, j], self.bar_low[r, j], cl,
                      &op, &hi, &lo)
            long_ = self.q[c] > 0
            sgn = 1.0 if long_ else -1.0   # mirrors every level for a short
            hit = NAN
            why = R_STOP
            lvl = self.entry[c] * (1 - sgn * self.sl_stop[c])   # NaN when off
            if not isnan(self.sl_trail[c]):
                tl = self.extreme[c] * (1 - sgn * self.sl_trail[c])
                if isnan(lvl) or sgn * tl > sgn * lvl:   # the tighter one acts
                    lvl = tl
                    why = R_TRAILING
            if not isnan(lvl):   # a long's protective stop is below it
                hit = touch(lvl, op, lo, hi, long_)
            if isnan(hit) and not isnan(self.tp_stop[c]):
                why = R_TAKE_PROFIT
                hit = touch(self.entry[c] * (1 + sgn * self.tp_stop[c]), op, lo, hi,
                            not long_)
            if long_ and hi > self.extreme[c]:      # after the check: a bar's own high
                self.extreme[c] = hi                 # cannot stop it out
            elif not long_ and lo < self.extreme[c]:
                self.extreme[c] = lo
            if isnan(hit):
                continue
            self.stopped[c] = 1
            g = self.group[c]
            code = self.close_out(r, c, hit, slip_of(self.slip_base, self.impact,
                                                     self.impact_cap, r, j, -self.q[c]),
                                  &self.live[g], why, &cost)
            if code < 0:
                return -1
            if code == 2:   # its fees took all the equity: close the account
                self.drain(g, cost)
        return 0

    cdef int limits_phase(self, Py_ssize_t r) noexcept nogil:
        """Resting limit orders: sells, then buys."""
        cdef Py_ssize_t side, c, j, g, t = self.t0 + r
        cdef double cl, op, hi, lo, hit
        for side in range(2):
            self.orders.phase = P_LIMIT_SELL + side
            for c in range(self.m):
                if isnan(self.lim_px[c]) or (self.lim_q[c] > 0) != (side == 1):
                    continue
                if self.tif > 0 and t > self.lim_end[c]:
                    self.lim_px[c] = NAN   # expired
                    continue
                j = self.asset[c]
                cl = self.close[r, j]
                g = self.group[c]
                if isnan(cl) or self.bust[g]:
                    continue
                bar_range(self.bar_open[r, j], self.bar_high[r, j], self.bar_low[r, j], cl,
                          &op, &hi, &lo)
                hit = touch(self.lim_px[c], op, lo, hi, self.lim_q[c] > 0)
                if isnan(hit):
                    continue
                self.lim_px[c] = NAN
                # no slippage at the limit; buying power at the last marks (this bar's
                # close is unknown); the fill is the stop reference
                if self.fill_(r, c, self.lim_q[c], hit,
                              self.cash[g] + (self.max_leverage - 1) * self.prev_eq[g],
                              1e-12 * fabs(self.prev_eq[g]), hit, hit, &self.live[g],
                              False, R_SIGNAL, NULL) < 0:
                    return -1
        return 0

    cdef void targets_phase(self, Py_ssize_t r) noexcept nogil:
        """New targets (NaN = hold) or order events, and the execution prices."""
        cdef Py_ssize_t c
        cdef double s
        # local pointers: the compiler keeps them in registers (self's fields would be
        # reloaded after every store through a char pointer such as pending)
        cdef Py_ssize_t es = self.exec_price.strides[1]
        cdef const char* ep = <const char*>&self.exec_price[r, 0]
        cdef const Py_ssize_t* asset = &self.asset[0]
        cdef double* px = &self.px[0]
        cdef double* want = &self.want[0]
        cdef signed char* pending = &self.pending[0]
        cdef signed char* stopped = &self.stopped[0]
        for c in range(self.m):
            px[c] = at(ep, es, asset[c])
            if self.use_stops and stopped[c]:   # the stop replaces this bar's signal
                continue
            s = self.row_target(r - 1 if self.next_open else r, c)
            if self.use_events:
                if not isnan(s):   # an event waits through missing bars
                    self.ev[c] = s
                    if not self.next_open:
                        self.ev_size[c] = self.size[r, c]
                    else:
                        self.ev_size[c] = self.size[r - 1, c] if r > 0 else self.prev_size[c]
                    pending[c] = 1
                continue
            # as signal_phase: the target acted on moves only by a change
            if not isnan(s) and (self.daily or changed(s, want[c])):
                pending[c] = 1  # stays pending through missing bars
                want[c] = s
            if self.daily:
                pending[c] = 1

    cdef inline double row_target(self, Py_ssize_t r, Py_ssize_t c) noexcept nogil:
        """Column c's target (or event) of row r; row -1 (next_open's row 0 acts on it)
        is the last call's last row. Boolean entries/exits read as 1 (entry), 0 (exit) or
        NaN (neither, or both: they cancel), as ``ql.signals.from_entries_exits``."""
        cdef bint en, ex
        if r < 0:
            return self.prev_target[c]
        if not self.use_bool:
            return self.target[r, c]
        en = self.entries[r, c] != 0
        ex = self.exits[r, c] != 0
        return NAN if en == ex else (1.0 if en else 0.0)

    cdef void equity_phase(self, Py_ssize_t r) noexcept nogil:
        """Account equity at the execution prices (last valid price if none), exposures,
        drawdown control, and a drained account's closes."""
        cdef Py_ssize_t c, g
        cdef double p
        cdef double* eq = &self.eq[0]
        cdef double* gross = &self.gross[0]
        cdef double* e = &self.e[0]
        cdef double* q = &self.q[0]
        cdef double* px = &self.px[0]
        cdef double* last = &self.last[0]
        cdef double* want = &self.want[0]
        cdef const Py_ssize_t* group = &self.group[0]
        for g in range(self.n_groups):
            eq[g] = self.cash[g]
            gross[g] = 0
        for c in range(self.m):
            p = px[c] if not isnan(px[c]) else last[c]
            if q[c] != 0 and not isnan(p):
                eq[group[c]] += q[c] * p
            e[c] = exposure(want[c], self.max_leverage, self.max_pos)
            gross[group[c]] += fabs(e[c])
        for g in range(self.n_groups):
            self.live[g] = self.eq[g]   # at the execution prices
        if self.dd_limit > 0:   # drawdown control (off: no cost)
            self.drawdown_phase(r)
        cdef signed char* drained = &self.drained[0]
        cdef signed char* bust = &self.bust[0]
        for c in range(self.m):   # a drained account closes what it holds, then stops
            g = group[c]
            if drained[g] and not bust[g]:
                self.pending[c] = 1
                e[c] = 0.0
                self.ev[c] = NAN

    cdef void drawdown_phase(self, Py_ssize_t r) noexcept nogil:
        """Flatten an account at or below (1 - dd_limit) x peak; re-enter after the
        cool-down with the peak reset (``resume`` is an absolute bar)."""
        cdef Py_ssize_t c, g, t = self.t0 + r
        for g in range(self.n_groups):
            if self.resume[g] == t:                 # re-entry after the cool-down
                self.peak[g] = self.eq[g]
            elif self.resume[g] < t:
                if self.eq[g] > self.peak[g]:
                    self.peak[g] = self.eq[g]
                if self.eq[g] <= self.peak[g] * (1 - self.dd_limit):
                    self.resume[g] = t + self.dd_cooldown + 1
            self.halted[r, g] = self.resume[g] > t
        for c in range(self.m):
            g = self.group[c]
            if self.halted[r, g] or (self.resume[g] == t and not self.use_events):
                self.pending[c] = 1                 # flatten, or re-establish
            if self.halted[r, g]:
                self.gross[g] -= fabs(self.e[c])
                self.e[c] = 0.0
                self.ev[c] = NAN                    # entries wait out the halt

    cdef int orders_phase(self, Py_ssize_t r) noexcept nogil:
        """Orders: sells (side 0) before buys (side 1), so a portfolio's sells fund its
        buys."""
        cdef Py_ssize_t side, c
        cdef signed char* pending = &self.pending[0]
        cdef double* px = &self.px[0]
        for side in range(2):
            self.orders.phase = P_SELL + side
            for c in range(self.m):
                if pending[c] and not isnan(px[c]):
                    if self.order(r, c, side) < 0:
                        return -1
        return 0

    cdef inline double shares(self, Py_ssize_t r, Py_ssize_t c, Py_ssize_t g, double p,
                              bint forced, double* scale) noexcept nogil:
        """Shares column c's order trades at price p (before slippage's re-sizing);
        ``scale`` gets the group's pro-rata cap on gross exposure (exposure mode)."""
        if self.use_events:
            if forced:
                return -self.q[c]
            if isnan(self.ev[c]):
                return 0.0
            return event_size(self.ev[c], self.ev_size[c], self.size_type, self.accumulate,
                              self.q[c], self.eq[g], p, self.max_pos)
        scale[0] = (self.max_leverage / self.gross[g] if self.gross[g] > self.max_leverage
                    else 1.0)
        return order_size(self.e[c] * scale[0], self.eq[g], self.q[c], p,
                          self.slip_base[r, self.asset[c]], self.fees[c], self.fixed[c])

    cdef int order(self, Py_ssize_t r, Py_ssize_t c, Py_ssize_t side) noexcept nogil:
        """Column c's pending order, if it is on this side: skipped for its fixed fee,
        rested as a limit order, or filled at the execution price with slippage."""
        cdef Py_ssize_t g = self.group[c], j = self.asset[c], k
        cdef double p = self.px[c], d, sl, cost = 0.0, scale = 1.0, want
        cdef bint forced
        cdef int code
        if self.bust[g]:
            self.pending[c] = 0
            return 0
        if self.use_limit:
            self.lim_px[c] = NAN   # a new order replaces a resting one
        forced = self.drained[g] or (self.dd_limit > 0 and self.halted[r, g])
        d = self.shares(r, c, g, p, forced, &scale)
        if fabs(d) * p <= 1e-12 * fabs(self.eq[g]):
            want = self.e[c] * scale * self.eq[g] - self.q[c] * p   # value to trade
            if (self.fixed[c] > 0 and not forced and not self.use_events
                    and self.live[g] <= self.fixed[c]
                    and fabs(want) > 1e-12 * fabs(self.eq[g])):
                # sizing netted the fee out of the target and nothing is left (a fee of
                # all the equity): skipped for its fee, as a larger fee is
                if (want > 0) != (side == 1):
                    return 0  # the other pass records it
                self.pending[c] = 0
                return -1 if skip(&self.orders, self.extra, self.metrics_only, self.t0 + r,
                                  c, g, p) < 0 else 0
            self.pending[c] = 0  # already there
            self.ev[c] = NAN
            return 0
        if (d > 0) != (side == 1):
            return 0  # the other pass places it
        self.pending[c] = 0
        self.ev[c] = NAN
        if self.fixed[c] > 0 and not forced and (
                self.live[g] <= self.fixed[c] or (not self.use_events and (d > 0) != (
                    self.e[c] * scale * self.eq[g] / p - self.q[c] > 0))):
            # the account cannot pay the fixed fee (it has at most the fee in equity,
            # after this bar's earlier orders), or paying it turns the order around (a
            # buy into a sell): skip it, never reverse it (fill also skips one whose
            # costs would leave equity <= 0)
            return -1 if skip(&self.orders, self.extra, self.metrics_only, self.t0 + r,
                              c, g, p) < 0 else 0
        if self.use_limit and not isnan(self.lim_off[c]) and not forced:
            self.rest(r, c, g, d, p, scale)
            return 0
        sl = self.slip_base[r, j]
        if self.impact[r, j] > 0:
            # square-root impact of this order, then one re-sizing with it
            sl = slip_of(self.slip_base, self.impact, self.impact_cap, r, j, d)
            if not self.use_events:
                d = order_size(self.e[c] * scale, self.eq[g], self.q[c], p, sl,
                               self.fees[c], self.fixed[c])
        # stops reference the close of the bar a position opens
        code = self.fill_(r, c, d, p * (1 + sl) if d > 0 else p * (1 - sl),
                          self.cash[g] + (self.max_leverage - 1) * self.eq[g],
                          1e-12 * fabs(self.eq[g]), self.close[r, j], p, &self.live[g],
                          forced, R_MARGIN if self.drained[g] else (
                              R_DRAWDOWN if forced else R_SIGNAL), &cost)
        if code < 0:
            return -1
        if code == 2 and not self.drained[g]:   # a drawdown exit's fees took it all
            self.drain(g, cost)
            for k in range(self.m):
                if self.group[k] == g and self.q[k] != 0:
                    self.pending[k] = 1   # closes the rest on this bar
                    self.e[k] = 0.0
                    self.ev[k] = NAN
        return 0

    cdef void rest(self, Py_ssize_t r, Py_ssize_t c, Py_ssize_t g, double d, double p,
                   double scale) noexcept nogil:
        """Rest a limit order for what the signal buys at the limit price."""
        p = p * (1 - self.lim_off[c]) if d > 0 else p * (1 + self.lim_off[c])
        if not self.use_events:
            d = order_size(self.e[c] * scale, self.eq[g], self.q[c], p, 0.0, self.fees[c],
                           self.fixed[c])
        elif d > 0:   # an entry's fraction of equity buys more below
            d = event_size(1.0, self.ev_size[c], self.size_type, self.accumulate,
                           self.q[c], self.eq[g], p, self.max_pos)
        self.lim_px[c] = p
        self.lim_q[c] = d
        self.lim_end[c] = self.t0 + r + self.tif

    cdef void drain_phase(self) noexcept nogil:
        """A drained account is closed (bust) once it holds nothing; the fee that
        drained it was capped at the last marks: if the rest, closed at this bar's
        prices, lost more, it pays only what was there."""
        cdef Py_ssize_t c, g
        cdef signed char* bust = &self.bust[0]
        cdef signed char* drained = &self.drained[0]
        cdef const Py_ssize_t* group = &self.group[0]
        cdef double* q = &self.q[0]
        for g in range(self.n_groups):
            if drained[g]:
                bust[g] = 1   # no more orders or interest, once it holds nothing
        for c in range(self.m):
            if drained[group[c]] and q[c] != 0:
                bust[group[c]] = 0   # a missing bar: it closes on the next one
        for g in range(self.n_groups):
            if (bust[g] and drained[g] and self.cash[g] > 0
                    and dust(self.cash[g], 2 * self.max_leverage * self.peak[g])):
                # dust of the closes' rounding (+1e-13, which returns read as 0, not 0/0):
                # the capped fee took all there was (cash: at most 2 x leverage x peak)
                self.cut_drain_fee(g, -self.cash[g])
            elif (bust[g] and drained[g] and self.cash[g] < 0
                    and self.drain_fee[g] > 0):
                self.cut_drain_fee(g, min(-self.cash[g], self.drain_fee[g]))

    cdef inline void cut_drain_fee(self, Py_ssize_t g, double cost) noexcept nogil:
        """Account g's drain fee (and its record, wherever it went) less ``cost``, its
        cash more."""
        self.cash[g] += cost
        self.drain_fee[g] -= cost
        if self.metrics_only:
            self.extra[g, X_FEES] -= cost
        elif self.drain_rec[g] >= self.base:
            self.orders.buf[self.drain_rec[g] - self.base].fee -= cost
        else:   # the record went out with an earlier call
            self.late_cut[g] += cost

    cdef void mark_phase(self, Py_ssize_t r, bint keep) noexcept nogil:
        """Mark to the close (last valid close on a missing bar); borrowing costs.
        ``keep``: write the bar's positions in the same pass (the fast path's
        record_phase: no margin call can come between)."""
        cdef Py_ssize_t c, g
        cdef double cost, v, cl
        cdef double* eq = &self.eq[0]
        cdef double* gross_v = &self.gross_v[0]
        cdef double* short_v = &self.short_v[0]
        cdef double* q = &self.q[0]
        cdef double* last = &self.last[0]
        cdef Py_ssize_t cs = self.close.strides[1]
        cdef const char* cr = <const char*>&self.close[r, 0]
        cdef const Py_ssize_t* group = &self.group[0]
        cdef const Py_ssize_t* asset = &self.asset[0]
        cdef out_row positions = row_of(self.positions, r) if keep else NULL
        cdef signed char* priced = &self.priced[0]
        for g in range(self.n_groups):
            eq[g] = self.cash[g]
            gross_v[g] = 0.0
            short_v[g] = 0.0
            priced[g] = 0
        for c in range(self.m):
            cl = at(cr, cs, asset[c])
            if not isnan(cl):
                last[c] = cl
                priced[group[c]] = 1
            if keep:
                positions[c] = q[c]
            if q[c] != 0:
                g = group[c]
                v = q[c] * last[c]
                eq[g] += v
                gross_v[g] += fabs(v)
                if q[c] < 0:
                    short_v[g] -= v
        if self.borrow > 0:   # interest on borrowed cash and on shorts' value
            for g in range(self.n_groups):
                if self.bust[g]:
                    continue   # a closed account accrues nothing
                cost = self.borrow * ((-self.cash[g] if self.cash[g] < 0 else 0.0)
                                      + self.short_v[g])
                self.cash[g] -= cost
                self.eq[g] -= cost
                if not self.metrics_only:
                    self.interest[r, g] = cost

    cdef int margin_phase(self, Py_ssize_t r) noexcept nogil:
        """Maintenance margin: liquidate an account below it at the close."""
        cdef Py_ssize_t g
        self.orders.phase = P_MARGIN
        for g in range(self.n_groups):
            if (self.gross_v[g] > 0 and self.eq[g] < self.margin * self.gross_v[g]
                    and not self.bust[g]):
                if self.liquidate(r, g) < 0:
                    return -1
        return 0

    cdef int liquidate(self, Py_ssize_t r, Py_ssize_t g) noexcept nogil:
        """Close account g's positions at the close (margin call)."""
        cdef Py_ssize_t c, rec0 = self.orders.n
        cdef double sl, avail, pend = 0.0, flows = fabs(self.cash[g])
        cdef int code
        cdef bint capped = False
        # the slippage of the account's later closes is set aside, so an earlier
        # close's capped fees cannot take what it needs
        for c in range(self.m):
            if self.group[c] == g and self.q[c] != 0:
                flows += fabs(self.q[c]) * self.last[c]
                pend += fabs(self.q[c]) * self.last[c] * slip_of(
                    self.slip_base, self.impact, self.impact_cap, r, self.asset[c], -self.q[c])
        for c in range(self.m):
            if self.group[c] != g or self.q[c] == 0:
                continue
            sl = slip_of(self.slip_base, self.impact, self.impact_cap, r, self.asset[c],
                         -self.q[c])
            pend -= fabs(self.q[c]) * self.last[c] * sl
            avail = self.eq[g] - pend
            code = self.close_out(r, c, self.last[c], sl, &avail, R_MARGIN, NULL)
            if code < 0:
                return -1
            capped = capped | (code == 2)
            self.eq[g] = avail + pend
        if capped:
            self.settle_dust(g, rec0, flows)
        self.eq[g] = self.cash[g]
        self.gross_v[g] = 0.0
        self.bust[g] = self.eq[g] <= 0
        return 0

    cdef void settle_dust(self, Py_ssize_t g, Py_ssize_t rec0, double flows) noexcept nogil:
        """Account g holds nothing and a capped fee took what it had left: its cash is 0
        but for the rounding of ``flows`` (the cash and position values it closed), which
        left it at +-1e-13, kept open (> 0) to trade dust on every later bar, or at a
        loss (< 0). Within 64 ulps of ``flows`` that residue goes to the fees (the last of
        its records since ``rec0`` that stays >= 0): the cash is exactly 0."""
        cdef double residue = self.cash[g]
        cdef Py_ssize_t k
        if residue == 0.0 or not dust(residue, flows):
            return
        self.cash[g] = 0.0
        if self.metrics_only:
            if self.extra[g, X_FEES] + residue >= 0:
                self.extra[g, X_FEES] += residue
            return
        k = self.orders.n - 1
        while k >= rec0:
            if self.orders.buf[k].fee + residue >= 0:
                self.orders.buf[k].fee += residue
                return
            k -= 1

    cdef void record_phase(self, Py_ssize_t r) noexcept nogil:
        """Positions, equity and cash of the bar, or the metrics-only statistics."""
        cdef Py_ssize_t c
        cdef out_row positions
        cdef double* q = &self.q[0]
        if not self.metrics_only:
            positions = row_of(self.positions, r)
            for c in range(self.m):
                positions[c] = q[c]
        self.record_accounts(r)

    cdef void record_accounts(self, Py_ssize_t r) noexcept nogil:
        """Equity and cash of the bar (or the metrics-only statistics), the peak."""
        cdef Py_ssize_t g, t = self.t0 + r
        cdef double ret
        cdef double* eq = &self.eq[0]
        cdef double* prev_eq = &self.prev_eq[0]
        cdef double* peak = &self.peak[0]
        cdef Py_ssize_t* resume = &self.resume[0]
        cdef bint keep = not self.metrics_only
        cdef out_row equity = row_of(self.equity, r) if keep else NULL
        cdef out_row cash_out = row_of(self.cash_out, r) if keep and not self.lean else NULL
        for g in range(self.n_groups):
            if self.metrics_only:
                ret = eq[g] / prev_eq[g] - 1.0
                # 0/0 (an emptied account), and a bar with no close of the account's
                # assets where nothing changed: NaN in res.returns, skipped (by the
                # per-bar means, mean equity and exposure, too)
                if not isnan(ret) and (self.priced[g] or ret != 0.0):
                    acc_add(&self.stats[g, 0], ret,
                            log1p(ret) if self.acc_need & A_STABILITY else 0.0, 0.0,
                            self.acc_need)
                    self.extra[g, X_EQSUM] += eq[g]
                    if self.gross_v[g] != 0.0:   # no position, no exposure (0 equity too)
                        self.extra[g, X_EXPO] += self.gross_v[g] / eq[g]
            else:
                equity[g] = eq[g]
                if not self.lean:
                    cash_out[g] = self.cash[g]
            prev_eq[g] = eq[g]
            if eq[g] > peak[g] and resume[g] < t:
                peak[g] = eq[g]


def simulate(const double[:, :] close, const double[:, :] exec_price,
             target, const double[:, :] slip_base,
             const double[:, :] impact, double impact_cap,
             const Py_ssize_t[::1] asset, const Py_ssize_t[::1] group, Py_ssize_t n_groups,
             double init_cash, const double[::1] fees, const double[::1] fixed_fees,
             double max_leverage,
             double max_position_size, bint daily, bint next_open,
             double dd_limit=0.0, Py_ssize_t dd_cooldown=0, bint metrics_only=False,
             bars=None, stops=None, events=None, limit=None, double borrow=0.0,
             double margin=0.0, SimState state=None, bint fast=True, bint lean=False,
             out=None, bint keyed=False, bint check=False,
             bint check_target=False, int acc_need=A_ALL):
    # > 80 lines only by its docstring (the kernel's reference); the code is ~70 lines
    """Run the simulation.

    close, exec_price, slip_base, impact: (time, asset), read for column c at asset[c]
    (parameter combinations share their asset's prices without copies; any strides, so
    a constant may be a stride-0 broadcast). target: (time, column), exposure in [-1, 1],
    NaN = keep the last target; or a pair (entries, exits) of boolean (or uint8) arrays
    (time, column), read as 1 (entry), 0 (exit), NaN (neither or both) without a float
    copy. ``exec_price`` is the close (``execution="close"``) or the
    open (``"next_open"``, then ``target`` row t-1 acts at row t).
    Slippage of an order of Δ shares: slip_base + min(impact · sqrt(|Δ|), impact_cap).
    group[col]: account of each column (0 .. n_groups-1); fees, fixed_fees per column (a
    fee sweep is a parameter dim). Exposure = target x max_leverage, each capped at
    ±max_position_size; a buy spends at most the buying power cash + (L - 1) x equity.

    ``bars`` = (open, high, low), (time, asset): the ranges stops and limit orders are
    checked against (None: the close only).

    Drawdown control (``dd_limit > 0``): an account whose equity at the execution prices
    is at or below (1 - dd_limit) x its peak (marked at execution prices and closes
    since the start or the last re-entry) is flattened on that bar and stays flat for
    ``dd_cooldown`` more bars; on the next bar it re-enters at its current targets, with
    the peak reset to its equity then. The breach is seen at the prices it trades at.

    Stops (``stops`` = (sl_stop, tp_stop, sl_trail), fractions per column, NaN = off):
    from the bar after a position opens, each bar is checked before its signal against
    the stop-loss entry·(1 ∓ sl_stop), the trailing stop extreme·(1 ∓ sl_trail) (extreme
    = highest high of a long, lowest low of a short since entry, updated after the
    check) and the take-profit entry·(1 ± tp_stop); entry = the close of the bar the
    position opened on (vectorbt's stop_entry_price="close"), or a limit order's fill.
    The protective stop (the tighter of stop-loss and trailing) is checked first, then
    the take-profit; a level the open gapped through fills at the open, one inside
    [low, high] at the level; slippage and fees apply as to any order. A stopped column
    ignores its signal on that bar and its target becomes 0 (a later entry re-enters).

    Order events (``events`` = (size (time, column), size_type, accumulate)): ``target``
    holds 1 (entry), 0 (exit) or NaN (nothing) instead of exposures; see event_size.

    Limit orders (``limit`` = (offset per column, NaN = market; tif bars, 0 = until
    replaced)): a signal order of bar t becomes a limit at close_t·(1 ∓ offset) (buy
    below, sell above) for the shares it would buy at that price; bars t+1 .. t+tif fill
    it when their range reaches it (at the open if the bar gapped through it), without
    slippage; a new order on the column replaces it; it then expires.

    ``borrow`` (per bar) is charged at each close on borrowed cash and on the value of
    shorts. ``margin`` (maintenance margin, 0 = off): an account whose equity at a close
    is below margin x its gross position value is liquidated at that close (reason
    margin call); an account left with equity <= 0 is closed: no orders, no interest.

    Fixed fees: an order (signal or event) is skipped when its account's equity after it
    (after the bar's earlier orders, this order's slippage and fees) would be <= 0, when
    the fee would turn it around (the sizing nets the fee out of the target, so a large
    fee turns a buy into a sell), or when the fee takes all of a buy's buying power; it is
    recorded with size 0, fee 0 and reason R_FIXED_FEE (an order in metrics-only counts).
    Stops, drawdown exits and margin calls always fill; their fees are capped at the
    equity the account has left after the fill's slippage (0 when none; a margin call
    sets aside the slippage of the account's other closes first), so fees never make
    equity negative. An account whose forced order's fees were capped (drained) closes
    its other positions at this bar's execution prices (R_MARGIN, fees capped at 0), the
    draining fee is cut by what those closes lost below zero, and it is then closed
    (bust: no more orders or interest).

    Returns (equity (time, group), cash (time, group), positions (time, column) in shares,
    orders as arrays (t, col, size, price, fee, reason), halted (time, group): 1 where
    the account was held flat by drawdown control, interest (time, group) charged; empty
    without ``borrow``).

    ``metrics_only``: nothing per bar is kept (equity, cash, positions and the orders come
    back empty); each account's returns feed the running statistics of ``acc_add`` (the
    same as ``metrics.accumulate``) and five extras (fees, traded value, Σ equity, orders,
    Σ exposure). ``acc_need`` (A_* bits, ``acc_groups``): the statistics kept beyond the
    count, mean and M2 (the others stay at their start values); A_ALL: every one.

    ``state`` (a ``SimState(n_columns, n_groups, init_cash)``; None: a fresh one): the
    state to start from (``init_cash`` is then unused), updated in place to the state
    after the last row. Calls on consecutive row chunks (every time-indexed input
    sliced) with one state give the bits of one call on all rows: order times ``t`` are
    ABSOLUTE bar numbers (``state.bar`` at the call's row 0 plus the row), as are the
    drawdown re-entry and limit expiry bars; the per-bar outputs (equity, cash,
    positions, halted, interest) hold the call's rows; metrics-only statistics and
    extras are the running totals since the state's start. With ``next_open`` row 0 acts
    on the previous call's last target (and event size) row.

    ``fast``: without stops, limit orders, drawdown control, margin, borrowing and
    drained accounts a bar skips the phases that would do nothing (same bits); False
    runs every phase (tests compare the two).

    ``lean`` (fast path, no ``state``, not metrics-only; else ignored): cash and
    positions come back as None, not written per bar (their panels are step functions
    of the order records: ``cash_from_orders`` and ``positions_from_orders`` rebuild
    them bit for bit).

    ``out`` (equity, cash, positions, halted, interest): arrays to write the per-bar
    outputs into, any strides (e.g. a column block of the whole run's panel), each None
    (allocated) or of the output's shape, with ``halted`` zeros (only drawdown control
    writes it); those the call does not write (lean cash and positions, interest
    without borrowing, all in metrics-only) are ignored and come back as usual.

    ``keyed``: the orders come back with a seventh array, each record's phase of its
    bar (``P_*``: stops, limit sells, limit buys, sells, buys, margin calls); with one
    account per column the records are sorted by (bar, phase, column), which
    ``merge_orders`` uses to join column blocks' records in one call's order.

    ``check``: before each bar, its closes must each be NaN or a finite price > 0
    (``ql.data.validate``'s rules for a close-only panel), read from the row the bar
    reads anyway; else :class:`InvalidPrice` is raised at the first such row (the caller
    names the value with ``validate``; a ``state`` is then left part-way).
    ``check_target``: likewise, each bar's targets must be NaN or in [-1, 1] (to 1e-12,
    as ``check_signal``), else :class:`InvalidTarget`.
    """
    cdef const double[:, :] tgt
    cdef Py_ssize_t n, m
    cdef const unsigned char[:, :] ent, ext
    if isinstance(target, tuple):   # boolean entries/exits
        pair = [np.asarray(a) for a in target]
        if len(pair) != 2 or pair[0].shape != pair[1].shape:
            raise ValueError(f"target: (entries, exits) of one shape, got "
                             f"{[a.shape for a in pair]}")
        ent, ext = (a.view(np.uint8) if a.dtype == np.bool_ else a for a in pair)
        tgt = np.empty((0, ent.shape[1]))
        n, m = ent.shape[0], ent.shape[1]
    else:
        tgt = target
        n, m = tgt.shape[0], tgt.shape[1]
    cdef Py_ssize_t r, g, k
    cdef Py_ssize_t rows = 0 if metrics_only else n
    cdef bint fresh = state is None   # lean: the rebuilds start from init_cash and flat
    if state is None:
        state = SimState(m, n_groups, init_cash)
    elif state.n_columns != m or state.n_groups != n_groups:
        raise ValueError(f"state is for {state.n_columns} columns and {state.n_groups} "
                         f"accounts, the call has {m} and {n_groups}")
    fast = fast and not (stops is not None or limit is not None or dd_limit > 0
                         or margin > 0 or borrow > 0 or np.asarray(state["drained"]).any())
    lean = lean and fresh and fast and not metrics_only
    given = (None,) * 5 if out is None else tuple(out)
    if len(given) != 5:
        raise ValueError("out: (equity, cash, positions, halted, interest)")
    equity_np = _out(given[0], (rows, n_groups), np.float64, rows > 0, np.empty)
    cash_np = _out(given[1], (rows, n_groups), np.float64, rows > 0 and not lean, np.empty)
    pos_np = _out(given[2], (rows, m), np.float64, rows > 0 and not lean, np.empty)
    interest_np = _out(given[4], (rows, n_groups), np.float64, rows > 0 and borrow > 0,
                       np.zeros)
    halted_np = _out(given[3], (n, n_groups), np.int8, True, np.zeros)
    if out is not None:    # rows are declared __restrict__: an overlap would be undefined
        _disjoint((equity_np, cash_np, pos_np, halted_np, interest_np),
                  (close, exec_price, slip_base, impact,
                   *(target if isinstance(target, tuple) else (target,))))
    cdef _Sim s = _bind(state, m, n_groups)
    s.equity, s.cash_out, s.positions, s.interest = equity_np, cash_np, pos_np, interest_np
    s.halted = halted_np
    s.close, s.exec_price, s.target, s.slip_base, s.impact = (
        close, exec_price, tgt, slip_base, impact)
    s.use_bool = isinstance(target, tuple)
    if s.use_bool:
        s.entries, s.exits = ent, ext
    s.size = s.bar_open = s.bar_high = s.bar_low = close
    s.fees, s.fixed = fees, fixed_fees
    s.sl_stop = s.tp_stop = s.sl_trail = s.lim_off = fees
    s.asset, s.group = asset, group
    s.impact_cap, s.max_leverage, s.max_pos = impact_cap, max_leverage, max_position_size
    s.dd_limit, s.dd_cooldown, s.borrow, s.margin = dd_limit, dd_cooldown, borrow, margin
    s.daily, s.next_open, s.metrics_only = daily, next_open, metrics_only
    s.size_type, s.accumulate, s.tif = S_EQUITY, False, 0
    if bars is not None:   # bar ranges (stops, limit orders); None: the close only
        s.bar_open, s.bar_high, s.bar_low = bars
    s.use_stops = stops is not None   # fractions per column
    if s.use_stops:
        s.sl_stop, s.tp_stop, s.sl_trail = stops
    s.use_events = events is not None   # size (time, column), what it counts, pyramiding
    if s.use_events:
        s.size, s.size_type, s.accumulate = events
    s.use_limit = limit is not None   # offset per column, time in force
    if s.use_limit:
        s.lim_off, s.tif = limit
    s.use_margin = margin > 0
    s.fast, s.lean, s.acc_need = fast, lean, acc_need
    s.solo = fast and n_groups == m and np.array_equal(np.asarray(group), np.arange(m))
    s.todo = np.empty(m, dtype=np.intp)
    cdef int err = 0
    cdef Py_ssize_t n_px = close.shape[1] if check else 0
    cdef Py_ssize_t px_step = close.strides[1]   # bytes: any stride (a record's field)
    cdef Py_ssize_t n_tg = m if check_target and not s.use_bool else 0
    cdef Py_ssize_t tg_step = tgt.strides[1]
    with nogil:
        for r in range(n):
            if n_px and _bad_prices(<const char*>&close[r, 0], px_step, n_px):
                err = -2
                break
            if n_tg and _bad_targets(<const char*>&tgt[r, 0], tg_step, n_tg):
                err = -3
                break
            err = s.step(r)
            if err < 0:
                break
    if err == -2:
        raise InvalidPrice(f"close at row {r}: a value is neither NaN nor a finite price "
                           ">= 2.2e-308")
    if err == -3:
        raise InvalidTarget(f"target at row {r}: a value is outside [-1, 1]")
    if err < 0 and s.overflow:
        raise OrderOverflow(r)
    if err < 0:   # the state is left part-way through a bar: unusable
        raise MemoryError("backtest: out of memory for the order records")
    return _finish(s, state, n, metrics_only, equity_np, None if lean else cash_np,
                   None if lean else pos_np, halted_np, interest_np, keyed)


class InvalidPrice(ValueError):
    """``simulate(check=True)`` met a close that is neither NaN nor a finite price >=
    DBL_MIN (2.2e-308)."""


class OrderOverflow(ValueError):
    """An order at row ``args[0]`` sized no finite number of shares (equity / price
    overflowed a double: a price near DBL_MIN, or cash near DBL_MAX)."""


class InvalidTarget(ValueError):
    """``simulate(check_target=True)`` met a target outside [-1, 1] (NaN passes)."""


cdef extern from "simd.h" nogil:
    int bad_prices(const double* p, Py_ssize_t n)
    int bad_targets(const double* p, Py_ssize_t n, double lim)


cdef inline bint _bad_prices(const char* p, Py_ssize_t step, Py_ssize_t k) noexcept nogil:
    """Some one of the ``k`` doubles at ``p``, ``p + step`` bytes, ... is neither NaN nor
    in [DBL_MIN, inf) (simd.h's ``bad_prices``)."""
    cdef Py_ssize_t i
    cdef bint bad = False
    cdef double x
    if step == sizeof(double):
        return bad_prices(<const double*>p, k)
    for i in range(k):
        memcpy(&x, p + i * step, sizeof(double))   # a stride need not keep doubles aligned
        bad |= (x < DBL_MIN) | (x == INFINITY)
    return bad


cdef double TARGET_LIM = 1.0 + 1e-12   # check_signal's tolerance for a full exposure


cdef inline bint _bad_targets(const char* p, Py_ssize_t step, Py_ssize_t k) noexcept nogil:
    """Some one of the ``k`` doubles at ``p``, ``p + step`` bytes, ... is outside
    [-1, 1] (to ``TARGET_LIM``; NaN passes)."""
    cdef Py_ssize_t i
    cdef bint bad = False
    cdef double x
    if step == sizeof(double):
        return bad_targets(<const double*>p, k, TARGET_LIM)
    for i in range(k):
        memcpy(&x, p + i * step, sizeof(double))
        bad |= fabs(x) > TARGET_LIM
    return bad


def _out(given, shape, dtype, used, alloc):
    """A per-bar output: ``given`` (checked) where the call writes one, else a fresh
    array of the shape the call returns (no rows where it writes none)."""
    if not used:
        return alloc((0, shape[1]), dtype=dtype)
    if given is None:
        return alloc(shape, dtype=dtype)
    if (not isinstance(given, np.ndarray) or given.shape != shape or given.dtype != dtype
            or (shape[1] > 1 and given.strides[1] != given.itemsize)
            or not given.flags.writeable):
        raise ValueError(f"out: expected a writeable {np.dtype(dtype).name} array of shape "
                         f"{shape} with contiguous rows (e.g. a column block of a "
                         f"C-contiguous panel), got {getattr(given, 'dtype', type(given).__name__)}"
                         f" {getattr(given, 'shape', '')}")
    return given


def _disjoint(outs, ins):
    """``out=`` arrays share no memory with one another nor with the inputs."""
    outs = [o for o in outs if o.size]
    for i, o in enumerate(outs):
        for other in (*outs[i + 1:], *ins):
            if (other is not None and np.may_share_memory(o, other)   # bounds, then exact
                    and np.shares_memory(o, other)):
                raise ValueError("out: the output arrays must not overlap one another "
                                 "or the inputs (close, prices, target)")


def _order_rows(Py_ssize_t n, Py_ssize_t m, orders):
    """The order records' (t, col, size, price, fee, reason) arrays, checked: bars in
    [0, n) in record (time) order, columns in [0, m)."""
    ot, oc, osz, opx, ofee, oreason = (np.ascontiguousarray(a) for a in orders)
    k = len(ot)
    if not all(len(a) == k for a in (oc, osz, opx, ofee, oreason)):
        raise ValueError("orders: (t, col, size, price, fee, reason) of one length")
    if k and (ot[0] < 0 or ot[k - 1] >= n or (k > 1 and (np.diff(ot) < 0).any())):
        raise ValueError(f"orders: bars must be in [0, {n}) and non-decreasing")
    if k and (oc.min() < 0 or oc.max() >= m):
        raise ValueError(f"orders: columns must be in [0, {m})")
    return (ot.astype(np.intp, copy=False), oc.astype(np.intp, copy=False),
            osz.astype(np.float64, copy=False), opx.astype(np.float64, copy=False),
            ofee.astype(np.float64, copy=False), oreason.astype(np.int8, copy=False))


def positions_from_orders(Py_ssize_t n, Py_ssize_t m, orders):
    """Shares held after each bar, (n, m), from a fresh run's order records: what the
    kernel writes as positions, rebuilt with its operations (q[col] += size, record by
    record; a record skipped for its fixed fee moves nothing), so bit for bit."""
    if n < 0 or m < 0:
        raise ValueError(f"n and m must be >= 0, got {n} and {m}")
    cdef const Py_ssize_t[::1] ot, oc
    cdef const double[::1] osz
    cdef const signed char[::1] why
    ot, oc, osz, _, _, why = _order_rows(n, m, orders)
    out_np = np.empty((n, m))
    q_np = np.zeros(m)
    cdef double[:, ::1] out = out_np
    cdef double[::1] q = q_np
    cdef Py_ssize_t r, c, k = 0, k_end = ot.shape[0]
    with nogil:
        for r in range(n):
            while k < k_end and ot[k] == r:
                if why[k] != R_FIXED_FEE:
                    q[oc[k]] += osz[k]
                k += 1
            for c in range(m):
                out[r, c] = q[c]
    return out_np


def mean_exposure(const double[:, :] q, const double[:, :] price, const double[:, :] eq,
                  const Py_ssize_t[::1] asset, const Py_ssize_t[::1] group, carry=None):
    """Each account's mean exposure over the bars: mean over t of gross_g(t) / eq[t, g],
    gross_g(t) = sum over its columns c of |q[t, c] * p[t, asset[c]]| (p: the last valid
    price of the asset; a NaN value counts 0), a bar with gross 0 counting 0 (also at 0
    equity), a bar with a NaN equity (no observation) or a NaN ratio skipped (all
    skipped, or no bar: NaN). ``BacktestResult.metrics()``'
    exposure in one pass, without the panels of values its xarray formula makes.
    ``carry``: (last price per asset, sum and count per account), float64 arrays the
    pass starts from and updates in place: time chunks in turn give one pass's result."""
    cdef Py_ssize_t n = q.shape[0], m = q.shape[1], na = price.shape[1], ng = eq.shape[1]
    cdef Py_ssize_t t, c, g
    if price.shape[0] != n or eq.shape[0] != n or asset.shape[0] != m or group.shape[0] != m:
        raise ValueError("mean_exposure: q, price and eq need the same bars; asset and group "
                         "one entry per column of q")
    for c in range(m):
        if not (0 <= asset[c] < na and 0 <= group[c] < ng):
            raise ValueError(f"mean_exposure: column {c}'s asset or group is out of range")
    if carry is None:
        carry = (np.full(na, np.nan), np.zeros(ng), np.zeros(ng))
    last_np, sums_np, count_np = carry
    gross_np = np.zeros(ng)
    cdef double[::1] last = last_np, gross = gross_np, sums = sums_np, count = count_np
    if last.shape[0] != na or sums.shape[0] != ng or count.shape[0] != ng:
        raise ValueError("mean_exposure: carry is (last price per asset, sum and count per "
                         "account)")
    cdef double v, x
    with nogil:
        for t in range(n):
            for c in range(na):
                if not isnan(price[t, c]):
                    last[c] = price[t, c]
            for g in range(ng):
                gross[g] = 0.0
            for c in range(m):
                v = q[t, c] * last[asset[c]]
                if not isnan(v):
                    gross[group[c]] += fabs(v)
            for g in range(ng):
                if isnan(eq[t, g]):
                    continue
                x = gross[g] / eq[t, g] if gross[g] != 0.0 else 0.0
                if not isnan(x):
                    sums[g] += x
                    count[g] += 1.0
    with np.errstate(invalid="ignore"):
        return sums_np / count_np


def cash_from_orders(Py_ssize_t n, const Py_ssize_t[::1] group, Py_ssize_t n_groups,
                     double init_cash, orders):
    """Cash of each account after each bar, (n, n_groups), from a fresh run's order
    records without borrowing (the fast path's): the kernel's fill, cash += -size price
    - fee record by record, so bit for bit. ``group[col]``: the account of each column."""
    cdef Py_ssize_t m = group.shape[0]
    if n < 0 or n_groups < 1:
        raise ValueError(f"n must be >= 0 and n_groups >= 1, got {n} and {n_groups}")
    if m and (np.min(group) < 0 or np.max(group) >= n_groups):
        raise ValueError(f"group: accounts must be in [0, {n_groups})")
    cdef const Py_ssize_t[::1] ot, oc
    cdef const double[::1] osz, opx, ofee
    cdef const signed char[::1] why
    ot, oc, osz, opx, ofee, why = _order_rows(n, m, orders)
    out_np = np.empty((n, n_groups))
    cash_np = np.full(n_groups, init_cash)
    cdef double[:, ::1] out = out_np
    cdef double[::1] cash = cash_np
    cdef double d, pe, fee
    cdef Py_ssize_t r, g, k = 0, k_end = ot.shape[0]
    with nogil:
        for r in range(n):
            while k < k_end and ot[k] == r:
                if why[k] != R_FIXED_FEE:
                    d, pe, fee = osz[k], opx[k], ofee[k]
                    cash[group[oc[k]]] += -d * pe - fee   # as fill()
                k += 1
            for g in range(n_groups):
                out[r, g] = cash[g]
    return out_np


cdef _Sim _bind(SimState state, Py_ssize_t m, Py_ssize_t n_groups):
    """A _Sim on ``state``'s arrays, with fresh scratch and no order records."""
    cdef _Sim s = _Sim.__new__(_Sim)
    a = state._a
    s.m, s.n_groups, s.t0, s.base = m, n_groups, state.bar, state.n_orders
    s.q, s.last, s.want, s.entry, s.extreme = a["q"], a["last"], a["want"], a["entry"], a["extreme"]
    s.ev, s.ev_size, s.lim_px, s.lim_q = a["ev"], a["ev_size"], a["lim_px"], a["lim_q"]
    s.prev_target, s.prev_size, s.cash, s.prev_eq = (
        a["prev_target"], a["prev_size"], a["cash"], a["prev_eq"])
    s.peak, s.drain_fee, s.pending, s.bust = a["peak"], a["drain_fee"], a["pending"], a["bust"]
    s.drained, s.lim_end, s.resume, s.drain_rec = (
        a["drained"], a["lim_end"], a["resume"], a["drain_rec"])
    s.stats, s.extra = a["stats"], a["extras"]
    s.eq, s.gross, s.live = np.zeros(n_groups), np.zeros(n_groups), np.zeros(n_groups)
    s.gross_v, s.short_v, s.late_cut = np.zeros(n_groups), np.zeros(n_groups), np.zeros(n_groups)
    s.e, s.px, s.stopped = np.zeros(m), np.zeros(m), np.zeros(m, dtype=np.int8)
    s.priced = np.zeros(n_groups, dtype=np.int8)
    s.orders.buf = NULL
    s.orders.n = 0
    s.orders.cap = 0
    return s


cdef inline bint _may_cut(_Sim s, Py_ssize_t g):
    """A later bar may still cut the fee of account g's drain order: it is drained and
    open, or closed (bust) with cash < 0 and fee left to cut (the cut comes on a later
    bar, see drain_phase)."""
    return s.drained[g] and (not s.bust[g] or (s.cash[g] < 0 and s.drain_fee[g] > 0))


cdef void _unpack_orders(const Order* buf, Py_ssize_t n, bint keyed, Py_ssize_t[::1] ot,
                         Py_ssize_t[::1] oc, double[::1] osz, double[::1] opx,
                         double[::1] ofee, signed char[::1] oreason,
                         signed char[::1] ophase) noexcept nogil:
    """The records' fields into their arrays (``ophase`` only if ``keyed``)."""
    cdef Py_ssize_t k
    for k in range(n):
        if keyed:
            ophase[k] = <signed char>buf[k].phase
        ot[k] = buf[k].t
        oc[k] = buf[k].col
        osz[k] = buf[k].size
        opx[k] = buf[k].price
        ofee[k] = buf[k].fee
        oreason[k] = <signed char>buf[k].reason


cdef _finish(_Sim s, SimState state, Py_ssize_t n, bint metrics_only, equity_np, cash_np,
             pos_np, halted_np, interest_np, bint keyed=False):
    """Close the call: advance the state's bar (and carry the last target rows), hand
    out the order records, apply fee cuts to earlier calls' records; the results."""
    cdef Py_ssize_t g, k
    if n > 0:
        state._a["prev_target"][:] = [s.row_target(n - 1, k) for k in range(s.m)]
        if s.use_events:
            state._a["prev_size"][:] = s.size[n - 1]
    state.bar += n
    for g in range(s.n_groups):
        if s.late_cut[g] != 0 and g in state._drain_ref:
            fee_arr, i = state._drain_ref[g]
            fee_arr[i] -= s.late_cut[g]
    if metrics_only:
        return state._a["stats"].copy(), state._a["extras"].copy()
    ot_np = np.empty(s.orders.n, dtype=np.intp)
    oc_np = np.empty(s.orders.n, dtype=np.intp)
    osz_np = np.empty(s.orders.n)
    opx_np = np.empty(s.orders.n)
    ofee_np = np.empty(s.orders.n)
    oreason_np = np.empty(s.orders.n, dtype=np.int8)
    ophase_np = np.empty(s.orders.n if keyed else 0, dtype=np.int8)
    cdef Py_ssize_t[::1] ot = ot_np, oc = oc_np
    cdef double[::1] osz = osz_np, opx = opx_np, ofee = ofee_np
    cdef signed char[::1] oreason = oreason_np, ophase = ophase_np
    with nogil:   # the arrays' first touch too: a column block beside runs unblocked
        _unpack_orders(s.orders.buf, s.orders.n, keyed, ot, oc, osz, opx, ofee, oreason,
                       ophase)
    for g in range(s.n_groups):   # a later call may still cut this drain's fee
        if _may_cut(s, g) and s.drain_rec[g] >= s.base:
            state._drain_ref[g] = (ofee_np, s.drain_rec[g] - s.base)
    for g in list(state._drain_ref):   # no cut can come any more
        if not _may_cut(s, g):
            del state._drain_ref[g]
    state.n_orders += s.orders.n
    rows = (ot_np, oc_np, osz_np, opx_np, ofee_np, oreason_np)
    return (equity_np, cash_np, pos_np, rows + (ophase_np,) if keyed else rows, halted_np,
            interest_np)


def merge_orders(parts, const Py_ssize_t[::1] col0):
    """One call's order records from column blocks' keyed records (``simulate(...,
    keyed=True)`` on blocks of independent accounts, block i's columns starting at
    ``col0[i]``, blocks in column order): a stable counting sort by (bar, phase) of the
    blocks' rows in block order, so ties go to the lower block, then to the block's own
    order; columns shifted by the block's first column. O(records + bars x phases) and
    branch-free (a k-way merge's compares mispredict, ~17 ns a record); a stable argsort
    where the bars far outnumber the records. Returns (t, col, size, price, fee,
    reason)."""
    cdef Py_ssize_t k = len(parts), j, pos, t_min = 0, n_keys, total, c0
    cdef const Py_ssize_t[::1] t, c
    cdef const double[::1] sz, px, fee
    cdef const signed char[::1] rsn, ph
    if col0.shape[0] != k:
        raise ValueError("merge_orders: one first column per block")
    types = (np.intp, np.intp, np.float64, np.float64, np.float64, np.int8, np.int8)
    rows = []
    for p in parts:
        if len(p) != 7 or any(len(a) != len(p[0]) for a in p):
            raise ValueError("merge_orders: keyed records (7 arrays of one length) per block")
        key = np.asarray(p[6])
        if key.size and not (key.dtype.kind in "iu" and 0 <= key.min() <= key.max() <= P_MARGIN):
            raise ValueError(f"merge_orders: phases are integers in [0, {P_MARGIN}]")
        rows.append(tuple(np.ascontiguousarray(a, dtype=d) for a, d in zip(p, types)))
    live = []   # (rows, first column) of the blocks with records
    for j in range(k):
        if len(rows[j][0]):
            live.append((rows[j], col0[j]))
    if not live:
        return tuple(np.empty(0, dtype=d) for d in types[:6])
    total = sum(len(p[0]) for p, _ in live)
    t_min = min(int(p[0].min()) for p, _ in live)
    # key = (bar - first bar) x phases + phase; start[key]: its first row in the output
    n_keys = (max(int(p[0].max()) for p, _ in live) - t_min + 1) * (P_MARGIN + 1)
    if n_keys > 4 * total + 4096:
        # few orders over many bars (a long run of a few assets): a stable sort of the
        # keys, O(records log records), not a count per key (48 bytes a bar)
        key = np.concatenate([(p[0] - t_min) * (P_MARGIN + 1) + p[6] for p, _ in live])
        order = np.argsort(key, kind="stable")
        cols = np.concatenate([p[1] + c0 for p, c0 in live])
        cat = [np.concatenate([p[f] for p, _ in live]) for f in (0, 2, 3, 4, 5)]
        return (cat[0][order], cols[order], cat[1][order], cat[2][order], cat[3][order],
                cat[4][order])
    out = (np.empty(total, dtype=np.intp), np.empty(total, dtype=np.intp),
           np.empty(total), np.empty(total), np.empty(total), np.empty(total, dtype=np.int8))
    cdef Py_ssize_t[::1] ot = out[0], oc = out[1]
    cdef double[::1] osz = out[2], opx = out[3], ofee = out[4]
    cdef signed char[::1] orsn = out[5]
    start_np = np.zeros(n_keys + 1, dtype=np.intp)
    cdef Py_ssize_t[::1] start = start_np
    for p, _ in live:
        t, ph = p[0], p[6]
        with nogil:
            for j in range(t.shape[0]):
                start[(t[j] - t_min) * (P_MARGIN + 1) + ph[j] + 1] += 1
    np.cumsum(start_np, out=start_np)
    for p, shift in live:
        c0 = shift
        t, c, sz, px, fee, rsn, ph = p
        with nogil:
            for j in range(t.shape[0]):
                pos = (t[j] - t_min) * (P_MARGIN + 1) + ph[j]
                start[pos] += 1
                pos = start[pos] - 1
                ot[pos] = t[j]
                oc[pos] = c[j] + c0
                osz[pos] = sz[j]
                opx[pos] = px[j]
                ofee[pos] = fee[j]
                orsn[pos] = rsn[j]
    return out
