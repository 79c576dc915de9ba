"""Quality measures of stylized images (cnn_helpers.style_eval)."""

import pytest
import torch
from helpers import assert_unchanged, mixed_mode, snapshot
from skimage.metrics import structural_similarity
from test_style_gram import LAYERS, tiny_model
from torch import nn

from cnn_helpers.style.evaluation import class_rank, ssim, style_distance


def test_style_distance_is_zero_for_the_style_itself_and_ranks_textures(generator):
    model = mixed_mode(tiny_model(generator))
    base = torch.rand(1, 3, 32, 32, generator=generator) * 0.5
    shifted = torch.roll(base, shifts=(7, 11), dims=(2, 3))   # same statistics, other positions (almost: borders)
    other = torch.rand(1, 3, 32, 32, generator=generator) * 0.5 + 0.5
    before = snapshot(model, base)
    d = style_distance(model, torch.cat([base, shifted, other]), base, layers=LAYERS)
    assert d.shape == (3,) and d[0].abs() < 1e-10 and d[1] < 0.1 * d[2]
    assert_unchanged(before, snapshot(model, base))
    with pytest.raises(ValueError, match="style of 2x2 px is too small"):
        style_distance(model, base, base[..., :2, :2], layers=LAYERS)


def test_class_rank_against_a_softmax_by_hand():
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, 3.5]])
    model = nn.Flatten()  # (N, 3, 1, 1) "images" whose pixels are the logits
    images = (logits / 4)[:, :, None, None]  # in [0, 1]
    rank, prob = class_rank(model, images, torch.tensor([2, 0]))
    assert rank.tolist() == [2, 3]
    expected = (logits / 4).softmax(dim=1)
    assert torch.allclose(prob, torch.stack([expected[0, 2], expected[1, 0]]))
    rank, _ = class_rank(model, images, 1)
    assert rank.tolist() == [3, 2]
    with pytest.raises(ValueError, match="class index in"):
        class_rank(model, images, 7)


def test_ssim_matches_scikit_image(generator):
    a, b = torch.rand(2, 1, 3, 20, 24, generator=generator, dtype=torch.float64)
    expected = structural_similarity(a[0].permute(1, 2, 0).numpy(), b[0].permute(1, 2, 0).numpy(), channel_axis=2,
                                     data_range=1.0)
    assert ssim(torch.cat([a, b]), b).tolist() == pytest.approx([expected, 1.0])
    with pytest.raises(ValueError, match="reference .* must be one image or one per image"):
        ssim(a, b[..., :10])


def test_spectrum_distance_by_hand(generator):
    from cnn_helpers.style import spectrum_distance
    noise = torch.rand(1, 3, 32, 40, generator=generator) - 0.5
    faint, strong = 0.5 + 0.04 * noise, 0.5 + 0.4 * noise  # 10x the contrast: 100x the power in every band
    torch.testing.assert_close(spectrum_distance(strong, faint), torch.tensor([2.0]))  # two decades everywhere
    shifted = faint.roll((5, 7), dims=(2, 3))  # the same texture elsewhere: the same spectrum
    torch.testing.assert_close(spectrum_distance(torch.cat([faint, shifted]), faint), torch.zeros(2), atol=1e-4, rtol=0)
    smooth = torch.nn.functional.avg_pool2d(faint, 5, stride=1, padding=2, count_include_pad=False)
    assert spectrum_distance(smooth, faint) > 0.5  # blurring removes the fine scales
    with pytest.raises(ValueError, match=r"reference must be one image"):
        spectrum_distance(faint, torch.cat([faint, faint]))
    with pytest.raises(ValueError, match=r"images of 8x8 px are too small for bins=12; use at least 24 px"):
        spectrum_distance(faint[..., :8, :8], faint)
    with pytest.raises(TypeError, match="bins"):
        spectrum_distance(faint, faint, bins=2.5)
