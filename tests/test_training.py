"""The shared training loop: what it optimizes, what it records, what it leaves alone."""

import pytest
import torch
from torch import nn

from cnn_helpers.training import evaluate, fit, training_error


def tiny():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(64, 1, 4, 4, generator=g)
    labels = (images.mean(dim=(1, 2, 3)) > 0).long()  # learnable: the sign of the mean
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(16, 2))
    return model, images, labels


def test_evaluate_hand_computed():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 0]]))
    images = torch.tensor([1.0, -1.0, 2.0]).view(3, 1, 1, 1).expand(3, 1, 2, 2).contiguous()
    labels = torch.tensor([0, 0, 1])
    error, loss = evaluate(model, images, labels, batch_size=2)
    expected = torch.nn.functional.cross_entropy(model(images), labels).item()
    assert error == pytest.approx(2 / 3) and loss == pytest.approx(expected)
    assert training_error(model, images, labels) == error


def test_fit_learns_records_validation_and_uses_transform():
    model, images, labels = tiny()
    seen = []

    def transform(x, y):
        seen.append(len(x))
        return x

    history = fit(model, images, labels, steps=40, lr=0.05, batch_size=16, warmup=2, val=(images[:32], labels[:32]),
                  transform=transform, generator=torch.Generator().manual_seed(0))
    assert seen == [16] * 40 and history.eval_steps == list(range(4, 41, 4))
    assert len(history.val_error) == len(history.train_loss) == 10
    assert history.final_error < 0.2 and history.final_error == training_error(model, images, labels)
    assert history.train_loss[-1] < history.train_loss[0]


def test_fit_changes_only_trainable_parameters_and_adam_works():
    model, images, labels = tiny()
    model[0].requires_grad_(False)
    frozen = model[0].weight.clone()
    fit(model, images, labels, steps=5, batch_size=16, optimizer="adam", lr=1e-2)
    assert torch.equal(model[0].weight, frozen) and model[0].weight.grad is None
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("kwargs, error, match", [
    ({"steps": 0}, ValueError, r"steps must be an int in \[1"), ({"batch_size": 65}, ValueError, r"batch_size.*\[1, 64\]"),
    ({"lr": float("nan")}, ValueError, "lr must be a finite"), ({"optimizer": "lbfgs"}, ValueError, "optimizer must be"),
    ({"generator": 3}, TypeError, "generator"), ({"val": (1, 2, 3)}, TypeError, "val must be a pair")])
def test_fit_rejects_bad_options(kwargs, error, match):
    model, images, labels = tiny()
    with pytest.raises(error, match=match):
        fit(model, images, labels, **{"steps": 1, "batch_size": 16, **kwargs})


def test_fit_rejects_bad_data_and_nothing_to_train():
    model, images, labels = tiny()
    with pytest.raises(ValueError, match="NaN"):
        fit(model, images.clone().fill_(float("nan")), labels, steps=1, batch_size=16)
    with pytest.raises(ValueError, match="labels must be an int64"):
        fit(model, images, labels.float(), steps=1, batch_size=16)
    with pytest.raises(ValueError, match="nothing to train"):
        fit(model.requires_grad_(False), images, labels, steps=1, batch_size=16)
