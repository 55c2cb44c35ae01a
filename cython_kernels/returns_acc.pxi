"""The running statistics of a returns series, one value at a time: ``acc_add`` is the
single place they are updated, shared by ``metrics.accumulate`` and the backtest kernel's
metrics-only mode (``include``d by both; needs welford.pxi's ``add_pair``)."""

# Rows of the accumulator array returned by ``accumulate`` (one column per series).
FIELDS = (
    "n", "mean", "m2", "m3", "m4", "min", "max", "down2",
    "wealth", "peak", "max_dd", "dd_peak", "dd_trough_k", "recovery", "uw", "uw_max",
    "n_pos", "n_nonzero", "sum_pos", "sum_neg",
    "st_y", "st_mk", "st_my", "st_ckk", "st_cyy", "st_cky",
    "p_n", "p_mr", "p_mb", "p_crr", "p_cbb", "p_crb",
    "up_n", "up_wr", "up_wb", "dn_n", "dn_wr", "dn_wb",
)

cdef enum:
    N, MEAN, M2, M3, M4, MIN, MAX, DOWN2
    WEALTH, PEAK, MAXDD, DDPEAK, DDTROUGH, RECOVERY, UW, UWMAX
    NPOS, NNZ, SPOS, SNEG
    STY, STMK, STMY, STCKK, STCYY, STCKY
    PN, PMR, PMB, PCRR, PCBB, PCRB
    UPN, UPWR, UPWB, DNN, DNWR, DNWB
    NFIELDS


def _acc_new(Py_ssize_t m):
    """Initial state of ``m`` accumulators, (m, NFIELDS)."""
    acc = np.zeros((m, NFIELDS))
    acc[:, MIN] = np.inf
    acc[:, MAX] = -np.inf
    acc[:, WEALTH] = 1.0
    acc[:, PEAK] = 1.0
    acc[:, DDPEAK] = 1.0
    acc[:, DDTROUGH] = -1.0
    acc[:, RECOVERY] = np.nan
    acc[:, UPWR] = acc[:, UPWB] = acc[:, DNWR] = acc[:, DNWB] = 1.0
    return acc


cdef inline void acc_add(double* S, double x, double logx,
                         double required_return) noexcept nogil:
    """Add return ``x`` (not NaN; ``logx`` = log1p(x)) to the statistics at ``S``."""
    cdef double nn, n1, inv, d, dn, dn2, term, y, w, dd
    # moments (Welford; Terriberry's update for the 3rd and 4th)
    n1 = S[N]
    nn = n1 + 1.0
    S[N] = nn
    inv = 1.0 / nn
    d = x - S[MEAN]
    dn = d * inv
    dn2 = dn * dn
    term = d * dn * n1
    S[MEAN] += dn
    S[M4] += (term * dn2 * (nn * nn - 3.0 * nn + 3.0)
              + 6.0 * dn2 * S[M2] - 4.0 * dn * S[M3])
    S[M3] += term * dn * (nn - 2.0) - 3.0 * dn * S[M2]
    S[M2] += term
    # selects, not branches: the sign of a return is a coin flip for the
    # branch predictor
    S[MIN] = x if x < S[MIN] else S[MIN]
    S[MAX] = x if x > S[MAX] else S[MAX]
    y = x - required_return
    S[DOWN2] += y * y if y < 0 else 0.0
    # wealth and drawdowns (peak starts at the initial 1.0)
    w = S[WEALTH] * (1.0 + x)
    S[WEALTH] = w
    S[UW] = S[UW] + 1.0 if w < S[PEAK] else 0.0
    S[UWMAX] = S[UW] if S[UW] > S[UWMAX] else S[UWMAX]
    S[PEAK] = w if w > S[PEAK] else S[PEAK]
    dd = w / S[PEAK] - 1.0
    if dd < S[MAXDD]:
        S[MAXDD] = dd
        S[DDPEAK] = S[PEAK]
        S[DDTROUGH] = n1
        S[RECOVERY] = NAN
    elif isnan(S[RECOVERY]) and S[DDTROUGH] >= 0 and w >= S[DDPEAK]:
        S[RECOVERY] = n1 - S[DDTROUGH]
    # wins and losses
    S[NPOS] += 1.0 if x > 0 else 0.0
    S[SPOS] += x if x > 0 else 0.0
    S[SNEG] += x if x < 0 else 0.0
    S[NNZ] += 1.0 if x != 0 else 0.0
    # stability: regression of cumulative log return on observation number
    S[STY] += logx
    add_pair(n1, S[STY], nn, &S[STMK], &S[STMY], &S[STCKK], &S[STCYY], &S[STCKY])
