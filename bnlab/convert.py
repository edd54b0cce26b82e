"""Swap Batch Normalization implementations in any model: torch.nn's <-> bnlab's.

`convert(model, to="bnlab")` puts bnlab's verified BN where `torch.nn.BatchNorm{1,2,3}d` was;
`to="torch"` puts torch's (ATen's fused kernels, for speed) back. The new modules take over
the old ones' Parameters and buffers themselves (not copies), so state, device, dtype,
`requires_grad` and an optimizer built on the model all carry over.
"""

from __future__ import annotations

from torch import nn

from bnlab import modules

__all__ = ["convert"]

_TO_BNLAB: dict[type, type] = {
    nn.BatchNorm1d: modules.BatchNorm1d,
    nn.BatchNorm2d: modules.BatchNorm2d,
    nn.BatchNorm3d: modules.BatchNorm3d,
}
_TO_TORCH: dict[type, type] = {ours: theirs for theirs, ours in _TO_BNLAB.items()}


def convert(model: nn.Module, to: str) -> nn.Module:
    """Replace every BatchNorm1d/2d/3d of the other implementation in `model`, in place.

    Args:
        model: any `nn.Module` (or a BN module itself).
        to: "bnlab" replaces `torch.nn.BatchNorm{1,2,3}d` by `bnlab.BatchNorm{1,2,3}d`;
            "torch" does the reverse. Only these exact classes are swapped: subclasses
            (`nn.SyncBatchNorm`, `nn.LazyBatchNorm*`, a user's own) are left as they are.

    Returns:
        `model` with its BN replaced (a new module when `model` itself is a BN), like
        `torch.nn.SyncBatchNorm.convert_sync_batchnorm`.
    """
    if to not in ("bnlab", "torch"):
        raise ValueError(f"to: got {to!r}, expected 'bnlab' or 'torch'")
    table = _TO_BNLAB if to == "bnlab" else _TO_TORCH
    if type(model) in table:
        return _swap(model, table[type(model)])
    for name, child in model.named_children():
        new = convert(child, to)
        if new is not child:
            setattr(model, name, new)
    return model


def _swap(bn: nn.Module, cls: type) -> nn.Module:
    new = cls(
        bn.num_features,
        bn.eps,
        bn.momentum,
        bn.affine,
        bn.track_running_stats,
        device="meta",  # no allocation: every tensor is taken over from `bn` below
        bias=bn.bias is not None,
    )
    for name in ("weight", "bias"):
        setattr(new, name, getattr(bn, name))
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        setattr(new, name, getattr(bn, name))
    new.train(bn.training)
    return new
