"""Student versions from the solution notebooks (tools/exercises.py): no solution text left, Run All goes on past
every open exercise, a student's own copies are never overwritten."""

import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import exercises  # noqa: E402
from nbexec import execute  # noqa: E402

# The notebook whose student version lost 9 cells of content after its first exercise (issue 13).
RUN_ALL = "01_architectures.ipynb"
SOLVED = """def double(x):
    \"\"\"Twice x.\"\"\"
    ### BEGIN SOLUTION
    secret = 2 * x
    return secret
    ### END SOLUTION
"""


def test_strip_solutions_keeps_indentation_and_removes_the_answer():
    student = exercises.strip_solutions(SOLVED)
    assert "secret" not in student and "BEGIN SOLUTION" not in student
    assert "    # YOUR CODE HERE\n    raise NotImplementedError()" in student
    assert student.startswith('def double(x):\n    """Twice x."""')
    namespace = {}
    exec(student, namespace)
    with pytest.raises(NotImplementedError):
        namespace["double"](1)


def test_strip_solutions_in_markdown_and_unbalanced_markers():
    assert exercises.strip_solutions("Why?\n### BEGIN SOLUTION\nbecause\n### END SOLUTION", code=False) == "Why?\nYOUR ANSWER HERE"
    with pytest.raises(ValueError, match="unbalanced"):
        exercises.strip_solutions("### BEGIN SOLUTION\nx = 1\n")


def test_generated_notebooks_hold_no_solution_text(tmp_path):
    written = exercises.generate(ROOT / "notebooks", tmp_path)
    assert written, "every notebook with exercises gets a student version"
    for student_path in written:
        solution = nbformat.read(tmp_path / "solution" / student_path.name, as_version=4)
        student = nbformat.read(student_path, as_version=4)
        assert len(student.cells) == len(solution.cells)
        for s_cell, cell in zip(student.cells, solution.cells):
            assert exercises.BEGIN not in s_cell.source and exercises.END not in s_cell.source
            if cell.cell_type == "code":
                assert s_cell.outputs == []
            if exercises.BEGIN in cell.source:
                answer = cell.source.split(exercises.BEGIN)[1].split(exercises.END)[0]
                for line in answer.strip().splitlines()[1:]:
                    if line.strip() and len(line.strip()) > 12:
                        assert line.strip() not in s_cell.source


def test_student_notebook_runs_to_the_end_and_every_check_fails_on_its_blank(tmp_path):
    """Run All on a student version goes on past every open exercise; each check says so in one line."""
    solution = nbformat.read(ROOT / "notebooks" / RUN_ALL, as_version=4)
    notebook = exercises.make_student_notebook(solution)
    execute(notebook, cwd=ROOT / "notebooks", timeout=600, name=f"student {RUN_ALL}")
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code if c.source.strip()), "every cell ran, to the last"
    failed = [c for c in code if any(o.output_type == "error" for o in c.outputs)]
    checks = [c for c in code if exercises.is_check_cell(c)]
    assert failed == checks and checks, "exactly the exercise checks fail"
    assert code.index(checks[-1]) < len(code) - 1, "cells after the last check ran too (Run All goes on)"
    for cell in failed:
        error = next(o for o in cell.outputs if o.output_type == "error")
        assert error.ename == "CheckFailed" and "is not implemented yet" in error.evalue
        assert len(error.traceback) == 1, "one line, no traceback into cnn_helpers"
        assert exercises.CHECK_TAG in cell.metadata["tags"]


def test_student_copies_never_overwrite_work(tmp_path, capsys):
    source = tmp_path / "notebooks"
    source.mkdir()
    for name in ("00_a.ipynb", "01_b.ipynb"):
        cells = [nbformat.v4.new_code_cell(SOLVED), nbformat.v4.new_code_cell("check_function(double, ...)")]
        nbformat.write(nbformat.v4.new_notebook(cells=cells), source / name)
    work = tmp_path / "student"
    assert exercises.main(["--work", str(source), str(work)]) == 0
    assert sorted(p.name for p in work.iterdir()) == ["00_a.ipynb", "01_b.ipynb"]
    assert "secret" not in (work / "00_a.ipynb").read_text()
    (work / "00_a.ipynb").write_text("my work")
    written, kept = exercises.student_copies(source, work)
    assert written == [] and [p.name for p in kept] == ["00_a.ipynb", "01_b.ipynb"]
    assert (work / "00_a.ipynb").read_text() == "my work"
    (work / "01_b.ipynb").unlink()
    assert exercises.main(["--work", str(source), str(work)]) == 0
    assert "wrote" in capsys.readouterr().out and (work / "01_b.ipynb").exists()


def test_generate_needs_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="source_dir"):
        exercises.generate(tmp_path / "missing", tmp_path / "out")


# ---- issue 20, class 9: no solution leaks into a student notebook


@pytest.mark.parametrize("begin, end", [("###BEGIN SOLUTION", "###END SOLUTION"), ("# BEGIN SOLUTION", "# END SOLUTION")])
def test_markers_nbgrader_accepts_are_stripped_too(begin, end):
    """nbgrader strips every line holding 'BEGIN SOLUTION' ... 'END SOLUTION'; so must the course's student version."""
    source = SOLVED.replace(exercises.BEGIN, begin).replace(exercises.END, end)
    student = exercises.strip_solutions(source)
    assert "secret" not in student and "SOLUTION" not in student
    assert "    raise NotImplementedError()" in student


@pytest.mark.parametrize("marker", ["### begin solution", "### BEGIN  SOLUTION", "#BEGIN_SOLUTION"])
def test_a_line_that_only_looks_like_a_marker_is_refused(marker):
    source = SOLVED.replace(exercises.BEGIN, marker).replace(exercises.END, marker.replace("egin", "nd").replace("EGIN", "ND"))
    with pytest.raises(ValueError, match="looks like a solution marker"):
        exercises.strip_solutions(source)


def test_raw_cells_and_widget_states_are_stripped():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_raw_cell(f"{exercises.BEGIN}\nthe answer is 42\n{exercises.END}"),
                      nbformat.v4.new_code_cell(SOLVED)]
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"m": {"value": "42"}}}}
    student = exercises.make_student_notebook(notebook)
    assert "widgets" not in student.metadata  # the saved state held the answer
    assert not any("42" in cell.source for cell in student.cells)  # (cell ids are random hex: may hold "42")
    assert student.cells[0].source == exercises.TEXT_PLACEHOLDER
    assert exercises.has_exercises(notebook) and not exercises.has_exercises(student)
