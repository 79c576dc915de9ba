"""How long a call will take, said before it runs: a warning when it takes minutes, an error when a day.

Used by every function whose run time grows with its options (occlusion, Integrated Gradients, training,
gradient ascent, attacks, style transfer; notebooks 02-07). A lecture demo must not freeze for an hour:

* :func:`check_cost`: forward (and backward) passes times the model's MACs per image (counted by
  :mod:`cnn_helpers.core.macs`, on the ``meta`` device), at a typical throughput of the device: a
  :class:`~cnn_helpers.core.memory.CostWarning` above two minutes, a ValueError with the estimate above a day;
* :func:`check_steps`: the same for the fixed cost of each step of a loop (a tiny model's millions of
  optimizer steps take hours although each pass costs nothing);
* :func:`batch_size_for`: how many images of a given size make a fast batch;
* :func:`check_pass_memory`: the memory a forward pass (and the graph a backward pass needs) holds, from every
  layer's output size counted on ``meta``: a warning above 1 GiB, a ValueError above 8 GiB.

Memory of plain tensors is checked the same way by :mod:`cnn_helpers.core.memory`.
"""

from __future__ import annotations

import math
import warnings
import weakref
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

import torch
from torch import nn

from cnn_helpers.core.macs import count_forward
from cnn_helpers.core.memory import WARN_BYTES, CostWarning, check_memory

__all__ = ["check_cost", "check_steps", "already_estimated", "batch_size_for", "image_macs", "pass_values",
           "check_pass_memory", "WARN_SECONDS", "REFUSE_SECONDS"]

WARN_SECONDS, REFUSE_SECONDS = 120.0, 24 * 3600.0
# multiply-accumulates per second a conv net reaches: a laptop CPU (EfficientNet-Lite0: 0.4 GMACs in ~28 ms on
# 2 cores), a GPU (an H200 measured 3.4e12 for Lite0 and 2.8e13 for ResNet-50 in batches of 64, 5e10-4e12 for
# one image forward and backward; a student's GPU is several times slower), Apple's MPS. Estimates are meant to
# be right within a factor of a few.
MACS_PER_SECOND = {"cpu": 2e10, "cuda": 1e12, "mps": 2e11}
# the least one optimizer step costs in Python and autograd, however small the model (a linear probe: ~0.3 ms)
STEP_SECONDS = 1e-4
# an upper bound per input pixel (VGG-16: 15.5 GMACs at 224 px); below it no model needs to be measured
_MAX_MACS_PER_PIXEL = 20e9 / (224 * 224)
_MACS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {(C, H, W): MACs of one image}
# an upper bound on the layer outputs per input value (EfficientNet-Lite0 131, VGG-16 191, ResNet-50 213, counted on
# meta): below it no model needs to be counted
_MAX_VALUES_PER_INPUT = 400
_VALUES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {(C, H, W, backward): values}
_ESTIMATED: ContextVar[bool] = ContextVar("cnn_helpers_cost_estimated", default=False)


@contextmanager
def already_estimated() -> Iterator[None]:
    """Inside, :func:`check_cost` and :func:`check_steps` stay silent: the caller has estimated the whole call.

    For a helper built on another one (``train_classifier`` on ``fit``): it warns once, in its own terms
    (epochs, not steps), instead of once for itself and again for every part.

    Example:
        >>> check_cost(model, x, passes, "train_classifier with epochs=50")
        >>> with already_estimated():
        ...     fit(model, x, y, steps=steps)
    """
    token = _ESTIMATED.set(True)
    try:
        yield
    finally:
        _ESTIMATED.reset(token)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:,.0f} h"


def image_macs(model: nn.Module, images: torch.Tensor) -> float:
    """MACs of one forward pass of one image of this size (:func:`cnn_helpers.core.macs.count_forward`; cached
    per model and size)."""
    shape = tuple(images.shape[1:])
    cache = _MACS.setdefault(model, {})
    if shape not in cache:
        cache[shape] = count_forward(model, (1, *shape), dtype=images.dtype)[0]
    return cache[shape]


def check_cost(model: nn.Module, images: torch.Tensor, passes: float, what: str, *, backward: bool = False,
               hint: str = "") -> None:
    """Warn when ``passes`` single-image passes through ``model`` will take minutes; ValueError above a day.

    Args:
        model: The network. images: (N, C, H, W); the size of one pass's input and the device.
        passes: Forward passes of one image each. backward: Each pass also backpropagates (3x the cost).
        what: The call, for the message (``"occlusion_map with window 8, stride 2"``). hint: How to reduce it.

    Example:
        >>> check_cost(model, images, steps * len(images), "integrated_gradients", backward=True, hint="fewer steps")
    """
    if _ESTIMATED.get():
        return
    device = images.device.type
    rate = MACS_PER_SECOND.get(device, MACS_PER_SECOND["cpu"]) / (3 if backward else 1)
    pixels = images.shape[-2] * images.shape[-1]
    if passes * pixels * _MAX_MACS_PER_PIXEL / rate <= WARN_SECONDS:
        return  # cheap for any model: nothing to measure
    macs = image_macs(model, images)
    seconds = passes * macs / rate
    message = (f"{what} would take about {_duration(seconds)} on this {device.upper()}: {passes:,.0f} "
               f"{'forward and backward ' if backward else 'forward '}passes of a {images.shape[-2]}x{images.shape[-1]} "
               f"image, {macs / 1e9:,.{0 if macs >= 1e10 else 2}f} GMACs each" + (f"; {hint}" if hint else ""))
    if seconds > REFUSE_SECONDS:
        raise ValueError(message)
    if seconds > WARN_SECONDS:
        warnings.warn(message, CostWarning, stacklevel=3)


def check_steps(steps: float, what: str, hint: str = "") -> None:
    """Warn when ``steps`` iterations of a loop take minutes at their fixed cost alone; ValueError above a day.

    Example:
        >>> check_steps(epochs * batches, f"linear_probe with epochs={epochs}", hint="use fewer epochs")
    """
    if _ESTIMATED.get():
        return
    seconds = steps * STEP_SECONDS
    message = (f"{what} would take at least {_duration(seconds)}: {steps:,.0f} steps of about "
               f"{STEP_SECONDS * 1e3:g} ms each" + (f"; {hint}" if hint else ""))
    if seconds > REFUSE_SECONDS:
        raise ValueError(message)
    if seconds > WARN_SECONDS:
        warnings.warn(message, CostWarning, stacklevel=3)


def batch_size_for(images: torch.Tensor, per_224: int) -> int:
    """How many images of this size make a fast batch: ``per_224`` images of 224 x 224 pixels."""
    pixels = images.shape[-2] * images.shape[-1]
    return max(1, per_224 * 224 * 224 // pixels)


def pass_values(model: nn.Module, images: torch.Tensor, *, backward: bool) -> float:
    """Values (floats) one image of this size holds in memory at the peak of a forward pass through ``model``.

    Without ``backward`` (under ``torch.no_grad()``): about three times the largest layer output (its input, its
    output, a temporary). With it, autograd keeps every layer's output for the backward pass, whose gradients
    add about three of the largest again. Layer outputs are counted on ``meta`` (cached per model and size).
    Peaks measured on EfficientNet-Lite0 (CPU, 450-1024 px; gradient ascent, DeepDream, inversion, activations)
    lie between 0.8 and 1.4 times this estimate (class_visualization at 768 px: 1.34, its variables and Adam state
    come on top).
    """
    key = (*images.shape[1:], backward)
    cache = _VALUES.setdefault(model, {})
    if key not in cache:
        _, calls = count_forward(model, (1, *images.shape[1:]), dtype=images.dtype, per_layer=True)
        sizes = [math.prod(call.output_shape) for call in calls] or [math.prod(images.shape[1:])]
        cache[key] = math.prod(images.shape[1:]) + 3 * max(sizes) + (sum(sizes) if backward else 0)
    return cache[key]


def check_pass_memory(model: nn.Module, images: torch.Tensor, what: str, *, backward: bool = True,
                      batch_size: int | None = None, keep: float = 0, hint: str = "") -> None:
    """Warn when forward passes of ``images`` (with ``backward``: and the graph for its backward pass) will hold
    more than 1 GiB, refuse above 8 GiB (:func:`pass_values` per image, times the batch and the element size).

    Args:
        model: The network. images: (N, C, H, W): only the shape, dtype and device count (an expanded or ``meta``
            tensor is enough). what: The call, for the message.
        backward: Whether autograd keeps the graph. batch_size: Images per pass (default: all N at once).
        keep: Bytes the caller holds besides (e.g. the features of all images). hint: How to reduce it.

    Example:
        >>> check_pass_memory(model, images, f"gradient ascent on {len(images)} images", hint="use a smaller size")
    """
    batch = len(images) if batch_size is None else min(batch_size, len(images))
    per_image = math.prod(images.shape[1:]) * _MAX_VALUES_PER_INPUT * (2 if backward else 1)
    if keep + batch * per_image * images.element_size() <= WARN_BYTES:
        return  # small for any model: nothing to count
    check_memory(keep + batch * pass_values(model, images, backward=backward) * images.element_size(), what, hint)
