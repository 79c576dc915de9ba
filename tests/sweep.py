"""The machinery of the bad-input sweep (tests/test_sweep.py): argument kinds, their corruptions, one case runner.

An :class:`Entry` is one public function with a valid example call. Each of its arguments has a *kind*
(``"images"``, ``"count"``, ``"bool"`` ...); :data:`KINDS` lists, per kind, the bad values a careless
student or a hostile caller would pass, each with what must happen:

* ``"refuse"``: a TypeError/ValueError (or FileNotFoundError) whose message names the argument;
* ``"same"``: refuse as above, or convert correctly: the result equals the valid call's result;
* ``"any"``: refuse as above, or return any result that passes the general checks.

General checks for every case: it ends within ``TIME_LIMIT`` seconds and allocates at most
``MEMORY_LIMIT`` more bytes (Linux: an allocation beyond that fails loudly instead of swapping);
a result holds no NaN/inf and no tensor attached to a graph; the model (every module's mode,
``requires_grad``, ``.grad``, parameters, buffers, hooks), the tensor arguments and the grad mode are
left as found, also when an error is raised. Two more pseudo-arguments run the valid call inside
``torch.no_grad()`` and ``torch.inference_mode()`` (``"same"``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import signal
import sys
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import helpers
import numpy as np
import torch
from torch import nn

TIME_LIMIT = 10.0  # seconds per case; a tiny valid call takes milliseconds
MEMORY_LIMIT = 2 << 30  # bytes a case may allocate beyond what the process holds
CLEAR_ERRORS = (TypeError, ValueError, FileNotFoundError)
VOLATILE = {"seconds"}  # result keys not compared between calls


class Fresh:
    """A factory for a valid argument, called anew for every case (models and tensors must not be shared)."""

    def __init__(self, make: Callable[[], Any]):
        self.make = make


@dataclass(frozen=True)
class Bad:
    """One corruption of an argument: ``make(valid value) -> bad value`` and what must happen."""

    label: str
    make: Callable[[Any], Any]
    expect: str = "refuse"
    atol: float = 0.0  # for "same": how far a correct conversion may be off (uint8 rounds to 1/255)


def _const(value: Any) -> Callable[[Any], Any]:
    return lambda _valid: value


def _pixel(value: float) -> Callable[[torch.Tensor], torch.Tensor]:
    def make(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x.view(-1)[0] = value
        return x
    return make


def _refuse(*pairs: tuple[str, Any]) -> list[Bad]:
    return [Bad(label, _const(value)) for label, value in pairs]


_NOT_INT = (("zero", 0), ("negative", -1), ("float", 2.0), ("bool", True), ("string", "3"), ("nan", float("nan")))
_NOT_FLOAT = (("nan", float("nan")), ("inf", float("inf")), ("string", "0.1"), ("bool", True), ("none", None),
              ("list", [0.1]))

# kind -> corruptions. Extend a kind here when a new class of bad input turns up; add a kind for a new argument type.
KINDS: dict[str, list[Bad]] = {
    "model": _refuse(("function", lambda x: x), ("string", "resnet18"), ("class", nn.Conv2d)),
    "images": [
        Bad("nan pixel", _pixel(float("nan"))), Bad("inf pixel", _pixel(float("inf"))),
        Bad("uint8 range", lambda x: x * 255), Bad("normalized", lambda x: (x - 0.45) / 0.225),
        Bad("uint8 dtype", lambda x: (x * 255).round().to(torch.uint8), "same", 0.5 / 255),
        Bad("float64", lambda x: x.double(), "same"), Bad("float16", lambda x: x.half(), "any"),
        Bad("bfloat16", lambda x: x.bfloat16(), "any"), Bad("odd size", lambda x: x[..., :-1, :-2], "any"),
        Bad("meta", lambda x: x.to("meta")), Bad("3-d", lambda x: x[0]), Bad("grayscale", lambda x: x[:, :1]),
        Bad("rgba", lambda x: torch.cat([x, x[:, :1]], 1)), Bad("empty batch", lambda x: x[:0]),
        Bad("numpy", lambda x: x.numpy()), Bad("list", lambda x: x.tolist()), Bad("none", _const(None)),
        Bad("requires grad", lambda x: x.clone().requires_grad_(True), "same"),
        Bad("channels last", lambda x: x.contiguous(memory_format=torch.channels_last), "same"),
    ],
    "target": [
        *_refuse(("out of range", 5), ("negative", -1), ("float", 1.0), ("bool", True), ("string", "1"), ("none", None),
                 ("float tensor", torch.tensor([1.0, 2.0])), ("too long", torch.tensor([1, 2, 3])),
                 ("out of range tensor", torch.tensor([1, 5]))),
        Bad("0-d tensor", _const(torch.tensor(1)), "any"), Bad("numpy int", _const(np.int64(1)), "any"),
    ],
    "labels": [
        Bad("float", lambda y: y.float()), Bad("too short", lambda y: y[:-1]), Bad("out of range", lambda y: y + 3),
        Bad("negative", lambda y: y - 3), Bad("list", lambda y: y.tolist()), Bad("int32", lambda y: y.int(), "same"),
        Bad("empty", lambda y: y[:0]), Bad("2-d", lambda y: y[:, None]),
    ],
    "data": [  # training images: any float values, but finite, (N, C, H, W) and in the model's dtype
        Bad("nan", _pixel(float("nan"))), Bad("inf", _pixel(float("inf"))), Bad("3-d", lambda x: x[0]),
        Bad("empty", lambda x: x[:0]), Bad("integer", lambda x: x.long()), Bad("float64", lambda x: x.double(), "same"),
        Bad("meta", lambda x: x.to("meta")), Bad("numpy", lambda x: x.numpy()),
    ],
    "count": [*_refuse(*_NOT_INT, ("huge", 10**12))],  # a positive int with a natural bound (k, steps, samples)
    "batch": [*_refuse(*_NOT_INT), Bad("huge", _const(10**12), "same")],  # images per pass: larger than N is fine
    "size": [*_refuse(*_NOT_INT, ("huge", 10**6))],  # a side length in pixels
    "float+": [*_refuse(*_NOT_FLOAT, ("zero", 0.0), ("negative", -1.0))],
    "float0": [*_refuse(*_NOT_FLOAT, ("negative", -1.0)), Bad("zero", _const(0.0), "any")],
    "bool": _refuse(("int", 1), ("string", "yes"), ("none", None)),
    "generator": _refuse(("seed", 42), ("string", "0"), ("numpy", np.random.default_rng(0))),
    "baseline": [
        *_refuse(("nan", float("nan")), ("inf", float("inf")), ("string", "black"), ("bool", True),
                 ("wrong shape", torch.zeros(5)), ("nan tensor", torch.full((3, 1, 1), float("nan")))),
        Bad("per channel", _const(torch.zeros(3, 1, 1)), "any"),
    ],
    "pair": [*_refuse(("zero", 0), ("negative", -2), ("one of two", (2,)), ("zero in pair", (2, 0)), ("string", "4"),
                      ("float", 2.5), ("bool", True), ("huge", 10**6)),
             Bad("list", lambda v: [*v] if isinstance(v, tuple) else [v, v], "same")],
    "choice": [*_refuse(("unknown", "nope"), ("int", 3), ("none", None)), Bad("upper case", lambda v: v.upper())],
    "int+": [*_refuse(*_NOT_INT), Bad("huge", _const(10**12), "any")],  # a positive int without a natural bound
    "int0": [*_refuse(*_NOT_INT[1:]), Bad("zero", _const(0), "any")],  # a non-negative int
    "layer": _refuse(("unknown", "nope"), ("int", 3), ("none", None), ("list", ["1"])),
    "layers": [*_refuse(("unknown", ["nope"]), ("int", [3]), ("none", None), ("empty", []), ("repeated", ["1", "1"]),
                        ("string", "nope")), Bad("one name", lambda v: v[0], "any")],
    "path": _refuse(("int", 42), ("missing", "no/such/file.png"), ("folder", "."), ("empty", ""),
                    ("not an image", __file__), ("none", None)),
    "array": [
        Bad("nan", lambda a: np.where(a > 0.5, np.nan, a)), Bad("above one", lambda a: a * 2),
        Bad("two channels", lambda a: a[..., :2]), Bad("int64", lambda a: (a * 255).astype(np.int64)),
        Bad("bool", lambda a: a > 0.5), Bad("1-d", lambda a: a.ravel()), Bad("empty", lambda a: a[:0]),
        Bad("string", _const("cat")), Bad("uint8", lambda a: (a * 255).astype(np.uint8), "any"),
        Bad("float16", lambda a: a.astype(np.float16), "any"),
    ],
    "image": [  # one image (1, 3, H, W) or (3, H, W) for display
        Bad("nan pixel", _pixel(float("nan"))), Bad("uint8 range", lambda x: x * 255),
        Bad("normalized", lambda x: (x - 0.45) / 0.225),
        Bad("uint8 dtype", lambda x: (x * 255).round().to(torch.uint8), "same", 0.5 / 255),
        Bad("batch", lambda x: torch.cat([x, x])), Bad("meta", lambda x: x.to("meta")), Bad("numpy", lambda x: x.numpy()),
        Bad("float64", lambda x: x.double(), "same"), Bad("requires grad", lambda x: x.clone().requires_grad_(True), "same"),
        Bad("small odd size", lambda x: x[..., :11, :9], "any"),  # under the 16 px some helpers round up to
    ],
    "map": [  # a 2-D (or (N, ...)) map of real values
        Bad("nan", _pixel(float("nan"))), Bad("inf", _pixel(float("inf"))), Bad("list", lambda m: m.tolist()),
        Bad("wrong shape", lambda m: m[..., :-1], "any"), Bad("float64", lambda m: m.double(), "same"),
        Bad("requires grad", lambda m: m.clone().requires_grad_(True), "same"),
    ],
    "model name": _refuse(("unknown", "resnet"), ("case", "ResNet50"), ("int", 3), ("none", None)),
    "device": _refuse(("unknown", "gpu"), ("missing accelerator", "cuda:7"), ("float", 1.5)),
    "depth": _refuse(("not 6n+2", 9), ("too small", 2), ("zero", 0), ("float", 8.0), ("bool", True), ("string", "8")),
    "predictions": _refuse(("empty", []), ("string", "cat"), ("no probability", [("cat",)]),
                           ("nan", [("cat", float("nan"))]), ("above one", [("cat", 2.0)]), ("none", None)),
    "heatmap": [
        Bad("nan", _pixel(float("nan"))), Bad("wrong shape", lambda h: h[:, :-1]), Bad("list", lambda h: h.tolist()),
        Bad("channel axis", lambda h: h[:, None], "any"), Bad("float64", lambda h: h.double(), "same"),
        Bad("requires grad", lambda h: h.clone().requires_grad_(True), "same"),
    ],
}

# arguments named like this get their kind without saying so
KIND_BY_NAME = {
    "model": "model", "images": "images", "target": "target", "labels": "labels", "generator": "generator",
    "batch_size": "batch", "steps": "count", "samples": "count", "k": "count", "baseline": "baseline",
    "heatmap": "heatmap", "layer": "layer", "window": "pair", "stride": "pair", "method": "choice", "output": "choice",
    "optimizer": "choice", "progress": "bool", "size": "size", "layers": "layers", "module": "model",
    "name_or_path": "path", "array": "array", "image": "image", "device": "device", "depth": "depth",
    "predictions": "predictions", "num_classes": "int+", "init": "choice", "batch_norm": "bool", "alpha": "float0",
}


@dataclass
class Entry:
    """One public function and a valid example call (see :func:`entry`)."""

    fn: Callable[..., Any]
    valid: dict[str, Any]
    kinds: dict[str, str]
    expect: dict[str, str] = field(default_factory=dict)  # "argument:label" -> expectation, overriding the kind's
    state: bool = True  # False for functions that change the model by design (training, randomization)
    contexts: bool = True  # also run the valid call inside no_grad() and inference_mode()
    atol: float = 1e-5
    attached: bool = False  # a building block of an optimization loop: its result may stay attached to the graph
    post: Callable[[Any, dict[str, Any]], str | None] | None = None  # what an accepted result must also satisfy

    @property
    def name(self) -> str:
        return f"{self.fn.__module__.removeprefix('cnn_helpers.')}.{self.fn.__name__}"

    def arguments(self) -> dict[str, Any]:
        """Fresh valid keyword arguments (factories called)."""
        return {k: v.make() if isinstance(v, Fresh) else v for k, v in self.valid.items()}

    def default(self, argument: str) -> Any:
        return inspect.signature(self.fn).parameters[argument].default

    def cases(self) -> Iterator[tuple[str, str | None]]:
        """(argument, corruption label) pairs; ``("<no_grad>", None)`` etc. for the grad-mode contexts."""
        for argument, kind in self.kinds.items():
            for bad in KINDS[kind]:
                yield argument, bad.label
        if self.contexts:
            yield "<no_grad>", None
            yield "<inference_mode>", None


def entry(fn: Callable[..., Any], *, kinds: dict[str, str | None] | None = None, expect: dict[str, str] | None = None,
          state: bool = True, contexts: bool = True, atol: float = 1e-5, attached: bool = False,
          post: Callable[[Any, dict[str, Any]], str | None] | None = None, **valid: Any) -> Entry:
    """An :class:`Entry` for ``fn`` called with ``valid`` keyword arguments (``Fresh(factory)`` for models/tensors).

    Arguments named as in :data:`KIND_BY_NAME` are swept with that kind, whether given or left at their
    default; ``kinds`` adds others (``{"sigma": "float+"}``) or switches one off (``{"size": None}``).
    ``attached=True``: the function is a building block of an optimization loop (feature maps, a loss) whose
    result legitimately stays attached to the autograd graph; every other check still applies.
    ``post(result, arguments)`` says what is wrong with an accepted result (None: nothing), e.g. :func:`same_size`.
    """
    params = inspect.signature(fn).parameters
    unknown = set(valid) - set(params)
    assert not unknown, f"{fn.__name__} has no argument {unknown}"
    swept = {name: kind for name, kind in KIND_BY_NAME.items() if name in params}
    swept.update(kinds or {})
    swept = {name: kind for name, kind in swept.items() if kind is not None}
    for name, kind in swept.items():
        assert kind in KINDS, f"unknown kind {kind!r}"
        assert name in valid or params[name].default is not inspect.Parameter.empty, f"give a valid {name}"
    return Entry(fn, valid, swept, expect or {}, state, contexts, atol, attached, post)


def same_size(argument: str) -> Callable[[Any, dict[str, Any]], str | None]:
    """A ``post`` check: the result (a tensor, or an object holding one as ``.image``) has the height and width of
    the image given as ``argument``."""
    def check(result: Any, arguments: dict[str, Any]) -> str | None:
        given, result = arguments[argument], getattr(result, "image", result)
        if isinstance(result, torch.Tensor) and isinstance(given, torch.Tensor) and result.shape[-2:] != given.shape[-2:]:
            return f"the result is {tuple(result.shape[-2:])} px, the {argument} {tuple(given.shape[-2:])} px"
        return None
    return check


# ------------------------------------------------------------------------------------------ the runner

@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """TimeoutError when the block runs longer (checked between Python bytecodes; Unix main thread only)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def alarm(_signum: int, _frame: object) -> None:
        raise TimeoutError(f"the call ran longer than {seconds:g} s (a hang, or far too much work without a warning)")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _data_bytes() -> int | None:
    try:
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("VmData:"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration):
        return None


@contextlib.contextmanager
def memory_limit(extra: int) -> Iterator[None]:
    """Allocations beyond ``extra`` more bytes fail inside the block (Linux RLIMIT_DATA; elsewhere no limit)."""
    current = _data_bytes() if sys.platform.startswith("linux") else None
    if current is None:
        yield
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = current + extra if hard == resource.RLIM_INFINITY else min(hard, current + extra)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def _walk(value: Any, depth: int = 0) -> Iterator[Any]:
    """Every tensor, array and float inside a result (lists, tuples, dicts, dataclasses, iterators already listed)."""
    if depth > 4:
        return
    if isinstance(value, (torch.Tensor, np.ndarray, float)):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _walk(item, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item, depth + 1)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _walk(getattr(value, f.name), depth + 1)


def check_result(result: Any, attached: bool = False) -> None:
    """No NaN/inf anywhere in the result, and no returned tensor attached to an autograd graph (unless ``attached``)."""
    for value in _walk(result):
        if isinstance(value, torch.Tensor):
            assert attached or not value.requires_grad, "a returned tensor requires grad (results must be detached)"
            if value.device.type != "meta" and (value.is_floating_point() or value.is_complex()):
                assert torch.isfinite(value).all(), "the result holds NaN or inf"
        elif isinstance(value, np.ndarray):
            assert value.dtype.kind not in "fc" or np.isfinite(value).all(), "the result holds NaN or inf"
        else:
            assert math.isfinite(value), f"the result holds {value}"


def same_result(a: Any, b: Any, atol: float) -> bool:
    """Tensors, arrays and numbers close; containers element-wise; other objects (figures, modules) not compared."""
    if isinstance(a, (torch.Tensor, np.ndarray)) or isinstance(b, (torch.Tensor, np.ndarray)):
        a, b = torch.as_tensor(np.asarray(a) if isinstance(a, np.ndarray) else a), torch.as_tensor(
            np.asarray(b) if isinstance(b, np.ndarray) else b)
        return a.shape == b.shape and torch.allclose(a.detach().double().cpu(), b.detach().double().cpu(), atol=atol, rtol=1e-3)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-3, abs_tol=atol)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_result(x, y, atol) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):  # wall-clock times (a history's "seconds") never repeat
        return a.keys() == b.keys() and all(same_result(a[k], b[k], atol) for k in a if k not in VOLATILE)
    return True


def _materialize(result: Any) -> Any:
    """Iterators are consumed (a lazy function must not defer its checks to the first ``next``)."""
    if isinstance(result, (types.GeneratorType, Iterator)) and not isinstance(result, (torch.Tensor, str)):
        return list(result)
    return result


def _model_of(arguments: dict[str, Any]) -> nn.Module:
    for name in ("model", "pretrained", "module"):
        value = arguments.get(name)
        value = getattr(value, "model", value)
        if isinstance(value, nn.Module):
            return value
    return nn.Identity()


def _tensors(arguments: dict[str, Any]) -> list[torch.Tensor]:
    return [v for v in arguments.values() if isinstance(v, torch.Tensor) and v.device.type != "meta"]


def call(e: Entry, arguments: dict[str, Any], context: str | None = None,
         limit: float = TIME_LIMIT) -> tuple[Any, BaseException | None]:
    """Call ``e.fn(**arguments)`` under the time and memory limits, checking state; (result, error)."""
    model = _model_of(arguments)
    before = helpers.snapshot(model, *_tensors(arguments))
    modes = (torch.is_grad_enabled(), torch.is_inference_mode_enabled())
    ctx = {None: contextlib.nullcontext, "<no_grad>": torch.no_grad, "<inference_mode>": torch.inference_mode}[context]
    result, error = None, None
    try:
        with time_limit(limit), memory_limit(MEMORY_LIMIT), ctx():
            result = _materialize(e.fn(**arguments))
    except TimeoutError:
        raise
    except Exception as err:  # judged by the caller
        error = err
    assert (torch.is_grad_enabled(), torch.is_inference_mode_enabled()) == modes, "the grad mode was changed"
    if e.state:
        helpers.assert_unchanged(before, helpers.snapshot(model, *_tensors(arguments)))
    return result, error
