"""bench/run.py: the self-check that keeps rows meaningful, and partial runs that keep the other sections."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))
import run  # noqa: E402


def test_a_speed_up_above_its_ceiling_fails_the_self_check():
    assert run.problems([run.row("fine", 1.0, 1.9, ceiling=2.0), run.row("noise", 1.0, 2.1, ceiling=2.0)]) == []
    (problem,) = run.problems([run.row("too fast", 1.0, 3.0, ceiling=2.0)])
    assert "too fast" in problem and "3.00x exceeds its ceiling 2.00x" in problem


def test_a_zero_or_missing_ratio_fails_unless_the_note_says_why():
    assert "0.00" not in run.row("zero", 0.0, 1.0)["ratio"]
    assert len(run.problems([run.row("zero", 0.0, 1.0)])) == 1
    assert run.problems([run.row("zero", 0.0, 1.0, "cannot be measured: the reference diverges")]) == []
    assert len(run.problems([{"benchmark": "rounded", "ratio": "0.00", "note": ""}])) == 1


def test_naming_one_bench_file_keeps_the_other_sections(tmp_path, monkeypatch):
    for name in ("a", "b"):
        (tmp_path / f"bench_{name}.py").write_text("")
    monkeypatch.setattr(run, "HERE", tmp_path)
    calls = {"a": [run.row("a row", 1.0, 2.0)], "b": [run.row("b row", 1.0, 4.0)]}
    monkeypatch.setattr(run, "load", lambda path: types.SimpleNamespace(run=lambda: calls[path.stem[6:]]))
    assert run.main([]) == 0
    calls["a"] = [run.row("a again", 1.0, 3.0, ceiling=1.5)]
    assert run.main(["a"]) == 1  # the new row fails the self-check, and is written all the same
    text = (tmp_path / "results.md").read_text()
    assert "a again" in text and "a row" not in text and "b row" in text
    assert text.index("## bench_a.py") < text.index("## bench_b.py")


@pytest.mark.parametrize("path", sorted(BENCH.glob("bench_*.py")), ids=lambda p: p.stem)
def test_every_bench_file_defines_run(path):
    assert "\ndef run() -> list[dict]:" in path.read_text()


def test_course_rows_come_from_a_whole_passing_make_test_only(tmp_path, monkeypatch):
    import bench_course

    monkeypatch.setattr(bench_course, "RECORD", tmp_path / "test-run.json")
    (missing,) = bench_course.run()
    assert missing["ratio"] == "n/a" and "run make test first" in missing["note"] and run.problems([missing]) == []
    record = {"date": "2026-12-07 22:00", "commit": "abc1234", "args": ["tests", "notebooks", "-n", "2"],
              "workers": 2, "threads": "1", "exitstatus": 0, "items": 5000, "wall_seconds": 420.0,
              "summed_seconds": 800.0, "load": [2.0, 1.9, 1.5], "slowest": [["tests/test_x.py::test_y[a]", 90.0]],
              "notebooks": {"notebooks/00_intro.ipynb": 12.5, "notebooks/05_style.ipynb": 75.0}}
    bench_course.RECORD.write_text(json.dumps(record))
    again = []
    monkeypatch.setattr(bench_course, "two_threads", lambda path: again.append(path.name) or 54.0)
    whole, intro, style = bench_course.run()
    assert (whole["ours"], whole["ratio"], intro["ratio"], style["ratio"]) == ("420.0 s", "0.88", "0.21", "0.90")
    assert again == ["05_style.ipynb"], "only a notebook over the goal with 1 thread is executed again, with 2"
    assert "2 threads" in style["benchmark"] and "75 s with 1 thread" in style["note"]
    assert "test_x.py::test_y[a] 90 s" in whole["note"] and "abc1234" in whole["note"]
    for changed in ({"args": ["tests/test_x.py"]}, {"args": ["tests", "notebooks", "-k", "sweep"]}, {"exitstatus": 1}):
        bench_course.RECORD.write_text(json.dumps({**record, **changed}))
        (partial,) = bench_course.run()
        assert partial["ratio"] == "n/a" and "not measured" in partial["note"], changed


def test_only_a_run_of_tests_and_notebooks_leaves_its_record(tmp_path, monkeypatch):
    """`make test-ui` or `make unit` after `make test` must not replace the record bench_course reports."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("root_conftest", BENCH.parent / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    monkeypatch.setattr(conftest, "RECORD", tmp_path / "test-run.json")
    conftest._items["tests/test_x.py::test_y"] = 1.5

    def session(*args):
        config = types.SimpleNamespace(invocation_params=types.SimpleNamespace(args=args),
                                       getoption=lambda name, default=None: default)
        return types.SimpleNamespace(config=config)

    conftest.pytest_sessionfinish(session("tools/ui_test.py", "-v"), 0)
    assert not conftest.RECORD.exists()
    conftest.pytest_sessionfinish(session("tests", "notebooks", "-n", "2"), 0)
    assert json.loads(conftest.RECORD.read_text())["slowest"] == [["tests/test_x.py::test_y", 1.5]]
