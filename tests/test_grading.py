"""Grading (tools/grade.py) on a synthetic class: eleven students, every row asserted.

In ``make test`` the class hands in two notebooks (05: an editor who deletes a check; 07: a second attack and an
editor who patches torch), which cover every status; ``GRADING_FULL_CLASS=1`` grades every exercise notebook (the
assignment check before a term: about four times the CPU time).

The class: the solution (full points), the blank (not attempted), a wrong answer, one that calls the course's
reference (the one its check cell compares with), one that hard-codes the visible check's answers, one that edits or deletes its check cells, and five
that attack in their first exercise and solve the rest: an endless loop, ``os._exit``, the network, reading another
student's file and the solution notebook (and writing to that file), and a 20 GB allocation.
"""

from __future__ import annotations

import ast
import base64
import copy
import csv
import io
import json
import os
import socket
import sys
import threading
from pathlib import Path

import nbformat
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from grade import grade  # noqa: E402
from grading import course, report, slicing, submission  # noqa: E402
from grading.hidden import VARIANTS  # noqa: E402

CLASS_NOTEBOOKS = None if os.environ.get("GRADING_FULL_CLASS") == "1" else {"05_style_transfer", "07_transfer_learning"}
TIMEOUT = 4  # seconds per cell here (the default is 60); the slowest unit took 1.4 s on a machine with load 13
SECRET = "test-secret"

WRONG = '''
def _wrong(value):
    if isinstance(value, torch.Tensor):
        return value + (1 if not value.is_floating_point() else 0.25)
    if isinstance(value, (tuple, list)):
        return type(value)(_wrong(v) for v in value)
    if isinstance(value, torch.nn.Module):
        return value.requires_grad_(True)
    return value + 1
'''

ATTACKS = {  # first exercise only; the expected status of that exercise
    "looper": ("timeout", "while True:\n        pass"),
    "exiter": ("error", "import os\n    os._exit(3)"),
    "networker": ("failed", "import socket\n    with socket.create_connection(('127.0.0.1', PORT), timeout=3) as s:\n"
                            "        s.sendall(b'leak')\n    return _solution(*args, **kwargs)"),
    "reader": ("failed", "found = []\n    for path in (OTHER, SOLUTION):\n        try:\n"
                         "            found.append(open(path).read(50))\n        except OSError:\n            pass\n"
                         "    try:\n        open(OTHER, 'a').write('overwritten')\n        found.append('wrote')\n"
                         "    except OSError:\n        pass\n"
                         "    if not found:\n        raise PermissionError('nothing to read')\n"
                         "    return _solution(*args, **kwargs)"),
    "hog": ("error", "hog = torch.ones(5 * 2**30)\n    return _solution(*args, **kwargs)"),
}
FORK_BOMB = ("failed", "import subprocess\n    started = []\n    for _ in range(300):\n        try:\n"
                       "            started.append(subprocess.Popen(['sleep', '30']))\n        except OSError:\n"
                       "            break\n    if len(started) == 300:\n        return _solution(*args, **kwargs)\n"
                       "    raise PermissionError(f'forked only {len(started)} processes')")
SECOND = {("hog", "07_transfer_learning"): FORK_BOMB}  # an attack in the second exercise too
STUDENTS = ["solution", "blank", "wrong", "reference", "hardcoded", "editor", *ATTACKS]
DELETES = {"03_attribution", "05_style_transfer"}  # where the editor deletes its second check (else patches torch)


def _frozen(value):
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (tuple, list)):
        return type(value)(_frozen(v) for v in value)
    return copy.deepcopy(value)


def _recorded_answers(notebook: nbformat.NotebookNode, task: course.Exercise) -> str:
    """The solution's outputs on the visible check's inputs, in call order (what a student could copy by hand)."""
    checks = course.check_module()
    plan = submission.plan(notebook, course.with_nbgrader_metadata(notebook, [task]), [task])[0]
    answers, namespace = [], {"__name__": "__main__"}
    original = checks.check_function
    try:
        for unit in plan.units:
            if unit.role == "check":
                solution = namespace[task.name]

                def recording(*args, **kwargs):
                    out = solution(*args, **kwargs)
                    answers.append(_frozen(out))
                    return out

                recording.__name__ = task.name
                namespace[task.name] = recording
            exec(unit.source, namespace)  # noqa: S102 - the course's own code
    finally:
        checks.check_function = original
    buffer = io.BytesIO()
    torch.save(answers, buffer)
    return base64.b64encode(buffer.getvalue()).decode()


def _fill(source: str, body: str) -> str:
    """The exercise cell with its solution block replaced by ``body`` (what a student writes into the blank)."""
    lines, out, inside = source.splitlines(), [], False
    for line in lines:
        if course.BEGIN in line:
            indent = line[:len(line) - len(line.lstrip())]
            out += [indent + b if b else b for b in body.splitlines()]
            inside = True
        elif course.END in line:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def _reference(notebook, task: course.Exercise) -> str:
    """The reference the check cell compares with, as the student could call it from their function (the notebook's
    own names, looked up when the check runs): a wrapper such as ``summary(reference_head)`` unwrapped."""
    source = notebook.cells[task.check].source
    calls = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
             and getattr(node.func, "id", "") == "check_function"]
    reference = calls[-1].args[1]
    if isinstance(reference, ast.Call) and len(reference.args) == 1 and isinstance(reference.args[0], ast.Name):
        reference = reference.args[0]
    return ast.get_source_segment(source, reference)


def _parameters(source: str, name: str) -> str:
    function = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == name)
    return ", ".join(a.arg for a in function.args.args)


def _solution_cells(student: str, notebook, tasks, *, paths: dict, assignment: str) -> dict[int, str]:
    """The solution cells of one student: course cell index -> source."""
    cells = {}
    for number, task in enumerate(tasks):
        source = notebook.cells[task.solution].source
        attack = ATTACKS.get(student) if number == 0 else SECOND.get((student, assignment)) if number == 1 else None
        if student in ("solution", "editor") or (student in ATTACKS and attack is None):
            cells[task.solution] = source
        elif student == "wrong":
            right = f"_right_{task.name}"
            cells[task.solution] = (f"{source}\n{WRONG}\n{right} = {task.name}\n\n"
                                    f"def {task.name}(*args, **kwargs):\n    return _wrong({right}(*args, **kwargs))\n")
        elif student == "reference":
            cells[task.solution] = _fill(source, f"return ({_reference(notebook, task)})({_parameters(source, task.name)})")
        elif student == "hardcoded":
            answers = _recorded_answers(notebook, task)
            cells[task.solution] = ("import base64, io\nimport torch\n_answers = iter(torch.load(io.BytesIO("
                                    f"base64.b64decode('{answers}')), weights_only=False))\n"
                                    + _fill(source, "return next(_answers)"))
        elif student in ATTACKS:
            body = attack[1].replace("PORT", str(paths["port"])).replace("OTHER", repr(paths["other"]))
            body = body.replace("SOLUTION", repr(paths["solution"]))
            cells[task.solution] = (f"import torch\n{source}\n_solution = {task.name}\n\n"
                                    f"def {task.name}(*args, **kwargs):\n    {body}\n")
    return cells


def _submission(student: str, release: nbformat.NotebookNode, notebook, tasks, *, paths: dict,
                assignment: str) -> nbformat.NotebookNode:
    """nbgrader's release notebook, worked on by one student."""
    work = copy.deepcopy(release)
    for index, source in _solution_cells(student, notebook, tasks, paths=paths, assignment=assignment).items():
        work.cells[index].source = source
    if student == "editor":  # edits the first check cell; deletes the second or fools it by patching torch
        work.cells[tasks[0].check].source = "print('Correct: all good')"
        if len(tasks) > 1 and release.metadata.get("cnn_delete"):
            work.cells.remove(work.cells[tasks[1].check])
        elif len(tasks) > 1:
            second = work.cells[tasks[1].solution]
            second.source = "import torch\ntorch.allclose = lambda *args, **kwargs: True\n" + second.source
    return work


def expected_status(student: str, number: int, assignment: str) -> str:
    fixed = {"solution": "passed", "blank": "not attempted", "wrong": "failed", "reference": "uses reference",
             "hardcoded": "failed", "editor": "tampered"}
    if student in fixed:
        return fixed[student]
    if number == 1 and (student, assignment) in SECOND:
        return SECOND[student, assignment][0]
    return ATTACKS[student][0] if number == 0 else "passed"


class _Listener:
    """A TCP server on this machine's loopback: a sandboxed job must not reach it."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.port = self.server.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


@pytest.fixture(scope="module")
def graded(tmp_path_factory, nbgrader_course):
    """The synthetic class in nbgrader's layout, made from nbgrader's release, graded once with two workers."""
    base = tmp_path_factory.mktemp("class")
    listener = _Listener()
    notebooks = {a: p for a, p in course.assignments().items() if CLASS_NOTEBOOKS is None or a in CLASS_NOTEBOOKS}
    submitted = base / "submitted"
    other = {}
    for assignment, path in notebooks.items():
        other[assignment] = submitted / "solution" / assignment / f"{assignment}.ipynb"
    for assignment, path in notebooks.items():
        notebook = nbformat.read(path, as_version=4)
        tasks = course.exercises(notebook)
        release = nbformat.read(nbgrader_course / "release" / assignment / f"{assignment}.ipynb", as_version=4)
        release.metadata["cnn_delete"] = assignment in DELETES
        paths = {"port": listener.port, "other": str(other[assignment]), "solution": str(path)}
        for student in STUDENTS:
            folder = submitted / student / assignment
            folder.mkdir(parents=True)
            work = _submission(student, release, notebook, tasks, paths=paths, assignment=assignment)
            nbformat.write(work, folder / f"{assignment}.ipynb")
    before = {a: p.read_bytes() for a, p in other.items()}
    out = base / "grades"
    rows = grade(submitted, out, course=nbgrader_course, workers=2, timeout=TIMEOUT, secret=SECRET, quiet=True)
    listener.server.close()
    return {"rows": rows, "out": out, "listener": listener, "before": before, "other": other, "notebooks": notebooks,
            "course": nbgrader_course}


@pytest.mark.long  # tens of seconds: `make test` starts this file early (conftest.py)
def test_the_synthetic_class_grades_exactly_as_expected_row_by_row(graded):
    expected = []
    for assignment, path in graded["notebooks"].items():
        tasks = course.exercises(nbformat.read(path, as_version=4))
        for student in STUDENTS:
            for number, task in enumerate(tasks):
                status = expected_status(student, number, assignment)
                expected.append([student, assignment, task.name, "1" if status == "passed" else "0", "1", status])
    with open(graded["out"] / "grades.csv", newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == list(report.COLUMNS)
    messages = {(r.student, r.assignment, r.exercise): r.message for r in graded["rows"]}
    actual = sorted(table[1:])
    for want, got in zip(sorted(expected), actual):
        assert got == want, f"{got} != {want}: {messages.get(tuple(got[:3]))}"
    assert len(actual) == len(expected)


def _job_processes() -> list[str]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if b"grading.zygote" in (proc / "cmdline").read_bytes():
                found.append(proc.name)
        except OSError:
            pass
    return found


def test_attacks_were_contained(graded):
    assert not _job_processes(), "a worker or a job outlived the grading"
    assert graded["listener"].connections == 0, "a job reached a server on the grading machine"
    for assignment, path in graded["other"].items():
        assert path.read_bytes() == graded["before"][assignment], "a job wrote into another student's submission"
    rows = {(r.student, r.assignment, r.exercise): r for r in graded["rows"]}
    first = {a: course.exercises(nbformat.read(p, as_version=4))[0].name for a, p in graded["notebooks"].items()}
    for assignment, name in first.items():
        assert "nothing to read" in rows["reader", assignment, name].message
        assert "Network is unreachable" in rows["networker", assignment, name].message or \
            "blocked" in rows["networker", assignment, name].message
        assert "memory" in rows["hog", assignment, name].message
        assert "exit code 3" in rows["exiter", assignment, name].message
        assert "uses" not in rows["solution", assignment, name].message
    if "pids" in json.loads((graded["out"] / "grading.json").read_text())["isolation"]:
        second = course.exercises(nbformat.read(graded["notebooks"]["07_transfer_learning"], as_version=4))[1].name
        assert int(rows["hog", "07_transfer_learning", second].message.split("forked only ")[1].split()[0]) \
            < 100, "a job forked more processes than its control group allows"
    for assignment, path in graded["notebooks"].items():
        tasks = course.exercises(nbformat.read(path, as_version=4))
        if len(tasks) > 1 and assignment not in DELETES:
            assert "torch.allclose" in rows["editor", assignment, tasks[1].name].message


def test_a_real_sandbox_ran(graded):
    details = (graded["out"] / "grading.json").read_text()
    if sys.platform.startswith("linux"):
        assert '"isolation": "namespaces' in details, "on Linux grading must run in namespaces"


def test_feedback_explains_without_solutions_or_hidden_code(graded):
    out, notebooks = graded["out"], graded["notebooks"]
    secrets = [v.inputs.strip().splitlines()[-1].strip() for vs in VARIANTS.values() for v in vs]
    for assignment, path in notebooks.items():
        notebook = nbformat.read(path, as_version=4)
        answers = [line.strip() for cell in notebook.cells if course.BEGIN in cell.source
                   for line in cell.source.split(course.BEGIN)[1].split(course.END)[0].splitlines()[1:]
                   if len(line.strip()) > 15]
        for student in STUDENTS:
            page = (out / "feedback" / student / f"{assignment}.html").read_text()
            assert all(a not in page for a in answers), f"{student}/{assignment}: solution text in the feedback"
            assert all(s not in page for s in secrets if len(s) > 20), f"{student}/{assignment}: hidden code"
            assert SECRET not in page
    page = (out / "feedback" / "hardcoded" / "05_style_transfer.html").read_text()
    assert "passes the check in your notebook, but not a hidden variant" in page
    assert "still raises NotImplementedError" in (out / "feedback" / "blank" / "05_style_transfer.html").read_text()
    page = (out / "feedback" / "reference" / "05_style_transfer.html").read_text()
    assert "course&#x27;s own cnn_helpers.style." in page and ".gram_matrix" in page


def test_scores_reach_nbgraders_gradebook_and_formgrader_folder(graded):
    from nbgrader.api import Gradebook

    course.tools_on_path()
    totals = {}
    for row in graded["rows"]:
        totals[row.student, row.assignment] = totals.get((row.student, row.assignment), 0) + row.points
    with Gradebook(f"sqlite:///{graded['course'] / 'gradebook.db'}", "cnn-course") as gb:
        for (student, assignment), points in totals.items():
            assert gb.find_submission(assignment, student).score == points, (student, assignment)
    autograded = graded["course"] / "autograded" / "wrong" / "05_style_transfer" / "05_style_transfer.ipynb"
    checks = [c for c in nbformat.read(autograded, as_version=4).cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert [c.outputs[0].text.split(":")[0] for c in checks] == ["failed", "failed"]


def test_every_exercise_program_runs_only_what_it_needs():
    """Slicing keeps the setup cell and the names an exercise reads, not the notebook's demonstrations."""
    for assignment, path in course.assignments().items():
        notebook = nbformat.read(path, as_version=4)
        tasks = course.exercises(notebook)
        for plan in submission.plan(notebook, course.with_nbgrader_metadata(notebook, tasks), tasks):
            text = "\n".join(u.source for u in plan.units)
            assert "load_pretrained(" not in text and "plt." not in text, (assignment, plan.exercise.name)
            assert [u.role for u in plan.units][-2:] == ["solution", "check"]


def test_slicing_follows_names_and_changes_in_place():
    cells = ["import torch\nx = torch.zeros(2)\nslow = sum(range(10**6))\nx.add_(1)\ny = 3",
             "def f():\n    return x + y"]
    candidates = [(s, False) for s in slicing.statements(cells[0])] + [(s, True) for s in slicing.statements(cells[1])]
    kept, unresolved = slicing.needed_statements(candidates, {"torch"})
    assert [candidates[k][0].source for k in kept] == ["import torch", "x = torch.zeros(2)", "x.add_(1)", "y = 3",
                                                       cells[1]]
    assert unresolved == set()


def test_flat_lms_folder_is_collected_by_name_or_by_content(tmp_path):
    notebooks = course.assignments()
    courses = {a: nbformat.read(p, as_version=4) for a, p in notebooks.items()}
    tagged = course.with_nbgrader_metadata(courses["03_attribution"], course.exercises(courses["03_attribution"]))
    nbformat.write(tagged, tmp_path / "ada_1234_assignsubmission_file_03_attribution.ipynb")
    nbformat.write(tagged, tmp_path / "bob_renamed.ipynb")  # no id in the name: found by its exercise ids
    (tmp_path / "notes.txt").write_text("not a notebook")
    found, notes = submission.collect(tmp_path, courses)
    assert [(s.student, s.assignment) for s in found] == [("ada", "03_attribution"), ("bob", "03_attribution")]
    assert notes == []


def test_without_a_sandbox_grading_still_works_and_says_so(tmp_path, capsys):
    """Where the system has no namespaces (macOS, Windows), grading runs with limits only, and says so."""
    path = course.NOTEBOOKS / "05_style_transfer.ipynb"  # two quick exercises
    notebook = nbformat.read(path, as_version=4)
    tasks = course.exercises(notebook)
    tagged = course.with_nbgrader_metadata(notebook, tasks)
    nbformat.write(tagged, tmp_path / "ada_05_style_transfer.ipynb")  # the flat layout of an LMS download
    blank = copy.deepcopy(tagged)
    blank.cells[tasks[0].solution].source = course.strip_solutions(blank.cells[tasks[0].solution].source)
    nbformat.write(blank, tmp_path / "bob_05_style_transfer.ipynb")
    rows = grade(tmp_path, tmp_path / "out", course=tmp_path / "course", workers=1, secret=SECRET, isolation="none")
    assert sorted((r.student, r.exercise, r.status) for r in rows) == [
        ("ada", tasks[0].name, "passed"), ("ada", tasks[1].name, "passed"),
        ("bob", tasks[0].name, "not attempted"), ("bob", tasks[1].name, "passed")]
    printed = capsys.readouterr().out
    assert "isolation: none" in printed and "WARNING: no sandbox" in printed


def test_the_course_check_function_keeps_what_grading_relies_on():
    """Grading calls the course's own check_function; it relies on how that reports the three kinds of failure."""
    checks = course.check_module()

    def make(g):
        return (torch.rand(3, generator=g),)

    def broken(x):
        return x[7]

    with pytest.raises(AssertionError) as raised:  # the student's function raised: an AssertionError with the cause
        checks.check_function(broken, lambda x: x, make)
    assert isinstance(raised.value.__cause__, IndexError)

    def failing_inputs(g):
        raise KeyError("course side")

    with pytest.raises(KeyError):  # the course's inputs (or reference) failed: their own error, not an assertion
        checks.check_function(lambda x: x, lambda x: x, failing_inputs)


def test_every_check_cell_gets_check_function_from_the_course_module():
    """Grading puts its check_function into that module, so a check cell must import it from there (or use the
    name an earlier cell imported from there)."""
    for assignment, path in course.assignments().items():
        notebook = nbformat.read(path, as_version=4)
        tasks = course.exercises(notebook)
        for plan in submission.plan(notebook, course.with_nbgrader_metadata(notebook, tasks), tasks):
            binding = [s for u in plan.units for s in slicing.statements(u.source) if "check_function" in s.defs]
            assert binding and all(s.source.startswith(tuple(f"from {m} import" for m in course.CHECK_MODULES))
                                   for s in binding), (assignment, plan.exercise.name)


def test_a_notebook_without_nbgrader_metadata_is_matched_by_content():
    """A notebook rebuilt by copy and paste lost its cell ids: its exercise and check cells are found by content."""
    path = course.NOTEBOOKS / "05_style_transfer.ipynb"
    notebook = nbformat.read(path, as_version=4)
    tasks = course.exercises(notebook)
    bare = copy.deepcopy(notebook)
    for cell in bare.cells:
        cell.metadata = {}
    bare.cells[tasks[1].check].source += "\nprint('my own line')"  # the second check is changed after all
    plans = submission.plan(notebook, bare, tasks)
    assert [(p.status, bool(p.units)) for p in plans] == [(None, True), ("tampered", False)]
