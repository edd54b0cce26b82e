"""Normalization layers over a stack of K members, chosen by name through `NORM_LAYERS`.

A norm layer is built as `spec.make(members, channels, spatial, cfg)` and normalizes
(K, B, C) or (K, B, C, H, W). New layers (Layer, Group, Ghost, Batch Renorm, ...) plug in by
adding a `NormSpec` to `NORM_LAYERS`; the model builder and config validation read only the
registry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bnlab.functional import batch_norm_eval, normalize, update_running_stats


class StackedBatchNorm(nn.Module):
    """Batch Normalization with statistics per member and channel (Ioffe & Szegedy 2015, Alg. 1).

    Training normalizes x (K, B, C) over B, or x (K, B, C, H, W) over B, H, W, with bnlab's
    own `functional.normalize`, and updates running statistics (K, C) purely
    (`update_running_stats`) before this module stores them. Eval normalizes with the running
    statistics (Alg. 2, step 10). gamma and beta are (K, C).
    """

    def __init__(
        self,
        members: int,
        channels: int,
        spatial: bool,
        eps: float,
        momentum: float,
        dtype=None,
        compiled: bool | None = None,
    ):
        super().__init__()
        self.spatial, self.eps, self.momentum = spatial, eps, momentum
        self.compiled = compiled  # passed to functional.normalize (None: decide by size)
        self.weight = nn.Parameter(torch.ones(members, channels, dtype=dtype))  # gamma
        self.bias = nn.Parameter(torch.zeros(members, channels, dtype=dtype))  # beta
        self.register_buffer("running_mean", torch.zeros(members, channels, dtype=dtype))
        self.register_buffer("running_var", torch.ones(members, channels, dtype=dtype))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))

    def init_member(self, k: int, gen: torch.Generator, init: str, std: float) -> None:
        with torch.no_grad():
            self.weight[k].fill_(1.0)
            self.bias[k].zero_()

    def _param_shape(self, x: Tensor) -> tuple[int, ...]:
        # (K, C) -> (K, 1, C) or (K, 1, C, 1, 1), broadcast over batch (and space)
        return (x.shape[0], 1, x.shape[2]) + (1,) * (x.dim() - 3)

    def forward(self, x: Tensor) -> Tensor:
        shape = self._param_shape(x)
        gamma, beta = self.weight.view(shape), self.bias.view(shape)
        if not self.training:
            mu, var = self.running_mean.view(shape), self.running_var.view(shape)
            return batch_norm_eval(x, gamma, beta, mu, var, self.eps)
        dims = (1, 3, 4) if x.dim() == 5 else (1,)
        # mu, var (K, 1, C[, 1, 1])
        y, mu, var = normalize(x, gamma, beta, dims, self.eps, self.compiled)
        self._track(mu, var, n=math.prod(x.shape[d] for d in dims))
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

    make: Callable[..., nn.Module] | None  # (members, channels, spatial, model_cfg, dtype)
    needs_batch: bool  # statistics over the batch: a batch of 1 is an error
    has_shift: bool  # has a learned shift (beta), so a preceding layer needs no bias


def _make_batch(members, channels, spatial, model_cfg, dtype) -> nn.Module:
    compiled = True if model_cfg.compile_norm else None
    return StackedBatchNorm(
        members, channels, spatial, model_cfg.bn_eps, model_cfg.bn_momentum, dtype, compiled
    )


def _make_batch_noisy(members, channels, spatial, model_cfg, dtype) -> nn.Module:
    from bnlab.analysis.noisy_bn import NoiseConfig, StackedNoisyBatchNorm  # builds on this

    return StackedNoisyBatchNorm(
        members,
        channels,
        spatial,
        model_cfg.bn_eps,
        model_cfg.bn_momentum,
        NoiseConfig.from_model(model_cfg),
        dtype=dtype,
    )


NORM_LAYERS: dict[str, NormSpec] = {
    "none": NormSpec(make=None, needs_batch=False, has_shift=False),
    "batch": NormSpec(make=_make_batch, needs_batch=True, has_shift=True),
    # BN + per-step noise before the nonlinearity (Santurkar et al. 2018, Sec. 2.1)
    "batch-noisy": NormSpec(make=_make_batch_noisy, needs_batch=True, has_shift=True),
}
