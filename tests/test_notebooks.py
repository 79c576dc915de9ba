"""Every notebook follows the course's conventions (STYLE.md): goals first, one seeded setup cell,
compared outputs that exist and stay small, a check after every exercise, and a place in the README."""

import json
import re
from pathlib import Path

import sys

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from refresh_notebooks import is_compared  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def notebook(request):
    return request.param, nbformat.read(request.param, as_version=4)


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_are_notebooks_and_00_comes_first():
    assert NOTEBOOKS and NOTEBOOKS[0].name == "00_getting_started.ipynb"


def test_opens_with_title_and_learning_goals(notebook):
    path, nb = notebook
    first = nb.cells[0]
    assert first.cell_type == "markdown" and re.match(rf"# {path.name[:2]}\b", first.source), "title '# NN ...' first"
    assert "learning goals" in first.source.lower()


def test_first_code_cell_is_the_seeded_setup(notebook):
    _, nb = notebook
    setup = code_cells(nb)[0].source
    assert "seed_everything(" in setup and "get_device()" in setup and "cnn_helpers" in setup


def test_compared_cells_exist_and_hold_their_output(notebook):
    _, nb = notebook
    marked = [c for c in code_cells(nb) if is_compared(c)]
    assert marked, "at least one cell's output is compared by nbval"
    for cell in marked:
        assert cell.outputs and cell.execution_count is not None, f"run `make refresh` for: {cell.source[:60]!r}"


def test_nbval_markers_are_tags_not_comments(notebook):
    _, nb = notebook
    assert not [c.source[:60] for c in code_cells(nb) if "NBVAL_" in c.source], "use the nbval-check-output cell tag"


def test_stored_outputs_are_small_text(notebook):
    path, nb = notebook
    for cell in code_cells(nb):
        for out in cell.outputs:
            assert "image/png" not in out.get("data", {}), "figures are stripped (make refresh)"
            assert out.output_type != "error"
    size = sum(len(json.dumps(c.outputs)) for c in code_cells(nb))
    assert size < 30_000, f"{path.name} stores {size} bytes of output"


def test_every_exercise_is_followed_by_a_check(notebook):
    _, nb = notebook
    cells = code_cells(nb)
    for i, cell in enumerate(cells):
        if "### BEGIN SOLUTION" in cell.source:
            following = " ".join(c.source for c in cells[i + 1:i + 3])
            assert "check_function(" in following or "check_close(" in following, cell.source[:80]


def test_readme_lecture_map_names_every_notebook():
    readme = (ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        assert f"`{path.stem}`" in readme, f"README lecture map lacks {path.stem}"
