"""The shared argument checks: tiny hand-made cases."""

import helpers
import pytest
import torch
from torch import nn

from cnn_helpers.core import checks


@pytest.mark.parametrize("value, kwargs, error, match", [
    (True, {}, TypeError, "steps must be an int, got True"), (2.0, {}, TypeError, "steps must be an int"),
    ("3", {}, TypeError, "steps must be an int"), (0, {}, ValueError, r"steps must be an int in \[1, inf\], got 0"),
    (11, {"maximum": 10}, ValueError, r"\[1, 10\]"), (-1, {"minimum": 0}, ValueError, r"\[0, inf\]")])
def test_check_int_refuses(value, kwargs, error, match):
    with pytest.raises(error, match=match):
        checks.check_int(value, "steps", **kwargs)


def test_check_int_and_float_accept():
    assert checks.check_int(3, "steps") == 3 and checks.check_int(0, "n", minimum=0) == 0
    assert checks.check_float(1, "lr") == 1.0 and isinstance(checks.check_float(1, "lr"), float)
    assert checks.check_float(torch.tensor(0.5), "eps") == 0.5


@pytest.mark.parametrize("value, kwargs, error, match", [
    (float("nan"), {}, ValueError, "finite"), (float("inf"), {}, ValueError, "finite"),
    (True, {}, TypeError, "must be a number"), ("0.1", {}, TypeError, "must be a number"),
    (-0.1, {"minimum": 0.0}, ValueError, ">= 0.0"), (0.0, {"minimum": 0.0, "strict_minimum": True}, ValueError, "> 0.0"),
    (2.0, {"maximum": 1.0}, ValueError, "<= 1.0")])
def test_check_float_refuses(value, kwargs, error, match):
    with pytest.raises(error, match=match):
        checks.check_float(value, "eps", **kwargs)


def test_bool_choice_generator_pair():
    assert checks.check_bool(False, "relu") is False
    with pytest.raises(TypeError, match="relu must be True or False, got 1"):
        checks.check_bool(1, "relu")
    assert checks.check_choice("l2", "norm", ("linf", "l2")) == "l2"
    with pytest.raises(ValueError, match="norm must be one of 'linf', 'l2'; got 'L2'"):
        checks.check_choice("L2", "norm", ("linf", "l2"))
    with pytest.raises(TypeError, match=r"manual_seed\(42\)"):
        checks.check_generator(42)
    assert checks.check_pair(3, "window") == (3, 3) and checks.check_pair([2, 5], "window") == (2, 5)
    with pytest.raises(ValueError, match="window must be a positive int or a pair"):
        checks.check_pair((2, 0), "window")


@pytest.mark.parametrize("images, error, match", [
    (torch.rand(1, 3, 4, 4, dtype=torch.float16), TypeError, "float16 on the CPU"),
    (torch.rand(1, 3, 4, 4, device="meta"), ValueError, "'meta' device"),
    (torch.rand(0, 3, 4, 4), ValueError, "empty"),
    (torch.tensor([[[[0.5, float("nan")]]]]).expand(1, 3, 1, 2), ValueError, r"\[0, 1\]")])
def test_check_images_refuses(images, error, match):
    with pytest.raises(error, match=match):
        checks.check_images(images)


def test_value_checks_read_each_stored_value_once():
    """The tests' huge photos are expanded (a shape without the memory): checked on their 3 stored values, not the
    384 million they stand for, and a bad value among the stored ones is still found."""
    from torch.overrides import TorchFunctionMode

    scanned = []

    class Scans(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if getattr(func, "__name__", "") in ("min", "max", "isfinite", "aminmax"):
                scanned.append(args[0].numel())
            return func(*args, **(kwargs or {}))

    photo = torch.full((1, 3, 1, 1), 0.5).expand(2, 3, 8000, 8000)
    with Scans():
        checks.check_images(photo)
        checks.check_finite(photo, "maps")
    assert scanned and max(scanned) == 3, scanned
    with pytest.raises(ValueError, match=r"\[0, 1\], got min 0.5, max 2"):
        checks.check_images(torch.tensor([0.5, 2.0]).view(1, 1, 1, 2).expand(4, 3, 5, 2))
    with pytest.raises(ValueError, match="finite"):
        checks.check_finite(torch.tensor([0.5, float("inf")]).view(1, 1, 1, 2).expand(4, 3, 5, 2), "maps")


def test_check_images_against_the_model():
    model = nn.Conv2d(3, 1, 1)
    checks.check_images(torch.rand(1, 3, 4, 4), model=model)
    with pytest.raises(TypeError, match=r"torch.float64 but the model computes in torch.float32.*to\(torch.float32\)"):
        checks.check_images(torch.rand(1, 3, 4, 4, dtype=torch.float64), model=model)


def test_check_images_channels():
    checks.check_images(torch.rand(2, 1, 4, 4), channels=None)  # any count, the other checks still apply
    checks.check_images(torch.rand(2, 1, 4, 4), channels=1)
    with pytest.raises(ValueError, match=r"images must have 3 channels \(RGB\), got 1.*expand"):
        checks.check_images(torch.rand(2, 1, 4, 4))
    with pytest.raises(ValueError, match="images must have 1 channels, got 3"):
        checks.check_images(torch.rand(2, 3, 4, 4), channels=1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        checks.check_images(torch.full((1, 1, 2, 2), 2.0), channels=None)


def test_check_images_does_not_tell_a_grey_model_to_expand_its_images():
    # "grayscale: images.expand(-1, 3, -1, -1)" would then fail in the model's first convolution (issue 20, #17)
    grey = nn.Sequential(nn.Conv2d(1, 2, 3))
    with pytest.raises(ValueError, match=r"got 1 in shape \(2, 1, 4, 4\); this function needs 3-channel images, "
                                         r"and the model takes 1$"):
        checks.check_images(torch.rand(2, 1, 4, 4), model=grey)


def test_check_baseline():
    images = torch.rand(2, 3, 4, 4)
    assert checks.check_baseline(0.5, images).shape == images.shape
    assert torch.equal(checks.check_baseline(torch.zeros(3, 1, 1), images), torch.zeros_like(images))
    with pytest.raises(ValueError, match="baseline must hold finite values"):
        checks.check_baseline(float("nan"), images)
    with pytest.raises(ValueError, match="does not broadcast"):
        checks.check_baseline(torch.zeros(5), images)
    with pytest.raises(TypeError, match="baseline must be a number or a tensor"):
        checks.check_baseline("black", images)


def test_check_layers_lists_valid_names():
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU())
    assert checks.check_layers(model, "1") == ["1"]
    with pytest.raises(ValueError, match="did you mean '1'"):
        checks.check_layers(model, ["1", "11"])
    with pytest.raises(ValueError, match="must not repeat"):
        checks.check_layers(model, ["1", "1"])


def test_check_images_with_any_channel_count():
    checks.check_images(torch.rand(1, 1, 4, 4), channels=None)
    with pytest.raises(ValueError, match=r"4 dimensions \(N, C, H, W\)"):
        checks.check_images(torch.rand(4, 4), channels=None)


def test_check_fits_model_and_class_indices():
    model = nn.Linear(3, 2)
    checks.check_fits_model(torch.zeros(1, 3), model)
    checks.check_fits_model(torch.zeros(1, 3, dtype=torch.long), model, "labels")  # integer tensors: dtype not compared
    with pytest.raises(TypeError, match="data are torch.float64 but the model computes in torch.float32"):
        checks.check_fits_model(torch.zeros(1, 3, dtype=torch.float64), model, "data")
    checks.check_class_indices(torch.tensor([0, 1]), 2)
    with pytest.raises(ValueError, match=r"labels must be a class index in \[0, 1\] \(the model has 2 outputs\), got -1"):
        checks.check_class_indices(torch.tensor([0, -1]), 2)


def test_layer_errors_name_the_argument():
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU())
    with pytest.raises(ValueError, match="^layer 'x' is not"):
        checks.check_layer(model, "x")
    with pytest.raises(ValueError, match="^content_layers: layer 'x' is not"):
        checks.check_layers(model, ["0", "x"], "content_layers")


@pytest.mark.parametrize("value, error, match", [
    (torch.tensor([[1.0, float("nan")]]), ValueError, "finite"), (torch.ones(2, 2).to("meta"), ValueError, "finite"),
    (torch.ones(2, 3, 1), ValueError, "shape"), (torch.ones(0, 2), ValueError, "non-empty"),
    (torch.ones(2, 2, dtype=torch.long), TypeError, "float tensor"), ([[1.0]], TypeError, "float tensor")])
def test_check_finite_refuses(value, error, match):
    with pytest.raises(error, match=match) as info:
        checks.check_finite(value, "features", ndim=2, layout="(N, C)")
    assert "features" in str(info.value)


def test_check_finite_accepts_any_range():
    x = torch.tensor([[-300.0, 2.5]], requires_grad=True)
    assert checks.check_finite(x, "features", ndim=2) is x


def test_the_channel_message():
    with pytest.raises(ValueError, match=r"images must have 1 channels, got 3 in shape \(2, 3, 4, 4\)$"):
        checks.check_images(torch.rand(2, 3, 4, 4), channels=1)


def test_a_valid_layer_is_looked_up_along_its_path_without_listing_every_module(monkeypatch):
    # record() checks its layers once per forward pass inside style loops: listing a large network's modules there
    # cost ~1 % of a style-loss evaluation on Lite0 (0.6 of 55 ms at 96 px, 1 thread)
    model = nn.Sequential(nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU()), nn.Conv2d(2, 2, 1))
    listed = []
    real = nn.Module.named_modules
    monkeypatch.setattr(nn.Module, "named_modules", lambda self, *a, **k: listed.append(1) or real(self, *a, **k))
    assert checks.check_layer(model, "0.1") is model[0][1]
    assert checks.check_layers(model, ["0.0", "1"]) == ["0.0", "1"]
    assert not listed
    for bad in ("", "0.", ".0", "0..1", "0.2", "2", "0.1.0"):   # the model itself, empty parts, too deep: refused
        with pytest.raises(ValueError, match=f"layer {bad!r} is not a submodule name of the model"):
            checks.check_layer(model, bad)
    assert listed  # an unknown name lists the valid ones


def test_a_module_registered_under_two_names_is_found_under_either():
    # named_modules() lists a shared module once (under its first name); the path lookup accepts both paths,
    # which name the same module
    shared = nn.ReLU()
    model = nn.Sequential(nn.Sequential(nn.Conv2d(3, 2, 1), shared), nn.Sequential(shared))
    assert checks.check_layer(model, "0.1") is checks.check_layer(model, "1.0") is shared
    with pytest.raises(ValueError, match="layer '0.2' is not a submodule name"):
        checks.check_layer(model, "0.2")


def test_check_finite_sums_first_and_reads_every_value_only_when_the_sum_is_not_finite(monkeypatch):
    # inside a style loop gram_matrix checks its features on every evaluation: one sum, not a mask of every value
    # (a finite sum means every value is finite; a NaN or inf makes the sum NaN or inf)
    sizes = []
    real = torch.isfinite
    monkeypatch.setattr(torch, "isfinite", lambda t: sizes.append(t.numel()) or real(t))
    checks.check_finite(torch.rand(2, 3, 8, 8), "features")
    assert sizes == [1]
    big = torch.full((1, 2, 2, 2), 3e38)   # finite values whose sum overflows: accepted after reading them all
    assert checks.check_finite(big, "features") is big
    assert sizes[-1] == big.numel()
    for bad in (float("inf"), -float("inf"), float("nan")):
        x = torch.rand(1, 2, 3, 3)
        x[0, 1, 2, 0] = bad
        with pytest.raises(ValueError, match="features must hold finite values"):
            checks.check_finite(x, "features")
    x = torch.rand(1, 2, 3, 3)
    x[0, 0, 0, 0], x[0, 1, 0, 0] = float("inf"), -float("inf")   # a NaN sum
    with pytest.raises(ValueError, match="finite"):
        checks.check_finite(x, "features")
