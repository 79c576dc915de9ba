"""Every public function that takes a model leaves it exactly as found, also a model in mixed modes
(train mode with frozen batch norm): modes, requires_grad, .grad, parameters, buffers, hooks."""

import helpers
import pytest
import torch

from cnn_helpers.nets import complexity
from cnn_helpers.training import residual as gradients
from cnn_helpers.training.loop import fit, training_error
from cnn_helpers.pretrained import models
from cnn_helpers.nets.smallnets import residual_net


def net():
    model = helpers.mixed_mode(residual_net(8, widths=(4, 8, 8), in_channels=1, num_classes=3))
    next(model.parameters()).requires_grad_(False)  # a frozen parameter must stay frozen
    return model


def data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 3, (16,), generator=g)


CALLS = {
    "count_macs": lambda m, x, y: complexity.count_macs(m, (1, 8, 8)),
    "layer_table": lambda m, x, y: complexity.layer_table(m, (1, 8, 8)),
    "training_error": lambda m, x, y: training_error(m, x, y),
    "gradient_norms": lambda m, x, y: gradients.gradient_norms(m, x, y),
    "gradient_norms inside no_grad": lambda m, x, y: _no_grad(gradients.gradient_norms, m, x, y),
}


def _no_grad(fn, *args, **kwargs):
    with torch.no_grad():
        return fn(*args, **kwargs)


@pytest.mark.parametrize("name", CALLS)
def test_left_as_found(name):
    model, (x, y) = net(), data()
    before = helpers.snapshot(model, x)
    CALLS[name](model, x, y)
    helpers.assert_unchanged(before, helpers.snapshot(model, x))


@pytest.mark.parametrize("inside_no_grad", [False, True])
def test_train_restores_modes_and_keeps_frozen_batch_norm_frozen(inside_no_grad):
    model, (x, y) = net(), data()
    modes = [m.training for m in model.modules()]
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    seen = []
    kwargs = dict(steps=3, batch_size=8, warmup=1, callback=lambda *a: seen.append([m.training for m in model.modules()]))
    if inside_no_grad:
        _no_grad(fit, model, x, y, **kwargs)
    else:
        fit(model, x, y, **kwargs)
    assert [m.training for m in model.modules()] == modes
    assert all(s == modes for s in seen), "frozen batch norm must stay frozen during training"
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in stats.items()), "frozen BN statistics changed"
    assert all(p.grad is None for p in model.parameters())
