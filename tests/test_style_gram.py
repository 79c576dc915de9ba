"""Gram matrices, feature taps and the style/content losses (cnn_helpers.style)."""

import pytest
import torch
import torchvision
from helpers import assert_unchanged, hooks, mixed_mode, randomize_batch_norm, snapshot
from torch import nn

from cnn_helpers import style
from cnn_helpers.core.budget import pass_values
from cnn_helpers.core.memory import CostWarning
from cnn_helpers.pretrained.models import ImageClassifier, Normalize

LAYERS = ["net.1", "net.3"]


def tiny_model(generator: torch.Generator) -> nn.Module:
    """conv-relu-conv-relu-pool-linear with batch norm, taking [0, 1] images; layer names like load_pretrained's."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU(),
                        nn.BatchNorm2d(6), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
    return ImageClassifier(net, Normalize((0.5,) * 3, (0.25,) * 3)).eval()


def test_gram_matrix_by_hand():
    tiny = torch.tensor([[[[1., 0.], [2., 1.]], [[0., 1.], [1., 0.]]]])
    assert torch.allclose(style.gram_matrix(tiny), torch.tensor([[[1.5, 0.5], [0.5, 0.5]]]))
    assert torch.allclose(style.gram_matrix(tiny, centred=True), torch.tensor([[[0.5, 0.0], [0.0, 0.25]]]))


def test_gram_matrix_is_covariance_plus_means_and_ignores_positions(generator):
    features = torch.rand(3, 5, 4, 6, generator=generator, dtype=torch.float64)
    gram, centred = style.gram_matrix(features), style.gram_matrix(features, centred=True)
    mean = features.mean(dim=(2, 3))
    assert torch.allclose(gram, centred + mean[:, :, None] * mean[:, None, :])
    flat = features.flatten(2)
    reference = torch.stack([torch.cov(f, correction=0) for f in flat])  # numpy-style covariance as the oracle
    assert torch.allclose(centred, reference)
    shuffled = flat[..., torch.randperm(24, generator=generator)].reshape(features.shape)
    assert torch.allclose(style.gram_matrix(shuffled), gram) and torch.allclose(style.gram_matrix(shuffled, centred=True), centred)
    assert torch.allclose(style.gram_matrix(features[1:2]), gram[1:2])  # images of a batch are independent


@pytest.mark.parametrize("centred", [False, True])
def test_gram_matrix_gradient_matches_autograd_of_the_formula_with_one_matrix_product(generator, centred):
    """The hand-written backward gives autograd's gradient of ``F Fᵀ / P`` (through the mean when centred), in one
    product where autograd's own needs two (the bulk of a style loop's loss)."""
    features = torch.rand(2, 4, 3, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f: style.gram_matrix(f, centred=centred), (features,))
    weights = torch.randn(2, 4, 4, generator=generator, dtype=torch.float64)  # a loss that is not symmetric in (i, j)
    flat = features.flatten(2)
    flat = flat - flat.mean(dim=2, keepdim=True) if centred else flat
    (expected,) = torch.autograd.grad(((flat @ flat.transpose(1, 2) / 15) * weights).sum(), features)
    gram = style.gram_matrix(features, centred=centred)
    with _CountOps() as ops:
        (got,) = torch.autograd.grad((gram * weights).sum(), features)
    torch.testing.assert_close(got, expected)
    assert ops.count("bmm") == 1, ops.names


class _CountOps(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the name of every aten operation run while active."""

    def __enter__(self) -> "_CountOps":
        self.names: list[str] = []
        return super().__enter__()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's signature
        self.names.append(func.__name__)
        return func(*args, **(kwargs or {}))

    def count(self, prefix: str) -> int:
        return sum(name.startswith(prefix) for name in self.names)


@pytest.mark.parametrize("bad", [torch.ones(2, 3, 4), torch.ones(1, 2, 3, 3, dtype=torch.long), "features"])
def test_gram_matrix_rejects_non_feature_maps(bad):
    with pytest.raises((TypeError, ValueError), match="features must be a (float|non-empty) tensor"):
        style.gram_matrix(bad)


def test_feature_maps_shapes_upsampling_and_early_stop(generator):
    model = tiny_model(generator)
    x = torch.rand(2, 3, 8, 8, generator=generator)
    maps = style.feature_maps(model, x, LAYERS)
    assert [tuple(m.shape) for m in maps.values()] == [(2, 4, 8, 8), (2, 6, 4, 4)]
    assert tuple(style.feature_maps(model, x, LAYERS, upsample=2)["net.3"].shape) == (2, 6, 8, 8)
    calls = []
    handle = model.net[7].register_forward_hook(lambda *_: calls.append(1))
    style.feature_maps(model, x, ["net.1"])
    handle.remove()
    assert calls == [], "layers after the last tap are not computed"


def test_feature_maps_let_gradients_through_and_leave_the_model_alone(generator):
    model = mixed_mode(tiny_model(generator))
    x = torch.rand(1, 3, 8, 8, generator=generator, requires_grad=True)
    before = snapshot(model)
    maps = style.feature_maps(model, x, LAYERS)
    (grad,) = torch.autograd.grad(maps["net.3"].sum(), x)
    assert grad.abs().sum() > 0
    assert_unchanged(before, snapshot(model))


def test_unknown_layer_and_bad_images_are_refused(generator):
    model = tiny_model(generator)
    x = torch.rand(1, 3, 8, 8, generator=generator)
    with pytest.raises(ValueError, match="'net.9' is not a submodule.*Valid names"):
        style.feature_maps(model, x, ["net.9"])
    with pytest.raises(ValueError, match=r"must output \(N, C, H, W\) feature maps"):
        style.feature_maps(model, x, ["net.7"])  # the linear layer
    with pytest.raises(ValueError, match="3 channels"):
        style.feature_maps(model, x[:, :1], LAYERS)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        style.feature_maps(model, x * 2 + 1, LAYERS)
    assert hooks(model) == 0


def test_losses_are_zero_at_their_targets_and_positive_elsewhere(generator):
    model = tiny_model(generator)
    style_image, other = torch.rand(2, 1, 3, 8, 8, generator=generator)
    for centred in (True, False):
        targets = style.style_targets(model, style_image, LAYERS, centred=centred, upsample=1)
        assert [tuple(g.shape) for g, _ in targets.values()] == [(1, 4, 4), (1, 6, 6)]
        maps = style.feature_maps(model, torch.cat([style_image, other]), LAYERS)
        loss = style.style_loss(maps, targets, centred=centred)
        assert loss.shape == (2,) and loss[0].abs() < 1e-10 and loss[1] > 1e-3
    content = style.content_loss(maps, {name: maps[name][:1] for name in LAYERS})
    assert content[0] == 0 and content[1] > 0


def test_style_loss_by_hand():
    features = {"a": torch.tensor([[[[2., 0.]], [[0., 2.]]]])}  # two channels, two positions
    targets = {"a": (torch.eye(2)[None], torch.tensor([[1., 1.]]))}
    # centred Gram [[1, -1], [-1, 1]] vs identity: (0 + 1 + 1 + 0) / 2 = 1; means equal: 0
    assert torch.allclose(style.style_loss(features, targets), torch.tensor([1.0]))
    # plain Gram [[2, 0], [0, 2]] vs identity: (1 + 1) / 2 = 1
    assert torch.allclose(style.style_loss(features, targets, centred=False), torch.tensor([1.0]))


def test_style_targets_refuse_an_image_too_small_for_the_layers(generator):
    model = tiny_model(generator)
    with pytest.raises(ValueError, match=r"style of 2x2 px is too small for layer 'net.3' \(its feature map is 1x1\)"):
        style.style_targets(model, torch.rand(1, 3, 2, 2, generator=generator), LAYERS, upsample=1)


def test_pixels_are_a_layer_of_colour_statistics(generator):
    model = tiny_model(generator)
    image = torch.rand(1, 3, 8, 8, generator=generator)
    targets = style.style_targets(model, image, LAYERS, upsample=1, pixels=True)
    assert list(targets) == [style.PIXELS, *LAYERS]
    gram, mean = targets[style.PIXELS]
    assert torch.allclose(gram[0], torch.cov(image.flatten(2)[0], correction=0), atol=1e-6)
    assert torch.allclose(mean, image.mean(dim=(2, 3)))
    maps = style.style_maps(model, image, LAYERS, upsample=1, pixels=True)
    assert maps[style.PIXELS] is image and style.style_loss(maps, targets).abs().item() < 1e-10


def test_maps_and_style_statistics_do_not_depend_on_the_models_mode(generator):
    """A model left in training mode (dropout on) gives the eval-mode maps, and gets its modes back."""
    model = tiny_model(generator)
    model.net.insert(2, nn.Dropout(0.5))  # after the first ReLU: net.1 stays the first tap
    x = torch.rand(1, 3, 8, 8, generator=generator)
    expected = style.style_targets(model, x, ["net.1", "net.4"])
    model.train()
    before = snapshot(model)
    for _ in range(3):
        again = style.style_targets(model, x, ["net.1", "net.4"])
        assert all(torch.equal(again[k][0], expected[k][0]) for k in expected)
    maps = style.feature_maps(model, x, ["net.4"])
    assert maps["net.4"].requires_grad  # a building block of the optimization: attached to the graph
    assert_unchanged(before, snapshot(model))


def test_gram_matrix_refuses_values_that_would_give_nan():
    for bad in (torch.full((1, 2, 3, 3), float("nan")), torch.full((1, 2, 3, 3), float("inf")), torch.ones(0, 2, 3, 3)):
        with pytest.raises(ValueError, match="features"):
            style.gram_matrix(bad)
    with pytest.raises(TypeError, match="centred"):
        style.gram_matrix(torch.ones(1, 2, 3, 3), centred=1)


def _wrap(net: nn.Module) -> nn.Module:
    return ImageClassifier(net, Normalize((0.5,) * 3, (0.25,) * 3)).eval()


def _gram_by_hand(f: torch.Tensor) -> torch.Tensor:
    flat = f.flatten(2)
    return torch.einsum("ncp,ndp->ncd", flat, flat) / flat.shape[-1]


def test_an_in_place_relu_after_a_tapped_convolution_leaves_its_statistics_alone(generator):
    """VGG's ReLU(inplace=True) right after the tapped convolution must not rectify the recorded map."""
    torch.manual_seed(0)
    model = _wrap(torchvision.models.vgg11())
    x = torch.rand(1, 3, 32, 32, generator=generator)
    with torch.no_grad():
        conv = model.net.features[0](model.normalize(x))  # by hand: the convolution's output, before the ReLU
    assert (conv < -0.01).any(), "the ReLU would change this map"
    layers = ["net.features.0", "net.features.3"]  # a later tap: the pass runs through the in-place ReLU
    targets = style.style_targets(model, x, layers, centred=False, upsample=1)
    torch.testing.assert_close(targets["net.features.0"][0], _gram_by_hand(conv))
    torch.testing.assert_close(style.feature_maps(model, x, layers)["net.features.0"], conv)
    other = torch.rand(1, 3, 32, 32, generator=generator)
    with torch.no_grad():
        conv_other = model.net.features[0](model.normalize(other))
    expected = (relative(_gram_by_hand(conv_other - conv_other.mean(dim=(2, 3), keepdim=True)),
                         _gram_by_hand(conv - conv.mean(dim=(2, 3), keepdim=True)))
                + relative(conv_other.mean(dim=(2, 3)), conv.mean(dim=(2, 3))))
    torch.testing.assert_close(style.style_distance(model, other, x, layers="net.features.0"), expected)


def relative(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a - b) ** 2).flatten(1).sum(1) / (b**2).sum()


def test_a_resnets_in_place_addition_after_a_tapped_layer_leaves_its_statistics_alone(generator):
    """ResNet's ``out += identity`` right after the tapped batch norm must not add the shortcut to the record."""
    torch.manual_seed(0)
    model = _wrap(torchvision.models.resnet18())
    randomize_batch_norm(model, generator)
    x = torch.rand(1, 3, 32, 32, generator=generator)
    net, block = model.net, model.net.layer1[0]
    with torch.no_grad():  # by hand: the stem, then the first block's residual branch up to its second batch norm
        h = net.maxpool(net.relu(net.bn1(net.conv1(model.normalize(x)))))
        branch = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(h)))))
    layers = ["net.layer1.0.bn2", "net.layer2"]
    for centred in (False, True):
        gram, mean = style.style_targets(model, x, layers, centred=centred, upsample=1)["net.layer1.0.bn2"]
        flat = branch - branch.mean(dim=(2, 3), keepdim=True) if centred else branch
        torch.testing.assert_close(gram, _gram_by_hand(flat))
        torch.testing.assert_close(mean, branch.mean(dim=(2, 3)))
    maps = style.feature_maps(model, x, layers)
    torch.testing.assert_close(maps["net.layer1.0.bn2"], branch)


def test_style_loss_and_content_loss_say_what_a_target_must_be():
    features = {"a": torch.rand(2, 3, 4, 4)}
    good = {"a": (torch.eye(3)[None], torch.ones(1, 3))}
    assert style.style_loss(features, good).shape == (2,)
    for bad, message in (
            ({"a": torch.eye(3)[None]}, r"targets\['a'\] must be a pair \(Gram matrix \(1, C, C\), channel means"),
            ({"a": (torch.eye(3)[None],)}, r"targets\['a'\] must be a pair"),
            ({"a": (torch.eye(4)[None], torch.ones(1, 4))}, r"Gram matrix \(1, 3, 3\) and channel means \(1, 3\).*"
                                                             r"of 3 channels, got shape \(1, 4, 4\)"),
            ({"a": (torch.eye(3), torch.ones(3))}, r"got shape \(3, 3\) and shape \(3,\)"),
            ({"a": (torch.eye(3)[None].expand(3, 3, 3), torch.ones(3, 3))}, "Gram matrix"),  # 3 targets, 2 images
            ({"b": good["a"]}, r"features lack the layers \['b'\]"), ({}, "non-empty dict"), ([], "non-empty dict")):
        with pytest.raises((TypeError, ValueError), match=message):
            style.style_loss(features, bad)
    with pytest.raises(ValueError, match=r"features\['a'\] must be non-empty float feature maps \(N, C, H, W\)"):
        style.style_loss({"a": torch.rand(3, 4, 4)}, good)
    content = {"a": torch.rand(1, 3, 4, 4)}
    assert style.content_loss(features, content).shape == (2,)
    for bad in ({"a": torch.rand(1, 3, 4, 5)}, {"a": torch.rand(3, 4, 4)}, {"a": (torch.rand(1, 3, 4, 4),)},
                {"a": torch.rand(3, 3, 4, 4)}):
        with pytest.raises(ValueError, match=r"targets\['a'\] must be the content's feature maps of shape "
                                             r"\(1, 3, 4, 4\) \(or one per image, \(2, 3, 4, 4\)\)"):
            style.content_loss(features, bad)


def test_gram_matrix_refuses_a_huge_result_before_allocating_it():
    wide = torch.ones(1, 1, 1, 1).expand(1, 60_000, 1, 1)  # 60,000 channels: a 13 GiB Gram matrix, from 240 kB
    with pytest.raises(ValueError, match=r"gram_matrix of 1x60000 channels.*would allocate about 13 GiB"):
        style.gram_matrix(wide)
    with pytest.warns(CostWarning, match="gram_matrix"):
        style.gram_matrix(torch.ones(1, 1, 1, 1).expand(1, 17_000, 1, 1))


def test_style_distance_takes_a_single_layer_name(generator):
    model = tiny_model(generator)
    images, style_image = torch.rand(2, 3, 8, 8, generator=generator), torch.rand(1, 3, 8, 8, generator=generator)
    one = style.style_distance(model, images, style_image, layers="net.1")
    assert torch.equal(one, style.style_distance(model, images, style_image, layers=["net.1"]))
    assert not torch.equal(one, style.style_distance(model, images, style_image, layers=LAYERS))


def test_a_huge_style_image_is_refused_or_warned_about_before_the_forward_pass(generator):
    """A 2500 px style image upsampled 2x peaked at 9 GiB on Lite0 (issue 20 #4): estimated before any work now, for
    the model at hand (core.budget.check_pass_memory; the tiny model holds far less per pixel than Lite0)."""
    model = tiny_model(generator)
    before, calls = snapshot(model), []
    handle = model.net[0].register_forward_hook(lambda *_: calls.append(1))
    try:
        with pytest.raises(ValueError, match=r"style_targets on 1x5000x5000 px \(upsample=2\) would allocate about "
                                             r"\d+ GiB; use a smaller image \(resize_to\) or upsample=1"):
            style.style_targets(model, torch.full((1, 3, 1, 1), 0.5).expand(1, 3, 5000, 5000), LAYERS)
        with pytest.raises(ValueError, match="style_distance's style on 1x10000x10000 px"):  # not upsampled
            style.style_distance(model, torch.rand(1, 3, 8, 8, generator=generator),
                                 torch.full((1, 3, 1, 1), 0.5).expand(1, 3, 10_000, 10_000), layers=LAYERS)
    finally:
        handle.remove()
    assert not calls, "the network ran before the refusal"
    assert_unchanged(before, snapshot(model))
    with pytest.warns(CostWarning, match=r"feature_maps on 1x4000x4000 px \(upsample=1\) would allocate about \d\.\d GiB"):
        style.feature_maps(model, torch.full((1, 3, 1, 1), 0.5).expand(1, 3, 4000, 4000), LAYERS)


def test_the_memory_estimate_is_core_budgets_with_the_tapped_maps_counted(generator):
    """Without a graph the taps keep every style layer's map: two passes of core.budget.pass_values; with the graph
    kept for backward, one pass (which counts every layer's output already)."""
    model = tiny_model(generator)
    image = torch.full((1, 3, 1, 1), 0.5).expand(1, 3, 2000, 2000)   # a shape without the memory
    for graph, copies in ((False, 2), (True, 1)):
        expected = copies * pass_values(model, torch.empty(1, 3, 4000, 4000, device="meta"), backward=graph) * 4 / 2**30
        with torch.set_grad_enabled(graph), pytest.warns(CostWarning) as warned:
            style.style_maps(model, image, LAYERS, upsample=2)
        assert f"would allocate about {expected:.1f} GiB" in str(warned[0].message), (expected, warned[0].message)