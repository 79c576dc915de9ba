"""Adversarial attacks (notebook 06): tiny changes to an image that make a classifier predict what we want.

* :mod:`.attacks`: FGSM, PGD (L-inf and L2, targeted or not), the projection step, DeepFool;
* :mod:`.evaluation`: attacks on many images, accuracy and success rate against eps, transfer between models,
  adversarial training (a batch transform for ``cnn_helpers.training.fit``).
"""

from cnn_helpers.adversarial.attacks import NORMS, deepfool, fgsm, pgd, project
from cnn_helpers.adversarial.evaluation import (ATTACKS, adversarial_transform, attack, eps_curve, fooling_rate,
                                                predict, transfer_matrix)

__all__ = [
    "fgsm", "pgd", "project", "deepfool", "NORMS",
    "attack", "predict", "eps_curve", "fooling_rate", "transfer_matrix", "adversarial_transform", "ATTACKS",
]
