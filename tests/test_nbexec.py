"""tools/nbexec.py, the one notebook executor: never waits out a cell timeout on widget output, says what it
is doing, passes the environment to the kernel, goes on past cells tagged raises-exception, and treats a
real timeout as an error."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from nbclient.exceptions import CellTimeoutError
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import nbexec  # noqa: E402

# nbclient's own client stalled in 10 of 15 runs of a notebook of 20 cells of 5 widgets, each stall
# lasting exactly the cell timeout; a cell here takes well under a second.
WIDGET_CELLS, PER_CELL, TIMEOUT = 40, 5, 30


def notebook(*cells):
    return new_notebook(cells=list(cells), metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                      "language": "python"}})


def test_widgets_never_stall_and_progress_is_visible(tmp_path, monkeypatch):
    monkeypatch.setattr(nbexec, "HEARTBEAT_SECONDS", 0.5)
    setup = new_code_cell("import os, time\nimport ipywidgets as widgets\nfrom IPython.display import display\n"
                          "def show(x=0):\n    print('value', x)\nprint(os.environ['NBEXEC_PROBE'])")
    failing = new_code_cell("raise ValueError('expected')", metadata={"tags": ["raises-exception"]})
    slow = new_code_cell("time.sleep(2)\nprint('after the wait')")
    widget_cells = [new_code_cell(f"for i in range({PER_CELL}):\n    display(widgets.interactive(show, "
                                  f"x=widgets.IntSlider(value={k * PER_CELL} + i, max=1000)))")
                    for k in range(WIDGET_CELLS)]
    nb = notebook(setup, failing, slow, *widget_cells)
    lines, seconds = [], {}
    nbexec.execute(nb, cwd=tmp_path, timeout=TIMEOUT, env={"NBEXEC_PROBE": "from the caller"}, name="probe",
                   log=lines.append, seconds=seconds)

    assert nb.cells[0].outputs[0].text == "from the caller\n" and "NBEXEC_PROBE" not in os.environ
    assert nb.cells[1].outputs[0].ename == "ValueError" and nb.cells[2].outputs[0].text == "after the wait\n"
    widget_seconds = [seconds[i] for i in range(3, len(nb.cells))]
    assert max(widget_seconds) < TIMEOUT / 2, f"a cell waited out the timeout: {widget_seconds}"
    state = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    printed = [m["state"]["outputs"] for m in state.values() if m["model_name"] == "OutputModel"]
    assert sorted(out[0]["text"] for out in printed) == sorted(f"value {v}\n" for v in range(WIDGET_CELLS * PER_CELL))
    total = len(nb.cells)
    assert f"[probe] cell 2/{total} (raise ValueError('expected')) error in" in "\n".join(lines)
    assert any(line.startswith(f"[probe] cell 3/{total} (time.sleep(2)) still running after") for line in lines)
    assert sum(" done in " in line for line in lines) == total - 1 and lines[-1].startswith("[probe] finished in")


def test_a_cell_over_its_timeout_is_an_error(tmp_path):
    lines = []
    start = time.monotonic()
    with pytest.raises(CellTimeoutError, match="timed out"):
        nbexec.execute(notebook(new_code_cell("import time\ntime.sleep(120)")), cwd=tmp_path, timeout=3,
                       log=lines.append)
    assert time.monotonic() - start < 100  # not the 120 s the cell asked for
    assert lines[-1].startswith("[notebook] stopped after") and "CellTimeoutError" in lines[-1]
