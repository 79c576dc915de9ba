"""Input checks and model-state handling shared by the attribution methods.

Used by `attribution` and `attribution_eval` (notebook 03). Validation raises clear TypeError/ValueError
messages naming the argument; ``evaluating`` puts a model in eval mode and restores every module's flag.
"""

from __future__ import annotations

import difflib
from contextlib import contextmanager
from typing import Iterator, Union

import torch
from torch import nn

__all__ = ["Target", "check_images", "check_layer", "check_model", "check_target", "gather", "evaluating",
           "batch_size_for", "input_gradients"]

Target = Union[int, torch.Tensor]


def check_images(images: object) -> None:
    """Raise TypeError/ValueError unless ``images`` is a float (N, 3, H, W) tensor in [0, 1]."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise TypeError(f"images must be a float tensor (N, 3, H, W) in [0, 1], got {type(images).__name__}"
                        + (f" of dtype {images.dtype}" if isinstance(images, torch.Tensor) else ""))
    if images.ndim != 4:
        hint = "; for one image use images[None]" if images.ndim == 3 else ""
        raise ValueError(f"images must have 4 dimensions (N, 3, H, W), got shape {tuple(images.shape)}{hint}")
    if images.shape[1] != 3:
        hint = {1: "; grayscale: images.expand(-1, 3, -1, -1)", 4: "; RGBA: images[:, :3]"}.get(images.shape[1], "")
        raise ValueError(f"images must have 3 channels (RGB), got {images.shape[1]} in shape {tuple(images.shape)}{hint}")
    if images.numel() == 0:
        raise ValueError(f"images is empty: shape {tuple(images.shape)}")
    low, high = images.min().item(), images.max().item()
    if not (0.0 <= low and high <= 1.0):  # also catches NaN
        raise ValueError(f"images must have values in [0, 1], got min {low:.3g}, max {high:.3g} "
                         "(normalization belongs inside the model)")


def check_layer(model: nn.Module, layer: object) -> nn.Module:
    """The submodule named ``layer`` (as in ``model.named_modules()``); ValueError listing valid names."""
    modules = dict(model.named_modules())
    modules.pop("", None)
    if isinstance(layer, str) and layer in modules:
        return modules[layer]
    names = list(modules)
    close = difflib.get_close_matches(str(layer), names, n=3)
    shown = names if len(names) <= 20 else names[:12] + ["..."] + names[-4:]
    raise ValueError(f"layer {layer!r} is not a submodule name of the model"
                     + (f"; did you mean {', '.join(map(repr, close))}?" if close else "")
                     + f" Valid names ({len(names)}): {', '.join(shown)}")


def check_model(model: object) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def check_target(target: object, n: int, device: torch.device) -> torch.Tensor:
    """An int or (N,) integer tensor -> (N,) int64 tensor on ``device`` (range checked by `gather`)."""
    if isinstance(target, bool) or not isinstance(target, (int, torch.Tensor)):
        raise TypeError(f"target must be an int or an (N,) integer tensor, got {type(target).__name__}")
    if isinstance(target, int):
        return torch.full((n,), target, dtype=torch.long, device=device)
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
    if target.ndim == 0:
        return target.to(device=device, dtype=torch.long).expand(n)
    if target.shape != (n,):
        raise ValueError(f"target must be an int or have shape ({n},), one class per image; got {tuple(target.shape)}")
    return target.to(device=device, dtype=torch.long)


def gather(output: object, target: torch.Tensor) -> torch.Tensor:
    """``output[i, target[i]]``: (M,) scores; ValueError for a non-(M, C) output or a target out of range."""
    if not isinstance(output, torch.Tensor) or output.ndim != 2 or output.shape[0] != target.shape[0]:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ValueError(f"the model must return logits of shape ({target.shape[0]}, classes), got {shape}")
    classes = output.shape[1]
    bad = target[(target < 0) | (target >= classes)]
    if bad.numel():
        raise ValueError(f"target must be a class index in [0, {classes - 1}] (the model has {classes} outputs), "
                         f"got {bad[0].item()}")
    return output.gather(1, target[:, None])[:, 0]


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode inside; every module's own train/eval flag restored afterwards, also on error."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def batch_size_for(images: torch.Tensor, per_224: int) -> int:
    """How many images of this size make a fast batch: ``per_224`` images of 224 x 224 pixels."""
    pixels = images.shape[-2] * images.shape[-1]
    return max(1, per_224 * 224 * 224 // pixels)


def input_gradients(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor, batch_size: int) -> torch.Tensor:
    """d model(x)[target] / dx for each row of ``inputs`` (any values), in chunks of ``batch_size``."""
    grads = []
    for chunk, labels in zip(inputs.split(batch_size), target.split(batch_size)):
        x = chunk.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            score = gather(model(x), labels)
            (grad,) = torch.autograd.grad(score.sum(), x)
        grads.append(grad)
    return torch.cat(grads)
