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
import ctypes
import dataclasses
import inspect
import math
import threading
from collections.abc import Mapping
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["CheckFailed", "check_function", "check_close", "use"]

_PASSED: dict[str, Callable[..., Any]] = {}  # function name -> the function object that passed its check


class CheckFailed(AssertionError):
    """An exercise check that did not pass. Jupyter shows only its message: the traceback would point into
    this module, not at anything the student wrote (an error raised by the student's own code keeps its
    full traceback instead)."""

    def _render_traceback_(self) -> list[str]:  # IPython's hook for how an exception is displayed
        return [f"\x1b[1;31m{type(self).__name__}\x1b[0m: {self}"]


def check_close(actual: Any, expected: Any, *, atol: float = 1e-5, rtol: float = 1e-4, what: str = "result") -> None:
    """Assert that two results agree, with a readable message naming the part that differs.

    Tensors and numpy arrays must agree in type, shape, dtype and device, and in value within ``atol + rtol * |e|``
    (complex values by their distance, NaN where the reference has NaN); numbers likewise; tuples, lists, dicts and
    dataclasses part by part; anything else by ``==``.

    Raises:
        CheckFailed: The first part that differs, e.g. ``result[1]['early']: expected dtype torch.float32 ...``.
    """
    _check_tolerances(atol, rtol)
    if isinstance(expected, (tuple, list)):
        if not isinstance(actual, (tuple, list)) or len(actual) != len(expected):
            raise CheckFailed(f"{what}: expected a sequence of {len(expected)} items, got {_kind(actual)}")
        for i, (a, e) in enumerate(zip(actual, expected)):
            check_close(a, e, atol=atol, rtol=rtol, what=f"{what}[{i}]")
    elif isinstance(expected, Mapping):
        if not isinstance(actual, Mapping) or set(actual) != set(expected):
            keys = sorted(map(repr, expected))
            raise CheckFailed(f"{what}: expected a dict with the keys {', '.join(keys)}, got {_kind(actual)}")
        for key in expected:
            check_close(actual[key], expected[key], atol=atol, rtol=rtol, what=f"{what}[{key!r}]")
    elif dataclasses.is_dataclass(expected) and not isinstance(expected, type):
        if type(actual) is not type(expected):
            raise CheckFailed(f"{what}: expected a {type(expected).__name__}, got {type(actual).__name__}")
        for field in dataclasses.fields(expected):
            check_close(getattr(actual, field.name), getattr(expected, field.name), atol=atol, rtol=rtol,
                        what=f"{what}.{field.name}")
    elif isinstance(expected, (torch.Tensor, np.ndarray)):
        _check_array(actual, expected, atol=atol, rtol=rtol, what=what)
    elif isinstance(expected, (int, float, complex, np.number)) and not isinstance(expected, (bool, np.bool_)):
        _check_number(actual, expected, atol=atol, rtol=rtol, what=what)
    elif not _equal(actual, expected):
        raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")


def _kind(value: Any) -> str:
    return f"a {type(value).__name__} of {len(value)} items" if isinstance(value, (tuple, list, Mapping)) else \
        type(value).__name__


def _equal(actual: Any, expected: Any) -> bool:
    try:
        return bool(actual == expected)
    except Exception:  # noqa: BLE001 - a comparison that cannot say yes or no (arrays inside) is a no
        return False


def _check_array(actual: Any, expected: Any, *, atol: float, rtol: float, what: str) -> None:
    kind = type(expected)
    if not isinstance(actual, kind):
        raise CheckFailed(f"{what}: expected a {kind.__module__.split('.')[0]}.{kind.__name__}, got {_kind(actual)}")
    if actual.shape != expected.shape:
        raise CheckFailed(f"{what}: expected shape {tuple(expected.shape)}, got {tuple(actual.shape)}")
    if actual.dtype != expected.dtype:
        raise CheckFailed(f"{what}: expected dtype {expected.dtype}, got {actual.dtype}")
    if isinstance(expected, np.ndarray):
        actual, expected = torch.from_numpy(np.ascontiguousarray(actual)), torch.from_numpy(np.ascontiguousarray(expected))
    elif actual.device != expected.device:
        raise CheckFailed(f"{what}: expected a tensor on {expected.device}, got one on {actual.device}")
    a, e = _wide(actual), _wide(expected)
    if not torch.allclose(a, e, atol=atol, rtol=rtol, equal_nan=True):
        nan = torch.isnan(a) != torch.isnan(e)
        if nan.any():
            raise CheckFailed(f"{what}: NaN at {int(nan.sum())} places where the other result has a number")
        diff = (a - e).abs().nan_to_num(0.0)
        raise CheckFailed(f"{what}: values differ, largest difference {diff.max().item():.3g}")


def _wide(tensor: torch.Tensor) -> torch.Tensor:
    """float64 (complex128) on the CPU: what results are compared in."""
    return tensor.detach().cpu().to(torch.complex128 if tensor.is_complex() else torch.float64)


def _check_number(actual: Any, expected: Any, *, atol: float, rtol: float, what: str) -> None:
    if isinstance(actual, torch.Tensor) and actual.numel() == 1:
        actual = actual.item()
    if not isinstance(actual, (int, float, complex, np.number)) or isinstance(actual, (bool, np.bool_)):
        raise CheckFailed(f"{what}: expected a number like {expected!r}, got {_kind(actual)}")
    a, e = complex(actual), complex(expected)
    if any(map(math.isnan, (a.real, a.imag, e.real, e.imag))):
        if (math.isnan(a.real) or math.isnan(a.imag)) != (math.isnan(e.real) or math.isnan(e.imag)):
            raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")
    elif a != e and not abs(a - e) <= atol + rtol * abs(e):  # a != e: equal infinities agree
        raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")


class _TimeUp(BaseException):
    """Raised inside the student's function when its time is up (a BaseException: `except Exception` in the
    student's code does not swallow it)."""


def _interrupt(thread_id: int, exception: type[BaseException] | None) -> None:
    """Raise ``exception`` in another thread at its next Python instruction (None: take back one not yet raised)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                               ctypes.py_object(exception) if exception else None)


def _call_with_time_limit(fn: Callable[..., Any], args: Sequence[Any], seconds: float | None) -> tuple[bool, Any]:
    """``(True, fn(*args))``, or ``(False, None)`` when ``fn`` ran longer than ``seconds``.

    A watchdog thread raises :class:`_TimeUp` in this thread, and again every half second (in case the student's
    code catches it), until ``fn`` has stopped. Pure Python and calls into torch are stopped; one C call that never
    returns (``time.sleep(1e9)``) is not: interrupt the kernel then.
    """
    if seconds is None:
        return True, fn(*args)
    thread, done, lock = threading.get_ident(), threading.Event(), threading.Lock()
    fired = []

    def watch() -> None:
        wait = seconds
        while not done.wait(wait):
            with lock:
                if done.is_set():
                    return
                fired.append(True)
                _interrupt(thread, _TimeUp)
            wait = 0.5

    threading.Thread(target=watch, name="check_function time limit", daemon=True).start()
    finished, result = False, None
    try:
        result, finished = fn(*args), True
    except _TimeUp:
        pass
    finally:
        while True:  # stop the watchdog; a _TimeUp it sent just now may still arrive here
            try:
                with lock:
                    done.set()
                    if fired:
                        _interrupt(thread, None)
                break
            except _TimeUp:
                continue
    return finished, result


def _copy_arguments(args: Sequence[Any]) -> list[Any]:
    """A deep copy of the arguments for the reference; unlike ``copy.deepcopy``, parameters keep their ``.grad``."""
    copied = copy.deepcopy(list(args))
    for original, twin in zip(_modules(args), _modules(copied)):
        for p, q in zip(original.parameters(), twin.parameters()):
            q.grad = None if p.grad is None else p.grad.detach().clone()
    return copied


def _modules(value: Any) -> Iterator[nn.Module]:
    if isinstance(value, nn.Module):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _modules(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _modules(item)


def _state(value: Any, where: str) -> Iterator[tuple[str, Any]]:
    """``(what, value)`` pairs describing what a function could change in an argument it was given."""
    if isinstance(value, nn.Module):
        for name, module in value.named_modules():
            part = f"{where}'s module {name!r}" if name else where
            yield f"{part}: train/eval mode", "train" if module.training else "eval"
            hooks = (module._forward_hooks, module._forward_pre_hooks, module._backward_hooks)
            yield f"{part}: hooks", sum(map(len, hooks))
        for name, tensor in [*value.named_parameters(), *value.named_buffers()]:
            yield from _state(tensor, f"{where}'s {name!r}")
    elif isinstance(value, torch.Tensor):
        yield f"{where}: values", value.detach()
        yield f"{where}: requires_grad", value.requires_grad
        if value.is_leaf:
            yield f"{where}: .grad", None if value.grad is None else value.grad.detach()
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            yield from _state(item, f"{where}[{i}]")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _state(item, f"{where}[{key!r}]")


def _argument_names(fn: Callable[..., Any], count: int) -> list[str]:
    try:
        names = [p.name for p in inspect.signature(fn).parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        names = []
    return [f"argument `{names[i]}`" if i < len(names) else f"argument {i + 1}" for i in range(count)]


def _check_side_effects(student_args: Sequence[Any], reference_args: Sequence[Any], names: list[str], *,
                        atol: float, rtol: float, what: str) -> None:
    """The student's function must leave its arguments as the reference leaves its copies."""
    for arg, ref, name in zip(student_args, reference_args, names):
        mine_parts, their_parts = list(_state(arg, name)), list(_state(ref, name))
        if [p for p, _ in mine_parts] != [p for p, _ in their_parts]:
            raise CheckFailed(f"{what}: your function changed what {name} holds (its modules, parameters or items "
                              "differ from what the reference leaves)")
        for (part, mine), (_, theirs) in zip(mine_parts, their_parts):
            if isinstance(theirs, torch.Tensor) and isinstance(mine, torch.Tensor):
                same = mine.shape == theirs.shape and mine.dtype == theirs.dtype and \
                    torch.allclose(_wide(mine), _wide(theirs), atol=atol, rtol=rtol, equal_nan=True)
            else:
                same = type(mine) is type(theirs) and mine == theirs
            if not same:
                raise CheckFailed(f"{what}: your function changed {part}{_change(mine, theirs)}")


def _change(mine: Any, theirs: Any) -> str:
    if isinstance(mine, torch.Tensor) and isinstance(theirs, torch.Tensor):
        return " (the reference leaves it as it was given)"
    if theirs is None:
        return " (it left a gradient there; the reference leaves none)"
    if mine is None:
        return " (it removed a gradient the reference leaves)"
    return f" (the reference leaves it {theirs}, yours left it {'none' if mine is None else mine})"


MAX_TRIALS = 1000  # random inputs per check: more says nothing new and could run for hours


def _check_tolerances(atol: Any, rtol: Any) -> None:
    for arg, value in (("atol", atol), ("rtol", rtol)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
            raise ValueError(f"{arg} must be a finite number >= 0, got {value!r}")


def _check_options(student: Any, reference: Any, make_inputs: Any, trials: Any, seed: Any, timeout: Any) -> None:
    for arg, value in (("student", student), ("reference", reference), ("make_inputs", make_inputs)):
        if not callable(value):
            raise TypeError(f"{arg} must be a function, got {type(value).__name__}")
    if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
        raise ValueError(f"trials must be a positive int up to {MAX_TRIALS} (how many random inputs), got {trials!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not 0 < timeout < math.inf):
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")


def check_function(
    student: Callable[..., Any],
    reference: Callable[..., Any],
    make_inputs: Callable[[torch.Generator], Sequence[Any]],
    *,
    trials: int = 3,
    seed: int = 0,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    timeout: float | None = 60.0,
) -> None:
    """Compare a student's function with the reference on seeded random inputs.

    Besides the result (:func:`check_close`: values, shape, dtype, device), the student's function must leave its
    arguments as the reference leaves them: tensor values, ``requires_grad`` and ``.grad``; a model's parameters,
    buffers, hooks and every module's train/eval mode.

    Args:
        student: The function the student wrote.
        reference: The package's tested implementation.
        make_inputs: ``generator -> tuple of positional arguments`` (fresh for each trial).
        trials: How many random inputs (1 to 1000). Default: 3.
        seed: Seed of the generator (>= 0). Default: 0.
        atol, rtol: Tolerances for :func:`check_close`.
        timeout: Seconds one call of the student's function may take (an endless loop fails the check instead of
            hanging the cell); None: no limit. Default: 60.

    Raises:
        CheckFailed: Not implemented yet, too slow, a different result or a side effect; the message says which.
        AssertionError: The student's function raised an error (its traceback follows).
    """
    _check_options(student, reference, make_inputs, trials, seed, timeout)
    _check_tolerances(atol, rtol)
    generator = torch.Generator().manual_seed(seed)
    name = getattr(student, "__name__", "your function")
    _PASSED.pop(name, None)
    for trial in range(trials):
        args = make_inputs(generator)
        if not isinstance(args, (tuple, list)):
            raise TypeError(f"make_inputs must return a tuple of arguments, got {type(args).__name__}")
        reference_args = _copy_arguments(args)
        expected = reference(*reference_args)
        try:
            finished, actual = _call_with_time_limit(student, args, timeout)
        except NotImplementedError:
            raise CheckFailed(f"{name} is not implemented yet: replace `raise NotImplementedError()` with your code") from None
        except Exception as err:
            raise AssertionError(f"{name} raised {type(err).__name__}: {err}") from err
        what = f"{name} (trial {trial + 1})"
        if not finished:
            raise CheckFailed(f"{what} did not finish within {timeout:g} s: an endless loop? (option timeout)")
        check_close(actual, expected, atol=atol, rtol=rtol, what=what)
        _check_side_effects(args, reference_args, _argument_names(student, len(args)), atol=atol, rtol=rtol,
                            what=what)
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
