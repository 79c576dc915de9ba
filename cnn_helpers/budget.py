"""What a call will cost, said before it runs: a warning when it takes minutes or gigabytes, an error when hours.

Used by every function whose cost grows with its options (``attribution``, ``attribution_eval``,
``training``, ``data``; notebooks 02, 03 and the later topics), and by ``complexity`` (MACs counted on
the ``meta`` device). A lecture demo must not freeze for an hour, and a student's laptop must not
start swapping because of a typo (``stride=1`` on a 4000 x 4000 photo, ``size=224000``):

* :func:`check_memory`: a :class:`CostWarning` above 1 GiB, a ValueError with the estimate above 8 GiB;
* :func:`check_cost`: forward (and backward) passes times the model's MACs per image, counted on the
  ``meta`` device (no memory, no time), at a typical throughput of the device: a warning above
  two minutes, a ValueError with the estimate above a day;
* :func:`check_steps`: the same for the fixed cost of each step of a loop (a tiny model's millions of
  optimizer steps take hours although each pass costs nothing);
* :func:`meta_forward`: run a model on a ``meta`` input with ``meta`` copies of its weights (shapes and
  MAC counts for any input size; the model itself is untouched).
"""

from __future__ import annotations

import warnings
import weakref
from collections import OrderedDict
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from .checks import evaluating

__all__ = ["CostWarning", "check_memory", "check_cost", "check_steps", "meta_forward", "without_hooks", "image_macs",
           "WARN_SECONDS", "REFUSE_SECONDS", "WARN_BYTES", "REFUSE_BYTES"]

WARN_BYTES, REFUSE_BYTES = 1 << 30, 8 << 30
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


class CostWarning(UserWarning):
    """A call will take minutes or allocate gigabytes; the message says how much and how to reduce it."""


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:,.0f} h"


def check_memory(nbytes: float, what: str, hint: str = "") -> None:
    """Warn when ``what`` will allocate more than 1 GiB; ValueError with the estimate above 8 GiB.

    Example:
        >>> check_memory(4 * 3 * height * width, "resizing to size=224000", "use a smaller size")
    """
    gib = nbytes / 2**30
    message = f"{what} would allocate about {gib:,.{0 if gib >= 10 else 1}f} GiB" + (f"; {hint}" if hint else "")
    if nbytes > REFUSE_BYTES:
        raise ValueError(message)
    if nbytes > WARN_BYTES:
        warnings.warn(message, CostWarning, stacklevel=3)


@contextmanager
def without_hooks(model: nn.Module) -> Iterator[None]:
    """The forward hooks already on ``model`` are not called inside (and are all back afterwards): a pass that
    only measures must not show up in a hook someone registered to record activations."""
    saved = [(m, m._forward_pre_hooks, m._forward_hooks) for m in model.modules()]
    try:
        for module, _, _ in saved:
            module._forward_pre_hooks, module._forward_hooks = OrderedDict(), OrderedDict()
        yield
    finally:
        for module, pre, post in saved:
            module._forward_pre_hooks, module._forward_hooks = pre, post


def meta_forward(model: nn.Module, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> object:
    """``model`` on a ``meta`` input of ``shape``, with ``meta`` stand-ins for its parameters and buffers.

    Costs neither memory nor time, whatever the shape; the model's own tensors are not touched.
    Models that look at values (``.item()``, data-dependent branches) raise here: fall back to a real run.
    """
    stand_ins = {name: torch.empty_like(t, device="meta") for name, t in (*model.named_parameters(), *model.named_buffers())}
    with evaluating(model), torch.no_grad():
        return torch.func.functional_call(model, stand_ins, (torch.empty(shape, dtype=dtype, device="meta"),))


def image_macs(model: nn.Module, images: torch.Tensor) -> float:
    """MACs of one forward pass of one image of this size (counted on ``meta``; cached per model and size)."""
    from torch.utils.flop_counter import FlopCounterMode

    shape = tuple(images.shape[1:])
    cache = _MACS.setdefault(model, {})
    if shape not in cache:
        try:
            with without_hooks(model), FlopCounterMode(display=False) as counter:
                meta_forward(model, (1, *shape), images.dtype)
            cache[shape] = counter.get_total_flops() / 2
        except Exception:  # a model that needs real values: assume a mid-sized network (0.4 GMACs at 224 px)
            cache[shape] = 0.4e9 * shape[-1] * shape[-2] / (224 * 224)
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
    seconds = steps * STEP_SECONDS
    message = (f"{what} would take at least {_duration(seconds)}: {steps:,.0f} steps of about "
               f"{STEP_SECONDS * 1e3:g} ms each" + (f"; {hint}" if hint else ""))
    if seconds > REFUSE_SECONDS:
        raise ValueError(message)
    if seconds > WARN_SECONDS:
        warnings.warn(message, CostWarning, stacklevel=3)
