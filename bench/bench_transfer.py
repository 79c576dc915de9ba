"""Feature extraction (cnn_helpers.transfer.extract_features) vs a naive loop, one image at a time.

EfficientNet-Lite0's penultimate features of 64 images at 64 px (notebook 07's full-mode size): batched with
hooks, for several batch sizes, against the loop a student writes first (one forward pass per image). The
features must be equal; the ratio shows what batching buys on a CPU (images/s in the note).
"""

from __future__ import annotations

import torch
from run import median_time, row

from cnn_helpers.pretrained.models import load_pretrained
from cnn_helpers.training.transfer import extract_features

N, SIZE = 64, 64


def naive(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """One image per forward pass; the head's input caught by a hook."""
    found = []
    handle = model.net._fc.register_forward_pre_hook(lambda module, args: found.append(args[0]))
    try:
        with torch.no_grad():
            for image in images:
                model(image[None])
    finally:
        handle.remove()
    return torch.cat(found)


def run() -> list[dict]:
    model = load_pretrained("efficientnet_lite0").model
    images = torch.rand(N, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    reference = naive(model, images)
    t_naive = median_time(lambda: naive(model, images), repeat=3)
    rows = []
    for batch in (1, 8, 32, 64):
        same = torch.allclose(extract_features(model, images, batch_size=batch), reference, atol=1e-4)
        t_ours = median_time(lambda: extract_features(model, images, batch_size=batch), repeat=3)
        rows.append(row(f"features of {N} images ({SIZE} px), batch {batch}", t_ours, t_naive,
                        f"{N / t_ours:.0f} vs {N / t_naive:.0f} images/s; " + ("features equal" if same else "FEATURES DIFFER"),
                        "one image per forward"))
    return rows
