"""Grades into nbgrader's gradebook, so that the formgrader shows them and ``nbgrader export`` exports them.

For each graded submission: the student and the submission are created in ``COURSE/gradebook.db`` where missing,
each check cell's ``auto_score`` is set, and the status with its explanation goes into the solution cell's
automatic comment. The notebook the formgrader opens, ``COURSE/autograded/<student>/<assignment>/<notebook>.ipynb``,
is the submission with the original check cells and the verdict as each check cell's output. Where the
submission came through nbgrader's exchange (its ``submission_secret.txt`` beside it), the feedback page goes to
``COURSE/feedback/<student>/<assignment>/`` too, so that ``nbgrader release_feedback`` hands it back.
"""

from __future__ import annotations

import copy
import shutil
import warnings
from collections import defaultdict
from pathlib import Path

import nbformat

from grading.course import Exercise, normalized, tools_on_path
from grading.report import Row, explanation


def _course_id(course: Path) -> str:
    from traitlets.config.loader import PyFileConfigLoader

    try:
        config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
        return str(config.CourseDirectory.course_id)
    except Exception:  # noqa: BLE001 - no config: nbgrader's default
        return "default_course"


def _autograded(path: Path, source: nbformat.NotebookNode, tasks: list[Exercise], verdicts: dict[str, Row],
                *, timeout: float) -> nbformat.NotebookNode:
    work = nbformat.read(path, as_version=4)
    by_id = {t.check_id: t for t in tasks}
    for cell in work.cells:
        task = by_id.get(cell.metadata.get("nbgrader", {}).get("grade_id"))
        if task is None or task.name not in verdicts:
            continue
        original = source.cells[task.check]
        if normalized(cell.source) != normalized(original.source):
            cell.source = original.source
        row = verdicts[task.name]
        text = f"{row.status}: {explanation(row, timeout=timeout)}\n"
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    return work


def _hand_back(course: Path, submitted: Path, page: Path) -> None:
    """The feedback page where ``nbgrader release_feedback`` finds it, for a submission made through the exchange."""
    folder = submitted.parent
    if not ((folder / "submission_secret.txt").exists() and (folder / "timestamp.txt").exists()):
        return
    back = course / "feedback" / folder.parent.name / folder.name
    back.mkdir(parents=True, exist_ok=True)
    for name in ("submission_secret.txt", "timestamp.txt"):
        shutil.copyfile(folder / name, back / name)
    shutil.copyfile(page, back / f"{submitted.stem}.html")


def record(course: Path, rows: list[Row], paths: dict[tuple[str, str], Path],
           sources: dict[str, nbformat.NotebookNode], tasks: dict[str, list[Exercise]], *, timeout: float,
           feedback: Path) -> list[str]:
    """Write ``rows`` into the course's gradebook and autograded folder; returns notes on what was skipped."""
    from nbgrader.api import Gradebook, MissingEntry

    tools_on_path()
    notes: list[str] = []
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        groups[row.student, row.assignment].append(row)
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{course / 'gradebook.db'}", _course_id(course)) as gb:
        warnings.simplefilter("ignore")  # nbgrader 0.9.6's add_submission under SQLAlchemy 2.1: harmless SAWarnings
        for (student, assignment), group in sorted(groups.items()):
            try:
                gb.find_assignment(assignment)
            except MissingEntry:
                notes.append(f"gradebook: no assignment {assignment} (run make assignments); {student} not recorded")
                continue
            gb.update_or_create_student(student)
            try:
                gb.find_submission(assignment, student)
            except MissingEntry:
                gb.add_submission(assignment, student)
            verdicts = {row.exercise: row for row in group}
            for task in tasks[assignment]:
                row = verdicts.get(task.name)
                if row is None:
                    continue
                grade = gb.find_grade(task.check_id, assignment, assignment, student)
                grade.auto_score = row.points
                comment = gb.find_comment(task.name, assignment, assignment, student)
                comment.auto_comment = f"{row.status}: {explanation(row, timeout=timeout)}"
            gb.db.commit()
            target = course / "autograded" / student / assignment / f"{assignment}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            source = copy.deepcopy(sources[assignment])
            nbformat.write(_autograded(paths[student, assignment], source, tasks[assignment], verdicts,
                                       timeout=timeout), target)
            _hand_back(course, paths[student, assignment], feedback / student / f"{assignment}.html")
    return notes
