"""ResNet-18/34/50/101/152 written from scratch (He et al., 2016), state_dict-compatible with torchvision.

Used by notebook 01 (architectures).

A residual block computes ``relu(F(x) + shortcut(x))``: the block's convolutions ``F`` only have to
learn the *difference* to the identity. ``shortcut`` is the identity, or a strided 1x1 convolution
(``downsample``) where the block changes resolution or width. As in torchvision ("ResNet v1.5"), a
Bottleneck downsamples in its 3x3 convolution, not in the first 1x1.
"""

from __future__ import annotations

import torch
from torch import nn

from cnn_helpers.core.memory import check_memory

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
           "check_num_classes"]


def check_num_classes(num_classes: object) -> None:
    """ValueError unless ``num_classes`` is a positive int; refused when its classifier would take gigabytes."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    # the last layer has at most 4096 inputs (AlexNet, VGG): 4096 * num_classes float32 weights
    check_memory(4096 * num_classes * 4, f"a classifier with num_classes={num_classes}")


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    """The 1x1 shortcut where shapes change (option B of the paper); None means identity."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a skip connection: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + x)``.

    Args:
        in_channels: Channels C of the input (N, C, H, W).
        channels: Channels of the output; H and W shrink by ``stride``.
        stride: 1, or 2 to halve the resolution. Default: 1.
    """

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(in_channels, channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)  # the skip connection: the input is added to the output


class Bottleneck(nn.Module):
    """1x1 (reduce width) -> 3x3 -> 1x1 (expand width 4x), plus a skip connection.

    Args:
        in_channels: Channels C of the input (N, C, H, W).
        channels: Width of the 3x3 convolution; the output has ``4 * channels`` channels.
        stride: 1, or 2 to halve the resolution (in the 3x3 convolution). Default: 1.
    """

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class ResNet(nn.Module):
    """Stem (7x7 conv, stride 2, and max-pool: 224 px -> 56 px), four stages of blocks, global pool, one FC.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: Blocks per stage, e.g. ``(3, 8, 36, 3)`` for ResNet-152.
        num_classes: Outputs of the final linear layer. Default: 1000.

    Reference:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
    """

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: tuple[int, int, int, int], *, num_classes: int = 1000):
        super().__init__()
        check_num_classes(num_classes)
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = 64
        for i, (channels, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if i == 0 else 2  # each later stage halves the resolution and doubles the width
            stage = [block(in_channels, channels, stride)]
            in_channels = channels * block.expansion
            stage += [block(in_channels, channels) for _ in range(blocks - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():  # He initialization, as in the paper and torchvision
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalized images -> (N, num_classes) logits."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(*, num_classes: int = 1000) -> ResNet:
    """ResNet-18: BasicBlocks (2, 2, 2, 2); 11.7 M parameters. Example: ``resnet18()(torch.rand(1, 3, 224, 224))``."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes=num_classes)


def resnet34(*, num_classes: int = 1000) -> ResNet:
    """ResNet-34: BasicBlocks (3, 4, 6, 3); 21.8 M parameters."""
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes=num_classes)


def resnet50(*, num_classes: int = 1000) -> ResNet:
    """ResNet-50: Bottlenecks (3, 4, 6, 3); 25.6 M parameters."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes=num_classes)


def resnet101(*, num_classes: int = 1000) -> ResNet:
    """ResNet-101: Bottlenecks (3, 4, 23, 3); 44.5 M parameters."""
    return ResNet(Bottleneck, (3, 4, 23, 3), num_classes=num_classes)


def resnet152(*, num_classes: int = 1000) -> ResNet:
    """ResNet-152: Bottlenecks (3, 8, 36, 3); 60.2 M parameters, 152 weight layers (1 + 3 * 50 + 1)."""
    return ResNet(Bottleneck, (3, 8, 36, 3), num_classes=num_classes)
