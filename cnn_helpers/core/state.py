"""State guards: a helper leaves a model as it found it, and the facts about a model that checks need.

Used by every technique (notebooks 02-07) through ``core.checks`` and directly: :func:`restore_modes` (every
module's own train/eval flag, never one ``model.train(was_training)`` for all), :func:`evaluating`,
:func:`restore_requires_grad`, and :func:`grad_enabled` (gradients work even when the caller is inside
``torch.no_grad()`` or ``torch.inference_mode()``); :func:`model_device`, :func:`model_dtype`,
:func:`model_channels`.
"""

from __future__ import annotations

from contextlib import contextmanager
from itertools import chain
from typing import Iterable, Iterator

import torch
from torch import nn

__all__ = ["module_modes", "set_modes", "restore_modes", "evaluating", "restore_requires_grad", "grad_enabled",
           "model_device", "model_dtype", "model_channels"]

def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model without any)."""
    for tensor in chain(model.parameters(), model.buffers()):  # lazily: unpacking all of them cost 0.3 ms a call
        return tensor.device
    return torch.device("cpu")


def model_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype of the model's first floating-point parameter (None for a model without any)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), None)


def model_channels(model: nn.Module) -> int | None:
    """The channel count the model's first convolution expects (None for a model without one)."""
    return next((m.in_channels for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)


def module_modes(model: nn.Module) -> list[tuple[nn.Module, bool]]:
    """Every module's own train/eval flag, to give back to :func:`set_modes` later."""
    return [(module, module.training) for module in model.modules()]


def set_modes(modes: list[tuple[nn.Module, bool]]) -> None:
    """Put every module back into the mode :func:`module_modes` recorded."""
    for module, training in modes:
        module.training = training


@contextmanager
def restore_modes(model: nn.Module) -> Iterator[None]:
    """Every module's own train/eval flag is restored on exit, also on error (a frozen batch norm stays frozen).

    Example:
        >>> with restore_modes(model):
        ...     model.train()   # anything goes inside
    """
    modes = module_modes(model)
    try:
        yield
    finally:
        set_modes(modes)


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode inside; every module's own train/eval flag restored afterwards, also on error."""
    with restore_modes(model):
        model.eval()
        yield


@contextmanager
def restore_requires_grad(params: Iterable[torch.Tensor]) -> Iterator[None]:
    """Every tensor's ``requires_grad`` flag is restored on exit (change them freely inside)."""
    flags = [(p, p.requires_grad) for p in params]
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@contextmanager
def grad_enabled() -> Iterator[None]:
    """Autograd on inside, even when the caller is in ``torch.no_grad()`` or ``torch.inference_mode()``.

    Tensors made in inference mode cannot be saved for backward: clone the inputs inside this block.
    """
    with torch.inference_mode(False), torch.enable_grad():
        yield
