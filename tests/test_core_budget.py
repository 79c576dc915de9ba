"""What calls cost (cnn_helpers.core.budget, .memory, .macs): estimates, warnings and refusals before the work, MACs
counted on the meta device by one counter, and memory bounded by ``batch_size`` where the issue found it unbounded
(issue 8)."""

from __future__ import annotations

import warnings

import helpers
import pytest
import torch
from sweep import memory_limit, time_limit
from torch import nn

from cnn_helpers import attribution
from cnn_helpers.core import budget, macs, memory
from cnn_helpers.nets import complexity
from cnn_helpers.pretrained import models
from cnn_helpers.nets.resnet import resnet18
from cnn_helpers.pretrained.registry import model_info

MiB = 1 << 20


def conv_net(classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(2, classes)).eval()


class ReadsValues(nn.Module):
    """A model that looks at values: it cannot run on the meta device."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = self.conv(x)
        return y * 2 if y.sum().item() > -1e9 else y  # .item() has no value on meta


def test_check_memory_warns_then_refuses_with_the_estimate():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        memory.check_memory(memory.WARN_BYTES, "a small thing")  # at the threshold: silent
    with pytest.warns(memory.CostWarning, match=r"resizing would allocate about 2.0 GiB; use a smaller size"):
        memory.check_memory(2 << 30, "resizing", "use a smaller size")
    with pytest.raises(ValueError, match="about 20 GiB"):
        memory.check_memory(20 << 30, "resizing")


def test_meta_forward_gives_shapes_without_touching_the_model():
    model = helpers.mixed_mode(resnet18(num_classes=7))
    before = helpers.snapshot(model)
    with memory_limit(100 * MiB):  # a real pass at 2000 px would take gigabytes
        out = macs.meta_forward(model, (2, 3, 2000, 2000))
    assert out.shape == (2, 7) and out.device.type == "meta"
    helpers.assert_unchanged(before, helpers.snapshot(model))


def test_image_macs_equals_count_macs_and_is_cached():
    model = resnet18()
    macs = budget.image_macs(model, torch.zeros(1, 3, 224, 224))
    assert macs == complexity.count_macs(model, 224) == 1_814_073_344  # torchvision: 1.81 GFLOPS
    assert budget._MACS[model][(3, 224, 224)] == macs


@pytest.mark.parametrize("passes, outcome", [(100, None), (100_000, "warn"), (10**8, "refuse")])
def test_check_cost_estimates_from_the_models_macs(passes, outcome):
    model = nn.Conv2d(3, 64, 3, padding=1)  # 86.7 M MACs per 224 px image: 4.3 ms at 20 GMAC/s
    images = torch.zeros(1, 3, 224, 224)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        if outcome == "refuse":
            with pytest.raises(ValueError, match=r"would take about \d+ h on this CPU: 100,000,000 forward passes of a "
                                                 r"224x224 image, 0.09 GMACs each; use fewer"):
                budget.check_cost(model, images, passes, "it", hint="use fewer")
        else:
            budget.check_cost(model, images, passes, "it")
    assert [w.category for w in seen] == ([memory.CostWarning] if outcome == "warn" else [])


def test_check_cost_measures_only_when_the_call_might_be_long():
    model = conv_net()
    budget.check_cost(model, torch.zeros(1, 3, 8, 8), 10, "tiny")
    assert model not in budget._MACS  # 10 passes of an 8 x 8 image: nothing to measure


def test_occlusion_that_would_run_for_days_is_refused_before_any_work():
    pre = models.load_pretrained("efficientnet_lite0")
    photo = torch.full((1, 3, 4000, 4000), 0.5)
    with time_limit(60), pytest.raises(ValueError, match=r"occlusion_map with window=32, stride=16 would take about \d+ h"):
        attribution.occlusion_map(pre.model, photo, 0, window=32, stride=16)  # the issue measured ~370 h


@pytest.mark.parametrize("method", ["batched", "auto", "approximate"])
def test_occlusion_estimate_says_it_is_for_plain_batches_unless_they_run(method):
    photo = torch.zeros(1, 3, 3000, 3000)  # 9 million windows of 1 pixel: days even for a tiny net
    with time_limit(60), pytest.raises(ValueError, match="would take about") as refused:
        attribution.occlusion_map(conv_net(), photo, 0, window=1, stride=1, method=method)
    says = f"estimated for plain batches, method={method!r} may need a few times less"
    assert (says in str(refused.value)) == (method != "batched")
    assert str(refused.value).endswith("use a larger stride and window, or a smaller image")


def test_occlusion_with_too_many_windows_per_pass_is_refused():
    with pytest.raises(ValueError, match="perturbations_per_eval=100000 would allocate about"):
        attribution.occlusion_map(conv_net(), torch.rand(1, 3, 224, 224), 0, window=2, stride=1,
                                  perturbations_per_eval=100_000)


@pytest.mark.parametrize("method", ["integrated_gradients", "smoothgrad"])
def test_path_and_noise_are_made_as_needed_so_batch_size_bounds_memory(method):
    model, x = conv_net(), torch.rand(1, 3, 400, 400, generator=torch.Generator().manual_seed(0))
    kwargs = {"steps": 200} if method == "integrated_gradients" else {"samples": 200}
    seen = []
    model[0].register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[0]))
    with memory_limit(200 * MiB):  # all 200 copies at once: 2 x 384 MB
        result = getattr(attribution, method)(model, x, 1, batch_size=4, **kwargs)
    assert max(seen) <= 4 and sum(seen) == 200 and torch.isfinite(result).all()


def test_results_do_not_depend_on_batch_size():
    model, x = conv_net(), torch.rand(2, 3, 9, 9, generator=torch.Generator().manual_seed(0))
    for method, kwargs in (("integrated_gradients", {"steps": 7}), ("smoothgrad", {"samples": 5})):
        fn = getattr(attribution, method)
        results = [fn(model, x, 1, batch_size=b, **kwargs,
                      **({"generator": torch.Generator().manual_seed(1)} if method == "smoothgrad" else {}))
                   for b in (1, 3, 100)]
        assert all(torch.allclose(r, results[0], atol=1e-6) for r in results), method


def test_classify_resizes_a_huge_photo_before_the_model_sees_it():
    pre = models.Pretrained(model=conv_net(5), name="tiny", categories=list("abcde"), input_size=12, source="test",
                            info=model_info("efficientnet_lite0"), verified=False)
    photo = torch.rand(1, 3, 3000, 3000, generator=torch.Generator().manual_seed(0))
    seen = []
    pre.model[0].register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape[-2:])))
    with memory_limit(150 * MiB):  # the model on the full photo: 2 x 72 MB feature maps and more
        top = models.classify(pre, photo, k=2)
    assert seen == [(12, 12)] and len(top[0]) == 2
    assert top == models.classify(pre, models.resize(photo, 12), k=2)


def test_count_macs_counts_on_the_meta_device_at_any_size():
    model = resnet18()
    with memory_limit(100 * MiB):  # a real pass at 4000 px: a 192 MB input and gigabytes of activations
        macs = complexity.count_macs(model, 4000)
    assert macs == pytest.approx(complexity.count_macs(model, 224) * (4000 / 224) ** 2, rel=0.01)


def test_count_macs_falls_back_to_a_real_pass_for_models_that_read_values():
    assert complexity.count_macs(ReadsValues(), 10) == 4 * 3 * 9 * 8 * 8


def test_measuring_passes_do_not_call_the_users_hooks():
    model, calls = conv_net(), []
    model[0].register_forward_hook(lambda *args: calls.append(1))
    complexity.count_macs(model, 8)
    complexity.layer_table(model, 8)
    budget.image_macs(model, torch.zeros(1, 3, 8, 8))
    assert calls == [] and helpers.hooks(model) == 1
    model(torch.zeros(1, 3, 8, 8))
    assert calls == [1]  # the hook is still there and works


def test_image_macs_runs_a_model_that_reads_values_for_real_instead_of_guessing():
    assert budget.image_macs(ReadsValues(), torch.zeros(1, 3, 10, 10)) == 4 * 3 * 9 * 8 * 8


def test_macs_of_counts_one_operation():
    conv = nn.Conv2d(3, 4, 3)
    out, count = macs.macs_of(conv, torch.zeros(2, 3, 10, 10))
    assert out.shape == (2, 4, 8, 8) and count == 2 * 4 * 3 * 9 * 8 * 8


def test_an_outer_estimate_silences_the_inner_ones():
    with pytest.warns(memory.CostWarning, match="long loop"):
        budget.check_steps(2 * budget.WARN_SECONDS / budget.STEP_SECONDS, "a long loop")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with budget.already_estimated():
            budget.check_steps(2 * budget.WARN_SECONDS / budget.STEP_SECONDS, "a long loop")
            budget.check_cost(nn.Conv2d(3, 64, 3), torch.zeros(1, 3, 224, 224), 10**8, "a long call")
    with pytest.raises(ValueError, match="endless"):  # and only inside the block
        budget.check_steps(1e12, "an endless loop")


def test_check_steps_warns_then_refuses_at_the_fixed_cost_per_step():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        budget.check_steps(1000, "a short loop")
    with pytest.warns(memory.CostWarning, match="a long loop would take at least 4 min"):
        budget.check_steps(2 * budget.WARN_SECONDS / budget.STEP_SECONDS, "a long loop")
    with pytest.raises(ValueError, match=r"would take at least [\d,]+ h: 1,000,000,000,000 steps .*; use fewer"):
        budget.check_steps(1e12, "an endless loop", "use fewer")


def test_pass_values_by_hand_and_counted_on_meta():
    # conv 3 -> 8 channels, then a ReLU: the input, three times the largest output, and with backward every output
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    image = torch.zeros(1, 3, 100, 100)
    assert budget.pass_values(model, image, backward=False) == (3 + 3 * 8) * 100 * 100
    assert budget.pass_values(model, image, backward=True) == (3 + 3 * 8 + 8 + 8) * 100 * 100
    with memory_limit(100 * MiB):  # ResNet-18 on a 4000 px photo would hold gigabytes for real
        big = budget.pass_values(resnet18(), torch.zeros(1, 3, 1, 1).expand(1, 3, 4000, 4000), backward=False)
    assert big == 3 * 4000**2 + 3 * 64 * 2000**2  # the stem: 64 channels at half the size


def test_check_pass_memory_warns_then_refuses_for_batches_and_kept_bytes():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    photo = torch.zeros(1, 3, 1, 1).expand(4, 3, 4096, 4096)  # (3 + 3 x 8) x 4096^2 x 4 bytes = 1.69 GiB per image
    with pytest.warns(memory.CostWarning, match=r"a forward would allocate about 2\.7 GiB; smaller"):
        budget.check_pass_memory(model, photo, "a forward", backward=False, batch_size=1, keep=1 << 30, hint="smaller")
    with pytest.warns(memory.CostWarning, match=r"a forward would allocate about 6\.[78] GiB"):
        budget.check_pass_memory(model, photo, "a forward", backward=False, batch_size=16)  # capped at N = 4 images
    with pytest.raises(ValueError, match="a forward would allocate about 27 GiB"):
        budget.check_pass_memory(model, photo[:1].expand(16, -1, -1, -1), "a forward", backward=False, batch_size=16)
