"""The vectorized training engine: K models trained as one stacked computation.

    cfg = get_preset("ioffe2015-mnist")
    train(replace(cfg, seeds=5), "results/ioffe")      # BN and baseline stacks, 5 seeds each
    train(cfg, "results/cpu", RunContext(device="cpu", threads=1))   # where and how: the context
    records = member_records("results/ioffe")          # one dict per member
    frame = to_dataframe("results/ioffe")              # every logged value (pandas, long format)

Building blocks for analyses: `build_model` (a `StackedModel` whose parameters are views of
`model.flat`, (K, P)), `build_stack` / `train_step` / `evaluate`, `NORM_LAYERS` (the norm
switch: "none", "batch", "batch-noisy" (`StackedNoisyBatchNorm`, Santurkar et al. 2018,
Sec. 2.1), "layer", "group", "instance", "renorm", "ghost"; their parameters are
`ModelConfig.norm`, a `NormParams`), `ActivationRecorder` / `activation_stats`, and `Store`
(the results database). Precise BN for a stack is the library's `bnlab.precise_bn`.
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
        "NORM_LAYERS": "bnlab.engine.norms",
        "NormParams": "bnlab.engine.norms",
        "NormSpec": "bnlab.engine.norms",
        "GhostParams": "bnlab.engine.norms_batch",
        "RenormParams": "bnlab.engine.norms_batch",
        "StackedBatchNorm": "bnlab.engine.norms_bn",
        "StackedNoisyBatchNorm": "bnlab.engine.norms_bn",
        "GroupParams": "bnlab.engine.norms_group",
        "StackedAdam": "bnlab.engine.optim",
        "StackedSGD": "bnlab.engine.optim",
        "make_optimizer": "bnlab.engine.optim",
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
