"""Every notebook that uses `load_pretrained()` also runs when it returns a torchvision model.

A lecturer who cached torchvision's weights gets a ResNet (or VGG, AlexNet) from `load_pretrained()`.
Here a temporary torch hub cache holds randomly initialised state_dicts under the real file names
(tools/standin_weights.py), loaded through the real path with the hash check off; each notebook must
run to the end and say which model it used. Outputs are not compared (they depend on the model).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from nbexec import execute  # noqa: E402
from standin_weights import write_standins  # noqa: E402

USES_DEFAULT_MODEL = [p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
                      if "load_pretrained(" in p.read_text()]
STANDIN = "resnet18"  # the cheapest model of the preference order; a BN-ResNet unlike the EfficientNets


@pytest.fixture(scope="session")  # once per worker, whichever of the classes below it runs
def standin_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("torch-home")
    write_standins(home, [STANDIN])
    return home


def test_some_notebooks_use_the_default_model():
    assert len(USES_DEFAULT_MODEL) >= 2


def run_with_a_torchvision_model(path: Path, home: Path, standin: str) -> None:
    """Execute the notebook with ``standin`` in the hub cache under ``home``; it must finish and name it."""
    notebook = nbformat.read(path, as_version=4)
    execute(notebook, cwd=path.parent, timeout=600, env={"TORCH_HOME": str(home), "CNN_VERIFY_WEIGHTS": "0",
                                                         "CNN_MODEL": ""})
    printed = "".join(out.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs)
    assert standin in printed, "the notebook must say which model it uses (pre.name)"


def notebook_class(path: Path) -> type:
    """One test class per notebook: `make test` (xdist ``--dist loadscope``) gives each class to one worker, so the
    notebooks' runs spread over the workers instead of this whole file sitting on one of them."""
    def test_notebook_runs_with_a_torchvision_model(self, standin_home):
        run_with_a_torchvision_model(path, standin_home, STANDIN)

    return type(f"Test_{path.stem}", (), {"test_notebook_runs_with_a_torchvision_model":
                                          test_notebook_runs_with_a_torchvision_model, "path": path})


for _path in USES_DEFAULT_MODEL:
    globals()[f"Test_{_path.stem}"] = notebook_class(_path)
del _path
