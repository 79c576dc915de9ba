"""Training on top of a pretrained network: a classifier, a linear probe, and the data helpers of notebook 07.

Used by notebook 07 with :mod:`cnn_helpers.training.transfer` (which prepares the network and caches its
features). :func:`train_classifier` is one wrapper around the course's training loop,
:func:`cnn_helpers.training.loop.fit`: epochs instead of steps, accuracy and loss per epoch, images or cached
features alike.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from cnn_helpers.core.budget import already_estimated, check_cost, check_steps
from cnn_helpers.core.checks import check_generator, check_images, check_int, check_model
from cnn_helpers.core.memory import check_memory
from cnn_helpers.core.ops import resize_to
from cnn_helpers.core.state import grad_enabled
from cnn_helpers.training.loop import BatchTransform, History, StepCallback, as_maps, check_data, fit
from cnn_helpers.training.transfer import seed_from

__all__ = ["train_classifier", "linear_probe", "stratified_split", "to_rgb"]


def train_classifier(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor],
                     val: tuple[torch.Tensor, torch.Tensor] | None = None, *, epochs: int, lr: float = 0.01,
                     batch_size: int = 32, optimizer: str = "sgd", weight_decay: float = 1e-4,
                     transform: BatchTransform | None = None, every: int | None = 1,
                     generator: torch.Generator | None = None, callback: StepCallback | None = None,
                     progress: bool = False) -> History:
    """Train ``model`` in place for ``epochs`` epochs with :func:`cnn_helpers.training.fit`; record every epoch.

    Args:
        model: A classifier; only parameters with ``requires_grad`` change (see :func:`prepare`).
        train, val: ``(inputs, labels)``: images (N, C, H, W) or cached features (N, D) or (N, C, h, w),
            labels (N,) int64. ``val`` is optional.
        epochs: Passes over the training set (the last incomplete mini-batch of each is dropped).
        lr, batch_size, optimizer, weight_decay: Peak learning rate (warm-up, then cosine), mini-batch size
            (capped at N), ``"sgd"`` (momentum 0.9) or ``"adam"``, L2 penalty. Defaults: 0.01, 32, sgd, 1e-4.
        transform: ``transform(x, y) -> x`` on every mini-batch (augmentation). Default: None.
        every: Evaluate the whole sets every ``every`` epochs (and after the last); None: only after the last
            (evaluating costs a forward pass over both sets). Default: 1.
        generator: Seeds the mini-batch order. callback: ``callback(step, model, loss)`` after every step (e.g. to
            record accuracies at chosen steps: early stopping on validation data). progress: tqdm bar (``not FAST``).

    Returns:
        :class:`~cnn_helpers.training.loop.History` with ``epochs``, ``train_accuracy``/``val_accuracy`` and the
        losses of every evaluation.

    Example:
        >>> history = train_classifier(net, (x, y), (x_val, y_val), epochs=10, generator=g)
    """
    check_model(model)
    x, y = _pair(train, "train")
    val = None if val is None else _pair(val, "val")
    epochs = check_int(epochs, "epochs")
    batch_size = min(check_int(batch_size, "batch_size"), len(x))
    per_epoch, steps = len(x) // batch_size, epochs * (len(x) // batch_size)
    every = steps if every is None else per_epoch * check_int(every, "every")
    evaluations = (steps // every + 1) * (len(x) + (0 if val is None else len(val[0])))
    what = f"train_classifier with epochs={epochs}"
    check_steps(steps, what, "use fewer epochs")
    check_cost(model, x, 3 * steps * batch_size + evaluations, what, hint="use fewer epochs")  # backward: 3 passes
    with already_estimated():  # fit's own estimate is a part of the one above
        history = fit(model, x, y, steps=steps, lr=lr, batch_size=batch_size, optimizer=optimizer,
                      weight_decay=weight_decay, warmup=max(1, min(20, steps // 10)), val=val,
                      eval_every=every, transform=transform, generator=generator, callback=callback,
                      progress=progress)
    history.steps_per_epoch = per_epoch
    return history


def _pair(data: object, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, labels)`` checked, 2-d features as (N, D, 1, 1) maps."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{name} must be a pair (inputs, labels), got {type(data).__name__}")
    x, y = as_maps(data[0]), data[1]
    check_data(x, y, f"{name} inputs")
    return x, y


class _Standardize(nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) - self.mean) / self.std


def linear_probe(train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor] | None = None, *,
                 epochs: int = 100, lr: float = 0.01, weight_decay: float = 1e-3,
                 generator: torch.Generator | None = None, callback: StepCallback | None = None) -> tuple[nn.Module, History]:
    """A linear classifier (logistic regression) on fixed features, standardized with the training set's statistics.

    Args:
        train, val: ``(features (N, D), labels (N,))``; the number of classes is ``labels.max() + 1``.
        epochs, lr, weight_decay: AdamW on full-batch-sized mini-batches (at most 256). Defaults: 100, 0.01, 1e-3.
        generator: Seeds the classifier's initial weights and the mini-batch order.
        callback: ``callback(step, probe, loss)`` after every step, as in :func:`train_classifier`. Default: None.

    Returns:
        ``(probe, history)``: the trained ``nn.Module`` ((N, D) -> logits) and its training ``History``.

    Reference: Alain & Bengio, "Understanding intermediate layers using linear classifier probes", 2016.
    """
    feats, labels = train if isinstance(train, (tuple, list)) and len(train) == 2 else (None, None)
    if not isinstance(feats, torch.Tensor) or feats.ndim != 2:
        raise ValueError(f"train features must be a (N, D) tensor, got {tuple(getattr(feats, 'shape', ()))}")
    _pair(train, "train")
    epochs, generator = check_int(epochs, "epochs"), check_generator(generator)
    with grad_enabled():  # a probe made inside inference_mode() could not be trained
        mean, std = feats.mean(0), feats.std(0) if len(feats) > 1 else torch.ones_like(feats[0])
        std = torch.where(std > 0, std, torch.ones_like(std))  # a constant feature stays 0 after centring
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_from(generator))
            linear = nn.Linear(feats.shape[1], int(labels.max()) + 1)
        probe = nn.Sequential(_Standardize(mean.clone(), std.clone()), linear).to(feats.device)
    history = train_classifier(probe, train, val, epochs=epochs, lr=lr, batch_size=min(256, len(feats)),
                              optimizer="adam", weight_decay=weight_decay, generator=generator, callback=callback)
    return probe, history


# ------------------------------------------------------------------------------------------------ data

def stratified_split(labels: torch.Tensor, per_class: Sequence[int], *,
                     generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Disjoint random index sets with exactly ``per_class[i]`` examples of every class in set ``i``.

    Args:
        labels: (N,) int64 class labels.
        per_class: How many examples of each class go into each set (their sum must not exceed the
            smallest class).
        generator: Seeds the draw (same generator state, same split).

    Returns:
        One (k * per_class[i],) int64 index tensor per set, sorted.

    Example:
        >>> test, val, pool = stratified_split(labels, [100, 20, 380], generator=torch.Generator().manual_seed(0))
    """
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.dtype != torch.int64 or not len(labels):
        got = f"{tuple(labels.shape)} {labels.dtype}" if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must be a non-empty (N,) int64 tensor, got {got}")
    if labels.device.type == "meta" or (len(labels) and labels.min() < 0):
        raise ValueError("labels must be class indices >= 0 (on a real device)")
    if not isinstance(per_class, (list, tuple)) or not per_class:
        raise TypeError(f"per_class must be a non-empty list of ints, got {per_class!r}")
    counts = [check_int(n, "per_class entries", minimum=0) for n in per_class]
    generator = check_generator(generator)
    sets: list[list[torch.Tensor]] = [[] for _ in counts]
    for cls in labels.unique():
        members = (labels == cls).nonzero()[:, 0]
        if sum(counts) > len(members):
            raise ValueError(f"per_class asks for {sum(counts)} examples of class {cls.item()}, which has {len(members)}")
        order = members[torch.randperm(len(members), generator=generator)]
        starts = [sum(counts[:i]) for i in range(len(counts))]
        for i, (start, n) in enumerate(zip(starts, counts)):
            sets[i].append(order[start:start + n])
    return [torch.cat(s).sort().values for s in sets]


def to_rgb(images: torch.Tensor, *, size: int) -> torch.Tensor:
    """(N, 1 or 3, H, W) images in [0, 1] (or uint8 in [0, 255]) -> (N, 3, size, size) float32: resized (bilinear,
    antialiased), grey copied to RGB, detached."""
    if isinstance(images, torch.Tensor) and images.dtype == torch.uint8:
        images = images.float() / 255  # raw digits as stored: 0-255
    check_images(images, channels=None)
    if images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, 1 or 3, H, W), got {tuple(images.shape)}")
    size = check_int(size, "size")
    check_memory(len(images) * 3 * size * size * 4, f"{len(images)} images of {size}x{size} px (size={size})",
                 "use a smaller size")
    out = resize_to(images.detach().float(), (size, size))
    return out.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()
