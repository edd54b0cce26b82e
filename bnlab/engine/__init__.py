"""The vectorized training engine: K models trained as one stacked computation.

    cfg = get_preset("ioffe2015-mnist")
    train(replace(cfg, seeds=5), "results/ioffe")      # BN and baseline stacks, 5 seeds each
    train(cfg, "results/cpu", RunContext(device="cpu", threads=1))   # where and how: the context
    records = member_records("results/ioffe")          # one dict per member
    frame = to_dataframe("results/ioffe")              # every logged value (pandas, long format)

Building blocks for analyses: `build_model` (a `StackedModel` whose parameters are views of
`model.flat`, (K, P)), `build_stack` / `train_step` / `evaluate`, `NORM_LAYERS` (the norm
switch; its "batch-noisy" is `StackedNoisyBatchNorm`, Santurkar et al. 2018, Sec. 2.1; also
"layer", "group", "instance", "renorm", "ghost"), `precise_bn` (population statistics by an
equal-weight average over batches, Wu & Johnson 2021),
`ActivationRecorder` / `activation_stats`, and `Store` (the results database).
"""

from bnlab._lazy import attach

# Imported on first use (bnlab._lazy): `bnlab train --help` starts without torch.
__all__ = attach(
    __name__,
    {
        **dict.fromkeys(
            (
                "ConfigError",
                "DataConfig",
                "HookConfig",
                "ModelConfig",
                "OptimConfig",
                "TrainConfig",
                "apply_overrides",
                "validate",
            ),
            "bnlab.engine.config",
        ),
        "RunContext": "bnlab.engine.context",
        "ActivationRecorder": "bnlab.engine.hooks",
        "activation_stats": "bnlab.engine.hooks",
        "StackedModel": "bnlab.engine.models",
        "build_model": "bnlab.engine.models",
        "NoiseConfig": "bnlab.engine.noisy_bn",
        "StackedNoisyBatchNorm": "bnlab.engine.noisy_bn",
        "NORM_LAYERS": "bnlab.engine.norms",
        "NormSpec": "bnlab.engine.norms",
        "StackedBatchNorm": "bnlab.engine.norms",
        "StackedAdam": "bnlab.engine.optim",
        "StackedSGD": "bnlab.engine.optim",
        "make_optimizer": "bnlab.engine.optim",
        "precise_bn": "bnlab.engine.precise_bn",
        "PRESETS": "bnlab.engine.presets",
        "get_preset": "bnlab.engine.presets",
        "member_records": "bnlab.engine.records",
        "to_dataframe": "bnlab.engine.export",
        "Store": "bnlab.engine.store",
        **dict.fromkeys(
            ("Probe", "Stack", "build_stack", "evaluate", "train", "train_stack", "train_step"),
            "bnlab.engine.train",
        ),
    },
    submodules=("checkpoint", "executors", "replay"),
)
