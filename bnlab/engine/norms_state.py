"""What every BN-like layer of a stack holds: gamma and beta, and BN's running statistics.

`BatchStatsState` is the state BN, noisy BN, Batch Renorm and Ghost BN share, per member and
channel, all (K, C), with torch.nn's names (`weight`, `bias`, `running_mean`, `running_var`,
`num_batches_tracked`), so a member's slice is a `torch.nn.BatchNorm` state_dict. It adds
nothing to the math, which is the library's (`bnlab.functional`, `bnlab.norms`): only the
member axis. `member_channels` puts activations in a layout where each member's channel is
one slice of a reduction, and `_track` applies BN's running-statistics rule
(`update_running_stats`) to the (K, C) buffers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor, nn

from bnlab.engine.stacked import from_columns, to_columns
from bnlab.functional import batch_norm_eval, update_running_stats


def member_channels(x: Tensor, fn: Callable[..., Tensor]) -> Tensor:
    """`fn(v, param, dims)` on a view of x with one statistic per member and channel.

    Conv activations (K, B, C, H, W) are seen as (B, H*W, K*C), a view of the engine's
    channels-last buffer, reduced over dims (0, 1); dense ones (K, B, C) as they are, reduced
    over dim 1. `param` reshapes a (K, C) tensor to broadcast against v: (1, 1, K*C) or
    (K, 1, C). In both, the first reduction dim is the batch's.
    """
    if x.dim() == 5:
        K, B, C, H, W = x.shape
        v = to_columns(x).view(B, H * W, K * C)  # (B, H*W, K*C)
        y = fn(v, lambda t: t.reshape(1, 1, K * C), (0, 1))
        return from_columns(y, x.shape)  # (K, B, C, H, W), channels-last
    return fn(x, lambda t: t.unsqueeze(1), (1,))  # (K, B, C), parameters (K, 1, C)


class BatchStatsState(nn.Module):
    """gamma = 1, beta = 0, running mean 0 and variance 1 for each of K members x C channels."""

    stacked: ClassVar[bool] = True  # for bnlab.fold: (K, C) statistics over K members

    def __init__(self, members: int, channels: int, eps: float, momentum: float, dtype=None):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(members, channels, dtype=dtype))  # gamma
        self.bias = nn.Parameter(torch.zeros(members, channels, dtype=dtype))  # beta
        self.register_buffer("running_mean", torch.zeros(members, channels, dtype=dtype))
        self.register_buffer("running_var", torch.ones(members, channels, dtype=dtype))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))
        self._seen: tuple | None = None  # (the buffer, its _version, its value): see below

    def init_member(self, k: int, gen: torch.Generator, init: str, std: float) -> None:
        """BN's init for member k: gamma 1, beta 0 (the running statistics start as above)."""
        with torch.no_grad():
            self.weight[k].fill_(1.0)
            self.bias[k].zero_()

    def batches_seen(self) -> int:
        """`num_batches_tracked` as a Python int, without a host read per training step.

        Reading the buffer is a device sync on a GPU, so the layer keeps the count on the host
        too and reads the buffer again only when something else wrote it (a loaded
        checkpoint, precise BN, a move to another device): every in-place write bumps a
        tensor's `_version`, and a move makes a new tensor.
        """
        t = self.num_batches_tracked
        if self._seen is None or self._seen[0] is not t or self._seen[1] != t._version:
            self._seen = (t, t._version, int(t))
        return self._seen[2]

    @torch.no_grad()
    def _count_batch(self) -> None:
        """num_batches_tracked += 1, keeping the host's count in step."""
        seen = self.batches_seen()
        t = self.num_batches_tracked
        t += 1
        self._seen = (t, t._version, seen + 1)

    @torch.no_grad()
    def _track(self, mu: Tensor, var: Tensor, n: int) -> None:
        """BN's running-statistics step from one batch's mean and biased variance over n."""
        self._count_batch()
        new_mean, new_var = update_running_stats(
            self.running_mean,
            self.running_var,
            mu,
            var,
            n,
            self.momentum,
            self.num_batches_tracked,  # a tensor: no host read on a device
        )
        self.running_mean.copy_(new_mean)
        self.running_var.copy_(new_var)

    def _eval(self, x: Tensor) -> Tensor:
        """Ioffe & Szegedy 2015, Alg. 2, step 10: BN's affine map with the running statistics
        (`bnlab.functional.batch_norm_eval`)."""

        def affine(v: Tensor, param, dims) -> Tensor:
            w, b, mu, var = map(
                param, (self.weight, self.bias, self.running_mean, self.running_var)
            )
            return batch_norm_eval(v, w, b, mu, var, self.eps)

        return member_channels(x, affine)
