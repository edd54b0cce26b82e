"""Batch Normalization over a stack of K members, and noisy BN (BN + per-step noise).

Both are thin adapters: the math is `bnlab.functional`'s (`normalize`, `update_running_stats`,
`batch_norm_eval`) and `bnlab.norms.noisy`'s (`channel_noise`); this module only lays the
member axis out so that each member's channel is one column of a reduction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from bnlab.engine.norms_state import BatchStatsState, member_channels
from bnlab.engine.stacked import from_groups, to_groups
from bnlab.functional import normalize
from bnlab.norms.noisy import NoiseParams, channel_noise

NORM_KERNELS = ("aten", "bnlab")  # see StackedBatchNorm and StackedGroupNorm
NOISE_SEED_OFFSET = 7_919  # keeps the noise stream apart from the init stream it derives from


class StackedBatchNorm(BatchStatsState):
    """Batch Normalization with statistics per member and channel (Ioffe & Szegedy 2015, Alg. 1).

    Training normalizes x (K, B, C) over B, or x (K, B, C, H, W) over B, H, W, and updates
    the running statistics (K, C); eval normalizes with them (Alg. 2, step 10). gamma and beta
    are (K, C). Two kernels compute the same rule (tested equal to `bnlab.BatchNorm*d`, member
    by member: values, gradients, running statistics):

    - "aten" (the default): torch's fused `batch_norm` over the K*C member-channels of the
      channels-last (B, K*C, H, W) tensor the conv layers produce (for (K, B, C), over a
      (B, K*C) copy). About 5 passes over the activations per step (counted from the code).
    - "bnlab": bnlab's own hand-written `functional.normalize` with statistics per member and
      channel, running statistics updated purely by `update_running_stats`. About 12 passes
      per step, so it is slower on large conv activations; `compiled` fuses them with
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

    @classmethod
    def build(cls, members: int, channels: int, p, dtype) -> StackedBatchNorm:
        """The registry's constructor: p is `ModelConfig.norm`."""
        return cls(members, channels, p.eps, p.momentum, dtype, p.compiled, p.kernel)

    def forward(self, x: Tensor) -> Tensor:
        if self.kernel == "aten":
            return self._aten(x)
        if not self.training:
            return self._eval(x)
        return member_channels(x, self._normalize)

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

    def _normalize(self, v: Tensor, param, dims: tuple[int, ...]) -> Tensor:
        gamma, beta = param(self.weight), param(self.bias)
        y, mu, var = normalize(v, gamma, beta, dims, self.eps, self.compiled)
        self._track(mu, var, n=v.numel() // mu.numel())  # values per member and channel
        return y


class StackedNoisyBatchNorm(StackedBatchNorm):
    """`StackedBatchNorm`, then `bnlab.norms.noisy.channel_noise` per member in training
    (Santurkar et al. 2018, Sec. 2.1): member k draws from its own generator, so its noise is
    what `bnlab.norms.NoisyBatchNorm2d` with that generator adds, whatever the stack's size.

    `last_mean`, `last_std` (K, C) hold the noise distribution drawn at the latest training
    forward, for inspection and tests. The generators are extra state, saved in checkpoints
    and restored by probes and precise BN.
    """

    def __init__(
        self, members, channels, eps, momentum, noise: NoiseParams, dtype=None, kernel="aten"
    ):
        super().__init__(members, channels, eps, momentum, dtype=dtype, kernel=kernel)
        self.noise = noise
        self.generators = [torch.Generator().manual_seed(k) for k in range(members)]
        self.last_mean: Tensor | None = None
        self.last_std: Tensor | None = None

    @classmethod
    def build(cls, members: int, channels: int, p, dtype) -> StackedNoisyBatchNorm:
        return cls(members, channels, p.eps, p.momentum, p.batch_noisy, dtype, p.kernel)

    def init_member(self, k: int, gen: torch.Generator, init: str, std: float) -> None:
        super().init_member(k, gen, init, std)
        # Derived from the member's seed without drawing from `gen`: init stays as plain BN's.
        self.generators[k].manual_seed(gen.initial_seed() + NOISE_SEED_OFFSET)

    def forward(self, x: Tensor) -> Tensor:
        y = super().forward(x)  # (K, B, C) or (K, B, C, H, W)
        if not self.training:
            return y
        return y + self._sample(y)

    @torch.no_grad()
    def _sample(self, y: Tensor) -> Tensor:
        """Noise shaped like y, member by member from each member's generator."""
        draws = [
            channel_noise(tuple(y[k].shape), gen, self.noise, y.dtype)  # (B, C[, H, W])
            for k, gen in enumerate(self.generators)
        ]
        self.last_mean = torch.stack([mean for _, mean, _ in draws])  # (K, C)
        self.last_std = torch.stack([std for _, _, std in draws])
        # drawn on the CPU (the generators are), so every device gets the same noise
        return torch.stack([n for n, _, _ in draws]).to(y.device)  # (K, B, C[, H, W])

    def get_extra_state(self) -> dict:
        return {"generators": [g.get_state() for g in self.generators]}

    def set_extra_state(self, state: dict) -> None:
        for gen, s in zip(self.generators, state["generators"], strict=True):
            gen.set_state(s)
