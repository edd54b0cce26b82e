"""Precise BN (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm", Sec. 3): replace the
EMA running statistics by an equal-weight average of per-batch statistics, after training.

The EMA mixes statistics of old weights into the running estimate and, with a small
momentum, weights the last few batches most. Precise BN freezes the weights, runs
`num_batches` batches through the model with its BN-like modules in training mode, and sets
each one's running statistics to

    running_mean = 1/B sum_b mu_b,     running_var = 1/B sum_b var_b

where mu_b and var_b are the module's own per-batch statistics (for BN the batch mean and
the unbiased batch variance, what it puts in its running buffers with momentum 1). This is
the rule of fvcore's `update_bn_stats` (used by detectron2). Where bnlab differs from it:

- which modules: every module with running statistics: a `torch.nn.modules.batchnorm.
  _NormBase` with `track_running_stats` (torch's and bnlab's BN, BatchRenorm,
  GhostBatchNorm, noisy BN, InstanceNorm with tracking), and any other module holding
  `running_mean`, `running_var`, `num_batches_tracked` tensors and a `momentum` (the engine's
  stacked layers, whose statistics are (K, C): one average per member and channel); fvcore
  takes torch's BatchNorm1d/2d/3d and SyncBatchNorm, and only those the caller left in
  training mode;
- modes: bnlab puts these modules in training mode itself and leaves every other module's
  mode as the caller set it (so a model in eval runs without dropout); fvcore leaves all
  modes to the caller. Every mode, momentum, `num_batches_tracked` (which drives
  BatchRenorm's warm-up; fvcore leaves it advanced), BatchRenorm's clipping and every
  module's extra state (noisy BN's generators: the pass must not advance them) is restored.
  During the pass Batch Renorm (any module with `r_max`, `d_max` and `warmup`) runs as plain
  BN (r = 1, d = 0): its correction would otherwise follow the very statistics being
  replaced;
- the batches: an (input, target, ...) tuple feeds its first element; fvcore passes each
  item to the model as it is;
- errors: a model without such modules raises (fvcore returns silently), and too few
  batches raise ValueError with every module left as it was (fvcore asserts, after the
  buffers changed).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase

__all__ = ["precise_bn"]


def _keeps_running_stats(m: nn.Module) -> bool:
    if isinstance(m, _NormBase):
        return m.track_running_stats and m.running_mean is not None
    return hasattr(m, "momentum") and all(
        isinstance(getattr(m, name, None), Tensor)
        for name in ("running_mean", "running_var", "num_batches_tracked")
    )


def _tracked(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if _keeps_running_stats(m)]


def _renormalizes(m: nn.Module) -> bool:
    # Batch Renorm, bnlab's module or the engine's stacked layer: corrected towards its
    # running statistics by r and d, clipped to r_max, d_max (see `bnlab.norms.batchrenorm`)
    return all(hasattr(m, name) for name in ("r_max", "d_max", "warmup"))


def _has_extra_state(m: nn.Module) -> bool:
    return type(m).get_extra_state is not nn.Module.get_extra_state


def _inputs(batch) -> Tensor:
    # a DataLoader's (x, y) pairs are fine: the model gets the first element
    return batch[0] if isinstance(batch, (tuple, list)) else batch


@torch.no_grad()
def precise_bn(model: nn.Module, batches: Iterable, num_batches: int = 200) -> nn.Module:
    """Recompute every BN-like module's running statistics as an equal-weight average.

    Args:
        model: any model, or a stack of K models (`bnlab.engine`, whose layers keep (K, C)
            statistics, averaged per member); its parameters are not changed, nor its other
            modules' modes.
        batches: an iterable of input batches, or of (input, target, ...) tuples (the first
            element is fed to the model), e.g. a DataLoader over the training set, or (K, B,
            ...) batches for a stack.
        num_batches: how many batches to average over (Wu & Johnson 2021 use 200 batches
            of the training set for ImageNet; more give a less noisy estimate).

    Returns:
        `model`, its running statistics replaced in place.

    Raises:
        ValueError: `num_batches` is not a positive int, the model has no module with
            running statistics, or `batches` ends before `num_batches` batches.
    """
    if isinstance(num_batches, bool) or not isinstance(num_batches, int) or num_batches < 1:
        raise ValueError(f"num_batches must be a positive int, got {num_batches!r}")
    norms = _tracked(model)
    if not norms:
        raise ValueError(
            "precise_bn: the model has no module with running statistics (BatchNorm*, "
            "BatchRenorm*, GhostBatchNorm*, InstanceNorm* with track_running_stats=True)"
        )
    saved = _save(model, norms)
    try:
        for m in norms:
            m.train()
            m.momentum = 1.0  # the running buffers now hold this batch's statistics
            if _renormalizes(m):
                m.r_max, m.d_max, m.warmup = 1.0, 0.0, None  # plain BN for the pass
        sums = [(torch.zeros_like(m.running_mean), torch.zeros_like(m.running_var)) for m in norms]
        seen = 0
        for batch in islice(batches, num_batches):  # one batch in memory at a time
            model(_inputs(batch))
            seen += 1
            for m, (mean_sum, var_sum) in zip(norms, sums, strict=True):
                mean_sum += m.running_mean
                var_sum += m.running_var
        if seen < num_batches:
            raise ValueError(
                f"precise_bn: num_batches={num_batches}, but batches gave only {seen} "
                "(the running statistics were left as they were)"
            )
        averages = [(s_mean / num_batches, s_var / num_batches) for s_mean, s_var in sums]
    finally:
        _restore(model, norms, saved)
    for m, (mean, var) in zip(norms, averages, strict=True):
        m.running_mean.copy_(mean)
        m.running_var.copy_(var)
    return model


def _save(model: nn.Module, norms: list[nn.Module]) -> dict:
    return {
        "modes": {m: m.training for m in model.modules()},
        "extra": {m: m.get_extra_state() for m in model.modules() if _has_extra_state(m)},
        "buffers": [(m.running_mean.clone(), m.running_var.clone()) for m in norms],
        "settings": [
            (
                m.momentum,
                None if m.num_batches_tracked is None else m.num_batches_tracked.clone(),
                (m.r_max, m.d_max, m.warmup) if _renormalizes(m) else None,
            )
            for m in norms
        ],
    }


def _restore(model: nn.Module, norms: list[nn.Module], saved: dict) -> None:
    for m, training in saved["modes"].items():
        m.training = training
    for m, state in saved["extra"].items():
        m.set_extra_state(state)
    for m, (mean, var), (momentum, count, renorm) in zip(
        norms, saved["buffers"], saved["settings"], strict=True
    ):
        m.running_mean.copy_(mean)  # overwritten by the averages on success
        m.running_var.copy_(var)
        m.momentum = momentum
        if count is not None:
            m.num_batches_tracked.copy_(count)
        if renorm is not None:
            m.r_max, m.d_max, m.warmup = renorm
