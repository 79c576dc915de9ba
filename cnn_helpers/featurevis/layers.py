"""Looking at a network's layers directly: first-layer filters, activation maps, maximally activating patches.

Used by notebook 04 (feature visualization). Activations are read with the course's one layer recorder,
:func:`cnn_helpers.core.hooks.record`.

The first layer's filters act on RGB pixels, so they can be shown as small pictures, and
:func:`filter_statistics` measures what the pictures suggest (edge and colour detectors). A deeper
filter has hundreds of input channels and cannot be shown that way; its *activation map* on a photo
(:func:`activations`) and the photo patches that excite it most (:func:`top_patches`) can.

Reference: Krizhevsky et al., "ImageNet Classification with Deep CNNs", NeurIPS 2012 (first-layer filters);
Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014 (top patches).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnn_helpers.core.budget import check_pass_memory
from cnn_helpers.core.checks import (check_finite, check_float, check_images, check_int, check_layer, check_layers,
                                     check_model)
from cnn_helpers.core.hooks import record
from cnn_helpers.core.state import evaluating, model_channels

__all__ = ["activations", "first_conv", "first_layer_filters", "filter_images", "filter_statistics",
           "orientation_selectivity", "edge_strength", "colourfulness", "response_correlation", "top_patches"]


def activations(model: nn.Module, images: torch.Tensor, layers: str | Sequence[str]) -> dict[str, torch.Tensor]:
    """The outputs of ``layers`` for ``images``, in eval mode, without gradients; the pass stops after the last.

    Args:
        images: (N, 3, H, W) in [0, 1] (N, C, H, W for a model whose first convolution takes C channels).
        layers: A layer name or a list of them (``model.named_modules()``).

    Returns:
        ``{layer: tensor}``, e.g. (N, C, h, w) feature maps, detached, on the images' device.

    Example:
        >>> maps = activations(model, images, pre.info.stages)
    """
    check_model(model)
    check_images(images, model=model, channels=model_channels(model) or 3)
    names = check_layers(model, layers)
    check_pass_memory(model, images, f"the activations of {len(images)} images of {tuple(images.shape[-2:])} px",
                      backward=False, hint="use fewer or smaller images")
    with evaluating(model), torch.no_grad(), record(model, names, stop=True) as rec:
        rec(images)
        return rec.outputs()


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The first ``nn.Conv2d`` that takes 3 (RGB) input channels, in the order of ``model.named_modules()``."""
    check_model(model)
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3 and module.groups == 1:
            return name, module
    raise ValueError(f"model ({type(model).__name__}) has no nn.Conv2d with 3 input channels: no filters to show as "
                     "pictures")


def first_layer_filters(model: nn.Module) -> torch.Tensor:
    """The first convolution's weights: (C_out, 3, k, k), detached copies (on the model's device)."""
    return first_conv(model)[1].weight.detach().clone()


def _check_filters(filters: object, name: str = "filters", channels: int = 3) -> torch.Tensor:
    """(C, channels, kh, kw) finite real weights (on any device), detached."""
    check_finite(filters, name, layout=f"(C, {channels}, k, k)")
    if filters.shape[1] != channels:
        raise ValueError(f"{name} must have shape (C, {channels}, k, k), got {tuple(filters.shape)}")
    return filters.detach()


def filter_images(filters: torch.Tensor) -> torch.Tensor:
    """Filters (C, 3, k, k) -> pictures in [0, 1]: 0 is grey, each filter scaled by its own largest |weight|."""
    filters = _check_filters(filters)
    peak = filters.detach().abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    return (0.5 + 0.5 * filters.detach() / peak).clamp(0, 1)


def filter_statistics(filters: torch.Tensor, *, threshold: float = 0.8) -> dict[str, torch.Tensor]:
    """How much each RGB filter is "one spatial pattern in one colour", and which kind of detector it is.

    Each filter, as a 3 x k^2 matrix (colour x position), is split by its SVD into colour directions times
    spatial patterns. ``rank1`` is the share of its energy in the first pair (1: a single pattern in a
    single colour mix). An **edge detector** has ``rank1 >= threshold``, a colour mix with all three weights
    of one sign (brightness) and a spatial pattern with almost no mean (< 20 % of its energy): it answers
    to changes of brightness, not to brightness. A **colour detector** has ``rank1 >= threshold`` and
    weights of both signs across the colours (e.g. green minus red): it answers to colour.
    Dead filters (norm below 1e-3 of the largest) are left out.

    Args:
        filters: (C, 3, k, k) first-layer weights. threshold: The ``rank1`` needed. Default: 0.8.

    Returns:
        Per live filter, 1-D tensors: ``rank1``, ``edge`` and ``colour`` (bool), ``colour_mix`` (C', 3),
        ``pattern`` (C', k, k); and ``alive`` (C,) bool over all filters.
    """
    weights = _check_filters(filters).cpu().double()
    threshold = check_float(threshold, "threshold", minimum=0.0, strict_minimum=True, maximum=1.0)  # (MPS has no float64)
    norms = weights.flatten(1).norm(dim=1)
    alive = norms > 1e-3 * norms.max()
    live = weights[alive]
    kh, kw = live.shape[-2:]
    u, s, vh = torch.linalg.svd(live.reshape(len(live), 3, -1), full_matrices=False)
    rank1 = s[:, 0] ** 2 / (s ** 2).sum(dim=1)
    mix, pattern = u[:, :, 0], vh[:, 0]
    one_sign = (mix > 0).all(dim=1) | (mix < 0).all(dim=1)
    mean_share = pattern.mean(dim=1) ** 2 * pattern.shape[1]  # share of the pattern's energy in its mean
    strong = rank1 >= threshold
    sign = torch.where(pattern.sum(dim=1, keepdim=True) < 0, -1.0, 1.0).double()  # SVD signs are arbitrary
    return {"rank1": rank1.float(), "edge": strong & one_sign & (mean_share < 0.2), "colour": strong & ~one_sign,
            "colour_mix": (mix * sign).float(), "pattern": (pattern * sign).reshape(-1, kh, kw).float(), "alive": alive}


def orientation_selectivity(filters: torch.Tensor, *, angles: int = 12,
                            periods: Sequence[float] = (3, 4, 6, 8)) -> tuple[torch.Tensor, torch.Tensor]:
    """How much each filter prefers one orientation: its response to grey sine gratings (Hubel & Wiesel's test).

    Each filter (summed over its input channels: a grey grating has R = G = B) is applied to gratings of ``angles``
    orientations in [0, 180) degrees and each period; at its best period, the response power r(theta) gives the
    orientation selectivity index ``|sum r(theta) exp(2i theta)| / sum r(theta)``: 0 for a filter that answers all
    orientations alike (a blob, a centre-surround), near 1 for an oriented edge or bar detector with large kernels.

    Args:
        filters: (C, C_in, k, k) weights. angles: Orientations tested (>= 4). Default: 12.
        periods: Grating periods in pixels (each >= 2). Default: (3, 4, 6, 8).

    Returns:
        ``(selectivity, preferred)``: (C,) indices in [0, 1] (0 for an all-zero filter) and (C,) preferred
        orientations in degrees, [0, 180) (0: the grating varies along x, i.e. vertical stripes).
    """
    check_finite(filters, "filters", layout="(C, C_in, k, k)")
    angles = check_int(angles, "angles", minimum=4, maximum=360)
    if isinstance(periods, (str, bytes)) or not isinstance(periods, Sequence) or not 1 <= len(periods) <= 64:
        raise TypeError(f"periods must be a sequence of 1 to 64 periods in pixels, got {periods!r}")
    periods = [check_float(p, "periods", minimum=2.0, maximum=1e4) for p in periods]
    weights = filters.detach().sum(dim=1, keepdim=True).double().cpu()  # (C, 1, k, k); MPS has no float64
    size = 2 * max(weights.shape[-2:]) + 2 * round(max(periods))  # a few periods and kernels wide, valid positions only
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                          indexing="ij")
    theta = torch.arange(angles, dtype=torch.float64) * math.pi / angles
    phase = x * theta.cos().view(-1, 1, 1) + y * theta.sin().view(-1, 1, 1)  # (angles, size, size)
    gratings = torch.cat([torch.cos(2 * math.pi * phase / p) for p in periods])[:, None]
    power = F.conv2d(gratings, weights).pow(2).mean(dim=(2, 3)).view(len(periods), angles, -1)  # (P, A, C)
    tuning = power.gather(0, power.sum(dim=1).argmax(dim=0).view(1, 1, -1).expand(1, angles, -1))[0].T  # (C, A)
    vector = (tuning * torch.exp(2j * theta)).sum(dim=1)
    selectivity = vector.abs() / tuning.sum(dim=1).clamp_min(1e-300)
    preferred = (torch.angle(vector) / 2 % math.pi) * 180 / math.pi
    return selectivity.float().to(filters.device), preferred.float().to(filters.device)


def edge_strength(images: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the images' luminance (ITU-R 601 weights): (N, 1, H - 2, W - 2)."""
    check_images(images)
    if min(images.shape[-2:]) < 3:
        raise ValueError(f"images must be at least 3 x 3 pixels for the Sobel filter, got {tuple(images.shape)}")
    images = images.detach()
    luminance = (images * images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    sobel = images.new_tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
    kernels = torch.stack([sobel, sobel.T])[:, None]
    return F.conv2d(luminance, kernels).pow(2).sum(dim=1, keepdim=True).sqrt()


def _first_conv_input(model: nn.Module, images: torch.Tensor) -> tuple[nn.Conv2d, torch.Tensor]:
    """The first convolution and what it receives for ``images`` (e.g. normalized pixels)."""
    name, conv = first_conv(model)
    with evaluating(model), torch.no_grad(), record(model, [name], inputs=True, stop=True) as rec:
        rec(images)
        return conv, rec[name].detach()


def colourfulness(images: torch.Tensor) -> torch.Tensor:
    """How far each pixel's colour is from grey: the standard deviation over R, G, B, (N, 1, H, W)."""
    check_images(images)
    return images.detach().std(dim=1, unbiased=False, keepdim=True)


def response_correlation(model: nn.Module, images: torch.Tensor, reference: torch.Tensor,
                         filters: torch.Tensor | None = None) -> torch.Tensor:
    """Per first-layer filter: Pearson correlation between its absolute response and a ``reference`` map.

    The filters are applied to exactly what the model's first convolution receives (after its input
    normalization), with its stride; ``reference`` (e.g. :func:`edge_strength` or :func:`colourfulness` of
    the images) is averaged down to the response's size. With edge strength, an edge detector scores
    high and a filter that answers to brightness or colour near 0.

    Args:
        images: (N, 3, H, W) in [0, 1]. reference: (N, 1, h, w) map of what the filter should detect.
        filters: (C, 3, k, k) to test instead of the model's own (e.g. a random initialization).
            Default: the first convolution's weights.

    Returns:
        (C,) correlations in [-1, 1] (0 for a filter whose response is constant).
    """
    check_model(model)
    check_images(images, model=model)
    conv, inputs = _first_conv_input(model, images)
    weights = conv.weight.detach() if filters is None else _check_filters(filters, channels=conv.in_channels)
    if weights.shape[1:] != conv.weight.shape[1:]:
        raise ValueError(f"filters must have shape (C, {', '.join(map(str, conv.weight.shape[1:]))}), "
                         f"got {tuple(weights.shape)}")
    check_finite(reference, "reference", layout=f"({images.shape[0]}, 1, h, w)")
    if reference.shape[:2] != (images.shape[0], 1):
        raise ValueError(f"reference must have shape ({images.shape[0]}, 1, h, w), got {tuple(reference.shape)}")
    response = F.conv2d(inputs, weights.to(inputs), stride=conv.stride, dilation=conv.dilation).abs()
    target = F.adaptive_avg_pool2d(reference.detach().to(response), response.shape[-2:])
    a = response.transpose(0, 1).flatten(1)
    a = a - a.mean(dim=1, keepdim=True)
    b = target.flatten() - target.mean()
    return (a @ b) / (a.norm(dim=1) * b.norm()).clamp_min(1e-12)


def top_patches(model: nn.Module, images: torch.Tensor, layer: str, channel: int, *, k: int = 6,
                patch: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` image patches that excite one channel of ``layer`` most (Zeiler & Fergus).

    Map cells are taken strongest first; a cell whose patch would overlap an already chosen patch of the
    same image by more than half its side in both directions is skipped, so the patches show k different places.

    Args:
        images: (N, 3, H, W) in [0, 1], the pool to search. layer: Layer name. channel: Channel index.
        k: How many patches. Default: 6.
        patch: Side of each square patch in pixels. Default: None = 3 x the layer's stride (its pixels per
            map cell), at least 16 and at most the image size.

    Returns:
        ``(patches, values)``: (k', 3, patch, patch) crops centred on the chosen cells, strongest first, and their
        activations (k',); k' < k only when the pool has fewer separate places.

    Example:
        >>> patches, values = top_patches(model, photos, pre.info.stages[2], 5)
    """
    check_model(model)
    check_layer(model, layer)
    maps = activations(model, images, layer)[layer]
    if maps.ndim != 4:
        raise ValueError(f"layer {layer!r} gives {tuple(maps.shape)}, not (N, C, h, w) feature maps")
    channel = check_int(channel, "channel", minimum=0, maximum=maps.shape[1] - 1)
    k = check_int(k, "k", maximum=maps[:, channel].numel())
    stride = images.shape[-1] / maps.shape[-1]
    height, width = images.shape[-2:]
    size = check_int(patch if patch is not None else min(min(height, width), max(16, round(3 * stride))), "patch",
                     maximum=min(height, width))
    values, order = maps[:, channel].flatten().sort(descending=True, stable=True)
    h, w = maps.shape[-2:]
    chosen: list[tuple[int, int, int]] = []
    kept: list[int] = []
    for rank, index in enumerate(order.tolist()):
        n, y, x = index // (h * w), index // w % h, index % w
        top = min(max(round((y + 0.5) * stride) - size // 2, 0), height - size)
        left = min(max(round((x + 0.5) * stride) - size // 2, 0), width - size)
        if any(m == n and abs(t - top) < size / 2 and abs(l - left) < size / 2 for m, t, l in chosen):
            continue
        chosen.append((n, top, left))
        kept.append(rank)
        if len(chosen) == k:
            break
    crops = [images[n, :, top:top + size, left:left + size] for n, top, left in chosen]
    return torch.stack(crops).detach(), values[kept].detach()
