"""Activation statistics recorded by forward hooks, per member of a stack.

Ioffe & Szegedy 2015, Fig. 1(b, c) follow "a typical sigmoid input" over training through its
{15, 50, 85}th percentiles. `ActivationRecorder` hooks the *input* of chosen activation
layers (the pre-activation: after BN when BN sits before the activation) and, at recording
steps only, computes for every member:

- the chosen percentiles of each chosen unit (channel for conv layers), over the batch;
- mean and std of the whole layer input;
- optionally a histogram of the layer input.

`activation_stats` is the same computation as a plain function, for use outside training.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from bnlab.engine.config import ConfigError, HookConfig


def units_last(x: Tensor) -> Tensor:
    """(K, B, U) or (K, B, C, H, W) -> (K, N, U): samples of each unit (channel) per member."""
    if x.dim() == 5:
        K, B, C, H, W = x.shape
        return x.permute(0, 1, 3, 4, 2).reshape(K, B * H * W, C)  # (K, B*H*W, C)
    return x  # (K, B, U)


def activation_stats(x: Tensor, cfg: HookConfig) -> dict[str, Tensor]:
    """Per-member statistics of a layer input x (K, B, ...): name -> (K,) tensor."""
    x = units_last(x.detach())  # (K, N, U)
    K = x.shape[0]
    flat = x.reshape(K, -1)  # (K, N*U)
    out = {"mean": flat.mean(1), "std": flat.std(1)}
    q = torch.tensor(cfg.percentiles, dtype=x.dtype, device=x.device) / 100.0
    chosen = x[:, :, list(cfg.units)]  # (K, N, units)
    pct = torch.quantile(chosen, q, dim=1)  # (Q, K, units)
    for i, unit in enumerate(cfg.units):
        for j, p in enumerate(cfg.percentiles):
            out[f"u{unit}/p{p:g}"] = pct[j, :, i]
    if cfg.histogram_bins:
        r = cfg.hist_range
        for k in range(K):
            hist = torch.histc(flat[k], cfg.histogram_bins, -r, r)  # (bins,)
            for b in range(cfg.histogram_bins):
                out.setdefault(f"hist/{b}", x.new_zeros(K))[k] = hist[b]
    return out


class ActivationRecorder:
    """Records `activation_stats` of the inputs of `cfg.layers` when `active` is True."""

    def __init__(self, model: nn.Module, cfg: HookConfig):
        self.cfg, self.active = cfg, False
        self.pending: list[tuple[str, dict[str, Tensor]]] = []
        self.handles = []
        modules = dict(model.layers.named_children())
        for name in cfg.layers:
            if name not in modules or not name.startswith("act"):
                acts = [n for n in modules if n.startswith("act")]
                raise ConfigError(
                    f"hooks.layers: no activation layer {name!r}; expected one of {', '.join(acts)}"
                )
            hook = partial(self._hook, name)
            self.handles.append(modules[name].register_forward_pre_hook(hook))

    def _hook(self, name: str, module: nn.Module, args: tuple) -> None:
        if self.active:
            self.pending.append((name, activation_stats(args[0], self.cfg)))

    def take_rows(self, step: int) -> list[tuple[int, int, str, float]]:
        """Drain what was recorded as (member, step, name, value) rows."""
        rows = []
        for layer, stats in self.pending:
            for stat, values in stats.items():
                name = f"act/{layer}/{stat}"
                rows.extend((k, step, name, v) for k, v in enumerate(values.tolist()))
        self.pending.clear()
        return rows

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
