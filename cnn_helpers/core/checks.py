"""Input validation shared by every topic: return a clean value or raise a clear error.

Used by every sub-package (notebooks 00-07). Each check either returns a clean value or raises a
``TypeError``/``ValueError`` naming the argument and what was expected (``check_images``, ``check_int``,
``check_float``, ``check_layer`` ...). The guards that leave a model as it was found live in
:mod:`cnn_helpers.core.state`.
"""

from __future__ import annotations

import difflib
import math
from typing import Sequence, Union

import torch
from torch import nn

from cnn_helpers.core.state import model_channels, model_device, model_dtype

__all__ = [
    "Target", "check_images", "check_layer", "check_layers", "check_model", "check_target", "gather",
    "check_int", "check_float", "check_bool", "check_choice", "check_generator", "check_baseline", "check_pair",
    "check_fits_model", "check_class_indices", "check_finite", "check_model_takes", "check_logits",
]

Target = Union[int, torch.Tensor]


# ----------------------------------------------------------------------------------------------- scalars

def _describe(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def check_int(value: object, name: str, *, minimum: int | None = 1, maximum: int | None = None) -> int:
    """``value`` as an int in [minimum, maximum]; bools, floats and strings are refused.

    Example:
        >>> steps = check_int(steps, "steps")            # a positive int
        >>> k = check_int(k, "k", minimum=1, maximum=1000)
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {_describe(value)}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        low = "-inf" if minimum is None else minimum
        high = "inf" if maximum is None else maximum
        raise ValueError(f"{name} must be an int in [{low}, {high}], got {value}")
    return value


def check_float(value: object, name: str, *, minimum: float | None = None, maximum: float | None = None,
                strict_minimum: bool = False) -> float:
    """``value`` as a finite float in range (``strict_minimum``: greater than ``minimum``); NaN/inf refused.

    Example:
        >>> eps = check_float(eps, "eps", minimum=0.0)
        >>> lr = check_float(lr, "lr", minimum=0.0, strict_minimum=True)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point():
            value = value.item()
        else:
            raise TypeError(f"{name} must be a number, got {_describe(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if minimum is not None and (value <= minimum if strict_minimum else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict_minimum else '>='} {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_bool(value: object, name: str) -> bool:
    """``value`` if it is a real bool (``0``/``1``/``"yes"`` are refused: they hide typos)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {_describe(value)}")
    return value


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``; otherwise a ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_generator(generator: object, name: str = "generator") -> torch.Generator | None:
    """``None`` or a ``torch.Generator`` (a plain seed such as ``42`` is refused with the fix)."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {_describe(generator)}; "
                        "for a seed use torch.Generator().manual_seed(42)")
    return generator


def check_pair(value: object, name: str) -> tuple[int, int]:
    """A positive int or a (height, width) pair of positive ints -> (height, width)."""
    pair = (value, value) if isinstance(value, int) else tuple(value) if isinstance(value, (tuple, list)) else None
    if pair is None or len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair):
        raise ValueError(f"{name} must be a positive int or a pair (height, width) of them, got {value!r}")
    return pair  # type: ignore[return-value]


# ------------------------------------------------------------------------------------- tensors, models

def check_model(model: object, name: str = "model") -> None:
    """TypeError unless ``model`` is an ``nn.Module``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")


def _stored(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` with each broadcast dimension (stride 0, as ``expand`` makes) cut to length 1: the same values,
    each stored element read once (an expanded 8000 px photo is 3 numbers to check, not 192 million)."""
    strides = tensor.stride()
    return tensor[tuple(slice(0, 1) if s == 0 else slice(None) for s in strides)] if 0 in strides else tensor


def check_images(images: object, *, name: str = "images", model: nn.Module | None = None,
                 channels: int | None = 3) -> None:
    """Raise TypeError/ValueError unless ``images`` is a float (N, 3, H, W) tensor in [0, 1] with real values.

    With ``model``, the images must also be on the model's device and in its dtype (a float64 image
    fed to a float32 model would otherwise fail deep inside a convolution). ``channels=None``: any count.
    """
    layout = f"(N, {'C' if channels is None else channels}, H, W)"
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise TypeError(f"{name} must be a float tensor {layout} in [0, 1], got {type(images).__name__}"
                        + (f" of dtype {images.dtype}" if isinstance(images, torch.Tensor) else ""))
    if images.ndim != 4:
        hint = f"; for one image use {name}[None]" if images.ndim == 3 else ""
        raise ValueError(f"{name} must have 4 dimensions {layout}, got shape {tuple(images.shape)}{hint}")
    if channels is not None and images.shape[1] != channels:
        hint = {1: f"; grayscale: {name}.expand(-1, 3, -1, -1)", 4: f"; RGBA: {name}[:, :3]"}.get(images.shape[1], "")
        hint = hint if channels == 3 else ""
        if model is not None and model_channels(model) == images.shape[1]:  # a grey model: expanding would not fit it
            hint = f"; this function needs {channels}-channel images, and the model takes {images.shape[1]}"
        what = f"{channels} channels" + (" (RGB)" if channels == 3 else "")
        raise ValueError(f"{name} must have {what}, got {images.shape[1]} in shape {tuple(images.shape)}{hint}")
    if images.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(images.shape)}")
    if images.device.type == "meta":
        raise ValueError(f"{name} are on the 'meta' device: they have a shape but no values")
    if images.dtype == torch.float16 and images.device.type == "cpu":
        raise TypeError(f"{name} are float16 on the CPU, where torch's convolutions are extremely slow; "
                        f"use {name}.float()")
    stored = _stored(images)
    low, high = stored.min().item(), stored.max().item()
    if not (0.0 <= low and high <= 1.0):  # also catches NaN
        raise ValueError(f"{name} must have values in [0, 1], got min {low:.3g}, max {high:.3g} "
                         "(normalization belongs inside the model)")
    if model is not None:
        check_fits_model(images, model, name)


def check_fits_model(tensor: torch.Tensor, model: nn.Module, name: str = "images") -> None:
    """ValueError/TypeError unless ``tensor`` is on the model's device and in its dtype (float64 images into a
    float32 model would fail deep inside a convolution)."""
    device, dtype = model_device(model), model_dtype(model)
    if tensor.device != device and not (tensor.device.type == device.type == "cpu"):
        raise ValueError(f"{name} are on {tensor.device} but the model is on {device}; use {name}.to({str(device)!r})")
    if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
        raise TypeError(f"{name} are {tensor.dtype} but the model computes in {dtype}; use {name}.to({dtype})")


def check_model_takes(model: nn.Module, channels: int, what: str = "images", name: str = "model") -> None:
    """ValueError unless ``model`` can compute on ``channels``-channel ``what``: its weights are not on the ``meta``
    device (a shape, no values) and its first convolution, if it has one, takes ``channels`` input channels."""
    if model_device(model).type == "meta":
        raise ValueError(f"{name} is on the 'meta' device: it has shapes but no weights to compute with; "
                         f"load its weights first (model.to_empty(device='cpu') and load_state_dict)")
    expected = model_channels(model)
    if expected is not None and expected != channels:
        raise ValueError(f"{name} takes {expected}-channel images (its first convolution), but these are {channels}-"
                         f"channel {what}; wrap it, e.g. nn.Sequential(a {channels}-to-{expected}-channel conversion, "
                         f"{name})")


def check_finite(tensor: object, name: str, *, ndim: int | None = 4, layout: str = "(N, C, H, W)") -> torch.Tensor:
    """``tensor`` if it is a non-empty float tensor with ``ndim`` dimensions and finite values (any range:
    features, filters, maps, spectra); TypeError/ValueError naming ``name`` otherwise."""
    if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
        raise TypeError(f"{name} must be a float tensor {layout}, got {type(tensor).__name__}"
                        + (f" of dtype {tensor.dtype}" if isinstance(tensor, torch.Tensor) else ""))
    if (ndim is not None and tensor.ndim != ndim) or tensor.numel() == 0:
        raise ValueError(f"{name} must be a non-empty tensor {layout}, got shape {tuple(tensor.shape)}")
    # a finite sum means every value is finite (a NaN or inf makes it NaN or inf): one reduction, no mask of every
    # value; only a sum that overflowed or hit a bad value reads them all (gram_matrix checks once per evaluation)
    if tensor.device.type == "meta" or not (torch.isfinite(_stored(tensor).sum())
                                            or torch.isfinite(_stored(tensor)).all()):
        raise ValueError(f"{name} must hold finite values (no NaN or inf, not on the 'meta' device)")
    return tensor


def check_class_indices(labels: torch.Tensor, classes: int, name: str = "labels") -> None:
    """ValueError unless every entry of the integer tensor ``labels`` is a class index in [0, classes)."""
    bad = labels[(labels < 0) | (labels >= classes)]
    if bad.numel():
        raise ValueError(f"{name} must be a class index in [0, {classes - 1}] (the model has {classes} outputs), "
                         f"got {bad[0].item()}")


def check_layer(model: nn.Module, layer: object, name: str = "layer") -> nn.Module:
    """The submodule named ``layer`` (as in ``model.named_modules()``); ValueError listing valid names.

    A valid name is followed along its dotted path, child by child (record() checks its layers on every forward
    pass of a style loop: listing Lite0's modules once per layer cost 0.6 ms of a 55 ms evaluation at 96 px); only
    an unknown name lists them all. A module registered under two names is found under either.
    """
    found = model if isinstance(layer, str) and layer else None
    for part in layer.split(".") if found is not None else ():
        found = dict(found.named_children()).get(part)
        if found is None:
            break
    if found is not None:
        return found
    modules = dict(model.named_modules())
    modules.pop("", None)
    if isinstance(layer, str) and layer in modules:
        return modules[layer]
    names = list(modules)
    close = difflib.get_close_matches(str(layer), names, n=3)
    shown = names if len(names) <= 20 else names[:12] + ["..."] + names[-4:]
    raise ValueError(f"{'' if name == 'layer' else name + ': '}layer {layer!r} is not a submodule name of the model"
                     + (f"; did you mean {', '.join(map(repr, close))}?" if close else "")
                     + f" Valid names ({len(names)}): {', '.join(shown)}")


def check_layers(model: nn.Module, layers: object, name: str = "layers") -> list[str]:
    """A non-empty list of distinct submodule names (a single name is accepted too) -> list of names."""
    if isinstance(layers, str):
        layers = [layers]
    if not isinstance(layers, (list, tuple)) or not layers:
        raise TypeError(f"{name} must be a layer name or a non-empty list of them, got {_describe(layers)}")
    for layer in layers:
        check_layer(model, layer, name)
    if len(set(layers)) != len(layers):
        raise ValueError(f"{name} must not repeat a layer, got {list(layers)}")
    return list(layers)


def check_target(target: object, n: int, device: torch.device, name: str = "target") -> torch.Tensor:
    """An int or (N,) integer tensor -> (N,) int64 tensor on ``device`` (range checked by `gather`)."""
    if isinstance(target, bool) or not isinstance(target, (int, torch.Tensor)):
        raise TypeError(f"{name} must be an int or an (N,) integer tensor, got {type(target).__name__}")
    if isinstance(target, int):
        return torch.full((n,), target, dtype=torch.long, device=device)
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices, got dtype {target.dtype}")
    if target.ndim == 0:
        return target.to(device=device, dtype=torch.long).expand(n)
    if target.shape != (n,):
        raise ValueError(f"{name} must be an int or have shape ({n},), one class per image; got {tuple(target.shape)}")
    return target.to(device=device, dtype=torch.long)


def gather(output: object, target: torch.Tensor, name: str = "target") -> torch.Tensor:
    """``output[i, target[i]]``: (M,) scores; ValueError for a non-(M, C) output or a target out of range."""
    check_logits(output, target.shape[0])
    check_class_indices(target, output.shape[1], name)
    return output.gather(1, target[:, None])[:, 0]


def check_logits(output: object, n: int, *, minimum: int = 2) -> torch.Tensor:
    """``output`` if it is (n, classes) class scores with at least ``minimum`` classes; ValueError otherwise.

    A classifier's output, as attacks and accuracies need it: not a segmentation map (N, C, H, W), a tuple, an
    (N,) score or a single logit (a softmax over one class is constant: argmax and cross-entropy say nothing).
    """
    if not isinstance(output, torch.Tensor) or output.ndim != 2 or output.shape[0] != n or output.shape[1] < minimum:
        got = f"shape {tuple(output.shape)}" if isinstance(output, torch.Tensor) else type(output).__name__
        hint = ("; a one-logit (sigmoid) model: return torch.cat([-z, z], 1)" if got.endswith(", 1)") else
                "; wrap a model with several outputs to return its logits alone" if not isinstance(output, torch.Tensor)
                else "")
        raise ValueError(f"the model must return class scores (logits) of shape ({n}, classes) with classes >= "
                         f"{minimum}, got {got}{hint}")
    return output


def check_baseline(baseline: object, images: torch.Tensor, name: str = "baseline") -> torch.Tensor:
    """A finite float or a finite tensor broadcastable to ``images`` -> a tensor of the images' shape."""
    if isinstance(baseline, bool) or not isinstance(baseline, (int, float, torch.Tensor)):
        raise TypeError(f"{name} must be a number or a tensor broadcastable to {tuple(images.shape)}, "
                        f"got {_describe(baseline)}")
    value = torch.as_tensor(baseline, dtype=images.dtype, device=images.device)
    if not torch.isfinite(value).all():
        raise ValueError(f"{name} must hold finite values, got {baseline!r}" if value.numel() == 1
                         else f"{name} holds NaN or infinite values")
    try:
        return torch.broadcast_to(value, images.shape)
    except RuntimeError:
        raise ValueError(f"{name} of shape {tuple(value.shape)} does not broadcast to the images' shape "
                         f"{tuple(images.shape)}") from None
