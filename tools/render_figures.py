"""Execute a notebook with its outputs kept and save every figure as a PNG, to look at them.

    python tools/render_figures.py notebooks/NN_topic.ipynb [--full] [--out build/figures]

Writes ``build/figures/NN_topic/NN_topic.ipynb`` (executed, outputs kept) and one PNG per figure,
``cellCC_K.png`` (code cell number CC, K-th image of that cell). Runs in the test environment (fast,
offline) unless ``--full``; the repository's notebook is not modified.
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nbexec import execute  # noqa: E402
from testenv import ROOT, test_environment  # noqa: E402


def render(path: Path, out_dir: Path, *, full: bool = False) -> list[Path]:
    """Execute ``path`` and write the executed notebook and its PNG figures into ``out_dir / path.stem``."""
    notebook = nbformat.read(path, as_version=4)
    env = {**test_environment(), "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    if full:
        env["CNN_FAST"] = "0"
    target = out_dir / path.stem
    target.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        execute(notebook, cwd=path.parent, timeout=1800, env=env, name=path.stem)
    finally:
        nbformat.write(notebook, target / path.name)
        print(f"{path.name}: executed in {time.perf_counter() - start:.1f} s -> {target / path.name}")
    written = []
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    for number, cell in enumerate(code_cells):
        images = [o["data"]["image/png"] for o in cell.outputs if "image/png" in o.get("data", {})]
        for k, data in enumerate(images):
            png = target / f"cell{number:02d}_{k}.png"
            png.write_bytes(base64.b64decode(data))
            written.append(png)
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--full", action="store_true", help="full mode (CNN_FAST=0)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "figures")
    args = parser.parse_args(argv)
    for path in args.notebooks:
        for png in render(path.resolve(), args.out, full=args.full):
            print(f"  {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
