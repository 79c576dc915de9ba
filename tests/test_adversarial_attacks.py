"""Tests for cnn_helpers.adversarial: torchattacks 3.3.0 as the oracle, hand-computed linear cases, the budget and
[0, 1] for every attack, model and input left as found (also on error), and clear errors for bad input."""

from __future__ import annotations

import helpers
import pytest
import torch
from torch import nn

from cnn_helpers.adversarial.attacks import deepfool, fgsm, pgd, project
from cnn_helpers.core.memory import CostWarning

torchattacks = pytest.importorskip("torchattacks")


def small_net(classes: int = 10) -> nn.Sequential:
    """Conv-BN-ReLU net for 16 x 16 images with non-trivial batch-norm statistics, in eval mode; its weights are
    scaled up so that random images get different, well-separated predictions (no ties between logits)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, classes))
    helpers.randomize_batch_norm(net, torch.Generator().manual_seed(1))
    with torch.no_grad():
        for layer, scale in ((net[0], 3), (net[3], 3), (net[6], 10)):
            layer.weight.mul_(scale)
    return net.eval()


class Linear(nn.Module):
    """logits = W x.flatten() + b: every gradient is known in closed form."""

    def __init__(self, shape=(3, 4, 5), classes=2, scale=0.1):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.weight = nn.Parameter(torch.randn(classes, *shape, generator=g) * scale)
        self.bias = nn.Parameter(torch.randn(classes, generator=g) * scale)

    def forward(self, x):
        return x.flatten(1) @ self.weight.flatten(1).T + self.bias


def images(n=6, h=16, w=16, seed=0, low=0.0, high=1.0):
    return low + (high - low) * torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def targeted(attack):
    attack.set_mode_targeted_by_function(lambda inputs, labels: labels)  # the labels passed are the targets
    return attack


@pytest.fixture
def setup():
    net, x = small_net(), images()
    with torch.no_grad():
        y = net(x).argmax(1)
    return net, x, y


# --- torchattacks as the oracle: identical images without random start -----------------------------

@pytest.mark.parametrize("eps", [0.03, 8 / 255])
def test_fgsm_equals_torchattacks(setup, eps, capsys):
    net, x, y = setup
    assert torch.equal(fgsm(net, x, y, eps=eps), torchattacks.FGSM(net, eps=eps)(x, y))
    target = (y + 3) % 10
    assert torch.equal(fgsm(net, x, target, eps=eps, targeted=True), targeted(torchattacks.FGSM(net, eps=eps))(x, target))


@pytest.mark.parametrize("eps, alpha, steps", [(8 / 255, 2 / 255, 10), (0.1, 0.01, 7)])
def test_pgd_linf_equals_torchattacks(setup, eps, alpha, steps, capsys):
    net, x, y = setup
    ours = pgd(net, x, y, eps=eps, alpha=alpha, steps=steps, random_start=False, fold=False)
    assert torch.equal(ours, torchattacks.PGD(net, eps=eps, alpha=alpha, steps=steps, random_start=False)(x, y))
    target = (y + 5) % 10
    ours = pgd(net, x, target, eps=eps, alpha=alpha, steps=steps, random_start=False, targeted=True, fold=False)
    theirs = targeted(torchattacks.PGD(net, eps=eps, alpha=alpha, steps=steps, random_start=False))(x, target)
    assert torch.equal(ours, theirs)


def test_pgd_l2_equals_torchattacks(setup, capsys):
    net, x, y = setup
    for eps, alpha in ((0.5, 0.1), (2.0, 0.5)):
        ours = pgd(net, x, y, eps=eps, alpha=alpha, steps=10, norm="l2", random_start=False, fold=False)
        assert torch.equal(ours, torchattacks.PGDL2(net, eps=eps, alpha=alpha, steps=10, random_start=False)(x, y))
    target = (y + 1) % 10
    ours = pgd(net, x, target, eps=1.0, alpha=0.2, steps=10, norm="l2", random_start=False, targeted=True,
               fold=False)
    theirs = targeted(torchattacks.PGDL2(net, eps=1.0, alpha=0.2, steps=10, random_start=False))(x, target)
    assert torch.equal(ours, theirs)


# --- PGD's default on a batch-norm-folded copy: the same attack up to float rounding -------------------------------

FOLD_CASES = {  # the options of the torchattacks identity tests above, and early stop and the margin loss
    "linf": dict(eps=8 / 255, alpha=2 / 255, steps=10), "linf 7 steps": dict(eps=0.1, alpha=0.01, steps=7),
    "targeted": dict(eps=8 / 255, alpha=2 / 255, steps=10, targeted=True),
    "l2": dict(eps=0.5, alpha=0.2, steps=10, norm="l2"), "margin": dict(eps=8 / 255, alpha=2 / 255, steps=10, loss="margin"),
    "early stop": dict(eps=8 / 255, alpha=1 / 255, steps=10, early_stop=True),
}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("case", FOLD_CASES)
def test_folded_pgd_agrees_with_unfolded_pgd(case, seed):
    net, x, kwargs = small_net(), images(32, seed=seed), FOLD_CASES[case]
    with torch.no_grad():
        y = net(x).argmax(1)
    labels = (y + 5) % 10 if kwargs.get("targeted") else y
    exact = pgd(net, x, labels, random_start=False, fold=False, **kwargs)
    folded = pgd(net, x, labels, random_start=False, **kwargs)
    with torch.no_grad():
        assert torch.equal(net(folded).argmax(1), net(exact).argmax(1))  # the same predictions, so the same success
    # measured on these 3 seeds x 32 images: L-inf 0 pixels differ (no gradient sign flipped); L2 14-16 % of the
    # pixels, by at most 1.2e-7 (rounding of the step's length). A flipped sign moves a pixel by alpha: allow 1 %.
    if kwargs.get("norm") == "l2":
        assert (folded - exact).abs().max() <= 1e-5
    else:
        assert (folded != exact).float().mean() <= 0.01


def test_pgd_folds_once_on_one_image_after_the_first_step(monkeypatch):
    import cnn_helpers.adversarial.attacks as attacks
    from cnn_helpers.core.fold import fold_batch_norm
    calls = []

    def spy(model, images, **kwargs):
        calls.append((model, images.shape, fold_batch_norm(model, images, **kwargs)))
        return calls[-1][2]
    monkeypatch.setattr(attacks, "fold_batch_norm", spy)
    net, x = small_net(), images()
    pgd(net, x, 0, eps=0.1, alpha=0.05, steps=3)
    assert len(calls) == 1 and calls[0][0] is net and calls[0][1] == (1, 3, 16, 16)
    assert calls[0][2] is not net and not any(isinstance(m, nn.BatchNorm2d) for m in calls[0][2].modules())
    for options in (dict(steps=1), dict(steps=0), dict(steps=3, fold=False)):  # one step or none: nothing to gain
        pgd(net, x, 0, eps=0.1, alpha=0.05, **options)
    assert len(calls) == 1


def test_pgd_runs_the_model_itself_where_it_has_hooks_or_no_batch_norm(setup):
    net, x, y = setup
    seen = []
    handle = net[2].register_forward_hook(lambda _m, _a, out: seen.append(out.shape[0]))
    try:
        kwargs = dict(eps=8 / 255, alpha=2 / 255, steps=4, random_start=False)
        assert torch.equal(pgd(net, x, y, **kwargs), pgd(net, x, y, fold=False, **kwargs))
        assert seen == [6] * 8  # the user's hook ran in every step of both calls
    finally:
        handle.remove()
    linear, x = Linear(), images(4, 4, 5)
    kwargs = dict(eps=0.1, alpha=0.02, steps=4, random_start=False)
    assert torch.equal(pgd(linear, x, 0, **kwargs), pgd(linear, x, 0, fold=False, **kwargs))


def test_deepfool_equals_torchattacks(setup):
    net, x, y = setup
    theirs = torchattacks.DeepFool(net, steps=50, overshoot=0.02)(x, y)
    for i in range(len(x)):  # torchattacks attacks one image at a time: identical for each image alone
        assert torch.equal(deepfool(net, x[i:i + 1], y[i:i + 1], classes=None), theirs[i:i + 1])
    # a batch sums the convolutions in another order (rounding) but takes the same steps
    assert torch.allclose(deepfool(net, x, y, classes=None), theirs, atol=1e-6, rtol=0)
    assert (net(theirs).argmax(1) != y).all()


# --- hand-computed cases ------------------------------------------------------------------------------

def test_fgsm_on_a_linear_model_follows_the_weight_difference():
    model, x = Linear(), images(4, 4, 5, low=0.3, high=0.7)
    y = torch.tensor([0, 1, 0, 1])
    # d CE / dx = p_other (w_other - w_y): its sign is the sign of the weight difference
    direction = (model.weight[1 - y] - model.weight[y]).detach().sign()
    assert torch.equal(fgsm(model, x, y, eps=0.1), (x + 0.1 * direction).clamp(0, 1))
    assert torch.equal(fgsm(model, x, y, eps=0.1, targeted=True), (x - 0.1 * direction).clamp(0, 1))


def test_deepfool_on_a_linear_model_takes_the_shortest_way_across():
    model, x = Linear(), images(3, 4, 5, low=0.4, high=0.6)
    with torch.no_grad():
        y = model(x).argmax(1)
    adv = deepfool(model, x, y, overshoot=0.02)
    w = (model.weight[1 - y] - model.weight[y]).detach().flatten(1)
    with torch.no_grad():
        logits = model(x)
    margin = logits.gather(1, y[:, None])[:, 0] - logits.gather(1, (1 - y)[:, None])[:, 0]
    # the boundary of an affine classifier is a plane: one step of length margin / |w|, times 1 + overshoot
    expected = x + 1.02 * (margin / w.norm(dim=1) ** 2).view(-1, 1, 1, 1) * w.view_as(x)
    assert torch.allclose(adv, expected, atol=1e-6)
    assert torch.allclose((adv - x).flatten(1).norm(dim=1), 1.02 * margin / w.norm(dim=1), rtol=1e-5)
    assert (model(adv).argmax(1) != y).all()


def test_project_linf_and_l2_by_hand():
    x = torch.full((2, 1, 1, 2), 0.5)
    adv = torch.tensor([[0.9, 0.45], [0.2, 0.5]]).view(2, 1, 1, 2)
    assert torch.allclose(project(adv, x, eps=0.1), torch.tensor([[0.6, 0.45], [0.4, 0.5]]).view(2, 1, 1, 2))
    # L2: change (0.4, -0.05) is longer than 0.2 -> scaled to length 0.2; (-0.3, 0) -> (-0.2, 0)
    out = project(adv, x, eps=0.2, norm="l2") - x
    assert torch.allclose(out.flatten(1).norm(dim=1), torch.tensor([0.2, 0.2]))
    assert torch.allclose(out[0].flatten(), torch.tensor([0.4, -0.05]) * 0.2 / torch.tensor([0.4, -0.05]).norm())
    assert torch.equal(project(x + 0.01, x, eps=0.2, norm="l2"), x + 0.01)  # inside the ball: unchanged
    assert torch.equal(project(x, x, eps=0.0, norm="l2"), x)  # no 0 / 0


# --- invariants: budget and box, reproducibility, success -------------------------------------------------

ATTACKS = {
    "fgsm": lambda m, x, y, eps: fgsm(m, x, y, eps=eps),
    "fgsm targeted": lambda m, x, y, eps: fgsm(m, x, (y + 1) % 10, eps=eps, targeted=True),
    "pgd": lambda m, x, y, eps: pgd(m, x, y, eps=eps, alpha=max(eps, 0.01) / 3, steps=5),
    "bim targeted": lambda m, x, y, eps: pgd(m, x, (y + 1) % 10, eps=eps, alpha=max(eps, 0.01) / 3, steps=5,
                                             random_start=False, targeted=True),
}


@pytest.mark.parametrize("name", ATTACKS)
@pytest.mark.parametrize("eps", [0.0, 1 / 255, 0.3, 2.0])
def test_linf_attacks_stay_within_budget_and_box(setup, name, eps):
    net, x, y = setup
    adv = ATTACKS[name](net, x, y, eps)
    assert adv.shape == x.shape and not adv.requires_grad and adv.min() >= 0 and adv.max() <= 1
    assert (adv - x).abs().max() <= eps + 1e-6
    if eps == 0:
        assert torch.equal(adv, x)


@pytest.mark.parametrize("eps", [0.0, 0.5, 3.0, 100.0])
def test_l2_attacks_stay_within_budget_and_box(setup, eps):
    net, x, y = setup
    for random_start in (False, True):
        adv = pgd(net, x, y, eps=eps, alpha=max(eps, 0.1) / 4, steps=5, norm="l2", random_start=random_start)
        assert adv.min() >= 0 and adv.max() <= 1
        assert ((adv - x).flatten(1).norm(dim=1) <= eps * (1 + 1e-5) + 1e-6).all()
    adv = deepfool(net, x, y)
    assert adv.min() >= 0 and adv.max() <= 1 and (net(adv).argmax(1) != y).all()


def test_random_start_is_reproducible_and_within_budget(setup):
    net, x, y = setup
    kwargs = dict(eps=4 / 255, alpha=1 / 255, steps=0)
    a = pgd(net, x, y, generator=torch.Generator().manual_seed(3), **kwargs)
    b = pgd(net, x, y, generator=torch.Generator().manual_seed(3), **kwargs)
    c = pgd(net, x, y, generator=torch.Generator().manual_seed(4), **kwargs)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a - x).abs().max() <= 4 / 255 + 1e-6 and (a - x).abs().max() > 3 / 255  # uniform in the box


def test_pgd_is_stronger_than_fgsm_and_targeted_pgd_reaches_the_target(setup):
    net, x, y = setup
    eps = 0.05
    with torch.no_grad():
        assert (net(pgd(net, x, y, eps=eps, alpha=0.01, steps=20)).argmax(1) != y).float().mean() \
            >= (net(fgsm(net, x, y, eps=eps)).argmax(1) != y).float().mean()
    target = (y + 4) % 10
    adv = pgd(net, x, target, eps=0.3, alpha=0.02, steps=40, targeted=True, random_start=False)
    assert (net(adv).argmax(1) == target).all()


def test_early_stop_leaves_each_image_at_its_first_success():
    model, x = Linear(), images(8, 4, 5, low=0.3, high=0.7)
    with torch.no_grad():
        y = model(x).argmax(1)
    kwargs = dict(eps=0.02, alpha=0.002, steps=12, random_start=False)
    full, early = pgd(model, x, y, **kwargs), pgd(model, x, y, early_stop=True, **kwargs)
    with torch.no_grad():
        fooled = model(early).argmax(1) != y
    assert fooled.any() and (~fooled).any()  # some flip within the budget, some don't
    assert torch.equal(early[~fooled], full[~fooled])  # never successful: the same steps as without early stop
    assert ((early - x).abs().amax(dim=(1, 2, 3)) < (full - x).abs().amax(dim=(1, 2, 3)))[fooled].all()
    # already "successful" at the start (a wrong label): left exactly as it was
    assert torch.equal(pgd(model, x, 1 - y, early_stop=True, **kwargs), x)


def test_deepfool_top_classes_agree_with_all_classes_on_ten_classes(setup):
    net, x, y = setup
    assert torch.allclose(deepfool(net, x, y, classes=10), deepfool(net, x, y, classes=None), atol=1e-6)
    few = deepfool(net, x, y, classes=3)
    assert (net(few).argmax(1) != y).all()


def test_a_wrongly_labelled_image_is_left_alone_by_deepfool(setup):
    net, x, y = setup
    assert torch.equal(deepfool(net, x, (y + 1) % 10), x)


# --- state: model and inputs as found, also inside no_grad / inference_mode and on error --------------

CALLS = {
    "fgsm": lambda m, x, y: fgsm(m, x, y, eps=0.1),
    "pgd": lambda m, x, y: pgd(m, x, y, eps=0.1, alpha=0.05, steps=2, generator=torch.Generator().manual_seed(0)),
    "pgd l2": lambda m, x, y: pgd(m, x, y, eps=0.5, alpha=0.2, steps=2, norm="l2", generator=torch.Generator().manual_seed(0)),
    "deepfool": lambda m, x, y: deepfool(m, x, y, steps=2, classes=3),
}


@pytest.mark.parametrize("name", CALLS)
def test_model_and_inputs_are_left_as_found(name):
    net = helpers.mixed_mode(small_net())
    for p in net[0].parameters():
        p.requires_grad_(False)
    net[3].weight.grad = torch.ones_like(net[3].weight)
    x = images().requires_grad_(True)
    x.grad = torch.full_like(x, 2.0)
    y = torch.arange(6)
    before = helpers.snapshot(net, x)
    adv = CALLS[name](net, x, y)
    assert adv.grad_fn is None and not adv.requires_grad
    helpers.assert_unchanged(before, helpers.snapshot(net, x))
    with pytest.raises(ValueError, match="labels must be a class index"):
        CALLS[name](net, x, torch.full((6,), 10))
    helpers.assert_unchanged(before, helpers.snapshot(net, x))


@pytest.mark.parametrize("name", CALLS)
def test_attacks_work_inside_no_grad_and_inference_mode(setup, name):
    net, x, y = setup
    expected = CALLS[name](net, x, y)
    with torch.no_grad():
        assert torch.equal(CALLS[name](net, x, y), expected)
    with torch.inference_mode():
        assert torch.equal(CALLS[name](net, x.clone(), y), expected)


def test_grayscale_images_and_an_int_label_work():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)).eval()
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    adv = pgd(net, x, 7, eps=0.1, alpha=0.05, steps=2)
    assert adv.shape == (3, 1, 8, 8) and (adv - x).abs().max() <= 0.1 + 1e-6


# --- bad input ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, error, match", [
    (lambda m, x, y: fgsm(m, x, y, eps=-0.1), ValueError, "eps must be >= 0.0"),
    (lambda m, x, y: fgsm(m, x, y, eps=float("nan")), ValueError, "eps must be a finite"),
    (lambda m, x, y: fgsm(m, x * 2, y, eps=0.1), ValueError, r"images must have values in \[0, 1\]"),
    (lambda m, x, y: fgsm(m, x[0], y, eps=0.1), ValueError, "4 dimensions"),
    (lambda m, x, y: fgsm(m, x, y.float(), eps=0.1), TypeError, "labels must hold integer class indices"),
    (lambda m, x, y: fgsm(m, x, y[:2], eps=0.1), ValueError, r"labels must be an int or have shape \(6,\)"),
    (lambda m, x, y: fgsm(m, x, -1, eps=0.1), ValueError, r"labels must be a class index in \[0, 9\]"),
    (lambda m, x, y: fgsm(m, x, y, eps=0.1, targeted=1), TypeError, "targeted must be True or False"),
    (lambda m, x, y: fgsm("net", x, y, eps=0.1), TypeError, "model must be a torch.nn.Module"),
    (lambda m, x, y: pgd(m, x, y, eps=0.1, alpha=0, steps=3), ValueError, "alpha must be > 0.0"),
    (lambda m, x, y: pgd(m, x, y, eps=0.1, alpha=0.1, steps=-1), ValueError, "steps must be an int"),
    (lambda m, x, y: pgd(m, x, y, eps=0.1, alpha=0.1, steps=2, norm="L2"), ValueError, "norm must be one of 'linf', 'l2'"),
    (lambda m, x, y: pgd(m, x, y, eps=0.1, alpha=0.1, steps=2, generator=0), TypeError, "generator must be"),
    (lambda m, x, y: deepfool(m, x, y, classes=1), ValueError, r"classes must be an int in \[2"),
    (lambda m, x, y: deepfool(m, x, y, overshoot=-1), ValueError, "overshoot must be >= 0.0"),
    (lambda m, x, y: project(x, x, eps=-1), ValueError, "eps must be >= 0.0"),
])
def test_bad_input_gets_a_clear_error(setup, call, error, match):
    net, x, y = setup
    with pytest.raises(error, match=match):
        call(net, x, y)


def test_deepfool_warns_about_and_refuses_a_huge_jacobian():
    net = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 1000)).eval()
    x = torch.rand(2, 3, 256, 256)  # 1000 gradients of 2 x 3 x 256 x 256 floats: 1.5 GiB
    with pytest.warns(CostWarning, match="1.5 GiB; use fewer classes"):
        deepfool(net, x, 0, classes=None, steps=0)
    with pytest.raises(ValueError, match="8.8 GiB; use fewer classes"):  # 12 images: above the 8 GiB limit
        deepfool(net, x.repeat(6, 1, 1, 1), 0, classes=None)


def test_iterative_attacks_refuse_a_day_of_work(setup):
    net, x, y = setup
    with pytest.raises(ValueError, match="pgd with steps=1000000000000 would take about"):
        pgd(net, x, y, eps=0.1, alpha=0.01, steps=10**12)
    with pytest.raises(ValueError, match="deepfool with steps=1000000000000"):
        deepfool(net, x, y, steps=10**12)
    tiny = nn.Sequential(nn.Flatten(), nn.Linear(3, 2))  # next to no compute: the loop's fixed cost per step counts
    with pytest.raises(ValueError, match="pgd with steps=1000000000 would take at least"):
        pgd(tiny, torch.rand(1, 3, 1, 1), 0, eps=0.1, alpha=0.01, steps=10**9)
    with pytest.raises(ValueError, match="deepfool with steps=1000000000 would take at least"):
        deepfool(tiny, torch.rand(1, 3, 1, 1), 0, steps=10**9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_attacks_follow_the_input_to_cuda(setup):
    net, x, y = setup
    gpu = small_net().cuda()
    for name, call in CALLS.items():
        on_cpu, on_gpu = call(net, x, y), call(gpu, x.cuda(), y.cuda())
        assert on_gpu.device.type == "cuda"
        # same steps; kernels differ in rounding, which can flip the sign of a near-zero gradient value
        assert (on_gpu.cpu() - on_cpu).abs().gt(1e-4).float().mean() < 0.01, name


# --- model outputs that are not class scores (issue 20, class 6) ------------------------------------------------

class Segmenter(nn.Module):
    """A segmentation-shaped output: (N, classes, H, W) scores per pixel, not per image."""

    def __init__(self, classes=4):
        super().__init__()
        self.conv = nn.Conv2d(3, classes, 1)

    def forward(self, x):
        return self.conv(x)


def one_logit():
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 1)).eval()


@pytest.mark.parametrize("name", ["fgsm", "pgd", "deepfool"])
@pytest.mark.parametrize("model, match", [
    (Segmenter(), r"class scores \(logits\) of shape \(6, classes\).*got shape \(6, 4, 16, 16\)"),
    (one_logit(), r"classes >= 2, got shape \(6, 1\); a one-logit \(sigmoid\) model"),
    (nn.Sequential(nn.Flatten(), nn.Linear(768, 3), nn.Flatten(0)), r"got shape \(18,\)"),
])
def test_an_output_that_is_not_class_scores_gets_a_clear_error(name, model, match):
    x = images()
    with pytest.raises(ValueError, match=match):
        CALLS[name](model.eval(), x, torch.zeros(6, dtype=torch.long))


def test_a_tuple_output_gets_a_clear_error():
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(768, 3)

        def forward(self, x):
            out = self.fc(x.flatten(1))
            return out, out

    with pytest.raises(ValueError, match="class scores .* got tuple"):
        pgd(Pair(), images(), 0, eps=0.1, alpha=0.1, steps=1)


# --- the margin loss (Carlini & Wagner) ----------------------------------------------------------------------

def test_margin_pgd_step_on_a_linear_model_follows_the_runner_up_by_hand():
    net, x = Linear(classes=3, scale=1.0), images(4, 4, 5, low=0.3, high=0.7)
    with torch.no_grad():
        logits = net(x)
    y = logits.argmax(1)
    runner_up = logits.scatter(1, y[:, None], float("-inf")).argmax(1)
    w = net.weight
    # untargeted margin loss -(f_y - f_runner-up): its gradient is w_runner-up - w_y for every image
    expected = (x + 0.05 * (w[runner_up] - w[y]).sign()).clamp(0, 1)
    adv = pgd(net, x, y, eps=0.1, alpha=0.05, steps=1, random_start=False, loss="margin")
    assert torch.allclose(adv, expected, atol=1e-6)
    towards = pgd(net, x, runner_up, eps=0.1, alpha=0.05, steps=1, random_start=False, targeted=True, loss="margin")
    assert torch.allclose(towards, expected, atol=1e-6)  # targeted at the runner-up: the same direction


def test_margin_loss_keeps_climbing_where_cross_entropy_saturates():
    # a confident linear model: cross-entropy's gradient is ~0 (softmax saturated, float32), the margin's is not
    net, x = Linear(classes=3, scale=1.0), images(4, 4, 5, low=0.3, high=0.7)
    with torch.no_grad():
        net.bias.copy_(torch.tensor([200.0, 0.0, 0.0]))
    y = torch.zeros(4, dtype=torch.long)
    ce = pgd(net, x, y, eps=0.1, alpha=0.05, steps=1, random_start=False)
    margin = pgd(net, x, y, eps=0.1, alpha=0.05, steps=1, random_start=False, loss="margin")
    assert torch.equal(ce, x)  # sign(0) = 0: no step at all
    assert (margin - x).abs().amax() > 0.04


def test_unknown_loss_is_refused(setup):
    net, x, y = setup
    with pytest.raises(ValueError, match="loss must be one of 'ce', 'margin'"):
        pgd(net, x, y, eps=0.1, alpha=0.1, steps=1, loss="cw")


def test_early_stop_on_the_folded_copy_ignores_a_verdict_that_rounding_could_decide(monkeypatch):
    """The folded copy differs from the model by float rounding: an image it calls fooled by a hair (here: the label's
    logit just below the best other one) may not be fooled by the model itself, so the attack goes on with it."""
    import cnn_helpers.adversarial.attacks as attacks

    class Hair(nn.Module):  # the model, except that the label's logit sits 1e-6 of the largest below the best other
        def __init__(self, net, labels):
            super().__init__()
            self.net, self.labels = net, labels

        def forward(self, x):
            logits = self.net(x)
            others = logits.scatter(1, self.labels[:, None], float("-inf")).amax(dim=1)
            hair = others - 1e-6 * logits.detach().abs().amax(dim=1)
            return logits.scatter(1, self.labels[:, None], hair[:, None])
    net, x = small_net(), images(4)
    with torch.no_grad():
        y = net(x).argmax(1)
    kwargs = dict(eps=0.05, alpha=0.01, random_start=False, early_stop=True)
    monkeypatch.setattr(attacks, "fold_batch_norm", lambda model, images, **_: Hair(model, y))
    with torch.no_grad():
        assert (Hair(net, y)(x).argmax(1) != y).all()  # the stand-in copy calls every image fooled, by a hair
    after_one = pgd(net, x, y, steps=1, **kwargs)
    assert not torch.equal(pgd(net, x, y, steps=3, **kwargs), after_one)  # ... yet the attack went on after step 1
