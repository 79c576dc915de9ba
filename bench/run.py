"""Run every bench/bench_*.py and write one table to bench/results.md.

    python bench/run.py [name ...]     (e.g. `python bench/run.py models attribution`)

Each module defines ``run() -> list[dict]``; a row has the keys ``benchmark``, ``ours``,
``reference``, ``ratio`` (ours / reference time; < 1 means faster than the reference) and
``note`` (e.g. whether outputs matched). Timings are medians of repeated runs on this machine:
compare ratios, not seconds, between machines. Each bench file has its own section in results.md; naming
files re-runs only their sections and keeps the others (with their own dates).

The self-check: a row whose ratio is not a positive number (a time that could not be measured must say so in
its note, never print 0.00), or whose measured speed-up exceeds the ceiling it states (``ceiling=``: what
counting the work allows; above it, the bench measures something else, e.g. a baseline slower than it should
be), fails the run with the rows named. ``CEILING_SLACK`` allows timing noise.
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
CEILING_SLACK = 1.10  # a speed-up up to 10 % above its ceiling is timing noise (two single runs on a busy machine)


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


def row(benchmark: str, ours: float, reference: float, note: str = "", reference_name: str = "", *,
        ceiling: float | None = None, seconds: bool = False) -> dict:
    """One table row from two timings in seconds; ``ceiling``: the largest speed-up (reference / ours) possible;
    ``seconds``: shown in s instead of ms (minutes-long rows); an unmeasured ``ours`` (0) is shown as "n/a"."""
    def shown(value: float) -> str:
        return "n/a" if value <= 0 else f"{value:.1f} s" if seconds else f"{value * 1e3:.1f} ms"

    ref = shown(reference) + (f" ({reference_name})" if reference_name else "")
    result = {"benchmark": benchmark, "ours": shown(ours), "reference": ref,
              "ratio": f"{ours / reference:.2f}" if ours > 0 and reference > 0 else "n/a", "note": note}
    if ceiling is not None:
        result["speedup"], result["ceiling"] = reference / ours, ceiling
    return result


def problems(rows: list[dict]) -> list[str]:
    """The rows that fail the self-check, each with why."""
    found = []
    for r in rows:
        try:
            ratio = float(r["ratio"])
        except ValueError:
            ratio = None
        if ratio is None and r["ratio"] != "n/a" or ratio is not None and not ratio > 0:
            found.append(f"{r['benchmark']}: ratio {r['ratio']!r} is not a positive number")
        if ratio is None and r["ratio"] == "n/a" and "cannot" not in r["note"] and "not measured" not in r["note"]:
            found.append(f"{r['benchmark']}: no ratio, and the note does not say why")
        if "ceiling" in r and r["speedup"] > r["ceiling"] * CEILING_SLACK:
            found.append(f"{r['benchmark']}: speed-up {r['speedup']:.2f}x exceeds its ceiling {r['ceiling']:.2f}x")
    return found


def sections(text: str) -> dict[str, str]:
    """The sections of an existing results.md by bench file name (``## bench_x.py`` headings)."""
    found, name = {}, None
    for line in text.splitlines(keepends=True):
        if line.startswith("## bench_"):
            name = line[3:].strip()
            found[name] = ""
        if name is not None:
            found[name] += line
    return found


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
    results = HERE / "results.md"
    kept = sections(results.read_text()) if results.is_file() else {}
    failed = []
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        started, load_before = time.perf_counter(), os.getloadavg()[0]
        rows = load(path).run()
        header = (f"{time.strftime('%Y-%m-%d')}: torch {torch.__version__}, {torch.get_num_threads()} threads, "
                  f"{cpu_name()}, {os.cpu_count()} cores, load average {load_before:.1f} at the start of "
                  f"the run; {time.perf_counter() - started:.0f} s")
        lines = [f"## {path.name}\n\n{header}\n", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(str(r.get(c, "")) for c in COLUMNS) + " |" for r in rows]
        kept[path.name] = "\n".join(lines) + "\n\n"
        print(kept[path.name], flush=True)
        failed += problems(rows)
    known = {p.name for p in HERE.glob("bench_*.py")}
    body = "".join(kept[name] for name in sorted(kept) if name in known)
    results.write_text("# Benchmarks\n\nCompare ratios, not milliseconds, between machines; each section says where and "
                       "when it ran (`python bench/run.py NAME` re-runs one section).\n\n" + body.rstrip() + "\n")
    if failed:
        print("bench self-check failed:", *failed, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
