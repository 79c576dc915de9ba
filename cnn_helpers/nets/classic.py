"""AlexNet and VGG written from scratch, state_dict-compatible with torchvision.

Used by notebook 01 (architectures). Every model here loads the matching torchvision model's
``state_dict()`` with ``strict=True`` and computes the same outputs (tests/test_nets_classic.py), so
torchvision's pretrained weights work with these readable versions. ResNet is :mod:`.resnet`; what the
networks cost (layers, parameters, MACs) is :mod:`.complexity`.

* :func:`alexnet` (Krizhevsky et al., 2012): 5 conv + 3 FC = 8 weight layers.
* :func:`vgg11` ... :func:`vgg19_bn` (Simonyan & Zisserman, 2015): only 3x3 convolutions, five stages
  separated by 2x2 max-pooling, then three FC layers; ``_bn`` adds batch norm after every conv.
"""

from __future__ import annotations

import torch
from torch import nn

from cnn_helpers.nets.resnet import check_num_classes

__all__ = ["AlexNet", "VGG", "alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19",
           "vgg19_bn"]


class AlexNet(nn.Module):
    """Five convolutions (11x11 stride 4 first), three max-pools, three FC layers with dropout.

    Reference:
        Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional Neural
        Networks", NeurIPS 2012 (torchvision follows the one-GPU variant, "One weird trick", 2014).
    """

    def __init__(self, *, num_classes: int = 1000):
        super().__init__()
        check_num_classes(num_classes)
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(6)  # 224 px gives 6x6 already; other sizes are pooled to it
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalized images, H, W >= 63 -> (N, num_classes) logits."""
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# 3x3 convolutions per stage; the widths are always 64, 128, 256, 512, 512
VGG_STAGES = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
VGG_WIDTHS = (64, 128, 256, 512, 512)


def _vgg_features(convs_per_stage: tuple[int, ...], *, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for convs, width in zip(convs_per_stage, VGG_WIDTHS):
        for _ in range(convs):
            layers.append(nn.Conv2d(in_channels, width, 3, padding=1))  # padding 1 keeps H and W
            layers += [nn.BatchNorm2d(width), nn.ReLU(inplace=True)] if batch_norm else [nn.ReLU(inplace=True)]
            in_channels = width
        layers.append(nn.MaxPool2d(2, stride=2))  # each stage ends by halving the resolution
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """Stages of 3x3 convolutions and 2x2 max-pools (224 px -> 7x7x512), then three FC layers.

    Args:
        depth: 11, 13, 16 or 19 weight layers.
        batch_norm: Batch norm after every convolution. Default: False.
        num_classes: Outputs of the final linear layer. Default: 1000.

    Reference:
        Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition", ICLR 2015.
    """

    def __init__(self, depth: int, *, batch_norm: bool = False, num_classes: int = 1000):
        super().__init__()
        if depth not in VGG_STAGES:
            raise ValueError(f"depth must be one of {sorted(VGG_STAGES)}, got {depth!r}")
        check_num_classes(num_classes)
        self.features = _vgg_features(VGG_STAGES[depth], batch_norm=batch_norm)
        self.avgpool = nn.AdaptiveAvgPool2d(7)
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(4096, num_classes),
        )
        for m in self.modules():  # the initialization torchvision uses
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalized images, H, W >= 32 -> (N, num_classes) logits."""
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def alexnet(*, num_classes: int = 1000) -> AlexNet:
    """AlexNet: 8 weight layers, 61.1 M parameters. Example: ``alexnet()(torch.rand(1, 3, 224, 224))``."""
    return AlexNet(num_classes=num_classes)


def vgg11(*, num_classes: int = 1000) -> VGG:
    """VGG-11 (configuration A): 8 conv + 3 FC layers, 132.9 M parameters."""
    return VGG(11, num_classes=num_classes)


def vgg11_bn(*, num_classes: int = 1000) -> VGG:
    """VGG-11 with batch norm."""
    return VGG(11, batch_norm=True, num_classes=num_classes)


def vgg13(*, num_classes: int = 1000) -> VGG:
    """VGG-13 (configuration B): 10 conv + 3 FC layers, 133.0 M parameters."""
    return VGG(13, num_classes=num_classes)


def vgg13_bn(*, num_classes: int = 1000) -> VGG:
    """VGG-13 with batch norm."""
    return VGG(13, batch_norm=True, num_classes=num_classes)


def vgg16(*, num_classes: int = 1000) -> VGG:
    """VGG-16 (configuration D): 13 conv + 3 FC layers, 138.4 M parameters."""
    return VGG(16, num_classes=num_classes)


def vgg16_bn(*, num_classes: int = 1000) -> VGG:
    """VGG-16 with batch norm."""
    return VGG(16, batch_norm=True, num_classes=num_classes)


def vgg19(*, num_classes: int = 1000) -> VGG:
    """VGG-19 (configuration E): 16 conv + 3 FC layers, 143.7 M parameters."""
    return VGG(19, num_classes=num_classes)


def vgg19_bn(*, num_classes: int = 1000) -> VGG:
    """VGG-19 with batch norm."""
    return VGG(19, batch_norm=True, num_classes=num_classes)
