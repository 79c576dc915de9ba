"""Tests for cnn_helpers.nets.smallnets (notebook 02): depth, parameters, shortcuts, bad configurations."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnn_helpers.nets.smallnets import Block, blocks_for_depth, plain_net, residual_net, small_cnn


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("depth", [8, 20, 56])
def test_depth_counts_weight_layers_and_twins_share_parameters(depth):
    plain, res = plain_net(depth), residual_net(depth)
    layers = [m for m in plain.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == depth
    assert n_params(plain) == n_params(res)
    assert plain(torch.randn(2, 1, 14, 14)).shape == (2, 10)


def test_he_et_al_resnet20_parameter_count():
    # He et al. 2016, Table 6: ResNet-20 (widths 16/32/64, CIFAR) has 0.27 M parameters
    model = residual_net(20, widths=(16, 32, 64), in_channels=3)
    assert round(n_params(model) / 1e6, 2) == 0.27
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_option_a_shortcut_subsamples_and_pads_with_zeros():
    block = Block(2, 4, stride=2)
    x = torch.arange(32.0).reshape(1, 2, 4, 4)
    out = block.shortcut(x)
    assert out.shape == (1, 4, 2, 2)
    assert torch.equal(out[0, 0], torch.tensor([[0.0, 2.0], [8.0, 10.0]]))
    assert torch.equal(out[0, 2:], torch.zeros(2, 2, 2))


def test_residual_block_with_zero_branch_is_relu_of_shortcut():
    block = Block(3, 3, residual=True).eval()
    nn.init.zeros_(block.bn2.weight)      # the residual branch outputs 0 (bn2 bias is 0)
    x = torch.randn(2, 3, 5, 5)
    assert torch.equal(block(x), F.relu(x))
    block.residual = False
    assert torch.equal(block(x), torch.zeros_like(x))


def test_no_batch_norm_uses_conv_bias():
    model = plain_net(8, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("kwargs, message", [
    (dict(depth=10), "6n \\+ 2"), (dict(depth=2), "6n \\+ 2"), (dict(depth=8.0), "6n \\+ 2"),
    (dict(depth=8, widths=(8, 16)), "widths"), (dict(depth=8, widths=(32, 16, 8)), "widths"),
    (dict(depth=8, in_channels=0), "in_channels"), (dict(depth=8, init="xavier"), "init"),
])
def test_bad_configuration_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plain_net(**kwargs)


def test_blocks_for_depth():
    assert [blocks_for_depth(d) for d in (8, 20, 32, 56, 110)] == [1, 3, 5, 9, 18]


def test_small_cnn_parameters_by_hand_shapes_and_bad_configurations():
    model = small_cnn()
    # convolutions 9 * (1*16 + 16*32 + 32*64 + 64*64), batch norm 2 * (16 + 32 + 64 + 64), linear 64 * 10 + 10
    assert n_params(model) == 9 * (16 + 512 + 2048 + 4096) + 2 * 176 + 650 == 61050
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    colour = small_cnn(in_channels=3, num_classes=5, widths=(4, 8))
    assert colour(torch.rand(2, 3, 4, 4)).shape == (2, 5)
    assert sum(isinstance(m, nn.MaxPool2d) for m in colour.modules()) == 2
    with pytest.raises(ValueError, match="widths"):
        small_cnn(widths=(4, 0))
    with pytest.raises(ValueError, match="in_channels"):
        small_cnn(in_channels=0)


def test_small_cnn_learns_a_tiny_task():
    torch.manual_seed(0)
    images = torch.rand(32, 1, 8, 8)
    labels = (images[:, :, :, :4].mean(dim=(1, 2, 3)) > images[:, :, :, 4:].mean(dim=(1, 2, 3))).long()
    model = small_cnn(widths=(8, 8), num_classes=2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        loss = F.cross_entropy(model(images), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (model.eval()(images).argmax(1) == labels).float().mean() >= 0.9
