"""Measuring attacks and defending against them: accuracy vs eps, transfer between models, adversarial training.

Used by notebook 06 (adversarial attacks). Built on the attacks of :mod:`cnn_helpers.adversarial.attacks`;
training goes through the shared loop (``fit(..., transform=adversarial_transform(model, ...))``).

Rates are fractions in [0, 1] of images that the model classifies as ``labels`` after the attack
(:func:`cnn_helpers.training.top1_accuracy` counts them for one set of images): for an untargeted attack with
the true classes (or the clean predictions) that is the **accuracy** under attack (lower = stronger attack);
for a targeted attack with the targets it is the **success rate**. Models are
evaluated in eval mode and left as found; nothing is trained here.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from cnn_helpers.adversarial.attacks import LOSSES, NORMS, fgsm, pgd
from cnn_helpers.core.budget import batch_size_for, check_cost, check_steps
from cnn_helpers.core.checks import (Target, check_bool, check_choice, check_class_indices, check_float,
                                     check_generator, check_images, check_int, check_logits, check_model, check_target)
from cnn_helpers.core.state import evaluating, model_channels

__all__ = ["ATTACKS", "attack", "predict", "eps_curve", "fooling_rate", "transfer_matrix",
           "adversarial_transform"]

ATTACKS = ("fgsm", "pgd")


def _check_inputs(model: object, images: object, name: str = "images") -> None:
    """A model, and images (N, C, H, W) in [0, 1] with the channels, device and dtype it takes."""
    check_model(model)
    check_images(images, name=name, model=model, channels=model_channels(model))


def _check_labels(model: nn.Module, images: torch.Tensor, labels: object) -> torch.Tensor:
    """(N,) int64 class indices within the model's outputs (one image is classified to count them)."""
    labels = check_target(labels, images.shape[0], images.device, name="labels")
    with torch.no_grad(), evaluating(model):
        classes = check_logits(model(images[:1]), 1).shape[1]
    check_class_indices(labels, classes, "labels")
    return labels


def attack(model: nn.Module, images: torch.Tensor, labels: Target, *, method: str = "pgd", eps: float,
           targeted: bool = False, steps: int = 10, alpha: float | None = None, norm: str = "linf",
           random_start: bool = False, restarts: int = 1, loss: str = "ce", generator: torch.Generator | None = None,
           early_stop: bool = False, batch_size: int | None = None) -> torch.Tensor:
    """FGSM or PGD on any number of images, in batches; PGD's step size defaults to Madry et al.'s ``2.5 eps / steps``.

    Args:
        images: (N, C, H, W) in [0, 1]. labels: Int or (N,): classes to leave, or targets when ``targeted``.
        method: ``"fgsm"`` (one step; ``steps``, ``alpha``, ``norm``, ``loss`` ignored) or ``"pgd"``. Default: ``"pgd"``.
        eps: Budget in pixel units, >= 0 (0 returns the images unchanged). steps, alpha, norm, random_start, loss,
            generator, early_stop: As in :func:`adversarial.pgd` (defaults 10, ``2.5 * eps / steps``, ``"linf"``,
            False, ``"ce"``, None, False).
        restarts: PGD runs from independent random starts (needs ``random_start=True``); each image keeps the
            first run that succeeds on it, else the last. Default: 1.
        batch_size: Images per attack call. Default: about 16 images of 224 px.

    Returns:
        (N, C, H, W) adversarial images in [0, 1], detached.
    Example:
        >>> adv = attack(model, images, labels, eps=8 / 255, steps=50, random_start=True, restarts=5)
    """
    _check_inputs(model, images)
    method, eps = check_choice(method, "method", ATTACKS), check_float(eps, "eps", minimum=0.0)
    steps, norm, loss = check_int(steps, "steps"), check_choice(norm, "norm", NORMS), check_choice(loss, "loss", LOSSES)
    targeted, early_stop = check_bool(targeted, "targeted"), check_bool(early_stop, "early_stop")
    random_start, restarts = check_bool(random_start, "random_start"), check_int(restarts, "restarts")
    generator = check_generator(generator)
    if alpha is not None:
        alpha = check_float(alpha, "alpha", minimum=0.0, strict_minimum=True)
    if restarts > 1 and (method != "pgd" or not random_start):
        raise ValueError(f"restarts={restarts} needs method='pgd' and random_start=True: "
                         "without a random start every run gives the same image")
    batch_size = batch_size_for(images, 16) if batch_size is None else check_int(batch_size, "batch_size")
    labels = _check_labels(model, images, labels)  # one image classified: the model's outputs and the label range
    passes = len(images) * (1 if method == "fgsm" else steps * restarts)
    check_cost(model, images, passes, f"attack with method={method!r}, steps={steps}, restarts={restarts}",
               backward=True, hint="fewer steps or restarts")
    check_steps(passes // max(1, min(batch_size, len(images))), f"attack with steps={steps}, restarts={restarts}",
                "fewer steps or restarts")  # a tiny model's compute estimate is ~0: the loop's fixed cost per step
    if eps == 0:
        return images.detach().clone()
    alpha = 2.5 * eps / steps if alpha is None else alpha
    options = dict(eps=eps, alpha=alpha, steps=steps, norm=norm, targeted=targeted, random_start=random_start,
                   generator=generator, early_stop=early_stop, loss=loss)
    chunks = []
    for x, y in zip(images.split(batch_size), labels.split(batch_size)):
        if method == "fgsm":
            chunks.append(fgsm(model, x, y, eps=eps, targeted=targeted))
        else:
            chunks.append(_restarted(model, x, y, restarts, options))
    return torch.cat(chunks)


def _restarted(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, restarts: int, options: dict) -> torch.Tensor:
    """PGD from ``restarts`` random starts: each image keeps the first successful run, else the last one."""
    best = pgd(model, images, labels, **options)
    for _ in range(restarts - 1):
        done = (predict(model, best) == labels) == options["targeted"]
        if done.all():
            break
        todo = (~done).nonzero()[:, 0]
        best[todo] = pgd(model, images[todo], labels[todo], **options)
    return best


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int | None = None) -> torch.Tensor:
    """(N,) predicted classes (argmax of the logits), in eval mode, in batches (about 64 images of 224 px)."""
    _check_inputs(model, images)
    batch_size = batch_size_for(images, 64) if batch_size is None else check_int(batch_size, "batch_size")
    with evaluating(model):
        return torch.cat([check_logits(model(x), len(x)).argmax(1) for x in images.split(batch_size)])


def eps_curve(model: nn.Module, images: torch.Tensor, labels: Target, eps_values: Sequence[float], *,
              targeted: bool = False, **options) -> torch.Tensor:
    """Accuracy (untargeted) or success rate (``targeted=True``) under :func:`attack` at each of increasing budgets.

    An adversarial example found within a budget lies within every larger one, so an image that is fooled at
    one budget counts as fooled at all larger ones (and is not attacked again): the curves are monotone and
    measure the strongest of the attacks tried up to each budget. PGD stops early on an image once it succeeds.

    Args:
        images: (N, C, H, W) in [0, 1]. labels: True classes (or clean predictions), or targets when targeted.
        eps_values: Non-decreasing budgets in pixel units, e.g. ``[0, 1 / 255, 2 / 255, 4 / 255]``.
        targeted: Towards ``labels``. **options: Passed to :func:`attack` (``method``, ``steps``, ``alpha``, ...).

    Returns:
        (E,) fractions in [0, 1], one per budget: images classified as ``labels`` after the attack.
    Example:
        >>> curve = eps_curve(model, images, predict(model, images), [0, 1 / 255, 4 / 255], method="fgsm")
    """
    _check_inputs(model, images)
    if not isinstance(eps_values, (list, tuple)) or not eps_values:
        raise TypeError(f"eps_values must be a non-empty list of budgets, got {type(eps_values).__name__}")
    eps_values = [check_float(eps, "eps_values", minimum=0.0) for eps in eps_values]
    if any(b < a for a, b in zip(eps_values, eps_values[1:])):
        raise ValueError(f"eps_values must not decrease, got {list(eps_values)}")
    labels = _check_labels(model, images, labels)
    targeted = check_bool(targeted, "targeted")
    success = torch.zeros(len(labels), dtype=torch.bool, device=labels.device)
    rates = []
    for eps in eps_values:
        todo = (~success).nonzero()[:, 0]
        if len(todo):
            adv = attack(model, images[todo], labels[todo], eps=eps, targeted=targeted, early_stop=True, **options)
            success[todo[(predict(model, adv) == labels[todo]) == targeted]] = True
        rate = success.float().mean().item()
        rates.append(rate if targeted else 1.0 - rate)
    return torch.tensor(rates)


def fooling_rate(model: nn.Module, clean: torch.Tensor, perturbed: torch.Tensor) -> float:
    """Fraction of images whose prediction changes from ``clean`` to ``perturbed`` (both (N, C, H, W))."""
    _check_inputs(model, clean, "clean")
    _check_inputs(model, perturbed, "perturbed")
    if perturbed.shape != clean.shape:
        raise ValueError(f"clean and perturbed must have one shape, got {tuple(clean.shape)} and {tuple(perturbed.shape)}")
    return (predict(model, clean) != predict(model, perturbed)).float().mean().item()


def transfer_matrix(models: Sequence[nn.Module], images: torch.Tensor, *, eps: float, steps: int = 10,
                    alpha: float | None = None, method: str = "pgd") -> torch.Tensor:
    """Fooling rates of untargeted adversarials made on each model (rows), shown to each model (columns).

    Args:
        models: Classifiers that take the same images (same device); each attacks its own clean predictions.
        images: (N, C, H, W) in [0, 1]. eps, steps, alpha, method: As in :func:`attack` (no random start).

    Returns:
        (A, A): entry ``[a, b]`` is the fraction of images whose prediction by model ``b`` changes when they are
        replaced by the adversarials made on model ``a``; the diagonal is the white-box success.
    Reference: Papernot et al., "Transferability in Machine Learning", 2016; Liu et al., ICLR 2017.
    Example:
        >>> matrix = transfer_matrix([lite0, lite1, lite2], images, eps=4 / 255)
    """
    if not isinstance(models, (list, tuple)) or not models:
        raise TypeError(f"models must be a non-empty list of classifiers, got {type(models).__name__}")
    for model in models:
        check_model(model, "models")
    rows = []
    for source in models:
        adv = attack(source, images, predict(source, images), method=method, eps=eps, steps=steps, alpha=alpha)
        rows.append([fooling_rate(target, images, adv) for target in models])
    return torch.tensor(rows)


def adversarial_transform(model: nn.Module, *, eps: float, steps: int = 3, alpha: float | None = None,
                          norm: str = "linf", random_start: bool = True,
                          generator: torch.Generator | None = None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A ``transform(images, labels)`` for :func:`training.fit` that replaces each mini-batch by its PGD adversarials.

    Training on them is Madry et al.'s adversarial training: minimize the loss at the worst point of the budget.
    The attack runs in eval mode (every module's mode is restored before the training step).

    Args:
        model: The model being trained (the attack always uses its current weights).
        eps, steps, alpha, norm, random_start, generator: As in :func:`adversarial.pgd`; ``alpha`` defaults to
            ``2.5 * eps / steps``, ``random_start`` to True (without it a few steps find weaker points).

    Returns:
        A function ``(images, labels) -> adversarial images``, images (B, C, H, W) in [0, 1].
    Reference: Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018.
    Example:
        >>> fit(model, images, labels, steps=300, transform=adversarial_transform(model, eps=0.1))
    """
    check_model(model)
    eps, steps = check_float(eps, "eps", minimum=0.0, strict_minimum=True), check_int(steps, "steps")
    alpha = 2.5 * eps / steps if alpha is None else check_float(alpha, "alpha", minimum=0.0, strict_minimum=True)
    norm, random_start = check_choice(norm, "norm", NORMS), check_bool(random_start, "random_start")
    generator = check_generator(generator)

    def transform(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return pgd(model, images, labels, eps=eps, alpha=alpha, steps=steps, norm=norm, random_start=random_start,
                   generator=generator)

    return transform
