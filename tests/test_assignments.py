"""`make assignments` (tools/assignments.py): a real nbgrader course from the course's notebooks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from grading import course  # noqa: E402


def test_the_course_has_nbgrader_metadata_and_a_release_made_by_nbgrader(nbgrader_course):
    from nbgrader.nbgraderformat import MetadataValidator
    from nbgrader.utils import compute_checksum

    assert (nbgrader_course / "nbgrader_config.py").exists() and (nbgrader_course / "gradebook.db").exists()
    for assignment, path in course.assignments().items():
        original = nbformat.read(path, as_version=4)
        assert all("nbgrader" not in cell.metadata for cell in original.cells), "notebooks/ stay without metadata"
        tasks = course.exercises(original)
        source = nbformat.read(nbgrader_course / "source" / assignment / f"{assignment}.ipynb", as_version=4)
        release = nbformat.read(nbgrader_course / "release" / assignment / f"{assignment}.ipynb", as_version=4)
        MetadataValidator().validate_nb(source)
        assert all("nbgrader" in cell.metadata for cell in source.cells)
        for task in tasks:
            check = release.cells[task.check]
            assert check.metadata.nbgrader.grade and check.metadata.nbgrader.points == 1
            assert check.metadata.nbgrader.checksum == compute_checksum(check)
            assert course.CHECK_TAG in check.metadata.tags
            blank = release.cells[task.solution].source
            handed_out = course.strip_solutions(original.cells[task.solution].source)
            assert course.normalized(blank) == course.normalized(handed_out)
            assert course.BEGIN not in blank and "NotImplementedError" in blank


def test_the_gradebook_knows_every_exercise(nbgrader_course):
    from nbgrader.api import Gradebook

    course.tools_on_path()
    with Gradebook(f"sqlite:///{nbgrader_course / 'gradebook.db'}", "cnn-course") as gb:
        for assignment, path in course.assignments().items():
            tasks = course.exercises(nbformat.read(path, as_version=4))
            assert gb.find_assignment(assignment).max_score == len(tasks)
            for task in tasks:
                assert gb.find_grade_cell(task.check_id, assignment, assignment).max_score == 1


def test_nbgrader_validate_accepts_a_solved_release_notebook(nbgrader_course, tmp_path):
    """nbgrader's own validator runs the notebook completely (fast mode), so one notebook here; all: the README."""
    assignment = "00_getting_started"
    original = nbformat.read(course.NOTEBOOKS / f"{assignment}.ipynb", as_version=4)
    solved = nbformat.read(nbgrader_course / "release" / assignment / f"{assignment}.ipynb", as_version=4)
    for task in course.exercises(original):
        solved.cells[task.solution].source = original.cells[task.solution].source
    nbformat.write(solved, tmp_path / f"{assignment}.ipynb")
    nbgrader = Path(sys.executable).parent / "nbgrader"
    result = subprocess.run([str(nbgrader), "validate", str(tmp_path / f"{assignment}.ipynb")], cwd=nbgrader_course,
                            capture_output=True, text=True, timeout=600)
    assert "Success! Your notebook passes all the tests." in result.stdout, result.stdout + result.stderr[-2000:]


def test_a_solution_that_grading_could_not_run_is_refused(tmp_path):
    from assignments import source_notebook

    cells = [nbformat.v4.new_code_cell("import torch"),
             nbformat.v4.new_code_cell("def twice(x):\n    ### BEGIN SOLUTION\n    return helper(x)\n"
                                       "    ### END SOLUTION"),
             nbformat.v4.new_code_cell(f"from {course.check_module().__name__} import check_function\ncheck_function("
                                       "twice, lambda x: 2 * x, lambda g: (torch.rand(2, generator=g),))")]
    with pytest.raises(ValueError, match="helper"):
        source_notebook(nbformat.v4.new_notebook(cells=cells))


def test_no_solution_reaches_the_release_through_widget_states_or_raw_cells():
    """Issue 20 (class 9) for nbgrader's release: it copies saved widget states and never strips raw cells."""
    from assignments import source_notebook

    def notebook(*extra):
        cells = [nbformat.v4.new_code_cell("import torch"),
                 nbformat.v4.new_code_cell("def twice(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"),
                 nbformat.v4.new_code_cell(f"from {course.check_module().__name__} import check_function\n"
                                           "check_function(twice, lambda x: x + x, lambda g: (torch.rand(2, generator=g),))"),
                 *extra]
        return nbformat.v4.new_notebook(cells=cells, metadata={"widgets": {"state": {"answer": 42}}})

    assert "widgets" not in source_notebook(notebook()).metadata
    with pytest.raises(ValueError, match="raw cell holds a solution"):
        source_notebook(notebook(nbformat.v4.new_raw_cell("### BEGIN SOLUTION\n42\n### END SOLUTION")))
