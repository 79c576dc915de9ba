"""Random transformations applied to the image at every optimization step (transformation robustness).

Used by notebook 04 (feature visualization) through :mod:`cnn_helpers.featurevis`.

Gradient ascent on raw pixels finds high-frequency patterns that excite the network only at one exact
position and scale. Moving, scaling, rotating and blurring the image a little before each forward
pass keeps only what excites the network *robustly*, which looks far more like the object. Every
transform is a callable ``transform(images, generator) -> images`` on (N, 3, H, W) tensors, differentiable,
with its random numbers drawn from ``generator`` (one draw per image, on the CPU), so a seeded run repeats.

Reference: Mordvintsev et al., "Inceptionism" (2015, jitter); Olah et al., "Feature Visualization",
Distill 2017 (transformation robustness; Lucent's ``transform.py``).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from cnn_helpers.core.checks import check_finite, check_float, check_generator, check_int
from cnn_helpers.core.memory import check_memory
from cnn_helpers.core.ops import gaussian_blur

__all__ = ["ImageTransform", "Pad", "Jitter", "RandomScale", "RandomRotate", "Blur", "Compose", "standard_transforms",
           "blur"]

ImageTransform = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=generator, dtype=torch.float64) * (high - low) + low


def _check_padded(images: torch.Tensor, pad: float, what: str, hint: str) -> None:
    """Refuse (warn) before padding ``images`` by ``pad`` pixels on every side takes more than 8 GiB (1 GiB)."""
    n, c, height, width = images.shape
    check_memory(images.element_size() * n * c * (height + 2 * pad) * (width + 2 * pad),
                 f"{what} on images of shape {tuple(images.shape)}", hint)


def _affine(images: torch.Tensor, scale: torch.Tensor, angle: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Per image: zoom by ``scale``, rotate by ``angle`` (radians), move by ``shift`` (N, 2) pixels (x, y)."""
    n, _, height, width = images.shape
    cos, sin = angle.cos() / scale, angle.sin() / scale
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin * height / width, sin * width / height, cos
    theta[:, 0, 2], theta[:, 1, 2] = -2 * shift[:, 0] / width, -2 * shift[:, 1] / height
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


class Pad:
    """Pad every side by ``pixels`` of constant ``value`` (grey): the other transforms then move the picture
    without wrapping its edges around, and the network sees it a little smaller."""

    def __init__(self, pixels: int, value: float = 0.5):
        self.pixels = check_int(pixels, "pixels", minimum=0)
        self.value = check_float(value, "value", minimum=0.0, maximum=1.0)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_padded(images, self.pixels, f"Pad(pixels={self.pixels})", "use fewer pixels")
        return F.pad(images, [self.pixels] * 4, mode="constant", value=self.value)

    def __repr__(self) -> str:
        return f"Pad({self.pixels}, value={self.value})"


class Jitter:
    """Move each image by a random whole number of pixels in [-pixels, pixels] in x and in y (size kept)."""

    def __init__(self, pixels: int):
        self.pixels = check_int(pixels, "pixels", minimum=0)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n = images.shape[0]
        _check_padded(images, self.pixels, f"Jitter(pixels={self.pixels})", "use fewer pixels")
        shift = torch.randint(-self.pixels, self.pixels + 1, (n, 2), generator=check_generator(generator))
        # a whole-pixel move copies pixels exactly; torch.roll would wrap the far edge around, so pad and crop
        pad = self.pixels
        mode = "reflect" if pad < min(images.shape[-2:]) else "replicate"
        padded = F.pad(images, [pad] * 4, mode=mode) if pad else images
        height, width = images.shape[-2:]
        crops = [padded[i:i + 1, :, pad - dy:pad - dy + height, pad - dx:pad - dx + width]
                 for i, (dx, dy) in enumerate(shift.tolist())]
        return torch.cat(crops)

    def __repr__(self) -> str:
        return f"Jitter({self.pixels})"


class RandomScale:
    """Zoom each image by a random factor in [low, high] about its centre (size kept, edges reflected)."""

    def __init__(self, low: float = 0.9, high: float = 1.1):
        self.low = check_float(low, "low", minimum=0.0, strict_minimum=True)
        self.high = check_float(high, "high", minimum=self.low)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n = images.shape[0]
        scale = _uniform(n, self.low, self.high, check_generator(generator))
        return _affine(images, scale, torch.zeros(n, dtype=torch.float64), torch.zeros(n, 2, dtype=torch.float64))

    def __repr__(self) -> str:
        return f"RandomScale({self.low}, {self.high})"


class RandomRotate:
    """Rotate each image by a random angle in [-degrees, degrees] about its centre (size kept)."""

    def __init__(self, degrees: float = 10.0):
        self.degrees = check_float(degrees, "degrees", minimum=0.0, maximum=180.0)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n = images.shape[0]
        angle = _uniform(n, -self.degrees, self.degrees, check_generator(generator)) * math.pi / 180
        return _affine(images, torch.ones(n, dtype=torch.float64), angle, torch.zeros(n, 2, dtype=torch.float64))

    def __repr__(self) -> str:
        return f"RandomRotate({self.degrees})"


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of each channel with standard deviation ``sigma`` pixels (edges reflected); same shape."""
    sigma = check_float(sigma, "sigma", minimum=0.0)
    check_finite(images, "images")
    n, c, height, width = images.shape
    radius = math.ceil(3 * sigma)  # the kernel's half-width; each of the two passes pads one axis by it on both ends
    check_memory(8 * (2 * radius + 1) + images.element_size() * n * c * (height * width + 2 * radius * max(height, width)),
                 f"a blur with sigma={sigma:g} of images of shape {tuple(images.shape)}", "use a smaller sigma")
    return gaussian_blur(images, sigma)


class Blur:
    """Gaussian blur with ``sigma`` pixels (not random): the gradient reaching the image is blurred too,
    so the optimizer cannot build patterns finer than about ``sigma``."""

    def __init__(self, sigma: float = 0.5):
        self.sigma = check_float(sigma, "sigma", minimum=0.0)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return blur(images, self.sigma)

    def __repr__(self) -> str:
        return f"Blur({self.sigma})"


class Compose:
    """Apply ``transforms`` in order, all drawing from the same generator."""

    def __init__(self, transforms: Sequence[ImageTransform]):
        if isinstance(transforms, (str, bytes)) or not isinstance(transforms, Sequence):
            raise TypeError(f"transforms must be a list of callables, got {type(transforms).__name__}")
        bad = [t for t in transforms if not callable(t)]
        if bad:
            raise TypeError(f"every transform must be callable as transform(images, generator), got {bad[0]!r}")
        self.transforms = list(transforms)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for transform in self.transforms:
            images = transform(images, generator)
        return images

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        return f"Compose([{', '.join(map(repr, self.transforms))}])"


def standard_transforms(size: int = 128) -> Compose:
    """Lucid's standard recipe, in pixels relative to a ``size`` image (the values below are for 128 px).

    Pad 12 px of grey, jitter 8 px, zoom 0.9-1.1, rotate +-10 degrees, jitter 4 px.

    Example:
        >>> result = visualize(model, objective, transforms=standard_transforms(128))
    """
    unit = check_int(size, "size", minimum=8) / 128
    return Compose([Pad(max(1, round(12 * unit))), Jitter(max(1, round(8 * unit))), RandomScale(0.9, 1.1),
                    RandomRotate(10.0), Jitter(max(1, round(4 * unit)))])
