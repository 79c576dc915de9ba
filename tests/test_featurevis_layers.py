"""Filters, activations, top patches: hand-made filters and nets, every registry model, hooks removed."""

import math

import helpers
import pytest
import torch
import torchvision
from torch import nn

from cnn_helpers.core.data import load_image
from cnn_helpers.nets.efficientnet import EfficientNetLite
from cnn_helpers.featurevis.layers import (activations, colourfulness, edge_strength, filter_images, filter_statistics,
                                           first_conv, first_layer_filters, response_correlation,
                                           top_patches)
from cnn_helpers.pretrained.models import ImageClassifier, Normalize, load_pretrained
from cnn_helpers.pretrained.registry import REGISTRY

SOBEL = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])


def net():
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 6, 3, stride=2, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))
    return ImageClassifier(body, Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))).eval()


def photos(size=48):
    return torch.cat([load_image(name, size=size) for name in ("cat", "coffee", "astronaut")])


def test_activations_equal_running_the_layers_by_hand():
    model, x = net(), torch.rand(2, 3, 10, 10, generator=torch.Generator().manual_seed(0))
    maps = activations(model, x, ["net.1", "net.3"])
    with torch.no_grad():
        first = model.net[:2](model.normalize(x))
        second = model.net[2:4](first)
    assert torch.allclose(maps["net.1"], first) and torch.allclose(maps["net.3"], second)
    assert not maps["net.1"].requires_grad


def test_activations_leave_the_model_alone_and_list_valid_layers():
    model = helpers.mixed_mode(net())
    before = helpers.snapshot(model)
    activations(model, torch.rand(1, 3, 8, 8), "net.0")
    with pytest.raises(ValueError, match="layer 'net.9' is not a submodule.*Valid names"):
        activations(model, torch.rand(1, 3, 8, 8), ["net.0", "net.9"])
    helpers.assert_unchanged(before, helpers.snapshot(model))


def test_a_recorded_output_is_not_changed_by_a_later_in_place_operation():
    model = net()
    with torch.no_grad():
        model.net[0].bias.fill_(-10.0)  # conv output all negative, then ReLU(inplace=True) zeroes it
    x = torch.rand(1, 3, 6, 6)
    maps = activations(model, x, ["net.0", "net.1"])
    assert maps["net.0"].max() < 0 and maps["net.1"].max() == 0


@pytest.mark.parametrize("name", list(REGISTRY))
def test_first_conv_is_the_registry_s_for_every_model(name):
    with torch.device("meta"):
        body = EfficientNetLite.variant(name) if name.startswith("efficientnet") else torchvision.models.get_model(name)
        model = ImageClassifier(body, Normalize((0.5,) * 3, (0.5,) * 3))
    assert first_conv(model)[0] == REGISTRY[name].first_conv


def test_first_layer_filters_are_a_copy_and_models_without_rgb_convs_are_refused():
    model = net()
    filters = first_layer_filters(model)
    filters += 1
    assert filters.shape == (4, 3, 3, 3) and not torch.equal(filters, model.net[0].weight)
    with pytest.raises(ValueError, match="no nn.Conv2d with 3 input channels"):
        first_conv(nn.Sequential(nn.Conv2d(1, 2, 3)))


def test_filter_images_put_zero_at_grey():
    filters = torch.zeros(2, 3, 3, 3)
    filters[0, 0, 0, 0], filters[0, 1, 1, 1] = 2.0, -1.0
    pictures = filter_images(filters)
    assert pictures[0, 0, 0, 0] == 1.0 and pictures[0, 1, 1, 1] == 0.25 and pictures[0, 2, 2, 2] == 0.5
    assert (pictures[1] == 0.5).all()


def test_filter_statistics_of_hand_made_filters():
    edge = SOBEL.expand(3, 3, 3) * torch.tensor([0.3, 0.6, 0.1]).view(3, 1, 1)  # brightness edge
    colour = torch.ones(3, 3, 3) * torch.tensor([1.0, -1.0, 0.0]).view(3, 1, 1)  # red minus green, flat
    blob = torch.ones(3, 3, 3)  # brightness itself: one pattern, but not a change
    dead = torch.zeros(3, 3, 3)
    noise = torch.randn(3, 3, 3, generator=torch.Generator().manual_seed(0))
    stats = filter_statistics(torch.stack([edge, colour, blob, dead, noise]))
    assert stats["alive"].tolist() == [True, True, True, False, True]
    assert torch.allclose(stats["rank1"][:3], torch.ones(3)) and stats["rank1"][3] < 0.8
    assert stats["edge"].tolist() == [True, False, False, False]
    assert stats["colour"].tolist() == [False, True, False, False]
    assert torch.allclose(stats["pattern"][0].abs(), SOBEL.abs() / SOBEL.norm())


def test_random_filters_are_rarely_edge_or_colour_detectors():
    weights = torch.empty(64, 3, 3, 3)
    nn.init.kaiming_uniform_(weights, a=math.sqrt(5), generator=torch.Generator().manual_seed(0))
    stats = filter_statistics(weights)
    assert stats["rank1"].median() < 0.7 and (stats["edge"] | stats["colour"]).sum() <= 3


def test_response_correlation_tells_edge_from_colour_filters():
    model, x = net(), photos()
    edge = torch.stack([SOBEL, SOBEL, SOBEL])
    colour = torch.ones(3, 3, 3) * torch.tensor([1.0, -1.0, 0.0]).view(3, 1, 1)
    filters = torch.stack([edge, colour, edge.transpose(1, 2), colour])
    edges = response_correlation(model, x, edge_strength(x), filters)
    colours = response_correlation(model, x, colourfulness(x), filters)
    assert edges[0] > 0.5 and edges[2] > 0.5 and edges[1] < 0.3
    assert colours[1] > 0.5 and colours[0] < colours[1]
    assert torch.equal(colours[1], colours[3])
    default = response_correlation(model, x, edge_strength(x))
    own = response_correlation(model, x, edge_strength(x), model.net[0].weight)
    assert default.shape == (4,) and torch.allclose(default, own)


def test_edge_strength_and_colourfulness_hand_computed():
    x = torch.zeros(1, 3, 5, 5)
    x[..., 2:] = 1.0  # a vertical white edge
    edges = edge_strength(x)
    assert edges.shape == (1, 1, 3, 3) and torch.allclose(edges[0, 0, :, 0], torch.full((3,), 4.0))
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    assert torch.allclose(colourfulness(red), torch.full((1, 1, 2, 2), math.sqrt(2) / 3))


def test_top_patches_find_the_bright_square():
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU())
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0, -1.0]).view(2, 3, 1, 1))
        model[0].bias.zero_()
    x = torch.zeros(2, 3, 32, 32)
    x[1, :, 20:22, 4:6] = 1.0
    patches, values = top_patches(model, x, "0", 0, k=3, patch=8)
    assert patches.shape == (3, 3, 8, 8) and values.tolist() == [3.0, 0.0, 0.0]
    assert patches[0].sum() == 3 * 2 * 2, "the whole square, once: its other cells' patches would overlap it"
    assert (patches[1:] == 0).all()
    dot = torch.zeros(1, 3, 32, 32)
    dot[..., 21, 5] = 1.0
    one, value = top_patches(model, dot, "0", 0, k=1, patch=4)
    assert one.shape == (1, 3, 4, 4) and one.sum() == 3.0 and value.item() == 3.0  # the dot lies inside
    with pytest.raises(ValueError, match="channel"):
        top_patches(model, x, "0", 2)
    with pytest.raises(ValueError, match="patch"):
        top_patches(model, x, "0", 0, patch=64)


@pytest.fixture(scope="module")
def lite0():
    return load_pretrained("efficientnet_lite0")


def test_lite0_first_layer_holds_edge_and_colour_detectors(lite0):
    x = photos(96)
    stats = filter_statistics(first_layer_filters(lite0.model))
    assert stats["alive"].sum() >= 24 and stats["rank1"].median() > 0.9
    assert stats["edge"].sum() >= 8 and stats["colour"].sum() >= 5
    edges = response_correlation(lite0.model, x, edge_strength(x))[stats["alive"]]
    colours = response_correlation(lite0.model, x, colourfulness(x))[stats["alive"]]
    assert edges[stats["edge"]].median() > 0.3 > edges[stats["colour"]].median()
    assert colours[stats["colour"]].median() > 0.5 > colours[stats["edge"]].median()


def gabor(size, degrees, period=6.0):
    """A grey (3-channel) Gabor filter whose stripes run across ``degrees`` (0: it varies along x)."""
    import math
    y, x = torch.meshgrid(torch.arange(size) - size // 2, torch.arange(size) - size // 2, indexing="ij")
    t = math.radians(degrees)
    g = torch.exp(-(x ** 2 + y ** 2) / (2 * (size / 4) ** 2)) * torch.cos(2 * math.pi * (x * math.cos(t) + y * math.sin(t)) / period)
    return g.float().expand(3, size, size)


def test_orientation_selectivity_finds_the_orientation_of_a_gabor_and_none_in_a_blob():
    from cnn_helpers.featurevis.layers import orientation_selectivity

    blob = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]).expand(3, 3, 3)  # 4-fold symmetric: no orientation
    filters = torch.stack([gabor(11, 0), gabor(11, 60), gabor(11, 135), torch.zeros(3, 11, 11),
                           torch.nn.functional.pad(blob, (4, 4, 4, 4))])
    selectivity, preferred = orientation_selectivity(filters)
    assert (selectivity[:3] > 0.8).all() and selectivity[4] < 0.01 and selectivity[3] == 0  # all-zero filter: 0
    off = (preferred[:3] - torch.tensor([0.0, 60.0, 135.0])) % 180  # orientations are modulo 180 degrees
    assert torch.minimum(off, 180 - off).max() < 2.0
    edge = torch.tensor([[-1.0, 0, 1]] * 3).expand(3, 3, 3)[None]  # a 3x3 vertical-edge filter: tuned, but broadly
    s, p = orientation_selectivity(edge)
    assert 0.2 < s.item() < 0.9 and min(p.item(), 180 - p.item()) < 1.0


def test_orientation_selectivity_checks_its_arguments():
    from cnn_helpers.featurevis.layers import orientation_selectivity

    with pytest.raises(ValueError, match="filters"):
        orientation_selectivity(torch.zeros(3, 3, 3))
    with pytest.raises(TypeError, match="periods"):
        orientation_selectivity(torch.zeros(1, 3, 3, 3), periods=4)
    with pytest.raises(ValueError, match="periods"):
        orientation_selectivity(torch.zeros(1, 3, 3, 3), periods=(1,))
