"""ql.measures equals nolds, antropy and pyinform (moved from tests/test_measures.py);
each test skips without its peer (fixtures in tests/parity/conftest.py)."""
import numpy as np
import pytest
import reference as ref
import xarray as xr

import quantlab as ql
from test_measures import KINDS, _quantile_symbols, m, real, series


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("corrected", [True, False])
def test_hurst_equals_nolds(kind, corrected, real, nolds):
    x = series(kind, real)
    expect = nolds.hurst_rs(x, fit="poly", corrected=corrected)
    assert m.hurst(x, corrected=corrected) == pytest.approx(expect, rel=1e-9)


def test_hurst_nvals_and_ddof_equal_nolds(real, nolds):
    x = real["returns"]
    nv = [10, 20, 40, 80, 160]
    assert m.hurst(x, nvals=nv, unbiased=False) == pytest.approx(
        nolds.hurst_rs(x, nvals=nv, fit="poly", unbiased=False), rel=1e-9)


@pytest.mark.parametrize("corrected", [True, False])
def test_hurst_leaves_out_constant_blocks_as_nolds(corrected, real, nolds):
    # a stretch of zero returns (a market closed, a stale quote): nolds' blocks inside it
    # have a range of exactly 0 and are left out; prefix sums must not leave rounding
    # noise there (which gave 0.443 instead of 0.490 on such a window)
    x = real["returns"][:600].copy()
    x[200:260] = 0.0
    x[400:450] = x[399]      # a constant stretch that is not zero
    expect = nolds.hurst_rs(x[:399], fit="poly", corrected=corrected)
    assert m.hurst(x[:399], corrected=corrected) == pytest.approx(expect, rel=1e-9)
    got = m.rolling_hurst(x, 252, corrected=corrected)
    for t in (300, 399):
        assert got[t] == pytest.approx(
            nolds.hurst_rs(x[t - 251:t + 1], fit="poly", corrected=corrected), rel=1e-9)
    assert np.isfinite(got[260:]).all()


@pytest.mark.parametrize("kind", KINDS)
def test_dfa_equals_antropy_and_nolds(kind, real, nolds, antropy):
    x = series(kind, real)
    assert m.dfa(x) == pytest.approx(antropy.detrended_fluctuation(x), rel=1e-8)
    assert m.dfa(x) == pytest.approx(nolds.dfa(x, overlap=False, fit_exp="poly"), rel=1e-9)
    assert m.dfa(x, overlap=True) == pytest.approx(nolds.dfa(x, fit_exp="poly"), rel=1e-9)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("kmax", [5, 10, 20])
def test_higuchi_equals_antropy(kind, kmax, real, antropy):
    x = series(kind, real)
    assert m.higuchi_fd(x, kmax) == pytest.approx(antropy.higuchi_fd(x, kmax), rel=1e-8)


@pytest.mark.parametrize("kind", KINDS)
def test_katz_equals_antropy(kind, real, antropy):
    x = series(kind, real)
    assert m.katz_fd(x) == pytest.approx(antropy.katz_fd(x), rel=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("order", [2, 3])
def test_sample_entropy_equals_antropy(kind, order, real, antropy):
    x = series(kind, real)[:600]
    expect = antropy.sample_entropy(x, order=order)
    assert m.sample_entropy(x, order) == pytest.approx(expect, rel=1e-12)
    r = 0.2 * np.std(x)
    assert m.sample_entropy(x, order, tolerance=0.5 * r) == pytest.approx(
        antropy.sample_entropy(x, order=order, tolerance=0.5 * r), rel=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("order,delay", [(3, 1), (4, 1), (5, 2), (6, 3)])
@pytest.mark.parametrize("normalize", [False, True])
def test_permutation_entropy_equals_antropy(kind, order, delay, normalize, real, antropy):
    x = series(kind, real)
    expect = antropy.perm_entropy(x, order=order, delay=delay, normalize=normalize)
    got = m.permutation_entropy(x, order=order, delay=delay, normalize=normalize)
    assert got == pytest.approx(expect, rel=1e-12)


def test_permutation_entropy_ties_in_time_order(antropy):
    x = np.array([1.0, 1.0, 2.0, 2.0, 1.0, 3.0, 3.0, 0.0])   # ties everywhere
    assert m.permutation_entropy(x, order=3) == pytest.approx(
        antropy.perm_entropy(x, order=3), rel=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("params", [dict(emb_dim=10, lag=1, min_tsep=10, trajectory_len=20),
                                    dict(emb_dim=4, lag=2, min_tsep=5, trajectory_len=10)])
def test_lyapunov_equals_nolds(kind, params, real, nolds):
    x = series(kind, real)[:500]
    expect = nolds.lyap_r(x, fit="poly", **params)
    assert m.lyapunov_r(x, **params) == pytest.approx(expect, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("base", [2, 3, 5])
def test_transfer_entropy_equals_pyinform_and_twin(k, base, request):
    rng = np.random.default_rng(k * 10 + base)
    src = rng.integers(0, base, 800)
    tgt = np.where(rng.random(800) < 0.4, rng.integers(0, base, 800), np.roll(src, 1))
    got = m.transfer_entropy(src, tgt, k=k)
    assert got == pytest.approx(ref.transfer_entropy(src, tgt, k), rel=1e-10)
    pyinform = request.getfixturevalue("pyinform")     # skips here if it is missing
    assert got == pytest.approx(pyinform.transfer_entropy(src, tgt, k=k), rel=1e-10)


def test_mutual_information_and_shannon_equal_pyinform_and_twin(request):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 4, 1000)
    b = (a + rng.integers(0, 2, 1000)) % 4
    assert m.mutual_information(a, b) == pytest.approx(ref.mutual_information(a, b),
                                                       rel=1e-10)
    assert m.shannon_entropy(a) == pytest.approx(ref.entropy_bits(a), rel=1e-12)
    pyinform = request.getfixturevalue("pyinform")
    assert m.mutual_information(a, b) == pytest.approx(pyinform.mutual_info(a, b), rel=1e-10)
    d = pyinform.Dist(np.bincount(a).tolist())
    assert m.shannon_entropy(a) == pytest.approx(pyinform.shannon.entropy(d), rel=1e-12)


def test_quantile_binning_ties_match_pyinform_on_reference_symbols(pyinform):
    rng = np.random.default_rng(6)
    x = np.round(rng.normal(size=300), 0)
    y = np.round(np.roll(x, 1) + rng.normal(size=300), 0)
    sx, sy = _quantile_symbols(x, 3), _quantile_symbols(y, 3)
    assert ql.measures.mutual_information(x, y) == pytest.approx(
        pyinform.mutual_info(sx, sy), abs=1e-12)
    assert ql.measures.transfer_entropy(x, y, k=1) == pytest.approx(
        pyinform.transfer_entropy(sx, sy, k=1), abs=1e-12)


def test_sample_entropy_default_tolerance_is_stable_at_price_level_1e15(antropy):
    x = 1e15 + np.cumsum(np.random.default_rng(2).normal(size=500))
    got = ql.measures.sample_entropy(x)                     # was 0.2334
    assert got == pytest.approx(antropy.sample_entropy(x), abs=1e-12)
    assert got == pytest.approx(ql.measures.sample_entropy(x - 1e15), abs=1e-12)
    w = 200
    roll = ql.measures.rolling_sample_entropy(xr.DataArray(x, dims=["time"]), w).values
    for t in (w - 1, 350, 499):
        win = x[t - w + 1:t + 1]
        assert roll[t] == pytest.approx(antropy.sample_entropy(win), abs=1e-12)
        assert roll[t] == pytest.approx(
            ql.measures.sample_entropy(win - 1e15), abs=1e-12)
