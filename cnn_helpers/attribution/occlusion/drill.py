"""Incremental occlusion, part 3: the approximate mode's drill-down, which computes only the windows it must.

Used by :mod:`cnn_helpers.occlusion` (``method="approximate"`` of :func:`cnn_helpers.attribution.occlusion_map`,
notebook 03); its tolerance (``attribution.APPROXIMATE``) is chosen in ``bench/bench_attribution.py``.

As Nakandala et al.: compute every second window (in both directions, a quarter of them), interpolate the others
bilinearly, then compute exactly, round by round, the windows next to large drops or next to large interpolation
errors, until the estimates left would change the map little. A drop map is smooth almost everywhere (the windows
overlap) and sharp only around the few places the class depends on, so most windows never run.

Reference: Nakandala, Kumar, Papakonstantinou, "Incremental and Approximate Inference for Faster
Occlusion-based Deep CNN Explanations", SIGMOD 2019.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["drill_down"]


def _lattice(count: int) -> list[int]:
    """Every second index, and the last one (so that every index lies between two lattice points)."""
    return sorted(set(range(0, count, 2)) | {count - 1})


def _interpolate(coarse: torch.Tensor, ys: list[int], xs: list[int], grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear estimates (ny * nx, N) of all windows' drops from the lattice's (ny', nx', N), and each window's
    priority (ny * nx,): how far the drops at its four surrounding lattice points lie from the median drop."""
    corners, weights = [], []
    for points, count in ((ys, grid[0]), (xs, grid[1])):
        lattice = torch.tensor(points, device=coarse.device)
        index = torch.arange(count, device=coarse.device)
        upper = torch.searchsorted(lattice, index)
        lower = torch.where(lattice[upper] == index, upper, upper - 1)
        corners.append((lower, upper))
        weights.append(((index - lattice[lower]) / (lattice[upper] - lattice[lower]).clamp(min=1)).to(coarse.dtype))
    (y0, y1), (x0, x1), (ty, tx) = corners[0], corners[1], (weights[0][:, None, None], weights[1][None, :, None])
    at = lambda a, b: coarse[a][:, b]  # noqa: E731
    estimate = ((1 - ty) * (1 - tx) * at(y0, x0) + (1 - ty) * tx * at(y0, x1) + ty * (1 - tx) * at(y1, x0)
                + ty * tx * at(y1, x1))
    spread = (coarse - coarse.flatten(0, 1).median(dim=0).values).abs()
    priority = torch.stack([spread[a][:, b] for a in (y0, y1) for b in (x0, x1)]).amax(dim=(0, 3))
    return estimate.flatten(0, 1), priority.flatten()


def drill_down(drops_of: Callable[[torch.Tensor], torch.Tensor], grid: tuple[int, int], tolerance: float,
                round_fraction: float = 0.1) -> torch.Tensor:
    """(W, N) drops: every second window's computed, the others interpolated, then computed in rounds, those next
    to large drops or to large interpolation errors first, until the windows still interpolated would (if they
    erred like the last round) add less than ``tolerance`` of the drops' variance."""
    ys, xs = _lattice(grid[0]), _lattice(grid[1])
    coarse = torch.tensor([y * grid[1] + x for y in ys for x in xs])
    measured = drops_of(coarse)
    estimate, priority = _interpolate(measured.view(len(ys), len(xs), -1), ys, xs, grid)
    drops, scale = estimate.clone(), priority.max().clamp(min=1e-12)
    priority = (priority / scale).cpu()
    drops[coarse.to(drops.device)] = measured
    known = torch.zeros(grid[0] * grid[1], dtype=torch.bool)
    known[coarse] = True
    size = math.ceil(round_fraction * int((~known).sum()))
    while not bool(known.all()):
        candidates = (~known).nonzero()[:, 0]
        chosen = candidates[priority[candidates].argsort(descending=True)[:size]]
        drops[chosen.to(drops.device)] = drops_of(chosen)
        known[chosen] = True
        error = (drops - estimate)[chosen.to(drops.device)]
        spread = drops[known.to(drops.device)].var(dim=0, correction=0).clamp(min=1e-12)
        if float(((~known).sum() * error.pow(2).mean(dim=0) / (known.sum() * spread)).max()) < tolerance:
            break
        observed = torch.zeros(grid[0] * grid[1])
        observed[chosen] = (error.abs().amax(dim=1) / scale).cpu()
        priority = torch.maximum(priority, F.max_pool2d(observed.view(1, 1, *grid), 3, 1, 1).flatten())
    return drops
