"""Incremental occlusion, part 2: which rectangle of every layer a window changes, and what recomputing it costs.

Used by :mod:`.incremental` (and so by notebook 03, which draws these regions layer by layer).

A window op (k x k kernel, stride s, dilation d, padding p) whose input changed in rows [a, a + h) changes its
outputs o with o * s - p + (k - 1) d >= a and o * s - p <= a + h - 1; a pointwise op changes the union of what its
inputs changed; anything else changes everything. All windows of a plan share one rectangle size per layer
(the largest; a smaller one is shifted to stay inside the map, which only adds unchanged positions), so that a
batch of windows is one tensor. ``Plan.macs`` counts the multiply-accumulates inside these rectangles exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cnn_helpers.attribution.occlusion.graph import Graph, Step
from cnn_helpers.core.checks import check_choice, check_pair

__all__ = ["Region", "Plan", "make_plan", "window_offsets", "window_grid"]


def window_offsets(size: int, window: int, stride: int) -> list[int]:
    """Window starts as Captum places them: every stride, the last one may hang over the edge."""
    return [k * stride for k in range(-(-(size - window) // stride) + 1)]


def window_grid(size: tuple[int, int], window: object, stride: object) -> tuple[list[int], list[int], tuple[int, int]]:
    """(row starts, column starts, (height, width)) of occlusion windows; ValueError unless stride <= window <= size."""
    (wh, ww), (sh, sw) = check_pair(window, "window"), check_pair(stride, "stride")
    if wh > size[0] or ww > size[1] or sh > wh or sw > ww:
        raise ValueError(f"need stride <= window <= image size; got window {(wh, ww)}, stride {(sh, sw)}, image {tuple(size)}")
    return window_offsets(size[0], wh, sh), window_offsets(size[1], ww, sw), (wh, ww)


@dataclass
class Region:
    """Per window, the rows ``y .. y + h`` and columns ``x .. x + w`` of a (H, W) map that are recomputed."""

    y: torch.Tensor
    x: torch.Tensor
    h: int
    w: int
    size: tuple[int, int]


def _fit(lo: torch.Tensor, hi: torch.Tensor, full: int, limit: int | None) -> tuple[torch.Tensor, int]:
    """One common length for all windows' spans [lo, hi), start shifted to stay inside the map (exact: a superset)."""
    span = (hi - lo).clamp(min=1)
    size = int(span.max())
    if limit is not None and size > limit:  # approximate: keep the centre of a too-large projective field
        lo, size = lo + (span - limit).clamp(min=0) // 2, limit
    return torch.minimum(lo, torch.full_like(lo, full - size)).clamp(min=0), size


def _through_window(start: torch.Tensor, size: int, axis: tuple[int, int, int, int], out: int,
                    limit: int | None) -> tuple[torch.Tensor, int]:
    """The outputs of a k x k window op whose inputs [start, start + size) changed."""
    extent, stride, before, _ = axis
    lo = (-((-(start + before - extent + 1)) // stride)).clamp(0, out)
    hi = ((start + size - 1 + before) // stride + 1).clamp(0, out)
    return _fit(lo, hi, out, limit)


@dataclass
class Plan:
    """The region of every layer for every window; ``inputs`` are window steps' reads in padded coordinates."""

    graph: Graph
    windows: list[tuple[int, int]]
    regions: dict[str, Region | None]
    inputs: dict[str, tuple[torch.Tensor, int, torch.Tensor, int]]

    def step_macs(self, step: Step) -> int:
        """Multiply-accumulates that one window's recomputation spends in ``step`` (per image)."""
        region = self.regions.get(step.name)
        if step.kind == "pointwise" and region is not None:
            return 0
        if step.kind == "window" and region is not None:
            return step.macs * region.h * region.w // (region.size[0] * region.size[1])
        return step.macs

    def macs(self) -> tuple[int, int]:
        """(multiply-accumulates of one whole forward pass, of one window's recomputation), per image."""
        return sum(s.macs for s in self.graph.steps), sum(self.step_macs(s) for s in self.graph.steps)

    def step_values(self, step: Step) -> int:
        """Output values that one window's recomputation writes in ``step`` (per image): its rectangle's, or all."""
        total = math.prod(step.shape)
        region = self.regions.get(step.name)
        return total if region is None else total * region.h * region.w // (region.size[0] * region.size[1])

    def values(self) -> tuple[int, int]:
        """(output values every step writes in one whole forward pass, in one window's recomputation), per image."""
        return sum(math.prod(s.shape) for s in self.graph.steps), sum(self.step_values(s) for s in self.graph.steps)

    def ceiling(self, *, by: str = "macs") -> float:
        """Work of plain batches / work of this plan: (windows + 1) whole passes / (1 + windows x recomputation).

        ``by="macs"`` counts multiply-accumulates (the bound where arithmetic sets the time: VGG, ResNet),
        ``by="values"`` the values written (where moving memory does: depthwise and element-wise layers). If a
        pass takes ``a * MACs + b * values`` seconds for any ``a, b >= 0``, its speed-up is at most the larger of the
        two (the mediant inequality).
        """
        full, recomputed = {"macs": self.macs, "values": self.values}[check_choice(by, "by", ("macs", "values"))]()
        return (len(self.windows) + 1) * full / (full + len(self.windows) * recomputed)

    def layers(self) -> list[tuple[str, int, int]]:
        """(module name, MACs of the whole map, MACs recomputed per window) of every step that multiplies."""
        return [(s.conv_scope or s.scope or s.name, s.macs, self.step_macs(s)) for s in self.graph.steps if s.macs]

    def region(self, layer: str, index: int) -> tuple[int, int, int, int, tuple[int, int]] | None:
        """(y, x, h, w, map size) that window ``index`` makes ``layer`` recompute: the output of the module of that
        name (its last step); the whole map where everything is recomputed; None for a non-spatial output."""
        inside = [s for s in self.graph.steps if layer in (s.scope, s.conv_scope) or s.scope.startswith(layer + ".")]
        if not inside:
            raise ValueError(f"layer {layer!r} is not a module the traced model runs")
        step = inside[-1]
        region = self.regions.get(step.name)
        if region is None:
            return (0, 0, *step.shape[1:], tuple(step.shape[1:])) if len(step.shape) == 3 else None
        return int(region.y[index]), int(region.x[index]), region.h, region.w, region.size


def _plan_window(step: Step, source: Region, limit: float | None) -> tuple[Region, tuple]:
    (_, out_h, out_w), axes = step.shape, step.axes
    caps = [None if limit is None else max(1, math.ceil(limit * n)) for n in (out_h, out_w)]
    y, h = _through_window(source.y, source.h, axes[0], out_h, caps[0])
    x, w = _through_window(source.x, source.w, axes[1], out_w, caps[1])
    read = (y * axes[0][1], (h - 1) * axes[0][1] + axes[0][0], x * axes[1][1], (w - 1) * axes[1][1] + axes[1][0])
    return Region(y, x, h, w, (out_h, out_w)), read


def _plan_pointwise(step: Step, sources: list[Region | None], limit: float | None) -> Region | None:
    size = step.shape[1:]
    if any(r is None or r.size != size for r in sources):
        return None  # mixes in something computed in full (or broadcast from 1 x 1): the whole map changes
    if len(sources) == 1:
        return sources[0]  # an element-wise op changes exactly what changed in its input
    caps = [None if limit is None else max(1, math.ceil(limit * n)) for n in size]
    lo_y, lo_x = torch.stack([r.y for r in sources]).amin(0), torch.stack([r.x for r in sources]).amin(0)
    hi_y = torch.stack([r.y + r.h for r in sources]).amax(0)
    hi_x = torch.stack([r.x + r.w for r in sources]).amax(0)
    (y, h), (x, w) = _fit(lo_y, hi_y, size[0], caps[0]), _fit(lo_x, hi_x, size[1], caps[1])
    return Region(y, x, h, w, size)


def make_plan(graph: Graph, windows: list[tuple[int, int]], window: tuple[int, int],
              field_limit: float | None = None) -> Plan:
    """Every layer's changed region for every window (``field_limit``: cap each at that fraction of its map)."""
    height, width = graph.cache[graph.input].shape[-2:]
    device = graph.cache[graph.input].device
    ys, xs = (torch.tensor([w[i] for w in windows], device=device) for i in (0, 1))
    y, h = _fit(ys, (ys + window[0]).clamp(max=height), height, None)
    x, w = _fit(xs, (xs + window[1]).clamp(max=width), width, None)
    regions: dict[str, Region | None] = {graph.input: Region(y, x, h, w, (height, width))}
    inputs = {}
    for step in graph.steps:
        sources = [regions.get(s) for s in step.sources]
        if step.kind == "window" and sources[0] is not None:
            regions[step.name], inputs[step.name] = _plan_window(step, sources[0], field_limit)
        elif step.kind == "pointwise":
            regions[step.name] = _plan_pointwise(step, sources, field_limit)
        else:
            regions[step.name] = None
    return Plan(graph, windows, regions, inputs)


