"""Instance Normalization (Ulyanov, Vedaldi & Lempitsky 2016): each sample's channels
normalized separately, over their positions only.

For x of shape (N, C, *), per sample n and channel c, over its L = prod(*) positions:

    mu_nc = 1/L sum x,   var_nc = 1/L sum (x - mu_nc)^2       # biased
    y     = gamma_c * (x - mu_nc) / sqrt(var_nc + eps) + beta_c

It is GroupNorm with one channel per group (Wu & He 2018, Fig. 2), and BN's Algorithm 1 with
the batch axis moved into the statistics' index: the forward and backward are BN's
(`bnlab.functional.normalize`, dims = the spatial axes), since gamma is constant over each
(n, c) group. With `track_running_stats=True` (off by default, as in torch) training also
keeps, as torch does, the per-channel averages over the batch of mu_nc and of the unbiased
var_nc, and eval normalizes with them: BN's eval path.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from bnlab._checks import finite_stats
from bnlab.functional import batch_norm, normalize, update_running_stats
from bnlab.norms import groupnorm

__all__ = [
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "instance_norm",
    "reference_backward",
    "reference_forward",
]


def _check_spatial_size(x: Tensor) -> None:
    positions = 1
    for size in x.shape[2:]:
        positions *= size
    if positions == 1:  # torch's message and type
        raise ValueError(
            f"Expected more than 1 spatial element when training, got input size {x.size()}"
        )


def instance_norm(
    input: Tensor,
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
    *,
    compiled: bool | None = None,
) -> Tensor:
    """`torch.nn.functional.instance_norm`'s contract on bnlab's hand-written backward.

    Args:
        input: (N, C, *) with more than one position per channel.
        running_mean, running_var: (C,) or None; updated in place (with `momentum`) when
            `use_input_stats`, used to normalize otherwise.
        weight, bias: gamma and beta, (C,) or None.
        use_input_stats: normalize with each instance's statistics (True) or the running
            ones (False, as BN in eval).
        compiled: BN's `normalize` argument (bnlab's compiled kernels: None decides by size).
    """
    if not use_input_stats:
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    _check_spatial_size(input)
    channel = (1, input.shape[1]) + (1,) * (input.dim() - 2)  # (C,) -> (1, C, 1..)
    w, b = (None if t is None else t.view(channel) for t in (weight, bias))
    dims = tuple(range(2, input.dim()))  # the positions: one statistic per (n, c)
    y, mu, var = normalize(input, w, b, dims, eps, compiled)  # mu, var: (N, C, 1..)
    if running_mean is not None and running_var is not None:
        ok = finite_stats(mu, var)
        positions = input[0, 0].numel()
        # torch's rule: the batch's mean of mu_nc and of the unbiased var_nc (Bessel per
        # instance, over its positions), then the usual momentum step
        new_mean, new_var = update_running_stats(
            running_mean, running_var, mu.mean(0), var.mean(0), positions, momentum, 1, ok
        )
        with torch.no_grad():
            running_mean.copy_(new_mean)
            running_var.copy_(new_var)
    return y


class _InstanceNormMixin:
    """Only the math is bnlab's: torch's `_InstanceNorm.forward` keeps its checks, its
    messages and its unbatched-input handling, and calls this."""

    def _apply_instance_norm(self, input: Tensor) -> Tensor:
        return instance_norm(
            input,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training or not self.track_running_stats,
            self.momentum if self.momentum is not None else 0.0,  # as torch: None freezes
            self.eps,
        )


class InstanceNorm1d(_InstanceNormMixin, nn.InstanceNorm1d):
    """Instance Normalization over (N, C, L) or unbatched (C, L); drop-in for
    `torch.nn.InstanceNorm1d` (affine and track_running_stats off by default)."""


class InstanceNorm2d(_InstanceNormMixin, nn.InstanceNorm2d):
    """Instance Normalization over (N, C, H, W) or (C, H, W); drop-in for
    `torch.nn.InstanceNorm2d`. Ulyanov et al. 2016 (style transfer)."""


class InstanceNorm3d(_InstanceNormMixin, nn.InstanceNorm3d):
    """Instance Normalization over (N, C, D, H, W) or (C, D, H, W); drop-in for
    `torch.nn.InstanceNorm3d`."""


# --- NumPy reference: GroupNorm's with one channel per group --------------------------------


def reference_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5
) -> tuple[np.ndarray, groupnorm.GNCache]:
    """InstanceNorm in NumPy, x (N, C, *): GroupNorm with G = C."""
    return groupnorm.reference_forward(x, gamma, beta, num_groups=x.shape[1], eps=eps)


reference_backward = groupnorm.reference_backward
