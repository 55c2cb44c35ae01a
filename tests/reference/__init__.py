"""Plain NumPy/Python twins of the Cython kernels (bottleneck's "slow" functions): slow,
obvious, and the definition the fast kernels are tested against. One module per kernel
family; the names are re-exported here, so tests keep writing ``import reference as ref``.
"""
from . import backtest  # noqa: F401  (ref.backtest.simulate: its names clash with others)
from .data import CODE_NAMES, check_bars, simple_returns  # noqa: F401
from .measures import (dfa, entropy_bits, higuchi_fd, hurst, katz_fd,  # noqa: F401
                       lyapunov_r, mutual_information, permutation_entropy, sample_entropy, symbols,
                       transfer_entropy)
from .metrics import (drawdown_duration, information_ratio, profit_factor,  # noqa: F401
                      recovery_time, tracking_error, wealth_path, win_rate)
from .rolling import (ewm_mean, rolling, rolling_apply, rolling_corr,  # noqa: F401
                      rolling_var_two_pass)
