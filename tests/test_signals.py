"""ql.signals: the boolean event checker is public and the one used everywhere (issue #26)."""
import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import quantlab as ql
from quantlab.backtesting import dispatch

ROOT = Path(__file__).resolve().parent.parent


def _events(values, asset=True):
    t = pd.date_range("2024-01-01", periods=len(values))
    a = xr.DataArray(np.asarray(values, dtype=bool), coords={"time": t})
    return a.expand_dims(asset=["X"], axis=1) if asset else a


def test_no_module_imports_a_private_name_from_signals():
    bad = []
    for f in (ROOT / "quantlab").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("signals"):
                bad += [f"{f.name}: {n.name}" for n in node.names if n.name.startswith("_")]
    assert bad == []
    assert "check_events" in ql.signals.__all__
    assert dispatch._bool is ql.signals.check_events     # one checker, not a copy


def test_check_events_returns_its_input_and_refuses_like_backtest():
    ev = _events([1, 0, 1])
    assert ql.signals.check_events(ev, "entries") is ev
    with pytest.raises(TypeError, match=r"^exits must be a boolean DataArray on \(time, asset"):
        ql.signals.check_events([True, False], "exits")
    with pytest.raises(TypeError, match="^entries must be boolean, got float64$"):
        ql.signals.check_events(ev.astype(float), "entries")
    with pytest.raises(ql.DataError, match="entries"):
        ql.signals.check_events(xr.DataArray([True, False], dims="time"), "entries")


@pytest.mark.parametrize("path", ["signals", "backtest"])
def test_entries_exits_messages_are_identical_on_both_paths(path):
    ds = ql.data.load().isel(time=slice(0, 5), asset=slice(0, 1))
    ent = xr.zeros_like(ds["close"], dtype=bool)
    call = (ql.signals.from_entries_exits if path == "signals"
            else lambda e, x: ql.backtest(ds, entries=e, exits=x))
    with pytest.raises(TypeError, match="^entries must be boolean, got int64$"):
        call(ent.astype(np.int64), ent)
    with pytest.raises(TypeError, match="^exits must be boolean, got float64$"):
        call(ent, ent.astype(float))
    with pytest.raises(ValueError, match="needs exits as well as entries"):
        call(ent, None)


def test_from_entries_exits_values_unchanged():
    got = ql.signals.from_entries_exits(_events([0, 1, 0, 1, 1]), _events([0, 0, 1, 0, 1]))
    np.testing.assert_array_equal(got.values[:, 0], [np.nan, 1.0, 0.0, 1.0, np.nan])
