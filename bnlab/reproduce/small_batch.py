"""`small-batch`: final test error vs batch size for no norm, BN, GroupNorm, LayerNorm, Batch
Renorm and Ghost BN (Wu & He 2018, "Group Normalization", Fig. 1 / Table 2).

Wu & He train ResNet-50 on ImageNet with 2 to 32 images per GPU and find BN's error grows as
the batch shrinks (23.6% at 32, 34.7% at 2) while GN's stays flat (24.1% at both). We ask the
same question of a small all-convolutional CNN on the CIFAR-10 subset present here, at every
batch size of BATCH_SIZES, each batch size one results directory with one stack per norm.
Ioffe 2017 asks the same of Batch Renormalization, so its claim is scored here too.

As in Wu & He's ResNet, the norms sit only after convolutions, where a batch of B images
gives B x H x W values per channel: even at B = 2 the statistics are over hundreds of values
(a norm in a fully connected layer would see 2 values, and x_hat = ±1 exactly). The net has
no hidden fully connected layer: conv 16/32/64, each conv -> norm -> ReLU -> 2x2 max-pool,
then a linear classifier.

Departures from the paper, all stated in the report: a small CNN and 4,000 training images
instead of ResNet-50 on ImageNet; a fixed number of epochs (EPOCHS) at every batch size; the
learning rate scaled linearly with the batch size, lr = BASE_LR * B / BASE_BATCH, as Wu & He
do (0.1 * B / 32, after Goyal et al. 2017) but from our own base; GN with NORM_GROUPS groups
(Wu & He: 32, too many for 16-channel layers).
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
from bnlab.report import ReportFigure, Role, Rule, Scale, Section, Table, claims, grid_points
from bnlab.reproduce import preregistered as pre
from bnlab.reproduce.common import (
    Part,
    Results,
    data_source,
    describe_runs,
    experiment_result,
    read_manifest,
    stored_configs,
    train_variants,
    vs_source,
)
from bnlab.reproduce.experiment import Experiment, ExperimentResult, Seeds, register
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
SMALL_BATCH = 2  # the smallest batch of Wu & He's Table 2 (and ours for Batch Renorm)
CONV_CHANNELS = (16, 32, 64)  # conv blocks; no hidden fully connected layer
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
        conv_channels=CONV_CHANNELS,
        hidden=(),
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
        seed=pre.first_seed(NAME),
        batch_size=batch,
        epochs=epochs,
        eval_every=0,  # once per epoch
        checkpoint_every=max(1, total // 2),
    )


def _setting() -> str:
    return f"{NAME}/B{SMALL_BATCH}-vs-B{REFERENCE_BATCH}"


def rules(seeds: Seeds) -> tuple[Rule, ...]:
    """Errors in percentage points: BN at B=2 vs B=32; GN likewise; BN vs GN and BN vs Batch
    Renorm at B=2. Every row needs the network without a norm to train at both sizes."""
    n, where, pp = pre.seeds_of(seeds, NAME), _setting(), Scale.DIFFERENCE
    gates = (pre.CONTROL_TRAINS,)

    def rule(claim, margin, treatment, comparison) -> Rule:
        return Rule(
            claim,
            where,
            pre.FINAL_ERROR,
            pp,
            margin,
            n,
            gates,
            Role.PRIMARY,
            comparison,
            treatment,
            first_seed=pre.first_seed(NAME),
        )

    return (
        rule(claims.BN_SMALL_BATCH_ERROR, 1.0, "BN at B=2", "BN at B=32"),
        rule(claims.GN_SMALL_BATCH_FLAT, 2.0, "GN at B=2", "GN at B=32"),
        rule(claims.GN_BEATS_BN_SMALL_BATCH, 1.0, "BN at B=2", "GN at B=2"),
        rule(claims.RENORM_BEATS_BN_SMALL_BATCH, 1.0, "BN at B=2", "Batch Renorm at B=2"),
    )


def control_gate(errors: dict[int, dict[str, np.ndarray]], sizes) -> str:
    """CONTROL_TRAINS: '' if the network without a norm trains at every size compared."""
    accuracy = [100.0 - float(np.nanmean(errors[b]["none"])) for b in sizes]
    return pre.trains_gate(*accuracy)


def cell_dir(out_dir: Path, batch: int) -> Path:
    return Path(out_dir) / f"batch{batch:03d}"


def _batch_sizes(out_dir: Path) -> tuple[int, ...]:
    """The batch sizes a results directory holds (all of them, or the quick run's)."""
    found = tuple(b for b in BATCH_SIZES if cell_dir(out_dir, b).is_dir())
    if not found:
        raise ResultsNotFoundError(f"DIR: {out_dir} holds no batch-size runs of {NAME}")
    return found


def run(out_dir: Path, seeds: Seeds, quick: bool, ctx: RunContext) -> None:
    for batch in QUICK_BATCH_SIZES if quick else BATCH_SIZES:
        cfg = config(pre.seeds_of(seeds, NAME), quick, batch)
        train_variants(f"{NAME} B={batch}", cfg, cell_dir(out_dir, batch), ctx, not quick)


def final_error(res, norm: str) -> np.ndarray:
    """(K,) test error after the last epoch, in percent."""
    _, acc = res.metric(norm, "test_accuracy")  # (K, T)
    return 100.0 * (1.0 - acc[:, -1])


def analyze(out_dir: Path) -> ExperimentResult:
    manifest = read_manifest(out_dir)
    sizes = _batch_sizes(out_dir)
    errors: dict[int, dict[str, np.ndarray]] = {}  # batch -> norm -> (K,)
    configs: list[dict] = []
    for batch in sizes:
        with Results(cell_dir(out_dir, batch)) as res:
            errors[batch] = {n: final_error(res, n) for n in NORMS}
            configs += stored_configs(res)
    section, rows = _section(out_dir, sizes, errors, configs, rules(manifest.seeds))
    return experiment_result(NAME, manifest, [section], rows)


def _section(out_dir: Path, sizes, errors, configs: list, declared: tuple[Rule, ...]) -> Part:
    """configs: the stored config of every run, every batch size."""
    renorm = configs[-1]["model"]["norm"]["renorm"]  # the same at every batch size
    small, ref = sizes[0], REFERENCE_BATCH if REFERENCE_BATCH in sizes else sizes[-1]
    bn_error, gn_flat, gn_beats, renorm_beats = declared
    gate = control_gate(errors, (small, ref))
    note = f"all-conv CNN, CIFAR-10 subset; B={small} vs {ref}"
    rows = [
        scored(rule, a, b, note, gate_failed=gate)
        for rule, a, b in (
            (bn_error, errors[small]["batch"], errors[ref]["batch"]),
            (gn_flat, errors[small]["group"], errors[ref]["group"]),
            (gn_beats, errors[small]["batch"], errors[small]["group"]),
            (renorm_beats, errors[small]["batch"], errors[small]["renorm"]),
        )
    ]
    grid = {LABELS[n]: np.stack([errors[b][n] for b in sizes], axis=1) for n in NORMS}
    files = grid_points(
        Path(out_dir) / "figures" / "error_vs_batch",
        sizes,
        grid,
        xlabel="batch size (examples per step, log scale)",
        ylabel="final test error (%)",
        title="Test error vs batch size (CIFAR-10 subset, all-conv CNN)",
        hint="Follow each norm's line from the right (large batches) to the left (small): "
        "a flat line means the error does not depend on the batch size.",
    )
    fig = ReportFigure.from_files(
        files,
        files.caption("Final test error vs batch size per norm: mean and 95% CI over seeds"),
    )
    table = Table(
        "Final test error (%), mean ± 95% CI over seeds",
        ("batch size", *(LABELS[n] for n in NORMS)),
        [(str(b), *(fmt(errors[b][n]) for n in NORMS)) for b in sizes],
    )
    protocol = {
        **describe_runs(configs),
        "lr rule": f"lr = {BASE_LR:g} x B / {BASE_BATCH} (linear scaling, Wu & He 2018 Sec. 4.1 "
        "after Goyal et al. 2017; our base lr); one results directory per batch size",
        "norms": f"{', '.join(LABELS[n] for n in NORMS)}; GroupNorm {NORM_GROUPS} groups; "
        f"Ghost BN virtual batch min({GHOST_BATCH}, B); Batch Renorm r_max "
        f"{renorm['r_max']:g}, d_max {renorm['d_max']:g} after "
        "a BN warm-up of 5% of the steps, d_max reached at 15%, r_max at 25%",
        **vs_source(
            "Wu & He 2018",
            [
                "a 3-conv CNN without residual connections on 4,000 CIFAR-10 images, not "
                "ResNet-50 on ImageNet (norms after convolutions only, as in a ResNet)",
                "a fixed number of epochs at every batch size, few of them (CPU-sized)",
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
        notes=[WU_HE, pre.confirmation_note(NAME)],
        configs=configs,
    )
    return section, rows


EXPERIMENT = register(
    Experiment(
        NAME,
        "Test error vs batch size for BN and its alternatives",
        run,
        analyze,
        rules,
        pre.confirmation(NAME),
    )
)
