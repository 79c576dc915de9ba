"""The course as the grading tools see it: which notebooks hold exercises, and each exercise's two cells.

Used by ``tools/assignments.py`` (``make assignments``) and ``tools/grade.py`` (``make grade``).

An exercise is a solution cell (one holding ``### BEGIN SOLUTION``, by nbgrader's rule any line with ``BEGIN SOLUTION``) and the check cell that follows it (the first
cell calling ``check_function``/``check_close`` before the next solution cell). It is named after the function
the solution cell defines (``my_saliency``): that name is the ``exercise`` column of grades.csv, the solution
cell's nbgrader ``grade_id`` and, with ``check_`` in front, the check cell's.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

# The only imports from the course's own code: the build half of the exercises (markers, stripping) is tools/exercises.py,
# the in-notebook checks are cnn_helpers.core.exercises.
from exercises import BEGIN, CHECK_TAG, END, has_solution, is_check_cell, strip_solutions  # tools/exercises.py

CHECK_MODULES = ("cnn_helpers.core.exercises",)  # where check cells import check_function
DATA_MODULES = ("cnn_helpers.core.data",)  # the one with data_dir()
PACKAGE = "cnn_helpers"  # code in this package is "the course's own implementation" (the tripwire's side)

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
COURSE = ROOT / "build" / "course"
_ID = re.compile(r"[^A-Za-z0-9_\-]")

__all__ = ["BEGIN", "END", "CHECK_TAG", "CHECK_MODULES", "PACKAGE", "Exercise", "exercises", "assignments",
           "has_solution", "is_check_cell", "strip_solutions", "normalized", "cell_id", "data_dir", "check_module"]


@dataclass(frozen=True)
class Exercise:
    """One exercise of a notebook: its name, its two cells (indices into the instructor notebook), its points."""

    name: str
    solution: int
    check: int
    points: float = 1.0

    @property
    def check_id(self) -> str:
        return f"check_{self.name}"


def _defined_function(source: str) -> str | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    return next((node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))), None)


def exercises(notebook: nbformat.NotebookNode, points: dict[str, float] | None = None) -> list[Exercise]:
    """The exercises of an instructor notebook, in order.

    Raises:
        ValueError: A solution cell without a check cell after it, or two solution cells before one check.
    """
    found, pending = [], None
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        if has_solution(cell.source):
            if pending is not None:
                raise ValueError(f"cell {pending}: solution cell without a check cell before the next solution cell")
            pending = index
        elif is_check_cell(cell) and pending is not None:
            name = _defined_function(notebook.cells[pending].source) or f"exercise_{len(found) + 1}"
            found.append(Exercise(_ID.sub("_", name), pending, index, (points or {}).get(name, 1.0)))
            pending = None
    if pending is not None:
        raise ValueError(f"cell {pending}: solution cell without a check cell after it")
    if len({e.name for e in found}) != len(found):
        raise ValueError(f"two exercises define the same function: {[e.name for e in found]}")
    return found


def assignments(notebooks: Path = NOTEBOOKS) -> dict[str, Path]:
    """``{assignment id: instructor notebook}`` for every notebook with exercises (the id is the file's stem)."""
    found = {}
    for path in sorted(Path(notebooks).glob("*.ipynb")):
        if any(has_solution(cell.source) for cell in nbformat.read(path, as_version=4).cells):
            found[path.stem] = path
    return found


def own_modules(names: tuple[str, ...]) -> list:
    """Those of ``names`` that this course's package has (inside the folder ``import cnn_helpers`` found: a shared
    editable install may map a name to another checkout)."""
    import importlib

    home = Path(importlib.import_module(PACKAGE).__file__).resolve().parent
    found = []
    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if Path(module.__file__).resolve().is_relative_to(home):
            found.append(module)
    return found


def check_module():
    """The course's module with ``check_function``."""
    return own_modules(CHECK_MODULES)[0]


def data_dir() -> Path:
    """The course's data folder (``CNN_DATA_DIR`` or the repository's ``data/``)."""
    return Path(own_modules(DATA_MODULES)[0].data_dir())


def cell_id(index: int) -> str:
    """The nbgrader grade_id of a read-only (locked) cell of the course."""
    return f"cell-{index:03d}"


def normalized(source: str) -> str:
    """A cell's source without trailing spaces and blank lines at either end (edits of those are no edits)."""
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def with_nbgrader_metadata(notebook: nbformat.NotebookNode, tasks: list[Exercise]) -> nbformat.NotebookNode:
    """The nbgrader source version of a course notebook: solution cells autograded by their check cells (points,
    ids, ``raises-exception`` so that Run All goes on past an open exercise), every other cell read-only."""
    import copy

    source = copy.deepcopy(notebook)
    roles = {e.solution: ("solution", e.name, 0.0) for e in tasks}
    roles |= {e.check: ("check", e.check_id, e.points) for e in tasks}
    for index, cell in enumerate(source.cells):
        role, grade_id, points = roles.get(index, ("locked", cell_id(index), 0.0))
        meta = {"grade": role == "check", "grade_id": grade_id, "locked": role != "solution",
                "schema_version": 3, "solution": role == "solution", "task": False}
        if role == "check":
            meta["points"] = points
        cell.metadata["nbgrader"] = meta
        tags = [t for t in cell.metadata.get("tags", []) if not t.startswith("nbval-")]
        if role == "check" and CHECK_TAG not in tags:
            tags.append(CHECK_TAG)
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)
    return source


def tools_on_path() -> None:
    """Put this Python's scripts folder on PATH: nbgrader's gradebook runs ``alembic`` by name."""
    import os
    import sys

    scripts = str(Path(sys.executable).parent)
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")
