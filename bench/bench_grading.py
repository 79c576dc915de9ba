"""Grading speed (tools/grade.py): 30 submissions of every exercise notebook, graded with two workers.

Every submission solves every exercise, so every exercise runs (a blank one costs nothing). The goal is the
issue's: all of them within 10 minutes on a 2-core machine, which is the "reference" column. Not compared: nbgrader's
own autograde, which runs every notebook completely (the whole `make test` of the notebooks, per student).

    python bench/bench_grading.py [STUDENTS]      (default 30; prints the row and the per-exercise times)
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tools"), str(ROOT)]
from grade import grade  # noqa: E402
from grading import course  # noqa: E402

STUDENTS = 30
GOAL_SECONDS = 600.0


def _class(folder: Path, students: int) -> int:
    """nbgrader's submitted/ layout: every student hands in the solved release of every notebook."""
    count = 0
    for assignment, path in course.assignments().items():
        notebook = nbformat.read(path, as_version=4)
        solved = course.with_nbgrader_metadata(notebook, course.exercises(notebook))
        for cell in solved.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        for n in range(students):
            target = folder / f"student{n:02d}" / assignment / f"{assignment}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(solved, target)
            count += 1
    return count


def measure(students: int = STUDENTS) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        submissions = _class(tmp / "submitted", students)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        start = time.perf_counter()
        rows = grade(tmp / "submitted", tmp / "grades", course=tmp / "course", workers=2, secret="bench", quiet=True)
        seconds = time.perf_counter() - start
        details = json.loads((tmp / "grades" / "grading.json").read_text())
    job_seconds = sum(r.seconds for r in rows)
    return {"submissions": submissions, "exercises": len(rows), "seconds": seconds,
            "passed": sum(r.status == "passed" for r in rows), "job_seconds": job_seconds,
            "isolation": details["isolation"], "load": load,
            "per_exercise": {f"{r.assignment}/{r.exercise}": r.seconds for r in rows if r.student == "student00"}}


def run() -> list[dict]:
    from run import row

    m = measure()
    note = (f"{m['submissions']} submissions, {m['exercises']} exercises ({m['passed']} passed): "
            f"{m['seconds'] / m['submissions']:.2f} s per submission, {m['job_seconds'] / m['exercises']:.2f} s of "
            f"worker time per exercise; isolation {m['isolation']}; load average {m['load']:.1f} at the start")
    return [row(f"grade {STUDENTS} submissions of each exercise notebook, 2 workers", m["seconds"], GOAL_SECONDS,
                note, "goal: 10 minutes")]


if __name__ == "__main__":
    result = measure(int(sys.argv[1]) if len(sys.argv) > 1 else STUDENTS)
    print(json.dumps(result, indent=1))
