"""The landscape part of a Santurkar setting (Sec. 3.1, Fig. 4): figures, scorecard rows.

Every landscape measure is recorded per seed at each probed step, (seeds, T) per network; a
row is log2(BN / no BN) of each seed's mean over a selection of those steps
(`santurkar2018_steps`): the declared one (both networks train), and, exploratory, every
step and matched training loss. The ℓ2 rows (gradient change, β-smoothness) carry their
scale-free twin and the gradient-norm ratio over the same steps, on every row
(`santurkar2018_why`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from bnlab.report import ReportFigure, Row, curve_band, range_band
from bnlab.reproduce.common import NORM_LABELS, Results
from bnlab.reproduce.santurkar2018_rules import LandscapeRules
from bnlab.reproduce.santurkar2018_steps import (
    LANDSCAPE_ORDER,
    Steps,
    both_train_steps,
    divergence_gate,
    every_step,
    gates,
    matched_loss,
    train_loss_at,
)
from bnlab.reproduce.santurkar2018_why import (
    BETA,
    CHANGE,
    TWIN_GRADIENT,
    gradient_scale,
    log2_ratio,
    twin,
)
from bnlab.reproduce.scoring import divergence, scored

# The stored metric of each landscape claim, in `santurkar2018_rules.LANDSCAPE`'s order.
CLAIM_METRICS = ("loss_variation", "grad_change_max", "beta_smoothness")
RECORDED = (*CLAIM_METRICS, "grad_norm", "loss")


def landscape_values(res: Results) -> dict[str, dict[str, np.ndarray]]:
    """metric -> network -> (seeds, T) at the probed steps, with two derived per step:
    "relative" (the gradient change / ||g||) and "per_loss" (loss variation / loss)."""
    values = {m: {n: res.metric(n, f"landscape/{m}")[1] for n in LANDSCAPE_ORDER} for m in RECORDED}
    values["relative"] = {
        n: values["grad_change_max"][n] / values["grad_norm"][n] for n in LANDSCAPE_ORDER
    }
    values["per_loss"] = {
        n: values["loss_variation"][n] / values["loss"][n] for n in LANDSCAPE_ORDER
    }
    return values


def landscape_rows(res: Results, rules: LandscapeRules) -> list[Row]:
    """Every landscape row of a setting: the declared rules, then the exploratory ones."""
    probed, _ = res.metric("batch", "landscape/loss_variation")
    values = landscape_values(res)
    seeds = values["loss"]["batch"].shape[0]
    flags = divergence(res, LANDSCAPE_ORDER)
    declared = both_train_steps(res, probed)
    matched = matched_loss(*(train_loss_at(res, n, probed) for n in LANDSCAPE_ORDER))
    rows = []
    for triple, steps in (
        (rules.both_train, declared),
        (rules.all_steps, every_step(seeds, probed)),
        (rules.matched, matched),
    ):
        for rule, metric in zip(triple, CLAIM_METRICS, strict=True):
            rows.append(landscape_row(rule, metric, steps, values, flags))
    rows.append(landscape_row(rules.per_loss, "per_loss", declared, values, flags))
    return rows


def landscape_row(rule, metric: str, steps: Steps, values: dict, flags: dict) -> Row:
    """The row of `rule` on `metric` of `values` (`landscape_values`) over `steps`; `flags`
    maps each network's label to its (seeds,) diverged flags. An ℓ2 row gets its
    diagnostics, whatever its verdict."""
    bn, base = steps.means(values[metric]["batch"], values[metric]["none"])
    gate = gates(steps.gate_failed, divergence_gate(flags))
    row = scored(rule, bn, base, f"paired by seed; {steps.label}", flags, gate)
    if metric not in ("grad_change_max", "beta_smoothness"):
        return row
    relative = steps.means(values["relative"]["batch"], values["relative"]["none"])
    norm = steps.means(values["grad_norm"]["batch"], values["grad_norm"]["none"])
    twin_row = twin(rule, TWIN_GRADIENT, *relative, "the max gradient change over the grid / ||g||")
    kind = BETA if metric == "beta_smoothness" else CHANGE
    scale = gradient_scale(rule, row, twin_row.effect, log2_ratio(*norm), kind)
    return replace(row, diagnostics=(twin_row, scale))


STEP = "training step (updates)"
RANGES = (  # stem, low and high metric, axis label, figure, what to look at
    (
        "loss",
        "loss_min",
        "loss_max",
        "loss along the gradient (cross-entropy, nats)",
        "4a",
        "Compare the bands' heights: a narrower band is a loss that varies less along the step.",
    ),
    (
        "grad",
        "grad_change_min",
        "grad_change_max",
        "ℓ2 gradient change (gradient-norm units, log scale)",
        "4b",
        "Compare the bands' heights; BN also changes ||g|| itself, which the last figure "
        "divides out.",
    ),
)
CURVES = (  # stem, metric (None: change / ||g||), axis label, caption, what to look at
    (
        "beta",
        "beta_smoothness",
        "effective β-smoothness (gradient change per unit distance)",
        "effective β-smoothness (Fig. 4c)",
        "Compare the lines' levels: lower is smoother along the step.",
    ),
    (
        "grad_relative",
        None,
        "max gradient change / ||g|| (unitless)",
        "gradient change relative to ||g|| (scale-free)",
        "Compare with the ℓ2 gradient change: what is left once the gradient's scale is "
        "divided out.",
    ),
)


def landscape_figures(res: Results, tag: str, out: Path) -> list[ReportFigure]:
    """Fig. 4a, 4b, 4c and the scale-free gradient change, over training (every probed step)."""
    norms = [n for n in LANDSCAPE_ORDER if n in res.runs]
    steps, _ = res.metric(norms[0], "landscape/loss_variation")
    figures = []
    for stem, lo, hi, ylabel, fig, hint in RANGES:
        groups = {
            NORM_LABELS[n]: (
                res.metric(n, f"landscape/{lo}")[1],
                res.metric(n, f"landscape/{hi}")[1],
            )
            for n in norms
        }
        files = range_band(
            out / f"{out.name}_{stem}_landscape",
            steps,
            groups,
            xlabel=STEP,
            ylabel=ylabel,
            log_y=stem == "grad",
            hint=hint,
        )
        caption = f"{tag}: {ylabel.split(' (')[0]}, its range over the step-size grid (Fig. {fig})"
        figures.append(ReportFigure.from_files(files, files.caption(caption)))
    for stem, metric, ylabel, caption, hint in CURVES:
        curves = {NORM_LABELS[n]: _curve(res, n, metric) for n in norms}
        files = curve_band(
            out / f"{out.name}_{stem}", steps, curves, xlabel=STEP, ylabel=ylabel, hint=hint
        )
        figures.append(ReportFigure.from_files(files, files.caption(f"{tag}: {caption}")))
    return figures


def _metric(res: Results, norm: str, metric: str) -> np.ndarray:
    return res.metric(norm, f"landscape/{metric}")[1]


def _curve(res: Results, norm: str, metric: str | None) -> np.ndarray:
    """(seeds, T): a stored landscape metric, or (None) the gradient change / ||g||."""
    if metric is not None:
        return res.metric(norm, f"landscape/{metric}")[1]
    change = res.metric(norm, "landscape/grad_change_max")[1]
    return change / res.metric(norm, "landscape/grad_norm")[1]
