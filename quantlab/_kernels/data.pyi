import numpy as np
import numpy.typing as npt

def simple_returns(prices: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]: ...
def check_bars(
    open_: npt.NDArray[np.float64] | None,
    high: npt.NDArray[np.float64] | None,
    low: npt.NDArray[np.float64] | None,
    close: npt.NDArray[np.float64] | None,
    volume: npt.NDArray[np.float64] | None,
) -> tuple[int, int, int, int, npt.NDArray[np.bool_]]: ...
CODE_NAMES: tuple[str, ...]
