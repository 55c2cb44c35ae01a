"""JupyterLab in a real browser: open 01_explore, run all, widgets and bokeh render, a
slider drag changes the plot; and a rendered report opens from disk with the network
blocked. Headless Debian Chromium driven by playwright (no browser download).

Without a browser the test skips locally and FAILS under CI=true (never a silent skip).
Screenshots land in tests/artifacts/ (ignored by git).
"""
import os
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


def test_report_renders_offline_from_disk(tmp_path):
    from quantlab import suite

    run = suite.Run(str(REPO / "notebooks" / "00_quickstart.ipynb"))
    suite.run_suite([run], tmp_path, render=True)
    assert run.status == "ok", run.error
    with _browser() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context()
        requests = []

        def block(route):
            requests.append(route.request.url)
            route.abort()

        context.route("http://*/**", block)
        context.route("https://*/**", block)
        page = context.new_page()
        page.goto(Path(run.html).as_uri())
        page.wait_for_selector(".bk-Canvas, .bk-Figure, canvas", timeout=30_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report_offline.png"), full_page=True)
        n_canvas = page.locator("canvas").count()
        browser.close()
    assert n_canvas > 0, "bokeh did not draw in the offline report"
    assert requests == [], f"the report tried to fetch {requests}"


def test_report_with_widgets_renders_them_offline(tmp_path):
    from quantlab import suite

    if suite._js_asset(suite.WIDGET_RENDERER) is None:
        pytest.fail("npm assets missing: `make install` puts them in .cache/npm")
    run = suite.Run(str(REPO / "notebooks" / "01_explore.ipynb"))
    suite.run_suite([run], tmp_path, render=True)
    assert run.status == "ok", run.error
    html = Path(run.html).read_text()
    assert "data:text/javascript;base64," in html  # renderer and require.js travel inline
    requests = []

    def block(route):
        requests.append(route.request.url)
        route.abort()

    with _browser() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context()
        context.route("http://*/**", block)
        context.route("https://*/**", block)
        page = context.new_page()
        page.goto(Path(run.html).as_uri())
        page.wait_for_selector(".widget-slider", timeout=30_000)
        page.wait_for_timeout(3000)  # let the embedded bokeh widgets draw
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report_widgets_offline.png"), full_page=True)
        readout = page.locator(".widget-slider", has_text="window").first.locator(
            ".widget-readout").first.inner_text()
        n_canvas = page.locator("canvas").count()
        browser.close()
    assert readout == "20"  # the slider's saved state, rendered with no network
    assert n_canvas >= 5, "the embedded bokeh widgets did not draw"  # explorers + static
    assert requests == [], f"the report tried to fetch {requests}"
