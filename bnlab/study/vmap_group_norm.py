"""GroupNorm over K members as one op under vmap: K members' G groups are K*G groups.

GroupNorm keeps no state, so `vmap` trains it as it is, op by op, on each member's logical
(B, C, H, W) slice. But bnlab's GroupNorm is a Python `autograd.Function`, which vmap runs
through its generic rule (Python per call, and a copy to regroup every member's channels);
torch's `F.group_norm` is one C++ op per member group. Since member k owns channels
k*C .. (k+1)*C - 1 of the (B, K*C, H, W) view of the stacked activations (the layout of a
vmapped convolution's output), GroupNorm with G groups per member is GroupNorm with K*G
groups on that view, gamma and beta (K, C) flattened: one call for every member, with the
math of the layer it replaces (bnlab's `group_norm`, or torch's `F.group_norm`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bnlab.norms import GroupNorm as BnlabGroupNorm
from bnlab.norms.groupnorm import group_norm as bnlab_group_norm

__all__ = ["StackedGroupNorm", "stack_group_norms"]

_KERNELS = {nn.GroupNorm: F.group_norm, BnlabGroupNorm: bnlab_group_norm}


class _GroupNormMembers(torch.autograd.Function):
    """The per-member GroupNorm as one call under vmap; applied only under vmap (autograd
    records the ops of the rule, so no backward is written here)."""

    @staticmethod
    def forward(x, weight, bias, groups, eps, kernel):
        raise RuntimeError("_GroupNormMembers is applied only under torch.func.vmap")

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def vmap(info, in_dims, x, weight, bias, groups, eps, kernel):
        K = info.batch_size
        x = _to(x, in_dims[0], K, 1)  # (N, K, C, *)
        weight, bias = (_to(t, d, K, 0) for t, d in zip((weight, bias), in_dims[1:3], strict=True))
        N, _, C = x.shape[:3]
        xg = x.reshape(N, K * C, *x.shape[3:])  # member k: channels k*C .. (k+1)*C - 1
        w = None if weight is None else weight.reshape(-1)  # (K*C,)
        b = None if bias is None else bias.reshape(-1)
        y = kernel(xg, K * groups, w, b, eps)  # G groups per member = K*G groups
        return y.view(x.shape), 1


def _to(t: Tensor | None, dim: int | None, size: int, to: int) -> Tensor | None:
    if t is None:
        return None
    if dim is None:
        return t.unsqueeze(to).expand(*t.shape[:to], size, *t.shape[to:])
    return t.movedim(dim, to)


class StackedGroupNorm(nn.Module):
    """A GroupNorm (torch.nn's or bnlab's) whose vmapped call is one op over all members.
    Same Parameters and names as the layer it replaces; outside vmap it is that layer."""

    def __init__(self, gn: nn.GroupNorm):
        super().__init__()
        self.num_groups, self.num_channels, self.eps = gn.num_groups, gn.num_channels, gn.eps
        self.weight, self.bias = gn.weight, gn.bias
        self.kernel = _KERNELS[type(gn)]

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}"

    def forward(self, x: Tensor) -> Tensor:
        if torch._C._are_functorch_transforms_active():
            return _GroupNormMembers.apply(
                x, self.weight, self.bias, self.num_groups, self.eps, self.kernel
            )
        return self.kernel(x, self.num_groups, self.weight, self.bias, self.eps)


def stack_group_norms(model: nn.Module) -> list[str]:
    """Swap every torch.nn / bnlab GroupNorm in `model` for a `StackedGroupNorm`, in place;
    returns the swapped layers' names."""
    swapped = []
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            if type(child) in _KERNELS:
                setattr(parent, child_name, StackedGroupNorm(child))
                swapped.append(f"{parent_name}.{child_name}" if parent_name else child_name)
    return swapped
