"""Texture synthesis and style transfer with Gram matrices (Gatys et al.), on any CNN.

Used by notebook 05 (texture synthesis and style transfer). The optimizations that use these pieces are in
:mod:`.synthesis`, the quality measures in :mod:`.evaluation`.

A texture is described by statistics of a CNN's feature maps that do not depend on *where* a feature
occurs: the **Gram matrix** ``G = F Fᵀ / (H W)`` of each tapped layer (which channels fire together).
Texture synthesis optimizes an image from noise until its statistics match an exemplar's; style transfer
also keeps a content image's feature maps at a deeper layer.

Three changes make the recipe work on EfficientNet-Lite0 (whose ReLU6 features have large positive means,
so the plain Gram matrix is mostly ``μ μᵀ``): **centred** Gram matrices plus a separate term for the
channel means (``centred=True``), each layer's distance relative to its target's size; the image is
fed to the network **upsampled 2×** (``upsample=2``), because the stem's stride 2 leaves pixel-level
detail unconstrained (checkerboards); and the pixels themselves count as a layer (``pixels=True``: mean
colour and colour covariance), because the stem sees colour only weakly. ``centred=False, upsample=1,
pixels=False`` is the classic recipe.

Reference: Gatys, Ecker & Bethge, "Texture Synthesis Using CNNs" (NeurIPS 2015) and "Image Style
Transfer Using CNNs" (CVPR 2016).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cnn_helpers.core.budget import check_pass_memory
from cnn_helpers.core.checks import check_bool, check_finite, check_images, check_int, check_layers, check_model
from cnn_helpers.core.hooks import record
from cnn_helpers.core.memory import check_memory
from cnn_helpers.core.ops import relative_error, resize_to
from cnn_helpers.core.state import evaluating

__all__ = ["gram_matrix", "feature_maps", "style_targets", "style_maps", "style_loss", "content_loss", "Stats",
           "PIXELS"]

PIXELS = "pixels"  # the key of the image itself when it counts as a style "layer" (mean colour, colour covariance)
Stats = dict[str, tuple[torch.Tensor, torch.Tensor]]  # layer -> (Gram matrix (N, C, C), channel means (N, C))
# A forward pass to the style layers is estimated by core.budget.check_pass_memory (every layer's output counted on
# meta), counted as TAP_COPIES[graph] passes: without a graph the taps keep every style layer's map on top of the
# pass's live ones (peak RSS on EfficientNet-Lite0, 1536 px, no gradients: 41.7 values per input value, the estimate
# 25.0, so 2 passes); with the graph kept, every layer's output is already counted (measured 184 with the backward
# pass, the estimate 156: within core.budget's stated 0.8-1.4x).
TAP_COPIES = {False: 2, True: 1}


def gram_matrix(features: torch.Tensor, *, centred: bool = False) -> torch.Tensor:
    """Gram matrix of feature maps: which channels are active together, wherever they are.

    Args:
        features: (N, C, H, W) feature maps.
        centred: Subtract each channel's mean over positions first (a covariance matrix). Default: False.

    Returns:
        (N, C, C): ``G[n, i, j] = Σ_p F[n, i, p] F[n, j, p] / (H W)``.

    Reference: Gatys et al., NeurIPS 2015, eq. 2 (without the 1/(H W), which makes sizes comparable).
    Example:
        >>> gram_matrix(torch.ones(1, 2, 3, 3))   # [[[1., 1.], [1., 1.]]]
    """
    check_finite(features, "features")
    n, c = features.shape[:2]
    extra = features.numel() if check_bool(centred, "centred") else 0  # the centred copy
    check_memory((n * c * c + extra) * features.element_size(), f"gram_matrix of {n}x{c} channels",
                 "tap a layer with fewer channels")
    return _gram(features, centred)


def _gram(features: torch.Tensor, centred: bool) -> torch.Tensor:
    """:func:`gram_matrix` without the checks (inside the optimization loop: no synchronizing ``isfinite``)."""
    n, c, h, w = features.shape
    return _Gram.apply(features.reshape(n, c, h * w), centred)


class _Gram(torch.autograd.Function):
    """``F Fᵀ / P`` of (N, C, P) maps (centred: each row minus its mean) with a backward of one matrix product.

    Autograd's own backward of ``F @ F.transpose`` multiplies twice (once per factor) and, centred, also back through
    the mean; ``dF = (dG + dGᵀ) F / P`` is one product, and its rows already have mean zero when ``F``'s have (every
    row is a combination of ``F``'s rows), so the mean's backward adds nothing. The bulk of a style loop's loss.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, flat: torch.Tensor, centred: bool) -> torch.Tensor:
        if centred:
            flat = flat - flat.mean(dim=2, keepdim=True)
        ctx.save_for_backward(flat)
        return flat @ flat.transpose(1, 2) / flat.shape[2]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (flat,) = ctx.saved_tensors
        return (grad + grad.transpose(1, 2)) @ flat / flat.shape[2], None


def tap_layers(model: nn.Module, images: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
    """The first output of each named submodule, (N, C, H, W) each, attached to the autograd graph; the forward pass
    stops once all are seen. No argument checks: the building block of the style loops in this sub-package."""
    with record(model, layers, stop=True) as rec:
        rec(images)
        maps = rec.outputs()
    for name, f in maps.items():
        if f.ndim != 4:
            raise ValueError(f"layer {name!r} must output (N, C, H, W) feature maps during the forward pass, "
                             f"got {tuple(f.shape)}")
    return maps


def upsample_by(images: torch.Tensor, upsample: int) -> torch.Tensor:
    """The images enlarged ``upsample`` times (bilinear); the same tensor when ``upsample`` is 1."""
    if upsample == 1:
        return images
    return resize_to(images, (images.shape[-2] * upsample, images.shape[-1] * upsample), antialias=False)


def feature_maps(model: nn.Module, images: torch.Tensor, layers: list[str] | tuple[str, ...], *,
                 upsample: int = 1) -> dict[str, torch.Tensor]:
    """Feature maps of the named layers, ``{name: (N, C, h, w)}``, in eval mode; gradients flow back to ``images``.

    A building block of an optimization loop: the maps stay attached to the autograd graph (outside
    ``torch.no_grad()``), so a loss computed from them can be differentiated.

    Args:
        model: Takes (N, 3, H, W) images in [0, 1]. Run in eval mode (no dropout, batch-norm statistics
            fixed: the maps of a style do not depend on chance); every module's mode is restored afterwards.
        images: (N, 3, H, W) in [0, 1], in the model's dtype and on its device.
        layers: Submodule names (``pre.info.style_layers``). A module called twice gives its first output.
        upsample: Feed the images enlarged by this factor (bilinear). Default: 1.

    Example:
        >>> maps = feature_maps(pre.model, image, pre.info.style_layers)
    """
    return style_maps(model, images, layers, upsample=upsample, pixels=False)


def _statistics(maps: dict[str, torch.Tensor], centred: bool) -> Stats:
    return {name: (_gram(f, centred), f.mean(dim=(2, 3))) for name, f in maps.items()}


def style_loss(features: dict[str, torch.Tensor], targets: Stats, *, centred: bool = True) -> torch.Tensor:
    """Distance of feature statistics to the style's, averaged over layers: (N,).

    Args:
        features: ``{layer: (N, C, H, W)}`` of the image being optimized.
        targets: ``{layer: (Gram (1, C, C), means (1, C))}`` from :func:`style_targets` (same ``centred``).
        centred: Centred Gram matrices plus a term for the channel means; False: plain Gram matrices only.

    Returns:
        (N,): mean over layers of ``||G - G_s||² / ||G_s||²`` (+ the same for the means when centred).
    """
    centred = check_bool(centred, "centred")
    _check_maps(features, targets, "features")
    for name, target in targets.items():
        _check_stats(features[name], target, name)
    total = 0.0
    for name, (gram, mean) in targets.items():
        f = features[name]
        term = relative_error(_gram(f, centred), gram)
        if centred:
            term = term + relative_error(f.mean(dim=(2, 3)), mean)
        total = total + term
    return total / len(targets)


def content_loss(features: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
    """(N,): mean over layers of ``||F - F_c||² / ||F_c||²`` (feature maps of the same size)."""
    _check_maps(features, targets, "features")
    for name, target in targets.items():
        f = features[name]
        if (not isinstance(target, torch.Tensor) or target.shape[1:] != f.shape[1:]
                or target.shape[0] not in (1, f.shape[0])):
            raise ValueError(f"targets[{name!r}] must be the content's feature maps of shape {(1, *f.shape[1:])} "
                             f"(or one per image, {tuple(f.shape)}) like features[{name!r}], got {_shape(target)}")
    return sum(relative_error(features[name], target) for name, target in targets.items()) / len(targets)


def _check_maps(features: object, targets: object, name: str) -> None:
    """TypeError/ValueError unless ``features`` is a dict of tensors holding every layer of ``targets`` (no sync)."""
    if not isinstance(targets, dict) or not targets:
        raise TypeError(f"targets must be a non-empty dict layer -> target statistics, got {type(targets).__name__}")
    if not isinstance(features, dict) or not all(isinstance(v, torch.Tensor) for v in features.values()):
        raise TypeError(f"{name} must be a dict layer -> (N, C, H, W) tensor, got {type(features).__name__}")
    missing = [k for k in targets if k not in features]
    if missing:
        raise ValueError(f"{name} lack the layers {missing} of the targets (have {list(features)})")
    for layer in targets:
        f = features[layer]
        if f.ndim != 4 or f.numel() == 0 or not f.is_floating_point():
            raise ValueError(f"{name}[{layer!r}] must be non-empty float feature maps (N, C, H, W), got {_shape(f)}")


def _shape(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"shape {tuple(value.shape)}" + ("" if value.is_floating_point() else f" of dtype {value.dtype}")
    return type(value).__name__


def _check_stats(f: torch.Tensor, target: object, name: str) -> None:
    """ValueError/TypeError unless ``target`` is (Gram (1 or N, C, C), means (1 or N, C)) for the maps ``f`` (no sync)."""
    if not isinstance(target, tuple | list) or len(target) != 2:
        raise TypeError(f"targets[{name!r}] must be a pair (Gram matrix (1, C, C), channel means (1, C)) as "
                        f"style_targets returns, got {_shape(target) if isinstance(target, torch.Tensor) else target!r:.80}")
    n, c = f.shape[:2]
    gram, mean = target
    if (not isinstance(gram, torch.Tensor) or not isinstance(mean, torch.Tensor) or gram.ndim != 3
            or gram.shape[1:] != (c, c) or mean.shape[1:] != (c,) or gram.shape[0] not in (1, n)
            or mean.shape[0] != gram.shape[0]):
        raise ValueError(f"targets[{name!r}] must be a Gram matrix {(1, c, c)} and channel means {(1, c)} "
                         f"(or one per image) for features[{name!r}] of {c} channels, "
                         f"got {_shape(gram)} and {_shape(mean)}")


def check_forward_memory(model: nn.Module, images: torch.Tensor, upsample: int, graph: bool, what: str) -> None:
    """Warn or refuse (:func:`~cnn_helpers.core.budget.check_pass_memory`) before a forward pass of ``model`` over
    ``images`` upsampled, keeping the autograd graph (``graph``) or not (then the tapped maps count as a second pass,
    :data:`TAP_COPIES`)."""
    n, _, h, w = images.shape
    net_input = images.new_empty(1).expand(n * TAP_COPIES[graph], 3, h * upsample, w * upsample)  # a shape, no memory
    check_pass_memory(model, net_input, f"{what} on {n}x{h}x{w} px (upsample={upsample})", backward=graph,
                      hint="use a smaller image (resize_to) or upsample=1")


def check_map_sizes(maps: dict[str, torch.Tensor], images: torch.Tensor, name: str) -> None:
    """ValueError naming ``name`` and the size it needs when a layer's map is smaller than 2 x 2 (no statistics)."""
    for layer, f in maps.items():
        if min(f.shape[-2:]) < 2:
            need = math.ceil(2 * min(images.shape[-2:]) / min(f.shape[-2:]))
            raise ValueError(f"{name} of {images.shape[-2]}x{images.shape[-1]} px is too small for layer {layer!r} "
                             f"(its feature map is {f.shape[-2]}x{f.shape[-1]}); use at least {need} px")


def style_maps(model: nn.Module, images: torch.Tensor, layers: list[str] | tuple[str, ...], *, upsample: int = 1,
               pixels: bool = False) -> dict[str, torch.Tensor]:
    """:func:`feature_maps`, plus the images themselves as ``PIXELS`` when ``pixels`` (attached to the graph)."""
    check_model(model)
    check_images(images, model=model)
    layers = check_layers(model, layers)
    upsample = check_int(upsample, "upsample", maximum=4)
    check_bool(pixels, "pixels")
    check_forward_memory(model, images, upsample, torch.is_grad_enabled(), "feature_maps")
    with evaluating(model):
        return unchecked_style_maps(model, images, layers, upsample, pixels)


def unchecked_style_maps(model: nn.Module, images: torch.Tensor, layers: list[str], upsample: int,
                         pixels: bool) -> dict[str, torch.Tensor]:
    """:func:`style_maps` without the checks and the mode switch (inside the optimization loop)."""
    maps = tap_layers(model, upsample_by(images, upsample), layers)
    return {PIXELS: images, **maps} if pixels else maps


def style_targets(model: nn.Module, style: torch.Tensor, style_layers: list[str] | tuple[str, ...], *,
                  centred: bool = True, upsample: int = 2, pixels: bool = False) -> Stats:
    """The style image's statistics ``{layer: (Gram (1, C, C), channel means (1, C))}`` (no gradients).

    With ``pixels``, the image itself is a layer too (key ``PIXELS``): its mean colour and colour covariance.
    The model runs in eval mode (every module's mode restored afterwards).
    """
    check_model(model)
    check_images(style, name="style", model=model)
    style_layers = check_layers(model, style_layers, "style_layers")
    upsample = check_int(upsample, "upsample", maximum=4)
    centred, pixels = check_bool(centred, "centred"), check_bool(pixels, "pixels")
    check_forward_memory(model, style, upsample, False, "style_targets")
    style = style.detach().contiguous()  # channels-last memory gives the same statistics
    with evaluating(model), torch.no_grad():
        maps = tap_layers(model, upsample_by(style, upsample), style_layers)
        check_map_sizes(maps, style, "style")
        if pixels:
            maps = {PIXELS: style, **maps}
        return {k: (g.detach(), m.detach()) for k, (g, m) in _statistics(maps, centred).items()}
