"""Tests for cnn_helpers.training.residual (notebook 02): gradient sizes, the identity extension, and the
degradation claim itself.

The last test trains on MNIST-5k for seeds 1 and 2 (notebook 02 runs seed 0): the degradation claim of
notebook 02 must not rest on one lucky seed.
"""

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnn_helpers.core.data import load_mnist
from cnn_helpers.core.repro import seed_everything
from cnn_helpers.nets.smallnets import plain_net, residual_net
from cnn_helpers.training.loop import fit
from cnn_helpers.training.residual import gradient_norms, identity_extension


# ---- gradient norms ---------------------------------------------------------------------------

def test_gradient_norms_match_backward_and_leave_everything_as_found():
    model = plain_net(14).eval()
    model.stem[0].weight.requires_grad_(False)
    model.fc.weight.grad = torch.ones_like(model.fc.weight)
    images, labels = torch.randn(16, 1, 14, 14), torch.randint(0, 10, (16,))
    buffers = copy.deepcopy(dict(model.named_buffers()))
    measured = {measure: gradient_norms(model, images, labels, measure=measure) for measure in ("norm", "rms", "relative")}
    assert not model.training and not model.stem[0].weight.requires_grad
    assert torch.equal(model.fc.weight.grad, torch.ones_like(model.fc.weight))
    assert all(torch.equal(b, buffers[k]) for k, b in model.named_buffers())
    convs = [(k, m) for k, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert all(list(norms) == [k for k, _ in convs] and len(norms) == 13 for norms in measured.values())
    reference = copy.deepcopy(model).train()
    for p in reference.parameters():
        p.requires_grad_(True)
    F.cross_entropy(reference(images), labels).backward()
    weights = [m.weight for _, m in reference.named_modules() if isinstance(m, nn.Conv2d)]
    assert list(measured["norm"].values()) == pytest.approx([w.grad.norm().item() for w in weights], rel=1e-5)
    assert list(measured["rms"].values()) == pytest.approx([w.grad.pow(2).mean().sqrt().item() for w in weights], rel=1e-5)
    assert list(measured["relative"].values()) == pytest.approx([(w.grad.norm() / w.norm()).item() for w in weights], rel=1e-5)
    assert gradient_norms(model, images, labels) == measured["relative"]  # the default compares layers fairly


def test_per_weight_measures_do_not_grow_with_the_layer_size():
    """Hand-computed: a 1-weight and a 16-weight convolution whose every weight gets the same gradient p0."""
    small, large = nn.Conv2d(1, 1, 1, bias=False), nn.Conv2d(1, 16, 1, bias=False)
    head = nn.Linear(16, 2)
    with torch.no_grad():
        small.weight.fill_(1.0)
        large.weight.fill_(1 / 16)
        head.weight.copy_(torch.tensor([[1.0] * 16, [0.0] * 16]))
        head.bias.zero_()
    model = nn.Sequential(small, large, nn.Flatten(), head)
    images, labels = torch.ones(1, 1, 1, 1), torch.tensor([1])
    # logits (1, 0); d loss / d logit0 = p0, so d loss / d large.weight[j] = p0 and d loss / d small.weight = 16 * p0 / 16
    p0 = torch.tensor([1.0, 0.0]).softmax(0)[0].item()
    sizes = {m: list(gradient_norms(model, images, labels, measure=m).values()) for m in ("norm", "rms", "relative")}
    assert sizes["rms"] == pytest.approx([p0, p0], rel=1e-6)                  # per weight: equal
    assert sizes["norm"] == pytest.approx([p0, 4 * p0], rel=1e-6)             # grows with sqrt(number of weights)
    assert sizes["relative"] == pytest.approx([p0 / 1.0, 4 * p0 / 0.25], rel=1e-6)   # |g| / |w|


def test_gradient_norms_restore_state_when_forward_fails():
    model = plain_net(8).eval()
    model.stem[0].weight.requires_grad_(False)
    with pytest.raises(RuntimeError):
        gradient_norms(model, torch.randn(4, 3, 14, 14), torch.zeros(4, dtype=torch.long))
    assert not model.training and not model.stem[0].weight.requires_grad


def test_gradient_norms_bad_input():
    with pytest.raises(ValueError, match="measure"):
        gradient_norms(plain_net(8), torch.randn(2, 1, 8, 8), torch.zeros(2).long(), measure="l1")
    with pytest.raises(ValueError, match="Conv2d"):
        gradient_norms(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), torch.randn(2, 1, 2, 2), torch.zeros(2).long())


def test_plain_gradients_vanish_without_batch_norm_but_not_residual():
    images, labels = torch.randn(64, 1, 14, 14), torch.randint(0, 10, (64,))
    ratios = {}
    for build in (plain_net, residual_net):
        seed_everything(0)
        norms = list(gradient_norms(build(20, batch_norm=False, init="default"), images, labels).values())
        ratios[build.__name__] = norms[0] / norms[-1]
    assert ratios["plain_net"] < 1e-4 and 0.1 < ratios["residual_net"] < 10


# ---- identity extension -----------------------------------------------------------------------

@pytest.mark.parametrize("batch_norm", [True, False])
def test_identity_extension_computes_the_same_function(batch_norm):
    shallow = plain_net(8, batch_norm=batch_norm)
    images, labels = torch.randn(200, 1, 14, 14), torch.randint(0, 10, (200,))
    fit(shallow, images, labels, steps=3, batch_size=50)   # non-trivial BN statistics
    state = copy.deepcopy(shallow.state_dict())
    deep = identity_extension(shallow, 32)
    assert deep.depth == 32 and not deep.training
    assert sum(isinstance(m, nn.Conv2d) for m in deep.modules()) == 31
    with torch.no_grad():
        expected, actual = shallow.eval()(images), deep(images)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    assert F.cross_entropy(actual, labels).item() == pytest.approx(F.cross_entropy(expected, labels).item(), abs=1e-6)
    assert all(torch.equal(v, state[k]) for k, v in shallow.state_dict().items())


def test_identity_extension_bad_input():
    with pytest.raises(TypeError, match="plain"):
        identity_extension(residual_net(8), 20)
    with pytest.raises(ValueError, match="at least"):
        identity_extension(plain_net(20), 8)


# ---- the degradation claim, three seeds -------------------------------------------------------

@pytest.mark.long  # tens of seconds: `make test` starts this file early (conftest.py)
def test_degradation_holds_for_three_seeds():
    """Recipe of notebook 02 (fast mode): MNIST-5k at 14x14, 3 epochs, same optimizer for every net.

    Seed 0 is notebook 02's own fast-mode run (the same nets, recipe and seed; asserted there with 5-point margins,
    and run by the notebook tests), so this test trains seeds 1 and 2: three seeds in all, none trained twice. Only
    the final training error is read, so the whole set is evaluated once, at the end (``eval_every=steps``; the
    training itself is unchanged).
    """
    source = (Path(__file__).resolve().parent.parent / "notebooks" / "02_residual_gradients.ipynb").read_text()
    for recipe in ("load_mnist(size=14)", "DEPTHS = by_mode(fast=(8, 20, 32)", "SEEDS = by_mode(fast=[0]",
                   "steps = 3 * (len(images) // 128)", "fit(model, images, labels, steps=steps"):
        assert recipe in source, f"notebook 02 no longer runs seed 0 of this recipe ({recipe}): add seed 0 back here"
    images, labels = load_mnist(size=14)
    steps = 3 * (len(images) // 128)
    for seed in (1, 2):
        errors = {}
        for name, build, depth in (("plain8", plain_net, 8), ("plain32", plain_net, 32), ("res32", residual_net, 32)):
            generator = seed_everything(seed)
            errors[name] = fit(build(depth), images, labels, steps=steps, eval_every=steps,
                               generator=generator).final_error
        assert errors["plain32"] > errors["plain8"] + 0.03, (seed, errors)
        assert errors["res32"] < errors["plain32"] - 0.03, (seed, errors)
