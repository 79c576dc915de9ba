"""Attribution maps: which pixels does a prediction depend on? Occlusion and gradient methods.

Used by notebook 03 (attribution); measured against Captum in ``bench/bench_attribution.py``.

Every function takes ``model, images, target, *, options``: any ``nn.Module`` that maps images
(N, 3, H, W) in [0, 1] to logits (N, C); ``target`` an int or an (N,) integer tensor. The model is
evaluated in eval mode (batch norm on running statistics, no dropout) and left exactly as found:
each module's train/eval mode, every ``requires_grad``, every ``.grad`` and the hook lists (also
when an error is raised). Gradients come from ``torch.autograd.grad`` on a copy of the input.
Results are detached, on the input's device. Quality measures live in ``attribution_eval``.
"""

from __future__ import annotations

import warnings
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import occlusion
from .budget import check_cost, check_memory
from .checks import (Target, batch_size_for, check_baseline, check_bool, check_choice, check_float, check_generator,
                     check_images, check_int, check_layer, check_model, check_pair, check_target, evaluating, gather,
                     grad_enabled, input_gradients)

__all__ = ["occlusion_map", "saliency_map", "smoothgrad", "integrated_gradients", "guided_backprop", "grad_cam",
           "IG_METHODS"]
IG_METHODS = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")


_SCORES = {"logit": lambda logits: logits, "probability": lambda logits: logits.softmax(dim=1)}


def _forward_channels_last(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Forward a batch stored channels-last (about 1.5x faster convolutions on a CPU; same values).

    A model that reshapes with ``.view`` cannot take it; it then gets the usual layout.
    """
    try:
        return model(batch.contiguous(memory_format=torch.channels_last))
    except RuntimeError as err:
        if "view" not in str(err):
            raise
        return model(batch)


def _largest_activation(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The model's output on ``images`` and the largest number of elements any of its layers returns per image."""
    largest = [images[0].numel()]

    def record(_module: nn.Module, _inputs: object, out: object) -> None:
        if isinstance(out, torch.Tensor) and out.ndim > 0:
            largest.append(out.numel() // max(out.shape[0], 1))

    handles = [m.register_forward_hook(record) for m in model.modules() if not list(m.children())]
    try:
        return model(images.clone()), max(largest)
    finally:
        for handle in handles:
            handle.remove()


def _batched_drops(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, score, windows: list[tuple[int, int]],
                   window: tuple[int, int], fill: torch.Tensor, per_eval: int | None) -> torch.Tensor:
    """(W, N) score drops, ``per_eval`` windows per forward pass (each a batch of the N images)."""
    n, (wh, ww) = images.shape[0], window
    logits, largest = _largest_activation(model, images)
    reference = gather(score(logits), labels)
    if per_eval is None:  # keep every activation of a batch under the budget (CPU: no fresh pages per batch)
        budget = occlusion.TENSOR_BYTES.get(images.device.type, occlusion.OTHER_DEVICE_BYTES)
        per_eval = max(1, budget // (largest * images.element_size() * n))
    drops = []
    for start in range(0, len(windows), per_eval):
        chunk = windows[start:start + per_eval]
        batch = images.repeat(len(chunk), 1, 1, 1)
        for i, (y, x) in enumerate(chunk):
            batch[i * n:(i + 1) * n, :, y:y + wh, x:x + ww] = fill[:, :, y:y + wh, x:x + ww]
        scores = gather(score(_forward_channels_last(model, batch)), labels.repeat(len(chunk)))
        drops.append(reference - scores.view(len(chunk), n))
    return torch.cat(drops)


OCCLUSION_METHODS = ("auto", "incremental", "batched", "approximate")
APPROXIMATE = {"drill_down": 0.25}  # the approximate mode's tolerance: correlation with the exact map >= 0.95 (bench)
AUTO_MIN_GAIN = 1.3  # "auto" runs incrementally when that saves at least this factor of multiply-accumulates


def occlusion_map(model: nn.Module, images: torch.Tensor, target: Target, *, window: int | tuple[int, int],
                  stride: int | tuple[int, int], baseline: float | torch.Tensor = 0.0,
                  perturbations_per_eval: int | None = None, output: str = "logit", method: str = "auto") -> torch.Tensor:
    """Occlusion: how much the target score drops when a window of the image is replaced by ``baseline``.

    Args:
        images: (N, 3, H, W) in [0, 1]. target: Class index, int or (N,).
        window, stride: Window size and step in pixels, int or (height, width); stride <= window.
        baseline: The fill value, a float or a tensor broadcastable to (N, 3, H, W). Default: 0.0 (black).
        perturbations_per_eval: Windows per forward pass (each one a batch of N images). Default: None = as
            many as keep every activation of a batch under 24 MB on a CPU (512 MB on a GPU).
        output: The score whose drop is measured: ``"logit"`` (as Captum) or ``"probability"`` (the softmax,
            as Zeiler & Fergus plot it). Default: ``"logit"``.
        method: ``"batched"`` (whole occluded images), ``"incremental"`` (each layer recomputes only what the
            window changed: same map, :mod:`cnn_helpers.occlusion`), ``"approximate"`` (incremental, every second
            window first, the rest interpolated unless near large drops: a close map, faster still) or ``"auto"``
            (incremental where counting multiply-accumulates promises a saving).
            A model that cannot be traced falls back to ``"batched"`` with a notice. Default: ``"auto"``.

    Returns:
        (N, H, W): per pixel, the mean score drop over the windows covering it. Captum's ``Occlusion``
        with a (3, h, w) window returns (N, 3, H, W) with this same map in every channel.

    Reference: Zeiler & Fergus, ECCV 2014; incremental: Nakandala et al., SIGMOD 2019.
    Example:
        >>> heat = occlusion_map(model, images, 285, window=32, stride=16)
    """
    check_model(model)
    check_images(images, model=model)
    method = check_choice(method, "method", OCCLUSION_METHODS)
    _occlusion_budget(model, images, window, stride, perturbations_per_eval, method)
    (n, _, height, width), device = images.shape, images.device
    labels = check_target(target, n, device)
    rows, cols, (wh, ww) = occlusion.window_grid((height, width), window, stride)
    fill = check_baseline(baseline, images)
    windows = [(y, x) for y in rows for x in cols]
    per_eval = None if perturbations_per_eval is None else check_int(perturbations_per_eval, "perturbations_per_eval")
    score = _SCORES[check_choice(output, "output", tuple(_SCORES))]
    with evaluating(model), torch.inference_mode():
        drops = None
        if method != "batched":
            settings = APPROXIMATE if method == "approximate" else {}
            try:
                drops = occlusion.window_drops(model, images, labels, score, windows=windows, grid=(len(rows), len(cols)),
                                               window=(wh, ww), fill=fill, per_eval=per_eval, **settings,
                                               min_gain=AUTO_MIN_GAIN if method == "auto" else None)
            except occlusion.UnsupportedModel as err:
                warnings.warn(f"occlusion_map: cannot run {method} ({err}); using method='batched'", stacklevel=2)
        if drops is None:
            drops = _batched_drops(model, images, labels, score, windows, (wh, ww), fill, per_eval)
    return occlusion.accumulate(drops, windows, (height, width), (wh, ww))


def _occlusion_budget(model: nn.Module, images: torch.Tensor, window: object, stride: object, per_eval: object,
                      method: object) -> None:
    """Warn, or refuse with the estimate, before an occlusion run that would take hours or gigabytes.

    The estimate is for plain batches (known before the model is traced); the incremental methods need less
    (bench/results.md: 2-7x for exact maps, 3-15x approximate), which the message says.
    """
    (wh, ww), (sh, sw) = check_pair(window, "window"), check_pair(stride, "stride")
    n, height, width = images.shape[0], images.shape[-2], images.shape[-1]
    positions = (max(0, -(-(height - wh) // sh)) + 1) * (max(0, -(-(width - ww) // sw)) + 1)
    hint = "use a larger stride and window, or a smaller image"
    if method != "batched":
        hint = f"estimated for plain batches, method={method!r} may need a few times less; {hint}"
    check_cost(model, images, (positions + 1) * n, f"occlusion_map with window={window}, stride={stride}", hint=hint)
    if isinstance(per_eval, int) and not isinstance(per_eval, bool) and per_eval > 0:
        check_memory(min(per_eval, positions) * images.numel() * images.element_size(),
                     f"occlusion_map with perturbations_per_eval={per_eval}", hint="use fewer windows per forward pass")


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
    std = torch.full_like(images, stdev, device=generator.device if generator is not None else images.device)
    noisy = (images + torch.normal(0.0, std, generator=generator).to(images.device) for _ in range(samples))
    with evaluating(model):
        total = _gradient_sum(model, noisy, [1.0] * samples, labels, batch_size or batch_size_for(images, 16), torch.abs)
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
    alphas, sizes = _ig_weights(method, steps)
    difference = images.detach() - base
    path = (base + alpha * difference for alpha in alphas)
    with evaluating(model):
        total = _gradient_sum(model, path, sizes, labels, batch_size or batch_size_for(images, 16), lambda g: g)
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
            (e.g. ``"net._act_head"`` for EfficientNet-Lite0 wrapped by ``models``).
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
    module = check_layer(model, layer)
    relu, upsample = check_bool(relu, "relu"), check_bool(upsample, "upsample")
    labels = check_target(target, images.shape[0], images.device)
    seen: list[torch.Tensor] = []

    def keep(_module: nn.Module, _inputs: object, out: object) -> object:
        seen.append(out)  # the copy passed on protects it from a following in-place op (ReLU(inplace=True))
        return out.clone() if isinstance(out, torch.Tensor) else None

    handle = module.register_forward_hook(keep)
    try:
        with evaluating(model), grad_enabled():
            score = gather(model(images.clone().requires_grad_(True)), labels)
            if len(seen) != 1 or not isinstance(seen[0], torch.Tensor) or seen[0].ndim != 4:
                raise ValueError(f"layer {layer!r} must run once per forward and return (N, C, h, w); "
                                 f"ran {len(seen)} times" + (f", returned {type(seen[0]).__name__}" if seen else ""))
            (grads,) = torch.autograd.grad(score.sum(), seen[0])
    finally:
        handle.remove()
    cam = (grads.mean(dim=(2, 3), keepdim=True) * seen[0].detach()).sum(dim=1, keepdim=True)
    cam = F.relu(cam) if relu else cam
    if upsample:
        cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return cam[:, 0]
