from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient

from cnn_helpers import exercises

ROOT = Path(__file__).resolve().parent.parent
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


def test_check_function_passes_fails_and_explains():
    def make(g):
        return (torch.randn(3, generator=g),)

    exercises.check_function(lambda x: x * 2, lambda x: x + x, make)

    def blank(x):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="not implemented yet"):
        exercises.check_function(blank, lambda x: x + x, make)
    with pytest.raises(AssertionError, match="values differ"):
        exercises.check_function(lambda x: x * 3, lambda x: x + x, make)
    with pytest.raises(AssertionError, match="shape"):
        exercises.check_function(lambda x: x[:2], lambda x: x, make)
    with pytest.raises(AssertionError, match="raised ZeroDivisionError"):
        exercises.check_function(lambda x: 1 / 0, lambda x: x, make)


def test_check_close_on_nested_results():
    exercises.check_close((torch.ones(2), 3), (torch.ones(2), 3.0))
    with pytest.raises(AssertionError, match=r"result\[1\]"):
        exercises.check_close((torch.ones(2), 3), (torch.ones(2), 4))


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


def test_student_notebook_runs_to_the_end_and_the_check_fails_on_the_blank(tmp_path):
    """The student version of notebook 00 runs past its unfinished exercise; the check cell shows why it failed."""
    exercises.generate(ROOT / "notebooks", tmp_path)
    notebook = nbformat.read(tmp_path / "student" / "00_getting_started.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    failed = [c for c in notebook.cells if c.cell_type == "code" and any(o.output_type == "error" for o in c.outputs)]
    assert len(failed) == 1 and "check_function" in failed[0].source
    assert "not implemented yet" in failed[0].outputs[-1]["evalue"]
    assert exercises.CHECK_TAG in failed[0].metadata["tags"]
    assert notebook.cells[-1].cell_type != "code" or notebook.cells[-1].execution_count is not None


def test_use_falls_back_until_the_check_passes(capsys):
    def make(g):
        return (torch.randn(3, generator=g),)

    def twice(x):
        raise NotImplementedError()

    reference = lambda x: x + x  # noqa: E731
    with pytest.raises(AssertionError):
        exercises.check_function(twice, reference, make)
    assert exercises.use(twice, reference) is reference
    assert "twice has not passed its check yet" in capsys.readouterr().out

    def twice(x):  # the student's finished version  # noqa: F811
        return 2 * x

    assert exercises.use(twice, reference) is reference  # not checked yet
    exercises.check_function(twice, reference, make)
    assert exercises.use(twice, reference) is twice


def test_generate_needs_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="source_dir"):
        exercises.generate(tmp_path / "missing", tmp_path / "out")
