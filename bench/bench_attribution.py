"""cnn_helpers.attribution vs Captum: same model, image (the dog, 224 px), settings.

Occlusion (VGG-16, ResNet-50, EfficientNet-Lite0; windows 32/stride 16 and 16/8): the exact incremental path
and the approximate one against our plain batched path and against Captum's ``Occlusion`` at its fastest
``perturbations_per_eval`` (of 1, 4, 16, picked on a short run); our batched path likewise runs at its fastest
``perturbations_per_eval`` (of the default, 1, 4, 16, 64) on a copy of the model with batch norm folded into the
convolutions (as the exact path folds it), in the faster memory format (contiguous or channels-last), so that it is
the best plain baseline there is. Beside each ratio: the ceilings that counting multiply-accumulates and counting
the values every layer writes allow (``Plan.ceiling``); if a pass's time is any mix ``a * MACs + b * values`` the
speed-up is at most the larger of the two, and the run fails when a speed-up exceeds that (see run.py). The MAC
ceiling alone is no bound where memory traffic sets the time (EfficientNet's depthwise and element-wise layers: a
window's recomputation writes few values but, in the late 1 x 1 convolutions recomputed whole, most MACs). Also the
approximate map's correlation with the exact one, and peak memory (resident, above what was in use before; Linux). The batched path and Captum cost the
same per window at any stride, so at stride 8 they are timed at stride 16 and scaled by the window count
(``BENCH_OCCLUSION_FULL=1`` times them in full: about 4x longer). VGG-16 and ResNet-50 have random weights
unless torchvision's are cached (same cost; the approximate map's correlation depends on the weights).
About 10 minutes on 2 idle CPU cores, most of it the reference paths.

Saliency, Integrated Gradients and SmoothGrad: time ratios on EfficientNet-Lite0, same results. Calls are
interleaved and the fastest of each kept, so that other load on the machine affects both sides alike.
"""

from __future__ import annotations

import ctypes
import os
import time
import warnings
from copy import deepcopy
from pathlib import Path
from typing import Callable

import torch
import torchvision
from run import row

from cnn_helpers import attribution as attr
from cnn_helpers.attribution.occlusion import incremental
from cnn_helpers.attribution.occlusion.map import accumulate
from cnn_helpers.attribution.occlusion.plan import window_grid, window_offsets
from cnn_helpers.core.data import load_image
from cnn_helpers.core.fold import fold_batch_norm
from cnn_helpers.pretrained.models import (IMAGENET_MEAN, IMAGENET_STD, WHEEL_MODELS, ImageClassifier, Normalize,
                                           available_models, load_pretrained)

SIZE = 224
OCCLUSION_MODELS = ("vgg16", "resnet50", "efficientnet_lite0")
CAPTUM_PER_EVAL = (1, 4, 16)
BATCHED_PER_EVAL = (None, 1, 4, 16, 64)  # None: occlusion_map's own default (activations under 24 MB per batch)
OCCLUSION_FULL = os.environ.get("BENCH_OCCLUSION_FULL") == "1"


def fastest(calls: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Seconds of the fastest of ``rounds`` runs of each call, the calls interleaved round by round."""
    best = {name: float("inf") for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def peak_memory(call: Callable[[], object]) -> tuple[object, float | None]:
    """(result, peak resident memory in MB above what was in use before the call); None off Linux/glibc."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed memory back, so that the peak starts from what is in use
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current resident size
        before = _status("VmRSS")
    except OSError:
        return call(), None
    result = call()
    return result, (_status("VmHWM") - before) / 1024


def _memory_note(memory: dict[str, float | None]) -> str:
    """The exact and batched paths' peak memory for a row's note: a peak under 1 MB above what was resident before
    means the call reused memory a previous case had left resident, not that it needed none: said so, no ratio."""
    exact, batched = memory["exact"], memory["batched"]
    if exact is None:
        return ""
    if min(exact, batched) < 1:
        return ("; peak memory not measurable in this run (a path ran in memory already resident: "
                f"{max(exact, 0):.0f} MB exact, {max(batched, 0):.0f} MB batched above the start)")
    return f"; peak memory {exact:.0f} MB vs {batched:.0f} MB batched ({exact / batched:.1f}x)"


def _status(field: str) -> int:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1])  # kB


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()


def _occlusion_model(name: str) -> tuple[torch.nn.Module, str]:
    """The pretrained model where its weights are here, else the architecture with random weights (same cost)."""
    if name in WHEEL_MODELS or available_models()[name]:
        return load_pretrained(name).model, "pretrained"
    torch.manual_seed(0)
    net = torchvision.models.get_model(name, weights=None)
    return ImageClassifier(net, Normalize(IMAGENET_MEAN, IMAGENET_STD)).eval().requires_grad_(False), "random weights"


def _captum_occlusion(model: torch.nn.Module, x: torch.Tensor, target: int, window: int, stride: int, per_eval: int):
    from captum.attr import Occlusion

    return lambda: Occlusion(model).attribute(x, sliding_window_shapes=(3, window, window), strides=(3, stride, stride),
                                              target=target, perturbations_per_eval=per_eval)


def _captum_best(model: torch.nn.Module, x: torch.Tensor, target: int) -> int:
    """Captum's fastest perturbations_per_eval among CAPTUM_PER_EVAL, timed on a short run (window 32, stride 32)."""
    times = fastest({per_eval: _captum_occlusion(model, x, target, 32, 32, per_eval) for per_eval in CAPTUM_PER_EVAL}, 1)
    return min(times, key=times.get)


def _batched_best(model: torch.nn.Module, x: torch.Tensor, target: int) -> tuple[torch.nn.Module, int | None, str]:
    """Our batched path's fastest configuration, timed on a short run (window 32, stride 32): perturbations_per_eval
    among BATCHED_PER_EVAL, then at that batch size ``model`` against a channels-last copy (oneDNN's depthwise and
    pointwise kernels can be faster on it). Returns (model to use, perturbations_per_eval, memory format)."""
    def batched(net, per_eval):
        return lambda: attr.occlusion_map(net, x, target, window=32, stride=32, method="batched",
                                          perturbations_per_eval=per_eval)
    times = fastest({per_eval: batched(model, per_eval) for per_eval in BATCHED_PER_EVAL}, 1)
    per_eval = min(times, key=times.get)
    formats = {"contiguous": model, "channels-last": deepcopy(model).to(memory_format=torch.channels_last)}
    times = fastest({name: batched(net, per_eval) for name, net in formats.items()}, 2)
    layout = min(times, key=times.get)
    return formats[layout], per_eval, layout


def _windows(window: int, stride: int) -> int:
    return len(window_offsets(SIZE, window, stride)) ** 2


def _occlusion_case(model, plain_model, x, target, window, stride, captum_per_eval, batched_per_eval) -> dict:
    """Seconds and peak memory of batched (on ``plain_model``, batch norm folded), Captum, exact and approximate
    occlusion (each run once), and the approximate map's correlation with the exact one."""
    results, memory = {}, {}

    def measured(name: str, call: Callable[[], object]) -> Callable[[], None]:
        def go() -> None:
            results[name], memory[name] = peak_memory(call)
        return go

    run = lambda method, s=stride, per_eval=None: lambda: attr.occlusion_map(  # noqa: E731
        plain_model if method == "batched" else model, x, target, window=window, stride=s, method=method,
        perturbations_per_eval=per_eval)
    proxy = stride if OCCLUSION_FULL or stride == 16 else 16  # the reference paths' cost per window is the same
    times = fastest({"batched": measured("batched", run("batched", proxy, batched_per_eval)),
                     "captum": measured("captum", _captum_occlusion(model, x, target, window, proxy, captum_per_eval)),
                     "exact": measured("exact", run("incremental")),
                     "approximate": measured("approximate", run("approximate"))}, rounds=1)
    scale = (_windows(window, stride) + 1) / (_windows(window, proxy) + 1)
    times["batched"], times["captum"] = times["batched"] * scale, times["captum"] * scale
    plain = results["batched"]
    same = (results["exact"] - plain).abs().max().item() / (plain.max() - plain.min()).item() if proxy == stride else None
    return {"times": times, "corr": _correlation(results["approximate"], results["exact"]), "memory": memory,
            "scaled": proxy != stride, "difference": same}


def _occlusion() -> list[dict]:
    rows = []
    x = load_image("dog", size=SIZE)
    for name in OCCLUSION_MODELS:
        model, weights = _occlusion_model(name)
        with torch.no_grad():
            target = model(x).argmax(1).item()
        plain_model = fold_batch_norm(model, x)
        folded = plain_model is not model
        captum_per_eval = _captum_best(model, x, target)
        plain_model, batched_per_eval, layout = _batched_best(plain_model, x, target)
        baseline = f"batched, ppe={batched_per_eval or 'default'}{', BN folded' if folded else ''}, {layout}"
        for window, stride in ((32, 16), (16, 8)):
            plan = attr.occlusion_plan(model, x, window=window, stride=stride)
            full, recomputed = plan.macs()
            case = _occlusion_case(model, plain_model, x, target, window, stride, captum_per_eval, batched_per_eval)
            t, ceiling, by_values = case["times"], plan.ceiling(), plan.ceiling(by="values")
            bound = max(ceiling, by_values)  # whatever mix of arithmetic and memory traffic sets the time
            title = f"occlusion {name} ({weights}), {SIZE} px, window {window}, stride {stride} ({len(plan.windows)} windows)"
            scaled = " (timed at stride 16, scaled)" if case["scaled"] else ""
            speedup = t["batched"] / t["exact"]
            rows.append(row(f"{title}: exact", t["exact"], t["batched"],
                            f"speed-up {speedup:.2f}x = {speedup / bound:.0%} of the ceiling {bound:.2f}x, the larger "
                            f"of: by MACs {ceiling:.2f}x ({recomputed / full:.0%} of the MACs per window), by values "
                            f"written {by_values:.2f}x{_memory_note(case['memory'])}"
                            + ("" if case["difference"] is None else f"; maps equal to {case['difference']:.0e} of their range"),
                            baseline + scaled, ceiling=bound))
            rows.append(row(f"{title}: exact vs Captum", t["exact"], t["captum"],
                            f"speed-up {t['captum'] / t['exact']:.2f}x; MAC ceiling {ceiling:.2f}x",
                            f"Captum Occlusion, ppe={captum_per_eval}{scaled}"))
            rows.append(row(f"{title}: approximate", t["approximate"], t["batched"],
                            f"speed-up {t['batched'] / t['approximate']:.2f}x, map correlation with exact {case['corr']:.3f}; "
                            f"exact MAC ceiling {ceiling:.2f}x", baseline + scaled))
            print(rows[-3]["note"], rows[-2]["note"], rows[-1]["note"], sep="\n", flush=True)
    return rows


def _field_limit(limit: float = 0.5) -> list[dict]:
    """The paper's other approximation, projective-field thresholding, on EfficientNet-Lite0 (window 32, stride 16):
    its speed and its map's correlation with the exact one (why ``method="approximate"`` drills down instead)."""
    from cnn_helpers.core.checks import check_baseline
    from cnn_helpers.core.state import evaluating

    model, x = load_pretrained("efficientnet_lite0").model, load_image("dog", size=SIZE)
    rows, cols, size = window_grid(x.shape[-2:], 32, 16)
    windows = [(y, c) for y in rows for c in cols]
    with torch.no_grad():
        labels = model(x).argmax(1)
    maps = {}

    def drops(field_limit: float | None) -> Callable[[], None]:
        def go() -> None:
            with evaluating(model), torch.inference_mode():
                d = incremental.window_drops(model, x, labels, lambda logits: logits, windows=windows, grid=(len(rows), len(cols)),
                                           window=size, fill=check_baseline(0.0, x), field_limit=field_limit)
            maps[field_limit] = accumulate(d, windows, x.shape[-2:], size)
        return go

    times = fastest({"exact": drops(None), "threshold": drops(limit)}, rounds=1)
    return [row(f"occlusion efficientnet_lite0, {SIZE} px, window 32, stride 16: projective-field threshold {limit}",
                times["threshold"], times["exact"],
                f"map correlation with exact {_correlation(maps[limit], maps[None]):.2f}", "exact incremental")]


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
    return _occlusion() + _field_limit() + _gradient_methods(model, x, target)
