"""Exercises: solution markers in notebooks, student versions, and check helpers.

Used by every notebook's exercise cells and by ``make exercises``.

A solution notebook marks what students must write with nbgrader's markers::

    def saliency(model, x, target):
        ### BEGIN SOLUTION
        ...the reference answer...
        ### END SOLUTION

``python -m cnn_helpers.exercises notebooks build/exercises`` (``make exercises``) writes student
versions (each block replaced by ``raise NotImplementedError()``, outputs cleared, check cells tagged
``raises-exception``) and copies the solutions; ``--work notebooks student`` (``make lab-student``)
writes a student's own working copies and never overwrites one. Check cells call :func:`check_function`, which
compares the student's function with the package's on seeded random inputs and fails with a one-line
:class:`CheckFailed` message (no traceback into this module). Because of the tag, "Run All" goes on past
an unfinished exercise (JupyterLab, nbclient and nbval honour it; graders still see the failed cell),
and later cells that need the student's function call :func:`use`, which falls back to the package's
function, with a visible note, until the check has passed::

    check_function(my_saliency, attr.saliency_map, tiny_inputs)      # the check cell
    saliency = use(my_saliency, attr.saliency_map)                   # later: yours once it passes
"""

from __future__ import annotations

import copy
import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

if TYPE_CHECKING:  # nbformat only for writing student versions: a notebook's check cells need just torch
    import nbformat

__all__ = ["BEGIN", "END", "CHECK_TAG", "CheckFailed", "strip_solutions", "make_student_notebook", "generate",
           "student_copies", "check_function", "check_close", "use", "is_check_cell"]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
CODE_PLACEHOLDER = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_PLACEHOLDER = "YOUR ANSWER HERE"
CHECK_TAG = "raises-exception"  # Jupyter, nbclient and nbval go on past a failing cell with this tag
_PASSED: dict[str, Callable[..., Any]] = {}  # function name -> the function object that passed its check


class CheckFailed(AssertionError):
    """An exercise check that did not pass. Jupyter shows only its message: the traceback would point into
    this module, not at anything the student wrote (an error raised by the student's own code keeps its
    full traceback instead)."""

    def _render_traceback_(self) -> list[str]:  # IPython's hook for how an exception is displayed
        return [f"\x1b[1;31m{type(self).__name__}\x1b[0m: {self}"]


_BLOCK = re.compile(r"^([ \t]*)" + re.escape(BEGIN) + r"[^\n]*\n.*?^[ \t]*" + re.escape(END) + r"[^\n]*$", re.M | re.S)


def strip_solutions(source: str, *, code: bool = True) -> str:
    """Replace every ``BEGIN SOLUTION`` ... ``END SOLUTION`` block by a placeholder.

    Args:
        source: A cell's source text.
        code: True for code cells (placeholder raises ``NotImplementedError``, indented like the
            marker), False for markdown (placeholder ``YOUR ANSWER HERE``).

    Returns:
        The source without solution text. Raises ``ValueError`` on unbalanced markers.
    """
    if source.count(BEGIN) != source.count(END):
        raise ValueError(f"unbalanced solution markers: {source.count(BEGIN)} x {BEGIN!r}, {source.count(END)} x {END!r}")

    def replace(match: re.Match[str]) -> str:
        indent = match.group(1)
        text = CODE_PLACEHOLDER if code else TEXT_PLACEHOLDER
        return "\n".join(indent + line for line in text.splitlines())

    stripped = _BLOCK.sub(replace, source)
    if BEGIN in stripped or END in stripped:
        raise ValueError("solution markers are nested or out of order")
    return stripped


def is_check_cell(cell: nbformat.NotebookNode) -> bool:
    """Whether a code cell checks an exercise (it calls ``check_function`` or ``check_close``)."""
    return cell.cell_type == "code" and ("check_function(" in cell.source or "check_close(" in cell.source)


def make_student_notebook(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of a solution notebook with solutions replaced, all outputs cleared and check cells tagged
    ``raises-exception`` (so that running all cells goes on past an unfinished exercise)."""
    student = copy.deepcopy(notebook)
    for cell in student.cells:
        if cell.cell_type in ("code", "markdown"):
            cell.source = strip_solutions(cell.source, code=cell.cell_type == "code")
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            if is_check_cell(cell):
                tags = [t for t in cell.metadata.get("tags", []) if not t.startswith("nbval-")]
                cell.metadata["tags"] = [*tags, CHECK_TAG]
    return student


def has_exercises(notebook: nbformat.NotebookNode) -> bool:
    return any(BEGIN in cell.source for cell in notebook.cells)


def generate(source_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write ``out_dir/student/*.ipynb`` (blanks) and ``out_dir/solution/*.ipynb`` (copies).

    Returns:
        The paths of the student notebooks written.
    """
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    if not source_dir.is_dir():
        raise FileNotFoundError(f"source_dir {str(source_dir)!r} is not a folder of notebooks")
    import nbformat

    written = []
    for path in sorted(source_dir.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        if not has_exercises(notebook):
            continue
        for kind in ("student", "solution"):
            (out_dir / kind).mkdir(parents=True, exist_ok=True)
        nbformat.write(make_student_notebook(notebook), out_dir / "student" / path.name)
        shutil.copyfile(path, out_dir / "solution" / path.name)
        written.append(out_dir / "student" / path.name)
    return written


def student_copies(source_dir: str | Path, work_dir: str | Path) -> tuple[list[Path], list[Path]]:
    """A student's own working copy of the course: the student version of every notebook (exercises blank,
    outputs cleared), written into ``work_dir`` only where no copy exists yet, so work is never overwritten.

    Returns:
        (written, kept): the copies written now, and the existing copies left alone.
    """
    source_dir, work_dir = Path(source_dir), Path(work_dir)
    if not source_dir.is_dir():
        raise FileNotFoundError(f"source_dir {str(source_dir)!r} is not a folder of notebooks")
    import nbformat

    work_dir.mkdir(parents=True, exist_ok=True)
    written, kept = [], []
    for path in sorted(source_dir.glob("*.ipynb")):
        target = work_dir / path.name
        if target.exists():
            kept.append(target)
            continue
        nbformat.write(make_student_notebook(nbformat.read(path, as_version=4)), target)
        written.append(target)
    return written, kept


def check_close(actual: Any, expected: Any, *, atol: float = 1e-5, rtol: float = 1e-4, what: str = "result") -> None:
    """Assert that two results (tensors, numbers, or tuples/lists of them) agree, with a readable message."""
    if isinstance(expected, (tuple, list)):
        if not isinstance(actual, (tuple, list)) or len(actual) != len(expected):
            raise CheckFailed(f"{what}: expected a sequence of {len(expected)} items, got {type(actual).__name__}")
        for i, (a, e) in enumerate(zip(actual, expected)):
            check_close(a, e, atol=atol, rtol=rtol, what=f"{what}[{i}]")
        return
    if isinstance(expected, torch.Tensor):
        if not isinstance(actual, torch.Tensor):
            raise CheckFailed(f"{what}: expected a torch.Tensor, got {type(actual).__name__}")
        if actual.shape != expected.shape:
            raise CheckFailed(f"{what}: expected shape {tuple(expected.shape)}, got {tuple(actual.shape)}")
        a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
        if not torch.allclose(a, e, atol=atol, rtol=rtol):
            raise CheckFailed(f"{what}: values differ, largest difference {(a - e).abs().max().item():.3g}")
        return
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        if not isinstance(actual, (int, float, torch.Tensor)) or abs(float(actual) - expected) > atol + rtol * abs(expected):
            raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")
        return
    if actual != expected:
        raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")


def check_function(
    student: Callable[..., Any],
    reference: Callable[..., Any],
    make_inputs: Callable[[torch.Generator], Sequence[Any]],
    *,
    trials: int = 3,
    seed: int = 0,
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> None:
    """Compare a student's function with the reference on seeded random inputs.

    Args:
        student: The function the student wrote.
        reference: The package's tested implementation.
        make_inputs: ``generator -> tuple of positional arguments`` (fresh for each trial).
        trials: How many random inputs. Default: 3.
        seed: Seed of the generator. Default: 0.
        atol, rtol: Tolerances for :func:`check_close`.

    Raises:
        CheckFailed: Not implemented yet, or a different result; the message says which.
        AssertionError: The student's function raised an error (its traceback follows).
    """
    generator = torch.Generator().manual_seed(seed)
    name = getattr(student, "__name__", "your function")
    _PASSED.pop(name, None)
    for trial in range(trials):
        args = make_inputs(generator)
        expected = reference(*copy.deepcopy(args))
        try:
            actual = student(*args)
        except NotImplementedError:
            raise CheckFailed(f"{name} is not implemented yet: replace `raise NotImplementedError()` with your code") from None
        except Exception as err:
            raise AssertionError(f"{name} raised {type(err).__name__}: {err}") from err
        check_close(actual, expected, atol=atol, rtol=rtol, what=f"{name} (trial {trial + 1})")
    _PASSED[name] = student
    print(f"Correct: {name} matches the reference on {trials} random inputs.")


def use(student: Callable[..., Any], reference: Callable[..., Any]) -> Callable[..., Any]:
    """The student's function if this very function passed :func:`check_function`, else ``reference``.

    Later cells of a notebook call it, so that they show the student's own result once the exercise is
    done, and still run (with a printed note) while it is not.

    Example:
        >>> saliency = use(my_saliency, attr.saliency_map)
    """
    name = getattr(student, "__name__", "your function")
    if _PASSED.get(name) is student:
        return student
    ref = f"{getattr(reference, '__module__', '')}.{getattr(reference, '__qualname__', 'reference')}".lstrip(".")
    print(f"Note: {name} has not passed its check yet, so the cells below use the course's {ref} instead.")
    return reference


def main(argv: list[str]) -> int:
    """``SOURCE OUT``: student and solution versions; ``--work SOURCE DIR``: a student's own copies."""
    if len(argv) == 3 and argv[0] == "--work":
        written, kept = student_copies(argv[1], argv[2])
        for path in written:
            print(f"wrote {path}")
        if kept:
            print(f"kept your copies (delete one to get a fresh one): {', '.join(p.name for p in kept)}")
        return 0
    if len(argv) != 2 or argv[0].startswith("-"):
        print("usage: python -m cnn_helpers.exercises SOURCE_DIR OUT_DIR | --work SOURCE_DIR WORK_DIR")
        return 2
    for written in generate(argv[0], argv[1]):
        print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
