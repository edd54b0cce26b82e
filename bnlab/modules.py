"""`BatchNorm1d/2d/3d`: drop-in replacements for the `torch.nn` classes, on bnlab's math.

Same constructor arguments and defaults, same buffers and state_dict keys (old checkpoints
without `num_batches_tracked` load too), same rank errors, same train/eval semantics:

- training: normalize with the batch's biased statistics; update the running mean and the
  *unbiased* running variance with `momentum` (None: cumulative average).
- eval: normalize with the running statistics, or with the batch's when
  `track_running_stats=False` (the buffers are then None).

Unlike torch, every check runs before any state changes: a failing call leaves
`num_batches_tracked` and the running statistics untouched, and NaN/inf input in training is
refused instead of silently poisoning the running statistics.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.modules import batchnorm

from bnlab._checks import check_input_rank
from bnlab.functional import batch_norm, batch_norm_train

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d"]


class _BatchNorm(batchnorm._BatchNorm):
    """Shared body of BatchNorm1d/2d/3d; subclasses set the allowed input ranks.

    It subclasses torch's own BN base class, which creates the same parameters and buffers
    and loads the same state_dicts, so torch's utilities that look for BN find it
    (`torch.func.replace_all_batch_norm_modules_`, `nn.SyncBatchNorm.convert_sync_batchnorm`,
    which turns it into torch's SyncBatchNorm). Only `forward` is bnlab's.
    """

    _ranks: tuple[int, ...] = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        bias: bool = True,
    ) -> None:
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )

    def _check_input_dim(self, input: Tensor) -> None:
        check_input_rank(input, self._ranks)

    def __prepare_scriptable__(self):
        raise TypeError(
            f"torch.jit.script cannot compile bnlab.{type(self).__name__}: its forward and "
            "backward are a Python torch.autograd.Function, which TorchScript does not "
            "support. Script the model with torch's BN instead, "
            "torch.jit.script(bnlab.convert(model, to='torch')), or use torch.compile, "
            "which runs bnlab's BN as is."
        )

    def forward(self, input: Tensor) -> Tensor:
        """Normalize `input` of shape (N, C, *); see the module docstring for the modes."""
        self._check_input_dim(input)
        if not self.training and self.running_mean is not None:
            return batch_norm(
                input,
                self.running_mean,
                self.running_var,
                self.weight,
                self.bias,
                training=False,
                eps=self.eps,
            )
        update = self.training and self.track_running_stats and self.running_mean is not None
        y, ok = batch_norm_train(
            input,
            self.running_mean if update else None,
            self.running_var if update else None,
            self.weight,
            self.bias,
            self.momentum,
            self.eps,
            self.num_batches_tracked if update else None,
        )
        if update and self.num_batches_tracked is not None:
            # counted only once the batch was accepted and the statistics updated
            self.num_batches_tracked.add_(1 if ok is None else ok.long())
        return y


class BatchNorm1d(_BatchNorm):
    """Batch Normalization over (N, C) or (N, C, L); drop-in for `torch.nn.BatchNorm1d`.

    y = (x - E[x]) / sqrt(Var[x] + eps) * gamma + beta, statistics per channel over N (and
    L). Ioffe & Szegedy 2015, Algorithm 1.
    """

    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch Normalization over (N, C, H, W); drop-in for `torch.nn.BatchNorm2d`.

    Statistics per channel over N, H and W (Ioffe & Szegedy 2015, Sec. 3.2: for convolutions
    each feature map is normalized over the batch and all its locations).
    """

    _ranks = (4,)


class BatchNorm3d(_BatchNorm):
    """Batch Normalization over (N, C, D, H, W); drop-in for `torch.nn.BatchNorm3d`."""

    _ranks = (5,)
