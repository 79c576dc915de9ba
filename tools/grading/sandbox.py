"""The sandbox one graded exercise runs in: Linux namespaces set up by the grader itself, then limits.

A job process (forked from a worker that has already imported torch and the course) is put into new mount, network,
PID, IPC and UTS namespaces — the kernel features bubblewrap uses — before any student code runs:

* files: a new root holding only what the course needs, read-only (system directories, the Python installation
  and virtual environment, the course package and its data); a fresh tmpfs at ``/tmp`` is the only writable place
  (``HOME`` and the working directory point there). Submissions, solution notebooks, hidden checks, the gradebook
  and grades are simply not in that root; the old root is detached;
* network: an empty network namespace (not even a loopback that is up);
* processes: its own PID namespace (it cannot see or signal the grader or other jobs; when the job ends every
  process it started dies with it);
* privileges: as root the job then runs as ``nobody``; otherwise the namespaces are made in a user namespace and
  the job gives up its capabilities there by entering one more user namespace;
* limits: address space (memory), file size, core dumps, processes; no new privileges. Where the grader may create
  control groups, the job also gets one memory limit and a process cap for all it starts (tools/grading/cgroups.py).

The isolation that ran is one of ``namespaces (root)``, ``namespaces (user)`` or ``none`` (not Linux, or
namespaces forbidden: then only the limits and the network guard of tools/netblock apply, and the grader says so
loudly).
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
from pathlib import Path

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = 1024, 2048, 4096, 16384, 1 << 18, 1 << 21
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine) if hasattr(os, "uname") else None
NOBODY = 65534
DEVICES = ("null", "zero", "full", "random", "urandom")

_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


class SandboxError(OSError):
    """The sandbox could not be set up (the job is not run)."""


def _call(name: str, *args) -> None:
    if getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise SandboxError(err, f"{name}{args!r}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _call("mount", enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))


def prctl(option: int, value: int) -> None:
    if _libc is not None:
        _call("prctl", option, ctypes.c_ulong(value), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))


def unshare(flags: int) -> None:
    _call("unshare", flags)


def _locked_flags(path: str) -> int:
    """The mount flags a read-only remount must keep (a user namespace may not drop them)."""
    f = os.statvfs(path).f_flag
    pairs = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
             (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME))
    return sum(ms for st, ms in pairs if f & st)


def _submounts(path: str) -> list[str]:
    """Mount points at or below ``path`` (each needs its own read-only remount)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == path or point.startswith(path.rstrip("/") + "/"):
            found.append(point)
    return found


def _bind_readonly(source: str, root: str) -> None:
    target = root + source
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        Path(target).touch()
    _mount(source, target, None, MS_BIND | MS_REC)
    for point in _submounts(target):
        _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _locked_flags(point))


def _place(path: str, root: str, bound: list[str]) -> None:
    """Make ``path`` readable under ``root``: symlinks on the way are recreated, the real directory bound once."""
    current = "/"
    for part in Path(path).parts[1:]:
        current = os.path.join(current, part)
        if os.path.islink(current):
            link = root + current
            if not os.path.lexists(link):
                os.makedirs(os.path.dirname(link), exist_ok=True)
                os.symlink(os.readlink(current), link)
            _place(os.path.realpath(current) + path[len(current):], root, bound)
            return
    if os.path.exists(path) and not any(path == b or path.startswith(b.rstrip("/") + "/") for b in bound):
        bound.append(path)
        _bind_readonly(path, root)


def readable_paths(extra: list[str]) -> list[str]:
    """What a job may read: system directories, this Python and its packages, and ``extra`` (the course package and
    its data). Not ``sys.path`` as such: it holds the repository root, with the solution notebooks in it."""
    system = ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc"]
    paths = system + [sys.base_prefix, sys.prefix, sys.exec_prefix] + list(extra)
    return sorted({p for p in paths if os.path.exists(p)}, key=lambda p: (len(os.path.realpath(p)), p))


def supported() -> bool:
    """Whether this system can have namespaces at all (Linux with a known ``pivot_root``); the worker then tries
    them for real (:mod:`grading.worker`) and falls back to none."""
    return _libc is not None and SYS_PIVOT_ROOT is not None


def enter_namespaces(isolation: str) -> None:
    """Move this process into new namespaces (its next child is PID 1 of the new PID namespace). In a user namespace
    the process can map only its own user id: the job keeps it (a lecturer's own id; root's, when root asks for
    this mode to try it), without any capability."""
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    if isolation == "namespaces (user)":
        uid, gid = os.getuid(), os.getgid()
        unshare(flags | CLONE_NEWUSER)
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
    else:
        unshare(flags)


def build_root(root: str, readable: list[str], *, tmp_mb: int) -> None:
    """Make ``root`` (an empty directory) the new ``/`` of this process: read-only binds, fresh /tmp, /dev, /proc."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here propagates back to the machine
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=0755")
    os.makedirs(root + "/tmp")  # first: a course or a virtual environment under /tmp is then bound inside it
    _mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_mb}m,mode=1777")
    bound: list[str] = []
    for path in readable:
        _place(path, root, bound)
    os.makedirs(root + "/dev", exist_ok=True)
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            Path(f"{root}/dev/{name}").touch()
            _mount(f"/dev/{name}", f"{root}/dev/{name}", None, MS_BIND)
    for sub in ("dev/shm", "proc"):
        os.makedirs(f"{root}/{sub}", exist_ok=True)
    _mount("tmpfs", root + "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=1777")
    try:
        _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except SandboxError:  # some containers forbid a new /proc; Python and torch run without one
        pass
    os.chdir(root)
    if _libc.syscall(SYS_PIVOT_ROOT, b".", b".") != 0:
        raise SandboxError(ctypes.get_errno(), "pivot_root failed")
    _call("umount2", b".", MNT_DETACH)  # the old root, stacked under the new one, goes away
    os.chdir("/")
    _mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def limit(*, memory_bytes: int, file_mb: int, processes: int | None, cpu_seconds: int) -> None:
    """Resource limits of the job: address space above what is mapped now, file size, no core files, CPU time."""
    if os.path.exists("/proc/self/statm"):  # elsewhere what is mapped is unknown (and RLIMIT_AS not enforced)
        mapped = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (mapped + memory_bytes,) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_mb << 20,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
    if processes is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))


def drop_privileges(isolation: str) -> None:
    """Root becomes ``nobody`` (also without namespaces); in a user namespace the job enters one more, keeping no
    capability over its mounts."""
    if isolation == "namespaces (user)":
        unshare(CLONE_NEWUSER)
    elif os.geteuid() == 0:
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_SET_DUMPABLE, 0)


def die_with_parent() -> None:
    """This process gets SIGKILL when its parent ends (a killed job takes its whole PID namespace with it)."""
    if _libc is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
