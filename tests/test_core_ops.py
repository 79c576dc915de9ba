"""The shared tensor operations (cnn_helpers.core.ops) and progress bars (core.progress), by hand and against
scipy/torchvision."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch
import torchvision.transforms.functional as TF

from cnn_helpers.core.ops import gaussian_blur, relative_error, resize_to
from cnn_helpers.core.progress import progress_bar


def test_resize_to_keeps_a_constant_image_and_returns_the_same_tensor_at_the_same_size():
    x = torch.full((2, 3, 8, 6), 0.25)
    assert resize_to(x, (8, 6)) is x
    assert torch.allclose(resize_to(x, (3, 5)), torch.full((2, 3, 3, 5), 0.25))
    assert torch.allclose(resize_to(x, (16, 12), antialias=False), torch.full((2, 3, 16, 12), 0.25))


def test_resize_to_shrinks_with_antialiasing_like_torchvision():
    x = torch.rand(1, 3, 40, 30, generator=torch.Generator().manual_seed(0))
    expected = TF.resize(x, [10, 15], antialias=True)
    assert torch.allclose(resize_to(x, (10, 15)), expected, atol=1e-6)
    plain = torch.nn.functional.interpolate(x, size=(10, 15), mode="bilinear", align_corners=False)
    assert torch.equal(resize_to(x, (10, 15), antialias=False), plain)


def test_gaussian_blur_matches_scipy_and_keeps_constants():
    x = torch.rand(1, 2, 20, 17, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    expected = np.stack([scipy.ndimage.gaussian_filter(c, 1.5, mode="mirror", truncate=2.0) for c in x[0].numpy()])
    assert np.allclose(gaussian_blur(x, 1.5, radius=3)[0].numpy(), expected, atol=1e-10)
    assert torch.equal(gaussian_blur(x, 0.0), x)
    flat = torch.full((1, 3, 5, 5), 0.5)
    assert torch.allclose(gaussian_blur(flat, 4.0), flat)  # kernel wider than the image: edges replicated


def test_relative_error_by_hand():
    target = torch.tensor([[3.0, 4.0]])  # |t|^2 = 25, broadcast over the batch
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0], [6.0, 8.0]])
    assert torch.allclose(relative_error(x, target), torch.tensor([0.0, 1.0, 1.0]))


def test_progress_bar_is_silent_unless_enabled():
    with progress_bar(3, "steps", enabled=False) as bar:
        bar.update(1)
    bar.close()
    real = progress_bar(3, "steps")  # tqdm's (silenced in the test run by TQDM_DISABLE)
    try:
        assert type(real).__module__.startswith("tqdm") and callable(real.update)
    finally:
        real.close()
    with pytest.raises(TypeError):
        progress_bar(3)  # the description is required: every bar says what it counts


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_resize_to_takes_half_precision_and_keeps_its_dtype(dtype):
    # bfloat16 gave torch's NotImplementedError "compute_index_ranges_weights" (issue 20, #17)
    x = torch.rand(1, 3, 9, 7, generator=torch.Generator().manual_seed(0))
    out = resize_to(x.to(dtype), (4, 3))
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), resize_to(x.to(dtype).float(), (4, 3)), atol=1e-2, rtol=0)
