"""Session 61 probe: the notebooks run in batch with other parameters and other data."""
from __future__ import annotations

import pytest

from quantlab import cli, suite
from test_suite import _tiny as _notebook   # a notebook with a parameters cell


@pytest.fixture
def limits(monkeypatch):
    """The time limit each executed run was given (nothing is executed)."""
    seen = []

    def fake(nb_json, parameters, cwd=None, timeout=None):
        seen.append((parameters, timeout))
        return {"status": "ok", "error": "", "duration": 0.0, "started": "2026-01-01T00:00:00",
                "ended": "2026-01-01T00:00:01", "notebook": nb_json}

    monkeypatch.setattr(suite, "execute_notebook_json", fake)
    return seen


def test_a_params_file_keeps_the_configs_time_limit(tmp_path, limits):
    """`--params-file` over a suite config: each combination ran with the default 600 s,
    not the config's `timeout:` (nor a run's own), as expand_grid dropped them."""
    _notebook(tmp_path / "q.ipynb")
    cfg = tmp_path / "suite.yaml"
    cfg.write_text("notebooks_dir: .\ntimeout: 42\nruns:\n  - notebook: q.ipynb\n"
                   "  - {notebook: q.ipynb, name: slow, timeout: 7}\n")
    grid = tmp_path / "grid.yaml"
    grid.write_text("x: [1, 2]\n")
    assert cli.main(["run-suite", "--config", str(cfg), "--params-file", str(grid),
                     "--out", str(tmp_path / "out")]) == 0
    assert limits == [({"x": 1}, 42.0), ({"x": 2}, 42.0), ({"x": 1}, 7.0), ({"x": 2}, 7.0)]


def test_expand_grid_keeps_each_runs_time_limit():
    runs = suite.expand_grid([suite.Run("q.ipynb", timeout=60.0), suite.Run("r.ipynb")],
                             {"window": [10, 20]})
    assert [(r.name, r.timeout) for r in runs] == [
        ("q-window=10", 60.0), ("q-window=20", 60.0), ("r-window=10", None),
        ("r-window=20", None)]



# a batch of one run that waits, mid-run, for a line on stdin (nothing is executed)
_RUNNING = """
import sys
from quantlab import cli, suite
from test_suite import _tiny as _notebook   # a notebook with a parameters cell

def wait(nb_json, parameters, cwd=None, timeout=None):
    print("running", flush=True)
    sys.stdin.readline()
    return {"status": "ok", "error": "", "duration": 0.0, "started": "s", "ended": "e",
            "notebook": nb_json}

suite.execute_notebook_json = wait
sys.exit(cli.main(["run-suite", sys.argv[1], "-p", "symbol", "GOOG", "--out", sys.argv[2]]))
"""


def test_a_second_batch_into_a_folder_in_use_is_refused(tmp_path, limits, capsys):
    """Two batches into one --out at once planned the same name: the later one's index
    replaced the other's run (both exit 0, one result gone), and a --clean deleted what
    the running batch had written."""
    import os
    import subprocess
    import sys

    nb = _notebook(tmp_path / "q.ipynb", "symbol = 'AAPL'")
    out = tmp_path / "out"
    assert cli.main(["run-suite", str(nb), "-p", "symbol", "MSFT", "--out", str(out)]) == 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    other = subprocess.Popen([sys.executable, "-c", _RUNNING, str(nb), str(out)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env=env)
    try:
        assert other.stdout.readline().strip() == "running"
        before = sorted(p.name for p in out.iterdir())
        capsys.readouterr()
        assert cli.main(["run-suite", str(nb), "-p", "symbol", "IBM", "--out", str(out),
                         "--clean"]) == 2
        err = capsys.readouterr().err
        assert "another batch" in err and f"pid {other.pid}" in err
        with pytest.raises(BlockingIOError, match="another batch"):
            suite.run_suite([suite.Run(str(nb), parameters={"symbol": "IBM"})], out)
        assert sorted(p.name for p in out.iterdir()) == before   # nothing cleaned or added
    finally:
        other.communicate("\n", timeout=120)
    assert other.returncode == 0
    assert [p for p, _ in limits] == [{"symbol": "MSFT"}]   # the refused ones never ran
    # once it is done, the folder is free again; every run is listed
    assert cli.main(["run-suite", str(nb), "-p", "symbol", "IBM", "--out", str(out)]) == 0
    assert [r.parameters["symbol"] for r in suite.read_index(out)] == ["MSFT", "GOOG", "IBM"]
