from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

FIELDS: tuple[str, ...]

def accumulate(
    r: npt.NDArray[np.float64],
    logr: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
    required_return: float,
) -> npt.NDArray[np.float64]: ...
def quantiles(
    r: npt.NDArray[np.float64], qs: npt.NDArray[np.float64], tail: float, block: int = ...
) -> npt.NDArray[np.float64]: ...
def sums(r: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...
def downside(
    r: npt.NDArray[np.float64], required_return: float
) -> npt.NDArray[np.float64]: ...
def wealth(r: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...
def drawdown(r: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...

# the accumulator's rows (returns_acc.pxi cpdef enum F_*; FIELDS lists their names)
F_N: int
F_MEAN: int
F_M2: int
F_M3: int
F_M4: int
F_MIN: int
F_MAX: int
F_DOWN2: int
F_WEALTH: int
F_PEAK: int
F_MAX_DD: int
F_DD_PEAK: int
F_DD_TROUGH_K: int
F_RECOVERY: int
F_UW: int
F_UW_MAX: int
F_N_POS: int
F_N_NONZERO: int
F_SUM_POS: int
F_SUM_NEG: int
F_ST_Y: int
F_ST_MK: int
F_ST_MY: int
F_ST_CKK: int
F_ST_CYY: int
F_ST_CKY: int
F_P_N: int
F_P_MR: int
F_P_MB: int
F_P_CRR: int
F_P_CBB: int
F_P_CRB: int
F_UP_N: int
F_UP_WR: int
F_UP_WB: int
F_DN_N: int
F_DN_WR: int
F_DN_WB: int

# acc_add's statistic groups (returns_acc.pxi cpdef enum A_*): simulate's acc_need bits
A_HIGHER: int
A_RANGE: int
A_DOWN: int
A_WEALTH: int
A_WINS: int
A_STABILITY: int
A_ALL: int

def acc_groups(fields: Iterable[str]) -> int: ...
