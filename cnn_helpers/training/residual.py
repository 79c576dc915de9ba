"""Residual learning under the microscope: per-layer gradient sizes and the identity extension.

Used by notebook 02 (residual learning and gradients), with the nets of :mod:`cnn_helpers.nets.smallnets`,
trained by the course's one loop, :func:`cnn_helpers.training.loop.fit`.

* :func:`gradient_norms` gives the size of every convolution's weight gradient, in order: by default
  relative to the weight's own size (``|g| / |w|``, what one SGD step changes), comparable between
  layers of different sizes.
* :func:`identity_extension` builds a deeper plain net that computes exactly what a shallower
  one computes: the extra blocks are identities. A solution at the larger depth exists.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from cnn_helpers.core.checks import check_bool, check_choice, check_class_indices, check_logits, check_model
from cnn_helpers.core.state import grad_enabled, restore_modes, restore_requires_grad
from cnn_helpers.nets.smallnets import SmallNet, blocks_for_depth, plain_net
from cnn_helpers.training.loop import check_data

__all__ = ["gradient_norms", "identity_extension", "MEASURES"]

# |g| depends on how many weights a layer has (a 72-weight stem vs a 9,216-weight conv differ by ~11x even when
# every weight gets the same gradient); the other two are per weight and can be compared between layers.
MEASURES = {
    "relative": lambda g, w: g.norm() / w.norm(),         # |g| / |w|: the fraction one SGD step (lr 1) changes w
    "rms": lambda g, w: g.norm() / g.numel() ** 0.5,     # root-mean-square gradient per weight
    "norm": lambda g, w: g.norm(),                        # the plain L2 norm (grows with the layer's size)
}


@contextmanager
def _probe_state(model: nn.Module, params: list[nn.Parameter], training: bool) -> Iterator[None]:
    """Set the mode and requires_grad for a probe; restore them and every buffer (BN statistics) after."""
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    try:
        with restore_modes(model), restore_requires_grad(params):
            model.train(training)
            for p in params:
                p.requires_grad_(True)
            yield
    finally:
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])


def gradient_norms(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, measure: str = "relative",
                   training: bool = True) -> dict[str, float]:
    """How large the cross-entropy loss's gradient is for each convolution's weight, in network order.

    Args:
        model: A classifier containing ``nn.Conv2d`` layers.
        images, labels: One batch, ``(N, C, H, W)`` float and ``(N,)`` int64.
        measure: ``"relative"``: ``|g| / |w|``, the fraction by which one SGD step with learning rate 1
            changes the weight (what a single learning rate acts on); ``"rms"``: ``|g| / sqrt(n)``, the
            root-mean-square gradient per weight; ``"norm"``: ``|g|``, which grows with the number of weights
            and cannot compare layers of different sizes. Default: ``"relative"``.
        training: Run the forward pass in training mode (batch statistics in batch norm, as an
            optimizer step sees it). Default: True. Mode, ``requires_grad``, ``.grad`` and the
            batch-norm running statistics are left as they were.

    Returns:
        ``{layer name: value}`` for every ``nn.Conv2d``, first layer first. A value is exactly 0.0 when the
        gradient underflowed to zero.
    Example:
        >>> sizes = gradient_norms(plain_net(20), images[:256], labels[:256])
        >>> first, last = list(sizes.values())[0], list(sizes.values())[-1]
    """
    check_model(model)
    check_data(images, labels, model=model)
    training = check_bool(training, "training")
    reduce = MEASURES[check_choice(measure, "measure", tuple(MEASURES))]
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("model has no nn.Conv2d layer to probe")
    weights = [m.weight for _, m in convs]
    with _probe_state(model, weights, training), grad_enabled():
        logits = check_logits(model(images.clone()), len(images))  # a clone: a normal tensor even in inference mode
        check_class_indices(labels, logits.shape[-1])
        loss = F.cross_entropy(logits, labels)
        grads = torch.autograd.grad(loss, weights)
    return {name: reduce(g, w.detach()).item() for (name, _), g, w in zip(convs, grads, weights)}


@torch.no_grad()
def _make_identity(block: nn.Module) -> None:
    """Set a plain block to the identity on non-negative inputs (eval mode): delta kernels, BN = identity."""
    for conv in (block.conv1, block.conv2):
        conv.weight.zero_()
        conv.weight[:, :, 1, 1] = torch.eye(conv.out_channels, conv.in_channels)
        if conv.bias is not None:
            conv.bias.zero_()
    for bn in (block.bn1, block.bn2):
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0)
            bn.weight.copy_(torch.sqrt(bn.running_var + bn.eps))   # scale = weight / sqrt(var + eps) = 1
            bn.bias.zero_()


def identity_extension(model: SmallNet, depth: int) -> SmallNet:
    """A plain net of ``depth`` layers that computes exactly what the shallower plain ``model`` computes.

    The first blocks of every stage are copies of ``model``'s blocks; the extra blocks at the end of
    each stage compute the identity (delta kernels, batch norm set to the identity, ReLU of a
    non-negative input). Holds in eval mode (in training mode batch norm uses batch statistics).

    Args:
        model: A plain :class:`SmallNet` (from :func:`plain_net`); not modified.
        depth: The new depth ``6m + 2``, at least ``model.depth``.

    Returns:
        A new :class:`SmallNet` in eval mode, on ``model``'s device.
    Example:
        >>> deep = identity_extension(trained_plain8, 32)   # deep(x) == trained_plain8.eval()(x)
    """
    if not isinstance(model, SmallNet) or model.residual:
        raise TypeError(f"model must be a plain SmallNet from plain_net(), got {type(model).__name__}"
                        + (" (residual)" if isinstance(model, SmallNet) else ""))
    if blocks_for_depth(depth) < blocks_for_depth(model.depth):
        raise ValueError(f"depth must be at least the model's depth {model.depth}, got {depth}")
    deep = plain_net(depth, widths=model.widths, in_channels=model.in_channels, num_classes=model.num_classes,
                     batch_norm=model.batch_norm, init=model.init)
    deep.to(next(model.parameters()).device)
    deep.stem.load_state_dict(model.stem.state_dict())
    deep.fc.load_state_dict(model.fc.state_dict())
    for shallow_stage, deep_stage in zip(model.stages, deep.stages):
        for i, block in enumerate(deep_stage):
            if i < len(shallow_stage):
                block.load_state_dict(shallow_stage[i].state_dict())
            else:
                _make_identity(block)
    return deep.eval()
