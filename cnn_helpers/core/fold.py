"""A cheaper copy of a frozen network: batch norm folded into the convolution that feeds it.

Used by style transfer (notebook 05), which runs a frozen network forward and backward a few hundred times.
In eval mode a ``BatchNorm2d`` is a fixed per-channel affine map, so ``bn(conv(x))`` is one convolution with
rescaled weights and a bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``): the same result up to float rounding,
one pass over the feature map less forward and backward (on EfficientNet-Lite0 about a quarter of the CPU time of
a forward + backward pass to its style layers).

Which batch norm follows which convolution is read from a forward pass (the batch norm receives the very tensor the
convolution returned), not from the order the modules were registered in, and the copy is checked against the
model on that pass: where it differs by more than float rounding, the model itself is used.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from cnn_helpers.core.checks import check_images, check_layers, check_model
from cnn_helpers.core.hooks import record
from cnn_helpers.core.memory import check_memory
from cnn_helpers.core.state import evaluating, model_channels

__all__ = ["fold_batch_norm"]

TOLERANCE = 1e-4  # largest difference allowed, relative to each compared output's largest magnitude (float32)


def _pairs(model: nn.Module, images: torch.Tensor, layers: list[str]) -> list[tuple[str, str]]:
    """(conv, batch norm) names where, in one eval-mode pass over ``images``, a batch norm's input is the tensor the
    latest convolution returned; convolutions named in ``layers`` are kept as they are (their output is read)."""
    latest: list[tuple[str, torch.Tensor]] = []  # the latest convolution's output, held (its id stays unique)
    pairs: list[tuple[str, str]] = []

    def after_conv(name: str, output: torch.Tensor) -> None:
        latest[:] = [(name, output)]

    def before_bn(name: str, args: tuple) -> None:
        if latest and args and args[0] is latest[0][1]:
            pairs.append((latest[0][0], name))
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and name not in layers:
            handles.append(module.register_forward_hook(lambda _m, _a, out, name=name: after_conv(name, out)))
        elif type(module) is nn.BatchNorm2d and module.running_var is not None:
            handles.append(module.register_forward_pre_hook(lambda _m, args, name=name: before_bn(name, args)))
    try:
        with record(model, layers, stop=True) as rec, torch.no_grad():
            rec(images)
    finally:
        for handle in handles:
            handle.remove()
    return list(dict.fromkeys(pairs))


def _same(model: nn.Module, folded: nn.Module, images: torch.Tensor, layers: list[str]) -> bool:
    """Whether ``folded`` gives ``model``'s outputs at ``layers`` (all layers empty: the model's output) on ``images``."""
    def outputs(net: nn.Module) -> list[torch.Tensor]:
        if not layers:
            return [net(images)]
        with record(net, layers, stop=True) as rec:
            rec(images)
            return list(rec.outputs().values())
    with torch.no_grad():
        for want, got in zip(outputs(model), outputs(folded)):
            if (got - want).abs().max() > TOLERANCE * want.abs().max().clamp_min(torch.finfo(want.dtype).tiny):
                return False
    return True


def _has_hooks(model: nn.Module) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
               for m in model.modules())


def fold_batch_norm(model: nn.Module, images: torch.Tensor, *, layers: list[str] | tuple[str, ...] = ()) -> nn.Module:
    """A frozen eval-mode copy of ``model`` with each batch norm folded into the convolution feeding it.

    The copy computes what ``model`` computes in eval mode, up to float rounding, with fewer passes over the feature
    maps: for a frozen network that is run forward and backward many times (style transfer). ``model`` itself is
    returned (nothing copied) when there is nothing to fold, when it is not float32/float64, when it carries hooks
    (they would run twice as often or not at all), or when the copy's outputs differ from the model's on ``images``
    by more than ``TOLERANCE`` of their largest magnitude. ``model`` is left as it was found (modes, parameters).

    Args:
        model: Any ``nn.Module`` taking ``images``.
        images: (N, C, H, W): one pass over them finds which batch norm follows which convolution and checks the copy.
        layers: Submodule names whose outputs are read (convolutions among them stay unfolded). Only these outputs are
            compared, and the passes stop after the last of them; empty: the model's output. Default: ().

    Returns:
        An ``nn.Module`` in eval mode: the folded copy (``requires_grad`` off on its parameters) or ``model``.

    Example:
        >>> fast = fold_batch_norm(pre.model, photo, layers=pre.info.style_layers)
    """
    check_model(model)
    check_images(images, model=model, channels=model_channels(model))  # grayscale digits for a 1-channel net
    layers = [] if isinstance(layers, (list, tuple)) and not layers else check_layers(model, layers, "layers")
    dtype = next(iter(model.parameters()), images).dtype
    if dtype not in (torch.float32, torch.float64) or _has_hooks(model):
        return model
    with evaluating(model):
        pairs = _pairs(model, images, layers)
        if not pairs:
            return model
        nbytes = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
        check_memory(nbytes, f"fold_batch_norm: a copy of the model ({nbytes / 2**20:.0f} MiB)",
                     "pass the model itself where memory is short")
        folded = copy.deepcopy(model).eval().requires_grad_(False)
        modules = dict(folded.named_modules())
        for conv, bn in pairs:
            _replace(folded, conv, fuse_conv_bn_eval(modules[conv], modules[bn]))
            _replace(folded, bn, nn.Identity())
        return folded if _same(model, folded, images, layers) else model


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)
