"""The model zoo of the bad-input sweep: tiny networks built the ways real ones are, which the sweep's one tiny net is not.

Every public function that takes a model (tests/test_sweep.py, ``SWEEP``) is run on every :class:`Animal`, with
its valid example call adapted to the animal (:func:`zoo_arguments`: its images' channels, dtype and odd size,
class indices in its range, its layer names). A case passes when the function raises a clear TypeError/ValueError
naming one of its arguments, or returns a result that passes the sweep's general checks and, where the animal has
a *twin* (a plain network computing the same function with the same parameters), equals the twin's result; and
in every case leaves the model and the inputs as it found them (the sweep's state snapshot).

=================  =======================================================================  =====================
animal             what it has                                                              found (issue 20)
=================  =======================================================================  =====================
``inplace``        ``ReLU(inplace=True)`` and a residual ``out += x`` that overwrite what   #1 (Gram of an
                   the tapped layers returned                                               overwritten map)
``shared``         one ReLU module called twice in a pass (ResNet's ``layer1.0.relu``)      #2 (2N feature rows)
``unpack``         ``n, c, h, w = x.shape`` in forward (ShuffleNetV2)                       #3 (occlusion crash)
``unused``         a branch that never runs in forward (GoogLeNet's aux heads in eval)      #14
``float64``        float64 weights (and images)                                             #7
``bfloat16``       bfloat16 weights (and images)                                            #7
``grey``           a 1-channel input                                                        #7
``tuple``          returns ``(logits, features)``                                           #7
``segmentation``   returns (N, C, H, W) scores per pixel                                    #6
``one_logit``      a single output                                                          #6 (deepfool)
=================  =======================================================================  =====================

Layer arguments get the animal's multi-character layer names; an argument that takes a list of layers gets a
single name (``"bn1"``, documented as accepted), and the twin (or, without one, a fresh copy of the animal) gets the
one-element list, so a name iterated as characters shows (#12; the sweep's own net is named ``"2"``, ``"4"`` ...).
Images are 11 x 13 px: odd, and under the 16 px some helpers round up to (#5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import helpers
import torch
import torch.nn.functional as F
from torch import nn

SIZE = (11, 13)  # odd, not square, under 16 px
IMAGE_KINDS = {"images", "image", "data"}
TARGET_KINDS = {"target", "labels"}
LAYER_KINDS = {"layer"}
LAYERS_KINDS = {"layers"}
# functions whose result counts the model's modules or parameters: a twin with another structure differs by design
STRUCTURAL = {"nets.complexity.count_weight_layers", "nets.complexity.count_parameters", "nets.complexity.layer_table"}
# functions that draw random noise in the images' dtype: a float64 call draws other numbers than its float32 twin
DTYPE_NOISE = {"attribution.gradients.smoothgrad", "adversarial.attacks.pgd", "adversarial.evaluation.attack",
               "adversarial.evaluation.transfer_matrix", "adversarial.evaluation.eps_curve"}


class ZooNet(nn.Module):
    """conv1-bn1-relu1-conv2-relu2, then ``conv3(x) + x``, global average pooling and ``fc``; options make the animals.

    Args:
        channels: Input channels. classes: Outputs. inplace: In-place ReLUs and ``out = conv3(x); out += x``.
        shared: ``relu1`` is called again where ``relu2`` would be. unpack: Pools with ``n, c, h, w = x.shape``.
        unused: An ``aux`` head registered before ``fc`` that forward never calls. output: ``"logits"``,
        ``"tuple"`` (logits, pooled features) or ``"segmentation"`` ((N, classes, H, W) from a 1x1 conv).
    """

    def __init__(self, *, channels: int = 3, classes: int = 5, inplace: bool = False, shared: bool = False,
                 unpack: bool = False, unused: bool = False, output: str = "logits"):
        super().__init__()
        self.inplace, self.shared, self.unpack, self.output = inplace, shared, unpack, output
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace)
        self.conv2, self.conv3 = nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.Conv2d(6, 6, 3, padding=1)
        self.relu2 = None if shared else nn.ReLU(inplace)
        if unused:
            self.aux = nn.Linear(6, classes)
        if output == "segmentation":
            self.seg = nn.Conv2d(6, classes, 1)
        else:
            self.fc = nn.Linear(6, classes)

    def forward(self, x: torch.Tensor) -> Any:
        size = x.shape[-2:] if self.output == "segmentation" else None  # reading the shape: only where needed
        x = self.relu1(self.bn1(self.conv1(x)))
        x = (self.relu1 if self.shared else self.relu2)(self.conv2(x))
        if self.inplace:
            out = self.conv3(x)
            out += x  # overwrites what conv3 returned, as a ResNet block's `out += identity`
            x = out
        else:
            x = self.conv3(x) + x
        if self.output == "segmentation":
            return F.interpolate(self.seg(x), size=size, mode="bilinear", align_corners=False)
        if self.unpack:
            n, c, h, w = x.shape
            pooled = x.reshape(n, c, h * w).mean(2)
        else:
            pooled = x.mean(dim=(2, 3))
        logits = self.fc(pooled)
        return (logits, pooled) if self.output == "tuple" else logits


def _prepared(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random batch-norm statistics, mixed mode, a frozen weight and a stale ``.grad`` (as the sweep's tiny net)."""
    g = torch.Generator().manual_seed(seed)
    helpers.randomize_batch_norm(model, g)
    helpers.mixed_mode(model)
    model.conv1.weight.requires_grad_(False)
    head = getattr(model, "fc", None) or model.seg
    head.weight.grad = torch.full_like(head.weight, 0.5)
    return model


@dataclass(frozen=True)
class Animal:
    """One zoo model: how to build it, its inputs, the layers to name, and its twin (if it has one)."""

    name: str
    options: dict
    layer: str = "relu2"  # for an argument that names one layer
    layers: str = "bn1"  # for an argument that takes a list of layers: one name, as a string
    twin: bool = False  # a plain ZooNet with the same parameters computes the same function
    dtype: torch.dtype = torch.float32

    @property
    def channels(self) -> int:
        return self.options.get("channels", 3)

    @property
    def classes(self) -> int:
        return self.options.get("classes", 5)

    def model(self) -> nn.Module:
        torch.manual_seed(0)
        return _prepared(ZooNet(**self.options).to(self.dtype))

    def reference(self) -> nn.Module:
        """The twin: a plain float32 ZooNet with this animal's parameters; without a twin, a fresh copy of itself."""
        if not self.twin:
            return self.model()
        mine, twin = self.model().state_dict(), ZooNet(channels=self.channels, classes=self.classes)
        twin.load_state_dict({k: v.float() for k, v in mine.items() if k in twin.state_dict()})
        return _prepared(twin)


ZOO = [
    Animal("inplace", {"inplace": True}, layer="conv3", layers="bn1", twin=True),  # both overwritten in place later
    Animal("shared", {"shared": True}, layer="relu1", layers="relu1", twin=True),
    Animal("unpack", {"unpack": True}, twin=True),
    Animal("unused", {"unused": True}, layer="aux", layers="aux"),  # the layer functions must refuse "aux" clearly
    Animal("float64", {}, twin=True, dtype=torch.float64),
    Animal("bfloat16", {}, dtype=torch.bfloat16),  # no twin: 3 significant digits
    Animal("grey", {"channels": 1}),
    Animal("tuple", {"output": "tuple"}),
    Animal("segmentation", {"output": "segmentation"}),
    Animal("one_logit", {"classes": 1}),
]


def _resized(t: torch.Tensor) -> torch.Tensor:
    """A float map or image batch (..., H, W) resampled to ``SIZE`` (bilinear: values stay in their range)."""
    shape = t.shape
    flat = t.reshape(-1, 1, *shape[-2:]).float()
    out = F.interpolate(flat, size=SIZE, mode="bilinear", align_corners=False)
    return out.reshape(*shape[:-2], *SIZE).to(t.dtype)


def _image(t: torch.Tensor, animal: Animal) -> torch.Tensor:
    """An image argument for ``animal``: its size, its channels (grey: the mean of RGB; RGB: grey copied) and dtype."""
    if not t.is_floating_point() or t.ndim < 3:
        return t
    t = _resized(t)
    if t.ndim in (3, 4) and t.shape[-3] != animal.channels:
        t = t.mean(dim=-3, keepdim=True)
        t = t.expand(*t.shape[:-3], animal.channels, *t.shape[-2:]).contiguous()
    return t.to(animal.dtype)


def _classes(value: Any, animal: Animal) -> Any:
    """Class indices (an int or an integer tensor) folded into the animal's range."""
    if isinstance(value, torch.Tensor) and not value.is_floating_point():
        return value % animal.classes
    if isinstance(value, int) and not isinstance(value, bool):
        return value % animal.classes
    return value


def zoo_arguments(entry: Any, animal: Animal, *, reference: bool = False) -> dict[str, Any]:
    """The entry's valid arguments adapted to ``animal`` (``reference``: for its twin, layer lists as lists)."""
    from cnn_helpers import pretrained

    arguments = entry.arguments()
    images = next((v for k, v in arguments.items() if entry.kinds.get(k) in IMAGE_KINDS and
                   isinstance(v, torch.Tensor)), None)
    build = animal.reference if reference else animal.model
    for name, value in list(arguments.items()):
        kind = entry.kinds.get(name)
        if kind == "model" and isinstance(value, nn.Module):
            arguments[name] = build()
        elif name == "models":
            arguments[name] = [build(), build()]
        elif name == "pretrained":
            arguments[name] = pretrained.Pretrained(
                model=build(), name=f"zoo-{animal.name}", categories=[f"c{i}" for i in range(animal.classes)],
                input_size=max(SIZE), source="test", info=value.info, verified=False)
        elif name in ("train", "val") and isinstance(value, tuple):  # (images, labels) of a training set
            arguments[name] = (_image(value[0], animal), _classes(value[1], animal))
            if reference and animal.twin:
                arguments[name] = (arguments[name][0].float(), arguments[name][1])
        elif kind in IMAGE_KINDS and isinstance(value, torch.Tensor):
            arguments[name] = _image(value, animal)
            if reference and animal.twin:
                arguments[name] = arguments[name].float()
        elif kind in TARGET_KINDS:
            arguments[name] = _classes(value, animal)
        elif kind in LAYER_KINDS:
            arguments[name] = animal.layer
        elif kind in LAYERS_KINDS:
            arguments[name] = [animal.layers] if reference else animal.layers
        elif (isinstance(value, torch.Tensor) and value.is_floating_point() and images is not None
              and value.ndim >= 2 and value.shape[-2:] == images.shape[-2:]):
            arguments[name] = _resized(value)  # a heatmap or map of the images' size
    return arguments


def compared(entry: Any, animal: Animal) -> bool:
    """Whether the call on ``animal`` must equal a reference call: its twin's, or (for an entry that names layers)
    the same animal's with layer lists."""
    if entry.name in STRUCTURAL or (animal.dtype != torch.float32 and entry.name in DTYPE_NOISE):
        return False
    return animal.twin or layer_arguments(entry)


def topic(entry: Any) -> str:
    """The sub-package an entry's function lives in (``"attribution"`` ...)."""
    return entry.fn.__module__.split(".")[1]


def layer_arguments(entry: Any) -> bool:
    """Whether the entry takes a list of layers (then even an animal without a twin is compared with a list-form call)."""
    return any(kind in LAYERS_KINDS for kind in entry.kinds.values())


def takes_a_model(entry: Any) -> bool:
    """Entries the zoo runs: those given a model (``model``, ``module``, ``models`` or ``pretrained``)."""
    return any(name in entry.valid for name in ("model", "module", "models")) or \
        entry.kinds.get("pretrained", "pretrained") == "pretrained" and "pretrained" in entry.valid

