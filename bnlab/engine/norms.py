"""Normalization layers over a stack of K members, chosen by name through `NORM_LAYERS`.

A norm layer is built as `spec.make(members, channels, cfg, dtype)` and normalizes
(K, B, C) or (K, B, C, H, W). New layers (Layer, Group, Ghost, Batch Renorm, ...) plug in by
adding a `NormSpec` to `NORM_LAYERS`; the model builder and config validation read only the
registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bnlab.engine.stacked import from_columns, to_columns
from bnlab.functional import normalize, update_running_stats


class StackedBatchNorm(nn.Module):
    """Batch Normalization with statistics per member and channel (Ioffe & Szegedy 2015, Alg. 1).

    Training normalizes x (K, B, C) over B, or x (K, B, C, H, W) over B, H, W (as the columns
    of the channels-last (B*H*W, K*C) matrix the conv layers produce), with bnlab's own
    `functional.normalize`, and updates running statistics (K, C) purely
    (`update_running_stats`) before this module stores them. Eval normalizes with the running
    statistics (Alg. 2, step 10). gamma and beta are (K, C).
    """

    def __init__(
        self,
        members: int,
        channels: int,
        eps: float,
        momentum: float,
        dtype=None,
        compiled: bool | None = False,
    ):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        # passed to functional.normalize; False by default: compiling each new shape stalls a
        # short run for seconds (ModelConfig.compile_norm opts in)
        self.compiled = compiled
        self.weight = nn.Parameter(torch.ones(members, channels, dtype=dtype))  # gamma
        self.bias = nn.Parameter(torch.zeros(members, channels, dtype=dtype))  # beta
        self.register_buffer("running_mean", torch.zeros(members, channels, dtype=dtype))
        self.register_buffer("running_var", torch.ones(members, channels, dtype=dtype))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))

    def init_member(self, k: int, gen: torch.Generator, init: str, std: float) -> None:
        with torch.no_grad():
            self.weight[k].fill_(1.0)
            self.bias[k].zero_()

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 5:  # (K, B, C, H, W): per member and channel = per column of (N, K*C)
            y = self._normalize(to_columns(x), self.weight.reshape(1, -1), self.bias.reshape(1, -1))
            return from_columns(y, x.shape)
        # (K, B, C): statistics over B, parameters (K, 1, C)
        return self._normalize(x, self.weight.unsqueeze(1), self.bias.unsqueeze(1))

    def _normalize(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        """x (N, K*C) or (K, B, C), reduced over dim -2; gamma, beta broadcast against it."""
        if not self.training:
            # Alg. 2, step 10: the running statistics, an affine map of x
            mu = self.running_mean.view(gamma.shape)
            var = self.running_var.view(gamma.shape)
            return (x - mu) * torch.rsqrt(var + self.eps) * gamma + beta
        y, mu, var = normalize(x, gamma, beta, (x.dim() - 2,), self.eps, self.compiled)
        self._track(mu, var, n=x.shape[-2])
        return y

    @torch.no_grad()
    def _track(self, mu: Tensor, var: Tensor, n: int) -> None:
        self.num_batches_tracked += 1
        new_mean, new_var = update_running_stats(
            self.running_mean,
            self.running_var,
            mu,
            var,
            n,
            self.momentum,
            int(self.num_batches_tracked) if self.momentum is None else 1,
        )
        self.running_mean.copy_(new_mean)
        self.running_var.copy_(new_var)


@dataclass(frozen=True)
class NormSpec:
    """How to build one kind of norm layer, and what the rest of the model must know of it."""

    make: Callable[..., nn.Module] | None  # (members, channels, model_cfg, dtype)
    needs_batch: bool  # statistics over the batch: a batch of 1 is an error
    has_shift: bool  # has a learned shift (beta), so a preceding layer needs no bias


def _make_batch(members, channels, model_cfg, dtype) -> nn.Module:
    compiled = True if model_cfg.compile_norm else False
    return StackedBatchNorm(
        members, channels, model_cfg.bn_eps, model_cfg.bn_momentum, dtype, compiled
    )


NORM_LAYERS: dict[str, NormSpec] = {
    "none": NormSpec(make=None, needs_batch=False, has_shift=False),
    "batch": NormSpec(make=_make_batch, needs_batch=True, has_shift=True),
    # "batch-noisy" registers itself from bnlab.engine.noisy_bn, which builds on this module
}
