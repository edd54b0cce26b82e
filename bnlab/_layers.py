"""Which layers BN can be folded into, and how each one's output channels are laid out.

torch.nn's Linear and Conv layers hold one model; the engine's StackedLinear and
StackedConv2d hold K members, with a leading member axis on weight and bias. The engine's
layers say so themselves (`stacked = True`, `out_channels`, `scale_out_channels`), so this
core module needs no import of the engine. For every
layer the bias has the shape of BN's per-channel scale: (C,), or (K, C) for a stack.
"""

from __future__ import annotations

from torch import Tensor, nn

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_TRANSPOSE = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def is_stacked_batchnorm(m: nn.Module) -> bool:
    """The engine's BN over a stack: parameters and statistics (K, C)."""
    return getattr(m, "stacked", False) and hasattr(m, "running_mean")


def _is_stacked_layer(m: nn.Module) -> bool:
    # the engine's StackedLinear / StackedConv2d: they fold through their own methods
    return getattr(m, "stacked", False) and hasattr(m, "scale_out_channels")


def is_foldable(m: nn.Module) -> bool:
    """A layer whose output channels BN can be folded into."""
    return isinstance(m, (nn.Linear, *_CONV, *_CONV_TRANSPOSE)) or _is_stacked_layer(m)


def out_channels(m: nn.Module) -> int:
    if isinstance(m, nn.Linear):
        return m.out_features
    return m.out_channels


def scale_out_channels(m: nn.Module, scale: Tensor) -> None:
    """Multiply output channel c of `m`'s weight by scale[c] ((K, C) for a stack), in place."""
    w = m.weight
    if _is_stacked_layer(m):
        m.scale_out_channels(scale)
    elif isinstance(m, _CONV_TRANSPOSE):
        # (C_in, C_out / groups, *kernel): output channel g * (C_out / groups) + j is
        # column j of group g's block of input rows
        g = m.groups
        blocks = w.view(g, w.shape[0] // g, w.shape[1], *w.shape[2:])
        kernel = (1,) * (w.dim() - 2)
        blocks.mul_(scale.reshape(g, 1, w.shape[1], *kernel).to(w.dtype))
    else:  # Linear (out, in), Conv (C_out, C_in / groups, *kernel)
        w.mul_(scale.reshape(-1, *(1,) * (w.dim() - 1)).to(w.dtype))
