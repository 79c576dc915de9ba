"""cnn_helpers.featurevis: gradient-ascent steps per second against a plain loop and torch-lucent.

Same model (the offline EfficientNet-Lite0), 128 px, one image, the course's recipe (Fourier, colour-
decorrelated, standard transforms, Adam lr 0.05). Times are per optimization step, the fastest of a few
interleaved rounds (other load on the machine affects every side alike).

* **plain loop**: the same parameterization and transforms written as a bare loop (no checks, no hooks,
  no state guards): what the package's bookkeeping costs.
* **channel objective**: a middle layer's channel. The package stops each forward pass after that layer;
  the plain loop runs the whole network and reads the layer with a hook, as Lucent does.
* **torch-lucent 0.1.8** (Lucent's ``render_vis``, same objective): it needs ``kornia<=0.4.1`` (2020).
  ``pip install --dry-run torch-lucent`` resolves with torch 2.14.1 without downgrading anything, but
  pulls in kornia 0.4.1 and test tools (coveralls, pytest-mock); it is not in the course's requirements.
  Installed with ``pip install --no-deps torch-lucent==0.1.8 kornia==0.4.1 decorator`` (a separate venv
  that sees the course's packages) it runs with torch 2.14.1; measured there (1 thread, loaded machine): ours
  0.87x Lucent's time per step for a class logit, 0.74x for a channel (early stop). Without it the row says so.
"""

from __future__ import annotations

from typing import Callable

import torch
from bench_attribution import fastest  # the benches' one interleaved timer (it could move into run.py)
from run import row

from cnn_helpers.featurevis import params as fp
from cnn_helpers.featurevis import transforms as tf
from cnn_helpers.featurevis.render import visualize
from cnn_helpers.featurevis.objectives import channel, class_logit
from cnn_helpers.pretrained.models import load_pretrained

SIZE, STEPS, TARGET, CHANNEL = 128, 12, 1, 5  # goldfish


def plain_loop(model: torch.nn.Module, score: Callable[[torch.Tensor], torch.Tensor], steps: int) -> torch.Tensor:
    """Gradient ascent in a few lines: the same parameterization, transforms and optimizer, nothing else."""
    generator = torch.Generator().manual_seed(0)
    param = fp.fourier(SIZE, generator=generator)
    transforms = tf.standard_transforms(SIZE)
    optimizer = torch.optim.Adam(param.params, lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        (-score(transforms(param(), generator)).sum()).backward()
        optimizer.step()
    return param().detach()


def _hooked(model: torch.nn.Module, layer: str) -> Callable[[torch.Tensor], torch.Tensor]:
    module = dict(model.named_modules())[layer]
    seen: dict[str, torch.Tensor] = {}
    module.register_forward_hook(lambda _m, _i, out: seen.__setitem__("out", out))  # the bench's own model copy

    def score(x: torch.Tensor) -> torch.Tensor:
        model(x)
        return seen["out"][:, CHANNEL].mean(dim=(1, 2))
    return score


def _lucent(model: torch.nn.Module, layer: str | None) -> Callable[[], object] | str:
    try:
        from lucent.optvis import objectives, param, render, transform
    except ImportError as err:
        return (f"not measured: torch-lucent is not installed ({err.name} missing). It needs kornia<=0.4.1, so the course "
                "leaves it out; it installs next to torch 2.14.1 without a downgrade and runs there: "
                "pip install --no-deps torch-lucent==0.1.8 kornia==0.4.1 decorator (see bench_featurevis.py)")
    objective = objectives.channel(layer.replace(".", "_"), CHANNEL) if layer else objectives.channel("labels", TARGET)

    def call() -> object:
        return render.render_vis(model, objective, lambda: param.image(SIZE), transforms=transform.standard_transforms,
                                 thresholds=(STEPS,), show_image=False, progress=False, preprocess=False,
                                 fixed_image_size=SIZE + 24)  # the padded size ours feeds: the same work
    try:
        call()
    except Exception as err:  # an old kornia against a new torch: report it instead of failing the whole bench
        return f"torch-lucent failed: {type(err).__name__}: {str(err).splitlines()[0][:80]}"
    return call


def run() -> list[dict]:
    torch.manual_seed(0)
    pre = load_pretrained("efficientnet_lite0")
    model, layer = pre.model, pre.info.stages[len(pre.info.stages) // 2]
    reference = load_pretrained("efficientnet_lite0").model  # a copy the hooks and .grad of the plain loop may touch
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    rows = []
    cases = {
        "class logit": (lambda: visualize(model, class_logit(TARGET), size=SIZE, steps=STEPS, generator=gen()),
                        lambda: plain_loop(reference, lambda x: reference(x)[:, TARGET], STEPS), None),
        f"channel {CHANNEL} of {layer}": (
            lambda: visualize(model, channel(layer, CHANNEL), size=SIZE, steps=STEPS, generator=gen()),
            lambda: plain_loop(reference, _hooked(reference, layer), STEPS), layer),
    }
    for name, (ours, plain, lucent_layer) in cases.items():
        lucent = _lucent(reference, lucent_layer)
        calls = {"ours": ours, "plain": plain, **({"lucent": lucent} if callable(lucent) else {})}
        times = {k: v / STEPS for k, v in fastest(calls, rounds=3).items()}
        note = "early stop after the layer" if lucent_layer else "full forward pass"
        rows.append(row(f"gradient ascent step, {name}, {SIZE} px", times["ours"], times["plain"],
                        f"{note}; {1 / times['ours']:.1f} steps/s", "plain loop"))
        if callable(lucent):
            rows.append(row(f"gradient ascent step, {name}, {SIZE} px", times["ours"], times["lucent"],
                            "both feed the padded 152 px image (Lucent resizes after its transforms)", "torch-lucent 0.1.8"))
        else:
            rows.append({"benchmark": f"gradient ascent step, {name}, vs torch-lucent",
                         "ours": f"{times['ours'] * 1e3:.1f} ms", "reference": "-", "ratio": "n/a",
                         "note": f"not measured: {lucent}"})
    return rows
