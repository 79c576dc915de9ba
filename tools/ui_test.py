"""The course as a newcomer meets it, driven by a real browser: `make test-ui` (CI runs it after `make test`).

- JupyterLab on a free local port: notebook 00 runs to the end, its widget renders as a control, and
  choosing another photo changes the output; saved with all its outputs, it leaves git clean (the course's
  git filter); a student notebook with an open exercise runs to its end ("Run All" goes on past the
  failed check, later cells fall back to the reference with a note).
- The built site, opened from disk: every formula typeset (no raw ``$…$``), every embedded widget drawn,
  nothing fetched from outside the machine.

Headless Chromium from Debian (``tools/ensure_chromium.sh``; ``CHROMIUM=/path`` for another one) is driven
by Playwright through ``executable_path``: Playwright's own browser download is never used. Screenshots
go to ``build/ui/`` for a person to look at.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from playwright.sync_api import Page, sync_playwright

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))
import build_site  # noqa: E402
from nbclean import KERNELSPEC, clean_text, install  # noqa: E402
import testenv  # noqa: E402
from testenv import ROOT  # noqa: E402
from exercises import make_student_notebook  # noqa: E402

OUT = ROOT / "build" / "ui"
LOCAL = ("file:", "data:", "blob:", "about:", "http://127.0.0.1:")  # about: is MathJax's own font probe
NOTEBOOK = "00_getting_started.ipynb"
KERNEL_IDLE = """(path) => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.context && w.context.path === path && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle'; }"""
CELLS = """() => window.jupyterapp.shell.currentWidget.content.widgets.filter(c => c.model.type === 'code').map(c => ({
  count: c.model.executionCount, source: c.model.sharedModel.getSource(),
  errors: c.model.outputs.toJSON().filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue),
  text: c.model.outputs.toJSON().map(o => o.text || '').join('') }))"""
RAW_MATH = r"""(selector) => { const bad = [];
  for (const root of document.querySelectorAll(selector)) {
    const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT); let node;
    while ((node = walk.nextNode())) {
      if (node.parentElement.closest('code, pre, script, style')) continue;
      if (/\$[^$\s][^$]*\$|\\\(|\\\[/.test(node.textContent)) bad.push(node.textContent.trim().slice(0, 80));
    } }
  return bad; }"""
EMPTY_WIDGETS = """() => Array.from(
  document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')).filter(s => {
    const area = s.parentElement.querySelector('.widget-subarea');
    return !area || area.getBoundingClientRect().height < 10; }).length"""


def chromium() -> str:
    path = os.environ.get("CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if not path:
        pytest.fail("no Chromium found: run tools/ensure_chromium.sh (Debian) or set CHROMIUM=/path/to/chrome")
    return path


@pytest.fixture(scope="module")
def browser():
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        # nothing outside this machine resolves, whatever a page asks for
        launched = playwright.chromium.launch(executable_path=chromium(), args=[
            "--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"])
        yield launched
        launched.close()


def offline_page(browser, width: int, height: int):
    """A page of ``width`` x ``height`` whose requests to other hosts are aborted and listed in ``page.outside``
    (a generator for a fixture: yields the page, then closes its context)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    outside: list[str] = []
    context.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), lambda route: (outside.append(route.request.url),
                                                                             route.abort()))
    opened = context.new_page()
    opened.on("request", lambda r: None if r.url.startswith(LOCAL) else outside.append(r.url))
    opened.outside = outside
    yield opened
    context.close()


@pytest.fixture
def page(browser):
    yield from offline_page(browser, 1300, 950)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def student_demo() -> nbformat.NotebookNode:
    """A small solution notebook whose student version has an open exercise in the middle."""
    solution = new_notebook(metadata={"kernelspec": dict(KERNELSPEC)}, cells=[
        new_markdown_cell("# Run All past an open exercise"),
        new_code_cell("import torch\nfrom cnn_helpers.core.exercises import check_function, use"),
        new_code_cell("def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"),
        new_code_cell("check_function(double, lambda x: x + x, lambda g: (torch.randn(3, generator=g),))"),
        new_code_cell("twice = use(double, lambda x: x + x)\nprint('after the check:', twice(torch.ones(1)).item())"),
        new_code_cell("print('reached the end')")])
    return make_student_notebook(solution)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=UI test", "-c", "user.email=ui@example.com", *args],
                          check=True, capture_output=True, text=True).stdout


def committed_clone(repo: Path) -> None:
    """A git repository holding notebook 00 as committed, with the course's git filter set up."""
    (repo / "tools").mkdir(parents=True)
    git(repo, "init", "-q")
    shutil.copyfile(TOOLS / "nbclean.py", repo / "tools" / "nbclean.py")
    shutil.copyfile(ROOT / ".gitattributes", repo / ".gitattributes")
    (repo / ".venv").symlink_to(Path(sys.executable).parent.parent)
    (repo / ".git" / "info" / "exclude").write_text(".venv\n.ipynb_checkpoints/\nstudent_demo.ipynb\n")
    committed = clean_text((ROOT / "notebooks" / NOTEBOOK).read_text(encoding="utf-8"))
    (repo / NOTEBOOK).write_text(committed, encoding="utf-8")
    install(repo)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "the course")


@pytest.fixture(scope="module")
def lab():
    """JupyterLab on a free port over copies in build/ui/lab (the repository's notebooks stay untouched)."""
    work, token, port = OUT / "lab", secrets.token_hex(16), free_port()
    shutil.rmtree(work, ignore_errors=True)
    committed_clone(work / "notebooks")
    nbformat.write(student_demo(), work / "notebooks" / "student_demo.ipynb")
    settings = work / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    env = {**os.environ, **testenv.test_environment(), "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "JUPYTER_CONFIG_DIR": str(work / "config"), "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(work / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(work / "workspaces")}
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work / 'notebooks'}",
               "--LabApp.expose_app_in_browser=True", "--ServerApp.port_retries=0"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    with open(work / "lab.log", "w") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start: {(work / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def run_all(page: Page, base: str, token: str, name: str) -> list[dict]:
    """Open ``name`` in JupyterLab, run all cells, and return every code cell's count, errors and text."""
    page.goto(f"{base}/lab/tree/{name}?reset&token={token}")  # reset: no tabs restored from an earlier test
    page.wait_for_function(KERNEL_IDLE, arg=name, timeout=180_000, polling=500)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")  # resolves when all ran
    page.wait_for_function(KERNEL_IDLE, arg=name, timeout=600_000, polling=500)
    return page.evaluate(CELLS)


def test_notebook_runs_and_its_widget_reacts_in_jupyterlab(lab, page):
    cells = run_all(page, *lab, NOTEBOOK)
    assert all(c["count"] for c in cells if c["source"].strip()), "every code cell ran"
    assert not [c["errors"] for c in cells if c["errors"]]
    index = next(i for i, c in enumerate(page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.widgets.map(c => c.model.sharedModel.getSource())"))
        if "widgets.interactive(" in c)
    page.evaluate(f"() => window.jupyterapp.shell.currentWidget.content.scrollToItem({index}, 'start')")
    control = page.locator(".widget-interact .widget-dropdown select").first
    control.wait_for(timeout=60_000)  # rendered as a real control, not as the text repr
    figure = page.locator(".widget-interact .widget-output img").first
    figure.wait_for(timeout=60_000)
    before = figure.get_attribute("src")
    page.locator(".widget-interact").first.screenshot(path=OUT / "lab_widget_astronaut.png")
    control.select_option("cat")
    page.wait_for_function("(before) => { const img = document.querySelector('.widget-interact .widget-output img');"
                           " return !!img && img.getAttribute('src') !== before; }", arg=before, timeout=120_000)
    page.wait_for_function(KERNEL_IDLE, arg=NOTEBOOK, timeout=120_000)
    page.locator(".widget-interact").first.screenshot(path=OUT / "lab_widget_cat.png")
    assert not page.outside, f"JupyterLab fetched from outside the machine: {page.outside}"
    # saved with every output and the kernelspec JupyterLab writes: git sees no change (tools/nbclean.py);
    # `git status` may list the file until `git add` (its size changed), but nothing can be committed
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=60_000)
    repo = OUT / "lab" / "notebooks"
    saved = (repo / NOTEBOOK).read_text(encoding="utf-8")
    assert "image/png" in saved and "Python 3 (ipykernel)" in saved
    assert git(repo, "diff") == ""
    git(repo, "add", NOTEBOOK)
    assert git(repo, "status", "--porcelain") == ""


def test_student_notebook_runs_past_an_open_exercise(lab, page):
    cells = run_all(page, *lab, "student_demo.ipynb")
    page.screenshot(path=OUT / "lab_student_run_all.png")
    check, fallback, last = cells[2], cells[3], cells[4]
    assert check["errors"] == ["CheckFailed: double is not implemented yet: replace `raise NotImplementedError()` "
                               "with your code"], "the grader sees the failed check"
    assert fallback["count"] and "double has not passed its check yet" in fallback["text"]
    assert "after the check: 2.0" in fallback["text"] and "reached the end" in last["text"]


@pytest.fixture(scope="module")
def site() -> Path:
    """Notebook 00 executed (formulas and a widget) and every notebook as stored, built offline."""
    out = OUT / "site"
    shutil.rmtree(out, ignore_errors=True)
    assert build_site.main(["--out", str(out), str(ROOT / "notebooks" / NOTEBOOK)]) == 0
    stored = sorted(p for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb") if p.name != NOTEBOOK)
    assert build_site.main(["--no-execute", "--out", str(out / "stored"), *map(str, stored)]) == 0
    return out


def test_site_opened_from_disk_shows_formulas_and_widgets_offline(site, page):
    pages = [site / "index.html", site / f"{Path(NOTEBOOK).stem}.html", *sorted((site / "stored").glob("[0-9]*.html"))]
    for path in pages:
        page.goto(path.as_uri())
        page.wait_for_function("() => window.MathJax && MathJax.isReady", timeout=60_000)
        page.evaluate("() => new Promise(done => MathJax.Hub.Queue(done))")  # after every typeset pass
        assert page.evaluate(RAW_MATH, ".jp-RenderedMarkdown, .goals") == [], f"raw math on {path.name}"
        widgets = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
        if widgets:
            page.wait_for_function(f"() => ({EMPTY_WIDGETS})() === 0", timeout=60_000)
        assert page.evaluate(EMPTY_WIDGETS) == 0, f"empty widget area on {path.name}"
        shown = page.locator(".widget-subarea, .MathJax").first  # the screenshot shows a widget or a formula
        if shown.count():
            shown.scroll_into_view_if_needed()
        page.screenshot(path=OUT / f"site_{path.stem}.png")
        assert not page.outside, f"{path.name} fetched from outside the machine: {page.outside}"
    assert page.evaluate("() => document.title").endswith("Convolutional networks, from the inside")
