"""Layers over a stack of K independent models: every tensor has a leading member axis.

Activations are (K, B, F) for fully connected layers and (K, B, C, H, W) for convolutions
(views of a channels-last buffer, see `StackedConv2d`); parameters are (K, ...). Member k's
slice of every tensor depends only on member k's parameters and inputs, which is what makes
K models train as one computation without interacting (tested in tests/test_engine_stacked.py).

Each layer initializes one member at a time from that member's generator
(`init_member(k, generator)`), so member k of a stack starts exactly where a one-member stack
seeded the same way starts.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class StackedLinear(nn.Module):
    """y[k] = x[k] @ W[k] + b[k] for x (K, B, in), W (K, in, out), b (K, out)."""

    stacked: ClassVar[bool] = True  # for bnlab.fold: a layer over K members

    def __init__(self, members: int, fan_in: int, fan_out: int, bias: bool = True, dtype=None):
        super().__init__()
        self.fan_in, self.fan_out = fan_in, fan_out
        self.weight = nn.Parameter(torch.empty(members, fan_in, fan_out, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(members, fan_out, dtype=dtype)) if bias else None

    def init_member(self, k: int, gen: torch.Generator, init: str, std: float) -> None:
        # (in, out) layout: member k's weight is W[k].T in torch.nn.Linear's (out, in) layout
        _init_weight(
            self.weight[k],
            self.bias[k] if self.bias is not None else None,
            self.fan_in,
            gen,
            init,
            std,
        )

    @property
    def out_channels(self) -> int:
        return self.fan_out

    @torch.no_grad()
    def scale_out_channels(self, scale: Tensor) -> None:
        """Folding BN: multiply output unit c of member k by scale[k, c] (K, out)."""
        self.weight.mul_(scale.reshape(self.weight.shape[0], 1, -1).to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        if self.bias is None:
            return torch.bmm(x, self.weight)  # (K, B, out)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)  # (K, B, out)


class StackedConv2d(nn.Module):
    """3x3 'same' convolution per member, as one grouped convolution (groups = K) on
    channels-last activations.

    Conv activations are (K, B, C, H, W) *views* of a (B, H, W, K, C) buffer: as a
    (B, K*C, H, W) tensor that is `channels_last`, with member k owning channels
    k*C .. (k+1)*C - 1 (one group of the convolution). On that layout the convolution, BN's
    statistics, ReLU and max-pooling all run as single ops over every member, with no copies
    between them. (`benchmarks/conv_layouts.py` compares it with the NCHW grouped convolution
    and with K separate convolutions.)
    """

    stacked: ClassVar[bool] = True  # for bnlab.fold: a layer over K members

    def __init__(self, members: int, c_in: int, c_out: int, bias: bool = True, dtype=None):
        super().__init__()
        self.members, self.c_in, self.c_out = members, c_in, c_out
        self.weight = nn.Parameter(torch.empty(members, c_out, c_in, 3, 3, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(members, c_out, dtype=dtype)) if bias else None

    def init_member(self, k: int, gen: torch.Generator, init: str, std: float) -> None:
        bias = self.bias[k] if self.bias is not None else None
        _init_weight(self.weight[k], bias, self.c_in * 9, gen, init, std)

    @property
    def out_channels(self) -> int:
        return self.c_out

    @torch.no_grad()
    def scale_out_channels(self, scale: Tensor) -> None:
        """Folding BN: multiply output channel c of member k by scale[k, c] (K, C_out)."""
        self.weight.mul_(scale.reshape(*scale.shape, 1, 1, 1).to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        K = x.shape[0]
        x = to_groups(x)  # (B, K*C_in, H, W), channels_last
        weight = self.weight.reshape(K * self.c_out, self.c_in, 3, 3)  # (K*C_out, C_in, 3, 3)
        bias = self.bias.reshape(K * self.c_out) if self.bias is not None else None
        y = F.conv2d(x, weight, bias, padding=1, groups=K)  # (B, K*C_out, H, W)
        # With one input channel per group, torch takes a depthwise kernel that returns NCHW.
        y = y.contiguous(memory_format=torch.channels_last)  # no-op when already channels_last
        return from_groups(y, K)  # (K, B, C_out, H, W)


class StackedMaxPool2d(nn.Module):
    """2x2 max-pooling with stride 2 per member and channel (channels_last in and out)."""

    def forward(self, x: Tensor) -> Tensor:
        K = x.shape[0]
        return from_groups(F.max_pool2d(to_groups(x), 2), K)  # (K, B, C, H/2, W/2)


class StackedFlatten(nn.Module):
    """(K, B, C, H, W) -> (K, B, C*H*W), in the C, H, W order torch.flatten uses.

    Its gradient goes back in the conv layers' channels-last layout: plain reshape's would
    come back (K, B, C, H, W)-contiguous, and max-pooling's backward would then copy it (and
    its own result) into channels-last, three copies in place of one.
    """

    def forward(self, x: Tensor) -> Tensor:
        return flatten_members(x)  # (K, B, F)


def flatten_members(x: Tensor) -> Tensor:
    """(K, B, ...) -> (K, B, F); a conv activation's gradient goes back channels-last."""
    if x.dim() == 5 and x.requires_grad:
        return _FlattenGroups.apply(x)
    return x.reshape(x.shape[0], x.shape[1], -1)


torch.fx.wrap("flatten_members")  # one node in a traced graph (bnlab.fold traces the stack)


class _FlattenGroups(torch.autograd.Function):
    """reshape (K, B, C, H, W) -> (K, B, C*H*W), with the gradient in `from_groups` layout."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.shape = x.shape
        return x.reshape(x.shape[0], x.shape[1], -1)  # (K, B, F): one copy from channels-last

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        K = ctx.shape[0]
        return from_groups(to_groups(grad.reshape(ctx.shape)), K)  # (K, B, C, H, W)


class Activation(nn.Module):
    FUNCTIONS: ClassVar[dict] = {
        "sigmoid": torch.sigmoid,
        "relu": torch.relu,
        "tanh": torch.tanh,
        "identity": lambda x: x,
    }

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.fn = self.FUNCTIONS[name]

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


def to_groups(x: Tensor) -> Tensor:
    """(K, B, C, H, W) -> (B, K*C, H, W) channels_last; free when x came from `from_groups`.

    Anything else (the data batch, contiguous (K, B, C, H, W)) is copied into that layout once.
    """
    K, B, C, H, W = x.shape
    y = x.permute(1, 3, 4, 0, 2).reshape(B, H, W, K * C)  # (B, H, W, K*C): a view, or one copy
    return y.permute(0, 3, 1, 2)  # (B, K*C, H, W), channels_last strides


def from_groups(y: Tensor, members: int) -> Tensor:
    """(B, K*C, H, W) -> (K, B, C, H, W) as a view (no copy)."""
    B, KC, H, W = y.shape
    return y.view(B, members, KC // members, H, W).transpose(0, 1)


def to_columns(x: Tensor) -> Tensor:
    """(K, B, C, H, W) -> (B*H*W, K*C): one column per member and channel (a view on the
    engine's layout). BN's statistics per member and channel are this matrix's column means."""
    K, B, C, H, W = x.shape
    return x.permute(1, 3, 4, 0, 2).reshape(B * H * W, K * C)  # (N, K*C)


def from_columns(y: Tensor, shape: torch.Size) -> Tensor:
    """Inverse of `to_columns`: (B*H*W, K*C) -> (K, B, C, H, W), a view when y is contiguous."""
    K, B, C, H, W = shape
    return y.reshape(B, H, W, K, C).permute(3, 0, 4, 1, 2)


def _init_weight(weight: Tensor, bias: Tensor | None, fan_in: int, gen, init: str, std: float):
    """Fill one member's weight (and bias) in place from that member's generator."""
    with torch.no_grad():
        if init == "gaussian":
            # Ioffe & Szegedy 2015, Sec. 4.1: "small random Gaussian values"; bias starts at 0
            weight.normal_(0.0, std, generator=gen)
            if bias is not None:
                bias.zero_()
        else:
            # torch.nn.Linear / Conv2d default: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in))
            bound = 1.0 / math.sqrt(fan_in)
            weight.uniform_(-bound, bound, generator=gen)
            if bias is not None:
                bias.uniform_(-bound, bound, generator=gen)
