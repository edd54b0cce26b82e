"""`cifar10-cnn`: the reproduction project's SimpleCNN with and without BN, over seeds.

The project trains 50,000 steps of batch 128 on the full 50,000 CIFAR-10 training images, i.e.
128 epochs, SGD lr 0.01 momentum 0.9, weight decay 5e-4, random crop (pad 4) and flip
(engine preset `cifar10-cnn`). Only a 5,000-image subset is present here (4,000 train /
1,000 test), so we scale the step count to the data: the same 128 epochs over 4,000
images, 128 x 31 = 3,968 steps. The project's "5K steps" column (10% of its training) maps to
10% of ours.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bnlab.engine import TrainConfig, get_preset
from bnlab.report import Rule, Section
from bnlab.reproduce import preregistered as pre
from bnlab.reproduce.common import (
    RUNS_VS_ONE,
    Part,
    Results,
    data_source,
    describe_runs,
    one_config_experiment,
    stored_configs,
    vs_source,
)
from bnlab.reproduce.experiment import Seeds, register
from bnlab.reproduce.scoring import (
    accuracy_figure,
    comparison_table,
    speed_rows,
    stability_rows,
)

NAME = "cifar10-cnn"
TITLE = "CIFAR-10 subset, SimpleCNN"
SUBSET_NOTE = "CIFAR-10 5,000-image subset"
PROJECT_EPOCHS = 128  # 50,000 steps x 128 images / 50,000 images
SCALING = (
    "Step count scaled to the data present: the project's 50,000 steps of batch 128 over 50,000 "
    "images are 128 epochs; we train 128 epochs over the 4,000-image training subset "
    "(3,968 steps). Test accuracy is on the 1,000-image test subset, so it is not "
    "comparable to the project's 85.23% / 82.71% (full test set, 12.5x more training data)."
)


SOURCE = "reproduction project's CIFAR-10 experiment"
DIFFERENCES = (
    "data: the CIFAR-10 subset present, 4,000 train / 1,000 test images; the project uses the "
    "full 50,000 / 10,000",
    "length: 128 epochs = 3,968 steps of batch 128 over 4,000 images; the project's 50,000 "
    "steps are the same 128 epochs over 50,000 images",
    "inputs: standardized per channel with the training statistics; the project does not state "
    "its input normalization",
    RUNS_VS_ONE,
)

PROJECT_NUMBERS = (
    "The project reports 74.96% (BN) vs 10.00% (no BN) at 5K steps and 85.23% vs 82.71% at 50K "
    "steps, one run each, on the full CIFAR-10."
)


def rules(seeds: Seeds) -> tuple[Rule, ...]:
    """accuracy, steps, loss smoothness, gradient-norm CV."""
    n = pre.seeds_of(seeds, NAME)
    return (
        pre.accuracy_rule(NAME, n),
        pre.steps_rule(NAME, n),
        pre.smoothness_rule(NAME, n),
        pre.grad_cv_rule(NAME, n),
    )


def config(seeds: int, quick: bool) -> TrainConfig:
    cfg = get_preset(NAME)
    cfg = replace(cfg, seeds=seeds, batch_size=128, epochs=PROJECT_EPOCHS, eval_every=4 * 31)
    if quick:  # a handful of small-batch steps on a 500-image test subset
        cfg = replace(
            cfg,
            batch_size=32,
            epochs=0,
            steps=12,
            eval_every=4,
            checkpoint_every=12,
            data=replace(cfg.data, test_subset=500),
        )
    return cfg


def _part(res: Results, out_dir: Path, seeds: Seeds) -> Part:
    accuracy, steps, smooth, cv = rules(seeds)
    fig = accuracy_figure(res, out_dir / "figures" / "test_accuracy", "CIFAR-10 subset, SimpleCNN")
    rows, lines, notes = speed_rows(res, accuracy, steps, SUBSET_NOTE)
    stab_rows, stab_lines = stability_rows(res, smooth, cv)
    section = Section(
        title=f"{NAME}: the reproduction project's SimpleCNN",
        protocol={
            **describe_runs(stored_configs(res)),
            "step scaling": SCALING,
            **vs_source(SOURCE, DIFFERENCES),
        },
        data_source=data_source("cifar10"),
        figures=[fig],
        tables=[comparison_table("Mean ± 95% CI over seeds", lines + stab_lines)],
        notes=[PROJECT_NUMBERS, *notes],
        configs=stored_configs(res),
    )
    return section, rows + stab_rows


EXPERIMENT = register(
    one_config_experiment(
        NAME,
        "The reproduction project's SimpleCNN on the CIFAR-10 subset",
        config,
        _part,
        rules,
        pre.CONV_SEEDS,
    )
)
