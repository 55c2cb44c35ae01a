"""The import contract of the library (issue #26), checked on the source (AST), nothing
is imported:

(a) the kernels (cython_kernels/*.pyx, .pxi, .pxd) import and cimport nothing of quantlab;
(b) research modules (all of quantlab/ but the face: FACE below) import no drawing or
    notebook package (bokeh, ipywidgets, jupyter*, IPython, ...) at any level, and import
    a face module only inside a function whose body is that import plus one statement
    (a delegation such as ``return plots.risk_report_figure(self)``);
(c) no ``import quantlab`` (``as ql``) inside the library: name the module you use;
(d) a quantlab module imported inside a function says why on that line with a
    ``# lazy: <why>`` comment (an import cycle, or a heavy optional dependency); every
    other quantlab import sits at the module top.

Each failure names file:line and the rule.
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# the face: the modules that draw, display, run notebooks or parse the command line
FACE = {"plots", "widgets", "suite", "cli", "__main__"}
# top-level packages research modules must not import: drawing and notebook machinery
DRAWING = {"bokeh", "IPython", "ipywidgets", "ipykernel", "nbformat", "nbconvert",
           "papermill", "notebook", "matplotlib", "plotly", "holoviews", "panel"}
# owned by another branch, fixed at merge (the `bridge` branch rewrites them)
OWNED_ELSEWHERE = ()
# import lines another branch is rewriting (rule (d) only); none left
REWRITTEN_IMPORTS = ()
UNOWNED = ()
LAZY = re.compile(r"#\s*lazy:\s*\S")


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _exempt(rel: str, listed) -> bool:
    return any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in listed)


def _modules(node, rel: str) -> list[str]:
    """Full names an import statement loads, relative imports resolved; for
    ``from a import b`` both ``a`` and ``a.b`` (b may be a submodule)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    pkg = rel.split("/")[:-1]   # quantlab/x.py and quantlab/_kernels/__init__.py alike
    base = pkg[:len(pkg) - node.level + 1] if node.level else []
    base = ".".join(base + ([node.module] if node.module else []))
    return [base] + [f"{base}.{a.name}" for a in node.names]


def _is_quantlab(m: str) -> bool:
    return m == "quantlab" or m.startswith("quantlab.")


def _is_face(m: str) -> bool:
    parts = m.split(".")
    return len(parts) > 1 and parts[0] == "quantlab" and parts[1] in FACE


def _is_drawing(m: str) -> bool:
    top = m.split(".")[0]
    return top in DRAWING or top.startswith("jupyter")


def _imports(tree):
    """(import node, innermost enclosing function or None) for every import."""
    out = []

    def visit(node, func):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out.append((child, func))
            inner = child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                else func
            visit(child, inner)

    visit(tree, None)
    return out


def _dynamic_imports(tree):
    """(call node, module name) of import_module("x") / __import__("x") with a literal."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and \
                isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in ("import_module", "__import__"):
                yield node, node.args[0].value


def _is_delegation(func, node) -> bool:
    """``node`` is a direct import of ``func``, whose body is docstring, imports, one
    statement."""
    body = list(func.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    n = 0
    while n < len(body) and isinstance(body[n], (ast.Import, ast.ImportFrom)):
        n += 1
    return node in body[:n] and len(body) - n == 1 and \
        isinstance(body[n], (ast.Return, ast.Expr))


def _library(root: Path):
    for path in sorted((root / "quantlab").rglob("*.py")):
        rel = _rel(path, root)
        source = path.read_text(encoding="utf-8")
        yield rel, source, ast.parse(source, filename=rel)


# ---------------------------------------------------------------------------- checkers

def kernel_violations(root: Path = ROOT) -> list[str]:
    """Rule (a): a line of a kernel source that imports or cimports quantlab, or
    imports relatively (the compiled module lives in quantlab._kernels)."""
    out = []
    kernel_import = re.compile(r"^\s*(from\s+(\.|quantlab\b)|(c?import)\s+.*\bquantlab\b)")
    for path in sorted((root / "cython_kernels").rglob("*.p[yx][xdi]")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            dynamic = re.search(r"(import_module|__import__)\(\s*['\"]quantlab", code)
            if kernel_import.match(code) or dynamic:
                out.append(f"{_rel(path, root)}:{i}: rule (a) kernels import nothing of "
                           f"quantlab: {line.strip()}")
    return out


def research_violations(root: Path = ROOT) -> list[str]:
    """Rule (b): drawing packages in research modules; face imports outside one-line
    delegations."""
    out = []
    for rel, _, tree in _library(root):
        if Path(rel).stem in FACE and rel.count("/") == 1 or _exempt(rel, OWNED_ELSEWHERE):
            continue
        for node, func in _imports(tree):
            mods = _modules(node, rel)
            drawn = [m for m in mods if _is_drawing(m)]
            if drawn:
                out.append(f"{rel}:{node.lineno}: rule (b) research modules import no "
                           f"drawing/notebook package: {drawn[0]}")
            if any(_is_face(m) for m in mods) and (func is None or not _is_delegation(func, node)):
                where = "at module level" if func is None else f"in {func.name}()"
                out.append(f"{rel}:{node.lineno}: rule (b) a face module is imported {where}; "
                           "only a function body of the import plus one delegating "
                           "statement may import it")
        for node, m in _dynamic_imports(tree):
            if _is_drawing(m):
                out.append(f"{rel}:{node.lineno}: rule (b) research modules import no "
                           f"drawing/notebook package: {m}")
    return out


def ql_alias_violations(root: Path = ROOT) -> list[str]:
    """Rule (c): ``import quantlab`` / ``import quantlab as ql`` inside the library."""
    out = []
    for rel, _, tree in _library(root):
        if _exempt(rel, OWNED_ELSEWHERE):
            continue
        for node, _ in _imports(tree):
            if isinstance(node, ast.Import) and any(a.name == "quantlab" for a in node.names):
                out.append(f"{rel}:{node.lineno}: rule (c) no `import quantlab as ql` inside "
                           "the library: import the module you use")
    return out


def lazy_violations(root: Path = ROOT) -> list[str]:
    """Rule (d): a quantlab import inside a function without ``# lazy: <why>``."""
    out = []
    for rel, source, tree in _library(root):
        if _exempt(rel, OWNED_ELSEWHERE) or _exempt(rel, UNOWNED):
            continue
        lines = source.splitlines()
        for node, func in _imports(tree):
            base = _modules(node, rel)[0]
            if func is None or not _is_quantlab(base) or base in REWRITTEN_IMPORTS:
                continue
            text = lines[node.lineno - 1:node.end_lineno]
            if not any(LAZY.search(t) for t in text):
                out.append(f"{rel}:{node.lineno}: rule (d) quantlab import inside "
                           f"{func.name}() without a `# lazy: <why>` comment (cycle or heavy "
                           f"optional dependency); else move it to the module top: "
                           f"{lines[node.lineno - 1].strip()}")
    return out


def _report(violations) -> str:
    return "\n" + "\n".join(violations)


# ---------------------------------------------------------------------------- the rules

def test_kernels_import_nothing_of_quantlab():
    assert not (v := kernel_violations()), _report(v)


def test_research_modules_do_not_draw():
    assert not (v := research_violations()), _report(v)


def test_no_import_quantlab_as_ql_inside_the_library():
    assert not (v := ql_alias_violations()), _report(v)


def test_function_level_quantlab_imports_say_why_they_are_lazy():
    assert not (v := lazy_violations()), _report(v)


# Each module imported alone, in a fresh child (forked after numpy/pandas/xarray load, so
# no quantlab module is loaded yet): a top-level import that closes a cycle fails with
# ImportError for some import order; a research module that loads a drawing package at
# import time breaks rule (b) at run time.
_FRESH_IMPORTS = r"""
import importlib, os, sys
import numpy, pandas, xarray   # shared by every child; quantlab's modules are not
face, drawing = set(sys.argv[1].split(",")), set(sys.argv[2].split(","))
for name in sys.argv[3:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException as e:
            print(f"{name}: {type(e).__name__}: {e}", flush=True)
            os._exit(1)
        tops = {m.split(".")[0] for m in sys.modules}
        drawn = sorted(m for m in tops if m in drawing or m.startswith("jupyter"))
        if drawn and (name + ".").split(".")[1] not in face:
            print(f"{name}: importing it loads {drawn}", flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
"""


def _module_names(root: Path = ROOT) -> list[str]:
    out = []
    for path in sorted((root / "quantlab").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts[-1] != "__main__":      # importing it runs the CLI
            out.append(".".join(parts))
    return out


def test_every_module_imports_alone_without_a_cycle_or_drawing():
    names = _module_names()
    assert "quantlab.optimize" in names and "quantlab.engine.core" in names
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", _FRESH_IMPORTS, ",".join(sorted(FACE)),
                          ",".join(sorted(DRAWING)), *names],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "", out.stdout


def test_face_list_matches_the_package():
    # a renamed face module would silently make the contract stricter or looser
    have = {p.stem for p in (ROOT / "quantlab").glob("*.py")}
    assert {"plots", "widgets", "suite", "cli", "__main__"} <= have


# ---------------------------------------------------------------------------- the checker

def _plant(tmp_path, files: dict) -> Path:
    for name, text in files.items():
        f = tmp_path / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(textwrap.dedent(text))
    return tmp_path


def test_planted_violations_are_caught_with_file_line_and_rule(tmp_path):
    root = _plant(tmp_path, {
        "cython_kernels/k.pyx": "import numpy as np\nfrom quantlab import data\n",
        "cython_kernels/k2.pxi": "# from quantlab import x is only a comment\n"
                                 "from . cimport helper\n",
        "cython_kernels/k3.pyx": "cimport quantlab._kernels.x\n",
        "quantlab/__init__.py": "",
        "quantlab/plots.py": "import bokeh\n",                          # the face may draw
        "quantlab/research_mod.py": '''
            import numpy as np
            from bokeh.plotting import figure
            from quantlab import plots


            def draws():
                import ipywidgets as w
                return w


            def report(self):
                """Delegates."""
                from quantlab import plots  # lazy: face

                return plots.x(self)


            def computes(self):
                from quantlab.plots import x  # lazy: face
                y = x(self)
                return y


            def dynamic():
                import importlib
                return importlib.import_module("jupyter_bokeh")
            ''',
        "quantlab/lazy_mod.py": '''
            import quantlab as ql
            from quantlab import data


            def f():
                from quantlab import rolling
                from quantlab import measures  # lazy: cycle through measures
                from quantlab.backtesting import backtest
                from . import metrics
                import numpy
                return rolling, measures, backtest, metrics, numpy
            ''',
    })
    kern = kernel_violations(root)
    assert [v.split(": rule")[0] for v in kern] == ["cython_kernels/k.pyx:2",
                                                     "cython_kernels/k2.pxi:2",
                                                     "cython_kernels/k3.pyx:1"]
    assert all("rule (a)" in v for v in kern)
    res = research_violations(root)
    assert [v.split(": rule")[0] for v in res] == [
        "quantlab/research_mod.py:3", "quantlab/research_mod.py:4",
        "quantlab/research_mod.py:8", "quantlab/research_mod.py:20",
        "quantlab/research_mod.py:27"], res
    assert all("rule (b)" in v for v in res)
    assert "at module level" in res[1] and "in computes()" in res[3]
    assert not any("plots.py" in v for v in res)
    alias = ql_alias_violations(root)
    assert [v.split(": rule")[0] for v in alias] == ["quantlab/lazy_mod.py:2"]
    lazy = lazy_violations(root)
    assert [v.split(": rule")[0] for v in lazy] == ["quantlab/lazy_mod.py:7",
                                                     "quantlab/lazy_mod.py:9",
                                                     "quantlab/lazy_mod.py:10"], lazy
    assert all("rule (d)" in v and "inside f()" in v for v in lazy)


def test_no_file_is_exempt_once_every_branch_is_merged(tmp_path):
    assert OWNED_ELSEWHERE == () and UNOWNED == () and REWRITTEN_IMPORTS == ()
    root = _plant(tmp_path, {
        "quantlab/rolling.py": "def f():\n    import quantlab as ql\n    return ql\n",
        "quantlab/_apply.py": "def f():\n    from quantlab import data\n",
        "quantlab/testing.py": "def f():\n    from quantlab import data\n",
    })
    assert [v.split(": rule")[0] for v in ql_alias_violations(root)] == ["quantlab/rolling.py:2"]
    assert [v.split(": rule")[0] for v in lazy_violations(root)] == [
        "quantlab/_apply.py:2", "quantlab/rolling.py:2", "quantlab/testing.py:2"]


def test_merged_packages_backtesting_engine_optimize_strategies_are_checked(tmp_path):
    # their branches are merged: they are no longer exempt from rules (c) and (d)
    lazy_import = "def f():\n    from quantlab import data\n    return data\n"
    root = _plant(tmp_path, {
        "quantlab/optimize.py": "def f():\n    import quantlab as ql\n    return ql\n",
        "quantlab/backtesting/result.py": lazy_import,
        "quantlab/engine/core.py": lazy_import,
        "quantlab/strategies/traditional.py": lazy_import,
        "quantlab/compat.py": "def f():\n    from quantlab.backtesting import backtest\n",
    })
    assert [v.split(": rule")[0] for v in ql_alias_violations(root)] == \
        ["quantlab/optimize.py:2"]
    assert [v.split(": rule")[0] for v in lazy_violations(root)] == [
        "quantlab/backtesting/result.py:2", "quantlab/compat.py:2",
        "quantlab/engine/core.py:2", "quantlab/optimize.py:2",
        "quantlab/strategies/traditional.py:2"]
