"""Every public function on an accelerator (CUDA or Apple MPS): the sweep's valid example calls, run with
the model and tensors on the device, give the CPU's result, on the input's device, with state left as found.

Skipped on a machine without an accelerator (CI); run it where one is present::

    python -m pytest tests/test_accelerator.py -v

TF32 is switched off so that the comparison measures our code, not the hardware's reduced precision.
Functions that draw random numbers or train are compared by shape only (the device's random stream and
its non-deterministic kernels differ from the CPU's by design).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from typing import Any

import numpy as np
import pytest
import torch
from sweep import _walk, call, check_result, same_result
from test_sweep import SWEEP, Entry
from torch import nn

from cnn_helpers.core.repro import seed_everything

# CNN_TEST_ACCELERATOR=cpu runs the comparison CPU against CPU (to check this test itself without a device)
DEVICE = os.environ.get("CNN_TEST_ACCELERATOR") or (
    "cuda" if torch.cuda.is_available() else
    "mps" if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else None)
pytestmark = pytest.mark.skipif(DEVICE is None, reason="no CUDA or MPS device here")


@pytest.fixture(autouse=True, scope="module")
def _exact_float32():
    if DEVICE == "cuda":
        saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        yield
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    else:
        yield


def to_device(value: Any) -> Any:
    """Models and tensors (also inside tuples and dataclasses such as ``Pretrained``) moved to the device."""
    if isinstance(value, (torch.Tensor, nn.Module)):
        return value.to(DEVICE)
    if isinstance(value, (tuple, list)):
        return type(value)(to_device(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: to_device(getattr(value, f.name))
                                             for f in dataclasses.fields(value) if f.init})
    return value


def on_device(arguments: dict[str, Any]) -> bool:
    """Whether the call has anything to move (a model or a tensor)."""
    def movable(v: Any) -> bool:
        return (isinstance(v, (torch.Tensor, nn.Module)) or isinstance(getattr(v, "model", None), nn.Module)
                or (isinstance(v, (tuple, list)) and any(movable(x) for x in v)))
    return any(movable(v) for v in arguments.values())


def random_or_training(e: Entry) -> bool:
    return not e.state or "generator" in inspect.signature(e.fn).parameters


# Summary measures computed on the CPU by design (SciPy/scikit-image, float64 that MPS lacks) and returned there,
# ready to print and plot; maps, images and logits follow the input's device.
ON_CPU = {"adversarial_eval.eps_curve", "adversarial_eval.transfer_matrix", "attribution_eval.spearman",
          "featurevis_layers.filter_statistics",
          "featurevis_params.radial_spectrum", "style_eval.class_rank", "style_eval.ssim"}

ENTRIES = [pytest.param(e, id=e.name) for e in SWEEP]


@pytest.mark.parametrize("e", ENTRIES)
def test_same_result_on_the_accelerator(e: Entry):
    seed_everything(0)  # the same fresh arguments twice (tiny models draw their weights from the global RNG)
    arguments = e.arguments()
    if not on_device(arguments):
        pytest.skip("no model or tensor argument")
    expected, error = call(e, arguments, limit=60)
    assert error is None, f"the valid example call of {e.name} fails on the CPU: {error!r}"
    seed_everything(0)
    moved = {k: to_device(v) for k, v in e.arguments().items()}
    result, error = call(e, moved, limit=60)
    assert error is None, f"{e.name} fails on {DEVICE}: {type(error).__name__}: {error}"
    check_result(result, e.attached)
    if random_or_training(e):
        shapes = [tuple(v.shape) for v in _walk(result) if isinstance(v, (torch.Tensor, np.ndarray))]
        assert shapes == [tuple(v.shape) for v in _walk(expected) if isinstance(v, (torch.Tensor, np.ndarray))]
    else:
        assert same_result(result, expected, max(e.atol, 1e-4)), f"{e.name}: a different result on {DEVICE}"
    inputs_on_device = any(isinstance(v, torch.Tensor) for v in moved.values())
    if inputs_on_device and e.name not in ON_CPU:
        elsewhere = {str(v.device) for v in _walk(result) if isinstance(v, torch.Tensor) and v.device.type != DEVICE}
        assert not elsewhere, f"{e.name}: results on {elsewhere}, not on the input's device {DEVICE}"
    if e.name in ON_CPU:
        assert all(v.device.type == "cpu" for v in _walk(result) if isinstance(v, torch.Tensor)), f"{e.name}: on the CPU"
