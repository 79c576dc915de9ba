import re
from pathlib import Path

import pytest
import torch

from cnn_helpers.core import repro


def test_seed_everything_repeats_random_draws():
    g = repro.seed_everything(3)
    a, a_g = torch.rand(4), torch.rand(4, generator=g)
    g = repro.seed_everything(3)
    assert torch.equal(a, torch.rand(4)) and torch.equal(a_g, torch.rand(4, generator=g))
    repro.seed_everything(4)
    assert not torch.equal(a, torch.rand(4))


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_seed_everything_rejects_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        repro.seed_everything(seed)


def test_get_device_cpu_and_forced(monkeypatch):
    monkeypatch.delenv("CNN_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine: the default would be CUDA
    assert repro.get_device().type == "cuda"
    assert repro.get_device("cpu") == torch.device("cpu")          # asked for: the CPU all the same
    monkeypatch.setenv("CNN_DEVICE", "cpu")
    assert repro.get_device() == torch.device("cpu")               # the switch wins over the GPU
    monkeypatch.setenv("CNN_DEVICE", "meta")
    assert repro.get_device() == torch.device("meta")              # a device that is never the default: the switch is read


def test_get_device_refuses_missing_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        repro.get_device("cuda")


def test_get_device_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.delenv("CNN_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert repro.get_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(repro, "_mps_available", lambda: True)
    assert repro.get_device().type == "mps"
    monkeypatch.setattr(repro, "_mps_available", lambda: False)
    assert repro.get_device().type == "cpu"


@pytest.mark.parametrize("raw, expected", [("1", True), ("true", True), ("0", False), ("off", False)])
def test_fast_and_offline_switches(monkeypatch, raw, expected):
    monkeypatch.setenv("CNN_FAST", raw)
    monkeypatch.setenv("CNN_OFFLINE", raw)
    assert repro.fast_mode() is expected and repro.offline_mode() is expected
    assert repro.by_mode(fast="small", full="big") == ("small" if expected else "big")


@pytest.mark.parametrize("fast, smoke, expected", [("1", "1", "smoke"), ("1", "", "fast"), ("1", "0", "fast"),
                                                     ("0", "1", "full"), ("0", "", "full")])
def test_by_mode_takes_the_smoke_value_only_in_a_fast_smoke_run(monkeypatch, fast, smoke, expected):
    monkeypatch.setenv("CNN_FAST", fast)
    monkeypatch.setenv("CNN_SMOKE", smoke)
    assert repro.smoke_mode() is (expected == "smoke")
    assert repro.by_mode(fast="fast", full="full", smoke="smoke") == expected
    assert repro.by_mode(fast="fast", full="full") == ("full" if fast == "0" else "fast")   # no smoke value: fast's


def test_a_smoke_value_may_be_none_or_falsy(monkeypatch):
    monkeypatch.setenv("CNN_FAST", "1")
    monkeypatch.setenv("CNN_SMOKE", "1")
    assert repro.by_mode(fast=[0, 1, 2], full=[0], smoke=None) is None
    assert repro.by_mode(fast=3, full=5, smoke=0) == 0


def test_unreadable_smoke_switch_names_the_variable(monkeypatch):
    monkeypatch.setenv("CNN_FAST", "1")
    monkeypatch.setenv("CNN_SMOKE", "short")
    with pytest.raises(ValueError, match="CNN_SMOKE"):
        repro.by_mode(fast=1, full=2, smoke=0)


def test_fast_mode_default_follows_the_device(monkeypatch):
    monkeypatch.delenv("CNN_FAST", raising=False)
    monkeypatch.delenv("CNN_OFFLINE", raising=False)
    monkeypatch.setattr(repro, "get_device", lambda prefer=None: torch.device("cuda"))
    assert repro.fast_mode() is False
    monkeypatch.setattr(repro, "get_device", lambda prefer=None: torch.device("cpu"))
    assert repro.fast_mode() is True and repro.offline_mode() is False


def test_unreadable_switch_names_the_variable(monkeypatch):
    monkeypatch.setenv("CNN_FAST", "maybe")
    with pytest.raises(ValueError, match="CNN_FAST"):
        repro.fast_mode()


def test_describe_setup_names_mode_and_device(monkeypatch):
    monkeypatch.setenv("CNN_FAST", "1")
    monkeypatch.setenv("CNN_OFFLINE", "1")
    monkeypatch.setenv("CNN_DEVICE", "cpu")
    assert repro.describe_setup().startswith("mode: fast | offline | device: cpu")


def test_seed_everything_switches_tf32_off():
    """GPU results must match the CPU's closely enough for the notebooks' exactness checks (found on an H200:
    an identity extension differed by 3e-3 with TF32 on)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        repro.seed_everything(0)
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_the_readme_table_lists_exactly_the_switches():
    """One list of switches (repro.SWITCHES); the README's table must name the same ones, in the same order."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Fast and full mode, offline, GPU", 1)[1].split("\n\n**", 1)[0]
    table = re.findall(r"^\| `(CNN_[A-Z_]+)` \|", section, flags=re.M)
    assert table == list(repro.SWITCHES), (table, list(repro.SWITCHES))
