"""Session 60 review: plugins, registered metrics and pandas input, probed from outside."""
from __future__ import annotations

import sys
import threading
import time

import pytest

import quantlab as ql
from quantlab import _plugins

SLOW_PLUGIN = '''
import time
import numpy as np
import quantlab as ql

time.sleep(0.6)   # a slow import (a heavy dependency): other threads look up meanwhile


def {name}(r, periods):
    return np.nansum(r, axis=0)


ql.metrics.register("{name}", {name})
'''


@pytest.fixture
def plugins(monkeypatch, registry):
    monkeypatch.setattr(_plugins, "_done", set())
    monkeypatch.setattr(_plugins, "_loaded", set(), raising=False)
    return monkeypatch


def test_second_threads_first_lookup_waits_for_a_plugin_being_imported(tmp_path, plugins):
    # the entry was marked done before its import ran, and the lock-free check read that
    # mark: a second thread's look-up during the import returned at once, without the
    # plugin's metric (a sweep's or dask's worker thread: 'unknown objective')
    name = f"slow_{tmp_path.name.replace('-', '_')}"
    path = tmp_path / f"{name}.py"
    path.write_text(SLOW_PLUGIN.format(name=name))
    plugins.setenv("QUANTLAB_PLUGINS", str(path))
    seen = {}

    def look(i):
        time.sleep(0.2 * i)
        seen[i] = name in ql.metrics.registered()

    threads = [threading.Thread(target=look, args=(i,)) for i in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.modules.pop(name, None)
    assert seen == {0: True, 1: True}


def _total(r, periods):
    import numpy as np
    return np.nansum(r, axis=0)


@pytest.mark.parametrize("name", ["asset", "time", "asset_class", "start", "end"])
def test_register_refuses_the_results_coordinates_and_tear_sheet_rows(name, registry):
    # accepted before: res.metrics() then blamed a 'parameter dim', summary() and the
    # tear sheet raised xarray's MergeError; 'start'/'end' were a second Start/End row of
    # the tear sheet's summary table (its name column no longer a key)
    with pytest.raises(ValueError, match=rf"metric name '{name}' is taken by .*coordinate"):
        ql.metrics.register(name, _total)


def test_summary_refuses_a_registered_metric_named_as_a_param_dim(registry):
    import numpy as np
    import pandas as pd
    import xarray as xr

    r = xr.DataArray(np.random.default_rng(0).normal(0, 0.01, (50, 2)), dims=("time", "window"),
                     coords={"time": pd.date_range("2020", periods=50), "window": [20, 63]})
    ql.metrics.register("window", _total)
    # it returned the dim's labels [20, 63] as the metric 'window', silently
    with pytest.raises(ValueError, match=r"registered metric\(s\) \['window'\] share a name"):
        ql.metrics.summary(r)


PLUGIN = '''
import numpy as np
import quantlab as ql

ql.metrics.register("{metric}", lambda r, periods: np.nansum(r, axis=0))
'''


@pytest.mark.parametrize("stem", ["json", "same_stem"])
def test_plugin_file_whose_name_another_module_has_is_refused(tmp_path, plugins, stem):
    # a file named as a module already imported (the standard library's json, or a
    # second plugin file of the same name in another folder) was skipped, silently:
    # its strategies and metrics were unknown with nothing said
    first, second = tmp_path / "a" / f"{stem}.py", tmp_path / "b" / f"{stem}.py"
    for f, metric in ((first, "from_a"), (second, "from_b")):
        f.parent.mkdir()
        f.write_text(PLUGIN.format(metric=metric))
    entries = [str(second)] if stem == "json" else [str(first), str(second)]
    plugins.setenv("QUANTLAB_PLUGINS", ":".join(entries))
    try:
        with pytest.raises(ImportError, match=rf"{second}'.*module named '{stem}' is "
                                              r"already imported.*rename the file"):
            ql.metrics.registered()
    finally:
        if stem != "json":
            sys.modules.pop(stem, None)
    assert "from_b" not in ql.metrics._WHOLE


def test_plugin_file_imported_already_by_its_user_is_not_run_twice(tmp_path, plugins):
    f = tmp_path / f"own_{tmp_path.name.replace('-', '_')}.py"
    f.write_text(PLUGIN.format(metric="own") + "\nRUNS = globals().get('RUNS', 0) + 1\n")
    plugins.syspath_prepend(str(tmp_path))
    try:
        module = __import__(f.stem)
        plugins.setenv("QUANTLAB_PLUGINS", str(f))
        assert "own" in ql.metrics.registered()
        assert sys.modules[f.stem] is module and module.RUNS == 1
    finally:
        sys.modules.pop(f.stem, None)


def test_an_unregistered_metric_is_no_objective_whenever_optimize_was_imported(tmp_path):
    # a metric registered before quantlab.optimize's first (lazy) import was frozen into
    # OBJECTIVES: after unregister it was accepted, and the search ended in a KeyError
    import os
    import subprocess
    from pathlib import Path

    code = """
import numpy as np, quantlab as ql
ql.metrics.register("gone", lambda r, p: np.nansum(r, axis=0))
from quantlab import optimize
ql.metrics.unregister("gone")
try:
    optimize._check_objectives("gone")
except ValueError as e:
    print("refused:", e)
"""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    env.pop("QUANTLAB_PLUGINS", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert "refused: objective must be one of" in out.stdout and "got 'gone'" in out.stdout


def test_tear_sheet_gives_a_registered_metric_no_built_in_metrics_reason(registry):
    # an infinite registered metric read 'no losing period' (the built-in ratios'
    # reason), even for returns with no observation at all
    import numpy as np

    ql.metrics.register("inf_metric", lambda r, periods: np.full(r.shape[1], np.inf),
                        kind="ratio")
    r = ql.data.returns(ql.data.load().isel(time=slice(0, 300))).isel(asset=2)
    t = ql.tearsheet.summary_table(r).set_index("name")
    assert t.loc["inf_metric", "strategy"] == "inf" and t.loc["inf_metric", "note"] == ""
    t = ql.tearsheet.summary_table(r.where(r.isnull())).set_index("name")
    assert t.loc["inf_metric", "note"] == "no observation"


def test_grid_over_a_parameter_named_as_a_registered_metric_says_which_to_rename(registry):
    # the message asked to rename the searched dim: a strategy's parameter, not renamable
    ql.metrics.register("window", _total)
    ds = ql.data.load().isel(time=slice(0, 400))
    with pytest.raises(ValueError, match=r"\['window'\].*register the metric\(s\) "
                                         r"\['window'\].*under another name"):
        ql.optimize.optimize_strategy_parameters(
            "attention", {"window": (10, 30)}, ds, optimization_method="grid", n_trials=3)
