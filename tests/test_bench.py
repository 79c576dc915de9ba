"""bench/run.py: the self-check that keeps rows meaningful, and partial runs that keep the other sections."""

from __future__ import annotations

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
