"""Tests for cnn_helpers.adversarial.evaluation: hand-computed curves on a linear model, transfer-matrix structure,
adversarial training through the shared loop making a small net more robust, state left as found."""

from __future__ import annotations

import helpers
import pytest
import torch
from torch import nn

from cnn_helpers.adversarial.attacks import fgsm, pgd
from cnn_helpers.adversarial.evaluation import (adversarial_transform, attack, eps_curve, fooling_rate, predict,
                                                transfer_matrix)
from cnn_helpers.training import fit
from cnn_helpers.training import top1_accuracy as accuracy


class Linear(nn.Module):
    """Two classes, logits = W x.flatten(): the FGSM margin change is known in closed form."""

    def __init__(self, shape=(3, 4, 5), seed=1):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(2, *shape, generator=torch.Generator().manual_seed(seed)) * 0.1)

    def forward(self, x):
        return x.flatten(1) @ self.weight.flatten(1).T


class Constant(nn.Module):
    """Ignores its input: no attack can change its prediction."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([0.0, 1.0, 0.0]))

    def forward(self, x):
        return self.bias.expand(len(x), 3) + 0 * x.flatten(1)[:, :1]


def photos(n=40, seed=0):
    """Images in [0.3, 0.7]: an FGSM step of at most 0.2 is never clamped."""
    return 0.3 + 0.4 * torch.rand(n, 3, 4, 5, generator=torch.Generator().manual_seed(seed))


def test_fgsm_accuracy_curve_of_a_linear_model_by_hand():
    model, x = Linear(), photos()
    y = predict(model, x)
    eps_values = [0.0, 0.005, 0.01, 0.02, 0.05]
    curve = eps_curve(model, x, y, eps_values, method="fgsm")
    # FGSM lowers the margin s_y - s_other by exactly eps * |w_y - w_other|_1: an image flips when that is larger
    with torch.no_grad():
        logits = model(x)
    margin = (logits.gather(1, y[:, None]) - logits.gather(1, (1 - y)[:, None]))[:, 0]
    l1 = (model.weight[0] - model.weight[1]).detach().abs().sum()
    expected = torch.tensor([(margin > eps * l1).float().mean().item() for eps in eps_values])
    assert torch.allclose(curve, expected) and curve[0] == 1.0 and curve[-1] < 0.5
    assert (curve[1:] <= curve[:-1]).all()


def test_attack_dispatches_and_batches_like_one_call():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 2 * 3, 5)).eval()
    x, y = photos(10), torch.arange(10) % 5
    assert torch.allclose(attack(model, x, y, method="fgsm", eps=0.1, batch_size=3), fgsm(model, x, y, eps=0.1), atol=1e-6)
    ours = attack(model, x, y, eps=0.1, steps=4, batch_size=4, targeted=True)
    assert torch.allclose(ours, pgd(model, x, y, eps=0.1, alpha=2.5 * 0.1 / 4, steps=4, random_start=False,
                                    targeted=True), atol=1e-6)
    assert torch.equal(attack(model, x, y, eps=0), x)


def test_targeted_success_rate_grows_with_eps():
    model, x = Linear(), photos()
    target = 1 - predict(model, x)
    curve = eps_curve(model, x, target, [0.0, 0.02, 0.2], targeted=True, steps=5)
    assert curve[0] == 0.0 and curve[-1] == 1.0 and curve[1] <= curve[2]


def test_curves_count_an_image_fooled_at_a_smaller_budget_at_every_larger_one():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 2 * 3, 10)).eval()
    x = photos(30)
    y, eps_values = predict(model, x), [0.0, 0.03, 0.06, 0.1, 0.2]
    for method in ("fgsm", "pgd"):
        curve = eps_curve(model, x, y, eps_values, method=method, steps=3)
        assert curve[0] == 1.0 and (curve[1:] <= curve[:-1]).all() and curve[-1] < curve[0]
        # each point is at most the accuracy of that budget's attack alone (earlier successes only add)
        alone = torch.tensor([accuracy(model, attack(model, x, y, method=method, eps=e, steps=3, early_stop=True), y)
                              for e in eps_values])
        assert (curve <= alone + 1e-6).all()
    with pytest.raises(ValueError, match="eps_values must not decrease"):
        eps_curve(model, x, y, [0.01, 0.0])


def test_fooling_rate_and_accuracy_by_hand():
    model = Linear()
    x = photos(4)
    y = predict(model, x)
    assert fooling_rate(model, x, x) == 0.0 and accuracy(model, x, y) == 1.0 and accuracy(model, x, 1 - y) == 0.0
    flipped = fgsm(model, x, y, eps=0.2)
    assert fooling_rate(model, x, flipped) == 1.0 - accuracy(model, flipped, y)


def test_transfer_matrix_structure():
    a, b = Linear(seed=1), Linear(seed=1)  # twins: whatever fools one fools the other
    c = Linear(seed=2)
    x = photos()
    matrix = transfer_matrix([a, b, c], x, eps=0.05, steps=5)
    assert matrix.shape == (3, 3) and matrix[0, 0] > 0.5
    assert torch.equal(matrix[0, :2], matrix[0, :1].expand(2)) and torch.equal(matrix[0], matrix[1])
    with_constant = transfer_matrix([a, Constant()], x, eps=0.05, steps=5)
    assert with_constant[:, 1].eq(0).all()  # an input-blind model can't be fooled


def test_adversarial_training_through_fit_makes_a_small_net_robust():
    from cnn_helpers.core.data import load_mnist

    images, labels = load_mnist(size=14, standardize=False)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    train, test = order[:2000], order[4000:4400]
    eps, robust, clean = 0.15, {}, {}
    for kind in ("standard", "adversarial"):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1),
                            nn.ReLU(), nn.Flatten(), nn.Linear(32 * 4 * 4, 10))
        transform = adversarial_transform(net, eps=eps, steps=2, generator=torch.Generator().manual_seed(0))
        fit(net, images[train], labels[train], steps=100, lr=0.2, batch_size=64, eval_every=100,
            transform=transform if kind == "adversarial" else None, generator=torch.Generator().manual_seed(0))
        clean[kind] = accuracy(net, images[test], labels[test])
        robust[kind] = accuracy(net, attack(net, images[test], labels[test], eps=eps, steps=10), labels[test])
    # measured: clean 0.87 -> 0.84, robust (PGD-10) 0.04 -> 0.41
    assert clean["standard"] > 0.8 and clean["adversarial"] > 0.7
    assert robust["standard"] < 0.15 and robust["adversarial"] > robust["standard"] + 0.25, (clean, robust)


def test_helpers_leave_the_model_as_found():
    torch.manual_seed(0)
    net = helpers.mixed_mode(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                                           nn.Linear(4 * 2 * 3, 5)))
    net[4].weight.grad = torch.ones_like(net[4].weight)
    x, y = photos(6), torch.arange(6) % 5
    before = helpers.snapshot(net, x)
    eps_curve(net, x, y, [0.0, 0.1], method="pgd", steps=2)
    transfer_matrix([net, net], x, eps=0.1, steps=2)
    adversarial_transform(net, eps=0.1, steps=2)(x, y)
    helpers.assert_unchanged(before, helpers.snapshot(net, x))


@pytest.mark.parametrize("call, error, match", [
    (lambda m, x, y: attack(m, x, y, method="cw", eps=0.1), ValueError, "method must be one of 'fgsm', 'pgd'"),
    (lambda m, x, y: attack(m, x, y, eps=-1), ValueError, "eps must be >= 0.0"),
    (lambda m, x, y: attack(m, x, y, eps=0.1, batch_size=0), ValueError, "batch_size must be an int"),
    (lambda m, x, y: eps_curve(m, x, y, 0.1), TypeError, "eps_values must be a non-empty list"),
    (lambda m, x, y: transfer_matrix(m, x, eps=0.1), TypeError, "models must be a non-empty list"),
    (lambda m, x, y: fooling_rate(m, x, x[:2]), ValueError, "one shape"),
    (lambda m, x, y: adversarial_transform(m, eps=0.0), ValueError, "eps must be > 0.0"),
])
def test_bad_input_gets_a_clear_error(call, error, match):
    model, x = Linear(), photos(4)
    with pytest.raises(error, match=match):
        call(model, x, predict(model, x))


# --- restarts, the margin loss, outputs that are not class scores (issue 19 and 20) ----------------------------

def conv_net(classes=5):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 2 * 3, classes)).eval()


def test_restarts_keep_each_first_success_and_fool_at_least_as_many():
    model, x = conv_net(), photos(40)
    y = predict(model, x)
    options = dict(eps=0.03, steps=2, random_start=True)
    once = attack(model, x, y, generator=torch.Generator().manual_seed(0), **options)
    five = attack(model, x, y, restarts=5, generator=torch.Generator().manual_seed(0), **options)
    fooled_once, fooled_five = predict(model, once) != y, predict(model, five) != y
    assert torch.equal(five[fooled_once], once[fooled_once])  # the first run's successes are kept as they are
    assert (fooled_five | ~fooled_once).all() and fooled_five.sum() > fooled_once.sum()  # and restarts add more
    assert (five - x).abs().max() <= 0.03 + 1e-6 and five.min() >= 0 and five.max() <= 1


def test_margin_loss_reaches_the_attack():
    model, x = conv_net(), photos(8)
    y = predict(model, x)
    ce = attack(model, x, y, eps=0.05, steps=3)
    margin = attack(model, x, y, eps=0.05, steps=3, loss="margin")
    assert torch.equal(margin, pgd(model, x, y, eps=0.05, alpha=2.5 * 0.05 / 3, steps=3, random_start=False,
                                   loss="margin"))
    assert not torch.equal(margin, ce)


class Segmenter(nn.Module):
    """(N, classes, H, W) scores per pixel: a segmentation model, not a classifier."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize("call", [
    lambda m, x: predict(m, x),
    lambda m, x: attack(m, x, 0, eps=0.1, steps=1),
    lambda m, x: attack(m, x, 0, eps=0.0),  # eps = 0 returns early, but only after the checks
    lambda m, x: eps_curve(m, x, 0, [0.0, 0.1]),
    lambda m, x: fooling_rate(m, x, x),
    lambda m, x: transfer_matrix([m, m], x, eps=0.1, steps=1),
])
def test_a_segmentation_output_gets_a_clear_error(call):
    x = photos(5)  # (5, 3, 4, 5): a segmentation output (5, 4, 4, 5) whose argmax(1) would look like labels
    with pytest.raises(ValueError, match=r"class scores \(logits\) of shape \(\d+, classes\).*got shape \(\d+, 4, 4, 5\)"):
        call(Segmenter().eval(), x)


@pytest.mark.parametrize("call, error, match", [
    (lambda m, x, y: attack(m, x, 7, eps=0.0), ValueError, r"labels must be a class index in \[0, 1\]"),
    (lambda m, x, y: attack(m, x, y.float(), eps=0.0), TypeError, "labels must hold integer class indices"),
    (lambda m, x, y: attack(m, x, y, eps=0.0, targeted="yes"), TypeError, "targeted must be True or False"),
    (lambda m, x, y: attack(m, x, y, eps=0.0, alpha=-1.0), ValueError, "alpha must be > 0.0"),
    (lambda m, x, y: attack(m, x, y, eps=0.0, loss="cw"), ValueError, "loss must be one of"),
    (lambda m, x, y: attack(m, x, y, eps=0.0, generator=1), TypeError, "generator must be"),
    (lambda m, x, y: attack(m, x, y, eps=0.1, restarts=3), ValueError, "restarts=3 needs method='pgd' and random_start"),
    (lambda m, x, y: attack(m, x, y, eps=0.1, restarts=0), ValueError, "restarts must be an int"),
    (lambda m, x, y: attack(m, x, y, eps=0.1, random_start=True, steps=10**5, restarts=10**7), ValueError,
     "restarts=10000000 would take at least"),
])
def test_attack_checks_every_argument_also_at_eps_zero(call, error, match):
    model, x = Linear(), photos(4)
    with pytest.raises(error, match=match):
        call(model, x, predict(model, x))
