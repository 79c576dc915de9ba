"""The one layer recorder: what named layers output (or receive) during a forward pass.

Used by every topic that reads a layer: feature visualization (notebook 04: activations, gradient ascent,
DeepDream, inversion), style (05: feature maps and Gram matrices), transfer learning (07: cached features)
and Grad-CAM (03: a layer's maps and their gradients).

Inside ``with record(model, layers) as rec:`` every forward pass of ``model`` fills ``rec`` anew with the
first output of each named layer. The recorded tensor stays attached to the autograd graph (a loss computed
from it reaches the input; the model's output can be differentiated with respect to it), and the rest of the
network computes on a copy, so that a later in-place operation (``ReLU(inplace=True)``, a ResNet's ``+=``)
cannot change what was recorded. A layer called twice in one pass (a ResNet's shared ReLU) keeps its first
output. With ``stop=True`` the pass ends as soon as every layer has been recorded (``rec(images)`` then
returns None): the layers after the last one are not computed. Hooks are removed on exit, also on error.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, ContextManager, Iterator, Sequence

import torch
from torch import nn

from cnn_helpers.core.checks import check_bool, check_layer, check_layers, check_model

__all__ = ["Recorder", "StopForward", "record"]


class StopForward(Exception):
    """Raised by a recorder's hook once every layer has been recorded: the rest of the forward pass is skipped."""


class Recorder:
    """What :func:`record` yields: ``rec[layer]`` is that layer's tensor from the latest forward pass."""

    def __init__(self, model: nn.Module, layers: Sequence[str]):
        self.model, self.layers = model, list(layers)
        self.values: dict[str, torch.Tensor] = {}
        self.calls: dict[str, int] = {}  # how often each layer ran in the latest pass (a shared module: more than once)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """One forward pass of the model: its output, or None when ``stop=True`` ended the pass early."""
        try:
            return self.model(*args, **kwargs)
        except StopForward:
            return None

    def __getitem__(self, layer: str) -> torch.Tensor:
        if layer not in self.values:
            if layer not in self.layers:
                raise KeyError(f"layer {layer!r} is not recorded here (recorded: {self.layers})")
            raise ValueError(f"layer {layer!r} did not run during the forward pass (a branch the model skips, "
                             "e.g. an auxiliary head in eval mode); pick another layer")
        return self.values[layer]

    def __contains__(self, layer: object) -> bool:
        return layer in self.values

    def __len__(self) -> int:
        return len(self.values)

    def outputs(self) -> dict[str, torch.Tensor]:
        """``{layer: tensor}`` for every recorded layer, in the order they were named (each one must have run)."""
        return {layer: self[layer] for layer in self.layers}


def record(model: nn.Module, layers: str | Sequence[str], *, inputs: bool = False,
           stop: bool = False) -> ContextManager[Recorder]:
    """Record the outputs (``inputs=True``: what each layer receives) of the named submodules of ``model``.

    The arguments are checked at once, before the ``with`` block starts.

    Args:
        model: Any ``nn.Module``. layers: A submodule name or a list of them, as in ``model.named_modules()``
            (an empty list records nothing: the model runs as usual). inputs: Record each layer's first positional
            input instead of its output. stop: End each forward pass as soon as every layer is recorded (call the
            model as ``rec(x)``, which returns None then; a direct ``model(x)`` raises :class:`StopForward`).

    Returns:
        A context manager yielding a :class:`Recorder`, refilled by every forward pass of ``model``; the hooks are
        removed on exit, also on error.

    Example:
        >>> with record(model, ["net.layer3"]) as rec:
        ...     logits = rec(images)
        >>> rec["net.layer3"].shape
    """
    check_model(model)
    names = [] if isinstance(layers, (list, tuple)) and not layers else check_layers(model, layers)
    return _recording(model, names, check_bool(inputs, "inputs"), check_bool(stop, "stop"))


@contextmanager
def _recording(model: nn.Module, layers: list[str], inputs: bool, stop: bool) -> Iterator[Recorder]:
    rec = Recorder(model, layers)

    def keep(name: str, value: Any, kind: str) -> torch.Tensor | None:
        rec.calls[name] = rec.calls.get(name, 0) + 1
        if name in rec.values:
            return None  # a module called again in the same pass: its first value counts
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"layer {name!r} {kind} {type(value).__name__}, not a tensor; pick another layer")
        rec.values[name] = value
        if stop and len(rec.values) == len(rec.layers):
            raise StopForward
        return value.clone()  # the network goes on with a copy: an in-place op must not change the record

    def post(name: str):
        return lambda module, args, output: keep(name, output, "returns")

    def pre(name: str):
        def hook(module: nn.Module, args: tuple) -> tuple | None:
            copy = keep(name, args[0] if args else None, "receives")
            return None if copy is None else (copy, *args[1:])
        return hook

    def new_pass(module: nn.Module, args: tuple) -> None:
        rec.values.clear()
        rec.calls.clear()

    handles = [model.register_forward_pre_hook(new_pass)]
    try:
        for name in rec.layers:
            module = check_layer(model, name)  # already checked: its path only, not every module of the model
            handles.append(module.register_forward_pre_hook(pre(name)) if inputs else
                           module.register_forward_hook(post(name)))
        yield rec
    finally:
        for handle in handles:
            handle.remove()
