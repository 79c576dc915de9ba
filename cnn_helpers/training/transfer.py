"""Transfer learning: reuse a pretrained CNN as a feature extractor, or fine-tune some or all of its layers.

Used by notebook 07. Where the pretrained models themselves come from (torchvision, timm, Hugging Face,
OpenMMLab) is :mod:`cnn_helpers.pretrained.sources`.

* :func:`extract_features`: what a layer computes (or receives), pooled to ``(N, D)`` or as it is, in batches.
* :func:`prepare`: a copy of a pretrained classifier with a new head and exactly the intended parameters
  trainable: ``"linear"`` (frozen body), ``"partial"`` (upper layers from ``trainable_from``), ``"full"``,
  ``"scratch"`` (same architecture, random weights). Frozen layers are put in eval mode (a frozen batch
  norm keeps its statistics while the rest trains).
* :func:`upper_part`: the layers from ``trainable_from`` to the output as a module of their own, so that
  the frozen part runs once (cached features) instead of at every step: exact, and checked.

Training them (:func:`train_classifier`, :func:`linear_probe`) and the data helpers live in
:mod:`cnn_helpers.training.probes`.

Reference: Yosinski et al., "How transferable are features in deep neural networks?", NeurIPS 2014;
Kornblith et al., "Do Better ImageNet Models Transfer Better?", CVPR 2019.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from cnn_helpers.core.budget import batch_size_for, check_pass_memory
from cnn_helpers.core.checks import (check_bool, check_choice, check_generator, check_images, check_int, check_layer,
                                     check_layers, check_logits, check_model)
from cnn_helpers.core.hooks import StopForward, record
from cnn_helpers.core.macs import meta_forward, without_hooks
from cnn_helpers.core.memory import check_memory
from cnn_helpers.core.state import evaluating, model_device

__all__ = ["STRATEGIES", "extract_features", "last_linear", "prepare", "next_layer", "upper_part", "seed_from"]

STRATEGIES = ("linear", "partial", "full", "scratch")


# ------------------------------------------------------------------------------------------------ features

def extract_features(model: nn.Module, images: torch.Tensor, *, layer: str | Sequence[str] | None = None,
                     pool: bool | Sequence[str] = True, inputs: bool = False,
                     batch_size: int | None = None) -> torch.Tensor | dict[str, torch.Tensor]:
    """What a layer of ``model`` computes for each image, in eval mode, batched, without gradients.

    Args:
        model: Any ``nn.Module`` taking images (left exactly as it was: modes, hooks, parameters).
        images: (N, C, H, W) in [0, 1] (the course's models normalize inside), in the model's dtype.
        layer: A submodule name, a list of names (one pass for all), or None: the input of the last
            ``nn.Linear`` (the penultimate features that the classifier head sees). Default: None.
        pool: Average each (N, C, h, w) map over its positions to (N, C): True (all), False (none) or the
            names of the layers to pool (the others come back whole). Default: True.
        inputs: Take what the layer *receives* instead of what it returns (the input of ``trainable_from``
            is what the frozen part of a model hands to the trainable part). Default: False.
        batch_size: Images per forward pass. Default: 32 images of 224 x 224 pixels, more when smaller.

    Returns:
        (N, D) features (or the unpooled (N, ...) tensor), detached, on the images' device; a dict
        name -> tensor when ``layer`` is a list. A layer called several times per pass (a ResNet block's shared
        ReLU) gives its first call; a layer that does not run (GoogLeNet's auxiliary heads in eval mode) is a
        ValueError. A batch's activations and the unpooled maps kept are estimated first: a warning above 1 GiB,
        a ValueError above 8 GiB (a photo of 8000 x 8000 px).

    Example:
        >>> feats = extract_features(pre.model, images)                     # (N, 1280) for EfficientNet-Lite0
    """
    check_model(model)
    check_images(images, model=model, channels=None)  # a channel count the model does not take: see _run
    check_bool(inputs, "inputs")
    names = [last_linear(model)] if layer is None else check_layers(model, layer, "layer")
    if isinstance(pool, bool):
        pool = names if pool else []
    elif not isinstance(pool, (list, tuple, set)) or not set(pool) <= set(names):
        raise ValueError(f"pool must be True, False or a list of names from layer={names}; got {pool!r}")
    inputs = inputs or layer is None
    batch_size = batch_size_for(images, 32) if batch_size is None else check_int(batch_size, "batch_size")
    with _taking(images):
        kept = _map_elements(model, images, [n for n in names if n not in pool], inputs) * images.element_size()
        check_pass_memory(model, images, f"extract_features of {len(images)} images of {images.shape[-2]}x"
                          f"{images.shape[-1]} px (batch_size={batch_size})", backward=False, batch_size=batch_size,
                          keep=kept * len(images),
                          hint="use smaller images or a smaller batch_size (pool=True keeps only (N, C))")
    found: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    device = model_device(model)
    with evaluating(model), torch.no_grad(), record(model, names, inputs=inputs, stop=True) as rec:
        for chunk in images.split(batch_size):
            _run(rec, chunk.to(device))
            for name in names:
                value = rec[name]
                found[name].append(value.mean(dim=(2, 3)) if name in pool and value.ndim == 4 else value)
    out = {n: torch.cat(v).to(images.device) for n, v in found.items()}
    return out if isinstance(layer, (list, tuple)) else out[names[0]]


def _map_elements(model: nn.Module, images: torch.Tensor, names: list[str], inputs: bool) -> int:
    """Elements per image of the named layers' outputs (``inputs``: what they receive), from one pass on the ``meta``
    device (no memory, no time); 0 for no names, or a model that needs real values (it is then not estimated)."""
    if not names:
        return 0
    with without_hooks(model), record(model, names, inputs=inputs, stop=True) as rec:
        try:
            meta_forward(model, (1, *images.shape[1:]), images.dtype)
        except StopForward:
            pass
        except (RuntimeError, NotImplementedError):  # .item() and friends have no value on meta
            return 0
        return sum(rec.values[n].numel() for n in names if n in rec)


@contextmanager
def _taking(images: torch.Tensor, name: str = "images") -> Iterator[None]:
    """Input the model cannot take (channels, size) is a ValueError naming ``name`` (torch's RuntimeError says why)."""
    try:
        yield
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as error:  # e.g. "expected input ... to have 3 channels"
        raise ValueError(f"the model cannot take {name} of shape {tuple(images.shape)}: {error}") from error


def _run(model: Callable[[torch.Tensor], Any], images: torch.Tensor, name: str = "images") -> Any:
    """``model(images)``; input the model cannot take (channels, size) is a ValueError naming ``name``."""
    with _taking(images, name):
        return model(images)


def last_linear(model: nn.Module) -> str:
    """The name of the last ``nn.Linear`` of ``model`` (the classifier head of every registry model)."""
    check_model(model)
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError("model has no nn.Linear layer: name the head (head=...) or the layer (layer=...)")
    return names[-1]


# ------------------------------------------------------------------------------------------------ strategies

def seed_from(generator: torch.Generator | None) -> int:
    """A seed drawn from ``generator``, for code that uses torch's global generator (layer initialization)."""
    return int(torch.randint(0, 2**62, (1,), generator=generator))


def prepare(model: nn.Module, num_classes: int, *, strategy: str, trainable_from: str | None = None,
            head: str | None = None, generator: torch.Generator | None = None) -> nn.Module:
    """A copy of a pretrained classifier, ready to be trained on a new task with ``num_classes`` classes.

    Args:
        model: The pretrained classifier; never changed (the copy has its own parameters).
        num_classes: Classes of the new task; the head becomes a fresh ``nn.Linear(D, num_classes)``.
        strategy: ``"linear"`` (only the new head trains), ``"partial"`` (``trainable_from`` and every layer
            registered after it train), ``"full"`` (everything trains), ``"scratch"`` (everything trains,
            starting from random weights: the architecture without the pretraining).
        trainable_from: First trainable layer, for ``"partial"`` only (e.g. a late stage of ``pre.info.stages``).
        head: Name of the classifier layer. Default: the last ``nn.Linear`` (``pre.info.head``).
        generator: Seeds the new head (and, for ``"scratch"``, every layer).

    Returns:
        The new model (without the hooks ``model`` may have) in training mode, ``requires_grad`` set exactly as the
        strategy says, frozen modules in eval mode. Batch norm keeps its pretrained statistics (eval mode; where trainable, its scale and
        shift still learn): with a few small batches, fresh statistics would not match at test time.
        ``"scratch"`` trains them, with momentum 0.1.

    Example:
        >>> net = prepare(pre.model, 10, strategy="partial", trainable_from="net._blocks.11")
    """
    check_model(model)
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    strategy, generator = check_choice(strategy, "strategy", STRATEGIES), check_generator(generator)
    if (strategy == "partial") != (trainable_from is not None):
        raise ValueError("trainable_from names the first trainable layer of strategy='partial' (and only there); "
                         f"got strategy={strategy!r}, trainable_from={trainable_from!r}")
    head = last_linear(model) if head is None else head
    if not isinstance(check_layer(model, head), nn.Linear):
        raise ValueError(f"head {head!r} must be an nn.Linear, got {type(model.get_submodule(head)).__name__}")
    if trainable_from is not None:
        check_layer(model, trainable_from, "trainable_from")
    old = model.get_submodule(head)
    check_memory(old.in_features * num_classes * old.weight.element_size(), f"a head with num_classes={num_classes}")
    with without_hooks(model):  # the hooks of a recording on the pretrained model are not the new model's
        new = copy.deepcopy(model)
    old = new.get_submodule(head)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed_from(generator))
        if strategy == "scratch":
            for module in new.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()  # batch norm: also its running statistics
        fresh = nn.Linear(old.in_features, num_classes).to(device=old.weight.device, dtype=old.weight.dtype)
    parent, _, leaf = head.rpartition(".")
    setattr(new.get_submodule(parent) if parent else new, leaf, fresh)
    first = {"linear": head, "partial": trainable_from}.get(strategy)
    _freeze_before(new, first, fresh=strategy == "scratch")
    return new


def _freeze_before(model: nn.Module, first: str | None, *, fresh: bool) -> None:
    """Train mode; modules registered before ``first`` (not its ancestors) frozen; batch-norm statistics kept."""
    model.train()
    model.requires_grad_(True)
    ancestors = set() if first is None else {first.rsplit(".", i)[0] for i in range(1, first.count(".") + 1)} | {""}
    frozen = first is not None
    for name, module in model.named_modules():
        frozen = frozen and name != first
        if frozen and name not in ancestors:
            module.eval()
            for p in module.parameters(recurse=False):
                p.requires_grad_(False)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            if fresh:
                module.momentum = 0.1  # random weights: statistics must follow quickly
            else:
                module.eval()  # pretrained statistics kept; scale and shift still train where trainable


# ------------------------------------------------------------------------------------------------ upper part

class _Chain(nn.Module):
    """Modules applied in order; a map is flattened before a part made of fully-connected layers only."""

    def __init__(self, parts: list[tuple[str, nn.Module]]):
        super().__init__()
        self.parts = nn.ModuleList(m for _, m in parts)
        kinds = [[type(m) for m in part.modules()] for part in self.parts]
        self.dense = [nn.Linear in k and not any(issubclass(t, (nn.modules.conv._ConvNd, nn.modules.pooling._AdaptiveAvgPoolNd,
                      nn.modules.pooling._AvgPoolNd, nn.modules.pooling._MaxPoolNd)) for t in k) for k in kinds]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for part, dense in zip(self.parts, self.dense):
            x = part(x.flatten(1) if dense and x.ndim > 2 else x)
        return x


def _chain_from(model: nn.Module, layer: str, *, inclusive: bool) -> list[tuple[str, nn.Module]]:
    """``layer`` (if inclusive) and the modules after it, in registration order, up through its ancestors."""
    check_model(model)
    check_layer(model, layer)
    path, parts = layer.split("."), []
    for depth in range(len(path), 0, -1):
        prefix = ".".join(path[:depth - 1])
        parent = model.get_submodule(prefix)
        children = list(parent._modules)
        start = children.index(path[depth - 1]) + (depth < len(path) or not inclusive)
        parts += [(f"{prefix}.{c}".lstrip("."), parent._modules[c]) for c in children[start:] if parent._modules[c] is not None]
    return parts


def next_layer(model: nn.Module, layer: str) -> str:
    """The module that receives ``layer``'s output in a chain-like net (the first trainable layer above a frozen one).

    Example:
        >>> next_layer(pre.model, "net.layer3")   # 'net.layer4' for a ResNet
    """
    parts = _chain_from(model, layer, inclusive=False)
    if not parts:
        raise ValueError(f"layer {layer!r} is the last layer of the model: nothing comes after it")
    return parts[0][0]


def upper_part(model: nn.Module, layer: str, *, example: torch.Tensor) -> nn.Module:
    """``layer`` and everything after it, as a module that maps what ``layer`` receives to the model's output.

    It shares its parameters with ``model``: training it trains the model's upper layers, while the frozen
    lower part runs once (``extract_features(model, x, layer=layer, pool=False, inputs=True)``). Works for
    nets whose forward calls their children in registration order (every registry model); checked on
    ``example``, ValueError otherwise.

    Args:
        model: The classifier (e.g. what :func:`prepare` returned). layer: First layer of the upper part.
        example: A few (N, C, H, W) images in [0, 1] (inputs of ``model``) for the check.

    Returns:
        An ``nn.Module``: (N, ...) input of ``layer`` -> (N, classes) logits, equal to ``model``'s.
    """
    check_model(model)
    check_images(example, name="example", model=model, channels=None)
    upper = _Chain(_chain_from(model, layer, inclusive=True))
    with evaluating(model), torch.no_grad():
        expected = check_logits(_run(model, example.to(model_device(model)), "example"), len(example))
    hidden = extract_features(model, example, layer=layer, pool=False, inputs=True)
    with evaluating(model), torch.no_grad():
        try:
            got = upper(hidden.to(model_device(model)))
        except RuntimeError:  # shapes that do not fit: the same verdict as different values
            got = None
    scale = float(expected.abs().max())
    if got is None or got.shape != expected.shape or not torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * scale + 1e-6):
        raise ValueError(f"the layers from {layer!r} on do not compute the model's output when called in order "
                         "(its forward does more than call its children); train the whole model instead")
    return upper
