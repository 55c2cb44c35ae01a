"""The running statistics of a returns series, one value at a time: ``acc_add`` is the
single place they are updated, shared by ``metrics.accumulate`` and the backtest kernel's
metrics-only mode (``include``d by both; needs welford.pxi's ``add_pair``)."""

# The rows of the accumulator array returned by ``accumulate`` (one column per series),
# defined once: the C code indexes with F_*, Python reads the names from FIELDS (this
# enum's members lower-cased without F_, in order; quantlab/metrics.py keys on them).
cpdef enum:
    F_N, F_MEAN, F_M2, F_M3, F_M4, F_MIN, F_MAX, F_DOWN2, F_WEALTH, F_PEAK, F_MAX_DD,
    F_DD_PEAK, F_DD_TROUGH_K, F_RECOVERY, F_UW, F_UW_MAX, F_N_POS, F_N_NONZERO,
    F_SUM_POS, F_SUM_NEG, F_ST_Y, F_ST_MK, F_ST_MY, F_ST_CKK, F_ST_CYY, F_ST_CKY,
    F_P_N, F_P_MR, F_P_MB, F_P_CRR, F_P_CBB, F_P_CRB, F_UP_N, F_UP_WR, F_UP_WB, F_DN_N,
    F_DN_WR, F_DN_WB

cdef enum:
    NFIELDS = F_DN_WB + 1

# The groups of statistics ``acc_add`` can skip (its ``need`` bits); the count, mean and
# M2 are always kept. A metrics-only backtest keeps those its metrics read
# (``acc_groups``): a Sharpe ratio alone needs no log1p per return.
cpdef enum:
    A_HIGHER = 1       # m3, m4
    A_RANGE = 2        # min, max
    A_DOWN = 4         # down2
    A_WEALTH = 8       # wealth, peak, drawdowns, recovery, underwater
    A_WINS = 16        # n_pos, n_nonzero, sum_pos, sum_neg
    A_STABILITY = 32   # st_*: the regression of the cumulative log return
    A_ALL = 63


def acc_groups(fields):
    """The ``need`` bits of ``acc_add`` that keep the statistics ``fields`` (names of
    ``FIELDS``); 0 for the count, mean and M2 alone."""
    groups = {"m3": A_HIGHER, "m4": A_HIGHER, "min": A_RANGE, "max": A_RANGE,
              "down2": A_DOWN, "n_pos": A_WINS, "n_nonzero": A_WINS, "sum_pos": A_WINS,
              "sum_neg": A_WINS}
    groups.update(dict.fromkeys(("wealth", "peak", "max_dd", "dd_peak", "dd_trough_k",
                                 "recovery", "uw", "uw_max"), A_WEALTH))
    groups.update(dict.fromkeys(("st_y", "st_mk", "st_my", "st_ckk", "st_cyy", "st_cky"),
                                A_STABILITY))
    cdef int need = 0
    for f in fields:
        if f not in ("n", "mean", "m2"):
            need |= groups[f]   # KeyError: a benchmark field, not acc_add's
    return need


def __getattr__(name):
    """``FIELDS``, built on first use from the F_* members (Cython adds a ``cpdef enum``'s
    members to the module after its body has run, so not at import)."""
    if name != "FIELDS":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    fields = tuple(k[2:].lower() for k, v in sorted(
        ((k, v) for k, v in globals().items() if k.startswith("F_")), key=lambda kv: kv[1]))
    if len(fields) != NFIELDS:
        raise AttributeError("returns_acc: the F_* members do not make NFIELDS rows")
    globals()["FIELDS"] = fields
    return fields


def _acc_new(Py_ssize_t m):
    """Initial state of ``m`` accumulators, (m, NFIELDS)."""
    acc = np.zeros((m, NFIELDS))
    acc[:, F_MIN] = np.inf
    acc[:, F_MAX] = -np.inf
    acc[:, F_WEALTH] = 1.0
    acc[:, F_PEAK] = 1.0
    acc[:, F_DD_PEAK] = 1.0
    acc[:, F_DD_TROUGH_K] = -1.0
    acc[:, F_RECOVERY] = np.nan
    acc[:, F_UP_WR] = acc[:, F_UP_WB] = acc[:, F_DN_WR] = acc[:, F_DN_WB] = 1.0
    return acc


cdef inline void acc_add(double* S, double x, double logx, double required_return,
                         int need) noexcept nogil:
    """Add return ``x`` (not NaN; ``logx`` = log1p(x), read only for A_STABILITY) to the
    statistics at ``S``: the count, mean and M2, and the groups in ``need`` (A_*; the
    others are left as they are)."""
    cdef double nn, n1, inv, d, dn, dn2, term, y
    # moments (Welford; Terriberry's update for the 3rd and 4th)
    n1 = S[F_N]
    nn = n1 + 1.0
    S[F_N] = nn
    inv = 1.0 / nn
    d = x - S[F_MEAN]
    dn = d * inv
    dn2 = dn * dn
    term = d * dn * n1
    S[F_MEAN] += dn
    if need & A_HIGHER:   # need is the same for every value: a predicted branch
        S[F_M4] += (term * dn2 * (nn * nn - 3.0 * nn + 3.0)
                  + 6.0 * dn2 * S[F_M2] - 4.0 * dn * S[F_M3])
        S[F_M3] += term * dn * (nn - 2.0) - 3.0 * dn * S[F_M2]
    S[F_M2] += term
    # selects, not branches: the sign of a return is a coin flip for the
    # branch predictor
    if need & A_RANGE:
        S[F_MIN] = x if x < S[F_MIN] else S[F_MIN]
        S[F_MAX] = x if x > S[F_MAX] else S[F_MAX]
    if need & A_DOWN:
        y = x - required_return
        S[F_DOWN2] += y * y if y < 0 else 0.0
    if need & A_WEALTH:
        _acc_wealth(S, x, n1)
    if need & A_WINS:
        S[F_N_POS] += 1.0 if x > 0 else 0.0
        S[F_SUM_POS] += x if x > 0 else 0.0
        S[F_SUM_NEG] += x if x < 0 else 0.0
        S[F_N_NONZERO] += 1.0 if x != 0 else 0.0
    if need & A_STABILITY:   # regression of cumulative log return on observation number
        S[F_ST_Y] += logx
        add_pair(n1, S[F_ST_Y], nn, &S[F_ST_MK], &S[F_ST_MY], &S[F_ST_CKK], &S[F_ST_CYY],
                 &S[F_ST_CKY])


cdef inline void _acc_wealth(double* S, double x, double n1) noexcept nogil:
    """acc_add's wealth and drawdowns (the peak starts at the initial 1.0); ``n1`` the
    values before ``x``."""
    cdef double w, dd
    w = S[F_WEALTH] * (1.0 + x)
    S[F_WEALTH] = w
    S[F_UW] = S[F_UW] + 1.0 if w < S[F_PEAK] else 0.0
    S[F_UW_MAX] = S[F_UW] if S[F_UW] > S[F_UW_MAX] else S[F_UW_MAX]
    S[F_PEAK] = w if w > S[F_PEAK] else S[F_PEAK]
    dd = w / S[F_PEAK] - 1.0
    if dd < S[F_MAX_DD]:
        S[F_MAX_DD] = dd
        S[F_DD_PEAK] = S[F_PEAK]
        S[F_DD_TROUGH_K] = n1
        S[F_RECOVERY] = NAN
    elif isnan(S[F_RECOVERY]) and S[F_DD_TROUGH_K] >= 0 and w >= S[F_DD_PEAK]:
        S[F_RECOVERY] = n1 - S[F_DD_TROUGH_K]
