"""The notebook suite: batch runs with papermill, single-file HTML reports, ``record()``.

CLI (``quantlab``)::

    quantlab run-suite [NOTEBOOK ...] [-p NAME VALUE ...] [--params-file grid.yaml]
                       [--out DIR] [--jobs N] [--scheduler ADDRESS] [--in-place]
    quantlab report    (the same options) [--no-input]   # execute + render HTML + index
    quantlab lab       [jupyter lab options]             # JupyterLab on notebooks/

A suite config (YAML) lists runs; each names a notebook and its parameters::

    runs:
      - notebook: 00_quickstart.ipynb
      - notebook: 00_quickstart.ipynb
        name: 00_quickstart-MSFT
        parameters: {symbol: MSFT}

Without a config every ``notebooks/*.ipynb`` runs once with its default parameters.
A failing notebook is marked failed, the others still run, and the exit code is 1.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import html
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

RECORD_MIME = "application/vnd.quantlab.record+json"
STRIP_TAG = "strip-output"  # outputs too big to commit (inline BokehJS)
REPO = Path(__file__).resolve().parent.parent


def _jsonable(v):
    """numpy/pandas scalars -> plain JSON values (NaN -> None)."""
    if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (_dt.date, _dt.datetime)) or type(v).__name__ in ("Timestamp", "datetime64"):
        return str(v)
    raise TypeError(f"record: {type(v).__name__} is not a scalar (str, number, bool, date)")


def record(**values) -> None:
    """Record headline values of a notebook run; the report index shows them.

    Displayed as a small table in the notebook and stored as a ``{RECORD_MIME}``
    output, which the suite runner reads back (no scraping of printed text).
    """
    from IPython.display import display

    clean = {k: _jsonable(v) for k, v in values.items()}
    text = "\n".join(f"{k}: {_fmt(v)}" for k, v in clean.items())
    display({RECORD_MIME: clean, "text/plain": text}, raw=True)


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


# --------------------------------------------------------------------------- runs

@dataclass
class Run:
    notebook: str
    name: str = ""
    parameters: dict = field(default_factory=dict)
    status: str = "pending"
    duration: float = 0.0
    started: str = ""
    ended: str = ""
    error: str = ""
    records: dict = field(default_factory=dict)
    output: str = ""
    html: str = ""

    def __post_init__(self):
        self.name = self.name or Path(self.notebook).stem


def load_config(path=None, notebooks_dir: Path | None = None) -> list[Run]:
    """Runs from a suite YAML file, or every notebook in ``notebooks/`` with defaults."""
    nb_dir = Path(notebooks_dir or REPO / "notebooks")
    if path is None:
        return [Run(str(p)) for p in sorted(nb_dir.glob("*.ipynb"))]
    import yaml

    path = Path(path)
    cfg = yaml.safe_load(path.read_text()) or {}
    unknown = set(cfg) - {"runs", "notebooks_dir"}
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {sorted(unknown)}; expected runs, notebooks_dir")
    nb_dir = (path.parent / cfg["notebooks_dir"]) if "notebooks_dir" in cfg else nb_dir
    runs = []
    for i, item in enumerate(cfg.get("runs", [])):
        bad = set(item) - {"notebook", "name", "parameters"}
        if bad or "notebook" not in item:
            raise ValueError(f"{path}: run {i}: needs 'notebook', may have 'name' and "
                             f"'parameters'; got {sorted(item)}")
        nb = nb_dir / item["notebook"]
        if not nb.exists():
            raise FileNotFoundError(f"{path}: run {i}: notebook {nb} not found")
        runs.append(Run(str(nb), item.get("name", ""), dict(item.get("parameters") or {})))
    names = [r.name for r in runs]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"{path}: run names must be unique, repeated: {sorted(dup)}")
    return runs


def execute_notebook_json(nb_json: str, parameters: dict, cwd: str | None = None) -> dict:
    """Execute a notebook given as JSON text; return the executed JSON and the outcome.

    Pure function of its inputs, so a dask worker on another machine (or in another
    working directory) can run it and hand the result back to the client.
    """
    import os
    import tempfile

    import papermill as pm

    # same inputs -> same numbers: fix the kernel's hash seed (set/dict order of strings)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    started = _dt.datetime.now().isoformat(timespec="seconds")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="quantlab-run-") as tmp:
        src, dest = os.path.join(tmp, "in.ipynb"), os.path.join(tmp, "out.ipynb")
        with open(src, "w", encoding="utf-8") as f:
            f.write(nb_json)
        status, error = "ok", ""
        try:
            pm.execute_notebook(src, dest, parameters=parameters, kernel_name="python3",
                                progress_bar=False, cwd=cwd if cwd and os.path.isdir(cwd) else tmp,
                                log_output=False)
        except Exception as e:  # a failing cell: record it, keep the batch going
            status = "failed"
            error = f"{getattr(e, 'ename', type(e).__name__)}: {getattr(e, 'evalue', e)}"
            cell = getattr(e, "exec_count", None)
            if cell is not None:
                error = f"cell [{cell}] {error}"
        out = open(dest, encoding="utf-8").read() if os.path.exists(dest) else None
    return {"status": status, "error": error, "duration": time.perf_counter() - t0,
            "started": started, "ended": _dt.datetime.now().isoformat(timespec="seconds"),
            "notebook": out}


def _finish(run: Run, result: dict, dest: Path, prov: dict | None) -> Run:
    """Write the executed notebook and read its records; ``prov`` (the batch's provenance)
    goes into its metadata, or ``None`` for an in-place refresh, whose outputs are stripped
    of what must not be committed."""
    import nbformat

    run.status, run.error, run.duration = result["status"], result["error"], result["duration"]
    run.started, run.ended = result["started"], result["ended"]
    run.output = str(dest)
    if result["notebook"] is None:
        return run
    nb = nbformat.reads(result["notebook"], as_version=4)
    run.records = collect_records(nb)
    if prov is None:
        strip_outputs(nb)
    else:
        nb.metadata["quantlab"] = {**prov, "parameters": run.parameters,
                                   "started": run.started, "ended": run.ended,
                                   "status": run.status}
    nbformat.write(nb, dest)
    return run


def collect_records(nb) -> dict:
    out = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            if RECORD_MIME in data:
                out.update(data[RECORD_MIME])
    return out


def strip_outputs(nb) -> None:
    """Drop outputs of cells tagged ``strip-output`` and papermill's run metadata."""
    for cell in nb.cells:
        if STRIP_TAG in cell.get("metadata", {}).get("tags", []):
            cell["outputs"] = []
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
    nb.metadata.pop("papermill", None)


def render_html(notebook_path, html_path, no_input: bool = False) -> None:
    """Render an executed notebook to one self-contained HTML file (offline-safe);
    ``no_input`` hides the code cells."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook_path, as_version=4)
    exporter = HTMLExporter(template_name="lab", embed_images=True, exclude_input=no_input)
    modules = ""
    if "widgets" in nb.metadata:  # embedded widget state: inline its renderer
        renderer, require = _js_asset(WIDGET_RENDERER), _js_asset(REQUIRE_JS)
        if renderer and require:
            exporter.widget_renderer_url, exporter.require_js_url = renderer, require
            modules = _widget_modules()
    body, _ = exporter.from_notebook_node(nb)
    if modules:  # after require.js: where the renderer finds third-party widget modules
        tag = f'<script src="{exporter.require_js_url}"></script>'
        body = body.replace(tag, tag + modules, 1)
    Path(html_path).write_text(_offline(body), encoding="utf-8")


# Pinned npm packages `make install` puts in .cache/npm (see the Makefile).
JS_DIR = REPO / ".cache" / "npm" / "node_modules"
WIDGET_RENDERER = "@jupyter-widgets/html-manager/dist/embed-amd.js"
REQUIRE_JS = "requirejs/require.js"


def _data_url(f: Path) -> str | None:
    """A local JS file as a data: URL, so the report carries it (no CDN, opens offline);
    None when the file is not installed."""
    import base64

    if not f.exists():
        return None
    return "data:text/javascript;base64," + base64.b64encode(f.read_bytes()).decode()


def _js_asset(relpath: str) -> str | None:
    """A pinned npm asset (None when `make install` has not fetched them: widgets then
    stay unrendered)."""
    return _data_url(JS_DIR / relpath)


def _widget_modules() -> str:
    """A require.config mapping third-party widget modules (jupyter_bokeh's BokehModel)
    to inlined data: URLs, so the widget renderer never asks a CDN for them."""
    shared = Path(sys.prefix) / "share" / "jupyter"
    paths = {name: url for name, url in
             (("@bokeh/jupyter_bokeh", _data_url(shared / "nbextensions/jupyter_bokeh/index.js")),)
             if url}
    if not paths:
        return ""
    return f"<script>require.config({{paths: {json.dumps(paths)}}});</script>"


def _offline(body: str) -> str:
    """Remove the template's CDN scripts (require.js, MathJax): reports must not fetch."""
    import re

    return re.sub(r'<script[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>\s*', "", body)


def run_suite(runs: list[Run], out_dir=None, in_place: bool = False, render: bool = False,
              jobs: int = 1, scheduler: str | None = None, client=None,
              no_input: bool = False, log=sys.stderr) -> list[Run]:
    """Execute ``runs``: here one after another (``jobs=1``), on ``jobs`` local dask
    workers, or on an existing cluster (``scheduler="tcp://host:8786"`` or ``client``).
    Workers get the notebook as JSON and return the executed JSON, so they need no shared
    disk. A progress bar counts runs done and failed."""
    from tqdm.auto import tqdm

    out = Path(out_dir) if out_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(runs), desc="notebooks", unit="run", file=log,
               disable=len(runs) < 2)
    prov = None if in_place else provenance()  # once per batch: git and checksum cost I/O

    def done(run, result):
        dest = Path(run.notebook) if in_place else out / f"{run.name}.ipynb"
        _finish(run, result, dest, prov)
        if render and Path(run.output).exists():
            run.html = str(Path(run.output).with_suffix(".html"))
            render_html(run.output, run.html, no_input=no_input)
        failed = sum(r.status == "failed" for r in runs)
        bar.set_postfix(failed=failed)
        bar.update()
        msg = f"{run.name}: {run.status} ({run.duration:.1f} s){' ' + run.error if run.error else ''}"
        (bar.write(msg, file=log) if len(runs) > 1 else print(msg, file=log, flush=True))

    payload = [(Path(r.notebook).read_text(encoding="utf-8"), r.parameters,
                str(Path(r.notebook).parent)) for r in runs]
    if jobs <= 1 and scheduler is None and client is None:
        for run, args in zip(runs, payload):
            done(run, execute_notebook_json(*args))
    else:
        from dask.distributed import Client, LocalCluster, as_completed

        own = cluster = None
        if client is None:
            if scheduler:
                client = own = Client(scheduler)
            else:
                cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
                client = own = Client(cluster)
        try:
            futures = {client.submit(execute_notebook_json, *args, pure=False): run
                       for run, args in zip(runs, payload)}
            for fut in as_completed(futures):
                run = futures[fut]
                try:
                    result = fut.result()
                except Exception as e:  # the worker itself died
                    result = {"status": "failed", "error": f"worker: {e}", "duration": 0.0,
                              "started": "", "ended": "", "notebook": None}
                done(run, result)
        finally:
            if own is not None:
                own.close()
            if cluster is not None:
                cluster.close()
    bar.close()
    return runs


def provenance() -> dict:
    """What a run depended on: versions, commit, data checksum."""
    from importlib.metadata import PackageNotFoundError, version

    import quantlab
    from quantlab.data import checksum

    pkgs = {}
    for name in ("numpy", "pandas", "xarray", "bokeh", "ipywidgets", "papermill", "cython"):
        try:
            pkgs[name] = version(name)
        except PackageNotFoundError:
            pkgs[name] = None
    return {"quantlab": quantlab.__version__, "git_commit": _git_commit(),
            "data_sha256": checksum(), "packages": pkgs, "python": sys.version.split()[0]}


def expand_grid(runs: list[Run], grid: dict) -> list[Run]:
    """One run per combination of the grid's values (cartesian product), per notebook;
    names carry the parameters (``00_quickstart-symbol=MSFT-window=50``)."""
    import itertools
    import re

    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ValueError("a params file maps each parameter to a non-empty list of values")
    out = []
    keys = list(grid)
    for run in runs:
        for combo in itertools.product(*(grid[k] for k in keys)):
            params = {**run.parameters, **dict(zip(keys, combo))}
            label = "-".join(f"{k}={v}" for k, v in zip(keys, combo))
            name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{run.name}-{label}")
            out.append(Run(run.notebook, name, params))
    return out


# --------------------------------------------------------------------------- index

def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_index(runs: list[Run], out_dir) -> Path:
    """``index.html``: every run with parameters, status, duration, records, provenance."""
    import quantlab
    from quantlab.data import checksum

    e = html.escape
    rows = []
    for r in runs:
        link = (f'<a href="{e(Path(r.html).name)}">{e(r.name)}</a>' if r.html else e(r.name))
        params = "<br>".join(f"{e(str(k))} = {e(json.dumps(v))}" for k, v in r.parameters.items())
        recs = "<br>".join(f"{e(str(k))}: {e(_fmt(v))}" for k, v in r.records.items())
        status = e(r.status) + (f'<div class="err">{e(r.error)}</div>' if r.error else "")
        rows.append(f'<tr class="{e(r.status)}"><td>{link}</td><td>{params or "defaults"}</td>'
                    f'<td>{status}</td><td>{r.duration:.1f} s</td><td>{recs}</td></tr>')
    n_failed = sum(r.status != "ok" for r in runs)
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>quantlab reports</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .4em .7em;
vertical-align: top; text-align: left; }} tr.failed {{ background: #fdd; }}
.err {{ color: #900; font-size: .85em; max-width: 40em; }} .meta {{ color: #555; }}
</style></head><body>
<h1>quantlab reports</h1>
<p class="meta">quantlab {e(quantlab.__version__)} · commit {e(_git_commit())} ·
data sha256 {e(checksum()[:16])} · generated {e(_dt.datetime.now().isoformat(timespec='seconds'))}
· {len(runs) - n_failed} ok, {n_failed} failed</p>
<table id="runs"><thead><tr><th>run</th><th>parameters</th><th>status</th>
<th>duration</th><th>recorded values</th></tr></thead><tbody>
{chr(10).join(rows)}
</tbody></table>
<script>
// click a header to sort by that column (numbers numerically), again to reverse
document.querySelectorAll("#runs th").forEach((th, i) => th.addEventListener("click", () => {{
  const body = document.querySelector("#runs tbody");
  const dir = th.dataset.dir === "asc" ? -1 : 1;
  th.dataset.dir = dir === 1 ? "asc" : "desc";
  const key = r => r.children[i].innerText;
  [...body.rows].sort((a, b) => {{
    const x = parseFloat(key(a)), y = parseFloat(key(b));
    return dir * (isNaN(x) || isNaN(y) ? key(a).localeCompare(key(b)) : x - y);
  }}).forEach(r => body.appendChild(r));
}}));
</script>
<style>th {{ cursor: pointer; }}</style>
</body></html>
"""
    path = Path(out_dir) / "index.html"
    path.write_text(page, encoding="utf-8")
    (Path(out_dir) / "index.json").write_text(json.dumps([asdict(r) for r in runs], indent=1))
    return path


# --------------------------------------------------------------------------- CLI

def _parse_p(pairs) -> dict:
    """``-p NAME VALUE`` pairs, values read as YAML scalars like papermill (1 -> int)."""
    import yaml

    return {k: yaml.safe_load(v) for k, v in pairs or []}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="quantlab", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, help_ in (("run-suite", "execute notebooks with papermill (batch, grids, dask)"),
                        ("report", "execute and render self-contained HTML reports + index")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("notebooks", nargs="*", help="notebooks to run (default: the suite "
                       "config, or every notebook in notebooks/)")
        s.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                       help="set a parameter for every run (repeatable)")
        s.add_argument("--params-file", help="YAML grid {name: [values]}: one run per combination")
        s.add_argument("--config", help="suite YAML (default: config/suite.yaml if present)")
        s.add_argument("--out", default="reports", help="output directory (default reports/)")
        s.add_argument("--jobs", type=int, default=1, help="local dask workers (default 1: in process)")
        s.add_argument("--scheduler", help="address of an existing dask scheduler, tcp://host:8786")
        s.add_argument("--no-input", action="store_true", help="hide code cells in HTML reports")
        if name == "run-suite":
            s.add_argument("--in-place", action="store_true",
                           help="re-execute notebooks/ in place (refresh stored outputs)")
    sub.add_parser("lab", help="open JupyterLab on the notebooks (token auth on); further "
                   "options go to jupyter lab")
    eb = sub.add_parser("engine-bench", help="the tick engine vs its pure-Python reference")
    eb.add_argument("--ticks", type=int, default=2_000_000, help="columnar ticks (2M)")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["engine-bench"]:
        from quantlab.engine import bench

        print(bench(p.parse_args(argv).ticks))
        return 0
    if argv[:1] == ["lab"]:  # everything after `lab` belongs to jupyter lab
        jupyter = Path(sys.executable).parent / "jupyter-lab"
        return subprocess.call([str(jupyter), str(REPO / "notebooks"), *argv[1:]])
    a = p.parse_args(argv)
    if a.notebooks:
        runs = [Run(str(Path(nb).resolve())) for nb in a.notebooks]
        missing = [r.notebook for r in runs if not Path(r.notebook).exists()]
        if missing:
            p.error(f"notebook not found: {missing[0]}")
    else:
        config = a.config or (REPO / "config" / "suite.yaml")
        runs = load_config(config if Path(config).exists() else None)
    params = _parse_p(a.parameter)
    for r in runs:
        r.parameters.update(params)
    if a.params_file:
        import yaml

        runs = expand_grid(runs, yaml.safe_load(Path(a.params_file).read_text()))
    in_place = getattr(a, "in_place", False)
    if in_place:  # stored outputs are of the defaults: one run per notebook, no parameters
        runs = [r for r in runs if not r.parameters]
    run_suite(runs, None if in_place else a.out, in_place=in_place, render=a.cmd == "report",
              jobs=a.jobs, scheduler=a.scheduler, no_input=a.no_input)
    if not in_place:
        index = write_index(runs, a.out)
        print(f"wrote {index}", file=sys.stderr)
    failed = [r.name for r in runs if r.status != "ok"]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
