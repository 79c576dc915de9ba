"""Execute notebooks in fast, offline mode and store only the outputs that nbval compares.

    python tools/refresh_notebooks.py [notebooks/NN_name.ipynb ...]   (default: all)

Cells tagged ``nbval-check-output`` (cell metadata, invisible to students) keep their text output
(stdout and text/plain results); every other output is cleared, so committed notebooks stay small and
nbval compares exactly the marked cells. Run it after changing a notebook, then commit.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nbexec import execute  # noqa: E402
from testenv import test_environment  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COMPARED = "nbval-check-output"  # the cell tag nbval reads: compare this cell's output


def is_compared(cell: nbformat.NotebookNode) -> bool:
    """Whether nbval compares this code cell's output (it carries the ``nbval-check-output`` tag)."""
    return cell.cell_type == "code" and COMPARED in cell.get("metadata", {}).get("tags", [])


def keep_text(outputs: list) -> list:
    kept = []
    for out in outputs:
        if out.output_type == "stream" and out.name == "stdout":
            kept.append(out)
        elif out.output_type in ("execute_result", "display_data") and "text/plain" in out.get("data", {}):
            if out.output_type == "display_data" and not set(out.data) <= {"text/plain"}:
                continue  # a figure or widget: its text/plain is only a repr
            out.data = {"text/plain": out.data["text/plain"]}
            out.metadata = {}
            kept.append(out)
    return kept


def refresh(path: Path) -> float:
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    execute(notebook, cwd=path.parent, timeout=600, env=test_environment())
    seconds = time.perf_counter() - start
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = keep_text(cell.outputs) if is_compared(cell) else []
        # nbval skips comparing a cell whose execution_count is None ("unrun"), so keep it where outputs are
        if not cell.outputs:
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    notebook.metadata.pop("widgets", None)
    nbformat.write(notebook, path)
    return seconds


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    for path in paths:
        print(f"{path.name}: {refresh(path):.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
