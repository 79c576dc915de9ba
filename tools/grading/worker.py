"""Grading workers, the grader's side: one process per core that has imported torch and the course once and forks
a sandboxed job per exercise of a submission (milliseconds instead of seconds of imports; the worker's own code is
tools/grading/zygote.py).

    grader ──socket──> worker (imports done, no submission) ──fork──> A (new namespaces) ──fork──> job (PID 1)

The worker never reads a submission: the grader passes it two pipe ends (the job's spec to read, the results to
write) and the worker only forks. So a job's memory holds the imported modules and its own submission, nothing of
the students graded before it. The grader reads the job's messages itself, times every cell and kills a job that
runs over (the job dies with its parent ``A``, and every process it started with the job, PID 1 of its namespace).
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[1]
BOOT = f"import sys; sys.path.insert(0, {str(TOOLS)!r}); from grading.zygote import main; main()"


@dataclass
class JobResult:
    """What one job sent and how it ended."""

    result: dict | None = None  # the harness's verdict, if it got that far
    timed_out: str = ""  # label of the unit that ran over
    crash: str = ""  # the job's own report of a failure outside the student's code
    exit_code: int = 0
    last_unit: str = ""
    seconds: float = 0.0
    units: list[list] = field(default_factory=list)  # [label, seconds since the job started] per unit


class Worker:
    """One grading worker process and its socket. Start it from a thread that lives as long as the grading does: the
    worker dies with that thread (its parent-death signal), so that an interrupted grader leaves nothing behind."""

    def __init__(self, config: dict, env: dict[str, str]) -> None:
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)  # messages: JSON lines
        self._buffer = b""
        self.process = subprocess.Popen([sys.executable, "-c", BOOT, json.dumps(config), str(theirs.fileno())],
                                        pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL)
        theirs.close()
        self.isolation, self.import_seconds, self.import_failures, self.cgroups = "not started", 0.0, [], []

    def wait_ready(self, timeout: float = 600) -> None:
        """Wait until the worker has imported the course and found its isolation."""
        ready = self._receive(timeout=timeout)
        self.isolation = ready["isolation"]
        self.cgroups = ready.get("cgroups", [])
        self.import_seconds = ready["import_seconds"]
        self.import_failures = ready["import_failures"]

    def _receive(self, timeout: float | None = None) -> dict:
        """The worker's next message."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self.sock], [], [], left)[0]:
                raise TimeoutError("the grading worker does not answer")
            data = self.sock.recv(4096)
            if not data:
                raise RuntimeError(f"the grading worker stopped (exit code {self.process.poll()})")
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def run(self, spec: dict, *, unit_timeout: float, job_timeout: float) -> JobResult:
        """Run one job; kill it when a unit takes longer than ``unit_timeout`` or all of it than ``job_timeout``."""
        job_r, job_w = os.pipe()
        res_r, res_w = os.pipe()
        socket.send_fds(self.sock, [_line({"op": "run"})], [job_r, res_w])
        os.close(job_r)
        os.close(res_w)
        pid = self._receive(timeout=60)["pid"]
        writer = threading.Thread(target=_write_all, args=(job_w, json.dumps(spec).encode()), daemon=True)
        writer.start()
        out = JobResult()
        start = time.monotonic()
        with os.fdopen(res_r, "rb", buffering=0) as results:
            self._follow(results, pid, out, start, unit_timeout, job_timeout)
        try:
            out.exit_code = self._receive(timeout=10)["code"]
        except TimeoutError:
            _kill(pid)
            out.exit_code = self._receive(timeout=60)["code"]
        out.seconds = time.monotonic() - start
        writer.join(timeout=5)
        return out

    @staticmethod
    def _follow(results, pid: int, out: JobResult, start: float, unit_timeout: float, job_timeout: float) -> None:
        """Read the job's messages until it ends; stop it when a unit or the whole job runs over."""
        unit_start, buffer = start, b""
        while True:
            left = min(unit_start + unit_timeout, start + job_timeout) - time.monotonic()
            if left <= 0:
                out.timed_out = out.last_unit or "the start of the job"
                os.kill(pid, signal.SIGTERM)  # A kills the job, then itself
                return
            if not select.select([results], [], [], min(left, 1.0))[0]:
                continue
            chunk = results.read(1 << 16)
            if not chunk:
                return
            *lines, buffer = (buffer + chunk).split(b"\n")
            for message in map(_parse, lines):
                if message.get("event") == "unit":
                    out.last_unit = str(message.get("label", ""))[:200]
                    unit_start = time.monotonic()
                    out.units.append([out.last_unit, round(unit_start - start, 3)])
                elif message.get("event") == "result" and out.result is None:
                    out.result = message
                elif message.get("event") == "crash":
                    out.crash = str(message.get("message", ""))[:500]

    def close(self) -> None:
        try:
            self.sock.sendall(_line({"op": "stop"}))
            self.process.wait(timeout=10)
        except Exception:  # noqa: BLE001 - a worker that does not stop is killed
            self.process.kill()
        self.sock.close()


def _line(message: dict) -> bytes:
    return (json.dumps(message) + "\n").encode()


def _write_all(fd: int, data: bytes) -> None:
    try:
        with os.fdopen(fd, "wb") as pipe:
            pipe.write(data)
    except OSError:  # the job died before reading its spec: its exit code says why
        pass


def _parse(line: bytes) -> dict:
    try:
        message = json.loads(line)
        return message if isinstance(message, dict) else {}
    except ValueError:
        return {}


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
