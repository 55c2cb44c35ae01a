"""Strategies on a dask-backed panel (issue #30): the signal equals the in-memory one, stays
lazy where the strategy's operations allow, and a strategy that computes in memory says
so in its docstring (a user streaming a store-backed panel must know)."""
import itertools

import numpy as np
import pytest

import quantlab as ql

PARAMS = {"factor_momentum": {"beta_window": 12, "lookback": 3},
          "info_theory": {"window": 60}, "complex_systems": {"window": 60}}


@pytest.fixture(scope="module")
def equities():
    return ql.data.load("equities").isel(time=slice(0, 700))


@pytest.mark.parametrize("name", ql.strategies.names())
def test_signal_of_a_chunked_panel_equals_the_in_memory_one(name, equities):
    s = ql.strategies.get(name, **PARAMS.get(name, {}))
    inputs = s.default_inputs(equities)
    full = s.signal(equities, **inputs)
    sig = s.signal(equities.chunk({"time": 150, "asset": 2}), **inputs)
    lazy = sig.chunks is not None
    got = sig.compute()
    assert got.dims == full.dims
    np.testing.assert_allclose(got.values, full.values, rtol=1e-12, atol=1e-14)
    doc = " ".join(type(s).__doc__.split())
    if not lazy:
        assert "in memory" in doc, f"{name} loads the panel: its docstring must say so"
    else:
        assert "in memory" not in doc, f"{name} stays lazy: its docstring says otherwise"


@pytest.mark.parametrize("bars", [1, 2, 30])
@pytest.mark.parametrize("name", ql.strategies.names())
def test_a_chunked_panel_shorter_than_a_lag_equals_the_in_memory_one(name, bars, equities):
    """A lag at least as long as the panel (every bar of a one-bar panel, a momentum
    lookback beyond 30 bars): xarray's shift of a dask array padded an empty rest, which
    dask divides by zero over (five strategies crashed with a bare ZeroDivisionError)."""
    s = ql.strategies.get(name, **PARAMS.get(name, {}))
    ds = equities.isel(time=slice(0, bars))
    inputs = s.default_inputs(ds)
    full = s.signal(ds, **inputs)
    got = s.signal(ds.chunk({"time": 1}), **inputs).compute()
    np.testing.assert_allclose(got.values, full.values, rtol=1e-12, atol=1e-14)


def test_shifted_equals_xarrays_shift_for_lazy_panels_of_any_length():
    import xarray as xr

    from quantlab.data import shifted
    for values in (np.arange(6.0).reshape(3, 2), np.array([[True, False]]),
                   np.array([[1, 2]])):
        x = xr.DataArray(values, dims=("time", "asset"), coords={"asset": ["a", "b"]},
                         name="p", attrs={"units": "USD"})
        for n, kw in itertools.product((-4, -1, 0, 1, 2, 3, 7), ({}, {"fill_value": 0})):
            want = x.shift(time=n, **kw)
            got = shifted(x.chunk(time=1), n, **kw)
            assert got.chunks is not None                      # still lazy
            xr.testing.assert_identical(got.compute(), want)
            xr.testing.assert_identical(shifted(x, n, **kw), want)
