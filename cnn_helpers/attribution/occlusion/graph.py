"""Incremental occlusion, part 1: the model as a traced graph of steps, run once on the unoccluded images.

Used by :mod:`.incremental` (which plans and runs the occluded windows) and so by notebook 03.

``compile_graph`` traces the model with ``torch.fx`` (every convolution a leaf, so that convolutions that
pad in ``forward`` like TensorFlow's "SAME" stay one step), sorts every node that depends on the image
into one of three kinds, and runs the graph once on the unoccluded images, keeping each activation:

* **window** steps (convolutions with any stride, dilation and groups, max/avg pooling) read a k x k
  neighbourhood: an occluded window changes a larger region of their output than of their input;
* **pointwise** steps (activations, batch norm, adding/multiplying activations or constants) change exactly
  the union of what their inputs changed;
* **dense** steps (global pooling, flatten, linear, anything unknown) are computed in full for every window.

Batch norm after a convolution is folded into its weights. The result is checked against the model's own
output; if the two disagree the graph is refused (the caller then falls back to plain batches).
"""

from __future__ import annotations

import copy
import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from cnn_helpers.core.macs import macs_of

__all__ = ["Step", "Graph", "UnsupportedModel", "compile_graph"]

POINTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
                     nn.Mish, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Identity, nn.Dropout,
                     nn.Dropout2d, nn.BatchNorm2d)
POINTWISE_FUNCTIONS = {operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, torch.add, torch.sub,
                       torch.mul, torch.div, torch.relu, torch.sigmoid, torch.tanh, torch.clamp, F.relu, F.relu6,
                       F.hardtanh, F.silu, F.gelu, F.hardswish, F.hardsigmoid, F.leaky_relu, F.elu}
IN_PLACE_FUNCTIONS = {operator.iadd: operator.add, operator.isub: operator.sub, operator.imul: operator.mul,
                      operator.itruediv: operator.truediv}
POINTWISE_METHODS = {"add", "sub", "mul", "div", "relu", "sigmoid", "tanh", "clamp", "neg"}


class UnsupportedModel(ValueError):
    """The model cannot be run incrementally (tracing failed, or the traced graph disagrees with the model)."""


@dataclass
class Step:
    """One image-dependent node: ``kind`` is ``"window"``, ``"pointwise"`` or ``"dense"``.

    ``fn`` takes the tensors of ``sources`` (in order) and returns the node's value; a window step's ``fn``
    runs without padding on an input that ``axes`` describe per spatial axis as (extent, stride, pad before,
    pad after), the padding filled with ``pad_value``. ``shape`` is the output's (C, H, W) for 4-d outputs.
    """

    name: str
    kind: str
    sources: list[str]
    fn: Callable[..., Any]
    scope: str = ""
    axes: tuple[tuple[int, int, int, int], ...] = ()
    pad_value: float = 0.0
    shape: tuple[int, ...] = ()
    macs: int = 0  # per image, for the whole map
    fn_inplace: Callable[..., Any] | None = None  # an activation that may overwrite its input (a fresh conv output)
    conv_scope: str = ""  # a convolution folded into this (batch-norm) step: its module name
    fresh: bool = True  # returns a new tensor (not its input, as nn.Identity or nn.Dropout in eval mode do)


@dataclass
class Graph:
    """A compiled model: its image-dependent ``steps`` in order, each node's unoccluded value in ``cache``."""

    steps: list[Step]
    cache: dict[str, Any]
    output: str
    input: str
    users: dict[str, int] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # (C, H, W) of every image-dependent value


class _Tracer(fx.Tracer):
    """torch.fx's tracer with every convolution a leaf: subclasses that pad in ``forward`` stay one node."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, nn.Conv2d) or super().is_leaf_module(m, qualname)


def _call(node: fx.Node, module: nn.Module | None, args: tuple, kwargs: dict) -> Any:
    if node.op == "call_module":
        return module(*args, **kwargs)
    if node.op == "call_function":
        return IN_PLACE_FUNCTIONS.get(node.target, node.target)(*args, **kwargs)
    name = node.target.rstrip("_") if node.target.endswith("_") and not node.target.startswith("__") else node.target
    return getattr(args[0], name)(*args[1:], **kwargs)


def _bind(node: fx.Node, sources: list[str], module: nn.Module | None, values: dict[str, Any]) -> Callable[..., Any]:
    """The node as a function of its image-dependent inputs; in-place variants replaced by out-of-place ones."""
    kwargs = {**node.kwargs, "inplace": False} if "inplace" in node.kwargs else dict(node.kwargs)
    if module is not None and getattr(module, "inplace", False):
        module = copy.copy(module)  # a shallow copy shares the weights; the model itself is not touched
        module.inplace = False

    def fn(*tensors: Any) -> Any:
        lookup = dict(zip(sources, tensors))
        pick = lambda n: lookup[n.name] if n.name in lookup else values[n.name]  # noqa: E731
        return _call(node, module, fx.node.map_arg(node.args, pick), fx.node.map_arg(kwargs, pick))
    return fn


def _in_place(node: fx.Node, module: nn.Module | None, sources: list[str]) -> Callable[..., Any] | None:
    """The step overwriting its first input, for activations and residual sums (saves a fresh tensor per batch)."""
    if module is not None and hasattr(module, "inplace") and len(sources) == 1:
        module = copy.copy(module)
        module.inplace = True
        return module
    if node.target in (operator.add, operator.iadd, torch.add) and not node.kwargs and len(sources) == 2 \
            and [n.name for n in node.args] == sources:
        return lambda a, b: a.add_(b)
    return None


def _constant_across_space(value: Any) -> bool:
    """A constant argument of a pointwise op: a number, or a tensor that broadcasts without spatial extent."""
    if not isinstance(value, torch.Tensor):
        return True
    return value.numel() == 1 if value.ndim < 2 else tuple(value.shape[-2:]) == (1, 1)


def _is_pointwise(node: fx.Node, module: nn.Module | None, sources: list[str], values: dict[str, Any], out: Any) -> bool:
    """A known element-wise op: same (N, C, H, W) map in and out, every other tensor argument constant across space."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_var is None:
        return False  # normalizes with the batch's own statistics: depends on every position
    known = (type(module) in POINTWISE_MODULES if node.op == "call_module" else
             node.target in POINTWISE_FUNCTIONS or node.target in IN_PLACE_FUNCTIONS if node.op == "call_function" else
             node.target.rstrip("_") in POINTWISE_METHODS)
    inputs = [values[s] for s in sources]
    if not known or not isinstance(out, torch.Tensor) or out.ndim != 4:
        return False
    if not all(isinstance(t, torch.Tensor) and t.ndim == 4 for t in inputs):
        return False
    constants = [values[n.name] for n in node.all_input_nodes if n.name not in sources]
    spatial = [tuple(t.shape[-2:]) for t in inputs]
    return (all(_constant_across_space(c) for c in constants) and tuple(out.shape[-2:]) in spatial
            and all(s in (tuple(out.shape[-2:]), (1, 1)) for s in spatial))


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> int:
    """The padding before the input that TensorFlow's "SAME" adds (the larger half goes after)."""
    extent = (kernel - 1) * dilation + 1
    return max((math.ceil(size / stride) - 1) * stride + extent - size, 0) // 2


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)  # type: ignore[return-value]


def _window_op(module: nn.Module, size: tuple[int, int]) -> tuple[list[int], tuple, tuple, float, Callable] | None:
    """(padding before, kernel, (stride, dilation), pad value, fn without padding) of a convolution or pooling."""
    if isinstance(module, nn.Conv2d) and module.padding_mode == "zeros":
        k, s, d, groups = module.kernel_size, module.stride, module.dilation, module.groups
        if isinstance(module.padding, str):
            pads = [0, 0] if module.padding == "valid" else [d[i] * (k[i] - 1) // 2 for i in range(2)]
        elif type(module).forward is not nn.Conv2d.forward and module.padding == (0, 0):
            # pads in forward(): assume TensorFlow's "SAME" (EfficientNet); the final check refuses anything else
            pads = [_same_padding(size[i], k[i], s[i], d[i]) for i in range(2)]
        else:
            pads = list(module.padding)
        return pads, k, (s, d), 0.0, lambda t, w=module.weight, b=module.bias: F.conv2d(t, w, b, s, 0, d, groups)
    if type(module) is nn.MaxPool2d and not module.return_indices:
        k, s, d = _pair(module.kernel_size), _pair(module.stride), _pair(module.dilation)
        return list(_pair(module.padding)), k, (s, d), -math.inf, lambda t: F.max_pool2d(t, k, s, 0, d)
    if type(module) is nn.AvgPool2d and not module.ceil_mode and (module.count_include_pad or module.padding == 0):
        k, s, override = _pair(module.kernel_size), _pair(module.stride), module.divisor_override
        return list(_pair(module.padding)), k, (s, (1, 1)), 0.0, lambda t: F.avg_pool2d(t, k, s, 0, divisor_override=override)
    return None


def _window_step(node: fx.Node, module: nn.Module, x: torch.Tensor) -> Step | None:
    """A window step for a convolution/pooling module on a 4-d input, with its padding made explicit."""
    op = _window_op(module, tuple(x.shape[-2:])) if x.ndim == 4 else None
    if op is None:
        return None
    pads, k, (s, d), value, fn = op
    out = module.forward(x[:0])  # an empty batch gives the output size at no cost
    axes = []
    for i in range(2):
        extent = (k[i] - 1) * d[i] + 1
        needed = (out.shape[2 + i] - 1) * s[i] + extent  # the padded input size that the outputs read
        axes.append((extent, s[i], pads[i], needed - x.shape[2 + i] - pads[i]))
    return Step(node.name, "window", [], fn, node.target, tuple(axes), value, tuple(out.shape[1:]))


def _fold_batch_norm(conv: Step, bn: nn.BatchNorm2d, module: nn.Conv2d) -> None:
    """conv followed by eval-mode batch norm -> one convolution with scaled weights and a new bias."""
    scale = torch.rsqrt(bn.running_var + bn.eps) * (bn.weight if bn.affine else 1)
    bias = module.bias if module.bias is not None else torch.zeros_like(bn.running_mean)
    new_bias = (bias - bn.running_mean) * scale + (bn.bias if bn.affine else 0)
    weight = module.weight * scale.reshape(-1, 1, 1, 1)
    s, d, groups = module.stride, module.dilation, module.groups
    conv.fn = lambda t: F.conv2d(t, weight, new_bias, s, 0, d, groups)
    conv.conv_scope = conv.scope


def _foldable(node: fx.Node, bn: nn.Module | None, steps: dict[str, Step], modules: dict[str, nn.Module]) -> bool:
    if type(bn) is not nn.BatchNorm2d or bn.training or bn.running_var is None or len(node.all_input_nodes) != 1:
        return False
    source = steps.get(node.all_input_nodes[0].name)
    return (source is not None and source.kind == "window" and isinstance(modules.get(source.scope), nn.Conv2d)
            and len(node.all_input_nodes[0].users) == 1 and not source.conv_scope)


def _scope(node: fx.Node) -> str:
    """The innermost module a node was traced in (``net.layer1.0.conv1``), '' at the top level."""
    stack = list((node.meta.get("nn_module_stack") or {}).items())
    if not stack:
        return ""
    key, value = stack[-1]
    return value[0] if isinstance(value, tuple) else str(key)


def _trace(model: nn.Module) -> fx.GraphModule:
    try:
        return fx.GraphModule(model, _Tracer().trace(model))
    except Exception as err:  # any tracing failure means "not traceable", never a wrong answer
        raise UnsupportedModel(f"torch.fx cannot trace it ({type(err).__name__}: {str(err).splitlines()[0][:80]})") from None


def _step(node: fx.Node, modules: dict, steps: dict[str, Step], values: dict[str, Any]) -> Step:
    """Classify one image-dependent node and compute its unoccluded value into ``values``."""
    module = modules.get(node.target) if node.op == "call_module" else None
    sources = [n.name for n in node.all_input_nodes if n.name in steps or n.name in values and n.op == "placeholder"]
    if _foldable(node, module, steps, modules):
        step = steps.pop(sources[0])
        del values[sources[0]]  # the convolution's own output is never read again
        _fold_batch_norm(step, module, modules[step.scope])
        step.name = node.name
    elif module is not None and len(sources) == 1 and (step := _window_step(node, module, values[sources[0]])):
        step.sources = sources
    else:
        fn = _bind(node, sources, module, values)
        out, macs = macs_of(fn, *[values[s] for s in sources])
        _check_tensor(node, out)
        kind = "pointwise" if _is_pointwise(node, module, sources, values, out) else "dense"
        step = Step(node.name, kind, sources, fn, shape=tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else ())
        step.fn_inplace = _in_place(node, module, sources) if kind == "pointwise" else None
        step.fresh = type(module) not in (nn.Identity, nn.Dropout, nn.Dropout2d)
        step.macs = macs // values[sources[0]].shape[0] if kind == "dense" else 0
        values[node.name] = out.contiguous(memory_format=torch.channels_last) if kind == "pointwise" else out
    if step.kind == "window":
        values[node.name] = run_whole(step, values)
    if step.kind == "pointwise" and len(sources) == 1 and len(node.all_input_nodes[0].users) == 1 \
            and node.all_input_nodes[0].op != "placeholder":
        del values[sources[0]]  # read by this step only, whose changed region is always the same: never needed again
    step.scope = _scope(node) or step.scope
    return step


def _check_tensor(node: fx.Node, out: Any) -> None:
    """Every image-dependent value must be a tensor: a shape read in forward (``n, c, h, w = x.shape``, ShuffleNet's
    channel shuffle) would be the shape of a batch of windows in the incremental run, not of the model's input."""
    if isinstance(out, torch.Size) or (isinstance(out, (tuple, list)) and all(isinstance(v, int) for v in out)):
        raise UnsupportedModel(f"its forward reads the shape of an activation (x.shape or x.size(), node {node.name!r})")
    if not isinstance(out, torch.Tensor):
        raise UnsupportedModel(f"a step of its forward returns {type(out).__name__}, not a tensor ({node.name})")


def compile_graph(model: nn.Module, images: torch.Tensor) -> Graph:
    """Trace ``model`` (already in eval mode), classify its nodes and run it on ``images``, keeping every activation.

    Raises:
        UnsupportedModel: tracing failed, the graph has other inputs than one image batch, or its output on
            ``images`` differs from ``model(images)``.
    """
    hooked = [name for name, m in model.named_modules() if m._forward_hooks or m._forward_pre_hooks]
    if hooked:  # torch.fx traces forward() alone: what a hook adds would be missing
        raise UnsupportedModel(f"it has forward hooks (on {hooked[0] or 'the model'})")
    gm = _trace(model)
    modules = dict(gm.named_modules())
    nodes = list(gm.graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise UnsupportedModel(f"its forward takes {len(placeholders)} inputs, not one image batch")
    images = images.detach()  # the cache is returned with the plan: nothing in it may carry an autograd graph
    expected = model(images)
    values: dict[str, Any] = {placeholders[0].name: images}
    steps: dict[str, Step] = {}
    for node in nodes:
        if node.op == "get_attr":
            values[node.name] = operator.attrgetter(node.target)(gm)
        elif node.op == "output":
            output = node.all_input_nodes[0].name if len(node.all_input_nodes) == 1 else None
        elif node.op != "placeholder" and not any(n.name in steps or n.op == "placeholder" for n in node.all_input_nodes):
            module = modules.get(node.target) if node.op == "call_module" else None
            values[node.name] = _bind(node, [], module, values)()  # independent of the image: computed once
        elif node.op != "placeholder":
            steps[node.name] = _step(node, modules, steps, values)
    if output not in steps:
        raise UnsupportedModel("its output does not depend on the image, or it returns more than one tensor")
    _check_output(expected, values[output])
    graph = Graph(list(steps.values()), values, output, placeholders[0].name)
    graph.shapes = {graph.input: tuple(images.shape[1:]), **{step.name: step.shape for step in graph.steps}}
    for step in graph.steps:
        for source in step.sources:
            graph.users[source] = graph.users.get(source, 0) + 1
    return graph


def _check_output(expected: torch.Tensor, ours: Any) -> None:
    if not isinstance(ours, torch.Tensor) or ours.shape != expected.shape:
        raise UnsupportedModel("the traced graph returns something else than the model")
    scale = expected.abs().max().item() + 1e-12
    if not torch.allclose(ours, expected, rtol=1e-4, atol=1e-4 * scale):
        error = ((ours - expected).abs().max().item()) / scale
        raise UnsupportedModel(f"the traced graph disagrees with the model (relative difference {error:.1e})")


def run_whole(step: Step, values: dict[str, Any]) -> torch.Tensor:
    """A window step on whole (padded) maps, with its multiply-accumulates per image counted."""
    (_, _, top, bottom), (_, _, left, right) = step.axes
    x = values[step.sources[0]]
    out, macs = macs_of(step.fn, F.pad(x, (left, right, top, bottom), value=step.pad_value))
    if not step.macs:
        step.macs = macs // x.shape[0]
    return out.contiguous(memory_format=torch.channels_last)
