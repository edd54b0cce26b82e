"""Per-member measures read from a results directory, and the scorecard rows they feed.

Every effect is BN minus baseline, paired by seed (member k of both stacks shares seed k's
init stream and data order), so the interval is a paired t interval over seeds. A claim
with no measurable pair is not scored, and the report says why instead of showing a number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from bnlab.report import (
    CLAIMS_BY_ID,
    TREND_WINDOW,
    Estimate,
    ReportFigure,
    ScorecardRow,
    Table,
    curve_band,
    format_estimate,
    grad_norm_jitter,
    grad_norm_stability,
    loss_smoothness,
    mean_ci,
    percentile_drift,
    score,
    steps_to_accuracy,
)
from bnlab.report.measures import BURN_IN
from bnlab.reproduce.common import FIGURE_ORDER, NORM_LABELS, Results, paired_effect, per_member


def scored(
    claim_id: str,
    experiment: str,
    bn,
    base,
    note: str = "",
    diverged: Mapping[str, np.ndarray] | None = None,
    why: str = "",
) -> tuple[list[ScorecardRow], list[str]]:
    """One scorecard row for the paired per-seed measures `bn` and `base` (S,) each.

    `diverged` maps each network's label to its (S,) diverged flags (`divergence`): counted
    in the row. A seed whose measure is not finite for either network is left out of the
    interval and counted; with no seed left the row says "not measurable" (never dropped).
    `why` is the most likely reason should the claim not reproduce (`score` keeps it only
    then). The second value, notes for the section, is empty (the row carries everything);
    it gives `scored` the (rows, notes) shape of the other claim helpers (`speed_claims`),
    whose results callers concatenate alike.
    """
    effect, left_out = paired_effect(bn, base)
    seeds = int(np.asarray(bn).size)
    if effect is None:
        effect = Estimate(math.nan, math.nan, math.nan, 0, "no seed measurable")
    counts = tuple((label, int(np.sum(flags))) for label, flags in (diverged or {}).items())
    row = score(
        CLAIMS_BY_ID[claim_id],
        experiment,
        effect,
        note,
        seeds=seeds,
        diverged=counts,
        left_out=left_out,
        why=why,
    )
    return [row], []


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
    _, loss = res.train_series(norm, "train_loss")  # (K, T)
    return per_member([_safe(loss_smoothness, row) for row in loss])


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


SMOOTHNESS_LINE = "loss smoothness (std of step-to-step change)"
JITTER_LINE = f"gradient-norm variation around its {TREND_WINDOW}-step moving average (trend-free)"
LEVEL_LINE = f"gradient norm ({TREND_WINDOW}-step average): after burn-in → at the end"


def grad_norm_why(jitter: Mapping[str, np.ndarray], level: Mapping[str, tuple]) -> str:
    """Why the CV claim failed, from the trend-free measure: `jitter` and `level` map "batch"
    and "none" to `grad_jitter` and `grad_level`. A trend-free measure lower with BN (its
    paired interval below 0) puts the CV's difference on the trend; otherwise the measure is
    not lower either, and nothing tested explains it ("" when it is not measurable)."""
    effect, _ = paired_effect(jitter["batch"], jitter["none"])
    if effect is None or not effect.has_ci:
        return ""
    numbers = (
        f"BN {_mean(jitter['batch'])} vs no BN {_mean(jitter['none'])}, difference "
        f"{format_estimate(effect, 3)}; this setting's comparison table"
    )
    around = f"around its {TREND_WINDOW}-step moving average"
    if effect.high < 0:
        (b0, b1), (n0, n1) = level["batch"], level["none"]
        return (
            "Most likely the gradient norm's trend over training, which the CV counts as "
            f"instability: BN's goes {b0:.2f} → {b1:.2f}, no BN's {n0:.2f} → {n1:.2f}; "
            f"{around}, BN's varies less ({numbers})."
        )
    if effect.low > 0:
        return (
            f"Not the trend: {around}, BN's gradient norm varies more too ({numbers}), so it "
            "varies more step to step in this setting; no tested explanation."
        )
    return (
        f"Not shown to be the trend: {around}, the two networks' gradient norms do not differ "
        f"clearly ({numbers}); no tested explanation."
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


def stability_claims(res: Results, experiment: str, note: str = ""):
    """Rows for the smoother-loss and stable-gradient-norm claims, plus their table lines:
    with the CV, its trend-free counterpart and the trend itself (evidence, not a claim)."""
    nets = ("batch", "none")
    grads = {n: res.train_series(n, "grad_norm")[1] for n in nets}  # (K, T) each, read once
    jitter = {n: grad_jitter(grads[n]) for n in nets}
    level = {n: grad_level(grads[n]) for n in nets}
    rows, notes, lines = [], [], []
    for claim_id, values, label, why in (
        ("bn-smoother-loss", {n: smoothness(res, n) for n in nets}, SMOOTHNESS_LINE, ""),
        (
            "bn-stable-grad-norm",
            {n: grad_cv(grads[n]) for n in nets},
            "gradient-norm CV",
            grad_norm_why(jitter, level),
        ),
    ):
        bn, base = values["batch"], values["none"]
        r, n = scored(claim_id, experiment, bn, base, note, divergence(res), why)
        rows, notes = rows + r, notes + n
        lines.append((label, _fmt(bn, 4), _fmt(base, 4)))
    lines.append((JITTER_LINE, _fmt(jitter["batch"], 4), _fmt(jitter["none"], 4)))
    lines.append((LEVEL_LINE, *(_arrow(level[n]) for n in ("batch", "none"))))
    lines.append(divergence_line(res))
    return rows, notes, lines


def _arrow(level: tuple[float, float]) -> str:
    start, end = level
    return "not measurable" if math.isnan(start) else f"{start:.2f} → {end:.2f}"


def speed_claims(res: Results, experiment: str, notes_by_claim: dict[str, str] | None = None):
    """Rows for final accuracy and steps-to-accuracy, plus their table lines and notes."""
    notes_by_claim = notes_by_claim or {}
    acc = {n: final_accuracy(res, n) for n in ("batch", "none")}
    reach, threshold = steps_to_common_accuracy(res, ("batch", "none"))
    rows, notes = [], []
    for claim_id, values in (("bn-final-accuracy", acc), ("bn-fewer-steps", reach)):
        note = notes_by_claim.get(claim_id, "")
        r, n = scored(claim_id, experiment, values["batch"], values["none"], note, divergence(res))
        rows, notes = rows + r, notes + n
    lines = [
        ("final test accuracy (%)", fmt(acc["batch"]), fmt(acc["none"])),
        (f"steps to {threshold:.2%} test accuracy", fmt(reach["batch"], 0), fmt(reach["none"], 0)),
    ]
    notes.append(
        f"Steps-to-accuracy threshold {threshold:.2%}: the lowest peak test accuracy of any "
        "run, so every run reaches it; resolution = the evaluation interval."
    )
    return rows, notes, lines


def accuracy_figure(res: Results, stem: Path, title: str) -> ReportFigure:
    """Test accuracy vs step, mean and 95% CI band over seeds, both variants."""
    steps, _ = res.metric("batch", "test_accuracy")
    curves = {NORM_LABELS[n]: 100.0 * res.metric(n, "test_accuracy")[1] for n in FIGURE_ORDER}
    files = curve_band(
        stem, steps, curves, xlabel="training step", ylabel="test accuracy (%)", title=title
    )
    return ReportFigure.from_files(files, "Test accuracy vs training steps: mean and 95% CI band.")


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
