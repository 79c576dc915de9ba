"""A control group per job: one memory limit for the job and every process it starts, and a cap on their number.

The address-space limit of tools/grading/sandbox.py holds per process; a job that forks many processes, each below
it, could still fill the machine's memory or process table and so disturb other jobs. Where the grader may create
control groups (root, or a delegated cgroup v2 subtree), each job runs in its own, below the grader's: ``memory``
(its RAM, page cache and tmpfs, swap included where accounted) at the job's memory limit and ``pids`` at
:data:`PIDS`. A job over the memory limit is killed by the kernel (SIGKILL), which grading reports as an error.
Elsewhere the per-process limits apply alone, and grading says so.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PIDS = 32  # processes and threads of one job (it needs one or two)
ROOT = Path("/sys/fs/cgroup")


def _own_paths() -> dict[str, Path]:
    """controller -> the folder of this process's control group for it (cgroup v1 or v2)."""
    found = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "" and (ROOT / "cgroup.controllers").exists():  # v2, unified
            for name in ("memory", "pids"):
                found.setdefault(name, ROOT / path.lstrip("/"))
        for name in controllers.split(","):
            if name in ("memory", "pids") and (ROOT / name).is_dir():
                found[name] = ROOT / name / path.lstrip("/")
    return found


def job_groups(name: str) -> dict[str, Path]:
    """The folders a job called ``name`` gets (not created)."""
    return {controller: base / name for controller, base in _own_paths().items()}


def _write(folder: Path, files: tuple[str, ...], value: str) -> bool:
    for file in files:
        try:
            (folder / file).write_text(value)
            return True
        except OSError:
            continue
    return False


def enter(name: str, memory_bytes: int) -> list[str]:
    """Create the job's control groups and move this process into them (its children are born there).

    Returns:
        The limits that hold, e.g. ``["memory", "pids"]`` (empty where control groups cannot be made).
    """
    held = []
    for controller, folder in job_groups(name).items():
        try:
            folder.mkdir()
        except OSError:
            continue
        if controller == "memory":
            ok = _write(folder, ("memory.limit_in_bytes", "memory.max"), str(memory_bytes))
            _write(folder, ("memory.memsw.limit_in_bytes", "memory.swap.max"), str(memory_bytes if (
                folder / "memory.memsw.limit_in_bytes").exists() else 0))
        else:
            ok = _write(folder, ("pids.max",), str(PIDS))
        if ok and _write(folder, ("cgroup.procs",), str(os.getpid())):
            held.append(controller)
    return held


def remove(name: str, *, wait: float = 2.0) -> None:
    """Remove the job's control groups once every process in them has ended (waiting up to ``wait`` seconds for
    the last ones the kernel is still taking down)."""
    deadline = time.monotonic() + wait
    for folder in job_groups(name).values():
        while folder.exists():
            try:
                folder.rmdir()
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
