"""One training loop for every topic that trains a network, and the error/loss of a whole set.

Used by `gradients` (notebook 02: plain vs residual nets under one budget) and by the later topics that
train: adversarial training (notebook 06) and transfer learning (notebook 07). Topics call :func:`fit`
with their own pieces instead of writing another loop:

* ``transform(images, labels) -> images`` changes each mini-batch before the step (augmentation,
  adversarial examples);
* ``val=(images, labels)`` adds the validation error/loss at every evaluation;
* only parameters with ``requires_grad`` are optimized (a frozen body stays frozen).

Optimizer: SGD with momentum (or Adam), linear warm-up then cosine decay, weight decay. Everything the
loop changes besides the weights (modes, ``.grad``) is put back afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from cnn_helpers.core.budget import batch_size_for, check_cost, check_pass_memory, check_steps
from cnn_helpers.core.checks import (Target, check_bool, check_choice, check_class_indices, check_fits_model,
                                     check_float, check_generator, check_int, check_logits, check_model, check_target)
from cnn_helpers.core.progress import progress_bar
from cnn_helpers.core.state import evaluating, grad_enabled, module_modes, restore_modes, set_modes

__all__ = ["History", "fit", "evaluate", "training_error", "top1_accuracy", "balanced_accuracy", "as_maps", "warmup_cosine", "check_data",
           "BatchTransform", "StepCallback", "OPTIMIZERS"]

OPTIMIZERS = ("sgd", "adam")
BatchTransform = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StepCallback = Callable[[int, nn.Module, float], None]


@dataclass
class History:
    """What :func:`fit` recorded.

    ``batch_error[i]``/``batch_loss[i]``: error and loss of the mini-batch of step ``i`` (training mode,
    before the update). ``eval_steps[j]``: the step after which the whole sets were evaluated in eval mode,
    giving ``train_error[j]``/``train_loss[j]`` and, with validation data, ``val_error[j]``/``val_loss[j]``.
    """

    batch_error: list[float] = field(default_factory=list)
    batch_loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    train_error: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_error: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)

    steps_per_epoch: int | None = None

    @property
    def train_accuracy(self) -> list[float]:
        """``1 - train_error`` at every evaluation."""
        return [1.0 - e for e in self.train_error]

    @property
    def val_accuracy(self) -> list[float]:
        """``1 - val_error`` at every evaluation (empty without validation data)."""
        return [1.0 - e for e in self.val_error]

    @property
    def epochs(self) -> list[int]:
        """The epoch after which each evaluation ran (needs ``steps_per_epoch``, which :func:`train_classifier` sets)."""
        if not self.steps_per_epoch:
            raise ValueError("this History does not know its epochs (steps_per_epoch is not set)")
        return [s // self.steps_per_epoch for s in self.eval_steps]

    @property
    def final_error(self) -> float:
        """Training error (whole set, eval mode) at the end."""
        return self.train_error[-1]

    @property
    def final_val_error(self) -> float:
        """Validation error at the end (needs ``val=`` in :func:`fit`)."""
        if not self.val_error:
            raise ValueError("no validation data was given to fit(val=...)")
        return self.val_error[-1]


def warmup_cosine(step: int, *, steps: int, warmup: int) -> float:
    """Learning-rate factor: linear from ``1/warmup`` to 1 over ``warmup`` steps, then cosine to 0."""
    step, steps, warmup = check_int(step, "step", minimum=0), check_int(steps, "steps"), check_int(warmup, "warmup", minimum=0)
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def check_data(images: object, labels: object, name: str = "images", *, model: nn.Module | None = None) -> None:
    """ValueError unless ``images`` is (N, C, H, W) finite float and ``labels`` (N,) non-negative int64
    (with ``model``: images in the model's dtype, on its device)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point() or not len(images):
        raise ValueError(f"{name} must be a non-empty float tensor (N, C, H, W), got "
                         f"{getattr(images, 'dtype', type(images).__name__)} {tuple(getattr(images, 'shape', ()))}")
    if images.device.type == "meta":
        raise ValueError(f"{name} are on the 'meta' device: they have a shape but no values")
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} hold NaN or infinite values")
    if not isinstance(labels, torch.Tensor) or labels.shape != images.shape[:1] or labels.dtype != torch.int64:
        raise ValueError(f"labels must be an int64 tensor of shape ({images.shape[0]},), got "
                         f"{getattr(labels, 'dtype', type(labels))} {tuple(getattr(labels, 'shape', ()))}")
    if labels.min() < 0:
        raise ValueError(f"labels must be class indices >= 0, got {labels.min().item()}")
    if model is not None:
        check_fits_model(images, model, name)


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
             batch_size: int = 1000) -> tuple[float, float]:
    """``(error, mean cross-entropy loss)`` of ``model`` on a whole set, in eval mode (every module's mode restored).

    A batch's activations are estimated first: a warning above 1 GiB, a ValueError above 8 GiB (huge photos).

    Example:
        >>> error, loss = evaluate(model, images, labels)
    """
    check_model(model)
    check_data(images, labels, model=model)
    batch_size = check_int(batch_size, "batch_size")
    check_pass_memory(model, images, f"evaluating {len(images)} images of {images.shape[-2]}x{images.shape[-1]} px "
                      f"(batch_size={batch_size})", backward=False, batch_size=batch_size,
                      hint="use smaller images or batch_size")
    wrong, loss = 0, 0.0
    with evaluating(model):
        for i in range(0, len(images), batch_size):
            logits = check_logits(model(images[i:i + batch_size]), len(images[i:i + batch_size]))
            check_class_indices(labels[i:i + batch_size], logits.shape[-1])
            wrong += (logits.argmax(1) != labels[i:i + batch_size]).sum().item()
            loss += F.cross_entropy(logits, labels[i:i + batch_size], reduction="sum").item()
    return wrong / len(images), loss / len(images)


def training_error(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 1000) -> float:
    """Fraction of ``images`` (N, C, H, W) the model misclassifies, in eval mode (every module's mode restored)."""
    return evaluate(model, images, labels, batch_size=batch_size)[0]


def as_maps(inputs: torch.Tensor) -> torch.Tensor:
    """Cached features (N, D) as (N, D, 1, 1) maps, the shape the loop trains on; anything else unchanged."""
    return inputs[:, :, None, None] if isinstance(inputs, torch.Tensor) and inputs.ndim == 2 else inputs


def top1_accuracy(model: nn.Module, inputs: torch.Tensor, labels: Target, *, batch_size: int | None = None) -> float:
    """Fraction of ``inputs`` that ``model`` classifies as ``labels``, in eval mode (every module's mode restored).

    Args:
        model: A classifier. inputs: Images (N, C, H, W) or cached features (N, D), finite floats.
        labels: The classes to count: true classes (accuracy), or the targets of an attack (its success rate);
            an int or an (N,) integer tensor.
        batch_size: Inputs per forward pass. Default: about 64 images of 224 px.

    Example:
        >>> top1_accuracy(model, x_test, y_test)
    """
    check_model(model)
    inputs = as_maps(inputs)
    if isinstance(inputs, torch.Tensor) and inputs.ndim == 4 and len(inputs):
        labels = check_target(labels, len(inputs), inputs.device, name="labels")
    check_data(inputs, labels, "inputs", model=model)
    batch_size = batch_size_for(inputs, 64) if batch_size is None else check_int(batch_size, "batch_size")
    return 1.0 - evaluate(model, inputs, labels, batch_size=batch_size)[0]


@torch.no_grad()
def balanced_accuracy(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *,
                      batch_size: int | None = None) -> float:
    """The mean over the classes in ``labels`` of the fraction of each class classified correctly (eval mode).

    On an unbalanced test set, plain accuracy rewards predicting the largest class; this does not (chance is
    1 / classes). Equals ``top1_accuracy`` when every class has as many examples.

    Args:
        model: A classifier. inputs: Images (N, C, H, W) or cached features (N, D), finite floats.
        labels: (N,) int64 true classes. batch_size: Inputs per forward pass. Default: about 64 images of 224 px.

    Reference: Brodersen et al., "The balanced accuracy and its posterior distribution", ICPR 2010.
    Example:
        >>> balanced_accuracy(model, x_test, y_test)
    """
    check_model(model)
    inputs = as_maps(inputs)
    check_data(inputs, labels, "inputs", model=model)
    batch_size = batch_size_for(inputs, 64) if batch_size is None else check_int(batch_size, "batch_size")
    check_pass_memory(model, inputs, f"balanced_accuracy of {len(inputs)} inputs of shape {tuple(inputs.shape[1:])} "
                      f"(batch_size={batch_size})", backward=False, batch_size=batch_size,
                      hint="use smaller inputs or batch_size")
    with evaluating(model), torch.no_grad():
        logits = torch.cat([check_logits(model(chunk), len(chunk)) for chunk in inputs.split(batch_size)])
    check_class_indices(labels, logits.shape[-1])
    predicted, labels = logits.argmax(1), labels.to(logits.device)
    return float(torch.stack([(predicted[labels == c] == c).float().mean() for c in labels.unique()]).mean())


def _batches(n: int, batch_size: int, generator: torch.Generator | None):
    """Index batches of a fresh permutation every epoch; the last incomplete batch is dropped."""
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


def _check_val(val: object, model: nn.Module) -> None:
    if val is not None:
        if not isinstance(val, (tuple, list)) or len(val) != 2:
            raise TypeError(f"val must be a pair (images, labels) or None, got {type(val).__name__}")
        check_data(*val, name="val images", model=model)


def _trainable(model: nn.Module) -> list[nn.Parameter]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no parameter with requires_grad=True: nothing to train")
    return params


def _optimizer(params: list[nn.Parameter], name: str, lr: float, momentum: float, weight_decay: float):
    if name == "adam":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def _step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, history: History) -> None:
    """One optimizer step on the mini-batch (x, y); its loss and error are appended to ``history``."""
    logits = check_logits(model(x), len(x))
    check_class_indices(y, logits.shape[-1])
    loss = F.cross_entropy(logits, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    history.batch_loss.append(loss.item())
    history.batch_error.append((logits.argmax(1) != y).float().mean().item())


def _record(history: History, step: int, model: nn.Module, data: tuple, val: tuple | None) -> None:
    history.eval_steps.append(step)
    error, loss = evaluate(model, *data)
    history.train_error.append(error)
    history.train_loss.append(loss)
    if val is not None:
        error, loss = evaluate(model, *val)
        history.val_error.append(error)
        history.val_loss.append(loss)


def fit(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, steps: int, lr: float = 0.1,
        batch_size: int = 128, optimizer: str = "sgd", momentum: float = 0.9, weight_decay: float = 1e-4,
        warmup: int = 20, val: tuple[torch.Tensor, torch.Tensor] | None = None, eval_every: int | None = None,
        transform: BatchTransform | None = None, generator: torch.Generator | None = None,
        callback: StepCallback | None = None, progress: bool = False) -> History:
    """Train a classifier in place: mini-batches, warm-up then cosine decay; record errors and losses.

    Args:
        model: Any classifier ``(N, C, H, W) -> (N, classes)``. A model in training mode trains in the modes its
            modules have (a frozen batch norm stays frozen); one in eval mode trains all in training mode. Only
            parameters with ``requires_grad`` change. Every module's mode is restored afterwards.
        images, labels: Training set ``(N, C, H, W)`` float and ``(N,)`` int64, on the model's device.
        steps: Optimizer steps (one mini-batch each). lr: Peak learning rate. Default: 0.1.
        batch_size, optimizer, momentum, weight_decay, warmup: Defaults 128, ``"sgd"`` (or ``"adam"``: AdamW),
            0.9, 1e-4, 20 (He et al.'s values for SGD).
        val: Optional validation set ``(images, labels)``, evaluated with the training set.
        eval_every: Steps between whole-set evaluations. Default: one epoch (``N // batch_size``), and the last step.
        transform: ``transform(images, labels) -> images`` applied to each mini-batch (augmentation, attacks).
        generator: Seeds the mini-batch order. callback: ``callback(step, model, loss)`` after each step.
        progress: Show a tqdm progress bar. Default: False.

    Returns:
        A :class:`History`; ``history.final_error`` is the final training error (eval mode, whole set).
    Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Sec. 4.2.
    Example:
        >>> history = fit(plain_net(8), images, labels, steps=117)
    """
    check_model(model)
    check_data(images, labels, model=model)
    _check_val(val, model)
    steps, batch_size = check_int(steps, "steps"), check_int(batch_size, "batch_size", maximum=len(images))
    lr, weight_decay = check_float(lr, "lr", minimum=0.0, strict_minimum=True), check_float(weight_decay, "weight_decay", minimum=0.0)
    momentum, warmup = check_float(momentum, "momentum", minimum=0.0, maximum=1.0), check_int(warmup, "warmup", minimum=0)
    optimizer, generator = check_choice(optimizer, "optimizer", OPTIMIZERS), check_generator(generator)
    eval_every = len(images) // batch_size if eval_every is None else check_int(eval_every, "eval_every")
    progress = check_bool(progress, "progress")
    check_cost(model, images, steps * batch_size, f"fit with steps={steps}, batch_size={batch_size}", backward=True,
               hint="use fewer steps")
    check_steps(steps, f"fit with steps={steps}", hint="use fewer steps")  # a tiny model's compute estimate is ~0
    opt = _optimizer(_trainable(model), optimizer, lr, momentum, weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, steps=steps, warmup=max(1, warmup)))
    history, batches = History(), _batches(len(images), batch_size, generator)
    bar = progress_bar(steps, "train", enabled=progress)
    with restore_modes(model), grad_enabled():  # also inside a caller's no_grad() or inference_mode()
        if not model.training:
            model.train()
        train_modes = module_modes(model)  # evaluation in between switches to eval; come back to exactly these
        try:
            for step in range(1, steps + 1):
                index = next(batches)
                x, y = images[index], labels[index]
                x = x if transform is None else transform(x, y)
                set_modes(train_modes)
                _step(model, opt, x, y, history)
                schedule.step()
                if step % eval_every == 0 or step == steps:
                    _record(history, step, model, (images, labels), val)
                if callback is not None:
                    callback(step, model, history.batch_loss[-1])
                bar.update(1)
        finally:
            opt.zero_grad(set_to_none=True)
            bar.close()
    return history
