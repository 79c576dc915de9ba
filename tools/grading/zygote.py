"""The grading worker process ("zygote"): imports the course once, then forks one sandboxed job per request.

It never reads a submission: the grader passes it two pipe ends per job (the job's spec to read, the results to
write), and it only forks. Each job first enters its sandbox (tools/grading/sandbox.py), then reads its spec and runs
the harness (tools/grading/harness.py); its parent ``A`` waits for it and kills it when the grader says so (SIGTERM):
the job is PID 1 of its own PID namespace, so everything it started dies with it. Started by
tools/grading/worker.py.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import socket
import sys
import tempfile
import time

from grading import cgroups

EXIT_SANDBOX, EXIT_CRASH = 122, 123


def _job(config: dict, isolation: str, job_fd: int, result_fd: int, lifeline: int) -> None:
    """The job process: sandbox, limits, then the harness. Never returns."""
    from grading import harness, sandbox

    try:
        sandbox.die_with_parent()
        if isolation == "none":
            home = tempfile.mkdtemp(prefix="job-", dir=config["scratch"])
            if os.geteuid() == 0:
                os.chown(home, sandbox.NOBODY, sandbox.NOBODY)  # the job runs as nobody there
            os.chdir(home)
        else:
            sandbox.build_root(config["root"], sandbox.readable_paths(config["readable"]), tmp_mb=config["tmp_mb"])
            os.chdir("/tmp")
        sandbox.limit(memory_bytes=int(config["memory_gb"] * 2**30), file_mb=config["file_mb"],
                      processes=256 if isolation == "namespaces (root)" else None, cpu_seconds=config["cpu_seconds"])
        sandbox.drop_privileges(isolation)
        sandbox.die_with_parent()  # again: changing the user clears it
        if select.select([lifeline], [], [], 0)[0]:  # the parent ended before that: the job must not run
            os._exit(EXIT_SANDBOX)
        home = os.getcwd()
        os.environ.update(HOME=home, TMPDIR=home, MPLCONFIGDIR=f"{home}/.matplotlib", TORCH_HOME=f"{home}/.torch",
                          HF_HOME=f"{home}/.hf", XDG_CACHE_HOME=f"{home}/.cache")
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        keep = sorted({job_fd, result_fd, 0, 1, 2})
        for low, high in zip(keep, keep[1:] + [65536]):
            os.closerange(low + 1, high)
        chunks = []
        while chunk := os.read(job_fd, 1 << 16):
            chunks.append(chunk)
        os.close(job_fd)
        spec = json.loads(b"".join(chunks))
        if spec.get("probe"):
            os._exit(0 if not os.path.exists(spec["probe"]) else 1)
        harness.run(spec, result_fd)
        os._exit(0)
    except sandbox.SandboxError as err:
        _report(result_fd, f"the sandbox could not be set up: {err}")
        os._exit(EXIT_SANDBOX)
    except BaseException as err:  # noqa: BLE001 - the job reports and ends, whatever happened
        _report(result_fd, f"grading failed: {type(err).__name__}: {err}")
        os._exit(EXIT_CRASH)


def _report(fd: int, message: str) -> None:
    try:
        os.write(fd, (json.dumps({"event": "crash", "message": message}) + "\n").encode())
    except OSError:
        pass


def _fork_job(config: dict, isolation: str, job_fd: int, result_fd: int) -> int:
    """Fork ``A`` (it enters the namespaces, forks the job and waits for it); returns A's PID."""
    from grading import sandbox

    pid = os.fork()
    if pid:
        return pid
    try:
        sandbox.die_with_parent()
        if config.get("cgroups"):  # before the namespaces: this process and the job it forks, in one group
            cgroups.enter(_group(os.getpid()), int(config["memory_gb"] * 2**30))
        if isolation != "none":
            sandbox.enter_namespaces(isolation)
        lifeline, alive = os.pipe()  # the job sees end-of-file on it once this process is gone
        inner = os.fork()
        if inner == 0:
            os.close(alive)
            _job(config, isolation, job_fd, result_fd, lifeline)
        os.close(lifeline)
        os.close(job_fd)
        os.close(result_fd)

        def stop(*_) -> None:  # the grader's timeout: the job (PID 1 of its namespace) takes every process with it
            os.kill(inner, signal.SIGKILL)
            os.waitpid(inner, 0)  # gone, and its namespace with it, before this process ends
            os._exit(128 + signal.SIGKILL)

        signal.signal(signal.SIGTERM, stop)
        _, status = os.waitpid(inner, 0)
        code = os.waitstatus_to_exitcode(status)
        os._exit(code if code >= 0 else 128 - code)
    except BaseException as err:  # noqa: BLE001
        _report(result_fd, f"the sandbox could not be set up: {type(err).__name__}: {err}")
        os._exit(EXIT_SANDBOX)


def _group(pid: int) -> str:
    """The control group name of the job whose parent ``A`` has this PID."""
    return f"cnn-grading-job-{pid}"


def _probe_cgroups(memory_bytes: int) -> list[str]:
    """Which per-job limits control groups can give here (tried in a short-lived child)."""
    pid = os.fork()
    if pid == 0:
        held = cgroups.enter(_group(os.getpid()), memory_bytes)
        os._exit(("memory" in held) + 2 * ("pids" in held))
    _, status = os.waitpid(pid, 0)
    cgroups.remove(_group(pid))
    code = os.waitstatus_to_exitcode(status)
    return [name for bit, name in ((1, "memory"), (2, "pids")) if code > 0 and code & bit]


def _probe(config: dict, isolation: str) -> bool:
    """Whether a job can be started with this isolation (and then cannot see the grader's files)."""
    job_r, job_w = os.pipe()
    res_r, res_w = os.pipe()
    os.write(job_w, json.dumps({"probe": config["secret_path"]}).encode())
    os.close(job_w)  # before the fork: the job reads to the end of the pipe
    pid = _fork_job(config, isolation, job_r, res_w)
    os.close(job_r)
    os.close(res_w)
    _, status = os.waitpid(pid, 0)
    cgroups.remove(_group(pid))
    os.close(res_r)
    return os.waitstatus_to_exitcode(status) == 0


def _warm_up(programs: list[dict]) -> None:
    """Run each exercise's course code once, the reference standing in for the student's function, so that what
    torch and the course set up on first use (imports, kernels, caches) is done before the jobs are forked. Only
    the course's own code runs here; a program that fails is skipped."""
    import contextlib
    import io

    import torch
    from grading import harness

    torch.manual_seed(0)  # its first call imports torch._dynamo
    for program in programs:
        modules = [importlib.import_module(m) for m in program["check_modules"]]
        originals = [m.check_function for m in modules]
        harness._ORIGINAL.setdefault(modules[0].__name__, originals[0])

        def stand_in(student, reference, make_inputs, **kwargs):
            reference(*make_inputs(torch.Generator().manual_seed(0)))

        namespace = {"__name__": "__main__", program["exercise"]: None}
        try:
            for module in modules:
                module.check_function = stand_in
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                for unit in program["units"]:
                    exec(compile(unit["source"], "<warm-up>", "exec"), namespace)  # noqa: S102 - course code
        except Exception:  # noqa: BLE001 - warming up is an optimization only
            pass
        finally:
            for module, original in zip(modules, originals):
                module.check_function = original
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def main() -> None:
    """The worker: import what the course's code needs, find the isolation, then fork one job per request."""
    from grading import sandbox

    config = json.loads(sys.argv[1])
    sock = socket.socket(fileno=int(sys.argv[2]))
    sandbox.die_with_parent()
    started = time.perf_counter()
    failed = []
    for name in config["preload"]:
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - the job will report the same error where it matters
            failed.append(f"{name}: {err}")
    import torch

    torch.set_num_threads(1)
    _warm_up(config.get("warmup", []))
    isolation = "none"
    if config["isolation"] != "none" and sandbox.supported():
        candidates = ("namespaces (user)",) if config["isolation"] == "user" else ("namespaces (root)", "namespaces (user)")
        for candidate in candidates:  # "user": what a lecturer without root gets, tried even as root
            if (candidate.endswith("(root)") and os.geteuid() != 0) or not _probe(config, candidate):
                continue
            isolation = candidate
            break
    held = _probe_cgroups(int(config["memory_gb"] * 2**30)) if config.get("cgroups") else []
    config["cgroups"] = bool(held)
    _send(sock, op="ready", isolation=isolation, cgroups=held, import_seconds=time.perf_counter() - started,
          import_failures=failed)
    while True:  # the grader sends one request at a time and waits for its answers: one recv is one request
        message, fds, _, _ = socket.recv_fds(sock, 4096, 2)
        if not message or json.loads(message.split(b"\n")[0])["op"] == "stop" or len(fds) != 2:
            break
        pid = _fork_job(config, isolation, *fds)
        for fd in fds:
            os.close(fd)
        _send(sock, op="started", pid=pid)
        _, status = os.waitpid(pid, 0)
        cgroups.remove(_group(pid))
        _send(sock, op="exited", code=os.waitstatus_to_exitcode(status))


def _send(sock: socket.socket, **message) -> None:
    sock.sendall((json.dumps(message) + "\n").encode())
