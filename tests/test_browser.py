"""JupyterLab in a real browser: open 01_explore, run all, widgets and bokeh render, a
slider drag changes the plot; and a rendered report opens from disk with the network
blocked. Headless Debian Chromium driven by playwright (no browser download).

Without a browser the test skips locally and FAILS under CI=true (never a silent skip).
Screenshots land in tests/artifacts/ (ignored by git).
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


def test_explore_notebook_runs_renders_and_reacts(lab):
    ARTIFACTS.mkdir(exist_ok=True)
    with _browser() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
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
        browser.close()
    assert int(value) > 20, f"slider did not move (readout {value})"
    assert after != before, "the z-score plot did not change after moving the slider"


# --------------------------------------------------------------------------- reports
# One `quantlab report` over a few notebooks (kept fast); the folder is what `make report`
# writes: light reports sharing _static/, opened from file:// with the network blocked.

FOLDER = ["00_quickstart", "01_explore", "02_traditional_strategies"]
REPORT_MAX = 2_000_000   # bytes of one report apart from _static/ (issue #28)
TOTAL_MAX = 30_000_000   # `make report` (14 runs) in total

# every bokeh plot of every document in the page: [id, title, glyph renderers with data]
_PLOTS_JS = """() => {
  const out = [];
  for (const doc of (window.Bokeh ? Bokeh.documents : [])) {
    for (const m of doc.all_models) {
      if (!("renderers" in m.properties && "toolbar" in m.properties)) continue;  // a plot
      let n = 0;
      for (const r of m.renderers) {
        if (!r.glyph || !r.data_source || !r.data_source.data) continue;
        const d = r.data_source.data;
        const cols = d instanceof Map ? [...d.values()] : Object.values(d);
        if (cols.some(c => c != null && c.length > 0)) n++;
      }
      out.push([m.id, String((m.title && m.title.text) || ""), n]);
    }
  }
  return out;
}"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """`quantlab report` over FOLDER (notebooks kept, to render --self-contained copies
    without running them again); returns (out, the command's stderr)."""
    import io
    from contextlib import redirect_stderr

    from quantlab import cli

    out = tmp_path_factory.mktemp("folder") / "reports"
    err = io.StringIO()
    with redirect_stderr(err):
        code = cli.main(["report", *(str(REPO / "notebooks" / f"{n}.ipynb") for n in FOLDER),
                         "--out", str(out), "--keep-notebooks"])
    assert code == 0, err.getvalue()[-3000:]
    return out, err.getvalue()


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


def _open_report(context, path):
    """Open a report from disk; wait for bokeh (and embedded widgets) to draw. Returns
    (page, console problems: errors and bokeh warnings, and uncaught exceptions)."""
    page = context.new_page()
    problems = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text[:300]}")
            if m.type == "error" or (m.type == "warning" and "bokeh" in m.text.lower())
            else None)
    page.on("pageerror", lambda e: problems.append(f"pageerror: {str(e)[:300]}"))
    page.goto(Path(path).resolve().as_uri())
    page.wait_for_function("window.Bokeh !== undefined && Bokeh.documents.length > 0",
                           timeout=30_000)
    page.wait_for_timeout(3000)  # embedded widgets render after load
    return page, problems


@pytest.mark.parametrize("name", FOLDER)
def test_report_from_disk_has_data_in_every_plot_and_no_console_error(folder, name):
    """Reports showed empty panels ('[bokeh] could not set initial ranges'); a light
    report must also find BokehJS and the widget renderer in _static/ with no network."""
    out, _ = folder
    requests = []
    with _browser() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = _blocked_context(browser, requests)
        page, problems = _open_report(context, out / f"{name}.html")
        plots = page.evaluate(_PLOTS_JS)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"report_{name}.png"), full_page=True)
        browser.close()
    assert requests == [], f"{name}: the report tried to fetch {requests}"
    assert problems == [], f"{name}: console: {problems}"
    assert plots, f"{name}: no bokeh plot rendered"
    empty = [(pid, title) for pid, title, n in plots if n == 0]
    assert empty == [], f"{name}: plots without a glyph with data: {empty}"


def test_self_contained_report_opens_with_all_network_blocked(folder, tmp_path):
    """--self-contained: one file, alone in its folder (no _static/ to lean on), opened
    offline; BokehJS and the explorers' static views (their current figures, controls
    marked "needs a running kernel") travel inside it."""
    from quantlab import suite

    out, _ = folder
    html = tmp_path / "01_explore.html"
    suite.render_html(out / "01_explore.ipynb", html, self_contained=True)
    text = html.read_text()
    assert "needs a running kernel" in text and "_static/" not in text
    assert list(tmp_path.iterdir()) == [html]
    requests = []
    with _browser() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = _blocked_context(browser, requests)
        context.set_offline(True)
        page, problems = _open_report(context, html)
        page.wait_for_timeout(2000)   # the static copies draw after BokehJS loads
        n_canvas = page.locator("canvas").count()
        plots = page.evaluate(_PLOTS_JS)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report_self_contained.png"), full_page=True)
        browser.close()
    assert n_canvas >= 5 and len(plots) >= 5, "the static views did not draw"
    assert all(n > 0 for _, _, n in plots), plots          # every plot has data
    assert problems == [] and requests == [], (problems, requests)


def test_light_widget_report_shows_the_static_views_marked_as_needing_a_kernel(folder):
    """01_explore's explorers carry a static copy of their current view: the light report
    shows it (figures with data, controls greyed out and marked "needs a running kernel")
    from file:// with no network, instead of controls that would do nothing."""
    out, _ = folder
    text = (out / "01_explore.html").read_text()
    assert "data:text/javascript" not in text and "needs a running kernel" in text
    requests = []
    with _browser() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = _blocked_context(browser, requests)
        page, _ = _open_report(context, out / "01_explore.html")
        page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0",
                               timeout=30_000)
        note = page.get_by_text("needs a running kernel").first.is_visible()
        browser.close()
    assert note and requests == []


def test_report_folder_is_under_the_size_goal(folder):
    """204 MB for 14 runs: each HTML 4-15 MB plus an 8 MB notebook. Goal: each report
    < 2 MB apart from _static/, the whole `make report` < 30 MB (14 reports)."""
    from quantlab import suite

    out, err = folder
    sizes = {f.name: f.stat().st_size for f in out.glob("*.html")}
    assert set(sizes) == {f"{n}.html" for n in FOLDER} | {"index.html"}
    big = {k: v for k, v in sizes.items() if v >= REPORT_MAX}
    assert big == {}, f"reports over {REPORT_MAX / 1e6} MB: {big}"
    total, static = suite.folder_size(out)
    m = re.search(r"report size: ([0-9.]+) MB in .* \(([0-9.]+) MB shared in _static/\)", err)
    assert m and float(m.group(1)) == pytest.approx(total / 1e6, abs=0.05), err[-500:]
    notebooks = sum(f.stat().st_size for f in out.glob("*.ipynb"))  # kept here only
    # the shared assets plus 14 reports of the largest size seen stay under the goal
    assert static + 14 * max(sizes.values()) < TOTAL_MAX, (static, sizes)
    assert total - notebooks < TOTAL_MAX


def test_index_filter_sort_and_compare(folder):
    out, _ = folder
    with _index_page((out / "index.html").resolve().as_uri()) as (page, dialogs):
        page.set_viewport_size({"width": 1600, "height": 1000})
        names = lambda: [r for r in page.locator("#runs tbody tr:not([hidden])")  # noqa: E731
                         .evaluate_all("rs => rs.map(r => r.dataset.name)")]
        assert names() == FOLDER
        assert page.locator("#runs .desc").first.inner_text().startswith("Quickstart: ")
        page.fill("#filter", "traditional")
        assert names() == ["02_traditional_strategies"]
        assert page.locator("#shown").inner_text() == "1 of 3 runs shown"
        page.fill("#filter", "explore interactively")  # words of the description
        assert names() == ["01_explore"]
        page.fill("#filter", "")
        durations = {n: float(page.locator(f'#runs tr[data-name="{n}"] td').nth(5)
                              .get_attribute("data-sort")) for n in FOLDER}
        page.locator("#runs th", has_text="duration").click()
        assert names() == sorted(FOLDER, key=durations.get)
        page.locator("#runs th", has_text="duration").click()
        assert names() == sorted(FOLDER, key=durations.get, reverse=True)
        page.locator("#runs th", has_text="run").first.click()
        assert names() == FOLDER
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
def _index_page(index_uri):
    """A page on ``index_uri``, recording every dialog (a script that ran) it opens."""
    with _browser() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            dialogs = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(index_uri)
            yield page, dialogs
        finally:
            browser.close()


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


def test_index_of_hostile_names_runs_no_script(hostile_report):
    root, out, codes, _, _ = hostile_report
    assert codes[:2] == [1, 0]  # markup.ipynb fails on purpose
    index_uri = (out / "index.html").resolve().as_uri()
    with _index_page(index_uri) as (page, dialogs):
        page.wait_for_load_state("load")
        rows = page.locator("#runs tbody tr").count()
        text = page.locator("#runs").inner_text()
        seen = _visit_every_link(page, index_uri)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "index_hostile.png"), full_page=True)
    assert dialogs == [], f"a script ran: {dialogs}"
    assert rows == 5  # both batches
    assert "<img src=x onerror=alert('err')>" in text  # shown as text, not markup
    assert "<script>alert('p')</script>" in text
    assert len(seen) == 5  # every run is rendered, the failed one too
    for href, resolved, landed in seen:
        assert href.startswith("./") and ":" not in href, href
        assert _inside(resolved, out) and _inside(landed, out), (href, resolved, landed)


def test_traversal_name_is_refused_and_nothing_is_written_outside_out(hostile_report):
    root, out, codes, before, after = hostile_report
    assert codes[2] == 2  # ../victim/important: refused before anything ran
    assert after == before, "a file outside --out was written"
    assert not (root / "rep3").exists()
    assert (root / "victim" / "important.ipynb").read_text() == "precious"
    index_uri = (out / "index.html").resolve().as_uri()
    with _index_page(index_uri) as (page, dialogs):
        link = page.locator("#runs a", has_text="%2e%2e%2fvictim")
        resolved = link.evaluate("a => a.href")
        link.click()
        page.wait_for_load_state("load")
        landed, body = page.url, page.locator("body").inner_text()
    assert dialogs == []
    assert _inside(resolved, out) and _inside(landed, out), (resolved, landed)
    assert "precious" not in body  # not root/victim.html
