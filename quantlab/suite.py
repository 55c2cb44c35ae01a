"""The notebook suite: batch runs with papermill, single-file HTML reports, ``record()``.

CLI (``quantlab``)::

    quantlab run-suite [--config FILE] [--out DIR] [--in-place]   # execute notebooks
    quantlab report    [--config FILE] [--out DIR]                # execute + render HTML

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


def execute(run: Run, out_dir: Path | None, in_place: bool = False) -> Run:
    """Execute one run with papermill; failures are caught and recorded on the run."""
    import nbformat
    import papermill as pm

    src = Path(run.notebook)
    dest = src if in_place else Path(out_dir) / f"{run.name}.ipynb"
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(src), str(dest), parameters=run.parameters,
                            kernel_name="python3", progress_bar=False, cwd=str(src.parent),
                            log_output=False)
        run.status = "ok"
    except Exception as e:  # papermill raises for a failing cell; keep the other runs going
        run.status = "failed"
        run.error = f"{getattr(e, 'ename', type(e).__name__)}: {getattr(e, 'evalue', e)}"
    run.duration = time.perf_counter() - t0
    run.output = str(dest)
    if dest.exists():
        nb = nbformat.read(dest, as_version=4)
        run.records = collect_records(nb)
        if in_place:
            strip_outputs(nb)
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


def render_html(notebook_path, html_path) -> None:
    """Render an executed notebook to one self-contained HTML file (offline-safe)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook_path, as_version=4)
    exporter = HTMLExporter(template_name="lab", embed_images=True)
    body, _ = exporter.from_notebook_node(nb)
    Path(html_path).write_text(_offline(body), encoding="utf-8")


def _offline(body: str) -> str:
    """Remove the template's CDN scripts (require.js, MathJax): reports must not fetch."""
    import re

    return re.sub(r'<script[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>\s*', "", body)


def run_suite(runs: list[Run], out_dir=None, in_place: bool = False, render: bool = False,
              log=sys.stderr) -> list[Run]:
    out = Path(out_dir) if out_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    for i, run in enumerate(runs, 1):
        print(f"[{i}/{len(runs)}] {run.name} {json.dumps(run.parameters)} ...", end=" ",
              file=log, flush=True)
        execute(run, out, in_place)
        if render and Path(run.output).exists():
            run.html = str(Path(run.output).with_suffix(".html"))
            render_html(run.output, run.html)
        print(f"{run.status} ({run.duration:.1f} s){' ' + run.error if run.error else ''}",
              file=log, flush=True)
    return runs


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
<table><tr><th>run</th><th>parameters</th><th>status</th><th>duration</th>
<th>recorded values</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""
    path = Path(out_dir) / "index.html"
    path.write_text(page, encoding="utf-8")
    (Path(out_dir) / "index.json").write_text(json.dumps([asdict(r) for r in runs], indent=1))
    return path


# --------------------------------------------------------------------------- CLI

def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="quantlab", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, help_ in (("run-suite", "execute the notebook suite with papermill"),
                        ("report", "execute the suite and render HTML reports + index")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--config", help="suite YAML (default: config/suite.yaml if present)")
        s.add_argument("--out", default="reports", help="output directory (default reports/)")
        if name == "run-suite":
            s.add_argument("--in-place", action="store_true",
                           help="re-execute notebooks/ in place (refresh stored outputs)")
    a = p.parse_args(argv)
    config = a.config or (REPO / "config" / "suite.yaml")
    runs = load_config(config if Path(config).exists() else None)
    in_place = getattr(a, "in_place", False)
    if in_place:  # stored outputs are of the defaults: one run per notebook, no parameters
        runs = [r for r in runs if not r.parameters]
    run_suite(runs, None if in_place else a.out, in_place=in_place, render=a.cmd == "report")
    if not in_place:
        index = write_index(runs, a.out)
        print(f"wrote {index}", file=sys.stderr)
    failed = [r.name for r in runs if r.status != "ok"]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
