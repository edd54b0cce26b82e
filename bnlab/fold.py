"""Fold Batch Normalization into the preceding Linear or Conv layer, for inference.

In eval mode BN is a fixed per-channel affine map (Ioffe & Szegedy 2015, Alg. 2, step 11):

    y = gamma * (z - running_mean) / sqrt(running_var + eps) + beta = scale * z + shift
    scale = gamma / sqrt(running_var + eps),   shift = beta - scale * running_mean

If z = W x + b comes from a Linear or Conv layer, the two compose into one layer:

    W' = scale * W   (scaling output channel c, i.e. row c of W)
    b' = scale * b + shift
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn

from bnlab.modules import BatchNorm1d, BatchNorm2d, BatchNorm3d

__all__ = ["fold_batchnorm"]

_FOLDABLE_INTO = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BATCHNORMS = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
)


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Return an eval-mode copy of `module` with every foldable BN folded into its layer.

    A BN is folded when it directly follows an `nn.Linear` or `nn.Conv{1,2,3}d` inside an
    `nn.Sequential` (at any depth) and tracks running statistics; it is then replaced by
    `nn.Identity`. A BN that uses batch statistics in eval (`track_running_stats=False`)
    is not an affine map and is left in place, as is any BN not preceded by such a layer.
    The input module is not modified.

    Returns:
        The folded copy, in eval mode. Its outputs equal the unfolded eval model's within
        float rounding.
    """
    folded = copy.deepcopy(module).eval()
    for seq in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        _fold_sequential(seq)
    return folded


def _fold_sequential(seq: nn.Sequential) -> None:
    names = list(seq._modules)
    for prev_name, name in itertools.pairwise(names):
        layer, bn = seq._modules[prev_name], seq._modules[name]
        if isinstance(layer, _FOLDABLE_INTO) and _is_foldable_bn(bn, layer):
            _fold_pair(layer, bn)
            seq._modules[name] = nn.Identity()


def _is_foldable_bn(bn: nn.Module, layer: nn.Module) -> bool:
    if not isinstance(bn, _BATCHNORMS) or bn.running_mean is None:
        return False
    out_channels = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    return bn.num_features == out_channels


@torch.no_grad()
def _fold_pair(layer: nn.Module, bn: nn.Module) -> None:
    inv_std = torch.rsqrt(bn.running_var + bn.eps)  # (C,)
    scale = inv_std if bn.weight is None else bn.weight * inv_std
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    weight = layer.weight  # (C_out, C_in, *kernel) or (C_out, C_in)
    weight.mul_(scale.reshape((-1,) + (1,) * (weight.dim() - 1)).to(weight.dtype))
    old_bias = layer.bias if layer.bias is not None else torch.zeros_like(shift)
    new_bias = (old_bias * scale + shift).to(weight.dtype)
    if layer.bias is None:
        layer.bias = nn.Parameter(new_bias)
    else:
        layer.bias.copy_(new_bias)
