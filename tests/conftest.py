"""Shared fixtures: fixed seeds for every test, and the network guard even when pytest is run directly."""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def _install_network_guard() -> None:
    """Apply tools/netblock/sitecustomize.py in this process if `make test` has not already."""
    if hasattr(socket, "NetworkBlockedError"):
        return
    os.environ["CNN_BLOCK_NETWORK"] = "1"
    spec = importlib.util.spec_from_file_location("_cnn_netblock", ROOT / "tools" / "netblock" / "sitecustomize.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


_install_network_guard()


@pytest.fixture(autouse=True)
def _seeded() -> None:
    from cnn_helpers.core.repro import seed_everything

    seed_everything(0)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="session")
def nbgrader_course(tmp_path_factory) -> Path:
    """The graded-assignments course (`make assignments`), built once per test run: source/, release/, gradebook."""
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    from assignments import build

    course = tmp_path_factory.mktemp("nbgrader") / "course"
    build(ROOT / "notebooks", course, quiet=True)
    return course
