"""The ICS part of a Santurkar setting (Sec. 2.2, Def. 2.1, Fig. 5): figures and rows.

Per seed and network, each ICS form is the mean over the layers after the first (the first
has no layer before it, so its ICS is 0 by definition) and over the probed steps where both
networks train; the rows are log2(BN / no BN). The ℓ2 row carries its scale-free twin
(1 − cos, the cosine row's own values) and the whole gradient's norm ratio over the same
steps, reproduced or not (`santurkar2018_why`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from bnlab.report import ReportFigure, Row, format_estimate, grid_points, mean_ci
from bnlab.reproduce.common import NORM_LABELS, Results
from bnlab.reproduce.santurkar2018_rules import IcsRules
from bnlab.reproduce.santurkar2018_steps import (
    LANDSCAPE_ORDER,
    both_train_steps,
    divergence_gate,
    gates,
    series_at,
)
from bnlab.reproduce.santurkar2018_why import ICS, TWIN_ICS, gradient_scale, log2_ratio, twin
from bnlab.reproduce.scoring import divergence, scored


def layers(res: Results) -> list[str]:
    """The weight layers with ICS recorded, first to last (conv1 < ... < fc7 < out)."""
    found = [n.split("/", 1)[1] for n in res.metric_names("ics_l2/")]
    return sorted(
        found, key=lambda name: (name == "out", int("".join(filter(str.isdigit, name)) or 0))
    )


def per_layer(res: Results, norm: str, kind: str, names: list[str]) -> np.ndarray:
    """(seeds, L, T): `kind` ("ics_l2" or "ics_cos") of each layer in `names`."""
    return np.stack([res.metric(norm, f"{kind}/{layer}")[1] for layer in names], 1)


def ics_rows(res: Results, rules: IcsRules) -> list[Row]:
    """The ℓ2 and cosine rows of a setting, the ℓ2 one with its diagnostics."""
    names = layers(res)
    probed, _ = res.metric("batch", f"ics_l2/{names[0]}")
    steps = both_train_steps(res, probed)
    flags = divergence(res, LANDSCAPE_ORDER)
    gate = gates(steps.gate_failed, divergence_gate(flags))
    note = f"layers after the first (the first has zero ICS by definition); {steps.label}"
    l2 = steps.means(*(per_layer(res, n, "ics_l2", names[1:]) for n in LANDSCAPE_ORDER))
    distance = steps.means(
        *(1.0 - per_layer(res, n, "ics_cos", names[1:]) for n in LANDSCAPE_ORDER)
    )
    norm = steps.means(*(series_at(res, n, "grad_norm", probed) for n in LANDSCAPE_ORDER))
    l2_row = scored(rules.l2, *l2, note, flags, gate)
    cosine_row = scored(rules.cosine, *distance, note, flags, gate)
    twin_row = twin(rules.l2, TWIN_ICS, *distance, "1 − cos(G, G'), mean over the layers")
    scale = gradient_scale(rules.l2, l2_row, twin_row.effect, log2_ratio(*norm), ICS)
    return [replace(l2_row, diagnostics=(twin_row, scale)), cosine_row]


def ics_figures(res: Results, tag: str, out: Path) -> tuple[list[ReportFigure], str]:
    """Per-layer ICS ℓ2 and cos(G, G') (Fig. 5), and a note on the last layer's cosine,
    which the mean over layers can hide."""
    norms = [n for n in LANDSCAPE_ORDER if n in res.runs]
    names = layers(res)
    figures = []
    for kind, ylabel, hint in (
        (
            "ics_l2",
            "ICS ℓ2 ||G − G'|| (gradient-norm units)",
            "Compare the two networks layer by layer; the ℓ2 form also counts each network's "
            "gradient scale.",
        ),
        (
            "ics_cos",
            "cos(G, G') (unitless, 1 = no shift)",
            "Compare how far each network's points fall below 1, layer by layer.",
        ),
    ):
        # name: (seeds, L), the mean over training of each layer
        groups = {NORM_LABELS[n]: per_layer(res, n, kind, names).mean(2) for n in norms}
        files = grid_points(
            out / f"{out.name}_{kind}",
            list(range(1, len(names) + 1)),
            groups,
            xlabel="weight layer (index, 1 = first)",
            ylabel=ylabel,
            log_x=False,
            hint=hint,
        )
        caption = f"{tag}: {ylabel.split(' (')[0]} per layer, mean over training (Fig. 5)"
        figures.append(ReportFigure.from_files(files, files.caption(caption)))
    cells = []
    for label, v in groups.items():  # cos(G, G'), (seeds, L)
        last = v[:, -1][np.isfinite(v[:, -1])]
        text = f"{label} {format_estimate(mean_ci(last), 3)}" if last.size else f"{label} —"
        if last.size < len(v):
            text += f" ({len(v) - last.size}/{len(v)} seeds diverged)"
        cells.append(text)
    note = (
        f"{tag}: cos(G, G') in the last layer ({names[-1]}), mean over training: "
        f"{'; '.join(cells)}. The ICS rows average over all layers after the first; the "
        "per-layer figures show where the layers differ."
    )
    return figures, note
