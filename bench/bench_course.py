"""Where people wait: `make test` as a whole and each notebook in fast mode, against the course's goals.

Nothing is executed here: the rows come from the last `make test` in this clone (build/test-run.json, written by the
root conftest.py at the end of every pytest run). Run `make test` on a quiet machine first, then `make bench`; the
note of each row names the run (date, commit, load average at its end). A run that was not the whole `make test`
(other paths, ``-k``, a failure) is reported as not measured rather than as a time it does not stand for.

The goals (issue 23): `make test` within 8 minutes on a quiet 2-core machine; every notebook within 60 s in fast mode
on two threads. A notebook's time in `make test` is the sum of its cells under nbval with one thread, while the other
worker keeps the second core busy: an upper bound for the same notebook with two threads to itself (a student's
laptop). A notebook above the goal by that bound is executed here once more as the goal says (fast mode, offline, two
threads, kernel start included), and its row shows that time.

    python bench/bench_course.py      (prints the rows)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "build" / "test-run.json"
TEST_GOAL_SECONDS = 480.0
NOTEBOOK_GOAL_SECONDS = 60.0


def whole_run(record: dict) -> str:
    """Why ``record`` is not a whole, passing `make test` (empty if it is one)."""
    paths = [a for a in record.get("args", []) if not a.startswith("-")]
    flags = record.get("args", [])
    if not {"tests", "notebooks"} <= {Path(p).name for p in paths}:
        return f"the last pytest run was of {' '.join(paths) or 'other paths'}, not tests/ and notebooks/"
    if any(f in flags for f in ("-k", "-m", "-x", "--lf", "--deselect")) or any(f.startswith("-k") for f in flags):
        return "the last pytest run selected a part of the tests"
    if record.get("exitstatus") != 0:
        return f"the last make test did not pass (exit status {record.get('exitstatus')})"
    return ""


def two_threads(path: Path) -> float:
    """Wall seconds of one fast-mode run of the notebook at ``path`` with two threads (tools/testenv.py's settings)."""
    sys.path.insert(0, str(ROOT / "tools"))
    from nbexec import execute
    from testenv import test_environment

    env = {**test_environment(), "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    start = time.perf_counter()
    execute(nbformat.read(path, as_version=4), cwd=path.parent, env=env, name=path.stem, log=None, timeout=1800)
    return time.perf_counter() - start


def run() -> list[dict]:
    from run import row

    if not RECORD.is_file():
        return [row("make test, wall clock", 0.0, TEST_GOAL_SECONDS,
                    "not measured: no build/test-run.json; run make test first", "goal: 8 minutes", seconds=True)]
    record = json.loads(RECORD.read_text())
    why = whole_run(record)
    if why:
        return [row("make test, wall clock", 0.0, TEST_GOAL_SECONDS, f"not measured: {why}", "goal: 8 minutes",
                    seconds=True)]
    run_of = (f"make test of {record['date']} at {record['commit'] or 'an unknown commit'}, load average "
              f"{'/'.join(f'{x:.1f}' for x in record['load'])} (1/5/15 min) at its end")
    slowest = "; ".join(f"{nodeid.split('::', 1)[0].split('/')[-1]}"
                        f"{'::' + nodeid.split('::', 1)[1][:60] if '::' in nodeid else ''} {seconds:.0f} s"
                        for nodeid, seconds in record["slowest"])
    rows = [row(f"make test, wall clock ({record['items']} items, {record['workers']} workers x "
                f"{record['threads'] or '?'} thread)", record["wall_seconds"], TEST_GOAL_SECONDS,
                f"{run_of}; {record['summed_seconds'] / 60:.1f} min of work summed over the workers; slowest items: "
                f"{slowest}", "goal: 8 minutes", seconds=True)]
    for path, seconds in record["notebooks"].items():
        if seconds <= NOTEBOOK_GOAL_SECONDS:
            rows.append(row(f"notebook {Path(path).stem}, fast mode (nbval in make test, 1 thread)", seconds,
                            NOTEBOOK_GOAL_SECONDS, f"{run_of}; the other core busy with the other worker: an upper "
                            "bound for 2 threads", "goal: 60 s", seconds=True))
            continue
        rows.append(row(f"notebook {Path(path).stem}, fast mode (2 threads, executed here)", two_threads(ROOT / path),
                        NOTEBOOK_GOAL_SECONDS, f"kernel start included; {seconds:.0f} s with 1 thread in the {run_of}",
                        "goal: 60 s", seconds=True))
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    for r in run():
        print(" | ".join(str(r[k]) for k in ("benchmark", "ours", "reference", "ratio", "note")))
