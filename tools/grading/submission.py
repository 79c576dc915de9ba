"""Submissions: finding them (nbgrader's layout or an LMS's flat folder), and what grading runs for each exercise.

nbgrader's layout is ``DIR/<student>/<assignment>/<notebook>.ipynb`` (what ``nbgrader collect`` and the formgrader
use); a flat folder holds ``<student>_<anything>.ipynb`` files (an LMS bulk download). In a flat folder the
assignment is the one whose id appears in the file name, else the one whose exercise ids the notebook carries.

A submission is matched to the course notebook cell by cell through the nbgrader ``grade_id``s that
``make assignments`` gives every cell (a solution cell whose id got lost is found by the function it defines).
Everything but the solution cells comes from the course's own notebook: a check cell the student edited or deleted
makes that exercise ``tampered``; other read-only cells are restored silently. Cells the student added run where
they stand when an exercise needs what they define.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from grading import slicing
from grading.course import Exercise, cell_id, exercises, normalized, strip_solutions


@dataclass(frozen=True)
class Submission:
    student: str
    assignment: str
    path: Path


@dataclass
class Plan:
    """What grading does for one exercise of one submission: a status decided without running, or units to run."""

    exercise: Exercise
    status: str | None = None  # "tampered", "not attempted" or "error" when nothing needs to run
    message: str = ""
    units: list[slicing.Unit] = field(default_factory=list)
    restored: int = 0  # read-only cells the student had changed (restored, no penalty)


_SAFE = re.compile(r"[^A-Za-z0-9_.@+\-]")


def _student_name(text: str) -> str:
    return _SAFE.sub("-", text).strip("-.") or "unknown"


def _grade_ids(notebook: nbformat.NotebookNode) -> set[str]:
    return {c.metadata.get("nbgrader", {}).get("grade_id") for c in notebook.cells} - {None}


def collect(folder: str | Path, courses: dict[str, nbformat.NotebookNode]) -> tuple[list[Submission], list[str]]:
    """Every submission in ``folder`` for one of the ``courses`` (assignment id -> instructor notebook).

    Returns:
        (submissions sorted by student and assignment, notes on files that were skipped).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"SUBMISSIONS {str(folder)!r} is not a folder")
    found, notes = [], []
    if (folder / "nbgrader_config.py").exists() and (folder / "submitted").is_dir():  # the course folder itself
        notes.append(f"{folder} is an nbgrader course: grading its submitted/ folder")
        folder = folder / "submitted"
    nested = sorted(p for p in folder.glob("*/*/*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    for path in nested:
        student, assignment = path.parent.parent.name, path.parent.name
        if assignment in courses:
            found.append(Submission(_student_name(student), assignment, path))
        else:
            notes.append(f"{path}: no assignment {assignment!r} in the course")
    ids = {name: {e.name for e in exercises(nb)} for name, nb in courses.items()}
    for path in sorted(folder.glob("*.ipynb")):
        student, _, rest = path.stem.partition("_")
        named = [a for a in courses if a in rest]
        assignment = max(named, key=len) if named else None
        if assignment is None:
            try:
                carried = _grade_ids(nbformat.read(path, as_version=4))
            except Exception:  # noqa: BLE001 - an unreadable file is reported, not fatal
                carried = set()
            assignment = next((a for a, names in ids.items() if names & carried), None)
        if not rest or assignment is None:
            notes.append(f"{path}: not <student>_<anything>.ipynb for an assignment of the course")
            continue
        found.append(Submission(_student_name(student), assignment, path))
    seen, unique = set(), []
    for sub in sorted(found, key=lambda s: (s.student, s.assignment, str(s.path))):
        if (sub.student, sub.assignment) in seen:
            notes.append(f"{sub.path}: a second notebook of {sub.student} for {sub.assignment}, ignored")
            continue
        seen.add((sub.student, sub.assignment))
        unique.append(sub)
    return unique, notes


def _match(course: nbformat.NotebookNode, work: nbformat.NotebookNode, tasks: list[Exercise]
           ) -> tuple[dict[int, nbformat.NotebookNode], list[tuple[int, nbformat.NotebookNode]]]:
    """Course cell index -> the student's cell, and the student's own added code cells with the course index they
    follow."""
    ids = {cell_id(i): i for i in range(len(course.cells))}
    ids |= {e.name: e.solution for e in tasks} | {e.check_id: e.check for e in tasks}
    matched, added, anchor = {}, [], -1
    for cell in work.cells:
        index = ids.get(cell.metadata.get("nbgrader", {}).get("grade_id"))
        if index is not None and index not in matched and cell.cell_type == course.cells[index].cell_type:
            matched[index], anchor = cell, index
        elif cell.cell_type == "code":
            added.append((anchor, cell))
    for task in tasks:  # cells that lost their metadata (a notebook rebuilt by copy and paste): found by content
        wanted = ((task.solution, lambda source: re.search(rf"^def {re.escape(task.name)}\s*\(", source, re.M)),
                  (task.check, lambda source: normalized(source) == normalized(course.cells[task.check].source)))
        for index, fits in wanted:
            pair = next((p for p in added if index not in matched and fits(p[1].source)), None)
            if pair is not None:
                matched[index] = pair[1]
                added.remove(pair)
    return matched, added


def _analysed(source: str, cell: int) -> list[slicing.Statement] | None:
    try:
        return slicing.statements(source, cell)
    except SyntaxError:
        return None


def _syntax_error(source: str) -> str:
    try:
        slicing.statements(source)
    except SyntaxError as err:
        return f"SyntaxError in line {err.lineno}: {err.msg}"
    return ""


def plan(course: nbformat.NotebookNode, work: nbformat.NotebookNode, tasks: list[Exercise]) -> list[Plan]:
    """For each exercise: its status when nothing needs to run, else the units of its program (see slicing)."""
    matched, added = _match(course, work, tasks)
    solutions = {e.solution for e in tasks}
    checks = {e.check for e in tasks}
    code = [i for i, c in enumerate(course.cells) if c.cell_type == "code"]
    restored = sum(1 for i in code if i not in solutions and i in matched
                   and normalized(matched[i].source) != normalized(course.cells[i].source) and i not in checks)
    cells = [(-1, "student", "added", c.source) for a, c in added if a < 0]  # (course index, owner, role, source)
    for index, cell in enumerate(course.cells):
        if index in solutions:
            cells.append((index, "student", "solution", matched[index].source if index in matched else ""))
        elif cell.cell_type == "code":
            cells.append((index, "course", "check" if index in checks else "context", cell.source))
        cells += [(index, "student", "added", c.source) for a, c in added if a == index]
    analysed = [_analysed(source, n) for n, (_, _, _, source) in enumerate(cells)]
    modules = slicing.import_names([a for a in analysed if a])
    setup = code[0] if code else -1
    plans = []
    for task in tasks:
        student = matched.get(task.solution)
        check = matched.get(task.check)
        result = Plan(task, restored=restored)
        plans.append(result)
        if check is None or normalized(check.source) != normalized(course.cells[task.check].source):
            result.status = "tampered"
            result.message = "deleted" if check is None else "edited"
            continue
        blank = strip_solutions(course.cells[task.solution].source)
        if student is None or normalized(student.source) == normalized(blank):
            result.status, result.message = "not attempted", ""
            continue
        if error := _syntax_error(student.source):
            result.status, result.message = "error", error
            continue
        result.units = _program(cells, analysed, task, setup, modules)
    return plans


def _program(cells, analysed, task: Exercise, setup: int, modules: set[str]) -> list[slicing.Unit]:
    """The units that grade ``task``: the needed statements of the cells before its check, then the check."""
    candidates, where = [], []
    for n, (index, owner, role, _) in enumerate(cells):
        if index > task.check or (index == task.check and role == "added") or analysed[n] is None:
            continue
        forced = index == setup or (index, role) in ((task.solution, "solution"), (task.check, "check"))
        candidates += [(statement, forced) for statement in analysed[n]]
        where += [n] * len(analysed[n])
    kept, _ = slicing.needed_statements(candidates, modules)
    units: list[slicing.Unit] = []
    for k in kept:
        n = where[k]
        index, owner, role, source = cells[n]
        role = role if (index, role) in ((task.solution, "solution"), (task.check, "check")) else "context"
        if units and units[-1].cells == [n]:
            units[-1].source += "\n" + candidates[k][0].source
        else:
            units.append(slicing.Unit(_label(source, owner, role), candidates[k][0].source, owner, role, [n]))
    return units


def _label(source: str, owner: str, role: str) -> str:
    """How messages name a unit: "your exercise cell", "the check cell", or a cell by its first line."""
    if role == "solution":
        return "your exercise cell"
    if role == "check":
        return "the check cell (it calls your function)"
    lines = [line.strip() for line in source.splitlines()]
    first = next((line for line in lines if line and not line.startswith("#")), "")
    first = first if len(first) <= 60 else first[:59] + "…"
    who = "your cell" if owner == "student" else "the course's cell"
    return f"{who} `{first}`"
