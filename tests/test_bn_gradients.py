"""The hand-written backward passes against independent references.

- `bnlab.batch_norm` / `normalize`: gradcheck and gradgradcheck in float64 (finite
  differences), and autograd through torch's own batch_norm.
- `bnlab.reference`: fused and staged backward against each other, against float64 central
  finite differences, and forward/backward against torch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close, numerical_grad

import bnlab
from bnlab import reference

SHAPES = [(6, 3), (4, 3, 5), (3, 2, 4, 3)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_gradcheck_and_gradgradcheck(shape, training):
    torch.manual_seed(0)
    c = shape[1]
    x = (torch.randn(shape, dtype=torch.float64) * 2 + 1).requires_grad_()
    weight = (torch.rand(c, dtype=torch.float64) + 0.5).requires_grad_()
    bias = torch.randn(c, dtype=torch.float64).requires_grad_()
    rm, rv = torch.randn(c, dtype=torch.float64), torch.rand(c, dtype=torch.float64) + 0.5

    def f(x, weight, bias):
        # running stats are cloned so that the finite-difference probes do not drift them
        return bnlab.batch_norm(x, rm.clone(), rv.clone(), weight, bias, training=training)

    assert torch.autograd.gradcheck(f, (x, weight, bias))
    assert torch.autograd.gradgradcheck(f, (x, weight, bias))


def test_gradgradcheck_normalize_stacked():
    # the engine's layout: (K, B, C) with per-member gamma/beta (K, 1, C), stats over B only
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3, dtype=torch.float64).requires_grad_()
    w = (torch.rand(2, 1, 3, dtype=torch.float64) + 0.5).requires_grad_()
    b = torch.randn(2, 1, 3, dtype=torch.float64).requires_grad_()

    def f(x, w, b):
        return bnlab.normalize(x, w, b, dims=(1,))[0]

    assert torch.autograd.gradcheck(f, (x, w, b))
    assert torch.autograd.gradgradcheck(f, (x, w, b))


@pytest.mark.parametrize("shape", SHAPES)
def test_hessian_vector_product_matches_torch(shape):
    """Second derivatives through our backward equal those through ATen's."""
    torch.manual_seed(0)
    c = shape[1]
    x0 = torch.randn(shape, dtype=torch.float64)
    w0 = torch.rand(c, dtype=torch.float64) + 0.5
    v = torch.randn(shape, dtype=torch.float64)
    target = torch.randn(shape, dtype=torch.float64)

    def hvp(bn):
        x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
        loss = ((torch.tanh(bn(x, None, None, w, None, training=True)) - target) ** 2).sum()
        (gx,) = torch.autograd.grad(loss, x, create_graph=True)
        return torch.autograd.grad((gx * v).sum(), (x, w))

    for ours, ref in zip(hvp(bnlab.batch_norm), hvp(F.batch_norm), strict=True):
        assert_close("Hv", ours, ref, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("shape", SHAPES)
def test_reference_backward_fused_staged_and_finite_differences(shape):
    rng = np.random.default_rng(0)
    c = shape[1]
    x = rng.normal(1.0, 2.0, size=shape)
    gamma, beta = rng.uniform(0.5, 1.5, c), rng.normal(size=c)
    dy = rng.normal(size=shape)
    _y, cache = reference.forward(x, gamma, beta)
    fused = reference.backward(dy, cache)
    staged = reference.backward_staged(dy, cache)

    def loss():
        return float((reference.forward(x, gamma, beta)[0] * dy).sum())

    numeric = [numerical_grad(loss, a) for a in (x, gamma, beta)]
    for name, f, s, n in zip(["dx", "dgamma", "dbeta"], fused, staged, numeric, strict=True):
        np.testing.assert_allclose(f, s, rtol=1e-10, atol=1e-12, err_msg=f"{name} fused/staged")
        np.testing.assert_allclose(f, n, rtol=1e-6, atol=1e-7, err_msg=f"{name} vs finite diff")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_reference_matches_torch_autograd(shape, dtype):
    rng = np.random.default_rng(1)
    c = shape[1]
    x = rng.normal(3.0, 2.0, size=shape).astype(dtype)
    gamma, beta = rng.uniform(0.5, 1.5, c).astype(dtype), rng.normal(size=c).astype(dtype)
    dy = rng.normal(size=shape).astype(dtype)
    y, cache = reference.forward(x, gamma, beta)
    grads = reference.backward(dy, cache)
    assert y.dtype == dtype and all(g.dtype == dtype for g in grads)

    tx, tg, tb = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    ty = F.batch_norm(tx, None, None, tg, tb, training=True)
    ty.backward(torch.tensor(dy))
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(y, ty.detach().numpy(), **tol)
    for name, ours, ref in zip(["dx", "dgamma", "dbeta"], grads, (tx, tg, tb), strict=True):
        np.testing.assert_allclose(ours, ref.grad.numpy(), **tol, err_msg=name)


def test_reference_running_stats_match_torch():
    rng = np.random.default_rng(2)
    x = rng.normal(2.0, 3.0, size=(7, 4))
    rm, rv = np.zeros(4), np.ones(4)
    _, cache = reference.forward(x, np.ones(4), np.zeros(4))
    new_mean, new_var = reference.update_running_stats(rm, rv, cache.mu, cache.var, m=7)
    np.testing.assert_array_equal(rm, np.zeros(4))  # pure: inputs untouched
    trm, trv = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    F.batch_norm(torch.tensor(x), trm, trv, training=True, momentum=0.1)
    np.testing.assert_allclose(new_mean, trm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(new_var, trv.numpy(), rtol=1e-12)


def test_update_running_stats_is_pure_and_cumulative():
    rm, rv = torch.zeros(3), torch.ones(3)
    mu, var = torch.full((1, 3), 2.0), torch.full((1, 3), 4.0)
    new_mean, new_var = bnlab.update_running_stats(rm, rv, mu, var, m=5, momentum=None)
    assert torch.equal(rm, torch.zeros(3)) and torch.equal(rv, torch.ones(3))
    # first batch with a cumulative average: factor 1/1, the batch statistics themselves
    assert torch.allclose(new_mean, torch.full((3,), 2.0))
    assert torch.allclose(new_var, torch.full((3,), 4.0 * 5 / 4))
