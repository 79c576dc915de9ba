"""Execute the notebooks and write each as reveal.js slides for a 1280 x 720 projector, working offline.

    python tools/build_slides.py [--full] [--online] [--no-execute | --fresh] [--out DIR] [notebooks/NN_x.ipynb ...]

Writes ``build/slides/<NN_topic>.slides.html``, ``index.html`` and ``times.md`` (how long each notebook ran).
Execution is the site's (tools/build_site.py): fast mode, offline, the network blocked; ``--full`` full mode,
``--online`` downloads allowed. A notebook whose current run is kept (tools/nbcache.py: ``make test`` keeps every
notebook that passed) is not executed again unless ``--fresh``. reveal.js, MathJax and the widget renderer are
copied into ``assets/`` (tools/site_assets.py), so the slides work opened from disk without a network.

The slide structure is the notebook's own ``slideshow`` metadata (tools/slides.py); a notebook whose metadata
disagrees with the rules is refused. What a slide shows of each cell is decided in tools/slide_deck.py.
"""

from __future__ import annotations

import argparse
import html
import sys
from pathlib import Path

import nbformat
from nbconvert import SlidesExporter

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nbcache  # noqa: E402
import slides  # noqa: E402
from build_site import COURSE, add_execution_options, site_environment, title_and_goals  # noqa: E402
from site_assets import MATHJAX_FONTS, AssetsMissing, install_slides_into  # noqa: E402
from slide_deck import SLOW_SECONDS, deck  # noqa: E402
from testenv import ROOT  # noqa: E402

TEMPLATE_DIR = Path(__file__).resolve().parent / "slides_template"


# ---- writing ----------------------------------------------------------------------------------------------------

def make_exporter(urls: dict[str, str]) -> SlidesExporter:
    exporter = SlidesExporter(template_name="reveal", extra_template_paths=[str(TEMPLATE_DIR)],
                              template_file="slides.html.j2")
    exporter.reveal_transition, exporter.reveal_theme = "none", "white"  # white: its font ships with reveal.js
    for key, value in urls.items():
        setattr(exporter, key, value)
    return exporter


def render(path: Path, out: Path, exporter: SlidesExporter, *, env: dict[str, str] | None, fresh: bool) -> dict:
    """Execute one notebook, or take its current kept run (tools/nbcache.py), and write ``out/<stem>.slides.html``;
    a summary of the run."""
    notebook = nbformat.read(path, as_version=4)
    wrong = slides.problems(notebook)
    if wrong:
        raise SystemExit(f"{path.name}: slide metadata differs from the rules (run `python tools/slides.py apply`):\n  "
                         + "\n  ".join(wrong[:5]))
    if env is not None:
        notebook = nbcache.executed_notebook(path, notebook, env=env, reuse=not fresh)
    run = notebook.metadata.get("course_run", {"mode": "not executed", "seconds": {}})
    code = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
    seconds = {code[int(n)]: s for n, s in run.get("seconds", {}).items() if int(n) < len(code)}
    shown = deck(notebook, seconds, run["mode"])
    title = title_and_goals(notebook, path.stem)[0]
    shown.metadata["title"] = f"{title} · {COURSE}"
    body, _ = exporter.from_notebook_node(shown, resources={"course_mathjax_config": MATHJAX_FONTS})
    (out / f"{path.stem}.slides.html").write_text(body, encoding="utf-8")
    count = sum(c.metadata["slideshow"]["slide_type"] in ("slide", "subslide") for c in shown.cells) + (
        shown.cells[0].metadata["slideshow"]["slide_type"] not in ("slide", "subslide"))
    return {"stem": path.stem, "title": title, "slides": count, "seconds": run.get("wall_seconds") or 0.0,
            "cpu_seconds": run.get("cpu_seconds"), "load": run.get("load"), "failed": run.get("failed", ""),
            "reused": run.get("reused", False), "mode": run["mode"], "cells": list(run.get("seconds", {}).values())}


def write_index(out: Path, summaries: list[dict]) -> Path:
    items = "\n".join(
        f'<li><a href="{html.escape(s["stem"])}.slides.html">{html.escape(s["title"])}</a> – {s["slides"]} slides'
        + (f', {html.escape(s["mode"])}' if s["mode"] else "")
        + (" <strong>(stopped with an error)</strong>" if s["failed"] else "") + "</li>" for s in summaries)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Slides · {html.escape(COURSE)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:52em;margin:2em auto;padding:0 1em;line-height:1.5;color:#222;
font-size:20px}} li{{margin:.4em 0}}</style></head><body>
<h1>{html.escape(COURSE)}: slides</h1>
<p>One deck per notebook, for a 1280 × 720 projector. Keys: → or Space next, ↓ next sub-slide, Esc overview,
S speaker notes (with each cell's run time), F full screen. For live slides with a kernel: <code>make lab</code>,
open a notebook, Run All, then start the slideshow (Alt+R).</p>
<ol>
{items}
</ol></body></html>
"""
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def write_times(out: Path, summaries: list[dict]) -> Path:
    """``times.md``: how long each notebook ran, as a Markdown table for the README's lecture-mode section."""
    rows = ["| notebook | slides | mode | run (wall clock) | kernel CPU | slowest cell | cells over 10 s | load |",
            "|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        cells = sorted(s["cells"], reverse=True)
        cpu = f"{s['cpu_seconds']:.0f} s" if s["cpu_seconds"] is not None else "?"
        rows.append(f"| `{s['stem']}` | {s['slides']} | {s['mode']} | {s['seconds']:.0f} s | {cpu} | "
                    f"{cells[0] if cells else 0:.0f} s | {sum(c >= SLOW_SECONDS for c in cells)} | {s['load']} |")
    rows.append(f"| all | {sum(s['slides'] for s in summaries)} | | {sum(s['seconds'] for s in summaries) / 60:.1f} min"
                f" | {sum(s['cpu_seconds'] or 0 for s in summaries) / 60:.1f} min | | | |")
    note = ("\nWall clock and CPU seconds of the run the slides show (kept from `make test` where it was current); "
            "load: the machine's load average when that run started.\n")
    path = out / "times.md"
    path.write_text("\n".join(rows) + "\n" + note, encoding="utf-8")
    return path


def build(paths: list[Path], out: Path, *, env: dict[str, str] | None, fresh: bool = False) -> list[dict]:
    """Every deck of ``paths`` into ``out``, with ``index.html`` and ``times.md``; one summary per notebook
    (``failed``: the last line of the error a notebook stopped with, else "")."""
    out.mkdir(parents=True, exist_ok=True)
    exporter = make_exporter(install_slides_into(out))
    summaries = []
    for path in paths:
        summary = render(path, out, exporter, env=env, fresh=fresh)
        how = "kept run of" if summary["reused"] else "ran in"
        print(f"{path.name}: {summary['slides']} slides ({how} {summary['seconds']:.0f} s, {summary['mode']})"
              f"{'  FAILED: ' + summary['failed'] if summary['failed'] else ''}", flush=True)
        summaries.append(summary)
    print(f"wrote {write_index(out, summaries)} and {write_times(out, summaries)}")
    return summaries


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    add_execution_options(parser)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "slides")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    env = None if args.no_execute else site_environment(full=args.full, online=args.online)
    try:
        summaries = build(paths, args.out, env=env, fresh=args.fresh)
    except AssetsMissing as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    failed = [f"{s['stem']}: {s['failed']}" for s in summaries if s["failed"]]
    if failed:
        print("notebooks that stopped with an error (their slides show where):\n  " + "\n  ".join(failed),
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
