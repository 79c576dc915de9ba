"""DeepDream raises its layer's activation; inversion matches features and loses more of the photo with depth."""

import helpers
import pytest
import torch
from torch import nn

from cnn_helpers.core.data import load_image
from cnn_helpers.featurevis.dream import _octave_sizes, deepdream, invert_features
from cnn_helpers.featurevis.layers import activations
from cnn_helpers.pretrained.models import load_pretrained


def small_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 8, 3, stride=2),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    helpers.randomize_batch_norm(net, torch.Generator().manual_seed(1))
    return net.eval()


def photo(size=32):
    return load_image("cat", size=size)


def test_octave_sizes_run_from_small_to_the_original():
    assert _octave_sizes(100, 80, 3, 2.0) == [(25, 20), (50, 40), (100, 80)]
    assert _octave_sizes(20, 20, 3, 2.0)[0] == (16, 16)  # never below the smallest useful size


def test_deepdream_raises_the_layer_activation_and_keeps_the_photo_s_shape():
    model, x = small_net(), photo()
    dream = deepdream(model, x, "2", octaves=2, steps=5, lr=0.02, generator=torch.Generator().manual_seed(0))
    assert dream.image.shape == x.shape and 0 <= dream.image.min() and dream.image.max() <= 1
    before = activations(model, x, "2")["2"].pow(2).mean()
    after = activations(model, dream.image, "2")["2"].pow(2).mean()
    assert after > 1.5 * before
    assert dream.history.shape == (10, 1) and dream.objective == "L2(2)"
    assert (dream.image - x).abs().mean() < 0.2, "a dream, not a new picture"


def test_deepdream_is_seeded_and_leaves_model_and_photo_alone():
    model, x = helpers.mixed_mode(small_net()), photo()
    before = helpers.snapshot(model, x)
    runs = [deepdream(model, x, "0", octaves=2, steps=2, generator=torch.Generator().manual_seed(3)).image for _ in range(2)]
    helpers.assert_unchanged(before, helpers.snapshot(model, x))
    assert torch.equal(*runs)
    with torch.inference_mode():
        deepdream(model, x, "0", octaves=1, steps=1)
    helpers.assert_unchanged(before, helpers.snapshot(model, x))


def test_inversion_matches_features_and_reports_errors():
    model, x = small_net(), photo()
    inv = invert_features(model, x, "2", steps=40, generator=torch.Generator().manual_seed(0))
    assert inv.image.shape == x.shape and inv.history.shape == (40, 1)
    assert inv.history[-1] > 0.5 * inv.history[0], "the feature distance (negated) shrank"
    assert 0 <= inv.feature_error.item() < 0.5
    target, reached = activations(model, x, "2")["2"], activations(model, inv.image, "2")["2"]
    relative = (reached - target).pow(2).sum() / target.pow(2).sum()
    assert inv.feature_error.item() == pytest.approx(relative.item(), rel=1e-4)
    assert inv.pixel_error.item() == pytest.approx((inv.image - x).pow(2).mean().sqrt().item(), rel=1e-5)


def test_the_tv_prior_smooths_the_reconstruction():
    from cnn_helpers.featurevis.objectives import total_variation

    model, x = small_net(), photo()
    rough, smooth = (invert_features(model, x, "4", tv_weight=w, steps=30, param="pixels",
                                     generator=torch.Generator().manual_seed(0)) for w in (0.0, 200.0))
    assert total_variation(smooth.image) < 0.5 * total_variation(rough.image)


def test_state_is_left_as_found_after_an_error():
    model, x = helpers.mixed_mode(small_net()), photo()
    before = helpers.snapshot(model, x)
    with pytest.raises(ValueError, match="layer 'conv' is not a submodule"):
        invert_features(model, x, "conv")
    with pytest.raises(ValueError, match="octave_scale"):
        deepdream(model, x, "0", octave_scale=1.0)
    with pytest.raises(ValueError, match="at least 16 pixels"):
        invert_features(model, photo(8), "0")
    with pytest.raises(ValueError, match="param"):
        invert_features(model, x, "0", param="fft")
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        deepdream(model, x * 2, "0")
    with pytest.raises(ValueError, match="tv_weight"):
        invert_features(model, x, "0", tv_weight=-1.0)
    with pytest.raises(ValueError, match="l2_weight"):
        invert_features(model, x, "0", l2_weight=-1.0)
    helpers.assert_unchanged(before, helpers.snapshot(model, x))


@pytest.fixture(scope="module")
def lite0():
    return load_pretrained("efficientnet_lite0")


def test_inversion_error_grows_with_depth_on_lite0(lite0):
    x = load_image("cat", size=64)
    stages = lite0.info.stages
    errors = [invert_features(lite0.model, x, layer, steps=30, generator=torch.Generator().manual_seed(0)).pixel_error.item()
              for layer in (stages[1], stages[-1])]
    assert errors[0] < errors[1] - 0.01


def test_deepdream_raises_a_lite0_stage(lite0):
    x, layer = load_image("cat", size=64), lite0.info.stages[3]
    dream = deepdream(lite0.model, x, layer, octaves=2, steps=4, generator=torch.Generator().manual_seed(0))
    before, after = (activations(lite0.model, image, layer)[layer].pow(2).mean() for image in (x, dream.image))
    assert after > 1.3 * before


def test_deepdream_refuses_photos_smaller_than_the_smallest_octave():
    """Issue 20 #5: a 12 px photo came back as 16 px; now it is refused like in invert_features."""
    with pytest.raises(ValueError, match="image must be at least 16 pixels"):
        deepdream(small_net(), photo(12), "2", octaves=2, steps=1)
    assert deepdream(small_net(), photo(16), "2", octaves=3, steps=1).image.shape == (1, 3, 16, 16)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dream_and_inversion_work_for_models_in_another_dtype(dtype):
    """Issue 20 #7: float64 inversion and bfloat16 DeepDream crashed (a float32 image, bf16 interpolation)."""
    model, twin, x = small_net().to(dtype), small_net(), photo(20)
    for run in (lambda net, img: deepdream(net, img, "2", octaves=2, steps=3, generator=torch.Generator().manual_seed(0)),
                lambda net, img: invert_features(net, img, "2", steps=3, generator=torch.Generator().manual_seed(0))):
        result, reference = run(model, x.to(dtype)), run(twin, x)
        assert result.image.dtype == dtype and result.image.shape == x.shape
        assert torch.allclose(result.image.float(), reference.image, atol=1e-4 if dtype == torch.float64 else 0.05)


def test_grey_and_meta_models_get_clear_errors():
    grey = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    for run in (deepdream, invert_features):
        with pytest.raises(ValueError, match="model takes 1-channel images"):
            run(grey, photo(), "1")
        with pytest.raises(ValueError, match="model is on the 'meta' device"):
            run(small_net().to("meta"), photo(), "2")


def test_activations_of_a_grey_model_take_grey_images():
    grey = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
    x = torch.rand(2, 1, 16, 16)
    assert torch.equal(activations(grey, x, "1")["1"], grey(x).detach())
    with pytest.raises(ValueError, match="1 channel"):
        activations(grey, photo(), "1")
