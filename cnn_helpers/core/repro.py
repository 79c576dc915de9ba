"""Reproducibility, device choice and every switch of the course.

Used by every notebook (setup cell), by :mod:`cnn_helpers.pretrained` (offline mode, model choice, weight check)
and by :mod:`cnn_helpers.core.data` (data folder).

The switches are environment variables, read here and nowhere else. ``SWITCHES`` lists each one with what it
does; the README's table of switches is checked against it (tests/test_core_repro.py).
"""

from __future__ import annotations

import os
import random
from typing import TypeVar

import numpy as np
import torch

__all__ = ["seed_everything", "get_device", "check_device", "fast_mode", "smoke_mode", "offline_mode", "by_mode",
           "describe_setup", "model_choice",
           "verify_weights", "data_dir_override", "SWITCHES"]

SWITCHES = {
    "CNN_FAST": "1 = fast mode (tests), 0 = full mode; unset: fast on a CPU, full on a GPU",
    "CNN_OFFLINE": "1 = never download anything (tests); unset: torchvision weights may be downloaded on request",
    "CNN_DEVICE": "cpu / cuda / mps forces a device; unset: CUDA, then MPS, then CPU",
    "CNN_MODEL": "the model load_pretrained() returns; unset: the registry's preference order",
    "CNN_VERIFY_WEIGHTS": "0 = skip the SHA-256 check of cached torchvision weights (stand-in weights in tests)",
    "CNN_DATA_DIR": "folder with the course's own image files; unset: data/ in the repository",
    "CNN_SMOKE": "1 = in fast mode, the smoke= values of by_mode (fewer seeds/steps; only the tests' stand-in runs)",
}

T = TypeVar("T")
_FAST_VALUE = object()  # by_mode's default smoke value: the fast one
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _env_flag(name: str) -> bool | None:
    """Read a boolean environment variable; None when unset, ValueError when unreadable."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"environment variable {name}={raw!r}: expected one of 1/0, true/false, yes/no, on/off")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices) and return a CPU generator seeded the same.

    Also switches TF32 off on CUDA (float32 matrix products and convolutions rounded to 10-bit mantissas,
    PyTorch's default for cuDNN): with it, results on a GPU differ from the CPU's by about 1e-3, enough to
    break the notebooks' exactness checks (an identity extension, cached features, your loop vs the package).
    The course's models are small enough that full float32 costs little.

    Args:
        seed: A non-negative integer. Default: 0.

    Returns:
        A ``torch.Generator`` seeded with ``seed``, for helpers that take ``generator=``.

    Example:
        >>> g = seed_everything(0)
        >>> x = torch.rand(2, generator=g)
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an int in [0, 2**63), got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch.Generator().manual_seed(seed)


def get_device(prefer: str | None = None) -> torch.device:
    """The best available device: CUDA, then Apple MPS, then CPU.

    Args:
        prefer: Force a device (``"cpu"``, ``"cuda"``, ``"mps"``). Default: ``None`` = best
            available; the environment variable ``CNN_DEVICE`` overrides the automatic choice.

    Returns:
        A ``torch.device``. Only notebooks call this; helpers follow their input's device.

    Example:
        >>> device = get_device()
        >>> model = model.to(device)
    """
    if prefer is not None:
        return check_device(prefer, "prefer")
    if os.environ.get("CNN_DEVICE", "").strip():
        return check_device(os.environ["CNN_DEVICE"].strip(), "environment variable CNN_DEVICE")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def check_device(device: object, name: str = "device") -> torch.device:
    """``torch.device(device)`` if that device exists here; a ValueError naming ``name`` otherwise.

    Example:
        >>> check_device("cuda")   # ValueError on a machine without CUDA
    """
    try:
        resolved = torch.device(device)  # type: ignore[arg-type]
    except (RuntimeError, TypeError):
        raise ValueError(f"{name} must be a device name such as 'cpu', 'cuda', 'mps'; got {device!r}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}={device!r} requested but CUDA is not available; use 'cpu'")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"{name}={device!r} requested but there are {torch.cuda.device_count()} CUDA devices")
    if resolved.type == "mps" and not _mps_available():
        raise ValueError(f"{name}={device!r} requested but Apple MPS is not available; use 'cpu'")
    return resolved


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def fast_mode() -> bool:
    """True in fast mode (``CNN_FAST=1``, or unset on a machine without a GPU)."""
    flag = _env_flag("CNN_FAST")
    if flag is not None:
        return flag
    return get_device().type == "cpu"


def offline_mode() -> bool:
    """True when nothing may be downloaded (``CNN_OFFLINE=1``)."""
    return bool(_env_flag("CNN_OFFLINE"))


def model_choice() -> str | None:
    """The model name forced by ``CNN_MODEL`` (None when unset or empty)."""
    return os.environ.get("CNN_MODEL", "").strip() or None


def verify_weights() -> bool:
    """False only when ``CNN_VERIFY_WEIGHTS=0``: cached torchvision weights are then loaded unchecked."""
    flag = _env_flag("CNN_VERIFY_WEIGHTS")
    return True if flag is None else flag


def data_dir_override() -> str | None:
    """The folder named by ``CNN_DATA_DIR`` (None when unset or empty)."""
    return os.environ.get("CNN_DATA_DIR", "").strip() or None


def smoke_mode() -> bool:
    """True when ``CNN_SMOKE=1`` in fast mode: a run that checks every cell runs, not what the cells find.

    The test suite sets it for its runs with random-weight stand-ins (tests/test_notebooks_any_model.py), where the
    notebooks' asserts on results are off (``Pretrained.verified`` is False); a notebook then shortens the loops
    whose results only those asserts read (``by_mode(..., smoke=...)``).
    """
    return bool(_env_flag("CNN_SMOKE")) and fast_mode()


def by_mode(fast: T, full: T, *, smoke: T = _FAST_VALUE) -> T:  # type: ignore[assignment]
    """Pick the fast-mode or the full-mode value of a setting (or its smoke-run value, see :func:`smoke_mode`).

    Args:
        fast, full: The values for fast and full mode.
        smoke: The value in a smoke run (``CNN_SMOKE=1``, fast mode): fewer seeds or steps, only where no assert
            that runs with stand-in weights depends on them. Default: the fast value.

    Example:
        >>> steps = by_mode(fast=20, full=200)
    """
    if smoke is not _FAST_VALUE and smoke_mode():
        return smoke
    return fast if fast_mode() else full


def describe_setup() -> str:
    """One line naming mode, offline switch and device, for a notebook's setup cell."""
    mode = "fast" if fast_mode() else "full"
    offline = "offline" if offline_mode() else "online allowed"
    return f"mode: {mode} | {offline} | device: {get_device().type} | torch {torch.__version__.split('+')[0]}"
