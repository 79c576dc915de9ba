"""Texture synthesis and style transfer with Gram matrices (notebook 05).

* :mod:`.gram`: Gram matrices, feature maps, style and content losses;
* :mod:`.synthesis`: ``synthesize_texture`` (from noise) and ``style_transfer`` (content + style);
* :mod:`.evaluation`: measures the optimization cannot game (another network's style distance, class rank, SSIM, the power spectrum).
"""

from cnn_helpers.style.evaluation import class_rank, spectrum_distance, ssim, style_distance
from cnn_helpers.style.gram import (PIXELS, Stats, content_loss, feature_maps, gram_matrix, style_loss, style_maps,
                                    style_targets)
from cnn_helpers.style.synthesis import STARTS, STYLE_OPTIMIZERS, style_transfer, synthesize_texture

__all__ = [
    "gram_matrix", "feature_maps", "style_maps", "style_targets", "style_loss", "content_loss", "Stats", "PIXELS",
    "synthesize_texture", "style_transfer", "STYLE_OPTIMIZERS", "STARTS",
    "style_distance", "class_rank", "ssim", "spectrum_distance",
]
