"""Image parameterizations for feature visualization: what the optimizer changes to make a picture.

Used by notebook 04 (feature visualization) through :mod:`cnn_helpers.featurevis`.

A parameterization holds unconstrained tensors (``params``, the optimizer's variables) and maps them
to images ``(N, 3, H, W)`` in [0, 1] when called. Two bases, both ending in a sigmoid so that every
value of the parameters is a valid image:

* :func:`pixels`: one variable per pixel and channel (Simonyan et al.'s plain gradient ascent);
* :func:`fourier`: one complex coefficient per frequency, scaled by ``1 / f`` (natural photos have
  roughly that spectrum), so that the same optimizer step changes coarse structure more than pixel noise.

Either can be *colour-decorrelated*: the variables are mixed into RGB by the square root of the bundled
photos' 3x3 colour covariance (:func:`colour_correlation`, computed from the photos, never typed in), so
that each variable moves along a direction in which real photos vary independently.

Reference: Olah, Mordvintsev & Schubert, "Feature Visualization", Distill 2017 (Lucid/Lucent's
``param/spatial.py`` and ``param/color.py``).
"""

from __future__ import annotations

import functools

import torch

from cnn_helpers.core.checks import (check_bool, check_finite, check_float, check_generator, check_images, check_int,
                                     check_pair)
from cnn_helpers.core.memory import check_memory
from cnn_helpers.core.repro import check_device

__all__ = ["PHOTOS", "MIN_SIZE", "colour_correlation", "spectrum_to_image", "fourier_scale", "Parameterization", "pixels",
           "fourier", "radial_spectrum", "high_frequency_share"]

# the bundled colour photos (grayscale ones and the painting left out): the colour statistics of "real photos"
# (china and flower are left out only because loading them imports scikit-learn, seconds on a laptop)
PHOTOS = ("cat", "coffee", "astronaut", "rocket", "grace_hopper", "dog", "eagle")
MIN_SIZE = 16  # smaller images leave a deep network's last feature maps without a single whole cell


@functools.lru_cache(maxsize=4)
def _correlation(names: tuple[str, ...], size: int) -> torch.Tensor:
    from cnn_helpers.core.data import load_image

    pixels_ = torch.cat([load_image(name, size=size).flatten(2)[0].T for name in names])  # (P, 3)
    covariance = torch.cov(pixels_.T.double())
    values, vectors = torch.linalg.eigh(covariance)
    vectors = vectors * torch.where(vectors.sum(0) < 0, -1.0, 1.0).double()  # eigenvectors' signs are arbitrary
    return (vectors * values.clamp_min(0).sqrt()).float()  # columns: principal colour axes, scaled


def colour_correlation(names: tuple[str, ...] = PHOTOS, *, size: int = 64) -> torch.Tensor:
    """The square root ``C`` of the photos' RGB covariance: ``C @ C.T == cov`` (3, 3).

    Column ``j`` is the ``j``-th principal colour axis scaled by its standard deviation (the last column
    is the brightness axis, with almost all the variance). ``C^-1`` whitens the photos' colours.

    Args:
        names: Short names of bundled photos (``data.IMAGES``). Default: the seven colour photos ``PHOTOS``.
        size: Each photo is resized and centre-cropped to ``size x size`` first. Default: 64.

    Returns:
        (3, 3) float32 tensor on the CPU (a fresh copy; cached per ``names, size``).

    Example:
        >>> C = colour_correlation(); rgb = (C @ decorrelated.flatten(2)).view_as(decorrelated)
    """
    if isinstance(names, str) or not isinstance(names, tuple) or not names:
        raise TypeError(f"names must be a non-empty tuple of image names, got {names!r}")
    return _correlation(names, check_int(size, "size", minimum=MIN_SIZE)).clone()


def _mix(colour: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> per pixel ``matrix @ colour``."""
    return torch.einsum("ij,njhw->nihw", matrix.to(colour), colour)


def fourier_scale(size: int | tuple[int, int], *, decay_power: float = 1.0) -> torch.Tensor:
    """``1 / f^decay_power`` for the frequencies of ``torch.fft.rfft2`` of a ``size`` image: (H, W // 2 + 1).

    ``f`` is in cycles per pixel; the constant term (f = 0) gets the weight of the lowest frequency.
    """
    height, width = check_pair(size, "size")
    check_memory(4 * height * (width // 2 + 1), f"the 1/f scale of a {height}x{width} image (size={size})",
                 hint="use a smaller size")
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None, :]
    frequency = (fx ** 2 + fy ** 2).sqrt().clamp_min(1.0 / max(height, width))
    return frequency ** -check_float(decay_power, "decay_power", minimum=0.0)


def spectrum_to_image(spectrum: torch.Tensor, size: tuple[int, int], *, decay_power: float = 1.0) -> torch.Tensor:
    """Fourier coefficients -> an image-shaped tensor (unconstrained values), with the 1/f scaling applied.

    Args:
        spectrum: (N, C, H, W // 2 + 1) complex coefficients (or real with a last axis of 2: real, imaginary),
            finite.
        size: (H, W) of the image.
        decay_power: Exponent of the ``1 / f`` scaling. Default: 1.0.

    Returns:
        (N, C, H, W): ``irfft2(spectrum * fourier_scale(size))`` with orthonormal scaling, divided by 4
        (Lucid's constant: keeps the first steps away from the sigmoid's flat ends); differentiable.
    """
    layout = "(N, C, H, W // 2 + 1) complex, or real with a last axis of 2 (real, imaginary)"
    if not isinstance(spectrum, torch.Tensor) or not (spectrum.is_complex() or spectrum.is_floating_point()):
        raise TypeError(f"spectrum must be a complex or float tensor {layout}, got {type(spectrum).__name__}"
                        + (f" of dtype {spectrum.dtype}" if isinstance(spectrum, torch.Tensor) else ""))
    if not spectrum.is_complex() and (spectrum.ndim < 2 or spectrum.shape[-1] != 2):
        raise ValueError(f"spectrum must be {layout}; a real tensor needs a last axis of 2, got shape "
                         f"{tuple(spectrum.shape)}")
    if spectrum.numel() == 0:
        raise ValueError(f"spectrum is empty: shape {tuple(spectrum.shape)}")
    if spectrum.device.type == "meta" or not torch.isfinite(spectrum.detach()).all():
        raise ValueError("spectrum must hold finite values (no NaN or inf, not on the 'meta' device)")
    return _spectrum_to_image(spectrum, size, decay_power)


def _spectrum_to_image(spectrum: torch.Tensor, size: tuple[int, int], decay_power: float) -> torch.Tensor:
    """:func:`spectrum_to_image` without the checks on ``spectrum`` (every step of an optimization calls it)."""
    if not spectrum.is_complex():
        spectrum = torch.view_as_complex(spectrum.contiguous())
    scale = fourier_scale(size, decay_power=decay_power).to(spectrum.device)
    if spectrum.shape[-2:] != scale.shape:
        raise ValueError(f"spectrum must end in {tuple(scale.shape)} for an image of size {tuple(size)}, "
                         f"got shape {tuple(spectrum.shape)}")
    return torch.fft.irfft2(spectrum * scale, s=tuple(size), norm="ortho") / 4.0


class Parameterization:
    """Unconstrained variables ``params`` and the map to images: ``param()`` -> (N, 3, H, W) in [0, 1].

    Build one with :func:`pixels` or :func:`fourier`.
    """

    def __init__(self, variables: torch.Tensor, *, kind: str, decorrelate: bool, size: tuple[int, int],
                 decay_power: float = 1.0):
        self.params = [variables.detach().requires_grad_(True)]
        self.kind, self.decorrelate, self.size, self.decay_power = kind, decorrelate, size, decay_power
        self.matrix = _normalized_correlation().to(variables.device) if decorrelate else None

    @property
    def batch(self) -> int:
        return self.params[0].shape[0]

    def linear(self) -> torch.Tensor:
        """The image before the sigmoid: (N, 3, H, W), any real values."""
        variables = self.params[0]
        out = variables if self.kind == "pixels" else _spectrum_to_image(variables, self.size, self.decay_power)
        return _mix(out, self.matrix) if self.decorrelate else out

    def __call__(self) -> torch.Tensor:
        return torch.sigmoid(self.linear())

    def __repr__(self) -> str:
        return (f"Parameterization({self.kind}, batch={self.batch}, size={self.size}, "
                f"decorrelate={self.decorrelate})")


@functools.lru_cache(maxsize=1)
def _normalized_correlation() -> torch.Tensor:
    # scaled so that the longest colour axis has length 1: the variables keep the scale of plain pixels
    matrix = colour_correlation()
    return matrix / matrix.norm(dim=0).max()


def _initial(images: torch.Tensor | None, shape: tuple[int, ...], sd: float, generator: torch.Generator | None,
             device: torch.device | str | None, decorrelate: bool) -> torch.Tensor:
    """The linear (pre-sigmoid, decorrelated) image to start from: noise of ``sd``, or ``images`` inverted."""
    if images is None:
        return torch.randn(shape, generator=generator).to(device) * sd
    check_images(images)
    logits = torch.logit(images.detach().clamp(1e-3, 1 - 1e-3))
    return _mix(logits, torch.linalg.inv(_normalized_correlation())) if decorrelate else logits


def _shape(size: object, batch: object, images: torch.Tensor | None) -> tuple[int, int, int, int]:
    if images is not None:
        return tuple(images.shape)  # type: ignore[return-value]
    height, width = check_pair(size, "size")
    if min(height, width) < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE} pixels, got {(height, width)}")
    batch = check_int(batch, "batch")
    # the variables, their gradient, Adam's two moments, the image and its sigmoid: 8 copies at most (the network's
    # activations are estimated by visualize, which knows the model)
    check_memory(8 * 4 * batch * 3 * height * width, f"the variables of {batch} images of {height}x{width} "
                 f"(size={size}, batch={batch})", hint="use a smaller size or batch")
    return batch, 3, height, width


def pixels(size: int | tuple[int, int] = 128, *, batch: int = 1, decorrelate: bool = False, sd: float = 0.01,
           images: torch.Tensor | None = None, generator: torch.Generator | None = None,
           device: torch.device | str | None = None) -> Parameterization:
    """One variable per pixel and channel; ``image = sigmoid(C @ variables)`` (``C`` only with ``decorrelate``).

    Args:
        size: Image side or (height, width). Default: 128. batch: Images. Default: 1.
        decorrelate: Mix the variables with the photos' colour correlation. Default: False.
        sd: Standard deviation of the random start (0.01: a grey image with faint noise).
        images: Start from these (N, 3, H, W) images in [0, 1] instead (``size``, ``batch`` ignored).
        generator: For the random start. device: Where the variables live. Default: CPU (or the images').

    Returns:
        A :class:`Parameterization`. Example: ``param = pixels(128); image = param()``.
    """
    decorrelate = check_bool(decorrelate, "decorrelate")
    shape = _shape(size, batch, images)
    device = images.device if images is not None else None if device is None else check_device(device)
    start = _initial(images, shape, check_float(sd, "sd", minimum=0.0), check_generator(generator), device, decorrelate)
    return Parameterization(start, kind="pixels", decorrelate=decorrelate, size=shape[2:])


def fourier(size: int | tuple[int, int] = 128, *, batch: int = 1, decorrelate: bool = True, decay_power: float = 1.0,
            sd: float = 0.01, images: torch.Tensor | None = None, generator: torch.Generator | None = None,
            device: torch.device | str | None = None) -> Parameterization:
    """Fourier coefficients scaled by ``1 / f^decay_power``; ``image = sigmoid(C @ irfft2(scale * spectrum))``.

    Args:
        size, batch, decorrelate, sd, images, generator, device: As in :func:`pixels` (``decorrelate``
            defaults to True here: the full Lucid recipe). decay_power: Exponent of the scaling. Default: 1.0.

    Returns:
        A :class:`Parameterization` whose variables are (N, 3, H, W // 2 + 1, 2) (real, imaginary).

    Reference: Olah et al., "Feature Visualization", Distill 2017 (preconditioning section).
    Example:
        >>> param = fourier(128, generator=torch.Generator().manual_seed(0))
    """
    decorrelate = check_bool(decorrelate, "decorrelate")
    shape = _shape(size, batch, images)
    decay_power = check_float(decay_power, "decay_power", minimum=0.0)
    device = images.device if images is not None else None if device is None else check_device(device)
    height, width = shape[2:]
    if images is None:
        coefficients = torch.randn((*shape[:2], height, width // 2 + 1, 2), generator=check_generator(generator))
        variables = coefficients.to(device) * check_float(sd, "sd", minimum=0.0)
    else:
        linear = _initial(images, shape, 0.0, None, device, decorrelate) * 4.0
        scale = fourier_scale((height, width), decay_power=decay_power).to(linear.device)
        spectrum = torch.fft.rfft2(linear, norm="ortho") / scale
        variables = torch.view_as_real(spectrum).contiguous()
    return Parameterization(variables, kind="fourier", decorrelate=decorrelate, size=(height, width),
                            decay_power=decay_power)


def radial_spectrum(images: torch.Tensor, *, bins: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean Fourier amplitude (over channels) in rings of frequency up to 0.5 cycles per pixel.

    Args:
        images: (N, C, H, W), any finite values (each channel's mean is removed first).
        bins: Rings between 0 and 0.5 cycles per pixel (at most 10,000). Default: 16.

    Returns:
        ``(frequencies, amplitude)``: ring centres (bins,) and mean amplitudes (N, bins), on the CPU.
    """
    check_finite(images, "images")
    height, width = images.shape[-2:]
    bins = check_int(bins, "bins", maximum=10_000)
    centred = images.detach().float().cpu() - images.detach().float().cpu().mean(dim=(-2, -1), keepdim=True)
    amplitude = torch.fft.rfft2(centred, norm="ortho").abs().mean(dim=1).flatten(1)
    fy, fx = torch.fft.fftfreq(height)[:, None], torch.fft.rfftfreq(width)[None, :]
    frequency = (fx ** 2 + fy ** 2).sqrt().flatten()
    edges = torch.linspace(0.0, 0.5, bins + 1)
    inside = (frequency > 0) & (frequency <= 0.5)
    index = torch.bucketize(frequency[inside], edges[1:-1], right=True)
    totals = torch.zeros(amplitude.shape[0], bins).index_add_(1, index, amplitude[:, inside])
    counts = torch.bincount(index, minlength=bins).clamp_min(1)
    return (edges[:-1] + edges[1:]) / 2, totals / counts


def high_frequency_share(images: torch.Tensor, *, cutoff: float = 0.25) -> torch.Tensor:
    """Share of each image's power (all channels, mean removed) above ``cutoff`` cycles per pixel: (N,).

    Photos keep a few per cent of their power above 0.25 cycles per pixel (a period of 4 pixels); pixel
    noise spreads it evenly (about 80 %). A measure of how natural an image's fine detail is. A Hann
    window is applied first, so that the jump between opposite edges (the FFT wraps around) does not count.
    """
    check_finite(images, "images")
    cutoff = check_float(cutoff, "cutoff", minimum=0.0, maximum=0.5)
    x = images.detach().float()
    height, width = x.shape[-2:]
    window = torch.outer(torch.hann_window(height, periodic=False), torch.hann_window(width, periodic=False)).to(x)
    power = torch.fft.fft2((x - x.mean(dim=(-2, -1), keepdim=True)) * window).abs().pow(2).sum(dim=1)  # (N, H, W)
    fy, fx = torch.fft.fftfreq(x.shape[-2])[:, None], torch.fft.fftfreq(x.shape[-1])[None, :]
    high = ((fx ** 2 + fy ** 2).sqrt() > cutoff).to(power.device)
    return (power * high).sum(dim=(1, 2)) / power.sum(dim=(1, 2)).clamp_min(1e-20)
