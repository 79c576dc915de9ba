"""Executed notebooks, kept in ``build/executed/`` and reused: one execution serves the tests, the site and the slides.

    from nbcache import executed_notebook, run_key, lookup, store      (tools/ on sys.path)

``make test`` runs every notebook under nbval (executed by tools/nbexec.py, see tools/nbval_runner.py) and keeps
each one that ran to its end, with its figures and widget states, as ``build/executed/<stem>.<key>.ipynb``.
``make site``, ``make slides`` and the slides' browser test take that copy instead of executing the notebook again,
but only while it is current. The key is a hash of everything the outputs depend on:

- the notebook's code cells (source and tags, in order); its Markdown is taken from the notebook as it is now;
- every file under ``cnn_helpers/`` and ``data/``;
- the kernel's mode: every ``CNN_*`` switch, the figure backend, the hash seed, and which files lie in the torch
  hub and Hugging Face caches (names and sizes);
- the Python version and the version of every installed package.

When any of these changes the key changes, and the notebook is executed again. The thread count is not part of
the key (it is recorded in the run's ``mode``): every notebook must pass with 1 and with 2 threads, and `make test`'s
two workers run with one thread each while `make site`/`make slides` give one process two. Only complete runs are
kept: a notebook that stopped with an error, ran out of time or had a cell skipped leaves nothing to reuse.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import sys
import sysconfig
import time
from pathlib import Path
from typing import Mapping

import nbformat
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nbexec import execute  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build" / "executed"
INPUTS = ("cnn_helpers", "data")  # folders whose every file the outputs may depend on
MODE = ("MPLBACKEND", "PYTHONHASHSEED")  # besides every CNN_* variable
KEEP = 4  # executed copies kept per notebook (the solution and student versions, fast and full mode)
INLINE = "module://matplotlib_inline.backend_inline"


def _digest_tree(digest: "hashlib._Hash", folder: Path, *, contents: bool) -> None:
    if not folder.is_dir():
        return
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(file.relative_to(folder)).encode())
        digest.update(file.read_bytes() if contents else str(file.stat().st_size).encode())


def mode(env: Mapping[str, str]) -> dict[str, str]:
    """The kernel settings that change what a notebook computes or shows."""
    return {k: env.get(k, "") for k in sorted({*MODE, *(k for k in env if k.startswith("CNN_"))})}


def describe(env: Mapping[str, str]) -> str:
    """The mode in words, e.g. ``fast mode, offline, 2 threads``."""
    fast = {"1": "fast mode", "0": "full mode"}.get(env.get("CNN_FAST", ""), "fast/full by device")
    offline = "offline" if env.get("CNN_OFFLINE") == "1" else "online"
    return f"{fast}, {offline}, {env.get('OMP_NUM_THREADS') or 'all'} threads"


def key_parts(notebook: nbformat.NotebookNode, env: Mapping[str, str], root: Path = ROOT) -> dict[str, str]:
    """One short hash per thing a run depends on (module docstring): a run that is not reused can say which changed."""
    parts: dict[str, "hashlib._Hash"] = {name: hashlib.sha256() for name in ("code", *INPUTS, "mode", "caches",
                                                                              "python", "packages")}
    for cell in notebook.cells:
        if cell.cell_type == "code":
            parts["code"].update(json.dumps([cell.source, cell.get("metadata", {}).get("tags", [])]).encode())
    for folder in INPUTS:
        _digest_tree(parts[folder], root / folder, contents=True)
    parts["mode"].update(json.dumps(mode(env)).encode())
    home = Path.home() / ".cache"
    for cache in (env.get("TORCH_HOME") or home / "torch", env.get("HF_HOME") or home / "huggingface"):
        _digest_tree(parts["caches"], Path(cache), contents=False)
    parts["python"].update(sys.version.encode())
    parts["packages"].update(" ".join(packages(env)).encode())
    return {name: digest.hexdigest()[:12] for name, digest in parts.items()}


def packages(env: Mapping[str, str]) -> list[str]:
    """``name==version`` of every package the kernel can import: on the kernel's PYTHONPATH and in this
    interpreter's site-packages. Not this process's ``sys.path``, which tests and pytest change as they run."""
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths += sorted({sysconfig.get_paths()[k] for k in ("purelib", "platlib")})
    return sorted({f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions(path=paths)
                   if d.metadata["Name"]})


def run_key(notebook: nbformat.NotebookNode, env: Mapping[str, str], root: Path = ROOT) -> str:
    """The hash of everything a run of ``notebook`` in a kernel with ``env`` depends on (module docstring)."""
    return key_of(key_parts(notebook, env, root))


def key_of(parts: Mapping[str, str]) -> str:
    """The run key made of ``key_parts`` (stored with each run as ``course_run.key_parts``)."""
    return hashlib.sha256(json.dumps(dict(parts), sort_keys=True).encode()).hexdigest()[:16]


def changed(notebook: nbformat.NotebookNode, env: Mapping[str, str], kept: nbformat.NotebookNode,
            root: Path = ROOT) -> list[str]:
    """What differs between a kept run (``course_run.key_parts``) and a run of ``notebook`` with ``env`` now."""
    before = kept.metadata.get("course_run", {}).get("key_parts", {})
    now = key_parts(notebook, env, root)
    return sorted(name for name in now if before.get(name) != now[name])


def lookup(stem: str, key: str, cache: Path = CACHE) -> nbformat.NotebookNode | None:
    """The kept run of notebook ``stem`` with this key, or None."""
    path = cache / f"{stem}.{key}.ipynb"
    if not path.is_file():
        return None
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception:  # a copy cut short by a crash is not a run
        return None
    return notebook if notebook.metadata.get("course_run", {}).get("key") == key else None


def store(stem: str, notebook: nbformat.NotebookNode, key: str, run: dict, cache: Path = CACHE) -> Path:
    """Keep a complete run; older runs of the same notebook beyond the newest ``KEEP`` are deleted."""
    cache.mkdir(parents=True, exist_ok=True)
    notebook.metadata["course_run"] = {**run, "key": key}
    path = cache / f"{stem}.{key}.ipynb"
    partial = cache / f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.partial"  # one per writer (xdist workers)
    try:
        nbformat.write(notebook, partial)
        partial.replace(path)  # atomic: readers and other writers never see half a file
    finally:
        partial.unlink(missing_ok=True)
    runs = sorted(cache.glob(f"{glob_escape(stem)}.*.ipynb"), key=_mtime, reverse=True)
    for old in runs[KEEP:]:  # another writer may have deleted it already
        old.unlink(missing_ok=True)
    return path


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # deleted by another writer meanwhile
        return 0.0


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def with_outputs(current: nbformat.NotebookNode, executed: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``current`` (the notebook as it is now) with the outputs, execution counts and widget states of
    ``executed``, a run of the same code cells."""
    merged = nbformat.from_dict(json.loads(json.dumps(current)))
    code = [c for c in merged.cells if c.cell_type == "code"]
    ran = [c for c in executed.cells if c.cell_type == "code"]
    if [c.source for c in code] != [c.source for c in ran]:
        raise ValueError("the executed copy is a run of other code cells")
    for cell, run in zip(code, ran):
        cell.outputs, cell.execution_count = run.outputs, run.execution_count
    for key in ("widgets", "course_run", "language_info"):
        if key in executed.metadata:
            merged.metadata[key] = executed.metadata[key]
    return merged


def executed_notebook(path: Path, notebook: nbformat.NotebookNode, *, env: Mapping[str, str], timeout: int = 1800,
                      reuse: bool = True, cache: Path = CACHE) -> nbformat.NotebookNode:
    """``notebook`` (read from ``path``, maybe changed, e.g. a student version) executed, or its kept run.

    Args:
        path: The notebook's file: its stem names the kept run, its folder is the kernel's working directory.
        notebook: What to execute (not modified).
        env: The kernel's environment on top of this process's (as for ``nbexec.execute``).
        timeout: Seconds allowed per cell.
        reuse: False executes even when a current run is kept.

    Returns:
        The executed notebook; ``metadata.course_run`` holds ``mode``, ``seconds`` (per code cell, in order),
        ``cpu_seconds``, ``wall_seconds``, ``load``, ``reused`` and ``failed`` (the error's last line, or "").
    """
    kernel_env = {**os.environ, **env}
    parts = key_parts(notebook, kernel_env)
    key = key_of(parts)
    kept = lookup(path.stem, key, cache) if reuse else None
    if kept is not None:
        merged = with_outputs(notebook, kept)
        merged.metadata["course_run"]["reused"] = True
        return merged
    executed = nbformat.from_dict(json.loads(json.dumps(notebook)))
    seconds: dict[int, float] = {}
    stats: dict = {}
    run = {"mode": describe(kernel_env), "load": round(os.getloadavg()[0], 1), "failed": "", "reused": False,
           "key_parts": parts}
    start = time.perf_counter()
    try:
        execute(executed, cwd=path.parent, timeout=timeout, env=env, name=path.stem, seconds=seconds, stats=stats)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
        run["failed"] = re.sub(r"\x1b\[[0-9;]*m", "", (str(err).strip().splitlines() or [type(err).__name__])[-1])
    code = [i for i, c in enumerate(executed.cells) if c.cell_type == "code"]
    run.update(seconds={str(n): round(seconds[i], 2) for n, i in enumerate(code) if i in seconds},
               cpu_seconds=stats.get("cpu_seconds"), wall_seconds=round(time.perf_counter() - start, 1))
    if run["failed"]:
        executed.metadata["course_run"] = {**run, "key": key}
    else:
        store(path.stem, executed, key, run, cache)
    return executed
