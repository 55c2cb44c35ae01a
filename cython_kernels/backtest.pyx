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

from libc.math cimport INFINITY, NAN, fabs, isnan, log1p, sqrt
from libc.stdlib cimport free, realloc

include "welford.pxi"
include "returns_acc.pxi"

# metrics-only extras per account: fees, traded value, Σ equity, orders, Σ gross / equity
cdef enum:
    X_FEES, X_TRADED, X_EQSUM, X_ORDERS, X_EXPO, NX

# why an order was placed (the trades table names them; see backtest.REASONS);
# R_FIXED_FEE marks an order that was NOT filled: its fixed fee is more than the account
# can pay (its equity after the order would be <= 0, or the fee takes a buy's buying
# power) or would turn the order around, recorded with size 0 and fee 0. Forced orders
# (stops, drawdown exits, margin calls) always fill, their fees capped at what the
# account has left after the fill's slippage: fees alone never make equity < 0
cdef enum:
    R_SIGNAL, R_STOP, R_TAKE_PROFIT, R_TRAILING, R_DRAWDOWN, R_MARGIN, R_FIXED_FEE

# what ``size`` counts in order (entries/exits) mode
cdef enum:
    S_EQUITY, S_VALUE, S_SHARES


cdef struct Order:
    Py_ssize_t t
    Py_ssize_t col
    double size      # shares, + buy / - sell
    double price     # fill price incl. slippage
    double fee
    int reason


cdef struct Orders:
    Order* buf
    Py_ssize_t n
    Py_ssize_t cap


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
    o.n += 1
    return 0


cdef inline double touch(double lvl, double op, double lo, double hi,
                         bint below) noexcept nogil:
    """Fill price of a stop or limit level reached from above (``below``) or below: the
    open when the bar gapped through it, the level when [lo, hi] reaches it, else NaN."""
    if below:
        return op if op <= lvl else (lvl if lo <= lvl else NAN)
    return op if op >= lvl else (lvl if hi >= lvl else NAN)


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


cdef int close_out(Orders* o, double[:, ::1] extra, bint metrics_only, Py_ssize_t t,
                   Py_ssize_t c, Py_ssize_t g, double price, double sl, double fee_rate,
                   double fixed, double* live, double[::1] cash, double[::1] q,
                   double[::1] entry, double[::1] extreme, double[::1] want, double[::1] ev,
                   double[::1] lim_px, char[::1] pending, double[::1] last,
                   int reason, double* paid=NULL) noexcept nogil:
    """Close column c's whole position at ``price`` with slippage ``sl`` and fees (a stop
    or a margin call: forced, so covering a short is never limited by buying power and
    the fixed fee is capped at the equity ``live`` has left, column c valued at its last
    close) and clear what
    the column was waiting for: its target becomes 0,
    a pending order, event or resting limit is dropped. Returns ``fill``'s code."""
    cdef double d = -q[c]
    want[c] = 0.0
    ev[c] = NAN
    lim_px[c] = NAN
    pending[c] = 0
    return fill(o, extra, metrics_only, t, c, g, d,
                price * (1 + sl) if d > 0 else price * (1 - sl), fee_rate, fixed,
                INFINITY, 0.0, NAN, last[c], live, True, &cash[g], &q[c], &entry[c],
                &extreme[c], reason, paid)


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
    if want == 0:
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


def simulate(const double[:, :] close, const double[:, :] exec_price,
             const double[:, :] target, const double[:, :] slip_base,
             const double[:, :] impact, double impact_cap,
             const Py_ssize_t[::1] asset, const Py_ssize_t[::1] group, Py_ssize_t n_groups,
             double init_cash, const double[::1] fees, const double[::1] fixed_fees,
             double max_leverage,
             double max_position_size, bint daily, bint next_open,
             double dd_limit=0.0, Py_ssize_t dd_cooldown=0, bint metrics_only=False,
             bars=None, stops=None, events=None, limit=None, double borrow=0.0,
             double margin=0.0):
    """Run the simulation.

    close, exec_price, slip_base, impact: (time, asset), read for column c at asset[c]
    (parameter combinations share their asset's prices without copies; any strides, so
    a constant may be a stride-0 broadcast). target: (time, column), exposure in [-1, 1],
    NaN = keep the last target. ``exec_price`` is the close (``execution="close"``) or the
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
    Σ gross exposure / equity); returns (stats (group, NFIELDS), extras (group, NX)).
    """
    cdef Py_ssize_t n = target.shape[0], m = target.shape[1], t, c, g, k, side, j
    cdef Py_ssize_t rows = 0 if metrics_only else n
    equity_np = np.empty((rows, n_groups))
    cash_np = np.empty((rows, n_groups))
    pos_np = np.empty((rows, m))
    interest_np = np.zeros((rows if borrow > 0 else 0, n_groups))
    stats_np = _acc_new(n_groups)
    extra_np = np.zeros((n_groups, NX))
    cdef double[:, ::1] stats = stats_np, extra = extra_np, interest = interest_np
    cdef double[::1] prev_eq = np.full(n_groups, init_cash), gross_v = np.zeros(n_groups)
    cdef double[::1] short_v = np.zeros(n_groups)
    cdef double ret
    cdef double[:, ::1] equity = equity_np, cash_out = cash_np, positions = pos_np
    cdef double[::1] cash = np.full(n_groups, init_cash)
    cdef double[::1] gross = np.zeros(n_groups), eq = np.zeros(n_groups)
    # live: equity as the bar's orders leave it (each order's fixed-fee check sees it)
    cdef double[::1] live = np.zeros(n_groups)
    cdef double[::1] q = np.zeros(m), last = np.full(m, np.nan), want = np.zeros(m)
    cdef double[::1] e = np.zeros(m), px = np.zeros(m)
    cdef char[::1] pending = np.zeros(m, dtype=np.int8)
    halted_np = np.zeros((n, n_groups), dtype=np.int8)
    cdef signed char[:, ::1] halted = halted_np
    cdef char[::1] bust = np.zeros(n_groups, dtype=np.int8)
    cdef double[::1] peak = np.full(n_groups, init_cash)
    cdef Py_ssize_t[::1] resume = np.full(n_groups, -1, dtype=np.intp)
    cdef Orders orders
    orders.buf = NULL
    orders.n = 0
    orders.cap = 0
    cdef double s, p, d, sl, cost, pend, avail
    # an account whose forced order's fees took all its equity: liquidated, then closed
    cdef char[::1] drained = np.zeros(n_groups, dtype=np.int8)
    cdef double[::1] drain_fee = np.zeros(n_groups)
    cdef Py_ssize_t[::1] drain_rec = np.zeros(n_groups, dtype=np.intp)
    cdef int code
    cdef double scale = 1.0   # set before use; gcc cannot see that through use_events
    cdef int err = 0
    # bar ranges (stops, limit orders)
    cdef const double[:, :] bar_open = close
    cdef const double[:, :] bar_high = close
    cdef const double[:, :] bar_low = close
    if bars is not None:
        bar_open, bar_high, bar_low = bars
    # stops: fractions per column, entry price and extreme since entry per column
    cdef bint use_stops = stops is not None
    cdef const double[::1] sl_stop = fees
    cdef const double[::1] tp_stop = fees
    cdef const double[::1] sl_trail = fees
    if use_stops:
        sl_stop, tp_stop, sl_trail = stops
    cdef double[::1] entry = np.full(m, np.nan), extreme = np.full(m, np.nan)
    cdef char[::1] stopped = np.zeros(m, dtype=np.int8)
    cdef double cl, op, hi, lo, lvl, tl, hit, sgn
    cdef int why
    cdef bint long_, forced
    # order events: size (time, column), what it counts, pyramiding
    cdef bint use_events = events is not None
    cdef const double[:, :] size = target
    cdef int size_type = S_EQUITY
    cdef bint accumulate = False
    cdef double[::1] ev = np.full(m, np.nan), ev_size = np.zeros(m)
    if use_events:
        size, size_type, accumulate = events
    # limit orders: offset per column; the resting order's price, shares, last bar
    cdef bint use_limit = limit is not None
    cdef const double[::1] lim_off = fees
    cdef Py_ssize_t tif = 0
    cdef double[::1] lim_px = np.full(m, np.nan), lim_q = np.zeros(m)
    cdef Py_ssize_t[::1] lim_end = np.zeros(m, dtype=np.intp)
    if use_limit:
        lim_off, tif = limit
    cdef bint use_margin = margin > 0
    with nogil:
        for t in range(n):
            for g in range(n_groups):
                live[g] = prev_eq[g]   # the last closes' marks until step 2
            # 0. stops, before this bar's signal (they free cash for its orders)
            if use_stops:
                for c in range(m):
                    stopped[c] = 0
                    if q[c] == 0 or isnan(entry[c]):
                        continue
                    j = asset[c]
                    cl = close[t, j]
                    if isnan(cl):
                        continue   # no bar, no check
                    bar_range(bar_open[t, j], bar_high[t, j], bar_low[t, j], cl, &op, &hi, &lo)
                    long_ = q[c] > 0
                    sgn = 1.0 if long_ else -1.0   # mirrors every level for a short
                    hit = NAN
                    why = R_STOP
                    lvl = entry[c] * (1 - sgn * sl_stop[c])   # NaN when off
                    if not isnan(sl_trail[c]):
                        tl = extreme[c] * (1 - sgn * sl_trail[c])
                        if isnan(lvl) or sgn * tl > sgn * lvl:   # the tighter one acts
                            lvl = tl
                            why = R_TRAILING
                    if not isnan(lvl):   # a long's protective stop is below it
                        hit = touch(lvl, op, lo, hi, long_)
                    if isnan(hit) and not isnan(tp_stop[c]):
                        why = R_TAKE_PROFIT
                        hit = touch(entry[c] * (1 + sgn * tp_stop[c]), op, lo, hi, not long_)
                    if long_ and hi > extreme[c]:      # after the check: a bar's own high
                        extreme[c] = hi                 # cannot stop it out
                    elif not long_ and lo < extreme[c]:
                        extreme[c] = lo
                    if isnan(hit):
                        continue
                    stopped[c] = 1
                    code = close_out(&orders, extra, metrics_only, t, c, group[c], hit,
                                 slip_of(slip_base, impact, impact_cap, t, j, -q[c]), fees[c],
                                 fixed_fees[c], &live[group[c]], cash, q, entry, extreme,
                                 want, ev, lim_px, pending, last, why, &cost)
                    if code < 0:
                        err = 1
                        break
                    if code == 2 and not drained[group[c]]:   # its fees took all the
                        drained[group[c]] = 1                 # equity: close the account
                        drain_fee[group[c]] = cost
                        drain_rec[group[c]] = orders.n - 1
                if err:
                    break
            # 0b. resting limit orders: sells, then buys
            if use_limit:
                for side in range(2):
                    for c in range(m):
                        if isnan(lim_px[c]) or (lim_q[c] > 0) != (side == 1):
                            continue
                        if tif > 0 and t > lim_end[c]:
                            lim_px[c] = NAN   # expired
                            continue
                        j = asset[c]
                        cl = close[t, j]
                        g = group[c]
                        if isnan(cl) or bust[g]:
                            continue
                        bar_range(bar_open[t, j], bar_high[t, j], bar_low[t, j], cl, &op, &hi, &lo)
                        hit = touch(lim_px[c], op, lo, hi, lim_q[c] > 0)
                        if isnan(hit):
                            continue
                        lim_px[c] = NAN
                        # no slippage at the limit; buying power at the last marks (this
                        # bar's close is unknown); the fill is the stop reference
                        if fill(&orders, extra, metrics_only, t, c, g, lim_q[c], hit, fees[c],
                                fixed_fees[c], cash[g] + (max_leverage - 1) * prev_eq[g],
                                1e-12 * fabs(prev_eq[g]), hit, hit, &live[g], False,
                                &cash[g], &q[c], &entry[c], &extreme[c], R_SIGNAL) < 0:
                            err = 1
                            break
                    if err:
                        break
                if err:
                    break
            # 1. new targets (NaN = hold) or order events, and execution prices
            for c in range(m):
                px[c] = exec_price[t, asset[c]]
                if use_stops and stopped[c]:   # the stop replaces this bar's signal
                    continue
                if next_open:
                    s = target[t - 1, c] if t > 0 else NAN
                else:
                    s = target[t, c]
                if use_events:
                    if not isnan(s):   # an event waits through missing bars
                        ev[c] = s
                        ev_size[c] = size[t - 1 if next_open else t, c]
                        pending[c] = 1
                    continue
                if not isnan(s):
                    if s != want[c]:
                        pending[c] = 1  # stays pending through missing bars
                    want[c] = s
                if daily:
                    pending[c] = 1
            # 2. account equity at the execution prices (last valid price if none)
            for g in range(n_groups):
                eq[g] = cash[g]
                gross[g] = 0
            for c in range(m):
                p = px[c] if not isnan(px[c]) else last[c]
                if q[c] != 0 and not isnan(p):
                    eq[group[c]] += q[c] * p
                e[c] = want[c] * max_leverage
                if e[c] > max_position_size:
                    e[c] = max_position_size
                elif e[c] < -max_position_size:
                    e[c] = -max_position_size
                gross[group[c]] += fabs(e[c])
            for g in range(n_groups):
                live[g] = eq[g]   # at the execution prices
            if dd_limit > 0:   # drawdown control (off: no cost)
                for g in range(n_groups):
                    if resume[g] == t:                 # re-entry after the cool-down
                        peak[g] = eq[g]
                    elif resume[g] < t:
                        if eq[g] > peak[g]:
                            peak[g] = eq[g]
                        if eq[g] <= peak[g] * (1 - dd_limit):
                            resume[g] = t + dd_cooldown + 1
                    halted[t, g] = resume[g] > t
                for c in range(m):
                    g = group[c]
                    if halted[t, g] or (resume[g] == t and not use_events):
                        pending[c] = 1                 # flatten, or re-establish
                    if halted[t, g]:
                        gross[g] -= fabs(e[c])
                        e[c] = 0.0
                        ev[c] = NAN                    # entries wait out the halt
            for c in range(m):   # a drained account closes what it holds, then stops
                if drained[group[c]] and not bust[group[c]]:
                    pending[c] = 1
                    e[c] = 0.0
                    ev[c] = NAN
            # 3. orders: sells (side 0) before buys (side 1)
            for side in range(2):
                for c in range(m):
                    if not pending[c] or isnan(px[c]):
                        continue
                    g = group[c]
                    if bust[g]:
                        pending[c] = 0
                        continue
                    p = px[c]
                    j = asset[c]
                    if use_limit:
                        lim_px[c] = NAN   # a new order replaces a resting one
                    forced = drained[g] or (dd_limit > 0 and halted[t, g])
                    if use_events:
                        if forced:
                            d = -q[c]
                        elif isnan(ev[c]):
                            d = 0.0
                        else:
                            d = event_size(ev[c], ev_size[c], size_type, accumulate, q[c],
                                           eq[g], p, max_position_size)
                    else:
                        scale = max_leverage / gross[g] if gross[g] > max_leverage else 1.0
                        d = order_size(e[c] * scale, eq[g], q[c], p, slip_base[t, j],
                                       fees[c], fixed_fees[c])
                    if fabs(d) * p <= 1e-12 * fabs(eq[g]):
                        pending[c] = 0  # already there
                        ev[c] = NAN
                        continue
                    if (d > 0) != (side == 1):
                        continue  # the other pass places it
                    pending[c] = 0
                    ev[c] = NAN
                    if fixed_fees[c] > 0 and not forced and (
                            live[g] <= fixed_fees[c] or (not use_events and (d > 0) != (
                                e[c] * scale * eq[g] / p - q[c] > 0))):
                        # the account cannot pay the fixed fee (it has at most the fee in
                        # equity, after this bar's earlier orders), or paying it turns the
                        # order around (a buy into a sell): skip it, never reverse it
                        # (fill also skips one whose costs would leave equity <= 0)
                        if skip(&orders, extra, metrics_only, t, c, g, p) < 0:
                            err = 1
                            break
                        continue
                    if use_limit and not isnan(lim_off[c]) and not forced:
                        # rest a limit order for what the signal buys at the limit price
                        p = p * (1 - lim_off[c]) if d > 0 else p * (1 + lim_off[c])
                        if not use_events:
                            d = order_size(e[c] * scale, eq[g], q[c], p, 0.0, fees[c],
                                           fixed_fees[c])
                        elif d > 0:   # an entry's fraction of equity buys more below
                            d = event_size(1.0, ev_size[c], size_type, accumulate,
                                           q[c], eq[g], p, max_position_size)
                        lim_px[c] = p
                        lim_q[c] = d
                        lim_end[c] = t + tif
                        continue
                    sl = slip_base[t, j]
                    if impact[t, j] > 0:
                        # square-root impact of this order, then one re-sizing with it
                        sl = slip_of(slip_base, impact, impact_cap, t, j, d)
                        if not use_events:
                            d = order_size(e[c] * scale, eq[g], q[c], p, sl, fees[c],
                                           fixed_fees[c])
                    # stops reference the close of the bar a position opens
                    code = fill(&orders, extra, metrics_only, t, c, g, d,
                                p * (1 + sl) if d > 0 else p * (1 - sl), fees[c],
                                fixed_fees[c], cash[g] + (max_leverage - 1) * eq[g],
                                1e-12 * fabs(eq[g]), close[t, j], p, &live[g], forced,
                                &cash[g], &q[c], &entry[c], &extreme[c],
                                R_MARGIN if drained[g] else (R_DRAWDOWN if forced else
                                                             R_SIGNAL), &cost)
                    if code < 0:
                        err = 1
                        break
                    if code == 2 and not drained[g]:   # a drawdown exit's fees took it all
                        drained[g] = 1
                        drain_fee[g] = cost
                        drain_rec[g] = orders.n - 1
                        for k in range(m):
                            if group[k] == g and q[k] != 0:
                                pending[k] = 1   # closes the rest on this bar
                                e[k] = 0.0
                                ev[k] = NAN
                if err:
                    break
            if err:
                break
            for g in range(n_groups):
                if drained[g]:
                    bust[g] = 1   # no more orders or interest, once it holds nothing
            for c in range(m):
                if drained[group[c]] and q[c] != 0:
                    bust[group[c]] = 0   # a missing bar: it closes on the next one
            for g in range(n_groups):
                if bust[g] and drained[g] and cash[g] < 0 and drain_fee[g] > 0:
                    # the fee that drained it was capped at the last marks; the rest,
                    # closed at this bar's prices, lost more: it pays only what was there
                    cost = min(-cash[g], drain_fee[g])
                    cash[g] += cost
                    drain_fee[g] -= cost
                    if metrics_only:
                        extra[g, X_FEES] -= cost
                    else:
                        orders.buf[drain_rec[g]].fee -= cost
            # 4. mark to the close (last valid close on a missing bar)
            for g in range(n_groups):
                eq[g] = cash[g]
                gross_v[g] = 0.0
                short_v[g] = 0.0
            for c in range(m):
                if not isnan(close[t, asset[c]]):
                    last[c] = close[t, asset[c]]
                if q[c] != 0:
                    eq[group[c]] += q[c] * last[c]
                    gross_v[group[c]] += fabs(q[c] * last[c])
                    if q[c] < 0:
                        short_v[group[c]] -= q[c] * last[c]
            if borrow > 0:   # interest on borrowed cash and on shorts' value
                for g in range(n_groups):
                    if bust[g]:
                        continue   # a closed account accrues nothing
                    cost = borrow * ((-cash[g] if cash[g] < 0 else 0.0) + short_v[g])
                    cash[g] -= cost
                    eq[g] -= cost
                    if not metrics_only:
                        interest[t, g] = cost
            if use_margin:   # maintenance margin: liquidate at the close
                for g in range(n_groups):
                    if gross_v[g] > 0 and eq[g] < margin * gross_v[g] and not bust[g]:
                        # the slippage of the account's later closes is set aside, so
                        # an earlier close's capped fees cannot take what it needs
                        pend = 0.0
                        for c in range(m):
                            if group[c] == g and q[c] != 0:
                                pend += fabs(q[c]) * last[c] * slip_of(
                                    slip_base, impact, impact_cap, t, asset[c], -q[c])
                        for c in range(m):
                            if group[c] != g or q[c] == 0:
                                continue
                            sl = slip_of(slip_base, impact, impact_cap, t, asset[c], -q[c])
                            pend -= fabs(q[c]) * last[c] * sl
                            avail = eq[g] - pend
                            if close_out(&orders, extra, metrics_only, t, c, g, last[c],
                                         sl, fees[c], fixed_fees[c], &avail, cash, q,
                                         entry, extreme, want, ev, lim_px, pending, last,
                                         R_MARGIN) < 0:
                                err = 1
                                break
                            eq[g] = avail + pend
                        if err:
                            break
                        eq[g] = cash[g]
                        gross_v[g] = 0.0
                        bust[g] = eq[g] <= 0
                if err:
                    break
            if not metrics_only:
                for c in range(m):
                    positions[t, c] = q[c]
            for g in range(n_groups):
                if metrics_only:
                    ret = eq[g] / prev_eq[g] - 1.0
                    acc_add(&stats[g, 0], ret, log1p(ret), 0.0)
                    extra[g, X_EQSUM] += eq[g]
                    extra[g, X_EXPO] += gross_v[g] / eq[g]
                else:
                    equity[t, g] = eq[g]
                    cash_out[t, g] = cash[g]
                prev_eq[g] = eq[g]
                if eq[g] > peak[g] and resume[g] < t:
                    peak[g] = eq[g]
    if err:
        free(orders.buf)
        raise MemoryError("backtest: out of memory for the order records")
    if metrics_only:
        free(orders.buf)
        return stats_np, extra_np
    ot_np = np.empty(orders.n, dtype=np.intp)
    oc_np = np.empty(orders.n, dtype=np.intp)
    osz_np = np.empty(orders.n)
    opx_np = np.empty(orders.n)
    ofee_np = np.empty(orders.n)
    oreason_np = np.empty(orders.n, dtype=np.int8)
    cdef Py_ssize_t[::1] ot = ot_np, oc = oc_np
    cdef double[::1] osz = osz_np, opx = opx_np, ofee = ofee_np
    cdef signed char[::1] oreason = oreason_np
    for k in range(orders.n):
        ot[k] = orders.buf[k].t
        oc[k] = orders.buf[k].col
        osz[k] = orders.buf[k].size
        opx[k] = orders.buf[k].price
        ofee[k] = orders.buf[k].fee
        oreason[k] = <signed char>orders.buf[k].reason
    free(orders.buf)
    return (equity_np, cash_np, pos_np, (ot_np, oc_np, osz_np, opx_np, ofee_np, oreason_np),
            halted_np, interest_np)
