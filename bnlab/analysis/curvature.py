"""Curvature along the gradient, g^T H g / ||g||^2, by a Hessian-vector product (Pearlmutter
1994): H v = d/dtheta (grad L . v), one double backward (Santurkar et al. 2018, Sec. 3.1 and
Thm. 4.2 bound this quadratic form for BN networks).

BN's backward in `bnlab.functional` is itself differentiable, so this works through BN layers.
Members never interact, so the stack's Hessian is block diagonal and one product gives every
member's H_k v_k. Checked against torch.autograd.functional.hvp and against finite
differences of gradients in tests/test_analysis_curvature.py.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bnlab.analysis._state import flatten_grads, loss_and_grad, preserved
from bnlab.engine.models import StackedModel


def hvp(model: StackedModel, xb: Tensor, yb: Tensor, v: Tensor | None = None):
    """Per-member gradient g (K, P) and Hessian-vector product H v (K, P); v defaults to g.

    Runs in training mode (batch statistics) and restores the model afterwards.
    """
    with preserved(model):
        params = [p for _, p in model.named_parameters()]
        _, g = loss_and_grad(model, xb, yb, create_graph=True)  # (K, P), with graph
        v = g.detach() if v is None else v.to(g.dtype)
        Hv = torch.autograd.grad((g * v).sum(), params)  # d(g . v)/d(theta) = H v
        return g.detach(), flatten_grads(model, Hv).detach()


def gradient_curvature(model: StackedModel, xb: Tensor, yb: Tensor) -> dict[str, Tensor]:
    """g^T H g / ||g||^2 per member (K,): the second derivative of L along the unit gradient."""
    g, Hg = hvp(model, xb, yb)
    g_sq = g.square().sum(1)  # (K,)
    return {"curvature": (g * Hg).sum(1) / g_sq, "grad_norm": g_sq.sqrt()}
