"""Group Normalization over a stack of K members, and its two ends: Layer and Instance Norm.

Wu & He 2018 ("Group Normalization", Sec. 3.1): each example's channels are split into G
groups; each group is normalized over its channels and positions, with per-channel gamma
and beta. No running statistics: training and evaluation compute the same thing, and the
output does not depend on the batch. LayerNorm is G = 1 (every channel and position of an
example; Ba et al. 2016), InstanceNorm is G = C (each channel over its positions; Ulyanov et
al. 2016), both with per-channel gamma and beta as in Wu & He's Fig. 2. (torch.nn.LayerNorm
([C, H, W]) would learn one gamma per *element*; on conv activations the engine's "layer" is
`GroupNorm(1, C)`, on fully connected ones it is `LayerNorm(C)`, the same per-channel map.)

Stacking needs no new math: member k owns channels k*C .. (k+1)*C - 1 of the (B, K*C, H, W)
tensor the conv layers produce, so member k's G groups are groups k*G .. (k+1)*G - 1 of one
group norm with K*G groups over K*C channels (and its instances are that tensor's
instances). No group spans two members, so members never interact. The functional forms are
the library's, `bnlab.norms.group_norm` and `bnlab.norms.instance_norm`; the "aten" kernel
(the default, one fused pass) calls torch's `F.group_norm` on the same layout instead, tested
equal to them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bnlab.engine.stacked import from_groups, to_groups
from bnlab.errors import ConfigError
from bnlab.norms.groupnorm import group_norm
from bnlab.norms.instancenorm import instance_norm


@dataclass(frozen=True)
class GroupParams:
    """GroupNorm's groups per layer (Wu & He 2018 use 32 on ResNets)."""

    groups: int = 4  # must divide every layer's width

    def __post_init__(self) -> None:
        if self.groups < 1:
            raise ValueError(f"groups: expected a positive number of groups, got {self.groups!r}")


def group_fits(p: GroupParams, key: str, fit) -> None:
    """The groups divide every layer's width."""
    widths = {f"conv{i}": w for i, w in enumerate(fit.conv_widths, start=1)}
    start = len(fit.conv_widths) + 1
    widths.update({f"fc{i}": w for i, w in enumerate(fit.hidden_widths, start=start)})
    for layer, width in widths.items():
        if width % p.groups:
            raise ConfigError(
                f"{key}.groups: {p.groups} groups do not divide the {width} channels of "
                f"{layer}; choose a divisor of every width"
            )


def conv_only(p, key: str, fit) -> None:
    """Instance statistics are over H x W positions: fully connected layers have none."""
    if fit.hidden_widths:
        raise ConfigError(
            f"norms: 'instance' normalizes each channel over its H x W positions, so it needs "
            f"a conv-only body; got model.hidden={fit.hidden_widths} (set model.hidden to empty)"
        )


class StackedGroupNorm(nn.Module):
    """GroupNorm with `groups` groups per member over x (K, B, C) or (K, B, C, H, W).

    gamma (`weight`) and beta (`bias`) are (K, C). On (K, B, C) activations a group is
    C / groups features of one example (torch.nn.GroupNorm on (B, C) inputs does the same).
    `instance` (groups = C) uses the library's `instance_norm` on the "bnlab" kernel, with
    `compiled` passed to BN's `normalize` under it.
    """

    def __init__(
        self,
        members: int,
        channels: int,
        groups: int,
        eps: float,
        dtype=None,
        kernel: str = "aten",
        instance: bool = False,
        compiled: bool | None = False,
    ):
        super().__init__()
        if channels % groups:
            raise ValueError(f"groups: {groups} does not divide the {channels} channels")
        self.groups, self.eps, self.kernel = groups, eps, kernel
        self.instance, self.compiled = instance, compiled
        self.weight = nn.Parameter(torch.ones(members, channels, dtype=dtype))  # gamma
        self.bias = nn.Parameter(torch.zeros(members, channels, dtype=dtype))  # beta

    @classmethod
    def group(cls, members: int, channels: int, p, dtype) -> StackedGroupNorm:
        return cls(members, channels, p.group.groups, p.eps, dtype, p.kernel)

    @classmethod
    def layer(cls, members: int, channels: int, p, dtype) -> StackedGroupNorm:
        return cls(members, channels, 1, p.eps, dtype, p.kernel)  # G = 1

    @classmethod
    def instance(cls, members: int, channels: int, p, dtype) -> StackedGroupNorm:
        # G = C
        return cls(members, channels, channels, p.eps, dtype, p.kernel, True, p.compiled)

    def init_member(self, k: int, gen: torch.Generator, init: str, std: float) -> None:
        with torch.no_grad():
            self.weight[k].fill_(1.0)
            self.bias[k].zero_()

    def forward(self, x: Tensor) -> Tensor:
        K = x.shape[0]
        groups = K * self.groups  # member k's groups: k*G .. (k+1)*G - 1
        gamma, beta = self.weight.reshape(-1), self.bias.reshape(-1)  # (K*C,)
        if x.dim() == 5:
            y = self._norm(to_groups(x), groups, gamma, beta)  # (B, K*C, H, W)
            # keep the engine's channels-last layout for the next conv (no-op when it is)
            return from_groups(y.contiguous(memory_format=torch.channels_last), K)
        xg = x.transpose(0, 1).reshape(x.shape[1], -1)  # (B, K*C): one copy
        y = self._norm(xg, groups, gamma, beta)  # (B, K*C)
        return y.view(x.shape[1], K, -1).transpose(0, 1)  # (K, B, C), a view

    def _norm(self, xg: Tensor, groups: int, gamma: Tensor, beta: Tensor) -> Tensor:
        """xg (B, K*C, *) with K*groups groups: the chosen kernel's group norm."""
        if self.kernel == "aten":
            return F.group_norm(xg, groups, gamma, beta, self.eps)
        if self.instance:  # groups = channels: each (example, channel) over its positions
            return instance_norm(xg, weight=gamma, bias=beta, eps=self.eps, compiled=self.compiled)
        return group_norm(xg, groups, gamma, beta, self.eps)

    def extra_repr(self) -> str:
        return f"groups={self.groups}, eps={self.eps}, kernel={self.kernel}"
