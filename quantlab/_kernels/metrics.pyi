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
    r: npt.NDArray[np.float64], qs: npt.NDArray[np.float64], tail: float
) -> npt.NDArray[np.float64]: ...
