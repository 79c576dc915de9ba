"""Feature visualization by gradient ascent: find an input that a class, channel or neuron responds to most.

Used by notebook 04 (feature visualization); measured against a plain loop (and torch-lucent) in
``bench/bench_featurevis.py``.

Three small parts, Lucent-style, meet in :func:`visualize`:

* a **parameterization** (:mod:`.params`): plain pixels, or 1/f-scaled Fourier
  coefficients, optionally colour-decorrelated; always mapped to [0, 1] by a sigmoid;
* **transforms** (:mod:`.transforms`): pad, jitter, scale, rotate, blur at every step;
* an **objective** (:mod:`.objectives`): class logit, channel, neuron, layer L2,
  feature match, image penalties; combined with ``+``, ``-`` and ``*``.

:func:`class_visualization` is the course's recommended recipe in one call. DeepDream and feature
inversion live in :mod:`.dream`; filters and activation maps in
:mod:`.layers`. The model is run in eval mode with frozen parameters and is left
as found (each module's mode, ``requires_grad``, ``.grad``, hooks), also when an error is raised.

Reference: Erhan et al. 2009; Simonyan et al., "Deep Inside Convolutional Networks", 2014; Olah,
Mordvintsev & Schubert, "Feature Visualization", Distill 2017.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from cnn_helpers.core.budget import check_cost, check_pass_memory
from cnn_helpers.core.checks import (check_bool, check_float, check_generator, check_int, check_layers, check_model,
                                     check_model_takes, check_pair)
from cnn_helpers.core.hooks import record
from cnn_helpers.core.progress import progress_bar
from cnn_helpers.core.state import evaluating, grad_enabled, model_device, model_dtype, restore_requires_grad
from cnn_helpers.featurevis import params
from cnn_helpers.featurevis import transforms as tf
from cnn_helpers.featurevis.objectives import Objective, Recording, class_logit
from cnn_helpers.featurevis.params import MIN_SIZE

__all__ = ["Visualization", "visualize", "class_visualization"]

@dataclass
class Visualization:
    """What :func:`visualize` returns: ``image`` (N, 3, H, W) in [0, 1], detached, on the model's device, in its dtype,
    and ``history`` (steps, N): each image's objective at every step (before that step's update)."""

    image: torch.Tensor
    history: torch.Tensor
    objective: str


def _parameterization(param: object, size: object, batch: object, generator: torch.Generator | None,
                      device: torch.device) -> params.Parameterization:
    if isinstance(param, params.Parameterization):
        return param
    if param not in ("pixels", "fourier"):
        raise ValueError(f"param must be 'pixels', 'fourier' or a Parameterization (featurevis_params.pixels(...)), "
                         f"got {param!r}")
    height, width = check_pair(size, "size")
    if min(height, width) < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE} pixels, got {size!r}")
    build = params.pixels if param == "pixels" else params.fourier
    return build((height, width), batch=check_int(batch, "batch"), generator=generator, device=device)


def _check_cost(model: nn.Module, param: params.Parameterization, steps: int) -> None:
    """Warn before minutes of gradient ascent, refuse a day (huge ``steps``, ``size`` or ``batch``)."""
    shape = (1, 3, *param.size)
    probe = torch.empty(1, 1, 1, 1, device=model_device(model), dtype=model_dtype(model)).expand(shape)  # no memory
    check_cost(model, probe, steps * param.batch, f"gradient ascent with steps={steps}, size={param.size}, "
               f"batch={param.batch}", backward=True, hint="use fewer steps, a smaller size or batch")


def _transform(transforms: object, size: int) -> Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]:
    if transforms is None:
        return lambda images, generator: images
    if transforms == "standard":
        return tf.standard_transforms(size)
    if isinstance(transforms, str):
        raise ValueError(f"transforms must be 'standard', None or a list of transforms, got {transforms!r}")
    if callable(transforms):
        return transforms  # type: ignore[return-value]
    return tf.Compose(transforms)  # type: ignore[arg-type]


def visualize(model: nn.Module, objective: Objective, *, param: str | params.Parameterization = "fourier",
              transforms: str | Sequence[tf.ImageTransform] | None = "standard", steps: int = 256, lr: float = 0.05,
              size: int | tuple[int, int] = 128, batch: int = 1, generator: torch.Generator | None = None,
              callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
              progress: bool = False) -> Visualization:
    """Gradient ascent on an image: maximize ``objective`` with Adam, through random ``transforms``.

    Args:
        model: Maps (N, 3, H, W) images in [0, 1] to logits. objective: What to maximize (one score per image).
        param: ``"fourier"`` (1/f-scaled, colour-decorrelated; default), ``"pixels"`` (plain), or a
            :class:`~cnn_helpers.featurevis.params.Parameterization` (then ``size``/``batch`` are its own;
            its variables are updated in place).
        transforms: ``"standard"`` (pad, jitter, scale, rotate; default), None, or a list of transforms.
        steps: Adam steps. Default: 256. lr: Adam's learning rate. Default: 0.05.
        size: Image side or (height, width), at least 16. Default: 128. batch: Images optimized together. Default: 1.
        generator: For the random start and the transforms. callback: ``callback(step, image, scores)``.
        progress: Show a tqdm progress bar. Default: False.

    Returns:
        A :class:`Visualization`: ``image`` (N, 3, H, W) in [0, 1] and ``history`` (steps, N).

    Example:
        >>> result = visualize(model, class_logit(309), steps=128, generator=torch.Generator().manual_seed(0))
    """
    check_model(model)
    check_model_takes(model, 3, "pictures (feature visualization makes RGB images)")
    if not isinstance(objective, Objective):
        raise TypeError("objective must be an Objective (class_logit(...), channel(...), ...), "
                        f"got {type(objective).__name__}")
    layers = check_layers(model, list(objective.layers)) if objective.layers else []
    steps, lr = check_int(steps, "steps"), check_float(lr, "lr", minimum=0.0, strict_minimum=True)
    generator, progress = check_generator(generator), check_bool(progress, "progress")
    dtype, history = model_dtype(model) or torch.float32, []
    with evaluating(model), restore_requires_grad(model.parameters()), grad_enabled(), \
            record(model, layers, stop=not objective.needs_logits) as rec, \
            progress_bar(steps, "gradient ascent", enabled=progress) as bar:
        param = _parameterization(param, size, batch, generator, model_device(model))  # not an inference tensor
        _check_cost(model, param, steps)
        transform = _transform(transforms, param.size[0])
        model.requires_grad_(False)  # gradients for the image only: faster, and every .grad stays as it was
        optimizer = torch.optim.Adam(param.params, lr=lr)
        for step in range(steps):
            image = param()  # float32 whatever the model computes in: the FFT and the transforms need it
            seen = transform(image, generator).to(dtype)
            if step == 0:  # the transforms may have enlarged it (padding)
                check_pass_memory(model, seen, f"gradient ascent on {len(seen)} images of {tuple(seen.shape[-2:])} "
                                  f"px (size={param.size}, batch={param.batch}, transformed)",
                                  hint="use a smaller size or batch")
            logits = rec(seen)
            scores = objective(Recording(image=image, activations=rec, logits=logits))
            if scores.shape != (image.shape[0],) or not torch.isfinite(scores).all():
                raise ValueError(f"objective {objective.name} must give one finite score per image, got "
                                 f"{scores.detach().cpu()} at step {step} (lower lr?)")
            grads = torch.autograd.grad(-scores.sum(), param.params)
            for variable, grad in zip(param.params, grads):
                variable.grad = grad
            optimizer.step()
            history.append(scores.detach().to(torch.promote_types(scores.dtype, torch.float32)))
            if callback is not None:
                callback(step, image.detach(), scores.detach())
            bar.update(1)
        with torch.no_grad():
            final = param().clamp(0, 1).to(dtype)
    for variable in param.params:
        variable.grad = None
    return Visualization(image=final.detach(), history=torch.stack(history), objective=objective.name)


def class_visualization(model: nn.Module, target: int | Sequence[int] | torch.Tensor, *, size: int = 128,
                        steps: int | None = None, lr: float = 0.05, generator: torch.Generator | None = None,
                        progress: bool = False) -> torch.Tensor:
    """The course's recipe for "what does the network think class ``target`` looks like?".

    Fourier parameterization with 1/f scaling and colour decorrelation, Lucid's standard transforms
    (pad, jitter, scale, rotate), Adam on the class logit. Notebook 04 measures why each part is there
    (target probability, naturalness, recognition by other networks).

    Args:
        model: Maps images in [0, 1] to logits. target: A class index, or a list/tensor of them (one image each).
        size: Image side, at least 16. Default: 128. steps: Adam steps. Default: None = 256.
        lr: Adam's learning rate. Default: 0.05 (0.1 gets as far in a quarter of the steps, a little noisier).
        generator: For the random start and the transforms. progress: Show a progress bar.

    Returns:
        (N, 3, size, size) in [0, 1], one image per target, on the model's device.

    Example:
        >>> bee = class_visualization(model, 309, generator=torch.Generator().manual_seed(0))
    """
    if isinstance(target, (list, tuple)) or (isinstance(target, torch.Tensor) and target.ndim == 1):
        batch = len(target)  # one image per class
    else:
        batch = 1  # a single class (anything else is refused by class_logit, naming target)
    result = visualize(model, class_logit(target), param="fourier", transforms="standard", size=size, batch=batch,
                       steps=256 if steps is None else steps, lr=lr, generator=generator, progress=progress)
    return result.image
