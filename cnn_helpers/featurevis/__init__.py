"""Feature visualization (notebook 04): look at a network's layers, and find inputs they respond to most.

* :mod:`.layers`: first-layer filters, activation maps, maximally activating patches;
* :mod:`.render`: gradient ascent, ``visualize`` and the recipe ``class_visualization`` — built from three parts:
  :mod:`.params` (pixels or a Fourier parameterization), :mod:`.transforms` (jitter, scale, rotate, blur) and
  :mod:`.objectives` (class logit, channel, neuron, ... combined with ``+``, ``-``, ``*``);
* :mod:`.dream`: DeepDream and feature inversion.
"""

from cnn_helpers.featurevis.dream import Inversion, deepdream, invert_features
from cnn_helpers.featurevis.layers import (activations, colourfulness, edge_strength, filter_images, filter_statistics,
                                           first_conv, first_layer_filters, orientation_selectivity,
                                           response_correlation, top_patches)
from cnn_helpers.featurevis.objectives import (Objective, Recording, channel, class_logit, feature_match, image_l2,
                                               image_tv, layer_l2, neuron, total_variation)
from cnn_helpers.featurevis.params import (MIN_SIZE, PHOTOS, Parameterization, colour_correlation, fourier,
                                           fourier_scale, high_frequency_share, pixels, radial_spectrum,
                                           spectrum_to_image)
from cnn_helpers.featurevis.render import Visualization, class_visualization, visualize
from cnn_helpers.featurevis.transforms import (Blur, Compose, ImageTransform, Jitter, Pad, RandomRotate, RandomScale,
                                               blur, standard_transforms)

__all__ = [
    "activations", "first_conv", "first_layer_filters", "filter_images", "filter_statistics", "edge_strength",
    "colourfulness", "orientation_selectivity", "response_correlation", "top_patches",
    "visualize", "class_visualization", "Visualization",
    "Parameterization", "pixels", "fourier", "colour_correlation", "fourier_scale", "spectrum_to_image",
    "radial_spectrum", "high_frequency_share", "PHOTOS", "MIN_SIZE",
    "ImageTransform", "Pad", "Jitter", "RandomScale", "RandomRotate", "Blur", "Compose", "standard_transforms", "blur",
    "Objective", "Recording", "class_logit", "channel", "neuron", "layer_l2", "feature_match", "image_l2", "image_tv",
    "total_variation",
    "deepdream", "invert_features", "Inversion",
]
