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

    def __init__(self, package: str, protected: Callable[[], dict[str, Any]]) -> None:
        self.package, self.protected = package, protected
        self.snapshot: dict[tuple[str, str], Any] = {}
        self.violations: list[str] = []

    def _spaces(self) -> list[tuple[str, Any, bool]]:
        import torch

        spaces = [("builtins", builtins, False), ("sys", sys, False), ("threading", threading, False),
                  ("harness", sys.modules["grading.harness"], False),
                  ("guards", sys.modules[__name__], False), ("torch", torch, False),
                  ("torch.Tensor", torch.Tensor, True), ("torch._C.TensorBase", torch._C.TensorBase, True),
                  ("torch.nn.Module", torch.nn.Module, True), ("torch.nn.functional", torch.nn.functional, False),
                  ("torch.fft", torch.fft, False), ("torch.autograd", torch.autograd, False)]
        for name, module in list(sys.modules.items()):
            if module is not None and (name == self.package or name.startswith(self.package + ".")):
                spaces.append((name, module, False))
                spaces += [(f"{name}.{k}", v, True) for k, v in vars(module).items()
                           if isinstance(v, type) and getattr(v, "__module__", "") == name]
        return spaces

    def take(self) -> None:
        snap = {}
        for label, space, _ in self._spaces():
            for key, value in list(vars(space).items()):
                if callable(value) or isinstance(value, types.ModuleType):
                    snap[label, key] = value
        for key, value in self.protected().items():
            snap["notebook", key] = value
        self.snapshot = snap

    def check(self) -> None:
        current = {label: (vars(space), is_class) for label, space, is_class in self._spaces()}
        current["notebook"] = (self.protected(), False)
        for (label, key), value in self.snapshot.items():
            space = current.get(label, ({}, False))[0]
            if space.get(key, None) is not value:
                self.violations.append(f"{label}.{key}" if label != "notebook" else f"the notebook's {key}")
        known = {label for label, _ in self.snapshot}
        for label, (space, is_class) in current.items():
            if is_class and label in known:  # a method added to a class shadows the one it inherits
                added = [k for k, v in list(space.items()) if callable(v) and (label, k) not in self.snapshot]
                self.violations += [f"{label}.{k}" for k in added]
        if self.violations:
            self.restore()

    def restore(self) -> None:
        """Put back what was replaced, so that grading the rest is not fooled as well."""
        spaces = {label: space for label, space, _ in self._spaces()}
        for (label, key), value in self.snapshot.items():
            if label in spaces:
                try:
                    setattr(spaces[label], key, value)
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
