"""cnn_helpers.adversarial vs torchattacks 3.3.0: same model (the offline EfficientNet-Lite0), photos, settings.

PGD L-inf, 10 steps, eps 2/255, alpha 0.5/255, on a batch of 8 bundled photos at 224 px, untargeted (away from the
clean prediction) and targeted (random classes), without random start. Two rows per attack: our default (steps after
the first on a batch-norm-folded copy of the model: the same function up to float rounding, so some pixels differ,
the note says how many and whether the predictions agree) and ``fold=False``, the same work as torchattacks and
the same images (the note says whether they are identical). FGSM (never folded: one step) as a last row. How much
float rounding alone changes PGD's images is measured beside them: torchattacks run with another thread count (its
sums in another order), its pixels and success compared with its own run. Calls are
interleaved (the order reversed every other round) and the fastest of each kept, so that other load on the machine
affects both alike. The goal is a ratio (ours / torchattacks time) of at most 1.0, i.e. a speed-up of at least 1.0x.
How far apart two timings of the same work fall is measured in the same run: torchattacks timed twice as two
contestants (the note's "same work timed twice"); a ratio within that spread is no difference.
About three minutes on 2 idle CPU cores.
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


def _compare(name: str, model: torch.nn.Module, ours: dict[str, Callable[[], torch.Tensor]],
             theirs: Callable[[], torch.Tensor], goal: torch.Tensor, targeted: bool) -> list[dict]:
    """One row per entry of ``ours`` (its key: the row's name suffix) against ``theirs``, all timed interleaved."""
    adv = {who: call() for who, call in {**ours, "theirs": theirs}.items()}
    with torch.no_grad():
        hits = {who: model(a).argmax(1) for who, a in adv.items()}
    success = {who: ((h == goal) if targeted else (h != goal)).float().mean().item() for who, h in hits.items()}
    calls = {**ours, "theirs": theirs, "theirs again": lambda: theirs()}
    times = {who: float("inf") for who in calls}
    for round_ in range(ROUNDS):
        for who, call in (list(calls.items()) if round_ % 2 == 0 else list(calls.items())[::-1]):
            times[who] = min(times[who], fastest({who: call}, rounds=1)[who])
    noise = max(times["theirs"], times["theirs again"]) / min(times["theirs"], times["theirs again"])
    threads = torch.get_num_threads()
    try:  # what float rounding alone does: torchattacks itself with another thread count sums in another order
        torch.set_num_threads(1 if threads > 1 else 2)
        other = theirs()
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        hit_other = model(other).argmax(1)
    rounding = (f"torchattacks itself at {torch.get_num_threads()} vs {1 if threads > 1 else 2} threads (rounding "
                f"alone): {(other != adv['theirs']).float().mean().item():.1%} of the pixel values differ, success "
                f"{((hit_other == goal) if targeted else (hit_other != goal)).float().mean().item():.0%}")
    rows = []
    for who in ours:
        differ = (adv[who] != adv["theirs"]).float().mean().item()
        same = "identical" if differ == 0 else f"DIFFER in {differ:.1%} of the pixel values"
        agree = "agree" if torch.equal(hits[who], hits["theirs"]) else "DIFFER"
        note = (f"images {same}; predictions on them {agree}; success ours {success[who]:.0%}, torchattacks "
                f"{success['theirs']:.0%}; speed-up {times['theirs'] / times[who]:.2f}x; the same work timed "
                f"twice differs by {noise - 1:.0%}; fastest of {ROUNDS} interleaved runs each; {rounding}")
        rows.append(row(f"{name}{who}", times[who], times["theirs"], note, "torchattacks"))
    return rows


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
    kwargs = dict(eps=EPS, alpha=ALPHA, steps=STEPS, random_start=False)

    def both(labels: torch.Tensor, **options) -> dict[str, Callable[[], torch.Tensor]]:
        return {" (default: folded)": lambda: pgd(model, x, labels, **kwargs, **options),
                " (fold=False)": lambda: pgd(model, x, labels, **kwargs, **options, fold=False)}
    return [
        *_compare(f"PGD L-inf {STEPS} steps, {label}", model, both(clean), lambda: untargeted(x, clean), clean,
                  targeted=False),
        *_compare(f"PGD L-inf {STEPS} steps targeted, {label}", model, both(target, targeted=True),
                  lambda: towards(x, target), target, targeted=True),
        *_compare(f"FGSM, {label}", model, {"": lambda: fgsm(model, x, clean, eps=EPS)}, lambda: one_step(x, clean),
                  clean, targeted=False),
    ]
