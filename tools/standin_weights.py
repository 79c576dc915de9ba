"""Write randomly initialised torchvision state_dicts under the real weight file names into a torch hub cache.

    python tools/standin_weights.py TORCH_HOME [resnet18 alexnet ...]

A lecturer's machine that cached torchvision's weights makes ``load_pretrained()`` return a ResNet or
VGG instead of EfficientNet-Lite0. The test suite reproduces that offline with stand-in files: same
names, same architectures, random weights, loaded through the real code path (with
``CNN_VERIFY_WEIGHTS=0``, since the hashes cannot match). Content that depends on trained weights
must therefore be asserted only when ``Pretrained.verified`` is True.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cnn_helpers.pretrained.models import TORCHVISION_WEIGHTS, hub_file  # noqa: E402


def write_standins(torch_home: Path, names: list[str], *, seed: int = 0) -> list[Path]:
    """Save a seeded random state_dict for each name where torch's hub cache under ``torch_home`` looks."""
    # The hub directory is passed, never set: torch.hub.set_dir cannot be undone and would pin every later
    # get_dir() in this process, whatever TORCH_HOME says.
    paths = []
    for name in names:
        if name not in TORCHVISION_WEIGHTS:
            raise ValueError(f"name must be one of {', '.join(TORCHVISION_WEIGHTS)}; got {name!r}")
        torch.manual_seed(seed)
        path = hub_file(name, Path(torch_home) / "hub")
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(torchvision.models.get_model(name, weights=None).state_dict(), path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print(__doc__)
        raise SystemExit(2)
    for written in write_standins(Path(sys.argv[1]), sys.argv[2:]):
        print(f"wrote {written}")
