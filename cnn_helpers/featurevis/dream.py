"""Gradient ascent that starts from, or aims at, a photo: DeepDream and feature inversion.

Used by notebook 04 (feature visualization).

* :func:`deepdream`: amplify whatever a layer already sees in a photo (maximize the layer's mean squared
  activation), at several scales ("octaves"), with jitter; the photo's details turn into what the
  layer detects.
* :func:`invert_features`: start from a grey image and change it until its features at one layer match
  the photo's, with a total-variation prior; early layers give the photo back, late ones only its gist.

Both leave the model as found (each module's mode, ``requires_grad``, ``.grad``, hooks) and the photo
untouched, also when an error is raised; results are detached, in [0, 1], on the photo's device.

Reference: Mordvintsev, Olah & Tyka, "Inceptionism: Going Deeper into Neural Networks", 2015;
Mahendran & Vedaldi, "Understanding Deep Image Representations by Inverting Them", CVPR 2015.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnn_helpers.core.budget import check_cost, check_pass_memory
from cnn_helpers.core.checks import (check_bool, check_choice, check_float, check_generator, check_images, check_int,
                                     check_layer, check_model, check_model_takes)
from cnn_helpers.core.hooks import Recorder, record
from cnn_helpers.core.ops import relative_error, resize_to
from cnn_helpers.core.state import evaluating, grad_enabled, restore_requires_grad
from cnn_helpers.featurevis import params
from cnn_helpers.featurevis.layers import activations
from cnn_helpers.featurevis.objectives import Objective, Recording, feature_match, image_l2, image_tv, layer_l2
from cnn_helpers.featurevis.params import MIN_SIZE
from cnn_helpers.featurevis.render import Visualization, visualize
from cnn_helpers.featurevis.transforms import Jitter, blur

__all__ = ["deepdream", "Inversion", "invert_features"]


def _octave_sizes(height: int, width: int, octaves: int, scale: float) -> list[tuple[int, int]]:
    """Image sizes from the smallest octave to the original."""
    sizes = [(max(MIN_SIZE, round(height / scale ** i)), max(MIN_SIZE, round(width / scale ** i))) for i in range(octaves)]
    return sizes[::-1]


def _dream_step(objective: Objective, image: torch.Tensor, rec: Recorder, jitter: Jitter,
                generator: torch.Generator | None, smooth: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """One normalized gradient step's direction (gradient / its mean absolute value) and the objective."""
    x = image.detach().requires_grad_(True)
    logits = rec(jitter(x, generator).to(dtype))
    score = objective(Recording(image=x, activations=rec, logits=logits))
    (grad,) = torch.autograd.grad(score.sum(), x)
    grad = blur(grad, smooth)  # pixel-level gradient noise would otherwise pile up as speckle
    return grad / grad.abs().mean().clamp_min(1e-12), score.detach()


def deepdream(model: nn.Module, image: torch.Tensor, layer: str, *, octaves: int = 4, octave_scale: float = 1.4,
              steps: int = 10, lr: float = 0.01, jitter: int = 8, smooth: float = 1.0,
              generator: torch.Generator | None = None) -> Visualization:
    """DeepDream: gradient ascent on a photo to raise ``layer``'s mean squared activation, octave by octave.

    At each octave (smallest first) the photo is resized, the detail dreamed so far is added, and ``steps``
    normalized gradient steps (``lr`` times the gradient over its mean absolute value, so ``lr`` is about
    the mean change per pixel and step) are taken on a randomly jittered copy; values are clipped to [0, 1].

    Args:
        model: Maps images in [0, 1] to logits. image: (1, 3, H, W) in [0, 1], at least 16 px (a batch works too).
        layer: Name of the layer to amplify. octaves: Scales. Default: 4. octave_scale: Size ratio between
            octaves (> 1). Default: 1.4. steps: Steps per octave. Default: 10. lr: Step size. Default: 0.01.
        jitter: Random shift in pixels at each step. Default: 8. smooth: The gradient is blurred with this sigma
            in pixels before each step (0: not at all). Default: 1.0. generator: For the jitter.

    Returns:
        :class:`~cnn_helpers.featurevis.render.Visualization`: ``image`` like the input, ``history`` (octaves * steps, N)
        of the objective (at each octave's own size).

    Example:
        >>> dream = deepdream(model, photo, pre.info.stages[3], generator=torch.Generator().manual_seed(0))
    """
    _check_photo(model, image)
    check_layer(model, layer)
    octaves, steps = check_int(octaves, "octaves"), check_int(steps, "steps")
    octave_scale = check_float(octave_scale, "octave_scale", minimum=1.0, strict_minimum=True)
    lr, shift = check_float(lr, "lr", minimum=0.0, strict_minimum=True), Jitter(check_int(jitter, "jitter", minimum=0))
    smooth = check_float(smooth, "smooth", minimum=0.0)
    generator = check_generator(generator)
    check_cost(model, image, octaves * steps * image.shape[0], f"deepdream with octaves={octaves}, steps={steps}",
               backward=True, hint="use fewer octaves or steps")  # the largest octave's cost, an upper bound
    check_pass_memory(model, image, f"deepdream on {len(image)} images of {tuple(image.shape[-2:])} px",
                      hint="use a smaller photo")  # the largest octave (the jitter's pad is a few pixels)
    objective, history, dtype = layer_l2(layer), [], image.dtype
    sizes = _octave_sizes(*image.shape[-2:], octaves, octave_scale)
    with evaluating(model), restore_requires_grad(model.parameters()), grad_enabled(), \
            record(model, [layer], stop=True) as rec:
        model.requires_grad_(False)
        base = image.detach().to(torch.promote_types(dtype, torch.float32))  # resizing needs float32 (bfloat16)
        detail = torch.zeros_like(resize_to(base, sizes[0]))
        for size in sizes:
            octave_base = resize_to(base, size)
            dreamed = (octave_base + resize_to(detail, size)).clamp(0, 1)
            for _ in range(steps):
                direction, score = _dream_step(objective, dreamed, rec, shift, generator, smooth, dtype)
                dreamed = (dreamed + lr * direction).clamp(0, 1)
                history.append(score.to(base.dtype))
            detail = dreamed - octave_base
    return Visualization(image=dreamed.detach().to(dtype), history=torch.stack(history), objective=objective.name)


def _check_photo(model: nn.Module, image: torch.Tensor) -> None:
    """The checks DeepDream and inversion share: an RGB model that can run, a photo that fits it, >= MIN_SIZE px."""
    check_model(model)
    check_model_takes(model, 3, "photos (DeepDream and inversion work on RGB images)")
    check_images(image, name="image", model=model)
    if min(image.shape[-2:]) < MIN_SIZE:
        raise ValueError(f"image must be at least {MIN_SIZE} pixels high and wide, got {tuple(image.shape)}")


@dataclass
class Inversion(Visualization):
    """:class:`~cnn_helpers.featurevis.render.Visualization` plus ``feature_error`` (N,): the final relative squared
    feature distance ``||phi(x) - phi(photo)||^2 / ||phi(photo)||^2``, and ``pixel_error`` (N,): the root
    mean squared difference to the photo in pixel units ([0, 1])."""

    feature_error: torch.Tensor | None = None
    pixel_error: torch.Tensor | None = None


def invert_features(model: nn.Module, image: torch.Tensor, layer: str, *, tv_weight: float = 20.0,
                    l2_weight: float = 5.0, steps: int = 200, lr: float = 0.05, param: str = "fourier",
                    generator: torch.Generator | None = None, progress: bool = False) -> Inversion:
    """Feature inversion: an image whose features at ``layer`` match the photo's, with a total-variation prior.

    Maximizes ``-||phi(x) - phi(photo)||^2 / ||phi(photo)||^2 - tv_weight * TV(x) - l2_weight * L2(x)`` with Adam
    from a faintly noisy grey start, without transforms (the features must line up with the photo's). TV (beta = 2,
    :func:`~cnn_helpers.featurevis.objectives.total_variation`) removes pixel noise; the small L2 penalty on the
    distance from grey keeps late layers, which do not care about overall brightness, from drifting to white.

    Args:
        model: Maps images in [0, 1] to logits. image: (N, 3, H, W) photos in [0, 1], at least 16 px.
        layer: Layer name. tv_weight, l2_weight: Weights of the priors (>= 0). Default: 20, 5.
        steps: Adam steps. Default: 200. lr: Learning rate. Default: 0.05. param: ``"fourier"`` (default) or
            ``"pixels"`` (Mahendran & Vedaldi's plain pixels; needs a far larger ``tv_weight``). generator: Random start.

    Returns:
        :class:`Inversion` with ``image`` (N, 3, H, W), ``history`` (steps, N), ``feature_error``, ``pixel_error``.

    Example:
        >>> inv = invert_features(model, photo, pre.info.stages[2], steps=100)
    """
    _check_photo(model, image)
    check_layer(model, layer)
    tv_weight = check_float(tv_weight, "tv_weight", minimum=0.0)
    l2_weight = check_float(l2_weight, "l2_weight", minimum=0.0)
    param = check_choice(param, "param", ("pixels", "fourier"))
    check_bool(progress, "progress")
    with grad_enabled():  # made outside inference_mode: the loop below differentiates through both
        target = activations(model, image, layer)[layer].clone()
        build = params.pixels if param == "pixels" else params.fourier
        start = build(tuple(image.shape[-2:]), batch=image.shape[0], generator=check_generator(generator),
                      device=image.device)
    objective = feature_match(layer, target)
    if tv_weight > 0:
        objective = objective - tv_weight * image_tv(beta=2.0)
    if l2_weight > 0:
        objective = objective - l2_weight * image_l2()
    result = visualize(model, objective, param=start, transforms=None, steps=steps, lr=lr, generator=generator,
                       progress=progress)
    reached = activations(model, result.image, layer)[layer]
    feature_error = relative_error(reached, target)
    pixel_error = (result.image - image).flatten(1).pow(2).mean(1).sqrt()
    return Inversion(image=result.image, history=result.history, objective=result.objective,
                     feature_error=feature_error.detach(), pixel_error=pixel_error.detach())
