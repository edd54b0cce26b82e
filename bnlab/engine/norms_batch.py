"""BN's two batch-statistics variants over a stack of K members: Batch Renormalization
(Ioffe 2017) and Ghost Batch Normalization (Hoffer et al. 2017).

Both keep BN's running statistics (K, C) and evaluate exactly as BN does (Alg. 2, step 10:
an affine map with the running statistics, so `bnlab.fold` folds them like BN). They differ
from BN only in training. Activations are handled as in `StackedBatchNorm`'s "bnlab" kernel:
(K, B, C, H, W) conv activations as the columns of the (B*H*W, K*C) matrix (a view of the
engine's channels-last buffer), one column per member and channel; (K, B, C) reduced over B.
Every statistic is a reduction inside one column (or one (k, c) slice), so members never
interact. Gradients flow through the batch statistics by autograd.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bnlab.engine.norms_state import BatchStatsState
from bnlab.engine.stacked import from_columns, to_columns


class _RunningStatsNorm(BatchStatsState):
    """BN's state (`BatchStatsState`); evaluation as BN's, training as each subclass says."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 5:  # (K, B, C, H, W): per member and channel = per column of (N, K*C)
            xc = to_columns(x)  # (N, K*C), N = B*H*W
            y = self._normalize(xc, lambda t: t.reshape(1, -1), batch=x.shape[1])  # (N, K*C)
            return from_columns(y, x.shape)  # (K, B, C, H, W)
        return self._normalize(x, lambda t: t.unsqueeze(1), batch=x.shape[1])  # (K, B, C)

    def _normalize(self, xc: Tensor, shape, batch: int) -> Tensor:
        """xc (N, K*C) or (K, B, C), reduced over dim -2; `shape` puts a (K, C) tensor in
        the broadcast shape of a statistic ((1, K*C) or (K, 1, C))."""
        gamma, beta = shape(self.weight), shape(self.bias)
        if not self.training:
            # BN's Alg. 2, step 10: the running statistics, an affine map of x
            inv_std = torch.rsqrt(shape(self.running_var) + self.eps)
            return (xc - shape(self.running_mean)) * inv_std * gamma + beta
        x_hat = self._train_x_hat(xc, shape, batch)
        return x_hat * gamma + beta

    def _train_x_hat(self, xc: Tensor, shape, batch: int) -> Tensor:
        raise NotImplementedError


class StackedBatchRenorm(_RunningStatsNorm):
    """Batch Renormalization (Ioffe 2017, Alg. 1) per member and channel.

    In training, with the batch statistics mu_B, sigma_B = sqrt(var_B + eps) and the running
    ones mu, sigma = sqrt(running_var + eps):

        r = stop_gradient(clip(sigma_B / sigma, 1/r_max, r_max))
        d = stop_gradient(clip((mu_B - mu) / sigma, -d_max, d_max))
        x_hat = (x - mu_B) / sigma_B * r + d,   y = gamma * x_hat + beta

    then the running statistics are updated as BN's are. With r_max = 1, d_max = 0 (r = 1,
    d = 0) this is BN in training; evaluation is BN's. Departure from Alg. 1: the paper keeps
    a moving average of sigma_B; we keep BN's (of the unbiased variance) and take
    sigma = sqrt(running_var + eps), so a BN checkpoint and a renorm one hold the same state.

    Warm-up (Ioffe 2017, Sec. 4: r_max = 1, d_max = 0 for the first 5,000 steps, then relaxed
    to r_max = 3 by step 40k and d_max = 5 by step 25k): `limits(t)` is (1, 0) for
    t < warmup, then rises linearly to (r_max, d_max) over r_ramp and d_ramp steps; t is the
    number of training batches seen (`num_batches_tracked`). Keras's equivalent is
    `BatchNormalization(renorm=True, renorm_clipping={"rmax": r_max, "rmin": 1 / r_max,
    "dmax": d_max})`, with the schedule applied by the user to those values.
    """

    def __init__(
        self,
        members: int,
        channels: int,
        eps: float,
        momentum: float,
        r_max: float,
        d_max: float,
        warmup: int = 0,  # training batches at r_max = 1, d_max = 0
        r_ramp: int = 0,  # batches over which r_max rises from 1 to its value after warm-up
        d_ramp: int = 0,  # batches over which d_max rises from 0 to its value after warm-up
        dtype=None,
    ):
        super().__init__(members, channels, eps, momentum, dtype)
        self.r_max, self.d_max = r_max, d_max
        self.warmup, self.r_ramp, self.d_ramp = warmup, r_ramp, d_ramp
        self.plain = False  # True: r = 1, d = 0 whatever the schedule (used by precise_bn)

    def limits(self, t: int) -> tuple[float, float]:
        """(r_max, d_max) in force at training batch t (0-based)."""
        if self.plain or t < self.warmup:
            return 1.0, 0.0
        done = t - self.warmup

        def ramp(steps: int) -> float:  # 0 -> 1 over `steps` batches
            return 1.0 if steps <= 0 else min(1.0, done / steps)

        return 1.0 + (self.r_max - 1.0) * ramp(self.r_ramp), self.d_max * ramp(self.d_ramp)

    def _train_x_hat(self, xc: Tensor, shape, batch: int) -> Tensor:
        dim = xc.dim() - 2
        r_max, d_max = self.limits(self.batches_seen())  # no host read per step
        mu_B = xc.mean(dim, keepdim=True)  # (1, K*C) or (K, 1, C)
        var_B = xc.var(dim, unbiased=False, keepdim=True)  # biased, as BN normalizes
        sigma_B = torch.sqrt(var_B + self.eps)
        with torch.no_grad():  # r and d are constants for the gradient (Alg. 1)
            sigma = torch.sqrt(shape(self.running_var) + self.eps)
            r = (sigma_B / sigma).clamp(1.0 / r_max, r_max)
            d = ((mu_B - shape(self.running_mean)) / sigma).clamp(-d_max, d_max)
        x_hat = (xc - mu_B) / sigma_B * r + d
        self._track(mu_B, var_B, n=xc.shape[dim])
        return x_hat

    def extra_repr(self) -> str:
        return f"r_max={self.r_max}, d_max={self.d_max}, warmup={self.warmup}"


class StackedGhostBatchNorm(_RunningStatsNorm):
    """Ghost Batch Normalization (Hoffer et al. 2017, Sec. 4.1; Keras's `virtual_batch_size`).

    In training the batch of B examples is cut into B / v consecutive chunks ("virtual" or
    "ghost" batches) of v examples, and each chunk is batch-normalized with its own
    statistics: y equals BN applied to each chunk on its own. The running statistics follow
    Keras: one update per step with the mean over chunks of the chunk means and of the
    chunk (biased) variances. (Keras groups examples i, i + B/v, i + 2B/v, ... into a chunk;
    we take consecutive ones, as Hoffer et al. describe. On shuffled data the two are the
    same in distribution.) B must be a multiple of v.
    """

    def __init__(
        self, members: int, channels: int, eps: float, momentum: float, virtual: int, dtype=None
    ):
        super().__init__(members, channels, eps, momentum, dtype)
        self.virtual = virtual

    def _train_x_hat(self, xc: Tensor, shape, batch: int) -> Tensor:
        if batch % self.virtual:
            raise ValueError(
                f"ghost_batch_size: {self.virtual} does not divide the batch of {batch}"
            )
        chunks = batch // self.virtual
        if xc.dim() == 2:  # (N, K*C), rows ordered (b, h, w): chunk g is a block of rows
            xg = xc.reshape(chunks, -1, xc.shape[-1])  # (G, v*H*W, K*C)
        else:  # (K, B, C)
            xg = xc.reshape(xc.shape[0], chunks, self.virtual, xc.shape[-1])  # (K, G, v, C)
        dim = xg.dim() - 2
        mu = xg.mean(dim, keepdim=True)  # (G, 1, K*C) or (K, G, 1, C)
        var = xg.var(dim, unbiased=False, keepdim=True)
        x_hat = (xg - mu) * torch.rsqrt(var + self.eps)
        self._track_keras(mu.mean(dim - 1), var.mean(dim - 1))  # (1, K*C) or (K, 1, C)
        return x_hat.reshape(xc.shape)

    @torch.no_grad()
    def _track_keras(self, mu: Tensor, var: Tensor) -> None:
        """Keras's update: the chunk-averaged mean and biased variance, no Bessel factor."""
        self._count_batch()
        factor = self.momentum
        if factor is None:  # cumulative average, as torch's momentum=None
            factor = 1.0 / self.batches_seen()
        self.running_mean.lerp_(mu.reshape(self.running_mean.shape), factor)
        self.running_var.lerp_(var.reshape(self.running_var.shape), factor)

    def extra_repr(self) -> str:
        return f"virtual={self.virtual}"


def make_renorm(members, channels, model_cfg, dtype) -> StackedBatchRenorm:
    m = model_cfg
    return StackedBatchRenorm(
        members,
        channels,
        m.bn_eps,
        m.bn_momentum,
        m.renorm_r_max,
        m.renorm_d_max,
        m.renorm_warmup,
        m.renorm_r_ramp,
        m.renorm_d_ramp,
        dtype,
    )


def make_ghost(members, channels, model_cfg, dtype) -> StackedGhostBatchNorm:
    m = model_cfg
    return StackedGhostBatchNorm(
        members, channels, m.bn_eps, m.bn_momentum, m.ghost_batch_size, dtype
    )
