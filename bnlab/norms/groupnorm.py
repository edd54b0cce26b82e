"""Group Normalization (Wu & He 2018): each sample's channels split into G groups, each group
normalized over its channels and all their positions.

For x of shape (N, C, *) and G groups of C/G channels, per sample n and group g, over its
L = C/G * prod(*) values:

    mu    = 1/L sum x,   var = 1/L sum (x - mu)^2        # biased
    x_hat = (x - mu) / sqrt(var + eps)
    y     = gamma_c * x_hat + beta_c                     # per channel, (C,)

G = 1 is LayerNorm over (C, *) with per-channel gamma; G = C is InstanceNorm (Wu & He 2018,
Fig. 2). No batch statistics: the same in training and eval, flat in the batch size, which
is Wu & He's Fig. 1 claim. The backward is `bnlab.norms._core`'s on the (N, G, L) view:

    dx_hat = dy * gamma_c;   dx = BN's fused chain rule per (n, g) row
    dgamma_c = sum_{n, *}(dy * x_hat),   dbeta_c = sum_{n, *}(dy)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor, nn

from bnlab.norms._core import (
    StandardizeCache,
    affine_norm,
    standardize_backward_np,
    standardize_np,
)

__all__ = ["GroupNorm", "group_norm", "reference_backward", "reference_forward"]


def _check(x: Tensor, num_groups: int, weight: Tensor | None, bias: Tensor | None) -> None:
    """torch's checks for F.group_norm, with its messages and exception types."""
    if x.dim() < 2:
        raise RuntimeError(
            f"Expected at least 2 dimensions for input tensor but received {x.dim()}"
        )
    channels = x.shape[1]
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.numel() != channels:
            raise RuntimeError(
                f"Expected {name} to be a vector of size equal to the number of channels in "
                f"input, but got {name} of shape {list(t.shape)} and input of shape "
                f"{list(x.shape)}"
            )
    if channels % num_groups != 0:
        raise RuntimeError(
            "Expected number of channels in input to be divisible by num_groups, but got "
            f"input of shape {list(x.shape)} and num_groups={num_groups}"
        )
    per_group = x.shape[0] * channels // num_groups  # torch's _verify_batch_size, as it is
    for size in x.shape[2:]:
        per_group *= size
    if per_group == 1:
        raise ValueError(
            f"Expected more than 1 value per channel when training, got input size "
            f"{[x.shape[0] * channels // num_groups, num_groups, *x.shape[2:]]}"
        )


def group_norm(
    input: Tensor,
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """`torch.nn.functional.group_norm`'s contract on bnlab's hand-written backward.

    Args:
        input: (N, C, *), C divisible by `num_groups`.
        weight, bias: gamma and beta, (C,) or None.
    """
    _check(input, num_groups, weight, bias)
    n, c = input.shape[:2]
    channel = (1, c) + (1,) * (input.dim() - 2)  # (C,) -> (1, C, 1..)
    w, b = (None if t is None else t.view(channel) for t in (weight, bias))
    view = (n, num_groups, -1)  # (N, G, C/G * prod(*)): one row per sample and group
    return affine_norm(input, w, b, view, (2,), eps)


class GroupNorm(nn.GroupNorm):
    """Group Normalization; drop-in for `torch.nn.GroupNorm` (same arguments, defaults,
    parameters, state_dict and errors; only `forward` is bnlab's). Wu & He 2018."""

    def forward(self, input: Tensor) -> Tensor:
        return group_norm(input, self.num_groups, self.weight, self.bias, self.eps)


# --- NumPy reference -----------------------------------------------------------------------


@dataclass(frozen=True)
class GNCache:
    """What `reference_backward` needs from `reference_forward`."""

    rows: StandardizeCache  # one row per (sample, group)
    x_hat: np.ndarray  # (N, C, *)
    gamma: np.ndarray  # (1, C, 1..)


def reference_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, num_groups: int, eps: float = 1e-5
) -> tuple[np.ndarray, GNCache]:
    """GroupNorm in NumPy: x (N, C, *), gamma and beta (C,); returns (y, cache)."""
    channel = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    rows = x.reshape(x.shape[0] * num_groups, -1)  # (N * G, C/G * prod(*))
    x_hat_rows, cache = standardize_np(rows, eps)
    x_hat = x_hat_rows.reshape(x.shape)
    gamma = gamma.reshape(channel)
    y = gamma * x_hat + beta.reshape(channel)
    return y, GNCache(rows=cache, x_hat=x_hat, gamma=gamma)


def reference_backward(dy: np.ndarray, cache: GNCache) -> tuple[np.ndarray, ...]:
    """(dx, dgamma, dbeta): BN's backward per (sample, group) row, the per-channel affine's."""
    axes = (0, *range(2, dy.ndim))  # every axis but the channel's
    dgamma = (dy * cache.x_hat).sum(axis=axes)
    dbeta = dy.sum(axis=axes)
    dx_hat = (dy * cache.gamma).reshape(cache.rows.shape)
    dx = standardize_backward_np(dx_hat, cache.rows).reshape(dy.shape)
    return dx, dgamma, dbeta
