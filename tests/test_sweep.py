"""The permanent bad-input sweep: every public function either does the right thing or says clearly why not.

Each entry of ``SWEEP`` is one public function with a valid example call on tiny inputs; every argument
is fed the bad values of its kind (tests/sweep.py, ``KINDS``), and the valid call runs again inside
``torch.no_grad()`` and ``torch.inference_mode()``. A case passes when the function raises a clear
TypeError/ValueError naming the argument, or (where the kind allows) converts correctly — and in every
case: within the time limit, without a multi-GB allocation, no NaN in the result, results detached, the
model and the tensor arguments left as found, the grad mode unchanged.

Adding a module (e.g. ``featurevis``): import it and append one line per public function to ``SWEEP``::

    entry(featurevis.class_visualization, model=Fresh(tiny_net), target=1, steps=2, size=12,
          kinds={"lr": "float+", "jitter": "count"}),

Arguments named as in ``sweep.KIND_BY_NAME`` (model, images, target, labels, steps, batch_size, generator,
baseline, layer, window, stride, method, progress, size ...) are swept automatically, also when left at
their default; ``kinds`` names the kind of any other argument (``None`` switches one off), ``expect``
overrides one case (``{"images:grayscale": "any"}`` for a function that converts grayscale), and
``state=False`` marks a function that changes the model by design. A new class of bad input is one more
``Bad(...)`` in the kind's list in tests/sweep.py.
"""

from __future__ import annotations

import inspect
import os

import helpers
import matplotlib
import numpy as np
import pytest
import torch
import zoo
from sweep import CLEAR_ERRORS, KINDS, Entry, Fresh, call, check_result, entry, same_result, same_size
from torch import nn

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cnn_helpers import adversarial, attribution, featurevis, nets, pretrained, style, training  # noqa: E402
from cnn_helpers.core import data, exercises, fold, hooks, plotting, repro  # noqa: E402

CLASSES = 5


def tiny_net() -> nn.Module:
    """Conv-BN-ReLU-Dropout-Conv-ReLU-pool-Linear, 5 classes, in mixed mode (train, BN frozen), a frozen
    weight and a stale ``.grad``: everything a helper must leave as it found it."""
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                          nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(6, CLASSES))
    helpers.randomize_batch_norm(model, g)
    helpers.mixed_mode(model)
    model[0].weight.requires_grad_(False)
    model[-1].weight.grad = torch.full_like(model[-1].weight, 0.5)
    return model


def tiny_images() -> torch.Tensor:
    return torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(1))


def tiny_heatmap() -> torch.Tensor:
    return torch.rand(2, 12, 12, generator=torch.Generator().manual_seed(2))


def small_net() -> nn.Module:
    return helpers.mixed_mode(nets.residual_net(8, widths=(2, 2, 2), in_channels=1, num_classes=3))


def small_data() -> torch.Tensor:
    return torch.randn(8, 1, 6, 6, generator=torch.Generator().manual_seed(3))


def small_labels() -> torch.Tensor:
    return torch.randint(0, 3, (8,), generator=torch.Generator().manual_seed(4))


def tiny_pretrained() -> pretrained.Pretrained:
    return pretrained.Pretrained(model=tiny_net(), name="tiny", categories=list("abcde"), input_size=12, source="test",
                             info=pretrained.model_info("efficientnet_lite0"), verified=False)


def seeded() -> torch.Generator:
    return torch.Generator().manual_seed(0)


MODEL, IMAGES, HEAT, GEN = Fresh(tiny_net), Fresh(tiny_images), Fresh(tiny_heatmap), Fresh(seeded)
SMALL, DATA, LABELS = Fresh(small_net), Fresh(small_data), Fresh(small_labels)
TARGET = Fresh(lambda: torch.tensor([1, 3]))
NO_IMAGES = {"images:grayscale": "any", "images:rgba": "any", "images:3-d": "any"}  # shape-generic image helpers
META = {"input_size:huge": "any"}  # counted on the meta device: any size is cheap
IMAGE16 = Fresh(lambda: torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(5)))  # featurevis: >= 16 px
CHANNEL = Fresh(lambda: featurevis.channel("4", 1))
FILTERS = Fresh(lambda: torch.randn(5, 3, 3, 3, generator=torch.Generator().manual_seed(6)))
SIGNAL = {"images:uint8 range": "any", "images:normalized": "any", "images:grayscale": "any", "images:rgba": "any"}
NOT_YET = {"layer:unknown": "any", "target:out of range": "any", "target:out of range tensor": "any",
           "target:too long": "any"}  # objectives: the model (classes, layer names) is known only in the first pass
SHOW_IMAGES = {"images:grayscale": "any", "images:3-d": "any", "images:list": "any", "images:float16": "any"}

ADV = {"labels": "target", "eps": "float0", "targeted": "bool", "norm": "choice", "random_start": "bool",
       "early_stop": "bool", "loss": "choice", "fold": "bool"}  # attacks: labels are an int or (N,) classes like a target


def attack_kinds(fn) -> dict[str, str]:
    """The kinds of ``ADV`` for the attack options that ``fn`` takes."""
    return {name: kind for name, kind in ADV.items() if name in inspect.signature(fn).parameters}


OPTIONAL_ALPHA = {"alpha:none": "any"}  # alpha=None: the default step size 2.5 eps / steps
ADV_IMAGES = {"adv:uint8 range": "any", "adv:normalized": "any"}  # a step may leave [0, 1]; projecting clamps

SWEEP: list[Entry] = [
    # adversarial (notebook 06); steps=0 is a valid no-op (PGD's random start alone)
    entry(adversarial.fgsm, model=MODEL, images=IMAGES, labels=TARGET, eps=0.05, kinds=attack_kinds(adversarial.fgsm)),
    entry(adversarial.pgd, model=MODEL, images=IMAGES, labels=TARGET, eps=0.05, alpha=0.01, steps=3, generator=GEN,
          kinds=attack_kinds(adversarial.pgd), expect={"steps:zero": "any"}),
    entry(adversarial.project, adv=Fresh(lambda: tiny_images() + 0.1), images=IMAGES, eps=0.05,
          kinds={"adv": "images", "eps": "float0", "norm": "choice"}, expect={**ADV_IMAGES, **NO_IMAGES}),
    entry(adversarial.deepfool, model=MODEL, images=IMAGES, labels=TARGET, steps=3, classes=3,
          kinds={"labels": "target", "overshoot": "float0", "classes": "int+"}, expect={"steps:zero": "any"}),
    # adversarial: evaluation
    entry(adversarial.attack, model=MODEL, images=IMAGES, labels=TARGET, eps=0.05, steps=2, generator=GEN,
          kinds=attack_kinds(adversarial.attack), expect=OPTIONAL_ALPHA),
    entry(adversarial.predict, model=MODEL, images=IMAGES),
    entry(adversarial.eps_curve, model=MODEL, images=IMAGES, labels=TARGET, eps_values=[0.0, 0.01, 0.05],
          kinds={"labels": "target", "targeted": "bool"}),
    entry(adversarial.fooling_rate, model=MODEL, clean=IMAGES, perturbed=Fresh(lambda: tiny_images().flip(-1)),
          kinds={"clean": "images", "perturbed": "images"}),
    entry(adversarial.transfer_matrix, models=Fresh(lambda: [tiny_net(), tiny_net()]), images=IMAGES, eps=0.05,
          steps=2, kinds={"eps": "float0"}, expect=OPTIONAL_ALPHA),
    # the transform's cost depends on the batches fit will give it: huge steps are refused when it is called
    entry(adversarial.adversarial_transform, model=MODEL, eps=0.05, generator=GEN,
          kinds={"eps": "float+", "steps": "int+", "alpha": "float+", "norm": "choice", "random_start": "bool"},
          expect=OPTIONAL_ALPHA),
    # attribution
    entry(attribution.occlusion_map, model=MODEL, images=IMAGES, target=TARGET, window=4, stride=2,
          kinds={"perturbations_per_eval": "batch"}),
    entry(attribution.occlusion_plan, model=MODEL, images=IMAGES, window=4, stride=2, kinds={"field_limit": "float+"},
          expect={"field_limit:none": "same"}),  # None: the default, exact regions
    entry(attribution.saliency_map, model=MODEL, images=IMAGES, target=TARGET),
    entry(attribution.smoothgrad, model=MODEL, images=IMAGES, target=TARGET, samples=3, generator=GEN,
          kinds={"stdev": "float0"}),
    entry(attribution.integrated_gradients, model=MODEL, images=IMAGES, target=TARGET, steps=4),
    entry(attribution.guided_backprop, model=MODEL, images=IMAGES, target=TARGET),
    entry(attribution.grad_cam, model=MODEL, images=IMAGES, target=TARGET, layer="2",
          kinds={"relu": "bool", "upsample": "bool"}),
    # attribution: evaluation
    entry(attribution.deletion_curve, model=MODEL, images=IMAGES, target=TARGET, heatmap=HEAT, steps=4),
    entry(attribution.insertion_curve, model=MODEL, images=IMAGES, target=TARGET, heatmap=HEAT, steps=4,
          baseline=0.5),
    entry(attribution.insertion_start, images=IMAGES, kinds={"sigma": "float+"}, expect=NO_IMAGES),
    entry(attribution.cascading_randomization, model=MODEL, layers=["8", "4"], generator=GEN),
    entry(attribution.randomize_parameters, module=MODEL, generator=GEN, state=False),
    entry(attribution.area_under_curve, curve=Fresh(lambda: torch.rand(2, 5)), kinds={"curve": "map"}),
    entry(attribution.spearman, a=HEAT, b=Fresh(lambda: tiny_heatmap() ** 2), kinds={"a": "map", "b": "map"},
          expect={"a:wrong shape": "refuse", "b:wrong shape": "refuse"}),
    # nets: what a network costs
    entry(nets.count_weight_layers, model=MODEL),
    entry(nets.count_parameters, model=MODEL),
    entry(nets.count_macs, model=MODEL, input_size=12, kinds={"input_size": "size"}, expect=META),
    entry(nets.layer_table, model=MODEL, input_size=12, kinds={"input_size": "size"}, expect=META),
    # training and gradients (notebook 02)
    entry(training.fit, model=SMALL, images=DATA, labels=LABELS, steps=2, batch_size=4, warmup=1, state=False,
          kinds={"images": "data", "lr": "float+", "momentum": "float0", "weight_decay": "float0", "warmup": None}),
    entry(training.evaluate, model=SMALL, images=DATA, labels=LABELS, kinds={"images": "data"}),
    entry(training.training_error, model=SMALL, images=DATA, labels=LABELS, kinds={"images": "data"}),
    entry(training.gradient_norms, model=SMALL, images=DATA, labels=LABELS, kinds={"images": "data", "training": "bool"}),
    # pretrained
    entry(pretrained.classify, pretrained=Fresh(tiny_pretrained), images=IMAGES, k=3),
    entry(pretrained.topk_probabilities, logits=Fresh(lambda: torch.randn(2, CLASSES)), k=2),
    entry(pretrained.load_pretrained, name="efficientnet_lite0", contexts=False),
    entry(pretrained.weights_path, name="resnet50", kinds={"name": "model name"}),
    entry(pretrained.model_info, name="resnet50", kinds={"name": "model name"}),
    entry(pretrained.imagenet_categories),
    entry(pretrained.available_models),
    # data
    entry(data.load_image, name_or_path="cat", size=16),
    entry(data.image_from_array, array=Fresh(lambda: np.random.default_rng(0).random((5, 6, 3)))),
    entry(data.resize, images=IMAGES, size=6, expect=NO_IMAGES),
    entry(data.center_crop, images=IMAGES, size=6, expect=NO_IMAGES),
    entry(data.resize_and_crop, images=IMAGES, size=6, expect=NO_IMAGES),
    entry(data.to_numpy, image=Fresh(lambda: tiny_images()[:1])),
    entry(data.load_mnist, size=7, kinds={"standardize": "bool"}),
    entry(data.load_stamps, size=8, effective=4, kinds={"effective": "int+"}),
    # plotting
    entry(plotting.show_images, images=IMAGES, kinds={"ncols": "int+", "size": "float+"}, expect=SHOW_IMAGES),
    entry(plotting.overlay_heatmap, image=Fresh(lambda: tiny_images()[:1]), heatmap=Fresh(lambda: tiny_heatmap()[0]),
          kinds={"heatmap": "map"}),
    entry(plotting.topk_bar, predictions=[("cat", 0.75), ("dog", 0.25)]),
    # repro
    entry(repro.seed_everything, seed=3, kinds={"seed": "int0"}),
    entry(repro.get_device, prefer="cpu", kinds={"prefer": "device"}),
    # exercise checks (every notebook's check cells)
    entry(exercises.check_close, actual=Fresh(lambda: tiny_images()[0]), expected=Fresh(lambda: tiny_images()[0]),
          kinds={"atol": "float0", "rtol": "float0"}),
    entry(exercises.check_function, student=lambda x: x * 2, reference=lambda x: x + x,
          make_inputs=lambda g: (torch.rand(2, 3, generator=g),), trials=2,
          kinds={"trials": "count", "seed": "int0", "atol": "float0", "rtol": "float0", "timeout": "float+"},
          expect={"timeout:none": "any"}),
    # networks
    entry(nets.plain_net, depth=8, widths=(2, 2, 2), kinds={"in_channels": "int+", "num_classes": None}),
    entry(nets.blocks_for_depth, depth=14),
    entry(nets.small_cnn, in_channels=3, num_classes=3, widths=(2, 2), kinds={"in_channels": "int+", "num_classes": "int+"}),
    entry(training.identity_extension, model=Fresh(lambda: nets.plain_net(8, widths=(2, 2, 2))), depth=14),
    entry(training.warmup_cosine, step=3, steps=10, warmup=2, kinds={"step": "int0", "steps": "int+", "warmup": "int0"}),
    entry(nets.resnet18, num_classes=3, contexts=False),
    # feature visualization (notebook 04)
    entry(featurevis.visualize, model=MODEL, objective=CHANNEL, steps=2, size=16, generator=GEN,
          kinds={"lr": "float+", "batch": "int+", "param": "choice", "transforms": "choice"},
          expect={"transforms:none": "any"}),
    entry(featurevis.class_visualization, model=MODEL, target=TARGET, steps=2, size=16, generator=GEN,
          kinds={"lr": "float+"}, expect={"target:too long": "any"}),
    entry(featurevis.deepdream, model=MODEL, image=IMAGE16, layer="4", octaves=2, steps=2, generator=GEN,
          kinds={"octaves": "count", "octave_scale": "float+", "lr": "float+", "jitter": "int0", "smooth": "float0"},
          expect={"image:batch": "any"}, post=same_size("image")),
    entry(featurevis.invert_features, model=MODEL, image=IMAGE16, layer="4", steps=2, generator=GEN,
          kinds={"tv_weight": "float0", "l2_weight": "float0", "lr": "float+", "param": "choice"},
          expect={"image:batch": "any"}),
    # an empty list records nothing: gradient ascent on the logits alone runs the model as usual
    entry(hooks.record, model=MODEL, layers=["2", "4"], kinds={"stop": "bool", "inputs": "bool"},
          expect={"layers:empty": "any"}),
    # no layers: the model's output is compared (style transfer folds a copy, notebook 05)
    entry(fold.fold_batch_norm, model=MODEL, images=IMAGES, layers=["2", "4"], expect={"layers:empty": "any"}),
    entry(featurevis.activations, model=MODEL, images=IMAGES, layers=["2", "4"]),
    entry(featurevis.first_conv, model=MODEL),
    entry(featurevis.first_layer_filters, model=MODEL),
    entry(featurevis.filter_images, filters=FILTERS, kinds={"filters": "map"}),
    entry(featurevis.filter_statistics, filters=FILTERS, kinds={"filters": "map", "threshold": "float+"}),
    entry(featurevis.orientation_selectivity, filters=FILTERS, kinds={"filters": "map", "angles": "count"}),
    entry(featurevis.edge_strength, images=IMAGES),
    entry(featurevis.colourfulness, images=IMAGES),
    entry(featurevis.response_correlation, model=MODEL, images=IMAGES,
          reference=Fresh(lambda: tiny_heatmap()[:, None]), filters=FILTERS,
          kinds={"reference": "map", "filters": "map"}),
    entry(featurevis.top_patches, model=MODEL, images=IMAGES, layer="4", channel=1, k=3, patch=6,
          kinds={"channel": "int0", "patch": "int+"}),
    entry(featurevis.colour_correlation, names=("cat", "dog"), size=16),
    entry(featurevis.fourier_scale, size=16, kinds={"decay_power": "float0"}),
    entry(featurevis.spectrum_to_image, spectrum=Fresh(lambda: torch.fft.rfft2(tiny_images())), size=(12, 12),
          kinds={"size": "pair", "decay_power": "float0"}),
    entry(featurevis.pixels, size=16, generator=GEN,
          kinds={"images": None, "batch": "int+", "decorrelate": "bool", "sd": "float0"}),
    entry(featurevis.fourier, size=16, generator=GEN,
          kinds={"images": None, "batch": "int+", "decorrelate": "bool", "sd": "float0", "decay_power": "float0"}),
    entry(featurevis.radial_spectrum, images=IMAGES, kinds={"bins": "int+"}, expect=SIGNAL),
    entry(featurevis.high_frequency_share, images=IMAGES, kinds={"cutoff": "float0"}, expect=SIGNAL),
    entry(featurevis.class_logit, target=TARGET, expect=NOT_YET),
    entry(featurevis.channel, layer="4", index=1, kinds={"index": "int0"}, expect=NOT_YET),
    entry(featurevis.neuron, layer="4", index=1, y=0, x=1,
          kinds={"index": "int0", "y": "int0", "x": "int0"}, expect=NOT_YET),
    entry(featurevis.layer_l2, layer="4", expect=NOT_YET),
    entry(featurevis.feature_match, layer="4", target=Fresh(lambda: torch.rand(1, 6, 8, 8)),
          kinds={"target": "map"}, expect=NOT_YET),
    entry(featurevis.image_l2),
    entry(featurevis.image_tv, kinds={"beta": "float+"}),
    entry(featurevis.total_variation, images=Fresh(lambda: torch.randn(2, 3, 5, 6)),
          kinds={"images": "data", "beta": "float+"}),
    entry(featurevis.Pad, pixels=2, kinds={"pixels": "int0", "value": "float0"}),
    entry(featurevis.Jitter, pixels=2, kinds={"pixels": "int0"}),
    entry(featurevis.RandomScale, kinds={"low": "float+", "high": "float+"}),
    entry(featurevis.RandomRotate, kinds={"degrees": "float0"}),
    entry(featurevis.Blur, kinds={"sigma": "float0"}),
    entry(featurevis.Compose, transforms=[featurevis.Jitter(1), featurevis.Blur()]),
    entry(featurevis.blur, images=IMAGES, sigma=1.0, kinds={"images": "data", "sigma": "float0"}),
    entry(featurevis.standard_transforms, size=16, expect={"size:huge": "any"}),
    # style (notebook 05)
    entry(style.gram_matrix, features=Fresh(lambda: torch.randn(2, 4, 5, 5)), kinds={"features": "data", "centred": "bool"}),
    # feature maps and losses are building blocks of an optimization loop: attached to the graph by design
    entry(style.feature_maps, model=MODEL, images=IMAGES, layers=["2", "5"], kinds={"upsample": "int+"}, attached=True),
    entry(style.style_maps, model=MODEL, images=IMAGES, layers=["2", "5"], pixels=True,
          kinds={"upsample": "int+", "pixels": "bool"}, attached=True),
    entry(style.style_loss, features=Fresh(lambda: {"a": tiny_images().requires_grad_(True)}),
          targets=Fresh(lambda: {"a": (torch.eye(3)[None] + 0.1, torch.full((1, 3), 0.5))}), kinds={"centred": "bool"},
          attached=True),
    entry(style.content_loss, features=Fresh(lambda: {"a": tiny_images().requires_grad_(True)}),
          targets=Fresh(lambda: {"a": tiny_images()[:1].flip(-1)}), attached=True),
    entry(style.style_targets, model=MODEL, style=Fresh(lambda: tiny_images()[:1]), style_layers=["2", "5"],
          kinds={"style": "images", "style_layers": "layers", "upsample": "int+", "centred": "bool", "pixels": "bool"},
          expect={"style:3-d": "any"}),
    entry(style.synthesize_texture, model=MODEL, exemplar=Fresh(lambda: tiny_images()[:1]), size=8,
          style_layers=["2", "5"], steps=2, optimizer="adam", generator=GEN,
          kinds={"exemplar": "images", "style_layers": "layers", "octaves": "int+", "lr": "float+", "upsample": "int+",
                 "clamp_every": "int+", "centred": "bool", "pixels": "bool"},
          expect={"exemplar:3-d": "any", "lr:none": "any"}),  # lr=None is the default: the optimizer's own lr
    entry(style.style_transfer, model=MODEL, content=Fresh(lambda: tiny_images()[:1]),
          style=Fresh(lambda: tiny_images()[1:]), style_layers=["2", "5"], content_layers=["5"], steps=2,
          optimizer="adam", generator=GEN,
          kinds={"content": "images", "style": "images", "style_layers": "layers", "content_layers": "layers",
                 "content_weight": "float0", "lr": "float+", "upsample": "int+", "clamp_every": "int+",
                 "centred": "bool", "pixels": "bool", "octaves": "int+", "coarse_steps": "count"},
          # lr=None: the optimizer's own lr; coarse_steps is not used with one octave
          expect={"content:3-d": "any", "style:3-d": "any", "lr:none": "any", "coarse_steps:huge": "any"}),
    entry(style.style_distance, model=MODEL, images=IMAGES, style=Fresh(lambda: tiny_images()[:1]),
          layers=["2", "5"], kinds={"style": "images"}, expect={"style:3-d": "any"}),
    entry(style.class_rank, model=MODEL, images=IMAGES, target=TARGET),
    entry(style.ssim, images=IMAGES, reference=Fresh(lambda: tiny_images().flip(0)), kinds={"reference": "images"}),
    entry(style.spectrum_distance, images=IMAGES, reference=Fresh(lambda: tiny_images()[:1].flip(-1)), bins=2,
          kinds={"reference": "images", "bins": "int+"}, expect={"reference:3-d": "any"}),
    # transfer (notebook 07)
    entry(training.extract_features, model=MODEL, images=IMAGES, layer="5", kinds={"inputs": "bool"},
          expect={"layer:none": "any", "layer:list": "any"}),  # documented: None = the head's input, a list = a dict
    entry(training.last_linear, model=MODEL),
    entry(training.prepare, model=MODEL, num_classes=3, strategy="partial", trainable_from="4", generator=GEN,
          kinds={"strategy": "choice", "trainable_from": "layer"}, state=False),
    entry(training.next_layer, model=MODEL, layer="4"),
    entry(training.upper_part, model=MODEL, layer="5", example=IMAGES, kinds={"example": "images"}),
    entry(training.train_classifier, model=MODEL, train=Fresh(lambda: (tiny_images(), torch.tensor([1, 3]))),
          epochs=2, batch_size=2, generator=GEN, state=False,
          kinds={"epochs": "count", "lr": "float+", "weight_decay": "float0", "every": "int+"}),
    entry(training.top1_accuracy, model=MODEL, inputs=IMAGES, labels=TARGET, kinds={"inputs": "data", "labels": "target"}),
    entry(training.balanced_accuracy, model=MODEL, inputs=IMAGES, labels=Fresh(lambda: torch.tensor([1, 3])),
          kinds={"inputs": "data"}),
    entry(training.linear_probe, train=Fresh(lambda: (torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2]))),
          epochs=3, generator=GEN, kinds={"epochs": "count", "lr": "float+", "weight_decay": "float0"}),
    entry(training.stratified_split, labels=Fresh(lambda: torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])),
          per_class=[1, 1], generator=GEN,  # no model, no class count: any non-negative ints are classes
          expect={"labels:too short": "any", "labels:out of range": "any"}),
    # the valid call needs no weights; a model not on disk is test_sources' offline error (no network attempt)
    entry(pretrained.load_from, source="torchvision", name="resnet18", pretrained=False,
          kinds={"source": "choice", "name": "model name", "pretrained": "bool"}),
    entry(training.to_rgb, images=Fresh(lambda: torch.rand(2, 1, 6, 6, generator=seeded())), size=8,
          expect=NO_IMAGES),
]


# Cases switched off while another branch fixes them: "zoo:TOPIC" switches off the zoo for a whole topic, a case id
# one case (SWEEP_PENDING=run in the environment runs them anyway, to see which still fail). Keep it empty on main.
PENDING: tuple[str, ...] = ()  # emptied after the featurevis, style and adversarial fixes were merged
_RUN_PENDING = os.environ.get("SWEEP_PENDING") == "run"


def _param(*values: object, id: str, pending: str) -> object:
    skip = pending in PENDING and not _RUN_PENDING
    marks = [pytest.mark.skip(reason=f"PENDING (issue 20, another topic's fix): {pending}")] if skip else []
    return pytest.param(*values, id=id, marks=marks)


def _cases() -> list:
    return [_param(e, argument, label, id=(case := f"{e.name}-{argument}-{label or 'valid'}"), pending=case)
            for e in SWEEP for argument, label in e.cases()]


_REFERENCE: dict[str, object] = {}


def check_accepted(e: Entry, result: object, arguments: dict, what: str) -> None:
    """The general checks of an accepted result, and the entry's own ``post`` check."""
    check_result(result, e.attached)
    problem = e.post(result, arguments) if e.post is not None else None
    assert problem is None, f"{what}: {problem}"


def reference(e: Entry) -> object:
    """The valid call's result (computed once per entry); it must itself pass every check."""
    if e.name not in _REFERENCE:
        arguments = e.arguments()
        result, error = call(e, arguments, limit=60)  # a first call may load data (MNIST: seconds)
        assert error is None, f"the valid example call of {e.name} failed: {error!r}"
        check_accepted(e, result, arguments, "the valid example call")
        _REFERENCE[e.name] = result
    return _REFERENCE[e.name]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def assert_clear(error: BaseException, arguments: dict, names: set[str], what: str) -> None:
    """A TypeError/ValueError (or FileNotFoundError) whose message names one of ``names``."""
    message = f"{type(error).__name__}: {error}"
    assert isinstance(error, CLEAR_ERRORS), f"obscure error for {what}: {message}"
    names = names | {n.rstrip("s") for n in names}
    names |= {v for n, v in arguments.items() if n in names and isinstance(v, str)}
    assert any(name in str(error) for name in names), f"the error does not name {sorted(names)}: {message}"


@pytest.mark.parametrize("e, argument, label", _cases())
def test_sweep(e: Entry, argument: str, label: str | None):
    expected = reference(e)
    arguments = e.arguments()
    if label is None:  # the valid call inside no_grad() / inference_mode()
        expect, context, atol = "same", argument, e.atol
    else:
        bad = next(b for b in KINDS[e.kinds[argument]] if b.label == label)
        expect, context, atol = e.expect.get(f"{argument}:{label}", bad.expect), None, max(e.atol, bad.atol)
        valid = arguments[argument] if argument in arguments else e.default(argument)
        arguments[argument] = bad.make(valid)
    result, error = call(e, arguments, context)
    if error is not None:
        assert context is None, f"the valid call fails inside {context}: {type(error).__name__}: {error}"
        assert_clear(error, arguments, {argument}, f"{argument}={label}")
        return
    assert expect != "refuse", f"{argument}={label} was accepted (expected a clear error); returned {type(result).__name__}"
    check_accepted(e, result, arguments, f"{argument}={label}")
    if expect == "same":
        assert same_result(result, expected, atol), f"{argument}={label}: a different result than the valid call"


def test_every_kind_is_used():
    used = {kind for e in SWEEP for kind in e.kinds.values()}
    assert used == set(KINDS), f"kinds without a function: {set(KINDS) - used}"


# ------------------------------------------------------------------------------------------------ the zoo

def _zoo_cases() -> list:
    return [_param(e, animal, id=f"{e.name}-zoo:{animal.name}", pending=f"zoo:{zoo.topic(e)}")
            for e in SWEEP if zoo.takes_a_model(e) for animal in zoo.ZOO]


@pytest.mark.parametrize("e, animal", _zoo_cases())
def test_zoo(e: Entry, animal: zoo.Animal):
    """The valid call on a zoo model (tests/zoo.py): the right result (its twin's) or a clear error; state kept."""
    arguments = zoo.zoo_arguments(e, animal)
    result, error = call(e, arguments)
    if error is not None:
        assert_clear(error, arguments, set(arguments) | {"model"}, f"the {animal.name} model")
        return
    check_accepted(e, result, arguments, f"the {animal.name} model")
    if zoo.compared(e, animal):
        twin = "its twin" if animal.twin else "the same model with layer lists"
        expected, twin_error = call(e, zoo.zoo_arguments(e, animal, reference=True))
        assert twin_error is None, f"works on the {animal.name} model, but {twin} fails: {twin_error!r}"
        assert same_result(result, expected, max(e.atol, 1e-4)), f"the {animal.name} model: another result than {twin}"
