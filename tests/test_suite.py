"""The suite runner: papermill batch runs, offline HTML, the index, record()."""
import json
import re
from pathlib import Path

import nbformat
import pytest

from quantlab import suite

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


def _failing_notebook(path):
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell("x = 1")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell("raise RuntimeError('boom on purpose')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    bad = _failing_notebook(tmp_path_factory.mktemp("nb") / "bad.ipynb")
    runs = [
        suite.Run(str(NOTEBOOKS / "00_quickstart.ipynb"), "quick-IBM",
                  {"symbol": "IBM", "start": "2010-01-01"}),
        suite.Run(str(bad), "bad", {"x": "<script>alert(1)</script>"}),
    ]
    suite.run_suite(runs, out, render=True)
    suite.write_index(runs, out)
    return out, runs


def test_runs_record_status_and_values(report):
    out, (ok, bad) = report
    assert ok.status == "ok" and bad.status == "failed"
    assert "RuntimeError" in bad.error and "boom on purpose" in bad.error
    assert ok.records["symbol"] == "IBM"
    assert ok.records["first_bar"].startswith("2010-01-0")
    assert -1 < ok.records["total_return"] < 10
    assert Path(ok.output).exists() and Path(bad.output).exists()


def test_html_is_self_contained(report):
    out, (ok, _) = report
    text = Path(ok.html).read_text()
    assert "Bokeh" in text and len(text) > 1_000_000  # BokehJS inlined
    external = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', text)
    assert external == [], f"report fetches from the network: {external}"


def test_index_escapes_and_lists_everything(report):
    out, runs = report
    page = (out / "index.html").read_text()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "quick-IBM" in page and "failed" in page and "boom on purpose" in page
    assert re.search(r"data sha256 [0-9a-f]{16}", page)
    assert "1 ok, 1 failed" in page
    data = json.loads((out / "index.json").read_text())
    assert [r["status"] for r in data] == ["ok", "failed"]


def test_cli_exit_code_says_failure(tmp_path, monkeypatch):
    bad = _failing_notebook(tmp_path / "bad.ipynb")
    cfg = tmp_path / "suite.yaml"
    cfg.write_text(f"notebooks_dir: {tmp_path}\nruns:\n  - notebook: bad.ipynb\n")
    assert suite.main(["run-suite", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 1
    assert bad.exists()


def test_load_config_errors(tmp_path):
    cfg = tmp_path / "s.yaml"
    cfg.write_text("runz: []\n")
    with pytest.raises(ValueError, match="unknown key"):
        suite.load_config(cfg)
    cfg.write_text(f"notebooks_dir: {NOTEBOOKS}\nruns:\n  - notebook: nope.ipynb\n")
    with pytest.raises(FileNotFoundError, match="nope.ipynb"):
        suite.load_config(cfg)
    cfg.write_text(f"notebooks_dir: {NOTEBOOKS}\nruns:\n  - notebook: 00_quickstart.ipynb\n"
                   "  - notebook: 00_quickstart.ipynb\n")
    with pytest.raises(ValueError, match="unique"):
        suite.load_config(cfg)


def test_repo_suite_configs_are_valid():
    repo = Path(__file__).parent.parent
    for name in ("suite.yaml", "full.yaml"):
        runs = suite.load_config(repo / "config" / name)
        assert runs and all(Path(r.notebook).exists() for r in runs)


def test_record_values_are_json_scalars():
    import numpy as np
    import pandas as pd

    assert suite._jsonable(np.float64(1.5)) == 1.5
    assert suite._jsonable(np.int64(3)) == 3
    assert suite._jsonable(float("nan")) is None
    assert suite._jsonable(pd.Timestamp("2020-01-02")) == "2020-01-02 00:00:00"
    with pytest.raises(TypeError, match="not a scalar"):
        suite._jsonable([1, 2])


def test_committed_notebooks_are_small_and_current():
    for nb_path in NOTEBOOKS.glob("*.ipynb"):
        assert nb_path.stat().st_size < 1_000_000, f"{nb_path.name}: commit without inlined BokehJS"
        nb = nbformat.read(nb_path, as_version=4)
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), nb_path.name
        assert all(c.cell_type != "code" or c.execution_count for c in nb.cells), \
            f"{nb_path.name}: run `make notebooks` so stored outputs are current"


def test_grid_and_p_parsing():
    runs = suite.expand_grid([suite.Run(str(NOTEBOOKS / "00_quickstart.ipynb"), "q", {"x": 1})],
                             {"symbol": ["MSFT", "IBM"], "window": [10, 50]})
    assert [r.name for r in runs] == ["q-symbol=MSFT-window=10", "q-symbol=MSFT-window=50",
                                      "q-symbol=IBM-window=10", "q-symbol=IBM-window=50"]
    assert runs[1].parameters == {"x": 1, "symbol": "MSFT", "window": 50}
    assert suite._parse_p([["window", "50"], ["symbol", "MSFT"], ["on", "true"]]) == \
        {"window": 50, "symbol": "MSFT", "on": True}
    with pytest.raises(ValueError, match="non-empty list"):
        suite.expand_grid(runs, {"window": 5})


def test_dask_workers_elsewhere_return_notebooks_and_provenance(tmp_path):
    import os

    from dask.distributed import Client, LocalCluster

    elsewhere = tmp_path / "worker_cwd"
    elsewhere.mkdir()
    bad = _failing_notebook(tmp_path / "bad.ipynb")
    runs = [suite.Run(str(NOTEBOOKS / "00_quickstart.ipynb"), "q-ibm", {"symbol": "IBM"}),
            suite.Run(str(bad), "bad")]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(os.chdir, str(elsewhere))  # workers see no repo-relative paths
        suite.run_suite(runs, tmp_path / "out", client=client)
    ok, failed = runs
    assert ok.status == "ok" and ok.records["symbol"] == "IBM"
    assert failed.status == "failed" and "boom on purpose" in failed.error
    import nbformat

    meta = nbformat.read(ok.output, as_version=4).metadata["quantlab"]
    assert meta["parameters"] == {"symbol": "IBM"} and len(meta["data_sha256"]) == 64
    assert meta["packages"]["numpy"] and meta["started"] and meta["ended"]
    assert list(elsewhere.iterdir()) == []  # nothing left on the workers' disks


@pytest.mark.parametrize("notebook", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_every_report_is_a_single_offline_file(notebook, tmp_path):
    run = suite.Run(str(NOTEBOOKS / notebook))
    suite.run_suite([run], tmp_path, render=True)
    assert run.status == "ok", run.error
    html = Path(run.html).read_text()
    refs = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)"', html)
    assert refs == [], f"{notebook}: report references {refs}"
    assert [p.name for p in tmp_path.iterdir() if p.suffix not in (".ipynb", ".html")] == []


def test_cli_lab_opens_jupyterlab_on_the_notebooks(monkeypatch):
    calls = []
    monkeypatch.setattr(suite.subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    assert suite.main(["lab", "--no-browser"]) == 0
    (cmd,) = calls
    assert cmd[0].endswith("jupyter-lab") and cmd[1] == str(suite.REPO / "notebooks")
    assert cmd[2:] == ["--no-browser"]
