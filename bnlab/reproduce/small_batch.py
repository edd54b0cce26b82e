"""`small-batch`: final test error vs batch size for no norm, BN, GroupNorm, LayerNorm, Batch
Renorm and Ghost BN (Wu & He 2018, "Group Normalization", Fig. 1 / Table 2).

Wu & He train ResNet-50 on ImageNet with 2 to 32 images per GPU and find BN's error grows as
the batch shrinks (23.6% at 32, 34.7% at 2) while GN's stays flat (24.1% at both). We ask the
same question of a small CNN on the CIFAR-10 subset present here, at every batch size of
BATCH_SIZES, each batch size one results directory with one stack per norm.

Departures from the paper, all stated in the report: a small CNN and 4,000 training images
instead of ResNet-50 on ImageNet; a fixed number of epochs (EPOCHS) at every batch size; the
learning rate scaled linearly with the batch size, lr = BASE_LR * B / BASE_BATCH, as Wu & He
do (0.1 * B / 32, after Goyal et al. 2017) but from our own base; GN with NORM_GROUPS groups
(Wu & He: 32, too many for 16-channel layers); norms also in the fully connected layer.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from bnlab.engine import (
    DataConfig,
    GhostParams,
    GroupParams,
    ModelConfig,
    NormParams,
    OptimConfig,
    RenormParams,
    RunContext,
    TrainConfig,
)
from bnlab.errors import ResultsNotFoundError
from bnlab.norms import RenormWarmup
from bnlab.report import ReportFigure, Section, Table, grid_points
from bnlab.reproduce.common import (
    Part,
    Results,
    data_source,
    describe,
    experiment_result,
    read_manifest,
    train_variants,
    vs_source,
)
from bnlab.reproduce.experiment import Experiment, ExperimentResult, register
from bnlab.reproduce.scoring import fmt, scored

NAME = "small-batch"
BATCH_SIZES = (2, 4, 8, 16, 32, 64, 128)
QUICK_BATCH_SIZES = (2, 8)
NORMS = ("none", "batch", "group", "layer", "renorm", "ghost")
LABELS = {
    "none": "no norm",
    "batch": "BN",
    "group": "GroupNorm",
    "layer": "LayerNorm",
    "renorm": "Batch Renorm",
    "ghost": "Ghost BN",
}
EPOCHS = 4  # at every batch size: 4 x 4,000 images (sized to the CPU budget, see the README)
BASE_BATCH, BASE_LR = 32, 0.02  # lr = BASE_LR * B / BASE_BATCH (linear scaling)
NORM_GROUPS = 8  # GroupNorm: 2 / 4 / 8 channels per group in the 16 / 32 / 64-wide layers
GHOST_BATCH = 16  # Ghost BN's virtual batch, min(16, B): at B <= 16 it is BN exactly
REFERENCE_BATCH = 32  # the batch size Wu & He compare batch 2 against
WU_HE = (
    "Wu & He 2018, Table 2 (ResNet-50, ImageNet, images per GPU): BN 23.6% at 32 vs 34.7% at "
    "2; GN 24.1% vs 24.1%."
)


def _renorm_warmup(total_steps: int) -> RenormWarmup:
    """Ioffe 2017, Sec. 4: BN for 5k steps, d_max reached at 25k, r_max at 40k; we keep that
    shape on our shorter runs as fractions of training (5%, 15%, 25%: our choice)."""
    return RenormWarmup(
        start=total_steps // 20,
        r_max_step=total_steps * 25 // 100,
        d_max_step=total_steps * 15 // 100,
    )


def config(seeds: int, quick: bool, batch: int) -> TrainConfig:
    train_images = 4_000
    epochs = EPOCHS
    data = DataConfig(dataset="cifar10")
    if quick:
        train_images, epochs = 64, 1
        data = replace(data, train_subset=train_images, test_subset=200)
    total = epochs * (train_images // batch)
    model = ModelConfig(
        conv_channels=(16, 32),
        hidden=(64,),
        activation="relu",
        init="torch-default",
        norm=NormParams(
            group=GroupParams(groups=NORM_GROUPS),
            ghost=GhostParams(virtual_batch_size=min(GHOST_BATCH, batch)),
            renorm=RenormParams(warmup=_renorm_warmup(total)),
        ),
    )
    return TrainConfig(
        preset=f"{NAME}-b{batch}",
        model=model,
        data=data,
        optim=OptimConfig(name="sgd", lr=BASE_LR * batch / BASE_BATCH, momentum=0.9),
        norms=NORMS,
        seeds=seeds,
        batch_size=batch,
        epochs=epochs,
        eval_every=0,  # once per epoch
        checkpoint_every=max(1, total // 2),
    )


def cell_dir(out_dir: Path, batch: int) -> Path:
    return Path(out_dir) / f"batch{batch:03d}"


def _batch_sizes(out_dir: Path) -> tuple[int, ...]:
    """The batch sizes a results directory holds (all of them, or the quick run's)."""
    found = tuple(b for b in BATCH_SIZES if cell_dir(out_dir, b).is_dir())
    if not found:
        raise ResultsNotFoundError(f"DIR: {out_dir} holds no batch-size runs of {NAME}")
    return found


def run(out_dir: Path, seeds: int, quick: bool, ctx: RunContext) -> None:
    for batch in QUICK_BATCH_SIZES if quick else BATCH_SIZES:
        cfg = config(seeds, quick, batch)
        train_variants(f"{NAME} B={batch}", cfg, cell_dir(out_dir, batch), ctx, not quick)


def final_error(res, norm: str) -> np.ndarray:
    """(K,) test error after the last epoch, in percent."""
    _, acc = res.metric(norm, "test_accuracy")  # (K, T)
    return 100.0 * (1.0 - acc[:, -1])


def analyze(out_dir: Path) -> ExperimentResult:
    manifest = read_manifest(out_dir)
    sizes = _batch_sizes(out_dir)
    errors: dict[int, dict[str, np.ndarray]] = {}  # batch -> norm -> (K,)
    for batch in sizes:
        with Results(cell_dir(out_dir, batch)) as res:
            errors[batch] = {n: final_error(res, n) for n in NORMS}
            cfg = res.config("batch")
    section, rows = _section(out_dir, sizes, errors, cfg)
    return experiment_result(NAME, manifest, [section], rows)


def _section(out_dir: Path, sizes, errors, cfg: dict) -> Part:
    """cfg: the stored config of the largest batch size (the protocol's common fields)."""
    small, ref = sizes[0], REFERENCE_BATCH if REFERENCE_BATCH in sizes else sizes[-1]
    renorm = cfg["model"]["norm"]["renorm"]
    where = f"{NAME} (B={small} vs {ref})"
    rows, notes = [], []
    for claim_id, bn, base in (
        ("bn-small-batch-error", errors[small]["batch"], errors[ref]["batch"]),
        ("gn-small-batch-flat", errors[small]["group"], errors[ref]["group"]),
        ("gn-beats-bn-small-batch", errors[small]["batch"], errors[small]["group"]),
    ):
        r, n = scored(claim_id, where, bn, base, note="small CNN, CIFAR-10 subset")
        rows, notes = rows + r, notes + n
    grid = {LABELS[n]: np.stack([errors[b][n] for b in sizes], axis=1) for n in NORMS}
    files = grid_points(
        Path(out_dir) / "figures" / "error_vs_batch",
        sizes,
        grid,
        xlabel="batch size (examples per step, log scale)",
        ylabel="final test error (%)",
        title="Test error vs batch size (CIFAR-10 subset, small CNN)",
    )
    fig = ReportFigure.from_files(
        files, "Final test error vs batch size per norm: mean and 95% CI over seeds."
    )
    table = Table(
        "Final test error (%), mean ± 95% CI over seeds",
        ("batch size", *(LABELS[n] for n in NORMS)),
        [(str(b), *(fmt(errors[b][n]) for n in NORMS)) for b in sizes],
    )
    protocol = {
        **describe(cfg),
        "batch": ", ".join(map(str, sizes)) + " (one results directory each)",
        "optimizer": f"SGD, momentum 0.9, lr = {BASE_LR:g} x B / {BASE_BATCH} "
        "(linear scaling, Wu & He 2018 Sec. 4.1 after Goyal et al. 2017; our base lr)",
        "norms": f"{', '.join(LABELS[n] for n in NORMS)}; GroupNorm {NORM_GROUPS} groups; "
        f"Ghost BN virtual batch min({GHOST_BATCH}, B); Batch Renorm r_max "
        f"{renorm['r_max']:g}, d_max {renorm['d_max']:g} after "
        "a BN warm-up of 5% of the steps, d_max reached at 15%, r_max at 25%",
        **vs_source(
            "Wu & He 2018",
            [
                "a small CNN on 4,000 CIFAR-10 images, not ResNet-50 on ImageNet",
                "a fixed number of epochs at every batch size, few of them (CPU-sized)",
                "norms also in the fully connected layer",
                f"GroupNorm with {NORM_GROUPS} groups, not 32 (the CNN's layers are narrower)",
                "Batch Renorm's warm-up compressed to 5% / 15% / 25% of the run",
            ],
        ),
    }
    section = Section(
        title=f"{NAME}: test error vs batch size (Wu & He 2018, Fig. 1)",
        protocol=protocol,
        data_source=data_source("cifar10"),
        figures=[fig],
        tables=[table],
        notes=[WU_HE, *notes],
    )
    return section, rows


EXPERIMENT = register(
    Experiment(NAME, "Test error vs batch size for BN and its alternatives", run, analyze)
)
