"""`bnlab reproduce --set KEY=VALUE`: one change applied to every config an experiment trains.

An experiment trains one or more engine configs (cells of a grid, learning rates, batch
sizes); each override is applied to every one of them, after the experiment has built it,
so `--set batch_size=32` makes every cell of `small-batch` train at batch 32. Such a run is
not the protocol the report's claims were written for: its manifest records the overrides,
every section title and protocol table says so, and a results directory never mixes runs
with and without them.

    ctx = RunContext(overrides=overrides.check(["optim.lr=0.1"]))
    run_experiment(..., ctx)       # train_variants applies them to every config
"""

from __future__ import annotations

from collections.abc import Sequence

from bnlab.engine import RunContext
from bnlab.engine.config import TrainConfig, apply_overrides

NOT_PUBLISHED = "not the published protocol"


def check(items: Sequence[str]) -> tuple[str, ...]:
    """Fail before any work on an unknown key or a value of the wrong type."""
    apply_overrides(TrainConfig(), list(items))
    return tuple(items)


def apply(cfg: TrainConfig, ctx: RunContext) -> TrainConfig:
    """`cfg` with the run context's overrides applied, in order."""
    return apply_overrides(cfg, list(ctx.overrides)) if ctx.overrides else cfg


def label(items: Sequence[str]) -> str:
    """How a run with `items` is marked wherever it is shown ('' for none)."""
    if not items:
        return ""
    return f"--set {' '.join(items)}: {NOT_PUBLISHED}"
