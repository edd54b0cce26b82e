"""Normalization layers over a stack of K members, chosen by name through `NORM_LAYERS`.

A norm layer is built as `spec.make(members, channels, cfg, dtype)` and normalizes
(K, B, C) or (K, B, C, H, W). New layers (Layer, Group, Ghost, Batch Renorm, ...) plug in by
adding a `NormSpec` to `NORM_LAYERS`; the model builder and config validation read only the
registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from bnlab.engine.norms_batch import make_ghost, make_renorm
from bnlab.engine.norms_group import make_group, make_instance, make_layer
from bnlab.engine.norms_state import BatchStatsState
from bnlab.engine.stacked import from_columns, from_groups, to_columns, to_groups
from bnlab.functional import batch_norm_eval, normalize

BN_KERNELS = ("aten", "bnlab")  # see StackedBatchNorm


class StackedBatchNorm(BatchStatsState):
    """Batch Normalization with statistics per member and channel (Ioffe & Szegedy 2015, Alg. 1).

    Training normalizes x (K, B, C) over B, or x (K, B, C, H, W) over B, H, W, and updates
    the running statistics (K, C); eval normalizes with them (Alg. 2, step 10). gamma and beta
    are (K, C). Two kernels compute the same thing (tested equal, values and gradients):

    - "aten" (the default): torch's fused `batch_norm` over the K*C member-channels of the
      channels-last (B, K*C, H, W) tensor the conv layers produce (for (K, B, C), over a
      (B, K*C) copy). About 5 passes over the activations per step (counted from the code).
    - "bnlab": bnlab's own hand-written `functional.normalize` over the columns of the
      (B*H*W, K*C) matrix, running statistics updated purely by `update_running_stats`. About
      12 passes per step, so it is slower on large conv activations; `compiled` fuses them with
      torch.compile (seconds of compilation per shape: only worth it for long runs).
    """

    def __init__(
        self,
        members: int,
        channels: int,
        eps: float,
        momentum: float,
        dtype=None,
        compiled: bool | None = False,
        kernel: str = "aten",
    ):
        super().__init__(members, channels, eps, momentum, dtype)
        self.kernel = kernel
        self.compiled = compiled  # passed to functional.normalize ("bnlab" kernel only)

    def forward(self, x: Tensor) -> Tensor:
        if self.kernel == "aten":
            return self._aten(x)
        if x.dim() == 5:  # (K, B, C, H, W): per member and channel = per column of (N, K*C)
            y = self._normalize(to_columns(x), self.weight.reshape(1, -1), self.bias.reshape(1, -1))
            return from_columns(y, x.shape)
        # (K, B, C): statistics over B, parameters (K, 1, C)
        return self._normalize(x, self.weight.unsqueeze(1), self.bias.unsqueeze(1))

    def _aten(self, x: Tensor) -> Tensor:
        """torch's batch_norm with the K*C member-channels as its channels."""
        K = x.shape[0]
        if x.dim() == 5:
            xg = to_groups(x)  # (B, K*C, H, W), channels_last: a view
        else:
            xg = x.transpose(0, 1).reshape(x.shape[1], -1)  # (B, K*C): one copy
        factor = 0.0
        if self.training:
            self._count_batch()
            # ATen takes the update weight as a number (momentum=None: a cumulative average)
            factor = self.momentum if self.momentum is not None else 1.0 / self.batches_seen()
        y = F.batch_norm(
            xg,
            self.running_mean.view(-1),  # (K*C,) views: updated in place
            self.running_var.view(-1),
            self.weight.reshape(-1),
            self.bias.reshape(-1),
            self.training,
            factor,
            self.eps,
        )
        if x.dim() == 5:
            return from_groups(y, K)  # (K, B, C, H, W)
        return y.view(x.shape[1], K, -1).transpose(0, 1)  # (K, B, C), a view

    def _normalize(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        """x (N, K*C) or (K, B, C), reduced over dim -2; gamma, beta broadcast against it."""
        if not self.training:
            # Alg. 2, step 10: the running statistics, an affine map of x
            mu = self.running_mean.view(gamma.shape)
            var = self.running_var.view(gamma.shape)
            return batch_norm_eval(x, gamma, beta, mu, var, self.eps)
        y, mu, var = normalize(x, gamma, beta, (x.dim() - 2,), self.eps, self.compiled)
        self._track(mu, var, n=x.shape[-2])
        return y


@dataclass(frozen=True)
class NormSpec:
    """How to build one kind of norm layer, and what the rest of the model must know of it."""

    make: Callable[..., nn.Module] | None  # (members, channels, model_cfg, dtype)
    needs_batch: bool  # statistics over the batch: a batch of 1 is an error
    has_shift: bool  # has a learned shift (beta), so a preceding layer needs no bias


def _make_batch(members, channels, model_cfg, dtype) -> nn.Module:
    compiled = True if model_cfg.compile_norm else False
    kernel = model_cfg.bn_kernel
    return StackedBatchNorm(
        members, channels, model_cfg.bn_eps, model_cfg.bn_momentum, dtype, compiled, kernel
    )


NORM_LAYERS: dict[str, NormSpec] = {
    "none": NormSpec(make=None, needs_batch=False, has_shift=False),
    "batch": NormSpec(make=_make_batch, needs_batch=True, has_shift=True),
    # statistics per example (bnlab.engine.norms_group, Wu & He 2018): no batch dependence
    "layer": NormSpec(make=make_layer, needs_batch=False, has_shift=True),
    "group": NormSpec(make=make_group, needs_batch=False, has_shift=True),
    "instance": NormSpec(make=make_instance, needs_batch=False, has_shift=True),
    # BN's variants (bnlab.engine.norms_batch): Ioffe 2017, Hoffer et al. 2017
    "renorm": NormSpec(make=make_renorm, needs_batch=True, has_shift=True),
    "ghost": NormSpec(make=make_ghost, needs_batch=True, has_shift=True),
    # "batch-noisy" registers itself from bnlab.engine.noisy_bn, which builds on this module
}
