"""Training networks: the course's one loop, and what notebooks 02, 06 and 07 build on it.

* :mod:`.loop`: ``fit`` (mini-batches, warm-up then cosine, any classifier), ``evaluate``, ``top1_accuracy``, ``balanced_accuracy``;
* :mod:`.residual`: per-layer gradient sizes and the identity extension (notebook 02);
* :mod:`.transfer`: a pretrained network as feature extractor, or prepared for fine-tuning (notebook 07);
* :mod:`.probes`: ``train_classifier`` (epochs, images or cached features) and linear probes (notebook 07).
"""

from cnn_helpers.training.loop import (BatchTransform, History, balanced_accuracy, evaluate, fit, top1_accuracy,
                                       training_error, warmup_cosine)
from cnn_helpers.training.probes import linear_probe, stratified_split, to_rgb, train_classifier
from cnn_helpers.training.residual import gradient_norms, identity_extension
from cnn_helpers.training.transfer import STRATEGIES, extract_features, last_linear, next_layer, prepare, upper_part

__all__ = [
    "fit", "History", "BatchTransform", "evaluate", "training_error", "top1_accuracy", "balanced_accuracy", "warmup_cosine",
    "gradient_norms", "identity_extension",
    "extract_features", "prepare", "upper_part", "next_layer", "last_linear", "STRATEGIES",
    "train_classifier", "linear_probe", "stratified_split", "to_rgb",
]
