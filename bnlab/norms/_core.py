"""What every normalization layer shares: standardize over some axes, then an affine map.

Each layer is the same two steps on a different view of the input:

    x_hat = (x - mu) / sqrt(var + eps)      mu, var over the layer's axes (biased var)
    y     = gamma * x_hat + beta            gamma, beta broadcast against x

and the chain rule through the first step is the one Ioffe & Szegedy derived for BN,

    dx = inv_std * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat))

whichever axes the means run over. So it is written once, in `bnlab.functional` (torch) and
`bnlab.reference` (NumPy), and this module only adds the affine step for layers whose gamma
varies *within* a group of normalized values (LayerNorm's per-element gamma, GroupNorm's
per-channel gamma), where BN's fused backward, which folds a per-group gamma into the
scale, does not apply.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from bnlab import reference
from bnlab._checks import compute_dtype, finite_stats
from bnlab.functional import _centred_stats, _train_backward, update_running_stats

__all__ = [
    "StandardizeCache",
    "affine_norm",
    "standardize",
    "standardize_backward",
    "standardize_backward_np",
    "standardize_np",
    "track_batch",
]


def standardize(x: Tensor, dims: tuple[int, ...], eps: float):
    """(x_hat, mu, inv_std): x standardized over `dims`, statistics kept as size-1 dims."""
    mu, xc, var = _centred_stats(x, dims)
    inv_std = torch.rsqrt(var + eps)
    return xc * inv_std, mu, inv_std


def standardize_backward(
    dx_hat: Tensor, x: Tensor, mu: Tensor, inv_std: Tensor, dims: tuple[int, ...]
) -> Tensor:
    """dx from dx_hat: BN's fused chain rule through mu and var, with gamma = 1."""
    dx, _, _ = _train_backward(dx_hat, x, None, None, mu, inv_std, dims, (True, False, False))
    return dx


class _AffineNorm(torch.autograd.Function):
    """y = weight * x_hat + bias, x_hat = `x.reshape(view)` standardized over `dims` and
    shaped back; weight and bias broadcast against x. Returns y only: none of these layers keeps
    running statistics from this Function."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, bias, view, dims, eps):
        x_hat, _, _ = standardize(x.reshape(view), dims, eps)
        x_hat = x_hat.reshape(x.shape)
        y = x_hat if weight is None else x_hat * weight
        return y if bias is None else y + bias

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, view, dims, eps = inputs
        ctx.save_for_backward(x, weight, bias)
        ctx.view, ctx.dims, ctx.eps = view, dims, eps

    @staticmethod
    def backward(ctx, dy):
        x, weight, bias = ctx.saved_tensors
        xv = x.reshape(ctx.view)
        # recomputed from x with tracked ops, so create_graph=True differentiates through
        # mu and inv_std too (second derivatives); cheap next to the passes below
        x_hat, mu, inv_std = standardize(xv, ctx.dims, ctx.eps)
        x_hat = x_hat.reshape(x.shape)
        dx = dweight = dbias = None
        if ctx.needs_input_grad[0]:
            dx_hat = dy if weight is None else dy * weight
            dx = standardize_backward(dx_hat.reshape(ctx.view), xv, mu, inv_std, ctx.dims)
            dx = dx.reshape(x.shape)
        if ctx.needs_input_grad[1]:
            dweight = (dy * x_hat).sum_to_size(weight.shape)
        if ctx.needs_input_grad[2]:
            dbias = dy.sum_to_size(bias.shape)
        return dx, dweight, dbias, None, None, None


def affine_norm(
    x: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    view: tuple[int, ...],
    dims: tuple[int, ...],
    eps: float,
) -> Tensor:
    """Standardize `x.reshape(view)` over `dims`, then `weight * x_hat + bias` on x's shape.

    Dtypes as torch.nn: float16/bfloat16 inputs are computed in float32 (parameters may be
    float32 or the input's dtype), the output has the input's dtype; other mixes raise.
    """
    acc = compute_dtype(x, weight, bias)
    w, b = (None if t is None else t.to(acc) for t in (weight, bias))
    return _AffineNorm.apply(x.to(acc), w, b, tuple(view), tuple(dims), eps).to(x.dtype)


def track_batch(module, mu: Tensor, var: Tensor, m: int) -> None:
    """Take one training batch's statistics (mu, biased var over `m` values per channel)
    into a BN-like module's running buffers, as bnlab's BatchNorm does: refused if not
    finite (`_checks.finite_stats`), BN's pure update, then counted in num_batches_tracked
    (momentum None: the cumulative average over that count)."""
    ok = finite_stats(mu, var)
    count = module.num_batches_tracked + 1
    new_mean, new_var = update_running_stats(
        module.running_mean, module.running_var, mu, var, m, module.momentum, count, ok
    )
    with torch.no_grad():
        module.running_mean.copy_(new_mean)
        module.running_var.copy_(new_var)
        module.num_batches_tracked.add_(1 if ok is None else ok.long())


# --- NumPy reference -----------------------------------------------------------------------


@dataclass(frozen=True)
class StandardizeCache:
    """What `standardize_backward_np` needs: BN's cache on the transposed rows."""

    bn: reference.BNCache
    shape: tuple[int, ...]  # the input's shape


def standardize_np(rows: np.ndarray, eps: float) -> tuple[np.ndarray, StandardizeCache]:
    """Standardize each row of `rows` (G, L) over its L values: Algorithm 1 with gamma = 1,
    beta = 0 on the transposed (L, G) matrix, where BN's channels are our rows."""
    g = rows.shape[0]
    ones, zeros = np.ones(g, rows.dtype), np.zeros(g, rows.dtype)
    x_hat_t, cache = reference.forward(np.ascontiguousarray(rows.T), ones, zeros, eps)
    return x_hat_t.T, StandardizeCache(bn=cache, shape=rows.shape)


def standardize_backward_np(dx_hat: np.ndarray, cache: StandardizeCache) -> np.ndarray:
    """d(loss)/d(rows) from d(loss)/d(x_hat), (G, L): BN's hand-derived backward, transposed."""
    dx_t, _, _ = reference.backward(np.ascontiguousarray(dx_hat.T), cache.bn)
    return dx_t.T
