"""Test-run wide settings: headless plotting, and a run-time table per notebook at the end."""

from __future__ import annotations

import os
from collections import defaultdict

os.environ.setdefault("MPLBACKEND", "Agg")

_durations: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report) -> None:
    path = report.nodeid.split("::")[0]
    key = path if path.endswith(".ipynb") else "unit tests"
    _durations[key] += report.duration


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
