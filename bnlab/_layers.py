"""Which layers BN can be folded into, and how each one's output channels are laid out.

torch.nn's Linear and Conv layers hold one model; the engine's StackedLinear and
StackedConv2d hold K members, with a leading member axis on weight and bias. For every
layer the bias has the shape of BN's per-channel scale: (C,), or (K, C) for a stack.
"""

from __future__ import annotations

from torch import Tensor, nn

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_TRANSPOSE = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _stacked_layers() -> tuple[type, type]:
    from bnlab.engine.stacked import StackedConv2d, StackedLinear  # the engine imports bnlab

    return StackedLinear, StackedConv2d


def is_stacked_batchnorm(m: nn.Module) -> bool:
    from bnlab.engine.norms import StackedBatchNorm

    return isinstance(m, StackedBatchNorm)


def is_foldable(m: nn.Module) -> bool:
    """A layer whose output channels BN can be folded into."""
    return isinstance(m, (nn.Linear, *_CONV, *_CONV_TRANSPOSE, *_stacked_layers()))


def out_channels(m: nn.Module) -> int:
    if isinstance(m, nn.Linear):
        return m.out_features
    stacked_linear, stacked_conv = _stacked_layers()
    if isinstance(m, stacked_linear):
        return m.fan_out
    if isinstance(m, stacked_conv):
        return m.c_out
    return m.out_channels


def scale_out_channels(m: nn.Module, scale: Tensor) -> None:
    """Multiply output channel c of `m`'s weight by scale[c] ((K, C) for a stack), in place."""
    w = m.weight
    stacked_linear, stacked_conv = _stacked_layers()
    if isinstance(m, stacked_linear):  # (K, in, out)
        w.mul_(scale.reshape(w.shape[0], 1, -1).to(w.dtype))
    elif isinstance(m, stacked_conv):  # (K, C_out, C_in, 3, 3)
        w.mul_(scale.reshape(*scale.shape, 1, 1, 1).to(w.dtype))
    elif isinstance(m, _CONV_TRANSPOSE):
        # (C_in, C_out / groups, *kernel): output channel g * (C_out / groups) + j is
        # column j of group g's block of input rows
        g = m.groups
        blocks = w.view(g, w.shape[0] // g, w.shape[1], *w.shape[2:])
        kernel = (1,) * (w.dim() - 2)
        blocks.mul_(scale.reshape(g, 1, w.shape[1], *kernel).to(w.dtype))
    else:  # Linear (out, in), Conv (C_out, C_in / groups, *kernel)
        w.mul_(scale.reshape(-1, *(1,) * (w.dim() - 1)).to(w.dtype))
