"""`matrix`: the optimization-study project's 2 datasets x 2 architectures, with and without BN.

Fashion-MNIST and CIFAR-10 (here the 5,000-image subset) x the project's MLP 512-256-128 and
ConvMLP (conv 32/64 + the same MLP), engine presets `optstudy-mlp` / `optstudy-convmlp`:
SGD lr 0.01 momentum 0.9, batch 128 (the project's "typically 128"), 5 epochs. Logged at step
level (loss, accuracy, global and per-layer gradient norm, every step), at epoch level (test
loss and accuracy after each epoch), and the input distribution of every activation layer
and of its BN layer (mean, std, percentiles of 3 units and a histogram) every HOOK_EVERY
steps. The histograms give the project's activation-distribution figure: per layer, the
distribution before and after BN, and without BN, early, midway and late in training. Each
cell is its own subdirectory."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from bnlab.engine import HookConfig, RunContext, TrainConfig, get_preset
from bnlab.errors import ResultsNotFoundError
from bnlab.report import ReportFigure, Rule, Section, curve_band, histogram_grid
from bnlab.reproduce import preregistered as pre
from bnlab.reproduce.common import (
    FIGURE_ORDER,
    NORM_LABELS,
    RUNS_VS_ONE,
    Part,
    Results,
    analyze_dirs,
    data_source,
    describe_runs,
    stored_configs,
    train_variants,
    vs_source,
)
from bnlab.reproduce.experiment import Experiment, ExperimentResult, Seeds, register
from bnlab.reproduce.scoring import (
    comparison_table,
    fmt,
    speed_rows,
    stability_rows,
)

NAME = "matrix"
DATASETS = ("fashion-mnist", "cifar10")
ARCHS = {"mlp": "optstudy-mlp", "convmlp": "optstudy-convmlp"}
HOOK_EVERY = 50  # steps between activation-distribution recordings
SOURCE = "optimization-study project"
DIFFERENCES = (
    "optimizer: SGD, lr 0.01, momentum 0.9 (our choice); the project says 'standard SGD/Adam' "
    "and gives no learning rate",
    "length: 5 epochs (our choice); the project does not state it",
    "CIFAR-10: the subset present, 4,000 train / 1,000 test images; the project uses the full set",
    "ConvMLP: each conv is 3x3, then BN, ReLU and 2x2 max-pooling (our reading); the project "
    "gives only the channel counts 32, 64",
    "BN: bnlab's engine BN, per channel after conv layers; the project has its own "
    "from-scratch BatchNorm1D and does not state which BN its CNN uses",
    "inputs standardized per channel, PyTorch's default init: the project states neither",
    "the same as the project: MLP 512-256-128 (ReLU), batch 128, step- and epoch-level logging",
    RUNS_VS_ONE,
)
HIST_BINS, HIST_RANGE = 100, 5.0  # histogram bins of width 0.1 over [-5, 5]


def cell_dir(out_dir: Path, dataset: str, arch: str) -> Path:
    return Path(out_dir) / f"{dataset}_{arch}"


def setting(dataset: str, arch: str) -> str:
    return f"{NAME}/{dataset}/{arch}"


SETTINGS = tuple(setting(d, a) for d in DATASETS for a in ARCHS)
# MLP cells train as cheap stacks (MLP_SEEDS); ConvMLP cells cost minutes per seed
# (CONV_SEEDS, or the power rule's count where the pilot left an effect undecided)
PLANNED_SEEDS = {
    s: pre.MLP_SEEDS if s.endswith("/mlp") else pre.POWER_SEEDS.get(s, pre.CONV_SEEDS)
    for s in SETTINGS
}


def rules(seeds: Seeds) -> tuple[Rule, ...]:
    """Per cell: final accuracy, loss smoothness, gradient-norm CV."""
    out = []
    for where in SETTINGS:
        n = pre.seeds_of(seeds, where)
        out += [
            pre.accuracy_rule(where, n),
            pre.smoothness_rule(where, n),
            pre.grad_cv_rule(where, n),
        ]
    return tuple(out)


def _cell_rules(seeds: Seeds, where: str) -> tuple[Rule, Rule, Rule]:
    accuracy, smooth, cv = (r for r in rules(seeds) if r.setting == where)
    return accuracy, smooth, cv


def config(seeds: int, quick: bool, dataset: str, arch: str) -> TrainConfig:
    cfg = get_preset(ARCHS[arch])
    layers = tuple(f"act{i}" for i in range(1, len(cfg.model.conv_channels + cfg.model.hidden) + 1))
    hooks = HookConfig(
        layers=layers,
        units=(0, 1, 2),
        every=HOOK_EVERY,
        histogram_bins=HIST_BINS,
        hist_range=HIST_RANGE,
        norm_inputs=True,
    )
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


def run(out_dir: Path, seeds: Seeds, quick: bool, ctx: RunContext) -> None:
    for dataset in DATASETS:
        for arch in ARCHS:
            cfg = config(pre.seeds_of(seeds, setting(dataset, arch)), quick, dataset, arch)
            out = cell_dir(out_dir, dataset, arch)
            train_variants(f"{NAME} {dataset}/{arch}", cfg, out, ctx, parallel=not quick)


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
    """Std of each layer's input before BN (the no-BN network has no BN: its activation input
    is the same point) and after it, at the last recording."""
    lines = []
    for layer in res.config("batch")["hooks"]["layers"]:
        before = fmt(res.metric("batch", f"norm_in/{layer}/std")[1][:, -1], 3)
        after = fmt(res.metric("batch", f"act/{layer}/std")[1][:, -1], 3)
        none = fmt(res.metric("none", f"act/{layer}/std")[1][:, -1], 3)
        lines.append((f"std of {layer}'s pre-activation before BN, at the end", before, none))
        lines.append((f"std of {layer}'s input after BN, at the end", after, "— (no BN layer)"))
    return lines


def _histograms(res: Results, norm: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(recording steps (T,), seed-mean fraction of values per bin (T, bins)) of `name`
    ("act/act1" or "norm_in/act1")."""
    bins = res.config(norm)["hooks"]["histogram_bins"]
    cols = [res.metric(norm, f"{name}/hist/{b}") for b in range(bins)]  # each (T,), (K, T)
    return cols[0][0], np.stack([v for _, v in cols], axis=-1).mean(axis=0)  # (T, bins)


def _distribution_figure(res: Results, stem: Path, label: str) -> ReportFigure:
    """Per layer: the no-BN network's activation input, and the BN network's before and after
    BN, at the first, middle and last recording (the project's activation-distribution figure)."""
    hooks = res.config("batch")["hooks"]
    edges = np.linspace(-hooks["hist_range"], hooks["hist_range"], hooks["histogram_bins"] + 1)
    panels = {}
    for layer in hooks["layers"]:
        sources = {
            "no BN": ("none", f"act/{layer}"),
            "BN, before BN": ("batch", f"norm_in/{layer}"),
            "BN, after BN": ("batch", f"act/{layer}"),
        }
        panels[layer] = {}
        for column, (norm, name) in sources.items():
            steps, hist = _histograms(res, norm, name)  # (T,), (T, bins)
            shown = sorted({0, len(steps) // 2, len(steps) - 1})  # early, midway, late
            panels[layer][column] = {f"step {steps[t]:,}": hist[t] for t in shown}
    n = len(res.members("batch"))
    files = histogram_grid(
        stem,
        edges,
        panels,
        xlabel="pre-activation value (unitless)",
        title=f"{label} (mean of {n} seeds)",
        hint="In each row, compare how much the dotted (early), dashed (midway) and solid "
        "(late) lines shift and widen: without BN, and before and after the BN layer.",
    )
    caption = (
        f"{label}: distribution of each layer's pre-activation (the input of its activation "
        "function) without BN, and with BN before and after the BN layer, early, midway and "
        f"late in training; fraction of values per bin averaged over {n} seeds, as a density "
        f"over [-{hooks['hist_range']:g}, {hooks['hist_range']:g}] (values outside are not drawn)."
    )
    return ReportFigure.from_files(files, files.caption(caption))


def _figures(res: Results, fig_dir: Path, label: str) -> list[ReportFigure]:
    evals, _ = res.metric("batch", "test_accuracy")
    acc = {NORM_LABELS[n]: 100.0 * res.metric(n, "test_accuracy")[1] for n in FIGURE_ORDER}
    fig_acc = curve_band(
        fig_dir / "test_accuracy",
        evals,
        acc,
        xlabel="training step (updates; one point per evaluation)",
        ylabel="test accuracy (%)",
        title=label,
        hint="Compare the bands' vertical gap early in training and at the end.",
    )
    steps, _ = res.train_series("batch", "train_loss")
    loss = {NORM_LABELS[n]: res.train_series(n, "train_loss")[1] for n in FIGURE_ORDER}
    fig_loss = curve_band(
        fig_dir / "train_loss",
        steps,
        loss,
        xlabel="training step (updates)",
        ylabel="training loss (cross-entropy, nats)",
        title=label,
        hint="Compare the lines' level and how much each jitters from step to step.",
    )
    return [
        ReportFigure.from_files(
            fig_acc, fig_acc.caption(f"{label}: test accuracy per evaluation (epoch)")
        ),
        ReportFigure.from_files(
            fig_loss, fig_loss.caption(f"{label}: training loss at every step")
        ),
        _distribution_figure(res, fig_dir / "activation_distributions", label),
    ]


def _cell(res: Results, out: Path, seeds: Seeds, dataset: str, arch: str) -> Part:
    label = f"{dataset} / {arch}"
    accuracy, smooth, cv = _cell_rules(seeds, setting(dataset, arch))
    rows, acc_lines, notes = speed_rows(res, accuracy)
    stab_rows, stab_lines = stability_rows(res, smooth, cv)
    _, ep_loss = _epoch_losses(res, "batch")
    _, ep_loss_none = _epoch_losses(res, "none")
    lines = [
        *acc_lines,
        ("last-epoch mean training loss", fmt(ep_loss[:, -1], 4), fmt(ep_loss_none[:, -1], 4)),
        *stab_lines,
        *_layer_std_lines(res),
    ]
    section = Section(
        title=f"{NAME}: {label}",
        protocol={**describe_runs(stored_configs(res)), **vs_source(SOURCE, DIFFERENCES)},
        data_source=data_source(dataset),
        figures=_figures(res, out / "figures", label),
        tables=[comparison_table(f"{label}: mean ± 95% CI over seeds", lines)],
        notes=notes,
        configs=stored_configs(res),
    )
    return section, rows + stab_rows


def analyze(out_dir: Path) -> ExperimentResult:
    cells = {cell_dir(out_dir, d, a): (d, a) for d in DATASETS for a in ARCHS}
    for out in cells:
        if not out.is_dir():
            raise ResultsNotFoundError(f"DIR: {out} is missing; rerun `bnlab reproduce {NAME}`")
    return analyze_dirs(
        NAME, out_dir, lambda res, out, seeds: _cell(res, out, seeds, *cells[out]), list(cells)
    )


EXPERIMENT = register(
    Experiment(
        NAME,
        "Optimization-study matrix: 2 datasets x 2 architectures",
        run,
        analyze,
        rules,
        PLANNED_SEEDS,
    )
)
