"""Objectives for feature visualization: what gradient ascent maximizes. They combine with ``+``, ``-`` and ``*``.

Used by notebook 04 (feature visualization) through :mod:`cnn_helpers.featurevis` (gradient ascent,
DeepDream, feature inversion).

An :class:`Objective` maps what one forward pass recorded (a :class:`Recording`: the activations of the
layers it names, the logits, the image before the random transforms) to one score per image, (N,).
The optimizer *maximizes* the sum; penalties enter with a minus sign::

    objective = class_logit(309) - 0.05 * image_l2()          # a bee, and not too saturated
    objective = channel("net._blocks.5", 7) + channel("net._blocks.5", 9)

Reference: Olah, Mordvintsev & Schubert, "Feature Visualization", Distill 2017 (Lucent's ``objectives.py``);
Mahendran & Vedaldi, "Understanding Deep Image Representations by Inverting Them", CVPR 2015 (inversion, TV).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch

from cnn_helpers.core.checks import check_finite, check_float, check_int, check_target, gather
from cnn_helpers.core.ops import relative_error

__all__ = ["Recording", "Objective", "class_logit", "channel", "neuron", "layer_l2", "feature_match", "image_l2",
           "image_tv", "total_variation"]


@dataclass
class Recording:
    """What one forward pass left for the objectives: ``activations[layer]``, ``logits`` (N, classes) or None
    (the pass stopped after the last layer an objective needs), and ``image`` (N, 3, H, W) before transforms."""

    image: torch.Tensor
    activations: Mapping[str, torch.Tensor] = field(default_factory=dict)
    logits: torch.Tensor | None = None


class Objective:
    """A score per image to maximize: ``objective(recording) -> (N,)``.

    Args:
        fn: ``Recording -> (N,)`` tensor.
        layers: Names of the layers whose activations ``fn`` reads (as in ``model.named_modules()``).
        needs_logits: Whether ``fn`` reads the logits (otherwise the forward pass may stop early).
        name: For printing.
    """

    def __init__(self, fn: Callable[[Recording], torch.Tensor], *, layers: Sequence[str] = (), needs_logits: bool = False,
                 name: str = "objective"):
        self.fn, self.layers, self.needs_logits, self.name = fn, tuple(layers), needs_logits, name

    def __call__(self, recording: Recording) -> torch.Tensor:
        return self.fn(recording)

    def _join(self, other: "Objective", sign: float, symbol: str) -> "Objective":
        if not isinstance(other, Objective):
            return NotImplemented
        layers = tuple(dict.fromkeys(self.layers + other.layers))
        return Objective(lambda r: self(r) + sign * other(r), layers=layers,
                         needs_logits=self.needs_logits or other.needs_logits, name=f"{self.name} {symbol} {other.name}")

    def __add__(self, other: "Objective") -> "Objective":
        return self._join(other, 1.0, "+")

    def __radd__(self, other: object) -> "Objective":
        if isinstance(other, (int, float)) and other == 0:  # so that sum([...]) works
            return self
        return NotImplemented

    def __sub__(self, other: "Objective") -> "Objective":
        return self._join(other, -1.0, "-")

    def __mul__(self, factor: float) -> "Objective":
        if isinstance(factor, bool) or not isinstance(factor, (int, float)):
            return NotImplemented
        factor = check_float(factor, "factor")
        return Objective(lambda r: factor * self(r), layers=self.layers, needs_logits=self.needs_logits,
                         name=f"{factor:g} * ({self.name})" if " " in self.name else f"{factor:g} * {self.name}")

    __rmul__ = __mul__

    def __neg__(self) -> "Objective":
        return self * -1.0

    def __repr__(self) -> str:
        return f"Objective({self.name})"


def _per_image(index: int | Sequence[int] | torch.Tensor, n: int, device: torch.device, name: str) -> torch.Tensor:
    return check_target(torch.as_tensor(index) if isinstance(index, (list, tuple)) else index, n, device, name=name)


def _check_index(index: object, name: str) -> object:
    """An int >= 0, or a non-empty list/tuple/1-D integer tensor of them (one per image), checked when the
    objective is made; the upper bound (classes, channels) is checked against the model in the first pass."""
    if isinstance(index, torch.Tensor):
        if index.is_floating_point() or index.is_complex() or index.dtype == torch.bool or index.ndim > 1:
            raise TypeError(f"{name} must be an int or a 1-D integer tensor, got a {index.dtype} tensor of shape "
                            f"{tuple(index.shape)}")
        values = index.flatten().tolist()
    else:
        values = list(index) if isinstance(index, (list, tuple)) else [index]
    if not values:
        raise ValueError(f"{name} must not be empty")
    for value in values:
        check_int(value, name, minimum=0)
    return index


def _check_layer_name(layer: object) -> str:
    if not isinstance(layer, str) or not layer:
        raise TypeError(f"layer must be a layer name (a str as in model.named_modules()), got {layer!r}")
    return layer


def _feature_map(recording: Recording, layer: str) -> torch.Tensor:
    acts = recording.activations[layer]
    if acts.ndim == 2:  # a linear layer: (N, C) -> (N, C, 1, 1)
        acts = acts[:, :, None, None]
    if acts.ndim != 4:
        raise ValueError(f"layer {layer!r} gives activations of shape {tuple(acts.shape)}; expected (N, C, h, w) or (N, C)")
    return acts


def _channels(recording: Recording, layer: str, index: object) -> torch.Tensor:
    """(N, h, w): each image's own channel of ``layer``; ValueError if out of range."""
    acts = _feature_map(recording, layer)
    idx = _per_image(index, acts.shape[0], acts.device, "channel")
    bad = idx[(idx < 0) | (idx >= acts.shape[1])]
    if bad.numel():
        raise ValueError(f"channel {bad[0].item()} is out of range: layer {layer!r} has {acts.shape[1]} channels "
                         f"(0 to {acts.shape[1] - 1})")
    return acts[torch.arange(acts.shape[0], device=acts.device), idx]


def class_logit(target: int | Sequence[int] | torch.Tensor) -> Objective:
    """The logit (score before the softmax) of class ``target``: an int, or one class per image.

    Example:
        >>> result = visualize(model, class_logit(309))   # 309: bee
    """
    _check_index(target, "target")

    def fn(r: Recording) -> torch.Tensor:
        n = r.image.shape[0]
        if not isinstance(r.logits, torch.Tensor):  # a tuple of outputs, a dict: gather names the model's output
            gather(r.logits, torch.zeros(n, dtype=torch.long))
        return gather(r.logits, _per_image(target, n, r.logits.device, "target"))
    return Objective(fn, needs_logits=True, name=f"logit[{target}]")


def channel(layer: str, index: int | Sequence[int] | torch.Tensor) -> Objective:
    """Mean activation of channel ``index`` of ``layer`` over all positions (one channel, or one per image)."""
    layer, index = _check_layer_name(layer), _check_index(index, "index")
    return Objective(lambda r: _channels(r, layer, index).mean(dim=(1, 2)), layers=(layer,), name=f"{layer}:{index}")


def neuron(layer: str, index: int | Sequence[int] | torch.Tensor, *, y: int | None = None,
           x: int | None = None) -> Objective:
    """Activation of channel ``index`` of ``layer`` at one position (y, x). Default: the centre of the map."""
    layer, index = _check_layer_name(layer), _check_index(index, "index")
    y = None if y is None else check_int(y, "y", minimum=0)
    x = None if x is None else check_int(x, "x", minimum=0)

    def fn(r: Recording) -> torch.Tensor:
        maps = _channels(r, layer, index)
        row = maps.shape[1] // 2 if y is None else y
        col = maps.shape[2] // 2 if x is None else x
        if not (0 <= row < maps.shape[1] and 0 <= col < maps.shape[2]):
            raise ValueError(f"position (y={row}, x={col}) is outside {layer!r}'s {maps.shape[1]}x{maps.shape[2]} map")
        return maps[:, row, col]
    return Objective(fn, layers=(layer,), name=f"{layer}:{index}@{'centre' if y is None and x is None else (y, x)}")


def layer_l2(layer: str) -> Objective:
    """Mean squared activation of a whole layer: DeepDream's objective ("more of whatever is already there")."""
    layer = _check_layer_name(layer)
    return Objective(lambda r: _feature_map(r, layer).pow(2).mean(dim=(1, 2, 3)), layers=(layer,), name=f"L2({layer})")


def feature_match(layer: str, target: torch.Tensor) -> Objective:
    """``-||phi(x) - target||^2 / ||target||^2`` per image: feature inversion's objective (0 at a perfect match).

    Args:
        layer: Layer name. target: The features to reproduce, (N or 1, C, h, w) like the layer's output.
    """
    layer = _check_layer_name(layer)
    target = check_finite(target, "target", ndim=None, layout="(N, C, ...), the layer's features").detach()
    if target.ndim < 2:
        raise ValueError(f"target must be the layer's features (N, C, ...), got shape {tuple(target.shape)}")

    def fn(r: Recording) -> torch.Tensor:
        acts = r.activations[layer]
        if acts.shape[1:] != target.shape[1:]:
            raise ValueError(f"target features have shape {tuple(target.shape)}, but layer {layer!r} gives "
                             f"{tuple(acts.shape)}: use the same image size (and no transforms that change it)")
        return -relative_error(acts, target.to(acts))
    return Objective(fn, layers=(layer,), name=f"match({layer})")


def image_l2() -> Objective:
    """Mean squared distance of the image's pixels from grey (0.5): penalize it (``- w * image_l2()``)."""
    return Objective(lambda r: (r.image - 0.5).pow(2).mean(dim=(1, 2, 3)), name="L2(image)")


def total_variation(images: torch.Tensor, *, beta: float = 2.0) -> torch.Tensor:
    """Total variation: mean of ``|x[i, j+1] - x[i, j]|^beta`` plus mean of ``|x[i+1, j] - x[i, j]|^beta``, per image.

    Args:
        images: (N, C, H, W), H and W at least 2.
        beta: Exponent >= 1; 2 favours smooth images, 1 allows sharp edges. Default: 2.

    Returns:
        (N,): 0 for a constant image; grows with noise and sharp edges.

    Reference: Mahendran & Vedaldi, CVPR 2015 (their TV prior, with means instead of sums).
    Example:
        >>> total_variation(torch.rand(1, 3, 8, 8))
    """
    beta = check_float(beta, "beta", minimum=1.0)  # below 1 the gradient at 0 is infinite
    check_finite(images, "images")
    if min(images.shape[-2:]) < 2:
        raise ValueError(f"images must have shape (N, C, H, W) with H, W >= 2, got {tuple(images.shape)}")
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().pow(beta)
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().pow(beta)
    return dx.mean(dim=(1, 2, 3)) + dy.mean(dim=(1, 2, 3))


def image_tv(*, beta: float = 2.0) -> Objective:
    """The image's total variation (:func:`total_variation`): penalize it (``- w * image_tv()``)."""
    beta = check_float(beta, "beta", minimum=1.0)
    return Objective(lambda r: total_variation(r.image, beta=beta), name=f"TV(image, beta={beta:g})")
