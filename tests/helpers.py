"""Small helpers shared by several test files (imported as `from helpers import ...`)."""

import torch
from torch import nn


def randomize_batch_norm(model: nn.Module, generator: torch.Generator) -> None:
    """Fresh BN layers are the identity in eval mode; random statistics make the comparison bite."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
