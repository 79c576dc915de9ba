"""The shared training loop: what it optimizes, what it records, what it leaves alone."""

import copy

import pytest
import torch
from torch import nn

from cnn_helpers.core.repro import seed_everything
from cnn_helpers.nets.smallnets import plain_net, residual_net
from cnn_helpers.training.loop import History, as_maps, evaluate, fit, top1_accuracy, training_error, warmup_cosine


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


# ---- schedule, hand-computed errors, reproducibility (first written for notebook 02) -----------------

def test_warmup_cosine_schedule():
    assert warmup_cosine(0, steps=100, warmup=20) == pytest.approx(1 / 20)
    assert warmup_cosine(19, steps=100, warmup=20) == pytest.approx(1.0)
    assert warmup_cosine(20, steps=100, warmup=20) == pytest.approx(1.0)
    assert warmup_cosine(60, steps=100, warmup=20) == pytest.approx(0.5)
    assert warmup_cosine(100, steps=100, warmup=20) == pytest.approx(0.0)


class Constant(nn.Module):
    """Always predicts class 1."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.tensor([0.0, 1.0]).expand(len(x), 2) + 0 * self.w


def test_training_error_hand_computed_and_mode_restored():
    model = Constant().train()
    error = training_error(model, torch.zeros(4, 1, 2, 2), torch.tensor([1, 0, 1, 1]), batch_size=3)
    assert error == 0.25 and model.training


def test_fit_records_history_and_restores_mode(generator):
    images, labels = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    model = plain_net(8).eval()
    before = copy.deepcopy(model.state_dict())
    calls = []
    history = fit(model, images, labels, steps=5, batch_size=16, eval_every=2, generator=generator,
                    callback=lambda step, m, loss: calls.append(step))
    assert calls == [1, 2, 3, 4, 5] and not model.training
    assert len(history.batch_loss) == len(history.batch_error) == 5
    assert history.eval_steps == [2, 4, 5]
    assert history.final_error == training_error(model, images, labels)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_fit_is_reproducible_with_a_generator():
    images, labels = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    results = []
    for _ in range(2):
        seed_everything(3)
        model = residual_net(8)
        fit(model, images, labels, steps=3, batch_size=16, generator=torch.Generator().manual_seed(1))
        results.append(model(images))
    assert torch.equal(*results)


def test_fit_bad_input():
    model = plain_net(8)
    with pytest.raises(ValueError, match="steps"):
        fit(model, torch.randn(8, 1, 8, 8), torch.zeros(8, dtype=torch.long), steps=0)
    with pytest.raises(ValueError, match="labels"):
        fit(model, torch.randn(8, 1, 8, 8), torch.zeros(8), steps=1)
    with pytest.raises(ValueError, match="images"):
        fit(model, torch.randn(8, 8, 8), torch.zeros(8, dtype=torch.long), steps=1)


# ---- top-1 accuracy and the History's views ---------------------------------------------------------------------

def test_top1_accuracy_on_images_and_features_with_int_or_tensor_labels():
    model = Constant()
    images = torch.zeros(4, 1, 2, 2)
    assert top1_accuracy(model, images, torch.tensor([1, 0, 1, 1])) == 0.75
    assert top1_accuracy(model, images, 1) == 1.0 and top1_accuracy(model, images, 0) == 0.0  # a target: success rate
    probe = nn.Sequential(nn.Flatten(), nn.Linear(3, 2))
    with torch.no_grad():
        probe[1].weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]))
        probe[1].bias.zero_()
    features = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 5.0], [3.0, 0.0, 0.0]])  # (N, D): classes 0, 1, 0
    assert as_maps(features).shape == (3, 3, 1, 1)
    assert top1_accuracy(probe, features, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="labels must be a class index in \\[0, 1\\]"):
        top1_accuracy(model, images, 2)
    with pytest.raises(ValueError, match="inputs hold NaN"):
        top1_accuracy(probe, features.clone().fill_(float("nan")), 0)


def test_history_accuracies_and_epochs():
    history = History(eval_steps=[3, 6], train_error=[0.5, 0.25], val_error=[0.75, 0.5])
    assert history.train_accuracy == [0.5, 0.75] and history.val_accuracy == [0.25, 0.5]
    with pytest.raises(ValueError, match="steps_per_epoch"):
        history.epochs
    history.steps_per_epoch = 3
    assert history.epochs == [1, 2]


def test_evaluate_estimates_the_memory_of_huge_photos_before_the_work():
    # expanded zeros take no memory; the input and three 64-channel maps: 195 floats per pixel (issue 20, #4)
    import warnings

    from cnn_helpers.core.memory import CostWarning

    model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(64, 2))
    photo, labels = torch.zeros(1, 3, 1, 1).expand(1, 3, 5000, 5000), torch.tensor([1])
    with pytest.raises(ValueError, match=r"evaluating 1 images of 5000x5000 px \(batch_size=1000\) would allocate "
                                         r"about 18 GiB; use smaller images"):
        evaluate(model, photo, labels)
    with pytest.raises(ValueError, match="top1_accuracy|evaluating 1 images of 5000x5000"):
        top1_accuracy(model, photo, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CostWarning)  # the warning stops the call before the work
        with pytest.raises(CostWarning, match="evaluating 1 images of 2048x2048 px .* about 3.0 GiB"):
            evaluate(model, photo[..., :2048, :2048], labels)
    assert evaluate(model, photo[..., :8, :8], labels)[0] in (0.0, 1.0)


def test_balanced_accuracy_hand_computed_and_as_sklearn():
    from sklearn.metrics import balanced_accuracy_score

    from cnn_helpers.training.loop import balanced_accuracy

    model = Constant()  # always class 1
    images = torch.zeros(4, 1, 2, 2)
    labels = torch.tensor([1, 0, 1, 1])
    assert top1_accuracy(model, images, labels) == 0.75
    assert balanced_accuracy(model, images, labels) == 0.5  # class 1 all right, class 0 all wrong
    g = torch.Generator().manual_seed(0)
    probe = nn.Sequential(nn.Flatten(), nn.Linear(6, 4))
    features, labels = torch.randn(50, 6, generator=g), torch.randint(0, 4, (50,), generator=g)
    predicted = probe(features).argmax(1)
    assert balanced_accuracy(probe, features, labels) == pytest.approx(balanced_accuracy_score(labels, predicted))
    balanced = torch.arange(4).repeat(5)
    assert balanced_accuracy(probe, features[:20], balanced) == pytest.approx(top1_accuracy(probe, features[:20], balanced))
    with pytest.raises(ValueError, match="labels"):
        balanced_accuracy(probe, features, labels[:3])
