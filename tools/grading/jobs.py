"""One grading run, from plans to rows: the job each exercise becomes, the workers that run the jobs.

A job's spec holds what the sandboxed harness needs and nothing else: the units of the exercise's program, where the
course package lives (the tripwire's side), the names the check cell relies on (the integrity guard's), the hidden
seeds (derived from the lecturer's secret, which itself stays here) and the lecturer's variants for this exercise.
The workers import what the course's code of these programs imports and run that course code once (warm-up) before
they fork any job. Used by tools/grade.py.
"""

from __future__ import annotations

import ast
import hashlib
import os
import queue
import threading
from pathlib import Path

import nbformat

from grading import report, slicing, submission
from grading.course import (CHECK_MODULES, NOTEBOOKS, PACKAGE, assignments, data_dir, exercises, own_modules,
                            with_nbgrader_metadata)
from grading.worker import Worker


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


def _reads(source: str) -> set[str]:
    """The names a variant's code reads from the notebook (its own parameters and locals aside)."""
    try:
        return slicing.reads(source)
    except SyntaxError:
        return set()


def _package_facts() -> dict:
    """Where the course package lives (read-only in the sandbox; the tripwire's side) and its check modules."""
    import importlib

    checks = own_modules(CHECK_MODULES)
    return {"package_dirs": [str(Path(importlib.import_module(PACKAGE).__file__).resolve().parent)],
            "check_modules": [m.__name__ for m in checks],
            "excluded_files": [str(Path(m.__file__).resolve()) for m in checks],
            "data_dir": str(data_dir().resolve())}


def _worker_env() -> dict[str, str]:
    from testenv import test_environment

    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TERM", "SYSTEMROOT")}
    env.update(test_environment())
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", TEST_THREADS="1")
    return env


class Grading:
    """One grading run: the course, its settings, the jobs and the workers."""

    def __init__(self, *, notebooks: Path, workers: int, timeout: float, memory_gb: float,
                 secret: str, hidden, isolation: str, quiet: bool) -> None:
        self.timeout, self.memory_gb, self.workers, self.quiet = timeout, memory_gb, workers, quiet
        self.isolation_request = isolation
        self.hidden, self.secret = hidden, secret
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
        reads = slicing.reads(check.source).union(*(_reads(v["inputs"]) for v in variants))
        return {"units": [u.to_json() for u in plan.units], "package": PACKAGE,
                "package_dirs": self.facts["package_dirs"], "excluded_files": self.facts["excluded_files"],
                "check_modules": self.facts["check_modules"], "memory_gb": self.memory_gb,
                "protected": sorted(reads & course_defs),  # the student's code may not rebind these
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
                  "secret_path": str(NOTEBOOKS), "cgroups": True}
        env = _worker_env()
        started = [Worker(config, env) for _ in range(min(self.workers, jobs))]  # in this thread: see Worker
        try:
            for worker in started:
                worker.wait_ready()
        except BaseException:
            for worker in started:
                worker.close()
            raise
        limits = started[0].cgroups
        self.isolation = started[0].isolation + (f", control groups ({', '.join(limits)})" if limits else "")
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


def _done(sub: submission.Submission, rows: dict, seconds: float) -> None:
    """The line for a submission graded completely: passed exercises and the workers' seconds for it."""
    mine = [r for (s, a, _), r in rows.items() if (s, a) == (sub.student, sub.assignment)]
    passed = sum(r.status == "passed" for r in mine)
    print(f"{sub.student:<20} {sub.assignment:<26} {passed}/{len(mine)} passed  {seconds:5.1f} s", flush=True)


def run_all(grader: Grading, pool: list[Worker], jobs, rows) -> None:
    """Run every job on the workers (each serves one job at a time); a line per finished submission."""
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
            try:
                row = grader.run_job(worker, sub, plan)
            except Exception as err:  # noqa: BLE001 - the worker itself failed: this job is lost, not the run
                row = report.Row(sub.student, sub.assignment, plan.exercise.name, 0.0, plan.exercise.points, "error",
                                 f"grading failed ({type(err).__name__}: {err}); grade again")
                grader.notes.append(f"{sub.student} {sub.assignment} {plan.exercise.name}: {row.message}")
                if worker.process.poll() is not None:
                    pending.put((sub, plan))  # another worker may still take it
                    return
            with lock:
                rows[sub.student, sub.assignment, plan.exercise.name] = row
                spent[sub] = spent.get(sub, 0.0) + row.seconds
                remaining[sub] -= 1
                if remaining[sub] == 0 and not grader.quiet:
                    _done(sub, rows, spent[sub])

    threads = [threading.Thread(target=serve, args=(w,)) for w in pool]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for w in pool:
            w.close()
    for sub, plan in jobs:  # left over when every worker stopped
        key = (sub.student, sub.assignment, plan.exercise.name)
        if key not in rows:
            rows[key] = report.Row(*key, 0.0, plan.exercise.points, "error", "not graded: the grading workers stopped")
