"""JupyterLab in a real browser: open 01_explore, run all, widgets and bokeh render, a
slider drag changes the plot; and a rendered report opens from disk with the network
blocked. Headless Debian Chromium driven by playwright (no browser download).

Without a browser the test skips locally and FAILS under CI=true (never a silent skip).
One headless chromium serves every test (a fresh context per page). Screenshots land in
tests/artifacts/ (ignored by git): the 02 tear sheet (tearsheet_02.png), the index
(index.png), reports.
"""
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]


def _browser():
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no chromium found: .ci/run installs it (apt chromium)")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    return sync_playwright()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free port over a copy of notebooks/; stopped by its PID."""
    root = tmp_path_factory.mktemp("lab")
    for nb in (REPO / "notebooks").glob("*.ipynb"):
        shutil.copy(nb, root / nb.name)
    port = _free_port()
    # no "get notified about Jupyter news?" toast over the screenshots
    settings_dir = tmp_path_factory.mktemp("lab-settings")
    settings = settings_dir / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    jupyter = Path(sys.executable).parent / "jupyter-lab"
    cmd = [str(jupyter), "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", "--ServerApp.token=", "--ServerApp.password=",
           "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={root}",
           f"--LabApp.user_settings_dir={settings_dir}", "--allow-root"]
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited: {(root / 'server.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("jupyter lab did not start in 60 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _run_all(page, attempts=3):
    """Run -> Run All Cells from the menu bar; retried, since a click that lands while
    the kernel is still connecting is dropped by JupyterLab."""
    for _ in range(attempts):
        time.sleep(1.0)
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click(timeout=30_000)
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click(timeout=30_000)
        try:
            page.wait_for_selector(".widget-slider", timeout=40_000)
            return
        except Exception:  # playwright TimeoutError: try the menu again
            page.keyboard.press("Escape")
    raise AssertionError("Run All Cells did not produce the explorer's widgets")


def _explorer_pixels(page):
    """Pixels of the RollingExplorer's z-score figure: the last canvas inside the widget
    box that holds the window slider (not the slider itself, whose readout moves at once)."""
    box = page.locator(".widget-vbox").filter(
        has=page.locator(".widget-slider", has_text="window")).first
    return box.locator("canvas").last.screenshot()


def test_explore_notebook_runs_renders_and_reacts(lab, chromium):
    ARTIFACTS.mkdir(exist_ok=True)
    with contextlib.closing(chromium.new_context(viewport={"width": 1400, "height": 1000})) \
            as context:
        page = context.new_page()
        page.goto(f"{lab}/lab/tree/01_explore.ipynb?reset", timeout=60_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                               timeout=90_000)
        _run_all(page)
        page.wait_for_selector(".bk-Figure", timeout=90_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                               timeout=90_000)
        time.sleep(1.0)  # let bokeh finish drawing
        page.screenshot(path=str(ARTIFACTS / "01_explore_before.png"), full_page=True)
        before = _explorer_pixels(page)
        window = page.locator(".widget-slider", has_text="window").first
        handle = window.locator(".noUi-handle").first
        handle.focus()
        for _ in range(25):
            page.keyboard.press("ArrowRight")
        # continuous_update=False: the value is sent on release; the kernel recomputes
        deadline = time.time() + 30
        after = before
        while time.time() < deadline and after == before:
            time.sleep(0.5)
            after = _explorer_pixels(page)
        page.screenshot(path=str(ARTIFACTS / "01_explore_after.png"), full_page=True)
        value = window.locator(".widget-readout").first.inner_text()
    assert int(value) > 20, f"slider did not move (readout {value})"
    assert after != before, "the z-score plot did not change after moving the slider"


# --------------------------------------------------------------------------- reports
# Every report of `make report` (all runs of config/suite.yaml), built by `quantlab report
# --from-stored`: the committed notebooks' stored outputs rendered without executing them
# (test_suite checks they are executed and current); runs with parameters have no stored
# outputs and are executed, which keeps a small executed fixture in the same folder. The
# folder is what `make report` writes (light reports sharing _static/, no notebooks
# kept), opened from file:// with the network blocked.

CONFIG = REPO / "config" / "suite.yaml"
REPORT_MAX = 2_000_000   # bytes of one report apart from _static/ (issue #28)
TOTAL_MAX = 30_000_000   # the whole `make report` folder, _static/ included


def _config_runs():
    from quantlab import suite

    return suite.load_config(CONFIG)


RUNS = [r.name for r in _config_runs()]
EXECUTED = [r.name for r in _config_runs() if r.parameters]  # no stored outputs

# every bokeh plot of every document in the page: [id, title, glyph renderers with data,
# y scale, legend labels (a label's value, or the values of its field)]
_PLOTS_JS = """() => {
  const out = [];
  const cols = d => d instanceof Map ? [...d.values()] : Object.values(d);
  const get = (d, k) => d instanceof Map ? d.get(k) : d[k];
  for (const doc of (window.Bokeh ? Bokeh.documents : [])) {
    for (const m of doc.all_models) {
      if (!("renderers" in m.properties && "toolbar" in m.properties)) continue;  // a plot
      let n = 0;
      for (const r of m.renderers) {
        if (!r.glyph || !r.data_source || !r.data_source.data) continue;
        if (cols(r.data_source.data).some(c => c != null && c.length > 0)) n++;
      }
      const labels = [];
      const side = [...m.center, ...m.left, ...m.right, ...m.above, ...m.below];
      for (const leg of side.filter(x => "items" in x.properties)) for (const it of leg.items) {
        const l = it.label || {};
        if (l.value !== undefined) labels.push(String(l.value));
        else if (l.field) for (const r of it.renderers)
          for (const v of (get(r.data_source.data, l.field) || [])) labels.push(String(v));
      }
      out.push([m.id, String((m.title && m.title.text) || ""), n,
                m.y_scale.constructor.__name__, labels]);
    }
  }
  return out;
}"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """`quantlab report --from-stored` over config/suite.yaml; returns (out, the
    command's stderr, seconds it took)."""
    import io
    from contextlib import redirect_stderr

    from quantlab import cli

    out = tmp_path_factory.mktemp("folder") / "reports"
    err = io.StringIO()
    t0 = time.perf_counter()
    with redirect_stderr(err):
        code = cli.main(["report", "--from-stored", "--config", str(CONFIG), "--out", str(out)])
    assert code == 0, err.getvalue()[-3000:]
    return out, err.getvalue(), time.perf_counter() - t0


@pytest.fixture(scope="module")
def chromium():
    """One headless chromium for the report tests (a fresh context per page)."""
    with _browser() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def _blocked_context(browser, requests):
    """A browser context with no network: every http(s)/ws request is recorded, aborted."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})

    def block(route):
        requests.append(route.request.url)
        route.abort()

    for pattern in ("http://*/**", "https://*/**"):
        context.route(pattern, block)
    context.on("websocket", lambda ws: requests.append(ws.url))
    return context


def _open_report(context, path, needs_bokeh=True):
    """Open a report from disk; wait for bokeh (and embedded widgets) to draw. Returns
    (page, console problems: errors and bokeh warnings, and uncaught exceptions)."""
    page = context.new_page()
    problems = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text[:300]}")
            if m.type == "error" or (m.type == "warning" and "bokeh" in m.text.lower())
            else None)
    page.on("pageerror", lambda e: problems.append(f"pageerror: {str(e)[:300]}"))
    page.goto(Path(path).resolve().as_uri())
    if needs_bokeh:
        page.wait_for_function("window.Bokeh !== undefined && Bokeh.documents.length > 0",
                               timeout=30_000)
    page.wait_for_timeout(1500)  # embedded widgets render after load
    return page, problems


def _stored_figures(name) -> int:
    """Figure outputs (bokeh embeds) the run's source notebook stores."""
    import nbformat

    from quantlab import suite

    run = next(r for r in _config_runs() if r.name == name)
    nb = nbformat.read(run.notebook, as_version=4)
    return sum(suite._uses_bokeh(o) for c in nb.cells for o in c.get("outputs", []))


@pytest.mark.parametrize("name", RUNS)
def test_every_make_report_page_from_disk_has_data_in_every_plot_and_no_console_error(
        folder, chromium, name):
    """Reports showed empty panels ('[bokeh] could not set initial ranges'); every light
    report of `make report` must find BokehJS and the widget renderer in _static/ with no
    network, draw every plot with data and log no error or bokeh warning."""
    out, _, _ = folder
    html = (out / f"{name}.html").read_text()
    figures = name in EXECUTED or _stored_figures(name) > 0
    requests = []
    context = _blocked_context(chromium, requests)
    try:
        page, problems = _open_report(context, out / f"{name}.html", needs_bokeh=figures)
        plots = page.evaluate(_PLOTS_JS)
        if name in ("00_quickstart", "02_traditional_strategies"):
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"report_{name}.png"), full_page=True)
    finally:
        context.close()
    assert requests == [], f"{name}: the report tried to fetch {requests}"
    assert problems == [], f"{name}: console: {problems}"
    empty = [(pid, title) for pid, title, n, _, _ in plots if n == 0]
    assert empty == [], f"{name}: plots without a glyph with data: {empty}"
    if figures:
        assert plots, f"{name}: its notebook has figures, the report drew none"
    assert "_static/bokeh/" in html or not figures  # light: BokehJS from the shared folder


def _stripped_cells(name) -> int:
    import nbformat

    run = next(r for r in _config_runs() if r.name == name)
    nb = nbformat.read(run.notebook, as_version=4)
    return sum(c.cell_type == "code" and not c.outputs and "strip-output" in
               c.metadata.get("tags", []) and "init_notebook" not in c.source
               for c in nb.cells)


def test_stored_report_says_where_outputs_were_not_stored(folder):
    """A cell whose outputs were stripped before committing shows a note in a report
    rendered from stored outputs; an executed run (parameters) has none."""
    out, _, _ = folder
    for name in RUNS:
        text = (out / f"{name}.html").read_text()
        n = text.count('class="ql-not-stored"')
        assert n == (0 if name in EXECUTED else _stripped_cells(name)), name


# the tear sheet's sections, by what is on the page (plot titles, table headers)
TEARSHEET_PLOTS = ["equity vs benchmark", "underwater (top-5 drawdowns shaded)",
                   "monthly returns (%)", "yearly returns", "rolling Sharpe ratio",
                   "rolling volatility", "distribution of period returns"]
TEARSHEET_TABLES = {"summary": ["metric", "strategy", "benchmark"],
                    "drawdowns": ["#", "start (peak)", "trough", "recovery"],
                    "trades": ["asset", "entry", "exit", "exit reason"]}


def test_tearsheet_of_02_shows_its_six_sections_and_the_trade_list(folder, chromium):
    """02's tear sheet: summary (strategy and benchmark), equity on a log axis,
    underwater + top-5 drawdowns, monthly heatmap + yearly bars, rolling Sharpe and
    volatility, return distribution with VaR/CVaR, the trade list; each with data."""
    out, _, _ = folder
    requests = []
    context = _blocked_context(chromium, requests)
    try:
        page, problems = _open_report(context, out / "02_traditional_strategies.html")
        plots = page.evaluate(_PLOTS_JS)
        heads = page.locator(".slick-column-name").all_inner_texts()
        rows = page.locator(".slick-row").count()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report_02_full.png"), full_page=True)
        # the tear sheet alone: the output holding its drawdowns table
        sheet = page.locator(".jp-Cell-outputWrapper").filter(
            has=page.locator(".slick-column-name", has_text="start (peak)"))
        assert sheet.count() == 1
        sheet.first.screenshot(path=str(ARTIFACTS / "tearsheet_02.png"))
    finally:
        context.close()
    assert problems == [] and requests == [], (problems, requests)
    by_title = {}
    for _, title, n, scale, labels in plots:
        for want in TEARSHEET_PLOTS:
            if title.startswith(want):
                by_title[want] = (n, scale, labels)
    assert sorted(by_title) == sorted(TEARSHEET_PLOTS), [p[1] for p in plots]
    assert all(n > 0 for n, _, _ in by_title.values()), by_title
    assert by_title["equity vs benchmark"][1] == "LogScale"
    assert {"strategy", "benchmark"} <= set(by_title["equity vs benchmark"][2])
    dist = " ".join(by_title["distribution of period returns"][2])
    assert "VaR" in dist and "CVaR" in dist, dist
    for table, cols in TEARSHEET_TABLES.items():
        assert all(c in heads for c in cols), (table, heads)
    assert rows >= 3, "the tables have no rows"


def test_self_contained_report_opens_with_all_network_blocked(chromium, tmp_path):
    """--self-contained: one file, alone in its folder (no _static/ to lean on), opened
    offline; BokehJS (loaded before the first figure, since the stored notebook's
    output_notebook() output was stripped) and the explorers' static views (their
    current figures, controls marked "needs a running kernel") travel inside it."""
    from quantlab import suite

    html = tmp_path / "01_explore.html"
    suite.render_html(REPO / "notebooks" / "01_explore.ipynb", html, self_contained=True)
    text = html.read_text()
    assert "needs a running kernel" in text and "_static/" not in text
    assert list(tmp_path.iterdir()) == [html]
    requests = []
    context = _blocked_context(chromium, requests)
    try:
        context.set_offline(True)
        page, problems = _open_report(context, html)
        page.wait_for_timeout(1500)   # the static copies draw after BokehJS loads
        n_canvas = page.locator("canvas").count()
        plots = page.evaluate(_PLOTS_JS)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report_self_contained.png"), full_page=True)
    finally:
        context.close()
    assert n_canvas >= 5 and len(plots) >= 5, "the static views did not draw"
    assert all(p[2] > 0 for p in plots), plots          # every plot has data
    assert problems == [] and requests == [], (problems, requests)


def test_light_widget_report_shows_the_static_views_marked_as_needing_a_kernel(folder,
                                                                                chromium):
    """01_explore's explorers carry a static copy of their current view: the light report
    shows it (figures with data, controls greyed out and marked "needs a running kernel")
    from file:// with no network, instead of controls that would do nothing."""
    out, _, _ = folder
    text = (out / "01_explore.html").read_text()
    assert "data:text/javascript" not in text and "needs a running kernel" in text
    requests = []
    context = _blocked_context(chromium, requests)
    try:
        page, _ = _open_report(context, out / "01_explore.html")
        note = page.get_by_text("needs a running kernel").first.is_visible()
    finally:
        context.close()
    assert note and requests == []


def test_make_report_folder_is_under_the_size_goal(folder):
    """204 MB for 14 runs once: each HTML 4-15 MB plus an 8 MB notebook. Measured on the
    real `make report` folder: each report < 2 MB apart from _static/, the whole folder
    (_static/ included) < 30 MB, and the size the command prints is the folder's."""
    from quantlab import suite

    out, err, _ = folder
    sizes = {f.name: f.stat().st_size for f in out.glob("*.html")}
    assert set(sizes) == {f"{n}.html" for n in RUNS} | {"index.html"}
    assert list(out.glob("*.ipynb")) == []  # make report keeps no notebooks
    big = {k: v for k, v in sizes.items() if v >= REPORT_MAX}
    assert big == {}, f"reports over {REPORT_MAX / 1e6} MB: {big}"
    total, static = suite.folder_size(out)
    assert 0 < static < total < TOTAL_MAX, (total, static)
    m = re.search(r"report size: ([0-9.]+) MB in .* \(([0-9.]+) MB shared in _static/\)", err)
    assert m and float(m.group(1)) == pytest.approx(total / 1e6, abs=0.05), err[-500:]
    assert float(m.group(2)) == pytest.approx(static / 1e6, abs=0.05)


def test_index_of_make_report_lists_every_run_and_filters_sorts_compares(folder, chromium):
    out, _, _ = folder
    with _index_page(chromium, (out / "index.html").resolve().as_uri()) as (page, dialogs):
        page.set_viewport_size({"width": 1600, "height": 1000})
        names = lambda: [r for r in page.locator("#runs tbody tr:not([hidden])")  # noqa: E731
                         .evaluate_all("rs => rs.map(r => r.dataset.name)")]
        assert names() == RUNS
        assert page.locator("#runs .desc").first.inner_text().startswith("Quickstart: ")
        page.fill("#filter", "02_traditional")
        assert names() == ["02_traditional_strategies"]
        assert page.locator("#shown").inner_text() == f"1 of {len(RUNS)} runs shown"
        page.fill("#filter", 'symbol = "MSFT"')   # a parameter: the two runs that set it
        assert names() == ["00_quickstart-MSFT", "04_backtest_and_costs-fast"]
        page.fill("#filter", "explore interactively")  # words of the description
        assert names() == ["01_explore"]
        page.fill("#filter", "")
        durations = {n: float(page.locator(f'#runs tr[data-name="{n}"] td').nth(5)
                              .get_attribute("data-sort")) for n in RUNS}
        page.locator("#runs th", has_text="duration").click()
        assert names() == sorted(RUNS, key=durations.get)
        page.locator("#runs th", has_text="duration").click()
        assert names() == sorted(RUNS, key=durations.get, reverse=True)
        page.locator("#runs th", has_text="run").first.click()
        assert names() == sorted(RUNS)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "index.png"), full_page=True)
        for n in ("00_quickstart", "02_traditional_strategies"):
            page.locator(f'#runs tr[data-name="{n}"] input.pick').check()
        page.click("#compare")
        head = page.locator("#comparison-table thead th").all_inner_texts()
        first = page.locator("#comparison-table tbody tr").first.locator("td").all_inner_texts()
        page.screenshot(path=str(ARTIFACTS / "index_compare.png"), full_page=True)
    assert dialogs == []
    assert head == ["recorded value", "00_quickstart", "02_traditional_strategies"]
    assert len(first) == 3 and first[1] != ""


# --------------------------------------------------------------------------- hostile index

def _tiny_notebook(path, *cells):
    import nbformat

    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell("note = ''")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p] + [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    """`quantlab report` over notebooks whose names are a javascript: URL, an encoded
    ../, a ? and #, and one whose parameters, records and error carry markup; then a
    config name that is a javascript: URL (same --out, so the index keeps both batches);
    then a config name ../victim/important with --out rep3, which must be refused.
    Returns (root, out, codes, files outside out before, after)."""
    from quantlab import cli

    root = tmp_path_factory.mktemp("hostile")
    nbx, out = root / "nbx", root / "rep"
    nbx.mkdir()
    (root / "victim.html").write_text("precious")  # where an unquoted %2e%2e%2f would lead
    (root / "victim").mkdir()
    (root / "victim" / "important.ipynb").write_text("precious")
    for name in ("javascript:alert(document.domain)", "%2e%2e%2fvictim", "a?b#c"):
        _tiny_notebook(nbx / f"{name}.ipynb", "x = 1")
    _tiny_notebook(nbx / "markup.ipynb",
                   "from quantlab.suite import record\n"
                   "record(note=note, html=\"<img src=x onerror=alert('rec')>\")",
                   "raise ValueError(\"<img src=x onerror=alert('err')>\")")

    def outside():
        return {str(p): p.read_bytes() for p in root.rglob("*")
                if p.is_file() and out not in p.parents}

    before = outside()
    codes = [cli.main(["report", *sorted(map(str, nbx.glob("*.ipynb"))), "--out", str(out),
                       "-p", "note", "<script>alert('p')</script>"])]
    cfg = root / "js.yaml"
    cfg.write_text(f"notebooks_dir: {nbx}\nruns:\n  - notebook: a?b#c.ipynb\n"
                   "    name: 'javascript:alert(1)'\n")
    codes.append(cli.main(["report", "--config", str(cfg), "--out", str(out)]))
    cfg = root / "traversal.yaml"
    cfg.write_text(f"notebooks_dir: {nbx}\nruns:\n  - notebook: a?b#c.ipynb\n"
                   "    name: ../victim/important\n")
    codes.append(cli.main(["report", "--config", str(cfg), "--out", str(root / "rep3")]))
    after = {k: v for k, v in outside().items() if not k.endswith(".yaml")}
    return root, out, codes, before, after


@contextlib.contextmanager
def _index_page(browser, index_uri):
    """A page on ``index_uri``, recording every dialog (a script that ran) it opens."""
    context = browser.new_context()
    try:
        page = context.new_page()
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(index_uri)
        yield page, dialogs
    finally:
        context.close()


def _visit_every_link(page, index_uri):
    """Click each link of the index; return (href attribute, URL the browser resolved,
    URL it landed on)."""
    seen = []
    n = page.locator("#runs a").count()
    for i in range(n):
        a = page.locator("#runs a").nth(i)
        href, resolved = a.get_attribute("href"), a.evaluate("a => a.href")
        a.click()
        page.wait_for_load_state("load")
        seen.append((href, resolved, page.url))
        if page.url != index_uri:
            page.go_back()
            page.wait_for_load_state("load")
    return seen


def _inside(url, out):
    from urllib.parse import unquote, urlparse

    u = urlparse(url)
    path = Path(unquote(u.path))
    return u.scheme == "file" and path.parent == out.resolve() and path.is_file()


def test_index_of_hostile_names_runs_no_script(hostile_report, chromium):
    root, out, codes, _, _ = hostile_report
    # markup.ipynb fails on purpose; the config's explicit 'javascript:' name is refused
    # (':' is not portable); the notebooks' own names had ':' and '?' replaced by '_'
    assert codes[:2] == [1, 2]
    index_uri = (out / "index.html").resolve().as_uri()
    with _index_page(chromium, index_uri) as (page, dialogs):
        page.wait_for_load_state("load")
        rows = page.locator("#runs tbody tr").count()
        text = page.locator("#runs").inner_text()
        seen = _visit_every_link(page, index_uri)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "index_hostile.png"), full_page=True)
    assert dialogs == [], f"a script ran: {dialogs}"
    assert rows == 4
    assert "<img src=x onerror=alert('err')>" in text  # shown as text, not markup
    assert "<script>alert('p')</script>" in text
    assert len(seen) == 4  # every run is rendered, the failed one too
    for href, resolved, landed in seen:
        assert href.startswith("./") and ":" not in href, href
        assert _inside(resolved, out) and _inside(landed, out), (href, resolved, landed)


def test_traversal_name_is_refused_and_nothing_is_written_outside_out(hostile_report,
                                                                     chromium):
    root, out, codes, before, after = hostile_report
    assert codes[2] == 2  # ../victim/important: refused before anything ran
    assert after == before, "a file outside --out was written"
    assert not (root / "rep3").exists()
    assert (root / "victim" / "important.ipynb").read_text() == "precious"
    index_uri = (out / "index.html").resolve().as_uri()
    with _index_page(chromium, index_uri) as (page, dialogs):
        link = page.locator("#runs a", has_text="%2e%2e%2fvictim")
        resolved = link.evaluate("a => a.href")
        link.click()
        page.wait_for_load_state("load")
        landed, body = page.url, page.locator("body").inner_text()
    assert dialogs == []
    assert _inside(resolved, out) and _inside(landed, out), (resolved, landed)
    assert "precious" not in body  # not root/victim.html
