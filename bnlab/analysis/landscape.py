"""Loss landscape along the gradient (Santurkar et al. 2018, Sec. 3.1, Fig. 4).

At parameters theta with per-member gradient g, step along the update direction with each step
size eta of a grid, theta_eta = theta - eta * g, and record, per member:

- loss variation: the range (min, max) of L(theta_eta) over the grid (Fig. 4a, the band);
- gradient predictiveness: the range of ||grad L(theta_eta) - g|| over the grid (Fig. 4b);
- effective beta-smoothness: max_eta ||grad L(theta_eta) - g|| / ||eta g|| (Fig. 4c), the
  gradient's Lipschitz constant measured along the direction the optimizer moves.

On a quadratic L = 1/2 theta^T A theta (tests/test_analysis_landscape.py):
L(theta_eta) = L - eta ||g||^2 + eta^2/2 g^T A g, the gradient change is eta ||A g||, and the
effective beta-smoothness is ||A g|| / ||g||: the eigenvalue when g is an eigenvector.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from bnlab.analysis._state import loss_and_grad, preserved, restore_model
from bnlab.engine.models import StackedModel

LossGrad = Callable[[Tensor], tuple[Tensor, Tensor]]  # theta (K, P) -> loss (K,), grad (K, P)


@dataclass(frozen=True)
class LandscapeConfig:
    """The step-size grid: absolute `step_sizes`, or else multiples of each member's lr.

    Santurkar et al. 2018, Fig. 4 steps along the gradient with several step sizes at each
    probed training step, and its caption caps the distance at eta = 0.4 x the gradient; the
    figures use lr 0.1, so the grid there reads as 0.05..0.4 (the lower end is our reading).
    `step_sizes` takes that grid as is, the same for every member, so that runs at
    different learning rates are probed over the same distances (the lr sweep of
    `santurkar2018-landscape`). Without it, the grid is `lr_multiples` of each member's own
    learning rate (default 0.5..4, which is 0.05..0.4 at lr 0.1).
    """

    lr_multiples: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
    step_sizes: tuple[float, ...] | None = None

    def __post_init__(self):
        if not self.lr_multiples or any(not m > 0 for m in self.lr_multiples):
            raise ValueError(
                f"lr_multiples: got {self.lr_multiples!r}, expected positive step multiples"
            )
        if self.step_sizes is not None and (
            not self.step_sizes or any(not s > 0 for s in self.step_sizes)
        ):
            raise ValueError(
                f"step_sizes: got {self.step_sizes!r}, expected positive step sizes or None"
            )

    def etas(self, lrs: Tensor) -> Tensor:
        """The grid of every member, (K, S), for members with learning rates lrs (K,)."""
        if self.step_sizes is not None:
            sizes = torch.tensor(self.step_sizes, dtype=lrs.dtype, device=lrs.device)
            return sizes.expand(lrs.shape[0], -1)
        multiples = torch.tensor(self.lr_multiples, dtype=lrs.dtype, device=lrs.device)
        return lrs.reshape(-1, 1) * multiples


def along_gradient(loss_grad: LossGrad, theta: Tensor, etas: Tensor) -> dict[str, Tensor]:
    """The three measurements for every member; theta (K, P), etas (K, S) -> name: (K,).

    `loss_grad(theta)` returns the per-member loss (K,) and gradient (K, P) at theta.
    """
    loss0, g = loss_grad(theta)  # (K,), (K, P)
    g_norm = torch.linalg.vector_norm(g, dim=1)  # (K,)
    losses, changes, betas = [], [], []
    for j in range(etas.shape[1]):
        eta = etas[:, j : j + 1]  # (K, 1)
        loss, grad = loss_grad(theta - eta * g)
        change = torch.linalg.vector_norm(grad - g, dim=1)  # (K,)
        losses.append(loss)
        changes.append(change)
        betas.append(change / (eta[:, 0] * g_norm))  # distance moved is eta ||g||
    L, D = torch.stack(losses, 1), torch.stack(changes, 1)  # (K, S) each
    return {
        "loss": loss0,
        "grad_norm": g_norm,
        "loss_min": L.min(1).values,
        "loss_max": L.max(1).values,
        "loss_variation": L.max(1).values - L.min(1).values,
        "grad_change_min": D.min(1).values,
        "grad_change_max": D.max(1).values,
        "beta_smoothness": torch.stack(betas, 1).max(1).values,
    }


def landscape(
    model: StackedModel, xb: Tensor, yb: Tensor, lrs: Tensor, cfg: LandscapeConfig
) -> dict[str, Tensor]:
    """`along_gradient` for a stack on batch (xb, yb); lrs (K,) are the members' rates.

    Every point is evaluated from the same saved state (running statistics, noise streams),
    so the only thing that differs between points is the parameters; the model is restored.
    """
    etas = cfg.etas(lrs)  # (K, S)
    with preserved(model) as saved:

        def loss_grad(theta: Tensor) -> tuple[Tensor, Tensor]:
            restore_model(model, saved)
            with torch.no_grad():
                model.flat.copy_(theta)
            model.train()
            return loss_and_grad(model, xb, yb)

        return along_gradient(loss_grad, saved.flat.clone(), etas.to(model.flat.dtype))
