"""Per-member measures read from a results directory, and the scorecard rows they feed.

Every effect is BN minus baseline, paired by seed (member k of both stacks shares seed k's
init stream and data order), so the interval is a paired t interval over seeds. A claim
with no measurable pair is not scored, and the report says why instead of showing a number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from bnlab.report import (
    TREND_WINDOW,
    Diagnostic,
    ReportFigure,
    Row,
    Rule,
    Table,
    agreement,
    curve_band,
    format_estimate,
    grad_norm_jitter,
    grad_norm_stability,
    log_loss_jitter,
    mean_ci,
    measure_rule,
    percentile_drift,
    steps_to_accuracy,
)
from bnlab.report.measures import BURN_IN
from bnlab.reproduce.common import FIGURE_ORDER, NORM_LABELS, Results, per_member
from bnlab.reproduce.preregistered import trains_gate


def scored(
    rule: Rule,
    bn,
    base,
    note: str = "",
    diverged: Mapping[str, np.ndarray] | None = None,
    gate_failed: str = "",
    diagnostics: Sequence[Diagnostic] = (),
) -> Row:
    """The row of `rule` for the paired per-seed measures `bn` and `base` (S,) each.

    `diverged` maps each network's label to its (S,) diverged flags (`divergence`): counted
    in the row. A seed whose measure is missing for either network makes the row not
    measurable (the survivors would be a selected sample), as does a failed gate
    (`gate_failed`, its reason). `diagnostics` are computed by the caller on every row.
    """
    counts = tuple((label, int(np.sum(flags))) for label, flags in (diverged or {}).items())
    row = measure_rule(rule, bn, base, gate_failed=gate_failed, diverged=counts, note=note)
    return replace(row, diagnostics=tuple(diagnostics))


def diverged(res: Results, norm: str) -> np.ndarray:
    """(K,) whether each member diverged: its training loss became non-finite at some step."""
    _, loss = res.train_series(norm, "train_loss")  # (K, T); a NULL (NaN) reads as NaN
    return ~np.all(np.isfinite(loss), axis=1)


def divergence(res: Results, norms: Sequence[str] = ("batch", "none")) -> dict[str, np.ndarray]:
    """Diverged flags (K,) per network, keyed by its label, for `scored`."""
    return {NORM_LABELS[n]: diverged(res, n) for n in norms}


def divergence_line(res: Results) -> tuple[str, str, str]:
    """A comparison-table line: how many seeds of each network diverged."""
    cells = []
    for norm in ("batch", "none"):
        flags = diverged(res, norm)
        cells.append(f"{int(flags.sum())}/{flags.size}")
    return ("seeds whose training diverged (loss not finite)", *cells)


FINAL_STEPS = 100  # the last logged training steps averaged into a "final" training loss


def final_train_loss(res: Results, norm: str) -> np.ndarray:
    """(K,) each member's training loss, mean over its last FINAL_STEPS logged steps (one
    batch's loss is noisy); NaN for a member that diverged there."""
    _, loss = res.train_series(norm, "train_loss")  # (K, T)
    return loss[:, -FINAL_STEPS:].mean(axis=1)


def final_train_accuracy(res: Results, norm: str) -> np.ndarray:
    """(K,) each member's training accuracy (%) over its last FINAL_STEPS logged steps, as
    trained (training-mode forwards on the training batches): `FINAL_TRAIN_ACCURACY`."""
    _, acc = res.train_series(norm, "train_accuracy")  # (K, T)
    return 100.0 * acc[:, -FINAL_STEPS:].mean(axis=1)


def final_accuracy(res: Results, norm: str) -> np.ndarray:
    """(K,) last evaluated test accuracy of each member, in percent."""
    _, acc = res.metric(norm, "test_accuracy")  # (K, T)
    return 100.0 * acc[:, -1]


def percentiles(res: Results, norm: str, layer: str, unit: int) -> tuple[np.ndarray, np.ndarray]:
    """(steps (T,), values (K, T, P)): the recorded percentiles of one unit of `layer`."""
    hooks = res.config(norm)["hooks"]
    cols = [res.metric(norm, f"act/{layer}/u{unit}/p{p:g}") for p in hooks["percentiles"]]
    return cols[0][0], np.stack([v for _, v in cols], axis=-1)  # (K, T, P)


def drift(res: Results, norm: str, layer: str) -> np.ndarray:
    """(K,) percentile drift of each member, averaged over the recorded units of `layer`."""
    units = res.config(norm)["hooks"]["units"]
    per_unit = [percentiles(res, norm, layer, u)[1] for u in units]  # each (K, T, P)
    values = []
    for k in range(per_unit[0].shape[0]):
        try:
            values.append(float(np.mean([percentile_drift(q[k]) for q in per_unit])))
        except ValueError:  # diverged or too few recordings: no drift for this member
            values.append(None)
    return per_member(values)


def _safe(measure, series: np.ndarray) -> float | None:
    try:
        return measure(series)
    except ValueError:  # too short, or diverged (NaN): this member has no value
        return None


def smoothness(res: Results, norm: str) -> np.ndarray:
    """(K,) each member's relative loss jitter (`log_loss_jitter`)."""
    _, loss = res.train_series(norm, "train_loss")  # (K, T)
    return per_member([_safe(log_loss_jitter, row) for row in loss])


def grad_cv(g: np.ndarray) -> np.ndarray:
    """(K,) the CV of each member's gradient norm, from the norms g (K, T)."""
    return per_member([_safe(grad_norm_stability, row) for row in g])


def grad_jitter(g: np.ndarray) -> np.ndarray:
    """(K,) the trend-free variation of each member's gradient norm (`grad_norm_jitter`),
    from the norms g (K, T)."""
    return per_member([_safe(grad_norm_jitter, row) for row in g])


def grad_level(g: np.ndarray) -> tuple[float, float]:
    """From the norms g (K, T): their moving average (TREND_WINDOW steps) just after the
    burn-in and at the end of training, mean over the members that did not diverge."""
    g = g[np.all(np.isfinite(g), axis=1)]
    start = int(BURN_IN * g.shape[1])
    if g.shape[0] == 0 or g.shape[1] - start < TREND_WINDOW:
        return math.nan, math.nan
    return float(g[:, start : start + TREND_WINDOW].mean()), float(g[:, -TREND_WINDOW:].mean())


SMOOTHNESS_LINE = "relative loss jitter (std of the step-to-step change of log loss; ↓ smoother)"
JITTER_LINE = (
    f"gradient-norm variation around its {TREND_WINDOW}-step moving average "
    "(trend-free; ↓ steadier)"
)
LEVEL_LINE = f"gradient norm ({TREND_WINDOW}-step average): after burn-in → at the end"
TREND_FREE = "trend-free gradient-norm variation"


def log2_effect(bn: np.ndarray, base: np.ndarray):
    """The paired log2(BN / baseline) estimate over the seeds where both are positive."""
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.log2(np.asarray(bn, dtype=float) / np.asarray(base, dtype=float))
    d = d[np.isfinite(d)]
    return mean_ci(d) if d.size >= 2 else None


def grad_norm_diagnostic(
    jitter: Mapping[str, np.ndarray], level: Mapping[str, tuple], claimed_sign: int = -1
) -> Diagnostic:
    """The trend-free check of the gradient-norm CV claim, for every row of it: the CV also
    counts a trend over training as instability; its variation around a moving average does
    not. `jitter` and `level` map "batch" and "none" to `grad_jitter` and `grad_level`."""
    effect = log2_effect(jitter["batch"], jitter["none"])
    (b0, b1), (n0, n1) = level["batch"], level["none"]
    detail = (
        f"BN {_mean(jitter['batch'])} vs no BN {_mean(jitter['none'])} around the moving "
        f"average; the level goes {b0:.2f} → {b1:.2f} with BN, {n0:.2f} → {n1:.2f} without "
        "(this setting's comparison table)"
    )
    return Diagnostic(
        TREND_FREE, effect, " log2", detail, agreement(effect, claimed_sign), post_hoc=True
    )


def _mean(values: np.ndarray) -> str:
    finite = values[np.isfinite(values)]
    return f"{finite.mean():.3f}" if finite.size else "not measurable"


def steps_to_common_accuracy(res: Results, norms: tuple[str, str]) -> tuple[dict, float]:
    """Steps each member needs to reach the highest test accuracy every run reaches.

    The threshold is the lowest peak accuracy over all finite runs of both variants: fixed
    by a rule before looking at which variant is faster, and reached by every run.
    """
    curves = {n: res.metric(n, "test_accuracy") for n in norms}
    peaks = np.concatenate([np.nanmax(v, axis=1) for _, v in curves.values()])
    threshold = float(np.min(peaks[np.isfinite(peaks)]))
    out = {}
    for norm, (steps, acc) in curves.items():
        rows = [steps_to_accuracy(steps, np.nan_to_num(a, nan=-1.0), threshold) for a in acc]
        out[norm] = per_member(rows)
    return out, threshold


def trains(res: Results, norms: Sequence[str] = ("batch", "none")) -> str:
    """The TRAINS gate on `norms`: '' or why a network compared does not train."""
    return trains_gate(*(float(np.nanmean(final_accuracy(res, n))) for n in norms))


def stability_rows(res: Results, smooth: Rule, cv: Rule, note: str = ""):
    """Rows for the smoother-loss and stable-gradient-norm claims (`smooth`, `cv`), plus their
    table lines: with the CV, its trend-free counterpart (a diagnostic on every row) and the
    trend itself."""
    nets = ("batch", "none")
    grads = {n: res.train_series(n, "grad_norm")[1] for n in nets}  # (K, T) each, read once
    jitter = {n: grad_jitter(grads[n]) for n in nets}
    level = {n: grad_level(grads[n]) for n in nets}
    gate, div = trains(res), divergence(res)
    loss = {n: smoothness(res, n) for n in nets}
    cvs = {n: grad_cv(grads[n]) for n in nets}
    rows = [
        scored(smooth, loss["batch"], loss["none"], note, div, gate),
        scored(
            cv, cvs["batch"], cvs["none"], note, div, gate, [grad_norm_diagnostic(jitter, level)]
        ),
    ]
    lines = [
        (SMOOTHNESS_LINE, _fmt(loss["batch"], 4), _fmt(loss["none"], 4)),
        ("gradient-norm CV (↓ steadier)", _fmt(cvs["batch"], 4), _fmt(cvs["none"], 4)),
        (JITTER_LINE, _fmt(jitter["batch"], 4), _fmt(jitter["none"], 4)),
        (LEVEL_LINE, *(_arrow(level[n]) for n in nets)),
        divergence_line(res),
    ]
    return rows, lines


def _arrow(level: tuple[float, float]) -> str:
    start, end = level
    return "not measurable" if math.isnan(start) else f"{start:.2f} → {end:.2f}"


def speed_rows(res: Results, accuracy: Rule, steps: Rule | None = None, note: str = ""):
    """Rows for final accuracy (and steps-to-accuracy when `steps` is given), plus their
    table lines and notes."""
    acc = {n: final_accuracy(res, n) for n in ("batch", "none")}
    gate, div = trains(res), divergence(res)
    rows = [scored(accuracy, acc["batch"], acc["none"], note, div, gate)]
    lines = [("final test accuracy (%, ↑ better)", fmt(acc["batch"]), fmt(acc["none"]))]
    notes = []
    if steps is not None:
        reach, threshold = steps_to_common_accuracy(res, ("batch", "none"))
        rows.append(scored(steps, reach["batch"], reach["none"], note, div, gate))
        lines.append(
            (
                f"steps to {threshold:.2%} test accuracy (↓ faster)",
                fmt(reach["batch"], 0),
                fmt(reach["none"], 0),
            )
        )
        notes.append(
            f"Steps-to-accuracy threshold {threshold:.2%}: the lowest peak test accuracy of any "
            "run, so every run reaches it; resolution = the evaluation interval."
        )
    return rows, lines, notes


def accuracy_figure(res: Results, stem: Path, title: str) -> ReportFigure:
    """Test accuracy vs step, mean and 95% CI band over seeds, both variants."""
    steps, _ = res.metric("batch", "test_accuracy")
    curves = {NORM_LABELS[n]: 100.0 * res.metric(n, "test_accuracy")[1] for n in FIGURE_ORDER}
    files = curve_band(
        stem,
        steps,
        curves,
        xlabel="training step (updates)",
        ylabel="test accuracy (%)",
        title=title,
        hint="Compare the vertical gap between the bands early in training and at the end; "
        "where the bands overlap, the seeds do not separate the two networks.",
    )
    return ReportFigure.from_files(
        files, files.caption("Test accuracy vs training steps: mean and 95% CI band over seeds")
    )


def _fmt(values: np.ndarray, digits: int, unit: str = "") -> str:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return "not measurable"
    text = format_estimate(mean_ci(finite), digits=digits, unit=unit)
    missing = values.size - finite.size
    return f"{text}; {missing} of {values.size} not measurable" if missing else text


def comparison_table(title: str, lines: list[tuple[str, str, str]]) -> Table:
    cols = ("measure", NORM_LABELS["batch"], NORM_LABELS["none"])
    return Table(title, cols, [tuple(line) for line in lines])


def fmt(values: np.ndarray, digits: int = 2, unit: str = "") -> str:
    """Mean ± 95% CI (n) of the finite values, naming how many were not measurable."""
    return _fmt(np.asarray(values, dtype=float), digits, unit)


def nan_if_none(x) -> float:
    return math.nan if x is None else float(x)
