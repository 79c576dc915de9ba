"""Small CIFAR-style plain and residual networks of configurable depth (He et al. 2016, Sec. 4.2).

Used by notebook 02 (residual learning and gradients) and by :mod:`cnn_helpers.training.residual`;
:func:`small_cnn` is notebook 07's baseline from scratch (what a few labels can train without pretraining).
They live here, not in ``architectures`` (the ImageNet models of notebook 01), because they are
the objects of the degradation experiment: small enough to train on a CPU in seconds.

A net of depth ``6n + 2`` is one 3x3 convolution (the stem), three stages of ``n`` blocks of
two 3x3 convolutions each (widths ``widths[0..2]``; the first block of stages 2 and 3 halves
the resolution), global average pooling and one linear layer. Plain and residual nets use the
same :class:`Block`; the residual one adds its input to the output. The shortcut is He et al.'s
option A (identity; when the shape changes, stride-2 subsampling and zero-padded channels), so a
plain net and its residual twin have exactly the same parameters.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnn_helpers.core.checks import check_bool, check_choice
from cnn_helpers.core.memory import check_memory

__all__ = ["Block", "SmallNet", "plain_net", "residual_net", "blocks_for_depth", "small_cnn", "WEIGHT_INITS"]

WEIGHT_INITS = ("he", "default")


class Block(nn.Module):
    """Two 3x3 convolutions, each followed by batch norm; ReLU after the first and after the sum.

    Args:
        in_channels, out_channels: Channel counts; ``out_channels >= in_channels``.
        stride: 1, or 2 to halve height and width.
        residual: Add the (option-A) shortcut before the last ReLU. Default: True.
        batch_norm: Use ``BatchNorm2d`` after each convolution (else convolutions get a bias).

    Shapes: ``(N, in_channels, H, W) -> (N, out_channels, H / stride, W / stride)``.
    Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, residual: bool = True,
                 batch_norm: bool = True) -> None:
        super().__init__()
        if out_channels < in_channels or stride not in (1, 2):
            raise ValueError(f"need out_channels >= in_channels and stride 1 or 2, got "
                             f"{in_channels}->{out_channels}, stride={stride}")
        norm = nn.BatchNorm2d if batch_norm else (lambda _: nn.Identity())
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=not batch_norm)
        self.bn1 = norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=not batch_norm)
        self.bn2 = norm(out_channels)
        self.residual, self.stride, self.pad = residual, stride, out_channels - in_channels

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """Option A: identity, or subsample by the stride and append zero channels."""
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.pad)) if self.pad else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.residual:
            out = out + self.shortcut(x)
        return F.relu(out)


class SmallNet(nn.Module):
    """Stem (conv-BN-ReLU), three stages of :class:`Block`, global average pooling, linear layer.

    Build it with :func:`plain_net` or :func:`residual_net`. The constructor's arguments are kept
    as attributes (``depth``, ``widths``, ``residual``, ...) so a twin can be built from them.
    Shapes: ``(N, in_channels, H, W) -> (N, num_classes)`` logits.
    """

    def __init__(self, depth: int, *, residual: bool, widths: Sequence[int] = (8, 16, 32), in_channels: int = 1,
                 num_classes: int = 10, batch_norm: bool = True, init: str = "he") -> None:
        super().__init__()
        n = blocks_for_depth(depth)
        widths = _check_config(widths, in_channels, num_classes, init, batch_norm, n)
        self.depth, self.widths, self.residual = depth, widths, residual
        self.in_channels, self.num_classes, self.batch_norm, self.init = in_channels, num_classes, batch_norm, init
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=not batch_norm),
                                  nn.BatchNorm2d(widths[0]) if batch_norm else nn.Identity(), nn.ReLU())
        stages, previous = [], widths[0]
        for index, width in enumerate(widths):
            blocks = [Block(previous if i == 0 else width, width, 2 if (i == 0 and index > 0) else 1,
                            residual=residual, batch_norm=batch_norm) for i in range(n)]
            stages.append(nn.Sequential(*blocks))
            previous = width
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(widths[-1], num_classes)
        if init == "he":
            self.apply(_he_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.stages(self.stem(x))
        return self.fc(features.mean(dim=(2, 3)))


def _he_init(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _check_config(widths: Sequence[int], in_channels: int, num_classes: int, init: str, batch_norm: bool,
                  blocks: int) -> tuple[int, int, int]:
    widths = tuple(widths) if isinstance(widths, (tuple, list)) else ()
    if len(widths) != 3 or any(not isinstance(w, int) or isinstance(w, bool) or w <= 0 for w in widths) \
            or list(widths) != sorted(widths):
        raise ValueError(f"widths must be three increasing positive ints, got {widths!r}")
    for name, value in (("in_channels", in_channels), ("num_classes", num_classes)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    check_choice(init, "init", WEIGHT_INITS)
    check_bool(batch_norm, "batch_norm")
    weights = 9 * in_channels * widths[0] + 18 * blocks * sum(w * w for w in widths) + widths[-1] * num_classes
    check_memory(4 * weights, f"a net with widths={widths}, in_channels={in_channels}, num_classes={num_classes}")
    return widths


def blocks_for_depth(depth: int) -> int:
    """Blocks per stage ``n`` for a depth ``6n + 2`` (8, 14, 20, 32, 44, 56, 110, ...)."""
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, 56, ...), got {depth!r}")
    return (depth - 2) // 6


def plain_net(depth: int, *, widths: Sequence[int] = (8, 16, 32), in_channels: int = 1, num_classes: int = 10,
              batch_norm: bool = True, init: str = "he") -> SmallNet:
    """A plain CIFAR-style net with ``depth`` weight layers (``depth - 1`` convolutions + 1 linear).

    Args:
        depth: ``6n + 2`` (8, 14, 20, 32, 44, 56, 110).
        widths: Channels of the three stages. Default: (8, 16, 32) (He et al. use 16, 32, 64).
        in_channels: 1 for MNIST, 3 for colour images. Default: 1.
        num_classes: Outputs. Default: 10.
        batch_norm: Batch norm after every convolution. Default: True.
        init: ``"he"`` (Kaiming normal, fan-out, as He et al.) or ``"default"`` (PyTorch's). Default: "he".

    Returns:
        A :class:`SmallNet`, ``(N, in_channels, H, W) -> (N, num_classes)``, in training mode.

    Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Sec. 4.2.
    Example:
        >>> model = plain_net(20)
        >>> logits = model(torch.randn(4, 1, 14, 14))   # (4, 10)
    """
    return SmallNet(depth, residual=False, widths=widths, in_channels=in_channels, num_classes=num_classes,
                    batch_norm=batch_norm, init=init)


def residual_net(depth: int, *, widths: Sequence[int] = (8, 16, 32), in_channels: int = 1, num_classes: int = 10,
                 batch_norm: bool = True, init: str = "he") -> SmallNet:
    """The residual twin of :func:`plain_net` (same layers and parameters, plus option-A shortcuts).

    Arguments and shapes as :func:`plain_net`; ``residual_net(20)`` is He et al.'s ResNet-20
    with widths 8/16/32 instead of 16/32/64.

    Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Sec. 4.2.
    Example:
        >>> model = residual_net(56, widths=(16, 32, 64), in_channels=3)
        >>> logits = model(torch.randn(4, 3, 32, 32))   # (4, 10)
    """
    return SmallNet(depth, residual=True, widths=widths, in_channels=in_channels, num_classes=num_classes,
                    batch_norm=batch_norm, init=init)


def small_cnn(*, in_channels: int = 1, num_classes: int = 10, widths: Sequence[int] = (16, 32, 64, 64)) -> nn.Sequential:
    """A small CNN to train from scratch, the baseline a sceptic sets against transfer learning (notebook 07).

    Per width a 3x3 convolution (no bias), batch norm, ReLU and 2x2 max pooling, then global average pooling and
    one linear layer: 61,050 parameters for one input channel and 10 classes. Pooling early keeps it cheap.

    Args:
        in_channels: 1 (grey) or 3 (colour). num_classes: Outputs. Default: 1 and 10.
        widths: Channels of the blocks; images need at least ``2 ** len(widths)`` pixels a side. Default: (16, 32, 64, 64).

    Returns:
        An ``nn.Sequential`` ``(N, in_channels, H, W) -> (N, num_classes)`` with PyTorch's default initialization.
    Example:
        >>> model = small_cnn(in_channels=3, num_classes=5)
        >>> logits = model(torch.rand(4, 3, 32, 32))   # (4, 5)
    """
    for name, value in (("in_channels", in_channels), ("num_classes", num_classes)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    widths = tuple(widths) if isinstance(widths, (tuple, list)) else ()
    if not widths or any(not isinstance(w, int) or isinstance(w, bool) or w <= 0 for w in widths):
        raise ValueError(f"widths must be a non-empty sequence of positive ints, got {widths!r}")
    check_memory(4 * (9 * sum(a * b for a, b in zip((in_channels, *widths), widths)) + widths[-1] * num_classes),
                 f"a small CNN with widths={widths}, in_channels={in_channels}, num_classes={num_classes}",
                 "use smaller widths")
    layers: list[nn.Module] = []
    for before, width in zip((in_channels, *widths), widths):
        layers += [nn.Conv2d(before, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[-1], num_classes))
