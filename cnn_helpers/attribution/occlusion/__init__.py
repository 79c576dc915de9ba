"""Occlusion maps (notebook 03): the entry point, plain batches, and the incremental engine that makes them cheap.

* :mod:`.map`: ``occlusion_map`` — arguments, cost estimate, plain batches of occluded images, the fallback;
* :mod:`.incremental`: each layer recomputes only the rectangle a window changed (``occlusion_plan`` shows it),
  built on :mod:`.graph` (the traced model), :mod:`.plan` (rectangles and their MACs) and :mod:`.drill` (the
  approximate mode's drill-down).
"""

from cnn_helpers.attribution.occlusion.graph import UnsupportedModel
from cnn_helpers.attribution.occlusion.incremental import occlusion_plan
from cnn_helpers.attribution.occlusion.map import OCCLUSION_METHODS, occlusion_map
from cnn_helpers.attribution.occlusion.plan import Plan

__all__ = ["occlusion_map", "OCCLUSION_METHODS", "occlusion_plan", "Plan", "UnsupportedModel"]
