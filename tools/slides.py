"""Slide structure of the notebooks: written by rules from each notebook's own structure, checked by a test.

    python tools/slides.py apply [NB.ipynb ...]    write every cell's ``slideshow`` metadata (default: all notebooks)
    python tools/slides.py check [NB.ipynb ...]    exit 1 and name each cell whose metadata differs from the rules
    python tools/slides.py outline NB.ipynb        the deck as the rules see it, one line per cell

RISE (live slides in JupyterLab) and nbconvert's reveal.js slides (``make slides``) both read
``cell.metadata.slideshow.slide_type``. Nobody edits it by hand: the rules below derive it from the
notebook, so after a notebook changes, ``apply`` writes it again and ``tests/test_slides.py`` fails until then.

| cell | slide type |
|---|---|
| the first cell (title, learning goals, the lecture notes' claim) | ``slide`` |
| Markdown opening with ``#``/``##`` (a section) | ``slide`` |
| Markdown opening with ``###`` or deeper (a sub-point) | ``subslide`` |
| the setup cell (the first code cell: seeds, device, mode) | ``skip`` |
| an exercise's check cell (``check_function(`` / ``check_close(``) | ``skip`` |
| helper code: only imports and ``def``/``class`` (no exercise in it) | ``skip`` |
| any other code cell: the live cell | ``-`` (same slide) right after a short Markdown cell, else ``subslide`` |
| Markdown after a code cell (reading the figure, the takeaway) | ``subslide`` |
| other Markdown | ``-`` |

The notebook's ``rise`` metadata (RISE's settings for live slides) is written too: the ``white`` theme, whose font
ships with RISE (its default theme fetches fonts from the internet), scrolling for cells taller than the screen,
and no transition animation.

A cell tag overrides the rule for that cell: ``slideshow-slide``, ``slideshow-subslide``, ``slideshow-fragment``,
``slideshow-skip``, ``slideshow-notes`` (a speaker-note cell) or ``slideshow-continue`` (``-``).

"Short" uses the same estimate of what fits on a 1280 x 720 slide as the slide builder (tools/build_slides.py),
which shows a Markdown cell's heading and opening paragraph on the slide and moves the rest of its prose into the
speaker notes (see ``markdown_parts``).
"""

from __future__ import annotations

import ast
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
TYPES = ("slide", "subslide", "fragment", "skip", "notes", "-")
TAG_PREFIX = "slideshow-"
TAG_TYPES = {"slide": "slide", "subslide": "subslide", "fragment": "fragment", "skip": "skip", "notes": "notes",
             "continue": "-"}
RISE = {"theme": "white", "scroll": True, "transition": "none"}
CODE_MAX = 15  # lines of code a slide shows; longer cells are folded on the static slides
# What fits on a 1280 x 720 slide at the builder's font sizes (24 px prose, 20 px code): estimates in pixels.
SLIDE_PX = 660
PROSE_CHARS, PROSE_LINE_PX, HEADING_PX, BLOCK_GAP_PX = 92, 34, 62, 14
CODE_CHARS, CODE_LINE_PX = 96, 27
PROSE_BUDGET_PX = 330  # the prose a slide shows before the rest moves into the speaker notes
TITLE_BUDGET_PX = 560  # the first slide: title and learning goals


def code_cells(nb: nbformat.NotebookNode) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def tag_override(cell: nbformat.NotebookNode) -> str | None:
    """The slide type a ``slideshow-*`` cell tag asks for, or None."""
    found = [TAG_TYPES[t[len(TAG_PREFIX):]] for t in cell.get("metadata", {}).get("tags", [])
             if t.startswith(TAG_PREFIX) and t[len(TAG_PREFIX):] in TAG_TYPES]
    if len(found) > 1:
        raise ValueError(f"cell {cell.get('id')} carries more than one slideshow tag: {found}")
    return found[0] if found else None


def heading_level(source: str) -> int:
    """The level of the heading a Markdown cell opens with (0: none)."""
    match = re.match(r"(#{1,6})\s", source.lstrip())
    return len(match.group(1)) if match else 0


def is_check(source: str) -> bool:
    return "check_function(" in source or "check_close(" in source


def is_helper(source: str) -> bool:
    """Only imports and definitions (a docstring or comments allowed), and no exercise to write."""
    if "### BEGIN SOLUTION" in source:
        return False
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    allowed = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return bool(body) and all(isinstance(node, allowed) or (isinstance(node, ast.Expr) and isinstance(
        node.value, ast.Constant) and isinstance(node.value.value, str)) for node in body) and any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for node in body)


# ---- what a Markdown cell shows on a slide, and what goes into the notes ----------------------------------------

@dataclass
class Part:
    """A piece of a Markdown cell on the static slides: ``kind`` is a slide type (``slide``, ``subslide``, ``-``)
    or ``notes``."""
    kind: str
    text: str


def _blocks(text: str) -> list[str]:
    """Markdown blocks: paragraphs, lists, quotes, tables, fenced code (blank-line separated, fences kept whole)."""
    blocks, current, fenced = [], [], False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
        if not line.strip() and not fenced:
            if current:
                blocks.append("\n".join(current))
                current = []
            continue
        current.append(line)
    if current:
        blocks.append("\n".join(current))
    return blocks


def block_px(block: str) -> int:
    """Estimated height of a rendered Markdown block on a slide."""
    if re.match(r"#{1,6}\s", block):
        return HEADING_PX
    lines = block.splitlines()
    if block.lstrip().startswith("|"):
        return len([row for row in lines if not re.match(r"\s*\|[\s:|-]+\|\s*$", row)]) * (PROSE_LINE_PX + 8)
    if block.lstrip().startswith("```"):
        return (len(lines) - 2) * CODE_LINE_PX + 20
    items: list[str] = []  # list items and quote lines start a new rendered line; wrapped source lines do not
    for line in lines:
        if re.match(r"\s*([*+-]|\d+\.)\s|\s*>", line) or not items:
            items.append(line.lstrip("> "))
        else:
            items[-1] += " " + line.strip()
    visible = [re.sub(r"\*\*|`|\$|\\[a-z]+|[*_]", "", item) for item in items]
    return sum(max(1, math.ceil(len(v) / PROSE_CHARS)) for v in visible) * PROSE_LINE_PX + BLOCK_GAP_PX


def _sections(source: str) -> list[tuple[int, list[str]]]:
    """(heading level, blocks) per heading; the text before the first heading has level 0."""
    sections: list[tuple[int, list[str]]] = []
    for block in _blocks(source):
        level = heading_level(block) if re.match(r"#{1,6}\s", block) else 0
        if level or not sections:
            sections.append((level, []))
        sections[-1][1].append(block)
    return sections


def is_list(block: str) -> bool:
    return bool(re.match(r"\s*([*+-]|\d+\.)\s", block))


def _items(block: str) -> list[str]:
    """The items of a Markdown list block, each with its continuation lines."""
    items: list[str] = []
    for line in block.splitlines():
        if re.match(r"([*+-]|\d+\.)\s", line) or not items:
            items.append(line)
        else:
            items[-1] += "\n" + line
    return items


def is_paragraph(block: str) -> bool:
    """Plain prose: not a list, quote, table, heading, formula block or code."""
    return not re.match(r"\s*([*+-]|\d+\.)\s|\s*[>|#]|\s*```|\s*\$\$", block)


def _first_sentences(block: str, budget: int) -> str:
    """The opening sentences of a prose block that fit ``budget`` pixels, with an ellipsis."""
    sentences = re.split(r"(?<=[.!?:])\s+(?=[A-Z*(`])", " ".join(line.strip() for line in block.splitlines()))
    shown = ""
    for sentence in sentences:
        candidate = (shown + " " + sentence).strip()
        if shown and block_px(candidate + " …") > budget:
            break
        shown = candidate
    return shown + " …"


def markdown_parts(source: str, kind: str, *, first: bool = False) -> list[Part]:
    """Split a Markdown cell for the static slides: per heading, the heading and the opening blocks that fit
    (the claim) on a slide; a quote of the lecture notes with its translation on a sub-slide of its own;
    all other prose as speaker notes of that slide.

    Args:
        source: The cell's Markdown.
        kind: The cell's slide type (its first part gets it; later headings start a slide or a sub-slide).
        first: The notebook's first cell (title and learning goals get a larger budget).
    """
    parts: list[Part] = []
    for n, (level, blocks) in enumerate(_sections(source)):
        part_kind = kind if n == 0 else ("slide" if level <= 2 else "subslide")
        budget = TITLE_BUDGET_PX if first and n == 0 else PROSE_BUDGET_PX
        shown, notes, quote, tables, used = [], [], [], [], 0
        i = 0
        while i < len(blocks):
            block = blocks[i]
            if block.lstrip().startswith(">") and not quote:  # the lecture notes' claim, with its lead-in
                lead = shown.pop() if shown and shown[-1].rstrip().endswith(":") and not shown[-1].startswith("#") \
                    else None
                quote = ([lead] if lead else []) + [block]
                while i + 1 < len(blocks) and (blocks[i + 1].lstrip().startswith((">", "*(")) or
                                               blocks[i + 1].rstrip().endswith(":")):
                    i += 1
                    quote.append(blocks[i])
            elif (block.rstrip().endswith(":") and i + 1 < len(blocks) and blocks[i + 1].lstrip().startswith(">")
                  and not quote):  # the lead-in of a quote goes with it
                shown.append(block)
            elif quote and block_px(block) + sum(map(block_px, quote)) <= PROSE_BUDGET_PX:
                quote.append(block)  # what the text says after the quote belongs with the claim
            elif not quote and not notes and ((px := block_px(block)) + used <= budget or (
                    not shown and re.match(r"#{1,6}\s", block))):  # in order: after a cut, all goes to the notes
                shown.append(block)
                used += px
            elif len(shown) <= 1 and not notes and is_paragraph(block):  # too long alone: its first sentences
                shown.append(_first_sentences(block, budget - used))
                used = budget
                notes.append(block)
            elif len(shown) <= 1 and not notes and is_list(block):  # the list items that fit; the rest: notes
                items = _items(block)
                fit = [item for n, item in enumerate(items) if block_px("\n".join(items[:n + 1])) + used <= budget]
                if fit:
                    shown.append("\n".join(fit))
                    used = budget
                notes.append("\n".join(items[len(fit):]))
            elif block.lstrip().startswith("|") and block_px(block) <= SLIDE_PX - HEADING_PX:
                tables.append(block)  # a table that fits a slide of its own gets one
            else:
                notes.append(block)
            i += 1
        parts.append(Part(part_kind, "\n\n".join(shown)))
        if quote:
            parts.append(Part("subslide", "\n\n".join(quote)))
        parts += [Part("subslide", table) for table in tables]
        if notes:
            parts.append(Part("notes", "\n\n".join(notes)))
    return [p for p in parts if p.text.strip() or p.kind != "notes"]


def markdown_px(source: str) -> int:
    """Height of what the first slide of a Markdown cell shows."""
    part = markdown_parts(source, "slide")[0]
    return sum(block_px(b) for b in _blocks(part.text))


def text_px(text: str) -> int:
    """Height of monospaced text as the slide wraps it."""
    return sum(max(1, math.ceil(len(line) / CODE_CHARS)) for line in text.splitlines()) * CODE_LINE_PX


def code_px(source: str) -> int:
    """Height of a code cell's input on a slide (folded to one line when longer than ``CODE_MAX`` lines)."""
    if len(source.splitlines()) > CODE_MAX:
        return CODE_LINE_PX + 20
    return text_px(source) + 20


# ---- the rules ---------------------------------------------------------------------------------------------------

def slide_types(nb: nbformat.NotebookNode) -> list[str]:
    """The slide type of every cell by the rules above (tags override)."""
    setup = next(iter(code_cells(nb)), None)
    types: list[str] = []
    shown: list[int] = []  # cells that appear on a slide, in order
    for i, cell in enumerate(nb.cells):
        override = tag_override(cell)
        source = cell.source
        if override:
            kind = override
        elif i == 0:
            kind = "slide"
        elif cell.cell_type == "markdown":
            level = heading_level(source)
            previous = nb.cells[shown[-1]] if shown else None
            if level in (1, 2):
                kind = "slide"
            elif level >= 3 or (previous is not None and previous.cell_type == "code"):
                kind = "subslide"
            else:
                kind = "-"
        elif cell.cell_type == "code":
            previous = nb.cells[shown[-1]] if shown else None
            if i == setup or is_check(source) or is_helper(source) or not source.strip():
                kind = "skip"
            elif (previous is not None and previous.cell_type == "markdown" and types[shown[-1]] != "notes"
                  and markdown_px(previous.source) + code_px(source) <= SLIDE_PX // 2):
                kind = "-"
            else:
                kind = "subslide"
        else:
            kind = "skip"
        types.append(kind)
        if kind not in ("skip", "notes"):
            shown.append(i)
    return types


def expected_metadata(cell: nbformat.NotebookNode, kind: str) -> dict:
    return {"slide_type": kind}


def apply(nb: nbformat.NotebookNode) -> int:
    """Write the rules' slide types into ``nb`` (in place); the number of cells changed."""
    changed = 0
    if nb.metadata.get("rise") != RISE:
        nb.metadata["rise"] = dict(RISE)
        changed += 1
    for cell, kind in zip(nb.cells, slide_types(nb)):
        if cell.metadata.get("slideshow") != expected_metadata(cell, kind):
            cell.metadata["slideshow"] = expected_metadata(cell, kind)
            changed += 1
    return changed


def problems(nb: nbformat.NotebookNode) -> list[str]:
    """Each cell whose slide metadata is missing or differs from the rules, described in one line."""
    found = []
    if nb.metadata.get("rise") != RISE:
        have = "missing" if "rise" not in nb.metadata else f"{nb.metadata['rise']!r}"
        found.append(f"notebook metadata: RISE settings {have}, the rules say {RISE!r}")
    for i, (cell, kind) in enumerate(zip(nb.cells, slide_types(nb))):
        have = cell.metadata.get("slideshow")
        if have != expected_metadata(cell, kind):
            first = next((line for line in cell.source.splitlines() if line.strip()), "")[:50]
            what = "no slideshow metadata" if have is None else f"slideshow {have!r}"
            found.append(f"cell {i} ({first!r}): {what}, the rules say {kind!r}")
    return found


def outline(nb: nbformat.NotebookNode) -> str:
    lines = []
    for i, (cell, kind) in enumerate(zip(nb.cells, slide_types(nb))):
        first = next((line for line in cell.source.splitlines() if line.strip()), "")[:70]
        lines.append(f"{i:3d} {kind:9s} {cell.cell_type[:4]} {len(cell.source.splitlines()):3d} {first}")
    return "\n".join(lines)


def notebooks(args: list[str]) -> list[Path]:
    return [Path(a) for a in args] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("apply", "check", "outline"):
        print(__doc__)
        return 2
    command, paths = argv[0], notebooks(argv[1:])
    status = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if command == "outline":
            print(f"== {path.name}\n{outline(nb)}")
        elif command == "check":
            for line in problems(nb):
                print(f"{path.name}: {line}")
                status = 1
        elif (changed := apply(nb)):
            nbformat.write(nb, path)
            print(f"{path.name}: slide metadata written ({changed} changes)")
    if status:
        print("run `python tools/slides.py apply` (or `make slides-metadata`) to write it", file=sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
