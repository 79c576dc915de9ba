"""Occlusion maps, the entry point: how much the target score drops when a window of the image is hidden.

Used by notebook 03 (attribution: occlusion, what it costs, making it cheap); measured against Captum's
``Occlusion`` in ``bench/bench_attribution.py``.

:func:`occlusion_map` checks its arguments, estimates the cost, and runs one of two engines: plain batches of
occluded images (here) or the incremental engine (:mod:`.incremental`: each layer recomputes only what a window
changed; :mod:`.drill` for the approximate mode), which falls back to plain batches for a model it cannot trace.
The model is evaluated in eval mode and left exactly as found, also when an error is raised.

Reference: Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014;
Nakandala, Kumar, Papakonstantinou, "Incremental and Approximate Inference for Faster Occlusion-based Deep CNN
Explanations", SIGMOD 2019.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from cnn_helpers.attribution.occlusion import incremental
from cnn_helpers.attribution.occlusion.plan import window_grid
from cnn_helpers.core.budget import check_cost, check_pass_memory
from cnn_helpers.core.checks import (Target, check_baseline, check_choice, check_images, check_int, check_model,
                                     check_target, gather)
from cnn_helpers.core.memory import check_memory
from cnn_helpers.core.state import evaluating

__all__ = ["occlusion_map", "OCCLUSION_METHODS", "accumulate"]

_SCORES = {"logit": lambda logits: logits, "probability": lambda logits: logits.softmax(dim=1)}


def _forward_channels_last(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Forward a batch stored channels-last (about 1.5x faster convolutions on a CPU; same values).

    A model that reshapes with ``.view`` cannot take it; it then gets the usual layout.
    """
    try:
        return model(batch.contiguous(memory_format=torch.channels_last))
    except RuntimeError as err:
        if "view" not in str(err):
            raise
        return model(batch)


def _largest_activation(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The model's output on ``images`` and the largest number of elements any of its layers returns per image."""
    largest = [images[0].numel()]

    def record(_module: nn.Module, _inputs: object, out: object) -> None:
        if isinstance(out, torch.Tensor) and out.ndim > 0:
            largest.append(out.numel() // max(out.shape[0], 1))

    handles = [m.register_forward_hook(record) for m in model.modules() if not list(m.children())]
    try:
        return model(images.clone()), max(largest)
    finally:
        for handle in handles:
            handle.remove()


def _batched_drops(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, score, windows: list[tuple[int, int]],
                   window: tuple[int, int], fill: torch.Tensor, per_eval: int | None) -> torch.Tensor:
    """(W, N) score drops, ``per_eval`` windows per forward pass (each a batch of the N images)."""
    n, (wh, ww) = images.shape[0], window
    logits, largest = _largest_activation(model, images)
    reference = gather(score(logits), labels)
    if per_eval is None:  # keep every activation of a batch under the budget (CPU: no fresh pages per batch)
        budget = incremental.TENSOR_BYTES.get(images.device.type, incremental.OTHER_DEVICE_BYTES)
        per_eval = max(1, budget // (largest * images.element_size() * n))
    drops = []
    for start in range(0, len(windows), per_eval):
        chunk = windows[start:start + per_eval]
        batch = images.repeat(len(chunk), 1, 1, 1)
        for i, (y, x) in enumerate(chunk):
            batch[i * n:(i + 1) * n, :, y:y + wh, x:x + ww] = fill[:, :, y:y + wh, x:x + ww]
        scores = gather(score(_forward_channels_last(model, batch)), labels.repeat(len(chunk)))
        drops.append(reference - scores.view(len(chunk), n))
    return torch.cat(drops)


OCCLUSION_METHODS = ("auto", "incremental", "batched", "approximate")
APPROXIMATE = {"drill_down": 0.25}  # the approximate mode's tolerance: correlation with the exact map >= 0.95 (bench)
AUTO_MIN_GAIN = 1.3  # "auto" runs incrementally when that saves at least this factor of multiply-accumulates


def occlusion_map(model: nn.Module, images: torch.Tensor, target: Target, *, window: int | tuple[int, int],
                  stride: int | tuple[int, int], baseline: float | torch.Tensor = 0.0,
                  perturbations_per_eval: int | None = None, output: str = "logit", method: str = "auto") -> torch.Tensor:
    """Occlusion: how much the target score drops when a window of the image is replaced by ``baseline``.

    Args:
        images: (N, 3, H, W) in [0, 1]. target: Class index, int or (N,).
        window, stride: Window size and step in pixels, int or (height, width); stride <= window.
        baseline: The fill value, a float or a tensor broadcastable to (N, 3, H, W). Default: 0.0 (black).
        perturbations_per_eval: Windows per forward pass (each one a batch of N images). Default: None = as
            many as keep every activation of a batch under 24 MB on a CPU (512 MB on a GPU).
        output: The score whose drop is measured: ``"logit"`` (as Captum) or ``"probability"`` (the softmax,
            as Zeiler & Fergus plot it). Default: ``"logit"``.
        method: ``"batched"`` (whole occluded images), ``"incremental"`` (each layer recomputes only what the
            window changed: same map, :mod:`.incremental`), ``"approximate"`` (incremental, every second
            window first, the rest interpolated unless near large drops: a close map, faster still) or ``"auto"``
            (incremental where counting multiply-accumulates promises a saving).
            A model that cannot be traced falls back to ``"batched"`` with a notice. Default: ``"auto"``.

    Returns:
        (N, H, W): per pixel, the mean score drop over the windows covering it. Captum's ``Occlusion``
        with a (3, h, w) window returns (N, 3, H, W) with this same map in every channel.

    Reference: Zeiler & Fergus, ECCV 2014; incremental: Nakandala et al., SIGMOD 2019.
    Example:
        >>> heat = occlusion_map(model, images, 285, window=32, stride=16)
    """
    check_model(model)
    check_images(images, model=model)
    method = check_choice(method, "method", OCCLUSION_METHODS)
    (n, _, height, width), device = images.shape, images.device
    rows, cols, (wh, ww) = window_grid((height, width), window, stride)
    _occlusion_budget(model, images, len(rows) * len(cols), window, stride, perturbations_per_eval, method)
    check_pass_memory(model, images, f"occlusion_map on {n} images of {height}x{width} px", backward=False,
                      hint="use smaller images")  # at least one pass over the images themselves
    labels = check_target(target, n, device)
    fill = check_baseline(baseline, images)
    windows = [(y, x) for y in rows for x in cols]
    per_eval = None if perturbations_per_eval is None else check_int(perturbations_per_eval, "perturbations_per_eval")
    score = _SCORES[check_choice(output, "output", tuple(_SCORES))]
    with evaluating(model), torch.inference_mode():
        drops = None
        if method != "batched":
            settings = APPROXIMATE if method == "approximate" else {}
            try:
                drops = incremental.window_drops(model, images, labels, score, windows=windows,
                                                 grid=(len(rows), len(cols)), window=(wh, ww), fill=fill,
                                                 per_eval=per_eval, **settings,
                                                 min_gain=AUTO_MIN_GAIN if method == "auto" else None)
            except incremental.UnsupportedModel as err:
                warnings.warn(f"occlusion_map: cannot run {method} ({err}); using method='batched'", stacklevel=2)
        if drops is None:
            drops = _batched_drops(model, images, labels, score, windows, (wh, ww), fill, per_eval)
    return accumulate(drops, windows, (height, width), (wh, ww))


def _occlusion_budget(model: nn.Module, images: torch.Tensor, positions: int, window: object, stride: object,
                      per_eval: object, method: str) -> None:
    """Warn, or refuse with the estimate, before an occlusion run that would take hours or gigabytes.

    The estimate is for plain batches (known before the model is traced); the incremental methods need less
    (bench/results.md: 2-7x for exact maps, 3-15x approximate), which the message says.
    """
    n = images.shape[0]
    hint = "use a larger stride and window, or a smaller image"
    if method != "batched":
        hint = f"estimated for plain batches, method={method!r} may need a few times less; {hint}"
    check_cost(model, images, (positions + 1) * n, f"occlusion_map with window={window}, stride={stride}", hint=hint)
    if isinstance(per_eval, int) and not isinstance(per_eval, bool) and per_eval > 0:
        check_memory(min(per_eval, positions) * images.numel() * images.element_size(),
                     f"occlusion_map with perturbations_per_eval={per_eval}", hint="use fewer windows per forward pass")


def accumulate(drops: torch.Tensor, windows: list[tuple[int, int]], size: tuple[int, int],
               window: tuple[int, int]) -> torch.Tensor:
    """(W, N) drops, one per window and image -> (N, H, W): per pixel the mean drop of the windows covering it."""
    (height, width), (wh, ww) = size, window
    total = torch.zeros(drops.shape[1], height, width, dtype=drops.dtype, device=drops.device)
    counts = torch.zeros(height, width, dtype=drops.dtype, device=drops.device)
    for drop, (y, x) in zip(drops, windows):
        total[:, y:y + wh, x:x + ww] += drop[:, None, None]
        counts[y:y + wh, x:x + ww] += 1
    return total / counts
