"""nbval, with the cells executed by tools/nbexec.py, and every complete run kept for the site and the slides.

conftest.py puts ``NotebookFile`` in the place of nbval's collector (``replace``): nbval still collects one
test per code cell, reads its options and tags, sanitizes and compares outputs exactly as before, but each cell
runs through nbexec's client (the one every tool executes with) in a kernel with inline figures. A notebook
whose cells all passed is kept with its figures and widget states (tools/nbcache.py), so ``make site``,
``make slides`` and ``make test-ui`` show that run instead of executing the notebook a second time. A notebook
with a failed cell (an error, a timeout, outputs that differ, a skipped cell) is not kept.

For the comparison a cell's outputs are taken as nbval saw them before with a non-interactive backend:
figures (outputs that carry ``image/png``) are left out; they are never compared anyway.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path

import nbval.plugin as nbval
import pytest
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nbcache  # noqa: E402
from nbexec import make_client  # noqa: E402


def for_comparison(outputs: list) -> list:
    """The outputs nbval compares: streams merged as nbval merges them, figures left out."""
    kept = [copy.deepcopy(o) for o in outputs if "image/png" not in o.get("data", {})]
    return nbval.coalesce_streams(kept)


class NotebookFile(nbval.IPyNbFile):
    """One notebook: a kernel for its cells, and its run kept when every cell passed."""

    client = None

    def collect(self):
        for cell in super().collect():
            yield NotebookCell.from_parent(self, name=cell.name, cell_num=cell.cell_num, cell=cell.cell,
                                           options=cell.options)

    def setup(self) -> None:
        self.setup_sanitize_files()
        option = self.config.option
        self.executed = copy.deepcopy(self.nb)
        self.env = {**os.environ, "MPLBACKEND": nbcache.INLINE}
        self.parts = nbcache.key_parts(self.executed, self.env)
        self.key = nbcache.key_of(self.parts)
        self.complete = True
        self.started, self.load = time.perf_counter(), round(os.getloadavg()[0], 1)
        self.client = make_client(self.executed, cwd=self.path.parent, timeout=int(option.nbval_cell_timeout),
                                  name=self.path.stem, log=None, startup_timeout=option.nbval_kernel_startup_timeout)
        self._kernel = self.client.setup_kernel(env=self.env)
        self._kernel.__enter__()
        info = self.client.wait_for_reply(self.client.kc.kernel_info())
        if info and "language_info" in info["content"]:
            self.executed.metadata["language_info"] = info["content"]["language_info"]

    def teardown(self) -> None:
        if self.client is None:
            return
        try:
            if self.complete and self.client.code_cells_executed == len(
                    [c for c in self.executed.cells if c.cell_type == "code"]):
                self.client.set_widgets_metadata()
                code = [i for i, c in enumerate(self.executed.cells) if c.cell_type == "code"]
                run = {"mode": nbcache.describe(self.env), "load": self.load, "failed": "", "reused": False,
                       "key_parts": self.parts,
                       "seconds": {str(n): round(self.client.seconds.get(i, 0.0), 2) for n, i in enumerate(code)},
                       "cpu_seconds": self.client.cpu_seconds,
                       "wall_seconds": round(time.perf_counter() - self.started, 1)}
                nbcache.store(self.path.stem, self.executed, self.key, run, Path(self.config.option.keep_executed))
        finally:
            self._kernel.__exit__(None, None, None)
            self.client = None


class NotebookCell(nbval.IPyNbCell):
    """One code cell, executed by nbexec's client and compared by nbval."""

    def runtest(self) -> None:
        file = self.parent
        if self.options["skip"]:
            file.complete = False
            pytest.skip()
        if file.timed_out:  # the kernel may still be busy with it (nbval marks these cells xfail)
            self.raise_cell_error("A cell before this one timed out")
        if file.client is None or file.client.kc is None:
            raise RuntimeError("Kernel dead on test start")
        index = [i for i, c in enumerate(file.executed.cells) if c.cell_type == "code"][self.cell_num]
        cell = file.executed.cells[index]
        file.client.allow_errors = bool(self.options["check_exception"])
        try:
            file.client.execute_cell(cell, index, execution_count=file.client.code_cells_executed + 1)
        except CellTimeoutError:
            file.timed_out, file.complete = True, False
            self.raise_cell_error(f"Timeout of {self.config.option.nbval_cell_timeout:g} seconds exceeded "
                                  "executing cell")
        except DeadKernelError as err:
            file.complete = False
            self.raise_cell_error(f"The kernel died: {err}")
        except CellExecutionError:
            file.complete = False
            error = next((o for o in cell.outputs if o.output_type == "error"), None)
            self.raise_cell_error("Cell execution caused an exception",
                                  "\n" + "\n".join(error.traceback if error else []))
        outs = for_comparison(cell.outputs)
        self.test_outputs = outs
        unrun = self.cell.execution_count is None
        if unrun and self.cell.outputs:
            self.raise_cell_error("Unrun reference cell has outputs")
        if self.options["check"] and not unrun and not self.compare_outputs(
                outs, nbval.coalesce_streams(copy.deepcopy(self.cell.outputs))):
            file.complete = False
            self.raise_cell_error("Cell outputs differ", "\n".join(self.comparison_traceback))


def replace(collected: list, parent) -> list:
    """nbval's collectors in ``collected`` (what ``pytest_collect_file`` returned) replaced by ``NotebookFile``."""
    return [NotebookFile.from_parent(parent, path=c.path) if type(c) is nbval.IPyNbFile else c for c in collected]
