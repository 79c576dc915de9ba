"""The one multiply-accumulate (MAC) counter: what a forward pass, or a single operation, computes.

Used by :mod:`cnn_helpers.core.budget` (how long a call will take, said before it runs), by
:mod:`cnn_helpers.nets.complexity` (notebook 01: MACs per model and per layer) and by the incremental
occlusion engine (:mod:`cnn_helpers.attribution.occlusion.graph`, notebook 03: MACs per traced step).

MACs are counted by :class:`torch.utils.flop_counter.FlopCounterMode`, which counts 2 FLOPs per
multiply-add of convolutions and matrix products (``MACs = FLOPs / 2``) and nothing for ReLU, pooling and
batch norm; with 224 px inputs the totals equal torchvision's metadata ("GFLOPS"). A whole forward pass is
counted on the ``meta`` device: shapes and counts for any input size without allocating anything; a model
that needs real values (``.item()``, data-dependent branches) is run for real instead, once, after its
memory has been estimated. That is the only fallback: no count is ever guessed.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Callable, Iterator, NamedTuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnn_helpers.core.memory import check_memory
from cnn_helpers.core.state import evaluating

__all__ = ["LeafCall", "count_forward", "macs_of", "meta_forward", "without_hooks"]


class LeafCall(NamedTuple):
    """One call of a leaf module during a counted forward pass."""

    name: str
    module: nn.Module
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    macs: int


_HOOKS = ("_forward_pre_hooks", "_forward_hooks", "_backward_pre_hooks", "_backward_hooks")


@contextmanager
def without_hooks(model: nn.Module) -> Iterator[None]:
    """The forward and backward hooks already on ``model`` are not there inside (and are all back afterwards): a
    pass that only measures must not show up in a hook someone registered to record activations, and a copy made
    inside (``copy.deepcopy``) does not inherit them. Hooks registered inside are dropped on exit."""
    saved = [(m, [getattr(m, kind) for kind in _HOOKS]) for m in model.modules()]
    try:
        for module, _ in saved:
            for kind in _HOOKS:
                setattr(module, kind, OrderedDict())
        yield
    finally:
        for module, dicts in saved:
            for kind, hooks in zip(_HOOKS, dicts):
                setattr(module, kind, hooks)


def meta_forward(model: nn.Module, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> object:
    """``model`` on a ``meta`` input of ``shape``, with ``meta`` stand-ins for its parameters and buffers.

    Costs neither memory nor time, whatever the shape; the model's own tensors are not touched.
    Models that look at values (``.item()``, data-dependent branches) raise here: fall back to a real run.
    """
    stand_ins = {name: torch.empty_like(t, device="meta") for name, t in (*model.named_parameters(), *model.named_buffers())}
    with evaluating(model), torch.no_grad():
        return torch.func.functional_call(model, stand_ins, (torch.empty(shape, dtype=dtype, device="meta"),))


def macs_of(fn: Callable[..., Any], *args: Any) -> tuple[Any, int]:
    """``(fn(*args), the multiply-accumulates it computed)``; for one operation on real tensors."""
    with FlopCounterMode(display=False) as counter:
        out = fn(*args)
    return out, counter.get_total_flops() // 2


def count_forward(model: nn.Module, shape: tuple[int, ...], *, dtype: torch.dtype | None = None,
                  per_layer: bool = False) -> tuple[int, list[LeafCall]]:
    """MACs of one eval-mode forward pass on an input of ``shape`` (N, C, H, W), and optionally per leaf call.

    Counted on ``meta`` (no memory, no time); a model that needs real values runs once for real on its own
    device (its input's memory checked first). The model's own hooks are not called; its modes are restored.

    Returns:
        ``(macs, calls)``: ``calls`` lists every call of a leaf module in call order (empty unless ``per_layer``).
    Example:
        >>> macs, _ = count_forward(model, (1, 3, 224, 224))
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = dtype or (param.dtype if param is not None and param.is_floating_point() else torch.float32)
    try:
        return _count(model, per_layer, lambda: meta_forward(model, shape, dtype))
    except Exception:
        check_memory(math.prod(shape) * dtype.itemsize, f"a real forward pass of shape {tuple(shape)} to count MACs")
        return _count(model, per_layer, lambda: model(torch.zeros(shape, device=device, dtype=dtype)))


def _count(model: nn.Module, per_layer: bool, forward: Callable[[], object]) -> tuple[int, list[LeafCall]]:
    calls: list[LeafCall] = []
    started: dict[str, int] = {}
    leaves = [(n, m) for n, m in model.named_modules() if not any(True for _ in m.children())] if per_layer else []
    with without_hooks(model), FlopCounterMode(display=False) as counter:  # only our own hooks count

        def pre_hook(name: str):
            return lambda module, args: started.__setitem__(name, counter.get_total_flops())

        def post_hook(name: str):
            def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
                flops = counter.get_total_flops() - started[name]
                calls.append(LeafCall(name, module, tuple(args[0].shape), tuple(getattr(output, "shape", ())),
                                      flops // 2))
            return hook

        handles = [m.register_forward_pre_hook(pre_hook(n)) for n, m in leaves]
        handles += [m.register_forward_hook(post_hook(n)) for n, m in leaves]
        try:  # eval mode: batch norm must not update its running statistics here
            with evaluating(model), torch.no_grad():
                forward()
        finally:
            for handle in handles:
                handle.remove()
    return counter.get_total_flops() // 2, calls
