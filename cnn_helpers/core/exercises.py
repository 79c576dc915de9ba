"""Exercise checks inside the notebooks: is the student's function right, and which one do later cells use?

Used by every notebook's exercise cells. Check cells call :func:`check_function`, which compares the
student's function with the package's on seeded random inputs and fails with a one-line
:class:`CheckFailed` message (no traceback into this module). Later cells that need the student's function
call :func:`use`, which falls back to the package's function, with a visible note, until the check has
passed::

    check_function(my_saliency, attr.saliency_map, tiny_inputs)      # the check cell
    saliency = use(my_saliency, attr.saliency_map)                   # later: yours once it passes

Student versions of the notebooks (solutions blanked, check cells tagged so that "Run All" goes on past an
unfinished exercise) are written by the course's build tools, ``tools/exercises.py`` (``make exercises``,
``make lab-student``).
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Sequence

import torch

__all__ = ["CheckFailed", "check_function", "check_close", "use"]

_PASSED: dict[str, Callable[..., Any]] = {}  # function name -> the function object that passed its check


class CheckFailed(AssertionError):
    """An exercise check that did not pass. Jupyter shows only its message: the traceback would point into
    this module, not at anything the student wrote (an error raised by the student's own code keeps its
    full traceback instead)."""

    def _render_traceback_(self) -> list[str]:  # IPython's hook for how an exception is displayed
        return [f"\x1b[1;31m{type(self).__name__}\x1b[0m: {self}"]


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
