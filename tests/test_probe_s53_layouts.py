"""Session 53, helper "layouts": the same numbers whatever container or memory layout
the data comes in (or a clear error), against the plain C-contiguous float64 result."""
import numpy as np
import pytest
import xarray as xr

import quantlab as ql


def test_integrity_reads_a_dataarray_by_its_time_dim_in_either_order():
    # a (trial, time) DataArray was read with its 40 trials as the rows: pbo 0.743 vs
    # 0.686, reality_check's SPA p-value 0.04 vs 0.25, without an error
    x = np.random.default_rng(1).normal(0.0003, 0.01, (400, 40))
    x[:, 3] += 0.002
    da = xr.DataArray(x, dims=("time", "trial"))
    got, want = ql.integrity.pbo(da.T, n_splits=8), ql.integrity.pbo(x, n_splits=8)
    assert got["pbo"] == want["pbo"]
    np.testing.assert_array_equal(got["logits"], want["logits"])
    assert ql.integrity.reality_check(da.T, reps=200) == ql.integrity.reality_check(x, reps=200)
