"""Layer Normalization (Ba, Kiros & Hinton 2016): each sample normalized over its features.

For x of shape (*, D_1..D_k) and `normalized_shape` = (D_1..D_k), per sample (each index
into *), over its L = D_1 * .. * D_k values:

    mu    = 1/L sum_j x_j,    var = 1/L sum_j (x_j - mu)^2        # biased, as in BN
    x_hat = (x - mu) / sqrt(var + eps)
    y     = gamma * x_hat + beta                                  # gamma, beta: (D_1..D_k)

No batch statistics, so training and eval compute the same thing and nothing is tracked:
that is why it works at batch size 1 and in RNNs/Transformers (Ba et al. 2016, Sec. 3).

The backward is BN's with the roles of the axes swapped (see `bnlab.norms._core`):

    dx_hat = dy * gamma
    dx     = inv_std * (dx_hat - mean_j(dx_hat) - x_hat * mean_j(dx_hat * x_hat))
    dgamma = sum_*(dy * x_hat),   dbeta = sum_*(dy)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from torch import Tensor, nn

from bnlab.norms._core import (
    StandardizeCache,
    affine_norm,
    standardize_backward_np,
    standardize_np,
)

__all__ = ["LayerNorm", "layer_norm", "reference_backward", "reference_forward"]


def _check_shape(x: Tensor, normalized_shape: tuple[int, ...]) -> None:
    k = len(normalized_shape)
    if x.dim() < k or tuple(x.shape[x.dim() - k :]) != tuple(normalized_shape):
        expected = ", ".join(str(s) for s in normalized_shape)
        raise RuntimeError(  # torch's own message (ATen raises RuntimeError here)
            f"Given normalized_shape={list(normalized_shape)}, expected input with shape "
            f"[*, {expected}], but got input of size{list(x.shape)}"
        )


def layer_norm(
    input: Tensor,
    normalized_shape: tuple[int, ...] | list[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """`torch.nn.functional.layer_norm`'s contract on bnlab's hand-written backward.

    Args:
        input: (*, D_1..D_k), the last k dims equal to `normalized_shape`.
        normalized_shape: (D_1..D_k), the dims each sample is normalized over.
        weight, bias: gamma and beta, shaped `normalized_shape`, or None.
        eps: added to the variance.
    """
    shape = tuple(normalized_shape)
    _check_shape(input, shape)
    k = len(shape)
    dims = tuple(range(input.dim() - k, input.dim()))  # the trailing k dims
    return affine_norm(input, weight, bias, tuple(input.shape), dims, eps)


class LayerNorm(nn.LayerNorm):
    """Layer Normalization; drop-in for `torch.nn.LayerNorm` (same arguments, defaults,
    parameters, state_dict and errors; only `forward` is bnlab's). Ba et al. 2016."""

    def forward(self, input: Tensor) -> Tensor:
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)


# --- NumPy reference -----------------------------------------------------------------------


@dataclass(frozen=True)
class LNCache:
    """What `reference_backward` needs from `reference_forward`."""

    rows: StandardizeCache  # one row per sample
    x_hat: np.ndarray  # (*, D_1..D_k)
    gamma: np.ndarray  # (D_1..D_k)


def reference_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5
) -> tuple[np.ndarray, LNCache]:
    """LayerNorm in NumPy over the trailing `gamma.ndim` dims of x; returns (y, cache)."""
    length = math.prod(gamma.shape)
    rows = x.reshape(-1, length)  # (samples, L): one row per sample
    x_hat_rows, cache = standardize_np(rows, eps)
    x_hat = x_hat_rows.reshape(x.shape)
    return gamma * x_hat + beta, LNCache(rows=cache, x_hat=x_hat, gamma=gamma)


def reference_backward(dy: np.ndarray, cache: LNCache) -> tuple[np.ndarray, ...]:
    """(dx, dgamma, dbeta): BN's backward per row, then the per-element affine's."""
    batch_axes = tuple(range(dy.ndim - cache.gamma.ndim))  # every axis of *
    dgamma = (dy * cache.x_hat).sum(axis=batch_axes)
    dbeta = dy.sum(axis=batch_axes)
    dx_hat = (dy * cache.gamma).reshape(cache.rows.shape)
    dx = standardize_backward_np(dx_hat, cache.rows).reshape(dy.shape)
    return dx, dgamma, dbeta
