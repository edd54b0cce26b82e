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
from torch import Tensor, nn

from bnlab._checks import check_input_rank
from bnlab.functional import batch_norm

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d"]


class _BatchNorm(nn.Module):
    """Shared body of BatchNorm1d/2d/3d; subclasses set the allowed input ranks."""

    _version = 2  # version 2 added num_batches_tracked, as in torch
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
        super().__init__()
        if num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        factory = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.empty(num_features, **factory))
            self.bias = nn.Parameter(torch.empty(num_features, **factory)) if bias else None
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            count = torch.tensor(0, dtype=torch.long, device=device)
            self.register_buffer("num_batches_tracked", count)
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            if self.bias is not None:
                nn.init.zeros_(self.bias)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, *args) -> None:
        version = local_metadata.get("version", None)
        key = prefix + "num_batches_tracked"
        if (version is None or version < 2) and self.track_running_stats:
            # checkpoints from before num_batches_tracked existed keep the module's count
            if key not in state_dict:
                own = self.num_batches_tracked
                keep = own is not None and own.device != torch.device("meta")
                state_dict[key] = own if keep else torch.tensor(0, dtype=torch.long)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, *args)

    def forward(self, input: Tensor) -> Tensor:
        """Normalize `input` of shape (N, C, *); see the class docstring for the modes."""
        check_input_rank(input, self._ranks)
        update = self.training and self.track_running_stats
        if self.momentum is None and update:
            factor = 1.0 / float(self.num_batches_tracked + 1)  # cumulative average
        else:
            factor = 0.0 if self.momentum is None else self.momentum
        use_batch_stats = self.training or self.running_mean is None
        y = batch_norm(
            input,
            self.running_mean if update or not self.training else None,
            self.running_var if update or not self.training else None,
            self.weight,
            self.bias,
            training=use_batch_stats,
            momentum=factor,
            eps=self.eps,
        )
        if update:
            # counted only once the batch was accepted and the statistics updated
            self.num_batches_tracked.add_(1)
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
