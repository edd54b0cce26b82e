"""How many torch threads a stack should train with, from the size of one of its steps.

A stack of a few small models is bound by per-op overhead: a second thread cannot split
that, and when another process holds the other core, every op's threads wait for the one
that is descheduled, so a small stack runs several times slower with 2 threads than with 1.
Only steps with enough arithmetic gain from a second thread, and only on an idle core.
`benchmarks/threads.py` measures every preset both ways; `benchmarks/README.md` holds the
table the threshold below is read from.

    choose_threads(cfg, *free_cores())   # 1 on a busy machine or for a small stack
"""

from __future__ import annotations

import os

from bnlab.data.registry import DATASETS
from bnlab.engine.config import TrainConfig

# Conv/matmul FLOPs of one stack step (forward + backward, every member) above which a
# second thread pays, read from benchmarks/README.md's table: the MLP presets lie below
# 1 GFLOP per step and lose with 2 threads; the conv presets lie above 10 and gain.
MULTI_THREAD_FLOPS = 3e9


def input_shape(cfg: TrainConfig) -> tuple[int, int, int]:
    """(C, H, W) of one image of the config's dataset, from the registry (no data read)."""
    return DATASETS[cfg.data.dataset].shape


def model_flops(cfg: TrainConfig, shape: tuple[int, int, int] | None = None) -> float:
    """Conv and matmul FLOPs of one member's forward + backward on one batch.

    A multiply-add is 2 FLOPs; the backward pass costs twice the forward (input and weight
    gradients), except in the first layer, whose input needs no gradient. Norms, activations
    and the optimizer are left out: they are memory-bound and scale with `activations`.
    """
    (c, h, w), total, first = shape or input_shape(cfg), 0.0, True
    B = cfg.batch_size
    for i, c_out in enumerate(cfg.model.conv_channels, start=1):
        total += 2 * B * c * c_out * 9 * h * w * (2 if first else 3)  # 3x3 conv, same padding
        c, first = c_out, False
        if i % cfg.model.pool_every == 0:
            h, w = h // 2, w // 2
    fan_in = c * h * w
    for fan_out in (*cfg.model.hidden, cfg.model.num_classes):
        total += 2 * B * fan_in * fan_out * (2 if first else 3)
        fan_in, first = fan_out, False
    return total


def stack_flops(cfg: TrainConfig, shape: tuple[int, int, int] | None = None) -> float:
    """FLOPs of one training step of one stack: every member's forward + backward."""
    return cfg.members * model_flops(cfg, shape)


def activations(cfg: TrainConfig, shape: tuple[int, int, int] | None = None) -> int:
    """Elements of every layer's output in one stack step (members x batch x widths)."""
    (_, h, w), total = shape or input_shape(cfg), 0
    for i, c_out in enumerate(cfg.model.conv_channels, start=1):
        total += c_out * h * w
        if i % cfg.model.pool_every == 0:
            h, w = h // 2, w // 2
    total += sum(cfg.model.hidden) + cfg.model.num_classes
    return cfg.members * cfg.batch_size * total


def choose_threads(cfg: TrainConfig, cores: int, load: float = 0.0) -> int:
    """Torch threads for one stack of `cfg` on `cores` cores with `load` runnable processes
    besides it (the 1-minute load average, say): 2 only where two cores are free and the step
    is big enough (MULTI_THREAD_FLOPS) to be split, else 1. A default for
    `bnlab.engine.context.resolve_threads`, which gives a thread count the user set
    (`--threads`, `RunContext.threads`) precedence.
    """
    free = round(cores - load)
    if free < 2 or stack_flops(cfg) < MULTI_THREAD_FLOPS:
        return 1
    return 2


def free_cores() -> tuple[int, float]:
    """(cores this process may run on, the 1-minute load average): `choose_threads`' inputs."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return cores or 1, load
