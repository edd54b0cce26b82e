"""Batch Normalization in NumPy, written to be read next to Ioffe & Szegedy 2015, Algorithm 1.

Input x has the channel on axis 1: (N, C) or (N, C, *). Statistics are per channel, over
every other axis, so a (N, C, H, W) batch has m = N * H * W values per channel.

    forward(x, gamma, beta, eps)  -> (y, cache)
    backward(dy, cache)           -> (dx, dgamma, dbeta)   fused, hand-derived
    backward_staged(dy, cache)    -> (dx, dgamma, dbeta)   one named intermediate per equation
    update_running_stats(...)     -> (running_mean, running_var)   pure

Works in float32 and float64 (the dtype of x). This module is the readable reference; the
fast paths in `bnlab.functional` are tested against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BNCache", "backward", "backward_staged", "forward", "update_running_stats"]


@dataclass(frozen=True)
class BNCache:
    """What the backward pass needs from the forward pass."""

    x: np.ndarray  # (N, C, *)
    gamma: np.ndarray  # (C,)
    mu: np.ndarray  # (1, C, 1..)  batch mean
    var: np.ndarray  # (1, C, 1..)  biased batch variance
    x_hat: np.ndarray  # (N, C, *)  normalized input
    eps: float


def _axes(x: np.ndarray) -> tuple[int, ...]:
    if x.ndim < 2:
        raise ValueError(f"x must have shape (N, C) or (N, C, *), got shape {x.shape}")
    return (0, *range(2, x.ndim))  # every axis but the channel axis


def _per_channel(v: np.ndarray, x: np.ndarray) -> np.ndarray:
    return v.reshape((1, x.shape[1]) + (1,) * (x.ndim - 2))  # (C,) -> (1, C, 1..)


def forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5
) -> tuple[np.ndarray, BNCache]:
    """Algorithm 1: normalize each channel of x with its batch statistics, then scale/shift.

    Args:
        x: (N, C) or (N, C, *), float32 or float64.
        gamma, beta: (C,) scale and shift.
        eps: added to the variance.

    Returns:
        y like x, and the cache for `backward`.
    """
    axes = _axes(x)
    gamma, beta = _per_channel(gamma, x), _per_channel(beta, x)
    # Sums accumulate in float64: NumPy sums a non-contiguous axis one value at a time, and
    # in float32 that loses ~1e-2 on x = 1e4 + N(0, 1). Results are cast back to x's dtype.
    mu = x.mean(axis=axes, keepdims=True, dtype=np.float64).astype(x.dtype)  # mini-batch mean
    diff = x - mu
    # var is the biased (1/m) mini-batch variance
    var = (diff**2).mean(axis=axes, keepdims=True, dtype=np.float64).astype(x.dtype)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = diff * inv_std  # normalize
    y = gamma * x_hat + beta  # scale and shift
    return y, BNCache(x=x, gamma=gamma, mu=mu, var=var, x_hat=x_hat, eps=eps)


def backward(dy: np.ndarray, cache: BNCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fused backward pass: dx in one expression.

    Derived from the staged chain rule by substituting dvar and dmu into dx:
        dx = gamma / sqrt(var + eps) * (dy - mean(dy) - x_hat * mean(dy * x_hat))
    """
    axes = _axes(dy)
    x_hat, gamma = cache.x_hat, cache.gamma
    inv_std = 1.0 / np.sqrt(cache.var + cache.eps)
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * x_hat).sum(axis=axes)
    dx = (
        gamma
        * inv_std
        * (
            dy
            - dy.mean(axis=axes, keepdims=True)
            - x_hat * (dy * x_hat).mean(axis=axes, keepdims=True)
        )
    )
    return dx, dgamma, dbeta


def backward_staged(dy: np.ndarray, cache: BNCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The backward pass staged: one gradient per forward equation, in reverse order."""
    axes = _axes(dy)
    x, mu, var, x_hat, gamma, eps = (
        cache.x,
        cache.mu,
        cache.var,
        cache.x_hat,
        cache.gamma,
        cache.eps,
    )
    m = x.size // x.shape[1]  # values per channel
    diff = x - mu
    inv_std = 1.0 / np.sqrt(var + eps)
    # y = gamma * x_hat + beta
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * x_hat).sum(axis=axes)
    dx_hat = dy * gamma
    # x_hat = diff * inv_std
    ddiff = dx_hat * inv_std
    dinv_std = (dx_hat * diff).sum(axis=axes, keepdims=True)
    # inv_std = (var + eps)^(-1/2)
    dvar = -0.5 * (var + eps) ** -1.5 * dinv_std
    # var = 1/m sum (x - mu)^2: biased, 1/m not 1/(m-1)
    ddiff = ddiff + dvar * 2.0 * diff / m
    # diff = x - mu, and mu = 1/m sum x
    # every path from mu runs through diff (var is written in diff), so dmu = -sum(ddiff);
    # its var part is dvar * 2/m * sum(diff) = 0, as the paper's dL/dmu also shows
    dmu = -ddiff.sum(axis=axes, keepdims=True)
    dx = ddiff + dmu / m
    return dx, dgamma, dbeta


def update_running_stats(
    running_mean: np.ndarray,
    running_var: np.ndarray,
    mu: np.ndarray,
    var: np.ndarray,
    m: int,
    momentum: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """New running statistics after one batch of m values per channel (inputs untouched).

    The running variance estimates the population variance, so the biased batch variance
    gets Bessel's correction m/(m-1) first (Alg. 2, step 10 uses Var[x] = m/(m-1) E_B[var]).
    """
    mu, var = np.ravel(mu), np.ravel(var)
    unbiased = var * m / (m - 1)  # Bessel's correction: m-1, not m
    new_mean = (1.0 - momentum) * running_mean + momentum * mu
    new_var = (1.0 - momentum) * running_var + momentum * unbiased
    return new_mean, new_var
