"""How good is an attribution map? Deletion/insertion curves, rank correlation, weight randomization.

Used by notebook 03 (attribution: sanity check and quantitative comparison).

* Deletion: remove the pixels a map ranks highest first; a good map makes the class probability
  fall fast (small area under the curve). Insertion: start from a blurred image and put the top
  pixels back; a good map makes it rise fast (large area). (Petsiuk et al., RISE, BMVC 2018.)
* Sanity check: randomize the weights from the top layer down; a map that explains the *model*
  must change (low rank correlation with the original map). (Adebayo et al., NeurIPS 2018.)
"""

from __future__ import annotations

import copy
from typing import Iterator, Sequence

import torch
from torch import nn

from cnn_helpers.core.budget import batch_size_for, check_cost
from cnn_helpers.core.checks import (Target, check_baseline, check_float, check_generator, check_images, check_int,
                                     check_layers, check_logits, check_model, check_target, gather)
from cnn_helpers.core.ops import gaussian_blur
from cnn_helpers.core.state import evaluating

__all__ = ["deletion_curve", "insertion_curve", "area_under_curve", "insertion_start", "spearman", "randomize_parameters",
           "cascading_randomization"]


def insertion_start(images: torch.Tensor, *, sigma: float = 5.0) -> torch.Tensor:
    """The image insertion starts from: a Gaussian blur (kernel 4 sigma + 1, at most 2 min(H, W) - 1). (N, 3, H, W) -> same."""
    check_images(images)
    sigma = check_float(sigma, "sigma", minimum=0.0, strict_minimum=True)
    size = min(2 * int(2 * sigma) + 1, 2 * min(images.shape[-2:]) - 1)  # reflection padding must fit the image
    return gaussian_blur(images.detach(), sigma, radius=size // 2)


def _curve(model: nn.Module, start: torch.Tensor, end: torch.Tensor, target: Target, heatmap: torch.Tensor,
           steps: int, batch_size: int | None) -> torch.Tensor:
    """Probabilities of ``target`` while the top-ranked pixels change from ``start`` to ``end``."""
    n, _, height, width = start.shape
    if not isinstance(heatmap, torch.Tensor) or heatmap.shape != (n, height, width):
        shape = tuple(heatmap.shape) if isinstance(heatmap, torch.Tensor) else type(heatmap).__name__
        raise ValueError(f"heatmap must have the images' shape (N, H, W) = {(n, height, width)}, got {shape}")
    if not heatmap.is_floating_point() or not torch.isfinite(heatmap).all():
        raise ValueError("heatmap must hold finite floats (NaN has no rank)")
    steps = check_int(steps, "steps")
    batch_size = None if batch_size is None else check_int(batch_size, "batch_size")
    labels = check_target(target, n, start.device)
    check_cost(model, start, (steps + 1) * n, f"a deletion/insertion curve with steps={steps}", hint="use fewer steps")
    order = heatmap.detach().flatten(1).to(start.device).argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(height * width, device=start.device).expand(n, -1))
    rank = rank.view(n, 1, height, width)
    counts = [round(k * height * width / steps) for k in range(steps + 1)]
    chunk = max(1, (batch_size or batch_size_for(start, 16)) // n)
    probs = []
    with evaluating(model), torch.inference_mode():
        for i in range(0, len(counts), chunk):
            batch = torch.cat([torch.where(rank < c, end, start) for c in counts[i:i + chunk]])
            logits = check_logits(model(batch), len(batch))
            probs.append(gather(logits.softmax(dim=1), labels.repeat(len(counts[i:i + chunk]))).view(-1, n))
    return torch.cat(probs).T.contiguous()


def _fill(images: torch.Tensor, baseline: float | torch.Tensor | str) -> torch.Tensor:
    if isinstance(baseline, str):
        if baseline != "blur":
            raise ValueError(f"baseline must be a float, a tensor or 'blur', got {baseline!r}")
        return insertion_start(images)
    return check_baseline(baseline, images)


def deletion_curve(model: nn.Module, images: torch.Tensor, target: Target, heatmap: torch.Tensor, *, steps: int = 20,
                   baseline: float | torch.Tensor | str = 0.0, batch_size: int | None = None) -> torch.Tensor:
    """Class probability as the pixels a heatmap ranks highest are replaced by ``baseline``, most important first.

    Args:
        images: (N, 3, H, W) in [0, 1]. target: Class index, int or (N,). heatmap: (N, H, W), higher = more important.
        steps: The curve has steps + 1 points, from 0 to all pixels removed. Default: 20.
        baseline: Float, tensor broadcastable to the images, or ``"blur"``. Default: 0.0 (black).
        batch_size: Images per forward pass. Default: None = about 16 images of 224 px.

    Returns:
        (N, steps + 1) softmax probabilities of ``target``. Lower area = better map.
    Reference: Petsiuk et al., "RISE", BMVC 2018. Example: ``auc = area_under_curve(deletion_curve(m, x, 285, heat))``
    """
    check_model(model)
    check_images(images, model=model)
    return _curve(model, images, _fill(images, baseline), target, heatmap, steps, batch_size)


def insertion_curve(model: nn.Module, images: torch.Tensor, target: Target, heatmap: torch.Tensor, *, steps: int = 20,
                    baseline: float | torch.Tensor | str = "blur", batch_size: int | None = None) -> torch.Tensor:
    """Class probability as the pixels a heatmap ranks highest are put back into ``baseline``, most important first.

    Args, Returns: as :func:`deletion_curve` (default baseline ``"blur"``, sigma 5 px). Higher area = better map.
    Reference: Petsiuk et al., "RISE", BMVC 2018. Example: ``auc = area_under_curve(insertion_curve(m, x, 285, heat))``
    """
    check_model(model)
    check_images(images, model=model)
    return _curve(model, _fill(images, baseline), images, target, heatmap, steps, batch_size)


def area_under_curve(curve: torch.Tensor) -> torch.Tensor:
    """Trapezoid area of (N, K) curves sampled evenly on [0, 1] -> (N,). A constant 1 gives 1."""
    if not isinstance(curve, torch.Tensor) or curve.ndim != 2 or curve.shape[1] < 2:
        raise ValueError(f"curve must be (N, K) with K >= 2 points, got {getattr(curve, 'shape', type(curve).__name__)}")
    if not torch.isfinite(curve).all():
        raise ValueError("curve holds NaN or infinite values")
    return torch.trapezoid(curve.detach().float(), dx=1.0 / (curve.shape[1] - 1), dim=1)


def _ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 0..n-1 of a 1-D tensor, ties sharing their average rank (as scipy's rankdata)."""
    unique, inverse, counts = torch.unique(values, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    return ((ends - counts + ends - 1) / 2)[inverse]


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation between maps, per image: (N, ...) and (N, ...) -> (N,) in [-1, 1].

    Ties share their average rank (same as ``scipy.stats.spearmanr``); a constant map gives NaN.
    Example: ``rho = spearman(saliency_before, saliency_after)``
    """
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"a and b must be tensors of the same shape (N, ...), got {getattr(a, 'shape', a)} and {getattr(b, 'shape', b)}")
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("a and b must hold finite values (NaN has no rank)")
    result = []
    for x, y in zip(a.detach().flatten(1).cpu(), b.detach().flatten(1).cpu()):
        rx, ry = _ranks(x), _ranks(y)
        rx, ry = rx - rx.mean(), ry - ry.mean()
        result.append((rx * ry).sum() / (rx.norm() * ry.norm()))
    return torch.stack(result).float()


@torch.no_grad()
def randomize_parameters(module: nn.Module, *, generator: torch.Generator | None = None) -> None:
    """Replace every parameter of ``module`` (in place) by Gaussian noise with that tensor's own mean and std.

    Keeps each layer's scale (batch-norm scales stay positive on average, so the network stays alive), destroys
    what it learned (std 0.01 where a tensor is constant). Buffers (batch-norm statistics) stay. Example: ``randomize_parameters(copy.deepcopy(model).net._fc)``
    """
    check_model(module, "module")
    generator = check_generator(generator)
    for param in module.parameters():
        mean = param.float().mean().item()
        std = param.float().std().item() if param.numel() > 1 else 0.0
        std = std if std > 0 else 0.01
        noise = torch.randn(param.shape, generator=generator, device=generator.device if generator else param.device)
        param.copy_(noise * std + mean)


def cascading_randomization(model: nn.Module, layers: Sequence[str], *,
                            generator: torch.Generator | None = None) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(layer, randomized model)`` after randomizing each layer in turn, top layer first (cumulative).

    Args:
        layers: Submodule names, in the order to randomize (usually output side first).
        generator: For the noise. Default: torch's global generator.

    Returns:
        An iterator over (name, model); the model is ONE deep copy, more randomized at each step (``model`` is untouched).
        Bad arguments raise at the call, not at the first step.
    Reference: Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018.
    """
    check_model(model)
    return _randomize_in_turn(model, check_layers(model, layers), check_generator(generator))


def _randomize_in_turn(model: nn.Module, layers: list[str], generator: torch.Generator | None) -> Iterator[tuple[str, nn.Module]]:
    copied = copy.deepcopy(model)
    modules = dict(copied.named_modules())
    for name in layers:
        randomize_parameters(modules[name], generator=generator)
        yield name, copied
