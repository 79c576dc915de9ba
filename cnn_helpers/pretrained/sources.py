"""Where pretrained CNNs come from: one call that loads an image classifier from torchvision, timm,
Hugging Face (transformers) or OpenMMLab (mmpretrain), offline first.

Used by notebook 07. ``load_from(source, name)`` returns a :class:`Loaded` whose ``model`` takes
(N, 3, H, W) images in [0, 1] (the source's own normalization inside, as in :mod:`cnn_helpers.pretrained.models`)
and returns logits, with the class names when the source has them. Weights already on disk are used
(torch hub cache for torchvision and OpenMMLab, Hugging Face cache for timm and transformers); otherwise
they are downloaded, unless ``CNN_OFFLINE=1`` or the network is missing: then one
:class:`SourceUnavailableError` names the source, the model and the command that fetches it
(``python -m cnn_helpers.pretrained fetch SOURCE NAME``). timm and transformers also load a model saved
to a local folder (``name`` = the folder), and every source takes a local weight file (``pretrained=PATH``).

The four libraries are imported only when asked for (each takes seconds to import).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from cnn_helpers.core import repro
from cnn_helpers.core.checks import check_choice
from cnn_helpers.pretrained.models import (IMAGENET_MEAN, IMAGENET_STD, ImageClassifier, Normalize,
                                           WeightsUnavailableError)

__all__ = ["SOURCES", "EXAMPLES", "Loaded", "SourceUnavailableError", "load_from", "fetch_from"]

SOURCES = ("torchvision", "timm", "huggingface", "openmmlab")
# one classic model per source, for the notebook and the fetch command's help
EXAMPLES = {"torchvision": "resnet50", "timm": "resnet50.a1_in1k", "huggingface": "microsoft/resnet-50",
            "openmmlab": "resnet50_8xb32_in1k"}


class SourceUnavailableError(WeightsUnavailableError):
    """A model's weights are not on disk and cannot be downloaded (offline, no network), or are unreadable."""


@dataclass(frozen=True)
class Loaded:
    """What :func:`load_from` returns: ``model`` ((N, 3, H, W) in [0, 1] -> (N, classes) logits, eval mode),
    ``categories`` (class names, or None), ``input_size`` (the source's test crop in pixels, or None) and
    ``origin`` (where the weights came from)."""

    model: ImageClassifier
    source: str
    name: str
    categories: list[str] | None
    input_size: int | None
    origin: str


class _Logits(nn.Module):
    """Wraps a network whose forward returns an object with ``.logits`` (transformers) or takes ``mode=``."""

    def __init__(self, net: nn.Module, call: Callable[[nn.Module, torch.Tensor], torch.Tensor]):
        super().__init__()
        self.net, self._call = net, call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._call(self.net, x)


def _unavailable(source: str, name: str, why: str) -> SourceUnavailableError:
    return SourceUnavailableError(
        f"{source}: the weights of {name!r} {why}. Fetch them once on a machine with internet (CNN_OFFLINE unset): "
        f"`python -m cnn_helpers.pretrained fetch {source} {name}`; after that they load offline. "
        "Meanwhile the course's offline model is load_pretrained('efficientnet_lite0').")


def _hub_checkpoint(source: str, name: str, url: str) -> tuple[Path, str]:
    """A file in the torch hub cache (torchvision's and OpenMMLab's convention), downloaded when allowed."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if path.is_file():
        return path, f"{path} (torch hub cache)"
    if repro.offline_mode():
        raise _unavailable(source, name, f"are not in the torch hub cache ({path}) and CNN_OFFLINE=1")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(path), progress=True)
    except Exception as err:  # no network, DNS, proxy, HTTP error: all mean "not available here"
        raise _unavailable(source, name, f"could not be downloaded from {url} ({type(err).__name__}: {err})") from None
    return path, f"{url} (downloaded to {path})"


def _read_checkpoint(source: str, name: str, path: Path) -> dict:
    try:  # weights_only: a checkpoint is data, never code
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise _unavailable(source, name, f"in {path} could not be read ({type(err).__name__}: "
                                         f"{str(err).splitlines()[0][:200]}); delete the file and fetch it again") from None
    if not isinstance(checkpoint, dict):
        raise _unavailable(source, name, f"in {path} are not a state_dict")
    return checkpoint


def _load_state(source: str, name: str, net: nn.Module, state: dict, path: Path) -> None:
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise _unavailable(source, name, f"in {path} do not fit the architecture ({str(err).splitlines()[1][:200]})") from None


def _torchvision(name: str, pretrained: bool | Path) -> Loaded:
    import torchvision

    if name not in torchvision.models.list_models(module=torchvision.models):
        raise ValueError(f"name must be a torchvision classification model such as {EXAMPLES['torchvision']!r}; got {name!r}")
    weights = torchvision.models.get_model_weights(name).DEFAULT
    net = torchvision.models.get_model(name, weights=None)
    origin, categories = "random initialization", None
    if pretrained:
        path, origin = (pretrained, str(pretrained)) if isinstance(pretrained, Path) else \
            _hub_checkpoint("torchvision", name, weights.url)
        _load_state("torchvision", name, net, _read_checkpoint("torchvision", name, path), path)
        categories = list(weights.meta["categories"])
    preset = weights.transforms()
    return Loaded(ImageClassifier(net, Normalize(tuple(preset.mean), tuple(preset.std))), "torchvision", name,
                  categories, preset.crop_size[0], origin)


def _hf_file(source: str, name: str, repo: str, filenames: tuple[str, ...]) -> Path:
    """A file of a Hugging Face Hub repository: from the cache, else downloaded when allowed."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    for filename in filenames:
        cached = try_to_load_from_cache(repo, filename)
        if isinstance(cached, str):
            return Path(cached)
    if repro.offline_mode():
        raise _unavailable(source, name, f"are not in the Hugging Face cache (repository {repo}) and CNN_OFFLINE=1")
    errors = []
    for filename in filenames:
        try:
            return Path(hf_hub_download(repo, filename))
        except Exception as err:  # the first file name may not exist in this repository
            errors.append(f"{type(err).__name__}: {str(err).splitlines()[0][:120]}")
    raise _unavailable(source, name, f"could not be downloaded from the Hugging Face Hub ({'; '.join(errors)})")


def _timm(name: str, pretrained: bool | Path) -> Loaded:
    import timm
    from timm.data import ImageNetInfo, infer_imagenet_subset

    local = Path(name).expanduser()
    if local.is_dir():  # a folder written by timm.models.save_for_hf (config.json + weights)
        net, origin = timm.create_model(f"local-dir:{local}", pretrained=True), f"{local} (local folder)"
    else:
        if name.split(".")[0] not in timm.list_models():
            raise ValueError(f"name must be a timm model such as {EXAMPLES['timm']!r}, or a folder; got {name!r}")
        net, origin = timm.create_model(name, pretrained=False), "random initialization"
        if pretrained:
            if isinstance(pretrained, Path):
                path = pretrained
            else:
                repo = net.pretrained_cfg.get("hf_hub_id") or f"timm/{name}"
                path = _hf_file("timm", name, repo, ("model.safetensors", "pytorch_model.bin"))
            net = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)})
            origin = str(path)
    cfg = net.pretrained_cfg
    names = cfg.get("label_names")
    subset = infer_imagenet_subset(net) if pretrained and not names else None
    categories = list(names) if names else ImageNetInfo(subset).label_descriptions() if subset else None
    normalize = Normalize(tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD)))
    return Loaded(ImageClassifier(net.eval(), normalize), "timm", name, categories, cfg.get("input_size", (None,))[-1],
                  origin)


def _side(size: object) -> int | None:
    """The square side in a transformers size setting ({"height": 224, ...} or {"shortest_edge": 224})."""
    if isinstance(size, int):
        return size
    for key in ("height", "shortest_edge"):
        value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
        if value:
            return int(value)
    return None


def _huggingface(name: str, pretrained: bool | Path) -> Loaded:
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

    where = str(pretrained) if isinstance(pretrained, Path) else name
    local = Path(where).expanduser().is_dir()

    def get(loader, **kwargs):
        if local:
            return loader.from_pretrained(where, **kwargs)
        try:
            return loader.from_pretrained(where, local_files_only=True, **kwargs)
        except OSError:
            if repro.offline_mode():
                raise _unavailable("huggingface", name, "are not in the Hugging Face cache and CNN_OFFLINE=1") from None
        try:
            return loader.from_pretrained(where, **kwargs)
        except Exception as err:  # no network, proxy, unknown repository
            raise _unavailable("huggingface", name, f"could not be downloaded ({str(err).splitlines()[0][:200]})") from None

    if pretrained:
        net, origin = get(AutoModelForImageClassification), f"{where}" + (" (local folder)" if local else "")
    else:
        net, origin = AutoModelForImageClassification.from_config(get(AutoConfig)), "random initialization"
    try:
        processor = get(AutoImageProcessor)
        mean, std = tuple(processor.image_mean), tuple(processor.image_std)
        size = _side(getattr(processor, "crop_size", None)) or _side(getattr(processor, "size", None))
    except (SourceUnavailableError, OSError, ValueError, AttributeError):  # no preprocessor_config.json
        (mean, std), size = (IMAGENET_MEAN, IMAGENET_STD), None
    labels = getattr(net.config, "id2label", None) or {}
    categories = [labels[i] for i in range(len(labels))] if pretrained and labels else None
    model = ImageClassifier(_Logits(net.eval(), lambda m, x: m(pixel_values=x).logits), Normalize(mean, std))
    return Loaded(model, "huggingface", name, categories, size, origin)


def _openmmlab(name: str, pretrained: bool | Path) -> Loaded:
    from mmpretrain import get_model, list_models
    from mmpretrain.apis import ModelHub

    if name not in list_models():
        raise ValueError(f"name must be an mmpretrain model such as {EXAMPLES['openmmlab']!r}; got {name!r}")
    net, origin, categories = get_model(name, pretrained=False), "random initialization", None
    if pretrained:
        path, origin = (pretrained, str(pretrained)) if isinstance(pretrained, Path) else \
            _hub_checkpoint("openmmlab", name, ModelHub.get(name).weights)
        checkpoint = _read_checkpoint("openmmlab", name, path)
        _load_state("openmmlab", name, net, checkpoint.get("state_dict", checkpoint), path)
        meta = checkpoint.get("meta", {})
        classes = meta.get("dataset_meta", {}).get("classes") or meta.get("CLASSES")
        categories = list(classes) if classes else None
    pre = net.data_preprocessor  # mean/std on the 0-255 scale, RGB order (the configs convert BGR files to RGB)
    normalize = Normalize(tuple((pre.mean / 255).flatten().tolist()), tuple((pre.std / 255).flatten().tolist()))
    crop = [t.get("crop_size") for t in net._config.get("test_pipeline", []) if t.get("type") == "CenterCrop"]
    model = ImageClassifier(_Logits(net.eval(), lambda m, x: m(x, mode="tensor")), normalize)
    return Loaded(model, "openmmlab", name, categories, crop[0] if crop else None, origin)


_LOADERS = {"torchvision": _torchvision, "timm": _timm, "huggingface": _huggingface, "openmmlab": _openmmlab}


def load_from(source: str, name: str, *, pretrained: bool | str | os.PathLike = True) -> Loaded:
    """Load a pretrained image classifier from one of the four places people get them.

    Args:
        source: ``"torchvision"`` (``resnet50``), ``"timm"`` (``resnet50.a1_in1k``), ``"huggingface"``
            (``microsoft/resnet-50``, a transformers model) or ``"openmmlab"`` (``resnet50_8xb32_in1k``, mmpretrain).
        name: The model's name in that source; for timm and huggingface also a local folder that the library
            saved (``save_for_hf`` / ``save_pretrained``).
        pretrained: True: the published weights (cache first; downloaded unless offline). False: the architecture
            with random weights. A path: a weight file in the source's format (a state_dict; OpenMMLab: its
            checkpoint with ``meta`` and ``state_dict``; huggingface: a folder). Default: True.

    Returns:
        A :class:`Loaded`; ``model`` takes (N, 3, H, W) images in [0, 1], in eval mode with frozen parameters
        (as :func:`cnn_helpers.pretrained.load_pretrained`; :func:`cnn_helpers.training.prepare` makes a trainable copy).

    Raises:
        SourceUnavailableError: weights neither on disk nor downloadable (``CNN_OFFLINE=1``, no network), or unreadable.

    Example:
        >>> net = load_from("timm", "resnet50.a1_in1k").model
    """
    source = check_choice(source, "source", SOURCES)
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a model name (a non-empty str), got {name!r}")
    if not isinstance(pretrained, (bool, str, os.PathLike)):
        raise TypeError(f"pretrained must be True, False or a path, got {type(pretrained).__name__}")
    if not isinstance(pretrained, bool):
        pretrained = Path(pretrained).expanduser()
        if not pretrained.exists():
            raise FileNotFoundError(f"pretrained={str(pretrained)!r}: no such file or folder")
    with warnings.catch_warnings():  # mmcv-lite: its compiled ops (not needed for classifiers) are missing
        warnings.filterwarnings("ignore", message=".*MultiScaleDeformableAttention.*")
        loaded = _LOADERS[source](name, pretrained)
    loaded.model.eval().requires_grad_(False)
    return loaded


def fetch_from(source: str, name: str) -> int:
    """Download one model from ``source`` once, so that it loads offline later
    (``python -m cnn_helpers.pretrained fetch SOURCE NAME``). Prints one line; returns 0, or 1 when it failed."""
    try:
        loaded = load_from(source, name)
    except (SourceUnavailableError, ValueError) as err:
        print(err)
        return 1
    print(f"{source} {name}: {loaded.origin}")
    return 0
