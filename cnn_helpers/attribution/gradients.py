"""Gradient attribution maps: saliency, SmoothGrad, Integrated Gradients, guided backpropagation, Grad-CAM.

Used by notebook 03 (attribution); measured against Captum in ``bench/bench_attribution.py``. Occlusion, the
map that needs no gradient, is :mod:`cnn_helpers.attribution.occlusion`; quality measures are
:mod:`cnn_helpers.attribution.evaluation`.

Every function takes ``model, images, target, *, options``: any ``nn.Module`` that maps images
(N, 3, H, W) in [0, 1] to logits (N, C); ``target`` an int or an (N,) integer tensor. The model is
evaluated in eval mode (batch norm on running statistics, no dropout) and left exactly as found:
each module's train/eval mode, every ``requires_grad``, every ``.grad`` and the hook lists (also
when an error is raised). Gradients come from ``torch.autograd.grad`` on a copy of the input.
Results are detached, on the input's device.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnn_helpers.core.budget import batch_size_for, check_cost, check_pass_memory
from cnn_helpers.core.checks import (Target, check_baseline, check_bool, check_choice, check_float, check_generator,
                                     check_images, check_int, check_layer, check_model, check_target, gather)
from cnn_helpers.core.hooks import record
from cnn_helpers.core.ops import resize_to
from cnn_helpers.core.state import evaluating, grad_enabled

__all__ = ["saliency_map", "smoothgrad", "integrated_gradients", "guided_backprop", "grad_cam", "input_gradients",
           "IG_METHODS"]
IG_METHODS = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")


def input_gradients(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor, batch_size: int) -> torch.Tensor:
    """d model(x)[target] / dx for each row of ``inputs`` (any values), in chunks of ``batch_size``."""
    grads = []
    with grad_enabled():
        for chunk, labels in zip(inputs.split(batch_size), target.split(batch_size)):
            x = chunk.detach().clone().requires_grad_(True)  # clones: normal tensors even from inference mode
            score = gather(model(x), labels.clone())
            (grad,) = torch.autograd.grad(score.sum(), x)
            grads.append(grad)
    return torch.cat(grads)


def _gradient_sum(model: nn.Module, batches: Iterable[torch.Tensor], weights: Sequence[float], labels: torch.Tensor,
                  batch_size: int, transform: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``sum_k weights[k] * transform(d score / d batches[k])`` for a stream of (N, 3, H, W) batches.

    The batches are made one at a time and backpropagated in groups of at most ``batch_size`` images, so
    memory is bounded by ``batch_size`` (and N), never by the number of batches (steps, samples).
    """
    n, total, group, group_weights = labels.shape[0], None, [], []
    for k, (batch, weight) in enumerate(zip(batches, weights)):
        group.append(batch)
        group_weights.append(weight)
        if (len(group) + 1) * n <= batch_size and k + 1 < len(weights):
            continue  # room for one more batch in this backward pass
        grads = input_gradients(model, torch.cat(group), labels.repeat(len(group)), batch_size)
        scale = torch.tensor(group_weights, dtype=grads.dtype, device=grads.device).view(-1, 1, 1, 1, 1)
        part = (transform(grads.view(len(group), *batch.shape)) * scale).sum(dim=0)
        total = part if total is None else total + part
        group, group_weights = [], []
    return total


def _check_backward_memory(model: nn.Module, images: torch.Tensor, what: str) -> None:
    """The memory of a forward + backward pass over ``images``, warned or refused before the work."""
    check_pass_memory(model, images, f"{what} on {len(images)} images of {images.shape[-2]}x{images.shape[-1]} px",
                      hint="use smaller images")


def saliency_map(model: nn.Module, images: torch.Tensor, target: Target) -> torch.Tensor:
    """Saliency: the largest absolute gradient of the target score over the three colour channels.

    Args:
        images: (N, 3, H, W) in [0, 1]. target: Class index (of the logits), int or (N,).

    Returns:
        (N, H, W), non-negative: ``max_c |d score / d x_c|`` (Captum: ``Saliency(abs=True)`` then ``amax(1)``).

    Reference: Simonyan et al., "Deep Inside Convolutional Networks", ICLR 2014 workshop.
    Example:
        >>> heat = saliency_map(model, images, 285)
    """
    check_model(model)
    check_images(images, model=model)
    labels = check_target(target, images.shape[0], images.device)
    _check_backward_memory(model, images, "saliency_map")
    with evaluating(model):
        grads = input_gradients(model, images, labels, images.shape[0])
    return grads.abs().amax(dim=1)


def smoothgrad(model: nn.Module, images: torch.Tensor, target: Target, *, samples: int = 25, stdev: float = 0.15,
               generator: torch.Generator | None = None, batch_size: int | None = None) -> torch.Tensor:
    """SmoothGrad: the saliency map averaged over noisy copies of each image.

    Args:
        images: (N, 3, H, W) in [0, 1]. target: Class index, int or (N,).
        samples: Noisy copies per image. Default: 25. stdev: Noise standard deviation in pixel units
            (images span [0, 1], so this is the paper's noise level). Default: 0.15 (paper: 0.1-0.2).
        generator: For the noise, drawn as (N, 3, H, W) per sample. Default: torch's global one.
        batch_size: Images per backward pass; bounds the memory (noisy copies are made as needed). Default:
            None = about 16 images of 224 px.

    Returns:
        (N, H, W): ``max_c mean_s |gradient|``, i.e. Captum's ``NoiseTunnel(Saliency)`` (smoothgrad,
        ``nt_samples_batch_size=1``: the same noise) then ``amax(1)``.

    Reference: Smilkov et al., "SmoothGrad: removing noise by adding noise", 2017.
    Example:
        >>> heat = smoothgrad(model, images, 285, samples=25, generator=torch.Generator().manual_seed(0))
    """
    check_model(model)
    check_images(images, model=model)
    samples, stdev = check_int(samples, "samples"), check_float(stdev, "stdev", minimum=0.0)
    generator = check_generator(generator)
    batch_size = None if batch_size is None else check_int(batch_size, "batch_size")
    labels = check_target(target, images.shape[0], images.device)
    check_cost(model, images, samples * images.shape[0], f"smoothgrad with samples={samples}", backward=True,
               hint="use fewer samples or a smaller image")
    batch_size = batch_size or batch_size_for(images, 16)
    _check_backward_memory(model, images, "smoothgrad")  # at least one pass over the images (batch_size bounds the rest)
    std = torch.full_like(images, stdev, device=generator.device if generator is not None else images.device)
    noisy = (images + torch.normal(0.0, std, generator=generator).to(images.device) for _ in range(samples))
    with evaluating(model):
        total = _gradient_sum(model, noisy, [1.0] * samples, labels, batch_size, torch.abs)
    return (total / samples).amax(dim=1)


def _ig_weights(method: str, steps: int) -> tuple[list[float], list[float]]:
    """(alphas, step sizes) of the path integral, as Captum's ``approximation_methods`` defines them."""
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (0.5 * (1 + nodes)).tolist(), (0.5 * weights).tolist()
    if steps < 2:
        raise ValueError(f"steps must be >= 2 for {method}, got {steps}")
    sizes = [1 / steps] * steps
    if method == "riemann_trapezoid":
        sizes[0], sizes[-1] = sizes[0] / 2, sizes[-1] / 2
    start, end = {"riemann_trapezoid": (0, 1), "riemann_left": (0, 1 - 1 / steps),
                  "riemann_right": (1 / steps, 1), "riemann_middle": (1 / (2 * steps), 1 - 1 / (2 * steps))}[method]
    return torch.linspace(start, end, steps).tolist(), sizes


def integrated_gradients(model: nn.Module, images: torch.Tensor, target: Target, *, baseline: float | torch.Tensor = 0.0,
                         steps: int = 50, method: str = "gausslegendre", batch_size: int | None = None) -> torch.Tensor:
    """Integrated Gradients: (x - baseline) times the gradient averaged along the straight path to x.

    Args:
        images: (N, 3, H, W) in [0, 1]. target: Class index, int or (N,).
        baseline: The "absence" image, float or tensor broadcastable to (N, 3, H, W). Default: 0.0 (black).
        steps: Points on the path. Default: 50. method: One of ``IG_METHODS``. Default: ``"gausslegendre"``.
        batch_size: Images per backward pass; bounds the memory (path points are made as needed). Default:
            None = about 16 images of 224 px.

    Returns:
        (N, 3, H, W), signed; sums to about score(x) - score(baseline) (completeness). Equals Captum's
        ``IntegratedGradients`` with the same ``n_steps`` and ``method``.

    Reference: Sundararajan et al., "Axiomatic Attribution for Deep Networks", ICML 2017.
    Example:
        >>> attr = integrated_gradients(model, images, 285, steps=32)
    """
    check_model(model)
    check_images(images, model=model)
    method, steps = check_choice(method, "method", IG_METHODS), check_int(steps, "steps")
    batch_size = None if batch_size is None else check_int(batch_size, "batch_size")
    n = images.shape[0]
    labels = check_target(target, n, images.device)
    base = check_baseline(baseline, images)
    check_cost(model, images, steps * n, f"integrated_gradients with steps={steps}", backward=True,
               hint="use fewer steps or a smaller image")
    batch_size = batch_size or batch_size_for(images, 16)
    _check_backward_memory(model, images, "integrated_gradients")  # at least one pass over the images
    alphas, sizes = _ig_weights(method, steps)
    difference = images.detach() - base
    path = (base + alpha * difference for alpha in alphas)
    with evaluating(model):
        total = _gradient_sum(model, path, sizes, labels, batch_size, lambda g: g)
    return total * difference


class _PositiveGradient(torch.autograd.Function):
    """Identity forward; backward lets only positive gradients through (the guided-backprop rule)."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        return grad.clamp(min=0)


def guided_backprop(model: nn.Module, images: torch.Tensor, target: Target, *,
                    activations: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6)) -> torch.Tensor:
    """Guided backpropagation: the input gradient with negative gradients stopped at every activation.

    At each activation module the gradient is first clipped to >= 0, then passes that module's own
    backward: ReLU keeps it where the input was > 0; ReLU6 where the input was in (0, 6) (zero where it
    saturates, as its true derivative). On ReLU models this equals Captum's ``GuidedBackprop``, which
    only modifies ``nn.ReLU``. In-place activations are fine; functional ones (``F.relu``) cannot be hooked.

    Args:
        images: (N, 3, H, W) in [0, 1]. target: Class index, int or (N,).
        activations: Module types to modify. Default: ``(nn.ReLU, nn.ReLU6)``.

    Returns:
        (N, 3, H, W), signed. Reference: Springenberg et al., "Striving for Simplicity", ICLR 2015 workshop.
    Example:
        >>> attr = guided_backprop(model, images, 285)
    """
    check_model(model)
    check_images(images, model=model)
    labels = check_target(target, images.shape[0], images.device)
    _check_backward_memory(model, images, "guided_backprop")
    hooked = [m for m in model.modules() if isinstance(m, activations)]
    if not hooked:
        raise ValueError(f"guided_backprop: the model has no {', '.join(a.__name__ for a in activations)} modules "
                         "(functional activations such as F.relu cannot be modified)")
    handles = []
    try:
        for module in hooked:
            handles.append(module.register_forward_hook(lambda _m, _i, out: _PositiveGradient.apply(out)))
        with evaluating(model):
            return input_gradients(model, images, labels, images.shape[0])
    finally:
        for handle in handles:
            handle.remove()


def grad_cam(model: nn.Module, images: torch.Tensor, target: Target, *, layer: str, relu: bool = True,
             upsample: bool = True) -> torch.Tensor:
    """Grad-CAM: a layer's feature maps weighted by their spatially averaged gradients, summed over channels.

    Args:
        images: (N, 3, H, W) in [0, 1]. target: Class index, int or (N,).
        layer: Name of a submodule with (N, C, h, w) output, as in ``model.named_modules()``
            (e.g. ``"net._act_head"`` for EfficientNet-Lite0 wrapped by ``cnn_helpers.pretrained``).
        relu: Keep only positive evidence, as the paper does. Default: True.
        upsample: Resize to (H, W) bilinearly (align_corners=False). Default: True.

    Returns:
        (N, H, W), or (N, h, w) without ``upsample``. Equals Captum's ``LayerGradCam`` (relu_attributions=relu).

    Reference: Selvaraju et al., "Grad-CAM", ICCV 2017.
    Example:
        >>> heat = grad_cam(model, images, 285, layer="net._act_head")
    """
    check_model(model)
    check_images(images, model=model)
    check_layer(model, layer)
    relu, upsample = check_bool(relu, "relu"), check_bool(upsample, "upsample")
    labels = check_target(target, images.shape[0], images.device)
    _check_backward_memory(model, images, "grad_cam")
    with evaluating(model), grad_enabled(), record(model, [layer]) as rec:
        score = gather(rec(images.clone().requires_grad_(True)), labels)
        maps = rec[layer]
        if rec.calls[layer] != 1 or maps.ndim != 4:
            raise ValueError(f"layer {layer!r} must run once per forward and return (N, C, h, w); ran "
                             f"{rec.calls[layer]} times, returned shape {tuple(maps.shape)}")
        (grads,) = torch.autograd.grad(score.sum(), maps)
    cam = (grads.mean(dim=(2, 3), keepdim=True) * maps.detach()).sum(dim=1, keepdim=True)
    cam = F.relu(cam) if relu else cam
    if upsample:
        cam = resize_to(cam, images.shape[-2:], antialias=False)
    return cam[:, 0]
