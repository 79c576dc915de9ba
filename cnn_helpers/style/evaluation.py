"""How good is a stylized image? Measures that the optimization cannot game.

Used by notebook 05 (style transfer) and the tests of :mod:`cnn_helpers.style.synthesis`.

A result optimized on one network always matches the style *under that network*. Fair measures:

* :func:`style_distance` under a network the optimization did **not** use (EfficientNet-Lite2 when the
  images were made with Lite0): distance of the channel means and centred Gram matrices to the style's,
  relative, averaged over that network's style layers (0 = same statistics).
* :func:`class_rank` under the classifier: is the content still recognised (rank 1 = top class)?
* :func:`ssim`: structural similarity to the content image (scikit-image; 1 = identical).
* :func:`spectrum_distance`: no network at all: how far the image's contrast per spatial scale (its radially
  averaged power spectrum) is from the exemplar's, in decades (0 = same spectrum).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cnn_helpers.core.checks import (Target, check_images, check_int, check_layers, check_logits, check_model,
                                     check_target, gather)
from cnn_helpers.core.ops import relative_error
from cnn_helpers.core.state import evaluating, model_device
from cnn_helpers.style.gram import check_forward_memory, check_map_sizes, feature_maps, gram_matrix, tap_layers

__all__ = ["style_distance", "class_rank", "ssim", "spectrum_distance"]


@torch.no_grad()
def style_distance(model: nn.Module, images: torch.Tensor, style: torch.Tensor, *,
                   layers: str | list[str] | tuple[str, ...]) -> torch.Tensor:
    """Relative distance of feature statistics (means + centred Gram) to those of ``style``: (N,).

    Args:
        model: The judging network (another one than the optimization used), e.g. ``load_pretrained("efficientnet_lite2")``.
        images: (N, 3, H, W) in [0, 1]. style: (1, 3, H', W') in [0, 1].
        layers: The judge's style layers (its ``info.style_layers``), or a single layer name.

    Returns:
        (N,): mean over layers of ``||G - G_s||²/||G_s||² + ||μ - μ_s||²/||μ_s||²``; the content image's value
        is the "before", so ``distance(result) / distance(content)`` is the fraction of the gap left.
    Example:
        >>> judge = load_pretrained("efficientnet_lite2")
        >>> style_distance(judge.model, result, scream, layers=judge.info.style_layers)
    """
    check_model(model)
    check_images(style, name="style", model=model)
    layers = check_layers(model, layers)
    check_forward_memory(model, style, 1, False, "style_distance's style")
    with evaluating(model):
        maps = feature_maps(model, images, layers)
        reference = tap_layers(model, style, layers)
    check_map_sizes(maps, images, "images")
    check_map_sizes(reference, style, "style")
    total = 0.0
    for name, f in maps.items():
        s = reference[name]
        total = total + relative_error(gram_matrix(f, centred=True), gram_matrix(s, centred=True))
        total = total + relative_error(f.mean(dim=(2, 3)), s.mean(dim=(2, 3)))
    return total / len(maps)


@torch.no_grad()
def class_rank(model: nn.Module, images: torch.Tensor, target: Target) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank (1 = most likely) and softmax probability of class ``target`` for each image: two (N,) tensors.

    Example:
        >>> rank, p = class_rank(pre.model, result, cat_class)
    """
    check_model(model)
    check_images(images, model=model)
    target = check_target(target, images.shape[0], model_device(model))
    with evaluating(model):
        probs = check_logits(model(images), len(images)).float().softmax(dim=1)
    chosen = gather(probs, target)
    rank = (probs > chosen[:, None]).sum(dim=1) + 1
    return rank.cpu(), chosen.cpu()


def ssim(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004, scikit-image's implementation) of each image to the reference: (N,).

    Args:
        images: (N, 3, H, W) in [0, 1]. reference: (1 or N, 3, H, W) in [0, 1], same size.
    """
    from skimage.metrics import structural_similarity

    check_images(images)
    check_images(reference, name="reference")
    if reference.shape[-2:] != images.shape[-2:] or reference.shape[0] not in (1, images.shape[0]):
        raise ValueError(f"reference {tuple(reference.shape)} must be one image or one per image, "
                         f"of the images' size {tuple(images.shape[-2:])}")
    a = images.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    b = reference.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    b = np.broadcast_to(b, a.shape)
    return torch.tensor([structural_similarity(x, y, channel_axis=2, data_range=1.0) for x, y in zip(a, b)])


def _log_power_spectrum(images: torch.Tensor, bins: int) -> torch.Tensor:
    """(N, bins): log10 of the mean power of the grey image (mean removed) in ``bins`` equal frequency bands of
    (0, 0.5] cycles per pixel (the corners beyond 0.5 are left out)."""
    grey = images.detach().float().mean(dim=1)
    grey = grey - grey.mean(dim=(1, 2), keepdim=True)
    h, w = grey.shape[-2:]
    power = torch.fft.fft2(grey).abs().pow(2).flatten(1) / (h * w)
    radius = torch.hypot(*torch.meshgrid(torch.fft.fftfreq(h), torch.fft.fftfreq(w), indexing="ij")).flatten()
    band = (radius * 2 * bins).ceil().long() - 1  # (0, 0.5/bins] -> 0, ..., (0.5 - 0.5/bins, 0.5] -> bins - 1
    keep = (band >= 0) & (band < bins)
    band = band[keep].to(power.device)
    sums = power.new_zeros(power.shape[0], bins).index_add_(1, band, power[:, keep.to(power.device)])
    counts = torch.bincount(band, minlength=bins).clamp_min(1)
    return (sums / counts).clamp_min(1e-12).log10()


def spectrum_distance(images: torch.Tensor, reference: torch.Tensor, *, bins: int = 12) -> torch.Tensor:
    """Network-free texture measure: RMS difference of log power spectra, in decades: (N,).

    The power spectrum says how much contrast an image has at each spatial scale, whatever sits where (like a Gram
    matrix, it ignores positions: a shifted texture has the same spectrum). Computed on the grey image with its
    mean removed, averaged over rings of equal frequency (cycles per pixel, so images of other sizes compare).

    Args:
        images: (N, C, H, W) in [0, 1]. reference: (1, C, H', W') in [0, 1], e.g. the exemplar (any size >= 2*bins).
        bins: Frequency bands between 0 and 0.5 cycles per pixel. Default: 12.

    Returns:
        (N,): ``sqrt(mean over bands of (log10 P - log10 P_ref)²)``; 0 = same spectrum, 1 = ten times off per band.
    Example:
        >>> spectrum_distance(texture, brick)   # noise is far (flat spectrum), a good texture close
    """
    check_images(images)
    check_images(reference, name="reference")
    bins = check_int(bins, "bins", maximum=256)
    if reference.shape[0] != 1:
        raise ValueError(f"reference must be one image (1, C, H, W), got a batch of {reference.shape[0]}")
    for name, x in (("images", images), ("reference", reference)):
        if min(x.shape[-2:]) < 2 * bins:
            raise ValueError(f"{name} of {x.shape[-2]}x{x.shape[-1]} px are too small for bins={bins}; "
                             f"use at least {2 * bins} px or fewer bins")
    difference = _log_power_spectrum(images, bins) - _log_power_spectrum(reference, bins).to(images.device)
    return difference.pow(2).mean(dim=1).sqrt().cpu()
