"""Occlusion without the waste: recompute only what a window changes (incremental inference), exactly or approximately.

Used by :func:`cnn_helpers.attribution.occlusion_map` (``method="incremental"``/``"approximate"``/``"auto"``) and by
notebook 03 ("Making occlusion cheap"); speed measured in ``bench/bench_attribution.py``.

A window changes only a small rectangle of the first layers' outputs; everything outside each layer's changed
rectangle equals the unoccluded image's activation. So the model runs once on the unoccluded images
(:mod:`.graph` keeps every activation), and then, for a batch of windows, each layer
recomputes only its changed rectangle: it reads the rectangle plus the kernel's overlap from the cached
activation, pastes in what the layer before changed, and computes. The rectangle grows with every kernel
(the window's *projective field*); once it covers the map the rest of the network runs normally.
The *approximate* mode drills down (as Nakandala et al.; :mod:`.drill`): it computes only
the windows whose drops cannot be interpolated from their neighbours'. The paper's other approximation, capping every rectangle
at a fraction ``field_limit`` of its map, is available too, but on EfficientNet-Lite0 it moved the map too much
(correlation 0.4-0.8 with the exact one at half the map) to be the default.

Batches hold as many windows as keep each activation of a batch under ``TENSOR_BYTES`` (a third of it for the
incremental path, which keeps about three alive at once): on a CPU under glibc's 32 MB threshold, above which
every allocation maps fresh pages, which costs more than the convolution on a busy machine.

Reference: Nakandala, Kumar, Papakonstantinou, "Incremental and Approximate Inference for Faster
Occlusion-based Deep CNN Explanations", SIGMOD 2019.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from cnn_helpers.attribution.occlusion.drill import drill_down as drill
from cnn_helpers.attribution.occlusion.graph import Graph, Step, UnsupportedModel, compile_graph
from cnn_helpers.attribution.occlusion.plan import Plan, Region, make_plan, window_grid
from cnn_helpers.core.checks import check_float, check_images, check_model, gather
from cnn_helpers.core.state import evaluating

# public: occlusion_plan and what it returns; window_grid, window_drops and accumulate are the engine behind
# attribution.occlusion_map, which checks their inputs
__all__ = ["UnsupportedModel", "Plan", "occlusion_plan"]

TENSOR_BYTES = {"cpu": 24 << 20}  # per activation of a batch: under glibc's 32 MB mmap threshold, memory is reused
OTHER_DEVICE_BYTES = 512 << 20
PATCH_BYTES_FACTOR = 3  # incremental batches keep about 3 such tensors alive at once: a third of the budget each


# ----------------------------------------------------------------------------------------- execution

class Patch:
    """A batch of rectangles of one map: ``tensor`` (B, C, h, w) sits at rows ``y`` and columns ``x`` (B,) of it."""

    __slots__ = ("tensor", "y", "x")

    def __init__(self, tensor: torch.Tensor, y: torch.Tensor, x: torch.Tensor):
        self.tensor, self.y, self.x = tensor, y, x


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last)


def _same(a: Region, b: Region, dy: int = 0, dx: int = 0) -> bool:
    """Whether region ``a``, shifted by (dy, dx), is region ``b`` for every window."""
    return (a.h, a.w) == (b.h, b.w) and torch.equal(a.y + dy, b.y) and torch.equal(a.x + dx, b.x)


def _tables_needed(plan: Plan) -> set[tuple[str, tuple[int, int, int, int], float]]:
    """(node, padding, pad value) of every cached map that the plan reads around a changed rectangle."""
    needed = {(plan.graph.input, (0, 0, 0, 0), 0.0), ("fill", (0, 0, 0, 0), 0.0)}
    for step in plan.graph.steps:
        region, sources = plan.regions[step.name], [(s, plan.regions.get(s)) for s in step.sources]
        if step.kind == "window" and region is not None:
            (extent, _, top, bottom), (_, _, left, right) = step.axes
            source = sources[0][1]
            ry, rh, rx, rw = plan.inputs[step.name]
            read = Region(ry, rx, rh, rw, (source.size[0] + top + bottom, source.size[1] + left + right))
            whole = (source.h, source.w) == source.size and (rh, rw) == read.size
            if not whole and not _same(source, read, top, left):
                needed.add((sources[0][0], (left, right, top, bottom), step.pad_value))
            continue
        for name, source in sources:
            if source is not None and not (_same(source, region) if region is not None else (source.h, source.w) == source.size):
                needed.add((name, (0, 0, 0, 0), 0.0))
    return needed


def _dense_tail(graph: Graph) -> tuple[int, str]:
    """(index of the first step, the one value it reads) of the longest run of dense steps at the end that reads a
    single value from before it (a classifier: one large weight read per batch, so it gets larger batches)."""
    start = len(graph.steps)
    while start > 0 and graph.steps[start - 1].kind == "dense":
        names = {s.name for s in graph.steps[start - 1:]}
        if len({src for s in graph.steps[start - 1:] for src in s.sources if src not in names}) != 1:
            break
        start -= 1
    if start == len(graph.steps):
        return start, graph.output
    names = {s.name for s in graph.steps[start:]}
    return start, next(src for s in graph.steps[start:] for src in s.sources if src not in names)


class _Runner:
    """Runs batches of windows through a plan: each layer's changed rectangle, the rest read from the cache."""

    def __init__(self, plan: Plan, images: torch.Tensor, fill: torch.Tensor):
        self.plan, self.graph, self.n = plan, plan.graph, images.shape[0]
        self.device = images.device
        self.tables: dict[tuple, tuple[torch.Tensor, int, int]] = {}
        self.fill = fill
        self.last_use = {s: i for i, step in enumerate(self.graph.steps) for s in step.sources}
        self.tail, self.bridge = _dense_tail(self.graph)
        # a fresh output (of a convolution, pooling or element-wise op that is not the identity) that only one
        # step reads may be overwritten by that step
        self.overwritable = {step.name: self.graph.users.get(step.name) == 1 and step.kind != "dense" and step.fresh
                             for step in self.graph.steps}
        self.overwritable[self.graph.input] = False
        needed = _tables_needed(plan)
        unpadded = {name for name, pads, _ in needed if not any(pads)}  # views of the cache: kept as they are
        for name in [n for n in plan.regions if n != self.graph.output]:
            for key in [k for k in needed if k[0] == name]:
                self._table(*key)
            if name not in unpadded:
                plan.graph.cache.pop(name, None)  # freed as soon as its padded copy exists: memory
        self._table("fill", (0, 0, 0, 0), 0.0)

    def _table(self, name: str, pads: tuple[int, int, int, int], value: float) -> tuple[torch.Tensor, int, int]:
        """The cached map of ``name``, padded, as a (N * H * W, C) table of channel vectors."""
        key = (name, pads, value)
        if key not in self.tables:
            source = self.fill if name == "fill" else self.graph.cache[name]
            padded = _channels_last(F.pad(source, pads, value=value) if any(pads) else source)
            self.tables[key] = (padded.permute(0, 2, 3, 1).reshape(-1, padded.shape[1]), *padded.shape[-2:])
        return self.tables[key]

    def gather(self, name: str, y: torch.Tensor, x: torch.Tensor, h: int, w: int,
               pads: tuple[int, int, int, int] = (0, 0, 0, 0), value: float = 0.0) -> torch.Tensor:
        """(B, C, h, w) channels-last: rows y.. and columns x.. of each window's image's cached (padded) map."""
        table, height, width = self._table(name, pads, value)
        rows = (self.img * height + y)[:, None] + torch.arange(h, device=self.device)
        index = (rows * width)[:, :, None] + (x[:, None] + torch.arange(w, device=self.device))[:, None, :]
        return table.index_select(0, index.reshape(-1)).view(len(y), h, w, -1).permute(0, 3, 1, 2)

    @staticmethod
    def paste(base: torch.Tensor, patch: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
        """Write ``patch`` into ``base`` (both channels-last) at offsets (dy, dx); what sticks out is left out."""
        (count, channels, h, w), (ph, pw) = base.shape, patch.shape[-2:]
        rows = dy[:, None] + torch.arange(ph, device=dy.device)
        cols = dx[:, None] + torch.arange(pw, device=dx.device)
        index = ((torch.arange(count, device=dy.device)[:, None, None] * h + rows[:, :, None]) * w + cols[:, None, :])
        source = patch.permute(0, 2, 3, 1).reshape(-1, channels)
        target = base.permute(0, 2, 3, 1).view(-1, channels)
        inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
        if bool(inside.all()):
            target.index_copy_(0, index.reshape(-1), source)
        else:
            keep = inside.reshape(-1)
            target.index_copy_(0, index.reshape(-1)[keep], source[keep])
        return base

    def materialize(self, name: str, patch: Patch, y: torch.Tensor, x: torch.Tensor, h: int, w: int,
                    pads: tuple[int, int, int, int] = (0, 0, 0, 0), value: float = 0.0) -> torch.Tensor:
        """Rows y.. and columns x.. (padded coordinates) of each window's map: the cache with the patch pasted in."""
        py, px = patch.y + pads[2], patch.x + pads[0]
        if patch.tensor.shape[-2:] == (h, w) and torch.equal(py, y) and torch.equal(px, x):
            return patch.tensor
        full = self.plan.regions[name].size
        if patch.tensor.shape[-2:] == full and (h, w) == (full[0] + pads[2] + pads[3], full[1] + pads[0] + pads[1]):
            return _channels_last(F.pad(patch.tensor, pads, value=value))
        return self.paste(_channels_last(self.gather(name, y, x, h, w, pads, value)), patch.tensor, py - y, px - x)

    def whole(self, name: str, value: Any) -> Any:
        """The value for every window in full (raw values already are)."""
        if not isinstance(value, Patch):
            return value
        height, width = self.plan.regions[name].size
        zeros = torch.zeros_like(value.y)
        return self.materialize(name, value, zeros, zeros, height, width)

    def _input(self, widx: torch.Tensor, window: tuple[int, int]) -> Patch:
        region = self.plan.regions[self.graph.input]
        y, x = region.y[widx], region.x[widx]
        starts = torch.tensor(self.plan.windows, device=self.device)[widx]
        rows = y[:, None] + torch.arange(region.h, device=self.device) - starts[:, :1]
        cols = x[:, None] + torch.arange(region.w, device=self.device) - starts[:, 1:]
        inside = ((rows >= 0) & (rows < window[0]))[:, None, :, None] & ((cols >= 0) & (cols < window[1]))[:, None, None, :]
        image = self.gather(self.graph.input, y, x, region.h, region.w)
        return Patch(_channels_last(torch.where(inside, self.gather("fill", y, x, region.h, region.w), image)), y, x)

    def run(self, wins: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
        """Windows ``wins`` (indices into the plan's windows) up to the dense tail: its input, (len(wins) * N, ...)."""
        widx = wins.to(self.device).repeat_interleave(self.n)
        self.img = torch.arange(self.n, device=self.device).repeat(len(wins))
        values = self._steps({self.graph.input: self._input(widx, window)}, 0, self.tail, widx)
        return self.whole(self.bridge, values[self.bridge])

    def finish(self, bridge: torch.Tensor) -> torch.Tensor:
        """The dense tail (classifier) on the concatenated outputs of several ``run`` calls: the model's output."""
        return self._steps({self.bridge: bridge}, self.tail, len(self.graph.steps), None)[self.graph.output]

    def _steps(self, values: dict[str, Any], start: int, stop: int, widx: torch.Tensor | None) -> dict[str, Any]:
        for i, step in enumerate(self.graph.steps[start:stop], start=start):
            values[step.name] = self._step(step, [values[s] for s in step.sources], widx)
            for source in step.sources:
                if self.last_use[source] == i:
                    del values[source]
        return values

    def _step(self, step: Step, inputs: list[Any], widx: torch.Tensor) -> Any:
        region = self.plan.regions[step.name]
        if region is None or not all(isinstance(v, Patch) for v in inputs):
            inputs = [self.whole(s, v) for s, v in zip(step.sources, inputs)]
            if step.kind == "window":
                (_, _, top, bottom), (_, _, left, right) = step.axes
                inputs = [F.pad(inputs[0], (left, right, top, bottom), value=step.pad_value)]
            return step.fn(*inputs)
        y, x = region.y[widx], region.x[widx]
        if step.kind == "window":
            (_, _, top, bottom), (_, _, left, right) = step.axes
            ry, rh, rx, rw = self.plan.inputs[step.name]
            source = self.materialize(step.sources[0], inputs[0], ry[widx], rx[widx], rh, rw,
                                      (left, right, top, bottom), step.pad_value)
            return Patch(step.fn(source), y, x)
        inputs = [self.materialize(s, v, y, x, region.h, region.w) for s, v in zip(step.sources, inputs)]
        if step.fn_inplace is not None and self.overwritable[step.sources[0]]:
            return Patch(step.fn_inplace(*inputs), y, x)
        return Patch(step.fn(*inputs), y, x)


# ------------------------------------------------------------------------------------------- driving

def _windows_per_batch(plan: Plan, images: torch.Tensor) -> int:
    """As many windows per batch as keep every activation of the batch under the device's byte budget."""
    per_window = 0
    for step in plan.graph.steps:
        region = plan.regions[step.name]
        numel = step.shape[0] * region.h * region.w if region is not None else math.prod(step.shape or (1,))
        if step.kind == "window" and region is not None:
            numel = max(numel, plan.graph.shapes[step.sources[0]][0] * plan.inputs[step.name][1] * plan.inputs[step.name][3])
        per_window = max(per_window, numel)
    budget = TENSOR_BYTES.get(images.device.type, OTHER_DEVICE_BYTES) // PATCH_BYTES_FACTOR
    return max(1, budget // (per_window * images.element_size() * images.shape[0]))


def _windows_per_tail(plan: Plan, runner: _Runner, images: torch.Tensor) -> int:
    """Windows per batch of the dense tail: as many as keep the tail's input under the byte budget."""
    if runner.tail == len(plan.graph.steps):
        return 1
    numel = math.prod(plan.graph.shapes[runner.bridge] or (1,))
    budget = TENSOR_BYTES.get(images.device.type, OTHER_DEVICE_BYTES)
    return max(1, budget // (numel * images.element_size() * images.shape[0]))


def window_drops(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, score: Callable[[torch.Tensor], torch.Tensor],
                 *, windows: list[tuple[int, int]], grid: tuple[int, int], window: tuple[int, int], fill: torch.Tensor,
                 per_eval: int | None = None, field_limit: float | None = None, drill_down: float | None = None,
                 min_gain: float | None = None) -> torch.Tensor | None:
    """(W, N) score drops, one per window and image, computed incrementally (the model already in eval mode).

    Args:
        labels: (N,) classes; score: logits (M, C) -> scores (M, C). windows: Top-left corners, row by row of a
            ``grid`` (rows, columns). window: (height, width). fill: (N, 3, H, W) baseline.
        per_eval: Windows per batch. Default: None = by the byte budget (``TENSOR_BYTES``).
        field_limit: Approximate: cap each changed rectangle at this fraction of its map. Default: None.
        drill_down: Approximate: the drill-down's tolerance (see :func:`.drill.drill_down`).
            Default: None (every window).
        min_gain: Return None instead when the plan saves less than this factor of multiply-accumulates.

    Raises:
        UnsupportedModel: the model cannot be run this way (the caller falls back to plain batches).
    """
    graph = compile_graph(model, images)
    plan = make_plan(graph, windows, window, field_limit)
    if min_gain is not None and plan.ceiling() < min_gain:
        return None
    runner, n = _Runner(plan, images, fill), images.shape[0]
    reference = gather(score(graph.cache[graph.output]), labels)
    per_eval = per_eval or _windows_per_batch(plan, images)
    tail_eval = max(per_eval, _windows_per_tail(plan, runner, images) // per_eval * per_eval)

    def drops_of(wins: torch.Tensor) -> torch.Tensor:
        out = []
        for group in wins.split(tail_eval):  # the classifier gets several batches at once
            logits = runner.finish(torch.cat([runner.run(chunk, window) for chunk in group.split(per_eval)]))
            scores = gather(score(logits), labels.repeat(len(group)))
            out.append(reference - scores.view(len(group), n))
        return torch.cat(out)

    return drops_of(torch.arange(len(windows))) if drill_down is None else drill(drops_of, grid, drill_down)


def occlusion_plan(model: nn.Module, images: torch.Tensor, *, window: int | tuple[int, int],
                   stride: int | tuple[int, int], field_limit: float | None = None) -> Plan:
    """Which rectangle of every layer each window changes, and the multiply-accumulates recomputing them costs.

    Args:
        images: (N, 3, H, W) in [0, 1] (their size sets the maps' sizes). window, stride: As for occlusion.
        field_limit: Cap every changed rectangle at this fraction of its map (the paper's projective-field
            threshold; an approximation). Default: None (exact).

    Returns:
        A :class:`Plan`: ``windows`` (their top-left corners), ``region(layer, index)``, ``layers()``, ``macs()``,
        ``values()``, ``ceiling(by="macs")`` (the speed-up over plain batches that counting multiply-accumulates, or
        with ``by="values"`` the values written, allows).

    Raises:
        UnsupportedModel: (a ValueError) the model cannot be traced, or its traced graph disagrees with it.
    Example:
        >>> plan = occlusion_plan(model, images, window=32, stride=16); plan.ceiling()
    """
    check_model(model)
    check_images(images, model=model)
    if field_limit is not None:
        field_limit = check_float(field_limit, "field_limit", minimum=0.0, maximum=1.0, strict_minimum=True)
    rows, cols, size = window_grid(images.shape[-2:], window, stride)
    with evaluating(model), torch.inference_mode():
        try:
            graph = compile_graph(model, images)
        except UnsupportedModel as err:  # say which argument: the model, not the images
            raise UnsupportedModel(f"the model cannot be run incrementally: {err}") from None
        return make_plan(graph, [(y, x) for y in rows for x in cols], size, field_limit)
