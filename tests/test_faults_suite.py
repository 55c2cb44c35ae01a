"""Fault injection for batch runs (quantlab.suite): notebooks that hang, fail, lose their
kernel or their dask worker, or cannot be read. Every case is a tiny notebook built here.

To add a case: a row in CASES (cells of a notebook, the expected status, a piece of the
expected error) runs in the shared in-process batch; a case that needs a dask cluster
or --in-place gets its own test below. Self-contained (merged into test_faults.py later).
"""
import json
import os
from pathlib import Path

import nbformat
import pytest

from quantlab import suite

HANG = 4  # s: the per-notebook limit of the hanging cases (kernel start included)


def _notebook(path, *cells, params="x = 1"):
    """A notebook with a `parameters` cell and the given code cells."""
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p] + [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return Path(path)


# name: (cells, or bytes for a file that is not a notebook; status; part of the error;
#        per-run timeout in the config or None for the config's default of 120 s)
CASES = {
    "sleeps_forever": (["import time\ntime.sleep(10**6)"], "failed", "timeout", HANG),
    "busy_loop_ignoring_sigint": (["import signal\nsignal.signal(signal.SIGINT, "
                                   "signal.SIG_IGN)\nwhile True:\n    pass"],
                                  "failed", "timeout", HANG),
    "raises": (["raise RuntimeError('boom on purpose')"], "failed", "boom on purpose", None),
    "kernel_dies": (["import os\nos._exit(3)"], "failed", "Dead", None),
    "not_json": (b"this is not a notebook", "failed", "", None),
    "not_utf8": (b"\xff\xfe\x00garbage", "failed", "cannot read", None),
    "runs_after_the_others": (["from quantlab.suite import record\nrecord(answer=42)"],
                              "ok", "", None),
}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """One CLI batch over every case, in order (the good notebook last)."""
    nbs = tmp_path_factory.mktemp("faults")
    runs = []
    for name, (cells, _, _, limit) in CASES.items():
        path = nbs / f"{name}.ipynb"
        if isinstance(cells, bytes):
            path.write_bytes(cells)
        else:
            _notebook(path, *cells)
        runs.append({"notebook": path.name, **({"timeout": limit} if limit else {})})
    cfg = nbs / "suite.yaml"
    cfg.write_text(json.dumps({"notebooks_dir": str(nbs), "timeout": 120, "runs": runs}))
    out = tmp_path_factory.mktemp("out")
    code = suite.main(["run-suite", "--config", str(cfg), "--out", str(out)])
    return code, out, {r["name"]: r for r in json.loads((out / "index.json").read_text())}


@pytest.mark.parametrize("case", list(CASES))
def test_fault_is_contained_to_its_notebook(batch, case):
    code, _, runs = batch
    _, status, error, _ = CASES[case]
    assert code == 1
    assert runs[case]["status"] == status, runs[case]["error"]
    assert error in runs[case]["error"]


def test_notebook_that_sleeps_forever_times_out_and_the_next_notebook_runs(batch):
    _, out, runs = batch
    assert list(runs) == list(CASES)  # every run finished and is in the index, in order
    for hung in ("sleeps_forever", "busy_loop_ignoring_sigint"):
        assert runs[hung]["error"].startswith(f"timeout: the notebook ran longer than its "
                                              f"limit of {HANG} s")
        assert runs[hung]["timeout"] == HANG
    last = runs["runs_after_the_others"]
    assert last["status"] == "ok" and last["records"] == {"answer": 42}
    assert last["timeout"] == 120  # the config's default
    assert "timeout: the notebook ran longer" in (out / "index.html").read_text()


def test_timeout_precedence_cli_over_run_over_config(tmp_path, monkeypatch):
    nb = _notebook(tmp_path / "a.ipynb", "pass")
    _notebook(tmp_path / "b.ipynb", "pass")
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"notebooks_dir: {tmp_path}\ntimeout: 30\nruns:\n  - notebook: a.ipynb\n"
                   "  - notebook: b.ipynb\n    timeout: 5\n")
    seen = []

    def fake_run_suite(runs, out, **kw):
        seen.append(([r.timeout for r in runs], kw["timeout"]))
        for r in runs:
            r.status = "ok"
        return runs

    monkeypatch.setattr(suite, "run_suite", fake_run_suite)
    out = str(tmp_path / "o")
    assert suite.main(["run-suite", "--config", str(cfg), "--out", out]) == 0
    assert suite.main(["run-suite", "--config", str(cfg), "--out", out, "--timeout", "7"]) == 0
    assert suite.main(["run-suite", str(nb), "--config", str(cfg), "--out", out]) == 0
    assert suite.main(["run-suite", str(nb), "--out", out, "--config", str(tmp_path / "s.yaml"),
                       "--timeout", "2.5"]) == 0
    assert seen == [([30.0, 5.0], suite.DEFAULT_TIMEOUT), ([None, None], 7.0),
                    ([None], 30.0), ([None], 2.5)]


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "inf", "1e9"])
def test_timeout_out_of_range_is_refused(tmp_path, bad, capsys):
    nb = _notebook(tmp_path / "a.ipynb", "pass")
    assert suite.main(["run-suite", str(nb), "--out", str(tmp_path / "o"),
                       "--timeout", bad]) == 2
    assert "--timeout must be" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"notebooks_dir: {tmp_path}\ntimeout: {bad}\nruns:\n  - notebook: a.ipynb\n")
    with pytest.raises((TypeError, ValueError), match="timeout must be"):
        suite.load_config(cfg)
    with pytest.raises(ValueError, match="timeout must be"):  # the API refuses it too
        suite.run_suite([suite.Run(str(nb))], tmp_path / "o", timeout=float(bad))


def test_dask_worker_death_does_not_rerun_finished_notebooks(tmp_path):
    """A finished notebook's side effect happens once, even when the worker that ran it
    dies afterwards; the notebook that killed its worker fails alone, the next runs."""
    import dask
    from dask.distributed import Client, LocalCluster

    out = tmp_path / "out"
    side = tmp_path / "side_effects.txt"
    first = _notebook(tmp_path / "first.ipynb", f"open({str(side)!r}, 'a').write('x\\n')")
    # waits until the client has collected `first` (its output is written after that),
    # then kills the dask worker it runs in (the kernel is the worker's child process)
    killer = _notebook(tmp_path / "killer.ipynb",
                       "import os, signal, time\n"
                       f"while not os.path.exists({str(out / 'first.ipynb')!r}):\n"
                       "    time.sleep(0.1)\n"
                       "time.sleep(1.0)\n"
                       "os.kill(os.getppid(), signal.SIGKILL)\ntime.sleep(60)")
    last = _notebook(tmp_path / "last.ipynb", "y = 2")
    runs = [suite.Run(str(first)), suite.Run(str(killer)), suite.Run(str(last))]
    # no retry of a task whose worker died (the killer would kill every new worker), and
    # `last` waits on the scheduler, not queued on the worker the killer takes down with it
    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "distributed.scheduler.worker-saturation": 1.0}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                         dashboard_address=None) as cluster, Client(cluster) as client:
        suite.run_suite(runs, out, client=client, timeout=120)
        client.wait_for_workers(1, timeout=60)
        # anything resubmitted would run now, ahead of this marker task
        client.submit(sum, [1], pure=False).result(timeout=60)
    assert side.read_text() == "x\n", "a finished notebook was run again"
    assert [r.status for r in runs] == ["ok", "failed", "ok"], [r.error for r in runs]
    assert runs[1].error.startswith("worker died: KilledWorker")


def test_failed_in_place_run_leaves_the_notebook_byte_identical(tmp_path):
    good = _notebook(tmp_path / "good.ipynb", "print('fresh output')")
    bad = _notebook(tmp_path / "bad.ipynb", "print('stored output')",
                    "raise RuntimeError('boom on purpose')")
    nb = nbformat.read(bad, as_version=4)  # outputs of an earlier clean run
    nb.cells[1].execution_count = 1
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="stored output\n")]
    nbformat.write(nb, bad)
    # a notebook edited while it runs (here by itself) is not overwritten either
    edited = _notebook(tmp_path / "edited.ipynb",
                       "open('edited.ipynb', 'a').write('\\n')  # the user saves meanwhile")
    os.chmod(good, 0o640)
    before = {p: p.read_bytes() for p in (bad, edited)}
    code = suite.main(["run-suite", "--in-place", str(good), str(bad), str(edited)])
    assert code == 1
    assert bad.read_bytes() == before[bad]
    assert b"papermill-error-cell" not in bad.read_bytes()
    assert edited.read_bytes() == before[edited] + b"\n"  # the edit survives
    nb = nbformat.read(good, as_version=4)
    assert nb.cells[1].outputs[0]["text"] == "fresh output\n"
    assert "papermill" not in nb.metadata  # stripped for committing
    assert (good.stat().st_mode & 0o777) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.ipynb", "edited.ipynb",
                                                          "good.ipynb"]  # no temp files
