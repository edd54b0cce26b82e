"""The normalization family (placeholder docstring, rewritten below)."""

from bnlab.norms.groupnorm import GroupNorm, group_norm
from bnlab.norms.instancenorm import InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, instance_norm
from bnlab.norms.layernorm import LayerNorm, layer_norm

__all__ = [
    "GroupNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "LayerNorm",
    "group_norm",
    "instance_norm",
    "layer_norm",
]
