"""Precise BN for a stack (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm", Sec. 3).

BN's running statistics are an EMA over training steps: recent batches weigh most, and they
were computed by earlier versions of the weights. After training, precise BN replaces them
with an equal-weight average of the per-batch statistics of the *final* model over N
training batches, which Wu & Johnson show estimates the population statistics better:

    mu_pop  = (1/N) sum_i mu_i,    var_pop = (1/N) sum_i var_i

(var_i as each layer's running variance takes it: BN's unbiased batch variance, Ghost BN's
chunk-averaged biased one). Each forward runs in training mode, so every layer sees inputs
normalized with batch statistics, as in training; Batch Renorm is run as plain BN (r = 1,
d = 0) so its output does not depend on the running statistics being replaced.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


def running_stats_layers(model: nn.Module) -> list[nn.Module]:
    """Every norm layer that keeps BN-style running statistics (K, C)."""
    return [
        m
        for m in model.modules()
        if hasattr(m, "running_mean") and hasattr(m, "running_var") and hasattr(m, "momentum")
    ]


def _extra_state(m: nn.Module):
    # layers with extra state (noisy BN's generators) must not be advanced by these forwards
    if type(m).get_extra_state is nn.Module.get_extra_state:
        return None
    return m.get_extra_state()


@torch.no_grad()
def precise_bn(model: nn.Module, batches: Iterable[Tensor], num_batches: int) -> int:
    """Set every running-statistics layer of `model` to the equal-weight average of its batch
    statistics over the first `num_batches` of `batches` (inputs (K, B, ...)).

    Leaves parameters, momentum, step counts, extra state and train/eval mode as found.
    Returns the number of batches used (fewer than `num_batches` if `batches` ran out).
    """
    if num_batches < 1:
        raise ValueError(f"num_batches: expected at least 1 batch, got {num_batches}")
    layers = running_stats_layers(model)
    saved = [
        (m.momentum, m.num_batches_tracked.clone(), getattr(m, "plain", None), _extra_state(m))
        for m in layers
    ]
    old_stats = [(m.running_mean.clone(), m.running_var.clone()) for m in layers]
    means = [torch.zeros_like(m.running_mean) for m in layers]
    variances = [torch.zeros_like(m.running_var) for m in layers]
    was_training = model.training
    model.train()
    for m in layers:
        m.momentum = 1.0  # after a forward, the running statistics are that batch's
        if hasattr(m, "plain"):
            m.plain = True  # Batch Renorm as BN
    used, finished = 0, False
    try:
        for xb in batches:
            if used == num_batches:
                break
            model(xb)
            used += 1
            for m, mu, var in zip(layers, means, variances, strict=True):
                mu += (m.running_mean - mu) / used  # running equal-weight average
                var += (m.running_var - var) / used
        finished = True
    finally:
        model.train(was_training)
        for m, (momentum, tracked, plain, extra) in zip(layers, saved, strict=True):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)
            if plain is not None:
                m.plain = plain
            if extra is not None:
                m.set_extra_state(extra)
        # the average, or (on an error or no batch at all) the statistics as found
        new_stats = zip(means, variances, strict=True) if finished and used else old_stats
        for m, (mu, var) in zip(layers, new_stats, strict=True):
            m.running_mean.copy_(mu)
            m.running_var.copy_(var)
    if used == 0:
        raise ValueError("batches: expected at least one batch, got none")
    return used
