"""quantlab.measures against NumPy twins and hand calculations, on values (nolds 0.6.2,
antropy and PyInform parity: tests/parity/test_measures_peers.py)."""
import math

import numpy as np
import pytest
import xarray as xr

import quantlab as ql
import reference as ref

m = ql.measures


@pytest.fixture(scope="module")
def real():
    """Real daily returns and log prices of the first bundled stock (last 1000 days)."""
    close = ql.data.load()["close"].isel(asset=0)
    r = ql.data.returns(close).values[-1000:]
    return {"returns": r, "log_price": np.log(close.values[-1000:])}


def series(kind, real):
    if kind == "noise":
        return np.random.default_rng(7).normal(size=1000)
    return real[kind]


KINDS = ["noise", "returns", "log_price"]


# ---- one-shot measures vs the reference libraries -------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("kmax", [5, 10, 20])
def test_higuchi_equals_twin(kind, kmax, real):
    x = series(kind, real)
    assert m.higuchi_fd(x, kmax) == pytest.approx(ref.higuchi_fd(x, kmax), rel=1e-10)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("order", [2, 3])
def test_sample_entropy_equals_brute_force(kind, order, real):
    x = series(kind, real)[:600]
    r = 0.2 * np.std(x)
    assert m.sample_entropy(x, order) == pytest.approx(ref.sample_entropy(x, order, r),
                                                       rel=1e-12)
    assert m.sample_entropy(x, order, tolerance=0.5 * r) == pytest.approx(
        ref.sample_entropy(x, order, 0.5 * r), rel=1e-12)


def test_permutation_entropy_bandt_pompe_example():
    x = [4, 7, 9, 10, 6, 11, 3]
    assert m.permutation_entropy(x, order=2) == pytest.approx(0.918, abs=5e-4)
    assert m.permutation_entropy(x, order=3) == pytest.approx(1.522, abs=5e-4)


def test_transfer_entropy_pyinform_documented_example():
    xs = [0, 1, 1, 1, 1, 0, 0, 0, 0]
    ys = [0, 0, 1, 1, 1, 1, 0, 0, 0]
    assert m.transfer_entropy(xs, ys, k=2) == pytest.approx(0.6792696431662097, rel=1e-12)
    assert m.transfer_entropy(ys, xs, k=2) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("binning", ["width", "quantile"])
@pytest.mark.parametrize("bins", [2, 3, 10])
def test_float_inputs_are_binned_like_the_twin(binning, bins, real):
    x, y = real["returns"], np.roll(real["returns"], 1)
    sx, sy = ref.symbols(x, bins, binning), ref.symbols(y, bins, binning)
    assert m.shannon_entropy(x, bins=bins, binning=binning) == pytest.approx(
        ref.entropy_bits(sx), rel=1e-12)
    assert m.mutual_information(x, y, bins=bins, binning=binning) == pytest.approx(
        ref.mutual_information(sx, sy), rel=1e-10, abs=1e-12)
    assert m.transfer_entropy(y, x, k=2, bins=bins, binning=binning) == pytest.approx(
        ref.transfer_entropy(sy, sx, 2), rel=1e-10, abs=1e-12)


# ---- properties that hold by construction ---------------------------------------

def test_hurst_and_dfa_of_white_noise_and_random_walk():
    rng = np.random.default_rng(11)
    hs = [m.hurst(rng.normal(size=4096)) for _ in range(5)]
    assert np.mean(hs) == pytest.approx(0.5, abs=0.04)
    noise = rng.normal(size=4096)
    assert m.dfa(noise) == pytest.approx(0.5, abs=0.07)
    assert m.dfa(np.cumsum(noise)) == pytest.approx(1.5, abs=0.1)


def test_hurst_sees_persistence():
    # an AR(1) with phi = 0.5 has short memory but persistent increments at small scales
    rng = np.random.default_rng(2)
    e = rng.normal(size=4096)
    ar = np.empty_like(e)
    ar[0] = e[0]
    for t in range(1, e.size):
        ar[t] = 0.5 * ar[t - 1] + e[t]
    assert m.hurst(ar) > m.hurst(e) + 0.05


def test_lyapunov_of_the_logistic_map():
    def logistic(r, n=2000, x0=0.1234):
        x = np.empty(n)
        x[0] = x0
        for i in range(n - 1):
            x[i + 1] = r * x[i] * (1 - x[i])
        return x

    chaos = m.lyapunov_r(logistic(4.0), emb_dim=2, lag=1, min_tsep=5, trajectory_len=4)
    assert chaos == pytest.approx(math.log(2), rel=0.02)
    periodic = m.lyapunov_r(logistic(3.2), emb_dim=2, lag=1, min_tsep=5, trajectory_len=4)
    assert periodic <= 0


def test_higuchi_of_noise_and_line():
    assert m.higuchi_fd(np.random.default_rng(5).normal(size=4000)) == pytest.approx(2, abs=0.05)
    assert m.higuchi_fd(np.arange(1000.0)) == pytest.approx(1, abs=1e-6)


def test_transfer_entropy_finds_the_leader():
    rng = np.random.default_rng(9)
    leader = rng.normal(size=2000)
    follower = 0.8 * np.roll(leader, 1) + 0.6 * rng.normal(size=2000)
    follower[0] = 0.0
    forward = m.transfer_entropy(leader, follower)
    backward = m.transfer_entropy(follower, leader)
    assert forward > 0.2 and backward < 0.02


# ---- rolling forms equal the one-shot measure on every window --------------------

ROLLING = [
    ("hurst", {}, 128), ("dfa", {}, 100), ("dfa", {"overlap": True}, 100),
    ("higuchi_fd", {"kmax": 8}, 60), ("katz_fd", {}, 30),
    ("lyapunov_r", {"emb_dim": 3, "lag": 1, "min_tsep": 3, "trajectory_len": 5}, 60),
    ("sample_entropy", {"order": 2}, 60), ("permutation_entropy", {"order": 3}, 40),
    ("permutation_entropy", {"order": 4, "delay": 2, "normalize": True}, 50),
    ("shannon_entropy", {"bins": 5}, 40), ("shannon_entropy", {"bins": 4, "binning": "quantile"}, 40),
]


@pytest.fixture(scope="module")
def panel(equities):
    r = ql.data.returns(equities["close"]).isel(time=slice(-400, None))
    r[37:40, 1] = np.nan      # a hole: windows holding it are NaN
    return r


@pytest.mark.parametrize("name,params,window", ROLLING)
def test_rolling_equals_one_shot_on_every_window(name, params, window, panel):
    got = getattr(m, f"rolling_{name}")(panel, window, **params)
    assert got.dims == panel.dims and got.shape == panel.shape
    one = getattr(m, name)
    expect = ref.rolling_apply(lambda w: one(w, **params), panel.values, window)
    np.testing.assert_allclose(got.values, expect, rtol=1e-9, atol=1e-12)
    assert np.isnan(got.values[:window - 1]).all()
    assert np.isnan(got.values[37:37 + window + 2, 1]).all()


def test_rolling_two_series_measures_equal_one_shot(panel):
    market = panel.mean("asset")
    te = m.rolling_transfer_entropy(market, panel, 60, k=1)
    mi = m.rolling_mutual_information(panel, market, 60, bins=3, binning="width")
    assert te.dims == panel.dims
    for a in range(panel.sizes["asset"]):
        valid = ~np.isnan(panel.values[:, a])
        for t in range(59, panel.sizes["time"]):
            if valid[t - 59:t + 1].all():
                w = slice(t - 59, t + 1)
                assert te.values[t, a] == pytest.approx(
                    m.transfer_entropy(market.values[w], panel.values[w, a]), rel=1e-10)
                assert mi.values[t, a] == pytest.approx(m.mutual_information(
                    panel.values[w, a], market.values[w], bins=3, binning="width"), rel=1e-10,
                    abs=1e-12)
            else:
                assert np.isnan(te.values[t, a])


def test_rolling_on_dask_numpy_and_dataset_inputs(panel):
    expect = m.rolling_hurst(panel, 100)
    lazy = m.rolling_hurst(panel.chunk({"asset": 1, "time": 50}), 100)
    assert lazy.chunks is not None
    xr.testing.assert_allclose(lazy.compute(), expect)
    np.testing.assert_allclose(m.rolling_hurst(panel.values, 100), expect.values)
    ds = xr.Dataset({"r": panel, "label": ("asset", list("abcd"))})
    out = m.rolling_permutation_entropy(ds, 50)
    assert out["label"].equals(ds["label"])
    xr.testing.assert_allclose(out["r"], m.rolling_permutation_entropy(panel, 50))
    flipped = m.rolling_katz_fd(panel.transpose("asset", "time"), 30)
    assert flipped.dims == ("asset", "time")
    xr.testing.assert_allclose(flipped.transpose(*panel.dims), m.rolling_katz_fd(panel, 30))


def test_one_shot_accepts_series_and_dataarray_and_trims_nan_edges(real):
    import pandas as pd

    x = real["returns"]
    padded = np.concatenate([[np.nan, np.nan], x, [np.nan]])
    assert m.hurst(pd.Series(padded)) == m.hurst(x)
    assert m.katz_fd(xr.DataArray(padded, dims="time")) == m.katz_fd(x)


# ---- errors name the problem ---------------------------------------------------------

def test_bad_inputs_raise_clear_errors(real):
    x = real["returns"].copy()
    x[100] = np.nan
    with pytest.raises(ValueError, match="NaN inside"):
        m.dfa(x)
    with pytest.raises(ValueError, match="1-D"):
        m.hurst(np.ones((10, 2)))
    with pytest.raises(ValueError, match="at least two distinct block sizes"):
        m.hurst(np.ones(3))
    with pytest.raises(ValueError, match="needs at least"):
        m.lyapunov_r(np.ones(30))
    with pytest.raises(ValueError, match="symbols must be >= 0"):
        m.shannon_entropy(np.array([0, -1, 2]))
    with pytest.raises(ValueError, match="both as integer symbols or both as floats"):
        m.transfer_entropy(np.array([0, 1, 1]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="binning"):
        m.shannon_entropy(real["returns"], binning="log")
    with pytest.raises(ValueError, match="window"):
        m.rolling_hurst(xr.DataArray(real["returns"], dims="time"), 0)
    with pytest.raises(ValueError, match="dim='date'"):
        m.rolling_katz_fd(xr.DataArray(real["returns"], dims="time"), 10, dim="date")


def test_simd_builds_give_the_same_bits():
    from quantlab._kernels import LEVELS, cpu_level, load

    if LEVELS[cpu_level()] < LEVELS["v3"]:
        pytest.skip("this CPU runs the baseline build only")
    base, v3 = load("measures", "baseline"), load("measures", "v3")
    assert base.__name__ != v3.__name__ and m._k is load("measures")
    rng = np.random.default_rng(5)
    x = np.cumsum(rng.normal(size=(3, 700)), axis=1)
    x[1] = np.round(x[1])                   # ties for the neighbour search
    x[2, 300:340] = x[2, 299]               # a constant stretch
    nv, le = m._hurst_args(700, None, True)
    calls = [("roll_hurst", (252, nv, le, True)), ("roll_lyap", (300, 5, 2, 5, 10)),
             ("roll_lyap", (700, 10, 1, 10, 20)), ("roll_dfa", (200, np.array([4, 8, 16, 32]), False)),
             ("roll_higuchi", (100, 8)), ("roll_sampen", (120, 2, 0.5)),
             ("roll_permen", (50, 3, 1, True))]
    for name, args in calls:
        a, b = getattr(base, name)(x, *args), getattr(v3, name)(x, *args)
        assert np.isfinite(a).any()
        np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8), err_msg=name)
    for row in x:
        assert base.HurstPlan(700, nv, le)(row, True) == v3.HurstPlan(700, nv, le)(row, True)



@pytest.mark.parametrize("level,step", [(0.5, np.spacing(0.5)), (0.0, 1e-16), (3.0, 1e-9)])
def test_hurst_of_blocks_a_few_ulps_apart_after_a_volatile_stretch(level, step):
    # nolds' inputs (a logistic map settling on a fixed point): the prefix sums, centred
    # on the whole series' mean, rounded such blocks' variance to 0 (R/S inf, H NaN) or
    # to noise (stale prices times an adjustment: 0.34 for 0.44). A block's R/S is
    # affine-invariant, so blocks k * step + level score as the integers k (no block
    # straddles the two stretches: 64 and 320 are multiples of every size)
    rng = np.random.default_rng(3)
    loud, k = rng.normal(size=64), rng.integers(0, 3, 256).astype(float)
    x = np.r_[loud, level + step * k]
    want = ref.hurst(np.r_[loud, k], [8, 16, 32])
    assert m.hurst(x, nvals=[8, 16, 32]) == pytest.approx(want, rel=1e-12)
    got = m.rolling_hurst(np.c_[x, x], 320, nvals=[8, 16, 32])[-1]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_hurst_plan_is_for_one_length():
    plan = m._hurst_plan(100, None, True)
    assert plan.n == 100 and m._hurst_plan(100, None, True) is plan     # cached
    with pytest.raises(ValueError, match="plan is for series of 100 values, got 99"):
        plan(np.ones(99), True)
    with pytest.raises(ValueError, match="one log expectation per block size"):
        m._k.HurstPlan(100, np.array([10, 20]), np.zeros(3))


# ---- hardening: each test is named after a failure outside testers reproduced ---------

ONE_SHOT = {   # every one-shot measure, with parameters small enough for 300 points
    "hurst": lambda x: m.hurst(x), "dfa": lambda x: m.dfa(x),
    "higuchi_fd": lambda x: m.higuchi_fd(x), "katz_fd": lambda x: m.katz_fd(x),
    "lyapunov_r": lambda x: m.lyapunov_r(x, emb_dim=3, min_tsep=3, trajectory_len=5),
    "sample_entropy": lambda x: m.sample_entropy(x),
    "permutation_entropy": lambda x: m.permutation_entropy(x),
    "shannon_entropy": lambda x: m.shannon_entropy(x),
    "mutual_information": lambda x: m.mutual_information(x, x[::-1]),
    "transfer_entropy": lambda x: m.transfer_entropy(x, x[::-1]),
}
ROLLING_ALL = {
    "hurst": lambda x, w=100: m.rolling_hurst(x, w),
    "dfa": lambda x, w=100: m.rolling_dfa(x, w),
    "higuchi_fd": lambda x, w=50: m.rolling_higuchi_fd(x, w),
    "katz_fd": lambda x, w=50: m.rolling_katz_fd(x, w),
    "lyapunov_r": lambda x, w=60: m.rolling_lyapunov_r(x, w, emb_dim=3, min_tsep=3,
                                                       trajectory_len=5),
    "sample_entropy": lambda x, w=60: m.rolling_sample_entropy(x, w),
    "permutation_entropy": lambda x, w=50: m.rolling_permutation_entropy(x, w),
    "shannon_entropy": lambda x, w=50: m.rolling_shannon_entropy(x, w),
    "mutual_information": lambda x, w=50: m.rolling_mutual_information(x, x[::-1], w),
    "transfer_entropy": lambda x, w=50: m.rolling_transfer_entropy(x, x[::-1], w),
}


@pytest.fixture(scope="module")
def r300():
    return np.random.default_rng(0).normal(size=300)


@pytest.mark.parametrize("call", [
    lambda b: m.transfer_entropy(b, b, k=64),
    lambda b: m.transfer_entropy(b, b, k=299),
    lambda b: m.transfer_entropy(b, b[::-1], k=23),      # 2**23 * 4 > 2**24: first refused
    lambda b: m.rolling_transfer_entropy(b * 1.0, b * 1.0, 400, k=64, bins=2),
    lambda b: m.transfer_entropy(b * 0.5, b * 0.25, k=41),    # 3 bins: was "negative dims"
    lambda b: m.rolling_transfer_entropy(b * 0.5, b * 0.25, 400, k=41),
    lambda b: m.transfer_entropy(b * 0.5, b * 0.25, k=2, bins=300),
    lambda b: m.mutual_information(b * 0.5, b * 0.25, bins=5000),
    lambda b: m.rolling_mutual_information(b * 0.5, b * 0.25, 100, bins=5000),
])
def test_transfer_entropy_k64_binary_does_not_segfault(call):
    # bins**k overflowed in the kernel: count tables of size 0, then writes past them
    b = np.random.default_rng(1).integers(0, 2, 500)
    with pytest.raises(ValueError, match=r"exceed the 2\*\*24 \(16,777,216\) state limit"):
        call(b)


def test_transfer_entropy_largest_allowed_tables_equal_twin():
    rng = np.random.default_rng(2)
    b, c = rng.integers(0, 2, 400), rng.integers(0, 2, 400)
    assert m.transfer_entropy(b, c, k=22) == pytest.approx(ref.transfer_entropy(b, c, 22),
                                                           rel=1e-10, abs=1e-12)
    t = rng.integers(0, 3, 400)
    assert m.transfer_entropy(t, t[::-1], k=13) == pytest.approx(
        ref.transfer_entropy(t, t[::-1], 13), rel=1e-10)
    roll = m.rolling_transfer_entropy(b * 1.0, c * 1.0, 100, k=20, bins=2)
    sb, sc = ref.symbols(b[-100:], 2, "quantile"), ref.symbols(c[-100:], 2, "quantile")
    assert roll[-1] == pytest.approx(ref.transfer_entropy(sb, sc, 20), rel=1e-10)


def test_transfer_entropy_kernel_refuses_overflowing_tables_when_called_directly():
    x = np.zeros((1, 100))
    with pytest.raises(ValueError, match="exceeds 2\\*\\*24"):
        m._k.roll_transfer(x, x, 100, 64, 0, False, 2, 2)
    with pytest.raises(ValueError, match="bx \\* by"):
        m._k.roll_mutual(x, x, 100, 0, False, 5000, 5000)
    with pytest.raises(ValueError, match="window must be in"):
        m._k.roll_hurst(x, 10 ** 12, np.array([4, 8]), np.zeros(2), True)


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_permutation_entropy_of_int64_beyond_2_53_equals_small_ints(dtype):
    # float64 rounds x + 2**60 to multiples of 256: the patterns collapsed (-4.4e-16)
    x = np.random.default_rng(3).integers(0, 1000, 500)
    big = x.astype(dtype) + dtype(2 ** 60)
    expect = ref.permutation_entropy(x, 3, 1)
    assert expect > 2.5       # near log2(3!) = 2.585 for noise; was about 0
    for order, delay in [(3, 1), (4, 2)]:
        e = ref.permutation_entropy(x, order, delay)
        assert m.permutation_entropy(big, order, delay) == pytest.approx(e, rel=1e-12)
        assert m.permutation_entropy(x, order, delay) == pytest.approx(e, rel=1e-12)
    # a span beyond 2**53 too (ranks, not a shift)
    wide = x.astype(np.int64) * 2 ** 40 - 2 ** 62
    assert m.permutation_entropy(wide) == pytest.approx(expect, rel=1e-12)
    roll = m.rolling_permutation_entropy(np.c_[big, big // dtype(2)], 100)  # one dtype
    exp_roll = ref.permutation_entropy(x[-100:], 3, 1)
    assert roll[-1, 0] == pytest.approx(exp_roll, rel=1e-12)
    assert roll[-1, 1] == pytest.approx(exp_roll, rel=1e-12)
    da = xr.DataArray(big, dims="time")
    assert m.rolling_permutation_entropy(da, 100).values[-1] == pytest.approx(exp_roll,
                                                                             rel=1e-12)


def test_int64_timestamps_keep_their_differences_in_every_measure(r300):
    # shift-invariant measures of x + 2**60 (int64) equal those of x: integers are
    # shifted by their minimum exactly before the float conversion
    x = np.round(np.cumsum(r300) * 100).astype(np.int64) + 10 ** 6
    for name in ["hurst", "dfa", "higuchi_fd", "katz_fd", "lyapunov_r", "sample_entropy",
                 "permutation_entropy"]:
        f = ONE_SHOT[name]
        assert f(x + 2 ** 60) == pytest.approx(f(x.astype(float)), rel=1e-9, abs=1e-12), name


def test_shannon_entropy_of_wide_integer_range_counts_distinct_values():
    # a dense counter per value up to the max: 1e8 volumes took 2.1 s and 880 MB,
    # [0, 10**9] did not finish
    assert m.shannon_entropy(np.array([0, 10 ** 9])) == pytest.approx(1.0, rel=1e-15)
    assert m.shannon_entropy(np.array([2 ** 62, 0, 0, 2 ** 62])) == pytest.approx(1.0)
    vols = np.random.default_rng(4).integers(0, 10 ** 8, 250)
    vols[:50] = vols[50]                                      # repeats
    assert m.shannon_entropy(vols) == pytest.approx(ref.entropy_bits(vols), rel=1e-12)
    assert m.shannon_entropy(vols.astype(np.uint64)) == pytest.approx(
        ref.entropy_bits(vols), rel=1e-12)
    ids = vols % 7 * 10 ** 12
    assert m.mutual_information(vols, ids) == pytest.approx(
        ref.mutual_information(vols, ids), rel=1e-10)
    assert m.transfer_entropy(ids, ids[::-1], k=2) == pytest.approx(
        ref.transfer_entropy(ids, ids[::-1], 2), rel=1e-10, abs=1e-12)
    roll = m.rolling_shannon_entropy(np.c_[vols, vols % 3], 60)
    assert roll[-1, 0] == pytest.approx(ref.entropy_bits(vols[-60:]), rel=1e-12)
    assert roll[-1, 1] == pytest.approx(ref.entropy_bits(vols[-60:] % 3), rel=1e-12)


@pytest.mark.parametrize("name", sorted(ONE_SHOT))
def test_inf_in_a_series_is_refused_not_a_wrong_number(name, r300):
    # shannon_entropy with one inf returned 0.0 (every value in the first bin)
    for pos, v in [(150, np.inf), (0, -np.inf), (299, np.inf)]:
        x = r300.copy()
        x[pos] = v
        with pytest.raises(ValueError, match="infinite"):
            ONE_SHOT[name](x)


@pytest.mark.parametrize("name", sorted(ROLLING_ALL))
def test_rolling_windows_holding_inf_are_nan(name, r300):
    x = r300.copy()
    x[150] = np.inf
    got = ROLLING_ALL[name](x)
    clean = ROLLING_ALL[name](np.where(np.arange(300) == 150, np.nan, x))
    np.testing.assert_array_equal(got, clean)
    assert np.isnan(got[150:200]).all() and not np.isnan(got[-1])


@pytest.mark.parametrize("nvals", [[2, 3], [2, 4, 8], [3, 6, 12], [8, 8], [8], [],
                                   [4.5, 8], [[4, 8], [16, 32]], [4, 2 ** 62], [-5, 4]])
def test_dfa_nvals_too_small_for_a_line_fit_is_refused(nvals, r300):
    # a line through 2 points fits exactly: dfa(r, nvals=[2, 3]) returned 46.5 (noise)
    with pytest.raises(ValueError, match="nvals"):
        m.dfa(r300, nvals=nvals)
    with pytest.raises(ValueError, match="nvals"):
        m.rolling_dfa(r300, 100, nvals=nvals)


def test_dfa_smallest_allowed_nvals_equal_twin(r300):
    for nv, ov in [([4, 5], False), ([4, 6, 9, 13], False), ([4, 8, 16], True)]:
        assert m.dfa(r300, nvals=nv, overlap=ov) == pytest.approx(
            ref.dfa(r300, nv, ov), rel=1e-9)


@pytest.mark.parametrize("nvals", [[10, 10], [1, 10], [10.5, 20], [0, 10], [10, 2 ** 62]])
def test_hurst_degenerate_block_sizes_are_refused(nvals, r300):
    with pytest.raises(ValueError, match="nvals"):
        m.hurst(r300, nvals=nvals)
    with pytest.raises(ValueError, match="nvals"):
        m.rolling_hurst(r300, 200, nvals=nvals)


BAD_DTYPES = {
    "complex": lambda r: r + 1j, "datetime": lambda r: np.arange(r.size).astype("M8[s]"),
    "timedelta": lambda r: np.arange(r.size).astype("m8[s]"),
    "object": lambda r: np.array(list(r), dtype=object), "str": lambda r: r.astype(str),
}


@pytest.mark.parametrize("kind", sorted(BAD_DTYPES))
@pytest.mark.parametrize("name", sorted(ONE_SHOT))
def test_complex_and_datetime_input_is_refused_by_every_measure(name, kind, r300):
    x = BAD_DTYPES[kind](r300)
    with pytest.raises(TypeError):
        ONE_SHOT[name](x)
    with pytest.raises(TypeError):
        ROLLING_ALL[name](x)
    with pytest.raises(TypeError):
        ROLLING_ALL[name](xr.DataArray(x, dims="time"))


VIEWS = {
    "float32": lambda r: r.astype(np.float32).astype(np.float64),   # expected: same rounding
    "fortran": lambda r: np.asfortranarray(np.c_[r, r])[:, 1],
    "strided": lambda r: np.repeat(r, 3)[::3],
    "reversed": lambda r: r[::-1].copy()[::-1],
}


@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize("name", sorted(ONE_SHOT))
def test_float32_fortran_strided_and_reversed_views_give_the_contiguous_value(name, view,
                                                                            r300):
    x = VIEWS[view](r300)
    expect = ONE_SHOT[name](np.ascontiguousarray(x, dtype=np.float64))
    got = ONE_SHOT[name](r300.astype(np.float32) if view == "float32" else x)
    assert got == pytest.approx(expect, rel=1e-12, abs=1e-15) or (
        np.isnan(got) and np.isnan(expect))
    roll = ROLLING_ALL[name](r300.astype(np.float32) if view == "float32" else x)
    np.testing.assert_allclose(roll, ROLLING_ALL[name](np.ascontiguousarray(x)),
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", sorted(ONE_SHOT))
def test_empty_length_one_and_all_nan_input_raise_or_give_nan(name):
    for x in (np.array([]), np.array([1.0]), np.full(300, np.nan), []):
        if np.size(x) == 1 and name in ("shannon_entropy", "mutual_information"):
            assert ONE_SHOT[name](x) == 0.0      # one observation: one certain symbol
            continue
        with pytest.raises(ValueError):
            ONE_SHOT[name](x)
        got = ROLLING_ALL[name](np.asarray(x, dtype=float))
        assert got.shape == np.shape(x) and np.isnan(got).all()
    assert ROLLING_ALL[name](np.empty((0, 3))).shape == (0, 3)
    assert ROLLING_ALL[name](np.empty((300, 0))).shape == (300, 0)


@pytest.mark.parametrize("name", sorted(ONE_SHOT))
def test_bool_and_int_input_are_accepted(name):
    rng = np.random.default_rng(6)
    b = rng.random(300) < 0.5
    i = np.cumsum(rng.integers(-3, 4, 300))
    i -= i.min()
    for x in (b, i):
        got = ONE_SHOT[name](x)
        if name in ("shannon_entropy", "mutual_information", "transfer_entropy"):
            continue    # integer symbols: checked against the twin elsewhere
        assert got == pytest.approx(ONE_SHOT[name](x.astype(float)), rel=1e-12,
                                    abs=1e-15) or np.isnan(got)
    assert m.shannon_entropy(b) == pytest.approx(ref.entropy_bits(b.astype(int)), rel=1e-12)


@pytest.mark.parametrize("name", sorted(ROLLING_ALL))
def test_rolling_window_longer_than_series_is_all_nan_without_allocating(name, r300):
    # buffers are sized by the window: rolling_hurst(x, 10**12) tried to allocate 32 TB
    if name == "hurst":
        got = m.rolling_hurst(r300, 10 ** 12)
    else:
        got = ROLLING_ALL[name](r300, 10 ** 12)
    assert got.shape == r300.shape and np.isnan(got).all()


def test_rolling_lyapunov_in_chunks_equals_one_call(monkeypatch):
    # the distance band of a long rolling call is bounded: chunks give the same values
    x = np.cumsum(np.random.default_rng(8).normal(size=(2, 400)), axis=1).T
    whole = m.rolling_lyapunov_r(x, 80, emb_dim=3, min_tsep=3, trajectory_len=5)
    monkeypatch.setattr(m, "_BAND_LIMIT", 2000)
    chunked = m.rolling_lyapunov_r(x, 80, emb_dim=3, min_tsep=3, trajectory_len=5)
    np.testing.assert_array_equal(chunked, whole)
    assert np.isfinite(whole[79:]).all()


@pytest.mark.parametrize("call,match", [
    (lambda x: m.sample_entropy(x, order=2 ** 62), "order"),
    (lambda x: m.rolling_sample_entropy(x, 50, order=2 ** 62), "order"),
    (lambda x: m.rolling_sample_entropy(x, 50, order=49), "order"),
    (lambda x: m.sample_entropy(x, tolerance=np.nan), "tolerance"),
    (lambda x: m.sample_entropy(x, tolerance=-1), "tolerance"),
    (lambda x: m.permutation_entropy(x, order=11), "order"),
    (lambda x: m.rolling_permutation_entropy(x, 50, order=3, delay=2 ** 40), "too short"),
    (lambda x: m.lyapunov_r(x, emb_dim=2 ** 62), "needs at least"),
    (lambda x: m.lyapunov_r(x, lag=2 ** 62), "needs at least"),
    (lambda x: m.lyapunov_r(x, min_tsep=2 ** 62), "needs at least"),
    (lambda x: m.lyapunov_r(x, trajectory_len=2 ** 62), "needs at least"),
    (lambda x: m.rolling_lyapunov_r(x, 300, emb_dim=2 ** 62), "needs at least"),
    (lambda x: m.lyapunov_r(x, tau=0), "tau"),
    (lambda x: m.higuchi_fd(x, kmax=2 ** 62), "kmax"),
    (lambda x: m.rolling_higuchi_fd(x, 50, kmax=26), "kmax"),
    (lambda x: m.shannon_entropy(x, bins=2 ** 40), "bins"),
    (lambda x: m.rolling_shannon_entropy(x, 50, bins=0), "bins"),
    (lambda x: m.rolling_katz_fd(x, 0), "window"),
    (lambda x: m.rolling_transfer_entropy(x, x, 3, k=3), "window"),
    (lambda x: m.transfer_entropy(x, x, k=0), "k"),
])
def test_bad_parameters_name_the_parameter_and_limit(call, match, r300):
    with pytest.raises((ValueError, TypeError), match=match):
        call(r300)


def test_width_binning_of_range_beyond_float_max_does_not_crash():
    # hi - lo overflowed to inf: inf/inf = NaN cast to a bin index wrote out of bounds
    x = np.array([-1e308, 0.0, 1e308, 1e308])
    assert m.shannon_entropy(x, bins=2) == pytest.approx(ref.entropy_bits([0, 1, 1, 1]))
    assert m.rolling_shannon_entropy(x, 3, bins=2)[-1] == pytest.approx(
        ref.entropy_bits([0, 1, 1]))


@pytest.mark.parametrize("name", sorted(ONE_SHOT))
def test_huge_and_tiny_values_give_the_value_at_unit_scale(name, r300):
    # squares of 1e300 overflowed, of 1e-300 underflowed: hurst, dfa and lyapunov_r
    # gave NaN, sample_entropy -0.0 or NaN, lyapunov_r -inf; every measure is
    # scale-invariant
    expect = ONE_SHOT[name](r300)
    roll = ROLLING_ALL[name](r300)
    for c in (2.0 ** 1000, 2.0 ** -1000, 1e300, 1e-300):
        exact = c in (2.0 ** 1000, 2.0 ** -1000)
        assert ONE_SHOT[name](r300 * c) == pytest.approx(expect, rel=0 if exact else 1e-9,
                                                         abs=1e-12)
        np.testing.assert_allclose(ROLLING_ALL[name](r300 * c), roll, rtol=0 if exact else 1e-9,
                                   atol=1e-12)
    r = 0.2 * np.std(r300)
    assert m.sample_entropy(r300 * 1e300, tolerance=r * 1e300) == pytest.approx(
        m.sample_entropy(r300, tolerance=r), rel=1e-9)


@pytest.mark.parametrize("name", sorted(ROLLING_ALL))
def test_rolling_window_beyond_int64_is_refused(name, r300):
    # rolling_hurst(x, 2**70) failed inside np.log with a TypeError about 'int'
    with pytest.raises(ValueError, match=r"window must be an integer in \[1, "):
        ROLLING_ALL[name](r300, 2 ** 70)


def test_rolling_permutation_entropy_of_constant_window_is_not_negative():
    # the sliding Σ c·log2 c left -8.9e-16 on constant windows (one-shot gave 0.0)
    x = np.r_[np.random.default_rng(9).normal(size=100), np.ones(100)]
    got = m.rolling_permutation_entropy(x, 50)
    assert (got[49:] >= 0).all() and (got[-50:] == 0.0).all()


def test_peer_libraries_are_skipped_per_test_not_per_module():
    # a module-level importorskip of nolds/antropy/pyinform skipped every measures test
    # (the NumPy-reference ones too) when one optional peer was missing
    import ast

    tree = ast.parse(open(__file__).read())
    for node in tree.body:       # module-level statements, with blocks included
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            continue
        for sub in ast.walk(node):
            assert not (isinstance(sub, ast.Attribute) and sub.attr == "importorskip"), (
                f"module-level importorskip at line {sub.lineno}")


# ---- quantile binning: equal values share a bin (outside tester, finding 1) ---------

def _quantile_symbols(x, bins):
    return ref.symbols(x, bins, "quantile")   # ties averaged


def test_quantile_binning_constant_series_has_zero_entropy_and_information():
    noise = np.random.default_rng(0).normal(size=300)
    ones = np.ones(300)
    m = ql.measures
    assert m.shannon_entropy(ones, bins=10, binning="quantile") == 0.0
    assert m.mutual_information(ones, noise, bins=10) == 0.0           # was 0.158
    assert m.mutual_information(ones, noise) == 0.0                    # default, was 0.0089
    assert m.mutual_information(noise, ones, bins=4, binning="quantile") == 0.0
    assert m.transfer_entropy(ones, noise) == 0.0
    assert m.transfer_entropy(ones, noise, k=2, bins=4) == 0.0
    # rolling forms, constant windows inside a varying series
    x = np.concatenate([noise[:50], ones[:100], noise[50:100]])
    y = noise[100:300]
    da = xr.DataArray(x, dims=["time"])
    h = m.rolling_shannon_entropy(da, 40, bins=5, binning="quantile").values
    mi = m.rolling_mutual_information(da, xr.DataArray(y, dims=["time"]), 40).values
    te = m.rolling_transfer_entropy(da, xr.DataArray(y, dims=["time"]), 40).values
    const = slice(50 + 39, 150)     # windows wholly inside the constant stretch
    np.testing.assert_array_equal(h[const], 0.0)
    np.testing.assert_array_equal(mi[const], 0.0)
    np.testing.assert_array_equal(te[const], 0.0)


@pytest.mark.parametrize("bins", [2, 3, 7])
def test_quantile_binning_ties_share_a_bin_matches_numpy_reference(bins):
    rng = np.random.default_rng(5)
    x = np.round(rng.normal(size=240), 0)        # a handful of values, many ties
    y = np.round(rng.normal(size=240) + 0.5 * x, 1)
    sx, sy = _quantile_symbols(x, bins), _quantile_symbols(y, bins)
    for v, s in ((x, sx), (y, sy)):   # equal values -> equal symbols
        assert all(np.unique(s[v == val]).size == 1 for val in np.unique(v))
    m = ql.measures
    assert m.shannon_entropy(x, bins=bins, binning="quantile") == pytest.approx(
        ref.entropy_bits(sx), abs=1e-12)
    assert m.mutual_information(x, y, bins=bins) == pytest.approx(
        ref.mutual_information(sx, sy), abs=1e-12)
    assert m.transfer_entropy(x, y, k=2, bins=bins) == pytest.approx(
        ref.transfer_entropy(sx, sy, 2), abs=1e-12)
    # rolling: every window binned anew by the same rule
    w = 60
    got = m.rolling_mutual_information(xr.DataArray(x, dims=["time"]),
                                       xr.DataArray(y, dims=["time"]), w, bins=bins).values
    want = [ref.mutual_information(_quantile_symbols(x[t - w + 1:t + 1], bins),
                                   _quantile_symbols(y[t - w + 1:t + 1], bins))
            for t in range(w - 1, x.size)]
    np.testing.assert_allclose(got[w - 1:], want, atol=1e-12)
    got = m.rolling_transfer_entropy(x[:, None], y[:, None], w, k=1, bins=bins)[:, 0]
    want = [ref.transfer_entropy(_quantile_symbols(x[t - w + 1:t + 1], bins),
                                 _quantile_symbols(y[t - w + 1:t + 1], bins), 1)
            for t in range(w - 1, x.size)]
    np.testing.assert_allclose(got[w - 1:], want, atol=1e-12)
    got = m.rolling_shannon_entropy(x, w, bins=bins, binning="quantile")
    want = [ref.entropy_bits(_quantile_symbols(x[t - w + 1:t + 1], bins))
            for t in range(w - 1, x.size)]
    np.testing.assert_allclose(got[w - 1:], want, atol=1e-12)


# ---- sample entropy's default r at a high price level (outside tester, finding 2) ---


# ---- empty input (outside tester, finding 3) ---------------------------------------

_ROLLING_MEASURES = [n for n in ql.measures.__all__ if n.startswith("rolling_")]


@pytest.mark.parametrize("name", _ROLLING_MEASURES)
@pytest.mark.parametrize("shape", [(0,), (0, 3), (50, 0)])
@pytest.mark.parametrize("kind", ["numpy", "dataarray", "dask"])
def test_rolling_measure_empty_input_returns_empty_result(name, shape, kind):
    fn = getattr(ql.measures, name)
    a = np.empty(shape)
    dims = ["time", "asset"][:len(shape)]
    x = a if kind == "numpy" else xr.DataArray(a, dims=dims, name="r", attrs={"u": 1})
    if kind == "dask":
        x = x.chunk()
    out = fn(x, x, 100) if name in ("rolling_mutual_information",
                                    "rolling_transfer_entropy") else fn(x, 100)
    if kind != "numpy":
        assert out.dims == x.dims
        out = out.values
    assert out.shape == shape and out.dtype == np.float64


# ---- one bridge (quantlab/_apply.py) ------------------------------------------------

def _spy_bridge(monkeypatch):
    """Record every call of the bridge's entry point (and still run it)."""
    import quantlab._apply as bridge
    calls, real = [], bridge.apply

    def spy(kernel, *inputs, **kw):
        calls.append(kw.get("layout", "time"))
        return real(kernel, *inputs, **kw)

    monkeypatch.setattr(bridge, "apply", spy)
    return calls


@pytest.mark.parametrize("name", sorted(ROLLING_ALL))
@pytest.mark.parametrize("kind", ["numpy", "dataarray"])
def test_every_rolling_measure_goes_through_the_bridge(name, kind, monkeypatch, r300):
    # measures had its own apply_ufunc path (_rolling/_panel) beside quantlab/_apply.py
    x = r300 if kind == "numpy" else xr.DataArray(r300, dims="time")
    want = np.asarray(ROLLING_ALL[name](x))
    calls = _spy_bridge(monkeypatch)
    got = np.asarray(ROLLING_ALL[name](x))
    assert calls == ["series"]
    np.testing.assert_array_equal(got, want)


def test_rolling_measure_of_dataset_without_dim_is_refused():
    # measures returned the Dataset unchanged, rolling raised: the bridge raises for both
    ds = xr.Dataset({"a": ("asset", np.arange(3.0))})
    with pytest.raises(ValueError, match="dim='time' is not a dimension"):
        m.rolling_katz_fd(ds, 10)


def test_rolling_measure_two_series_broadcast_numpy_index_against_panel():
    # a (time,) source against a (time, asset) target broadcasts with time aligned
    rng = np.random.default_rng(3)
    src, tgt = rng.normal(size=120), rng.normal(size=(120, 3))
    got = m.rolling_transfer_entropy(src, tgt, 60)
    assert got.shape == (120, 3)
    for j in range(3):
        np.testing.assert_array_equal(got[:, j], m.rolling_transfer_entropy(src, tgt[:, j], 60))
    assert got[-1, 1] == m.transfer_entropy(src[-60:], tgt[-60:, 1])


@pytest.mark.parametrize("fn,lo", [(lambda w: m.rolling_katz_fd(np.ones(50), w), 3),
                                   (lambda w: m.rolling_transfer_entropy(
                                       np.ones(50), np.ones(50), w, k=3), 4)])
def test_rolling_measure_window_below_the_measures_minimum_names_the_range(fn, lo):
    # katz_fd and transfer_entropy had their own if/raise ladders ("needs window >= 2")
    with pytest.raises(ValueError, match=rf"window must be an integer in \[{lo}, 4611"):
        fn(lo - 1)


@pytest.mark.parametrize("kernel", ["mutual", "transfer"])
def test_two_series_kernel_with_panels_of_different_shapes_is_refused(kernel):
    # the window driver reads y at x's offsets: a shorter y was read out of bounds
    x, y = np.zeros((2, 100)), np.zeros((2, 60))
    args = (0, False, 2, 2) if kernel == "mutual" else (1, 0, False, 2, 2)
    with pytest.raises(ValueError, match="differ in shape"):
        getattr(m._k, f"roll_{kernel}")(x, y, 50, *args)
    with pytest.raises(ValueError, match="differ in shape"):
        getattr(m._k, f"roll_{kernel}")(x, np.zeros((1, 100)), 50, *args)


def test_window_driver_values_equal_one_shot_measures_at_every_window_end():
    # the one nogil driver must hand each measure exactly the window ending at t
    x = np.random.default_rng(11).normal(size=(2, 90))
    x[1, 40] = np.nan
    for roll, one in [(m.rolling_katz_fd, m.katz_fd), (m.rolling_sample_entropy, m.sample_entropy),
                      (m.rolling_higuchi_fd, m.higuchi_fd)]:
        got = roll(x.T, 30)
        for r in range(2):
            for t in range(29, 90):
                w = x[r, t - 29:t + 1]
                want = np.nan if np.isnan(w).any() else one(w)
                np.testing.assert_equal(got[t, r], want)
        assert np.isnan(got[:29]).all()
