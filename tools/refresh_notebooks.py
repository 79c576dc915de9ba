"""Execute notebooks in fast, offline mode and store only the outputs that nbval compares.

    python tools/refresh_notebooks.py [notebooks/NN_name.ipynb ...]   (default: all)

Cells tagged ``nbval-check-output`` (cell metadata, invisible to students) keep their text output
(stdout and text/plain results); every other output is cleared, so committed notebooks stay small and
nbval compares exactly the marked cells. The notebook is written in its committed form
(tools/nbclean.py: the same form the git filter keeps, kernelspec as JupyterLab writes it). Run it after
changing a notebook, then commit.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nbclean import is_compared, keep_text, normalize  # noqa: E402,F401  (is_compared: used by tests/test_notebooks.py)
from nbexec import execute  # noqa: E402
from testenv import test_environment  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def refresh(path: Path) -> float:
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    execute(notebook, cwd=path.parent, timeout=600, env=test_environment(), name=path.stem)
    seconds = time.perf_counter() - start
    nbformat.write(normalize(notebook), path)  # the committed form: compared text outputs only (tools/nbclean.py)
    return seconds


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    for path in paths:
        print(f"{path.name}: {refresh(path):.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
