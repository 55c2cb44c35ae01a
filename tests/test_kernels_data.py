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
    # a subnormal price (below DBL_MIN) has lost precision: refused as a price <= 0 is
    "subnormal_bar": lambda x: x[:, 12, 3].__setitem__(slice(0, 4), 1e-310),
    "subnormal_volume_is_valid": lambda x: x.__setitem__((4, 12, 3), 5e-324),
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


# ---- check_bars fast path (issue #32): a one-pass proof of validity, the exact scan
# only when something looks wrong; the result must be the exact scan's on every input.

ROLE_SETS = [[0, 1, 2, 3, 4], [0, 1, 2, 3], [3], [3, 4], [1, 2, 3], [4], [1, 3], [0, 3]]


def _plant(x, rng):
    """One fault of a random kind at a random bar (x: (role, time, asset), in place)."""
    _, n, m = x.shape
    t, a, v = rng.integers(n), rng.integers(m), rng.integers(5)
    kind = rng.integers(11)
    if kind == 0:     # NaN hole (a partial bar unless the whole bar goes)
        x[v, t, a] = np.nan
    elif kind == 1:   # whole bar missing
        x[:, t, a] = np.nan
    elif kind == 2:   # zero, negative or subnormal value (a subnormal volume is valid)
        x[v, t, a] = rng.choice([0.0, -1.0, -1e-300, -np.inf, 1e-310, 5e-324])
    elif kind == 3:   # +inf (or -inf) anywhere
        x[v, t, a] = rng.choice([np.inf, -np.inf])
    elif kind == 4:   # high < low
        x[1, t, a] = x[2, t, a] * 0.99
    elif kind == 5:   # close or open outside [low, high]
        x[rng.choice([0, 3]), t, a] = x[1, t, a] * 1.01
    elif kind == 6:
        x[rng.choice([0, 3]), t, a] = x[2, t, a] * 0.99
    elif kind == 7:   # negative volume (or 0, which is allowed)
        x[4, t, a] = rng.choice([-1.0, 0.0, -np.inf])
    elif kind == 8:   # close-only asset in a larger set (maybe with a bad close)
        x[[0, 1, 2, 4], :, a] = np.nan
    elif kind == 9:   # all-NaN asset, or not yet listed / delisted
        x[:, : rng.integers(n + 1), a] = np.nan
        x[:, n - rng.integers(n + 1):, a] = np.nan
    else:             # a variable missing for a whole asset (an open-less asset)
        x[v, :, a] = np.nan


def _layouts(p, rng):
    """The same (time, asset) panel in another memory layout (kind chosen at random)."""
    kind = rng.integers(4)
    if kind == 0:
        return np.ascontiguousarray(p)
    if kind == 1:
        return np.asfortranarray(p)
    if kind == 2:   # a strided view into a bigger buffer
        big = np.full((2 * p.shape[0], 3 * p.shape[1]), -7.0)
        big[::2, ::3] = p
        return big[::2, ::3]
    return np.ascontiguousarray(p[::-1, ::-1])[::-1, ::-1]   # negative strides


def test_check_bars_fast_path_equals_exact_scan_on_random_faulty_panels():
    rng = np.random.default_rng(32)
    proved = 0
    for i in range(600):
        n, m = int(rng.integers(1, 25)), int(rng.integers(1, 7))
        x = _bars(n, m)
        x[:, rng.random((n, m)) < 0.1] = np.nan   # whole bars missing (holidays)
        for _ in range(rng.integers(0, 4)):
            _plant(x, rng)
        keep = ROLE_SETS[rng.integers(len(ROLE_SETS))]
        if rng.random() < 0.3:   # float32 data, as the caller passes it (float64 copy)
            x = x.astype(np.float32).astype(np.float64)
        panels = [_layouts(x[r], rng) if r in keep else None for r in range(5)]
        *got, has = k.check_bars(*panels)
        *full, full_has = k._check_bars_full(*panels)
        want, want_has = ref.check_bars(*panels)
        msg = f"case {i}: roles {keep}\n{x}"
        assert tuple(got) == tuple(full) == want, msg
        np.testing.assert_array_equal(has, full_has, err_msg=msg)
        np.testing.assert_array_equal(has, want_has, err_msg=msg)
        if k._fast_proves_valid(*panels):
            proved += 1
            assert got[0] == 0, msg   # the fast pass never passes a bad panel
    assert 50 < proved < 550   # both paths were exercised


@pytest.mark.parametrize("roles", [[3], [3, 4], [0, 1, 2, 3], [0, 1, 2, 3, 4], [1, 2, 3], [4]])
@pytest.mark.parametrize("order", ["C", "F"])
def test_check_bars_clean_panel_is_proved_by_the_fast_pass_issue32(roles, order):
    # issue #32: ql.backtest spent ~20% in check_bars' exact scan on a clean panel; a
    # clean panel (with listings, delistings and holidays) now needs only the fast pass
    x = _bars(300, 40)
    x[:, :50, 3] = np.nan    # listed late
    x[:, 200:, 5] = np.nan   # delisted
    x[:, :, 7] = np.nan      # no data at all
    x[:, 17, :] = np.nan     # a holiday
    panels = [np.asarray(x[r], order=order) if r in roles else None for r in range(5)]
    assert k._fast_proves_valid(*panels)
    code, v, t, a, has = k.check_bars(*panels)
    assert (code, v, t, a) == (0, -1, -1, -1)
    want = np.zeros((40, 5), bool)
    want[:, roles] = True
    want[7] = False
    np.testing.assert_array_equal(has, want)
    # one bad value anywhere: the exact scan runs and names it
    x[roles[0], 250, 9] = -1.0
    panels = [np.asarray(x[r], order=order) if r in roles else None for r in range(5)]
    assert not k._fast_proves_valid(*panels)
    code, v, t, a, _ = k.check_bars(*panels)
    assert (k.CODE_NAMES[code], v, t, a) == (
        "negative_volume" if roles == [4] else "nonpositive", roles[0], 250, 9)


def test_check_bars_edge_shapes_equal_exact_scan():
    c = _bars(5, 3)[3]
    for p in (c[:0], c[:, :0], c[:0, :0], c[:1], c[:, :1]):
        got, full = k.check_bars(None, None, None, p, None), k._check_bars_full(None, None, None, p, None)
        assert got[:4] == full[:4] == (0, -1, -1, -1)
        np.testing.assert_array_equal(got[4], full[4])
    assert k.check_bars(None, None, None, None, None)[:4] == (0, -1, -1, -1)
    with pytest.raises(ValueError, match="different shapes"):
        k.check_bars(None, None, None, c, c[:2])


EDGE = [0.0, -0.0, -1e-300, 5e-324, 1e-300, 1e300, np.inf, -np.inf, np.nan, -1.0]


@pytest.mark.parametrize("order", ["C", "F"])
def test_check_bars_fast_path_edge_values_equal_exact_scan(order):
    # every boundary value in every variable of every role set: 0 and -0 are bad prices
    # but good volumes, denormals are positive, inf is refused, NaN makes a partial bar
    for keep in ROLE_SETS:
        for v in keep:
            for value in EDGE:
                x = _bars(6, 3)
                x[v, 4, 1] = value
                panels = [np.asarray(x[r], order=order) if r in keep else None for r in range(5)]
                *got, has = k.check_bars(*panels)
                *full, _ = k._check_bars_full(*panels)
                want, want_has = ref.check_bars(*panels)
                assert tuple(got) == tuple(full) == want, (keep, v, value)
                np.testing.assert_array_equal(has, want_has)
