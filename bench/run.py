"""Run every bench/bench_*.py and write one table to bench/results.md.

    python bench/run.py [name ...]     (e.g. `python bench/run.py models attribution`)

Each module defines ``run() -> list[dict]``; a row has the keys ``benchmark``, ``ours``,
``reference``, ``ratio`` (ours / reference time; < 1 means faster than the reference) and
``note`` (e.g. whether outputs matched). Timings are medians of repeated runs on this machine:
compare ratios, not seconds, between machines.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import torch

HERE = Path(__file__).resolve().parent
COLUMNS = ("benchmark", "ours", "reference", "ratio", "note")


def median_time(fn: Callable[[], object], *, repeat: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def row(benchmark: str, ours: float, reference: float, note: str = "", reference_name: str = "") -> dict:
    """One table row from two timings in seconds."""
    ref = f"{reference * 1e3:.1f} ms" + (f" ({reference_name})" if reference_name else "")
    return {"benchmark": benchmark, "ours": f"{ours * 1e3:.1f} ms", "reference": ref,
            "ratio": f"{ours / reference:.2f}", "note": note}


def cpu_name() -> str:
    """The processor's model name where the system says it (Linux), else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(HERE))
    spec.loader.exec_module(module)
    return module


def main(names: list[str]) -> int:
    paths = sorted(HERE.glob("bench_*.py"))
    if names:
        paths = [p for p in paths if p.stem.removeprefix("bench_") in names]
    rows = []
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        rows += load(path).run()
    header = (f"{time.strftime('%Y-%m-%d')}: torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu_name()}, "
              f"{os.cpu_count()} cores; compare ratios, not milliseconds, between machines")
    lines = [f"# Benchmarks\n\n{header}\n", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in COLUMNS) + " |" for r in rows]
    table = "\n".join(lines) + "\n"
    (HERE / "results.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
