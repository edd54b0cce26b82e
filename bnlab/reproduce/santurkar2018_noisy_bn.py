"""The noisy-BN part of a Santurkar setting (Sec. 2.1, Fig. 2): no BN, BN and BN + noise,
their measures, the scorecard rows, the noise-strength sweep and the figures.

The claims are about training, so their primary measure is the training accuracy over the
last 100 steps as trained (noise on, as the optimizer saw it). Test accuracy is secondary and
read with the noise off everywhere (`santurkar2018_noise_free`): the EMA test accuracy,
whose statistics absorbed the noise, is shown in the table only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bnlab.report import ReportFigure, Row, Scale, Table, check_margin, curve_band, percentile_bands
from bnlab.reproduce.common import NORM_LABELS, Results
from bnlab.reproduce.preregistered import trains_gate
from bnlab.reproduce.santurkar2018_noise import (
    MEASURES,
    network_measures,
    read_sweep,
    sweep_figure,
    sweep_protocol,
    sweep_table,
)
from bnlab.reproduce.santurkar2018_noise_free import PRECISE_IMAGES
from bnlab.reproduce.santurkar2018_rules import NoisyRules
from bnlab.reproduce.santurkar2018_steps import divergence_count, divergence_gate, gates
from bnlab.reproduce.santurkar2018_why import noise_sweep
from bnlab.reproduce.scoring import (
    FINAL_STEPS,
    diverged,
    final_train_loss,
    fmt,
    percentiles,
    scored,
)

NORMS = ("none", "batch", "batch-noisy")
TEST_TIME = (
    "the noise is added in training only; at test every layer normalizes with its EMA running "
    "statistics, which absorbed the noise of the layers before it. Primary: training accuracy "
    f"over the last {FINAL_STEPS} steps, as trained. Secondary: test accuracy after every BN "
    f"layer's statistics were re-estimated with the noise off (precise BN over "
    f"{PRECISE_IMAGES:,} training images in batches of the training size; BN re-estimated "
    "the same way; no BN as trained); the TRAINS gate reads this accuracy too. The EMA test "
    "accuracy is shown in the table"
)


def noisy_part(res: Results, tag: str, out: Path, rules: NoisyRules, sweep_dirs: Sequence[Path]):
    """(figures, tables, rows, protocol rows) of a noisy-BN setting; `sweep_dirs` holds the
    noise-strength sweep's trained directories (possibly none)."""
    measures = {n: network_measures(res, n) for n in NORMS}
    flags = {n: diverged(res, n) for n in NORMS}
    sweep = read_sweep(res, sweep_dirs)
    rows = [
        _row(rules.like_bn, "train", "batch", measures, flags, sweep),
        _row(rules.beats_none, "train", "none", measures, flags, sweep),
        _row(rules.less_stable, "drift", "batch", measures, flags, sweep),
        _row(rules.like_bn_test, "noise_free", "batch", measures, flags, sweep),
        _row(rules.beats_none_test, "noise_free", "none", measures, flags, sweep),
    ]
    tables = [_table(res, measures, flags)]
    figures = [*_figures(res, tag, out)]
    protocol = {"test time": TEST_TIME}
    if sweep_dirs:
        references = {NORM_LABELS[n]: measures[n] for n in ("batch", "none")}
        tables.append(sweep_table(sweep, references))
        trained = {label: m["train"] for label, m in references.items()}
        figures.append(sweep_figure(sweep, trained, out / f"{out.name}_noise_sweep", tag))
        protocol["noise sweep"] = sweep_protocol(sweep_dirs)
    return figures, tables, rows, protocol


def _row(rule, key: str, base: str, measures: dict, flags: dict, sweep) -> Row:
    """The row of `rule` on measure `key`, BN + noise against `base`, with the sweep."""
    noisy, reference = measures["batch-noisy"][key], measures[base][key]
    pair = {NORM_LABELS[n]: flags[n] for n in ("batch-noisy", base)}
    gate = gates(_trains(measures, base), divergence_gate(pair))
    if rule.scale is Scale.DIFFERENCE:
        check_margin(rule, reference)
    diagnostic = noise_sweep(rule, sweep.scales, sweep.of(key), reference)
    return scored(rule, noisy, reference, "paired by seed", pair, gate, [diagnostic])


def _trains(measures: dict, base: str) -> str:
    """TRAINS on the test accuracy with the noise off (BN + noise's EMA statistics absorbed
    its noise, so its EMA accuracy would understate how well it learned)."""
    means = [measures[n]["noise_free"] for n in ("batch-noisy", base)]
    if any(np.isnan(m).all() for m in means):
        return "test accuracy with the noise off not measured (results older than the pass)"
    return trains_gate(*(float(np.nanmean(m)) for m in means))


def _table(res: Results, measures: dict, flags: dict) -> Table:
    digits = {"drift": 3}
    rows = []
    for n in NORMS:
        cells = [fmt(measures[n][k], digits.get(k, 2)) for k in MEASURES]
        loss = fmt(final_train_loss(res, n), 3)
        rows.append((NORM_LABELS[n], *cells, loss, divergence_count(flags[n])))
    return Table(
        "Per-seed measures, mean ± 95% CI over seeds",
        ("network", *MEASURES.values(), f"training loss (last {FINAL_STEPS} steps)", "diverged"),
        rows,
    )


def _figures(res: Results, tag: str, out: Path):
    yield _train_accuracy_figure(res, tag, out)
    steps, _ = res.metric("batch", "test_accuracy")
    curves = {NORM_LABELS[n]: res.metric(n, "test_accuracy")[1] * 100 for n in NORMS}
    files = curve_band(
        out / f"{out.name}_accuracy",
        steps,
        curves,
        xlabel="training step (updates)",
        ylabel="test accuracy (%)",
        hint="Secondary: the noise is off here but the EMA statistics absorbed it; compare "
        "with the training accuracy above.",
    )
    caption = f"{tag}: test accuracy with the EMA statistics (Fig. 2, left)"
    yield ReportFigure.from_files(files, files.caption(caption))
    hooks = res.config("batch")["hooks"]
    for recorded in hooks["layers"]:
        groups = {}
        for n in NORMS:
            x, q = percentiles(res, n, recorded, unit=0)
            groups[NORM_LABELS[n]] = q
        files = percentile_bands(
            out / f"{out.name}_{recorded}_distribution",
            x,
            groups,
            xlabel="training step (updates)",
            ylabel=f"input to ReLU, {recorded} channel 0 (pre-activation, unitless)",
            percentiles=hooks["percentiles"],
            hint="Compare how much each panel's percentile lines move over training.",
        )
        caption = (
            f"{tag}: distribution of one channel's activation input over training, layer "
            f"{recorded}, seed-mean percentiles (Fig. 2, right)"
        )
        yield ReportFigure.from_files(files, files.caption(caption))


def _train_accuracy_figure(res: Results, tag: str, out: Path) -> ReportFigure:
    """Training accuracy as trained, averaged over blocks of FINAL_STEPS logged steps."""
    curves, ends = {}, None
    for n in NORMS:
        steps, acc = res.train_series(n, "train_accuracy")  # (T,), (seeds, T)
        blocks = max(1, acc.shape[1] // FINAL_STEPS)
        used = blocks * FINAL_STEPS if acc.shape[1] >= FINAL_STEPS else acc.shape[1]
        width = used // blocks
        # (seeds, blocks): the mean of each block of `width` steps, the last block ending at T
        curves[NORM_LABELS[n]] = 100.0 * acc[:, -used:].reshape(len(acc), blocks, width).mean(2)
        ends = steps[-used:][width - 1 :: width]
    files = curve_band(
        out / f"{out.name}_train_accuracy",
        ends,
        curves,
        xlabel="training step (updates)",
        ylabel=f"training accuracy (%, mean of {FINAL_STEPS}-step blocks)",
        hint="Compare BN + noise's band with BN's and with no BN's at the end: the claims' "
        "measure.",
    )
    caption = f"{tag}: training accuracy as trained, noise on"
    return ReportFigure.from_files(files, files.caption(caption))
