"""Strategies on a dask-backed panel (issue #30): the signal equals the in-memory one, stays
lazy where the strategy's operations allow, and a strategy that computes in memory says
so in its docstring (a user streaming a store-backed panel must know)."""
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
