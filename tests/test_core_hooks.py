"""The one layer recorder: first output per pass, protected from in-place ops, early stop, inputs, gradients."""

from __future__ import annotations

import helpers
import pytest
import torch
from torch import nn

from cnn_helpers.core.hooks import StopForward, record


class Shared(nn.Module):
    """conv -> relu(inplace) -> conv -> the same relu again -> mean: a module called twice per pass."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.conv2(self.relu(self.conv1(x)))).mean(dim=(2, 3))


class Skips(nn.Module):
    """A branch that never runs in forward (like GoogLeNet's auxiliary head in eval mode)."""

    def __init__(self):
        super().__init__()
        self.body, self.aux = nn.Conv2d(1, 1, 1), nn.Conv2d(1, 1, 1)

    def forward(self, x):
        return self.body(x)


def test_first_output_of_a_shared_module_and_its_call_count():
    torch.manual_seed(0)
    model, x = Shared(), torch.randn(3, 1, 5, 5)
    with torch.no_grad():
        first = torch.relu(model.conv1(x))
    with record(model, "relu") as rec:
        rec(x)
    assert torch.equal(rec["relu"], first) and rec.calls["relu"] == 2


def test_a_later_in_place_op_does_not_change_the_record():
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU(inplace=True))
    with torch.no_grad():
        model[0].bias.fill_(-10.0)  # all outputs negative: the in-place ReLU would zero them
    with torch.no_grad(), record(model, ["0"]) as rec:
        out = rec(torch.rand(1, 1, 4, 4))
    assert rec["0"].max() < 0 and out.max() == 0


def test_each_pass_refills_the_record():
    model = nn.Sequential(nn.Conv2d(1, 1, 1))
    a, b = torch.rand(1, 1, 2, 2), torch.rand(1, 1, 2, 2)
    with torch.no_grad(), record(model, ["0"]) as rec:
        model(a)
        model(b)  # a direct call counts as a new pass too
        expected = model[0](b)
    assert torch.equal(rec["0"], expected)


def test_stop_skips_the_layers_after_the_last_one():
    ran = []
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU(), nn.Conv2d(1, 1, 1))
    model[2].register_forward_pre_hook(lambda m, a: ran.append(True))
    with record(model, ["1"], stop=True) as rec:
        assert rec(torch.rand(1, 1, 2, 2)) is None
        with pytest.raises(StopForward):
            model(torch.rand(1, 1, 2, 2))
    assert not ran and rec["1"].shape == (1, 1, 2, 2)


def test_inputs_records_what_a_layer_receives():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Flatten(), nn.Linear(8, 3))
    x = torch.rand(2, 1, 2, 2)
    with torch.no_grad(), record(model, ["2"], inputs=True) as rec:
        rec(x)
        expected = model[1](model[0](x))
    assert torch.equal(rec["2"], expected)


def test_gradients_reach_the_record_and_the_input():
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(1, 1, 1))
    x = torch.rand(1, 1, 3, 3, requires_grad=True)
    with record(model, ["0"]) as rec:
        out = rec(x).sum()
        (to_map,) = torch.autograd.grad(out, rec["0"], retain_graph=True)
        (to_input,) = torch.autograd.grad(rec["0"].pow(2).sum(), x)
    assert to_map.shape == (1, 1, 3, 3) and to_input.abs().sum() > 0


def test_a_layer_that_never_runs_is_a_clear_error():
    with torch.no_grad(), record(Skips(), ["body", "aux"]) as rec:
        rec(torch.rand(1, 1, 2, 2))
    assert "body" in rec and "aux" not in rec
    with pytest.raises(ValueError, match="layer 'aux' did not run during the forward pass"):
        rec.outputs()


def test_bad_arguments_are_refused_at_once_and_hooks_are_removed_on_error():
    model = Shared()
    with pytest.raises(ValueError, match="layer 'nope' is not a submodule name"):
        record(model, ["nope"])
    with pytest.raises(TypeError, match="stop must be True or False"):
        record(model, ["relu"], stop=1)
    with pytest.raises(RuntimeError, match="boom"):
        with record(model, ["relu"]):
            raise RuntimeError("boom")
    assert helpers.hooks(model) == 0


def test_a_layer_that_returns_no_tensor_is_named():
    class Pair(nn.Module):
        def forward(self, x):
            return x, x

    model = nn.Sequential(Pair())
    with record(model, ["0"]) as rec, pytest.raises(ValueError, match="layer '0' returns tuple, not a tensor"):
        rec(torch.rand(1, 1, 2, 2))


def test_record_looks_up_only_the_named_layers(monkeypatch):
    # record() is entered once per loss evaluation in the style loops: no walk over every module of the network
    model = Shared()
    listed = []
    real = nn.Module.named_modules
    monkeypatch.setattr(nn.Module, "named_modules", lambda self, *a, **k: listed.append(1) or real(self, *a, **k))
    with record(model, ["conv1", "relu"]) as rec:
        rec(torch.rand(1, 1, 4, 4))
    assert set(rec.values) == {"conv1", "relu"} and not listed
