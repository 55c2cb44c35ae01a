"""The data kernels equal their NumPy twins on generated inputs (one test per family)."""
import numpy as np
import pytest
import reference as ref

from quantlab._kernels import data as k

RNG = np.random.default_rng(7)


def _panels():
    n, m = 60, 5
    base = 100 * np.exp(np.cumsum(RNG.normal(0, 0.02, (n, m)), axis=0))
    holes = base.copy()
    holes[RNG.random((n, m)) < 0.15] = np.nan
    holes[:7, 2] = np.nan  # not yet listed
    yield "clean", base
    yield "holes", holes
    yield "all_nan_col", np.column_stack([base[:, :2], np.full(n, np.nan)])
    yield "one_row", base[:1]
    yield "empty", base[:0]


@pytest.mark.parametrize("name,prices", list(_panels()), ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_simple_returns_equals_reference(name, prices, dtype):
    got = k.simple_returns(np.ascontiguousarray(prices, dtype=dtype))
    assert got.dtype == dtype
    want = ref.simple_returns(prices.astype(dtype))
    # float32: p_t / p_last is rounded near 1, so the error of r is absolute (~eps32)
    tol = dict(rtol=0, atol=5e-7) if dtype == np.float32 else dict(rtol=1e-15, atol=0)
    np.testing.assert_allclose(got, want, **tol, equal_nan=True, err_msg=f"input {name}:\n{prices}")


def test_kernel_code_names_match_reference():
    assert tuple(k.CODE_NAMES) == ref.CODE_NAMES


def _bars(n=40, m=4):
    close = 50 * np.exp(np.cumsum(RNG.normal(0, 0.02, (n, m)), axis=0))
    high = close * (1 + RNG.uniform(0, 0.02, (n, m)))
    low = close * (1 - RNG.uniform(0, 0.02, (n, m)))
    open_ = low + (high - low) * RNG.uniform(0, 1, (n, m))
    volume = RNG.integers(0, 10_000, (n, m)).astype(float)
    return np.stack([open_, high, low, close, volume])


FAULTS = {
    "none": lambda x: None,
    "missing_bar": lambda x: x[:, 5, 1].__setitem__(slice(None), np.nan),
    "partial": lambda x: x.__setitem__((0, 9, 2), np.nan),
    "nonpositive": lambda x: x.__setitem__((2, 11, 0), 0.0),
    "negative_close": lambda x: x[:, 12, 3].__setitem__(slice(0, 4), -1.0),
    "high_below_low": lambda x: x.__setitem__((1, 13, 1), x[2, 13, 1] * 0.99),
    "close_above_high": lambda x: x.__setitem__((3, 14, 2), x[1, 14, 2] * 1.01),
    "open_below_low": lambda x: x.__setitem__((0, 15, 0), x[2, 15, 0] * 0.99),
    "negative_volume": lambda x: x.__setitem__((4, 16, 3), -5.0),
    "two_faults": lambda x: (x.__setitem__((4, 20, 0), -1.0), x.__setitem__((1, 18, 3), 1e-3)),
    "infinite": lambda x: (x.__setitem__((3, 25, 1), np.inf), x.__setitem__((1, 3, 2), 0.0)),
    # asset 2 has only close: it is checked on close alone, and a NaN close is no bar
    "close_only_asset": lambda x: (x.__setitem__(([0, 1, 2, 4], slice(None), 2), np.nan),
                                   x.__setitem__((3, 7, 2), np.nan)),
    "close_only_asset_bad": lambda x: (x.__setitem__(([0, 1, 2, 4], slice(None), 2), np.nan),
                                       x.__setitem__((3, 8, 2), -2.0)),
}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("roles", ["ohlcv", "ohlc", "close", "close_volume"])
def test_check_bars_equals_reference(fault, roles):
    x = _bars()
    FAULTS[fault](x)
    keep = {"ohlcv": [0, 1, 2, 3, 4], "ohlc": [0, 1, 2, 3], "close": [3],
            "close_volume": [3, 4]}[roles]
    # any strides: a transposed (asset, time) buffer read as (time, asset)
    panels = [np.asfortranarray(x[r]) if r in keep else None for r in range(5)]
    *got, has = k.check_bars(*panels)
    want, want_has = ref.check_bars(*panels)
    assert tuple(got) == want, f"{fault}/{roles}: kernel {got} != reference {want}"
    np.testing.assert_array_equal(has, want_has)
    if fault == "none":
        assert got[0] == 0
    if fault == "partial" and 0 in keep:
        assert ref.CODE_NAMES[got[0]] == "partial"
