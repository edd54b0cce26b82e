"""Group Normalization over a stack of K members, and its two ends: Layer and Instance Norm.

Wu & He 2018 ("Group Normalization", Sec. 3.1): each example's channels are split into G
groups; each group is normalized over its channels and positions,

    mu_i  = mean of x over (channels of group g, H, W) of example i
    var_i = biased variance over the same set
    y     = gamma_c * (x - mu_i) / sqrt(var_i + eps) + beta_c     (gamma, beta per channel)

so the statistics never mix examples: the output does not depend on the batch size, and
training and evaluation compute the same thing (no running statistics). LayerNorm is G = 1
(every channel and position of an example; Ba et al. 2016), InstanceNorm is G = C (each
channel over its positions; Ulyanov et al. 2016), both with per-channel gamma and beta as
in Wu & He's Fig. 2. (torch.nn.LayerNorm([C, H, W]) would learn one gamma per *element*;
tests compare conv activations against torch.nn.GroupNorm(1, C) and fully connected ones
against torch.nn.LayerNorm(C), which are the same per-channel map.)

Stacking is free: member k owns channels k*C .. (k+1)*C - 1 of the (B, K*C, H, W) tensor the
conv layers produce, so member k's G groups are groups k*G .. (k+1)*G - 1 of one
`F.group_norm` with K*G groups. No group spans two members, so members never interact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bnlab.engine.stacked import from_groups, to_groups


class StackedGroupNorm(nn.Module):
    """GroupNorm with `groups` groups per member over x (K, B, C) or (K, B, C, H, W).

    gamma (`weight`) and beta (`bias`) are (K, C). On (K, B, C) activations a group is
    C / groups features of one example (torch.nn.GroupNorm on (B, C) inputs does the same).
    """

    def __init__(self, members: int, channels: int, groups: int, eps: float, dtype=None):
        super().__init__()
        if channels % groups:
            raise ValueError(f"groups: {groups} does not divide the {channels} channels")
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(members, channels, dtype=dtype))  # gamma
        self.bias = nn.Parameter(torch.zeros(members, channels, dtype=dtype))  # beta

    def init_member(self, k: int, gen: torch.Generator, init: str, std: float) -> None:
        with torch.no_grad():
            self.weight[k].fill_(1.0)
            self.bias[k].zero_()

    def forward(self, x: Tensor) -> Tensor:
        K = x.shape[0]
        groups = K * self.groups  # member k's groups: k*G .. (k+1)*G - 1
        gamma, beta = self.weight.reshape(-1), self.bias.reshape(-1)  # (K*C,)
        if x.dim() == 5:
            y = F.group_norm(to_groups(x), groups, gamma, beta, self.eps)  # (B, K*C, H, W)
            # keep the engine's channels-last layout for the next conv (no-op when it is)
            return from_groups(y.contiguous(memory_format=torch.channels_last), K)
        xg = x.transpose(0, 1).reshape(x.shape[1], -1)  # (B, K*C): one copy
        y = F.group_norm(xg, groups, gamma, beta, self.eps)  # (B, K*C)
        return y.view(x.shape[1], K, -1).transpose(0, 1)  # (K, B, C), a view

    def extra_repr(self) -> str:
        return f"groups={self.groups}, eps={self.eps}"


def make_group(members, channels, model_cfg, dtype) -> StackedGroupNorm:
    return StackedGroupNorm(members, channels, model_cfg.norm_groups, model_cfg.bn_eps, dtype)


def make_layer(members, channels, model_cfg, dtype) -> StackedGroupNorm:
    return StackedGroupNorm(members, channels, 1, model_cfg.bn_eps, dtype)  # G = 1


def make_instance(members, channels, model_cfg, dtype) -> StackedGroupNorm:
    return StackedGroupNorm(members, channels, channels, model_cfg.bn_eps, dtype)  # G = C
