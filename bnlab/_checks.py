"""Input validation for Batch Normalization: every check runs before any state changes."""

from __future__ import annotations

import torch
from torch import Tensor


class BatchNormShapeError(ValueError, RuntimeError):
    """A tensor's size does not match the number of channels.

    It is both a ValueError (bad argument) and a RuntimeError (what ATen raises for the same
    mistake), so code written against `torch.nn.BatchNorm*` catches it unchanged.
    """


def check_batch_norm_call(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    training: bool,
    eps: float,
) -> None:
    if input.dim() < 2:
        raise ValueError(
            f"batch_norm expects input of shape (N, C) or (N, C, *), got {input.dim()}D input "
            f"of shape {tuple(input.shape)}"
        )
    channels = input.shape[1]
    for name, t in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        if t is not None and t.numel() != channels:
            raise BatchNormShapeError(
                f"{name} should contain {channels} elements not {t.numel()} "
                f"(input has {channels} channels on axis 1, shape {tuple(input.shape)})"
            )
    if training:
        _check_batch_size(input)
        if eps <= 0.0:
            raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    else:
        if eps < 0.0:
            raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")
        if running_mean is None or running_var is None:
            missing = "running_mean" if running_mean is None else "running_var"
            raise RuntimeError(f"{missing} must be defined in evaluation mode")


def _check_batch_size(input: Tensor) -> None:
    # values per channel = N * prod(spatial dims), as torch's _verify_batch_size counts them
    per_channel = input.shape[0]
    for size in input.shape[2:]:
        per_channel *= size
    if per_channel == 0:
        raise ValueError(
            f"Expected a non-empty batch when training, got input size {input.size()}: "
            "batch statistics of zero values are undefined"
        )
    if per_channel == 1:
        raise ValueError(
            f"Expected more than 1 value per channel when training, got input size {input.size()}"
        )


def check_finite_stats(mu: Tensor, var: Tensor) -> None:
    """Refuse NaN/inf input in training, before the running statistics absorb it.

    A non-finite value anywhere in a channel makes that channel's mean or variance
    non-finite, so checking the (C,) statistics costs one small reduction, not a full pass.
    """
    bad = ~(torch.isfinite(mu) & torch.isfinite(var))
    if bool(bad.any()):
        channels = torch.nonzero(bad.flatten()).flatten().tolist()
        shown = ", ".join(str(c) for c in channels[:8]) + (" ..." if len(channels) > 8 else "")
        raise ValueError(
            f"batch_norm input contains NaN or inf, or values whose variance overflows "
            f"{mu.dtype} (channel(s) {shown}); "
            "the running statistics were not updated"
        )


def check_input_rank(input: Tensor, allowed: tuple[int, ...]) -> None:
    """The rank check of `torch.nn.BatchNorm{1,2,3}d`, with its exact messages."""
    if input.dim() in allowed:
        return
    if allowed == (2, 3):
        raise ValueError(f"expected 2D or 3D input (got {input.dim()}D input)")
    raise ValueError(f"expected {allowed[0]}D input (got {input.dim()}D input)")
