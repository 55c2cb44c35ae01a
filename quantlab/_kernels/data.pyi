import numpy as np
import numpy.typing as npt

def simple_returns(prices: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]: ...
def check_bars(
    x: npt.NDArray[np.float64],
    i_open: int,
    i_high: int,
    i_low: int,
    i_close: int,
    i_volume: int,
) -> tuple[int, int, int, int]: ...
CODE_NAMES: tuple[str, ...]
