"""Execute the notebooks and write a browsable site that works offline: one page per notebook and an index.

    python tools/build_site.py [--student] [--full] [--online] [--no-execute | --fresh] [--out DIR] [notebooks/NN_x.ipynb ...]

Two sites from the same notebooks:
- the solutions site (default, ``build/site``; ``make site``), for self-study: the notebooks as they are;
- the student site (``--student``, ``build/site-student``; ``make site SOLUTIONS=0``), for a course whose
  exercises are handed out: the student versions (solutions replaced by blanks, as ``make exercises``
  writes them), executed, so the demos show and each check says in one line "not implemented yet".

Execution runs in the test environment (tools/testenv.py): fast mode, offline, the network blocked, an
empty torch hub cache, so the site shows what every student gets. A notebook whose current run is kept
(tools/nbcache.py; ``make test`` keeps every notebook that passed) is not executed again unless ``--fresh``. ``--full`` switches to full mode,
``--online`` lifts the offline settings (torchvision weights from your own torch hub cache, or downloaded).
MathJax and the widget renderer are served from ``assets/`` next to the pages
(tools/site_assets.py), so the site works opened from disk without a network.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbconvert.filters.markdown import markdown2html

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nbcache  # noqa: E402
from site_assets import MATHJAX_FONTS, AssetsMissing, install_into  # noqa: E402
from testenv import ROOT, test_environment  # noqa: E402
from exercises import make_student_notebook  # noqa: E402

COURSE = "Convolutional networks, from the inside"
TEMPLATE_DIR = Path(__file__).resolve().parent / "site_template"
ONLINE_OFF = ("CNN_OFFLINE", "CNN_BLOCK_NETWORK", "TORCH_HOME")  # the settings --online leaves to the user


@dataclass
class Page:
    stem: str
    title: str
    goals: str  # Markdown
    seconds: float = 0.0
    failed: str = ""
    reused: bool = False


def title_and_goals(notebook: nbformat.NotebookNode, fallback: str) -> tuple[str, str]:
    """The first ``#`` heading and the learning goals (Markdown: the paragraph and list after the label,
    up to the first blank line, so the lecture-notes quotes that follow stay out)."""
    markdown = [c.source for c in notebook.cells if c.cell_type == "markdown"]
    title = next((m.group(1) for s in markdown if (m := re.search(r"^#\s+(.+)$", s, re.M))), fallback)
    goals = ""
    for source in markdown:
        match = re.search(r"\*\*Learning goals\.?\*\*(.*?)(?:\n[ \t]*\n|\Z)", source, re.S)
        if match:
            goals = match.group(1).strip()
            break
    return title.strip(), goals


def site_environment(*, full: bool, online: bool) -> dict[str, str]:
    """The kernel's environment: the test environment, figures inline, optionally full mode and online."""
    env = {**test_environment(), "MPLBACKEND": nbcache.INLINE}
    if full:
        env["CNN_FAST"] = "0"
    if online:
        for key in ONLINE_OFF:
            env.pop(key)
        env["PYTHONPATH"] = str(ROOT)  # without tools/netblock
    return env


def make_exporter(urls: dict[str, str]) -> HTMLExporter:
    exporter = HTMLExporter(template_name="lab", extra_template_paths=[str(TEMPLATE_DIR)],
                            template_file="page.html.j2")
    for key, value in urls.items():
        setattr(exporter, key, value)
    return exporter


def render(path: Path, out_dir: Path, exporter: HTMLExporter, *, student: bool, env: dict[str, str] | None,
           nav: dict, fresh: bool = False) -> Page:
    """Execute one notebook (unless ``env`` is None; its current kept run unless ``fresh``, tools/nbcache.py) and
    write ``out_dir/<stem>.html``."""
    notebook = nbformat.read(path, as_version=4)
    if student:
        notebook = make_student_notebook(notebook)
    page = Page(path.stem, *title_and_goals(notebook, path.stem))
    if env is not None:  # a notebook that stops with an error keeps its page, and the build goes on
        notebook = nbcache.executed_notebook(path, notebook, env=env, reuse=not fresh)
        run = notebook.metadata["course_run"]
        page.failed, page.seconds, page.reused = run["failed"], run["wall_seconds"], run["reused"]
    notebook.metadata["title"] = f"{page.title} · {COURSE}"
    resources = {"course_nav": nav, "course_mathjax_config": MATHJAX_FONTS}  # read by site_template/page.html.j2
    body, _ = exporter.from_notebook_node(notebook, resources=resources)
    (out_dir / f"{path.stem}.html").write_text(body, encoding="utf-8")
    return page


def write_index(out_dir: Path, pages: list[Page], *, student: bool, mathjax_url: str, mode: str) -> Path:
    """``index.html``: every notebook with its title and its learning goals, rendered."""
    items = "\n".join(
        f'<li><a href="{html.escape(p.stem)}.html">{html.escape(p.title)}</a>'
        + f' · <a class="slides" href="../slides/{html.escape(p.stem)}.slides.html">slides</a>'
        + (" <strong>(stopped with an error)</strong>" if p.failed else "")
        + f'<div class="goals">{markdown2html("**Learning goals.** " + p.goals)}</div></li>' for p in pages)
    kind = ("Student version: exercises are left for you to write; each check says whether your code is right."
            if student else "With solutions, for self-study.")
    run = "make lab-student" if student else "make lab"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(COURSE)}</title>
<script type="text/x-mathjax-config">{MATHJAX_FONTS}</script>
<script src="{html.escape(mathjax_url)}"></script>
<style>body{{font-family:system-ui,sans-serif;max-width:52em;margin:2em auto;padding:0 1em;line-height:1.45;color:#222}}
ol.notebooks>li{{margin-bottom:1.4em}} ol.notebooks>li>a{{font-size:1.25em;font-weight:600}}
.goals{{color:#444}} .goals p{{margin:.3em 0}} .goals ol{{margin:.2em 0}} .kind{{color:#555}}</style>
</head><body><h1>{html.escape(COURSE)}</h1>
<p class="kind">{kind} Pages {mode}.</p>
<p>To run the notebooks yourself: <code>{run}</code> (sets everything up, then opens JupyterLab).
Each notebook's lecture slides (1280 × 720, offline) are in <code>build/slides/</code>: <code>make slides</code>.</p>
<ol class="notebooks">
{items}
</ol></body></html>
"""
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def add_execution_options(parser: argparse.ArgumentParser) -> None:
    """How the notebooks are executed, shared by the site and the slides: --full, --online, --no-execute, --fresh."""
    parser.add_argument("--full", action="store_true", help="full mode instead of fast mode")
    parser.add_argument("--online", action="store_true", help="allow downloads and your own torch hub cache")
    parser.add_argument("--no-execute", action="store_true", help="the stored notebooks, not executed")
    parser.add_argument("--fresh", action="store_true", help="execute even where a current run is kept")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--student", action="store_true", help="the student site: exercises blank, no solutions")
    add_execution_options(parser)
    parser.add_argument("--out", type=Path, help="default: build/site (build/site-student with --student)")
    args = parser.parse_args(argv)
    out = args.out or ROOT / "build" / ("site-student" if args.student else "site")
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        urls = install_into(out)
    except AssetsMissing as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    exporter = make_exporter(urls)
    env = None if args.no_execute else site_environment(full=args.full, online=args.online)
    kind = "student version" if args.student else "with solutions"
    stems = [(p.stem, title_and_goals(nbformat.read(p, as_version=4), p.stem)[0]) for p in paths]
    pages = []
    for i, path in enumerate(paths):
        nav = {"previous": stems[i - 1] if i else None, "next": stems[i + 1] if i + 1 < len(paths) else None,
               "kind": kind}
        page = render(path, out, exporter, student=args.student, env=env, nav=nav, fresh=args.fresh)
        print(f"{path.name}: {page.title} ({'kept run of ' if page.reused else ''}{page.seconds:.1f} s)"
              f"{'  FAILED: ' + page.failed if page.failed else ''}", flush=True)
        pages.append(page)
    mode = "not executed: the notebooks' stored outputs" if env is None else (
        f"executed in {'full' if args.full else 'fast'} mode, {'online' if args.online else 'offline'}")
    print(f"wrote {write_index(out, pages, student=args.student, mathjax_url=urls['mathjax_url'], mode=mode)}")
    print(f"total {sum(p.seconds for p in pages):.1f} s")
    failed = [p.stem for p in pages if p.failed]
    if failed:
        print(f"notebooks that stopped with an error (their pages show it): {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
