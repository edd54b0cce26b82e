"""Activation statistics recorded by forward hooks, per member of a stack.

Ioffe & Szegedy 2015, Fig. 1(b, c) follow "a typical sigmoid input" over training through its
{15, 50, 85}th percentiles. `ActivationRecorder` hooks the *input* of chosen activation
layers (the pre-activation: after BN when BN sits before the activation) and, with
`HookConfig.norm_inputs`, also the input of the norm layer of the same block (before BN:
the distribution BN is given, as in the optimization-study seed's activation-distribution
notebook). At recording steps only, it computes for every member:

- the chosen percentiles of each chosen unit (channel for conv layers), over the batch;
- mean and std of the whole layer input;
- optionally a histogram of the layer input: the fraction of its values in each of
  `histogram_bins` equal bins over [-hist_range, hist_range] (values outside fall in none).

Rows are named `act/<layer>/<stat>` for the activation's input and `norm_in/<layer>/<stat>`
for the norm's input of the same block (`layer` is the activation's name, e.g. act2).
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
        r, n = cfg.hist_range, flat.shape[1]
        hist = torch.stack([torch.histc(f, cfg.histogram_bins, -r, r) for f in flat])  # (K, bins)
        fraction = hist / n  # of all the layer's values: out-of-range mass is visible as lost
        out.update({f"hist/{b}": fraction[:, b] for b in range(cfg.histogram_bins)})
    return out


def histogram_edges(cfg: HookConfig) -> Tensor:
    """The bin edges of the recorded histograms: (histogram_bins + 1,)."""
    return torch.linspace(-cfg.hist_range, cfg.hist_range, cfg.histogram_bins + 1)


class ActivationRecorder:
    """Records `activation_stats` of the inputs of `cfg.layers` when `active` is True, and of
    their blocks' norm layers (`normN` for `actN`) with `cfg.norm_inputs`, where there is one."""

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
            self._hook_input(modules[name], f"act/{name}")
            norm = "norm" + name.removeprefix("act")
            if cfg.norm_inputs and norm in modules:
                self._hook_input(modules[norm], f"norm_in/{name}")

    def _hook_input(self, module: nn.Module, prefix: str) -> None:
        self.handles.append(module.register_forward_pre_hook(partial(self._hook, prefix)))

    def _hook(self, prefix: str, module: nn.Module, args: tuple) -> None:
        if self.active:
            self.pending.append((prefix, activation_stats(args[0], self.cfg)))

    def take_rows(self, step: int) -> list[tuple[int, int, str, float]]:
        """Drain what was recorded as (member, step, name, value) rows."""
        rows = []
        for prefix, stats in self.pending:
            for stat, values in stats.items():
                name = f"{prefix}/{stat}"
                rows.extend((k, step, name, v) for k, v in enumerate(values.tolist()))
        self.pending.clear()
        return rows

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
