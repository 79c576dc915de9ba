"""Style transfer (cnn_helpers.style_synthesis) vs the PyTorch tutorial's algorithm, same network (EfficientNet-Lite0).

The tutorial ("Neural Transfer Using PyTorch", pytorch.org): plain Gram matrices, style taps on the first five
convolutions and content on the fourth (its "VGG-style" layer choice), L-BFGS with default settings (no line search,
20 iterations per step) and the image clamped to [0, 1] inside every closure, the whole network run each time.

Row 1 gives both loops the same objective (that layer choice, plain Gram matrices, the image as is) and times how long
ours (strong-Wolfe L-BFGS, a forward pass that stops after the last tapped layer, clamped every 20 iterations) needs to
reach the loss the tutorial's loop reaches after a fixed number of evaluations. Row 2 is the wall time of the
notebook's recipe (centred Gram, upsampled 2x, the registry's layers) at 256 px, against the tutorial's loop for
the same number of loss evaluations.
"""

from __future__ import annotations

import time

import torch
from run import row
from torch import nn

from cnn_helpers.core.data import load_image, resize
from cnn_helpers.pretrained.models import load_pretrained
from cnn_helpers.style.gram import content_loss, style_loss, style_targets
from cnn_helpers.style.synthesis import style_transfer

SMALL, LARGE, EVALUATIONS = 128, 256, 100  # px, px, loss evaluations of the tutorial's loop in row 1


def tutorial_layers(model: nn.Module) -> tuple[list[str], list[str]]:
    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    return convs[:5], [convs[3]]


def tutorial_loop(model, content, style, style_layers, content_layers, *, content_weight: float, evaluations: int):
    """The tutorial's optimization loop on our loss functions: returns the losses and seconds per evaluation."""
    modules = dict(model.named_modules())
    layers = style_layers + [n for n in content_layers if n not in style_layers]
    seen = {}
    handles = [modules[n].register_forward_hook(lambda _m, _i, out, n=n: seen.__setitem__(n, out)) for n in layers]
    targets = style_targets(model, style, style_layers, centred=False, upsample=1)
    with torch.no_grad():
        model(content)
    content_maps = {n: seen[n].detach() for n in content_layers}
    x = content.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([x])
    losses, seconds, start = [], [], time.perf_counter()

    def closure():
        with torch.no_grad():
            x.clamp_(0, 1)
        optimizer.zero_grad()
        model(x)  # the whole network, as the tutorial's nn.Sequential of loss modules up to the last loss
        loss = (style_loss(seen, targets, centred=False) + content_weight * content_loss(seen, content_maps)).sum()
        loss.backward()
        losses.append(loss.item()); seconds.append(time.perf_counter() - start)
        return loss

    try:
        while len(losses) < evaluations:
            optimizer.step(closure)
    finally:
        for handle in handles:
            handle.remove()
    return losses[:evaluations], seconds[:evaluations]


def run() -> list[dict]:
    pre = load_pretrained("efficientnet_lite0")
    model = pre.model
    rows = []
    content, style = resize(load_image("cat"), SMALL), resize(load_image("scream"), SMALL)
    s_layers, c_layers = tutorial_layers(model)
    ref_loss, ref_seconds = tutorial_loop(model, content, style, s_layers, c_layers, content_weight=0.1,
                                          evaluations=EVALUATIONS)
    _, ours = style_transfer(model, content, style, style_layers=s_layers, content_layers=c_layers, content_weight=0.1,
                             centred=False, upsample=1, pixels=False, steps=2 * EVALUATIONS)
    reached = next((i for i, loss in enumerate(ours["loss"]) if loss <= ref_loss[-1]), None)
    if reached is None:
        rows.append({"benchmark": f"style transfer {SMALL} px: time to the tutorial loop's loss after {EVALUATIONS} evaluations",
                     "ours": f"not reached in {2 * EVALUATIONS} iterations", "reference": f"{ref_seconds[-1] * 1e3:.0f} ms",
                     "ratio": "", "note": f"ours ended at {ours['loss'][-1]:.4f}, tutorial {ref_loss[-1]:.4f}"})
    else:
        rows.append(row(f"style transfer {SMALL} px: time to the tutorial loop's loss after {EVALUATIONS} evaluations",
                        ours["seconds"][reached], ref_seconds[-1],
                        f"same objective; ours needed {reached + 1} evaluations", "PyTorch tutorial loop"))
    content, style = resize(load_image("cat"), LARGE), resize(load_image("scream"), LARGE)
    _, recipe = style_transfer(model, content, style, style_layers=pre.info.style_layers,
                               content_layers=pre.info.content_layers, steps=100)
    _, ref_seconds = tutorial_loop(model, content, style, s_layers, c_layers, content_weight=0.1,
                                   evaluations=len(recipe["loss"]))
    rows.append(row(f"style transfer {LARGE} px, notebook recipe (100 iterations, input upsampled 2x)", recipe["seconds"][-1],
                    ref_seconds[-1], f"{len(recipe['loss'])} evaluations each; ours feeds 4x the pixels",
                    "PyTorch tutorial loop"))
    return rows
