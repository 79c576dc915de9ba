"""From-scratch AlexNet, VGG-16 and ResNet-50 (cnn_helpers.nets) vs torchvision's.

Same random weights (torchvision's state_dict loaded with strict=True), same 224 px input: the outputs
must match, and the time ratio shows whether writing the networks out readably costs speed.
"""

from __future__ import annotations

import time
from typing import Callable

import torch
import torchvision
from run import row

from cnn_helpers import nets

CASES = (("alexnet", (1, 4)), ("vgg16", (1,)), ("resnet50", (1, 4)))


def interleaved_medians(first: Callable[[], object], second: Callable[[], object], *, repeat: int = 7) -> tuple[float, float]:
    """Median seconds of each, timed alternately so that load from other processes hits both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    first(), second()  # warm-up
    for _ in range(repeat):
        for fn, out in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return tuple(sorted(t)[len(t) // 2] for t in times)


def run() -> list[dict]:
    rows = []
    generator = torch.Generator().manual_seed(0)
    for name, batches in CASES:
        reference = torchvision.models.get_model(name, weights=None).eval()
        ours = getattr(nets, name)().eval()
        ours.load_state_dict(reference.state_dict(), strict=True)
        for batch in batches:
            x = torch.randn(batch, 3, 224, 224, generator=generator)
            with torch.inference_mode():
                same = torch.allclose(ours(x), reference(x), atol=1e-4, rtol=1e-4)
                t_ours, t_ref = interleaved_medians(lambda: ours(x), lambda: reference(x))
            rows.append(row(f"{name} forward, 224 px, batch {batch}", t_ours, t_ref,
                            "outputs equal" if same else "OUTPUTS DIFFER", "torchvision"))
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
