"""The suite runner: papermill batch runs, offline HTML, the index, record()."""
import json
import re
from pathlib import Path

import nbformat
import pytest

from quantlab import cli, suite

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


REPORT_MAX = 2_000_000  # bytes of one report apart from the shared _static/ (issue #28)


def _script_srcs(text):
    return re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', text)


def test_report_folder_shares_bokehjs_instead_of_inlining_it_per_report(report):
    """Each report inlined the 4 MB BokehJS (and 5 MB of widget renderer): 204 MB for
    14 runs. Now a light report links the folder's _static/ by relative path."""
    out, (ok, _) = report
    text = Path(ok.html).read_text()
    assert len(text.encode()) < REPORT_MAX
    assert "root._bokeh_onload_callbacks" not in text  # the inline BokehJS loader is gone
    srcs = _script_srcs(text)
    bokeh = [s for s in srcs if "/bokeh.min.js" in s]
    assert bokeh and all(s.startswith("_static/") for s in srcs), srcs
    for src in srcs:  # relative, inside the folder, and there
        assert ":" not in src and ".." not in src and (out / src).is_file(), src
    assert (out / bokeh[0]).read_bytes() == suite._bokeh_files()[0].read_bytes()


def test_self_contained_report_carries_bokehjs_once(report, tmp_path):
    """--self-contained keeps one offline file; every output_notebook() call used to
    inline BokehJS again, now the first copy serves the whole page."""
    out, (ok, _) = report
    nb = nbformat.read(ok.output, as_version=4)
    loader = next(o for c in nb.cells for o in c.get("outputs", [])
                  if suite.BOKEH_LOAD_MIME in o.get("data", {}))
    again = nbformat.v4.new_code_cell(outputs=[loader])  # a second output_notebook()
    nb.cells.append(again)
    nbformat.write(nb, tmp_path / "twice.ipynb")
    suite.render_html(tmp_path / "twice.ipynb", tmp_path / "one.html", self_contained=True)
    text = (tmp_path / "one.html").read_text()
    assert text.count("root._bokeh_onload_callbacks = [];") == 1
    assert 1_000_000 < len(text.encode()) < 8_000_000  # BokehJS inline, once
    assert [s for s in _script_srcs(text) if not s.startswith("data:")] == []
    assert list(tmp_path.iterdir()) == [tmp_path / "one.html", tmp_path / "twice.ipynb"] \
        or sorted(p.name for p in tmp_path.iterdir()) == ["one.html", "twice.ipynb"]


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
    assert cli.main(["run-suite", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 1
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
        # BokehJS inlined is ~4 MB; the stored figures (every figure cell keeps its output,
        # issue #28) are up to ~1.7 MB (03: eleven strategies' diagnostics and equity)
        assert nb_path.stat().st_size < 2_000_000, f"{nb_path.name}: commit without inlined BokehJS"
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
    assert cli._parse_p([["window", "50"], ["symbol", "MSFT"], ["on", "true"]]) == \
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
def test_every_report_is_light_and_offline(notebook, tmp_path):
    """Was test_every_report_is_a_single_offline_file: reports now share _static/
    (issue #28); each must stay under REPORT_MAX and link only files inside the folder."""
    run = suite.Run(str(NOTEBOOKS / notebook))
    suite.run_suite([run], tmp_path, render=True, keep_notebooks=False)
    assert run.status == "ok", run.error
    html = Path(run.html).read_text()
    refs = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)"', html)
    assert refs == [], f"{notebook}: report references {refs}"
    assert len(html.encode()) < REPORT_MAX, f"{notebook}: {len(html.encode()) / 1e6:.1f} MB"
    assert all((tmp_path / s).is_file() for s in _script_srcs(html) if not s.startswith("data:"))
    assert {p.name for p in tmp_path.iterdir()} == {suite.STATIC, f"{run.name}.html"}


def test_cli_lab_opens_jupyterlab_on_the_notebooks(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd, env: calls.append((cmd, env)) or 0)
    assert cli.main(["lab", "--no-browser"]) == 0
    ((cmd, env),) = calls
    assert cmd[0].endswith("jupyter-lab") and cmd[1] == str(suite.REPO / "notebooks")
    assert cmd[-1] == "--no-browser"
    token = env["JUPYTER_TOKEN"]
    assert len(token) >= 32 and token not in " ".join(cmd)  # not on the process list
    assert f"http://127.0.0.1:8888/lab?token={token}" in capsys.readouterr().err


@pytest.mark.parametrize("uid, root", [(0, True), (1000, False)])
def test_lab_as_root_passes_allow_root_and_binds_localhost(uid, root):
    argv, env, url = cli.lab_command([], token="t0k", uid=uid)
    assert ("--allow-root" in argv) == root
    assert "--ServerApp.ip=127.0.0.1" in argv and "--ServerApp.port=8888" in argv
    assert "--ServerApp.port_retries=0" in argv  # the printed URL is the served one
    assert env["JUPYTER_TOKEN"] == "t0k" and url == "http://127.0.0.1:8888/lab?token=t0k"


def test_lab_uses_the_asked_port_once_in_the_url():
    for extra in (["--port", "9999"], ["--port=9999"], ["--ServerApp.port=9999"]):
        argv, _, url = cli.lab_command(extra, token="t", uid=1000)
        assert url == "http://127.0.0.1:9999/lab?token=t"
        assert [a for a in argv if "port=" in a.lower() and "retries" not in a] == \
            ["--ServerApp.port=9999"]   # jupyter refuses a repeated port
    assert cli.lab_command(["--port", "1", "--no-browser"], token="t")[0][-1] == "--no-browser"


@pytest.mark.parametrize("bad", ["--ip=0.0.0.0", "--ServerApp.ip=::", "--ip", "--ServerApp.token=",
                                 "--IdentityProvider.token=x", "--NotebookApp.token=",
                                 "--ServerApp.password=x", "--ServerApp.allow_remote_access=True",
                                 "--ServerApp.disable_check_xsrf=True"])
def test_lab_refuses_options_that_open_it_up(bad, capsys):
    with pytest.raises(ValueError, match="binds 127.0.0.1 with token auth"):
        cli.lab_command([bad])
    assert cli.main(["lab", bad]) == 2
    assert "binds 127.0.0.1" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--port"], ["--port", "x"], ["--port=0"], ["--port=70000"],
                                 ["--port=-1"]])
def test_lab_port_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match=r"--port must be an integer in \[1, 65535\]"):
        cli.lab_command(bad)


def test_python_dash_m_quantlab_runs_the_cli():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "quantlab", "--help"], capture_output=True,
                         text=True, timeout=120, cwd=suite.REPO)
    assert out.returncode == 0
    assert all(c in out.stdout for c in ("run-suite", "report", "lab", "engine-bench"))


def test_console_script_points_at_the_cli():
    import tomllib

    meta = tomllib.loads((suite.REPO / "pyproject.toml").read_text())
    assert meta["project"]["scripts"]["quantlab"] == "quantlab.cli:main"


# --------------------------------------------------------------------------- hostile names,
# collisions, reruns, --in-place. Most of these need no kernel: `fake_exec` stands in
# for papermill (the "executed" notebook is the source plus a record of its inputs).

@pytest.fixture
def fake_exec(monkeypatch):
    calls = []

    def fake(nb_json, parameters, cwd=None, timeout=None):
        calls.append(parameters)
        nb = nbformat.reads(nb_json, as_version=4)
        rec = {"cwd": Path(cwd).name, **{k: str(v) for k, v in parameters.items()}}
        nb.cells.append(nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output(
            "display_data", data={suite.RECORD_MIME: rec, "text/plain": str(rec)})]))
        return {"status": "ok", "error": "", "duration": 0.0, "started": "2026-01-01T00:00:00",
                "ended": "2026-01-01T00:00:01", "notebook": nbformat.writes(nb)}

    monkeypatch.setattr(suite, "execute_notebook_json", fake)
    return calls


def _tiny(path, parameters="x = 1"):
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(parameters)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _index(out):
    return json.loads((out / "index.json").read_text())


def _hrefs(out):
    import html as _html

    return [_html.unescape(h) for h in re.findall(r'href="([^"]*)"',
                                                  (out / "index.html").read_text())]


HOSTILE = ["javascript:alert(document.domain)", "JaVaScRiPt:alert(1)", "data:,x",
           "%2e%2e%2fvictim", "a?b#c", 'x" onmouseover="alert(1)', "<img src=x onerror=alert(1)>"]


def test_index_links_are_relative_paths_never_a_scheme(tmp_path):
    from urllib.parse import unquote

    runs = [suite.Run("nb.ipynb", name, {"p": "<script>alert('p')</script>"}, status="failed",
                      error="<img src=x onerror=alert('err')>", html=str(tmp_path / f"{name}.html"),
                      records={"<b>k</b>": "<script>alert('rec')</script>"},
                      started="<i>t</i>") for name in HOSTILE]
    for name in HOSTILE:   # only a report in the folder is linked
        (tmp_path / f"{name}.html").write_text("report")
    suite.write_index(runs, tmp_path)
    hrefs = _hrefs(tmp_path)
    assert len(hrefs) == len(HOSTILE)
    for href, name in zip(hrefs, HOSTILE):
        assert href.startswith("./") and ":" not in href and "?" not in href and "#" not in href
        assert unquote(href[2:]) == f"{name}.html"  # the file itself, inside the folder
    page = (tmp_path / "index.html").read_text()
    assert page.count("<script") == 1  # only the sort script
    for raw in ("<img", "<b>", "<i>", "alert('p')</script>", 'x" onmouseover'):
        assert raw not in page


def test_report_of_javascript_named_notebook_gets_a_portable_name_and_a_config_name_is_refused(
        tmp_path, fake_exec, capsys):
    # ':' is not portable (Windows; an NTFS stream), so a 'javascript:' name never becomes
    # a file or a link: an explicit name is refused, naming the rule, with nothing written;
    # a notebook's own stem becomes its default name with '_' for each such character
    nb = _tiny(tmp_path / "nbx" / "javascript:alert(document.domain).ipynb")
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"notebooks_dir: {nb.parent}\nruns:\n  - notebook: {nb.name}\n"
                   "    name: 'javascript:alert(1)'\n")
    out = tmp_path / "rep"
    assert cli.main(["report", "--config", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "run name 'javascript:alert(1)'" in err and "Windows file names" in err
    assert not out.exists() or not any(out.iterdir())
    assert suite.Run(str(nb)).name == "javascript_alert(document.domain)"
    assert suite.Run("a?b#c.ipynb").name == "a_b#c"
    assert cli.main(["report", str(nb), "--out", str(out)]) == 0
    assert all(not set(':*?"<>|') & set(p.name) for p in out.rglob("*"))


@pytest.mark.parametrize("name", ["../victim/important", "ABS", "..", ".", "sub/x",
                                  "..\\victim", "a\tb", "x" * 201, "cod\u202egnp.exe"])
def test_config_name_outside_out_is_refused_before_anything_runs(tmp_path, fake_exec, name,
                                                                 capsys):
    _tiny(tmp_path / "nb" / "ok.ipynb")
    victim = tmp_path / "victim" / "important.ipynb"
    victim.parent.mkdir()
    victim.write_text("precious")
    if name == "ABS":
        name = str(tmp_path / "victim" / "important")
    cfg = tmp_path / "s.yaml"
    cfg.write_text(json.dumps({"notebooks_dir": str(tmp_path / "nb"),
                               "runs": [{"notebook": "ok.ipynb", "name": name}]}))
    out = tmp_path / "rep3"
    assert cli.main(["run-suite", "--config", str(cfg), "--out", str(out)]) == 2
    assert "run name" in capsys.readouterr().err
    assert fake_exec == [] and not out.exists()
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(
        ["nb", "ok.ipynb", "victim", "important.ipynb", "s.yaml"])
    with pytest.raises(ValueError, match="run name"):  # the API refuses it too
        suite.run_suite([suite.Run(str(tmp_path / "nb" / "ok.ipynb"), name)], out)


def test_output_symlinked_outside_out_is_refused(tmp_path, fake_exec, capsys):
    nb = _tiny(tmp_path / "nb" / "ok.ipynb")
    victim = tmp_path / "victim.ipynb"
    victim.write_text("precious")
    out = tmp_path / "rep"
    out.mkdir()
    (out / "ok.ipynb").symlink_to(victim)
    assert cli.main(["run-suite", str(nb), "--out", str(out)]) == 2
    assert "outside --out" in capsys.readouterr().err
    assert fake_exec == [] and victim.read_text() == "precious"


def test_same_named_notebooks_get_one_output_each(tmp_path, fake_exec):
    nbs = [_tiny(tmp_path / d / n) for d, n in (("nb", "ok.ipynb"), ("nb2", "ok.ipynb"),
                                                ("nb3", "OK.ipynb"), ("nb4", "index.ipynb"))]
    out = tmp_path / "rep"
    assert cli.main(["report", *map(str, nbs), "--out", str(out), "--keep-notebooks"]) == 0
    runs = _index(out)
    assert [r["name"] for r in runs] == ["ok", "ok-2", "OK-3", "index-2"]
    assert [r["records"]["cwd"] for r in runs] == ["nb", "nb2", "nb3", "nb4"]
    for r in runs:  # each file holds its own run
        assert suite.collect_records(nbformat.read(out / f"{r['name']}.ipynb", 4)) == r["records"]
    assert _hrefs(out) == ["./ok.html", "./ok-2.html", "./OK-3.html", "./index-2.html"]
    assert "quantlab reports" in (out / "index.html").read_text()  # not a notebook's report


def test_out_holding_the_source_notebook_does_not_overwrite_it(tmp_path, fake_exec, capsys):
    nb = _tiny(tmp_path / "ok.ipynb")
    before = nb.read_bytes()
    assert cli.main(["run-suite", str(nb), "--out", str(tmp_path)]) == 0
    assert nb.read_bytes() == before
    assert [r["name"] for r in _index(tmp_path)] == ["ok-2"]
    assert cli.main(["run-suite", str(nb), "--out", str(nb)]) == 2  # a file, not a folder
    assert "not a folder" in capsys.readouterr().err and nb.read_bytes() == before


def test_grid_values_that_sanitise_alike_get_one_output_each(tmp_path, fake_exec):
    nb = _tiny(tmp_path / "q.ipynb")
    grid = tmp_path / "grid.yaml"
    grid.write_text('x: ["A/B", "A_B", "A B"]\n')
    out = tmp_path / "rep"
    assert cli.main(["run-suite", str(nb), "--params-file", str(grid), "--out", str(out)]) == 0
    runs = _index(out)
    assert [r["name"] for r in runs] == ["q-x=A_B", "q-x=A_B-2", "q-x=A_B-3"]
    stored = [nbformat.read(out / f"{r['name']}.ipynb", 4).metadata["quantlab"]["parameters"]
              for r in runs]
    assert stored == [{"x": "A/B"}, {"x": "A_B"}, {"x": "A B"}]


def test_rerun_into_same_out_keeps_earlier_runs_unless_clean(tmp_path, fake_exec):
    nb = str(_tiny(tmp_path / "nb" / "ok.ipynb"))
    out = tmp_path / "rep"
    run = ["run-suite", nb, "--out", str(out)]
    assert cli.main([*run, "-p", "x", "1"]) == 0
    (out / "notes.txt").write_text("mine")
    assert cli.main([*run, "-p", "x", "2"]) == 0
    assert [(r["name"], r["parameters"]) for r in _index(out)] == [("ok", {"x": 1}),
                                                                     ("ok-2", {"x": 2})]
    assert nbformat.read(out / "ok.ipynb", 4).metadata["quantlab"]["parameters"] == {"x": 1}
    assert cli.main([*run, "-p", "x", "1"]) == 0  # the same run again replaces its entry
    assert [(r["name"], r["parameters"]) for r in _index(out)] == [("ok-2", {"x": 2}),
                                                                     ("ok", {"x": 1})]
    assert len(re.findall(r"<tr class", (out / "index.html").read_text())) == 2
    assert cli.main([*run, "-p", "x", "3", "--clean"]) == 0
    assert [(r["name"], r["parameters"]) for r in _index(out)] == [("ok", {"x": 3})]
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "index.json", "notes.txt",
                                                     "ok.ipynb"]


@pytest.mark.parametrize("content", ["garbage", '{"a": 1}', '[{"name": "../../x", '
                                     '"notebook": "n"}]', '[{"name": "ok", "notebook": 3}]'])
def test_corrupt_index_in_out_is_refused_and_clean_recovers(tmp_path, fake_exec, content,
                                                            capsys):
    nb = str(_tiny(tmp_path / "nb" / "ok.ipynb"))
    out = tmp_path / "rep"
    out.mkdir()
    (out / "index.json").write_text(content)
    assert cli.main(["run-suite", nb, "--out", str(out)]) == 2
    assert "index.json" in capsys.readouterr().err and fake_exec == []
    assert cli.main(["run-suite", nb, "--out", str(out), "--clean"]) == 0
    assert [r["name"] for r in _index(out)] == ["ok"]


@pytest.mark.parametrize("extra", [["-p", "symbol", "X"], ["--params-file", "g.yaml"],
                                   ["--out", "o"], ["--clean"]])
def test_in_place_with_parameters_or_out_is_refused(tmp_path, fake_exec, extra, capsys):
    nb = _tiny(tmp_path / "ok.ipynb")
    before = nb.read_bytes()
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run-suite", "--in-place", str(nb), *extra])
    assert exit_.value.code == 2
    assert f"cannot be combined with {extra[0]}" in capsys.readouterr().err
    assert fake_exec == [] and nb.read_bytes() == before


def test_in_place_with_nothing_left_to_run_is_an_error(tmp_path, fake_exec, capsys):
    _tiny(tmp_path / "ok.ipynb")
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"notebooks_dir: {tmp_path}\nruns:\n  - notebook: ok.ipynb\n"
                   "    parameters: {x: 2}\n")
    assert cli.main(["run-suite", "--in-place", "--config", str(cfg)]) == 2
    assert "nothing to run" in capsys.readouterr().err and fake_exec == []
    with pytest.raises(ValueError, match="default parameters"):
        suite.run_suite([suite.Run(str(tmp_path / "ok.ipynb"), "", {"x": 2})], in_place=True)


def test_parameters_are_plain_values_and_identifier_names(tmp_path, fake_exec, capsys):
    import datetime as dt

    # a YAML date stays its text: papermill cannot store a date and fails every run
    assert cli._parse_p([["start", "2010-01-01"]]) == {"start": "2010-01-01"}
    assert suite.check_parameters({"d": [dt.date(2020, 1, 2)]}) == {"d": ["2020-01-02"]}
    nb = str(_tiny(tmp_path / "ok.ipynb", "x = 1\nstart = None"))
    out = str(tmp_path / "o")
    assert cli.main(["run-suite", nb, "--out", out, "-p", "start", "2010-01-01"]) == 0
    assert fake_exec == [{"start": "2010-01-01"}]
    # papermill writes `NAME = VALUE` into the notebook: a name is never code
    for bad in ("x=1;import os", "import", "1x", "a b"):
        assert cli.main(["run-suite", nb, "--out", out, "-p", bad, "1"]) == 2
        assert "not a Python identifier" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a Python identifier"):
        suite.expand_grid([suite.Run(nb)], {"x;y": [1]})
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"notebooks_dir: {tmp_path}\nruns:\n  - notebook: ok.ipynb\n"
                   "    parameters: {'os.system(1)': 2}\n")
    with pytest.raises(ValueError, match="not a Python identifier"):
        suite.load_config(cfg)
    assert len(fake_exec) == 1


def test_a_parameter_the_notebook_does_not_set_fails_that_run_only(tmp_path, fake_exec):
    """papermill injects an unknown name with a warning only: `-p symbl MSFT` ran with the
    default symbol and the index listed symbl = MSFT beside the default's results."""
    nb = str(_tiny(tmp_path / "nb.ipynb", "symbol = 'AAPL'  # an asset\nfast, slow = 20, 100"))
    bare = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("symbol = 'AAPL'")])
    nbformat.write(bare, tmp_path / "bare.ipynb")
    runs = [suite.Run(nb, "typo", {"symbl": "MSFT"}), suite.Run(nb, "ok", {"symbol": "MSFT",
                                                                           "slow": 50}),
            suite.Run(str(tmp_path / "bare.ipynb"), "bare", {"symbol": "MSFT"})]
    suite.run_suite(runs, tmp_path / "o", render=True, index=True)
    typo, ok, bare = runs
    assert fake_exec == [{"symbol": "MSFT", "slow": 50}]   # only the good run executed
    assert ok.status == "ok" and ok.html
    assert typo.status == "failed" and not typo.html
    assert "unknown parameter(s) ['symbl']" in typo.error and "fast, slow, symbol" in typo.error
    assert bare.status == "failed" and "no cell tagged 'parameters'" in bare.error
    listed = {r["name"]: (r["status"], r["error"]) for r in _index(tmp_path / "o")}
    assert listed["typo"] == ("failed", typo.error) and listed["ok"] == ("ok", "")
    assert "unknown parameter(s)" in (tmp_path / "o" / "index.html").read_text()


def test_a_rerun_that_produces_nothing_leaves_no_earlier_report_under_its_name(tmp_path,
                                                                             fake_exec):
    """The earlier run's NAME.html (other results) stayed beside an index saying failed."""
    nb = _tiny(tmp_path / "nb.ipynb")
    out = tmp_path / "o"
    first = [suite.Run(str(nb), "a", {"x": 5})]
    suite.run_suite(first, out, render=True, index=True)
    assert first[0].status == "ok" and (out / "a.html").is_file() and (out / "a.ipynb").is_file()
    (out / "mine.html").write_text("not the batch's")
    nb.write_bytes(b"\xff\xfe not a notebook")
    again = [suite.Run(str(nb), "a", {"x": 5})]
    suite.run_suite(again, out, render=True, index=True)
    assert again[0].status == "failed" and "cannot read" in again[0].error
    assert sorted(p.name for p in out.iterdir()) == [suite.STATIC, "index.html", "index.json",
                                                     "mine.html"]
    assert _index(out)[0]["status"] == "failed" and _index(out)[0]["html"] == ""


def test_a_failed_run_without_papermills_banner_says_so_atop_its_report(tmp_path, monkeypatch):
    """A timed-out notebook (papermill adds no banner then) was rendered as if complete,
    its later cells simply without outputs; the reason is escaped."""
    nb = _tiny(tmp_path / "nb.ipynb")
    error = "timeout: the notebook ran longer than its limit of 8 s <img src=x onerror=alert(1)>"

    def timed_out(nb_json, parameters, cwd=None, timeout=None):
        return {**suite._failed(error), "notebook": nb_json}

    monkeypatch.setattr(suite, "execute_notebook_json", timed_out)
    [run] = suite.run_suite([suite.Run(str(nb))], tmp_path / "o", render=True)
    page = Path(run.html).read_text()
    assert run.status == "failed"
    assert "This run failed: the outputs below are incomplete." in page
    assert "limit of 8 s &lt;img src=x onerror=alert(1)&gt;" in page and "<img src=x" not in page
    first = nbformat.read(run.output, as_version=4).cells[0]
    assert first.metadata["tags"] == [suite.FAILED_TAG]


def test_an_output_folder_that_cannot_be_written_is_refused_before_anything_runs(
        tmp_path, fake_exec, monkeypatch, capsys):
    """A read-only --out ran every notebook and then ended in a PermissionError traceback
    writing the index (report: writing _static/). Permission bits say nothing for root
    (CI) or an immutable folder, so the refusal is simulated where a file is created."""
    import tempfile

    nb = str(_tiny(tmp_path / "nb.ipynb"))
    ro = tmp_path / "ro"
    ro.mkdir()
    real = tempfile.mkstemp

    def refused(*a, dir=None, **kw):
        if dir is not None and Path(dir).resolve() == ro.resolve():
            raise PermissionError(1, "Operation not permitted")
        return real(*a, dir=dir, **kw)

    monkeypatch.setattr(suite.tempfile, "mkstemp", refused)
    for cmd, out in (("report", ro), ("run-suite", ro), ("run-suite", ro / "new" / "sub")):
        assert cli.main([cmd, nb, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"error: --out {out}: cannot write in {ro} (Operation not permitted)" in err
    assert fake_exec == [] and list(ro.iterdir()) == []


def test_make_clean_keeps_reports():
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("no make")
    repo = Path(__file__).parent.parent
    # --no-print-directory: make's "Entering directory" line names the checkout's path
    clean = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(repo), "clean"],
                           capture_output=True, text=True, check=True).stdout
    assert "rm -rf" in clean and "reports" not in clean
    reports = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(repo),
                              "clean-reports"],
                             capture_output=True, text=True, check=True).stdout
    assert "rm -rf reports" in reports


@pytest.mark.parametrize("name, match", [
    (".hidden", "may not start with '.'"), (".ipynb", "may not start with '.'"),
    ("CON", "'CON' is a reserved device name"), ("nul", "'nul' is a reserved device name"),
    ("COM1", "reserved device name"), ("lpt9.txt", "'lpt9' is a reserved"),
    ("Aux .x", "reserved device name"), ("", "must be a non-empty string"),
    (None, "must be a non-empty string")])
def test_suite_name_hidden_reserved_or_explicitly_empty_is_refused(tmp_path, fake_exec, name,
                                                                   match, capsys):
    """'.hidden' wrote a hidden '.hidden.ipynb', 'CON'/'nul'/'COM1' cannot be files on
    Windows, and an explicit empty name silently became the notebook's stem."""
    _tiny(tmp_path / "nb" / "ok.ipynb")
    cfg = tmp_path / "s.yaml"
    cfg.write_text(json.dumps({"notebooks_dir": str(tmp_path / "nb"),
                               "runs": [{"notebook": "ok.ipynb", "name": name}]}))
    out = tmp_path / "rep"
    assert cli.main(["run-suite", "--config", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "run name" in err and re.search(match, err)
    assert fake_exec == [] and not out.exists()
    if name is not None:
        with pytest.raises(ValueError, match=f"run name.*{match}"):   # the API too
            suite.run_suite([suite.Run(str(tmp_path / "nb" / "ok.ipynb"), name)], out)
        assert fake_exec == [] and not out.exists()
    # ordinary names that merely contain these stay accepted; no name = the stem
    for ok in ("console", "COM10", "a.hidden", "nul_run", "CONx"):
        assert suite.check_name(ok) == ok
    assert suite.Run(str(tmp_path / "nb" / "ok.ipynb")).name == "ok"


# --------------------------------------------------------------------------- light reports,
# the index (issue #28)

def test_report_keeps_notebooks_only_with_keep_notebooks(tmp_path, fake_exec, capsys):
    """The executed .ipynb (8 MB each, BokehJS twice) sat beside every report."""
    nb = _tiny(tmp_path / "nb" / "t.ipynb")
    out = tmp_path / "rep"
    assert cli.main(["report", str(nb), "--out", str(out)]) == 0
    assert not (out / "t.ipynb").exists() and (out / "t.html").exists()
    assert _index(out)[0]["output"] == "" and _index(out)[0]["records"]["cwd"] == "nb"
    assert cli.main(["report", str(nb), "--out", str(out), "--keep-notebooks"]) == 0
    assert (out / "t.ipynb").exists() and _index(out)[0]["output"] == str(out / "t.ipynb")
    # run-suite's product is the notebook: always kept
    assert cli.main(["run-suite", str(nb), "--out", str(tmp_path / "rs")]) == 0
    assert (tmp_path / "rs" / "t.ipynb").exists()


def test_report_prints_the_folder_size(tmp_path, fake_exec, capsys):
    nb = _tiny(tmp_path / "nb" / "t.ipynb")
    out = tmp_path / "rep"
    capsys.readouterr()
    assert cli.main(["report", str(nb), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    total, static = suite.folder_size(out)
    m = re.search(r"report size: ([0-9.]+) MB in .* \(([0-9.]+) MB shared in _static/\)", err)
    assert m, err
    assert float(m.group(1)) == pytest.approx(total / 1e6, abs=0.05)
    assert float(m.group(2)) == pytest.approx(static / 1e6, abs=0.05) and static > 1e6
    assert total == sum(f.stat().st_size for f in out.rglob("*") if f.is_file())


def test_self_contained_option_writes_no_static(tmp_path, fake_exec):
    nb = _tiny(tmp_path / "nb" / "t.ipynb")
    out = tmp_path / "rep"
    assert cli.main(["report", str(nb), "--out", str(out), "--self-contained"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "index.json", "t.html"]


def test_static_assets_are_copied_once_and_repaired(tmp_path):
    root = suite.write_static(tmp_path)
    files = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    assert any(p.name == "bokeh.min.js" for p in files)
    assert any(p.name == "embed-amd.js" for p in files) == \
        (suite.JS_DIR / suite.WIDGET_RENDERER).exists()
    victim = next(p for p in files if p.name == "bokeh.min.js")
    victim.write_text("truncated")
    suite.write_static(tmp_path)
    assert victim.read_bytes() == suite._bokeh_files()[0].read_bytes()
    assert all(p.stat().st_mtime_ns == t for p, t in files.items() if p != victim)


def _md_notebook(*sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(s) if i else nbformat.v4.new_code_cell(s)
                for i, s in enumerate(("x = 1",) + sources)]
    return nbformat.writes(nb)


@pytest.mark.parametrize("sources, expected", [
    (("# Title\n\nFirst **bold** sentence with `ql.run_x`. Second one.", "## Later"),
     "Title. First bold sentence with ql.run_x."),
    (("No heading here, see [the docs](https://x.org/a). More.",),
     "No heading here, see the docs."),
    (("# Only a title",), "Only a title"),
    (("Ends without a stop",), "Ends without a stop"),
    ((), ""),
])
def test_index_description_is_the_first_markdown_sentence(sources, expected):
    assert suite.describe(_md_notebook(*sources)) == expected


def test_index_description_of_real_notebooks_and_long_or_broken_input():
    text = (NOTEBOOKS / "00_quickstart.ipynb").read_text()
    assert suite.describe(text).startswith("Quickstart: real prices and returns. Loads ")
    assert suite.describe(text).endswith("simple returns.")
    long = suite.describe(_md_notebook("word " * 200))
    assert len(long) == suite.DESCRIPTION_MAX and long.endswith("…")
    for broken in ("not json", "[]", '{"cells": 3}', ""):
        assert suite.describe(broken) == ""


def test_recorded_values_are_formatted_by_metric_name():
    """The index mixed 12.4086 (a +1,240.9 % return) with 0.459572 and 49.000."""
    cases = {("total_return", 12.4086): "+1,240.9 %", ("annual_volatility", 0.459572): "46.0 %",
             ("n_trades", 49.0): "49", ("sharpe_AAPL", 0.459572): "0.46",
             ("worst_return", -0.0493): "-4.9 %", ("fees_paid", 37926.211): "37,926",
             ("share_abs_z_above_2", 0.09149): "0.09149", ("symbol", "IBM"): "IBM",
             ("ok", True): "True", ("total_return", None): "n/a",
             ("profit_factor", float("inf")): "inf",
             # another quantity than the metric its name starts with: not its unit
             ("drawdown_days", 45): "45", ("trades_per_year", 12.5): "12.5",
             ("return_count", 120): "120", ("max_drawdown_bars", 300): "300",
             ("n_trades", 12.5): "12.5", ("orders_AAPL", 3.0): "3"}
    for (k, v), text in cases.items():
        assert suite._fmt(v, k) == text, (k, v)


def test_record_display_uses_the_same_formatting(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    monkeypatch.setattr("IPython.get_ipython", lambda: object())   # as in a notebook
    suite.record(total_return=9.201, n_trades=49.0, symbol="IBM")
    assert shown[0]["text/plain"] == "total_return: +920.1 %\nn_trades: 49\nsymbol: IBM"
    assert shown[0][suite.RECORD_MIME] == {"total_return": 9.201, "n_trades": 49.0, "symbol": "IBM"}


def test_record_outside_a_notebook_prints_its_table_whatever_shell_exists(monkeypatch, capsys):
    """Outside Jupyter, display() printed the raw bundle, or its text once some IPython
    shell existed: record's output depended on what ran before it."""
    monkeypatch.setattr("IPython.get_ipython", lambda: None)
    suite.record(total_return=9.201, symbol="IBM")
    assert capsys.readouterr().out == "total_return: +920.1 %\nsymbol: IBM\n"


def test_index_shows_descriptions_metric_columns_and_raw_sort_keys(tmp_path):
    runs = [suite.Run("a.ipynb", "a", status="ok", description="<b>Alpha</b>. Tests.",
                      records={"total_return": 9.201, "sharpe_MSFT": 1.5, "note": "x"}),
            suite.Run("b.ipynb", "b", status="ok",
                      records={"total_return": -0.25, "sharpe_MSFT": float("inf")})]
    page = (suite.write_index(runs, tmp_path)).read_text()
    assert '<div class="desc">&lt;b&gt;Alpha&lt;/b&gt;. Tests.</div>' in page
    heads = re.findall(r'<th class="sort num">([^<]*)</th>', page)
    assert heads == ["duration", "total_return", "sharpe_MSFT"]  # numbers in 2 runs
    assert '<td class="num" data-sort="9.201">+920.1 %</td>' in page
    assert '<td class="num" data-sort="-0.25">-25.0 %</td>' in page
    assert 'data-sort="Infinity">inf</td>' in page  # JS Number() reads it
    assert page.count("<script") == 1
    assert _index(tmp_path)[0]["description"] == "<b>Alpha</b>. Tests."


# --------------------------------------------------------------------------- --from-stored
# (issue #28): reports from the committed notebooks' stored outputs, without executing.

def _stored(path, *, executed=True, strip_figure=False, widget_state=False, figure=True):
    """A committed-looking notebook: init cell stripped (BokehJS load), a figure embed,
    optionally a stripped figure cell and widget state whose views were stripped."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell("symbol = 'AAPL'", execution_count=1)
    p.metadata["tags"] = ["parameters"]
    init = nbformat.v4.new_code_cell("ql.plots.init_notebook()", execution_count=2)
    init.metadata["tags"] = [suite.STRIP_TAG]
    nb.cells = [p, init]
    if figure:
        nb.cells.append(nbformat.v4.new_code_cell("show(fig)", execution_count=3, outputs=[
            nbformat.v4.new_output("display_data", data={
                "text/html": '<div id="fig-1"></div>',
                "application/vnd.bokehjs_exec.v0+json": ""}, metadata={})]))
    if strip_figure:
        c = nbformat.v4.new_code_cell("show(big)", execution_count=4)
        c.metadata["tags"] = [suite.STRIP_TAG]
        nb.cells.append(c)
    if not executed:
        nb.cells.append(nbformat.v4.new_code_cell("y = 2"))
    if widget_state:
        nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
            "state": {}, "version_major": 2, "version_minor": 0}}
    nbformat.write(nb, path)
    return path


def test_from_stored_renders_stored_outputs_without_executing(tmp_path, fake_exec):
    a = _stored(tmp_path / "nb" / "a.ipynb", strip_figure=True)
    runs = [suite.Run(str(a)), suite.Run(str(a), "a-MSFT", {"symbol": "MSFT"})]
    suite.run_suite(runs, tmp_path / "out", render=True, from_stored=True,
                    keep_notebooks=False)
    assert [r.status for r in runs] == ["ok", "ok"]
    assert fake_exec == [{"symbol": "MSFT"}]   # only the run with parameters executed
    assert runs[0].duration == 0.0 and runs[0].started
    assert [r.source for r in runs] == ["stored outputs", "executed"]   # index: not "0.0 s"
    page = (tmp_path / "out" / "a.html").read_text()
    # the stored notebook's BokehJS load was stripped: the report loads it from _static/
    # before the first figure, once
    assert page.count("_static/bokeh/") == len(suite._bokeh_files())
    assert page.index("_static/bokeh/") < page.index('id="fig-1"')
    # the stripped figure is said to be missing; the stripped init cell is not
    assert page.count('class="ql-not-stored"') == 1
    assert 'class="ql-not-stored"' not in (tmp_path / "out" / "a-MSFT.html").read_text()


def test_from_stored_refuses_outputs_that_are_not_current(tmp_path):
    stale = _stored(tmp_path / "stale.ipynb", executed=False)
    [run] = suite.run_suite([suite.Run(str(stale))], tmp_path / "out", render=True,
                            from_stored=True)
    assert run.status == "failed" and "never executed" in run.error
    nb = nbformat.read(_stored(tmp_path / "err.ipynb"), as_version=4)
    nb.cells[-1].outputs.append(nbformat.v4.new_output("error", ename="KeyError",
                                                       evalue="'x'", traceback=[]))
    nbformat.write(nb, tmp_path / "err.ipynb")
    out = suite.stored_result((tmp_path / "err.ipynb").read_text(), str(tmp_path / "err.ipynb"))
    assert out["status"] == "failed" and "KeyError: 'x'" in out["error"]
    with pytest.raises(ValueError, match="choose one"):
        suite.run_suite([suite.Run(str(stale))], from_stored=True, in_place=True)


def test_stored_notebook_with_widget_state_but_stripped_views_fetches_no_renderer(tmp_path):
    """09_tick_engine's stored notebook keeps widget state while its widget outputs were
    stripped: the report then loaded the widget renderer from unpkg.com (a network
    request from a report that must open offline)."""
    nb = _stored(tmp_path / "w.ipynb", widget_state=True)
    suite.render_html(nb, tmp_path / "w.html", self_contained=False)
    page = (tmp_path / "w.html").read_text()
    assert "unpkg.com" not in page and "widgetState" not in page


@pytest.mark.parametrize("self_contained", [True, False])
def test_report_with_a_mermaid_diagram_imports_nothing_from_the_network(tmp_path,
                                                                        self_contained):
    """nbconvert's lab template kept an inline module script that import()ed mermaid from
    cdnjs as soon as a markdown cell held a mermaid diagram (only <script src> tags were
    removed); the diagram now stays as its text."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "# Flow\n\n```mermaid\ngraph TD; data-->signal\n```\n")])
    nbformat.write(nb, tmp_path / "m.ipynb")
    suite.render_html(tmp_path / "m.ipynb", tmp_path / "m.html", self_contained=self_contained)
    page = (tmp_path / "m.html").read_text()
    assert "graph TD; data--&gt;signal" in page
    assert re.findall(r"""import\(\s*["'][a-z]+:""", page) == []
    assert "cdnjs" not in page and "jsdelivr" not in page


@pytest.mark.parametrize("self_contained", [True, False])
def test_a_javascript_output_holding_a_closing_script_tag_stays_one_script(tmp_path,
                                                                          self_contained):
    """bokeh's show() output carries the figure's JSON (titles, legends: asset and
    parameter names) in JavaScript; nbconvert puts it verbatim in a <script> element, so a
    name '</script><script>alert(1)</script>' closed it and ran as markup (alerts in
    chromium, in light and single-file reports)."""
    from html.parser import HTMLParser

    js = ('window.t = "</script><script>alert(1)</script><img src=x onerror=alert(2)>";'
          '\nwindow.c = "<!--<SCRIPT>"; window.done = 1;')
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[
        nbformat.v4.new_output("display_data", data={"application/javascript": js})])])
    nbformat.write(nb, tmp_path / "j.ipynb")
    suite.render_html(tmp_path / "j.ipynb", tmp_path / "j.html", self_contained=self_contained)
    page = (tmp_path / "j.html").read_text()

    class Scripts(HTMLParser):
        def __init__(self):
            super().__init__()
            self.inside, self.texts, self.imgs = False, [], 0

        def handle_starttag(self, tag, attrs):
            self.inside = tag == "script"
            self.imgs += tag == "img"

        def handle_endtag(self, tag):
            self.inside = False

        def handle_data(self, data):
            if self.inside:
                self.texts.append(data)

    parser = Scripts()
    parser.feed(page)
    ours = [t for t in parser.texts if "window.t" in t]
    assert len(ours) == 1 and "window.done = 1;" in ours[0]   # one element, whole
    assert r'"<\/script><script>alert(1)<\/script><img' in ours[0]
    assert r'"<\!--<SCRIPT>"' in ours[0] and parser.imgs == 0


def test_report_from_stored_cli_option(tmp_path, fake_exec, capsys):
    a = _stored(tmp_path / "nb" / "a.ipynb")
    code = cli.main(["report", str(a), "--from-stored", "--out", str(tmp_path / "out")])
    assert code == 0 and fake_exec == []
    assert (tmp_path / "out" / "a.html").exists()
    assert cli.parser().parse_args(["report"]).from_stored is False
    with pytest.raises(SystemExit):   # run-suite executes: it has no --from-stored
        cli.parser().parse_args(["run-suite", "--from-stored"])


@pytest.mark.parametrize("args", [["-p", "x", "[1"], ["--params-file", "grid.yaml"]])
def test_a_value_or_params_file_that_is_not_yaml_is_refused(tmp_path, fake_exec, capsys,
                                                            args):
    # a yaml ScannerError traceback and exit 1 before
    nb = _tiny(tmp_path / "ok.ipynb")
    (tmp_path / "grid.yaml").write_text("x: [1, 2\n")
    args = [str(tmp_path / a) if a == "grid.yaml" else a for a in args]
    assert cli.main(["run-suite", str(nb), *args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "not YAML" in err and "Traceback" not in err
    assert fake_exec == []


def test_p_goes_to_the_runs_that_take_it_and_a_name_none_takes_is_refused(tmp_path,
                                                                          fake_exec):
    """`-p symbol MSFT` over a whole suite: the notebooks that take a symbol get it, the
    others run as they are (each one failed after the unknown-parameter check); a name
    no notebook takes (a typo) is refused before anything runs, exit 2."""
    from quantlab import cli
    sym = _tiny(tmp_path / "sym.ipynb", "symbol = 'AAPL'\nwindow = 20")
    other = _tiny(tmp_path / "other.ipynb", "window = 20")
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"notebooks_dir: {tmp_path}\nruns:\n  - notebook: sym.ipynb\n"
                   "  - notebook: other.ipynb\n")
    out = tmp_path / "o"
    assert cli.main(["run-suite", "--config", str(cfg), "--out", str(out),
                     "-p", "symbol", "MSFT", "-p", "window", "5"]) == 0
    assert sorted(fake_exec, key=len) == [{"window": 5}, {"symbol": "MSFT", "window": 5}]
    listed = {r["name"]: r for r in _index(out)}
    assert {r["status"] for r in listed.values()} == {"ok"}
    del fake_exec[:]
    assert cli.main(["run-suite", str(sym), str(other), "--out", str(out),
                     "-p", "symbl", "MSFT"]) == 2
    assert fake_exec == []
    runs = [suite.Run(str(sym)), suite.Run(str(other)), suite.Run(str(tmp_path / "gone"))]
    suite.give_parameters(runs, {"symbol": "X"})
    assert [r.parameters for r in runs] == [{"symbol": "X"}, {}, {"symbol": "X"}]
    with pytest.raises(ValueError, match=r"-p symbl: no notebook of this batch sets "
                                         r"'symbl' in its parameters cell \(they set: "
                                         r"symbol, window\)"):
        suite.give_parameters(runs[:2], {"symbl": "X"})


def test_a_self_contained_report_says_so_not_0_mb_shared(tmp_path, fake_exec, capsys):
    # it printed "(0.0 MB shared in _static/)" of a folder with no _static/
    nb = _tiny(tmp_path / "nb" / "t.ipynb")
    out = tmp_path / "rep"
    capsys.readouterr()
    assert cli.main(["report", str(nb), "--out", str(out), "--self-contained"]) == 0
    err = capsys.readouterr().err
    assert not (out / "_static").exists()
    assert "(each page self-contained)" in err and "MB shared" not in err, err
