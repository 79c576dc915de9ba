"""AlexNet and VGG from scratch: torchvision's state_dict loads strictly and the outputs are equal."""

import pytest
import torch
import torchvision
from helpers import randomize_batch_norm

from cnn_helpers import nets
from cnn_helpers.nets.classic import VGG, alexnet, vgg16
from cnn_helpers.nets.complexity import count_weight_layers

VGG_NAMES = ["vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]




def assert_same_as_torchvision(name: str, size: int, *, num_classes: int = 1000) -> None:
    reference = torchvision.models.get_model(name, weights=None, num_classes=num_classes).eval()
    randomize_batch_norm(reference, torch.Generator().manual_seed(0))
    with torch.device("meta"):  # no weights allocated or initialized: the reference's are assigned
        ours = getattr(nets, name)(num_classes=num_classes).eval()
    result = ours.load_state_dict(reference.state_dict(), strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, actual = reference(x), ours(x)
    assert actual.shape == (1, num_classes)
    assert expected.abs().max() > 0, "a test that compares zeros proves nothing"
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-4)


def test_alexnet_equals_torchvision():
    assert_same_as_torchvision("alexnet", 64)


@pytest.mark.parametrize("name", VGG_NAMES)
def test_vgg_equals_torchvision(name):
    assert_same_as_torchvision(name, 32)


def test_num_classes_changes_only_the_last_layer():
    assert_same_as_torchvision("alexnet", 64, num_classes=10)
    with torch.device("meta"):
        model = vgg16(num_classes=7)
    assert model.classifier[-1].out_features == 7 and model.classifier[0].out_features == 4096


def test_adaptive_pooling_accepts_other_input_sizes():
    with torch.device("meta"):
        for size in (32, 224, 300):
            assert VGG(11)(torch.zeros(1, 3, size, size)).shape == (1, 1000)
        assert alexnet()(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)


def test_vgg_stage_layout():
    with torch.device("meta"):
        model = VGG(19, batch_norm=True)
    kinds = [type(m).__name__ for m in model.features]
    assert kinds.count("Conv2d") == kinds.count("BatchNorm2d") == 16 and kinds.count("MaxPool2d") == 5
    assert count_weight_layers(model) == 19


def test_torchvision_initialization_statistics():
    torch.manual_seed(0)
    model = VGG(11)
    conv, fc = model.features[0], model.classifier[0]
    # kaiming normal, fan_out = 64 * 3 * 3: std sqrt(2 / 576)
    assert abs(conv.weight.std().item() - (2 / 576) ** 0.5) < 0.01
    assert abs(fc.weight.std().item() - 0.01) < 1e-4 and fc.bias.abs().max() == 0


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "10"])
def test_bad_num_classes(bad):
    with pytest.raises(ValueError, match="num_classes"):
        alexnet(num_classes=bad)
    with pytest.raises(ValueError, match="num_classes"):
        nets.resnet18(num_classes=bad)


def test_bad_vgg_depth():
    with pytest.raises(ValueError, match="depth must be one of"):
        VGG(17)


def test_keyword_only():
    with pytest.raises(TypeError):
        vgg16(10)


def test_every_network_and_counter_is_importable_from_nets():
    from cnn_helpers.nets.resnet import resnet152

    assert nets.resnet152 is resnet152
    assert set(nets.__all__) >= {"alexnet", *VGG_NAMES, "resnet18", "resnet152", "count_macs", "layer_table"}
