"""The normalization family's hand-written backward passes against independent references.

- torch: gradcheck and gradgradcheck in float64 (finite differences) for every layer's
  functional form and module, and Hessian-vector products against torch.nn's.
- NumPy references: forward and backward against float64 central finite differences and
  against torch.nn's autograd.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close, numerical_grad
from torch import nn

import bnlab
from bnlab.norms import groupnorm, instancenorm, layernorm

F64 = torch.float64
TIGHT = dict(rtol=1e-10, atol=1e-12)


def _params(c, shape=None):
    shape = shape or (c,)
    weight = (torch.rand(shape, dtype=F64) + 0.5).requires_grad_()
    bias = torch.randn(shape, dtype=F64).requires_grad_()
    return weight, bias


FUNCTIONS = {  # name -> (bnlab's, torch's, input shape, parameter shape)
    "layer_norm": (
        lambda x, w, b: bnlab.norms.layer_norm(x, (4, 3), w, b),
        lambda x, w, b: F.layer_norm(x, (4, 3), w, b),
        (2, 4, 3),
        (4, 3),
    ),
    "group_norm": (
        lambda x, w, b: bnlab.norms.group_norm(x, 2, w, b),
        lambda x, w, b: F.group_norm(x, 2, w, b),
        (2, 4, 3),
        (4,),
    ),
    "instance_norm": (
        lambda x, w, b: bnlab.norms.instance_norm(x, None, None, w, b),
        lambda x, w, b: F.instance_norm(x, None, None, w, b),
        (2, 3, 2, 2),
        (3,),
    ),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_gradcheck_and_gradgradcheck(name):
    torch.manual_seed(0)
    ours, _, shape, pshape = FUNCTIONS[name]
    x = (torch.randn(shape, dtype=F64) * 2 + 1).requires_grad_()
    w, b = _params(None, pshape)
    assert torch.autograd.gradcheck(ours, (x, w, b))
    assert torch.autograd.gradgradcheck(ours, (x, w, b))


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_hessian_vector_product_matches_torch(name):
    """Second derivatives through our backward equal those through ATen's."""
    torch.manual_seed(0)
    ours, theirs, shape, pshape = FUNCTIONS[name]
    x0, v = torch.randn(shape, dtype=F64), torch.randn(shape, dtype=F64)
    w0, b0 = (t.detach() for t in _params(None, pshape))

    def hvp(f):
        x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
        loss = (torch.tanh(f(x, w, b0)) ** 2).sum()
        (gx,) = torch.autograd.grad(loss, x, create_graph=True)
        return torch.autograd.grad((gx * v).sum(), (x, w))

    for a, b in zip(hvp(ours), hvp(theirs), strict=True):
        assert_close(f"{name} Hv", a, b, rtol=1e-9, atol=1e-10)


def test_module_gradgradcheck_with_running_stats():
    torch.manual_seed(0)
    m = bnlab.InstanceNorm1d(3, affine=True, track_running_stats=True).double()
    x = torch.randn(2, 3, 4, dtype=F64, requires_grad=True)
    w, b = _params(3)

    def f(x, w, b):
        return torch.func.functional_call(m, {"weight": w, "bias": b}, (x,))

    assert torch.autograd.gradgradcheck(f, (x, w, b))


# --- NumPy references ----------------------------------------------------------------------

REFERENCES = {  # name -> (forward(x, gamma, beta), backward, input shape, gamma shape, torch)
    "layer_norm": (
        layernorm.reference_forward,
        layernorm.reference_backward,
        (3, 2, 4),
        (2, 4),
        lambda x, g, b: F.layer_norm(x, (2, 4), g, b),
    ),
    "group_norm": (
        lambda x, g, b: groupnorm.reference_forward(x, g, b, num_groups=2),
        groupnorm.reference_backward,
        (3, 4, 3),
        (4,),
        lambda x, g, b: F.group_norm(x, 2, g, b),
    ),
    "instance_norm": (
        instancenorm.reference_forward,
        instancenorm.reference_backward,
        (2, 3, 2, 2),
        (3,),
        lambda x, g, b: F.instance_norm(x, weight=g, bias=b),
    ),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_reference_backward_vs_finite_differences(name):
    forward, backward, shape, gshape, _ = REFERENCES[name]
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 2.0, size=shape)
    gamma, beta = rng.uniform(0.5, 1.5, gshape), rng.normal(size=gshape)
    dy = rng.normal(size=shape)
    grads = backward(dy, forward(x, gamma, beta)[1])

    def loss():
        return float((forward(x, gamma, beta)[0] * dy).sum())

    numeric = [numerical_grad(loss, a) for a in (x, gamma, beta)]
    for label, ours, num in zip(["dx", "dgamma", "dbeta"], grads, numeric, strict=True):
        np.testing.assert_allclose(ours, num, rtol=1e-6, atol=1e-7, err_msg=f"{name} {label}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_reference_matches_torch_autograd(name, dtype):
    forward, backward, shape, gshape, theirs = REFERENCES[name]
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, size=shape).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, gshape).astype(dtype)
    beta = rng.normal(size=gshape).astype(dtype)
    dy = rng.normal(size=shape).astype(dtype)
    y, cache = forward(x, gamma, beta)
    grads = backward(dy, cache)
    assert y.dtype == dtype and all(g.dtype == dtype for g in grads)
    tx, tg, tb = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    ty = theirs(tx, tg, tb)
    ty.backward(torch.tensor(dy))
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(y, ty.detach().numpy(), **tol)
    for label, ours, ref in zip(["dx", "dgamma", "dbeta"], grads, (tx, tg, tb), strict=True):
        np.testing.assert_allclose(ours, ref.grad.numpy(), **tol, err_msg=f"{name} {label}")


def test_torch_func_transforms_match_torch_nn():
    """vmap and jacrev-of-jacrev see through the hand-written Functions."""
    torch.manual_seed(0)
    for ours, ref, shape in [  # shape: (vmapped, N, C, *)
        (bnlab.LayerNorm(5, dtype=F64), nn.LayerNorm(5, dtype=F64), (3, 4, 6, 5)),
        (bnlab.GroupNorm(2, 6, dtype=F64), nn.GroupNorm(2, 6, dtype=F64), (3, 4, 6, 5)),
        (bnlab.InstanceNorm2d(6, dtype=F64), nn.InstanceNorm2d(6, dtype=F64), (3, 2, 6, 3, 2)),
    ]:
        x = torch.randn(shape, dtype=F64)
        name = type(ours).__name__
        assert_close(f"{name} vmap", torch.func.vmap(ours)(x), torch.func.vmap(ref)(x), **TIGHT)

        def hessian(m, point):
            return torch.func.jacrev(torch.func.jacrev(lambda z: m(z).pow(3).sum()))(point)

        assert_close(
            f"{name} hessian",
            hessian(ours, x[0, :2]),
            hessian(ref, x[0, :2]),
            rtol=1e-9,
            atol=1e-10,
        )
