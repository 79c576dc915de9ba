"""How good is a stylized image? Measures that the optimization cannot game.

Used by notebook 05 (style transfer) and the tests of :mod:`cnn_helpers.style.synthesis`.

A result optimized on one network always matches the style *under that network*. Fair measures:

* :func:`style_distance` under a network the optimization did **not** use (EfficientNet-Lite2 when the
  images were made with Lite0): distance of the channel means and centred Gram matrices to the style's,
  relative, averaged over that network's style layers (0 = same statistics).
* :func:`class_rank` under the classifier: is the content still recognised (rank 1 = top class)?
* :func:`ssim`: structural similarity to the content image (scikit-image; 1 = identical).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cnn_helpers.core.checks import Target, check_images, check_layers, check_model, check_target, gather
from cnn_helpers.core.ops import relative_error
from cnn_helpers.core.state import evaluating, model_device
from cnn_helpers.style.gram import check_forward_memory, check_map_sizes, feature_maps, gram_matrix, tap_layers

__all__ = ["style_distance", "class_rank", "ssim"]


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
    check_forward_memory(style, 1, False, "style_distance's style")
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
        probs = model(images).float().softmax(dim=1)
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
