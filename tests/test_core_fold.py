"""Batch norm folded into convolutions (cnn_helpers.core.fold): the same outputs, the model left alone."""

import pytest
import torch
import torchvision
from helpers import assert_unchanged, hooks, mixed_mode, randomize_batch_norm, snapshot
from torch import nn

from cnn_helpers.core.fold import fold_batch_norm
from cnn_helpers.core.hooks import record
from cnn_helpers.pretrained.models import load_pretrained


def batch_norms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


@pytest.fixture
def resnet():
    model = torchvision.models.resnet18(num_classes=7).eval()
    randomize_batch_norm(model, torch.Generator().manual_seed(0))
    return model


def test_every_conv_bn_pair_of_a_resnet_folds_and_the_output_stays(resnet):
    x = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    folded = fold_batch_norm(resnet, x)
    assert folded is not resnet and batch_norms(resnet) == 20 and batch_norms(folded) == 0
    with torch.no_grad():
        want, got = resnet(x), folded(x)
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()
    assert not any(p.requires_grad for p in folded.parameters()) and not folded.training


def test_a_read_conv_stays_and_layers_after_the_last_read_one_are_not_touched(resnet):
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    folded = fold_batch_norm(resnet, x, layers=["layer1.0.conv1", "layer2"])
    assert type(folded.layer1[0].bn1) is nn.BatchNorm2d, "bn1 reads conv1's output, which is asked for"
    assert type(folded.layer1[0].bn2) is nn.Identity and type(folded.layer2[1].bn2) is nn.Identity
    assert type(folded.layer3[0].bn1) is nn.BatchNorm2d, "never run before layer2's output: left as it is"


def test_lite0_folds_to_the_same_style_maps_and_is_left_as_found():
    pre = load_pretrained("efficientnet_lite0")
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    before = snapshot(pre.model, x)
    folded = fold_batch_norm(pre.model, x, layers=pre.info.style_layers)
    assert folded is not pre.model and batch_norms(folded) < batch_norms(pre.model) - 20

    def style_maps(net: nn.Module) -> dict:
        with record(net, pre.info.style_layers, stop=True) as rec, torch.no_grad():
            rec(x)
            return rec.outputs()
    want, got = style_maps(pre.model), style_maps(folded)
    for name in pre.info.style_layers:
        assert (got[name] - want[name]).abs().max() <= 1e-4 * want[name].abs().max(), name
    assert_unchanged(before, snapshot(pre.model, x))
    assert hooks(pre.model) == 0 and hooks(folded) == 0


def test_nothing_to_fold_or_hooks_or_half_precision_give_the_model_itself():
    conv_relu_bn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4)).eval()  # bn after the ReLU
    x = torch.rand(1, 3, 8, 8)
    assert fold_batch_norm(conv_relu_bn, x) is conv_relu_bn
    conv_bn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    assert fold_batch_norm(conv_bn, x) is not conv_bn
    handle = conv_bn[0].register_forward_hook(lambda *_: None)
    assert fold_batch_norm(conv_bn, x) is conv_bn, "a model with hooks runs as it is"
    handle.remove()
    half = conv_bn.to(torch.bfloat16)
    assert fold_batch_norm(half, x.to(torch.bfloat16)) is half


def test_a_copy_that_computes_something_else_is_not_used():
    class Doubled(nn.Conv2d):  # its forward is not conv(x): folding its weights would change the result
        def forward(self, x):
            return super().forward(x) * 2 - self.weight.sum()

    model = nn.Sequential(Doubled(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2)).eval()
    randomize_batch_norm(model, torch.Generator().manual_seed(4))
    x = torch.rand(1, 3, 8, 8)
    assert fold_batch_norm(model, x) is model


def test_mixed_mode_and_gradients_are_left_alone(resnet):
    model = mixed_mode(resnet)
    model.fc.weight.grad = torch.ones_like(model.fc.weight)
    x = torch.rand(1, 3, 32, 32)
    before = snapshot(model, x)
    folded = fold_batch_norm(model, x)
    assert folded is not model
    assert_unchanged(before, snapshot(model, x))
    with pytest.raises(ValueError, match="layers"):
        fold_batch_norm(model, x, layers=["nope"])
    assert_unchanged(before, snapshot(model, x))


def test_a_grayscale_network_folds():  # the digit nets of notebook 06 take 1-channel images
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    randomize_batch_norm(net, torch.Generator().manual_seed(3))
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    folded = fold_batch_norm(net, x)
    assert folded is not net and batch_norms(folded) == 0
    with torch.no_grad():
        assert (folded(x) - net(x)).abs().max() <= 1e-5 * net(x).abs().max()
