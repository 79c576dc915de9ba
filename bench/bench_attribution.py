"""cnn_helpers.attribution vs Captum: same model (the offline EfficientNet-Lite0), image, settings.

Occlusion: ours with its automatic batch size against Captum's ``Occlusion`` at its best
``perturbations_per_eval`` among 16 and 32 (8 or one window per forward are slower still and left out to
keep the run short); the maps must be identical. Beyond batching, ours feeds the occluded batches
channels-last (oneDNN's faster convolution layout on a CPU). Saliency, Integrated Gradients and SmoothGrad:
time ratios, same results. Calls are interleaved and the fastest of each kept, so that other load on the
machine affects both sides alike. About 1-2 minutes on 2 idle CPU cores.
"""

from __future__ import annotations

import time
import warnings
from typing import Callable

import torch
from run import row

from cnn_helpers import attribution as attr
from cnn_helpers.data import load_image
from cnn_helpers.models import load_pretrained

SIZE, WINDOW, STRIDE = 224, 32, 16


def fastest(calls: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Seconds of the fastest of ``rounds`` runs of each call, the calls interleaved round by round."""
    best = {name: float("inf") for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _occlusion(model: torch.nn.Module, x: torch.Tensor, target: int) -> list[dict]:
    from captum.attr import Occlusion

    def captum(per_eval: int) -> Callable[[], torch.Tensor]:
        return lambda: Occlusion(model).attribute(x, sliding_window_shapes=(3, WINDOW, WINDOW), strides=(3, STRIDE, STRIDE),
                                                  target=target, perturbations_per_eval=per_eval)

    calls = {"ours": lambda: attr.occlusion_map(model, x, target, window=WINDOW, stride=STRIDE),
             "ppe=16": captum(16), "ppe=32": captum(32)}
    ours, theirs = calls["ours"](), calls["ppe=32"]()
    times = fastest(calls, rounds=2)
    best = min(("ppe=16", "ppe=32"), key=times.get)
    diff = (ours - theirs[:, 0]).abs().max().item()
    windows = len(range(0, SIZE - WINDOW + STRIDE, STRIDE)) ** 2
    note = (f"{windows} windows; maps {'identical' if diff < 1e-4 else 'DIFFER'} (max diff {diff:.1e}); "
            f"Captum ppe=16 {times['ppe=16']:.1f} s, ppe=32 {times['ppe=32']:.1f} s")
    return [row(f"occlusion {SIZE} px, window {WINDOW}, stride {STRIDE}", times["ours"], times[best], note,
                f"Captum Occlusion, {best}")]


def _gradient_methods(model: torch.nn.Module, x: torch.Tensor, target: int) -> list[dict]:
    from captum.attr import IntegratedGradients, NoiseTunnel, Saliency

    t = torch.tensor([target])

    def captum_smoothgrad() -> torch.Tensor:
        torch.manual_seed(0)
        return NoiseTunnel(Saliency(model)).attribute(x, target=t, nt_type="smoothgrad", nt_samples=8, stdevs=0.15,
                                                      nt_samples_batch_size=8).amax(1)

    cases = {
        "saliency": (lambda: attr.saliency_map(model, x, target),
                     lambda: Saliency(model).attribute(x, target=t, abs=True).amax(1)),
        "Integrated Gradients, 16 steps": (
            lambda: attr.integrated_gradients(model, x, target, steps=16),
            lambda: IntegratedGradients(model).attribute(x, target=t, n_steps=16, internal_batch_size=16)),
        "SmoothGrad, 8 samples": (
            lambda: attr.smoothgrad(model, x, target, samples=8, generator=torch.Generator().manual_seed(0)),
            captum_smoothgrad),
    }
    rows = []
    for name, (ours, theirs) in cases.items():
        same = torch.allclose(ours(), theirs(), atol=1e-5, rtol=1e-4)
        times = fastest({"ours": ours, "theirs": theirs}, rounds=3)
        rows.append(row(f"{name}, {SIZE} px", times["ours"], times["theirs"],
                        "results equal" if same else "RESULTS DIFFER", "Captum"))
    return rows


def run() -> list[dict]:
    warnings.filterwarnings("ignore", category=UserWarning, module="captum")
    model = load_pretrained("efficientnet_lite0").model
    x = load_image("dog", size=SIZE)
    with torch.no_grad():
        target = model(x).argmax(1).item()
    return _occlusion(model, x, target) + _gradient_methods(model, x, target)
