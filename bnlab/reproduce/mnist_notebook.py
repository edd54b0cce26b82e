"""`mnist-notebook`: the notebook project's protocol, over seeds.

MNIST, the first 5,000 training and 1,000 test images, MLP 784-128-64-10 with ReLU, Adam
lr 1e-3, batch 60, 10 epochs, validation (test-subset) accuracy after every epoch: the
engine preset `mnist-notebook`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bnlab.engine import TrainConfig, get_preset
from bnlab.report import ReportFigure, Rule, Section, curve_band
from bnlab.reproduce import preregistered as pre
from bnlab.reproduce.common import (
    FIGURE_ORDER,
    NORM_LABELS,
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
    comparison_table,
    fmt,
    speed_rows,
    stability_rows,
)

NAME = "mnist-notebook"
PROTOCOL = "notebook protocol (5k/1k MNIST, ReLU, Adam)"
SOURCE = "notebook project"
DIFFERENCES = (
    "BN network: the Linear layer before each BN has no bias (beta takes its role, Ioffe & "
    "Szegedy 2015, Sec. 3.2); the notebook keeps nn.Linear's bias there",
    "the same as the notebook: the first 5,000 / 1,000 MNIST images, inputs scaled to "
    "[-1, 1], 784-128-64-10 ReLU with BN before each ReLU, PyTorch's default init, Adam "
    "lr 1e-3, batch 60 with the last partial batch kept (84 steps per epoch), 10 epochs, "
    "accuracy on the 1,000 test images after each epoch",
    RUNS_VS_ONE,
)


def rules(seeds: Seeds) -> tuple[Rule, ...]:
    """final accuracy, loss smoothness, gradient-norm CV."""
    n = pre.seeds_of(seeds, NAME)
    return (pre.accuracy_rule(NAME, n), pre.smoothness_rule(NAME, n), pre.grad_cv_rule(NAME, n))


def config(seeds: int, quick: bool) -> TrainConfig:
    cfg = replace(get_preset(NAME), seeds=seeds)
    if quick:  # 2 epochs instead of 10
        cfg = replace(cfg, epochs=2)
    return cfg


def _part(res: Results, out_dir: Path, seeds: Seeds) -> Part:
    accuracy, smooth, cv = rules(seeds)
    steps, _ = res.metric("batch", "test_accuracy")
    per_epoch = steps / steps[0]  # evaluations happen once per epoch: steps[0] = 1 epoch
    curves = {NORM_LABELS[n]: 100.0 * res.metric(n, "test_accuracy")[1] for n in FIGURE_ORDER}
    fig = curve_band(
        out_dir / "figures" / "validation_accuracy",
        per_epoch,
        curves,
        xlabel="epoch (passes over the 5,000 training images)",
        ylabel="validation accuracy (%)",
        title="MNIST 5,000/1,000, MLP 784-128-64-10 ReLU, Adam 1e-3",
        hint="Compare the bands after the first epoch, where the notebook's speed claim is "
        "read, and at the last epoch.",
    )
    rows, _, notes = speed_rows(res, accuracy, note=PROTOCOL)
    stab_rows, stab_lines = stability_rows(res, smooth, cv)
    epoch_lines = [
        (
            f"validation accuracy after epoch {e + 1} (%)",
            fmt(curves["BN"][:, e]),
            fmt(curves["no BN"][:, e]),
        )
        for e in range(curves["BN"].shape[1])
    ]
    section = Section(
        title=f"{NAME}: the notebook project's protocol",
        protocol={**describe_runs(stored_configs(res)), **vs_source(SOURCE, DIFFERENCES)},
        data_source=data_source("mnist") + " (first 5,000 train / first 1,000 test used)",
        figures=[
            ReportFigure.from_files(
                fig, fig.caption("Validation accuracy after each epoch, 95% CI band")
            )
        ],
        tables=[comparison_table("Per epoch, mean ± 95% CI over seeds", epoch_lines + stab_lines)],
        notes=notes,
        configs=stored_configs(res),
    )
    return section, rows + stab_rows


EXPERIMENT = register(
    one_config_experiment(
        NAME,
        "The notebook project: MNIST 5k/1k, 784-128-64-10 ReLU, Adam",
        config,
        _part,
        rules,
        pre.MLP_SEEDS,
    )
)
