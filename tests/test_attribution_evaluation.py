"""Tests for cnn_helpers.attribution.evaluation: curves by hand, Spearman against scipy, randomization."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnn_helpers.attribution.evaluation import (area_under_curve, insertion_start, cascading_randomization, deletion_curve,
                                                insertion_curve, randomize_parameters, spearman)


class MeanLogit(nn.Module):
    """logits = (k * sum of weighted pixels, 0): class-0 probability = sigmoid(k * sum)."""

    def __init__(self, weights):
        super().__init__()
        self.w = nn.Parameter(torch.as_tensor(weights, dtype=torch.float32))

    def forward(self, x):
        s = (x.sum(dim=1) * self.w).flatten(1).sum(1)
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def test_deletion_curve_by_hand():
    model = MeanLogit([[1.0, 2.0], [3.0, 4.0]])
    x = torch.full((1, 3, 2, 2), 0.5)  # each pixel contributes 1.5 * w
    heat = torch.tensor([[[0.1, 0.9], [0.5, 0.2]]])  # order: w=2, w=3, w=4, w=1
    curve = deletion_curve(model, x, 0, heat, steps=4)
    remaining = torch.tensor([10.0, 8.0, 5.0, 1.0, 0.0]) * 1.5
    assert torch.allclose(curve[0], torch.sigmoid(remaining), atol=1e-6)


def test_insertion_curve_by_hand_with_a_constant_baseline():
    model = MeanLogit([[1.0, 2.0], [3.0, 4.0]])
    x = torch.full((1, 3, 2, 2), 0.5)
    heat = torch.tensor([[[0.1, 0.9], [0.5, 0.2]]])
    curve = insertion_curve(model, x, 0, heat, steps=2, baseline=0.0)  # 2 pixels per step
    assert torch.allclose(curve[0], torch.sigmoid(torch.tensor([0.0, 5.0, 10.0]) * 1.5), atol=1e-6)


def test_curves_batch_shapes_and_blur_start():
    model = MeanLogit(torch.ones(8, 8))
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    heat = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))
    ins = insertion_curve(model, x, torch.tensor([0, 1, 0]), heat, steps=5, batch_size=4)
    assert ins.shape == (3, 6)
    with torch.no_grad():
        probs = model(x).softmax(1)
        start = model(insertion_start(x)).softmax(1)
    assert torch.allclose(ins[:, -1], torch.stack([probs[0, 0], probs[1, 1], probs[2, 0]]), atol=1e-6)
    assert torch.allclose(ins[:, 0], torch.stack([start[0, 0], start[1, 1], start[2, 0]]), atol=1e-6)


def test_curve_errors():
    model, x = MeanLogit(torch.ones(4, 4)), torch.rand(1, 3, 4, 4)
    with pytest.raises(ValueError, match=r"heatmap must have the images. shape \(N, H, W\)"):
        deletion_curve(model, x, 0, torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="baseline must be"):
        deletion_curve(model, x, 0, torch.rand(1, 4, 4), baseline="noise")
    with pytest.raises(ValueError, match="target must be a class index"):
        deletion_curve(model, x, 2, torch.rand(1, 4, 4))
    with pytest.raises(ValueError, match="steps"):
        insertion_curve(model, x, 0, torch.rand(1, 4, 4), steps=0)


def test_curve_leaves_model_mode():
    model = MeanLogit(torch.ones(4, 4)).train()
    deletion_curve(model, torch.rand(1, 3, 4, 4), 0, torch.rand(1, 4, 4))
    assert model.training


def test_area_under_curve():
    assert torch.allclose(area_under_curve(torch.ones(2, 5)), torch.ones(2))
    assert torch.isclose(area_under_curve(torch.linspace(0, 1, 11)[None])[0], torch.tensor(0.5))
    with pytest.raises(ValueError, match="K >= 2"):
        area_under_curve(torch.ones(3))


def test_blur_keeps_constant_images():
    x = torch.full((1, 3, 9, 9), 0.3)
    assert torch.allclose(insertion_start(x, sigma=2.0), x, atol=1e-6)


def test_spearman_against_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (3, 6, 7), generator=g).float()  # many ties
    b = a + torch.randint(0, 4, (3, 6, 7), generator=g).float()
    ours = spearman(a, b)
    for i in range(3):
        assert ours[i].item() == pytest.approx(stats.spearmanr(a[i].flatten(), b[i].flatten()).statistic, abs=1e-6)
    assert spearman(a, a * 2 + 1).tolist() == pytest.approx([1, 1, 1]) and spearman(a, -a).tolist() == pytest.approx([-1] * 3)
    with pytest.raises(ValueError, match="same shape"):
        spearman(a, b[:2])


def test_randomize_parameters_changes_every_parameter_and_keeps_scale():
    layer, norm = nn.Linear(200, 100), nn.BatchNorm1d(300)
    with torch.no_grad():
        norm.weight.uniform_(1.5, 2.5)
    before, scale = layer.weight.detach().clone(), norm.weight.detach().clone()
    randomize_parameters(layer, generator=torch.Generator().manual_seed(0))
    randomize_parameters(norm, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(layer.weight, before) and not torch.equal(norm.weight, scale)
    assert layer.weight.std().item() == pytest.approx(before.std().item(), rel=0.05)
    assert norm.weight.mean().item() == pytest.approx(2.0, abs=0.1)  # scales keep their mean: the net stays alive
    assert torch.equal(norm.running_var, torch.ones(300))


def test_cascading_randomization_is_cumulative_and_leaves_the_model_alone():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.Linear(4, 2))
    original = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    for name, randomized in cascading_randomization(model, ["3", "2"], generator=torch.Generator().manual_seed(0)):
        changed = [k for k, v in randomized.state_dict().items() if not torch.equal(v, original[k])]
        seen.append((name, sorted(changed)))
    assert seen == [("3", ["3.bias", "3.weight"]), ("2", ["2.bias", "2.weight", "3.bias", "3.weight"])]
    assert all(torch.equal(v, original[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="Valid names"):
        list(cascading_randomization(model, ["head"]))
