"""Parameterizations: valid images, differentiable, the colour matrix whitens the photos, the spectrum is 1/f."""

import numpy as np
import pytest
import torch

from cnn_helpers.core.data import load_image
from cnn_helpers.featurevis.params import (PHOTOS, colour_correlation, fourier, fourier_scale, high_frequency_share,
                                           pixels, radial_spectrum, spectrum_to_image)


def photo_pixels(names=PHOTOS, size=64):
    return torch.cat([load_image(name, size=size).flatten(2)[0].T for name in names]).double()  # (P, 3)


def test_colour_matrix_is_a_square_root_of_the_photos_covariance_and_whitens_them():
    matrix = colour_correlation().double()
    covariance = torch.from_numpy(np.cov(photo_pixels().numpy().T))  # numpy as an independent oracle
    assert torch.allclose(matrix @ matrix.T, covariance, atol=1e-6)
    inverse = torch.linalg.inv(matrix)
    assert torch.allclose(inverse @ covariance @ inverse.T, torch.eye(3, dtype=torch.float64), atol=1e-5)


def test_colour_matrix_is_computed_from_the_photos_not_typed_in():
    others = colour_correlation(("coffee", "rocket"), size=32)
    assert not torch.allclose(others, colour_correlation(), atol=1e-3)
    brightness = colour_correlation()[:, -1]  # the largest axis: all three colours together
    assert (brightness > 0).all() and brightness.norm() > 1.5 * colour_correlation()[:, :2].norm(dim=0).max()
    # Lucid's ImageNet estimate (first column of its color_correlation_svd_sqrt) points the same way
    lucid = torch.tensor([0.26, 0.27, 0.27])
    assert torch.nn.functional.cosine_similarity(brightness, lucid, dim=0) > 0.98
    with pytest.raises(TypeError, match="tuple"):
        colour_correlation("cat")


@pytest.mark.parametrize("build", [pixels, fourier])
@pytest.mark.parametrize("decorrelate", [False, True])
def test_parameterizations_give_valid_images_and_gradients(build, decorrelate):
    param = build((20, 24), batch=2, decorrelate=decorrelate, sd=3.0, generator=torch.Generator().manual_seed(0))
    image = param()
    assert image.shape == (2, 3, 20, 24) and 0 <= image.min() and image.max() <= 1
    assert image.std() > 0.05  # sd=3: far from grey, yet inside [0, 1]
    (grad,) = torch.autograd.grad(image[:, 0].sum(), param.params)
    assert grad.shape == param.params[0].shape and grad.abs().sum() > 0 and torch.isfinite(grad).all()


def test_default_start_is_almost_grey_and_seeded():
    a = fourier(32, generator=torch.Generator().manual_seed(1))()
    b = fourier(32, generator=torch.Generator().manual_seed(1))()
    assert torch.equal(a, b) and (a - 0.5).abs().max() < 0.05


@pytest.mark.parametrize("build", [pixels, fourier])
@pytest.mark.parametrize("decorrelate", [False, True])
def test_starting_from_images_reproduces_them(build, decorrelate):
    photo = load_image("cat", size=33)  # odd width: the inverse FFT must get the size right
    param = build(images=photo, decorrelate=decorrelate)
    assert param.size == (33, 33) and torch.allclose(param(), photo, atol=2e-3)


def test_fourier_image_is_the_scaled_inverse_fft():
    # a spectrum of a real image (arbitrary coefficients in the f = 0 and Nyquist columns are not)
    spectrum = torch.fft.rfft2(torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)))
    image = spectrum_to_image(torch.view_as_real(spectrum), (16, 16))
    expected = torch.fft.irfft2(spectrum * fourier_scale((16, 16)), s=(16, 16), norm="ortho") / 4
    assert torch.allclose(image, expected, atol=1e-6)
    assert torch.allclose(torch.fft.rfft2(image * 4, norm="ortho"), spectrum * fourier_scale((16, 16)), atol=1e-4)


def test_fourier_scale_hand_computed():
    scale = fourier_scale((4, 4))
    assert scale.shape == (4, 3)
    assert scale[0, 0] == pytest.approx(4.0)  # f = 0 gets the lowest frequency's weight 1 / (1/4)
    assert scale[0, 1] == pytest.approx(4.0) and scale[0, 2] == pytest.approx(2.0)  # f = 1/4, 1/2
    assert scale[1, 1] == pytest.approx(1 / np.hypot(0.25, 0.25))
    assert torch.equal(fourier_scale(4, decay_power=0.0), torch.ones(4, 3))


@pytest.mark.parametrize("decay_power", [1.0, 2.0])
def test_random_fourier_images_fall_off_like_one_over_f(decay_power):
    param = fourier(128, batch=4, decorrelate=False, decay_power=decay_power, generator=torch.Generator().manual_seed(0))
    frequencies, amplitude = radial_spectrum(param.linear().detach())
    keep = slice(1, -1)  # the first and last rings hold few coefficients
    slope = np.polyfit(np.log(frequencies[keep].numpy()), np.log(amplitude.mean(0)[keep].numpy()), 1)[0]
    assert slope == pytest.approx(-decay_power, abs=0.1)
    white = torch.randn(4, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    flat = np.polyfit(np.log(frequencies[keep].numpy()), np.log(radial_spectrum(white)[1].mean(0)[keep].numpy()), 1)[0]
    assert abs(flat) < 0.1


def test_radial_spectrum_of_a_single_frequency():
    x = torch.arange(32.0)
    wave = torch.cos(2 * np.pi * 0.25 * x).expand(1, 3, 32, 32)  # 0.25 cycles per pixel along x
    frequencies, amplitude = radial_spectrum(wave, bins=8)
    assert frequencies[amplitude[0].argmax()] == pytest.approx(0.28125) and amplitude[0, :3].max() < 1e-4


def test_high_frequency_share_of_waves_noise_and_photos():
    x = torch.arange(32.0)
    slow, fast = (torch.cos(2 * np.pi * f * x).expand(1, 3, 32, 32) for f in (0.125, 0.375))
    assert high_frequency_share(slow).item() == pytest.approx(0.0, abs=1e-4)  # the Hann window leaks a trace
    assert high_frequency_share(fast).item() == pytest.approx(1.0, abs=1e-4)
    noise = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    area = 1 - np.pi * 0.25 ** 2  # share of the frequency square [-1/2, 1/2]^2 outside the radius 1/4
    assert high_frequency_share(noise).mean().item() == pytest.approx(area, abs=0.02)
    photos = torch.cat([load_image(name, size=96) for name in ("cat", "coffee")])
    assert (high_frequency_share(photos) < 0.05).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="size must be at least"):
        pixels(4)
    with pytest.raises(ValueError, match="size"):
        fourier((16, 0))
    with pytest.raises(TypeError, match="decorrelate"):
        fourier(16, decorrelate=1)
    with pytest.raises(TypeError, match="generator"):
        pixels(16, generator=3)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        pixels(images=torch.full((1, 3, 16, 16), 2.0))
    with pytest.raises(ValueError, match="spectrum must end in"):
        spectrum_to_image(torch.zeros(1, 3, 8, 8, dtype=torch.complex64), (8, 8))


@pytest.mark.parametrize("spectrum, error, words", [
    ([[1.0]], TypeError, "spectrum must be"),  # not a tensor (was: AttributeError)
    (torch.ones(1, 3, 4, 3, 2, dtype=torch.int64), TypeError, "spectrum must be"),  # (was: view_as_complex's words)
    (torch.ones(1, 3, 4, 3, 2, dtype=torch.bool), TypeError, "spectrum must be"),
    (torch.randn(1, 3, 4, 3), ValueError, "last axis of 2"),  # real without (real, imaginary)
    (torch.full((1, 3, 4, 3), float("nan"), dtype=torch.complex64), ValueError, "finite"),  # (was: a NaN image)
    (torch.randn(0, 3, 4, 3, dtype=torch.complex64), ValueError, "empty"),  # (was: an MKL error)
    (torch.randn(1, 3, 4, 3, dtype=torch.complex64, device="meta"), ValueError, "meta"),  # (was: a meta "image")
])
def test_spectrum_to_image_refuses_what_is_not_a_spectrum(spectrum, error, words):
    with pytest.raises(error, match=words):
        spectrum_to_image(spectrum, (4, 4))


def test_spectrum_to_image_takes_any_real_layout_of_real_and_imaginary_parts():
    spectrum = torch.randn(1, 3, 4, 3, 2, generator=torch.Generator().manual_seed(0))
    strided = spectrum.transpose(-1, -2).contiguous().transpose(-1, -2)  # same values, last axis not contiguous
    assert torch.equal(spectrum_to_image(strided, (4, 4)), spectrum_to_image(spectrum, (4, 4)))
