"""Plain-Python twin of the backtest kernel (cython_kernels/backtest.pyx ``simulate``):
one bar at a time, one column at a time, written from the kernel's docstring and
DESIGN.md (fills, costs, fixed-fee skip rule, leverage, group accounts, stops, limit
orders, order events, drawdown control, borrow, margin calls, drained accounts). Slow on
purpose; feed it small panels. Same arguments and return values as the kernel, except
that ``metrics_only`` returns (returns (time, group), extras (group, 5)): the stats rows
are ``metrics.accumulate`` of those returns."""
import math

import numpy as np

NAN = float("nan")
INF = float("inf")
# order reasons (backtest.pyx R_*) and size types (S_*)
SIGNAL, STOP, TAKE_PROFIT, TRAILING, DRAWDOWN, MARGIN, FIXED_FEE = range(7)
EPS = np.finfo(np.float64).eps   # the kernel's DBL_EPSILON: rounding dust's unit
EQUITY, VALUE, SHARES = range(3)
# metrics-only extras per account
FEES, TRADED, EQSUM, ORDERS, EXPO = range(5)


def dust(v, scale):
    """The kernel's ``dust``: ``v`` within 64 ulps of cash flows of size ``scale``."""
    return abs(v) <= 64 * EPS * scale


def _div(a, b):
    """a / b with IEEE semantics (an emptied account's equity is 0: its return is NaN)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(a) / np.float64(b))


def touch(level, op, lo, hi, below):
    """Fill price of a level reached from above (``below``) or below: the open when the
    bar gapped through it, the level when [lo, hi] reaches it, else NaN."""
    if below:
        return op if op <= level else (level if lo <= level else NAN)
    return op if op >= level else (level if hi >= level else NAN)


def bar_range(o, h, l, cl):
    """(open, high, low) of a bar with close ``cl``; missing ones from the open/close."""
    op = cl if math.isnan(o) else o
    hi = h if not math.isnan(h) else max(op, cl)
    lo = l if not math.isnan(l) else min(op, cl)
    return op, hi, lo


def order_size(e, equity, q, p, slip, fees, fixed):
    """Shares so that after slippage s, fee rate f and fixed fee F the position value is
    e x (equity - F): Δ = (e (E - F) - q p) / (p + e (p(1+s)(1+f) - p)) for a buy,
    / (p - e (p - p(1-s)(1-f))) for a sell; exposure 0 sells everything."""
    want = e * equity / p - q
    if abs(want) * p <= 1e-12 * abs(equity):   # already there, up to rounding
        return 0.0
    if e == 0:
        return -q
    num = e * (equity - fixed) - q * p
    if want > 0:
        den = p + e * (p * (1 + slip) * (1 + fees) - p)
    else:
        den = p - e * (p - p * (1 - slip) * (1 - fees))
    return num / den if den > 0 else 0.0


def event_size(ev, size, size_type, accumulate, q, equity, p, cap):
    """An entry (ev 1) buys ``size`` while flat (adds it with ``accumulate``), up to cap x
    equity of position value; an exit sells all (``size`` with ``accumulate``)."""
    amt = (size * equity / p if size_type == EQUITY
           else size / p if size_type == VALUE else size)
    if ev > 0:
        if q != 0 and not accumulate:
            return 0.0
        amt = min(amt, cap * equity / p - q)
        return amt if amt > 0 else 0.0
    if accumulate and amt < q:
        return -amt
    return -q


class _Sim:
    """The state of one run; the methods are the kernel's phases."""

    def __init__(self, a):
        self.__dict__.update(a)
        n, m, G = self.target.shape[0], self.target.shape[1], self.n_groups
        self.n, self.m = n, m
        self.cash = [self.init_cash] * G
        self.prev_eq = [self.init_cash] * G
        self.peak = [self.init_cash] * G
        self.resume = [-1] * G
        self.bust = [False] * G
        self.drained = [False] * G
        self.drain_fee = [0.0] * G
        self.drain_rec = [0] * G
        self.eq, self.live, self.gross = [0.0] * G, [0.0] * G, [0.0] * G
        self.q, self.last, self.want = [0.0] * m, [NAN] * m, [0.0] * m
        self.e, self.px = [0.0] * m, [0.0] * m
        self.pending, self.stopped = [False] * m, [False] * m
        self.entry, self.extreme = [NAN] * m, [NAN] * m
        self.ev, self.ev_size = [NAN] * m, [0.0] * m
        self.lim_px, self.lim_q, self.lim_end = [NAN] * m, [0.0] * m, [0] * m
        self.orders = []                    # [t, col, size, price, fee, reason]
        self.extra = np.zeros((G, 5))
        self.equity = np.full((n, G), NAN)
        self.cash_out = np.full((n, G), NAN)
        self.positions = np.full((n, m), NAN)
        self.halted = np.zeros((n, G), dtype=np.int8)
        self.interest = np.zeros((n if self.borrow > 0 else 0, G))
        self.returns = np.full((n, G), NAN)

    # ---- bookkeeping
    def slip(self, t, j, d):
        """base + min(impact sqrt|d|, cap)."""
        if self.impact[t, j] > 0:
            return self.slip_base[t, j] + min(self.impact[t, j] * math.sqrt(abs(d)),
                                              self.impact_cap)
        return self.slip_base[t, j]

    def book(self, t, c, d, pe, fee, reason):
        g = self.group[c]
        self.extra[g, FEES] += fee
        self.extra[g, TRADED] += abs(d) * pe
        self.extra[g, ORDERS] += 1
        self.orders.append([t, c, d, pe, fee, reason])

    def fill(self, t, c, d, pe, fee_rate, fixed, bp, tiny, ref, mark, forced, reason):
        """Fill d shares of c at pe; returns (code, fee): 0 filled, 2 filled with fees
        capped (the account is drained), 1 skipped."""
        g = self.group[c]
        fee = abs(d) * pe * fee_rate + fixed
        if d > 0 and not forced and d * pe + fee > bp:    # buying power
            if bp - fixed <= tiny:
                if fixed > 0 and bp > tiny:               # the fee took it
                    self.book(t, c, 0.0, pe, 0.0, FIXED_FEE)
                return 1, NAN
            d = (bp - fixed) / (pe * (1 + fee_rate))
            fee = d * pe * fee_rate + fixed
        moved = d * (pe - (pe if math.isnan(mark) else mark))
        left = self.live[g] - moved
        drained = False
        if forced:
            if fee > left:
                fee = left if left > 0 else 0.0
                drained = True
        elif fixed > 0 and left - fee <= 0:
            self.book(t, c, 0.0, pe, 0.0, FIXED_FEE)
            return 1, NAN
        self.live[g] -= moved + fee
        self.cash[g] += -d * pe - fee
        q0 = self.q[c]
        self.q[c] += d
        q1 = self.q[c]
        if q1 == 0:                                       # stop reference
            self.entry[c] = NAN
        elif q0 == 0 or (q0 > 0) != (q1 > 0):
            self.entry[c] = self.extreme[c] = ref
        self.book(t, c, d, pe, fee, reason)
        if not abs(q1) < math.inf:                        # equity / price overflowed
            raise OverflowError(t)
        return (2 if drained else 0), fee

    def close_out(self, t, c, price, sl, reason):
        """A forced close of c's position; its target becomes 0, waits are dropped."""
        d = -self.q[c]
        self.want[c] = 0.0
        self.ev[c] = NAN
        self.lim_px[c] = NAN
        self.pending[c] = False
        return self.fill(t, c, d, price * (1 + sl) if d > 0 else price * (1 - sl),
                         self.fees[c], self.fixed_fees[c], INF, 0.0, NAN, self.last[c],
                         True, reason)

    def drain(self, g, fee):
        self.drained[g] = True
        self.drain_fee[g] = fee
        self.drain_rec[g] = len(self.orders) - 1

    # ---- phases of bar t
    def stops_phase(self, t):
        for c in range(self.m):
            self.stopped[c] = False
            if self.q[c] == 0 or math.isnan(self.entry[c]):
                continue
            j = self.asset[c]
            cl = self.close[t, j]
            if math.isnan(cl):
                continue
            op, hi, lo = bar_range(self.bar_open[t, j], self.bar_high[t, j],
                                   self.bar_low[t, j], cl)
            long_ = self.q[c] > 0
            sgn = 1.0 if long_ else -1.0
            why = STOP
            level = self.entry[c] * (1 - sgn * self.sl_stop[c])
            if not math.isnan(self.sl_trail[c]):
                trail = self.extreme[c] * (1 - sgn * self.sl_trail[c])
                if math.isnan(level) or sgn * trail > sgn * level:   # the tighter
                    level, why = trail, TRAILING
            hit = NAN if math.isnan(level) else touch(level, op, lo, hi, long_)
            if math.isnan(hit) and not math.isnan(self.tp_stop[c]):
                why = TAKE_PROFIT
                hit = touch(self.entry[c] * (1 + sgn * self.tp_stop[c]), op, lo, hi,
                            not long_)
            if long_ and hi > self.extreme[c]:       # after the check
                self.extreme[c] = hi
            elif not long_ and lo < self.extreme[c]:
                self.extreme[c] = lo
            if math.isnan(hit):
                continue
            self.stopped[c] = True
            g = self.group[c]
            code, fee = self.close_out(t, c, hit, self.slip(t, j, -self.q[c]), why)
            if code == 2 and not self.drained[g]:
                self.drain(g, fee)

    def limits_phase(self, t):
        for side in (0, 1):                          # sells, then buys
            for c in range(self.m):
                if math.isnan(self.lim_px[c]) or (self.lim_q[c] > 0) != (side == 1):
                    continue
                if self.tif > 0 and t > self.lim_end[c]:
                    self.lim_px[c] = NAN             # expired
                    continue
                j, g = self.asset[c], self.group[c]
                cl = self.close[t, j]
                if math.isnan(cl) or self.bust[g]:
                    continue
                op, hi, lo = bar_range(self.bar_open[t, j], self.bar_high[t, j],
                                       self.bar_low[t, j], cl)
                hit = touch(self.lim_px[c], op, lo, hi, self.lim_q[c] > 0)
                if math.isnan(hit):
                    continue
                self.lim_px[c] = NAN
                pe = self.prev_eq[g]                 # buying power at the last marks
                self.fill(t, c, self.lim_q[c], hit, self.fees[c], self.fixed_fees[c],
                          self.cash[g] + (self.max_leverage - 1) * pe, 1e-12 * abs(pe),
                          hit, hit, False, SIGNAL)

    def targets_phase(self, t):
        for c in range(self.m):
            self.px[c] = self.exec_price[t, self.asset[c]]
            if self.stopped[c]:
                continue
            row = t - 1 if self.next_open else t
            s = self.target[row, c] if row >= 0 else NAN
            if self.use_events:
                if not math.isnan(s):
                    self.ev[c] = s
                    self.ev_size[c] = self.size[row, c]
                    self.pending[c] = True
                continue
            # a change beyond rounding (1e-12 of max(1, |s|, |want|)) moves the target
            # acted on; a creep within it adds up to one
            w = self.want[c]
            if not math.isnan(s) and (self.daily
                                      or abs(s - w) > 1e-12 * max(1.0, abs(s), abs(w))):
                self.pending[c] = True
                self.want[c] = s
            if self.daily:
                self.pending[c] = True

    def equity_phase(self, t):
        G, m = self.n_groups, self.m
        for g in range(G):
            self.eq[g] = self.cash[g]
            self.gross[g] = 0.0
        for c in range(m):
            g = self.group[c]
            p = self.px[c] if not math.isnan(self.px[c]) else self.last[c]
            if self.q[c] != 0 and not math.isnan(p):
                self.eq[g] += self.q[c] * p
            self.e[c] = max(-self.max_position_size,
                            min(self.want[c] * self.max_leverage, self.max_position_size))
            self.gross[g] += abs(self.e[c])
        for g in range(G):
            self.live[g] = self.eq[g]
        if self.dd_limit > 0:
            for g in range(G):
                if self.resume[g] == t:               # re-entry: the peak restarts
                    self.peak[g] = self.eq[g]
                elif self.resume[g] < t:
                    self.peak[g] = max(self.peak[g], self.eq[g])
                    if self.eq[g] <= self.peak[g] * (1 - self.dd_limit):
                        self.resume[g] = t + self.dd_cooldown + 1
                self.halted[t, g] = self.resume[g] > t
            for c in range(m):
                g = self.group[c]
                if self.halted[t, g] or (self.resume[g] == t and not self.use_events):
                    self.pending[c] = True
                if self.halted[t, g]:
                    self.gross[g] -= abs(self.e[c])
                    self.e[c] = 0.0
                    self.ev[c] = NAN
        for c in range(m):
            g = self.group[c]
            if self.drained[g] and not self.bust[g]:
                self.pending[c] = True
                self.e[c] = 0.0
                self.ev[c] = NAN

    def orders_phase(self, t):
        for side in (0, 1):                          # sells before buys
            for c in range(self.m):
                if not self.pending[c] or math.isnan(self.px[c]):
                    continue
                g, j = self.group[c], self.asset[c]
                if self.bust[g]:
                    self.pending[c] = False
                    continue
                p, eq = self.px[c], self.eq[g]
                if self.use_limit:
                    self.lim_px[c] = NAN             # replaced
                forced = self.drained[g] or (self.dd_limit > 0 and self.halted[t, g])
                scale = 1.0
                if self.use_events:
                    if forced:
                        d = -self.q[c]
                    elif math.isnan(self.ev[c]):
                        d = 0.0
                    else:
                        d = event_size(self.ev[c], self.ev_size[c], self.size_type,
                                       self.accumulate, self.q[c], eq, p,
                                       self.max_position_size)
                else:
                    if self.gross[g] > self.max_leverage:          # pro rata
                        scale = self.max_leverage / self.gross[g]
                    d = order_size(self.e[c] * scale, eq, self.q[c], p,
                                   self.slip_base[t, j], self.fees[c], self.fixed_fees[c])
                if abs(d) * p <= 1e-12 * abs(eq):
                    self.pending[c] = False
                    self.ev[c] = NAN
                    continue
                if (d > 0) != (side == 1):
                    continue
                self.pending[c] = False
                self.ev[c] = NAN
                fixed = self.fixed_fees[c]
                if fixed > 0 and not forced and (
                        self.live[g] <= fixed or (not self.use_events and (d > 0) != (
                            self.e[c] * scale * eq / p - self.q[c] > 0))):
                    self.book(t, c, 0.0, p, 0.0, FIXED_FEE)   # cannot pay / turns it
                    continue
                if self.use_limit and not math.isnan(self.lim_off[c]) and not forced:
                    p = p * (1 - self.lim_off[c]) if d > 0 else p * (1 + self.lim_off[c])
                    if not self.use_events:
                        d = order_size(self.e[c] * scale, eq, self.q[c], p, 0.0,
                                       self.fees[c], fixed)
                    elif d > 0:
                        d = event_size(1.0, self.ev_size[c], self.size_type,
                                       self.accumulate, self.q[c], eq, p,
                                       self.max_position_size)
                    self.lim_px[c], self.lim_q[c], self.lim_end[c] = p, d, t + self.tif
                    continue
                sl = self.slip_base[t, j]
                if self.impact[t, j] > 0:            # impact of this order, re-sized once
                    sl = self.slip(t, j, d)
                    if not self.use_events:
                        d = order_size(self.e[c] * scale, eq, self.q[c], p, sl,
                                       self.fees[c], fixed)
                reason = MARGIN if self.drained[g] else (DRAWDOWN if forced else SIGNAL)
                code, fee = self.fill(t, c, d, p * (1 + sl) if d > 0 else p * (1 - sl),
                                      self.fees[c], fixed,
                                      self.cash[g] + (self.max_leverage - 1) * eq,
                                      1e-12 * abs(eq), self.close[t, j], p, forced, reason)
                if code == 2 and not self.drained[g]:
                    self.drain(g, fee)
                    for k in range(self.m):          # close the rest on this bar
                        if self.group[k] == g and self.q[k] != 0:
                            self.pending[k] = True
                            self.e[k] = 0.0
                            self.ev[k] = NAN

    def drained_phase(self):
        G = self.n_groups
        for g in range(G):
            if self.drained[g]:
                self.bust[g] = True
        for c in range(self.m):
            if self.drained[self.group[c]] and self.q[c] != 0:
                self.bust[self.group[c]] = False     # a missing bar: closes later
        for g in range(G):
            cost = 0.0
            if (self.bust[g] and self.drained[g] and self.cash[g] > 0
                    and dust(self.cash[g], 2 * self.max_leverage * self.peak[g])):
                cost = -self.cash[g]   # rounding dust: the capped fee took all there was
            elif self.bust[g] and self.drained[g] and self.cash[g] < 0 and self.drain_fee[g] > 0:
                cost = min(-self.cash[g], self.drain_fee[g])   # pays only what was there
            if cost:
                self.cash[g] += cost
                self.drain_fee[g] -= cost
                self.extra[g, FEES] -= cost
                self.orders[self.drain_rec[g]][4] -= cost

    def close_phase(self, t):
        G, m = self.n_groups, self.m
        eq, gross_v, short_v = list(self.cash), [0.0] * G, [0.0] * G
        priced = [False] * G
        for c in range(m):
            g, j = self.group[c], self.asset[c]
            if not math.isnan(self.close[t, j]):
                self.last[c] = self.close[t, j]
                priced[g] = True
            if self.q[c] != 0:
                v = self.q[c] * self.last[c]
                eq[g] += v
                gross_v[g] += abs(v)
                if self.q[c] < 0:
                    short_v[g] -= v
        if self.borrow > 0:
            for g in range(G):
                if self.bust[g]:
                    continue
                cost = self.borrow * ((-self.cash[g] if self.cash[g] < 0 else 0.0)
                                      + short_v[g])
                self.cash[g] -= cost
                eq[g] -= cost
                self.interest[t, g] = cost
        if self.margin > 0:
            for g in range(G):
                if not (gross_v[g] > 0 and eq[g] < self.margin * gross_v[g]
                        and not self.bust[g]):
                    continue
                cols = [c for c in range(m) if self.group[c] == g and self.q[c] != 0]
                # the later closes' slippage is set aside before each close's fees
                pend, flows, rec0, capped = 0.0, abs(self.cash[g]), len(self.orders), False
                for c in cols:
                    flows += abs(self.q[c]) * self.last[c]
                    pend += abs(self.q[c]) * self.last[c] * self.slip(t, self.asset[c],
                                                                      -self.q[c])
                for c in cols:
                    sl = self.slip(t, self.asset[c], -self.q[c])
                    pend -= abs(self.q[c]) * self.last[c] * sl
                    self.live[g] = eq[g] - pend
                    code, _ = self.close_out(t, c, self.last[c], sl, MARGIN)
                    capped |= code == 2
                    eq[g] = self.live[g] + pend
                residue = self.cash[g]
                if capped and residue != 0 and dust(residue, flows):
                    # rounding of the closes: the capped fees took all there was
                    self.cash[g] = 0.0
                    if self.extra[g, FEES] + residue >= 0:
                        self.extra[g, FEES] += residue
                    for k in range(len(self.orders) - 1, rec0 - 1, -1):
                        if self.orders[k][4] + residue >= 0:
                            self.orders[k][4] += residue
                            break
                eq[g] = self.cash[g]
                gross_v[g] = 0.0
                self.bust[g] = eq[g] <= 0
        self.positions[t] = self.q
        for g in range(G):
            r = _div(eq[g], self.prev_eq[g]) - 1.0
            # no close of the account's assets and nothing changed: no observation
            self.returns[t, g] = NAN if r == 0.0 and not priced[g] else r
            if not np.isnan(self.returns[t, g]):   # the means count the observed bars
                self.extra[g, EQSUM] += eq[g]
                if gross_v[g] != 0.0:   # no position, no exposure (also at 0 equity)
                    self.extra[g, EXPO] += _div(gross_v[g], eq[g])
            self.equity[t, g] = eq[g]
            self.cash_out[t, g] = self.cash[g]
            self.prev_eq[g] = eq[g]
            if eq[g] > self.peak[g] and self.resume[g] < t:
                self.peak[g] = eq[g]


def simulate(close, exec_price, target, slip_base, impact, impact_cap, asset, group,
             n_groups, init_cash, fees, fixed_fees, max_leverage, max_position_size, daily,
             next_open, dd_limit=0.0, dd_cooldown=0, metrics_only=False, bars=None,
             stops=None, events=None, limit=None, borrow=0.0, margin=0.0, state=None,
             check=False, check_target=False):
    """The kernel's arguments (a fresh run: ``state`` must be None); per bar: stops, resting limits, targets/events, equity
    at the execution prices (drawdown control, drained accounts), orders (sells before
    buys), then the close (borrow, margin calls) -- see backtest.pyx's docstring.
    ``check``: the first row with a close neither NaN nor in [DBL_MIN, inf) raises;
    ``check_target``: or with a float target outside [-1, 1] (to 1e-12), the close first."""
    assert state is None, "the twin runs whole panels (chunked runs: test_backtest_state)"
    c = np.asarray(close)
    with np.errstate(invalid="ignore"):
        bad_px = ((c < np.finfo(float).tiny) | (c == np.inf)).any(axis=1) & check
        bad_tg = np.zeros(len(c), dtype=bool)
        if check_target and not isinstance(target, tuple):
            bad_tg = (np.abs(np.asarray(target)) > 1.0 + 1e-12).any(axis=1)
    for r in np.flatnonzero(bad_px | bad_tg)[:1]:
        raise ValueError(f"close at row {r}: a value is neither NaN nor a finite price "
                         ">= 2.2e-308"
                         if bad_px[r] else f"target at row {r}: a value is outside [-1, 1]")
    if isinstance(target, tuple):   # boolean (entries, exits): 1 entry, 0 exit, both nothing
        entries, exits = (np.asarray(x).astype(bool) for x in target)
        target = np.where(entries & ~exits, 1.0, np.where(exits & ~entries, 0.0, np.nan))
    m = np.asarray(target).shape[1]
    nan_col = np.full(m, np.nan)
    a = dict(close=np.asarray(close), exec_price=np.asarray(exec_price),
             target=np.asarray(target), slip_base=np.asarray(slip_base),
             impact=np.asarray(impact), impact_cap=impact_cap,
             asset=[int(v) for v in asset], group=[int(v) for v in group],
             n_groups=int(n_groups), init_cash=init_cash, fees=list(fees),
             fixed_fees=list(fixed_fees), max_leverage=max_leverage,
             max_position_size=max_position_size, daily=bool(daily),
             next_open=bool(next_open), dd_limit=dd_limit, dd_cooldown=int(dd_cooldown),
             borrow=borrow, margin=margin, use_events=events is not None,
             use_limit=limit is not None)
    a["bar_open"], a["bar_high"], a["bar_low"] = (
        (a["close"],) * 3 if bars is None else tuple(np.asarray(b) for b in bars))
    a["sl_stop"], a["tp_stop"], a["sl_trail"] = (
        (nan_col,) * 3 if stops is None else tuple(list(s) for s in stops))
    a["size"], a["size_type"], a["accumulate"] = (
        (None, EQUITY, False) if events is None
        else (np.asarray(events[0]), int(events[1]), bool(events[2])))
    a["lim_off"], a["tif"] = (nan_col, 0) if limit is None else (list(limit[0]), int(limit[1]))
    sim = _Sim(a)
    for t in range(sim.n):
        for g in range(sim.n_groups):
            sim.live[g] = sim.prev_eq[g]              # the last marks until the equity phase
        if stops is not None:
            sim.stops_phase(t)
        if limit is not None:
            sim.limits_phase(t)
        sim.targets_phase(t)
        sim.equity_phase(t)
        sim.orders_phase(t)
        sim.drained_phase()
        sim.close_phase(t)
    if metrics_only:
        return sim.returns, sim.extra
    o = np.array(sim.orders, dtype=float).reshape(-1, 6)
    orders = (o[:, 0].astype(np.intp), o[:, 1].astype(np.intp), o[:, 2], o[:, 3], o[:, 4],
              o[:, 5].astype(np.int8))
    return sim.equity, sim.cash_out, sim.positions, orders, sim.halted, sim.interest
