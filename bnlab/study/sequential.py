"""K members trained one after another: the models as built, torch.optim, plain autograd.

For models that cannot be vmapped (`members.vmap_blocker` says why), and the reference the
vmapped path is tested against. Each step trains member 0, then 1, ..., each on its own
batch of the shared (K, B, ...) stream, so member k sees the data a vmapped member k sees.

A member whose loss turns non-finite has diverged. bnlab's BN refuses a NaN batch with a
ValueError where torch's passes it on; either way the member's parameters become NaN (as
they do in the vmapped path, where the NaN gradient is applied) and it is not trained again.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bnlab.study.members import layer_groups, member_loss, trainable
from bnlab.study.spec import Optimizer

__all__ = ["SequentialMembers"]

EVAL_CHUNK = 1000  # examples per evaluation forward
RNG_OFFSET = 2_000_003  # a member's random stream, unrelated to its init and data streams


def make_torch_optimizer(model: nn.Module, optimizer: Optimizer, lr: float):
    params = [p for _, p in trainable(model)]
    if optimizer.name == "adam":
        return torch.optim.Adam(params, lr, weight_decay=optimizer.weight_decay)
    return torch.optim.SGD(
        params, lr, momentum=optimizer.momentum, weight_decay=optimizer.weight_decay
    )


class SequentialMembers:
    """The K models of one variant, trained in turn (see the module docstring). Random
    numbers come from the CPU generator (dropout on CUDA would draw from the device's)."""

    mode = "sequential"

    def __init__(
        self, models: list[nn.Module], optimizer: Optimizer, lr: float, device, seeds: list[int]
    ):
        self.models = [m.to(device) for m in models]
        self.members = len(models)
        # each member draws its random numbers (dropout) from its own stream, as it would
        # alone: seeded by its seed, saved and restored around its step
        self.rng = [torch.Generator().manual_seed(s + RNG_OFFSET).get_state() for s in seeds]
        self.optimizers = [make_torch_optimizer(m, optimizer, lr) for m in self.models]
        self.diverged = [False] * self.members
        self.layer_names, self._onehot = layer_groups(self.models[0])
        self._last_sq = torch.zeros(self.members, self._onehot.shape[1], dtype=torch.float64)

    def step(self, xb: Tensor, yb: Tensor, lr: float) -> tuple[Tensor, Tensor]:
        """One optimizer step of each member on its own batch: xb (K, B, ...), yb (K, B)."""
        losses, accs = [], []
        for k, (model, opt) in enumerate(zip(self.models, self.optimizers, strict=True)):
            with torch.random.fork_rng(devices=[]):
                torch.set_rng_state(self.rng[k])
                loss, acc = self._member_step(k, model, opt, xb[k], yb[k], lr)
                self.rng[k] = torch.get_rng_state()
            losses.append(loss)
            accs.append(acc)
        return torch.stack(losses), torch.stack(accs)

    def _member_step(self, k: int, model, opt, x, y, lr) -> tuple[Tensor, Tensor]:
        nan = torch.tensor(math.nan, dtype=x.dtype, device=x.device)
        if self.diverged[k]:
            self._last_sq[k] = math.nan
            return nan, nan
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=False)
        try:
            loss, acc = member_loss(model(x), y)
            loss.backward()
        except ValueError as err:
            if "NaN" not in str(err):
                raise
            loss, acc = nan, nan
        self._last_sq[k] = self._grad_sq(model)
        if not torch.isfinite(loss):
            self._diverge(k, model)
            return loss.detach(), acc
        opt.step()
        return loss.detach(), acc

    def _grad_sq(self, model: nn.Module) -> Tensor:
        sq = [
            torch.zeros((), dtype=torch.float64)
            if p.grad is None
            else p.grad.double().square().sum()
            for _, p in trainable(model)
        ]
        return torch.stack(sq).to(self._onehot.device) @ self._onehot  # (L,)

    @torch.no_grad()
    def _diverge(self, k: int, model: nn.Module) -> None:
        self.diverged[k] = True
        for _, p in trainable(model):
            p.fill_(math.nan)

    def layer_sq_norms(self) -> Tensor:
        return self._last_sq.clone()

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        losses, accs = [], []
        for model in self.models:
            model.eval()
            loss_sum, correct = 0.0, 0.0
            for i in range(0, len(y), EVAL_CHUNK):
                logits = model(x[i : i + EVAL_CHUNK])
                loss_sum += float(F.cross_entropy(logits, y[i : i + EVAL_CHUNK], reduction="sum"))
                correct += float((logits.argmax(-1) == y[i : i + EVAL_CHUNK]).sum())
            model.train()
            losses.append(loss_sum / len(y))
            accs.append(correct / len(y))
        return torch.tensor(losses, dtype=torch.float64), torch.tensor(accs, dtype=torch.float64)

    def member(self, k: int) -> nn.Module:
        return copy.deepcopy(self.models[k])

    def state_dict(self) -> dict:
        return {
            "models": [m.state_dict() for m in self.models],
            "optimizers": [o.state_dict() for o in self.optimizers],
            "diverged": list(self.diverged),
            "last_sq": self._last_sq.clone(),
            "rng": [s.clone() for s in self.rng],
        }

    def load_state_dict(self, state: dict) -> None:
        for model, opt, m_state, o_state in zip(
            self.models, self.optimizers, state["models"], state["optimizers"], strict=True
        ):
            model.load_state_dict(m_state)
            opt.load_state_dict(o_state)
        self.diverged = list(state["diverged"])
        self._last_sq = state["last_sq"].clone()
        self.rng = [s.clone() for s in state["rng"]]
