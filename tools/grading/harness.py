"""Inside the sandbox: run one exercise's program and grade its check honestly.

The notebooks' check cells call ``check_function(student_fn, reference_fn, make_inputs)``. During grading that
name is this module's :func:`graded_check`, put into the course's check module before every cell runs (so a student
who replaced it gets the real one back). It runs

* the visible check exactly as the student saw it (the course's own ``check_function``);
* hidden variants: the same check on other random inputs (seeds the student cannot know: they come from the
  lecturer's grading secret), and the lecturer's variants with other shapes and batch sizes (tools/grading/hidden.py);
* a tripwire: while the reference runs, a profiler notes where it enters the course package (``attr.saliency_map``,
  ``Block.forward``, ``style.style_loss`` ...); while the student's function runs, entering any of those is
  "uses reference" (however the function was imported or renamed);
* an integrity guard: the student's code must not replace functions of torch, the course package, this harness or the
  names the check cell relies on (``attr``, ``tiny_inputs``); doing so is "tampered".

Messages to the grader are JSON lines on the result pipe: one per unit (so that the grader can time each cell) and a
final ``result``. A job that dies or is killed sends no result; the grader then knows why.
"""

from __future__ import annotations

import builtins
import importlib
import json
import os
import time
import traceback
from typing import Any, Callable

from grading.guards import Guard, Tripwire

_ORIGINAL: dict[str, Callable] = {}  # the course's own check_function, before grading replaced it
MEMORY_WORDS = ("can't allocate memory", "cannot allocate memory", "out of memory", "DefaultCPUAllocator")


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _describe(err: BaseException) -> str:
    return _short(f"{type(err).__name__}: {err}" if str(err) else type(err).__name__)


def _memory_error(err: BaseException) -> bool:
    return isinstance(err, MemoryError) or (isinstance(err, RuntimeError) and any(w in str(err) for w in MEMORY_WORDS))


class Out:
    """JSON lines to the grader (the result pipe)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, **message: Any) -> None:
        data = (json.dumps(message, default=str) + "\n").encode()
        while data:
            data = data[os.write(self.fd, data):]


class State:
    """Everything one job knows: its spec, the notebook namespace, what the checks found."""

    def __init__(self, spec: dict, out: Out) -> None:
        self.spec, self.out = spec, out
        self.ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        self.calls: list[dict] = []
        self.not_implemented = False
        self.returned = 0  # calls of the student's function that returned, in the current attempt
        self.memory = ""
        self.check_raised: BaseException | None = None
        self.unit = 0
        self.tripwire = Tripwire(spec["package_dirs"], spec["excluded_files"])
        self.guard = Guard(spec["package"], self.ns, spec["protected"])
        self.modules = [importlib.import_module(m) for m in spec["check_modules"]]
        self.original = _ORIGINAL.setdefault(self.modules[0].__name__, self.modules[0].check_function)

    def note_error(self, err: BaseException) -> None:
        """What the student's function raised: not written yet, or out of memory."""
        if isinstance(err, NotImplementedError):
            self.not_implemented = True
        elif _memory_error(err):
            self.memory = _describe(err)

    def progress(self, label: str) -> None:
        self.out.send(event="unit", index=self.unit, label=label)

    def attempt(self, student, reference, make_inputs, *, hidden: bool = False, **kw) -> dict:
        """One run of the course's own check: passed, or the reason it did not."""
        self.not_implemented, self.returned = False, 0
        try:
            self.original(student, reference, make_inputs, timeout=None, **kw)  # the grader's own time limit applies
            return {"ok": True}
        except AssertionError as err:  # CheckFailed, or the student's function raised (the message says what)
            return {"ok": False, "message": _short(str(err)), "error": err, "not_implemented": self.not_implemented}
        except Exception as err:
            if self.returned:  # comparing what the student's function returned failed: a result of the wrong kind
                failed = AssertionError(f"your result could not be compared with the reference's: {_describe(err)}")
                return {"ok": False, "message": _short(str(failed)), "error": failed, "not_implemented": False}
            if not hidden:  # the course's own inputs or reference failed
                raise
            return {"ok": True, "skipped": _describe(err)}  # a broken variant is not the student's fault


def _variant_inputs(source: str, namespace: dict) -> Callable:
    """A variant's ``make_inputs``: the value of an expression, or the function a ``def`` defines."""
    if source.lstrip().startswith("def "):
        scope = dict(namespace)
        exec(source, scope)  # noqa: S102 - the lecturer's code
        return scope[source.split("def ", 1)[1].split("(", 1)[0].strip()]
    return eval(source, namespace)  # noqa: S307 - the lecturer's code


def graded_check(state: State) -> Callable:
    """The ``check_function`` that grading puts into the course's check module."""
    hidden = state.spec["hidden"]

    def check_function(student, reference, make_inputs, *, trials: int = 3, seed: int = 0,
                       atol: float = 1e-5, rtol: float = 1e-4, timeout: float | None = None) -> None:
        # timeout: accepted as in the course's check_function; the grader's per-cell limit applies instead
        call = {"runs": []}
        state.calls.append(call)
        number = len(state.calls) - 1
        state.guard.take()  # what the course's check cell set up; the student's cell was checked (and undone) before
        mine, theirs = state.tripwire.student(student, state), state.tripwire.reference(reference)
        kw = {"atol": atol, "rtol": rtol}
        try:  # where the reference enters the package, known before the student's function is first called
            import torch

            theirs(*make_inputs(torch.Generator().manual_seed(seed)))
        except Exception:  # noqa: BLE001 - the visible check meets the same error and reports it
            pass
        visible = state.attempt(mine, theirs, make_inputs, trials=trials, seed=seed, **kw)
        call["runs"].append({"what": "the check in your notebook", **visible})
        if visible["ok"]:
            for n, hidden_seed in enumerate(hidden["seeds"]):
                state.progress(f"hidden variant: other random inputs ({n + 1})")
                run = state.attempt(mine, theirs, make_inputs, hidden=True, trials=min(trials, 2), seed=hidden_seed,
                                    **kw)
                call["runs"].append({"what": "other random inputs", **run})
            for variant in hidden["variants"]:
                if variant.get("call", 0) != number:
                    continue
                state.progress(f"hidden variant: {variant['what']}")
                try:
                    inputs = _variant_inputs(variant["inputs"], state.ns)
                except Exception as err:  # noqa: BLE001 - a broken variant is the grader's problem, not the student's
                    call["runs"].append({"what": variant["what"], "ok": True, "skipped": _describe(err)})
                    continue
                run = state.attempt(mine, theirs, inputs, hidden=True, trials=variant.get("trials", 2),
                                    seed=hidden["seeds"][0] if hidden["seeds"] else 1, **kw)
                call["runs"].append({"what": variant["what"], **run})
        for run in call["runs"]:
            run.pop("error", None)
        if not visible["ok"]:
            state.check_raised = visible.get("error")
            raise visible["error"]
    return check_function


def _install(state: State, check: Callable) -> None:
    for module in state.modules:
        module.check_function = check


def _ipython() -> Any:
    from IPython.core.interactiveshell import InteractiveShell

    return InteractiveShell.instance()


def run(spec: dict, out_fd: int) -> None:
    """Run the units of ``spec`` and send the verdict."""
    out = Out(out_fd)
    state = State(spec, out)
    check = graded_check(state)
    _install(state, check)
    from IPython.display import display

    state.ns.update(display=display, get_ipython=_ipython)
    failure = None  # (status, message) of a unit that raised
    started = time.perf_counter()
    for index, unit in enumerate(spec["units"]):
        state.unit = index
        state.progress(unit["label"])
        _install(state, check)
        state.check_raised = None
        if unit["owner"] == "student":
            state.guard.take()
        try:
            exec(compile(unit["source"], f"<{unit['label']}>", "exec"), state.ns)  # noqa: S102 - this is the job
        except BaseException as err:  # noqa: BLE001 - every failure becomes part of the verdict
            failure = _unit_failure(state, unit, err)
        if unit["owner"] == "student":
            state.guard.check()
        if failure:
            break
    out.send(event="result", **verdict(state, failure), seconds=round(time.perf_counter() - started, 3))


def _unit_failure(state: State, unit: dict, err: BaseException) -> tuple[str, str] | None:
    if unit["role"] == "check" and state.check_raised is err:
        return None  # the visible check failed: the verdict reads it from the recorded runs
    if _memory_error(err) or state.memory:
        return "error", f"ran out of memory (the limit is {state.spec['memory_gb']:g} GB): {_describe(err)}"
    where = {"solution": "your exercise cell raised", "check": "the check cell could not run"}.get(unit["role"])
    if where is None:
        where = f"{unit['label']} raised" if unit["owner"] == "student" else f"{unit['label']} (course code) raised"
    tail = traceback.extract_tb(err.__traceback__)
    line = next((f" (line {f.lineno})" for f in reversed(tail) if f.filename == f"<{unit['label']}>"), "")
    return "error", f"{where}{line}: {_describe(err)}"


def verdict(state: State, failure: tuple[str, str] | None) -> dict:
    """The exercise's status and message from what the units and checks recorded."""
    runs = [run for call in state.calls for run in call["runs"]]
    hits = sorted(set(state.tripwire.hits))
    if state.guard.violations or state.tripwire.switched_off:
        what = sorted(set(state.guard.violations)) + (["the grader's profiler"] if state.tripwire.switched_off else [])
        return {"status": "tampered", "message": "your code replaced what the check relies on: " + ", ".join(what[:5]),
                "runs": runs}
    if hits:
        return {"status": "uses reference", "message": "your function calls the course's own " + ", ".join(hits),
                "runs": runs}
    if state.memory:
        return {"status": "error", "message": f"ran out of memory (the limit is {state.spec['memory_gb']:g} GB): "
                f"{state.memory}", "runs": runs}
    if failure:
        return {"status": failure[0], "message": failure[1], "runs": runs}
    if not runs:
        return {"status": "error", "message": "the check cell did not run a check", "runs": runs}
    failed = [run for run in runs if not run["ok"]]
    if not runs[0]["ok"] and runs[0].get("not_implemented"):
        return {"status": "not attempted", "message": runs[0]["message"], "runs": runs}
    if failed:
        return {"status": "failed", "message": failed[0]["message"], "runs": runs}
    return {"status": "passed", "message": "", "runs": runs}
