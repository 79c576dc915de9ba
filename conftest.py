"""Test-run wide settings: headless plotting, how parallel workers share the run, notebooks executed by
tools/nbexec.py under nbval with every complete run kept for the site and the slides (tools/nbval_runner.py), and a
run-time table per notebook at the end, also written to build/test-run.json (bench/bench_course.py reports it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
TOOLS = Path(__file__).resolve().parent / "tools"
RECORD = TOOLS.parent / "build" / "test-run.json"
_started = time.time()


def pytest_addoption(parser) -> None:
    parser.addoption("--keep-executed", default=str(TOOLS.parent / "build" / "executed"),
                     help="where complete notebook runs are kept for the site and the slides (tools/nbcache.py)")


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path, parent):
    collected = yield
    if file_path.suffix != ".ipynb" or not collected:
        return collected
    sys.path.insert(0, str(TOOLS))
    import nbval_runner

    return nbval_runner.replace(collected, parent)


_durations: dict[str, float] = defaultdict(float)
_items: dict[str, float] = defaultdict(float)


def _longest_first(item) -> int:
    path = item.nodeid.split("::")[0]
    if path.endswith("test_notebooks_any_model.py"):
        return 0
    return 1 if path.endswith(".ipynb") else 2 if item.get_closest_marker("long") else 3


def pytest_configure(config):
    config.addinivalue_line("markers", "long: a unit test of tens of seconds; `make test`'s workers start its file "
                                       "early, right after the notebooks, so that it does not run last while the "
                                       "other worker idles")


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config, items):
    """On `make test`'s parallel workers (pytest-xdist ``--dist loadscope --no-loadscope-reorder``): longest first.

    Each scope goes to one worker, in the order collected here: a notebook's cells (they share one kernel), a test
    file, or a test class (tests/test_notebooks_any_model.py has one per notebook, so those long runs spread over
    both workers). The any-model runs come first, then the notebooks, then the files of unit tests marked ``long``,
    then the other unit tests, so that no long unit starts last while the other worker idles. A single process keeps
    pytest's own order.
    """
    result = yield
    if hasattr(config, "workerinput"):
        items.sort(key=_longest_first)
    return result


def pytest_runtest_logreport(report) -> None:
    path = report.nodeid.split("::")[0]
    key = path if path.endswith(".ipynb") else "unit tests"
    _durations[key] += report.duration
    _items[report.nodeid] += report.duration


def pytest_terminal_summary(terminalreporter) -> None:
    if not _durations:
        return
    terminalreporter.section("run time per notebook")
    notebooks = sorted(k for k in _durations if k.endswith(".ipynb"))
    for key in notebooks + [k for k in _durations if not k.endswith(".ipynb")]:
        terminalreporter.write_line(f"{key:<48} {_durations[key]:7.1f} s")
    if notebooks:
        terminalreporter.write_line(f"{'notebooks total':<48} {sum(_durations[k] for k in notebooks):7.1f} s")
    terminalreporter.write_line(f"{'total':<48} {sum(_durations.values()):7.1f} s")
    workers = terminalreporter.config.getoption("numprocesses", None)
    if workers:
        terminalreporter.write_line(f"(times summed over {workers} parallel workers: the wall time is the line below)")




def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=TOOLS.parent, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=TOOLS.parent,
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + ("+changes" if dirty else "")


def pytest_sessionfinish(session, exitstatus) -> None:
    """The run's wall time, slowest items and time per notebook, for bench/bench_course.py: only for a run of
    tests/ and notebooks/ (`make test`; not on xdist workers, not for a pytest run nested in a test)."""
    config = session.config
    paths = {Path(a).name for a in config.invocation_params.args if not a.startswith("-")}
    if hasattr(config, "workerinput") or not _items or not {"tests", "notebooks"} <= paths:
        return  # only `make test` (tests/ and notebooks/) is recorded: `make unit` or `make test-ui` leave it
    slowest = sorted(_items.items(), key=lambda kv: -kv[1])[:10]
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "commit": _commit(), "args": list(config.invocation_params.args),
        "workers": config.getoption("numprocesses", None) or 1, "threads": os.environ.get("OMP_NUM_THREADS", ""),
        "exitstatus": int(exitstatus), "items": len(_items), "wall_seconds": round(time.time() - _started, 1),
        "summed_seconds": round(sum(_items.values()), 1),
        "load": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else [],
        "slowest": [[nodeid, round(seconds, 1)] for nodeid, seconds in slowest],
        "notebooks": {k: round(v, 1) for k, v in sorted(_durations.items()) if k.endswith(".ipynb")},
    }
    try:
        RECORD.parent.mkdir(parents=True, exist_ok=True)
        RECORD.write_text(json.dumps(record, indent=1))
    except OSError:
        pass
