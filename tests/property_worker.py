"""Property-based fuzzing of every compiled entry point, run in a child process.

``python tests/property_worker.py FAMILY [N]`` draws N random calls of the public
functions that reach a kernel of FAMILY (rolling, measures, metrics, backtest, data,
ticks): random shapes (empty and length 1 included), dtypes (float32/64, ints, bool),
layouts (C, Fortran, strided, reversed views), NaN and ±inf, windows and orders from 0
to beyond the length, extreme parameters. Each call must return a result of the right
shape or raise ValueError/TypeError (``ql.DataError`` is a ValueError); anything else
(IndexError, KeyError, ZeroDivisionError, MemoryError, SystemError, ...) is a failure.
A segfault or hang kills this process: ``tests/test_properties.py`` runs it in a
subprocess with a timeout, and each call is written to stderr before it runs, so the
last line names the crashing call.
"""
from __future__ import annotations

import os
import sys
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

warnings.simplefilter("ignore")
sys.setrecursionlimit(10_000)

import quantlab as ql  # noqa: E402  (after the warning filter)

ALLOWED = (ValueError, TypeError)
DTYPES = [np.float64, np.float32, np.int64, np.int32, np.int8, np.uint8, np.bool_]
# silently misread if accepted (imaginary part dropped, datetimes taken as counts): every
# entry point must refuse them
REFUSED = [np.complex128, "datetime64[ns]", "timedelta64[s]"]
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e300, -1e300, 5e-324, 1e9, 2.0**53 + 1]


@st.composite
def arrays(draw, ndim=None, min_len=0, max_len=40, max_cols=4, positive=False):
    """A 1-D or 2-D (time, column) array in a random dtype and memory layout."""
    ndim = ndim or draw(st.sampled_from([1, 2]))
    n = draw(st.integers(min_len, max_len))
    shape = (n,) if ndim == 1 else (n, draw(st.integers(1, max_cols)))
    dtype = draw(st.sampled_from(DTYPES * 3 + REFUSED))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["walk", "returns", "ints", "const", "level"]))
    size = int(np.prod(shape))
    if kind == "walk":
        base = 100 + np.cumsum(rng.standard_normal(size))
    elif kind == "returns":
        base = rng.standard_normal(size) * 0.02
    elif kind == "ints":
        base = rng.integers(-3, 4, size).astype(float)
    elif kind == "const":
        base = np.full(size, draw(st.sampled_from([0.0, 1.0, 1e9])))
    else:
        base = 1e9 + rng.standard_normal(size)
    if positive:
        base = np.abs(base) + 1.0
    if np.dtype(dtype).kind == "f" and size:
        # sprinkle special values at a few random places
        for _ in range(draw(st.integers(0, 3))):
            base[rng.integers(size)] = draw(st.sampled_from(SPECIAL))
    with np.errstate(all="ignore"):
        if np.dtype(dtype).kind in "mM":
            base = np.nan_to_num(base * 1e6, nan=0, posinf=0, neginf=0).astype(np.int64)
        elif np.dtype(dtype).kind in "iub":
            base = np.nan_to_num(base, nan=0, posinf=1, neginf=-1)
            info = np.iinfo(dtype) if dtype != np.bool_ else None
            base = base != 0 if info is None else np.clip(base, info.min, info.max)
        a = np.asarray(base).astype(dtype).reshape(shape)
    layout = draw(st.sampled_from(["C", "F", "strided", "reversed"]))
    if layout == "F":
        a = np.asfortranarray(a)
    elif layout == "strided":
        big = np.repeat(a, 2, axis=0)
        a = big[::2]
    elif layout == "reversed":
        a = a[::-1]
    return a


def windows(n):
    return st.sampled_from([0, 1, 2, 3, max(n, 1), n + 1, 10**9, -1])


def as_da(a):
    """A NumPy array as a (time, asset) DataArray."""
    import pandas as pd
    import xarray as xr

    time = pd.date_range("2020-01-01", periods=a.shape[0])
    if a.ndim == 1:
        return xr.DataArray(a, dims=["time"], coords={"time": time})
    return xr.DataArray(a, dims=["time", "asset"],
                        coords={"time": time, "asset": [f"A{i}" for i in range(a.shape[1])]})


# one draw -> (description, zero-argument call, expected leading shape or None)

ROLLING = ["sum", "mean", "var", "std", "zscore", "min", "max", "ewm_mean", "rank", "corr"]


@st.composite
def rolling_call(draw):
    a = draw(arrays(ndim=2))
    name = draw(st.sampled_from(ROLLING))
    w = draw(windows(a.shape[0]))
    kw = {}
    if draw(st.booleans()):
        kw["min_periods"] = draw(st.sampled_from([None, 0, 1, w, w + 1, -3]))
    if name in ("var", "std", "zscore") and draw(st.booleans()):
        kw["ddof"] = draw(st.sampled_from([0, 1, 2, 5]))
    x = as_da(a)
    return (f"rolling.{name}({a.dtype}{a.shape} {layout(a)}, {w}, {kw})",
            lambda: getattr(ql.rolling, name)(x, w, **kw), a.shape[0])


ONE_SHOT = {
    "hurst": lambda d: {},
    "dfa": lambda d: {"overlap": d(st.booleans())},
    "higuchi_fd": lambda d: {"kmax": d(st.sampled_from([0, 1, 2, 5, 50, 10**6]))},
    "katz_fd": lambda d: {},
    "lyapunov_r": lambda d: {"emb_dim": d(st.sampled_from([1, 2, 3, 10])),
                             "lag": d(st.sampled_from([0, 1, 2])),
                             "min_tsep": d(st.sampled_from([0, 1, 5])),
                             "trajectory_len": d(st.sampled_from([1, 2, 5, 20]))},
    "sample_entropy": lambda d: {"order": d(st.sampled_from([0, 1, 2, 3, 40]))},
    "permutation_entropy": lambda d: {"order": d(st.sampled_from([0, 1, 2, 3, 8, 13, 40])),
                                      "delay": d(st.sampled_from([0, 1, 3, 100])),
                                      "normalize": d(st.booleans())},
    "shannon_entropy": lambda d: {"bins": d(st.sampled_from([None, 0, 1, 2, 10, 10**7]))},
}
PAIRS = {
    "mutual_information": lambda d: {"bins": d(st.sampled_from([None, 0, 1, 2, 16, 10**6]))},
    "transfer_entropy": lambda d: {"k": d(st.sampled_from([0, 1, 2, 5, 41, 64, 299])),
                                   "bins": d(st.sampled_from([None, 1, 2, 3, 8]))},
}


@st.composite
def measures_call(draw):
    rolling = draw(st.booleans())
    pair = draw(st.booleans())
    table = PAIRS if pair else ONE_SHOT
    name = draw(st.sampled_from(sorted(table)))
    kw = table[name](draw)
    a = draw(arrays(ndim=2 if rolling else 1, max_len=60))
    args = [a]
    if pair:
        b = draw(arrays(ndim=a.ndim, min_len=a.shape[0], max_len=a.shape[0], max_cols=1))
        if a.ndim == 2:
            b = np.broadcast_to(b[:, :1], a.shape)
        args.append(b)
    if rolling:
        w = draw(windows(a.shape[0]))
        fn = getattr(ql.measures, "rolling_" + name)
        xs = [as_da(v) for v in args]
        return (f"measures.rolling_{name}({a.dtype}{a.shape} {layout(a)}, {w}, {kw})",
                lambda: fn(*xs, w, **kw), a.shape[0])
    fn = getattr(ql.measures, name)
    return (f"measures.{name}({a.dtype}{a.shape} {layout(a)}, {kw})",
            lambda: fn(*args, **kw), None)


METRICS_1 = ["sharpe_ratio", "sortino_ratio", "calmar_ratio", "max_drawdown", "annual_return",
             "annual_volatility", "downside_risk", "cum_returns_final", "tail_ratio",
             "stability_of_timeseries", "total_return", "recovery_time", "drawdown_duration",
             "win_rate", "profit_factor", "value_at_risk", "conditional_value_at_risk",
             "summary"]
METRICS_2 = ["alpha", "beta", "up_capture", "down_capture", "information_ratio",
             "tracking_error"]


@st.composite
def metrics_call(draw):
    a = draw(arrays())
    pair = draw(st.booleans())
    name = draw(st.sampled_from(METRICS_2 if pair else METRICS_1))
    kw = {}
    if name in ("value_at_risk", "conditional_value_at_risk"):
        kw["cutoff"] = draw(st.sampled_from([0.0, 0.01, 0.05, 0.5, 1.0]))
        kw["method"] = draw(st.sampled_from(["historical", "parametric", "cornish_fisher"]))
    if name in ("sharpe_ratio", "sortino_ratio", "annual_return", "annual_volatility") \
            and draw(st.booleans()):
        kw["annualization"] = draw(st.sampled_from([1, 12, 252, 365, 0.5]))
    args = [a]
    if pair:
        b = draw(arrays(ndim=a.ndim, min_len=a.shape[0], max_len=a.shape[0], max_cols=1))
        args.append(np.broadcast_to(b.reshape(a.shape[0], *([1] * (a.ndim - 1))),
                                    a.shape).copy())
    as_labelled = draw(st.booleans())
    if as_labelled:
        args = [as_da(v) for v in args]
    fn = getattr(ql.metrics, name)
    return (f"metrics.{name}({a.dtype}{a.shape} {layout(a)}, labelled={as_labelled}, {kw})",
            lambda: fn(*args, **kw), None)


@st.composite
def backtest_call(draw):
    n = draw(st.integers(0, 30))
    m = draw(st.integers(1, 3))
    close = draw(arrays(ndim=2, min_len=n, max_len=n, max_cols=m, positive=True))
    m = close.shape[1]
    sig = draw(arrays(ndim=2, min_len=n, max_len=n, max_cols=m))
    sig = np.broadcast_to(sig[:, :1], close.shape) if sig.shape[1] != m else sig
    import xarray as xr

    c = as_da(np.asarray(close, dtype=float))
    ds = xr.Dataset({"open": c, "high": c, "low": c, "close": c, "volume": c * 0 + 1e6})
    signal = as_da(np.asarray(sig))
    kw = {}
    opts = {
        "fees": [0.0, 0.001, 0.5, 1.0, 5.0, np.inf, np.nan, -0.1],
        "fixed_fees": [0.0, 1.0, 1e6, np.inf],
        "slippage": [0.0, 0.001, 0.99, 2.0, np.nan, -0.01],
        "max_leverage": [1.0, 2.0, 0.0, np.inf],
        "init_cash": [100_000, 1.0, 0.0, -5.0, 1e300],
        "execution": ["close", "next_open", "bogus"],
        "group": [False, True],
        "periods": [252, 1, 0, -1],
        "sl_stop": [None, 0.05, 0.0, 1.5],
        "tp_stop": [None, 0.1],
        "borrow_rate": [0.0, 0.02, -1.0],
    }
    for k, values in opts.items():
        if draw(st.booleans()):
            kw[k] = draw(st.sampled_from(values))
    return (f"backtest(close {close.dtype}{close.shape} {layout(close)}, signal {sig.dtype}, "
            f"{kw})", lambda: ql.backtest(ds, signal, **kw).metrics(), None)


@st.composite
def data_call(draw):
    import xarray as xr

    a = draw(arrays(ndim=2, max_len=20))
    v = as_da(np.asarray(a, dtype=float) if a.dtype.kind == "b" else a)
    which = draw(st.sampled_from(["validate", "validate_ohlc", "returns"]))
    if which == "validate":
        return f"data.validate(close {a.dtype}{a.shape})", \
            lambda: ql.data.validate(xr.Dataset({"close": v})), None
    if which == "returns":
        return f"data.returns({a.dtype}{a.shape})", lambda: ql.data.returns(v), a.shape[0]
    gap = abs(draw(st.sampled_from([0.0, 1.0, np.nan, -1.0])))
    lo = v - gap if a.dtype.kind in "biuf" else v
    ds = xr.Dataset({"open": v, "high": v, "low": lo, "close": v,
                     "volume": abs(v) if a.dtype.kind in "biuf" else v})
    return f"data.validate(ohlc {a.dtype}{a.shape})", lambda: ql.data.validate(ds), None


@st.composite
def ticks_call(draw):
    from quantlab.engine import TickEngine

    n = draw(st.integers(0, 50))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    big = [np.nan, np.inf, -1.0, 0.0, 1e17, 1.7e17, 1e300, 2.0**62, 1.5]
    bid = 100 + np.cumsum(rng.standard_normal(n)) * 0.01
    ask = bid + 0.01
    fields = {"symbol_id": rng.integers(0, 3, n).astype(float),
              "bid": bid, "ask": ask, "bid_size": rng.integers(1, 1000, n).astype(float),
              "ask_size": rng.integers(1, 1000, n).astype(float),
              "timestamp": np.cumsum(rng.integers(0, 1000, n)).astype(float)}
    if n:
        for _ in range(draw(st.integers(0, 4))):
            k = draw(st.sampled_from(sorted(fields)))
            fields[k][rng.integers(n)] = draw(st.sampled_from(big))
    as_dicts = draw(st.booleans())
    if as_dicts:
        ticks = [{k: fields[k][i] for k in fields} for i in range(n)]
    else:
        import pandas as pd

        ticks = pd.DataFrame(fields)

    def run():
        e = TickEngine()
        e.process_market_data(ticks)
        e.process_market_data(ticks)  # the same ticks again: all out of order
        return e

    return f"ticks(n={n}, dicts={as_dicts})", run, None


def layout(a):
    if a.ndim and a.strides[0] < 0:
        return "reversed"
    if a.flags.c_contiguous:
        return "C"
    return "F" if a.flags.f_contiguous else "strided"


FAMILIES = {"rolling": rolling_call, "measures": measures_call, "metrics": metrics_call,
            "backtest": backtest_call, "data": data_call, "ticks": ticks_call}


def check(desc, call, n_time):
    sys.stderr.write(desc + "\n")
    sys.stderr.flush()
    try:
        out = call()
    except ALLOWED:
        return
    except Exception as e:  # noqa: BLE001 -- the point: any other exception is a bug
        raise AssertionError(f"{desc} raised {type(e).__name__}: {e}") from e
    if any(str(np.dtype(t)) in desc for t in REFUSED):
        raise AssertionError(f"{desc} accepted a complex/datetime/timedelta input")
    if n_time is not None:
        assert out.sizes["time"] == n_time, f"{desc}: {out.sizes['time']} rows, not {n_time}"


def main(family, n):
    @settings(max_examples=n, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(FAMILIES[family]())
    def run(case):
        check(*case)

    run()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2
         else int(os.environ.get("QL_PROPERTY_EXAMPLES", 200)))
