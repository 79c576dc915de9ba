"""Layer, parameter and MAC counts: hand-computed cases, torchvision's metadata, and nothing left changed."""

import pytest
import torch
import torchvision
from torch import nn

from cnn_helpers import nets
import time

import helpers
from cnn_helpers.nets.complexity import count_macs, count_parameters, count_weight_layers, layer_table, layer_times

# torchvision weight enum per model: its metadata gives num_params and "_ops" (GMACs, called GFLOPS)
WEIGHTS = {
    "alexnet": "AlexNet_Weights", "vgg11": "VGG11_Weights", "vgg11_bn": "VGG11_BN_Weights", "vgg13": "VGG13_Weights",
    "vgg13_bn": "VGG13_BN_Weights", "vgg16": "VGG16_Weights", "vgg16_bn": "VGG16_BN_Weights", "vgg19": "VGG19_Weights",
    "vgg19_bn": "VGG19_BN_Weights", "resnet18": "ResNet18_Weights", "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights", "resnet101": "ResNet101_Weights", "resnet152": "ResNet152_Weights",
}
DEPTH = {"alexnet": 8, "vgg11": 11, "vgg13": 13, "vgg16": 16, "vgg19": 19, "resnet18": 18, "resnet34": 34,
         "resnet50": 50, "resnet101": 101, "resnet152": 152}


def meta_model(name: str) -> nn.Module:
    with torch.device("meta"):  # counting needs shapes only
        return getattr(nets, name)()


@pytest.mark.parametrize("name", WEIGHTS)
def test_counts_equal_torchvision_metadata(name):
    meta = torchvision.models.get_weight(f"{WEIGHTS[name]}.IMAGENET1K_V1").meta
    model = meta_model(name)
    assert count_parameters(model) == meta["num_params"]
    assert round(count_macs(model, 224) / 1e9, 3) == meta["_ops"]


def test_the_issues_numbers_exactly():
    expected = {"alexnet": (8, 61_100_840, 0.714), "vgg19": (19, 143_667_240, 19.632), "resnet152": (152, 60_192_808, 11.514)}
    for name, (layers, params, gmacs) in expected.items():
        model = meta_model(name)
        assert (count_weight_layers(model), count_parameters(model), round(count_macs(model) / 1e9, 3)) == (layers, params, gmacs)


@pytest.mark.parametrize("name", [*DEPTH, "vgg19_bn"])
def test_weight_layers_match_the_names(name):
    assert count_weight_layers(meta_model(name)) == DEPTH[name.removesuffix("_bn")]


def test_weight_layers_on_torchvision_models_skip_projection_shortcuts():
    with torch.device("meta"):
        model = torchvision.models.resnet50()
    convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    assert convs == 53  # 1 + 16 * 3 + 4 projection shortcuts
    assert count_weight_layers(model) == 50


def test_hand_computed_tiny_network():
    # conv 3->4, 3x3, padding 1 on 5x5: params 4*3*9 + 4 = 112, MACs 25 * 4 * 27 = 2700
    # linear 100->2: params 202, MACs 200
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(100, 2))
    assert count_parameters(model) == 314 and count_macs(model, (3, 5, 5)) == 2900
    assert count_macs(model, (2, 3, 5, 5)) == 5800  # MACs scale with the batch
    rows = layer_table(model, (3, 5, 5))
    assert [(r.name, r.layer_type, r.output_shape, r.params, r.macs) for r in rows] == [
        ("0", "Conv2d", (1, 4, 5, 5), 112, 2700), ("1", "ReLU", (1, 4, 5, 5), 0, 0),
        ("2", "Flatten", (1, 100), 0, 0), ("3", "Linear", (1, 2), 202, 200)]
    assert [r.receptive_field for r in rows] == [3, 3, 3, None]
    assert [r.kernel_size for r in rows] == [3, None, None, None]


def test_functional_operations_count_in_the_total():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(2, 3, 1, 1))

        def forward(self, x):
            return torch.nn.functional.conv2d(x, self.weight)  # 2 * 3 MACs per pixel

    assert count_macs(Functional(), (3, 4, 4)) == 96


def test_receptive_fields_hand_computed():
    # 3x3 conv (3), 2x2 pool stride 2 (+1 -> 4, jump 2), 3x3 conv (+2*2 -> 8), dilated 3x3 (+2*2*2 -> 16)
    model = nn.Sequential(nn.Conv2d(1, 1, 3), nn.MaxPool2d(2), nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3, dilation=2))
    assert [r.receptive_field for r in layer_table(model, (1, 20, 20))] == [3, 4, 8, 16]


@pytest.mark.parametrize("name, expected", [("alexnet", 195), ("vgg16", 212), ("vgg19", 268), ("resnet18", 435)])
def test_receptive_fields_of_known_networks(name, expected):
    rows = layer_table(meta_model(name), 224)
    assert max(r.receptive_field or 0 for r in rows) == expected
    assert rows[-1].receptive_field is None  # the classifier sees the whole image


def test_layer_table_sums_and_shapes():
    model = meta_model("resnet18")
    rows = layer_table(model, 224)
    assert sum(r.params for r in rows) == count_parameters(model)
    assert sum(r.macs for r in rows) == count_macs(model, 224)
    shapes = {r.name: r.output_shape for r in rows}
    assert shapes["maxpool"] == (1, 64, 56, 56) and shapes["layer4.1.bn2"] == (1, 512, 7, 7)
    assert shapes["fc"] == (1, 1000)
    assert len({r.name for r in rows}) == len(rows)  # the shared ReLU gets one row


def test_leaves_model_as_found():
    model = nets.resnet18(num_classes=10).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    count_macs(model, 64)
    layer_table(model, (3, 64, 64))
    assert model.training and all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics untouched
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_hooks_removed_and_mode_restored_on_error():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(7, 2)).train()  # wrong Linear size: forward fails
    with pytest.raises(ValueError, match=r"the model cannot take an input of shape \(1, 3, 16, 16\) \(input_size=16\)"):
        layer_table(model, 16)
    assert model.training and not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_bad_input():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        count_macs("resnet", 224)
    with pytest.raises(TypeError, match="model"):
        count_weight_layers(None)
    for bad in (0, (224, 224), (3, -1, 5), 22.4, True):
        with pytest.raises(ValueError, match="input_size"):
            count_macs(nn.Conv2d(3, 1, 1), bad)


def test_parameters_shared_once_and_frozen_included():
    linear = nn.Linear(3, 2)  # 8 parameters
    model = nn.Sequential(linear, nn.ReLU(), linear, nn.Linear(2, 1).requires_grad_(False))  # + 3 frozen
    assert count_parameters(model) == 11


class Sleep(nn.Module):
    def forward(self, x):
        time.sleep(0.02)
        return x


def test_layer_times_bills_each_leaf_module_and_leaves_the_model_as_found():
    model = helpers.mixed_mode(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), Sleep(), nn.ReLU()))
    before = helpers.snapshot(model)
    times = layer_times(model, torch.rand(1, 3, 8, 8), repeat=2)
    assert list(times) == ["0", "1", "2", "3"] and all(t >= 0 for t in times.values())
    assert times["2"] >= 0.02  # the sleeping layer is billed its own time
    helpers.assert_unchanged(before, helpers.snapshot(model))


def test_layer_times_sums_the_calls_of_a_shared_module_and_cleans_up_on_error():
    sleep = Sleep()
    assert layer_times(nn.Sequential(sleep, nn.Identity(), sleep), torch.rand(1), repeat=1)["0"] >= 0.04
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(7, 2)).train()
    with pytest.raises(RuntimeError):
        layer_times(model, torch.rand(1, 3, 8, 8))
    assert model.training and helpers.hooks(model) == 0
    with pytest.raises(TypeError, match="inputs"):
        layer_times(model, [1.0])
    with pytest.raises(ValueError, match="repeat"):
        layer_times(model, torch.rand(1, 3, 8, 8), repeat=0)
