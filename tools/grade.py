"""Grade collected submissions of the course's exercises: ``make grade SUBMISSIONS=DIR GRADES=OUT``.

    python tools/grade.py SUBMISSIONS [OUT]          (OUT defaults to build/grades)
    from grade import grade; grade("submitted", "build/grades")     (tools/ on sys.path)

SUBMISSIONS is nbgrader's ``submitted/`` layout (``<student>/<assignment>/<notebook>.ipynb``) or a flat folder of
``<student>_<anything>.ipynb`` files (an LMS bulk download). OUT receives ``grades.csv`` (student, assignment,
exercise, points, max_points, status), ``feedback/<student>/<assignment>.html`` and ``grading.json`` (messages and
run details for the lecturer); a summary is printed. If ``make assignments`` built the nbgrader course, its
gradebook gets the scores too (``nbgrader export``, the formgrader).

Each exercise of each submission runs on its own in a sandboxed job (see tools/grading/): only the cells it needs
(the setup cell, what the exercise's code and check read, the student's solution cell, the original check cell),
with hidden variants of the check, a tripwire on the course's reference, a per-cell timeout and a memory limit.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # tools, the course

from grading import hidden as default_hidden  # noqa: E402
from grading import report, submission  # noqa: E402
from grading.course import COURSE, NOTEBOOKS, ROOT  # noqa: E402
from grading.jobs import Grading, run_all  # noqa: E402

OUT = ROOT / "build" / "grades"


def _secret(value: str | None, course: Path) -> str:
    """The lecturer's grading secret (hidden seeds come from it): argument, ``GRADING_SECRET``, or a file kept in
    the course folder (made once)."""
    if value or os.environ.get("GRADING_SECRET"):
        return value or os.environ["GRADING_SECRET"]
    path = course / ".grading_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(16) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def _load_hidden(path: str | Path | None):
    """The hidden variants: tools/grading/hidden.py, or the lecturer's own file of the same form."""
    if path is None:
        return default_hidden
    import importlib.util

    spec = importlib.util.spec_from_file_location("grading_hidden_custom", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def grade(submissions: str | Path, out: str | Path = OUT, *, notebooks: str | Path = NOTEBOOKS,
          course: str | Path = COURSE, workers: int = 2, timeout: float = 60, memory_gb: float = 4,
          secret: str | None = None, hidden: str | Path | None = None, isolation: str = "auto",
          quiet: bool = False, gradebook: bool = True) -> list[report.Row]:
    """Grade every submission in ``submissions``; write grades.csv, feedback and grading.json to ``out``.

    Args:
        submissions: nbgrader's ``submitted/`` folder or a flat folder of ``<student>_<anything>.ipynb``.
        out: Where the grades go. Default: build/grades.
        workers: Jobs at a time (each on one thread). Default: 2.
        timeout: Seconds each cell may run. Default: 60.
        memory_gb: Memory a job may use. Default: 4.
        secret: The grading secret (hidden seeds). Default: ``GRADING_SECRET`` or ``<course>/.grading_secret``.
        hidden: A file like tools/grading/hidden.py with the lecturer's own variants. Default: that file.
        isolation: "auto" (namespaces where the system allows them), "none", or "user" (an unprivileged user
            namespace even as root: what a lecturer without root gets).

    Returns:
        The graded rows, in the order of grades.csv.
    """
    started = time.perf_counter()
    out, course = Path(out), Path(course)
    grader = Grading(notebooks=Path(notebooks), workers=workers, timeout=timeout, memory_gb=memory_gb,
                     secret=_secret(secret, course), hidden=_load_hidden(hidden), isolation=isolation, quiet=quiet)
    subs, notes = submission.collect(submissions, grader.courses)
    grader.notes += notes
    rows, jobs = _plans(grader, subs)
    if jobs:
        scratch = Path(tempfile.mkdtemp(prefix="cnn-grading-"))
        try:
            pool = grader.start_workers(grader.preload(jobs), scratch, grader.warm_up(jobs), len(jobs))
            run_all(grader, pool, jobs, rows)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    ordered = _ordered(rows, grader.tasks)
    seconds = time.perf_counter() - started
    _write(out, ordered, grader, seconds, len(subs))
    if gradebook:
        _gradebook(course, ordered, grader, {(s.student, s.assignment): s.path for s in subs}, out / "feedback")
    print(report.summary(ordered, seconds=seconds, submissions=len(subs), workers=workers, isolation=grader.isolation))
    if grader.isolation.startswith("none") and jobs:
        print("WARNING: no sandbox on this system: submissions ran with resource limits and the Python network guard "
              "only, and could read this machine's files. Grade on Linux (root or user namespaces) for isolation.")
    for note in grader.notes:
        print("note:", note)
    return ordered


def _plans(grader: Grading, subs: list[submission.Submission]) -> tuple[dict, list]:
    """Rows decided without running anything (tampered, not attempted, unreadable), and the jobs to run."""
    rows: dict[tuple[str, str, str], report.Row] = {}
    jobs = []
    for sub in subs:
        tasks = grader.tasks[sub.assignment]
        try:
            work = nbformat.read(sub.path, as_version=4)
            plans = submission.plan(grader.courses[sub.assignment], work, tasks)
        except Exception as err:  # noqa: BLE001 - an unreadable notebook costs its own points only
            why = f"the notebook could not be read ({type(err).__name__})"
            plans = [submission.Plan(t, "error", why) for t in tasks]
        for plan in plans:
            task = plan.exercise
            if plan.status:
                rows[sub.student, sub.assignment, task.name] = report.Row(
                    sub.student, sub.assignment, task.name, 0.0, task.points, plan.status, plan.message,
                    restored=plan.restored)
            else:
                jobs.append((sub, plan))
    return rows, jobs


def _ordered(rows, tasks) -> list[report.Row]:
    order = {(a, t.name): i for a, ts in tasks.items() for i, t in enumerate(ts)}
    return sorted(rows.values(), key=lambda r: (r.student, r.assignment, order.get((r.assignment, r.exercise), 0)))


def _write(out: Path, rows: list[report.Row], grader: Grading, seconds: float, submissions: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report.write_csv(rows, out / "grades.csv")
    if (out / "feedback").exists():
        shutil.rmtree(out / "feedback")
    report.write_feedback(rows, out / "feedback", timeout=grader.timeout)
    details = {"isolation": grader.isolation, "seconds": round(seconds, 2), "submissions": submissions,
               "workers": grader.workers, "timeout_s": grader.timeout, "memory_gb": grader.memory_gb,
               "notes": grader.notes,
               "rows": [{**dict(zip(report.COLUMNS, r.csv())), "message": r.message, "seconds": round(r.seconds, 3),
                         "runs": r.runs, "units": r.units} for r in rows]}
    (out / "grading.json").write_text(json.dumps(details, indent=1, default=str) + "\n")


def _gradebook(course: Path, rows: list[report.Row], grader: Grading, paths: dict, feedback: Path) -> None:
    """The scores into the nbgrader course's gradebook too, when ``make assignments`` made one."""
    if not (course / "gradebook.db").exists() or not rows:
        return
    from grading.gradebook import record

    try:
        grader.notes += record(course, rows, paths, grader.courses, grader.tasks, timeout=grader.timeout,
                               feedback=feedback)
    except Exception as err:  # noqa: BLE001 - grades.csv is written; the gradebook is a convenience
        grader.notes.append(f"the gradebook was not updated: {type(err).__name__}: {err}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("submissions", help="nbgrader's submitted/ folder or a flat folder of <student>_*.ipynb")
    parser.add_argument("out", nargs="?", default=str(OUT), help="where grades.csv and feedback/ go (build/grades)")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("GRADING_WORKERS", "2")))
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per cell (60)")
    parser.add_argument("--memory-gb", type=float, default=4.0, help="memory per job (4)")
    parser.add_argument("--hidden", help="the lecturer's hidden variants (default tools/grading/hidden.py)")
    parser.add_argument("--course", default=str(COURSE), help="the nbgrader course (for its gradebook and secret)")
    parser.add_argument("--isolation", choices=("auto", "none", "user"), default="auto")
    parser.add_argument("--quiet", action="store_true", help="no line per submission")
    args = parser.parse_args(argv)
    grade(args.submissions, args.out, workers=args.workers, timeout=args.timeout, memory_gb=args.memory_gb,
          hidden=args.hidden, course=args.course, isolation=args.isolation, quiet=args.quiet)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
