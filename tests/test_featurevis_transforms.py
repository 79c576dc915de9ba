"""Transforms: exact shifts, seeded randomness, differentiable, blur against scipy, clear errors."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from cnn_helpers.featurevis.transforms import (Blur, Compose, Jitter, Pad, RandomRotate, RandomScale, blur,
                                               standard_transforms)


def images(n=2, h=12, w=15, seed=0):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_jitter_moves_each_image_by_whole_pixels_within_the_range():
    x = images(4)
    out = Jitter(2)(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for i in range(4):  # find the shift that reproduces the interior exactly
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(out[i, :, 2:-2, 2:-2], x[i, :, 2 - dy:x.shape[2] - 2 - dy, 2 - dx:x.shape[3] - 2 - dx])]
        assert len(found) >= 1


def test_jitter_zero_and_pad_hand_computed():
    x = images(1, 4, 4)
    assert torch.equal(Jitter(0)(x, None), x)
    padded = Pad(1, value=0.25)(x)
    assert padded.shape == (1, 3, 6, 6) and (padded[..., 0, :] == 0.25).all() and torch.equal(padded[..., 1:-1, 1:-1], x)


def test_scale_and_rotate_of_one_keep_the_image():
    x = images()
    assert torch.allclose(RandomScale(1.0, 1.0)(x, None), x, atol=1e-5)
    assert torch.allclose(RandomRotate(0.0)(x, None), x, atol=1e-5)


def test_rotation_by_90_degrees_of_a_square_image_is_rot90():
    from cnn_helpers.featurevis.transforms import _affine  # RandomRotate draws its angle; this is its core

    x = images(1, 9, 9)
    out = _affine(x, torch.ones(1, dtype=torch.float64), torch.full((1,), np.pi / 2, dtype=torch.float64),
                  torch.zeros(1, 2, dtype=torch.float64))
    assert torch.allclose(out, torch.rot90(x, k=1, dims=(2, 3)), atol=1e-5)
    assert RandomRotate(90.0)(x, torch.Generator().manual_seed(0)).shape == x.shape


def test_zoom_in_by_two_shows_the_centre_enlarged():
    x = torch.zeros(1, 3, 16, 16)
    x[..., 6:10, 6:10] = 1.0  # a 4 px square in the middle
    out = RandomScale(2.0, 2.0)(x, None)
    assert (out > 0.5).sum() == pytest.approx(3 * 64, abs=3 * 12)  # about 8 x 8 px now


def test_blur_matches_scipy():
    x = images(1, 20, 20)
    expected = ndimage.gaussian_filter(x[0].numpy().astype(np.float64), sigma=(0, 1.5, 1.5), mode="mirror", truncate=3.0)
    assert np.allclose(blur(x, 1.5)[0].numpy(), expected, atol=1e-5)
    assert torch.equal(Blur(0.0)(x), x)


def test_randomness_is_seeded_and_differs_between_images():
    x = images(1).expand(3, -1, -1, -1)
    t = standard_transforms(16)
    a, b = t(x, torch.Generator().manual_seed(5)), t(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert not torch.allclose(a[0], a[1]), "one random draw per image"


def test_transforms_are_differentiable():
    x = images(1).requires_grad_(True)
    out = standard_transforms(16)(x, torch.Generator().manual_seed(0)).sum() + Blur(1.0)(x).sum()
    (grad,) = torch.autograd.grad(out, x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_standard_transforms_scale_with_the_image():
    small, large = standard_transforms(64), standard_transforms(256)
    assert small.transforms[0].pixels == 6 and large.transforms[0].pixels == 24 and len(small) == 5
    assert standard_transforms(128)(images(1, 128, 128), None).shape == (1, 3, 152, 152)


def test_bad_arguments():
    with pytest.raises(ValueError, match="pixels"):
        Jitter(-1)
    with pytest.raises(ValueError, match="high"):
        RandomScale(1.2, 1.1)
    with pytest.raises(ValueError, match="degrees"):
        RandomRotate(400)
    with pytest.raises(TypeError, match="callable"):
        Compose([Jitter(1), "blur"])
    with pytest.raises(TypeError, match="list"):
        Compose("jitter")
    with pytest.raises(TypeError, match="generator"):
        Jitter(1)(images(), 42)


@pytest.mark.parametrize("transform", [Pad(100_000), Jitter(100_000), Blur(1e9), standard_transforms(10**7)])
def test_transforms_refuse_parameters_that_would_allocate_gigabytes(transform):
    """Issue 20 #16: each of these asked for 48 to 480 GiB on a 16 px image; now refused before allocating."""
    with pytest.raises(ValueError, match="GiB"):
        transform(torch.rand(1, 3, 16, 16), torch.Generator().manual_seed(0))


def test_blur_with_a_huge_sigma_is_refused_before_its_kernel_is_built():
    with pytest.raises(ValueError, match="sigma"):
        blur(torch.rand(1, 3, 16, 16), 1e12)
