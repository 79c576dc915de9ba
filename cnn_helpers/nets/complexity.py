"""What a network costs: weight layers, parameters, multiply-accumulates (MACs) and time, per layer.

Used by notebook 01 (architectures).

MACs are counted by the course's one counter, :mod:`cnn_helpers.core.macs` (``FlopCounterMode`` FLOPs / 2:
convolutions and matrix products, nothing for ReLU, pooling and batch norm). With 224 px inputs the totals
equal torchvision's metadata, which calls the same number "GFLOPS" (``get_weight(...).meta["_ops"]``). The
counting pass runs on the ``meta`` device: shapes and counts for any input size without allocating anything,
also for models whose weights were never allocated (built on ``meta``). :func:`layer_times` measures where a real forward pass spends its
time, layer by layer (MACs predict time only roughly).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch
from torch import nn

from cnn_helpers.core.checks import check_int, check_model
from cnn_helpers.core.macs import LeafCall, count_forward
from cnn_helpers.core.state import evaluating, model_channels

__all__ = ["LayerRow", "count_weight_layers", "count_parameters", "count_macs", "layer_table", "layer_times"]

WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)
SHORTCUT_NAME = "downsample"  # torchvision's and cnn_helpers.nets.resnet's name for projection shortcuts


@dataclass(frozen=True)
class LayerRow:
    """One leaf module of a forward pass: ``receptive_field`` is in input pixels (None after global pooling),
    ``kernel_size`` the side of a convolution's or pooling's square window (None for other layers)."""

    name: str
    layer_type: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    receptive_field: int | None
    kernel_size: int | None = None


def _is_shortcut(name: str) -> bool:
    return SHORTCUT_NAME in name.split(".")


def count_weight_layers(model: nn.Module) -> int:
    """Depth as the papers count it: convolutional and fully-connected layers.

    Rule: every ``nn.Conv2d`` and ``nn.Linear`` counts once, except projection shortcuts (submodules
    named ``downsample``): He et al. count only the layers on the main path, so ResNet-152 =
    1 stem conv + 50 blocks x 3 convs + 1 FC. Pooling, ReLU, batch norm and dropout hold no (or no
    learned spatial) weights and do not count.

    Args:
        model: Any module.

    Returns:
        The number of weight layers, e.g. 8 / 19 / 152 for AlexNet / VGG-19 / ResNet-152.

    Example:
        >>> count_weight_layers(resnet152())
        152
    """
    check_model(model)
    return sum(isinstance(m, WEIGHT_LAYERS) and not _is_shortcut(name) for name, m in model.named_modules())


def count_parameters(model: nn.Module) -> int:
    """All parameters of ``model``, trainable or frozen; a parameter shared by two layers counts once.

    Args:
        model: Any module (``meta``-device models work: only shapes are read).

    Returns:
        The number of scalars, e.g. 61,100,840 for AlexNet (torchvision's ``meta["num_params"]``).

    Example:
        >>> count_parameters(vgg19())
        143667240
    """
    check_model(model)
    return sum(p.numel() for p in model.parameters())


def _input_shape(input_size: object, channels: int) -> tuple[int, int, int, int]:
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        input_size = (1, channels, input_size, input_size)
    elif isinstance(input_size, tuple) and len(input_size) == 3:
        input_size = (1, *input_size)
    ok = isinstance(input_size, tuple) and len(input_size) == 4
    if not ok or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in input_size):
        raise ValueError(f"input_size must be an int (a square image), (C, H, W) or (N, C, H, W) of positive ints, got {input_size!r}")
    return input_size  # type: ignore[return-value]


def count_macs(model: nn.Module, input_size: int | tuple[int, ...] = 224) -> int:
    """Multiply-accumulates of one forward pass (``FlopCounterMode`` FLOPs / 2).

    Args:
        model: Any module; its train/eval mode is restored afterwards, batch-norm statistics untouched.
        input_size: ``224`` (a (1, C, 224, 224) input, C the channels of the model's first convolution, 3 without
            one), ``(C, H, W)`` or ``(N, C, H, W)``. Default: 224.

    Returns:
        MACs of convolutions and matrix products, e.g. 714,188,480 for AlexNet at 224 px
        (torchvision: "0.714 GFLOPS").

    Example:
        >>> count_macs(resnet152(), 224) / 1e9
        11.513626624
    """
    return _record(model, input_size, per_layer=False)[1]


def _first(value: int | tuple[int, ...]) -> int:
    return value[0] if isinstance(value, tuple) else value  # square kernels: height == width


def _receptive_field_step(
    module: nn.Module, r: int | None, jump: int, in_hw: tuple[int, ...], out_hw: tuple[int, ...]
) -> tuple[int | None, int]:
    """r_out = r_in + (k - 1) * dilation * jump_in; jump_out = jump_in * stride."""
    if r is None:
        return None, jump
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        k, s, d = (_first(v) for v in (module.kernel_size, module.stride, getattr(module, "dilation", 1)))
        return r + (k - 1) * d * jump, jump * s
    if isinstance(module, nn.Linear) or (isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)) and in_hw != out_hw):
        return None, jump  # every output sees the whole image
    return r, jump


def _record(model: nn.Module, input_size: object, *, per_layer: bool) -> tuple[list[LeafCall], int]:
    """One eval-mode forward pass, counted by :func:`cnn_helpers.core.macs.count_forward`: the leaf-module
    calls (with ``per_layer``) and the total MACs."""
    check_model(model)
    shape = _input_shape(input_size, model_channels(model) or 3)
    try:
        macs, calls = count_forward(model, shape, per_layer=per_layer)
    except (RuntimeError, IndexError) as error:  # torch's own words on what did not fit (channels, a size too small)
        raise ValueError(f"the model cannot take an input of shape {shape} (input_size={input_size!r}): "
                         f"{str(error).splitlines()[0]}") from error
    return calls, macs


def layer_table(model: nn.Module, input_size: int | tuple[int, ...] = 224) -> list[LayerRow]:
    """One row per leaf module in the order of the forward pass: output shape, parameters, MACs, receptive field.

    A module called several times (ResNet's shared ReLU) gets one row: its first call, MACs of all calls.
    The receptive field (side of the input square one output unit sees, ignoring padding) follows the
    main path; projection shortcuts (``downsample``) run in parallel and do not widen it.

    Args:
        model: Any module; its train/eval mode is restored afterwards, hooks removed, no gradients kept.
        input_size: ``224`` (a (1, C, 224, 224) input, as in :func:`count_macs`), ``(C, H, W)`` or ``(N, C, H, W)``.
            Default: 224.

    Returns:
        A list of :class:`LayerRow`; ``sum(r.params)`` equals :func:`count_parameters` for a model
        whose parameters all live in leaf modules, ``sum(r.macs)`` equals :func:`count_macs` for a
        model whose convolutions and matrix products all happen in leaf modules.

    Example:
        >>> rows = layer_table(vgg19(), 224)
        >>> max(rows, key=lambda r: r.params).name
        'classifier.0'
    """
    calls, _ = _record(model, input_size, per_layer=True)
    rows: dict[str, LayerRow] = {}
    r, jump = 1, 1
    for name, module, in_shape, out_shape, macs in calls:
        if name in rows:
            rows[name] = replace(rows[name], macs=rows[name].macs + macs)
            continue
        if not _is_shortcut(name):
            r, jump = _receptive_field_step(module, r, jump, tuple(in_shape[2:]), tuple(out_shape[2:]))
        params = sum(p.numel() for p in module.parameters())
        kernel = _first(module.kernel_size) if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)) else None
        rows[name] = LayerRow(name, type(module).__name__, tuple(out_shape), params, macs, r, kernel)
    return list(rows.values())


def layer_times(model: nn.Module, inputs: torch.Tensor, *, repeat: int = 3) -> dict[str, float]:
    """Seconds each leaf module spends in a forward pass (median of ``repeat`` runs after one warm-up).

    Each call is timed between a pre- and a post-hook (on CUDA with a synchronization in each, so the
    kernels of one layer are not billed to the next). What happens outside leaf modules (ResNet's
    residual additions, ``torch.flatten``) is not included: compare the sum with the whole pass.

    Args:
        model: Any module; run in eval mode without gradients; modes restored, hooks removed.
        inputs: What ``model`` takes, e.g. (N, 3, H, W) normalized images, on the model's device.
        repeat: Timed runs. Default: 3.

    Returns:
        ``{leaf module name: seconds}`` in the order of the forward pass (a module called several times:
        the sum of its calls).
    Example:
        >>> times = layer_times(vgg19(), torch.rand(1, 3, 224, 224))
    """
    check_model(model)
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"inputs must be a tensor, got {type(inputs).__name__}")
    repeat = check_int(repeat, "repeat")
    sync = torch.cuda.synchronize if inputs.device.type == "cuda" else (lambda: None)
    leaves = [(n, m) for n, m in model.named_modules() if not any(True for _ in m.children())]
    runs: list[dict[str, float]] = []
    started: dict[str, float] = {}

    def pre(name: str):
        def hook(module: nn.Module, args: tuple) -> None:  # returning None keeps the arguments unchanged
            sync()
            started[name] = time.perf_counter()
        return hook

    def post(name: str):
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            sync()
            runs[-1][name] = runs[-1].get(name, 0.0) + time.perf_counter() - started[name]
        return hook

    handles = [m.register_forward_pre_hook(pre(n)) for n, m in leaves] + [m.register_forward_hook(post(n)) for n, m in leaves]
    try:
        with evaluating(model), torch.no_grad():
            for _ in range(repeat + 1):  # the first run warms up (memory allocation, kernel selection)
                runs.append({})
                model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    timed = runs[1:]
    return {name: sorted(run[name] for run in timed)[len(timed) // 2] for name in timed[0]}
