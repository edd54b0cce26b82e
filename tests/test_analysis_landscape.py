"""Landscape along the gradient: closed forms on a quadratic, and the stacked model version
against a loop over single members."""

import pytest
import torch
from helpers import assert_close

from bnlab.analysis.landscape import LandscapeConfig, along_gradient, landscape
from bnlab.engine import ModelConfig, build_model

DT = torch.float64


def _quadratic(A: torch.Tensor):
    """L_k(theta) = 1/2 theta_k^T A_k theta_k for A (K, P, P); gradient A_k theta_k."""

    def loss_grad(theta):  # (K, P)
        g = torch.einsum("kij,kj->ki", A, theta)  # (K, P)
        return 0.5 * (theta * g).sum(1), g

    return loss_grad


def _spd(K: int, P: int, gen) -> torch.Tensor:
    Q = torch.linalg.qr(torch.randn(K, P, P, generator=gen, dtype=DT)).Q  # (K, P, P)
    eig = torch.rand(K, P, generator=gen, dtype=DT) * 4 + 0.5
    return Q @ torch.diag_embed(eig) @ Q.transpose(1, 2)


def test_quadratic_closed_forms():
    gen = torch.Generator().manual_seed(0)
    K, P = 3, 6
    A = _spd(K, P, gen)
    theta = torch.randn(K, P, generator=gen, dtype=DT)
    etas = torch.tensor([0.05, 0.1, 0.2, 0.4], dtype=DT).expand(K, -1)  # (K, S)
    got = along_gradient(_quadratic(A), theta, etas)
    g = torch.einsum("kij,kj->ki", A, theta)
    Ag = torch.einsum("kij,kj->ki", A, g)
    gg, gAg = (g * g).sum(1, keepdim=True), (g * Ag).sum(1, keepdim=True)  # (K, 1)
    L0 = 0.5 * (theta * g).sum(1, keepdim=True)
    L = L0 - etas * gg + 0.5 * etas**2 * gAg  # (K, S): exact along the line
    assert_close(
        "loss_variation", got["loss_variation"], L.max(1).values - L.min(1).values, 1e-10, 1e-12
    )
    change = etas * torch.linalg.vector_norm(Ag, dim=1, keepdim=True)  # eta ||A g||
    assert_close("grad_change_max", got["grad_change_max"], change.max(1).values, 1e-10, 1e-12)
    beta = torch.linalg.vector_norm(Ag, dim=1) / torch.linalg.vector_norm(g, dim=1)
    assert_close("beta", got["beta_smoothness"], beta, 1e-10, 1e-12)


def test_beta_is_the_eigenvalue_along_an_eigenvector():
    gen = torch.Generator().manual_seed(1)
    K, P = 2, 5
    A = _spd(K, P, gen)
    lam, V = torch.linalg.eigh(A)  # ascending; V (K, P, P)
    theta = 3.0 * V[:, :, -1]  # along the top eigenvector: g = lambda_max theta
    got = along_gradient(_quadratic(A), theta, torch.tensor([[0.1, 0.3]], dtype=DT).expand(K, -1))
    assert_close("beta = lambda_max", got["beta_smoothness"], lam[:, -1], 1e-10, 1e-12)


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_stack_equals_members_alone(norm):
    """Member k of a stack gets the numbers a one-member model with its seed gets."""
    cfg = ModelConfig(hidden=(12, 12), init_std=0.3)
    x = torch.randn(2, 20, 1, 4, 4, dtype=DT, generator=torch.Generator().manual_seed(2))
    y = torch.randint(0, 10, (2, 20), generator=torch.Generator().manual_seed(3))
    lrs = torch.tensor([0.1, 0.3], dtype=DT)
    stack = build_model(cfg, norm, 2, (1, 4, 4), DT)
    stack.init_members([5, 6], "gaussian", 0.3)
    both = landscape(stack, x, y, lrs, LandscapeConfig((0.5, 2.0)))
    for k, seed in enumerate([5, 6]):
        one = build_model(cfg, norm, 1, (1, 4, 4), DT)
        one.init_members([seed], "gaussian", 0.3)
        alone = landscape(
            one, x[k : k + 1], y[k : k + 1], lrs[k : k + 1], LandscapeConfig((0.5, 2.0))
        )
        for name, v in alone.items():
            assert_close(f"{name}[{k}]", both[name][k : k + 1], v, 1e-9, 1e-12)


def test_bad_grid_is_rejected():
    with pytest.raises(ValueError, match="lr_multiples"):
        LandscapeConfig((0.5, -1.0))


def test_absolute_step_sizes_ignore_the_learning_rate():
    """With `step_sizes`, every member is probed over the same distances whatever its lr;
    without, the grid scales with each member's lr."""
    lrs = torch.tensor([0.05, 0.5], dtype=DT)
    fixed = LandscapeConfig(step_sizes=(0.05, 0.4)).etas(lrs)
    assert_close("absolute", fixed, torch.tensor([[0.05, 0.4], [0.05, 0.4]], dtype=DT), 0, 0)
    scaled = LandscapeConfig(lr_multiples=(1.0, 2.0)).etas(lrs)
    assert_close("multiples", scaled, torch.tensor([[0.05, 0.1], [0.5, 1.0]], dtype=DT), 0, 0)
    with pytest.raises(ValueError, match="step_sizes"):
        LandscapeConfig(step_sizes=(0.1, -0.2))
