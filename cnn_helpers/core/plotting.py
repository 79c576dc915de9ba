"""Figures used across the notebooks: image grids, attribution maps, top-k bar charts.

Used by notebooks 00-07. Each function returns the matplotlib ``Figure`` or the drawn image (never calls
``show``), so notebooks display it and tests can inspect it.

Attribution maps (:func:`show_heatmap`) follow two rules: a signed map gets a diverging colour map centred
at zero (blue and red mean opposite things, white means none), a magnitude map a grayscale clipped at a
high percentile (a few extreme pixels would otherwise leave everything else black); both get a colorbar.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from cnn_helpers.core.checks import check_float, check_int
from cnn_helpers.core.data import to_numpy
from cnn_helpers.core.ops import resize_to

__all__ = ["show_images", "overlay_heatmap", "show_heatmap", "topk_bar", "show_predictions"]

# Text sizes (points) of these figures, chosen so that a figure filling a 1280 x 720 slide (make slides) is
# readable from the back of a lecture room: at 8/9 pt a panel title showed at 11-13 px on the projector.
TITLE_PT, TEXT_PT, TICK_PT = 11, 10, 9


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
                ax.set_title(titles[i], fontsize=TITLE_PT)
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
    heat = _map(heatmap, array.shape[:2])
    heat = (heat - heat.min()) / (heat.max() - heat.min()).clamp_min(1e-12)
    if ax is None:
        fig, ax = plt.subplots(figsize=(3.5, 3.5))
    else:
        fig = ax.figure
    ax.imshow(array)
    ax.imshow(heat.numpy(), cmap=cmap, alpha=alpha)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=TITLE_PT)
    return fig


def _map(heatmap: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """One (h, w) map on the CPU, resized bilinearly to ``size`` if given."""
    if not isinstance(heatmap, torch.Tensor):
        raise TypeError(f"heatmap must be a torch.Tensor, got {type(heatmap).__name__}")
    heat = heatmap.detach().float().cpu()
    if heat.numel() == 0 or heat.squeeze().ndim != 2:
        raise ValueError(f"heatmap must hold one 2-D map, got shape {tuple(heatmap.shape)}")
    if not torch.isfinite(heat).all():
        raise ValueError("heatmap holds NaN or infinite values")
    heat = heat.squeeze()[None, None]
    if size is not None:
        heat = resize_to(heat, size, antialias=False)
    return heat[0, 0]


def show_heatmap(
    heatmap: torch.Tensor,
    *,
    ax: plt.Axes,
    signed: bool = False,
    percentile: float = 99.0,
    image: torch.Tensor | None = None,
    alpha: float = 0.6,
    cmap: str | None = None,
    title: str | None = None,
    colorbar: bool = True,
) -> AxesImage:
    """Draw an attribution map readably: signed maps centred at zero, magnitudes clipped at a percentile.

    Args:
        heatmap: (h, w), (1, h, w) or (1, 1, h, w).
        ax: The axes to draw into.
        signed: True for maps whose sign matters (occlusion drops, Integrated Gradients): colour map
            ``"RdBu_r"`` from ``-v`` to ``+v``, white at 0. False for magnitudes: ``"gray"`` from 0 to ``v``.
        percentile: ``v`` is this percentile of ``|heatmap|``; larger values are drawn as ``v`` (the colorbar
            says so with an arrow). Default: 99 (100 = the maximum).
        image: (1, 3, H, W) or (3, H, W) in [0, 1]: draw the map over it, resized to it, with ``alpha``.
        cmap: Override the colour map. title: Axes title. colorbar: Add a colorbar. Default: True.

    Returns:
        The ``AxesImage`` of the map (for a shared colorbar).
    Example:
        >>> show_heatmap(occlusion[0], ax=ax, signed=True, image=images[0], title="occlusion")
    """
    percentile = check_float(percentile, "percentile", minimum=0.0, maximum=100.0, strict_minimum=True)
    alpha = check_float(alpha, "alpha", minimum=0.0, maximum=1.0)
    background = None if image is None else to_numpy(image)
    heat = _map(heatmap, None if background is None else background.shape[:2]).numpy()
    top = float(np.percentile(np.abs(heat), percentile)) or float(np.abs(heat).max()) or 1.0
    low, cmap = (-top, cmap or "RdBu_r") if signed else (0.0, cmap or "gray")
    if background is not None:
        ax.imshow(background)
    drawn = ax.imshow(heat, cmap=cmap, vmin=low, vmax=top, alpha=alpha if background is not None else 1.0)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=TITLE_PT)
    if colorbar:
        clipped = ("both" if signed else "max") if np.abs(heat).max() > top else "neither"
        ax.figure.colorbar(drawn, ax=ax, fraction=0.046, pad=0.03, extend=clipped).ax.tick_params(labelsize=TICK_PT)
    return drawn


def topk_bar(predictions: Sequence[tuple[str, float]], *, title: str | None = None, ax: plt.Axes | None = None) -> Figure:
    """Horizontal bars of the top-k (label, probability) pairs, most likely on top, names written on the bars.

    The class names sit inside the axes (ImageNet's names are long: outside they would push neighbouring
    panels apart).

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
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(4, 0.3 * len(labels) + 0.7))
    else:
        fig = ax.figure
    ax.barh(range(len(labels)), probs, color="#9ecae1", height=0.8)
    for y, (label, p) in enumerate(zip(labels, probs)):
        ax.text(0.02, y, f"{label}  {p:.0%}", va="center", fontsize=TEXT_PT)
    ax.set(xlim=(0, 1), ylim=(-0.6, len(labels) - 0.4), yticks=[])
    ax.tick_params(axis="x", labelsize=TICK_PT)
    ax.set_xlabel("probability", fontsize=TEXT_PT)
    if title:
        ax.set_title(title, fontsize=TITLE_PT)
    if own:  # never re-layout a figure the caller built
        fig.tight_layout()
    return fig


def show_predictions(
    images: torch.Tensor,
    predictions: Sequence[Sequence[tuple[str, float]]],
    titles: Sequence[str] | None = None,
    *,
    ncols: int = 2,
    size: float = 2.2,
) -> Figure:
    """Each image with its top-k bar chart beside it, ``ncols`` pairs per row (no empty space between them).

    Args:
        images: (N, 3, H, W) in [0, 1].
        predictions: What ``models.classify`` returns, one list of (label, probability) per image.
        titles: One title per image. ncols: Image/bar pairs per row. Default: 2. size: Inches per row. Default: 2.2.

    Returns:
        The figure.
    Example:
        >>> show_predictions(images, classify(pre, images), names)
    """
    panels = _as_list(images)
    if len(predictions) != len(panels) or (titles is not None and len(titles) != len(panels)):
        raise ValueError(f"need one prediction list (and title) per image: {len(panels)} images, "
                         f"{len(predictions)} predictions, {len(titles) if titles is not None else 'no'} titles")
    ncols = min(check_int(ncols, "ncols"), len(panels))
    size = check_float(size, "size", minimum=0.0, strict_minimum=True)
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, 2 * ncols, figsize=(size * 2.9 * ncols, size * nrows), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.6] * ncols}, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for i, (image, top) in enumerate(zip(panels, predictions)):
        row, col = divmod(i, ncols)
        ax_image, ax_bar = axes[row, 2 * col], axes[row, 2 * col + 1]
        ax_image.imshow(to_numpy(image))
        if titles is not None:
            ax_image.set_title(titles[i], fontsize=TITLE_PT)
        ax_bar.axis("on")
        topk_bar(top, ax=ax_bar)
    return fig
