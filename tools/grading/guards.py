"""What keeps a graded check honest inside the sandbox: the tripwire on the reference and the integrity guard.

:class:`Tripwire`: while the check's reference runs, a profiler notes the functions of the course package it enters
from outside the package (``attribution.saliency_map``, ``Block.forward``, ``style.style_loss`` — not what those
call in turn, which a student may well use); while the student's function runs, entering any of them is "uses
reference", however the function was imported, renamed or wrapped. A profiler switched off meanwhile is noticed.

:class:`Guard`: a snapshot of the functions of torch, the course package, this harness and the names the check cell
reads from the notebook, compared after each piece of student code. A replaced one (``torch.allclose = ...``,
``attr.saliency_map = my_saliency``) is "tampered", and is put back so that the rest of the grading is not fooled.
Used by tools/grading/harness.py.
"""

from __future__ import annotations

import builtins
import functools
import sys
import threading
import types
from typing import Any, Callable


class Guard:
    """Which functions the student's code may not replace: a snapshot, compared after each piece of student code."""

    HOOKS = ("setprofile", "getprofile", "settrace", "gettrace")  # all that is watched of sys and threading

    def __init__(self, package: str, namespace: dict[str, Any], protected: list[str]) -> None:
        self.package, self.namespace, self.protected = package, namespace, protected
        self.snapshot: dict[tuple[str, str], Any] = {}
        self.violations: list[str] = []

    def _spaces(self) -> dict[str, tuple[Any, bool]]:
        """label -> (module or class, is a class)."""
        import torch

        spaces = {"builtins": (builtins, False), "harness": (sys.modules["grading.harness"], False),
                  "guards": (sys.modules[__name__], False), "torch": (torch, False),
                  "torch.Tensor": (torch.Tensor, True), "torch._C.TensorBase": (torch._C.TensorBase, True),
                  "torch.nn.Module": (torch.nn.Module, True), "torch.nn.functional": (torch.nn.functional, False),
                  "torch.fft": (torch.fft, False), "torch.autograd": (torch.autograd, False)}
        for name, module in list(sys.modules.items()):
            if module is not None and (name == self.package or name.startswith(self.package + ".")):
                spaces[name] = (module, False)
                spaces |= {f"{name}.{k}": (v, True) for k, v in vars(module).items()
                           if isinstance(v, type) and getattr(v, "__module__", "") == name}
        return spaces

    def _current(self) -> dict[str, dict[str, Any]]:
        current = {label: dict(vars(space)) for label, (space, _) in self._spaces().items()}
        current |= {label: {k: getattr(module, k, None) for k in self.HOOKS}
                    for label, module in (("sys", sys), ("threading", threading))}
        current["notebook"] = {k: self.namespace[k] for k in self.protected if k in self.namespace}
        return current

    def take(self) -> None:
        self.snapshot = {(label, key): value for label, space in self._current().items()
                         for key, value in space.items()
                         if label == "notebook" or callable(value) or isinstance(value, types.ModuleType)}

    def check(self) -> None:
        current, classes = self._current(), {k for k, (_, is_class) in self._spaces().items() if is_class}
        known = {label for label, _ in self.snapshot}
        changed = [(label, key) for (label, key), value in self.snapshot.items()
                   if current.get(label, {}).get(key, None) is not value]
        added = [(label, key) for label in classes & known for key, value in current[label].items()
                 if callable(value) and (label, key) not in self.snapshot]  # shadows the method it inherits
        for label, key in changed + added:
            self.violations.append(f"the notebook's {key}" if label == "notebook" else f"{label}.{key}")
        if changed or added:
            self.restore(added)

    def restore(self, added: list[tuple[str, str]]) -> None:
        """Put back what was replaced and remove what was added, so that the rest of the grading is not fooled."""
        spaces = {label: space for label, (space, _) in self._spaces().items()} | {"sys": sys, "threading": threading}
        for (label, key), value in self.snapshot.items():
            try:
                if label == "notebook":
                    self.namespace[key] = value
                elif label in spaces:
                    setattr(spaces[label], key, value)
            except (AttributeError, TypeError):
                pass
        for label, key in added:
            try:
                delattr(spaces[label], key)
            except (AttributeError, TypeError):
                pass


class Tripwire:
    """Notes where the reference enters the course package; flags the student's function entering there too."""

    def __init__(self, package_dirs: list[str], excluded: list[str]) -> None:
        self.dirs = tuple(d.rstrip("/") + "/" for d in package_dirs)
        self.excluded = set(excluded)
        self.entries: dict[types.CodeType, str] = {}
        self.hits: list[str] = []
        self.switched_off = False
        self._ours: dict[types.CodeType, bool] = {}

    def _is_package(self, code: types.CodeType) -> bool:
        known = self._ours.get(code)
        if known is None:
            known = self._ours[code] = code.co_filename.startswith(self.dirs) and code.co_filename not in self.excluded
        return known

    def reference(self, function: Callable) -> Callable:
        @functools.wraps(function)
        def watched(*args, **kwargs):
            depth = 0

            def profile(frame, event, arg):
                nonlocal depth
                if event == "call" and self._is_package(frame.f_code):
                    if depth == 0:
                        module = frame.f_globals.get("__name__", "")
                        self.entries.setdefault(frame.f_code, f"{module}.{frame.f_code.co_qualname}")
                    depth += 1
                elif event == "return" and self._is_package(frame.f_code):
                    depth -= 1

            sys.setprofile(profile)
            try:
                return function(*args, **kwargs)
            finally:
                sys.setprofile(None)
        return watched

    def student(self, function: Callable, state: Any) -> Callable:
        """``function`` watched: entries it hits are noted, and so is what it raised (``state.note_error``)."""
        @functools.wraps(function)
        def watched(*args, **kwargs):
            def profile(frame, event, arg):
                if event == "call" and frame.f_code in self.entries:
                    self.hits.append(self.entries[frame.f_code])

            sys.setprofile(profile)
            threading.setprofile(profile)
            try:
                result = function(*args, **kwargs)
                state.returned += 1
                return result
            except BaseException as err:
                state.note_error(err)
                raise
            finally:
                if sys.getprofile() is not profile:
                    self.switched_off = True
                sys.setprofile(None)
                threading.setprofile(None)
                state.guard.check()
        return watched
