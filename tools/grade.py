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
import ast
import hashlib
import json
import os
import queue
import secrets
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # tools, the course

from grading import hidden as default_hidden  # noqa: E402
from grading import report, slicing, submission  # noqa: E402
from grading.course import (CHECK_MODULES, COURSE, NOTEBOOKS, PACKAGE, ROOT, assignments, exercises,  # noqa: E402
                            with_nbgrader_metadata)
from grading.worker import Worker  # noqa: E402

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


def _seeds(secret: str, assignment: str, exercise: str, count: int) -> list[int]:
    return [int.from_bytes(hashlib.sha256(f"{secret}/{assignment}/{exercise}/{k}".encode()).digest()[:6], "big")
            for k in range(count)]


def _modules(source: str) -> set[str]:
    """The modules a piece of (course) code imports."""
    found = set()
    for node in ast.walk(ast.parse(slicing.python(source))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # submodules among them (others fail quietly)
    return found


def _statements(source: str) -> list[slicing.Statement]:
    try:
        return slicing.statements(source)
    except SyntaxError:
        return []


def _load_hidden(path: str | Path | None):
    if path is None:
        return default_hidden
    import importlib.util

    spec = importlib.util.spec_from_file_location("grading_hidden_custom", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _package_facts() -> dict:
    """Where the course package lives (read-only in the sandbox; the tripwire's side) and its check modules."""
    import importlib
    import importlib.util

    package = importlib.import_module(PACKAGE)
    home = Path(package.__file__).resolve().parent
    checks = []
    for name in CHECK_MODULES:  # only inside that package (a shared editable install may map other trees)
        try:
            spec = importlib.util.find_spec(name)
        except ImportError:
            continue
        if spec is not None and Path(spec.origin).resolve().is_relative_to(home):
            checks.append(name)
    from cnn_helpers.data import data_dir

    return {"package_dirs": [str(home)], "check_modules": checks,
            "excluded_files": [str(Path(importlib.util.find_spec(m).origin).resolve()) for m in checks],
            "data_dir": str(Path(data_dir()).resolve())}


def _worker_env() -> dict[str, str]:
    from testenv import test_environment

    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TERM", "SYSTEMROOT")}
    env.update(test_environment())
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", TEST_THREADS="1")
    return env


class Grader:
    """One grading run: the course, the jobs, the workers."""

    def __init__(self, *, notebooks: Path, course: Path, workers: int, timeout: float, memory_gb: float,
                 secret: str | None, hidden_path, isolation: str, quiet: bool) -> None:
        self.timeout, self.memory_gb, self.workers, self.quiet = timeout, memory_gb, workers, quiet
        self.isolation_request = isolation
        self.hidden = _load_hidden(hidden_path)
        self.secret = _secret(secret, course)
        self.courses = {a: nbformat.read(p, as_version=4) for a, p in assignments(notebooks).items()}
        self.tasks = {a: exercises(nb, getattr(self.hidden, "POINTS", {})) for a, nb in self.courses.items()}
        self.facts = _package_facts()
        self.isolation = "not started"
        self.notes: list[str] = []

    def spec(self, sub: submission.Submission, plan: submission.Plan) -> dict:
        check = next(u for u in plan.units if u.role == "check")
        course_defs = set()
        for unit in plan.units:
            if unit.owner == "course" and unit.role == "context":
                course_defs |= {n for st in slicing.statements(unit.source) for n in st.defs}
        name = plan.exercise.name
        variants = [v._asdict() for v in getattr(self.hidden, "VARIANTS", {}).get(name, [])]
        return {"units": [u.to_json() for u in plan.units], "package": PACKAGE,
                "package_dirs": self.facts["package_dirs"], "excluded_files": self.facts["excluded_files"],
                "check_modules": self.facts["check_modules"], "memory_gb": self.memory_gb,
                "protected": sorted(slicing.reads(check.source) & course_defs),
                "hidden": {"seeds": _seeds(self.secret, sub.assignment, name, getattr(self.hidden, "SEEDS", 2)),
                           "variants": variants}}

    def preload(self, jobs) -> list[str]:
        modules = {"torch", "torch._dynamo", "IPython.display", *self.facts["check_modules"]}
        for _, plan in jobs:
            for unit in plan.units:
                if unit.owner == "course":
                    modules |= _modules(unit.source)
        return sorted(modules)

    def warm_up(self, jobs) -> list[dict]:
        """Per exercise being graded, the course's own code of its program: built from the course notebook, never
        from a submission (the worker that runs it is not sandboxed); solution cells contribute their imports only."""
        programs = []
        for assignment, name in sorted({(sub.assignment, plan.exercise.name) for sub, plan in jobs}):
            source = self.courses[assignment]
            tasks = self.tasks[assignment]
            plan = next(p for p in submission.plan(source, with_nbgrader_metadata(source, tasks), tasks)
                        if p.exercise.name == name)
            units = []
            for unit in plan.units:
                if unit.owner == "student":
                    imports = [s.source for s in _statements(unit.source) if s.source.startswith(("import ", "from "))]
                    unit = slicing.Unit(unit.label, "\n".join(imports), "course", "context")
                units.append(unit.to_json())
            programs.append({"units": units, "exercise": name, "check_modules": self.facts["check_modules"]})
        return programs

    def start_workers(self, preload: list[str], scratch: Path, warmup: list[dict], jobs: int) -> list[Worker]:
        root = scratch / "root"
        root.mkdir(parents=True)
        (scratch / "jobs").mkdir()
        config = {"preload": preload, "warmup": warmup, "isolation": self.isolation_request, "root": str(root),
                  "scratch": str(scratch / "jobs"), "readable": [*self.facts["package_dirs"], self.facts["data_dir"]],
                  "memory_gb": self.memory_gb, "tmp_mb": 256, "file_mb": 64, "cpu_seconds": int(self.timeout * 20 + 60),
                  "secret_path": str(NOTEBOOKS)}
        env = _worker_env()
        started = [Worker(config, env) for _ in range(min(self.workers, jobs))]  # in this thread: see Worker
        try:
            for worker in started:
                worker.wait_ready()
        except BaseException:
            for worker in started:
                worker.close()
            raise
        self.isolation = started[0].isolation
        return started

    def run_job(self, worker: Worker, sub: submission.Submission, plan: submission.Plan) -> report.Row:
        spec = self.spec(sub, plan)
        runs = len(spec["hidden"]["seeds"]) + len(spec["hidden"]["variants"]) + len(spec["units"])
        job = worker.run(spec, unit_timeout=self.timeout, job_timeout=self.timeout * (runs + 1) + 30)
        task = plan.exercise
        row = report.Row(sub.student, sub.assignment, task.name, 0.0, task.points, "error", seconds=job.seconds,
                         restored=plan.restored, units=job.units)
        if job.timed_out:
            row.status, row.message = "timeout", f"{_what(job.timed_out)} ran longer than {self.timeout:g} s"
        elif job.result is not None:
            row.status, row.message, row.runs = job.result["status"], job.result["message"], job.result["runs"]
        elif job.crash:
            row.message = job.crash
            self.notes.append(f"{sub.student} {sub.assignment} {task.name}: {job.crash}")
        else:
            row.message = f"the kernel stopped ({_exit(job.exit_code)}) while running {_what(job.last_unit)}"
        if row.status not in report.STATUSES:
            row.status, row.message = "error", f"unexpected verdict {row.status!r}"
        row.points = task.points if row.status == "passed" else 0.0
        return row


def _what(label: str) -> str:
    return label or "the start of the job"


def _exit(code: int) -> str:
    import signal

    if code > 128 and code - 128 in signal.valid_signals():
        name = signal.Signals(code - 128).name
        return f"killed by {name}" + (", perhaps for using too much memory" if name == "SIGKILL" else "")
    return f"exit code {code}"


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
        isolation: "auto" (namespaces where the system allows them) or "none".

    Returns:
        The graded rows, in the order of grades.csv.
    """
    started = time.perf_counter()
    out, course = Path(out), Path(course)
    grader = Grader(notebooks=Path(notebooks), course=course, workers=workers, timeout=timeout, memory_gb=memory_gb,
                    secret=secret, hidden_path=hidden, isolation=isolation, quiet=quiet)
    subs, notes = submission.collect(submissions, grader.courses)
    grader.notes += notes
    rows: dict[tuple[str, str, str], report.Row] = {}
    jobs = []
    for sub in subs:
        tasks = grader.tasks[sub.assignment]
        try:
            work = nbformat.read(sub.path, as_version=4)
            plans = submission.plan(grader.courses[sub.assignment], work, tasks)
        except Exception as err:  # noqa: BLE001 - an unreadable notebook costs its own points only
            plans = [submission.Plan(t, "error", f"the notebook could not be read ({type(err).__name__})") for t in tasks]
        for plan in plans:
            if plan.status:
                rows[sub.student, sub.assignment, plan.exercise.name] = report.Row(
                    sub.student, sub.assignment, plan.exercise.name, 0.0, plan.exercise.points, plan.status,
                    plan.message, restored=plan.restored)
            else:
                jobs.append((sub, plan))
    if jobs:
        scratch = Path(tempfile.mkdtemp(prefix="cnn-grading-"))
        try:
            pool = grader.start_workers(grader.preload(jobs), scratch, grader.warm_up(jobs), len(jobs))
            _run_all(grader, pool, jobs, rows)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    ordered = _ordered(rows, grader.tasks)
    seconds = time.perf_counter() - started
    _write(out, ordered, grader, seconds, len(subs))
    if gradebook:
        _gradebook(course, ordered, grader, {(s.student, s.assignment): s.path for s in subs}, out / "feedback")
    print(report.summary(ordered, seconds=seconds, submissions=len(subs), workers=workers, isolation=grader.isolation))
    if grader.isolation == "none" and jobs:
        print("WARNING: no sandbox on this system: submissions ran with resource limits and the Python network guard "
              "only, and could read this machine's files. Grade on Linux (root or user namespaces) for isolation.")
    for note in grader.notes:
        print("note:", note)
    return ordered


def _run_all(grader: Grader, pool: list[Worker], jobs, rows) -> None:
    pending: queue.Queue = queue.Queue()
    for job in jobs:
        pending.put(job)
    remaining = {}
    for sub, _ in jobs:
        remaining[sub] = remaining.get(sub, 0) + 1
    lock = threading.Lock()
    spent: dict = {}

    def serve(worker: Worker) -> None:
        while True:
            try:
                sub, plan = pending.get_nowait()
            except queue.Empty:
                return
            row = grader.run_job(worker, sub, plan)
            with lock:
                rows[sub.student, sub.assignment, plan.exercise.name] = row
                spent[sub] = spent.get(sub, 0.0) + row.seconds
                remaining[sub] -= 1
                if remaining[sub] == 0 and not grader.quiet:
                    mine = [r for (s, a, _), r in rows.items() if (s, a) == (sub.student, sub.assignment)]
                    passed = sum(r.status == "passed" for r in mine)
                    print(f"{sub.student:<20} {sub.assignment:<26} {passed}/{len(mine)} passed  {spent[sub]:5.1f} s",
                          flush=True)

    threads = [threading.Thread(target=serve, args=(w,)) for w in pool]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for w in pool:
            w.close()


def _ordered(rows, tasks) -> list[report.Row]:
    order = {(a, t.name): i for a, ts in tasks.items() for i, t in enumerate(ts)}
    return sorted(rows.values(), key=lambda r: (r.student, r.assignment, order.get((r.assignment, r.exercise), 0)))


def _write(out: Path, rows: list[report.Row], grader: Grader, seconds: float, submissions: int) -> None:
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


def _gradebook(course: Path, rows: list[report.Row], grader: Grader, paths: dict, feedback: Path) -> None:
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
    parser.add_argument("--isolation", choices=("auto", "none"), default="auto")
    parser.add_argument("--quiet", action="store_true", help="no line per submission")
    args = parser.parse_args(argv)
    grade(args.submissions, args.out, workers=args.workers, timeout=args.timeout, memory_gb=args.memory_gb,
          hidden=args.hidden, course=args.course, isolation=args.isolation, quiet=args.quiet)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
