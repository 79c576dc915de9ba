"""The exercise checks run inside the notebooks (cnn_helpers.core.exercises): pass, fail, explain, fall back."""

import copy
import dataclasses
import time

import numpy as np
import pytest
import torch
from torch import nn

from cnn_helpers.core import exercises


def test_check_function_passes_fails_and_explains():
    def make(g):
        return (torch.randn(3, generator=g),)

    exercises.check_function(lambda x: x * 2, lambda x: x + x, make)

    def blank(x):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="not implemented yet"):
        exercises.check_function(blank, lambda x: x + x, make)
    with pytest.raises(AssertionError, match="values differ"):
        exercises.check_function(lambda x: x * 3, lambda x: x + x, make)
    with pytest.raises(AssertionError, match="shape"):
        exercises.check_function(lambda x: x[:2], lambda x: x, make)
    with pytest.raises(AssertionError, match="raised ZeroDivisionError"):
        exercises.check_function(lambda x: 1 / 0, lambda x: x, make)


def test_check_close_on_nested_results():
    exercises.check_close((torch.ones(2), 3), (torch.ones(2), 3.0))
    with pytest.raises(AssertionError, match=r"result\[1\]"):
        exercises.check_close((torch.ones(2), 3), (torch.ones(2), 4))


def test_check_failed_is_shown_in_one_line_but_student_errors_keep_their_traceback():
    def make(g):
        return (torch.randn(3, generator=g),)

    with pytest.raises(exercises.CheckFailed) as failed:
        exercises.check_function(lambda x: x * 3, lambda x: x + x, make)
    assert failed.value._render_traceback_() == [f"\x1b[1;31mCheckFailed\x1b[0m: {failed.value}"]
    with pytest.raises(AssertionError) as raised:
        exercises.check_function(lambda x: 1 / 0, lambda x: x, make)
    assert not isinstance(raised.value, exercises.CheckFailed)
    assert isinstance(raised.value.__cause__, ZeroDivisionError)


def test_use_falls_back_until_the_check_passes(capsys):
    def make(g):
        return (torch.randn(3, generator=g),)

    def twice(x):
        raise NotImplementedError()

    reference = lambda x: x + x  # noqa: E731
    with pytest.raises(AssertionError):
        exercises.check_function(twice, reference, make)
    assert exercises.use(twice, reference) is reference
    assert "twice has not passed its check yet" in capsys.readouterr().out

    def twice(x):  # the student's finished version  # noqa: F811
        return 2 * x

    assert exercises.use(twice, reference) is reference  # not checked yet
    exercises.check_function(twice, reference, make)
    assert exercises.use(twice, reference) is twice


# ---- issue 20, class 8: check_close compares every kind of result a correct student may return


@dataclasses.dataclass
class Result:
    scores: torch.Tensor
    count: int


@pytest.mark.parametrize("value", [
    {"early": torch.ones(2, 3), "late": (torch.zeros(1), 2.5)},
    Result(torch.arange(4.0), 3),
    np.linspace(0, 1, 5),
    1 + 2j,
    torch.tensor([1 + 2j, 3 - 1j]),
    float("nan"),
    torch.tensor([1.0, float("nan")]),
    [np.float32(0.5), np.int64(3)],
], ids=["dict", "dataclass", "numpy", "complex", "complex tensor", "nan", "tensor with nan", "numpy scalars"])
def test_check_close_accepts_a_correct_result_of_any_kind(value):
    exercises.check_close(copy.deepcopy(value), value)


@pytest.mark.parametrize("actual, expected, message", [
    ({"early": torch.ones(2)}, {"early": torch.zeros(2)}, r"result\['early'\]: values differ"),
    ({"early": torch.ones(2)}, {"late": torch.ones(2)}, "keys 'late'"),
    (Result(torch.arange(4.0), 2), Result(torch.arange(4.0), 3), r"result\.count"),
    (np.zeros(3), np.ones(3), "values differ"),
    (np.zeros(3, dtype=np.float32), np.zeros(3), "dtype float64"),
    (torch.zeros(3), np.zeros(3), "numpy.ndarray"),
    (1 + 5j, 1 + 1j, "expected"),
    (torch.tensor([1 + 5j]), torch.tensor([1 + 1j]), "values differ, largest difference 4"),
    (1.0, float("nan"), "expected nan"),
    (float("nan"), 1.0, "expected 1.0"),
    (torch.tensor([1.0, 2.0]), torch.tensor([1.0, float("nan")]), "NaN at 1 place"),
    (torch.zeros(2, dtype=torch.float64), torch.zeros(2), "dtype torch.float32"),
    (torch.zeros(2, device="meta"), torch.zeros(2), "on cpu"),
], ids=["dict values", "dict keys", "dataclass field", "numpy values", "numpy dtype", "tensor for numpy",
        "complex imaginary part", "complex tensor", "nan expected", "nan returned", "nan in tensor", "float64",
        "device"])
def test_check_close_tells_what_differs(actual, expected, message):
    with pytest.raises(exercises.CheckFailed, match=message):
        exercises.check_close(actual, expected)


# ---- issue 20, class 10: check_function also checks what the student's function must not do


def _model_inputs(g):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))  # in train mode, as a new model is
    return model, torch.rand(2, 3, generator=g)


def _logits(model, x):
    with torch.no_grad():
        return model(x)


def test_check_function_fails_a_student_who_changes_the_inputs_or_the_model():
    def overwrites(model, x):
        out = _logits(model, x)
        x.zero_()
        return out

    def leaves_eval_mode(model, x):
        model.eval()
        return _logits(model, x)

    def leaves_gradients(model, x):
        out = model(x)
        out.sum().backward()
        return out.detach()

    def freezes(model, x):
        model[0].weight.requires_grad_(False)
        return _logits(model, x)

    def leaves_hook(model, x):
        model[1].register_forward_hook(lambda *args: None)
        return _logits(model, x)

    for student, message in [(overwrites, r"argument `x`: values"), (leaves_eval_mode, "train/eval mode"),
                             (leaves_gradients, r"'0.weight': .grad"), (freezes, "requires_grad"),
                             (leaves_hook, "module '1': hooks")]:
        with pytest.raises(exercises.CheckFailed, match=message):
            exercises.check_function(student, _logits, _model_inputs)


def test_check_function_passes_side_effects_the_reference_has_too():
    def freeze_all(model, x):
        model.requires_grad_(False)
        return _logits(model, x)

    exercises.check_function(freeze_all, freeze_all, _model_inputs)

    def keeps_a_stale_gradient(g):  # a .grad given with the model stays on the reference's copy too
        model, x = _model_inputs(g)
        model[0].weight.grad = torch.ones_like(model[0].weight)
        return model, x

    exercises.check_function(_logits, _logits, keeps_a_stale_gradient)


def test_check_function_fails_another_dtype_and_refuses_no_trials():
    with pytest.raises(exercises.CheckFailed, match="dtype torch.float32, got torch.float64"):
        exercises.check_function(lambda model, x: _logits(model, x).double(), _logits, _model_inputs)
    for trials in (0, -1, 1.5, True, 10**12):
        with pytest.raises(ValueError, match="trials must be a positive int up to 1000"):
            exercises.check_function(_logits, _logits, _model_inputs, trials=trials)
    with pytest.raises(TypeError, match="make_inputs must return a tuple"):
        exercises.check_function(lambda x: x, lambda x: x, lambda g: torch.rand(2, generator=g))


# ---- issue 20, class 11: an endless loop fails the check instead of hanging the cell


def test_check_function_stops_an_endless_loop():
    def endless(x):  # endless for the check; returns a wrong result after 60 s so that a missing limit cannot hang
        stop = time.monotonic() + 60
        while time.monotonic() < stop:
            x = x + 0
        return x + 1

    def make(g):
        return (torch.rand(3, generator=g),)

    with pytest.raises(exercises.CheckFailed, match=r"did not finish within 0.2 s"):
        exercises.check_function(endless, lambda x: x, make, timeout=0.2)
    exercises.check_function(lambda x: x + 0, lambda x: x, make, timeout=0.2)  # the watchdog left nothing behind
    time.sleep(0.6)  # a late interrupt would arrive now
    for bad in (0, -1.0, float("inf"), "60"):
        with pytest.raises(ValueError, match="timeout must be"):
            exercises.check_function(lambda x: x, lambda x: x, make, timeout=bad)


def test_check_function_fails_a_student_who_replaces_or_adds_part_of_the_model():
    def replaces_the_head(model, x):
        out = _logits(model, x)
        model[2] = nn.Linear(4, 2)
        return out

    def adds_a_softmax(model, x):
        out = _logits(model, x)
        model.append(nn.Softmax(dim=1))
        return out

    with pytest.raises(exercises.CheckFailed, match=r"changed argument `model`'s '2.weight': values"):
        exercises.check_function(replaces_the_head, _logits, _model_inputs)
    with pytest.raises(exercises.CheckFailed, match="changed what argument `model` holds"):
        exercises.check_function(adds_a_softmax, _logits, _model_inputs)
