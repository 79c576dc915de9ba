"""Attribution: which pixels a prediction depends on (notebook 03).

* :mod:`.occlusion`: occlusion maps (Zeiler & Fergus), made cheap by incremental inference;
* :mod:`.gradients`: saliency, SmoothGrad, Integrated Gradients, guided backpropagation, Grad-CAM;
* :mod:`.evaluation`: deletion and insertion curves, the weight-randomization sanity check.

Example:
    >>> from cnn_helpers import attribution as attr
    >>> heat = attr.occlusion_map(model, images, 285, window=32, stride=16)
"""

from cnn_helpers.attribution.evaluation import (area_under_curve, cascading_randomization, deletion_curve,
                                                insertion_curve, insertion_start, randomize_parameters, spearman)
from cnn_helpers.attribution.gradients import (IG_METHODS, grad_cam, guided_backprop, input_gradients,
                                               integrated_gradients, saliency_map, smoothgrad)
from cnn_helpers.attribution.occlusion import OCCLUSION_METHODS, Plan, UnsupportedModel, occlusion_map, occlusion_plan

__all__ = [
    "occlusion_map", "occlusion_plan", "Plan", "UnsupportedModel", "OCCLUSION_METHODS",
    "saliency_map", "smoothgrad", "integrated_gradients", "guided_backprop", "grad_cam", "input_gradients", "IG_METHODS",
    "deletion_curve", "insertion_curve", "insertion_start", "area_under_curve", "spearman", "randomize_parameters",
    "cascading_randomization",
]
