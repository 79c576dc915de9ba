"""Every notebook that uses `load_pretrained()` also runs when it returns a torchvision model.

A lecturer who cached torchvision's weights gets a ResNet (or VGG, AlexNet) from `load_pretrained()`.
Here a temporary torch hub cache holds a randomly initialised state_dict under the real file name
(tools/standin_weights.py), loaded through the real path with the hash check off: ResNet-18 or AlexNet,
whichever runs the notebook's own code paths for less (``STANDINS``). Each notebook must run to the end and
say which model it used. Outputs are not compared (they depend on the model).

What this covers: every cell of the notebook runs, with the stand-in's layer names, shapes, batch norm and head,
through the same code paths as with the course's model. What it does not: the notebooks' asserts on results (they
need trained weights and run only when ``pre.verified``), and the loop counts of fast mode: the runs set
``CNN_SMOKE=1``, so wherever a notebook gives ``by_mode`` a ``smoke=`` value (fewer seeds or steps for loops whose
results only those asserts read; 03: 6 steps per deletion/insertion curve, 04: 8 Adam steps per gradient ascent and
feature inversion, 05: 2 seeds for "Which layers?" and random weights, 10 steps for the feature inversions
and the recipe comparison, 06: 3 PGD steps per ε-curve point, 07: 2 seeds and 10 training steps per method) that value is
used. The nbval run of each notebook (tests run on notebooks/) executes the full fast-mode loops with the course's
model.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from nbexec import execute  # noqa: E402
from standin_weights import write_standins  # noqa: E402

from cnn_helpers.pretrained.models import TORCHVISION_WEIGHTS  # noqa: E402

USES_DEFAULT_MODEL = [p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
                      if "load_pretrained(" in p.read_text()]
STANDIN = "resnet18"  # the cheapest ResNet of the preference order; a BN-ResNet unlike the EfficientNets
# AlexNet (no batch norm, no skip connections, a 58 M-parameter fully-connected head: the other end of the registry)
# where the notebook runs the same helpers for less time. Seconds on one thread, fast mode, ResNet-18 (quiet
# `make test`) -> AlexNet (kernel CPU): 04 64 -> 39, 05 97 -> 51, 06 62 -> 42. ResNet-18 stays where its batch norm and skip connections take
# paths of their own (03: occlusion's layer graph folds batch norm; 07: fine-tuning keeps the batch-norm statistics)
# and where AlexNet costs more (07: 61 M parameters to fine-tune) or a notebook's assert does not hold for it (03).
STANDINS = {"04_feature_visualization": "alexnet", "05_style_transfer": "alexnet", "06_adversarial": "alexnet"}


def standin_for(path: Path) -> str:
    return STANDINS.get(path.stem, STANDIN)


@pytest.fixture(scope="session")  # once per worker, whichever of the classes below it runs
def standin_home(tmp_path_factory) -> Iterator[Callable[[str], Path]]:
    """``home(name)``: a torch home whose hub cache holds only ``name``'s stand-in (so load_pretrained() picks it)."""
    homes: dict[str, Path] = {}

    def home(name: str) -> Path:
        if name not in homes:
            homes[name] = tmp_path_factory.mktemp(f"torch-home-{name}")
            write_standins(homes[name], [name])
        return homes[name]
    yield home
    for folder in homes.values():  # AlexNet's file is 233 MB; pytest would keep three runs' worth per worker
        shutil.rmtree(folder, ignore_errors=True)


def test_some_notebooks_use_the_default_model():
    assert len(USES_DEFAULT_MODEL) >= 2


def test_each_standin_is_a_torchvision_model_of_the_registry_for_a_notebook_here():
    assert set(STANDINS) <= {p.stem for p in USES_DEFAULT_MODEL}, "a renamed notebook would lose its stand-in"
    assert {STANDIN, *STANDINS.values()} <= set(TORCHVISION_WEIGHTS)


def run_with_a_torchvision_model(path: Path, home: Path, standin: str) -> None:
    """Execute the notebook with only ``standin`` in the hub cache under ``home`` (a smoke run: ``CNN_SMOKE=1``);
    it must finish and name it."""
    notebook = nbformat.read(path, as_version=4)
    execute(notebook, cwd=path.parent, timeout=600, env={"TORCH_HOME": str(home), "CNN_VERIFY_WEIGHTS": "0",
                                                         "CNN_MODEL": "", "CNN_SMOKE": "1"})
    printed = "".join(out.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs)
    assert standin in printed, "the notebook must say which model it uses (pre.name)"


def notebook_class(path: Path) -> type:
    """One test class per notebook: `make test` (xdist ``--dist loadscope``) gives each class to one worker, so the
    notebooks' runs spread over the workers instead of this whole file sitting on one of them."""
    def test_notebook_runs_with_a_torchvision_model(self, standin_home):
        run_with_a_torchvision_model(path, standin_home(standin_for(path)), standin_for(path))

    return type(f"Test_{path.stem}", (), {"test_notebook_runs_with_a_torchvision_model":
                                          test_notebook_runs_with_a_torchvision_model, "path": path})


# defined (and so started) last notebook first: 07's run was the longest by far (191 s in a quiet `make test`), and a
# long run that starts late keeps one worker busy after the other has finished. With CNN_SMOKE=1 it takes about 45 CPU s
# (ResNet-18, 1 thread), like the others (03 about 50, 04 about 19 with its smoke steps, 05-06 40-70 s), so the order
# matters little now.
for _path in reversed(USES_DEFAULT_MODEL):
    globals()[f"Test_{_path.stem}"] = notebook_class(_path)
del _path
