"""Texture synthesis and style transfer: optimize an image's pixels until its feature statistics match.

Used by notebook 05. The representation (Gram matrices, feature taps, losses) is in :mod:`.gram`, the
quality measures in :mod:`.evaluation`.

* :func:`synthesize_texture` starts from noise and matches an exemplar's statistics at ``style_layers``
  (optionally coarse to fine: ``octaves``). A grey exemplar is optimized as one channel copied to RGB.
* :func:`style_transfer` starts from the content image (or noise) and minimizes
  ``style_loss + content_weight * content_loss``.

Both use L-BFGS with a strong-Wolfe line search (Gatys et al.; clamped to [0, 1] every ``clamp_every``
iterations) or Adam (clamped after every step), return a detached image in [0, 1] on the input's device
and a history of the losses per evaluation, and leave the model as they found it (modes, ``.grad``).

Reference: Gatys, Ecker & Bethge, NeurIPS 2015 (textures) and CVPR 2016 (style transfer).
"""

from __future__ import annotations

import time
from typing import Callable

import torch
from torch import nn

from cnn_helpers.core.budget import check_cost, check_pass_memory, check_steps
from cnn_helpers.core.checks import (check_bool, check_choice, check_float, check_generator, check_images, check_int,
                                     check_layers, check_model, check_pair)
from cnn_helpers.core.fold import fold_batch_norm
from cnn_helpers.core.ops import resize_to
from cnn_helpers.core.progress import progress_bar
from cnn_helpers.core.state import evaluating, grad_enabled
from cnn_helpers.style.gram import (check_map_sizes, content_loss, style_loss, style_targets, tap_layers,
                                    unchecked_style_maps, upsample_by)

__all__ = ["style_transfer", "synthesize_texture", "STYLE_OPTIMIZERS", "STARTS"]

STYLE_OPTIMIZERS = ("lbfgs", "adam")
STARTS = ("content", "noise")  # where style transfer starts: the content image or noise
Losses = dict[str, list[float]]  # per evaluation: "loss", "style", "content", "seconds"
Callback = Callable[[int, torch.Tensor], None]
StyleLoss = Callable[[dict, dict], torch.Tensor]  # style_loss_fn(features, targets) -> (N,), like gram.style_loss


def _optimize(loss_fn: Callable, start: torch.Tensor, *, steps: int, optimizer: str, lr: float, clamp_every: int,
              callback: Callable | None, progress: bool) -> tuple[torch.Tensor, dict[str, list[float]]]:
    """Minimize ``loss_fn(x) -> (total, style, content)`` (each (N,)) over pixels ``x`` kept in [0, 1]."""
    x = start.detach().clone().requires_grad_(True)
    history: dict[str, list[float]] = {"loss": [], "style": [], "content": [], "seconds": []}
    begin = time.perf_counter()

    def closure() -> torch.Tensor:
        total, style, content = loss_fn(x)
        (x.grad,) = torch.autograd.grad(total.sum(), x)  # never touches the model's .grad
        for key, value in (("loss", total), ("style", style), ("content", content)):
            history[key].append(float(value.detach().sum()))
        history["seconds"].append(time.perf_counter() - begin)
        return total.sum().detach()

    lbfgs = optimizer == "lbfgs"
    opt = (torch.optim.LBFGS([x], lr=lr, max_iter=clamp_every, history_size=50, line_search_fn="strong_wolfe",
                             tolerance_grad=0.0, tolerance_change=0.0) if lbfgs else torch.optim.Adam([x], lr=lr))
    bar = progress_bar(steps, "optimize", enabled=progress)
    done = 0
    while done < steps:
        chunk = min(clamp_every if lbfgs else 1, steps - done)
        if lbfgs:
            opt.param_groups[0].update(max_iter=chunk, max_eval=chunk * 5 // 4 + 1)
        opt.step(closure)
        with torch.no_grad():
            x.clamp_(0.0, 1.0)  # L-BFGS runs free for `clamp_every` iterations, then is put back into range
        done += chunk
        bar.update(chunk)
        if callback is not None:
            callback(done, x.detach().clone())
    bar.close()
    return x.detach(), history


def _check_run(model: nn.Module, steps: int, optimizer: str, lr: float | None, upsample: int, clamp_every: int,
               centred: bool, pixels: bool, progress: bool, callback: object) -> float:
    check_model(model)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a function callback(iterations_done, image) or None, got {callback!r}")
    check_int(steps, "steps")
    check_choice(optimizer, "optimizer", STYLE_OPTIMIZERS)
    check_int(upsample, "upsample", maximum=4)
    check_int(clamp_every, "clamp_every")
    check_bool(centred, "centred")
    check_bool(pixels, "pixels")
    check_bool(progress, "progress")
    default = 1.0 if optimizer == "lbfgs" else 0.02  # lr=None: the optimizer's own default
    return default if lr is None else check_float(lr, "lr", minimum=0.0, strict_minimum=True)


def _check_budget(model: nn.Module, like: torch.Tensor, runs: list[tuple[tuple[int, ...], int]], upsample: int,
                  optimizer: str, what: str) -> None:
    """Warn or refuse (budget) before optimizing, for each ``(shape, steps)`` of ``runs``, images of that shape
    (N, C, H, W) for that many steps, upsampled."""
    per_step = 1.25 if optimizer == "lbfgs" else 1.0  # the strong-Wolfe line search evaluates ~1.25x
    biggest = max((shape for shape, _ in runs), key=lambda s: s[-2] * s[-1])
    net_input = like.new_empty(1).expand(biggest[0], 3, biggest[-2] * upsample, biggest[-1] * upsample)  # a shape
    check_pass_memory(model, net_input, what, backward=True, hint="use a smaller size or upsample")
    check_steps(per_step * sum(steps for _, steps in runs), what, "use fewer steps")
    net_input = net_input[:1]
    passes = per_step * sum(steps * n * h * w for (n, _, h, w), steps in runs) / (biggest[-2] * biggest[-1])
    check_cost(model, net_input, passes, what, backward=True, hint="use fewer steps or a smaller size")


def _style_loss_fn(style_loss_fn: object, centred: bool) -> StyleLoss:
    """The style loss to minimize: ``style_loss_fn``, checked, or :func:`~.gram.style_loss` with ``centred``."""
    if style_loss_fn is None:
        return lambda features, targets: style_loss(features, targets, centred=centred)
    if not callable(style_loss_fn):
        raise TypeError(f"style_loss_fn must be a function style_loss_fn(features, targets) -> (N,) or None, "
                        f"got {style_loss_fn!r:.80}")

    def checked(features: dict, targets: dict) -> torch.Tensor:
        loss = style_loss_fn(features, targets)
        n = next(iter(features.values())).shape[0]
        if not isinstance(loss, torch.Tensor) or loss.shape != (n,) or not loss.requires_grad:
            raise ValueError(f"style_loss_fn must return one loss per image, shape ({n},), attached to the features' "
                             f"graph; got {tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__}")
        return loss
    return checked


def _noise(shape: tuple[int, ...], generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(shape, generator=generator).to(device=like.device, dtype=like.dtype)


def style_transfer(model: nn.Module, content: torch.Tensor, style: torch.Tensor, *,
                   style_layers: list[str] | tuple[str, ...], content_layers: list[str] | tuple[str, ...],
                   content_weight: float = 0.1, steps: int = 150, octaves: int = 1, coarse_steps: int = 150,
                   optimizer: str = "lbfgs", lr: float | None = None, centred: bool = True, upsample: int = 2,
                   pixels: bool = True, init: str = "content", clamp_every: int = 20,
                   style_loss_fn: StyleLoss | None = None, generator: torch.Generator | None = None,
                   callback: Callback | None = None, progress: bool = False) -> tuple[torch.Tensor, Losses]:
    """Paint ``content`` in the style of ``style``: minimize ``style_loss + content_weight * content_loss``.

    Args:
        model: A CNN taking (N, 3, H, W) images in [0, 1] (``pre.model``); used in eval mode, left as found. It runs
            as a frozen copy with batch norm folded into the convolutions where that gives the same maps
            (:func:`~cnn_helpers.core.fold.fold_batch_norm`: cheaper, the same result up to float rounding).
        content: (N, 3, H, W) in [0, 1]; the result has its size. style: (1, 3, H', W') in [0, 1], any size.
        style_layers, content_layers: Submodule names (``pre.info.style_layers`` / ``content_layers``).
        content_weight: Weight of the content term (both terms are relative, ≈ 1 at the start). Default: 0.1.
        steps: Iterations at the content's size (L-BFGS: each has one or a few evaluations). Default: 150.
        octaves: Coarse to fine: first ``coarse_steps`` iterations with content and style halved ``octaves - 1``
            times (a quarter of the pixels per halving), the result enlarged for the next octave. Default: 1.
        coarse_steps: Iterations at each coarser octave. Default: 150.
        optimizer: ``"lbfgs"`` (clamped every ``clamp_every`` iterations) or ``"adam"``. lr: Default 1 / 0.02.
        centred, upsample, pixels: See :mod:`cnn_helpers.style.gram` (``False, 1, False`` is the classic recipe).
            Default: True, 2, True.
        init: Start from the ``"content"`` image or from uniform ``"noise"`` (``generator``). Default: "content".
        style_loss_fn: ``style_loss_fn(features, targets) -> (N,)`` in place of :func:`~.gram.style_loss` (e.g. a
            student's own; ``targets`` as :func:`~.gram.style_targets` gives them with ``centred``). Default: None.
        callback: ``callback(iterations_done, image)`` after each clamp (counted per octave; a coarse octave's image
            is smaller). progress: tqdm bar.

    Returns:
        ``(image, history)``: (N, 3, H, W) in [0, 1], detached; ``history`` has the lists ``loss``, ``style``,
        ``content`` and ``seconds`` (one entry per evaluation of the loss, summed over the batch; octave after
        octave, each octave's losses relative to its own targets).
    Example:
        >>> image, history = style_transfer(pre.model, cat, scream, style_layers=pre.info.style_layers,
        ...                                 content_layers=pre.info.content_layers)
    """
    lr = _check_run(model, steps, optimizer, lr, upsample, clamp_every, centred, pixels, progress, callback)
    loss_of_style = _style_loss_fn(style_loss_fn, centred)
    check_images(content, name="content", model=model)
    check_images(style, name="style", model=model)
    if style.shape[0] != 1:
        raise ValueError(f"style must be one image (1, 3, H, W), got a batch of {style.shape[0]}")
    style_layers = check_layers(model, style_layers, "style_layers")
    content_layers = check_layers(model, content_layers, "content_layers")
    content_weight = check_float(content_weight, "content_weight", minimum=0.0)
    octaves, coarse_steps = check_int(octaves, "octaves", maximum=4), check_int(coarse_steps, "coarse_steps")
    check_choice(init, "init", STARTS)
    generator = check_generator(generator)
    n, c, height, width = content.shape
    runs = [((n, c, height >> k, width >> k), coarse_steps if k else steps) for k in reversed(range(octaves))]
    _check_budget(model, content, runs, upsample, optimizer, f"style_transfer with steps={steps}, octaves={octaves}, "
                  f"coarse_steps={coarse_steps} on {height}x{width} px, upsample={upsample}")
    layers = style_layers + [name for name in content_layers if name not in style_layers]
    history: Losses = {"loss": [], "style": [], "content": [], "seconds": []}
    with evaluating(model), grad_enabled():
        # normal tensors even when the caller is in inference mode; channels-last memory gives the same result
        content = content.detach().clone(memory_format=torch.contiguous_format)
        style = style.detach().clone(memory_format=torch.contiguous_format)
        # the same network, cheaper: batch norm folded into the convolutions of a frozen copy (float rounding apart)
        net = fold_batch_norm(model, upsample_by(content[:1], upsample), layers=layers)
        loss_maker = _transfer_loss(net, style_layers, content_layers, layers, content_weight, loss_of_style,
                                    centred=centred, upsample=upsample, pixels=pixels)
        x = None
        for k in reversed(range(octaves)):
            small = resize_to(content, (height >> k, width >> k))
            loss_fn = loss_maker(small, resize_to(style, (style.shape[-2] >> k, style.shape[-1] >> k)),
                                 "content" if k == 0 else f"content halved {k}x (octaves={octaves})")
            if x is None:
                x = small if init == "content" else _noise(tuple(small.shape), generator, small)
            x = resize_to(x, small.shape[-2:], antialias=False).clamp(0, 1)
            x, part = _optimize(loss_fn, x, steps=coarse_steps if k else steps, optimizer=optimizer, lr=lr,
                                clamp_every=clamp_every, callback=callback, progress=progress)
            offset = history["seconds"][-1] if history["seconds"] else 0.0
            for key, values in part.items():
                history[key] += [v + offset for v in values] if key == "seconds" else values
    return x, history


def _transfer_loss(net: nn.Module, style_layers: list[str], content_layers: list[str], layers: list[str],
                   content_weight: float, loss_of_style: StyleLoss, *, centred: bool, upsample: int, pixels: bool):
    """``make(content, style, name) -> loss_fn``: style transfer's loss ``x -> (total, style, content)`` (each (N,))
    for one octave's content and style images (the content's size checked against the layers, naming ``name``)."""
    def make(content: torch.Tensor, style: torch.Tensor, name: str) -> Callable:
        targets = style_targets(net, style, style_layers, centred=centred, upsample=upsample, pixels=pixels)
        with torch.no_grad():
            start_maps = tap_layers(net, upsample_by(content, upsample), layers)
        check_map_sizes({layer: start_maps[layer] for layer in style_layers}, content, name)
        content_maps = {layer: start_maps[layer] for layer in content_layers}

        def loss_fn(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            maps = unchecked_style_maps(net, x, layers, upsample, pixels)
            s, c = loss_of_style(maps, targets), content_loss(maps, content_maps)
            return s + content_weight * c, s, c
        return loss_fn
    return make


def synthesize_texture(model: nn.Module, exemplar: torch.Tensor, *, size: int | tuple[int, int],
                       style_layers: list[str] | tuple[str, ...], steps: int = 150, octaves: int = 1,
                       optimizer: str = "lbfgs", lr: float | None = None, centred: bool = True, upsample: int = 2,
                       pixels: bool = True, clamp_every: int = 20, style_loss_fn: StyleLoss | None = None,
                       generator: torch.Generator | None = None, callback: Callback | None = None,
                       progress: bool = False) -> tuple[torch.Tensor, Losses]:
    """A new image of the exemplar's texture: uniform noise optimized until its statistics match.

    Args:
        model: A CNN taking (N, 3, H, W) images in [0, 1]; used in eval mode, left as found (run as a batch-norm-folded
            copy, as in :func:`style_transfer`).
        exemplar: (1, 3, H, W) in [0, 1]. If its three channels are equal (grey), one channel is optimized.
        size: Output side (or (height, width)) in pixels.
        style_layers: Submodule names whose statistics are matched (``pre.info.style_layers``).
        steps: Iterations per octave. Default: 150.
        octaves: Coarse to fine: optimize at size / 2^(octaves-1) first, then upsample and refine. Default: 1.
        optimizer, lr, centred, upsample, pixels, clamp_every, style_loss_fn, callback, progress: As in
            :func:`style_transfer`.
        generator: For the starting noise. Default: torch's global generator.

    Returns:
        ``(image, history)``: (1, 3, *size) in [0, 1], detached; ``history`` as in :func:`style_transfer`.
    Example:
        >>> image, history = synthesize_texture(pre.model, brick, size=128, style_layers=pre.info.style_layers)
    """
    lr = _check_run(model, steps, optimizer, lr, upsample, clamp_every, centred, pixels, progress, callback)
    loss_of_style = _style_loss_fn(style_loss_fn, centred)
    check_images(exemplar, name="exemplar", model=model)
    if exemplar.shape[0] != 1:
        raise ValueError(f"exemplar must be one image (1, 3, H, W), got a batch of {exemplar.shape[0]}")
    height, width = check_pair(size, "size")
    octaves = check_int(octaves, "octaves", maximum=4)
    style_layers = check_layers(model, style_layers, "style_layers")
    generator = check_generator(generator)
    grey = bool((exemplar[:, 0] == exemplar[:, 1]).all() and (exemplar[:, 1] == exemplar[:, 2]).all())
    sizes = [(height >> k, width >> k) for k in reversed(range(octaves))]
    _check_budget(model, exemplar, [((1, 3, h, w), steps) for h, w in sizes], upsample, optimizer,
                  f"synthesize_texture with steps={steps}, size={size!r}, upsample={upsample}")

    def rgb_callback(done: int, image: torch.Tensor) -> None:
        callback(done, image.expand(-1, 3, -1, -1))
    history: Losses = {"loss": [], "style": [], "content": [], "seconds": []}
    with evaluating(model), grad_enabled():
        exemplar = exemplar.detach().clone(memory_format=torch.contiguous_format)
        net = fold_batch_norm(model, upsample_by(exemplar, upsample), layers=style_layers)  # as in style_transfer
        targets = style_targets(net, exemplar, style_layers, centred=centred, upsample=upsample, pixels=pixels)
        x = _noise((1, 1 if grey else 3, *sizes[0]), generator, exemplar)
        for octave_size in sizes:
            x = resize_to(x, octave_size, antialias=False).clamp(0, 1)
            with torch.no_grad():
                check_map_sizes(tap_layers(net, upsample_by(x.expand(-1, 3, -1, -1), upsample), style_layers), x, "size")

            def loss_fn(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
                maps = unchecked_style_maps(net, p.expand(-1, 3, -1, -1), style_layers, upsample, pixels)
                loss = loss_of_style(maps, targets)
                return loss, loss, torch.zeros_like(loss)

            x, part = _optimize(loss_fn, x, steps=steps, optimizer=optimizer, lr=lr, clamp_every=clamp_every,
                                callback=rgb_callback if callback else None, progress=progress)
            offset = history["seconds"][-1] if history["seconds"] else 0.0
            for key, values in part.items():
                history[key] += [v + offset for v in values] if key == "seconds" else values
    return x.expand(-1, 3, -1, -1).contiguous(), history
