"""The gradient-ascent loop: what it maximizes, what it leaves alone, when it stops early, clear errors;
and the course's class-visualization recipe on the real EfficientNet-Lite0."""

import helpers
import pytest
import torch
from torch import nn

from cnn_helpers.featurevis import params as fp
from cnn_helpers.featurevis.render import class_visualization, visualize
from cnn_helpers.featurevis.objectives import Objective, channel, class_logit, image_l2, neuron
from cnn_helpers.featurevis.transforms import Jitter
from cnn_helpers.pretrained.models import load_pretrained


class Counter(nn.Module):
    """Identity that counts its calls (to see whether a forward pass went past it)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x


def small_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 8, 3, stride=2),
                        nn.ReLU(), Counter(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    helpers.randomize_batch_norm(net, torch.Generator().manual_seed(1))
    return net.eval()


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def test_ascent_on_a_linear_score_moves_pixels_along_the_weights():
    weight = torch.randn(1, 3, 16, 16, generator=seeded(3))
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.cat([weight.flatten(1), -weight.flatten(1)]))
    result = visualize(model, class_logit(0), param="pixels", transforms=None, steps=30, lr=0.1, size=16, generator=seeded())
    moved = result.image - 0.5
    assert (torch.sign(moved) == torch.sign(weight)).float().mean() > 0.99
    assert result.history.shape == (30, 1) and (result.history.diff(dim=0) > 0).all()  # every step helps
    assert result.objective == "logit[0]"


def test_each_image_of_a_batch_gets_its_own_channel():
    model = small_net()
    result = visualize(model, channel("3", [0, 1, 2]), batch=3, size=20, steps=25, generator=seeded())
    assert result.image.shape == (3, 3, 20, 20) and 0 <= result.image.min() and result.image.max() <= 1
    assert (result.history[-1] > result.history[0]).all()
    with torch.no_grad():
        acts = model[:4](result.image).mean(dim=(2, 3))[:, :3]
    assert (acts.argmax(dim=0) == torch.arange(3)).all(), "image i excites channel i most"


def test_a_layer_objective_stops_the_forward_pass_after_its_layer():
    model = small_net()
    visualize(model, neuron("3", 1), size=16, steps=3, generator=seeded())
    assert model[5].calls == 0
    visualize(model, neuron("3", 1) + 0.01 * class_logit(0), size=16, steps=3, generator=seeded())
    assert model[5].calls == 3


def test_seeded_runs_repeat_and_penalties_work():
    model = small_net()
    runs = [visualize(model, class_logit(2), size=24, steps=10, generator=seeded(4)).image for _ in range(2)]
    assert torch.equal(*runs)
    loud = visualize(model, class_logit(2), param="pixels", transforms=None, size=24, steps=20, lr=0.2, generator=seeded())
    quiet = visualize(model, class_logit(2) - 50.0 * image_l2(), param="pixels", transforms=None, size=24, steps=20,
                      lr=0.2, generator=seeded())
    assert (quiet.image - 0.5).pow(2).mean() < 0.5 * (loud.image - 0.5).pow(2).mean()


def test_a_parameterization_and_transforms_can_be_passed():
    model = small_net()
    param = fp.pixels((18, 22), batch=2, decorrelate=True, generator=seeded())
    seen = []
    result = visualize(model, class_logit([0, 1]), param=param, transforms=[Jitter(2)], steps=4,
                       callback=lambda step, image, scores: seen.append((step, image.shape, scores.shape)))
    assert result.image.shape == (2, 3, 18, 22) and torch.allclose(result.image, param().detach())
    assert seen == [(i, (2, 3, 18, 22), (2,)) for i in range(4)]
    assert param.params[0].grad is None


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_model_state_is_left_as_found_also_inside_no_grad(context):
    model = helpers.mixed_mode(small_net())
    model[0].weight.requires_grad_(True)
    model[0].weight.grad = torch.ones_like(model[0].weight)
    before = helpers.snapshot(model)
    with context():
        visualize(model, channel("3", 0) + class_logit(1), size=16, steps=3, generator=seeded())
    helpers.assert_unchanged(before, helpers.snapshot(model))


def test_model_state_is_left_as_found_after_an_error():
    model = helpers.mixed_mode(small_net())
    before = helpers.snapshot(model)
    with pytest.raises(ValueError, match="channel 99 is out of range: layer '3' has 8 channels"):
        visualize(model, channel("3", 99), size=16, steps=3)
    helpers.assert_unchanged(before, helpers.snapshot(model))


def test_bad_arguments_get_clear_errors():
    model = small_net()
    with pytest.raises(ValueError, match="layer 'conv9' is not a submodule.*Valid names"):
        visualize(model, channel("conv9", 0), steps=1)
    with pytest.raises(ValueError, match="size must be at least 16"):
        visualize(model, class_logit(0), size=8, steps=1)
    with pytest.raises(TypeError, match="objective must be an Objective"):
        visualize(model, lambda r: r.logits[:, 0], steps=1)
    with pytest.raises(ValueError, match="param must be"):
        visualize(model, class_logit(0), param="fft", steps=1)
    with pytest.raises(ValueError, match="transforms must be"):
        visualize(model, class_logit(0), transforms="strong", steps=1)
    with pytest.raises(ValueError, match="steps"):
        visualize(model, class_logit(0), steps=0)
    with pytest.raises(ValueError, match="lr"):
        visualize(model, class_logit(0), steps=1, lr=0.0)
    with pytest.raises(ValueError, match="one finite score per image"):
        visualize(model, Objective(lambda r: r.logits.sum()), steps=1)
    with pytest.raises(ValueError, match="one finite score per image"):
        visualize(model, Objective(lambda r: r.logits[:, 0] * float("nan"), needs_logits=True), steps=1)


def test_class_visualization_takes_an_int_a_list_or_a_tensor():
    model = small_net()
    shapes = [class_visualization(model, t, size=16, steps=2, generator=seeded()).shape
              for t in (3, [0, 1], torch.tensor(2), torch.tensor([1, 2, 3]))]
    assert shapes == [(1, 3, 16, 16), (2, 3, 16, 16), (1, 3, 16, 16), (3, 3, 16, 16)]


@pytest.fixture(scope="module")
def lite0():
    return load_pretrained("efficientnet_lite0")


def test_class_visualization_reaches_its_class_as_top1_on_lite0(lite0):
    targets = [1, 949]  # goldfish, strawberry
    images = class_visualization(lite0.model, targets, size=64, steps=24, generator=seeded())
    assert images.shape == (2, 3, 64, 64) and 0 <= images.min() and images.max() <= 1
    with torch.no_grad():
        probs = lite0.model(images).softmax(dim=1)
    assert probs.argmax(dim=1).tolist() == targets and (probs[[0, 1], targets] > 0.5).all()


def test_a_day_of_gradient_ascent_is_refused_before_any_work(lite0):
    from sweep import time_limit

    from cnn_helpers.featurevis.dream import deepdream

    with time_limit(30), pytest.raises(ValueError, match=r"gradient ascent with steps=10000000, .* would take about \d"):
        visualize(lite0.model, class_logit(1), steps=10**7, size=224)
    photo = torch.full((1, 3, 224, 224), 0.5)
    with time_limit(30), pytest.raises(ValueError, match=r"deepdream with octaves=1000, steps=10000 would take about"):
        deepdream(lite0.model, photo, lite0.info.stages[2], octaves=1000, steps=10_000)
    with time_limit(30), pytest.raises(ValueError, match=r"size=\(100000, 100000\), batch=1\) would allocate about"):
        visualize(lite0.model, class_logit(1), steps=1, size=100_000)


def grey_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3)).eval()


class TwoOutputs(nn.Module):
    """Returns (logits, features), as many detection or auxiliary-head models do."""

    def __init__(self):
        super().__init__()
        self.net = small_net()

    def forward(self, x):
        logits = self.net(x)
        return logits, logits.detach()


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_models_in_another_dtype_get_pictures_in_their_dtype(dtype):
    """Issue 20 #7: a float64 or bfloat16 model crashed inside its first convolution."""
    model, twin = small_net().to(dtype), small_net()
    images = [visualize(net, channel("3", 1) + class_logit(0), size=16, steps=3, generator=seeded()).image
              for net in (model, twin)]
    assert images[0].dtype == dtype and images[1].dtype == torch.float32
    assert torch.allclose(images[0].float(), images[1], atol=1e-5 if dtype == torch.float64 else 0.05)
    assert class_visualization(model, 1, size=16, steps=2, generator=seeded()).dtype == dtype


def test_a_model_for_grey_images_gets_a_clear_error():
    """Issue 20 #7: a 1-channel model crashed inside its first convolution; featurevis makes RGB pictures."""
    with pytest.raises(ValueError, match="model takes 1-channel images"):
        visualize(grey_net(), class_logit(0), size=16, steps=1)
    with pytest.raises(ValueError, match="model takes 1-channel images"):
        class_visualization(grey_net(), 0, size=16, steps=1)


def test_a_model_on_the_meta_device_gets_a_clear_error():
    with pytest.raises(ValueError, match="model is on the 'meta' device"):
        visualize(small_net().to("meta"), class_logit(0), size=16, steps=1)


def test_a_model_with_several_outputs_gets_a_clear_error_for_class_logits():
    """Issue 20 #7: class_logit read ``.shape`` of the tuple; a channel objective still works (it reads a layer)."""
    with pytest.raises(ValueError, match=r"logits\) of shape \(1, classes\).* tuple"):
        class_visualization(TwoOutputs(), 0, size=16, steps=1)
    assert visualize(TwoOutputs(), channel("net.3", 0), size=16, steps=2).image.shape == (1, 3, 16, 16)


def test_memory_of_the_network_pass_is_estimated_before_any_work(lite0):
    """Issue 20 #4: DeepDream on a 2000 px photo took 4.3 GiB unannounced, and gradient ascent estimated only its
    variables (about 5x too low). Now both count the network's layer outputs and warn before the first step."""
    import warnings

    from sweep import time_limit

    from cnn_helpers.core.memory import CostWarning
    from cnn_helpers.featurevis.dream import deepdream

    photo = torch.full((1, 3, 2000, 2000), 0.5)
    with time_limit(60), warnings.catch_warnings():
        warnings.simplefilter("error", CostWarning)  # the warning stops the call before any work
        with pytest.raises(CostWarning, match=r"deepdream on 1 images of \(2000, 2000\) px would allocate about \d"):
            deepdream(lite0.model, photo, lite0.info.stages[3], octaves=1, steps=1)
        with pytest.raises(CostWarning, match=r"gradient ascent on 1 images of .* would allocate about \d"):
            visualize(lite0.model, class_logit(1), steps=1, size=1024)  # the variables alone: 0.1 GiB
