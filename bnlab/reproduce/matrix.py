"""`matrix`: the optimization-study seed's 2 datasets x 2 architectures, with and without BN.

Fashion-MNIST and CIFAR-10 (here the 5,000-image subset) x the seed's MLP 512-256-128 and
ConvMLP (conv 32/64 + the same MLP), engine presets `optstudy-mlp` / `optstudy-convmlp`:
SGD lr 0.01 momentum 0.9, batch 128 (the seed's "typically 128"), 5 epochs. Logged at step
level (loss, accuracy, global and per-layer gradient norm, every step), at epoch level (test
loss and accuracy after each epoch), and the input distribution of every activation layer
(mean, std, percentiles of 3 units and a histogram) every HOOK_EVERY steps. Each cell is its
own subdirectory."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from bnlab.engine import HookConfig, TrainConfig, get_preset
from bnlab.report import ReportFigure, Section, curve_band
from bnlab.reproduce.common import (
    FIGURE_ORDER,
    NORM_LABELS,
    Part,
    Results,
    analyze_dirs,
    data_source,
    describe,
    train_variants,
)
from bnlab.reproduce.experiment import Experiment, ExperimentResult, register
from bnlab.reproduce.scoring import comparison_table, final_accuracy, fmt, scored, stability_claims

NAME = "matrix"
DATASETS = ("fashion-mnist", "cifar10")
ARCHS = {"mlp": "optstudy-mlp", "convmlp": "optstudy-convmlp"}
HOOK_EVERY = 50  # steps between activation-distribution recordings
OTHER_TASK = "the source's number is the reproduction seed's MNIST result, not this task"


def cell_dir(out_dir: Path, dataset: str, arch: str) -> Path:
    return Path(out_dir) / f"{dataset}_{arch}"


def config(seeds: int, quick: bool, dataset: str, arch: str) -> TrainConfig:
    cfg = get_preset(ARCHS[arch])
    layers = tuple(f"act{i}" for i in range(1, len(cfg.model.conv_channels + cfg.model.hidden) + 1))
    hooks = HookConfig(layers=layers, units=(0, 1, 2), every=HOOK_EVERY, histogram_bins=20)
    cfg = replace(cfg, preset=f"{NAME}-{dataset}-{arch}", data=replace(cfg.data, dataset=dataset))
    cfg = replace(cfg, hooks=hooks, seeds=seeds)
    if quick:  # a few steps on a 500-image test subset
        cfg = replace(
            cfg,
            epochs=0,
            steps=12,
            eval_every=6,
            checkpoint_every=12,
            hooks=replace(hooks, every=6),
            data=replace(cfg.data, test_subset=500),
        )
    return cfg


def run(out_dir: Path, seeds: int, quick: bool, progress: bool) -> None:
    for dataset in DATASETS:
        for arch in ARCHS:
            cfg = config(seeds, quick, dataset, arch)
            out = cell_dir(out_dir, dataset, arch)
            train_variants(f"{NAME} {dataset}/{arch}", cfg, out, progress, parallel=not quick)


def _epoch_losses(res: Results, norm: str) -> tuple[np.ndarray, np.ndarray]:
    """(eval steps (E,), mean training loss over each evaluation interval (K, E))."""
    steps, loss = res.train_series(norm, "train_loss")  # (T,), (K, T)
    evals, _ = res.metric(norm, "test_accuracy")
    starts = np.concatenate([[0], evals[:-1]])  # interval i is (starts[i], evals[i]]
    cols = [
        loss[:, (steps > a) & (steps <= b)].mean(axis=1) for a, b in zip(starts, evals, strict=True)
    ]
    return evals, np.stack(cols, axis=1)


def _layer_std_lines(res: Results) -> list[tuple[str, str, str]]:
    """Std of each activation layer's input at the last recording, BN vs no BN."""
    lines = []
    for layer in res.config("batch")["hooks"]["layers"]:
        cells = [fmt(res.metric(n, f"act/{layer}/std")[1][:, -1], 3) for n in ("batch", "none")]
        lines.append((f"std of {layer} input at the end", *cells))
    return lines


def _figures(res: Results, fig_dir: Path, label: str) -> list[ReportFigure]:
    evals, _ = res.metric("batch", "test_accuracy")
    acc = {NORM_LABELS[n]: 100.0 * res.metric(n, "test_accuracy")[1] for n in FIGURE_ORDER}
    fig_acc = curve_band(
        fig_dir / "test_accuracy",
        evals,
        acc,
        xlabel="training step (one point per evaluation)",
        ylabel="test accuracy (%)",
        title=label,
    )
    steps, _ = res.train_series("batch", "train_loss")
    loss = {NORM_LABELS[n]: res.train_series(n, "train_loss")[1] for n in FIGURE_ORDER}
    fig_loss = curve_band(
        fig_dir / "train_loss",
        steps,
        loss,
        xlabel="training step",
        ylabel="training loss",
        title=label,
    )
    return [
        ReportFigure.from_files(fig_acc, f"{label}: test accuracy per evaluation (epoch)."),
        ReportFigure.from_files(fig_loss, f"{label}: training loss at every step."),
    ]


def _cell(res: Results, out: Path, dataset: str, arch: str) -> Part:
    label = f"{dataset} / {arch}"
    where = f"{NAME} ({label})"
    acc = {n: final_accuracy(res, n) for n in ("batch", "none")}
    rows, notes = scored("bn-final-accuracy", where, acc["batch"], acc["none"], note=OTHER_TASK)
    stab_rows, stab_notes, stab_lines = stability_claims(res, where)
    _, ep_loss = _epoch_losses(res, "batch")
    _, ep_loss_none = _epoch_losses(res, "none")
    lines = [
        ("final test accuracy (%)", fmt(acc["batch"]), fmt(acc["none"])),
        ("last-epoch mean training loss", fmt(ep_loss[:, -1], 4), fmt(ep_loss_none[:, -1], 4)),
        *stab_lines,
        *_layer_std_lines(res),
    ]
    section = Section(
        title=f"{NAME}: {label}",
        protocol=describe(res.config("batch")),
        data_source=data_source(dataset),
        figures=_figures(res, out / "figures", label),
        tables=[comparison_table(f"{label}: mean ± 95% CI over seeds", lines)],
        notes=[*notes, *stab_notes],
    )
    return section, rows + stab_rows


def analyze(out_dir: Path) -> ExperimentResult:
    cells = {cell_dir(out_dir, d, a): (d, a) for d in DATASETS for a in ARCHS}
    for out in cells:
        if not out.is_dir():
            raise FileNotFoundError(f"DIR: {out} is missing; rerun `bnlab reproduce {NAME}`")
    return analyze_dirs(NAME, out_dir, lambda res, out: _cell(res, out, *cells[out]), list(cells))


EXPERIMENT = register(
    Experiment(NAME, "Optimization-study matrix: 2 datasets x 2 architectures", run, analyze)
)
