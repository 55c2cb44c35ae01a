import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
Orders = tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], F64, F64, F64, npt.NDArray[np.int8]]

def simulate(
    close: F64,
    exec_price: F64,
    target: F64,
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
    stops: tuple[F64, F64, F64, F64, F64, F64] | None = None,  # open high low sl tp trail
) -> tuple[F64, F64, F64, Orders, npt.NDArray[np.int8]] | tuple[F64, F64]: ...

FIELDS: tuple[str, ...]  # rows of the metrics-only statistics (as metrics.FIELDS)
