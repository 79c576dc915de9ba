"""Tests for cnn_helpers.attribution (and the shared checks): hand-computed cases, Captum as the oracle,
model/input state left as found (also on error), and clear errors for bad input."""

from __future__ import annotations

import warnings

import helpers
import pytest
import torch
from torch import nn

from cnn_helpers.attribution.gradients import (IG_METHODS, grad_cam, guided_backprop, integrated_gradients,
                                               saliency_map, smoothgrad)
from cnn_helpers import attribution
from cnn_helpers.attribution.occlusion.map import occlusion_map

try:  # the reference implementation; without it only the comparisons with it are skipped
    import captum.attr as captum_attr
except ImportError:
    captum_attr = None
needs_captum = pytest.mark.skipif(captum_attr is None, reason="Captum (the reference implementation) is not installed")
pytestmark = pytest.mark.filterwarnings("ignore:.*(require|ReLU|hooks).*:UserWarning")


def small_net(inplace: bool = True) -> nn.Sequential:
    """Conv-BN-ReLU(inplace) net with non-trivial batch-norm statistics; 5 classes."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=inplace),
        nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(inplace=inplace),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
    )
    with torch.no_grad():
        net[1].weight.uniform_(0.5, 1.5)
        net[1].running_mean.uniform_(-0.2, 0.2)
        net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


class Linear(nn.Module):
    """logits = W x.flatten(): every gradient is a row of W, every occlusion drop a sum over W (x - b)."""

    def __init__(self, shape=(3, 4, 5), classes=2):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, *shape, generator=torch.Generator().manual_seed(1)))

    def forward(self, x):
        return x.flatten(1) @ self.weight.flatten(1).T


def images(n=2, h=17, w=19, seed=0):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


TARGET = torch.tensor([1, 3])
CALLS = {
    "occlusion": lambda m, x, t: occlusion_map(m, x, t, window=4, stride=2),
    "saliency": saliency_map,
    "smoothgrad": lambda m, x, t: smoothgrad(m, x, t, samples=3),
    "integrated_gradients": lambda m, x, t: integrated_gradients(m, x, t, steps=4),
    "guided_backprop": guided_backprop,
    "grad_cam": lambda m, x, t: grad_cam(m, x, t, layer="2"),
}


# --- hand-computed cases --------------------------------------------------------------------------

def test_saliency_of_a_linear_model_is_the_weight_row():
    model, x = Linear(), images(1, 4, 5)
    expected = model.weight[1].detach().abs().amax(dim=0)
    assert torch.equal(saliency_map(model, x, 1)[0], expected)


def test_occlusion_of_a_linear_model_with_one_pixel_windows():
    model, x = Linear(), images(1, 4, 5)
    expected = (model.weight[0].detach() * (x[0] - 0.25)).sum(dim=0)  # drop = W (x - b), summed over channels
    assert torch.allclose(occlusion_map(model, x, 0, window=1, stride=1, baseline=0.25)[0], expected, atol=1e-5)


def test_occlusion_of_probabilities_is_the_softmax_drop():
    model, x = small_net(), images(1, 8, 8)
    heat = occlusion_map(model, x, 1, window=8, stride=8, output="probability")  # one window: the whole image
    with torch.no_grad():
        expected = model(x).softmax(1)[0, 1] - model(torch.zeros_like(x)).softmax(1)[0, 1]
    assert torch.allclose(heat, expected.expand(1, 8, 8), atol=1e-6)
    with pytest.raises(ValueError, match="output must be one of 'logit', 'probability'"):
        occlusion_map(model, x, 1, window=8, stride=8, output="prob")


def test_occlusion_averages_overlapping_windows():
    model, x = Linear(shape=(3, 1, 3)), images(1, 1, 3)
    per_pixel = (model.weight[0].detach() * x[0]).sum(dim=0)[0]  # drop if only that pixel is occluded
    window_drops = [per_pixel[0] + per_pixel[1], per_pixel[1] + per_pixel[2]]  # windows of 2 at x = 0 and 1
    expected = torch.stack([window_drops[0], (window_drops[0] + window_drops[1]) / 2, window_drops[1]])
    assert torch.allclose(occlusion_map(model, x, 0, window=(1, 2), stride=1)[0, 0], expected, atol=1e-5)


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle"])
def test_integrated_gradients_of_a_linear_model_is_weight_times_difference(method):
    model, x = Linear(), images(1, 4, 5)
    expected = model.weight[1].detach() * (x[0] - 0.5)
    assert torch.allclose(integrated_gradients(model, x, 1, baseline=0.5, steps=5, method=method)[0], expected, atol=1e-5)


def test_integrated_gradients_completeness():
    model, x = small_net(), images()
    attr = integrated_gradients(model, x, TARGET, steps=64)
    with torch.no_grad():
        gain = model(x).gather(1, TARGET[:, None])[:, 0] - model(torch.zeros_like(x)).gather(1, TARGET[:, None])[:, 0]
    assert torch.allclose(attr.sum(dim=(1, 2, 3)), gain, rtol=0.02, atol=1e-4)


class ReLU6Net(nn.Module):
    """pre = 10 x - 1 on the four pixels of channel 0; logits = (sum(v * relu6(a * pre)), 0)."""

    def __init__(self, v):
        super().__init__()
        self.act = nn.ReLU6()
        self.a = torch.tensor([1.0, 1.0, 1.0, -1.0])
        self.v = torch.tensor(v)

    def forward(self, x):
        pre = x[:, 0, 0] * 10 - 1
        return torch.stack([(self.act(self.a * pre) * self.v).sum(1), torch.zeros(x.shape[0])], dim=1)


def test_guided_backprop_relu6_by_hand():
    # pre = (-1, 3, 8, 2), a * pre = (-1, 3, 8, -2): only unit 1 lies inside (0, 6), where ReLU6 has slope 1
    # (unit 2 saturates at 6: slope 0, as its true derivative). Guided rule: the gradient arriving at the
    # ReLU6, v_1, must be > 0 to pass. v_1 = -2: everything stopped; v_1 = 2: d/dx_1 = 10 * 1 * 2 = 20.
    x = torch.zeros(1, 3, 1, 4)
    x[0, 0, 0] = (torch.tensor([-1.0, 3.0, 8.0, 2.0]) + 1) / 10
    assert torch.equal(guided_backprop(ReLU6Net([5.0, -2.0, 7.0, 4.0]), x, 0), torch.zeros_like(x))
    expected = torch.zeros_like(x)
    expected[0, 0, 0, 1] = 20.0
    assert torch.allclose(guided_backprop(ReLU6Net([5.0, 2.0, 7.0, 4.0]), x, 0), expected)
    # the plain gradient of the first model is -20 there: guided backprop differs exactly by the sign rule
    assert torch.isclose(saliency_map(ReLU6Net([5.0, -2.0, 7.0, 4.0]), x, 0)[0, 0, 1], torch.tensor(20.0))


# --- equality with Captum -------------------------------------------------------------------------

@needs_captum
@pytest.mark.parametrize("window, stride, baseline, per_eval", [
    (4, 2, 0.0, None), ((5, 4), (3, 2), 0.3, 3), (3, 3, "tensor", 1), ((17, 19), 1, 0.5, 2)])
def test_occlusion_equals_captum(window, stride, baseline, per_eval):
    model, x = small_net(), images()
    if baseline == "tensor":
        baseline = torch.rand(1, 3, 17, 19, generator=torch.Generator().manual_seed(5))
    ours = occlusion_map(model, x, TARGET, window=window, stride=stride, baseline=baseline, perturbations_per_eval=per_eval)
    w = (window, window) if isinstance(window, int) else window
    s = (stride, stride) if isinstance(stride, int) else stride
    theirs = captum_attr.Occlusion(model).attribute(x, sliding_window_shapes=(3, *w), strides=(3, *s),
                                                    baselines=baseline, target=TARGET, perturbations_per_eval=4)
    assert ours.shape == (2, 17, 19)
    assert torch.allclose(ours, theirs[:, 0], atol=1e-6) and torch.equal(theirs[:, 0], theirs[:, 2])


@needs_captum
def test_saliency_equals_captum():
    model, x = small_net(), images()
    theirs = captum_attr.Saliency(model).attribute(x, target=TARGET, abs=True).amax(dim=1)
    assert torch.allclose(saliency_map(model, x, TARGET), theirs, atol=1e-7)


@needs_captum
def test_smoothgrad_equals_captum_with_the_same_noise():
    model, x = small_net(), images()
    ours = smoothgrad(model, x, TARGET, samples=7, stdev=0.2, generator=torch.Generator().manual_seed(3), batch_size=5)
    torch.manual_seed(3)  # Captum draws its noise from the global generator; one sample at a time, as ours
    theirs = captum_attr.NoiseTunnel(captum_attr.Saliency(model)).attribute(
        x, target=TARGET, nt_type="smoothgrad", nt_samples=7, stdevs=0.2, nt_samples_batch_size=1).amax(dim=1)
    assert torch.allclose(ours, theirs, atol=1e-7)
    other = smoothgrad(model, x, TARGET, samples=7, stdev=0.2, generator=torch.Generator().manual_seed(4))
    assert not torch.allclose(ours, other)


@needs_captum
@pytest.mark.parametrize("method", IG_METHODS)
def test_integrated_gradients_equals_captum(method):
    model, x = small_net(), images()
    ours = integrated_gradients(model, x, TARGET, baseline=0.5, steps=9, method=method, batch_size=4)
    theirs = captum_attr.IntegratedGradients(model).attribute(x, baselines=0.5, target=TARGET, n_steps=9, method=method)
    assert torch.allclose(ours, theirs, atol=1e-7)


@needs_captum
@pytest.mark.parametrize("inplace", [True, False])
def test_guided_backprop_equals_captum_on_relu_models(inplace):
    model, x = small_net(inplace), images()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = captum_attr.GuidedBackprop(small_net(False)).attribute(x, target=TARGET)
    ours = guided_backprop(model, x, TARGET)
    assert torch.allclose(ours, theirs, atol=1e-7) and ours.abs().max() > 0
    assert not torch.allclose(ours, captum_attr.Saliency(model).attribute(x, target=TARGET, abs=False), atol=1e-6)


def test_guided_backprop_modifies_only_the_given_activations():
    # Captum modifies nn.ReLU only: on a ReLU6 model it returns the plain gradient; so do we if told to
    model = small_net(False)
    model[2], model[4] = nn.ReLU6(), nn.ReLU6()
    x = images()
    leaf = x.clone().requires_grad_(True)
    (plain,) = torch.autograd.grad(model(leaf).gather(1, TARGET[:, None]).sum(), leaf)
    assert torch.allclose(guided_backprop(model, x, TARGET, activations=(nn.ReLU6, nn.Sigmoid)),
                          guided_backprop(model, x, TARGET))
    with pytest.raises(ValueError, match="no ReLU modules"):
        guided_backprop(model, x, TARGET, activations=(nn.ReLU,))
    assert not torch.allclose(guided_backprop(model, x, TARGET), plain, atol=1e-6)


@needs_captum
@pytest.mark.parametrize("layer, relu, upsample", [("2", True, True), ("3", False, False), ("0", True, False)])
def test_grad_cam_equals_captum(layer, relu, upsample):
    model, x = small_net(), images()  # layers "0" and "3" feed an in-place ReLU: their outputs get overwritten
    cam = captum_attr.LayerGradCam(model, model[int(layer)]).attribute(x, target=TARGET, relu_attributions=relu)
    if upsample:
        cam = captum_attr.LayerAttribution.interpolate(cam, (17, 19), "bilinear")
    ours = grad_cam(model, x, TARGET, layer=layer, relu=relu, upsample=upsample)
    assert torch.allclose(ours, cam[:, 0].detach(), atol=1e-7) and ours.abs().max() > 0


def test_pretrained_efficientnet_relu6_layers_work():
    from cnn_helpers.pretrained.models import load_pretrained

    model = load_pretrained("efficientnet_lite0").model
    x = images(1, 64, 64)
    gbp = guided_backprop(model, x, 3)
    cam = grad_cam(model, x, 3, layer="net._act_head")
    assert gbp.shape == (1, 3, 64, 64) and torch.isfinite(gbp).all() and gbp.abs().max() > 0
    assert cam.shape == (1, 64, 64) and cam.min() >= 0
    assert not any(p.requires_grad for p in model.parameters()) and not model.training


# --- state left as found --------------------------------------------------------------------------

def snapshot(model, x):
    return helpers.snapshot(model, x)


def assert_same(before, after):
    helpers.assert_unchanged(before, after)


def stateful_net():
    model = small_net()
    model.train()
    model[1].eval()  # mixed modes must come back exactly
    model[0].weight.requires_grad_(False)
    model[7].weight.grad = torch.full_like(model[7].weight, 0.5)
    return model


@pytest.mark.parametrize("name", CALLS)
def test_model_and_input_left_as_found(name):
    model, x = stateful_net(), images()
    before = snapshot(model, x)
    result = CALLS[name](model, x, TARGET)
    assert_same(before, snapshot(model, x))
    assert not result.requires_grad and torch.isfinite(result).all()


@pytest.mark.parametrize("name", CALLS)
def test_input_requiring_grad_is_left_alone(name):
    model, x = small_net(), images().requires_grad_(True)
    CALLS[name](model, x, TARGET)
    assert x.requires_grad and x.grad is None


@pytest.mark.parametrize("name", CALLS)
def test_state_restored_when_an_error_is_raised(name):
    model, x = stateful_net(), images()
    before = snapshot(model, x)
    with pytest.raises(ValueError, match=r"target must be a class index in \[0, 4\].*got 5"):
        CALLS[name](model, x, torch.tensor([1, 5]))  # detected after the forward pass, hooks in place
    assert_same(before, snapshot(model, x))


def test_hooks_removed_when_the_forward_pass_fails():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.act = nn.Conv2d(3, 2, 1), nn.ReLU()

        def forward(self, x):
            self.act(self.conv(x))
            raise RuntimeError("boom")

    model = Broken()
    for call in (guided_backprop, lambda m, x, t: grad_cam(m, x, t, layer="act")):
        with pytest.raises(RuntimeError, match="boom"):
            call(model, images(), 0)
        assert helpers.hooks(model) == 0 and model.training


# --- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad, error, match", [
    (torch.rand(3, 8, 8), ValueError, r"4 dimensions.*images\[None\]"),
    (torch.rand(1, 1, 8, 8), ValueError, r"3 channels.*grayscale"),
    (torch.rand(1, 4, 8, 8), ValueError, r"3 channels.*RGBA"),
    (torch.rand(1, 3, 8, 8) * 2 - 0.5, ValueError, r"\[0, 1\].*min"),
    (torch.full((1, 3, 8, 8), float("nan")), ValueError, r"\[0, 1\]"),
    (torch.ones(1, 3, 8, 8, dtype=torch.uint8), TypeError, "float tensor"),
    ([[0.5]], TypeError, "float tensor"),
])
@pytest.mark.parametrize("name", CALLS)
def test_bad_images(name, bad, error, match):
    with pytest.raises(error, match=match):
        CALLS[name](small_net(), bad, 0)


@pytest.mark.parametrize("target, error, match", [
    (-1, ValueError, r"\[0, 4\]"), (torch.tensor([0, 9]), ValueError, "got 9"), (torch.tensor([0, 1, 2]), ValueError, r"shape \(2,\)"),
    (1.0, TypeError, "int"), (torch.tensor([0.0, 1.0]), TypeError, "integer"), (True, TypeError, "int")])
def test_bad_target(target, error, match):
    with pytest.raises(error, match=match):
        saliency_map(small_net(), images(), target)


def test_unknown_layer_lists_valid_names():
    with pytest.raises(ValueError, match=r"'9' is not a submodule.*Valid names \(8\): 0, 1, 2, 3, 4, 5, 6, 7"):
        grad_cam(small_net(), images(), 0, layer="9")
    big = nn.Sequential(*[nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU()) for _ in range(20)], nn.Flatten(), nn.LazyLinear(2))
    with pytest.raises(ValueError, match=r"did you mean '3\.0'.*Valid names \(62\): 0, 0\.0, .*\.\.\., .*21$") as info:
        grad_cam(big, images(), 0, layer="3.00")
    assert len(str(info.value)) < 400


def test_grad_cam_layer_must_give_feature_maps():
    with pytest.raises(ValueError, match="must run once per forward and return \\(N, C, h, w\\)"):
        grad_cam(small_net(), images(), 0, layer="6")  # Flatten: (N, 8)


@pytest.mark.parametrize("kwargs, match", [
    ({"window": 20, "stride": 2}, "window <= image"), ({"window": 4, "stride": 5}, "stride <= window"),
    ({"window": 0, "stride": 1}, "window must be a positive int"), ({"window": (2, 2, 2), "stride": 1}, "pair"),
    ({"window": 4, "stride": 2, "perturbations_per_eval": 0}, "perturbations_per_eval")])
def test_bad_occlusion_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        occlusion_map(small_net(), images(), 0, **kwargs)


def test_bad_method_options():
    with pytest.raises(ValueError, match="method must be one of .gausslegendre."):
        integrated_gradients(small_net(), images(), 0, method="simpson")
    with pytest.raises(ValueError, match="steps must be >= 2"):
        integrated_gradients(small_net(), images(), 0, steps=1, method="riemann_trapezoid")
    with pytest.raises(ValueError, match=r"samples must be an int in \[1, inf\]"):
        smoothgrad(small_net(), images(), 0, samples=0)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        saliency_map(lambda x: x, images(), 0)


def test_input_gradients_work_inside_inference_mode():
    model = nn.Linear(3, 2)
    with torch.inference_mode():
        x = torch.rand(1, 3)
        grads = attribution.input_gradients(nn.Sequential(model), x, torch.tensor([1]), 1)
    assert torch.allclose(grads[0], model.weight[1].detach())


@pytest.mark.parametrize("method", ["saliency", "smoothgrad", "integrated_gradients", "guided_backprop", "grad_cam",
                                    "occlusion"])
def test_huge_photos_are_refused_before_any_work(method):
    """Memory is estimated before the first forward pass (issue 20 #4): expanded zeros hold no memory, the model
    would need tens of GiB; a model that counts its calls proves nothing ran."""
    calls = []
    model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(64, 2)).eval()
    model.register_forward_pre_hook(lambda *_: calls.append(1))
    photo = torch.zeros(1, 3, 1, 1).expand(1, 3, 8000, 8000)
    run = {"saliency": lambda: saliency_map(model, photo, 0),
           "smoothgrad": lambda: smoothgrad(model, photo, 0, samples=2),
           "integrated_gradients": lambda: integrated_gradients(model, photo, 0, steps=2),
           "guided_backprop": lambda: guided_backprop(model, photo, 0),
           "grad_cam": lambda: grad_cam(model, photo, 0, layer="1"),
           "occlusion": lambda: occlusion_map(model, photo, 0, window=4000, stride=4000, method="batched")}[method]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a time estimate may warn first
        with pytest.raises(ValueError, match=r"8000x8000 px would allocate about \d+ GiB; use smaller images"):
            run()
    assert calls == []
