"""Per-member losses and flat gradients of a stack, and saving/restoring everything a probe
could disturb, so that measuring never changes training (bit for bit).

Every analysis evaluates the model at other parameter values, in training mode (the loss the
optimizer sees, with batch statistics). That updates BN running statistics and draws noise, so
`preserved` snapshots the parameters, the gradients, the buffers (running statistics,
num_batches_tracked), the modules' extra state (noise generators), the optimizer state, the
global RNG and the train/eval flag, and writes them back in place on exit.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from bnlab.engine.models import StackedModel


def member_losses(model: StackedModel, xb: Tensor, yb: Tensor) -> Tensor:
    """Mean cross-entropy of each member on its own batch, as `train_step` computes it: (K,)."""
    logits = model(xb)  # (K, B, classes)
    K, B, C = logits.shape
    loss = F.cross_entropy(logits.reshape(K * B, C), yb.reshape(K * B), reduction="none")
    return loss.view(K, B).mean(1)  # (K,)


def flatten_grads(model: StackedModel, grads: tuple[Tensor, ...]) -> Tensor:
    """Per-parameter gradients (K, ...) -> (K, P), in the layout of `model.flat`."""
    K = model.members
    return torch.cat([g.reshape(K, -1) for g in grads], dim=1)  # (K, P)


def loss_and_grad(
    model: StackedModel, xb: Tensor, yb: Tensor, create_graph: bool = False
) -> tuple[Tensor, Tensor]:
    """Per-member loss (K,) and gradient (K, P) at the current `model.flat`.

    Members never interact, so d(sum_k L_k)/d(theta_k) = dL_k/d(theta_k): one backward gives
    every member's gradient. `torch.autograd.grad` leaves `model.flat_grad` untouched.
    """
    params = [p for _, p in model.named_parameters()]  # the order of model.slices
    loss = member_losses(model, xb, yb)
    grads = torch.autograd.grad(loss.sum(), params, create_graph=create_graph)
    g = flatten_grads(model, grads)
    return (loss, g) if create_graph else (loss.detach(), g.detach())


@dataclass
class ModelState:
    """A copy of everything in a stack's model that a forward pass or a probe can change."""

    flat: Tensor
    flat_grad: Tensor
    buffers: dict[str, Tensor]
    extra: dict[str, object]
    training: bool


def save_model(model: StackedModel) -> ModelState:
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    extra = {
        n: copy.deepcopy(m.get_extra_state())
        for n, m in model.named_modules()
        if type(m).get_extra_state is not torch.nn.Module.get_extra_state
    }
    return ModelState(model.flat.clone(), model.flat_grad.clone(), buffers, extra, model.training)


@torch.no_grad()
def restore_model(model: StackedModel, state: ModelState) -> None:
    """Write `state` back in place: parameters stay views of `model.flat`."""
    model.flat.copy_(state.flat)
    model.flat_grad.copy_(state.flat_grad)
    for name, buf in model.named_buffers():
        buf.copy_(state.buffers[name])
    modules = dict(model.named_modules())
    for name, extra in state.extra.items():
        modules[name].set_extra_state(copy.deepcopy(extra))
    model.train(state.training)


@contextmanager
def preserved(model: StackedModel, optimizer=None) -> Iterator[ModelState]:
    """Run a measurement and then put model, optimizer and global RNG back exactly.

    Yields the saved state, so a measurement can also reset to it between evaluations.
    """
    state = save_model(model)
    opt_state = copy.deepcopy(optimizer.state_dict()) if optimizer is not None else None
    rng = torch.get_rng_state()
    model.train()
    try:
        yield state
    finally:
        restore_model(model, state)
        if optimizer is not None:
            optimizer.load_state_dict(copy.deepcopy(opt_state))
        torch.set_rng_state(rng)
