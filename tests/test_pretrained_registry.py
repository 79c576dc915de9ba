"""The model registry names real layers of the real architectures (built on the meta device: no weights)."""

import pytest
import torch
import torchvision
from torch import nn

from cnn_helpers.pretrained import models
from cnn_helpers.nets.efficientnet import EfficientNetLite
from cnn_helpers.pretrained.registry import DEFAULT_PREFERENCE, REGISTRY, model_info


def build(name: str) -> nn.Module:
    with torch.device("meta"):
        net = EfficientNetLite.variant(name) if name.startswith("efficientnet") else torchvision.models.get_model(name)
        return models.ImageClassifier(net, models.Normalize((0.5,) * 3, (0.5,) * 3))


@pytest.fixture(scope="module", params=list(REGISTRY))
def entry(request):
    return model_info(request.param), build(request.param)


def test_every_named_layer_exists_and_has_the_right_kind(entry):
    info, model = entry
    modules = dict(model.named_modules())
    named = [info.first_conv, info.gradcam_layer, info.head, info.penultimate, *info.stages, *info.top_down,
             *info.style_layers, *info.content_layers]
    assert [n for n in named if n not in modules] == []
    assert isinstance(modules[info.first_conv], nn.Conv2d)
    assert isinstance(modules[info.head], nn.Linear) and modules[info.head].out_features == 1000
    first_conv = next(n for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    assert info.first_conv == first_conv and info.top_down[-1] == first_conv and info.top_down[0] == info.head


def test_shapes_of_stages_gradcam_layer_and_penultimate(entry):
    info, model = entry
    seen = {}
    wanted = {info.gradcam_layer, info.penultimate, *info.stages, *info.style_layers, *info.content_layers}
    def record(name):
        def hook(module, inputs, output):
            seen.setdefault(name, output.shape)
        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in model.named_modules() if n in wanted]
    with torch.no_grad():
        model(torch.zeros(1, 3, info.input_size, info.input_size, device="meta"))
    for handle in handles:
        handle.remove()
    assert all(len(seen[n]) == 4 for n in [info.gradcam_layer, *info.stages, *info.style_layers])
    sides = [seen[n][-1] for n in info.stages]
    assert sides == sorted(sides, reverse=True) and sides[0] > sides[-1], "stages run from early (large) to late"
    assert seen[info.gradcam_layer][-1] == sides[-1] and seen[info.gradcam_layer][-1] <= info.input_size // 16
    assert seen[info.penultimate].numel() == dict(model.named_modules())[info.head].in_features


def test_gatys_layers_of_vgg19():
    info = model_info("vgg19")
    features = build("vgg19").net.features
    assert [type(features[int(n.split(".")[-1]) - 1]).__name__ for n in info.style_layers] == ["Conv2d"] * 5
    assert info.style_layers == tuple(f"net.features.{i}" for i in (1, 6, 11, 20, 29))  # relu1_1 ... relu5_1
    assert info.content_layers == ("net.features.22",)  # relu4_2


def test_preference_order_and_unknown_names():
    assert set(DEFAULT_PREFERENCE) <= set(REGISTRY) and "efficientnet_lite0" not in DEFAULT_PREFERENCE
    assert models.TORCHVISION_WEIGHTS.keys() == set(DEFAULT_PREFERENCE)
    with pytest.raises(ValueError, match="efficientnet_lite0.*resnet152"):
        model_info("resnet9000")


def test_top_down_of_lite0_covers_every_block():
    info = model_info("efficientnet_lite0")
    assert info.top_down[:3] == ("net._fc", "net._conv_head", "net._blocks.15") and len(info.top_down) == 19
