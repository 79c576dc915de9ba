"""The deck: a notebook as the static slides show it on a 1280 x 720 projector (used by tools/build_slides.py).

The slide structure is the notebook's own ``slideshow`` metadata (tools/slides.py writes and checks it; RISE reads
the same). On top, for the projector only:
- a Markdown cell shows its heading and opening paragraph; the lecture notes' quote gets a sub-slide; the rest
  of the prose becomes the slide's speaker notes (``slides.markdown_parts``);
- a code cell longer than ``slides.CODE_MAX`` lines is folded to one line (click to open);
- outputs that do not fit under their code move to a sub-slide of their own; figures are scaled to the slide;
- every slide gets speaker notes: where it sits in a 45-minute lecture, the prose cut from the slide, and for
  a live cell how long it ran and what to do if it is slow. The numbers come from the run the slides show, so
  they cannot go stale.
"""

from __future__ import annotations

import base64
import copy
import re
import struct
import sys
from pathlib import Path

import nbformat
from nbformat.corpus.words import generate_corpus_id
from nbformat.v4 import new_markdown_cell

sys.path.insert(0, str(Path(__file__).resolve().parent))
import slides  # noqa: E402

LECTURE_MINUTES = 45
SLOW_SECONDS = 10  # a live cell slower than this gets advice in its notes
TEXT_LINES_MAX = 18  # printed lines a slide shows; the rest is cut with a note
TABLE_CHARS, TABLE_LINE_PX = 100, 30  # a table's text (20 px): characters across the slide, line height
FIGURE_MAX_PX = 690  # the tallest a figure can be shown (a slide of its own)
FIGURE_KEEP = 0.8  # a figure stays under its code only if it is shown at least this fraction of that size there


# ---- sizes ------------------------------------------------------------------------------------------------------

def png_size(data: str) -> tuple[int, int]:
    """(width, height) of a base64 PNG, from its header."""
    head = base64.b64decode(data[:64])
    return struct.unpack(">II", head[16:24])


def image_px(output: nbformat.NotebookNode) -> int:
    """Natural height on the slide of a figure (scaled down to the slide's width)."""
    width, height = png_size(output.data["image/png"])
    meta = output.get("metadata", {}).get("image/png", {})
    width, height = meta.get("width", width), meta.get("height", height)
    return int(height * min(1.0, 1208 / max(width, 1)))


def output_px(output: nbformat.NotebookNode) -> tuple[int, bool]:
    """(estimated height, whether it is a figure that may be scaled down)."""
    if output.output_type == "stream":
        return slides.text_px(output.text), False
    if output.output_type == "error":
        return slides.text_px("\n".join(output.get("traceback", []))[:2000]), False
    data = output.get("data", {})
    if "application/vnd.jupyter.widget-view+json" in data:
        return 480, False
    if "image/png" in data:
        return image_px(output), True
    if "text/html" in data:
        return data["text/html"].count("<tr") * 36 + 20, False
    if "slides_px" in output.get("metadata", {}):
        return output.metadata["slides_px"], False
    if "text/markdown" in data:
        return sum(slides.block_px(b) for b in slides._blocks(data["text/markdown"])) + 20, False
    return slides.text_px(data.get("text/plain", "")), False


def trim_text(output: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A stream output cut to ``TEXT_LINES_MAX`` lines as the slide wraps them, saying how many more there are."""
    lines = output.text.splitlines()
    kept, rows = [], 0
    for line in lines:
        rows += max(1, -(-len(line) // slides.CODE_CHARS))
        if rows > TEXT_LINES_MAX - 1:
            break
        kept.append(line)
    if len(kept) < len(lines):
        output = copy.deepcopy(output)
        output.text = "\n".join(kept + [f"… {len(lines) - len(kept)} more lines: see the notebook"]) + "\n"
    return output


def markdown_pieces(output: nbformat.NotebookNode, budget: int = 560) -> list[nbformat.NotebookNode]:
    """Markdown output taller than ``budget`` as several outputs: whole blocks, and tables as groups of whole rows,
    each group with the table's header."""
    text = output.get("data", {}).get("text/markdown", "")
    if not text or slides.text_px(text) <= budget // 2:
        return [output]
    chunks: list[tuple[str, int]] = []
    for block in slides._blocks(text):
        lines = block.splitlines()
        if len(lines) < 3 or not all(line.lstrip().startswith("|") for line in lines):
            chunks.append((block, slides.block_px(block)))
            continue
        header = lines[:2]
        table = [[c.strip() for c in row.strip().strip("|").split("|")] for row in lines if not re.match(
            r"\s*\|[\s:|-]+\|\s*$", row)]
        widest = [max(len(r[i]) if i < len(r) else 0 for r in table) for i in range(len(table[0]))]
        # an automatic table layout gives each column about its share of the widest contents (20 px text)
        chars = [max(10, int(TABLE_CHARS * w / max(1, sum(widest)))) for w in widest]

        def row_px(row: str) -> int:
            cells = [c.strip() for c in row.strip().strip("|").split("|")]
            return max(-(-len(c) // n) for c, n in zip(cells, chars)) * TABLE_LINE_PX + 14

        rows, used = [], row_px(header[0])
        for row in lines[2:]:
            if rows and used + row_px(row) > budget:
                chunks.append(("\n".join(header + rows), used))
                rows, used = [], row_px(header[0])
            rows.append(row)
            used += row_px(row)
        chunks.append(("\n".join(header + rows), used))
    pieces: list[list[str]] = [[]]
    sizes = [0]
    for chunk, px in chunks:
        if pieces[-1] and sizes[-1] + px > budget:
            pieces.append([])
            sizes.append(0)
        pieces[-1].append(chunk)
        sizes[-1] += px
    out = []
    for piece, px in zip(pieces, sizes):
        part = copy.deepcopy(output)
        part.data = {"text/markdown": "\n\n".join(piece)}
        part.metadata["slides_px"] = px  # read by output_px
        out.append(part)
    return out


def merged(outputs: list) -> list:
    """Consecutive chunks of the same stream as one output (as JupyterLab shows them)."""
    out: list = []
    for output in outputs:
        if output.output_type == "stream" and out and out[-1].output_type == "stream" and out[-1].name == output.name:
            out[-1] = copy.deepcopy(out[-1])
            out[-1].text += output.text
        else:
            out += markdown_pieces(output)
    return out


# ---- the deck ---------------------------------------------------------------------------------------------------

def first_line(source: str) -> str:
    return next((line.strip() for line in source.splitlines() if line.strip()), "")


def code_notes(cell: nbformat.NotebookNode, seconds: float | None, mode: str) -> str:
    lines = len(cell.source.splitlines())
    notes = []
    if seconds is not None:
        notes.append(f"Live cell ({lines} lines): it ran in {seconds:.1f} s when these slides were built ({mode}).")
    else:
        notes.append(f"Live cell ({lines} lines).")
    if lines > slides.CODE_MAX:
        notes.append("The code is folded on the slide: click its first line to open it, or show it in JupyterLab.")
    if seconds is not None and seconds >= SLOW_SECONDS:
        notes.append(f"Too slow to wait for in front of the room ({seconds:.0f} s here): run the notebook before the "
                     "lecture (Run All, then start the slideshow) and present this result; re-run it live only while "
                     "you talk through the slide before.")
        if "fast" not in mode:
            notes.append("Fast mode (`CNN_FAST=1 make lab`) runs it with smaller images and fewer steps.")
    if "widgets." in cell.source:
        notes.append("A widget: it reacts only with a running kernel (RISE in `make lab`); here it shows the state "
                     "it was saved with.")
    printed = [o.text for o in cell.get("outputs", []) if o.output_type == "stream" and o.name == "stdout"]
    if printed and (line := first_line("".join(printed))):
        notes.append(f"Its printed numbers are on the slide (this build: “{line[:120]}”).")
    return " ".join(notes)


def split_outputs(cell: nbformat.NotebookNode, top_px: int) -> list[list[nbformat.NotebookNode]]:
    """The cell's outputs grouped by slide: the first group shares the slide with the code (``top_px`` high) and
    may be empty; an output that does not fit where it is starts a sub-slide of its own."""
    groups: list[list] = [[]]
    used = top_px
    for output in merged(cell.get("outputs", [])):
        if output.output_type == "stream" and not output.text.strip():
            continue
        output = trim_text(output) if output.output_type == "stream" else output
        px, flexible = output_px(output)
        need = int(min(px, FIGURE_MAX_PX) * FIGURE_KEEP) if flexible else px
        if used + need > slides.SLIDE_PX and (groups[-1] or len(groups) == 1):
            groups.append([])
            used = 0
        groups[-1].append(output)
        used += min(px, FIGURE_MAX_PX) if flexible else px
    return [groups[0]] + [g for g in groups[1:] if g]


def deck(nb: nbformat.NotebookNode, seconds: dict[int, float], mode: str) -> nbformat.NotebookNode:
    """The notebook as the static slides show it (see the module docstring)."""
    out = copy.deepcopy(nb)
    out.cells = []

    above = [0]  # estimated height of what the current slide shows so far

    def add(cell: nbformat.NotebookNode, kind: str, px: int = 0) -> None:
        cell.metadata["slideshow"] = {"slide_type": kind}
        out.cells.append(cell)
        if kind in ("slide", "subslide"):
            above[0] = 0
        above[0] += px

    for i, cell in enumerate(nb.cells):
        kind = cell.metadata.get("slideshow", {}).get("slide_type", "-")
        if kind == "skip" or (not out.cells and kind in ("-", "fragment", "notes")):
            continue
        if kind == "notes":
            add(copy.deepcopy(cell), "notes")
        elif cell.cell_type == "markdown":
            for part in slides.markdown_parts(cell.source, kind, first=i == 0):
                add(new_markdown_cell(part.text), part.kind,
                    0 if part.kind == "notes" else sum(map(slides.block_px, slides._blocks(part.text))))
        elif cell.cell_type == "code":
            code = copy.deepcopy(cell)
            lines = len(cell.source.splitlines())
            if lines > slides.CODE_MAX:
                code.metadata["slides"] = {"fold": f"▸ {first_line(cell.source)[:70]} … ({lines} lines of code)"}
            shared = above[0] if kind in ("-", "fragment") else 0  # Markdown above it on the same slide
            groups = split_outputs(cell, shared + slides.code_px(cell.source))
            code.outputs = groups[0]
            add(code, kind, slides.code_px(cell.source) + sum(output_px(o)[0] for o in groups[0]))
            add(new_markdown_cell(code_notes(cell, seconds.get(i), mode)), "notes")
            for group in groups[1:]:
                rest = copy.deepcopy(cell)
                rest.id = generate_corpus_id()
                rest.metadata["transient"] = {"remove_source": True}
                rest.outputs = group
                add(rest, "subslide")
                add(new_markdown_cell(f"The result of the live cell before (`{first_line(cell.source)[:60]}`)."),
                    "notes")
    add_pacing(out)
    return out


def add_pacing(nb: nbformat.NotebookNode) -> None:
    """Start every slide's notes with where it sits in a 45-minute lecture; merge a slide's notes into one cell."""
    slides_at = [i for i, c in enumerate(nb.cells) if c.metadata["slideshow"]["slide_type"] in ("slide", "subslide")]
    if not slides_at or slides_at[0] != 0:
        slides_at = [0] + slides_at
    total = len(slides_at)
    cells = []
    for n, start in enumerate(slides_at):
        end = slides_at[n + 1] if n + 1 < total else len(nb.cells)
        block = nb.cells[start:end]
        notes = [c.source for c in block if c.metadata["slideshow"]["slide_type"] == "notes"]
        content = [c for c in block if c.metadata["slideshow"]["slide_type"] != "notes"]
        minute = LECTURE_MINUTES * n / total
        head = f"Slide {n + 1} of {total}, about minute {minute:.0f} of {LECTURE_MINUTES}."
        following = nb.cells[end] if end < len(nb.cells) else None
        cue = []
        if following is not None:
            what = "live cell" if following.cell_type == "code" and "remove_source" not in following.metadata.get(
                "transient", {}) else ("its result" if following.cell_type == "code" else "")
            line = first_line(following.source).lstrip("#").strip()[:80] if following.cell_type == "markdown" else ""
            cue = [f"Next: {what or line}" + (f" (`{first_line(following.source)[:60]}`)" if what == "live cell"
                                              else "") + "."]
        cells += content + [new_markdown_cell("\n\n".join([head, *notes, *cue]),
                                              metadata={"slideshow": {"slide_type": "notes"}})]
    nb.cells = cells
