"""Batch Renormalization (Ioffe 2017): BN whose training output is corrected towards the
running statistics, so that training and inference compute the same function.

Ioffe 2017, Algorithm 1, per channel over a mini-batch of m values, with running mu, sigma:

    mu_B  = 1/m sum x,   sigma_B = sqrt(1/m sum (x - mu_B)^2 + eps)
    r     = stop_gradient(clip(sigma_B / sigma, 1/r_max, r_max))
    d     = stop_gradient(clip((mu_B - mu) / sigma, -d_max, d_max))
    x_hat = (x - mu_B) / sigma_B * r + d
    y     = gamma * x_hat + beta

Unclipped, x_hat = (x - mu) / sigma: the inference formula. r and d are constants to the
backward, so it is BN's with dx_hat scaled by r (Ioffe 2017, Alg. 1, the gradients):

    dx     = BN's fused chain rule applied to dy * gamma * r
    dgamma = sum(dy * x_hat),   dbeta = sum(dy)

With r_max = 1 and d_max = 0, r = 1 and d = 0: plain BN in training (tested against
`torch.nn.BatchNorm*`). Inference is BN's with the running statistics.

Where bnlab departs from the paper: the running statistics are BN's (running_mean and the
*unbiased* running_var, updated as torch.nn does, so state_dicts load to and from
`torch.nn.BatchNorm*`), and sigma = sqrt(running_var + eps); the paper keeps an average of
sigma_B itself. The two differ by the batch-to-batch spread of sigma_B and by Bessel's
correction, both small for the batch sizes renorm is meant for.

The math is written once: `batch_renorm` (over any reduction dims, so the engine's stack of
K models calls it with statistics per member), BN's `update_running_stats`, and the
warm-up's `renorm_limits`.

Keras: `BatchNormalization(renorm=True, renorm_clipping={"rmax": r_max, "rmin": 1 / r_max,
"dmax": d_max}, renorm_momentum=1 - momentum, momentum=1 - momentum)` is the equivalent
layer (see `bnlab.norms.momentum` for the momentum convention). Keras keeps r and d's
statistics (`renorm_mean`, `renorm_stddev`, an average of sigma_B) apart from the inference
ones (`moving_mean`, `moving_variance`), uses the biased variance, divides by
max(renorm_stddev, sqrt(eps)), and defaults to eps = 1e-3; the warm-up is done there by
assigning `layer.renorm_clipping` during training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.modules.batchnorm import _NormBase

from bnlab._checks import check_batch_norm_call, check_input_rank, compute_dtype
from bnlab.functional import _centred_stats, batch_norm
from bnlab.norms._core import standardize, standardize_backward, track_batch

__all__ = [
    "BatchRenorm1d",
    "BatchRenorm2d",
    "RenormWarmup",
    "batch_renorm",
    "renorm_correction",
    "renorm_limits",
]


@dataclass(frozen=True)
class RenormWarmup:
    """The schedule of r_max and d_max that Ioffe 2017 trains with (Sec. 4.1): r_max = 1 and
    d_max = 0 (plain BN) for the first `start` steps, then relaxed to reach the module's
    r_max at step `r_max_step` and its d_max at `d_max_step` (3 at 40k and 5 at 25k in the
    paper). The paper says "gradually relaxed"; bnlab relaxes linearly. A step equal to
    `start` switches that limit on at `start` without a ramp, so RenormWarmup(0, 0, 0)
    is no warm-up at all.
    """

    start: int = 5000  # steps of plain BN
    r_max_step: int = 40000  # step at which r_max reaches its final value
    d_max_step: int = 25000  # step at which d_max reaches its final value

    def __post_init__(self) -> None:
        if self.start < 0:
            raise ValueError(f"start: expected a step >= 0, got {self.start}")
        for name in ("r_max_step", "d_max_step"):
            if getattr(self, name) < self.start:
                raise ValueError(
                    f"{name}: expected a step >= start ({self.start}), got {getattr(self, name)}"
                )

    def limits(self, step: int, r_max: float, d_max: float) -> tuple[float, float]:
        """(r_max, d_max) in force at training step `step` (0-based)."""

        def ramp(end: int) -> float:  # 0 until start, 1 from `end` on, linear between
            if step < self.start:
                return 0.0
            if end == self.start:
                return 1.0
            return min((step - self.start) / (end - self.start), 1.0)

        return 1.0 + (r_max - 1.0) * ramp(self.r_max_step), d_max * ramp(self.d_max_step)


def renorm_limits(
    warmup: RenormWarmup | None, step: int, r_max: float, d_max: float
) -> tuple[float, float]:
    """(r_max, d_max) for training step `step`: the warm-up's, or the fixed ones without one."""
    if warmup is None:
        return r_max, d_max
    return warmup.limits(step, r_max, d_max)


def renorm_correction(
    mu: Tensor, var: Tensor, running_mean: Tensor, running_var: Tensor, eps, r_max, d_max
) -> tuple[Tensor, Tensor]:
    """(r, d) for batch statistics mu, biased var against the running ones; no gradient."""
    sigma = torch.sqrt(running_var + eps)
    r = (torch.sqrt(var + eps) / sigma).clamp(1.0 / r_max, r_max)
    d = ((mu - running_mean) / sigma).clamp(-d_max, d_max)
    return r.detach(), d.detach()


class _BatchRenormTrain(torch.autograd.Function):
    """y = gamma * (x_hat_B * r + d) + beta; returns (y, mu, var), statistics detached."""

    @staticmethod
    def forward(x, weight, bias, running_mean, running_var, dims, eps, r_max, d_max):
        mu, xc, var = _centred_stats(x, dims)
        r, d = renorm_correction(mu, var, running_mean, running_var, eps, r_max, d_max)
        x_hat = xc * (torch.rsqrt(var + eps) * r) + d
        y = x_hat if weight is None else x_hat * weight
        return (y if bias is None else y + bias), mu, var

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, running_mean, running_var, dims, eps, r_max, d_max = inputs
        _, mu, var = output
        r, d = renorm_correction(mu, var, running_mean, running_var, eps, r_max, d_max)
        ctx.save_for_backward(x, weight, bias, r, d)
        ctx.dims, ctx.eps = dims, eps
        ctx.mark_non_differentiable(mu, var)

    @staticmethod
    def backward(ctx, dy, _dmu, _dvar):
        x, weight, bias, r, d = ctx.saved_tensors
        # recomputed with tracked ops, so that create_graph=True gives second derivatives;
        # r and d stay the saved constants: the stop-gradient holds at every order
        x_hat_b, mu, inv_std = standardize(x, ctx.dims, ctx.eps)
        dx = dweight = dbias = None
        if ctx.needs_input_grad[0]:
            dx_hat = dy * r if weight is None else dy * (weight * r)
            dx = standardize_backward(dx_hat, x, mu, inv_std, ctx.dims)
        if ctx.needs_input_grad[1]:
            dweight = (dy * (x_hat_b * r + d)).sum_to_size(weight.shape)
        if ctx.needs_input_grad[2]:
            dbias = dy.sum_to_size(bias.shape)
        return dx, dweight, dbias, None, None, None, None, None, None


def batch_renorm(
    x: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    running_mean: Tensor,
    running_var: Tensor,
    dims: tuple[int, ...],
    eps: float,
    r_max: float,
    d_max: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Batch-renormalize `x` over the reduction dims `dims` (Ioffe 2017, Alg. 1).

    Args:
        x: any shape, e.g. (N, C, H, W) with dims (0, 2, 3), or a stack of K models'
            activations, (K, B, C) with dims (1,), for statistics per member and channel.
        weight, bias, running_mean, running_var: broadcastable to x, e.g. (1, C, 1, 1) or
            (K, 1, C); weight and bias may be None.
        r_max, d_max: the clipping in force for this step (see `renorm_limits`).

    Returns:
        `(y, mu, var)` as `bnlab.functional.normalize`'s: mu and the biased var of the batch,
        detached, for BN's running-statistics rule (`update_running_stats`), which Batch
        Renorm keeps.
    """
    acc = compute_dtype(x, running_mean, running_var, weight, bias)
    w, b, mu_run, var_run = (
        None if t is None else t.to(acc) for t in (weight, bias, running_mean, running_var)
    )
    args = (x.to(acc), w, b, mu_run, var_run, tuple(dims), eps, float(r_max), float(d_max))
    y, mu, var = _BatchRenormTrain.apply(*args)
    return y.to(x.dtype), mu, var


class _BatchRenorm(_NormBase):
    """Shared body of BatchRenorm1d/2d; subclasses set the allowed input ranks.

    A `_NormBase` (BN's parameters, buffers and state_dict keys) but not a `_BatchNorm`, so
    torch's BN tools (`convert_sync_batchnorm`, `replace_all_batch_norm_modules_`) do not
    mistake it for plain BN. The running statistics are always tracked: training uses them.
    """

    _ranks: tuple[int, ...] = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.01,  # Keras's renorm_momentum=0.99 in torch's convention
        affine: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        r_max: float = 3.0,  # Ioffe 2017, Sec. 4.1
        d_max: float = 5.0,
        warmup: RenormWarmup | None = None,
    ) -> None:
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"momentum must be in (0, 1], got {momentum!r}")
        if r_max < 1.0 or d_max < 0.0:
            raise ValueError(f"need r_max >= 1 and d_max >= 0, got r_max={r_max}, d_max={d_max}")
        super().__init__(num_features, eps, momentum, affine, True, device, dtype)
        self.r_max, self.d_max, self.warmup = float(r_max), float(d_max), warmup

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, r_max={self.r_max}, d_max={self.d_max}, "
            f"warmup={self.warmup}"
        )

    def limits(self) -> tuple[float, float]:
        """(r_max, d_max) for the next training step: the warm-up's, counted in
        `num_batches_tracked`, or the fixed ones."""
        step = 0 if self.warmup is None else int(self.num_batches_tracked)
        return renorm_limits(self.warmup, step, self.r_max, self.d_max)

    def forward(self, input: Tensor) -> Tensor:
        """Normalize `input` (N, C, *): renormalized in training, BN's eval otherwise."""
        check_input_rank(input, self._ranks)
        rm, rv, w, b = self.running_mean, self.running_var, self.weight, self.bias
        if not self.training:
            return batch_norm(input, rm, rv, w, b, training=False, eps=self.eps)
        check_batch_norm_call(input, rm, rv, w, b, True, self.eps)
        shape = (1, input.shape[1]) + (1,) * (input.dim() - 2)  # (C,) -> (1, C, 1..)
        w, b, mu_run, var_run = (None if t is None else t.view(shape) for t in (w, b, rm, rv))
        dims = (0, *range(2, input.dim()))
        y, mu, var = batch_renorm(input, w, b, mu_run, var_run, dims, self.eps, *self.limits())
        track_batch(self, mu, var, input.numel() // input.shape[1])  # m: values per channel
        return y


class BatchRenorm1d(_BatchRenorm):
    """Batch Renormalization over (N, C) or (N, C, L). Ioffe 2017."""

    _ranks = (2, 3)


class BatchRenorm2d(_BatchRenorm):
    """Batch Renormalization over (N, C, H, W), statistics per channel. Ioffe 2017."""

    _ranks = (4,)
