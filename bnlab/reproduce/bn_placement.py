"""`bn-placement`: BN before the nonlinearity (y = g(BN(Wu))) or after it (y = BN(g(Wu + b))),
in a sigmoid and a ReLU network.

Ioffe & Szegedy 2015, Sec. 3.2, normalize x = Wu + b, before g: u is the output of another
nonlinearity, so its distribution's shape changes during training, while Wu + b "is more
likely to have a symmetric, non-sparse distribution". The paper argues this and runs no
comparison; many practitioners put BN after ReLU instead. We train both placements of the
`ioffe2015-mnist` network (3 x 100, MNIST, SGD lr 0.5, batch 60) for STEPS steps, with the
sigmoid of the paper and with ReLU, each activation x placement one results directory.
Placing BN after g keeps the linear layers' biases (BN's beta no longer follows them).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from bnlab.engine import HookConfig, RunContext, TrainConfig, get_preset
from bnlab.errors import ResultsNotFoundError
from bnlab.report import ReportFigure, Section, Table, curve_band, steps_to_accuracy
from bnlab.reproduce.common import (
    Part,
    Results,
    data_source,
    describe,
    experiment_result,
    per_member,
    read_manifest,
    train_variants,
    vs_source,
)
from bnlab.reproduce.experiment import Experiment, ExperimentResult, register
from bnlab.reproduce.scoring import fmt, scored

NAME = "bn-placement"
ACTIVATIONS = ("sigmoid", "relu")
POSITIONS = ("before", "after")
STEPS = 10_000  # a fifth of Sec. 4.1's 50,000, as ioffe2015-lr


def config(seeds: int, quick: bool, activation: str, position: str) -> TrainConfig:
    cfg = get_preset("ioffe2015-mnist")
    model = replace(cfg.model, activation=activation, norm_position=position)
    steps = 40 if quick else STEPS
    cfg = replace(
        cfg,
        preset=f"{NAME}-{activation}-{position}",
        model=model,
        norms=("batch",),
        hooks=HookConfig(),  # no activation recording: not needed here
        seeds=seeds,
        steps=steps,
        eval_every=steps // 20,
        checkpoint_every=steps // 2,
    )
    if quick:
        cfg = replace(cfg, data=replace(cfg.data, train_subset=600, test_subset=500))
    return cfg


def cell_dir(out_dir: Path, activation: str, position: str) -> Path:
    return Path(out_dir) / f"{activation}_{position}"


def run(out_dir: Path, seeds: int, quick: bool, ctx: RunContext) -> None:
    for act in ACTIVATIONS:
        for pos in POSITIONS:
            cfg = config(seeds, quick, act, pos)
            train_variants(f"{NAME} {act}/{pos}", cfg, cell_dir(out_dir, act, pos), ctx)


def analyze(out_dir: Path) -> ExperimentResult:
    manifest = read_manifest(out_dir)
    sections, rows = [], []
    for act in ACTIVATIONS:
        curves = {}
        for pos in POSITIONS:
            directory = cell_dir(out_dir, act, pos)
            if not directory.is_dir():
                raise ResultsNotFoundError(
                    f"DIR: {directory} is missing; rerun `bnlab reproduce {NAME}`"
                )
            with Results(directory) as res:
                curves[pos] = res.metric("batch", "test_accuracy")  # (T,), (K, T)
                cfg = res.config("batch")
        section, part_rows = _section(out_dir, act, curves, cfg)
        sections.append(section)
        rows += part_rows
    return experiment_result(NAME, manifest, sections, rows)


def _section(out_dir: Path, act: str, curves: dict, cfg: dict) -> Part:
    final = {pos: 100.0 * acc[:, -1] for pos, (_, acc) in curves.items()}
    rows, notes = scored(
        "bn-before-nonlinearity", f"{NAME} ({act})", final["before"], final["after"]
    )
    reach, threshold = _steps_to_common_accuracy(curves)
    labels = {pos: f"BN {pos} {act}" for pos in POSITIONS}
    steps = curves["before"][0]
    files = curve_band(
        Path(out_dir) / "figures" / f"placement_{act}",
        steps,
        {labels[p]: 100.0 * curves[p][1] for p in POSITIONS},
        xlabel="training step",
        ylabel="test accuracy (%)",
        title=f"BN before vs after the {act}",
    )
    fig = ReportFigure.from_files(files, "Test accuracy vs step: mean and 95% CI band over seeds.")
    table_rows = [
        ("final test accuracy (%)", *(fmt(final[p]) for p in POSITIONS)),
        (f"steps to {threshold:.2%} test accuracy", *(fmt(reach[p], 0) for p in POSITIONS)),
    ]
    table = Table(
        f"{act} network: mean ± 95% CI over seeds",
        ("measure", *(labels[p] for p in POSITIONS)),
        table_rows,
    )
    section = Section(
        title=f"{NAME}: BN before vs after the {act} (Ioffe & Szegedy 2015, Sec. 3.2)",
        protocol={
            **describe(cfg),
            "network": describe(cfg)["network"].rsplit(";", 1)[0]
            + "; BN before the activation (as the paper) or after it (our comparison)",
            "length": f"{cfg['steps']:,} steps (full protocol: {STEPS:,}, a fifth of Sec. "
            "4.1's 50,000)",
            **vs_source(
                "Ioffe & Szegedy 2015, Sec. 3.2",
                [
                    "the paper argues for BN before the nonlinearity and runs no comparison; "
                    "this runs one",
                    f"{STEPS:,} steps, a fifth of Sec. 4.1's 50,000",
                    "BN networks only: no network without BN in this study",
                ],
            ),
        },
        data_source=data_source(cfg["data"]["dataset"]),
        figures=[fig],
        tables=[table],
        notes=notes,
    )
    return section, rows


def _steps_to_common_accuracy(curves: dict) -> tuple[dict, float]:
    """Steps each member needs to reach the lowest peak accuracy of any run (so every run
    reaches it; the rule of `scoring.steps_to_common_accuracy`)."""
    peaks = np.concatenate([np.nanmax(acc, axis=1) for _, acc in curves.values()])
    threshold = float(np.min(peaks[np.isfinite(peaks)]))
    reach = {
        pos: per_member(
            [steps_to_accuracy(steps, np.nan_to_num(a, nan=-1.0), threshold) for a in acc]
        )
        for pos, (steps, acc) in curves.items()
    }
    return reach, threshold


EXPERIMENT = register(
    Experiment(NAME, "BN before vs after the nonlinearity, sigmoid and ReLU", run, analyze)
)
