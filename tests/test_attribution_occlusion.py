"""Tests for cnn_helpers.occlusion (incremental and approximate occlusion) and occlusion_map(method=...):
equality with the plain batched path on the four architectures, regions that contain every changed activation,
multiply-accumulates that agree with the complexity module, fallbacks that never give a wrong answer, state."""

from __future__ import annotations

import math

import helpers
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from cnn_helpers.attribution.occlusion.map import occlusion_map
from cnn_helpers.nets.complexity import count_macs
from cnn_helpers.nets.efficientnet import SameConv2d
from cnn_helpers.pretrained.models import ImageClassifier, Normalize, load_pretrained
from cnn_helpers.attribution.occlusion.incremental import occlusion_plan
from cnn_helpers.attribution.occlusion.drill import drill_down
from cnn_helpers.attribution.occlusion.plan import _through_window

pytestmark = pytest.mark.filterwarnings("ignore:.*(require|ReLU|hooks).*:UserWarning")


def classifier(name: str) -> nn.Module:
    """A torchvision architecture with seeded random weights and random batch-norm statistics, in [0, 1] pixels."""
    torch.manual_seed(0)
    net = torchvision.models.get_model(name, weights=None)
    helpers.randomize_batch_norm(net, torch.Generator().manual_seed(1))
    return ImageClassifier(net, Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))).eval()


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    return {"efficientnet_lite0": load_pretrained("efficientnet_lite0").model,
            **{name: classifier(name) for name in ("resnet18", "resnet50", "vgg16")}}


def images(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def relative_error(ours: torch.Tensor, plain: torch.Tensor) -> float:
    """Largest difference per image, relative to that image's range of scores."""
    spread = plain.amax(dim=(1, 2)) - plain.amin(dim=(1, 2))
    return ((ours - plain).abs().amax(dim=(1, 2)) / spread).max().item()


# --- the exact incremental path equals the plain one ---------------------------------------------

@pytest.mark.parametrize("name, n, size, window, stride, baseline", [
    ("efficientnet_lite0", 2, (64, 64), 16, 8, 0.0),      # TensorFlow-"SAME" convolutions, depthwise, ReLU6
    ("efficientnet_lite0", 1, (57, 71), (9, 13), (5, 6), 0.5),  # odd sizes: asymmetric padding, windows over the edge
    ("resnet18", 2, (48, 48), 12, 6, 0.0),
    ("resnet18", 1, (61, 45), (13, 11), (6, 5), "tensor"),
    ("resnet50", 1, (40, 40), 10, 5, 0.3),
    ("vgg16", 1, (32, 32), 8, 4, 0.0),
    ("vgg16", 1, (36, 44), (12, 14), (6, 7), 0.5),
])
def test_incremental_equals_batched(models, name, n, size, window, stride, baseline):
    model, x = models[name], images(n, *size)
    if baseline == "tensor":
        baseline = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(3))
    target = torch.tensor([1, 7][:n])
    plain = occlusion_map(model, x, target, window=window, stride=stride, baseline=baseline, method="batched")
    ours = occlusion_map(model, x, target, window=window, stride=stride, baseline=baseline, method="incremental")
    assert relative_error(ours, plain) <= 1e-4


def test_probabilities_and_small_batches_are_equal_too(models):
    model, x = models["resnet18"], images(1, 32, 32, seed=2)
    kwargs = dict(window=8, stride=6, output="probability")
    plain = occlusion_map(model, x, 3, method="batched", **kwargs)
    ours = occlusion_map(model, x, 3, method="incremental", perturbations_per_eval=3, **kwargs)
    assert relative_error(ours, plain) <= 1e-4


def test_incremental_equals_captum(models):
    captum_attr = pytest.importorskip("captum.attr")
    model, x = models["resnet18"], images(1, 32, 32)
    theirs = captum_attr.Occlusion(model).attribute(x, sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4), target=5,
                                                    perturbations_per_eval=25)
    ours = occlusion_map(model, x, 5, window=8, stride=4, method="incremental")
    assert relative_error(ours, theirs[:, 0]) <= 1e-4


# --- regions: every changed activation lies inside the recomputed rectangle -----------------------

@pytest.mark.parametrize("name, layers", [
    ("efficientnet_lite0", ("net._conv_stem", "net._act_stem", "net._blocks.2", "net._blocks.4", "net._blocks.10")),
    ("resnet18", ("net.conv1", "net.maxpool", "net.layer1", "net.layer2", "net.layer3")),
])
def test_regions_contain_every_changed_activation(models, name, layers):
    model, x = models[name], images(1, 96, 96, seed=4)
    plan = occlusion_plan(model, x, window=16, stride=16)
    seen: dict[str, torch.Tensor] = {}
    handles = [model.get_submodule(layer).register_forward_hook(lambda m, i, o, k=layer: seen.__setitem__(k, o.clone()))
               for layer in layers]
    try:
        with torch.no_grad():
            model(x)
            clean = dict(seen)
            for index in (0, 7, len(plan.windows) - 1):
                y, x0 = plan.windows[index]
                occluded = x.clone()
                occluded[:, :, y:y + 16, x0:x0 + 16] = 0
                model(occluded)
                for layer in layers:
                    top, left, h, w, size = plan.region(layer, index)
                    changed = (seen[layer] != clean[layer]).any(dim=1)[0]
                    assert changed.shape == size and changed.any()
                    changed[top:top + h, left:left + w] = False
                    assert not changed.any(), f"{layer}: activations changed outside the planned region"
    finally:
        for handle in handles:
            handle.remove()


def test_changed_outputs_of_a_window_op_by_hand():
    start = torch.tensor([5, 0, 30])
    # 3x3, stride 1, padding 1: rows 5..8 change outputs 4..9 (one more on each side), clipped at the border
    lo, size = _through_window(start, 4, (3, 1, 1, 1), 32, None)
    assert size == 6 and lo.tolist() == [4, 0, 26]
    # 1x1, stride 2 (a ResNet shortcut): rows 5..7 reach only the outputs at rows 6 -> output 3
    lo, size = _through_window(torch.tensor([5]), 3, (1, 2, 0, 0), 16, None)
    assert (lo.item(), size) == (3, 1)
    # capped at half of an 8-row map: the centre of the 6 changed rows is kept
    lo, size = _through_window(torch.tensor([2]), 4, (3, 1, 1, 1), 8, 4)
    assert (lo.item(), size) == (2, 4)


def test_field_limit_caps_every_region(models):
    plan = occlusion_plan(models["resnet18"], images(1, 64, 64), window=16, stride=8, field_limit=0.5)
    exact = occlusion_plan(models["resnet18"], images(1, 64, 64), window=16, stride=8)
    for name, region in plan.regions.items():
        if region is not None and name != plan.graph.input:
            assert region.h <= math.ceil(0.5 * region.size[0]) and region.w <= math.ceil(0.5 * region.size[1])
    assert plan.ceiling() > exact.ceiling()


# --- multiply-accumulates ------------------------------------------------------------------------

def test_whole_pass_macs_equal_the_complexity_count(models):
    for name in ("efficientnet_lite0", "resnet18"):
        x = images(1, 64, 64)
        full, recomputed = occlusion_plan(models[name], x, window=16, stride=8).macs()
        assert full == count_macs(models[name], x.shape[1:]) and 0 < recomputed < full


def test_recomputed_macs_of_one_convolution_by_hand():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    plan = occlusion_plan(net, images(1, 20, 20), window=4, stride=4)
    full, recomputed = plan.macs()
    assert full == 20 * 20 * 4 * 3 * 9  # every output: 4 filters of 3 x 3 x 3
    assert recomputed == 6 * 6 * 4 * 3 * 9  # a 4 x 4 window changes 6 x 6 outputs
    assert plan.ceiling() == pytest.approx((25 + 1) * full / (full + 25 * recomputed))


def test_values_written_by_hand_and_the_ceiling_by_them():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    plan = occlusion_plan(net, images(1, 20, 20), window=4, stride=4)
    full, recomputed = plan.values()
    assert full == 4 * 20 * 20 + 4 + 4  # the convolution's map, the pooled (4, 1, 1) and the flattened (4,)
    assert recomputed == 4 * 6 * 6 + 4 + 4  # 6 x 6 outputs of the map; after pooling everything
    assert plan.ceiling(by="values") == pytest.approx((25 + 1) * full / (full + 25 * recomputed))
    with pytest.raises(ValueError, match="by must be one of 'macs', 'values'"):
        plan.ceiling(by="flops")


def test_on_efficientnet_lite0_the_values_allow_more_than_the_macs(models):
    # late 1 x 1 convolutions on 7 x 7 maps hold most MACs and are recomputed whole; early maps hold most values
    plan = occlusion_plan(models["efficientnet_lite0"], images(1, 224, 224), window=32, stride=16)
    assert plan.ceiling(by="values") > 2 * plan.ceiling()


def test_ceiling_of_efficientnet_lite0_at_224(models):
    plan = occlusion_plan(models["efficientnet_lite0"], images(1, 224, 224), window=32, stride=16)
    assert len(plan.windows) == 169 and plan.ceiling() == pytest.approx(1.54, abs=0.01)


# --- fallbacks: never a wrong answer -------------------------------------------------------------

class Branchy(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 3)

    def forward(self, x):
        x = self.conv(x)
        if x.mean() > 0:
            x = x.relu()
        return self.fc(x.mean(dim=(2, 3)))


class BottomPad(SameConv2d):
    """A convolution that pads in forward() but not like TensorFlow: the planner's guess is wrong."""

    def forward(self, x):
        return F.conv2d(F.pad(x, (0, 2, 0, 2)), self.weight, None, self.stride)


class Rolled(nn.Module):
    """An op the planner does not know (torch.roll) in the middle: computed in full from there on."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.Linear(4, 3)

    def forward(self, x):
        x = torch.roll(self.a(x).relu(), 2, dims=3)
        return self.fc(self.b(x).amax(dim=(2, 3)))


@pytest.mark.parametrize("model, notice", [
    (Branchy(), "torch.fx cannot trace it"),
    (nn.Sequential(BottomPad(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)), "disagrees with the model"),
])
def test_unsupported_models_fall_back_to_batches_with_a_notice(model, notice):
    torch.manual_seed(0)
    model, x = model.eval(), images(1, 12, 12)
    plain = occlusion_map(model, x, 1, window=4, stride=2, method="batched")
    with pytest.warns(UserWarning, match=f"cannot run incremental .*{notice}.*; using method='batched'"):
        ours = occlusion_map(model, x, 1, window=4, stride=2, method="incremental")
    assert torch.equal(ours, plain)


@pytest.mark.parametrize("method", ["auto", "incremental", "approximate"])
def test_a_model_that_reads_shapes_in_forward_falls_back_to_batches(method):
    # ShuffleNetV2's channel shuffle unpacks `batchsize, num_channels, height, width = x.size()` (issue 20, #3: an
    # AttributeError before); in an incremental run that would be the shape of a batch of windows
    model, x = classifier("shufflenet_v2_x0_5"), images(1, 32, 32)
    plain = occlusion_map(model, x, 3, window=16, stride=8, method="batched")
    with pytest.warns(UserWarning, match=f"cannot run {method} \\(its forward reads the shape of an activation"):
        assert torch.equal(occlusion_map(model, x, 3, window=16, stride=8, method=method), plain)
    with pytest.raises(ValueError, match="the model cannot be run incrementally: its forward reads the shape of an "):
        occlusion_plan(model, x, window=16, stride=8)


def test_a_model_with_hooks_falls_back_and_keeps_its_hooks():
    torch.manual_seed(0)
    model, x = Rolled().eval(), images(1, 12, 12)
    handle = model.a.register_forward_hook(lambda m, i, out: out * 2)  # changes the output: must not be skipped
    try:
        plain = occlusion_map(model, x, 0, window=4, stride=4, method="batched")
        with pytest.warns(UserWarning, match="it has forward hooks \\(on a\\)"):
            assert torch.equal(occlusion_map(model, x, 0, window=4, stride=4, method="incremental"), plain)
        assert helpers.hooks(model) == 1
    finally:
        handle.remove()


def test_batch_norm_with_batch_statistics_is_not_pointwise():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4, track_running_stats=False), nn.Conv2d(4, 4, 3),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    kinds = [s.kind for s in occlusion_plan(net, images(2, 12, 12), window=4, stride=4).graph.steps]
    assert kinds == ["window", "pointwise", "dense", "window", "dense", "dense"]


def test_unknown_ops_are_computed_in_full():
    torch.manual_seed(0)
    model, x = Rolled().eval(), images(2, 16, 16)
    plan = occlusion_plan(model, x, window=4, stride=4)
    assert [s.kind for s in plan.graph.steps if s.name.startswith("roll")] == ["dense"]
    plain = occlusion_map(model, x, 2, window=4, stride=4, method="batched")
    assert relative_error(occlusion_map(model, x, 2, window=4, stride=4, method="incremental"), plain) <= 1e-5


# --- approximate --------------------------------------------------------------------------------

def test_drill_down_interpolates_a_smooth_map_from_a_quarter_of_the_windows():
    grid = (9, 9)
    truth = torch.arange(81, dtype=torch.float64).view(9, 9).mul(0.1).add(torch.arange(9.0)[:, None] * 2).view(81, 1)
    computed = []
    drops = drill_down(lambda wins: (computed.append(len(wins)), truth[wins])[1], grid, tolerance=0.01)
    assert torch.allclose(drops, truth)  # a plane: bilinear interpolation is exact, the first round confirms it
    assert computed[0] == 25 and sum(computed) == 25 + math.ceil(0.1 * 56)


def test_drill_down_with_zero_tolerance_computes_every_window():
    truth = torch.randn(7 * 5, 2, generator=torch.Generator().manual_seed(0))
    computed = []
    drops = drill_down(lambda wins: (computed.append(len(wins)), truth[wins])[1], (7, 5), tolerance=0.0)
    assert torch.equal(drops, truth) and sum(computed) == 35


def test_approximate_map_is_close_to_the_exact_one(models):
    model, x = models["efficientnet_lite0"], images(1, 64, 64, seed=5)
    exact = occlusion_map(model, x, 3, window=8, stride=4, method="incremental").flatten()
    approximate = occlusion_map(model, x, 3, window=8, stride=4, method="approximate").flatten()
    assert torch.corrcoef(torch.stack([exact, approximate]))[0, 1] > 0.9
    assert not torch.equal(exact, approximate)


# --- options, state ------------------------------------------------------------------------------

def test_auto_picks_batches_where_reuse_saves_nothing(models):
    # one window covering the whole image: nothing to reuse, auto computes plain batches (no notice)
    model, x = models["resnet18"], images(1, 32, 32)
    with torch.no_grad():
        expected = model(x)[0, 4] - model(torch.zeros_like(x))[0, 4]
    heat = occlusion_map(model, x, 4, window=32, stride=32)
    assert torch.allclose(heat, expected.expand(1, 32, 32), atol=1e-5)


def test_bad_method(models):
    with pytest.raises(ValueError, match="method must be one of 'auto', 'incremental', 'batched', 'approximate'"):
        occlusion_map(models["resnet18"], images(1, 16, 16), 0, window=4, stride=4, method="fast")


@pytest.mark.parametrize("method", ["incremental", "approximate"])
def test_model_and_images_are_left_as_found(method):
    model, x = helpers.mixed_mode(classifier("resnet18")), images(1, 32, 32)
    before = helpers.snapshot(model, x)
    occlusion_map(model, x, 2, window=8, stride=4, method=method)
    helpers.assert_unchanged(before, helpers.snapshot(model, x))
    with pytest.raises(ValueError, match="target must be a class index"):
        occlusion_map(model, x, 5000, window=8, stride=4, method=method)
    helpers.assert_unchanged(before, helpers.snapshot(model, x))


def test_occlusion_plan_leaves_model_and_images_as_found():
    model, x = helpers.mixed_mode(classifier("resnet18")), images(1, 32, 32)
    before = helpers.snapshot(model, x)
    plan = occlusion_plan(model, x, window=8, stride=4)
    helpers.assert_unchanged(before, helpers.snapshot(model, x))
    assert len(plan.windows) == 7 * 7 and plan.ceiling() > 1
    with pytest.raises(ValueError, match="field_limit"):
        occlusion_plan(model, x, window=8, stride=4, field_limit=1.5)
    with pytest.raises(ValueError, match="need stride <= window"):
        occlusion_plan(model, x, window=8, stride=16)
    helpers.assert_unchanged(before, helpers.snapshot(model, x))
