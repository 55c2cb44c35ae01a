"""Sphinx configuration for quantlab's documentation (`make docs`).

Offline by construction: no CDN at view time. MathJax is not used (no math in the
pages; a math role would add its CDN script and tests/test_docs.py would fail), BokehJS
is the installed one (`_static/bokeh/`), the ipywidgets renderer and jupyter_bokeh's
widget module are served from `_static/widgets/` (copied from the pinned npm packages
`make install` fetches, and from the installed jupyter_bokeh) or left out, and the theme
ships its fonts.
The API pages and the gallery are written here at build time, from `quantlab.__all__`
and from `notebooks/`, so a new public name or notebook appears without editing docs/.
"""
from __future__ import annotations

import inspect
import pkgutil
import re
import shutil
import sys
import types
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(REPO))

import quantlab  # noqa: E402

project = "quantlab"
author = "the quantlab authors"
copyright = "quantlab authors, MIT licence"
release = version = quantlab.__version__

extensions = [
    "sphinx.ext.autodoc",
    "numpydoc",
    "myst_nb",
]
exclude_patterns = ["_build", "jupyter_execute", ".venv*", "**.ipynb_checkpoints"]
# ql.suite.record() and bokeh's exec outputs have no HTML form (and need none)
suppress_warnings = ["mystnb.unknown_mime_type"]

html_theme = "pydata_sphinx_theme"
html_title = "quantlab"
html_static_path = ["_static"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": [],
    "icon_links": [],
}
html_show_sourcelink = False
html_copy_source = False  # the notebooks would be copied again as page sources

# numpydoc: one page per module lists its members; no per-method stub pages.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # signatures show the defaults; types are in the text

# myst-nb: the gallery shows the stored outputs (never executed here); the tutorial
# asks for execution in its own front matter (execution_mode: force).
nb_execution_mode = "off"
nb_execution_raise_on_error = True
nb_execution_timeout = 300
nb_execution_show_tb = True
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

(DOCS / "_static").mkdir(exist_ok=True)  # git keeps no empty folder
# ipywidgets in the gallery: the pinned renderer from .cache/npm (Makefile: JS_PKGS).
_NPM = REPO / ".cache" / "npm" / "node_modules"
_WIDGET_JS = {"require.js": _NPM / "requirejs" / "require.js",
              "embed-amd.js": _NPM / "@jupyter-widgets" / "html-manager" / "dist" / "embed-amd.js"}
# Third-party widget modules (jupyter_bokeh's BokehModel) would be fetched from jsdelivr by
# the renderer: map them to local copies with require.config (as quantlab.suite does).
_MODULES = {"@bokeh/jupyter_bokeh": ("jupyter_bokeh", "nbextension/index.js")}


def _module_file(package: str, relpath: str) -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    f = Path(list(spec.submodule_search_locations)[0]) / relpath
    return f if f.exists() else None


if all(p.exists() for p in _WIDGET_JS.values()):
    _wdir = DOCS / "_static" / "widgets"
    _wdir.mkdir(parents=True, exist_ok=True)
    for name, src in _WIDGET_JS.items():
        shutil.copyfile(src, _wdir / name)
    _paths = {}
    for module, (package, relpath) in _MODULES.items():
        src = _module_file(package, relpath)
        if src is not None:
            local = module.strip("@").replace("/", "_")
            shutil.copyfile(src, _wdir / f"{local}.js")
            _paths[module] = local
    # paths relative to the site root, whatever the page's depth (data-content_root)
    (_wdir / "config.js").write_text(
        "(function () {\n  var root = document.documentElement.dataset.content_root || './';\n"
        "  var paths = " + repr(_paths).replace("'", '"') + ";\n"
        "  for (var k in paths) { paths[k] = root + '_static/widgets/' + paths[k]; }\n"
        "  require.config({paths: paths});\n})();\n")
    nb_ipywidgets_js = {"widgets/require.js": {}, "widgets/config.js": {},
                        "widgets/embed-amd.js": {}}
else:  # widgets stay unrendered rather than fetched from a CDN
    nb_ipywidgets_js = {}


# --- gallery: every notebook of notebooks/, with its stored outputs -------------------
_BOKEH_PAGES: set[str] = set()   # gallery pages with bokeh figures


def _write_gallery() -> None:
    out = DOCS / "gallery"
    for old in out.glob("*.ipynb"):
        old.unlink()
    for nb in sorted((REPO / "notebooks").glob("*.ipynb")):
        shutil.copyfile(nb, out / nb.name)
        if "application/vnd.bokehjs_exec.v0+json" in nb.read_text(encoding="utf-8"):
            _BOKEH_PAGES.add(f"gallery/{nb.stem}")
    if _BOKEH_PAGES:
        # The notebooks store their figures but not the BokehJS library (init_notebook's
        # output is not kept): serve the installed BokehJS, the version that drew them.
        from bokeh.resources import INLINE

        (DOCS / "_static" / "bokeh").mkdir(parents=True, exist_ok=True)
        _write_if_changed(DOCS / "_static" / "bokeh" / "bokeh-inline.js",
                          "\n;\n".join(INLINE.js_raw))


def _add_bokeh(app, pagename, templatename, context, doctree) -> None:
    if pagename in _BOKEH_PAGES:
        app.add_js_file("bokeh/bokeh-inline.js")   # this page only


# --- API reference: quantlab.__all__ and each public module's __all__ ------------------
def _public_modules() -> list[str]:
    mods = []
    for info in pkgutil.iter_modules(quantlab.__path__):
        if not info.name.startswith("_"):
            mods.append(f"quantlab.{info.name}")
    return sorted(mods)


def _members(mod: types.ModuleType) -> list[str]:
    names = getattr(mod, "__all__", None)
    if names is None:  # no __all__: what the module itself defines, minus private names
        names = [n for n, o in vars(mod).items() if not n.startswith("_")
                 and (inspect.isfunction(o) or inspect.isclass(o))
                 and getattr(o, "__module__", None) == mod.__name__]
    return list(names)


def _directive(name: str, obj, no_index: bool) -> str:
    opts = "   :no-index:\n" if no_index else ""
    if inspect.isclass(obj):
        return f".. autoclass:: {name}\n   :members:\n{opts}\n"
    if callable(obj) and not isinstance(obj, types.ModuleType):
        return f".. autofunction:: {name}\n{opts}\n"
    return f".. autodata:: {name}\n   :no-value:\n{opts}\n"


def _module_page(modname: str, seen: dict) -> str:
    import importlib

    mod = importlib.import_module(modname)
    title = modname
    lines = [f"{title}\n{'=' * len(title)}\n\n", f".. automodule:: {modname}\n   :no-members:\n\n",
             f".. currentmodule:: {modname}\n\n"]
    names = _members(mod)
    if names:
        lines.append(".. list-table::\n   :widths: 30 70\n\n")
        for n in names:
            doc = (inspect.getdoc(getattr(mod, n)) or "").strip().split("\n\n")[0].replace("\n", " ")
            if isinstance(getattr(mod, n), (dict, list, tuple, str, int, float, frozenset, set)):
                doc = ""
            lines.append(f"   * - :py:obj:`{n}`\n     - {_escape(doc)}\n")
        lines.append("\n")
    for n in names:
        obj = getattr(mod, n)
        key = id(obj)
        lines.append(_directive(n, obj, no_index=key in seen and _is_routine(obj)))
        if _is_routine(obj):
            seen.setdefault(key, f"{modname}.{n}")
    return "".join(lines)


def _is_routine(obj) -> bool:
    return inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj)


def _escape(text: str) -> str:
    """Plain docstring text for a table cell, outside ``code`` spans."""
    parts = re.split(r"(``.*?``)", text)
    # |, * and a word's trailing _ (a reference in reST: QUANTLAB_*) are literal here
    return "".join(p if p.startswith("``") else re.sub(r"([|*]|(?<=\w)_(?!\w))", r"\\\1", p)
                   for p in parts)


def _write_api() -> None:
    out = DOCS / "api" / "generated"
    out.mkdir(parents=True, exist_ok=True)
    pages, seen = {}, {}
    # Top-level names first: `ql.backtest` etc. are documented where users call them.
    for n in quantlab.__all__:
        try:
            obj = getattr(quantlab, n)
        except Exception as exc:   # a broken public name must fail the build, saying which
            raise RuntimeError(f"quantlab.__all__ lists {n!r}, which does not import: "
                               f"{type(exc).__name__}: {exc}") from exc
        if n.startswith("__") or (isinstance(obj, types.ModuleType) and not callable(obj)):
            continue
        page = f"quantlab.{n}"
        if isinstance(obj, types.ModuleType):  # a module that is also callable
            pages[page] = _module_page(page, seen)
            continue
        body = f"{page}\n{'=' * len(page)}\n\n.. currentmodule:: quantlab\n\n"
        pages[page] = body + _directive(n, obj, no_index=False)
        if _is_routine(obj):
            seen[id(obj)] = page
    for modname in _public_modules():
        if modname not in pages:
            pages[modname] = _module_page(modname, seen)
    for old in out.glob("*.rst"):
        if old.stem not in pages:
            old.unlink()
    for page, text in pages.items():
        _write_if_changed(out / f"{page}.rst", text)


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:  # keeps incremental builds incremental
        path.write_text(text)


_write_gallery()
_write_api()


# --- docstrings are plain text first: |x| means an absolute value, not a substitution ---
def _escape_bars(app, what, name, obj, options, lines) -> None:
    for i, line in enumerate(lines):
        parts = re.split(r"(``.*?``)", line)  # leave literals alone
        lines[i] = "".join(p if p.startswith("``") else re.sub(r"(?<!\\)\|", r"\\|", p)
                           for p in parts)


def setup(app):
    app.connect("autodoc-process-docstring", _escape_bars, priority=400)
    app.connect("html-page-context", _add_bokeh)
