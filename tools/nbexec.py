"""Execute a notebook: the one executor used by the refresh tool, the site builder and the notebook tests.

    from nbexec import execute          (tools/ on sys.path)
    executed = execute(notebook, cwd=path.parent, timeout=600, name=path.stem)

Keeping one entry point means a fix to how notebooks are executed (kernel start, timeouts, progress)
applies everywhere at once.

Why not plain ``nbclient``: it waits for a cell's reply with one poll of the shell socket that lasts the
whole cell timeout. While it waits, its stand-in for the Output widget (every ``widgets.interactive`` has
one) sends messages on that same socket, and zmq's edge-triggered wake-up can be used up by that send:
the reply sits in the queue, the kernel is idle, and nbclient sleeps until the timeout runs out, then
finds the reply and goes on as if nothing happened (nbclient issue 312; measured here: a notebook of 20
cells with 5 small widgets each stalled in 10 of 15 runs, each stall lasting the whole cell timeout).
This client polls for at most ``POLL_SECONDS`` at a time, so a missed wake-up costs at most that long,
treats a real timeout as an error, and says what it is doing: one line per cell, and a line every
``HEARTBEAT_SECONDS`` while a cell runs.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from queue import Empty
from time import monotonic
from typing import Any, Callable, Mapping

import nbformat
from nbclient import NotebookClient
from nbclient.client import timestamp
from nbclient.exceptions import CellExecutionComplete, CellTimeoutError
from nbclient.util import run_sync

POLL_SECONDS = 0.2  # longest single wait on a kernel channel before looking at the socket again
HEARTBEAT_SECONDS = 30.0  # a cell running longer than this is reported every this many seconds


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _preview(source: str, width: int = 60) -> str:
    first = next((line.strip() for line in source.splitlines() if line.strip()), "")
    return first if len(first) <= width else first[: width - 1] + "…"


class RobustClient(NotebookClient):
    """``nbclient.NotebookClient`` with short polls on the shell and IOPub channels and progress lines.

    Args (on top of NotebookClient's):
        name: The notebook's name in progress lines.
        log: Called with each progress line; None for silence.
    """

    def __init__(self, nb: nbformat.NotebookNode, *, name: str = "notebook",
                 log: Callable[[str], None] | None = _stderr, **kw: Any) -> None:
        super().__init__(nb, **kw)
        self.name, self.progress_log = name, log
        self.seconds: dict[int, float] = {}  # cell index -> wall-clock seconds, waits included
        self.cpu_seconds: float | None = None  # the kernel's CPU time (user + system) after its last cell
        self._cell_started = 0.0
        self._cell_label = ""
        self._next_heartbeat = 0.0

    def _say(self, line: str) -> None:
        if self.progress_log is not None:
            self.progress_log(f"[{self.name}] {line}")

    def _wait_seconds(self, deadline: float | None) -> float:
        if deadline is None:
            return POLL_SECONDS
        return max(0.0, min(POLL_SECONDS, deadline - monotonic()))

    def _heartbeat(self) -> None:
        now = monotonic()
        if now >= self._next_heartbeat:
            self._say(f"{self._cell_label} still running after {now - self._cell_started:.0f} s")
            self._next_heartbeat = now + HEARTBEAT_SECONDS

    async def _async_poll_for_reply(self, msg_id: str, cell: nbformat.NotebookNode, timeout: int | None,
                                    task_poll_output_msg: asyncio.Future, task_poll_kernel_alive: asyncio.Future
                                    ) -> dict[str, Any]:
        """The cell's execute_reply, then all its output (up to the IOPub status 'idle')."""
        assert self.kc is not None
        deadline = None if timeout is None else monotonic() + timeout
        try:
            while True:
                try:
                    msg = await self.kc.shell_channel.get_msg(timeout=self._wait_seconds(deadline))
                except Empty:  # a dead kernel is noticed by nbclient's own watch (task_poll_kernel_alive)
                    if deadline is not None and monotonic() >= deadline:
                        await self._async_check_alive()
                        raise CellTimeoutError.error_from_timeout_and_cell(
                            "Cell execution timed out", timeout, cell) from None
                    self._heartbeat()
                    continue
                if msg["parent_header"].get("msg_id") == msg_id:
                    break
            if self.record_timing:
                cell["metadata"]["execution"]["shell.execute_reply"] = timestamp(msg)
            try:
                await asyncio.wait_for(task_poll_output_msg, self.iopub_timeout)
            except asyncio.TimeoutError:  # the reply came, its output did not: never drop output silently
                raise CellTimeoutError.error_from_timeout_and_cell(
                    "Timeout waiting for the cell's output (IOPub)", self.iopub_timeout, cell) from None
            return msg
        finally:
            task_poll_kernel_alive.cancel()

    async def _async_poll_output_msg(self, parent_msg_id: str, cell: nbformat.NotebookNode, cell_index: int) -> None:
        assert self.kc is not None
        while True:
            try:
                msg = await self.kc.iopub_channel.get_msg(timeout=POLL_SECONDS)
            except Empty:
                continue
            if msg["parent_header"].get("msg_id") == parent_msg_id:
                try:
                    self.process_message(msg, cell, cell_index)
                except CellExecutionComplete:
                    return

    async def async_execute_cell(self, cell: nbformat.NotebookNode, cell_index: int, *args: Any, **kw: Any
                                 ) -> nbformat.NotebookNode:
        if cell.cell_type != "code" or not cell.source.strip():
            return await super().async_execute_cell(cell, cell_index, *args, **kw)
        code = [i for i, c in enumerate(self.nb.cells) if c.cell_type == "code"]
        self._cell_label = f"cell {code.index(cell_index) + 1}/{len(code)} ({_preview(cell.source)})"
        self._cell_started = monotonic()
        self._next_heartbeat = self._cell_started + HEARTBEAT_SECONDS
        try:
            return await super().async_execute_cell(cell, cell_index, *args, **kw)
        finally:
            seconds = self.seconds[cell_index] = monotonic() - self._cell_started
            self.cpu_seconds = self.kernel_cpu_seconds()
            failed = any(out.get("output_type") == "error" for out in cell.get("outputs", []))
            self._say(f"{self._cell_label} {'error' if failed else 'done'} in {seconds:.1f} s")

    execute_cell = run_sync(async_execute_cell)  # nbclient's wrapper would call its own coroutine, not this one


    def kernel_cpu_seconds(self) -> float | None:
        """CPU seconds the kernel process has used so far (a busy machine stretches them far less than the wall
        clock); None where the kernel's process cannot be seen."""
        try:
            import psutil  # ipykernel's own dependency

            times = psutil.Process(self.km.provisioner.pid).cpu_times()
        except Exception:  # a remote or already finished kernel
            return None
        return round(times.user + times.system, 1)


def make_client(notebook: nbformat.NotebookNode, *, cwd: str | Path, timeout: int = 600, name: str = "notebook",
                log: Callable[[str], None] | None = _stderr, startup_timeout: float = 60) -> RobustClient:
    """The client every tool executes with (``execute`` below; the notebook tests run it cell by cell)."""
    # iopub_timeout: after the reply, the rest of the cell's output normally follows at once; 60 s leaves
    # room for a starved CPU, and past it the cell fails instead of losing output (nbclient: 4 s, then drop)
    return RobustClient(notebook, name=name, log=log, timeout=timeout, iopub_timeout=60, kernel_name="python3",
                        startup_timeout=startup_timeout, resources={"metadata": {"path": str(cwd)}})


def execute(notebook: nbformat.NotebookNode, *, cwd: str | Path, timeout: int = 600,
            env: Mapping[str, str] | None = None, name: str = "notebook",
            log: Callable[[str], None] | None = _stderr, seconds: dict[int, float] | None = None,
            stats: dict[str, Any] | None = None) -> nbformat.NotebookNode:
    """Run every cell of ``notebook`` in a fresh python3 kernel started in ``cwd``; raises on the first error.

    Cells tagged ``raises-exception`` may fail (their error is kept as output) and execution goes on.

    Args:
        notebook: The notebook (executed in place and returned).
        cwd: The kernel's working directory (the notebook's folder).
        timeout: Seconds allowed per cell; a cell that takes longer raises ``CellTimeoutError``.
        env: Environment variables for the kernel on top of this process's environment.
        name: The notebook's name in progress lines.
        log: Receives one progress line per cell (and heartbeats); default stderr, None for silence.
        seconds: If given, filled with ``cell index -> wall-clock seconds`` of every executed code cell.
        stats: If given, gets ``cpu_seconds``: the kernel's CPU time (user + system) at its last cell, or None.

    Example:
        >>> execute(nbformat.read(path, as_version=4), cwd=path.parent, name=path.stem)
    """
    client = make_client(notebook, cwd=cwd, timeout=timeout, name=name, log=log)
    start = monotonic()
    try:
        client.execute(env={**os.environ, **(env or {})})
    except BaseException as err:
        client._say(f"stopped after {monotonic() - start:.1f} s: {type(err).__name__}")
        raise
    finally:
        if seconds is not None:
            seconds.update(client.seconds)
        if stats is not None:
            stats["cpu_seconds"] = client.cpu_seconds
    client._say(f"finished in {monotonic() - start:.1f} s")
    return notebook
