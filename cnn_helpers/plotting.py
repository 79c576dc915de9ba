"""Figures used across the notebooks: image grids, heatmap overlays, top-k bar charts.

Used by notebooks 00-07. Each function returns the matplotlib ``Figure`` (never calls ``show``),
so notebooks display it and tests can inspect it.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .checks import check_float, check_int
from .data import to_numpy

__all__ = ["show_images", "overlay_heatmap", "topk_bar"]


def _as_list(images: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(images, torch.Tensor):
        if images.ndim not in (3, 4) or images.numel() == 0:
            raise ValueError(f"images must have shape (N, C, H, W) or (C, H, W), got {tuple(images.shape)}")
        return [images] if images.ndim == 3 else list(images)
    if not isinstance(images, (list, tuple)) or not images or not all(isinstance(i, torch.Tensor) for i in images):
        raise TypeError("images must be a tensor or a non-empty list of tensors")
    return [image[0] if image.ndim == 4 else image for image in images]


def _panel(image: torch.Tensor) -> tuple[np.ndarray, str | None]:
    """(C, H, W) or (H, W) -> array for imshow; single-channel maps get a colormap."""
    if image.ndim == 2 or (image.ndim == 3 and image.shape[0] == 1):
        return image.detach().float().cpu().reshape(image.shape[-2:]).numpy(), "viridis"
    return to_numpy(image), None


def show_images(
    images: torch.Tensor | Sequence[torch.Tensor],
    titles: Sequence[str] | None = None,
    *,
    ncols: int | None = None,
    size: float = 2.5,
    suptitle: str | None = None,
) -> Figure:
    """A grid of images: RGB (3, H, W) in [0, 1] shown as is, (H, W) or (1, H, W) maps with a colormap.

    Args:
        images: (N, C, H, W) tensor or a list of (C, H, W), (1, C, H, W) or (H, W) tensors.
        titles: One title per image. Default: none.
        ncols: Columns. Default: all in one row up to 6.
        size: Inches per panel. Default: 2.5.
        suptitle: A title over the whole grid.

    Returns:
        The figure.
    """
    panels = _as_list(images)
    if titles is not None and len(titles) != len(panels):
        raise ValueError(f"titles must have one entry per image ({len(panels)}), got {len(titles)}")
    size = check_float(size, "size", minimum=0.0, strict_minimum=True)
    ncols = min(len(panels), 6) if ncols is None else min(check_int(ncols, "ncols"), len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(panels):
            array, cmap = _panel(panels[i])
            ax.imshow(array, cmap=cmap)
            if titles is not None:
                ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def overlay_heatmap(
    image: torch.Tensor,
    heatmap: torch.Tensor,
    *,
    alpha: float = 0.5,
    cmap: str = "jet",
    title: str | None = None,
    ax: plt.Axes | None = None,
) -> Figure:
    """A heatmap (e.g. an attribution map) drawn over its image, resized to the image if needed.

    Args:
        image: (1, 3, H, W) or (3, H, W) in [0, 1].
        heatmap: (h, w), (1, h, w) or (1, 1, h, w); scaled to [0, 1] for display.
        alpha: Opacity of the heatmap. Default: 0.5.
        cmap: Matplotlib colormap. Default: ``"jet"``.
        title: Axes title. ax: Draw into these axes instead of a new figure.

    Returns:
        The figure.
    """
    alpha = check_float(alpha, "alpha", minimum=0.0, maximum=1.0)
    array = to_numpy(image)
    if not isinstance(heatmap, torch.Tensor):
        raise TypeError(f"heatmap must be a tensor, got {type(heatmap).__name__}")
    heat = heatmap.detach().float().cpu()
    if heat.numel() == 0 or heat.squeeze().ndim != 2:
        raise ValueError(f"heatmap must hold one 2-D map, got shape {tuple(heatmap.shape)}")
    if not torch.isfinite(heat).all():
        raise ValueError("heatmap holds NaN or infinite values")
    heat = heat.squeeze()[None, None]
    if heat.shape[-2:] != array.shape[:2]:
        heat = torch.nn.functional.interpolate(heat, size=array.shape[:2], mode="bilinear", align_corners=False)
    heat = heat[0, 0]
    heat = (heat - heat.min()) / (heat.max() - heat.min()).clamp_min(1e-12)
    if ax is None:
        fig, ax = plt.subplots(figsize=(3.5, 3.5))
    else:
        fig = ax.figure
    ax.imshow(array)
    ax.imshow(heat.numpy(), cmap=cmap, alpha=alpha)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def topk_bar(predictions: Sequence[tuple[str, float]], *, title: str | None = None, ax: plt.Axes | None = None) -> Figure:
    """Horizontal bars of the top-k (label, probability) pairs, most likely on top.

    Args:
        predictions: What ``models.classify`` returns for one image.
        title: Axes title. ax: Draw into these axes instead of a new figure.

    Returns:
        The figure.
    """
    if not isinstance(predictions, (list, tuple)) or not predictions or not all(
            isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[1], (int, float)) and 0 <= p[1] <= 1
            for p in predictions):
        raise ValueError(f"predictions must hold at least one (label, probability) pair with the probability in "
                         f"[0, 1], as classify() returns them; got {predictions!r:.80}")
    labels = [label for label, _ in predictions][::-1]
    probs = [float(p) for _, p in predictions][::-1]
    if ax is None:
        fig, ax = plt.subplots(figsize=(4, 0.35 * len(labels) + 0.8))
    else:
        fig = ax.figure
    ax.barh(labels, probs, color="tab:blue")
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    for y, p in enumerate(probs):
        ax.text(min(p + 0.02, 0.85), y, f"{p:.0%}", va="center", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
