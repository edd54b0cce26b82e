"""Swap the normalization layers of any model: the variant "GroupNorm instead of BN" in one
line, `Variant(model=replace_norm("group", groups=8))`.

Every BatchNorm{1,2,3}d (torch.nn's or bnlab's) becomes, with the same eps:

- "batch": bnlab's `BatchNorm{1,2,3}d` (same momentum), freshly initialized;
- "group": bnlab's `GroupNorm(groups, C)` (Wu & He 2018); `groups` must divide C;
- "layer": bnlab's `GroupNorm(1, C)`: each sample normalized over all its channels and
  positions, with a per-channel gamma and beta (Wu & He 2018, Fig. 2, G = 1);
- "none": `nn.Identity()`. A layer that had no bias because BN's beta replaced it keeps none.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from torch.nn.modules import batchnorm

from bnlab import modules as bnlab_bn
from bnlab.errors import BnlabError
from bnlab.norms import GroupNorm

__all__ = ["KINDS", "ReplaceNorm", "replace_norm"]

KINDS = ("batch", "group", "layer", "none")
_BATCH_NORMS = {
    nn.BatchNorm1d: bnlab_bn.BatchNorm1d,
    nn.BatchNorm2d: bnlab_bn.BatchNorm2d,
    nn.BatchNorm3d: bnlab_bn.BatchNorm3d,
    bnlab_bn.BatchNorm1d: bnlab_bn.BatchNorm1d,
    bnlab_bn.BatchNorm2d: bnlab_bn.BatchNorm2d,
    bnlab_bn.BatchNorm3d: bnlab_bn.BatchNorm3d,
}


@dataclass(frozen=True)
class ReplaceNorm:
    """A model transform: every BN of a model replaced by `to` (see the module docstring)."""

    to: str
    groups: int = 32

    def __post_init__(self):
        if self.to not in KINDS:
            raise BnlabError(f"replace_norm: got {self.to!r}, expected one of {', '.join(KINDS)}")
        if isinstance(self.groups, bool) or not isinstance(self.groups, int) or self.groups < 1:
            raise BnlabError(f"replace_norm: groups={self.groups!r}, expected an int >= 1")

    def __repr__(self) -> str:
        groups = f", groups={self.groups}" if self.to == "group" else ""
        return f"replace_norm({self.to!r}{groups})"

    def __call__(self, model: nn.Module) -> nn.Module:
        if type(model) in _BATCH_NORMS:
            return self._new(model, "the model")
        for parent_name, parent in list(model.named_modules()):
            for name, child in list(parent.named_children()):
                if type(child) in _BATCH_NORMS:
                    where = f"{parent_name}.{name}" if parent_name else name
                    setattr(parent, name, self._new(child, where))
        return model

    def _new(self, bn: batchnorm._BatchNorm, where: str) -> nn.Module:
        channels, eps = bn.num_features, bn.eps
        if self.to == "none":
            return nn.Identity()
        if self.to == "batch":
            return _BATCH_NORMS[type(bn)](channels, eps, bn.momentum, bn.affine)
        groups = 1 if self.to == "layer" else self.groups
        if channels % groups:
            raise BnlabError(
                f"replace_norm: {groups} groups do not divide the {channels} channels of "
                f"{where}; choose a divisor of every width"
            )
        return GroupNorm(groups, channels, eps, bn.affine)


def replace_norm(to: str, groups: int = 32) -> ReplaceNorm:
    """A transform for `Variant(model=...)`: every BN of the model becomes `to`."""
    return ReplaceNorm(to, groups)
