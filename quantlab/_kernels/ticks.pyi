import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]

CHUNK: int
COLUMN_DTYPES: tuple[np.dtype, ...]
TICK_REJECTS: tuple[str, ...]
SKEW_CONFIRM: int
ORDER_REJECTS: tuple[str, ...]

class TickCore:
    ticks: int
    signals: int
    stale: int
    orders: int
    cash: int
    mtm2: int
    gross2: int
    peak2: int
    killed: bool
    open_positions: int
    rejected_ticks: int
    rejected_orders: int
    n_samples: int
    sample_every: int
    last_ts: memoryview
    n_ticks: memoryview
    mid2: memoryview
    fast: memoryview
    slow: memoryview
    ring: memoryview
    pos: memoryview
    samples: memoryview
    tick_rejects: memoryview
    order_rejects: memoryview
    def __init__(self, capacity: int, tick_size: float, fast_span: int, slow_span: int,
                 threshold: float, min_confidence: float, max_age: int, order_size: int,
                 max_position: int, max_order_notional: float, max_orders_per_second: int,
                 max_drawdown: float, max_positions: int, max_concentration: float,
                 concentration_base: float, second: int, sample_every: int,
                 max_samples: int, max_skew: int = ..., unit_ns: int = ...) -> None: ...
    def process(self, sym: I64, bid: I64, ask: I64, bsz: I64, asz: I64, ts: I64,
                check_risk: bool = True) -> I64: ...
    def process_columns(self, columns: list[npt.NDArray], scale: tuple[float, ...],
                        integral: tuple[bool, ...], exact: tuple[bool, ...],
                        check_risk: bool = True) -> I64: ...
    def process_dicts(self, ticks: list[dict], check_risk: bool = True) -> I64: ...

def quantise(x: npt.NDArray[np.float64], scale: float,
             integral: bool = False) -> npt.NDArray[np.int64]: ...
def parse_dicts(ticks: list[dict], tick_size: float,
                unit_ns: int = 1000) -> npt.NDArray[np.int64]: ...
