"""The vectorized training engine: K models trained as one stacked computation.

    cfg = get_preset("ioffe2015-mnist")
    train(replace(cfg, seeds=5), "results/ioffe")      # BN and baseline stacks, 5 seeds each
    train(cfg, "results/cpu", RunContext(device="cpu", threads=1))   # where and how: the context
    records = member_records("results/ioffe")          # one dict per member

Building blocks for analyses: `build_model` (a `StackedModel` whose parameters are views of
`model.flat`, (K, P)), `build_stack` / `train_step` / `evaluate`, `NORM_LAYERS` (the norm
switch; its "batch-noisy" is `StackedNoisyBatchNorm`, Santurkar et al. 2018, Sec. 2.1; also
"layer", "group", "instance", "renorm", "ghost"), `precise_bn` (population statistics by an
equal-weight average over batches, Wu & Johnson 2021),
`ActivationRecorder` / `activation_stats`, and `Store` (the results database).
"""

from bnlab.engine.config import (
    ConfigError,
    DataConfig,
    HookConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    apply_overrides,
    validate,
)
from bnlab.engine.context import RunContext
from bnlab.engine.hooks import ActivationRecorder, activation_stats
from bnlab.engine.models import StackedModel, build_model
from bnlab.engine.noisy_bn import NoiseConfig, StackedNoisyBatchNorm
from bnlab.engine.norms import NORM_LAYERS, NormSpec, StackedBatchNorm
from bnlab.engine.optim import StackedAdam, StackedSGD, make_optimizer
from bnlab.engine.precise_bn import precise_bn
from bnlab.engine.presets import PRESETS, get_preset
from bnlab.engine.records import member_records
from bnlab.engine.store import Store
from bnlab.engine.train import Probe, Stack, build_stack, evaluate, train, train_stack, train_step

__all__ = [
    "NORM_LAYERS",
    "PRESETS",
    "ActivationRecorder",
    "ConfigError",
    "DataConfig",
    "HookConfig",
    "ModelConfig",
    "NoiseConfig",
    "NormSpec",
    "OptimConfig",
    "Probe",
    "RunContext",
    "Stack",
    "StackedAdam",
    "StackedBatchNorm",
    "StackedModel",
    "StackedNoisyBatchNorm",
    "StackedSGD",
    "Store",
    "TrainConfig",
    "activation_stats",
    "apply_overrides",
    "build_model",
    "build_stack",
    "evaluate",
    "get_preset",
    "make_optimizer",
    "member_records",
    "precise_bn",
    "train",
    "train_stack",
    "train_step",
    "validate",
]
