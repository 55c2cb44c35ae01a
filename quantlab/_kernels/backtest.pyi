import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
# t, col, size, price, fee, reason (an index into REASONS; 6 =
# "fixed_fee": an order skipped because of its fixed fee, size 0 and fee 0; a forced
# order's fee is capped at the equity left, so fees never make equity negative)
Orders = tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], F64, F64, F64, npt.NDArray[np.int8]]
# keyed=True: and each record's phase of its bar (stops, limit sells/buys, sells, buys,
# margin calls), by which column blocks' records merge into one call's order
KeyedOrders = tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], F64, F64, F64,
                    npt.NDArray[np.int8], npt.NDArray[np.int8]]

def simulate(
    close: F64,
    exec_price: F64,
    target: F64 | tuple[npt.NDArray[np.bool_ | np.uint8], npt.NDArray[np.bool_ | np.uint8]],
    slip_base: F64,
    impact: F64,
    impact_cap: float,
    asset: npt.NDArray[np.intp],
    group: npt.NDArray[np.intp],
    n_groups: int,
    init_cash: float,
    fees: F64,
    fixed_fees: F64,
    max_leverage: float,
    max_position_size: float,
    daily: bool,
    next_open: bool,
    dd_limit: float = 0.0,
    dd_cooldown: int = 0,
    metrics_only: bool = False,
    bars: tuple[F64, F64, F64] | None = None,  # open high low
    stops: tuple[F64, F64, F64] | None = None,  # sl tp trail per column
    events: tuple[F64, int, bool] | None = None,  # size (time, column), size type, accumulate
    limit: tuple[F64, int] | None = None,  # offset per column, time in force (0 = none)
    borrow: float = 0.0,  # per bar
    margin: float = 0.0,  # maintenance margin
    state: SimState | None = None,  # start state, updated in place (order t: absolute bars)
    fast: bool = True,  # False: every per-bar phase (same bits; for tests)
    lean: bool = False,  # fast path, no state: cash and positions come back None
    # equity, cash, positions, halted (zeros), interest to write into (any strides)
    out: tuple[F64 | None, F64 | None, F64 | None, npt.NDArray[np.int8] | None, F64 | None]
    | None = None,
    keyed: bool = False,  # orders get a 7th array: each record's phase of its bar (int8)
    check: bool = False,  # each bar's closes NaN or in [DBL_MIN, inf), else InvalidPrice
    check_target: bool = False,  # each bar's targets NaN or in [-1, 1], else InvalidTarget
    acc_need: int = ...,  # metrics-only: the statistics kept (A_* bits; A_ALL: all)
) -> tuple[F64, F64 | None, F64 | None, Orders | KeyedOrders, npt.NDArray[np.int8], F64] | tuple[
    F64, F64]: ...

class InvalidPrice(ValueError):
    """simulate(check=True) met a close neither NaN nor a finite price >= DBL_MIN (2.2e-308)."""

class OrderOverflow(ValueError):
    """An order at row args[0] sized no finite number of shares (equity / price overflowed)."""

class InvalidTarget(ValueError):
    """simulate(check_target=True) met a target outside [-1, 1] (NaN passes)."""

# one call's records from column blocks' keyed records (block i's columns from col0[i])
def merge_orders(parts: list[KeyedOrders], col0: npt.NDArray[np.intp]) -> Orders: ...

# a lean run's panels, rebuilt bit for bit from its order records
def positions_from_orders(n: int, m: int, orders: Orders) -> F64: ...
def cash_from_orders(n: int, group: npt.NDArray[np.intp], n_groups: int, init_cash: float,
                     orders: Orders) -> F64: ...
# BacktestResult.metrics()' exposure: mean over bars of gross position value / equity
def mean_exposure(q: F64, price: F64, eq: F64, asset: npt.NDArray[np.intp],
                  group: npt.NDArray[np.intp], carry: tuple[F64, F64, F64] | None = ...
                  ) -> F64: ...

class SimState:
    """Everything simulate carries from one bar to the next (resumable runs)."""
    n_columns: int
    n_groups: int
    bar: int       # rows done: absolute bar number of the next row
    n_orders: int  # order records returned so far
    def __init__(self, n_columns: int, n_groups: int, init_cash: float) -> None: ...
    def __getitem__(self, name: str) -> npt.NDArray[np.generic]: ...
    def to_dict(self) -> dict[str, npt.NDArray[np.generic] | int]: ...
    @staticmethod
    def from_dict(d: dict[str, object]) -> SimState: ...
    def copy(self) -> SimState: ...

STATE_VERSION: int
REASONS: tuple[str, ...]     # order reasons, index = the orders' reason code (R_*)
SIZE_TYPES: tuple[str, ...]  # event size types, index = size_type (S_*)
EXTRAS: tuple[str, ...]      # columns of the metrics-only extras (X_*)

# returns_acc.pxi is included here as in metrics.pyx, so this module exports its names
# too (FIELDS, the accumulator rows F_*, the groups A_*, acc_groups); stubbed once, in
# metrics.pyi, where quantlab uses them (quantlab.metrics)
from quantlab._kernels.metrics import (
    FIELDS as FIELDS, F_N as F_N, F_MEAN as F_MEAN, F_M2 as F_M2, F_M3 as F_M3,
    F_M4 as F_M4, F_MIN as F_MIN, F_MAX as F_MAX, F_DOWN2 as F_DOWN2, F_WEALTH as F_WEALTH,
    F_PEAK as F_PEAK, F_MAX_DD as F_MAX_DD, F_DD_PEAK as F_DD_PEAK,
    F_DD_TROUGH_K as F_DD_TROUGH_K, F_RECOVERY as F_RECOVERY, F_UW as F_UW,
    F_UW_MAX as F_UW_MAX, F_N_POS as F_N_POS, F_N_NONZERO as F_N_NONZERO,
    F_SUM_POS as F_SUM_POS, F_SUM_NEG as F_SUM_NEG, F_ST_Y as F_ST_Y, F_ST_MK as F_ST_MK,
    F_ST_MY as F_ST_MY, F_ST_CKK as F_ST_CKK, F_ST_CYY as F_ST_CYY, F_ST_CKY as F_ST_CKY,
    F_P_N as F_P_N, F_P_MR as F_P_MR, F_P_MB as F_P_MB, F_P_CRR as F_P_CRR,
    F_P_CBB as F_P_CBB, F_P_CRB as F_P_CRB, F_UP_N as F_UP_N, F_UP_WR as F_UP_WR,
    F_UP_WB as F_UP_WB, F_DN_N as F_DN_N, F_DN_WR as F_DN_WR, F_DN_WB as F_DN_WB,
    A_HIGHER as A_HIGHER, A_RANGE as A_RANGE, A_DOWN as A_DOWN, A_WEALTH as A_WEALTH,
    A_WINS as A_WINS, A_STABILITY as A_STABILITY, A_ALL as A_ALL, acc_groups as acc_groups,
)
