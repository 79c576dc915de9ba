"""Execute the notebooks and write browsable HTML with an index page.

    python tools/build_site.py [--full] [--no-execute] [--out build/site] [notebooks/NN_x.ipynb ...]

Fast mode unless --full. --no-execute converts the notebooks as stored (quick, for checking links).
Writes one HTML page per notebook and ``index.html`` listing them with their learning goals.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent


def title_and_goals(notebook: nbformat.NotebookNode, fallback: str) -> tuple[str, str]:
    """The first heading, and the text of the first markdown cell after it (the learning goals)."""
    markdown = [c.source for c in notebook.cells if c.cell_type == "markdown"]
    title = next((m.group(1) for s in markdown if (m := re.search(r"^#\s+(.+)$", s, re.M))), fallback)
    goals = ""
    for source in markdown:
        if "learning goals" in source.lower():
            goals = source.split("**Learning goals.**")[-1].strip()
            break
    return title.strip(), goals


def render(path: Path, out_dir: Path, execute: bool, full: bool) -> tuple[str, str, float]:
    notebook = nbformat.read(path, as_version=4)
    seconds = 0.0
    if execute:
        os.environ.update({"CNN_FAST": "0" if full else "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"})
        start = time.perf_counter()
        NotebookClient(notebook, timeout=1800, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        seconds = time.perf_counter() - start
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(notebook)
    (out_dir / f"{path.stem}.html").write_text(body, encoding="utf-8")
    title, goals = title_and_goals(notebook, path.stem)
    return title, goals, seconds


def write_index(out_dir: Path, entries: list[tuple[str, str, str]]) -> Path:
    items = "\n".join(
        f'<li><a href="{html.escape(stem)}.html">{html.escape(title)}</a>'
        f'<pre class="goals">{html.escape(goals)}</pre></li>'
        for stem, title, goals in entries
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>CNN course</title>
<style>body{{font-family:sans-serif;max-width:50em;margin:2em auto;line-height:1.4}}
li{{margin-bottom:1.2em}} a{{font-size:1.2em}} .goals{{white-space:pre-wrap;font-family:inherit;color:#444;margin:.3em 0}}</style>
</head><body><h1>Convolutional networks, from the inside</h1>
<p>The course notebooks, executed. To run them yourself: <code>make lab</code>.</p>
<ol>
{items}
</ol></body></html>
"""
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--full", action="store_true", help="full mode instead of fast mode")
    parser.add_argument("--no-execute", action="store_true", help="convert the stored notebooks without running them")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    args.out.mkdir(parents=True, exist_ok=True)
    entries = []
    for path in paths:
        title, goals, seconds = render(path, args.out, not args.no_execute, args.full)
        print(f"{path.name}: {title} ({seconds:.1f} s)")
        entries.append((path.stem, title, goals))
    print(f"wrote {write_index(args.out, entries)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
