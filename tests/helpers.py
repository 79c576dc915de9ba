"""Small helpers shared by several test files (imported as `from helpers import ...`)."""

import torch
from torch import nn


def randomize_batch_norm(model: nn.Module, generator: torch.Generator) -> None:
    """Fresh BN layers are the identity in eval mode; random statistics make the comparison bite."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=generator) * 0.1)


def hooks(model: nn.Module) -> int:
    """How many hooks of any kind are registered on the model's modules."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) + len(m._backward_pre_hooks)
               for m in model.modules())


def snapshot(model: nn.Module, *inputs: torch.Tensor) -> dict:
    """Everything a helper must leave as it found it: each module's mode, each parameter's requires_grad
    and .grad, every parameter and buffer value (batch-norm statistics), the hooks, and the inputs
    (values, requires_grad, .grad)."""
    return {
        "modes": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "hooks": hooks(model),
        "inputs": [(x.detach().clone(), x.requires_grad, None if x.grad is None else x.grad.clone()) for x in inputs],
    }


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """torch.equal, except that NaN equals NaN (an input holding NaN is unchanged when it still does)."""
    if a.is_floating_point() and a.shape == b.shape and a.dtype == b.dtype:
        return torch.allclose(a, b, rtol=0.0, atol=0.0, equal_nan=True)
    return torch.equal(a, b)


def _same(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and _equal(a, b))


def assert_unchanged(before: dict, after: dict) -> None:
    """Compare two snapshots; the message names what changed."""
    assert before["modes"] == after["modes"], "train/eval mode of some module changed"
    assert before["requires_grad"] == after["requires_grad"], "requires_grad of some parameter changed"
    assert all(_same(a, b) for a, b in zip(before["grads"], after["grads"])), ".grad of some parameter changed"
    changed = [k for k in before["state"] if not _equal(before["state"][k], after["state"][k])]
    assert not changed, f"parameters or buffers changed: {changed[:5]}"
    assert before["hooks"] == after["hooks"], "hooks were left behind"
    for (x0, rg0, g0), (x1, rg1, g1) in zip(before["inputs"], after["inputs"]):
        assert _equal(x0, x1) and rg0 == rg1 and _same(g0, g1), "an input tensor was changed"


def mixed_mode(model: nn.Module) -> nn.Module:
    """Train mode with every batch-norm layer frozen in eval mode: the case `model.train(was_training)` breaks."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    return model
