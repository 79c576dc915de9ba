"""cnn_helpers: the tested implementations behind the CNN course notebooks, topic by topic.

==============  =====================================================================  =========
sub-package     what it holds                                                          notebooks
==============  =====================================================================  =========
``core``        checks, state guards, seeds and switches, data, plotting, cost          all
                estimates, the layer recorder, exercise checks
``nets``        AlexNet, VGG, ResNet, EfficientNet-Lite, small nets; what they cost     01, 02
``pretrained``  pretrained classifiers offline first, the model registry, sources      00, 03-07
``training``    the training loop, residual experiments, transfer learning, probes     02, 06, 07
``attribution`` occlusion (incremental), gradient maps, their evaluation               03
``featurevis``  filters, activations, gradient ascent, DeepDream, inversion            04
``style``       Gram matrices, texture synthesis, style transfer, their evaluation     05
``adversarial`` FGSM, PGD, DeepFool, accuracy vs eps, transfer, adversarial training   06
==============  =====================================================================  =========

Layers: ``core`` imports no other sub-package; ``nets`` imports ``core``; ``pretrained`` imports ``nets``; ``training``
imports those; the four techniques import any of them but never each other (tests/test_layout.py).
The most used functions are importable from the package itself; they load lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_image": "core.data", "seed_everything": "core.repro", "get_device": "core.repro",
    "fast_mode": "core.repro", "offline_mode": "core.repro", "by_mode": "core.repro", "describe_setup": "core.repro",
    "load_pretrained": "pretrained.models", "classify": "pretrained.models",
}
__all__ = list(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'cnn_helpers' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
