"""BN with functional running statistics (`bnlab.study.functional_state`) against torch.nn's
BatchNorm (float64), alone and under `torch.func.vmap`, member by member: outputs, input and
parameter gradients, running statistics and batch counts, in training and eval."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import assert_close
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

import bnlab
from bnlab.study.functional_state import (
    BNState,
    FunctionalBatchNorm,
    batch_norm_state,
    state_updates,
    to_functional,
)

F64 = torch.float64
TOL = {"rtol": 1e-10, "atol": 1e-12}
K = 3


def _weights(shape) -> torch.Tensor:
    """A fixed, non-uniform upstream gradient (a plain sum would hide errors in dx)."""
    g = torch.Generator().manual_seed(7)
    return torch.randn(shape, generator=g, dtype=F64)


@pytest.mark.parametrize("kernel", ["bnlab", "aten"])
@pytest.mark.parametrize("momentum", [0.1, None], ids=["momentum", "cumulative"])
@pytest.mark.parametrize("shape", [(8, 5), (6, 4, 3, 3)], ids=["1d", "2d"])
def test_one_model_matches_torch(kernel, momentum, shape):
    ref = (nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d)(shape[1], momentum=momentum)
    ref = ref.double()
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.normal_()
    state = BNState(ref.running_mean.clone(), ref.running_var.clone(), torch.tensor(0))
    w, b = (p.detach().clone().requires_grad_() for p in (ref.weight, ref.bias))
    for step in range(3):
        x = (torch.randn(shape, dtype=F64) * 2 + step).requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        y, new = batch_norm_state(x, w, b, state, True, momentum, ref.eps, kernel)
        y_ref = ref(x_ref)
        g = _weights(y.shape)
        (y * g).sum().backward()
        (y_ref * g).sum().backward()
        assert_close("y", y, y_ref, **TOL)
        assert_close("dx", x.grad, x_ref.grad, **TOL)
        assert_close("running_mean", new.running_mean, ref.running_mean, **TOL)
        assert_close("running_var", new.running_var, ref.running_var, **TOL)
        assert int(new.num_batches_tracked) == int(ref.num_batches_tracked) == step + 1
        assert state.running_mean is not new.running_mean  # pure: the old state is kept
        state = new
    assert_close("dgamma", w.grad, ref.weight.grad, **TOL)
    assert_close("dbeta", b.grad, ref.bias.grad, **TOL)
    y, same = batch_norm_state(x.detach(), w, b, state, False, momentum, ref.eps, kernel)
    assert torch.equal(same.running_mean, state.running_mean)  # eval: unchanged
    assert_close("eval y", y, ref.eval()(x.detach()), **TOL)


def _net(kind: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    bn2, bn1 = (
        (nn.BatchNorm2d, nn.BatchNorm1d)
        if kind == "torch"
        else (
            bnlab.BatchNorm2d,
            bnlab.BatchNorm1d,
        )
    )
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False),
        bn2(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 5 * 5, 6),
        bn1(6, momentum=None),
        nn.Tanh(),
        nn.Linear(6, 2),
    ).double()


@pytest.mark.parametrize("kind", ["torch", "bnlab"])
def test_vmapped_members_equal_separate_models(kind):
    """K nets as one vmapped call, statistics fed back each step, against K torch.nn nets."""
    models = [_net(kind, seed) for seed in range(K)]
    functional = [copy.deepcopy(m) for m in models]
    for m in functional:
        assert to_functional(m) == ["1", "5"]
    params, buffers = stack_module_state(functional)
    template = functional[0]

    weights = _weights((7, 2))

    def member(p, b, x):
        with state_updates() as new:
            out = functional_call(template, (p, b), (x,))
        return (out * weights).sum(), new

    for step in range(3):
        x = torch.randn(K, 7, 3, 5, 5, dtype=F64) + step
        losses, new = vmap(member)(params, buffers, x)
        grads = torch.autograd.grad(losses.sum(), list(params.values()))
        buffers = {**buffers, **new}
        for k, model in enumerate(models):
            out = model(x[k])
            loss = (out * weights).sum()
            own = torch.autograd.grad(loss, list(model.parameters()))
            assert_close(f"loss {k}", losses[k].detach(), loss.detach(), **TOL)
            for (name, _), g, g_own in zip(model.named_parameters(), grads, own, strict=True):
                assert_close(f"grad {name} {k}", g[k], g_own, **TOL)
            for name, buf in model.named_buffers():
                assert_close(f"{name} {k}", buffers[name][k], buf, **TOL)
    template.eval()
    outs = vmap(lambda p, b, x: functional_call(template, (p, b), (x,)))(params, buffers, x)
    for k, model in enumerate(models):
        assert_close(f"eval {k}", outs[k], model.eval()(x[k]), **TOL)


def test_a_non_finite_batch_leaves_only_that_members_statistics():
    """bnlab's BN semantics (torch's, the "aten" kernel, takes the batch in, as torch does)."""
    kernel = "bnlab"
    x = torch.randn(K, 6, 4, dtype=F64)
    x[1, 2, 3] = float("nan")
    stats = (torch.zeros(K, 4, dtype=F64), torch.ones(K, 4, dtype=F64), torch.zeros(K).long())

    def member(x, mean, var, count):
        y, new = batch_norm_state(x, None, None, BNState(mean, var, count), True, 0.1, 1e-5, kernel)
        return y, new.running_mean, new.running_var, new.num_batches_tracked

    y, mean, var, count = vmap(member)(x, *stats)
    assert count.tolist() == [1, 0, 1]
    assert torch.equal(mean[1], stats[0][1]) and torch.equal(var[1], stats[1][1])
    assert not torch.equal(mean[0], stats[0][0]) and torch.isfinite(mean).all()
    assert torch.isnan(y[1]).any() and torch.isfinite(y[0]).all()


def test_training_outside_the_collector_is_refused():
    layer = FunctionalBatchNorm(nn.BatchNorm1d(3), "bn", "aten")
    with pytest.raises(RuntimeError, match="state_updates"):
        layer(torch.randn(4, 3))
    with state_updates() as new:
        layer(torch.randn(4, 3))
    assert sorted(new) == ["bn.num_batches_tracked", "bn.running_mean", "bn.running_var"]
    assert float(layer.running_var.sum()) == 3.0  # the buffers were not written


def test_state_dicts_move_between_the_forms():
    model = _net("bnlab", 0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    to_functional(model)
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in before.items()
    }
