"""ResNet from scratch: torchvision's state_dict loads strictly, outputs are equal, blocks add their input."""

import pytest
import torch
import torchvision
from helpers import randomize_batch_norm
from torch import nn

from cnn_helpers.nets import resnet
from cnn_helpers.nets.resnet import BasicBlock, Bottleneck, resnet18, resnet50

NAMES = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]




@pytest.mark.parametrize("name", NAMES)
def test_equals_torchvision(name):
    generator = torch.Generator().manual_seed(0)
    reference = torchvision.models.get_model(name, weights=None).eval()
    randomize_batch_norm(reference, generator)
    with torch.device("meta"):  # no weights allocated or initialized: the reference's are assigned
        ours = getattr(resnet, name)().eval()
    ours.load_state_dict(reference.state_dict(), strict=True, assign=True)
    x = torch.randn(2, 3, 64, 64, generator=generator)
    with torch.no_grad():
        expected, actual = reference(x), ours(x)
    assert actual.shape == (2, 1000) and expected.std() > 0
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


def test_train_mode_batch_norm_matches_too():
    reference = torchvision.models.resnet18(num_classes=10).train()
    ours = resnet18(num_classes=10).train()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(ours(x), reference(x), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours.bn1.running_mean, reference.bn1.running_mean)


def test_basic_block_adds_its_input():
    """With the residual branch switched off (last BN scale 0), the block is relu(x)."""
    block = BasicBlock(8, 8).eval()
    nn.init.zeros_(block.bn2.weight)
    x = torch.randn(2, 8, 5, 5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(block(x), x.relu())
    assert block.downsample is None


def test_hand_computed_bottleneck():
    """1x1 weights of ones, a 3x3 that doubles its centre, fresh BN (identity in eval): values by hand."""
    block = Bottleneck(4, 1).eval()  # 4 -> 1 -> 1 -> 4 channels, identity shortcut
    for conv in (block.conv1, block.conv3):
        nn.init.ones_(conv.weight)
    nn.init.zeros_(block.conv2.weight)
    block.conv2.weight.data[0, 0, 1, 1] = 2.0
    x = torch.full((1, 4, 3, 3), 0.5)
    x[0, 0] = -1.0
    # conv1: -1 + 3 * 0.5 = 0.5; conv2: 1.0; conv3: 1.0 in all 4 channels; plus x: 0.0 and 1.5
    expected = torch.full((1, 4, 3, 3), 1.5)
    expected[0, 0] = 0.0
    assert block.downsample is None
    torch.testing.assert_close(block(x), expected, atol=1e-4, rtol=0)


def test_downsampling_stages():
    with torch.device("meta"):
        model = resnet50()
    assert model.layer1[0].downsample is not None  # width 64 -> 256, same resolution
    assert model.layer2[0].conv2.stride == (2, 2) and model.layer2[0].conv1.stride == (1, 1)  # ResNet v1.5
    assert model.layer2[1].downsample is None
    with torch.device("meta"):
        shapes = [resnet50().layer4(torch.zeros(1, 1024, 14, 14)).shape]
    assert shapes == [(1, 2048, 7, 7)]
