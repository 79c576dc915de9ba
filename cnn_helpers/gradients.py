"""Training small nets under one budget, per-layer gradient norms, and the identity extension.

Used by notebook 02 (residual learning and gradients), with the nets of ``cnn_helpers.smallnets``.

* :func:`train` trains any classifier with the same optimizer and budget (SGD with momentum,
  linear warm-up then cosine decay, weight decay) and records training-error curves.
* :func:`training_error` is the error on a whole set, in eval mode.
* :func:`gradient_norms` gives the weight-gradient norm of every convolution, in order.
* :func:`identity_extension` builds a deeper plain net that computes exactly what a shallower
  one computes: the extra blocks are identities. A solution at the larger depth exists.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_int, evaluating, grad_enabled, module_modes, restore_modes, restore_requires_grad, set_modes
from .smallnets import SmallNet, blocks_for_depth, plain_net

__all__ = ["History", "train", "training_error", "gradient_norms", "identity_extension", "warmup_cosine"]


@dataclass
class History:
    """What :func:`train` recorded.

    ``batch_error[i]``/``batch_loss[i]``: error and loss of the mini-batch of step ``i`` (training
    mode, before the update). ``eval_steps[j]``/``train_error[j]``: error on the whole training set
    in eval mode after ``eval_steps[j]`` steps (the last entry is the final error).
    """

    batch_error: list[float] = field(default_factory=list)
    batch_loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    train_error: list[float] = field(default_factory=list)

    @property
    def final_error(self) -> float:
        return self.train_error[-1]


def warmup_cosine(step: int, *, steps: int, warmup: int) -> float:
    """Learning-rate factor: linear from ``1/warmup`` to 1 over ``warmup`` steps, then cosine to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def _check_data(images: torch.Tensor, labels: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a tensor (N, C, H, W), got {getattr(images, 'shape', type(images))}")
    if not isinstance(labels, torch.Tensor) or labels.shape != images.shape[:1] or labels.dtype != torch.int64:
        raise ValueError(f"labels must be an int64 tensor of shape ({images.shape[0]},), got "
                         f"{getattr(labels, 'dtype', type(labels))} {tuple(getattr(labels, 'shape', ()))}")


@torch.no_grad()
def training_error(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 1000) -> float:
    """Fraction of ``images`` (N, C, H, W) the model misclassifies, in eval mode (every module's mode restored)."""
    _check_data(images, labels)
    batch_size = check_int(batch_size, "batch_size")
    with evaluating(model):
        wrong = sum((model(images[i:i + batch_size]).argmax(1) != labels[i:i + batch_size]).sum().item()
                    for i in range(0, len(images), batch_size))
    return wrong / len(images)


def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> Iterator[torch.Tensor]:
    """Index batches of a fresh permutation every epoch; the last incomplete batch is dropped."""
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


def train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, steps: int, lr: float = 0.1,
          batch_size: int = 128, momentum: float = 0.9, weight_decay: float = 1e-4, warmup: int = 20,
          eval_every: int | None = None, generator: torch.Generator | None = None,
          callback: Callable[[int, nn.Module, float], None] | None = None, progress: bool = False) -> History:
    """Train a classifier in place with SGD, warm-up then cosine decay; record training error.

    Args:
        model: Any classifier ``(N, C, H, W) -> (N, classes)``. A model in training mode trains in the modes
            its modules have (a frozen batch norm stays frozen); one in eval mode trains all in training mode.
            Every module's mode is restored afterwards.
        images, labels: Training set ``(N, C, H, W)`` float and ``(N,)`` int64, on the model's device.
        steps: Optimizer steps (one mini-batch each). lr: Peak learning rate. Default: 0.1.
        batch_size, momentum, weight_decay, warmup: Defaults 128, 0.9, 1e-4, 20 (He et al.'s values).
        eval_every: Steps between whole-set evaluations. Default: one epoch (``N // batch_size``).
        generator: Seeds the mini-batch order. callback: ``callback(step, model, loss)`` after each step.
        progress: Show a tqdm progress bar. Default: False.

    Returns:
        A :class:`History`; ``history.final_error`` is the final training error (eval mode, whole set).
    Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Sec. 4.2.
    Example:
        >>> history = train(plain_net(8), images, labels, steps=117)
    """
    _check_data(images, labels)
    if not isinstance(steps, int) or steps < 1 or not 1 <= batch_size <= len(images):
        raise ValueError(f"steps must be a positive int and 1 <= batch_size <= {len(images)}, got {steps}, {batch_size}")
    eval_every = eval_every or len(images) // batch_size
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, steps=steps, warmup=warmup))
    history = History()
    batches = _batches(len(images), batch_size, generator)
    bar = _progress(steps) if progress else None
    with restore_modes(model):
        if not model.training:
            model.train()
        train_modes = module_modes(model)  # evaluation in between switches to eval; come back to exactly these
        try:
            for step in range(1, steps + 1):
                set_modes(train_modes)
                index = next(batches)
                with grad_enabled():  # also inside a caller's torch.no_grad()
                    logits = model(images[index])
                    loss = F.cross_entropy(logits, labels[index])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                optimizer.step()
                schedule.step()
                history.batch_loss.append(loss.item())
                history.batch_error.append((logits.argmax(1) != labels[index]).float().mean().item())
                if step % eval_every == 0 or step == steps:
                    history.eval_steps.append(step)
                    history.train_error.append(training_error(model, images, labels))
                if callback is not None:
                    callback(step, model, history.batch_loss[-1])
                if bar is not None:
                    bar.update(1)
        finally:
            optimizer.zero_grad(set_to_none=True)
            if bar is not None:
                bar.close()
    return history


def _progress(total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="train")


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


def gradient_norms(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                   training: bool = True) -> dict[str, float]:
    """L2 norm of the cross-entropy loss's gradient w.r.t. each convolution's weight, in network order.

    Args:
        model: A classifier containing ``nn.Conv2d`` layers.
        images, labels: One batch, ``(N, C, H, W)`` float and ``(N,)`` int64.
        training: Run the forward pass in training mode (batch statistics in batch norm, as an
            optimizer step sees it). Default: True. Mode, ``requires_grad``, ``.grad`` and the
            batch-norm running statistics are left as they were.

    Returns:
        ``{layer name: norm}`` for every ``nn.Conv2d``, first layer first.
    Example:
        >>> norms = gradient_norms(plain_net(20), images[:256], labels[:256])
        >>> ratio = list(norms.values())[0] / list(norms.values())[-1]
    """
    _check_data(images, labels)
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("model has no nn.Conv2d layer to probe")
    weights = [m.weight for _, m in convs]
    with _probe_state(model, weights, training), grad_enabled():
        loss = F.cross_entropy(model(images), labels)
        grads = torch.autograd.grad(loss, weights)
    return {name: g.norm().item() for (name, _), g in zip(convs, grads)}


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
