"""tools/nbclean.py: notebooks are committed in one form (compared text outputs only, kernelspec as JupyterLab
writes it), and the git filter keeps them so: a notebook opened, run and saved leaves nothing to commit."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import nbclean  # noqa: E402

PNG = {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 640x480 with 1 Axes>"}


def as_jupyterlab_saves_it(python: str = "3.12.4") -> nbformat.NotebookNode:
    """A notebook after a session in JupyterLab: run out of order, figures, widget state, view flags."""
    compared = new_code_cell("print('shape', (1, 3))", execution_count=7, metadata={"tags": ["nbval-check-output"]},
                             outputs=[new_output("stream", name="stdout", text="shape "),
                                      new_output("stream", name="stdout", text="(1, 3)\n"),
                                      new_output("display_data", data=PNG),
                                      new_output("stream", name="stderr", text="a warning\n")])
    plain = new_code_cell("plt.plot([1, 2])", execution_count=12, metadata={"scrolled": True, "jupyter": {
        "outputs_hidden": True, "source_hidden": True}, "execution": {"iopub.status.busy": "2026-11-29"}},
        outputs=[new_output("execute_result", data=PNG, execution_count=12)])
    notebook = new_notebook(cells=[new_markdown_cell("# 09 · Topic"), new_code_cell("import os", execution_count=3),
                                   new_code_cell(""), plain, compared])
    notebook.metadata = {"kernelspec": {"display_name": "Python [conda env:course]", "language": "python",
                                        "name": "conda-env-course-py"},
                         "language_info": {"name": "python", "version": python, "pygments_lexer": "ipython3"},
                         "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}}}
    for i, cell in enumerate(notebook.cells):
        cell.id = f"cell-{i}"  # a notebook keeps its cell ids across sessions
    return notebook


def test_committed_form_keeps_only_compared_text_and_jupyterlab_kernelspec():
    notebook = nbclean.normalize(as_jupyterlab_saves_it())
    assert notebook.metadata == {"kernelspec": nbclean.KERNELSPEC,
                                 "language_info": {"name": "python", "pygments_lexer": "ipython3"}}
    _, setup, empty, plain, compared = notebook.cells
    assert (setup.outputs, setup.execution_count, empty.execution_count) == ([], None, None)
    assert plain.outputs == [] and plain.execution_count is None
    assert plain.metadata == {"jupyter": {"source_hidden": True}}, "view state dropped, authoring kept"
    assert [o.text for o in compared.outputs] == ["shape (1, 3)\n"], "stdout only, merged like JupyterLab"
    assert compared.execution_count == 3, "numbered like a fresh Run All (the empty cell does not count)"
    assert nbclean.KERNELSPEC == {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def test_clean_text_is_idempotent_and_what_nbformat_writes():
    text = nbformat.writes(as_jupyterlab_saves_it())
    once = nbclean.clean_text(text)
    assert nbclean.clean_text(once) == once and once.endswith("}\n")
    assert json.loads(once)["cells"][4]["outputs"][0]["text"] == ["shape (1, 3)\n"]


def test_committed_notebooks_are_in_their_clean_form():
    """`make normalize` (or `make refresh`) writes this form; the git filter keeps it."""
    unclean = [p.name for p in sorted((ROOT / "notebooks").glob("*.ipynb"))
               if nbclean.clean_text(p.read_text(encoding="utf-8")) != p.read_text(encoding="utf-8")]
    assert unclean == [], "run `make normalize` and commit"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=Test", "-c", "user.email=test@example.com",
                           *args], check=True, capture_output=True, text=True).stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_filter_keeps_outputs_out_and_a_jupyterlab_session_leaves_nothing_to_commit(tmp_path):
    repo = tmp_path / "repo"
    (repo / "tools").mkdir(parents=True)
    git(repo, "init", "-q")
    shutil.copyfile(ROOT / "tools" / "nbclean.py", repo / "tools" / "nbclean.py")
    shutil.copyfile(ROOT / ".gitattributes", repo / ".gitattributes")
    (repo / ".venv").symlink_to(Path(sys.executable).parent.parent)  # the filter runs .venv/bin/python
    (repo / ".git" / "info" / "exclude").write_text(".venv\n")
    assert nbclean.install(repo) and not nbclean.install(repo)
    path = repo / "lesson.ipynb"
    nbformat.write(as_jupyterlab_saves_it(), path)
    git(repo, "add", ".gitattributes", "tools", "lesson.ipynb")
    git(repo, "commit", "-q", "-m", "lesson")
    committed = git(repo, "show", "HEAD:lesson.ipynb")
    assert committed == nbclean.clean_text(path.read_text()) and "image/png" not in committed

    nbformat.write(as_jupyterlab_saves_it(python="3.13.1"), path)  # another machine opens, runs, saves
    assert git(repo, "status", "--porcelain") == "", "same size: git compares the cleaned content"
    session = as_jupyterlab_saves_it(python="3.13.10")
    session.cells[3].outputs.append(new_output("stream", name="stdout", text="more output\n"))
    nbformat.write(session, path)
    assert git(repo, "diff") == "", "nothing to see"
    git(repo, "add", "lesson.ipynb")  # git lists a file whose size changed until it is added: then nothing is staged
    assert git(repo, "status", "--porcelain") == ""
    edited = nbformat.read(path, as_version=4)
    edited.cells[1].source = "import sys"
    nbformat.write(edited, path)
    assert git(repo, "status", "--porcelain").split() == ["M", "lesson.ipynb"], "a real edit still shows"


def test_the_repository_applies_the_filter_to_notebooks():
    assert nbclean.ATTRIBUTES in (ROOT / ".gitattributes").read_text().splitlines()
    assert "nbclean.py --install" in (ROOT / "Makefile").read_text()
