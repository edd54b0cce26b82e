"""SGD and Adam over a stack's flat (K, P) parameter buffer, with a learning rate per member.

Each update is a handful of whole-buffer tensor ops, whatever the number of layers or
members. Per member they compute what `torch.optim.SGD` / `torch.optim.Adam` compute
(tested against them in tests/test_engine_optim.py, float64, rtol 1e-12).
"""

from __future__ import annotations

import torch
from torch import Tensor

from bnlab.engine.config import OptimConfig


class StackedSGD:
    """p <- p - lr_k * d, d = momentum buffer of (g + weight_decay * p); PyTorch's convention.

    buf_0 = 0 makes the first step buf = g exactly, as torch.optim.SGD's clone does.
    """

    def __init__(self, flat: Tensor, flat_grad: Tensor, lrs: Tensor, cfg: OptimConfig):
        self.flat, self.grad, self.cfg = flat, flat_grad, cfg
        self.lr = lrs.to(flat.dtype).reshape(-1, 1)  # (K, 1)
        self.buf = torch.zeros_like(flat) if cfg.momentum else None  # (K, P)

    @torch.no_grad()
    def step(self) -> None:
        d = self.grad
        if self.cfg.weight_decay:
            d = d.add(self.flat, alpha=self.cfg.weight_decay)
        if self.buf is not None:
            self.buf.mul_(self.cfg.momentum).add_(d)
            d = self.buf
        self.flat.addcmul_(d, self.lr, value=-1.0)

    def state_dict(self) -> dict:
        return {"lr": self.lr.clone(), "buf": None if self.buf is None else self.buf.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.lr.copy_(state["lr"])
        if self.buf is not None:
            self.buf.copy_(state["buf"])


class StackedAdam:
    """Adam (Kingma & Ba 2015, Alg. 1) with PyTorch's eps placement and L2 weight decay."""

    def __init__(self, flat: Tensor, flat_grad: Tensor, lrs: Tensor, cfg: OptimConfig):
        self.flat, self.grad, self.cfg = flat, flat_grad, cfg
        self.lr = lrs.to(flat.dtype).reshape(-1, 1)  # (K, 1)
        self.m = torch.zeros_like(flat)  # (K, P) first moment
        self.v = torch.zeros_like(flat)  # (K, P) second moment
        self.t = 0

    @torch.no_grad()
    def step(self) -> None:
        cfg, g = self.cfg, self.grad
        if cfg.weight_decay:
            g = g.add(self.flat, alpha=cfg.weight_decay)
        self.t += 1
        self.m.lerp_(g, 1.0 - cfg.beta1)
        self.v.mul_(cfg.beta2).addcmul_(g, g, value=1.0 - cfg.beta2)
        bias1 = 1.0 - cfg.beta1**self.t
        bias2_sqrt = (1.0 - cfg.beta2**self.t) ** 0.5
        denom = (self.v.sqrt() / bias2_sqrt).add_(cfg.adam_eps)  # (K, P)
        step = self.m / denom  # (K, P)
        self.flat.addcmul_(step, self.lr, value=-1.0 / bias1)

    def state_dict(self) -> dict:
        return {"lr": self.lr.clone(), "m": self.m.clone(), "v": self.v.clone(), "t": self.t}

    def load_state_dict(self, state: dict) -> None:
        self.lr.copy_(state["lr"])
        self.m.copy_(state["m"])
        self.v.copy_(state["v"])
        self.t = int(state["t"])


def make_optimizer(flat: Tensor, flat_grad: Tensor, lrs: list[float], cfg: OptimConfig):
    lr = torch.tensor(lrs, dtype=flat.dtype, device=flat.device)  # (K,)
    if cfg.name == "sgd":
        return StackedSGD(flat, flat_grad, lr, cfg)
    if cfg.name == "adam":
        return StackedAdam(flat, flat_grad, lr, cfg)
    raise ValueError(f"optim.name: expected one of sgd, adam, got {cfg.name!r}")
