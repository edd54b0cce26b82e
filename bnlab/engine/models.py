"""Build a stack of K models from a `ModelConfig`, with all parameters in one flat buffer.

Every parameter of the stack is a view into `model.flat`, a (K, P) tensor holding member k's
P parameters in row k (gradients likewise in `model.flat_grad`). This gives:

- one-op optimizer updates over all parameters of all members (`bnlab.engine.optim`);
- per-member access for the analyses: `model.flat[k]` is member k as a vector, and
  `model.slices` says where each named parameter lives in it;
- per-member, per-layer gradient norms as one reduction.

Member k is initialized from its own generator, seeded by its seed alone, layer by layer in
order; so member k of any stack equals a one-member stack built with the same seed.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from bnlab.engine.config import ModelConfig
from bnlab.engine.norms import NORM_LAYERS
from bnlab.engine.stacked import (
    Activation,
    StackedConv2d,
    StackedFlatten,
    StackedLinear,
    StackedMaxPool2d,
)

# Member seeds also seed the data order; offsetting the init stream keeps the two unrelated.
INIT_SEED_OFFSET = 1_000_003


class StackedModel(nn.Module):
    """A sequence of stacked layers: (K, B, C, H, W) images -> (K, B, classes) logits."""

    def __init__(
        self,
        layers: OrderedDict[str, nn.Module],
        members: int,
        dtype: torch.dtype,
        widest: int = 0,
    ):
        super().__init__()
        self.members = members
        self.widest = widest  # values per image in the largest activation of one member
        self.layers = nn.Sequential(layers)
        self._flatten_parameters(dtype, torch.device("cpu"))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)

    def init_members(self, seeds: list[int], init: str, std: float) -> None:
        """Initialize member k from a generator seeded with seeds[k] only."""
        if len(seeds) != self.members:
            raise ValueError(f"seeds: expected {self.members} seeds, got {len(seeds)}")
        for k, seed in enumerate(seeds):
            gen = torch.Generator().manual_seed(seed + INIT_SEED_OFFSET)
            for layer in self.layers:
                if hasattr(layer, "init_member"):
                    layer.init_member(k, gen, init, std)

    def to_device(self, device: torch.device | str) -> StackedModel:
        """Move the stack to `device`, parameters still views of one flat buffer there.

        Members are initialized on the CPU (their generators are CPU generators), so a stack
        starts from the same weights on every device.
        """
        device = torch.device(device)
        if self.flat.device != device:
            self._flatten_parameters(self.flat.dtype, device)
            self.to(device)  # the buffers: BN running statistics
        return self

    def layer_sq_norms(self, flat: Tensor) -> Tensor:
        """Per-member squared l2 norm of `flat` (K, P) restricted to each layer: (K, L)."""
        per_param = [
            torch.linalg.vector_norm(flat[:, a:b], dim=1)  # (K,), read-only: no (K, P) temp
            for a, b in self._param_ranges
        ]
        sq = torch.stack(per_param, dim=1).square_()  # (K, params)
        return torch.mm(sq, self._layer_onehot)  # (K, L): sum the params of each layer

    def _flatten_parameters(self, dtype: torch.dtype, device: torch.device) -> None:
        """Re-home every parameter as a view of self.flat (K, P); grads in self.flat_grad."""
        named = list(self.named_parameters())
        total = sum(p[0].numel() for _, p in named)
        self.flat = torch.zeros(self.members, total, dtype=dtype, device=device)  # (K, P)
        self.flat_grad = torch.zeros_like(self.flat)  # (K, P)
        self.slices: dict[str, tuple[int, int]] = {}  # name -> (start, end) within a row
        self.layer_names: list[str] = []
        onehot = torch.zeros(len(named), len(self.layers), dtype=dtype, device=device)
        start = 0
        for name, param in named:
            end = start + param[0].numel()
            view = self.flat[:, start:end].view(param.shape)
            view.copy_(param.detach())  # (also across devices)
            new = nn.Parameter(view)
            new.grad = self.flat_grad[:, start:end].view(param.shape)
            module_name, attr = name.rsplit(".", 1)
            setattr(self.get_submodule(module_name), attr, new)
            self.slices[name] = (start, end)
            onehot[len(self.slices) - 1, self._layer_index(module_name)] = 1.0
            start = end
        used = onehot.sum(0) > 0
        self.layer_names = [
            n for n, u in zip(self.layers._modules, used.tolist(), strict=True) if u
        ]
        self._layer_onehot = onehot[:, used]  # (params, L): which layer owns each parameter
        self._param_ranges = list(self.slices.values())

    def _layer_index(self, module_name: str) -> int:
        return list(self.layers._modules).index(module_name.split(".")[1])


def _norm_act(blocks: OrderedDict, i: int, spec, cfg: ModelConfig, members, width, dtype) -> None:
    norm = spec.make(members, width, cfg.norm, dtype) if spec.make is not None else None
    act = Activation(cfg.activation)
    if norm is not None and cfg.norm_position == "before":
        blocks[f"norm{i}"] = norm
    blocks[f"act{i}"] = act
    if norm is not None and cfg.norm_position == "after":
        blocks[f"norm{i}"] = norm


def build_model(
    cfg: ModelConfig,
    norm: str,
    members: int,
    input_shape: tuple[int, int, int],
    dtype: torch.dtype = torch.float32,
) -> StackedModel:
    """Conv blocks (conv3x3, norm, act; maxpool2 after every `pool_every`-th), then fully
    connected blocks, then logits.

    A layer whose output goes straight into a norm layer with a learned shift has no bias:
    beta takes its role (Ioffe & Szegedy 2015, Sec. 3.2).
    """
    spec = NORM_LAYERS[norm]
    bias = not (spec.has_shift and cfg.norm_position == "before")
    channels, height, width = input_shape
    widest = channels * height * width  # values per image of the largest activation
    blocks: OrderedDict[str, nn.Module] = OrderedDict()
    for i, c_out in enumerate(cfg.conv_channels, start=1):
        widest = max(widest, c_out * height * width)
        blocks[f"conv{i}"] = StackedConv2d(members, channels, c_out, bias=bias, dtype=dtype)
        _norm_act(blocks, i, spec, cfg, members, c_out, dtype)
        channels = c_out
        if i % cfg.pool_every == 0:  # VGG-style stages: several convs per pooling
            blocks[f"pool{i}"] = StackedMaxPool2d()
            height, width = height // 2, width // 2
    blocks["flatten"] = StackedFlatten()
    fan_in = channels * height * width
    start = len(cfg.conv_channels) + 1
    for i, fan_out in enumerate(cfg.hidden, start=start):
        blocks[f"fc{i}"] = StackedLinear(members, fan_in, fan_out, bias=bias, dtype=dtype)
        _norm_act(blocks, i, spec, cfg, members, fan_out, dtype)
        fan_in = fan_out
    blocks["out"] = StackedLinear(members, fan_in, cfg.num_classes, bias=True, dtype=dtype)
    return StackedModel(blocks, members, dtype, max(widest, *cfg.hidden, cfg.num_classes))
