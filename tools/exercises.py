"""Student and solution versions of the course notebooks, from one source (the solution notebooks).

    python tools/exercises.py SOURCE_DIR OUT_DIR          # make exercises: OUT_DIR/student and OUT_DIR/solution
    python tools/exercises.py --work SOURCE_DIR WORK_DIR  # make lab-student: a student's own copies, never overwritten

A solution notebook marks what students must write with nbgrader's markers::

    def saliency(model, x, target):
        ### BEGIN SOLUTION
        ...the reference answer...
        ### END SOLUTION

The student version replaces each block by ``raise NotImplementedError()`` (markdown: ``YOUR ANSWER HERE``),
clears the outputs and tags every check cell ``raises-exception``, so that "Run All" goes on past an
unfinished exercise (JupyterLab, nbclient and nbval honour the tag; graders still see the failed cell).
The checks themselves run inside the notebooks: :mod:`cnn_helpers.core.exercises`.
"""

from __future__ import annotations

import copy
import re
import shutil
import sys
from pathlib import Path

import nbformat

__all__ = ["BEGIN", "END", "CHECK_TAG", "strip_solutions", "make_student_notebook", "has_exercises", "has_solution",
           "generate", "student_copies", "is_check_cell"]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
CODE_PLACEHOLDER = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_PLACEHOLDER = "YOUR ANSWER HERE"
CHECK_TAG = "raises-exception"  # Jupyter, nbclient and nbval go on past a failing cell with this tag

# nbgrader's rule: a line that holds "BEGIN SOLUTION" starts a solution, one that holds "END SOLUTION" ends it
# (so "###BEGIN SOLUTION" is a marker too). A line that only looks like one ("# begin solution") is refused.
_OPENS, _CLOSES = "BEGIN SOLUTION", "END SOLUTION"
_LOOKALIKE = re.compile(r"^\s*(#+|//|<!--)?\s*(begin|end)[\s_-]*solution\b", re.I)


def has_solution(source: str) -> bool:
    """Whether a cell's source holds a solution marker (nbgrader's rule: a line containing ``BEGIN SOLUTION``)."""
    return _OPENS in source


def strip_solutions(source: str, *, code: bool = True) -> str:
    """Replace every ``BEGIN SOLUTION`` ... ``END SOLUTION`` block by a placeholder, as nbgrader does.

    Args:
        source: A cell's source text.
        code: True for code cells (placeholder raises ``NotImplementedError``, indented like the
            marker), False for markdown and raw cells (placeholder ``YOUR ANSWER HERE``).

    Returns:
        The source without solution text.

    Raises:
        ValueError: Unbalanced, nested or out-of-order markers, or a line that looks like a marker but is not one
            (``# begin solution``): it would leave the solution in the student's version.
    """
    lines = source.split("\n")
    opens, closes = sum(_OPENS in line for line in lines), sum(_CLOSES in line for line in lines)
    if opens != closes:
        raise ValueError(f"unbalanced solution markers: {opens} x {BEGIN!r}, {closes} x {END!r}")
    out, inside = [], False
    for number, line in enumerate(lines, 1):
        if _OPENS in line:
            if inside:
                raise ValueError(f"line {number}: solution markers are nested or out of order")
            inside = True
            indent = line[:len(line) - len(line.lstrip())]
            out += [indent + text for text in (CODE_PLACEHOLDER if code else TEXT_PLACEHOLDER).splitlines()]
        elif _CLOSES in line:
            if not inside:
                raise ValueError(f"line {number}: solution markers are nested or out of order")
            inside = False
        elif _LOOKALIKE.search(line):
            raise ValueError(f"line {number} looks like a solution marker but is not one: {line.strip()!r} "
                             f"(write {BEGIN!r} and {END!r})")
        elif not inside:
            out.append(line)
    return "\n".join(out)


def is_check_cell(cell: nbformat.NotebookNode) -> bool:
    """Whether a code cell checks an exercise (it calls ``check_function`` or ``check_close``)."""
    return cell.cell_type == "code" and ("check_function(" in cell.source or "check_close(" in cell.source)


def make_student_notebook(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of a solution notebook with solutions replaced (code, markdown and raw cells), all outputs and saved
    widget states cleared and check cells tagged ``raises-exception`` (so that running all cells goes on past an
    unfinished exercise)."""
    student = copy.deepcopy(notebook)
    student.metadata.pop("widgets", None)  # saved widget states show the solution's results
    for cell in student.cells:
        if cell.cell_type in ("code", "markdown", "raw"):
            cell.source = strip_solutions(cell.source, code=cell.cell_type == "code")
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            if is_check_cell(cell):
                tags = [t for t in cell.metadata.get("tags", []) if not t.startswith("nbval-")]
                cell.metadata["tags"] = [*tags, CHECK_TAG]
    return student


def has_exercises(notebook: nbformat.NotebookNode) -> bool:
    """Whether any cell of the notebook holds a solution."""
    return any(has_solution(cell.source) for cell in notebook.cells)


def generate(source_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write ``out_dir/student/*.ipynb`` (blanks) and ``out_dir/solution/*.ipynb`` (copies).

    Returns:
        The paths of the student notebooks written.
    """
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    if not source_dir.is_dir():
        raise FileNotFoundError(f"source_dir {str(source_dir)!r} is not a folder of notebooks")
    written = []
    for path in sorted(source_dir.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        if not has_exercises(notebook):
            continue
        for kind in ("student", "solution"):
            (out_dir / kind).mkdir(parents=True, exist_ok=True)
        nbformat.write(make_student_notebook(notebook), out_dir / "student" / path.name)
        shutil.copyfile(path, out_dir / "solution" / path.name)
        written.append(out_dir / "student" / path.name)
    return written


def student_copies(source_dir: str | Path, work_dir: str | Path) -> tuple[list[Path], list[Path]]:
    """A student's own working copy of the course: the student version of every notebook (exercises blank,
    outputs cleared), written into ``work_dir`` only where no copy exists yet, so work is never overwritten.

    Returns:
        (written, kept): the copies written now, and the existing copies left alone.
    """
    source_dir, work_dir = Path(source_dir), Path(work_dir)
    if not source_dir.is_dir():
        raise FileNotFoundError(f"source_dir {str(source_dir)!r} is not a folder of notebooks")
    work_dir.mkdir(parents=True, exist_ok=True)
    written, kept = [], []
    for path in sorted(source_dir.glob("*.ipynb")):
        target = work_dir / path.name
        if target.exists():
            kept.append(target)
            continue
        nbformat.write(make_student_notebook(nbformat.read(path, as_version=4)), target)
        written.append(target)
    return written, kept


def main(argv: list[str]) -> int:
    """``SOURCE OUT``: student and solution versions; ``--work SOURCE DIR``: a student's own copies."""
    if len(argv) == 3 and argv[0] == "--work":
        written, kept = student_copies(argv[1], argv[2])
        for path in written:
            print(f"wrote {path}")
        if kept:
            print(f"kept your copies (delete one to get a fresh one): {', '.join(p.name for p in kept)}")
        return 0
    if len(argv) != 2 or argv[0].startswith("-"):
        print("usage: python tools/exercises.py SOURCE_DIR OUT_DIR | --work SOURCE_DIR WORK_DIR")
        return 2
    for written in generate(argv[0], argv[1]):
        print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
