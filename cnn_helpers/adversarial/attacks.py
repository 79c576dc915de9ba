"""Adversarial attacks: small changes to an image that make a classifier predict what we want.

Used by notebook 06 (adversarial attacks); measured against torchattacks 3.3.0 in
``bench/bench_adversarial.py``. Measures built on these attacks (accuracy vs eps, transfer between models,
adversarial training) live in :mod:`.evaluation`.

Every attack takes ``model, images, labels, *, options`` like torchattacks: images (N, C, H, W) in [0, 1]
(normalization lives inside the model, so ``eps`` is in pixel units: ``8 / 255`` is 8 grey levels), labels
an int or an (N,) integer tensor: the classes to move *away from*, or with ``targeted=True`` the classes
to move *to*. The model is evaluated in eval mode and left exactly as found (each module's mode, every
``requires_grad`` and ``.grad``, also on error); gradients come from ``torch.autograd.grad`` on a copy.
Results are detached, on the input's device, in [0, 1] and within the budget. Without a random start
FGSM, PGD (L-inf and L2, with ``fold=False``) and DeepFool give the same images as torchattacks' ``FGSM``,
``PGD``, ``PGDL2`` and ``DeepFool`` (``tests/test_adversarial_attacks.py``). PGD's default runs its steps after
the first on a batch-norm-folded copy of the model (:func:`cnn_helpers.core.fold.fold_batch_norm`): the same
function up to float rounding and faster; its images then differ from torchattacks' in some pixels (the sign of
near-zero gradients) and PGD amplifies that step by step, as another thread count does: the same predictions on
the unit tests' images, and on EfficientNet-Lite0 a borderline image may end on either side of its boundary.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from cnn_helpers.core.budget import check_cost, check_steps
from cnn_helpers.core.checks import (Target, check_bool, check_choice, check_class_indices, check_float,
                                     check_generator, check_images, check_int, check_logits, check_model, check_target)
from cnn_helpers.core.fold import TOLERANCE as FOLD_TOLERANCE
from cnn_helpers.core.fold import fold_batch_norm
from cnn_helpers.core.memory import check_memory
from cnn_helpers.core.state import evaluating, grad_enabled, model_channels

__all__ = ["fgsm", "pgd", "project", "deepfool", "NORMS", "LOSSES"]

NORMS = ("linf", "l2")
LOSSES = ("ce", "margin")  # what PGD climbs: cross-entropy (Madry et al.) or the logit margin (Carlini & Wagner)
_DIVISION_EPS = 1e-10  # torchattacks' PGDL2 adds this to the gradient norm before dividing


def _checked(model: nn.Module, images: object, labels: object) -> torch.Tensor:
    """Validate model and images; labels -> (N,) int64 on the images' device (range checked on first use)."""
    check_model(model)
    check_images(images, model=model, channels=model_channels(model))  # grayscale digits for a 1-channel net
    return check_target(labels, images.shape[0], images.device, name="labels")


def _loss(logits: torch.Tensor, labels: torch.Tensor, targeted: bool, loss: str = "ce") -> torch.Tensor:
    """The mean loss to climb: away from ``labels``, or towards them when targeted.

    ``"ce"``: cross-entropy (negated when targeted). ``"margin"``: the label's logit minus the largest other
    logit (Carlini & Wagner's f6 without the clamp), negated when untargeted: unlike cross-entropy it does not
    saturate once the label's probability is near 0 or 1, so its gradient keeps pointing at the boundary.
    """
    if loss == "ce":
        value = F.cross_entropy(logits, labels)
        return -value if targeted else value
    margin = _lead(logits, labels).mean()
    return margin if targeted else -margin


def _lead(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(N,): each label's logit minus the largest other logit (> 0: the label is the prediction)."""
    own = logits.gather(1, labels[:, None])[:, 0]
    return own - logits.scatter(1, labels[:, None], float("-inf")).amax(dim=1)


def _first_logits(logits: object, labels: torch.Tensor) -> torch.Tensor:
    """The first pass's logits, checked once per call: (N, classes >= 2), every label a class index."""
    logits = check_logits(logits, len(labels))
    check_class_indices(labels, logits.shape[1], "labels")
    return logits


def _gradient(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, targeted: bool,
              loss: str = "ce") -> tuple[torch.Tensor, torch.Tensor]:
    """(d loss / d images, the logits), on a copy (nothing is left in any ``.grad``); works inside ``no_grad``."""
    with grad_enabled():  # clones: normal tensors even when made in the caller's inference mode
        x = images.detach().clone().requires_grad_(True)
        logits = _first_logits(model(x), labels)
        (grad,) = torch.autograd.grad(_loss(logits, labels.clone(), targeted, loss), x)
    return grad, logits.detach()


def fgsm(model: nn.Module, images: torch.Tensor, labels: Target, *, eps: float, targeted: bool = False) -> torch.Tensor:
    """Fast Gradient Sign Method: one step of size ``eps`` along the sign of the loss gradient.

    Args:
        images: (N, C, H, W) in [0, 1]. labels: Int or (N,): true classes, or targets when ``targeted``.
        eps: L-inf budget in pixel units, >= 0 (``2 / 255`` = two grey levels of an 8-bit image).
        targeted: Step towards ``labels`` instead of away from them. Default: False.

    Returns:
        (N, C, H, W) adversarial images in [0, 1], ``|adv - images| <= eps`` everywhere.
    Reference: Goodfellow et al., "Explaining and Harnessing Adversarial Examples", ICLR 2015.
    Example:
        >>> adv = fgsm(model, images, labels, eps=2 / 255)
    """
    labels = _checked(model, images, labels)
    eps, targeted = check_float(eps, "eps", minimum=0.0), check_bool(targeted, "targeted")
    with evaluating(model):
        grad, _ = _gradient(model, images, labels, targeted)
    return torch.clamp(images.detach() + eps * grad.sign(), min=0, max=1)


def project(adv: torch.Tensor, images: torch.Tensor, *, eps: float, norm: str = "linf") -> torch.Tensor:
    """PGD's projection: the closest image to ``adv`` within ``eps`` of ``images`` (in ``norm``), clamped to [0, 1].

    L-inf clips every pixel's change to [-eps, eps]; L2 shrinks each image's change to length ``eps`` if longer.
    (The clamp to [0, 1] comes after, as in torchattacks, so the result is in the box and within the budget.)
    Example:
        >>> adv = project(adv + alpha * grad.sign(), images, eps=8 / 255)
    """
    eps, norm = check_float(eps, "eps", minimum=0.0), check_choice(norm, "norm", NORMS)
    check_images(images, channels=None)
    if not isinstance(adv, torch.Tensor) or not adv.is_floating_point():
        raise TypeError(f"adv must be a float tensor of the shape of images, got {type(adv).__name__}")
    if adv.shape != images.shape or adv.device != images.device:
        raise ValueError(f"adv must have the shape and device of images {tuple(images.shape)} on {images.device}, "
                         f"got {tuple(adv.shape)} on {adv.device}")
    if not torch.isfinite(adv).all():  # outside [0, 1] is fine: a step has just left the box
        raise ValueError("adv holds NaN or inf values")
    return _project(adv.detach(), images.detach(), eps, norm)


def _project(adv: torch.Tensor, images: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """:func:`project` without the checks (inside PGD's loop)."""
    delta = adv - images
    if norm == "linf":
        delta = torch.clamp(delta, min=-eps, max=eps)
    else:
        length = delta.flatten(1).norm(p=2, dim=1)
        factor = torch.where(length > eps, eps / length, torch.ones_like(length))  # 0/0 can't happen here
        delta = delta * factor.view(-1, *[1] * (delta.ndim - 1))
    return torch.clamp(images + delta, min=0, max=1)


def _random_start(images: torch.Tensor, eps: float, norm: str, generator: torch.Generator | None) -> torch.Tensor:
    """A uniform point of the L-inf box, or of the L2 ball (direction Gaussian, radius uniform as torchattacks)."""
    n = images.shape[0]
    if norm == "linf":
        delta = (torch.rand(images.shape, generator=generator) * 2 - 1) * eps
    else:
        delta = torch.randn(images.shape, generator=generator)
        radius = torch.rand(n, generator=generator) * eps / delta.flatten(1).norm(dim=1)
        delta = delta * radius.view(n, *[1] * (images.ndim - 1))
    return torch.clamp(images + delta.to(images.device, images.dtype), min=0, max=1)


def pgd(model: nn.Module, images: torch.Tensor, labels: Target, *, eps: float, alpha: float, steps: int,
        norm: str = "linf", targeted: bool = False, random_start: bool = True,
        generator: torch.Generator | None = None, early_stop: bool = False, loss: str = "ce",
        fold: bool = True) -> torch.Tensor:
    """Projected gradient descent: ``steps`` gradient steps of size ``alpha``, each projected back into the budget.

    Args:
        images: (N, C, H, W) in [0, 1]. labels: Int or (N,): true classes, or targets when ``targeted``.
        eps: Budget in pixel units, >= 0: per pixel (``"linf"``) or the length of each image's change (``"l2"``).
        alpha: Step size, > 0 (L-inf: ``alpha * sign(grad)``; L2: ``alpha * grad / |grad|``). steps: >= 0.
        norm: ``"linf"`` or ``"l2"``. Default: ``"linf"``. targeted: Towards ``labels``. Default: False.
        random_start: Start at a random point of the budget (Madry et al.); False gives BIM (Kurakin et al.).
            Default: True. generator: For the random start. Default: torch's global generator.
        early_stop: Leave an image alone once the attack has succeeded on it (checked before each step),
            as an attacker would; saves time. On the folded copy (``fold``) an image counts as fooled only where its
            lead exceeds what float rounding could change. Default: False (always ``steps`` steps, as torchattacks).
        loss: ``"ce"`` (cross-entropy, as torchattacks) or ``"margin"`` (label logit minus the best other one,
            Carlini & Wagner; does not saturate: a stronger test of a defence). Default: ``"ce"``.
        fold: After the first step (on ``model`` itself, which checks its output), run on a copy of ``model`` with
            each batch norm folded into its convolution (:func:`cnn_helpers.core.fold.fold_batch_norm`, found and
            checked on one image; ``model`` itself where it has hooks or nothing to fold): the same function up to
            float rounding, about a fifth less time per step on EfficientNet-Lite0. The rounding decides
            the sign of near-zero gradients, and PGD amplifies such differences step by step (as a different thread
            count does), so the images are not bit-identical to torchattacks'; ``False`` reproduces them exactly.
            Default: True.

    Returns:
        (N, C, H, W) adversarial images in [0, 1] within ``eps`` of ``images``.
    Reference: Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018.
    Example:
        >>> adv = pgd(model, images, labels, eps=2 / 255, alpha=0.5 / 255, steps=10)
    """
    labels = _checked(model, images, labels)
    eps, alpha = check_float(eps, "eps", minimum=0.0), check_float(alpha, "alpha", minimum=0.0, strict_minimum=True)
    steps, norm = check_int(steps, "steps", minimum=0), check_choice(norm, "norm", NORMS)
    targeted, random_start = check_bool(targeted, "targeted"), check_bool(random_start, "random_start")
    generator, early_stop = check_generator(generator), check_bool(early_stop, "early_stop")
    loss, fold = check_choice(loss, "loss", LOSSES), check_bool(fold, "fold")
    check_cost(model, images, steps * len(images), f"pgd with steps={steps}", backward=True, hint="fewer steps")
    check_steps(steps, f"pgd with steps={steps}", "fewer steps")  # a tiny model's compute estimate is ~0
    step = functools.partial(_pgd_step, eps=eps, alpha=alpha, norm=norm, targeted=targeted, loss=loss)
    with evaluating(model), grad_enabled():  # every tensor below is ours, a normal one even in inference mode
        images, labels = _own(images.detach()), _own(labels)
        adv = _random_start(images, eps, norm, generator) if random_start else images.clone()
        net = model  # the first step checks the model's output; then, with fold, the folded copy
        if not early_stop:
            for i in range(steps):
                adv = step(net, adv, images, labels, check=i == 0)[0]
                if i == 0 and fold and steps > 1:
                    net = fold_batch_norm(model, images[:1])
            return adv
        todo = torch.arange(len(images), device=images.device)  # the images not fooled yet
        for i in range(steps):
            moved, logits = step(net, adv[todo], images[todo], labels[todo], check=i == 0)
            going = (logits.argmax(1) == labels[todo]) != targeted  # untargeted: still the label; targeted: not yet
            if net is not model:  # the folded copy's verdict counts only where rounding cannot have decided it
                going |= ~_clear(logits, labels[todo], targeted)
            adv[todo[going]] = moved[going]
            todo = todo[going]
            if not len(todo):
                break
            if i == 0 and fold and steps > 1:
                net = fold_batch_norm(model, images[:1])
    return adv


def _clear(logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """(N,) bool: the attack's goal reached by more than the folded copy may differ from the model (twice
    ``fold_batch_norm``'s tolerance of each image's largest logit): untargeted, the best other class leads the
    label; targeted, the label leads the best other class."""
    lead = _lead(logits, labels)
    return (lead if targeted else -lead) > 2 * FOLD_TOLERANCE * logits.abs().amax(dim=1)


def _own(tensor: torch.Tensor) -> torch.Tensor:
    """A normal tensor: an inference-mode one is copied (autograd cannot save it), any other used as it is."""
    return tensor.clone() if tensor.is_inference() else tensor


def _pgd_step(model: nn.Module, adv: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, *, eps: float,
              alpha: float, norm: str, targeted: bool, loss: str, check: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One ascent step from ``adv`` (a tensor of ours, made a leaf here), projected; and the logits before it.

    As torchattacks' loop, without its copies: the gradient w.r.t. ``adv`` itself, one projection per step.
    """
    adv.requires_grad_(True)
    logits = model(adv)
    if check:  # the first step: output shape and label range (later steps have the same model and labels)
        _first_logits(logits, labels)
    (grad,) = torch.autograd.grad(_loss(logits, labels, targeted, loss), adv)
    if norm == "linf":
        direction = grad.sign()
    else:
        length = grad.flatten(1).norm(p=2, dim=1) + _DIVISION_EPS
        direction = grad / length.view(-1, *[1] * (grad.ndim - 1))
    return _project(adv.detach() + alpha * direction, images, eps, norm), logits.detach()


def _candidates(logits: torch.Tensor, labels: torch.Tensor, classes: int | None) -> torch.Tensor:
    """(N, K): each image's label first, then the other classes (all in index order, or the top ones by logit)."""
    n, total = logits.shape
    if classes is None or classes >= total:
        others = torch.arange(total, device=labels.device).expand(n, total)
        others = others[others != labels[:, None]].view(n, total - 1)
    else:
        masked = logits.detach().scatter(1, labels[:, None], float("-inf"))
        others = masked.topk(classes - 1, dim=1).indices
    return torch.cat([labels[:, None], others], dim=1)


def _deepfool_step(model: nn.Module, x: torch.Tensor, candidates: torch.Tensor,
                   overshoot: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One linearized step for each image: (still correct?, the next images)."""
    with grad_enabled():
        x, candidates = x.detach().clone().requires_grad_(True), candidates.clone()
        logits = model(x)
        correct = logits.argmax(1) == candidates[:, 0]
        scores = logits.gather(1, candidates)  # (N, K)
        grads = [torch.autograd.grad(scores[:, k].sum(), x, retain_graph=k + 1 < scores.shape[1])[0]
                 for k in range(scores.shape[1])]
    w = torch.stack(grads, dim=1)  # (N, K, C, H, W); images are independent in eval mode
    f_prime, w_prime = (scores[:, 1:] - scores[:, :1]).detach(), w[:, 1:] - w[:, :1]
    # distance to each linearized decision boundary; the nearest one is crossed
    distance = f_prime.abs() / w_prime.flatten(2).norm(p=2, dim=2).clamp_min(1e-12)
    nearest = distance.argmin(dim=1)
    index = torch.arange(len(x), device=x.device)
    w_hat, f_hat = w_prime[index, nearest], f_prime[index, nearest]
    sq_norm = torch.stack([w.norm(p=2) ** 2 for w in w_hat]).clamp_min(1e-24)  # per image, as torchattacks sums
    delta = f_hat.abs().view(-1, 1, 1, 1) * w_hat / sq_norm.view(-1, 1, 1, 1)
    return correct, torch.clamp(x.detach() + (1 + overshoot) * delta, min=0, max=1)


def deepfool(model: nn.Module, images: torch.Tensor, labels: Target, *, steps: int = 50, overshoot: float = 0.02,
             classes: int | None = 10) -> torch.Tensor:
    """DeepFool: the smallest L2 change that crosses the nearest decision boundary, found by linearizing.

    Args:
        images: (N, C, H, W) in [0, 1]. labels: Int or (N,): each image's class (usually the model's prediction);
            an image stops changing as soon as it is classified as anything else.
        steps: At most this many linearized steps. Default: 50. overshoot: Each step goes ``1 + overshoot``
            times the distance, to land beyond the boundary. Default: 0.02.
        classes: The label and the ``classes - 1`` classes with the highest clean logits are candidates, as in
            the authors' code for ImageNet; None = every class (as torchattacks). Default: 10.

    Returns:
        (N, C, H, W) images in [0, 1]: ``adv - images`` is a near-minimal perturbation (its size says how robust).
    Reference: Moosavi-Dezfooli et al., "DeepFool: a simple and accurate method to fool deep neural networks", CVPR 2016.
    Example:
        >>> adv = deepfool(model, images, model(images).argmax(1))
    """
    labels = _checked(model, images, labels)
    steps, overshoot = check_int(steps, "steps", minimum=0), check_float(overshoot, "overshoot", minimum=0.0)
    if classes is not None:
        classes = check_int(classes, "classes", minimum=2)
    adv = images.detach().clone()
    with evaluating(model):
        with torch.no_grad():
            logits = model(adv)
        _first_logits(logits, labels)
        candidates = _candidates(logits, labels, classes)
        k = candidates.shape[1]  # one backward pass per candidate class and step, all gradients held at once
        check_memory(k * images.numel() * images.element_size(), f"deepfool with {k} candidate classes",
                     "use fewer classes (classes=10) or fewer images per call")
        check_cost(model, images, steps * len(images) * k, f"deepfool with steps={steps}, {k} classes",
                   backward=True, hint="fewer steps or classes")
        check_steps(steps, f"deepfool with steps={steps}", "fewer steps")
        active = torch.ones(len(images), dtype=torch.bool, device=images.device)
        for _ in range(steps):
            if not active.any():
                break
            index = active.nonzero()[:, 0]
            correct, moved = _deepfool_step(model, adv[index], candidates[index], overshoot)
            adv[index[correct]] = moved[correct]
            active[index[~correct]] = False
    return adv
