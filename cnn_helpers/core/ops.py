"""Tensor operations that several topics share, each written once: resizing, Gaussian blur, relative error.

Used by :mod:`cnn_helpers.core.data` (photos), Grad-CAM and the insertion metric (notebook 03), feature
visualization (04: DeepDream's octaves, blurred gradients, feature inversion), style transfer (05: content
and style distances, upsampled inputs) and transfer learning (07: digits resized for ImageNet networks).
These are the building blocks behind checked public functions: they do not validate their arguments.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["resize_to", "gaussian_blur", "relative_error"]


def resize_to(images: torch.Tensor, size: tuple[int, int], *, antialias: bool = True) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, *size), bilinear (``align_corners=False``); differentiable.

    ``antialias`` low-pass filters first when shrinking (as PIL does), so that fine detail does not alias;
    enlarging is the same either way (up to float rounding).
    """
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    if images.is_floating_point() and images.dtype not in (torch.float32, torch.float64):
        # bfloat16/float16: torch's antialiased kernels (CPU) take float32 or float64 only; the result keeps the dtype
        return resize_to(images.float(), size, antialias=antialias).to(images.dtype)
    return F.interpolate(images, size=tuple(size), mode="bilinear", align_corners=False, antialias=antialias)


def _gaussian_kernel(sigma: float, radius: int) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return kernel / kernel.sum()


def gaussian_blur(images: torch.Tensor, sigma: float, *, radius: int | None = None) -> torch.Tensor:
    """Gaussian blur of each channel with standard deviation ``sigma`` pixels; same shape, differentiable.

    Args:
        images: (N, C, H, W). sigma: Standard deviation in pixels (0: unchanged).
        radius: Kernel half-width. Default: None = ceil(3 sigma), at least 1. Edges are reflected (replicated when
            the kernel is wider than the image).
    """
    if sigma == 0:
        return images
    radius = max(1, math.ceil(3 * sigma)) if radius is None else radius
    kernel = _gaussian_kernel(sigma, radius).to(images)
    channels = images.shape[1]
    mode = "reflect" if radius < min(images.shape[-2:]) else "replicate"
    out = F.pad(images, [radius, radius, 0, 0], mode=mode)
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    out = F.pad(out, [0, 0, radius, radius], mode=mode)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def relative_error(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per image ``||x - target||² / ||target||²`` (``target`` broadcast over the batch): (N,).

    The distance of content loss, feature inversion and style statistics: 0 at a perfect match, 1 for an
    all-zero ``x``, comparable between layers of different sizes.
    """
    dims = tuple(range(1, x.ndim))
    return (x - target).pow(2).sum(dim=dims) / target.pow(2).sum(dim=dims).clamp_min(1e-12)
