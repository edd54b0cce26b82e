"""Hessian-vector products through BN: against torch.autograd.functional.hvp and against a
central finite difference of gradients, in float64."""

import pytest
import torch
from helpers import assert_close
from torch.func import functional_call

from bnlab.analysis._state import loss_and_grad, member_losses
from bnlab.analysis.curvature import gradient_curvature, hvp
from bnlab.engine import ModelConfig, build_model

DT = torch.float64


def _setup(norm: str, conv: bool = False):
    cfg = ModelConfig(conv_channels=(3,) if conv else (), hidden=(6, 5), activation="tanh")
    model = build_model(cfg, norm, 2, (1, 4, 4), DT)
    model.init_members([0, 1], "gaussian", 0.5)
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 10, 1, 4, 4, dtype=DT, generator=gen)
    y = torch.randint(0, 10, (2, 10), generator=gen)
    return model, x, y


def _loss_of_theta(model, x, y):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]

    def f(theta):  # (K, P) -> scalar sum of member losses
        params = {
            n: theta[:, a:b].reshape(s)
            for n, s, (a, b) in zip(names, shapes, model.slices.values(), strict=True)
        }
        logits = functional_call(model, params, (x,))
        K, B, C = logits.shape
        return (
            torch.nn.functional.cross_entropy(
                logits.reshape(K * B, C), y.reshape(-1), reduction="none"
            )
            .view(K, B)
            .mean(1)
            .sum()
        )

    return f


@pytest.mark.parametrize("norm,conv", [("batch", False), ("batch", True), ("none", False)])
def test_hvp_matches_autograd_functional(norm, conv):
    model, x, y = _setup(norm, conv)
    v = torch.randn(model.flat.shape, dtype=DT, generator=torch.Generator().manual_seed(5))
    _, Hv = hvp(model, x, y, v)
    _, ref = torch.autograd.functional.hvp(_loss_of_theta(model, x, y), model.flat.clone(), v)
    assert_close("Hv", Hv, ref, 1e-8, 1e-10)


def test_hvp_matches_finite_difference_of_gradients():
    model, x, y = _setup("batch")
    theta = model.flat.clone()
    g, Hg = hvp(model, x, y)
    h = 1e-5
    grads = []
    for sign in (1.0, -1.0):
        with torch.no_grad():
            model.flat.copy_(theta + sign * h * g)
        grads.append(loss_and_grad(model, x, y)[1])
    fd = (grads[0] - grads[1]) / (2 * h)  # (K, P)
    assert_close("Hg vs FD", Hg, fd, 1e-5, 1e-7)


def test_curvature_is_the_second_derivative_along_the_unit_gradient():
    model, x, y = _setup("batch")
    got = gradient_curvature(model, x, y)["curvature"]  # (K,)
    theta = model.flat.clone()
    g = loss_and_grad(model, x, y)[1]
    u = g / torch.linalg.vector_norm(g, dim=1, keepdim=True)  # (K, P) unit directions
    h = 1e-4
    losses = []
    for t in (h, 0.0, -h):
        with torch.no_grad():
            model.flat.copy_(theta + t * u)
        losses.append(member_losses(model, x, y).detach())
    fd = (losses[0] - 2 * losses[1] + losses[2]) / h**2  # (K,)
    assert_close("curvature vs FD", got, fd, 1e-4, 1e-6)
