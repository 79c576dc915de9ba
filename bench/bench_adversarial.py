"""cnn_helpers.adversarial vs torchattacks 3.3.0: same model (the offline EfficientNet-Lite0), photos, settings.

PGD L-inf, 10 steps, eps 2/255, alpha 0.5/255, on a batch of 8 bundled photos at 224 px, untargeted (away from the
clean prediction) and targeted (random classes), without random start so that both produce the same images and
therefore the same success rate (checked: the row's note says whether the images are identical). FGSM as a
second row. Calls are interleaved (the order reversed every other round) and the fastest of each kept, so that other
load on the machine affects both alike. The goal is a ratio (ours / torchattacks time) of at most 1.0, i.e. a speed-up
of at least 1.0x. How far apart two timings of the same work fall is measured in the same run: torchattacks timed
twice as two contestants (the note's "same work timed twice"); a ratio within that spread is no difference.
About a minute on 2 idle CPU cores.
"""

from __future__ import annotations

import contextlib
import io
from typing import Callable

import torch
from bench_attribution import fastest  # the benches' one interleaved timer
from run import row

from cnn_helpers.adversarial.attacks import fgsm, pgd
from cnn_helpers.core.data import load_image
from cnn_helpers.pretrained.models import load_pretrained

SIZE, EPS, ALPHA, STEPS = 224, 2 / 255, 0.5 / 255, 10
ROUNDS = 5
PHOTOS = ("cat", "coffee", "dog", "eagle", "astronaut", "rocket", "china", "flower")


def _compare(name: str, model: torch.nn.Module, ours: Callable[[], torch.Tensor], theirs: Callable[[], torch.Tensor],
             goal: torch.Tensor, targeted: bool) -> dict:
    a, b = ours(), theirs()
    with torch.no_grad():
        hit_a, hit_b = model(a).argmax(1), model(b).argmax(1)
    success = [((h == goal) if targeted else (h != goal)).float().mean().item() for h in (hit_a, hit_b)]
    calls = {"ours": ours, "theirs": theirs, "theirs again": lambda: theirs()}
    times = {name: float("inf") for name in calls}
    for round_ in range(ROUNDS):
        for who, call in (list(calls.items()) if round_ % 2 == 0 else list(calls.items())[::-1]):
            times[who] = min(times[who], fastest({who: call}, rounds=1)[who])
    noise = max(times["theirs"], times["theirs again"]) / min(times["theirs"], times["theirs again"])
    note = (f"images {'identical' if torch.equal(a, b) else 'DIFFER'}; success ours {success[0]:.0%}, "
            f"torchattacks {success[1]:.0%}; speed-up {times['theirs'] / times['ours']:.2f}x; the same work timed "
            f"twice differs by {noise - 1:.0%}; fastest of {ROUNDS} interleaved runs each")
    return row(name, times["ours"], times["theirs"], note, "torchattacks")


def run() -> list[dict]:
    import torchattacks

    model = load_pretrained("efficientnet_lite0").model
    x = torch.cat([load_image(n, size=SIZE) for n in PHOTOS])
    with torch.no_grad():
        clean = model(x).argmax(1)
    target = torch.randint(0, 1000, (len(x),), generator=torch.Generator().manual_seed(0))
    untargeted = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=False)
    towards = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=False)
    with contextlib.redirect_stdout(io.StringIO()):  # torchattacks prints the mode change
        towards.set_mode_targeted_by_function(lambda images, labels: labels)
    one_step = torchattacks.FGSM(model, eps=EPS)
    label = f"{len(x)} photos {SIZE} px, eps 2/255"
    return [
        _compare(f"PGD L-inf {STEPS} steps, {label}", model,
                 lambda: pgd(model, x, clean, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=False),
                 lambda: untargeted(x, clean), clean, targeted=False),
        _compare(f"PGD L-inf {STEPS} steps targeted, {label}", model,
                 lambda: pgd(model, x, target, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=False, targeted=True),
                 lambda: towards(x, target), target, targeted=True),
        _compare(f"FGSM, {label}", model, lambda: fgsm(model, x, clean, eps=EPS), lambda: one_step(x, clean), clean,
                 targeted=False),
    ]
