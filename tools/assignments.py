"""Build the nbgrader course for graded assignments: ``make assignments``.

    python tools/assignments.py [NOTEBOOKS] [COURSE]        (defaults: notebooks/, build/course/)

Writes ``COURSE/nbgrader_config.py`` (once: a lecturer may edit it), ``COURSE/source/<NN_topic>/<NN_topic>.ipynb``
for every notebook with exercises, with nbgrader cell metadata generated from the course's own markers (solution
cells; check cells as autograded tests with points and grade ids; every other cell read-only), and then runs
nbgrader's own ``generate_assignment`` into ``COURSE/release/`` (and the gradebook ``COURSE/gradebook.db``). The
course notebooks stay as they are. nbgrader's formgrader, ``nbgrader release_assignment``/``collect`` and the
JupyterHub exchange work on this folder unchanged; ``make grade`` grades what they collect.

Before writing anything it checks that every exercise's graded program (tools/grading/slicing.py) finds every
name it reads, so that grading cannot fail on the course's side.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import nbformat

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # tools, the course

from grading import hidden, slicing, submission  # noqa: E402
from grading.course import (COURSE, NOTEBOOKS, assignments, exercises, has_solution, tools_on_path,  # noqa: E402
                            with_nbgrader_metadata)

COURSE_ID = "cnn-course"
CONFIG = '''# nbgrader configuration of the CNN course, written once by `make assignments` (edit freely).
# Run nbgrader in this folder.
# Grade with `make grade SUBMISSIONS=submitted` (sandboxed, fast, hidden variants); `nbgrader autograde` works
# too but runs every notebook completely, demonstrations included, with no sandbox.
c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "{course_id}"
c.ClearSolutions.code_stub = {{"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}}
c.ExecutePreprocessor.timeout = 600
# JupyterHub exchange (nbgrader release_assignment / fetch_assignment / submit / collect):
# c.Exchange.root = "/srv/nbgrader/exchange"
# c.CourseDirectory.db_students = [dict(id="ada"), dict(id="bob")]
'''


def source_notebook(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The nbgrader source version of a course notebook (outputs cleared), after checking its exercises' programs."""
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "raw" and has_solution(cell.source):  # nbgrader releases raw cells as they are
            raise ValueError(f"cell {index}: a raw cell holds a solution; nbgrader would hand it out (make it markdown)")
    tasks = exercises(notebook, hidden.POINTS)
    tagged = with_nbgrader_metadata(notebook, tasks)
    tagged.metadata.pop("widgets", None)  # saved widget states show the solution's results; nbgrader would copy them
    for cell in tagged.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    for plan in submission.plan(notebook, tagged, tasks):
        if plan.status:
            raise ValueError(f"{plan.exercise.name}: the solution itself is {plan.status} ({plan.message})")
        program = "\n".join(u.source for u in plan.units)
        candidates = [(s, True) for s in slicing.statements(program)]
        _, unresolved = slicing.needed_statements(candidates)
        if unresolved:
            raise ValueError(f"{plan.exercise.name}: grading would not find {sorted(unresolved)}")
    return tagged


def build(notebooks: str | Path = NOTEBOOKS, course: str | Path = COURSE, *, quiet: bool = False) -> list[Path]:
    """Write the nbgrader course and release every assignment; returns the release notebooks."""
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    tools_on_path()
    course = Path(course).resolve()
    course.mkdir(parents=True, exist_ok=True)
    if not (course / "nbgrader_config.py").exists():
        (course / "nbgrader_config.py").write_text(CONFIG.format(course_id=COURSE_ID))
    secret = course / ".grading_secret"  # the hidden variants' seeds come from it (tools/grade.py)
    if not secret.exists():
        secret.write_text(secrets.token_hex(16) + "\n")
        secret.chmod(0o600)
    found = assignments(Path(notebooks))
    for name, path in found.items():
        target = course / "source" / name / f"{name}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(source_notebook(nbformat.read(path, as_version=4)), target)
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    config.CourseDirectory.root = str(course)
    api = NbGraderAPI(config=config)
    released = []
    for name in found:
        result = api.generate_assignment(name, force=True, create=True)
        if not result["success"]:
            details = f"{result.get('log')}\n{result.get('error')}"
            raise RuntimeError(f"nbgrader generate_assignment {name} failed:\n{details}")
        released.append(course / "release" / name / f"{name}.ipynb")
        if not quiet:
            print(f"released {released[-1]}")
    return released


def main(argv: list[str]) -> int:
    if len(argv) > 2 or any(a.startswith("-") for a in argv):
        print(__doc__)
        return 2
    build(*(Path(a) for a in argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
