"""The examples of README.md and docs/**/*.md run, and show the output they give.

Two kinds of example, each run per page in a fresh temporary folder (the working
directory), so that an example writing files never writes into the repository:

- `>>>` examples, in any fenced block: doctests with the repository's doctest options
  (pyproject's ``doctest_optionflags``: NUMBER, NORMALIZE_WHITESPACE) plus ELLIPSIS (a
  long repr or a temporary path shown cut with ``...``). A page's `>>>` examples share one
  namespace, which starts empty: they show their own imports.
- ```python blocks without `>>>`: executed in page order in one namespace per page, which
  starts as the guides say (docs/user_guide/index.md): ``import quantlab as ql`` and
  ``ds = ql.data.load()``. The files a guide reads as "your own" (``my_csvs/``,
  ``prices_long.csv``, ...) are written from the bundled data into that folder first
  (`user_files`), so each documented layout is really loaded. A block whose first line
  is ``# not run: <reason>`` is not executed (it needs a cluster, an object store, a
  live feed, ...); `NOT_RUN` lists them and a test keeps the list equal to the markers.

The tutorial's ``{code-cell}`` blocks are executed by the docs build (tests/test_docs.py).
"""
import ast
import doctest
import importlib
import inspect
import json
import linecache
import re
import shlex
from pathlib import Path

import distributed
import pandas as pd
import pytest
from _pytest.doctest import _get_checker, get_optionflags

import quantlab as ql
from quantlab import cli, strategies

REPO = Path(__file__).parent.parent
PAGES = sorted([REPO / "README.md",
                *(p for p in (REPO / "docs").rglob("*.md") if "_build" not in p.parts)])

# The blocks that are not run: (page, the reason its marker gives), in page order.
# Change a marker and this list together.
NOT_RUN = [
    ("docs/user_guide/scale.md", "needs an S3 bucket, credentials and s3fs"),
    ("docs/user_guide/scale.md", "needs a dask cluster and a store its workers read"),
    ("docs/user_guide/tick_engine.md", "needs your engine config, tick data and a live feed"),
]

_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*(\S*)")
_MARK = re.compile(r"^# not run: (.+)$")


def fenced_blocks(text: str) -> list[tuple[int, str, list[str]]]:
    """Every fenced block of a Markdown text: (line of its opening fence, 1-based; its
    info string; its lines, dedented by the fence's indent)."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.groups()
        end = i + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        if end == len(lines):
            raise ValueError(f"line {i + 1}: fence {fence!r} is never closed")
        body = [ln[len(indent):] if ln.startswith(indent) else ln.lstrip()
                for ln in lines[i + 1:end]]
        blocks.append((i + 1, info, body))
        i = end + 1
    return blocks


def is_doctest(body: list[str]) -> bool:
    return any(ln.lstrip().startswith(">>>") for ln in body)


def python_blocks(page: Path) -> list[tuple[int, list[str]]]:
    """The ```python blocks of a page that are code, not `>>>` sessions."""
    return [(line, body) for line, info, body in fenced_blocks(page.read_text())
            if info == "python" and not is_doctest(body)]


def not_run_reason(body: list[str]) -> str | None:
    m = _MARK.match(body[0]) if body else None
    return m.group(1) if m else None


def doctest_text(text: str) -> str:
    """The page with every line outside a fenced block holding `>>>` blanked, and the
    fences too: a closing fence ends an example's expected output as a blank line does,
    and line numbers stay those of the page."""
    out = [""] * len(text.splitlines())
    for line, _info, body in fenced_blocks(text):
        if is_doctest(body):
            out[line:line + len(body)] = body
    return "\n".join(out) + "\n"


DOCTEST_PAGES = [p for p in PAGES
                 if any(is_doctest(b) for _l, _i, b in fenced_blocks(p.read_text()))]
PYTHON_PAGES = [p for p in PAGES
                if any(not_run_reason(b) is None for _l, b in python_blocks(p))]


def _ids(pages):
    return [str(p.relative_to(REPO)) for p in pages]


# -- the parser itself ---------------------------------------------------------------

def test_fenced_blocks_reads_info_indent_and_refuses_an_unclosed_fence():
    text = ("intro\n```python\nx = 1\n```\n- item:\n\n  ```pycon\n  >>> 1 + 1\n  2\n  ```\n"
            "```\nplain\n```\n")
    assert fenced_blocks(text) == [(2, "python", ["x = 1"]), (7, "pycon", [">>> 1 + 1", "2"]),
                                   (11, "", ["plain"])]
    blanked = doctest_text(text).splitlines()
    assert blanked[7:9] == [">>> 1 + 1", "2"] and blanked[9] == "" and blanked[1] == ""
    with pytest.raises(ValueError, match="line 2: fence '```' is never closed"):
        fenced_blocks("x\n```python\ny = 1\n")


def test_a_stale_shown_output_fails_its_page(tmp_path, request):
    page = tmp_path / "stale.md"
    page.write_text("```pycon\n>>> import quantlab as ql\n>>> ql.data.load().sizes['asset']\n"
                    "5\n```\n")
    results = run_doctests(page, request.config)
    assert results.failed == 1 and results.attempted == 2


# -- the examples --------------------------------------------------------------------

def run_doctests(page: Path, config) -> doctest.TestResults:
    test = doctest.DocTestParser().get_doctest(doctest_text(page.read_text()), {},
                                               page.name, str(page), 0)
    flags = get_optionflags(config) | doctest.ELLIPSIS
    runner = doctest.DocTestRunner(checker=_get_checker(), optionflags=flags)
    runner.run(test)
    return runner.summarize(verbose=False)


@pytest.mark.parametrize("page", DOCTEST_PAGES, ids=_ids(DOCTEST_PAGES))
def test_doctest_examples_of_the_page_give_their_shown_output(page, tmp_path, monkeypatch,
                                                              request, registry):
    monkeypatch.chdir(tmp_path)
    results = run_doctests(page, request.config)
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples failed " \
                                f"(the report above shows which)"


def user_files(folder: Path, ds) -> None:
    """The files the guides load as a user's own, written from the bundled data in each
    documented layout: a folder of Yahoo-style CSVs, a long and a wide table, a kline
    export, a single-symbol file."""
    frames = {a: ds.sel(asset=a).drop_vars("asset_class").to_dataframe()
              .drop(columns="asset").dropna().rename_axis("Date")
              .rename(columns=str.title) for a in ds["asset"].values}
    for name in ("my_csvs", "my_yahoo_csvs"):
        (folder / name).mkdir()
        for a, df in frames.items():
            df.assign(**{"Adj Close": df["Close"]}).to_csv(folder / name / f"{a}.csv")
    pd.concat([df.assign(symbol=a) for a, df in frames.items()]).to_csv(
        folder / "prices_long.csv")
    ds["close"].to_pandas().rename_axis("date").to_csv(folder / "closes_wide.csv")
    ibm = frames["IBM"].iloc[:744]
    ms = pd.date_range("2021-01-01", periods=len(ibm), freq="h").asi8 // 10 ** 6
    pd.DataFrame({"t": ms, **{c: ibm[c].to_numpy() for c in
                              ("Open", "High", "Low", "Close", "Volume")}}).to_csv(
        folder / "BTCUSDT-1h-2021-01.csv", header=False, index=False)
    frames["IBM"].to_csv(folder / "EURUSD=X.csv")


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=_ids(PYTHON_PAGES))
def test_python_blocks_of_the_page_run(page, tmp_path, monkeypatch, registry, equities):
    blocks = python_blocks(page)
    monkeypatch.chdir(tmp_path)
    user_files(tmp_path, equities)
    namespace = {"ql": ql, "ds": equities.copy(deep=True)}
    try:
        for line, body in blocks:
            if not_run_reason(body) is None:
                name, source = f"{page.relative_to(REPO)}:{line}", "\n".join(body) + "\n"
                linecache.cache[name] = (len(source), None, source.splitlines(True), name)
                code = compile(source, name, "exec")   # a traceback shows the block's lines
                exec(code, namespace)   # noqa: S102 -- the page's own example
    finally:   # a page's dask client would stay the default scheduler of later tests
        for value in namespace.values():
            if type(value).__name__ in ("Client", "LocalCluster") and hasattr(value, "close"):
                value.close()
    with pytest.raises(ValueError, match="No clients found"):
        distributed.default_client()   # none left behind as dask's scheduler


def test_not_run_markers_are_exactly_the_listed_blocks():
    found = [(str(p.relative_to(REPO)), not_run_reason(body))
             for p in PAGES for _line, body in python_blocks(p) if not_run_reason(body)]
    assert found == NOT_RUN



def _resolve(node, names):
    """The object an expression ``ql.a.b`` or ``x.a`` names (``x`` made by a ``ql.``
    call earlier in the block: its class), or None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in names or not parts:
        return None, ""
    obj = names[node.id]
    for name in reversed(parts):
        if isinstance(obj, property):   # an attribute of an instance: not checked
            return None, ""
        obj = getattr(obj, name, None)
    return obj, ".".join([node.id, *reversed(parts)])


def call_problems(source: str, names: dict | None = None) -> list[str]:
    """What a block calls that does not exist: a ``ql.`` function or a method of an object
    a ``ql.`` class made in the block (or of a class ``names`` gives a variable), missing
    or given a keyword it does not take."""
    tree = compile(source, "block", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    names, problems = {"ql": ql, **(names or {})}, []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            made, _ = _resolve(node.value.func, names)
            if isinstance(made, type):
                names[node.targets[0].id] = made
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        obj, name = _resolve(node.func, names)
        if not name:
            continue
        if not callable(obj):
            problems.append(f"{name} does not exist")
            continue
        params = inspect.signature(obj).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            unknown = sorted({k.arg for k in node.keywords if k.arg} - set(params))
            if unknown:
                problems.append(f"{name} takes no keyword {', '.join(unknown)}")
    return problems


def test_call_problems_names_a_missing_function_method_and_keyword():
    source = ("eng = ql.engine.TickEngine(None)\nawait eng.run_feed(feed)\n"
              "eng.no_such_method()\nql.backtest(ds, sig, fees=0.1, fee=0.1)\n"
              "ql.data.no_such_loader('x')\n")
    assert call_problems(source) == ["eng.no_such_method does not exist",
                                     "ql.backtest takes no keyword fee",
                                     "ql.data.no_such_loader does not exist"]


@pytest.mark.parametrize("page, reason", NOT_RUN, ids=[f"{p}: {r}" for p, r in NOT_RUN])
def test_a_block_not_run_still_compiles_and_calls_what_exists(page, reason):
    """What is not run is still checked: its syntax (top-level ``await`` allowed, as in a
    notebook), and every function it calls on ``ql`` or on what a ``ql.`` class made."""
    (body,) = [b for _l, b in python_blocks(REPO / page) if not_run_reason(b) == reason]
    assert call_problems("\n".join(body)) == []


# -- what the pages name exists --------------------------------------------------------

def _code_lines(page: Path, info: str) -> list[str]:
    """The command lines of a page's blocks of one language, comments cut off."""
    return [ln.split("  #")[0].split(" # ")[0].strip()
            for _l, i, body in fenced_blocks(page.read_text()) if i == info
            for ln in body if ln.strip() and not ln.lstrip().startswith("#")]


def test_readme_opens_with_exactly_the_two_setup_commands():
    readme = REPO / "README.md"
    _line, info, body = fenced_blocks(readme.read_text())[0]
    assert info == "bash"
    assert [ln.split("#")[0].strip() for ln in body] == ["make report", "make test"]


def test_every_make_command_the_pages_name_is_a_makefile_target():
    targets = set(re.findall(r"^([A-Za-z][\w-]*)\s*:", (REPO / "Makefile").read_text(), re.M))
    named = {(str(p.relative_to(REPO)), t) for p in PAGES
             for t in re.findall(r"`make ([\w-]+)", p.read_text())
             + [ln.split()[1] for ln in _code_lines(p, "bash") if ln.startswith("make ")]}
    assert len(named) >= 10
    missing = sorted((page, t) for page, t in named if t not in targets)
    assert not missing, f"not Makefile targets: {missing}"


def test_every_repository_path_the_pages_name_exists():
    """A path in backticks whose first part is in the repository (``quantlab/compat.py``,
    ``notebooks/12_deploy.ipynb``), and every relative link, names a file that exists.
    Build products (``docs/_build``) are not checked."""
    top = {p.name for p in REPO.iterdir()} - {"reports"}
    missing, checked = [], 0
    for page in PAGES:
        text = page.read_text()
        for path in re.findall(r"`([\w.-]+/[\w./=-]*)`", text):
            if path.split("/")[0] in top and not path.startswith("docs/_build"):
                checked += 1
                missing += [] if (REPO / path).exists() else [(page.name, path)]
        for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if not re.match(r"[a-z]+://", link):
                checked += 1
                missing += [] if (page.parent / link).exists() else [(page.name, link)]
    assert checked >= 30
    assert not missing, f"named but missing: {missing}"


def test_every_quantlab_name_the_pages_show_in_backticks_exists():
    """``ql.data.as_of``, ``quantlab.engine.FeedError``, ...: each resolves, as an
    attribute or a submodule."""
    missing, checked = [], 0
    for page in PAGES:
        for name in re.findall(r"`((?:ql|quantlab)(?:\.[A-Za-z_]\w*)+)", page.read_text()):
            checked += 1
            obj, parts = ql, name.split(".")
            for k in range(1, len(parts)):
                obj = getattr(obj, parts[k], None)
                if obj is None:
                    try:
                        obj = importlib.import_module(".".join(["quantlab", *parts[1:k + 1]]))
                    except ImportError:
                        missing.append((page.name, name))
                        break
    assert checked >= 50
    assert not missing, f"no such name: {missing}"


def test_every_quantlab_command_of_the_pages_parses():
    """The ``quantlab ...`` lines of the bash blocks are valid command lines (parsed by the
    CLI's own parser; nothing is run)."""
    lines = [(p.name, ln) for p in PAGES for ln in _code_lines(p, "bash")
             if ln.startswith("quantlab ")]
    assert len(lines) >= 5
    for page, line in lines:
        try:
            cli.parser().parse_args(shlex.split(line)[1:])
        except SystemExit:
            pytest.fail(f"{page}: {line!r} is not a valid quantlab command")


def test_the_notebook_table_of_getting_started_lists_every_notebook():
    rows = re.findall(r"^\| `(\d\d_\w+)` \|", (REPO / "docs" / "getting_started.md").read_text(),
                      re.M)
    assert rows == sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb"))


def test_readme_and_the_data_page_name_every_named_data_set():
    sets = set(ql.data.available().index) - {"equities"}
    for page in (REPO / "README.md", REPO / "docs" / "user_guide" / "data.md"):
        text = page.read_text()
        missing = sorted(s for s in sets if f"`{s}`" not in text and f" {s}" not in text)
        assert not missing, f"{page.name} does not name the data set(s) {missing}"


def test_the_optimisation_worked_example_quotes_what_notebook_08_records():
    """The table's values are notebook 08's stored record (kept current by `make
    notebooks` and nbval), in the table's row order."""
    cells = json.loads((REPO / "notebooks" / "08_optimization.ipynb").read_text())["cells"]
    (record,) = [o["data"]["application/vnd.quantlab.record+json"] for c in cells
                 for o in c.get("outputs", []) if "application/vnd.quantlab.record+json"
                 in o.get("data", {})]
    text = (REPO / "docs" / "user_guide" / "optimisation.md").read_text()
    table = text[text.index("| | value |"):].split("\n\n")[0]
    shown = [float(v) for row in table.splitlines()[2:]
             for v in re.findall(r"-?\d+\.\d+", row.rsplit("|", 2)[1])]
    keys = ("in_sample_sharpe", "out_of_sample_sharpe", "dsr", "pbo", "spa_pvalue_vs_hold",
            "walk_forward_oos_sharpe", "sharpe_buy_and_hold_same_span",
            "walk_forward_efficiency", "median_fold_pbo")
    assert shown == [record[k] for k in keys]
    assert f"SPA p = {record['spa_pvalue_vs_hold']:.2f}" in text


def prose(text: str) -> str:
    """The page without its fenced blocks (blank lines in their place)."""
    lines = text.splitlines()
    for line, _info, body in fenced_blocks(text):
        lines[line - 1:line + len(body) + 1] = [""] * (len(body) + 2)
    return "\n".join(lines)


# the objects the guides' prose calls by these names
PROSE_NAMES = {"dep": ql.Deployment, "res": ql.BacktestResult,
               "opt": ql.optimize.OptimizationResult, "eng": ql.engine.TickEngine,
               "engine": ql.engine.TickEngine, "s": strategies.Strategy}


def test_every_call_in_the_prose_exists_and_takes_its_keywords():
    """Inline code such as `ql.deploy(..., risk={...})` or `dep.replay(ds, block=16)`:
    the function or method exists and takes each keyword shown."""
    call = re.compile(r"\b(?:ql|%s)\.\w[\w.]*\(" % "|".join(PROSE_NAMES))
    checked, problems = 0, []
    for page in PAGES:
        for code in re.findall(r"`([^`]+)`", prose(page.read_text())):
            code = " ".join(code.split())   # inline code may wrap across lines
            if not call.search(code):
                continue
            try:
                ast.parse(code.replace("...", "None"))
            except SyntaxError:   # a signature with [optional] parts, not a call
                continue
            checked += 1
            problems += [(page.name, code, p) for p in
                         call_problems(code.replace("...", "None"), PROSE_NAMES)]
    assert checked >= 40
    assert not problems, problems


def test_the_design_page_names_every_subcommand_and_top_level_module():
    text = (REPO / "docs" / "design.md").read_text()
    (sub,) = [a for a in cli.parser()._actions if a.dest == "command" or a.choices
              and "report" in a.choices]
    line = next(ln for ln in text.splitlines() if "quantlab/cli.py" in ln)
    assert all(c in line for c in sub.choices), (line, list(sub.choices))
    public = {p.stem for p in (REPO / "quantlab").glob("*.py")
              if not p.stem.startswith("_") and p.stem != "conftest"}
    assert not sorted(m for m in public if m not in text)
