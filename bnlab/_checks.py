"""Input validation for Batch Normalization: every check runs before any state changes."""

from __future__ import annotations

import os

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


# How NaN/inf in a training batch is handled ("auto", "raise" or "mask"); see finite_stats.
NAN_CHECK = os.environ.get("BNLAB_NAN_CHECK", "auto")
if NAN_CHECK not in ("auto", "raise", "mask"):
    raise ValueError(f"BNLAB_NAN_CHECK: got {NAN_CHECK!r}, expected 'auto', 'raise' or 'mask'")


def finite_stats(mu: Tensor, var: Tensor) -> Tensor | None:
    """Refuse NaN/inf input in training, before the running statistics absorb it.

    A non-finite value anywhere in a channel makes that channel's mean or variance
    non-finite, so checking the (C,) statistics costs one small reduction, not a full pass.

    Raising needs the answer on the host. Where that is free (CPU tensors, eager) it raises
    ValueError naming the channels and returns None. On an accelerator a host read would
    stall every call, and inside torch.compile or a torch.func transform it cannot happen at
    all, so there it returns the answer as a () bool tensor instead: the caller then keeps
    the running statistics (and the batch count) unchanged for a non-finite batch, and the
    output carries the NaN as torch's does. `BNLAB_NAN_CHECK=raise` raises on accelerators
    too (one sync per call); `=mask` never raises.
    """
    if not _may_raise(mu):
        return torch.isfinite(mu).all() & torch.isfinite(var).all()
    bad = ~(torch.isfinite(mu) & torch.isfinite(var))
    if bool(bad.any()):
        channels = torch.nonzero(bad.flatten()).flatten().tolist()
        shown = ", ".join(str(c) for c in channels[:8]) + (" ..." if len(channels) > 8 else "")
        raise ValueError(
            f"batch_norm input contains NaN or inf, or values whose variance overflows "
            f"{mu.dtype} (channel(s) {shown}); "
            "the running statistics were not updated"
        )
    return None


def _may_raise(t: Tensor) -> bool:
    if torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active():
        return False
    if NAN_CHECK == "auto":
        return t.device.type == "cpu"
    return NAN_CHECK == "raise"


_REDUCED = (torch.float16, torch.bfloat16)


def compute_dtype(input: Tensor, *tensors: Tensor | None) -> torch.dtype:
    """The dtype BN computes in, refusing the dtype mixes `torch.nn.BatchNorm*` refuses.

    As torch.nn (CPU): parameters and running statistics share one dtype, which is the
    input's, or float32 for a float16/bfloat16 input. Statistics of float16/bfloat16
    inputs are accumulated in float32 either way; the output keeps the input's dtype.
    """
    kinds = {t.dtype for t in tensors if t is not None}
    if len(kinds) > 1:
        raise RuntimeError(
            "mixed dtype (CPU): all inputs must share same datatype: weight, bias and the "
            f"running statistics have dtypes {sorted(str(k) for k in kinds)}"
        )
    reduced = input.dtype in _REDUCED
    if kinds:
        own = kinds.pop()
        if own != input.dtype and not (reduced and own == torch.float32):
            raise RuntimeError(
                f"mixed dtype (CPU): input is {input.dtype} but the parameters and running "
                f"statistics are {own}; expected {input.dtype}, or float32 for a "
                "float16/bfloat16 input (convert the module with .to(dtype))"
            )
    return torch.float32 if reduced else input.dtype


def check_input_rank(input: Tensor, allowed: tuple[int, ...]) -> None:
    """The rank check of `torch.nn.BatchNorm{1,2,3}d`, with its exact messages."""
    if input.dim() in allowed:
        return
    if allowed == (2, 3):
        raise ValueError(f"expected 2D or 3D input (got {input.dim()}D input)")
    raise ValueError(f"expected {allowed[0]}D input (got {input.dim()}D input)")
