"""Lecture mode in a real browser (part of `make test-ui`): the slides of `make slides` on a 1280 x 720 projector,
and RISE's live slideshow in JupyterLab.

- Every slide of every notebook's deck (``build/slides``, built here from the runs `make test` kept while they are
  current, tools/nbcache.py; a notebook without one is executed) is visited at 1280 x 720, one test per notebook,
  and measured in the DOM: nothing may reach past the slide's edges or hide in a scrolled box, body text must be at
  least 20 px, a figure at least 160 px high (or 900 px wide: a strip), and every slide has speaker notes. A
  screenshot of each goes to ``build/slides/shots/``, twelve to a contact sheet (``<NN_topic>_sheet_K.png``) for a
  person to look at, with what was measured in ``<NN_topic>.json``. Nothing may be requested from outside the machine.
- JupyterLab with jupyterlab-rise: notebook 00 runs, the RISE slideshow starts from the notebook, a cell is
  executed on a slide (its output appears there), and the photo widget reacts on its slide where RISE can render
  widgets (not with ipywidgets 8 and jupyterlab-rise 0.43.1: the README's lecture-mode section).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))
import build_slides  # noqa: E402
from testenv import ROOT  # noqa: E402
from ui_test import KERNEL_IDLE, LOCAL, NOTEBOOK, browser, chromium, lab, offline_page, run_all  # noqa: E402,F401

SLIDES = ROOT / "build" / "slides"
SHOTS = SLIDES / "shots"
WIDTH, HEIGHT = 1280, 720
MIN_FONT_PX = 20
MIN_FIGURE_PX, WIDE_FIGURE_PX = 160, 900  # a figure is at least this high, or a strip at least this wide


def too_small(width: int, height: int) -> bool:
    """A figure squeezed on its slide: neither ``MIN_FIGURE_PX`` high nor a strip across the slide."""
    return height < MIN_FIGURE_PX and width < WIDE_FIGURE_PX

# Everything on the current slide that reaches past its edges, sits in a box that scrolls or clips it, or is set
# smaller than MIN_FONT_PX (at the slide's scale), and the height of each figure. Speaker notes, MathJax's own
# boxes and reveal's controls are left out; a folded code cell counts as its one summary line.
MEASURE = """([width, height]) => {
  const slide = Reveal.getCurrentSlide(), scale = Reveal.getScale(), box = slide.getBoundingClientRect();
  const skip = el => el.closest('aside.notes, .MathJax, .MathJax_Display, .MathJax_Preview, svg, script, style')
    || (el.closest('details:not([open])') && !el.closest('summary'));
  const out = {overflow: [], small: [], figures: [], notes: 0,
               size: [slide.scrollWidth, slide.scrollHeight]};
  if (slide.scrollHeight > height + 1) out.overflow.push(`slide content ${slide.scrollHeight} px high`);
  if (slide.scrollWidth > width + 1) out.overflow.push(`slide content ${slide.scrollWidth} px wide`);
  for (const el of slide.querySelectorAll('*')) {
    if (skip(el) || !el.getClientRects().length) continue;
    const r = el.getBoundingClientRect(), style = getComputedStyle(el);
    const name = el.tagName.toLowerCase() + (el.className && typeof el.className === 'string'
      ? '.' + el.className.trim().split(/\\s+/)[0] : '');
    if (r.right > box.left + width * scale + 1 || r.bottom > box.top + height * scale + 1 || r.left < box.left - 1)
      out.overflow.push(`${name} at ${Math.round(r.left / scale)}..${Math.round(r.right / scale)} x `
                        + `${Math.round(r.top / scale)}..${Math.round(r.bottom / scale)}`);
    if (/(auto|scroll|hidden)/.test(style.overflowX + style.overflowY)
        && (el.scrollHeight > el.clientHeight + 2 || el.scrollWidth > el.clientWidth + 2)
        && el.clientHeight > 0)
      out.overflow.push(`${name} scrolls or clips (${el.scrollWidth}x${el.scrollHeight} in ${el.clientWidth}x${el.clientHeight})`);
    const text = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
    const px = parseFloat(style.fontSize) * scale;
    if (text && px < %(font)s - 0.05) out.small.push(`${name} ${px.toFixed(1)} px: ${el.textContent.trim().slice(0, 40)}`);
    if (el.tagName === 'IMG') out.figures.push([Math.round(r.width / scale), Math.round(r.height / scale)]);
  }
  out.notes = Array.from(slide.querySelectorAll('aside.notes')).map(a => a.textContent.trim()).join(' ').length;
  return out; }""".replace("%(font)s", str(MIN_FONT_PX))
CURRENT_FITTED = """() => { const s = Reveal.getCurrentSlide();
  return !!s && s.dataset.fitted === '1' && (!window.MathJax || !MathJax.Hub || MathJax.Hub.queue.pending === 0); }"""


NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def built(request) -> dict[str, dict]:
    """`make slides` (fast, offline) for the decks this run tests, from the runs `make test` kept where current:
    each notebook's summary (tools/build_slides.py), by stem."""
    chosen = sorted({item.callspec.params["notebook"] for item in request.session.items
                     if "notebook" in getattr(getattr(item, "callspec", None), "params", {})})
    summaries = build_slides.build(chosen, SLIDES, env=build_slides.site_environment(full=False, online=False))
    SHOTS.mkdir(parents=True, exist_ok=True)
    return {s["stem"]: s for s in summaries}


@pytest.fixture
def projector(browser):
    yield from offline_page(browser, WIDTH, HEIGHT)


def visit(page, deck: Path) -> list[dict]:
    """Every slide of ``deck``: measured, and photographed into SHOTS."""
    stem = deck.name.split(".")[0]
    for old in SHOTS.glob(f"{stem}_*.png"):
        old.unlink()
    page.goto(deck.as_uri())
    page.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=60_000)
    if page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count():
        page.wait_for_function("() => !!document.querySelector('.widget-subarea')", timeout=60_000)
    found = []
    indices = page.evaluate("() => Reveal.getSlides().map(s => Reveal.getIndices(s))")
    for n, where in enumerate(indices, start=1):
        page.evaluate("([h, v]) => Reveal.slide(h, v)", [where["h"], where.get("v") or 0])
        page.wait_for_function(CURRENT_FITTED, timeout=30_000)
        page.wait_for_timeout(50)
        result = page.evaluate(MEASURE, [WIDTH, HEIGHT])
        result["slide"] = n
        page.screenshot(path=SHOTS / f"{stem}_{n:02d}.png")
        found.append(result)
    contact_sheets(stem, len(found))
    return found


def contact_sheets(stem: str, count: int, per_sheet: int = 12) -> None:
    """``shots/<stem>_sheet_K.png``: the deck's screenshots 12 to a sheet (3 x 4, half size), numbered."""
    from PIL import Image, ImageDraw

    for old in SHOTS.glob(f"{stem}_sheet_*.png"):
        old.unlink()
    w, h = WIDTH // 2, HEIGHT // 2
    for k, first in enumerate(range(0, count, per_sheet), start=1):
        numbers = range(first + 1, min(count, first + per_sheet) + 1)
        sheet = Image.new("RGB", (3 * w + 8, 4 * h + 12), "#777")
        for i, n in enumerate(numbers):
            shot = Image.open(SHOTS / f"{stem}_{n:02d}.png").convert("RGB").resize((w, h))
            ImageDraw.Draw(shot).text((4, 4), str(n), fill="#c00")
            sheet.paste(shot, ((i % 3) * (w + 4), (i // 3) * (h + 4)))
        sheet.save(SHOTS / f"{stem}_sheet_{k}.png")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_slide_fits_a_1280x720_projector_and_nothing_comes_from_outside(built, projector, notebook):
    deck = SLIDES / f"{notebook.stem}.slides.html"
    slides = visit(projector, deck)  # a notebook that stopped with an error is shown too: its slides say where
    report = {"slides": len(slides), "overflowing": [s["slide"] for s in slides if s["overflow"]],
              "small_text": [s["slide"] for s in slides if s["small"]],
              "without_notes": [s["slide"] for s in slides if not s["notes"]],
              "smallest_figure_px": min((f for s in slides for f in s["figures"]), key=lambda f: f[1], default=None),
              "problems": {s["slide"]: s["overflow"] + s["small"] for s in slides if s["overflow"] or s["small"]}}
    (SHOTS / f"{notebook.stem}.json").write_text(json.dumps(report, indent=1))
    problems = []
    for s in slides:
        where = f"slide {s['slide']} (shots/{notebook.stem}_{s['slide']:02d}.png)"
        problems += [f"{where}: overflows: {'; '.join(s['overflow'][:3])}"] if s["overflow"] else []
        problems += [f"{where}: text below {MIN_FONT_PX} px: {'; '.join(s['small'][:3])}"] if s["small"] else []
        problems += [f"{where}: a figure shown at only {w} x {h} px" for w, h in s["figures"] if too_small(w, h)]
        problems += [f"{where}: no speaker notes"] if not s["notes"] else []
    assert not projector.outside, f"{deck.name} fetched from outside the machine: {projector.outside}"
    failed = built[notebook.stem]["failed"]
    assert not failed, f"{notebook.name} stopped with an error, so its deck is incomplete: {failed}"
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:40])


def test_rise_slideshow_starts_in_jupyterlab_and_runs_a_cell_on_a_slide(lab, browser):
    base, token = lab
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    outside: list[str] = []
    context.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), lambda route: (outside.append(route.request.url),
                                                                             route.abort()))
    errors: list[str] = []
    context.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page = context.new_page()
    try:
        run_all(page, base, token, NOTEBOOK)  # the lecturer runs the notebook, then starts the slideshow
        sources = page.evaluate("() => window.jupyterapp.shell.currentWidget.content.widgets"
                                ".map(c => c.model.sharedModel.getSource())")
        index = next(i for i, s in enumerate(sources) if "widgets.interactive(" in s)
        page.evaluate(f"() => {{ window.jupyterapp.shell.currentWidget.content.activeCellIndex = {index}; }}")
        with context.expect_page(timeout=60_000) as opened:
            page.evaluate("() => window.jupyterapp.commands.execute('RISE:slideshow')")
        rise = opened.value
        rise.wait_for_selector(".reveal .slides", timeout=120_000)
        cell = rise.locator(".reveal .slides section.present .jp-CodeCell:visible", has_text="widgets.interactive(")
        try:  # the slideshow opens on the active cell's slide
            cell.wait_for(timeout=120_000)
        finally:
            rise.screenshot(path=SHOTS.parent / "rise_before.png")
        count = cell.locator(".jp-InputPrompt").inner_text()
        cell.locator(".cm-content").click()
        rise.keyboard.press("Control+Enter")  # run the cell and stay on its slide
        rise.wait_for_function("""(before) => { const cell = Array.from(document.querySelectorAll(
            '.reveal section.present .jp-CodeCell')).find(c => c.textContent.includes('widgets.interactive('));
            return !!cell && cell.querySelector('.jp-InputPrompt').textContent !== before
                && !cell.querySelector('.jp-InputPrompt').textContent.includes('*')
                && !!cell.querySelector('.jp-OutputArea-output'); }""", arg=count, timeout=120_000)
        rise.screenshot(path=SHOTS.parent / "rise_ran_a_cell.png")
        # ipywidgets 8 controls do not render in jupyterlab-rise 0.43.1's slideshow (upstream: jupyterlab-contrib/rise
        # issues 119 and 126; the widget manager extension fails to load there): when they do, they must react
        control = cell.locator(".widget-dropdown select").first
        if control.count():
            figure = cell.locator(".widget-output img").first
            figure.wait_for(timeout=120_000)
            before = figure.get_attribute("src")
            control.select_option("cat")
            rise.wait_for_function("""(before) => { const img = document.querySelector(
                '.reveal section.present .widget-output img'); return !!img && img.getAttribute('src') !== before; }""",
                                   arg=before, timeout=120_000)
            rise.screenshot(path=SHOTS.parent / "rise_widget_cat.png")
        else:
            print("RISE shows the widget as text: ipywidgets 8 in jupyterlab-rise 0.43.1 (upstream issue):",
                  [e for e in errors if "widgets" in e or "shared" in e.lower()][:3])
        assert not outside, f"JupyterLab or RISE fetched from outside the machine: {outside}"
    finally:
        context.close()
