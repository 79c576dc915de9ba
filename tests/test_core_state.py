"""The state guards: a helper leaves a model as it found it, even on error; the facts checks need about a model."""

import helpers
import pytest
import torch
from torch import nn

from cnn_helpers.core import state


def test_restore_modes_keeps_each_module_own_flag_also_on_error():
    model = helpers.mixed_mode(nn.Sequential(nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2), nn.Dropout()))
    before = [m.training for m in model.modules()]
    with pytest.raises(RuntimeError):
        with state.evaluating(model):
            assert not any(m.training for m in model.modules())
            raise RuntimeError
    assert [m.training for m in model.modules()] == before == [True, True, False, True]


def test_grad_enabled_works_inside_inference_mode():
    model = nn.Linear(3, 2)
    with torch.inference_mode():
        x = torch.rand(1, 3)
        with state.grad_enabled():
            x = x.clone().requires_grad_(True)
            (grads,) = torch.autograd.grad(model(x)[0, 1], x)
    assert torch.allclose(grads[0], model.weight[1].detach())


def test_restore_requires_grad():
    params = [torch.zeros(1, requires_grad=True), torch.zeros(1)]
    with state.restore_requires_grad(params):
        params[0].requires_grad_(False)
        params[1].requires_grad_(True)
    assert [p.requires_grad for p in params] == [True, False]


def test_model_facts():
    model = nn.Sequential(nn.Flatten(), nn.Conv2d(1, 4, 3), nn.Conv2d(4, 2, 1)).double()
    assert state.model_channels(model) == 1 and state.model_dtype(model) == torch.float64
    assert state.model_device(model).type == "cpu"
    assert state.model_channels(nn.Linear(3, 2)) is None and state.model_dtype(nn.ReLU()) is None
    # no parameters: the first buffer says the device (a batch norm without affine weights), none at all: the CPU
    assert state.model_device(nn.BatchNorm2d(3, affine=False).to("meta")).type == "meta"
    assert state.model_device(nn.ReLU()).type == "cpu"
