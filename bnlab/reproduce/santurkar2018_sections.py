"""Read one setting of a Santurkar experiment back into a report section and scorecard rows.

Effects are per seed and paired (member k of every norm's stack shares seed k): for the
landscape and ICS claims, log2 of the per-seed mean over all probed steps (and layers), BN
minus no BN, i.e. the log2 ratio; for noisy BN, final test accuracy differences in percentage
points and the percentile drift of `bnlab.report.percentile_drift`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bnlab.report import (
    ReportFigure,
    Section,
    Table,
    curve_band,
    format_estimate,
    grid_points,
    mean_ci,
    range_band,
)
from bnlab.reproduce.common import NORM_LABELS, Part, Results, data_source, describe
from bnlab.reproduce.scoring import diverged, divergence, drift, final_accuracy, fmt, scored

LANDSCAPE_ORDER = ("batch", "none")  # BN first, as in the paper's Fig. 4 and 5


def setting_part(title: str, name: str, res: Results, directory: Path) -> Part:
    """The section of the setting stored in `directory` (figures go to ../figures/<setting>)."""
    setting = directory.name
    tag, out = f"{name}/{setting}", directory.parent / "figures" / setting
    figures, tables, rows, notes = [], [], [], []
    if res.metric_names("landscape/"):
        _landscape(res, tag, out, figures, rows, notes)
    if res.metric_names("ics_l2/"):
        _ics(res, tag, out, figures, rows, notes)
    if "batch-noisy" in res.runs:
        _noisy(res, tag, out, figures, rows, tables, notes)
    if res.metric_names("curvature"):
        tables.append(_curvature_table(res))
    cfg = res.config(next(iter(res.runs)))
    protocol = {
        "preset": cfg["preset"],
        "norms": ", ".join(NORM_LABELS[n] for n in NORM_LABELS if n in res.runs),  # baseline first
        **describe(cfg),
    }
    section = Section(
        f"{title} — {setting}",
        protocol,
        data_source(cfg["data"]["dataset"]),
        figures,
        tables,
        notes,
    )
    return section, rows


def _log2_mean(values: np.ndarray) -> np.ndarray:
    """(seeds, ...) -> (seeds,): log2 of each seed's mean over the rest; NaN if it diverged."""
    return np.log2(values.mean(axis=tuple(range(1, values.ndim))))


def _score(rows: list, notes: list, claim: str, tag: str, bn, base, note: str, diverged) -> None:
    new_rows, new_notes = scored(claim, tag, bn, base, note, diverged)
    rows += new_rows
    notes += new_notes


def _landscape(res: Results, tag: str, out: Path, figures: list, rows: list, notes: list) -> None:
    norms = [n for n in LANDSCAPE_ORDER if n in res.runs]
    steps, _ = res.metric(norms[0], "landscape/loss_variation")
    for what, lo, hi, ylabel in (
        ("loss", "loss_min", "loss_max", "loss along the gradient"),
        ("grad", "grad_change_min", "grad_change_max", "ℓ2 gradient change"),
    ):
        groups = {
            NORM_LABELS[n]: (
                res.metric(n, f"landscape/{lo}")[1],
                res.metric(n, f"landscape/{hi}")[1],
            )
            for n in norms
        }
        files = range_band(
            out / f"{tag}_{what}_landscape",
            steps,
            groups,
            xlabel="training step",
            ylabel=ylabel,
            log_y=what == "grad",
        )
        figures.append(
            ReportFigure.from_files(
                files, f"{tag}: {ylabel} over the step-size grid (Fig. 4{'ab'[what == 'grad']})"
            )
        )
    beta = {NORM_LABELS[n]: res.metric(n, "landscape/beta_smoothness")[1] for n in norms}
    files = curve_band(
        out / f"{tag}_beta", steps, beta, xlabel="training step", ylabel="effective β-smoothness"
    )
    figures.append(ReportFigure.from_files(files, f"{tag}: effective β-smoothness (Fig. 4c)"))
    if norms == list(LANDSCAPE_ORDER):
        for claim, metric in (
            ("santurkar-loss-variation", "loss_variation"),
            ("santurkar-gradient-predictiveness", "grad_change_max"),
            ("santurkar-beta-smoothness", "beta_smoothness"),
        ):
            bn, base = (_log2_mean(res.metric(n, f"landscape/{metric}")[1]) for n in norms)
            _score(rows, notes, claim, tag, bn, base, "paired by seed", divergence(res, norms))


def _ics(res: Results, tag: str, out: Path, figures: list, rows: list, notes: list) -> None:
    norms = [n for n in LANDSCAPE_ORDER if n in res.runs]
    layers = [n.split("/", 1)[1] for n in res.metric_names("ics_l2/")]
    ordered = sorted(layers, key=_layer_order)
    for kind, ylabel in (("ics_l2", "ICS ℓ2 ||G − G'||"), ("ics_cos", "cos(G, G')")):
        per_layer = {
            NORM_LABELS[n]: np.stack(
                [res.metric(n, f"{kind}/{layer}")[1].mean(1) for layer in ordered], 1
            )
            for n in norms
        }  # name: (seeds, L)
        files = grid_points(
            out / f"{tag}_{kind}",
            list(range(1, len(ordered) + 1)),
            per_layer,
            xlabel="layer (1 = first)",
            ylabel=ylabel,
            log_x=False,
        )
        figures.append(
            ReportFigure.from_files(
                files, f"{tag}: {ylabel} per layer, mean over training (Fig. 5)"
            )
        )
    if norms == list(LANDSCAPE_ORDER):
        # (seeds, L - 1, T) per norm
        l2 = [np.stack([res.metric(n, f"ics_l2/{la}")[1] for la in ordered[1:]], 1) for n in norms]
        note = "layers after the first (the first has zero ICS by definition)"
        bn, base = (_log2_mean(v) for v in l2)
        _score(
            rows, notes, "santurkar-ics-not-reduced", tag, bn, base, note, divergence(res, norms)
        )


def _layer_order(layer: str) -> tuple[bool, int]:
    """conv1 < conv2 < fc3 < ... < out: the number in the name, the output layer last."""
    digits = "".join(c for c in layer if c.isdigit())
    return layer == "out", int(digits or 0)


def _noisy(
    res: Results, tag: str, out: Path, figures: list, rows: list, tables: list, notes: list
) -> None:
    norms = ("none", "batch", "batch-noisy")
    layer = res.config("batch")["hooks"]["layers"][0]
    acc = {n: final_accuracy(res, n) for n in norms}
    drifts = {n: drift(res, n, layer) for n in norms}
    diverged_runs = {n: diverged(res, n) for n in norms}
    tables.append(
        Table(
            "Final test accuracy and activation-percentile drift",
            ("network", "test accuracy (%)", "percentile drift", "diverged seeds"),
            [
                (
                    NORM_LABELS[n],
                    fmt(acc[n], 2),
                    fmt(drifts[n], 3),
                    f"{int(diverged_runs[n].sum())}/{diverged_runs[n].size}",
                )
                for n in norms
            ],
        )
    )
    for claim, measure, base in (
        ("santurkar-noisy-bn-like-bn", acc, "batch"),
        ("santurkar-noisy-bn-beats-none", acc, "none"),
        ("santurkar-noisy-bn-less-stable", drifts, "batch"),
    ):
        pair = divergence(res, ("batch-noisy", base))
        _score(
            rows, notes, claim, tag, measure["batch-noisy"], measure[base], "paired by seed", pair
        )
    steps, _ = res.metric("batch", "test_accuracy")
    curves = {NORM_LABELS[n]: res.metric(n, "test_accuracy")[1] * 100 for n in norms}
    files = curve_band(
        out / f"{tag}_accuracy", steps, curves, xlabel="training step", ylabel="test accuracy (%)"
    )
    figures.append(ReportFigure.from_files(files, f"{tag}: test accuracy (Fig. 2, left)"))


def _curvature_table(res: Results) -> Table:
    cells = []
    for norm in LANDSCAPE_ORDER:
        if norm in res.runs:
            _, v = res.metric(norm, "curvature")
            per_seed = v.mean(1)  # (seeds,); NaN where a run diverged
            ok = np.isfinite(per_seed)
            text = format_estimate(mean_ci(per_seed[ok]), 4) if ok.any() else "—"
            if not ok.all():
                text += f" ({int((~ok).sum())}/{ok.size} seeds diverged, left out)"
            cells.append((NORM_LABELS[norm], text))
    return Table(
        "Curvature along the gradient, g^T H g / ||g||^2, mean over probed steps",
        ("network", "curvature"),
        cells,
    )
