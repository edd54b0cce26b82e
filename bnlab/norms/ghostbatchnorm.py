"""Ghost Batch Normalization (Hoffer, Hubara & Soudry 2017): BN whose statistics come from
small "virtual" batches, so that a large batch trains with the noise of a small one.

The batch of N samples is cut into N / V consecutive chunks of V = `virtual_batch_size`
samples, and each chunk is batch-normalized on its own (Ioffe & Szegedy 2015, Algorithm 1,
per chunk), with one shared gamma and beta. Nothing new to derive: it is BN's
`normalize` on the (N/V, V, C, *) view with statistics over V and the positions, and BN's
hand-written backward (gamma's and beta's gradients summed over the chunks).

Running statistics, as Keras defines them for `virtual_batch_size`: one update per call,
with the mean over the chunks of their means and of their variances (Keras notes that
updating once per chunk would be "strictly correct", Hoffer et al.'s Algorithm 1 does so,
and that the difference is small). bnlab takes each chunk's variance unbiased (Bessel over
the V * positions values of a chunk) as torch.nn's BN does; Keras keeps the biased one. So
with V = N it is `torch.nn.BatchNorm*`, running statistics included. Eval is BN's eval.

The math is written once, in `ghost_normalize` (statistics and normalization over any
reduction dims, so it also serves the engine's stack of K models with statistics per member)
and BN's `update_running_stats` with m = the values per channel in one chunk.

Keras's chunks are strided: it reshapes (N, ...) to (V, N/V, ...) and reduces over the
first axis, so sample i falls in chunk i mod (N/V). bnlab's are consecutive, as in Hoffer et
al. and `x.chunk`; for a shuffled batch the two are the same in distribution.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn.modules.batchnorm import _NormBase

from bnlab._checks import check_batch_norm_call, check_input_rank
from bnlab.functional import batch_norm, normalize
from bnlab.norms._core import track_batch

__all__ = ["GhostBatchNorm1d", "GhostBatchNorm2d", "ghost_normalize"]


def ghost_normalize(
    x: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    dims: tuple[int, ...],
    batch_dim: int,
    virtual_batch_size: int,
    eps: float = 1e-5,
    compiled: bool | None = None,
) -> tuple[Tensor, Tensor, Tensor, int]:
    """BN's `normalize` per chunk of `virtual_batch_size` consecutive samples along `batch_dim`.

    Args:
        x: any shape, e.g. (N, C, H, W) with dims (0, 2, 3) and batch_dim 0, or a stack of K
            models' activations, (K, B, C) with dims (1,) and batch_dim 1.
        weight, bias: gamma and beta, None or with x's number of dims, broadcastable to it.
        dims: the dims plain BN would reduce over; `batch_dim` is one of them.

    Returns:
        `(y, mu, var, m)`: y like x; the running-statistics inputs of one call, the chunks'
        mean of their means and of their biased variances, shaped like `normalize`'s over
        `dims`, detached; and m, the values per statistic in one chunk (for Bessel's
        correction per chunk in `update_running_stats`).
    """
    n, v = x.shape[batch_dim], virtual_batch_size
    if n % v != 0:
        raise ValueError(
            f"virtual_batch_size: the batch size {n} is not a multiple of "
            f"virtual_batch_size={v} (drop the last, smaller batch, e.g. "
            "DataLoader(drop_last=True))"
        )
    view = (*x.shape[:batch_dim], n // v, v, *x.shape[batch_dim + 1 :])  # chunks, then V
    chunk_dims = tuple(d + 1 if d >= batch_dim else d for d in dims)  # V and the rest
    w, b = (None if t is None else t.unsqueeze(batch_dim) for t in (weight, bias))
    y, mu, var = normalize(x.reshape(view), w, b, chunk_dims, eps, compiled)
    m = v * math.prod(x.shape[d] for d in dims if d != batch_dim)
    # the mean over the chunk axis leaves V's size-1 axis where the batch axis was
    return y.reshape(x.shape), mu.mean(batch_dim), var.mean(batch_dim), m


class _GhostBatchNorm(_NormBase):
    """Shared body of GhostBatchNorm1d/2d; subclasses set the allowed input ranks.

    A `_NormBase` (BN's parameters, buffers and state_dict keys) but not a `_BatchNorm`, so
    torch's BN tools do not turn it into plain BN.
    """

    _ranks: tuple[int, ...] = ()

    def __init__(
        self,
        num_features: int,
        virtual_batch_size: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        if not isinstance(virtual_batch_size, int) or virtual_batch_size < 1:
            raise ValueError(
                f"virtual_batch_size must be a positive int, got {virtual_batch_size!r}"
            )
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.virtual_batch_size = virtual_batch_size

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, virtual_batch_size={self.virtual_batch_size}"

    def forward(self, input: Tensor) -> Tensor:
        """Normalize `input` (N, C, *), N a multiple of `virtual_batch_size`, per chunk."""
        check_input_rank(input, self._ranks)
        rm, rv, w, b = self.running_mean, self.running_var, self.weight, self.bias
        if not self.training and rm is not None:
            return batch_norm(input, rm, rv, w, b, training=False, eps=self.eps)
        v = self.virtual_batch_size
        check_batch_norm_call(input[:v], rm, rv, w, b, True, self.eps)  # one chunk's sizes
        shape = (1, input.shape[1]) + (1,) * (input.dim() - 2)  # (C,) -> (1, C, 1..)
        w, b = (None if t is None else t.view(shape) for t in (w, b))
        dims = (0, *range(2, input.dim()))
        y, mu, var, m = ghost_normalize(input, w, b, dims, 0, v, self.eps)
        if self.training and rm is not None:
            track_batch(self, mu, var, m)  # one step with the chunks' mean statistics
        return y


class GhostBatchNorm1d(_GhostBatchNorm):
    """Ghost Batch Normalization over (N, C) or (N, C, L). Hoffer et al. 2017."""

    _ranks = (2, 3)


class GhostBatchNorm2d(_GhostBatchNorm):
    """Ghost Batch Normalization over (N, C, H, W). Hoffer et al. 2017."""

    _ranks = (4,)
